from __future__ import annotations

import json
import time
from typing import Any

import pytest

try:
    from airflow.sdk.module_loading import import_string
except ImportError:  # Airflow 3.0
    from airflow.utils.module_loading import import_string  # type: ignore[no-redef, unused-ignore]
from airflow.triggers.base import TriggerEvent

from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.polling import TRIGGER_EVENT_STATUSES
from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger

BODY = {"model": "google/veo-3.1", "prompt": "waves", "duration": 4}
CLASSPATH = "airflow_provider_orvideo.triggers.openrouter_video.OpenRouterVideoTrigger"


def submit(emulator: Any) -> str:
    return OpenRouterVideoHook().submit(BODY).id


def make_trigger(job_id: str, *, deadline_in: float = 30.0, **kwargs: Any) -> OpenRouterVideoTrigger:
    return OpenRouterVideoTrigger(
        **{"job_id": job_id, "deadline": time.time() + deadline_in, "poll_interval": 0.05, **kwargs}
    )


async def events_of(trigger: OpenRouterVideoTrigger) -> list[TriggerEvent]:
    return [event async for event in trigger.run()]


def test_serialize_is_exact_json_and_round_trips() -> None:
    trigger = OpenRouterVideoTrigger(
        job_id="gen-vid-1",
        deadline=1795510800.0,
        openrouter_conn_id="my_conn",
        submitted_at=1795507200.0,
        initial_delays=[25, 10],
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {
        "job_id": "gen-vid-1",
        "deadline": 1795510800.0,
        "openrouter_conn_id": "my_conn",
        "poll_interval": 30.0,
        "submitted_at": 1795507200.0,
        "initial_delays": [25.0, 10.0],
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_kwargs_of_the_first_release_still_load() -> None:
    """A trigger serialized by 0.1.0 (no schedule kwargs) is re-created by this release."""
    legacy = {
        "job_id": "gen-vid-1",
        "deadline": 1795510800.0,
        "openrouter_conn_id": "c",
        "poll_interval": 10.0,
        "max_consecutive_failures": 5,
    }
    trigger = import_string(CLASSPATH)(**legacy)
    poller = trigger.poller()
    assert poller.submitted_at is None
    assert poller.first_delay(now=1795510000.0) == 0.0  # polls at once, then every poll_interval


def test_kwargs_hold_no_secret(emulator: Any) -> None:
    _, kwargs = make_trigger("gen-vid-1").serialize()
    assert emulator.api_key not in json.dumps(kwargs)
    assert emulator.base_url not in json.dumps(kwargs)


async def test_completed_job_yields_exactly_one_completed_event(emulator: Any) -> None:
    job_id = submit(emulator)
    events = await events_of(make_trigger(job_id))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "completed"
    assert payload["job_id"] == job_id
    assert set(payload) == {
        "version",
        "status",
        "job_id",
        "message",
        "remote_error",
        "source",
        "deadline",
        "cost",  # for the spend ledger: what OpenRouter's GET said the job cost
        "generation_id",
    }
    assert isinstance(payload["cost"], float)
    assert payload["generation_id"].startswith("gen-")
    assert payload["source"] == "poll"
    assert payload["deadline"] == pytest.approx(time.time() + 30, abs=5)  # the trigger's own deadline
    assert emulator.control.count("submit") == 1  # the trigger never submits


@pytest.mark.parametrize(
    ("outcome", "error"),
    [("failed", "Content policy violation: the prompt was flagged"), ("cancelled", None), ("expired", None)],
)
async def test_terminal_failures_carry_openrouter_error_verbatim(
    emulator: Any, outcome: str, error: str | None
) -> None:
    defaults: dict[str, Any] = {"outcome": outcome}
    if error:
        defaults["error"] = error
    emulator.control.set_job_defaults(**defaults)
    job_id = submit(emulator)
    (event,) = await events_of(make_trigger(job_id))
    assert event.payload["status"] == outcome
    assert event.payload["remote_error"]
    if error:
        assert event.payload["remote_error"] == error


async def test_deadline_yields_timeout(emulator: Any) -> None:
    emulator.control.set_job_defaults(pending_seconds=60)
    job_id = submit(emulator)
    (event,) = await events_of(make_trigger(job_id, deadline_in=0.3))
    assert event.payload["status"] == "timeout"
    assert "pending" in event.payload["message"]


async def test_deadline_already_past_still_checks_once(emulator: Any) -> None:
    """A trigger restarted after its deadline fetches a finished video rather than timing out."""
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    job_id = submit(emulator)
    (event,) = await events_of(make_trigger(job_id, deadline_in=-5))
    assert event.payload["status"] == "completed"


async def test_transient_poll_failures_are_tolerated(emulator: Any) -> None:
    job_id = submit(emulator)
    # Each poll's own HTTP retries (5 attempts) are spent twice over; the trigger tolerates it.
    # Retry-After: 0 keeps the hook's backoff from sleeping in the test.
    emulator.control.add_fault("poll", "status", status=502, retry_after="0", times=10)
    (event,) = await events_of(make_trigger(job_id))
    assert event.payload["status"] == "completed"
    assert emulator.control.count("poll") > 10


async def test_failures_are_waited_through_until_the_deadline_not_counted(emulator: Any) -> None:
    """Polls that keep failing end the wait only at the deadline (before: after 5 failed polls,
    about 40 s into an outage, with the paid job still rendering)."""
    job_id = submit(emulator)
    emulator.control.add_fault("poll", "status", status=503, retry_after="0", times=10_000)
    started = time.time()
    (event,) = await events_of(make_trigger(job_id, deadline_in=6, poll_interval=0.5))
    assert event.payload["status"] == "timeout"
    assert time.time() - started >= 5.5
    assert "503" in event.payload["message"]


async def test_404s_for_a_job_that_exists_are_waited_through(emulator: Any) -> None:
    job_id = submit(emulator)
    emulator.control.add_fault("poll", "vanish", times=3)
    (event,) = await events_of(make_trigger(job_id, poll_interval=0.2))
    assert event.payload["status"] == "completed"


async def test_unknown_status_is_polled_through(emulator: Any) -> None:
    job_id = submit(emulator)
    emulator.control.add_fault("poll", "unknown_status", value="paused", times=2)
    (event,) = await events_of(make_trigger(job_id))
    assert event.payload["status"] == "completed"


async def test_restart_from_serialized_kwargs_is_idempotent(emulator: Any) -> None:
    job_id = submit(emulator)
    first = make_trigger(job_id)
    _, kwargs = first.serialize()
    # A triggerer restart mid-poll: the first run is abandoned, a fresh one starts from kwargs.
    generator = first.run()
    import asyncio

    task = asyncio.ensure_future(generator.__anext__())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    restarted = OpenRouterVideoTrigger(**kwargs)
    (event,) = await events_of(restarted)
    assert event.payload["status"] == "completed"
    assert restarted.deadline == first.deadline
    assert emulator.control.count("submit") == 1


def test_event_statuses_match_the_contract() -> None:
    assert {"completed", "failed", "cancelled", "expired", "timeout", "error"} == TRIGGER_EVENT_STATUSES


async def test_on_kill_and_cleanup_never_touch_the_job(
    emulator: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = submit(emulator)
    requests_before = len(emulator.control.requests())
    trigger = make_trigger(job_id)
    await trigger.on_kill()
    await trigger.cleanup()
    captured = capsys.readouterr()
    logs = caplog.text + captured.out + captured.err
    # Seen once under xdist on Airflow 3.2.2 with the sentence present but not matching: the
    # whole text is shown on failure to tell what differed.
    assert f"Stopped waiting on OpenRouter video job {job_id}: either its webhook resumed" in logs, logs
    assert "the job keeps rendering (OpenRouter has no cancel endpoint) and is billed" in logs, logs
    assert len(emulator.control.requests()) == requests_before


async def test_triggers_in_one_loop_share_one_client_but_not_keys(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two connections, same server: one pooled client, each request with its own key."""
    import asyncio

    from airflow_provider_orvideo.hooks._async_sessions import shared_sessions

    monkeypatch.setenv(
        "AIRFLOW_CONN_OTHER_ACCOUNT",
        json.dumps({"conn_type": "openrouter", "host": emulator.base_url, "password": "wrong-account-key"}),
    )
    emulator.control.set_job_defaults(pending_seconds=0.3, in_progress_seconds=0.3)
    job_id = submit(emulator)
    good = [make_trigger(job_id) for _ in range(5)]
    bad = make_trigger(job_id, openrouter_conn_id="other_account")
    running = asyncio.gather(*(events_of(t) for t in [*good, bad]))
    samples = []
    while not running.done():
        samples.append([shared.users for shared in shared_sessions.sessions.values()])
        await asyncio.sleep(0.01)
    results = await running
    assert max(len(sample) for sample in samples) == 1  # never more than one session (one pool)
    assert max(sum(sample) for sample in samples) >= 5  # ... shared by the running triggers
    assert [events[0].payload["status"] for events in results] == ["completed"] * 5 + ["error"]
    assert "401" in results[-1][0].payload["message"]  # the other account's key was used, and refused
    assert shared_sessions.sessions == {}  # the last trigger closed the shared session


def test_the_trigger_for_a_poller_polls_by_the_same_decision() -> None:
    """The operator builds one JobPoller for both loops; the trigger rebuilt from its kwargs
    (after a triggerer restart) must poll by the same one."""
    from airflow_provider_orvideo.polling import JobPoller

    poller = JobPoller(
        job_id="gen-vid-1",
        deadline=2_000_000_000.0,
        poll_interval=30.0,
        submitted_at=1_999_990_000.0,
        initial_poll_delays=(30.0, 10.0),
    )
    trigger = OpenRouterVideoTrigger.for_poller(poller, "openrouter_custom")
    _, kwargs = trigger.serialize()
    assert OpenRouterVideoTrigger(**kwargs).poller() == poller
    assert kwargs["openrouter_conn_id"] == "openrouter_custom"


# -- what the webhook receiver asks of a trigger row -------------------------------------------


def test_a_serialized_trigger_is_recognised_by_the_receivers_check() -> None:
    classpath, kwargs = OpenRouterVideoTrigger(
        job_id="gen-vid-1", deadline=1795510800.0, openrouter_conn_id="c"
    ).serialize()
    assert OpenRouterVideoTrigger.waits_for(classpath, kwargs, conn_id="c", job_id="gen-vid-1")
    assert OpenRouterVideoTrigger.job_waited_for(classpath, kwargs, conn_id="c") == "gen-vid-1"
    assert OpenRouterVideoTrigger.deadline_of(kwargs) == 1795510800.0
    assert not OpenRouterVideoTrigger.waits_for(classpath, kwargs, conn_id="c", job_id="gen-vid-2")
    assert not OpenRouterVideoTrigger.waits_for(classpath, kwargs, conn_id="other", job_id="gen-vid-1")
    assert OpenRouterVideoTrigger.job_waited_for(classpath, kwargs, conn_id="other") is None


def test_the_classpath_released_so_far_is_recognised_and_no_other() -> None:
    kwargs = {"job_id": "gen-vid-1", "deadline": 1.0, "openrouter_conn_id": "c"}
    assert OpenRouterVideoTrigger.waits_for(CLASSPATH, kwargs, conn_id="c", job_id="gen-vid-1")
    for renamed in (
        "airflow_provider_orvideo.triggers.openrouter_video.OtherTrigger",
        "airflow_provider_orvideo.triggers.other.OpenRouterVideoTrigger",
        "airflow.providers.http.triggers.http.HttpTrigger",
        "",
    ):
        assert not OpenRouterVideoTrigger.waits_for(renamed, kwargs, conn_id="c", job_id="gen-vid-1")


def test_kwargs_of_the_first_release_wait_through_the_default_connection() -> None:
    legacy = {"job_id": "gen-vid-1", "deadline": 1795510800.0, "poll_interval": 10.0}
    assert OpenRouterVideoTrigger.waits_for(
        CLASSPATH, legacy, conn_id="openrouter_default", job_id="gen-vid-1"
    )
    assert not OpenRouterVideoTrigger.waits_for(CLASSPATH, legacy, conn_id="c", job_id="gen-vid-1")


@pytest.mark.parametrize("kwargs", [None, [], {}, {"job_id": ""}, {"job_id": 7}])
def test_unusable_kwargs_wait_for_nothing(kwargs: Any) -> None:
    assert OpenRouterVideoTrigger.job_waited_for(CLASSPATH, kwargs, conn_id="openrouter_default") is None


@pytest.mark.parametrize(
    ("deadline", "expected"), [(5, 5.0), (1.5, 1.5), (None, None), ("5", None), (True, None)]
)
def test_deadline_of(deadline: Any, expected: float | None) -> None:
    assert OpenRouterVideoTrigger.deadline_of({"deadline": deadline}) == expected


def test_the_receivers_import_of_the_trigger_stays_cheap() -> None:
    """The api-server imports the trigger module to check a row: no hook, no aiohttp."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import airflow_provider_orvideo.triggers.openrouter_video\n"
        "heavy = [m for m in ('aiohttp', 'airflow_provider_orvideo.hooks.openrouter_video') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
