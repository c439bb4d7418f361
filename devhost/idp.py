"""The local identity provider: a loopback stand-in for the Microsoft identity platform (dev and tests only).

It speaks the parts of the real protocol the app uses, over HTTPS with a CA of its own:
- OpenID metadata per tenant (`/{tenant}/v2.0/.well-known/openid-configuration`) and the JWKS, whose keys
  carry Entra's templated `issuer` (`…/{tenantid}/v2.0`);
- the token endpoint (`/{tenant}/oauth2/v2.0/token`) for the client-credentials grant: app-only tokens
  whose `roles` are the Graph permissions granted to our app in that tenant, or AADSTS700016 when the
  app was never consented there;
- the admin-consent page (`/{tenant}/v2.0/adminconsent`), with Accept and Cancel, redirecting like
  Microsoft's does. Accepting records the grant.
User access tokens for our API are minted directly (`python -m devhost token`), signed with the same key.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import html
import json
import logging
import os
import re
import ssl
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from devhost.pki import TlsFiles, ensure_signing_key, ensure_tls
from shared.tenancy import GUID_PATTERN

log = logging.getLogger("devhost.idp")

GRAPH_RESOURCE = "https://graph.microsoft.com"
DEFAULT_GRAPH_PERMISSIONS = ("Mail.ReadBasic.All", "Calendars.ReadBasic.All", "User.Read.All",
                             "GroupMember.Read.All")
_GUID = re.compile(rf"^{GUID_PATTERN}$")


@dataclass(frozen=True)
class RegisteredApp:
    """Our application's registration, as the identity provider knows it."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    graph_permissions: tuple[str, ...] = DEFAULT_GRAPH_PERMISSIONS


class GrantStore:
    """Admin-consent grants per tenant, in a JSON file shared by the server and the CLI (file-locked)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, list[str]]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self.path.read_text()) if self.path.exists() else {}
                before = json.dumps(data, sort_keys=True)
                yield data
                if json.dumps(data, sort_keys=True) != before:
                    tmp = self.path.with_suffix(".tmp")
                    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
                    os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def roles(self, tenant: str, client_id: str) -> list[str] | None:
        with self._locked() as data:
            granted = data.get(tenant, {}).get(client_id)
            return None if granted is None else list(granted)

    def grant(self, tenant: str, client_id: str, roles: Sequence[str]) -> None:
        with self._locked() as data:
            data.setdefault(tenant, {})[client_id] = sorted(set(roles))

    def revoke(self, tenant: str, client_id: str | None = None) -> bool:
        with self._locked() as data:
            apps = data.get(tenant)
            if not apps:
                return False
            if client_id is None:
                del data[tenant]
                return True
            removed = apps.pop(client_id, None) is not None
            if not apps:
                del data[tenant]
            return removed


@dataclass
class _Fault:
    path_contains: str
    status: int
    remaining: int


@dataclass
class IdentityProvider:
    state_dir: Path
    app: RegisteredApp
    api_audience: str
    host: str = "127.0.0.1"
    port: int = 7072
    token_lifetime_seconds: int = 3600
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _faults: list[_Fault] = field(default_factory=list, init=False, repr=False)
    _faults_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.tls: TlsFiles = ensure_tls(self.state_dir / "tls")
        self._signing_key: rsa.RSAPrivateKey = ensure_signing_key(self.state_dir / "signing-key.pem")
        self.grants = GrantStore(self.state_dir / "grants.json")
        public_der = self._signing_key.public_key().public_numbers()
        self.kid = hashlib.sha256(str(public_der.n).encode()).hexdigest()[:32]

    # -- addresses ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def issuer(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}/v2.0"

    # -- tokens ---------------------------------------------------------------------------------------

    def jwks(self, tenant_segment: str = "common") -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._signing_key.public_key()))
        issuer_tenant = tenant_segment if _GUID.match(tenant_segment) else "{tenantid}"
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256", "issuer": self.issuer(issuer_tenant)})
        return {"keys": [jwk]}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode(claims, self._signing_key, algorithm="RS256", headers={"kid": kid or self.kid})

    def user_token(self, tenant: str, user: str, roles: Sequence[str], *, name: str | None = None,
                   lifetime_seconds: int | None = None, audience: str | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience or self.api_audience,
            "iss": self.issuer(tenant),
            "iat": now,
            "nbf": now,
            "exp": now + (lifetime_seconds or self.token_lifetime_seconds),
            "tid": tenant,
            "oid": user,
            "sub": hashlib.sha256(f"{tenant}:{user}".encode()).hexdigest()[:43],
            "roles": list(roles),
            "scp": "access_as_user",
            "azp": "devhost-portal",
            "ver": "2.0",
        }
        if name:
            claims["name"] = name
        return self.sign(claims)

    def app_token(self, tenant: str, client_id: str, roles: Sequence[str], *, audience: str | None = None) -> str:
        """An app-only token (no `scp`), e.g. for a data connector calling our API."""
        now = int(time.time())
        return self.sign({
            "aud": audience or self.api_audience, "iss": self.issuer(tenant), "iat": now, "nbf": now,
            "exp": now + self.token_lifetime_seconds, "tid": tenant, "oid": str(uuid.uuid5(uuid.NAMESPACE_URL,
            f"{tenant}/{client_id}")), "roles": list(roles), "azp": client_id, "idtyp": "app", "ver": "2.0",
        })

    # -- fault injection (tests: "the identity provider answers 503") ---------------------------------

    def fail_next(self, path_contains: str, status: int = 503, times: int = 1) -> None:
        with self._faults_lock:
            self._faults.append(_Fault(path_contains, status, times))

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> int | None:
        with self._faults_lock:
            for fault in self._faults:
                if fault.path_contains in path and fault.remaining > 0:
                    fault.remaining -= 1
                    return fault.status
        return None

    # -- server ---------------------------------------------------------------------------------------

    def start(self) -> IdentityProvider:
        server = ThreadingHTTPServer((self.host, self.port), _make_handler(self))
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls.server_cert, self.tls.server_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="devhost-idp", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> IdentityProvider:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _make_handler(idp: IdentityProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(_IdpHandler):
        provider = idp

    return Handler


class _IdpHandler(BaseHTTPRequestHandler):
    provider: IdentityProvider
    server_version = "devhost-idp"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("idp %s", format % args)

    # -- plumbing -------------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8")

    def _oauth_error(self, status: int, error: str, description: str) -> None:
        self._json(status, {"error": error, "error_description": description,
                            "error_codes": [int(m) for m in re.findall(r"AADSTS(\d+)", description)],
                            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
                            "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())})

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if length > 64 * 1024:
            return {}
        text = raw.decode("utf-8", "replace")
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def _route(self) -> tuple[list[str], dict[str, str]]:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        return [p for p in parts.path.split("/") if p], query

    def _fault(self) -> bool:
        status = self.provider._take_fault(self.path)
        if status is None:
            return False
        self.rfile.read(int(self.headers.get("Content-Length") or 0))  # keep the connection usable
        self._send(status, b'{"error":"temporarily_unavailable"}', "application/json")
        return True

    # -- verbs ----------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self._fault():
            return
        segments, query = self._route()
        p = self.provider
        if len(segments) == 4 and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            tenant = segments[0]
            issuer_tenant = tenant if _GUID.match(tenant) else "{tenantid}"
            base = f"{p.base_url}/{tenant}"
            self._json(200, {
                "issuer": p.issuer(issuer_tenant),
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                          "client_secret_basic"],
                "tenant_region_scope": "EU",
            })
        elif len(segments) == 4 and segments[1:] == ["discovery", "v2.0", "keys"]:
            self._json(200, p.jwks(segments[0]))
        elif len(segments) == 3 and segments[1:] == ["v2.0", "adminconsent"]:
            self._consent_page(segments[0], query)
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        if self._fault():
            return
        segments, query = self._route()
        if len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "token"]:
            self._token(segments[0], self._form())
        elif len(segments) == 3 and segments[1:] == ["v2.0", "adminconsent"]:
            self._consent_answer(segments[0], query, self._form())
        else:
            self._json(404, {"error": "not_found"})

    # -- token endpoint -------------------------------------------------------------------------------

    def _token(self, tenant: str, form: dict[str, str]) -> None:
        p = self.provider
        if not _GUID.match(tenant):
            self._oauth_error(400, "invalid_request", "AADSTS90002: Tenant not found.")
            return
        if form.get("grant_type") != "client_credentials":
            self._oauth_error(400, "unsupported_grant_type", "AADSTS70003: only client_credentials here.")
            return
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            with contextlib.suppress(ValueError):
                client_id, secret = base64.b64decode(auth[6:]).decode().split(":", 1)
        if client_id != p.app.client_id or secret != p.app.client_secret:
            self._oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
            return
        scopes = form.get("scope", "").split()
        resource = scopes[0].removesuffix("/.default") if len(scopes) == 1 and scopes[0].endswith("/.default") else ""
        if not resource:
            self._oauth_error(400, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid.")
            return
        # Besides Graph, a Dataverse environment: Dynamics' organisation hosts, or the local stand-in on loopback.
        dataverse = re.compile(r"^https://([a-z0-9][a-z0-9-]{0,62}\.crm\d{0,2}\.dynamics\.com"
                               r"|(127\.0\.0\.1|localhost):\d{1,5}/[a-z0-9][a-z0-9-]{0,62})$")
        if resource != GRAPH_RESOURCE and not dataverse.match(resource):
            self._oauth_error(400, "invalid_resource", f"AADSTS500011: The resource principal named {resource} was "
                              f"not found in the tenant named {tenant}.")
            return
        roles = p.grants.roles(tenant, client_id)
        if roles is None:
            self._oauth_error(400, "unauthorized_client",
                              f"AADSTS700016: Application with identifier '{client_id}' was not found in the "
                              f"directory '{tenant}'. This can happen if the application has not been installed "
                              "by the administrator of the tenant or consented to by any user in the tenant.")
            return
        now = int(time.time())
        claims: dict[str, Any] = {"aud": resource, "iss": f"https://sts.windows.net/{tenant}/", "iat": now,
                                  "nbf": now, "exp": now + 3599, "tid": tenant, "appid": client_id,
                                  "idtyp": "app", "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{client_id}")),
                                  "uti": uuid.uuid4().hex}  # Entra's unique token id: two tokens never look alike
        if roles and resource == GRAPH_RESOURCE:  # a Dataverse application user's rights live in Dataverse
            claims["roles"] = roles  # like Entra: no roles claim at all when nothing is assigned
        self._json(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                         "access_token": p.sign(claims)})

    # -- admin consent --------------------------------------------------------------------------------

    def _consent_problem(self, query: dict[str, str], tenant: str) -> str | None:
        p = self.provider
        if not (_GUID.match(tenant) or tenant == "organizations"):
            return "AADSTS90002: Tenant not found. Use a tenant id or 'organizations'."
        if query.get("client_id") != p.app.client_id:
            return "AADSTS700016: Application not found."
        if query.get("redirect_uri") not in p.app.redirect_uris:
            return ("AADSTS50011: The redirect URI specified in the request does not match the redirect URIs "
                    "configured for the application.")
        return None

    def _consent_page(self, tenant: str, query: dict[str, str]) -> None:
        problem = self._consent_problem(query, tenant)
        if problem:  # like Entra: an error page, never a redirect to an unregistered address
            self._html(400, "Sign in error", f"<p>{html.escape(problem)}</p>")
            return
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in query.items() if k in ("client_id", "redirect_uri", "scope", "state"))
        tenant_field = ("" if _GUID.match(tenant) else
                        '<p><label>Tenant id <input name="consenting_tenant" required></label></p>')
        permissions = "".join(f"<li>{html.escape(r)}</li>" for r in self.provider.app.graph_permissions)
        body = (
            f"<h1>Permissions requested</h1><p>Relationship intelligence (<code>{html.escape(query['client_id'])}"
            f"</code>) asks for these Microsoft Graph application permissions for your organisation:</p>"
            f"<ul>{permissions}</ul>"
            f'<form method="post">{hidden}{tenant_field}'
            '<button name="answer" value="accept" id="accept">Accept</button> '
            '<button name="answer" value="cancel" id="cancel">Cancel</button></form>'
        )
        self._html(200, "Permissions requested", body)

    def _consent_answer(self, tenant: str, query: dict[str, str], form: dict[str, str]) -> None:
        fields = {**query, **{k: v for k, v in form.items() if k in ("client_id", "redirect_uri", "scope", "state")}}
        problem = self._consent_problem(fields, tenant)
        if problem:
            self._html(400, "Sign in error", f"<p>{html.escape(problem)}</p>")
            return
        p = self.provider
        consenting = tenant if _GUID.match(tenant) else form.get("consenting_tenant", "").strip().lower()
        state = fields.get("state")
        if form.get("answer") == "accept" and _GUID.match(consenting):
            p.grants.grant(consenting, p.app.client_id, p.app.graph_permissions)
            params = {"admin_consent": "True", "tenant": consenting,
                      "scope": f"{GRAPH_RESOURCE}/.default"}
        else:
            # What Entra sends when the admin cancels: an error, admin_consent=True, and no tenant.
            params = {"error": "access_denied",
                      "error_description": "AADSTS65004: User declined to consent to access the app.",
                      "admin_consent": "True"}
        if state is not None:
            params["state"] = state
        target = f"{fields['redirect_uri']}?{urlencode(params)}"
        self._send(302, b"", "text/plain", {"Location": target})

    def _html(self, status: int, title: str, body: str) -> None:
        page = (f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
                f"<body style='font-family:sans-serif;max-width:40em;margin:2em auto'>{body}</body></html>")
        self._send(status, page.encode(), "text/html; charset=utf-8",
                   {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"})


__all__ = ["GrantStore", "IdentityProvider", "RegisteredApp"]
