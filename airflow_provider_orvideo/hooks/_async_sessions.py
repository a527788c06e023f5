"""The triggerer's HTTP path: one pooled ``aiohttp.ClientSession`` per event loop and base URL.

Why aiohttp here when the worker uses httpx: the triggerer polls thousands of jobs from one
process, so the CPU of a poll is the provider's main running cost. On the benchmark machine a
poll through httpx costs 1.2-1.6 ms of CPU and grows with the pool size (httpcore re-checks every
idle connection for every request); through aiohttp it costs less than half of that and a
connection is taken from the pool in O(1), so the pool can be sized for a real network's round
trip (``benchmarks/README.md``, section 1). Requests are built, parsed and retried by the same
code as the sync path (:mod:`airflow_provider_orvideo.api`, :mod:`airflow_provider_orvideo.retry`);
only the exchange differs.

This module imports aiohttp, so the hook imports it lazily: workers and the DAG processor,
which never poll asynchronously, do not pay for it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from airflow_provider_orvideo.api import ConnectionSettings
from airflow_provider_orvideo.hooks._content_stream import LocalRequestError, environment_proxy

SHARED_SESSION_CONCURRENCY = 64
"""Requests one shared session has in flight at once (and connections it may open).

Enough for 10,000 triggers polling every 30 s (333 polls/s) over a 150 ms round trip. When more
polls come due together (a triggerer restart picks up every trigger at once), the rest wait on an
``asyncio.Semaphore`` before the request starts, so waiting never eats into a request's timeout."""

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError)
"""What a broken exchange raises (timeouts surface as ``asyncio.TimeoutError`` subclasses)."""

NOT_SENT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
)
"""No connection was made, so the request never left."""


@dataclass(frozen=True)
class Answer:
    """A fully read response: status, headers and body (poll answers are small JSON)."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    body: bytes

    def read(self) -> bytes:
        return self.body

    def close(self) -> None:
        """Nothing to release: the body is already read and the connection back in the pool."""


@dataclass
class SharedSession:
    session: aiohttp.ClientSession
    gate: asyncio.Semaphore
    users: int = 0


@dataclass
class SharedSessions:
    """One session per (event loop, base URL, timeout), shared by all triggers in that loop.

    Sharing is safe because a session here never holds credentials or cookies: every request
    carries its own ``Authorization`` header and the cookie jar ignores ``Set-Cookie``, so
    triggers of different connections share sockets but never keys. Reference-counted: the last
    trigger to leave closes the session.
    """

    sessions: dict[tuple[int, str, float], SharedSession] = field(default_factory=dict)

    def acquire(
        self, settings: ConnectionSettings, connect_timeout: float, ssl_context: Callable[[], ssl.SSLContext]
    ) -> SharedSession:
        """The loop's session for these settings; ``ssl_context`` is called only to create one."""
        key = (id(asyncio.get_running_loop()), settings.base_url, settings.timeout)
        shared = self.sessions.get(key)
        if shared is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=SHARED_SESSION_CONCURRENCY,
                    ssl=ssl_context() if settings.base_url.startswith("https:") else True,
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=connect_timeout, sock_read=settings.timeout
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                # The proxy is read from the environment once, here: aiohttp's trust_env would look
                # it (and ~/.netrc) up in a thread for every request, doubling the CPU of a poll.
                proxy=environment_proxy(settings.base_url),
            )
            shared = self.sessions[key] = SharedSession(
                session, asyncio.Semaphore(SHARED_SESSION_CONCURRENCY)
            )
        shared.users += 1
        return shared

    async def release(self, shared: SharedSession) -> None:
        shared.users -= 1
        if shared.users > 0:
            return
        for key, entry in list(self.sessions.items()):
            if entry is shared:
                del self.sessions[key]
        await shared.session.close()


shared_sessions = SharedSessions()


async def exchange(
    shared: SharedSession, method: str, url: str, headers: dict[str, str], body: bytes | None
) -> Answer:
    """One request through the shared session, read to the end (``url`` is already encoded).

    Raises :class:`LocalRequestError` when aiohttp refuses the request before sending it: a
    ``ValueError`` for a header value with a control character (its text does not quote the
    value, but nothing of it is kept anyway), an ``aiohttp.InvalidURL`` (also a ``ValueError``)
    or an ``aiohttp.NonHttpUrlClientError`` (a scheme other than http/https; only a ``ClientError``).
    """
    async with shared.gate:
        try:
            response = await shared.session.request(
                method, URL(url, encoded=True), headers=headers, data=body, allow_redirects=False
            )
        except (ValueError, aiohttp.NonHttpUrlClientError) as error:
            url_error = isinstance(error, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError))
            raise LocalRequestError(error, about_url=url_error) from None
        async with response:
            return Answer(response.status, response.headers, await response.read())
