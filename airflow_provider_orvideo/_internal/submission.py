"""Never pay twice: remember a submission across task tries and decide how a retry re-attaches.

OpenRouter has no idempotency key and no cancel endpoint, and Airflow runs ``execute()`` from
the top on every try. So the operator keeps one record per task instance in Airflow 3.3's
``task_state_store`` (which survives retries, unlike XCom), or before 3.3 in an Airflow Variable
named for the task instance (``compat.VariableStateStore``, deleted when the task succeeds):

1. right **before** the POST: ``phase="intent"`` with a fingerprint of the request;
2. right **after** it: ``phase="submitted"`` with the job id (and each output once saved).

Invariants:

* The store is scoped by Airflow to (dag_id, run_id, task_id, map_index): what is stable across
  tries. The try number is never part of the record or the fingerprint.
* The fingerprint covers the fields that change the video (model, prompt, duration, resolution,
  aspect ratio, size, audio, seed, frames, references, provider options, previous job), so a
  changed prompt, model or frame image is a new request and is submitted anew; the labels
  (``trace``, ``user``, ``session_id``) are left out, so a per-try trace value never makes a
  retry pay again. An earlier job that a changed request supersedes is kept in the record
  (``superseded``) and reported, never forgotten.
* Only a failure that proves no job exists (:func:`submit_created_nothing`: a refusal OpenRouter
  documents, :data:`NOTHING_CREATED_STATUSES`, or a request that never left) clears an intent;
  an unknown outcome keeps it, and the next try applies the orphan policy. This module is the one
  place that says so: the retry policy (a submit is retried only on such an answer), the hook's
  messages ("may still have created a job") and the operator all ask it.

:func:`decide` is pure: the operator fetches the remote job (a GET, free) and asks what to do.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_orvideo._internal.api import JobStatus, VideoJob
from airflow_provider_orvideo._internal.request_fields import LABEL_FIELDS

STATE_KEY = "openrouter_video"
RECORD_VERSION = 2
"""1: the fingerprint covered the whole body. 2: only the video fields; ``superseded`` added."""

NOTHING_CREATED_STATUSES = frozenset({400, 401, 402, 403, 404, 413, 422, 429})
"""Submit answers that OpenRouter documents as refusals: no job was created. Any other status
(408 or 499 from a proxy after the POST left, 409, 5xx) may come after a job was created."""


def submit_created_nothing(error: BaseException) -> bool:
    """Whether a failed submit proves that OpenRouter created no job, so the next try may submit.

    True for a request that never left (``request_left`` is False: a connection never made, a
    request refused on our side, an unusable connection value) and for a documented refusal
    (:data:`NOTHING_CREATED_STATUSES`). Everything else, a lost answer above all, and any error
    that does not say whether its request left, may have created a paid job. The error's
    ``request_left`` decides, not its class: a lost answer stays "may have created" wherever it
    sits in the hierarchy.
    """
    from airflow_provider_orvideo.exceptions import OpenRouterApiError

    if getattr(error, "request_left", None) is False:
        return True
    return isinstance(error, OpenRouterApiError) and error.http_status in NOTHING_CREATED_STATUSES


class OrphanPolicy(str, enum.Enum):
    """What a retry does when the last try recorded an intent but no job id.

    That happens only when the POST's answer was lost (a crash, a reset or a 5xx right after
    sending): a job may exist and bill, and its id is unknown.
    """

    FAIL = "fail"
    """Fail without submitting (the default: paying twice is worse than a failed task)."""
    RESUBMIT = "resubmit"
    """Submit again, accepting that the lost job (if any) is billed too."""


class Action(str, enum.Enum):
    SUBMIT = "submit"
    REATTACH = "reattach"
    DOWNLOAD = "download"
    REFUSE = "refuse"


def fingerprint(body: Mapping[str, Any], *, version: int = RECORD_VERSION) -> str:
    """A stable digest of what the submit body asks to render (key order does not matter).

    ``version`` 1 digests the whole body: how records written by earlier releases are compared.
    """
    fields = body if version == 1 else {k: v for k, v in body.items() if k not in LABEL_FIELDS}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class SubmissionRecord:
    """What the task state store holds for one task instance (JSON primitives only)."""

    fingerprint: str
    phase: str
    job_id: str | None = None
    outputs: Mapping[str, int] = field(default_factory=dict)
    """Saved outputs: location -> size in bytes."""
    superseded: tuple[Mapping[str, Any], ...] = ()
    """Earlier jobs of this task instance that a changed request replaced (``job_id``, ``status``,
    ``cost``, ``outputs``): paid or still billing, so they are reported on every later try."""
    version: int = RECORD_VERSION
    """How ``fingerprint`` was computed (see :func:`fingerprint`)."""

    def matches(self, body: Mapping[str, Any]) -> bool:
        """Whether ``body`` asks for the same video as the request this record is about."""
        return self.fingerprint == fingerprint(body, version=self.version)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "fingerprint": self.fingerprint,
            "phase": self.phase,
            "job_id": self.job_id,
            "outputs": dict(self.outputs),
            "superseded": [dict(entry) for entry in self.superseded],
        }

    @classmethod
    def from_json(cls, value: Any) -> SubmissionRecord | None:
        """Parse a stored record; an unreadable or newer one counts as absent."""
        if not isinstance(value, Mapping) or value.get("version") not in (1, RECORD_VERSION):
            return None
        if not isinstance(value.get("fingerprint"), str) or value.get("phase") not in ("intent", "submitted"):
            return None
        job_id = value.get("job_id")
        outputs = value.get("outputs")
        if not isinstance(outputs, Mapping):
            outputs = {}
        superseded = value.get("superseded")
        return cls(
            fingerprint=value["fingerprint"],
            phase=value["phase"],
            job_id=job_id if isinstance(job_id, str) and job_id else None,
            outputs={str(k): int(v) for k, v in outputs.items() if isinstance(v, int)},
            superseded=tuple(
                entry
                for entry in map(_superseded_entry, superseded if isinstance(superseded, list) else [])
                if entry is not None
            ),
            version=int(value["version"]),
        )

    @classmethod
    def intent(
        cls, body: Mapping[str, Any], superseded: tuple[Mapping[str, Any], ...] = ()
    ) -> SubmissionRecord:
        """The record written right before the POST of ``body``."""
        return cls(fingerprint=fingerprint(body), phase="intent", superseded=superseded)

    def submitted(self, job_id: str) -> SubmissionRecord:
        return replace(self, phase="submitted", job_id=job_id, outputs={})

    def with_output(self, location: str, size: int) -> SubmissionRecord:
        return replace(self, outputs={**self.outputs, location: size})


def _superseded_entry(value: Any) -> dict[str, Any] | None:
    """A stored superseded-job entry in its one shape (a hand-edited store may hold anything)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("job_id"), str):
        return None
    cost = value.get("cost")
    outputs = value.get("outputs")
    return {
        "job_id": value["job_id"],
        "status": str(value.get("status") or "unknown"),
        "cost": float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
        "outputs": [o for o in outputs if isinstance(o, str)] if isinstance(outputs, list) else [],
    }


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    job_id: str | None = None
    supersedes: str | None = None
    """The earlier try's job that this try replaces because the request's video fields changed."""


@dataclass(frozen=True)
class RemoteUnknown:
    """The earlier try's job could not be looked at now: the GET failed transiently, or answered
    404. Neither is proof the job is gone: OpenRouter answered 202 with its id, so a paid job
    exists (a 404 is a load balancer's or a lagging replica's answer as often as a purge)."""

    reason: str
    not_found: bool = False


def needs_remote_check(record: SubmissionRecord | None) -> bool:
    """Whether :func:`decide` needs the remote job: whenever an earlier try learned a job id
    (to re-attach to it, or to report what a changed request supersedes)."""
    return record is not None and record.job_id is not None


def decide(
    record: SubmissionRecord | None,
    body: Mapping[str, Any],
    *,
    remote: VideoJob | RemoteUnknown | None,
    orphan_policy: OrphanPolicy,
    resubmit_failed: bool,
) -> Decision:
    """What this try does, given the previous tries' record and the job's current state.

    ``remote`` is the job fetched by id, :class:`RemoteUnknown` when that GET failed or answered
    404, or None when it was not fetched (no earlier job id). A job the record names is never
    given up on for an answer that is not proof: it is re-attached to (the wait polls it until its
    deadline), and submitted again only under ``orphan_policy="resubmit"`` after a 404, with the
    old id kept on record.
    """
    if record is None:
        return Decision(Action.SUBMIT, "no earlier submission is recorded for this task instance")
    if not record.matches(body):
        changed = "the video fields of the request changed since the earlier try, so it is a new video"
        if record.job_id is None:
            return Decision(Action.SUBMIT, changed)
        state = "unknown" if not isinstance(remote, VideoJob) else remote.status
        return Decision(
            Action.SUBMIT,
            f"{changed}; the earlier try's job {record.job_id} ({state}) is kept on record",
            supersedes=record.job_id,
        )
    if record.job_id is None:
        reason = (
            "an earlier try sent the submit request but never learned the job id (the answer was lost): "
            "a job may exist on OpenRouter and bill"
        )
        if orphan_policy is OrphanPolicy.RESUBMIT:
            return Decision(Action.SUBMIT, reason + "; submitting again (orphan_policy='resubmit')")
        return Decision(Action.REFUSE, reason)
    if not isinstance(remote, VideoJob):
        why = "no answer" if remote is None else remote.reason
        if isinstance(remote, RemoteUnknown) and remote.not_found and orphan_policy is OrphanPolicy.RESUBMIT:
            return Decision(
                Action.SUBMIT,
                f"OpenRouter answered 404 for job {record.job_id} from an earlier try ({why}); submitting "
                f"again (orphan_policy='resubmit'); job {record.job_id} is kept on record, and is billed "
                "too if it exists",
                supersedes=record.job_id,
            )
        return Decision(
            Action.REATTACH,
            f"job {record.job_id} from an earlier try could not be checked now ({why}); re-attaching: "
            "it is polled until its deadline, and nothing is submitted again",
            record.job_id,
        )
    status = remote.known_status
    if status is JobStatus.COMPLETED:
        return Decision(Action.DOWNLOAD, f"job {record.job_id} from an earlier try completed", record.job_id)
    if status is not None and status.ended_without_video:
        ended = f"job {record.job_id} from an earlier try ended {remote.status}: {remote.error or 'no reason given'}"
        if resubmit_failed:
            return Decision(Action.SUBMIT, ended + "; submitting a new job")
        return Decision(Action.REFUSE, ended + " (resubmit_failed_jobs=False)", record.job_id)
    return Decision(
        Action.REATTACH,
        f"job {record.job_id} from an earlier try is still {remote.status}; re-attaching",
        record.job_id,
    )


class SubmissionLedger:
    """Reads and writes the record in the task instance's durable store
    (``compat.task_state_store``: Airflow's, or a Variable before Airflow 3.3).

    Without a store (only a hand-made context on Airflow 3.3+) it remembers nothing, and every
    try submits: the behaviour of a provider without re-attach, logged once as a warning.
    """

    def __init__(self, store: Any) -> None:
        self._store = store

    @property
    def durable(self) -> bool:
        return self._store is not None

    def load(self) -> SubmissionRecord | None:
        return None if self._store is None else SubmissionRecord.from_json(self._store.get(STATE_KEY))

    def save(self, record: SubmissionRecord) -> None:
        if self._store is not None:
            self._store.set(STATE_KEY, record.to_json())

    def clear(self) -> None:
        if self._store is not None:
            self._store.delete(STATE_KEY)

    def finish(self) -> None:
        """The task instance succeeded: drop a record kept in a Variable (Airflow before 3.3);
        Airflow's own task state store is left to Airflow."""
        from airflow_provider_orvideo._internal.compat import VariableStateStore

        if isinstance(self._store, VariableStateStore):
            self._store.finish()

    def restore(self, record: SubmissionRecord | None) -> None:
        """Put back the record an attempt started from (None: forget everything)."""
        if record is None:
            self.clear()
        else:
            self.save(record)
