"""Proof of grant: an app-only token for the tenant, obtained with MSAL (client credentials), whose `roles`
hold every Graph permission we need. Its absence is classified, because a withdrawal check must tell a
definitive "no" (service principal gone, permissions missing) from a passing failure (network, 5xx)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from shared.domain.consent import GRAPH_DEFAULT_SCOPE
from shared.services.ports import GrantCheck
from shared.tenancy import TenantId

log = logging.getLogger(__name__)


class MsalConsentVerifier:
    """Implements the ConsentVerifier port: one ConfidentialClientApplication per tenant authority, reused
    across invocations."""

    def __init__(self, *, authority_host: str, client_id: str, client_credential: Callable[[], Any],
                 required_roles: tuple[str, ...], http_client_factory: Callable[[], Any]) -> None:
        self._authority_host = authority_host.rstrip("/")
        self._client_id = client_id
        self._credential = client_credential
        self._required = required_roles
        self._http_client_factory = http_client_factory
        self._apps: dict[str, Any] = {}
        self._http_caches: dict[str, dict[Any, Any]] = {}
        self._lock = threading.Lock()

    def _app(self, tenant_id: str) -> tuple[Any, dict[Any, Any]]:
        with self._lock:
            app = self._apps.get(tenant_id)
            if app is None:
                import msal

                cache: dict[Any, Any] = {}
                app = msal.ConfidentialClientApplication(
                    self._client_id, client_credential=self._credential(),
                    authority=f"{self._authority_host}/{tenant_id}", http_client=self._http_client_factory(),
                    http_cache=cache,
                    # The authority is ours or Entra's, never discovered: no call to an instance-discovery host.
                    instance_discovery=False,
                )
                self._apps[tenant_id] = app
                self._http_caches[tenant_id] = cache
            return app, self._http_caches[tenant_id]

    def check(self, tenant_id: TenantId) -> GrantCheck:
        import jwt
        import requests
        from msal.exceptions import MsalServiceError

        try:
            app, http_cache = self._app(tenant_id)
            # A proof must be fresh: no access token cached before a revocation, and no HTTP 400 that MSAL
            # keeps for 60 s (it would repeat an answer given before the admin consented).
            for token in list(app.token_cache.search(app.token_cache.CredentialType.ACCESS_TOKEN)):
                app.token_cache.remove_at(token)
            http_cache.clear()
            result = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT_SCOPE])
        except (requests.RequestException, MsalServiceError, ValueError, OSError) as exc:
            # MSAL raises on 5xx and network trouble: a passing failure, never proof of anything.
            log.warning("consent check for the tenant failed in transit: %s", type(exc).__name__)
            return GrantCheck("transient", error_code=type(exc).__name__)
        if "access_token" not in result:
            return _classify_error(result)
        try:
            claims = jwt.decode(result["access_token"], options={"verify_signature": False})
        except jwt.PyJWTError:
            return GrantCheck("tokenError", error_code="unreadableToken")
        roles = claims.get("roles") or []
        granted = tuple(sorted(r for r in roles if isinstance(r, str)))
        missing = [r for r in self._required if r not in granted]
        if missing:
            return GrantCheck("missingPermissions", roles=granted, error_code="missing:" + ",".join(missing))
        return GrantCheck("granted", roles=granted)


def _classify_error(result: dict[str, Any]) -> GrantCheck:
    error = str(result.get("error", "unknown"))
    codes = [int(c) for c in result.get("error_codes") or [] if isinstance(c, int)]
    description = str(result.get("error_description", ""))
    code = f"AADSTS{codes[0]}" if codes else error
    if 700016 in codes or "AADSTS700016" in description:
        return GrantCheck("servicePrincipalMissing", error_code="AADSTS700016")
    if error in ("temporarily_unavailable", "server_error"):
        return GrantCheck("transient", error_code=code)
    if error in ("invalid_client", "unauthorized_client", "invalid_scope", "invalid_request"):
        return GrantCheck("tokenError", error_code=code)
    return GrantCheck("transient", error_code=code)
