"""Where the video goes: ``output_path`` normalised once and checked before any money is spent.

A bad output path found after the job was paid for loses the video, so everything that can be
known without writing is checked before the submit POST (docs/operator.md, "Output paths"):

* The value is a ``str`` or a path object; surrounding whitespace (a template's stray newline)
  is stripped; it must not be empty.
* A local output is an absolute path, or a ``file://`` URI without a host (``localhost`` is
  allowed). ``~`` and relative paths are refused: they would resolve against the home or the
  working directory of whichever worker runs the task, which Airflow does not fix.
* The path is normalised lexically (``os.path.normpath``: ``.``, ``..`` and doubled slashes
  go) and that one form is used everywhere after: the temporary file, the rename, XCom and
  asset URIs.
* It must not name a directory (a trailing ``/``, or an existing directory), nor an existing
  non-regular file; its parent must exist or be creatable (the nearest existing ancestor is a
  writable directory on a filesystem mounted read-write).
* An object storage URI needs its scheme's filesystem and its connection (see
  :mod:`airflow_provider_orvideo._internal.object_storage`); a bucket store's bucket must be reachable with
  that connection's credentials. Nothing is written to check it.

Whether a file already there may be replaced is the operator's decision (``overwrite`` and the
task's own record); :func:`writer_of` tells it who wrote a file this provider saved.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_provider_orvideo._internal.object_storage import (
    BUCKET_SCHEMES,
    LOCAL_SCHEMES,
    is_local,
    resolve_uri,
    split_conn_id,
)
from airflow_provider_orvideo.exceptions import NOTHING_SPENT, InvalidOutputPathError

WRITER_XATTR = "user.airflow_provider_orvideo.writer"
"""Extended attribute naming the task instance and job that saved a local output (where the
filesystem supports user attributes), so a refusal to replace it can say whose it is."""


@dataclass(frozen=True)
class OutputTarget:
    """One normalised output location and the connection that reaches it.

    ``location`` is what the task returns and records: an absolute local path, or the object
    storage URI as given. ``conn_id`` is the Airflow connection of an object storage URI
    (``output_conn_id``, or the one the URI names); ``storage_uri`` is the form
    ``ObjectStoragePath`` opens.
    """

    location: str
    conn_id: str | None = None

    @property
    def local(self) -> str | None:
        """The filesystem path of a local output, None for object storage."""
        return self.location if is_local(self.location) else None

    @property
    def identity(self) -> str:
        """What two writers of the same file share: the location without a connection id
        (``s3://conn@b/k`` and ``s3://b/k`` with ``output_conn_id`` are one object)."""
        return self.location if self.local is not None else split_conn_id(self.location, "output_path")[0]

    @property
    def storage_uri(self) -> str:
        if self.local is not None:
            return self.location
        from airflow_provider_orvideo._internal.object_storage import with_conn_id

        bare, named = split_conn_id(self.location, "output_path")
        return with_conn_id(bare, named or self.conn_id)

    def for_index(self, index: int) -> OutputTarget:
        """Output ``index`` of a job: the location itself for 0, ``<stem>_<index><suffix>`` after."""
        return OutputTarget(_with_name(self.location, _indexed_name, index), self.conn_id)

    def renamed(self, name: str) -> OutputTarget:
        """The same directory, another file name (where a video kept aside went)."""
        return OutputTarget(_with_name(self.location, lambda _tail, new: new, name), self.conn_id)

    def aside(self, job_id: str) -> OutputTarget:
        """Where a paid video goes when another writer took ``location`` while the job rendered:
        ``<stem>.<job_id><suffix>`` beside it."""
        return OutputTarget(_with_name(self.location, _job_name, job_id), self.conn_id)

    def exists(self) -> bool:
        """Whether something is at the location now (a file or an object)."""
        if self.local is not None:
            return os.path.lexists(self.local)
        from airflow.sdk import ObjectStoragePath

        return bool(ObjectStoragePath(self.storage_uri).exists())


def _indexed_name(tail: str, index: Any) -> str:
    if index == 0:
        return tail
    stem, dot, suffix = tail.rpartition(".")
    return f"{stem}_{index}.{suffix}" if dot and stem else f"{tail}_{index}"


def _job_name(tail: str, job_id: Any) -> str:
    stem, dot, suffix = tail.rpartition(".")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in str(job_id))
    return f"{stem}.{safe}.{suffix}" if dot and stem else f"{tail}.{safe}"


def _with_name(location: str, rename: Any, arg: Any) -> str:
    if is_local(location):
        head, tail = os.path.split(location)
        return os.path.join(head, rename(tail, arg))
    parts = urlsplit(location)
    head, tail = posixpath.split(parts.path)
    return parts._replace(path=posixpath.join(head, rename(tail, arg))).geturl()


def _refuse(output_path: Any, problem: str) -> InvalidOutputPathError:
    return InvalidOutputPathError(f"output_path={output_path!r} {problem}. {NOTHING_SPENT}")


def output_target(output_path: Any, conn_id: str | None, *, check: bool = True) -> OutputTarget:
    """Normalise and check ``output_path`` (and ``output_conn_id``) before paying; see the module doc.

    ``check=False`` only normalises (no filesystem, connection or bucket access): after paying, a
    location problem must surface as a retryable write error, not a refusal that ends the task.
    """
    if isinstance(output_path, os.PathLike):
        output_path = os.fspath(output_path)
    if output_path is None:
        raise _refuse(output_path, "is required: give the file to write, e.g. '/data/videos/clip.mp4'")
    if not isinstance(output_path, str):
        raise _refuse(
            output_path,
            f"is of type {type(output_path).__name__}; give a path or URI as a string (e.g. "
            "'/data/videos/{{ ds }}/{{ ti.map_index }}.mp4' or 's3://bucket/videos/clip.mp4')",
        )
    raw = output_path
    text = output_path.strip()
    if not text:
        raise _refuse(raw, "is empty; give the file to write, e.g. '/data/videos/clip.mp4'")
    if "\x00" in text:
        raise _refuse(raw, "contains a NUL character")
    name = os.path.basename(text) if is_local(text) else posixpath.basename(urlsplit(text).path)
    if text.endswith(("/", os.sep)) or name in ("", ".", ".."):
        raise _refuse(raw, "names a directory; give the file to write inside it, e.g. '.../clip.mp4'")
    if not is_local(text):
        text = _normalised_uri(text)
        return _object_target(raw, text, conn_id) if check else OutputTarget(text, conn_id)
    if conn_id:
        raise InvalidOutputPathError(
            f"output_conn_id={conn_id!r} is set but output_path={raw!r} is a local path; give an "
            f"object storage URI (s3://bucket/key ...) or drop output_conn_id. {NOTHING_SPENT}"
        )
    path = _local_path(raw, text)
    if check:
        _check_local(raw, path)
    return OutputTarget(path)


def _normalised_uri(text: str) -> str:
    """An object storage URI with its scheme in lower case and its key normalised (``a/../b``
    is ``b``), so the key written, returned and compared between map indexes is one form."""
    parts = urlsplit(text)
    key = posixpath.normpath(parts.path) if parts.path else parts.path
    return parts._replace(scheme=parts.scheme.lower(), path=key).geturl()


def _local_path(raw: str, text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme.lower() in LOCAL_SCHEMES:
        if parts.netloc not in ("", "localhost"):
            raise _refuse(
                raw,
                f"names the host {parts.netloc!r}; a {parts.scheme}:// URI must have no host "
                f"({parts.scheme}:///path) or 'localhost', since the worker can only write its own files",
            )
        text = unquote(parts.path)
        if "\x00" in text:
            raise _refuse(raw, "contains a NUL character (%00)")
    if text.startswith("~"):
        raise _refuse(
            raw,
            "starts with '~', which would expand to the home directory of whichever worker runs the "
            "task; give an absolute path",
        )
    if not os.path.isabs(text):
        raise _refuse(
            raw,
            "is relative, so it would land in the working directory of whichever worker runs the "
            "task; give an absolute path",
        )
    return os.path.normpath(text)


NAME_HEADROOM_BYTES = 64
"""Bytes a file name needs to spare below the filesystem's limit: the temporary sibling adds 19
(``.<name>.<12 hex>.part``) and a video kept aside adds ``.<job id>`` (about 45)."""


def _check_local(raw: str, path: str) -> None:
    """The destination is not a directory or special file, and its parent can be created."""
    if os.path.isdir(path):
        raise _refuse(raw, f"is an existing directory ({path}); give the file to write inside it")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise _refuse(raw, f"exists and is not a regular file ({path})")
    ancestor = os.path.dirname(path)
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise _refuse(raw, f"cannot be created: {ancestor} is a file, not a directory")
    if _read_only(ancestor):
        raise _refuse(raw, f"cannot be written: {ancestor} is on a read-only filesystem")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise _refuse(
            raw, f"cannot be written: {ancestor} is not writable by this worker (uid {os.getuid()})"
        )
    try:
        encoded = os.fsencode(path)
    except UnicodeEncodeError:
        raise _refuse(raw, "contains a character the filesystem cannot store (a lone surrogate)") from None
    path_max = _path_max(ancestor)
    if len(encoded) + NAME_HEADROOM_BYTES > path_max:
        raise _refuse(
            raw,
            f"is {len(encoded):,} bytes long; at most {path_max - NAME_HEADROOM_BYTES:,} on this "
            f"filesystem (its limit less {NAME_HEADROOM_BYTES} for the provider's temporary file)",
        )
    name_max = _name_max(ancestor)
    *directories, name = path.split(os.sep)
    limits = [(part, name_max, "") for part in directories] + [
        (
            name,
            name_max - NAME_HEADROOM_BYTES,
            f" (its limit less {NAME_HEADROOM_BYTES} for the provider's temporary file)",
        )
    ]
    for part, limit, why in limits:
        if len(os.fsencode(part)) > limit:
            raise _refuse(
                raw,
                f"has a name of {len(os.fsencode(part)):,} bytes; at most {limit} on this filesystem{why}",
            )


def _path_max(directory: str) -> int:
    try:
        return int(os.pathconf(directory, "PC_PATH_MAX"))
    except (OSError, ValueError, AttributeError):
        return 4096


def _name_max(directory: str) -> int:
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _read_only(directory: str) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): let the write tell
        return False


def _object_target(raw: str, text: str, conn_id: str | None) -> OutputTarget:
    resolve_uri("output_path", text, conn_id)  # scheme installed, connection defined
    bare, named = split_conn_id(text, "output_path")
    parts = urlsplit(bare)
    if parts.scheme in BUCKET_SCHEMES:
        if not parts.netloc:
            raise _refuse(raw, f"names no bucket; give {parts.scheme}://<bucket>/<key>")
        _check_bucket(raw, parts.scheme, parts.netloc, named or conn_id)
    target = OutputTarget(text, None if named else conn_id)
    _check_not_a_prefix(raw, target)
    return target


def _check_not_a_prefix(raw: str, target: OutputTarget) -> None:
    """An object store "directory" (other objects under ``<key>/``) cannot become the video:
    renaming onto it would put the video inside it. Refused even with ``overwrite``."""
    from airflow.sdk import ObjectStoragePath

    try:
        is_directory = ObjectStoragePath(target.storage_uri).is_dir()
    except Exception:  # the filesystem's own errors: the bucket check above already reported reach
        return
    if is_directory:
        raise _refuse(raw, "names a directory (other objects are stored under it); give a file name")


def _check_bucket(raw: str, scheme: str, bucket: str, conn_id: str | None) -> None:
    """The bucket exists and the connection's credentials reach it (one read; nothing written)."""
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_orvideo._internal.object_storage import with_conn_id

    root = ObjectStoragePath(with_conn_id(f"{scheme}://{bucket}/", conn_id))
    using = f"with connection {conn_id!r}" if conn_id else "with the default credentials"
    try:
        found = root.fs.exists(bucket)
    except Exception as error:  # the filesystem's own errors (permission, endpoint, credentials)
        raise _refuse(
            raw, f"cannot be checked: bucket {bucket!r} is not reachable {using} ({type(error).__name__})"
        ) from None
    if not found:
        raise _refuse(raw, f"names bucket {bucket!r}, which does not exist or is not visible {using}")


def writer_facts(target: OutputTarget) -> dict[str, Any] | None:
    """The facts :func:`record_writer` stored with a local file (task instance, job), if any."""
    return None if target.local is None else read_writer_facts(target.local)


def read_writer_facts(file: str | int) -> dict[str, Any] | None:
    """The writer facts of a local path, or of an open file descriptor (what the video pages
    check: the file they opened, not whatever the path names a moment later)."""
    if not hasattr(os, "getxattr"):
        return None
    try:
        value = json.loads(os.getxattr(file, WRITER_XATTR))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def writer_of(target: OutputTarget) -> str | None:
    """Who saved the file at ``target`` (task instance and job), when this provider recorded it."""
    facts = writer_facts(target)
    return None if facts is None else ", ".join(f"{key}={facts[key]}" for key in sorted(facts))


def written_by(target: OutputTarget, writer: dict[str, Any]) -> bool:
    """False when the file's recorded writer is someone else; True when it is ``writer`` or when
    nothing was recorded (object storage, a filesystem without user attributes)."""
    facts = writer_facts(target)
    return facts is None or all(facts.get(key) == value for key, value in writer.items())


def record_writer(path: str, writer: dict[str, Any]) -> None:
    """Best effort: tag a local file with its writer (filesystems without user attributes skip it)."""
    if hasattr(os, "setxattr"):
        with contextlib.suppress(OSError):
            os.setxattr(path, WRITER_XATTR, json.dumps(writer, sort_keys=True).encode())
