from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from devhost.ncrontab import CronSchedule, IntervalSchedule, Schedule

T = datetime(2026, 11, 26, 20, 0, 3, tzinfo=UTC)  # a Thursday


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("0 0 * * * *", T, at(2026, 11, 26, 21)),
    ("* * * * * *", T, at(2026, 11, 26, 20, 0, 4)),
    ("*/5 * * * * *", T, at(2026, 11, 26, 20, 0, 5)),
    ("0 */15 * * * *", T, at(2026, 11, 26, 20, 15)),
    ("1-10/3 0 20 * * *", T, at(2026, 11, 26, 20, 0, 4)),
    ("5/20 * * * * *", T, at(2026, 11, 26, 20, 0, 5)),  # from 5 to the end, every 20
    ("0 0 9,17 * * *", T, at(2026, 11, 27, 9)),
    ("30 5 9 * * *", at(2026, 11, 26, 9, 5, 29), at(2026, 11, 26, 9, 5, 30)),
    ("0 30 9 * * Mon-Fri", T, at(2026, 11, 27, 9, 30)),
    ("0 30 9 * * Sat", T, at(2026, 11, 28, 9, 30)),
    ("0 30 9 * * saturday", T, at(2026, 11, 28, 9, 30)),
    ("0 0 0 * * 0", T, at(2026, 11, 29)),  # 0 is Sunday
    ("0 0 0 1 Jan *", T, at(2027, 1, 1)),
    ("0 0 0 1 Jan-Mar/2 *", at(2027, 1, 2), at(2027, 3, 1)),
    ("0 0 0 29 Feb *", T, at(2028, 2, 29)),
    ("0 0 0 31 * *", T, at(2026, 12, 31)),
    ("0 0 0 31 * *", at(2027, 1, 31, 12), at(2027, 3, 31)),  # months without a 31st are skipped
    ("0 0 12 1 * Mon", T, at(2027, 2, 1, 12)),  # day AND weekday, as NCrontab
    ("0 0 * * *", T, at(2026, 11, 27, 0, 0)),  # five fields: minute-based, second 0
    ("*/10 * * * *", T, at(2026, 11, 26, 20, 10)),
    ("5-1 * * * * *", T, at(2026, 11, 26, 20, 0, 4)),  # NCrontab swaps a reversed range
    ("*/0 * * * * *", T, at(2026, 11, 26, 20, 0, 4)),  # and takes a step of 0 as 1
])
def test_next_occurrence(expression: str, after: datetime, expected: datetime) -> None:
    assert Schedule.parse(expression).next_after(after) == expected


@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("59 59 23 31 Dec *", at(2026, 12, 31, 23, 59, 59), at(2027, 12, 31, 23, 59, 59)),
    ("0 0 0 * * *", at(2026, 12, 31, 23, 59, 59), at(2027, 1, 1)),
    ("0 0 0 1 * *", at(2026, 1, 31, 0, 0, 1), at(2026, 2, 1)),
    ("0 0 0 28-31 Feb *", at(2027, 2, 28, 1), at(2028, 2, 28)),
    ("0 0 0 29 Feb Mon", T, at(2044, 2, 29)),  # the next Monday the 29th of February
])
def test_next_occurrence_across_month_and_year_ends(expression: str, after: datetime, expected: datetime) -> None:
    assert Schedule.parse(expression).next_after(after) == expected


def test_next_is_strictly_after_and_ignores_fractions_of_a_second() -> None:
    schedule = Schedule.parse("* * * * * *")
    assert schedule.next_after(at(2026, 1, 1, 0, 0, 0)) == at(2026, 1, 1, 0, 0, 1)
    assert schedule.next_after(at(2026, 1, 1, 0, 0, 0) + timedelta(microseconds=999_999)) == at(2026, 1, 1, 0, 0, 1)


def test_other_time_zones_are_converted_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    assert Schedule.parse("0 0 0 * * *").next_after(datetime(2026, 1, 1, 0, 30, tzinfo=cet)) == at(2026, 1, 1)


def test_occurrences() -> None:
    assert Schedule.parse("0 0 */6 * * *").occurrences(T, 3) == [
        at(2026, 11, 27, 0), at(2026, 11, 27, 6), at(2026, 11, 27, 12)]


@pytest.mark.parametrize(("expression", "interval"), [
    ("00:05:00", timedelta(minutes=5)),
    ("01:30", timedelta(hours=1, minutes=30)),  # hh:mm
    ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ("00:00:00.25", timedelta(milliseconds=250)),
    ("2", timedelta(days=2)),  # TimeSpan's days-only form, as the host would read it
])
def test_timespan_schedules_are_intervals(expression: str, interval: timedelta) -> None:
    schedule = Schedule.parse(expression)
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.interval == interval
    assert schedule.next_after(T) == T + interval


def test_fields_are_parsed_into_sets() -> None:
    schedule = Schedule.parse("0 0-10/5 9-17 1,15 Jan,Jul Mon-Fri")
    assert isinstance(schedule, CronSchedule)
    assert schedule.minutes == (0, 5, 10)
    assert schedule.hours == tuple(range(9, 18))
    assert schedule.days == {1, 15}
    assert schedule.months == {1, 7}
    assert schedule.weekdays == {1, 2, 3, 4, 5}
    assert str(schedule) == "0 0-10/5 9-17 1,15 Jan,Jul Mon-Fri"


@pytest.mark.parametrize(("expression", "message"), [
    ("", "neither"),
    ("hourly", "neither"),
    ("* * *", "6 fields"),
    ("* * * * * * *", "6 fields"),
    ("61 * * * * *", "61 is outside 0-59"),
    ("* * 24 * * *", "24 is outside 0-23"),
    ("0 0 0 0 * *", "0 is outside 1-31"),
    ("0 0 0 * 13 *", "13 is outside 1-12"),
    ("0 0 0 * * 7", "7 is outside 0-6"),  # NCrontab refuses 7 for Sunday
    ("0 0 0 * Foo *", "not a known month name"),
    ("0 0 0 * * Funday", "not a known day-of-week name"),
    ("x * * * * *", "not a valid second value"),
    ("1- * * * * *", "missing"),
    ("1,,2 * * * * *", "empty value"),
    ("*/x * * * * *", "invalid step"),
    ("/5 * * * * *", "invalid step"),
    ("00:00:00", "longer than zero"),
    ("24:00:00", "hours above 23"),
    ("00:61:00", "minutes or seconds above 59"),
    ("1:2:3:4", "neither"),
])
def test_bad_expressions_are_refused_with_a_reason(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule.parse(expression)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Schedule.parse("0 0 * * * *").next_after(datetime(2026, 1, 1))


def test_an_impossible_date_parses_but_never_occurs() -> None:
    schedule = Schedule.parse("0 0 0 31 Feb *")  # the host accepts it and never fires
    assert isinstance(schedule, CronSchedule)
    assert not schedule.possible
    with pytest.raises(ValueError, match="never occurs"):
        schedule.next_after(T)
