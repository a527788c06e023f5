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


class LocalRequestError(Exception):
    """An HTTP library refused to build or send a request: a header value it cannot encode (a
    line break in a key, a non-ASCII character), or a URL it cannot use. Nothing left this
    process and the same request fails the same way, so it must not be retried.

    Keeps only the library exception's type name, never its text or the exception itself: that
    text can quote a request header, ``Authorization`` included. Raised by both HTTP paths
    (this module and ``_async_sessions``) and turned into a provider exception by the hook.
    """

    def __init__(self, error: BaseException, *, about_url: bool = False) -> None:
        self.kind = type(error).__name__
        self.about_url = about_url
        super().__init__(f"the HTTP client refused to build the request ({self.kind}); nothing was sent")


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

    Raises :class:`ContentNotSentError` when no connection could be made,
    :class:`LocalRequestError` when ``http.client`` refuses the URL or a header value (before
    sending anything), and ``OSError`` or ``http.client.HTTPException`` when it broke after the
    request left.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:  # e.g. a port out of range
        raise LocalRequestError(error, about_url=True) from None
    if parts.scheme not in ("http", "https"):
        raise LocalRequestError(ValueError("unsupported URL scheme"), about_url=True)
    host = parts.hostname or ""
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(host, port, timeout=connect_timeout, context=ssl_context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)
    try:
        connection.connect()
    except OSError as error:
        connection.close()
        raise ContentNotSentError(f"{type(error).__name__}: {error}") from None
    try:
        if connection.sock is not None:
            connection.sock.settimeout(read_timeout)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("GET", target, headers=dict(headers))
        except (ValueError, http.client.InvalidURL) as error:
            # Raised while the request line and headers are checked, before any byte is sent:
            # ValueError "Invalid header value b'Bearer ...'" (the text quotes the header, key
            # included), UnicodeEncodeError for a value outside latin-1, InvalidURL for the target.
            raise LocalRequestError(error, about_url=isinstance(error, http.client.InvalidURL)) from None
        return ContentResponse(connection, connection.getresponse())
    except BaseException:
        connection.close()
        raise
