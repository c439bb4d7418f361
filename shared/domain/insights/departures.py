"""Relationships at risk when a colleague leaves (beyond SPEC: no peer offers it).

A record (an account or a contact) is at risk when the strongest tie to its people, by the strength who
knows whom measures, belongs to a colleague who left (deactivated), and no remaining colleague's tie reaches
`SAFE_STRENGTH` on the 0–100 scale shown to sellers. 40 is 100·(1 − e^(−s/3)) at s ≈ 1.5: about two one-to-one
emails or meetings in basic mode; below it, nobody left has a tie worth an introduction. The open opportunities
of the record (an account's, or those naming the contact as customer or stakeholder) say what revenue the
departure puts at stake; managers see the records worst first: the most revenue, then the strongest tie lost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from pydantic import Field

from shared.domain.insights.base import InsightModel
from shared.domain.insights.directory import Directory, EntityType
from shared.domain.insights.who_knows_whom import Introducer
from shared.domain.records import InternalUser

SAFE_STRENGTH = 40
RISK_TYPES = frozenset({"account", "contact"})  # the relationships a departure leaves; opportunities are at stake
NEXT_BEST = 3
MAX_OPPORTUNITIES = 20  # listed per record; the revenue counts them all


class DepartedTie(InsightModel):
    user_id: str
    name: str
    strength: int
    left_on: datetime | None = Field(description="when the colleague's account was deactivated, when known")


class OpportunityAtStake(InsightModel):
    id: str
    name: str
    estimated_revenue: float | None


class RelationshipRisk(InsightModel):
    departed: DepartedTie
    next_best: list[Introducer] = Field(description="the remaining colleagues with a tie, strongest first")
    open_opportunities: list[OpportunityAtStake]
    revenue_at_stake: float = Field(description="the estimated revenue of the record's open opportunities")

    @property
    def reason(self) -> str:
        when = f" on {self.departed.left_on:%Y-%m-%d}" if self.departed.left_on else ""
        return (f"the strongest tie, {self.departed.name or self.departed.user_id}, left{when}; no remaining "
                f"colleague's tie reaches {SAFE_STRENGTH}")

    def position(self, entity_type: str, record_id: str) -> str:
        """Where the record stands among those at risk, as a string whose order is worst first: the most revenue
        at stake, then the strongest tie lost, then by type and id."""
        revenue = min(round(self.revenue_at_stake), MAX_REVENUE)
        return f"{MAX_REVENUE - revenue:016d}|{100 - self.departed.strength:03d}|{entity_type}|{record_id}"


MAX_REVENUE = 10**16 - 1
POSITION = re.compile(r"^\d{16}\|\d{3}\|(account|contact)\|[A-Za-z0-9._:-]{1,100}$")


def departed(user: InternalUser) -> bool:
    """A departure: the user's account is deactivated (the CRM's disabled flag)."""
    return not user.active


def at_risk(strongest_departed: DepartedTie | None, remaining: Sequence[Introducer],
            stake: Sequence[OpportunityAtStake]) -> RelationshipRisk | None:
    """`remaining` strongest first (the record's introducers among the colleagues still here)."""
    if strongest_departed is None or strongest_departed.strength == 0:
        return None
    if remaining and (remaining[0].strength >= SAFE_STRENGTH or remaining[0].strength >= strongest_departed.strength):
        return None
    return RelationshipRisk(departed=strongest_departed, next_best=list(remaining[:NEXT_BEST]),
                            open_opportunities=list(stake[:MAX_OPPORTUNITIES]),
                            revenue_at_stake=sum(o.estimated_revenue or 0.0 for o in stake))


def opportunities_at_stake(directory: Directory, entity_type: EntityType, record_id: str,
                           ) -> list[OpportunityAtStake]:
    """The open opportunities a record's relationship carries, the largest first."""
    found = directory.open_opportunities.get((entity_type, record_id), [])
    return [OpportunityAtStake(id=o.id, name=o.name, estimated_revenue=o.estimated_revenue)
            for o in sorted(found, key=lambda o: (-(o.estimated_revenue or 0.0), o.id))]
