"""The key's budgets and ``GET /api/v1/key``, computed from the clock and the key's charges at
read time (like a job's status: nothing to keep in step, whichever process asks).

Layers. OpenRouter checks a key's budgets in this order and refuses a paid request on the first
one that is spent (``remaining_usd <= 0``), with a 403 naming it in ``error.metadata``:

- ``guardrail`` budgets, one per scope: ``workspace_default_member``, ``workspace_default_key``,
  ``member``, ``api_key`` (``limit_source: openrouter_guardrail_budget``);
- the ``workspace`` budget (scope ``workspace``, ``openrouter_workspace_budget``);
- the key's own limit, ``key_limit`` (scope ``key_limit``, ``openrouter_key_limit``).

Spend is counted when a job is billed, which is when it completes: OpenRouter charges a request
when it finishes (``billing.Charge``). A submit is never counted, so any number of submits pass a
budget with one cent left, and the 403 comes once completed jobs have used it up; capping what is
still rendering is the in-flight budget's job, a 402 scripted as a fault
(``EmulatorControl.in_flight_budget_exhausted``). A budget's spend in its current window is the
``spend_usd`` it was set with (spent before, elsewhere: it lasts as long as the window it was set
in) plus every charge since it was set, inside the window.

Windows are UTC calendar ones (``daily``, ``weekly`` from Monday, ``monthly``); a budget set with
``resets_at`` has its first window end then (a test's "resets in two seconds"), the next ones
follow the calendar. A budget without ``reset_interval`` is a lifetime one and never resets.

Only a submit is refused: polls and downloads cost nothing, so a spent budget leaves them be.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from orvideo_emulator.billing import Charge
from orvideo_emulator.errors import ApiError

SCOPES_BY_LAYER: dict[str, tuple[str, ...]] = {
    "guardrail": ("workspace_default_member", "workspace_default_key", "member", "api_key"),
    "workspace": ("workspace",),
    "key_limit": ("key_limit",),
}
"""Each layer's scopes; together, in enforcement order."""
ENFORCEMENT_ORDER: tuple[str, ...] = tuple(scope for scopes in SCOPES_BY_LAYER.values() for scope in scopes)
LIMIT_SOURCES = {
    "guardrail": "openrouter_guardrail_budget",
    "workspace": "openrouter_workspace_budget",
    "key_limit": "openrouter_key_limit",
}
_REFUSAL_WORDS = {"guardrail": "Guardrail", "workspace": "Workspace", "key_limit": "API key"}
DEFAULT_SCOPE = {"guardrail": "api_key", "workspace": "workspace", "key_limit": "key_limit"}
RESET_INTERVALS = ("daily", "weekly", "monthly")
KEY_LABEL = "orvideo-emulator"
_BUDGET_FIELDS = frozenset({"layer", "scope", "limit_usd", "spend_usd", "reset_interval", "resets_at"})


def calendar_window(interval: str, at: float) -> tuple[float, float]:
    """``(start, end)`` of the UTC ``daily``/``weekly``/``monthly`` window holding ``at``:
    ``start <= at < end``, midnights, weeks from Monday, months from the 1st."""
    day = datetime.fromtimestamp(at, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "daily":
        start, end = day, day + timedelta(days=1)
    elif interval == "weekly":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    return start.timestamp(), end.timestamp()


def iso_time(at: float | None) -> str | None:
    """``2026-12-06T00:00:00.000Z``, the form OpenRouter writes instants in; None stays None."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def usd_sum(amounts: Iterable[float]) -> float:
    """A sum of dollar amounts as written (0.1 + 0.2 is 0.3), not as binary floats add up."""
    return float(sum((Decimal(str(usd)) for usd in amounts), Decimal(0)))


def _usd_difference(minuend: float, subtrahend: float) -> float:
    return float(Decimal(str(minuend)) - Decimal(str(subtrahend)))


@dataclass(frozen=True)
class Budget:
    """One budget as configured: ``spend_usd`` was spent before ``set_at``; the first window ends
    at ``first_reset`` (None: a lifetime budget)."""

    layer: str
    scope: str
    limit_usd: float
    spend_usd: float
    reset_interval: str | None
    set_at: float
    first_reset: float | None

    def window(self, now: float) -> tuple[float, float | None]:
        """``(start, end)`` of the window counting at ``now``; end None for a lifetime budget."""
        if self.reset_interval is None or self.first_reset is None:
            return self.set_at, None
        if now < self.first_reset:
            return self.set_at, self.first_reset
        start, end = calendar_window(self.reset_interval, now)
        return max(start, self.first_reset), end

    def state(self, charges: Sequence[Charge], now: float) -> BudgetState:
        """The budget at ``now``, given every charge of the key so far."""
        start, end = self.window(now)
        carried = [self.spend_usd] if start == self.set_at else []
        spent = usd_sum([*carried, *(charge.usd for charge in charges if start <= charge.at <= now)])
        return BudgetState(self, spent, end)


@dataclass(frozen=True)
class BudgetState:
    """A budget as ``GET /key`` shows it and as enforcement sees it at one instant."""

    budget: Budget
    spend_usd: float
    resets_at: float | None

    @property
    def remaining_usd(self) -> float:
        return _usd_difference(self.budget.limit_usd, self.spend_usd)

    @property
    def spent(self) -> bool:
        """Zero or less remaining: this layer refuses every paid request until it resets."""
        return self.remaining_usd <= 0

    def to_dict(self) -> dict[str, Any]:
        """OpenRouter's ``KeyBudget`` (SDK 1.3.84 ``components/keybudget.py``)."""
        scope = self.budget.scope
        return {
            "scope": scope,
            "limit_usd": self.budget.limit_usd,
            "spend_usd": self.spend_usd,
            "remaining_usd": self.remaining_usd,
            "reset_interval": self.budget.reset_interval,
            "resets_at": iso_time(self.resets_at),
            "include_byok": False,
            "guardrail_id": f"guardrail-emulator-{scope}" if self.budget.layer == "guardrail" else None,
            "budget_id": "budget-emulator-workspace" if self.budget.layer == "workspace" else None,
        }

    def refusal(self) -> ApiError:
        """The 403 a submit gets while this budget is spent (no ``Retry-After``)."""
        layer, interval = self.budget.layer, self.budget.reset_interval
        period = f" ({interval} limit)" if interval else ""
        return ApiError(
            403,
            f"{_REFUSAL_WORDS[layer]} budget limit exceeded{period}",
            {
                "limit_source": LIMIT_SOURCES[layer],
                "scope": self.budget.scope,
                "limit_usd": self.budget.limit_usd,
                "spend_usd": self.spend_usd,
                "resets_at": iso_time(self.resets_at),
            },
        )


def blocking_budget(states: Sequence[BudgetState]) -> BudgetState | None:
    """The budget enforcement refuses on: the first spent one in enforcement order."""
    return next((state for state in states if state.spent), None)


def effective_budget(states: Sequence[BudgetState]) -> BudgetState | None:
    """The budget that blocks first: the one refusing now, else the one with the least remaining
    (the earlier in enforcement order on a tie); None when nothing is budgeted."""
    blocking = blocking_budget(states)
    if blocking is not None or not states:
        return blocking
    return min(states, key=lambda state: state.remaining_usd)


@dataclass(frozen=True)
class KeyAccount:
    """What the control API configured for the key: its budgets, one per scope in enforcement
    order, and when it expires (Unix seconds; None: never)."""

    budgets: tuple[Budget, ...] = ()
    expires_at: float | None = None

    def with_budget(self, budget: Budget) -> KeyAccount:
        """This account with ``budget`` in its scope's place (replacing the one set before)."""
        others = [kept for kept in self.budgets if kept.scope != budget.scope]
        ordered = sorted([*others, budget], key=lambda kept: ENFORCEMENT_ORDER.index(kept.scope))
        return dataclasses.replace(self, budgets=tuple(ordered))

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def states(self, charges: Sequence[Charge], now: float) -> list[BudgetState]:
        return [budget.state(charges, now) for budget in self.budgets]

    def check_submit(self, charges: Sequence[Charge], now: float) -> None:
        """Raise the 403 of the first spent budget, if any: the submit then creates nothing."""
        blocking = blocking_budget(self.states(charges, now))
        if blocking is not None:
            raise blocking.refusal()

    def view(self, charges: Sequence[Charge], now: float) -> dict[str, Any]:
        """``GET /api/v1/key``'s ``data`` (SDK 1.3.84 ``operations/getcurrentkey.py``): usage is
        what the key was charged since the emulator's last reset; ``limit*`` describe only the
        key's own limit."""
        states = self.states(charges, now)
        key_limit = next((state for state in states if state.budget.layer == "key_limit"), None)
        effective = effective_budget(states)

        def usage_in(interval: str) -> float:
            start, _ = calendar_window(interval, now)
            return usd_sum(charge.usd for charge in charges if start <= charge.at <= now)

        return {
            "label": KEY_LABEL,
            "limit": None if key_limit is None else key_limit.budget.limit_usd,
            "limit_remaining": None if key_limit is None else key_limit.remaining_usd,
            "limit_reset": None if key_limit is None else key_limit.budget.reset_interval,
            "include_byok_in_limit": False,
            "usage": usd_sum(charge.usd for charge in charges if charge.at <= now),
            "usage_daily": usage_in("daily"),
            "usage_weekly": usage_in("weekly"),
            "usage_monthly": usage_in("monthly"),
            "byok_usage": 0.0,
            "byok_usage_daily": 0.0,
            "byok_usage_weekly": 0.0,
            "byok_usage_monthly": 0.0,
            "is_free_tier": False,
            "is_management_key": False,
            "is_provisioning_key": False,
            "expires_at": iso_time(self.expires_at),
            "rate_limit": {"requests": -1, "interval": "10s", "note": "This field is deprecated."},
            "allowed_data_regions": ["global"],
            "free_model_daily_requests": {"limit": 1000, "remaining": 1000, "used": 0},
            "creator_user_id": "user_emulator",
            "organization_id": None,
            "workspace_id": "workspace-emulator",
            "budgets": [state.to_dict() for state in states],
            "effective_budget": None if effective is None else effective.to_dict(),
        }


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _usd(spec: Mapping[str, Any], name: str, default: float | None = None) -> float:
    value = spec.get(name, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < math.inf:
        raise _bad(f"{name} must be a finite number of USD >= 0")
    return float(value)


def parse_budget(spec: Any, now: float) -> Budget:
    """A budget posted to the control API, set at ``now``; 400 on anything unknown or inconsistent."""
    if not isinstance(spec, dict):
        raise _bad("budget must be a JSON object")
    unknown = set(spec) - _BUDGET_FIELDS
    if unknown:
        raise _bad(f"unknown budget fields: {', '.join(sorted(unknown))}")
    layer = spec.get("layer", "key_limit")
    if layer not in SCOPES_BY_LAYER:
        raise _bad(f"layer must be one of {', '.join(SCOPES_BY_LAYER)}")
    scope = spec.get("scope") or DEFAULT_SCOPE[layer]
    if scope not in SCOPES_BY_LAYER[layer]:
        raise _bad(f"a {layer} budget's scope is one of {', '.join(SCOPES_BY_LAYER[layer])}, not {scope!r}")
    interval = spec.get("reset_interval")
    if interval is not None and interval not in RESET_INTERVALS:
        raise _bad(f"reset_interval must be one of {', '.join(RESET_INTERVALS)} or null (lifetime)")
    resets_at = spec.get("resets_at")
    if resets_at is not None:
        if interval is None:
            raise _bad("resets_at needs a reset_interval: a lifetime budget never resets")
        if (
            not isinstance(resets_at, int | float)
            or isinstance(resets_at, bool)
            or not now < resets_at < math.inf
        ):
            raise _bad("resets_at must be a Unix time in the future")
    first_reset = None if interval is None else resets_at or calendar_window(interval, now)[1]
    return Budget(
        layer=layer,
        scope=scope,
        limit_usd=_usd(spec, "limit_usd"),
        spend_usd=_usd(spec, "spend_usd", 0.0),
        reset_interval=interval,
        set_at=now,
        first_reset=None if first_reset is None else float(first_reset),
    )


def parse_expiry(spec: Any) -> float | None:
    """``{"expires_at": <Unix time> | null}`` posted to the control API."""
    if not isinstance(spec, dict) or set(spec) != {"expires_at"}:
        raise _bad('the key settings are {"expires_at": <Unix time or null>}')
    expires_at = spec["expires_at"]
    if expires_at is None:
        return None
    if (
        not isinstance(expires_at, int | float)
        or isinstance(expires_at, bool)
        or not math.isfinite(expires_at)
    ):
        raise _bad("expires_at must be a Unix time or null")
    return float(expires_at)
