"""The Microsoft 365 admin-consent round trip (SPEC 2.5): the link, the callback, the proof of grant, and the
periodic re-check that notices a withdrawal."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlencode

from shared.clock import Clock
from shared.domain.audit import SYSTEM_ACTOR
from shared.domain.consent import GRAPH_DEFAULT_SCOPE, STATE_LIFETIME, ConsentRequest, new_state, parse_state
from shared.errors import ConcurrencyConflict, Conflict
from shared.services.ports import ConsentRequests, ConsentVerifier, GrantCheck
from shared.services.tenant_settings import TenantSettingsService
from shared.tenancy import TenantId

log = logging.getLogger(__name__)

MAX_PARAMETER_LENGTH = 2048
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")
CallbackOutcome = Literal["granted", "declined", "invalid"]


@dataclass(frozen=True)
class ConsentLink:
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class CallbackResult:
    outcome: CallbackOutcome
    reason: str  # a code for logs and the page, never the identity provider's raw text
    tenant_id: TenantId | None = None


@dataclass(frozen=True)
class ConsentConfig:
    authority_host: str
    client_id: str
    redirect_uri: str
    proof_attempts: int = 3
    proof_backoff_seconds: float = 1.0


class ConsentService:
    def __init__(self, settings: TenantSettingsService, requests: ConsentRequests, verifier: ConsentVerifier,
                 clock: Clock, config: ConsentConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._settings = settings
        self._requests = requests
        self._verifier = verifier
        self._clock = clock
        self._config = config
        self._sleep = sleep

    # -- the link ---------------------------------------------------------------------------------------

    def request_link(self, tenant_id: TenantId, admin: str) -> ConsentLink:
        settings = self._settings.current(tenant_id).settings
        if not settings.enabled:
            raise Conflict("relationship intelligence is not enabled: enable it before asking for consent")
        if not settings.exchange_eligible:
            raise Conflict("Exchange data cannot be used in this Office 365 data location: no consent is needed")
        if not settings.exchange.integration_enabled:
            raise Conflict("Exchange integration is off: no consent is needed")
        if settings.consent_granted:
            raise Conflict("the Microsoft 365 admin's consent is already in place")
        now = self._clock.now()
        state, secret_hash = new_state(tenant_id)
        expires = now + STATE_LIFETIME
        request = ConsentRequest(tenant_id=tenant_id, requested_by=admin, created_at=now, expires_at=expires)
        self._requests.create(tenant_id, secret_hash, request)
        query = urlencode({"client_id": self._config.client_id, "redirect_uri": self._config.redirect_uri,
                           "scope": GRAPH_DEFAULT_SCOPE, "state": state})
        return ConsentLink(f"{self._config.authority_host}/{tenant_id}/v2.0/adminconsent?{query}", expires)

    # -- the callback -----------------------------------------------------------------------------------

    def complete(self, params: Mapping[str, str]) -> CallbackResult:
        for name, value in params.items():
            if len(name) > 64 or len(value) > MAX_PARAMETER_LENGTH or not _PRINTABLE_ASCII.match(value):
                return CallbackResult("invalid", "malformedParameters")
        parsed = parse_state(params.get("state", ""))
        if parsed is None:
            return CallbackResult("invalid", "malformedState")
        stored = self._requests.get(parsed.tenant_id, parsed.secret_hash)
        if stored is None:
            return CallbackResult("invalid", "unknownState")
        now = self._clock.now()
        request = stored.document
        if request.used_at is not None:
            return CallbackResult("invalid", "stateAlreadyUsed", parsed.tenant_id)
        if not request.usable(now):
            return CallbackResult("invalid", "stateExpired", parsed.tenant_id)
        tenant = parsed.tenant_id
        result = self._decide(tenant, request, params)
        try:
            self._requests.consume(tenant, parsed.secret_hash,
                                   request.model_copy(update={"used_at": now, "outcome": result.outcome}), stored.etag)
        except ConcurrencyConflict:
            return CallbackResult("invalid", "stateAlreadyUsed", tenant)
        self._record(tenant, request.requested_by, result)
        return result

    def _decide(self, tenant: TenantId, request: ConsentRequest, params: Mapping[str, str]) -> CallbackResult:
        returned_tenant = params.get("tenant")
        if returned_tenant is not None and returned_tenant.strip().lower() != tenant:
            return CallbackResult("invalid", "tenantMismatch", tenant)
        if "error" in params:
            code = params["error"].strip().lower()
            return CallbackResult("declined", code if _ERROR_CODE.match(code) else "error", tenant)
        if params.get("admin_consent", "").strip().lower() != "true":
            return CallbackResult("invalid", "noConsentAnswer", tenant)
        check = self._prove(tenant)
        if check.granted:
            return CallbackResult("granted", ",".join(check.roles), tenant)
        reason = check.outcome if check.definitive else "tokenError"
        return CallbackResult("declined", reason, tenant)

    def _prove(self, tenant: TenantId) -> GrantCheck:
        check = self._verifier.check(tenant)
        # Right after consent the service principal may take a moment to appear: retry a few times.
        for attempt in range(1, self._config.proof_attempts):
            if check.granted or check.outcome == "missingPermissions" or check.outcome == "tokenError":
                break
            self._sleep(self._config.proof_backoff_seconds * attempt)
            check = self._verifier.check(tenant)
        return check

    def _record(self, tenant: TenantId, admin: str, result: CallbackResult) -> None:
        if result.outcome == "granted":
            scopes = tuple(result.reason.split(",")) if result.reason else ()
            self._settings.change(tenant, admin, "consentGranted",
                                  lambda s, now: s.record_consent_granted(admin, scopes, now))
        elif result.outcome == "declined":
            self._settings.change(tenant, admin, "consentDeclined",
                                  lambda s, now: s.record_consent_declined(result.reason, now))

    # -- withdrawal -------------------------------------------------------------------------------------

    def recheck(self, tenant: TenantId) -> GrantCheck | None:
        """Repeats the proof for a tenant whose consent is granted; a definitive "no" marks it withdrawn.
        A passing failure changes nothing (the next run tries again). None: nothing to check."""
        if not self._settings.current(tenant).settings.consent_granted:
            return None
        check = self._verifier.check(tenant)
        if check.definitive:
            log.warning("consent withdrawn: %s", check.outcome)
            self._settings.change(tenant, SYSTEM_ACTOR, "consentWithdrawn",
                                  lambda s, now: s.record_consent_withdrawn(now))
        elif not check.granted:
            log.warning("consent re-check inconclusive (%s); retried next run", check.error_code)
        return check
