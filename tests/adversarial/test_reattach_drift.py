"""Re-attach survives metadata drift: only the fields that change the video decide whether a retry
may reuse the earlier job. Labels that differ per try (trace, user, session) never make a retry
pay again; a real change of the video is a new job, and the earlier one is reported, never
forgotten. Every case counts the POSTs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo._internal.submission import STATE_KEY, SubmissionRecord, fingerprint
from airflow_provider_orvideo._internal.validation import build_request_from
from airflow_provider_orvideo.decorators.openrouter_video import OpenRouterVideoDecoratedOperator
from airflow_provider_orvideo.exceptions import OpenRouterServerError, OutputExistsError
from tests.adversarial.conftest import VALID, is_mp4, run_tries, video_operator
from tests.helpers import InMemoryTaskStateStore


def fail_first_download(emulator: Any) -> None:
    """The job completes and is paid, but the first try's download fails for good (5 attempts).

    The tasks here poll on the worker (``deferrable=False``): a deferrable task would wait for the
    job and download it again within the same try (see ``tests/operators/test_download_patience.py``),
    and these tests are about what the next try re-attaches to."""
    emulator.control.add_fault("content", "status", status=503, retry_after="0", times=5)


# (case id, the operator arguments of try n)
DRIFT: list[tuple[str, Any]] = [
    ("trace holds the try number", lambda n: {"trace": {"attempt": str(n)}}),
    ("trace holds a timestamp", lambda n: {"trace": {"rendered_at": f"{time.time():.6f}"}}),
    ("user changes per try", lambda n: {"user": f"worker-{n}"}),
    ("session id changes per try", lambda n: {"session_id": f"session-{n}"}),
    (
        "every label changes",
        lambda n: {"trace": {"trace_id": f"t{n}"}, "user": f"u{n}", "session_id": f"s{n}"},
    ),
    ("airflow trace switched off on the retry", lambda n: {"airflow_trace": n == 1}),
]


@pytest.mark.parametrize("arguments", [pytest.param(a, id=i) for i, a in DRIFT])
def test_label_drift_never_pays_again(emulator: Any, tmp_path: Path, arguments: Any) -> None:
    fail_first_download(emulator)
    target = str(tmp_path / "clip.mp4")
    tries = run_tries(
        emulator, lambda n: video_operator(deferrable=False, output_path=target, **arguments(n)), tries=2
    )
    assert isinstance(tries.results[0], OpenRouterServerError)
    assert tries.last == target
    assert is_mp4(target)
    assert tries.posts == 1, "the retry re-attached to the paid job"


def test_a_taskflow_function_with_a_timestamp_in_its_trace_never_pays_again(
    emulator: Any, tmp_path: Path
) -> None:
    fail_first_download(emulator)
    target = str(tmp_path / "clip.mp4")

    def clip() -> dict[str, Any]:
        return {"prompt": "a red kite over dunes", "trace": {"built_at": f"{time.time():.6f}"}}

    def operator(_: int) -> OpenRouterVideoDecoratedOperator:
        return OpenRouterVideoDecoratedOperator(
            task_id="render",
            python_callable=clip,
            model="google/veo-3.1",
            duration=4,
            output_path=target,
            poll_interval=0.05,
            initial_poll_delays=(0.05,),
            deferrable=False,
        )

    tries = run_tries(emulator, operator, tries=2)
    assert tries.last == target
    assert tries.posts == 1


def test_a_changed_prompt_pays_for_a_new_job_and_reports_the_earlier_one(
    emulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fail_first_download(emulator)
    target = str(tmp_path / "clip.mp4")
    tries = run_tries(
        emulator,
        lambda n: video_operator(deferrable=False, output_path=target, prompt=f"a lighthouse, take {n}"),
        tries=2,
    )
    assert tries.last == target
    assert tries.posts == 2
    first_job = emulator.control.jobs()[0]
    assert tries.ti is not None
    superseded = tries.ti.xcom["superseded_jobs"]
    assert [entry["job_id"] for entry in superseded] == [first_job["id"]]
    assert superseded[0]["status"] == "completed"
    assert superseded[0]["cost"] is not None
    assert superseded[0]["outputs"] == []
    logs = capsys.readouterr().out
    assert f"Job {first_job['id']} of an earlier try of this task instance (completed, cost $" in logs


def test_a_changed_prompt_never_replaces_the_earlier_paid_video(emulator: Any, tmp_path: Path) -> None:
    """A task cleared after success, with a new prompt, would replace the video it paid for."""
    target = str(tmp_path / "clip.mp4")
    store = InMemoryTaskStateStore()
    first = run_tries(emulator, lambda _: video_operator(deferrable=False, output_path=target), store=store)
    earlier = Path(target).read_bytes()
    job_id = first.ti.xcom["job_id"]  # type: ignore[union-attr]
    again = run_tries(
        emulator,
        lambda _: video_operator(deferrable=False, output_path=target, prompt="another shot"),
        store=store,
    )
    assert isinstance(again.last, OutputExistsError)
    assert f"it holds the video of job {job_id}, which an earlier try of this task instance paid for" in str(
        again.last
    )
    assert Path(target).read_bytes() == earlier
    assert again.posts == 1
    assert again.ti.xcom["superseded_jobs"][0]["outputs"] == [target]  # type: ignore[union-attr]


def test_overwrite_replaces_the_earlier_video_but_keeps_its_record(emulator: Any, tmp_path: Path) -> None:
    target = str(tmp_path / "clip.mp4")
    store = InMemoryTaskStateStore()
    first = run_tries(emulator, lambda _: video_operator(deferrable=False, output_path=target), store=store)
    again = run_tries(
        emulator,
        lambda _: video_operator(deferrable=False, output_path=target, prompt="another shot", overwrite=True),
        store=store,
    )
    assert again.last == target
    assert again.posts == 2
    entries = again.ti.xcom["superseded_jobs"]  # type: ignore[union-attr]
    assert entries[0]["job_id"] == first.ti.xcom["job_id"]  # type: ignore[union-attr]
    assert entries[0]["outputs"] == [target]
    assert store.values[STATE_KEY]["superseded"] == entries, "kept for every later try"


def test_a_record_written_by_the_previous_release_still_re_attaches(emulator: Any, tmp_path: Path) -> None:
    """Release 1 digested the whole body; an upgrade between two tries must not pay again."""
    target = str(tmp_path / "clip.mp4")
    fail_first_download(emulator)
    store = InMemoryTaskStateStore()
    run_tries(emulator, lambda _: video_operator(deferrable=False, output_path=target), store=store)
    record = SubmissionRecord.from_json(store.values[STATE_KEY])
    assert record is not None
    trace = {
        "trace_id": "airflow:pipeline:manual__1",
        "trace_name": "pipeline",
        "span_name": "render",
        "generation_name": "pipeline.render",
        "airflow_dag_id": "pipeline",
        "airflow_task_id": "render",
        "airflow_run_id": "manual__1",
        "airflow_map_index": -1,
    }
    body = build_request_from({**VALID, "trace": trace}).to_body()
    store.values[STATE_KEY] = {
        "version": 1,
        "fingerprint": fingerprint(body, version=1),
        "phase": "submitted",
        "job_id": record.job_id,
        "outputs": {},
    }
    again = run_tries(emulator, lambda _: video_operator(deferrable=False, output_path=target), store=store)
    assert again.last == target
    assert again.posts == 1
