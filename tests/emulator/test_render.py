"""Clips that match the request, checked by decoding them with PyAV over real HTTP."""

from __future__ import annotations

import io
import sys
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orvideo_emulator.mp4 import sample_bytes
from orvideo_emulator.render import frame_size, render_clip

from tests.conftest import Emulator

av = pytest.importorskip("av", reason="PyAV renders the clips (orvideo-emulator[render])")


def probe(data: bytes) -> dict[str, Any]:
    """What a downstream task would see: container duration, frame size, streams, frames."""
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return {
            "seconds": container.duration / 1_000_000,
            "size": (video.codec_context.width, video.codec_context.height),
            "audio": [stream.codec_context.name for stream in container.streams.audio],
            "frames": frames,
        }


def download(emulator: Emulator, **fields: Any) -> bytes:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=10) as api:
        body = {"model": "bytedance/seedance-2.0", "prompt": "a paper boat on a river", **fields}
        submitted = api.post("/videos", json=body)
        assert submitted.status_code == 202, submitted.text
        response = api.get(f"/videos/{submitted.json()['id']}/content", params={"index": 0})
        assert response.status_code == 200, response.text
        return response.content


@pytest.mark.parametrize(
    ("fields", "size", "seconds", "audio"),
    [
        ({"duration": 4, "resolution": "720p", "aspect_ratio": "16:9"}, (1280, 720), 4, []),
        ({"duration": 8, "resolution": "1080p", "aspect_ratio": "9:16"}, (1080, 1920), 8, []),
        (
            {"duration": 12, "resolution": "480p", "aspect_ratio": "4:3", "generate_audio": True},
            (640, 480),
            12,
            ["aac"],
        ),
        ({"duration": 4, "size": "960x960", "generate_audio": True}, (960, 960), 4, ["aac"]),
    ],
)
def test_the_clip_has_the_duration_size_and_audio_that_were_asked_for(
    emulator: Emulator, fields: dict[str, Any], size: tuple[int, int], seconds: int, audio: list[str]
) -> None:
    clip = probe(download(emulator, **fields))
    assert clip["size"] == size
    assert clip["seconds"] == pytest.approx(seconds, abs=0.05)
    assert clip["audio"] == audio
    assert clip["frames"] == seconds * 2  # 2 frames per second


def test_render_off_or_a_scripted_size_serves_the_sample(emulator: Emulator) -> None:
    emulator.control.set_job_defaults(render=False)
    assert download(emulator, duration=4) == sample_bytes()
    emulator.control.set_job_defaults(render=True, output_size=len(sample_bytes()) + 100)
    assert download(emulator, duration=4)[: len(sample_bytes())] == sample_bytes()


def test_without_pyav_the_sample_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now raises ImportError
    assert render_clip({"prompt": "a prompt rendered nowhere else", "duration": 4}) is None


@settings(max_examples=60, deadline=None)
@given(
    resolution=st.sampled_from(["360p", "480p", "720p", "768p", "1080p"]),
    ratio=st.sampled_from(["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"]),
)
def test_frame_sizes_are_even_and_keep_the_ratio(resolution: str, ratio: str) -> None:
    width, height = frame_size({"resolution": resolution, "aspect_ratio": ratio})
    wide, tall = (int(part) for part in ratio.split(":"))
    assert width % 2 == 0
    assert height % 2 == 0
    assert min(width, height) == int(resolution[:-1]) + int(resolution[:-1]) % 2
    assert width / height == pytest.approx(wide / tall, rel=0.01)


def test_a_downloaded_clip_is_the_same_bytes_every_time(emulator: Emulator) -> None:
    """A resumed download (Range) must continue the same file."""
    first = download(emulator, duration=4, resolution="720p")
    assert download(emulator, duration=4, resolution="720p") == first
