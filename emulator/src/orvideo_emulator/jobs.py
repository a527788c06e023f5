"""Jobs and their lifecycle, computed from the clock at read time.

A job never changes after creation: its status is a pure function of ``now``. That keeps it
consistent for every observer, whichever process (test, Airflow worker, triggerer) polls and
however rarely, with no background timers to keep in step.
"""

from __future__ import annotations

import dataclasses
import hmac
import math
import secrets
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from orvideo_emulator.billing import Charge, bill
from orvideo_emulator.errors import ApiError
from orvideo_emulator.models import MODELS_BY_ID
from orvideo_emulator.mp4 import output_size_error

OUTCOMES = ("completed", "failed", "cancelled", "expired")
DEFAULT_ERRORS = {
    "failed": "Content policy violation",
    "cancelled": "Job was cancelled",
    "expired": "Job exceeded maximum time to live",
}
DEFAULT_COST = 0.5  # charged when the model's pricing_skus can't price the request
SIGNED_URL_TTL_SECONDS = 24 * 3600
MAX_OUTPUTS = 16  # each output gets a signature up front; keep a typo from costing memory
_ALPHANUMERIC = string.ascii_letters + string.digits


def _random_id(prefix: str, now: float) -> str:
    """``<prefix>-<unix seconds>-<20 alphanumerics>``, the format OpenRouter documents."""
    suffix = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(20))
    return f"{prefix}-{int(now)}-{suffix}"


@dataclass(frozen=True)
class JobSettings:
    """How a job behaves; snapshotted from the defaults when the job is submitted.

    ``cost`` None bills the job from its model's ``pricing_skus`` (see ``billing.py``); a
    number, set through ``POST /_emulator/job-defaults``, is charged as is. ``failed_cost`` is
    what a job that ends without a video (``outcome`` failed, cancelled or expired) is charged
    at its end: None (the default) charges nothing, as OpenRouter documents; a number stands
    for an upstream provider that bills failed renders.
    """

    pending_seconds: float
    in_progress_seconds: float
    outcome: str = "completed"
    error: str | None = None
    outputs: int = 1
    cost: float | None = None
    failed_cost: float | None = None
    output_size: int | None = None
    gone: bool = False
    render: bool = True
    cost_reported: bool = True
    """False: ``usage.cost`` is ``null`` (the API does not promise a cost)."""
    webhook_copies: int = 1
    """Deliveries of each webhook event to the job's ``callback_url``: 0 loses it, 2 duplicates it."""
    honour_range: bool = True
    """False: the content endpoint ignores ``Range`` and always answers 200 with the whole video
    (the published spec declares only that; the real API may behave so)."""
    """Serve a clip rendered for the request (``render.py``; needs PyAV) rather than the fixed
    sample. A scripted ``output_size`` always serves the (padded) sample."""

    def updated(self, fields: Mapping[str, Any], sample_size: int) -> JobSettings:
        """A copy with ``fields`` applied; 400 on an unknown field or a bad value."""
        changes: dict[str, Any] = {}
        for name, value in fields.items():
            if name in ("cost", "failed_cost") and value is None:
                changes[name] = None
            elif name in ("pending_seconds", "in_progress_seconds", "cost", "failed_cost"):
                _require(_is_number(value) and 0 <= value < math.inf, f"{name} must be a finite number >= 0")
                changes[name] = float(value)
            elif name == "outcome":
                _require(value in OUTCOMES, f"outcome must be one of {', '.join(OUTCOMES)}")
                changes[name] = value
            elif name == "error":
                _require(value is None or isinstance(value, str), "error must be a string or null")
                changes[name] = value
            elif name == "outputs":
                _require(_is_int(value) and 1 <= value <= MAX_OUTPUTS, f"outputs must be 1 to {MAX_OUTPUTS}")
                changes[name] = value
            elif name == "output_size":
                if value is not None:
                    _require(_is_int(value), "output_size must be an integer or null")
                    if size_error := output_size_error(value, sample_size):
                        raise ApiError(400, size_error)
                changes[name] = value
            elif name == "webhook_copies":
                _require(_is_int(value) and 0 <= value <= 5, "webhook_copies must be 0 to 5")
                changes[name] = value
            elif name in ("gone", "render", "cost_reported", "honour_range"):
                _require(isinstance(value, bool), f"{name} must be a boolean")
                changes[name] = value
            else:
                raise ApiError(400, f"Unknown job default {name!r}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ApiError(400, message)


@dataclass(frozen=True)
class Job:
    """A submitted job. Immutable: everything that varies is derived from the clock."""

    id: str
    generation_id: str
    model: str
    request: dict[str, Any]
    created_at: float
    settings: JobSettings
    signatures: tuple[str, ...]

    @property
    def cost(self) -> float:
        """The ``usage.cost`` of the completed job: the scripted one, else the model's price."""
        if self.settings.cost is not None:
            return self.settings.cost
        model = MODELS_BY_ID.get(self.model)
        billed = bill(model, self.request) if model is not None else None
        return DEFAULT_COST if billed is None else billed

    @property
    def finished_at(self) -> float:
        return self.created_at + self.settings.pending_seconds + self.settings.in_progress_seconds

    @property
    def expires_at(self) -> int:
        return int(self.finished_at + SIGNED_URL_TTL_SECONDS)

    @property
    def billed_cost(self) -> float | None:
        """What the job is charged once it has ended: its cost when it completes, its
        ``failed_cost`` when it ends without a video (None: nothing)."""
        return self.cost if self.settings.outcome == "completed" else self.settings.failed_cost

    def charge(self, now: float) -> Charge | None:
        """What the key has been charged for this job by ``now``: its bill from the moment it
        ends (OpenRouter charges a request when it finishes), nothing while it renders, and
        nothing for a job that fails, is cancelled or expires unless ``failed_cost`` is set."""
        billed = self.billed_cost
        if billed is None or now < self.finished_at:
            return None
        return Charge(self.finished_at, billed)

    def status(self, now: float) -> str:
        if now < self.created_at + self.settings.pending_seconds:
            return "pending"
        if now < self.finished_at:
            return "in_progress"
        return self.settings.outcome

    def view(self, origin: str, now: float) -> dict[str, Any]:
        """The ``VideoGenerationResponse`` a poll returns at ``now``."""
        status = self.status(now)
        url = f"{origin}/api/v1/videos/{self.id}"
        view: dict[str, Any] = {"id": self.id, "polling_url": url, "status": status}
        if status == "pending":
            return view
        view["generation_id"] = self.generation_id
        billed = self.billed_cost if status in OUTCOMES else None
        if status != "completed":
            if status in DEFAULT_ERRORS:
                view["error"] = self.settings.error or DEFAULT_ERRORS[status]
            if billed is not None:  # a billed failure reports what it was charged
                view["usage"] = {"cost": billed if self.settings.cost_reported else None, "is_byok": False}
            return view
        view["unsigned_urls"] = [f"{url}/content?index={i}" for i in range(self.settings.outputs)]
        view["usage"] = {"cost": billed if self.settings.cost_reported else None, "is_byok": False}
        if not self.settings.gone:
            view["urls"] = [
                f"{url}/content?index={i}&sig={sig}&exp={self.expires_at}"
                for i, sig in enumerate(self.signatures)
            ]
            view["expires_at"] = self.expires_at
        return view

    def generation(self, now: float) -> dict[str, Any] | None:
        """``GET /generation``'s ``data`` for this job at ``now`` (every field OpenRouter's schema
        requires; the token counts and latencies of text models are null), or None while it
        renders: OpenRouter stores a generation's record once its request has finished.

        ``total_cost`` (and ``usage``, the same figure) is what the job was charged, 0 for an
        unbilled failure, whether or not its poll view reports ``usage.cost``: the generation
        record is where OpenRouter's bill can be read when the job object does not say it."""
        if now < self.finished_at:
            return None
        total = self.billed_cost or 0.0
        model = MODELS_BY_ID.get(self.model) or {}
        provider = str(model.get("name") or self.model).split(":", 1)[0].split("/", 1)[0]
        user = self.request.get("user")
        return {
            "id": self.generation_id,
            "upstream_id": None,
            "total_cost": total,
            "cache_discount": None,
            "upstream_inference_cost": None,
            "created_at": datetime.fromtimestamp(self.created_at, tz=timezone.utc).isoformat(),
            "model": self.model,
            "app_id": None,
            "streamed": False,
            "cancelled": self.settings.outcome == "cancelled",
            "provider_name": provider,
            "latency": None,
            "moderation_latency": None,
            "generation_time": round((self.finished_at - self.created_at) * 1000),
            "finish_reason": self.settings.outcome,
            "tokens_prompt": None,
            "tokens_completion": None,
            "native_tokens_prompt": None,
            "native_tokens_completion": None,
            "native_tokens_completion_images": None,
            "native_tokens_reasoning": None,
            "native_tokens_cached": None,
            "num_media_prompt": None,
            "num_input_audio_prompt": None,
            "num_media_completion": self.settings.outputs if self.settings.outcome == "completed" else 0,
            "num_search_results": None,
            "origin": "",
            "usage": total,
            "is_byok": False,
            "native_finish_reason": None,
            "external_user": user if isinstance(user, str) else None,
            "api_type": None,
        }

    def signature_valid(self, index: int, sig: str, exp: str, now: float) -> bool:
        """Whether a signed URL's ``sig``/``exp`` grant access to output ``index`` at ``now``."""
        if not 0 <= index < len(self.signatures) or exp != str(self.expires_at):
            return False
        valid = hmac.compare_digest(sig.encode(), self.signatures[index].encode())
        return valid and now < self.expires_at

    def summary(self, now: float) -> dict[str, Any]:
        """What the control API reports: the request as received plus the scripted behaviour."""
        return {
            "id": self.id,
            "model": self.model,
            "request": self.request,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "outcome": self.settings.outcome,
            "status": self.status(now),
            "settings": self.settings.to_dict(),
        }


def charge_record(job: Job, charge: Charge) -> dict[str, Any]:
    """One charge as ``GET /_emulator/charges`` lists it: the job, its generation, the USD, when
    (Unix seconds and the UTC day) and the DAG the request's ``trace.airflow_dag_id`` names (the
    provider puts it there; None without one)."""
    trace = job.request.get("trace")
    dag_id = trace.get("airflow_dag_id") if isinstance(trace, dict) else None
    return {
        "job_id": job.id,
        "generation_id": job.generation_id,
        "usd": charge.usd,
        "at": charge.at,
        "day": datetime.fromtimestamp(charge.at, tz=timezone.utc).strftime("%Y-%m-%d"),
        "dag_id": dag_id if isinstance(dag_id, str) else None,
    }


class JobStore:
    """Thread-safe job registry (the HTTP server handles each connection in its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._by_generation: dict[str, Job] = {}

    def create(self, request: dict[str, Any], settings: JobSettings, now: float) -> Job:
        job = Job(
            id=_random_id("gen-vid", now),
            generation_id=_random_id("gen", now),
            model=request["model"],
            request=request,
            created_at=now,
            settings=settings,
            signatures=tuple(secrets.token_hex(16) for _ in range(settings.outputs)),
        )
        with self._lock:
            self._jobs[job.id] = job
            self._by_generation[job.generation_id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def by_generation(self, generation_id: str) -> Job | None:
        with self._lock:
            return self._by_generation.get(generation_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def charges(self, now: float) -> list[Charge]:
        """Every charge of the jobs created since the last reset, as of ``now``."""
        return [charge for _, charge in self.billed(now)]

    def billed(self, now: float) -> list[tuple[Job, Charge]]:
        """Every job charged by ``now``, with its charge, in submission order."""
        return [(job, charge) for job in self.all() if (charge := job.charge(now)) is not None]

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()
            self._by_generation.clear()
