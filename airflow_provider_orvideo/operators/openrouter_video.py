"""Operator that turns a prompt into a video file through OpenRouter, deferring while it renders.

The operator is a driver: the request fields come from one table (``_internal/request_fields``),
every transition of the task instance's record (re-attach, intent, POST, outputs, finish) is
:class:`~airflow_provider_orvideo._internal.lifecycle.VideoJobLifecycle`'s, the poll decision is
:class:`~airflow_provider_orvideo.polling.JobPoller`'s, and how a job ended maps to an exception
in :mod:`airflow_provider_orvideo.polling`. What stays here is the order of the steps and the
Airflow side of each (XCom, deferral, asset events, OpenLineage).
"""

from __future__ import annotations

import socket
import time
import warnings
from collections.abc import Sequence
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
    default_deferrable,
    default_retries,
)
from airflow_provider_orvideo.links.openrouter_video import WatchVideoLink

# Only what DAG parsing needs is imported at module level: the dag-processor imports this module
# all day. Everything that runs a task is imported inside the methods below.
if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_orvideo._internal.api import VideoJob
    from airflow_provider_orvideo._internal.lifecycle import Resumption, VideoJobLifecycle
    from airflow_provider_orvideo._internal.output_paths import OutputTarget
    from airflow_provider_orvideo._internal.task_record import SavedVideo
    from airflow_provider_orvideo._internal.validation import VideoRequest
    from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
    from airflow_provider_orvideo.polling import JobPoller, VideoJobEvent

__all__ = [
    "OpenRouterVideoOperator",
]

DEFERRAL_GRACE_SECONDS = 300.0
"""Airflow's own deferral timeout is a safety net set past our deadline, so the trigger's
``timeout`` event (which reaches ``execute_complete`` with a clear message) always fires first."""

_DEFAULT_RETRIES = default_retries()


class OpenRouterVideoOperator(BaseOperator):
    """Generate a video with OpenRouter and save it to ``output_path``.

    The job is validated against the model's capabilities and submitted on the worker; the
    worker slot is then released while an :class:`OpenRouterVideoTrigger` polls (``deferrable``,
    the default). When the job completes, the worker downloads every output and returns the
    path of the first one. XCom also gets ``job_id`` (right after submitting), ``generation_id``,
    ``usage`` (OpenRouter's cost figure), ``output_paths``, ``output_host`` and, for object storage,
    ``output_conn_id``; on Airflow 3.1+ a "Watch video" link then opens the provider's player
    page (:class:`~airflow_provider_orvideo.links.openrouter_video.WatchVideoLink`). Each ``Asset`` in ``outlets``
    gets an event whose ``extra`` holds ``job_id``, ``generation_id``, ``model``, ``cost``,
    ``duration`` and ``output_uris`` (see :mod:`airflow_provider_orvideo._internal.assets`).

    :param prompt: Text prompt. Templated.
    :param model: OpenRouter video model id, e.g. ``google/veo-3.1``. Templated.
    :param output_path: Local path or object storage URI (``file://``, ``s3://`` ...) of the
        ``.mp4`` to write; further outputs of the same job get ``_1``, ``_2`` ... before the
        suffix. Templated. An object storage URI is written through Airflow's ``ObjectStoragePath``
        (streamed, no local copy; the object appears only when complete) with the connection
        given by ``output_conn_id`` or named in the URI (``s3://aws_conn@bucket/key``). The
        return value and ``output_paths`` are the paths as given.
    :param output_conn_id: Airflow connection for an object storage ``output_path``, e.g. an
        ``aws`` connection for ``s3://``. Default: the one named in the URI, else the
        filesystem's default credentials. The scheme's filesystem (``s3://`` needs
        ``apache-airflow-providers-amazon[s3fs]``) and the connection are checked before submitting.
    :param overwrite: Replace a file at ``output_path`` that this task instance did not write.
        Default False: such a file makes the task fail before paying (``OutputExistsError``),
        so a video paid for by another run, task or map index is never silently replaced.
    :param duration: Seconds; checked against the model's ``supported_durations``.
    :param resolution: e.g. ``720p``; checked against ``supported_resolutions``.
    :param aspect_ratio: e.g. ``16:9``; checked against ``supported_aspect_ratios``.
    :param size: ``WIDTHxHEIGHT``; checked against ``supported_sizes``.
    :param generate_audio: Checked against the model's ``generate_audio`` capability.
    :param seed: Checked against the model's ``seed`` capability.
    :param frame_images: ``{"first_frame": src, "last_frame": src}`` for image-to-video; each
        frame type must be in the model's ``supported_frame_images``. A source is an https URL,
        a ``data:`` URL, a local path, an object storage URI / ``ObjectStoragePath``, or bytes;
        files and bytes are sent as ``data:`` URLs with the MIME type sniffed from the content.
    :param input_references: A list of sources (images, audio, video) that steer the result;
        an https URL whose kind its name does not tell is given as ``{"kind": ..., "source": ...}``.
        Ignored by OpenRouter when ``frame_images`` is also given (a warning is logged).
    :param provider_options: ``{provider slug: {parameter: value}}``, e.g.
        ``{"google-vertex": {"negativePrompt": "blurry"}}``; keys must be in the model's
        ``allowed_passthrough_parameters``.
    :param previous_job_id: Id of a completed job on the same model to extend or edit; usually
        ``"{{ ti.xcom_pull(task_ids='...', key='job_id') }}"``. Templated.
    :param session_id: OpenRouter observability grouping (at most 256 characters). Templated.
    :param trace: Trace metadata (``trace_id``, ``trace_name``, ``span_name``, ... and extra keys).
        Merged over the Airflow defaults (see ``airflow_trace``).
    :param user: End-user id for OpenRouter's logs. Templated.
    :param airflow_trace: Add trace metadata naming the DAG, task, run and map index, so spend on
        OpenRouter's side can be grouped by pipeline. Default True.
    :param max_cost_usd: Refuse to submit when the price estimated from the model's
        ``pricing_skus`` exceeds this (USD). Default: no limit.
    :param strict_cost_check: With ``max_cost_usd``, also refuse when the price cannot be
        estimated (a SKU family this provider does not know). Default False: warn and submit.
    :param resubmit_failed_jobs: When a retry finds that the earlier try's job failed, was
        cancelled or expired (OpenRouter's verdict, not an outage), submit a new, billed one.
        Default False: retries are on by default to outlast infrastructure failures, and a retry
        that re-attaches costs nothing; paying again for a job OpenRouter refused (a content
        policy, say) must be asked for.
    :param orphan_policy: When a retry finds that an earlier try sent the submit request but never
        learned the job id (its answer was lost): ``"fail"`` (default) refuses to submit again,
        since a job may exist and bill; ``"resubmit"`` submits anyway.
    :param openrouter_conn_id: Connection of type ``openrouter``.
    :param deferrable: Poll in the triggerer instead of holding the worker slot. Default: True,
        unless the deployment sets ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE`` (see
        :func:`~airflow_provider_orvideo.defaults.default_deferrable` for why only that variable).
    :param poll_interval: Seconds between status polls, after the initial checks. Default 30.
    :param initial_poll_delays: Delays of the first checks, from the submission; each capped at
        ``poll_interval``. Default ``(30, 10, 20)``: checks at 30 s and 40 s, then at 60, 90, ... s.
    :param job_timeout: How long to wait for the job before failing (``timedelta`` or seconds).
        Default one hour. The job is not cancelled (OpenRouter has no cancel endpoint).
    :param max_consecutive_poll_failures: Deprecated and ignored (a warning says so): polls of a
        paid job wait through failures until ``job_timeout`` (see :class:`~airflow_provider_orvideo.polling.JobPoller`).
    :param callback_url: The public URL of the provider's webhook receiver in the api-server,
        e.g. ``https://airflow.example.com/orvideo/webhook`` (default: the connection's
        ``callback_url`` extra; None there too means no webhooks; ``""`` turns them off for this
        task whatever the connection says). With it, OpenRouter's signed
        webhook resumes the deferred task within about a second of the job's end, and the
        trigger only checks the job every ``webhook_poll_interval`` as a safety net. Not
        templated; not sent when ``deferrable=False`` (nothing would wait for it).
    :param webhook_poll_interval: With webhooks, seconds between the trigger's own checks
        (default 600), plus one at the deadline: a lost webhook delays the task, never loses it.
    :param retries: Airflow's ``retries``; default 3 when neither the task nor ``default_args``
        set it (and the deployment does not set ``AIRFLOW__CORE__DEFAULT_TASK_RETRIES``): a retry
        re-attaches to the paid job and never pays again (see
        :data:`~airflow_provider_orvideo.defaults.DEFAULT_VIDEO_RETRIES`). ``retries=0`` is
        honoured: a failed resume then keeps the paid video only until someone clears the task.
    """

    operator_extra_links = (WatchVideoLink(),)
    template_fields: Sequence[str] = TEMPLATE_FIELDS
    ui_color = "#e8dcff"

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
        # ``retries`` is declared here so that Airflow fills it from ``default_args`` and, for
        # ``.partial()``, takes this default when neither sets it (see DEFAULT_VIDEO_RETRIES).
        super().__init__(retries=retries, **kwargs)
        if max_consecutive_poll_failures is not None:
            warnings.warn(
                f"OpenRouterVideoOperator(max_consecutive_poll_failures={max_consecutive_poll_failures!r}) is "
                "deprecated and ignored: a paid job is now polled through any run of failed polls until "
                "job_timeout. Remove the argument.",
                DeprecationWarning,
                stacklevel=2,
            )
        self.prompt = prompt
        self.model = model
        self.output_path = output_path
        self.output_conn_id = output_conn_id
        self.overwrite = overwrite
        self.duration = duration
        self.resolution = resolution
        self.aspect_ratio = aspect_ratio
        self.size = size
        self.generate_audio = generate_audio
        self.seed = seed
        self.frame_images = frame_images
        self.input_references = input_references
        self.provider_options = provider_options
        self.previous_job_id = previous_job_id
        self.session_id = session_id
        self.trace = trace
        self.user = user
        # Every argument checked now, at DAG parse (templated ones where they are not templates):
        # one InvalidOperatorArgumentError naming each problem. Imported here to keep parsing cheap.
        from airflow_provider_orvideo._internal.arguments import REQUEST_FIELDS, check_operator_arguments

        checked = check_operator_arguments(
            poll_interval=poll_interval,
            initial_poll_delays=initial_poll_delays,
            job_timeout=job_timeout,
            max_cost_usd=max_cost_usd,
            orphan_policy=orphan_policy,
            airflow_trace=airflow_trace,
            strict_cost_check=strict_cost_check,
            resubmit_failed_jobs=resubmit_failed_jobs,
            deferrable=default_deferrable() if deferrable is None else deferrable,
            overwrite=overwrite,
            openrouter_conn_id=openrouter_conn_id,
            callback_url=callback_url,
            webhook_poll_interval=webhook_poll_interval,
            request_fields={name: getattr(self, name) for name in REQUEST_FIELDS},
            jinja_environment_kwargs=getattr(self.get_dag(), "jinja_environment_kwargs", None),
            template_ext=self.template_ext,
            task_id=self.task_id,
            operator_name=getattr(self, "custom_operator_name", None) or type(self).__name__,
        )
        self.airflow_trace = checked.airflow_trace
        self.max_cost_usd = checked.max_cost_usd
        self.strict_cost_check = checked.strict_cost_check
        self.resubmit_failed_jobs = checked.resubmit_failed_jobs
        self.orphan_policy = checked.orphan_policy
        self.openrouter_conn_id = checked.openrouter_conn_id
        self.deferrable = checked.deferrable
        self.poll_interval = checked.poll_interval
        self.initial_poll_delays = list(checked.initial_poll_delays)
        self.job_timeout = checked.job_timeout
        self.callback_url = checked.callback_url
        self.webhook_poll_interval = checked.webhook_poll_interval
        self._saved: tuple[SavedVideo, str | None] | None = None
        """What this process saved, and the model: for OpenLineage."""

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """``BaseOperator.partial``, with this operator's default ``retries`` when neither the call
        nor the DAG's (or task group's) ``default_args`` set it: the scheduler reads a mapped
        task's retries from here, and Airflow before 3.3 does not take an operator's own
        signature default for it."""
        if "retries" not in kwargs and dag_leaves_retries_unset(
            kwargs.get("dag"), kwargs.get("default_args")
        ):
            kwargs["retries"] = _DEFAULT_RETRIES
        return super().partial(**kwargs)

    @cached_property
    def hook(self) -> OpenRouterVideoHook:
        from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook

        return OpenRouterVideoHook(self.openrouter_conn_id)

    def _lifecycle(self, context: Context) -> VideoJobLifecycle:
        """This task instance's job lifecycle, on its durable store (see ``compat.task_state_store``)."""
        from airflow_provider_orvideo._internal.compat import task_state_store
        from airflow_provider_orvideo._internal.lifecycle import TaskIdentity, VideoJobLifecycle
        from airflow_provider_orvideo._internal.submission import OrphanPolicy

        return VideoJobLifecycle(
            self.hook,
            task_state_store(context),
            TaskIdentity.of(context["ti"]),
            orphan_policy=OrphanPolicy(self.orphan_policy),
            resubmit_failed=self.resubmit_failed_jobs,
            log=self.log,
        )

    # -- before money -------------------------------------------------------------------------

    def _video_request(self, context: Context) -> VideoRequest:
        """Type-check the rendered fields and read the media sources (no OpenRouter call)."""
        from airflow_provider_orvideo._internal.arguments import REQUEST_FIELDS, check_rendered_fields
        from airflow_provider_orvideo._internal.lifecycle import TaskIdentity
        from airflow_provider_orvideo._internal.request_fields import NON_MEDIA_FIELDS
        from airflow_provider_orvideo._internal.validation import build_request_from, shown_model
        from airflow_provider_orvideo.media import resolve_frame_images, resolve_input_references

        # The parse-time checks again, now on the rendered values: every type and shape problem at
        # once, before any media is read and before the trace is merged with Airflow's.
        check_rendered_fields(
            {name: getattr(self, name) for name in REQUEST_FIELDS},
            f"Invalid video request for model {shown_model(self.model)}",
        )
        frame_images = resolve_frame_images(self.frame_images)
        input_references = resolve_input_references(self.input_references)
        if frame_images and input_references:
            self.log.warning(
                "Both frame_images and input_references are set: OpenRouter uses frame_images "
                "(image-to-video) and ignores input_references."
            )
        trace = self.trace
        if self.airflow_trace:  # the task instance's identity (never the try), under the user's keys
            trace = {**TaskIdentity.of(context["ti"]).trace(), **(self.trace or {})}
        return build_request_from(
            {**{name: getattr(self, name) for name in NON_MEDIA_FIELDS}, "trace": trace},
            frame_images=frame_images,
            input_references=input_references,
        )

    def _check_before_paying(
        self, context: Context, lifecycle: VideoJobLifecycle, resumption: Resumption, request: VideoRequest
    ) -> None:
        """What only a new submit needs: the output location, the model's capabilities, the body's
        size, the output free, the price under ``max_cost_usd``. Each refusal says nothing was paid."""
        from airflow_provider_orvideo._internal.lifecycle import XComOutputClaims
        from airflow_provider_orvideo._internal.output_paths import output_target
        from airflow_provider_orvideo._internal.validation import check_against_model, check_body_size
        from airflow_provider_orvideo.pricing import check_cost, estimate_cost

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

    # -- execute ------------------------------------------------------------------------------

    def execute(self, context: Context) -> str:
        from airflow_provider_orvideo._internal import task_record
        from airflow_provider_orvideo._internal.request_fields import request_facts

        # A try that finds an earlier try's job talks about that job first: nothing else (the model
        # list, the output's bucket) is asked before it, and what only a new submit needs is
        # checked only when one will be made.
        request = self._video_request(context)
        body = request.to_body()
        lifecycle = self._lifecycle(context)
        ti = context["ti"]
        resumption = lifecycle.resume(
            body, on_superseded=lambda jobs: ti.xcom_push(key=task_record.SUPERSEDED_JOBS, value=list(jobs))
        )
        scale = self._poll_scale(resumption.job_id or None)
        callback = self._callback_url(context)
        submitted_at: float | None = None  # re-attached: poll at once, then every poll_interval
        job_id = resumption.job_id
        if resumption.submits:
            self._check_before_paying(context, lifecycle, resumption, request)
            job_id = lifecycle.submit(resumption, body, callback_url=callback)
            submitted_at = time.time()
        facts = request_facts(body)
        ti.xcom_push(key=task_record.JOB_ID, value=job_id)
        ti.xcom_push(key=task_record.VIDEO_REQUEST, value=facts)
        if resumption.downloads:
            return self._download(context, job_id, facts)
        # With a webhook on its way, the trigger's polls are only a safety net (at most one for
        # a job of up to webhook_poll_interval, plus one at the deadline). A re-attaching try
        # keeps the normal schedule: it cannot know whether its job was submitted with a callback
        # (and its webhook may have come while nobody waited); it checks at once, then as usual.
        webhook = callback is not None and submitted_at is not None
        interval = self.webhook_poll_interval if webhook else self.poll_interval
        poller = self._poller(
            job_id,
            deadline=time.time() + self.job_timeout,
            submitted_at=submitted_at,
            interval=interval * scale,
            delays=[interval * scale] if webhook else [d * scale for d in self.initial_poll_delays],
        )
        if not self.deferrable:
            from airflow_provider_orvideo.polling import poll_until_event

            return self._finish(context, poll_until_event(poller, self.hook.get_job, log=self.log), facts)
        self._defer(poller)

    def _callback_url(self, context: Context) -> str | None:
        """The webhook URL for this task instance, or None: no receiver configured, or nothing
        would wait for the webhook (``deferrable=False``)."""
        from airflow_provider_orvideo._internal.lifecycle import TaskIdentity
        from airflow_provider_orvideo.webhooks import CallbackTarget

        base = self.hook.get_settings().callback_url if self.callback_url is None else self.callback_url
        if not base or not self.deferrable:
            return None
        ti = TaskIdentity.of(context["ti"])
        target = CallbackTarget(
            conn_id=self.openrouter_conn_id,
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            map_index=ti.map_index,
        )
        return target.url(base)

    def _poll_scale(self, job_id: str | None) -> float:
        """``[openrouter] loopback_poll_scale`` for this connection (1 unless it is loopback);
        ``job_id``: the earlier try's job this try waits for, if any (said in an error)."""
        from airflow.configuration import conf

        from airflow_provider_orvideo.exceptions import NOTHING_SPENT, InvalidSettingError
        from airflow_provider_orvideo.polling import loopback_poll_scale

        base_url = self.hook.get_settings().base_url
        try:
            scale = loopback_poll_scale(
                base_url, conf.get("openrouter", "loopback_poll_scale", fallback=None)
            )
        except ValueError as error:
            kept = (
                f"OpenRouter video job {job_id} of an earlier try is left as it is; fix the setting and clear "
                "this task: it re-attaches to that job without paying again."
                if job_id
                else NOTHING_SPENT
            )
            raise InvalidSettingError(f"{error}. {kept}") from None
        if scale != 1.0:
            self.log.info("Poll delays x %s: the connection points at this machine (%s).", scale, base_url)
        return scale

    def _poller(
        self,
        job_id: str,
        *,
        deadline: float,
        submitted_at: float | None,
        interval: float,
        delays: Sequence[float],
    ) -> JobPoller:
        from airflow_provider_orvideo.polling import JobPoller

        return JobPoller(
            job_id=job_id,
            deadline=deadline,
            poll_interval=interval,
            submitted_at=submitted_at,
            initial_poll_delays=tuple(delays),
        )

    def _defer(self, poller: JobPoller) -> NoReturn:
        """Wait in the triggerer for ``poller``'s job; resume in :meth:`execute_complete`."""
        from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger

        wait = max(0.0, poller.deadline - time.time())
        self.defer(
            trigger=OpenRouterVideoTrigger.for_poller(poller, self.openrouter_conn_id),
            method_name="execute_complete",
            timeout=timedelta(seconds=wait + poller.poll_interval + DEFERRAL_GRACE_SECONDS),
        )

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
        It keeps the deadline the task waited with (a payload from a receiver before it was sent
        gets a fresh ``job_timeout``), so contradicted webhooks cannot keep a task waiting forever.
        """
        from airflow_provider_orvideo.exceptions import OpenRouterVideoError
        from airflow_provider_orvideo.polling import confirm_webhook, report

        scale = self._poll_scale(claimed.job_id)
        now = time.time()
        poller = self._poller(
            claimed.job_id,
            deadline=now + self.job_timeout if claimed.deadline is None else claimed.deadline,
            # Anchored at the GET below: the task waits again only for a job that GET saw
            # unfinished, so its checks start over as after a submit (none wasted at once).
            submitted_at=now,
            interval=self.poll_interval * scale,
            delays=[delay * scale for delay in self.initial_poll_delays],
        )
        job: VideoJob | None = None
        try:
            job = self.hook.get_job(claimed.job_id)
        except OpenRouterVideoError as error:
            step = confirm_webhook(claimed, poller, error, now=time.time())
        else:
            step = confirm_webhook(claimed, poller, job, now=time.time())
        report(step, self.log)
        if step.event is not None:
            return self._finish(context, step.event, None, job=job)
        self._defer(poller)

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
            ti = context["ti"]
            upcoming = next_try(getattr(ti, "try_number", None), self.retries)
            raise ending_error(event, next_try=upcoming, resubmit_failed=self.resubmit_failed_jobs)
        try:
            return self._download(context, event.job_id, request or self._submitted_request(context), job=job)
        except OpenRouterVideoError as error:
            self._download_later(event, error)
            raise

    def _download_later(self, event: VideoJobEvent, error: Exception) -> None:
        """After a failed download of a completed, paid job: defer until the job can be fetched
        again (one poll interval, then the trigger finds it completed and resumes the task), up
        to the deadline the task waited with. Returns (the caller raises) when waiting cannot help:
        a local write failure, an output gone, no deadline known, or ``deferrable=False``."""
        from airflow_provider_orvideo.exceptions import OpenRouterVideoError
        from airflow_provider_orvideo.polling import download_may_recover

        now = time.time()
        if not (
            self.deferrable
            and event.deadline is not None
            and now < event.deadline
            and isinstance(error, OpenRouterVideoError)
            and download_may_recover(error)
        ):
            return
        wait = self.poll_interval * self._poll_scale(event.job_id)
        poller = self._poller(
            event.job_id, deadline=event.deadline, submitted_at=now, interval=wait, delays=[wait]
        )
        self.log.warning(
            "Downloading the video of OpenRouter video job %s failed (%s). The job is complete and paid: "
            "trying again in %.0f s, and on until the deadline %s; nothing is submitted again.",
            event.job_id,
            error,
            wait,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.deadline)),
        )
        self._defer(poller)

    def _submitted_request(self, context: Context) -> dict[str, Any]:
        """The request facts ``execute`` recorded in XCom before deferring (same try).

        A task deferred by a release before the XCom existed resumes without it: its arguments
        are validated again, once (they rendered the same way for the submit).
        """
        from airflow_provider_orvideo._internal.request_fields import request_facts
        from airflow_provider_orvideo._internal.task_record import VIDEO_REQUEST

        ti = context["ti"]
        facts = ti.xcom_pull(task_ids=ti.task_id, key=VIDEO_REQUEST, map_indexes=ti.map_index)
        if isinstance(facts, dict):
            return facts
        return request_facts(self._video_request(context).to_body())

    def _output_target(self, job_id: str) -> OutputTarget:
        """Output 0's location, checked before paying and only normalised now: after paying a
        refusal would end the task for good, so it becomes a retryable failure."""
        from airflow_provider_orvideo._internal.output_paths import output_target
        from airflow_provider_orvideo.exceptions import InvalidOutputPathError, OutputPathUnknownError

        try:
            return output_target(self.output_path, self.output_conn_id, check=False)
        except InvalidOutputPathError as error:
            raise OutputPathUnknownError(
                f"OpenRouter video job {job_id} is complete and paid, but where to save it cannot be "
                f"determined on resume: {error} A retry of this task downloads it without paying."
            ) from None

    def _download(
        self, context: Context, job_id: str, request: dict[str, Any], *, job: VideoJob | None = None
    ) -> str:
        """Fetch the finished job (URLs never cross the trigger boundary), save every output
        (:meth:`VideoJobLifecycle.save_outputs`), then publish the task's record."""
        from airflow_provider_orvideo._internal.assets import video_asset_extra
        from airflow_provider_orvideo._internal.task_record import SavedVideo

        job = job or self.hook.get_job(job_id)
        first = self._output_target(job.id)
        host = socket.gethostname()  # where a local output is: said wherever the path is reported
        lifecycle = self._lifecycle(context)
        saved = lifecycle.save_outputs(job, first, overwrite=self.overwrite, host=host)
        published = SavedVideo(
            job_id=job.id,
            generation_id=job.generation_id,
            cost=job.cost,
            is_byok=job.is_byok,
            paths=saved.paths,
            sizes=saved.sizes,  # the pages serve only files of these sizes
            host=host,
            conn_id=first.conn_id,  # the player opens object storage with it (never a secret)
            unavailable=saved.unavailable,
        )
        for key, value in published.xcoms():
            context["ti"].xcom_push(key=key, value=value)
        cost = "unknown" if job.cost is None else f"${job.cost:.4f}"
        self.log.info("OpenRouter video job %s cost %s (generation %s).", job.id, cost, job.generation_id)
        self._annotate_asset_events(
            context, video_asset_extra(job=job, request=request, locations=list(saved.paths), host=host)
        )
        self._saved = (published, request.get("model"))
        lifecycle.finish()
        return saved.paths[0]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage, when its provider is installed (its listener calls this after success): the
        media read, the videos saved, the job, model and cost (see ``lineage.operator_lineage``)."""
        from airflow_provider_orvideo._internal.lineage import media_sources, operator_lineage

        saved, model = self._saved or (None, None)
        return operator_lineage(saved, model, media_sources(self.frame_images, self.input_references))

    def _annotate_asset_events(self, context: Context, extra: dict[str, Any]) -> None:
        """Put the job's facts on the event of every ``Asset`` in ``outlets``.

        Airflow emits those events itself when the task succeeds; filling their ``extra`` here
        lets a DAG scheduled on the asset find the video (``triggering_asset_events``) without
        pulling XCom across DAGs. Keys set earlier in the task (e.g. by a ``pre_execute``) stay.
        """
        from airflow.sdk import Asset

        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra.update(extra)
