"""Operator that turns a prompt into a video file through OpenRouter, deferring while it renders."""

from __future__ import annotations

import random
import socket
import time
import warnings
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_orvideo.defaults import (
    DEFAULT_CONN_ID,
    DEFAULT_INITIAL_POLL_DELAYS,
    DEFAULT_JOB_TIMEOUT_SECONDS,
    DEFAULT_POLL_INTERVAL_SECONDS,
    DEFAULT_WEBHOOK_POLL_INTERVAL_SECONDS,
    default_deferrable,
    default_retries,
)
from airflow_provider_orvideo.links.openrouter_video import WatchVideoLink

# Only what DAG parsing needs is imported at module level: the dag-processor imports this module
# all day. Everything that runs a task is imported inside the methods below.
if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_orvideo._internal.api import VideoJob
    from airflow_provider_orvideo._internal.output_paths import OutputTarget
    from airflow_provider_orvideo._internal.submission import Decision, SubmissionLedger, SubmissionRecord
    from airflow_provider_orvideo._internal.validation import VideoRequest
    from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
    from airflow_provider_orvideo.polling import JobPoller, VideoJobEvent
    from airflow_provider_orvideo.pricing import CostEstimate

__all__ = [
    "OpenRouterVideoOperator",
]

OUTPUT_CLAIM_KEY = "openrouter_video_output_claim"
REQUEST_XCOM_KEY = "video_request"
"""XCom with the request as validated and submitted (``submission.request_facts``)."""
"""XCom key each map index of a mapped task pushes its output location under before paying, so
two map indexes that render the same ``output_path`` are caught before the second one pays."""
DEFERRAL_GRACE_SECONDS = 300.0
"""Airflow's own deferral timeout is a safety net set past our deadline, so the trigger's
``timeout`` event (which reaches ``execute_complete`` with a clear message) always fires first."""

_RETRY_WORDS = {
    True: "submits a new job, which is billed again (resubmit_failed_jobs=True).",
    False: "does not submit again (resubmit_failed_jobs=False): it fails at once, nothing is paid.",
}
_RETRY_REATTACHES = "re-attaches to the same job (no new payment) and downloads it once it completes."
_RETRY_AFTER_POLL_ERROR = (
    "asks OpenRouter about the same job first and re-attaches to it (no new payment); it submits again "
    "only if OpenRouter reports the job failed (with resubmit_failed_jobs=True), or answers 404 with "
    "orphan_policy='resubmit'."
)


_DEFAULT_RETRIES = default_retries()


def dag_leaves_retries_unset(dag: Any = None, default_args: Any = None) -> bool:
    """Whether neither ``default_args`` nor those of ``dag`` (default: the DAG being defined) and
    of its current task group set ``retries``: then a video task takes :data:`_DEFAULT_RETRIES`.

    False outside a DAG definition: a task made there may be added to any DAG, whose
    ``default_args`` then decide (the operator's own signature default still applies to an
    unmapped operator, which Airflow fills from ``default_args`` first)."""
    try:
        from airflow.sdk.definitions._internal.contextmanager import DagContext, TaskGroupContext
    except ImportError:  # pragma: no cover - every supported version has it
        return False
    dag = dag or DagContext.get_current()
    if dag is None:
        return False
    group = TaskGroupContext.get_current(dag)
    return not any(
        isinstance(defaults, dict) and "retries" in defaults
        for defaults in (default_args, dag.default_args, getattr(group, "default_args", None))
    )


def _task_instance_facts(ti: Any) -> dict[str, Any]:
    """The identity of a task instance that a saved video records as its writer (never the try)."""
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": getattr(ti, "map_index", -1),
    }


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
    template_fields: Sequence[str] = (
        "prompt",
        "model",
        "output_path",
        "duration",
        "resolution",
        "aspect_ratio",
        "size",
        "generate_audio",
        "seed",
        "frame_images",
        "input_references",
        "provider_options",
        "previous_job_id",
        "session_id",
        "trace",
        "user",
        "openrouter_conn_id",
        "output_conn_id",
    )
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
        self._saved: tuple[str, Any, float | None, str, tuple[str, ...]] | None = None
        """What this process saved (job id, model, cost, host, locations): for OpenLineage."""

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

    # -- before money -------------------------------------------------------------------------

    def _trace(self, context: Context) -> dict[str, Any] | None:
        """Airflow's identity of this task instance (never the try number: it must not change
        between tries of one task instance), under the user's own trace keys."""
        if not self.airflow_trace:
            return self.trace
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        span = ti.task_id if map_index is None or map_index < 0 else f"{ti.task_id}[{map_index}]"
        defaults = {
            "trace_id": f"airflow:{ti.dag_id}:{ti.run_id}",
            "trace_name": ti.dag_id,
            "span_name": span,
            "generation_name": f"{ti.dag_id}.{ti.task_id}",
            "airflow_dag_id": ti.dag_id,
            "airflow_task_id": ti.task_id,
            "airflow_run_id": ti.run_id,
            "airflow_map_index": map_index,
        }
        return {**defaults, **(self.trace or {})}

    def _video_request(self, context: Context) -> VideoRequest:
        """Type-check the rendered fields and read the media sources (no OpenRouter call)."""
        from airflow_provider_orvideo._internal.arguments import REQUEST_FIELDS, check_rendered_fields
        from airflow_provider_orvideo._internal.validation import build_request, shown_model
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
        return build_request(
            model=self.model,
            prompt=self.prompt,
            duration=self.duration,
            resolution=self.resolution,
            aspect_ratio=self.aspect_ratio,
            size=self.size,
            generate_audio=self.generate_audio,
            seed=self.seed,
            frame_images=frame_images,
            input_references=input_references,
            provider_options=self.provider_options,
            previous_job_id=self.previous_job_id,
            session_id=self.session_id,
            trace=self._trace(context),
            user=self.user,
        )

    def _check_cost(self, estimate: CostEstimate) -> None:
        from airflow_provider_orvideo.exceptions import VideoCostLimitError

        bound = " (upper bound)" if estimate.upper_bound else ""
        if estimate.usd is not None:
            self.log.info("Estimated cost: $%.4f%s = %s.", estimate.usd, bound, estimate.formula)
        if self.max_cost_usd is None:
            return
        from airflow_provider_orvideo.exceptions import NOTHING_SPENT as nothing

        if estimate.usd is None:
            if self.strict_cost_check:
                raise VideoCostLimitError(
                    f"Cannot check max_cost_usd=${self.max_cost_usd:g}: {estimate.unknown_reason}, and "
                    f"strict_cost_check is on. {nothing}"
                )
            self.log.warning(
                "Cannot check max_cost_usd=$%g: %s. Submitting anyway (set strict_cost_check=True to refuse).",
                self.max_cost_usd,
                estimate.unknown_reason,
            )
        elif estimate.usd > self.max_cost_usd:
            raise VideoCostLimitError(
                f"Estimated cost ${estimate.usd:.4f}{bound} ({estimate.formula}) exceeds "
                f"max_cost_usd=${self.max_cost_usd:g}. {nothing}"
            )

    # -- execute ------------------------------------------------------------------------------

    def execute(self, context: Context) -> str:
        from airflow_provider_orvideo._internal.compat import task_state_store
        from airflow_provider_orvideo._internal.output_paths import output_target
        from airflow_provider_orvideo._internal.submission import Action, SubmissionLedger, request_facts
        from airflow_provider_orvideo._internal.validation import check_against_model, check_body_size
        from airflow_provider_orvideo.polling import JobPoller
        from airflow_provider_orvideo.pricing import estimate_cost
        from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger

        # A try that finds an earlier try's job talks about that job first: nothing else (the model
        # list, the output's bucket) is asked before it, and what only a new submit needs is
        # checked only when one will be made.
        scale = self._poll_scale()
        request = self._video_request(context)
        body = request.to_body()
        ledger = SubmissionLedger(task_state_store(context))
        record = ledger.load()
        decision, superseded = self._decide(context, ledger, record, body)
        callback = self._callback_url(context)
        if decision.action is Action.SUBMIT:
            target = output_target(self.output_path, self.output_conn_id)
            model = check_against_model(request, self.hook.list_models())
            check_body_size(request)
            self._check_output_free(context, target, record, superseded)
            self._check_cost(
                estimate_cost(
                    model,
                    duration=request.duration,
                    resolution=request.resolution,
                    generate_audio=request.generate_audio,
                )
            )
            job_id = self._submit(ledger, body, record, superseded, callback)
            submitted_at: float | None = time.time()
        else:
            job_id = decision.job_id or ""
            submitted_at = None  # re-attached: poll at once, then every poll_interval
        facts = request_facts(body)
        context["ti"].xcom_push(key="job_id", value=job_id)
        context["ti"].xcom_push(key=REQUEST_XCOM_KEY, value=facts)
        if decision.action is Action.DOWNLOAD:
            return self._download(context, job_id, facts)
        # With a webhook on its way, the trigger's polls are only a safety net (at most one for
        # a job of up to webhook_poll_interval, plus one at the deadline). A re-attaching try
        # keeps the normal schedule: it cannot know whether its job was submitted with a callback
        # (and its webhook may have come while nobody waited); it checks at once, then as usual.
        webhook_on_its_way = callback is not None and submitted_at is not None
        interval, delays = (
            (self.webhook_poll_interval, (self.webhook_poll_interval,))
            if webhook_on_its_way
            else (self.poll_interval, tuple(self.initial_poll_delays))
        )
        poller = JobPoller(
            job_id=job_id,
            deadline=time.time() + self.job_timeout,
            poll_interval=interval * scale,
            submitted_at=submitted_at,
            initial_poll_delays=tuple(delay * scale for delay in delays),
        )
        if not self.deferrable:
            return self._finish(context, self._poll_on_worker(poller), facts)
        self.defer(
            trigger=OpenRouterVideoTrigger.for_poller(poller, self.openrouter_conn_id),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.job_timeout + interval + DEFERRAL_GRACE_SECONDS),
        )

    def _callback_url(self, context: Context) -> str | None:
        """The webhook URL for this task instance, or None: no receiver configured, or nothing
        would wait for the webhook (``deferrable=False``)."""
        from airflow_provider_orvideo.webhooks import CallbackTarget

        base = self.hook.get_settings().callback_url if self.callback_url is None else self.callback_url
        if not base or not self.deferrable:
            return None
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        target = CallbackTarget(
            conn_id=self.openrouter_conn_id,
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            map_index=-1 if map_index is None else map_index,
        )
        return target.url(base)

    def _poll_scale(self) -> float:
        """``[openrouter] loopback_poll_scale`` for this connection (1 unless it is loopback)."""
        from airflow.configuration import conf

        from airflow_provider_orvideo.exceptions import NOTHING_SPENT, InvalidSettingError
        from airflow_provider_orvideo.polling import loopback_poll_scale

        base_url = self.hook.get_settings().base_url
        try:
            scale = loopback_poll_scale(
                base_url, conf.get("openrouter", "loopback_poll_scale", fallback=None)
            )
        except ValueError as error:
            raise InvalidSettingError(f"{error}. {NOTHING_SPENT}") from None
        if scale != 1.0:
            self.log.info("Poll delays x %s: the connection points at this machine (%s).", scale, base_url)
        return scale

    def _decide(
        self,
        context: Context,
        ledger: SubmissionLedger,
        record: SubmissionRecord | None,
        body: dict[str, Any],
    ) -> tuple[Decision, tuple[dict[str, Any], ...]]:
        """Look at what earlier tries of this task instance recorded, and at their job.

        Also returns every earlier job a changed request replaced (paid, or still rendering and
        billing): logged at WARNING and pushed to XCom as ``superseded_jobs`` on every try.
        """
        from airflow_provider_orvideo._internal.api import VideoJob
        from airflow_provider_orvideo._internal.submission import (
            Action,
            OrphanPolicy,
            RemoteUnknown,
            decide,
            needs_remote_check,
        )
        from airflow_provider_orvideo.exceptions import (
            OpenRouterNotFoundError,
            OpenRouterVideoError,
            ResubmissionRefusedError,
        )
        from airflow_provider_orvideo.polling import waits_through

        if not ledger.durable:
            self.log.warning(
                "No task_state_store in the context: a retry of this task cannot re-attach to this job "
                "and would submit (and pay for) a new one."
            )
        remote: VideoJob | RemoteUnknown | None = None
        if record is not None and needs_remote_check(record):
            # The first request of a try that finds an earlier job is about that job: an outage or
            # a 404 now re-attaches (the wait polls it until its deadline) instead of failing a try
            # that would have kept the paid video.
            try:
                remote = self.hook.get_job(record.job_id or "")
            except OpenRouterVideoError as error:
                if not waits_through(error):
                    raise
                remote = RemoteUnknown(str(error), not_found=isinstance(error, OpenRouterNotFoundError))
        decision = decide(
            record,
            body,
            remote=remote,
            orphan_policy=OrphanPolicy(self.orphan_policy),
            resubmit_failed=self.resubmit_failed_jobs,
        )
        if record is not None:
            self.log.info("Earlier try found: %s.", decision.reason)
        superseded = tuple(dict(entry) for entry in record.superseded) if record is not None else ()
        if record is not None and decision.supersedes is not None:
            known = remote if isinstance(remote, VideoJob) else None
            entry: dict[str, Any] = {
                "job_id": decision.supersedes,
                "status": known.status if known is not None else "unknown",
                "cost": known.cost if known is not None else None,
                "outputs": sorted(record.outputs),
            }
            superseded = (*(e for e in superseded if e.get("job_id") != entry["job_id"]), entry)
        for entry in superseded:
            cost = "unknown" if entry.get("cost") is None else f"${entry['cost']:.4f}"
            saved = ", ".join(entry.get("outputs") or []) or "not downloaded"
            self.log.warning(
                "Job %s of an earlier try of this task instance (%s, cost %s; video: %s) was for a "
                "different request; it is kept on record (XCom superseded_jobs), not re-used.",
                entry.get("job_id"),
                entry.get("status"),
                cost,
                saved,
            )
        if superseded:
            context["ti"].xcom_push(key="superseded_jobs", value=list(superseded))
        if decision.action is Action.REFUSE:
            raise ResubmissionRefusedError(
                f"Not submitting: {decision.reason}. Submitting again could pay for the same video twice. "
                "Check the spend on OpenRouter's activity page; to submit anyway, set "
                "orphan_policy='resubmit' (lost answer) or resubmit_failed_jobs=True (failed job) and "
                "clear this task."
            )
        return decision, superseded

    def _check_output_free(
        self,
        context: Context,
        target: OutputTarget,
        record: SubmissionRecord | None,
        superseded: tuple[dict[str, Any], ...],
    ) -> None:
        """Before paying: no other map index renders the same path, and no file that this task
        instance did not write for this request is there (unless ``overwrite``)."""
        from airflow_provider_orvideo._internal.output_paths import writer_of, written_by
        from airflow_provider_orvideo.exceptions import (
            NOTHING_SPENT,
            OutputExistsError,
            OutputPathCollisionError,
        )

        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        if map_index is not None and map_index >= 0:
            ti.xcom_push(key=OUTPUT_CLAIM_KEY, value={"map_index": map_index, "location": target.identity})
            claims = ti.xcom_pull(task_ids=[ti.task_id], key=OUTPUT_CLAIM_KEY) or []
            others = sorted(
                {
                    claim["map_index"]
                    for claim in claims
                    if isinstance(claim, dict)
                    and claim.get("location") == target.identity
                    and claim.get("map_index") != map_index
                }
            )
            if others:
                raise OutputPathCollisionError(
                    f"output_path renders to {target.location!r} for map index {map_index} and for map "
                    f"index(es) {', '.join(map(str, others))} of task {ti.task_id!r}: each would pay for a "
                    "video and only one file would be kept. Make the path differ per map index, e.g. "
                    f"'.../clip_{{{{ ti.map_index }}}}.mp4'. {NOTHING_SPENT}"
                )
        if self.overwrite or not target.exists():
            return
        recorded_for = [e["job_id"] for e in superseded if target.location in (e.get("outputs") or [])]
        if (
            record is not None
            and target.location in record.outputs
            and not recorded_for
            and written_by(target, {**_task_instance_facts(ti), "job_id": record.job_id})
        ):
            return  # this task instance's own video of this request
        if recorded_for:
            whose = (
                f"it holds the video of job {recorded_for[-1]}, which an earlier try of this task "
                "instance paid for with a different request"
            )
        else:
            writer = writer_of(target)
            whose = f"it was written by {writer}" if writer else "this task instance did not write it"
        raise OutputExistsError(
            f"output_path {target.location!r} already exists and {whose}. Not replacing a video this "
            "task did not write: give a path that differs per run (e.g. with {{ run_id }} or "
            f"{{{{ ts_nodash }}}}) or set overwrite=True. {NOTHING_SPENT}"
        )

    def _submit(
        self,
        ledger: SubmissionLedger,
        body: dict[str, Any],
        previous: SubmissionRecord | None,
        superseded: tuple[dict[str, Any], ...],
        callback_url: str | None,
    ) -> str:
        """POST the job between an intent record and a submitted record.

        The callback URL goes into the POST only, never into the record's fingerprint: turning
        webhooks on between tries must not make a retry pay for the same video again."""
        from airflow_provider_orvideo._internal.submission import SubmissionRecord, submit_created_nothing

        intent = SubmissionRecord.intent(body, superseded)
        ledger.save(intent)
        try:
            job = self.hook.submit(body if callback_url is None else {**body, "callback_url": callback_url})
        except Exception as error:
            # Proof that OpenRouter created nothing: the next try may submit freely, and the earlier
            # record comes back (superseded jobs stay on record). Otherwise the intent stays.
            if submit_created_nothing(error):
                ledger.restore(previous)
            raise
        try:
            ledger.save(intent.submitted(job.id))
        except Exception:
            self.log.error(
                "OpenRouter video job %s was created (it renders and bills) but could not be recorded in "
                "the task state store; the next try will treat its submit as lost (orphan_policy). Its "
                "id is %s: find it on OpenRouter's activity page.",
                job.id,
                job.id,
            )
            raise
        return job.id

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
        from airflow_provider_orvideo.polling import JobPoller, confirm_webhook
        from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger

        scale = self._poll_scale()
        now = time.time()
        poller = JobPoller(
            job_id=claimed.job_id,
            deadline=now + self.job_timeout if claimed.deadline is None else claimed.deadline,
            poll_interval=self.poll_interval * scale,
            # Anchored at the GET below: the task waits again only for a job that GET saw
            # unfinished, so its checks start over as after a submit (none wasted at once).
            submitted_at=now,
            initial_poll_delays=tuple(delay * scale for delay in self.initial_poll_delays),
        )
        job: VideoJob | None = None
        try:
            job = self.hook.get_job(claimed.job_id)
        except OpenRouterVideoError as error:
            step = confirm_webhook(claimed, poller, error, now=time.time())
        else:
            step = confirm_webhook(claimed, poller, job, now=time.time())
        if step.log_message:
            self.log.info(step.log_message)
        if step.warning:
            self.log.warning(step.warning)
        if step.event is not None:
            return self._finish(context, step.event, None, job=job)
        self.defer(
            trigger=OpenRouterVideoTrigger.for_poller(poller, self.openrouter_conn_id),
            method_name="execute_complete",
            timeout=timedelta(
                seconds=poller.deadline - time.time() + self.poll_interval + DEFERRAL_GRACE_SECONDS
            ),
        )

    def _download_later(self, event: VideoJobEvent, error: Exception) -> None:
        """After a failed download of a completed, paid job: defer until the job can be fetched
        again (one poll interval, then the trigger finds it completed and resumes the task), up
        to the deadline the task waited with. Returns (the caller raises) when waiting cannot help:
        a local write failure, an output gone, no deadline known, or ``deferrable=False``."""
        from airflow_provider_orvideo.exceptions import OpenRouterVideoError
        from airflow_provider_orvideo.polling import JobPoller, download_may_recover
        from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger

        now = time.time()
        if not (
            self.deferrable
            and event.deadline is not None
            and now < event.deadline
            and isinstance(error, OpenRouterVideoError)
            and download_may_recover(error)
        ):
            return
        wait = self.poll_interval * self._poll_scale()
        poller = JobPoller(
            job_id=event.job_id,
            deadline=event.deadline,
            poll_interval=wait,
            submitted_at=now,
            initial_poll_delays=(wait,),
        )
        self.log.warning(
            "Downloading the video of OpenRouter video job %s failed (%s). The job is complete and paid: "
            "trying again in %.0f s, and on until the deadline %s; nothing is submitted again.",
            event.job_id,
            error,
            wait,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.deadline)),
        )
        self.defer(
            trigger=OpenRouterVideoTrigger.for_poller(poller, self.openrouter_conn_id),
            method_name="execute_complete",
            timeout=timedelta(seconds=event.deadline - now + wait + DEFERRAL_GRACE_SECONDS),
        )

    def _submitted_request(self, context: Context) -> dict[str, Any]:
        """The request facts ``execute`` recorded in XCom before deferring (same try).

        A task deferred by a release before the XCom existed resumes without it: its arguments
        are validated again, once (they rendered the same way for the submit).
        """
        from airflow_provider_orvideo._internal.submission import request_facts

        ti = context["ti"]
        facts = ti.xcom_pull(task_ids=ti.task_id, key=REQUEST_XCOM_KEY, map_indexes=ti.map_index)
        if isinstance(facts, dict):
            return facts
        return request_facts(self._video_request(context).to_body())

    def _poll_on_worker(self, poller: JobPoller) -> VideoJobEvent:
        """The ``deferrable=False`` twin of the trigger's loop, on the same :class:`JobPoller`."""
        from airflow_provider_orvideo.exceptions import OpenRouterVideoError
        from airflow_provider_orvideo.polling import PollState

        state = PollState()
        time.sleep(poller.first_delay(time.time()))
        while True:
            try:
                job = self.hook.get_job(poller.job_id)
            except OpenRouterVideoError as error:
                step = poller.on_error(state, error, now=time.time(), jitter=random.random())
            else:
                step = poller.on_job(state, job, now=time.time())
            if step.log_message:
                self.log.info(step.log_message)
            if step.warning:
                self.log.warning(step.warning)
            state = step.state
            if step.event is not None:
                return step.event
            time.sleep(step.delay or 0.0)

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
        from airflow_provider_orvideo import exceptions
        from airflow_provider_orvideo.polling import EventStatus

        failure_classes: dict[EventStatus, type[exceptions.VideoJobError]] = {
            EventStatus.FAILED: exceptions.VideoJobFailedError,
            EventStatus.CANCELLED: exceptions.VideoJobCancelledError,
            EventStatus.EXPIRED: exceptions.VideoJobExpiredError,
            EventStatus.TIMEOUT: exceptions.VideoJobTimeoutError,
            EventStatus.ERROR: exceptions.VideoJobPollingError,
        }
        if event.status is EventStatus.COMPLETED:
            if request is None:
                request = self._submitted_request(context)
            try:
                return self._download(context, event.job_id, request, job=job)
            except exceptions.OpenRouterVideoError as error:
                self._download_later(event, error)
                raise
        if event.status is EventStatus.TIMEOUT:
            retry = _RETRY_REATTACHES
        elif event.status is EventStatus.ERROR:
            retry = _RETRY_AFTER_POLL_ERROR
        else:
            retry = _RETRY_WORDS[self.resubmit_failed_jobs]
        raise failure_classes[event.status](
            f"{event.message} {self._next_try(context)} {retry}",
            job_id=event.job_id,
            remote_error=event.remote_error,
        )

    def _next_try(self, context: Context) -> str:
        """Who acts next on a failed try: Airflow's retry if one is left, else a user's clear."""
        try_number = getattr(context["ti"], "try_number", None)
        if isinstance(try_number, int) and isinstance(self.retries, int) and try_number <= self.retries:
            return f"The next try ({try_number + 1} of {self.retries + 1})"
        return "No retry is left; clearing this task"

    def _download(
        self, context: Context, job_id: str, request: dict[str, Any], *, job: VideoJob | None = None
    ) -> str:
        """Fetch the finished job (URLs never cross the trigger boundary) and save every output.

        Outputs an earlier try already saved completely (recorded size, MP4 signature) are kept.
        A file at an output location that this task instance did not write is never replaced
        (unless ``overwrite``): the paid video goes beside it, ``<stem>.<job id><suffix>``.
        """
        from airflow_provider_orvideo._internal.assets import video_asset_extra
        from airflow_provider_orvideo._internal.atomic_output import (
            AtomicOutput,
            is_complete_output,
            owner_tag,
        )
        from airflow_provider_orvideo._internal.compat import task_state_store
        from airflow_provider_orvideo._internal.output_paths import output_target, written_by
        from airflow_provider_orvideo._internal.submission import SubmissionLedger
        from airflow_provider_orvideo.exceptions import (
            InvalidOutputPathError,
            OutputPathUnknownError,
            VideoOutputGoneError,
        )

        if job is None:
            job = self.hook.get_job(job_id)
        ledger = SubmissionLedger(task_state_store(context))
        record = ledger.load()
        own = dict(record.outputs) if record is not None and record.job_id == job.id else {}
        try:  # checked before paying; here only normalised
            first = output_target(self.output_path, self.output_conn_id, check=False)
        except InvalidOutputPathError as error:
            # After paying, a refusal would end the task for good: make it a retryable failure.
            raise OutputPathUnknownError(
                f"OpenRouter video job {job.id} is complete and paid, but where to save it cannot be "
                f"determined on resume: {error} A retry of this task downloads it without paying."
            ) from None
        ti = context["ti"]
        writer = {**_task_instance_facts(ti), "job_id": job.id}
        host = socket.gethostname()  # where a local output is: say it wherever the path is reported

        def still_ours(candidate: OutputTarget) -> bool:
            """Recorded by this task instance for this job, and not replaced by another writer since."""
            return candidate.location in own and written_by(candidate, writer)

        paths: list[str] = []
        sizes: list[int] = []
        unavailable: list[int] = []
        for index in range(job.output_count):
            target = first.for_index(index)
            aside = target.aside(job.id)
            saved = next(
                (
                    candidate
                    for candidate in (target, aside)
                    if still_ours(candidate)
                    and is_complete_output(candidate.storage_uri, own[candidate.location])
                ),
                None,
            )
            if saved is not None:
                self.log.info(
                    "Output %d of job %s is already complete at %s; not downloading it again.",
                    index,
                    job.id,
                    saved.location,
                )
                paths.append(saved.location)
                sizes.append(own[saved.location])
                continue
            output = AtomicOutput(
                target.storage_uri,
                replace=self.overwrite or still_ours(target),
                aside=aside.storage_uri,
                writer=writer,
                # Temporary files named after the task instance: a retry removes what a killed try left.
                owner=owner_tag(_task_instance_facts(ti)),
            )
            try:
                size = self.hook.save_output(job.id, index, output)
            except VideoOutputGoneError as gone:
                if index == 0:
                    raise
                # The job was paid and its first outputs are saved: keep them and say what is missing.
                self.log.warning("%s Keeping the other outputs of the job.", gone)
                unavailable.append(index)
                continue
            committed = output.committed_location or target.storage_uri
            saved_at = (
                target if committed == target.storage_uri else target.renamed(committed.rsplit("/", 1)[-1])
            )
            location = saved_at.location
            if location != target.location:
                self.log.warning(
                    "Another writer created %s while job %s rendered; not replacing it. Saved the paid "
                    "video beside it instead: %s.",
                    target.location,
                    job.id,
                    location,
                )
            self.log.info(
                "Saved output %d of OpenRouter video job %s to %s on host %s (%s bytes).",
                index,
                job.id,
                location,
                host,
                f"{size:,}",
            )
            if record is not None and record.job_id == job.id:
                record = record.with_output(location, size)
                ledger.save(record)
            paths.append(location)
            sizes.append(size)
        ti.xcom_push(key="generation_id", value=job.generation_id)
        ti.xcom_push(key="usage", value=job.usage())
        ti.xcom_push(key="output_paths", value=paths)
        ti.xcom_push(key="output_sizes", value=sizes)  # the video pages serve only files of this size
        ti.xcom_push(key="output_host", value=host)
        if first.conn_id:  # the video player opens object storage with it (never a secret)
            ti.xcom_push(key="output_conn_id", value=first.conn_id)
        if unavailable:
            ti.xcom_push(key="unavailable_outputs", value=unavailable)
        cost = "unknown" if job.cost is None else f"${job.cost:.4f}"
        self.log.info("OpenRouter video job %s cost %s (generation %s).", job.id, cost, job.generation_id)
        self._annotate_asset_events(
            context, video_asset_extra(job=job, request=request, locations=paths, host=host)
        )
        self._saved = (job.id, request.get("model"), job.cost, host, tuple(paths))
        ledger.finish()
        return paths[0]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage, when its provider is installed (its listener calls this after success):
        inputs are the frame and reference media that are files or object storage, outputs the
        saved videos; run facets name the OpenRouter job (``externalQuery``) and the model and
        cost (``openrouterVideo``). Without the provider nothing calls it."""
        import attrs
        from airflow.providers.common.compat.openlineage.facet import Dataset, ExternalQueryRunFacet, RunFacet
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_orvideo._internal.lineage import dataset_of, media_sources

        if self._saved is None:  # the task did not save a video in this process
            return OperatorLineage()
        job_id, model, cost, host, locations = self._saved

        @attrs.define
        class OpenRouterVideoRunFacet(RunFacet):  # type: ignore[misc, unused-ignore]
            jobId: str
            model: str | None
            cost: float | None

        def datasets(items: Any) -> list[Any]:
            pairs = dict.fromkeys(p for p in (dataset_of(item, host) for item in items) if p is not None)
            return [Dataset(namespace=namespace, name=name) for namespace, name in pairs]

        return OperatorLineage(
            inputs=datasets(media_sources(self.frame_images, self.input_references)),
            outputs=datasets(locations),
            run_facets={
                "externalQuery": ExternalQueryRunFacet(externalQueryId=job_id, source="openrouter.ai"),
                "openrouterVideo": OpenRouterVideoRunFacet(jobId=job_id, model=model, cost=cost),
            },
        )

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
