"""Private PostgreSQL and Redis servers for the distributed system tests.

Each test session gets its own throw-away servers on 127.0.0.1 and free ports, never the
machine's system-wide services: a PostgreSQL cluster initialised in a fresh temporary directory
(the Airflow metadata database and the Celery result backend) and a Redis server that keeps
nothing on disk (the Celery broker).

Both are started as direct children of the test process, so the recorded PID is the server
itself (no wrapper such as ``runuser``/``pg_ctl`` in between), and both are stopped by that PID
only. PostgreSQL refuses to run as root: when the tests run as root (CI), the cluster directory
is handed to the ``postgres`` system user and initdb/postgres run as that user
(``subprocess.Popen(user=..., group=...)`` switches user in the child before ``exec``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from tests.system.stack import free_port

#: Where Debian's postgresql-15 package puts the server binaries (not on PATH).
PG_BIN_CANDIDATES: tuple[Path, ...] = tuple(
    Path(f"/usr/lib/postgresql/{version}/bin") for version in ("17", "16", "15")
)


class ServiceError(RuntimeError):
    """A private service did not start (the message carries its log tail)."""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"<{path} does not exist>"


def postgres_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or ``None`` when PostgreSQL is missing."""
    for candidate in PG_BIN_CANDIDATES:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def redis_server_path() -> Path | None:
    found = shutil.which("redis-server")
    return Path(found) if found else None


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port`` (or ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if proc.poll() is not None:
            raise ServiceError(f"exited with {proc.returncode} before accepting connections")
        if time.monotonic() > deadline:
            raise ServiceError(f"not accepting connections on port {port} after {timeout:.0f} s")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes] | None, first: signal.Signals, timeout: float) -> None:
    """Signal ``proc`` (by its pid) with ``first``, wait, then SIGKILL it."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(first)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)


class PrivatePostgres:
    """A PostgreSQL cluster of its own: ``initdb`` in a temporary directory, TCP on 127.0.0.1 only.

    The cluster directory is created with ``tempfile.mkdtemp`` under the system temp dir rather
    than under pytest's ``tmp_path``: pytest's base directory is private to the user running the
    tests (mode 0700), which the ``postgres`` user could not enter. It is removed by ``stop()``.

    Durability is switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``): the
    cluster lives for one test session, and the tests measure Airflow, not the disk.

    :param log_dir: where ``initdb.out`` and ``postgres.out`` are written.
    :param database: the database created for Airflow (owned by the cluster's superuser).
    """

    user = "airflow"

    def __init__(self, log_dir: Path, database: str = "airflow") -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise ServiceError("PostgreSQL server binaries (initdb, postgres) not found")
        self.bin_dir: Path = bin_dir
        self.log_dir = log_dir
        self.database = database
        self.port: int = free_port()
        self.root: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # PostgreSQL refuses to run as root: run it as the postgres system user then.
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceError(
                    "running as root, but there is no 'postgres' user to run PostgreSQL as"
                ) from None
            self._run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            self._owner: tuple[int, int] | None = (pw.pw_uid, pw.pw_gid)
        else:
            self._owner = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def url(self, driver: str = "postgresql+psycopg2", database: str | None = None) -> str:
        """A SQLAlchemy URL of the Airflow database, or of ``database`` (trust authentication: no
        password)."""
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database or self.database}"

    def start(self, timeout: float = 60.0) -> PrivatePostgres:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="orvideo-pg-"))
        data = self.root / "data"
        if self._owner is not None:
            os.chown(self.root, *self._owner)
        init_log = self.log_dir / "initdb.out"
        with init_log.open("wb") as out:
            result = subprocess.run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                timeout=120,
                check=False,
                **self._run_as,
            )
        if result.returncode != 0:
            raise ServiceError(f"initdb exited {result.returncode}:\n{_tail(init_log)}")
        self._log = (self.log_dir / "postgres.out").open("ab")
        self.proc = subprocess.Popen(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",  # TCP only: nothing in the system's socket directory
                "-c",
                "max_connections=300",  # 7 Airflow processes with pools, plus task processes
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "dynamic_shared_memory_type=mmap",  # containers often have a tiny /dev/shm
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            start_new_session=True,
            **self._run_as,
        )
        try:
            _wait_for_port(self.port, self.proc, timeout)
            self._create_database(timeout)
        except ServiceError as error:
            raise ServiceError(f"postgres: {error}\n{_tail(self.log_dir / 'postgres.out')}") from None
        return self

    def _create_database(self, timeout: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:  # the port opens a moment before the server accepts logins
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
                break
            except psycopg2.OperationalError as error:
                if time.monotonic() > deadline:
                    raise ServiceError(f"cannot log in: {error}") from None
                time.sleep(0.2)
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            conn.close()

    def create_database(self, name: str, *, settings: Mapping[str, str] | None = None) -> str:
        """Create another database in the started cluster unless it exists (e.g. the spend
        ledger's), with per-database ``settings`` (``ALTER DATABASE ... SET``); its SQLAlchemy URL."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')
                for setting, value in (settings or {}).items():
                    cursor.execute(f'ALTER DATABASE "{name}" SET {setting} = %s', (value,))
        finally:
            conn.close()
        return self.url(database=name)

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT: disconnect clients, no waiting for them), then remove the cluster."""
        try:
            _stop(self.proc, signal.SIGINT, timeout)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None

    def __enter__(self) -> PrivatePostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PrivateRedis:
    """A Redis server of its own on 127.0.0.1: no RDB snapshots, no AOF, working dir in ``work_dir``.

    :param work_dir: the server's working directory (nothing is written there with persistence
        off, but Redis needs one); the log goes to ``work_dir/../logs/redis.out``-style ``log_dir``.
    """

    def __init__(self, work_dir: Path, log_dir: Path) -> None:
        server = redis_server_path()
        if server is None:
            raise ServiceError("redis-server not found")
        self.server: Path = server
        self.work_dir = work_dir
        self.log_dir = log_dir
        self.port: int = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> PrivateRedis:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = (self.log_dir / "redis.out").open("ab")
        self.proc = subprocess.Popen(
            [
                str(self.server),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.work_dir),
                "--daemonize",
                "no",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for_port(self.port, self.proc, timeout)
        except ServiceError as error:
            raise ServiceError(f"redis: {error}\n{_tail(self.log_dir / 'redis.out')}") from None
        return self

    def kill(self) -> int:
        """``kill -9`` of the server by its pid (what losing the broker's host looks like);
        returns the pid. ``start()`` brings a fresh, empty server back on the same port."""
        if self.proc is None or self.proc.poll() is not None:
            raise ServiceError("redis is not running")
        pid = self.proc.pid
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.stop()  # closes the log; the process is gone already
        return pid

    def stop(self, timeout: float = 10.0) -> None:
        try:
            _stop(self.proc, signal.SIGTERM, timeout)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> PrivateRedis:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
