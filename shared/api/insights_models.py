"""Responses of the insights API for sellers' apps (SPEC 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.api.models import ApiModel
from shared.domain.insights.health import Health
from shared.domain.insights.kpis import Kpis
from shared.domain.insights.model import SellerView
from shared.domain.insights.who_knows_whom import Introducer
from shared.domain.records import Source
from shared.services.insights import DataSubject, Introducers
from shared.services.paging import Page
from shared.services.ports import RecomputeStatus


class InsightView(ApiModel):
    entity_type: str
    id: str
    name: str
    computed_at: datetime
    completeness: Literal["complete", "partial"] = Field(description=(
        "partial: Exchange data could be used here but is not (consent missing, integration off)"))
    sources: list[Source]
    kpis: Kpis
    health: Health | None = Field(description="null when the administrator hides health scores")
    health_hidden: bool


class InsightSummary(ApiModel):
    entity_type: str
    id: str
    name: str
    score: int | None
    grade: str | None
    trend: str
    state: str


class InsightPage(ApiModel):
    items: list[InsightSummary]
    continuation_token: str | None


class IntroducersView(ApiModel):
    entity_type: str
    id: str
    name: str
    mode: Literal["basic", "enhanced"]
    computed_at: datetime
    introducers: list[Introducer]


class RecomputeView(ApiModel):
    state: Literal["never", "queued", "running", "done"]
    requested_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    records: int | None = Field(description="records the latest finished recompute computed")
    activities: int | None


class DataSubjectExport(ApiModel):
    """Everything stored about one person (SPEC 4.4): their record, the activity metadata they take part in, and
    the insights computed for them."""

    entity_type: Literal["contact", "lead", "user"]
    id: str
    record: dict[str, object]
    activities: list[dict[str, object]]
    insights: dict[str, object] | None


# -- mapping --------------------------------------------------------------------------------------------


def insight_view(view: SellerView) -> InsightView:
    insight = view.insight
    return InsightView(entity_type=insight.entity_type, id=insight.id, name=insight.name,
                       computed_at=insight.computed_at, completeness=view.completeness,
                       sources=view.variant.kpis.sources, kpis=view.variant.kpis, health=view.health,
                       health_hidden=view.health_hidden)


def summary(view: SellerView) -> InsightSummary:
    insight, health = view.insight, view.variant.health
    return InsightSummary(entity_type=insight.entity_type, id=insight.id, name=insight.name,
                          score=None if view.health_hidden else health.score,
                          grade=None if view.health_hidden else health.grade,
                          trend="hidden" if view.health_hidden else health.trend, state=health.state)


def page_view(page: Page[SellerView]) -> InsightPage:
    return InsightPage(items=[summary(v) for v in page.items], continuation_token=page.continuation)


def introducers_view(found: Introducers) -> IntroducersView:
    insight = found.insight
    return IntroducersView(entity_type=insight.entity_type, id=insight.id, name=insight.name, mode=found.mode,
                           computed_at=insight.computed_at, introducers=found.introducers)


def recompute_view(status: RecomputeStatus) -> RecomputeView:
    return RecomputeView(state=status.state, requested_at=status.requested_at, started_at=status.started_at,
                         finished_at=status.finished_at, records=status.records, activities=status.activities)


def export_view(entity_type: Literal["contact", "lead", "user"], subject: DataSubject) -> DataSubjectExport:
    return DataSubjectExport(
        entity_type=entity_type, id=subject.record.id, record=subject.record.model_dump(mode="json", by_alias=True),
        activities=[a.model_dump(mode="json", by_alias=True) for a in subject.activities],
        insights=None if subject.insight is None else subject.insight.model_dump(mode="json", by_alias=True))
