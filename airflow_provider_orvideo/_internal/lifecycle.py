"""One video job's lifecycle for one task instance: every transition of its durable record.

The money rules live here, in one class driven by the operator and the decorator, testable with
a fake hook and a dict for a store (``tests/_internal/test_lifecycle.py``, milliseconds each):

* **never pay twice**: an intent is recorded before the POST and the job id right after it; a
  later try that finds either re-attaches, downloads or refuses (:func:`submission.decide`), and
  only a failure that proves nothing was created forgets the intent;
* **paid means kept**: outputs are saved atomically and recorded one by one, so a retry keeps
  what an earlier try saved and a file this task instance did not write is never replaced (the
  paid video goes beside it);
* **supersede, never forget**: a job a changed request replaces stays on record and is reported
  on every later try;
* **re-attach after drift**: a 404 or an outage on the first look at an earlier job re-attaches
  to it (the wait polls it until its deadline) instead of paying again.

The shape follows Airflow 3.3's ``ResumableJobMixin`` (resume decision, submit, result), so
adopting it later is a swap; unlike it, a failed or unknown earlier job is not resubmitted
unless asked, and the record also covers the outputs. No Airflow context comes in: a hook, a
store with ``get``/``set``/``delete`` (Airflow's ``task_state_store`` or
:class:`~airflow_provider_orvideo._internal.compat.VariableStateStore`), the task instance's
identity and, for mapped tasks, an :class:`OutputClaims` board.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_orvideo._internal.api import VideoJob
from airflow_provider_orvideo._internal.submission import (
    Action,
    Decision,
    OrphanPolicy,
    RemoteUnknown,
    SubmissionLedger,
    SubmissionRecord,
    decide,
    needs_remote_check,
    submit_created_nothing,
)
from airflow_provider_orvideo._internal.task_record import OUTPUT_CLAIM, SavedVideo
from airflow_provider_orvideo.exceptions import (
    NOTHING_SPENT,
    InvalidOutputPathError,
    OpenRouterNotFoundError,
    OpenRouterVideoError,
    OutputExistsError,
    OutputPathCollisionError,
    OutputPathUnknownError,
    ResubmissionRefusedError,
    VideoOutputGoneError,
)

if TYPE_CHECKING:
    from airflow_provider_orvideo._internal.atomic_output import AtomicOutput
    from airflow_provider_orvideo._internal.budgets import Budget
    from airflow_provider_orvideo._internal.ledger import Entry
    from airflow_provider_orvideo._internal.output_paths import OutputTarget

__all__ = [
    "CARRIED_FIELDS_KEY",
    "OutputClaims",
    "Resumption",
    "Spend",
    "SpendLedger",
    "TaskIdentity",
    "VideoJobLifecycle",
    "XComOutputClaims",
]

CARRIED_FIELDS_KEY = "openrouter_video_returned_fields"
"""Store key of the request fields a ``@task.openrouter_video`` function returned, read back
when the task resumes after deferring (not ``defer(kwargs=...)``: ``dag.test()`` drops those)."""


class JobHook(Protocol):
    """What the lifecycle asks of :class:`~airflow_provider_orvideo.hooks.openrouter_video.OpenRouterVideoHook`."""

    def get_job(self, job_id: str) -> VideoJob: ...

    def submit(self, body: Mapping[str, Any]) -> VideoJob: ...

    def save_output(self, job_id: str, index: int, output: AtomicOutput) -> int: ...


class StateStore(Protocol):
    """Airflow's ``task_state_store`` as the lifecycle uses it (JSON values, per task instance)."""

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


class SpendLedger(Protocol):
    """The spend ledger as the lifecycle writes it (:class:`~airflow_provider_orvideo._internal.ledger.Ledger`)."""

    def reserve(self, entry: Entry, budgets: Sequence[Budget], *, lease_seconds: float = ...) -> str: ...

    def released(self, entry_id: str) -> None: ...

    def submitted(self, entry_id: str, job_id: str) -> object: ...

    def ended(
        self,
        job_id: str,
        status: str,
        *,
        cost_usd: float | None,
        generation_id: str | None,
        unkept_reason: str | None = None,
        entry: Entry | None = None,
    ) -> None: ...

    def kept(self, job_id: str, locations: Sequence[str]) -> None: ...

    def superseded(self, job_id: str, by: str) -> None: ...

    def check_shared(self) -> None: ...


@dataclass(frozen=True)
class Spend:
    """What a submit holds against the budgets: the model, the estimate (None: unknown, holds
    nothing until the job is priced) and every budget that may apply."""

    model: str | None
    estimate_usd: float | None
    budgets: tuple[Budget, ...] = ()
    lease_seconds: float = 900.0


class OutputClaims(Protocol):
    """Where the map indexes of one mapped task say which output location each renders."""

    def claim(self, location: str) -> Sequence[int]:
        """Record this map index's claim on ``location``; return the other map indexes claiming it."""
        ...


@dataclass(frozen=True)
class TaskIdentity:
    """The task instance, as a saved video records its writer: never the try number, which
    changes between tries of one task instance."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @classmethod
    def of(cls, ti: Any) -> TaskIdentity:
        map_index = getattr(ti, "map_index", -1)
        return cls(ti.dag_id, ti.run_id, ti.task_id, -1 if map_index is None else int(map_index))

    @property
    def mapped(self) -> bool:
        return self.map_index >= 0

    def facts(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
        }

    def trace(self) -> dict[str, Any]:
        """OpenRouter ``trace`` metadata naming this task instance, so spend on OpenRouter's side
        can be grouped by pipeline (a label: never part of the request's fingerprint)."""
        span = self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"
        return {
            "trace_id": f"airflow:{self.dag_id}:{self.run_id}",
            "trace_name": self.dag_id,
            "span_name": span,
            "generation_name": f"{self.dag_id}.{self.task_id}",
            "airflow_dag_id": self.dag_id,
            "airflow_task_id": self.task_id,
            "airflow_run_id": self.run_id,
            "airflow_map_index": self.map_index,
        }

    def writer(self, job_id: str | None) -> dict[str, Any]:
        """The writer facts a video of ``job_id`` saved by this task instance carries."""
        return {**self.facts(), "job_id": job_id}


class XComOutputClaims:
    """:class:`OutputClaims` kept in the task's XCom: each map index pushes its claim before
    paying, then reads every map index's (a duck-typed task instance; no Airflow import)."""

    KEY = OUTPUT_CLAIM

    def __init__(self, ti: Any) -> None:
        self._ti = ti

    def claim(self, location: str) -> list[int]:
        map_index = getattr(self._ti, "map_index", -1)
        self._ti.xcom_push(key=self.KEY, value={"map_index": map_index, "location": location})
        claims = self._ti.xcom_pull(task_ids=[self._ti.task_id], key=self.KEY) or []
        return sorted(
            {
                claim["map_index"]
                for claim in claims
                if isinstance(claim, dict)
                and claim.get("location") == location
                and claim.get("map_index") != map_index
            }
        )


@dataclass(frozen=True)
class Resumption:
    """What a try found on entry: the record of earlier tries, their job as OpenRouter sees it
    now, the decision, and every earlier job a changed request replaced."""

    decision: Decision
    record: SubmissionRecord | None
    remote: VideoJob | RemoteUnknown | None
    superseded: tuple[dict[str, Any], ...]

    @property
    def job_id(self) -> str:
        """The job this try waits for or downloads (empty when it submits)."""
        return self.decision.job_id or ""

    @property
    def submits(self) -> bool:
        return self.decision.action is Action.SUBMIT

    @property
    def downloads(self) -> bool:
        return self.decision.action is Action.DOWNLOAD


@dataclass
class VideoJobLifecycle:
    """Carries one task instance's job through intent, submitted, outputs saved and finish.

    Every method reads or writes the durable record through ``store`` (None: a hand-made context
    without a store; every try then submits, as a provider without re-attach would, and
    :meth:`resume` says so once). ``log`` is the operator's logger.
    """

    hook: JobHook
    store: StateStore | None
    identity: TaskIdentity
    orphan_policy: OrphanPolicy = OrphanPolicy.FAIL
    resubmit_failed: bool = False
    log: logging.Logger | Any = field(default_factory=lambda: logging.getLogger(__name__))
    ledger: SpendLedger | None = None
    """Where every job is booked (None: not booked, e.g. a hand-made test context)."""
    conn_id: str = ""
    try_number: int | None = None

    @property
    def _records(self) -> SubmissionLedger:
        return SubmissionLedger(self.store)

    # -- before money -------------------------------------------------------------------------

    def resume(
        self,
        body: Mapping[str, Any],
        *,
        on_superseded: Callable[[tuple[dict[str, Any], ...]], None] | None = None,
    ) -> Resumption:
        """Load the record, look at its job (one GET, free) and decide: submit, re-attach,
        download or refuse (:class:`ResubmissionRefusedError`, raised before any POST).

        ``on_superseded`` publishes the jobs a changed request replaced (the operator's XCom
        ``superseded_jobs``), before a refusal too: they are reported on every try."""
        if self.store is None:
            self.log.warning(
                "No task_state_store in the context: a retry of this task cannot re-attach to this job "
                "and would submit (and pay for) a new one."
            )
        record = self._records.load()
        remote = self._look_at(record)
        decision = decide(
            record,
            body,
            remote=remote,
            orphan_policy=self.orphan_policy,
            resubmit_failed=self.resubmit_failed,
        )
        if record is not None:
            self.log.info("Earlier try found: %s.", decision.reason)
        resumption = Resumption(decision, record, remote, self._superseded(record, decision, remote))
        if isinstance(remote, VideoJob) and decision.action is not Action.DOWNLOAD:
            self._book_seen_ending(record.job_id if record is not None else None, remote)
        for entry in resumption.superseded:
            self._report_superseded(entry)
        if resumption.superseded and on_superseded is not None:
            on_superseded(resumption.superseded)
        if decision.action is Action.REFUSE:
            raise ResubmissionRefusedError(
                f"Not submitting: {decision.reason}. Submitting again could pay for the same video twice. "
                "Check the spend on OpenRouter's activity page; to submit anyway, set "
                "orphan_policy='resubmit' (lost answer) or resubmit_failed_jobs=True (failed job) and "
                "clear this task."
            )
        return resumption

    def _book_seen_ending(self, job_id: str | None, remote: VideoJob) -> None:
        """Book the earlier try's job when this look is the first to see it ended: it ended after
        that try stopped waiting, and the job a changed request supersedes (or a refused or
        resubmitted failure) is never waited for again (a download books its own ending)."""
        status = remote.known_status
        if job_id and status is not None and status.is_terminal:
            self.book_ending(job_id, status.value, cost_usd=remote.cost, generation_id=remote.generation_id)

    def _look_at(self, record: SubmissionRecord | None) -> VideoJob | RemoteUnknown | None:
        """The earlier job as OpenRouter answers now. The first request of a try that finds one is
        about it: an outage or a 404 re-attaches (the wait polls it until its deadline) instead of
        failing a try that would have kept the paid video."""
        from airflow_provider_orvideo.polling import waits_through

        if record is None or not needs_remote_check(record):
            return None
        try:
            return self.hook.get_job(record.job_id or "")
        except OpenRouterVideoError as error:
            if not waits_through(error):
                raise
            return RemoteUnknown(str(error), not_found=isinstance(error, OpenRouterNotFoundError))

    @staticmethod
    def _superseded(
        record: SubmissionRecord | None, decision: Decision, remote: VideoJob | RemoteUnknown | None
    ) -> tuple[dict[str, Any], ...]:
        """The jobs on record as superseded, plus the one this decision supersedes (paid, or
        still rendering and billing): kept and reported on every later try."""
        if record is None:
            return ()
        superseded = tuple(dict(entry) for entry in record.superseded)
        if decision.supersedes is None:
            return superseded
        known = remote if isinstance(remote, VideoJob) else None
        entry: dict[str, Any] = {
            "job_id": decision.supersedes,
            "status": known.status if known is not None else "unknown",
            "cost": known.cost if known is not None else None,
            "outputs": sorted(record.outputs),
        }
        return (*(e for e in superseded if e.get("job_id") != entry["job_id"]), entry)

    def _report_superseded(self, entry: Mapping[str, Any]) -> None:
        cost = "unknown" if entry.get("cost") is None else f"${entry['cost']:.4f}"
        self.log.warning(
            "Job %s of an earlier try of this task instance (%s, cost %s; video: %s) was for a "
            "different request; it is kept on record (XCom superseded_jobs), not re-used.",
            entry.get("job_id"),
            entry.get("status"),
            cost,
            ", ".join(entry.get("outputs") or []) or "not downloaded",
        )

    def check_output_free(
        self,
        resumption: Resumption,
        target: OutputTarget,
        *,
        overwrite: bool,
        claims: OutputClaims | None = None,
    ) -> None:
        """Before paying: no other map index renders the same path (``claims``), and no file that
        this task instance did not write for this request is there (unless ``overwrite``)."""
        from airflow_provider_orvideo._internal.output_paths import writer_of, written_by

        others = claims.claim(target.identity) if claims is not None and self.identity.mapped else ()
        if others:
            raise OutputPathCollisionError(
                f"output_path renders to {target.location!r} for map index {self.identity.map_index} and "
                f"for map index(es) {', '.join(map(str, others))} of task {self.identity.task_id!r}: each "
                "would pay for a video and only one file would be kept. Make the path differ per map "
                f"index, e.g. '.../clip_{{{{ ti.map_index }}}}.mp4'. {NOTHING_SPENT}"
            )
        if overwrite or not target.exists():
            return
        record = resumption.record
        paid_for = [e["job_id"] for e in resumption.superseded if target.location in (e.get("outputs") or [])]
        if paid_for:
            whose = (
                f"it holds the video of job {paid_for[-1]}, which an earlier try of this task "
                "instance paid for with a different request"
            )
        elif (
            record is not None
            and target.location in record.outputs
            and written_by(target, self.identity.writer(record.job_id))
        ):
            return  # this task instance's own video of this request
        else:
            writer = writer_of(target)
            whose = f"it was written by {writer}" if writer else "this task instance did not write it"
        raise OutputExistsError(
            f"output_path {target.location!r} already exists and {whose}. Not replacing a video this "
            "task did not write: give a path that differs per run (e.g. with {{ run_id }} or "
            f"{{{{ ts_nodash }}}}) or set overwrite=True. {NOTHING_SPENT}"
        )

    # -- the POST -------------------------------------------------------------------------------

    def submit(
        self,
        resumption: Resumption,
        body: Mapping[str, Any],
        *,
        callback_url: str | None = None,
        spend: Spend | None = None,
    ) -> str:
        """Reserve the estimate in the ledger, then POST the job between an intent record and a
        submitted record; return its id.

        The reservation comes first: a budget that cannot hold the estimate refuses before
        anything is recorded or sent (:class:`SpendBudgetExceededError`). The callback URL goes
        into the POST only, never into the record's fingerprint: turning webhooks on between
        tries must not make a retry pay for the same video again."""
        records = self._records
        intent = SubmissionRecord.intent(body, resumption.superseded)
        entry_id = self._reserve(intent.fingerprint, spend) if spend is not None else None
        records.save(intent)
        try:
            job = self.hook.submit(body if callback_url is None else {**body, "callback_url": callback_url})
        except Exception as error:
            # Proof that OpenRouter created nothing: the next try may submit freely, and the earlier
            # record comes back (superseded jobs stay on record). Otherwise the intent stays, and so
            # does the reservation until its lease ends.
            if submit_created_nothing(error):
                records.restore(resumption.record)
                if entry_id is not None:
                    self._book("release the reservation", lambda book: book.released(entry_id))
            raise
        if entry_id is not None:
            self._book("record the submitted job", lambda book: book.submitted(entry_id, job.id))
        for old in (str(entry["job_id"]) for entry in resumption.superseded if entry.get("job_id")):
            self._book("record a superseded job", lambda book, old=old: book.superseded(old, job.id))  # type: ignore[misc]
        try:
            records.save(intent.submitted(job.id))
        except Exception:
            self.log.error(
                "OpenRouter video job %s was created (it renders and bills) but could not be recorded in "
                "the task state store; the next try will treat its submit as lost (orphan_policy). Find "
                "it on OpenRouter's activity page by its id.",
                job.id,
            )
            raise
        return job.id

    def _entry(self, fingerprint: str | None, model: str | None, estimate_usd: float | None) -> Entry:
        from airflow_provider_orvideo._internal.ledger import Entry

        ti = self.identity
        return Entry(
            self.conn_id,
            ti.dag_id,
            ti.run_id,
            ti.task_id,
            ti.map_index,
            self.try_number,
            model,
            fingerprint,
            estimate_usd,
        )

    def _reserve(self, fingerprint: str, spend: Spend) -> str | None:
        """Book the intent and hold the estimate against the budgets (before the POST: a refusal
        or an unreachable ledger fails the task with nothing spent)."""
        if self.ledger is None:
            return None
        entry = self._entry(fingerprint, spend.model, spend.estimate_usd)
        return self.ledger.reserve(entry, spend.budgets, lease_seconds=spend.lease_seconds)

    def _book(self, what: str, write: Callable[[SpendLedger], object]) -> None:
        """A ledger write after paying: a failure is logged, never raised (the video comes first)."""
        if self.ledger is None:
            return
        try:
            write(self.ledger)
        except Exception as error:
            self.log.warning("The spend ledger could not %s (%s); the video is unaffected.", what, error)

    def book_ending(
        self,
        job_id: str,
        status: str,
        *,
        cost_usd: float | None,
        generation_id: str | None,
        unkept_reason: str | None = None,
    ) -> None:
        """Book how ``job_id`` ended (and its cost, when OpenRouter said it). A job with no ledger
        row (submitted by a release before the ledger) gets one now."""
        entry = self._entry(None, None, None)
        self._book(
            "record how the job ended",
            lambda book: book.ended(
                job_id,
                status,
                cost_usd=cost_usd,
                generation_id=generation_id,
                unkept_reason=unkept_reason,
                entry=entry,
            ),
        )

    # -- after the job completes ----------------------------------------------------------------

    def save_outputs(
        self, job: VideoJob, output_path: Any, output_conn_id: str | None, *, overwrite: bool, host: str
    ) -> SavedVideo:
        """Save every output of the completed ``job`` (output 0 at ``output_path``, the next ones
        numbered beside it), recording each in the store as it lands; return the task record to
        publish (the job's cost, where each output is and its size).

        Outputs an earlier try already saved completely (recorded size, MP4 signature, still
        written by this task instance) are kept. A file at an output location that this task
        instance did not write is never replaced (unless ``overwrite``): the paid video goes
        beside it, ``<stem>.<job id><suffix>``. An output OpenRouter no longer serves is skipped
        (and reported) unless it is the first."""
        self.book_ending(job.id, "completed", cost_usd=job.cost, generation_id=job.generation_id)
        try:
            saved = self._save_outputs(job, output_path, output_conn_id, overwrite=overwrite, host=host)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            self._book(
                "record a video not kept",
                lambda book: book.ended(
                    job.id,
                    "completed",
                    cost_usd=job.cost,
                    generation_id=job.generation_id,
                    unkept_reason=reason,
                ),
            )
            raise
        self._book("record where the video was kept", lambda book: book.kept(job.id, saved.paths))
        return saved

    def _save_outputs(
        self, job: VideoJob, output_path: Any, output_conn_id: str | None, *, overwrite: bool, host: str
    ) -> SavedVideo:
        first = self._first_output(job.id, output_path, output_conn_id)
        records = self._records
        record = records.load()
        record = record if record is not None and record.job_id == job.id else None
        paths: list[str] = []
        sizes: list[int] = []
        unavailable: list[int] = []
        for index in range(job.output_count):
            target = first.for_index(index)
            kept = self._kept_output(record, job.id, target)
            if kept is not None:
                location, size = kept
                self.log.info(
                    "Output %d of job %s is already complete at %s; not downloading it again.",
                    index,
                    job.id,
                    location,
                )
            else:
                try:
                    location, size = self._download(
                        job.id, index, target, record, overwrite=overwrite, host=host
                    )
                except VideoOutputGoneError as gone:
                    if index == 0:
                        raise
                    # The job was paid and its first outputs are saved: keep them and say what is missing.
                    self.log.warning("%s Keeping the other outputs of the job.", gone)
                    unavailable.append(index)
                    continue
                if record is not None:
                    record = record.with_output(location, size)
                    records.save(record)
            paths.append(location)
            sizes.append(size)
        return SavedVideo(
            job_id=job.id,
            generation_id=job.generation_id,
            cost=job.cost,
            is_byok=job.is_byok,
            paths=tuple(paths),
            sizes=tuple(sizes),
            host=host,
            conn_id=first.conn_id,  # the player opens object storage with it (never a secret)
            unavailable=tuple(unavailable),
        )

    @staticmethod
    def _first_output(job_id: str, output_path: Any, output_conn_id: str | None) -> OutputTarget:
        """Output 0's location, checked before paying and only normalised now: after paying a
        refusal would end the task for good, so it becomes a retryable failure."""
        from airflow_provider_orvideo._internal.output_paths import output_target

        try:
            return output_target(output_path, output_conn_id, check=False)
        except InvalidOutputPathError as error:
            raise OutputPathUnknownError(
                f"OpenRouter video job {job_id} is complete and paid, but where to save it cannot be "
                f"determined on resume: {error} A retry of this task downloads it without paying."
            ) from None

    def _still_ours(self, record: SubmissionRecord | None, job_id: str, target: OutputTarget) -> bool:
        """Recorded by this task instance for this job, and not replaced by another writer since."""
        from airflow_provider_orvideo._internal.output_paths import written_by

        return (
            record is not None
            and target.location in record.outputs
            and written_by(target, self.identity.writer(job_id))
        )

    def _kept_output(
        self, record: SubmissionRecord | None, job_id: str, target: OutputTarget
    ) -> tuple[str, int] | None:
        """Where an earlier try saved this output completely (at ``target`` or beside it), and its size."""
        from airflow_provider_orvideo._internal.atomic_output import is_complete_output

        if record is None:
            return None
        for candidate in (target, target.aside(job_id)):
            size = record.outputs.get(candidate.location)
            if (
                size is not None
                and self._still_ours(record, job_id, candidate)
                and is_complete_output(candidate.storage_uri, size)
            ):
                return candidate.location, size
        return None

    def _download(
        self,
        job_id: str,
        index: int,
        target: OutputTarget,
        record: SubmissionRecord | None,
        *,
        overwrite: bool,
        host: str,
    ) -> tuple[str, int]:
        """Stream output ``index`` into ``target`` (or beside it); return where it landed and its size."""
        from airflow_provider_orvideo._internal.atomic_output import AtomicOutput, owner_tag

        output = AtomicOutput(
            target.storage_uri,
            replace=overwrite or self._still_ours(record, job_id, target),
            aside=target.aside(job_id).storage_uri,
            writer=self.identity.writer(job_id),
            # Temporary files named after the task instance: a retry removes what a killed try left.
            owner=owner_tag(self.identity.facts()),
        )
        size = self.hook.save_output(job_id, index, output)
        committed = output.committed_location or target.storage_uri
        saved_at = target if committed == target.storage_uri else target.renamed(committed.rsplit("/", 1)[-1])
        if saved_at.location != target.location:
            self.log.warning(
                "Another writer created %s while job %s rendered; not replacing it. Saved the paid "
                "video beside it instead: %s.",
                target.location,
                job_id,
                saved_at.location,
            )
        self.log.info(
            "Saved output %d of OpenRouter video job %s to %s on host %s (%s bytes).",
            index,
            job_id,
            saved_at.location,
            host,
            f"{size:,}",
        )
        return saved_at.location, size

    def spend_record(self) -> dict[str, Any] | None:
        """This task instance's ``spend`` XCom (:func:`task_record.spend_value`), or None when
        there is no ledger or it cannot be read (logged: the video comes first)."""
        from airflow_provider_orvideo._internal.task_record import spend_value

        reader = getattr(self.ledger, "task_jobs", None)
        if reader is None:
            return None
        ti = self.identity
        try:
            return spend_value(reader(ti.dag_id, ti.run_id, ti.task_id, ti.map_index))
        except Exception as error:
            self.log.warning("The spend ledger could not be read for XCom spend (%s).", error)
            return None

    def publish_spend(self, ti: Any) -> None:
        """Push :meth:`spend_record` as the ``spend`` XCom of ``ti`` (when the ledger answers)."""
        from airflow_provider_orvideo._internal.task_record import SPEND

        record = self.spend_record()
        if record is not None:
            ti.xcom_push(key=SPEND, value=record)

    def book_event_ending(self, event: Any, ti: Any) -> None:
        """The job ended without a video (a trigger's or a poll's event): book how, when OpenRouter
        said so (not our own timeout: the job may still render), and publish the spend."""
        if event.status.value in ("failed", "cancelled", "expired"):
            self.book_ending(
                event.job_id, event.status.value, cost_usd=event.cost, generation_id=event.generation_id
            )
        self.publish_spend(ti)

    def finish(self) -> None:
        """The task instance succeeded: drop a record kept in a Variable (Airflow before 3.3);
        Airflow's own task state store is left to Airflow."""
        self._records.finish()

    # -- the decorator's returned fields ---------------------------------------------------------

    def carry_fields(self, fields: Mapping[str, Any]) -> None:
        """Keep the request fields a decorated function returned for the resumed task (JSON only:
        a returned ``Path`` becomes its str, a tuple a list)."""
        import json

        if self.store is not None:
            self.store.set(CARRIED_FIELDS_KEY, json.loads(json.dumps(dict(fields), default=str)))

    def carried_fields(self) -> dict[str, Any]:
        carried = self.store.get(CARRIED_FIELDS_KEY) if self.store is not None else None
        return dict(carried) if isinstance(carried, dict) else {}
