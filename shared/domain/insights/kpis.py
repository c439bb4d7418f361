"""Relationship analytics KPIs of one record (SPEC 4.1, step 3), for our team and for the customer."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from shared.domain.insights.base import InsightModel
from shared.domain.insights.directory import Directory
from shared.domain.records import Activity, ActivityKind, Source

EMAIL_WRITE_MINUTES = 5.0
EMAIL_READ_MINUTES = 2.5
DAILY_WINDOW_DAYS = 60
WEEKLY_WINDOW_WEEKS = 52
MOST_CONTACTED = 3

Side = Literal["team", "customer"]



class SideKpis(InsightModel):
    emails_sent: int = 0
    meetings_initiated: int = 0
    meetings_attended: int = 0
    phone_calls_made: int = 0
    tasks: int = 0
    time_spent_minutes: float = 0.0
    response_rate: float | None = None  # share of the other side's threads this side answered (Exchange only)
    average_first_response_hours: float | None = None


class WeekCount(InsightModel):
    week: str  # ISO week, e.g. 2026-W48
    team: int
    customer: int


class DayActivity(InsightModel):
    day: date
    emails_sent: int = 0
    emails_received: int = 0
    meetings: int = 0
    phone_calls_made: int = 0
    phone_calls_received: int = 0


class Interaction(InsightModel):
    activity_id: str
    kind: ActivityKind
    at: datetime
    direction: Literal["outgoing", "incoming"]


class Contacted(InsightModel):
    address: str
    name: str
    interactions: int
    last_interaction: datetime


class Kpis(InsightModel):
    team: SideKpis
    customer: SideKpis
    weekly: list[WeekCount]
    daily: list[DayActivity]
    last_interaction: Interaction | None
    next_interaction: Interaction | None
    most_contacted_team: list[Contacted]
    most_contacted_customer: list[Contacted]
    activities: int
    sources: list[Source]


@dataclass(frozen=True)
class _Classified:
    activity: Activity
    initiator: Side
    internal: list[str]
    external: list[str]


def _classify(directory: Directory, activity: Activity) -> _Classified:
    parties = activity.parties
    internal = [p for p in parties if directory.is_internal(p)]
    external = [p for p in parties if not directory.is_internal(p)]
    if activity.sender:
        initiator: Side = "team" if directory.is_internal(activity.sender) else "customer"
    else:
        initiator = "team"
    return _Classified(activity, initiator, internal, external)


def compute_kpis(directory: Directory, activities: Sequence[Activity], now: datetime,
                 classified_cache: dict[str, _Classified] | None = None) -> Kpis:
    """`classified_cache` lets a pass over many records classify each activity once."""
    team: defaultdict[str, float] = defaultdict(float)
    customer: defaultdict[str, float] = defaultdict(float)
    sides = {"team": team, "customer": customer}
    weekly: dict[str, Counter[str]] = defaultdict(Counter)
    daily: dict[date, Counter[str]] = defaultdict(Counter)
    contacted: dict[str, list[datetime]] = defaultdict(list)
    cache = {} if classified_cache is None else classified_cache
    classified = []
    for a in activities:
        key = f"{a.source.value}|{a.id}"
        item = cache.get(key)
        if item is None:
            item = cache[key] = _classify(directory, a)
        classified.append(item)
    window_start = (now - timedelta(days=DAILY_WINDOW_DAYS)).date()
    weeks_start = now - timedelta(weeks=WEEKLY_WINDOW_WEEKS)

    for item in classified:
        a, initiator = item.activity, item.initiator
        other: Side = "customer" if initiator == "team" else "team"
        duration = a.duration_minutes or 0.0
        if a.kind is ActivityKind.EMAIL:
            sides[initiator]["emails_sent"] += 1
            sides[initiator]["time"] += EMAIL_WRITE_MINUTES
            sides[other]["time"] += EMAIL_READ_MINUTES
        elif a.kind is ActivityKind.APPOINTMENT:
            sides[initiator]["meetings_initiated"] += 1
            team["meetings_attended"] += 1 if item.internal else 0
            customer["meetings_attended"] += 1 if item.external else 0
            # Our time is multiplied by the number of our attendees; the customer's is not (SPEC 4.1).
            team["time"] += duration * max(len(item.internal), 1)
            customer["time"] += duration if item.external else 0.0
        elif a.kind is ActivityKind.PHONE_CALL:
            sides[initiator]["phone_calls_made"] += 1
            team["time"] += duration
            customer["time"] += duration
        else:
            team["tasks"] += 1
            team["time"] += duration
        if a.completed and a.start <= now:
            if _iso_week(a.start) >= _iso_week(weeks_start):  # whole weeks: the oldest one is not cut
                weekly[_iso_week(a.start)][initiator] += 1
            if a.start.date() >= window_start:
                _count_day(daily[a.start.date()], a.kind, initiator)
            for address in item.internal + item.external:
                contacted[address].append(a.start)

    responses = _responses([c for c in classified if c.activity.source is Source.EXCHANGE])
    done = [c for c in classified if c.activity.completed and c.activity.start <= now]
    upcoming = [c for c in classified if c.activity.start > now]
    last = max(done, key=lambda c: c.activity.start, default=None)
    nxt = min(upcoming, key=lambda c: c.activity.start, default=None)
    return Kpis(
        team=_side(team, responses.get("team")),
        customer=_side(customer, responses.get("customer")),
        weekly=[WeekCount(week=w, team=c["team"], customer=c["customer"]) for w, c in sorted(weekly.items())],
        daily=[DayActivity(day=d, **{k: v for k, v in c.items()}) for d, c in sorted(daily.items())],
        last_interaction=_interaction(last),
        next_interaction=_interaction(nxt),
        most_contacted_team=_top(directory, contacted, internal=True),
        most_contacted_customer=_top(directory, contacted, internal=False),
        activities=len(activities),
        sources=sorted({a.source for a in activities}),
    )


def _side(totals: dict[str, float], response: tuple[float, float | None] | None) -> SideKpis:
    return SideKpis(
        emails_sent=int(totals["emails_sent"]), meetings_initiated=int(totals["meetings_initiated"]),
        meetings_attended=int(totals["meetings_attended"]), phone_calls_made=int(totals["phone_calls_made"]),
        tasks=int(totals["tasks"]), time_spent_minutes=round(totals["time"], 1),
        response_rate=None if response is None else round(response[0], 3),
        average_first_response_hours=None if response is None or response[1] is None else round(response[1], 2),
    )


def _count_day(counter: Counter[str], kind: ActivityKind, initiator: Side) -> None:
    if kind is ActivityKind.EMAIL:
        counter["emails_sent" if initiator == "team" else "emails_received"] += 1
    elif kind is ActivityKind.APPOINTMENT:
        counter["meetings"] += 1
    elif kind is ActivityKind.PHONE_CALL:
        counter["phone_calls_made" if initiator == "team" else "phone_calls_received"] += 1


def _iso_week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def _responses(exchange: Sequence[_Classified]) -> dict[Side, tuple[float, float | None]]:
    """Response rate and average first-response time per side, over Exchange email threads: a thread started
    by one side is answered when the other side writes in it later."""
    threads: dict[str, list[_Classified]] = defaultdict(list)
    for item in exchange:
        if item.activity.kind is ActivityKind.EMAIL and item.activity.thread_id:
            threads[item.activity.thread_id].append(item)
    started: Counter[Side] = Counter()
    answered: Counter[Side] = Counter()
    delays: dict[Side, list[float]] = defaultdict(list)
    for messages in threads.values():
        messages.sort(key=lambda m: m.activity.start)
        first = messages[0]
        responder: Side = "customer" if first.initiator == "team" else "team"
        started[responder] += 1
        reply = next((m for m in messages[1:] if m.initiator == responder), None)
        if reply is not None:
            answered[responder] += 1
            delays[responder].append((reply.activity.start - first.activity.start).total_seconds() / 3600)
    result: dict[Side, tuple[float, float | None]] = {}
    sides: tuple[Side, Side] = ("team", "customer")
    for side in sides:
        if started[side]:
            side_delays = delays[side]
            result[side] = (answered[side] / started[side], sum(side_delays) / len(side_delays) if side_delays
                            else None)
    return result


def _interaction(item: _Classified | None) -> Interaction | None:
    if item is None:
        return None
    return Interaction(activity_id=item.activity.id, kind=item.activity.kind, at=item.activity.start,
                       direction="outgoing" if item.initiator == "team" else "incoming")


def _top(directory: Directory, contacted: dict[str, list[datetime]], *, internal: bool) -> list[Contacted]:
    rows = []
    for address, moments in contacted.items():
        if directory.is_internal(address) != internal:
            continue
        if internal:
            name = directory.users_by_email[address].display_name
        else:
            contact = directory.contacts_by_email.get(address)
            name = contact.full_name if contact else ""
        rows.append(Contacted(address=address, name=name, interactions=len(moments), last_interaction=max(moments)))
    rows.sort(key=lambda r: (-r.interactions, -r.last_interaction.timestamp(), r.address))
    return rows[:MOST_CONTACTED]
