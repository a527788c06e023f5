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
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_orvideo._internal.api import BUDGET_LAYERS, Endpoint, api_error, submit_request
from airflow_provider_orvideo._internal.compat import AirflowFailException
from airflow_provider_orvideo._internal.submission import submit_created_nothing
from airflow_provider_orvideo.exceptions import (
    OpenRouterAuthError,
    OpenRouterBudgetExceededError,
    OpenRouterCreditsExhaustedError,
    OpenRouterInFlightBudgetError,
    OpenRouterPaymentRequiredError,
)
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.retry import Answered, GiveUp, Retry, RetryPolicy, is_transient
from tests.adversarial.conftest import airflow_home, run_dag_file  # noqa: F401 - a fixture
from tests.helpers import plain_text

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
