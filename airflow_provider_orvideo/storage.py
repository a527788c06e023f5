"""Write a downloaded video so that the output path only ever holds a complete file.

Bytes go to a temporary sibling (``.<name>.<random>.part``) and are moved into place only after
the caller has checked the length and the MP4 signature. On any failure the temporary file is
removed, so a reader of ``output_path`` sees either nothing or a complete video, never a torn one.

Local paths (and ``file://`` URIs) use ``os.replace`` (atomic on one filesystem) after
``fsync``. While writing, every :data:`WRITEBACK_EVERY_BYTES` the range just written is handed to
the kernel for writeback (``posix_fadvise(DONTNEED)``), so the disk works while the network does,
the final ``fsync`` has little left to do, and a multi-GiB video does not fill the worker's page
cache. Other schemes (``s3://``, ``gs://``, ...) go through Airflow's ``ObjectStoragePath``;
there the final move is a server-side copy, which object stores make visible all at once.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from typing import TYPE_CHECKING, BinaryIO

from airflow_provider_orvideo.object_storage import local_path

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

WRITEBACK_EVERY_BYTES = 32 * 1024 * 1024
"""How often a local download starts writeback of what it wrote (measured in benchmarks/README.md)."""

MP4_TOP_LEVEL_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"styp"})
"""Box types an MP4 file may start with (almost always ``ftyp``)."""


def looks_like_mp4(head: bytes) -> bool:
    """True when the first 8 bytes are an ISO-BMFF box header of a plausible top-level type."""
    return len(head) >= 8 and head[4:8] in MP4_TOP_LEVEL_BOXES


def output_location(output_path: str, index: int) -> str:
    """Where output ``index`` of a job goes: ``output_path`` itself for 0, ``<stem>_<index><suffix>`` after."""
    if index == 0:
        return output_path
    head, tail = posixpath.split(output_path)
    stem, dot, suffix = tail.rpartition(".")
    name = f"{stem}_{index}.{suffix}" if dot and stem else f"{tail}_{index}"
    return posixpath.join(head, name)


class AtomicOutput:
    """A temporary sibling of the destination that becomes the destination only on :meth:`commit`."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._local = local_path(location)
        self._handle: BinaryIO | None = None
        self._remote_temp: ObjectStoragePath | None = None
        self._temp_local: str | None = None
        self.bytes_written = 0
        self.head = b""
        self._written_back = 0

    def open(self) -> AtomicOutput:
        """Start (or restart from zero) the temporary file."""
        self.discard()
        token = uuid.uuid4().hex[:12]
        if self._local is not None:
            directory, name = os.path.split(os.path.abspath(self._local))
            os.makedirs(directory, exist_ok=True)
            self._temp_local = os.path.join(directory, f".{name}.{token}.part")
            # Unbuffered: writes are already network-sized; a buffer would only add a copy.
            self._handle = open(self._temp_local, "wb", buffering=0)  # noqa: SIM115 - closed in commit/discard
        else:
            from airflow.sdk import ObjectStoragePath

            from airflow_provider_orvideo.object_storage import BUCKET_SCHEMES, UPLOAD_PART_BYTES

            # The location may name its connection (s3://conn_id@bucket/key): ObjectStoragePath
            # parses it, and paths derived from it (parent, the temporary sibling) keep it.
            target = ObjectStoragePath(self.location)
            self._remote_temp = target.parent / f".{target.name}.{token}.part"
            # The filesystem's own file, not ObjectStoragePath.open(): that wrapper records lineage
            # on every write() (of the temporary name). fsspec's buffered writers (s3fs, gcsfs ...)
            # hold one upload part in memory and send each part as it fills (multipart upload):
            # nothing touches local disk and memory stays bounded by the part size.
            fs = self._remote_temp.fs
            if target.protocol in BUCKET_SCHEMES:
                self._handle = fs.open(self._remote_temp.path, "wb", block_size=UPLOAD_PART_BYTES)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._handle = fs.open(self._remote_temp.path, "wb")
        self.bytes_written = 0
        self._written_back = 0
        self.head = b""
        return self

    def write(self, chunk: bytes | memoryview) -> None:
        """Append ``chunk`` (the caller may reuse a memoryview's buffer once this returns)."""
        if self._handle is None:
            raise RuntimeError("AtomicOutput.write() before open()")
        if self._temp_local is None:
            # Remote file objects may keep a reference to what they are given: hand them a copy.
            self._handle.write(bytes(chunk))
        else:
            view = memoryview(chunk)
            while view:  # an unbuffered write may be short
                view = view[self._handle.write(view) :]
        if len(self.head) < 8:
            self.head = (self.head + bytes(chunk[: 8 - len(self.head)]))[:8]
        self.bytes_written += len(chunk)
        if self._temp_local is not None and self.bytes_written - self._written_back >= WRITEBACK_EVERY_BYTES:
            self._start_writeback()

    def _start_writeback(self) -> None:
        """Ask the kernel to write back (and drop from cache) what was written since the last call."""
        if self._handle is not None and hasattr(os, "posix_fadvise"):
            length = self.bytes_written - self._written_back
            os.posix_fadvise(self._handle.fileno(), self._written_back, length, os.POSIX_FADV_DONTNEED)
        self._written_back = self.bytes_written

    def commit(self) -> None:
        """Flush, sync and move the temporary file onto the destination."""
        if self._handle is None:
            raise RuntimeError("AtomicOutput.commit() before open()")
        handle, self._handle = self._handle, None
        if self._temp_local is not None and self._local is not None:
            os.fsync(handle.fileno())
            handle.close()
            os.replace(self._temp_local, self._local)
            self._temp_local = None
            return
        handle.close()
        if self._remote_temp is not None:
            from airflow.sdk import ObjectStoragePath

            self._remote_temp.rename(ObjectStoragePath(self.location))
            self._remote_temp = None

    def discard(self) -> None:
        """Close and delete the temporary file, if any; never touches the destination."""
        handle, self._handle = self._handle, None
        if handle is not None and self._remote_temp is not None:
            _abandon_remote(handle)
        elif handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
        if self._temp_local is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp_local)
            self._temp_local = None
        if self._remote_temp is not None:
            with contextlib.suppress(Exception):
                self._remote_temp.unlink(missing_ok=True)
            self._remote_temp = None


def _abandon_remote(handle: BinaryIO) -> None:
    """Drop a remote file being written without publishing it.

    Closing an fsspec buffered writer would upload what it holds (and complete a multipart
    upload, creating the object); ``discard()`` aborts the multipart upload instead, so no
    object and no billed incomplete upload is left behind. Other file objects are closed (the
    caller then deletes the temporary object).
    """
    from fsspec.spec import AbstractBufferedFile

    with contextlib.suppress(Exception):
        if isinstance(handle, AbstractBufferedFile) and handle.mode != "rb":
            handle.discard()
            handle.closed = True
        else:
            handle.close()


def is_complete_output(location: str, expected_size: int) -> bool:
    """True when ``location`` already holds an MP4 of exactly ``expected_size`` bytes.

    Used to skip a download an earlier try finished (the size is the one that try recorded).
    """
    local = local_path(location)
    try:
        if local is not None:
            if os.path.getsize(local) != expected_size:
                return False
            with open(local, "rb") as handle:
                return looks_like_mp4(handle.read(8))
        from airflow.sdk import ObjectStoragePath

        path = ObjectStoragePath(location)
        if path.stat().st_size != expected_size:
            return False
        with path.open("rb") as handle:  # type: ignore[no-untyped-call]
            return looks_like_mp4(handle.read(8))
    except (OSError, ValueError):
        return False
