"""Requests and responses of the sync API (SPEC 7): what a connector sends and what it is told back."""

from __future__ import annotations

from pydantic import Field

from shared.api.models import ApiModel
from shared.services.sync import SyncReport


class SyncBatchRequest(ApiModel):
    items: list[dict[str, object]] = Field(min_length=1, max_length=1000, description=(
        "Records of the kind in the path, camelCase, each with `id` and the source's `version`."))


class SyncRejectionView(ApiModel):
    index: int
    id: str | None
    reason: str
    detail: str | None


class SyncReportView(ApiModel):
    kind: str
    received: int
    stored: int
    unchanged: int
    rejected: list[SyncRejectionView]
    rejected_by_reason: dict[str, int]


def report_view(report: SyncReport) -> SyncReportView:
    return SyncReportView(
        kind=report.kind, received=report.received, stored=report.stored, unchanged=report.unchanged,
        rejected=[SyncRejectionView(index=r.index, id=r.id, reason=r.reason, detail=r.detail)
                  for r in report.rejected],
        rejected_by_reason=report.rejected_by_reason)
