"""The key's budgets and limits over real HTTP: ``GET /api/v1/key``, spend counted when a job
completes, a spent budget's 403 (exact envelope, nothing created), budgets that reset, key expiry,
the scripted in-flight 402s; and the pure rules behind them (windows, the blocking budget)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from orvideo_emulator.billing import Charge
from orvideo_emulator.budgets import (
    ENFORCEMENT_ORDER,
    Budget,
    BudgetState,
    KeyAccount,
    calendar_window,
    effective_budget,
    iso_time,
)

from tests.conftest import Emulator
from tests.emulator.test_server import assert_error, submit

VEO = {"model": "google/veo-3.1", "prompt": "a cat"}
KEY_FIELDS = {
    "label",
    "limit",
    "limit_remaining",
    "limit_reset",
    "include_byok_in_limit",
    "usage",
    "usage_daily",
    "usage_weekly",
    "usage_monthly",
    "byok_usage",
    "byok_usage_daily",
    "byok_usage_weekly",
    "byok_usage_monthly",
    "is_free_tier",
    "is_management_key",
    "is_provisioning_key",
    "expires_at",
    "rate_limit",
    "allowed_data_regions",
    "free_model_daily_requests",
    "creator_user_id",
    "organization_id",
    "workspace_id",
    "budgets",
    "effective_budget",
}
# 2026-12-02 is a Wednesday; every instant below is UTC.
WEDNESDAY_NOON = datetime(2026, 12, 2, 12, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=5) as client:
        yield client


def key(api: httpx.Client) -> dict[str, Any]:
    response = api.get("/key")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def wait_until_billed(emulator: Emulator, count: int) -> None:
    deadline = time.monotonic() + 5
    while sum(job["status"] == "completed" for job in emulator.control.jobs()) < count:
        assert time.monotonic() < deadline, "jobs did not complete"
        time.sleep(0.02)


# --- GET /api/v1/key --------------------------------------------------------------------------


def test_key_without_budgets(emulator: Emulator, api: httpx.Client) -> None:
    data = key(api)
    assert set(data) == KEY_FIELDS
    assert data["budgets"] == []
    assert data["effective_budget"] is None
    assert (data["limit"], data["limit_remaining"], data["limit_reset"]) == (None, None, None)
    assert data["usage"] == data["usage_daily"] == data["usage_monthly"] == 0.0
    assert data["expires_at"] is None
    assert data["rate_limit"]["requests"] == -1
    assert emulator.control.requests("key")[0]["status"] == 200


def test_key_needs_the_key_and_a_get(emulator: Emulator) -> None:
    assert_error(httpx.get(f"{emulator.base_url}/key"), 401, "No auth credentials")
    wrong = {"Authorization": "Bearer nope"}
    assert_error(httpx.get(f"{emulator.base_url}/key", headers=wrong), 401, "Invalid API key")
    right = {"Authorization": f"Bearer {emulator.api_key}"}
    assert_error(httpx.post(f"{emulator.base_url}/key", headers=right), 405)


def test_key_lists_every_budget_in_enforcement_order(emulator: Emulator, api: httpx.Client) -> None:
    control = emulator.control
    control.set_budget(20.0, reset_interval="monthly", spend_usd=3.0)
    control.set_budget(50.0, layer="workspace", reset_interval="weekly", spend_usd=45.5)
    control.set_budget(10.0, layer="guardrail", scope="member", reset_interval="daily", spend_usd=2.0)
    stored = control.set_budget(8.0, layer="guardrail", spend_usd=1.0)
    assert stored["scope"] == "api_key"
    data = key(api)
    assert [budget["scope"] for budget in data["budgets"]] == ["member", "api_key", "workspace", "key_limit"]
    member, api_key, workspace, key_limit = data["budgets"]
    assert member == {
        "scope": "member",
        "limit_usd": 10.0,
        "spend_usd": 2.0,
        "remaining_usd": 8.0,
        "reset_interval": "daily",
        "resets_at": iso_time(calendar_window("daily", time.time())[1]),
        "include_byok": False,
        "guardrail_id": "guardrail-emulator-member",
        "budget_id": None,
    }
    assert (api_key["reset_interval"], api_key["resets_at"]) == (None, None)  # a lifetime budget
    assert workspace["budget_id"] is not None
    assert workspace["guardrail_id"] is None
    assert workspace["resets_at"].endswith("T00:00:00.000Z")
    assert data["effective_budget"] == workspace  # the least remaining: $4.50
    # limit/limit_remaining/limit_reset describe only the key's own limit.
    assert (data["limit"], data["limit_remaining"], data["limit_reset"]) == (20.0, 17.0, "monthly")
    assert key_limit["remaining_usd"] == 17.0

    control.set_budget(100.0, layer="workspace")  # one budget per scope: replaced
    assert [b["limit_usd"] for b in key(api)["budgets"]] == [10.0, 8.0, 100.0, 20.0]
    control.clear_budgets()
    assert key(api)["budgets"] == []


def test_usage_and_spend_grow_when_jobs_complete_not_when_they_are_submitted(
    emulator: Emulator, api: httpx.Client
) -> None:
    emulator.control.set_budget(1.0, reset_interval="daily", spend_usd=0.1)
    emulator.control.set_job_defaults(pending_seconds=0.5, in_progress_seconds=0.5, cost=0.4)
    submit(api)
    rendering = key(api)
    assert rendering["usage"] == 0.0  # OpenRouter charges a request when it finishes
    assert rendering["budgets"][0]["spend_usd"] == 0.1

    wait_until_billed(emulator, 1)
    billed = key(api)
    assert (
        billed["usage"] == billed["usage_daily"] == billed["usage_weekly"] == billed["usage_monthly"] == 0.4
    )
    assert billed["budgets"][0]["spend_usd"] == 0.5  # what was spent before, plus the bill
    assert billed["limit_remaining"] == 0.5

    emulator.control.jobs_end_as("failed")
    submit(api)
    wait_until_billed(emulator, 1)
    time.sleep(1.1)
    assert key(api)["usage"] == 0.4  # a failed job is not billed


def test_a_budget_counts_only_what_is_billed_after_it_was_set(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0, cost=0.25)
    submit(api)
    emulator.control.set_budget(1.0)
    submit(api)
    data = key(api)
    assert data["usage"] == 0.5
    assert data["budgets"][0]["spend_usd"] == 0.25


# --- a spent budget refuses the submit ---------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "scope", "limit_source", "message"),
    [
        ("key_limit", "key_limit", "openrouter_key_limit", "API key budget limit exceeded (daily limit)"),
        (
            "guardrail",
            "member",
            "openrouter_guardrail_budget",
            "Guardrail budget limit exceeded (daily limit)",
        ),
        (
            "workspace",
            "workspace",
            "openrouter_workspace_budget",
            "Workspace budget limit exceeded (daily limit)",
        ),
    ],
)
def test_a_spent_budget_refuses_the_submit_and_creates_nothing(
    emulator: Emulator, api: httpx.Client, layer: Any, scope: Any, limit_source: str, message: str
) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    job_id = submit(api)["id"]
    emulator.control.set_budget(5.0, layer=layer, scope=scope, reset_interval="daily", spend_usd=5.0)
    response = api.post("/videos", json=VEO)
    assert response.status_code == 403
    assert "retry-after" not in response.headers
    assert response.json() == {
        "error": {
            "code": 403,
            "message": message,
            "metadata": {
                "limit_source": limit_source,
                "scope": scope,
                "limit_usd": 5.0,
                "spend_usd": 5.0,
                "resets_at": iso_time(calendar_window("daily", time.time())[1]),
            },
        },
        "openrouter_metadata": None,
        "user_id": None,
    }
    assert len(emulator.control.jobs()) == 1
    assert [r["status"] for r in emulator.control.requests("submit")] == [202, 403]
    # Only paid requests are refused: the job already made can still be fetched.
    polled = api.get(f"/videos/{job_id}").json()
    assert api.get(polled["unsigned_urls"][0]).status_code == 200
    assert key(api)["effective_budget"]["scope"] == scope


def test_completed_jobs_spend_a_budget_then_submits_are_refused(
    emulator: Emulator, api: httpx.Client
) -> None:
    emulator.control.set_job_defaults(pending_seconds=0.2, in_progress_seconds=0.2, cost=0.3)
    emulator.control.set_budget(0.5)
    submit(api)
    submit(api)  # both pass: neither was billed yet (in flight is the in-flight budget's business)
    wait_until_billed(emulator, 2)
    error = assert_error(api.post("/videos", json=VEO), 403, "API key budget limit exceeded")
    assert error["metadata"]["spend_usd"] == 0.6
    assert error["metadata"]["resets_at"] is None  # a lifetime limit
    assert key(api)["limit_remaining"] == pytest.approx(-0.1)
    assert len(emulator.control.jobs()) == 2


def test_the_first_spent_layer_in_enforcement_order_refuses(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.set_budget(1.0, spend_usd=3.0)
    emulator.control.set_budget(2.0, layer="guardrail", scope="workspace_default_key", spend_usd=2.0)
    error = assert_error(api.post("/videos", json=VEO), 403)
    assert error["metadata"]["scope"] == "workspace_default_key"
    # effective_budget is the one refusing, though key_limit has less remaining.
    assert key(api)["effective_budget"]["scope"] == "workspace_default_key"


def test_a_spent_budget_lets_submits_through_once_it_resets(emulator: Emulator, api: httpx.Client) -> None:
    resets_at = time.time() + 1.0
    stored = emulator.control.set_budget(
        2.0, layer="guardrail", reset_interval="daily", spend_usd=2.0, resets_at=resets_at
    )
    assert stored["resets_at"] == iso_time(resets_at)
    error = assert_error(api.post("/videos", json=VEO), 403)
    assert error["metadata"]["resets_at"] == iso_time(resets_at)
    time.sleep(max(0.0, resets_at - time.time()) + 0.05)
    assert api.post("/videos", json=VEO).status_code == 202
    (budget,) = key(api)["budgets"]
    assert (budget["spend_usd"], budget["remaining_usd"]) == (0.0, 2.0)
    assert budget["resets_at"] == iso_time(calendar_window("daily", time.time())[1])  # the calendar's


def test_the_control_api_refuses_inconsistent_budgets(emulator: Emulator) -> None:
    for fields, fragment in [
        ({"layer": "team"}, "layer must be one of"),
        ({"layer": "workspace", "scope": "member"}, "scope is one of workspace"),
        ({"reset_interval": "hourly"}, "reset_interval must be one of"),
        ({"resets_at": time.time() + 60}, "resets_at needs a reset_interval"),
        ({"reset_interval": "daily", "resets_at": time.time() - 1}, "in the future"),
        ({"spend_usd": -1}, "spend_usd must be"),
    ]:
        with pytest.raises(RuntimeError, match=fragment):
            emulator.control.set_budget(1.0, **fields)
    with pytest.raises(RuntimeError, match="limit_usd must be"):
        emulator.control.set_budget(-1.0)


def test_reset_forgets_budgets_and_expiry(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.set_budget(1.0, spend_usd=1.0)
    emulator.control.expire_key_at(time.time() + 3600)
    emulator.control.reset()
    data = key(api)
    assert (data["budgets"], data["expires_at"]) == ([], None)
    assert api.post("/videos", json=VEO).status_code == 202


# --- key expiry -------------------------------------------------------------------------------


def test_the_key_shows_its_expiry_and_stops_working_once_expired(
    emulator: Emulator, api: httpx.Client
) -> None:
    emulator.control.expire_key_at(datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp())
    assert key(api)["expires_at"] == "2027-01-01T00:00:00.000Z"
    job_id = submit(api)["id"]
    emulator.control.expire_key_at(time.time() - 1)
    for response in (api.get("/key"), api.post("/videos", json=VEO), api.get(f"/videos/{job_id}")):
        assert_error(response, 401, "API key has expired")
    emulator.control.expire_key_at(None)
    assert key(api)["expires_at"] is None


# --- the in-flight budget (scripted 402s) ------------------------------------------------------


def test_in_flight_budget_exhausted_then_the_submit_passes(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.in_flight_budget_exhausted(times=2, retry_after=2)
    for _ in range(2):
        response = api.post("/videos", json=VEO)
        error = assert_error(response, 402, "In-flight budget exhausted")
        assert error["metadata"] == {
            "limit_source": "openrouter_in_flight_budget",
            "error_type": "in_flight_budget_exhausted",
        }
        assert response.headers["retry-after"] == "2"
    assert emulator.control.jobs() == []
    assert api.post("/videos", json=VEO).status_code == 202
    assert [r["status"] for r in emulator.control.requests("submit")] == [402, 402, 202]
    assert len(emulator.control.jobs()) == 1


def test_in_flight_budget_exhausted_for_a_window(emulator: Emulator, api: httpx.Client) -> None:
    started = time.monotonic()
    emulator.control.in_flight_budget_exhausted(for_seconds=1.0)
    assert api.post("/videos", json=VEO).headers["retry-after"] == "1.0"
    time.sleep(max(0.0, started + 1.05 - time.monotonic()))
    assert api.post("/videos", json=VEO).status_code == 202


def test_weight_exceeds_budget_is_a_402_without_retry_after(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.weight_exceeds_budget()
    response = api.post("/videos", json=VEO)
    error = assert_error(response, 402, "exceeds the account's in-flight budget")
    assert error["metadata"] == {"limit_source": "openrouter_credits", "error_type": "weight_exceeds_budget"}
    assert "retry-after" not in response.headers
    assert emulator.control.jobs() == []
    assert api.post("/videos", json=VEO).status_code == 202


def test_faults_may_target_the_key_endpoint(emulator: Emulator, api: httpx.Client) -> None:
    emulator.control.fail_requests("key", 500)
    assert_error(api.get("/key"), 500)
    assert key(api)["budgets"] == []


# --- the rules, without HTTP --------------------------------------------------------------------

instants = st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False)


@given(interval=st.sampled_from(["daily", "weekly", "monthly"]), at=instants)
def test_calendar_windows_hold_the_instant_and_start_on_the_calendar(interval: str, at: float) -> None:
    start, end = calendar_window(interval, at)
    assert start <= at < end
    first, last = (datetime.fromtimestamp(t, timezone.utc) for t in (start, end))
    for moment in (first, last):
        assert (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0)
        if interval == "weekly":
            assert moment.weekday() == 0
        if interval == "monthly":
            assert moment.day == 1
    assert calendar_window(interval, end)[0] == end  # windows tile time: the next one starts at end
    assert calendar_window(interval, end - 0.001) == (start, end)


def test_calendar_windows_examples() -> None:
    def utc(*args: int) -> float:
        return datetime(*args, tzinfo=timezone.utc).timestamp()

    assert calendar_window("daily", WEDNESDAY_NOON) == (utc(2026, 12, 2), utc(2026, 12, 3))
    assert calendar_window("weekly", WEDNESDAY_NOON) == (utc(2026, 11, 30), utc(2026, 12, 7))
    assert calendar_window("monthly", WEDNESDAY_NOON) == (utc(2026, 12, 1), utc(2027, 1, 1))
    assert calendar_window("monthly", utc(2027, 2, 28, 23)) == (utc(2027, 2, 1), utc(2027, 3, 1))


def daily_budget(set_at: float, first_reset: float, spend_usd: float = 0.0) -> Budget:
    return Budget("key_limit", "key_limit", 10.0, spend_usd, "daily", set_at, first_reset)


def test_a_budget_window_rolls_over_at_its_reset_then_follows_the_calendar() -> None:
    set_at = WEDNESDAY_NOON
    budget = daily_budget(set_at, set_at + 3600, spend_usd=4.0)
    charges = [Charge(set_at - 10, 1.0), Charge(set_at + 60, 2.0), Charge(set_at + 7200, 3.0)]
    before = budget.state(charges, set_at + 120)
    assert (before.spend_usd, before.resets_at) == (6.0, set_at + 3600)  # set spend + what was billed since
    after = budget.state(charges, set_at + 9000)
    midnight = calendar_window("daily", set_at)[1]
    assert (after.spend_usd, after.resets_at) == (3.0, midnight)  # the reset dropped the set spend
    next_day = budget.state([*charges, Charge(midnight + 5, 0.5)], midnight + 10)
    assert (next_day.spend_usd, next_day.resets_at) == (0.5, midnight + 86400)


@given(
    spends=st.lists(st.floats(min_value=0, max_value=20, allow_nan=False), min_size=1, max_size=6),
    limits=st.lists(st.floats(min_value=0.01, max_value=20, allow_nan=False), min_size=6, max_size=6),
)
def test_the_effective_budget_is_the_first_spent_else_the_least_remaining(
    spends: list[float], limits: list[float]
) -> None:
    states = [
        BudgetState(Budget("guardrail", scope, limit, 0.0, None, 0.0, None), spend, None)
        for scope, spend, limit in zip(ENFORCEMENT_ORDER, spends, limits, strict=False)
    ]
    effective = effective_budget(states)
    assert effective is not None
    spent = [state for state in states if state.remaining_usd <= 0]
    if spent:
        assert effective is spent[0]
    else:
        assert effective.remaining_usd == min(state.remaining_usd for state in states)
        assert states.index(effective) == [s.remaining_usd for s in states].index(effective.remaining_usd)


def test_a_submit_is_refused_on_the_first_spent_budget_of_the_account() -> None:
    account = KeyAccount()
    for scope, limit in (("key_limit", 1.0), ("member", 5.0)):
        layer = "key_limit" if scope == "key_limit" else "guardrail"
        account = account.with_budget(Budget(layer, scope, limit, 0.0, None, WEDNESDAY_NOON, None))
    assert [budget.scope for budget in account.budgets] == ["member", "key_limit"]
    account.check_submit([Charge(WEDNESDAY_NOON + 1, 0.99)], WEDNESDAY_NOON + 2)  # $0.01 left: passes
    with pytest.raises(Exception, match="API key budget limit exceeded") as refused:
        account.check_submit([Charge(WEDNESDAY_NOON + 1, 1.0)], WEDNESDAY_NOON + 2)
    assert getattr(refused.value, "status", None) == 403
