"""What a video task builds from its Airflow context and settings before it talks to OpenRouter:
its job lifecycle and how it waits.

Shared by the operators that hold a job (``OpenRouterVideoOperator``, which submits it, and
``OpenRouterVideoDownloadOperator``, which downloads a job submitted elsewhere), so that both
keep their record in the same durable store, treat a spend ledger that cannot be opened the same
way, and scale their polls the same way. Everything runs when a task runs, never at DAG parse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_orvideo._internal.lifecycle import JobHook, TaskIdentity, VideoJobLifecycle
from airflow_provider_orvideo._internal.waiting import WaitPlan

if TYPE_CHECKING:
    from airflow_provider_orvideo.polling import JobPoller

__all__ = ["defer_to_trigger", "task_lifecycle", "task_wait_plan"]


def task_lifecycle(
    hook: JobHook,
    context: Mapping[str, Any],
    log: Any,
    *,
    conn_id: str,
    orphan_policy: str = "fail",
    resubmit_failed: bool = False,
    paid: bool = True,
) -> VideoJobLifecycle:
    """The task instance's job lifecycle, on its durable store (``compat.task_state_store``) and
    the spend ledger.

    ``paid``: a job may exist, so a ledger that cannot be opened is logged and skipped (the video
    comes first); before paying it fails the task instead (nothing spent, a retry tries again).
    """
    from airflow_provider_orvideo._internal.compat import task_state_store
    from airflow_provider_orvideo._internal.ledger import configured_ledger
    from airflow_provider_orvideo._internal.submission import OrphanPolicy

    policy, ti = OrphanPolicy(orphan_policy), TaskIdentity.of(context["ti"])
    store = task_state_store(context)
    try:
        ledger = configured_ledger()
    except Exception as error:
        if not paid:
            raise
        log.warning("The spend ledger cannot be opened (%s); this job's ending is not booked.", error)
        ledger = None
    try_number = getattr(context["ti"], "try_number", None)
    return VideoJobLifecycle(
        hook,
        store,
        ti,
        policy,
        resubmit_failed,
        log,
        ledger=ledger,
        conn_id=conn_id,
        try_number=try_number if isinstance(try_number, int) else None,
    )


def task_wait_plan(
    base_url: str,
    log: Any,
    *,
    job_id: str | None,
    poll_interval: float,
    initial_poll_delays: Sequence[float],
    job_timeout: float,
    webhook_poll_interval: float,
) -> WaitPlan:
    """How a task waits for its job through a connection to ``base_url``, with ``[openrouter]
    loopback_poll_scale`` applied (an emulator on this machine); ``job_id``: the job that exists
    already, if any (named when the setting is unusable)."""
    from airflow.configuration import conf

    from airflow_provider_orvideo._internal.waiting import checked_poll_scale

    configured = conf.get("openrouter", "loopback_poll_scale", fallback=None)
    scale = checked_poll_scale(base_url, configured, job_id=job_id)
    if scale != 1.0:
        log.info("Poll delays x %s: the connection points at this machine (%s).", scale, base_url)
    delays = tuple(initial_poll_delays)
    return WaitPlan(poll_interval, delays, job_timeout, webhook_poll_interval, scale)


def defer_to_trigger(operator: Any, poller: JobPoller, conn_id: str) -> NoReturn:
    """Wait in the triggerer for ``poller``'s job (only ``GET``s); the task resumes in the
    operator's ``execute_complete``. The deferral's timeout is the poller's deadline plus grace,
    so Airflow's own timeout never ends a wait the trigger would still finish."""
    import time
    from datetime import timedelta

    from airflow_provider_orvideo._internal.waiting import deferral_timeout
    from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger

    operator.defer(
        trigger=OpenRouterVideoTrigger.for_poller(poller, conn_id),
        method_name="execute_complete",
        timeout=timedelta(seconds=deferral_timeout(poller, now=time.time())),
    )
    raise AssertionError("BaseOperator.defer raises TaskDeferred")  # pragma: no cover
