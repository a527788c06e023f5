"""A small client for the emulator's ``/_emulator`` control endpoints, for tests."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx


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
