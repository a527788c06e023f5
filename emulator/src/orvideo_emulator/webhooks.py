"""Webhook delivery to a job's ``callback_url``, as OpenRouter documents it.

When a job with a ``callback_url`` reaches its terminal status, the emulator POSTs the event
(``video.generation.{completed,failed,cancelled,expired}``) as JSON with
``X-OpenRouter-Idempotency-Key: <job id>-<status>`` and, when the emulator has a signing secret,
``X-OpenRouter-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>," + raw body)>``.
A delivery that fails (no answer, or not 2xx) is tried again after :data:`RETRY_DELAYS`; the
job setting ``webhook_copies`` scripts duplicates (2: every event twice) and lost webhooks (0).
Every attempt is recorded for tests (``GET /_emulator/webhooks``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import httpx

from orvideo_emulator.jobs import Job

RETRY_DELAYS = (0.5, 1.0, 2.0)
"""Seconds before the 2nd, 3rd and 4th attempt of a delivery that failed; then it is given up."""
TIMEOUT_SECONDS = 5.0
LOG_LIMIT = 10_000

__all__ = ["RETRY_DELAYS", "WebhookSender", "event_body", "signature_header"]


def event_body(job: Job, origin: str, now: float) -> dict[str, Any]:
    """The envelope OpenRouter posts for ``job``'s terminal status."""
    view = job.view(origin, now)
    data: dict[str, Any] = {
        "id": job.id,
        "status": view["status"],
        "generation_id": view.get("generation_id"),
        "model": job.model,
    }
    if view["status"] == "completed":
        data["unsigned_urls"] = view["unsigned_urls"]
        data["usage"] = view["usage"]
    else:
        data["error"] = view.get("error")
    created = datetime.fromtimestamp(now, tz=timezone.utc).isoformat(timespec="milliseconds")
    return {
        "type": f"video.generation.{view['status']}",
        "created_at": created.replace("+00:00", "Z"),
        "data": data,
    }


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex>``: HMAC-SHA256 over ``"<timestamp>,"`` and the exact body bytes."""
    digest = hmac.new(secret.encode(), f"{timestamp},".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookSender:
    """Schedules and sends the deliveries of one emulator; ``reset`` cancels what is pending."""

    def __init__(self, secret: str | None, clock: Callable[[], float]) -> None:
        self.secret = secret
        self._clock = clock
        self._lock = threading.Lock()
        self._timers: set[threading.Timer] = set()
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self._epoch = 0

    def schedule(self, job: Job, origin: str) -> None:
        """Deliver ``job``'s event once it is over (nothing when it has no ``callback_url``)."""
        url = job.request.get("callback_url")
        if not isinstance(url, str) or job.settings.webhook_copies == 0:
            return
        with self._lock:
            epoch = self._epoch
        delay = max(0.0, job.finished_at - self._clock())
        for copy in range(job.settings.webhook_copies):
            self._later(delay + 0.05 * copy, self._attempt, job, origin, url, epoch, 1)

    def _later(self, delay: float, function: Callable[..., None], *args: Any) -> None:
        timer = threading.Timer(delay, self._run, (function, args))
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def _run(self, function: Callable[..., None], args: tuple[Any, ...]) -> None:
        with self._lock:
            self._timers.discard(threading.current_thread())  # type: ignore[arg-type, unused-ignore]
        function(*args)

    def _attempt(self, job: Job, origin: str, url: str, epoch: int, attempt: int) -> None:
        with self._lock:
            if epoch != self._epoch:
                return
        now = self._clock()
        event = event_body(job, origin, now)
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-OpenRouter-Idempotency-Key": f"{job.id}-{event['data']['status']}",
        }
        if self.secret:
            headers["X-OpenRouter-Signature"] = signature_header(self.secret, int(now), body)
        status: int | None = None
        error: str | None = None
        try:
            status = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_SECONDS).status_code
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}"
        delivered = status is not None and 200 <= status < 300
        with self._lock:
            if epoch != self._epoch:
                return
            self._log.append(
                {
                    "job_id": job.id,
                    "type": event["type"],
                    "url": url,
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                    "idempotency_key": headers["X-OpenRouter-Idempotency-Key"],
                    "signed": "X-OpenRouter-Signature" in headers,
                    "at": time.time(),
                }
            )
        if not delivered and attempt <= len(RETRY_DELAYS):
            self._later(RETRY_DELAYS[attempt - 1], self._attempt, job, origin, url, epoch, attempt + 1)

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._log]

    def reset(self) -> None:
        with self._lock:
            self._epoch += 1
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self._log.clear()
