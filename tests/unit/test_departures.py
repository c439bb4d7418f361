"""Relationships at risk when a colleague leaves (issue 16): the rule, then the computation from ledgers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.insights.departures import (
    SAFE_STRENGTH,
    DepartedTie,
    OpportunityAtStake,
    at_risk,
    opportunities_at_stake,
)
from shared.domain.insights.directory import Directory
from shared.domain.insights.who_knows_whom import Introducer
from shared.domain.records import Account, Contact, Opportunity, OpportunityState

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LOST = DepartedTie(user_id="ann", name="Ann", strength=80, left_on=NOW - timedelta(days=2))


def colleague(strength: int) -> Introducer:
    return Introducer(user_id=f"u{strength}", name="", email=f"u{strength}@contoso.com", strength=strength,
                      interactions=1, last_interaction=NOW)


@pytest.mark.parametrize(("remaining", "risky"), [
    ([], True),  # nobody else knows them
    ([colleague(SAFE_STRENGTH - 1)], True),  # a tie below the safe strength
    ([colleague(SAFE_STRENGTH)], False),  # one colleague knows them well enough
    ([colleague(SAFE_STRENGTH - 1), colleague(10)], True),
])
def test_at_risk_when_no_remaining_colleague_reaches_the_safe_strength(remaining: list[Introducer],
                                                                        risky: bool) -> None:
    stake = [OpportunityAtStake(id="o1", name="Renewal", estimated_revenue=1000.0),
             OpportunityAtStake(id="o2", name="Pilot", estimated_revenue=None)]
    risk = at_risk(LOST, remaining, stake)
    assert (risk is not None) is risky
    if risk is not None:
        assert risk.revenue_at_stake == 1000.0
        assert risk.next_best == remaining[:3]
        assert "Ann" in risk.reason
        assert "2026-11-24" in risk.reason


def test_no_departure_no_risk() -> None:
    assert at_risk(None, [], []) is None


def test_worst_first_is_the_most_revenue_then_the_strongest_tie_lost() -> None:
    big = at_risk(LOST, [], [OpportunityAtStake(id="o", name="", estimated_revenue=9e6)])
    small = at_risk(LOST, [], [OpportunityAtStake(id="o", name="", estimated_revenue=10.0)])
    weaker = at_risk(LOST.model_copy(update={"strength": 50}), [],
                     [OpportunityAtStake(id="o", name="", estimated_revenue=10.0)])
    assert big is not None
    assert small is not None
    assert weaker is not None
    positions = [small.position("account", "b"), weaker.position("account", "a"), big.position("contact", "c")]
    assert sorted(positions) == [big.position("contact", "c"), small.position("account", "b"),
                                 weaker.position("account", "a")]


def test_the_open_opportunities_at_stake_are_the_account_s_and_the_contact_s() -> None:
    def opportunity(oid: str, state: OpportunityState = OpportunityState.OPEN, **links: object) -> Opportunity:
        return Opportunity.model_validate({"id": oid, "version": 1, "ownerId": "ann", "state": state,
                                           "createdOn": NOW, "estimatedRevenue": 100.0, **links}, strict=False)

    directory = Directory.of(
        accounts=[Account(id="a", version=1, name="A")],
        contacts=[Contact(id="c", version=1, email="c@a.example", account_id="a")],
        opportunities=[opportunity("o1", accountId="a"), opportunity("o2", customerContactId="c"),
                       opportunity("o3", stakeholderContactIds=["c"], accountId="a"),
                       opportunity("o4", OpportunityState.WON, accountId="a")])
    assert [o.id for o in opportunities_at_stake(directory, "account", "a")] == ["o1", "o3"]
    assert [o.id for o in opportunities_at_stake(directory, "contact", "c")] == ["o2", "o3"]
