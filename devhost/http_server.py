"""The dev host's HTTP server: one thread per connection, HTTP/1.1 keep-alive, request bodies read in full
(Content-Length or chunked, up to the host's 100 MB), responses written as the worker encodes them.

The listen backlog is large (the standard library's default is 5, so a burst of clients saw connection resets
before any request reached the app). Requests are logged on the `devhost` logger with status and milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("devhost")

Headers = list[tuple[str, str]]
MAX_BODY_BYTES = 100 * 1024 * 1024  # the host's default request body limit
LISTEN_BACKLOG = 1024


@dataclass(frozen=True)
class Response:
    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""


def json_response(status: int, data: object, content_type: str = "application/json; charset=utf-8",
                  headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, [("Content-Type", content_type), *headers], json.dumps(data).encode())


def problem(status: int, detail: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return json_response(status, body, "application/problem+json", headers)


class RequestError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


Dispatch = Callable[[str, str, Iterable[tuple[str, str]], bytes], Response]


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], dispatch: Dispatch) -> None:
        self.dispatch = dispatch
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Ends idle keep-alive connections: their handlers read EOF; a response being written still goes out."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "devhost"
    sys_version = ""
    server: HttpServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle + delayed ACK add ~40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def log_error(self, format: str, *args: Any) -> None:
        log.warning(format, *args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        if not length_text.strip().isdigit():
            raise RequestError(400, "The Content-Length header is invalid.")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise RequestError(413, "The request body is too large.")
        body = self.rfile.read(length)
        if len(body) < length:
            raise RequestError(400, "The request body is incomplete.")
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_text = self.rfile.readline(65537).split(b";", 1)[0].strip()
            if re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_text) is None:
                raise RequestError(400, "The chunked request body is malformed.")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY_BYTES:
                raise RequestError(413, "The request body is too large.")
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise RequestError(400, "The request body is incomplete.")
            chunks.append(chunk)
            self.rfile.readline(3)
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _serve(self) -> None:
        started = time.perf_counter()
        try:
            body = self._read_body()
            response = self.server.dispatch(self.command, self.path, self.headers.items(), body)
        except RequestError as exc:
            self.close_connection = True
            response = problem(exc.status, exc.detail)
        except Exception:
            log.exception("the dev host failed on %s %s", self.command, self.path)
            response = problem(500, "The dev host failed; its log has the details.")
        try:
            self._write(response)
        except OSError as exc:
            log.debug("the client went away: %s", exc)
            self.close_connection = True
        log.info("%s %s %d %.1f ms", self.command, urlsplit(self.path).path, response.status,
                 (time.perf_counter() - started) * 1000)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        bodiless = response.status < 200 or response.status in (204, 304)
        if not bodiless:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if not bodiless and self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815
