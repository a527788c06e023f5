"""Spend budgets that span runs: what they are, which apply to a task, and whether a reservation fits.

Pure decisions (no clock, no database): the ledger (``_internal/ledger.py``) sums what each
budget already holds inside one transaction and asks :func:`refusal` whether this task's estimate
still fits; the operator reads the budgets that apply from three places:

* the connection's extra, ``budget_usd`` (+ ``budget_window``): every job paid with that key;
* the operator's ``dag_budget_usd`` (+ ``dag_budget_window``): every job of this DAG;
* ``[openrouter] budgets``, a JSON object of named budgets, each naming the DAGs and/or
  connections it covers: one budget across several DAGs (a team's or a product's).

A window is ``utc_day`` (midnight to midnight UTC, as OpenRouter's own daily limits) or a rolling
duration (``"6h"``, ``"90m"``, ``"2d"``, or seconds): the budget then holds what was reserved in
the last that-long.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_orvideo.exceptions import (
    InvalidConnectionError,
    InvalidOperatorArgumentError,
    InvalidSettingError,
)

__all__ = [
    "UTC_DAY",
    "Budget",
    "BudgetUse",
    "Window",
    "budgets_from_config",
    "connection_budget",
    "dag_budget",
    "parse_window",
    "refusal",
]

DAY_SECONDS = 86_400.0
UTC_DAY = "utc_day"
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[smhd])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY_SECONDS}


@dataclass(frozen=True)
class Window:
    """``seconds`` None: the UTC day; otherwise a rolling window of that many seconds."""

    seconds: float | None = None

    @property
    def text(self) -> str:
        if self.seconds is None:
            return UTC_DAY
        for unit in ("d", "h", "m"):
            if self.seconds % _UNIT_SECONDS[unit] == 0:
                return f"{self.seconds / _UNIT_SECONDS[unit]:g}{unit}"
        return f"{self.seconds:g}s"

    def start(self, now: float) -> float:
        """The earliest reservation time the window holds at ``now``."""
        if self.seconds is None:
            return math.floor(now / DAY_SECONDS) * DAY_SECONDS
        return now - self.seconds

    def resets_at(self, now: float, oldest: float | None) -> float:
        """When room frees up: the next UTC midnight, or when the oldest entry held leaves a
        rolling window (``now`` when nothing is held)."""
        if self.seconds is None:
            return self.start(now) + DAY_SECONDS
        return now if oldest is None else oldest + self.seconds


def parse_window(value: Any, *, field: str, error: type[Exception] = InvalidOperatorArgumentError) -> Window:
    """``"utc_day"`` (or None), a duration such as ``"6h"``, ``"90m"``, ``"2d"``, or seconds."""
    if value is None or value == UTC_DAY:
        return Window()
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip().lower())):
        seconds = float(match["number"]) * _UNIT_SECONDS[match["unit"]]
    if seconds is None or not math.isfinite(seconds) or not 60 <= seconds <= 366 * DAY_SECONDS:
        raise error(
            f"{field}={value!r} is not a budget window: use 'utc_day' (midnight to midnight UTC) or a "
            "rolling duration from 1 minute to 366 days, such as '6h', '90m', '2d' or a number of seconds."
        )
    return Window(seconds)


def _limit(value: Any, *, field: str, error: type[Exception]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise error(f"{field}={value!r} is not an amount in USD: give a number of dollars greater than 0.")
    try:
        usd = float(value)
    except ValueError:
        usd = math.nan
    if not math.isfinite(usd) or usd <= 0:
        raise error(f"{field}={value!r} is not an amount in USD: give a number of dollars greater than 0.")
    return usd


@dataclass(frozen=True)
class Budget:
    """A spend limit over a window, for the jobs of some DAGs and/or connections (None: any)."""

    name: str
    limit_usd: float
    window: Window
    dag_ids: frozenset[str] | None = None
    conn_ids: frozenset[str] | None = None

    @property
    def key(self) -> str:
        """The budget's lock row in the ledger (reservations against one budget take turns)."""
        return self.name[:250]

    def applies_to(self, *, dag_id: str, conn_id: str) -> bool:
        return (self.dag_ids is None or dag_id in self.dag_ids) and (
            self.conn_ids is None or conn_id in self.conn_ids
        )

    def describe(self) -> str:
        window = "per UTC day" if self.window.seconds is None else f"per rolling {self.window.text}"
        return f"{self.name} (${self.limit_usd:,.2f} {window})"


def connection_budget(conn_id: str, extra: Mapping[str, Any]) -> Budget | None:
    """The budget in the connection's extra (``budget_usd``, ``budget_window``), if any."""
    if extra.get("budget_usd") in (None, ""):
        return None
    field = f"connection {conn_id!r} extra budget_usd"
    limit = _limit(extra["budget_usd"], field=field, error=InvalidConnectionError)
    window = parse_window(
        extra.get("budget_window"),
        field=f"connection {conn_id!r} extra budget_window",
        error=InvalidConnectionError,
    )
    return Budget(f"connection {conn_id}", limit, window, conn_ids=frozenset({conn_id}))


def dag_budget(dag_id: str, limit_usd: Any, window: Any) -> Budget | None:
    """The operator's ``dag_budget_usd`` budget for every job of ``dag_id``, if set."""
    if limit_usd is None:
        return None
    limit = _limit(limit_usd, field="dag_budget_usd", error=InvalidOperatorArgumentError)
    return Budget(
        f"DAG {dag_id}", limit, parse_window(window, field="dag_budget_window"), dag_ids=frozenset({dag_id})
    )


def _names(value: Any, *, field: str) -> frozenset[str] | None:
    if value is None:
        return None
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or not all(isinstance(v, str) for v in value)
    ):
        raise InvalidSettingError(f"{field}={value!r} must be a list of names.")
    return frozenset(value)


def budgets_from_config(text: str | None) -> tuple[Budget, ...]:
    """``[openrouter] budgets``: ``{"<name>": {"usd": 50, "window": "utc_day", "dags": [...],
    "connections": [...]}}`` (``dags``/``connections`` left out: any)."""
    if not text or not text.strip():
        return ()
    try:
        parsed = json.loads(text)
    except ValueError as error:
        raise InvalidSettingError(f"[openrouter] budgets is not valid JSON ({error}).") from None
    if not isinstance(parsed, dict):
        raise InvalidSettingError("[openrouter] budgets must be a JSON object of named budgets.")
    budgets = []
    for name, spec in parsed.items():
        field = f"[openrouter] budgets {name!r}"
        if not isinstance(spec, dict) or set(spec) - {"usd", "window", "dags", "connections"}:
            raise InvalidSettingError(
                f"{field} must be an object with usd, and optionally window, dags and connections; got {spec!r}."
            )
        budgets.append(
            Budget(
                f"budget {name}",
                _limit(spec.get("usd"), field=f"{field} usd", error=InvalidSettingError),
                parse_window(spec.get("window"), field=f"{field} window", error=InvalidSettingError),
                dag_ids=_names(spec.get("dags"), field=f"{field} dags"),
                conn_ids=_names(spec.get("connections"), field=f"{field} connections"),
            )
        )
    return tuple(budgets)


@dataclass(frozen=True)
class BudgetUse:
    """What one budget holds at reservation time: ``spent_usd`` (jobs ended and priced),
    ``reserved_usd`` (estimates of jobs not yet priced and live reservations), and when room frees."""

    budget: Budget
    spent_usd: float
    reserved_usd: float
    resets_at: float

    @property
    def held_usd(self) -> float:
        return self.spent_usd + self.reserved_usd

    def fits(self, amount_usd: float) -> bool:
        # A cent's thousandth of slack: sums of float prices must not refuse the exact last video.
        return self.held_usd + amount_usd <= self.budget.limit_usd + 1e-6


def refusal(uses: Iterable[BudgetUse], amount_usd: float) -> BudgetUse | None:
    """The first budget the reservation of ``amount_usd`` would overrun, or None: it fits all."""
    return next((use for use in uses if not use.fits(amount_usd)), None)
