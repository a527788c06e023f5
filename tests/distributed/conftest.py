"""Fixtures for the distributed system tests (``celery_stack.py``): one stack for the suite.

Every test under ``tests/distributed`` is marked ``distributed``. The suite runs on its own
(``make test-distributed``, called by ``make test``), never inside the ``-n 2`` unit run.

A stack costs 30-60 s to start, so every module of the suite shares one: the DAG files are the
``DAGS`` of every module with a selected test (file names must differ), each module's tests
start with ``emulator.reset()``, write their videos under their own run's directory, and leave
every component running (a test that kills one restarts it).

What the tests get from ``distributed_env``:

- a private PostgreSQL and a private Redis (``services.py``), a moto S3 server with a bucket,
  the OpenRouter emulator of the test session, and a shared output directory (the "shared disk"
  every worker and downstream task sees);
- a started ``CeleryStack`` whose triggerers and workers each carry an OpenRouter connection with
  their own ``app_title`` (``TITLES``), so that the emulator's request log says who sent what.

On failure the tails of every component log (postgres and redis included) and every task log
are printed, bypassing output capture. Every process is stopped by its pid and every temporary
directory is removed at the end, also on failure (set ``ORVIDEO_KEEP_DISTRIBUTED_TMP=1`` to keep
them for a post-mortem). Measured figures (``Figures``) are printed in the terminal summary.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from orvideo_emulator import EmulatorControl, EmulatorServer

from tests.conftest import EMULATOR_API_KEY
from tests.distributed.celery_stack import TRIGGERERS, WORKERS, CeleryStack
from tests.distributed.services import PrivatePostgres, PrivateRedis, postgres_bin_dir, redis_server_path
from tests.s3 import CONN_ID, S3, aws_connection, new_bucket
from tests.system.conftest import PHASE_REPORTS, _print_uncaptured, item_failed

_HERE = Path(__file__).parent.resolve()
#: When pytest imported this conftest (collection of the suite starts): the suite's wall time runs from here.
_IMPORTED_AT = time.monotonic()

#: ``X-OpenRouter-Title`` sent by each process (connection extra ``app_title``).
TITLES: dict[str, str] = {
    **{name: f"orvideo-{name}" for name in (*TRIGGERERS, *WORKERS)},
    "other": "orvideo-control-plane",  # api-server, scheduler, dag-processor
}
TITLE_HEADER = "x-openrouter-title"  # the emulator logs header names in lower case

#: Figures measured by the tests, printed at the end of the run.
FIGURES: pytest.StashKey[Figures] = pytest.StashKey()


@dataclass
class Figures:
    """What the suite measured (quoted in session notes); ``None`` until measured."""

    task_instances: int = 0
    renders: int = 0
    posts: int = 0
    takeover_seconds: float | None = None
    worker_retry_seconds: float | None = None
    wall_seconds: float | None = None
    startup_seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        def fmt(value: float | None) -> str:
            return "not measured" if value is None else f"{value:.1f} s"

        return [
            f"task instances (all succeeded): {self.task_instances} ({self.renders} video renders)",
            f"submit POSTs:                   {self.posts}",
            f"triggerer takeover after kill -9 (to first poll by the survivor): {fmt(self.takeover_seconds)}",
            f"worker kill -9 to the retry's download request: {fmt(self.worker_retry_seconds)}",
            f"stack start-up (postgres, redis, db migrate, 7 processes healthy): {fmt(self.startup_seconds)}",
            f"suite wall time (collection, start-up and teardown included): {fmt(self.wall_seconds)}",
            *self.notes,
        ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.distributed)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Same as tests/system/conftest.py (whose hooks only see tests/system): lets a fixture's
    teardown know whether a test of its module failed."""
    report: pytest.TestReport = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    figures = config.stash.get(FIGURES, None)
    if figures is not None:
        figures.wall_seconds = time.monotonic() - _IMPORTED_AT
        terminalreporter.section("distributed suite figures")
        for line in figures.lines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> Figures:
    return request.config.stash.setdefault(FIGURES, Figures())


def _connection(emulator: EmulatorServer, title: str) -> str:
    return json.dumps(
        {
            "conn_type": "openrouter",
            "host": emulator.base_url,
            "password": EMULATOR_API_KEY,
            "extra": {"app_title": title},
        }
    )


@dataclass(frozen=True)
class DistributedEnv:
    """What a distributed test works with."""

    stack: CeleryStack
    emulator: EmulatorControl
    s3: S3
    output_dir: Path
    figures: Figures

    def title_of(self, entry: dict[str, Any]) -> str:
        """The process (``triggerer-1``, ``worker-2``, ``other``) that sent a logged request."""
        title = entry["headers"].get(TITLE_HEADER, "")
        for name, value in TITLES.items():
            if value == title:
                return name
        return f"<unknown title {title!r}>"


def _suite_items(session: pytest.Session) -> list[pytest.Item]:
    return [item for item in session.items if _HERE in Path(item.path).resolve().parents]


def _suite_modules(session: pytest.Session) -> list[Any]:
    """The test modules of the suite with a selected test, in collection order."""
    modules: list[Any] = []
    for item in _suite_items(session):
        module = getattr(item, "module", None)
        if module is not None and module not in modules:
            modules.append(module)
    return modules


@pytest.fixture(scope="session")
def distributed_env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    emulator_server: EmulatorServer,
    s3_endpoint: str,
    figures: Figures,
) -> Iterator[DistributedEnv]:
    """Services, S3 bucket, shared output dir and a started ``CeleryStack`` for the suite.

    The DAG files come from the ``DAGS`` (``{file name: source}``) of every module of the suite
    with a selected test; ``DAG_IDS`` say which DAGs to wait for.
    """
    if postgres_bin_dir() is None or redis_server_path() is None:
        # CI installs both (.ci/run); elsewhere: apt-get install postgresql redis-server
        pytest.fail("the distributed suite needs PostgreSQL and redis-server installed (see .ci/run)")
    t0 = time.monotonic()
    base = tmp_path_factory.mktemp("distributed")
    home = base / "stack"
    logs = home / "logs"
    output_dir = base / "shared-disk"
    output_dir.mkdir()
    (home / "dags").mkdir(parents=True)
    modules = _suite_modules(request.session)
    for module in modules:
        for file_name, source in getattr(module, "DAGS", {}).items():
            path = home / "dags" / file_name
            if path.exists():
                raise ValueError(f"two modules of the distributed suite define the DAG file {file_name}")
            path.write_text(source, encoding="utf-8")

    s3 = new_bucket(s3_endpoint)
    env = {
        "AIRFLOW_CONN_OPENROUTER_DEFAULT": _connection(emulator_server, TITLES["other"]),
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(aws_connection(s3_endpoint)),
        "ORVIDEO_OUTPUT_DIR": str(output_dir),
        "ORVIDEO_S3_BUCKET": s3.bucket,
    }
    component_envs = {
        name: {"AIRFLOW_CONN_OPENROUTER_DEFAULT": _connection(emulator_server, TITLES[name])}
        for name in (*TRIGGERERS, *WORKERS)
    }
    postgres = PrivatePostgres(logs)
    redis = PrivateRedis(home / "redis", logs)
    stack: CeleryStack | None = None
    control = EmulatorControl(emulator_server.origin)
    try:
        postgres.start()
        redis.start()
        stack = CeleryStack(
            home, home / "dags", postgres=postgres, redis=redis, env=env, component_envs=component_envs
        )
        stack.start(health_timeout=120)
        for module in modules:
            for dag_id in getattr(module, "DAG_IDS", ()):
                stack.wait_for_dag(dag_id, timeout=90)
        figures.startup_seconds = time.monotonic() - t0
        yield DistributedEnv(stack=stack, emulator=control, s3=s3, output_dir=output_dir, figures=figures)
    finally:
        failed = any(item_failed(item) for item in _suite_items(request.session))
        try:
            if failed and stack is not None:
                _print_uncaptured(
                    request.config,
                    f"\n========== CeleryStack {stack.home} (api {stack.base_url}) ==========\n"
                    + stack.all_log_tails(),
                )
        finally:
            try:
                if stack is not None:
                    stack.stop()
            finally:
                redis.stop()
                postgres.stop()
                control.close()
                if not os.environ.get("ORVIDEO_KEEP_DISTRIBUTED_TMP"):
                    shutil.rmtree(base, ignore_errors=True)
