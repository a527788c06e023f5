"""The emulated service, independent of sockets: a request goes in, a ``Reply`` comes out.

The HTTP layer (``server.py``) only turns bytes into a ``Request`` and a ``Reply`` into
bytes, which it must control itself for the faults that break the connection (reset,
truncate). Everything OpenRouter-specific and everything scriptable lives here.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from orvideo_emulator.budgets import KeyAccount, parse_budget, parse_expiry
from orvideo_emulator.errors import ApiError, default_metadata
from orvideo_emulator.faults import API_ENDPOINTS, Fault, FaultBook, parse_fault
from orvideo_emulator.jobs import Job, JobSettings, JobStore, charge_record
from orvideo_emulator.models import VIDEO_MODELS
from orvideo_emulator.mp4 import VideoFile, sample_bytes
from orvideo_emulator.render import render_clip
from orvideo_emulator.validation import validate_submit
from orvideo_emulator.webhooks import WebhookSender

MAX_BODY_BYTES = 50 * 1024 * 1024
REQUEST_LOG_LIMIT = 10_000
_MALFORMED_JSON = b'{"id": "gen-vid-'
_KEY_PATH = "/api/v1/key"
_GENERATION_PATH = "/api/v1/generation"
_JOB_PATH = re.compile(r"/api/v1/videos/([^/]+)(/content)?")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True)
class Request:
    """A fully read request. ``body`` is None when it was over the size limit and left unread."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes | None
    origin: str


@dataclass
class Reply:
    """What to send: a JSON document, raw bytes, a byte range of a video, or a connection reset."""

    status: int
    json: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    video: tuple[VideoFile, int, int] | None = None
    reset: bool = False
    truncate_at: int | None = None
    close: bool = False
    fault: str | None = None

    @property
    def content_length(self) -> int:
        if self.video is not None:
            return self.video[2] - self.video[1]
        return len(self.body)

    @cached_property
    def body(self) -> bytes:
        """The complete body, for everything but video (which is streamed); encoded once."""
        return self.raw if self.raw is not None else json.dumps(self.json).encode()


def error_reply(error: ApiError) -> Reply:
    return Reply(error.status, json=error.body(), headers=dict(error.headers))


def _endpoint(method: str, path: str) -> str:
    """Which API operation a request is; "other" for unknown paths and wrong methods."""
    if path == "/api/v1/videos":
        return "submit" if method == "POST" else "other"
    if path == _KEY_PATH:
        return "key" if method == "GET" else "other"
    if path == _GENERATION_PATH:
        return "generation" if method == "GET" else "other"
    match = _JOB_PATH.fullmatch(path)
    if match is None or method != "GET":
        return "other"
    if match[2]:
        return "content"
    return "models" if match[1] == "models" else "poll"


def _job_id(path: str) -> str:
    match = _JOB_PATH.fullmatch(path)
    assert match is not None, "only called for poll and content paths"
    return match[1]


def _parse_json(body: bytes | None) -> Any:
    """The parsed body, or None when there is none or it isn't JSON."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_exclusive)`` for a single satisfiable range, None to send everything.

    Malformed and multi-range headers are ignored (a full 200), as RFC 9110 allows.
    """
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or not (match[1] or match[2]):
        return None
    if match[1]:
        start = int(match[1])
        end = int(match[2]) + 1 if match[2] else size
        if match[2] and end <= start:
            return None  # last < first: invalid, so ignored
    else:
        suffix = int(match[2])
        start, end = (max(0, size - suffix) if suffix else size), size
    if start >= size:
        raise ApiError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, min(end, size)


class Emulator:
    """OpenRouter's video API plus the ``/_emulator`` control API, over shared state."""

    def __init__(
        self,
        *,
        api_key: str,
        defaults: JobSettings,
        clock: Callable[[], float],
        webhook_secret: str | None = None,
    ) -> None:
        self._api_key = api_key
        self._webhooks = WebhookSender(webhook_secret, clock)
        self._initial_defaults = defaults
        self._defaults = defaults
        self._clock = clock
        self._jobs = JobStore()
        self._account = KeyAccount()
        self._faults = FaultBook()
        self._log_lock = threading.Lock()
        self._log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LIMIT)
        self._epoch = 0  # bumped by reset, so requests held across one can tell

    def handle(self, request: Request) -> Reply:
        if request.path == "/_emulator" or request.path.startswith("/_emulator/"):
            try:
                return self._control(request)
            except ApiError as error:
                return error_reply(error)
        endpoint = _endpoint(request.method, request.path)
        entry, epoch = self._record(request, endpoint)
        reply = self._api(request, endpoint, epoch)
        with self._log_lock:
            entry["status"] = None if reply.reset else reply.status
            entry["fault"] = reply.fault
        return reply

    # --- the OpenRouter API -------------------------------------------------------------

    def _api(self, request: Request, endpoint: str, epoch: int) -> Reply:
        if request.body is None:
            reply = error_reply(ApiError(413, f"Request body exceeds {MAX_BODY_BYTES} bytes"))
            reply.close = True
            return reply
        if endpoint in API_ENDPOINTS and (fault := self._faults.take(endpoint, "request")):
            if fault.kind == "delay":
                time.sleep(fault.params["seconds"])
                if epoch != self._epoch:
                    # Reset while held: the client has most likely given up, and finishing
                    # would leak a job or log entry into whatever test comes next.
                    return Reply(0, reset=True, fault="delay")
            else:
                return self._fault_reply(fault, request)
        try:
            reply = self._route(request, endpoint)
        except ApiError as error:
            return error_reply(error)
        if endpoint in API_ENDPOINTS and (fault := self._faults.take(endpoint, "response")):
            return self._fault_reply(fault, request, reply)
        return reply

    def _route(self, request: Request, endpoint: str) -> Reply:
        if endpoint == "models":
            return Reply(200, json={"data": VIDEO_MODELS})
        if endpoint == "submit":
            return self._submit(request)
        if endpoint == "poll":
            job = self._job(request, _job_id(request.path))
            return Reply(200, json=job.view(request.origin, self._clock()))
        if endpoint == "content":
            return self._content(request)
        if endpoint == "key":
            self._require_auth(request)
            now = self._clock()
            return Reply(200, json={"data": self._account.view(self._jobs.charges(now), now)})
        if endpoint == "generation":
            return self._generation(request)
        if request.path in ("/api/v1/videos", _KEY_PATH, _GENERATION_PATH) or _JOB_PATH.fullmatch(
            request.path
        ):
            raise ApiError(405, f"Method {request.method} not allowed on {request.path}")
        raise ApiError(404, f"No route for {request.method} {request.path}")

    def _authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        # Bytes: compare_digest refuses non-ASCII str, and header values are client-controlled.
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self._api_key.encode()
        )

    def _require_auth(self, request: Request) -> None:
        if "authorization" not in request.headers:
            raise ApiError(401, "No auth credentials found")
        if not self._authorized(request.headers):
            raise ApiError(401, "Invalid API key")
        if self._account.expired(self._clock()):
            raise ApiError(401, "API key has expired")

    def _job(self, request: Request, job_id: str, *, authenticate: bool = True) -> Job:
        if authenticate:
            self._require_auth(request)
        job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"Job {job_id} not found")
        return job

    def _generation(self, request: Request) -> Reply:
        """``GET /generation?id=``: a finished job's generation record, its ``total_cost`` what
        the job was charged (see :meth:`Job.generation`); 404 for an id no job has, or whose job
        is still rendering (OpenRouter stores the record once the request has finished)."""
        self._require_auth(request)
        generation_id = request.query.get("id", "")
        if not generation_id:
            raise ApiError(400, "id is required")
        job = self._jobs.by_generation(generation_id)
        record = job.generation(self._clock()) if job is not None else None
        if record is None:
            raise ApiError(404, f"Generation {generation_id} not found")
        return Reply(200, json={"data": record})

    def _submit(self, request: Request) -> Reply:
        self._require_auth(request)
        body = _parse_json(request.body)
        if body is None:
            raise ApiError(400, "Request body must be valid JSON")
        now = self._clock()
        validate_submit(body, self._jobs, now)
        self._account.check_submit(self._jobs.charges(now), now)
        job = self._jobs.create(body, self._defaults, now)
        self._webhooks.schedule(job, request.origin)
        url = f"{request.origin}/api/v1/videos/{job.id}"
        return Reply(202, json={"id": job.id, "polling_url": url, "status": "pending"})

    def _content(self, request: Request) -> Reply:
        signature = request.query.get("sig")
        job = self._job(request, _job_id(request.path), authenticate=signature is None)
        raw_index = request.query.get("index", "0")
        if not (raw_index.isascii() and raw_index.isdigit()):
            raise ApiError(400, "index must be a non-negative integer")
        index, now = int(raw_index), self._clock()
        if signature is not None and not job.signature_valid(
            index, signature, request.query.get("exp", ""), now
        ):
            raise ApiError(401, "Invalid or expired signed URL")
        status = job.status(now)
        if status != "completed":
            raise ApiError(409, f"Job {job.id} is not completed (status: {status})")
        if index >= job.settings.outputs:
            raise ApiError(404, f"Job {job.id} has no output {index}")
        if job.settings.gone:
            raise ApiError(410, f"Output {index} of job {job.id} is no longer available")
        clip = render_clip(job.request) if job.settings.render and job.settings.output_size is None else None
        video = VideoFile(clip or sample_bytes(), job.settings.output_size)
        if not job.settings.honour_range:
            return Reply(200, content_type="video/mp4", video=(video, 0, video.size))
        span = _byte_range(request.headers.get("range"), video.size)
        headers = {"Accept-Ranges": "bytes"}
        if span is None:
            return Reply(200, content_type="video/mp4", headers=headers, video=(video, 0, video.size))
        headers["Content-Range"] = f"bytes {span[0]}-{span[1] - 1}/{video.size}"
        return Reply(206, content_type="video/mp4", headers=headers, video=(video, *span))

    def _fault_reply(self, fault: Fault, request: Request, reply: Reply | None = None) -> Reply:
        """The reply a fault substitutes for (or, for truncate/unknown_status, makes of) ``reply``."""
        if fault.kind == "status":
            status = fault.params["status"]
            message = fault.params.get("message")
            if (
                message is None
                and status == 404
                and _endpoint(request.method, request.path) in ("poll", "content")
            ):
                message = f"Job {_job_id(request.path)} not found"  # what a vanished job answers
            error = ApiError(
                status,
                message,
                fault.params.get("metadata", default_metadata(status)),
                {"Retry-After": fault.params["retry_after"]} if "retry_after" in fault.params else None,
            )
            result = error_reply(error)
        elif fault.kind == "reset":
            result = Reply(0, reset=True)
        elif fault.kind == "malformed_json":
            result = Reply(200, raw=_MALFORMED_JSON)
        elif fault.kind == "vanish":
            result = error_reply(ApiError(404, f"Job {_job_id(request.path)} not found"))
        else:
            assert reply is not None, "response-stage faults always have a reply to alter"
            result = reply
            if fault.kind == "unknown_status":
                result.json = {**reply.json, "status": fault.params["value"]}
            else:
                length = reply.content_length
                result.truncate_at = min(fault.params.get("truncate_at", length // 2), length)
        result.fault = fault.kind
        return result

    def _record(self, request: Request, endpoint: str) -> tuple[dict[str, Any], int]:
        """Log a request on arrival (status filled in once answered), so the log keeps arrival
        order and a reset during a slow request also drops that request's entry."""
        headers = dict(request.headers)
        if "authorization" in headers:
            headers["authorization"] = "<redacted>"
        entry = {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "endpoint": endpoint,
            "status": None,
            "authorized": self._authorized(request.headers),
            "headers": headers,
            "body": _parse_json(request.body),
            "time": self._clock(),
            "fault": None,
        }
        with self._log_lock:
            self._log.append(entry)
            return entry, self._epoch

    # --- the control API ----------------------------------------------------------------

    def _control(self, request: Request) -> Reply:
        route = (request.method, request.path.removeprefix("/_emulator"))
        if route == ("POST", "/reset"):
            self._jobs.clear()
            self._faults.clear()
            self._webhooks.reset()
            with self._log_lock:
                self._log.clear()
                self._epoch += 1
            self._defaults = self._initial_defaults
            self._account = KeyAccount()
            return Reply(200, json={"job_defaults": self._defaults.to_dict()})
        if route == ("POST", "/job-defaults"):
            fields = _parse_json(request.body)
            if not isinstance(fields, dict):
                raise ApiError(400, "job defaults must be a JSON object")
            self._defaults = self._defaults.updated(fields, len(sample_bytes()))
            return Reply(200, json={"job_defaults": self._defaults.to_dict()})
        if route == ("POST", "/faults"):
            fault = parse_fault(_parse_json(request.body))
            self._faults.add(fault)
            return Reply(200, json={"fault": fault.to_dict()})
        if route == ("POST", "/budgets"):
            now = self._clock()
            budget = parse_budget(_parse_json(request.body), now)
            self._account = self._account.with_budget(budget)
            return Reply(200, json={"budget": budget.state(self._jobs.charges(now), now).to_dict()})
        if route == ("DELETE", "/budgets"):
            self._account = dataclasses.replace(self._account, budgets=())
            return Reply(200, json={"budgets": []})
        if route == ("POST", "/key"):
            expires_at = parse_expiry(_parse_json(request.body))
            self._account = dataclasses.replace(self._account, expires_at=expires_at)
            return Reply(200, json={"expires_at": expires_at})
        if route == ("GET", "/requests"):
            wanted = request.query.get("endpoint")
            with self._log_lock:
                entries = [dict(e) for e in self._log if wanted is None or e["endpoint"] == wanted]
            return Reply(200, json={"requests": entries})
        if route == ("GET", "/webhooks"):
            return Reply(200, json={"webhooks": self._webhooks.deliveries()})
        if route == ("GET", "/jobs"):
            now = self._clock()
            return Reply(200, json={"jobs": [job.summary(now) for job in self._jobs.all()]})
        if route == ("GET", "/charges"):
            charges = self._jobs.billed(self._clock())
            return Reply(200, json={"charges": [charge_record(job, charge) for job, charge in charges]})
        raise ApiError(404, f"No control route for {request.method} {request.path}")
