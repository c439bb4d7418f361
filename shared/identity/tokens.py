"""Validation of Entra ID (v2) access tokens for our API, multi-tenant.

Follows the access-token guidance of the Microsoft identity platform: RS256 signature with a key from the
issuer's JWKS (picked by `kid`, refreshed when an unknown `kid` shows up), `iss` exactly
`{authority}/{tid}/v2.0` for the token's own tenant, the signing key's `issuer` (templated `{tenantid}`)
matching it, `aud` one of ours, `exp`/`nbf` with a small leeway. The authority is configuration: Entra in
production, the dev host's identity provider locally.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.errors import ServiceUnavailable, Unauthorized
from shared.tenancy import TenantId, is_guid

log = logging.getLogger(__name__)

JsonGetter = Callable[[str], Mapping[str, Any]]

LEEWAY_SECONDS = 60
KEYS_MAX_AGE_SECONDS = 24 * 3600
UNKNOWN_KID_REFRESH_INTERVAL_SECONDS = 30


@dataclass(frozen=True)
class Principal:
    tenant_id: TenantId
    object_id: str
    roles: frozenset[str]
    is_app: bool
    display_name: str | None = None


class IdentityProviderUnavailable(ServiceUnavailable):
    slug = "identity-provider-unavailable"


class SigningKeys:
    """The issuer's signing keys, cached, refreshed daily and on an unknown `kid` (rate limited)."""

    def __init__(self, authority_host: str, get_json: JsonGetter, *, monotonic: Callable[[], float] = time.monotonic):
        self._metadata_url = f"{authority_host}/organizations/v2.0/.well-known/openid-configuration"
        self._get_json = get_json
        self._monotonic = monotonic
        self._keys: dict[str, Mapping[str, Any]] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> Mapping[str, Any] | None:
        now = self._monotonic()
        with self._lock:
            stale = self._fetched_at is None or now - self._fetched_at > KEYS_MAX_AGE_SECONDS
            may_refresh = self._fetched_at is None or now - self._fetched_at > UNKNOWN_KID_REFRESH_INTERVAL_SECONDS
            if stale or (kid not in self._keys and may_refresh):
                self._refresh(now)
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        try:
            metadata = self._get_json(self._metadata_url)
            jwks = self._get_json(str(metadata["jwks_uri"]))
            keys = {str(k["kid"]): k for k in jwks["keys"] if "kid" in k}
        except IdentityProviderUnavailable:
            if self._keys:
                log.warning("signing keys could not be refreshed; keeping the cached ones")
                return
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise IdentityProviderUnavailable("the identity provider's metadata is malformed") from exc
        self._keys = keys
        self._fetched_at = now


class AccessTokenValidator:
    def __init__(self, authority_host: str, audiences: tuple[str, ...], keys: SigningKeys, *,
                 leeway: int = LEEWAY_SECONDS) -> None:
        self._authority = authority_host.rstrip("/")
        self._audiences = list(audiences)
        self._keys = keys
        self._leeway = leeway

    def expected_issuer(self, tenant_id: str) -> str:
        return f"{self._authority}/{tenant_id}/v2.0"

    def validate(self, token: str) -> Principal:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized("the access token is malformed") from exc
        if header.get("alg") != "RS256":
            raise Unauthorized("the access token must be signed with RS256")
        tenant = str(unverified.get("tid", "")).lower()
        if not is_guid(tenant):
            raise Unauthorized("the access token has no valid tenant (tid)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the access token names no signing key (kid)")
        raw_key = self._keys.key(kid)
        if raw_key is None:
            raise Unauthorized("the access token is signed with an unknown key")
        issuer = self.expected_issuer(tenant)
        key_issuer = raw_key.get("issuer")
        if key_issuer is not None and str(key_issuer).replace("{tenantid}", tenant) != issuer:
            raise Unauthorized("the signing key does not belong to the token's issuer")
        try:
            key = jwt.PyJWK(dict(raw_key), algorithm="RS256")
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=self._audiences,
                issuer=issuer,
                leeway=self._leeway,
                options={"require": ["exp", "nbf", "iss", "aud", "tid", "oid"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the access token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthorized("the access token is not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized("the access token is not meant for this API") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthorized("the access token's issuer is not the token's tenant") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("the access token is invalid") from exc
        object_id = str(claims.get("oid", "")).lower()
        if not is_guid(object_id):
            raise Unauthorized("the access token has no valid caller (oid)")
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthorized("the access token's roles claim is malformed")
        return Principal(
            tenant_id=TenantId(tenant),
            object_id=object_id,
            roles=frozenset(roles),
            is_app="scp" not in claims,
            display_name=claims.get("name") if isinstance(claims.get("name"), str) else None,
        )


def https_session(ca_bundle: str | None) -> Any:
    """A requests session that trusts `ca_bundle` (dev only) and ignores the machine's proxy/CA variables:
    REQUESTS_CA_BUNDLE in the environment would otherwise override `verify`."""
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = ca_bundle or True
    return session


def https_json_getter(ca_bundle: str | None, timeout: float = 5.0) -> JsonGetter:
    """GETs JSON over HTTPS from the identity provider."""
    import requests

    session = https_session(ca_bundle)

    def get(url: str) -> Mapping[str, Any]:
        if not url.startswith("https://"):
            raise IdentityProviderUnavailable("the identity provider must be reached over https")
        try:
            response = session.get(url, timeout=timeout)
        except requests.RequestException as exc:
            raise IdentityProviderUnavailable("the identity provider is unreachable") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise IdentityProviderUnavailable("the identity provider is failing")
        if response.status_code != 200:
            raise IdentityProviderUnavailable(f"the identity provider answered {response.status_code}")
        data = response.json()
        if not isinstance(data, dict):
            raise IdentityProviderUnavailable("the identity provider's answer is not a JSON object")
        return data

    return get
