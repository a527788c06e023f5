from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_orvideo._internal.api import content_request, get_job_request, submit_request
from airflow_provider_orvideo._internal.submission import NOTHING_CREATED_STATUSES
from airflow_provider_orvideo.exceptions import (
    OpenRouterRateLimitError,
    OpenRouterServerError,
    OpenRouterTransportError,
    RequestNotSentError,
    SubmitOutcomeUnknownError,
    VideoDownloadError,
    VideoOutputGoneError,
)
from airflow_provider_orvideo.retry import (
    Answered,
    Broken,
    Fault,
    GiveUp,
    Retry,
    RetryPolicy,
    is_retryable_status,
    is_transient,
    parse_retry_after,
    resume_offset,
)

POLICY = RetryPolicy(max_attempts=4, initial_delay=1.0, multiplier=2.0, max_delay=5.0, max_retry_after=60.0)


def always_max() -> float:
    return 1.0


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (400, False),
        (401, False),
        (404, False),
        (409, False),
    ],
)
def test_retryable_statuses(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


def test_backoff_is_exponential_capped_and_jittered() -> None:
    assert [POLICY.backoff(n, always_max) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert POLICY.backoff(3, lambda: 0.25) == 1.0


def test_get_retries_5xx_until_attempts_run_out() -> None:
    delays = [
        POLICY.delay_after_status(
            idempotent=True, attempt=n, status_code=503, retry_after=None, rand=always_max
        )
        for n in range(1, 5)
    ]
    assert delays == [1.0, 2.0, 4.0, None]


def test_post_is_retried_on_429_only() -> None:
    assert (
        POLICY.delay_after_status(
            idempotent=False, attempt=1, status_code=429, retry_after=None, rand=always_max
        )
        == 1.0
    )
    for status in (500, 502, 503, 408):
        assert (
            POLICY.delay_after_status(idempotent=False, attempt=1, status_code=status, retry_after=None)
            is None
        )


def test_retry_after_wins_and_is_capped() -> None:
    assert POLICY.delay_after_status(idempotent=True, attempt=1, status_code=429, retry_after=7.0) == 7.0
    # A server asking for more than the cap gets its error surfaced instead of a long block.
    assert POLICY.delay_after_status(idempotent=True, attempt=1, status_code=429, retry_after=600.0) is None


def test_transport_errors_post_only_when_never_sent() -> None:
    assert (
        POLICY.delay_after_transport_error(idempotent=False, attempt=1, request_sent=False, rand=always_max)
        == 1.0
    )
    assert POLICY.delay_after_transport_error(idempotent=False, attempt=1, request_sent=True) is None
    assert (
        POLICY.delay_after_transport_error(idempotent=True, attempt=1, request_sent=True, rand=always_max)
        == 1.0
    )
    assert POLICY.delay_after_transport_error(idempotent=True, attempt=4, request_sent=True) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 2.5 ", 2.5),
        ("-4", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("Tue, 24 Nov 2026 09:00:10 GMT", 10.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = 1795510800.0  # 2026-11-24 09:00:00 UTC
    assert parse_retry_after(header, now=now) == expected


# -- the engine: next_step -------------------------------------------------------------------------

SUBMIT = submit_request({"model": "m", "prompt": "p"})
POLL = get_job_request("gen-1")
CONTENT = content_request("gen-1", 2)


def step(request: object, attempt: int, outcome: Answered | Broken, **kwargs: object) -> Retry | GiveUp:
    return POLICY.next_step(request, attempt, outcome, now=0.0, rand=always_max, **kwargs)  # type: ignore[arg-type]


def test_a_poll_retries_transport_faults_and_retryable_answers() -> None:
    assert step(POLL, 1, Broken(Fault.NOT_SENT, "ConnectError: refused")) == Retry(1.0, "ConnectError")
    assert step(POLL, 2, Broken(Fault.SENT, "ReadTimeout: x")) == Retry(2.0, "ReadTimeout")
    assert step(POLL, 1, Answered(503, "7")) == Retry(7.0, "HTTP 503")
    last = step(POLL, 4, Answered(503))
    assert isinstance(last, GiveUp)
    assert isinstance(last.error, OpenRouterServerError)


def test_a_submit_is_retried_only_when_nothing_can_have_been_created() -> None:
    assert isinstance(step(SUBMIT, 1, Broken(Fault.NOT_SENT, "ConnectError: refused")), Retry)
    assert isinstance(step(SUBMIT, 1, Answered(429, "1")), Retry)
    lost = step(SUBMIT, 1, Broken(Fault.SENT, "RemoteProtocolError: reset"))
    assert isinstance(lost, GiveUp)
    assert isinstance(lost.error, SubmitOutcomeUnknownError)
    server = step(SUBMIT, 1, Answered(502))
    assert isinstance(server, GiveUp)
    assert "may still have created a job" in str(server.error)


def test_a_refused_request_is_never_retried_and_keeps_only_the_type_name() -> None:
    for request in (SUBMIT, POLL, CONTENT):
        refused = step(request, 1, Broken(Fault.REFUSED, "UnsupportedProtocol", about_url=True), conn_id="c")
        assert isinstance(refused, GiveUp)
        assert type(refused.error) is RequestNotSentError
        assert "(UnsupportedProtocol)" in str(refused.error)
        assert "connection 'c'" in str(refused.error)
        assert not is_transient(refused.error)


def test_a_download_resumes_where_its_body_was_cut() -> None:
    assert step(CONTENT, 1, Broken(Fault.SENT, "ReadError: x", received=5000)) == Retry(
        1.0, "ReadError, body cut at 5,000 bytes", resume_from=5000
    )
    assert step(CONTENT, 1, Answered(503, "0", received=700)) == Retry(0.0, "HTTP 503", resume_from=700)
    cut = step(CONTENT, 4, Broken(Fault.SENT, "ReadError: x", received=5000))
    assert isinstance(cut, GiveUp)
    assert type(cut.error) is VideoDownloadError
    assert "output 2 of OpenRouter video job gen-1 failed after 5,000 bytes" in str(cut.error)
    gone = step(CONTENT, 1, Answered(410))
    assert isinstance(gone, GiveUp)
    assert type(gone.error) is VideoOutputGoneError
    unreachable = step(CONTENT, 4, Broken(Fault.NOT_SENT, "ConnectError: refused"))
    assert isinstance(unreachable, GiveUp)
    assert type(unreachable.error) is OpenRouterTransportError


def test_messages_never_carry_the_key() -> None:
    key = "sk-or-v1-" + "ab" * 20
    broken = step(
        POLL, 4, Broken(Fault.SENT, f"LocalProtocolError: Illegal header value b'Bearer {key}'"), secret=key
    )
    answered = step(
        POLL, 1, Answered(401, body=b'{"error": {"message": "bad key ' + key.encode() + b'"}}'), secret=key
    )
    for decision in (broken, answered):
        assert isinstance(decision, GiveUp)
        assert key not in str(decision.error)


@given(
    status=st.integers(min_value=400, max_value=599),
    attempt=st.integers(min_value=1, max_value=10),
    retry_after=st.one_of(
        st.none(), st.sampled_from(["0", "1.5", "600", "soon", "Thu, 01 Jan 1970 00:00:00 GMT"])
    ),
)
def test_a_submit_answer_is_retried_only_when_it_proves_nothing_was_created(
    status: int, attempt: int, retry_after: str | None
) -> None:
    decision = step(SUBMIT, attempt, Answered(status, retry_after))
    if isinstance(decision, Retry):
        assert status in NOTHING_CREATED_STATUSES
        assert attempt < POLICY.max_attempts
        assert decision.resume_from == 0
    else:
        assert decision.error.http_status == status  # type: ignore[attr-defined]


@given(fault=st.sampled_from(list(Fault)), attempt=st.integers(min_value=1, max_value=10))
def test_a_broken_submit_is_retried_only_when_it_never_left(fault: Fault, attempt: int) -> None:
    decision = step(SUBMIT, attempt, Broken(fault, "X: y"))
    assert isinstance(decision, Retry) is (fault is Fault.NOT_SENT and attempt < POLICY.max_attempts)


@pytest.mark.parametrize(
    ("requested_from", "status", "content_range", "content_length", "expected"),
    [
        (0, 200, None, "1000", (0, 1000)),
        (0, 200, None, None, (0, None)),
        (400, 206, "bytes 400-999/1000", "600", (400, 1000)),
        (400, 206, "bytes 400-999/*", "600", (400, None)),
        (400, 200, None, "1000", (0, 1000)),  # the server ignored the range: start over
        (400, 206, "bytes 0-999/1000", "1000", (0, 1000)),  # a range we did not ask for
    ],
)
def test_resume_offset(
    requested_from: int,
    status: int,
    content_range: str | None,
    content_length: str | None,
    expected: tuple[int, int | None],
) -> None:
    assert (
        resume_offset(
            requested_from=requested_from,
            status_code=status,
            content_range=content_range,
            content_length=content_length,
        )
        == expected
    )


def test_transient_is_the_retryable_statuses() -> None:
    assert is_transient(OpenRouterRateLimitError("x", http_status=429))
    assert is_transient(OpenRouterServerError("x", http_status=502))
    assert is_transient(OpenRouterTransportError("reset"))
    assert not is_transient(RequestNotSentError("refused"))


@given(
    request=st.sampled_from([SUBMIT, POLL, CONTENT]),
    fault=st.sampled_from(list(Fault)),
    received=st.integers(min_value=0, max_value=10_000),
)
def test_every_broken_exchange_says_whether_its_request_left(
    request: object, fault: Fault, received: int
) -> None:
    """The adapter's classification is written onto the error, whatever its class: never unknown."""
    decision = POLICY.next_step(
        request, POLICY.max_attempts, Broken(fault, "X: y", received=received), now=0.0
    )  # type: ignore[arg-type]
    assert isinstance(decision, GiveUp)
    assert decision.error.request_left is (fault is Fault.SENT)


@given(request=st.sampled_from([SUBMIT, POLL, CONTENT]), status=st.integers(min_value=400, max_value=599))
def test_every_error_answer_says_its_request_left(request: object, status: int) -> None:
    decision = POLICY.next_step(request, POLICY.max_attempts, Answered(status), now=0.0)  # type: ignore[arg-type]
    assert isinstance(decision, GiveUp)
    assert decision.error.request_left is True


def test_the_submit_whose_answer_was_lost_left_and_one_never_sent_did_not() -> None:
    lost = step(SUBMIT, 1, Broken(Fault.SENT, "RemoteProtocolError: reset"))
    unreachable = step(SUBMIT, POLICY.max_attempts, Broken(Fault.NOT_SENT, "ConnectError: refused"))
    assert isinstance(lost, GiveUp)
    assert isinstance(lost.error, SubmitOutcomeUnknownError)
    assert lost.error.request_left is True
    assert isinstance(unreachable, GiveUp)
    assert type(unreachable.error) is OpenRouterTransportError
    assert unreachable.error.request_left is False
