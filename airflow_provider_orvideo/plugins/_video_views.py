"""What the video pages decide, apart from HTTP and the database: which recorded file may be
served, the byte range asked for, the gallery's paging, the spend chart and the "Paid, not kept"
list (both from the spend ledger's rows), and the HTML.

The api-server side (:mod:`~airflow_provider_orvideo.plugins._video_viewer`) reads the facts the
operator recorded as XComs and the spend ledger's report, checks the user's permission and
streams the bytes; everything it decides goes through the plain functions here, which the tests
drive directly.

Serving rules (a DAG author controls what a task pushes to XCom, so a recorded location is
never trusted as such):

* a location is served only if the task instance named by the URL recorded it in its
  ``output_paths`` XCom; the URL picks an index into that list, never a path;
* a local file must be an absolute path with a video suffix; what is opened must be a regular
  file reached without following a link at the moment of opening, start with an MP4/QuickTime
  (``ftyp``) or WebM signature, have the size the task recorded, and, when it carries the
  provider's writer tag, have been written by that same task instance (all checked on the opened
  descriptor, which is then what is streamed: see
  :mod:`~airflow_provider_orvideo.plugins._video_sources`);
* object storage is opened with the connection the task recorded (``output_conn_id``), and only
  where the DAG may use that connection.

Every value that comes from a URL, a query string or a header is checked here before it reaches
the database or the filesystem: anything the pages cannot have produced is an
:class:`InvalidViewRequest` (400), never an exception further down (500).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Protocol

from airflow_provider_orvideo._internal.task_record import SavedVideo, recorded_request

__all__ = [
    "GALLERY_PAGE_SIZE",
    "MAP_INDEX_PLACEHOLDER",
    "SPEND_DAYS",
    "SPEND_MAX_GROUPS",
    "UNKEPT_SCANNED",
    "UNKEPT_SHOWN",
    "VIDEO_MEDIA_TYPES",
    "GalleryFilter",
    "GalleryPage",
    "InvalidViewRequest",
    "LocalVideo",
    "Location",
    "RecordedVideo",
    "Refused",
    "SpendChart",
    "SpendGroup",
    "StoredVideo",
    "Unavailable",
    "UnkeptJob",
    "Unreachable",
    "UnsatisfiableRange",
    "VideoTask",
    "age_text",
    "byte_range",
    "decode_cursor",
    "encode_cursor",
    "is_video_signature",
    "locate",
    "media_type_of",
    "output_index",
    "spend_chart",
    "spend_window",
]

MAP_INDEX_PLACEHOLDER = "{MAP_INDEX}"
"""Airflow 3.1-3.3 leave this in a plugin view's URL for a task instance that is not mapped."""

VIDEO_MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
}
"""The only file suffixes served, and their content types."""

GALLERY_PAGE_SIZE = 24
SPEND_DAYS = 30
SPEND_MAX_GROUPS = 20_000
"""The spend chart reads at most this many of the ledger's groups (one per UTC day, DAG and
connection: 30 days of 300 DAGs on two connections), newest day first."""
UNKEPT_SHOWN = 100
"""The "Paid, not kept" page lists at most this many jobs, newest first."""
UNKEPT_SCANNED = 1_000
"""...and reads about this many of the ledger's unkept jobs at most to find them: a user who may
read few DAGs sees theirs among the newest 1,000 (the page says when it stopped short)."""
CHART_SERIES = 8
"""DAGs drawn in their own colour; the rest are summed as "other DAGs"."""

SIGNATURE_BYTES = 12
"""How much of a file the signature check reads (an MP4 ``ftyp`` box header, a WebM magic)."""
_WEBM_MAGIC = b"\x1a\x45\xdf\xa3"

MAX_ID_LENGTH = 250
"""Airflow's ids (dag, task, run) are at most 250 characters (the metadata database's columns)."""
MAX_MAP_INDEX = 2**31 - 1
"""The metadata database stores a map index as a 32-bit integer; a larger number is no task."""
MAX_OUTPUT_INDEX = 9_999
"""A job has a handful of outputs; a larger number in a URL is not one the pages wrote."""


class InvalidViewRequest(ValueError):
    """A URL the pages cannot have produced (answered 400, with this message)."""


def _ascii_digits(text: str) -> bool:
    """``str.isdigit`` accepts ``'²'`` and other Unicode digits that ``int()`` refuses."""
    return text.isascii() and text.isdigit()


def _checked_id(kind: str, value: str) -> str:
    """An id from a URL or query string, as the metadata database can hold it."""
    if not value or len(value) > MAX_ID_LENGTH:
        raise InvalidViewRequest(f"{kind} must be 1 to {MAX_ID_LENGTH} characters long")
    if "\x00" in value:  # PostgreSQL cannot store it: no id holds one
        raise InvalidViewRequest(f"{kind} {value!r} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no database driver can send it
        raise InvalidViewRequest(f"{kind} {value!r} is not valid Unicode") from None
    return value


def output_index(segment: str) -> int:
    """The output number of a stream URL (0 for the first video of the job)."""
    if not _ascii_digits(segment) or len(segment) > len(str(MAX_OUTPUT_INDEX)):
        raise InvalidViewRequest(f"output {segment!r} is not an output number (0, 1, ...)")
    return int(segment)


@dataclass(frozen=True)
class VideoTask:
    """The task instance a page or stream is about: what the URL names."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @classmethod
    def from_segments(cls, dag_id: str, run_id: str, task_id: str, map_index: str) -> VideoTask:
        """The four path segments of a page URL; Airflow's literal ``{MAP_INDEX}`` reads as -1."""
        ids = (
            _checked_id("dag_id", dag_id),
            _checked_id("run_id", run_id),
            _checked_id("task_id", task_id),
        )
        if map_index == MAP_INDEX_PLACEHOLDER:
            return cls(*ids, -1)
        digits = map_index[1:] if map_index.startswith("-") else map_index
        if not _ascii_digits(digits) or len(digits) > len(str(MAX_MAP_INDEX)):
            raise InvalidViewRequest(f"map index {map_index!r} is not a whole number")
        index = int(map_index)
        if index < -1:
            raise InvalidViewRequest(f"map index {index} is below -1")
        if index > MAX_MAP_INDEX:
            raise InvalidViewRequest(f"map index {index} is above {MAX_MAP_INDEX}")
        return cls(*ids, index)

    def is_writer(self, facts: Mapping[str, Any]) -> bool:
        """Whether a file's writer tag names this task instance."""
        return (
            facts.get("dag_id"),
            facts.get("run_id"),
            facts.get("task_id"),
            facts.get("map_index", -1),
        ) == (self.dag_id, self.run_id, self.task_id, self.map_index)


@dataclass(frozen=True)
class RecordedVideo:
    """What a successful video task recorded: its outputs, where they are, and what they cost."""

    task: VideoTask
    locations: tuple[str, ...]
    conn_id: str | None = None
    host: str | None = None
    request: Mapping[str, Any] = field(default_factory=dict)
    cost: float | None = None
    job_id: str | None = None
    recorded_at: datetime | None = None
    try_number: int | None = None
    missing_outputs: tuple[int, ...] = ()
    sizes: tuple[int | None, ...] = ()
    """The size in bytes of each saved output, as the task recorded it (``output_sizes``; empty
    for videos saved by releases before it)."""

    @classmethod
    def from_xcoms(
        cls,
        task: VideoTask,
        values: Mapping[str, Any],
        *,
        recorded_at: datetime | None = None,
        try_number: int | None = None,
    ) -> RecordedVideo | None:
        """From the task instance's XComs by key (read by
        :mod:`~airflow_provider_orvideo._internal.task_record`); None unless it is a video task that
        saved a video (``video_request`` marks the operator, ``output_paths`` a saved video)."""
        request = recorded_request(values)
        saved = SavedVideo.from_xcoms(values)
        if request is None or saved is None:
            return None
        return cls(
            task=task,
            locations=saved.paths,
            conn_id=saved.conn_id,
            host=saved.host,
            request=request,
            cost=saved.cost,
            job_id=saved.job_id,
            recorded_at=recorded_at,
            try_number=try_number,
            missing_outputs=saved.unavailable,
            sizes=saved.sizes,
        )

    def recorded_size(self, index: int) -> int | None:
        """The recorded size of output ``index``, or None when none was recorded."""
        return self.sizes[index] if index < len(self.sizes) else None

    @property
    def model(self) -> str | None:
        model = self.request.get("model")
        return model if isinstance(model, str) else None


# ---------------------------------------------------------------------------------------- locations


@dataclass(frozen=True)
class LocalVideo:
    """A recorded path on a disk the api-server may read: not yet opened or checked (see
    :func:`~airflow_provider_orvideo.plugins._video_sources.open_video`)."""

    path: str
    media_type: str


@dataclass(frozen=True)
class StoredVideo:
    """An object in a bucket, opened through ``ObjectStoragePath`` with the task's connection."""

    storage_uri: str
    media_type: str
    conn_id: str | None = None
    """The Airflow connection that opens it (the recorded ``output_conn_id`` or the one the URI
    names); None: the api-server's own default credentials."""


@dataclass(frozen=True)
class Unreachable:
    """Recorded, but not where the api-server can read it (typically a worker's local disk)."""

    location: str
    host: str | None

    @property
    def message(self) -> str:
        where = f"on host {self.host}" if self.host else "on the worker that ran the task"
        return (
            f"The video was saved to {self.location} {where}; the api-server cannot read that path. "
            "Save videos to shared storage (a shared volume or object storage with output_conn_id) "
            "to watch them here."
        )


@dataclass(frozen=True)
class Unavailable:
    """In object storage, but not readable now: the object is gone, or the connection cannot
    read it."""

    location: str
    reason: str

    @property
    def message(self) -> str:
        return f"The video at {self.location} {self.reason}."


@dataclass(frozen=True)
class Refused:
    """Recorded, but not something the pages serve (see the module's serving rules)."""

    location: str
    reason: str

    @property
    def message(self) -> str:
        return f"Not shown: {self.location} {self.reason}."


Location = LocalVideo | StoredVideo | Unreachable | Unavailable | Refused


def media_type_of(name: str) -> str | None:
    """The content type served for a file name, or None: not a video suffix the pages serve."""
    return VIDEO_MEDIA_TYPES.get(os.path.splitext(name)[1].lower())


def is_video_signature(head: bytes) -> bool:
    """Whether a file's first :data:`SIGNATURE_BYTES` bytes are those of an MP4/QuickTime or WebM."""
    return head[4:8] == b"ftyp" or head[:4] == _WEBM_MAGIC


def locate(video: RecordedVideo, index: int) -> Location:
    """Where output ``index`` of a recorded video is, or why it cannot be shown, from the recorded
    value alone (no filesystem or network access: opening and checking the file is
    :func:`~airflow_provider_orvideo.plugins._video_sources.open_video`'s job). Never raises for a
    recorded value, whatever it holds."""
    from airflow_provider_orvideo._internal.object_storage import local_path, split_conn_id
    from airflow_provider_orvideo._internal.output_paths import OutputTarget

    location = video.locations[index]
    if "\x00" in location:
        return Refused(location.replace("\x00", "\\x00"), "contains a NUL character")
    try:
        path = local_path(location)
    except ValueError:  # e.g. "s3://[" : urlsplit refuses it
        return Refused(location, "is neither a path nor an object storage URI")
    if path is None:
        media_type = media_type_of(location.split("?", 1)[0])
        if media_type is None:
            return Refused(location, "does not end in a video suffix (" + ", ".join(VIDEO_MEDIA_TYPES) + ")")
        try:
            target = OutputTarget(location, video.conn_id)
            storage_uri = target.storage_uri
            conn_id = split_conn_id(location, "output_path")[1] or video.conn_id
        except Exception:
            return Refused(location, "is not an object storage location the provider writes")
        return StoredVideo(storage_uri, media_type, conn_id)
    if not os.path.isabs(path):
        return Refused(location, "is not an absolute path")
    media_type = media_type_of(path)
    if media_type is None:
        return Refused(location, "does not end in a video suffix (" + ", ".join(VIDEO_MEDIA_TYPES) + ")")
    return LocalVideo(path, media_type)


# ---------------------------------------------------------------------------------------- ranges


class UnsatisfiableRange(ValueError):
    """A ``Range`` that starts past the end (answered 416 with ``Content-Range: bytes */size``)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte of a single ``Range: bytes=`` request, or None to send
    the whole body (no header, a unit other than bytes, several ranges, or a malformed one: a
    server may always ignore ``Range``, RFC 9110 section 14.2)."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    first_text, last_text = first_text.strip(), last_text.strip()
    if not (_ascii_digits(first_text) or first_text == "") or not (
        _ascii_digits(last_text) or last_text == ""
    ):
        return None
    if first_text == "":
        if last_text == "":
            return None
        suffix = int(last_text)
        if suffix == 0:
            raise UnsatisfiableRange(header)
        return (max(size - suffix, 0), size - 1) if size else None
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        raise UnsatisfiableRange(header)
    return first, min(last, size - 1)


# ---------------------------------------------------------------------------------------- gallery


@dataclass(frozen=True)
class GalleryFilter:
    """The gallery's filters, from its query string (all optional)."""

    dag_id: str | None = None
    model: str | None = None
    since: date | None = None
    until: date | None = None
    cursor: tuple[datetime, int, str, int] | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, dag_id: str | None = None) -> GalleryFilter:
        def text(name: str) -> str | None:
            value = (query.get(name) or "").strip()
            return _checked_id(name, value) if value else None

        def day(name: str) -> date | None:
            value = text(name)
            if value is None:
                return None
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise InvalidViewRequest(f"{name}={value!r} is not a date (YYYY-MM-DD)") from None

        cursor = text("after")
        return cls(
            dag_id=_checked_id("dag_id", dag_id) if dag_id else text("dag_id"),
            model=text("model"),
            since=day("since"),
            until=day("until"),
            cursor=decode_cursor(cursor) if cursor else None,
        )

    @property
    def recorded_from(self) -> datetime | None:
        return None if self.since is None else datetime.combine(self.since, datetime.min.time(), timezone.utc)

    @property
    def recorded_before(self) -> datetime | None:
        if self.until is None or self.until == date.max:  # no day after 9999-12-31: no upper bound
            return None
        return datetime.combine(self.until + timedelta(days=1), datetime.min.time(), timezone.utc)

    def query(self, **changes: Any) -> dict[str, str]:
        """The query string for this filter (for the form and the next-page link)."""
        values = {
            "dag_id": self.dag_id,
            "model": self.model,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        values.update(changes)
        return {key: str(value) for key, value in values.items() if value}


def encode_cursor(recorded_at: datetime, dag_run_pk: int, task_id: str, map_index: int) -> str:
    """The keyset position after a gallery card: newest first, ties broken by the XCom's key."""
    raw = json.dumps([recorded_at.isoformat(), dag_run_pk, task_id, map_index], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, int, str, int]:
    try:
        padded = text + "=" * (-len(text) % 4)
        stamp, dag_run_pk, task_id, map_index = json.loads(base64.urlsafe_b64decode(padded.encode()))
        recorded_at = datetime.fromisoformat(stamp)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidViewRequest(f"after={text!r} is not a gallery position") from None
    if not (
        isinstance(dag_run_pk, int)
        and not isinstance(dag_run_pk, bool)
        and 0 <= dag_run_pk <= MAX_MAP_INDEX  # the dag_run table's 32-bit key
        and isinstance(task_id, str)
        and isinstance(map_index, int)
        and not isinstance(map_index, bool)
        and -1 <= map_index <= MAX_MAP_INDEX
    ):
        raise InvalidViewRequest(f"after={text!r} is not a gallery position")
    try:
        _checked_id("task_id", task_id)
    except InvalidViewRequest:
        raise InvalidViewRequest(f"after={text!r} is not a gallery position") from None
    if recorded_at.tzinfo is None:
        recorded_at = recorded_at.replace(tzinfo=timezone.utc)
    try:  # the database compares in UTC: 0001-01-01T00:00+01:00 has no UTC time
        recorded_at = recorded_at.astimezone(timezone.utc)
    except OverflowError:
        raise InvalidViewRequest(f"after={text!r} is not a gallery position") from None
    return recorded_at, dag_run_pk, task_id, map_index


@dataclass(frozen=True)
class GalleryPage:
    videos: Sequence[RecordedVideo]
    next_cursor: str | None


# ---------------------------------------------------------------------------------------- spend


class SpendGroup(Protocol):
    """One group of the spend ledger's report (:class:`~airflow_provider_orvideo._internal.ledger.SpendRow`):
    what the chart reads of it."""

    @property
    def day(self) -> str: ...
    @property
    def dag_id(self) -> str: ...
    @property
    def jobs(self) -> int: ...
    @property
    def spent_usd(self) -> float: ...
    @property
    def pending_usd(self) -> float: ...
    @property
    def unpriced(self) -> int: ...
    @property
    def unkept(self) -> int: ...


def spend_window(today: date, days: int = SPEND_DAYS) -> tuple[str, str]:
    """The ledger's ``since_day`` and ``until_day`` (UTC, inclusive) of the chart ending ``today``."""
    return (today - timedelta(days=days - 1)).isoformat(), today.isoformat()


@dataclass(frozen=True)
class SpendChart:
    """Money per DAG per UTC day over the last :data:`SPEND_DAYS` days, from the spend ledger:
    every job created (superseded ones, and completed ones no task kept, included)."""

    days: tuple[date, ...]
    series: tuple[str, ...]
    """DAG ids with their own colour, most expensive first; ``OTHER`` sums the rest."""
    amounts: Mapping[tuple[date, str], float]
    """Money billed (the jobs' costs), per day and series."""
    pending: Mapping[date, float]
    """Estimates held per day by jobs still rendering, or ended without a cost figure yet: not
    billed money, drawn apart from it."""
    total: float
    pending_total: float
    jobs: int
    unpriced: int
    """Jobs that ended without a cost figure (OpenRouter reported none yet)."""
    unkept: int
    """Completed (paid) jobs whose video no task kept."""
    counted_from: date
    """The first day counted: the window's first, unless the ledger's report was cut short
    (:data:`SPEND_MAX_GROUPS`), then the first day it holds whole."""

    OTHER = "other DAGs"

    def day_total(self, day: date) -> float:
        return sum(self.amounts.get((day, name), 0.0) for name in self.series)

    @property
    def cut(self) -> bool:
        return self.counted_from > self.days[0]


def spend_chart(
    rows: Iterable[SpendGroup],
    *,
    today: date,
    days: int = SPEND_DAYS,
    series: int = CHART_SERIES,
    complete: bool = True,
) -> SpendChart:
    """Bucket the ledger's groups (per UTC day, DAG and connection) by day and DAG.

    ``complete=False``: the report hit its row limit, newest day first, so its oldest day may be
    partial: that day and older ones are left out (:attr:`SpendChart.counted_from` says so)."""
    window = tuple(today - timedelta(days=offset) for offset in range(days - 1, -1, -1))
    groups: list[tuple[date, SpendGroup]] = []
    for row in rows:
        try:
            day = date.fromisoformat(row.day)
        except (TypeError, ValueError):  # not a day the ledger writes: nothing to place it on
            continue
        if window[0] <= day <= today:
            groups.append((day, row))
    counted_from = window[0]
    if not complete and groups:
        counted_from = min(day for day, _ in groups) + timedelta(days=1)
    per_dag: dict[str, float] = {}
    cells: dict[tuple[date, str], float] = {}
    pending: dict[date, float] = {}
    jobs = unpriced = unkept = 0
    for day, row in groups:
        if day < counted_from:
            continue
        jobs += row.jobs
        unpriced += row.unpriced
        unkept += row.unkept
        if row.pending_usd > 0:
            pending[day] = pending.get(day, 0.0) + row.pending_usd
        if row.spent_usd > 0:
            per_dag[row.dag_id] = per_dag.get(row.dag_id, 0.0) + row.spent_usd
            cells[(day, row.dag_id)] = cells.get((day, row.dag_id), 0.0) + row.spent_usd
    ranked = sorted(per_dag, key=lambda name: (-per_dag[name], name))
    shown = ranked[:series] if len(ranked) <= series else ranked[: series - 1]
    amounts: dict[tuple[date, str], float] = {}
    for (day, dag_id), cost in cells.items():
        name = dag_id if dag_id in shown else SpendChart.OTHER
        amounts[(day, name)] = amounts.get((day, name), 0.0) + cost
    names = tuple(shown) + ((SpendChart.OTHER,) if len(shown) < len(ranked) else ())
    return SpendChart(
        days=window,
        series=names,
        amounts=amounts,
        pending=pending,
        total=sum(per_dag.values()),
        pending_total=sum(pending.values()),
        jobs=jobs,
        unpriced=unpriced,
        unkept=unkept,
        counted_from=counted_from,
    )


# ---------------------------------------------------------------------------------------- paid, not kept


@dataclass(frozen=True)
class UnkeptJob:
    """A completed job (paid) whose video no task kept, as the spend ledger recorded it."""

    job_id: str
    task: VideoTask
    cost_usd: float | None
    estimate_usd: float | None
    ended_at: float
    model: str | None
    reason: str | None
    superseded_by: str | None
    entry_id: str

    @classmethod
    def from_entry(
        cls,
        *,
        entry_id: Any = None,
        job_id: Any = None,
        dag_id: Any = None,
        run_id: Any = None,
        task_id: Any = None,
        map_index: Any = None,
        cost_usd: Any = None,
        estimate_usd: Any = None,
        ended_at: Any = None,
        model: Any = None,
        unkept_reason: Any = None,
        superseded_by: Any = None,
        **_: Any,
    ) -> UnkeptJob | None:
        """From the columns of one of :meth:`~airflow_provider_orvideo._internal.ledger.Ledger.unkept`'s
        rows (``UnkeptJob.from_entry(**row)``); None for a row without a job id or an end (the
        ledger writes both for a completed job). A value of an odd type reads as unknown."""
        if not isinstance(job_id, str) or not job_id or not _is_number(ended_at):
            return None

        def text(value: Any) -> str | None:
            return value if isinstance(value, str) and value else None

        def amount(value: Any) -> float | None:
            return float(value) if _is_number(value) else None

        return cls(
            job_id=job_id,
            task=VideoTask(
                str(dag_id or ""),
                str(run_id or ""),
                str(task_id or ""),
                map_index if isinstance(map_index, int) and not isinstance(map_index, bool) else -1,
            ),
            cost_usd=amount(cost_usd),
            estimate_usd=amount(estimate_usd),
            ended_at=float(ended_at),
            model=text(model),
            reason=text(unkept_reason),
            superseded_by=text(superseded_by),
            entry_id=str(entry_id or ""),
        )

    @property
    def why(self) -> str:
        if self.reason:
            return self.reason
        if self.superseded_by:
            return f"superseded by {self.superseded_by} (the task asked for a different video)"
        return "no task recorded keeping it (its task may still be downloading it, or died first)"

    def download_command(self) -> str:
        """The shell line that fetches it while OpenRouter still serves it (each word quoted; an
        id that starts like an option comes after ``--``)."""
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", self.job_id).strip("._-") or "video"
        words = ["orvideo", "download", *(["--"] if self.job_id.startswith("-") else []), self.job_id]
        return shlex.join([*words, f"./{name[:120]}.mp4"])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def age_text(seconds: float) -> str:
    """A job's age, to the unit that reads best (``"45 s"``, ``"12 min"``, ``"5 h"``, ``"3 d"``)."""
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"
