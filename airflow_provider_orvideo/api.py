"""Sans-I/O core of the OpenRouter video API: settings, request specs, response parsing, errors.

Nothing here performs I/O. The hook's sync methods (worker) and async methods (triggerer) are
thin shells that send the :class:`ApiRequest` built here and hand the answer back to the parsers
here, so the two paths cannot drift apart.

Secrets: the API key lives only in :class:`ConnectionSettings` (``repr=False``) and in the
``Authorization`` header built at send time. Signed download URLs (``urls`` in a job object)
are dropped by :func:`parse_job` and never kept anywhere.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_orvideo.exceptions import (
    OpenRouterApiError,
    OpenRouterAuthError,
    OpenRouterBadRequestError,
    OpenRouterConflictError,
    OpenRouterNotFoundError,
    OpenRouterPaymentRequiredError,
    OpenRouterRateLimitError,
    OpenRouterResponseError,
    OpenRouterServerError,
)

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10.0
MAX_REQUEST_BODY_BYTES = 50 * 1024 * 1024
"""OpenRouter rejects a submit body over 50 MiB with 413 (checked against Content-Length)."""


class JobStatus(str, enum.Enum):
    """The six documented job statuses; any other string is treated as "not finished yet"."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything needed to talk to one OpenRouter account, resolved from an Airflow connection."""

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    extra_headers: Mapping[str, str] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        """Request headers, including the bearer token (never log the result)."""
        return {"Authorization": f"Bearer {self.api_key}", **self.extra_headers}


def base_url_from_connection(host: str | None, schema: str | None, port: int | None) -> str:
    """Turn an Airflow connection's host/schema/port into the API base URL.

    Accepts a full URL in ``host`` (``http://127.0.0.1:8089/api/v1``), or a bare host with the
    URL scheme in ``schema`` and an optional ``port`` (the CLI's ``--conn-host/--conn-schema``).
    A URL without a path gets ``/api/v1``; no host at all means production.
    """
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        scheme = schema if schema in ("http", "https") else "https"
        host = f"{scheme}://{host}" + (f":{port}" if port else "")
    parts = urlsplit(host)
    if port and parts.port is None:
        host = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
        parts = urlsplit(host)
    if parts.path in ("", "/"):
        host = host.rstrip("/") + "/api/v1"
    return host.rstrip("/")


def settings_from_connection(
    *,
    host: str | None,
    schema: str | None,
    port: int | None,
    password: str | None,
    extra: Mapping[str, Any],
) -> ConnectionSettings:
    """Build :class:`ConnectionSettings` from connection fields (sync and async paths share this)."""
    if not password:
        raise OpenRouterAuthError(
            "The OpenRouter connection has no API key: set the connection's password (labelled "
            "'API key' in the UI) to an OpenRouter key.",
            http_status=401,
            api_message="no API key configured",
        )
    headers: dict[str, str] = {}
    if extra.get("http_referer"):
        headers["HTTP-Referer"] = str(extra["http_referer"])
    if extra.get("app_title"):
        headers["X-OpenRouter-Title"] = str(extra["app_title"])
    timeout = extra.get("timeout")
    return ConnectionSettings(
        base_url=base_url_from_connection(host, schema, port),
        api_key=password,
        timeout=float(timeout) if timeout not in (None, "") else DEFAULT_TIMEOUT_SECONDS,
        extra_headers=headers,
    )


class Endpoint(str, enum.Enum):
    """What a request is for; decides retry safety and error wording."""

    SUBMIT = "submit"
    POLL = "poll"
    CONTENT = "content"
    MODELS = "models"

    @property
    def idempotent(self) -> bool:
        """Only the submit POST creates something (a paid job); every other call is a GET."""
        return self is not Endpoint.SUBMIT


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request, described without sending it."""

    endpoint: Endpoint
    method: str
    path: str
    params: Mapping[str, int] = field(default_factory=dict)
    json_body: Mapping[str, Any] | None = None
    accept: str = "application/json"

    def url(self, settings: ConnectionSettings) -> str:
        return settings.base_url + self.path

    def headers(self, settings: ConnectionSettings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {**settings.headers(), "Accept": self.accept}
        if self.json_body is not None:
            headers["Content-Type"] = "application/json"
        if extra:
            headers.update(extra)
        return headers

    def encoded_body(self) -> bytes | None:
        if self.json_body is None:
            return None
        return json.dumps(self.json_body, separators=(",", ":")).encode()

    def describe(self) -> str:
        """A loggable description: method and path only (no host, key or query secrets)."""
        return f"{self.method} {self.path}"


def _job_path(job_id: str) -> str:
    if not job_id:
        raise ValueError("job_id must be a non-empty string")
    return "/videos/" + quote(job_id, safe="")


def list_models_request() -> ApiRequest:
    return ApiRequest(Endpoint.MODELS, "GET", "/videos/models")


def submit_request(body: Mapping[str, Any]) -> ApiRequest:
    return ApiRequest(Endpoint.SUBMIT, "POST", "/videos", json_body=body)


def get_job_request(job_id: str) -> ApiRequest:
    return ApiRequest(Endpoint.POLL, "GET", _job_path(job_id))


def content_request(job_id: str, index: int) -> ApiRequest:
    return ApiRequest(
        Endpoint.CONTENT, "GET", _job_path(job_id) + "/content", params={"index": index}, accept="video/mp4"
    )


@dataclass(frozen=True)
class VideoJob:
    """A job object as returned by submit and poll, minus the signed ``urls`` (secrets)."""

    id: str
    status: str
    error: str | None = None
    generation_id: str | None = None
    unsigned_urls: tuple[str, ...] = ()
    cost: float | None = None
    is_byok: bool | None = None

    @property
    def known_status(self) -> JobStatus | None:
        """The status as a :class:`JobStatus`, or ``None`` for a status this release does not know."""
        try:
            return JobStatus(self.status)
        except ValueError:
            return None

    @property
    def output_count(self) -> int:
        return max(1, len(self.unsigned_urls))

    def usage(self) -> dict[str, Any]:
        """The XCom-safe usage figure (cost in USD, BYOK flag)."""
        return {"cost": self.cost, "is_byok": self.is_byok}


@dataclass(frozen=True)
class VideoModel:
    """A model's capabilities from ``GET /videos/models``; ``None`` means "not declared"."""

    id: str
    name: str
    supported_resolutions: tuple[str, ...] | None
    supported_aspect_ratios: tuple[str, ...] | None
    supported_sizes: tuple[str, ...] | None
    supported_durations: tuple[int, ...] | None
    supported_frame_images: tuple[str, ...] | None
    generate_audio: bool | None
    seed: bool | None
    allowed_passthrough_parameters: tuple[str, ...]
    pricing_skus: Mapping[str, str] | None


def decode_json(body: bytes, what: str) -> Any:
    """Decode a 2xx JSON body, or raise :class:`OpenRouterResponseError` naming the call."""
    try:
        return json.loads(body)
    except ValueError:
        raise OpenRouterResponseError(
            f"OpenRouter answered {what} with a body that is not JSON ({len(body)} bytes)."
        ) from None


def _str_tuple(record: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = record.get(key)
    return None if value is None else tuple(str(v) for v in value)


def parse_job(payload: Any) -> VideoJob:
    """Parse a job object; ``urls`` and ``expires_at`` (signed, secret) are deliberately dropped."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("id"), str) or not payload["id"]:
        raise OpenRouterResponseError("OpenRouter returned a job object without an 'id'.")
    status = payload.get("status")
    if not isinstance(status, str):
        raise OpenRouterResponseError(f"OpenRouter returned job {payload['id']} without a 'status'.")
    usage = payload.get("usage") if isinstance(payload.get("usage"), Mapping) else {}
    cost = usage.get("cost") if usage else None
    error = payload.get("error")
    return VideoJob(
        id=payload["id"],
        status=status,
        error=error if isinstance(error, str) else None,
        generation_id=payload.get("generation_id") if isinstance(payload.get("generation_id"), str) else None,
        unsigned_urls=tuple(str(u) for u in payload.get("unsigned_urls") or ()),
        cost=float(cost) if isinstance(cost, (int, float)) else None,
        is_byok=usage.get("is_byok") if usage and isinstance(usage.get("is_byok"), bool) else None,
    )


def parse_models(payload: Any) -> dict[str, VideoModel]:
    """Parse ``{"data": [VideoModel, ...]}`` into a dict keyed by model id."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("data"), Sequence):
        raise OpenRouterResponseError("OpenRouter's /videos/models answer has no 'data' list.")
    models: dict[str, VideoModel] = {}
    for record in payload["data"]:
        if not isinstance(record, Mapping) or not isinstance(record.get("id"), str):
            raise OpenRouterResponseError("OpenRouter's /videos/models answer holds a model without an 'id'.")
        durations = record.get("supported_durations")
        skus = record.get("pricing_skus")
        models[record["id"]] = VideoModel(
            id=record["id"],
            name=str(record.get("name") or record["id"]),
            supported_resolutions=_str_tuple(record, "supported_resolutions"),
            supported_aspect_ratios=_str_tuple(record, "supported_aspect_ratios"),
            supported_sizes=_str_tuple(record, "supported_sizes"),
            supported_durations=None if durations is None else tuple(int(d) for d in durations),
            supported_frame_images=_str_tuple(record, "supported_frame_images"),
            generate_audio=record.get("generate_audio"),
            seed=record.get("seed"),
            allowed_passthrough_parameters=_str_tuple(record, "allowed_passthrough_parameters") or (),
            pricing_skus=None if skus is None else {str(k): str(v) for k, v in skus.items()},
        )
    return models


_ERROR_CLASSES: dict[int, type[OpenRouterApiError]] = {
    400: OpenRouterBadRequestError,
    401: OpenRouterAuthError,
    402: OpenRouterPaymentRequiredError,
    403: OpenRouterAuthError,
    404: OpenRouterNotFoundError,
    409: OpenRouterConflictError,
    410: OpenRouterNotFoundError,
    413: OpenRouterBadRequestError,
    429: OpenRouterRateLimitError,
}

_ENDPOINT_WORDS = {
    Endpoint.SUBMIT: "the submit request (POST /videos)",
    Endpoint.POLL: "the job status request",
    Endpoint.CONTENT: "the video download",
    Endpoint.MODELS: "the model list request (GET /videos/models)",
}


def api_error(endpoint: Endpoint, status_code: int, body: bytes) -> OpenRouterApiError:
    """Map an HTTP error answer to a typed exception carrying OpenRouter's message verbatim."""
    api_message = ""
    error_type: str | None = None
    try:
        payload = json.loads(body)
        error = payload.get("error") if isinstance(payload, Mapping) else None
        if isinstance(error, Mapping):
            api_message = str(error.get("message") or "")
            metadata = error.get("metadata")
            if isinstance(metadata, Mapping) and metadata.get("error_type"):
                error_type = str(metadata["error_type"])
    except ValueError:
        pass
    if not api_message:
        api_message = f"(no OpenRouter error message; {len(body)}-byte non-JSON body)"
    cls = _ERROR_CLASSES.get(status_code, OpenRouterServerError if status_code >= 500 else OpenRouterApiError)
    return cls(
        f"OpenRouter rejected {_ENDPOINT_WORDS[endpoint]} with HTTP {status_code}: {api_message}",
        http_status=status_code,
        api_message=api_message,
        error_type=error_type,
    )
