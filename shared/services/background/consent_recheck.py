"""The daily re-check of a granted consent (SPEC 2.5, withdrawal): a definitive "no" marks it withdrawn, which
stops Exchange use and asks for the purge; a passing failure keeps the row due for the next run."""

from __future__ import annotations

from collections.abc import Callable

from shared.clock import Clock
from shared.services.background.steps import done
from shared.services.consent import ConsentService
from shared.services.ports import IndexEntry, IndexKind, ScheduleIndex, WorkKind
from shared.services.tenant_settings import TenantSettingsService
from shared.services.timing import RECHECK_INTERVAL
from shared.tenancy import TenantId


class ConsentRechecks:
    kind = WorkKind.CONSENT_RECHECK

    def __init__(self, settings: TenantSettingsService, index: ScheduleIndex, clock: Clock,
                 consent: Callable[[], ConsentService]) -> None:
        self._settings = settings
        self._index = index
        self._clock = clock
        self._consent = consent  # built on first use: it needs the app registration's settings

    def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str:
        if not self._settings.current(tenant_id).settings.consent_granted:
            done(self._index, rows)
            return "stale"
        check = self._consent().recheck(tenant_id)
        if check is None or check.definitive:
            done(self._index, rows)
            return "withdrawn" if check is not None else "stale"
        if not check.granted:
            return "recheckInconclusive"  # the rows stay due: the timer's next run tries again
        self._index.add(IndexKind.CONSENT_RECHECK, tenant_id, self._clock.now() + RECHECK_INTERVAL)
        done(self._index, rows)
        return "stillGranted"
