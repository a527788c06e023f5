"""The one retry engine: after each exchange, send again (after N seconds, from byte K) or raise what.

Every HTTP call of the provider, whatever library moves its bytes (httpx on the worker, aiohttp in
the triggerer), is a short driver loop around :meth:`RetryPolicy.next_step`: the driver sends,
describes what happened as an :data:`Outcome` (an HTTP error answer, or a broken exchange
classified by its adapter as :attr:`Fault.NOT_SENT`, :attr:`Fault.SENT` or :attr:`Fault.REFUSED`),
and gets back a :class:`Retry` (wait, then send again, resuming a download at a byte offset) or a
:class:`GiveUp` holding the typed exception to raise. Nothing here does I/O or reads a clock:
``now`` and the jitter source are passed in, so every branch is tested without a network.

Rules (money first):

* GETs (poll, download, models) are idempotent: retry connection failures, timeouts, 408, 429
  and 5xx with exponential backoff and full jitter, honouring ``Retry-After`` up to a cap. A
  download cut short resumes at the first byte not yet saved (an HTTP ``Range`` request).
* The submit POST creates a paid job and OpenRouter has no idempotency key. It is retried only
  when we *know* nothing was created (:mod:`airflow_provider_orvideo._internal.submission` says which
  answers prove it) and a retry can help: a 429 answer, a 402 of the in-flight budget (its
  ``error.metadata.limit_source`` says so; it comes with ``Retry-After``), or a failure to connect
  at all (the request never left). A 5xx, a reset or a read timeout after sending may have created a job, so
  it is never retried here; the error raised is
  :class:`~airflow_provider_orvideo.exceptions.SubmitOutcomeUnknownError` (or the 5xx's own).
* A request the HTTP library refused to build (:attr:`Fault.REFUSED`) is never retried: the same
  request fails the same way.

:func:`is_transient` is the one definition of "this may go away": the poll loop counts only such
errors against its patience and ends at once on any other.
"""

from __future__ import annotations

import email.utils
import enum
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from airflow_provider_orvideo._internal.api import ApiRequest, Endpoint, ErrorAnswer, api_error
from airflow_provider_orvideo._internal.submission import NOTHING_CREATED_STATUSES
from airflow_provider_orvideo.exceptions import (
    OpenRouterApiError,
    OpenRouterInFlightBudgetError,
    OpenRouterNotFoundError,
    OpenRouterResponseError,
    OpenRouterTransportError,
    OpenRouterVideoError,
    RequestNotSentError,
    SubmitOutcomeUnknownError,
    VideoDownloadError,
    VideoOutputGoneError,
)

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "Answered",
    "Broken",
    "Fault",
    "GiveUp",
    "Outcome",
    "Retry",
    "RetryPolicy",
]

RETRYABLE_STATUS_CODES = frozenset({408, 429})


def is_retryable_status(status_code: int) -> bool:
    return status_code in RETRYABLE_STATUS_CODES or status_code >= 500


def is_transient(error: OpenRouterVideoError) -> bool:
    """Whether the same call may succeed later (the poll loop's patience counts only these).

    No answer or an unreadable one may be a blip; an HTTP error is transient exactly when the
    retry engine would retry its status; a request the HTTP client refused never will be.
    """
    if isinstance(error, RequestNotSentError):
        return False
    if isinstance(error, OpenRouterInFlightBudgetError):
        return True  # a 402 whose limit_source says: wait for the in-flight budget
    if isinstance(error, (OpenRouterTransportError, OpenRouterResponseError)):
        return True
    return isinstance(error, OpenRouterApiError) and is_retryable_status(error.http_status)


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


_BEARER_TOKEN = re.compile(r"(Bearer)\s+[^\s'\",;]+", re.IGNORECASE)


def redact(text: str, secret: str, *, bearer: bool = True) -> str:
    """``text`` with every form of ``secret`` (raw, stripped, as a Python str/bytes literal would
    show it) and, if ``bearer``, any bearer token replaced: for text from an HTTP library or a server."""
    if secret:
        forms = {
            secret,
            secret.strip(),
            repr(secret)[1:-1],
            repr(secret.encode("utf-8", "backslashreplace"))[2:-1],
        }
        for form in sorted(forms, key=len, reverse=True):
            if len(form) >= 4:
                text = text.replace(form, "[redacted API key]")
    return _BEARER_TOKEN.sub(r"\1 [redacted]", text) if bearer else text


class Fault(str, enum.Enum):
    """How an exchange broke, as the HTTP library's adapter classifies its exception."""

    NOT_SENT = "not sent"
    """No connection was made (refused, DNS, connect timeout, the proxy unreachable): the request
    never left, so even the submit POST may be sent again."""
    SENT = "sent"
    """The exchange broke after the request may have left (reset, read timeout, a body cut short)."""
    REFUSED = "refused"
    """The HTTP library refused to build the request (a URL or header value it cannot send):
    nothing left, and the same request fails the same way."""

    @property
    def request_left(self) -> bool:
        """Whether the request may have reached the server: the one place this is known, written
        onto the error raised (:attr:`OpenRouterVideoError.request_left
        <airflow_provider_orvideo.exceptions.OpenRouterVideoError.request_left>`)."""
        return self is Fault.SENT


@dataclass(frozen=True)
class Answered:
    """The server answered with an HTTP error (status >= 400)."""

    status_code: int
    retry_after: str | None = None
    body: bytes = b""
    received: int = 0
    """Bytes of a download already saved before this exchange (where a retry resumes)."""


@dataclass(frozen=True)
class Broken:
    """The exchange broke without a usable answer."""

    fault: Fault
    reason: str
    """What the library said: ``"ConnectError: ..."`` (``REFUSED``: the exception type only, as its
    text can quote a request header). Redacted again before it reaches a message."""
    about_url: bool = False
    """For ``REFUSED``: the URL (the connection's host), not a header, was refused."""
    received: int = 0
    """Bytes of a download saved before the exchange broke (where a retry resumes)."""


Outcome = Answered | Broken


@dataclass(frozen=True)
class Retry:
    """Wait ``delay`` seconds, then send the request again (a download from byte ``resume_from``)."""

    delay: float
    why: str
    resume_from: int = 0


@dataclass(frozen=True)
class GiveUp:
    """Stop and raise ``error``."""

    error: OpenRouterVideoError


def resume_offset(
    *, requested_from: int, status_code: int, content_range: str | None, content_length: str | None
) -> tuple[int, int | None]:
    """Where a download answer's body starts, and the full length it announces.

    A ranged request (``requested_from`` > 0) answered 206 from exactly that byte continues there;
    any other answer (a 200: the server ignored the range) starts over from byte 0.
    """
    if requested_from and status_code == 206 and content_range:
        span, _, total = content_range.removeprefix("bytes ").partition("/")
        if span.partition("-")[0] == str(requested_from):
            return requested_from, int(total) if total.isdigit() else None
    length = content_length if content_length and content_length.isdigit() else None
    return 0, int(length) if length is not None else None


def _sentence(text: str) -> str:
    """``text`` with its first letter capitalised and the rest as written (``str.capitalize``
    would lower "OpenRouter" and a job id)."""
    return text[:1].upper() + text[1:]


def _content_words(request: ApiRequest) -> str:
    return f"output {request.params.get('index', 0)} of OpenRouter video job {request.job_id}"


def _status_failure(request: ApiRequest, answer: Answered, secret: str) -> OpenRouterVideoError:
    failure = _answer_failure(request, answer, secret)
    failure.request_left = True  # a server answered it
    return failure


def _answer_failure(request: ApiRequest, answer: Answered, secret: str) -> OpenRouterVideoError:
    error = api_error(request.endpoint, answer.status_code, answer.body)
    if secret:  # a server (or a proxy in front of it) echoing the key back
        error.api_message = redact(error.api_message, secret, bearer=False)
        error.args = (redact(str(error), secret, bearer=False),)
    if request.endpoint is Endpoint.CONTENT and isinstance(error, OpenRouterNotFoundError):
        return VideoOutputGoneError(
            f"{_sentence(_content_words(request))} is no longer available (HTTP {answer.status_code}: "
            f"{error.api_message}). The job completed and was billed, but its video can no longer be "
            "fetched; nothing was written to the output path. A retry of this task will find the same; submitting anew "
            "means paying again."
        )
    if request.endpoint is Endpoint.SUBMIT and answer.status_code not in NOTHING_CREATED_STATUSES:
        error.args = (
            f"{error} OpenRouter may still have created a job that will render and bill; the POST was "
            "not retried automatically, to avoid paying for a second video.",
        )
    return error


def _broken_failure(request: ApiRequest, broken: Broken, secret: str, conn_id: str) -> OpenRouterVideoError:
    failure = _exchange_failure(request, broken, secret, conn_id)
    failure.request_left = broken.fault.request_left
    return failure


def _exchange_failure(request: ApiRequest, broken: Broken, secret: str, conn_id: str) -> OpenRouterVideoError:
    if broken.fault is Fault.REFUSED:
        where = f" Check the host (base URL) of the connection {conn_id!r}." if broken.about_url else ""
        return RequestNotSentError(
            f"OpenRouter {request.describe()} was not sent: the HTTP client refused to build the request "
            f"({broken.reason}). The same request would fail again, so it was not retried.{where}"
        )
    reason = redact(broken.reason, secret)
    if request.endpoint is Endpoint.SUBMIT and broken.fault is Fault.SENT:
        return SubmitOutcomeUnknownError(
            f"The submit request (POST /videos) was sent but no answer came back ({reason}). "
            "OpenRouter may have created a job that will render and bill; its id is unknown. "
            "The POST was not retried automatically, to avoid paying for a second video."
        )
    if request.endpoint is Endpoint.CONTENT and broken.fault is Fault.SENT:
        return VideoDownloadError(
            f"Downloading {_content_words(request)} failed after {broken.received:,} bytes ({reason}). "
            "Nothing was written to the output path. The job is complete, so a retry of the task downloads it "
            "again without paying."
        )
    if broken.fault is Fault.NOT_SENT:
        return OpenRouterTransportError(
            f"No answer from OpenRouter for {request.describe()} ({reason}): no connection was made, so "
            "the request never left."
        )
    return OpenRouterTransportError(f"No answer from OpenRouter for {request.describe()} ({reason}).")


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

    def next_step(
        self,
        request: ApiRequest,
        attempt: int,
        outcome: Outcome,
        *,
        now: float,
        secret: str = "",
        conn_id: str = "",
        rand: Callable[[], float] = random.random,
    ) -> Retry | GiveUp:
        """After attempt number ``attempt`` (1-based) of ``request`` came to ``outcome``: what next.

        ``secret`` (the API key) is redacted from every message; ``conn_id`` names the connection
        in the advice of a refused URL.
        """
        idempotent = request.endpoint.idempotent
        resume_from = outcome.received if request.endpoint is Endpoint.CONTENT else 0
        if isinstance(outcome, Answered):
            delay = self.delay_after_status(
                idempotent=idempotent,
                attempt=attempt,
                status_code=outcome.status_code,
                retry_after=parse_retry_after(outcome.retry_after, now=now),
                in_flight=outcome.status_code == 402
                and ErrorAnswer.parse(outcome.body).in_flight_refusal(outcome.status_code),
                rand=rand,
            )
            if delay is None:
                return GiveUp(_status_failure(request, outcome, secret))
            return Retry(delay, f"HTTP {outcome.status_code}", resume_from)
        if outcome.fault is Fault.REFUSED:
            return GiveUp(_broken_failure(request, outcome, secret, conn_id))
        delay = self.delay_after_transport_error(
            idempotent=idempotent, attempt=attempt, request_sent=outcome.fault.request_left, rand=rand
        )
        if delay is None:
            return GiveUp(_broken_failure(request, outcome, secret, conn_id))
        why = outcome.reason.partition(":")[0]
        if request.endpoint is Endpoint.CONTENT and outcome.received:
            why = f"{why}, body cut at {outcome.received:,} bytes"
        return Retry(delay, why, resume_from)

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
        in_flight: bool = False,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before retrying after an HTTP error answer, or None to give up.

        A POST is retried only on an answer that is both transient and proof that nothing was
        created: 429 (OpenRouter creates nothing when it rate-limits), and a 402 of the in-flight
        budget (``in_flight``: its ``limit_source`` says so; any other 402 is final).
        """
        if attempt >= self.max_attempts:
            return None
        retryable = in_flight or (
            is_retryable_status(status_code) and (idempotent or status_code in NOTHING_CREATED_STATUSES)
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
