"""The data gates of SPEC 3: whether an activity may be used, checked at ingestion and again at read time."""

from __future__ import annotations

import hashlib

from shared.domain.records import Activity, InternalUser, Source
from shared.domain.tenant_settings import TenantSettings


def closed_gate(settings: TenantSettings, activity: Activity, owner: InternalUser | None) -> str | None:
    """The first gate that is closed for this activity, as a reason code; None when every gate is open."""
    if not settings.enabled:
        return "relationshipIntelligenceNotEnabled"
    if activity.source is Source.CRM:
        return None
    return mailbox_gate(settings, owner)


def mailbox_gate(settings: TenantSettings, owner: InternalUser | None) -> str | None:
    """The first gate of SPEC 3 that is closed for the mailbox of this owner (None: its Exchange data may be
    fetched and used). A closed gate stops the fetching itself, not only the use."""
    if not settings.enabled:
        return "relationshipIntelligenceNotEnabled"
    if not settings.exchange_eligible:
        return "dataLocationNotEligible"
    if not settings.exchange.integration_enabled:
        return "exchangeIntegrationOff"
    if not settings.consent_granted:
        return "consentNotGranted"
    if owner is None or not owner.active:
        return "mailboxOwnerUnknown"
    selected = {r.lower() for r in settings.exchange.security_role_ids}
    if not selected.intersection(r.lower() for r in owner.security_role_ids):
        return "mailboxOwnerNotInSelectedRole"
    excluded = {g.lower() for g in settings.exchange.excluded_security_group_ids}
    if excluded.intersection(g.lower() for g in owner.group_ids):
        return "mailboxOwnerInExcludedGroup"
    if owner.opted_out:
        return "mailboxOwnerOptedOut"
    return None


def gate_fingerprint(settings: TenantSettings) -> str:
    """What the tenant-level gates were: Exchange usable, selected roles, excluded groups."""
    parts = [str(settings.exchange_data_usable), *sorted(r.lower() for r in settings.exchange.security_role_ids),
             "|", *sorted(g.lower() for g in settings.exchange.excluded_security_group_ids)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
