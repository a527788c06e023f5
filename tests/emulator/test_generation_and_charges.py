"""The emulator's own billing, over real HTTP: failed jobs that are billed (``failed_cost``), every
charge listed (``GET /_emulator/charges``: job, generation, USD, when, UTC day, DAG), and
OpenRouter's generation record (``GET /api/v1/generation?id=``), which says a job's cost even
when its poll view does not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from orvideo_emulator import EmulatorControl, EmulatorServer

from tests.conftest import Emulator
from tests.emulator.test_server import assert_error, completed_job, submit

GENERATION_FIELDS = {
    # Every field OpenRouter's schema of GET /generation requires.
    "id",
    "upstream_id",
    "total_cost",
    "cache_discount",
    "upstream_inference_cost",
    "created_at",
    "model",
    "app_id",
    "streamed",
    "cancelled",
    "provider_name",
    "latency",
    "moderation_latency",
    "generation_time",
    "finish_reason",
    "tokens_prompt",
    "tokens_completion",
    "native_tokens_prompt",
    "native_tokens_completion",
    "native_tokens_completion_images",
    "native_tokens_reasoning",
    "native_tokens_cached",
    "num_media_prompt",
    "num_input_audio_prompt",
    "num_media_completion",
    "num_search_results",
    "origin",
    "usage",
    "is_byok",
    "native_finish_reason",
    "external_user",
    "api_type",
}
TRACE = {"trace_id": "airflow:films:run1", "airflow_dag_id": "films", "airflow_task_id": "render"}


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=5) as client:
        yield client


def generation(api: httpx.Client, generation_id: str) -> dict[str, Any]:
    response = api.get("/generation", params={"id": generation_id})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"data"}
    return body["data"]


# -- failed jobs that are billed ------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["failed", "cancelled", "expired"])
def test_a_job_ending_without_a_video_is_billed_when_told(
    emulator: Emulator, api: httpx.Client, outcome: Any
) -> None:
    emulator.control.jobs_end_as(outcome, cost=0.2)
    job = completed_job(emulator, api)
    assert job["status"] == outcome
    assert job["usage"] == {"cost": 0.2, "is_byok": False}
    assert "unsigned_urls" not in job
    (charge,) = emulator.control.charges()
    assert (charge["job_id"], charge["generation_id"], charge["usd"]) == (
        job["id"],
        job["generation_id"],
        0.2,
    )
    assert api.get("/key").json()["data"]["usage"] == pytest.approx(0.2)  # counted as spend too
    record = generation(api, job["generation_id"])
    assert (record["total_cost"], record["usage"], record["finish_reason"]) == (0.2, 0.2, outcome)
    assert record["cancelled"] is (outcome == "cancelled")


def test_a_failed_job_costs_nothing_by_default(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.jobs_end_as("failed", cost=0.2)
    emulator.control.jobs_end_as("failed")  # scripting the outcome again drops the cost
    job = completed_job(emulator, api)
    assert job["status"] == "failed"
    assert "usage" not in job
    assert emulator.control.charges() == []
    assert generation(api, job["generation_id"])["total_cost"] == 0.0  # on record, charged nothing


def test_a_billed_failure_without_a_reported_cost(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.jobs_end_as("failed", cost=0.35)
    emulator.control.jobs_without_cost()
    job = completed_job(emulator, api)
    assert job["usage"] == {"cost": None, "is_byok": False}
    assert generation(api, job["generation_id"])["total_cost"] == 0.35
    assert [c["usd"] for c in emulator.control.charges()] == [0.35]


def test_failed_cost_is_checked(emulator: Emulator) -> None:
    for value in (-1, "0.2", True):
        with pytest.raises(RuntimeError, match="failed_cost must be a finite number >= 0"):
            emulator.control.set_job_defaults(failed_cost=value)
    assert emulator.control.set_job_defaults(failed_cost=0)["failed_cost"] == 0.0
    with pytest.raises(ValueError, match="jobs_cost"):
        emulator.control.jobs_end_as("completed", cost=1.0)


# -- the emulator's own billing -------------------------------------------------------------------------


def test_charges_list_every_billed_job_with_its_day_and_dag(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    emulator.control.jobs_cost(0.75)
    traced = submit(api, trace=TRACE)
    untraced = submit(api)
    emulator.control.jobs_end_as("failed")  # not billed: not a charge
    submit(api, trace=TRACE)
    emulator.control.jobs_end_as("completed")
    emulator.control.set_job_defaults(in_progress_seconds=60)  # still rendering: not yet a charge
    submit(api, trace=TRACE)
    charges = emulator.control.charges()
    assert [(c["job_id"], c["usd"], c["dag_id"]) for c in charges] == [
        (traced["id"], 0.75, "films"),
        (untraced["id"], 0.75, None),
    ]
    jobs = {job["id"]: job for job in emulator.control.jobs()}
    for charge in charges:
        assert charge["at"] == jobs[charge["job_id"]]["finished_at"]
        assert charge["day"] == datetime.fromtimestamp(charge["at"], tz=timezone.utc).strftime("%Y-%m-%d")
        assert charge["generation_id"] == api.get(f"/videos/{charge['job_id']}").json()["generation_id"]
    emulator.control.reset()
    assert emulator.control.charges() == []
    assert_error(api.get("/generation", params={"id": charges[0]["generation_id"]}), 404)


def test_a_charge_is_dated_by_the_utc_day_its_job_ended() -> None:
    """A job submitted before midnight UTC and ending after it is billed on the new day."""
    midnight = datetime(2026, 12, 6, tzinfo=timezone.utc).timestamp()
    now = [midnight - 1.0]
    with (
        EmulatorServer(
            api_key="k", pending_seconds=0.5, in_progress_seconds=1.0, clock=lambda: now[0]
        ) as server,
        EmulatorControl(server.origin) as control,
        httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer k"}) as client,
    ):
        job = client.post("/videos", json={"model": "google/veo-3.1", "prompt": "p", "duration": 4}).json()
        assert control.charges() == []
        now[0] = midnight + 0.5
        (charge,) = control.charges()
        assert (charge["job_id"], charge["at"], charge["day"]) == (job["id"], midnight + 0.5, "2026-12-06")
        assert charge["usd"] == pytest.approx(1.6)  # veo-3.1 with audio: $0.40/s x 4 s
        record = client.get("/generation", params={"id": charge["generation_id"]}).json()["data"]
        assert record["created_at"] == "2026-12-05T23:59:59+00:00"
        assert record["generation_time"] == 1500


# -- GET /api/v1/generation --------------------------------------------------------------------------


def test_the_generation_record_has_openrouters_fields(emulator: Emulator, api: httpx.Client) -> None:
    job = completed_job(emulator, api, cost=0.5)
    record = generation(api, job["generation_id"])
    assert set(record) == GENERATION_FIELDS
    assert record["id"] == job["generation_id"]
    assert (record["total_cost"], record["usage"], record["is_byok"]) == (0.5, 0.5, False)
    assert (record["model"], record["provider_name"], record["finish_reason"]) == (
        "google/veo-3.1",
        "Google",
        "completed",
    )
    assert record["num_media_completion"] == 1
    created = datetime.fromisoformat(record["created_at"])
    assert created.tzinfo is not None
    assert abs(created.timestamp() - time.time()) < 60


def test_the_generation_record_says_the_cost_the_job_does_not(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.jobs_without_cost()
    job = completed_job(emulator, api)
    assert job["usage"]["cost"] is None
    (charge,) = emulator.control.charges()
    assert generation(api, job["generation_id"])["total_cost"] == charge["usd"] == pytest.approx(1.6)


def test_the_generation_record_answers_like_openrouter_otherwise(
    emulator: Emulator, api: httpx.Client
) -> None:
    assert_error(
        api.get("/generation", params={"id": "gen-0-unknown"}), 404, "Generation gen-0-unknown not found"
    )
    assert_error(api.get("/generation"), 400, "id is required")
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=60)
    rendering = submit(api)
    generation_id = api.get(f"/videos/{rendering['id']}").json()["generation_id"]
    assert_error(api.get("/generation", params={"id": generation_id}), 404)  # stored once finished
    job = completed_job(emulator, api)
    url = f"{emulator.base_url}/generation"
    assert_error(httpx.get(url, params={"id": job["generation_id"]}), 401, "No auth credentials found")
    wrong = {"Authorization": "Bearer wrong"}
    assert_error(httpx.get(url, params={"id": job["generation_id"]}, headers=wrong), 401, "Invalid API key")
    assert_error(api.post("/generation", params={"id": job["generation_id"]}), 405)
    assert [r["status"] for r in emulator.control.requests("generation")] == [404, 400, 404, 401, 401]


def test_faults_reach_the_generation_endpoint(emulator: Emulator, api: httpx.Client) -> None:
    job = completed_job(emulator, api)
    emulator.control.fail_requests("generation", 503, times=1)
    assert_error(api.get("/generation", params={"id": job["generation_id"]}), 503)
    assert generation(api, job["generation_id"])["id"] == job["generation_id"]
    emulator.control.outage(5.0)
    assert_error(api.get("/generation", params={"id": job["generation_id"]}), 503)
    assert [r["fault"] for r in emulator.control.requests("generation")] == ["status", None, "status"]
