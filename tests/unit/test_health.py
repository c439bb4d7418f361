"""The health model (SPEC 4.2): states, score, grade, trend with hysteresis, explanations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.domain.insights.directory import Directory
from shared.domain.insights.health import compute_health, needs_attention
from shared.domain.records import Activity, InternalUser
from shared.domain.tenant_settings import ActivityInfluence, CommunicationFrequency, Grading

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DIRECTORY = Directory.of(users=[InternalUser(id="ann", version=1, email="ann@contoso.com")])
OURS, THEIRS = "ann@contoso.com", "sam@fabrikam.com"


def email(days_ago: float, *, ours: bool = True, n: int = 0, **extra: Any) -> Activity:
    sender, to = (OURS, THEIRS) if ours else (THEIRS, OURS)
    return Activity.model_validate({"id": f"e{days_ago}-{ours}-{n}", "version": 1, "source": "crm",
                                    "kind": extra.pop("kind", "email"), "sender": sender,
                                    "to": [to, *extra.pop("more", [])], "start": NOW - timedelta(days=days_ago),
                                    **extra}, strict=False)


def health(activities: list[Activity], **options: Any) -> Any:
    defaults: dict[str, Any] = {"applicable": True, "created_on": NOW - timedelta(days=400),
                                "frequency": CommunicationFrequency.WEEKLY, "influence": ActivityInfluence(),
                                "grading": Grading()}
    return compute_health(DIRECTORY, activities, NOW, **{**defaults, **options})


def weekly_both_ways(weeks: int, offset_days: float = 0) -> list[Activity]:
    return [a for w in range(weeks) for a in (email(offset_days + 7 * w), email(offset_days + 7 * w + 1, ours=False))]


def test_explicit_states() -> None:
    assert health([], applicable=False).state == "notApplicable"
    assert health([]).state == "noClosedActivities"
    assert health([email(1), email(2)]).state == "notEnoughInformation"
    assert health([email(800), email(801), email(802)], created_on=NOW - timedelta(days=900)).state == \
        "olderThanTwoYears"
    assert health([email(1, completed=False)] * 3).state == "noClosedActivities"


def test_a_steady_two_way_weekly_relationship_is_good() -> None:
    result = health(weekly_both_ways(12))
    assert result.state == "scored"
    assert result.grade == "good"
    assert result.score >= 80
    assert {f.name for f in result.factors} == {"recency", "frequency", "reciprocity"}
    assert abs(sum(f.points for f in result.factors) - result.score) < 1
    assert result.drivers[0].weight >= result.drivers[-1].weight


def test_one_way_stale_contact_is_poor_and_needs_attention() -> None:
    result = health([email(40), email(45), email(50)])
    assert result.grade == "poor"
    assert needs_attention(result)


def test_the_score_is_deterministic() -> None:
    assert health(weekly_both_ways(6)) == health(weekly_both_ways(6))


def test_the_expected_frequency_changes_the_score() -> None:
    activities = [email(d) for d in (3, 20, 40)] + [email(d, ours=False) for d in (4, 21, 41)]
    daily = health(activities, frequency=CommunicationFrequency.DAILY).score
    monthly = health(activities, frequency=CommunicationFrequency.MONTHLY).score
    assert monthly > daily


def test_activity_influence_weighs_types() -> None:
    calls = [email(d, kind="phoneCall", duration_minutes=10) for d in (10, 20, 30)]
    plain = health(calls).factors
    raised = health(calls, influence=ActivityInfluence(phone_call=50)).factors
    frequency = {f.name: f.value for f in plain}["frequency"]
    assert {f.name: f.value for f in raised}["frequency"] == pytest.approx(frequency * 1.5, rel=1e-3)


def test_mass_mail_counts_less() -> None:
    one_to_one = health([email(d) for d in (1, 2, 3)]).factors
    blast = health([email(d, more=[f"x{i}@other.com" for i in range(19)]) for d in (1, 2, 3)]).factors
    assert {f.name: f.value for f in blast}["frequency"] < {f.name: f.value for f in one_to_one}["frequency"]


def test_responsiveness_joins_when_known() -> None:
    result = health(weekly_both_ways(8), response_rate=0.25)
    assert "responsiveness" in {f.name for f in result.factors}


EARLIER_WEEKLY = [email(d) for d in range(30, 113, 7)]  # 12 days with contact in the 84 days before the last 28


def test_trend_declines_when_a_weekly_contact_falls_silent_for_four_weeks() -> None:
    assert health([*EARLIER_WEEKLY, email(3, ours=False), email(2)]).trend == "steady"
    assert health(EARLIER_WEEKLY).trend == "declining"  # z = −2 exactly
    for percent in (-20, 10, 20):  # weights that do not add up exactly in floating point
        assert health(EARLIER_WEEKLY, influence=ActivityInfluence(email=percent)).trend == "declining", percent
    five_recipients = [email(d, more=[f"x{i}@other.com" for i in range(4)]) for d in range(30, 113, 7)]
    assert health(five_recipients).trend == "declining"


def test_trend_moves_slowly_two_quiet_weeks_are_not_a_decline() -> None:
    assert health(weekly_both_ways(14, offset_days=15)).trend == "steady"


def test_trend_improves_when_contact_picks_up() -> None:
    rare = [email(d) for d in (40, 75, 110)]
    assert health(rare + [email(d) for d in (1, 4, 8, 11, 15, 18)]).trend == "improving"
    assert health([email(d) for d in (1, 2, 3)]).trend == "notEnoughInformation"  # scored, but only 3 days


def test_trend_has_hysteresis() -> None:
    one_recent_day = [*EARLIER_WEEKLY, email(10)]  # z ≈ −1.4: not enough to enter Declining, enough to stay
    assert health(one_recent_day).trend == "steady"
    assert health(one_recent_day, previous_trend="declining").trend == "declining"
    assert health(one_recent_day, previous_trend="improving").trend == "steady"


def test_a_new_relationship_has_no_earlier_pace_to_compare_with() -> None:
    first_weeks = [email(d) for d in (1, 4, 8, 11, 15, 18)]
    assert health(first_weeks, created_on=NOW - timedelta(days=20)).trend == "notEnoughInformation"
    assert health(first_weeks, created_on=None).trend == "notEnoughInformation"
    assert health(first_weeks).trend == "improving"  # a record known for long: from silence to contact
    weekly_since_first_contact = [email(d) for d in range(0, 57, 7)]  # 28 days of history after the first day
    assert health(weekly_since_first_contact, created_on=None).trend == "steady"
    a_day_younger = [*weekly_since_first_contact[:-1], email(55)]
    assert health(a_day_younger, created_on=None).trend == "notEnoughInformation"


def test_a_younger_relationship_compares_with_the_history_it_has() -> None:
    twice_a_week = [email(d + k) for d in range(0, 63, 7) for k in (0, 3)]
    assert health(twice_a_week, created_on=NOW - timedelta(days=63)).trend == "steady"
    silent_lately = [a for a in twice_a_week if a.start < NOW - timedelta(days=28)]
    assert health(silent_lately, created_on=NOW - timedelta(days=63)).trend == "declining"


def test_influence_settings_do_not_change_how_sure_the_trend_must_be() -> None:
    one_recent_day = [*(email(d) for d in range(30, 113, 6)), email(10)]  # z ≈ −1.6 whatever emails weigh
    assert health(one_recent_day).trend == "steady"
    assert health(one_recent_day, influence=ActivityInfluence(email=50)).trend == "steady"
    assert health(one_recent_day, influence=ActivityInfluence(email=-50)).trend == "steady"


def test_the_trend_says_what_it_was_read_from() -> None:
    assert health(EARLIER_WEEKLY).trend_detail == ("contact on 0 of the last 28 days against 12 of the 84 before: "
                                                   "0.00× the earlier pace, z = -2.00")
    held = health([*EARLIER_WEEKLY, email(10)], previous_trend="declining").trend_detail
    assert held.endswith("z = -1.44 (held while z ≤ −1)")
    assert health([email(d) for d in (1, 2, 3)], created_on=None).trend_detail.startswith("known for 3 days")


def test_the_same_days_give_the_same_trend_however_many_times_in_a_row() -> None:
    """A trend its thresholds give now is not "held" by the one before: a record computed twice at one moment (a
    refresh, then the daily recompute's pass) reads the same."""
    first = health(EARLIER_WEEKLY, previous_trend="steady")
    again = health(EARLIER_WEEKLY, previous_trend=first.trend)
    assert first.trend == again.trend == "declining"
    assert again.trend_detail == first.trend_detail
    assert "held" not in (again.trend_detail or "")


def test_a_busy_day_counts_once_for_the_trend() -> None:
    busy_day = [email(5, n=i) for i in range(15)]  # a thread of 15 messages in one day is one day of contact
    assert health(EARLIER_WEEKLY + busy_day + [email(20)]).trend == "steady"


def test_grading_bands_come_from_the_tenant() -> None:
    activities = [email(d) for d in (3, 20, 40)] + [email(d, ours=False) for d in (4, 21)]
    score = health(activities).score
    assert health(activities, grading=Grading(good_min=score, fair_min=score - 1)).grade == "good"
    assert health(activities, grading=Grading(good_min=score + 1, fair_min=score)).grade == "fair"
    assert health(activities, grading=Grading(good_min=score + 2, fair_min=score + 1)).grade == "poor"
