"""The operator on a real Airflow stack: api-server, scheduler, dag-processor, triggerer (SQLite,
LocalExecutor), against the emulator running in this test process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.system.conftest import StackFactory

pytestmark = pytest.mark.system

DAG_ID = "orvideo_stack_render"

DAG_SOURCE = f'''
from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

with DAG(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    OpenRouterVideoOperator(
        task_id="render",
        prompt="A red kite over a green valley, {{{{ run_id }}}}",
        model="google/veo-3.1",
        duration=4,
        output_path=os.environ["ORVIDEO_OUTPUT_DIR"] + "/{{{{ dag_run.run_after | ts_nodash }}}}.mp4",
        poll_interval=1,
    )
'''


def test_task_defers_then_succeeds_with_the_video_on_disk(
    airflow_stack_factory: StackFactory, emulator: Any, tmp_path: Path
) -> None:
    # Long enough that the task is seen deferred while the job renders (and clear of the
    # quick-trigger race documented in stack.py).
    emulator.control.set_job_defaults(pending_seconds=3, in_progress_seconds=5)
    videos = tmp_path / "videos"
    connection = {"conn_type": "openrouter", "host": emulator.base_url, "password": emulator.api_key}
    stack = airflow_stack_factory(
        dags={"render_dag.py": DAG_SOURCE},
        env={"AIRFLOW_CONN_OPENROUTER_DEFAULT": json.dumps(connection), "ORVIDEO_OUTPUT_DIR": str(videos)},
        name="render",
    )
    stack.wait_for_dag(DAG_ID, timeout=60)
    run_id = stack.trigger(DAG_ID)

    states = stack.wait_for_task_state(DAG_ID, run_id, "render", {"success", "failed"}, timeout=120)
    assert states[-1] == "success", states
    assert "queued" in states, states
    assert "deferred" in states, states
    assert states.index("queued") < states.index("deferred") < len(states) - 1, states

    path = stack.xcom(DAG_ID, run_id, "render")
    video = Path(path)
    assert video.parent == videos
    assert video.read_bytes()[4:8] == b"ftyp"
    assert not list(videos.glob(".*.part"))
    job_id = stack.xcom(DAG_ID, run_id, "render", key="job_id")
    assert [job["id"] for job in emulator.control.jobs()] == [job_id]
    assert emulator.control.count("submit", "POST") == 1
    assert stack.xcom(DAG_ID, run_id, "render", key="usage")["cost"] is not None

    # The key never lands in the Airflow home: metadata DB (trigger rows, XCom, rendered
    # fields, next_kwargs) or any log. (The environment variable itself is outside the home.)
    stack.stop()
    leaks = [p for p in stack.home.rglob("*") if p.is_file() and emulator.api_key.encode() in p.read_bytes()]
    assert leaks == []
