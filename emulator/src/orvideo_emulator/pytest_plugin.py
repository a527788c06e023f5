"""pytest plugin: test your own Airflow DAGs against the emulator, offline.

Installed with ``orvideo-emulator`` (``pip install "airflow-provider-orvideo[testing]"``) and
loaded by pytest through the ``pytest11`` entry point. It imports neither Airflow nor the
provider: every DAG runs in a process of its own (``python -m orvideo_emulator.airflow_run``),
against a throw-away Airflow home, so a test can never touch the Airflow deployment the
developer's environment points at.

Fixtures:

``openrouter_emulator`` (:class:`Emulator`)
    A clean emulator for this test: the server is shared by the session and reset before each
    test. ``.control`` scripts it (``rate_limit``, ``fail_requests``, ``drop_connections``,
    ``slow_requests``, ``truncate_downloads``: for ``times`` requests or, with ``for_seconds``, for
    a time window; ``outage(seconds, kind="503" | "reset")`` for every endpoint at once;
    ``in_flight_budget_exhausted`` and ``weight_exceeds_budget``, OpenRouter's 402s of the in-flight
    budget on submit; ``set_budget(limit_usd, layer=..., spend_usd=..., reset_interval=...,
    resets_at=...)`` and ``clear_budgets()``, the key's budgets (spent by completed jobs; a spent
    one refuses submits with 403), ``expire_key_at``, all shown by ``GET /api/v1/key``;
    ``jobs_take``, ``jobs_end_as``, ...) and reads back the requests it saw, faulted ones included.
    In the test process, the connection (ini ``openrouter_conn_id``) points at it too.
``airflow_dag_runner`` (:class:`DagRunner`)
    ``.run(dag_id, conf=None, env=None)`` runs one DAG with ``dag.test()`` and returns a
    :class:`DagRunResult`: the run's and every task's state, every XCom, each failed try's
    exception (``failures``), where each task saved its videos (``videos``, wherever the DAG
    wrote them), the files written under ``output_dir`` (the DAG finds it in the environment
    variable ``ORVIDEO_OUTPUT_DIR``) and the emulator requests made during the run.
    ``assert_success()`` fails a test leading with the failed tries' exceptions.

ini options (``[tool.pytest.ini_options]`` or ``pytest.ini``):

``airflow_dags_folder`` (default ``dags``)
    The DAGs folder, relative to pytest's rootdir.
``openrouter_conn_id`` (default ``openrouter_default``)
    The connection the DAGs use; the runner defines it (``AIRFLOW_CONN_...``) for each run.
``openrouter_poll_scale`` (default ``0.01``)
    Poll delays of runs against the emulator are multiplied by this (Airflow setting
    ``[openrouter] loopback_poll_scale``; honoured only for a loopback host): 30 s becomes 0.3 s.
``openrouter_job_seconds`` (default ``0.5``)
    How long each emulated job renders (until a test says otherwise with ``jobs_take``).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orvideo_emulator.control import EmulatorControl
from orvideo_emulator.server import EmulatorServer

__all__ = ["DagRunResult", "DagRunner", "Emulator", "airflow_env", "migrate_airflow_home"]

RETRY_DELAY_SECONDS = "1"
"""``[core] default_task_retry_delay`` in a test run, instead of Airflow's 300 s."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "airflow_dags_folder", "DAGs folder for airflow_dag_runner (relative to rootdir)", default="dags"
    )
    parser.addini(
        "openrouter_conn_id", "connection id the DAGs use for OpenRouter", default="openrouter_default"
    )
    parser.addini("openrouter_poll_scale", "factor on poll delays against the emulator", default="0.01")
    parser.addini("openrouter_job_seconds", "how long each emulated job renders", default="0.5")


@dataclass(frozen=True)
class Emulator:
    """One test's emulator: where it is, the key it accepts, and its control client."""

    server: EmulatorServer
    control: EmulatorControl
    conn_id: str

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def api_key(self) -> str:
        return self.server.api_key

    def connection_json(self) -> str:
        """The ``openrouter`` connection pointing here, as ``AIRFLOW_CONN_...`` takes it."""
        return json.dumps({"conn_type": "openrouter", "host": self.base_url, "password": self.api_key})

    def connection_env(self) -> dict[str, str]:
        return {f"AIRFLOW_CONN_{self.conn_id.upper()}": self.connection_json()}


@dataclass(frozen=True)
class DagRunResult:
    """What one ``dag.test()`` run did."""

    dag_id: str
    run_id: str | None
    state: str | None
    """``success`` or ``failed`` (``None`` when the DAG could not be loaded)."""
    task_states: dict[str, str | None]
    """Task id (``task[2]`` for map index 2) -> state."""
    xcoms: dict[str, dict[str, Any]]
    """Task id (as in ``task_states``) -> XCom key -> value (JSON; other values as their repr)."""
    files: dict[Path, int]
    """Files created or changed under the runner's ``output_dir`` -> size in bytes."""
    requests: list[dict[str, Any]]
    """Requests the emulator received during the run (endpoint, method, body, status, ...)."""
    import_errors: dict[str, str]
    log: str = field(repr=False)
    """The run's stdout and stderr."""
    seconds: float
    failures: list[dict[str, Any]] = field(default_factory=list)
    """Each failed try, in order: ``task`` (as in ``task_states``), ``try_number``, ``exception``
    (the class's qualified name) and ``message``."""
    videos: dict[str, list[str]] = field(default_factory=dict)
    """Task id (as in ``task_states``) -> where its video(s) were saved (its ``output_paths``
    XCom), wherever the DAG wrote them: ``files`` sees only ``output_dir``."""

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        """One XCom value (``KeyError`` naming what exists when there is none)."""
        try:
            return self.xcoms[task_id][key]
        except KeyError:
            raise KeyError(f"no XCom {key!r} of {task_id!r}; XComs: {sorted(self.xcoms)}") from None

    def submitted(self) -> list[dict[str, Any]]:
        """The bodies of the video jobs submitted during the run (accepted or not)."""
        return [r["body"] for r in self.requests if r["endpoint"] == "submit" and r["method"] == "POST"]

    def failure_summary(self) -> str:
        """Why the run failed, cause first: each failed try's exception (class and message), then
        the task states and import errors, then the end of the log."""
        failed = {task: state for task, state in self.task_states.items() if state != "success"}
        lines = [f"DAG {self.dag_id} ended {self.state!r}."]
        if self.failures:
            lines.append("Failed tries (last first):")
            for failure in reversed(self.failures):
                name = (failure.get("exception") or "unknown").rsplit(".", 1)[-1]
                lines.append(
                    f"  {failure['task']} try {failure.get('try_number')}: {name}: {failure.get('message')}"
                )
        lines.append(f"Tasks not successful: {failed or 'none'}")
        lines.append(f"Import errors: {self.import_errors or 'none'}")
        lines.append(f"--- end of the run's log ---\n{self.log[-6000:]}")
        return "\n".join(lines)

    def assert_success(self) -> None:
        """Fail the test, leading with why: each failed try's exception, then the task states,
        the import errors and the end of the log."""
        if self.state == "success":
            return
        raise AssertionError(self.failure_summary())


class DagRunner:
    """Runs DAGs of the DAGs folder with ``dag.test()`` against the emulator, one process each."""

    def __init__(
        self,
        *,
        airflow_home: Path,
        dags_folder: Path,
        emulator: Emulator,
        output_dir: Path,
        poll_scale: str,
    ) -> None:
        self.airflow_home = airflow_home
        self.dags_folder = dags_folder
        self.emulator = emulator
        self.output_dir = output_dir
        """Exported to each run as ``ORVIDEO_OUTPUT_DIR``; files written under it are reported."""
        self.poll_scale = poll_scale

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a run: the developer's, minus every ``AIRFLOW*`` variable, plus the
        throw-away home, the DAGs folder, the connection, the poll scale and a 1 s retry delay."""
        env = airflow_env(self.airflow_home, self.dags_folder)
        env.update(self.emulator.connection_env())
        env["AIRFLOW__OPENROUTER__LOOPBACK_POLL_SCALE"] = self.poll_scale
        # Airflow's retry delay (5 minutes) shortened like the poll delays: a task retried in a
        # test run (video tasks retry by default) waits 1 s. A DAG's own retry_delay is kept.
        env["AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY"] = RETRY_DELAY_SECONDS
        env["ORVIDEO_OUTPUT_DIR"] = str(self.output_dir)
        env.update(extra or {})
        return env

    def run(
        self,
        dag_id: str,
        *,
        conf: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 300.0,
    ) -> DagRunResult:
        """Run ``dag_id`` once; extra environment variables for the DAG file in ``env``."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        before = _snapshot(self.output_dir)
        seen = len(self.emulator.control.requests())
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="orvideo-run-") as scratch:
            result_file = Path(scratch) / "result.json"
            process = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "orvideo_emulator.airflow_run",
                    dag_id,
                    "--result",
                    str(result_file),
                    "--conf",
                    json.dumps(dict(conf or {})),
                ],
                env=self.env(env),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            log = process.stdout + process.stderr
            if not result_file.exists():
                raise RuntimeError(
                    f"the run of {dag_id} exited {process.returncode} without a result:\n{log[-6000:]}"
                )
            outcome = json.loads(result_file.read_text())
        if outcome.get("error"):
            raise LookupError(f"{outcome['error']}; import errors: {outcome.get('import_errors') or 'none'}")
        after = _snapshot(self.output_dir)
        xcoms = outcome.get("xcoms", {})
        videos = {
            task: [str(path) for path in values["output_paths"]]
            for task, values in xcoms.items()
            if isinstance(values.get("output_paths"), list)
        }
        return DagRunResult(
            dag_id=dag_id,
            run_id=outcome.get("run_id"),
            state=outcome.get("state"),
            task_states=outcome.get("task_states", {}),
            xcoms=xcoms,
            files={path: size for path, (size, mtime) in after.items() if before.get(path) != (size, mtime)},
            requests=self.emulator.control.requests()[seen:],
            import_errors=outcome.get("import_errors", {}),
            log=log,
            seconds=time.monotonic() - started,
            failures=outcome.get("failures", []),
            videos=videos,
        )


def airflow_env(home: Path, dags_folder: Path) -> dict[str, str]:
    """The environment of a throw-away Airflow's process: this process's environment without any
    ``AIRFLOW*`` variable, plus SQLite in ``home``, no examples, DAGs unpaused at creation."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    return env | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }


def _snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    return {
        path: (stat.st_size, stat.st_mtime_ns)
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink()
        for stat in (path.stat(),)
    }


@pytest.fixture(scope="session")
def openrouter_emulator_server(pytestconfig: pytest.Config) -> Iterator[EmulatorServer]:
    """The session's emulator server (a fresh random API key each session)."""
    seconds = float(pytestconfig.getini("openrouter_job_seconds"))
    server = EmulatorServer(
        api_key=f"sk-or-emulator-{secrets.token_hex(12)}",
        pending_seconds=seconds * 0.4,
        in_progress_seconds=seconds * 0.6,
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openrouter_emulator(
    openrouter_emulator_server: EmulatorServer,
    pytestconfig: pytest.Config,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Emulator]:
    """A clean emulator for this test, also set as the connection in the test's environment, with
    a spend ledger of the test's own (the provider books every emulated job there, not in the
    developer's ``AIRFLOW_HOME``)."""
    monkeypatch.setenv("AIRFLOW__OPENROUTER__LEDGER_PATH", str(tmp_path / "orvideo_ledger.sqlite"))
    with EmulatorControl(openrouter_emulator_server.origin) as control:
        control.reset()
        emulator = Emulator(
            openrouter_emulator_server, control, str(pytestconfig.getini("openrouter_conn_id"))
        )
        for name, value in emulator.connection_env().items():
            monkeypatch.setenv(name, value)
        yield emulator


@pytest.fixture(scope="session")
def airflow_test_home(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    """A migrated throw-away Airflow home (SQLite), shared by the session's DAG runs."""
    return migrate_airflow_home(tmp_path_factory.mktemp("airflow_home"), _dags_folder(pytestconfig))


def migrate_airflow_home(home: Path, dags_folder: Path) -> Path:
    """Run ``airflow db migrate`` for a throw-away home (see :func:`airflow_env`); returns it."""
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=airflow_env(home, dags_folder),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{(migrate.stdout + migrate.stderr)[-6000:]}")
    return home


def _dags_folder(config: pytest.Config) -> Path:
    return (Path(config.rootpath) / str(config.getini("airflow_dags_folder"))).resolve()


@pytest.fixture
def airflow_dag_runner(
    airflow_test_home: Path, openrouter_emulator: Emulator, pytestconfig: pytest.Config, tmp_path: Path
) -> DagRunner:
    """Runs DAGs of the DAGs folder against this test's emulator (see :class:`DagRunner`)."""
    return DagRunner(
        airflow_home=airflow_test_home,
        dags_folder=_dags_folder(pytestconfig),
        emulator=openrouter_emulator,
        output_dir=tmp_path / "output",
        poll_scale=str(pytestconfig.getini("openrouter_poll_scale")),
    )
