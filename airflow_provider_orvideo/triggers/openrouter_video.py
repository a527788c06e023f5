"""Trigger that polls an OpenRouter video job until it ends, without holding a worker slot.

Invariants (each one is there because breaking it costs money or a video):

* **Poll only.** The job is submitted on the worker before deferring; ``run()`` only issues GETs,
  so running it twice (a triggerer restart, two HA triggerers) can never create a second job.
* **Restart-safe from kwargs.** ``run()`` may start from the top at any moment; everything it
  needs is in :meth:`serialize`: connection id, job id, the poll schedule anchored at the
  *absolute* submission time, the *absolute* deadline. A restart keeps both; it re-polls at once
  if the first scheduled check has passed.
* **No secrets in kwargs or events.** The key is resolved in ``run()`` with the async
  connection API; the event carries the job id and OpenRouter's error text, never a URL.
* **Never block the loop.** All I/O goes through the loop's shared aiohttp session
  (``hooks/_async_sessions.py``); connection lookup is async.
* **Exactly one event**, from :data:`~airflow_provider_orvideo.polling.TRIGGER_EVENT_STATUSES`.
* ``cleanup()`` is left as the base class has it: it must never touch the remote job, because it
  also runs on every triggerer restart. There is no cancel endpoint anyway.
* **Cheap to import.** The webhook receiver (in the api-server) asks :meth:`OpenRouterVideoTrigger.job_waited_for`
  whether a deferred task's trigger row is one of ours; the hook (and its HTTP libraries) is
  imported only when ``run()`` starts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_orvideo._internal.api import VideoJob
from airflow_provider_orvideo.defaults import (
    DEFAULT_CONN_ID,
    DEFAULT_POLL_INTERVAL_SECONDS,
)
from airflow_provider_orvideo.exceptions import OpenRouterVideoError
from airflow_provider_orvideo.polling import JobPoller, PollState, report

__all__ = [
    "OpenRouterVideoTrigger",
]

_RELEASED_CLASSPATH = "airflow_provider_orvideo.triggers.openrouter_video.OpenRouterVideoTrigger"
"""The classpath every release so far wrote into the trigger table: still recognised if the class
moves, as deferred tasks keep rows written by the release before."""


class OpenRouterVideoTrigger(BaseTrigger):
    """Polls ``GET /videos/{job_id}`` and yields one event when the job ends or the deadline passes.

    :param job_id: The submitted job's id.
    :param deadline: Absolute Unix time after which the trigger stops waiting (status ``timeout``).
    :param openrouter_conn_id: Airflow connection holding the key (resolved here, never serialized).
    :param poll_interval: Seconds between polls (after the initial delays).
    :param submitted_at: Absolute Unix time of the submission; anchors the schedule. Optional
        for kwargs written by releases before schedules (they poll every ``poll_interval``).
    :param initial_delays: Delays of the first checks after submission (see ``PollSchedule``).
    :param max_consecutive_failures: Ignored; accepted so triggers serialized by releases before
        1.x (which gave up after this many failed polls) still load. Polls now wait through any
        run of failures until ``deadline`` (see :class:`JobPoller`).

    The kwargs are a serialized contract (triggers written by one release run under another), so
    their names stay as first released; ``initial_delays`` is the operator's (and
    :class:`JobPoller`'s) ``initial_poll_delays``.
    """

    def __init__(
        self,
        *,
        job_id: str,
        deadline: float,
        openrouter_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        max_consecutive_failures: int | None = None,
        submitted_at: float | None = None,
        initial_delays: list[float] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.job_id = job_id
        self.deadline = float(deadline)
        self.openrouter_conn_id = openrouter_conn_id
        self.poll_interval = float(poll_interval)
        self.submitted_at = None if submitted_at is None else float(submitted_at)
        self.initial_delays = [float(d) for d in initial_delays or ()]

    @classmethod
    def for_poller(cls, poller: JobPoller, openrouter_conn_id: str) -> OpenRouterVideoTrigger:
        """The trigger that runs ``poller`` in the triggerer (the operator builds the poller once,
        for this and for its ``deferrable=False`` loop)."""
        return cls(
            job_id=poller.job_id,
            deadline=poller.deadline,
            openrouter_conn_id=openrouter_conn_id,
            poll_interval=poller.poll_interval,
            submitted_at=poller.submitted_at,
            initial_delays=list(poller.initial_poll_delays),
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and JSON-primitive kwargs. New kwargs must get defaults (rolling upgrades)."""
        return (
            self._classpath(),
            {
                "job_id": self.job_id,
                "deadline": self.deadline,
                "openrouter_conn_id": self.openrouter_conn_id,
                "poll_interval": self.poll_interval,
                "submitted_at": self.submitted_at,
                "initial_delays": self.initial_delays,
            },
        )

    @classmethod
    def job_waited_for(cls, classpath: str, kwargs: Any, *, conn_id: str) -> str | None:
        """The job a serialized trigger row (``classpath``, ``kwargs``) waits on through the connection
        ``conn_id``, or ``None`` if the row is not this trigger's or polls through another connection.

        For the webhook receiver, which must read rows written by this release and earlier ones:
        the classpath :meth:`serialize` writes, or the one every release so far wrote; a row
        without ``openrouter_conn_id`` polls through :data:`DEFAULT_CONN_ID`.
        """
        if classpath not in (cls._classpath(), _RELEASED_CLASSPATH) or not isinstance(kwargs, Mapping):
            return None
        if kwargs.get("openrouter_conn_id", DEFAULT_CONN_ID) != conn_id:
            return None
        job_id = kwargs.get("job_id")
        return job_id if isinstance(job_id, str) and job_id else None

    @classmethod
    def waits_for(cls, classpath: str, kwargs: Any, *, conn_id: str, job_id: str) -> bool:
        """Whether a serialized trigger row waits on ``job_id`` through ``conn_id`` (see
        :meth:`job_waited_for`)."""
        return cls.job_waited_for(classpath, kwargs, conn_id=conn_id) == job_id

    @staticmethod
    def deadline_of(kwargs: Mapping[str, Any]) -> float | None:
        """The absolute deadline (Unix seconds) in a serialized trigger's kwargs, if it has a usable one."""
        deadline = kwargs.get("deadline")
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
            return None
        return float(deadline)

    @classmethod
    def _classpath(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    def poller(self) -> JobPoller:
        """The poll decision for this trigger's job, rebuilt from the kwargs."""
        return JobPoller(
            job_id=self.job_id,
            deadline=self.deadline,
            poll_interval=self.poll_interval,
            submitted_at=self.submitted_at,
            initial_poll_delays=tuple(self.initial_delays),
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook

        poller = self.poller()
        hook = OpenRouterVideoHook(self.openrouter_conn_id)
        state = PollState()
        try:
            await asyncio.sleep(poller.first_delay(time.time()))
            while True:
                # The async twin of polling.poll_until_event: the same step, the same report.
                answer: VideoJob | OpenRouterVideoError
                try:
                    answer = await hook.aget_job(self.job_id)
                except OpenRouterVideoError as error:
                    answer = error
                step = poller.step(state, answer, now=time.time(), jitter=random.random())
                report(step, self.log)
                state = step.state
                if step.event is not None:
                    self.log.info("Trigger finished for job %s: %s", self.job_id, step.event.status)
                    # The deadline travels with the event: a download that fails after it can
                    # wait for the paid job again, until that same deadline.
                    event = replace(step.event, deadline=self.deadline)
                    yield TriggerEvent(event.to_payload())  # type: ignore[no-untyped-call]
                    return
                await asyncio.sleep(step.delay or 0.0)
        finally:
            await hook.aclose()

    async def on_kill(self) -> None:
        """The task stopped waiting on this trigger: a webhook resumed it, or a user marked it
        failed/success or cleared it. Airflow 3.3 calls this in both cases and cannot tell which."""
        self.log.warning(
            "Stopped waiting on OpenRouter video job %s: either its webhook resumed the task (then the "
            "task downloads the video), or a user stopped or cleared the task. In that case the job "
            "keeps rendering (OpenRouter has no cancel endpoint) and is billed if it completes.",
            self.job_id,
        )
