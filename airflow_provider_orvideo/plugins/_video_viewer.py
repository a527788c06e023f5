"""The player page, the stream and the gallery, inside Airflow's api-server (Airflow 3.1+).

Routes, under the plugin's mount point ``/orvideo``:

* ``GET /watch/<dag>/<run>/<task>/<map index>``: the player page of a task instance (the
  "Watch video" link; Airflow's literal ``{MAP_INDEX}`` reads as -1);
* ``GET|HEAD /stream/<dag>/<run>/<task>/<map index>/<output>``: the video's bytes, with HTTP
  Range (seeking), from a local file or object storage;
* ``GET /gallery`` and ``GET /gallery/dag/<dag>``: the newest videos (filters ``dag_id``,
  ``model``, ``since``, ``until``; keyset pages ``after``) and the spend per DAG per day, from
  the spend ledger (:mod:`~airflow_provider_orvideo._internal.ledger`);
* ``GET /unkept`` (filter ``dag_id``): "Paid, not kept", the ledger's completed jobs whose video
  no task kept, newest first, with the command that fetches one.

Every request is authenticated with the browser's Airflow token (the ``_token`` cookie the UI
sets, or an ``Authorization: Bearer`` header) and authorised by Airflow's auth manager: reading
the DAG's task instances and XComs; the ledger's rows are shown only for the DAGs the user may
read that way. Nothing is cached between requests. What is served is only ever a location the
task instance recorded (see :mod:`~airflow_provider_orvideo.plugins._video_views`), opened once
and checked on what was opened (:mod:`~airflow_provider_orvideo.plugins._video_sources`).
Metadata-database work happens in the thread pool, in a session closed before any video byte is
sent; file and object-storage work in the pages' own few threads, each call with a deadline
(:func:`file_io`), and spend-ledger queries in a smaller pool of their own, also with a deadline
(:func:`ledger_io`), so no file and no ledger database can hold a thread of Airflow's shared
pool, nor the one stall the other. A ledger that cannot be read costs the gallery its chart (a
note says why, the log has one WARNING), never the page. Any input gets a 4xx: the checks of
:mod:`~airflow_provider_orvideo.plugins._video_views` refuse what the pages cannot have produced
before it reaches a database or the filesystem; refusals come before any ledger query.
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

# This module is imported only when the plugin's app is built, in the api-server.
from starlette.responses import Response as StarletteResponse

from airflow_provider_orvideo._internal.task_record import (
    OUTPUT_CONN_ID,
    OUTPUT_HOST,
    OUTPUT_PATHS,
    RECORDED_KEYS,
    USAGE,
    VIDEO_REQUEST,
)
from airflow_provider_orvideo.plugins._video_html import (
    PageUrls,
    render_error,
    render_gallery,
    render_unkept,
    render_watch,
)
from airflow_provider_orvideo.plugins._video_sources import STREAM_CHUNK_BYTES, Source, open_video, probe
from airflow_provider_orvideo.plugins._video_views import (
    GALLERY_PAGE_SIZE,
    SPEND_MAX_GROUPS,
    UNKEPT_SCANNED,
    UNKEPT_SHOWN,
    GalleryFilter,
    GalleryPage,
    InvalidViewRequest,
    RecordedVideo,
    Refused,
    Unavailable,
    UnkeptJob,
    Unreachable,
    UnsatisfiableRange,
    VideoTask,
    byte_range,
    encode_cursor,
    locate,
    output_index,
    spend_chart,
    spend_window,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    from airflow_provider_orvideo._internal.ledger import Ledger, SpendRow

__all__ = ["add_video_routes"]

log = logging.getLogger("airflow_provider_orvideo.plugins.video_viewer")
"""Named as before the module became private: a deployment's log filters and alerts key on it."""
T = TypeVar("T")

PAGE_HEADERS = {
    # No script at all, media and images only from here, framed only by Airflow's own UI.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; media-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}
MEDIA_HEADERS = {
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, max-age=0, must-revalidate",
    # Airflow <= 3.2's Starlette gzips any large response, 206 video included, when a client
    # accepts gzip; a declared encoding makes its GZip middleware pass the bytes through.
    "Content-Encoding": "identity",
}


class NotAuthenticated(Exception):
    """No usable Airflow token: pages redirect to the login, media and data answer 401."""


class Forbidden(Exception):
    """Authenticated, but the auth manager does not let this user read the DAG."""


# ------------------------------------------------------------------------------------ auth


async def current_user(request: Request) -> Any:
    """The Airflow user of the request: ``Authorization: Bearer`` first, else the UI's cookie.

    The token is checked by the auth manager on every request (signature, expiry, revocation)."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token
    from fastapi import HTTPException

    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" else ""
    try:
        return await resolve_user_from_token(token or request.cookies.get(COOKIE_NAME_JWT_TOKEN))
    except HTTPException as error:
        if error.status_code == 401:
            raise NotAuthenticated(str(error.detail)) from None
        raise Forbidden(str(error.detail)) from None


def _dag_details(dag_id: str) -> Any:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.models.dag import DagModel

    if hasattr(DagModel, "get_team_name") and "team_name" in getattr(DagDetails, "__dataclass_fields__", {}):
        return DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id))
    return DagDetails(id=dag_id)


def may_read(user: Any, dag_id: str) -> bool:
    """Whether ``user`` may read the DAG's task instances and XComs (what the videos come from)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    manager = get_auth_manager()
    details = _dag_details(dag_id)
    return all(
        manager.is_authorized_dag(method="GET", access_entity=entity, details=details, user=user)
        for entity in (DagAccessEntity.TASK_INSTANCE, DagAccessEntity.XCOM)
    )


def readable_dag_ids(user: Any) -> set[str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    manager = get_auth_manager()
    if not manager.is_authorized_dag(method="GET", access_entity=DagAccessEntity.XCOM, user=user):
        return set()
    return set(manager.get_authorized_dag_ids(user=user, method="GET"))


# ------------------------------------------------------------------------------------ database


def load_video(task: VideoTask) -> RecordedVideo | None:
    """The facts the task instance recorded, or None if it has not saved a video."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session(scoped=False) as session:
        rows = session.execute(
            select(XComModel.key, XComModel.value, XComModel.timestamp).where(
                XComModel.dag_id == task.dag_id,
                XComModel.run_id == task.run_id,
                XComModel.task_id == task.task_id,
                XComModel.map_index == task.map_index,
                XComModel.key.in_(RECORDED_KEYS),
            )
        ).all()
        if not rows:
            return None
        try_number = session.scalar(
            select(TaskInstance.try_number).where(
                TaskInstance.dag_id == task.dag_id,
                TaskInstance.run_id == task.run_id,
                TaskInstance.task_id == task.task_id,
                TaskInstance.map_index == task.map_index,
            )
        )
    values = {key: value for key, value, _ in rows}
    recorded_at = next((stamp for key, _, stamp in rows if key == OUTPUT_PATHS), None)
    return RecordedVideo.from_xcoms(task, values, recorded_at=recorded_at, try_number=try_number)


def _same_task_instance(other: Any, paths: Any) -> Any:
    from sqlalchemy import and_

    return and_(
        other.dag_run_id == paths.dag_run_id,
        other.task_id == paths.task_id,
        other.map_index == paths.map_index,
    )


GALLERY_KEYS = (OUTPUT_PATHS, VIDEO_REQUEST, USAGE, OUTPUT_CONN_ID, OUTPUT_HOST)
"""The XComs a gallery card is read from: a video task's saved video (the first two) and, when
recorded, its cost and where it is."""


def load_gallery(readable: set[str], filters: GalleryFilter) -> GalleryPage:
    """One page of the newest saved videos the user may read: one keyset-paged query."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import and_, or_, select
    from sqlalchemy.orm import aliased

    xcoms = {key: aliased(XComModel) for key in GALLERY_KEYS}
    paths, request = xcoms[OUTPUT_PATHS], xcoms[VIDEO_REQUEST]
    statement = (
        select(
            paths.dag_id,
            paths.run_id,
            paths.task_id,
            paths.map_index,
            paths.timestamp,
            paths.dag_run_id,
            *(xcom.value for xcom in xcoms.values()),
        )
        .join(request, and_(_same_task_instance(request, paths), request.key == VIDEO_REQUEST))
        .where(paths.key == OUTPUT_PATHS, paths.dag_id.in_(sorted(readable)))
        .order_by(
            paths.timestamp.desc(), paths.dag_run_id.desc(), paths.task_id.desc(), paths.map_index.desc()
        )
        .limit(GALLERY_PAGE_SIZE + 1)
    )
    for key in GALLERY_KEYS[2:]:  # recorded or not
        xcom = xcoms[key]
        statement = statement.outerjoin(xcom, and_(_same_task_instance(xcom, paths), xcom.key == key))
    if filters.dag_id:
        statement = statement.where(paths.dag_id == filters.dag_id)
    if filters.model:
        statement = statement.where(request.value["model"].as_string() == filters.model)
    if filters.recorded_from:
        statement = statement.where(paths.timestamp >= filters.recorded_from)
    if filters.recorded_before:
        statement = statement.where(paths.timestamp < filters.recorded_before)
    if filters.cursor:
        stamp, dag_run_pk, task_id, map_index = filters.cursor
        statement = statement.where(
            or_(
                paths.timestamp < stamp,
                and_(
                    paths.timestamp == stamp,
                    or_(
                        paths.dag_run_id < dag_run_pk,
                        and_(
                            paths.dag_run_id == dag_run_pk,
                            or_(
                                paths.task_id < task_id,
                                and_(paths.task_id == task_id, paths.map_index < map_index),
                            ),
                        ),
                    ),
                ),
            )
        )
    with create_session(scoped=False) as session:
        rows = session.execute(statement).all()
    videos: list[RecordedVideo] = []
    for dag_id, run_id, task_id, map_index, stamp, _, *values in rows[:GALLERY_PAGE_SIZE]:
        recorded = RecordedVideo.from_xcoms(
            VideoTask(dag_id, run_id, task_id, map_index),
            dict(zip(GALLERY_KEYS, values, strict=True)),
            recorded_at=stamp,
        )
        if recorded is not None:
            videos.append(recorded)
    next_cursor = None
    if len(rows) > GALLERY_PAGE_SIZE:
        last = rows[GALLERY_PAGE_SIZE - 1]
        next_cursor = encode_cursor(last[4], last[5], last[2], last[3])
    return GalleryPage(videos, next_cursor)


# ------------------------------------------------------------------------------------ file work


FILE_IO_THREADS = 4
"""Threads the pages may hold in file or object-storage work at once, in their own pool: a hung
mount or bucket can stall at most these, never the api-server's shared pool (Airflow's own
endpoints run there)."""
FILE_IO_TIMEOUT_SECONDS = 15.0
"""How long one open, check or read may take (a stream's deadline is per 4 MiB read): past it
the request answers 503, and a thread stuck in the kernel is abandoned (it holds one of
:data:`FILE_IO_THREADS` until the call returns)."""

LEDGER_THREADS = 2
"""Threads the pages may hold in spend-ledger queries at once, in a pool of their own (a hung
ledger database stalls at most these, never the file work nor Airflow's shared pool)."""
LEDGER_TIMEOUT_SECONDS = 10.0
"""How long the ledger work of one request may take; past it the chart gives way to a note."""

_limiters: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


class StorageTimeout(Exception):
    """File or object storage work did not finish in time (answered 503)."""


async def _own_threads(pool: str, threads: int, timeout: float, function: Callable[..., T], *args: Any) -> T:
    """Run blocking work in one of the pages' own thread pools (``threads`` at most per event
    loop), with a deadline that covers the wait for a thread; raises :class:`TimeoutError`."""
    import asyncio

    import anyio
    import anyio.to_thread

    limiters = _limiters.setdefault(asyncio.get_running_loop(), {})
    limiter = limiters.get(pool)
    if limiter is None:
        limiter = limiters[pool] = anyio.CapacityLimiter(threads)
    with anyio.fail_after(timeout):
        return await anyio.to_thread.run_sync(
            functools.partial(function, *args), limiter=limiter, abandon_on_cancel=True
        )


async def file_io(function: Callable[..., T], *args: Any) -> T:
    """Run blocking file or object-storage work in the pages' own threads, with a deadline."""
    try:
        return await _own_threads("files", FILE_IO_THREADS, FILE_IO_TIMEOUT_SECONDS, function, *args)
    except TimeoutError:
        raise StorageTimeout(
            f"The video's storage did not answer within {FILE_IO_TIMEOUT_SECONDS:g} s."
        ) from None


# ------------------------------------------------------------------------------------ spend ledger


class LedgerUnreadable(Exception):
    """The spend ledger could not be opened or read: the gallery shows this note instead of its
    chart; a page that is only the ledger's answers 503. ``detail`` (the error's first line: a
    database host, a file path) goes to the log only."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


LEDGER_ERRORS: tuple[type[Exception], ...] = (ImportError, OSError, ValueError)
"""Besides SQLAlchemy's and Airflow's errors (added where imported): a missing database driver,
an unreadable file, a malformed setting."""


def _ledger() -> Ledger:
    """This deployment's ledger, if the api-server sees the one tasks write to."""
    from airflow_provider_orvideo._internal.ledger import configured_ledger

    ledger = configured_ledger()
    if not ledger.shared:
        raise LedgerUnreadable(
            "the spend ledger is a SQLite file on each machine, and tasks run on other machines than "
            "this api-server: point [openrouter] ledger_conn_id at a shared database to see spend here"
        )
    return ledger


def _ledger_errors() -> tuple[type[Exception], ...]:
    import sqlalchemy as sa

    from airflow_provider_orvideo._internal.compat import AirflowException

    return (sa.exc.SQLAlchemyError, AirflowException, *LEDGER_ERRORS)


def _reading_ledger(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` (in a ledger thread), any failure to open or query the ledger as
    :class:`LedgerUnreadable`: its type on the page, its first line in the log."""
    try:
        return function(*args)
    except LedgerUnreadable:
        raise
    except _ledger_errors() as error:
        lines = str(getattr(error, "orig", None) or error).strip().splitlines()
        raise LedgerUnreadable(
            f"the spend ledger could not be read ({type(error).__name__}; the api-server's log says why)",
            f"{type(error).__name__}: {lines[0][:300] if lines else 'no message'}",
        ) from None


async def ledger_io(function: Callable[..., T], *args: Any) -> T:
    """Run spend-ledger queries in the pages' ledger threads, with a deadline; a ledger that
    cannot be read is :class:`LedgerUnreadable`, logged once as a WARNING."""
    try:
        try:
            return await _own_threads(
                "ledger", LEDGER_THREADS, LEDGER_TIMEOUT_SECONDS, _reading_ledger, function, *args
            )
        except TimeoutError:
            raise LedgerUnreadable(
                f"the spend ledger did not answer within {LEDGER_TIMEOUT_SECONDS:g} s"
            ) from None
    except LedgerUnreadable as error:
        log.warning("The video pages could not show spend: %s.", error.detail or error)
        raise


@dataclass(frozen=True)
class SpendReport:
    """The ledger's groups in the chart's window that the user may read, and whether the ledger
    returned them all (:data:`SPEND_MAX_GROUPS`)."""

    rows: list[SpendRow]
    complete: bool


SPEND_QUERIES_PER_DAG = 8
"""A user who may read at most this many DAGs gets one query per DAG (each on the ledger's
``(billed_day, dag_id)`` index), rather than every DAG's groups to filter."""


def load_spend(readable: set[str], dag_id: str | None, since_day: str, until_day: str) -> SpendReport:
    """Money per UTC day, DAG and connection from the spend ledger, only for the DAGs the user may
    read: one grouped query (filtered here), or one per DAG for a user who reads few."""
    if not readable:
        return SpendReport([], complete=True)
    ledger = _ledger()
    if dag_id is not None or len(readable) <= SPEND_QUERIES_PER_DAG:
        reports = [
            ledger.spend(since_day=since_day, until_day=until_day, dag_id=one, limit=SPEND_MAX_GROUPS)
            for one in ([dag_id] if dag_id is not None else sorted(readable))
        ]
        rows = [row for report in reports for row in report]
        complete = all(len(report) < SPEND_MAX_GROUPS for report in reports)
    else:
        rows = ledger.spend(since_day=since_day, until_day=until_day, limit=SPEND_MAX_GROUPS)
        complete = len(rows) < SPEND_MAX_GROUPS
    return SpendReport([row for row in rows if row.dag_id in readable], complete)


@dataclass(frozen=True)
class UnkeptList:
    jobs: list[UnkeptJob]
    searched_all: bool
    """False: fewer than :data:`UNKEPT_SHOWN` found, and some of the ledger's unkept jobs were not
    looked at (past the :data:`UNKEPT_SCANNED` read, or more than :data:`UNKEPT_SHOWN` that ended
    at the same instant)."""


def load_unkept(readable: set[str], dag_id: str | None) -> UnkeptList:
    """The newest :data:`UNKEPT_SHOWN` unkept jobs of DAGs the user may read (of ``dag_id`` only,
    when given), reading about :data:`UNKEPT_SCANNED` of the ledger's at most, newest first, in
    two queries (a third for each run of more than a query's worth of jobs that ended at the
    same instant, which the ledger's ``before`` cannot page within)."""
    import math

    if not readable:
        return UnkeptList([], searched_all=True)
    ledger = _ledger()
    shown: list[UnkeptJob] = []
    seen: set[str] = set()
    before: float | None = None
    searched_all = True
    while len(seen) < UNKEPT_SCANNED:
        # The newest first (enough for a user who reads most DAGs), then the rest in one query:
        # each is a scan of the ledger's table, whatever its limit.
        limit = UNKEPT_SHOWN if before is None else max(UNKEPT_SCANNED - len(seen), UNKEPT_SHOWN)
        rows = ledger.unkept(limit=limit, before=before)
        fresh = [row for row in rows if row["entry_id"] not in seen]
        for row in fresh:
            seen.add(row["entry_id"])
            job = UnkeptJob.from_entry(**row)
            if job is not None and job.task.dag_id in readable and dag_id in (None, job.task.dag_id):
                shown.append(job)
                if len(shown) == UNKEPT_SHOWN:
                    return UnkeptList(shown, searched_all=True)
        if len(rows) < limit:
            return UnkeptList(shown, searched_all=searched_all)
        ends = [row["ended_at"] for row in rows if isinstance(row["ended_at"], (int, float))]
        if not ends:
            break
        oldest = min(ends)
        if fresh:  # older than the oldest just read, and its ties again (seen ones are skipped)
            before = math.nextafter(oldest, math.inf)
        else:  # a whole query of jobs that ended at the same instant: step past the rest of them
            before, searched_all = oldest, False
    return UnkeptList(shown, searched_all=False)


# ------------------------------------------------------------------------------------ responses


def _urls(request: Request) -> PageUrls:
    return PageUrls(str(request.scope.get("root_path", "")).rstrip("/"))


def _html(body: str, status: int = 200) -> Response:
    from starlette.responses import HTMLResponse

    return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)


def _text(message: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
    from starlette.responses import PlainTextResponse

    return PlainTextResponse(
        message, status_code=status, headers={"X-Content-Type-Options": "nosniff", **(headers or {})}
    )


def _login_url(request: Request) -> str | None:
    """The auth manager's login page, back to this page after signing in; None without one."""
    from airflow.api_fastapi.app import get_auth_manager

    try:
        return str(get_auth_manager().get_url_login(next_url=str(request.url)))
    except Exception:  # an auth manager without a login page
        return None


Handler = Callable[["Request"], Awaitable["Response"]]


@dataclass(frozen=True)
class Refusal:
    """How the pages answer one kind of refusal: its status, the heading of its HTML page, and
    headers both forms carry."""

    status: int
    heading: str
    headers: Mapping[str, str] = field(default_factory=dict)
    media_prefix: str = ""
    """Before the message in a media answer (plain text)."""


REFUSALS: dict[type[Exception], Refusal] = {
    NotAuthenticated: Refusal(401, "Sign in to Airflow", media_prefix="Not authenticated: "),
    Forbidden: Refusal(403, "Not allowed"),
    InvalidViewRequest: Refusal(400, "Bad request"),
    StorageTimeout: Refusal(503, "Storage too slow", {"Retry-After": "30"}),
    LedgerUnreadable: Refusal(503, "Spend unavailable", {"Retry-After": "30"}),
}
"""Every refusal a route may raise; anything else is a bug, left to the api-server (500)."""


def _refused(request: Request, error: Exception, *, page: bool) -> Response:
    """The answer for a refusal: pages show an HTML page (or, signed out, go to the login), media
    answer plain text with the status alone."""
    from starlette.responses import RedirectResponse

    refusal = next(answer for kind, answer in REFUSALS.items() if isinstance(error, kind))
    if not page:
        return _text(f"{refusal.media_prefix}{error}", refusal.status, refusal.headers)
    message = str(error)
    if isinstance(error, NotAuthenticated):
        login = _login_url(request)
        if login is not None:
            return RedirectResponse(login, status_code=303)
        message = "Sign in to Airflow, then open this page again."
    response = _html(render_error(refusal.heading, message), refusal.status)
    response.headers.update(refusal.headers)
    return response


def _answered(kind: str) -> Callable[[Handler], Handler]:
    """The one place a refusal becomes an answer (:func:`_refused`), for every route: pages
    (``"page"``) and media (``"media"``)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except tuple(REFUSALS) as error:
                return _refused(request, error, page=kind == "page")

        return answer

    return decorate


def _task_of(request: Request) -> VideoTask:
    params = request.path_params
    return VideoTask.from_segments(params["dag_id"], params["run_id"], params["task_id"], params["map_index"])


async def _authorised_video(request: Request) -> tuple[VideoTask, RecordedVideo | None]:
    """The task the URL names and its recorded video, after authenticating and authorising."""
    from starlette.concurrency import run_in_threadpool

    task = _task_of(request)
    user = await current_user(request)
    if not await run_in_threadpool(may_read, user, task.dag_id):
        raise Forbidden(f"You may not read DAG {task.dag_id}.")
    return task, await run_in_threadpool(load_video, task)


def _no_video(task: VideoTask) -> str:
    return (
        f"Task {task.task_id} (map index {task.map_index}) of run {task.run_id} in DAG {task.dag_id} "
        "has not saved a video: it is not an OpenRouter video task, or it has not succeeded yet."
    )


@_answered("page")
async def watch_page(request: Request) -> Response:
    task, video = await _authorised_video(request)
    if video is None:
        return _html(render_error("No video yet", _no_video(task)), 404)
    locations = await file_io(lambda: [probe(video, index) for index in range(len(video.locations))])
    return _html(render_watch(video, locations, _urls(request)))


@_answered("media")
async def stream(request: Request) -> Response:
    index = output_index(request.path_params["index"])
    task, video = await _authorised_video(request)
    if video is None or index >= len(video.locations):
        return _text(
            f"Task {task.task_id} (map index {task.map_index}) of run {task.run_id} in DAG {task.dag_id} "
            f"recorded no output {index}.",
            404,
        )
    opened = await file_io(open_video, video, index)
    if isinstance(opened, (Unreachable, Unavailable, Refused)):
        return _text(opened.message, 404)
    try:
        return _ranged(request, opened)
    except BaseException:
        opened.close()
        raise


def _ranged(request: Request, source: Source) -> Response:
    """The answer for the request's ``Range`` over an opened source (which it closes when done)."""
    from starlette.responses import Response

    headers = {
        **MEDIA_HEADERS,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(source.name, safe='')}",
    }
    try:
        wanted = byte_range(request.headers.get("range"), source.size)
    except UnsatisfiableRange:
        source.close()
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{source.size}"})
    first, last = wanted if wanted is not None else (0, source.size - 1)
    headers["Content-Length"] = str(max(last - first + 1, 0))
    if wanted is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{source.size}"
    return SourceResponse(
        source,
        first=first,
        last=last,
        status_code=206 if wanted is not None else 200,
        headers=headers,
        send_body=request.method != "HEAD",
    )


class SourceResponse(StarletteResponse):
    """Streams bytes ``first``..``last`` of an opened source, one bounded read at a time in the
    pages' own threads, and closes the source however the response ends (done, client gone,
    storage too slow)."""

    def __init__(
        self,
        source: Source,
        *,
        first: int,
        last: int,
        status_code: int,
        headers: Mapping[str, str],
        send_body: bool,
    ) -> None:
        super().__init__(status_code=status_code, headers=dict(headers), media_type=source.media_type)
        self.source = source
        self.first = first
        self.last = last
        self.send_body = send_body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            offset = self.first
            while self.send_body and offset <= self.last:
                chunk = await file_io(
                    self.source.read, offset, min(STREAM_CHUNK_BYTES, self.last - offset + 1)
                )
                if not chunk:  # the file shrank under us: end the connection short, never pad
                    log.warning("A video being streamed shrank at byte %d; the stream was cut.", offset)
                    return
                offset += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": offset <= self.last})
            if not self.send_body or self.first > self.last:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (StorageTimeout, OSError) as error:
            # Too slow, or the object changed under an open stream (S3 refuses If-Match): the
            # headers are sent, so the only honest answer left is to end the stream short.
            log.warning("A video stream was cut: %s", error)
        finally:
            self.source.close()


@_answered("page")
async def gallery(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    fixed_dag = request.path_params.get("dag_id")
    filters = GalleryFilter.from_query(request.query_params, dag_id=fixed_dag)
    user = await current_user(request)
    readable = await run_in_threadpool(readable_dag_ids, user)
    if filters.dag_id and filters.dag_id not in readable:
        raise Forbidden(f"You may not read DAG {filters.dag_id}, or it does not exist.")
    today = datetime.now(timezone.utc).date()
    page = await run_in_threadpool(load_gallery, readable, filters)
    chart, spend_note, spend_dags = None, None, set()
    try:
        spend = await ledger_io(load_spend, readable, filters.dag_id, *spend_window(today))
        chart = spend_chart(spend.rows, today=today, complete=spend.complete)
        spend_dags = {row.dag_id for row in spend.rows}
    except LedgerUnreadable as error:
        spend_note = f"Spend unavailable: {error}."
    try:  # local files are checked for the cards' notes; a slow disk only loses the notes
        cards = await file_io(
            lambda: [(video, probe(video, 0, object_storage=False)) for video in page.videos]
        )
    except StorageTimeout:
        cards = [(video, locate(video, 0)) for video in page.videos]
    models = {video.model for video in page.videos if video.model} | (
        {filters.model} if filters.model else set()
    )
    return _html(
        render_gallery(
            videos=cards,
            chart=chart,
            spend_note=spend_note,
            filters=filters,
            next_cursor=page.next_cursor,
            urls=_urls(request),
            fixed_dag=fixed_dag,
            dag_options=sorted(spend_dags),
            model_options=sorted(models),
        )
    )


@_answered("page")
async def unkept_page(request: Request) -> Response:
    """Paid, not kept: completed jobs no task kept, of the DAGs the user may read."""
    from starlette.concurrency import run_in_threadpool

    dag_id = GalleryFilter.from_query({"dag_id": request.query_params.get("dag_id") or ""}).dag_id
    user = await current_user(request)
    readable = await run_in_threadpool(readable_dag_ids, user)
    if dag_id and dag_id not in readable:
        raise Forbidden(f"You may not read DAG {dag_id}, or it does not exist.")
    found = await ledger_io(load_unkept, readable, dag_id)
    return _html(
        render_unkept(
            jobs=found.jobs,
            searched_all=found.searched_all,
            dag_id=dag_id,
            now=datetime.now(timezone.utc),
            urls=_urls(request),
        )
    )


def add_video_routes(app: FastAPI) -> None:
    """Add the pages and the stream to the plugin's app (plain Starlette routes: each handler
    authenticates itself, so FastAPI's dependency machinery has nothing to do)."""
    segments = "{dag_id}/{run_id}/{task_id}/{map_index}"
    app.router.add_route(f"/watch/{segments}", watch_page, methods=["GET"], name="orvideo_watch")
    app.router.add_route(
        f"/stream/{segments}/{{index}}", stream, methods=["GET", "HEAD"], name="orvideo_stream"
    )
    app.router.add_route("/gallery", gallery, methods=["GET"], name="orvideo_gallery")
    app.router.add_route("/gallery/dag/{dag_id}", gallery, methods=["GET"], name="orvideo_dag_gallery")
    app.router.add_route("/unkept", unkept_page, methods=["GET"], name="orvideo_unkept")
