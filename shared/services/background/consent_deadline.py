"""The 14-day rule (SPEC 2.5): at the deadline, who knows whom and Exchange integration turn off by themselves."""

from __future__ import annotations

from shared.domain.audit import SYSTEM_ACTOR
from shared.services.ports import IndexEntry, ScheduleIndex, WorkKind
from shared.services.tenant_settings import TenantSettingsService
from shared.tenancy import TenantId


class ConsentDeadlines:
    kind = WorkKind.CONSENT_DEADLINE

    def __init__(self, settings: TenantSettingsService, index: ScheduleIndex) -> None:
        self._settings = settings
        self._index = index

    def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str:
        outcome = self._settings.change(tenant_id, SYSTEM_ACTOR, "autoDisable", lambda s, now: s.auto_disable(now))
        if outcome.changed:
            return "autoDisabled"  # the change removed the closed window's row and asked for the purge
        deadline = outcome.settings.consent_deadline
        stale = [row for row in rows if row.due != deadline]
        for row in stale:  # a window that closed (consent came, Exchange went off) or moved
            self._index.remove(row.kind, row.tenant_id, row.due)
        return "stale" if stale else "notYetDue"
