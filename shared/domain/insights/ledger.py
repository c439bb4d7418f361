"""A record's aggregates and the one function from them to its insights.

A record's ledger holds, per month, the facts of the activities that link to it (bit 1) or that are about its
people (bit 2, for who knows whom), and per month and origin a *partial*: the sums and order statistics of those
facts (counts, minutes, weeks, who was contacted and when last, threads' first messages by side, colleagues'
strength). A partial is a function of its month's facts alone, so a change (a new activity, a new version, a
removal) recomputes one month from a bounded number of facts and never subtracts: sums stay exact.

`insight()` reads the partials of the months before `recent_from(now)` and the facts of the months since (what
time changes: health's 90 days, the trend's 112, the 60-day timeline, what is still to come), so the daily
recompute reads a bounded state per record, and an incremental update and a computation from scratch call the
same function on the same state: they agree field by field by construction. Gates apply here, by origin.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.domain.gates import closed_gate, gate_fingerprint
from shared.domain.insights.departures import (
    RISK_TYPES,
    DepartedTie,
    RelationshipRisk,
    at_risk,
    departed,
    opportunities_at_stake,
)
from shared.domain.insights.directory import Directory, EntityType
from shared.domain.insights.facts import (
    ABOUT,
    CALL,
    COMPLETED,
    CUSTOMER,
    DAY_US,
    EMAIL,
    ID,
    INITIATOR,
    KEY,
    KIND,
    KIND_OF,
    LINKED,
    MACHINE,
    MEETING,
    ORIGIN,
    SENDER,
    START,
    TASK,
    TEAM,
    Fact,
    G,
    Linker,
    RecordMeta,
    fact_of,
    micros,
    moment,
    month_of,
)
from shared.domain.insights.health import (
    CADENCE_DAYS,
    HALF_LIFE_DAYS,
    MIN_ACTIVITIES,
    TOO_OLD,
    TREND_BASELINE,
    TREND_MIN_BASELINE,
    TREND_RECENT,
    WEIGHTS,
    WINDOW,
    Driver,
    Factor,
    Health,
    State,
    Trend,
    grade_of,
    trend_of_days,
)
from shared.domain.insights.kpis import (
    DAILY_WINDOW_DAYS,
    EMAIL_READ_MINUTES,
    EMAIL_WRITE_MINUTES,
    MOST_CONTACTED,
    WEEKLY_WINDOW_WEEKS,
    Contacted,
    DayActivity,
    Interaction,
    Kpis,
    SideKpis,
    WeekCount,
)
from shared.domain.insights.model import RecordInsight, Variant
from shared.domain.insights.who_knows_whom import HALF_LIFE_DAYS as WKW_HALF_LIFE_DAYS
from shared.domain.insights.who_knows_whom import MAX_INTRODUCERS, Introducer
from shared.domain.records import Activity, ActivityKind, Source
from shared.domain.tenant_settings import ActivityInfluence, TenantSettings

# Facts are kept one by one for this long before now: the health window (90 days), the trend's 28 + 84 days.
RECENT = TREND_RECENT + TREND_BASELINE
Entry = list[Any]  # [bits, fact]
Partial = dict[str, Any]
Months = Mapping[str, Sequence[Entry]]

_COUNTERS = 12  # team: emails, meetings initiated, attended, calls, tasks, minutes; customer: the same six


def recent_from(now: datetime) -> str:
    """The first month whose facts an insight reads one by one (the months before it: their partials)."""
    return month_of(micros(now - RECENT))


M = TypeVar("M", bound=BaseModel)


def _built(model: type[M], **values: Any) -> M:
    """A model of values that are already what its fields hold, as `model_construct` builds it (every field given,
    no default to fill, no extra), without its per-field loop: the small models of a record are most of the cost of
    a computation otherwise. (The slots are set through their descriptors: a frozen model refuses `setattr`.)"""
    built = _new(model)
    _set_attribute(built, "__dict__", values)
    _FIELDS_SET.__set__(built, set(values))
    _EXTRA.__set__(built, None)
    _PRIVATE.__set__(built, None)
    return built


_new, _set_attribute = object.__new__, object.__setattr__
_FIELDS_SET, _EXTRA, _PRIVATE = (BaseModel.__dict__[name] for name in (
    "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"))


# -- partials ---------------------------------------------------------------------------------------------


def _empty() -> Partial:
    return {"c": [0.0] * _COUNTERS, "n": 0, "w": {}, "ct": {}, "l": None, "hf": None, "hl": None, "th": {},
            "k": {}, "a": 0}


def partials(entries: Iterable[Entry], now_us: int | None = None) -> dict[str, Partial]:
    """The partials of some facts by origin. Without `now_us` every fact is in the past (a month before
    `recent_from`); with it, what is still to come is not counted as done."""
    by_origin: dict[str, list[Entry]] = {}
    for entry in entries:
        origin = entry[1][ORIGIN]
        found = by_origin.get(origin)
        if found is None:
            by_origin[origin] = [entry]
        else:
            found.append(entry)
    return {origin: _partial(sorted(by_origin[origin], key=_entry_key), now_us) for origin in sorted(by_origin)}


def _entry_key(entry: Entry) -> str:
    key: str = entry[1][KEY]
    return key


def _partial(entries: list[Entry], now_us: int | None) -> Partial:
    """One origin's partial of its facts in key order (a tie in time goes to the first or the last key)."""
    part = _empty()
    counters, weeks, contacted, threads, colleagues = part["c"], part["w"], part["ct"], part["th"], part["k"]
    count = about = 0
    last: list[Any] | None = None
    human_first: int | None = None
    human_last: int | None = None
    known_weeks = _WEEKS
    for bits, fact in entries:
        key, activity_id, kind, start, completed, origin, initiator, _, ours, theirs, minutes, g, machine, thread, \
            internal, external = fact
        done = completed and (now_us is None or start <= now_us)
        if bits & ABOUT:
            about += 1
            if done and kind in (EMAIL, MEETING) and not machine:
                decayed = g * 2 ** ((start / DAY_US) / WKW_HALF_LIFE_DAYS)
                for address in internal:
                    tie = colleagues.get(address)
                    if tie is None:
                        colleagues[address] = [1, g, decayed, start]
                    else:
                        tie[0] += 1
                        tie[1] += g
                        tie[2] += decayed
                        if start > tie[3]:
                            tie[3] = start
        if not bits & LINKED:
            continue
        side = 0 if initiator == TEAM else 6
        count += 1
        if kind == EMAIL:
            counters[side] += 1
            counters[side + 5] += EMAIL_WRITE_MINUTES
            counters[11 - side] += EMAIL_READ_MINUTES
            if origin and thread:
                sides = threads.get(thread)
                if sides is None:
                    threads[thread] = [[start, key], None] if initiator == TEAM else [None, [start, key]]
                else:
                    first = sides[initiator]
                    if first is None or start < first[0] or (start == first[0] and key < first[1]):
                        sides[initiator] = [start, key]
        elif kind == MEETING:
            counters[side + 1] += 1
            if ours:
                counters[2] += 1
            if theirs:
                counters[8] += 1
                counters[11] += minutes
            counters[5] += minutes * max(ours, 1)
        elif kind == CALL:
            counters[side + 3] += 1
            counters[5] += minutes
            counters[11] += minutes
        else:
            counters[4] += 1
            counters[5] += minutes
        if not done:
            continue
        week = known_weeks.get(start // DAY_US) or _iso_week(start)
        in_week = weeks.get(week)
        if in_week is None:
            weeks[week] = [1, 0] if initiator == TEAM else [0, 1]
        else:
            in_week[initiator] += 1
        for addresses in (internal, external):
            for address in addresses:
                seen = contacted.get(address)
                if seen is None:
                    contacted[address] = [1, start]
                else:
                    seen[0] += 1
                    if start > seen[1]:
                        seen[1] = start
        if last is None or start > last[0] or (start == last[0] and key > last[1]):
            last = [start, key, activity_id, kind, initiator]
        if not machine:
            if human_first is None or start < human_first:
                human_first = start
            if human_last is None or start > human_last:
                human_last = start
    part["n"], part["a"], part["l"], part["hf"], part["hl"] = count, about, last, human_first, human_last
    return part


_WEEKS: dict[int, str] = {}


def _iso_week(start_us: int) -> str:
    day = start_us // DAY_US
    week = _WEEKS.get(day)
    if week is None:
        year, number, _ = moment(start_us).isocalendar()
        week = _WEEKS[day] = f"{year}-W{number:02d}"
    return week


def _fold(parts: Iterable[Partial], with_colleagues: bool = True) -> Partial:
    """Partials' sums in their order; without `with_colleagues`, their colleagues' ties are left out (empty)."""
    sequence = list(parts)
    if not sequence:
        return _empty()
    total = _copied(sequence[0], with_colleagues)
    weeks, contacted, threads, colleagues = total["w"], total["ct"], total["th"], total["k"]
    for part in sequence[1:]:
        total["c"] = [a + b for a, b in zip(total["c"], part["c"], strict=True)]
        total["n"] += part["n"]
        total["a"] += part["a"]
        for week, (team, customer) in part["w"].items():
            found = weeks.get(week)
            if found is None:
                weeks[week] = [team, customer]
            else:
                found[0] += team
                found[1] += customer
        for address, (count, last) in part["ct"].items():
            found = contacted.get(address)
            if found is None:
                contacted[address] = [count, last]
            else:
                found[0] += count
                if last > found[1]:
                    found[1] = last
        latest = part["l"]
        if latest is not None and (total["l"] is None or latest[:2] > total["l"][:2]):
            total["l"] = latest
        if part["hf"] is not None and (total["hf"] is None or part["hf"] < total["hf"]):
            total["hf"] = part["hf"]
        if part["hl"] is not None and (total["hl"] is None or part["hl"] > total["hl"]):
            total["hl"] = part["hl"]
        for thread, sides in part["th"].items():
            found = threads.get(thread)
            if found is None:
                threads[thread] = list(sides)
                continue
            for side in (TEAM, CUSTOMER):
                first = sides[side]
                if first is not None and (found[side] is None or first < found[side]):
                    found[side] = first
        for address, (count, g, decayed, last) in (part["k"].items() if with_colleagues else ()):
            found = colleagues.get(address)
            if found is None:
                colleagues[address] = [count, g, decayed, last]
            else:
                found[0] += count
                found[1] += g
                found[2] += decayed
                if last > found[3]:
                    found[3] = last
        answered = part.get("r")  # (a settled partial's: its threads whose first messages are both known)
        if answered is not None:
            total["r"] = [a + b for a, b in zip(total.get("r") or [0] * 6, answered, strict=True)]
            total["tc"] = sorted({*total.get("tc", ()), *part["tc"]})
    return total


def _copied(part: Partial, with_colleagues: bool) -> Partial:
    """What `_fold` of this one partial gives (a copy: the fold then adds to it), built without the merge's
    lookups: the first partial of a fold is often the settled one, by far the largest."""
    total = {"c": part["c"][:], "n": part["n"], "w": {week: counts[:] for week, counts in part["w"].items()},
             "ct": {address: found[:] for address, found in part["ct"].items()}, "l": part["l"], "hf": part["hf"],
             "hl": part["hl"], "th": {thread: sides[:] for thread, sides in part["th"].items()},
             "k": {address: found[:] for address, found in part["k"].items()} if with_colleagues else {},
             "a": part["a"]}
    answered = part.get("r")
    if answered is not None:
        total["r"], total["tc"] = answered[:], sorted(set(part["tc"]))
    return total


def settle(base: Mapping[str, Partial], periods: Mapping[str, Mapping[str, Partial]],
           recent_from: str) -> dict[str, Partial]:
    """What an insight reads of the periods before `recent_from` (their facts are not read one by one): per
    origin, `base` and those periods' partials folded in period order, reduced to what facts from `recent_from`
    on can still change or show. Every such fact starts later than every settled one, so a thread whose first
    messages of both sides are known keeps only its counts (and its id, so that a later message in it is not
    taken for a new thread); an open one keeps its first message's time; weeks older than any weekly window
    drawn while `recent_from` stands go."""
    sequences: dict[str, list[Partial]] = defaultdict(list)
    for origin, part in base.items():
        sequences[origin].append(part)
    for period in sorted(periods):
        if period < recent_from:
            for origin, part in periods[period].items():
                sequences[origin].append(part)
    # `recent_from` stands while now - RECENT is in its quarter: the weekly window starts no earlier than this.
    weeks_from = _iso_week(micros(period_start(recent_from) + RECENT - timedelta(weeks=WEEKLY_WINDOW_WEEKS)))
    return {origin: _settled(_fold(sequences[origin]), weeks_from) for origin in sorted(sequences)}


def _settled(total: Partial, weeks_from: str) -> Partial:
    answered = list(total.get("r") or [0] * 6)  # started, answered per responder; the delays' µs per responder
    closed = list(total.get("tc", ()))
    open_threads: dict[str, list[Any]] = {}
    for thread in sorted(total["th"]):
        team, customer = total["th"][thread]
        if team is not None and customer is not None:
            first, responder, reply = (team, CUSTOMER, customer) if (team[0], team[1]) < (customer[0], customer[1]) \
                else (customer, TEAM, team)
            answered[responder] += 1
            answered[2 + responder] += 1
            answered[4 + responder] += reply[0] - first[0]
            closed.append(thread)
        else:
            open_threads[thread] = [None if side is None else [side[0], ""] for side in (team, customer)]
    total["th"] = open_threads
    total["r"], total["tc"] = answered, sorted(closed)
    total["w"] = {week: counts for week, counts in total["w"].items() if week >= weeks_from}
    return total


def period_start(period: str) -> datetime:
    """The first moment of a period (`2026Q4`)."""
    return datetime(int(period[:4]), 3 * (int(period[5:]) - 1) + 1, 1, tzinfo=UTC)


# -- the insight ------------------------------------------------------------------------------------------


class Context:
    """What a computation run shares across records: the directory, the settings and the gates as they stand."""

    def __init__(self, directory: Directory, settings: TenantSettings, now: datetime) -> None:
        self.directory = directory
        self.settings = settings
        self.now = now
        self.now_us = micros(now)
        self.with_exchange = settings.exchange_data_usable
        self.fingerprint = gate_fingerprint(settings)
        self.recent_from = recent_from(now)
        probe = Activity(id="gate", version=0, source=Source.EXCHANGE, kind=ActivityKind.EMAIL, mailbox_owner_id="x",
                         start=now)
        # Mailbox owners (and colleagues) whose Exchange data may be used now.
        self.open_owners = frozenset(u.id for u in directory.users.values()
                                     if closed_gate(settings, probe, u) is None)
        excluded = {g.lower() for g in settings.exchange.excluded_security_group_ids}
        listable = [u for u in directory.users.values()
                    if not u.opted_out and not excluded.intersection(g.lower() for g in u.group_ids)]
        self.colleagues = {u.email: u for u in listable if not departed(u)}
        self.departed = {u.email: u for u in listable if departed(u)}  # their ties tell what a departure risks
        options = settings.relationship_analytics
        self.options = options
        self.cadence = CADENCE_DAYS[options.communication_frequency]
        self.influence = _influences(options.activity_influence)
        self.expected = sum(2 ** (-k * self.cadence / HALF_LIFE_DAYS)
                            for k in range(int(WINDOW.days / self.cadence) + 1))
        self.enhanced = settings.who_knows_whom_mode == "enhanced"
        # Shared by every record of the run (the models are frozen: one per value serves them all).
        self.weeks: dict[tuple[str, int, int], WeekCount] = {}
        self.interactions: dict[tuple[str, int, int, int], Interaction] = {}
        self.days: dict[int, date] = {}
        self.daily: dict[tuple[Any, ...], DayActivity] = {}
        self.contacted: dict[tuple[int, int, str], Contacted] = {}
        self.drivers: dict[tuple[str, int, int, float], Driver] = {}
        self.weeks_from = _iso_week(micros(now - timedelta(weeks=WEEKLY_WINDOW_WEEKS)))
        self.window_from = (self.now_us - DAILY_WINDOW_DAYS * DAY_US) // DAY_US * DAY_US  # its first day's start

    def open(self, origin: str, with_exchange: bool) -> bool:
        return origin == "" or (with_exchange and origin in self.open_owners)


def _influences(influence: ActivityInfluence) -> dict[int, float]:
    return {EMAIL: 1 + influence.email / 100, MEETING: 1 + influence.meeting / 100,
            CALL: 1 + influence.phone_call / 100, TASK: 1 + influence.task / 100}


def insight(ctx: Context, meta: RecordMeta, settled: Mapping[str, Partial], recent: Sequence[Entry],
            previous: RecordInsight | None) -> RecordInsight:
    """A record's insights from its ledger: `settled` (what `settle` keeps of the periods before
    `ctx.recent_from`) and the facts of the periods since. Sums are folded per origin in period order, then
    across origins: folding early periods ahead of time (the horizon, the settled periods) gives the same sums,
    to the last bit, as folding them now."""
    recent_parts = partials(recent, ctx.now_us)
    by_origin = [(origin, [p for p in (settled.get(origin), recent_parts.get(origin)) if p is not None])
                 for origin in sorted({*settled, *recent_parts})]
    prior_crm = previous.crm if previous else None
    crm_origins = [(o, p) for o, p in by_origin if ctx.open(o, False)]
    crm, crm_total = _variant(ctx, meta, crm_origins, recent, False, prior_crm)
    full = None
    if ctx.with_exchange:
        prior = previous.with_exchange if previous else None
        chosen = [(o, p) for o, p in by_origin if ctx.open(o, True)]
        # No open mailbox's data (every recent fact's origin has a partial): the same sums, facts and prior trend.
        same = len(chosen) == len(crm_origins) and (prior.health.trend if prior else None) == (
            prior_crm.health.trend if prior_crm else None)
        full = crm if same else _variant(ctx, meta, chosen, recent, True, prior,
                                         prefix=crm_total if crm_origins else None)[0]
    basic = enhanced = risk_basic = risk_enhanced = None
    has_targets = bool(meta.targets) or (meta.entity_type == "account" and bool(meta.email_domains)
                                         and any(p["a"] for o, ps in by_origin if ctx.open(o, True) for p in ps))
    if has_targets:
        basic, lost = _introducers(ctx, by_origin, decay=False, exchange=False)
        risk_basic = _risk(ctx, meta, lost, basic)
        if ctx.with_exchange:
            enhanced, lost = _introducers(ctx, by_origin, decay=ctx.enhanced, exchange=ctx.enhanced)
            risk_enhanced = _risk(ctx, meta, lost, enhanced)
    return _built(
        RecordInsight,
        entity_type=meta.entity_type, id=meta.id, name=meta.name, computed_at=ctx.now,
        gate_fingerprint=ctx.fingerprint, crm=crm, with_exchange=full, introducers_basic=basic,
        introducers_enhanced=enhanced, email_domains=list(meta.email_domains), risk_basic=risk_basic,
        risk_enhanced=risk_enhanced)


def _risk(ctx: Context, meta: RecordMeta, lost: DepartedTie | None, remaining: list[Introducer],
          ) -> RelationshipRisk | None:
    if lost is None or meta.entity_type not in RISK_TYPES:
        return None
    return at_risk(lost, remaining, opportunities_at_stake(ctx.directory, meta.entity_type, meta.id))


def fold_by_origin(periods: Mapping[str, Mapping[str, Partial]]) -> dict[str, Partial]:
    """Partials of several periods folded per origin, in period order."""
    sequences: dict[str, list[Partial]] = defaultdict(list)
    for period in sorted(periods):
        for origin, part in periods[period].items():
            sequences[origin].append(part)
    return {origin: _fold(sequences[origin]) for origin in sorted(sequences)}


def horizon_for(now: datetime) -> str:
    """The periods before this one are folded into a ledger's base (two years back: well before `recent_from`)."""
    return month_of(micros(now - timedelta(days=730)))


OriginParts = list[tuple[str, list[Partial]]]  # per origin, its settled partial and its recent one (if any)


def _variant(ctx: Context, meta: RecordMeta, chosen: OriginParts, recent: Sequence[Entry], with_exchange: bool,
             prior: Variant | None, prefix: Partial | None = None) -> tuple[Variant, Partial]:
    """One variant from the partials of the origins it `chosen` (those `ctx.open(origin, with_exchange)`),
    folded in origin order (colleagues' ties are the introducers', not a variant's); a lone one as it is (what
    reads it never changes it). `prefix`: the first origin's partials already folded (a left fold continued
    from it gives the same sums). Also the total it read."""
    if prefix is None:
        parts = [p for _, ps in chosen for p in ps]
    else:
        parts = [prefix, *(p for _, ps in chosen[1:] for p in ps)]
    total = parts[0] if len(parts) == 1 else _fold(parts, with_colleagues=False)
    facts = [f for bits, f in recent if bits & LINKED and ctx.open(f[ORIGIN], with_exchange)]
    facts.sort(key=lambda f: f[KEY])
    sources = sorted({Source.CRM if o == "" else Source.EXCHANGE for o, ps in chosen if any(p["n"] for p in ps)})
    kpis = _kpis(ctx, total, facts, sources)
    health = _health(ctx, meta, total, facts, kpis.customer.response_rate,
                     prior.health.trend if prior else None)
    return _built(Variant, kpis=kpis, health=health), total


def _kpis(ctx: Context, total: Partial, facts: list[Fact], sources: list[Source]) -> Kpis:
    now_us = ctx.now_us
    c = total["c"]
    responses = _responses(total)
    weeks_from, weeks = ctx.weeks_from, ctx.weeks
    weekly = []
    for w, (t, u) in sorted(total["w"].items()):
        if w >= weeks_from:
            found = weeks.get((w, t, u))
            if found is None:  # (frozen: one model per value serves every record of the run)
                found = weeks[(w, t, u)] = _built(WeekCount, week=w, team=t, customer=u)
            weekly.append(found)
    window_from, days = ctx.window_from, ctx.days
    daily: dict[date, list[int]] = {}  # emails sent, received, meetings, calls made, received
    upcoming: Fact | None = None
    for f in facts:
        start = f[START]
        if start > now_us:
            if upcoming is None or (start, f[KEY]) < (upcoming[START], upcoming[KEY]):
                upcoming = f
            continue
        if not f[COMPLETED]:
            continue
        if start >= window_from:
            day = days.get(start // DAY_US)
            if day is None:
                day = days[start // DAY_US] = moment(start).date()
            counter = daily.get(day)
            if counter is None:
                counter = daily[day] = [0, 0, 0, 0, 0]  # (a day of tasks only is shown, with nothing counted)
            kind, team = f[KIND], f[INITIATOR] == TEAM
            if kind == EMAIL:
                counter[0 if team else 1] += 1
            elif kind == MEETING:
                counter[2] += 1
            elif kind == CALL:
                counter[3 if team else 4] += 1
    last = total["l"]
    team, customer = _top(ctx, total["ct"])
    return _built(
        Kpis,
        team=_side(c[0:6], responses.get(TEAM)), customer=_side(c[6:12], responses.get(CUSTOMER)),
        weekly=weekly,
        daily=[_day(ctx, day, counts) for day, counts in sorted(daily.items())],
        last_interaction=None if last is None else _interaction(ctx, last[2], last[3], last[0], last[4]),
        next_interaction=None if upcoming is None else _interaction(ctx, upcoming[ID], upcoming[KIND],
                                                                    upcoming[START], upcoming[INITIATOR]),
        most_contacted_team=team, most_contacted_customer=customer,
        activities=total["n"], sources=sources)


def _day(ctx: Context, day: date, counts: list[int]) -> DayActivity:
    shown = (day, *counts)
    known = ctx.daily.get(shown)
    if known is None:
        known = ctx.daily[shown] = _built(DayActivity, day=day, emails_sent=counts[0], emails_received=counts[1],
                                          meetings=counts[2], phone_calls_made=counts[3],
                                          phone_calls_received=counts[4])
    return known


def _side(c: list[float], response: tuple[float, float | None] | None) -> SideKpis:
    return _built(
        SideKpis,
        emails_sent=int(c[0]), meetings_initiated=int(c[1]), meetings_attended=int(c[2]),
        phone_calls_made=int(c[3]), tasks=int(c[4]), time_spent_minutes=round(c[5], 1),
        response_rate=None if response is None else round(response[0], 3),
        average_first_response_hours=None if response is None or response[1] is None else round(response[1], 2))


def _interaction(ctx: Context, activity_id: str, kind: int, start: int, initiator: int) -> Interaction:
    known = ctx.interactions.get((activity_id, kind, start, initiator))
    if known is None:
        known = ctx.interactions[(activity_id, kind, start, initiator)] = _built(
            Interaction, activity_id=activity_id, kind=KIND_OF[kind], at=moment(start),
            direction="outgoing" if initiator == TEAM else "incoming")
    return known


def _responses(total: Partial) -> dict[int, tuple[float, float | None]]:
    """Per side: the share of the other side's threads it answered, and the mean time to its first answer (the
    delays summed in whole microseconds: the same in any order)."""
    counts = total.get("r") or [0] * 6  # the settled threads'
    started, answered, delays = [counts[0], counts[1]], [counts[2], counts[3]], [counts[4], counts[5]]
    closed = set(total.get("tc") or ())
    for thread, (team, customer) in total["th"].items():
        if (team is None and customer is None) or thread in closed:
            continue
        if customer is None or (team is not None and (team[0], team[1]) < (customer[0], customer[1])):
            first, responder, reply = team, CUSTOMER, customer
        else:
            first, responder, reply = customer, TEAM, team
        started[responder] += 1
        if reply is not None:
            answered[responder] += 1
            delays[responder] += reply[0] - first[0]
    result: dict[int, tuple[float, float | None]] = {}
    for side in (TEAM, CUSTOMER):
        if started[side]:
            result[side] = (answered[side] / started[side],
                            delays[side] / answered[side] / 3_600_000_000 if answered[side] else None)
    return result


def _top(ctx: Context, contacted: Mapping[str, list[int]]) -> tuple[list[Contacted], list[Contacted]]:
    """The most contacted of the team and of the customer: by interactions, then the latest, then the address."""
    users = ctx.directory.users_by_email
    ours: list[tuple[int, int, str]] = []
    theirs: list[tuple[int, int, str]] = []
    for address, (count, last) in contacted.items():
        (ours if address in users else theirs).append((-count, -last, address))
    ours.sort()
    theirs.sort()
    return _contacted(ctx, ours[:MOST_CONTACTED], True), _contacted(ctx, theirs[:MOST_CONTACTED], False)


def _contacted(ctx: Context, rows: list[tuple[int, int, str]], internal: bool) -> list[Contacted]:
    directory, known = ctx.directory, ctx.contacted
    result = []
    for row in rows:
        found = known.get(row)
        if found is None:
            count, last, address = row
            if internal:
                name = directory.users_by_email[address].display_name
            else:
                contact = directory.contacts_by_email.get(address)
                name = contact.full_name if contact else ""
            found = known[row] = _built(Contacted, address=address, name=name, interactions=-count,
                                        last_interaction=moment(-last))
        result.append(found)
    return result


def _health(ctx: Context, meta: RecordMeta, total: Partial, facts: list[Fact], response_rate: float | None,
            previous_trend: Trend | None) -> Health:
    if not meta.applicable:
        return _built(Health, state="notApplicable", score=None, grade=None, trend="notApplicable",
                      trend_detail=None, factors=[], drivers=[])
    now, now_us = ctx.now, ctx.now_us
    created_on = meta.created_on
    if total["hl"] is None:
        if created_on is not None and now - created_on > TOO_OLD:
            return _state("olderThanTwoYears", "notApplicable")
        return _state("noClosedActivities", "notEnoughInformation")
    last = moment(total["hl"])
    if now - last > TOO_OLD and (created_on is None or now - created_on > TOO_OLD):
        return _state("olderThanTwoYears", "notApplicable")
    window_us = WINDOW // timedelta(microseconds=1)
    done = [f for f in facts if f[COMPLETED] and f[START] <= now_us and not f[MACHINE]]
    in_window = [f for f in done if now_us - f[START] <= window_us]
    if len(in_window) < MIN_ACTIVITIES:
        return _state("notEnoughInformation", "notEnoughInformation")
    score, factors, drivers = _score(ctx, in_window, response_rate)
    trend, detail = _trend(ctx, done, moment(total["hf"]), created_on, previous_trend)
    options = ctx.options
    return _built(Health, state="scored", score=score, grade=grade_of(score, options.grading), trend=trend,
                  trend_detail=detail, factors=factors, drivers=drivers)


def _state(state: State, trend: Trend) -> Health:
    return _built(Health, state=state, score=None, grade=None, trend=trend, trend_detail=None, factors=[],
                  drivers=[])


def _score(ctx: Context, done: list[Fact], response_rate: float | None) -> tuple[int, list[Factor], list[Driver]]:
    now_us, cadence, influence = ctx.now_us, ctx.cadence, ctx.influence
    last = max(f[START] for f in done)
    days_since = (now_us - last) / DAY_US
    recency = float(2 ** (-max(0.0, days_since - cadence) / cadence))
    weighted = [(round(influence[f[KIND]] * f[G] * 2 ** (-((now_us - f[START]) / DAY_US) / HALF_LIFE_DAYS), 4), f)
                for f in done]
    weight_sum = sum(w for w, _ in weighted)
    frequency = min(1.0, weight_sum / ctx.expected)
    ours = sum(influence[f[KIND]] for f in done if f[SENDER] == 1)
    theirs = sum(influence[f[KIND]] for f in done if f[SENDER] == 2)
    reciprocity = min(ours, theirs) / max(ours, theirs) if max(ours, theirs) > 0 else 0.0
    values = {"recency": recency, "frequency": frequency, "reciprocity": reciprocity}
    details = {
        "recency": f"last completed activity {days_since:.1f} days ago; expected every {cadence} days",
        "frequency": f"{weight_sum:.2f} weighted recent activities of {ctx.expected:.2f} expected",
        "reciprocity": f"initiated by us {ours:.1f}, by the customer {theirs:.1f} (weighted)",
    }
    if response_rate is not None:
        values["responsiveness"] = response_rate
        details["responsiveness"] = f"the customer answered {response_rate:.0%} of our email threads"
    total_weight = sum(WEIGHTS[name] for name in values)
    factors = [_built(Factor, name=name, value=round(value, 4), weight=WEIGHTS[name],
                                      points=round(100 * WEIGHTS[name] * value / total_weight, 2),
                                      detail=details[name])
               for name, value in values.items()]
    score = round(sum(f.points for f in factors))
    weighted.sort(key=lambda wf: (-wf[0], wf[1][KEY]))
    known = ctx.drivers
    drivers = []
    for w, f in weighted[:10]:
        shown = (f[ID], f[KIND], f[START], w)
        driver = known.get(shown)
        if driver is None:
            driver = known[shown] = _built(Driver, activity_id=f[ID], kind=KIND_OF[f[KIND]], at=moment(f[START]),
                                            weight=w)
        drivers.append(driver)
    return max(0, min(100, score)), factors, drivers


def _trend(ctx: Context, done: list[Fact], first: datetime, created_on: datetime | None,
           previous: Trend | None) -> tuple[Trend, str]:
    now, now_us, influence = ctx.now, ctx.now_us, ctx.influence
    if created_on is not None and created_on < first:
        known_days = int((now - created_on) / timedelta(days=1)) + 1
    else:
        known_days = int((now - first) / timedelta(days=1))
    recent_days = TREND_RECENT.days
    baseline_days = min(TREND_BASELINE.days, known_days - recent_days)
    if baseline_days < TREND_MIN_BASELINE.days:
        return "notEnoughInformation", (f"known for {max(0, known_days)} days; a trend compares the last "
                                        f"{recent_days} with at least {TREND_MIN_BASELINE.days} before")
    weights: dict[int, float] = {}
    span = recent_days + baseline_days
    for f in done:
        day = (now_us - f[START]) // DAY_US
        if day < span:
            value = influence[f[KIND]] * f[G]
            if value > weights.get(day, 0.0):
                weights[day] = value
    return trend_of_days(weights, recent_days, baseline_days, previous)


def _introducers(ctx: Context, parts: OriginParts, *, decay: bool, exchange: bool,
                 ) -> tuple[list[Introducer], DepartedTie | None]:
    """Colleagues by the strength of their own tie to the record's people. Exchange-derived strength counts only
    in enhanced mode, from mailboxes whose gates are open, and only for a colleague inside the selected roles.
    Also the strongest tie of a colleague who left, when it is stronger than every remaining one."""
    strength: dict[str, float] = {}
    count: dict[str, int] = {}
    last: dict[str, int] = {}
    open_owners, colleagues, gone = ctx.open_owners, ctx.colleagues, ctx.departed
    for origin, both in parts:
        if origin and not (exchange and origin in open_owners):
            continue
        for address, (n, g, decayed, latest) in (item for part in both for item in part["k"].items()):
            user = colleagues.get(address) or gone.get(address)
            if user is None or (origin and user.id not in open_owners):
                continue
            strength[address] = strength.get(address, 0.0) + (decayed if decay else g)
            count[address] = count.get(address, 0) + n
            last[address] = max(last.get(address, latest), latest)
    scale = 2 ** (-(ctx.now_us / DAY_US) / WKW_HALF_LIFE_DAYS) if decay else 1.0
    ranked = sorted((-(strength[a] * scale), -last[a], (colleagues.get(a) or gone[a]).id, a) for a in strength)
    result: list[Introducer] = []
    lost = None
    for negative, _, uid, address in ranked:
        shown = round(100 * (1 - math.exp(negative / 3)))
        if address in gone:
            if lost is None and not result:
                left = gone[address]
                lost = _built(DepartedTie, user_id=uid, name=left.display_name, strength=shown,
                              left_on=left.deactivated_on)
            continue
        user = colleagues[address]
        result.append(_built(Introducer, user_id=uid, name=user.display_name, email=user.email, strength=shown,
                             interactions=count[address], last_interaction=moment(last[address])))
        if len(result) == MAX_INTRODUCERS:
            break
    return result, lost


# -- keeping ledgers up to date ---------------------------------------------------------------------------

Edits = dict[tuple[EntityType, str], dict[str, dict[str, Entry | None]]]  # record -> month -> activity key -> entry


def ledger_edits(linker: Linker, changes: Iterable[tuple[str, Activity | None, Activity | None]],
                 before: Linker | None = None) -> Edits:
    """What changed activities change in records' ledgers: the old version (a replaced or removed one) leaves
    the records and month it counted in, the current one (if usable) enters those it counts in now. `before`:
    the records as they were when the old versions were counted, if records changed since (their people)."""
    edits: Edits = defaultdict(lambda: defaultdict(dict))
    for key, old, new in changes:
        if old is not None:
            linked, about = linker.links(old)
            if before is not None:
                was_linked, was_about = before.links(old)
                linked, about = linked | was_linked, about | was_about
            month = month_of(micros(old.start))
            for record in linked | about:
                edits[record][month].setdefault(key, None)
        if new is None:
            continue
        linked, about = linker.links(new)
        month = month_of(micros(new.start))
        if not linker.usable(new):
            for record in linked | about:
                edits[record][month].setdefault(key, None)
            continue
        fact = fact_of(linker.directory, new, linker.classified)
        for record, bits in linker.memberships(new):
            edits[record][month][key] = [bits, fact]
    return {record: dict(months) for record, months in edits.items()}


def needs_archive(state: Any, edits: Mapping[str, Any], horizon: str) -> bool:
    """Whether applying these edits needs the ledger's archive: a change before its horizon, or a horizon that
    moves."""
    return horizon > state.horizon or any(period < state.horizon for period in edits)


def settled_for(state: Any, recent_from: str) -> dict[str, Partial]:
    """The state's settled partials for `recent_from`, as stored when they were settled for it, else settled
    again from its partials (and kept in it)."""
    if state.settled is None or state.settled_from != recent_from:
        if not state.complete:
            raise ValueError("the settled partials of a ledger read without its partials are out of date")
        state.settled, state.settled_from = settle(state.base, state.partials, recent_from), recent_from
    settled: dict[str, Partial] = state.settled
    return settled


def needs_partials(state: Any, edits: Iterable[str], horizon: str, recent_from: str) -> bool:
    """Whether applying edits of these periods needs every partial of the ledger (else only the facts of the
    periods edited, its horizon and its settled partials): they settle again (an edit before the periods settled,
    or partials settled for another `recent_from`), or the horizon moves."""
    return (horizon > state.horizon or state.settled is None or state.settled_from != recent_from
            or any(period < state.settled_from for period in edits))


def apply_edits(state: Any, edits: Mapping[str, Mapping[str, Entry | None]], horizon: str,
                recent_from: str) -> None:
    """Applies one record's edits to its stored state: the periods' facts, and their partials recomputed from
    them (never adjusted: a partial is a function of its period's facts); periods that fell behind the horizon
    move to the archive and the base is folded again from it; the settled partials, when the edits change
    them, settled again (for `recent_from`). A state read without its partials takes only edits that
    `needs_partials` says need none."""
    if not state.complete and needs_partials(state, edits, horizon, recent_from):
        raise ValueError("a ledger read without its partials cannot take these edits")
    if any(period < state.settled_from for period in edits) or horizon > state.horizon:
        state.settled = None
    refold = False
    for period, changed in edits.items():
        entries = {entry[1][KEY]: entry for entry in state.months.get(period, [])}
        for key, entry in changed.items():
            if entry is None:
                entries.pop(key, None)
            else:
                entries[key] = entry
        state.months[period] = [entries[k] for k in sorted(entries)]
        target = state.partials
        if period < state.horizon:
            target, refold = state.archive, True
        if entries:
            target[period] = partials(state.months[period])
        else:
            target.pop(period, None)
    if horizon > state.horizon:
        for period in [p for p in state.partials if p < horizon]:
            state.archive[period] = state.partials.pop(period)
            refold = True
        state.horizon = horizon
    if refold:
        state.base = fold_by_origin(state.archive)
    settled_for(state, recent_from)
