"""How a task ends on an event without a video (one table), and the drivers' shared poll step."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_orvideo import exceptions
from airflow_provider_orvideo._internal.api import ENDED_WITHOUT_VIDEO, VideoJob
from airflow_provider_orvideo.exceptions import (
    OpenRouterAuthError,
    OpenRouterServerError,
    OpenRouterVideoError,
    VideoJobError,
)
from airflow_provider_orvideo.polling import (
    ENDINGS,
    EventStatus,
    JobPoller,
    PollState,
    VideoJobEvent,
    ending_error,
    next_try,
    poll_until_event,
    report,
)

JOB_ID = "gen-vid-1-abc"

# -- the oracle: the operator's _finish and _next_try as they were before the table -------------

_RETRY_WORDS = {
    True: "submits a new job, which is billed again (resubmit_failed_jobs=True).",
    False: "does not submit again (resubmit_failed_jobs=False): it fails at once, nothing is paid.",
}
_RETRY_REATTACHES = "re-attaches to the same job (no new payment) and downloads it once it completes."
_RETRY_AFTER_POLL_ERROR = (
    "asks OpenRouter about the same job first and re-attaches to it (no new payment); it submits again "
    "only if OpenRouter reports the job failed (with resubmit_failed_jobs=True), or answers 404 with "
    "orphan_policy='resubmit'."
)


def _old_next_try(try_number: Any, retries: Any) -> str:
    if isinstance(try_number, int) and isinstance(retries, int) and try_number <= retries:
        return f"The next try ({try_number + 1} of {retries + 1})"
    return "No retry is left; clearing this task"


def _old_finish(event: VideoJobEvent, next_words: str, resubmit_failed: bool) -> VideoJobError:
    failure_classes: dict[EventStatus, type[exceptions.VideoJobError]] = {
        EventStatus.FAILED: exceptions.VideoJobFailedError,
        EventStatus.CANCELLED: exceptions.VideoJobCancelledError,
        EventStatus.EXPIRED: exceptions.VideoJobExpiredError,
        EventStatus.TIMEOUT: exceptions.VideoJobTimeoutError,
        EventStatus.ERROR: exceptions.VideoJobPollingError,
    }
    if event.status is EventStatus.TIMEOUT:
        retry = _RETRY_REATTACHES
    elif event.status is EventStatus.ERROR:
        retry = _RETRY_AFTER_POLL_ERROR
    else:
        retry = _RETRY_WORDS[resubmit_failed]
    return failure_classes[event.status](
        f"{event.message} {next_words} {retry}", job_id=event.job_id, remote_error=event.remote_error
    )


def test_every_ending_but_completed_has_an_error_class_and_advice() -> None:
    assert set(ENDINGS) == set(EventStatus) - {EventStatus.COMPLETED}
    assert EventStatus.COMPLETED not in ENDINGS
    classes = [ending.error_class for ending in ENDINGS.values()]
    assert len(set(classes)) == len(classes)  # one class per ending: callers branch on the type
    for status, ending in ENDINGS.items():
        assert issubclass(ending.error_class, VideoJobError)
        verdict = status.value in {s.value for s in ENDED_WITHOUT_VIDEO}
        # only OpenRouter's verdicts are ever paid for again, and only when asked
        assert (ending.retry(True) != ending.retry(False)) is verdict
        assert ("billed again" in ending.retry(True)) is verdict
        assert "billed again" not in ending.retry(False)


@given(
    status=st.sampled_from([s for s in EventStatus if s is not EventStatus.COMPLETED]),
    message=st.text(max_size=40),
    remote_error=st.none() | st.text(max_size=20),
    try_number=st.none() | st.integers(min_value=0, max_value=6),
    retries=st.none() | st.integers(min_value=0, max_value=5),
    resubmit_failed=st.booleans(),
)
def test_the_message_and_class_are_the_operators_of_today(
    status: EventStatus,
    message: str,
    remote_error: str | None,
    try_number: int | None,
    retries: int | None,
    resubmit_failed: bool,
) -> None:
    event = VideoJobEvent(status, JOB_ID, message, remote_error=remote_error)
    assert next_try(try_number, retries) == _old_next_try(try_number, retries)
    words = next_try(try_number, retries)
    error = ending_error(event, next_try=words, resubmit_failed=resubmit_failed)
    expected = _old_finish(event, words, resubmit_failed)
    assert type(error) is type(expected)
    assert str(error) == str(expected)
    assert (error.job_id, error.remote_error) == (JOB_ID, remote_error)


def test_the_next_try_words_pinned() -> None:
    assert next_try(1, 3) == "The next try (2 of 4)"
    assert next_try(3, 3) == "The next try (4 of 4)"
    assert next_try(4, 3) == "No retry is left; clearing this task"
    assert next_try(None, 3) == "No retry is left; clearing this task"
    assert next_try(1, None) == "No retry is left; clearing this task"


def test_a_failed_job_message_pinned() -> None:
    event = VideoJobEvent(EventStatus.FAILED, JOB_ID, f"OpenRouter video job {JOB_ID} ended failed: policy.")
    error = ending_error(event, next_try=next_try(1, 3), resubmit_failed=False)
    assert isinstance(error, exceptions.VideoJobFailedError)
    assert str(error) == (
        f"OpenRouter video job {JOB_ID} ended failed: policy. The next try (2 of 4) does not submit again "
        "(resubmit_failed_jobs=False): it fails at once, nothing is paid."
    )


def test_a_completed_job_has_no_ending_error() -> None:
    event = VideoJobEvent(EventStatus.COMPLETED, JOB_ID, "done")
    with pytest.raises(ValueError, match="completed"):
        ending_error(event, next_try="x", resubmit_failed=False)


# -- the shared step and the sync driver ---------------------------------------------------------

POLLER = JobPoller(job_id=JOB_ID, deadline=1000.0, poll_interval=10.0)


def job(status: str) -> VideoJob:
    return VideoJob(id=JOB_ID, status=status)


@pytest.mark.parametrize(
    "answer",
    [job("pending"), job("completed"), job("failed"), OpenRouterServerError("x", http_status=502)],
)
def test_step_is_on_job_or_on_error(answer: VideoJob | OpenRouterVideoError) -> None:
    state = PollState(last_status="pending", polls=2)
    stepped = POLLER.step(state, answer, now=100.0, jitter=0.5)
    if isinstance(answer, OpenRouterVideoError):
        assert stepped == POLLER.on_error(state, answer, now=100.0, jitter=0.5)
    else:
        assert stepped == POLLER.on_job(state, answer, now=100.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_poll_until_event_waits_through_failures_and_ends_on_the_verdict(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers: list[VideoJob | Exception] = [
        job("pending"),
        OpenRouterServerError("busy", http_status=503),
        job("in_progress"),
        job("completed"),
    ]
    asked: list[str] = []

    def get_job(job_id: str) -> VideoJob:
        asked.append(job_id)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock = Clock()
    poller = JobPoller(
        job_id=JOB_ID, deadline=1000.0, poll_interval=10.0, submitted_at=0.0, initial_poll_delays=(5.0,)
    )
    with caplog.at_level(logging.INFO):
        event = poll_until_event(
            poller, get_job, log=logging.getLogger("t"), sleep=clock.sleep, clock=clock.time, rand=lambda: 0.0
        )
    assert event.status is EventStatus.COMPLETED
    assert asked == [JOB_ID] * 4
    assert clock.slept == [5.0, 10.0, 2.0, 8.0]  # first check, schedule, failure backoff, schedule
    levels = [(r.levelname, r.getMessage().split(" (")[0]) for r in caplog.records]
    assert ("WARNING", f"Polling OpenRouter video job {JOB_ID} failed") in levels
    assert ("INFO", f"OpenRouter video job {JOB_ID} is completed.") in levels


def test_poll_until_event_ends_on_a_refusal_without_raising() -> None:
    def get_job(job_id: str) -> VideoJob:
        raise OpenRouterAuthError("bad key", http_status=401)

    clock = Clock()
    event = poll_until_event(POLLER, get_job, log=logging.getLogger("t"), sleep=clock.sleep, clock=clock.time)
    assert event.status is EventStatus.ERROR
    assert clock.slept == [0.0]


def test_report_logs_the_status_change_and_the_warning(caplog: pytest.LogCaptureFixture) -> None:
    step = POLLER.step(PollState(), job("weird"), now=100.0)
    with caplog.at_level(logging.INFO):
        report(step, logging.getLogger("t"))
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", step.log_message),
        ("WARNING", step.warning),
    ]
