"""Verify and parse OpenRouter's video webhooks before trusting them.

OpenRouter POSTs a JSON event to the job's ``callback_url`` (or the workspace default) once a
video job reaches a terminal state. Anyone can POST to a public URL, so a receiver (an Airflow
API-server plugin, or any web app that then triggers a DAG run or sets an asset event) must
check the signature before acting on the body. Everything here is sans-I/O: the receiver hands
over the raw body bytes, the request headers and the secret; the clock can be injected.

Signature algorithm (header ``X-OpenRouter-Signature: t=<unix seconds>,v1=<hex>``)::

    1. split the header on ",", strip each part, and keep the "t=" and "v1=" parts (any other
       part is ignored; there may be several v1 values, e.g. during a secret rotation);
    2. t must be one decimal integer, every v1 must be 64 hex digits, else reject as malformed;
    3. expected = hex(HMAC_SHA256(key=secret.encode("utf-8"), msg=f"{t},".encode() + raw_body))
       over the EXACT raw bytes received (never a re-serialised JSON document);
    4. accept only if some v1 equals expected (``hmac.compare_digest``, constant time);
    5. then reject when abs(now - t) > tolerance (default 300 s): both stale and future stamps.

The signature is checked before the timestamp on purpose: a timestamp error then always means
a genuine delivery (so the likely cause is clock skew or a late redelivery), never a forgery.

Duplicates: OpenRouter may deliver the same event more than once; its
``X-OpenRouter-Idempotency-Key`` header is ``<job_id>-<status>``. That header is *not* covered
by the signature, so deduplicate on :attr:`VideoWebhookEvent.idempotency_key`, which is built
from the signed body and has the same value; it also stops a captured delivery from being
replayed inside the tolerance window. Answer 2xx to a duplicate without processing it again, so
OpenRouter stops redelivering it. See :class:`WebhookDeduplicator`.

A receiver's answers: 2xx (the cookbook uses 204) once the event is handled or recognised as a
duplicate; 401 for any :class:`WebhookVerificationError` other than
:class:`InvalidWebhookPayloadError`; 400 for that one (signed, but not an event we understand).
The secret and the expected signature never appear in any message raised here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from airflow_provider_orvideo._internal.api import TERMINAL_JOB_STATUSES, JobStatus
from airflow_provider_orvideo._internal.callback_urls import CALLBACK_QUERY_FIELDS, check_callback_url
from airflow_provider_orvideo.exceptions import (
    FutureWebhookTimestampError,
    InvalidCallbackTargetError,
    InvalidWebhookPayloadError,
    MalformedWebhookSignatureError,
    MissingWebhookSignatureError,
    StaleWebhookTimestampError,
    WebhookSignatureMismatchError,
)

__all__ = [
    "CallbackTarget",
    "VideoWebhookEvent",
    "WebhookDeduplicator",
    "build_signature_header",
    "check_callback_url",
    "verify_and_parse",
]

SIGNATURE_HEADER = "X-OpenRouter-Signature"
IDEMPOTENCY_KEY_HEADER = "X-OpenRouter-Idempotency-Key"
DEFAULT_TOLERANCE_SECONDS = 300.0
"""OpenRouter's cookbook rejects a signature whose ``abs(age)`` exceeds 300 s."""

EVENT_TYPES: Mapping[str, JobStatus] = {
    f"video.generation.{status.value}": status for status in sorted(TERMINAL_JOB_STATUSES)
}
"""Every documented event type and the ``data.status`` it must carry: OpenRouter sends one per
terminal status, named after it (``video.generation.completed``, ``...failed``, ``...cancelled``,
``...expired``)."""

_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_EXPECTED_FORMAT = "expected 't=<unix seconds>,v1=<64 hex digits>'"


def _hmac_hex(raw_body: bytes, secret: str, timestamp: int) -> str:
    message = f"{timestamp},".encode() + bytes(raw_body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _check_secret(secret: str) -> None:
    # An empty key still yields an HMAC; failing loudly beats "verifying" with no secret at all.
    if not isinstance(secret, str) or not secret:
        raise ValueError("The webhook signing secret is empty; configure the workspace's signing secret.")


def _check_body(raw_body: bytes) -> None:
    if not isinstance(raw_body, (bytes, bytearray)):
        raise TypeError(
            f"raw_body must be the exact request body as bytes, not {type(raw_body).__name__}: "
            "the signature covers the bytes as sent, and decoding or re-serialising changes them."
        )


def build_signature_header(raw_body: bytes, secret: str, timestamp: int) -> str:
    """The ``X-OpenRouter-Signature`` value OpenRouter would send (for emulators and tests)."""
    _check_secret(secret)
    _check_body(raw_body)
    return f"t={int(timestamp)},v1={_hmac_hex(raw_body, secret, int(timestamp))}"


def _parse_signature_header(header: str) -> tuple[int, tuple[str, ...]]:
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        key = key.strip()
        if key == "t":
            timestamps.append(value.strip())
        elif key == "v1":
            signatures.append(value.strip())
    if not timestamps:
        raise MalformedWebhookSignatureError(
            f"The webhook's {SIGNATURE_HEADER} header has no 't=' timestamp ({_EXPECTED_FORMAT}); "
            "rejected without checking the signature."
        )
    if len(timestamps) > 1:
        raise MalformedWebhookSignatureError(
            f"The webhook's {SIGNATURE_HEADER} header has {len(timestamps)} 't=' timestamps; exactly "
            f"one is allowed ({_EXPECTED_FORMAT}). Rejected without checking the signature."
        )
    if not _TIMESTAMP.fullmatch(timestamps[0]):
        raise MalformedWebhookSignatureError(
            f"The webhook's {SIGNATURE_HEADER} timestamp is not a whole number of Unix seconds "
            f"({_EXPECTED_FORMAT}); rejected without checking the signature."
        )
    if not signatures:
        raise MalformedWebhookSignatureError(
            f"The webhook's {SIGNATURE_HEADER} header has no 'v1=' signature ({_EXPECTED_FORMAT}); rejected."
        )
    bad = sum(1 for s in signatures if not _HEX_SHA256.fullmatch(s))
    if bad:
        raise MalformedWebhookSignatureError(
            f"{bad} of the {len(signatures)} 'v1=' values in the webhook's {SIGNATURE_HEADER} header "
            f"{'is' if bad == 1 else 'are'} not 64 hex digits (a SHA-256 HMAC); rejected."
        )
    return int(timestamps[0]), tuple(s.lower() for s in signatures)


def verify_signature(
    raw_body: bytes,
    signature_header: str | None,
    secret: str,
    *,
    now: float | None = None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    future_tolerance_seconds: float | None = None,
) -> int:
    """Check an ``X-OpenRouter-Signature`` value against the raw body; return its timestamp.

    ``now`` (Unix seconds) defaults to ``time.time()``; pass it to test or to share one clock.
    ``future_tolerance_seconds`` (default: ``tolerance_seconds``, as OpenRouter's cookbook has it)
    bounds how far ahead of ``now`` a timestamp may be: a receiver can allow only clock skew.
    Raises a :class:`~airflow_provider_orvideo.exceptions.WebhookVerificationError` subclass
    per failure; see the module docstring for the algorithm.
    """
    _check_secret(secret)
    _check_body(raw_body)
    ahead = tolerance_seconds if future_tolerance_seconds is None else future_tolerance_seconds
    if not tolerance_seconds >= 0 or not ahead >= 0:
        raise ValueError(
            f"tolerance_seconds and future_tolerance_seconds must be >= 0, got {tolerance_seconds!r} "
            f"and {future_tolerance_seconds!r}."
        )
    if signature_header is None or not signature_header.strip():
        raise MissingWebhookSignatureError(
            f"The webhook has no {SIGNATURE_HEADER} header, so it cannot be trusted. OpenRouter "
            "sends one only when a signing secret is set in the workspace settings: set it there "
            "to the secret this receiver uses."
        )
    timestamp, candidates = _parse_signature_header(signature_header)
    expected = _hmac_hex(raw_body, secret, timestamp)
    matched = False
    for candidate in candidates:  # no early exit: the time taken does not depend on which matched
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise WebhookSignatureMismatchError(
            f"The webhook's signature (t={timestamp}, {len(candidates)} v1 value(s) checked) does not "
            f"match its {len(raw_body)}-byte body. Either this receiver's secret differs from the "
            "signing secret in OpenRouter's workspace settings, or the body was changed on the way "
            "(a proxy or framework that re-encodes JSON; verify the raw bytes). Rejected."
        )
    current = time.time() if now is None else now
    if not math.isfinite(current):  # NaN would pass both window comparisons below
        raise ValueError(f"now must be a finite number of Unix seconds, got {current!r}.")
    skew = current - timestamp
    if skew > tolerance_seconds:
        raise StaleWebhookTimestampError(
            f"The webhook's signature is valid but was made {skew:.0f} s ago (t={timestamp}), more "
            f"than the {tolerance_seconds:g} s allowed: a late redelivery, a replay, or this host's "
            "clock is fast. Rejected; check the host's clock (NTP) if this repeats.",
            timestamp=timestamp,
            skew_seconds=skew,
        )
    if -skew > ahead:
        raise FutureWebhookTimestampError(
            f"The webhook's signature is valid but dated {-skew:.0f} s ahead of this host's clock "
            f"(t={timestamp}), more than the {ahead:g} s allowed: this host's clock is "
            "probably slow. Rejected; check the host's clock (NTP).",
            timestamp=timestamp,
            skew_seconds=skew,
        )
    return timestamp


@dataclass(frozen=True)
class VideoWebhookEvent:
    """A verified terminal-state event, minus any signed ``urls`` (secrets, never kept)."""

    type: str
    created_at: str
    job_id: str
    status: str
    generation_id: str | None = None
    model: str | None = None
    unsigned_urls: tuple[str, ...] = ()
    cost: float | None = None
    is_byok: bool | None = None
    error: str | None = None

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.status)

    @property
    def succeeded(self) -> bool:
        return self.job_status is JobStatus.COMPLETED

    @property
    def idempotency_key(self) -> str:
        """``<job_id>-<status>``, as in the (unsigned) idempotency header, but from the signed body."""
        return f"{self.job_id}-{self.status}"


def _invalid(problem: str) -> InvalidWebhookPayloadError:
    return InvalidWebhookPayloadError(
        f"The webhook body {problem}; it is not a documented video.generation.* event. Rejected."
    )


def _optional(record: Mapping[str, Any], key: str, kind: type[Any], what: str) -> Any:
    value = record.get(key)
    if value is not None and not isinstance(value, kind):
        raise _invalid(f"has a '{what}' of type {type(value).__name__}")
    return value


def parse_event(raw_body: bytes) -> VideoWebhookEvent:
    """Parse a webhook body into a :class:`VideoWebhookEvent`; call only after verification."""
    _check_body(raw_body)
    try:
        payload = json.loads(raw_body)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _invalid(f"is not JSON ({len(raw_body)} bytes)") from None
    if not isinstance(payload, Mapping):
        raise _invalid(f"is a JSON {type(payload).__name__}, not an object")
    event_type = payload.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        shown = repr(event_type[:80]) if isinstance(event_type, str) else "missing or not a string"
        raise _invalid(f"has an unknown 'type' ({shown})")
    created_at = payload.get("created_at")
    if not isinstance(created_at, str) or not created_at:
        raise _invalid("has no 'created_at' string")
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise _invalid("has no 'data' object")
    job_id = data.get("id")
    if not isinstance(job_id, str) or not job_id:
        raise _invalid("has no 'data.id' (the job id)")
    status = data.get("status")
    expected = EVENT_TYPES[event_type].value
    if status != expected:
        shown = repr(status[:40]) if isinstance(status, str) else "missing or not a string"
        raise _invalid(f"of type {event_type} for job {job_id} has data.status {shown}, not {expected!r}")
    urls = _optional(data, "unsigned_urls", list, "data.unsigned_urls") or []
    if not all(isinstance(u, str) for u in urls):
        raise _invalid("has a non-string entry in 'data.unsigned_urls'")
    usage = _optional(data, "usage", Mapping, "data.usage") or {}
    cost = usage.get("cost")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float))):
        raise _invalid(f"has a 'data.usage.cost' of type {type(cost).__name__}")
    return VideoWebhookEvent(
        type=event_type,
        created_at=created_at,
        job_id=job_id,
        status=status,
        generation_id=_optional(data, "generation_id", str, "data.generation_id"),
        model=_optional(data, "model", str, "data.model"),
        unsigned_urls=tuple(urls),
        cost=None if cost is None else float(cost),
        is_byok=_optional(usage, "is_byok", bool, "data.usage.is_byok"),
        error=_optional(data, "error", str, "data.error"),
    )


def _header_values(headers: Mapping[str, str], name: str) -> set[str]:
    """Every distinct value of one header, whatever the case of its name in ``headers``."""
    wanted = name.lower()
    return {value for key, value in headers.items() if key.lower() == wanted}


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The ``X-OpenRouter-Idempotency-Key`` value, or ``None`` if absent, empty or ambiguous.

    The header is not signed; prefer :attr:`VideoWebhookEvent.idempotency_key` once verified.
    """
    values = {v.strip() for v in _header_values(headers, IDEMPOTENCY_KEY_HEADER)}
    return values.pop() if len(values) == 1 and "" not in values else None


def verify_and_parse(
    raw_body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    now: float | None = None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    future_tolerance_seconds: float | None = None,
) -> VideoWebhookEvent:
    """Verify the signature header (looked up case-insensitively), then parse the body."""
    values = _header_values(headers, SIGNATURE_HEADER)
    if len(values) > 1:
        raise MalformedWebhookSignatureError(
            f"The webhook carries {len(values)} different {SIGNATURE_HEADER} headers; exactly one is "
            "allowed. Rejected."
        )
    verify_signature(
        raw_body,
        values.pop() if values else None,
        secret,
        now=now,
        tolerance_seconds=tolerance_seconds,
        future_tolerance_seconds=future_tolerance_seconds,
    )
    return parse_event(raw_body)


class WebhookDeduplicator:
    """Remembers the last ``max_keys`` idempotency keys seen by this process (thread-safe).

    Usage in a receiver, after :func:`verify_and_parse`::

        if not dedup.first_delivery(event.idempotency_key):
            return 204  # a redelivery: acknowledge it so OpenRouter stops, but do nothing again
        try:
            handle(event)
        except Exception:
            dedup.forget(event.idempotency_key)  # let OpenRouter's redelivery be processed
            raise  # answer 5xx

    Memory is bounded: beyond ``max_keys`` the least recently seen key is forgotten. The record
    lives in one process only; receivers running several worker processes or hosts need a
    shared record (for example a database row with a unique key) for exactly-once handling.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys!r}.")
        self._max_keys = max_keys
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def max_keys(self) -> int:
        return self._max_keys

    def first_delivery(self, key: str) -> bool:
        """Record ``key``; ``True`` the first time, ``False`` for a key still remembered."""
        if not key:
            raise ValueError("An idempotency key must be a non-empty string.")
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            if len(self._seen) > self._max_keys:
                self._seen.popitem(last=False)
            return True

    def forget(self, key: str) -> None:
        """Drop ``key`` (after failed processing) so its next delivery counts as the first."""
        with self._lock:
            self._seen.pop(key, None)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._seen

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)


# -- where a webhook goes, and which task it wakes --------------------------------------------

_CONN_ID = re.compile(r"[\w#!()\-.:/\\]{1,250}")
"""What Airflow accepts as a connection id (``RE_SANITIZE_CONN_ID``, at most 250 characters):
the receiver looks up nothing else."""


@dataclass(frozen=True)
class CallbackTarget:
    """Which connection signs a webhook and which task instance waits for it.

    The operator appends these as query parameters to the callback URL it submits, so the
    receiver finds the waiting task instance with one indexed lookup instead of scanning every
    deferred task. They name what is stable across tries (never the try number), so a retry that
    re-attaches to the job is still woken by the job's webhook. They are not signed: the receiver
    trusts only the signed job id, and wakes a task only if its trigger waits on that very job
    through that connection.
    """

    conn_id: str
    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    map_index: int = -1

    QUERY_FIELDS = CALLBACK_QUERY_FIELDS

    @property
    def names_task(self) -> bool:
        return self.dag_id is not None

    def url(self, base_url: str) -> str:
        """``base_url`` (checked by :func:`check_callback_url`) with this target as query parameters."""
        parts = urlsplit(check_callback_url(base_url))
        ours: dict[str, str] = {"conn_id": self.conn_id}
        if self.names_task:
            ours.update(
                dag_id=self.dag_id or "",
                task_id=self.task_id or "",
                run_id=self.run_id or "",
                map_index=str(self.map_index),
            )
        query = "&".join(q for q in (parts.query, urlencode(ours)) if q)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    @classmethod
    def from_query(cls, pairs: Iterable[tuple[str, str]], default_conn_id: str) -> CallbackTarget:
        """Read the target back from a request's query; :class:`InvalidCallbackTargetError` if it is
        not one the operator could have written (a parameter twice, a partial task identity)."""
        values: dict[str, str] = {}
        for key, value in pairs:
            if key not in cls.QUERY_FIELDS:
                continue
            if key in values:
                raise InvalidCallbackTargetError(f"The webhook URL names {key!r} more than once. Rejected.")
            if not value or len(value) > 512:
                raise InvalidCallbackTargetError(
                    f"The webhook URL's {key!r} is empty or longer than 512 characters. Rejected."
                )
            if key == "conn_id" and not _CONN_ID.fullmatch(value):
                raise InvalidCallbackTargetError(
                    "The webhook URL's 'conn_id' is not an Airflow connection id. Rejected."
                )
            values[key] = value
        task_keys = cls.QUERY_FIELDS[1:]
        given = [key for key in task_keys if key in values]
        if given and len(given) != len(task_keys):
            missing = ", ".join(key for key in task_keys if key not in values)
            raise InvalidCallbackTargetError(
                f"The webhook URL names a task instance but lacks {missing}. Rejected."
            )
        map_index = -1
        if given:
            try:
                map_index = int(values["map_index"])
            except ValueError:
                raise InvalidCallbackTargetError(
                    "The webhook URL's map_index is not an integer. Rejected."
                ) from None
        return cls(
            conn_id=values.get("conn_id", default_conn_id),
            dag_id=values.get("dag_id"),
            task_id=values.get("task_id"),
            run_id=values.get("run_id"),
            map_index=map_index,
        )
