from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_orvideo._internal.atomic_output import AtomicOutput, looks_like_mp4

MP4_HEAD = b"\x00\x00\x00\x18ftypisom"


def test_mp4_signature() -> None:
    assert looks_like_mp4(MP4_HEAD)
    assert not looks_like_mp4(b"<html><body>")
    assert not looks_like_mp4(b"\x00\x00")


def test_commit_moves_complete_file_into_place(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "out.mp4"
    output = AtomicOutput(str(target)).open()
    output.write(MP4_HEAD)
    output.write(b"rest")
    assert not target.exists()  # nothing at the output path until commit
    output.commit()
    assert target.read_bytes() == MP4_HEAD + b"rest"
    assert output.head == MP4_HEAD[:8]
    assert [p.name for p in target.parent.iterdir()] == ["out.mp4"]


def test_discard_leaves_nothing_and_keeps_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(b"previous complete video")
    output = AtomicOutput(str(target)).open()
    output.write(b"partial")
    output.discard()
    assert target.read_bytes() == b"previous complete video"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_reopen_restarts_from_zero(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    output = AtomicOutput(target.as_uri()).open()
    output.write(b"garbage")
    output.open()
    output.write(MP4_HEAD)
    output.commit()
    assert target.read_bytes() == MP4_HEAD
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_object_storage_uri_goes_through_object_storage_path() -> None:
    # memory:// is a real fsspec filesystem attached as an Airflow object store; any scheme other
    # than file:// takes the ObjectStoragePath route (s3://, gs://, ...).
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    output = AtomicOutput("memory://bucket/videos/out.mp4").open()
    output.write(MP4_HEAD)
    output.commit()
    from airflow.sdk import ObjectStoragePath

    assert ObjectStoragePath("memory://bucket/videos/out.mp4").read_bytes() == MP4_HEAD
    assert [p.name for p in ObjectStoragePath("memory://bucket/videos/").iterdir()] == ["out.mp4"]


def test_owner_removes_its_own_leftovers_and_nothing_else(tmp_path: Path) -> None:
    """A try killed mid-download (SIGKILL) leaves ``.<name>.<token>.part``; the next try of the same
    task instance (same owner tag) removes it, while other writers' temporary files stay."""
    from airflow_provider_orvideo._internal.atomic_output import owner_tag

    mine = owner_tag({"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": 0})
    theirs = owner_tag({"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": 1})
    assert mine != theirs
    assert len(mine) == 6
    target = tmp_path / "out.mp4"
    killed = tmp_path / f".out.mp4.{mine}0a1b2c.part"
    kept = [
        tmp_path / f".out.mp4.{theirs}0a1b2c.part",  # another task instance writing the same path
        tmp_path / ".out.mp4.0123456789ab.part",  # a writer without an owner tag
        tmp_path / f".other.mp4.{mine}0a1b2c.part",  # another destination
        tmp_path / f".out.mp4.{mine}0a1b2c.part.bak",  # not a temporary file of this scheme
    ]
    for path in (killed, *kept):
        path.write_bytes(b"partial")
    output = AtomicOutput(str(target), owner=mine).open()
    output.write(MP4_HEAD)
    assert not killed.exists()
    output.commit()
    assert target.read_bytes() == MP4_HEAD
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.mp4", *(p.name for p in kept)])


def test_owner_tag_starts_the_temporary_name(tmp_path: Path) -> None:
    output = AtomicOutput(str(tmp_path / "out.mp4"), owner="abcdef").open()
    (temp,) = tmp_path.iterdir()
    assert temp.name.startswith(".out.mp4.abcdef")
    assert len(temp.name) == len(".out.mp4..part") + 12
    output.discard()
    with pytest.raises(ValueError, match="6 lower-case hex digits"):
        AtomicOutput(str(tmp_path / "out.mp4"), owner="not-hex")
