"""Defaults shared by the operator, the trigger and the poll decision.

Import-free on purpose: the operator module reads these at DAG-parse time, and the dag-processor
parses DAG files all day, so everything heavier is imported inside the methods that run a task.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "DEFAULT_CONN_ID",
    "DEFAULT_INITIAL_POLL_DELAYS",
    "DEFAULT_JOB_TIMEOUT_SECONDS",
    "DEFAULT_POLL_INTERVAL_SECONDS",
    "DEFAULT_VIDEO_RETRIES",
    "DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS",
]

DEFAULT_CONN_ID = "openrouter_default"
DEFAULT_POLL_INTERVAL_SECONDS = 30.0
DEFAULT_INITIAL_POLL_DELAYS = (30.0, 10.0, 20.0)
"""Default schedule: checks 30 s and 40 s after submission, then on the 30 s grid (60, 90, ...).
Videos take 30 s to minutes. Against a fixed 30 s interval this finds a 30 s job about 5 s after
it completes instead of about 24 s, with the same number of polls; longer jobs cost one extra
poll (measured in ``benchmarks/completion_detection.py``)."""
DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS = 600.0
"""With webhooks on, the trigger's own safety checks: every 10 minutes, plus one at the deadline.
A job of up to 10 minutes then costs at most one poll (target of ``benchmarks/completion_detection.py``
``--webhooks``); a lost webhook delays its task by at most 10 minutes, never loses it."""
DEFAULT_JOB_TIMEOUT_SECONDS = 3600.0

DEFERRABLE_ENV_VAR = "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"
RETRIES_ENV_VAR = "AIRFLOW__CORE__DEFAULT_TASK_RETRIES"
DEFAULT_VIDEO_RETRIES = 3
"""Retries of a video task whose DAG sets none. A try that finds its earlier try's job re-attaches
to it and never pays again, so a retry costs nothing; without one, a failure of the
infrastructure at the wrong moment (a broker or api-server restart when the deferred task
resumes, a worker lost mid-download) leaves a paid video undownloaded until someone clears the
task. With Airflow's default ``retry_delay`` (5 minutes) three retries outlast such restarts."""


def default_retries() -> int:
    """The operator's ``retries`` when neither the task nor the DAG's ``default_args`` set it:
    :data:`DEFAULT_VIDEO_RETRIES`, unless the deployment sets ``AIRFLOW__CORE__DEFAULT_TASK_RETRIES``
    (then Airflow's ``[core] default_task_retries`` decides, as for every other operator; only
    the environment variable counts as a deployment's choice, as for :func:`default_deferrable`)."""
    if RETRIES_ENV_VAR not in os.environ:
        return DEFAULT_VIDEO_RETRIES
    from airflow.configuration import conf

    return conf.getint("core", "default_task_retries", fallback=0)


def default_deferrable() -> bool:
    """The operator's ``deferrable`` when the DAG does not pass it: ``True`` unless the
    deployment sets ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE``, which then decides.

    Official providers default to ``conf.getboolean("operators", "default_deferrable")``, which
    is ``False`` on every stock install: Airflow's own default is ``false`` and it writes
    ``default_deferrable = false`` into each new ``airflow.cfg``, so that value says nothing
    about what the deployment chose. This provider defers by default (a video job takes minutes;
    a worker slot held for it is the cost deferral exists to avoid), and takes only the
    environment variable as a deployment's explicit choice, read by Airflow's own parser
    (``true``/``t``/``1``, ``false``/``f``/``0``); anything else fails the DAG's parse.
    """
    if DEFERRABLE_ENV_VAR not in os.environ:
        return True
    from airflow.configuration import conf
    from airflow.exceptions import AirflowConfigException

    try:
        return conf.getboolean("operators", "default_deferrable")
    except AirflowConfigException:
        from airflow_provider_orvideo.exceptions import InvalidSettingError

        raise InvalidSettingError(
            f"{DEFERRABLE_ENV_VAR}={os.environ[DEFERRABLE_ENV_VAR]!r} is not a boolean; allowed: true, "
            "false (or t, f, 1, 0). It sets deferrable for the operators that do not pass it. "
            "Nothing was submitted to OpenRouter and nothing was billed."
        ) from None


def dag_leaves_retries_unset(dag: Any = None, default_args: Any = None) -> bool:
    """Whether neither ``default_args`` nor those of ``dag`` (default: the DAG being defined) and
    of its current task group set ``retries``: then a video task takes :func:`default_retries`.

    False outside a DAG definition: a task made there may be added to any DAG, whose
    ``default_args`` then decide (the operator's own signature default still applies to an
    unmapped operator, which Airflow fills from ``default_args`` first)."""
    try:
        from airflow.sdk.definitions._internal.contextmanager import DagContext, TaskGroupContext
    except ImportError:  # pragma: no cover - every supported version has it
        return False
    dag = dag or DagContext.get_current()
    if dag is None:
        return False
    group = TaskGroupContext.get_current(dag)
    return not any(
        isinstance(defaults, dict) and "retries" in defaults
        for defaults in (default_args, dag.default_args, getattr(group, "default_args", None))
    )
