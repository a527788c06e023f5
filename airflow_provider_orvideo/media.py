"""Turn the media a DAG author gives (frame images, reference media) into URLs OpenRouter accepts.

A source may be:

* an ``https://`` URL: sent as is (OpenRouter downloads it);
* a ``data:<mime>;base64,...`` URL: checked, then sent as is;
* a local path (``str`` or ``pathlib.Path``), or a URI read through Airflow's object storage
  (``file://``, ``s3://``, ``gs://`` ... or an ``ObjectStoragePath``);
* ``bytes`` handed over by an upstream task.

Local, object-storage and byte sources become ``data:<mime>;base64,...`` with the MIME type
sniffed from the content (a ``.png`` that is really a JPEG is sent as JPEG; a text file named
``.png`` is refused). Sizes are checked before anything is read where possible, so a 2 GB file
named by mistake fails fast, naming the source.

Error messages describe a source by its path or by its URL without the query string (which may
carry a token), never by its bytes.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_orvideo._internal.api import MAX_REQUEST_BODY_BYTES
from airflow_provider_orvideo._internal.field_checks import FRAME_TYPES as FRAME_TYPES
from airflow_provider_orvideo._internal.field_checks import (
    frame_images_problems,
    input_references_problems,
    is_object_storage_path,
    reference_entry,
    shown,
    source_problem,
)
from airflow_provider_orvideo.exceptions import NOTHING_SPENT, InvalidVideoRequestError

__all__ = [
    "MediaKind",
    "sniff_mime",
    "to_data_url",
]


class MediaKind(str, enum.Enum):
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"

    def __str__(self) -> str:
        # The value, so a member inside a templated field renders as "image", not "MediaKind.IMAGE".
        return self.value

    @property
    def content_type(self) -> str:
        """The ``type`` of an ``input_references`` item for this kind (``image_url`` ...)."""
        return f"{self.value}_url"


def sniff_mime(data: bytes) -> str | None:
    """The MIME type of media bytes from their signature, or None when not recognised."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"mif1"):
            return "image/heic"
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    return None


def kind_of_mime(mime: str) -> MediaKind | None:
    major = mime.split("/", 1)[0].lower()
    return MediaKind(major) if major in {k.value for k in MediaKind} else None


_EXTENSION_KINDS = {
    **dict.fromkeys(("png", "jpg", "jpeg", "gif", "webp", "avif", "heic"), MediaKind.IMAGE),
    **dict.fromkeys(("mp3", "wav", "ogg", "flac", "m4a", "aac"), MediaKind.AUDIO),
    **dict.fromkeys(("mp4", "mov", "webm", "mkv", "m4v"), MediaKind.VIDEO),
}
_DATA_URL = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)(?P<params>(;[\w.+-]+=[\w.+-]+)*);base64,(?P<data>.*)$", re.S
)


@dataclass(frozen=True)
class ResolvedMedia:
    """A source turned into the URL to send, with what we know about it."""

    url: str
    kind: MediaKind | None
    """None for an https URL whose kind cannot be told from its path."""
    description: str
    """How error messages name the source (path, or URL without its query)."""
    mime: str | None = None

    @property
    def encoded_size(self) -> int:
        return len(self.url)


def _describe_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return shown(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?..." if parts.query else "")


def _invalid(field: str, description: str, problem: str) -> InvalidVideoRequestError:
    return InvalidVideoRequestError(f"{field}: {description} {problem}. {NOTHING_SPENT}")


def _refuse(problems: list[str]) -> InvalidVideoRequestError:
    return InvalidVideoRequestError(f"{'; '.join(problems)}. {NOTHING_SPENT}")


def to_data_url(data: bytes) -> str:
    """``data:<sniffed mime>;base64,...`` for media bytes.

    Bytes cannot cross XCom (Airflow cannot serialize them), so an upstream task that makes an
    image returns ``to_data_url(png_bytes)`` (or writes a file and returns its path or URI).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _invalid(
            "to_data_url", shown(data), f"is {type(data).__name__}, not bytes; give the media file's bytes"
        )
    data = bytes(data)
    return _encode("media", f"the {len(data):,} bytes given", data).url


def _encode(field: str, description: str, data: bytes) -> ResolvedMedia:
    mime = sniff_mime(data)
    if mime is None:
        raise _invalid(
            field,
            description,
            f"is not a recognised image, audio or video file (first bytes {data[:8]!r}); "
            "supported: PNG, JPEG, GIF, WebP, AVIF/HEIC, MP3, WAV, OGG, FLAC, M4A, MP4, MOV, WebM",
        )
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return ResolvedMedia(url=url, kind=kind_of_mime(mime), description=description, mime=mime)


def _base64_size(raw_size: int) -> int:
    return 4 * ((raw_size + 2) // 3)


def _check_raw_size(field: str, description: str, raw_size: int) -> None:
    if _base64_size(raw_size) > MAX_REQUEST_BODY_BYTES:
        raise _invalid(
            field,
            description,
            f"is {raw_size:,} bytes, {_base64_size(raw_size):,} once base64-encoded; OpenRouter accepts a "
            f"request body of at most {MAX_REQUEST_BODY_BYTES:,} bytes. Pass an https URL to it instead",
        )


def _read_local(field: str, path: str) -> ResolvedMedia:
    try:
        _check_raw_size(field, path, os.path.getsize(path))
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise _invalid(field, path, f"cannot be read ({error.strerror or type(error).__name__})") from None
    except ValueError as error:  # an embedded NUL, a lone surrogate: not a path the OS can take
        raise _invalid(field, shown(path), f"is not a usable file path ({error})") from None
    return _encode(field, path, data)


MAX_RAW_SOURCE_BYTES = MAX_REQUEST_BODY_BYTES // 4 * 3
"""The largest file whose base64 form fits in OpenRouter's request body cap."""


def _read_object_storage(field: str, source: Any) -> ResolvedMedia:
    """Read a source through ``ObjectStoragePath``: size checked first, then at most the cap read.

    A URI may name its Airflow connection (``s3://conn_id@bucket/key``), as may an
    ``ObjectStoragePath`` given directly; the scheme's filesystem and the connection are checked
    before anything is read.
    """
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_orvideo._internal.object_storage import check_connection, resolve_uri

    if isinstance(source, ObjectStoragePath):
        path = source
        # ``conn_id`` is an attribute from Airflow 3.2; before, only a storage option.
        conn_id = getattr(path, "conn_id", None) or path.storage_options.get("conn_id")
        if conn_id:
            check_connection(field, conn_id)
    else:
        path = ObjectStoragePath(resolve_uri(field, str(source)))
    description = _describe_url(str(path))
    try:
        _check_raw_size(field, description, path.stat().st_size)
        # Bounded even if the object grew since stat(): one byte past the cap is enough to know.
        with path.open("rb") as handle:  # type: ignore[no-untyped-call]
            data = handle.read(MAX_RAW_SOURCE_BYTES + 1)
        _check_raw_size(field, description, len(data))
    except InvalidVideoRequestError:
        raise
    except FileNotFoundError:
        raise _invalid(field, description, "cannot be read (No such file or directory)") from None
    except PermissionError:
        raise _invalid(field, description, "cannot be read (Permission denied)") from None
    except Exception as error:  # object stores raise many types: report them all the same way
        raise _invalid(field, description, f"cannot be read ({type(error).__name__}: {error})") from None
    return _encode(field, description, data)


def _check_data_url(field: str, url: str) -> ResolvedMedia:
    match = _DATA_URL.match(url)
    description = f"the data: URL ({len(url):,} characters)"
    if not match:
        raise _invalid(field, description, "is not of the form data:<mime type>;base64,<data>")
    try:
        data = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(field, description, "does not hold valid base64 data") from None
    declared = match["mime"].lower()
    declared_kind = kind_of_mime(declared)
    if declared_kind is None:
        raise _invalid(field, description, f"declares {declared}, which is not an image, audio or video type")
    # The URL is sent as is, so its bytes must be what it declares (the subtype may differ:
    # a JPEG declared image/png is still an image).
    mime = sniff_mime(data)
    if mime is None:
        raise _invalid(
            field,
            description,
            f"declares {declared} but its {len(data):,} bytes are not a recognised image, audio or video "
            "file; supported: PNG, JPEG, GIF, WebP, AVIF/HEIC, MP3, WAV, OGG, FLAC, M4A, MP4, MOV, WebM",
        )
    kind = kind_of_mime(mime)
    if kind is not declared_kind:
        raise _invalid(
            field,
            description,
            f"declares {declared} ({declared_kind.value}) but its content is {mime}",
        )
    return ResolvedMedia(url=url, kind=kind, description=description, mime=mime)


def resolve_source(field: str, source: Any) -> ResolvedMedia:
    """Turn one source into a :class:`ResolvedMedia`; ``field`` names it in errors."""
    problem = source_problem(field, source)
    if problem:
        raise _refuse([problem])
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        description = f"the {len(data):,} bytes given"
        _check_raw_size(field, description, len(data))
        return _encode(field, description, data)
    if is_object_storage_path(source) or not isinstance(source, (str, PurePath)):
        return _read_object_storage(field, source)  # source_problem refused any other type
    if isinstance(source, PurePath):
        return _read_local(field, str(source))
    source = source.strip()
    try:
        parts = urlsplit(source)
    except ValueError as error:  # e.g. "https://[::1/a.png": an unclosed IPv6 host
        raise _invalid(field, shown(source), f"is not a valid URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme == "data":
        return _check_data_url(field, source)
    if scheme == "https":
        extension = PurePath(parts.path).suffix.lower().lstrip(".")
        return ResolvedMedia(
            url=source, kind=_EXTENSION_KINDS.get(extension), description=_describe_url(source)
        )
    if scheme == "http":
        raise _invalid(
            field,
            _describe_url(source),
            "is a plain http URL; OpenRouter fetches only https URLs (or send the file)",
        )
    if len(scheme) > 1:
        return _read_object_storage(field, source)
    return _read_local(field, source)


def reference_kind(item: ResolvedMedia, field: str, declared: str | MediaKind | None) -> MediaKind:
    """The kind of an ``input_references`` item: declared, sniffed, or guessed from the URL's extension."""
    if declared is not None:
        try:
            kind = MediaKind(getattr(declared, "value", declared))
        except ValueError:
            raise _invalid(
                field, item.description, f"has kind {declared!r}; allowed: image, audio, video"
            ) from None
        if item.kind is not None and item.kind is not kind:
            raise _invalid(
                field, item.description, f"is declared {kind.value} but its content is {item.kind.value}"
            )
        return kind
    if item.kind is None:
        raise _invalid(
            field,
            item.description,
            "is an https URL whose kind cannot be told from its name; give it as "
            '{"kind": "image" | "audio" | "video", "source": "<url>"}',
        )
    return item.kind


def split_reference(entry: Any) -> tuple[Any, str | None]:
    """An ``input_references`` entry is a source, or ``{"kind": ..., "source": ...}``."""
    problems: list[str] = []
    source, kind = reference_entry("input_references entry", entry, problems)
    if problems:
        raise _refuse(problems)
    return source, kind


def resolve_frame_images(value: Any) -> tuple[tuple[str, ResolvedMedia], ...]:
    """``{"first_frame": src, "last_frame": src}`` -> ``((frame_type, media), ...)``, images only."""
    problems = frame_images_problems(value)
    if problems:
        raise _refuse(problems)
    if value is None or isinstance(value, str) or not value:
        return ()
    frames = []
    for frame_type, source in value.items():
        field = f"frame_images[{frame_type!r}]"
        media = resolve_source(field, source)
        if media.kind not in (None, MediaKind.IMAGE):
            raise _invalid(field, media.description, f"is {media.mime or media.kind}, not an image")
        frames.append((str(frame_type), media))
    return tuple(frames)


def resolve_input_references(value: Any) -> tuple[tuple[MediaKind, ResolvedMedia], ...]:
    """A list of sources (or ``{"kind", "source"}`` dicts) -> ``((kind, media), ...)``."""
    problems = input_references_problems(value)
    if problems:
        raise _refuse(problems)
    if value is None or isinstance(value, str) or not value:
        return ()
    references = []
    for index, entry in enumerate(value):
        field = f"input_references[{index}]"
        source, declared = reference_entry(field, entry, problems)
        media = resolve_source(field, source)
        references.append((reference_kind(media, field, declared), media))
    return tuple(references)
