"""Trigger that polls an OpenRouter video job until it ends, without holding a worker slot.

Invariants (each one is there because breaking it costs money or a video):

* **Poll only.** The job is submitted on the worker before deferring; ``run()`` only issues GETs,
  so running it twice (a triggerer restart, two HA triggerers) can never create a second job.
* **Restart-safe from kwargs.** ``run()`` may start from the top at any moment; everything it
  needs is in :meth:`serialize`: connection id, job id, poll interval, the *absolute* deadline.
  A restart re-polls at once and keeps the original deadline.
* **No secrets in kwargs or events.** The key is resolved in ``run()`` with the async
  connection API; the event carries the job id and OpenRouter's error text, never a URL.
* **Never block the loop.** All I/O is ``httpx.AsyncClient``; connection lookup is async.
* **Exactly one event**, from :data:`~airflow_provider_orvideo.polling.TRIGGER_EVENT_STATUSES`.
* ``cleanup()`` is left as the base class has it: it must never touch the remote job, because it
  also runs on every triggerer restart. There is no cancel endpoint anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_orvideo.exceptions import OpenRouterVideoError
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.polling import DEFAULT_MAX_CONSECUTIVE_FAILURES, JobPoller, PollState, PollStep


class OpenRouterVideoTrigger(BaseTrigger):
    """Polls ``GET /videos/{job_id}`` and yields one event when the job ends or the deadline passes.

    :param job_id: The submitted job's id.
    :param deadline: Absolute Unix time after which the trigger stops waiting (status ``timeout``).
    :param openrouter_conn_id: Airflow connection holding the key (resolved here, never serialized).
    :param poll_interval: Seconds between polls.
    :param max_consecutive_failures: Transient poll failures tolerated in a row before giving up.
    """

    def __init__(
        self,
        *,
        job_id: str,
        deadline: float,
        openrouter_conn_id: str = OpenRouterVideoHook.default_conn_name,
        poll_interval: float = 10.0,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.job_id = job_id
        self.deadline = float(deadline)
        self.openrouter_conn_id = openrouter_conn_id
        self.poll_interval = float(poll_interval)
        self.max_consecutive_failures = int(max_consecutive_failures)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and JSON-primitive kwargs. New kwargs must get defaults (rolling upgrades)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "deadline": self.deadline,
                "openrouter_conn_id": self.openrouter_conn_id,
                "poll_interval": self.poll_interval,
                "max_consecutive_failures": self.max_consecutive_failures,
            },
        )

    def _poller(self) -> JobPoller:
        return JobPoller(
            job_id=self.job_id,
            deadline=self.deadline,
            poll_interval=self.poll_interval,
            max_consecutive_failures=self.max_consecutive_failures,
        )

    def _report(self, step: PollStep) -> None:
        if step.log_message:
            self.log.info(step.log_message)
        if step.warning:
            self.log.warning(step.warning)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        poller = self._poller()
        hook = OpenRouterVideoHook(self.openrouter_conn_id)
        state = PollState()
        try:
            while True:
                try:
                    job = await hook.aget_job(self.job_id)
                except OpenRouterVideoError as error:
                    step = poller.on_error(state, error, now=time.time())
                else:
                    step = poller.on_job(state, job, now=time.time())
                self._report(step)
                state = step.state
                if step.event is not None:
                    self.log.info("Trigger finished for job %s: %s", self.job_id, step.event.status)
                    yield TriggerEvent(step.event.to_payload())  # type: ignore[no-untyped-call]
                    return
                await asyncio.sleep(step.delay or 0.0)
        finally:
            await hook.aclose()

    async def on_kill(self) -> None:
        """A user marked the deferred task failed/success or cleared it: say what happens to the job."""
        self.log.warning(
            "The task waiting on OpenRouter video job %s was stopped by a user. OpenRouter has no cancel "
            "endpoint, so the job keeps rendering and will be billed if it completes.",
            self.job_id,
        )
