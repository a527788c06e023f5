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
3. :func:`announce_completed_job` (optional, the connection's ``webhook_asset`` extra): each
   completed job becomes one asset event with the job's facts, so a DAG scheduled on that asset
   runs per generated video, whether or not a deferred task waited for it.
4. :func:`build_app`: the HTTP driver (body size limit, status codes).

Why this is safe with several api-server replicas, triggerers and restarts: the only state is
the task instance row, changed under a row lock and only while it is ``deferred`` on the right
job, so a duplicate, a concurrent replica or a late poll of the trigger finds nothing to do; no
receiver or triggerer holds anything in memory that a restart would lose (the per-process
duplicate record only saves work). The worker that resumes confirms the job with one GET.

Why a flood costs little: the endpoint has no login, so every value in a request is the
sender's choice, the ``conn_id`` included, and nothing a refusal costs may grow with the values it
names. Connection lookups are cached for the connections that have a secret (real ones only) and
otherwise drawn from a small shared budget (:class:`SettingsCache`, :class:`LookupBudget`; past it
the answer is 503 without a lookup, OpenRouter delivers a genuine event again, and the trigger's
safety poll finds the job anyway); refusal log lines are throttled per kind, and per connection
only for connections with a secret (:class:`LogThrottle`). So forged requests naming 10,000
connection ids cost 10 lookups at once, then 10 a minute, and one log line per minute per kind.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
    "WEBHOOK_ASSET_EXTRA",
    "WEBHOOK_PATH",
    "WEBHOOK_SECRET_EXTRA",
    "AnnounceOutcome",
    "LogThrottle",
    "LookupBudget",
    "ReceiverSettings",
    "Reply",
    "ResumeOutcome",
    "SettingsCache",
    "announce_completed_job",
    "asset_event_extra",
    "build_app",
    "receive",
    "receiver_settings",
    "resume_waiting_task",
]

log = logging.getLogger("airflow_provider_orvideo.plugins.webhook_receiver")
"""Named as before the module became private: a deployment's log filters and alerts key on it."""

WEBHOOK_PATH = "/webhook"
"""Below the plugin's ``/orvideo`` prefix: ``https://<api-server>/orvideo/webhook``."""
WEBHOOK_SECRET_EXTRA = "webhook_secret"
"""The connection extra holding OpenRouter's webhook signing secret (masked by Airflow: "secret")."""
WEBHOOK_ASSET_EXTRA = "webhook_asset"
"""The connection extra naming an asset (URI or name) that gets one event per completed job."""
RECENT_ASSET_EVENTS_CHECKED = 500
"""How many of the asset's latest events are searched for the job before announcing it again."""
MAX_BODY_BYTES = 64 * 1024
"""A documented event is a few hundred bytes; anything past 64 KiB is refused unread (413)."""
FUTURE_SKEW_SECONDS = 30.0
"""How far ahead of this host's clock a signature may be dated: clock skew, nothing more."""
RETRY_AFTER_SECONDS = 1
SETTINGS_TTL_SECONDS = 30.0
"""How long the receiver reuses a connection's settings: a changed or removed secret applies
within 30 s, and a connection with a secret costs one lookup per 30 s however often it is named."""
KNOWN_CONNECTIONS_CACHED = 64
"""Connections with a secret remembered at once (only real, configured connections compete)."""
REFUSED_CONNECTIONS_CACHED = 256
"""Connection ids without a secret remembered at once (so a repeated one costs no lookup)."""
LOOKUP_BURST = 10
"""Lookups of connection ids not known to have a secret that may happen at once (a cold start)."""
LOOKUP_REFILL_SECONDS = 6.0
"""One more such lookup allowed per 6 s: a flood of made-up ids costs 10 lookups a minute."""
BUSY_RETRY_AFTER_SECONDS = 10
"""``Retry-After`` of a delivery answered without a lookup: a genuine one comes back later."""


@dataclass(frozen=True)
class ReceiverSettings:
    """What the receiver reads from a connection: the signing secret, and the asset to announce on.

    ``problem`` says why a connection gave nothing (e.g. ``AirflowNotFoundException``): it goes
    into the refusal's throttled log line, so a missing connection costs no log line of its own.
    """

    secret: str | None = field(default=None, repr=False)
    asset: str | None = None
    problem: str | None = None


class AnnounceOutcome(str, enum.Enum):
    """What :func:`announce_completed_job` did (its value is the answer's ``asset_event``)."""

    REGISTERED = "registered"
    ALREADY_REGISTERED = "already_registered"
    UNKNOWN_ASSET = "unknown_asset"
    """No active asset with that URI or name: no DAG declares it (logged on the api-server)."""


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
    asset_event: str | None = None

    def body(self) -> dict[str, str]:
        body = {"outcome": self.outcome, "detail": self.detail}
        if self.asset_event is not None:
            body["asset_event"] = self.asset_event
        return body


class LogThrottle:
    """At most one log line per key per ``interval`` seconds, saying how many were held back.

    A refused delivery is logged so an operator can see a misconfiguration, but anyone can POST to
    the endpoint: without a throttle a flood of forged requests would flood the api-server's log.
    The keys must be ones a sender cannot multiply (:func:`receive` keys by the refusal's kind,
    and by connection only for a connection with a secret): ``max_keys`` bounds the memory, not
    the lines, since a forgotten key logs again at once.
    """

    def __init__(self, interval: float = 60.0, max_keys: int = 256) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allow(self, key: str, now: float) -> tuple[bool, int]:
        """``(log it?, lines held back since the last one logged for key)``."""
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return False, 0
        self._last[key] = (now, 0)
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return True, 0 if last is None else last[1]


class LookupBudget:
    """A token bucket for connection lookups: ``capacity`` at once, one more per ``refill_seconds``.

    The query's ``conn_id`` is the sender's choice, so without a budget a flood naming a new id per
    request would cost the api-server one database or secrets-backend lookup per request. With it
    such a flood costs ``capacity`` lookups plus one per ``refill_seconds`` whatever its rate.
    """

    def __init__(self, capacity: int = LOOKUP_BURST, refill_seconds: float = LOOKUP_REFILL_SECONDS) -> None:
        if capacity < 1 or not refill_seconds > 0:
            raise ValueError(
                f"Need capacity >= 1 and refill_seconds > 0, got {capacity!r}, {refill_seconds!r}."
            )
        self.capacity = capacity
        self.refill_seconds = refill_seconds
        self._tokens = float(capacity)
        self._stamp: float | None = None

    def take(self, now: float) -> bool:
        """Spend one lookup if one is left at ``now`` (a monotonic clock)."""
        if self._stamp is not None:
            earned = max(0.0, now - self._stamp) / self.refill_seconds
            self._tokens = min(float(self.capacity), self._tokens + earned)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class SettingsCache:
    """Which connections' settings the receiver remembers, and when it may look one up.

    * Connections with a secret (at most ``max_known``): only real, configured connections get
      here, so they are kept apart from everything else and no flood of made-up ids evicts them.
      Each is looked up again once its entry is ``ttl`` seconds old, without asking the budget (a
      rotated or removed secret applies within ``ttl``); requests meanwhile keep its last settings,
      so that costs one lookup however many requests arrive.
    * Anything else that was looked up (no such connection, no secret; at most ``max_refused``, for
      ``ttl`` each): a repeated id costs no lookup. A flood may evict these: that costs a budgeted
      lookup later, nothing more.
    * An id in neither may be looked up only within the :class:`LookupBudget`, except once for each
      of ``expected`` (the default connection): so a flood that starts before the first genuine
      webhook does not keep the connection almost every deployment uses from being looked up.

    Not thread-safe: :func:`build_app` uses it from the event loop only.
    """

    def __init__(
        self,
        budget: LookupBudget | None = None,
        *,
        expected: Iterable[str] = (DEFAULT_CONN_ID,),
        ttl: float = SETTINGS_TTL_SECONDS,
        max_known: int = KNOWN_CONNECTIONS_CACHED,
        max_refused: int = REFUSED_CONNECTIONS_CACHED,
    ) -> None:
        self.budget = LookupBudget() if budget is None else budget
        self.ttl = ttl
        self.max_known = max_known
        self.max_refused = max_refused
        self._known: OrderedDict[str, tuple[float, ReceiverSettings]] = OrderedDict()
        self._refused: OrderedDict[str, tuple[float, ReceiverSettings]] = OrderedDict()
        self._first_lookup_free = set(expected)

    def get(self, conn_id: str, now: float) -> ReceiverSettings | None:
        """The settings of ``conn_id`` read less than ``ttl`` ago, if any."""
        for entries in (self._known, self._refused):
            entry = entries.get(conn_id)
            if entry is not None and now - entry[0] < self.ttl:
                entries.move_to_end(conn_id)
                return entry[1]
        return None

    def claim_lookup(self, conn_id: str, now: float) -> bool:
        """May ``conn_id`` be looked up now? Always for a connection with a secret (its entry then
        counts as fresh until the lookup's :meth:`put`), and the first time for an expected one;
        otherwise only within the budget."""
        entry = self._known.get(conn_id)
        if entry is not None:
            self._known[conn_id] = (now, entry[1])
            return True
        if conn_id in self._first_lookup_free:
            self._first_lookup_free.discard(conn_id)
            return True
        return self.budget.take(now)

    def put(self, conn_id: str, settings: ReceiverSettings, now: float) -> None:
        """Remember what a lookup of ``conn_id`` found."""
        self._known.pop(conn_id, None)
        self._refused.pop(conn_id, None)
        entries, limit = (
            (self._known, self.max_known) if settings.secret else (self._refused, self.max_refused)
        )
        entries[conn_id] = (now, settings)
        while len(entries) > limit:
            entries.popitem(last=False)


def _warn_throttled(throttle: LogThrottle, key: str, now: float, message: str, *args: object) -> None:
    """Log ``message`` unless ``key`` was logged within the throttle's interval; say how many were not."""
    logged, held_back = throttle.allow(key, now)
    if logged:
        log.warning("%s (%d more refused the same way since the last line.)", message % args, held_back)


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
    load_settings: Callable[[str], Awaitable[ReceiverSettings | None]],
    resume: Callable[[VideoWebhookEvent, CallbackTarget], Awaitable[ResumeOutcome]],
    announce: Callable[[VideoWebhookEvent, CallbackTarget, str], Awaitable[AnnounceOutcome]],
    deduplicator: WebhookDeduplicator,
    throttle: LogThrottle,
    now: float | None = None,
) -> Reply:
    """Decide the answer to one delivery; see the module docstring. Never raises for bad input.

    ``load_settings`` answers ``None`` when it did not look the connection up (the lookup budget is
    spent): the delivery is then refused with 503, as OpenRouter delivers a genuine one again.
    """
    try:
        target = CallbackTarget.from_query(query, DEFAULT_CONN_ID)
    except InvalidCallbackTargetError as error:
        return Reply(400, "bad_target", str(error))
    clock = time.time() if now is None else now
    settings = await load_settings(target.conn_id)
    if settings is None:
        _warn_throttled(
            throttle,
            "not_looked_up",
            clock,
            "Refusing an OpenRouter webhook for connection %r without looking the connection up: "
            "too many connection ids this receiver does not know were named lately (a flood of "
            "forged requests?). Answered 503, so OpenRouter delivers a genuine event again later.",
            target.conn_id,
        )
        return Reply(503, "busy", "The connection could not be looked up now.", BUSY_RETRY_AFTER_SECONDS)
    secret = settings.secret
    if not secret:
        _warn_throttled(
            throttle,
            "not_configured",
            clock,
            "Refusing an OpenRouter webhook: connection %r has no %r extra%s, so no webhook can be "
            "verified. Set it to the signing secret of OpenRouter's workspace settings.",
            target.conn_id,
            WEBHOOK_SECRET_EXTRA,
            "" if settings.problem is None else f" (it cannot be read: {settings.problem})",
        )
        return Reply(503, "not_configured", "This receiver has no signing secret for the connection.")
    try:
        event = verify_and_parse(
            raw_body,
            headers,
            secret,
            now=clock,
            tolerance_seconds=DEFAULT_TOLERANCE_SECONDS,
            future_tolerance_seconds=FUTURE_SKEW_SECONDS,
        )
    except InvalidWebhookPayloadError as error:
        return Reply(400, "bad_payload", str(error))
    except WebhookVerificationError as error:
        # Only a connection with a secret gets here: a real one, so keying by it is bounded.
        _warn_throttled(
            throttle,
            f"{type(error).__name__}:{target.conn_id}",
            clock,
            "Refusing an OpenRouter webhook for connection %r: %s",
            target.conn_id,
            error,
        )
        return Reply(401, "unverified", type(error).__name__)
    header_key = idempotency_key(headers)
    if header_key is not None and header_key != event.idempotency_key:
        return Reply(400, "bad_payload", "The idempotency key header does not match the signed body.")
    if not deduplicator.first_delivery(event.idempotency_key):
        return Reply(200, "duplicate", f"Delivery {event.idempotency_key} was already handled.")
    try:
        outcome = await resume(event, target) if target.names_task else None
        announced = None
        if settings.asset and event.succeeded:
            announced = await announce(event, target, settings.asset)
    except Exception:
        deduplicator.forget(event.idempotency_key)
        log.exception("Could not act on the webhook of OpenRouter video job %s", event.job_id)
        return Reply(503, "error", "The webhook could not be handled now.", RETRY_AFTER_SECONDS)
    asset_event = None if announced is None else announced.value
    if outcome is None:
        return Reply(
            200,
            "no_task_named",
            f"Job {event.job_id} is {event.status}; the URL names no task.",
            asset_event=asset_event,
        )
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
        asset_event=asset_event,
    )


def receiver_settings(conn_id: str) -> ReceiverSettings:
    """The connection's ``webhook_secret`` and ``webhook_asset`` extras (no secret for a missing
    connection or extra: then every webhook is refused). Blocking. Logs nothing: the id is the
    sender's choice, so why a connection gave nothing goes into ``problem``, for the refusal's
    throttled line."""
    from airflow.models.connection import Connection

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except Exception as error:  # AirflowNotFoundException, or a secrets backend that is down
        return ReceiverSettings(problem=type(error).__name__)
    try:
        extra = conn.extra_dejson
    except Exception as error:
        return ReceiverSettings(problem=type(error).__name__)
    if not isinstance(extra, Mapping):
        return ReceiverSettings(problem="its extra is not a JSON object")

    def text(name: str) -> str | None:
        value = extra.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    return ReceiverSettings(secret=text(WEBHOOK_SECRET_EXTRA), asset=text(WEBHOOK_ASSET_EXTRA))


def asset_event_extra(event: VideoWebhookEvent, target: CallbackTarget) -> dict[str, Any]:
    """The facts of a completed job an asset event carries (JSON; no signed URL, no secret)."""
    facts: dict[str, Any] = {
        "source": "openrouter_webhook",
        "job_id": event.job_id,
        "status": event.status,
        "generation_id": event.generation_id,
        "model": event.model,
        "cost": event.cost,
        "is_byok": event.is_byok,
        "unsigned_urls": list(event.unsigned_urls),
        "created_at": event.created_at,
        "openrouter_conn_id": target.conn_id,
    }
    if target.names_task:
        facts.update(
            dag_id=target.dag_id, task_id=target.task_id, run_id=target.run_id, map_index=target.map_index
        )
    return facts


def announce_completed_job(
    event: VideoWebhookEvent, target: CallbackTarget, asset_ref: str
) -> AnnounceOutcome:
    """One asset event on ``asset_ref`` (URI or name) per completed job, at most once. Blocking.

    The asset's row is locked while its latest events are searched for the job, so replicas and
    redeliveries announce a job once.
    """
    from airflow.assets.manager import AssetManager
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import with_row_locks
    from sqlalchemy import or_, select

    with create_session() as session:
        query = select(AssetModel).where(or_(AssetModel.uri == asset_ref, AssetModel.name == asset_ref))
        asset = session.scalars(with_row_locks(query, session=session, of=AssetModel)).first()
        if asset is None:
            log.warning(
                "OpenRouter webhooks: no asset %r (the connection's %r extra); no DAG declares it, so "
                "job %s is not announced.",
                asset_ref,
                WEBHOOK_ASSET_EXTRA,
                event.job_id,
            )
            return AnnounceOutcome.UNKNOWN_ASSET
        recent = session.scalars(
            select(AssetEvent.extra)
            .where(AssetEvent.asset_id == asset.id)
            .order_by(AssetEvent.id.desc())
            .limit(RECENT_ASSET_EVENTS_CHECKED)
        )
        if any(isinstance(extra, Mapping) and extra.get("job_id") == event.job_id for extra in recent):
            return AnnounceOutcome.ALREADY_REGISTERED
        registered = AssetManager.register_asset_change(
            asset=asset, extra=asset_event_extra(event, target), session=session
        )
    return AnnounceOutcome.REGISTERED if registered is not None else AnnounceOutcome.UNKNOWN_ASSET


def resume_waiting_task(event: VideoWebhookEvent, target: CallbackTarget) -> ResumeOutcome:
    """Hand ``event`` to the task instance ``target`` names, if it still waits for that job. Blocking.

    The event carries the trigger's deadline: if OpenRouter's GET contradicts the webhook, the
    task waits again until then, not for a fresh ``job_timeout`` per contradicted webhook.
    """
    from dataclasses import replace

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger, handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import with_row_locks
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger

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
        if trigger is None:
            return ResumeOutcome.NOT_WAITING
        kwargs: Any = trigger.kwargs
        waited_for = OpenRouterVideoTrigger.job_waited_for(trigger.classpath, kwargs, conn_id=target.conn_id)
        if waited_for is None:
            return ResumeOutcome.NOT_WAITING
        if waited_for != event.job_id:
            return ResumeOutcome.OTHER_JOB
        hint = replace(payload, deadline=OpenRouterVideoTrigger.deadline_of(kwargs))
        handle_event_submit(TriggerEvent(hint.to_payload()), task_instance=ti, session=session)  # type: ignore[no-untyped-call]
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
    load_settings: Callable[[str], ReceiverSettings] = receiver_settings,
    resume: Callable[[VideoWebhookEvent, CallbackTarget], ResumeOutcome] = resume_waiting_task,
    announce: Callable[[VideoWebhookEvent, CallbackTarget, str], AnnounceOutcome] = announce_completed_job,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The receiver's FastAPI app (the blocking lookups run in the thread pool; ``clock`` drives
    the settings cache and its lookup budget)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="OpenRouter video webhooks", openapi_url=None, docs_url=None, redoc_url=None)
    deduplicator = WebhookDeduplicator()
    throttle = LogThrottle()
    cache = SettingsCache()

    async def settings_of(conn_id: str) -> ReceiverSettings | None:
        now = clock()
        settings = cache.get(conn_id, now)
        if settings is None:
            if not cache.claim_lookup(conn_id, now):
                return None
            settings = await run_in_threadpool(load_settings, conn_id)
            cache.put(conn_id, settings, clock())
        return settings

    async def resume_task(event: VideoWebhookEvent, target: CallbackTarget) -> ResumeOutcome:
        return await run_in_threadpool(resume, event, target)

    async def announce_job(
        event: VideoWebhookEvent, target: CallbackTarget, asset_ref: str
    ) -> AnnounceOutcome:
        return await run_in_threadpool(announce, event, target, asset_ref)

    async def openrouter_webhook(request: Any) -> JSONResponse:
        raw_body = await _read_limited(request, MAX_BODY_BYTES)
        if raw_body is None:
            reply = Reply(413, "too_large", f"The body is larger than {MAX_BODY_BYTES} bytes.")
        else:
            reply = await receive(
                raw_body,
                request.headers,
                request.query_params.multi_items(),
                load_settings=settings_of,
                resume=resume_task,
                announce=announce_job,
                deduplicator=deduplicator,
                throttle=throttle,
            )
        headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after else None
        return JSONResponse(reply.body(), status_code=reply.status, headers=headers)

    # A plain Starlette route: the handler reads the raw body itself (the signature covers the
    # exact bytes), so FastAPI's parameter parsing has nothing to do.
    app.router.add_route(WEBHOOK_PATH, openrouter_webhook, methods=["POST"], name="openrouter_webhook")
    return app
