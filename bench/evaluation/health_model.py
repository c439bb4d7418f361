"""How well the health model tells strong relationships from weak ones, on ties whose truth is known
(`bench.evaluation.ties`), with the proxy tasks of peers.md §3.3 step 5.

The product's own computation (`computation.compute`, with Exchange data usable and the default options) runs over
the last 17 weeks, each time on the activities known by then, carrying the previous trend forward as the daily
recompute does: once a day by default (the product's own rhythm, which gives a trend the most chances to
flip), or once a week for a quicker run. Then, over every answer:
- ranking: the area under the ROC curve of the score, against the truth (the tie's rate at that moment is at
  least half the expected cadence) and against the future (at least two touches in the next 30 days), beside
  two baselines (days since the last activity; activities in the last 90 days);
- Spearman's rank correlation between the score and the true rate;
- trend: share of cooling ties called declining, and of warming ties called improving, within 8 weeks of
  their change, and the median delay, beside the same share among steady ties over their last 8 weeks (what
  chance alone would give); false alarms (the share of a steady tie's answers that say improving or
  declining) and trend changes per steady tie and quarter of the time it was followed.
Unscored answers (not enough information) rank below every score: abstaining is not rewarded.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bench.evaluation.ties import SELLER_ROLE, Tie, Ties
from shared.domain.insights.computation import compute
from shared.domain.insights.directory import Directory, EntityType
from shared.domain.insights.health import CADENCE_DAYS, Health
from shared.domain.insights.model import RecordInsight
from shared.domain.records import Account, Activity, Contact, InternalUser
from shared.domain.tenant_settings import TenantSettings

WEEKS = 17
DAILY, WEEKLY = timedelta(days=1), timedelta(weeks=1)
QUARTER = timedelta(days=91)
TRENDS = ("improving", "steady", "declining")
FUTURE = timedelta(days=30)
DETECTION_WINDOW = timedelta(weeks=8)
UNSCORED = -1.0


@dataclass(frozen=True)
class Observation:
    tie: Tie
    at: datetime
    health: Health
    days_since_last: float | None
    recent_activities: int
    future_touches: int


@dataclass
class Evaluation:
    observations: int
    coverage: float  # share of observations with a score
    auc_truth: dict[str, float] = field(default_factory=dict)  # model and baselines
    auc_future: dict[str, float] = field(default_factory=dict)
    spearman: float = 0.0
    cooling_declining: float = 0.0  # detected within 8 weeks
    cooling_delay_weeks: float | None = None  # median, of those detected
    warming_improving: float = 0.0
    warming_delay_weeks: float | None = None
    steady_declining: float = 0.0  # chance: steady ties called declining at least once in their last 8 weeks
    steady_improving: float = 0.0
    steady_false_alarms: float = 0.0
    steady_flips_per_quarter: float = 0.0


def settings_for(now: datetime) -> TenantSettings:
    """Relationship intelligence on, Exchange consented: the model sees everything, with default options."""
    start = now - timedelta(days=800)
    settings = TenantSettings(tenant_id="evaluation").set_prerequisites(True, "FR", start)
    settings = settings.enable("admin", start, security_role_ids=(SELLER_ROLE,))
    return settings.record_consent_granted("admin", (), start)


def observe(data: Ties, now: datetime, step: timedelta = DAILY) -> list[Observation]:
    records = data.records
    directory = Directory.of(
        users=[InternalUser.model_validate(u, strict=False) for u in records["users"]],
        accounts=[Account.model_validate(a, strict=False) for a in records["accounts"]],
        contacts=[Contact.model_validate(c, strict=False) for c in records["contacts"]])
    activities = sorted((Activity.model_validate(a, strict=False) for a in records["activities"]),
                        key=lambda a: a.start)
    starts = [a.start for a in activities]
    touches: dict[str, list[Activity]] = defaultdict(list)
    for activity in activities:
        if activity.in_reply_to_sent_at is None:
            touches[next(p for p in activity.parties if not directory.is_internal(p))].append(activity)
    settings = settings_for(now)
    email_of = {c.id: c.email for c in directory.contacts.values()}
    contacts: set[tuple[EntityType, str]] = {("contact", tie.contact_id) for tie in data.ties}
    previous: dict[tuple[EntityType, str], RecordInsight] = {}
    observations = []
    for n in range(int(_span() / step), -1, -1):
        at = now - n * step
        known = activities[:bisect.bisect_right(starts, at)]
        results = compute(directory, settings, known, at, previous, only=contacts)
        previous = {i.key: i for i in results}
        for tie in data.ties:
            insight = previous[("contact", tie.contact_id)]
            assert insight.with_exchange is not None
            theirs = touches[email_of[tie.contact_id] or ""]
            past = [a.start for a in theirs if a.start <= at]
            observations.append(Observation(
                tie, at, insight.with_exchange.health,
                (at - max(past)).total_seconds() / 86400 if past else None,
                sum(1 for moment in past if at - moment <= timedelta(days=90)),
                sum(1 for a in theirs if at < a.start <= at + FUTURE)))
    return observations


def _span() -> timedelta:
    return timedelta(weeks=WEEKS - 1)


def evaluate(data: Ties, now: datetime, step: timedelta = DAILY) -> Evaluation:
    observations = observe(data, now, step)
    weekly_cadence = 7 / CADENCE_DAYS[settings_for(now).relationship_analytics.communication_frequency]
    truth = [o.tie.rate_at(o.at) >= weekly_cadence / 2 for o in observations]
    future = [o.future_touches >= 2 for o in observations]
    predictors = {
        "model": [float(o.health.score) if o.health.score is not None else UNSCORED for o in observations],
        "recency": [-o.days_since_last if o.days_since_last is not None else -1e9 for o in observations],
        "volume90d": [float(o.recent_activities) for o in observations],
    }
    result = Evaluation(len(observations), sum(o.health.score is not None for o in observations) / len(observations))
    for name, scores in predictors.items():
        result.auc_truth[name] = auc(scores, truth)
        result.auc_future[name] = auc(scores, future)
    result.spearman = spearman(predictors["model"], [o.tie.rate_at(o.at) for o in observations])
    result.cooling_declining, result.cooling_delay_weeks = _detection(observations, now, "cooling", "declining")
    result.warming_improving, result.warming_delay_weeks = _detection(observations, now, "warming", "improving")
    steady = [o for o in observations if o.tie.scenario.startswith("steady") and o.health.score is not None]
    result.steady_declining, result.steady_improving = (_by_chance(steady, now, trend)
                                                        for trend in ("declining", "improving"))
    result.steady_false_alarms = (sum(o.health.trend in ("improving", "declining") for o in steady) / len(steady)
                                  if steady else 0.0)
    result.steady_flips_per_quarter = _changes_per_quarter(
        [o for o in observations if o.tie.scenario.startswith("steady")])
    return result


def _changes_per_quarter(observations: Sequence[Observation]) -> float:
    """Changes between improving, steady and declining from one answer to the next, per quarter of the time a
    tie was followed: only pairs of consecutive answers that both say one of these count, for changes and time."""
    by_tie: dict[str, list[Observation]] = defaultdict(list)
    for o in observations:
        by_tie[o.tie.contact_id].append(o)
    changes, followed = 0, timedelta(0)
    for answers in by_tie.values():
        answers.sort(key=lambda o: o.at)
        for a, b in itertools.pairwise(answers):
            if a.health.trend in TRENDS and b.health.trend in TRENDS:
                followed += b.at - a.at
                changes += a.health.trend != b.health.trend
    return changes * (QUARTER / followed) if followed else 0.0


def _detection(observations: Sequence[Observation], now: datetime, scenario: str, trend: str,
               ) -> tuple[float, float | None]:
    """Of the ties of a scenario whose first 8 weeks after the change were all observed: the share whose trend
    said so within those 8 weeks, and the median delay in weeks."""
    first_seen = now - _span()
    ties = {o.tie.contact_id: o.tie for o in observations if o.tie.scenario == scenario
            and o.tie.changed_at >= first_seen and now - o.tie.changed_at >= DETECTION_WINDOW}
    delays = []
    for contact_id, tie in ties.items():
        hits = [o.at - tie.changed_at for o in observations if o.tie.contact_id == contact_id
                and o.health.trend == trend and timedelta(0) <= o.at - tie.changed_at <= DETECTION_WINDOW]
        if hits:
            delays.append(min(hits) / timedelta(weeks=1))
    return (len(delays) / len(ties) if ties else 0.0), (statistics.median(delays) if delays else None)


def _by_chance(steady: Sequence[Observation], now: datetime, trend: str) -> float:
    """The share of steady ties whose trend said `trend` at least once in the last 8 weeks: what a detection
    rate above must be compared with."""
    last_weeks = [o for o in steady if now - o.at <= DETECTION_WINDOW]
    ties = {o.tie.contact_id for o in last_weeks}
    said = {o.tie.contact_id for o in last_weeks if o.health.trend == trend}
    return len(said) / len(ties) if ties else 0.0


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Probability that a positive outranks a negative (ties count half): Mann–Whitney U over n₊·n₋."""
    ranks = _ranks(scores)
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return 0.5
    rank_sum = sum(r for r, positive in zip(ranks, labels, strict=True) if positive)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else 0.0


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks
