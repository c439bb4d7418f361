"""The admin's actions on a tenant's settings, with optimistic concurrency and an audit trail."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.clock import Clock
from shared.domain.audit import AuditEvent, diff
from shared.domain.gates import gate_fingerprint
from shared.domain.security_roles import STANDARD_SALES_ROLES, SecurityRole
from shared.domain.tenant_settings import TenantSettings
from shared.errors import ConcurrencyConflict, Conflict, PreconditionFailed, ServiceUnavailable, Unprocessable
from shared.services.schedules import RECHECK_INTERVAL, WRITE_SETTLE, IndexKind, ScheduleIndex
from shared.tenancy import TenantId

log = logging.getLogger(__name__)

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


def _insight_inputs(settings: TenantSettings) -> tuple[object, ...]:
    """What the computed insights depend on: a change here schedules a recompute."""
    return (settings.status, gate_fingerprint(settings), settings.relationship_analytics)


class SettingsService:
    def __init__(self, repository: SettingsRepository, clock: Clock, index: ScheduleIndex | None = None) -> None:
        self._repository = repository
        self._clock = clock
        self._index = index

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
            after = after.model_copy(update={"revision": current.settings.revision + 1})
            event = AuditEvent(id=uuid.uuid4().hex, sequence=after.revision, at=now, actor=actor, action=action,
                               changes=changes)
            self._index_before_save(tenant_id, current.settings, after, now)
            try:
                etag = self._repository.save(tenant_id, after, current.etag, event)
            except ConcurrencyConflict:
                if if_match is not None:
                    raise PreconditionFailed("the settings changed while your change was applied; reload and "
                                             "try again") from None
                continue
            self._index_after_save(tenant_id, current.settings, after)
            return Outcome(after, etag, changed=True, event=event)
        raise Conflict("the settings are being changed by someone else right now; try again")

    # The timer's index lives outside the tenant's partition, so it cannot join the settings' transaction.
    # Order keeps it safe: a row the new state needs is written before the state; a row the old state needed
    # is deleted after it. A crash in between leaves an extra row, which the timer finds stale and deletes.

    def _index_before_save(self, tenant_id: TenantId, before: TenantSettings, after: TenantSettings,
                           now: datetime) -> None:
        if self._index is None:
            return
        deadline = after.consent_deadline
        if deadline is not None and deadline != before.consent_deadline:
            self._index.add(IndexKind.CONSENT_DEADLINE, tenant_id, deadline)
        if after.consent_granted and not before.consent_granted:
            self._index.add(IndexKind.CONSENT_RECHECK, tenant_id, now + RECHECK_INTERVAL)
        purge = after.exchange.purge_requested_at
        if purge is not None and purge != before.exchange.purge_requested_at:
            self._index.add(IndexKind.EXCHANGE_PURGE, tenant_id, purge + WRITE_SETTLE)  # sync calls in flight
        if _insight_inputs(before) != _insight_inputs(after):
            self._index.add(IndexKind.INSIGHTS_RECOMPUTE, tenant_id, now)

    def _index_after_save(self, tenant_id: TenantId, before: TenantSettings, after: TenantSettings) -> None:
        old = before.consent_deadline
        if self._index is None or old is None or old == after.consent_deadline:
            return
        try:
            self._index.remove(IndexKind.CONSENT_DEADLINE, tenant_id, old)
        except ServiceUnavailable:
            log.warning("a closed consent window stays in the index until the timer cleans it")

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
