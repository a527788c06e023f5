"""The emulator against OpenRouter's published contract, with nothing but this package's pytest
plugin: every response of every video endpoint is validated against the OpenAPI schemas vendored
in ``data/openrouter-video-openapi.json`` (the ``/videos`` paths of ``openapi/openapi.yaml`` in
github.com/OpenRouterTeam/docs at the commit its ``x-source`` names; regenerate with
``emulator/scripts/vendor_openapi.py``), and the official Python SDK drives a job end to end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

SPEC = json.loads((Path(__file__).parent / "data" / "openrouter-video-openapi.json").read_text())
SUBMIT, POLL, CONTENT, MODELS = "/videos", "/videos/{jobId}", "/videos/{jobId}/content", "/videos/models"
METHODS = {SUBMIT: "post", POLL: "get", CONTENT: "get", MODELS: "get"}


def conforms(path: str, response: httpx.Response) -> None:
    """The response matches what the spec documents for ``path`` and its status code."""
    documented = SPEC["paths"][path][METHODS[path]]["responses"]
    status = str(response.status_code)
    assert status in documented, f"{path} answered {status}; the spec documents {sorted(documented)}"
    (media_type,) = documented[status]["content"]
    assert response.headers["content-type"].split(";")[0] == media_type
    if media_type != "application/json":
        return
    schema = {**documented[status]["content"][media_type]["schema"], "components": SPEC["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(response.json()), key=str)
    assert not errors, f"{path} {status} does not match the spec: {[e.message for e in errors]}"


@pytest.fixture
def api(openrouter_emulator: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {openrouter_emulator.api_key}"}
    return httpx.Client(base_url=openrouter_emulator.base_url, headers=headers, timeout=10)


@pytest.mark.parametrize("outcome", ["completed", "failed", "cancelled", "expired"])
def test_a_job_conforms_at_every_stage(openrouter_emulator: Any, api: httpx.Client, outcome: str) -> None:
    openrouter_emulator.control.jobs_end_as(outcome)
    openrouter_emulator.control.jobs_take(0.3)
    submitted = api.post(SUBMIT, json={"model": "google/veo-3.1", "prompt": "a kite", "duration": 4})
    conforms(SUBMIT, submitted)
    job_id = submitted.json()["id"]
    seen = set()
    while True:
        polled = api.get(f"/videos/{job_id}")
        conforms(POLL, polled)
        seen.add(polled.json()["status"])
        if polled.json()["status"] == outcome:
            break
    assert {"pending", outcome} <= seen
    if outcome == "completed":
        conforms(CONTENT, api.get(f"/videos/{job_id}/content", params={"index": 0}))


def test_the_model_list_conforms(api: httpx.Client) -> None:
    conforms(MODELS, api.get(MODELS))


def test_a_job_without_a_cost_conforms(openrouter_emulator: Any, api: httpx.Client) -> None:
    openrouter_emulator.control.jobs_without_cost()
    openrouter_emulator.control.jobs_take(0)
    job_id = api.post(SUBMIT, json={"model": "google/veo-3.1", "prompt": "a kite"}).json()["id"]
    polled = api.get(f"/videos/{job_id}")
    conforms(POLL, polled)
    assert polled.json()["usage"]["cost"] is None


@pytest.mark.parametrize(
    ("path", "request_", "status"),
    [
        (SUBMIT, {"json": {"model": "google/veo-3.1", "prompt": "p", "duration": 5}}, 400),
        (
            SUBMIT,
            {"json": {"model": "google/veo-3.1", "prompt": "p"}, "headers": {"Authorization": "Bearer nope"}},
            401,
        ),
        (POLL, {"headers": {"Authorization": "Bearer nope"}}, 401),
        (POLL, {}, 404),
        (CONTENT, {}, 404),
    ],
)
def test_errors_conform(api: httpx.Client, path: str, request_: dict[str, Any], status: int) -> None:
    url = path.replace("{jobId}", "gen-vid-0000000000-AAAAAAAAAAAAAAAAAAAA")
    response = api.request(METHODS[path].upper(), url, **request_)
    assert response.status_code == status, response.text
    conforms(path, response)


FAULTABLE = [
    (endpoint, path, int(status))
    for endpoint, path in (("submit", SUBMIT), ("poll", POLL), ("content", CONTENT), ("models", MODELS))
    for status in SPEC["paths"][path][METHODS[path]]["responses"]
    if status in ("429", "500", "502")
]


@pytest.mark.parametrize(("endpoint", "path", "status"), FAULTABLE)
def test_scripted_faults_the_spec_documents_conform(
    openrouter_emulator: Any, api: httpx.Client, endpoint: str, path: str, status: int
) -> None:
    openrouter_emulator.control.jobs_take(0)
    job_id = api.post(SUBMIT, json={"model": "google/veo-3.1", "prompt": "p"}).json()["id"]
    openrouter_emulator.control.fail_requests(endpoint, status)  # type: ignore[arg-type]
    url = path.replace("{jobId}", job_id)
    body = {"json": {"model": "google/veo-3.1", "prompt": "p"}} if path == SUBMIT else {}
    response = api.request(METHODS[path].upper(), url, **body)
    assert response.status_code == status
    conforms(path, response)


def test_scripted_404s_of_a_rendering_job_conform(openrouter_emulator: Any, api: httpx.Client) -> None:
    openrouter_emulator.control.jobs_take(0.3)
    job_id = api.post(SUBMIT, json={"model": "google/veo-3.1", "prompt": "p"}).json()["id"]
    openrouter_emulator.control.fail_requests("poll", 404, times=3)
    for _ in range(3):
        response = api.get(POLL.replace("{jobId}", job_id))
        assert response.status_code == 404
        conforms(POLL, response)
        time.sleep(0.15)
    response = api.get(POLL.replace("{jobId}", job_id))
    conforms(POLL, response)
    assert response.json()["status"] == "completed"


def test_an_outage_window_through_the_plugin(openrouter_emulator: Any, api: httpx.Client) -> None:
    control = openrouter_emulator.control
    started = time.monotonic()
    control.outage(1.0)
    assert api.post(SUBMIT, json={"model": "google/veo-3.1", "prompt": "p"}).status_code == 503
    assert api.get(MODELS).status_code == 503
    time.sleep(max(0.0, started + 1.05 - time.monotonic()))
    assert api.post(SUBMIT, json={"model": "google/veo-3.1", "prompt": "p"}).status_code == 202
    assert [r["status"] for r in control.requests()] == [503, 503, 202]


def test_the_official_sdk_drives_a_job_end_to_end(openrouter_emulator: Any) -> None:
    openrouter = pytest.importorskip("openrouter", reason="the official SDK (pip install openrouter)")
    openrouter_emulator.control.jobs_take(0)
    with openrouter.OpenRouter(
        api_key=openrouter_emulator.api_key, server_url=openrouter_emulator.base_url
    ) as sdk:
        submitted = sdk.video_generation.generate(model="google/veo-3.1", prompt="a kite", duration=4)
        job = sdk.video_generation.get_generation(job_id=submitted.id)
        assert job.status == "completed"
        content = sdk.video_generation.get_video_content(job_id=job.id, index=0)
        assert content.read()[4:8] == b"ftyp"
