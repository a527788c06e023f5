"""Many tasks reserving against one spend budget at once: ``Ledger.reserve``'s latency, and exactly
the budget fits (issue 25, item 3).

    python benchmarks/budget_reservations.py                       # PostgreSQL and SQLite, 50 tasks x 10 rounds
    python benchmarks/budget_reservations.py --backends postgresql --rounds 4
    python benchmarks/budget_reservations.py --fits 20 --estimate 2.0 --spread 1.0

Each round forks ``--tasks`` processes from this one (the provider and SQLAlchemy already
imported, as an Airflow task process is forked from its supervisor). Each process opens the
ledger with its own engine and connection (``Ledger.at``) and calls ``Ledger.reserve`` once: one
video estimated at ``--estimate`` USD, for the round's own DAG, against a DAG budget that holds
exactly ``--fits`` of them (``dag_budget_usd`` = fits x estimate, per UTC day). The latency is
timed inside the process around that one call; waiting for the budget's lock (and, with 50
processes on 2 cores, for a CPU) is part of it.

Kinds of round (every one with fresh processes, as every Airflow task is):

* **warm alone** and **first-call alone**: one process after another, nothing to wait for: what
  one reservation costs by itself, warm (as below) or as a task's first call (connect, check the
  ledger's tables, compile the statements, the reserving transaction);
* **warm burst**: before the barrier each process connected, checked the schema and made one
  reservation against another budget (so SQLAlchemy compiled its statements): the timed call is
  the reserving transaction alone (lock, sums, insert, commit). All released at once.
* **first-call burst**: nothing before the barrier: the timed call also connects, checks the
  ledger's tables and compiles its statements, as an Airflow task's one reservation does. All
  released at once: 50 tasks queued on one budget at the same instant, the worst case.
* **first-call spread**: as above, each process starting at a random moment within ``--spread``
  seconds after the barrier (50 task starts a second by default; a scheduler and its workers
  start tasks over seconds, each task process costing a second or more of CPU to start).
* **new-database burst**: a first-call burst on a database no process has used yet: every
  process races to create the ledger's tables (the first tasks of a new deployment).

Besides the call's latency, each process reports how long it held the budget's lock: from the
moment it was granted (SQLite: ``BEGIN IMMEDIATE`` returned) to the call's return; on
PostgreSQL a reservation is one message to the server, which holds the lock for its own time
only (not seen from the client: shown as nan). Every other reservation of that
budget waits that long for it, so in a burst the k-th waits about k holds.

Checked every round, from the processes' answers and from the ledger afterwards: the reservations
that fit are exactly ``--fits`` (the others raised ``SpendBudgetExceededError``), the ledger holds
exactly that many ``reserved`` rows for the round's DAG, and what they hold equals the budget.
The script exits 1 when a check fails.

PostgreSQL: a private cluster (``tests/distributed/services.py``: initdb in a temporary
directory, 127.0.0.1 on a free port, fsync off); each new-database round gets a database of its
own. SQLite: the ledger's own recipe (WAL, ``BEGIN IMMEDIATE``, a 30 s busy wait) on a file in a
temporary directory; each new-database round gets a file of its own.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import multiprocessing.synchronize
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from airflow_provider_orvideo._internal import ledger as ledger_module
from airflow_provider_orvideo._internal.budgets import Budget, Window
from airflow_provider_orvideo._internal.ledger import Entry, Ledger
from airflow_provider_orvideo.exceptions import SpendBudgetExceededError
from benchmarks._common import busy_processes, machine_line, table, wait_quiet
from tests.distributed.services import PrivatePostgres, ServiceError, postgres_bin_dir

FORK = multiprocessing.get_context("fork")
KINDS = (
    "warm alone",
    "first-call alone",
    "warm burst",
    "first-call burst",
    "first-call spread",
    "new-database burst",
)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile by the nearest-rank method (p99 of 500 samples: the 495th)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def task(
    url: str,
    dag_id: str,
    index: int,
    budget: Budget,
    estimate: float,
    kind: str,
    spread: float,
    barrier: multiprocessing.synchronize.Barrier,
    answer: Connection,
) -> None:
    """One task process: open the ledger, wait for the others, reserve once, say how it went."""
    try:
        ledger = Ledger.at(url)
        for engine in {ledger.engine, getattr(ledger, "reader", ledger.engine)}:  # SQLite: a reader too
            engine.dispose(close=False)  # a forked copy of the parent's pool: start a pool of our own
        if kind.startswith("warm"):  # connect, check the schema, compile the statements
            warm_up = f"warm_{dag_id}_{index}"
            warm_budget = Budget(f"DAG {warm_up}", 1e9, Window(), dag_ids=frozenset({warm_up}))
            ledger.reserve(
                Entry("openrouter_default", warm_up, "bench", "render", 0, 1, "bench/model", None, estimate),
                [warm_budget],
            )
        entry = Entry(
            "openrouter_default", dag_id, "bench", "render", index, 1, "bench/model", None, estimate
        )
        locked: list[
            float
        ] = []  # when the budget's lock was granted: FOR UPDATE, or SQLite's BEGIN IMMEDIATE

        def took_lock(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if "FOR UPDATE" in statement or statement.startswith("BEGIN IMMEDIATE"):
                locked.append(time.perf_counter())

        sa.event.listen(ledger.engine, "after_cursor_execute", took_lock)
        barrier.wait(timeout=120)
        if kind == "first-call spread":
            time.sleep(random.uniform(0, spread))
        t0 = time.perf_counter()
        try:
            ledger.reserve(entry, [budget], lease_seconds=900)
            fitted = True
        except SpendBudgetExceededError:
            fitted = False
        t1 = time.perf_counter()
        # The last lock: the reserving transaction's. PostgreSQL's one-message reservation holds it
        # for server time only, not seen from here (nan).
        answer.send(("ok", t1 - t0, fitted, t1 - locked[-1] if locked else math.nan))
    except BaseException as error:  # the parent reports it; nothing else may escape a forked child
        answer.send(("error", 0.0, f"{type(error).__name__}: {error}", 0.0))
    finally:
        answer.close()
        os._exit(0)


@dataclass
class Result:
    backend: str
    kind: str
    latencies: list[float] = field(default_factory=list)
    held: list[float] = field(default_factory=list)  # from the lock granted to the call's return
    fitted: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def run_round(url: str, args: argparse.Namespace, result: Result) -> None:
    dag_id = f"bench_{uuid.uuid4().hex[:8]}"
    budget = Budget(f"DAG {dag_id}", args.fits * args.estimate, Window(), dag_ids=frozenset({dag_id}))
    alone = result.kind.endswith("alone")  # one process after another: no one to wait for
    barriers = (
        [FORK.Barrier(1) for _ in range(args.tasks)] if alone else [FORK.Barrier(args.tasks)] * args.tasks
    )
    answers = []
    procs = []
    for i in range(args.tasks):
        reader, writer = FORK.Pipe(duplex=False)
        proc = FORK.Process(
            target=task,
            args=(url, dag_id, i, budget, args.estimate, result.kind, args.spread, barriers[i], writer),
            daemon=True,
        )
        proc.start()
        writer.close()
        procs.append((proc, reader))
        if alone:
            answers.append(reader.recv() if reader.poll(180) else ("error", 0.0, "no answer in 180 s", 0.0))
            proc.join(timeout=30)
    if not alone:
        for _, reader in procs:
            answers.append(reader.recv() if reader.poll(180) else ("error", 0.0, "no answer in 180 s", 0.0))
        for proc, _ in procs:
            proc.join(timeout=30)
    errors = [str(a[2]) for a in answers if a[0] != "ok"]
    if errors:
        result.problems.append(f"{len(errors)} processes failed, e.g. {errors[0]}")
    result.latencies += [a[1] for a in answers if a[0] == "ok"]
    result.held += [a[3] for a in answers if a[0] == "ok"]
    fitted = sum(1 for a in answers if a[0] == "ok" and a[2] is True)
    result.fitted.append(fitted)
    if fitted != args.fits:
        result.problems.append(f"round {dag_id}: {fitted} reservations fit a budget of {args.fits}")
    # What the ledger holds afterwards, read by an engine of its own.
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    entries = ledger_module.entries
    with engine.connect() as connection:
        rows, held = connection.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(entries.c.held_usd), 0.0)).where(
                entries.c.dag_id == dag_id, entries.c.status == ledger_module.RESERVED
            )
        ).one()
    engine.dispose()
    if rows != args.fits or abs(held - budget.limit_usd) > 1e-9:
        result.problems.append(
            f"round {dag_id}: the ledger holds {rows} rows, ${held} of ${budget.limit_usd}"
        )


def bench_backend(backend: str, args: argparse.Namespace, work: Path) -> list[Result]:
    results = {kind: Result(backend, kind) for kind in args.kinds}
    postgres: PrivatePostgres | None = None
    try:
        if backend == "postgresql":
            postgres = PrivatePostgres(work / "pg-logs", database="ledger").start()

            def database(name: str) -> str:
                assert postgres is not None
                return postgres.url() if name == "ledger" else postgres.create_database(name)

        else:

            def database(name: str) -> str:
                return f"sqlite:///{work / (name + '.sqlite')}"

        url = database("ledger")
        Ledger.at(url).ensure_schema()
        for n in range(args.rounds):
            for kind, result in results.items():
                run_round(database(f"ledger_new_{n}") if kind == "new-database burst" else url, args, result)
            print(
                f"[{backend}] round {n + 1}/{args.rounds}: fitted "
                + ", ".join(f"{kind} {r.fitted[-1]}" for kind, r in results.items())
                + f" of {args.tasks}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        for engine in list(ledger_module._ENGINES.values()):
            engine.dispose()
        ledger_module._ENGINES.clear()
        if postgres is not None:
            postgres.stop()
    return list(results.values())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=50, help="processes reserving at once")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of each kind (warm, cold)")
    parser.add_argument("--fits", type=int, default=20, help="videos the budget holds")
    parser.add_argument("--estimate", type=float, default=2.0, help="USD held by each reservation")
    parser.add_argument(
        "--spread", type=float, default=1.0, help="seconds over which first-call spread rounds start"
    )
    parser.add_argument("--backends", default="postgresql,sqlite", help="comma-separated: postgresql, sqlite")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of: {', '.join(KINDS)}")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for a quiet machine")
    parser.add_argument("--max-wait", type=float, default=300.0, help="wait this long for a quiet machine")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if set(args.kinds) - set(KINDS):
        raise SystemExit(
            f"unknown kinds {sorted(set(args.kinds) - set(KINDS))}; choose from {', '.join(KINDS)}"
        )
    if "postgresql" in backends and postgres_bin_dir() is None:
        raise SystemExit(
            "PostgreSQL's server binaries (initdb, postgres) are missing: apt-get install postgresql"
        )
    quiet, waited = (True, 0.0) if args.no_wait else wait_quiet(max_wait=args.max_wait)
    print(f"machine: {machine_line()} (quiet={quiet}, waited {waited:.0f} s)", flush=True)
    print(
        f"{args.tasks} processes x {args.rounds} rounds of each kind; a budget for {args.fits} reservations "
        f"of ${args.estimate:g}; spread rounds start over {args.spread:g} s",
        flush=True,
    )
    results: list[Result] = []
    work = Path(tempfile.mkdtemp(prefix="orvideo-ledger-bench-"))
    os.chmod(work, 0o755)
    try:
        for backend in backends:
            try:
                results += bench_backend(backend, args, work)
            except ServiceError as error:
                raise SystemExit(f"{backend}: {error}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for r in results:
        ms = [x * 1000 for x in r.latencies]
        held = [x * 1000 for x in r.held]
        rows.append(
            [
                r.backend,
                r.kind,
                len(ms),
                f"{percentile(ms, 50):.1f}" if ms else "-",
                f"{percentile(ms, 90):.1f}" if ms else "-",
                f"{percentile(ms, 99):.1f}" if ms else "-",
                f"{max(ms):.1f}" if ms else "-",
                f"{percentile(held, 50):.2f} / {percentile(held, 99):.2f}"
                if held and not math.isnan(held[0])
                else "-",
                " / ".join(str(f) for f in sorted(set(r.fitted))) + f" of {args.tasks} (budget {args.fits})",
            ]
        )
    print()
    print(
        table(
            [
                "backend",
                "round",
                "reservations",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "lock held p50 / p99 ms",
                "fitted per round",
            ],
            rows,
        )
    )
    print(f"\nafter: {machine_line()}; still busy: {busy_processes() or 'nothing'}")
    problems = [f"{r.backend} {r.kind}: {p}" for r in results for p in r.problems]
    for problem in problems:
        print(f"FAILED: {problem}")
    if not problems:
        print("\nEvery round: exactly the budget fitted, and the ledger held exactly the budget.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
