"""The triggerer's HTTP adapter: one pooled ``aiohttp.ClientSession`` per event loop and base URL.

Why aiohttp here when the worker uses httpx: the triggerer polls thousands of jobs from one
process, so the CPU of a poll is the provider's main running cost. On the benchmark machine a
poll through httpx costs 1.2-1.6 ms of CPU and grows with the pool size (httpcore re-checks every
idle connection for every request); through aiohttp it costs less than half of that and a
connection is taken from the pool in O(1), so the pool can be sized for a real network's round
trip (``benchmarks/README.md``, section 1). Proxy, TLS trust, timeouts and redirects come from
the same :class:`~airflow_provider_orvideo.hooks._transport.TransportConfig` as the worker's
httpx adapter, and the retry decision from the same engine; this module only moves bytes and
classifies aiohttp's exceptions.

This module imports aiohttp, so the hook imports it lazily: workers and the DAG processor,
which never poll asynchronously, do not pay for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from airflow_provider_orvideo._internal.api import ApiRequest, ConnectionSettings
from airflow_provider_orvideo.hooks._transport import (
    FOLLOW_REDIRECTS,
    TransportConfig,
    default_ssl_context,
    failed_exchange,
)
from airflow_provider_orvideo.retry import Fault

SHARED_SESSION_CONCURRENCY = 64
"""Requests one shared session has in flight at once (and connections it may open).

Enough for 10,000 triggers polling every 30 s (333 polls/s) over a 150 ms round trip. When more
polls come due together (a triggerer restart picks up every trigger at once), the rest wait on an
``asyncio.Semaphore`` before the request starts, so waiting never eats into a request's timeout."""

_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
"""No connection to the server (or its proxy: ``ClientProxyConnectionError`` is a connector
error) was made, so the request never left."""

_REFUSED = (ValueError, aiohttp.NonHttpUrlClientError)
"""aiohttp refused the request before sending it: a ``ValueError`` for a header value with a
control character, an ``aiohttp.InvalidURL`` (also a ``ValueError``), or a scheme other than
http/https (``NonHttpUrlClientError``, only a ``ClientError``)."""

_SENT = (aiohttp.ClientError, asyncio.TimeoutError)
"""Anything else that broke the exchange (timeouts surface as ``asyncio.TimeoutError`` subclasses)."""


@dataclass(frozen=True)
class Answer:
    """A fully read response: status, headers and body (poll answers are small JSON)."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    body: bytes


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

    def acquire(self, settings: ConnectionSettings) -> SharedSession:
        """The loop's session for these settings."""
        key = (id(asyncio.get_running_loop()), settings.base_url, settings.timeout)
        shared = self.sessions.get(key)
        if shared is None:
            # Decided once per session: aiohttp's own trust_env would look the proxy (and
            # ~/.netrc) up in a thread for every request, doubling the CPU of a poll.
            config = TransportConfig.for_settings(settings)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=SHARED_SESSION_CONCURRENCY,
                    ssl=default_ssl_context() if settings.base_url.startswith("https:") else True,
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=config.connect_timeout, sock_read=config.read_timeout
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                proxy=config.proxy,
            )
            # aiohttp silently sends a GET again when a reused connection breaks; the retry engine
            # decides every retry (and logs it), so the two adapters behave alike.
            if "_retry_connection" in aiohttp.ClientSession.ATTRS:
                session._retry_connection = False
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


async def exchange(shared: SharedSession, request: ApiRequest, settings: ConnectionSettings) -> Answer:
    """One request through the shared session, read to the end; a broken exchange raises
    :class:`~airflow_provider_orvideo.hooks._transport.ExchangeFailed`."""
    async with shared.gate:
        try:
            response = await shared.session.request(
                request.method,
                URL(request.url(settings), encoded=True),
                headers=request.headers(settings),
                data=request.encoded_body(),
                allow_redirects=FOLLOW_REDIRECTS,
            )
        except _NOT_SENT as error:
            raise failed_exchange(Fault.NOT_SENT, error) from None
        except _REFUSED as error:
            url_error = isinstance(error, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError))
            raise failed_exchange(Fault.REFUSED, error, about_url=url_error) from None
        except _SENT as error:
            raise failed_exchange(Fault.SENT, error) from None
        async with response:
            try:
                return Answer(response.status, response.headers, await response.read())
            except _SENT as error:  # the body broke off: the request had left
                raise failed_exchange(Fault.SENT, error) from None
