"""The admin portal's static files, served locally (dev and tests) and packaged for Azure Static Web Apps.

The portal (`portal/`) is plain ES modules; it reads `/config.json` at start, so the same files sign in against
the local identity provider or Entra ID with only that document changed. The server here:
- serves `portal/` (index.html at `/`), `/config.json` built from the settings, and MSAL.js's browser build from
  node_modules at `/vendor/msal-browser.min.js` (never a CDN);
- sends the headers the deployed site sends (`staticwebapp.config.json` gets the same ones): a strict CSP whose
  `connect-src` names only the API and the authority, nosniff, no framing by other origins;
- answers GET and HEAD only, on 127.0.0.1:4280 by default (the port Azure Static Web Apps tools use).
`build_site` writes the deployable folder: the same files, the vendor script, config.json and
staticwebapp.config.json (`python -m devhost portal-dist`).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from devhost.serving import LoopbackServer, ServedOnLoopback

log = logging.getLogger("devhost.portal")

ROOT = Path(__file__).resolve().parent.parent
PORTAL_DIR = ROOT / "portal"
DEFAULT_PORT = 4280
VENDOR = {
    "msal-browser.min.js": ROOT / "node_modules" / "@azure" / "msal-browser" / "lib" / "msal-browser.min.js",
}
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".json": "application/json; charset=utf-8", ".png": "image/png",
          ".svg": "image/svg+xml"}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class PortalConfig:
    """What the portal reads from /config.json. `msal` is MSAL.js's own Configuration (auth and system), so that
    a non-Microsoft authority's settings (`knownAuthorities`, `protocolMode`) are configuration, not code."""

    api_base_url: str  # e.g. http://127.0.0.1:7071/api
    client_id: str
    authority: str  # e.g. https://login.microsoftonline.com/organizations
    api_scopes: tuple[str, ...]  # e.g. ("api://<client id>/access_as_user",)
    known_authorities: tuple[str, ...] = ()  # host[:port] of a non-Microsoft authority
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def local(cls, api_base_url: str, client_id: str, authority_host: str, api_audience: str) -> PortalConfig:
        """For the local identity provider: MSAL must be told that this host is an authority it may trust."""
        return cls(api_base_url=api_base_url.rstrip("/"), client_id=client_id,
                   authority=f"{authority_host.rstrip('/')}/organizations",
                   api_scopes=(f"{api_audience}/access_as_user",),
                   known_authorities=(urlsplit(authority_host).netloc,))

    def document(self) -> dict[str, Any]:
        auth: dict[str, Any] = {"clientId": self.client_id, "authority": self.authority}
        if self.known_authorities:
            auth["knownAuthorities"] = list(self.known_authorities)
        return {"apiBaseUrl": self.api_base_url, "apiScopes": list(self.api_scopes),
                "msal": {"auth": auth, "cache": {"cacheLocation": "sessionStorage"}}, **self.extra}

    def headers(self) -> dict[str, str]:
        """The security headers of every response (the deployed site's as well)."""
        api, authority = _origin(self.api_base_url), _origin(self.authority)
        csp = (f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               f"connect-src 'self' {api} {authority}; frame-src {authority}; form-action 'self'; "
               "base-uri 'none'; object-src 'none'; frame-ancestors 'self'")
        return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "strict-origin-when-cross-origin", "X-Frame-Options": "SAMEORIGIN"}


class PortalServer(ServedOnLoopback):
    def __init__(self, config: PortalConfig, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 root: Path = PORTAL_DIR) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.root = root.resolve()
        self._server: LoopbackServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> PortalServer:
        missing = [str(path) for path in VENDOR.values() if not path.exists()]
        if missing:
            raise FileNotFoundError(f"run `npm ci` first: {', '.join(missing)} is missing")
        self._server = LoopbackServer("portal", self.host, self.port, _make_handler(self))
        self.port = self._server.port
        return self

    def resolve(self, path: str) -> tuple[bytes, str] | None:
        """The body and content type for a request path, or None (404)."""
        if path == "/config.json":
            return json.dumps(self.config.document(), indent=2).encode(), _TYPES[".json"]
        if path.startswith("/vendor/"):
            source = VENDOR.get(path.removeprefix("/vendor/"))
            return None if source is None else (source.read_bytes(), _TYPES[".js"])
        relative = "index.html" if path in ("", "/") else path.lstrip("/")
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root) or not candidate.is_file() or candidate.suffix not in _TYPES:
            return None
        return candidate.read_bytes(), _TYPES[candidate.suffix]


def _make_handler(portal: PortalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        site = portal

    return Handler


class _Handler(BaseHTTPRequestHandler):
    site: PortalServer
    server_version = "devhost-portal"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("portal %s", format % args)

    def _answer(self, include_body: bool) -> None:
        found = self.site.resolve(unquote(urlsplit(self.path).path))
        status, (body, content_type) = (200, found) if found else (404, (b"Not found", "text/plain; charset=utf-8"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        for name, value in self.site.config.headers().items():
            self.send_header(name, value)
        self.end_headers()
        if include_body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)


def build_site(out: Path, config: PortalConfig, root: Path = PORTAL_DIR) -> list[Path]:
    """Writes the deployable portal (for Azure Static Web Apps) to `out`; returns the files written."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(root, out, ignore=shutil.ignore_patterns("*.md", ".*"))
    (out / "vendor").mkdir()
    for name, source in VENDOR.items():
        shutil.copyfile(source, out / "vendor" / name)
    (out / "config.json").write_text(json.dumps(config.document(), indent=2) + "\n")
    static_web_app = {
        "globalHeaders": config.headers(),
        "routes": [{"route": "/config.json", "headers": {"Cache-Control": "no-cache"}}],
        "mimeTypes": {".js": "text/javascript", ".json": "application/json"},
    }
    (out / "staticwebapp.config.json").write_text(json.dumps(static_web_app, indent=2) + "\n")
    return sorted(p for p in out.rglob("*") if p.is_file())


__all__ = ["DEFAULT_PORT", "PortalConfig", "PortalServer", "build_site"]
