"""What a submit holds against the spend budgets: which budgets apply, and how much to hold.

Read before the POST on the worker (never at DAG parse: a budget check adds no call to the
dag-processor's work). The ledger (``_internal/ledger.py``) does the holding.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_orvideo._internal.budgets import Budget, budgets_from_config, dag_budget

if TYPE_CHECKING:
    from airflow_provider_orvideo._internal.lifecycle import Spend, VideoJobLifecycle
    from airflow_provider_orvideo.pricing import CostEstimate

__all__ = ["applying_budgets", "plan_spend"]


def applying_budgets(
    *,
    dag_id: str,
    conn_id: str,
    connection_budget: Budget | None,
    dag_budget_usd: float | None,
    dag_budget_window: str,
    configured: str | None,
) -> tuple[Budget, ...]:
    """The budgets that hold a job of ``dag_id`` paid through ``conn_id``: the connection's, the
    operator's ``dag_budget_usd`` and those of ``[openrouter] budgets`` (``configured``) naming it."""
    budgets = (
        connection_budget,
        dag_budget(dag_id, dag_budget_usd, dag_budget_window),
        *budgets_from_config(configured),
    )
    return tuple(b for b in budgets if b is not None and b.applies_to(dag_id=dag_id, conn_id=conn_id))


def plan_spend(
    lifecycle: VideoJobLifecycle,
    model: str,
    estimate: CostEstimate,
    *,
    connection_budget: Budget | None,
    dag_budget: tuple[float | None, str],
    max_cost_usd: float | None,
    log: logging.Logger | Any,
) -> Spend:
    """The amount held against the budgets that apply: the estimate, else ``max_cost_usd`` (the
    most the task lets a video cost), else nothing until the job is priced (said once). Budgets
    on a ledger that is not shared by every machine running tasks are refused."""
    from airflow.configuration import conf

    from airflow_provider_orvideo._internal.lifecycle import Spend

    ti = lifecycle.identity
    budgets = applying_budgets(
        dag_id=ti.dag_id,
        conn_id=lifecycle.conn_id,
        connection_budget=connection_budget,
        dag_budget_usd=dag_budget[0],
        dag_budget_window=dag_budget[1],
        configured=conf.get("openrouter", "budgets", fallback=""),
    )
    held = estimate.usd if estimate.usd is not None else max_cost_usd
    if budgets:
        if lifecycle.ledger is not None:
            lifecycle.ledger.check_shared()
        if held is None:
            log.warning(
                "No estimate for this video (%s): the spend budgets %s hold it only once OpenRouter prices "
                "it. Set max_cost_usd to hold that much, or strict_cost_check=True to refuse.",
                estimate.unknown_reason,
                ", ".join(b.name for b in budgets),
            )
    lease = conf.getfloat("openrouter", "budget_lease_seconds", fallback=900.0)
    return Spend(model, held, budgets, lease)
