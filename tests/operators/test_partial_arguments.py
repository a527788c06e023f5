"""``OpenRouterVideoOperator.partial(...)`` checks its arguments at DAG parse (issue 26, item 6).

Before, a mapped ``partial(poll_interval=0)`` parsed fine and failed every mapped task instance
when it ran, although the operator reference (docs/operator.md) says arguments are checked at parse.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_orvideo.exceptions import InvalidOperatorArgumentError
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

BASE = {"task_id": "render", "model": "google/veo-3.1", "output_path": "/videos/{{ ti.map_index }}.mp4"}


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"poll_interval": 0}, "poll_interval=0"),
        ({"job_timeout": float("inf")}, "job_timeout=inf"),
        ({"orphan_policy": "retry"}, "orphan_policy='retry'"),
        ({"dag_budget_usd": 0}, "dag_budget_usd=0"),
        ({"deferrable": "yes"}, "deferrable='yes'"),
    ],
)
def test_a_bad_partial_argument_fails_the_parse(bad: dict[str, Any], named: str) -> None:
    with (
        DAG("mapped", start_date=datetime(2026, 1, 1), schedule=None),
        pytest.raises(
            InvalidOperatorArgumentError, match=r"OpenRouterVideoOperator\.partial \(task 'render'\)"
        ) as refused,
    ):
        OpenRouterVideoOperator.partial(**BASE, **bad).expand(prompt=["a", "b"])
    assert named in str(refused.value)
    assert "Nothing was submitted" in str(refused.value)


def test_good_partial_arguments_and_expanded_ones_parse() -> None:
    with DAG("mapped", start_date=datetime(2026, 1, 1), schedule=None) as dag:
        OpenRouterVideoOperator.partial(**BASE, poll_interval=5, dag_budget_usd=20).expand(prompt=["a", "b"])
        OpenRouterVideoOperator.partial(
            task_id="bare", model="m", output_path="/v/{{ ti.map_index }}.mp4"
        ).expand(prompt=["c"])
    assert sorted(dag.task_ids) == ["bare", "render"]
