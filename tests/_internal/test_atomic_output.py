from __future__ import annotations

from pathlib import Path

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
