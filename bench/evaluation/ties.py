"""Synthetic relationships whose strength is known, to evaluate the health model (peers.md §3.3, step 5).

Each relationship is one customer account with one contact. Its interactions are drawn from a latent rate
(touches per week) that follows a scenario: steady and strong, steady and weak, cooling, warming, or lapsed.
Because the rate is known at every moment, an evaluation can compare what the model says at a moment with the
truth at that moment and with what happens next. The same arguments always give the same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Scenario = Literal["steady-strong", "steady-weak", "cooling", "warming", "lapsed"]
SCENARIOS: tuple[Scenario, ...] = ("steady-strong", "steady-weak", "cooling", "warming", "lapsed")
INTERNAL_DOMAIN = "contoso.com"
SELLER_ROLE = "role-seller"
STRONG = (1.0, 3.0)  # touches per week
WEAK = (0.03, 0.25)


@dataclass(frozen=True)
class Tie:
    """The truth about one relationship: its rate before and after `changed_at` (the same for steady ones)."""

    account_id: str
    contact_id: str
    scenario: Scenario
    rate_before: float
    rate_after: float
    changed_at: datetime
    reply_probability: float

    def rate_at(self, moment: datetime) -> float:
        return self.rate_before if moment < self.changed_at else self.rate_after


@dataclass(frozen=True)
class Ties:
    ties: list[Tie]
    records: dict[str, list[dict[str, Any]]]  # in the sync API's shape, like devhost.seed


def generate(*, relationships: int = 100, sellers: int = 5, seed: int = 11, now: datetime,
             history_days: int = 400, future_days: int = 60) -> Ties:
    """Interactions from `history_days` before `now` to `future_days` after it, for `relationships` ties with
    the scenarios in equal shares. Cooling and warming ties change in the 17 weeks before `now`, lapsed ones
    went silent 100 to 250 days before it."""
    rng = random.Random(seed)
    users = [{"id": f"seller-{i}", "version": 1, "email": f"seller{i}@{INTERNAL_DOMAIN}",
              "displayName": f"Seller {i}", "securityRoleIds": [SELLER_ROLE]} for i in range(sellers)]
    records: dict[str, list[dict[str, Any]]] = {"users": users, "accounts": [], "contacts": [], "activities": []}
    ties = []
    for n in range(relationships):
        scenario = SCENARIOS[n % len(SCENARIOS)]
        strong, weak = rng.uniform(*STRONG), rng.uniform(*WEAK)
        before, after = {"steady-strong": (strong, strong), "steady-weak": (weak, weak), "cooling": (strong, weak),
                         "warming": (weak, strong), "lapsed": (strong, 0.0)}[scenario]
        days_ago = rng.uniform(100, 250) if scenario == "lapsed" else rng.uniform(7, 119)
        changed = now - timedelta(days=days_ago)
        tie = Tie(f"account-{n}", f"contact-{n}", scenario, before, after, changed, rng.uniform(0.2, 0.9))
        ties.append(tie)
        domain = f"customer{n}.example"
        email = f"buyer@{domain}"
        records["accounts"].append({"id": tie.account_id, "version": 1, "name": f"Customer {n}",
                                    "primaryContactId": tie.contact_id, "emailDomains": [domain]})
        records["contacts"].append({"id": tie.contact_id, "version": 1, "email": email, "fullName": f"Buyer {n}",
                                    "accountId": tie.account_id})
        records["activities"] += _interactions(rng, tie, n, users[n % sellers], email,
                                                now - timedelta(days=history_days),
                                                now + timedelta(days=future_days))
    return Ties(ties, records)


def _interactions(rng: random.Random, tie: Tie, n: int, seller: dict[str, Any], customer: str, start: datetime,
                  end: datetime) -> list[dict[str, Any]]:
    """A Poisson process with the tie's rate (thinning against the larger of its two rates)."""
    items: list[dict[str, Any]] = []
    peak = max(tie.rate_before, tie.rate_after)
    moment = start
    while peak > 0:
        moment += timedelta(weeks=rng.expovariate(peak))
        if moment >= end:
            break
        if rng.random() * peak >= tie.rate_at(moment):
            continue
        ident = f"t{n}-{len(items)}"
        kind = rng.choices(["email", "appointment", "phoneCall"], [70, 15, 15])[0]
        ours = rng.random() < 0.65
        sender, recipient = (seller["email"], customer) if ours else (customer, seller["email"])
        item: dict[str, Any] = {"id": ident, "version": 1, "source": "exchange", "mailboxOwnerId": seller["id"],
                                "kind": kind, "sender": sender, "to": [recipient], "start": _iso(moment)}
        if kind == "email":
            item["threadId"] = ident
            items.append(item)
            if rng.random() < (tie.reply_probability if ours else 0.8):
                answered = moment + timedelta(hours=rng.expovariate(1 / 20))
                items.append({**item, "id": f"{ident}-re", "sender": recipient, "to": [sender],
                              "start": _iso(answered), "inReplyToSentAt": _iso(moment)})
        else:
            item["source"] = "crm"
            del item["mailboxOwnerId"]
            item["durationMinutes"] = rng.choice([15, 30, 60])
            items.append(item)
    return items


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
