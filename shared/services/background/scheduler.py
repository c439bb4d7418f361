"""What the hourly timer does: find the background work that is due (one range query per kind of work), group
it by tenant and kind, and run each group's step. A failing step is logged and its rows stay due for the next
run; nothing a step decides depends on the index rows alone (they are hints, the tenant's state decides)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from shared import observability
from shared.clock import Clock
from shared.services.ports import IndexEntry, IndexKind, ScheduleIndex
from shared.tenancy import TenantId

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 8


class Work(Protocol):
    """One kind of background work: a step for one tenant, given the index rows that asked for it."""

    @property
    def kinds(self) -> tuple[IndexKind, ...]: ...

    def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str: ...


@dataclass(frozen=True)
class RunReport:
    outcomes: dict[str, int]

    def count(self, outcome: str) -> int:
        return self.outcomes.get(outcome, 0)


class BackgroundScheduler:
    def __init__(self, index: ScheduleIndex, clock: Clock, phases: Sequence[Sequence[Work]], *,
                 workers: int = DEFAULT_WORKERS) -> None:
        """`phases` run one after the other (a consent deadline before the purge it asks for, purges before the
        recompute they ask for); the groups of one phase run side by side."""
        self._index = index
        self._clock = clock
        self._phases = phases
        self._workers = workers

    def run(self) -> RunReport:
        operation = observability.current_operation_id()
        outcomes: list[str] = []
        due = 0
        with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="background") as pool:
            for phase in self._phases:
                groups = self._due(phase)
                due += sum(len(rows) for _, _, rows in groups)
                outcomes += pool.map(lambda group: self._step(group, operation), groups)
        report = RunReport(dict(Counter(outcomes)))
        log.info("background work: %d index rows due, outcomes %s", due, report.outcomes)
        return report

    def _due(self, phase: Sequence[Work]) -> list[tuple[Work, TenantId, list[IndexEntry]]]:
        """One group per (work, tenant): two steps of one tenant's purge would scan and delete the same rows."""
        now = self._clock.now()
        groups: dict[tuple[int, TenantId], tuple[Work, TenantId, list[IndexEntry]]] = {}
        for position, work in enumerate(phase):
            for kind in work.kinds:
                for entry in self._index.due(kind, now):
                    groups.setdefault((position, entry.tenant_id), (work, entry.tenant_id, []))[2].append(entry)
        return list(groups.values())

    @staticmethod
    def _step(group: tuple[Work, TenantId, list[IndexEntry]], operation: str | None) -> str:
        work, tenant_id, rows = group
        with observability.log_context(tenant_id=tenant_id, operation_id=operation):
            try:
                return work.run(tenant_id, rows)
            except Exception:
                log.exception("background step %s failed; retried next run", "/".join(k.value for k in work.kinds))
                return "failed"
