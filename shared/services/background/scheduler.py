"""What the timer (every 5 minutes by default) does: find the background work that is due and put it on the
queues; it never does a tenant's work itself. One range query per index kind, one message per due (tenant, kind
of work), and a lease on the rows it sent, so that the next run does not send them again while their message
waits or runs (a lost message is sent again once the lease ends)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shared.clock import Clock
from shared.services.background.steps import LEASE, message_for
from shared.services.ports import IndexEntry, ScheduleIndex, WorkQueue
from shared.services.work import WORK_OF_INDEX, IndexKind, WorkKind
from shared.tenancy import TenantId

log = logging.getLogger(__name__)

SENDERS = 8  # sending is I/O: a few at once keep a run short when thousands of tenants are due
MAX_ROWS_PER_MESSAGE = 100  # ids only, far below a message's 64 KiB; the rest goes in the next run


@dataclass(frozen=True)
class RunReport:
    messages: dict[str, int]  # per kind of work

    def count(self, kind: WorkKind) -> int:
        return self.messages.get(kind.value, 0)


class BackgroundScheduler:
    def __init__(self, index: ScheduleIndex, queue: WorkQueue, clock: Clock) -> None:
        self._index = index
        self._queue = queue
        self._clock = clock

    def run(self) -> RunReport:
        now = self._clock.now()
        groups: dict[tuple[WorkKind, TenantId], list[IndexEntry]] = {}
        for kind in IndexKind:
            for entry in self._index.due(kind, now):
                if entry.leased_until is not None and entry.leased_until > now:
                    continue  # its message is on its way
                rows = groups.setdefault((WORK_OF_INDEX[kind], entry.tenant_id), [])
                if len(rows) < MAX_ROWS_PER_MESSAGE:
                    rows.append(entry)
        with ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="scheduler") as pool:
            sent = list(pool.map(lambda group: self._send(*group), groups.items()))
        report = RunReport(dict(Counter(kind.value for kind, _ in groups)))
        log.info("background work: %d messages sent %s", sum(sent), report.messages)
        return report

    def _send(self, key: tuple[WorkKind, TenantId], rows: Sequence[IndexEntry]) -> int:
        # Sent first, then leased: if the queue is down the run fails and every row stays due for the next run;
        # if the lease cannot be written, the next run sends a message again, which finds nothing left to do.
        self._queue.send(message_for(key[1], rows))
        until = self._clock.now() + LEASE
        for row in rows:
            self._index.keep(row, leased_until=until, position=row.position)
        return 1
