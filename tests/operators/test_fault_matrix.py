"""The fault matrix: each fault at the emulator, the task's outcome over Airflow-style retries, and
how many POSTs (and jobs) it cost.

A "try" is a fresh operator instance running ``execute`` -> trigger -> ``execute_complete`` (as
Airflow runs it), sharing one task state store across tries as Airflow does. Exceptions that
subclass ``AirflowFailException`` end the task at once, as in Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from tests.helpers import (
    AirflowFailException,
    InMemoryTaskStateStore,
    RecordingTaskInstance,
    context_with,
    run_task,
)


@dataclass
class Outcome:
    state: str
    tries: int
    posts: int
    jobs: int
    errors: list[BaseException]


def run_with_retries(
    emulator: Any,
    tmp_path: Path,
    *,
    retries: int = 2,
    ti_factory: Callable[[], RecordingTaskInstance] = RecordingTaskInstance,
    **kwargs: Any,
) -> Outcome:
    store = InMemoryTaskStateStore()
    errors: list[BaseException] = []
    state = "failed"
    tries = 0
    for _ in range(retries + 1):
        tries += 1
        operator = OpenRouterVideoOperator(
            task_id="render",
            prompt="a hot-air balloon over vineyards",
            model="google/veo-3.1",
            duration=4,
            output_path=str(tmp_path / "out.mp4"),
            poll_interval=0.05,
            **kwargs,
        )
        try:
            path = run_task(operator, context_with(ti_factory(), store))
        except AirflowFailException as error:
            errors.append(error)
            break
        except Exception as error:
            errors.append(error)
            continue
        assert Path(path).read_bytes()[4:8] == b"ftyp"
        state = "success"
        break
    return Outcome(
        state, tries, emulator.control.count("submit", "POST"), len(emulator.control.jobs()), errors
    )


# (fault id, endpoint, fault fields, job defaults, expected state, expected POSTs, expected jobs)
MATRIX: list[tuple[str, str, dict[str, Any], dict[str, Any], str, int, int]] = [
    (
        "429 + Retry-After on poll",
        "poll",
        {"kind": "status", "status": 429, "retry_after": "0", "times": 3},
        {},
        "success",
        1,
        1,
    ),
    (
        "429 without Retry-After on poll",
        "poll",
        {"kind": "status", "status": 429, "times": 1},
        {},
        "success",
        1,
        1,
    ),
    (
        "429 + Retry-After on submit",
        "submit",
        {"kind": "status", "status": 429, "retry_after": "0", "times": 2},
        {},
        "success",
        3,
        1,
    ),
    (
        "429 without Retry-After on submit",
        "submit",
        {"kind": "status", "status": 429, "times": 1},
        {},
        "success",
        2,
        1,
    ),
    (
        "500 on polls",
        "poll",
        {"kind": "status", "status": 500, "retry_after": "0", "times": 6},
        {},
        "success",
        1,
        1,
    ),
    (
        "502 on polls",
        "poll",
        {"kind": "status", "status": 502, "retry_after": "0", "times": 6},
        {},
        "success",
        1,
        1,
    ),
    (
        "503 on polls",
        "poll",
        {"kind": "status", "status": 503, "retry_after": "0", "times": 6},
        {},
        "success",
        1,
        1,
    ),
    (
        "500 on download",
        "content",
        {"kind": "status", "status": 500, "retry_after": "0", "times": 2},
        {},
        "success",
        1,
        1,
    ),
    (
        "502 on download",
        "content",
        {"kind": "status", "status": 502, "retry_after": "0", "times": 2},
        {},
        "success",
        1,
        1,
    ),
    (
        "503 on download",
        "content",
        {"kind": "status", "status": 503, "retry_after": "0", "times": 2},
        {},
        "success",
        1,
        1,
    ),
    ("connection reset on poll", "poll", {"kind": "reset", "times": 2}, {}, "success", 1, 1),
    ("connection reset on download", "content", {"kind": "reset", "times": 1}, {}, "success", 1, 1),
    ("read timeout on poll", "poll", {"kind": "delay", "seconds": 1.5, "times": 1}, {}, "success", 1, 1),
    ("malformed JSON on poll", "poll", {"kind": "malformed_json", "times": 2}, {}, "success", 1, 1),
    (
        "unknown status value",
        "poll",
        {"kind": "unknown_status", "value": "queued_upstream", "times": 3},
        {},
        "success",
        1,
        1,
    ),
    # The trigger gives up on a vanished job; the retry finds it again and re-attaches.
    ("job vanished (404) once", "poll", {"kind": "vanish", "times": 1}, {}, "success", 1, 1),
    (
        "truncated download",
        "content",
        {"kind": "truncate", "times": 2},
        {"output_size": 2_000_000},
        "success",
        1,
        1,
    ),
    # The answer to the POST is lost after the job was created: the retry refuses to pay twice.
    (
        "reset after submit created the job",
        "submit",
        {"kind": "reset", "after_create": True, "times": 1},
        {},
        "failed",
        1,
        1,
    ),
    ("500 on submit", "submit", {"kind": "status", "status": 500, "times": 1}, {}, "failed", 1, 0),
    # OpenRouter's verdict is not paid for again unless asked (resubmit_failed_jobs=True, below).
    ("failed job", "poll", {}, {"outcome": "failed", "error": "Content policy violation"}, "failed", 1, 1),
    ("cancelled job", "poll", {}, {"outcome": "cancelled"}, "failed", 1, 1),
    ("expired job", "poll", {}, {"outcome": "expired"}, "failed", 1, 1),
]


@pytest.mark.parametrize(
    ("fault", "endpoint", "fields", "defaults", "state", "posts", "jobs"),
    MATRIX,
    ids=[row[0] for row in MATRIX],
)
def test_fault_matrix(
    emulator: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    endpoint: str,
    fields: dict[str, Any],
    defaults: dict[str, Any],
    state: str,
    posts: int,
    jobs: int,
) -> None:
    # A one-second HTTP timeout so the "read timeout" row times out quickly.
    connection = {
        "conn_type": "openrouter",
        "host": emulator.base_url,
        "password": emulator.api_key,
        "extra": {"timeout": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_OPENROUTER_DEFAULT", json.dumps(connection))
    emulator.control.set_job_defaults(pending_seconds=0.1, in_progress_seconds=0.2, **defaults)
    if fields:
        emulator.control.add_fault(endpoint, fields.pop("kind"), **fields)
    outcome = run_with_retries(emulator, tmp_path)
    assert (outcome.state, outcome.posts, outcome.jobs) == (state, posts, jobs), outcome.errors
    if state == "failed":
        assert outcome.errors
        assert emulator.api_key not in str(outcome.errors[-1])
    assert not list(tmp_path.glob(".*.part"))


def test_orphan_policy_resubmit_pays_again_knowingly(emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_job_defaults(pending_seconds=0.1, in_progress_seconds=0.2)
    emulator.control.add_fault("submit", "reset", after_create=True)
    outcome = run_with_retries(emulator, tmp_path, orphan_policy="resubmit")
    assert (outcome.state, outcome.posts, outcome.jobs) == ("success", 2, 2)


def test_failed_job_not_resubmitted_by_default(emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_job_defaults(pending_seconds=0.1, in_progress_seconds=0.2, outcome="failed")
    outcome = run_with_retries(emulator, tmp_path)
    assert (outcome.state, outcome.tries, outcome.posts) == ("failed", 2, 1)
    assert "resubmit_failed_jobs=False" in str(outcome.errors[-1])


def test_failed_job_resubmitted_when_asked(emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_job_defaults(pending_seconds=0.1, in_progress_seconds=0.2, outcome="failed")
    outcome = run_with_retries(emulator, tmp_path, resubmit_failed_jobs=True)
    assert (outcome.state, outcome.posts, outcome.jobs) == ("failed", 3, 3)
    assert "submits a new job, which is billed again" in str(outcome.errors[0])


def test_timeout_then_retry_reattaches_without_paying(emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_job_defaults(pending_seconds=0.5, in_progress_seconds=2.5)
    outcome = run_with_retries(emulator, tmp_path, job_timeout=1.0, retries=4)
    # Try 1 gives up after 1 s with the job still rendering; later tries re-attach (never submit)
    # until one gets the video. Margins are wide so a loaded machine cannot change the story.
    assert (outcome.state, outcome.posts, outcome.jobs) == ("success", 1, 1)
    assert outcome.tries >= 2
    assert "may still render and bill" in str(outcome.errors[0])
    assert "re-attaches to the same job" in str(outcome.errors[0])


def test_saved_outputs_are_not_downloaded_again(emulator: Any, tmp_path: Path) -> None:
    """Try 1 saves both outputs, then dies before finishing; try 2 downloads nothing."""

    class CrashAfterDownload(RecordingTaskInstance):
        crashed = False

        def xcom_push(self, key: str, value: Any) -> None:
            if key == "generation_id" and not CrashAfterDownload.crashed:
                CrashAfterDownload.crashed = True
                raise RuntimeError("worker lost right after the download")
            super().xcom_push(key, value)

    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0, outputs=2)
    outcome = run_with_retries(emulator, tmp_path, ti_factory=CrashAfterDownload)
    assert (outcome.state, outcome.tries, outcome.posts) == ("success", 2, 1)
    assert len(emulator.control.requests("content")) == 2  # one per output, none repeated
    assert (tmp_path / "out.mp4").read_bytes()[4:8] == b"ftyp"
    assert (tmp_path / "out_1.mp4").read_bytes()[4:8] == b"ftyp"


def test_a_damaged_earlier_output_is_downloaded_again(emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    store = InMemoryTaskStateStore()

    def one_try() -> str:
        operator = OpenRouterVideoOperator(
            task_id="render",
            prompt="p",
            model="google/veo-3.1",
            output_path=str(tmp_path / "o.mp4"),
            poll_interval=0.05,
        )
        return str(run_task(operator, context_with(RecordingTaskInstance(), store)))

    path = Path(one_try())
    path.write_bytes(b"\x00" * 10)  # someone truncated it
    assert Path(one_try()).read_bytes()[4:8] == b"ftyp"
    assert len(emulator.control.requests("content")) == 2
    assert emulator.control.count("submit", "POST") == 1


def test_non_deferrable_retry_reattaches_too(emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_job_defaults(pending_seconds=0.5, in_progress_seconds=2.5)
    outcome = run_with_retries(emulator, tmp_path, job_timeout=1.0, retries=4, deferrable=False)
    assert (outcome.state, outcome.posts, outcome.jobs) == ("success", 1, 1)
    assert outcome.tries >= 2
    assert "re-attaches to the same job" in str(outcome.errors[0])
