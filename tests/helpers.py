"""Small real stand-ins shared by tests (no mocks of the code under test)."""

from __future__ import annotations

from typing import Any


class RecordingTaskInstance:
    """Records ``xcom_push`` calls the way a task instance would store them."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def context_with(ti: RecordingTaskInstance) -> Any:
    return {"ti": ti}
