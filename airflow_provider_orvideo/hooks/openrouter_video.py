"""Hook for OpenRouter's asynchronous video generation API.

One hook, thin I/O shells: sync methods (``list_models``, ``submit``, ``get_job``,
``download_output``) for the worker, over httpx (and ``http.client`` for video bodies, see
``_content_stream``), and an async ``aget_job`` for the triggerer, which only polls, over one
shared aiohttp session per event loop (see ``_async_sessions`` for why). Request building,
response parsing, error mapping and the retry decision live once, in
:mod:`airflow_provider_orvideo.api` and :mod:`airflow_provider_orvideo.retry`; the shells differ
only in how bytes move, ``await`` and ``sleep``.

Logging never includes the API key, request headers or signed URLs: only method, path and
status are logged.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import re
import ssl
import time
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlencode

import httpx
from airflow.sdk import BaseHook

from airflow_provider_orvideo.api import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    ApiRequest,
    ConnectionSettings,
    Endpoint,
    VideoJob,
    VideoModel,
    api_error,
    connection_header_error,
    content_request,
    decode_json,
    get_job_request,
    list_models_request,
    parse_job,
    parse_models,
    settings_from_connection,
    submit_request,
)
from airflow_provider_orvideo.defaults import DEFAULT_CONN_ID
from airflow_provider_orvideo.exceptions import (
    OpenRouterAuthError,
    OpenRouterNotFoundError,
    OpenRouterTransportError,
    OpenRouterVideoError,
    OutputWriteError,
    SubmitOutcomeUnknownError,
    VideoDownloadError,
    VideoOutputGoneError,
)
from airflow_provider_orvideo.hooks._content_stream import (
    READ_BUFFER_BYTES,
    ContentNotSentError,
    ContentResponse,
    LocalRequestError,
    direct_route_available,
    open_content,
)
from airflow_provider_orvideo.retry import DEFAULT_RETRY_POLICY, RetryPolicy, parse_retry_after
from airflow_provider_orvideo.storage import AtomicOutput, looks_like_mp4
from airflow_provider_orvideo.submission import NOTHING_CREATED_STATUSES

if TYPE_CHECKING:
    from airflow_provider_orvideo.hooks._async_sessions import Answer, SharedSession

__all__ = [
    "OpenRouterVideoHook",
]

DEFAULT_MODELS_CACHE_TTL_SECONDS = 600.0
_models_cache: dict[str, tuple[float, dict[str, VideoModel]]] = {}
"""Per-process cache of ``GET /videos/models`` by base URL. The list is the same for every key,
and a mapped task over hundreds of prompts on one worker process should fetch it once."""

_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, ContentNotSentError)
"""Transport failures that happen before a request leaves: safe to retry even for a POST."""


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """The trust store httpx uses (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), built once per process.

    Building one loads the CA bundle: ~27 ms of CPU and ~800 KB, too much to pay per trigger.
    """
    return httpx.create_ssl_context()


_TRANSPORT_ERRORS = (httpx.TransportError, OSError, http.client.HTTPException)
"""What a broken exchange raises: httpx's errors, and the socket/``http.client`` errors of the
direct content path (``hooks/_content_stream.py``)."""

_EXCHANGE_ERRORS = (LocalRequestError, *_TRANSPORT_ERRORS)
"""What a failed exchange raises: a request refused locally (never retried) or a transport error."""

_LOCAL_SEND_ERRORS = (httpx.LocalProtocolError, httpx.UnsupportedProtocol)
"""httpx transport errors that mean "refused here, nothing sent" (h11 rejecting a header value, a
URL scheme httpx cannot speak): the same request fails the same way, so they are not retried.
``LocalProtocolError``'s text quotes the header (``Illegal header value b'Bearer sk-...'``)."""

_BEARER_TOKEN = re.compile(r"(Bearer)\s+[^\s'\",;]+", re.IGNORECASE)


def _redact(text: str, secret: str, *, bearer: bool = True) -> str:
    """``text`` with every form of ``secret`` (raw, stripped, as a Python str/bytes literal would
    show it) and, if ``bearer``, any bearer token replaced: for text from an HTTP library or a server."""
    if secret:
        forms = {
            secret,
            secret.strip(),
            repr(secret)[1:-1],
            repr(secret.encode("utf-8", "backslashreplace"))[2:-1],
        }
        for form in sorted(forms, key=len, reverse=True):
            if len(form) >= 4:
                text = text.replace(form, "[redacted API key]")
    return _BEARER_TOKEN.sub(r"\1 [redacted]", text) if bearer else text


class _Answer(Protocol):
    """What the retry loop needs of a response, from httpx or from the direct content path."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Any: ...  # case-insensitive .get(): httpx.Headers or http.client's HTTPMessage
    def read(self) -> bytes: ...
    def close(self) -> None: ...


_AnswerT = TypeVar("_AnswerT", bound=_Answer)


def _transport_failure(
    request: ApiRequest, error: BaseException, *, request_sent: bool, secret: str = ""
) -> OpenRouterVideoError:
    """The exception to raise once retries of a transport failure are exhausted (or not allowed).

    The library's text is redacted (``secret`` and any bearer token): it must never carry a header.
    """
    text = _redact(str(error), secret)
    reason = f"{type(error).__name__}: {text}" if text else type(error).__name__
    if request.endpoint is Endpoint.SUBMIT and request_sent:
        return SubmitOutcomeUnknownError(
            f"The submit request (POST /videos) was sent but no answer came back ({reason}). "
            "OpenRouter may have created a job that will render and bill; its id is unknown. "
            "The POST was not retried automatically, to avoid paying for a second video."
        )
    return OpenRouterTransportError(f"No answer from OpenRouter for {request.describe()} ({reason}).")


def _status_failure(
    request: ApiRequest, status_code: int, body: bytes, *, secret: str = ""
) -> OpenRouterVideoError:
    error = api_error(request.endpoint, status_code, body)
    if secret:  # a server (or a proxy in front of it) echoing the key back
        error.api_message = _redact(error.api_message, secret, bearer=False)
        error.args = (_redact(str(error), secret, bearer=False),)
    if request.endpoint is Endpoint.SUBMIT and status_code not in NOTHING_CREATED_STATUSES:
        error.args = (
            f"{error} OpenRouter may still have created a job that will render and bill; the POST was "
            "not retried automatically, to avoid paying for a second video.",
        )
    return error


def _body_chunks(
    response: ContentResponse | httpx.Response, buffer: bytearray
) -> Iterable[bytes | memoryview]:
    if isinstance(response, ContentResponse):
        return response.iter_into(buffer)
    return response.iter_bytes()  # unsized: every byte is handed over as it arrives


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
        """Resolve the connection once without blocking the event loop (triggerer side)."""
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

    def _timeout(self, settings: ConnectionSettings) -> httpx.Timeout:
        return httpx.Timeout(settings.timeout, connect=min(settings.timeout, DEFAULT_CONNECT_TIMEOUT_SECONDS))

    @cached_property
    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=self._timeout(self.get_settings()))

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

    # -- the retry decision shared by both shells ---------------------------------------------

    def _delay_after_transport_error(
        self, request: ApiRequest, attempt: int, *, request_sent: bool
    ) -> float | None:
        return self.retry_policy.delay_after_transport_error(
            idempotent=request.endpoint.idempotent, attempt=attempt, request_sent=request_sent
        )

    def _secret(self) -> str:
        return self._settings.api_key if self._settings is not None else ""

    def _retry_after_transport_error(
        self, request: ApiRequest, attempt: int, error: BaseException, *, request_sent: bool
    ) -> float:
        """The (logged) delay before the next attempt, or raise the final typed error."""
        delay = self._delay_after_transport_error(request, attempt, request_sent=request_sent)
        if delay is None:
            raise _transport_failure(
                request, error, request_sent=request_sent, secret=self._secret()
            ) from None
        self._log_retry(request, attempt, type(error).__name__, delay)
        return delay

    def _after_failed_exchange(
        self,
        request: ApiRequest,
        attempt: int,
        error: BaseException,
        not_sent: tuple[type[BaseException], ...],
    ) -> float:
        """After an exchange raised: the delay before the next attempt, or raise the typed error.

        Called outside the ``except`` block, so the raised error does not carry the library's
        exception as its ``__context__`` (its text can quote a request header).
        """
        if isinstance(error, LocalRequestError):
            error.__context__ = None  # drop the library's exception (and the header in its text)
            raise self._local_failure(request, error)
        return self._retry_after_transport_error(
            request, attempt, error, request_sent=not isinstance(error, not_sent)
        )

    def _local_failure(self, request: ApiRequest, error: LocalRequestError) -> OpenRouterVideoError:
        """The error for a request the HTTP library refused to send; it is never retried.

        A header value from the connection is an :class:`InvalidConnectionError` naming the field
        (settings built by :func:`settings_from_connection` never get here; other settings may).
        """
        if self._settings is not None:
            refused = connection_header_error(self._settings, conn_id=self.openrouter_conn_id)
            if refused is not None:
                return refused
        where = (
            f" Check the host (base URL) of the connection {self.openrouter_conn_id!r}."
            if error.about_url
            else ""
        )
        return OpenRouterTransportError(
            f"OpenRouter {request.describe()} was not sent: the HTTP client refused to build the request "
            f"({error.kind}). The same request would fail again, so it was not retried.{where}"
        )

    def _retry_after_status(self, request: ApiRequest, attempt: int, response: _Answer) -> float:
        """For an answer >= 400: the (logged) delay before the next attempt, or raise the typed error."""
        body = response.read()
        response.close()
        delay = self.retry_policy.delay_after_status(
            idempotent=request.endpoint.idempotent,
            attempt=attempt,
            status_code=response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), now=time.time()),
        )
        if delay is None:
            raise _status_failure(request, response.status_code, body, secret=self._secret())
        self._log_retry(request, attempt, f"HTTP {response.status_code}", delay)
        return delay

    def _log_retry(self, request: ApiRequest, attempt: int, what: str, delay: float) -> None:
        self.log.warning(
            "OpenRouter %s failed (%s, attempt %d/%d); retrying in %.1f s.",
            request.describe(),
            what,
            attempt,
            self.retry_policy.max_attempts,
            delay,
        )

    # -- sync shell ---------------------------------------------------------------------------

    def _send(
        self, request: ApiRequest, *, stream: bool = False, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """Send with retries; return a response with status < 400 or raise a typed error."""
        settings = self._sendable_settings(self.get_settings())

        def exchange() -> httpx.Response:
            try:
                outgoing = self._client.build_request(
                    request.method,
                    request.url(settings),
                    params=dict(request.params),
                    headers=request.headers(settings, headers),
                    content=request.encoded_body(),
                )
            except (ValueError, httpx.InvalidURL) as error:  # UnicodeEncodeError: a non-ASCII header
                raise LocalRequestError(error, about_url=isinstance(error, httpx.InvalidURL)) from None
            try:
                return self._client.send(outgoing, stream=stream)
            except _LOCAL_SEND_ERRORS as error:
                raise LocalRequestError(
                    error, about_url=isinstance(error, httpx.UnsupportedProtocol)
                ) from None

        return self._with_retries(request, exchange)

    def _with_retries(self, request: ApiRequest, exchange: Callable[[], _AnswerT]) -> _AnswerT:
        """Run ``exchange`` until it answers below 400, retrying as the policy allows."""
        attempt = 0
        while True:
            attempt += 1
            failure: BaseException | None = None
            try:
                response = exchange()
            except _EXCHANGE_ERRORS as error:
                failure = error
            if failure is not None:
                time.sleep(self._after_failed_exchange(request, attempt, failure, _NOT_SENT_ERRORS))
                continue
            if response.status_code < 400:
                return response
            time.sleep(self._retry_after_status(request, attempt, response))

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

    def submit(self, body: dict[str, Any]) -> VideoJob:
        """POST /videos. Never retried blindly: see :mod:`airflow_provider_orvideo.retry`."""
        job = parse_job(self._send_json(submit_request(body)))
        self.log.info("Submitted OpenRouter video job %s (model %s).", job.id, body.get("model"))
        return job

    def get_job(self, job_id: str) -> VideoJob:
        """GET /videos/{job_id}."""
        return parse_job(self._send_json(get_job_request(job_id)))

    def download_output(self, job_id: str, index: int, location: str) -> int:
        """Stream output ``index`` of a completed job to ``location`` (replacing what is there);
        return its size in bytes. See :meth:`save_output`."""
        return self.save_output(job_id, index, AtomicOutput(location))

    def save_output(self, job_id: str, index: int, output: AtomicOutput) -> int:
        """Stream output ``index`` of a completed job into ``output`` and commit it; return its size.

        Memory stays flat: the body is read into one 64 KiB buffer and written as it arrives. A
        body cut short is resumed with an HTTP Range request (restarted from zero when the server
        ignores the range), up to the retry policy's attempts. The file appears at
        ``output.location`` (or ``output.aside``, see :class:`AtomicOutput`) only when complete,
        of the announced length, and an MP4; otherwise nothing is left there. A failing write on
        our side (disk full, permission denied) is an :class:`OutputWriteError`, never retried
        here as a network fault.
        """
        request = content_request(job_id, index)
        buffer = bytearray(READ_BUFFER_BYTES)
        location = output.location
        try:
            output.open()
            expected: int | None = None
            attempt = 0
            while True:
                attempt += 1
                resume_from = output.bytes_written
                range_header = {"Range": f"bytes={resume_from}-"} if resume_from else None
                try:
                    try:
                        response = self._open_content(request, range_header)
                    except OpenRouterNotFoundError as gone:
                        raise VideoOutputGoneError(
                            f"Output {index} of OpenRouter video job {job_id} is no longer available "
                            f"(HTTP {gone.http_status}: {gone.api_message}). The job completed and was billed, "
                            f"but its video can no longer be fetched; nothing was written to {location}. "
                            "A retry of this task will find the same; submitting anew means paying again."
                        ) from None
                    try:
                        expected = self._start_body(request, response, output, resume_from, expected)
                        # Every byte is written as it arrives, so a cut body resumes exactly there.
                        for chunk in _body_chunks(response, buffer):
                            output.write(chunk)
                    finally:
                        response.close()
                except _TRANSPORT_ERRORS as error:
                    delay = self._delay_after_transport_error(request, attempt, request_sent=True)
                    if delay is None:
                        raise VideoDownloadError(
                            f"Downloading output {index} of OpenRouter video job {job_id} failed after "
                            f"{output.bytes_written:,} bytes ({type(error).__name__}). Nothing was written to "
                            f"{location}. The job is complete, so a retry of the task downloads it again "
                            "without paying."
                        ) from None
                    self._log_retry(request, attempt, f"body cut at {output.bytes_written:,} bytes", delay)
                    time.sleep(delay)
                    continue
                break
            self._check_complete(job_id, index, location, output, expected)
            output.commit()
            return output.bytes_written
        except OutputWriteError as error:
            output.discard()
            raise OutputWriteError(
                f"OpenRouter video job {job_id} is complete and paid, but saving its output {index} "
                f"failed on this worker: {error} Nothing was left at {location}. Free the space or fix "
                "the permissions; a retry of this task downloads the video again without paying."
            ) from None
        except BaseException:
            output.discard()
            raise

    def _open_content(
        self, request: ApiRequest, extra_headers: dict[str, str] | None
    ) -> ContentResponse | httpx.Response:
        """Start the content GET (with retries): direct ``http.client`` unless a proxy applies."""
        settings = self._sendable_settings(self.get_settings())
        url = f"{request.url(settings)}?{urlencode(dict(request.params))}"
        if not direct_route_available(url):
            return self._send(request, stream=True, headers=extra_headers)
        connect_timeout = self._timeout(settings).connect or settings.timeout
        # The headers (with the key) are built inside the call, never held in a local of this
        # frame: a traceback renderer that shows locals would print them.
        return self._with_retries(
            request,
            lambda: open_content(
                url,
                request.headers(settings, extra_headers),
                connect_timeout=connect_timeout,
                read_timeout=settings.timeout,
                ssl_context=default_ssl_context() if url.startswith("https:") else None,
            ),
        )

    def _start_body(
        self,
        request: ApiRequest,
        response: ContentResponse | httpx.Response,
        output: AtomicOutput,
        resume_from: int,
        expected: int | None,
    ) -> int | None:
        """Check a (possibly ranged) download answer before writing its body; return the full length."""
        content_type = response.headers.get("Content-Type", "")
        if not content_type.startswith("video/"):
            raise VideoDownloadError(
                f"OpenRouter served {request.describe()} as {content_type or 'no content type'!r}, "
                "not video; nothing was saved."
            )
        if resume_from and response.status_code == 206:
            total = response.headers.get("Content-Range", "").rpartition("/")[2]
            start = response.headers.get("Content-Range", "").removeprefix("bytes ").partition("-")[0]
            if start == str(resume_from):
                return int(total) if total.isdigit() else expected
        if resume_from:
            output.open()  # the server ignored the range: start over from byte 0
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def _check_complete(
        self, job_id: str, index: int, location: str, output: AtomicOutput, expected: int | None
    ) -> None:
        if expected is not None and output.bytes_written != expected:
            raise VideoDownloadError(
                f"Output {index} of OpenRouter video job {job_id} is {output.bytes_written:,} bytes but the "
                f"server announced {expected:,}; nothing was written to {location}."
            )
        if not looks_like_mp4(output.head):
            raise VideoDownloadError(
                f"Output {index} of OpenRouter video job {job_id} is not an MP4 file (starts with "
                f"{output.head[:8]!r}); nothing was written to {location}."
            )

    # -- async shell (triggerer) --------------------------------------------------------------

    async def _asend(self, request: ApiRequest) -> Answer:
        """Async twin of :meth:`_send` over the loop's shared aiohttp session (see ``_async_sessions``)."""
        from airflow_provider_orvideo.hooks._async_sessions import (
            NOT_SENT_ERRORS,
            TRANSPORT_ERRORS,
            exchange,
            shared_sessions,
        )

        settings = self._sendable_settings(await self.aget_settings())
        if self._shared_session is None:
            connect_timeout = self._timeout(settings).connect or settings.timeout
            self._shared_session = shared_sessions.acquire(settings, connect_timeout, default_ssl_context)
        shared = self._shared_session
        url = request.url(settings) + (f"?{urlencode(dict(request.params))}" if request.params else "")
        exchange_errors: tuple[type[BaseException], ...] = (LocalRequestError, *TRANSPORT_ERRORS)
        attempt = 0
        while True:
            attempt += 1
            failure: BaseException | None = None
            try:
                response = await exchange(
                    shared, request.method, url, request.headers(settings), request.encoded_body()
                )
            except exchange_errors as error:
                failure = error
            if failure is not None:
                await asyncio.sleep(self._after_failed_exchange(request, attempt, failure, NOT_SENT_ERRORS))
                continue
            if response.status_code < 400:
                return response
            await asyncio.sleep(self._retry_after_status(request, attempt, response))

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
