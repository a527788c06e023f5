"""A distributed Airflow 3.3 stack: CeleryExecutor, PostgreSQL, Redis, two workers, two triggerers.

``CeleryStack`` is an ``AirflowStack`` (``tests/system/stack.py``: process groups, signals by
recorded pid only, REST helpers, log tails) with a production-like shape:

- metadata database and Celery result backend on a private PostgreSQL, broker on a private
  Redis (``services.py``), both on 127.0.0.1; the spend ledger in a database of its own on the
  same PostgreSQL (``[openrouter] ledger_conn_id``), which every worker shares;
- seven Airflow processes: api-server, scheduler, dag-processor, ``triggerer-1``,
  ``triggerer-2``, ``worker-1`` and ``worker-2`` (``airflow celery worker``);
- a per-process environment (``component_env``), so that each triggerer and each worker can
  carry its own OpenRouter connection: the tests give each one a distinct ``app_title`` extra,
  which the hook sends as ``X-OpenRouter-Title``, and attribute every request in the emulator's
  log to the process that sent it.

Timings are shortened so that a death is noticed within a test's time: a triggerer whose
heartbeat is older than ``TRIGGERER_HEALTH_CHECK_THRESHOLD`` s loses its triggers to the other
one, and a task whose supervisor stopped heartbeating for ``TASK_HEARTBEAT_TIMEOUT`` s is failed
(and retried) by the scheduler.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from tests.distributed.services import PrivatePostgres, PrivateRedis
from tests.system.stack import AirflowStack, StackError, _q, _tail, _tree

TRIGGERERS: tuple[str, ...] = ("triggerer-1", "triggerer-2")
WORKERS: tuple[str, ...] = ("worker-1", "worker-2")
CELERY_COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", *TRIGGERERS, *WORKERS)

#: Task processes per Celery worker (``--concurrency``): 2 x 2 task slots on a 2-core machine.
WORKER_CONCURRENCY = 2
#: Seconds without a triggerer heartbeat before its triggers go to another triggerer (default 30).
#: Not much lower: on a loaded 2-core machine a live triggerer's heartbeat can be a few s late,
#: and a false takeover would run a trigger on both triggerers.
TRIGGERER_HEALTH_CHECK_THRESHOLD = 6
#: Triggers one triggerer runs at most (default 1000). Low, so that the six triggers of the
#: mapped S3 DAG are necessarily spread over both triggerers (one alone would take them all):
#: the "never polled by two triggerers" check then also covers the jobs of the survivor.
TRIGGERER_CAPACITY = 4
#: Seconds without a task heartbeat before the scheduler fails the task instance (default 300).
TASK_HEARTBEAT_TIMEOUT = 10
#: The spend ledger's database, on the same private PostgreSQL, shared by every worker (as a
#: deployment that sets budgets must: ``[openrouter] ledger_conn_id``), and its connection.
LEDGER_DATABASE = "orvideo_ledger"
LEDGER_CONN_ID = "orvideo_ledger"


class CeleryStack(AirflowStack):
    """An ``AirflowStack`` on CeleryExecutor + PostgreSQL + Redis with two workers and two triggerers.

    :param postgres: a started ``PrivatePostgres`` (metadata DB and Celery result backend).
    :param redis: a started ``PrivateRedis`` (Celery broker).
    :param component_envs: extra environment for single components, applied over ``env``
        (e.g. ``{"triggerer-1": {"AIRFLOW_CONN_OPENROUTER_DEFAULT": ...}}``).
    """

    components = CELERY_COMPONENTS

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        *,
        postgres: PrivatePostgres,
        redis: PrivateRedis,
        env: Mapping[str, str] | None = None,
        component_envs: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        # Set before the base __init__, which builds the environment through _build_env().
        self.postgres = postgres
        self.redis = redis
        unknown = set(component_envs or {}) - set(CELERY_COMPONENTS)
        if unknown:
            raise KeyError(f"component_envs for unknown components {sorted(unknown)}")
        self.component_envs: dict[str, dict[str, str]] = {
            name: dict(values) for name, values in (component_envs or {}).items()
        }
        super().__init__(home=home, dags_folder=dags_folder, env=env)

    # ------------------------------------------------------------------ environment

    def _build_env(self) -> dict[str, str]:
        env = super()._build_env()
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__PARALLELISM": "16",
                # psycopg2 named explicitly: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3.
                # Airflow derives its async engine (asyncpg) from this URL.
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url("postgresql+psycopg2"),
                "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.postgres.url("postgresql+psycopg2"),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
                "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
                # A killed worker's task is failed, and retried, after this many seconds.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(TASK_HEARTBEAT_TIMEOUT),
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_CHECK_THRESHOLD),
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__CAPACITY": str(TRIGGERER_CAPACITY),
                # Created by start(); an Airflow connection of type postgres.
                f"AIRFLOW_CONN_{LEDGER_CONN_ID.upper()}": self.postgres.url(
                    "postgresql", database=LEDGER_DATABASE
                ),
                "AIRFLOW__OPENROUTER__LEDGER_CONN_ID": LEDGER_CONN_ID,
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, health_timeout: float = 90.0) -> None:
        self.postgres.create_database(LEDGER_DATABASE)
        super().start(health_timeout=health_timeout)

    @property
    def ledger_url(self) -> str:
        """The SQLAlchemy URL of the spend ledger every task of the stack books in."""
        return self.postgres.url(database=LEDGER_DATABASE)

    def component_env(self, name: str) -> dict[str, str]:
        return {**self.env, **self.component_envs.get(name, {})}

    def _command(self, name: str) -> list[str]:
        airflow = str(self.airflow)
        # Log serving is off for triggerers and workers: each would bind the same fixed port; the
        # api-server reads task logs from the shared AIRFLOW_HOME instead.
        if name in TRIGGERERS:
            return [airflow, "triggerer", "--skip-serve-logs"]
        if name in WORKERS:
            return [
                airflow,
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",  # two workers on one host need distinct Celery node names
                "--concurrency",
                str(WORKER_CONCURRENCY),
                "--skip-serve-logs",
                "--without-gossip",
                "--without-mingle",
            ]
        return super()._command(name)

    # ------------------------------------------------------------------ process death

    def kill_tree(self, name: str) -> list[int]:
        """SIGKILL component ``name`` and every process below it, each by its pid; returns the pids.

        ``kill()`` signals the component's process group, but Airflow runs every task (and a
        triggerer its trigger runner) in a process group of its own: a group kill would leave the
        task running on, still downloading, like no real machine failure would. This kills the
        whole tree, as the loss of the worker's host or container does. It repeats until nothing
        of the tree is left, in case a process forked meanwhile.
        """
        proc = self._proc(name)
        self._expected_down.add(name)
        killed: list[int] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alive = [p for p in _tree(proc.pid) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            if not alive:
                break
            for p in alive:
                with contextlib.suppress(psutil.Error):
                    p.kill()
                    killed.append(p.pid)
            self._orphans.extend(alive)
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self._note(f"kill -9 of {name}'s process tree: pids {sorted(set(killed))}")
        return sorted(set(killed))

    def check_components(self) -> None:
        super().check_components()
        for service, proc in (("postgres", self.postgres.proc), ("redis", self.redis.proc)):
            if proc is not None and proc.poll() is not None:
                raise StackError(f"{service} (pid {proc.pid}) exited with {proc.returncode}")

    # ------------------------------------------------------------------ REST

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run (mapped ones included), sorted by task id and map index."""
        body = self._api_json(
            "GET",
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances",
            params={"limit": 1000},
        )
        tis: list[dict[str, Any]] = body["task_instances"]
        return sorted(tis, key=lambda ti: (ti["task_id"], ti.get("map_index", -1)))

    def task_instance_try(
        self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
    ) -> dict[str, Any]:
        """One try of a mapped task instance (its ``pid``, ``hostname``, ``state`` ...)."""
        body: dict[str, Any] = self._api_json(
            "GET",
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
            f"/{map_index}/tries/{try_number}",
        )
        return body

    def xcom_of(self, dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> Any:
        """An XCom value of one mapped task instance."""
        body = self._api_json(
            "GET",
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
            f"/xcomEntries/{_q(key)}",
            params={"map_index": map_index},
        )
        return body["value"]

    # ------------------------------------------------------------------ logs

    def all_log_tails(self, lines: int = 60, task_logs: bool = True) -> str:
        services = "\n".join(
            f"----- {name} ({self.log_dir / (name + '.out')}) -----\n{_tail(self.log_dir / (name + '.out'), 20)}"
            for name in ("postgres", "redis")
            if (self.log_dir / (name + ".out")).exists()
        )
        return super().all_log_tails(lines, task_logs) + ("\n" + services if services else "")
