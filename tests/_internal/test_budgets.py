"""Budgets: where they come from, their windows, and the fit decision (pure)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_orvideo._internal.budgets import (
    DAY_SECONDS,
    Budget,
    BudgetUse,
    Window,
    budgets_from_config,
    connection_budget,
    dag_budget,
    parse_window,
    refusal,
)
from airflow_provider_orvideo.exceptions import (
    InvalidConnectionError,
    InvalidOperatorArgumentError,
    InvalidSettingError,
)

NOON = 1_796_472_000.0  # 2026-12-05T12:00:00Z


def test_utc_day_window_runs_midnight_to_midnight() -> None:
    window = parse_window("utc_day", field="w")
    assert window == Window()
    assert window.start(NOON) == NOON - 12 * 3600
    assert window.resets_at(NOON, oldest=NOON - 3600) == NOON + 12 * 3600


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6h", 21_600.0), ("90m", 5_400.0), ("2d", 172_800.0), (3600, 3600.0), ("60s", 60.0)],
)
def test_rolling_windows(text: object, seconds: float) -> None:
    window = parse_window(text, field="w")
    assert window.seconds == seconds
    assert window.start(NOON) == NOON - seconds
    assert window.resets_at(NOON, oldest=NOON - 10) == NOON - 10 + seconds
    assert parse_window(window.text, field="w") == window


@pytest.mark.parametrize("bad", ["daily", "0h", "59s", "367d", -5, float("inf"), True, "6 hours", {}])
def test_bad_windows_name_the_field_and_what_is_allowed(bad: object) -> None:
    with pytest.raises(InvalidOperatorArgumentError, match=r"dag_budget_window=.*rolling duration"):
        parse_window(bad, field="dag_budget_window")


def test_connection_budget_from_extras() -> None:
    assert connection_budget("c", {}) is None
    budget = connection_budget("c", {"budget_usd": "12.5", "budget_window": "6h"})
    assert budget is not None
    assert (budget.limit_usd, budget.window.seconds, budget.conn_ids, budget.dag_ids) == (
        12.5,
        21_600.0,
        frozenset({"c"}),
        None,
    )
    assert budget.applies_to(dag_id="any", conn_id="c")
    assert not budget.applies_to(dag_id="any", conn_id="other")
    for bad in (0, -1, "lots", float("nan"), True):
        with pytest.raises(InvalidConnectionError, match="connection 'c' extra budget_usd"):
            connection_budget("c", {"budget_usd": bad})


def test_dag_budget() -> None:
    assert dag_budget("d", None, "utc_day") is None
    budget = dag_budget("d", 5, "utc_day")
    assert budget is not None
    assert budget.describe() == "DAG d ($5.00 per UTC day)"
    assert budget.applies_to(dag_id="d", conn_id="x")
    assert not budget.applies_to(dag_id="e", conn_id="x")


def test_budgets_from_config() -> None:
    text = json.dumps(
        {
            "marketing": {"usd": 50, "dags": ["a", "b"]},
            "key": {"usd": 10, "window": "1h", "connections": ["c"]},
        }
    )
    marketing, key = budgets_from_config(text)
    assert marketing.name == "budget marketing"
    assert marketing.dag_ids == frozenset({"a", "b"})
    assert marketing.applies_to(dag_id="b", conn_id="any")
    assert not marketing.applies_to(dag_id="z", conn_id="c")
    assert key.window.seconds == 3600
    assert key.applies_to(dag_id="z", conn_id="c")
    assert budgets_from_config("") == ()
    assert budgets_from_config(None) == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "JSON object of named budgets"),
        ('{"x": {"usd": 1, "dag": ["a"]}}', "must be an object with usd"),
        ('{"x": {"usd": 0}}', "'x' usd"),
        ('{"x": {"usd": 1, "dags": "a"}}', "must be a list of names"),
        ('{"x": {"usd": 1, "window": "weekly"}}', "'x' window"),
    ],
)
def test_bad_config_is_an_invalid_setting(text: str, message: str) -> None:
    with pytest.raises(InvalidSettingError, match=message):
        budgets_from_config(text)


def _use(limit: float, spent: float, reserved: float) -> BudgetUse:
    return BudgetUse(Budget("b", limit, Window()), spent, reserved, NOON + DAY_SECONDS)


def test_refusal_picks_the_first_budget_that_cannot_hold_it() -> None:
    roomy, tight = _use(10, 1, 1), _use(1, 0.5, 0.2)
    assert refusal([roomy, tight], 0.3) is None  # exactly the last 30 cents fit
    assert refusal([roomy, tight], 0.31) is tight
    assert refusal([], 1e9) is None


@settings(deadline=None)
@given(
    limit=st.decimals(min_value="0.01", max_value="200", places=2),
    price=st.decimals(min_value="0.01", max_value="50", places=2),
)
def test_exactly_as_many_videos_as_the_limit_holds(limit: object, price: object) -> None:
    """Float sums of prices never refuse the last video that fits, nor let one more in."""
    from decimal import Decimal

    assert isinstance(limit, Decimal)
    assert isinstance(price, Decimal)
    fits = int(limit // price)
    held = 0.0
    accepted = 0
    for _ in range(fits + 2):
        if refusal([_use(float(limit), 0.0, held)], float(price)) is None:
            held += float(price)
            accepted += 1
    assert accepted == fits
