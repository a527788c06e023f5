"""Opening a recorded video for the pages: once, checked on what was opened, streamed from it.

The api-server is the deployment's most privileged process, and the files it serves live where
DAG authors' tasks write. A check of a *path* followed by an open of the same path is a race a
task can win (swap the checked file for a link to ``airflow.cfg`` in between), and an ``open()``
of a FIFO blocks a thread forever. So a local video is:

1. resolved once (``realpath``: a deployment may reach its volume through a link), then opened
   component by component from ``/`` without following any link (``O_NOFOLLOW`` on every step)
   and without opening the file for I/O (``O_PATH``: no FIFO or device is ever opened, so nothing
   blocks and no driver runs); a link or a non-directory met on the way is a refusal;
2. checked on that descriptor (``fstat``: a regular file of the size the task recorded), then
   reopened for reading through ``/proc/self/fd`` (the same inode, not the name again), and the
   signature and the writer tag are read from the reopened descriptor;
3. streamed with ``pread`` from that descriptor only, whatever the path names meanwhile.

An object in object storage is opened once (one file object, one metadata request: its size
and, on S3, its ETag, which every ranged read then sends as ``If-Match``); the size and the
signature are checked on that file object, and the stream reads only from it.

Everything here blocks (filesystem, network): the pages call it in their own small thread pool
with a deadline (:func:`~airflow_provider_orvideo.plugins._video_viewer.file_io`).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_orvideo._internal.compat import team_may_use_connection
from airflow_provider_orvideo.plugins._video_views import (
    SIGNATURE_BYTES,
    LocalVideo,
    Location,
    RecordedVideo,
    Refused,
    StoredVideo,
    Unavailable,
    Unreachable,
    is_video_signature,
    locate,
    media_type_of,
)

__all__ = [
    "STREAM_CHUNK_BYTES",
    "LocalSource",
    "Source",
    "StoredSource",
    "open_local",
    "open_stored",
    "open_video",
    "probe",
]

STREAM_CHUNK_BYTES = 4 * 1024 * 1024
"""One read of a stream: what one request holds in memory at most (object storage is opened
without fsspec's read-ahead cache, whose default blocks are 5-50 MiB)."""

_PROC_FD = "/proc/self/fd"
_LINK_ERRORS = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)
"""What opening with ``O_NOFOLLOW`` answers when a step of the path is a link (or not a
directory): the file was swapped since it was resolved."""


class Source(Protocol):
    """An opened, checked video: what a stream reads, and nothing else."""

    size: int
    media_type: str
    name: str

    def read(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


@dataclass
class LocalSource:
    """A local file, open for reading; ``read`` never looks at the path again."""

    descriptor: int
    size: int
    media_type: str
    name: str
    _closed: bool = field(default=False, repr=False)

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.descriptor, length, offset)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.descriptor)


@dataclass
class StoredSource:
    """An object, open through one fsspec file object (its size and ETag fixed when opened)."""

    file: Any
    size: int
    media_type: str
    name: str

    def read(self, offset: int, length: int) -> bytes:
        self.file.seek(offset)
        return bytes(self.file.read(length))

    def close(self) -> None:
        self.file.close()


Opened = LocalSource | StoredSource | Unreachable | Unavailable | Refused


def open_video(video: RecordedVideo, index: int) -> Opened:
    """Output ``index`` of ``video``, opened and checked, or why it cannot be served.

    The caller closes a returned source. Never raises for a recorded value or a file, whatever
    they hold; may raise for an infrastructure failure (the pages answer 503)."""
    location = locate(video, index)
    if isinstance(location, LocalVideo):
        return open_local(video, location, video.recorded_size(index))
    if isinstance(location, StoredVideo):
        if location.conn_id and not team_may_use_connection(video.task.dag_id, location.conn_id):
            return Refused(
                location.storage_uri,
                f"is read with connection {location.conn_id!r}, which DAG {video.task.dag_id!r} may not use "
                "(its team has no access to that connection)",
            )
        return open_stored(location, video.recorded_size(index))
    return location


def probe(video: RecordedVideo, index: int, *, object_storage: bool = True) -> Location:
    """What the player page says about an output: open and check it, close it again.

    With ``object_storage=False`` an object is not opened (one metadata request each: the gallery
    shows 24 cards a page and leaves that to the stream)."""
    location = locate(video, index)
    if isinstance(location, StoredVideo) and not object_storage:
        return location
    opened = open_video(video, index)
    if isinstance(opened, (LocalSource, StoredSource)):
        opened.close()
        return location
    return opened


# ---------------------------------------------------------------------------------------- local


def _open_without_links(real: str) -> int:
    """Open the absolute, resolved ``real`` with no link followed on any step.

    Returns an ``O_PATH`` descriptor where the platform has it (a FIFO or device is then never
    opened for I/O), else one opened for reading with ``O_NONBLOCK`` (an open of a FIFO returns
    at once). Raises ``OSError`` (``ELOOP``/``ENOTDIR``) when a step is a link or not a directory."""
    path_only = getattr(os, "O_PATH", 0)
    common = os.O_NOFOLLOW | os.O_CLOEXEC | path_only
    directory = os.open("/", os.O_RDONLY | os.O_DIRECTORY | common)
    try:
        *parents, name = [part for part in real.split("/") if part]
        for part in parents:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | common, dir_fd=directory)
            os.close(directory)
            directory = child
        final = common if path_only else common | os.O_NONBLOCK | os.O_NOCTTY
        return os.open(name, os.O_RDONLY | final, dir_fd=directory)
    finally:
        os.close(directory)


def _readable(descriptor: int) -> int:
    """A descriptor open for reading on the same file as ``descriptor`` (an ``O_PATH`` one is
    reopened through ``/proc/self/fd``, which names the open file, not the path)."""
    if not getattr(os, "O_PATH", 0):
        return descriptor
    try:
        return os.open(f"{_PROC_FD}/{descriptor}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    finally:
        os.close(descriptor)


def open_local(video: RecordedVideo, local: LocalVideo, recorded_size: int | None) -> Opened:
    """Open and check a local output (see the module docstring)."""
    from airflow_provider_orvideo._internal.output_paths import read_writer_facts

    shown = local.path
    try:
        real = os.path.realpath(local.path)
    except (OSError, ValueError):
        return Refused(shown, "cannot be resolved")
    if media_type_of(real) is None:
        return Refused(shown, "links to a file without a video suffix")
    try:
        descriptor = _open_without_links(real)
    except FileNotFoundError:
        return Unreachable(shown, video.host)
    except OSError as error:
        if error.errno in _LINK_ERRORS:
            return Refused(shown, "was replaced by a link")
        return Refused(shown, f"cannot be read by the api-server ({error.strerror or type(error).__name__})")
    try:
        info = os.fstat(descriptor)
    except OSError as error:
        os.close(descriptor)
        return Refused(shown, f"cannot be read by the api-server ({error.strerror or type(error).__name__})")
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        # O_PATH with O_NOFOLLOW opens a link itself: it became one after it was resolved.
        return Refused(
            shown, "was replaced by a link" if stat.S_ISLNK(info.st_mode) else "is not a regular file"
        )
    if recorded_size is not None and info.st_size != recorded_size:
        os.close(descriptor)
        return Refused(
            shown,
            f"has changed since the task saved it ({recorded_size:,} bytes then, {info.st_size:,} now)",
        )
    try:
        source = LocalSource(_readable(descriptor), info.st_size, local.media_type, os.path.basename(real))
    except OSError as error:  # _readable closed the path descriptor
        return Refused(shown, f"cannot be read by the api-server ({error.strerror or type(error).__name__})")
    try:
        refusal = _refusal(
            video, shown, source.read(0, SIGNATURE_BYTES), read_writer_facts(source.descriptor)
        )
    except OSError as error:
        source.close()
        return Refused(shown, f"cannot be read by the api-server ({error.strerror or type(error).__name__})")
    if refusal is not None:
        source.close()
        return refusal
    return source


def _refusal(video: RecordedVideo, shown: str, head: bytes, writer: dict[str, Any] | None) -> Refused | None:
    if not is_video_signature(head):
        return Refused(shown, "is not an MP4, QuickTime or WebM file")
    if writer is not None and not video.task.is_writer(writer):
        return Refused(shown, "was written by another task instance")
    return None


# ---------------------------------------------------------------------------------------- object storage


def open_stored(stored: StoredVideo, recorded_size: int | None) -> Opened:
    """Open and check an object: one file object whose size (and ETag, on S3) is fixed here."""
    from airflow.sdk import ObjectStoragePath

    shown = stored.storage_uri
    try:
        file = ObjectStoragePath(stored.storage_uri).open(  # type: ignore[no-untyped-call]
            "rb", block_size=STREAM_CHUNK_BYTES, cache_type="none"
        )
    except FileNotFoundError:
        return Unavailable(shown, "no longer exists in object storage")
    except Exception as error:
        return Unavailable(
            shown, f"cannot be read by the api-server ({type(error).__name__}; check the connection)"
        )
    try:
        size = int(file.size)
        if recorded_size is not None and size != recorded_size:
            file.close()
            return Refused(
                shown, f"has changed since the task saved it ({recorded_size:,} bytes then, {size:,} now)"
            )
        source = StoredSource(file, size, stored.media_type, shown.rsplit("/", 1)[-1])
        head = source.read(0, SIGNATURE_BYTES)
    except Exception as error:
        file.close()
        return Unavailable(shown, f"cannot be read by the api-server ({type(error).__name__})")
    if not is_video_signature(head):
        source.close()
        return Refused(shown, "is not an MP4, QuickTime or WebM file")
    return source
