"""The spend ledger: one row per job the provider created (or was about to), in a database of its own.

Why a database of its own, reached with SQLAlchemy Core, rather than tables in Airflow's metadata
database: Airflow 3 keeps task code away from the metadata database (workers talk to the
api-server's execution API), and a provider may not reach around that. Providers that own
tables either run only in the api-server (FAB) or add an HTTP API there that remote workers call
with a JWT (edge3). The ledger is written by task code on every worker *before* it pays, and a
budget reservation must be one atomic transaction; a round trip through an api-server plugin
would make every submit depend on the api-server and add a write surface to it (the crown
jewels). So the ledger is its own small database: by default a SQLite file in ``AIRFLOW_HOME``
(nothing to set up on one machine: ``make demo``, SQLite, LocalExecutor), and in a distributed
deployment any database an Airflow connection names (``[openrouter] ledger_conn_id``;
PostgreSQL in practice, the same server as the metadata database will do). Budgets refuse to
run on a per-machine file when tasks run on several machines (:meth:`Ledger.check_shared`).

A row (an *entry*) is written before the POST (``reserved``, holding the estimate for a lease),
then moves to ``released`` (proof nothing was created: holds nothing), ``submitted`` (the job
exists: holds its estimate), and to how the job ended (``completed``, ``failed``, ``cancelled``,
``expired``: holds its cost when known, else its estimate for a completed job). What was kept,
where, and what superseded it are recorded on the same row. A ``reserved`` entry whose lease
passed holds nothing: its task died before it could say whether it paid.

Budgets (``_internal/budgets.py``) are checked in the reserving transaction: the budgets' lock
rows are taken in name order (``SELECT ... FOR UPDATE``; SQLite serialises every writing
transaction with ``BEGIN IMMEDIATE``), what each holds is summed, and the entry is inserted
only if the estimate fits all. Two workers racing for the last dollar take turns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from airflow_provider_orvideo._internal.budgets import Budget, BudgetUse, refusal
from airflow_provider_orvideo.exceptions import (
    NOTHING_SPENT,
    InvalidSettingError,
    LedgerUnavailableError,
    SpendBudgetExceededError,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "ENDED",
    "LEDGER_SCHEMA_VERSION",
    "Entry",
    "Ledger",
    "SpendRow",
    "configured_ledger",
    "ledger_url",
]

log = logging.getLogger(__name__)

LEDGER_SCHEMA_VERSION = 1
DEFAULT_LEASE_SECONDS = 900.0
"""How long a reservation holds its estimate before the POST's answer is recorded. A task killed
between its reservation and its POST frees the budget after this; the POST (with its own
retries and in-flight-budget waits) answers well inside it."""

RESERVED, RELEASED, SUBMITTED = "reserved", "released", "submitted"
ENDED = frozenset({"completed", "failed", "cancelled", "expired"})
ENTRY_STATUSES = frozenset({RESERVED, RELEASED, SUBMITTED, *ENDED})

metadata = sa.MetaData()
entries = sa.Table(
    "orvideo_ledger_entries",
    metadata,
    sa.Column("entry_id", sa.String(32), primary_key=True),
    sa.Column("job_id", sa.String(250), nullable=True, index=True),
    sa.Column("generation_id", sa.String(250), nullable=True),
    sa.Column("conn_id", sa.String(250), nullable=False),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("task_id", sa.String(250), nullable=False),
    sa.Column("map_index", sa.Integer, nullable=False),
    sa.Column("try_number", sa.Integer, nullable=True),
    sa.Column("model", sa.String(250), nullable=True),
    sa.Column("fingerprint", sa.String(128), nullable=True),
    sa.Column("estimate_usd", sa.Float, nullable=True),
    sa.Column("cost_usd", sa.Float, nullable=True),
    sa.Column("held_usd", sa.Float, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reserved_at", sa.Float, nullable=False, index=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("ended_at", sa.Float, nullable=True),
    sa.Column("billed_day", sa.String(10), nullable=False),
    sa.Column("kept", sa.Text, nullable=True),
    sa.Column("unkept_reason", sa.Text, nullable=True),
    sa.Column("superseded_by", sa.String(250), nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_orvideo_ledger_day_dag", "billed_day", "dag_id"),
    sa.Index("ix_orvideo_ledger_task", "dag_id", "run_id", "task_id", "map_index"),
)
budget_locks = sa.Table(
    "orvideo_ledger_budget_locks",
    metadata,
    sa.Column("budget_key", sa.String(250), primary_key=True),
)
schema_info = sa.Table(
    "orvideo_ledger_schema",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
)


def utc_day(unix: float) -> str:
    return datetime.fromtimestamp(unix, tz=timezone.utc).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Entry:
    """What a task knows when it reserves: who pays, for what, and the estimate held meanwhile."""

    conn_id: str
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int | None
    model: str | None
    fingerprint: str | None
    estimate_usd: float | None


@dataclass(frozen=True)
class SpendRow:
    """One group of the spend report: money billed (``spent_usd``), estimates of jobs still
    rendering or unpriced (``pending_usd``), and the counts behind them (``unpriced``: completed
    jobs OpenRouter has not priced yet; a job that failed without a cost was not billed)."""

    day: str
    dag_id: str
    conn_id: str
    jobs: int
    spent_usd: float
    pending_usd: float
    unpriced: int
    unkept: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "dag_id": self.dag_id,
            "conn_id": self.conn_id,
            "jobs": self.jobs,
            "spent_usd": round(self.spent_usd, 6),
            "pending_usd": round(self.pending_usd, 6),
            "unpriced": self.unpriced,
            "unkept": self.unkept,
        }


def _held(status: str, estimate: float | None, cost: float | None) -> float:
    """What an entry counts against budgets (a reserved entry only while its lease lasts)."""
    if cost is not None:
        return cost
    if status == RELEASED or (status in ENDED and status != "completed"):
        return 0.0
    return estimate or 0.0


class Ledger:
    """The ledger at one database; every method is one short transaction."""

    def __init__(self, engine: Engine, *, shared: bool = True, reader: Engine | None = None) -> None:
        self.engine = engine
        """Writes (and reservations): on SQLite every transaction takes the write lock at once."""
        self.reader = reader or engine
        """Reads (reports, pages): on SQLite a plain deferred transaction, so a page of the spend
        chart never holds the write lock that tasks' reservations wait for (WAL: readers and the
        writer do not block each other)."""
        self.shared = shared
        self._ready = False
        self._ready_lock = threading.Lock()

    @classmethod
    def at(cls, url: str, *, shared: bool = True) -> Ledger:
        """A ledger at a SQLAlchemy URL (``sqlite:////path`` or ``postgresql+psycopg2://...``)."""
        return cls(
            _engine(url), shared=shared, reader=_engine(url, reads=True) if url.startswith("sqlite") else None
        )

    # -- schema -----------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the tables when missing (every process checks once; racing creators are fine)."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            if self._schema_recorded():
                self._ready = True
                return
            for attempt in range(3):
                try:
                    metadata.create_all(self.engine, checkfirst=True)
                    with self._transaction() as connection:
                        if connection.execute(sa.select(schema_info.c.version)).first() is None:
                            connection.execute(sa.insert(schema_info).values(version=LEDGER_SCHEMA_VERSION))
                    break
                except sa.exc.DBAPIError:
                    # Another process created the same table between our check and our CREATE.
                    if attempt == 2:
                        raise
                    time.sleep(0.1 * (attempt + 1))
            self._ready = True

    def _schema_recorded(self) -> bool:
        """One read, without the write lock: the tables exist at this version (a task's first
        reservation then costs a single query more, not a check of every table and index)."""
        try:
            with self.reader.connect() as connection:
                version = connection.execute(sa.select(schema_info.c.version)).scalar()
        except sa.exc.DBAPIError:
            return False  # no tables yet (or the database is down: create_all says which)
        return version == LEDGER_SCHEMA_VERSION

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def _writing(self, what: str) -> Iterator[Connection]:
        """A transaction; a database that cannot be reached becomes :class:`LedgerUnavailableError`."""
        try:
            self.ensure_schema()
            with self._transaction() as connection:
                yield connection
        except sa.exc.SQLAlchemyError as error:
            raise LedgerUnavailableError(
                f"The spend ledger could not {what}: {type(error).__name__} ({_short(error)})."
            ) from None

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A read; a database that cannot be reached becomes :class:`LedgerUnavailableError`."""
        try:
            self.ensure_schema()
            with self.reader.connect() as connection:
                yield connection
        except sa.exc.SQLAlchemyError as error:
            raise LedgerUnavailableError(
                f"The spend ledger could not be read: {type(error).__name__} ({_short(error)})."
            ) from None

    # -- before the POST ------------------------------------------------------------------------

    def reserve(
        self,
        entry: Entry,
        budgets: Sequence[Budget],
        *,
        now: float | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> str:
        """Record the intent to pay and hold ``entry.estimate_usd`` against every budget that
        applies, atomically; return the entry's id. Raises :class:`SpendBudgetExceededError`
        (nothing recorded, nothing submitted) when the estimate does not fit one of them."""
        now = time.time() if now is None else now
        entry_id = uuid.uuid4().hex
        amount = entry.estimate_usd or 0.0
        applying = sorted(
            (b for b in budgets if b.applies_to(dag_id=entry.dag_id, conn_id=entry.conn_id)),
            key=lambda b: b.key,
        )
        if applying and self.engine.dialect.name == "postgresql" and self.engine.dialect.driver == "psycopg2":
            uses = self._reserve_in_one_round_trip(entry, applying, entry_id, now, lease_seconds)
            if uses is None:
                return entry_id
            # Refused in the transaction; the figures read just after it name the budget (the first,
            # should another task's release have made room meanwhile).
            raise SpendBudgetExceededError.refusing(refusal(uses, amount) or uses[0], amount, entry)
        with self._writing("reserve this job's estimate") as connection:
            self._lock(connection, applying)
            uses = [self._use(connection, budget, now) for budget in applying]
            refused = refusal(uses, amount)
            if refused is None:
                connection.execute(
                    sa.insert(entries).values(
                        entry_id=entry_id,
                        **_entry_values(entry),
                        held_usd=amount,
                        status=RESERVED,
                        reserved_at=now,
                        lease_until=now + lease_seconds,
                        billed_day=utc_day(now),
                        updated_at=now,
                    )
                )
        if refused is not None:
            raise SpendBudgetExceededError.refusing(refused, amount, entry)
        return entry_id

    def _reserve_in_one_round_trip(
        self, entry: Entry, budgets: Sequence[Budget], entry_id: str, now: float, lease_seconds: float
    ) -> list[BudgetUse] | None:
        """:meth:`reserve` on PostgreSQL as one message to the server: take the budgets' lock rows,
        insert the entry only if every budget still holds it, commit, then read the figures. The
        lock is held for the server's time only, never while a client waits for a CPU: 50 tasks
        reserving at once on two cores took 172 ms p50 in three round trips, about 5 ms in one
        (``benchmarks/budget_reservations.py``). Each statement of the list takes its own snapshot
        (READ COMMITTED, set explicitly), so the sums see what the lock's previous holders
        committed. Returns None when the entry was inserted, else each budget's figures (read just
        after the decision, for the refusal's message)."""
        params: dict[str, Any] = {
            **_entry_values(entry),
            "entry_id": entry_id,
            "amount": entry.estimate_usd or 0.0,
            "now": now,
            "lease_until": now + lease_seconds,
            "day": utc_day(now),
        }
        keys = ", ".join(f"%(key_{i})s" for i in range(len(budgets)))
        fits, figures = [], []
        for i, budget in enumerate(budgets):
            params[f"key_{i}"] = budget.key
            params[f"start_{i}"] = budget.window.start(now)
            params[f"limit_{i}"] = budget.limit_usd
            where = f"reserved_at >= %(start_{i})s AND (status <> 'reserved' OR lease_until > %(now)s)"
            if budget.dag_ids is not None:
                params[f"dags_{i}"] = tuple(sorted(budget.dag_ids))
                where += f" AND dag_id IN %(dags_{i})s"
            if budget.conn_ids is not None:
                params[f"conns_{i}"] = tuple(sorted(budget.conn_ids))
                where += f" AND conn_id IN %(conns_{i})s"
            held = "coalesce(sum(CASE WHEN cost_usd IS NOT NULL THEN cost_usd ELSE held_usd END), 0)"
            fits.append(
                f"(SELECT {held} FROM {entries.name} WHERE {where}) + %(amount)s <= %(limit_{i})s + 1e-6"
            )
            figures.append(
                "(SELECT ROW(coalesce(sum(cost_usd), 0), "
                "coalesce(sum(CASE WHEN cost_usd IS NULL THEN held_usd ELSE 0 END), 0), "
                f"min(CASE WHEN held_usd > 0 THEN reserved_at END))::text FROM {entries.name} WHERE {where})"
            )
        columns = ", ".join(("entry_id", *_entry_values(entry), "held_usd", "status", "reserved_at"))
        sql = f"""BEGIN ISOLATION LEVEL READ COMMITTED;
INSERT INTO {budget_locks.name} (budget_key) VALUES {", ".join(f"(%(key_{i})s)" for i in range(len(budgets)))}
    ON CONFLICT DO NOTHING;
SELECT budget_key FROM {budget_locks.name} WHERE budget_key IN ({keys}) ORDER BY budget_key FOR UPDATE;
INSERT INTO {entries.name} ({columns}, lease_until, billed_day, updated_at)
SELECT %(entry_id)s, {", ".join(f"%({name})s" for name in _entry_values(entry))}, %(amount)s, 'reserved', %(now)s,
    %(lease_until)s, %(day)s, %(now)s
WHERE {" AND ".join(fits)};
COMMIT;
SELECT (SELECT count(*) FROM {entries.name} WHERE entry_id = %(entry_id)s), {", ".join(figures)}"""
        try:
            self.ensure_schema()
            raw: Any = self.engine.raw_connection()
        except sa.exc.SQLAlchemyError as error:
            raise LedgerUnavailableError(
                f"The spend ledger could not reserve this job's estimate: {type(error).__name__} ({_short(error)})."
            ) from None
        try:
            driver = getattr(raw, "driver_connection", None) or raw.connection  # SQLAlchemy 2 / 1.4
            driver.autocommit = True  # the statement list carries its own BEGIN and COMMIT
            with driver.cursor() as cursor:
                try:
                    cursor.execute(sql, params)
                    row = cursor.fetchone()
                except Exception as error:
                    with contextlib.suppress(Exception):
                        cursor.execute("ROLLBACK")
                    raise LedgerUnavailableError(
                        f"The spend ledger could not reserve this job's estimate: {type(error).__name__} "
                        f"({_short(error)})."
                    ) from None
            driver.autocommit = False
        finally:
            raw.close()
        if row[0] == 1:
            return None
        uses = []
        for budget, text in zip(budgets, row[1:], strict=True):
            spent, reserved, oldest = (
                None if v == "" else float(v) for v in str(text).strip("()").split(",")
            )
            uses.append(
                BudgetUse(budget, spent or 0.0, reserved or 0.0, budget.window.resets_at(now, oldest))
            )
        return uses

    def _lock(self, connection: Connection, budgets: Sequence[Budget]) -> None:
        """Take the budgets' lock rows (created on first use), in key order so two reservations
        of overlapping budgets cannot deadlock."""
        if not budgets:
            return
        keys = [budget.key for budget in budgets]
        existing = set(
            connection.execute(
                sa.select(budget_locks.c.budget_key).where(budget_locks.c.budget_key.in_(keys))
            ).scalars()
        )
        for key in keys:
            if key not in existing:
                try:
                    with connection.begin_nested():
                        connection.execute(sa.insert(budget_locks).values(budget_key=key))
                except sa.exc.IntegrityError:
                    pass  # another reservation created it first
        if connection.dialect.name != "sqlite":  # SQLite: BEGIN IMMEDIATE already serialises writers
            connection.execute(
                sa.select(budget_locks.c.budget_key)
                .where(budget_locks.c.budget_key.in_(keys))
                .order_by(budget_locks.c.budget_key)
                .with_for_update()
            ).all()

    @staticmethod
    def _use(connection: Connection, budget: Budget, now: float) -> BudgetUse:
        held_now = sa.or_(entries.c.status != RESERVED, entries.c.lease_until > now)
        conditions = [entries.c.reserved_at >= budget.window.start(now), held_now]
        if budget.dag_ids is not None:
            conditions.append(entries.c.dag_id.in_(sorted(budget.dag_ids)))
        if budget.conn_ids is not None:
            conditions.append(entries.c.conn_id.in_(sorted(budget.conn_ids)))
        priced = entries.c.cost_usd.isnot(None)
        spent, reserved, oldest = connection.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(sa.case((priced, entries.c.cost_usd), else_=0.0)), 0.0),
                sa.func.coalesce(sa.func.sum(sa.case((priced, 0.0), else_=entries.c.held_usd)), 0.0),
                sa.func.min(sa.case((entries.c.held_usd > 0, entries.c.reserved_at), else_=None)),
            ).where(*conditions)
        ).one()
        return BudgetUse(budget, float(spent), float(reserved), budget.window.resets_at(now, oldest))

    # -- after the POST -------------------------------------------------------------------------

    def released(self, entry_id: str, *, now: float | None = None) -> None:
        """The POST proved nothing was created: the entry holds nothing."""
        self._update(
            entries.c.entry_id == entry_id, "release a reservation", now, status=RELEASED, held_usd=0.0
        )

    def submitted(self, entry_id: str, job_id: str, *, now: float | None = None) -> bool:
        """The POST created ``job_id``: the entry holds its estimate until the job is priced.

        Returns False (and warns) when the reservation's lease had already ended: in between,
        its share of the budgets was free for other tasks, so they may now be overrun by it. The
        job exists either way and is booked; ``budget_lease_seconds`` must outlast a POST."""
        now = time.time() if now is None else now
        with self._writing("record a submitted job") as connection:
            lease = connection.execute(
                sa.select(entries.c.lease_until, entries.c.estimate_usd).where(entries.c.entry_id == entry_id)
            ).first()
            connection.execute(
                sa.update(entries)
                .where(entries.c.entry_id == entry_id)
                .values(status=SUBMITTED, job_id=job_id, lease_until=None, updated_at=now)
            )
        if lease is not None and lease.lease_until is not None and lease.lease_until <= now:
            log.warning(
                "Job %s was created after its budget reservation lapsed (%.0f s ago): its estimate ($%.4f) was "
                "free for other tasks meanwhile, so a budget may be overrun by it. Raise [openrouter] "
                "budget_lease_seconds above the longest submit.",
                job_id,
                now - lease.lease_until,
                lease.estimate_usd or 0.0,
            )
            return False
        return True

    def ended(
        self,
        job_id: str,
        status: str,
        *,
        cost_usd: float | None,
        generation_id: str | None,
        unkept_reason: str | None = None,
        entry: Entry | None = None,
        now: float | None = None,
    ) -> None:
        """The job ended as ``status`` (its cost, when OpenRouter said it): billed on this UTC day
        (the first time it is booked as ended). A job without a row (created before the ledger
        existed) gets one from ``entry``."""
        now = time.time() if now is None else now
        with self._writing("record how a job ended") as connection:
            row = connection.execute(
                sa.select(
                    entries.c.estimate_usd, entries.c.cost_usd, entries.c.ended_at, entries.c.generation_id
                ).where(entries.c.job_id == job_id)
            ).first()
            if row is None:
                if entry is None:
                    return
                connection.execute(
                    sa.insert(entries).values(
                        entry_id=uuid.uuid4().hex,
                        **_entry_values(entry),
                        job_id=job_id,
                        held_usd=0.0,
                        status=SUBMITTED,
                        reserved_at=now,
                        billed_day=utc_day(now),
                        updated_at=now,
                    )
                )
                row = connection.execute(
                    sa.select(
                        entries.c.estimate_usd,
                        entries.c.cost_usd,
                        entries.c.ended_at,
                        entries.c.generation_id,
                    ).where(entries.c.job_id == job_id)
                ).one()
            cost = cost_usd if cost_usd is not None else row.cost_usd
            ended_at = row.ended_at if row.ended_at is not None else now
            values: dict[str, Any] = {
                "status": status,
                "cost_usd": cost,
                "held_usd": _held(status, row.estimate_usd, cost),
                "ended_at": ended_at,
                "billed_day": utc_day(ended_at),
                "generation_id": generation_id or row.generation_id,
                "updated_at": now,
            }
            if unkept_reason is not None:
                values["unkept_reason"] = unkept_reason[:2000]
            connection.execute(sa.update(entries).where(entries.c.job_id == job_id).values(**values))

    def kept(self, job_id: str, locations: Sequence[str], *, now: float | None = None) -> None:
        """The job's video was saved at ``locations`` (never a secret: paths and object URLs)."""
        self._update(
            entries.c.job_id == job_id,
            "record where a video was kept",
            now,
            kept=json.dumps(list(locations)),
            unkept_reason=None,
        )

    def not_kept(self, job_id: str, reason: str, *, now: float | None = None) -> None:
        self._update(entries.c.job_id == job_id, "record a video not kept", now, unkept_reason=reason[:2000])

    def superseded(self, job_id: str, by: str, *, now: float | None = None) -> None:
        """A changed request replaced ``job_id`` (``by``: the new job, or why it was replaced)."""
        self._update(entries.c.job_id == job_id, "record a superseded job", now, superseded_by=by[:250])

    def priced(self, job_id: str, cost_usd: float, *, now: float | None = None) -> None:
        """The cost learnt later (OpenRouter's generation record) of a job that ended unpriced."""
        now = time.time() if now is None else now
        with self._writing("record a job's cost") as connection:
            connection.execute(
                sa.update(entries)
                .where(entries.c.job_id == job_id)
                .values(cost_usd=cost_usd, held_usd=cost_usd, updated_at=now)
            )

    def _update(self, where: Any, what: str, now: float | None, **values: Any) -> None:
        now = time.time() if now is None else now
        with self._writing(what) as connection:
            connection.execute(sa.update(entries).where(where).values(updated_at=now, **values))

    # -- reading --------------------------------------------------------------------------------

    def entry(self, job_id: str) -> dict[str, Any] | None:
        with self._reading() as connection:
            row = connection.execute(sa.select(entries).where(entries.c.job_id == job_id)).mappings().first()
        return None if row is None else _public(row)

    def spend(
        self,
        *,
        since_day: str,
        until_day: str,
        dag_id: str | None = None,
        conn_id: str | None = None,
        limit: int = 10_000,
    ) -> list[SpendRow]:
        """Money per UTC day, DAG and connection between two days (inclusive), newest day first:
        one grouped query on the ``(billed_day, dag_id)`` index, bounded by ``limit`` groups."""
        priced = entries.c.cost_usd.isnot(None)
        created = entries.c.status.notin_([RESERVED, RELEASED])
        conditions = [entries.c.billed_day >= since_day, entries.c.billed_day <= until_day, created]
        if dag_id is not None:
            conditions.append(entries.c.dag_id == dag_id)
        if conn_id is not None:
            conditions.append(entries.c.conn_id == conn_id)
        ended_unkept = sa.and_(entries.c.status == "completed", entries.c.kept.is_(None))
        query = (
            sa.select(
                entries.c.billed_day,
                entries.c.dag_id,
                entries.c.conn_id,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(sa.case((priced, entries.c.cost_usd), else_=0.0)), 0.0),
                sa.func.coalesce(sa.func.sum(sa.case((priced, 0.0), else_=entries.c.held_usd)), 0.0),
                sa.func.sum(sa.case((sa.and_(~priced, entries.c.status == "completed"), 1), else_=0)),
                sa.func.sum(sa.case((ended_unkept, 1), else_=0)),
            )
            .where(*conditions)
            .group_by(entries.c.billed_day, entries.c.dag_id, entries.c.conn_id)
            .order_by(entries.c.billed_day.desc(), entries.c.dag_id, entries.c.conn_id)
            .limit(limit)
        )
        with self._reading() as connection:
            rows = connection.execute(query).all()
        return [
            SpendRow(
                day, dag, conn, int(jobs), float(spent), float(pending), int(unpriced or 0), int(unkept or 0)
            )
            for day, dag, conn, jobs, spent, pending, unpriced, unkept in rows
        ]

    def task_jobs(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[dict[str, Any]]:
        """Every job one task instance created, any try, oldest first (the ``spend`` XCom)."""
        query = (
            sa.select(entries)
            .where(
                entries.c.dag_id == dag_id,
                entries.c.run_id == run_id,
                entries.c.task_id == task_id,
                entries.c.map_index == map_index,
                entries.c.status.notin_([RESERVED, RELEASED]),
            )
            .order_by(entries.c.reserved_at, entries.c.entry_id)
            .limit(1000)
        )
        with self._reading() as connection:
            return [_public(row) for row in connection.execute(query).mappings()]

    def unkept(self, *, limit: int = 200, before: float | None = None) -> list[dict[str, Any]]:
        """Completed jobs whose video no task kept, newest first (paid, and maybe still served)."""
        conditions = [entries.c.status == "completed", entries.c.kept.is_(None)]
        if before is not None:
            conditions.append(entries.c.ended_at < before)
        query = (
            sa.select(entries)
            .where(*conditions)
            .order_by(entries.c.ended_at.desc(), entries.c.entry_id)
            .limit(limit)
        )
        with self._reading() as connection:
            return [_public(row) for row in connection.execute(query).mappings()]

    def unpriced(self, *, since_day: str, until_day: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Ended jobs with no cost yet, oldest first (for :func:`reconcile`)."""
        query = (
            sa.select(entries)
            .where(
                entries.c.status.in_(sorted(ENDED)),
                entries.c.cost_usd.is_(None),
                entries.c.billed_day >= since_day,
                entries.c.billed_day <= until_day,
            )
            .order_by(entries.c.ended_at, entries.c.entry_id)
            .limit(limit)
        )
        with self._reading() as connection:
            return [_public(row) for row in connection.execute(query).mappings()]

    def jobs(self, *, since_day: str, until_day: str, limit: int = 10_000) -> list[dict[str, Any]]:
        """Every created job billed between two days, oldest first."""
        query = (
            sa.select(entries)
            .where(
                entries.c.billed_day >= since_day,
                entries.c.billed_day <= until_day,
                entries.c.status.notin_([RESERVED, RELEASED]),
            )
            .order_by(entries.c.reserved_at, entries.c.entry_id)
            .limit(limit)
        )
        with self._reading() as connection:
            return [_public(row) for row in connection.execute(query).mappings()]

    def check_shared(self) -> None:
        """Budgets need one ledger for every machine that runs tasks."""
        if not self.shared:
            raise InvalidSettingError(
                "A spend budget is set, but the spend ledger is a SQLite file on this machine while tasks "
                "run on several machines (the executor is not a local one): each machine would count only "
                "its own spend. Point [openrouter] ledger_conn_id at a connection to a shared database "
                f"(PostgreSQL), or remove the budget. {NOTHING_SPENT}"
            )


def _entry_values(entry: Entry) -> dict[str, Any]:
    return {
        "conn_id": entry.conn_id,
        "dag_id": entry.dag_id,
        "run_id": entry.run_id,
        "task_id": entry.task_id,
        "map_index": entry.map_index,
        "try_number": entry.try_number,
        "model": entry.model,
        "fingerprint": entry.fingerprint,
        "estimate_usd": entry.estimate_usd,
    }


def _public(row: Any) -> dict[str, Any]:
    values = dict(row)
    values["kept"] = json.loads(values["kept"]) if values.get("kept") else None
    return values


def _short(error: Exception) -> str:
    """An error's first line without its SQL or parameters (which may hold request text), and
    without a URL (which may hold the database password)."""
    text = str(getattr(error, "orig", None) or error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]


# -- where the ledger is --------------------------------------------------------------------------

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()
_LEDGERS: dict[tuple[str, bool], Ledger] = {}


def _engine(url: str, *, reads: bool = False) -> Engine:
    """One engine per URL (and, on SQLite, per use) per process. SQLite: WAL, a 30 s busy wait, and
    ``BEGIN IMMEDIATE`` for every writing transaction, so two reservations never read the same
    totals (``reads``: a deferred ``BEGIN``, for reports); other databases: READ COMMITTED, so a
    reservation's sums, read once it holds the budgets' lock rows, see every reservation
    committed before it."""
    key = f"{url}#reads" if reads else url
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is not None:
            return engine
        if url.startswith("sqlite"):
            begin = "BEGIN" if reads else "BEGIN IMMEDIATE"
            engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

            @sa.event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            @sa.event.listens_for(engine, "begin")
            def _on_begin(connection: Any) -> None:
                connection.exec_driver_sql(begin)

        else:
            try:
                # READ COMMITTED whatever the database's default (MySQL's is REPEATABLE READ): the
                # sums read after the budgets' lock must see what the lock's previous holders
                # committed, not a snapshot taken before waiting for it (that overspends a budget).
                engine = sa.create_engine(
                    url,
                    isolation_level="READ COMMITTED",
                    pool_pre_ping=True,
                    pool_size=2,
                    max_overflow=4,
                    pool_recycle=1800,
                )
            except ImportError as missing:
                raise InvalidSettingError(
                    f"The spend ledger's database driver is not installed on this machine ({missing}); install "
                    f"it (PostgreSQL: pip install psycopg2-binary). {NOTHING_SPENT}"
                ) from None
        _ENGINES[key] = engine
        return engine


SQLALCHEMY_DRIVERS = {
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+mysqldb",
    "sqlite": "sqlite",
}


def url_of_connection(conn: Any) -> str:
    """A SQLAlchemy URL for an Airflow connection (``extra.sqlalchemy_url`` wins when set)."""
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    if isinstance(extra, dict) and isinstance(extra.get("sqlalchemy_url"), str):
        return str(extra["sqlalchemy_url"])
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        return f"sqlite:///{conn.host}"
    driver = SQLALCHEMY_DRIVERS.get(conn_type)
    if driver is None:
        raise InvalidSettingError(
            f"[openrouter] ledger_conn_id names connection {conn.conn_id!r} of type {conn_type!r}: the "
            f"spend ledger needs a database connection ({', '.join(sorted(SQLALCHEMY_DRIVERS))}), or an "
            "extra sqlalchemy_url."
        )
    url = sa.engine.URL.create(
        driver,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )
    return url.render_as_string(hide_password=False)


def ledger_url() -> tuple[str, bool]:
    """Where this deployment's ledger is, and whether every machine running tasks shares it."""
    from airflow.configuration import conf

    conn_id = conf.get("openrouter", "ledger_conn_id", fallback="") or ""
    if conn_id.strip():
        from airflow_provider_orvideo._internal.compat import BaseHook

        return url_of_connection(BaseHook.get_connection(conn_id.strip())), True
    path = conf.get("openrouter", "ledger_path", fallback="") or ""
    if not path.strip():
        home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
        path = os.path.join(home, "orvideo_ledger.sqlite")
    executor = (conf.get("core", "executor", fallback="") or "").lower()
    local = all(
        name.strip().startswith(
            ("local", "sequential", "airflow.executors.local", "airflow.executors.sequential")
        )
        for name in executor.split(",")
        if name.strip()
    )
    return f"sqlite:///{os.path.abspath(path)}", local


def configured_ledger() -> Ledger:
    """This deployment's ledger (one per process and location)."""
    url, shared = ledger_url()
    key = (url, shared)
    ledger = _LEDGERS.get(key)
    if ledger is None:
        ledger = _LEDGERS.setdefault(key, Ledger.at(url, shared=shared))
    return ledger
