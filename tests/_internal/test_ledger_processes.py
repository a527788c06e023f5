"""The spend ledger across processes, as Airflow runs tasks: one process per task, each with its own
connection, racing for one budget; and a task process killed (``kill -9``) while it holds a
reservation or the budget's lock.

Here on SQLite (the ledger's default file, WAL and ``BEGIN IMMEDIATE``); the helpers take a URL,
and ``tests/distributed/test_celery_budgets.py`` runs them again on PostgreSQL. Processes are
forked from the test process (everything imported already, as an Airflow task process is forked
from its supervisor); each opens the ledger on a connection pool of its own.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_provider_orvideo._internal import ledger as ledger_module
from airflow_provider_orvideo._internal.api import VideoJob
from airflow_provider_orvideo._internal.budgets import Budget, Window
from airflow_provider_orvideo._internal.ledger import Entry, Ledger
from airflow_provider_orvideo._internal.lifecycle import TaskIdentity, VideoJobLifecycle
from airflow_provider_orvideo._internal.spending import plan_spend
from airflow_provider_orvideo.exceptions import SpendBudgetExceededError
from airflow_provider_orvideo.pricing import CostEstimate

FORK = multiprocessing.get_context("fork")
DAG_ID = "budgeted"
MODEL = "openai/sora-2-pro"
ESTIMATE_USD = 2.0  # 1080p, 4 s: per-video-second-1080p $0.50 x 4
BODY = {"model": MODEL, "prompt": "A tin robot watering a window box", "duration": 4, "resolution": "1080p"}

Say = Callable[[tuple[str, Any]], None]


def dag_budget(videos: int) -> Budget:
    """What ``dag_budget_usd=videos * ESTIMATE_USD`` gives the DAG (per UTC day)."""
    return Budget(f"DAG {DAG_ID}", videos * ESTIMATE_USD, Window(), dag_ids=frozenset({DAG_ID}))


def task_entry(map_index: int) -> Entry:
    return Entry("openrouter_default", DAG_ID, "run", "render", map_index, 1, MODEL, None, ESTIMATE_USD)


def own_ledger(url: str) -> Ledger:
    """In a forked process: the ledger at ``url`` on a pool of its own (a pool inherited from the
    parent is left to the parent, never used)."""
    ledger = Ledger.at(url)
    for engine in {ledger.engine, getattr(ledger, "reader", ledger.engine)}:  # SQLite: a reader engine too
        engine.dispose(close=False)
    return ledger


def rows(url: str) -> list[dict[str, Any]]:
    """Every entry of the ledger at ``url``, read on a connection of its own."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return [dict(r) for r in connection.execute(sa.select(ledger_module.entries)).mappings()]
    finally:
        engine.dispose()


class Child:
    """A forked process running ``target(*args, say)``; ``say`` sends the test a message. The
    process never returns into pytest: it leaves by ``os._exit`` (or is killed)."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self._reader, writer = FORK.Pipe(duplex=False)

        def run() -> None:
            try:
                target(*args, writer.send)
            except BaseException as error:
                writer.send(("error", f"{type(error).__name__}: {error}"))
            finally:
                os._exit(0)

        self.process = FORK.Process(target=run, daemon=True)
        self.process.start()
        writer.close()

    def hear(self, timeout: float = 60.0) -> tuple[str, Any]:
        if not self._reader.poll(timeout):
            raise AssertionError(f"no word from process {self.process.pid} in {timeout:.0f} s")
        message: tuple[str, Any] = self._reader.recv()
        assert message[0] != "error", message
        return message

    def kill(self) -> None:
        """``kill -9``, by its pid."""
        assert self.process.pid is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(timeout=10)
        assert self.process.exitcode == -signal.SIGKILL


# -- what the tests run in their processes (also on PostgreSQL: tests/distributed) -----------------


def race(url: str, processes: int, videos: int) -> list[bool]:
    """``processes`` task processes, released together, each reserving one video against a DAG
    budget for ``videos``; whether each fitted. Nothing is done before the release: each one's
    call opens its connection and checks (or creates) the ledger's tables."""
    barrier = FORK.Barrier(processes)

    def reserve_once(map_index: int, say: Say) -> None:
        ledger = own_ledger(url)
        barrier.wait(timeout=60)
        try:
            ledger.reserve(task_entry(map_index), [dag_budget(videos)])
            say(("fitted", True))
        except SpendBudgetExceededError:
            say(("fitted", False))

    children = [Child(reserve_once, i) for i in range(processes)]
    return [bool(child.hear()[1]) for child in children]


class MemoryStore:
    """The task state store as a dict (one task instance, one try)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


class PostNeverLeaves:
    """OpenRouter as the task sees it, up to the POST, which never leaves: it tells the test and
    waits to be killed."""

    def __init__(self, say: Say) -> None:
        self.say = say

    def submit(self, body: Mapping[str, Any]) -> VideoJob:
        self.say(("posting", dict(body)))
        time.sleep(3600)
        raise AssertionError("not killed")

    def get_job(self, job_id: str) -> VideoJob:
        raise AssertionError("no job to look at")


def reserve_then_hang_before_the_post(url: str, lease_seconds: float, say: Say) -> None:
    """A task's submit as the operator runs it (``plan_spend`` reads ``[openrouter]
    budget_lease_seconds``; ``VideoJobLifecycle.submit`` reserves, records the intent, POSTs),
    with a DAG budget for one video; the POST never leaves."""
    os.environ["AIRFLOW__OPENROUTER__BUDGET_LEASE_SECONDS"] = str(lease_seconds)
    life = VideoJobLifecycle(
        PostNeverLeaves(say),
        MemoryStore(),
        TaskIdentity(DAG_ID, "run", "render", 0),
        ledger=own_ledger(url),
        conn_id="openrouter_default",
        try_number=1,
    )
    spend = plan_spend(
        life,
        MODEL,
        CostEstimate(ESTIMATE_USD, "per-video-second-1080p $0.5/s x 4 s"),
        connection_budget=None,
        dag_budget=(ESTIMATE_USD, "utc_day"),
        max_cost_usd=None,
        log=logging.getLogger(__name__),
    )
    life.submit(life.resume(BODY), BODY, spend=spend)


def hang_inside_the_reservation(url: str, say: Say) -> None:
    """A reservation stopped after it took the budget's lock and summed what the budget holds
    (SQLite: inside ``BEGIN IMMEDIATE``). On PostgreSQL a reservation is one message to the server
    and never holds the lock while its client waits, so the stuck holder is a client that took the
    lock row ``FOR UPDATE`` and stopped (an older release's reservation, or any session)."""
    ledger = own_ledger(url)
    if url.startswith("postgresql"):
        ledger.ensure_schema()
        with ledger.engine.connect() as connection:
            key = dag_budget(1).key
            connection.execute(ledger_module.sa.insert(ledger_module.budget_locks).values(budget_key=key))
            connection.commit()
            connection.execute(
                ledger_module.sa.select(ledger_module.budget_locks.c.budget_key)
                .where(ledger_module.budget_locks.c.budget_key == key)
                .with_for_update()
            ).all()
            say(("locked", None))
            time.sleep(3600)

    def stuck(*_: Any) -> None:
        say(("locked", None))
        time.sleep(3600)

    ledger_module.refusal = stuck  # this process only
    ledger.reserve(task_entry(0), [dag_budget(1)])


def assert_a_killed_reservation_holds_until_its_lease_ends(url: str, lease_seconds: float) -> None:
    child = Child(reserve_then_hang_before_the_post, url, lease_seconds)
    kind, body = child.hear()
    assert (kind, body["model"]) == ("posting", MODEL)
    child.kill()
    [row] = rows(url)
    assert (row["status"], row["held_usd"]) == ("reserved", ESTIMATE_USD), row
    assert row["lease_until"] - row["reserved_at"] == pytest.approx(lease_seconds)
    ledger = Ledger.at(url)
    with pytest.raises(SpendBudgetExceededError) as refused:  # the dead task's reservation holds
        ledger.reserve(task_entry(1), [dag_budget(1)])
    assert (refused.value.spent_usd, refused.value.reserved_usd) == (0.0, ESTIMATE_USD)
    assert time.time() < row["lease_until"], "the lease ended before it could be seen holding"
    time.sleep(max(0.0, row["lease_until"] - time.time()) + 0.05)
    entry_id = ledger.reserve(task_entry(1), [dag_budget(1)])  # the lease ended: it holds nothing
    assert {r["entry_id"]: r["status"] for r in rows(url)}[entry_id] == "reserved"


def assert_a_reservation_killed_holding_the_lock_frees_it(url: str) -> float:
    """A reservation waiting for the killed one's lock gets it once the process is gone, and
    fits (the killed one committed nothing); returns seconds from the kill to that reservation."""
    child = Child(hang_inside_the_reservation, url)
    assert child.hear()[0] == "locked"
    outcome: dict[str, Any] = {}

    def reserve() -> None:
        try:
            outcome["entry_id"] = Ledger.at(url).reserve(task_entry(1), [dag_budget(1)])
        except BaseException as error:
            outcome["error"] = error
        outcome["at"] = time.monotonic()

    waiter = threading.Thread(target=reserve, daemon=True)
    waiter.start()
    waiter.join(1.0)
    assert waiter.is_alive(), f"the reservation did not wait for the held lock: {outcome}"
    killed = time.monotonic()
    child.kill()
    waiter.join(20)
    assert not waiter.is_alive(), "still waiting 20 s after the lock holder was killed"
    assert "entry_id" in outcome, outcome
    assert [(r["map_index"], r["status"]) for r in rows(url)] == [(1, "reserved")]
    return float(outcome["at"] - killed)


# -- SQLite ------------------------------------------------------------------------------------------


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'orvideo_ledger.sqlite'}"


def test_task_processes_racing_on_a_new_ledger_fit_exactly_the_budget(tmp_path: Path) -> None:
    """12 processes on a ledger file none has created yet (all race to create its tables), a
    budget for 4: exactly 4 fit, and the ledger holds exactly those."""
    url = sqlite_url(tmp_path)
    fitted = race(url, processes=12, videos=4)
    assert fitted.count(True) == 4, fitted
    booked = rows(url)
    assert sorted(r["map_index"] for r in booked) == [i for i, f in enumerate(fitted) if f]
    assert sum(r["held_usd"] for r in booked) == 4 * ESTIMATE_USD


def test_a_task_killed_before_its_post_holds_the_budget_until_its_lease_ends(tmp_path: Path) -> None:
    assert_a_killed_reservation_holds_until_its_lease_ends(sqlite_url(tmp_path), lease_seconds=2.0)


def test_a_task_killed_inside_its_reservation_does_not_block_the_ledger(tmp_path: Path) -> None:
    """The killed process held SQLite's write lock (``BEGIN IMMEDIATE``): the next reservation
    gets it at once, not after the 30 s busy wait."""
    url = sqlite_url(tmp_path)
    Ledger.at(url).ensure_schema()
    assert assert_a_reservation_killed_holding_the_lock_frees_it(url) < 5
