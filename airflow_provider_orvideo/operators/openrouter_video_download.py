"""Operator that saves the video of an OpenRouter job submitted elsewhere: by a script, another
system, or a task of another DAG, and announced by the webhook receiver's asset event.

A driver, like ``operators/openrouter_video.py``, and on the same parts: the task's record and
every save from ``_internal/lifecycle`` (paid means kept, the spend ledger), every wait from
``_internal/waiting`` and the trigger, how a job ended from ``polling``. Here: one look at the
job, then download, fail with how it ended, or wait for it. Nothing here can pay: the only
requests are ``GET``s of the job and of its content.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator

from airflow_provider_orvideo.defaults import (
    DEFAULT_CONN_ID,
    DEFAULT_JOB_TIMEOUT_SECONDS,
    DEFAULT_POLL_INTERVAL_SECONDS,
)

# Only what DAG parsing needs is imported at module level (the dag-processor imports this module
# all day); everything that runs a task is imported inside the methods.
if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_orvideo._internal.api import VideoJob
    from airflow_provider_orvideo._internal.lifecycle import Resumption, StateStore, VideoJobLifecycle
    from airflow_provider_orvideo._internal.submission import SubmissionRecord
    from airflow_provider_orvideo._internal.task_record import SavedVideo
    from airflow_provider_orvideo._internal.waiting import WaitPlan
    from airflow_provider_orvideo.exceptions import OpenRouterVideoError
    from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
    from airflow_provider_orvideo.polling import JobPoller, VideoJobEvent

__all__ = ["OpenRouterVideoDownloadOperator"]


class OpenRouterVideoDownloadOperator(BaseOperator):
    """Save the video of the OpenRouter job ``job_id`` to ``output_path``; submit nothing.

    For a DAG scheduled on the webhook receiver's asset (the connection's ``webhook_asset``: one
    event per completed job, ``extra["job_id"]``), or any DAG that knows the id of a job submitted
    elsewhere. One ``GET`` of the job decides: completed, the worker downloads now; still
    rendering, the task waits in the triggerer (:class:`OpenRouterVideoTrigger`, ``deferrable``,
    the default) or on the worker, then downloads; failed, cancelled or expired, it fails with
    the exception :class:`OpenRouterVideoOperator` raises for that ending. A job id OpenRouter
    does not know fails with an :class:`OpenRouterNotFoundError` naming it.

    Saving follows the main operator's rules (``VideoJobLifecycle.save_outputs``): every output,
    atomically; a file this task instance did not write is never replaced (refused before
    waiting, unless ``overwrite``; one written meanwhile gets the video beside it); outputs a
    failed try saved are kept by the retry; the job is booked in the spend ledger. XCom gets
    ``job_id`` and the main operator's record of a download (``output_paths``, ``usage`` ...),
    each ``Asset`` in ``outlets`` its event ``extra``, and the first path is returned.

    ``job_id``, ``output_path``, ``output_conn_id`` and ``openrouter_conn_id`` are templated.
    ``retries`` is Airflow's default: a retry costs nothing here, and a download that fails on a
    transient error already waits (deferred) for the job to be fetchable again.
    """

    template_fields: Sequence[str] = ("job_id", "output_path", "output_conn_id", "openrouter_conn_id")
    ui_color = "#dcd6f7"

    overwrite: bool
    deferrable: bool
    poll_interval: float
    job_timeout: float
    """Seconds."""

    def __init__(
        self,
        *,
        job_id: str,
        output_path: str,
        output_conn_id: str | None = None,
        overwrite: bool = False,
        openrouter_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        job_timeout: timedelta | float = DEFAULT_JOB_TIMEOUT_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Imported here to keep parsing cheap; checked now, at DAG parse, by the main operator's checkers.
        from airflow_provider_orvideo._internal.arguments import check_download_arguments
        from airflow_provider_orvideo.defaults import default_deferrable

        checked = check_download_arguments(
            job_id=job_id,
            openrouter_conn_id=openrouter_conn_id,
            overwrite=overwrite,
            deferrable=default_deferrable() if deferrable is None else deferrable,
            poll_interval=poll_interval,
            job_timeout=job_timeout,
            jinja_environment_kwargs=getattr(self.get_dag(), "jinja_environment_kwargs", None),
            template_ext=self.template_ext,
            task_id=self.task_id,
            operator_name=getattr(self, "custom_operator_name", None) or type(self).__name__,
        )
        self.job_id = job_id
        self.output_path = output_path
        self.output_conn_id = output_conn_id
        self.openrouter_conn_id = openrouter_conn_id
        self.overwrite = checked.overwrite
        self.deferrable = checked.deferrable
        self.poll_interval = checked.poll_interval
        self.job_timeout = checked.job_timeout
        self._saved: SavedVideo | None = None
        """What this process saved: for OpenLineage."""

    @cached_property
    def hook(self) -> OpenRouterVideoHook:
        from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook

        return OpenRouterVideoHook(self.openrouter_conn_id)

    def _lifecycle(self, context: Context) -> VideoJobLifecycle:
        """The task instance's lifecycle (``task_setup.task_lifecycle``): the job exists and may
        be paid, so a spend ledger that cannot be opened is logged, never fatal."""
        from airflow_provider_orvideo._internal.task_setup import task_lifecycle

        return task_lifecycle(self.hook, context, self.log, conn_id=self.openrouter_conn_id)

    def _wait_plan(self, job_id: str) -> WaitPlan:
        """Every wait polls every ``poll_interval`` (``WaitPlan.after_look``): the job's age is unknown."""
        from airflow_provider_orvideo._internal.task_setup import task_wait_plan

        return task_wait_plan(
            self.hook.get_settings().base_url,
            self.log,
            job_id=job_id,
            poll_interval=self.poll_interval,
            initial_poll_delays=(),
            job_timeout=self.job_timeout,
            webhook_poll_interval=self.poll_interval,
        )

    # -- execute ------------------------------------------------------------------------------

    def execute(self, context: Context) -> str:
        from airflow_provider_orvideo._internal import task_record
        from airflow_provider_orvideo._internal.arguments import check_rendered_download
        from airflow_provider_orvideo._internal.lifecycle import XComOutputClaims
        from airflow_provider_orvideo._internal.output_paths import output_target

        job_id = check_rendered_download(
            self.job_id, self.openrouter_conn_id, f"Invalid arguments for task {self.task_id!r}"
        )
        # The output first: a path that cannot be written, or a file this task instance did not
        # write, is refused before anything is asked of OpenRouter or waited for.
        target = output_target(self.output_path, self.output_conn_id)
        lifecycle = self._lifecycle(context)
        record, fresh = _record_of(lifecycle.store, job_id)
        lifecycle.check_output_free(
            _as_resumption(record), target, overwrite=self.overwrite, claims=XComOutputClaims(context["ti"])
        )
        if fresh:
            _save_record(lifecycle.store, record)
        context["ti"].xcom_push(key=task_record.JOB_ID, value=job_id)
        return self._look(context, job_id, deadline=None)

    def _look(self, context: Context, job_id: str, *, deadline: float | None) -> str:
        """One ``GET`` of the job decides: download, fail with how it ended, or wait (until
        ``deadline``, the one the task already waited with, else ``job_timeout`` from now)."""
        from dataclasses import replace

        from airflow_provider_orvideo.polling import poll_until_event, terminal_event

        job = self._get_job(job_id)
        now = time.time()
        ended = terminal_event(job_id, job.status, job.error, job=job)
        if ended is not None:  # the deadline lets a download that fails wait for the job again
            until = now + self.job_timeout if deadline is None else deadline
            return self._finish(context, replace(ended, deadline=until), job=job)
        self.log.info("OpenRouter video job %s is %s; waiting for it to end.", job_id, job.status)
        poller = self._wait_plan(job_id).after_look(job_id, now=now, deadline=deadline)
        if not self.deferrable:
            return self._finish(context, poll_until_event(poller, self.hook.get_job, log=self.log))
        self._defer(poller)

    def _get_job(self, job_id: str) -> VideoJob:
        """``GET /videos/{job_id}``; a 404 or 410 names the id and says nothing was paid here."""
        from airflow_provider_orvideo.exceptions import OpenRouterNotFoundError

        try:
            return self.hook.get_job(job_id)
        except OpenRouterNotFoundError as error:
            raise OpenRouterNotFoundError(
                f"OpenRouter has no video job {job_id!r} (HTTP {error.http_status}: "
                f"{error.api_message or 'not found'}). Check job_id: it must be an id OpenRouter answered a "
                "submit with, for a key of the same account as the connection "
                f"{self.openrouter_conn_id!r}. Nothing was downloaded; this task never submits a job.",
                http_status=error.http_status,
                api_message=error.api_message,
                error_type=error.error_type,
            ) from None

    def _defer(self, poller: JobPoller) -> NoReturn:
        """Wait in the triggerer for ``poller``'s job (only ``GET``s); resume in :meth:`execute_complete`."""
        from airflow_provider_orvideo._internal.task_setup import defer_to_trigger

        defer_to_trigger(self, poller, self.openrouter_conn_id)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume on a worker after the trigger's one event: download, or fail with the reason.

        An event from a webhook (a job submitted with this task instance in its callback URL) is
        only a hint: one ``GET`` of the job decides, as in :meth:`execute`.
        """
        from airflow_provider_orvideo.polling import VideoJobEvent

        resumed = VideoJobEvent.from_payload(event)
        if resumed.from_webhook:
            return self._look(context, resumed.job_id, deadline=resumed.deadline)
        return self._finish(context, resumed)

    # -- after the job ends -------------------------------------------------------------------

    def _finish(self, context: Context, event: VideoJobEvent, *, job: VideoJob | None = None) -> str:
        """End the task on the job's final event, as the main operator does: the same exception
        for an ending without a video (``polling.ending_error``), the same booking of it."""
        from airflow_provider_orvideo.exceptions import OpenRouterVideoError
        from airflow_provider_orvideo.polling import EventStatus, ending_error, next_try

        if event.status is not EventStatus.COMPLETED:
            self._lifecycle(context).book_event_ending(event, context["ti"])
            upcoming = next_try(getattr(context["ti"], "try_number", None), self.retries)
            raise ending_error(event, next_try=upcoming, resubmit_failed=False)
        try:
            return self._download(context, event.job_id, job=job)
        except OpenRouterVideoError as error:
            self._download_later(event, error)
            raise

    def _download_later(self, event: VideoJobEvent, error: OpenRouterVideoError) -> None:
        """After a failed download of the completed job: defer until it can be fetched again
        (``WaitPlan.after_failed_download``). Returns (the caller raises) when waiting cannot help
        (a local write failure, an output gone), past the deadline, or with ``deferrable=False``."""
        poller = (
            self._wait_plan(event.job_id).after_failed_download(event, error, now=time.time())
            if self.deferrable
            else None
        )
        if poller is None:
            return
        self.log.warning(
            "Downloading the video of OpenRouter video job %s failed (%s); trying again in %.0f s, and "
            "on until %s.",
            event.job_id,
            error,
            poller.poll_interval,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(poller.deadline)),
        )
        self._defer(poller)

    def _download(self, context: Context, job_id: str, *, job: VideoJob | None = None) -> str:
        """Fetch the completed job (signed URLs never cross the trigger boundary), save every
        output (``VideoJobLifecycle.save_outputs``), then publish what the main operator does."""
        from airflow_provider_orvideo._internal.assets import annotate_asset_events, video_asset_extra
        from airflow_provider_orvideo.exceptions import VideoOutputGoneError

        job = job or self._get_job(job_id)
        host = socket.gethostname()  # where a local output is: said wherever the path is reported
        lifecycle = self._lifecycle(context)
        try:
            saved = lifecycle.save_outputs(
                job, self.output_path, self.output_conn_id, overwrite=self.overwrite, host=host
            )
        except VideoOutputGoneError as gone:
            # Named as the DAG gave it: the hook's sentence about the output is capitalised whole,
            # which lowers the case of the job id in it.
            raise VideoOutputGoneError(
                f"OpenRouter no longer serves the video of job {job.id}: {gone}"
            ) from None
        for key, value in saved.xcoms():
            context["ti"].xcom_push(key=key, value=value)
        cost = "unknown" if job.cost is None else f"${job.cost:.4f}"
        self.log.info("OpenRouter video job %s cost %s (generation %s).", job.id, cost, job.generation_id)
        # The request is not known here (another system submitted it): model and duration are None.
        extra = video_asset_extra(job=job, request={}, locations=list(saved.paths), host=host)
        annotate_asset_events(self.outlets, context, extra)
        self._saved = saved
        lifecycle.publish_spend(context["ti"])
        lifecycle.finish()
        return saved.paths[0]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage, when its provider is installed: the videos saved and the job (no inputs,
        no model: the request is not known here)."""
        from airflow_provider_orvideo._internal.lineage import operator_lineage

        return operator_lineage(self._saved, None, ())


# -- the task instance's record of a job it did not submit -------------------------------------


def _record_of(store: StateStore | None, job_id: str) -> tuple[SubmissionRecord, bool]:
    """The record ``save_outputs`` keeps the saved outputs in, so a retry keeps them: an earlier
    try's for this job, or a new one (``True``: not stored yet) naming the job as submitted (by
    someone else: there is no request to fingerprint, so the fingerprint is the job's)."""
    from airflow_provider_orvideo._internal.submission import (
        SubmissionLedger,
        SubmissionRecord,
        fingerprint,
    )

    record = SubmissionLedger(store).load()
    if record is not None and record.job_id == job_id:
        return record, False
    return SubmissionRecord(fingerprint({"download_of": job_id}), "submitted", job_id), True


def _save_record(store: StateStore | None, record: SubmissionRecord) -> None:
    """Store ``record`` (after the output check: a refused try leaves an earlier record as it was)."""
    from airflow_provider_orvideo._internal.submission import SubmissionLedger

    SubmissionLedger(store).save(record)


def _as_resumption(record: SubmissionRecord) -> Resumption:
    """``record`` as the ``Resumption`` ``check_output_free`` reads: a file at the output is this
    task instance's only if the record lists it and it still carries this job's writer."""
    from airflow_provider_orvideo._internal.lifecycle import Resumption
    from airflow_provider_orvideo._internal.submission import Action, Decision

    decision = Decision(Action.DOWNLOAD, f"job {record.job_id} submitted elsewhere", record.job_id)
    return Resumption(decision, record, None, ())
