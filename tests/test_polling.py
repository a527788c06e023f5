from __future__ import annotations

import math
import os
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_orvideo._internal.api import VideoJob
from airflow_provider_orvideo.exceptions import (
    OpenRouterAuthError,
    OpenRouterNotFoundError,
    OpenRouterResponseError,
    OpenRouterServerError,
    OpenRouterTransportError,
    TriggerEventError,
)
from airflow_provider_orvideo.polling import (
    TRIGGER_EVENT_STATUSES,
    EventStatus,
    JobPoller,
    PollSchedule,
    PollState,
    VideoJobEvent,
    confirm_webhook,
    terminal_event,
)

JOB_ID = "gen-vid-1-abc"
POLLER = JobPoller(job_id=JOB_ID, deadline=1000.0, poll_interval=10.0)


def job(status: str, error: str | None = None) -> VideoJob:
    return VideoJob(id=JOB_ID, status=status, error=error)


def test_event_statuses_are_a_closed_set() -> None:
    assert {"completed", "failed", "cancelled", "expired", "timeout", "error"} == TRIGGER_EVENT_STATUSES


@pytest.mark.parametrize("status", ["pending", "in_progress"])
def test_running_job_keeps_polling_at_the_interval(status: str) -> None:
    step = POLLER.on_job(PollState(), job(status), now=100.0)
    assert step.event is None
    assert step.delay == 10.0
    assert step.log_message == f"OpenRouter video job {JOB_ID} is {status}."


def test_status_change_is_logged_once() -> None:
    first = POLLER.on_job(PollState(), job("pending"), now=100.0)
    second = POLLER.on_job(first.state, job("pending"), now=110.0)
    third = POLLER.on_job(second.state, job("in_progress"), now=120.0)
    assert second.log_message is None
    assert third.log_message is not None
    assert third.state.polls == 3


def test_last_poll_lands_on_the_deadline() -> None:
    step = POLLER.on_job(PollState(), job("in_progress"), now=996.0)
    assert step.delay == 4.0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("completed", EventStatus.COMPLETED),
        ("failed", EventStatus.FAILED),
        ("cancelled", EventStatus.CANCELLED),
        ("expired", EventStatus.EXPIRED),
    ],
)
def test_terminal_status_ends_with_its_event(status: str, expected: EventStatus) -> None:
    error = None if status == "completed" else "Content policy violation"
    step = POLLER.on_job(PollState(), job(status, error), now=100.0)
    assert step.event is not None
    assert step.event.status is expected
    assert step.event.remote_error == error
    assert step.delay is None
    if error:
        assert error in step.event.message


def test_terminal_status_wins_over_a_passed_deadline() -> None:
    # The video is done: fetch it, even if we polled late.
    step = POLLER.on_job(PollState(), job("completed"), now=5000.0)
    assert step.event is not None
    assert step.event.status is EventStatus.COMPLETED


def test_deadline_gives_timeout_naming_the_last_status() -> None:
    step = POLLER.on_job(PollState(), job("in_progress"), now=1000.0)
    assert step.event is not None
    assert step.event.status is EventStatus.TIMEOUT
    assert "in_progress" in step.event.message
    assert "may still render and bill" in step.event.message


def test_unknown_status_keeps_polling_with_a_warning() -> None:
    step = POLLER.on_job(PollState(), job("paused"), now=100.0)
    assert step.event is None
    assert step.delay == 10.0
    assert step.warning is not None
    assert "'paused'" in step.warning


@pytest.mark.parametrize(
    "error",
    [
        OpenRouterTransportError("reset"),
        OpenRouterServerError("boom", http_status=502, api_message="boom"),
        OpenRouterResponseError("not json"),
    ],
)
def test_transient_errors_back_off_until_the_deadline_never_a_count(error: Exception) -> None:
    state = PollState(last_status="in_progress")
    delays = []
    for expected_failures in range(1, 51):
        step = POLLER.on_error(state, error, now=100.0)  # type: ignore[arg-type]
        assert step.event is None
        assert step.warning is not None
        assert f"({expected_failures} in a row)" in step.warning
        assert "until the deadline" in step.warning
        assert step.state.consecutive_failures == expected_failures
        delays.append(step.delay)
        state = step.state
    assert delays[:4] == [2.0, 4.0, 8.0, 10.0]  # doubling, capped at the poll interval
    assert set(delays[4:]) == {10.0}
    final = POLLER.on_error(state, error, now=1000.0)  # type: ignore[arg-type]
    assert final.event is not None
    assert final.event.status is EventStatus.TIMEOUT
    assert "the last 51 polls failed" in final.event.message


def test_a_404_about_our_job_is_waited_through_not_proof_it_is_gone() -> None:
    gone = OpenRouterNotFoundError("gone", http_status=404, api_message="Job not found")
    step = POLLER.on_error(PollState(last_status="pending"), gone, now=100.0)
    assert step.event is None
    assert step.warning is not None
    assert "404" in step.warning
    assert "not proof" in step.warning
    at_deadline = POLLER.on_error(step.state, gone, now=1000.0)
    assert at_deadline.event is not None
    assert at_deadline.event.status is EventStatus.TIMEOUT
    assert "may still render and bill" in at_deadline.event.message


@given(jitter=st.floats(min_value=0.0, max_value=0.999), failures=st.integers(min_value=1, max_value=10_000))
def test_the_failure_backoff_is_jittered_within_half_and_capped(jitter: float, failures: int) -> None:
    delay = POLLER.failure_delay(failures, jitter, now=100.0)
    full = min(10.0, 2.0 * 2 ** min(failures - 1, 30))
    assert full / 2 <= delay <= full


def test_a_good_poll_resets_the_failure_count() -> None:
    failed = POLLER.on_error(PollState(), OpenRouterTransportError("reset"), now=100.0)
    recovered = POLLER.on_job(failed.state, job("pending"), now=110.0)
    assert recovered.state.consecutive_failures == 0


@pytest.mark.parametrize(
    "error",
    [
        OpenRouterAuthError("bad key", http_status=401, api_message="bad key"),
    ],
)
def test_permanent_errors_end_at_once(error: Exception) -> None:
    step = POLLER.on_error(PollState(), error, now=100.0)  # type: ignore[arg-type]
    assert step.event is not None
    assert step.event.status is EventStatus.ERROR
    assert "refused" in step.event.message


def test_transient_error_past_deadline_times_out() -> None:
    step = POLLER.on_error(PollState(), OpenRouterTransportError("reset"), now=1000.0)
    assert step.event is not None
    assert step.event.status is EventStatus.TIMEOUT


def test_event_round_trip_is_json_primitives_only() -> None:
    event = VideoJobEvent(EventStatus.FAILED, JOB_ID, "it failed", remote_error="Content policy violation")
    payload = event.to_payload()
    assert payload == {
        "version": 1,
        "status": "failed",
        "job_id": JOB_ID,
        "message": "it failed",
        "remote_error": "Content policy violation",
        "source": "poll",
    }
    assert VideoJobEvent.from_payload(payload) == event
    # An event written by a release before ``source`` existed reads as a poll's.
    del payload["source"]
    assert VideoJobEvent.from_payload(payload) == event
    webhook = VideoJobEvent(EventStatus.COMPLETED, JOB_ID, "done", source="webhook")
    assert VideoJobEvent.from_payload(webhook.to_payload()).from_webhook
    # A webhook's event carries its trigger's deadline; one from a receiver before that has none.
    hinted = VideoJobEvent(EventStatus.COMPLETED, JOB_ID, "done", source="webhook", deadline=1_800_000_000.5)
    assert hinted.to_payload()["deadline"] == 1_800_000_000.5
    assert VideoJobEvent.from_payload(hinted.to_payload()) == hinted
    assert VideoJobEvent.from_payload({**hinted.to_payload(), "deadline": 1_800_000_000}).deadline == 1.8e9
    assert VideoJobEvent.from_payload(webhook.to_payload()).deadline is None


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled", "expired"])
def test_terminal_event_is_the_same_for_polls_and_webhooks(status: str) -> None:
    polled = terminal_event(JOB_ID, status, None if status == "completed" else "nope")
    hooked = terminal_event(JOB_ID, status, None if status == "completed" else "nope", source="webhook")
    assert polled is not None
    assert hooked is not None
    assert (polled.status.value, polled.message) == (status, hooked.message)
    assert (polled.source, hooked.source) == ("poll", "webhook")


@pytest.mark.parametrize("status", ["pending", "in_progress", "rendering", ""])
def test_terminal_event_is_none_while_running_or_unknown(status: str) -> None:
    assert terminal_event(JOB_ID, status, None) is None


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (None, "no usable event"),
        ("completed", "no usable event"),
        ({"status": "success", "job_id": JOB_ID}, "expected one of"),
        ({"status": "completed"}, "carries no job_id"),
        ({"status": "completed", "job_id": JOB_ID, "version": 99}, "newer than this provider"),
        ({"status": "completed", "job_id": JOB_ID, "source": "email"}, "expected 'poll' or 'webhook'"),
        ({"status": "completed", "job_id": JOB_ID, "deadline": "soon"}, "has deadline 'soon'"),
        ({"status": "completed", "job_id": JOB_ID, "deadline": True}, "has deadline True"),
        ({"status": "completed", "job_id": JOB_ID, "deadline": math.inf}, "has deadline inf"),
    ],
)
def test_untrustworthy_events_are_rejected(payload: object, fragment: str) -> None:
    with pytest.raises(TriggerEventError, match=fragment):
        VideoJobEvent.from_payload(payload)


def test_event_from_an_older_trigger_without_version_is_accepted() -> None:
    event = VideoJobEvent.from_payload({"status": "completed", "job_id": JOB_ID})
    assert event.status is EventStatus.COMPLETED


SCHEDULE = PollSchedule.build(30.0, (25.0, 10.0))


@pytest.mark.parametrize(
    ("after", "expected"),
    [(0.0, 25.0), (24.9, 25.0), (25.0, 35.0), (34.0, 35.0), (35.0, 65.0), (64.0, 65.0), (100.0, 125.0)],
)
def test_schedule_is_anchored_at_submission(after: float, expected: float) -> None:
    assert SCHEDULE.next_poll_at(submitted_at=0.0, after=after) == expected


def test_initial_delays_are_capped_at_the_interval() -> None:
    assert PollSchedule.build(0.5, (25.0, 10.0)) == PollSchedule(0.5, (0.5, 0.5))


def test_scheduled_poller_waits_for_the_first_check_then_follows_the_schedule() -> None:
    poller = JobPoller(
        JOB_ID, deadline=1000.0, poll_interval=30.0, submitted_at=100.0, initial_poll_delays=(25.0, 10.0)
    )
    assert poller.first_delay(100.2) == pytest.approx(24.8)
    assert poller.first_delay(500.0) == 0.0  # restarted long after: poll at once
    assert poller.on_job(PollState(), job("pending"), now=125.1).delay == pytest.approx(9.9)
    assert poller.on_job(PollState(), job("in_progress"), now=135.0).delay == pytest.approx(30.0)
    assert poller.on_job(PollState(), job("in_progress"), now=990.0).delay == pytest.approx(10.0)  # deadline


# -- a webhook is a hint, never a verdict (issue 22) --------------------------------------------

DEADLINE = 1000.0
CLAIMED = VideoJobEvent(EventStatus.COMPLETED, JOB_ID, "done", source="webhook", deadline=DEADLINE)
"""A webhook's event as the worker reads it: what the webhook said, and the trigger's deadline."""
WAIT_AGAIN = JobPoller(
    JOB_ID,
    deadline=DEADLINE,
    poll_interval=30.0,
    submitted_at=100.0,
    initial_poll_delays=(30.0, 10.0, 20.0),
)
"""The normal schedule the operator waits on again, anchored where the webhook was received."""


@pytest.mark.parametrize(
    ("status", "expected"), [("completed", None), ("failed", "OpenRouter reports failed")]
)
def test_a_confirmed_webhook_ends_as_openrouter_says(status: str, expected: str | None) -> None:
    error = None if status == "completed" else "Content policy violation"
    step = confirm_webhook(CLAIMED, WAIT_AGAIN, job(status, error), now=100.0)
    assert step.event == terminal_event(JOB_ID, status, error)
    assert step.log_message == f"Resumed by OpenRouter's webhook; job {JOB_ID} confirmed {status}."
    if expected is None:
        assert step.warning is None
    else:
        assert step.warning is not None
        assert expected in step.warning
        assert "which decides" in step.warning


@pytest.mark.parametrize("status", ["pending", "in_progress", "paused"])
def test_a_webhook_openrouter_contradicts_waits_again_until_the_deadline(status: str) -> None:
    step = confirm_webhook(CLAIMED, WAIT_AGAIN, job(status), now=100.0)
    assert step.event is None
    assert step.delay == pytest.approx(30.0)  # the normal schedule's first check
    assert step.log_message is None
    assert step.warning == (
        f"A webhook said OpenRouter video job {JOB_ID} is completed, but OpenRouter reports it {status}. "
        "The webhook is not acted on: the task waits for the job again, on the normal poll schedule "
        f"(every 30 s), until its deadline {datetime.fromtimestamp(DEADLINE, tz=timezone.utc).isoformat()}."
    )


def test_a_transient_failure_to_confirm_waits_again() -> None:
    step = confirm_webhook(CLAIMED, WAIT_AGAIN, OpenRouterServerError("boom", http_status=502), now=100.0)
    assert step.event is None
    assert step.delay == pytest.approx(2.0)  # the first step of the failure backoff
    assert step.warning is not None
    assert "asking OpenRouter for the job failed (boom)" in step.warning
    assert "waits for the job again" in step.warning


def test_a_refused_confirmation_is_an_error() -> None:
    refused = OpenRouterAuthError("bad key", http_status=401, api_message="bad key")
    step = confirm_webhook(CLAIMED, WAIT_AGAIN, refused, now=100.0)
    assert step.event is not None
    assert step.event.status is EventStatus.ERROR
    assert (
        step.warning
        == f"A webhook said OpenRouter video job {JOB_ID} is completed, but asking OpenRouter for the job failed (bad key)."
    )


def test_a_404_to_the_confirmation_waits_again() -> None:
    gone = OpenRouterNotFoundError("gone", http_status=404, api_message="Job not found")
    step = confirm_webhook(CLAIMED, WAIT_AGAIN, gone, now=100.0)
    assert step.event is None
    assert step.delay is not None


@pytest.mark.parametrize("answer", [job("in_progress"), OpenRouterTransportError("reset")])
def test_past_the_deadline_a_contradicted_webhook_times_out(answer: object) -> None:
    step = confirm_webhook(CLAIMED, WAIT_AGAIN, answer, now=DEADLINE)  # type: ignore[arg-type]
    assert step.event is not None
    assert step.event.status is EventStatus.TIMEOUT
    assert step.warning is not None
    assert "A webhook said" in step.warning


_NOT_FINISHED = st.one_of(
    st.sampled_from(["pending", "in_progress", "paused", ""]).map(job),
    st.sampled_from(
        [
            OpenRouterTransportError("reset"),
            OpenRouterServerError("boom", http_status=502, api_message="boom"),
            OpenRouterResponseError("not json"),
        ]
    ),
)


@settings(max_examples=int(os.environ.get("ORVIDEO_PROPERTY_EXAMPLES", "150")), deadline=None)
@given(
    claims=st.lists(
        st.tuples(
            st.sampled_from(
                [s for s in EventStatus if s.value in ("completed", "failed", "cancelled", "expired")]
            ),
            st.floats(min_value=0.0, max_value=0.999),
            _NOT_FINISHED,
        ),
        min_size=1,
        max_size=25,
    ),
    deadline=st.floats(min_value=1.0, max_value=86_400.0),
)
def test_contradicted_webhooks_never_end_the_task_before_its_deadline(
    claims: list[tuple[EventStatus, float, object]], deadline: float
) -> None:
    """Any run of signed webhooks OpenRouter contradicts, each resuming the task at any moment
    before the deadline: the task waits again every time, never fails, and never waits longer
    than the deadline it started with (each webhook's payload carries it, as the receiver copies it
    from the trigger the task waits on). At the deadline the last contradiction ends it as a timeout."""
    start = 0.0
    trigger_deadline = deadline
    for claimed, position, answer in sorted(claims, key=lambda claim: claim[1]):
        now = start + position * (deadline - start)
        payload = VideoJobEvent(
            claimed, JOB_ID, "hint", source="webhook", deadline=trigger_deadline
        ).to_payload()
        resumed = VideoJobEvent.from_payload(payload)
        assert resumed.deadline is not None
        poller = JobPoller(
            JOB_ID,
            deadline=resumed.deadline,
            poll_interval=30.0,
            submitted_at=now,
            initial_poll_delays=(30.0, 10.0, 20.0),
        )
        step = confirm_webhook(resumed, poller, answer, now=now)  # type: ignore[arg-type]
        assert step.event is None, step
        assert step.delay is not None
        assert 0.0 < step.delay <= deadline - now
        trigger_deadline = poller.deadline
    assert trigger_deadline == deadline
    final = confirm_webhook(resumed, poller, claims[-1][2], now=deadline)  # type: ignore[arg-type]
    assert final.event is not None
    assert final.event.status is EventStatus.TIMEOUT


_WAITED_THROUGH = st.one_of(
    st.builds(OpenRouterTransportError, st.just("Connection reset by peer")),
    st.builds(
        lambda status: OpenRouterServerError("unavailable", http_status=status, api_message="unavailable"),
        st.sampled_from([500, 502, 503, 504]),
    ),
    st.builds(OpenRouterResponseError, st.just("not json")),
    st.just(OpenRouterNotFoundError("gone", http_status=404, api_message="Job not found")),
    st.sampled_from(["pending", "in_progress", "paused"]).map(job),
)


@settings(max_examples=300)
@given(answers=st.lists(st.tuples(_WAITED_THROUGH, st.floats(0.0, 0.999)), max_size=60), data=st.data())
def test_no_run_of_outage_answers_before_the_deadline_ends_a_paid_job(
    answers: list[tuple[object, float]], data: st.DataObject
) -> None:
    """Any sequence of transient failures, 404s and unfinished statuses, at any times before the
    deadline, keeps the loop waiting; the loop ends at the deadline at the latest, with a timeout
    (a retry re-attaches), never an error that would end the wait early."""
    state, now = PollState(), 0.0
    for answer, jitter in answers:
        now = data.draw(st.floats(min_value=now, max_value=POLLER.deadline - 0.001))
        if isinstance(answer, VideoJob):
            step = POLLER.on_job(state, answer, now=now)
        else:
            step = POLLER.on_error(state, answer, now=now, jitter=jitter)  # type: ignore[arg-type]
        assert step.event is None, step.event
        assert step.delay is not None
        assert 0 <= step.delay <= POLLER.deadline - now
        state = step.state
    last = POLLER.on_error(state, OpenRouterTransportError("reset"), now=POLLER.deadline)
    assert last.event is not None
    assert last.event.status is EventStatus.TIMEOUT
