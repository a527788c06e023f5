"""A small client for the emulator's ``/_emulator`` control endpoints, for tests."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Literal

import httpx

Endpoint = Literal["submit", "poll", "content", "models", "key", "generation", "any"]
"""Which API requests a fault hits: ``submit`` (``POST /videos``), ``poll`` (``GET
/videos/{id}``), ``content`` (``GET /videos/{id}/content``), ``models`` (``GET
/videos/models``), ``key`` (``GET /key``), ``generation`` (``GET /generation?id=``); ``any`` is
every one of them."""
JobOutcome = Literal["completed", "failed", "cancelled", "expired"]
OutageKind = Literal["503", "reset"]
BudgetLayer = Literal["guardrail", "workspace", "key_limit"]
"""A budget layer, in the order OpenRouter checks them (see ``budgets.py``)."""
BudgetScope = Literal[
    "workspace_default_member", "workspace_default_key", "member", "api_key", "workspace", "key_limit"
]
ResetInterval = Literal["daily", "weekly", "monthly"]


def _duration(times: int | None, for_seconds: float | None) -> dict[str, Any]:
    """The ``times``/``for_seconds`` fields of a fault: 1 time unless a window is given."""
    if for_seconds is None:
        return {"times": 1 if times is None else times}
    return {"for_seconds": for_seconds} if times is None else {"times": times, "for_seconds": for_seconds}


class EmulatorControl:
    """Scripts an emulator and reads back what it saw; works across processes over HTTP.

    ``url`` may be the origin (``http://127.0.0.1:PORT``) or the API base URL ending in
    ``/api/v1``, so the same connection string that configures a client can be reused.
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        origin = url.rstrip("/").removesuffix("/api/v1")
        self._client = httpx.Client(base_url=f"{origin}/_emulator", timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> EmulatorControl:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._client.request(method, path, **kwargs)
        if response.is_error:
            raise RuntimeError(f"emulator control {method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def reset(self) -> None:
        """Forget all jobs, faults, budgets and logged requests; restore the server's job defaults
        and a key that never expires."""
        self._call("POST", "/reset")

    def set_job_defaults(self, **fields: Any) -> dict[str, Any]:
        """Change how jobs submitted from now on behave; returns the resulting defaults."""
        result: dict[str, Any] = self._call("POST", "/job-defaults", json=fields)["job_defaults"]
        return result

    def add_fault(self, endpoint: str, kind: str, **fields: Any) -> dict[str, Any]:
        """Queue a fault (see ``faults.py`` for kinds and fields); returns it as stored."""
        result: dict[str, Any] = self._call(
            "POST", "/faults", json={"endpoint": endpoint, "kind": kind, **fields}
        )["fault"]
        return result

    # -- typed scripting (what a DAG author's test needs; add_fault takes every raw field) --------
    #
    # Every fault lasts ``times`` matching requests (1 by default), or, given ``for_seconds``,
    # hits every matching request for that many seconds from this call (server's monotonic
    # clock); given both, it ends at whichever comes first. Faults of one endpoint apply in the
    # order they were scripted; a fault for an endpoint of its own goes before an ``any`` one.

    def jobs_take(self, seconds: float, *, pending_share: float = 0.4) -> None:
        """Jobs submitted from now on finish ``seconds`` after their submission (``pending`` for
        the first ``pending_share`` of it, then ``in_progress``)."""
        self.set_job_defaults(
            pending_seconds=seconds * pending_share, in_progress_seconds=seconds * (1 - pending_share)
        )

    def jobs_end_as(
        self, outcome: JobOutcome, *, error: str | None = None, cost: float | None = None
    ) -> None:
        """Jobs submitted from now on end ``outcome`` (with ``error`` as their message).

        ``cost``: what a job ending failed, cancelled or expired is charged at its end (the job
        setting ``failed_cost``), as upstream providers that bill failed renders do; its poll
        view then reports ``usage.cost`` too. None (the default): such a job costs nothing.
        For a completed job's cost use :meth:`jobs_cost`."""
        if outcome == "completed" and cost is not None:
            raise ValueError(
                "cost applies to jobs that end without a video; use jobs_cost() for completed jobs"
            )
        self.set_job_defaults(outcome=outcome, error=error, failed_cost=cost)

    def jobs_cost(self, usd: float | None) -> None:
        """The ``usage.cost`` of jobs submitted from now on; ``None``: the model's list price."""
        self.set_job_defaults(cost=usd)

    def jobs_without_cost(self) -> None:
        """Jobs submitted from now on report ``usage.cost: null``."""
        self.set_job_defaults(cost_reported=False)

    def webhook_copies(self, copies: int) -> None:
        """How many times each webhook event of jobs submitted from now on is delivered: 0 loses
        it, 2 sends a duplicate (same idempotency key)."""
        self.set_job_defaults(webhook_copies=copies)

    def webhooks(self) -> list[dict[str, Any]]:
        """Every webhook delivery attempt since the last reset (job, type, url, attempt, status)."""
        result: list[dict[str, Any]] = self._call("GET", "/webhooks")["webhooks"]
        return result

    def ignore_ranges(self) -> None:
        """Downloads of jobs submitted from now on ignore ``Range``: always 200, the whole video."""
        self.set_job_defaults(honour_range=False)

    def fail_requests(
        self,
        endpoint: Endpoint,
        status: int,
        *,
        times: int | None = None,
        for_seconds: float | None = None,
        retry_after: float | None = None,
        message: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """The next ``times`` requests to ``endpoint`` (or all for ``for_seconds``) get HTTP
        ``status`` in OpenRouter's error shape (with ``Retry-After``; ``error.metadata`` is
        ``metadata``, else what OpenRouter sends with that status). A 404 of ``poll`` or
        ``content`` says ``Job <id> not found`` unless ``message`` says otherwise."""
        fields: dict[str, Any] = {"status": status, **_duration(times, for_seconds)}
        if retry_after is not None:
            fields["retry_after"] = retry_after
        if message is not None:
            fields["message"] = message
        if metadata is not None:
            fields["metadata"] = metadata
        self.add_fault(endpoint, "status", **fields)

    def rate_limit(
        self,
        endpoint: Endpoint = "submit",
        *,
        times: int | None = None,
        for_seconds: float | None = None,
        retry_after: float = 1.0,
    ) -> None:
        """The next ``times`` requests to ``endpoint`` (or all for ``for_seconds``) get 429 with
        ``Retry-After``."""
        self.fail_requests(
            endpoint,
            429,
            times=times,
            for_seconds=for_seconds,
            retry_after=retry_after,
            message="Rate limit exceeded",
        )

    def in_flight_budget_exhausted(
        self, *, times: int | None = None, for_seconds: float | None = None, retry_after: float = 1.0
    ) -> None:
        """The next ``times`` submits (or all for ``for_seconds``) are refused with OpenRouter's
        402 of a full in-flight budget (the estimated cost of the account's running requests):
        ``error.metadata`` ``{"limit_source": "openrouter_in_flight_budget", "error_type":
        "in_flight_budget_exhausted"}``, with ``Retry-After``. Transient; nothing is created."""
        self.fail_requests(
            "submit",
            402,
            times=times,
            for_seconds=for_seconds,
            retry_after=retry_after,
            message="In-flight budget exhausted: the estimated cost of requests in flight exceeds "
            "the account's in-flight budget",
            metadata={
                "limit_source": "openrouter_in_flight_budget",
                "error_type": "in_flight_budget_exhausted",
            },
        )

    def weight_exceeds_budget(self, *, times: int | None = None, for_seconds: float | None = None) -> None:
        """The next ``times`` submits (or all for ``for_seconds``) are refused with OpenRouter's
        402 for one request whose estimate exceeds the whole in-flight budget: ``error.metadata``
        ``{"limit_source": "openrouter_credits", "error_type": "weight_exceeds_budget"}``, no
        ``Retry-After``. Not retryable (waiting frees nothing); nothing is created."""
        self.fail_requests(
            "submit",
            402,
            times=times,
            for_seconds=for_seconds,
            message="Request weight exceeds the account's in-flight budget: add credits",
            metadata={"limit_source": "openrouter_credits", "error_type": "weight_exceeds_budget"},
        )

    def drop_connections(
        self, endpoint: Endpoint, *, times: int | None = None, for_seconds: float | None = None
    ) -> None:
        """The next ``times`` requests to ``endpoint`` (or all for ``for_seconds``) see their
        connection reset, unanswered."""
        self.add_fault(endpoint, "reset", **_duration(times, for_seconds))

    def slow_requests(
        self,
        endpoint: Endpoint,
        seconds: float,
        *,
        times: int | None = None,
        for_seconds: float | None = None,
    ) -> None:
        """The next ``times`` requests to ``endpoint`` (or all for ``for_seconds``) are answered
        ``seconds`` late."""
        self.add_fault(endpoint, "delay", seconds=seconds, **_duration(times, for_seconds))

    def truncate_downloads(
        self, *, at_byte: int | None = None, times: int | None = None, for_seconds: float | None = None
    ) -> None:
        """The next ``times`` downloads (or all for ``for_seconds``) stop after ``at_byte`` bytes
        (default: half the video)."""
        fields: dict[str, Any] = _duration(times, for_seconds)
        if at_byte is not None:
            fields["truncate_at"] = at_byte
        self.add_fault("content", "truncate", **fields)

    def outage(self, seconds: float, *, kind: OutageKind = "503", retry_after: float | None = None) -> None:
        """OpenRouter is down for ``seconds`` from now: every API request (submit, poll, content,
        models) gets 503 (``kind="503"``, with ``Retry-After`` if given) or has its connection
        reset (``kind="reset"``). Jobs keep rendering on their own timeline meanwhile."""
        if kind == "503":
            self.fail_requests("any", 503, for_seconds=seconds, retry_after=retry_after)
        elif kind == "reset":
            if retry_after is not None:
                raise ValueError("retry_after applies only to kind='503'")
            self.drop_connections("any", for_seconds=seconds)
        else:
            raise ValueError(f"kind must be '503' or 'reset', not {kind!r}")

    # -- the key: budgets and expiry (GET /api/v1/key shows them) ---------------------------------
    #
    # A budget's spend grows when a job is billed, which is when it completes (OpenRouter charges
    # a request when it finishes), never at submit. While a budget is spent (spend >= limit) every
    # submit is answered 403 naming it in ``error.metadata`` and creates nothing; polls and
    # downloads go on. See ``budgets.py`` for the layers, their order and their windows.

    def set_budget(
        self,
        limit_usd: float,
        *,
        layer: BudgetLayer = "key_limit",
        scope: BudgetScope | None = None,
        reset_interval: ResetInterval | None = None,
        spend_usd: float = 0.0,
        resets_at: float | None = None,
    ) -> dict[str, Any]:
        """Budget the key from now on; returns the budget as ``GET /key`` shows it.

        ``layer``: ``key_limit`` (the key's own credit limit), ``workspace`` or ``guardrail``
        (``scope`` one of ``workspace_default_member``, ``workspace_default_key``, ``member``,
        ``api_key``, the default). One budget per scope: setting it again replaces it.
        ``spend_usd`` was spent before (``spend_usd=limit_usd``: a budget already spent).
        ``reset_interval`` ``daily``/``weekly``/``monthly`` (UTC, weeks from Monday; None: a
        lifetime budget); ``resets_at`` (Unix time) ends the first window early, e.g.
        ``time.time() + 2`` for a spent budget that lets submits through again in 2 s."""
        fields = {
            "layer": layer,
            "scope": scope,
            "limit_usd": limit_usd,
            "spend_usd": spend_usd,
            "reset_interval": reset_interval,
            "resets_at": resets_at,
        }
        budget: dict[str, Any] = self._call("POST", "/budgets", json=fields)["budget"]
        return budget

    def clear_budgets(self) -> None:
        """Remove every budget: the key may spend without limit again."""
        self._call("DELETE", "/budgets")

    def expire_key_at(self, unix_time: float | None) -> None:
        """The key expires at ``unix_time`` (``GET /key``'s ``expires_at``; from then on every API
        request is answered 401); None: it never expires."""
        self._call("POST", "/key", json={"expires_at": unix_time})

    # -- what the emulator saw ------------------------------------------------------------------

    def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Logged API requests in arrival order, optionally only those for ``endpoint``.

        Faulted requests are logged too: ``fault`` names the kind that hit the request (null
        when none), ``status`` what it was answered (null while a request is still being
        answered and when its connection was reset).
        """
        params = {"endpoint": endpoint} if endpoint is not None else {}
        result: list[dict[str, Any]] = self._call("GET", "/requests", params=params)["requests"]
        return result

    def count(self, endpoint: str, method: str | None = None) -> int:
        """How many requests hit ``endpoint`` (optionally with ``method``)."""
        return sum(1 for r in self.requests(endpoint) if method is None or r["method"] == method.upper())

    def jobs(self) -> list[dict[str, Any]]:
        """Every job created since the last reset, with its request and current status."""
        result: list[dict[str, Any]] = self._call("GET", "/jobs")["jobs"]
        return result

    def charges(self) -> list[dict[str, Any]]:
        """The emulator's own billing: every charge so far (``GET /_emulator/charges``), in
        submission order, one per billed job: ``{"job_id", "generation_id", "usd", "at"`` (Unix
        seconds: when the job ended), ``"day"`` (``at``'s UTC day, ``YYYY-MM-DD``), ``"dag_id"}``
        (the submitted request's ``trace.airflow_dag_id``, None without one). A job is charged
        when it completes, or when it ends without a video if ``jobs_end_as(..., cost=)`` set a
        cost; never while it renders."""
        result: list[dict[str, Any]] = self._call("GET", "/charges")["charges"]
        return result
