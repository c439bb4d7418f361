"""Who knows whom (SPEC 4.3) on hand-made data: modes, exclusions, mass mail, ranking, the introduction draft."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.insights.directory import Directory
from shared.domain.insights.who_knows_whom import introducers
from shared.domain.records import Activity, InternalUser
from shared.domain.tenant_settings import EmailTemplate, TenantSettings

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TARGET = "lee@fabrikam.com"


def user(uid: str, **extra: Any) -> InternalUser:
    return InternalUser.model_validate({"id": uid, "version": 1, "email": f"{uid}@contoso.com",
                                        "displayName": uid.title(), "securityRoleIds": ["r-sales"], **extra},
                                       strict=False)


DIRECTORY = Directory.of(users=[user("ann"), user("bob"), user("cyd", securityRoleIds=["r-other"]),
                                user("dan", optedOut=True), user("eve", groupIds=["g-exec"])])


def settings(*, enhanced: bool) -> TenantSettings:
    s = TenantSettings(tenant_id="t").set_prerequisites(True, "FR", NOW).enable("admin", NOW)
    s = s.select_security_roles(("r-sales",)).set_excluded_security_groups(("g-exec",))
    return s.record_consent_granted("admin", (), NOW) if enhanced else s


def mail(sender: str, days_ago: float, source: str = "crm", n: int = 0, **extra: Any) -> Activity:
    owner = {"mailboxOwnerId": sender} if source == "exchange" else {}
    return Activity.model_validate({"id": f"{sender}-{days_ago}-{source}-{n}", "version": 1, "source": source,
                                    "kind": extra.pop("kind", "email"), "sender": f"{sender}@contoso.com",
                                    "to": [TARGET, *extra.pop("more", [])], "start": NOW - timedelta(days=days_ago),
                                    **owner, **extra}, strict=False)


def test_basic_mode_counts_crm_emails_and_meetings_only() -> None:
    activities = [mail("ann", d) for d in (1, 2, 3)] + [mail("bob", 1, "exchange", n=i) for i in range(10)]
    activities += [mail("cyd", 1, kind="phoneCall")]
    ranked = introducers(DIRECTORY, settings(enhanced=False), frozenset({TARGET}), activities, NOW)
    assert [i.user_id for i in ranked] == ["ann"]
    assert ranked[0].interactions == 3


def test_enhanced_mode_adds_exchange_and_prefers_recent_ties() -> None:
    activities = [mail("ann", 400, n=i) for i in range(4)] + [mail("bob", 5, "exchange", n=i) for i in range(3)]
    ranked = introducers(DIRECTORY, settings(enhanced=True), frozenset({TARGET}), activities, NOW)
    assert [i.user_id for i in ranked] == ["bob", "ann"]
    assert ranked[1].strength > 0  # a quiet, older tie still counts


def test_exclusions() -> None:
    activities = [mail(u, 1) for u in ("dan", "eve")] + [mail("cyd", 2, "exchange"), mail("cyd", 3)]
    ranked = introducers(DIRECTORY, settings(enhanced=True), frozenset({TARGET}), activities, NOW)
    # opted out and excluded group: never; outside the selected roles: CRM data only.
    assert [(i.user_id, i.interactions) for i in ranked] == [("cyd", 1)]


def test_mass_mail_weighs_less_and_at_most_five_introducers() -> None:
    users = [user(f"u{i}") for i in range(7)]
    directory = Directory.of(users=users)
    activities = [mail(f"u{i}", 1, n=k) for i in range(7) for k in range(i + 1)]
    activities += [mail("u0", 1, n=99 + k, more=[f"x{j}@other.com" for j in range(30)]) for k in range(10)]
    ranked = introducers(directory, settings(enhanced=False), frozenset({TARGET}), activities, NOW)
    assert len(ranked) == 5
    assert [i.user_id for i in ranked] == ["u6", "u5", "u4", "u3", "u2"]


def test_the_introduction_email_fills_the_template() -> None:
    template = EmailTemplate(subject="Meet {target}", body="Hi {introducer}, {requester}")
    subject, body = template.render(introducer="Ann", target="Lee", requester="Bob")
    assert (subject, body) == ("Meet Lee", "Hi Ann, Bob")


def test_a_new_activity_touches_every_account_of_its_domain() -> None:
    from shared.domain.insights.computation import touched
    from shared.domain.records import Account

    accounts = [Account.model_validate({"id": i, "version": 1, "name": i, "emailDomains": ["fabrikam.com"]},
                                       strict=False) for i in ("fabrikam-eu", "fabrikam-us")]
    directory = Directory.of(users=[user("ann")], accounts=accounts)
    keys = touched(directory, settings(enhanced=False), [mail("ann", 1)])
    assert {("account", "fabrikam-eu"), ("account", "fabrikam-us")} <= keys
