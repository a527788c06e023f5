"""OpenRouter-shaped errors, shared by the validation logic and the HTTP layer."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

_DEFAULT_MESSAGES: dict[int, str] = {
    400: "Invalid request parameters",
    401: "No auth credentials found",
    402: "Insufficient credits",
    403: "Forbidden",
    404: "Not found",
    408: "Request timed out",
    409: "Conflict",
    410: "Gone",
    413: "Request body too large",
    429: "Rate limit exceeded",
    499: "Client closed request",
    500: "Internal Server Error",
    502: "Provider returned error",
    503: "No available providers for this request",
}


def default_message(status: int) -> str:
    """The message OpenRouter would typically send for ``status``."""
    if status in _DEFAULT_MESSAGES:
        return _DEFAULT_MESSAGES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def default_metadata(status: int) -> dict[str, Any] | None:
    """The typed ``error_type`` category OpenRouter attaches to rate limits and server errors."""
    if status == 429:
        return {"error_type": "rate_limit_exceeded"}
    if status >= 500:
        return {"error_type": "server"}
    return None


class ApiError(Exception):
    """An error response; raised anywhere in request handling, rendered by the HTTP layer."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        metadata: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.message = message if message is not None else default_message(status)
        self.metadata = metadata
        self.headers = headers or {}
        super().__init__(f"{status}: {self.message}")

    def body(self) -> dict[str, Any]:
        """The exact envelope OpenRouter uses; ``code`` always equals the HTTP status."""
        return {
            "error": {"code": self.status, "message": self.message, "metadata": self.metadata},
            "openrouter_metadata": None,
            "user_id": None,
        }
