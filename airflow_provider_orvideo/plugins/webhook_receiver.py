"""The webhook receiver: OpenRouter's signed ``video.generation.*`` event resumes the waiting task.

Mounted in Airflow's api-server by :class:`~airflow_provider_orvideo.plugins.openrouter_video.OpenRouterVideoPlugin`
at ``/orvideo/webhook``. One request is handled in three steps, each of which exists once:

1. :func:`receive` decides (no I/O of its own; the secret lookup and the resume are injected):
   the query names a connection and, usually, the task instance the operator submitted for
   (:class:`~airflow_provider_orvideo.webhooks.CallbackTarget`); the connection's
   ``webhook_secret`` extra verifies the signature over the raw body (a connection without one
   refuses everything); the timestamp must be at most 5 minutes old and at most
   :data:`FUTURE_SKEW_SECONDS` ahead; a redelivery already handled by this process is acknowledged
   and dropped.
2. :func:`resume_waiting_task` (the metadata database, one transaction): lock the named task
   instance's row, and only if it is still deferred on an :class:`OpenRouterVideoTrigger` waiting
   for the signed job id through the same connection, hand it the event with Airflow's own
   ``handle_event_submit``: exactly what the triggerer does when a trigger fires. The task goes
   back to the scheduler; the trigger, now unused, is removed by the triggerer.
3. :func:`build_app`: the HTTP driver (body size limit, status codes).

Why this is safe with several api-server replicas, triggerers and restarts: the only state is
the task instance row, changed under a row lock and only while it is ``deferred`` on the right
job, so a duplicate, a concurrent replica or a late poll of the trigger finds nothing to do; no
receiver or triggerer holds anything in memory that a restart would lose (the per-process
duplicate record only saves work). The worker that resumes confirms the job with one GET.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_orvideo.defaults import DEFAULT_CONN_ID
from airflow_provider_orvideo.exceptions import (
    InvalidCallbackTargetError,
    InvalidWebhookPayloadError,
    WebhookVerificationError,
)
from airflow_provider_orvideo.polling import terminal_event
from airflow_provider_orvideo.webhooks import (
    DEFAULT_TOLERANCE_SECONDS,
    CallbackTarget,
    VideoWebhookEvent,
    WebhookDeduplicator,
    idempotency_key,
    verify_and_parse,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "FUTURE_SKEW_SECONDS",
    "MAX_BODY_BYTES",
    "WEBHOOK_PATH",
    "WEBHOOK_SECRET_EXTRA",
    "Reply",
    "ResumeOutcome",
    "build_app",
    "receive",
    "resume_waiting_task",
    "webhook_secret",
]

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhook"
"""Below the plugin's ``/orvideo`` prefix: ``https://<api-server>/orvideo/webhook``."""
WEBHOOK_SECRET_EXTRA = "webhook_secret"
"""The connection extra holding OpenRouter's webhook signing secret (masked by Airflow: "secret")."""
MAX_BODY_BYTES = 64 * 1024
"""A documented event is a few hundred bytes; anything past 64 KiB is refused unread (413)."""
FUTURE_SKEW_SECONDS = 30.0
"""How far ahead of this host's clock a signature may be dated: clock skew, nothing more."""
TRIGGER_CLASSPATH = "airflow_provider_orvideo.triggers.openrouter_video.OpenRouterVideoTrigger"
RETRY_AFTER_SECONDS = 1


class ResumeOutcome(str, enum.Enum):
    """What :func:`resume_waiting_task` found (its value is the answer's ``outcome``)."""

    RESUMED = "resumed"
    NOT_DEFERRED_YET = "not_deferred_yet"
    """The task instance runs its submit and has not deferred yet: OpenRouter should deliver again."""
    NOT_WAITING = "not_waiting"
    """It finished, failed, waits on something else, or its trigger polls through another connection."""
    OTHER_JOB = "other_job"
    """It waits on a different job (a later try submitted anew): this event is not its."""
    NO_TASK = "no_task"


@dataclass(frozen=True)
class Reply:
    """The answer to one delivery: HTTP status, a one-word outcome and a sentence for the log."""

    status: int
    outcome: str
    detail: str
    retry_after: int | None = None

    def body(self) -> dict[str, str]:
        return {"outcome": self.outcome, "detail": self.detail}


_ANSWERS: Mapping[ResumeOutcome, int] = {
    ResumeOutcome.RESUMED: 200,
    ResumeOutcome.NOT_DEFERRED_YET: 503,
    ResumeOutcome.NOT_WAITING: 200,
    ResumeOutcome.OTHER_JOB: 200,
    ResumeOutcome.NO_TASK: 200,
}
"""2xx whenever delivering again cannot help; 503 (with Retry-After) when it can."""


async def receive(
    raw_body: bytes,
    headers: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    *,
    load_secret: Callable[[str], Awaitable[str | None]],
    resume: Callable[[VideoWebhookEvent, CallbackTarget], Awaitable[ResumeOutcome]],
    deduplicator: WebhookDeduplicator,
    now: float | None = None,
) -> Reply:
    """Decide the answer to one delivery; see the module docstring. Never raises for bad input."""
    try:
        target = CallbackTarget.from_query(query, DEFAULT_CONN_ID)
    except InvalidCallbackTargetError as error:
        return Reply(400, "bad_target", str(error))
    secret = await load_secret(target.conn_id)
    if not secret:
        log.warning(
            "Refusing an OpenRouter webhook: connection %r has no %r extra, so no webhook can be "
            "verified. Set it to the signing secret of OpenRouter's workspace settings.",
            target.conn_id,
            WEBHOOK_SECRET_EXTRA,
        )
        return Reply(503, "not_configured", "This receiver has no signing secret for the connection.")
    try:
        event = verify_and_parse(
            raw_body,
            headers,
            secret,
            now=time.time() if now is None else now,
            tolerance_seconds=DEFAULT_TOLERANCE_SECONDS,
            future_tolerance_seconds=FUTURE_SKEW_SECONDS,
        )
    except InvalidWebhookPayloadError as error:
        return Reply(400, "bad_payload", str(error))
    except WebhookVerificationError as error:
        log.warning("Refusing an OpenRouter webhook for connection %r: %s", target.conn_id, error)
        return Reply(401, "unverified", type(error).__name__)
    header_key = idempotency_key(headers)
    if header_key is not None and header_key != event.idempotency_key:
        return Reply(400, "bad_payload", "The idempotency key header does not match the signed body.")
    if not deduplicator.first_delivery(event.idempotency_key):
        return Reply(200, "duplicate", f"Delivery {event.idempotency_key} was already handled.")
    if not target.names_task:
        return Reply(200, "no_task_named", f"Job {event.job_id} is {event.status}; the URL names no task.")
    try:
        outcome = await resume(event, target)
    except Exception:
        deduplicator.forget(event.idempotency_key)
        log.exception("Could not resume the task waiting on OpenRouter video job %s", event.job_id)
        return Reply(503, "error", "The task could not be resumed now.", RETRY_AFTER_SECONDS)
    if outcome is not ResumeOutcome.RESUMED:
        deduplicator.forget(event.idempotency_key)  # a later delivery may find the task deferred
    task = f"{target.dag_id}.{target.task_id}[{target.map_index}] of run {target.run_id}"
    log.info(
        "OpenRouter webhook for job %s (%s): %s for task %s.", event.job_id, event.status, outcome.value, task
    )
    status = _ANSWERS[outcome]
    return Reply(
        status,
        outcome.value,
        f"Job {event.job_id} is {event.status}: {outcome.value.replace('_', ' ')} ({task}).",
        RETRY_AFTER_SECONDS if status == 503 else None,
    )


def webhook_secret(conn_id: str) -> str | None:
    """The connection's signing secret, or ``None`` (missing connection, no extra). Blocking."""
    from airflow.models.connection import Connection

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except Exception:  # AirflowNotFoundException, or a secrets backend that is down
        log.warning("Cannot read connection %r for OpenRouter webhooks.", conn_id, exc_info=True)
        return None
    try:
        extra = conn.extra_dejson
    except Exception:
        return None
    value = extra.get(WEBHOOK_SECRET_EXTRA) if isinstance(extra, Mapping) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def resume_waiting_task(event: VideoWebhookEvent, target: CallbackTarget) -> ResumeOutcome:
    """Hand ``event`` to the task instance ``target`` names, if it still waits for that job. Blocking."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger, handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import with_row_locks
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    payload = terminal_event(event.job_id, event.status, event.error, source="webhook")
    if payload is None:  # parse_event admits terminal statuses only
        return ResumeOutcome.NOT_WAITING
    with create_session() as session:
        query = select(TaskInstance).where(
            TaskInstance.dag_id == target.dag_id,
            TaskInstance.task_id == target.task_id,
            TaskInstance.run_id == target.run_id,
            TaskInstance.map_index == target.map_index,
        )
        ti = session.scalar(with_row_locks(query, session=session, of=TaskInstance))
        if ti is None:
            return ResumeOutcome.NO_TASK
        if ti.state == TaskInstanceState.RUNNING and not ti.next_method:
            # Running its submit, about to defer (a resumed task keeps next_method while it runs).
            return ResumeOutcome.NOT_DEFERRED_YET
        if ti.state != TaskInstanceState.DEFERRED or ti.trigger_id is None:
            return ResumeOutcome.NOT_WAITING
        trigger = session.get(Trigger, ti.trigger_id)
        if trigger is None or trigger.classpath != TRIGGER_CLASSPATH:
            return ResumeOutcome.NOT_WAITING
        kwargs: Any = trigger.kwargs
        if kwargs.get("openrouter_conn_id", DEFAULT_CONN_ID) != target.conn_id:
            return ResumeOutcome.NOT_WAITING
        if kwargs.get("job_id") != event.job_id:
            return ResumeOutcome.OTHER_JOB
        handle_event_submit(TriggerEvent(payload.to_payload()), task_instance=ti, session=session)  # type: ignore[no-untyped-call]
    return ResumeOutcome.RESUMED


async def _read_limited(request: Any, limit: int) -> bytes | None:
    """The body, or ``None`` once it passes ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(
    *,
    load_secret: Callable[[str], str | None] = webhook_secret,
    resume: Callable[[VideoWebhookEvent, CallbackTarget], ResumeOutcome] = resume_waiting_task,
) -> FastAPI:
    """The receiver's FastAPI app (the blocking lookups run in the thread pool)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="OpenRouter video webhooks", openapi_url=None, docs_url=None, redoc_url=None)
    deduplicator = WebhookDeduplicator()

    async def secret_of(conn_id: str) -> str | None:
        return await run_in_threadpool(load_secret, conn_id)

    async def resume_task(event: VideoWebhookEvent, target: CallbackTarget) -> ResumeOutcome:
        return await run_in_threadpool(resume, event, target)

    async def openrouter_webhook(request: Any) -> JSONResponse:
        raw_body = await _read_limited(request, MAX_BODY_BYTES)
        if raw_body is None:
            reply = Reply(413, "too_large", f"The body is larger than {MAX_BODY_BYTES} bytes.")
        else:
            reply = await receive(
                raw_body,
                request.headers,
                request.query_params.multi_items(),
                load_secret=secret_of,
                resume=resume_task,
                deduplicator=deduplicator,
            )
        headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after else None
        return JSONResponse(reply.body(), status_code=reply.status, headers=headers)

    # A plain Starlette route: the handler reads the raw body itself (the signature covers the
    # exact bytes), so FastAPI's parameter parsing has nothing to do.
    app.router.add_route(WEBHOOK_PATH, openrouter_webhook, methods=["POST"], name="openrouter_webhook")
    return app
