"""Build the submit body and check it against the model's declared capabilities, before money.

Everything here is pure. The operator renders its templates, calls :func:`build_request_from` (type
checks, so ``"8"`` from a Jinja template becomes ``8``), then :func:`check_against_model` with
the catalogue from ``GET /videos/models``. Every problem is reported at once, each naming the
field, the value, the model and what is allowed, so one fix-and-rerun cycle is enough.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_orvideo._internal.api import MAX_REQUEST_BODY_BYTES, VideoModel, submit_request
from airflow_provider_orvideo._internal.field_checks import MAX_SESSION_ID_LENGTH as MAX_SESSION_ID_LENGTH
from airflow_provider_orvideo._internal.field_checks import shown
from airflow_provider_orvideo._internal.request_fields import (
    MEDIA_FIELDS,
    NON_MEDIA_FIELDS,
    REQUEST_FIELD_TABLE,
    check_request_fields,
)
from airflow_provider_orvideo.exceptions import (
    NOTHING_SPENT,
    InvalidOperatorArgumentError,
    InvalidVideoRequestError,
)

if TYPE_CHECKING:
    # Types only: media reads files and object storage (the I/O layer); what is checked here is
    # already resolved (tests/test_layers.py keeps the pure core from importing it).
    from airflow_provider_orvideo.media import MediaKind, ResolvedMedia

API_RESOLUTIONS = ("360p", "480p", "720p", "768p", "1080p", "1K", "2K", "4K")
API_ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9", "9:21")


@dataclass(frozen=True)
class VideoRequest:
    """A typed submit request; ``None`` fields are left out of the body (the API's defaults apply)."""

    model: str
    prompt: str | None = None
    duration: int | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    size: str | None = None
    generate_audio: bool | None = None
    seed: int | None = None
    frame_images: tuple[tuple[str, ResolvedMedia], ...] = ()
    input_references: tuple[tuple[MediaKind, ResolvedMedia], ...] = ()
    provider_options: Mapping[str, Mapping[str, Any]] | None = None
    previous_job_id: str | None = None
    session_id: str | None = None
    trace: Mapping[str, Any] | None = None
    user: str | None = None

    def to_body(self) -> dict[str, Any]:
        """The submit body: each field as its row of the request field table sends it."""
        body: dict[str, Any] = {}
        for field in REQUEST_FIELD_TABLE:
            value = field.body_value(getattr(self, field.name))
            if value is not None:
                body[field.body_key] = value
        return body

    def media(self) -> list[ResolvedMedia]:
        return [media for name in MEDIA_FIELDS for _, media in getattr(self, name)]


def _fail(
    model: Any, problems: Sequence[str], error: type[InvalidVideoRequestError] = InvalidVideoRequestError
) -> InvalidVideoRequestError:
    lines = "\n".join(f"  - {p}" for p in problems)
    return error(f"Invalid video request for model {shown_model(model)}:\n{lines}\n{NOTHING_SPENT}")


def build_request_from(
    values: Mapping[str, Any],
    *,
    frame_images: tuple[tuple[str, ResolvedMedia], ...] = (),
    input_references: tuple[tuple[MediaKind, ResolvedMedia], ...] = (),
) -> VideoRequest:
    """Type-check rendered operator arguments into a :class:`VideoRequest` (no network).

    ``values`` maps the request fields that are not media
    (:data:`~airflow_provider_orvideo._internal.request_fields.NON_MEDIA_FIELDS`) to their values;
    a field left out is None. The checks are the fields' converters, the ones the operator also
    runs when the DAG is parsed. Media fields arrive already resolved (see
    :mod:`airflow_provider_orvideo.media`). Raises :class:`InvalidOperatorArgumentError`.
    """
    unknown = sorted(set(values) - set(NON_MEDIA_FIELDS))
    if unknown:  # the caller's mistake, not the DAG author's
        raise TypeError(
            f"build_request_from() got {', '.join(unknown)}; it takes {', '.join(NON_MEDIA_FIELDS)}, "
            "and the media resolved, as frame_images= and input_references="
        )
    model, prompt = values.get("model"), values.get("prompt")
    fields, problems = check_request_fields({name: values.get(name) for name in NON_MEDIA_FIELDS})
    has_problem = {name for name in ("model", "prompt") if any(p.startswith(f"{name}=") for p in problems)}
    if fields["model"] is None and "model" not in has_problem:
        problems.append(
            "model is required (an OpenRouter video model id such as 'google/veo-3.1')" + _got("model", model)
        )
    if fields["prompt"] is None and not (frame_images or input_references) and "prompt" not in has_problem:
        problems.append(
            "prompt is required unless frame_images or input_references are given" + _got("prompt", prompt)
        )
    if problems:
        raise _fail(model, problems, InvalidOperatorArgumentError)
    return VideoRequest(
        frame_images=frame_images,
        input_references=input_references,
        **fields,
    )


def _got(name: str, value: Any) -> str:
    return "" if value is None else f"; got {name}={shown(value)}"


def shown_model(model: Any) -> str:
    """The model as a message header names it: ``repr`` of a plain id, else shortened."""
    return repr(model) if isinstance(model, str) and len(model) <= 200 else shown(model)


def _check_choice(
    problems: list[str],
    field_name: str,
    value: Any,
    allowed: Sequence[Any] | None,
    model_id: str,
    fallback: Sequence[Any],
) -> None:
    if value is None:
        return
    choices = allowed if allowed is not None else fallback
    if choices and value not in choices:
        listed = ", ".join(str(c) for c in choices)
        scope = f"model {model_id}" if allowed is not None else "the OpenRouter API"
        problems.append(f"{field_name}={value!r} is not supported by {scope}; allowed: {listed}")


def check_against_model(request: VideoRequest, models: Mapping[str, VideoModel]) -> VideoModel:
    """Check every field against the model's capabilities; return the model or raise."""
    model = models.get(request.model)
    if model is None:
        available = ", ".join(sorted(models)) or "(the model list is empty)"
        raise InvalidVideoRequestError(
            f"Invalid video request: model={request.model!r} is not an OpenRouter video model. "
            f"Available video models: {available}. {NOTHING_SPENT}"
        )
    problems: list[str] = []
    _check_choice(problems, "duration", request.duration, model.supported_durations, model.id, ())
    _check_choice(
        problems, "resolution", request.resolution, model.supported_resolutions, model.id, API_RESOLUTIONS
    )
    _check_choice(
        problems,
        "aspect_ratio",
        request.aspect_ratio,
        model.supported_aspect_ratios,
        model.id,
        API_ASPECT_RATIOS,
    )
    _check_choice(problems, "size", request.size, model.supported_sizes, model.id, ())
    if request.generate_audio and model.generate_audio is False:
        problems.append(
            f"generate_audio=True is not supported by model {model.id}: it generates silent video only"
        )
    if request.seed is not None and model.seed is False:
        problems.append(f"seed={request.seed} is not supported by model {model.id}: it has no seed control")
    supported_frames = model.supported_frame_images or ()
    for frame_type, _ in request.frame_images:
        if frame_type not in supported_frames:
            allowed = ", ".join(supported_frames) or "none (the model does not take frame images)"
            problems.append(
                f"frame_images[{frame_type!r}] is not supported by model {model.id}; allowed: {allowed}"
            )
    allowed_keys = model.allowed_passthrough_parameters
    for slug, params in (request.provider_options or {}).items():
        for key in params:
            if key not in allowed_keys:
                listed = ", ".join(allowed_keys) or "none"
                problems.append(
                    f"provider_options[{slug!r}][{key!r}] is not a passthrough parameter of model {model.id}; "
                    f"allowed: {listed}"
                )
    if problems:
        raise _fail(model.id, problems)
    return model


def check_body_size(request: VideoRequest) -> None:
    """Refuse a body that cannot be sent as UTF-8 JSON (a lone surrogate in a URL or option), or
    that OpenRouter would reject with 413 (its cap is 50 MiB), naming the field or biggest sources."""
    fields = request.to_body()
    unencodable = []
    for name, value in fields.items():
        try:
            json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")
        except UnicodeEncodeError as error:
            unencodable.append(
                f"{name} holds text that is not valid Unicode (a lone surrogate at position {error.start})"
            )
    if unencodable:
        raise _fail(request.model, unencodable)
    body = submit_request(fields).encoded_body() or b""
    if len(body) <= MAX_REQUEST_BODY_BYTES:
        return
    biggest = sorted(request.media(), key=lambda m: m.encoded_size, reverse=True)[:3]
    named = "; ".join(f"{m.description}: {m.encoded_size:,} bytes encoded" for m in biggest)
    raise _fail(
        request.model,
        [
            f"the request body would be {len(body):,} bytes; OpenRouter accepts at most "
            f"{MAX_REQUEST_BODY_BYTES:,}. Largest sources: {named or 'the prompt'}. "
            "Pass large media as https URLs instead of files or bytes"
        ],
    )
