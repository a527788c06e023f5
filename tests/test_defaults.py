"""Deployment settings: ``deferrable``'s default and ``[openrouter] loopback_poll_scale``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_orvideo.defaults import DEFERRABLE_ENV_VAR
from airflow_provider_orvideo.exceptions import InvalidSettingError
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from airflow_provider_orvideo.polling import LOOPBACK_POLL_SCALE_ENV_VAR, loopback_poll_scale
from tests.helpers import RecordingTaskInstance, context_with


def _operator(tmp_path: Path, **kwargs: Any) -> OpenRouterVideoOperator:
    arguments: dict[str, Any] = {
        "prompt": "p",
        "model": "m",
        "output_path": str(tmp_path / "o.mp4"),
        **kwargs,
    }
    return OpenRouterVideoOperator(task_id="render", **arguments)


def test_defers_by_default_even_though_airflow_says_false(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.configuration import conf

    monkeypatch.delenv(DEFERRABLE_ENV_VAR, raising=False)
    # What every stock install answers (and writes into airflow.cfg): not a choice of the deployment.
    assert conf.getboolean("operators", "default_deferrable", fallback=True) is False
    assert _operator(tmp_path).deferrable is True


@pytest.mark.parametrize(("raw", "expected"), [("false", False), ("False", False), ("0", False), ("t", True)])
def test_the_environment_variable_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv(DEFERRABLE_ENV_VAR, raw)
    assert _operator(tmp_path).deferrable is expected
    assert _operator(tmp_path, deferrable=not expected).deferrable is (not expected)


def test_a_value_that_is_not_a_boolean_fails_at_parse_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEFERRABLE_ENV_VAR, "sometimes")
    with pytest.raises(InvalidSettingError, match=rf"{DEFERRABLE_ENV_VAR}='sometimes'.*allowed: true"):
        _operator(tmp_path)
    assert _operator(tmp_path, deferrable=False).deferrable is False  # an explicit argument wins


# -- [openrouter] loopback_poll_scale ----------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://127.0.0.1:8089/api/v1", 0.01),
        ("http://127.8.9.10/api/v1", 0.01),
        ("http://[::1]:9/api/v1", 0.01),
        ("http://localhost:8089/api/v1", 0.01),
        ("http://emulator.localhost/api/v1", 0.01),
        ("https://openrouter.ai/api/v1", 1.0),
        ("http://10.0.0.5/api/v1", 1.0),
        ("http://127.0.0.1.nip.io/api/v1", 1.0),  # a DNS name that merely looks local
        ("http://localhost.evil.example/api/v1", 1.0),
    ],
)
def test_the_scale_applies_only_to_loopback_hosts(base_url: str, expected: float) -> None:
    assert loopback_poll_scale(base_url, "0.01") == expected


@pytest.mark.parametrize("configured", [None, "", "  "])
def test_no_scale_configured_means_one(configured: str | None) -> None:
    assert loopback_poll_scale("http://127.0.0.1/api/v1", configured) == 1.0


@given(st.text(max_size=8) | st.floats(allow_nan=True, allow_infinity=True).map(str))
def test_a_scale_outside_zero_to_one_is_refused_naming_the_setting(configured: str) -> None:
    try:
        number = float(configured)
    except ValueError:
        number = None
    if not configured.strip():
        assert loopback_poll_scale("http://127.0.0.1/api/v1", configured) == 1.0
    elif number is not None and 0 < number <= 1:
        assert loopback_poll_scale("http://127.0.0.1/api/v1", configured) == number
    else:
        with pytest.raises(ValueError, match=LOOPBACK_POLL_SCALE_ENV_VAR) as info:
            loopback_poll_scale("http://127.0.0.1/api/v1", configured)
        assert repr(configured) in str(info.value)


def test_the_task_polls_faster_against_the_emulator_and_refuses_a_bad_scale_before_paying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: Any
) -> None:
    monkeypatch.setenv(LOOPBACK_POLL_SCALE_ENV_VAR, "0.01")
    emulator.control.set_job_defaults(pending_seconds=0.2, in_progress_seconds=0.3)
    operator = _operator(tmp_path, model="google/veo-3.1", duration=4, poll_interval=30, deferrable=False)
    started = time.monotonic()
    operator.execute(context_with(RecordingTaskInstance()))
    assert time.monotonic() - started < 5  # 30 s between polls (0.3 s here) against a 0.5 s job
    assert emulator.control.count("submit", "POST") == 1

    monkeypatch.setenv(LOOPBACK_POLL_SCALE_ENV_VAR, "2")
    refused = _operator(tmp_path, model="google/veo-3.1", duration=4, output_path=str(tmp_path / "b.mp4"))
    with pytest.raises(InvalidSettingError, match=r"LOOPBACK_POLL_SCALE='2'.*Nothing was submitted"):
        refused.execute(context_with(RecordingTaskInstance()))
    assert emulator.control.count("submit", "POST") == 1
