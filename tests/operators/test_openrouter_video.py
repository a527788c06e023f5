from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo.exceptions import (
    InvalidVideoRequestError,
    TriggerEventError,
    VideoJobCancelledError,
    VideoJobExpiredError,
    VideoJobFailedError,
    VideoJobPollingError,
    VideoJobTimeoutError,
)
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger
from tests.helpers import AIRFLOW_VERSION, RecordingTaskInstance, TaskDeferred, context_with


def make_operator(tmp_path: Path, **kwargs: Any) -> OpenRouterVideoOperator:
    arguments: dict[str, Any] = {
        "task_id": "render",
        "prompt": "a paper boat on a river",
        "model": "google/veo-3.1",
        "output_path": str(tmp_path / "out.mp4"),
        "duration": 4,
        "poll_interval": 0.05,
        **kwargs,
    }
    return OpenRouterVideoOperator(**arguments)


def test_execute_submits_pushes_job_id_and_defers(emulator: Any, tmp_path: Path) -> None:
    operator = make_operator(tmp_path, job_timeout=timedelta(minutes=5))
    ti = RecordingTaskInstance()
    with pytest.raises(TaskDeferred) as info:
        operator.execute(context_with(ti))
    trigger = info.value.trigger
    assert isinstance(trigger, OpenRouterVideoTrigger)
    assert info.value.method_name == "execute_complete"
    assert trigger.job_id == ti.xcom["job_id"]
    assert trigger.poll_interval == 0.05
    assert 250 < trigger.deadline - __import__("time").time() <= 300
    assert info.value.timeout is not None
    assert info.value.timeout > timedelta(minutes=5)
    assert emulator.control.count("submit", "POST") == 1
    assert emulator.control.requests("submit")[0]["body"] == {
        "model": "google/veo-3.1",
        "prompt": "a paper boat on a river",
        "duration": 4,
        "trace": {
            "trace_id": "airflow:pipeline:manual__1",
            "trace_name": "pipeline",
            "span_name": "render",
            "generation_name": "pipeline.render",
            "airflow_dag_id": "pipeline",
            "airflow_task_id": "render",
            "airflow_run_id": "manual__1",
            "airflow_map_index": -1,
        },
    }


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"duration": 7}, "duration=7 is not supported by model google/veo-3.1; allowed: 4, 6, 8"),
        ({"model": "acme/unknown"}, "model='acme/unknown' is not an OpenRouter video model"),
        ({"resolution": "4K"}, "resolution='4K'"),
        ({"aspect_ratio": "21:9"}, "aspect_ratio='21:9'"),
        ({"size": "12x"}, "size='12x' must look like"),
    ],
)
def test_invalid_input_fails_before_any_post(
    emulator: Any, tmp_path: Path, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidVideoRequestError) as info:
        make_operator(tmp_path, **kwargs).execute(context_with(RecordingTaskInstance()))
    assert fragment in str(info.value)
    assert emulator.control.count("submit", "POST") == 0


def completed_job(emulator: Any) -> str:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0, cost=0.42)
    return OpenRouterVideoHook().submit({"model": "google/veo-3.1", "prompt": "p"}).id


def test_execute_complete_downloads_and_returns_the_path(emulator: Any, tmp_path: Path) -> None:
    job_id = completed_job(emulator)
    ti = RecordingTaskInstance()
    event = {"version": 1, "status": "completed", "job_id": job_id, "message": "done", "remote_error": None}
    result = make_operator(tmp_path).execute_complete(context_with(ti), event)
    assert result == str(tmp_path / "out.mp4")
    assert Path(result).read_bytes()[4:8] == b"ftyp"
    assert ti.xcom["usage"] == {"cost": 0.42, "is_byok": False}
    assert ti.xcom["generation_id"]
    assert ti.xcom["output_paths"] == [result]
    assert ti.xcom["output_sizes"] == [Path(result).stat().st_size]
    assert ti.xcom["output_host"] == socket.gethostname()


def test_multiple_outputs_are_all_downloaded(emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0, outputs=2)
    job_id = OpenRouterVideoHook().submit({"model": "google/veo-3.1", "prompt": "p"}).id
    ti = RecordingTaskInstance()
    event = {"status": "completed", "job_id": job_id}
    result = make_operator(tmp_path).execute_complete(context_with(ti), event)
    assert ti.xcom["output_paths"] == [result, str(tmp_path / "out_1.mp4")]
    assert (tmp_path / "out_1.mp4").stat().st_size > 0


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        ("failed", VideoJobFailedError),
        ("cancelled", VideoJobCancelledError),
        ("expired", VideoJobExpiredError),
        ("timeout", VideoJobTimeoutError),
        ("error", VideoJobPollingError),
    ],
)
def test_execute_complete_failures_raise_by_status(tmp_path: Path, status: str, cls: type[Exception]) -> None:
    event = {
        "version": 1,
        "status": status,
        "job_id": "gen-vid-9",
        "message": f"OpenRouter video job gen-vid-9 ended {status}: Content policy violation",
        "remote_error": "Content policy violation",
    }
    with pytest.raises(cls) as info:
        make_operator(tmp_path).execute_complete(context_with(RecordingTaskInstance()), event)
    assert "Content policy violation" in str(info.value)
    # The operator's retries default to 3 and this is try 1: the message says what try 2 does.
    assert "The next try (2 of 4)" in str(info.value)
    if status == "timeout":  # the job may still be running: a retry re-attaches to it
        assert "re-attaches to the same job (no new payment)" in str(info.value)
    elif status == "error":  # a retry asks about the job first; a 404 alone never pays again
        assert "asks OpenRouter about the same job first" in str(info.value)
        assert "answers 404 with orphan_policy='resubmit'" in str(info.value)
    else:  # OpenRouter's verdict: paid again only when asked for
        assert "does not submit again (resubmit_failed_jobs=False)" in str(info.value)
    assert info.value.job_id == "gen-vid-9"
    assert not (tmp_path / "out.mp4").exists()


def test_the_last_try_says_a_clear_acts_next(tmp_path: Path) -> None:
    ti = RecordingTaskInstance()
    ti.try_number = 1
    event = {"version": 1, "status": "timeout", "job_id": "gen-vid-9", "message": "Deadline passed."}
    with pytest.raises(VideoJobTimeoutError, match="No retry is left; clearing this task re-attaches"):
        make_operator(tmp_path, retries=0).execute_complete(context_with(ti), event)


@pytest.mark.parametrize("event", [None, {}, {"status": "success", "job_id": "x"}])
def test_execute_complete_rejects_bad_events(tmp_path: Path, event: Any) -> None:
    with pytest.raises(TriggerEventError):
        make_operator(tmp_path).execute_complete(context_with(RecordingTaskInstance()), event)


def test_non_deferrable_polls_on_the_worker(emulator: Any, tmp_path: Path) -> None:
    ti = RecordingTaskInstance()
    result = make_operator(tmp_path, deferrable=False).execute(context_with(ti))
    assert Path(result).stat().st_size > 0
    assert ti.xcom["job_id"]
    assert ti.xcom["usage"]["cost"] is not None
    assert emulator.control.count("submit", "POST") == 1
    assert emulator.control.count("poll") >= 2


def test_non_deferrable_failure_uses_the_same_decision(emulator: Any, tmp_path: Path) -> None:
    emulator.control.set_job_defaults(outcome="failed", error="Content policy violation")
    with pytest.raises(VideoJobFailedError, match="Content policy violation"):
        make_operator(tmp_path, deferrable=False).execute(context_with(RecordingTaskInstance()))


def test_operator_construction_makes_no_network_call(emulator: Any, tmp_path: Path) -> None:
    for i in range(50):
        make_operator(tmp_path, task_id=f"t{i}")
    assert emulator.control.requests() == []


@pytest.mark.parametrize(
    ("kwargs", "fragment"), [({"poll_interval": 0}, "poll_interval"), ({"job_timeout": -1}, "job_timeout")]
)
def test_bad_timing_arguments_fail_at_parse_time(
    tmp_path: Path, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        make_operator(tmp_path, **kwargs)


def test_dag_parsing_imports_only_the_operator_module() -> None:
    """The dag-processor imports the operator all day: the hook, trigger, validation, media and
    state modules load only when a task runs (the link class and the request field table are
    small modules) (benchmarks/README.md has the import cost)."""
    import subprocess
    import sys

    code = (
        "import sys, airflow_provider_orvideo.operators.openrouter_video; "
        "print(sorted(m for m in sys.modules if m.startswith('airflow_provider_orvideo')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    expected = {
        "airflow_provider_orvideo",
        # The request field table gives template_fields; standard library only (and __init__ of
        # every operator in a DAG file runs its checks anyway).
        "airflow_provider_orvideo._internal",
        "airflow_provider_orvideo._internal.field_checks",
        "airflow_provider_orvideo._internal.request_fields",
        "airflow_provider_orvideo.defaults",
        "airflow_provider_orvideo.links",
        "airflow_provider_orvideo.links.openrouter_video",  # the "Watch video" button's class
        "airflow_provider_orvideo.operators",
        "airflow_provider_orvideo.operators.openrouter_video",
    }
    if AIRFLOW_VERSION >= (3, 2):
        expected.add("airflow_provider_orvideo.get_provider_info")  # read at start-up from 3.2
    assert loaded.strip() == str(sorted(expected))


def test_after_deferral_the_submitted_request_is_read_not_parsed_again(emulator: Any, tmp_path: Path) -> None:
    """``execute`` records the validated request (XCom ``video_request``); ``execute_complete`` on a
    fresh operator reads it for the asset event, whatever its own arguments would render to now."""
    from airflow.sdk import Asset

    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    ti = RecordingTaskInstance()
    with pytest.raises(TaskDeferred) as info:
        make_operator(tmp_path, duration="0004").execute(context_with(ti))
    assert ti.xcom["video_request"] == {
        "model": "google/veo-3.1",
        "prompt": "a paper boat on a river",
        "duration": 4,
        "resolution": None,
        "aspect_ratio": None,
        "size": None,
        "generate_audio": None,
        "seed": None,
    }
    asset = Asset("videos/boat")
    resumed = make_operator(tmp_path, duration="{{ broken", model="not/validated", outlets=[asset])
    outlet_event = type("OutletEvent", (), {"extra": {}})()

    class OutletEvents:  # Airflow's accessor by asset (an Asset is not hashable on Airflow 3.0)
        def __getitem__(self, key: Any) -> Any:
            assert key is asset
            return outlet_event

    context = {**context_with(ti), "outlet_events": OutletEvents()}
    event = {"status": "completed", "job_id": info.value.trigger.job_id}
    assert resumed.execute_complete(context, event) == str(tmp_path / "out.mp4")
    assert outlet_event.extra["model"] == "google/veo-3.1"
    assert outlet_event.extra["duration"] == 4


# -- webhooks (issue 14) ------------------------------------------------------------------------

RECEIVER = "https://airflow.example.com/orvideo/webhook"


def _with_callback_extra(monkeypatch: pytest.MonkeyPatch, emulator: Any, url: str) -> None:
    import json

    from tests.conftest import EMULATOR_API_KEY

    connection = {
        "conn_type": "openrouter",
        "host": emulator.server.base_url,
        "password": EMULATOR_API_KEY,
        "extra": {"callback_url": url, "webhook_secret": "whsec-op"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_OPENROUTER_DEFAULT", json.dumps(connection))


def test_the_connections_callback_url_is_submitted_with_the_task_identity(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from urllib.parse import parse_qsl, urlsplit

    _with_callback_extra(monkeypatch, emulator, RECEIVER)
    operator = make_operator(tmp_path, webhook_poll_interval=420)
    ti = RecordingTaskInstance()
    with pytest.raises(TaskDeferred) as info:
        operator.execute(context_with(ti))
    # What the webhook set-up check (docs/webhooks.md) tells the platform engineer to look for.
    assert f"with a webhook to {RECEIVER}; safety polls every 420 s" in capsys.readouterr().out
    body = emulator.control.requests("submit")[0]["body"]
    url = urlsplit(body["callback_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == RECEIVER
    assert dict(parse_qsl(url.query)) == {
        "conn_id": "openrouter_default",
        "dag_id": "pipeline",
        "task_id": "render",
        "run_id": "manual__1",
        "map_index": "-1",
    }
    assert "callback_url" not in ti.xcom["video_request"]  # not part of what the video is
    # The trigger only keeps a safety poll: first check after webhook_poll_interval, then every it.
    trigger = info.value.trigger
    assert (trigger.poll_interval, trigger.initial_delays) == (420, [420])
    assert info.value.timeout > timedelta(seconds=3600 + 420)
    assert "whsec-op" not in repr(trigger.serialize())


@pytest.mark.parametrize("kwargs", [{"callback_url": ""}, {"deferrable": False, "poll_interval": 0.05}])
def test_no_callback_when_opted_out_or_nothing_would_wait(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any]
) -> None:
    _with_callback_extra(monkeypatch, emulator, RECEIVER)
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0)
    operator = make_operator(tmp_path, **kwargs)
    deferred: list[Any] = []
    try:
        operator.execute(context_with(RecordingTaskInstance()))
    except TaskDeferred as error:
        deferred.append(error.trigger)
    assert [trigger.poll_interval for trigger in deferred] == ([] if "deferrable" in kwargs else [0.05])
    assert "callback_url" not in emulator.control.requests("submit")[0]["body"]


def test_the_operators_own_callback_url_wins(emulator: Any, tmp_path: Path) -> None:
    operator = make_operator(tmp_path, callback_url="http://127.0.0.1:9/orvideo/webhook?tenant=a")
    with pytest.raises(TaskDeferred):
        operator.execute(context_with(RecordingTaskInstance()))
    sent = emulator.control.requests("submit")[0]["body"]["callback_url"]
    assert sent.startswith(
        "http://127.0.0.1:9/orvideo/webhook?tenant=a&conn_id=openrouter_default&dag_id=pipeline"
    )


def test_a_connection_with_an_unusable_callback_url_fails_before_paying(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_orvideo.exceptions import InvalidConnectionError

    _with_callback_extra(monkeypatch, emulator, "http://airflow.example.com/orvideo/webhook")
    with pytest.raises(InvalidConnectionError, match=r"extra field 'callback_url'.*https:// URLs only"):
        make_operator(tmp_path).execute(context_with(RecordingTaskInstance()))
    assert emulator.control.count("submit", "POST") == 0


@pytest.mark.parametrize("remote", ["completed", "failed"])
def test_a_webhook_event_is_confirmed_by_one_get(emulator: Any, tmp_path: Path, remote: str) -> None:
    """OpenRouter's GET, not the webhook, decides: a webhook saying "completed" for a job that
    failed fails the task (one for a job still rendering: tests/operators/test_webhook_hint.py)."""
    emulator.control.set_job_defaults(pending_seconds=0, in_progress_seconds=0, outcome=remote)
    job_id = OpenRouterVideoHook().submit({"model": "google/veo-3.1", "prompt": "p"}).id
    polls_before = emulator.control.count("poll")
    event = {"version": 1, "status": "completed", "job_id": job_id, "message": "m", "source": "webhook"}
    operator = make_operator(tmp_path)
    if remote == "completed":
        assert operator.execute_complete(context_with(RecordingTaskInstance()), event).endswith("out.mp4")
    else:
        with pytest.raises(VideoJobFailedError):
            operator.execute_complete(context_with(RecordingTaskInstance()), event)
    assert emulator.control.count("poll") - polls_before == 1  # one GET confirms and feeds the download


def test_the_deprecated_poll_failure_cap_warns_where_it_is_passed_and_is_ignored(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match=r"max_consecutive_poll_failures=2\) is deprecated") as caught:
        operator = make_operator(tmp_path, max_consecutive_poll_failures=2)
    assert caught[0].filename == __file__  # the DAG file's line, not the provider's
    assert not hasattr(operator, "max_consecutive_poll_failures")
