"""When to retry an HTTP call, and how long to wait: one pure decision for sync and async.

Rules (money first):

* GETs (poll, download, models) are idempotent: retry connection failures, timeouts, 408, 429
  and 5xx with exponential backoff and full jitter, honouring ``Retry-After`` up to a cap.
* The submit POST creates a paid job and OpenRouter has no idempotency key. It is retried only
  when we *know* nothing was created (:mod:`airflow_provider_orvideo.submission` says which
  answers prove it) and a retry can help: a 429 answer, or a failure to connect at all (the
  request never left). A 5xx, a reset or a read timeout after sending may have created a job, so it is
  never retried here; the caller reports :class:`~airflow_provider_orvideo.exceptions.SubmitOutcomeUnknownError`.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable
from dataclasses import dataclass

from airflow_provider_orvideo.submission import NOTHING_CREATED_STATUSES

RETRYABLE_STATUS_CODES = frozenset({408, 429})


def is_retryable_status(status_code: int) -> bool:
    return status_code in RETRYABLE_STATUS_CODES or status_code >= 500


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped, honouring a capped ``Retry-After``.

    ``max_attempts`` counts the first try: 5 means up to 4 retries.
    """

    max_attempts: int = 5
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Delay before retry number ``attempt`` (1-based), without a server hint."""
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return ceiling * rand()

    def delay_after_status(
        self,
        *,
        idempotent: bool,
        attempt: int,
        status_code: int,
        retry_after: float | None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before retrying after an HTTP error answer, or None to give up.

        A POST is retried only on an answer that is both transient and proof that nothing was
        created: 429 (OpenRouter creates nothing when it rate-limits).
        """
        if attempt >= self.max_attempts:
            return None
        retryable = is_retryable_status(status_code) and (
            idempotent or status_code in NOTHING_CREATED_STATUSES
        )
        if not retryable:
            return None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None  # the server asks for longer than we will block; surface the error
            return retry_after
        return self.backoff(attempt, rand)

    def delay_after_transport_error(
        self,
        *,
        idempotent: bool,
        attempt: int,
        request_sent: bool,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before retrying after a connection failure, or None to give up.

        ``request_sent`` is False only when the connection could not be opened, in which case
        even a POST is safe to retry.
        """
        if attempt >= self.max_attempts or (not idempotent and request_sent):
            return None
        return self.backoff(attempt, rand)


DEFAULT_RETRY_POLICY = RetryPolicy()
