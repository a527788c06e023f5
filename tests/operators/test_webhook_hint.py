"""A webhook is a hint, never a verdict (issue 22): ``execute_complete`` lets one GET decide.

A signed webhook whose job OpenRouter still reports unfinished (a leaked secret, a buggy relay)
sends the task back to waiting, on the normal poll schedule and until the deadline it already
had, instead of failing a job that still renders and bills. Each test drives
``execute_complete`` with the payload the receiver hands over, against the emulator.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo.exceptions import VideoJobPollingError, VideoJobTimeoutError
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.polling import LOOPBACK_POLL_SCALE_ENV_VAR
from airflow_provider_orvideo.retry import RetryPolicy
from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger
from tests.helpers import RecordingTaskInstance, TaskDeferred, context_with
from tests.operators.test_openrouter_video import make_operator


def submitted_job(emulator: Any, *, in_progress_seconds: float) -> str:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=in_progress_seconds)
    return OpenRouterVideoHook().submit({"model": "google/veo-3.1", "prompt": "p"}).id


def webhook_event(job_id: str, status: str = "completed", **extra: Any) -> dict[str, Any]:
    """The payload ``resume_waiting_task`` hands to the task instance."""
    return {
        "version": 1,
        "status": status,
        "job_id": job_id,
        "message": f"OpenRouter video job {job_id} {status}.",
        "remote_error": None,
        "source": "webhook",
        **extra,
    }


@pytest.mark.parametrize("claimed", ["completed", "failed"])
def test_a_webhook_for_a_job_still_rendering_defers_again_on_the_normal_schedule(
    emulator: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    claimed: str,
) -> None:
    monkeypatch.setenv(LOOPBACK_POLL_SCALE_ENV_VAR, "0.5")
    job_id = submitted_job(emulator, in_progress_seconds=60)
    deadline = time.time() + 1234.5
    operator = make_operator(tmp_path, poll_interval=4, initial_poll_delays=(2, 1), webhook_poll_interval=600)
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        operator.execute_complete(
            context_with(RecordingTaskInstance()), webhook_event(job_id, claimed, deadline=deadline)
        )
    trigger = info.value.trigger
    assert isinstance(trigger, OpenRouterVideoTrigger)
    assert info.value.method_name == "execute_complete"
    assert trigger.job_id == job_id
    assert trigger.deadline == deadline  # the deadline it had, not a fresh job_timeout
    # The normal schedule (x0.5 on loopback), not webhook_poll_interval: the receiver has spent
    # this delivery's idempotency key, so the real webhook may never resume the task.
    assert (trigger.poll_interval, trigger.initial_delays) == (2.0, [1.0, 0.5])
    assert trigger.submitted_at is not None
    assert before <= trigger.submitted_at <= time.time()  # first check a schedule step from now
    assert info.value.timeout is not None
    assert timedelta(seconds=1234) < info.value.timeout <= timedelta(seconds=1234.5 + 4 + 300)
    assert emulator.control.count("poll") == 1  # the one GET that contradicted the webhook
    assert emulator.control.count("submit", "POST") == 1
    assert not (tmp_path / "out.mp4").exists()
    # The task's log (structlog, on stdout) tells the on-call reader what happened and why.
    captured = capsys.readouterr()  # Airflow 3.0 writes the task's log lines to stderr
    (warning,) = [
        line for line in (captured.out + captured.err).splitlines() if "A webhook said OpenRouter" in line
    ]
    assert (
        f"A webhook said OpenRouter video job {job_id} is {claimed}, but OpenRouter reports it in_progress. "
        "The webhook is not acted on: the task waits for the job again, on the normal poll schedule "
        "(every 2 s), until its deadline "
    ) in warning


def test_a_payload_without_a_deadline_waits_for_job_timeout_from_now(emulator: Any, tmp_path: Path) -> None:
    """From a receiver released before the payload carried the trigger's deadline."""
    job_id = submitted_job(emulator, in_progress_seconds=60)
    operator = make_operator(tmp_path, job_timeout=timedelta(minutes=20))
    with pytest.raises(TaskDeferred) as info:
        operator.execute_complete(context_with(RecordingTaskInstance()), webhook_event(job_id))
    assert 1190 < info.value.trigger.deadline - time.time() <= 1200


def test_the_video_is_saved_when_the_job_really_completes(emulator: Any, tmp_path: Path) -> None:
    """Webhook too early -> wait again -> the trigger's poll finds the end -> download. One POST."""
    job_id = submitted_job(emulator, in_progress_seconds=1.0)
    operator = make_operator(tmp_path, poll_interval=0.2, initial_poll_delays=(0.2,))
    ti = RecordingTaskInstance()
    event = webhook_event(job_id, deadline=time.time() + 60)
    with pytest.raises(TaskDeferred) as info:
        operator.execute_complete(context_with(ti), event)

    async def first_event() -> Any:
        async for trigger_event in info.value.trigger.run():
            return trigger_event.payload
        raise AssertionError("the trigger ended without an event")

    polled = asyncio.run(first_event())
    assert (polled["status"], polled["source"]) == ("completed", "poll")
    path = operator.execute_complete(context_with(ti), polled)
    assert Path(path).read_bytes()[4:8] == b"ftyp"
    assert ti.xcom["output_paths"] == [path]
    assert emulator.control.count("submit", "POST") == 1


def test_a_transient_failure_to_confirm_defers_again(emulator: Any, tmp_path: Path) -> None:
    job_id = submitted_job(emulator, in_progress_seconds=60)
    emulator.control.fail_requests("poll", 503, message="upstream hiccup")
    operator = make_operator(tmp_path)
    operator.hook = OpenRouterVideoHook(retry_policy=RetryPolicy(max_attempts=1))  # no hook retries
    deadline = time.time() + 600
    with pytest.raises(TaskDeferred) as info:
        operator.execute_complete(
            context_with(RecordingTaskInstance()), webhook_event(job_id, deadline=deadline)
        )
    assert info.value.trigger.deadline == deadline
    assert emulator.control.count("poll") == 1  # answered 503
    assert emulator.control.count("submit", "POST") == 1


def test_a_404_to_the_confirmation_waits_again_it_is_not_proof(emulator: Any, tmp_path: Path) -> None:
    """OpenRouter answered 202 with this id: a 404 about it is a replica's or a load balancer's
    answer, never a reason to give up on a paid job before its deadline."""
    with pytest.raises(TaskDeferred):
        make_operator(tmp_path).execute_complete(
            context_with(RecordingTaskInstance()),
            webhook_event("gen-vid-unknown", deadline=time.time() + 600),
        )


def test_a_confirmation_openrouter_refuses_fails_as_a_polling_error(emulator: Any, tmp_path: Path) -> None:
    """A GET OpenRouter refuses for good (a revoked key) ends the task as a poll would."""
    job_id = submitted_job(emulator, in_progress_seconds=60)
    emulator.control.add_fault("poll", "status", status=401, times=10)
    with pytest.raises(VideoJobPollingError, match="OpenRouter refused the status request"):
        make_operator(tmp_path).execute_complete(
            context_with(RecordingTaskInstance()), webhook_event(job_id, deadline=time.time() + 600)
        )


def test_past_its_deadline_a_contradicted_webhook_times_out(emulator: Any, tmp_path: Path) -> None:
    """The trigger would have given up by now: the task ends as it would have, a timeout (a retry
    re-attaches to the job), not a wait extended by the webhook."""
    job_id = submitted_job(emulator, in_progress_seconds=60)
    with pytest.raises(VideoJobTimeoutError, match="re-attaches to the same job") as info:
        make_operator(tmp_path).execute_complete(
            context_with(RecordingTaskInstance()), webhook_event(job_id, deadline=time.time() - 1)
        )
    assert "had not finished by the deadline" in str(info.value)
    assert emulator.control.count("submit", "POST") == 1
