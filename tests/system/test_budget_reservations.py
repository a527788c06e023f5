"""A spend budget holds on a real stack: 20 mapped renders, a budget for exactly 5 (issue 25, item 3).

The stack is the system suite's (api-server, scheduler, dag-processor, triggerer; SQLite,
LocalExecutor with 4 task slots), so the spend ledger is its default, a SQLite file in
``AIRFLOW_HOME`` that every task process on the machine shares. The connection carries the budget
(extra ``budget_usd``: $10.00 per UTC day); each video is ``openai/sora-2-pro`` at 1080p for 4 s,
which the provider estimates at exactly $2.00 (``per-video-second-1080p`` $0.50 x 4, not an upper
bound) and the emulator bills the same, so the budget holds exactly 5 videos, whichever tasks
reserve first. Task processes race for it four at a time, and the 5 that fit hold it while they
are deferred.

Checked: exactly 5 ``POST /videos`` reach the emulator; 5 task instances succeed and 15 fail on
their first try (``SpendBudgetExceededError`` is an ``AirflowFailException``: no retry), each
failed try's log naming the error and the budget; the ledger holds 5 created jobs, completed and
billed $2.00 each, for exactly the task instances that succeeded, and nothing else.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from orvideo_emulator import EmulatorServer

from airflow_provider_orvideo._internal.ledger import Ledger, utc_day
from tests.conftest import EMULATOR_API_KEY
from tests.system.conftest import StackFactory
from tests.system.stack import AirflowStack, _q

pytestmark = pytest.mark.system

DAG_ID = "orvideo_budgeted"
TASKS = 20
VIDEOS = 5
ESTIMATE_USD = 2.0  # openai/sora-2-pro, 1080p, 4 s: per-video-second-1080p $0.50 x 4

DAG = f"""
from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    OpenRouterVideoOperator.partial(
        task_id="render",
        model="openai/sora-2-pro",
        resolution="1080p",
        duration=4,
        output_path=os.environ["ORVIDEO_OUTPUT_DIR"] + "/clip-{{{{ ti.map_index }}}}.mp4",
        poll_interval=0.5,
        initial_poll_delays=(0.5,),
    ).expand(prompt=[f"A tin robot watering a window box, take {{n}}" for n in range({TASKS})])
"""


@pytest.fixture(scope="module")
def stack(
    module_airflow_stack_factory: StackFactory,
    emulator_server: EmulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AirflowStack:
    connection = {
        "conn_type": "openrouter",
        "host": emulator_server.base_url,
        "password": EMULATOR_API_KEY,
        "extra": {"budget_usd": VIDEOS * ESTIMATE_USD},
    }
    stack = module_airflow_stack_factory(
        dags={"budgeted.py": DAG},
        env={
            "AIRFLOW_CONN_OPENROUTER_DEFAULT": json.dumps(connection),
            "ORVIDEO_OUTPUT_DIR": str(tmp_path_factory.mktemp("videos")),
        },
        name="budget-reservations",
    )
    stack.wait_for_dag(DAG_ID, timeout=60)
    return stack


def task_instances(stack: AirflowStack, run_id: str) -> list[dict[str, Any]]:
    """Every mapped task instance of the run, by map index."""
    response = stack.api(
        "GET", f"/api/v2/dags/{_q(DAG_ID)}/dagRuns/{_q(run_id)}/taskInstances", params={"limit": 100}
    )
    assert response.status_code == 200, response.text
    return sorted(response.json()["task_instances"], key=lambda ti: ti["map_index"])


def test_twenty_mapped_renders_under_a_budget_for_five_post_five(stack: AirflowStack, emulator: Any) -> None:
    emulator.control.set_job_defaults(pending_seconds=0.2, in_progress_seconds=0.3)
    started = time.time()
    run_id = stack.trigger(DAG_ID)
    state = stack.wait_for_run_state(DAG_ID, run_id, {"success", "failed"}, timeout=240)
    assert state == "failed", stack.all_log_tails()  # 15 task instances refused

    assert emulator.control.count("submit", "POST") == VIDEOS
    assert len(emulator.control.jobs()) == VIDEOS
    tis = task_instances(stack, run_id)
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
            / f"dag_id={DAG_ID}"
            / f"run_id={run_id}"
            / "task_id=render"
            / f"map_index={map_index}"
            / "attempt=1.log"
        ).read_text(encoding="utf-8")
        assert "SpendBudgetExceededError" in log, log[-3000:]
        assert "Spend budget connection openrouter_default ($10.00 per UTC day) cannot hold this video" in log

    ledger = Ledger.at(f"sqlite:///{stack.airflow_home / 'orvideo_ledger.sqlite'}")
    days = utc_day(started), utc_day(time.time())
    jobs = ledger.jobs(since_day=days[0], until_day=days[1])
    assert sorted(job["map_index"] for job in jobs) == sorted(by_state["success"])
    assert {job["job_id"] for job in jobs} == {job["id"] for job in emulator.control.jobs()}
    assert all(job["status"] == "completed" and job["cost_usd"] == ESTIMATE_USD for job in jobs), jobs
    assert all(job["estimate_usd"] == ESTIMATE_USD and job["dag_id"] == DAG_ID for job in jobs), jobs
    # Nothing else: no reservation left behind, none released (a refusal records nothing).
    [row] = ledger.spend(since_day=days[0], until_day=days[1])
    assert (row.jobs, row.spent_usd, row.pending_usd) == (VIDEOS, VIDEOS * ESTIMATE_USD, 0.0)
    with ledger.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM orvideo_ledger_entries").scalar() == VIDEOS
