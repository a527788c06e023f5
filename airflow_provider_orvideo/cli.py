"""The ``orvideo`` command line: the spend ledger's reports, and keeping a paid video no task kept.

Commands (one group, ``orvideo``):

* ``spend``: money per UTC day, DAG and connection (the last 7 days unless told), and a total;
* ``unkept``: completed, paid jobs whose video no task kept, and why;
* ``download JOB_ID PATH``: fetch such a job's video while OpenRouter still serves it, with the
  tasks' own rules (atomic writes; a file this command did not write for this job is never
  replaced unless ``--overwrite``), and book where it landed;
* ``reconcile --day DAY``: the ledger's costs of a day against OpenRouter's generation records;
  a missing cost is filled in, and the exit code says whether the day's totals agree.

Two ways in, one implementation: the ``orvideo`` console script (plain argparse, on every Airflow
version the provider supports) and, on Airflow 3.2+, ``airflow orvideo ...`` through the provider
info's ``cli`` key (:func:`get_cli_commands`; Airflow 3.0 and 3.1 ignore the key). Airflow
imports this module for every ``airflow`` command it runs, so only the standard library is
imported at module level.

Exit codes: 0 done; 1 refused or failed (the message says why, on stderr); 2 a usage error;
3 ``reconcile`` found the day's totals more than half a cent apart. Nothing printed holds the API
key or a signed URL: job facts come from :class:`~airflow_provider_orvideo._internal.api.VideoJob`
(which has none), and every message is passed through the key's redaction on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airflow_provider_orvideo._internal.api import VideoJob
    from airflow_provider_orvideo._internal.atomic_output import AtomicOutput
    from airflow_provider_orvideo._internal.ledger import Ledger
    from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook

__all__ = [
    "get_cli_commands",
    "main",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_DIFFERS = 3
"""``reconcile``: the ledger's total of the day and OpenRouter's differ by more than :data:`TOLERANCE_USD`."""
TOLERANCE_USD = 0.005
"""Half a cent: what two totals of the same jobs may differ by (OpenRouter rounds per job)."""
DEFAULT_SPEND_DAYS = 7


class CommandError(Exception):
    """A refusal or failure to report on stderr (exit code :data:`EXIT_FAILED`)."""


# -- arguments --------------------------------------------------------------------------------------


def _utc_today() -> datetime:
    return datetime.now(timezone.utc)


def utc_day(text: str) -> str:
    """``YYYY-MM-DD``, ``today`` or ``yesterday`` (UTC) as ``YYYY-MM-DD`` (an argparse type)."""
    word = text.strip().lower()
    if word in ("today", "yesterday"):
        day = _utc_today() - timedelta(days=1 if word == "yesterday" else 0)
        return day.strftime("%Y-%m-%d")
    try:
        return datetime.strptime(word, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a UTC day: give YYYY-MM-DD, today or yesterday"
        ) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


@dataclass(frozen=True)
class Option:
    """One argument, in the keywords both argparse and Airflow's ``Arg`` take."""

    flags: tuple[str, ...]
    kwargs: Mapping[str, Any]


def _option(*flags: str, **kwargs: Any) -> Option:
    return Option(flags, kwargs)


OUTPUT = _option(
    "-o", "--output", choices=("table", "json"), default="table", help="Output format (default: table)."
)
CONN_ID_FILTER = _option("--conn-id", default=None, help="Only the jobs of this Airflow connection.")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    description: str
    options: tuple[Option, ...]
    run: Callable[[argparse.Namespace, IO[str]], int]


# -- output -----------------------------------------------------------------------------------------


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: frozenset[int]) -> list[str]:
    """Fixed-width columns; the ``numeric`` ones right-aligned."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _json(value: Any, out: IO[str]) -> None:
    out.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


# -- the ledger -------------------------------------------------------------------------------------


def _ledger() -> Ledger:
    from airflow_provider_orvideo._internal.ledger import configured_ledger

    return configured_ledger()


def _where(ledger: Ledger) -> str:
    """Where the ledger is, without a password."""
    return ledger.engine.url.render_as_string(hide_password=True)


# -- spend ------------------------------------------------------------------------------------------


def run_spend(args: argparse.Namespace, out: IO[str]) -> int:
    today = _utc_today()
    until = args.until or today.strftime("%Y-%m-%d")
    since = args.since or (
        datetime.strptime(until, "%Y-%m-%d") - timedelta(days=DEFAULT_SPEND_DAYS - 1)
    ).strftime("%Y-%m-%d")
    if since > until:
        raise CommandError(f"--since {since} is after --until {until}.")
    ledger = _ledger()
    rows = ledger.spend(since_day=since, until_day=until, dag_id=args.dag_id, conn_id=args.conn_id)
    if args.output == "json":
        _json([row.to_dict() for row in rows], out)
        return EXIT_OK
    if not rows:
        out.write(f"No jobs in the spend ledger ({_where(ledger)}) billed from {since} to {until} (UTC).\n")
        return EXIT_OK
    headers = ("DAY", "DAG", "CONNECTION", "JOBS", "SPENT_USD", "PENDING_USD", "UNPRICED", "UNKEPT")
    cells = [
        (
            r.day,
            r.dag_id,
            r.conn_id,
            str(r.jobs),
            _money(r.spent_usd),
            _money(r.pending_usd),
            str(r.unpriced),
            str(r.unkept),
        )
        for r in rows
    ]
    total = (
        "TOTAL",
        "",
        "",
        str(sum(r.jobs for r in rows)),
        _money(sum(r.spent_usd for r in rows)),
        _money(sum(r.pending_usd for r in rows)),
        str(sum(r.unpriced for r in rows)),
        str(sum(r.unkept for r in rows)),
    )
    lines = _table(headers, [*cells, total], frozenset({3, 4, 5, 6, 7}))
    out.write("\n".join([*lines[:-1], "-" * len(max(lines, key=len)), lines[-1]]) + "\n")
    out.write(f"UTC days {since} to {until}; USD.\n")
    return EXIT_OK


# -- unkept -----------------------------------------------------------------------------------------


def _unkept_record(entry: Mapping[str, Any], now: float) -> dict[str, Any]:
    ended = entry.get("ended_at") or entry.get("reserved_at")
    return {
        "job_id": entry.get("job_id"),
        "dag_id": entry.get("dag_id"),
        "run_id": entry.get("run_id"),
        "task_id": entry.get("task_id"),
        "map_index": entry.get("map_index"),
        "conn_id": entry.get("conn_id"),
        "model": entry.get("model"),
        "cost_usd": entry.get("cost_usd"),
        "estimate_usd": entry.get("estimate_usd"),
        "billed_day": entry.get("billed_day"),
        "ended_at": _iso(ended),
        "age_seconds": None if ended is None else round(now - ended, 1),
        "unkept_reason": entry.get("unkept_reason"),
    }


def run_unkept(args: argparse.Namespace, out: IO[str]) -> int:
    ledger = _ledger()
    now = time.time()
    records = [_unkept_record(entry, now) for entry in ledger.unkept(limit=args.limit)]
    if args.output == "json":
        _json(records, out)
        return EXIT_OK
    if not records:
        out.write(f"No unkept videos: every completed job in the spend ledger ({_where(ledger)}) was kept.\n")
        return EXIT_OK
    headers = ("JOB", "DAG", "TASK", "MAP", "COST_USD", "AGE", "WHY")
    cells = []
    for r in records:
        cost = _money(r["cost_usd"]) if r["cost_usd"] is not None else f"~{_money(r['estimate_usd'])}"
        age = "-" if r["age_seconds"] is None else _age(r["age_seconds"])
        why = _short(r["unkept_reason"], 90) or "not recorded as kept (its task may be saving it, or died)"
        cells.append(
            (str(r["job_id"]), str(r["dag_id"]), str(r["task_id"]), str(r["map_index"]), cost, age, why)
        )
    out.write("\n".join(_table(headers, cells, frozenset({3, 4, 5}))) + "\n")
    out.write(
        f"{len(records)} paid video(s) not kept. 'orvideo download JOB_ID PATH' saves one while "
        "OpenRouter still serves it ('~': an estimate, the job was not priced).\n"
    )
    return EXIT_OK


# -- download ---------------------------------------------------------------------------------------


class JobSource(Protocol):
    """What ``download`` asks of :class:`~airflow_provider_orvideo.hooks.openrouter_video.OpenRouterVideoHook`."""

    def get_job(self, job_id: str) -> VideoJob: ...

    def save_output(self, job_id: str, index: int, output: AtomicOutput) -> int: ...


def _hook(conn_id: str) -> OpenRouterVideoHook:
    from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook

    return OpenRouterVideoHook(conn_id)


def _api_key(hook: Any) -> str:
    """The hook's API key if its settings are already loaded (only to redact it): never loads them."""
    settings = getattr(hook, "_settings", None)
    return str(getattr(settings, "api_key", "") or "")


def _cli_location(path: str, job_id: str) -> str:
    """PATH as the tasks' ``output_path`` takes it: a relative path against the working directory,
    ``~`` expanded, and an existing directory as ``<directory>/<job id>.mp4``. URIs pass as given."""
    from airflow_provider_orvideo._internal.object_storage import is_local

    if not is_local(path) or path.startswith("file:"):
        return path
    local = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(local):
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in job_id)
        local = os.path.join(local, f"{safe}.mp4")
    return local


def _gone_detail(error: Exception) -> str:
    found = re.search(r"HTTP (\d{3})(: [^)]*)?", str(error))
    return found.group(0) if found else "HTTP 404/410"


@dataclass
class Downloaded:
    saved: list[tuple[int, str, int]] = field(default_factory=list)
    """(output index, where it landed, bytes)."""
    unavailable: list[int] = field(default_factory=list)


def download_job(
    hook: JobSource,
    ledger: Ledger | None,
    job_id: str,
    path: str,
    *,
    overwrite: bool,
    conn_id: str,
    say: Callable[[str], None],
    warn: Callable[[str], None],
) -> Downloaded:
    """Save every output of completed job ``job_id`` (output 0 at ``path``, the next ones numbered
    beside it) as a task would, saying where each landed, then book them in ``ledger`` (None:
    unreadable; the video comes first). Raises :class:`CommandError` (a refusal: nothing
    downloaded; or a video it could not save)."""
    from airflow_provider_orvideo._internal.atomic_output import AtomicOutput, owner_tag
    from airflow_provider_orvideo._internal.ledger import ENDED
    from airflow_provider_orvideo._internal.output_paths import output_target, written_by
    from airflow_provider_orvideo.exceptions import (
        NOTHING_SPENT,
        InvalidOutputPathError,
        LedgerUnavailableError,
        OpenRouterNotFoundError,
        VideoOutputGoneError,
    )

    entry = None if ledger is None else ledger.entry(job_id)

    def book(what: str, write: Callable[[Ledger], None]) -> None:
        """A ledger write on the way: a failure is reported, never in the video's way."""
        if ledger is not None and entry is not None:
            try:
                write(ledger)
            except LedgerUnavailableError as error:
                warn(f"The spend ledger could not {what}: {error}")

    try:
        first = output_target(_cli_location(path, job_id), None, check=True)
    except InvalidOutputPathError as error:
        raise CommandError(str(error).replace(NOTHING_SPENT, "Nothing was downloaded.")) from None
    try:
        job = hook.get_job(job_id)
    except OpenRouterNotFoundError as error:
        raise CommandError(
            f"OpenRouter knows no job {job_id} for connection {conn_id!r} ({error}). Check the id, and "
            "that --conn-id names the connection (API key) that submitted it."
        ) from None
    if entry is not None and entry.get("status") not in ENDED and job.status in ENDED:
        # Its task died before booking how the job ended: book it now (with its cost, if known).
        book(
            "record how the job ended",
            lambda led: led.ended(job_id, job.status, cost_usd=job.cost, generation_id=job.generation_id),
        )
    if job.status != "completed":
        raise CommandError(
            f"Job {job_id} is {job.status}, not completed: "
            + (
                f"it ended without a video ({job.error or 'no reason given'}); there is nothing to download."
                if job.status in ENDED
                else "its video is not ready yet. Run this again once it has completed."
            )
        )
    writer = {"written_by": "orvideo download", "job_id": job_id}
    kept_before = [str(location) for location in (entry or {}).get("kept") or []]

    def ours(target: Any) -> bool:
        """This job's video, kept at this location before (by its task or an earlier download)."""
        return target.location in kept_before and written_by(target, {"job_id": job_id})

    targets = [first.for_index(index) for index in range(job.output_count)]
    taken = [t.location for t in targets if not overwrite and t.exists() and not ours(t)]
    if taken:
        raise CommandError(
            f"{', '.join(taken)} already exists and this job's video was not saved there before. Not "
            "replacing a file this command did not write: give another PATH, or --overwrite to replace "
            "it. Nothing was downloaded."
        )
    result = Downloaded()
    for index, target in enumerate(targets):
        output = AtomicOutput(
            target.storage_uri,
            replace=overwrite or ours(target),
            aside=target.aside(job_id).storage_uri,
            writer=writer,
            owner=owner_tag(writer),  # a killed earlier download's temporary file is removed first
        )
        try:
            size = hook.save_output(job_id, index, output)
        except VideoOutputGoneError as gone:
            if index > 0:  # output 0 is saved: keep it, say what is missing
                say(f"Output {index} of job {job_id} is no longer served ({_gone_detail(gone)}); skipped.")
                result.unavailable.append(index)
                continue
            reason = (
                f"OpenRouter no longer serves the video of job {job_id} (its content expired or was "
                f"removed: {_gone_detail(gone)})."
            )
            book(
                "record why the video is not kept", functools.partial(_not_kept, job_id=job_id, reason=reason)
            )
            cost = "" if job.cost is None else f" (${job.cost:,.4f})"
            raise CommandError(
                f"{reason} The job completed and was billed{cost}, but its video can no longer be "
                f"downloaded; nothing was written to {target.location}."
            ) from None
        committed = output.committed_location or target.storage_uri
        saved_at = target if committed == target.storage_uri else target.renamed(committed.rsplit("/", 1)[-1])
        if saved_at.location != target.location:
            say(f"A file appeared at {target.location} while downloading; it was not replaced.")
        say(f"Saved output {index} of job {job_id} to {saved_at.location} ({size:,} bytes).")
        result.saved.append((index, saved_at.location, size))
    if ledger is None:
        return result
    if entry is None:
        say(f"Job {job_id} is not in the spend ledger ({_where(ledger)}): nothing was booked.")
        return result
    locations = [location for _, location, _ in result.saved]
    try:
        ledger.kept(job_id, [*(loc for loc in kept_before if loc not in locations), *locations])
    except LedgerUnavailableError as error:
        raise CommandError(f"The video is saved, but {error}") from None
    say(f"Booked in the spend ledger as kept ({_where(ledger)}).")
    return result


def _not_kept(ledger: Ledger, *, job_id: str, reason: str) -> None:
    ledger.not_kept(job_id, reason)


def run_download(args: argparse.Namespace, out: IO[str]) -> int:
    from airflow_provider_orvideo.defaults import DEFAULT_CONN_ID

    ledger: Ledger | None
    try:
        ledger = _ledger()
        entry = ledger.entry(args.job_id)
    except Exception as error:  # the video comes first: download it, book nothing
        _warn(f"The spend ledger cannot be read ({_ledger_failure(error)}): downloading without booking.")
        ledger, entry = None, None
    conn_id = args.conn_id or (entry or {}).get("conn_id") or DEFAULT_CONN_ID
    hook = _hook(conn_id)

    def say(line: str) -> None:
        out.write(_redacted(line, hook) + "\n")

    try:
        result = download_job(
            hook,
            ledger,
            args.job_id,
            args.path,
            overwrite=args.overwrite,
            conn_id=conn_id,
            say=say,
            warn=lambda line: _warn(_redacted(line, hook)),
        )
    except CommandError as error:
        raise CommandError(_redacted(str(error), hook)) from None
    if result.unavailable:
        raise CommandError(
            f"Output(s) {', '.join(map(str, result.unavailable))} of job {args.job_id} are no longer "
            "served; the others are saved."
        )
    return EXIT_OK


# -- reconcile --------------------------------------------------------------------------------------


class GenerationSource(Protocol):
    """What ``reconcile`` asks of the hook: OpenRouter's generation record (``GET /generation``,
    a :class:`~airflow_provider_orvideo._internal.api.GenerationRecord`), read for its ``total_cost``."""

    def get_generation(self, generation_id: str) -> Any: ...

    def get_job(self, job_id: str) -> VideoJob: ...


@dataclass
class Reconciled:
    day: str
    jobs: list[dict[str, Any]]
    ledger_usd: float
    openrouter_usd: float
    priced: int
    unchecked: int
    failed: int

    @property
    def difference_usd(self) -> float:
        return round(self.ledger_usd - self.openrouter_usd, 6)

    @property
    def agrees(self) -> bool:
        return abs(self.difference_usd) <= TOLERANCE_USD

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "jobs": self.jobs,
            "ledger_usd": round(self.ledger_usd, 6),
            "openrouter_usd": round(self.openrouter_usd, 6),
            "difference_usd": self.difference_usd,
            "tolerance_usd": TOLERANCE_USD,
            "agrees": self.agrees,
            "priced": self.priced,
            "unchecked": self.unchecked,
            "failed": self.failed,
        }


def _cost(value: Any) -> float | None:
    try:
        cost = float(value)
    except (TypeError, ValueError):
        return None
    return cost if math.isfinite(cost) else None


def reconcile_day(
    ledger: Ledger, day: str, hook_for: Callable[[str], GenerationSource], *, conn_id: str | None = None
) -> Reconciled:
    """Every job of ``day`` (UTC, as billed) with a generation id, against OpenRouter's record of it.

    A job no task saw end (still ``submitted`` in the ledger) is asked first (``GET /videos/{id}``)
    and its ending booked.

    A job the ledger has no cost for gets OpenRouter's (:meth:`Ledger.priced`). The totals cover
    the jobs with a generation id: the ledger's cost (after filling) against OpenRouter's
    ``total_cost`` (0 where OpenRouter has no record: the ledger books spend OpenRouter does not
    show). Each job is asked through its own connection (``--conn-id`` keeps only that one's)."""
    from airflow_provider_orvideo._internal.ledger import ENDED
    from airflow_provider_orvideo.exceptions import OpenRouterNotFoundError

    jobs: list[dict[str, Any]] = []
    ledger_total = openrouter_total = 0.0
    priced = unchecked = failed = 0
    for entry in ledger.jobs(since_day=day, until_day=day):
        if conn_id is not None and entry.get("conn_id") != conn_id:
            continue
        booked = _cost(entry.get("cost_usd"))
        row: dict[str, Any] = {
            "job_id": entry.get("job_id"),
            "dag_id": entry.get("dag_id"),
            "task_id": entry.get("task_id"),
            "map_index": entry.get("map_index"),
            "conn_id": entry.get("conn_id"),
            "status": entry.get("status"),
            "generation_id": entry.get("generation_id"),
            "ledger_usd": booked,
            "openrouter_usd": None,
            "difference_usd": None,
        }
        jobs.append(row)
        if entry.get("status") == "submitted" and entry.get("job_id"):
            # No task saw this job end (a superseded job still rendering when it was replaced, a
            # task that timed out): ask OpenRouter how it ended, and book that first.
            try:
                job = hook_for(str(entry.get("conn_id"))).get_job(str(entry["job_id"]))
            except Exception as error:
                failed += 1
                row["result"] = f"could not ask OpenRouter how the job ended: {type(error).__name__}: {error}"
                continue
            if job.status in ENDED:
                ledger.ended(
                    str(entry["job_id"]), job.status, cost_usd=job.cost, generation_id=job.generation_id
                )
                entry = {
                    **entry,
                    "status": job.status,
                    "generation_id": job.generation_id or entry.get("generation_id"),
                }
                booked = job.cost if job.cost is not None else booked
                row.update(status=job.status, generation_id=entry["generation_id"], ledger_usd=booked)
        generation_id = entry.get("generation_id")
        if not generation_id:
            unchecked += 1
            row["result"] = f"not checked: no generation id ({entry.get('status')})"
            continue
        try:
            record = hook_for(str(entry.get("conn_id"))).get_generation(str(generation_id))
        except OpenRouterNotFoundError:
            remote = None
            row["result"] = "OpenRouter has no generation record"
        except Exception as error:
            failed += 1
            row["result"] = f"could not ask OpenRouter: {type(error).__name__}: {error}"
            continue
        else:
            remote = _cost(getattr(record, "total_cost", None))
            row["openrouter_usd"] = remote
            if remote is None:
                row["result"] = "OpenRouter has no cost yet"
            elif booked is None:
                ledger.priced(str(entry["job_id"]), remote)
                priced += 1
                booked = remote
                row["result"] = "priced from OpenRouter"
            else:
                row["result"] = "matches" if round(booked - remote, 6) == 0 else "differs"
        if booked is not None and remote is not None:
            row["difference_usd"] = round(booked - remote, 6)
        ledger_total += booked or 0.0
        openrouter_total += remote or 0.0
    return Reconciled(day, jobs, ledger_total, openrouter_total, priced, unchecked, failed)


def run_reconcile(args: argparse.Namespace, out: IO[str]) -> int:
    ledger = _ledger()
    hooks: dict[str, OpenRouterVideoHook] = {}

    def hook_for(conn_id: str) -> GenerationSource:
        if conn_id not in hooks:
            hooks[conn_id] = _hook(conn_id)
        return hooks[conn_id]

    report = reconcile_day(ledger, args.day, hook_for, conn_id=args.conn_id)
    for job in report.jobs:
        for hook in hooks.values():
            job["result"] = _redacted(job["result"], hook)
    if args.output == "json":
        _json(report.to_dict(), out)
    elif not report.jobs:
        out.write(f"No jobs in the spend ledger ({_where(ledger)}) billed on {args.day} (UTC).\n")
    else:
        headers = ("JOB", "DAG", "TASK", "LEDGER_USD", "OPENROUTER_USD", "DIFF_USD", "RESULT")
        cells = [
            (
                str(j["job_id"]),
                str(j["dag_id"]),
                str(j["task_id"]),
                _money(j["ledger_usd"]),
                _money(j["openrouter_usd"]),
                _money(j["difference_usd"]),
                _short(j["result"], 70),
            )
            for j in report.jobs
        ]
        verdict = "agree" if report.agrees else "DIFFER"
        out.write("\n".join(_table(headers, cells, frozenset({3, 4, 5}))) + "\n")
        out.write(
            f"\n{args.day}: ledger ${report.ledger_usd:,.4f}, OpenRouter ${report.openrouter_usd:,.4f}, "
            f"difference ${report.difference_usd:,.4f}: they {verdict} (tolerance ${TOLERANCE_USD}).\n"
            f"Costs filled in from OpenRouter: {report.priced}; jobs without a generation id (not checked): "
            f"{report.unchecked}; lookups that failed: {report.failed}.\n"
        )
    if report.failed:
        raise CommandError(
            f"{report.failed} job(s) of {args.day} could not be checked with OpenRouter (see RESULT): "
            "the totals are incomplete."
        )
    return EXIT_OK if report.agrees else EXIT_DIFFERS


# -- the commands -----------------------------------------------------------------------------------

COMMANDS: tuple[Command, ...] = (
    Command(
        "spend",
        "Spend per UTC day, DAG and connection, from the spend ledger.",
        "Money billed per UTC day, DAG and connection (the last 7 days unless told), with a total. "
        "SPENT_USD is what OpenRouter billed; PENDING_USD the estimates of jobs still rendering or "
        "not priced; UNPRICED counts ended jobs without a cost, UNKEPT completed jobs whose video no "
        "task kept. JSON: the rows as a list.",
        (
            _option(
                "--since", type=utc_day, default=None, help="First UTC day (YYYY-MM-DD, default: 6 days ago)."
            ),
            _option("--until", type=utc_day, default=None, help="Last UTC day (YYYY-MM-DD, default: today)."),
            _option("--dag-id", default=None, help="Only this DAG."),
            CONN_ID_FILTER,
            OUTPUT,
        ),
        run_spend,
    ),
    Command(
        "unkept",
        "Completed, paid jobs whose video no task kept.",
        "Completed jobs the ledger has no saved video for, newest first: job id, DAG, task, map "
        "index, cost, age and why. Save one with 'orvideo download' while OpenRouter still serves it.",
        (
            OUTPUT,
            _option("--limit", type=positive_int, default=200, help="At most this many (default: 200)."),
        ),
        run_unkept,
    ),
    Command(
        "download",
        "Save a paid job's video while OpenRouter still serves it.",
        "Download every output of a completed job (output 0 at PATH, the next ones numbered beside "
        "it) the way a task saves it: atomically, never replacing a file this command did not write "
        "for this job unless --overwrite; then book where it landed in the spend ledger. PATH is a "
        "file, an existing directory (JOB_ID.mp4 in it) or an object storage URI.",
        (
            _option("job_id", metavar="JOB_ID", help="The OpenRouter video job id."),
            _option("path", metavar="PATH", help="Where to save the video."),
            _option(
                "--conn-id",
                default=None,
                help="The OpenRouter connection (default: the one that submitted the job according "
                "to the ledger, else openrouter_default).",
            ),
            _option("--overwrite", action="store_true", help="Replace a file already at PATH."),
        ),
        run_download,
    ),
    Command(
        "reconcile",
        "Check a day's costs in the ledger against OpenRouter's generation records.",
        "For the jobs billed on a UTC day that have a generation id, ask OpenRouter's generation "
        "record: fill in a cost the ledger lacks, and report each job's ledger cost against "
        "OpenRouter's total_cost, the day's two totals and their difference. Exit code 3 when the "
        "totals differ by more than half a cent, 1 when a lookup failed.",
        (
            _option(
                "--day", type=utc_day, required=True, help="The UTC day (YYYY-MM-DD, today or yesterday)."
            ),
            _option(
                "--conn-id",
                default=None,
                help="Only the jobs of this connection (default: every job, each asked with its own).",
            ),
            OUTPUT,
        ),
        run_reconcile,
    ),
)

GROUP_HELP = "OpenRouter video: spend ledger reports, unkept videos, reconciliation."


def _warn(line: str) -> None:
    sys.stderr.write(f"orvideo: {line}\n")


def _ledger_failure(error: Exception) -> str:
    """What went wrong with the ledger: never the URL or the SQL (the URL may hold the database
    password, the SQL request text); where it is, without a password."""
    first = (str(getattr(error, "orig", None) or error) or type(error).__name__).splitlines()[0][:200]
    where = ""
    with contextlib.suppress(Exception):
        where = f" at {_where(_ledger())}"
    return f"{type(error).__name__}{where}: {first}"


def _redacted(text: str, hook: Any) -> str:
    from airflow_provider_orvideo.retry import redact

    return redact(text, _api_key(hook))


@contextlib.contextmanager
def _logs_to_stderr() -> Iterator[IO[str]]:
    """Yield the real stdout for the command's output; meanwhile every log line (Airflow's
    handlers, a library's print) goes to stderr, so ``-o json`` stays parseable."""
    out = sys.stdout
    moved = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is out:
            with contextlib.suppress(Exception):
                handler.setStream(sys.stderr)
                moved.append(handler)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield out
    finally:
        for handler in moved:
            with contextlib.suppress(Exception):
                handler.setStream(out)
        out.flush()


def _execute(command: Command, args: argparse.Namespace) -> int:
    """Run ``command``; refusals and failures become one line on stderr and exit code 1."""
    import sqlalchemy as sa

    from airflow_provider_orvideo._internal.compat import AirflowException
    from airflow_provider_orvideo.exceptions import LedgerUnavailableError, OpenRouterVideoError

    with _logs_to_stderr() as out:
        try:
            return command.run(args, out)
        except CommandError as error:
            message = str(error)
        except LedgerUnavailableError as error:
            where = ""
            with contextlib.suppress(Exception):
                where = f" (the ledger at {_where(_ledger())})"
            message = f"{error}{where}"
        except (OpenRouterVideoError, AirflowException) as error:
            # OpenRouterVideoError: already redacted; AirflowException: e.g. an unknown connection id.
            message = f"{type(error).__name__}: {error}"
        except sa.exc.SQLAlchemyError as error:
            message = f"The spend ledger could not be read: {_ledger_failure(error)}."
    sys.stderr.write(f"orvideo {command.name}: {message}\n")
    return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    """The ``orvideo`` console script's parser (the same commands ``airflow orvideo`` has)."""
    parser = argparse.ArgumentParser(prog="orvideo", description=GROUP_HELP)
    commands = parser.add_subparsers(dest="orvideo_command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.description)
        for option in command.options:
            sub.add_argument(*option.flags, **option.kwargs)
        sub.set_defaults(orvideo_run=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``orvideo`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return _execute(args.orvideo_run, args)


def _airflow_action(command: Command) -> Callable[[argparse.Namespace], None]:
    def action(args: argparse.Namespace) -> None:
        code = _execute(command, args)
        if code:
            sys.exit(code)

    action.__name__ = f"orvideo_{command.name}"
    return action


def get_cli_commands() -> list[Any]:
    """``airflow orvideo ...`` (Airflow 3.2+ reads it from the provider info's ``cli`` key)."""
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand

    return [
        GroupCommand(
            name="orvideo",
            help=GROUP_HELP,
            subcommands=[
                ActionCommand(
                    name=command.name,
                    help=command.help,
                    description=command.description,
                    func=_airflow_action(command),
                    args=tuple(
                        Arg(option.flags, **option.kwargs)  # type: ignore[no-untyped-call]
                        for option in command.options
                    ),
                )
                for command in COMMANDS
            ],
        )
    ]


if __name__ == "__main__":
    sys.exit(main())
