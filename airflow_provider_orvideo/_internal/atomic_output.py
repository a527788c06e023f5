"""Write a downloaded video so that the output path only ever holds a complete file.

Bytes go to a temporary sibling (``.<name>.<random>.part``) and are moved into place only after
the caller has checked the length and the MP4 signature. On any failure the temporary file is
removed, so a reader of ``output_path`` sees either nothing or a complete video, never a torn one.

A file that appeared at the destination while the job rendered (another run, task or map index
writing the same path) is never replaced unless the caller allows it (``replace``): the video,
already paid for, is committed beside it (``aside``) instead. Locally that decision is atomic
(``os.link`` fails if the name exists). A failing local write (disk full, permission denied,
read-only filesystem) raises :class:`~airflow_provider_orvideo.exceptions.OutputWriteError`, never
an ``OSError`` a caller could mistake for a network fault.

A process killed outright (SIGKILL, a lost host) cannot remove its temporary file. Given an
``owner`` (a stable tag of the task instance, never of the try), the temporary name starts with
that tag and :meth:`AtomicOutput.open` first deletes the owner's local temporary siblings of the
destination that an earlier, killed try left behind; other writers' files are never touched.

Local paths (and ``file://`` URIs) use ``os.replace`` (atomic on one filesystem) after
``fsync``. While writing, every :data:`WRITEBACK_EVERY_BYTES` the range just written is handed to
the kernel for writeback (``posix_fadvise(DONTNEED)``), so the disk works while the network does,
the final ``fsync`` has little left to do, and a multi-GiB video does not fill the worker's page
cache. Other schemes (``s3://``, ``gs://``, ...) go through Airflow's ``ObjectStoragePath``;
there the final move is a server-side copy, which object stores make visible all at once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import uuid
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_provider_orvideo._internal.object_storage import local_path
from airflow_provider_orvideo.exceptions import OutputWriteError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

WRITEBACK_EVERY_BYTES = 32 * 1024 * 1024
"""How often a local download starts writeback of what it wrote (measured in benchmarks/README.md)."""

TOKEN_LENGTH = 12
"""Hex digits between the destination's name and ``.part`` in a temporary file's name."""
OWNER_TAG_LENGTH = 6
"""Hex digits of an ``owner`` tag at the start of the token (the rest stays random)."""


def owner_tag(identity: dict[str, Any]) -> str:
    """A stable :data:`OWNER_TAG_LENGTH`-digit tag of a writer identity (e.g. a task instance)."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:OWNER_TAG_LENGTH]


def _is_hex(text: str) -> bool:
    return all(char in "0123456789abcdef" for char in text)


MP4_TOP_LEVEL_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pdin", b"styp"})
"""Box types an MP4 file may start with (almost always ``ftyp``)."""


def looks_like_mp4(head: bytes) -> bool:
    """True when the first 8 bytes are an ISO-BMFF box header of a plausible top-level type."""
    return len(head) >= 8 and head[4:8] in MP4_TOP_LEVEL_BOXES


def _write_failure(location: str, error: Exception) -> OutputWriteError:
    """The error to raise for an ``OSError`` (or a filesystem's ``ValueError``) of the output side,
    naming the location and errno."""
    errno_value = getattr(error, "errno", None) or 0
    code = errno.errorcode.get(errno_value, "")
    reason = f"{getattr(error, 'strerror', None) or error}" + (f" ({code})" if code else "")
    return OutputWriteError(f"Writing {location} failed: {reason}.")


class AtomicOutput:
    """A temporary sibling of the destination that becomes the destination only on :meth:`commit`.

    :param replace: Replace a file that is at the destination when committing. Without it, such
        a file is kept and the video is committed to ``aside``.
    :param aside: Where the video goes when the destination is taken and ``replace`` is off.
    :param writer: Facts recorded with a local file (task instance, job) for later refusals to
        name its writer; see :func:`airflow_provider_orvideo._internal.output_paths.record_writer`.
    :param owner: A stable tag of the writer (:data:`OWNER_TAG_LENGTH` hex digits, e.g. from the
        task instance's identity): temporary names start with it, and :meth:`open` removes this
        owner's leftover local temporary files first. ``None``: random names, nothing removed.
    """

    def __init__(
        self,
        location: str,
        *,
        replace: bool = True,
        aside: str | None = None,
        writer: dict[str, Any] | None = None,
        owner: str | None = None,
    ) -> None:
        if owner is not None and (len(owner) != OWNER_TAG_LENGTH or not _is_hex(owner)):
            raise ValueError(f"owner must be {OWNER_TAG_LENGTH} lower-case hex digits")
        self.location = location
        self.replace = replace
        self.aside = aside
        self.writer = writer
        self.owner = owner
        self.committed_location: str | None = None
        self._token = ""
        local = local_path(location)
        # One form for the temporary file and the rename (callers pass normalised paths already).
        self._local = None if local is None else os.path.abspath(local)
        self._handle: BinaryIO | None = None
        self._remote_temp: ObjectStoragePath | None = None
        self._temp_local: str | None = None
        self.bytes_written = 0
        self.head = b""
        self._written_back = 0

    def open(self) -> AtomicOutput:
        """Start (or restart from zero) the temporary file."""
        self.discard()
        try:
            self._open()
        except (OSError, ValueError) as error:  # ValueError: an fsspec filesystem refusing the path
            raise _write_failure(self.location, error) from None
        self.bytes_written = 0
        self._written_back = 0
        self.head = b""
        return self

    def _open(self) -> None:
        # 12 hex digits in all (NAME_HEADROOM_BYTES in output_paths.py counts on it).
        token = self._token = (self.owner or "") + uuid.uuid4().hex[: TOKEN_LENGTH - len(self.owner or "")]
        if self._local is not None:
            directory, name = os.path.split(self._local)
            os.makedirs(directory, exist_ok=True)
            if self.owner is not None:
                self._remove_leftovers(directory, name, self.owner)
            temp = os.path.join(directory, f".{name}.{token}.part")
            # Unbuffered: writes are already network-sized; a buffer would only add a copy.
            self._handle = open(temp, "wb", buffering=0)  # noqa: SIM115 - closed in commit/discard
            self._temp_local = temp
        else:
            from airflow.sdk import ObjectStoragePath

            from airflow_provider_orvideo._internal.object_storage import BUCKET_SCHEMES, UPLOAD_PART_BYTES

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

    @staticmethod
    def _remove_leftovers(directory: str, name: str, owner: str) -> None:
        """Delete ``.<name>.<owner><random>.part`` files of this owner: left by a killed try.

        A try of the same task instance that is still alive (a zombie the scheduler already gave
        up on) loses its temporary file here; its commit then fails, and nothing torn ever
        reaches the destination.
        """
        prefix, suffix = f".{name}.{owner}", ".part"
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                stem = entry.name[len(prefix) : -len(suffix)]
                if (
                    entry.name.startswith(prefix)
                    and entry.name.endswith(suffix)
                    and len(stem) == TOKEN_LENGTH - len(owner)
                    and _is_hex(stem)
                ):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)

    def write(self, chunk: bytes | memoryview) -> None:
        """Append ``chunk`` (the caller may reuse a memoryview's buffer once this returns)."""
        if self._handle is None:
            raise RuntimeError("AtomicOutput.write() before open()")
        try:  # try/except, not a context manager: this runs once per 64 KiB read
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
            if (
                self._temp_local is not None
                and self.bytes_written - self._written_back >= WRITEBACK_EVERY_BYTES
            ):
                self._start_writeback()
        except OSError as error:
            raise _write_failure(self.location, error) from None

    def _start_writeback(self) -> None:
        """Ask the kernel to write back (and drop from cache) what was written since the last call."""
        if self._handle is not None and hasattr(os, "posix_fadvise"):
            length = self.bytes_written - self._written_back
            os.posix_fadvise(self._handle.fileno(), self._written_back, length, os.POSIX_FADV_DONTNEED)
        self._written_back = self.bytes_written

    def commit(self) -> str:
        """Flush, sync and move the temporary file into place; return where it went
        (``location``, or ``aside`` when the destination was taken and ``replace`` is off)."""
        if self._handle is None:
            raise RuntimeError("AtomicOutput.commit() before open()")
        try:
            self.committed_location = self._commit()
        except (OSError, ValueError) as error:
            raise _write_failure(self.location, error) from None
        return self.committed_location

    def _commit(self) -> str:
        handle, self._handle = self._handle, None
        assert handle is not None
        if self._temp_local is not None and self._local is not None:
            temp, self._temp_local = self._temp_local, None
            try:
                os.fsync(handle.fileno())
                handle.close()
                if self.writer:
                    from airflow_provider_orvideo._internal.output_paths import record_writer

                    record_writer(temp, self.writer)
                if self.replace:
                    os.replace(temp, self._local)
                    return self.location
                if _move_if_free(temp, self._local):
                    return self.location
                if self.aside is None:
                    raise FileExistsError(errno.EEXIST, "another file took the destination", self._local)
                for candidate in (self.aside, _with_token(self.aside, self._token)):
                    if _move_if_free(temp, local_path(candidate) or candidate):
                        return candidate
                raise FileExistsError(errno.EEXIST, "every name beside the destination is taken", self.aside)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        handle.close()
        if self._remote_temp is not None:
            from airflow.sdk import ObjectStoragePath

            temp_remote, self._remote_temp = self._remote_temp, None
            destination = self.location
            if not self.replace and ObjectStoragePath(self.location).exists() and self.aside is not None:
                # Not atomic on object stores: a check, then a server-side copy.
                destination = self.aside
                if ObjectStoragePath(destination).exists():
                    destination = _with_token(self.aside, self._token)
            temp_remote.rename(ObjectStoragePath(destination))
            return destination
        return self.location

    def discard(self) -> None:
        """Close and delete the temporary file, if any; never touches the destination."""
        handle, self._handle = self._handle, None
        if handle is not None and self._remote_temp is not None:
            _abandon_remote(handle)
        elif handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
        if self._temp_local is not None:
            with contextlib.suppress(OSError):  # gone already, or the filesystem turned read-only
                os.unlink(self._temp_local)
            self._temp_local = None
        if self._remote_temp is not None:
            with contextlib.suppress(Exception):
                self._remote_temp.unlink(missing_ok=True)
            self._remote_temp = None


def _with_token(location: str, token: str) -> str:
    """``location`` with ``.<token>`` before its suffix: a name no other writer uses."""
    head, _, tail = location.rpartition("/")
    stem, dot, suffix = tail.rpartition(".")
    name = f"{stem}.{token}.{suffix}" if dot and stem else f"{tail}.{token}"
    return f"{head}/{name}" if head else name


def _move_if_free(temp: str, destination: str) -> bool:
    """Move ``temp`` to ``destination`` only if no file has that name; False (nothing moved) if one does.

    Atomic where hard links work (``link`` fails on an existing name); elsewhere a check, then a
    rename, with a small race.
    """
    try:
        os.link(temp, destination)
    except FileExistsError:
        return False
    except OSError:  # no hard links on this filesystem
        if os.path.lexists(destination):
            return False
        os.replace(temp, destination)
        return True
    os.unlink(temp)
    return True


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
