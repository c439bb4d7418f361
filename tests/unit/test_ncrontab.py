from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devhost.ncrontab import Schedule

T = datetime(2026, 11, 26, 20, 0, 3, tzinfo=UTC)


@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("0 0 * * * *", T, datetime(2026, 11, 26, 21, 0, 0, tzinfo=UTC)),
    ("*/5 * * * * *", T, datetime(2026, 11, 26, 20, 0, 5, tzinfo=UTC)),
    ("0 */15 * * * *", T, datetime(2026, 11, 26, 20, 15, 0, tzinfo=UTC)),
    ("0 30 9 * * Mon-Fri", T, datetime(2026, 11, 27, 9, 30, tzinfo=UTC)),
    ("0 30 9 * * Sat", T, datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
    ("0 0 0 1 Jan *", T, datetime(2027, 1, 1, tzinfo=UTC)),
    ("0 0 0 29 Feb *", T, datetime(2028, 2, 29, tzinfo=UTC)),
    ("0 0 0 31 * *", T, datetime(2026, 12, 31, tzinfo=UTC)),
    ("1-10/3 0 20 * * *", T, datetime(2026, 11, 26, 20, 0, 4, tzinfo=UTC)),
    ("0 0 12 1 * 1", T, datetime(2026, 11, 30, 12, tzinfo=UTC)),  # day or weekday, like cron
    ("0 0 0 * * 7", T, datetime(2026, 11, 29, tzinfo=UTC)),  # 7 is Sunday too
    ("0 0 * * *", T, datetime(2026, 11, 27, 0, 0, tzinfo=UTC)),  # five fields: minute-based
    ("00:05:00", T, T + timedelta(minutes=5)),
    ("59 59 23 31 Dec *", datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2027, 12, 31, 23, 59, 59,
                                                                                   tzinfo=UTC)),
])
def test_next_occurrence(expression: str, after: datetime, expected: datetime) -> None:
    assert Schedule.parse(expression).next_after(after) == expected


@pytest.mark.parametrize("expression", ["", "* * *", "61 * * * * *", "* * 24 * * *", "0 0 0 0 * *",
                                        "*/0 * * * * *", "0 0 0 * Foo *", "5-1 * * * * *", "00:00:00"])
def test_bad_expressions_are_refused(expression: str) -> None:
    with pytest.raises(ValueError, match=r"field|outside|step|value|TimeSpan"):
        Schedule.parse(expression)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Schedule.parse("0 0 * * * *").next_after(datetime(2026, 1, 1))


def test_an_impossible_date_never_fires() -> None:
    with pytest.raises(ValueError, match="never"):
        Schedule.parse("0 0 0 31 Feb *").next_after(T)
