"""Outages scripted by time over real HTTP: fault windows (``for_seconds``), alone and with
``times``, on one endpoint or ``any``; scripted 404s of a job that exists; the request log of
faulted requests; jobs that keep their timeline while the API is down."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from orvideo_emulator.faults import Fault, FaultBook, parse_fault

from tests.conftest import Emulator
from tests.emulator.test_server import assert_error, submit

VEO = {"model": "google/veo-3.1", "prompt": "a cat"}
WINDOW = 2.0


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=5) as client:
        yield client


def sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def call_every_endpoint(api: httpx.Client, job_id: str) -> list[httpx.Response]:
    """One request to each API endpoint: submit, poll, content, models."""
    return [
        api.post("/videos", json=VEO),
        api.get(f"/videos/{job_id}"),
        api.get(f"/videos/{job_id}/content"),
        api.get("/videos/models"),
    ]


# --- windows over every endpoint -----------------------------------------------------------------


def test_a_503_window_hits_every_endpoint_then_service_resumes(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    job_id = submit(api)["id"]
    started = time.monotonic()
    emulator.control.outage(WINDOW, retry_after=5)
    for _ in range(3):
        for response in call_every_endpoint(api, job_id):
            error = assert_error(response, 503, "No available providers")
            assert error["metadata"] == {"error_type": "server"}
            assert response.headers["retry-after"] == "5"
        time.sleep(0.2)
    assert time.monotonic() - started < WINDOW, "the machine was too slow to test inside the window"
    assert len(emulator.control.jobs()) == 1  # a submit refused by the outage creates no job

    sleep_until(started + WINDOW + 0.05)
    statuses = [r.status_code for r in call_every_endpoint(api, job_id)]
    assert statuses == [202, 200, 200, 200]

    # The log shows the outage: every faulted request with its status, and the POSTs it cost.
    log = emulator.control.requests()
    assert [(r["status"], r["fault"]) for r in log[1:13]] == [(503, "status")] * 12
    assert [(r["status"], r["fault"]) for r in log[13:]] == [
        (202, None),
        (200, None),
        (200, None),
        (200, None),
    ]
    assert emulator.control.count("submit", "POST") == 5
    assert [r["status"] for r in emulator.control.requests("submit")] == [202, 503, 503, 503, 202]


def test_a_reset_window_drops_every_connection_then_service_resumes(
    emulator: Emulator, api: httpx.Client
) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    job_id = submit(api)["id"]
    started = time.monotonic()
    emulator.control.outage(WINDOW, kind="reset")
    requests = [
        ("POST", "/videos", VEO),
        ("GET", f"/videos/{job_id}", None),
        ("GET", f"/videos/{job_id}/content", None),
        ("GET", "/videos/models", None),
    ]
    for _ in range(2):
        for method, path, body in requests:
            with pytest.raises(httpx.ReadError):
                api.request(method, path, json=body)
    assert time.monotonic() - started < WINDOW, "the machine was too slow to test inside the window"
    assert len(emulator.control.jobs()) == 1

    sleep_until(started + WINDOW + 0.05)
    assert [api.request(m, p, json=b).status_code for m, p, b in requests] == [202, 200, 200, 200]
    log = emulator.control.requests()
    assert [(r["status"], r["fault"]) for r in log[1:9]] == [(None, "reset")] * 8
    assert [r["fault"] for r in log[9:]] == [None] * 4


def test_a_window_on_one_endpoint_spares_the_others(emulator: Emulator, api: httpx.Client) -> None:
    job_id = submit(api)["id"]
    emulator.control.drop_connections("submit", for_seconds=WINDOW)
    emulator.control.fail_requests("models", 502, for_seconds=WINDOW)
    for _ in range(3):
        with pytest.raises(httpx.ReadError):
            api.post("/videos", json=VEO)
        assert_error(api.get("/videos/models"), 502)
        assert api.get(f"/videos/{job_id}").status_code == 200


# --- windows and counts ------------------------------------------------------------------------


def test_times_ends_a_window_early(emulator: Emulator, api: httpx.Client) -> None:
    job_id = submit(api)["id"]
    stored = emulator.control.add_fault("poll", "status", status=503, times=3, for_seconds=30)
    assert (stored["times"], stored["for_seconds"]) == (3, 30)
    assert [api.get(f"/videos/{job_id}").status_code for _ in range(5)] == [503, 503, 503, 200, 200]


def test_a_window_ends_a_count_early(emulator: Emulator, api: httpx.Client) -> None:
    job_id = submit(api)["id"]
    started = time.monotonic()
    emulator.control.fail_requests("poll", 503, times=1000, for_seconds=2.0)
    failed = 0
    # Polls sent in the first second land well inside the 2 s window, even on a loaded machine
    # (a 0.1 s margin failed once under a CI run with other work on both cores).
    while time.monotonic() - started < 1.0:
        assert_error(api.get(f"/videos/{job_id}"), 503)
        failed += 1
        time.sleep(0.01)  # well under the count of 1,000 in that second
    sleep_until(started + 2.1)
    assert api.get(f"/videos/{job_id}").status_code == 200
    assert 0 < failed < 1000


def test_a_window_runs_while_queued_behind_another_fault(emulator: Emulator, api: httpx.Client) -> None:
    """The window starts when it is scripted, not when it reaches the head of its queue; one that
    ended while waiting is dropped without ever applying."""
    emulator.control.fail_requests("models", 500)
    emulator.control.fail_requests("models", 503, for_seconds=0.4)
    started = time.monotonic()
    assert api.get("/videos/models").status_code == 500
    assert api.get("/videos/models").status_code == 503
    sleep_until(started + 0.45)
    assert api.get("/videos/models").status_code == 200

    emulator.control.fail_requests("models", 500)
    emulator.control.drop_connections("models", for_seconds=0.2)
    time.sleep(0.25)
    assert [api.get("/videos/models").status_code for _ in range(2)] == [500, 200]


def test_slow_window(emulator: Emulator, api: httpx.Client) -> None:
    started = time.monotonic()
    emulator.control.slow_requests("models", 0.15, for_seconds=0.5)
    for _ in range(2):
        before = time.monotonic()
        assert api.get("/videos/models").status_code == 200
        assert time.monotonic() - before >= 0.15
    sleep_until(started + 0.55)
    before = time.monotonic()
    assert api.get("/videos/models").status_code == 200
    assert time.monotonic() - before < 0.15


def test_rate_limit_window(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.rate_limit(for_seconds=WINDOW, retry_after=3)
    for _ in range(3):
        response = api.post("/videos", json=VEO)
        assert_error(response, 429, "Rate limit exceeded")
        assert response.headers["retry-after"] == "3"
    assert emulator.control.jobs() == []


def test_existing_count_signatures_still_mean_one_request(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.fail_requests("models", 500)
    emulator.control.drop_connections("models")
    emulator.control.rate_limit("models", times=2)
    assert api.get("/videos/models").status_code == 500
    with pytest.raises(httpx.ReadError):
        api.get("/videos/models")
    assert [api.get("/videos/models").status_code for _ in range(3)] == [429, 429, 200]


# --- the job keeps its timeline ----------------------------------------------------------------


def test_a_job_keeps_its_timeline_during_an_outage(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.set_job_defaults(pending_seconds=0.3, in_progress_seconds=0.5)
    job_id = submit(api)["id"]
    started = time.monotonic()
    emulator.control.outage(WINDOW)
    (job,) = emulator.control.jobs()
    assert job["finished_at"] - job["created_at"] == pytest.approx(0.8)
    assert job["status"] == "pending"
    while time.monotonic() - started < 1.2:
        assert_error(api.get(f"/videos/{job_id}"), 503)
        time.sleep(0.1)
    (job,) = emulator.control.jobs()
    assert job["status"] == "completed"  # finished on time, though nobody could see it
    assert time.monotonic() - started < WINDOW, "the machine was too slow to test inside the window"

    sleep_until(started + WINDOW + 0.05)
    polled = api.get(f"/videos/{job_id}").json()
    assert polled["status"] == "completed"
    assert api.get(polled["unsigned_urls"][0]).status_code == 200
    polls = emulator.control.requests("poll")
    assert [r["status"] for r in polls][-1] == 200
    assert {r["status"] for r in polls[:-1]} == {503}


def test_a_job_keeps_its_timeline_during_a_reset_outage(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.set_job_defaults(pending_seconds=0.2, in_progress_seconds=0.3)
    job_id = submit(api)["id"]
    started = time.monotonic()
    emulator.control.outage(1.0, kind="reset")
    with pytest.raises(httpx.ReadError):
        api.get(f"/videos/{job_id}")
    sleep_until(started + 1.05)
    assert api.get(f"/videos/{job_id}").json()["status"] == "completed"


# --- a job that exists answers 404 --------------------------------------------------------------


def test_scripted_404s_of_an_existing_job_while_it_renders(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.set_job_defaults(pending_seconds=0.3, in_progress_seconds=0.4)
    job_id = submit(api)["id"]
    emulator.control.fail_requests("poll", 404, times=12)
    seen = set()
    for _ in range(12):
        error = assert_error(api.get(f"/videos/{job_id}"), 404, f"Job {job_id} not found")
        assert error["metadata"] is None
        seen.add(emulator.control.jobs()[0]["status"])
        time.sleep(0.08)
    assert {"pending", "in_progress", "completed"} <= seen  # it rendered meanwhile
    polled = api.get(f"/videos/{job_id}").json()
    assert (polled["id"], polled["status"]) == (job_id, "completed")
    assert [r["status"] for r in emulator.control.requests("poll")] == [404] * 12 + [200]
    # A message given explicitly is kept; other endpoints' 404s keep the generic one.
    emulator.control.fail_requests("poll", 404, message="gone for now")
    assert_error(api.get(f"/videos/{job_id}"), 404, "gone for now")
    emulator.control.fail_requests("submit", 404)
    assert_error(api.post("/videos", json=VEO), 404, "Not found")


# --- validation and the fault book --------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"for_seconds": 0},
        {"for_seconds": -1},
        {"for_seconds": "2"},
        {"for_seconds": True},
        {"for_seconds": 10**9},
        {"times": None},
        {"times": 0, "for_seconds": 1},
        {"times": 1.5, "for_seconds": 1},
    ],
)
def test_invalid_windows_are_rejected(emulator: Emulator, fields: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError, match="400"):
        emulator.control.add_fault("poll", "reset", **fields)


def test_outage_kind_is_checked(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="kind"):
        emulator.control.outage(1, kind="502")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry_after"):
        emulator.control.outage(1, kind="reset", retry_after=1)


def test_stored_window_fault(emulator: Emulator) -> None:
    stored = emulator.control.add_fault("any", "status", status=503, times=None, for_seconds=120)
    assert stored == {
        "endpoint": "any",
        "kind": "status",
        "times": None,
        "for_seconds": 120.0,
        "after_create": False,
        "status": 503,
    }


def window_fault(for_seconds: float, **fields: Any) -> Fault:
    return parse_fault({"endpoint": "any", "kind": "reset", "for_seconds": for_seconds, **fields})


def test_fault_book_windows_on_an_injected_clock() -> None:
    now = [100.0]
    book = FaultBook(clock=lambda: now[0])
    book.add(window_fault(10))
    now[0] = 109.999
    assert all(book.take(endpoint, "request") for endpoint in ("submit", "poll", "content", "models"))
    assert book.take("poll", "response") is None
    now[0] = 110.0  # the window is half-open: [added, added + for_seconds)
    assert book.take("poll", "request") is None

    book.add(window_fault(10, times=2))
    assert book.take("poll", "request") is not None
    assert book.take("poll", "request") is not None
    assert book.take("poll", "request") is None
