"""The poll decision, the trigger event contract, and how a task ends on an event.

The async trigger (triggerer) and the operator's ``deferrable=False`` loop (worker) are thin
shells around :meth:`JobPoller.step`: they fetch the job, pass it (or the error) in with ``now``,
act on the :class:`PollStep` they get back, and log it with :func:`report`. The worker's loop is
:func:`poll_until_event` (its clock, sleep and jitter injected); the trigger's is its ``run()``,
the same loop with ``await``. Time is injected everywhere, so every branch is tested without
sleeping.

An event that brought no video ends the task with the exception and the retry advice of
:data:`ENDINGS` (:func:`ending_error`), saying who acts next (:func:`next_try`).

The event payload is a versioned contract between a trigger serialized by one release and an
operator resumed by another: a closed set of statuses (:data:`TRIGGER_EVENT_STATUSES`), JSON
primitives only, no secrets (no key, no signed URL), and the same value wherever the trigger
runs so Airflow can de-duplicate events from two triggerers. Keys added since version 1, each
optional so that a payload without it still reads: ``source`` (``poll`` or ``webhook``) and
``deadline`` (a number: the waiting trigger's absolute deadline, in webhook events only).

A webhook is a hint, never a verdict: :func:`confirm_webhook` lets one GET of the job decide,
and a job OpenRouter reports unfinished is waited for again, until the deadline it always had.
"""

from __future__ import annotations

import enum
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import urlsplit

from airflow_provider_orvideo._internal.api import TERMINAL_JOB_STATUSES, JobStatus, VideoJob
from airflow_provider_orvideo._internal.callback_urls import is_loopback_host
from airflow_provider_orvideo.exceptions import (
    OpenRouterNotFoundError,
    OpenRouterVideoError,
    TriggerEventError,
    VideoJobCancelledError,
    VideoJobError,
    VideoJobExpiredError,
    VideoJobFailedError,
    VideoJobPollingError,
    VideoJobTimeoutError,
)
from airflow_provider_orvideo.retry import is_transient

__all__ = [
    "EVENT_VERSION",
    "TRIGGER_EVENT_STATUSES",
    "EventStatus",
    "VideoJobEvent",
]

EVENT_VERSION = 1

FIRST_FAILURE_DELAY_SECONDS = 2.0
"""The wait after a first failed poll; it doubles with each failure in a row, up to the poll
interval (2, 4, 8, 16, 30, 30 ... s with the default 30 s interval)."""

LOOPBACK_POLL_SCALE_ENV_VAR = "AIRFLOW__OPENROUTER__LOOPBACK_POLL_SCALE"
"""Airflow setting ``[openrouter] loopback_poll_scale``: see :func:`loopback_poll_scale`."""


def loopback_poll_scale(base_url: str, configured: str | None) -> float:
    """The factor applied to the poll delays of a task whose connection points at ``base_url``.

    Offline tests run against a local emulator whose jobs finish in a fraction of a second, and
    30 s between polls would make every such test wait 30 s. ``configured`` (the setting
    ``[openrouter] loopback_poll_scale``, e.g. ``0.01``: 30 s becomes 0.3 s) shortens the delays,
    but only for a loopback host (``127.0.0.0/8``, ``::1``, ``localhost``): a deployment that
    sets it by mistake still polls OpenRouter at the normal pace. ``None`` or an empty value
    means 1. Anything but a finite number in (0, 1] raises ``ValueError`` naming the setting.
    """
    if configured is None or not configured.strip():
        return 1.0
    try:
        scale = float(configured)
    except ValueError:
        scale = math.nan
    if not 0 < scale <= 1:
        raise ValueError(
            f"{LOOPBACK_POLL_SCALE_ENV_VAR}={configured!r} is not a number in (0, 1]: it scales the "
            "poll delays of tasks whose connection points at this machine (an emulator), e.g. 0.01"
        )
    return scale if is_loopback_host(urlsplit(base_url).hostname or "") else 1.0


class EventStatus(str, enum.Enum):
    """How a trigger run ended. The four remote terminal statuses plus two of our own."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    TIMEOUT = "timeout"
    """Our deadline passed; the remote job may still be rendering."""
    ERROR = "error"
    """We could not learn the job's status (permanent API error, or too many transient ones)."""

    def __str__(self) -> str:
        return self.value


TRIGGER_EVENT_STATUSES = frozenset(s.value for s in EventStatus)


@dataclass(frozen=True)
class VideoJobEvent:
    """The one event a trigger yields; ``to_payload`` is what crosses the trigger boundary."""

    status: EventStatus
    job_id: str
    message: str
    remote_error: str | None = None
    """OpenRouter's ``error`` string verbatim, for failed/cancelled/expired jobs."""
    source: str = "poll"
    """``poll`` (the trigger saw the job end) or ``webhook`` (the receiver resumed the task on a
    signed webhook: ``execute_complete`` confirms the job's state with one GET before acting)."""
    deadline: float | None = None
    """Webhook events only: the absolute Unix time the trigger the task waited on would have
    given up at. A task that OpenRouter's GET sends back to waiting keeps it, so a stream of
    contradicted webhooks cannot extend the wait beyond the job's original ``job_timeout``."""
    cost: float | None = None
    """Poll events only: the ended job's ``usage.cost`` as OpenRouter's GET reported it, for the
    spend ledger (a failed job may be billed too). Added without a version bump (optional)."""
    generation_id: str | None = None

    @property
    def from_webhook(self) -> bool:
        return self.source == "webhook"

    def to_payload(self) -> dict[str, Any]:
        # ``source`` and ``deadline`` were added without a version bump: releases before them
        # ignore unknown keys. A poll's event has no deadline and stays as it always was.
        payload: dict[str, Any] = {
            "version": EVENT_VERSION,
            "status": self.status.value,
            "job_id": self.job_id,
            "message": self.message,
            "remote_error": self.remote_error,
            "source": self.source,
        }
        if self.deadline is not None:
            payload["deadline"] = self.deadline
        if self.cost is not None:
            payload["cost"] = self.cost
        if self.generation_id is not None:
            payload["generation_id"] = self.generation_id
        return payload

    @classmethod
    def from_payload(cls, payload: Any) -> VideoJobEvent:
        """Validate an event handed to ``execute_complete``; raise :class:`TriggerEventError` if untrustworthy."""
        if not isinstance(payload, Mapping):
            raise TriggerEventError(
                f"The trigger resumed the task with no usable event (got {type(payload).__name__}). "
                "The video job's state is unknown; a retry of the task will start over."
            )
        version = payload.get("version", EVENT_VERSION)
        if not isinstance(version, int) or version > EVENT_VERSION:
            raise TriggerEventError(
                f"The trigger event has version {version!r}, newer than this provider understands "
                f"({EVENT_VERSION}). Upgrade the provider on the workers to match the triggerer."
            )
        status = payload.get("status")
        job_id = payload.get("job_id")
        if status not in TRIGGER_EVENT_STATUSES:
            raise TriggerEventError(
                f"The trigger event has status {status!r}; expected one of {sorted(TRIGGER_EVENT_STATUSES)}."
            )
        if not isinstance(job_id, str) or not job_id:
            raise TriggerEventError(f"The trigger event (status {status!r}) carries no job_id.")
        remote_error = payload.get("remote_error")
        source = payload.get("source", "poll")
        if source not in ("poll", "webhook"):
            raise TriggerEventError(
                f"The trigger event for job {job_id} has source {source!r}; expected 'poll' or 'webhook'."
            )
        deadline = payload.get("deadline")
        if deadline is not None and (
            isinstance(deadline, bool)
            or not isinstance(deadline, (int, float))
            or not math.isfinite(deadline)
        ):
            raise TriggerEventError(
                f"The trigger event for job {job_id} has deadline {deadline!r}; expected a Unix time in seconds."
            )
        cost = payload.get("cost")
        generation_id = payload.get("generation_id")
        return cls(
            status=EventStatus(status),
            job_id=job_id,
            message=str(payload.get("message") or ""),
            remote_error=remote_error if isinstance(remote_error, str) else None,
            source=source,
            deadline=None if deadline is None else float(deadline),
            # Facts for the ledger only: a value of the wrong shape is dropped, never trusted.
            cost=float(cost) if cost is not None and _is_cost(cost) else None,
            generation_id=generation_id if isinstance(generation_id, str) and generation_id else None,
        )


@dataclass(frozen=True)
class PollState:
    """What a poll loop remembers between polls (rebuilt from scratch after a restart)."""

    last_status: str | None = None
    consecutive_failures: int = 0
    polls: int = 0
    last_error: str | None = None
    """The last failed poll's error, while polls fail (for the message at the deadline)."""


@dataclass(frozen=True)
class PollStep:
    """The decision after one poll: either an ``event`` to finish with, or a ``delay`` to wait."""

    state: PollState
    event: VideoJobEvent | None = None
    delay: float | None = None
    log_message: str | None = None
    """A line worth logging at INFO (status changes), or None to stay quiet."""
    warning: str | None = None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")


_REMOTE_TERMINAL: Mapping[JobStatus, EventStatus] = {
    status: EventStatus(status.value) for status in TERMINAL_JOB_STATUSES
}
"""OpenRouter's terminal statuses as events (the event contract uses OpenRouter's own words)."""


def _is_cost(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def terminal_event(
    job_id: str, status: str, error: str | None, *, source: str = "poll", job: VideoJob | None = None
) -> VideoJobEvent | None:
    """The event for a job in ``status``, or ``None`` while it is not finished (or unknown).

    One mapping for the trigger's polls, the receiver's webhooks and ``execute_complete``'s
    confirmation of a webhook, so the three cannot word or classify an ending differently.
    """
    try:
        known = JobStatus(status)
    except ValueError:
        return None
    if not known.is_terminal:
        return None
    event_status = _REMOTE_TERMINAL[known]
    if event_status is EventStatus.COMPLETED:
        message = f"OpenRouter video job {job_id} completed."
    else:
        message = f"OpenRouter video job {job_id} ended {status}: {(error or 'no reason given').rstrip('.')}."
    cost = job.cost if job is not None else None
    generation_id = job.generation_id if job is not None else None
    return VideoJobEvent(
        event_status,
        job_id,
        message,
        remote_error=error,
        source=source,
        cost=cost,
        generation_id=generation_id,
    )


@dataclass(frozen=True)
class PollSchedule:
    """When to poll, counted from the submission: ``initial_poll_delays`` one after the other, then
    every ``interval``. Each initial delay is capped at ``interval``.

    Being a function of the submission time (not of a counter), it survives a trigger restart.
    """

    interval: float
    initial_poll_delays: tuple[float, ...] = ()

    @classmethod
    def build(cls, interval: float, initial_poll_delays: Sequence[float] = ()) -> PollSchedule:
        return cls(interval, tuple(min(float(d), interval) for d in initial_poll_delays))

    def next_poll_at(self, *, submitted_at: float, after: float) -> float:
        """The first scheduled poll time strictly after ``after``."""
        at = submitted_at
        for delay in self.initial_poll_delays:
            at += delay
            if at > after:
                return at
        if at > after:
            return at
        return at + (math.floor((after - at) / self.interval) + 1) * self.interval


@dataclass(frozen=True)
class JobPoller:
    """Decides, after each poll, whether to keep polling, finish, or give up.

    :param deadline: absolute Unix time. Stored absolute so a restarted trigger keeps it.
    :param poll_interval: seconds between polls (the last poll lands exactly on the deadline).
    :param submitted_at: absolute Unix time of the submission, which anchors ``initial_poll_delays``;
        None (a trigger serialized before schedules existed) polls every ``poll_interval``.
    :param initial_poll_delays: see :class:`PollSchedule`.

    A paid job is waited for until its deadline, whatever answers come meanwhile: a transient
    failure (no answer, 5xx, 429, an unreadable body) and a 404 about the job (OpenRouter answered
    202 with this id, so the job exists; a 404 is a load balancer's or a replica's answer, never
    proof) back off, capped at ``poll_interval`` and jittered, and end only at the deadline. Only
    an answer that will not change (401, 403, 400) ends the wait early.
    """

    job_id: str
    deadline: float
    poll_interval: float
    submitted_at: float | None = None
    initial_poll_delays: tuple[float, ...] = ()

    def failure_delay(self, failures: int, jitter: float, now: float) -> float:
        """Wait after the ``failures``-th failed poll in a row: doubling from
        :data:`FIRST_FAILURE_DELAY_SECONDS`, capped at ``poll_interval``, ``jitter`` in [0, 1)
        taking up to half of it away (pollers that failed together do not come back together)."""
        backoff = min(self.poll_interval, FIRST_FAILURE_DELAY_SECONDS * float(1 << min(failures - 1, 30)))
        return max(0.0, min(backoff * (1.0 - 0.5 * jitter), self.deadline - now))

    def _delay(self, now: float) -> float:
        if self.submitted_at is None:
            wait = self.poll_interval
        else:
            schedule = PollSchedule.build(self.poll_interval, self.initial_poll_delays)
            wait = schedule.next_poll_at(submitted_at=self.submitted_at, after=now) - now
        return max(0.0, min(wait, self.deadline - now))

    def first_delay(self, now: float) -> float:
        """Wait before the first poll of a (re)started loop.

        Before the first scheduled check, wait for it: the job was just submitted. Past it (a
        restarted trigger, or a worker that re-attached), poll at once: the job may have ended
        while nobody was watching.
        """
        if self.submitted_at is None or not self.initial_poll_delays:
            return 0.0
        first = self.submitted_at + min(self.initial_poll_delays[0], self.poll_interval)
        return max(0.0, min(first - now, self.deadline - now))

    def _timeout(self, state: PollState) -> VideoJobEvent:
        last = state.last_status or "unknown"
        failing = (
            f"; the last {state.consecutive_failures} polls failed, the last with: {state.last_error}"
            if state.last_error
            else ""
        )
        return VideoJobEvent(
            EventStatus.TIMEOUT,
            self.job_id,
            f"OpenRouter video job {self.job_id} had not finished by the deadline {_iso(self.deadline)} "
            f"(last status: {last}{failing}). It was left as it is on OpenRouter (there is no cancel "
            "endpoint), so it may still render and bill.",
        )

    def step(
        self, state: PollState, answer: VideoJob | OpenRouterVideoError, *, now: float, jitter: float = 0.0
    ) -> PollStep:
        """Decide after one poll, whatever it brought: the job, or the error the hook raised.

        The one entry point of every driver (the trigger, :func:`poll_until_event`,
        :func:`confirm_webhook`); ``jitter`` in [0, 1) spreads retries after a failure."""
        if isinstance(answer, OpenRouterVideoError):
            return self.on_error(state, answer, now=now, jitter=jitter)
        return self.on_job(state, answer, now=now)

    def on_job(self, state: PollState, job: VideoJob, *, now: float) -> PollStep:
        """Decide after a successful poll."""
        changed = job.status != state.last_status
        new_state = PollState(last_status=job.status, consecutive_failures=0, polls=state.polls + 1)
        log_message = f"OpenRouter video job {self.job_id} is {job.status}." if changed else None
        warning = None
        if job.known_status is None and changed:
            warning = (
                f"OpenRouter video job {self.job_id} reports status {job.status!r}, which this provider "
                "does not know; treating it as not finished and polling on until the deadline."
            )
        event = terminal_event(self.job_id, job.status, job.error, job=job)
        if event is not None:
            return PollStep(new_state, event=event, log_message=log_message, warning=warning)
        if now >= self.deadline:
            return PollStep(
                new_state, event=self._timeout(new_state), log_message=log_message, warning=warning
            )
        return PollStep(new_state, delay=self._delay(now), log_message=log_message, warning=warning)

    def on_error(
        self, state: PollState, error: OpenRouterVideoError, *, now: float, jitter: float = 0.0
    ) -> PollStep:
        """Decide after a failed poll (the hook's own HTTP retries are already spent).

        ``jitter`` is a random number in [0, 1) from the driver (see :meth:`failure_delay`)."""
        failures = state.consecutive_failures + 1
        new_state = PollState(
            last_status=state.last_status,
            consecutive_failures=failures,
            polls=state.polls + 1,
            last_error=str(error),
        )
        if not waits_through(error):
            event = VideoJobEvent(
                EventStatus.ERROR,
                self.job_id,
                f"Could not learn the status of OpenRouter video job {self.job_id}: OpenRouter refused the "
                f"status request ({error}). The job may still be rendering and billing on OpenRouter.",
            )
            return PollStep(new_state, event=event)
        if now >= self.deadline:
            return PollStep(new_state, event=self._timeout(new_state))
        delay = self.failure_delay(failures, jitter, now)
        if isinstance(error, OpenRouterNotFoundError):
            what = (
                "OpenRouter answered 404 for it, although its submit answered 202 with this id: the job "
                "exists (a 404 is a load balancer's or a replica's answer, not proof it is gone)"
            )
        else:
            what = f"the status request failed: {error}"
        return PollStep(
            new_state,
            delay=delay,
            warning=(
                f"Polling OpenRouter video job {self.job_id} failed ({failures} in a row): {what}. "
                f"Polling again in {delay:.0f} s, and on until the deadline {_iso(self.deadline)}; the "
                "job may be rendering and billing meanwhile."
            ),
        )


def download_may_recover(error: OpenRouterVideoError) -> bool:
    """Whether downloading a completed (paid) job may succeed if tried again later: whatever a
    poll waits through (:func:`waits_through`), and a download cut off mid-way; not a local write
    failure (a full disk, a read-only path) nor an output OpenRouter no longer serves."""
    from airflow_provider_orvideo.exceptions import (
        OutputPathUnknownError,
        OutputWriteError,
        VideoDownloadError,
        VideoOutputGoneError,
    )

    if isinstance(error, (OutputWriteError, OutputPathUnknownError, VideoOutputGoneError)):
        return False
    return waits_through(error) or isinstance(error, VideoDownloadError)


def waits_through(error: OpenRouterVideoError) -> bool:
    """Whether a poll loop waits through ``error`` (until the deadline) instead of ending on it:
    anything that may go away (:func:`~airflow_provider_orvideo.retry.is_transient`), and a 404
    about a job OpenRouter gave us the id of."""
    return is_transient(error) or isinstance(error, OpenRouterNotFoundError)


def confirm_webhook(
    claimed: VideoJobEvent, poller: JobPoller, answer: VideoJob | OpenRouterVideoError, *, now: float
) -> PollStep:
    """What a task a webhook resumed does after one GET of its job: OpenRouter's ``answer`` decides.

    ``poller`` is what the task waits on again if it must: the normal poll schedule, up to the
    job's original deadline. The step is the one a poll of the trigger would give, so a webhook
    can make the task look sooner, never end differently:

    * a terminal status: OpenRouter's event (a webhook that named another ending is logged);
    * not finished, or a transient GET failure, before the deadline: a ``delay``; the task defers
      again. Failing it instead would leave a job that still renders, and bills, undownloaded;
      anyone holding the signing secret, or a buggy relay, could do that to every waiting task;
    * past the deadline: the timeout event; a GET OpenRouter refuses: the error event.
    """
    job_id = poller.job_id
    step = poller.step(PollState(), answer, now=now)
    if isinstance(answer, OpenRouterVideoError):
        reported = f"asking OpenRouter for the job failed ({answer})"
    else:
        reported = f"OpenRouter reports it {answer.status}"
    event = step.event
    if event is not None and event.status in _REMOTE_TERMINAL.values():
        return replace(
            step,
            log_message=f"Resumed by OpenRouter's webhook; job {job_id} confirmed {event.status}.",
            warning=None
            if event.status is claimed.status
            else f"A webhook said job {job_id} is {claimed.status}; OpenRouter reports {event.status}, which decides.",
        )
    contradiction = f"A webhook said OpenRouter video job {job_id} is {claimed.status}, but {reported}"
    if event is not None:  # past the deadline, or a GET OpenRouter refused: the event says the rest
        return replace(step, log_message=None, warning=f"{contradiction}.")
    return replace(
        step,
        log_message=None,
        warning=(
            f"{contradiction}. The webhook is not acted on: the task waits for the job again, on the "
            f"normal poll schedule (every {poller.poll_interval:g} s), until its deadline {_iso(poller.deadline)}."
        ),
    )


# -- the drivers' shared steps -----------------------------------------------------------------


class PollLog(Protocol):
    """The two levels a poll driver logs at (a ``logging.Logger``, Airflow's task logger)."""

    def info(self, msg: str, /, *args: Any) -> object: ...

    def warning(self, msg: str, /, *args: Any) -> object: ...


def report(step: PollStep, log: PollLog) -> None:
    """Log what ``step`` has to say: a status change at INFO, anything worth a look at WARNING."""
    if step.log_message:
        log.info(step.log_message)
    if step.warning:
        log.warning(step.warning)


def _ask(get_job: Callable[[str], VideoJob], job_id: str) -> VideoJob | OpenRouterVideoError:
    try:
        return get_job(job_id)
    except OpenRouterVideoError as error:
        return error


def poll_until_event(
    poller: JobPoller,
    get_job: Callable[[str], VideoJob],
    *,
    log: PollLog,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.time,
    rand: Callable[[], float] = random.random,
) -> VideoJobEvent:
    """Poll ``poller``'s job on this thread until it ends or its deadline passes: the
    ``deferrable=False`` twin of the trigger's ``run()``, on the same :meth:`JobPoller.step`.

    ``get_job`` is the hook's ``get_job`` (its own HTTP retries included); whatever
    :class:`~airflow_provider_orvideo.exceptions.OpenRouterVideoError` it raises is the poll's
    answer, never this function's: the poller decides whether to wait through it.
    """
    state = PollState()
    sleep(poller.first_delay(clock()))
    while True:
        step = poller.step(state, _ask(get_job, poller.job_id), now=clock(), jitter=rand())
        report(step, log)
        if step.event is not None:
            return step.event
        state = step.state
        sleep(step.delay or 0.0)


# -- how a task ends on an event without a video ---------------------------------------------

_RESUBMITS = "submits a new job, which is billed again (resubmit_failed_jobs=True)."
_DOES_NOT_RESUBMIT = "does not submit again (resubmit_failed_jobs=False): it fails at once, nothing is paid."
_REATTACHES = "re-attaches to the same job (no new payment) and downloads it once it completes."
_ASKS_FIRST = (
    "asks OpenRouter about the same job first and re-attaches to it (no new payment); it submits again "
    "only if OpenRouter reports the job failed (with resubmit_failed_jobs=True), or answers 404 with "
    "orphan_policy='resubmit'."
)


@dataclass(frozen=True)
class Ending:
    """How a task ends on an event that brought no video: the exception it raises, and what its
    next try does (which may depend on ``resubmit_failed_jobs``), said truthfully to the on-call
    reader: a verdict is paid for again only when asked, a timeout or a poll error never."""

    error_class: type[VideoJobError]
    retry_if_resubmitting: str
    retry_otherwise: str

    def retry(self, resubmit_failed: bool) -> str:
        return self.retry_if_resubmitting if resubmit_failed else self.retry_otherwise


ENDINGS: Mapping[EventStatus, Ending] = {
    EventStatus.FAILED: Ending(VideoJobFailedError, _RESUBMITS, _DOES_NOT_RESUBMIT),
    EventStatus.CANCELLED: Ending(VideoJobCancelledError, _RESUBMITS, _DOES_NOT_RESUBMIT),
    EventStatus.EXPIRED: Ending(VideoJobExpiredError, _RESUBMITS, _DOES_NOT_RESUBMIT),
    EventStatus.TIMEOUT: Ending(VideoJobTimeoutError, _REATTACHES, _REATTACHES),
    EventStatus.ERROR: Ending(VideoJobPollingError, _ASKS_FIRST, _ASKS_FIRST),
}
"""Every event status but ``completed``: OpenRouter's verdicts (a retry pays again only with
``resubmit_failed_jobs=True``) and our own endings (a retry re-attaches to the same job)."""


def next_try(try_number: object, retries: object) -> str:
    """Who acts next on a failed try (the start of a sentence): Airflow's retry if one is left,
    else a user's clear. ``try_number`` is the task instance's (1-based), ``retries`` the task's."""
    if isinstance(try_number, int) and isinstance(retries, int) and try_number <= retries:
        return f"The next try ({try_number + 1} of {retries + 1})"
    return "No retry is left; clearing this task"


def ending_error(event: VideoJobEvent, *, next_try: str, resubmit_failed: bool) -> VideoJobError:
    """The exception a task raises on ``event`` (any status but ``completed``): the event's
    message, who acts next (:func:`next_try`) and what that next try does (:data:`ENDINGS`)."""
    ending = ENDINGS.get(event.status)
    if ending is None:
        raise ValueError(
            f"OpenRouter video job {event.job_id} completed: its ending is a video, not an error."
        )
    return ending.error_class(
        f"{event.message} {next_try} {ending.retry(resubmit_failed)}",
        job_id=event.job_id,
        remote_error=event.remote_error,
    )
