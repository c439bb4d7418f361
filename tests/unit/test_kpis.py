"""SPEC 4.1 on small, hand-made data, including the worked examples of the product documentation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.insights.directory import Directory
from shared.domain.insights.kpis import compute_kpis
from shared.domain.records import Account, Activity, Contact, InternalUser, Lead, Opportunity, Regarding

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def user(uid: str) -> InternalUser:
    return InternalUser(id=uid, version=1, email=f"{uid}@contoso.com", display_name=uid.title())


def contact(cid: str, account: str | None = "fabrikam") -> Contact:
    return Contact(id=cid, version=1, email=f"{cid}@fabrikam.com", full_name=cid.title(), account_id=account)


DIRECTORY = Directory.of(
    users=[user(u) for u in ("ann", "bob", "cyd", "dan")],
    accounts=[Account(id="fabrikam", version=1, name="Fabrikam", primary_contact_id="pat")],
    contacts=[contact("pat"), contact("sam"), contact("lee", None)],
    leads=[Lead(id="lead1", version=1, owner_id="ann", email="lee@fabrikam.com", stakeholder_contact_ids=("sam",),
                created_on=NOW - timedelta(days=30))],
    opportunities=[Opportunity(id="opp1", version=1, owner_id="bob", sales_team_ids=("cyd",),
                               customer_contact_id="sam", account_id="fabrikam", created_on=NOW - timedelta(days=20))],
)


def activity(aid: str, kind: str, sender: str, to: tuple[str, ...], **extra: Any) -> Activity:
    return Activity.model_validate({"id": aid, "version": 1, "source": extra.pop("source", "crm"), "kind": kind,
                                    "sender": sender, "to": to, "start": extra.pop("start", NOW - timedelta(days=1)),
                                    **extra}, strict=False)


def test_a_meeting_of_three_of_ours_and_two_of_theirs_is_90_and_30_minutes() -> None:
    meeting = activity("m1", "appointment", "ann@contoso.com",
                       ("bob@contoso.com", "cyd@contoso.com", "pat@fabrikam.com", "sam@fabrikam.com"),
                       duration_minutes=30)
    kpis = compute_kpis(DIRECTORY, [meeting], NOW)
    assert kpis.team.time_spent_minutes == 90
    assert kpis.customer.time_spent_minutes == 30
    assert kpis.team.meetings_initiated == 1


def test_a_lead_call_counts_only_when_the_assigned_user_makes_it() -> None:
    by_owner = activity("c1", "phoneCall", "ann@contoso.com", ("sam@fabrikam.com",), duration_minutes=10)
    by_other = activity("c2", "phoneCall", "dan@contoso.com", ("sam@fabrikam.com",), duration_minutes=10)
    assert DIRECTORY.linked("lead", "lead1", by_owner)
    assert not DIRECTORY.linked("lead", "lead1", by_other)


def test_a_meeting_with_the_primary_contact_counts_for_account_and_contact_not_the_opportunity() -> None:
    meeting = activity("m2", "appointment", "cyd@contoso.com", ("pat@fabrikam.com",), duration_minutes=30)
    assert DIRECTORY.linked("account", "fabrikam", meeting)
    assert DIRECTORY.linked("contact", "pat", meeting)
    assert not DIRECTORY.linked("opportunity", "opp1", meeting)
    regarding = meeting.model_copy(update={"regarding": Regarding(type="opportunity", id="opp1")})
    assert DIRECTORY.linked("opportunity", "opp1", regarding)


def test_anything_regarding_the_record_counts_even_without_people_of_interest() -> None:
    task = activity("t1", "task", "dan@contoso.com", (), regarding={"type": "lead", "id": "lead1"},
                    duration_minutes=15)
    assert DIRECTORY.linked("lead", "lead1", task)
    assert compute_kpis(DIRECTORY, [task], NOW).team.time_spent_minutes == 15


def test_emails_count_5_minutes_to_write_and_2_5_to_read() -> None:
    out = activity("e1", "email", "ann@contoso.com", ("sam@fabrikam.com",))
    back = activity("e2", "email", "sam@fabrikam.com", ("ann@contoso.com",), start=NOW - timedelta(hours=20))
    kpis = compute_kpis(DIRECTORY, [out, back], NOW)
    assert (kpis.team.emails_sent, kpis.customer.emails_sent) == (1, 1)
    assert kpis.team.time_spent_minutes == 7.5
    assert kpis.customer.time_spent_minutes == 7.5


def test_response_rate_and_first_response_time_come_from_exchange_threads_only() -> None:
    sent = activity("x1", "email", "ann@contoso.com", ("sam@fabrikam.com",), source="exchange",
                    mailbox_owner_id="ann", thread_id="t1", start=NOW - timedelta(hours=10))
    reply = activity("x2", "email", "sam@fabrikam.com", ("ann@contoso.com",), source="exchange",
                     mailbox_owner_id="ann", thread_id="t1", start=NOW - timedelta(hours=6))
    unanswered = activity("x3", "email", "ann@contoso.com", ("pat@fabrikam.com",), source="exchange",
                          mailbox_owner_id="ann", thread_id="t2", start=NOW - timedelta(hours=5))
    crm_only = compute_kpis(DIRECTORY, [activity("e1", "email", "ann@contoso.com", ("sam@fabrikam.com",))], NOW)
    assert crm_only.customer.response_rate is None
    kpis = compute_kpis(DIRECTORY, [sent, reply, unanswered], NOW)
    assert kpis.customer.response_rate == 0.5
    assert kpis.customer.average_first_response_hours == 4.0
    assert kpis.team.response_rate is None


def test_last_next_timeline_daily_and_most_contacted() -> None:
    items = [activity(f"e{i}", "email", "ann@contoso.com", ("sam@fabrikam.com",), start=NOW - timedelta(days=i))
             for i in range(1, 5)]
    items.append(activity("e9", "email", "bob@contoso.com", ("pat@fabrikam.com",), start=NOW - timedelta(days=90)))
    items.append(activity("m9", "appointment", "ann@contoso.com", ("sam@fabrikam.com",),
                          start=NOW + timedelta(days=2), completed=False, duration_minutes=30))
    kpis = compute_kpis(DIRECTORY, items, NOW)
    assert kpis.last_interaction is not None
    assert kpis.last_interaction.activity_id == "e1"
    assert kpis.next_interaction is not None
    assert kpis.next_interaction.activity_id == "m9"
    assert sum(d.emails_sent for d in kpis.daily) == 4  # the 90-day-old email is outside the 60-day chart
    assert sum(w.team for w in kpis.weekly) == 5  # the weekly timeline covers a year
    assert [c.address for c in kpis.most_contacted_team] == ["ann@contoso.com", "bob@contoso.com"]
    assert kpis.most_contacted_customer[0].address == "sam@fabrikam.com"
    assert kpis.most_contacted_customer[0].interactions == 4
