"""``OpenRouterVideoDownloadOperator`` against the emulator: the video of a job submitted
elsewhere (here by the hook, as a script would), saved by the main operator's rules.

Every test submits its job with ``OpenRouterVideoHook().submit`` first, then counts the POSTs the
emulator received: the operator never adds one. The last test runs a real ``dag.test()``
(deferral through the triggerer loop, a retry on the real task state store: Airflow's on 3.3, a
Variable before).
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo._internal.ledger import configured_ledger
from airflow_provider_orvideo.exceptions import (
    InvalidOperatorArgumentError,
    InvalidOutputPathError,
    OpenRouterNotFoundError,
    OpenRouterServerError,
    OutputExistsError,
    VideoJobCancelledError,
    VideoJobExpiredError,
    VideoJobFailedError,
    VideoOutputGoneError,
)
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.operators.openrouter_video_download import OpenRouterVideoDownloadOperator
from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger
from tests.adversarial.conftest import airflow_home, run_dag_file  # noqa: F401 - a fixture
from tests.helpers import (
    InMemoryTaskStateStore,
    RecordingTaskInstance,
    TaskDeferred,
    context_with,
    run_task,
)


def submitted_job(emulator: Any, *, seconds: float = 0.0, **defaults: Any) -> str:
    """A job submitted outside any task, finishing ``seconds`` after its submit."""
    emulator.control.set_job_defaults(
        pending_seconds=seconds * 0.4, in_progress_seconds=seconds * 0.6, **defaults
    )
    job_id = OpenRouterVideoHook().submit({"model": "google/veo-3.1", "prompt": "a paper boat"}).id
    assert emulator.control.count("submit", "POST") == 1
    return job_id


def download_operator(job_id: str, tmp_path: Path, **kwargs: Any) -> OpenRouterVideoDownloadOperator:
    arguments: dict[str, Any] = {
        "task_id": "download",
        "job_id": job_id,
        "output_path": str(tmp_path / "clip.mp4"),
        "poll_interval": 0.05,
        **kwargs,
    }
    return OpenRouterVideoDownloadOperator(**arguments)


def only_the_scripts_post(emulator: Any) -> None:
    """The one POST is the job's own submit: the operator made none."""
    assert [r["method"] for r in emulator.control.requests("submit")] == ["POST"]


class OutletEvents:
    """Airflow's ``outlet_events`` accessor, by asset (an Asset is not hashable on Airflow 3.0)."""

    def __init__(self, asset: Any) -> None:
        self.asset = asset
        self.event = type("OutletEvent", (), {"extra": {}})()

    def __getitem__(self, key: Any) -> Any:
        assert key is self.asset
        return self.event


def test_a_completed_job_is_saved_at_once_with_the_main_operators_record(
    emulator: Any, tmp_path: Path
) -> None:
    from airflow.sdk import Asset

    job_id = submitted_job(emulator, cost=0.42)
    asset = Asset("videos/downloaded")
    outlet_events = OutletEvents(asset)
    ti = RecordingTaskInstance()
    context = {**context_with(ti, InMemoryTaskStateStore()), "outlet_events": outlet_events}
    path = download_operator(job_id, tmp_path, outlets=[asset]).execute(context)  # no deferral
    assert path == str(tmp_path / "clip.mp4")
    assert Path(path).read_bytes()[4:8] == b"ftyp"
    size = Path(path).stat().st_size
    assert ti.xcom["job_id"] == job_id
    assert ti.xcom["usage"] == {"cost": 0.42, "is_byok": False}
    assert ti.xcom["generation_id"]
    assert (ti.xcom["output_paths"], ti.xcom["output_sizes"]) == ([path], [size])
    assert ti.xcom["output_host"]
    assert outlet_events.event.extra == {
        "job_id": job_id,
        "generation_id": ti.xcom["generation_id"],
        "model": None,  # the request is not known to a download
        "cost": 0.42,
        "duration": None,
        "output_uris": [Path(path).as_uri()],
        "host": ti.xcom["output_host"],
    }
    assert emulator.control.count("poll") == 1  # one look, which also fed the download
    only_the_scripts_post(emulator)
    entry = configured_ledger().entry(job_id)  # booked like a job a task submitted
    assert entry is not None
    assert (entry["status"], entry["cost_usd"], entry["kept"]) == ("completed", 0.42, [path])


def test_a_job_still_rendering_defers_on_the_trigger_then_is_saved(emulator: Any, tmp_path: Path) -> None:
    job_id = submitted_job(emulator, seconds=1.5)
    ti = RecordingTaskInstance()
    context = context_with(ti, InMemoryTaskStateStore())
    operator = download_operator(job_id, tmp_path, job_timeout=600)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, OpenRouterVideoTrigger)
    assert (trigger.job_id, deferred.value.method_name) == (job_id, "execute_complete")
    # Its age is unknown: a check every poll_interval from the look, none at once.
    assert (trigger.poll_interval, trigger.initial_delays) == (0.05, [0.05])
    assert 590 < trigger.deadline - (trigger.submitted_at or 0) <= 600
    assert emulator.api_key not in repr(trigger.serialize())
    assert ti.xcom["job_id"] == job_id
    assert not (tmp_path / "clip.mp4").exists()
    # The triggerer's loop, then the resumed task (a new operator, as after a real deferral).
    path = run_task(download_operator(job_id, tmp_path, job_timeout=600), context)
    assert Path(path).read_bytes()[4:8] == b"ftyp"
    assert ti.xcom["output_paths"] == [path]
    only_the_scripts_post(emulator)


def test_deferrable_false_waits_on_the_worker(emulator: Any, tmp_path: Path) -> None:
    job_id = submitted_job(emulator, seconds=0.6)
    ti = RecordingTaskInstance()
    path = download_operator(job_id, tmp_path, deferrable=False).execute(context_with(ti))
    assert Path(path).read_bytes()[4:8] == b"ftyp"
    assert emulator.control.count("poll") >= 2
    only_the_scripts_post(emulator)


@pytest.mark.parametrize(
    ("outcome", "error_class"),
    [
        ("failed", VideoJobFailedError),
        ("cancelled", VideoJobCancelledError),
        ("expired", VideoJobExpiredError),
    ],
)
@pytest.mark.parametrize("seconds", [0.0, 0.6], ids=["ended-before", "ended-while-waiting"])
def test_a_job_that_ended_without_a_video_fails_as_in_the_main_operator(
    emulator: Any, tmp_path: Path, outcome: str, error_class: type[Exception], seconds: float
) -> None:
    emulator.control.jobs_end_as(outcome, error="Content policy violation")  # type: ignore[arg-type]
    job_id = submitted_job(emulator, seconds=seconds)
    with pytest.raises(error_class) as info:
        run_task(download_operator(job_id, tmp_path), context_with(RecordingTaskInstance()))
    assert f"OpenRouter video job {job_id} ended {outcome}: Content policy violation" in str(info.value)
    assert getattr(info.value, "job_id", None) == job_id
    assert not list(tmp_path.iterdir())
    assert emulator.control.count("content") == 0
    only_the_scripts_post(emulator)


def test_an_unknown_job_id_is_named_and_nothing_is_posted(emulator: Any, tmp_path: Path) -> None:
    operator = download_operator("vid-no-such-job", tmp_path)
    with pytest.raises(OpenRouterNotFoundError) as info:
        operator.execute(context_with(RecordingTaskInstance()))
    message = str(info.value)
    assert "OpenRouter has no video job 'vid-no-such-job' (HTTP 404" in message
    assert "this task never submits a job" in message
    assert emulator.api_key not in message
    assert emulator.control.count("submit") == 0
    assert not list(tmp_path.iterdir())


def test_content_openrouter_no_longer_serves_names_the_job(emulator: Any, tmp_path: Path) -> None:
    job_id = submitted_job(emulator)
    emulator.control.fail_requests("content", 410, times=20, message="Video expired")
    with pytest.raises(VideoOutputGoneError) as info:
        run_task(download_operator(job_id, tmp_path), context_with(RecordingTaskInstance()))
    assert str(info.value).startswith(f"OpenRouter no longer serves the video of job {job_id}: Output 0 ")
    assert "is no longer available (HTTP 410: Video expired)" in str(info.value)
    assert not list(tmp_path.iterdir())  # no partial file
    only_the_scripts_post(emulator)


def test_a_file_this_task_did_not_write_is_refused_before_waiting(emulator: Any, tmp_path: Path) -> None:
    job_id = submitted_job(emulator, seconds=30)
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"someone else's video")
    with pytest.raises(OutputExistsError, match=r"already exists and this task instance did not write it"):
        download_operator(job_id, tmp_path).execute(context_with(RecordingTaskInstance()))
    assert target.read_bytes() == b"someone else's video"
    assert emulator.control.count("poll") == 0  # refused before asking OpenRouter or waiting
    # With overwrite=True the same task waits for the job instead.
    with pytest.raises(TaskDeferred):
        download_operator(job_id, tmp_path, overwrite=True).execute(context_with(RecordingTaskInstance()))
    only_the_scripts_post(emulator)


def test_an_unusable_output_path_is_refused_before_any_request(emulator: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidOutputPathError, match="is relative"):
        download_operator("vid-x", tmp_path, output_path="videos/clip.mp4").execute(
            context_with(RecordingTaskInstance())
        )
    assert emulator.control.requests() == []


def test_a_retry_keeps_the_outputs_an_earlier_try_saved(emulator: Any, tmp_path: Path) -> None:
    job_id = submitted_job(emulator, outputs=2)
    emulator.control.add_fault("content", "delay", seconds=0)  # output 0 of try 1: saved
    emulator.control.fail_requests("content", 503, times=5, retry_after=0)  # output 1 of try 1: fails
    store = InMemoryTaskStateStore()  # one task instance's store across its tries

    def one_try() -> Any:
        operator = download_operator(job_id, tmp_path, deferrable=False)
        return operator.execute(context_with(RecordingTaskInstance(), store))

    with pytest.raises(OpenRouterServerError, match="download with HTTP 503"):
        one_try()
    first = tmp_path / "clip.mp4"
    saved_first = first.stat()
    assert not (tmp_path / "clip_1.mp4").exists()
    assert one_try() == str(first)  # the retry
    assert first.stat().st_ino == saved_first.st_ino  # kept, not downloaded again
    assert (tmp_path / "clip_1.mp4").read_bytes()[4:8] == b"ftyp"
    indexes = [r["query"].get("index") for r in emulator.control.requests("content")]
    assert indexes.count("0") == 1, indexes
    only_the_scripts_post(emulator)


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"job_id": ""}, "job_id=''"),
        ({"job_id": "vid-1 vid-2"}, "job_id='vid-1 vid-2'"),
        ({"job_id": 42}, "job_id=42 must be the id of an OpenRouter video job"),
        ({"poll_interval": 0}, "poll_interval=0"),
        ({"job_timeout": -1}, "job_timeout=-1"),
        ({"overwrite": "yes"}, "overwrite='yes' must be True or False"),
        ({"openrouter_conn_id": ""}, "openrouter_conn_id=''"),
    ],
)
def test_bad_arguments_fail_at_dag_parse(tmp_path: Path, kwargs: dict[str, Any], fragment: str) -> None:
    arguments = {"job_id": "vid-1", **kwargs}
    with pytest.raises(InvalidOperatorArgumentError) as info:
        download_operator(arguments.pop("job_id"), tmp_path, **arguments)
    assert fragment in str(info.value)
    assert "OpenRouterVideoDownloadOperator (task 'download')" in str(info.value)


def test_a_templated_job_id_is_checked_once_rendered(emulator: Any, tmp_path: Path) -> None:
    operator = download_operator("{{ params.job }}", tmp_path)  # not checked at parse
    operator.job_id = "  "  # as rendered from an empty param
    with pytest.raises(InvalidOperatorArgumentError, match="job_id='  '"):
        operator.execute(context_with(RecordingTaskInstance()))
    assert emulator.control.requests() == []


def test_parsing_a_dag_with_it_makes_no_request(emulator: Any, tmp_path: Path) -> None:
    for index in range(20):
        download_operator(f"vid-{index}", tmp_path, task_id=f"download_{index}")
    assert emulator.control.requests() == []


# -- a real dag.test() ----------------------------------------------------------------------------

DAG = textwrap.dedent(
    """
    import datetime, os
    from airflow.sdk import DAG, task
    from airflow_provider_orvideo.operators.openrouter_video_download import OpenRouterVideoDownloadOperator

    with DAG("download_a_job", schedule=None, start_date=datetime.datetime(2025, 1, 1)) as dag:

        @task
        def submit_elsewhere():
            # What a script or another system does; the download operator only knows the id.
            from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook

            return OpenRouterVideoHook().submit({"model": "google/veo-3.1", "prompt": "a lighthouse"}).id

        waits = OpenRouterVideoDownloadOperator(
            task_id="waits",
            job_id="{{ ti.xcom_pull(task_ids='submit_elsewhere') }}",
            output_path=os.environ["OUT"] + "/waits-{{ ts_nodash }}.mp4",
            poll_interval=0.2,
        )
        retried = OpenRouterVideoDownloadOperator(
            task_id="retried",
            job_id=os.environ["TWO_OUTPUT_JOB"],
            output_path=os.environ["OUT"] + "/retried.mp4",
            deferrable=False,
            retries=1,
            retry_delay=datetime.timedelta(seconds=0),
        )
        submit_elsewhere() >> waits >> retried

    if __name__ == "__main__":
        dag.test()
    """
)


def test_dag_test_defers_then_saves_and_a_retry_keeps_the_saved_output(
    airflow_home: Path,  # noqa: F811 - the fixture imported above
    emulator: Any,
    tmp_path: Path,
) -> None:
    two_outputs = submitted_job(emulator, outputs=2)
    emulator.control.set_job_defaults(pending_seconds=0.6, in_progress_seconds=0.9, outputs=1)  # in the DAG
    # "waits" looks at its job while it renders, whatever the gap between tasks (5 s in dag.test()
    # before Airflow 3.3): its one GET reads "pending"; the trigger's polls read the real status.
    emulator.control.add_fault("poll", "unknown_status", value="pending")
    emulator.control.add_fault("content", "delay", seconds=0)  # "waits": its one output
    emulator.control.add_fault("content", "delay", seconds=0)  # "retried", try 1: output 0 saved
    emulator.control.fail_requests("content", 503, times=5, retry_after=0)  # try 1: output 1 fails
    out = tmp_path / "out"
    run = run_dag_file(
        airflow_home, emulator, DAG, "download_a_job", {"OUT": str(out), "TWO_OUTPUT_JOB": two_outputs}
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    # The test's submit and the DAG's "elsewhere": the download tasks added none.
    assert emulator.control.count("submit", "POST") == 2, output[-6000:]
    assert "Pausing task as DEFERRED" in output, output[-6000:]  # "waits" found its job rendering
    (waited,) = out.glob("waits-*.mp4")
    assert waited.read_bytes()[4:8] == b"ftyp"
    assert (out / "retried.mp4").read_bytes()[4:8] == b"ftyp"
    assert (out / "retried_1.mp4").read_bytes()[4:8] == b"ftyp"
    # Output 0 of the retried task was saved once, by try 1, and kept by try 2.
    retried_content = [r for r in emulator.control.requests("content") if two_outputs in r["path"]]
    assert [r["query"].get("index") for r in retried_content].count("0") == 1, retried_content
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        states = dict(
            db.execute(
                "SELECT task_id, state || ':' || try_number FROM task_instance WHERE dag_id = 'download_a_job'"
            ).fetchall()
        )
        paths = dict(
            db.execute(
                "SELECT task_id, value FROM xcom WHERE dag_id = 'download_a_job' AND key = 'output_paths'"
            ).fetchall()
        )
    assert states == {"submit_elsewhere": "success:1", "waits": "success:1", "retried": "success:2"}, output[
        -6000:
    ]
    assert json.loads(paths["waits"]) == [str(waited)]
    assert json.loads(paths["retried"]) == [str(out / "retried.mp4"), str(out / "retried_1.mp4")]
