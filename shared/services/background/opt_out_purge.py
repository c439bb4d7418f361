"""The purge of the data of people who opted out (SPEC 4.4): every activity in which they take part, or that came
from their mailbox, is deleted, in bounded steps."""

from __future__ import annotations

import logging

from shared.clock import Clock
from shared.services.background.budget import PURGE_SECONDS_PER_STEP, deadline_in
from shared.services.background.exchange_purge import recompute_after_purge
from shared.services.ports import IndexEntry, IndexKind, RecordRepository, ScheduleIndex
from shared.tenancy import TenantId

log = logging.getLogger(__name__)


class OptOutPurge:
    kinds: tuple[IndexKind, ...] = (IndexKind.OPT_OUT_PURGE,)

    def __init__(self, index: ScheduleIndex, clock: Clock, records: RecordRepository, *,
                 seconds_per_step: float = PURGE_SECONDS_PER_STEP) -> None:
        self._index = index
        self._clock = clock
        self._records = records
        self._seconds = seconds_per_step

    def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str:
        users = list(self._records.iter_records(tenant_id, "users"))
        people = [*self._records.iter_records(tenant_id, "contacts"), *self._records.iter_records(tenant_id, "leads")]
        addresses = frozenset({u.email for u in users if u.opted_out} | {p.email for p in people
                                                                         if p.opted_out and p.email})
        user_ids = frozenset(u.id for u in users if u.opted_out)
        progress = self._records.purge_people(tenant_id, addresses, user_ids, deadline_in(self._seconds))
        log.info("purged %d activity rows of people who opted out%s", progress.deleted,
                 "" if progress.finished else "; more next run")
        if not progress.finished:
            return "purgeContinues"
        recompute_after_purge(self._index, self._clock, tenant_id)
        for row in rows:
            self._index.remove(row.kind, row.tenant_id, row.due)
        return "optOutPurged"
