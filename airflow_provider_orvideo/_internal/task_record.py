"""The record a video task instance publishes as XComs, defined once: the keys, what a download
publishes (:class:`SavedVideo`), and how the "Watch video" link, the player page and the gallery
read it back.

Published by the operator, in this order:

* before paying: :data:`JOB_ID` and :data:`VIDEO_REQUEST` (every try that submits or re-attaches),
  :data:`SUPERSEDED_JOBS` (only when an earlier try's job is set aside) and, for a mapped task,
  :data:`OUTPUT_CLAIM` (each map index's output location, so two map indexes writing one path
  are caught before the second one pays);
* after a download: :meth:`SavedVideo.xcoms`.

Read back defensively: a DAG author controls what a task pushes (any task may push these keys),
an older release wrote fewer keys, and a value read from the metadata database or an XCom backend
may be JSON text instead of the value. The readers here return None or an empty value for
anything they do not recognise and never raise, so a hostile or old value can hide a video but
never turn a page into a 500.

Standard library only: the api-server, the dag-processor and the worker all import this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BEFORE_PAYING_KEYS",
    "GENERATION_ID",
    "JOB_ID",
    "OUTPUT_CLAIM",
    "OUTPUT_CONN_ID",
    "OUTPUT_HOST",
    "OUTPUT_PATHS",
    "OUTPUT_SIZES",
    "RECORDED_KEYS",
    "SAVED_KEYS",
    "SPEND",
    "SUPERSEDED_JOBS",
    "UNAVAILABLE_OUTPUTS",
    "USAGE",
    "VIDEO_REQUEST",
    "SavedVideo",
    "recorded_request",
    "saved_paths",
    "usage_cost",
    "xcom_value",
]

# ---------------------------------------------------------------------------- before paying

JOB_ID = "job_id"
"""The OpenRouter job id (also what DAG authors pull: ``xcom_pull(task_ids=..., key='job_id')``)."""
VIDEO_REQUEST = "video_request"
"""The request as validated and submitted (``request_fields.request_facts``); the pages take it as the
mark of a video task."""
SUPERSEDED_JOBS = "superseded_jobs"
"""Jobs of earlier tries set aside for a different request (kept on record, not re-used)."""
OUTPUT_CLAIM = "openrouter_video_output_claim"
"""``{"map_index": ..., "location": ...}``: where a map index of a mapped task will write."""

BEFORE_PAYING_KEYS = (JOB_ID, VIDEO_REQUEST, SUPERSEDED_JOBS, OUTPUT_CLAIM)

# ---------------------------------------------------------------------------- after a download

GENERATION_ID = "generation_id"
USAGE = "usage"
"""``{"cost": USD or None, "is_byok": bool or None}``, as OpenRouter reported them."""
OUTPUT_PATHS = "output_paths"
"""Where each output was saved; the pages serve only what this lists (by index, never by path)."""
OUTPUT_SIZES = "output_sizes"
"""Each saved output's size in bytes: the pages serve only a file of this size."""
OUTPUT_HOST = "output_host"
"""The worker's host name: where a local path is."""
OUTPUT_CONN_ID = "output_conn_id"
"""The connection that wrote to object storage (only then): the pages read the object with it."""
UNAVAILABLE_OUTPUTS = "unavailable_outputs"
SPEND = "spend"
"""What the spend ledger holds for this task instance when its job ends: every job any of its
tries created (``job_id``, ``status``, ``cost_usd``, ``estimate_usd``, ``try_number``,
``superseded_by``, ``kept``), ``spent_usd`` (priced) and ``pending_usd`` (not priced yet). Unlike
``usage`` (this try's job), it counts superseded jobs and earlier tries' jobs."""
"""Indexes of outputs OpenRouter no longer had (only when some are missing)."""

SAVED_KEYS = (
    GENERATION_ID,
    USAGE,
    OUTPUT_PATHS,
    OUTPUT_SIZES,
    OUTPUT_HOST,
    OUTPUT_CONN_ID,
    UNAVAILABLE_OUTPUTS,
)
"""What :meth:`SavedVideo.xcoms` may push, in its order."""

RECORDED_KEYS = (*SAVED_KEYS, VIDEO_REQUEST, JOB_ID)
"""Every XCom the video pages read of a task instance."""


# ---------------------------------------------------------------------------- reading values


def xcom_value(raw: Any) -> Any:
    """An XCom value as read from the metadata database: native JSON, or a JSON string from an
    XCom backend or an older writer."""
    if isinstance(raw, (str, bytes)):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _text(raw: Any) -> str | None:
    """A string XCom, or None. JSON text of a string or of null is decoded (a JSON-text writer
    records a missing generation id as ``null``); any other string is the value itself, even when
    it reads as JSON: a host named ``1234`` stays ``"1234"``."""
    if not isinstance(raw, (str, bytes)):
        return None
    decoded = xcom_value(raw)
    if decoded is None or isinstance(decoded, str):
        return decoded
    return raw if isinstance(raw, str) else None


def _natural(value: Any) -> int | None:
    """A size or an output index: a whole number from 0 (``True`` is not one)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _usage(raw: Any) -> Mapping[str, Any]:
    usage = xcom_value(raw)
    return usage if isinstance(usage, dict) else {}


def usage_cost(raw: Any) -> float | None:
    """The cost in USD of a ``usage`` XCom, or None: not reported, or not a finite number."""
    return _number(_usage(raw).get("cost"))


def saved_paths(raw: Any) -> tuple[str, ...]:
    """The locations of an ``output_paths`` XCom; empty unless it lists at least one (the task
    saved a video)."""
    paths = xcom_value(raw)
    if not isinstance(paths, list):
        return ()
    return tuple(str(path) for path in paths)


def recorded_request(values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The request facts (``video_request``) among a task instance's XComs by key, or None: the
    task is not an OpenRouter video task."""
    request = xcom_value(values.get(VIDEO_REQUEST))
    return request if isinstance(request, dict) else None


def pulled_request(ti: Any) -> dict[str, Any] | None:
    """The request facts ``execute`` pushed before deferring, pulled by the resumed task instance
    ``ti`` (a duck-typed ``RuntimeTaskInstance``), or None: a task deferred by a release before
    the XCom existed."""
    return recorded_request(
        {VIDEO_REQUEST: ti.xcom_pull(task_ids=ti.task_id, key=VIDEO_REQUEST, map_indexes=ti.map_index)}
    )


# ---------------------------------------------------------------------------- the saved video


@dataclass(frozen=True)
class SavedVideo:
    """What a task instance publishes once it saved its job's outputs (the job is paid).

    ``job_id`` is read back with the rest but not pushed again by :meth:`xcoms`: ``execute``
    publishes it before paying, so a task that fails after paying still names its job.
    """

    job_id: str | None
    generation_id: str | None
    cost: float | None
    is_byok: bool | None
    paths: tuple[str, ...]
    sizes: tuple[int | None, ...]
    """One per saved output; None where a recorded size is not a size (read back only)."""
    host: str | None
    conn_id: str | None = None
    unavailable: tuple[int, ...] = ()

    def xcoms(self) -> list[tuple[str, Any]]:
        """``(key, value)`` to push, in order: ``output_conn_id`` only for object storage written
        with a connection, ``unavailable_outputs`` only when some output is missing."""
        pushed: list[tuple[str, Any]] = [
            (GENERATION_ID, self.generation_id),
            (USAGE, {"cost": self.cost, "is_byok": self.is_byok}),
            (OUTPUT_PATHS, list(self.paths)),
            (OUTPUT_SIZES, list(self.sizes)),
            (OUTPUT_HOST, self.host),
        ]
        if self.conn_id:
            pushed.append((OUTPUT_CONN_ID, self.conn_id))
        if self.unavailable:
            pushed.append((UNAVAILABLE_OUTPUTS, list(self.unavailable)))
        return pushed

    @classmethod
    def from_xcoms(cls, values: Mapping[str, Any]) -> SavedVideo | None:
        """From a task instance's XComs by key (a key may be missing); None unless
        ``output_paths`` lists a saved video. Never raises: a value of another shape reads as
        not recorded."""
        paths = saved_paths(values.get(OUTPUT_PATHS))
        if not paths:
            return None
        usage = _usage(values.get(USAGE))
        is_byok = usage.get("is_byok")
        sizes = xcom_value(values.get(OUTPUT_SIZES))
        missing = xcom_value(values.get(UNAVAILABLE_OUTPUTS))
        return cls(
            job_id=_text(values.get(JOB_ID)),
            generation_id=_text(values.get(GENERATION_ID)),
            cost=_number(usage.get("cost")),
            is_byok=is_byok if isinstance(is_byok, bool) else None,
            paths=paths,
            sizes=tuple(_natural(size) for size in sizes) if isinstance(sizes, list) else (),
            host=_text(values.get(OUTPUT_HOST)),
            conn_id=_text(values.get(OUTPUT_CONN_ID)) or None,
            unavailable=tuple(index for index in missing if _natural(index) is not None)
            if isinstance(missing, list)
            else (),
        )


def spend_value(jobs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``spend`` XCom from the ledger's rows of one task instance (JSON only)."""
    listed = [
        {
            "job_id": job.get("job_id"),
            "status": job.get("status"),
            "cost_usd": job.get("cost_usd"),
            "estimate_usd": job.get("estimate_usd"),
            "try_number": job.get("try_number"),
            "superseded_by": job.get("superseded_by"),
            "kept": job.get("kept"),
        }
        for job in jobs
    ]
    spent = sum(job["cost_usd"] or 0.0 for job in listed)
    pending = sum(
        job["estimate_usd"] or 0.0
        for job in listed
        if job["cost_usd"] is None and job["status"] in ("submitted", "completed")
    )
    return {"jobs": listed, "spent_usd": round(spent, 6), "pending_usd": round(pending, 6)}
