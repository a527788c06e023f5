"""The bad-input table: every case fails with a clear error before any POST reaches the emulator.

Each row names the field, the value and what is allowed; the emulator counts POSTs, which must
stay at zero: bad input never costs money.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo.exceptions import InvalidVideoRequestError, VideoCostLimitError
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from tests.helpers import MP3_BYTES, RecordingTaskInstance, context_with, png_bytes

PNG = png_bytes()

# (case id, operator arguments over a valid veo-3.1 request, fragments the message must hold)
BAD_INPUTS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("duration not offered", {"duration": 7}, ["duration=7", "google/veo-3.1", "allowed: 4, 6, 8"]),
    ("duration not a number", {"duration": "eight"}, ["duration='eight' must be a whole number"]),
    ("resolution not offered", {"resolution": "4K"}, ["resolution='4K'", "allowed: 720p, 1080p"]),
    ("aspect ratio not offered", {"aspect_ratio": "21:9"}, ["aspect_ratio='21:9'", "allowed: 16:9, 9:16"]),
    ("size badly formatted", {"size": "1280*720"}, ["size='1280*720' must look like 'WIDTHxHEIGHT'"]),
    ("size not offered", {"size": "640x480"}, ["size='640x480'", "google/veo-3.1"]),
    (
        "unknown model",
        {"model": "acme/video-9000"},
        ["model='acme/video-9000' is not an OpenRouter video model"],
    ),
    (
        "seed without seed support",
        {"model": "kwaivgi/kling-v3.0-pro", "duration": 5, "seed": 42},
        ["seed=42 is not supported by model kwaivgi/kling-v3.0-pro"],
    ),
    (
        "audio on a silent model",
        {"model": "minimax/hailuo-2.3", "duration": 6, "generate_audio": True},
        ["generate_audio=True is not supported by model minimax/hailuo-2.3"],
    ),
    (
        "frame type not offered",
        {"model": "google/veo-3.1-lite", "frame_images": {"last_frame": PNG}},
        ["frame_images['last_frame'] is not supported by model google/veo-3.1-lite", "allowed: first_frame"],
    ),
    (
        "frames on a model without frames",
        {"model": "alibaba/wan-2.2", "duration": 5, "frame_images": {"first_frame": PNG}},
        ["does not take frame images"],
    ),
    (
        "unknown frame key",
        {"frame_images": {"middle_frame": PNG}},
        ["'middle_frame' is not a frame type", "first_frame, last_frame"],
    ),
    ("frame_images not a dict", {"frame_images": [PNG]}, ["frame_images must be a dict"]),
    (
        "passthrough key not allowed",
        {"provider_options": {"google-vertex": {"guidanceScale": 7}}},
        [
            "provider_options['google-vertex']['guidanceScale']",
            "allowed: negativePrompt, personGeneration, enhancePrompt",
        ],
    ),
    (
        "provider_options wrong shape",
        {"provider_options": {"google-vertex": "blurry"}},
        ["must map provider slugs to parameter dicts"],
    ),
    (
        "unreadable frame file",
        {"frame_images": {"first_frame": "/nonexistent/first.png"}},
        ["frame_images['first_frame']: /nonexistent/first.png cannot be read"],
    ),
    (
        "non-image file as a frame",
        {"frame_images": {"first_frame": "NOTES"}},
        ["is not a recognised image, audio or video file"],
    ),
    ("audio file as a frame", {"frame_images": {"first_frame": MP3_BYTES}}, ["is audio/mpeg, not an image"]),
    (
        "plain http frame URL",
        {"frame_images": {"first_frame": "http://cdn.example/a.png"}},
        ["plain http URL"],
    ),
    (
        "malformed data URL",
        {"frame_images": {"first_frame": "data:image/png;base64,%%%"}},
        ["does not hold valid base64"],
    ),
    (
        "reference of unknown kind",
        {"input_references": ["https://cdn.example/render"]},
        ["cannot be told from its name"],
    ),
    (
        "reference declared wrongly",
        {"input_references": [{"kind": "video", "source": PNG}]},
        ["declared video but its content is image"],
    ),
    (
        "oversize single file",
        {"frame_images": {"first_frame": "HUGE"}},
        ["once base64-encoded", "at most 52,428,800"],
    ),
    (
        "oversize body",
        {"frame_images": {"first_frame": "BIG1", "last_frame": "BIG2"}},
        ["the request body would be", "Largest sources", "big1.png", "big2.png"],
    ),
    ("session_id too long", {"session_id": "s" * 300}, ["session_id is 300 characters; at most 256"]),
    ("trace not JSON", {"trace": {"when": object()}}, ["must hold JSON values only"]),
    (
        "no prompt and no media",
        {"prompt": ""},
        ["prompt is required unless frame_images or input_references"],
    ),
    (
        "over budget",
        {"duration": 8, "generate_audio": True, "max_cost_usd": 1.0},
        ["Estimated cost $3.2000", "per-video-second-audio $0.4/s x 8 s", "exceeds max_cost_usd=$1"],
    ),
    (
        "unpriceable under strict check",
        {"model": "bytedance/seedance-2.0", "max_cost_usd": 5, "strict_cost_check": True},
        ["Cannot check max_cost_usd=$5", "per-million-video-tokens", "strict_cost_check is on"],
    ),
]


def _materialise(value: Any, tmp_path: Path) -> Any:
    """Swap placeholders for real files made in this test's tmp dir."""
    if isinstance(value, dict):
        return {k: _materialise(v, tmp_path) for k, v in value.items()}
    if value == "NOTES":
        notes = tmp_path / "notes.png"
        notes.write_text("meeting notes, not a picture")
        return str(notes)
    if value == "HUGE":
        huge = tmp_path / "huge.png"
        with open(huge, "wb") as handle:
            handle.truncate(45 * 1024 * 1024)  # sparse; refused from its size, never read
        return str(huge)
    if value in ("BIG1", "BIG2"):
        big = tmp_path / f"{value.lower()}.png"
        big.write_bytes(PNG + b"\x00" * (20 * 1024 * 1024))  # a PNG signature, 20 MiB: 2 of them > 50 MiB
        return str(big)
    return value


def test_the_table_is_large_enough() -> None:
    assert len(BAD_INPUTS) >= 20


@pytest.mark.parametrize(("case", "arguments", "fragments"), BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_fails_clearly_before_any_post(
    emulator: Any, tmp_path: Path, case: str, arguments: dict[str, Any], fragments: list[str]
) -> None:
    kwargs: dict[str, Any] = {
        "task_id": "render",
        "prompt": "a glass of water on a table",
        "model": "google/veo-3.1",
        "output_path": str(tmp_path / "out.mp4"),
        **{k: _materialise(v, tmp_path) for k, v in arguments.items()},
    }
    with pytest.raises(InvalidVideoRequestError) as info:
        # Values that cannot be templates fail already here, when the DAG is parsed.
        OpenRouterVideoOperator(**kwargs).execute(context_with(RecordingTaskInstance()))
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"
    assert "nothing was billed" in message
    if "max_cost_usd" in arguments:
        assert isinstance(info.value, VideoCostLimitError)
    assert emulator.control.count("submit", "POST") == 0
    assert not (tmp_path / "out.mp4").exists()
