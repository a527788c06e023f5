"""The spend ledger on a real SQLite file: an entry's life, what it holds, budgets under races."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_orvideo._internal.budgets import DAY_SECONDS, Budget, Window
from airflow_provider_orvideo._internal.ledger import Entry, Ledger, configured_ledger, url_of_connection
from airflow_provider_orvideo.exceptions import (
    NOTHING_SPENT,
    InvalidSettingError,
    LedgerUnavailableError,
    SpendBudgetExceededError,
)

NOON = 1_796_472_000.0  # 2026-12-05T12:00:00Z
DAY = "2026-12-05"


def entry(
    dag_id: str = "d", estimate: float | None = 1.0, *, map_index: int = 0, conn_id: str = "c"
) -> Entry:
    return Entry(conn_id, dag_id, "run", "t", map_index, 1, "google/veo-3.1", "fp", estimate)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.at(f"sqlite:///{tmp_path / 'ledger.sqlite'}")


def held(ledger: Ledger, budget: Budget, now: float) -> tuple[float, float]:
    ledger.ensure_schema()
    with ledger.engine.begin() as connection:
        use = ledger._use(connection, budget, now)
    return use.spent_usd, use.reserved_usd


def test_an_entry_from_reservation_to_kept(ledger: Ledger) -> None:
    budget = Budget("DAG d", 10, Window(), dag_ids=frozenset({"d"}))
    entry_id = ledger.reserve(entry(estimate=2.0), [budget], now=NOON)
    assert held(ledger, budget, NOON) == (0.0, 2.0)
    ledger.submitted(entry_id, "job-1", now=NOON + 1)
    assert held(ledger, budget, NOON + 10_000) == (0.0, 2.0)  # the job exists: no lease any more
    ledger.ended("job-1", "completed", cost_usd=1.75, generation_id="gen-1", now=NOON + 60)
    assert held(ledger, budget, NOON + 61) == (1.75, 0.0)
    ledger.kept("job-1", ["/videos/a.mp4"], now=NOON + 62)
    row = ledger.entry("job-1")
    assert row is not None
    assert (row["status"], row["cost_usd"], row["generation_id"], row["kept"]) == (
        "completed",
        1.75,
        "gen-1",
        ["/videos/a.mp4"],
    )
    assert [r.to_dict() for r in ledger.spend(since_day=DAY, until_day=DAY)] == [
        {
            "day": DAY,
            "dag_id": "d",
            "conn_id": "c",
            "jobs": 1,
            "spent_usd": 1.75,
            "pending_usd": 0.0,
            "unpriced": 0,
            "unkept": 0,
        }
    ]
    assert ledger.unkept() == []


def test_released_and_expired_reservations_hold_nothing(ledger: Ledger) -> None:
    budget = Budget("b", 10, Window())
    released = ledger.reserve(entry(estimate=3.0), [budget], now=NOON)
    ledger.released(released, now=NOON + 1)
    ledger.reserve(entry(estimate=4.0), [budget], now=NOON, lease_seconds=60)
    assert held(ledger, budget, NOON + 59) == (0.0, 4.0)
    assert held(ledger, budget, NOON + 61) == (0.0, 0.0)  # the task died before its POST: reclaimed
    assert ledger.spend(since_day=DAY, until_day=DAY) == []  # neither created a job


def test_a_completed_job_without_a_cost_holds_its_estimate_and_a_failed_one_nothing(ledger: Ledger) -> None:
    budget = Budget("b", 10, Window())
    for job_id, status in (("unpriced", "completed"), ("failed", "failed")):
        entry_id = ledger.reserve(entry(estimate=2.5), [budget], now=NOON)
        ledger.submitted(entry_id, job_id, now=NOON)
        ledger.ended(job_id, status, cost_usd=None, generation_id=None, now=NOON + 5)
    assert held(ledger, budget, NOON + 6) == (0.0, 2.5)
    (row,) = ledger.spend(since_day=DAY, until_day=DAY)
    assert (row.jobs, row.spent_usd, row.pending_usd, row.unpriced, row.unkept) == (2, 0.0, 2.5, 1, 1)
    ledger.priced("unpriced", 2.25, now=NOON + 7)
    assert held(ledger, budget, NOON + 8) == (2.25, 0.0)
    assert [job["job_id"] for job in ledger.unpriced(since_day=DAY, until_day=DAY)] == ["failed"]


def test_a_job_is_billed_on_the_day_it_ended(ledger: Ledger) -> None:
    entry_id = ledger.reserve(entry(), [], now=NOON + 11.9 * 3600)  # 23:54 UTC
    ledger.submitted(entry_id, "late", now=NOON + 11.9 * 3600)
    ledger.ended("late", "completed", cost_usd=1.0, generation_id=None, now=NOON + 12.1 * 3600)
    assert [row.day for row in ledger.spend(since_day=DAY, until_day="2026-12-06")] == ["2026-12-06"]


def test_an_ending_without_a_row_books_one(ledger: Ledger) -> None:
    """A job submitted before the ledger existed (or whose booking failed) is booked when it ends."""
    ledger.ended("old", "completed", cost_usd=0.5, generation_id=None, entry=entry(estimate=None), now=NOON)
    ledger.ended("ghost", "completed", cost_usd=0.5, generation_id=None, now=NOON)  # no entry: nothing
    assert [row["job_id"] for row in ledger.jobs(since_day=DAY, until_day=DAY)] == ["old"]


def test_superseded_and_unkept_are_on_record(ledger: Ledger) -> None:
    first = ledger.reserve(entry(), [], now=NOON)
    ledger.submitted(first, "job-a", now=NOON)
    ledger.superseded("job-a", "job-b", now=NOON + 1)
    ledger.ended(
        "job-a", "completed", cost_usd=1.0, generation_id=None, unkept_reason="superseded", now=NOON + 2
    )
    (row,) = ledger.unkept()
    assert (row["job_id"], row["superseded_by"], row["unkept_reason"]) == ("job-a", "job-b", "superseded")


def test_a_refusal_names_the_budget_and_its_figures_and_records_nothing(ledger: Ledger) -> None:
    budget = Budget("DAG d", 5, Window(), dag_ids=frozenset({"d"}))
    ledger.reserve(entry(estimate=3.0), [budget], now=NOON)
    with pytest.raises(SpendBudgetExceededError) as refused:
        ledger.reserve(entry(estimate=2.5, map_index=7), [budget], now=NOON)
    error = refused.value
    assert (error.budget, error.limit_usd, error.spent_usd, error.reserved_usd, error.estimate_usd) == (
        "DAG d",
        5,
        0.0,
        3.0,
        2.5,
    )
    assert error.resets_at == NOON + 12 * 3600
    message = str(error)
    for part in (
        "DAG d ($5.00 per UTC day)",
        "$3.0000 reserved",
        "$2.0000 is left",
        "$2.5000",
        "map index 7",
    ):
        assert part in message
    assert "2026-12-06T00:00:00Z" in message
    assert NOTHING_SPENT in message
    assert ledger.jobs(since_day=DAY, until_day=DAY) == []
    # Another DAG's job is not held by this budget.
    ledger.reserve(entry("other", estimate=100.0), [budget], now=NOON)


def test_a_rolling_window_frees_up_as_entries_age(ledger: Ledger) -> None:
    budget = Budget("b", 2, Window(3600))
    for offset in (0, 600):
        entry_id = ledger.reserve(entry(estimate=1.0), [budget], now=NOON + offset)
        ledger.submitted(entry_id, f"job-{offset}", now=NOON + offset)
    with pytest.raises(SpendBudgetExceededError) as refused:
        ledger.reserve(entry(estimate=1.0), [budget], now=NOON + 1200)
    assert refused.value.resets_at == NOON + 3600  # when the oldest entry leaves the window
    ledger.reserve(entry(estimate=1.0), [budget], now=NOON + 3601)


def test_racing_threads_fit_exactly_what_the_budget_holds(tmp_path: Path) -> None:
    """20 reservations at once, each on its own connection, against a budget for 5."""
    url = f"sqlite:///{tmp_path / 'race.sqlite'}"
    budget = Budget("DAG d", 5 * 0.4, Window(), dag_ids=frozenset({"d"}))
    Ledger.at(url).ensure_schema()
    outcomes: list[str] = []
    start = threading.Barrier(20)

    def reserve(index: int) -> None:
        start.wait()
        try:
            Ledger.at(url).reserve(entry(estimate=0.4, map_index=index), [budget])
            outcomes.append("fit")
        except SpendBudgetExceededError:
            outcomes.append("refused")

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["fit"] * 5 + ["refused"] * 15


operations = st.lists(
    st.tuples(st.sampled_from(["reserve", "release", "submit", "end", "price", "wait"]), st.integers(0, 30)),
    max_size=30,
)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=operations)
def test_what_budgets_hold_never_exceeds_the_limit(
    tmp_path_factory: pytest.TempPathFactory, steps: list
) -> None:
    """Any sequence of reservations, releases, submits, endings and waits: what the budget holds
    (spent + reserved) never exceeds its limit, except by a job priced above its estimate or one
    whose POST answered after its reservation's lease (``submitted`` says so, and warns)."""
    ledger = Ledger.at(f"sqlite:///{tmp_path_factory.mktemp('h') / 'l.sqlite'}")
    budget = Budget("b", 3.0, Window(7200))
    now = NOON
    live: list[str] = []
    submitted: list[str] = []
    overrun = 0.0
    for action, value in steps:
        if action == "reserve":
            with contextlib.suppress(SpendBudgetExceededError):
                live.append(ledger.reserve(entry(estimate=value / 10), [budget], now=now, lease_seconds=300))
        elif action == "release" and live:
            ledger.released(live.pop(), now=now)
        elif action == "submit" and live:
            entry_id = live.pop()
            if not ledger.submitted(entry_id, entry_id, now=now):
                # Submitted after its lease lapsed: its share was free for others meanwhile.
                overrun += ledger.entry(entry_id)["estimate_usd"] or 0.0
            submitted.append(entry_id)
        elif action == "end" and submitted:
            job = submitted.pop(0)
            row = ledger.entry(job)
            assert row is not None
            cost = value / 10
            overrun += max(0.0, cost - (row["estimate_usd"] or 0.0))
            ledger.ended(job, "completed", cost_usd=cost, generation_id=None, now=now)
        elif action == "wait":
            now += value * 60
        spent, reserved = held(ledger, budget, now)
        assert spent + reserved <= budget.limit_usd + overrun + 1e-6


def test_an_unreachable_database_is_a_ledger_error_without_its_password() -> None:
    pytest.importorskip("psycopg2")
    ledger = Ledger.at("postgresql+psycopg2://ledger:s3cr3t-pw@127.0.0.1:1/ledger?connect_timeout=2")
    with pytest.raises(LedgerUnavailableError) as failed:
        ledger.reserve(entry(), [])
    assert "s3cr3t-pw" not in str(failed.value)
    assert "could not reserve this job's estimate" in str(failed.value)


def test_url_of_an_airflow_connection() -> None:
    from airflow.models.connection import Connection

    postgres = Connection(
        conn_id="l", conn_type="postgres", host="db", login="u", password="p@ss", port=5432, schema="ledger"
    )
    assert url_of_connection(postgres) == "postgresql+psycopg2://u:p%40ss@db:5432/ledger"
    sqlite = Connection(conn_id="l", conn_type="sqlite", host="/tmp/x.sqlite")
    assert url_of_connection(sqlite) == "sqlite:////tmp/x.sqlite"
    explicit = Connection(conn_id="l", conn_type="generic", extra='{"sqlalchemy_url": "sqlite:///y"}')
    assert url_of_connection(explicit) == "sqlite:///y"
    with pytest.raises(InvalidSettingError, match="of type 'http'"):
        url_of_connection(Connection(conn_id="l", conn_type="http", host="x"))


def test_the_configured_ledger_follows_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "mine.sqlite"
    monkeypatch.setenv("AIRFLOW__OPENROUTER__LEDGER_PATH", str(path))
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    ledger = configured_ledger()
    assert ledger.shared
    ledger.ensure_schema()
    assert path.exists()
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    with pytest.raises(InvalidSettingError, match="ledger_conn_id"):
        configured_ledger().check_shared()
    monkeypatch.setenv("AIRFLOW__OPENROUTER__LEDGER_CONN_ID", "orvideo_ledger")
    monkeypatch.setenv("AIRFLOW_CONN_ORVIDEO_LEDGER", f"sqlite://{tmp_path / 'shared.sqlite'}")
    shared = configured_ledger()
    assert shared.shared
    shared.check_shared()


def test_day_seconds_is_a_day() -> None:
    assert DAY_SECONDS == 24 * 3600


def test_a_report_does_not_wait_for_the_write_lock(ledger: Ledger) -> None:
    """The pages read the ledger while tasks reserve: a read never takes (or waits for) SQLite's
    write lock, which every reservation needs."""
    ledger.reserve(entry(), [], now=NOON)
    read: list[object] = []
    with ledger.engine.begin():  # a reservation in progress holds the write lock
        reader = threading.Thread(target=lambda: read.append(ledger.spend(since_day=DAY, until_day=DAY)))
        reader.start()
        reader.join(timeout=10)
        assert read == [[]], "the read waited for the write lock"
