"""The admin's actions on a tenant's settings (SPEC 2), with optimistic concurrency and an audit trail.

Every action reads the settings, applies a rule of the domain aggregate, and writes the result with the ETag it
read, together with its audit event. Changes that need background work (a consent deadline, a purge, a
recompute) add their index rows around the write.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.clock import Clock
from shared.domain.audit import AuditEvent, diff
from shared.domain.gates import gate_fingerprint
from shared.domain.introductions import IntroducerChoice
from shared.domain.security_roles import STANDARD_SALES_ROLES, SecurityRole
from shared.domain.tenant_settings import ActivityInfluence, CommunicationFrequency, EmailTemplate, TenantSettings
from shared.errors import (
    ConcurrencyConflict,
    Conflict,
    PreconditionFailed,
    ServiceUnavailable,
    Unprocessable,
    ValidationFailed,
)
from shared.services.ports import AuditPage, Current, IndexKind, ScheduleIndex, SettingsRepository
from shared.services.timing import RECHECK_INTERVAL, WRITE_SETTLE
from shared.tenancy import TenantId

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
CONTENDED_RETRY_AFTER_SECONDS = 2

Rule = Callable[[TenantSettings, datetime], TenantSettings]


@dataclass(frozen=True)
class Outcome:
    settings: TenantSettings
    etag: str | None
    changed: bool
    event: AuditEvent | None


@dataclass(frozen=True)
class RoleCatalogue:
    roles: Sequence[SecurityRole]
    source: Literal["tenant", "standard"]  # the tenant's synced catalogue, or the standard Sales one


@dataclass(frozen=True)
class AnalyticsChanges:
    """Options of relationship analytics to change; None keeps the current value."""

    enabled: bool | None = None
    health_display: bool | None = None
    activity_influence: ActivityInfluence | None = None
    communication_frequency: CommunicationFrequency | None = None
    good_min: int | None = None
    fair_min: int | None = None


def _crm_inputs(settings: TenantSettings) -> tuple[object, ...]:
    """What the CRM rounds depend on: a change here asks for a round now (a new URL: from the start; consent:
    our app's service principal now exists in the tenant, so a round that failed for want of it can run)."""
    return settings.enabled, settings.crm.environment_url, settings.crm.changed_at, settings.consent_granted


def _mailbox_inputs(settings: TenantSettings) -> tuple[object, ...]:
    """What decides whose mailboxes are read: a change here asks for a plan now (gates that close: their delta
    state is dropped, and no Graph call is made any more)."""
    return (settings.exchange_data_usable, tuple(sorted(r.lower() for r in settings.exchange.security_role_ids)),
            tuple(sorted(g.lower() for g in settings.exchange.excluded_security_group_ids)))


def _insight_inputs(settings: TenantSettings) -> tuple[object, ...]:
    """What the computed insights depend on: a change here schedules a recompute."""
    return (settings.status, gate_fingerprint(settings), settings.relationship_analytics)


class TenantSettingsService:
    def __init__(self, repository: SettingsRepository, clock: Clock, index: ScheduleIndex | None = None, *,
                 allow_loopback_sources: bool = False) -> None:
        self._repository = repository
        self._clock = clock
        self._index = index
        self._allow_loopback = allow_loopback_sources  # development only: the local Dataverse on loopback

    def current(self, tenant_id: TenantId) -> Current:
        return self._repository.load(tenant_id)

    # -- the admin's actions ----------------------------------------------------------------------------

    def set_prerequisites(self, tenant_id: TenantId, actor: str, premium: bool, location: str, *,
                          if_match: str | None = None) -> Outcome:
        return self.change(tenant_id, actor, "setPrerequisites",
                           lambda s, now: s.set_prerequisites(premium, location, now), if_match=if_match)

    def enable(self, tenant_id: TenantId, actor: str, *, security_role_ids: Sequence[str] | None = None,
               exchange_integration: bool | None = None, if_match: str | None = None) -> Outcome:
        roles = None if security_role_ids is None else self.known_role_ids(tenant_id, security_role_ids)
        return self.change(tenant_id, actor, "enable", lambda s, now: s.enable(
            actor, now, security_role_ids=roles, exchange_integration=exchange_integration), if_match=if_match)

    def disable(self, tenant_id: TenantId, actor: str, *, if_match: str | None = None) -> Outcome:
        return self.change(tenant_id, actor, "disable", lambda s, now: s.disable(now), if_match=if_match)

    def select_security_roles(self, tenant_id: TenantId, actor: str, role_ids: Sequence[str], *,
                              if_match: str | None = None) -> Outcome:
        roles = self.known_role_ids(tenant_id, role_ids)
        return self.change(tenant_id, actor, "selectSecurityRoles", lambda s, _: s.select_security_roles(roles),
                           if_match=if_match)

    def set_exchange_integration(self, tenant_id: TenantId, actor: str, enabled: bool, *,
                                 if_match: str | None = None) -> Outcome:
        return self.change(tenant_id, actor, "setExchangeIntegration",
                           lambda s, now: s.set_exchange_integration(enabled, now), if_match=if_match)

    def set_excluded_security_groups(self, tenant_id: TenantId, actor: str, group_ids: Sequence[str], *,
                                     if_match: str | None = None) -> Outcome:
        groups = tuple(group_ids)
        return self.change(tenant_id, actor, "setExcludedSecurityGroups",
                           lambda s, _: s.set_excluded_security_groups(groups), if_match=if_match)

    def set_crm_environment(self, tenant_id: TenantId, actor: str, url: str | None, *,
                            if_match: str | None = None) -> Outcome:
        return self.change(tenant_id, actor, "setCrmEnvironment", lambda s, now: s.set_crm_environment(
            url, now, allow_loopback=self._allow_loopback), if_match=if_match)

    def update_relationship_analytics(self, tenant_id: TenantId, actor: str, changes: AnalyticsChanges, *,
                                      if_match: str | None = None) -> Outcome:
        return self.change(tenant_id, actor, "setRelationshipAnalytics", lambda s, _: s.update_relationship_analytics(
            enabled=changes.enabled, health_display=changes.health_display,
            activity_influence=changes.activity_influence, communication_frequency=changes.communication_frequency,
            good_min=changes.good_min, fair_min=changes.fair_min), if_match=if_match)

    def update_who_knows_whom(self, tenant_id: TenantId, actor: str, *, enabled: bool | None = None,
                              template: EmailTemplate | None = None, introducer_default: IntroducerChoice | None = None,
                              if_match: str | None = None) -> Outcome:
        return self.change(tenant_id, actor, "setWhoKnowsWhom", lambda s, _: s.update_who_knows_whom(
            enabled=enabled, introduction_email_template=template, introducer_default=introducer_default),
            if_match=if_match)

    # -- reads ------------------------------------------------------------------------------------------

    def role_catalogue(self, tenant_id: TenantId) -> RoleCatalogue:
        synced = self._repository.role_catalogue(tenant_id)
        return RoleCatalogue(synced, "tenant") if synced else RoleCatalogue(STANDARD_SALES_ROLES, "standard")

    def known_role_ids(self, tenant_id: TenantId, role_ids: Sequence[str]) -> tuple[str, ...]:
        """The ids, deduplicated in order, if all exist in the tenant's catalogue; 422 naming the others."""
        catalogue = {role.id.lower() for role in self.role_catalogue(tenant_id).roles}
        asked = [r.lower() for r in role_ids]
        wanted = tuple(dict.fromkeys(asked))
        unknown = [r for r in wanted if r not in catalogue]
        if unknown:
            raise Unprocessable(
                f"unknown security role ids: {', '.join(unknown)}",
                errors=[{"field": f"securityRoleIds/{asked.index(u)}",
                         "reason": "not in the tenant's security-role catalogue"} for u in unknown])
        return wanted

    def audit(self, tenant_id: TenantId, page_size: int, continuation: str | None) -> AuditPage:
        try:
            return self._repository.audit(tenant_id, page_size, continuation)
        except ValueError as exc:
            raise ValidationFailed("the continuation token is not one this API issued",
                                   errors=[{"field": "continuationToken", "reason": "malformed"}]) from exc

    # -- the one write path -----------------------------------------------------------------------------

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
        raise Conflict("the settings are being changed by someone else right now; try again",
                       headers={"Retry-After": str(CONTENDED_RETRY_AFTER_SECONDS)})

    # The index lives outside the tenant's partition, so it cannot join the settings' transaction. Order keeps it
    # safe: a row the new state needs is written before the state; a row the old state needed is deleted after
    # it. A crash in between leaves an extra row, which the background work finds stale and deletes.

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
        if _crm_inputs(before) != _crm_inputs(after) and after.enabled and after.crm.environment_url:
            self._index.add(IndexKind.CRM_ROUND, tenant_id, now)
        if _mailbox_inputs(before) != _mailbox_inputs(after):
            self._index.add(IndexKind.MAILBOX_PLAN, tenant_id, now)

    def _index_after_save(self, tenant_id: TenantId, before: TenantSettings, after: TenantSettings) -> None:
        old = before.consent_deadline
        if self._index is None or old is None or old == after.consent_deadline:
            return
        try:
            self._index.remove(IndexKind.CONSENT_DEADLINE, tenant_id, old)
        except ServiceUnavailable:
            log.warning("a closed consent window stays in the index until the background work cleans it")
