"""Hook for OpenRouter's asynchronous video generation API.

One hook, three short drivers around one retry engine (:meth:`RetryPolicy.next_step
<airflow_provider_orvideo.retry.RetryPolicy.next_step>`): the worker's JSON calls
(``list_models``, ``submit``, ``get_job``) and its video download (``save_output``, resuming a cut
body at the first byte not saved) over httpx, and the triggerer's ``aget_job`` over one shared
aiohttp session per event loop (see ``_async_sessions`` for why). Request building, response
parsing, error mapping and the retry decision live once, in :mod:`airflow_provider_orvideo._internal.api`
and :mod:`airflow_provider_orvideo.retry`; proxy, TLS, timeouts and redirects once, in
``_transport``. The drivers differ only in how bytes move, ``await`` and ``sleep``.

Logging never includes the API key, request headers or signed URLs: only method, path and
status are logged.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_orvideo._internal.api import (
    ApiRequest,
    ConnectionSettings,
    GenerationRecord,
    KeyStatus,
    VideoJob,
    VideoModel,
    connection_header_error,
    content_request,
    decode_json,
    generation_request,
    get_job_request,
    key_request,
    list_models_request,
    parse_generation,
    parse_job,
    parse_key,
    parse_models,
    settings_from_connection,
    submit_request,
)
from airflow_provider_orvideo._internal.atomic_output import AtomicOutput, looks_like_mp4
from airflow_provider_orvideo._internal.compat import ASYNC_CONNECTIONS, BaseHook
from airflow_provider_orvideo.defaults import DEFAULT_CONN_ID
from airflow_provider_orvideo.exceptions import (
    OpenRouterAuthError,
    OpenRouterNotFoundError,
    OpenRouterVideoError,
    OutputWriteError,
    VideoDownloadError,
)
from airflow_provider_orvideo.hooks._transport import (
    ExchangeFailed,
    TransportConfig,
    httpx_body,
    httpx_client,
    httpx_send,
)
from airflow_provider_orvideo.retry import (
    DEFAULT_RETRY_POLICY,
    Answered,
    GiveUp,
    Outcome,
    RetryPolicy,
    resume_offset,
)

if TYPE_CHECKING:
    from airflow_provider_orvideo.hooks._async_sessions import Answer, SharedSession

__all__ = [
    "OpenRouterVideoHook",
]

DEFAULT_MODELS_CACHE_TTL_SECONDS = 600.0
_models_cache: dict[str, tuple[float, dict[str, VideoModel]]] = {}
DEFAULT_KEY_CACHE_TTL_SECONDS = 30.0
"""How long a worker process trusts one ``GET /key`` answer: a burst of mapped tasks on one worker
asks once, and a budget spent meanwhile is still seen within half a minute."""
_key_cache: dict[tuple[str, str], tuple[float, KeyStatus]] = {}
"""Per-process cache of ``GET /videos/models`` by base URL. The list is the same for every key,
and a mapped task over hundreds of prompts on one worker process should fetch it once."""


def _answered(response: httpx.Response, received: int = 0) -> Answered:
    """An httpx error answer as the retry engine sees it (its body read, the response closed)."""
    try:
        body = response.read()
    except httpx.HTTPError:
        body = b""  # the status decides; OpenRouter's message is a nicety
    finally:
        response.close()
    return Answered(response.status_code, response.headers.get("Retry-After"), body, received)


class OpenRouterVideoHook(BaseHook):
    """Talks to OpenRouter's video API with the key from an Airflow connection.

    :param openrouter_conn_id: Connection of type ``openrouter``: password = API key, host =
        base URL (default ``https://openrouter.ai/api/v1``), optional extras ``timeout``,
        ``http_referer`` and ``app_title``.
    :param retry_policy: Backoff for retryable failures (see :mod:`airflow_provider_orvideo.retry`).
    """

    conn_name_attr = "openrouter_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "openrouter"
    hook_name = "OpenRouter"

    def __init__(
        self,
        openrouter_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    ) -> None:
        super().__init__()
        self.openrouter_conn_id = openrouter_conn_id
        self.retry_policy = retry_policy
        self._settings: ConnectionSettings | None = None
        self._shared_session: SharedSession | None = None
        self._sendable: ConnectionSettings | None = None

    # -- connection ---------------------------------------------------------------------------

    def _settings_or_refusal(self, conn: Any, extra: Any) -> ConnectionSettings | OpenRouterVideoError:
        """:func:`settings_from_connection`, its refusal returned without its traceback: the frames
        it passed hold the password, which a traceback renderer showing locals would print."""
        try:
            return settings_from_connection(
                conn_id=self.openrouter_conn_id,
                host=conn.host,
                schema=conn.schema,
                port=conn.port,
                password=conn.password,
                extra=extra,
            )
        except OpenRouterVideoError as error:
            return error.with_traceback(None)

    def get_settings(self) -> ConnectionSettings:
        """Resolve the connection once (sync; worker side)."""
        if self._settings is None:
            conn = self.get_connection(self.openrouter_conn_id)
            resolved = self._settings_or_refusal(conn, conn.extra_dejson)
            del conn  # its repr shows the password: not a local of a frame in the traceback below
            if isinstance(resolved, OpenRouterVideoError):
                raise resolved
            self._settings = resolved
        return self._settings

    async def aget_settings(self) -> ConnectionSettings:
        """Resolve the connection once without blocking the event loop (triggerer side).

        Before Airflow 3.3.2 the event loop cannot resolve a connection safely (its secrets are
        masked by a synchronous call to the supervisor, which can deadlock): the sync lookup
        then runs in a worker thread through asgiref's ``sync_to_async``, as official providers
        do. Not ``asyncio.to_thread``: the triggerer's supervisor channel sends with
        ``async_to_sync``, which only finds the event loop it belongs to from a thread asgiref
        started (Airflow 3.0.6's triggerer failed every lookup with "attached to a different loop").
        """
        if self._settings is None and not ASYNC_CONNECTIONS:
            from asgiref.sync import sync_to_async

            return await sync_to_async(self.get_settings)()
        if self._settings is None:
            conn = await self.aget_connection(self.openrouter_conn_id)
            resolved = self._settings_or_refusal(conn, await conn.aextra_dejson())
            del conn  # its repr shows the password: not a local of a frame in the traceback below
            if isinstance(resolved, OpenRouterVideoError):
                raise resolved
            self._settings = resolved
        return self._settings

    def _sendable_settings(self, settings: ConnectionSettings) -> ConnectionSettings:
        """``settings``, once checked (per settings object) that their headers can be sent.

        Settings from :func:`settings_from_connection` always pass. Settings made another way are
        refused here, before an HTTP library sees them: httpcore's DEBUG log prints the exception
        h11 raises for a bad header value, and that text quotes the header, key included.
        """
        if settings is not self._sendable:
            refused = connection_header_error(settings, conn_id=self.openrouter_conn_id)
            if refused is not None:
                raise refused
            self._sendable = settings
        return settings

    @cached_property
    def _client(self) -> httpx.Client:
        return httpx_client(TransportConfig.for_settings(self.get_settings()))

    def close(self) -> None:
        """Close the sync connection pool."""
        if "_client" in self.__dict__:
            self.__dict__.pop("_client").close()

    async def aclose(self) -> None:
        """Give back the shared async session (call from the loop that used it)."""
        shared, self._shared_session = self._shared_session, None
        if shared is not None:
            from airflow_provider_orvideo.hooks._async_sessions import shared_sessions

            await shared_sessions.release(shared)

    # -- the one retry decision, for every driver ---------------------------------------------

    def _delay_before_retry(self, request: ApiRequest, attempt: int, outcome: Outcome) -> float:
        """Ask the retry engine: the (logged) delay before the next attempt, or raise its error.

        Drivers call this outside their ``except`` blocks, so the raised error never carries a
        library's exception as its ``__context__`` (its text can quote a request header).
        """
        step = self.retry_policy.next_step(
            request,
            attempt,
            outcome,
            now=time.time(),
            secret=self._settings.api_key if self._settings is not None else "",
            conn_id=self.openrouter_conn_id,
        )
        if isinstance(step, GiveUp):
            raise step.error
        self.log.warning(
            "OpenRouter %s failed (%s, attempt %d/%d); retrying in %.1f s.",
            request.describe(),
            step.why,
            attempt,
            self.retry_policy.max_attempts,
            step.delay,
        )
        return step.delay

    # -- sync driver (worker): JSON calls -----------------------------------------------------

    def _send(self, request: ApiRequest) -> httpx.Response:
        """Send with retries; return a response with status < 400 or raise a typed error."""
        settings = self._sendable_settings(self.get_settings())
        attempt = 0
        while True:
            attempt += 1
            try:
                response = httpx_send(self._client, request, settings)
            except ExchangeFailed as failed:
                outcome: Outcome = failed.outcome
            else:
                if response.status_code < 400:
                    return response
                outcome = _answered(response)
            time.sleep(self._delay_before_retry(request, attempt, outcome))

    def _send_json(self, request: ApiRequest) -> Any:
        response = self._send(request)
        return decode_json(response.content, request.describe())

    def list_models(self, *, max_age: float = DEFAULT_MODELS_CACHE_TTL_SECONDS) -> dict[str, VideoModel]:
        """All video models and their capabilities, keyed by model id.

        Served from a per-process cache no older than ``max_age`` seconds (0 forces a fetch).
        """
        base_url = self.get_settings().base_url
        cached = _models_cache.get(base_url)
        now = time.monotonic()
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        models = parse_models(self._send_json(list_models_request()))
        _models_cache[base_url] = (now, models)
        return models

    def get_key_status(self, *, max_age: float = DEFAULT_KEY_CACHE_TTL_SECONDS) -> KeyStatus:
        """The connection's key as ``GET /key`` reports it (budgets, the effective one, expiry),
        from a per-process cache no older than ``max_age`` seconds (0 forces a fetch)."""
        cache_key = (self.openrouter_conn_id, self.get_settings().base_url)
        cached = _key_cache.get(cache_key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        status = parse_key(self._send_json(key_request()))
        _key_cache[cache_key] = (now, status)
        return status

    def get_generation(self, generation_id: str) -> GenerationRecord:
        """``GET /generation?id=``: OpenRouter's record of one generation (a job's
        ``generation_id``), whose ``total_cost`` is what it was billed, also when the job object
        said ``usage.cost: null``. Never cached; retried as every GET. A generation OpenRouter
        has not stored yet (it is stored once its request finished) is an
        :class:`~airflow_provider_orvideo.exceptions.OpenRouterNotFoundError`."""
        return parse_generation(self._send_json(generation_request(generation_id)))

    def submit(self, body: Mapping[str, Any]) -> VideoJob:
        """POST /videos. Never retried blindly: see :mod:`airflow_provider_orvideo.retry`."""
        job = parse_job(self._send_json(submit_request(body)))
        self.log.info(
            "Submitted OpenRouter video job %s (model %s) from host %s.",
            job.id,
            body.get("model"),
            socket.gethostname(),
        )
        return job

    def get_job(self, job_id: str) -> VideoJob:
        """GET /videos/{job_id}."""
        return parse_job(self._send_json(get_job_request(job_id)))

    # -- download driver (worker) -------------------------------------------------------------

    def download_output(self, job_id: str, index: int, location: str) -> int:
        """Stream output ``index`` of a completed job to ``location`` (replacing what is there);
        return its size in bytes. See :meth:`save_output`."""
        return self.save_output(job_id, index, AtomicOutput(location))

    def save_output(self, job_id: str, index: int, output: AtomicOutput) -> int:
        """Stream output ``index`` of a completed job into ``output`` and commit it; return its size.

        Memory stays flat: each chunk is written as it arrives. A body cut short is resumed with
        an HTTP Range request from the first byte not yet saved (restarted from zero when the
        server ignores the range), as the retry engine allows. The file appears at
        ``output.location`` (or ``output.aside``, see :class:`AtomicOutput`) only when complete,
        of the announced length, and an MP4; otherwise nothing is left there. A failing write on
        our side (disk full, permission denied) is an :class:`OutputWriteError`, never retried
        here as a network fault.
        """
        request = content_request(job_id, index)
        try:
            output.open()
            expected = self._receive(request, output)
            self._check_complete(job_id, index, output, expected)
            output.commit()
            return output.bytes_written
        except OutputWriteError as error:
            output.discard()
            raise OutputWriteError(
                f"OpenRouter video job {job_id} is complete and paid, but saving its output {index} "
                f"failed on this worker: {error} Nothing was left at {output.location}. Free the space or "
                "fix the permissions; a retry of this task downloads the video again without paying."
            ) from None
        except BaseException:
            output.discard()
            raise

    def _receive(self, request: ApiRequest, output: AtomicOutput) -> int | None:
        """Write the body into ``output``, resuming cut bodies; return the announced full length."""
        settings = self._sendable_settings(self.get_settings())
        expected: int | None = None
        attempt = 0
        while True:
            attempt += 1
            requested_from = output.bytes_written
            outcome: Outcome | None = None
            try:
                response = httpx_send(
                    self._client,
                    request,
                    settings,
                    stream=True,
                    extra_headers={"Range": f"bytes={requested_from}-"} if requested_from else None,
                )
            except ExchangeFailed as failed:
                outcome = failed.outcome
            else:
                if response.status_code >= 400:
                    outcome = _answered(response, received=requested_from)
                else:
                    try:
                        start, length = self._start_body(request, response, requested_from)
                        if start == 0 and requested_from:
                            output.open()  # the server ignored the range: start over from byte 0
                        expected = length if length is not None or start == 0 else expected
                        try:
                            for chunk in httpx_body(response):
                                output.write(chunk)
                        except ExchangeFailed as failed:
                            outcome = failed.outcome
                    finally:
                        response.close()
            if outcome is None:
                return expected
            outcome = replace(outcome, received=output.bytes_written)
            time.sleep(self._delay_before_retry(request, attempt, outcome))

    @staticmethod
    def _start_body(
        request: ApiRequest, response: httpx.Response, requested_from: int
    ) -> tuple[int, int | None]:
        """Check a (possibly ranged) download answer before writing its body: where it starts
        and the full length it announces."""
        content_type = response.headers.get("Content-Type", "")
        if not content_type.startswith("video/"):
            raise VideoDownloadError(
                f"OpenRouter served {request.describe()} as {content_type or 'no content type'!r}, "
                "not video; nothing was saved."
            )
        return resume_offset(
            requested_from=requested_from,
            status_code=response.status_code,
            content_range=response.headers.get("Content-Range"),
            content_length=response.headers.get("Content-Length"),
        )

    @staticmethod
    def _check_complete(job_id: str, index: int, output: AtomicOutput, expected: int | None) -> None:
        if expected is not None and output.bytes_written != expected:
            raise VideoDownloadError(
                f"Output {index} of OpenRouter video job {job_id} is {output.bytes_written:,} bytes but the "
                f"server announced {expected:,}; nothing was written to {output.location}."
            )
        if not looks_like_mp4(output.head):
            raise VideoDownloadError(
                f"Output {index} of OpenRouter video job {job_id} is not an MP4 file (starts with "
                f"{output.head[:8]!r}); nothing was written to {output.location}."
            )

    # -- async driver (triggerer): polls ------------------------------------------------------

    async def _asend(self, request: ApiRequest) -> Answer:
        """The async twin of :meth:`_send`, over the loop's shared aiohttp session."""
        from airflow_provider_orvideo.hooks._async_sessions import exchange, shared_sessions

        settings = self._sendable_settings(await self.aget_settings())
        if self._shared_session is None:
            self._shared_session = shared_sessions.acquire(settings)
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = await exchange(self._shared_session, request, settings)
            except ExchangeFailed as failed:
                outcome: Outcome = failed.outcome
            else:
                if answer.status_code < 400:
                    return answer
                outcome = Answered(answer.status_code, answer.headers.get("Retry-After"), answer.body)
            await asyncio.sleep(self._delay_before_retry(request, attempt, outcome))

    async def aget_job(self, job_id: str) -> VideoJob:
        request = get_job_request(job_id)
        return parse_job(decode_json((await self._asend(request)).body, request.describe()))

    # -- connection test ----------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check the base URL serves the video API and the key is accepted; costs nothing.

        Two reads: the model list (proves the URL is OpenRouter's video API), then a poll of a
        made-up job id, which OpenRouter answers with 404 only when the key is valid (401 otherwise).
        The 404 is told apart from a wrong base URL because the model list answered first.
        """
        try:
            base_url = self.get_settings().base_url
        except OpenRouterVideoError as error:
            return False, str(error)
        try:
            models = self.list_models(max_age=0)
        except OpenRouterVideoError as error:
            return False, f"OpenRouter's video API did not answer at {base_url}: {error}"
        try:
            self.get_job("airflow-connection-test")
        except OpenRouterNotFoundError:
            return True, f"Connected to {base_url} ({len(models)} video models); the API key was accepted."
        except OpenRouterAuthError as error:
            return False, (
                f"OpenRouter at {base_url} refused the API key ({error}). "
                "Check the connection's 'API key' field."
            )
        except OpenRouterVideoError as error:
            return False, str(error)
        return True, f"Connected to {base_url}."
