"""Fixtures for system tests that run a real Airflow stack (see ``stack.py``).

Every test under ``tests/system`` is marked ``system`` (deselect with ``-m "not system"``).

Usage::

    def test_something(airflow_stack_factory, tmp_path):
        stack = airflow_stack_factory(dags={"my_dag.py": DAG_SOURCE}, env={"AIRFLOW_CONN_X": "..."})
        stack.wait_for_dag("my_dag")
        run_id = stack.trigger("my_dag")
        ...

``module_airflow_stack_factory`` is the same with module scope, to share one stack (~12 s of
start-up, ~3 s of teardown) between the tests of a module. On failure, the tails of all component logs and task
logs are printed straight to the terminal (output capture bypassed).
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path

import pytest

from tests.system.stack import AirflowStack

_HERE = Path(__file__).parent.resolve()

#: Reports of each phase ("setup", "call", "teardown") of a test item.
PHASE_REPORTS: pytest.StashKey[dict[str, pytest.TestReport]] = pytest.StashKey()
#: Files written by tests for people to look at (screenshots); listed in the terminal summary.
ARTIFACTS: pytest.StashKey[list[Path]] = pytest.StashKey()


def record_artifact(config: pytest.Config, path: Path) -> None:
    """List ``path`` under "test artifacts" at the end of the run (shown whatever ``-r`` says)."""
    config.stash.setdefault(ARTIFACTS, []).append(Path(path).resolve())


ARTIFACTS_DIR = _HERE.parents[1] / "test-artifacts"
#: When the session started: with ``-n 2`` the tests record artifacts in worker processes, so the
#: controller's summary lists what the artifacts folder got since then instead.
SESSION_START: pytest.StashKey[float] = pytest.StashKey()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[SESSION_START] = time.time()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    started = config.stash.get(SESSION_START, time.time())
    written = (
        [path.resolve() for path in ARTIFACTS_DIR.iterdir() if path.stat().st_mtime >= started]
        if ARTIFACTS_DIR.is_dir()
        else []
    )
    recorded: list[Path] = config.stash.get(ARTIFACTS, [])
    artifacts = sorted(set(recorded) | set(written))
    if artifacts:
        terminalreporter.section("test artifacts")
        for path in artifacts:
            terminalreporter.write_line(str(path))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.system)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report


def item_failed(item: pytest.Item) -> bool:
    """Whether a phase of ``item`` that has run so far failed (usable in fixture teardown)."""
    reports = item.stash.get(PHASE_REPORTS, {})
    return any(r.failed for r in reports.values())


class StackFactory:
    """Builds, starts and finally stops ``AirflowStack`` instances under one base directory."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.stacks: list[AirflowStack] = []

    def __call__(
        self,
        dags_folder: Path | None = None,
        env: Mapping[str, str] | None = None,
        *,
        dags: Mapping[str, str] | None = None,
        name: str = "stack",
        start: bool = True,
    ) -> AirflowStack:
        """Create (and by default start) a stack.

        :param dags_folder: an existing dags folder; default: ``<stack home>/dags``.
        :param env: extra environment for every component.
        :param dags: ``{file name: source}`` written into the dags folder before start.
        :param name: prefix of the stack's home directory.
        :param start: start the stack before returning it.
        """
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        home = self.base / f"{safe}-{len(self.stacks)}"
        home.mkdir(parents=True)
        folder = dags_folder if dags_folder is not None else home / "dags"
        folder.mkdir(parents=True, exist_ok=True)
        for file_name, source in (dags or {}).items():
            (folder / file_name).write_text(source, encoding="utf-8")
        stack = AirflowStack(home=home, dags_folder=folder, env=env)
        self.stacks.append(stack)
        if start:
            stack.start()
        return stack

    def report(self) -> str:
        return "\n".join(
            f"\n========== Airflow stack {stack.home} (api {stack.base_url}) ==========\n"
            + stack.all_log_tails()
            for stack in self.stacks
        )

    def stop_all(self) -> None:
        for stack in reversed(self.stacks):
            stack.stop()


def _print_uncaptured(config: pytest.Config, text: str) -> None:
    """Print even while pytest captures output (teardown output of a failed test is not shown)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        with capman.global_and_fixture_disabled():
            print(text, flush=True)
    else:
        print(text, flush=True)


def _run_factory(
    request: pytest.FixtureRequest, base: Path, failed_items: list[pytest.Item]
) -> Iterator[StackFactory]:
    factory = StackFactory(base)
    try:
        yield factory
    finally:
        try:
            if factory.stacks and any(item_failed(item) for item in failed_items):
                _print_uncaptured(request.config, factory.report())
        finally:
            factory.stop_all()


@pytest.fixture
def airflow_stack_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackFactory]:
    """A factory of started stacks, all stopped at the end of the test."""
    base = tmp_path_factory.mktemp("airflow_stack")
    yield from _run_factory(request, base, [request.node])


@pytest.fixture(scope="module")
def module_airflow_stack_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackFactory]:
    """Like ``airflow_stack_factory``, but the stacks live until the end of the module."""
    base = tmp_path_factory.mktemp("airflow_stack_module")
    module_items = [
        item for item in request.session.items if item.nodeid.startswith(f"{request.node.nodeid}::")
    ]
    yield from _run_factory(request, base, module_items)
