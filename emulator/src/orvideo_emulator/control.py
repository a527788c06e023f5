"""A small client for the emulator's ``/_emulator`` control endpoints, for tests."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Literal

import httpx

Endpoint = Literal["submit", "poll", "content", "models", "any"]
"""Which API requests a fault hits: ``any`` is every endpoint."""
JobOutcome = Literal["completed", "failed", "cancelled", "expired"]


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
        """Forget all jobs, faults and logged requests; restore the server's job defaults."""
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

    def jobs_take(self, seconds: float, *, pending_share: float = 0.4) -> None:
        """Jobs submitted from now on finish ``seconds`` after their submission (``pending`` for
        the first ``pending_share`` of it, then ``in_progress``)."""
        self.set_job_defaults(
            pending_seconds=seconds * pending_share, in_progress_seconds=seconds * (1 - pending_share)
        )

    def jobs_end_as(self, outcome: JobOutcome, *, error: str | None = None) -> None:
        """Jobs submitted from now on end ``outcome`` (with ``error`` as their message)."""
        self.set_job_defaults(outcome=outcome, error=error)

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
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """The next ``times`` requests to ``endpoint`` get HTTP ``status`` (with ``Retry-After``)."""
        fields: dict[str, Any] = {"status": status, "times": times}
        if retry_after is not None:
            fields["retry_after"] = retry_after
        if message is not None:
            fields["message"] = message
        self.add_fault(endpoint, "status", **fields)

    def rate_limit(self, endpoint: Endpoint = "submit", *, times: int = 1, retry_after: float = 1.0) -> None:
        """The next ``times`` requests to ``endpoint`` get 429 with ``Retry-After``."""
        self.fail_requests(endpoint, 429, times=times, retry_after=retry_after, message="Rate limit exceeded")

    def drop_connections(self, endpoint: Endpoint, *, times: int = 1) -> None:
        """The next ``times`` requests to ``endpoint`` see their connection reset, unanswered."""
        self.add_fault(endpoint, "reset", times=times)

    def slow_requests(self, endpoint: Endpoint, seconds: float, *, times: int = 1) -> None:
        """The next ``times`` requests to ``endpoint`` are answered ``seconds`` late."""
        self.add_fault(endpoint, "delay", seconds=seconds, times=times)

    def truncate_downloads(self, *, at_byte: int | None = None, times: int = 1) -> None:
        """The next ``times`` downloads stop after ``at_byte`` bytes (default: half the video)."""
        fields: dict[str, Any] = {"times": times}
        if at_byte is not None:
            fields["truncate_at"] = at_byte
        self.add_fault("content", "truncate", **fields)

    # -- what the emulator saw ------------------------------------------------------------------

    def requests(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Logged API requests in arrival order, optionally only those for ``endpoint``.

        ``status`` is null while a request is still being answered and when it was reset.
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
