"""``python -m orvideo_emulator.airflow_run``: one ``dag.test()`` in a process of its own.

The pytest plugin's :class:`~orvideo_emulator.pytest_plugin.DagRunner` starts this with an
Airflow home it prepared, so the test process never imports Airflow's configuration for a home
that is not its own. It loads the DAGs folder, runs ``dag.test()`` and writes what happened (the
run's state, every task instance's state, every XCom, each failed try's exception, the DAGs
folder's import errors) as JSON to ``--result``. Works on Airflow 3.0 to 3.3.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pluggy  # Airflow's own dependency: this module runs only in an Airflow process


def _dag_bag(dags_folder: str) -> Any:
    try:  # 3.2+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # 3.0, 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef, attr-defined, unused-ignore]
    return DagBag(dag_folder=dags_folder)  # examples: off through AIRFLOW__CORE__LOAD_EXAMPLES


def _json_safe(value: Any) -> Any:
    """XCom values as JSON; anything JSON cannot hold becomes its ``repr``."""
    return json.loads(json.dumps(value, default=repr))


def _key(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def _collect(dag_id: str, run_id: str) -> tuple[dict[str, str | None], dict[str, dict[str, Any]]]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        states = {
            _key(ti.task_id, ti.map_index): None if ti.state is None else str(ti.state)
            for ti in session.scalars(
                select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            )
        }
        xcoms: dict[str, dict[str, Any]] = {}
        for row in session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
        ):
            xcoms.setdefault(_key(row.task_id, row.map_index), {})[row.key] = _json_safe(
                XComModel.deserialize_value(row)
            )
    return states, xcoms


class FailureRecorder:
    """An Airflow listener that keeps each failed try's exception (class and message): the cause a
    test should read first, instead of digging it out of a traceback in the log."""

    def __init__(self) -> None:
        self.failures: list[dict[str, Any]] = []

    @pluggy.HookimplMarker("airflow")
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        map_index = getattr(task_instance, "map_index", -1)
        exception_type = type(error) if isinstance(error, BaseException) else None
        self.failures.append(
            {
                "task": _key(task_instance.task_id, -1 if map_index is None else int(map_index)),
                "try_number": getattr(task_instance, "try_number", None),
                "exception": f"{exception_type.__module__}.{exception_type.__qualname__}"
                if exception_type
                else None,
                "message": str(error) if error is not None else "",
            }
        )

    def register(self) -> None:
        """Add to the listener manager the task runner itself uses (it moved in Airflow 3.2)."""
        from airflow.sdk.execution_time import task_runner

        manager: Any = task_runner.get_listener_manager()  # type: ignore[attr-defined]
        manager.add_listener(self)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orvideo_emulator.airflow_run", description=__doc__)
    parser.add_argument("dag_id")
    parser.add_argument("--result", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--conf", default="{}", help="the run's conf, as a JSON object (default {})")
    args = parser.parse_args(argv)

    from airflow.configuration import conf

    bag = _dag_bag(conf.get("core", "dags_folder"))
    result: dict[str, Any] = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}}
    dag = bag.dags.get(args.dag_id)
    if dag is None:
        result.update(
            state=None, error=f"no DAG {args.dag_id!r} in the DAGs folder; found {sorted(bag.dags)}"
        )
        args.result.write_text(json.dumps(result))
        return 2
    recorder = FailureRecorder()
    try:
        recorder.register()
    except Exception as error:  # a kit that cannot listen still runs the DAG
        result["listener_error"] = repr(error)
    run = dag.test(run_conf=json.loads(args.conf))
    state = None if run.state is None else str(run.state)
    task_states, xcoms = _collect(args.dag_id, run.run_id)
    result.update(
        run_id=run.run_id, state=state, task_states=task_states, xcoms=xcoms, failures=recorder.failures
    )
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
