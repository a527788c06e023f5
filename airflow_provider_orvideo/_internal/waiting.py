"""How a task waits for its job: the poll schedules built from the operator's arguments.

Every :class:`~airflow_provider_orvideo.polling.JobPoller` a task builds (after a submit or a
re-attach, after a webhook OpenRouter contradicted, after a failed download) comes from one
:class:`WaitPlan`, so the three waits cannot drift apart; pure, time injected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from airflow_provider_orvideo.exceptions import NOTHING_SPENT, InvalidSettingError, OpenRouterVideoError
from airflow_provider_orvideo.polling import (
    JobPoller,
    VideoJobEvent,
    download_may_recover,
    loopback_poll_scale,
)

__all__ = ["DEFERRAL_GRACE_SECONDS", "WaitPlan", "checked_poll_scale", "deferral_timeout"]

DEFERRAL_GRACE_SECONDS = 300.0
"""Airflow's own deferral timeout is a safety net set past our deadline, so the trigger's
``timeout`` event (which reaches ``execute_complete`` with a clear message) always fires first."""


@dataclass(frozen=True)
class WaitPlan:
    """How a task waits for its job, from the operator's arguments: every :class:`JobPoller` a
    task builds (after a submit or a re-attach, after a webhook, after a failed download) comes
    from here, so the three waits cannot drift apart.

    ``scale`` is :func:`loopback_poll_scale`'s factor for the task's connection (1 unless it is
    an emulator on this machine); it shortens every delay, never the deadline.
    """

    poll_interval: float
    initial_poll_delays: tuple[float, ...]
    job_timeout: float
    webhook_poll_interval: float
    scale: float = 1.0

    def _poller(
        self,
        job_id: str,
        deadline: float,
        submitted_at: float | None,
        interval: float,
        delays: Sequence[float],
    ) -> JobPoller:
        return JobPoller(
            job_id=job_id,
            deadline=deadline,
            poll_interval=interval * self.scale,
            submitted_at=submitted_at,
            initial_poll_delays=tuple(delay * self.scale for delay in delays),
        )

    def after_submit(self, job_id: str, *, now: float, submitted: bool, webhook: bool) -> JobPoller:
        """Waiting for a job this try submitted (``submitted``) or re-attached to.

        With a webhook on its way (``webhook``, and this try submitted with a callback), the polls
        are only a safety net: at most one for a job of up to ``webhook_poll_interval``, plus one
        at the deadline. A re-attaching try keeps the normal schedule, anchored nowhere: it cannot
        know whether its job was submitted with a callback (and its webhook may have come while
        nobody waited), so it checks at once, then every ``poll_interval``."""
        deadline = now + self.job_timeout
        if not submitted:
            return self._poller(job_id, deadline, None, self.poll_interval, self.initial_poll_delays)
        if webhook:
            interval = self.webhook_poll_interval
            return self._poller(job_id, deadline, now, interval, (interval,))
        return self._poller(job_id, deadline, now, self.poll_interval, self.initial_poll_delays)

    def after_webhook(self, job_id: str, *, deadline: float | None, now: float) -> JobPoller:
        """Waiting again after a webhook OpenRouter's GET (at ``now``) contradicted: the normal
        schedule anchored at that GET, until the deadline the task waited with (a payload from a
        receiver before it was sent gets a fresh ``job_timeout``)."""
        until = now + self.job_timeout if deadline is None else deadline
        return self._poller(job_id, until, now, self.poll_interval, self.initial_poll_delays)

    def after_look(self, job_id: str, *, now: float, deadline: float | None = None) -> JobPoller:
        """Waiting for a job submitted elsewhere (a download of a job id) that one GET at ``now``
        found unfinished: its age is unknown, so no initial delays tuned for a fresh submit; a
        check every ``poll_interval`` from that GET, until ``deadline`` (the one the task already
        waited with) or ``job_timeout`` from now."""
        until = now + self.job_timeout if deadline is None else deadline
        return self._poller(job_id, until, now, self.poll_interval, (self.poll_interval,))

    def after_failed_download(
        self, event: VideoJobEvent, error: OpenRouterVideoError, *, now: float
    ) -> JobPoller | None:
        """Waiting again for a completed (paid) job whose download failed: one poll interval,
        then the trigger finds it completed and resumes the task, up to the deadline the task
        waited with. None when waiting cannot help: a local write failure or an output gone
        (:func:`~airflow_provider_orvideo.polling.download_may_recover`), no deadline known, or
        the deadline passed."""
        if event.deadline is None or now >= event.deadline or not download_may_recover(error):
            return None
        return self._poller(event.job_id, event.deadline, now, self.poll_interval, (self.poll_interval,))


def deferral_timeout(poller: JobPoller, *, now: float) -> float:
    """Seconds for Airflow's own deferral timeout: past ``poller``'s deadline, its last poll and
    :data:`DEFERRAL_GRACE_SECONDS`."""
    return max(0.0, poller.deadline - now) + poller.poll_interval + DEFERRAL_GRACE_SECONDS


def checked_poll_scale(base_url: str, configured: str | None, *, job_id: str | None) -> float:
    """:func:`loopback_poll_scale`, or an :class:`InvalidSettingError` for the on-call reader:
    nothing was spent when no job exists yet; else the job of an earlier try is left as it is
    and a clear after the fix re-attaches to it."""
    try:
        return loopback_poll_scale(base_url, configured)
    except ValueError as error:
        kept = (
            f"OpenRouter video job {job_id} of an earlier try is left as it is; fix the setting and clear "
            "this task: it re-attaches to that job without paying again."
            if job_id
            else NOTHING_SPENT
        )
        raise InvalidSettingError(f"{error}. {kept}") from None
