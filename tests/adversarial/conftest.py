"""Shared pieces of the adversarial suite: one try as Airflow runs it, tries over a shared state
store, and a real Airflow home for ``dag.test()`` runs of DAG files written by a test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from tests.helpers import (
    AirflowFailException,
    InMemoryTaskStateStore,
    RecordingTaskInstance,
    context_with,
    run_task,
)

VALID = {"prompt": "a lighthouse at dusk", "model": "google/veo-3.1", "duration": 4}
"""A request the emulator's veo-3.1 accepts."""


def video_operator(**kwargs: Any) -> OpenRouterVideoOperator:
    """The operator with a valid request and emulator-speed polling; ``kwargs`` override."""
    arguments: dict[str, Any] = {
        "task_id": "render",
        **VALID,
        "poll_interval": 0.05,
        "initial_poll_delays": (0.05,),
    }
    arguments.update(kwargs)
    return OpenRouterVideoOperator(**arguments)


@dataclass
class Tries:
    """What a task instance's tries did: the outcome of each, and what the emulator was paid for."""

    results: list[Any] = field(default_factory=list)
    """Per try: the returned path, or the exception it raised."""
    posts: int = 0
    ti: RecordingTaskInstance | None = None

    @property
    def last(self) -> Any:
        return self.results[-1]


def run_tries(
    emulator: Any,
    make_operator: Callable[[int], OpenRouterVideoOperator],
    *,
    tries: int = 1,
    store: InMemoryTaskStateStore | None = None,
    ti_factory: Callable[[], RecordingTaskInstance] = RecordingTaskInstance,
    between: Callable[[int], None] | None = None,
) -> Tries:
    """Run up to ``tries`` tries (a fresh operator each, one state store across them), stopping
    after a success or an exception Airflow would not retry; ``between(n)`` runs before try n>1."""
    store = store if store is not None else InMemoryTaskStateStore()
    outcome = Tries()
    for number in range(1, tries + 1):
        if number > 1 and between is not None:
            between(number)
        ti = ti_factory()
        outcome.ti = ti
        try:
            outcome.results.append(run_task(make_operator(number), context_with(ti, store)))
            break
        except AirflowFailException as error:
            outcome.results.append(error)
            break
        except Exception as error:
            outcome.results.append(error)
    outcome.posts = emulator.control.count("submit", "POST")
    return outcome


def is_mp4(path: str | Path) -> bool:
    return Path(path).read_bytes()[4:8] == b"ftyp"


def migrated_airflow_home(home: Path) -> Path:
    """``home`` as a migrated SQLite Airflow home with an empty ``dags/`` folder."""
    (home / "dags").mkdir()
    subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        env=airflow_env(home),
        check=True,
        capture_output=True,
        timeout=240,
    )
    return home


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite Airflow home for ``dag.test()`` runs of DAG files written by tests."""
    return migrated_airflow_home(tmp_path_factory.mktemp("adversarial_airflow_home"))


def airflow_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "OPENROUTER_API_KEY"}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        }
    )
    env.update(extra or {})
    return env


def run_dag_file(
    airflow_home: Path, emulator: Any, source: str, name: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Write ``source`` as a DAG file and run it (its ``__main__`` calls ``dag.test()``)."""
    path = airflow_home / "dags" / f"{name}.py"
    path.write_text(source)
    connection = {"conn_type": "openrouter", "host": emulator.base_url, "password": emulator.api_key}
    env = airflow_env(
        airflow_home, {"AIRFLOW_CONN_OPENROUTER_DEFAULT": json.dumps(connection), **(extra_env or {})}
    )
    return subprocess.run(
        [sys.executable, str(path)], env=env, capture_output=True, text=True, timeout=240, check=False
    )


class Tmpfs:
    """A small tmpfs mounted for one test (needs root, as CI runs): a real disk to fill or to
    make read-only."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        self.size = size

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.path)], check=True, capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Any:
    """``tmpfs(size)`` mounts a tmpfs of that size under ``tmp_path``; unmounted after the test."""
    mounted: list[Path] = []

    def mount(size: str) -> Tmpfs:
        path = tmp_path / f"tmpfs{len(mounted)}"
        path.mkdir()
        run = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
        )
        if run.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"cannot mount a tmpfs under CI: {run.stderr.strip()}")
            pytest.skip(f"needs root to mount a tmpfs: {run.stderr.strip()}")
        mounted.append(path)
        return Tmpfs(path, size)

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
