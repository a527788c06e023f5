"""Every ``[openrouter]`` setting the provider reads is declared in its provider info, so
``airflow config list`` shows it with its description and default (issue 26: before,
``loopback_poll_scale`` was read but not declared)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from airflow_provider_orvideo.get_provider_info import get_provider_info

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_orvideo"
READ = re.compile(r"""conf\.get\w*\(\s*["']openrouter["'],\s*["'](\w+)["']""")


def read_settings() -> set[str]:
    return {name for path in PACKAGE.rglob("*.py") for name in READ.findall(path.read_text(encoding="utf-8"))}


def test_every_setting_read_is_declared_and_every_declared_one_is_read() -> None:
    declared = set(get_provider_info()["config"]["openrouter"]["options"])
    read = read_settings()
    assert read, "the provider reads [openrouter] settings"
    assert read == declared


def test_airflow_config_list_shows_them(tmp_path: Path) -> None:
    env = {"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow",
            "config",
            "list",
            "--section",
            "openrouter",
            "--include-descriptions",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    ).stdout
    for name in read_settings():
        assert f"{name} =" in listed, listed
    assert "loopback_poll_scale" in listed
