"""A completed, paid job whose download fails is waited for again until its deadline (issue 23).

Before, a download that failed past the hook's own retries (OpenRouter's content endpoint down
for a minute) failed the try; with ``retries=0`` the paid video was never saved. Now the task
defers again (no worker slot held), the trigger finds the job completed one poll interval later,
and the download is tried again, until the deadline the task waited with.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo.exceptions import OutputWriteError, VideoOutputGoneError
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.polling import download_may_recover
from airflow_provider_orvideo.retry import RetryPolicy
from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger
from tests.helpers import RecordingTaskInstance, TaskDeferred, context_with
from tests.operators.test_openrouter_video import make_operator


def completed_job(emulator: Any) -> str:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    return OpenRouterVideoHook().submit({"model": "google/veo-3.1", "prompt": "p"}).id


def poll_event(job_id: str, deadline: float) -> dict[str, Any]:
    return {"version": 1, "status": "completed", "job_id": job_id, "message": "done", "deadline": deadline}


def test_a_download_that_fails_past_the_hooks_retries_waits_for_the_job_again(
    emulator: Any, tmp_path: Path
) -> None:
    job_id = completed_job(emulator)
    emulator.control.fail_requests("content", 503, times=2, retry_after=0)
    operator = make_operator(tmp_path, poll_interval=0.1)
    operator.hook = OpenRouterVideoHook(retry_policy=RetryPolicy(max_attempts=1))  # no hook retries
    deadline = time.time() + 600
    ti = RecordingTaskInstance()
    with pytest.raises(TaskDeferred) as first:
        operator.execute_complete(context_with(ti), poll_event(job_id, deadline))
    trigger = first.value.trigger
    assert isinstance(trigger, OpenRouterVideoTrigger)
    assert (trigger.job_id, trigger.deadline) == (job_id, deadline)  # the same deadline, no new window
    assert not (tmp_path / "out.mp4").exists()
    # The trigger finds the job completed and hands the deadline on; the next download fails again.
    (event,) = asyncio.run(_events(trigger))
    assert event.payload["deadline"] == deadline
    with pytest.raises(TaskDeferred):
        operator.execute_complete(context_with(ti), event.payload)
    # The content endpoint is back: the video is saved, and nothing was submitted again.
    assert operator.execute_complete(context_with(ti), event.payload) == str(tmp_path / "out.mp4")
    assert (tmp_path / "out.mp4").read_bytes()[4:8] == b"ftyp"
    assert emulator.control.count("submit", "POST") == 1


def test_past_the_deadline_the_download_failure_fails_the_try(emulator: Any, tmp_path: Path) -> None:
    job_id = completed_job(emulator)
    emulator.control.fail_requests("content", 503, times=1, retry_after=0)
    operator = make_operator(tmp_path)
    operator.hook = OpenRouterVideoHook(retry_policy=RetryPolicy(max_attempts=1))
    with pytest.raises(Exception, match="503") as info:
        operator.execute_complete(context_with(RecordingTaskInstance()), poll_event(job_id, time.time() - 1))
    assert not isinstance(info.value, TaskDeferred)


def test_without_a_deadline_in_the_event_a_failed_download_fails_the_try(
    emulator: Any, tmp_path: Path
) -> None:
    """An event from a trigger of an earlier release has no deadline: the try fails (a retry
    re-attaches and downloads), as before."""
    job_id = completed_job(emulator)
    emulator.control.fail_requests("content", 503, times=1, retry_after=0)
    operator = make_operator(tmp_path)
    operator.hook = OpenRouterVideoHook(retry_policy=RetryPolicy(max_attempts=1))
    event = {"version": 1, "status": "completed", "job_id": job_id, "message": "done"}
    with pytest.raises(Exception, match="503"):
        operator.execute_complete(context_with(RecordingTaskInstance()), event)


def test_local_write_failures_and_gone_outputs_are_not_waited_for() -> None:
    assert not download_may_recover(OutputWriteError("disk full"))
    assert not download_may_recover(VideoOutputGoneError("gone"))


async def _events(trigger: OpenRouterVideoTrigger) -> list[Any]:
    return [event async for event in trigger.run()]
