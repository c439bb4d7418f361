"""CORS the way the Functions host applies it, for the dev host (so that the portal, on another origin, can call
the API locally exactly as it will in Azure).

Configuration: `Host.CORS` (comma-separated origins, `*` for any) and `Host.CORSCredentials` in
local.settings.json, as Core Tools reads them; in Azure the same policy is the site's `siteConfig.cors`
(`allowedOrigins`, `supportCredentials`). No `Host.CORS`: no CORS at all (an OPTIONS request reaches the routes,
and responses carry no Access-Control-* header), as with Core Tools.

The host's semantics (ASP.NET Core's CORS middleware with any method and any header allowed):
- A preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) is answered by the host, never by a
  function: 204, and, when the origin is allowed, `Access-Control-Allow-Origin`, the requested method as
  `Access-Control-Allow-Methods`, the requested headers as `Access-Control-Allow-Headers` (and
  `Access-Control-Allow-Credentials: true` with credentials). An origin not allowed gets the 204 without them.
- Any other request with an allowed `Origin` gets `Access-Control-Allow-Origin` (and `-Credentials`) on its
  response, whatever the function answered. No `Access-Control-Expose-Headers`: scripts read only the
  CORS-safelisted response headers (not `ETag`: the API repeats it in the body).
- `*` answers `Access-Control-Allow-Origin: *`; `*` with credentials is refused (the CORS protocol forbids it).
  Origins are compared after lower-casing the configured ones, otherwise exactly: `http://localhost:4280/`
  (trailing slash) matches nothing, as on Azure. `Vary: Origin` goes with answers that depend on the origin
  when more than one is configured.
"""

from __future__ import annotations

import functools
import json
import logging
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devhost.functionhost import FunctionHost
    from devhost.http_server import Response

log = logging.getLogger("devhost.cors")

Headers = list[tuple[str, str]]
Dispatch = Callable[["FunctionHost", str, str, Iterable[tuple[str, str]], bytes], "Response"]

_CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-credentials",
                 "access-control-allow-methods", "access-control-allow-headers")


@dataclass(frozen=True)
class CorsPolicy:
    origins: frozenset[str]  # lower-cased; empty with any_origin
    any_origin: bool = False
    credentials: bool = False

    @classmethod
    def parse(cls, origins: str, credentials: bool = False) -> CorsPolicy:
        listed = [o.strip() for o in origins.split(",") if o.strip()]
        if not listed:
            raise ValueError("Host.CORS lists no origin")
        any_origin = "*" in listed
        if any_origin and credentials:
            raise ValueError("Host.CORS '*' cannot go with Host.CORSCredentials: the CORS protocol does not allow a "
                             "wildcard origin with credentials")
        for origin in listed:
            if origin != "*" and origin.endswith("/"):
                log.warning("Host.CORS origin %r ends with '/': browsers send origins without one, so it matches "
                            "nothing", origin)
        return cls(frozenset() if any_origin else frozenset(o.lower() for o in listed), any_origin, credentials)

    def allowed_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for a request from `origin`, or None."""
        if not origin:
            return None
        if self.any_origin:
            return "*"
        return origin if origin in self.origins else None

    def _common(self, origin: str) -> Headers:
        headers = [("Access-Control-Allow-Origin", origin)]
        if self.credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        if len(self.origins) > 1:
            headers.append(("Vary", "Origin"))
        return headers

    def preflight(self, method: str, headers: Iterable[tuple[str, str]]) -> Headers | None:
        """The headers of the host's 204 answer when this request is a preflight; None when it is not one."""
        joined = {name.lower(): value for name, value in headers}
        if method.upper() != "OPTIONS" or "origin" not in joined or "access-control-request-method" not in joined:
            return None
        origin = self.allowed_origin(joined["origin"])
        if origin is None:
            return []
        answer = self._common(origin)
        answer.append(("Access-Control-Allow-Methods", joined["access-control-request-method"].strip()))
        requested = joined.get("access-control-request-headers", "").strip()
        if requested:
            answer.append(("Access-Control-Allow-Headers", requested))
        return answer

    def response_headers(self, headers: Iterable[tuple[str, str]]) -> Headers:
        """What an actual (not preflight) response gets for this request's Origin."""
        origin = self.allowed_origin(next((v for n, v in headers if n.lower() == "origin"), None))
        return [] if origin is None else self._common(origin)


def from_host_section(host: dict[str, object]) -> CorsPolicy | None:
    origins = host.get("CORS")
    if not isinstance(origins, str) or not origins.strip():
        return None
    credentials = host.get("CORSCredentials", False)
    if isinstance(credentials, str):
        credentials = credentials.strip().lower() == "true"
    return CorsPolicy.parse(origins, bool(credentials))


def from_local_settings(path: Path, sample: Path | None = None) -> CorsPolicy | None:
    """The policy of local.settings.json's `Host` section; a file without `Host.CORS` takes the sample's (as
    Values do), so that an older local.settings.json still lets the portal in."""
    section: dict[str, object] = {}
    for source in (sample, path):
        if source is not None and source.exists():
            host = json.loads(source.read_text()).get("Host") or {}
            if isinstance(host, dict) and host.get("CORS"):
                section = {**section, **host}
    return from_host_section(section)


# -- the hook into the dev host -------------------------------------------------------------------------------

_policies: weakref.WeakKeyDictionary[FunctionHost, CorsPolicy] = weakref.WeakKeyDictionary()


def enable(host: FunctionHost, policy: CorsPolicy | None) -> None:
    """Applies `policy` to the requests `host` serves from now on (None: no CORS)."""
    if policy is None:
        _policies.pop(host, None)
    else:
        _policies[host] = policy


def applies(dispatch: Dispatch) -> Dispatch:
    """Decorates FunctionHost.dispatch: preflights are answered before routing, responses get the headers."""

    @functools.wraps(dispatch)
    def wrapper(host: FunctionHost, method: str, target: str, headers: Iterable[tuple[str, str]],
                body: bytes) -> Response:
        policy = _policies.get(host)
        if policy is None:
            return dispatch(host, method, target, headers, body)
        from devhost.http_server import Response

        headers = list(headers)
        preflight = policy.preflight(method, headers)
        if preflight is not None:
            return Response(204, preflight)
        response = dispatch(host, method, target, headers, body)
        extra = policy.response_headers(headers)
        if not extra:
            return response
        kept = [(n, v) for n, v in response.headers if n.lower() not in _CORS_HEADERS]
        return Response(response.status, [*kept, *extra], response.body)

    return wrapper


__all__ = ["CorsPolicy", "applies", "enable", "from_host_section", "from_local_settings"]
