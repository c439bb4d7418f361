"""Keeping a tenant's insights current: a refresh of the records that new activities and records touch, or a full
recompute when settings changed, a change concerns every record, or a day passed (recency moves scores)."""

from __future__ import annotations

from datetime import datetime

from shared.clock import Clock
from shared.services.background.steps import ask, continue_later, done, message_for, relay, resume
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
        """One step: of the recompute if any row asks for it (of the pass over every record under way, or of a new
        one unless the last began after every row asked), else only what new activities touch; a step that the
        log's size or its time cut short keeps where the log got to on the first row and sends the next, which goes
        on from there (the pass and a rebuild of the aggregates keep their own progress). When the pass ends, the
        rows asked after it began stay, and are sent again: they need the next pass."""
        rows = sorted(rows, key=lambda row: row.kind is not IndexKind.INSIGHTS_RECOMPUTE)  # (they carry the pass)
        resumed = resume(self._index, rows, LOG_POSITION)
        after = datetime.fromisoformat(resumed.after) if resumed is not None and resumed.after else None
        asked = [row.due for row in rows if row.kind is IndexKind.INSIGHTS_RECOMPUTE]
        if asked and resumed is None:
            # A late duplicate of a step whose rows are done: the chain that carries the pass (or ended it) goes
            # on without it (a step here would save the pass's position and end, stalling that chain).
            return "stale"
        report = (self._insights.recompute(tenant_id, max(asked), after) if asked
                  else self._insights.refresh(tenant_id, after))
        if report.superseded:
            # Another delivery's step of the rebuild or the pass got further and carries it on: one chain of
            # steps, not one per row that asked. These rows stay leased; the timer sends them again once the
            # lease ends.
            return "superseded"
        going_on = "rebuildContinues" if report.rebuilding else "recomputeContinues" if report.sweeping else None
        if going_on is not None:
            if resumed is None:  # (a refresh's rows, which another delivery finished: any step continues the rebuild)
                ask(self._index, self._queue, self._clock, IndexKind.INSIGHTS_REFRESH, tenant_id, self._clock.now())
                return going_on
            kept = continue_later(self._index, self._queue, self._clock, resumed, rows, LOG_POSITION,
                                  None if report.more_after is None else report.more_after.isoformat())
            return going_on if kept else "superseded"
        if report.more_after is not None and resumed is not None:
            kept = continue_later(self._index, self._queue, self._clock, resumed, rows, LOG_POSITION,
                                  report.more_after.isoformat())
            return "updateContinues" if kept else "superseded"
        began = report.pass_began
        later = [row for row in rows if row.kind is IndexKind.INSIGHTS_RECOMPUTE and began is not None
                 and row.due > began]
        done(self._index, [row for row in rows if row not in later])  # rows added while computing stay due
        if later:
            relay(self._index, self._queue, self._clock, message_for(tenant_id, later))  # the next pass
        if report.more_after is not None:
            # The rows went meanwhile (another delivery finished them): a new row, read from the last mark.
            ask(self._index, self._queue, self._clock, IndexKind.INSIGHTS_REFRESH, tenant_id, self._clock.now())
            return "updateContinues"
        return "recomputed" if asked else "refreshed"


LOG_POSITION = "ingestionLog"
