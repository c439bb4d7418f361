"""The admin's actions on a tenant's settings, with optimistic concurrency and an audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.clock import Clock
from shared.domain.audit import AuditEvent, diff
from shared.domain.security_roles import STANDARD_SALES_ROLES, SecurityRole
from shared.domain.tenant_settings import TenantSettings
from shared.errors import ConcurrencyConflict, Conflict, PreconditionFailed, Unprocessable
from shared.tenancy import TenantId

MAX_ATTEMPTS = 3

Rule = Callable[[TenantSettings, datetime], TenantSettings]


@dataclass(frozen=True)
class Current:
    settings: TenantSettings
    etag: str | None  # None: nothing stored yet for this tenant


@dataclass(frozen=True)
class Outcome:
    settings: TenantSettings
    etag: str | None
    changed: bool
    event: AuditEvent | None


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    continuation: str | None


class SettingsRepository(Protocol):
    def load(self, tenant_id: TenantId) -> Current: ...

    def save(self, tenant_id: TenantId, settings: TenantSettings, etag: str | None, event: AuditEvent) -> str:
        """Writes the settings (conditional on `etag`) and the event atomically; ConcurrencyConflict if stale."""
        ...

    def audit(self, tenant_id: TenantId, page_size: int, continuation: str | None) -> AuditPage: ...

    def role_catalogue(self, tenant_id: TenantId) -> Sequence[SecurityRole] | None: ...


class SettingsService:
    def __init__(self, repository: SettingsRepository, clock: Clock) -> None:
        self._repository = repository
        self._clock = clock

    def current(self, tenant_id: TenantId) -> Current:
        return self._repository.load(tenant_id)

    def change(self, tenant_id: TenantId, actor: str, action: str, rule: Rule, *, if_match: str | None = None,
               ) -> Outcome:
        """Read, apply the rule, write with the ETag read. With If-Match the client's version must still be the
        stored one (412 otherwise); without it a concurrent change makes us re-read and re-decide."""
        for _ in range(MAX_ATTEMPTS):
            current = self._repository.load(tenant_id)
            if if_match is not None and if_match != "*" and if_match != current.etag:
                raise PreconditionFailed("the settings changed since you read them (If-Match is stale); reload and "
                                         "try again")
            now = self._clock.now()
            after = rule(current.settings, now)
            changes = diff(current.settings, after)
            if not changes:
                return Outcome(current.settings, current.etag, changed=False, event=None)
            event = AuditEvent(id=uuid.uuid4().hex, at=now, actor=actor, action=action, changes=changes)
            try:
                etag = self._repository.save(tenant_id, after, current.etag, event)
            except ConcurrencyConflict:
                if if_match is not None:
                    raise PreconditionFailed("the settings changed while your change was applied; reload and "
                                             "try again") from None
                continue
            return Outcome(after, etag, changed=True, event=event)
        raise Conflict("the settings are being changed by someone else right now; try again")

    def synced_role_catalogue(self, tenant_id: TenantId) -> Sequence[SecurityRole] | None:
        return self._repository.role_catalogue(tenant_id)

    def role_catalogue(self, tenant_id: TenantId) -> Sequence[SecurityRole]:
        """The tenant's synced catalogue, or the standard Sales catalogue when none was synced."""
        return self._repository.role_catalogue(tenant_id) or STANDARD_SALES_ROLES

    def known_role_ids(self, tenant_id: TenantId, role_ids: Sequence[str]) -> tuple[str, ...]:
        """The ids, deduplicated in order, if all exist in the tenant's catalogue; 422 naming the others."""
        catalogue = {role.id.lower() for role in self.role_catalogue(tenant_id)}
        wanted = tuple(dict.fromkeys(r.lower() for r in role_ids))
        unknown = [r for r in wanted if r not in catalogue]
        if unknown:
            raise Unprocessable(
                f"unknown security role ids: {', '.join(unknown)}",
                errors=[{"field": f"securityRoleIds/{[r.lower() for r in role_ids].index(u)}",
                         "reason": "not in the tenant's security-role catalogue"} for u in unknown])
        return wanted

    def audit(self, tenant_id: TenantId, page_size: int, continuation: str | None) -> AuditPage:
        return self._repository.audit(tenant_id, page_size, continuation)
