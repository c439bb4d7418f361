"""The local identity provider: a loopback stand-in for the Microsoft identity platform (dev and tests only).

It speaks the parts of the real protocol the app uses, over HTTPS with a CA of its own:
- OpenID metadata per tenant (`/{tenant}/v2.0/.well-known/openid-configuration`) and the JWKS, whose keys
  carry Entra's templated `issuer` (`…/{tenantid}/v2.0`);
- the token endpoint (`/{tenant}/oauth2/v2.0/token`) for the client-credentials grant: app-only tokens
  whose `roles` are the Graph permissions granted to our app in that tenant, or AADSTS700016 when the
  app was never consented there;
- the admin-consent page (`/{tenant}/v2.0/adminconsent`), with Accept and Cancel, redirecting like
  Microsoft's does. Accepting records the grant;
- sign-in for the admin portal (a single-page app, MSAL.js), the authorization code flow with PKCE as Entra
  runs it for a "SPA" redirect URI: `/{tenant}/oauth2/v2.0/authorize` shows a small page to pick a test user,
  a tenant and app roles, and redirects with a single-use code (10 minutes); the token endpoint redeems it
  (`authorization_code`: PKCE S256 checked, only from a cross-origin request of a registered SPA origin, as
  Entra requires) for an access token for our API, an id_token (with the request's nonce), a refresh token
  (`refresh_token` grant, rotated) and `client_info`; `/{tenant}/oauth2/v2.0/logout` sends the browser back to
  a registered address. There is no sign-in session (no cookie): `prompt=none` answers `login_required`.
  Metadata, keys and the token endpoint answer CORS requests from the SPA's origins. The pages' CSP leaves
  forms free to go on through redirects (a form-action would block the consent answer's way back).
User access tokens for our API can also be minted directly (`python -m devhost token`), signed with the same key.
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
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from devhost.pki import TlsFiles, ensure_signing_key, ensure_tls
from devhost.serving import LoopbackServer, ServedOnLoopback
from shared.tenancy import GUID_PATTERN

log = logging.getLogger("devhost.idp")

GRAPH_RESOURCE = "https://graph.microsoft.com"
DEFAULT_GRAPH_PERMISSIONS = ("Mail.ReadBasic.All", "Calendars.ReadBasic.All", "User.Read.All",
                             "GroupMember.Read.All")
# The app roles our API registration defines (SPEC 6), offered on the sign-in page.
APP_ROLES = ("SystemAdministrator", "SystemCustomizer", "Salesperson", "SalesManager", "VicePresidentOfSales",
             "SalesProfessionalManager")
API_SCOPE = "access_as_user"  # the delegated scope our API exposes (`{App ID URI}/access_as_user`)
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
DEFAULT_TENANT = "00000000-0000-0000-0000-000000000001"
CODE_LIFETIME_SECONDS = 600
REFRESH_LIFETIME_SECONDS = 24 * 3600  # Entra's lifetime for refresh tokens issued to a SPA
_MULTI_TENANT = ("organizations", "common")
_CORS_PATHS = ("/.well-known/openid-configuration", "/discovery/v2.0/keys", "/oauth2/v2.0/token")
_GUID = re.compile(rf"^{GUID_PATTERN}$")


@dataclass(frozen=True)
class RegisteredApp:
    """Our application's registration, as the identity provider knows it."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]  # the "Web" platform: where admin consent may return
    graph_permissions: tuple[str, ...] = DEFAULT_GRAPH_PERMISSIONS
    spa_redirect_uris: tuple[str, ...] = ()  # the "Single-page application" platform: the portal's sign-in

    @property
    def spa_origins(self) -> frozenset[str]:
        return frozenset(_origin(uri) for uri in self.spa_redirect_uris)


@dataclass(frozen=True)
class SampleUser:
    """A person one can sign in as on the local sign-in page."""

    object_id: str
    name: str
    username: str
    roles: tuple[str, ...]


SAMPLE_USERS = (
    SampleUser("00000000-0000-0000-0000-000000000002", "Avery Admin", "avery@contoso.test", ("SystemAdministrator",)),
    SampleUser("00000000-0000-0000-0000-000000000003", "Sam Seller", "sam@contoso.test", ("Salesperson",)),
    SampleUser("00000000-0000-0000-0000-000000000004", "Morgan Manager", "morgan@contoso.test",
             ("SalesManager", "SystemCustomizer")),
    SampleUser("00000000-0000-0000-0000-000000000005", "Vic President", "vic@contoso.test", ("VicePresidentOfSales",)),
)


@dataclass
class _SignIn:
    """What a code or a refresh token stands for."""

    client_id: str
    tenant: str
    user: SampleUser
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    expires: float
    redirect_uri: str = ""
    code_challenge: str = ""
    nonce: str | None = None
    redeemed: bool = False


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


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
class IdentityProvider(ServedOnLoopback):
    state_dir: Path
    app: RegisteredApp
    api_audience: str
    host: str = "127.0.0.1"
    port: int = 7072
    token_lifetime_seconds: int = 3600
    _server: LoopbackServer | None = field(default=None, init=False, repr=False)
    _faults: list[_Fault] = field(default_factory=list, init=False, repr=False)
    _faults_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _sign_ins: dict[str, _SignIn] = field(default_factory=dict, init=False, repr=False)  # codes, refresh tokens
    _sign_ins_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

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
                   lifetime_seconds: int | None = None, audience: str | None = None,
                   authorized_party: str = "devhost-portal") -> str:
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
            "scp": API_SCOPE,
            "azp": authorized_party,
            "ver": "2.0",
        }
        if name:
            claims["name"] = name
        return self.sign(claims)

    def id_token(self, sign_in: _SignIn) -> str:
        now = int(time.time())
        user = sign_in.user
        claims: dict[str, Any] = {
            "aud": sign_in.client_id, "iss": self.issuer(sign_in.tenant), "iat": now, "nbf": now,
            "exp": now + self.token_lifetime_seconds, "tid": sign_in.tenant, "oid": user.object_id,
            "sub": hashlib.sha256(f"{sign_in.tenant}:{user.object_id}:{sign_in.client_id}".encode()).hexdigest()[:43],
            "name": user.name, "preferred_username": user.username, "login_hint": _b64url(user.username.encode()),
            "roles": list(sign_in.roles), "ver": "2.0", "uti": _b64url(secrets.token_bytes(16)),
        }
        if sign_in.nonce is not None:
            claims["nonce"] = sign_in.nonce
        return self.sign(claims)

    def _remember(self, sign_in: _SignIn) -> str:
        handle = _b64url(secrets.token_bytes(32))
        with self._sign_ins_lock:
            now = time.time()
            for key in [k for k, v in self._sign_ins.items() if v.expires < now]:
                del self._sign_ins[key]
            self._sign_ins[handle] = sign_in
        return handle

    def _recall(self, handle: str) -> _SignIn | None:
        with self._sign_ins_lock:
            return self._sign_ins.get(handle)

    def _forget(self, handle: str) -> _SignIn | None:
        with self._sign_ins_lock:
            return self._sign_ins.pop(handle, None)

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
        self._server = LoopbackServer("idp", self.host, self.port, _make_handler(self),
                                      tls=(self.tls.server_cert, self.tls.server_key))
        self.port = self._server.port
        return self


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
        for name, value in {**self._cors(), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _cors(self) -> dict[str, str]:
        """Metadata, keys and the token endpoint answer the portal's cross-origin requests (MSAL.js uses fetch)."""
        origin = (self.headers.get("Origin") or "").lower()
        path = urlsplit(self.path).path
        if origin not in self.provider.app.spa_origins or not path.endswith(_CORS_PATHS):
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

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
        self._raw_form: dict[str, list[str]] = {}
        if length > 64 * 1024:
            return {}
        text = raw.decode("utf-8", "replace")
        self._raw_form = parse_qs(text, keep_blank_values=True)
        return {k: v[-1] for k, v in self._raw_form.items()}

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
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment"],
                "response_types_supported": ["code", "id_token", "token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
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
        elif len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "authorize"]:
            self._authorize_page(segments[0], query)
        elif len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "logout"]:
            self._logout(query)
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
        elif len(segments) == 4 and segments[1:] == ["oauth2", "v2.0", "authorize"]:
            self._authorize_answer(segments[0], query, self._form())
        else:
            self._json(404, {"error": "not_found"})

    def do_OPTIONS(self) -> None:
        """CORS preflight of the endpoints the portal's scripts call."""
        cors = self._cors()
        if cors:
            cors["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            requested = self.headers.get("Access-Control-Request-Headers")
            if requested:
                cors["Access-Control-Allow-Headers"] = requested
            cors["Access-Control-Max-Age"] = "600"
        self.send_response(204)
        for name, value in cors.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- token endpoint -------------------------------------------------------------------------------

    def _token(self, tenant: str, form: dict[str, str]) -> None:
        p = self.provider
        if not (_GUID.match(tenant) or tenant in _MULTI_TENANT):
            self._oauth_error(400, "invalid_request", "AADSTS90002: Tenant not found.")
            return
        grant = form.get("grant_type")
        if grant in ("authorization_code", "refresh_token"):
            self._user_tokens(tenant, grant, form)
            return
        if grant != "client_credentials":
            self._oauth_error(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant "
                              "type.")
            return
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            with contextlib.suppress(ValueError):
                client_id, secret = base64.b64decode(auth[6:]).decode().split(":", 1)
        if client_id != p.app.client_id or secret != p.app.client_secret:
            self._oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
            return
        if not _GUID.match(tenant):
            self._oauth_error(400, "invalid_request", "AADSTS90002: use a tenant id for client credentials.")
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
        # No form-action: browsers apply it to every redirect after a form post, and the consent answer goes on
        # from our callback to wherever the app sends the admin (Entra's pages do not restrict it either).
        page = (f"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width'>"
                f"<title>{html.escape(title)}</title><body style='font-family:sans-serif;max-width:40em;margin:2em "
                f"auto;line-height:1.5'><main>{body}</main></body></html>")
        self._send(status, page.encode(), "text/html; charset=utf-8",
                   {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"})

    # -- sign-in of the portal (authorization code + PKCE, SPA) ---------------------------------------------

    def _authorize_problem(self, tenant: str, query: dict[str, str]) -> str | None:
        """Problems shown on an error page: never a redirect to an address the app did not register."""
        app = self.provider.app
        if not (_GUID.match(tenant) or tenant in _MULTI_TENANT):
            return "AADSTS90002: Tenant not found. Use a tenant id, 'organizations' or 'common'."
        if query.get("client_id") != app.client_id:
            return f"AADSTS700016: Application with identifier '{query.get('client_id', '')}' was not found."
        if query.get("redirect_uri") not in app.spa_redirect_uris:
            return ("AADSTS50011: The redirect URI specified in the request does not match the redirect URIs "
                    "configured for the application (single-page application platform).")
        return None

    def _authorize_error(self, query: dict[str, str]) -> tuple[str, str] | None:
        """Problems answered to the redirect URI, as OAuth errors."""
        if query.get("response_type") != "code":
            return "unsupported_response_type", "AADSTS700054: response_type 'code' is the only one enabled here."
        if query.get("response_mode", "query") not in ("query", "fragment"):
            return "invalid_request", "AADSTS900144: response_mode must be query or fragment."
        if not query.get("code_challenge") or query.get("code_challenge_method") != "S256":
            return "invalid_request", ("AADSTS9002325: Proof Key for Code Exchange (S256) is required for "
                                       "cross-origin authorization code redemption.")
        if self._scopes(query.get("scope", "")) is None:
            return "invalid_scope", ("AADSTS70011: The provided request must include a 'scope' input parameter "
                                     "with valid scopes: openid, profile, offline_access and "
                                     f"{self.provider.api_audience}/{API_SCOPE}.")
        if query.get("prompt") == "none":
            return "login_required", "AADSTS50058: A silent sign-in request was sent but no user is signed in."
        return None

    def _scopes(self, text: str) -> tuple[str, ...] | None:
        scopes = tuple(dict.fromkeys(text.split()))
        api = {f"{self.provider.api_audience}/{API_SCOPE}", f"{self.provider.api_audience}/.default"}
        if not scopes or any(s not in OIDC_SCOPES and s not in api for s in scopes):
            return None
        return scopes

    def _redirect_to_app(self, query: dict[str, str], params: dict[str, str]) -> None:
        if "state" in query:
            params["state"] = query["state"]
        separator = "#" if query.get("response_mode") == "fragment" else ("&" if "?" in query["redirect_uri"] else "?")
        self._send(302, b"", "text/plain", {"Location": f"{query['redirect_uri']}{separator}{urlencode(params)}"})

    def _authorize_page(self, tenant: str, query: dict[str, str], problem: str = "") -> None:
        refused = self._authorize_problem(tenant, query)
        if refused:
            self._html(400, "Sign in error", f"<h1>Sign in error</h1><p>{html.escape(refused)}</p>")
            return
        error = self._authorize_error(query)
        if error:
            self._redirect_to_app(query, {"error": error[0], "error_description": error[1]})
            return
        tenant_value = tenant if _GUID.match(tenant) else DEFAULT_TENANT
        users = "".join(
            f'<p><label><input type="radio" name="user" value="{u.object_id}"{" checked" if i == 0 else ""}> '
            f'{html.escape(u.name)} ({html.escape(u.username)}; usually {", ".join(u.roles)})</label></p>'
            for i, u in enumerate(SAMPLE_USERS))
        roles = "".join(f'<label style="display:block"><input type="checkbox" name="role" value="{r}"> {r}</label>'
                        for r in APP_ROLES)
        alert = f'<p role="alert" style="color:#a00"><strong>{html.escape(problem)}</strong></p>' if problem else ""
        tenant_field = ("" if _GUID.match(tenant) else
                        '<p><label for="tenant">Tenant id (directory)</label><br><input id="tenant" name="tenant" '
                        f'size="40" required value="{tenant_value}" autocomplete="off"></p>')
        body = (f"<h1>Sign in (local identity provider)</h1>{alert}"
                "<p>Development only: pick who you are. Nothing is checked but what you choose.</p>"
                f'<form method="post">{tenant_field}'
                f"<fieldset><legend>User</legend>{users}</fieldset>"
                "<fieldset><legend>App roles (none checked: the user's usual roles)</legend>"
                f"{roles}</fieldset><p>"
                '<button name="answer" value="sign-in" id="sign-in">Sign in</button> '
                '<button name="answer" value="cancel" id="cancel" formnovalidate>Cancel</button></p></form>')
        self._html(400 if problem else 200, "Sign in", body)

    def _authorize_answer(self, tenant: str, query: dict[str, str], form: dict[str, str]) -> None:
        refused = self._authorize_problem(tenant, query)
        if refused:
            self._html(400, "Sign in error", f"<h1>Sign in error</h1><p>{html.escape(refused)}</p>")
            return
        error = self._authorize_error(query)
        if error:
            self._redirect_to_app(query, {"error": error[0], "error_description": error[1]})
            return
        if form.get("answer") != "sign-in":
            self._redirect_to_app(query, {"error": "access_denied", "error_subcode": "cancel",
                                          "error_description": "AADSTS50058: The user cancelled the sign-in."})
            return
        chosen = (tenant if _GUID.match(tenant) else form.get("tenant", "")).strip().lower()
        user = next((u for u in SAMPLE_USERS if u.object_id == form.get("user")), None)
        if not _GUID.match(chosen) or user is None:
            self._authorize_page(tenant, query, "Choose a user and give the tenant as a GUID.")
            return
        roles = tuple(r for r in APP_ROLES if r in self._checked_roles()) or user.roles
        p = self.provider
        code = p._remember(_SignIn(
            client_id=query["client_id"], tenant=chosen, user=user, roles=roles,
            scopes=self._scopes(query.get("scope", "")) or (), expires=time.time() + CODE_LIFETIME_SECONDS,
            redirect_uri=query["redirect_uri"], code_challenge=query["code_challenge"], nonce=query.get("nonce")))
        self._redirect_to_app(query, {"code": code, "client_info": self._client_info(chosen, user),
                                      "session_state": str(uuid.uuid4())})

    def _checked_roles(self) -> list[str]:
        # parse_qs in _form keeps the last value per name; checkboxes repeat theirs, so the raw body is kept.
        return self._raw_form.get("role", [])

    @staticmethod
    def _client_info(tenant: str, user: SampleUser) -> str:
        return _b64url(json.dumps({"uid": user.object_id, "utid": tenant}).encode())

    def _user_tokens(self, tenant: str, grant: str, form: dict[str, str]) -> None:
        p = self.provider
        origin = (self.headers.get("Origin") or "").lower()
        if form.get("client_id") != p.app.client_id:
            self._oauth_error(400, "unauthorized_client", "AADSTS700016: Application not found in the directory.")
            return
        if origin not in p.app.spa_origins:
            self._oauth_error(400, "invalid_request", "AADSTS9002327: Tokens issued for the 'Single-Page "
                              "Application' client-type may only be redeemed via cross-origin requests.")
            return
        if grant == "authorization_code":
            sign_in = p._forget(form.get("code", ""))
            if sign_in is None or sign_in.expires < time.time():
                self._oauth_error(400, "invalid_grant", "AADSTS70008: The provided authorization code or refresh "
                                  "token has expired, was already redeemed or was never issued.")
                return
            verifier = form.get("code_verifier", "")
            if form.get("redirect_uri") != sign_in.redirect_uri:
                self._oauth_error(400, "invalid_grant", "AADSTS50148: The redirect_uri is not the one the "
                                  "authorization code was issued for.")
                return
            if not verifier or _b64url(hashlib.sha256(verifier.encode()).digest()) != sign_in.code_challenge:
                self._oauth_error(400, "invalid_grant", "AADSTS501481: The Code_Verifier does not match the "
                                  "code_challenge supplied in the authorization request.")
                return
        else:
            sign_in = p._forget(form.get("refresh_token", ""))
            if sign_in is None or sign_in.expires < time.time() or sign_in.client_id != form.get("client_id"):
                self._oauth_error(400, "invalid_grant", "AADSTS70000: The refresh token is invalid or expired.")
                return
            requested = self._scopes(form.get("scope", ""))
            if requested is not None:
                sign_in.scopes = tuple(dict.fromkeys((*sign_in.scopes, *requested)))
        if _GUID.match(tenant) and tenant != sign_in.tenant:
            self._oauth_error(400, "invalid_grant", "AADSTS50020: The user's tenant is not the one in the address.")
            return
        self._issue(sign_in)

    def _issue(self, sign_in: _SignIn) -> None:
        p = self.provider
        api_scope = f"{p.api_audience}/{API_SCOPE}"
        wants_api = any(s.startswith(p.api_audience) for s in sign_in.scopes)
        granted = [api_scope] if wants_api else ["openid", "profile", "User.Read"]
        access = (p.user_token(sign_in.tenant, sign_in.user.object_id, sign_in.roles, name=sign_in.user.name,
                               authorized_party=sign_in.client_id) if wants_api else
                  p.user_token(sign_in.tenant, sign_in.user.object_id, (), name=sign_in.user.name,
                               audience="00000003-0000-0000-c000-000000000000", authorized_party=sign_in.client_id))
        body: dict[str, Any] = {
            "token_type": "Bearer", "scope": " ".join(granted), "expires_in": p.token_lifetime_seconds,
            "ext_expires_in": p.token_lifetime_seconds, "access_token": access,
            "client_info": self._client_info(sign_in.tenant, sign_in.user),
        }
        if "openid" in sign_in.scopes:
            body["id_token"] = p.id_token(sign_in)
        if "offline_access" in sign_in.scopes:
            body["refresh_token"] = p._remember(_SignIn(
                client_id=sign_in.client_id, tenant=sign_in.tenant, user=sign_in.user, roles=sign_in.roles,
                scopes=sign_in.scopes, expires=time.time() + REFRESH_LIFETIME_SECONDS))
            body["refresh_token_expires_in"] = REFRESH_LIFETIME_SECONDS
        self._json(200, body)

    def _logout(self, query: dict[str, str]) -> None:
        """Entra's end-session endpoint: back to a registered address, or a page saying it is done."""
        target = query.get("post_logout_redirect_uri", "")
        if target and _origin(target) in self.provider.app.spa_origins:
            params = {"state": query["state"]} if "state" in query else {}
            separator = "&" if "?" in target else "?"
            self._send(302, b"", "text/plain",
                       {"Location": f"{target}{separator}{urlencode(params)}" if params else target})
            return
        self._html(200, "Signed out", "<h1>You signed out of your account</h1><p>You can close this window.</p>")


__all__ = ["APP_ROLES", "SAMPLE_USERS", "GrantStore", "IdentityProvider", "RegisteredApp", "SampleUser"]
