"""The request fields, in one table: everything else about them is derived from it.

A request field (``prompt``, ``duration``, ``trace`` ...) is an operator parameter, a templated
field, a :class:`~airflow_provider_orvideo._internal.validation.VideoRequest` attribute and a key
of the submit body. Its row says how its value is checked, whether it changes the video (the
fingerprint that keeps a retry from paying twice leaves the labels out), whether later steps report
it, whether it is media, and how it goes into the body. The names, the checks, the operator's
``template_fields``, the body, the label set and the reported facts all come from
:data:`REQUEST_FIELD_TABLE`, so a field missing from one list cannot silently change the
fingerprint or the facts. Adding a field: one row here, one operator parameter, one row in docs/operator.md
(``tests/_internal/test_request_fields.py`` checks all three).

Imported at DAG parse time (through :mod:`~airflow_provider_orvideo._internal.arguments`): it
imports nothing from Airflow, and only :mod:`~airflow_provider_orvideo._internal.field_checks`
from this provider.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_orvideo._internal.field_checks import (
    Converter,
    Pending,
    as_bool,
    as_duration,
    as_int,
    as_provider_options,
    as_session_id,
    as_size,
    as_str,
    as_trace,
    check_frame_images,
    check_input_references,
    never_pending,
)

if TYPE_CHECKING:
    from airflow_provider_orvideo.media import MediaKind, ResolvedMedia


# -- how a checked value goes into the submit body (None: the key is left out) -----------------


def _as_is(value: Any) -> Any:
    return value


def _json_object(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(value) if value else None


def _frame_images_body(frames: Sequence[tuple[str, ResolvedMedia]]) -> list[dict[str, Any]] | None:
    return [
        {"type": "image_url", "image_url": {"url": media.url}, "frame_type": frame_type}
        for frame_type, media in frames
    ] or None


def _input_references_body(
    references: Sequence[tuple[MediaKind, ResolvedMedia]],
) -> list[dict[str, Any]] | None:
    return [
        {"type": kind.content_type, kind.content_type: {"url": media.url}} for kind, media in references
    ] or None


def _provider_body(options: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any] | None:
    if not options:
        return None
    return {"options": {slug: {"parameters": dict(params)} for slug, params in options.items()}}


# -- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestField:
    """One request field: how it is checked, what it means for the video, how it is sent."""

    name: str
    """The operator parameter, templated field and ``VideoRequest`` attribute."""
    check: Converter
    """Checks and normalises the value, at DAG parse (where it is not a template) and after
    rendering, before any media is read or money spent."""
    label: bool = False
    """Labels the job in OpenRouter's logs without changing the video: left out of the
    fingerprint, so a per-try value (Airflow's trace) never makes a retry pay again."""
    reported: bool = False
    """One of the facts reported once the request is validated (XCom ``video_request``, the asset
    event, the log). Media are not: they can be megabytes of data URL."""
    media: bool = False
    """Sources that :mod:`airflow_provider_orvideo.media` reads into URLs before the submit; not
    carried across a deferral (they may be bytes, or megabytes of data URL)."""
    sent_as: str | None = None
    """The submit body's key, when it is not :attr:`name`."""
    body_value: Callable[[Any], Any] = _as_is
    """The checked (for media: resolved) value -> the body's value; None leaves the key out."""

    @property
    def body_key(self) -> str:
        return self.sent_as or self.name


REQUEST_FIELD_TABLE: tuple[RequestField, ...] = (
    RequestField("prompt", as_str, reported=True),
    RequestField("model", as_str, reported=True),
    RequestField("duration", as_duration, reported=True),
    RequestField("resolution", as_str, reported=True),
    RequestField("aspect_ratio", as_str, reported=True),
    RequestField("size", as_size, reported=True),
    RequestField("generate_audio", as_bool, reported=True),
    RequestField("seed", as_int, reported=True),
    RequestField("frame_images", check_frame_images, media=True, body_value=_frame_images_body),
    RequestField("input_references", check_input_references, media=True, body_value=_input_references_body),
    RequestField("provider_options", as_provider_options, sent_as="provider", body_value=_provider_body),
    RequestField("previous_job_id", as_str),
    RequestField("session_id", as_session_id, label=True),
    RequestField("trace", as_trace, label=True, body_value=_json_object),
    RequestField("user", as_str, label=True),
)
"""Every request field, in the operator's parameter order (also the order of the body's keys and
of the reported facts)."""


# -- derived -----------------------------------------------------------------------------------

REQUEST_FIELDS: tuple[str, ...] = tuple(field.name for field in REQUEST_FIELD_TABLE)
"""The templated operator fields that make the request (``output_path`` is checked elsewhere)."""

FIELD_CHECKS: Mapping[str, Converter] = {field.name: field.check for field in REQUEST_FIELD_TABLE}
"""One converter per request field: appends problems, returns the normalised value (media fields
are returned as given: :mod:`airflow_provider_orvideo.media` reads them)."""

MEDIA_FIELDS: tuple[str, ...] = tuple(field.name for field in REQUEST_FIELD_TABLE if field.media)
"""The fields whose sources are read into URLs before the submit, and not carried across a
deferral."""

NON_MEDIA_FIELDS: tuple[str, ...] = tuple(field.name for field in REQUEST_FIELD_TABLE if not field.media)
"""The fields whose checked value is the request's value (the media are resolved first)."""

LABEL_FIELDS: frozenset[str] = frozenset(field.body_key for field in REQUEST_FIELD_TABLE if field.label)
"""Submit body keys that label a job in OpenRouter's logs but do not change the video: left out
of the fingerprint."""

REPORTED_FIELDS: tuple[str, ...] = tuple(field.name for field in REQUEST_FIELD_TABLE if field.reported)
"""The fields of a validated request that later steps report: the asset event, the XCom
``video_request``, the log."""


def _template_fields(request_fields: tuple[str, ...]) -> tuple[str, ...]:
    after_model = request_fields.index("model") + 1
    return (
        *request_fields[:after_model],
        "output_path",
        *request_fields[after_model:],
        "openrouter_conn_id",
        "output_conn_id",
    )


TEMPLATE_FIELDS: tuple[str, ...] = _template_fields(REQUEST_FIELDS)
"""The operator's ``template_fields``: the request fields, ``output_path`` right after ``model``
(the three required arguments first, as in the signature), the connection ids last. The order
is what Airflow's rendered-template view shows, so it stays the one of earlier releases."""


def check_request_fields(
    values: Mapping[str, Any], pending: Pending = never_pending
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


def request_facts(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a validated submit body asked for, as JSON primitives (``None``: left to the model).

    Recorded once, before deferring, so the steps after the job (``execute_complete`` on another
    worker, the asset event) read what was validated and sent instead of parsing the operator's
    arguments again.
    """
    return {field.name: body.get(field.body_key) for field in REQUEST_FIELD_TABLE if field.reported}
