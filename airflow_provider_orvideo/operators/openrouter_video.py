"""Operator that turns a prompt into a video file through OpenRouter, deferring while it renders.

A driver: the request fields come from ``_internal/request_fields``, every transition of the task
instance's record from ``_internal/lifecycle``, every wait from ``_internal/waiting``, how a job
ended from ``polling``. Here: the order of the steps and their Airflow side (XCom, deferral).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator

from airflow_provider_orvideo._internal.request_fields import TEMPLATE_FIELDS
from airflow_provider_orvideo.defaults import (
    DEFAULT_CONN_ID,
    DEFAULT_INITIAL_POLL_DELAYS,
    DEFAULT_JOB_TIMEOUT_SECONDS,
    DEFAULT_POLL_INTERVAL_SECONDS,
    DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS,
    dag_leaves_retries_unset,
    default_retries,
)
from airflow_provider_orvideo.links.openrouter_video import WatchVideoLink

# Only what DAG parsing needs is imported at module level: the dag-processor imports this module
# all day. Everything that runs a task is imported inside the methods below.
if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_orvideo._internal.api import VideoJob
    from airflow_provider_orvideo._internal.lifecycle import Resumption, Spend, VideoJobLifecycle
    from airflow_provider_orvideo._internal.task_record import SavedVideo
    from airflow_provider_orvideo._internal.validation import VideoRequest
    from airflow_provider_orvideo._internal.waiting import WaitPlan
    from airflow_provider_orvideo.exceptions import OpenRouterVideoError, SpendBudgetExceededError
    from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
    from airflow_provider_orvideo.polling import JobPoller, VideoJobEvent

__all__ = ["OpenRouterVideoOperator"]


_DEFAULT_RETRIES = default_retries()


class OpenRouterVideoOperator(BaseOperator):
    """Generate a video with OpenRouter and save it to ``output_path``.

    The request is checked against the model's capabilities (and ``max_cost_usd``) and submitted
    on the worker; the worker slot is then released while an :class:`OpenRouterVideoTrigger`
    polls (``deferrable``, the default) or the job's webhook resumes the task. When the job
    completes, the worker downloads every output and returns the path of the first one. A retry
    re-attaches to the job it paid for instead of paying again, which is why ``retries``
    defaults to 3 (:data:`~airflow_provider_orvideo.defaults.DEFAULT_VIDEO_RETRIES`).

    XCom gets the task record (:mod:`airflow_provider_orvideo._internal.task_record`: ``job_id``,
    ``video_request``, then ``output_paths``, ``usage`` ...); on Airflow 3.1+ a "Watch video"
    link opens the provider's player page; each ``Asset`` in ``outlets`` gets an event whose
    ``extra`` names the job, model, cost and videos (:mod:`airflow_provider_orvideo._internal.assets`).

    Parameters are keyword-only; the request fields (one row each in
    :data:`~airflow_provider_orvideo._internal.request_fields.REQUEST_FIELD_TABLE`),
    ``output_path``, ``output_conn_id`` and ``openrouter_conn_id`` are templated. The operator
    reference (``docs/operator.md``) is the one reference of every parameter: its default, what it does and
    what is checked before paying (a test keeps it complete).
    """

    operator_extra_links = (WatchVideoLink(),)
    template_fields: Sequence[str] = TEMPLATE_FIELDS
    ui_color = "#e8dcff"

    # Kept from the arguments (``arguments.operator_attributes``): each request field of
    # ``REQUEST_FIELD_TABLE`` and the output location as given (templated), the rest normalised.
    output_path: str
    output_conn_id: str | None
    overwrite: bool
    airflow_trace: bool
    max_cost_usd: float | None
    strict_cost_check: bool
    budget_preflight: bool
    dag_budget_usd: float | None
    dag_budget_window: str
    on_budget_exceeded: str
    resubmit_failed_jobs: bool
    orphan_policy: str
    openrouter_conn_id: str
    deferrable: bool
    poll_interval: float
    initial_poll_delays: list[float]
    job_timeout: float
    callback_url: str | None
    webhook_poll_interval: float

    def __init__(
        self,
        *,
        prompt: str,
        model: str,
        output_path: str,
        output_conn_id: str | None = None,
        overwrite: bool = False,
        duration: int | str | None = None,
        resolution: str | None = None,
        aspect_ratio: str | None = None,
        size: str | None = None,
        generate_audio: bool | str | None = None,
        seed: int | str | None = None,
        frame_images: dict[str, Any] | None = None,
        input_references: list[Any] | None = None,
        provider_options: dict[str, dict[str, Any]] | None = None,
        previous_job_id: str | None = None,
        session_id: str | None = None,
        trace: dict[str, Any] | None = None,
        user: str | None = None,
        airflow_trace: bool = True,
        max_cost_usd: float | None = None,
        strict_cost_check: bool = False,
        budget_preflight: bool = False,
        dag_budget_usd: float | None = None,
        dag_budget_window: str | float = "utc_day",
        on_budget_exceeded: str = "fail",
        resubmit_failed_jobs: bool = False,
        orphan_policy: str = "fail",
        openrouter_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        initial_poll_delays: Sequence[float] = DEFAULT_INITIAL_POLL_DELAYS,
        job_timeout: timedelta | float = DEFAULT_JOB_TIMEOUT_SECONDS,
        max_consecutive_poll_failures: int | None = None,
        callback_url: str | None = None,
        webhook_poll_interval: float = DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS,
        retries: int | None = _DEFAULT_RETRIES,
        **kwargs: Any,
    ) -> None:
        given = dict(locals())  # the arguments as passed (the first statement: nothing else is local yet)
        # ``retries`` is declared here so that Airflow fills it from ``default_args`` and, for
        # ``.partial()``, takes this default when neither sets it (see DEFAULT_VIDEO_RETRIES).
        super().__init__(retries=retries, **kwargs)
        self._adopt(given)
        self._saved: tuple[SavedVideo, str | None] | None = None
        """What this process saved, and the model: for OpenLineage."""

    def _adopt(self, given: Mapping[str, Any]) -> None:
        """Keep the arguments (``arguments.operator_attributes``): checked now, at DAG parse."""
        # Imported here to keep parsing cheap (the dag-processor imports this module all day).
        from airflow_provider_orvideo._internal.arguments import operator_attributes

        attributes = operator_attributes(
            given,
            jinja_environment_kwargs=getattr(self.get_dag(), "jinja_environment_kwargs", None),
            template_ext=self.template_ext,
            task_id=self.task_id,
            operator_name=getattr(self, "custom_operator_name", None) or type(self).__name__,
        )
        for name, value in attributes.items():
            setattr(self, name, value)

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """``BaseOperator.partial``, with this operator's default ``retries`` when neither the call
        nor the DAG's (or task group's) ``default_args`` set it: the scheduler reads a mapped
        task's retries from here, and Airflow before 3.3 does not take an operator's own
        signature default for it. Its non-templated arguments are checked now, at DAG parse, as
        a plain operator's are (``poll_interval=0`` fails the parse, not each mapped task)."""
        import inspect

        from airflow_provider_orvideo._internal.arguments import check_partial_arguments

        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(cls.__init__).parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }
        check_partial_arguments(kwargs, defaults, operator_name=cls.__name__)
        if "retries" not in kwargs and dag_leaves_retries_unset(
            kwargs.get("dag"), kwargs.get("default_args")
        ):
            kwargs["retries"] = _DEFAULT_RETRIES
        return super().partial(**kwargs)

    @cached_property
    def hook(self) -> OpenRouterVideoHook:
        from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook

        return OpenRouterVideoHook(self.openrouter_conn_id)

    def _lifecycle(self, context: Context, *, paid: bool = True) -> VideoJobLifecycle:
        """This task instance's job lifecycle, on its durable store (see ``compat.task_state_store``)
        and the spend ledger. ``paid``: a job may exist, so a ledger that cannot be opened is
        logged and skipped; before paying, it fails the task (nothing spent, a retry tries again)."""
        from airflow_provider_orvideo._internal.task_setup import task_lifecycle

        return task_lifecycle(
            self.hook,
            context,
            self.log,
            conn_id=self.openrouter_conn_id,
            orphan_policy=self.orphan_policy,
            resubmit_failed=self.resubmit_failed_jobs,
            paid=paid,
        )

    # -- before money -------------------------------------------------------------------------

    def _request_fields(self) -> dict[str, Any]:
        """Every request field (``request_fields.REQUEST_FIELDS``) by name, as now (rendered once
        the task runs)."""
        from airflow_provider_orvideo._internal.request_fields import REQUEST_FIELDS

        return {name: getattr(self, name) for name in REQUEST_FIELDS}

    def _video_request(self, context: Context) -> VideoRequest:
        """Type-check the rendered fields and read the media sources (no OpenRouter call)."""
        from airflow_provider_orvideo._internal.arguments import check_rendered_fields
        from airflow_provider_orvideo._internal.lifecycle import TaskIdentity
        from airflow_provider_orvideo._internal.request_fields import NON_MEDIA_FIELDS
        from airflow_provider_orvideo._internal.validation import build_request_from, shown_model
        from airflow_provider_orvideo.media import resolve_frame_images, resolve_input_references

        # The parse-time checks again, now on the rendered values: every type and shape problem at
        # once, before any media is read and before the trace is merged with Airflow's.
        fields = self._request_fields()
        check_rendered_fields(fields, f"Invalid video request for model {shown_model(fields['model'])}")
        frame_images = resolve_frame_images(fields["frame_images"])
        input_references = resolve_input_references(fields["input_references"])
        if frame_images and input_references:
            self.log.warning(
                "Both frame_images and input_references are set: OpenRouter uses frame_images "
                "(image-to-video) and ignores input_references."
            )
        trace = fields["trace"]
        if self.airflow_trace:  # the task instance's identity (never the try), under the user's keys
            trace = {**TaskIdentity.of(context["ti"]).trace(), **(trace or {})}
        return build_request_from(
            {**{name: fields[name] for name in NON_MEDIA_FIELDS}, "trace": trace},
            frame_images=frame_images,
            input_references=input_references,
        )

    def _check_before_paying(
        self, context: Context, lifecycle: VideoJobLifecycle, resumption: Resumption, request: VideoRequest
    ) -> Spend:
        """What only a new submit needs: the output location, the model's capabilities, the body's
        size, the output free, the price under ``max_cost_usd``; then what the submit holds against
        the spend budgets (reserved by :meth:`VideoJobLifecycle.submit`). Each refusal says nothing
        was paid."""
        from airflow_provider_orvideo._internal.lifecycle import XComOutputClaims
        from airflow_provider_orvideo._internal.output_paths import output_target
        from airflow_provider_orvideo._internal.spending import plan_spend
        from airflow_provider_orvideo._internal.validation import check_against_model, check_body_size
        from airflow_provider_orvideo.pricing import check_cost, estimate_cost, preflight_key_budget

        target = output_target(self.output_path, self.output_conn_id)
        model = check_against_model(request, self.hook.list_models())
        check_body_size(request)
        lifecycle.check_output_free(
            resumption, target, overwrite=self.overwrite, claims=XComOutputClaims(context["ti"])
        )
        estimate = estimate_cost(
            model,
            duration=request.duration,
            resolution=request.resolution,
            generate_audio=request.generate_audio,
        )
        check_cost(estimate, max_cost_usd=self.max_cost_usd, strict=self.strict_cost_check, log=self.log)
        if self.budget_preflight:  # advisory when GET /key fails: the submit's own answer tells
            needed_until, strict = time.time() + self.job_timeout, self.strict_cost_check
            key = self.hook.get_key_status
            preflight_key_budget(key, estimate, needed_until, strict, self.openrouter_conn_id, self.log)
        return plan_spend(
            lifecycle,
            model.id,
            estimate,
            connection_budget=self.hook.get_settings().budget,
            dag_budget=(self.dag_budget_usd, self.dag_budget_window),
            max_cost_usd=self.max_cost_usd,
            log=self.log,
        )

    # -- execute ------------------------------------------------------------------------------

    def execute(self, context: Context) -> str:
        from airflow_provider_orvideo._internal import task_record
        from airflow_provider_orvideo._internal.request_fields import request_facts
        from airflow_provider_orvideo.exceptions import SpendBudgetExceededError

        # A try that finds an earlier try's job talks about that job first: nothing else (the model
        # list, the output's bucket) is asked before it, and what only a new submit needs is
        # checked only when one will be made.
        request = self._video_request(context)
        body = request.to_body()
        lifecycle = self._lifecycle(context, paid=False)
        ti = context["ti"]
        resumption = lifecycle.resume(
            body, on_superseded=lambda jobs: ti.xcom_push(key=task_record.SUPERSEDED_JOBS, value=list(jobs))
        )
        plan = self._wait_plan(resumption.job_id or None)
        callback = self._callback_url(context)
        job_id = resumption.job_id
        if resumption.submits:
            spend = self._check_before_paying(context, lifecycle, resumption, request)
            try:
                job_id = lifecycle.submit(resumption, body, callback_url=callback, spend=spend)
            except SpendBudgetExceededError as refused:
                if self.on_budget_exceeded != "wait":
                    raise
                self._wait_for_budget(refused)
        facts = request_facts(body)
        ti.xcom_push(key=task_record.JOB_ID, value=job_id)
        ti.xcom_push(key=task_record.VIDEO_REQUEST, value=facts)
        if resumption.downloads:
            return self._download(context, job_id, facts)
        poller = plan.after_submit(
            job_id, now=time.time(), submitted=resumption.submits, webhook=callback is not None
        )
        if callback is not None:
            self.log.info(
                "Waiting for job %s with a webhook to %s; safety polls every %.0f s until the deadline.",
                job_id,
                callback.split("?", 1)[0],
                poller.poll_interval,
            )
        if not self.deferrable:
            from airflow_provider_orvideo.polling import poll_until_event

            return self._finish(context, poll_until_event(poller, self.hook.get_job, log=self.log), facts)
        self._defer(poller)

    def _wait_for_budget(self, refused: SpendBudgetExceededError) -> NoReturn:
        """``on_budget_exceeded="wait"``: sleep in the triggerer until the budget's window frees
        up, then run :meth:`execute` again (nothing was recorded or submitted)."""
        from datetime import datetime, timezone

        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        resets = datetime.fromtimestamp(max(refused.resets_at, time.time() + 1), tz=timezone.utc)
        self.log.warning("%s Waiting until %s (on_budget_exceeded='wait').", refused, resets.isoformat())
        self.defer(trigger=DateTimeTrigger(moment=resets), method_name="execute_after_budget_wait")

    def execute_after_budget_wait(self, context: Context, event: Any = None) -> str:
        """The budget's window reset: try again from the start (budgets are checked again)."""
        return self.execute(context)

    def _callback_url(self, context: Context) -> str | None:
        """The webhook URL for this task instance, or None: no receiver configured, or nothing
        would wait for the webhook (``deferrable=False``)."""
        from airflow_provider_orvideo._internal.lifecycle import TaskIdentity
        from airflow_provider_orvideo.webhooks import CallbackTarget

        base = self.hook.get_settings().callback_url if self.callback_url is None else self.callback_url
        if not base or not self.deferrable:
            return None
        ti = TaskIdentity.of(context["ti"])
        target = CallbackTarget(self.openrouter_conn_id, ti.dag_id, ti.task_id, ti.run_id, ti.map_index)
        return target.url(base)

    def _wait_plan(self, job_id: str | None) -> WaitPlan:
        """How this task waits for its job; ``job_id``: the earlier try's job, if any (named when
        ``[openrouter] loopback_poll_scale`` is unusable)."""
        from airflow_provider_orvideo._internal.task_setup import task_wait_plan

        return task_wait_plan(
            self.hook.get_settings().base_url,
            self.log,
            job_id=job_id,
            poll_interval=self.poll_interval,
            initial_poll_delays=self.initial_poll_delays,
            job_timeout=self.job_timeout,
            webhook_poll_interval=self.webhook_poll_interval,
        )

    def _defer(self, poller: JobPoller) -> NoReturn:
        """Wait in the triggerer for ``poller``'s job; resume in :meth:`execute_complete`."""
        from airflow_provider_orvideo._internal.task_setup import defer_to_trigger

        defer_to_trigger(self, poller, self.openrouter_conn_id)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume on a worker after the trigger's one event: download, or fail with the reason.

        An event from a webhook is only a hint, confirmed first with one GET of the job (see
        :meth:`_confirm_webhook`): OpenRouter's answer, not the webhook, decides.
        """
        from airflow_provider_orvideo.polling import VideoJobEvent

        resumed = VideoJobEvent.from_payload(event)
        if not resumed.from_webhook:
            return self._finish(context, resumed, None)
        return self._confirm_webhook(context, resumed)

    def _confirm_webhook(self, context: Context, claimed: VideoJobEvent) -> str:
        """End the task as one GET of the job says (:func:`~airflow_provider_orvideo.polling.confirm_webhook`),
        or, while the job is not finished or the GET failed transiently, defer again.

        Waiting again uses the normal poll schedule, not ``webhook_poll_interval``: this delivery's
        idempotency key is spent in the receiver, which may drop the real webhook as a duplicate.
        It keeps the deadline the task waited with, so contradicted webhooks cannot keep a task
        waiting forever (:meth:`WaitPlan.after_webhook`).
        """
        from airflow_provider_orvideo.exceptions import OpenRouterVideoError
        from airflow_provider_orvideo.polling import confirm_webhook, report

        plan = self._wait_plan(claimed.job_id)
        # Anchored at the GET below: the task waits again only for a job that GET saw unfinished,
        # so its checks start over as after a submit (none wasted at once).
        poller = plan.after_webhook(claimed.job_id, deadline=claimed.deadline, now=time.time())
        job: VideoJob | None = None
        try:
            job = self.hook.get_job(claimed.job_id)
        except OpenRouterVideoError as error:
            step = confirm_webhook(claimed, poller, error, now=time.time())
        else:
            step = confirm_webhook(claimed, poller, job, now=time.time())
        report(step, self.log)
        if step.event is None:
            self._defer(poller)
        return self._finish(context, step.event, None, job=job)

    # -- after the job ends -------------------------------------------------------------------

    def _finish(
        self,
        context: Context,
        event: VideoJobEvent,
        request: dict[str, Any] | None,
        *,
        job: VideoJob | None = None,
    ) -> str:
        """End the task on the job's final event; ``request`` is None after a deferral (read from
        XCom); ``job`` is the job as just fetched, if it was (saves the download its GET)."""
        from airflow_provider_orvideo.exceptions import OpenRouterVideoError
        from airflow_provider_orvideo.polling import EventStatus, ending_error, next_try

        if event.status is not EventStatus.COMPLETED:
            self._lifecycle(context).book_event_ending(event, context["ti"])
            upcoming = next_try(getattr(context["ti"], "try_number", None), self.retries)
            raise ending_error(event, next_try=upcoming, resubmit_failed=self.resubmit_failed_jobs)
        try:
            return self._download(context, event.job_id, request or self._submitted_request(context), job=job)
        except OpenRouterVideoError as error:
            self._download_later(event, error)
            raise

    def _download_later(self, event: VideoJobEvent, error: OpenRouterVideoError) -> None:
        """After a failed download of a completed, paid job: defer until it can be fetched again
        (:meth:`WaitPlan.after_failed_download`). Returns (the caller raises) when waiting cannot
        help, or with ``deferrable=False``."""
        plan = self._wait_plan(event.job_id) if self.deferrable else None
        poller = plan.after_failed_download(event, error, now=time.time()) if plan else None
        if poller is None:
            return
        self.log.warning(
            "Downloading the video of OpenRouter video job %s failed (%s). The job is complete and paid: "
            "trying again in %.0f s, and on until the deadline %s; nothing is submitted again.",
            event.job_id,
            error,
            poller.poll_interval,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(poller.deadline)),
        )
        self._defer(poller)

    def _submitted_request(self, context: Context) -> dict[str, Any]:
        """The request facts ``execute`` recorded before deferring; a task deferred by a release
        before that XCom existed validates its arguments again (they rendered the same way)."""
        from airflow_provider_orvideo._internal.request_fields import request_facts
        from airflow_provider_orvideo._internal.task_record import pulled_request

        return pulled_request(context["ti"]) or request_facts(self._video_request(context).to_body())

    def _download(
        self, context: Context, job_id: str, request: dict[str, Any], *, job: VideoJob | None = None
    ) -> str:
        """Fetch the finished job (URLs never cross the trigger boundary), save every output
        (:meth:`VideoJobLifecycle.save_outputs`), then publish the task's record."""
        from airflow_provider_orvideo._internal.assets import annotate_asset_events, video_asset_extra

        job = job or self.hook.get_job(job_id)
        host = socket.gethostname()  # where a local output is: said wherever the path is reported
        lifecycle = self._lifecycle(context)
        saved = lifecycle.save_outputs(
            job, self.output_path, self.output_conn_id, overwrite=self.overwrite, host=host
        )
        for key, value in saved.xcoms():
            context["ti"].xcom_push(key=key, value=value)
        cost = "unknown" if job.cost is None else f"${job.cost:.4f}"
        self.log.info("OpenRouter video job %s cost %s (generation %s).", job.id, cost, job.generation_id)
        extra = video_asset_extra(job=job, request=request, locations=list(saved.paths), host=host)
        annotate_asset_events(self.outlets, context, extra)
        self._saved = (saved, request.get("model"))
        lifecycle.publish_spend(context["ti"])
        lifecycle.finish()
        return saved.paths[0]

    @property
    def saved_video(self) -> SavedVideo | None:
        """What this try saved (None until it saved one): the *Watch video* link shows then."""
        return self._saved[0] if self._saved else None

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage, when its provider is installed (its listener calls this after success): the
        media read, the videos saved, the job, model and cost (see ``lineage.operator_lineage``)."""
        from airflow_provider_orvideo._internal.lineage import media_sources, operator_lineage

        saved, model = self._saved or (None, None)
        fields = self._request_fields()
        return operator_lineage(
            saved, model, media_sources(fields["frame_images"], fields["input_references"])
        )
