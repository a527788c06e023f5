"""Exceptions raised by the OpenRouter video provider.

One class per meaning, so callers (and ``on_failure_callback`` code) can branch on the type and
never on the message text. Every message is written for the on-call reader: what happened,
what happened to the remote job and its cost, and what a retry of the task will do.

Hierarchy::

    OpenRouterVideoError (AirflowException)
    +-- InvalidVideoRequestError (also AirflowFailException: a retry cannot fix bad input)
    |   +-- VideoCostLimitError           (the estimate exceeds ``max_cost_usd``)
    |   |   +-- InsufficientBudgetError   (the key's budget cannot cover it: ``budget_preflight``)
    |   |   +-- SpendBudgetExceededError  (a spend budget across runs cannot hold this estimate)
    |   +-- InvalidOperatorArgumentError  (a wrong type or impossible value, e.g. ``poll_interval=nan``)
    |   +-- InvalidOutputPathError        (``output_path`` cannot receive a video)
    |       +-- OutputExistsError         (a file this task instance did not write is there)
    |       +-- OutputPathCollisionError  (two map indexes render the same ``output_path``)
    +-- InvalidConnectionError            (the ``openrouter`` connection holds an unusable value)
    |   +-- ApiKeyExpiresError            (the key expires before the job could be downloaded)
    +-- OpenRouterApiError                (an HTTP error answer from OpenRouter)
    |   +-- OpenRouterBadRequestError     400, 413
    |   +-- OpenRouterAuthError           401, 403
    |   +-- OpenRouterPaymentRequiredError 402
    |   |   +-- OpenRouterInFlightBudgetError   (in-flight budget full: waits, then sends again)
    |   |   +-- OpenRouterCreditsExhaustedError (no credit left: not retried)
    |   +-- OpenRouterBudgetExceededError 403/402 naming a spent budget layer (not retried)
    |   +-- OpenRouterNotFoundError       404, 410
    |   +-- OpenRouterConflictError       409
    |   +-- OpenRouterRateLimitError      429
    |   +-- OpenRouterServerError         5xx
    +-- OpenRouterTransportError          (no HTTP answer: connect error, reset, timeout)
    +-- OpenRouterResponseError           (an answer that is not what the API documents)
    +-- SubmitOutcomeUnknownError         (the submit POST may or may not have created a job)
    +-- ResubmissionRefusedError          (a retry will not submit: it could pay twice)
    +-- LedgerUnavailableError            (the spend ledger's database cannot be read or written)
    +-- VideoJobError                     (the remote job ended without a video)
    |   +-- VideoJobFailedError
    |   +-- VideoJobCancelledError
    |   +-- VideoJobExpiredError
    |   +-- VideoJobTimeoutError          (our deadline passed; the job may still render)
    |   +-- VideoJobPollingError          (we could not learn the job's status)
    +-- VideoDownloadError                (the output could not be saved completely)
    |   +-- OutputWriteError              (the local or object-store write failed: disk full, denied)
    |   +-- OutputPathUnknownError        (where to save cannot be determined on resume)
    |   +-- VideoOutputGoneError          (OpenRouter no longer serves the output: 404/410)
    +-- TriggerEventError                 (the trigger handed back an event we cannot trust)
    +-- WebhookVerificationError          (an incoming webhook must not be trusted)
        +-- MissingWebhookSignatureError  (no ``X-OpenRouter-Signature`` header)
        +-- MalformedWebhookSignatureError (the header is not ``t=<seconds>,v1=<hex>``)
        +-- WebhookTimestampError         (signed too long ago or too far ahead)
        |   +-- StaleWebhookTimestampError
        |   +-- FutureWebhookTimestampError
        +-- WebhookSignatureMismatchError (no ``v1`` matches: wrong secret or altered body)
        +-- InvalidWebhookPayloadError    (the body is not a documented video event)
        +-- InvalidCallbackTargetError    (the receiver URL's query names no task it could have)
"""

from __future__ import annotations

from typing import Any

from airflow_provider_orvideo._internal.compat import AirflowException, AirflowFailException

__all__ = [
    "ApiKeyExpiresError",
    "FutureWebhookTimestampError",
    "InsufficientBudgetError",
    "InvalidCallbackTargetError",
    "InvalidConnectionError",
    "InvalidOperatorArgumentError",
    "InvalidOutputPathError",
    "InvalidSettingError",
    "InvalidVideoRequestError",
    "InvalidWebhookPayloadError",
    "LedgerUnavailableError",
    "MalformedWebhookSignatureError",
    "MissingWebhookSignatureError",
    "OpenRouterApiError",
    "OpenRouterAuthError",
    "OpenRouterBadRequestError",
    "OpenRouterBudgetExceededError",
    "OpenRouterConflictError",
    "OpenRouterCreditsExhaustedError",
    "OpenRouterInFlightBudgetError",
    "OpenRouterNotFoundError",
    "OpenRouterPaymentRequiredError",
    "OpenRouterRateLimitError",
    "OpenRouterResponseError",
    "OpenRouterServerError",
    "OpenRouterTransportError",
    "OpenRouterVideoError",
    "OutputExistsError",
    "OutputPathCollisionError",
    "OutputPathUnknownError",
    "OutputWriteError",
    "RequestNotSentError",
    "ResubmissionRefusedError",
    "SpendBudgetExceededError",
    "StaleWebhookTimestampError",
    "SubmitOutcomeUnknownError",
    "TriggerEventError",
    "VideoCostLimitError",
    "VideoDownloadError",
    "VideoJobCancelledError",
    "VideoJobError",
    "VideoJobExpiredError",
    "VideoJobFailedError",
    "VideoJobPollingError",
    "VideoJobTimeoutError",
    "VideoOutputGoneError",
    "WebhookSignatureMismatchError",
    "WebhookTimestampError",
    "WebhookVerificationError",
]


NOTHING_SPENT = "Nothing was submitted to OpenRouter and nothing was billed."
"""The last sentence of every refusal raised before the submit POST."""


class OpenRouterVideoError(AirflowException):
    """Base class of every error this provider raises.

    ``request_left`` says whether the HTTP request behind the error left this machine: ``False``
    when it provably never did (no connection was made, the client refused to build it, the
    connection was unusable), ``True`` when it did or may have (an answer came, or the exchange
    broke after sending began), ``None`` when unknown or not about a request. Whether a failed
    submit may have created a paid job rests on it
    (:func:`~airflow_provider_orvideo._internal.submission.submit_created_nothing`), never on the
    class hierarchy. Set per class where the class decides it, per error by the retry engine
    where only the exchange does.
    """

    request_left: bool | None = None


class InvalidVideoRequestError(OpenRouterVideoError, AirflowFailException, ValueError):
    """The request is invalid for the chosen model; raised before any money is spent.

    It subclasses ``AirflowFailException`` so Airflow does not retry: the same input would fail
    the same way.
    """


class VideoCostLimitError(InvalidVideoRequestError):
    """The estimated price exceeds ``max_cost_usd`` (or cannot be estimated under a strict check)."""


class InsufficientBudgetError(VideoCostLimitError):
    """With ``budget_preflight``: the key's effective budget (``GET /key``) cannot cover the
    estimated cost of this video, or is already spent. Raised before paying, not retried."""


class SpendBudgetExceededError(VideoCostLimitError):
    """A spend budget of this deployment (the connection's ``budget_usd``, the operator's
    ``dag_budget_usd``, or one of ``[openrouter] budgets``) cannot hold this job's estimate on top of
    what it already holds; raised before the POST, nothing submitted. Not retried: the budget
    frees up only when its window resets (``resets_at``; the operator's
    ``on_budget_exceeded="wait"`` defers the task until then instead).

    ``budget`` names it; ``limit_usd``, ``spent_usd`` (jobs priced), ``reserved_usd`` (jobs not
    yet priced and live reservations), ``estimate_usd`` (this job) and ``resets_at`` (Unix
    seconds) are the figures the refusal was decided on."""

    def __init__(
        self,
        message: str,
        *,
        budget: str,
        limit_usd: float,
        spent_usd: float,
        reserved_usd: float,
        estimate_usd: float,
        resets_at: float,
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.estimate_usd = estimate_usd
        self.resets_at = resets_at

    @classmethod
    def refusing(cls, use: Any, estimate_usd: float, entry: Any) -> SpendBudgetExceededError:
        """The refusal of ``entry`` (a ledger entry) by ``use`` (a ``budgets.BudgetUse``)."""
        import time as _time

        budget = use.budget
        resets = _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(use.resets_at))
        return cls(
            f"Spend budget {budget.describe()} cannot hold this video: ${use.spent_usd:,.4f} spent and "
            f"${use.reserved_usd:,.4f} reserved by jobs not yet priced, so ${max(budget.limit_usd - use.held_usd, 0):,.4f} "
            f"is left, and this {entry.model or 'video'} is estimated at ${estimate_usd:,.4f} "
            f"(task {entry.dag_id}.{entry.task_id}, map index {entry.map_index}). The budget frees up at "
            f"{resets}. {NOTHING_SPENT} A retry is refused the same way until then; raise the budget, or "
            'set on_budget_exceeded="wait" to wait for the reset.',
            budget=budget.name,
            limit_usd=budget.limit_usd,
            spent_usd=use.spent_usd,
            reserved_usd=use.reserved_usd,
            estimate_usd=estimate_usd,
            resets_at=use.resets_at,
        )


class InvalidOperatorArgumentError(InvalidVideoRequestError):
    """An operator argument has a wrong type or an impossible value (``job_timeout=inf``,
    ``poll_interval="30"``, ``max_consecutive_poll_failures=0`` ...).

    Raised when the DAG is parsed for arguments that are not templated, and after rendering,
    before any request, for templated ones.
    """


class InvalidOutputPathError(InvalidVideoRequestError):
    """``output_path`` cannot receive the video: empty, a directory, relative, a ``file://`` URI
    naming another host, or under a parent that cannot be created. Raised before paying."""


class OutputExistsError(InvalidOutputPathError):
    """A file that this task instance did not write is at ``output_path`` and ``overwrite`` is off.

    Raised before paying, so neither the existing video nor money is lost.
    """


class OutputPathCollisionError(InvalidOutputPathError):
    """Two map indexes of one mapped task render the same ``output_path``: each would pay for a
    video and all but one would be lost. Raised before paying."""


class InvalidConnectionError(OpenRouterVideoError, AirflowFailException):
    """The ``openrouter`` connection holds a value that cannot be used (e.g. an API key that
    cannot be sent in an HTTP header). Raised before any request; the message names the
    connection and the field, never the value of a secret."""

    request_left = False


class ApiKeyExpiresError(InvalidConnectionError):
    """With ``budget_preflight``: the connection's key expires (``GET /key``'s ``expires_at``)
    before the job could be waited for and downloaded (``job_timeout`` from now). Raised before
    paying, not retried: a job submitted now could be paid for and never fetched."""


class InvalidSettingError(OpenRouterVideoError, AirflowFailException):
    """An Airflow setting read by this provider (``[openrouter] loopback_poll_scale``,
    ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE``) holds a value that cannot be used. Raised before
    any request; not retried (the deployment's configuration has to change)."""


class LedgerUnavailableError(OpenRouterVideoError):
    """The spend ledger's database could not be read or written (``[openrouter] ledger_conn_id``
    or the SQLite file in ``AIRFLOW_HOME``). Before the POST nothing was submitted and a retry
    tries again; after it, the job and its video are kept and only the ledger row is missing."""


class OpenRouterApiError(OpenRouterVideoError):
    """OpenRouter answered with an HTTP error.

    ``http_status`` is the HTTP status code (``status_code`` is taken by ``AirflowException``);
    ``api_message`` is OpenRouter's ``error.message`` verbatim; ``error_type`` is
    ``error.metadata.error_type`` when present.
    """

    request_left = True
    """An HTTP answer came back: the request reached a server."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int = 0,
        api_message: str = "",
        error_type: str | None = None,
    ) -> None:
        # Keyword defaults keep ``AirflowException.serialize()`` round trips (message only) valid.
        super().__init__(message)
        self.http_status = http_status
        self.api_message = api_message
        self.error_type = error_type


class OpenRouterBadRequestError(OpenRouterApiError):
    """400 or 413: OpenRouter rejected the request's content; nothing was created."""


class OpenRouterAuthError(OpenRouterApiError):
    """401 or 403: OpenRouter refused the API key, or it is not allowed to do this (a connection
    without a key is an :class:`InvalidConnectionError`, raised before any request)."""


class OpenRouterPaymentRequiredError(OpenRouterApiError):
    """402: OpenRouter will not spend for this request now; nothing was created. Raised as one of
    its two kinds: :class:`OpenRouterInFlightBudgetError` (wait and send again) or
    :class:`OpenRouterCreditsExhaustedError` (add credits)."""


class OpenRouterInFlightBudgetError(OpenRouterPaymentRequiredError):
    """402 ``in_flight_budget_exhausted`` (``limit_source: openrouter_in_flight_budget``): the
    estimated cost of the account's running requests fills its in-flight budget. Transient and
    nothing was created: the submit waits for ``Retry-After`` and is sent again (a bounded number
    of times); past that, a retry of the task submits again without paying twice."""


class OpenRouterCreditsExhaustedError(OpenRouterPaymentRequiredError, AirflowFailException):
    """Any other 402: the account has no credit left for this request (or one request's estimate
    exceeds the whole in-flight budget, ``weight_exceeds_budget``). Nothing was created; not
    retried: the same request fails the same way until credits are added."""


class OpenRouterBudgetExceededError(OpenRouterApiError, AirflowFailException):
    """A budget layer is spent (403, or 402, whose ``error.metadata.limit_source`` names a guardrail
    budget, a workspace budget or the key's own limit): OpenRouter refuses every paid request
    through this key until the layer resets. Nothing was created; not retried.

    ``limit_source``, ``scope``, ``limit_usd``, ``spend_usd`` and ``resets_at`` are OpenRouter's
    ``error.metadata`` values (None when absent); the message names the layer, the spend, the
    limit and the reset."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int = 0,
        api_message: str = "",
        error_type: str | None = None,
        limit_source: str | None = None,
        scope: str | None = None,
        limit_usd: float | None = None,
        spend_usd: float | None = None,
        resets_at: str | None = None,
    ) -> None:
        super().__init__(message, http_status=http_status, api_message=api_message, error_type=error_type)
        self.limit_source = limit_source
        self.scope = scope
        self.limit_usd = limit_usd
        self.spend_usd = spend_usd
        self.resets_at = resets_at


class OpenRouterNotFoundError(OpenRouterApiError):
    """404 or 410: the model, job or output does not exist (any more)."""


class OpenRouterConflictError(OpenRouterApiError):
    """409: the job is not in a state that allows this call (e.g. output not ready)."""


class OpenRouterRateLimitError(OpenRouterApiError):
    """429: rate limited, still after our own retries."""


class OpenRouterServerError(OpenRouterApiError):
    """5xx: OpenRouter or the upstream provider failed, still after our own retries."""


class OpenRouterTransportError(OpenRouterVideoError):
    """No HTTP answer at all (connection refused or reset, timeout), after our own retries.

    ``request_left`` is ``False`` by default (the submit's transport error is raised only when no
    connection was made: a lost answer is a :class:`SubmitOutcomeUnknownError`); the retry engine
    sets it ``True`` on an error whose exchange broke after the request was sent.
    """

    request_left: bool | None = False


class RequestNotSentError(OpenRouterTransportError):
    """The HTTP client refused to build the request (a URL or header value it cannot send).

    Nothing left the worker, so nothing was created or billed; the same request fails the same
    way, so it is never retried. Usually the connection's host (base URL) is unusable."""

    request_left = False


class OpenRouterResponseError(OpenRouterVideoError):
    """OpenRouter answered 2xx with a body that does not match the documented shape."""

    request_left = True


class SubmitOutcomeUnknownError(OpenRouterVideoError):
    """The submit POST was sent but its answer was lost (connection reset, timeout).

    A 5xx answer to the submit is an :class:`OpenRouterServerError` carrying the same warning;
    in both cases the task's intent record stays, so a retry will not submit blindly.

    OpenRouter may have created, and may bill, a job whose id we never learned. The POST is
    deliberately not retried automatically: a blind retry can pay for a second video.
    """

    request_left = True


class ResubmissionRefusedError(OpenRouterVideoError, AirflowFailException):
    """A retry found an earlier submission it cannot re-attach to and will not pay for again.

    Raised when an earlier try's submit answer was lost (``orphan_policy="fail"``) or its job
    failed and ``resubmit_failed_jobs`` is off. Not retried: the same record gives the same answer.
    """


class VideoJobError(OpenRouterVideoError):
    """The remote job ended without a video we could fetch."""

    def __init__(self, message: str, *, job_id: str = "", remote_error: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.remote_error = remote_error


class VideoJobFailedError(VideoJobError):
    """OpenRouter reports the job ``failed`` (e.g. a content policy violation)."""


class VideoJobCancelledError(VideoJobError):
    """OpenRouter reports the job ``cancelled``."""


class VideoJobExpiredError(VideoJobError):
    """OpenRouter reports the job ``expired``: it exceeded its maximum time to live."""


class VideoJobTimeoutError(VideoJobError):
    """Our own deadline passed before the job finished; the job may still render and bill."""


class VideoJobPollingError(VideoJobError):
    """Polling gave up (too many consecutive failures, or a permanent error such as 401/404)."""


class VideoDownloadError(OpenRouterVideoError):
    """The finished video could not be saved completely; nothing was left at the output path."""


class OutputWriteError(VideoDownloadError):
    """Writing the finished video failed on the worker's side (disk full, permission denied,
    read-only filesystem ...), not in the network. The job is complete and paid; a retry of the
    task downloads it again without paying."""


class OutputPathUnknownError(VideoDownloadError):
    """The job is complete and paid, but where to save it cannot be determined on resume (the
    output path no longer renders to a usable location): waiting does not help; a retry does,
    once the path is fixed."""


class VideoOutputGoneError(VideoDownloadError):
    """OpenRouter no longer serves an output of a completed (paid) job: 404 or 410 on its content.

    A retry finds the same. For a job with several outputs, the others are still saved."""


class TriggerEventError(OpenRouterVideoError):
    """``execute_complete`` received an event that is missing, malformed or of an unknown status."""


class WebhookVerificationError(OpenRouterVideoError):
    """An incoming webhook failed verification or parsing; do not act on it.

    Raised by :mod:`airflow_provider_orvideo.webhooks` in a receiver endpoint, never in a task.
    Messages never contain the signing secret or the expected signature.
    """


class MissingWebhookSignatureError(WebhookVerificationError):
    """The request has no ``X-OpenRouter-Signature`` header (or an empty one).

    OpenRouter sends it only when a signing secret is configured in the workspace settings.
    """


class MalformedWebhookSignatureError(WebhookVerificationError):
    """The signature header is not ``t=<unix seconds>,v1=<64 hex digits>[,v1=...]``."""


class WebhookTimestampError(WebhookVerificationError):
    """The signed timestamp is outside the accepted window around our clock.

    ``timestamp`` is the header's ``t`` and ``skew_seconds`` is ``now - t`` (negative when the
    timestamp lies in the future).
    """

    def __init__(self, message: str, *, timestamp: int = 0, skew_seconds: float = 0.0) -> None:
        # Keyword defaults keep ``AirflowException.serialize()`` round trips (message only) valid.
        super().__init__(message)
        self.timestamp = timestamp
        self.skew_seconds = skew_seconds


class StaleWebhookTimestampError(WebhookTimestampError):
    """The signature is older than the tolerance: a late redelivery, a replay, or our clock is ahead."""


class FutureWebhookTimestampError(WebhookTimestampError):
    """The signature is dated further ahead than the tolerance: our clock is probably behind."""


class WebhookSignatureMismatchError(WebhookVerificationError):
    """No ``v1`` value matches: the secret differs from the workspace's, or the body was altered."""


class InvalidWebhookPayloadError(WebhookVerificationError, ValueError):
    """The body is not JSON, or not a documented ``video.generation.*`` event."""


class InvalidCallbackTargetError(WebhookVerificationError):
    """The query of the receiver's URL (which connection, which task instance) is not one the
    operator writes: a parameter twice or empty, or a partial task identity. Answered with 400."""
