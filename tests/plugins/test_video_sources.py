"""Opening a recorded video for the pages: once, checked on the descriptor, streamed from it.

Real files, links, FIFOs and a real S3 server (moto); the swap races run as bounded loops of real
threads. The same attacks through the api-server are in ``tests/system/test_video_viewer.py``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo._internal.output_paths import record_writer
from airflow_provider_orvideo.plugins._video_sources import (
    LocalSource,
    StoredSource,
    open_video,
    probe,
)
from airflow_provider_orvideo.plugins._video_views import (
    LocalVideo,
    RecordedVideo,
    Refused,
    Unavailable,
    Unreachable,
)
from tests.plugins.test_video_views import TASK

MP4 = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 64
SECRET = b"[core]\nfernet_key = never-served\n" * 8
WRITER = {
    "dag_id": TASK.dag_id,
    "run_id": TASK.run_id,
    "task_id": TASK.task_id,
    "map_index": -1,
    "job_id": "j",
}


def recorded(
    *locations: str, sizes: tuple[int | None, ...] = (), host: str | None = "worker-3"
) -> RecordedVideo:
    return RecordedVideo(TASK, tuple(locations), host=host, request={"model": "m"}, sizes=sizes)


def _video(path: Path, data: bytes = MP4, writer: dict[str, object] | None = WRITER) -> Path:
    path.write_bytes(data)
    if writer is not None:
        record_writer(str(path), writer)
    return path


def _read_all(source: LocalSource | StoredSource) -> bytes:
    try:
        return source.read(0, source.size)
    finally:
        source.close()


# ------------------------------------------------------------------------------------ what is served


def test_a_file_this_task_wrote_is_opened_and_read_from_its_descriptor(tmp_path: Path) -> None:
    clip = _video(tmp_path / "clip.mp4")
    source = open_video(recorded(str(clip), sizes=(len(MP4),)), 0)
    assert isinstance(source, LocalSource)
    assert (source.size, source.media_type, source.name) == (len(MP4), "video/mp4", "clip.mp4")
    assert _read_all(source) == MP4


def test_a_file_without_a_writer_tag_or_recorded_size_is_served_when_it_is_a_video(tmp_path: Path) -> None:
    clip = _video(tmp_path / "clip.webm", b"\x1a\x45\xdf\xa3" + b"\x00" * 20, writer=None)
    assert isinstance(probe(recorded(f"file://{clip}"), 0), LocalVideo)


def test_a_video_another_task_instance_wrote_is_refused(tmp_path: Path) -> None:
    clip = _video(tmp_path / "theirs.mp4", writer={**WRITER, "dag_id": "secret_dag"})
    location = probe(recorded(str(clip)), 0)
    assert isinstance(location, Refused)
    assert "another task instance" in location.message


def test_a_file_of_another_size_than_recorded_is_refused(tmp_path: Path) -> None:
    clip = _video(tmp_path / "clip.mp4")
    location = probe(recorded(str(clip), sizes=(len(MP4) + 1,)), 0)
    assert isinstance(location, Refused)
    assert "has changed since the task saved it" in location.message


def test_a_missing_file_says_where_it_was_saved(tmp_path: Path) -> None:
    location = probe(recorded(str(tmp_path / "on-the-worker.mp4"), host="worker-3"), 0)
    assert isinstance(location, Unreachable)
    assert "worker-3" in location.message


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("airflow.cfg", SECRET, "video suffix"),
        ("fake.mp4", SECRET, "not an MP4"),
        ("empty.mp4", b"", "not an MP4"),
    ],
)
def test_what_is_not_a_video_is_never_served(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    location = probe(recorded(str(path)), 0)
    assert isinstance(location, Refused)
    assert reason in location.message
    assert "fernet_key" not in location.message


def test_a_video_named_link_to_another_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "airflow.cfg"
    secret.write_bytes(SECRET)
    (tmp_path / "innocent.mp4").symlink_to(secret)
    location = probe(recorded(str(tmp_path / "innocent.mp4")), 0)
    assert isinstance(location, Refused)
    assert "links to" in location.message


def test_a_link_to_another_tasks_video_is_refused_by_its_writer_tag(tmp_path: Path) -> None:
    theirs = _video(tmp_path / "secret_dag.mp4", writer={**WRITER, "dag_id": "secret_dag"})
    (tmp_path / "mine.mp4").symlink_to(theirs)
    assert isinstance(probe(recorded(str(tmp_path / "mine.mp4")), 0), Refused)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "folder.mp4").mkdir()
    location = probe(recorded(str(tmp_path / "folder.mp4")), 0)
    assert isinstance(location, Refused)
    assert "regular file" in location.message


def test_a_fifo_named_like_a_video_is_refused_without_blocking(tmp_path: Path) -> None:
    """An open() of a FIFO blocks until a writer comes: 13 of 60 requests hung before."""
    os.mkfifo(tmp_path / "clip.mp4")
    answers: list[Any] = []
    worker = threading.Thread(target=lambda: answers.append(probe(recorded(str(tmp_path / "clip.mp4")), 0)))
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive(), "opening a FIFO blocked"
    assert isinstance(answers[0], Refused)
    assert "regular file" in answers[0].message


def test_a_link_to_a_device_is_refused_before_anything_opens_it(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").symlink_to("/dev/zero")
    assert isinstance(probe(recorded(str(tmp_path / "clip.mp4")), 0), Refused)


def test_an_opened_video_keeps_its_bytes_when_the_path_is_swapped(tmp_path: Path) -> None:
    clip = _video(tmp_path / "clip.mp4")
    secret = tmp_path / "airflow.cfg"
    secret.write_bytes(SECRET)
    source = open_video(recorded(str(clip)), 0)
    assert isinstance(source, LocalSource)
    clip.unlink()
    (tmp_path / "clip.mp4").symlink_to(secret)
    assert _read_all(source) == MP4


def test_a_folder_swapped_for_a_link_after_resolving_is_refused(tmp_path: Path, monkeypatch: Any) -> None:
    """The path is resolved once; a folder on it that becomes a link before the open is a refusal,
    never the other folder's file."""
    real = tmp_path / "videos"
    real.mkdir()
    _video(real / "clip.mp4")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _video(elsewhere / "clip.mp4", data=MP4[:-1] + b"X")
    resolve = os.path.realpath

    def resolve_then_swap(path: Any, *args: Any, **kwargs: Any) -> str:
        resolved: str = resolve(path, *args, **kwargs)
        real.rename(tmp_path / "moved")
        real.symlink_to(elsewhere)
        return resolved

    monkeypatch.setattr(os.path, "realpath", resolve_then_swap)
    location = probe(recorded(str(real / "clip.mp4")), 0)
    assert isinstance(location, Refused)
    assert "replaced by a link" in location.message


def test_a_swap_racing_the_open_yields_the_video_or_a_refusal_never_another_file(tmp_path: Path) -> None:
    """A task swaps its recorded video for a link to a file only the api-server may read, and back,
    as fast as it can, while the pages open and read it: 2,000 rounds, bounded in time."""
    clip = _video(tmp_path / "clip.mp4")
    video = recorded(str(clip), sizes=(len(MP4),))
    secret = tmp_path / "airflow.cfg"
    secret.write_bytes(SECRET)
    link, staged = tmp_path / "link.tmp", tmp_path / "video.tmp"
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            link.unlink(missing_ok=True)
            link.symlink_to(secret)
            os.replace(link, clip)  # the recorded path is now a link to the secret
            _video(staged)
            os.replace(staged, clip)  # and a video again

    swapper = threading.Thread(target=swap)
    swapper.start()
    served = refused = 0
    deadline = time.monotonic() + 60
    try:
        for _ in range(2_000):
            if time.monotonic() > deadline:
                break
            source = open_video(video, 0)
            if isinstance(source, LocalSource):
                assert _read_all(source) == MP4
                served += 1
            else:
                assert isinstance(source, (Refused, Unreachable)), source
                assert "fernet_key" not in source.message
                refused += 1
    finally:
        stop.set()
        swapper.join()
    assert served > 0
    assert refused > 0, "the swap never won a round: the race was not exercised"


# ------------------------------------------------------------------------------------ object storage


def test_an_object_is_checked_and_read_through_one_file_object(s3: Any) -> None:
    s3.client.put_object(Bucket=s3.bucket, Key="clips/a.mp4", Body=MP4)
    video = RecordedVideo(
        TASK,
        (f"s3://{s3.bucket}/clips/a.mp4",),
        conn_id=s3.conn_id,
        request={"model": "m"},
        sizes=(len(MP4),),
    )
    source = open_video(video, 0)
    assert isinstance(source, StoredSource)
    assert source.size == len(MP4)
    assert source.read(100, 50) == MP4[100:150]
    s3.client.put_object(Bucket=s3.bucket, Key="clips/a.mp4", Body=MP4[:-1] + b"X")
    with pytest.raises(
        OSError, match="no longer exists"
    ):  # FileExpired: S3 refuses, If-Match no longer holds
        source.read(len(MP4) - 10, 10)
    source.close()


def test_an_object_of_another_size_or_kind_than_recorded_is_refused(s3: Any) -> None:
    s3.client.put_object(Bucket=s3.bucket, Key="clips/b.mp4", Body=MP4)
    s3.client.put_object(Bucket=s3.bucket, Key="clips/c.mp4", Body=SECRET)
    base = {"conn_id": s3.conn_id, "request": {"model": "m"}}
    resized = RecordedVideo(TASK, (f"s3://{s3.bucket}/clips/b.mp4",), sizes=(1,), **base)  # type: ignore[arg-type]
    assert "has changed" in probe(resized, 0).message  # type: ignore[union-attr]
    fake = RecordedVideo(TASK, (f"s3://{s3.bucket}/clips/c.mp4",), **base)  # type: ignore[arg-type]
    assert "not an MP4" in probe(fake, 0).message  # type: ignore[union-attr]
    gone = RecordedVideo(TASK, (f"s3://{s3.bucket}/clips/gone.mp4",), **base)  # type: ignore[arg-type]
    assert isinstance(probe(gone, 0), Unavailable)
