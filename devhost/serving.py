"""A loopback HTTP(S) server in a daemon thread: what the local identity provider, the stand-ins and the portal
server share (start on a port, 0 for any free one; TLS with the identity provider's certificate; stop)."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self


class LoopbackServer:
    def __init__(self, name: str, host: str, port: int, handler: type[BaseHTTPRequestHandler], *,
                 tls: tuple[Path, Path] | None = None) -> None:
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        if tls is not None:  # (certificate chain, key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"devhost-{name}",
                         daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class ServedOnLoopback:
    """`stop` and `with` for what serves through a LoopbackServer kept in `_server` (its `start` makes it)."""

    _server: LoopbackServer | None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
