"""Small real stand-ins shared by tests (no mocks of the code under test)."""

from __future__ import annotations

import re
from typing import Any

import airflow
from packaging.version import Version

from airflow_provider_orvideo._internal.compat import AirflowFailException

AIRFLOW_VERSION: tuple[int, int] = (Version(airflow.__version__).major, Version(airflow.__version__).minor)
"""The Airflow minor version the tests run against (the suite runs on each supported one)."""

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # 3.0, 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef, attr-defined, unused-ignore]

__all__ = [
    "AIRFLOW_VERSION",
    "AirflowFailException",
    "TaskDeferred",
    "plain_text",
    "without_airflow_mask_requests",
]


def plain_text(output: str) -> str:
    """``output`` without colour codes, box-drawing borders and line wrapping: Airflow 3.0 prints
    a task's exception in a rich panel, wrapping the message to the terminal width."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", output)
    text = re.sub(r"[\u2500-\u257f]", " ", text)
    return " ".join(text.split())


def without_airflow_mask_requests(output: str) -> str:
    """``dag.test()`` output minus Airflow 3.0's own DEBUG lines that print each secret its task
    runner asks the supervisor to mask (``Sending request msg=MaskSecret(value='...')``): that
    is Airflow's leak, fixed in 3.1, not the provider's. Every other line is kept and checked."""
    return "\n".join(line for line in output.splitlines() if "msg=MaskSecret(value=" not in line)


class RecordingTaskInstance:
    """Records ``xcom_push`` calls the way a task instance would store them."""

    def __init__(
        self,
        dag_id: str = "pipeline",
        task_id: str = "render",
        run_id: str = "manual__1",
        map_index: int = -1,
        run_xcom: dict[tuple[str, int, str], Any] | None = None,
    ) -> None:
        self.dag_id = dag_id
        self.task_id = task_id
        self.run_id = run_id
        self.map_index = map_index
        self.try_number = 1
        self.xcom: dict[str, Any] = {}
        self.run_xcom = {} if run_xcom is None else run_xcom
        """The DAG run's XCom table (task_id, map_index, key) -> value; share one between the
        task instances of one run (e.g. the map indexes of a mapped task)."""

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value
        self.run_xcom[(self.task_id, self.map_index, key)] = value

    def xcom_pull(self, task_ids: list[str] | str, key: str, map_indexes: int | None = None) -> Any:
        """Every map index's value of ``key`` for ``task_ids``, as Airflow's ``xcom_pull`` with a
        list of task ids and no ``map_indexes`` returns them; one value (or None) for one task id
        and one map index."""
        if isinstance(task_ids, str):
            return self.run_xcom.get((task_ids, self.map_index if map_indexes is None else map_indexes, key))
        return [
            value
            for (task_id, _, pushed_key), value in sorted(self.run_xcom.items(), key=lambda i: i[0][:2])
            if task_id in task_ids and pushed_key == key
        ]


def context_with(ti: RecordingTaskInstance, store: Any = None) -> Any:
    context: dict[str, Any] = {"ti": ti}
    if store is not None:
        context["task_state_store"] = store
    return context


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A real (tiny, grey) PNG image."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


MP3_BYTES = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 64
"""The start of an MP3 file (ID3 tag, then MPEG audio frames)."""


class InMemoryTaskStateStore:
    """The ``get/set/delete`` surface of Airflow's ``TaskStateStoreAccessor``, kept in a dict.

    One instance stands for one task instance's store across its tries (it survives retries).
    The real store is exercised by the dag.test() and real-stack tests.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        if value is None:
            raise ValueError("Cannot set value as None")
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def run_task(operator: Any, context: Any, *, max_deferrals: int = 50) -> Any:
    """Run one try the way Airflow does: execute(), and on each deferral the trigger, then the
    resume method (which may defer again: a contradicted webhook, a download that must wait)."""
    import asyncio

    async def first_event(trigger: Any) -> Any:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    try:
        return operator.execute(context)
    except TaskDeferred as deferred:
        for _ in range(max_deferrals):
            payload = asyncio.run(first_event(deferred.trigger))
            resume = getattr(operator, deferred.method_name)
            try:
                return resume(context, event=payload, **(deferred.kwargs or {}))
            except TaskDeferred as again:
                deferred = again
        raise AssertionError(f"the task deferred more than {max_deferrals} times") from None
