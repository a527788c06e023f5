"""``OpenRouterVideoHook.get_generation``: OpenRouter's generation record (``GET /generation?id=``),
the bill of a job whose poll view may not say it. The pure parser, then the hook against the
emulator: its cost when the job object says ``usage.cost: null``, a billed failure, the retry
engine's handling of transient answers and the typed errors of final ones."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_orvideo._internal.api import (
    ConnectionSettings,
    Endpoint,
    GenerationRecord,
    generation_request,
    parse_generation,
)
from airflow_provider_orvideo.exceptions import (
    OpenRouterAuthError,
    OpenRouterNotFoundError,
    OpenRouterResponseError,
    OpenRouterServerError,
)
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.retry import RetryPolicy

FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.02)
BODY = {"model": "google/veo-3.1", "prompt": "a lighthouse at dawn", "duration": 4}


@pytest.fixture
def hook(emulator: Any) -> OpenRouterVideoHook:
    emulator.control.set_job_defaults(pending_seconds=0.05, in_progress_seconds=0.1)
    return OpenRouterVideoHook(retry_policy=FAST)


def ended(hook: OpenRouterVideoHook, job_id: str) -> Any:
    for _ in range(200):
        job = hook.get_job(job_id)
        if job.status not in ("pending", "in_progress"):
            return job
        time.sleep(0.02)
    raise AssertionError("the job never ended")


# -- the request and the parser -------------------------------------------------------------------------


def test_the_request_carries_the_id_in_the_query() -> None:
    request = generation_request("gen-1-a&b=c")
    assert (request.endpoint, request.method, request.path) == (Endpoint.GENERATION, "GET", "/generation")
    settings = ConnectionSettings(base_url="https://openrouter.ai/api/v1", api_key="k")
    assert request.url(settings) == "https://openrouter.ai/api/v1/generation?id=gen-1-a%26b%3Dc"
    assert request.describe() == "GET /generation"  # logged: never the query
    assert Endpoint.GENERATION.idempotent
    with pytest.raises(ValueError, match="non-empty"):
        generation_request("")


def test_the_parser_reads_openrouters_answer() -> None:
    record = parse_generation(
        {
            "data": {
                "id": "gen-1",
                "total_cost": 1.6,
                "usage": 1.6,
                "model": "google/veo-3.1",
                "created_at": "2026-12-05T23:59:59.5+00:00",
                "is_byok": False,
            }
        }
    )
    assert record == GenerationRecord(
        "gen-1", 1.6, "google/veo-3.1", datetime(2026, 12, 5, 23, 59, 59, 500000, tzinfo=timezone.utc)
    )
    # total_cost missing: usage is the same figure; neither: unknown
    assert parse_generation({"data": {"id": "g", "usage": 0.3}}).total_cost == 0.3
    assert parse_generation({"data": {"id": "g"}}) == GenerationRecord("g", None, None, None)
    assert parse_generation({"data": {"id": "g", "total_cost": 0}}).total_cost == 0.0
    for nonsense in (-1, "1.6", True, math.nan, math.inf, None):
        assert parse_generation({"data": {"id": "g", "total_cost": nonsense}}).total_cost is None
    for payload in (None, [], {"data": None}, {"data": {"total_cost": 1}}, {"data": {"id": ""}}):
        with pytest.raises(OpenRouterResponseError, match="GET /generation"):
            parse_generation(payload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@given(
    data=st.fixed_dictionaries(
        {"id": st.text(min_size=1, max_size=12)},
        optional={key: JSON for key in ("total_cost", "usage", "model", "created_at")},
    )
)
def test_any_answer_with_an_id_parses_to_a_finite_cost_or_none(data: dict[str, Any]) -> None:
    record = parse_generation({"data": data})
    assert record.id == data["id"]
    assert record.total_cost is None or (math.isfinite(record.total_cost) and record.total_cost >= 0)
    assert record.model is None or isinstance(record.model, str)
    assert record.created_at is None or record.created_at.tzinfo is not None


# -- against the emulator ---------------------------------------------------------------------------------


def test_the_bill_of_a_job_whose_poll_does_not_say_it(hook: OpenRouterVideoHook, emulator: Any) -> None:
    emulator.control.jobs_without_cost()
    job = ended(hook, hook.submit(BODY).id)
    assert job.status == "completed"
    assert job.cost is None
    assert job.generation_id
    record = hook.get_generation(job.generation_id)
    (charge,) = emulator.control.charges()
    assert record.id == job.generation_id == charge["generation_id"]
    assert record.total_cost == charge["usd"] == pytest.approx(1.6)  # veo-3.1 with audio, 4 s
    assert record.model == "google/veo-3.1"
    assert record.created_at is not None
    assert abs(record.created_at.timestamp() - time.time()) < 60
    assert emulator.control.requests("generation")[0]["query"] == {"id": job.generation_id}


def test_a_billed_failure_and_an_unbilled_one(hook: OpenRouterVideoHook, emulator: Any) -> None:
    emulator.control.jobs_end_as("failed", cost=0.2)
    billed = ended(hook, hook.submit(BODY).id)
    assert (billed.status, billed.cost) == ("failed", 0.2)
    assert hook.get_generation(billed.generation_id or "").total_cost == 0.2
    emulator.control.jobs_end_as("failed")
    free = ended(hook, hook.submit(BODY).id)
    assert free.cost is None
    assert hook.get_generation(free.generation_id or "").total_cost == 0.0


def test_transient_answers_are_retried(hook: OpenRouterVideoHook, emulator: Any) -> None:
    job = ended(hook, hook.submit(BODY).id)
    emulator.control.fail_requests("generation", 503, times=2, retry_after=0)
    assert hook.get_generation(job.generation_id or "").total_cost == pytest.approx(1.6)
    assert [r["status"] for r in emulator.control.requests("generation")] == [503, 503, 200]
    emulator.control.fail_requests("generation", 500, times=3, retry_after=0)
    with pytest.raises(OpenRouterServerError, match=r"the generation record request \(GET /generation\)"):
        hook.get_generation(job.generation_id or "")


def test_final_answers_are_typed_errors(hook: OpenRouterVideoHook, emulator: Any, monkeypatch: Any) -> None:
    with pytest.raises(OpenRouterNotFoundError, match="Generation gen-0-nothing not found") as raised:
        hook.get_generation("gen-0-nothing")
    assert raised.value.http_status == 404
    assert emulator.control.count("generation") == 1  # a 404 is not retried
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=60)
    rendering = hook.submit(BODY)
    generation_id = hook.get_job(rendering.id).generation_id or ""
    with pytest.raises(OpenRouterNotFoundError):  # stored once the job has ended
        hook.get_generation(generation_id)
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPENROUTER_DEFAULT",
        json.dumps({"conn_type": "openrouter", "host": emulator.base_url, "password": "wrong-key"}),
    )
    with pytest.raises(OpenRouterAuthError, match="HTTP 401: Invalid API key"):
        OpenRouterVideoHook(retry_policy=FAST).get_generation(generation_id)
