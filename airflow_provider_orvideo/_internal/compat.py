"""What differs between the supported Airflow versions (3.0 to 3.3), in one place.

Every name here is imported from where the newest Airflow keeps it, falling back to where the
older ones do; callers never test versions themselves. The features a version lacks, and what
the provider does instead, are listed in docs/airflow-versions.md:

* ``task_state_store`` (3.3): before it, the submission record lives in an Airflow Variable
  (:mod:`airflow_provider_orvideo._internal.submission`).
* ``Connection.aextra_dejson`` (3.3.2): before it, resolving a connection from the event loop
  masks its secrets with a synchronous call to the task supervisor, which can deadlock; the
  triggerer then resolves the connection in an asgiref worker thread (:data:`ASYNC_CONNECTIONS`).
* ``DecoratedOperator.determine_kwargs`` (3.2): before it, the module function of
  ``airflow.utils.operator_helpers``.
* Trigger ``on_kill`` (3.3): before it, never called, so the "job keeps billing" warning of a
  task marked failed while deferred is not logged.
* Multi-team (``[core] multi_team``, 3.2+, experimental): which connections a DAG's tasks may
  use (:func:`team_may_use_connection`); before it, and with it off, every connection is global.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

try:  # 3.2+
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowNotFoundException
except ImportError:  # 3.0, 3.1: where their task runner catches them
    from airflow.exceptions import (  # type: ignore[no-redef, attr-defined, unused-ignore]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
    )

try:  # 3.1+
    from airflow.sdk import BaseHook
except ImportError:  # 3.0
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef, attr-defined, unused-ignore]

__all__ = [
    "ASYNC_CONNECTIONS",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "BaseHook",
    "VariableStateStore",
    "context_merge",
    "determine_kwargs",
    "has_fs",
    "has_task_state_store",
    "task_state_store",
    "team_may_use_connection",
]


def _has_async_connections() -> bool:
    try:
        from airflow.sdk import Connection
    except ImportError:  # pragma: no cover - every supported version has it
        return False
    return hasattr(Connection, "aextra_dejson")


ASYNC_CONNECTIONS = _has_async_connections()
"""Whether connections can be resolved on the event loop itself (Airflow 3.3.2+)."""


def has_fs(scheme: str) -> bool:
    """Whether an installed provider registered an object storage filesystem for ``scheme``."""
    try:  # 3.1+
        from airflow.sdk.io.fs import has_fs as registered
    except ImportError:  # 3.0
        from airflow.io import has_fs as registered  # type: ignore[attr-defined, no-redef, unused-ignore]
    return bool(registered(scheme))


def context_merge(context: Any, extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` into a task's context (the TaskFlow way)."""
    try:  # 3.1+
        from airflow.sdk.definitions.context import context_merge as merge
    except ImportError:  # 3.0
        from airflow.utils.context import context_merge as merge  # type: ignore[attr-defined, no-redef, unused-ignore]
    merge(context, extra)


def determine_kwargs(operator: Any, function: Callable[..., Any], context: Any) -> Mapping[str, Any]:
    """The keyword arguments a TaskFlow function receives: ``op_kwargs`` and the context
    variables its signature asks for."""
    method = getattr(operator, "determine_kwargs", None)
    if method is not None:  # 3.2+
        return method(context)  # type: ignore[no-any-return]
    from airflow.utils.operator_helpers import (  # type: ignore[attr-defined, unused-ignore]
        determine_kwargs as module_function,  # 3.0, 3.1
    )

    return module_function(function, operator.op_args, context)  # type: ignore[no-any-return, unused-ignore]


@functools.cache
def has_task_state_store() -> bool:
    """Whether this Airflow gives tasks a ``task_state_store`` that survives retries (3.3+)."""
    try:
        from airflow.sdk.execution_time import context as execution_context
    except ImportError:  # pragma: no cover - every supported version has it
        return False
    return hasattr(execution_context, "TaskStateStoreAccessor")


VARIABLE_PREFIX = "airflow_provider_orvideo."
_MAX_VARIABLE_KEY = 250  # the length of Airflow's variable key column


class VariableStateStore:
    """``task_state_store``'s ``get``/``set``/``delete``, kept in one Airflow Variable per task
    instance: the durable store on Airflow before 3.3, which has no task state store.

    A Variable survives retries and the loss of a worker (it lives in the metadata database), and
    a task can read and write it on every supported version. Its key names the task instance:
    ``airflow_provider_orvideo.<dag_id>.<task_id>.<map_index>.<run>``, where ``<run>`` is a digest
    of the run id (run ids hold characters such as ``+`` and ``:``; the task SDK puts the key in a
    URL path, where a ``/`` would not reach the variable), or a digest of it all when longer than
    the key column. So clearing one run never reads another run's record. It holds no secret (a
    job id, a fingerprint, saved paths) but is visible in the UI's Variables list; :meth:`finish`
    deletes it when the task instance succeeds.
    """

    def __init__(self, ti: Any) -> None:
        run = hashlib.sha256(str(ti.run_id).encode()).hexdigest()[:16]
        key = f"{VARIABLE_PREFIX}{ti.dag_id}.{ti.task_id}.{getattr(ti, 'map_index', -1)}.{run}"
        if len(key) > _MAX_VARIABLE_KEY:
            key = VARIABLE_PREFIX + hashlib.sha256(key.encode()).hexdigest()
        self.variable_key = key
        self._entries: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        """The entries, read once per store (one task process is the only writer of its record;
        Airflow before 3.3 logs a missing Variable as an error, so fewer reads, fewer such lines)."""
        if self._entries is None:
            from airflow.sdk import Variable

            value = Variable.get(self.variable_key, default=None, deserialize_json=True)
            self._entries = value if isinstance(value, dict) else {}
        return dict(self._entries)

    def _save(self, entries: dict[str, Any]) -> None:
        from airflow.sdk import Variable

        if entries:
            Variable.set(self.variable_key, entries, serialize_json=True)
        elif self._entries:
            Variable.delete(self.variable_key)
        self._entries = entries

    def get(self, key: str) -> Any:
        return self._load().get(key)

    def set(self, key: str, value: Any) -> None:
        self._save({**self._load(), key: value})

    def delete(self, key: str) -> None:
        entries = self._load()
        if entries.pop(key, None) is not None:
            self._save(entries)

    def finish(self) -> None:
        """Forget everything of this task instance (it succeeded)."""
        if self._load():
            self._save({})


def task_state_store(context: Mapping[str, Any]) -> Any:
    """The task instance's durable key-value store: Airflow's ``task_state_store`` (3.3+), or a
    :class:`VariableStateStore` before it. None for a hand-made context (no task runner)."""
    store = context.get("task_state_store")
    if store is not None or has_task_state_store() or not _in_task_runner():
        return store
    return VariableStateStore(context["ti"])


def _in_task_runner() -> bool:
    """Whether Airflow's task runner runs this task (a worker, ``dag.test()``), so Variables can
    be read and written; not so for a hand-made context (unit tests), which gets no store."""
    from airflow.sdk.execution_time import task_runner

    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def team_may_use_connection(dag_id: str, conn_id: str) -> bool:
    """Whether tasks of DAG ``dag_id`` may use connection ``conn_id``, by Airflow's own rule.

    With multi-team on (``[core] multi_team``, Airflow 3.2+), the execution API gives a task the
    connections of its DAG's team and those of no team (``get_connection_from_secrets(conn_id,
    team_name=...)``, the same lookup); the video pages ask the same before they read an object
    with a connection a task recorded, so a DAG cannot borrow another team's credentials through
    the api-server. Without multi-team every connection is global: any DAG author can use any of
    them in a task, and the pages add no access beyond that. Blocking (metadata database);
    any failure to decide is a refusal."""
    from airflow.configuration import conf

    if not conf.getboolean("core", "multi_team", fallback=False):
        return True
    if "___" in conn_id:
        # AIRFLOW_CONN__TEAM_B___X spelled through the global prefix: another team's environment
        # connection. Airflow 3.3 refuses such ids itself; 3.2 would resolve them.
        return False
    from airflow.models.connection import Connection
    from airflow.models.dag import DagModel

    try:
        team = DagModel.get_team_name(dag_id)
        Connection.get_connection_from_secrets(conn_id, team_name=team)
    except Exception:  # AirflowNotFoundException: not visible to the team; anything else: unsure
        return False
    return True
