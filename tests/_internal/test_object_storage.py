"""Object storage against a real S3-compatible server (moto's server mode, on 127.0.0.1).

The operator runs end to end against the emulator and writes to S3 through Airflow's
``ObjectStoragePath`` with an ``aws`` connection from the environment; objects are read back with
boto3. Nothing here is mocked: a separate process serves S3 over HTTP.
"""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_orvideo._internal.atomic_output import AtomicOutput
from airflow_provider_orvideo._internal.object_storage import UPLOAD_PART_BYTES
from airflow_provider_orvideo.exceptions import InvalidVideoRequestError, OutputWriteError, VideoDownloadError
from airflow_provider_orvideo.media import to_data_url
from airflow_provider_orvideo.operators.openrouter_video import OpenRouterVideoOperator
from tests.helpers import InMemoryTaskStateStore, RecordingTaskInstance, context_with, png_bytes, run_task
from tests.s3 import AWS_KEY_ID, AWS_SECRET, CONN_ID, MP4_HEAD, S3

pytest.importorskip("s3fs", reason="needs apache-airflow-providers-amazon[s3fs] (the test extra)")
boto3 = pytest.importorskip("boto3")


def served_video(emulator: Any, job_id: str) -> bytes:
    """The bytes the emulator serves for output 0 of a job (what the task must have stored)."""
    response = httpx.get(
        f"{emulator.base_url}/videos/{job_id}/content",
        params={"index": 0},
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.content


def operator(**kwargs: Any) -> OpenRouterVideoOperator:
    arguments: dict[str, Any] = {
        "task_id": "render",
        "prompt": "a lighthouse at dusk",
        "model": "google/veo-3.1",
        "duration": 4,
        "poll_interval": 0.05,
        **kwargs,
    }
    return OpenRouterVideoOperator(**arguments)


# -- end to end ---------------------------------------------------------------------------------


def test_video_streams_into_s3_with_output_conn_id(
    emulator: Any, s3: S3, caplog: pytest.LogCaptureFixture
) -> None:
    """A templated s3:// output_path plus output_conn_id: the complete MP4 lands at the key,
    uploaded in parts (20 MiB > the part size), with no temporary object left."""
    size = 20 * 1024 * 1024 + 123
    emulator.control.set_job_defaults(pending_seconds=0.05, in_progress_seconds=0.1, output_size=size)
    task = operator(
        output_path=f"s3://{s3.bucket}/videos/{{{{ ds }}}}/clip.mp4",
        output_conn_id=s3.conn_id,
    )
    task.render_template_fields({"ds": "2026-11-24"})
    ti = RecordingTaskInstance()

    result = run_task(task, context_with(ti, InMemoryTaskStateStore()))

    assert result == f"s3://{s3.bucket}/videos/2026-11-24/clip.mp4"  # the path as given
    assert ti.xcom["output_paths"] == [result]
    assert s3.keys() == ["videos/2026-11-24/clip.mp4"]  # no stray .part object
    assert s3.uploads_in_progress() == []
    stored = s3.read("videos/2026-11-24/clip.mp4")
    assert len(stored) == size
    assert stored[4:8] == b"ftyp"
    assert stored == served_video(emulator, ti.xcom["job_id"])
    assert AWS_SECRET not in caplog.text
    assert emulator.api_key not in caplog.text


def test_failed_download_leaves_no_object_and_no_part(emulator: Any, s3: S3) -> None:
    """The body is cut after 12 MiB (one part already uploaded), then the output vanishes: the task
    fails, and the bucket holds neither the video nor a temporary object nor an open upload."""
    emulator.control.set_job_defaults(
        pending_seconds=0.05, in_progress_seconds=0.1, output_size=20 * 1024 * 1024
    )
    emulator.control.add_fault("content", "truncate", truncate_at=12 * 1024 * 1024)
    emulator.control.add_fault("content", "vanish")
    task = operator(output_path=f"s3://{s3.conn_id}@{s3.bucket}/videos/clip.mp4")  # conn in the URI

    with pytest.raises(VideoDownloadError) as failure:
        run_task(task, context_with(RecordingTaskInstance(), InMemoryTaskStateStore()))

    assert "nothing was written to" in str(failure.value)
    assert len(emulator.control.requests("content")) == 2  # the cut body, then the 404
    assert s3.keys() == []
    assert s3.uploads_in_progress() == []


def test_frame_image_read_from_s3(emulator: Any, s3: S3) -> None:
    s3.client.put_object(Bucket=s3.bucket, Key="frames/first.png", Body=png_bytes(3, 3))
    task = operator(
        output_path=f"s3://{s3.bucket}/out.mp4",
        output_conn_id=s3.conn_id,
        frame_images={"first_frame": f"s3://{s3.conn_id}@{s3.bucket}/frames/first.png"},
    )
    emulator.control.set_job_defaults(pending_seconds=0.05, in_progress_seconds=0.1)

    run_task(task, context_with(RecordingTaskInstance(), InMemoryTaskStateStore()))

    body = next(r["body"] for r in emulator.control.requests("submit") if r["status"] == 202)
    assert body["frame_images"] == [
        {"type": "image_url", "image_url": {"url": to_data_url(png_bytes(3, 3))}, "frame_type": "first_frame"}
    ]
    assert s3.read("out.mp4")[4:8] == b"ftyp"


def test_input_reference_given_as_object_storage_path(emulator: Any, s3: S3, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    s3.client.put_object(Bucket=s3.bucket, Key="refs/style.png", Body=png_bytes(5, 2))
    source = ObjectStoragePath(f"s3://{s3.bucket}/refs/style.png", conn_id=s3.conn_id)
    task = operator(
        model="bytedance/seedance-2.0",
        output_path=str(tmp_path / "out.mp4"),
        input_references=[source],
    )
    context = context_with(RecordingTaskInstance())
    from tests.helpers import TaskDeferred

    with pytest.raises(TaskDeferred):
        task.execute(context)
    body = next(r["body"] for r in emulator.control.requests("submit") if r["status"] == 202)
    assert body["input_references"] == [
        {"type": "image_url", "image_url": {"url": to_data_url(png_bytes(5, 2))}}
    ]


@pytest.mark.parametrize(
    ("key", "body", "expected"),
    [
        ("frames/missing.png", None, "frames/missing.png cannot be read (No such file or directory)"),
        ("frames/notes.png", b"just some text, not an image", "is not a recognised image"),
    ],
)
def test_bad_s3_frame_fails_before_any_request(
    emulator: Any, s3: S3, key: str, body: bytes | None, expected: str
) -> None:
    if body is not None:
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=body)
    task = operator(
        output_path=f"s3://{s3.bucket}/out.mp4",
        output_conn_id=s3.conn_id,
        frame_images={"first_frame": f"s3://{s3.conn_id}@{s3.bucket}/{key}"},
    )
    with pytest.raises(InvalidVideoRequestError) as failure:
        task.execute(context_with(RecordingTaskInstance()))
    message = str(failure.value)
    assert message.startswith("frame_images['first_frame']: ")
    assert expected in message
    assert "Nothing was submitted" in message
    assert emulator.control.count("submit") == 0


def test_oversize_s3_frame_is_refused_from_its_size(emulator: Any, s3: S3) -> None:
    """stat() says it is too large: refused without downloading it (no GET on the object)."""
    big = png_bytes() + b"\x00" * (38 * 1024 * 1024)
    s3.client.put_object(Bucket=s3.bucket, Key="frames/huge.png", Body=big)
    task = operator(
        output_path=f"s3://{s3.bucket}/out.mp4",
        output_conn_id=s3.conn_id,
        frame_images={"first_frame": f"s3://{s3.conn_id}@{s3.bucket}/frames/huge.png"},
    )
    with pytest.raises(InvalidVideoRequestError, match=r"once base64-encoded; OpenRouter accepts"):
        task.execute(context_with(RecordingTaskInstance()))
    assert emulator.control.count("submit") == 0


# -- validation before any request --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"output_path": "gs://bucket/clip.mp4"},
            "output_path: 'gs://bucket/clip.mp4' uses the gs:// scheme, for which no Airflow object "
            "storage filesystem is installed on this worker. Install apache-airflow-providers-google.",
        ),
        (
            {"output_path": "s3://bucket/clip.mp4", "output_conn_id": "no_such_conn"},
            "output_path: the Airflow connection 'no_such_conn' is not defined.",
        ),
        (
            {"output_path": "s3://other_conn@bucket/clip.mp4", "output_conn_id": CONN_ID},
            "names connection 'other_conn' but the operator was given 'orvideo_s3_test'",
        ),
        (
            {"output_path": "s3://videos-no-such-bucket/clip.mp4", "output_conn_id": CONN_ID},
            "names bucket 'videos-no-such-bucket', which does not exist or is not visible with "
            "connection 'orvideo_s3_test'",
        ),
        (
            {"output_path": "/tmp/clip.mp4", "output_conn_id": CONN_ID},
            "output_conn_id='orvideo_s3_test' is set but output_path='/tmp/clip.mp4' is a local path",
        ),
    ],
)
def test_unusable_output_fails_before_any_request(
    emulator: Any, s3: S3, kwargs: dict[str, Any], expected: str
) -> None:
    with pytest.raises(InvalidVideoRequestError) as failure:
        operator(**kwargs).execute(context_with(RecordingTaskInstance()))
    assert expected in str(failure.value)
    assert "Nothing was submitted to OpenRouter" in str(failure.value)
    assert emulator.control.requests() == []  # not even the model list was fetched


def test_credentials_in_a_uri_are_refused_without_echoing_them(emulator: Any) -> None:
    task = operator(output_path=f"s3://{AWS_KEY_ID}:{AWS_SECRET}@bucket/clip.mp4")
    with pytest.raises(InvalidVideoRequestError) as failure:
        task.execute(context_with(RecordingTaskInstance()))
    message = str(failure.value)
    assert "s3://...@bucket/clip.mp4 carries a password-like user-info part" in message
    assert AWS_SECRET not in message
    assert AWS_KEY_ID not in message
    assert emulator.control.requests() == []


# -- AtomicOutput on S3: streaming, bounded memory, abort ---------------------------------------


def test_remote_output_streams_in_parts_with_bounded_memory(
    s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """120 MiB written in 1 MiB chunks: parts reach the server while writing (an upload is in
    progress before commit), Python memory stays near one part, and no local file is made."""
    local_scratch = tmp_path / "tmp"
    local_scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(local_scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(local_scratch))
    chunk = MP4_HEAD + b"\x01" * (1024 * 1024 - len(MP4_HEAD))
    total_chunks = 120
    output = AtomicOutput(f"s3://{s3.conn_id}@{s3.bucket}/big/clip.mp4").open()
    tracemalloc.start()
    try:
        for _ in range(total_chunks):
            output.write(memoryview(chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    in_progress = s3.uploads_in_progress()
    assert len(in_progress) == 1
    assert in_progress[0].startswith("big/.clip.mp4.")
    assert in_progress[0].endswith(".part")
    assert s3.keys() == []  # nothing visible before commit
    # A few parts at most, however much is written: measured 38-39 MB of peak for 80 and 160 MiB
    # (botocore keeps copies of a part for its checksums), so the bound is 6 parts of 120 MiB.
    assert peak < 6 * UPLOAD_PART_BYTES < total_chunks * len(chunk)
    output.commit()
    assert s3.keys() == ["big/clip.mp4"]
    assert s3.uploads_in_progress() == []
    assert len(s3.read("big/clip.mp4")) == total_chunks * len(chunk)
    assert list(local_scratch.iterdir()) == []


def test_remote_discard_aborts_the_upload(s3: S3) -> None:
    s3.client.put_object(Bucket=s3.bucket, Key="clip.mp4", Body=b"previous complete video")
    output = AtomicOutput(f"s3://{s3.conn_id}@{s3.bucket}/clip.mp4").open()
    for _ in range(20):  # 20 MiB: two parts already uploaded
        output.write(b"\x02" * (1024 * 1024))
    assert len(s3.uploads_in_progress()) == 1
    output.discard()
    assert s3.uploads_in_progress() == []
    assert s3.keys() == ["clip.mp4"]
    assert s3.read("clip.mp4") == b"previous complete video"


def test_missing_bucket_is_not_created(s3: S3) -> None:
    """s3fs's mkdir would create a missing bucket: a mistyped bucket must fail, not appear."""
    missing = f"{s3.bucket}-typo"
    output = AtomicOutput(f"s3://{s3.conn_id}@{missing}/clip.mp4").open()
    output.write(MP4_HEAD)
    with pytest.raises(OutputWriteError, match="bucket does not exist"):
        output.commit()
    output.discard()
    bucket_names = [b["Name"] for b in s3.client.list_buckets()["Buckets"]]
    assert missing not in bucket_names


def test_frame_on_a_scheme_without_filesystem_fails_before_any_request(emulator: Any, tmp_path: Path) -> None:
    task = operator(output_path=str(tmp_path / "out.mp4"), frame_images={"first_frame": "gs://b/first.png"})
    with pytest.raises(InvalidVideoRequestError) as failure:
        task.execute(context_with(RecordingTaskInstance()))
    assert str(failure.value).startswith(
        "frame_images['first_frame']: 'gs://b/first.png' uses the gs:// scheme, for which no Airflow "
        "object storage filesystem is installed"
    )
    assert emulator.control.requests() == []
