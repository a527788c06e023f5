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
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from airflow_provider_orvideo._internal.budgets import Budget, connection_budget
from airflow_provider_orvideo._internal.callback_urls import check_callback_url
from airflow_provider_orvideo.exceptions import (
    InvalidConnectionError,
    OpenRouterApiError,
    OpenRouterAuthError,
    OpenRouterBadRequestError,
    OpenRouterBudgetExceededError,
    OpenRouterConflictError,
    OpenRouterCreditsExhaustedError,
    OpenRouterInFlightBudgetError,
    OpenRouterNotFoundError,
    OpenRouterRateLimitError,
    OpenRouterResponseError,
    OpenRouterServerError,
)

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10.0
MAX_TIMEOUT_SECONDS = 86_400.0
"""Upper bound of the connection's ``timeout`` extra (a day): larger values overflow the clocks
of the HTTP libraries (``1e12`` raised ``OverflowError`` from httpcore)."""
MAX_REQUEST_BODY_BYTES = 50 * 1024 * 1024
"""OpenRouter rejects a submit body over 50 MiB with 413 (checked against Content-Length)."""


class JobStatus(str, enum.Enum):
    """The six documented job statuses; any other string is treated as "not finished yet".

    Which of them end a job is said once, here (:data:`TERMINAL_JOB_STATUSES`,
    :data:`ENDED_WITHOUT_VIDEO`): the poll decision, a retry's re-attach decision and the
    webhook event types all read these sets, so they cannot disagree about what "ended" means.
    """

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """OpenRouter will not change this status again (completed, or ended without a video)."""
        return self in TERMINAL_JOB_STATUSES

    @property
    def ended_without_video(self) -> bool:
        """OpenRouter's verdict that this job will never have a video (failed, cancelled, expired):
        waiting longer cannot help, only a new (paid) submission can."""
        return self in ENDED_WITHOUT_VIDEO


ENDED_WITHOUT_VIDEO: frozenset[JobStatus] = frozenset(
    {JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
)
"""The terminal statuses of a job that brought no video."""
TERMINAL_JOB_STATUSES: frozenset[JobStatus] = ENDED_WITHOUT_VIDEO | {JobStatus.COMPLETED}
"""The statuses after which OpenRouter never changes a job again; every other one is "not yet"."""


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything needed to talk to one OpenRouter account, resolved from an Airflow connection."""

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    callback_url: str | None = None
    """Where OpenRouter should POST each job's webhook (the connection's ``callback_url`` extra)."""
    budget: Budget | None = None
    """The spend budget of every job paid through this connection (extras ``budget_usd`` and
    ``budget_window``; see ``_internal/budgets.py``)."""

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


API_KEY_FIELD = "password (labelled 'API key' in the UI)"
"""How messages name the connection field that holds the API key."""

_EXTRA_HEADERS = {"http_referer": "HTTP-Referer", "app_title": "X-OpenRouter-Title"}
"""Connection extras sent as request headers: extra field -> header name."""

_CHARACTER_NAMES = {
    "\n": "a line break (LF)",
    "\r": "a carriage return (CR)",
    "\t": "a tab",
    " ": "a space",
    "\x00": "a NUL character",
    "\x7f": "a DEL control character",
}


def _header_value_problem(value: str, *, spaces_allowed: bool) -> str | None:
    """What keeps ``value`` out of an HTTP header, without quoting any of it; ``None`` if nothing.

    Allowed: printable ASCII (0x21-0x7E), plus inner spaces where ``spaces_allowed``. This is
    what httpx (ASCII only), h11, aiohttp and ``http.client`` all accept.
    """
    for position, char in enumerate(value, start=1):
        if "!" <= char <= "~" or (spaces_allowed and char == " "):
            continue
        if char > "\x7f":
            what = "a non-ASCII character"
        else:
            what = _CHARACTER_NAMES.get(char, f"a control character (U+{ord(char):04X})")
        return f"contains {what} at position {position} of {len(value)}"
    return None


def _api_key_error(conn_id: str, problem: str, *, stripped: bool = True) -> InvalidConnectionError:
    return InvalidConnectionError(
        f"The OpenRouter connection {conn_id!r} cannot be used: its {API_KEY_FIELD} {problem}"
        + (" (after removing surrounding whitespace)" if stripped else "")
        + ". An OpenRouter API key is printable ASCII without "
        "spaces, so this value cannot be sent in the Authorization header; re-enter the key. "
        "The key is not shown here. No request was sent."
    )


def _extra_header_error(conn_id: str, field_name: str, problem: str) -> InvalidConnectionError:
    return InvalidConnectionError(
        f"The OpenRouter connection {conn_id!r} cannot be used: its extra field {field_name!r} (sent as "
        f"the {_EXTRA_HEADERS.get(field_name, field_name)} header) {problem}. Header values must be "
        "printable ASCII (inner spaces allowed): remove line breaks, control and non-ASCII "
        "characters. No request was sent."
    )


def connection_header_error(settings: ConnectionSettings, *, conn_id: str) -> InvalidConnectionError | None:
    """The error for the first request header built from the connection that cannot be sent, if any.

    :func:`settings_from_connection` refuses such values up front; the hook calls this when an HTTP
    library refuses a request anyway (settings built another way), to name the field at fault.
    """
    problem = _header_value_problem(settings.api_key, spaces_allowed=False)
    if problem is not None:
        return _api_key_error(conn_id, problem, stripped=False)
    fields = {header: name for name, header in _EXTRA_HEADERS.items()}
    for header, value in settings.extra_headers.items():
        problem = _header_value_problem(value, spaces_allowed=True)
        if problem is not None:
            return _extra_header_error(conn_id, fields.get(header, header), problem)
    return None


def _timeout_from_extra(conn_id: str, value: Any) -> float:
    if value is None or value == "":
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_TIMEOUT_SECONDS:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise InvalidConnectionError(
            f"The OpenRouter connection {conn_id!r} cannot be used: its extra field 'timeout' is {shown}, "
            f"not a number of seconds greater than 0 and at most {MAX_TIMEOUT_SECONDS:,.0f} (e.g. 30). "
            "No request was sent."
        )
    return seconds


def settings_from_connection(
    *,
    conn_id: str,
    host: str | None,
    schema: str | None,
    port: int | None,
    password: str | None,
    extra: Mapping[str, Any],
) -> ConnectionSettings:
    """Build :class:`ConnectionSettings` from connection fields (sync and async paths share this).

    Surrounding whitespace is stripped from the key and the header extras (a key read from a
    file or pasted often ends with a newline). A value that still cannot be sent in a header, or
    a ``timeout`` extra that is not a positive number, is an :class:`InvalidConnectionError`
    naming ``conn_id`` and the field, raised before any request; a secret's value is never shown.
    """
    api_key = (password or "").strip()
    if not api_key:
        raise InvalidConnectionError(
            f"The OpenRouter connection has no API key: the {API_KEY_FIELD} of connection {conn_id!r} is "
            "empty. Set it to an OpenRouter key. No request was sent."
        )
    problem = _header_value_problem(api_key, spaces_allowed=False)
    if problem is not None:
        raise _api_key_error(conn_id, problem)
    if not isinstance(extra, Mapping):
        raise InvalidConnectionError(
            f"The OpenRouter connection {conn_id!r} cannot be used: its extra is a "
            f'{type(extra).__name__}, not a JSON object such as {{"timeout": 60}}. No request was sent.'
        )
    headers: dict[str, str] = {}
    for field_name, header in _EXTRA_HEADERS.items():
        value = str(extra.get(field_name) or "").strip()
        if not value:
            continue
        problem = _header_value_problem(value, spaces_allowed=True)
        if problem is not None:
            raise _extra_header_error(conn_id, field_name, problem)
        headers[header] = value
    try:
        base_url = base_url_from_connection(host, schema, port)
        urlsplit(base_url).port  # noqa: B018 - raises on a port out of range
    except ValueError as error:  # an unclosed IPv6 bracket, a port out of range
        raise InvalidConnectionError(
            f"The OpenRouter connection {conn_id!r} cannot be used: its host and port do not make a URL "
            f"({error}). Give the base URL, e.g. https://openrouter.ai/api/v1. No request was sent."
        ) from None
    scheme = urlsplit(base_url).scheme
    if scheme not in ("http", "https"):
        raise InvalidConnectionError(
            f"The OpenRouter connection {conn_id!r} cannot be used: its host field gives a base URL with "
            f"the scheme {scheme[:20]!r}; only http and https are supported. No request was sent."
        )
    return ConnectionSettings(
        base_url=base_url,
        api_key=api_key,
        timeout=_timeout_from_extra(conn_id, extra.get("timeout")),
        extra_headers=headers,
        callback_url=_callback_url_from_extra(conn_id, extra.get("callback_url")),
        budget=connection_budget(conn_id, extra),
    )


def _callback_url_from_extra(conn_id: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return check_callback_url(value if isinstance(value, str) else repr(value))
    except ValueError as error:
        raise InvalidConnectionError(
            f"The OpenRouter connection {conn_id!r} cannot be used: its extra field 'callback_url' is "
            f"wrong: {error}. No request was sent."
        ) from None


class Endpoint(str, enum.Enum):
    """What a request is for; decides retry safety and error wording."""

    SUBMIT = "submit"
    POLL = "poll"
    CONTENT = "content"
    MODELS = "models"
    KEY = "key"
    GENERATION = "generation"

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
    params: Mapping[str, int | str] = field(default_factory=dict)
    json_body: Mapping[str, Any] | None = None
    accept: str = "application/json"
    job_id: str | None = None
    """The job a poll or a download is about (for messages)."""

    def url(self, settings: ConnectionSettings) -> str:
        """The full URL, query string included: the one way every HTTP adapter gets it."""
        query = f"?{urlencode(dict(self.params))}" if self.params else ""
        return settings.base_url + self.path + query

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


def key_request() -> ApiRequest:
    """``GET /key``: the calling key's limits and budgets (an ordinary inference key may read it)."""
    return ApiRequest(Endpoint.KEY, "GET", "/key")


def generation_request(generation_id: str) -> ApiRequest:
    """``GET /generation?id=``: what OpenRouter recorded for one generation, its cost above all
    (an ordinary inference key may read it; a generation is stored once its request finished)."""
    if not generation_id:
        raise ValueError("generation_id must be a non-empty string")
    return ApiRequest(Endpoint.GENERATION, "GET", "/generation", params={"id": generation_id})


def submit_request(body: Mapping[str, Any]) -> ApiRequest:
    return ApiRequest(Endpoint.SUBMIT, "POST", "/videos", json_body=body)


def get_job_request(job_id: str) -> ApiRequest:
    return ApiRequest(Endpoint.POLL, "GET", _job_path(job_id), job_id=job_id)


def content_request(job_id: str, index: int) -> ApiRequest:
    return ApiRequest(
        Endpoint.CONTENT,
        "GET",
        _job_path(job_id) + "/content",
        params={"index": index},
        accept="video/mp4",
        job_id=job_id,
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


@dataclass(frozen=True)
class KeyBudget:
    """One budget layer of a key, as ``GET /key`` reports it (``budgets[]``, ``effective_budget``)."""

    scope: str
    limit_usd: float | None
    spend_usd: float | None
    remaining_usd: float | None
    """Zero or less: this layer refuses paid requests (403) until it resets."""
    reset_interval: str | None
    resets_at: str | None


@dataclass(frozen=True)
class KeyStatus:
    """What ``GET /key`` says about the calling key: the layer that blocks first
    (``effective_budget``, None when no layer limits it), every layer, and when the key expires."""

    effective_budget: KeyBudget | None
    budgets: tuple[KeyBudget, ...] = ()
    expires_at: datetime | None = None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _key_budget(value: Any) -> KeyBudget | None:
    if not isinstance(value, Mapping):
        return None
    text = {
        k: value.get(k) if isinstance(value.get(k), str) else None
        for k in ("scope", "reset_interval", "resets_at")
    }
    return KeyBudget(
        scope=text["scope"] or "unknown",
        limit_usd=_finite(value.get("limit_usd")),
        spend_usd=_finite(value.get("spend_usd")),
        remaining_usd=_finite(value.get("remaining_usd")),
        reset_interval=text["reset_interval"],
        resets_at=text["resets_at"],
    )


def _instant(value: Any) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset; a naive one is UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def parse_key(payload: Any) -> KeyStatus:
    """Parse ``GET /key``'s ``{"data": {...}}`` (SDK 1.3.84's shape); what is missing or of another
    shape reads as not limiting."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, Mapping):
        raise OpenRouterResponseError("OpenRouter's GET /key answer has no 'data' object.")
    budgets = data.get("budgets")
    return KeyStatus(
        effective_budget=_key_budget(data.get("effective_budget")),
        budgets=tuple(b for b in map(_key_budget, budgets if isinstance(budgets, list) else []) if b),
        expires_at=_instant(data.get("expires_at")),
    )


@dataclass(frozen=True)
class GenerationRecord:
    """What ``GET /generation`` says about one generation: its id, what it cost in USD
    (``total_cost``; None when the answer does not say), the model and when it was created."""

    id: str
    total_cost: float | None
    model: str | None
    created_at: datetime | None


def parse_generation(payload: Any) -> GenerationRecord:
    """Parse ``GET /generation``'s ``{"data": {...}}``. A cost that is not a finite number of
    zero or more reads as unknown (``total_cost``, else ``usage``, OpenRouter's same figure)."""
    data = payload.get("data") if isinstance(payload, Mapping) else None
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) or not data["id"]:
        raise OpenRouterResponseError(
            "OpenRouter's GET /generation answer has no 'data' object with an 'id'."
        )
    costs = (_finite(data.get(key)) for key in ("total_cost", "usage"))
    cost = next((usd for usd in costs if usd is not None and usd >= 0), None)
    model = data.get("model")
    return GenerationRecord(
        id=data["id"],
        total_cost=cost,
        model=model if isinstance(model, str) and model else None,
        created_at=_instant(data.get("created_at")),
    )


_ERROR_CLASSES: dict[int, type[OpenRouterApiError]] = {
    400: OpenRouterBadRequestError,
    401: OpenRouterAuthError,
    402: OpenRouterCreditsExhaustedError,
    403: OpenRouterAuthError,
    404: OpenRouterNotFoundError,
    409: OpenRouterConflictError,
    410: OpenRouterNotFoundError,
    413: OpenRouterBadRequestError,
    429: OpenRouterRateLimitError,
}
"""By status, when ``error.metadata.limit_source`` does not say more (see :func:`api_error`)."""

IN_FLIGHT_LIMIT_SOURCE = "openrouter_in_flight_budget"
IN_FLIGHT_ERROR_TYPE = "in_flight_budget_exhausted"
BUDGET_LAYERS = {
    "openrouter_guardrail_budget": "guardrail budget",
    "openrouter_workspace_budget": "workspace budget",
    "openrouter_key_limit": "API key's credit limit",
}
"""``error.metadata.limit_source`` values that name a spent budget layer, and how messages name it."""

_ENDPOINT_WORDS = {
    Endpoint.SUBMIT: "the submit request (POST /videos)",
    Endpoint.POLL: "the job status request",
    Endpoint.CONTENT: "the video download",
    Endpoint.MODELS: "the model list request (GET /videos/models)",
    Endpoint.KEY: "the key status request (GET /key)",
    Endpoint.GENERATION: "the generation record request (GET /generation)",
}


@dataclass(frozen=True)
class ErrorAnswer:
    """OpenRouter's error envelope, ``{"error": {"code", "message", "metadata"}}``, read defensively
    (any body, JSON or not, gives one)."""

    message: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: bytes) -> ErrorAnswer:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        error = payload.get("error") if isinstance(payload, Mapping) else None
        if not isinstance(error, Mapping):
            return cls(f"(no OpenRouter error message; {len(body)}-byte non-JSON body)")
        metadata = error.get("metadata")
        message = (
            str(error.get("message") or "")
            or f"(no OpenRouter error message; {len(body)}-byte non-JSON body)"
        )
        return cls(message, metadata if isinstance(metadata, Mapping) else {})

    def metadata_text(self, key: str) -> str | None:
        value = self.metadata.get(key)
        return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None

    def metadata_usd(self, key: str) -> float | None:
        value = self.metadata.get(key)
        try:
            usd = (
                float(value)
                if isinstance(value, (str, int, float)) and not isinstance(value, bool)
                else math.nan
            )
        except ValueError:
            usd = math.nan
        return usd if math.isfinite(usd) else None

    @property
    def error_type(self) -> str | None:
        return self.metadata_text("error_type")

    @property
    def limit_source(self) -> str | None:
        return self.metadata_text("limit_source")

    def in_flight_refusal(self, status_code: int) -> bool:
        """A 402 of the in-flight budget: transient, nothing created, ``Retry-After`` given."""
        return status_code == 402 and (
            self.limit_source == IN_FLIGHT_LIMIT_SOURCE or self.error_type == IN_FLIGHT_ERROR_TYPE
        )

    def budget_layer(self) -> str | None:
        """How messages name the spent budget layer this answer is about, if it is about one."""
        return BUDGET_LAYERS.get(self.limit_source or "")

    def budget_words(self) -> str:
        """``the guardrail budget is spent (scope member: $10.02 spent of $10.00; resets at ...)``."""
        spend, limit = self.metadata_usd("spend_usd"), self.metadata_usd("limit_usd")
        figures = [f"scope {self.metadata_text('scope')}"] if self.metadata_text("scope") else []
        if spend is not None or limit is not None:
            shown = ["unknown" if usd is None else f"${usd:,.2f}" for usd in (spend, limit)]
            figures.append(f"{shown[0]} spent of {shown[1]}")
        resets = self.metadata_text("resets_at")
        figures.append(f"resets at {resets}" if resets else "no reset time given")
        return f"the {self.budget_layer()} is spent ({'; '.join(figures)})"


def api_error(endpoint: Endpoint, status_code: int, body: bytes) -> OpenRouterApiError:
    """Map an HTTP error answer to a typed exception carrying OpenRouter's message verbatim.

    ``error.metadata.limit_source`` decides before the status (OpenRouter answers a spent budget
    with 403 or 402): a spent budget layer is an :class:`OpenRouterBudgetExceededError`, a full
    in-flight budget an :class:`OpenRouterInFlightBudgetError`; then the status does."""
    answer = ErrorAnswer.parse(body)
    head = f"OpenRouter rejected {_ENDPOINT_WORDS[endpoint]} with HTTP {status_code}"
    common: dict[str, Any] = {
        "http_status": status_code,
        "api_message": answer.message,
        "error_type": answer.error_type,
    }
    if answer.budget_layer() is not None:
        return OpenRouterBudgetExceededError(
            f"{head}: {answer.budget_words()}: {answer.message.rstrip('.')}. Nothing was created or billed. "
            "Every paid request through this key is refused until the budget resets or an admin raises "
            "it, so the task is not retried: clear it once the budget allows.",
            limit_source=answer.limit_source,
            scope=answer.metadata_text("scope"),
            limit_usd=answer.metadata_usd("limit_usd"),
            spend_usd=answer.metadata_usd("spend_usd"),
            resets_at=answer.metadata_text("resets_at"),
            **common,
        )
    if answer.in_flight_refusal(status_code):
        return OpenRouterInFlightBudgetError(
            f"{head}: the in-flight budget is full (the estimated cost of the account's running "
            f"requests): {answer.message.rstrip('.')}. Nothing was created; it was sent again after "
            "OpenRouter's Retry-After as many times as the retry policy allows. A retry of the task "
            "submits again without paying twice.",
            **common,
        )
    cls = _ERROR_CLASSES.get(status_code, OpenRouterServerError if status_code >= 500 else OpenRouterApiError)
    return cls(f"{head}: {answer.message}", **common)
