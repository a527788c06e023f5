"""Operator that turns a prompt into a video file through OpenRouter, deferring while it renders."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_orvideo.exceptions import (
    InvalidVideoRequestError,
    OpenRouterVideoError,
    VideoJobCancelledError,
    VideoJobError,
    VideoJobExpiredError,
    VideoJobFailedError,
    VideoJobPollingError,
    VideoJobTimeoutError,
)
from airflow_provider_orvideo.hooks.openrouter_video import OpenRouterVideoHook
from airflow_provider_orvideo.polling import (
    DEFAULT_MAX_CONSECUTIVE_FAILURES,
    EventStatus,
    JobPoller,
    PollState,
    VideoJobEvent,
)
from airflow_provider_orvideo.storage import output_location
from airflow_provider_orvideo.triggers.openrouter_video import OpenRouterVideoTrigger
from airflow_provider_orvideo.validation import (
    VideoRequest,
    build_request,
    check_against_model,
    check_body_size,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_POLL_INTERVAL_SECONDS = 10.0
DEFAULT_JOB_TIMEOUT = timedelta(hours=1)
DEFERRAL_GRACE_SECONDS = 300.0
"""Airflow's own deferral timeout is a safety net set past our deadline, so the trigger's
``timeout`` event (which reaches ``execute_complete`` with a clear message) always fires first."""

_RETRY_PAYS_AGAIN = "A retry of this task submits a new job, which is billed again."
_FAILURE_CLASSES: dict[EventStatus, type[VideoJobError]] = {
    EventStatus.FAILED: VideoJobFailedError,
    EventStatus.CANCELLED: VideoJobCancelledError,
    EventStatus.EXPIRED: VideoJobExpiredError,
    EventStatus.TIMEOUT: VideoJobTimeoutError,
    EventStatus.ERROR: VideoJobPollingError,
}


class OpenRouterVideoOperator(BaseOperator):
    """Generate a video with OpenRouter and save it to ``output_path``.

    The job is validated against the model's capabilities and submitted on the worker; the
    worker slot is then released while an :class:`OpenRouterVideoTrigger` polls (``deferrable``,
    the default). When the job completes, the worker downloads every output and returns the
    path of the first one. XCom also gets ``job_id`` (right after submitting), ``generation_id``,
    ``usage`` (OpenRouter's cost figure) and ``output_paths``.

    :param prompt: Text prompt. Templated.
    :param model: OpenRouter video model id, e.g. ``google/veo-3.1``. Templated.
    :param output_path: Local path or object storage URI (``file://``, ``s3://`` ...) of the
        ``.mp4`` to write; further outputs of the same job get ``_1``, ``_2`` ... before the
        suffix. Templated.
    :param duration: Seconds; checked against the model's ``supported_durations``.
    :param resolution: e.g. ``720p``; checked against ``supported_resolutions``.
    :param aspect_ratio: e.g. ``16:9``; checked against ``supported_aspect_ratios``.
    :param size: ``WIDTHxHEIGHT``; checked against ``supported_sizes``.
    :param generate_audio: Checked against the model's ``generate_audio`` capability.
    :param seed: Checked against the model's ``seed`` capability.
    :param frame_images: Not supported by this release yet (first/last frame images).
    :param input_references: Not supported by this release yet (reference media).
    :param provider_options: Not supported by this release yet (provider passthrough).
    :param previous_job_id: Not supported by this release yet (continue a job).
    :param openrouter_conn_id: Connection of type ``openrouter``.
    :param deferrable: Poll in the triggerer (default) instead of holding the worker slot.
    :param poll_interval: Seconds between status polls.
    :param job_timeout: How long to wait for the job before failing (``timedelta`` or seconds).
        Default one hour. The job is not cancelled (OpenRouter has no cancel endpoint).
    :param max_consecutive_poll_failures: Transient poll failures tolerated in a row.
    """

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
        "previous_job_id",
    )
    ui_color = "#e8dcff"

    def __init__(
        self,
        *,
        prompt: str,
        model: str,
        output_path: str,
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
        openrouter_conn_id: str = OpenRouterVideoHook.default_conn_name,
        deferrable: bool = True,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS,
        job_timeout: timedelta | float = DEFAULT_JOB_TIMEOUT,
        max_consecutive_poll_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.model = model
        self.output_path = output_path
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
        self.openrouter_conn_id = openrouter_conn_id
        self.deferrable = deferrable
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
        self.poll_interval = float(poll_interval)
        self.job_timeout = (
            job_timeout.total_seconds() if isinstance(job_timeout, timedelta) else float(job_timeout)
        )
        if self.job_timeout <= 0:
            raise ValueError(f"job_timeout must be positive, got {job_timeout!r}")
        self.max_consecutive_poll_failures = max_consecutive_poll_failures

    @cached_property
    def hook(self) -> OpenRouterVideoHook:
        return OpenRouterVideoHook(self.openrouter_conn_id)

    # -- before money -------------------------------------------------------------------------

    def _video_request(self) -> VideoRequest:
        unsupported = {
            "frame_images": self.frame_images,
            "input_references": self.input_references,
            "provider_options": self.provider_options,
            "previous_job_id": self.previous_job_id,
        }
        given = sorted(name for name, value in unsupported.items() if value)
        if given:
            raise InvalidVideoRequestError(
                f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} not supported by this release of "
                "airflow-provider-orvideo yet. Nothing was submitted to OpenRouter and nothing was billed."
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
        )

    # -- execute ------------------------------------------------------------------------------

    def execute(self, context: Context) -> str:
        request = self._video_request()
        check_against_model(request, self.hook.list_models())
        check_body_size(request)
        job = self.hook.submit(request.to_body())
        context["ti"].xcom_push(key="job_id", value=job.id)
        deadline = time.time() + self.job_timeout
        if not self.deferrable:
            return self._finish(context, self._poll_on_worker(job.id, deadline))
        self.defer(
            trigger=OpenRouterVideoTrigger(
                job_id=job.id,
                deadline=deadline,
                openrouter_conn_id=self.openrouter_conn_id,
                poll_interval=self.poll_interval,
                max_consecutive_failures=self.max_consecutive_poll_failures,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.job_timeout + self.poll_interval + DEFERRAL_GRACE_SECONDS),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume on a worker after the trigger's one event: download, or fail with the reason."""
        return self._finish(context, VideoJobEvent.from_payload(event))

    def _poll_on_worker(self, job_id: str, deadline: float) -> VideoJobEvent:
        """The ``deferrable=False`` twin of the trigger's loop, on the same :class:`JobPoller`."""
        poller = JobPoller(
            job_id=job_id,
            deadline=deadline,
            poll_interval=self.poll_interval,
            max_consecutive_failures=self.max_consecutive_poll_failures,
        )
        state = PollState()
        while True:
            try:
                job = self.hook.get_job(job_id)
            except OpenRouterVideoError as error:
                step = poller.on_error(state, error, now=time.time())
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

    def _finish(self, context: Context, event: VideoJobEvent) -> str:
        if event.status is not EventStatus.COMPLETED:
            raise _FAILURE_CLASSES[event.status](
                f"{event.message} {_RETRY_PAYS_AGAIN}", job_id=event.job_id, remote_error=event.remote_error
            )
        # The event carries no URLs (they never cross the trigger boundary): ask for the job again.
        job = self.hook.get_job(event.job_id)
        paths = []
        for index in range(job.output_count):
            location = output_location(self.output_path, index)
            size = self.hook.download_output(job.id, index, location)
            self.log.info(
                "Saved output %d of OpenRouter video job %s to %s (%s bytes).",
                index,
                job.id,
                location,
                f"{size:,}",
            )
            paths.append(location)
        ti = context["ti"]
        ti.xcom_push(key="generation_id", value=job.generation_id)
        ti.xcom_push(key="usage", value=job.usage())
        ti.xcom_push(key="output_paths", value=paths)
        cost = "unknown" if job.cost is None else f"${job.cost:.4f}"
        self.log.info("OpenRouter video job %s cost %s (generation %s).", job.id, cost, job.generation_id)
        return paths[0]
