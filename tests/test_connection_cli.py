"""``airflow connections test`` on an ``openrouter`` connection, as a user runs it.

The real CLI runs in a subprocess (fresh ``AIRFLOW_HOME``, testing enabled, the connection from an
``AIRFLOW_CONN_*`` variable) against the emulator, which implements the endpoints that
``OpenRouterVideoHook.test_connection()`` calls.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import Emulator
from tests.helpers import AIRFLOW_VERSION

CONN_ID = "openrouter_cli_test"
FAILED_EXIT_CODE = 1 if AIRFLOW_VERSION >= (3, 3) else 0
"""``airflow connections test`` exits 0 on a failed test before Airflow 3.3 (Airflow's behaviour)."""


def _airflow_connections_test(tmp_path: Path, host: str, api_key: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("AIRFLOW", "_AIRFLOW"))}
    home = tmp_path / "airflow_home"
    home.mkdir(exist_ok=True)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(
                {"conn_type": "openrouter", "host": host, "password": api_key}
            ),
        }
    )
    airflow = Path(sys.executable).parent / "airflow"
    return subprocess.run(
        [str(airflow), "connections", "test", CONN_ID],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_cli_reports_success_with_the_right_key(emulator: Emulator, tmp_path: Path) -> None:
    result = _airflow_connections_test(tmp_path, emulator.base_url, emulator.api_key)
    output = _output(result)
    assert result.returncode == 0, output
    assert "Connection success!" in output
    assert "Connection failed" not in output
    assert emulator.api_key not in output


def test_cli_reports_a_rejected_key_without_printing_it(emulator: Emulator, tmp_path: Path) -> None:
    wrong_key = f"sk-or-v1-wrong-{secrets.token_hex(16)}"
    result = _airflow_connections_test(tmp_path, emulator.base_url, wrong_key)
    output = _output(result)
    assert result.returncode == FAILED_EXIT_CODE, output
    assert "Connection failed!" in output
    assert "refused the API key" in output, output
    # The hook's message: the HTTP status and OpenRouter's own reason.
    assert "HTTP 401" in output, output
    assert "Invalid API key" in output, output
    assert wrong_key not in output
    assert wrong_key[-12:] not in output


def test_cli_reports_a_wrong_base_url(emulator: Any, tmp_path: Path) -> None:
    wrong_base = emulator.base_url.replace("/api/v1", "/not-the-api")
    assert wrong_base != emulator.base_url
    result = _airflow_connections_test(tmp_path, wrong_base, emulator.api_key)
    output = _output(result)
    assert result.returncode == FAILED_EXIT_CODE, output
    assert "Connection failed!" in output
    assert "video API did not answer at" in output, output
