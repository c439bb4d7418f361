"""What the local Microsoft Graph and the local Dataverse share (dev and tests only): an HTTPS server on loopback
with the identity provider's TLS files, bearer-token checks against its signing key, opaque signed cursors for
skip and delta tokens, injected faults and call counts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlsplit

import jwt

from devhost.idp import IdentityProvider
from devhost.serving import LoopbackServer, ServedOnLoopback

log = logging.getLogger("devhost.standin")


class Cursors:
    """Skip and delta tokens: a position, encoded and signed, so that a replayed link means exactly one place in
    the change log and a tampered or foreign one is refused."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def encode(self, state: Mapping[str, Any]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":"), sort_keys=True).encode()).rstrip(b"=")
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:12]
        return body.decode() + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def decode(self, token: str) -> dict[str, Any] | None:
        body, _, mac = token.partition(".")
        expected = base64.urlsafe_b64encode(hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:12])
        if not hmac.compare_digest(expected.rstrip(b"=").decode(), mac):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


@dataclass
class Fault:
    """An answer given instead of the real one, `times` times, to requests that match."""

    status: int
    code: str
    message: str
    tenant: str | None = None
    path_contains: str | None = None
    retry_after: float | None = None
    times: int = 1


@dataclass
class Request:
    method: str
    path: str
    segments: list[str]
    query: dict[str, str]
    headers: Mapping[str, str]
    raw_path: str


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class LoopbackService(ServedOnLoopback):
    """Base of the stand-ins: serves `handle(request, claims)` over HTTPS on loopback."""

    idp: IdentityProvider
    host: str = "127.0.0.1"
    port: int = 0
    name: str = "standin"
    _server: LoopbackServer | None = field(default=None, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _faults: list[Fault] = field(default_factory=list, init=False, repr=False)
    _calls: Counter[tuple[str, str]] = field(default_factory=Counter, init=False, repr=False)
    _expired_utis: set[str] = field(default_factory=set, init=False, repr=False)
    _seen_utis: set[str] = field(default_factory=set, init=False, repr=False)
    cursors: Cursors = field(default_factory=Cursors, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    # -- test controls --------------------------------------------------------------------------------

    def fail_next(self, status: int, code: str, message: str = "", *, tenant: str | None = None,
                  path_contains: str | None = None, retry_after: float | None = None, times: int = 1) -> None:
        with self._lock:
            self._faults.append(Fault(status, code, message or code, tenant, path_contains, retry_after, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def expire_tokens(self) -> None:
        """Every token presented so far now reads as expired (as if its lifetime had passed); new ones work."""
        with self._lock:
            self._expired_utis |= self._seen_utis

    def calls(self, tenant: str, scope: str | None = None) -> int:
        """Requests that named this tenant in their token (valid or not), all or those under one `scope` (for
        Graph a mailbox id, for Dataverse an entity set)."""
        with self._lock:
            if scope is None:
                return sum(n for (t, _), n in self._calls.items() if t == tenant)
            return self._calls[(tenant, scope)]

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # -- what subclasses provide ----------------------------------------------------------------------

    def audience_ok(self, audience: Any, request: Request) -> bool:
        raise NotImplementedError

    def scope_of(self, request: Request) -> str:
        return ""

    def handle(self, request: Request, claims: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        raise NotImplementedError

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def unauthorized(self, message: str, request: Request) -> ApiError:
        raise NotImplementedError

    # -- plumbing -------------------------------------------------------------------------------------

    def verify(self, request: Request) -> dict[str, Any]:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise self.unauthorized("Access token is empty.", request)
        token = auth[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise self.unauthorized("Invalid JWT token.", request) from exc
        tenant = str(unverified.get("tid", ""))
        with self._lock:
            self._calls[(tenant, self.scope_of(request))] += 1
        if header.get("kid") != self.idp.kid or header.get("alg") != "RS256":
            raise self.unauthorized("Invalid JWT token. The token is not signed by a known key.", request)
        key = self.idp._signing_key.public_key()
        try:
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], options={"verify_aud": False},
                                                leeway=0)
        except jwt.ExpiredSignatureError as exc:
            raise self.unauthorized("Access token has expired or is not yet valid.", request) from exc
        except jwt.PyJWTError as exc:
            raise self.unauthorized("Invalid JWT token. Signature verification failed.", request) from exc
        if claims.get("iss") != f"https://sts.windows.net/{tenant}/" or not tenant:
            raise self.unauthorized("Invalid JWT token. The issuer is not the token's tenant.", request)
        if not self.audience_ok(claims.get("aud"), request):
            raise self.unauthorized("Invalid audience.", request)
        uti = str(claims.get("uti", ""))
        with self._lock:
            if uti in self._expired_utis:
                raise self.unauthorized("Access token has expired or is not yet valid.", request)
            self._seen_utis.add(uti)
        return claims

    def take_fault(self, tenant: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times <= 0:
                    continue
                if fault.tenant not in (None, tenant) or (fault.path_contains and fault.path_contains not in path):
                    continue
                fault.times -= 1
                return fault
        return None

    def start(self) -> Self:
        self._server = LoopbackServer(self.name, self.host, self.port, _handler_for(self),
                                      tls=(self.idp.tls.server_cert, self.idp.tls.server_key))
        self.port = self._server.port
        return self


def _handler_for(service: LoopbackService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"devhost-{service.name}"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", service.name, format % args)

        def _send(self, status: int, body: dict[str, Any] | None, headers: dict[str, str]) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", str(secrets.token_hex(8)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            request = Request("GET", parts.path, [p for p in parts.path.split("/") if p],
                              {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                              cast(Mapping[str, str], self.headers), self.path)  # case-insensitive
            body: dict[str, Any] | None
            try:
                claims = service.verify(request)
                fault = service.take_fault(str(claims["tid"]), self.path)
                if fault is not None:
                    headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                    raise ApiError(fault.status, service.error_body(fault.status, fault.code, fault.message), headers)
                status, body, headers = service.handle(request, claims)
            except ApiError as exc:
                status, body, headers = exc.status, exc.body, exc.headers
            except Exception:  # a bug in the stand-in: say so like a server would
                log.exception("%s failed", service.name)
                status, body, headers = 500, service.error_body(500, "InternalServerError", "stand-in error"), {}
            self._send(status, body, headers)

        def _refuse(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._send(405, service.error_body(405, "Request_BadRequest", "read-only stand-in"), {"Allow": "GET"})

        def do_POST(self) -> None:
            self._refuse()

        def do_PATCH(self) -> None:
            self._refuse()

        def do_DELETE(self) -> None:
            self._refuse()

    return Handler


__all__ = ["ApiError", "Cursors", "Fault", "LoopbackService", "Request"]
