"""The emulator's HTTP server: standard library only, so it owns every byte on the socket.

Owning the socket is what lets the emulator send a real TCP reset, or announce a
Content-Length and then stop short, which no framework would let it do.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from orvideo_emulator.app import MAX_BODY_BYTES, Emulator, Reply, Request, error_reply
from orvideo_emulator.errors import ApiError
from orvideo_emulator.jobs import JobSettings

_IDLE_CONNECTION_SECONDS = 120.0


class _Handler(BaseHTTPRequestHandler):
    """Reads one request at a time off a keep-alive connection and writes the app's reply."""

    protocol_version = "HTTP/1.1"
    server_version = "OpenRouterEmulator/1.0"
    timeout = _IDLE_CONNECTION_SECONDS
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle's algorithm and
        # the client's delayed ACK would stall every response by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        super().finish()

    def do_GET(self) -> None:
        self._serve()

    # Every method gets a JSON answer (405/404) rather than http.server's HTML 501.
    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: ``GET /_emulator/requests`` is the emulator's access log."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, oversized headers) also get the JSON envelope."""
        self.close_connection = True
        self._send(error_reply(ApiError(code, message)))

    def _serve(self) -> None:
        if "Transfer-Encoding" in self.headers:
            self.send_error(411, "Content-Length required; chunked request bodies are not supported")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, "Invalid Content-Length")
            return
        # Over the limit the body is never read, as at OpenRouter's edge; the reply closes the
        # connection since the unread bytes would otherwise be parsed as the next request.
        body = self.rfile.read(length) if length <= MAX_BODY_BYTES else None
        url = urlsplit(self.path)
        host = self.headers.get("Host") or f"{self.server.host}:{self.server.server_port}"
        request = Request(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            origin=f"http://{host}",
        )
        self._send(self.server.app.handle(request))

    def _send(self, reply: Reply) -> None:
        if reply.reset:
            # Linger 0 makes close() send RST instead of FIN: the client sees a reset connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(reply.content_length))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.close:
            self.send_header("Connection", "close")
        # A truncated body ends the connection, but without announcing it: a real cut-off doesn't.
        if reply.close or reply.truncate_at is not None:
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        budget = reply.content_length if reply.truncate_at is None else reply.truncate_at
        for chunk in self._chunks(reply):
            self.wfile.write(chunk[:budget])
            budget -= len(chunk)
            if budget <= 0:
                break

    @staticmethod
    def _chunks(reply: Reply) -> Iterable[bytes]:
        if reply.video is None:
            return [reply.body]
        video, start, end = reply.video
        return video.iter_range(start, end)


class _HTTPServer(ThreadingHTTPServer):
    """Threaded server that can also close the keep-alive connections it has open."""

    daemon_threads = True
    request_queue_size = 1024  # socketserver's 5 drops SYNs when many clients connect at once

    def __init__(self, address: tuple[str, int], app: Emulator) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.host = address[0]
        self._connections_lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                # OSError: already closed by the peer or by a reset fault.
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (timeouts, resets) are routine for this server, not errors."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class EmulatorServer:
    """A local OpenRouter video API on a real socket, served from a background daemon thread."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "emulator-key",
        pending_seconds: float = 1.0,
        in_progress_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
        webhook_secret: str | None = None,
    ) -> None:
        self.api_key = api_key
        self._address = (host, port)
        defaults = JobSettings(pending_seconds=pending_seconds, in_progress_seconds=in_progress_seconds)
        self._app = Emulator(api_key=api_key, defaults=defaults, clock=clock, webhook_secret=webhook_secret)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EmulatorServer:
        """Bind and start serving; with ``port=0`` the OS picks a free port (see ``port``)."""
        if self._httpd is not None:
            raise RuntimeError("emulator already started")
        self._httpd = _HTTPServer(self._address, self._app)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"openrouter-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, drop open keep-alive connections, and release the port."""
        if self._httpd is None or self._thread is None:
            return
        self._httpd.shutdown()
        self._httpd.close_connections()
        self._httpd.server_close()
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("emulator not started")
        return self._httpd.server_port

    @property
    def origin(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/v1"
