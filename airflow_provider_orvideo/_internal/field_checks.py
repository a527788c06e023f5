"""Check and normalise one request field's value; show values in messages.

The converters behind every request field (``prompt``, ``duration``, ``trace`` ...): each appends
its problems, naming the field, the value and what is allowed, and returns the normalised value.
:mod:`airflow_provider_orvideo._internal.request_fields` gives each field its converter;
:mod:`airflow_provider_orvideo.media` uses the same shape checks for media sources.

A leaf module (the standard library only): the dag-processor imports it at parse time, and the
request field table imports it, so it must import neither. Values are shown shortened; bytes and
``data:`` URLs are described by their size, never shown.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

MAX_SESSION_ID_LENGTH = 256
SIZE_PATTERN = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")
FRAME_TYPES = ("first_frame", "last_frame")
MEDIA_KINDS = ("image", "audio", "video")
TRACE_STRING_KEYS = ("trace_id", "trace_name", "span_name", "generation_name", "parent_span_id")

_INT_TEXT = re.compile(r"[+-]?[0-9]{1,19}")
_MAX_INT = 2**63 - 1
_SHOWN_CHARS = 100

Pending = Callable[[Any], bool]
"""Says whether a value is still a template (checked after rendering instead)."""


def never_pending(value: Any) -> bool:
    """The :data:`Pending` after rendering: nothing is a template any more."""
    return False


# -- showing values ----------------------------------------------------------------------------


def shown(value: Any) -> str:
    """``repr`` of a value for a message: bytes and ``data:`` URLs by size, long values shortened,
    the query of a URL (which may carry a token) left out."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value):,} bytes>"
    if isinstance(value, str):
        if value[:5].lower() == "data:":
            return f"<data: URL, {len(value):,} characters>"
        if "://" in value and "?" in value:
            value = value.split("?", 1)[0] + "?..."
    elif isinstance(value, Mapping):
        inner = ", ".join(f"{shown(k)}: {shown(v)}" for k, v in list(value.items())[:10])
        text = "{" + inner + (", ..." if len(value) > 10 else "") + "}"
        return _shorten(text)
    elif isinstance(value, (list, tuple)):
        inner = ", ".join(shown(v) for v in value[:10])
        brackets = "[]" if isinstance(value, list) else "()"
        return _shorten(brackets[0] + inner + (", ..." if len(value) > 10 else "") + brackets[1])
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real problem
        text = f"<{type(value).__name__}>"
    return _shorten(text)


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def shown_item(name: str, value: Any) -> str:
    """``name=value`` for a message, the value :func:`shown`."""
    return f"{name}={shown(value)}"


# -- request field converters (parse time and after rendering) ---------------------------------


def _blank(value: Any) -> bool:
    """None, or a str of whitespace only: the field is absent."""
    return value is None or (isinstance(value, str) and not value.strip())


def _empty(value: Any) -> bool:
    return _blank(value) or (isinstance(value, (Mapping, list, tuple)) and len(value) == 0)


def _text_problem(name: str, value: str) -> str | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        return (
            f"{shown_item(name, value)} is not valid Unicode text (a lone surrogate at position {error.start}); "
            "give plain text"
        )
    return None


def as_str(name: str, value: Any, problems: list[str], pending: Pending = never_pending) -> str | None:
    """A string field: stripped; whitespace only counts as absent."""
    if _blank(value):
        return None
    if not isinstance(value, str):
        problems.append(f"{shown_item(name, value)} must be a string, not {type(value).__name__}")
        return None
    problem = _text_problem(name, value)
    if problem:
        problems.append(problem)
        return None
    return value.strip()


def as_int(name: str, value: Any, problems: list[str], pending: Pending = never_pending) -> int | None:
    """A whole number: an int, an integral finite float (``8.0``) or ASCII digits with an optional
    sign (``"8"``, ``" -3 "``); never ``"²"``, ``"٣"``, ``"1_000"``, ``8.5``, ``nan``, ``True``."""
    if _blank(value):
        return None
    allowed = "must be a whole number (e.g. 8 or '8')"
    if isinstance(value, bool):
        problems.append(f"{shown_item(name, value)} {allowed}, not a boolean")
        return None
    number: int | None = None
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif isinstance(value, numbers.Real):
        try:
            as_float = float(value)
        except (OverflowError, ValueError, TypeError):
            as_float = math.inf
        if not math.isfinite(as_float):
            problems.append(f"{shown_item(name, value)} {allowed}; it is not finite")
            return None
        if not as_float.is_integer():
            problems.append(f"{shown_item(name, value)} {allowed}")
            return None
        number = int(as_float)
    elif isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            number = int(text)
    if number is None:
        problems.append(f"{shown_item(name, value)} {allowed}")
        return None
    if abs(number) > _MAX_INT:
        problems.append(f"{shown_item(name, value)} is out of range; at most {_MAX_INT} in size")
        return None
    return number


def as_duration(name: str, value: Any, problems: list[str], pending: Pending = never_pending) -> int | None:
    duration = as_int(name, value, problems)
    if duration is not None and duration < 1:
        problems.append(f"{name}={duration} must be at least 1 second")
        return None
    return duration


def as_bool(name: str, value: Any, problems: list[str], pending: Pending = never_pending) -> bool | None:
    """True/False, or the strings ``"true"``/``"false"`` (any case) a template renders to."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    problems.append(f"{shown_item(name, value)} must be true or false (a bool, or 'true'/'false')")
    return None


def as_size(name: str, value: Any, problems: list[str], pending: Pending = never_pending) -> str | None:
    size = as_str(name, value, problems)
    if size is not None and not SIZE_PATTERN.match(size):
        problems.append(f"{name}={size!r} must look like 'WIDTHxHEIGHT', e.g. '1280x720'")
        return None
    return size


def as_session_id(name: str, value: Any, problems: list[str], pending: Pending = never_pending) -> str | None:
    session_id = as_str(name, value, problems)
    if session_id is not None and len(session_id) > MAX_SESSION_ID_LENGTH:
        problems.append(
            f"{name} is {len(session_id)} characters; at most {MAX_SESSION_ID_LENGTH} ({shown_item(name, session_id)})"
        )
        return None
    return session_id


def _json_problem(value: Any) -> str | None:
    """Why a value cannot be sent as JSON (NaN and infinities included), or None.

    Encoded the way the request body and its fingerprint are (sorted keys, UTF-8), so keys that
    cannot be ordered (``{1: ..., "b": ...}``) and lone surrogates are found here, before paying.
    """
    try:
        json.dumps(value, allow_nan=False, sort_keys=True, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        return f"holds text that is not valid Unicode (a lone surrogate at position {error.start})"
    except (TypeError, ValueError, RecursionError) as error:
        return str(error).split("\n", 1)[0]
    return None


def as_trace(
    name: str, value: Any, problems: list[str], pending: Pending = never_pending
) -> dict[str, Any] | None:
    """OpenRouter's ``trace`` object: string keys; ``trace_id``, ``trace_name``, ``span_name``,
    ``generation_name`` and ``parent_span_id`` strings when given; any other key a JSON value."""
    if _empty(value):
        return None
    if not isinstance(value, Mapping):
        problems.append(
            f"{shown_item(name, value)} must be a dict (trace_id, trace_name, span_name, generation_name, "
            "parent_span_id as strings, plus any extra keys with JSON values)"
        )
        return None
    count = len(problems)
    for key, item in value.items():
        if not isinstance(key, str):
            problems.append(f"{name} key {shown(key)} must be a string")
            continue
        if pending(item):
            continue
        if key in TRACE_STRING_KEYS:
            if not isinstance(item, str):
                problems.append(f"{name}[{key!r}]={shown(item)} must be a string")
            elif problem := _text_problem(f"{name}[{key!r}]", item):
                problems.append(problem)
            continue
        why = _json_problem(item)
        if why:
            problems.append(f"{name}[{key!r}]={shown(item)} must hold JSON values only ({why})")
    return dict(value) if len(problems) == count else None


def as_provider_options(
    name: str, value: Any, problems: list[str], pending: Pending = never_pending
) -> dict[str, dict[str, Any]] | None:
    """``{provider slug: {parameter: JSON value}}``."""
    if _empty(value):
        return None
    example = "e.g. {'google-vertex': {'negativePrompt': 'blurry'}}"
    if not isinstance(value, Mapping):
        problems.append(f"{shown_item(name, value)} must map provider slugs to parameter dicts, {example}")
        return None
    count = len(problems)
    for slug, params in value.items():
        if not isinstance(slug, str) or not slug.strip():
            problems.append(
                f"{name} key {shown(slug)} must be a provider slug (a non-empty string), {example}"
            )
            continue
        if pending(params):
            continue
        if not isinstance(params, Mapping):
            problems.append(
                f"{name}[{slug!r}]={shown(params)}: {name} must map provider slugs to parameter dicts, {example}"
            )
            continue
        for key, item in params.items():
            if not isinstance(key, str):
                problems.append(f"{name}[{slug!r}] key {shown(key)} must be a string")
            elif not pending(item) and (why := _json_problem(item)):
                problems.append(f"{name}[{slug!r}][{key!r}]={shown(item)} must be a JSON value ({why})")
    if len(problems) != count:
        return None
    return {slug: dict(params) if isinstance(params, Mapping) else params for slug, params in value.items()}


def is_object_storage_path(source: Any) -> bool:
    """Whether ``source`` is an Airflow ``ObjectStoragePath``: told by its class name, as importing
    the class costs DAG-parse time. Ask this before ``isinstance(source, PurePath)``: on Airflow
    3.0 and 3.1 an ``ObjectStoragePath`` is a ``PurePath`` too."""
    return type(source).__name__ == "ObjectStoragePath"


def source_problem(field: str, source: Any) -> str | None:
    """Why ``source`` is not a media source (its type, or empty), or None. Content is not read."""
    if isinstance(source, (bytes, bytearray, memoryview, PurePath)) or is_object_storage_path(source):
        return None
    if isinstance(source, str):
        if not source.strip():
            return f"{field}={shown(source)} is empty; give an https URL, a data: URL, a file path or an object storage URI"
        return None
    return (
        f"{field}={shown(source)} is not a media source ({type(source).__name__}); give an https URL, "
        "a data: URL, a file path, an object storage URI or bytes"
    )


def frame_images_problems(value: Any, pending: Pending = never_pending) -> list[str]:
    """Shape of ``frame_images``: a dict of known frame types to sources."""
    if _empty(value) or pending(value):
        return []
    if not isinstance(value, Mapping):
        return [
            "frame_images must be a dict such as {'first_frame': src, 'last_frame': src}; "
            f"got {shown_item('frame_images', value)} ({type(value).__name__})"
        ]
    problems = []
    for frame_type, source in value.items():
        if frame_type not in FRAME_TYPES:
            problems.append(
                f"frame_images key {shown(frame_type)} is not a frame type; allowed: {', '.join(FRAME_TYPES)}"
            )
        elif not pending(source) and (problem := source_problem(f"frame_images[{frame_type!r}]", source)):
            problems.append(problem)
    return problems


def reference_entry(field: str, entry: Any, problems: list[str]) -> tuple[Any, str | None]:
    """An ``input_references`` entry is a source, or ``{"kind": ..., "source": ...}``; returns
    (source, declared kind or None). Problems with a dict entry are appended."""
    if not isinstance(entry, Mapping):
        return entry, None
    keys = set(entry)
    if keys - {"kind", "source"} or "source" not in keys:
        listed = ", ".join(sorted(shown(k) for k in keys)) or "none"
        problems.append(
            f"{field} has keys {listed}; an entry is a source or "
            "{'kind': 'image' | 'audio' | 'video', 'source': ...}"
        )
        return None, None
    kind = entry.get("kind")
    if kind is None:
        return entry["source"], None
    declared = getattr(kind, "value", kind)  # a MediaKind member gives its value
    if not isinstance(declared, str) or declared.strip() not in MEDIA_KINDS:
        problems.append(f"{field} has kind={shown(kind)}; allowed: {', '.join(MEDIA_KINDS)}")
        return entry["source"], None
    return entry["source"], declared.strip()


def input_references_problems(value: Any, pending: Pending = never_pending) -> list[str]:
    """Shape of ``input_references``: a list of sources or ``{"kind", "source"}`` dicts."""
    if _empty(value) or pending(value):
        return []
    if isinstance(value, (str, bytes, bytearray, memoryview, Mapping)) or not isinstance(value, Sequence):
        return [
            "input_references must be a list of sources, e.g. ['https://cdn.example/a.png', "
            "{'kind': 'audio', 'source': '/data/voice.mp3'}]; "
            f"got {shown_item('input_references', value)} ({type(value).__name__})"
        ]
    problems: list[str] = []
    for index, entry in enumerate(value):
        field = f"input_references[{index}]"
        if pending(entry):
            continue
        if isinstance(entry, Mapping):
            if "kind" in entry and pending(entry.get("kind")):
                entry = {k: v for k, v in entry.items() if k != "kind"}
            count = len(problems)
            source, _ = reference_entry(field, entry, problems)
            if len(problems) != count or pending(source):
                continue
        else:
            source = entry
        if problem := source_problem(field, source):
            problems.append(problem)
    return problems


def check_frame_images(name: str, value: Any, problems: list[str], pending: Pending = never_pending) -> Any:
    """The converter of ``frame_images``: its shape only; the value is returned as given, as
    :mod:`airflow_provider_orvideo.media` reads the sources later, on the worker."""
    problems.extend(frame_images_problems(value, pending))
    return value


def check_input_references(
    name: str, value: Any, problems: list[str], pending: Pending = never_pending
) -> Any:
    """The converter of ``input_references``: like :func:`check_frame_images`."""
    problems.extend(input_references_problems(value, pending))
    return value


Converter = Callable[[str, Any, list[str], Pending], Any]
"""``(field name, value, problems, pending) -> normalised value``: appends a problem for a value it
refuses (and returns None); a part of the value that ``pending`` says is a template is not checked."""
