"""Relationship health (SPEC 4.2): a deterministic, explainable 0–100 score.

    score = round(100 × Σ wᵢ·fᵢ / Σ wᵢ) over the factors that have data:
      recency        R = 2^(−max(0, days since last completed activity − c) / c)          w = 0.35
      frequency      F = min(1, Σ influence(a)·g(a)·2^(−age(a)/h) / Σₖ 2^(−k·c/h))          w = 0.35
      reciprocity    Q = min(ours, theirs) / max(ours, theirs), by who initiated           w = 0.15
      responsiveness P = the customer's response rate on Exchange threads (when known)    w = 0.15

c is the tenant's communication frequency in days, h = 21 days (a short half-life: health reacts in weeks),
influence(a) = 1 + the tenant's influence percent for the activity's type, g(a) = 1 for up to 4 recipients
and 4/n beyond (mass mail says little about a tie), over the last 90 days. Frequency is measured against a
seller who contacts the customer exactly every c days, so each cadence has the same scale.

The trend follows the number and value of recent contact, by 24-hour day counted back from now: each day with
a completed activity weighs its most valuable activity, w = influence·g (a thread of replies on one day counts
once). S is the weight of the last 28 days, B of the 84 days before (fewer when the relationship is younger: it
is known since the record's creation when that came first, else since the day after its first contact, a
contact day by construction; with less than 28 such days there is no earlier pace to compare with). If the pace
had not changed, each day with contact would fall in the recent window with probability p = 28 / (28 + baseline
days), so

    z = (S − p·(S + B)) / √(p·(1 − p)·Σ w²),   pace ratio = (S / p) / (B / (1 − p))

(the weighted binomial test: scaling every weight, as the influence settings do, leaves z unchanged). Improving
needs z ≥ 2.5 and a pace at least 1.5 times the earlier one; declining needs z ≤ −2 and at most 2/3 of it; once
entered, a trend holds while |z| ≥ 1 in its direction (hysteresis), so it moves slowly and random gaps do not
flip it. The thresholds differ because a quarter-share count is skewed: a high z comes by chance more often
than a low one, and a weekly contact that falls silent for four weeks reaches only z = −2 (12 days, none
recent), which must read as declining; Improving needs more, or steady ties would be called improving too often
(docs/insights.md has the measured rates). With fewer than 4 days with contact there is not enough information.
`bench.evaluation.health_model` measures all this on relationships whose truth is known
(`python bench/health_eval.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from shared.domain.insights.base import InsightModel
from shared.domain.insights.directory import Directory
from shared.domain.insights.signals import from_a_machine, mass_mail_weight
from shared.domain.records import Activity, ActivityKind
from shared.domain.tenant_settings import ActivityInfluence, CommunicationFrequency, Grading

WINDOW = timedelta(days=90)
HALF_LIFE_DAYS = 21.0
TREND_RECENT = timedelta(days=28)
TREND_BASELINE = timedelta(days=84)  # the 84 days before the recent 28
TREND_IMPROVING_Z, TREND_DECLINING_Z, TREND_LEAVE_Z = 2.5, 2.0, 1.0
TREND_MIN_RATIO = 1.5
TREND_MIN_DAYS = 4
TREND_MIN_BASELINE = timedelta(days=28)
MIN_ACTIVITIES = 3
TOO_OLD = timedelta(days=730)
WEIGHTS = {"recency": 0.35, "frequency": 0.35, "reciprocity": 0.15, "responsiveness": 0.15}
CADENCE_DAYS = {CommunicationFrequency.DAILY: 1, CommunicationFrequency.WEEKLY: 7,
                CommunicationFrequency.EVERY_TWO_WEEKS: 14, CommunicationFrequency.MONTHLY: 30,
                CommunicationFrequency.QUARTERLY: 91}

State = Literal["scored", "notEnoughInformation", "noClosedActivities", "olderThanTwoYears", "notApplicable"]
Trend = Literal["improving", "steady", "declining", "notEnoughInformation", "notApplicable"]
Grade = Literal["good", "fair", "poor"]



class Factor(InsightModel):
    name: str
    value: float  # 0..1
    weight: float
    points: float  # contribution to the score
    detail: str


class Driver(InsightModel):
    activity_id: str
    kind: ActivityKind
    at: datetime
    weight: float  # how much this activity adds to frequency today


class Health(InsightModel):
    state: State
    score: int | None = None
    grade: Grade | None = None
    trend: Trend = "notEnoughInformation"
    trend_detail: str | None = None  # what the trend was read from, in words
    factors: list[Factor] = Field(default_factory=list)
    drivers: list[Driver] = Field(default_factory=list)


def grade_of(score: int, grading: Grading) -> Grade:
    if score >= grading.good_min:
        return "good"
    return "fair" if score >= grading.fair_min else "poor"


def _influence(kind: ActivityKind, influence: ActivityInfluence) -> float:
    percent = {ActivityKind.EMAIL: influence.email, ActivityKind.APPOINTMENT: influence.meeting,
               ActivityKind.PHONE_CALL: influence.phone_call, ActivityKind.TASK: influence.task}[kind]
    return 1 + percent / 100


def _decay(age: timedelta) -> float:
    return float(2 ** (-(age.total_seconds() / 86400) / HALF_LIFE_DAYS))


def _score_at(directory: Directory, activities: Sequence[Activity], now: datetime, cadence: int,
              influence: ActivityInfluence, response_rate: float | None) -> tuple[int, list[Factor], list[Driver]]:
    done = [a for a in activities if a.completed and a.start <= now and now - a.start <= WINDOW]
    last = max(a.start for a in done)
    days_since = (now - last).total_seconds() / 86400
    recency = float(2 ** (-max(0.0, days_since - cadence) / cadence))
    drivers = [Driver(activity_id=a.id, kind=a.kind, at=a.start,
                      weight=round(_influence(a.kind, influence) * mass_mail_weight(a) * _decay(now - a.start), 4))
               for a in done]
    expected = sum(2 ** (-k * cadence / HALF_LIFE_DAYS) for k in range(int(WINDOW.days / cadence) + 1))
    frequency = min(1.0, sum(d.weight for d in drivers) / expected)
    ours = sum(_influence(a.kind, influence) for a in done if a.sender and directory.is_internal(a.sender))
    theirs = sum(_influence(a.kind, influence) for a in done if a.sender and not directory.is_internal(a.sender))
    reciprocity = min(ours, theirs) / max(ours, theirs) if max(ours, theirs) > 0 else 0.0
    values = {"recency": recency, "frequency": frequency, "reciprocity": reciprocity}
    details = {
        "recency": f"last completed activity {days_since:.1f} days ago; expected every {cadence} days",
        "frequency": f"{sum(d.weight for d in drivers):.2f} weighted recent activities of {expected:.2f} expected",
        "reciprocity": f"initiated by us {ours:.1f}, by the customer {theirs:.1f} (weighted)",
    }
    if response_rate is not None:
        values["responsiveness"] = response_rate
        details["responsiveness"] = f"the customer answered {response_rate:.0%} of our email threads"
    total_weight = sum(WEIGHTS[name] for name in values)
    factors = [Factor(name=name, value=round(value, 4), weight=WEIGHTS[name],
                      points=round(100 * WEIGHTS[name] * value / total_weight, 2), detail=details[name])
               for name, value in values.items()]
    score = round(sum(f.points for f in factors))
    drivers.sort(key=lambda d: d.weight, reverse=True)
    return max(0, min(100, score)), factors, drivers[:10]


def compute_health(directory: Directory, activities: Sequence[Activity], now: datetime, *, applicable: bool,
                   created_on: datetime | None, frequency: CommunicationFrequency, influence: ActivityInfluence,
                   grading: Grading, response_rate: float | None = None, previous_trend: Trend | None = None,
                   ) -> Health:
    if not applicable:
        return Health(state="notApplicable", trend="notApplicable")
    usable = [a for a in activities if not from_a_machine(a)]
    done = [a for a in usable if a.completed and a.start <= now]
    if not done:
        if created_on is not None and now - created_on > TOO_OLD:
            return Health(state="olderThanTwoYears", trend="notApplicable")
        return Health(state="noClosedActivities")
    last = max(a.start for a in done)
    if now - last > TOO_OLD and (created_on is None or now - created_on > TOO_OLD):
        return Health(state="olderThanTwoYears", trend="notApplicable")
    if sum(1 for a in done if now - a.start <= WINDOW) < MIN_ACTIVITIES:
        return Health(state="notEnoughInformation")
    cadence = CADENCE_DAYS[frequency]
    score, factors, drivers = _score_at(directory, usable, now, cadence, influence, response_rate)
    trend, trend_detail = _trend(usable, now, created_on, influence, previous_trend)
    return Health(state="scored", score=score, grade=grade_of(score, grading), trend=trend,
                  trend_detail=trend_detail, factors=factors, drivers=drivers)


def _trend(activities: Sequence[Activity], now: datetime, created_on: datetime | None,
           influence: ActivityInfluence, previous: Trend | None) -> tuple[Trend, str]:
    done = [a for a in activities if a.completed and a.start <= now]
    if not done:
        return "notEnoughInformation", "no completed activity yet"
    first = min(a.start for a in done)
    if created_on is not None and created_on < first:
        known_days = _days_back(now, created_on) + 1
    else:  # the first contact's own day is a contact day by construction: the history starts after it
        known_days = _days_back(now, first)
    recent_days = TREND_RECENT.days
    baseline_days = min(TREND_BASELINE.days, known_days - recent_days)
    if baseline_days < TREND_MIN_BASELINE.days:
        return "notEnoughInformation", (f"known for {max(0, known_days)} days; a trend compares the last "
                                        f"{recent_days} with at least {TREND_MIN_BASELINE.days} before")
    weights: dict[int, float] = {}  # each day with contact (days back from now): its most valuable activity
    for a in done:
        day = _days_back(now, a.start)
        if day < recent_days + baseline_days:
            weights[day] = max(weights.get(day, 0.0), _influence(a.kind, influence) * mass_mail_weight(a))
    return trend_of_days(weights, recent_days, baseline_days, previous)


def trend_of_days(weights: dict[int, float], recent_days: int, baseline_days: int, previous: Trend | None,
                  ) -> tuple[Trend, str]:
    """The trend from the days with contact (days back from now → the day's most valuable activity): the recent
    days' share of the weight against what their share of the time would give (a z-score), with hysteresis.
    Summed in day order, so that every way of getting the days gives the same answer to the last bit."""
    span = recent_days + baseline_days
    if len(weights) < TREND_MIN_DAYS:
        return "notEnoughInformation", (f"contact on {len(weights)} of the last {span} "
                                        f"days; a trend needs {TREND_MIN_DAYS}")
    ordered = sorted(weights.items())
    recent = sum(w for day, w in ordered if day < recent_days)
    baseline = sum(w for _, w in ordered) - recent
    share = recent_days / span
    z = (recent - share * (recent + baseline)) / math.sqrt(share * (1 - share) * sum(w * w for _, w in ordered))
    pace = (recent / share) / (baseline / (1 - share)) if baseline > 0 else math.inf
    recent_count = sum(1 for day in weights if day < recent_days)
    detail = (f"contact on {recent_count} of the last {recent_days} days against {len(weights) - recent_count} "
              f"of the {baseline_days} before: "
              f"{'none before' if baseline == 0 else f'{pace:.2f}× the earlier pace'}, z = {z:+.2f}")
    # (A trend that its thresholds give now is not "held": so the same days give the same answer however many
    # times they are computed in a row.)
    if _at_least(z, TREND_IMPROVING_Z) and _at_least(pace, TREND_MIN_RATIO):
        return "improving", detail
    if _at_least(-z, TREND_DECLINING_Z) and _at_least(1 / pace if pace else math.inf, TREND_MIN_RATIO):
        return "declining", detail
    if previous == "improving" and _at_least(z, TREND_LEAVE_Z):
        return "improving", f"{detail} (held while z ≥ {TREND_LEAVE_Z:g})"
    if previous == "declining" and _at_least(-z, TREND_LEAVE_Z):
        return "declining", f"{detail} (held while z ≤ −{TREND_LEAVE_Z:g})"
    return "steady", detail


def _days_back(now: datetime, moment: datetime) -> int:
    """Whole 24-hour days from a moment to now: day 0 is the last 24 hours, so every day is a full one."""
    return int((now - moment) / timedelta(days=1))


def _at_least(value: float, bound: float) -> bool:
    """value ≥ bound, without floating-point rounding deciding the boundary (weights like 1.1 do not add up
    exactly: twelve days at 1.1 give z = −1.9999999999999996, which is the −2 a silent weekly contact reaches)."""
    return value >= bound - 1e-9


def needs_attention(health: Health) -> bool:
    return health.state == "scored" and (health.grade == "poor" or health.trend == "declining")
