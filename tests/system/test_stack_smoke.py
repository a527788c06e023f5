"""Smoke test of the real-stack harness with a built-in deferrable sensor.

The DAG defers on ``DateTimeSensorAsync`` (its ``DateTimeTrigger`` runs in the triggerer), then a
``PythonOperator`` returns a value that is read back over REST.
"""

from __future__ import annotations

import time

import pytest

from tests.system.conftest import StackFactory

pytestmark = pytest.mark.system

DAG_ID = "orvideo_stack_smoke"

# target_time is rendered on the worker right before execute(), so the sensor always defers,
# however late the worker gets to it. (TimeDeltaSensor counts from the run's run_after, and returns
# without deferring when the worker starts after the delta; ti.start_date is ~3 s before execute()
# because the task runner first imports and parses the DAG.) Keep the wait >= ~5 s: a trigger
# that fires within a second or two of the deferral can hit Airflow 3.3.2's stale-executor-event
# race (see stack.py, AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL).
SMOKE_DAG = f'''
from __future__ import annotations

import pendulum

from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import DAG


def produce(**context):
    conf = context["dag_run"].conf or {{}}
    return {{"answer": 42, "greeting": conf.get("greeting")}}


with DAG(
    dag_id="{DAG_ID}",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["system-test"],
):
    wait = DateTimeSensorAsync(
        task_id="wait",
        target_time=(
            "{{{{ (macros.datetime.utcnow() + macros.timedelta(seconds=dag_run.conf.get('wait_seconds', 5)))"
            ".isoformat() }}}}"
        ),
    )
    done = PythonOperator(task_id="produce", python_callable=produce)
    wait >> done
'''


def test_deferrable_sensor_round_trip(airflow_stack_factory: StackFactory) -> None:
    t0 = time.monotonic()
    stack = airflow_stack_factory(dags={"smoke_dag.py": SMOKE_DAG}, name="smoke")
    started = time.monotonic()

    stack.wait_for_dag(DAG_ID, timeout=60)
    parsed = time.monotonic()

    run_id = stack.trigger(DAG_ID, conf={"wait_seconds": 5, "greeting": "hello"})
    sensor_states = stack.wait_for_task_state(DAG_ID, run_id, "wait", {"success"}, timeout=90)
    assert "deferred" in sensor_states, sensor_states
    assert sensor_states[-1] == "success", sensor_states

    produce_states = stack.wait_for_task_state(DAG_ID, run_id, "produce", {"success"}, timeout=60)
    assert produce_states[-1] == "success"
    assert stack.wait_for_run_state(DAG_ID, run_id, {"success"}, timeout=30) == "success"
    done = time.monotonic()

    assert stack.xcom(DAG_ID, run_id, "produce") == {"answer": 42, "greeting": "hello"}

    print(
        f"\nsmoke timings: start {started - t0:.1f}s ({stack.timings}), "
        f"dag parsed +{parsed - started:.1f}s, trigger->success {done - parsed:.1f}s; "
        f"sensor states {sensor_states}; produce states {produce_states}"
    )
