"""The webhook receiver's decision (``receive``) and its HTTP driver (``build_app``).

The database step (``resume_waiting_task``) runs against a real Airflow stack in
``tests/system/test_webhooks.py``; here it is replaced by a recorder, so every answer the
receiver can give is pinned down without a scheduler.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_orvideo.plugins._webhook_receiver import (
    FUTURE_SKEW_SECONDS,
    MAX_BODY_BYTES,
    WEBHOOK_PATH,
    AnnounceOutcome,
    LogThrottle,
    LookupBudget,
    ReceiverSettings,
    ResumeOutcome,
    SettingsCache,
    asset_event_extra,
    build_app,
    receive,
    receiver_settings,
)
from airflow_provider_orvideo.webhooks import (
    CallbackTarget,
    VideoWebhookEvent,
    WebhookDeduplicator,
    build_signature_header,
    check_callback_url,
)

SECRET = "whsec-receiver-9b2d41"
JOB = "vid-job-7Hq2"
TARGET = CallbackTarget("openrouter_default", "dag", "render", "manual__2026-11-30T00:00:00+00:00", 2)


def body_for(status: str = "completed", job: str = JOB) -> bytes:
    data: dict[str, Any] = {"id": job, "status": status, "generation_id": "gen-1", "model": "google/veo-3.1"}
    if status == "completed":
        data |= {
            "unsigned_urls": [f"https://openrouter.ai/api/v1/videos/{job}/content?index=0"],
            "usage": {"cost": 0.5},
        }
    else:
        data["error"] = "boom"
    return json.dumps(
        {"type": f"video.generation.{status}", "created_at": "2026-11-30T00:00:00.000Z", "data": data}
    ).encode()


def signed(body: bytes, *, t: float | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = int(time.time() if t is None else t)
    status = json.loads(body)["data"]["status"]
    return {
        "X-OpenRouter-Signature": build_signature_header(body, secret, stamp),
        "X-OpenRouter-Idempotency-Key": f"{JOB}-{status}",
    }


def query(target: CallbackTarget = TARGET) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl, urlsplit

    return parse_qsl(urlsplit(target.url("https://airflow.example.com/orvideo/webhook")).query)


class Recorder:
    """Stands in for the database step and counts what reached it."""

    def __init__(
        self, outcome: ResumeOutcome = ResumeOutcome.RESUMED, error: Exception | None = None
    ) -> None:
        self.outcome = outcome
        self.error = error
        self.calls: list[tuple[VideoWebhookEvent, CallbackTarget]] = []

    async def __call__(self, event: VideoWebhookEvent, target: CallbackTarget) -> ResumeOutcome:
        self.calls.append((event, target))
        if self.error is not None:
            raise self.error
        return self.outcome


ASSET = "openrouter://videos/completed"


async def settings_for(conn_id: str) -> ReceiverSettings:
    if conn_id == "openrouter_default":
        return ReceiverSettings(secret=SECRET)
    if conn_id == "openrouter_announcing":
        return ReceiverSettings(secret=SECRET, asset=ASSET)
    return ReceiverSettings()


class Announcer:
    """Stands in for the asset step and records what it was asked to announce."""

    def __init__(self, outcome: AnnounceOutcome = AnnounceOutcome.REGISTERED) -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, CallbackTarget, str]] = []

    async def __call__(self, event: VideoWebhookEvent, target: CallbackTarget, asset: str) -> AnnounceOutcome:
        self.calls.append((event.job_id, target, asset))
        return self.outcome


def run(
    body: bytes,
    headers: dict[str, str],
    q: Any = None,
    *,
    resume: Recorder | None = None,
    announce: Announcer | None = None,
    dedup: WebhookDeduplicator | None = None,
    throttle: LogThrottle | None = None,
    now: float | None = None,
    load: Any = None,
) -> Any:
    return asyncio.run(
        receive(
            body,
            headers,
            query() if q is None else q,
            load_settings=settings_for if load is None else load,
            resume=Recorder() if resume is None else resume,
            announce=Announcer() if announce is None else announce,
            deduplicator=WebhookDeduplicator() if dedup is None else dedup,
            throttle=LogThrottle() if throttle is None else throttle,
            now=now,
        )
    )


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled", "expired"])
def test_a_signed_event_resumes_the_named_task_once(status: str) -> None:
    resume, dedup = Recorder(), WebhookDeduplicator()
    body = body_for(status)
    first = run(body, signed(body), resume=resume, dedup=dedup)
    again = run(body, signed(body), resume=resume, dedup=dedup)
    assert (first.status, first.outcome) == (200, "resumed")
    assert (again.status, again.outcome) == (200, "duplicate")
    assert len(resume.calls) == 1
    event, target = resume.calls[0]
    assert (event.job_id, event.status, target) == (JOB, status, TARGET)


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "MissingWebhookSignatureError"),
        ({"X-OpenRouter-Signature": "t=1,v1=zz"}, "MalformedWebhookSignatureError"),
        ("other-secret", "WebhookSignatureMismatchError"),
        ("stale", "StaleWebhookTimestampError"),
        ("future", "FutureWebhookTimestampError"),
    ],
)
def test_unverified_deliveries_are_refused_and_never_reach_the_task(
    headers: Any, why: str, caplog: Any
) -> None:
    body = body_for()
    now = time.time()
    if headers == "other-secret":
        headers = signed(body, secret="whsec-forged")
    elif headers == "stale":
        headers = signed(body, t=now - 301)
    elif headers == "future":
        headers = signed(body, t=now + FUTURE_SKEW_SECONDS + 5)
    resume = Recorder()
    with caplog.at_level(logging.WARNING):
        reply = run(body, headers, resume=resume, now=now)
    assert (reply.status, reply.outcome, reply.detail) == (401, "unverified", why)
    assert resume.calls == []
    assert SECRET not in caplog.text


def test_small_clock_skew_ahead_is_accepted() -> None:
    body = body_for()
    now = time.time()
    assert run(body, signed(body, t=now + FUTURE_SKEW_SECONDS - 2), now=now).status == 200
    assert run(body, signed(body, t=now - 299), now=now).status == 200


def test_a_replayed_body_with_an_altered_job_id_fails_the_signature() -> None:
    body = body_for()
    headers = signed(body)
    tampered = body.replace(JOB.encode(), b"vid-job-other")
    reply = run(tampered, headers)
    assert reply.status == 401


def test_no_secret_configured_refuses_everything_with_a_log_line(caplog: Any) -> None:
    body = body_for()
    q = query(CallbackTarget("openrouter_without_secret", "dag", "render", "r", -1))
    resume = Recorder()
    with caplog.at_level(logging.WARNING):
        reply = run(body, signed(body), q, resume=resume)
    assert (reply.status, reply.outcome) == (503, "not_configured")
    assert resume.calls == []
    assert "connection 'openrouter_without_secret' has no 'webhook_secret' extra" in caplog.text


@pytest.mark.parametrize(
    "q",
    [
        [("conn_id", "openrouter_default"), ("conn_id", "other")],
        [("dag_id", "dag"), ("task_id", "render")],
        [("dag_id", "dag"), ("task_id", "t"), ("run_id", "r"), ("map_index", "x")],
        [("conn_id", "")],
        [("conn_id", "open router")],
        [("conn_id", "x" * 251)],
    ],
)
def test_a_url_the_operator_could_not_have_written_is_400(q: list[tuple[str, str]]) -> None:
    body = body_for()
    assert run(body, signed(body), q).status == 400


def test_a_header_key_that_contradicts_the_signed_body_is_400() -> None:
    body = body_for()
    headers = signed(body) | {"X-OpenRouter-Idempotency-Key": f"{JOB}-failed"}
    assert run(body, headers).status == 400


def test_a_signed_event_without_a_task_in_its_url_is_acknowledged() -> None:
    body = body_for()
    resume = Recorder()
    reply = run(body, signed(body), [], resume=resume)
    assert (reply.status, reply.outcome) == (200, "no_task_named")
    assert resume.calls == []


def test_a_task_that_has_not_deferred_yet_gets_the_event_again_later() -> None:
    body = body_for()
    dedup = WebhookDeduplicator()
    waiting = Recorder(ResumeOutcome.NOT_DEFERRED_YET)
    reply = run(body, signed(body), resume=waiting, dedup=dedup)
    assert (reply.status, reply.retry_after) == (503, 1)
    resumed = Recorder()
    assert run(body, signed(body), resume=resumed, dedup=dedup).outcome == "resumed"
    assert len(resumed.calls) == 1


@pytest.mark.parametrize(
    "outcome", [ResumeOutcome.NOT_WAITING, ResumeOutcome.OTHER_JOB, ResumeOutcome.NO_TASK]
)
def test_nothing_to_resume_is_acknowledged(outcome: ResumeOutcome) -> None:
    body = body_for()
    reply = run(body, signed(body), resume=Recorder(outcome))
    assert (reply.status, reply.outcome) == (200, outcome.value)


def test_a_database_failure_is_503_and_the_redelivery_is_processed(caplog: Any) -> None:
    body = body_for()
    dedup = WebhookDeduplicator()
    reply = run(body, signed(body), resume=Recorder(error=RuntimeError("db down")), dedup=dedup)
    assert (reply.status, reply.outcome) == (503, "error")
    assert run(body, signed(body), dedup=dedup).outcome == "resumed"


# -- the HTTP driver ------------------------------------------------------------------------


def client(resume: Any = None) -> TestClient:
    calls: list[Any] = []

    def record(event: VideoWebhookEvent, target: CallbackTarget) -> ResumeOutcome:
        calls.append((event, target))
        return ResumeOutcome.RESUMED

    app = build_app(
        load_settings=lambda conn_id: ReceiverSettings(
            secret=SECRET if conn_id == "openrouter_default" else None
        ),
        resume=resume or record,
        announce=lambda event, target, asset: AnnounceOutcome.REGISTERED,
    )
    test_client = TestClient(app)
    test_client.calls = calls  # type: ignore[attr-defined]
    return test_client


def test_http_round_trip() -> None:
    c = client()
    body = body_for()
    url = TARGET.url(f"https://testserver/orvideo{WEBHOOK_PATH}").removeprefix("https://testserver/orvideo")
    answer = c.post(url, content=body, headers=signed(body))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "resumed"
    assert c.calls[0][1] == TARGET  # type: ignore[attr-defined]


def test_http_refuses_large_bodies_unread() -> None:
    c = client()
    big = b"{" + b" " * MAX_BODY_BYTES + b"}"
    assert c.post(WEBHOOK_PATH, content=big, headers=signed(body_for())).status_code == 413

    def chunks() -> Any:  # no Content-Length: counted while read
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    assert c.post(WEBHOOK_PATH, content=chunks()).status_code == 413
    assert c.post(WEBHOOK_PATH, content=b"{}", headers={"content-length": "abc"}).status_code in (400, 413)


def test_http_503_carries_retry_after() -> None:
    c = client(resume=lambda event, target: ResumeOutcome.NOT_DEFERRED_YET)
    body = body_for()
    url = TARGET.url("https://x/orvideo/webhook").removeprefix("https://x/orvideo")
    answer = c.post(url, content=body, headers=signed(body))
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda d: json.dumps(d).encode(),
            st.dictionaries(
                st.text(max_size=8),
                st.recursive(
                    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=8,
                ),
                max_size=4,
            ),
        ),
    ),
    sign_it=st.booleans(),
    extra_query=st.lists(
        st.tuples(st.sampled_from((*CallbackTarget.QUERY_FIELDS, "x")), st.text(max_size=10)), max_size=4
    ),
    header=st.text(max_size=80),
)
def test_http_never_answers_500_to_any_input(
    body: bytes, sign_it: bool, extra_query: list[tuple[str, str]], header: str
) -> None:
    from urllib.parse import urlencode

    c = client()
    headers = (
        {"X-OpenRouter-Signature": build_signature_header(body, SECRET, int(time.time()))} if sign_it else {}
    )
    if header.isascii() and header.isprintable():
        headers["X-OpenRouter-Idempotency-Key"] = header
    answer = c.post(f"{WEBHOOK_PATH}?{urlencode(extra_query)}", content=body, headers=headers)
    assert answer.status_code in (200, 400, 401, 503), answer.text
    if answer.status_code == 200:
        assert answer.json()["outcome"] in ("resumed", "duplicate", "no_task_named")


# -- the callback URL -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://airflow.example.com/orvideo/webhook",
        "ftp://airflow.example.com/x",
        "https://user:pw@airflow.example.com/orvideo/webhook",
        "https://airflow.example.com/orvideo/webhook#frag",
        "https://airflow.example.com/orvideo/webhook?dag_id=x",
        "/orvideo/webhook",
        "",
    ],
)
def test_unusable_callback_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="callback URL"):
        check_callback_url(url)


@given(
    dag_id=st.text(min_size=1, max_size=40),
    task_id=st.text(min_size=1, max_size=40),
    run_id=st.text(min_size=1, max_size=60),
    map_index=st.integers(-1, 10_000),
    conn_id=st.from_regex(r"[\w#!()\-.:/\\]{1,30}", fullmatch=True),
)
def test_the_target_survives_the_url_round_trip(
    dag_id: str, task_id: str, run_id: str, map_index: int, conn_id: str
) -> None:
    from urllib.parse import parse_qsl, urlsplit

    target = CallbackTarget(conn_id, dag_id, task_id, run_id, map_index)
    url = target.url("https://airflow.example.com/orvideo/webhook?tenant=a")
    parsed = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    assert ("tenant", "a") in parsed
    assert CallbackTarget.from_query(parsed, "openrouter_default") == target


# -- asset events ------------------------------------------------------------------------------


@pytest.mark.parametrize("named", [True, False])
def test_a_completed_job_is_announced_once_when_the_connection_names_an_asset(named: bool) -> None:
    announcing = CallbackTarget("openrouter_announcing", *(("dag", "render", "r1", 0) if named else ()))
    body = body_for()
    announcer, dedup = Announcer(), WebhookDeduplicator()
    reply = run(body, signed(body), query(announcing), announce=announcer, dedup=dedup)
    assert reply.asset_event == "registered"
    assert reply.body()["asset_event"] == "registered"
    assert reply.outcome == ("resumed" if named else "no_task_named")
    assert announcer.calls == [(JOB, announcing, ASSET)]
    assert run(body, signed(body), query(announcing), announce=announcer, dedup=dedup).outcome == "duplicate"
    assert len(announcer.calls) == 1


@pytest.mark.parametrize("status", ["failed", "cancelled", "expired"])
def test_a_job_that_did_not_complete_is_not_announced(status: str) -> None:
    announcer = Announcer()
    body = body_for(status)
    reply = run(body, signed(body), query(CallbackTarget("openrouter_announcing")), announce=announcer)
    assert reply.asset_event is None
    assert announcer.calls == []


def test_without_an_asset_setting_nothing_is_announced() -> None:
    announcer = Announcer()
    body = body_for()
    assert run(body, signed(body), announce=announcer).asset_event is None
    assert announcer.calls == []


def test_the_asset_event_extra_holds_the_jobs_facts_and_no_secret() -> None:
    body = body_for()
    from airflow_provider_orvideo.webhooks import parse_event

    extra = asset_event_extra(parse_event(body), TARGET)
    assert json.loads(json.dumps(extra)) == extra
    assert extra["job_id"] == JOB
    assert extra["cost"] == 0.5
    assert extra["model"] == "google/veo-3.1"
    assert (extra["dag_id"], extra["task_id"], extra["run_id"], extra["map_index"]) == (
        TARGET.dag_id,
        TARGET.task_id,
        TARGET.run_id,
        TARGET.map_index,
    )
    assert SECRET not in json.dumps(extra)


def test_a_flood_of_forged_requests_reads_the_connection_once() -> None:
    lookups: list[str] = []

    def load(conn_id: str) -> ReceiverSettings:
        lookups.append(conn_id)
        return ReceiverSettings(secret=SECRET)

    c = TestClient(build_app(load_settings=load, resume=lambda e, t: ResumeOutcome.RESUMED))
    body = body_for()
    forged = {"X-OpenRouter-Signature": build_signature_header(body, "whsec-guess", int(time.time()))}
    answers = {
        c.post(f"{WEBHOOK_PATH}?conn_id=openrouter_default", content=body, headers=forged).status_code
        for _ in range(20)
    }
    assert answers == {401}
    assert lookups == ["openrouter_default"]


def test_refusals_are_logged_at_most_once_a_minute_per_connection_and_kind(caplog: Any) -> None:
    body = body_for()
    forged = {"X-OpenRouter-Signature": build_signature_header(body, "whsec-guess", 1_000_000)}
    throttle = LogThrottle(interval=60)
    with caplog.at_level(logging.WARNING):
        for second in range(100):  # a forged flood over 100 seconds
            assert run(body, forged, throttle=throttle, now=1_000_000 + second).status == 401
    lines = [r.getMessage() for r in caplog.records if "Refusing" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "(59 more refused the same way" in lines[1]


def test_log_throttle_counts_and_forgets() -> None:
    throttle = LogThrottle(interval=10, max_keys=2)
    assert throttle.allow("a", 0) == (True, 0)
    assert throttle.allow("a", 5) == (False, 0)
    assert throttle.allow("a", 6) == (False, 0)
    assert throttle.allow("a", 10) == (True, 2)
    assert throttle.allow("b", 10) == (True, 0)
    assert throttle.allow("c", 10) == (True, 0)  # "a" is the oldest key: forgotten
    assert throttle.allow("a", 11) == (True, 0)


# -- a flood of made-up connection ids (issue 22) -----------------------------------------------


def test_the_lookup_budget_allows_a_burst_then_one_per_refill() -> None:
    budget = LookupBudget(capacity=3, refill_seconds=10)
    assert [budget.take(0) for _ in range(5)] == [True, True, True, False, False]
    assert not budget.take(9.9)
    assert budget.take(10.1)
    assert not budget.take(10.2)
    assert [budget.take(1_000) for _ in range(5)] == [True, True, True, False, False]  # capped at 3


def test_the_lookup_budget_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="capacity"):
        LookupBudget(capacity=0)
    with pytest.raises(ValueError, match="refill_seconds"):
        LookupBudget(refill_seconds=float("nan"))


KNOWN = ReceiverSettings(secret=SECRET)
MISSING = ReceiverSettings(problem="AirflowNotFoundException")


def test_the_cache_keeps_connections_with_a_secret_through_a_flood_of_unknown_ids() -> None:
    cache = SettingsCache(
        LookupBudget(capacity=2, refill_seconds=60), expected=(), ttl=30, max_known=4, max_refused=8
    )
    assert cache.claim_lookup("openrouter_default", 0)
    cache.put("openrouter_default", KNOWN, 0)
    claimed = sum(cache.claim_lookup(f"forged_{i}", 1) for i in range(10_000))
    assert claimed == 1  # the other token went to openrouter_default
    for i in range(10_000):  # even were every one looked up: they evict only each other
        cache.put(f"forged_{i}", MISSING, 1)
    assert cache.get("openrouter_default", 29) == KNOWN
    assert cache.get("forged_9999", 29) == MISSING
    assert cache.get("forged_0", 29) is None  # only the last 8 are remembered


def test_a_connection_with_a_secret_is_looked_up_again_once_per_ttl_without_the_budget() -> None:
    cache = SettingsCache(LookupBudget(capacity=1, refill_seconds=3600), expected=(), ttl=30)
    assert cache.claim_lookup("openrouter_default", 0)
    cache.put("openrouter_default", KNOWN, 0)
    assert not cache.claim_lookup("forged", 1)  # the budget is spent
    assert cache.get("openrouter_default", 31) is None  # stale: look it up again
    assert cache.claim_lookup("openrouter_default", 31)  # allowed although the budget is spent
    assert cache.get("openrouter_default", 31.5) == KNOWN  # others keep it while the lookup runs
    rotated = ReceiverSettings(secret="whsec-rotated")
    cache.put("openrouter_default", rotated, 32)
    assert cache.get("openrouter_default", 33) == rotated
    cache.put("openrouter_default", ReceiverSettings(), 70)  # the secret was removed
    assert cache.get("openrouter_default", 71) == ReceiverSettings()
    assert cache.get("openrouter_default", 101) is None
    assert not cache.claim_lookup("openrouter_default", 101)  # no longer known: the budget decides


def test_the_default_connection_is_looked_up_the_first_time_even_when_the_budget_is_spent() -> None:
    cache = SettingsCache(LookupBudget(capacity=1, refill_seconds=3600))
    assert cache.claim_lookup("forged", 0)
    assert not cache.claim_lookup("openrouter_other", 0)
    assert cache.claim_lookup("openrouter_default", 0)  # once: a flood cannot keep it waiting
    cache.put("openrouter_default", ReceiverSettings(), 0)  # no secret: nothing special any more
    assert not cache.claim_lookup("openrouter_default", 31)


def test_an_id_without_a_secret_is_remembered_for_the_ttl() -> None:
    cache = SettingsCache(LookupBudget(capacity=1, refill_seconds=3600), ttl=30)
    assert cache.claim_lookup("openrouter_no_secret", 0)
    cache.put("openrouter_no_secret", ReceiverSettings(), 0)
    assert cache.get("openrouter_no_secret", 29) == ReceiverSettings()  # no lookup, no budget
    assert cache.get("openrouter_no_secret", 30) is None


def test_a_delivery_that_could_not_be_looked_up_is_503_with_retry_after(caplog: Any) -> None:
    async def spent(conn_id: str) -> ReceiverSettings | None:
        return None

    body = body_for()
    resume, throttle = Recorder(), LogThrottle()
    with caplog.at_level(logging.WARNING):
        replies = [
            run(body, signed(body), resume=resume, throttle=throttle, load=spent, now=time.time() + second)
            for second in range(10)
        ]
    assert {(r.status, r.outcome, r.retry_after) for r in replies} == {(503, "busy", 10)}
    assert resume.calls == []
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert "connection 'openrouter_default' without looking the connection up" in lines[0]


def test_a_missing_connection_costs_no_log_line_of_its_own(
    monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from airflow.models.connection import Connection

    from airflow_provider_orvideo._internal.compat import AirflowNotFoundException

    def missing(conn_id: str) -> Connection:
        raise AirflowNotFoundException(conn_id)

    monkeypatch.setattr(Connection, "get_connection_from_secrets", missing)
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_orvideo"):
        settings = receiver_settings("openrouter_gone")
    assert settings == ReceiverSettings(problem="AirflowNotFoundException")
    assert caplog.records == []

    async def load(conn_id: str) -> ReceiverSettings:
        return settings

    body = body_for()
    with caplog.at_level(logging.WARNING):
        reply = run(body, signed(body), [("conn_id", "openrouter_gone")], load=load)
    assert (reply.status, reply.outcome) == (503, "not_configured")
    assert "connection 'openrouter_gone' has no 'webhook_secret' extra (it cannot be read: " in caplog.text


def test_10000_forged_requests_naming_10000_connections_cost_a_few_lookups_and_lines(caplog: Any) -> None:
    import httpx

    lookups: list[str] = []

    def load(conn_id: str) -> ReceiverSettings:
        lookups.append(conn_id)
        return ReceiverSettings(secret=SECRET) if conn_id.startswith("openrouter_") else ReceiverSettings()

    resumed: list[str] = []

    def resume(event: VideoWebhookEvent, target: CallbackTarget) -> ResumeOutcome:
        resumed.append(target.conn_id)
        return ResumeOutcome.RESUMED

    now = [0.0]
    app = build_app(load_settings=load, resume=resume, clock=lambda: now[0])

    def genuine(conn_id: str, job: str) -> tuple[str, bytes, dict[str, str]]:
        target = CallbackTarget(conn_id, "dag", "render", "r", -1)
        body = body_for(job=job)
        headers = signed(body) | {"X-OpenRouter-Idempotency-Key": f"{job}-completed"}
        return target.url("https://x/orvideo/webhook").removeprefix("https://x/orvideo"), body, headers

    async def flood() -> dict[str, int]:
        forged_body = body_for()
        forged = {
            "X-OpenRouter-Signature": build_signature_header(forged_body, "whsec-guess", int(time.time()))
        }
        answers: dict[str, int] = {}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            for i in range(10_000):  # starts before any genuine webhook: nothing is cached
                answer = await c.post(
                    f"{WEBHOOK_PATH}?conn_id=forged_{i}", content=forged_body, headers=forged
                )
                answers[str(answer.status_code)] = answers.get(str(answer.status_code), 0) + 1
                now[0] += 0.001  # 10,000 requests in 10 s
                if i == 5_000:
                    url, body, headers = genuine("openrouter_default", "job-during")
                    assert (await c.post(url, content=body, headers=headers)).status_code == 200
            now[0] += 60.0  # after the flood: the budget has refilled, the cached settings are stale
            for conn_id in ("openrouter_default", "openrouter_new"):
                url, body, headers = genuine(conn_id, f"job-after-{conn_id}")
                assert (await c.post(url, content=body, headers=headers)).status_code == 200
        return answers

    with caplog.at_level(logging.WARNING):
        answers = asyncio.run(flood())
    assert answers == {"503": 10_000}
    assert len(lookups) <= 20, lookups
    assert lookups.count("openrouter_default") == 2  # once at first, once after the TTL
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 3, warnings
    assert resumed == ["openrouter_default", "openrouter_default", "openrouter_new"]
