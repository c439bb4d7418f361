"""Keeping a tenant's insights current: a refresh of the records new activities touch, or a full recompute when
records or settings changed, or a day passed (recency moves scores)."""

from __future__ import annotations

from datetime import datetime

from shared.clock import Clock
from shared.services.background.steps import ask, continue_later, done, resume
from shared.services.insights import InsightsService
from shared.services.ports import IndexEntry, IndexKind, ScheduleIndex, WorkKind, WorkQueue
from shared.tenancy import TenantId


class InsightsUpdate:
    kind = WorkKind.INSIGHTS_UPDATE

    def __init__(self, insights: InsightsService, index: ScheduleIndex, queue: WorkQueue, clock: Clock) -> None:
        self._insights = insights
        self._index = index
        self._queue = queue
        self._clock = clock

    def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str:
        """One step: everything if any row asks for it, else only what new activities touch; a step that the log's
        size cut short keeps where it got to on the first row and sends the next, which refreshes from there; a
        step of a rebuild of the aggregates (which keeps its own progress) sends the next, which continues it."""
        resumed = resume(self._index, rows, LOG_POSITION)
        after = datetime.fromisoformat(resumed.after) if resumed is not None and resumed.after else None
        full = after is None and any(row.kind is IndexKind.INSIGHTS_RECOMPUTE for row in rows)
        report = self._insights.recompute(tenant_id) if full else self._insights.refresh(tenant_id, after)
        if report.superseded:
            # Another delivery's step of the rebuild got further and carries it on: one chain of steps, not one per
            # row that asked. These rows stay leased; the timer sends them again once the lease ends.
            return "superseded"
        if report.rebuilding:
            # The aggregates' rebuild goes on in the next step, whichever rows carry it (any step continues it).
            if resumed is None:
                ask(self._index, self._queue, self._clock, IndexKind.INSIGHTS_REFRESH, tenant_id, self._clock.now())
                return "rebuildContinues"
            kept = continue_later(self._index, self._queue, self._clock, resumed, rows, LOG_POSITION, None)
            return "rebuildContinues" if kept else "superseded"
        if report.more_after is not None and resumed is not None:
            kept = continue_later(self._index, self._queue, self._clock, resumed, rows, LOG_POSITION,
                                  report.more_after.isoformat())
            return "updateContinues" if kept else "superseded"
        done(self._index, rows)  # rows added while computing stay due for the next run
        if report.more_after is not None:
            # The rows went meanwhile (another delivery finished them): a new row, read from the last mark.
            ask(self._index, self._queue, self._clock, IndexKind.INSIGHTS_REFRESH, tenant_id, self._clock.now())
            return "updateContinues"
        return "recomputed" if full else "refreshed"


LOG_POSITION = "ingestionLog"
