"""OpenRouter's budgets and limits understood (issue 25): classified by ``limit_source`` first.

- A spent budget layer (guardrail, workspace, the key's own limit; 403 or 402) fails the task
  without retrying and names the layer, the spend, the limit and the reset; nothing is created.
- The in-flight budget (402 ``openrouter_in_flight_budget`` with ``Retry-After``) is waited for
  and the submit sent again: one job, no second payment.
- Credits exhausted (any other 402) is final.

Pure classification (every status and limit source, hostile metadata), the retry engine's
decision, the hook over real HTTP against the emulator, and a real ``dag.test()`` run.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_orvideo._internal.api import (
    BUDGET_LAYERS,
    Endpoint,
    api_error,
    parse_key,
    submit_request,
)
from airflow_provider_orvideo._internal.compat import AirflowFailException
from airflow_provider_orvideo._internal.submission import submit_created_nothing
from airflow_provider_orvideo.exceptions import (
    ApiKeyExpiresError,
    InsufficientBudgetError,
    OpenRouterAuthError,
    OpenRouterBudgetExceededError,
    OpenRouterCreditsExhaustedError,
    OpenRouterInFlightBudgetError,
    OpenRouterPaymentRequiredError,
    OpenRouterResponseError,
)
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.pricing import CostEstimate, check_key_budget
from airflow_provider_orvideo.retry import Answered, GiveUp, Retry, RetryPolicy, is_transient
from tests.adversarial.conftest import airflow_home, run_dag_file  # noqa: F401 - a fixture
from tests.helpers import RecordingTaskInstance, TaskDeferred, context_with, plain_text
from tests.operators.test_openrouter_video import make_operator

GUARDRAIL = {
    "limit_source": "openrouter_guardrail_budget",
    "scope": "member",
    "limit_usd": 10,
    "spend_usd": 10.02,
    "resets_at": "2026-12-06T00:00:00Z",
}
IN_FLIGHT = {"limit_source": "openrouter_in_flight_budget", "error_type": "in_flight_budget_exhausted"}
WEIGHT = {"limit_source": "openrouter_credits", "error_type": "weight_exceeds_budget"}
BODY = {"model": "google/veo-3.1", "prompt": "a red fox", "duration": 4}


def envelope(status: int, metadata: Any, message: str = "Budget exceeded") -> bytes:
    return json.dumps({"error": {"code": status, "message": message, "metadata": metadata}}).encode()


# -- classification -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [402, 403])
@pytest.mark.parametrize("source", sorted(BUDGET_LAYERS))
def test_a_spent_budget_layer_is_named_whatever_the_status(status: int, source: str) -> None:
    error = api_error(Endpoint.SUBMIT, status, envelope(status, {**GUARDRAIL, "limit_source": source}))
    assert type(error) is OpenRouterBudgetExceededError
    assert isinstance(error, AirflowFailException)  # not retried: the same refusal until the reset
    message = str(error)
    assert f"the {BUDGET_LAYERS[source]} is spent" in message
    assert "scope member; $10.02 spent of $10.00; resets at 2026-12-06T00:00:00Z" in message
    assert "Nothing was created or billed" in message
    assert (error.limit_source, error.scope, error.limit_usd, error.spend_usd, error.resets_at) == (
        source,
        "member",
        10.0,
        10.02,
        "2026-12-06T00:00:00Z",
    )
    assert submit_created_nothing(error)


def test_a_403_without_a_limit_source_is_still_the_key() -> None:
    error = api_error(Endpoint.SUBMIT, 403, envelope(403, {}, "Forbidden"))
    assert type(error) is OpenRouterAuthError


def test_the_in_flight_budget_is_transient_and_credits_are_final() -> None:
    in_flight = api_error(Endpoint.SUBMIT, 402, envelope(402, IN_FLIGHT, "In-flight budget exhausted"))
    assert type(in_flight) is OpenRouterInFlightBudgetError
    assert isinstance(in_flight, OpenRouterPaymentRequiredError)
    assert not isinstance(in_flight, AirflowFailException)
    assert is_transient(in_flight)
    assert submit_created_nothing(in_flight)
    for metadata in (WEIGHT, {}, "not a mapping"):
        credits = api_error(Endpoint.SUBMIT, 402, envelope(402, metadata, "Insufficient credits"))
        assert type(credits) is OpenRouterCreditsExhaustedError
        assert isinstance(credits, AirflowFailException)
        assert not is_transient(credits)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@given(
    status=st.sampled_from([400, 401, 402, 403, 404, 429, 500]),
    metadata=st.dictionaries(
        st.sampled_from(["limit_source", "scope", "limit_usd", "spend_usd", "resets_at", "error_type", "x"]),
        JSON_VALUES | st.sampled_from([*BUDGET_LAYERS, "openrouter_in_flight_budget", "NaN", "1e400"]),
    ),
)
def test_any_metadata_classifies_without_raising(status: int, metadata: dict[str, Any]) -> None:
    error = api_error(Endpoint.SUBMIT, status, envelope(status, metadata))
    assert str(error).startswith(f"OpenRouter rejected the submit request (POST /videos) with HTTP {status}")
    source = metadata.get("limit_source")
    if isinstance(source, str) and source in BUDGET_LAYERS:
        assert isinstance(error, OpenRouterBudgetExceededError)
        for usd in (error.limit_usd, error.spend_usd):
            assert usd is None or usd == usd  # finite or absent, never NaN
    assert submit_created_nothing(error) == (status != 500)


# -- the retry engine -----------------------------------------------------------------------------------


def test_the_submit_waits_for_the_in_flight_budget_and_gives_up_on_a_spent_one() -> None:
    policy, request = RetryPolicy(), submit_request(BODY)
    step = policy.next_step(request, 1, Answered(402, "7", envelope(402, IN_FLIGHT)), now=0.0)
    assert step == Retry(7.0, "HTTP 402")
    too_long = policy.next_step(request, 1, Answered(402, "600", envelope(402, IN_FLIGHT)), now=0.0)
    assert isinstance(too_long, GiveUp)
    assert isinstance(too_long.error, OpenRouterInFlightBudgetError)
    for status, metadata in ((403, GUARDRAIL), (402, GUARDRAIL), (402, WEIGHT)):
        step = policy.next_step(request, 1, Answered(status, None, envelope(status, metadata)), now=0.0)
        assert isinstance(step, GiveUp)
        assert isinstance(step.error, (OpenRouterBudgetExceededError, OpenRouterCreditsExhaustedError))
        assert "may still have created a job" not in str(step.error)


# -- over real HTTP ---------------------------------------------------------------------------------------


def test_the_hook_sends_the_submit_again_after_the_in_flight_budget_frees_up(emulator: Any) -> None:
    emulator.control.add_fault("submit", "status", status=402, metadata=IN_FLIGHT, retry_after=0.05, times=2)
    job = OpenRouterVideoHook().submit(BODY)
    assert [j["id"] for j in emulator.control.jobs()] == [job.id]
    assert emulator.control.count("submit", "POST") == 3


DAG = textwrap.dedent(
    """
    import datetime, os
    from airflow.sdk import DAG
    from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator

    with DAG("budget_spent", schedule=None, start_date=datetime.datetime(2025, 1, 1)) as dag:
        OpenRouterVideoOperator(
            task_id="render",
            prompt="a lighthouse at dawn",
            model="google/veo-3.1",
            duration=4,
            output_path=os.environ["OUT"] + "/clip.mp4",
            poll_interval=0.2,
            retries=2,
            retry_delay=datetime.timedelta(seconds=0),
        )

    if __name__ == "__main__":
        dag.test()
    """
)


def test_a_spent_budget_fails_the_task_once_and_says_why(
    airflow_home: Path,  # noqa: F811 - the fixture imported above
    emulator: Any,
    tmp_path: Path,
) -> None:
    emulator.control.add_fault("submit", "status", status=403, metadata=GUARDRAIL, times=10)
    run = run_dag_file(airflow_home, emulator, DAG, "budget_spent", {"OUT": str(tmp_path)})
    output = plain_text(run.stdout + run.stderr)  # Airflow 3.0 wraps the message in a rich panel
    assert "OpenRouterBudgetExceededError" in output, output[-6000:]
    assert "the guardrail budget is spent (scope member; $10.02 spent of $10.00" in output, output[-6000:]
    assert emulator.control.jobs() == []
    assert emulator.control.count("submit", "POST") == 1  # no retry of the task, none in the hook
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        (state, try_number) = db.execute(
            "SELECT state, try_number FROM task_instance WHERE dag_id = 'budget_spent'"
        ).fetchone()
    assert (state, try_number) == ("failed", 1)
    assert not list(tmp_path.iterdir())


# -- budget_preflight: GET /key before paying -----------------------------------------------------------


def key_payload(**data: Any) -> dict[str, Any]:
    return {"data": {"label": "k", "limit": None, "usage": 0, **data}}


def layer(remaining: float, limit: float = 10.0, scope: str = "api_key") -> dict[str, Any]:
    return {
        "scope": scope,
        "limit_usd": limit,
        "spend_usd": limit - remaining,
        "remaining_usd": remaining,
        "reset_interval": "daily",
        "resets_at": "2026-12-06T00:00:00Z",
    }


ESTIMATE = CostEstimate(3.2, "per-video-second $0.8/s x 4 s")
UNKNOWN = CostEstimate(None, "", unknown_reason="model m is priced by SKUs this provider cannot estimate")


def check(payload: dict[str, Any], estimate: CostEstimate = ESTIMATE, *, strict: bool = False) -> None:
    check_key_budget(
        parse_key(payload),
        estimate,
        needed_until=1_800_000_000.0,
        strict=strict,
        conn_id="openrouter_default",
        log=logging.getLogger("test"),
    )


def test_the_preflight_refuses_what_the_effective_budget_cannot_cover() -> None:
    check(key_payload())  # no budgets, no expiry
    check(key_payload(effective_budget=layer(5.0), budgets=[layer(5.0)]))
    with pytest.raises(
        InsufficientBudgetError, match=r"exceeds what the key's api_key budget has \$1\.50 left"
    ):
        check(key_payload(effective_budget=layer(1.5)))
    with pytest.raises(InsufficientBudgetError, match="refuses every paid request"):
        check(key_payload(effective_budget=layer(0.0)), UNKNOWN)
    check(key_payload(effective_budget=layer(5.0)), UNKNOWN)  # cannot tell: warn, submit
    with pytest.raises(InsufficientBudgetError, match="strict_cost_check is on"):
        check(key_payload(effective_budget=layer(5.0)), UNKNOWN, strict=True)


def test_the_preflight_refuses_a_key_that_expires_before_the_deadline() -> None:
    with pytest.raises(ApiKeyExpiresError, match="expires at 2027-01-15T08:00:00"):
        check(key_payload(expires_at="2027-01-15T08:00:00Z"))
    check(key_payload(expires_at="2030-01-01T00:00:00Z"))
    check(key_payload(expires_at="not a time"))  # unreadable: not limiting


@given(data=st.dictionaries(st.sampled_from(["effective_budget", "budgets", "expires_at", "x"]), JSON_VALUES))
def test_any_key_answer_parses_or_is_refused_as_a_response(data: dict[str, Any]) -> None:
    status = parse_key({"data": data})
    if status.effective_budget is not None:
        assert status.effective_budget.remaining_usd is None or status.effective_budget.remaining_usd == (
            status.effective_budget.remaining_usd
        )
    with pytest.raises(OpenRouterResponseError):
        parse_key({"nodata": data})


def test_the_hook_reads_the_emulators_key_and_caches_it(emulator: Any) -> None:
    emulator.control.set_budget(10.0, layer="guardrail", scope="member", spend_usd=8.5)
    hook = OpenRouterVideoHook()
    status = hook.get_key_status(max_age=0)
    assert status.effective_budget is not None
    assert (status.effective_budget.scope, status.effective_budget.remaining_usd) == ("member", 1.5)
    emulator.control.clear_budgets()
    assert hook.get_key_status().effective_budget == status.effective_budget  # cached
    assert hook.get_key_status(max_age=0).effective_budget is None


def test_a_task_with_the_preflight_refuses_before_paying(emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_budget(10.0, layer="key_limit", spend_usd=9.0)  # $1 left; the video ~$3.20
    operator = make_operator(tmp_path, budget_preflight=True, duration=8)
    with pytest.raises(InsufficientBudgetError, match="Nothing was submitted"):
        operator.execute(context_with(RecordingTaskInstance()))
    assert emulator.control.count("submit", "POST") == 0
    without = make_operator(tmp_path, task_id="no_preflight", duration=8)
    with pytest.raises(TaskDeferred):
        without.execute(context_with(RecordingTaskInstance()))
    assert emulator.control.count("submit", "POST") == 1  # OpenRouter's own budget decides then


def test_the_preflight_is_advisory_when_get_key_fails(emulator: Any, tmp_path: Path) -> None:
    emulator.control.fail_requests("key", 404, times=10)
    operator = make_operator(tmp_path, budget_preflight=True)
    operator.hook = OpenRouterVideoHook(retry_policy=RetryPolicy(max_attempts=1))
    with pytest.raises(TaskDeferred):
        operator.execute(context_with(RecordingTaskInstance()))
    assert emulator.control.count("key") == 1
    assert emulator.control.count("submit", "POST") == 1
