"""The purge of the data of people who opted out (SPEC 4.4): every activity in which they take part, or that came
from their mailbox, is deleted, in bounded steps that keep their position and continue in a new message."""

from __future__ import annotations

import hashlib

from shared.clock import Clock
from shared.services.background.exchange_purge import recompute_after_purge
from shared.services.background.steps import SECONDS_PER_STEP, deadline_in, done, purge_step
from shared.services.ports import IndexEntry, RecordRepository, ScheduleIndex, WorkKind, WorkQueue
from shared.tenancy import TenantId


class OptOutPurge:
    kind = WorkKind.OPT_OUT_PURGE

    def __init__(self, index: ScheduleIndex, clock: Clock, records: RecordRepository, queue: WorkQueue, *,
                 seconds_per_step: float = SECONDS_PER_STEP) -> None:
        self._index = index
        self._clock = clock
        self._records = records
        self._queue = queue
        self._seconds = seconds_per_step

    def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str:
        users = list(self._records.iter_records(tenant_id, "users"))
        people = [*self._records.iter_records(tenant_id, "contacts"), *self._records.iter_records(tenant_id, "leads")]
        addresses = frozenset({u.email for u in users if u.opted_out} | {p.email for p in people
                                                                         if p.opted_out and p.email})
        user_ids = frozenset(u.id for u in users if u.opted_out)
        # Someone who opts out while a purge runs: the rows already passed were judged without them.
        judged_by = hashlib.sha256("\n".join([*sorted(addresses), "|", *sorted(user_ids)]).encode()).hexdigest()
        step = purge_step(self._index, self._queue, self._clock, rows, judged_by, lambda after:
                          self._records.purge_people(tenant_id, addresses, user_ids, deadline_in(self._seconds), after),
                          "activity rows of people who opted out")
        if step != "finished":
            return step
        recompute_after_purge(self._index, self._queue, self._clock, tenant_id)
        done(self._index, rows)
        return "optOutPurged"
