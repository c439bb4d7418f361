"""Who knows whom (SPEC 4.3): the colleagues best placed to introduce a seller to a lead or contact.

Strength between a colleague and the target only (a person, or everyone at a company's email domains), so every
seller sees the same introducers:
    basic    (CRM emails and meetings):           s = Σ g(a)
    enhanced (plus Exchange, when usable):        s = Σ g(a) · 2^(−age(a) / 180 days)
g(a) = 1 up to 4 recipients, 4/n beyond; automated senders are ignored. Shown as 100·(1 − e^(−s/3)). The long
half-life keeps a quiet, long-standing tie a good introducer (SPEC 4.3b).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from shared.domain.gates import closed_gate
from shared.domain.insights.base import InsightModel
from shared.domain.insights.directory import Directory
from shared.domain.insights.signals import from_a_machine, mass_mail_weight
from shared.domain.records import Activity, ActivityKind, Source
from shared.domain.tenant_settings import TenantSettings

MAX_INTRODUCERS = 5
HALF_LIFE_DAYS = 180.0

Mode = Literal["basic", "enhanced"]


class Introducer(InsightModel):
    user_id: str
    name: str
    email: str
    strength: int
    interactions: int
    last_interaction: datetime


def introducers(directory: Directory, settings: TenantSettings, targets: frozenset[str],
                activities: Sequence[Activity], now: datetime) -> list[Introducer]:
    """Introducers to a person (one address) or to a company (all its people's addresses)."""
    mode: Mode = settings.who_knows_whom_mode
    excluded_groups = {g.lower() for g in settings.exchange.excluded_security_group_ids}
    strength: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    last: dict[str, datetime] = {}
    for activity in activities:
        if activity.kind not in (ActivityKind.EMAIL, ActivityKind.APPOINTMENT) or not activity.completed:
            continue
        if activity.start > now or from_a_machine(activity):
            continue
        if activity.source is Source.EXCHANGE and mode == "basic":
            continue
        parties = activity.parties
        if not targets.intersection(parties):
            continue
        weight = mass_mail_weight(activity)
        if mode == "enhanced":
            weight *= 2 ** (-((now - activity.start).total_seconds() / 86400) / HALF_LIFE_DAYS)
        for address in parties:
            user = directory.users_by_email.get(address)
            if user is None or not user.active or user.opted_out:
                continue
            if excluded_groups.intersection(g.lower() for g in user.group_ids):
                continue
            if activity.source is Source.EXCHANGE and closed_gate(settings, activity, user) is not None:
                continue  # outside the selected roles: no Exchange-derived strength for this colleague
            strength[user.id] += weight
            count[user.id] += 1
            last[user.id] = max(last.get(user.id, activity.start), activity.start)
    ranked = sorted(strength, key=lambda uid: (-strength[uid], -last[uid].timestamp(), uid))[:MAX_INTRODUCERS]
    return [Introducer(user_id=uid, name=directory.users[uid].display_name, email=directory.users[uid].email,
                       strength=round(100 * (1 - math.exp(-strength[uid] / 3))), interactions=count[uid],
                       last_interaction=last[uid]) for uid in ranked]
