"""The purge of Exchange-derived data once its use has ended (SPEC 2.4: within 24 hours), in bounded steps that
keep their position on the index row and continue in a new message."""

from __future__ import annotations

from shared.clock import Clock
from shared.domain.audit import SYSTEM_ACTOR
from shared.services.background.steps import SECONDS_PER_STEP, ask, deadline_in, done, purge_step, snooze
from shared.services.ports import IndexEntry, IndexKind, RecordRepository, ScheduleIndex, WorkKind, WorkQueue
from shared.services.tenant_settings import TenantSettingsService
from shared.services.timing import CUTOFF_MARGIN, WRITE_SETTLE
from shared.tenancy import TenantId


class ExchangePurge:
    kind = WorkKind.EXCHANGE_PURGE

    def __init__(self, settings: TenantSettingsService, index: ScheduleIndex, clock: Clock,
                 records: RecordRepository, queue: WorkQueue, *, seconds_per_step: float = SECONDS_PER_STEP) -> None:
        self._settings = settings
        self._index = index
        self._clock = clock
        self._records = records
        self._queue = queue
        self._seconds = seconds_per_step

    def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str:
        """Deletes Exchange-derived rows ingested up to the moment their use ended. The row only says "look
        here": the settings say up to when (a row left by a change that was not stored must never delete data
        ingested after the last real request)."""
        requested = self._settings.current(tenant_id).settings.exchange.purge_requested_at
        if requested is None:
            done(self._index, rows)
            return "stale"
        if self._clock.now() < requested + WRITE_SETTLE:
            snooze(self._index, rows, requested + WRITE_SETTLE)
            return "notYetDue"  # sync calls that read the gates open may still be writing
        through = requested + CUTOFF_MARGIN
        step = purge_step(self._index, self._queue, self._clock, rows, through.isoformat(), lambda after:
                          self._records.purge_exchange(tenant_id, through, deadline_in(self._seconds), after),
                          "Exchange-derived rows")
        if step != "finished":
            return step
        self._settings.change(tenant_id, SYSTEM_ACTOR, "exchangeDataPurged",
                              lambda s, now: s.record_exchange_purged(through))
        recompute_after_purge(self._index, self._queue, self._clock, tenant_id)
        done(self._index, rows)
        return "purged"


def recompute_after_purge(index: ScheduleIndex, queue: WorkQueue, clock: Clock, tenant_id: TenantId) -> None:
    """Insights computed while a purge ran may still count what it deleted."""
    ask(index, queue, clock, IndexKind.INSIGHTS_RECOMPUTE, tenant_id, clock.now())
