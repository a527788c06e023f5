"""``deferrable``'s default: True unless the deployment's environment variable says otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_orvideo.defaults import DEFERRABLE_ENV_VAR
from airflow_provider_orvideo.exceptions import InvalidOperatorArgumentError
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator


def _operator(tmp_path: Path, **kwargs: object) -> OpenRouterVideoOperator:
    return OpenRouterVideoOperator(
        task_id="render", prompt="p", model="m", output_path=str(tmp_path / "o.mp4"), **kwargs
    )


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
    with pytest.raises(
        InvalidOperatorArgumentError, match=rf"{DEFERRABLE_ENV_VAR}='sometimes'.*allowed: true"
    ):
        _operator(tmp_path)
    assert _operator(tmp_path, deferrable=False).deferrable is False  # an explicit argument wins
