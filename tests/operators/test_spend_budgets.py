"""Spend budgets across runs, refused before paying (issue 25, item 3), through the operator.

The operator against the real emulator (each task instance reserves its estimate in the ledger
before its POST), and a real ``dag.test()`` of a mapped task under a DAG budget. The same proof on
the real stacks (LocalExecutor + SQLite; Celery + PostgreSQL with two workers racing) is in
tests/system and tests/distributed.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo._internal.ledger import Ledger, configured_ledger
from airflow_provider_orvideo._internal.validation import VideoModel
from airflow_provider_orvideo.exceptions import (
    InvalidOperatorArgumentError,
    InvalidSettingError,
    SpendBudgetExceededError,
)
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.pricing import estimate_cost
from tests.adversarial.conftest import airflow_home, run_dag_file  # noqa: F401 - a fixture
from tests.helpers import RecordingTaskInstance, TaskDeferred, context_with, plain_text
from tests.operators.test_openrouter_video import make_operator

MODEL = "google/veo-3.1"


def one_video_usd() -> float:
    """The estimate of one 4-second video of ``MODEL`` at 720p without audio (exact, not a bound)."""
    model: VideoModel = OpenRouterVideoHook().list_models()[MODEL]
    estimate = estimate_cost(model, duration=4, resolution="720p", generate_audio=False)
    assert estimate.usd is not None
    assert not estimate.upper_bound
    return estimate.usd


def render(tmp_path: Path, map_index: int, **kwargs: Any) -> Any:
    operator = make_operator(
        tmp_path,
        output_path=str(tmp_path / f"clip_{map_index}.mp4"),
        resolution="720p",
        generate_audio=False,
        **kwargs,
    )
    ti = RecordingTaskInstance(map_index=map_index)
    return operator, context_with(ti)


def test_a_dag_budget_holds_exactly_its_videos_and_refuses_the_next_before_paying(
    emulator: Any, tmp_path: Path
) -> None:
    price = one_video_usd()
    for index in range(2):
        operator, context = render(tmp_path, index, dag_budget_usd=2 * price)
        with pytest.raises(TaskDeferred):
            operator.execute(context)
    operator, context = render(tmp_path, 2, dag_budget_usd=2 * price)
    with pytest.raises(SpendBudgetExceededError) as refused:
        operator.execute(context)
    assert emulator.control.count("submit", "POST") == 2
    error = refused.value
    assert error.budget == "DAG pipeline"
    assert error.reserved_usd == pytest.approx(2 * price)
    assert error.estimate_usd == pytest.approx(price)
    assert "Nothing was submitted to OpenRouter" in str(error)
    assert context["ti"].xcom.get("job_id") is None
    jobs = configured_ledger().jobs(since_day="2000-01-01", until_day="2999-12-31")
    assert sorted(job["map_index"] for job in jobs) == [0, 1]


def test_the_connections_budget_holds_every_dag_using_it(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    price = one_video_usd()
    connection = {
        "conn_type": "openrouter",
        "host": emulator.base_url,
        "password": emulator.api_key,
        "extra": {"budget_usd": price * 1.5, "budget_window": "6h"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_OPENROUTER_DEFAULT", json.dumps(connection))
    operator, context = render(tmp_path, 0)
    with pytest.raises(TaskDeferred):
        operator.execute(context)
    operator, context = render(tmp_path, 1)
    context["ti"].dag_id = "another_dag"
    with pytest.raises(
        SpendBudgetExceededError, match=r"connection openrouter_default \(\$[\d.]+ per rolling 6h\)"
    ):
        operator.execute(context)
    assert emulator.control.count("submit", "POST") == 1


def test_a_configured_budget_spans_the_dags_it_names(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    price = one_video_usd()
    budgets = {"promo": {"usd": price, "dags": ["pipeline", "promo_b"]}}
    monkeypatch.setenv("AIRFLOW__OPENROUTER__BUDGETS", json.dumps(budgets))
    operator, context = render(tmp_path, 0)
    with pytest.raises(TaskDeferred):
        operator.execute(context)
    operator, context = render(tmp_path, 1)
    context["ti"].dag_id = "promo_b"
    with pytest.raises(SpendBudgetExceededError, match="budget promo"):
        operator.execute(context)
    operator, context = render(tmp_path, 2)
    context["ti"].dag_id = "unrelated"
    with pytest.raises(TaskDeferred):
        operator.execute(context)
    assert emulator.control.count("submit", "POST") == 2


def test_waiting_for_the_budget_defers_until_the_window_resets(emulator: Any, tmp_path: Path) -> None:
    price = one_video_usd()
    operator, context = render(tmp_path, 0, dag_budget_usd=price)
    with pytest.raises(TaskDeferred):
        operator.execute(context)
    operator, context = render(tmp_path, 1, dag_budget_usd=price, on_budget_exceeded="wait")
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    trigger = deferred.value.trigger
    assert type(trigger).__name__ == "DateTimeTrigger"
    today = datetime.now(timezone.utc).date()
    assert trigger.moment.date() > today
    assert (trigger.moment.hour, trigger.moment.minute) == (0, 0)
    assert deferred.value.method_name == "execute_after_budget_wait"
    assert emulator.control.count("submit", "POST") == 1


def test_budget_arguments_are_checked_at_parse(tmp_path: Path) -> None:
    with pytest.raises(InvalidOperatorArgumentError) as bad:
        make_operator(tmp_path, dag_budget_usd=-1, dag_budget_window="weekly", on_budget_exceeded="retry")
    message = str(bad.value)
    assert "dag_budget_usd=-1" in message
    assert "dag_budget_window='weekly'" in message
    assert "on_budget_exceeded='retry' must be one of 'fail', 'wait'" in message


def test_a_budget_on_a_per_machine_ledger_is_refused_where_tasks_run_on_several_machines(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    operator, context = render(tmp_path, 0, dag_budget_usd=5)
    with pytest.raises(InvalidSettingError, match="ledger_conn_id"):
        operator.execute(context)
    assert emulator.control.count("submit", "POST") == 0


DAG = textwrap.dedent(
    """
    import os
    from datetime import datetime

    from airflow.sdk import DAG

    from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

    with DAG("budgeted", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
        OpenRouterVideoOperator.partial(
            task_id="render",
            model="google/veo-3.1",
            duration=4,
            resolution="720p",
            generate_audio=False,
            output_path=os.environ["OUT"] + "/clip_{{ ti.map_index }}.mp4",
            dag_budget_usd=float(os.environ["BUDGET"]),
            poll_interval=0.2,
            initial_poll_delays=(0.2,),
            retries=0,
        ).expand(prompt=["a", "b", "c", "d", "e"])

    if __name__ == "__main__":
        dag.test()
    """
)


def test_a_mapped_task_under_a_dag_budget_pays_for_exactly_what_it_holds(
    airflow_home: Path,  # noqa: F811 - the fixture imported above
    emulator: Any,
    tmp_path: Path,
) -> None:
    """dag.test(): five map indexes, a budget for two videos: two POSTs, three refusals."""
    price = one_video_usd()
    emulator.control.jobs_take(0.2)
    run = run_dag_file(
        airflow_home, emulator, DAG, "budgeted", {"OUT": str(tmp_path), "BUDGET": str(2 * price)}
    )
    output = plain_text(run.stdout + run.stderr)
    assert emulator.control.count("submit", "POST") == 2, output[-6000:]
    assert output.count("SpendBudgetExceededError") >= 3, output[-6000:]
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        states = sorted(
            state for (state,) in db.execute("SELECT state FROM task_instance WHERE dag_id = 'budgeted'")
        )
    assert states == ["failed"] * 3 + ["success"] * 2
    ledger = Ledger.at(f"sqlite:///{airflow_home / 'orvideo_ledger.sqlite'}")
    booked = [
        job
        for job in ledger.jobs(since_day="2000-01-01", until_day="2999-12-31")
        if job["dag_id"] == "budgeted"
    ]
    assert len(booked) == 2
    assert all(job["status"] == "completed" and job["kept"] for job in booked)
