"""Spend budgets on the distributed stack: the ledger in PostgreSQL, two Celery workers racing.

Issue 25, item 3. The stack is the suite's (``conftest.py``: CeleryExecutor, PostgreSQL, Redis,
two workers with two task slots each, two triggerers); every task books in the spend ledger in
the stack's PostgreSQL (database ``orvideo_ledger``, the Airflow connection ``orvideo_ledger``
named by ``[openrouter] ledger_conn_id``: ``celery_stack.py``).

- ``test_twenty_mapped_renders_on_two_workers_under_a_budget_for_five_post_five``: 20 mapped
  renders with ``dag_budget_usd`` for exactly 5 (``openai/sora-2-pro`` at 1080p for 4 s: estimated
  at exactly $2.00 and billed the same). Checked: both workers ran tasks, exactly 5 ``POST
  /videos``; 5 task instances succeed and 15 fail on their first try with
  ``SpendBudgetExceededError`` in their logs; the PostgreSQL ledger holds exactly the 5 jobs.
- Task processes straight on that PostgreSQL (the helpers of
  ``tests/_internal/test_ledger_processes.py``, which run them on SQLite), each on a database of
  its own: 20 processes racing on a new ledger for a budget of 5 (all creating its tables at
  once), then on a database whose default isolation is REPEATABLE READ (the ledger must not
  depend on the server's default); a task process killed (``kill -9``) after reserving and
  before its POST holds the budget until its lease (``budget_lease_seconds``, 2 s here) ends; one
  killed while holding the budget's lock row (``FOR UPDATE``) frees it at once.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from airflow_provider_orvideo._internal.ledger import Ledger, utc_day
from tests._internal.test_ledger_processes import (
    ESTIMATE_USD,
    assert_a_killed_reservation_holds_until_its_lease_ends,
    assert_a_reservation_killed_holding_the_lock_frees_it,
    race,
    rows,
)
from tests.distributed.conftest import DistributedEnv

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]

BUDGET_DAG = "orvideo_celery_budget"
DAG_IDS = (BUDGET_DAG,)
TASKS = 20
VIDEOS = 5

DAGS = {
    "celery_budget.py": f'''
from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

with DAG(
    dag_id="{BUDGET_DAG}",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    max_active_tasks=16,
):
    OpenRouterVideoOperator.partial(
        task_id="render",
        model="openai/sora-2-pro",
        resolution="1080p",
        duration=4,
        dag_budget_usd={VIDEOS * ESTIMATE_USD},
        output_path=os.environ["ORVIDEO_OUTPUT_DIR"]
        + "/{{{{ dag_run.run_after | ts_nodash }}}}/clip-{{{{ ti.map_index }}}}.mp4",
        poll_interval=1,
        initial_poll_delays=(1,),
    ).expand(prompt=[f"A tin robot watering a window box, take {{n}}" for n in range({TASKS})])
''',
}


def test_twenty_mapped_renders_on_two_workers_under_a_budget_for_five_post_five(
    distributed_env: DistributedEnv,
) -> None:
    env, stack, emulator = distributed_env, distributed_env.stack, distributed_env.emulator
    emulator.reset()
    emulator.set_job_defaults(pending_seconds=0.5, in_progress_seconds=1)
    started = time.time()
    run_id = stack.trigger(BUDGET_DAG)
    state = stack.wait_for_run_state(BUDGET_DAG, run_id, {"success", "failed"}, timeout=300)
    assert state == "failed", stack.all_log_tails()  # 15 task instances refused

    assert emulator.count("submit", "POST") == VIDEOS
    assert len(emulator.jobs()) == VIDEOS
    # Every task instance asked for the model list once before reserving, from either worker.
    askers = Counter(env.title_of(e) for e in emulator.requests("models"))
    assert set(askers) == {"worker-1", "worker-2"}, askers
    assert sum(askers.values()) == TASKS, askers
    tis = stack.task_instances(BUDGET_DAG, run_id)
    assert len(tis) == TASKS
    by_state: dict[str, list[int]] = {}
    for ti in tis:
        by_state.setdefault(ti["state"], []).append(ti["map_index"])
    assert sorted(by_state) == ["failed", "success"], by_state
    assert len(by_state["success"]) == VIDEOS, by_state
    assert all(ti["try_number"] == 1 for ti in tis), [(ti["map_index"], ti["try_number"]) for ti in tis]
    for map_index in by_state["failed"]:
        log = (
            stack.airflow_home
            / "logs"
            / f"dag_id={BUDGET_DAG}"
            / f"run_id={run_id}"
            / "task_id=render"
            / f"map_index={map_index}"
            / "attempt=1.log"
        ).read_text(encoding="utf-8")
        assert "SpendBudgetExceededError" in log, log[-3000:]
        assert f"Spend budget DAG {BUDGET_DAG} ($10.00 per UTC day) cannot hold this video" in log

    ledger = Ledger.at(stack.ledger_url)
    days = utc_day(started), utc_day(time.time())
    jobs = [job for job in ledger.jobs(since_day=days[0], until_day=days[1]) if job["dag_id"] == BUDGET_DAG]
    assert sorted(job["map_index"] for job in jobs) == sorted(by_state["success"])
    assert {job["job_id"] for job in jobs} == {job["id"] for job in emulator.jobs()}
    assert all(job["status"] == "completed" and job["cost_usd"] == ESTIMATE_USD for job in jobs), jobs
    # No other row of this DAG: a refusal records nothing.
    assert [r for r in rows(stack.ledger_url) if r["dag_id"] == BUDGET_DAG and r["job_id"] is None] == []
    env.figures.notes.append(
        f"Budgets: {TASKS} mapped renders, a DAG budget for {VIDEOS}: {emulator.count('submit', 'POST')} POSTs, "
        f"{len(by_state['failed'])} refused (model lists asked by {dict(askers)}), "
        f"run {time.time() - started:.1f} s"
    )


def test_task_processes_racing_on_postgresql_fit_exactly_the_budget(distributed_env: DistributedEnv) -> None:
    postgres = distributed_env.stack.postgres
    for database, settings in (
        ("ledger_race", {}),
        ("ledger_race_repeatable_read", {"default_transaction_isolation": "repeatable read"}),
    ):
        url = postgres.create_database(database, settings=settings)
        fitted = race(url, processes=TASKS, videos=VIDEOS)
        assert fitted.count(True) == VIDEOS, (database, fitted)
        booked = rows(url)
        assert sorted(r["map_index"] for r in booked) == [i for i, f in enumerate(fitted) if f], database
        assert sum(r["held_usd"] for r in booked) == VIDEOS * ESTIMATE_USD


def test_a_task_killed_before_its_post_holds_the_budget_until_its_lease_ends(
    distributed_env: DistributedEnv,
) -> None:
    url = distributed_env.stack.postgres.create_database("ledger_killed_before_post")
    assert_a_killed_reservation_holds_until_its_lease_ends(url, lease_seconds=2.0)


def test_a_task_killed_holding_the_budgets_lock_frees_it(distributed_env: DistributedEnv) -> None:
    url = distributed_env.stack.postgres.create_database("ledger_killed_holding_lock")
    Ledger.at(url).ensure_schema()
    seconds = assert_a_reservation_killed_holding_the_lock_frees_it(url)
    assert seconds < 5
    distributed_env.figures.notes.append(
        f"Budgets: a reservation killed holding the lock row: the next one got it {seconds * 1000:.0f} ms later"
    )
