"""A pool that counts deferred tasks caps the video jobs in flight (issue 25, item 6).

A deferred video task holds no worker slot, so ordinary pools and ``max_active_tis_per_dag``
limit only the seconds of submit and download, not how many jobs render (and bill) at once. A pool
with ``include_deferred`` does: the "Spend and budgets" recipe (docs/spend-and-budgets.md), held on a real stack
(api-server, scheduler, dag-processor, triggerer; SQLite, LocalExecutor). The same mapped DAG
without the pool shows what it prevents.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from orvideo_emulator import EmulatorServer

from tests.conftest import EMULATOR_API_KEY
from tests.system.conftest import StackFactory
from tests.system.stack import AirflowStack

pytestmark = pytest.mark.system

PROMPTS = 6
SLOTS = 2

DAG = """
from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

for dag_id, pool in (("orvideo_pooled", "openrouter_videos"), ("orvideo_unpooled", "default_pool")):
    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        OpenRouterVideoOperator.partial(
            task_id="render",
            model="google/veo-3.1",
            duration=4,
            output_path=os.environ["ORVIDEO_OUTPUT_DIR"] + "/" + dag_id + "-{{ ti.map_index }}.mp4",
            poll_interval=0.5,
            pool=pool,
        ).expand(prompt=[f"A paper boat on a river, take {n}" for n in range(PROMPTS)])
""".replace("PROMPTS", str(PROMPTS))


@pytest.fixture(scope="module")
def stack(
    module_airflow_stack_factory: StackFactory,
    emulator_server: EmulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AirflowStack:
    connection = {"conn_type": "openrouter", "host": emulator_server.base_url, "password": EMULATOR_API_KEY}
    stack = module_airflow_stack_factory(
        dags={"pooled.py": DAG},
        env={
            "AIRFLOW_CONN_OPENROUTER_DEFAULT": json.dumps(connection),
            "ORVIDEO_OUTPUT_DIR": str(tmp_path_factory.mktemp("videos")),
        },
        name="pool-in-flight",
    )
    body = {
        "name": "openrouter_videos",
        "slots": SLOTS,
        "description": "jobs in flight",
        "include_deferred": True,
    }
    response = stack.api("POST", "/api/v2/pools", json=body)
    assert response.status_code in (200, 201), response.text
    stack.wait_for_dag("orvideo_pooled", timeout=60)
    stack.wait_for_dag("orvideo_unpooled", timeout=60)
    return stack


def most_jobs_in_flight(emulator: Any) -> int:
    """The most jobs at once between their submit and the end of their last download."""
    downloads: dict[str, float] = {}
    for request in emulator.control.requests("content"):
        job_id = request["path"].split("/videos/", 1)[1].split("/", 1)[0]
        downloads[job_id] = max(downloads.get(job_id, 0.0), request["time"])
    events: list[tuple[float, int]] = []
    for job in emulator.control.jobs():
        events += [(job["created_at"], 1), (downloads[job["id"]], -1)]
    in_flight = most = 0
    for _, step in sorted(events):  # at a tie the end (-1) sorts first
        in_flight += step
        most = max(most, in_flight)
    return most


@pytest.mark.parametrize(("dag_id", "bound"), [("orvideo_pooled", SLOTS), ("orvideo_unpooled", PROMPTS)])
def test_a_pool_counting_deferred_tasks_caps_the_jobs_in_flight(
    stack: AirflowStack, emulator: Any, dag_id: str, bound: int
) -> None:
    emulator.control.set_job_defaults(pending_seconds=2, in_progress_seconds=2)
    run_id = stack.trigger(dag_id)
    state = stack.wait_for_run_state(dag_id, run_id, {"success", "failed"}, timeout=240)
    assert state == "success", stack.all_log_tails()
    assert emulator.control.count("submit", "POST") == PROMPTS
    most = most_jobs_in_flight(emulator)
    if dag_id == "orvideo_pooled":
        assert most <= SLOTS, most
    else:  # what the pool prevents: deferred tasks hold no slot of an ordinary pool
        assert most > SLOTS, most
    assert most <= bound
