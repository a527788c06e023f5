"""Local write errors are local: a full disk, a read-only filesystem or a vanished directory after
the job was paid for is an ``OutputWriteError`` that says the job is paid and complete, where the
write failed, and that a retry downloads it again without paying. It is never retried as a
network fault (one content request), never leaves a partial file, and the retry pays nothing.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_orvideo.exceptions import OutputWriteError
from tests.adversarial.conftest import is_mp4, run_tries, video_operator
from tests.helpers import InMemoryTaskStateStore, RecordingTaskInstance, TaskDeferred, context_with


def fail_after_paying(
    emulator: Any, output_path: str, store: InMemoryTaskStateStore, while_rendering: Callable[[], None]
) -> BaseException:
    """Submit, break the disk while the job renders, resume: return what the resume raised."""
    operator = video_operator(output_path=output_path)
    context = context_with(RecordingTaskInstance(), store)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    while_rendering()

    async def first_event() -> Any:
        async for event in deferred.value.trigger.run():
            return event.payload

    event = asyncio.run(first_event())
    with pytest.raises(OutputWriteError) as failure:
        operator.execute_complete(context, event=event)
    return failure.value


def assert_paid_and_local(error: BaseException, location: str, reason: str) -> None:
    message = str(error)
    assert "is complete and paid" in message
    assert f"Writing {location}" in message
    assert reason in message
    assert "a retry of this task downloads the video again without paying" in message
    assert "network" not in message.lower()


def test_a_full_disk_is_not_a_network_fault(emulator: Any, tmpfs: Any) -> None:
    disk = tmpfs("8k")  # the emulator's clip is 10,311 bytes
    target = f"{disk.path}/clip.mp4"
    store = InMemoryTaskStateStore()
    first = run_tries(emulator, lambda _: video_operator(output_path=target), store=store)
    assert isinstance(first.last, OutputWriteError)
    assert_paid_and_local(first.last, target, "No space left on device (ENOSPC)")
    assert emulator.control.count("content") == 1, "a full disk is not retried as a cut body"
    assert list(disk.path.iterdir()) == [], "no partial file left"
    disk.remount("size=1m")
    retry = run_tries(emulator, lambda _: video_operator(output_path=target), store=store)
    assert retry.last == target
    assert is_mp4(target)
    assert retry.posts == 1, "the retry downloaded the paid job"


def test_a_filesystem_turned_read_only_while_rendering(emulator: Any, tmpfs: Any) -> None:
    disk = tmpfs("1m")
    target = f"{disk.path}/clip.mp4"
    store = InMemoryTaskStateStore()
    error = fail_after_paying(emulator, target, store, lambda: disk.remount("ro"))
    assert_paid_and_local(error, target, "Read-only file system (EROFS)")
    disk.remount("rw")
    retry = run_tries(emulator, lambda _: video_operator(output_path=target), store=store)
    assert retry.last == target
    assert retry.posts == 1


def test_a_directory_replaced_by_a_file_while_rendering(emulator: Any, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    target = f"{folder}/clip.mp4"
    store = InMemoryTaskStateStore()

    def replace_folder() -> None:
        shutil.rmtree(folder)
        folder.write_bytes(b"now a file")

    error = fail_after_paying(emulator, target, store, replace_folder)
    assert_paid_and_local(error, target, "(EEXIST)")
    assert emulator.control.count("submit", "POST") == 1
