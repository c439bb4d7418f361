"""Keeping a tenant's insights current: a refresh of the records new activities touch, or a full recompute when
records or settings changed, or a day passed (recency moves scores)."""

from __future__ import annotations

from shared.services.background.steps import done
from shared.services.insights import InsightsService
from shared.services.ports import IndexEntry, IndexKind, ScheduleIndex, WorkKind
from shared.tenancy import TenantId


class InsightsUpdate:
    kind = WorkKind.INSIGHTS_UPDATE

    def __init__(self, insights: InsightsService, index: ScheduleIndex) -> None:
        self._insights = insights
        self._index = index

    def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str:
        """One computation: everything if any row asks for it, else only what new activities touch."""
        full = any(row.kind is IndexKind.INSIGHTS_RECOMPUTE for row in rows)
        if full:
            self._insights.recompute(tenant_id)
        else:
            self._insights.refresh(tenant_id)
        done(self._index, rows)  # rows added while computing stay due for the next run
        return "recomputed" if full else "refreshed"
