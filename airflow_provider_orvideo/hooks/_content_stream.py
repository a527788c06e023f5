"""Read a video body into one reused buffer with the standard library's ``http.client``.

httpx hands a streamed body over as a new ``bytes`` object per 64 KiB, parsed in Python by h11:
about 60 µs of CPU per chunk, which capped the hook at ~0.45x curl's throughput on a 1 GiB
output. ``http.client``'s ``readinto`` fills a caller-owned buffer straight from the socket, so
the body costs a third of the CPU and the download runs at disk/network speed (figures and
commands in ``benchmarks/README.md``, section 2). Only ``GET /videos/{id}/content`` uses this
path; the JSON endpoints stay on httpx, and so does the download itself when the environment
routes the URL through a proxy (httpx honours the proxy variables; this module does not).
"""

from __future__ import annotations

import http.client
import ssl
import urllib.request
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

READ_BUFFER_BYTES = 64 * 1024
"""Size of the one buffer a download reads into (the socket rarely hands over more at a time)."""


class ContentNotSentError(ConnectionError):
    """Connecting failed: the request never left, so retrying it cannot duplicate anything."""


def environment_proxy(url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY`` and friends, ``NO_PROXY``) sets for ``url``, if any."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def direct_route_available(url: str) -> bool:
    """False when the environment routes ``url`` through a proxy."""
    return environment_proxy(url) is None


class ContentResponse:
    """The status and headers of a content GET, and its body read into a caller's buffer."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self._connection = connection
        self._response = response
        self.status_code = response.status
        self.headers = response.headers

    def read(self) -> bytes:
        return self._response.read()

    def iter_into(self, buffer: bytearray) -> Iterator[memoryview]:
        """Yield views of ``buffer`` as it is refilled; each view is valid until the next one."""
        view = memoryview(buffer)
        while filled := self._response.readinto(view):
            yield view[:filled]
        if self._response.length:  # http.client reports a cut sized body as a plain end of body
            raise http.client.IncompleteRead(b"", self._response.length)

    def close(self) -> None:
        self._response.close()
        self._connection.close()


def open_content(
    url: str,
    headers: Mapping[str, str],
    *,
    connect_timeout: float,
    read_timeout: float,
    ssl_context: ssl.SSLContext | None,
) -> ContentResponse:
    """Send ``GET url`` on a new connection and return once the response headers are in.

    Raises :class:`ContentNotSentError` when no connection could be made, and ``OSError`` or
    ``http.client.HTTPException`` when it broke after the request left.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, parts.port, timeout=connect_timeout, context=ssl_context
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=connect_timeout)
    try:
        connection.connect()
    except OSError as error:
        connection.close()
        raise ContentNotSentError(f"{type(error).__name__}: {error}") from None
    try:
        if connection.sock is not None:
            connection.sock.settimeout(read_timeout)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target, headers=dict(headers))
        return ContentResponse(connection, connection.getresponse())
    except BaseException:
        connection.close()
        raise
