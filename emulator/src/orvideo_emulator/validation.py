"""Submit-body validation, mirroring what OpenRouter rejects before it creates a job.

The sources allow a 400 or a 404 for an unknown ``model``; the emulator answers 400
("Model X is not a video model") and keeps 404 for an unknown ``previous_job_id``. Clients
should treat both as permanent failures, so neither choice hides a client bug.
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode
from typing import Any
from urllib.parse import urlsplit

from orvideo_emulator.errors import ApiError
from orvideo_emulator.jobs import JobStore
from orvideo_emulator.models import MODELS_BY_ID

# body field -> model capability listing its allowed values
_CHOICES = {
    "duration": "supported_durations",
    "resolution": "supported_resolutions",
    "aspect_ratio": "supported_aspect_ratios",
    "size": "supported_sizes",
}
# fields accepted only by models whose capability of the same name is not null
_UPSCALING_ONLY = ("upscale_factor", "creativity")
# input_references item type -> the MIME major type its data: URLs must have
_REFERENCE_MEDIA = {"image_url": "image", "audio_url": "audio", "video_url": "video"}
_DATA_URL = re.compile(
    r"data:(?P<mime>[^;,]*)(?:;[^;,]*)*?;base64,(?P<payload>.*)", re.DOTALL | re.IGNORECASE
)
_MIME = re.compile(r"(?P<major>[a-z]+)/[a-z0-9][a-z0-9!#$&^_.+-]*")
MAX_SESSION_ID_CHARS = 256
_TRACE_STRING_KEYS = ("trace_id", "trace_name", "span_name", "generation_name", "parent_span_id")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def validate_submit(body: Any, jobs: JobStore, now: float) -> dict[str, Any]:
    """Return the request's model record, or raise the ApiError OpenRouter would answer."""
    if not isinstance(body, dict):
        raise _bad("Request body must be a JSON object")
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise _bad("model is required")
    model = MODELS_BY_ID.get(model_id)
    if model is None:
        raise _bad(f"Model {model_id} is not a video model. See GET /api/v1/videos/models")
    _check_prompt(body)
    _check_choices(body, model)
    _check_frame_images(body, model)
    _check_input_references(body)
    _check_capabilities(body, model)
    _check_provider(body, model)
    _check_metadata(body)
    if "previous_job_id" in body:
        _check_previous_job(body["previous_job_id"], model_id, jobs, now)
    return model


def _check_prompt(body: dict[str, Any]) -> None:
    if "prompt" in body:
        if not isinstance(body["prompt"], str):
            raise _bad("prompt must be a string")
    elif not body.get("frame_images") and not body.get("input_references"):
        raise _bad("prompt is required unless frame_images or input_references are given")


def _check_choices(body: dict[str, Any], model: dict[str, Any]) -> None:
    for field, capability in _CHOICES.items():
        if field not in body:
            continue
        value = body[field]
        if field == "duration":
            if not _is_int(value) or value < 1:
                raise _bad("duration must be a positive integer")
        elif not isinstance(value, str):
            raise _bad(f"{field} must be a string")
        supported = model[capability]
        if supported is not None and value not in supported:
            listed = ", ".join(str(v) for v in supported) or "none"
            raise _bad(f"Invalid {field} {value} for model {model['id']}. Supported: {listed}")


def _is_https_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() == "https" and bool(parts.hostname)
    except ValueError:  # e.g. a malformed IPv6 host
        return False


def _is_loopback_http_url(url: str) -> bool:
    """``http://`` to this machine: accepted by the emulator only (OpenRouter requires https), so
    a receiver in a test or on a developer's machine needs no certificate."""
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") in ("127.0.0.1", "localhost", "::1")


def _is_data_url(url: str, major: str) -> bool:
    """Whether ``url`` is ``data:<major>/<subtype>[;params];base64,<non-empty valid base64>``."""
    match = _DATA_URL.fullmatch(url)
    if match is None or not match["payload"]:
        return False
    mime = _MIME.fullmatch(match["mime"].strip().lower())
    if mime is None or mime["major"] != major:
        return False
    try:
        b64decode(match["payload"], validate=True)
    except binascii.Error:
        return False
    return True


def _check_media_part(item: Any, where: str, kind: str, major: str) -> None:
    """``item[kind]`` must be ``{"url": <https URL or data:<major>/...;base64,...>}``."""
    part = item.get(kind)
    if not isinstance(part, dict) or "url" not in part:
        raise _bad(f"{where}.{kind} must be an object with a url")
    url = part["url"]
    if not isinstance(url, str) or not (_is_https_url(url) or _is_data_url(url, major)):
        article = "an" if major[0] in "aeiou" else "a"
        raise _bad(f"{where}.{kind}.url must be an https URL or {article} {major} data URL")


def _check_frame_images(body: dict[str, Any], model: dict[str, Any]) -> None:
    if "frame_images" not in body:
        return
    frames = body["frame_images"]
    if not isinstance(frames, list):
        raise _bad("frame_images must be an array")
    supported = model["supported_frame_images"] or []
    seen: set[str] = set()
    for index, frame in enumerate(frames):
        where = f"frame_images[{index}]"
        if not isinstance(frame, dict):
            raise _bad(f"{where} must be an object with type, image_url and frame_type")
        if frame.get("type") != "image_url":
            raise _bad(f"{where}.type must be image_url")
        _check_media_part(frame, where, "image_url", "image")
        frame_type: Any = frame.get("frame_type")
        if frame_type not in supported:
            listed = ", ".join(supported) or "none"
            raise _bad(f"Invalid frame_type {frame_type} for model {model['id']}. Supported: {listed}")
        if frame_type in seen:
            raise _bad(f"{where}.frame_type {frame_type} is given more than once")
        seen.add(frame_type)


def _check_input_references(body: dict[str, Any]) -> None:
    if "input_references" not in body:
        return
    references = body["input_references"]
    if not isinstance(references, list):
        raise _bad("input_references must be an array")
    for index, reference in enumerate(references):
        where = f"input_references[{index}]"
        kind = reference.get("type") if isinstance(reference, dict) else None
        if not isinstance(kind, str) or kind not in _REFERENCE_MEDIA:
            raise _bad(f"{where}.type must be one of {', '.join(_REFERENCE_MEDIA)}")
        _check_media_part(reference, where, kind, _REFERENCE_MEDIA[kind])


def _check_capabilities(body: dict[str, Any], model: dict[str, Any]) -> None:
    if "seed" in body:
        if not _is_int(body["seed"]):
            raise _bad("seed must be an integer")
        if model["seed"] is not True:
            raise _bad(f"Model {model['id']} does not support seed")
    if "generate_audio" in body:
        if not isinstance(body["generate_audio"], bool):
            raise _bad("generate_audio must be a boolean")
        if body["generate_audio"] and model["generate_audio"] is not True:
            raise _bad(f"Model {model['id']} does not support generate_audio")
    for field in _UPSCALING_ONLY:
        if field in body and model[field] is None:
            raise _bad(f"{field} is only supported by video upscaling models, not {model['id']}")
    if "upscale_factor" in body:
        factor, bounds = body["upscale_factor"], model["upscale_factor"]
        low, high = bounds.get("min"), bounds.get("max")
        if not isinstance(factor, int | float) or isinstance(factor, bool) or not factor > 0:
            raise _bad("upscale_factor must be a number > 0")
        if (low is not None and factor < low) or (high is not None and factor > high):
            raise _bad(f"Invalid upscale_factor {factor} for model {model['id']}. Supported: {low} to {high}")
    if "creativity" in body:
        creativity = body["creativity"]
        if not _is_int(creativity) or creativity not in model["creativity"]:
            listed = ", ".join(str(level) for level in model["creativity"])
            raise _bad(f"Invalid creativity {creativity} for model {model['id']}. Supported: {listed}")


def _check_provider(body: dict[str, Any], model: dict[str, Any]) -> None:
    if "provider" not in body:
        return
    provider = body["provider"]
    options = provider.get("options", {}) if isinstance(provider, dict) else None
    if not isinstance(options, dict):
        raise _bad("provider.options must be an object")
    allowed = model["allowed_passthrough_parameters"]
    for slug, option in options.items():
        parameters = option.get("parameters", {}) if isinstance(option, dict) else None
        if not isinstance(parameters, dict):
            raise _bad(f"provider.options.{slug}.parameters must be an object")
        for key in parameters:
            if key not in allowed:
                listed = ", ".join(allowed) or "none"
                raise _bad(
                    f"Parameter {key} is not allowed for model {model['id']} "
                    f"(provider {slug}). Allowed: {listed}"
                )


def _check_metadata(body: dict[str, Any]) -> None:
    """Fields OpenRouter keeps for itself (webhooks, observability), never sent to the provider."""
    if "callback_url" in body:
        url = body["callback_url"]
        if not isinstance(url, str) or not (_is_https_url(url) or _is_loopback_http_url(url)):
            raise _bad("callback_url must be an https URL")
    if "session_id" in body:
        session_id = body["session_id"]
        if not isinstance(session_id, str) or len(session_id) > MAX_SESSION_ID_CHARS:
            raise _bad(f"session_id must be a string of at most {MAX_SESSION_ID_CHARS} characters")
    if "user" in body and not isinstance(body["user"], str):
        raise _bad("user must be a string")
    if "trace" in body:
        trace = body["trace"]
        if not isinstance(trace, dict):
            raise _bad("trace must be an object")
        for key in _TRACE_STRING_KEYS:
            if key in trace and not isinstance(trace[key], str):
                raise _bad(f"trace.{key} must be a string")


def _check_previous_job(previous_id: Any, model_id: str, jobs: JobStore, now: float) -> None:
    if not isinstance(previous_id, str):
        raise _bad("previous_job_id must be a string")
    previous = jobs.get(previous_id)
    if previous is None:
        raise ApiError(404, f"Job {previous_id} not found")
    status = previous.status(now)
    if status != "completed":
        raise ApiError(409, f"Job {previous_id} is not completed (status: {status})")
    if previous.model != model_id:
        raise _bad(f"previous_job_id {previous_id} was generated by {previous.model}, not {model_id}")
