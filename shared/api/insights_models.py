"""Responses of the insights API for sellers' apps (SPEC 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.api.models import ApiModel
from shared.domain.insights.departures import SAFE_STRENGTH, DepartedTie, OpportunityAtStake, RelationshipRisk
from shared.domain.insights.health import Health
from shared.domain.insights.kpis import Kpis
from shared.domain.insights.model import SellerView
from shared.domain.insights.who_knows_whom import Introducer
from shared.domain.records import Source
from shared.services.insights import AtRisk, DataSubject, Introducers
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
    at_risk: RiskView | None = Field(description="set when the strongest tie to this record left the company and no "
                                                 "remaining colleague's tie reaches the safe strength")


class RiskView(ApiModel):
    departed: DepartedTie
    reason: str
    next_best: list[Introducer] = Field(description="the remaining colleagues with a tie, strongest first")
    open_opportunities: list[OpportunityAtStake]
    revenue_at_stake: float
    safe_strength: int = Field(description="the strength at which a remaining colleague's tie keeps it safe")


class AtRiskItem(RiskView):
    entity_type: Literal["account", "contact"]
    id: str
    name: str
    computed_at: datetime


class AtRiskPage(ApiModel):
    items: list[AtRiskItem]
    continuation_token: str | None


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
                       health_hidden=view.health_hidden, at_risk=None if view.risk is None else risk_view(view.risk))


def risk_view(risk: RelationshipRisk) -> RiskView:
    return RiskView(departed=risk.departed, reason=risk.reason, next_best=risk.next_best,
                    open_opportunities=risk.open_opportunities, revenue_at_stake=risk.revenue_at_stake,
                    safe_strength=SAFE_STRENGTH)


def at_risk_page(page: Page[AtRisk]) -> AtRiskPage:
    return AtRiskPage(items=[AtRiskItem(entity_type=a.insight.entity_type, id=a.insight.id,  # type: ignore[arg-type]
                                        name=a.insight.name, computed_at=a.insight.computed_at,
                                        **dict(risk_view(a.risk)))
                             for a in page.items], continuation_token=page.continuation)


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
