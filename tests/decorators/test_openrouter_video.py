"""``@task.openrouter_video``: registration, and bad function results failing before any request.

The str and dict cases render real videos in ``tests/test_example_dags.py`` (the example DAG).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo.decorators.openrouter_video import (
    RETURNABLE_FIELDS,
    openrouter_video_task,
    returned_request_fields,
)
from airflow_provider_orvideo.exceptions import InvalidVideoRequestError
from tests.helpers import plain_text

BAD_RESULTS_DAG = textwrap.dedent(
    """
    import pendulum
    from airflow.sdk import DAG, task

    with DAG(dag_id="bad_results", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:

        @task.openrouter_video(model="google/veo-3.1", output_path="/nonexistent/never.mp4")
        def misspelt():
            return {"prompt": "a red kite over dunes", "durations": 4}

        @task.openrouter_video(output_path="/nonexistent/never.mp4")
        def no_model():
            return "a red kite over dunes"

        misspelt()
        no_model()

    if __name__ == "__main__":
        dag.test()
    """
)


def test_task_openrouter_video_resolves_through_provider_info() -> None:
    from airflow.sdk import task

    try:  # Airflow 3.2+: the task runtime's view of the providers
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as Providers
    except ImportError:  # 3.0, 3.1
        from airflow.providers_manager import ProvidersManager as Providers  # type: ignore[assignment, unused-ignore]

    info = Providers().providers["airflow-provider-orvideo"].data
    assert info["task-decorators"] == [
        {
            "name": "openrouter_video",
            "class-name": "airflow_provider_orvideo.decorators.openrouter_video.openrouter_video_task",
        }
    ]
    assert task.openrouter_video is openrouter_video_task


def test_a_str_is_the_prompt_and_a_dict_is_request_fields() -> None:
    assert returned_request_fields("a kite", "f") == {"prompt": "a kite"}
    assert returned_request_fields({"prompt": "a kite", "seed": 7}, "f") == {"prompt": "a kite", "seed": 7}


def test_other_results_are_refused() -> None:
    with pytest.raises(
        InvalidVideoRequestError, match=r"'f' returned list; it must return the prompt \(str\)"
    ):
        returned_request_fields(["a kite"], "f")


def test_returnable_fields_are_the_request_fields_and_output_path() -> None:
    assert {"prompt", "model", "output_path", "duration", "frame_images", "previous_job_id"} <= set(
        RETURNABLE_FIELDS
    )
    assert "openrouter_conn_id" not in RETURNABLE_FIELDS  # connection and polling stay decorator arguments


def test_bad_results_fail_with_a_clear_error_before_any_request(emulator: Any, tmp_path: Path) -> None:
    """A real dag.test() run: neither task reaches OpenRouter, not even for the model list."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "bad_results.py").write_text(BAD_RESULTS_DAG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "OPENROUTER_API_KEY"}
    connection = {"conn_type": "openrouter", "host": emulator.base_url, "password": emulator.api_key}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW_CONN_OPENROUTER_DEFAULT": json.dumps(connection),
        }
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=120)
    run = subprocess.run(
        [sys.executable, str(dags / "bad_results.py")], env=env, capture_output=True, text=True, timeout=300
    )
    output = run.stdout + run.stderr
    assert "state=failed" in output, output[-6000:]
    text = plain_text(output)
    assert (
        "The @task.openrouter_video function 'misspelt' returned the unknown key 'durations'. "
        "Did you mean 'duration'? Allowed keys: " + ", ".join(RETURNABLE_FIELDS) + ". "
        "Nothing was submitted to OpenRouter and nothing was billed."
    ) in text
    assert (
        "model missing: pass model=... to @task.openrouter_video(...) or return it from 'no_model'. "
        "Nothing was submitted to OpenRouter and nothing was billed."
    ) in text
    assert emulator.control.requests() == []
