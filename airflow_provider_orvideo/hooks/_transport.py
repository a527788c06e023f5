"""How the provider reaches OpenRouter, decided once; and the httpx adapter (worker side).

Two HTTP libraries move the provider's bytes: httpx on the worker (JSON calls and the video
download) and aiohttp in the triggerer (polls; see ``_async_sessions``). What they send through
is decided here, once, and applied by both, so the two paths cannot drift apart:

* **Proxy**: the environment's ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY``,
  read with the standard library's rules (:func:`environment_proxy`); neither library reads the
  environment itself (httpx gets ``trust_env=False``, aiohttp no ``trust_env``), so there is one
  ``NO_PROXY`` implementation.
* **TLS trust**: :func:`default_ssl_context` (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``),
  built once per process.
* **Timeouts**: connect within ``min(timeout, 10 s)``, then at most ``timeout`` between bytes.
* **Redirects**: never followed. OpenRouter's API does not redirect; an answer that does is
  handed to the caller as it is (and is not JSON, so it fails as an unexpected answer).

Each adapter does one thing more: turn its library's exceptions into a :class:`Broken` outcome
(:attr:`Fault.NOT_SENT`, :attr:`Fault.SENT` or :attr:`Fault.REFUSED`) for the retry engine
(:mod:`airflow_provider_orvideo.retry`), raised as :class:`ExchangeFailed`.
"""

from __future__ import annotations

import functools
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from airflow_provider_orvideo._internal.api import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    ApiRequest,
    ConnectionSettings,
)
from airflow_provider_orvideo.retry import Broken, Fault

FOLLOW_REDIRECTS = False


class ExchangeFailed(Exception):
    """An adapter's report that an exchange broke: carries the classified :class:`Broken` only,
    never the library's exception (whose text can quote a request header, the key included)."""

    def __init__(self, outcome: Broken) -> None:
        super().__init__(outcome.fault.value)
        self.outcome = outcome


def failed_exchange(fault: Fault, error: BaseException, *, about_url: bool = False) -> ExchangeFailed:
    """``error`` classified; a refusal keeps only the exception's type name."""
    text = "" if fault is Fault.REFUSED else str(error)
    reason = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return ExchangeFailed(Broken(fault, reason, about_url=about_url))


@functools.cache
def default_ssl_context() -> ssl.SSLContext:
    """The trust store (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), built once per process.

    Building one loads the CA bundle: ~27 ms of CPU and ~800 KB, too much to pay per trigger.
    """
    return httpx.create_ssl_context()


def environment_proxy(url: str) -> str | None:
    """The proxy the environment sets for ``url`` (``NO_PROXY`` honoured), or None for a direct route."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    # proxy_bypass_environment: the NO_PROXY rules of urllib on every OS (not in typeshed).
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not proxy or bypass(parts.hostname or "", proxies):
        return None
    return proxy


@dataclass(frozen=True)
class TransportConfig:
    """Everything an adapter needs besides the request: the same for every library."""

    connect_timeout: float
    read_timeout: float
    proxy: str | None

    @classmethod
    def for_settings(cls, settings: ConnectionSettings) -> TransportConfig:
        return cls(
            connect_timeout=min(settings.timeout, DEFAULT_CONNECT_TIMEOUT_SECONDS),
            read_timeout=settings.timeout,
            proxy=environment_proxy(settings.base_url),
        )


# -- the httpx adapter ------------------------------------------------------------------------

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
"""No connection to the server (or its proxy) was made: the request never left."""

_REFUSED = (httpx.LocalProtocolError, httpx.UnsupportedProtocol)
"""httpx refused to send: h11 rejecting a header value (its text quotes the header, key
included), or a URL scheme httpx cannot speak."""

_SENT = (httpx.TransportError, OSError)
"""Anything else that broke the exchange, after the request may have left."""


def httpx_client(config: TransportConfig) -> httpx.Client:
    """A sync client applying ``config``; it never reads the environment itself."""
    return httpx.Client(
        timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
        proxy=config.proxy,
        verify=default_ssl_context(),
        trust_env=False,
        follow_redirects=FOLLOW_REDIRECTS,
    )


def httpx_send(
    client: httpx.Client,
    request: ApiRequest,
    settings: ConnectionSettings,
    *,
    stream: bool = False,
    extra_headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One exchange; a broken one raises :class:`ExchangeFailed`. The headers (with the key) are
    built inside the call, never kept in a caller's frame that a traceback could show."""
    try:
        outgoing = client.build_request(
            request.method,
            request.url(settings),
            headers=request.headers(settings, extra_headers),
            content=request.encoded_body(),
        )
    except (ValueError, httpx.InvalidURL) as error:  # UnicodeEncodeError: a non-ASCII header
        raise failed_exchange(Fault.REFUSED, error, about_url=isinstance(error, httpx.InvalidURL)) from None
    try:
        return client.send(outgoing, stream=stream)
    except _REFUSED as error:
        raise failed_exchange(
            Fault.REFUSED, error, about_url=isinstance(error, httpx.UnsupportedProtocol)
        ) from None
    except _NOT_SENT as error:
        raise failed_exchange(Fault.NOT_SENT, error) from None
    except _SENT as error:
        raise failed_exchange(Fault.SENT, error) from None


def httpx_body(response: httpx.Response) -> Iterator[bytes]:
    """A streamed body as it arrives; a cut or stalled body raises :class:`ExchangeFailed`.

    Only reading sits inside the ``except``: whatever the caller does with a chunk (write it to
    disk) raises its own errors, never classified as the network's.
    """
    chunks = response.iter_raw()
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except _SENT as error:
            raise failed_exchange(Fault.SENT, error) from None
        yield chunk
