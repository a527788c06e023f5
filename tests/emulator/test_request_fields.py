"""Submit-body fields beyond the model's choices (media URLs, observability metadata), and billing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from orvideo_emulator.billing import bill
from orvideo_emulator.models import MODELS_BY_ID

from tests.conftest import Emulator
from tests.emulator.test_server import assert_error

VEO = {"model": "google/veo-3.1", "prompt": "p"}
PNG = "data:image/png;base64,iVBORw0KGgo="
MP3 = "data:audio/mpeg;base64,SUQzBAA="
MP4 = "data:video/mp4;base64,AAAAGGZ0eXBpc29t"


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=5) as client:
        yield client


def frame(url: Any = PNG, frame_type: str = "first_frame", **fields: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}, "frame_type": frame_type, **fields}


def reference(kind: str, url: Any) -> dict[str, Any]:
    return {"type": kind, kind: {"url": url}}


IMAGE_URL_ERROR = "frame_images[0].image_url.url must be an https URL or an image data URL"


# --- rejected -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"frame_images": ["https://x/a.png"]}, "frame_images[0] must be an object"),
        ({"frame_images": [frame(type="image")]}, "frame_images[0].type must be image_url"),
        (
            {"frame_images": [{"image_url": {"url": PNG}, "frame_type": "first_frame"}]},
            "type must be image_url",
        ),
        (
            {"frame_images": [frame() | {"image_url": {}}]},
            "frame_images[0].image_url must be an object with a url",
        ),
        ({"frame_images": [frame() | {"image_url": PNG}]}, "frame_images[0].image_url must be an object"),
        ({"frame_images": [frame("http://cdn.example/a.png")]}, IMAGE_URL_ERROR),
        ({"frame_images": [frame("https://")]}, IMAGE_URL_ERROR),
        ({"frame_images": [frame("ftp://cdn.example/a.png")]}, IMAGE_URL_ERROR),
        ({"frame_images": [frame("cdn.example/a.png")]}, IMAGE_URL_ERROR),
        ({"frame_images": [frame(42)]}, IMAGE_URL_ERROR),
        ({"frame_images": [frame(MP3)]}, IMAGE_URL_ERROR),
        ({"frame_images": [frame("data:image/png;base64,%%%")]}, IMAGE_URL_ERROR),
        ({"frame_images": [frame("data:image/png;base64,AAA")]}, IMAGE_URL_ERROR),  # bad padding
        ({"frame_images": [frame("data:image/png;base64,")]}, IMAGE_URL_ERROR),
        ({"frame_images": [frame("data:image/png,rawbytes")]}, IMAGE_URL_ERROR),
        ({"frame_images": [frame("data:;base64,AA==")]}, IMAGE_URL_ERROR),
        ({"frame_images": [frame("data:image;base64,AA==")]}, IMAGE_URL_ERROR),
        (
            {"frame_images": [frame(), frame("https://cdn.example/b.png")]},
            "frame_images[1].frame_type first_frame is given more than once",
        ),
        ({"frame_images": [frame(frame_type="middle_frame")]}, "Invalid frame_type middle_frame"),
        ({"input_references": {"type": "image_url"}}, "input_references must be an array"),
        (
            {"input_references": [{"type": "text_url", "text_url": {"url": PNG}}]},
            "input_references[0].type must be one of image_url, audio_url, video_url",
        ),
        ({"input_references": [PNG]}, "input_references[0].type must be one of"),
        ({"input_references": [{"type": ["image_url"]}]}, "input_references[0].type must be one of"),
        (
            {"input_references": [{"type": "audio_url", "image_url": {"url": MP3}}]},
            "input_references[0].audio_url must be an object with a url",
        ),
        (
            {"input_references": [reference("image_url", MP4)]},
            "input_references[0].image_url.url must be an https URL or an image data URL",
        ),
        (
            {"input_references": [reference("image_url", PNG), reference("audio_url", PNG)]},
            "input_references[1].audio_url.url must be an https URL or an audio data URL",
        ),
        (
            {"input_references": [reference("video_url", "http://cdn.example/style.mp4")]},
            "input_references[0].video_url.url must be an https URL or a video data URL",
        ),
        ({"session_id": "s" * 257}, "session_id must be a string of at most 256 characters"),
        ({"session_id": 42}, "session_id must be a string"),
        ({"user": {"id": "u1"}}, "user must be a string"),
        ({"trace": "trace-1"}, "trace must be an object"),
        ({"trace": ["trace_id"]}, "trace must be an object"),
        ({"trace": {"trace_id": 7}}, "trace.trace_id must be a string"),
        ({"callback_url": "http://example.test/hook"}, "callback_url must be an https URL"),
        ({"callback_url": "http://10.0.0.1/hook"}, "callback_url must be an https URL"),
        ({"callback_url": 1}, "callback_url must be an https URL"),
        ({"provider": "google-vertex"}, "provider.options must be an object"),
        (
            {"provider": {"options": {"google-vertex": {"parameters": ["negativePrompt"]}}}},
            "provider.options.google-vertex.parameters must be an object",
        ),
    ],
)
def test_invalid_fields_are_bad_requests(
    emulator: Emulator, api: httpx.Client, fields: dict[str, Any], message: str
) -> None:
    assert_error(api.post("/videos", json={**VEO, **fields}), 400, message)
    assert emulator.control.jobs() == []


# --- accepted -------------------------------------------------------------------------------


def test_valid_media_urls_and_metadata_are_accepted(emulator: Emulator, api: httpx.Client) -> None:
    body = {
        **VEO,
        "frame_images": [
            frame("DATA:Image/JPEG;BASE64,/9j/4AAQ"),
            frame("https://cdn.example/last.png?sig=a%20b", "last_frame"),
        ],
        "input_references": [
            reference("image_url", "data:image/svg+xml;charset=utf-8;base64,PHN2Zz4="),
            reference("audio_url", MP3),
            reference("video_url", MP4),
            reference("video_url", "https://cdn.example/style.mp4"),
        ],
        "session_id": "s" * 256,
        "user": "user-1",
        "trace": {"trace_id": "t1", "span_name": "render", "cost_center": 7, "tags": ["a"]},
        "callback_url": "http://127.0.0.1:9/hook",  # nothing listens: deliveries fail locally
    }
    response = api.post("/videos", json=body)
    assert response.status_code == 202, response.text
    (job,) = emulator.control.jobs()
    assert job["request"] == body


def test_empty_metadata_strings_are_accepted(api: httpx.Client) -> None:
    assert api.post("/videos", json={**VEO, "session_id": "", "user": "", "trace": {}}).status_code == 202


# --- billing --------------------------------------------------------------------------------


def billed(emulator: Emulator, api: httpx.Client, body: dict[str, Any]) -> Any:
    """``usage.cost`` of a job for ``body`` that completes at once."""
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    submitted = api.post("/videos", json={"prompt": "p", **body})
    assert submitted.status_code == 202, submitted.text
    job = api.get(f"/videos/{submitted.json()['id']}").json()
    assert job["status"] == "completed"
    assert job["usage"]["is_byok"] is False
    return job["usage"]["cost"]


@pytest.mark.parametrize(
    ("body", "cost"),
    [
        # per-video-second[-audio]; audio defaults to the model's generate_audio capability
        ({"model": "google/veo-3.1", "duration": 8}, 3.2),
        ({"model": "google/veo-3.1", "duration": 8, "generate_audio": True}, 3.2),
        ({"model": "google/veo-3.1", "duration": 8, "generate_audio": False}, 1.6),
        ({"model": "google/veo-3.1", "duration": 8, "resolution": "1080p"}, 3.2),
        ({"model": "google/veo-3.1"}, 1.6),  # no duration: the first supported one, 4 s
        ({"model": "google/veo-3.1-fast", "duration": 6}, 0.9),
        ({"model": "google/veo-3.1-lite"}, 0.4),  # durations listed [8, 4, 6]: 8 s
        # per-video-second-<resolution>; no resolution: the first supported one
        ({"model": "kwaivgi/kling-v3.0-pro", "duration": 10}, 1.12),
        ({"model": "kwaivgi/kling-v3.0-pro", "duration": 5, "resolution": "1080p"}, 0.84),
        ({"model": "kwaivgi/kling-v3.0-pro", "duration": 5, "size": "1080x1920"}, 0.84),
        ({"model": "openai/sora-2-pro", "duration": 12, "size": "1080x1920"}, 6.0),
        ({"model": "openai/sora-2-pro"}, 1.2),
        ({"model": "alibaba/wan-2.6", "duration": 15, "resolution": "1080p"}, 2.25),
        # per-video[-<resolution>]: flat
        ({"model": "minimax/hailuo-2.3"}, 0.28),
        ({"model": "minimax/hailuo-2.3", "duration": 10, "resolution": "1080p"}, 0.49),
        ({"model": "minimax/hailuo-2.3", "size": "1920x1080"}, 0.49),
        # nothing to bill by: the emulator's default cost
        ({"model": "bytedance/seedance-2.0", "duration": 12}, 0.5),  # per-million-video-tokens
        ({"model": "alibaba/wan-2.2"}, 0.5),  # no pricing_skus
        ({"model": "alibaba/wan-2.6", "resolution": "480p"}, 0.5),  # no SKU for 480p
    ],
)
def test_cost_is_billed_from_pricing_skus(
    emulator: Emulator, api: httpx.Client, body: dict[str, Any], cost: float
) -> None:
    assert billed(emulator, api, body) == cost


def test_explicit_default_cost_wins(emulator: Emulator, api: httpx.Client) -> None:
    veo_8s = {"model": "google/veo-3.1", "duration": 8}
    assert emulator.control.set_job_defaults()["cost"] is None
    emulator.control.set_job_defaults(cost=0.42)
    assert billed(emulator, api, veo_8s) == 0.42
    emulator.control.set_job_defaults(cost=0)
    assert billed(emulator, api, veo_8s) == 0
    emulator.control.set_job_defaults(cost=None)
    assert billed(emulator, api, veo_8s) == 3.2
    emulator.control.set_job_defaults(cost=1.25)
    emulator.control.reset()
    assert billed(emulator, api, veo_8s) == 3.2


def test_cost_is_snapshotted_at_submit(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0, cost=0.42)
    job_id = api.post("/videos", json={**VEO, "duration": 8}).json()["id"]
    emulator.control.set_job_defaults(cost=None)
    assert api.get(f"/videos/{job_id}").json()["usage"]["cost"] == 0.42


@pytest.mark.parametrize(
    ("request_fields", "cost"),
    [
        ({"resolution": "1080p", "generate_audio": True}, 8.0),
        ({"resolution": "1080p", "generate_audio": False}, 4.0),
        ({"resolution": "720p", "generate_audio": True}, 5.6),
        ({"resolution": "720p", "generate_audio": False}, 1.6),
        ({"resolution": "720p"}, 1.6),  # the model record below has no audio capability
    ],
)
def test_most_specific_sku_wins(request_fields: dict[str, Any], cost: float) -> None:
    model = {
        "pricing_skus": {
            "per-video-second": "0.20",
            "per-video-second-audio": "0.70",
            "per-video-second-1080p": "0.50",
            "per-video-second-1080p-audio": "1.00",
            "per-video-second-4K": "not a price",
        },
        "supported_durations": [8],
        "supported_resolutions": ["720p", "1080p"],
        "generate_audio": None,
    }
    assert bill(model, request_fields) == cost


def test_unpriceable_requests_bill_nothing() -> None:
    veo = MODELS_BY_ID["google/veo-3.1"]
    assert bill({**veo, "supported_durations": None}, {}) is None  # per-second, no duration
    assert bill({**veo, "pricing_skus": {"per-video-second-audio": "0.4"}}, {"generate_audio": False}) is None
    assert bill({**veo, "pricing_skus": {"per-video-second": "NaN"}}, {}) is None
    assert bill({**veo, "pricing_skus": {}}, {}) is None
