from __future__ import annotations

import pytest

from airflow_provider_orvideo.retry import RetryPolicy, is_retryable_status, parse_retry_after

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
