"""The emulator over real HTTP: lifecycle, auth, validation, downloads, faults, control API."""

from __future__ import annotations

import json
import re
import socket
import struct
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from orvideo_emulator import EmulatorControl, EmulatorServer
from orvideo_emulator.models import VIDEO_MODELS
from orvideo_emulator.mp4 import VideoFile, sample_bytes

from tests.conftest import Emulator

SAMPLE_SIZE = len(sample_bytes())
JOB_ID = re.compile(r"gen-vid-\d{10}-[A-Za-z0-9]{20}")


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=5) as client:
        yield client


def submit(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/videos", json={"model": "google/veo-3.1", "prompt": "a cat", **fields})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def completed_job(emulator: Emulator, api: httpx.Client, **defaults: Any) -> dict[str, Any]:
    """Submit a job that is finished as soon as it exists, and poll it once."""
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0, **defaults)
    job = api.get(f"/videos/{submit(api)['id']}").json()
    assert isinstance(job, dict)
    return job


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> dict[str, Any]:
    """Check the OpenRouter error envelope and return ``error``."""
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "openrouter_metadata", "user_id"}
    assert body["error"]["code"] == status
    assert isinstance(body["error"]["message"], str)
    if message is not None:
        assert message in body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def top_level_boxes(data: bytes) -> list[tuple[str, int]]:
    """``(type, size)`` of each top-level MP4 box; sizes must tile the file exactly."""
    boxes, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[offset + 8 : offset + 16])
        assert size >= 8
        boxes.append((kind.decode(), size))
        offset += size
    assert offset == len(data)
    return boxes


# --- lifecycle ------------------------------------------------------------------------------


def test_submit_poll_download(emulator: Emulator, api: httpx.Client) -> None:
    submitted = submit(api, duration=8)
    assert set(submitted) == {"id", "polling_url", "status"}
    assert JOB_ID.fullmatch(submitted["id"])
    assert submitted["polling_url"] == f"{emulator.base_url}/videos/{submitted['id']}"
    assert submitted["status"] == "pending"

    statuses: list[str] = []
    deadline = time.monotonic() + 5
    while not statuses or statuses[-1] != "completed":
        assert time.monotonic() < deadline
        job = httpx.get(submitted["polling_url"], headers=api.headers).json()
        if not statuses or statuses[-1] != job["status"]:
            statuses.append(job["status"])
        if job["status"] == "pending":
            assert set(job) == {"id", "polling_url", "status"}
        else:
            assert re.fullmatch(r"gen-\d{10}-[A-Za-z0-9]{20}", job["generation_id"])
        time.sleep(0.05)
    assert statuses == ["pending", "in_progress", "completed"]
    assert job["usage"] == {"cost": 3.2, "is_byok": False}  # veo-3.1 8 s with audio: $0.40 x 8
    assert job["unsigned_urls"] == [f"{emulator.base_url}/videos/{job['id']}/content?index=0"]
    assert len(job["urls"]) == 1
    assert job["expires_at"] > time.time()

    response = api.get(job["unsigned_urls"][0])
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.content[4:8] == b"ftyp"
    kinds = [kind for kind, _ in top_level_boxes(response.content)]
    assert kinds[0] == "ftyp"
    assert kinds.index("moov") < kinds.index("mdat")  # playable while it streams
    assert b"avc1" in response.content  # H.264


def test_status_follows_the_injected_clock() -> None:
    now = [1_000.0]
    with EmulatorServer(
        api_key="k", pending_seconds=10, in_progress_seconds=20, clock=lambda: now[0]
    ) as server:
        headers = {"Authorization": "Bearer k"}
        with httpx.Client(base_url=server.base_url, headers=headers) as client:
            job = client.post("/videos", json={"model": "openai/sora-2-pro", "prompt": "p"}).json()
            assert job["id"].startswith("gen-vid-1000-")

            def status_at(t: float) -> str:
                now[0] = t
                status: str = client.get(f"/videos/{job['id']}").json()["status"]
                return status

            assert [status_at(t) for t in (1_009.9, 1_010, 1_029.9, 1_030)] == [
                "pending",
                "in_progress",
                "in_progress",
                "completed",
            ]
            signed = client.get(f"/videos/{job['id']}").json()["urls"][0]
            assert httpx.get(signed).status_code == 200
            now[0] = 1_030 + 24 * 3600
            assert_error(httpx.get(signed), 401, "expired")
            assert client.get(f"/videos/{job['id']}/content").status_code == 200


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        ("failed", "Content policy violation"),
        ("cancelled", "Job was cancelled"),
        ("expired", "Job exceeded maximum time to live"),
    ],
)
def test_unsuccessful_outcomes(emulator: Emulator, api: httpx.Client, outcome: str, error: str) -> None:
    job = completed_job(emulator, api, outcome=outcome)
    assert job["status"] == outcome
    assert job["error"] == error
    assert "unsigned_urls" not in job
    assert "usage" not in job
    assert_error(api.get(f"/videos/{job['id']}/content"), 409, outcome)


def test_custom_error_and_cost(emulator: Emulator, api: httpx.Client) -> None:
    assert completed_job(emulator, api, outcome="failed", error="Provider overloaded")["error"] == (
        "Provider overloaded"
    )
    emulator.control.set_job_defaults(outcome="completed", cost=1.25)
    assert api.get(f"/videos/{submit(api)['id']}").json()["usage"]["cost"] == 1.25


def test_content_before_completion_is_conflict(api: httpx.Client) -> None:
    job = submit(api)
    assert_error(api.get(f"/videos/{job['id']}/content"), 409, "pending")


def test_unknown_job_is_not_found(api: httpx.Client) -> None:
    assert_error(api.get("/videos/gen-vid-1-nope"), 404, "gen-vid-1-nope")
    assert_error(api.get("/videos/gen-vid-1-nope/content"), 404)


def test_multiple_outputs(emulator: Emulator, api: httpx.Client) -> None:
    job = completed_job(emulator, api, outputs=3)
    assert [url.rsplit("=", 1)[1] for url in job["unsigned_urls"]] == ["0", "1", "2"]
    assert len(job["urls"]) == 3
    assert api.get(job["unsigned_urls"][2]).content[4:8] == b"ftyp"
    assert_error(api.get(f"/videos/{job['id']}/content", params={"index": 3}), 404, "no output 3")
    for bad_index in ("x", "-1", "²"):
        assert_error(api.get(f"/videos/{job['id']}/content", params={"index": bad_index}), 400, "index")


def test_gone_output(emulator: Emulator, api: httpx.Client) -> None:
    job = completed_job(emulator, api, gone=True)
    assert job["status"] == "completed"
    assert "urls" not in job
    assert "expires_at" not in job
    assert_error(api.get(job["unsigned_urls"][0]), 410)


# --- auth -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [({}, "No auth credentials found"), ({"Authorization": "Bearer wrong"}, "Invalid API key")],
)
def test_auth_required(emulator: Emulator, api: httpx.Client, headers: dict[str, str], message: str) -> None:
    job = completed_job(emulator, api)
    with httpx.Client(base_url=emulator.base_url, headers=headers) as anonymous:
        assert_error(anonymous.post("/videos", json={"model": "google/veo-3.1", "prompt": "p"}), 401, message)
        assert_error(anonymous.get(f"/videos/{job['id']}"), 401, message)
        assert_error(anonymous.get(f"/videos/{job['id']}/content"), 401, message)
        assert anonymous.get("/videos/models").status_code == 200
    assert len(emulator.control.jobs()) == 1


def test_signed_urls_work_without_auth(emulator: Emulator, api: httpx.Client) -> None:
    job = completed_job(emulator, api, outputs=2)
    signed = job["urls"][0]
    assert httpx.get(signed).content == api.get(job["unsigned_urls"][0]).content
    sig = re.search(r"sig=([0-9a-f]+)", signed)
    assert sig is not None
    assert_error(httpx.get(signed.replace(sig[1], "0" * len(sig[1]))), 401, "signed URL")
    assert_error(httpx.get(signed.replace("index=0", "index=1")), 401)
    assert_error(httpx.get(re.sub(r"exp=\d+", "exp=9999999999", signed)), 401)
    assert httpx.get(job["urls"][1]).status_code == 200
    assert_error(httpx.get(signed.replace(sig[1], "é")), 401)


def test_non_ascii_credentials_are_rejected_not_crashing(emulator: Emulator, api: httpx.Client) -> None:
    job = completed_job(emulator, api)
    latin1 = {b"Authorization": "Bearer clé".encode("latin-1")}
    assert_error(httpx.get(f"{emulator.base_url}/videos/{job['id']}", headers=latin1), 401, "Invalid API key")


# --- validation -----------------------------------------------------------------------------

VEO = {"model": "google/veo-3.1", "prompt": "p"}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"prompt": "p"}, 400, "model is required"),
        ({"model": "acme/nope", "prompt": "p"}, 400, "Model acme/nope is not a video model"),
        ({"model": "google/veo-3.1"}, 400, "prompt is required"),
        ({**VEO, "prompt": 3}, 400, "prompt must be a string"),
        ({**VEO, "duration": 7}, 400, "Invalid duration 7 for model google/veo-3.1. Supported: 4, 6, 8"),
        ({**VEO, "duration": "8"}, 400, "duration must be a positive integer"),
        (
            {"model": "google/veo-3.1-lite", "prompt": "p", "duration": 5},
            400,
            "Supported: 8, 4, 6",
        ),
        ({**VEO, "resolution": "4K"}, 400, "Invalid resolution 4K for model google/veo-3.1"),
        ({**VEO, "aspect_ratio": "1:1"}, 400, "Invalid aspect_ratio 1:1"),
        ({**VEO, "size": "640x480"}, 400, "Invalid size 640x480"),
        (
            {
                "model": "minimax/hailuo-2.3",
                "prompt": "p",
                "frame_images": [
                    {"type": "image_url", "image_url": {"url": "https://x/a.png"}, "frame_type": "last_frame"}
                ],
            },
            400,
            "Invalid frame_type last_frame for model minimax/hailuo-2.3. Supported: first_frame",
        ),
        ({**VEO, "frame_images": [{"frame_type": "first_frame"}]}, 400, "image_url"),
        ({"model": "kwaivgi/kling-v3.0-pro", "prompt": "p", "seed": 1}, 400, "does not support seed"),
        ({**VEO, "seed": 1.5}, 400, "seed must be an integer"),
        (
            {"model": "minimax/hailuo-2.3", "prompt": "p", "generate_audio": True},
            400,
            "does not support generate_audio",
        ),
        ({**VEO, "generate_audio": "yes"}, 400, "generate_audio must be a boolean"),
        (
            {**VEO, "provider": {"options": {"google-vertex": {"parameters": {"cfg_scale": 2}}}}},
            400,
            "Parameter cfg_scale is not allowed for model google/veo-3.1",
        ),
        ({**VEO, "provider": {"options": []}}, 400, "provider.options"),
        ({**VEO, "upscale_factor": 2}, 400, "upscaling"),
        ({**VEO, "previous_job_id": "gen-vid-1-missing"}, 404, "gen-vid-1-missing not found"),
        ([VEO], 400, "JSON object"),
    ],
)
def test_validation_errors(
    emulator: Emulator, api: httpx.Client, body: Any, status: int, message: str
) -> None:
    assert_error(api.post("/videos", json=body), status, message)
    assert emulator.control.jobs() == []


def test_invalid_json_is_bad_request(emulator: Emulator, api: httpx.Client) -> None:
    response = api.post("/videos", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "valid JSON")
    assert emulator.control.requests("submit")[0]["body"] is None


def test_full_sdk_style_body_is_accepted(emulator: Emulator, api: httpx.Client) -> None:
    body = {
        "model": "google/veo-3.1",
        "aspect_ratio": "16:9",
        "callback_url": "http://127.0.0.1:9/hook",  # nothing listens: deliveries fail locally
        "duration": 8,
        "frame_images": [
            {
                "image_url": {"url": "https://example.test/a.png"},
                "type": "image_url",
                "frame_type": "first_frame",
            }
        ],
        "generate_audio": True,
        "input_references": [{"image_url": {"url": "https://example.test/ref.png"}, "type": "image_url"}],
        "prompt": "p",
        "provider": {"options": {"google-vertex": {"parameters": {"negativePrompt": "blurry"}}}},
        "resolution": "1080p",
        "seed": 7,
        "size": "1920x1080",
    }
    assert api.post("/videos", json=body).status_code == 202
    (job,) = emulator.control.jobs()
    assert job["request"] == body
    assert job["model"] == "google/veo-3.1"
    assert emulator.control.requests("submit")[0]["body"] == body


def test_image_only_submit_needs_no_prompt(api: httpx.Client) -> None:
    frames = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}, "frame_type": "first_frame"}
    ]
    assert api.post("/videos", json={"model": "alibaba/wan-2.6", "frame_images": frames}).status_code == 202


def test_previous_job_rules(emulator: Emulator, api: httpx.Client) -> None:
    pending = submit(api)
    assert_error(api.post("/videos", json={**VEO, "previous_job_id": pending["id"]}), 409, "not completed")
    done = completed_job(emulator, api)
    other_model = {"model": "google/veo-3.1-fast", "prompt": "p", "previous_job_id": done["id"]}
    assert_error(api.post("/videos", json=other_model), 400, "generated by google/veo-3.1")
    assert submit(api, previous_job_id=done["id"])["status"] == "pending"


def test_oversized_body_rejected_from_header_alone(emulator: Emulator) -> None:
    """Only headers are sent: a server that tried to read the body would hang, not answer."""
    head = (
        "POST /api/v1/videos HTTP/1.1\r\nHost: emulator\r\n"
        f"Authorization: Bearer {emulator.api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {50 * 1024 * 1024 + 1}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", emulator.server.port), timeout=5) as sock:
        sock.sendall(head.encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head_bytes, _, body = raw.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in head_bytes
    assert json.loads(body)["error"]["code"] == 413
    assert emulator.control.jobs() == []
    (logged,) = emulator.control.requests("submit")
    assert (logged["status"], logged["body"]) == (413, None)


def test_exactly_the_limit_is_not_rejected_early(emulator: Emulator, api: httpx.Client) -> None:
    prompt = "x" * (50 * 1024 * 1024 - 64)
    body = json.dumps({"model": "google/veo-3.1", "prompt": prompt}).encode()
    assert len(body) <= 50 * 1024 * 1024
    assert api.post("/videos", content=body).status_code == 202


# --- models ---------------------------------------------------------------------------------

VIDEO_MODEL_KEYS = {
    "id",
    "canonical_slug",
    "name",
    "description",
    "created",
    "supported_resolutions",
    "supported_aspect_ratios",
    "supported_sizes",
    "supported_durations",
    "supported_frame_images",
    "generate_audio",
    "seed",
    "upscale_factor",
    "creativity",
    "allowed_passthrough_parameters",
    "hugging_face_id",
    "pricing_skus",
}


def test_models_catalogue(emulator: Emulator) -> None:
    response = httpx.get(f"{emulator.base_url}/videos/models")  # no Authorization header
    assert response.status_code == 200
    models = response.json()["data"]
    assert models == VIDEO_MODELS
    ids = {model["id"] for model in models}
    assert {
        "google/veo-3.1",
        "google/veo-3.1-fast",
        "kwaivgi/kling-v3.0-pro",
        "bytedance/seedance-2.0",
        "openai/sora-2-pro",
        "minimax/hailuo-2.3",
        "alibaba/wan-2.6",
    } <= ids
    for model in models:
        assert set(model) == VIDEO_MODEL_KEYS, model["id"]
    # null: the upscaling model declares neither (the SDK types both as nullable)
    assert {model["seed"] for model in models} == {True, False, None}
    assert {model["generate_audio"] for model in models} == {True, False, None}
    (upscaler,) = [model for model in models if model["upscale_factor"] is not None]
    assert upscaler["creativity"]
    assert upscaler["upscale_factor"]["min"] < upscaler["upscale_factor"]["max"]
    assert len({tuple(model["supported_durations"] or ()) for model in models}) >= 4
    assert len({key for model in models for key in model["pricing_skus"] or {}}) >= 5


# --- downloads ------------------------------------------------------------------------------


def test_byte_ranges(emulator: Emulator, api: httpx.Client) -> None:
    url = completed_job(emulator, api, render=False)["unsigned_urls"][0]  # the sample: known size
    full = api.get(url).content

    def fetch(range_header: str) -> httpx.Response:
        return api.get(url, headers={"Range": range_header})

    first = fetch("bytes=0-99")
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-99/{SAMPLE_SIZE}"
    assert first.headers["content-type"] == "video/mp4"
    assert first.content == full[:100]
    assert fetch("bytes=100-").content == full[100:]
    assert fetch("bytes=-10").content == full[-10:]
    assert fetch(f"bytes=10-{SAMPLE_SIZE + 500}").content == full[10:]
    assert fetch("bytes=oops").status_code == 200
    unsatisfiable = fetch(f"bytes={SAMPLE_SIZE}-")
    assert_error(unsatisfiable, 416)
    assert unsatisfiable.headers["content-range"] == f"bytes */{SAMPLE_SIZE}"


def test_padded_output_is_exact_and_still_mp4(emulator: Emulator, api: httpx.Client) -> None:
    url = completed_job(emulator, api, output_size=200_000)["unsigned_urls"][0]
    response = api.get(url)
    assert int(response.headers["content-length"]) == len(response.content) == 200_000
    assert response.content[:SAMPLE_SIZE] == sample_bytes()
    assert top_level_boxes(response.content) == [
        *top_level_boxes(sample_bytes()),
        ("free", 200_000 - SAMPLE_SIZE),
    ]


def test_huge_output_uses_a_64_bit_free_box(emulator: Emulator, api: httpx.Client) -> None:
    size = 5 * 1024**3
    url = completed_job(emulator, api, output_size=size)["unsigned_urls"][0]
    with api.stream("GET", url) as response:
        assert int(response.headers["content-length"]) == size
    header = api.get(url, headers={"Range": f"bytes={SAMPLE_SIZE}-{SAMPLE_SIZE + 15}"}).content
    assert header == struct.pack(">I4sQ", 1, b"free", size - SAMPLE_SIZE)
    tail = api.get(url, headers={"Range": "bytes=-16"})
    assert tail.headers["content-range"] == f"bytes {size - 16}-{size - 1}/{size}"
    assert tail.content == bytes(16)


def test_large_download_streams_in_bounded_memory(emulator: Emulator, api: httpx.Client) -> None:
    size = 64 * 1024 * 1024
    url = completed_job(emulator, api, output_size=size)["unsigned_urls"][0]
    tracemalloc.start()
    try:
        received = 0
        with api.stream("GET", url) as response:
            for chunk in response.iter_raw(1024 * 1024):
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == size
    assert peak < 16 * 1024 * 1024


def test_video_file_boundaries() -> None:
    sample = sample_bytes()
    assert VideoFile(sample).size == SAMPLE_SIZE
    padded = VideoFile(sample, SAMPLE_SIZE + 8)
    assert b"".join(padded.iter_range(0, padded.size, chunk_size=7)) == sample + struct.pack(
        ">I4s", 8, b"free"
    )
    for bad in (SAMPLE_SIZE - 1, SAMPLE_SIZE + 7):
        with pytest.raises(ValueError, match="output_size"):
            VideoFile(sample, bad)


# --- faults ---------------------------------------------------------------------------------


def test_status_fault_before_create(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.add_fault("submit", "status", status=429, retry_after="7")
    response = api.post("/videos", json=VEO)
    error = assert_error(response, 429, "Rate limit exceeded")
    assert error["metadata"] == {"error_type": "rate_limit_exceeded"}
    assert response.headers["retry-after"] == "7"
    assert emulator.control.jobs() == []
    assert submit(api)["status"] == "pending"
    assert [r["fault"] for r in emulator.control.requests("submit")] == ["status", None]


def test_status_fault_after_create(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.add_fault("submit", "status", status=500, after_create=True, message="boom")
    assert_error(api.post("/videos", json={**VEO, "duration": 7}), 400)  # leaves the fault queued
    error = assert_error(api.post("/videos", json=VEO), 500, "boom")
    assert error["metadata"] == {"error_type": "server"}
    assert len(emulator.control.jobs()) == 1


def test_status_fault_times(emulator: Emulator, api: httpx.Client) -> None:
    job = submit(api)
    emulator.control.add_fault("poll", "status", status=503, times=2, metadata=None)
    assert assert_error(api.get(f"/videos/{job['id']}"), 503)["metadata"] is None
    assert_error(api.get(f"/videos/{job['id']}"), 503)
    assert api.get(f"/videos/{job['id']}").status_code == 200


def test_faults_are_fifo_per_endpoint(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.add_fault("models", "status", status=502)
    emulator.control.add_fault("models", "status", status=504)
    emulator.control.add_fault("any", "status", status=500)
    assert [api.get("/videos/models").status_code for _ in range(4)] == [502, 504, 500, 200]


def test_any_fault_applies_to_every_endpoint(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.add_fault("any", "status", status=500, times=2)
    assert_error(api.post("/videos", json=VEO), 500)
    assert_error(api.get("/videos/whatever"), 500)
    assert api.get("/videos/models").status_code == 200


def test_reset_fault_sends_a_tcp_reset(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.add_fault("models", "reset")
    request = b"GET /api/v1/videos/models HTTP/1.1\r\nHost: emulator\r\n\r\n"
    with socket.create_connection(("127.0.0.1", emulator.server.port), timeout=5) as sock:
        sock.sendall(request)
        with pytest.raises(ConnectionResetError):
            sock.recv(65536)
    (logged,) = emulator.control.requests("models")
    assert (logged["status"], logged["fault"]) == (None, "reset")


def test_reset_fault_on_submit(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.add_fault("submit", "reset")
    with pytest.raises(httpx.ReadError):
        api.post("/videos", json=VEO)
    assert emulator.control.jobs() == []
    emulator.control.add_fault("submit", "reset", after_create=True)
    with pytest.raises(httpx.ReadError):
        api.post("/videos", json=VEO)
    assert len(emulator.control.jobs()) == 1


def test_delay_fault(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.add_fault("models", "delay", seconds=0.6)
    with pytest.raises(httpx.ReadTimeout):
        api.get("/videos/models", timeout=0.15)
    emulator.control.add_fault("models", "delay", seconds=0.1)
    started = time.monotonic()
    assert api.get("/videos/models").status_code == 200
    assert time.monotonic() - started >= 0.1


def test_reset_discards_requests_held_by_a_delay(emulator: Emulator, api: httpx.Client) -> None:
    """A client that timed out on a delayed submit must not leak a job into the next test."""
    emulator.control.add_fault("submit", "delay", seconds=0.3)
    with pytest.raises(httpx.ReadTimeout):
        api.post("/videos", json=VEO, timeout=0.05)
    assert emulator.control.requests()[0]["status"] is None  # still held
    emulator.control.reset()
    time.sleep(0.4)
    assert emulator.control.jobs() == []
    assert emulator.control.requests() == []


def test_malformed_json_fault(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.add_fault("submit", "malformed_json", after_create=True)
    response = api.post("/videos", json=VEO)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert len(emulator.control.jobs()) == 1


def test_unknown_status_fault(emulator: Emulator, api: httpx.Client) -> None:
    job = submit(api)
    emulator.control.add_fault("poll", "unknown_status")
    emulator.control.add_fault("poll", "unknown_status", value="queued_for_review")
    assert_error(api.get("/videos/gen-vid-1-missing"), 404)  # a failing poll doesn't consume it
    assert api.get(f"/videos/{job['id']}").json()["status"] == "paused"
    polled = api.get(f"/videos/{job['id']}").json()
    assert polled["status"] == "queued_for_review"
    assert polled["id"] == job["id"]
    assert api.get(f"/videos/{job['id']}").json()["status"] == "pending"


def test_truncate_fault(emulator: Emulator, api: httpx.Client) -> None:
    url = completed_job(emulator, api, render=False)["unsigned_urls"][0]  # the sample: known size
    emulator.control.add_fault("content", "truncate")
    emulator.control.add_fault("content", "truncate", truncate_at=100)
    received = bytearray()

    def download() -> None:
        with api.stream("GET", url) as response:
            assert int(response.headers["content-length"]) == SAMPLE_SIZE
            for chunk in response.iter_raw():
                received.extend(chunk)

    for expected in (SAMPLE_SIZE // 2, 100):
        received.clear()
        with pytest.raises(httpx.RemoteProtocolError, match="without sending complete message body"):
            download()
        assert bytes(received) == sample_bytes()[:expected]
    assert len(api.get(url).content) == SAMPLE_SIZE


def test_vanish_fault(emulator: Emulator, api: httpx.Client) -> None:
    job = completed_job(emulator, api)
    emulator.control.add_fault("poll", "vanish")
    emulator.control.add_fault("content", "vanish")
    assert_error(api.get(f"/videos/{job['id']}"), 404, job["id"])
    assert_error(api.get(job["unsigned_urls"][0]), 404, job["id"])
    assert api.get(f"/videos/{job['id']}").status_code == 200
    assert api.get(job["unsigned_urls"][0]).status_code == 200


@pytest.mark.parametrize(
    "fault",
    [
        {"endpoint": "poll", "kind": "truncate"},
        {"endpoint": "submit", "kind": "vanish"},
        {"endpoint": "any", "kind": "unknown_status"},
        {"endpoint": "poll", "kind": "status", "status": 500, "after_create": True},
        {"endpoint": "submit", "kind": "delay", "seconds": 1, "after_create": True},
        {"endpoint": "poll", "kind": "status"},
        {"endpoint": "poll", "kind": "status", "status": 200},
        {"endpoint": "poll", "kind": "status", "status": 500, "statsu": 1},
        {"endpoint": "poll", "kind": "delay"},
        {"endpoint": "poll", "kind": "reset", "times": 0},
        {"endpoint": "elsewhere", "kind": "reset"},
        {"endpoint": "poll", "kind": "explode"},
    ],
)
def test_invalid_faults_are_rejected(emulator: Emulator, fault: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError, match="400"):
        emulator.control.add_fault(**fault)


# --- control API and request log ------------------------------------------------------------


def test_request_log_redacts_the_key(emulator: Emulator, api: httpx.Client) -> None:
    job = submit(api, duration=4)
    api.get(f"/videos/{job['id']}", params={"verbose": "1"})
    httpx.get(f"{emulator.base_url}/videos/{job['id']}", headers={"Authorization": "Bearer wrong"})
    api.get("/videos/models")
    api.get("/elsewhere")
    log = emulator.control.requests()
    assert emulator.api_key not in json.dumps(log)
    assert [(r["method"], r["endpoint"], r["status"]) for r in log] == [
        ("POST", "submit", 202),
        ("GET", "poll", 200),
        ("GET", "poll", 401),
        ("GET", "models", 200),
        ("GET", "other", 404),
    ]
    assert log[0]["headers"]["authorization"] == "<redacted>"
    assert log[0]["body"] == {"model": "google/veo-3.1", "prompt": "a cat", "duration": 4}
    assert log[1]["query"] == {"verbose": "1"}
    assert [r["authorized"] for r in log[:3]] == [True, True, False]
    assert log[0]["time"] <= log[-1]["time"]
    assert emulator.control.count("poll") == 2
    assert emulator.control.count("submit", "post") == 1
    assert emulator.control.count("submit", "GET") == 0


def test_wrong_method_and_unknown_route(api: httpx.Client) -> None:
    assert_error(api.delete("/videos/gen-vid-1-x"), 405)
    assert_error(api.get("/videos"), 405)
    assert_error(api.get("/nowhere"), 404)


@pytest.mark.parametrize(
    ("extra_header", "status"),
    [("Transfer-Encoding: chunked", 411), ("Content-Length: -5", 400)],
)
def test_unusable_framing_gets_the_envelope_and_a_close(
    emulator: Emulator, extra_header: str, status: int
) -> None:
    request = f"POST /api/v1/videos HTTP/1.1\r\nHost: emulator\r\n{extra_header}\r\n\r\n0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", emulator.server.port), timeout=5) as sock:
        sock.sendall(request.encode())
        raw = b""
        while chunk := sock.recv(65536):  # returns b"" (EOF) only if the server closes
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert json.loads(body)["error"]["code"] == status


def test_reset_restores_constructor_defaults(emulator: Emulator, api: httpx.Client) -> None:
    defaults = emulator.control.set_job_defaults(outcome="failed", outputs=2)
    assert (defaults["outcome"], defaults["outputs"], defaults["pending_seconds"]) == ("failed", 2, 0.2)
    emulator.control.add_fault("models", "status", status=500)
    submit(api)
    emulator.control.reset()
    assert emulator.control.jobs() == []
    assert emulator.control.requests() == []
    assert api.get("/videos/models").status_code == 200
    submit(api)
    assert emulator.control.jobs()[0]["settings"]["outcome"] == "completed"


@pytest.mark.parametrize(
    "fields",
    [
        {"outcome": "exploded"},
        {"pending_seconds": -1},
        {"in_progress_seconds": "soon"},
        {"outputs": 0},
        {"outputs": 10**9},
        {"output_size": SAMPLE_SIZE + 3},
        {"gone": "yes"},
        {"colour": "blue"},
    ],
)
def test_invalid_job_defaults_are_rejected(emulator: Emulator, fields: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError, match="400"):
        emulator.control.set_job_defaults(**fields)


def test_control_accepts_base_url_or_origin(emulator: Emulator) -> None:
    for url in (emulator.base_url, emulator.server.origin, f"{emulator.server.origin}/"):
        with EmulatorControl(url) as control:
            assert control.jobs() == []


def test_stop_closes_keep_alive_connections_and_the_port() -> None:
    server = EmulatorServer().start()
    port = server.port
    with httpx.Client(base_url=server.base_url) as client:
        assert client.get("/videos/models").status_code == 200
        server.stop()
        with pytest.raises(httpx.TransportError):
            client.get("/videos/models")
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
