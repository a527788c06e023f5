"""Scripted faults: FIFO queues per endpoint, consumed as they are applied.

A fault fires at one of two stages of a request:

- ``request``: as soon as the request has been read, before auth or validation (a proxy or
  the edge failing), so e.g. a failed submit creates no job;
- ``response``: only once the request has succeeded (``after_create`` on submit: the job
  exists, then the client sees an error; ``unknown_status`` on a poll; ``truncate`` on a
  download). A request that fails on its own merits leaves such a fault queued.

For each request the head of the endpoint's own queue is tried first, then the head of the
``any`` queue; a head whose stage doesn't match stays put, so queued order is always kept.

A fault lasts ``times`` applications (1 by default), or, with ``for_seconds``, applies to every
matching request until its window ends (``times`` as well: whichever ends first). The window
is measured on the server's monotonic clock from when the fault was posted, whether or not the
fault has reached the head of its queue; a fault whose window has ended is dropped unapplied.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orvideo_emulator.errors import ApiError

API_ENDPOINTS = ("submit", "poll", "content", "models", "key", "generation")
_ALL = frozenset((*API_ENDPOINTS, "any"))

# kind -> (endpoints it may target, extra fields it accepts)
_KINDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "status": (_ALL, frozenset({"status", "message", "metadata", "retry_after"})),
    "reset": (_ALL, frozenset()),
    "delay": (_ALL, frozenset({"seconds"})),
    "malformed_json": (_ALL, frozenset()),
    "unknown_status": (frozenset({"poll"}), frozenset({"value"})),
    "truncate": (frozenset({"content"}), frozenset({"truncate_at"})),
    "vanish": (frozenset({"poll", "content"}), frozenset()),
}
_AFTER_CREATE_KINDS = frozenset({"status", "reset", "malformed_json"})
_COMMON_FIELDS = frozenset({"endpoint", "kind", "times", "for_seconds", "after_create"})
MAX_WINDOW_SECONDS = 24 * 3600.0


@dataclass
class Fault:
    """One scripted fault; ``remaining`` counts down to removal from its queue (None: no count,
    only the window), ``ends_at`` (monotonic seconds, set when queued) ends its window."""

    endpoint: str
    kind: str
    times: int | None
    after_create: bool
    params: dict[str, Any]
    remaining: int | None
    for_seconds: float | None = None
    ends_at: float | None = None

    @property
    def stage(self) -> str:
        if self.after_create or self.kind in ("unknown_status", "truncate"):
            return "response"
        return "request"

    def expired(self, now: float) -> bool:
        return self.ends_at is not None and now >= self.ends_at

    def to_dict(self) -> dict[str, Any]:
        window = {} if self.for_seconds is None else {"for_seconds": self.for_seconds}
        return {
            "endpoint": self.endpoint,
            "kind": self.kind,
            "times": self.times,
            **window,
            "after_create": self.after_create,
            **self.params,
        }


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_fault(spec: Any) -> Fault:
    """Validate a fault posted to the control API; 400 on anything inconsistent or unknown."""
    if not isinstance(spec, dict):
        raise _bad("fault must be a JSON object")
    endpoint, kind = spec.get("endpoint"), spec.get("kind")
    if endpoint not in _ALL:
        raise _bad(f"endpoint must be one of {', '.join(sorted(_ALL))}")
    if kind not in _KINDS:
        raise _bad(f"kind must be one of {', '.join(sorted(_KINDS))}")
    endpoints, extra_fields = _KINDS[kind]
    if endpoint not in endpoints:
        raise _bad(f"fault kind {kind} does not apply to endpoint {endpoint}")
    unknown = set(spec) - _COMMON_FIELDS - extra_fields
    if unknown:
        raise _bad(f"unknown fields for fault kind {kind}: {', '.join(sorted(unknown))}")
    for_seconds = spec.get("for_seconds")
    if for_seconds is not None and (not _number(for_seconds) or not 0 < for_seconds <= MAX_WINDOW_SECONDS):
        raise _bad(f"for_seconds must be a number of seconds > 0 and <= {MAX_WINDOW_SECONDS:g}")
    times = spec.get("times", 1 if for_seconds is None else None)
    if times is None and for_seconds is None:
        raise _bad("times may be null only with for_seconds")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool) or times < 1):
        raise _bad("times must be an integer >= 1 (or null with for_seconds)")
    after_create = spec.get("after_create", False)
    if not isinstance(after_create, bool):
        raise _bad("after_create must be a boolean")
    if after_create and (endpoint != "submit" or kind not in _AFTER_CREATE_KINDS):
        raise _bad("after_create applies only to submit faults of kind status, reset or malformed_json")
    params = {key: spec[key] for key in extra_fields if key in spec}
    _check_params(kind, params)
    window = None if for_seconds is None else float(for_seconds)
    return Fault(endpoint, kind, times, after_create, params, remaining=times, for_seconds=window)


def _check_params(kind: str, params: dict[str, Any]) -> None:
    if kind == "status":
        status = params.get("status")
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise _bad("status faults need an integer status between 400 and 599")
        if not isinstance(params.get("message", ""), str):
            raise _bad("message must be a string")
        if not isinstance(params.get("metadata", {}), dict | None):
            raise _bad("metadata must be an object or null")
        if "retry_after" in params:
            if not isinstance(params["retry_after"], str | int | float):
                raise _bad("retry_after must be a string (or a number of seconds)")
            params["retry_after"] = str(params["retry_after"])
    elif kind == "delay":
        if not _number(params.get("seconds")) or not 0 <= params["seconds"] <= 600:
            raise _bad("delay faults need seconds between 0 and 600")
    elif kind == "unknown_status":
        params.setdefault("value", "paused")
        if not isinstance(params["value"], str):
            raise _bad("value must be a string")
    elif kind == "truncate" and "truncate_at" in params:
        at = params["truncate_at"]
        if not isinstance(at, int) or isinstance(at, bool) or at < 0:
            raise _bad("truncate_at must be an integer >= 0")


class FaultBook:
    """The queues, shared by all connection threads; ``clock`` times the windows."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = {endpoint: deque() for endpoint in _ALL}

    def add(self, fault: Fault) -> None:
        """Queue ``fault``; its window, if any, starts now."""
        with self._lock:
            if fault.for_seconds is not None:
                fault.ends_at = self._clock() + fault.for_seconds
            self._queues[fault.endpoint].append(fault)

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.clear()

    def take(self, endpoint: str, stage: str) -> Fault | None:
        """Consume one application of the first fault due for ``endpoint`` at ``stage``."""
        with self._lock:
            now = self._clock()
            for queue in (self._queues[endpoint], self._queues["any"]):
                while queue and queue[0].expired(now):
                    queue.popleft()
                if queue and queue[0].stage == stage:
                    fault = queue[0]
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            queue.popleft()
                    return fault
        return None
