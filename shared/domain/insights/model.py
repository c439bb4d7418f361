"""A record's stored insights and what a seller may see of them now.

Each record is computed in two variants: from CRM data only, and with Exchange data (when it was usable at
compute time). The read side serves the Exchange variant only while Exchange data is still usable with the
same gates (`gate_fingerprint`), so a gate that closes takes effect on the next read, before any recompute or
purge; health scores are hidden when the admin turned the display off (computation goes on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.domain.gates import gate_fingerprint
from shared.domain.insights.base import InsightModel
from shared.domain.insights.departures import RelationshipRisk
from shared.domain.insights.directory import EntityType
from shared.domain.insights.health import Health, needs_attention
from shared.domain.insights.kpis import Kpis
from shared.domain.insights.who_knows_whom import Introducer
from shared.domain.tenant_settings import TenantSettings

Completeness = Literal["complete", "partial"]


class Variant(InsightModel):
    kpis: Kpis
    health: Health


class RecordInsight(InsightModel):
    entity_type: EntityType
    id: str
    name: str
    computed_at: datetime
    gate_fingerprint: str
    crm: Variant
    with_exchange: Variant | None
    introducers_basic: list[Introducer] | None = None
    introducers_enhanced: list[Introducer] | None = None
    email_domains: list[str] = Field(default_factory=list)  # accounts: whom "introducers to the company" reach
    risk_basic: RelationshipRisk | None = None  # a departure leaves this relationship without a strong tie
    risk_enhanced: RelationshipRisk | None = None

    @property
    def key(self) -> tuple[EntityType, str]:
        return self.entity_type, self.id

    def variant(self, settings: TenantSettings) -> tuple[Variant, Completeness]:
        if self.with_exchange is not None and gate_fingerprint(settings) == self.gate_fingerprint:
            return self.with_exchange, "complete"
        return self.crm, "partial" if settings.exchange_eligible else "complete"

    def introducers(self, settings: TenantSettings, listed: Callable[[str], bool] = lambda _: True,
                    ) -> list[Introducer]:
        """As the tenant's gates stand now, without the colleagues who chose not to be listed."""
        if settings.who_knows_whom_mode == "enhanced" and gate_fingerprint(settings) == self.gate_fingerprint:
            found = self.introducers_enhanced or []
        else:
            found = self.introducers_basic or []
        return [i for i in found if listed(i.user_id)]

    def risk(self, settings: TenantSettings) -> RelationshipRisk | None:
        """A departure's risk, measured as who knows whom measures ties as the tenant's gates stand now."""
        if settings.who_knows_whom_mode == "enhanced" and gate_fingerprint(settings) == self.gate_fingerprint:
            return self.risk_enhanced
        return self.risk_basic

    def introducer(self, settings: TenantSettings, user_id: str, listed: Callable[[str], bool] = lambda _: True,
                   ) -> Introducer | None:
        """The colleague, if they are among this record's introducers as the tenant's settings stand now."""
        return next((i for i in self.introducers(settings, listed) if i.user_id == user_id), None)

    def seen_by_seller(self, settings: TenantSettings) -> SellerView:
        variant, completeness = self.variant(settings)
        shown = settings.relationship_analytics.health_display
        return SellerView(self, variant, completeness, variant.health if shown else None, self.risk(settings))

    def needs_attention(self, settings: TenantSettings) -> bool:
        """Poor or Declining, or at risk since a colleague left."""
        return needs_attention(self.variant(settings)[0].health) or self.risk(settings) is not None

    def attention_order(self, settings: TenantSettings) -> tuple[int, str]:
        """Worst first: the lowest score, then by id for a stable order."""
        return self.variant(settings)[0].health.score or 0, self.id


@dataclass(frozen=True)
class SellerView:
    """What a seller sees of a record now: the variant the gates allow, health only when it is displayed."""

    insight: RecordInsight
    variant: Variant
    completeness: Completeness
    health: Health | None  # None: the admin hides health scores
    risk: RelationshipRisk | None = None  # left as computed: the read side leaves out who is back or hidden

    @property
    def health_hidden(self) -> bool:
        return self.health is None
