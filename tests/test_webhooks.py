from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from typing import Any

import pytest

from airflow_provider_orvideo._internal.api import JobStatus
from airflow_provider_orvideo.exceptions import (
    FutureWebhookTimestampError,
    InvalidWebhookPayloadError,
    MalformedWebhookSignatureError,
    MissingWebhookSignatureError,
    OpenRouterVideoError,
    StaleWebhookTimestampError,
    WebhookSignatureMismatchError,
    WebhookTimestampError,
    WebhookVerificationError,
)
from airflow_provider_orvideo.webhooks import (
    EVENT_TYPES,
    WebhookDeduplicator,
    build_signature_header,
    idempotency_key,
    parse_event,
    verify_and_parse,
    verify_signature,
)

SECRET = "whsec-test-5f1c9a0e7b3d"
NOW = 1_777_000_000.0
T = int(NOW)
JOB_ID = "gen-vid-1777000000-Nxff2D1Z6w4Zk9iNuZam"

# Spacing and key order as a real sender might produce; the signature covers exactly these bytes.
COMPLETED_BODY = (
    b'{"type":"video.generation.completed","created_at":"2026-04-24T12:00:00.000Z",'
    b'"data":{"id":"' + JOB_ID.encode() + b'","status":"completed","generation_id":"gen-123",'
    b'"model":"google/veo-3.1","unsigned_urls":["https://openrouter.ai/api/v1/videos/'
    + JOB_ID.encode()
    + b'/content?index=0"],"usage":{"cost":0.5,"is_byok":false}}}'
)


def sign(body: bytes, t: int | str = T, secret: str = SECRET) -> str:
    """Independent of the implementation: HMAC-SHA256 over b"<t>," + body, hex encoded."""
    digest = hmac.new(secret.encode(), f"{t},".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def event_body(event_type: str, **data: Any) -> bytes:
    record = {"id": JOB_ID, "status": event_type.rsplit(".", 1)[1], **data}
    return json.dumps({"type": event_type, "created_at": "2026-04-24T12:00:00.000Z", "data": record}).encode()


# --- verify_signature ---------------------------------------------------------------------------


def test_valid_signature_returns_timestamp() -> None:
    assert verify_signature(COMPLETED_BODY, sign(COMPLETED_BODY), SECRET, now=NOW) == T


def test_build_signature_header_matches_independent_hmac() -> None:
    assert build_signature_header(COMPLETED_BODY, SECRET, T) == sign(COMPLETED_BODY)


def test_default_clock_is_used_when_now_is_omitted() -> None:
    t = int(time.time())
    assert verify_signature(COMPLETED_BODY, sign(COMPLETED_BODY, t), SECRET) == t


@pytest.mark.parametrize(
    "tampered",
    [
        COMPLETED_BODY.replace(b"0.5", b"0.0"),
        COMPLETED_BODY + b"\n",
        # Same JSON document, different bytes: re-serialising the body breaks the signature.
        json.dumps(json.loads(COMPLETED_BODY)).encode(),
    ],
)
def test_tampered_body_is_rejected(tampered: bytes) -> None:
    with pytest.raises(WebhookSignatureMismatchError):
        verify_signature(tampered, sign(COMPLETED_BODY), SECRET, now=NOW)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(WebhookSignatureMismatchError, match="secret differs"):
        verify_signature(COMPLETED_BODY, sign(COMPLETED_BODY, secret="another-secret"), SECRET, now=NOW)


def test_signature_for_another_timestamp_is_rejected() -> None:
    digest = sign(COMPLETED_BODY, T - 1).split("v1=")[1]
    with pytest.raises(WebhookSignatureMismatchError):
        verify_signature(COMPLETED_BODY, f"t={T},v1={digest}", SECRET, now=NOW)


def test_stale_timestamp_is_rejected() -> None:
    with pytest.raises(StaleWebhookTimestampError, match="301 s ago") as info:
        verify_signature(COMPLETED_BODY, sign(COMPLETED_BODY, T - 301), SECRET, now=NOW)
    assert info.value.timestamp == T - 301
    assert info.value.skew_seconds == 301


def test_future_timestamp_is_rejected() -> None:
    with pytest.raises(FutureWebhookTimestampError, match="301 s ahead") as info:
        verify_signature(COMPLETED_BODY, sign(COMPLETED_BODY, T + 301), SECRET, now=NOW)
    assert info.value.skew_seconds == -301


@pytest.mark.parametrize("offset", [-300, 300, 0])
def test_exactly_the_tolerance_passes(offset: int) -> None:
    assert verify_signature(COMPLETED_BODY, sign(COMPLETED_BODY, T + offset), SECRET, now=NOW) == T + offset


def test_custom_tolerance() -> None:
    header = sign(COMPLETED_BODY, T - 61)
    with pytest.raises(StaleWebhookTimestampError):
        verify_signature(COMPLETED_BODY, header, SECRET, now=NOW, tolerance_seconds=60)
    assert verify_signature(COMPLETED_BODY, header, SECRET, now=NOW, tolerance_seconds=61) == T - 61


def test_forged_stale_delivery_reports_the_signature_not_the_timestamp() -> None:
    """The signature is checked first, so a timestamp error always means a genuine delivery."""
    with pytest.raises(WebhookSignatureMismatchError):
        verify_signature(COMPLETED_BODY, sign(COMPLETED_BODY, T - 10_000, "wrong"), SECRET, now=NOW)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header: str | None) -> None:
    with pytest.raises(MissingWebhookSignatureError, match="X-OpenRouter-Signature"):
        verify_signature(COMPLETED_BODY, header, SECRET, now=NOW)


GOOD_HEX = "a" * 64


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (f"v1={GOOD_HEX}", "no 't='"),
        (f"ts={T},v1={GOOD_HEX}", "no 't='"),
        (f"t,v1={GOOD_HEX}", "no 't='"),
        (f"t=,v1={GOOD_HEX}", "not a whole number"),
        (f"t=12.5,v1={GOOD_HEX}", "not a whole number"),
        (f"t=-{T},v1={GOOD_HEX}", "not a whole number"),
        (f"t=1_000,v1={GOOD_HEX}", "not a whole number"),
        (f"t=abc,v1={GOOD_HEX}", "not a whole number"),
        (f"t={T},t={T},v1={GOOD_HEX}", "2 't=' timestamps"),
        (f"t={T}", "no 'v1='"),
        (f"t={T},v0={GOOD_HEX}", "no 'v1='"),
        (f"t={T},v1=", "not 64 hex digits"),
        (f"t={T},v1={'g' * 64}", "not 64 hex digits"),
        (f"t={T},v1={GOOD_HEX[:-1]}", "not 64 hex digits"),
        (f"t={T},v1={GOOD_HEX}00", "not 64 hex digits"),
        (f"t={T},v1={GOOD_HEX},v1=zz", "1 of the 2"),
        ("garbage", "no 't='"),
    ],
)
def test_malformed_header(header: str, match: str) -> None:
    with pytest.raises(MalformedWebhookSignatureError, match=match):
        verify_signature(COMPLETED_BODY, header, SECRET, now=NOW)


def test_several_v1_values_one_valid_passes() -> None:
    good = sign(COMPLETED_BODY).split("v1=")[1]
    header = f"t={T},v1={'0' * 64},v1={good},v1={'f' * 64}"
    assert verify_signature(COMPLETED_BODY, header, SECRET, now=NOW) == T


def test_several_v1_values_none_valid_fails() -> None:
    with pytest.raises(WebhookSignatureMismatchError, match="2 v1 value"):
        verify_signature(COMPLETED_BODY, f"t={T},v1={'0' * 64},v1={'f' * 64}", SECRET, now=NOW)


def test_header_tolerates_spaces_unknown_parts_any_order_and_uppercase_hex() -> None:
    good = sign(COMPLETED_BODY).split("v1=")[1].upper()
    header = f" v0=legacy , v1={good} ,scheme=hmac, t={T} ,"
    assert verify_signature(COMPLETED_BODY, header, SECRET, now=NOW) == T


def test_str_body_is_refused() -> None:
    with pytest.raises(TypeError, match="exact request body as bytes"):
        verify_signature(COMPLETED_BODY.decode(), sign(COMPLETED_BODY), SECRET, now=NOW)  # type: ignore[arg-type]


def test_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="secret is empty"):
        verify_signature(COMPLETED_BODY, sign(COMPLETED_BODY, secret=""), "", now=NOW)


@pytest.mark.parametrize("tolerance", [-1.0, float("nan")])
def test_invalid_tolerance(tolerance: float) -> None:
    with pytest.raises(ValueError, match="tolerance_seconds"):
        verify_signature(COMPLETED_BODY, sign(COMPLETED_BODY), SECRET, now=NOW, tolerance_seconds=tolerance)


@pytest.mark.parametrize("now", [float("nan"), float("inf")])
def test_non_finite_clock_is_refused(now: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        verify_signature(COMPLETED_BODY, sign(COMPLETED_BODY), SECRET, now=now)


def test_every_error_shares_one_base() -> None:
    for cls in (
        MissingWebhookSignatureError,
        MalformedWebhookSignatureError,
        StaleWebhookTimestampError,
        FutureWebhookTimestampError,
        WebhookSignatureMismatchError,
        InvalidWebhookPayloadError,
    ):
        assert issubclass(cls, WebhookVerificationError)
    assert issubclass(WebhookVerificationError, OpenRouterVideoError)
    assert issubclass(StaleWebhookTimestampError, WebhookTimestampError)


def test_timestamp_error_survives_message_only_construction() -> None:
    """AirflowException.serialize() round trips rebuild exceptions from the message alone."""
    error = StaleWebhookTimestampError("late")
    assert (error.timestamp, error.skew_seconds) == (0, 0.0)


def _every_error_message() -> list[str]:
    expected = sign(COMPLETED_BODY).split("v1=")[1]
    attempts: list[tuple[bytes, str | None]] = [
        (COMPLETED_BODY, None),
        (COMPLETED_BODY, f"t=x,v1={expected}"),
        (COMPLETED_BODY, f"t={T},v1={expected[:-1]}"),
        (COMPLETED_BODY + b" ", sign(COMPLETED_BODY)),
        (COMPLETED_BODY, sign(COMPLETED_BODY, secret=SECRET + "x")),
        (COMPLETED_BODY, sign(COMPLETED_BODY, T - 301)),
        (COMPLETED_BODY, sign(COMPLETED_BODY, T + 301)),
        (b"not json", sign(b"not json")),
        (SECRET.encode(), sign(SECRET.encode())),
    ]
    messages = []
    for body, header in attempts:
        headers = {} if header is None else {"X-OpenRouter-Signature": header}
        with pytest.raises(WebhookVerificationError) as info:
            verify_and_parse(body, headers, SECRET, now=NOW)
        messages.append(str(info.value))
    return messages


def test_secret_and_expected_digest_never_appear_in_messages() -> None:
    messages = _every_error_message()
    assert len(messages) == 9
    expected = sign(COMPLETED_BODY).split("v1=")[1]
    for message in messages:
        assert SECRET not in message
        assert expected not in message
        assert expected[:16] not in message


# --- parse_event --------------------------------------------------------------------------------


def test_parse_completed_event() -> None:
    event = parse_event(COMPLETED_BODY)
    assert event.type == "video.generation.completed"
    assert event.created_at == "2026-04-24T12:00:00.000Z"
    assert event.job_id == JOB_ID
    assert event.status == "completed"
    assert event.job_status is JobStatus.COMPLETED
    assert event.succeeded
    assert event.generation_id == "gen-123"
    assert event.model == "google/veo-3.1"
    assert event.unsigned_urls == (f"https://openrouter.ai/api/v1/videos/{JOB_ID}/content?index=0",)
    assert event.cost == 0.5
    assert event.is_byok is False
    assert event.error is None
    assert event.idempotency_key == f"{JOB_ID}-completed"


def test_parse_failed_event_with_early_failure_nulls() -> None:
    body = event_body(
        "video.generation.failed", error="Content policy violation", generation_id=None, model=None
    )
    event = parse_event(body)
    assert (event.status, event.error) == ("failed", "Content policy violation")
    assert event.job_status is JobStatus.FAILED
    assert not event.succeeded
    assert (event.generation_id, event.model, event.unsigned_urls) == (None, None, ())
    assert (event.cost, event.is_byok) == (None, None)


def test_the_event_types_are_the_documented_ones() -> None:
    assert dict(EVENT_TYPES) == {
        "video.generation.completed": JobStatus.COMPLETED,
        "video.generation.failed": JobStatus.FAILED,
        "video.generation.cancelled": JobStatus.CANCELLED,
        "video.generation.expired": JobStatus.EXPIRED,
    }


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_parse_every_event_type(event_type: str) -> None:
    event = parse_event(event_body(event_type, error="boom" if "completed" not in event_type else None))
    assert event.type == event_type
    assert event.job_status is EVENT_TYPES[event_type]
    assert event.idempotency_key == f"{JOB_ID}-{EVENT_TYPES[event_type].value}"


def test_integer_cost_becomes_float() -> None:
    event = parse_event(event_body("video.generation.completed", usage={"cost": 2, "is_byok": True}))
    assert event.cost == 2.0
    assert isinstance(event.cost, float)
    assert event.is_byok is True


def test_signed_urls_are_not_kept() -> None:
    signed = "https://storage.example/video.mp4?X-Goog-Signature=s3cr3t"
    body = event_body(
        "video.generation.completed", urls=[signed], expires_at="2026-04-25T12:00:00Z", unsigned_urls=[]
    )
    event = parse_event(body)
    assert "s3cr3t" not in repr(event)
    assert not hasattr(event, "urls")


def test_unknown_keys_are_ignored() -> None:
    raw = json.loads(COMPLETED_BODY)
    raw["api_version"] = 2
    raw["data"]["new_field"] = {"x": 1}
    assert parse_event(json.dumps(raw).encode()).job_id == JOB_ID


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("video.generation.completed", "failed"),
        ("video.generation.failed", "completed"),
        ("video.generation.cancelled", "expired"),
        ("video.generation.expired", "pending"),
        ("video.generation.completed", None),
        ("video.generation.completed", "COMPLETED"),
    ],
)
def test_status_must_match_type(event_type: str, status: str | None) -> None:
    raw = json.loads(event_body(event_type))
    raw["data"]["status"] = status
    with pytest.raises(InvalidWebhookPayloadError, match=r"data\.status"):
        parse_event(json.dumps(raw).encode())


@pytest.mark.parametrize("body", [b"", b"not json", b"{", b"\xff\xfe", b"[" * 100_000])
def test_invalid_json(body: bytes) -> None:
    with pytest.raises(InvalidWebhookPayloadError, match="not JSON"):
        parse_event(body)


def _mutated(mutate: Any) -> bytes:
    raw = json.loads(COMPLETED_BODY)
    mutate(raw)
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"[]", "JSON list"),
        (b'"video.generation.completed"', "JSON str"),
        (_mutated(lambda r: r.update(type="video.generation.started")), "unknown 'type'"),
        (_mutated(lambda r: r.pop("type")), "unknown 'type'"),
        (_mutated(lambda r: r.update(type=["video.generation.completed"])), "unknown 'type'"),
        (_mutated(lambda r: r.pop("created_at")), "created_at"),
        (_mutated(lambda r: r.update(created_at=1777000000)), "created_at"),
        (_mutated(lambda r: r.pop("data")), "'data' object"),
        (_mutated(lambda r: r.update(data=[])), "'data' object"),
        (_mutated(lambda r: r["data"].pop("id")), "data.id"),
        (_mutated(lambda r: r["data"].update(id="")), "data.id"),
        (_mutated(lambda r: r["data"].update(unsigned_urls="https://x")), "data.unsigned_urls"),
        (_mutated(lambda r: r["data"].update(unsigned_urls=[1])), "data.unsigned_urls"),
        (_mutated(lambda r: r["data"].update(usage=[])), "data.usage"),
        (_mutated(lambda r: r["data"]["usage"].update(cost="0.5")), "data.usage.cost"),
        (_mutated(lambda r: r["data"]["usage"].update(cost=True)), "data.usage.cost"),
        (_mutated(lambda r: r["data"]["usage"].update(is_byok="no")), "data.usage.is_byok"),
        (_mutated(lambda r: r["data"].update(generation_id=5)), "data.generation_id"),
        (_mutated(lambda r: r["data"].update(model={})), "data.model"),
        (_mutated(lambda r: r["data"].update(error={"message": "x"})), "data.error"),
    ],
)
def test_wrong_shape(body: bytes, match: str) -> None:
    with pytest.raises(InvalidWebhookPayloadError, match=match):
        parse_event(body)


# --- verify_and_parse and headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["X-OpenRouter-Signature", "x-openrouter-signature", "X-OPENROUTER-SIGNATURE"]
)
def test_verify_and_parse_finds_the_header_in_any_case(name: str) -> None:
    headers = {"Content-Type": "application/json", name: sign(COMPLETED_BODY)}
    event = verify_and_parse(COMPLETED_BODY, headers, SECRET, now=NOW)
    assert event.job_id == JOB_ID


def test_verify_and_parse_without_signature_header() -> None:
    with pytest.raises(MissingWebhookSignatureError):
        verify_and_parse(COMPLETED_BODY, {"Content-Type": "application/json"}, SECRET, now=NOW)


def test_verify_and_parse_checks_the_signature_before_parsing() -> None:
    with pytest.raises(WebhookSignatureMismatchError):
        verify_and_parse(b"not json", {"X-OpenRouter-Signature": sign(b"other")}, SECRET, now=NOW)


def test_verify_and_parse_rejects_a_signed_but_invalid_event() -> None:
    body = b'{"type":"video.generation.started"}'
    with pytest.raises(InvalidWebhookPayloadError):
        verify_and_parse(body, {"X-OpenRouter-Signature": sign(body)}, SECRET, now=NOW)


def test_verify_and_parse_rejects_conflicting_signature_headers() -> None:
    headers = {"X-OpenRouter-Signature": sign(COMPLETED_BODY), "x-openrouter-signature": sign(b"x")}
    with pytest.raises(MalformedWebhookSignatureError, match="2 different"):
        verify_and_parse(COMPLETED_BODY, headers, SECRET, now=NOW)


def test_verify_and_parse_passes_the_tolerance_through() -> None:
    headers = {"X-OpenRouter-Signature": sign(COMPLETED_BODY, T - 100)}
    with pytest.raises(StaleWebhookTimestampError):
        verify_and_parse(COMPLETED_BODY, headers, SECRET, now=NOW, tolerance_seconds=99)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-OpenRouter-Idempotency-Key": f"{JOB_ID}-completed"}, f"{JOB_ID}-completed"),
        ({"x-openrouter-idempotency-key": " abc-failed "}, "abc-failed"),
        ({"X-OPENROUTER-IDEMPOTENCY-KEY": "abc-failed"}, "abc-failed"),
        ({"Content-Type": "application/json"}, None),
        ({"X-OpenRouter-Idempotency-Key": "  "}, None),
        (
            {"X-OpenRouter-Idempotency-Key": "a-completed", "x-openrouter-idempotency-key": "b-completed"},
            None,
        ),
        (
            {"X-OpenRouter-Idempotency-Key": "a-completed", "x-openrouter-idempotency-key": "a-completed"},
            "a-completed",
        ),
    ],
)
def test_idempotency_key_header(headers: dict[str, str], expected: str | None) -> None:
    assert idempotency_key(headers) == expected


# --- WebhookDeduplicator ------------------------------------------------------------------------


def test_same_key_twice_is_a_duplicate() -> None:
    dedup = WebhookDeduplicator()
    assert dedup.first_delivery(f"{JOB_ID}-completed") is True
    assert dedup.first_delivery(f"{JOB_ID}-completed") is False
    assert dedup.first_delivery(f"{JOB_ID}-failed") is True
    assert len(dedup) == 2


def test_eviction_beyond_max_keys() -> None:
    dedup = WebhookDeduplicator(max_keys=3)
    for key in ("a", "b", "c", "d"):
        assert dedup.first_delivery(key)
    assert len(dedup) == 3
    assert "a" not in dedup
    assert dedup.first_delivery("a") is True  # forgotten, so counted as new (and evicts "b")
    assert "b" not in dedup
    assert dedup.first_delivery("c") is False


def test_eviction_is_least_recently_seen() -> None:
    dedup = WebhookDeduplicator(max_keys=2)
    dedup.first_delivery("a")
    dedup.first_delivery("b")
    assert dedup.first_delivery("a") is False  # refreshes "a"
    dedup.first_delivery("c")  # evicts "b", the least recently seen
    assert "a" in dedup
    assert "b" not in dedup


def test_forget_lets_a_redelivery_through() -> None:
    dedup = WebhookDeduplicator()
    assert dedup.first_delivery("k")
    dedup.forget("k")
    dedup.forget("never-seen")
    assert dedup.first_delivery("k")


@pytest.mark.parametrize("max_keys", [0, -1])
def test_max_keys_must_be_positive(max_keys: int) -> None:
    with pytest.raises(ValueError, match="max_keys"):
        WebhookDeduplicator(max_keys=max_keys)


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        WebhookDeduplicator().first_delivery("")


def test_concurrent_deliveries_of_one_key_are_processed_once() -> None:
    dedup = WebhookDeduplicator(max_keys=50)
    results: list[bool] = []
    results_lock = threading.Lock()
    barrier = threading.Barrier(16)

    def deliver() -> None:
        barrier.wait()
        for i in range(200):
            first = dedup.first_delivery(f"job{i % 40}-completed")
            with results_lock:
                results.append(first)

    threads = [threading.Thread(target=deliver) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 40
    assert len(dedup) == 40
