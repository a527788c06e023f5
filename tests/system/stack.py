"""A real multi-process Airflow 3.3 stack for system tests.

``AirflowStack`` runs ``airflow db migrate`` and then the four components (api-server, scheduler,
dag-processor, triggerer) as separate processes on SQLite with the LocalExecutor, all under one
temporary directory, and drives them over the public REST API.

Layout under ``home``::

    home/
      airflow_home/          AIRFLOW_HOME (airflow.cfg, airflow.db, task logs under logs/)
      logs/<component>.out   stdout+stderr of each component (and db-migrate.out)
      logs/harness.out       what the harness did (spawn, kill, terminate, stop) and when

Each component is started in its own session / process group, so it can be stopped or killed
without touching anything else on the machine. Processes are only ever signalled by the ids this
class recorded; there is no kill by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

import httpx
import psutil
from cryptography.fernet import Fernet

COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")

#: Task-instance states after which a task instance does not change by itself.
TERMINAL_TI_STATES: frozenset[str] = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
#: Dag-run states after which a run does not change by itself.
TERMINAL_RUN_STATES: frozenset[str] = frozenset({"success", "failed"})


class StackError(RuntimeError):
    """Something went wrong with the stack; the message carries the component log tails."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def airflow_executable() -> Path:
    """The ``airflow`` console script of the interpreter running the tests."""
    path = Path(sys.executable).parent / "airflow"
    if not path.exists():
        raise StackError(f"no airflow executable next to {sys.executable}")
    return path


def _is_test_polling(line: str) -> bool:
    """An api-server access-log line caused by the test polling the public API (noise in tails)."""
    return "[http.access]" in line and ("path=/api/v2/" in line or "path=/auth/token" in line)


def _tail(path: Path, lines: int, skip_polling: bool = False) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"<{path} does not exist>"
    kept = [line for line in text.splitlines() if not (skip_polling and _is_test_polling(line))]
    return "\n".join(kept[-lines:])


def _q(part: str) -> str:
    """Quote one path segment (run ids contain ``:`` and ``+``)."""
    return quote(part, safe="")


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def become_child_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    When a component is SIGKILLed, its children are orphaned; normally PID 1 adopts and reaps them,
    but in some containers PID 1 reaps late or never, leaving ``<defunct>`` ``airflow`` entries.
    As subreaper, this process adopts them and ``stop()`` reaps them itself.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(36, 1, 0, 0, 0) == 0)  # 36 = PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and all its descendants (snapshot; safe against pid reuse later)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class AirflowStack:
    """A real Airflow stack (api-server, scheduler, dag-processor, triggerer) under ``home``.

    :param home: a directory owned by this stack (created if missing).
    :param dags_folder: the folder the dag-processor parses.
    :param env: extra environment variables for every component, applied last
        (e.g. ``AIRFLOW_CONN_*``, ``PYTHONPATH``, config overrides).

    Subclasses (``tests/distributed/celery_stack.py``) change the executor and database by
    overriding ``_build_env``, run more processes by overriding ``components`` and ``_command``,
    and give one component its own environment through ``component_env``.
    """

    #: The processes ``start()`` spawns, in order; each is a name for ``kill``/``restart``/logs.
    components: tuple[str, ...] = COMPONENTS

    def __init__(self, home: Path, dags_folder: Path, env: Mapping[str, str] | None = None) -> None:
        self.home: Path = Path(home).resolve()
        self.dags_folder: Path = Path(dags_folder).resolve()
        self.airflow_home: Path = self.home / "airflow_home"
        self.log_dir: Path = self.home / "logs"
        self.airflow: Path = airflow_executable()
        self.port: int = free_port()
        self.base_url: str = f"http://127.0.0.1:{self.port}"
        self.fernet_key: str = Fernet.generate_key().decode()
        self.extra_env: dict[str, str] = dict(env or {})
        self.env: dict[str, str] = self._build_env()
        #: Seconds spent in the main steps of ``start()`` (db_migrate, healthy, ...).
        self.timings: dict[str, float] = {}

        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._log_files: dict[str, IO[bytes]] = {}
        # Components killed on purpose: not an error if they are down.
        self._expected_down: set[str] = set()
        # Descendants of killed components (e.g. task runners in their own process groups) that
        # may have been orphaned; reaped in stop().
        self._orphans: list[psutil.Process] = []
        self._token: str | None = None
        #: (username, password) of an admin when the stack runs without all-admins mode.
        self.credentials: tuple[str, str] | None = None
        self._client: httpx.Client | None = None

    # ------------------------------------------------------------------ environment

    def _build_env(self) -> dict[str, str]:
        # Nothing Airflow-related from the parent (a developer's AIRFLOW_HOME, AIRFLOW__* overrides,
        # AIRFLOW_CONN_*, unit-test mode, ...) may leak into the stack: keep PATH, HOME, locale etc.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.upper().startswith(("AIRFLOW", "_AIRFLOW"))
        }
        env.update(
            {
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                # With the fork start method the LocalExecutor forks `parallelism` workers up front
                # (default 32 processes); a test needs a few.
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.airflow_home / 'airflow.db'}",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                # Fixed per stack so that every component agrees even if airflow.cfg is (re)written.
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                # The scheduler (LocalExecutor) and the triggerer each serve logs on a fixed port by
                # default (8793 / 8794): two stacks on one machine would collide.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                # The task supervisor notices its task process has exited only when its select()
                # times out, after up to min_heartbeat_interval (default 5 s). For a task that defers,
                # the executor's "success" event for that try reaches the scheduler that much later;
                # if the trigger has fired and the TI is already queued again by then, Airflow 3.3.2
                # fails the TI ("state mismatch", apache/airflow#67287, #72716). 1 s shrinks the window.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> AirflowStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, health_timeout: float = 90.0) -> None:
        """Migrate the database, start all components and wait until the API is healthy."""
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        become_child_subreaper()
        try:
            t0 = time.monotonic()
            self._db_migrate()
            self.timings["db_migrate"] = time.monotonic() - t0
            t1 = time.monotonic()
            for name in self.components:
                self._spawn(name)
            self.wait_healthy(timeout=health_timeout)
            self.timings["healthy"] = time.monotonic() - t1
            self._note(f"started on {self.base_url}: {self.timings}")
        except BaseException:
            self.stop()
            raise

    def _note(self, message: str) -> None:
        """Append a line to ``logs/harness.out`` (what the harness did, and when)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / "harness.out").open("a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {message}\n")

    def _db_migrate(self) -> None:
        log = self.log_dir / "db-migrate.out"
        with log.open("ab") as out:
            result = subprocess.run(
                [str(self.airflow), "db", "migrate"],
                env=self.env,
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=300,
                check=False,
            )
        if result.returncode != 0:
            raise StackError(f"airflow db migrate exited {result.returncode}:\n{_tail(log, 60)}")

    def _command(self, name: str) -> list[str]:
        if name == "api-server":
            return [str(self.airflow), "api-server", "--host", "127.0.0.1", "--port", str(self.port)]
        if name in self.components:
            return [str(self.airflow), name]
        raise KeyError(f"unknown component {name!r}; expected one of {self.components}")

    def component_env(self, name: str) -> dict[str, str]:
        """The environment component ``name`` runs with (the same for all of them here)."""
        return self.env

    def _spawn(self, name: str) -> None:
        cmd = self._command(name)
        old = self._log_files.pop(name, None)
        if old is not None:
            old.close()
        out = (self.log_dir / f"{name}.out").open("ab")
        out.write(f"\n===== {time.strftime('%H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        out.flush()
        self._log_files[name] = out
        self._procs[name] = subprocess.Popen(
            cmd,
            env=self.component_env(name),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._expected_down.discard(name)
        self._note(f"spawned {name}: pid {self._procs[name].pid}")

    def stop(self, timeout: float = 20.0, nudge_after: float = 3.0) -> None:
        """Stop all components: SIGTERM, wait up to ``timeout`` s, then SIGKILL the process groups.

        - SIGTERM goes to each component's main process (the leader of its process group), which
          shuts its own children down; the LocalExecutor workers inherit the scheduler's SIGTERM
          handler and ignore a group-wide SIGTERM anyway.
        - After ``nudge_after`` s, components still running are nudged (see ``_nudge``): the
          scheduler's idle LocalExecutor workers are SIGKILLed (Airflow 3.3.2's
          ``LocalExecutor.end()`` sometimes waits forever to join an idle worker that never got
          its shutdown message), the triggerer's group is SIGKILLed (its main process can sit up
          to 10 s in a select() after its trigger runner has already exited), and the others get
          a second SIGTERM, which Airflow components take as "stop waiting".
        - After ``timeout`` s, the whole group gets SIGKILL, and so does, by pid, any descendant
          that left the group (Airflow puts each task runner in a group of its own) or was
          orphaned by ``kill()``.
        """
        procs = dict(self._procs)
        trees = {name: _tree(proc.pid) for name, proc in procs.items() if proc.poll() is None}
        t0 = time.monotonic()
        for name in trees:
            with contextlib.suppress(ProcessLookupError):
                procs[name].send_signal(signal.SIGTERM)
        deadline = t0 + timeout
        pending = self._await_exit(
            {name: procs[name] for name in trees}, t0, deadline, nudge_after, resend_sigterm=True
        )
        leftovers = [p for tree in trees.values() for p in tree] + self._orphans
        # Give children of an exited leader the rest of the grace period too.
        while any(_alive(p) for p in leftovers) and time.monotonic() < deadline:
            time.sleep(0.1)
        for proc in procs.values():
            self._signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for p in leftovers:
            if _alive(p):
                with contextlib.suppress(psutil.Error):
                    p.kill()
        psutil.wait_procs([p for p in leftovers if _alive(p)], timeout=5)
        # Reap the orphans this process adopted as child subreaper: no <defunct> entries left.
        me = os.getpid()
        adopted = []
        for p in leftovers:
            with contextlib.suppress(psutil.Error):
                if p.ppid() == me:
                    adopted.append(p)
        psutil.wait_procs(adopted, timeout=5)
        if procs:
            self.timings["stop"] = time.monotonic() - t0
            stop_times = {k: round(v, 2) for k, v in self.timings.items() if k.startswith("stop")}
            self._note(f"stopped; still running after grace period: {sorted(pending)}; {stop_times}")
        self._orphans.clear()
        self._procs.clear()
        for out in self._log_files.values():
            out.close()
        self._log_files.clear()
        if self._client is not None:
            self._client.close()
            self._client = None
        self._token = None

    def _await_exit(
        self,
        procs: Mapping[str, subprocess.Popen[bytes]],
        t0: float,
        deadline: float,
        nudge_after: float | None,
        resend_sigterm: bool,
    ) -> dict[str, subprocess.Popen[bytes]]:
        """Wait until ``deadline`` for ``procs`` to exit, nudging them after ``nudge_after`` s.

        Returns the ones still running; records ``stop:<name>`` timings.
        """
        pending = dict(procs)
        nudged: set[str] = set()
        while pending and time.monotonic() < deadline:
            for name, proc in list(pending.items()):
                if proc.poll() is not None:
                    self.timings[f"stop:{name}"] = time.monotonic() - t0
                    del pending[name]
                elif nudge_after is not None and name not in nudged and time.monotonic() - t0 > nudge_after:
                    nudged.add(name)
                    self._nudge(name, proc, resend_sigterm)
            time.sleep(0.05)
        return pending

    def _nudge(self, name: str, proc: subprocess.Popen[bytes], resend_sigterm: bool) -> None:
        """Help a component that is slow to exit after SIGTERM (see ``stop()``)."""
        if name == "scheduler":
            workers = []
            for child in _tree(proc.pid)[1:]:
                with contextlib.suppress(psutil.Error):
                    # setproctitle: "airflow worker -- LocalExecutor: <idle>" or ": <ti id>"
                    title = " ".join(child.cmdline())
                    if "LocalExecutor" in title:
                        workers.append((child, "<idle>" in title))
            # Only when no task is running: a busy worker is a legitimate reason to wait.
            if workers and all(idle for _, idle in workers):
                self._note(f"scheduler still up after SIGTERM: SIGKILL {len(workers)} idle executor workers")
                for child, _ in workers:
                    with contextlib.suppress(psutil.Error):
                        child.kill()
        elif name.startswith("triggerer") and resend_sigterm:
            # The triggerer's main process waits in select() with a fixed 10 s escalation delay for
            # its trigger-runner subprocess, and often notices the runner's exit only when that
            # select times out (the runner is already a zombie). A second SIGTERM only shortens that
            # to ~5 s. Nothing is observed after stop(): SIGKILL the group.
            self._note(f"{name} still up after SIGTERM: SIGKILL its process group")
            self._signal_group(proc, signal.SIGKILL)
        elif resend_sigterm:
            self._note(f"{name} still up after SIGTERM: SIGTERM again")
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # start_new_session=True: the component's pgid is its own pid. The group may outlive the
        # leader (children of an exited leader), so signal it even if the leader is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    # ------------------------------------------------------------------ components

    def component_pid(self, name: str) -> int:
        """The pid (= process group id) of the current process of component ``name``."""
        return self._proc(name).pid

    def is_running(self, name: str) -> bool:
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def _proc(self, name: str) -> subprocess.Popen[bytes]:
        if name not in self._procs:
            raise KeyError(f"component {name!r} is not started; known: {sorted(self._procs)}")
        return self._procs[name]

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL, wait: float = 20.0) -> int | None:
        """Send ``sig`` to component ``name``'s own process group and wait up to ``wait`` s for it.

        Returns the exit code (``None`` if it is still running after ``wait``). The component is
        then expected to be down: the ``wait_for_*`` helpers do not complain about it.
        """
        proc = self._proc(name)
        self._expected_down.add(name)
        # Task runners live in their own process groups; remember them so stop() can reap them.
        self._orphans.extend(_tree(proc.pid)[1:])
        self._note(f"kill {name} (pid {proc.pid}) with {sig.name}")
        self._signal_group(proc, sig)
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, name: str, timeout: float = 20.0) -> int | None:
        """Gracefully stop component ``name``: SIGTERM to its main process, SIGKILL to its group
        after ``timeout`` s. Returns the exit code. The component is then expected to be down.

        Unlike ``stop()`` there is no second SIGTERM (so a triggerer gets its full graceful
        shutdown, trigger ``cleanup()`` included); a scheduler stuck joining idle executor workers
        is still helped after 3 s.
        """
        proc = self._proc(name)
        self._expected_down.add(name)
        self._orphans.extend(_tree(proc.pid)[1:])
        self._note(f"terminate {name} (pid {proc.pid})")
        t0 = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        if self._await_exit({name: proc}, t0, t0 + timeout, 3.0, resend_sigterm=False):
            return self.kill(name, signal.SIGKILL, wait=10)
        return proc.returncode

    def restart(self, name: str, stop_timeout: float = 20.0) -> int:
        """Start a fresh process of component ``name`` (log appended); returns its pid.

        A still-running process of that component is first stopped with ``terminate()``.
        """
        if self.is_running(name):
            self.terminate(name, timeout=stop_timeout)
        self._spawn(name)
        if name == "api-server":
            self.wait_healthy()
        return self.component_pid(name)

    def check_components(self) -> None:
        """Raise ``StackError`` if a component that should be running has exited."""
        for name, proc in self._procs.items():
            if name in self._expected_down:
                continue
            code = proc.poll()
            if code is not None:
                raise StackError(
                    f"component {name} (pid {proc.pid}) exited with {code}\n"
                    f"--- {name} log tail ---\n{self.log_tail(name)}"
                )

    # ------------------------------------------------------------------ logs

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.out"

    def log_tail(self, name: str, lines: int = 60, skip_polling: bool = True) -> str:
        """The last ``lines`` lines of component ``name``'s output file.

        With ``skip_polling`` the api-server's access-log lines for ``/api/v2/...`` and
        ``/auth/token`` (mostly this harness polling) are left out; ``/execution/...`` calls from
        workers and the triggerer are kept.
        """
        return _tail(self.log_path(name), lines, skip_polling)

    def all_log_tails(self, lines: int = 60, task_logs: bool = True) -> str:
        """Tails of every component log and (optionally) of every task log file."""
        parts = [
            f"----- {name} ({self.log_path(name)}) -----\n{self.log_tail(name, lines)}"
            for name in ("harness", "db-migrate", *self.components)
            if self.log_path(name).exists()
        ]
        if task_logs:
            for path in sorted(self.airflow_home.glob("logs/dag_id=*/**/*.log")):
                parts.append(
                    f"----- task log {path.relative_to(self.airflow_home)} -----\n{_tail(path, lines)}"
                )
        return "\n".join(parts)

    # ------------------------------------------------------------------ REST

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(15.0))
        return self._client

    def health(self) -> dict[str, Any] | None:
        """``GET /api/v2/monitor/health`` as JSON, or ``None`` when the API is not answering 200."""
        try:
            response = self.client.get("/api/v2/monitor/health", timeout=5.0)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body

    def wait_healthy(self, timeout: float = 90.0) -> dict[str, Any]:
        """Wait until the health endpoint answers 200, failing early if a component exits."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_components()
            body = self.health()
            if body is not None:
                return body
            if time.monotonic() > deadline:
                raise StackError(
                    f"api-server not healthy on {self.base_url} after {timeout:.0f} s\n"
                    + self.all_log_tails(task_logs=False)
                )
            time.sleep(0.3)

    def login(self, username: str, password: str) -> str:
        """A JWT for a user of the simple auth manager (``POST /auth/token``)."""
        response = self.client.post("/auth/token", json={"username": username, "password": password})
        if response.status_code not in (200, 201):
            raise StackError(f"POST /auth/token as {username} -> {response.status_code}: {response.text}")
        return str(response.json()["access_token"])

    def token(self) -> str:
        """A JWT from ``GET /auth/token`` (all-admins mode, no credentials), or for
        :attr:`credentials` when set; cached."""
        if self._token is None and self.credentials is not None:
            self._token = self.login(*self.credentials)
        if self._token is None:
            response = self.client.get("/auth/token")
            if response.status_code not in (200, 201):
                raise StackError(f"GET /auth/token -> {response.status_code}: {response.text}")
            self._token = str(response.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the REST API with the bearer token (re-fetched once on 401)."""
        extra_headers: dict[str, str] = dict(kwargs.pop("headers", None) or {})
        response = self._request(method, path, extra_headers, kwargs)
        if response.status_code == 401:
            self._token = None
            response = self._request(method, path, extra_headers, kwargs)
        return response

    def _request(
        self, method: str, path: str, extra_headers: dict[str, str], kwargs: dict[str, Any]
    ) -> httpx.Response:
        headers = {**extra_headers, "Authorization": f"Bearer {self.token()}"}
        return self.client.request(method, path, headers=headers, **kwargs)

    def _api_json(self, method: str, path: str, ok: Iterable[int] = (200,), **kwargs: Any) -> Any:
        response = self.api(method, path, **kwargs)
        if response.status_code not in set(ok):
            raise StackError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def import_errors(self) -> list[dict[str, Any]]:
        body = self._api_json("GET", "/api/v2/importErrors")
        errors: list[dict[str, Any]] = body.get("import_errors", [])
        return errors

    def wait_for_dag(self, dag_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until ``dag_id`` is parsed and served by the API; returns the DAG JSON.

        Fails early when the API reports import errors.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.check_components()
            response = self.api("GET", f"/api/v2/dags/{_q(dag_id)}")
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
            errors = self.import_errors()
            if errors:
                details = "\n".join(f"{e.get('filename')}:\n{e.get('stack_trace')}" for e in errors)
                raise StackError(f"import errors while waiting for DAG {dag_id!r}:\n{details}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"DAG {dag_id!r} not available after {timeout:.0f} s "
                    f"(last status {response.status_code}). Note: the dag-processor skips files "
                    "that do not contain both 'airflow' and 'dag' (dag_discovery_safe_mode).\n"
                    + self.all_log_tails(task_logs=False)
                )
            time.sleep(0.5)

    def add_connection(
        self, connection_id: str, conn_type: str, *, extra: Mapping[str, Any] | None = None, **fields: Any
    ) -> None:
        """Store a connection in the metadata database over REST (``fields``: host, password, ...),
        as a platform engineer would: every component then reads it from there."""
        body = {"connection_id": connection_id, "conn_type": conn_type, **fields}
        if extra is not None:
            body["extra"] = json.dumps(dict(extra))
        self._api_json("POST", "/api/v2/connections", ok=(201,), json=body)

    def unpause(self, dag_id: str) -> None:
        self._api_json("PATCH", f"/api/v2/dags/{_q(dag_id)}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Unpause ``dag_id`` and create a manual run over REST; returns its ``dag_run_id``."""
        self.unpause(dag_id)
        body = self._api_json(
            "POST",
            f"/api/v2/dags/{_q(dag_id)}/dagRuns",
            json={"logical_date": None, "conf": dict(conf or {})},
        )
        return str(body["dag_run_id"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
        """The task instance JSON, or ``None`` while it does not exist yet."""
        response = self.api(
            "GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise StackError(f"GET task instance -> {response.status_code}: {response.text}")
        body: dict[str, Any] = response.json()
        return body

    def clear_task(self, dag_id: str, run_id: str, task_id: str) -> None:
        """Clear one task instance over REST (as "Clear" in the UI does): it runs again as a new try."""
        self._api_json(
            "POST",
            f"/api/v2/dags/{_q(dag_id)}/clearTaskInstances",
            json={
                "dag_run_id": run_id,
                "task_ids": [task_id],
                "dry_run": False,
                "only_failed": False,
                "reset_dag_runs": True,  # the run goes back to queued, so the scheduler runs the task
            },
        )

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._api_json("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")
        return body

    def wait_for_task_state(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        target_states: set[str] | frozenset[str],
        timeout: float = 120.0,
        interval: float = 0.3,
    ) -> list[str]:
        """Poll the task instance until its state is in ``target_states``.

        Returns the states observed, in order, with consecutive repeats collapsed, e.g.
        ``["queued", "running", "deferred", "scheduled", "queued", "running", "success"]``.
        A state of ``null`` (task instance created, not yet scheduled) is not recorded.
        Raises ``StackError`` (with the sequence and the log tails) on timeout, when the task
        instance reaches a terminal state that is not a target, or when a component dies.
        """
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            ti = self.task_instance(dag_id, run_id, task_id)
            state = ti.get("state") if ti else None
            if state and (not seen or seen[-1] != state):
                seen.append(state)
            if state in target_states:
                return seen
            problem: str | None = None
            if state in TERMINAL_TI_STATES:
                problem = f"reached terminal state {state!r}"
            elif time.monotonic() > deadline:
                problem = f"timed out after {timeout:.0f} s"
            else:
                try:
                    self.check_components()
                except StackError as exc:
                    problem = str(exc)
            if problem:
                raise StackError(
                    f"task {dag_id}.{task_id} (run {run_id}) never reached {sorted(target_states)}: "
                    f"{problem}; observed states: {seen}\n" + self.all_log_tails()
                )
            time.sleep(interval)

    def wait_for_run_state(
        self,
        dag_id: str,
        run_id: str,
        states: set[str] | frozenset[str],
        timeout: float = 120.0,
        interval: float = 0.5,
    ) -> str:
        """Poll the dag run until its state is in ``states``; returns that state.

        Raises ``StackError`` on timeout, on a terminal state that is not wanted, or when a
        component dies.
        """
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            state = str(self.dag_run(dag_id, run_id).get("state"))
            if not seen or seen[-1] != state:
                seen.append(state)
            if state in states:
                return state
            problem: str | None = None
            if state in TERMINAL_RUN_STATES:
                problem = f"reached terminal state {state!r}"
            elif time.monotonic() > deadline:
                problem = f"timed out after {timeout:.0f} s"
            else:
                try:
                    self.check_components()
                except StackError as exc:
                    problem = str(exc)
            if problem:
                raise StackError(
                    f"run {dag_id}/{run_id} never reached {sorted(states)}: {problem}; "
                    f"observed states: {seen}\n" + self.all_log_tails()
                )
            time.sleep(interval)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """The (JSON) value of an XCom entry, read over REST."""
        body = self._api_json(
            "GET",
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
            f"/xcomEntries/{_q(key)}",
        )
        return body["value"]
