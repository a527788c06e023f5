"""Check the operator's arguments: when the DAG is parsed, and again after rendering.

Pure and cheap on purpose: the operator calls :func:`check_operator_arguments` from its
``__init__``, which the dag-processor runs all day, so this module imports nothing from Airflow
at module level (the exception class is imported when a problem is found).

* Non-templated arguments (``poll_interval``, ``job_timeout``, ``orphan_policy`` ...) are checked
  once, at parse time, and returned normalised (:class:`OperatorArguments`).
* Templated request fields (``prompt``, ``duration``, ``trace`` ...) are checked by one set of
  converters (:data:`FIELD_CHECKS`): at parse time for the values that cannot be templates (no
  Jinja in them, no ``XComArg`` or other lazy Airflow value), and after rendering by
  :func:`airflow_provider_orvideo._internal.validation.build_request` and the operator, before any request.
  :mod:`airflow_provider_orvideo.media` uses the same shape checks for media sources.

Every problem is reported at once, each naming the parameter, the value and what is allowed.
Values are shown shortened; bytes and ``data:`` URLs are described by their size, never shown.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from airflow_provider_orvideo.defaults import DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS
from airflow_provider_orvideo.exceptions import NOTHING_SPENT

if TYPE_CHECKING:
    from airflow_provider_orvideo.exceptions import InvalidOperatorArgumentError

MAX_WAIT_SECONDS = 30 * 24 * 3600.0
"""Upper bound of ``job_timeout`` and ``poll_interval`` (30 days): far past any video job, and
small enough that the deferral timeout (``job_timeout + poll_interval + grace``) stays a valid
``timedelta`` (``job_timeout=1e300`` would otherwise fail at ``defer()``, after the paid submit)."""
MAX_SESSION_ID_LENGTH = 256
SIZE_PATTERN = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")
FRAME_TYPES = ("first_frame", "last_frame")
MEDIA_KINDS = ("image", "audio", "video")
TRACE_STRING_KEYS = ("trace_id", "trace_name", "span_name", "generation_name", "parent_span_id")
"""The keys of OpenRouter's ``trace`` object that must be strings; any other key is free."""
REQUEST_FIELDS = (
    "prompt",
    "model",
    "duration",
    "resolution",
    "aspect_ratio",
    "size",
    "generate_audio",
    "seed",
    "frame_images",
    "input_references",
    "provider_options",
    "previous_job_id",
    "session_id",
    "trace",
    "user",
)
"""The templated operator fields that make the request (``output_path`` is checked elsewhere)."""

_INT_TEXT = re.compile(r"[+-]?[0-9]{1,19}")
_MAX_INT = 2**63 - 1
_SHOWN_CHARS = 100

Pending = Callable[[Any], bool]
"""Says whether a value is still a template (checked after rendering instead)."""


def _never_pending(value: Any) -> bool:
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


def _item(name: str, value: Any) -> str:
    return f"{name}={shown(value)}"


# -- templates ---------------------------------------------------------------------------------


def is_lazy(value: Any) -> bool:
    """An Airflow value resolved when the task runs (``XComArg``, ``MappedArgument``, ``DagParam``
    ...): anything Airflow's templater would ``resolve()``."""
    try:
        from airflow.sdk.definitions._internal.mixins import ResolveMixin
    except ImportError:  # pragma: no cover - moved in a later Airflow: fall back to the duck type
        pass
    else:
        if isinstance(value, ResolveMixin):
            return True
    if isinstance(value, (str, bytes, int, float, Mapping, list, tuple, os.PathLike)):
        return False
    try:
        return callable(getattr(value, "resolve", None))
    except Exception:
        return False


def template_detector(
    jinja_environment_kwargs: Mapping[str, Any] | None = None, template_ext: Sequence[str] = ()
) -> Pending:
    """A :data:`Pending` for parse time: a str holding a Jinja start marker (the DAG's own
    delimiters when it sets them), a str naming a template file, or a lazy Airflow value."""
    env = jinja_environment_kwargs or {}
    markers = tuple(
        str(env.get(key) or default)
        for key, default in (
            ("variable_start_string", "{{"),
            ("block_start_string", "{%"),
            ("comment_start_string", "{#"),
        )
    )
    extensions = tuple(ext for ext in template_ext if ext)

    def pending(value: Any) -> bool:
        if isinstance(value, str):
            return any(marker in value for marker in markers) or bool(
                extensions and value.endswith(extensions)
            )
        return is_lazy(value)

    return pending


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
            f"{_item(name, value)} is not valid Unicode text (a lone surrogate at position {error.start}); "
            "give plain text"
        )
    return None


def as_str(name: str, value: Any, problems: list[str], pending: Pending = _never_pending) -> str | None:
    """A string field: stripped; whitespace only counts as absent."""
    if _blank(value):
        return None
    if not isinstance(value, str):
        problems.append(f"{_item(name, value)} must be a string, not {type(value).__name__}")
        return None
    problem = _text_problem(name, value)
    if problem:
        problems.append(problem)
        return None
    return value.strip()


def as_int(name: str, value: Any, problems: list[str], pending: Pending = _never_pending) -> int | None:
    """A whole number: an int, an integral finite float (``8.0``) or ASCII digits with an optional
    sign (``"8"``, ``" -3 "``); never ``"²"``, ``"٣"``, ``"1_000"``, ``8.5``, ``nan``, ``True``."""
    if _blank(value):
        return None
    allowed = "must be a whole number (e.g. 8 or '8')"
    if isinstance(value, bool):
        problems.append(f"{_item(name, value)} {allowed}, not a boolean")
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
            problems.append(f"{_item(name, value)} {allowed}; it is not finite")
            return None
        if not as_float.is_integer():
            problems.append(f"{_item(name, value)} {allowed}")
            return None
        number = int(as_float)
    elif isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            number = int(text)
    if number is None:
        problems.append(f"{_item(name, value)} {allowed}")
        return None
    if abs(number) > _MAX_INT:
        problems.append(f"{_item(name, value)} is out of range; at most {_MAX_INT} in size")
        return None
    return number


def as_duration(name: str, value: Any, problems: list[str], pending: Pending = _never_pending) -> int | None:
    duration = as_int(name, value, problems)
    if duration is not None and duration < 1:
        problems.append(f"{name}={duration} must be at least 1 second")
        return None
    return duration


def as_bool(name: str, value: Any, problems: list[str], pending: Pending = _never_pending) -> bool | None:
    """True/False, or the strings ``"true"``/``"false"`` (any case) a template renders to."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    problems.append(f"{_item(name, value)} must be true or false (a bool, or 'true'/'false')")
    return None


def as_size(name: str, value: Any, problems: list[str], pending: Pending = _never_pending) -> str | None:
    size = as_str(name, value, problems)
    if size is not None and not SIZE_PATTERN.match(size):
        problems.append(f"{name}={size!r} must look like 'WIDTHxHEIGHT', e.g. '1280x720'")
        return None
    return size


def as_session_id(
    name: str, value: Any, problems: list[str], pending: Pending = _never_pending
) -> str | None:
    session_id = as_str(name, value, problems)
    if session_id is not None and len(session_id) > MAX_SESSION_ID_LENGTH:
        problems.append(
            f"{name} is {len(session_id)} characters; at most {MAX_SESSION_ID_LENGTH} ({_item(name, session_id)})"
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
    name: str, value: Any, problems: list[str], pending: Pending = _never_pending
) -> dict[str, Any] | None:
    """OpenRouter's ``trace`` object: string keys; ``trace_id``, ``trace_name``, ``span_name``,
    ``generation_name`` and ``parent_span_id`` strings when given; any other key a JSON value."""
    if _empty(value):
        return None
    if not isinstance(value, Mapping):
        problems.append(
            f"{_item(name, value)} must be a dict (trace_id, trace_name, span_name, generation_name, "
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
    name: str, value: Any, problems: list[str], pending: Pending = _never_pending
) -> dict[str, dict[str, Any]] | None:
    """``{provider slug: {parameter: JSON value}}``."""
    if _empty(value):
        return None
    example = "e.g. {'google-vertex': {'negativePrompt': 'blurry'}}"
    if not isinstance(value, Mapping):
        problems.append(f"{_item(name, value)} must map provider slugs to parameter dicts, {example}")
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


def frame_images_problems(value: Any, pending: Pending = _never_pending) -> list[str]:
    """Shape of ``frame_images``: a dict of known frame types to sources."""
    if _empty(value) or pending(value):
        return []
    if not isinstance(value, Mapping):
        return [
            "frame_images must be a dict such as {'first_frame': src, 'last_frame': src}; "
            f"got {_item('frame_images', value)} ({type(value).__name__})"
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


def input_references_problems(value: Any, pending: Pending = _never_pending) -> list[str]:
    """Shape of ``input_references``: a list of sources or ``{"kind", "source"}`` dicts."""
    if _empty(value) or pending(value):
        return []
    if isinstance(value, (str, bytes, bytearray, memoryview, Mapping)) or not isinstance(value, Sequence):
        return [
            "input_references must be a list of sources, e.g. ['https://cdn.example/a.png', "
            "{'kind': 'audio', 'source': '/data/voice.mp3'}]; "
            f"got {_item('input_references', value)} ({type(value).__name__})"
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


def _check_frame_images(name: str, value: Any, problems: list[str], pending: Pending = _never_pending) -> Any:
    problems.extend(frame_images_problems(value, pending))
    return value


def _check_input_references(
    name: str, value: Any, problems: list[str], pending: Pending = _never_pending
) -> Any:
    problems.extend(input_references_problems(value, pending))
    return value


Converter = Callable[[str, Any, list[str], Pending], Any]

FIELD_CHECKS: dict[str, Converter] = {
    "prompt": as_str,
    "model": as_str,
    "duration": as_duration,
    "resolution": as_str,
    "aspect_ratio": as_str,
    "size": as_size,
    "generate_audio": as_bool,
    "seed": as_int,
    "frame_images": _check_frame_images,
    "input_references": _check_input_references,
    "provider_options": as_provider_options,
    "previous_job_id": as_str,
    "session_id": as_session_id,
    "trace": as_trace,
    "user": as_str,
}
"""One converter per request field: appends problems, returns the normalised value (media fields
are returned as given: :mod:`airflow_provider_orvideo.media` reads them)."""


def check_request_fields(
    values: Mapping[str, Any], pending: Pending = _never_pending
) -> tuple[dict[str, Any], list[str]]:
    """Run :data:`FIELD_CHECKS` over ``values`` (request field name -> value); a value ``pending``
    says is still a template is skipped and returned as is. Returns (normalised values, problems)."""
    problems: list[str] = []
    normalised: dict[str, Any] = {}
    for name, value in values.items():
        if pending(value):
            normalised[name] = value
        else:
            normalised[name] = FIELD_CHECKS[name](name, value, problems, pending)
    return normalised, problems


# -- non-templated operator arguments (parse time) ---------------------------------------------


def _number(
    name: str,
    value: Any,
    problems: list[str],
    *,
    allowed: str,
    positive: bool,
    allow_timedelta: bool = False,
) -> float | None:
    """A real number (not a bool; a ``timedelta`` in seconds when allowed), finite, > 0 or >= 0."""
    if allow_timedelta and isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            number = float(value)
        except (OverflowError, ValueError, TypeError):
            number = math.inf
    else:
        problems.append(f"{_item(name, value)} {allowed}, not {type(value).__name__}")
        return None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        problems.append(f"{_item(name, value)} {allowed}")
        return None
    return number


def _wait(name: str, value: Any, problems: list[str], *, allow_timedelta: bool = False) -> float:
    what = "a timedelta or " if allow_timedelta else ""
    allowed = f"must be {what}a finite number of seconds > 0 and <= {MAX_WAIT_SECONDS:,.0f} (30 days)"
    seconds = _number(name, value, problems, allowed=allowed, positive=True, allow_timedelta=allow_timedelta)
    if seconds is None:
        return 0.0
    if seconds > MAX_WAIT_SECONDS:
        problems.append(f"{_item(name, value)} {allowed}")
    return seconds


def _delays(value: Any, problems: list[str]) -> tuple[float, ...]:
    name = "initial_poll_delays"
    allowed = "must be a list or tuple of finite numbers of seconds >= 0, e.g. (30, 10, 20)"
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Sequence):
        problems.append(f"{_item(name, value)} {allowed}")
        return ()
    delays = []
    for index, delay in enumerate(value):
        seconds = _number(
            f"{name}[{index}]", delay, problems, allowed=f"is not allowed: {name} {allowed}", positive=False
        )
        if seconds is not None:
            delays.append(seconds)
    return tuple(delays)


def _whole(name: str, value: Any, problems: list[str]) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1:
        return int(value)
    problems.append(f"{_item(name, value)} must be a whole number >= 1 (an int)")
    return 1


def _flag(name: str, value: Any, problems: list[str]) -> bool:
    if not isinstance(value, bool):
        problems.append(f"{_item(name, value)} must be True or False (a bool)")
        return False
    return value


def _orphan_policy(value: Any, problems: list[str]) -> str:
    from airflow_provider_orvideo._internal.submission import OrphanPolicy

    policies = [policy.value for policy in OrphanPolicy]
    for policy in policies:
        if isinstance(value, str) and value == policy:
            return policy  # the plain str, also for a str enum member such as OrphanPolicy.FAIL
    problems.append(
        f"{_item('orphan_policy', value)} is not allowed; allowed: {', '.join(map(repr, policies))}"
    )
    return policies[0]


def _callback_url(value: Any, problems: list[str]) -> str | None:
    from airflow_provider_orvideo.webhooks import check_callback_url

    if value is None or value == "":
        return None if value is None else ""  # None: the connection's; "": no webhooks for this task
    if not isinstance(value, str):
        problems.append(f"{_item('callback_url', value)} must be None, '' or a https:// URL (a str)")
        return None
    try:
        return check_callback_url(value)
    except ValueError as error:
        problems.append(f"callback_url is not usable: {error}")
        return None


def _conn_id(value: Any, problems: list[str]) -> str:
    if isinstance(value, str) and value.strip():
        return value
    problems.append(f"{_item('openrouter_conn_id', value)} must be a non-empty string (a connection id)")
    return ""


@dataclass(frozen=True)
class OperatorArguments:
    """The non-templated operator arguments, checked and normalised."""

    poll_interval: float
    initial_poll_delays: tuple[float, ...]
    job_timeout: float
    """Seconds."""
    max_cost_usd: float | None
    orphan_policy: str
    airflow_trace: bool
    strict_cost_check: bool
    resubmit_failed_jobs: bool
    deferrable: bool
    overwrite: bool
    openrouter_conn_id: str
    callback_url: str | None = None
    webhook_poll_interval: float = DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS


def argument_error(header: str, problems: Sequence[str]) -> InvalidOperatorArgumentError:
    """One :class:`InvalidOperatorArgumentError` listing every problem."""
    from airflow_provider_orvideo.exceptions import InvalidOperatorArgumentError

    lines = "\n".join(f"  - {problem}" for problem in problems)
    return InvalidOperatorArgumentError(f"{header}:\n{lines}\n{NOTHING_SPENT}")


def check_operator_arguments(
    *,
    poll_interval: Any,
    initial_poll_delays: Any,
    job_timeout: Any,
    max_cost_usd: Any,
    orphan_policy: Any,
    airflow_trace: Any,
    strict_cost_check: Any,
    resubmit_failed_jobs: Any,
    deferrable: Any,
    overwrite: Any,
    openrouter_conn_id: Any,
    callback_url: Any = None,
    webhook_poll_interval: Any = DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS,
    request_fields: Mapping[str, Any] | None = None,
    jinja_environment_kwargs: Mapping[str, Any] | None = None,
    template_ext: Sequence[str] = (),
    task_id: str | None = None,
    operator_name: str = "OpenRouterVideoOperator",
) -> OperatorArguments:
    """Check the operator's arguments when the DAG is parsed; return the non-templated ones
    normalised, or raise one :class:`InvalidOperatorArgumentError` naming every problem.

    ``request_fields`` (templated) are checked only where they cannot be templates; see
    :func:`template_detector`.
    """
    problems: list[str] = []
    max_cost = None
    if max_cost_usd is not None:
        max_cost = _number(
            "max_cost_usd",
            max_cost_usd,
            problems,
            allowed="must be None or a finite number of USD > 0",
            positive=True,
        )
    checked = OperatorArguments(
        overwrite=_flag("overwrite", overwrite, problems),
        airflow_trace=_flag("airflow_trace", airflow_trace, problems),
        max_cost_usd=max_cost,
        strict_cost_check=_flag("strict_cost_check", strict_cost_check, problems),
        resubmit_failed_jobs=_flag("resubmit_failed_jobs", resubmit_failed_jobs, problems),
        orphan_policy=_orphan_policy(orphan_policy, problems),
        openrouter_conn_id=_conn_id(openrouter_conn_id, problems),
        deferrable=_flag("deferrable", deferrable, problems),
        poll_interval=_wait("poll_interval", poll_interval, problems),
        initial_poll_delays=_delays(initial_poll_delays, problems),
        job_timeout=_wait("job_timeout", job_timeout, problems, allow_timedelta=True),
        callback_url=_callback_url(callback_url, problems),
        webhook_poll_interval=_wait("webhook_poll_interval", webhook_poll_interval, problems),
    )
    if request_fields:
        _, field_problems = check_request_fields(
            request_fields, template_detector(jinja_environment_kwargs, template_ext)
        )
        problems.extend(field_problems)
    if problems:
        task = f" (task {task_id!r})" if task_id else ""
        raise argument_error(f"Invalid arguments for {operator_name}{task}", problems)
    return checked


def check_rendered_fields(values: Mapping[str, Any], header: str) -> dict[str, Any]:
    """After rendering (nothing is a template any more): every request field's type and shape,
    all problems at once, before any media is read or request made."""
    normalised, problems = check_request_fields(values)
    if problems:
        raise argument_error(header, problems)
    return normalised
