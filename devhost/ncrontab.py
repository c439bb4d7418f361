"""Timer schedules as the Functions host reads them, evaluated in UTC (the host's default time zone).

- NCRONTAB, six fields `{second} {minute} {hour} {day} {month} {day-of-week}`; five fields mean the minute-based
  form with second 0 (the host parses five fields without seconds, anything else with seconds).
- Otherwise a TimeSpan `[d.]hh:mm[:ss[.fffffff]]` or `d`: a constant interval, as the host falls back to.

Field syntax and quirks follow the NCrontab library the host uses: `*`, lists `1,5`, ranges `1-5` (a reversed
range `5-1` is swapped), steps `*/15`, `1-30/2` and `5/15` (from 5 to the end), a step of 0 counts as 1, month
and day names by any case-insensitive prefix of the English name (`Jan`, `January`, `Thu`), day-of-week 0-6 with
0 = Sunday (7 is refused, as NCrontab refuses it).

Day and day-of-week combine with AND, as in NCrontab: `0 0 12 1 * Mon` fires at noon on the 1st of a month only
when that day is a Monday. (Vixie cron would OR them when both are restricted; the Functions host does not.)
"""

from __future__ import annotations

import calendar
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_MONTH_NAMES = tuple(calendar.month_name[1:])
_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
# (name, low, high, value names) per field, seconds first.
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, _MONTH_NAMES),
    ("day-of-week", 0, 6, _DAY_NAMES),
)
_TIMESPAN = re.compile(r"\s*(?:(?P<days_only>\d+)|(?:(?P<days>\d+)\.)?(?P<h>\d+):(?P<m>\d+)"
                       r"(?::(?P<s>\d+)(?:\.(?P<f>\d{1,7}))?)?)\s*")
_SEARCH_YEARS = 400  # a Gregorian cycle: any feasible date/weekday combination occurs within it


def _value(token: str, field: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if not token:
        raise ValueError(f"a value is missing ({field})")
    if token[:1].isdigit():
        if not token.isascii() or not token.isdigit():
            raise ValueError(f"{token!r} is not a number ({field})")
        return int(token)
    for index, name in enumerate(names):
        if name.lower().startswith(token.lower()):
            return low + index
    if names:
        raise ValueError(f"{token!r} is not a known {field} name (use one of {', '.join(n[:3] for n in names)})")
    raise ValueError(f"{token!r} is not a valid {field} value; it must be a number from {low} to {high}")


def _check(value: int, field: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise ValueError(f"{value} is outside {low}-{high} ({field})")
    return value


def _field(text: str, field: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"empty value in {text!r} ({field})")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not base or re.fullmatch(r"[+-]?\d+", step_text) is None:
                raise ValueError(f"{item!r} has an invalid step ({field})")
            step = max(int(step_text), 1)
        if base == "*":
            start, end = low, high
        elif "-" in base[1:]:
            first, _, last = base.partition("-")
            start, end = sorted((_value(first, field, low, high, names), _value(last, field, low, high, names)))
            _check(start, field, low, high)
            _check(end, field, low, high)
        else:
            start = _check(_value(base, field, low, high, names), field, low, high)
            end = high if slash else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


class Schedule(ABC):
    """A parsed timer schedule. `Schedule.parse` returns a `CronSchedule` or an `IntervalSchedule`."""

    expression: str

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        return parse(expression)

    @abstractmethod
    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (timezone-aware), in UTC."""

    def occurrences(self, after: datetime, count: int) -> list[datetime]:
        found: list[datetime] = []
        for _ in range(count):
            after = self.next_after(after)
            found.append(after)
        return found

    def __str__(self) -> str:
        return self.expression


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("schedules need a timezone-aware datetime")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class CronSchedule(Schedule):
    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse_fields(cls, expression: str) -> CronSchedule:
        tokens = [t for t in expression.split(" ") if t]
        if len(tokens) == 5:
            tokens.insert(0, "0")
        elif len(tokens) != 6:
            raise ValueError(f"{expression!r} is not an NCRONTAB expression: it needs 6 fields "
                             "({second} {minute} {hour} {day} {month} {day-of-week}) or 5 (without seconds)")
        try:
            parsed = [_field(token, *spec) for token, spec in zip(tokens, _FIELDS, strict=True)]
        except ValueError as exc:
            raise ValueError(f"{expression!r} is not a valid NCRONTAB expression: {exc}") from None
        seconds, minutes, hours, days, months, weekdays = parsed
        return cls(expression, tuple(sorted(seconds)), tuple(sorted(minutes)), tuple(sorted(hours)),
                   days, months, weekdays)

    @property
    def possible(self) -> bool:
        """False when no month in the schedule has any of its days (`0 0 0 30 Feb *`): such a schedule never fires,
        which the host accepts silently."""
        return any(day <= (29 if month == 2 else calendar.monthrange(2001, month)[1])
                   for month in self.months for day in self.days)

    def _first_time(self, hour: int, minute: int, second: int) -> tuple[int, int, int] | None:
        for h in self.hours:
            if h < hour:
                continue
            for m in self.minutes:
                if h == hour and m < minute:
                    continue
                for s in self.seconds:
                    if h == hour and m == minute and s < second:
                        continue
                    return h, m, s
        return None

    def next_after(self, moment: datetime) -> datetime:
        start = _utc(moment).replace(microsecond=0) + timedelta(seconds=1)
        if not self.possible:
            raise ValueError(f"{self.expression!r} never occurs: no month in it has any of its days")
        day, earliest = start.date(), (start.hour, start.minute, start.second)
        limit = day.year + _SEARCH_YEARS
        while day.year < limit:
            if day.month not in self.months:
                day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
                earliest = (0, 0, 0)
                continue
            if day.day in self.days and (day.weekday() + 1) % 7 in self.weekdays:
                found = self._first_time(*earliest)
                if found is not None:
                    return datetime(day.year, day.month, day.day, *found, tzinfo=UTC)
            day += timedelta(days=1)
            earliest = (0, 0, 0)
        raise ValueError(f"{self.expression!r} does not occur within {_SEARCH_YEARS} years")


@dataclass(frozen=True)
class IntervalSchedule(Schedule):
    expression: str
    interval: timedelta

    @classmethod
    def parse_timespan(cls, expression: str) -> IntervalSchedule:
        match = _TIMESPAN.fullmatch(expression)
        if match is None:
            raise ValueError(f"{expression!r} is neither an NCRONTAB expression nor a TimeSpan like 00:05:00")
        days = int(match["days_only"] or match["days"] or 0)
        hours, minutes, seconds = (int(match[g] or 0) for g in ("h", "m", "s"))
        if hours > 23 or minutes > 59 or seconds > 59:
            raise ValueError(f"TimeSpan {expression!r} has hours above 23, or minutes or seconds above 59 "
                             "(write days as d.hh:mm:ss)")
        fraction = int((match["f"] or "0").ljust(7, "0")) / 10**7
        interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds + fraction)
        if interval <= timedelta(0):
            raise ValueError(f"TimeSpan {expression!r} must be longer than zero")
        return cls(expression, interval)

    def next_after(self, moment: datetime) -> datetime:
        return _utc(moment) + self.interval


def parse(expression: str) -> Schedule:
    """Parses a schedule the way the host does: NCRONTAB first, then TimeSpan. Raises ValueError otherwise."""
    if " " in expression.strip():
        return CronSchedule.parse_fields(expression)
    if ":" in expression or expression.strip().isdigit():
        return IntervalSchedule.parse_timespan(expression)
    raise ValueError(f"{expression!r} is neither an NCRONTAB expression ({{second}} {{minute}} {{hour}} {{day}} "
                     "{month} {day-of-week}) nor a TimeSpan like 00:05:00")
