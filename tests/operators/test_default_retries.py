"""Retries that re-attach are the default for a video task (issue 23): a retry never pays again,
and without one an infrastructure failure at resume leaves the paid video undownloaded.

The scheduler decides whether a failed try is retried from the task as the DAG file defines it
(for a mapped task, from ``partial()``'s arguments), so each way of declaring a task is checked
as Airflow builds it: operator, ``partial().expand()``, ``@task.openrouter_video`` mapped or not,
with and without ``default_args``.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, TaskGroup, task

import airflow_provider_orvideo.decorators.openrouter_video  # noqa: F401 - registers task.openrouter_video
from airflow_provider_orvideo.defaults import DEFAULT_VIDEO_RETRIES, RETRIES_ENV_VAR
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
ARGS: dict[str, Any] = {"model": "google/veo-3.1", "output_path": "/tmp/orvideo/{{ ti.map_index }}.mp4"}


def _tasks(default_args: dict[str, Any] | None = None, **task_kwargs: Any) -> dict[str, Any]:
    with DAG("retries", schedule=None, start_date=START, default_args=default_args or {}) as dag:
        OpenRouterVideoOperator(task_id="plain", prompt="p", **ARGS, **task_kwargs)
        OpenRouterVideoOperator.partial(task_id="mapped", **ARGS, **task_kwargs).expand(prompt=["a", "b"])

        @task.openrouter_video(**ARGS, **task_kwargs)  # type: ignore[attr-defined, misc]
        def decorated(prompt: str) -> dict[str, str]:
            return {"prompt": prompt}

        decorated("p")
        decorated.override(task_id="decorated_mapped").expand(prompt=["a", "b"])
    return dag.task_dict


def test_a_dag_that_sets_no_retries_gets_three_for_every_kind_of_video_task() -> None:
    retries = {task_id: t.retries for task_id, t in _tasks().items()}
    assert retries == dict.fromkeys(
        ("plain", "mapped", "decorated", "decorated_mapped"), DEFAULT_VIDEO_RETRIES
    )


@pytest.mark.parametrize("retries", [0, 1, 5])
def test_retries_in_default_args_are_honoured(retries: int) -> None:
    tasks = _tasks(default_args={"retries": retries})
    assert {t.retries for t in tasks.values()} == {retries}


@pytest.mark.parametrize("retries", [0, 2])
def test_retries_on_the_task_are_honoured(retries: int) -> None:
    tasks = _tasks(retries=retries)
    assert {t.retries for t in tasks.values()} == {retries}


def test_retries_in_a_task_groups_default_args_are_honoured() -> None:
    with (
        DAG("group_retries", schedule=None, start_date=START),
        TaskGroup("videos", default_args={"retries": 0}),
    ):
        plain = OpenRouterVideoOperator(task_id="plain", prompt="p", **ARGS)

        @task.openrouter_video(**ARGS)  # type: ignore[attr-defined, misc]
        def decorated(prompt: str) -> dict[str, str]:
            return {"prompt": prompt}

        mapped = decorated.expand(prompt=["a"])
    assert plain.retries == 0
    assert mapped.operator.partial_kwargs["retries"] == 0


def test_a_deployment_default_set_by_environment_decides() -> None:
    """``AIRFLOW__CORE__DEFAULT_TASK_RETRIES`` is a deployment's explicit choice (as for
    ``default_deferrable``): video tasks then follow it like every other operator."""
    code = (
        "import pendulum\n"
        "from airflow.sdk import DAG\n"
        "from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator\n"
        "with DAG('d', schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz='UTC')):\n"
        "    t = OpenRouterVideoOperator(task_id='t', prompt='p', model='m', output_path='/tmp/x.mp4')\n"
        "print(t.retries)\n"
    )
    import os

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, RETRIES_ENV_VAR: "1"},
    )
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_the_module_default_is_read_once_at_import() -> None:
    module = importlib.import_module("airflow_provider_orvideo.operators.openrouter_video")
    assert module._DEFAULT_RETRIES == DEFAULT_VIDEO_RETRIES
