"""What a ledger settles of the periods before `recent_from` (threads reduced to counts, old weeks dropped) shows
the same as the activities themselves: the KPIs of the reference implementation over the raw activities, with
threads that start in a settled period and go on (or are answered) in a recent one, at several moments."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.domain.insights.computation import compute, ledgers
from shared.domain.insights.directory import Directory
from shared.domain.insights.facts import Linker
from shared.domain.insights.kpis import compute_kpis
from shared.domain.insights.ledger import partials, recent_from, settle
from shared.domain.records import Activity
from tests.builders import NOW, account, contact, enabled, mail, user

DIRECTORY = Directory.of(users=[user("ann"), user("bob")], accounts=[account("fabrikam", "fabrikam.com")],
                         contacts=[contact("pat", "pat@fabrikam.com", accountId="fabrikam")], leads=[],
                         opportunities=[])
OURS, THEIRS = "ann@contoso.com", "pat@fabrikam.com"


def _exchange(aid: str, sender: str, to: str, days_ago: float, thread: str) -> Activity:
    return mail(aid, sender, to, days_ago, source="exchange", owner="ann", threadId=thread)


ACTIVITIES = [
    # answered long ago, then written in again recently: still one thread, answered once
    _exchange("t1a", OURS, THEIRS, 300, "t1"), _exchange("t1b", THEIRS, OURS, 299.5, "t1"),
    _exchange("t1c", OURS, THEIRS, 10, "t1"), _exchange("t1d", THEIRS, OURS, 9, "t1"),
    # started long ago, answered recently
    _exchange("t2a", OURS, THEIRS, 200, "t2"), _exchange("t2b", THEIRS, OURS, 5, "t2"),
    # started by the customer long ago, never answered
    _exchange("t3a", THEIRS, OURS, 250, "t3"),
    # started and answered recently
    _exchange("t4a", OURS, THEIRS, 3, "t4"), _exchange("t4b", THEIRS, OURS, 2, "t4"),
    # a CRM mail every 20 days for more than a year: the weekly timeline
    *(mail(f"crm{i}", OURS if i % 2 else THEIRS, THEIRS if i % 2 else OURS, 20 * i) for i in range(1, 25)),
]


@pytest.mark.parametrize("later", [0, 40, 100, 200])
def test_settled_threads_and_weeks_show_what_the_activities_show(later: int) -> None:
    now = NOW + timedelta(days=later)
    expected = compute_kpis(DIRECTORY, ACTIVITIES, now)
    found = {r.key: r for r in compute(DIRECTORY, enabled(), ACTIVITIES, now)}
    variant = found[("contact", "pat")].with_exchange
    assert variant is not None
    kpis = variant.kpis
    for side in ("team", "customer"):
        mine, theirs = getattr(kpis, side), getattr(expected, side)
        assert mine.response_rate == theirs.response_rate, side
        assert mine.average_first_response_hours == theirs.average_first_response_hours, side
    assert [(w.week, w.team, w.customer) for w in kpis.weekly] == \
        [(w.week, w.team, w.customer) for w in expected.weekly]
    if later == 0:
        assert (kpis.customer.response_rate, kpis.team.response_rate) == (1.0, 0.0)


def test_a_settled_partial_keeps_counts_of_its_answered_threads_and_the_first_times_of_its_open_ones() -> None:
    months = ledgers(Linker(DIRECTORY), ACTIVITIES)[("contact", "pat")]
    since = recent_from(NOW)
    settled = settle({}, {m: partials(e) for m, e in months.items() if m < since}, since)["ann"]
    assert settled["tc"] == ["t1"]  # answered before `since`
    assert set(settled["th"]) == {"t2", "t3"}  # one side only: the other may answer later
    assert all(side is None or side[1] == "" for sides in settled["th"].values() for side in sides)
    assert settled["r"][:4] == [0, 1, 0, 1]  # one thread started by us, answered by the customer
    assert settled["r"][5] == 12 * 3_600_000_000  # half a day, in µs


def test_a_ledger_read_without_its_partials_takes_edits_of_its_recent_periods_only() -> None:
    from shared.domain.insights.ledger import apply_edits, horizon_for, needs_partials
    from shared.services.ports import LedgerState

    since, horizon = recent_from(NOW), horizon_for(NOW)
    viewed = LedgerState(months={since: []}, settled={"crm": {"n": 1}}, settled_from=since, horizon=horizon,
                         complete=False)
    assert not needs_partials(viewed, [since], horizon, since)
    for edits, at_horizon, at in (([f"{int(since[:4]) - 1}Q1"], horizon, since),  # settles again
                                  ([since], f"{int(horizon[:4]) + 1}Q1", since),  # the horizon moves
                                  ([since], horizon, f"{int(since[:4]) + 1}Q1")):  # settled for another quarter
        assert needs_partials(viewed, edits, at_horizon, at)
        with pytest.raises(ValueError, match="without its partials"):
            apply_edits(viewed, {period: {} for period in edits}, at_horizon, at)
    settled = viewed.settled
    apply_edits(viewed, {since: {}}, horizon, since)
    assert viewed.settled is settled  # (kept as read: written back untouched)
