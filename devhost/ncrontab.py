"""NCRONTAB schedules as the Functions host reads them: six fields `{second} {minute} {hour} {day} {month}
{day-of-week}` (five fields mean second 0), or a TimeSpan `hh:mm:ss` interval. UTC throughout.

Day and day-of-week combine like cron: when both are restricted, either may match."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
_BOUNDS = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_TIMESPAN = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})$")


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    values: set[int] = set()
    for part in text.lower().split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"bad step in {text!r}")
        if base == "*":
            start, end = low, high
        else:
            first, _, last = base.partition("-")

            def value(token: str) -> int:
                if names and token in names:
                    return names[token]
                if not token.isdigit():
                    raise ValueError(f"bad value {token!r} in {text!r}")
                return int(token)

            start = value(first)
            end = value(last) if last else (high if step_text else start)
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise ValueError(f"{text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    expression: str
    seconds: frozenset[int] = frozenset()
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()
    day_restricted: bool = False
    weekday_restricted: bool = False
    interval: timedelta | None = None

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        text = expression.strip()
        span = _TIMESPAN.match(text)
        if span:
            hours, minutes, seconds = (int(g) for g in span.groups())
            interval = timedelta(hours=hours, minutes=minutes, seconds=seconds)
            if interval <= timedelta(0) or minutes > 59 or seconds > 59:
                raise ValueError(f"bad TimeSpan schedule {expression!r}")
            return cls(expression, interval=interval)
        fields = text.split()
        if len(fields) == 5:
            fields.insert(0, "0")
        if len(fields) != 6:
            raise ValueError(f"an NCRONTAB expression has 6 fields (or 5): {expression!r}")
        parsed = [_field(f, lo, hi, _MONTHS if i == 4 else _DAYS if i == 5 else None)
                  for i, (f, (lo, hi)) in enumerate(zip(fields, _BOUNDS, strict=True))]
        weekdays = frozenset(d % 7 for d in parsed[5])
        return cls(expression, parsed[0], parsed[1], parsed[2], parsed[3], parsed[4], weekdays,
                   day_restricted=fields[3] != "*", weekday_restricted=fields[5] != "*")

    def _day_matches(self, moment: datetime) -> bool:
        by_day = moment.day in self.days
        by_weekday = (moment.isoweekday() % 7) in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return by_day or by_weekday
        return by_day and by_weekday

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (timezone-aware)."""
        if moment.tzinfo is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        moment = moment.astimezone(UTC)
        if self.interval is not None:
            return moment + self.interval
        candidate = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = candidate + timedelta(days=366 * 5)
        while candidate < limit:
            if candidate.month not in self.months:
                first_of_month = candidate.replace(day=1, hour=0, minute=0, second=0)
                candidate = (first_of_month + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(candidate):
                candidate = (candidate + timedelta(days=1)).replace(hour=0, minute=0, second=0)
                continue
            if candidate.hour not in self.hours:
                candidate = (candidate + timedelta(hours=1)).replace(minute=0, second=0)
                continue
            if candidate.minute not in self.minutes:
                candidate = (candidate + timedelta(minutes=1)).replace(second=0)
                continue
            if candidate.second not in self.seconds:
                candidate += timedelta(seconds=1)
                continue
            return candidate
        raise ValueError(f"{self.expression!r} never fires")
