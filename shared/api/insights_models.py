"""Responses of the insights API for sellers' apps (SPEC 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.api.models import ApiModel
from shared.domain.insights.health import Health
from shared.domain.insights.kpis import Kpis
from shared.domain.insights.who_knows_whom import Introducer
from shared.domain.records import Source


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


class IntroductionRequest(ApiModel):
    introducer_id: str = Field(min_length=1, max_length=100)


class IntroductionDraft(ApiModel):
    to: str
    subject: str
    body: str


class RecomputeView(ApiModel):
    records: int
    activities: int
    seconds: float


class DataSubjectExport(ApiModel):
    """Everything stored about one person (SPEC 4.4): their record, the activity metadata they take part in, and
    the insights computed for them."""

    entity_type: Literal["contact", "lead", "user"]
    id: str
    record: dict[str, object]
    activities: list[dict[str, object]]
    insights: dict[str, object] | None
