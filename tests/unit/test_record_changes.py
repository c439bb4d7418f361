"""Record changes in the aggregates without a rebuild: what each change plans (`record_changes`), an opt-out that
leaves an account's counts before the sync call answers, and refreshes after a contact moves or a colleague's
roles change that read no stored activity."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from shared.clock import FixedClock
from shared.domain.insights.record_changes import plan_of
from shared.domain.records import Activity, Opportunity
from shared.errors import NotFound
from shared.services.directory_cache import DirectoryCache
from shared.services.insights import InsightsService
from shared.services.sync import SyncService
from shared.services.tenant_settings import TenantSettingsService
from shared.tenancy import TenantId
from tests.builders import NOW, TENANT, account, contact, enabled, lead, mail, user
from tests.fakes import FakeInsights, FakeLedgers, FakeRecords, FakeScheduleIndex, FakeSettingsRepository, FakeWorkQueue

ANN = "ann@contoso.com"
PAT, SAM = "pat@fabrikam.com", "sam@fabrikam.com"


def _opportunity(**extra: Any) -> Opportunity:
    return Opportunity.model_validate({"id": "opp", "version": 1, "ownerId": "ann", "customerContactId": "pat",
                                       "accountId": "fabrikam", "createdOn": NOW - timedelta(days=30), **extra},
                                      strict=False)


def _changed(record: Any, **change: Any) -> Any:
    return record.model_copy(update={"version": record.version + 1, **change})


# -- the plan ---------------------------------------------------------------------------------------------


def test_a_version_bump_or_a_role_name_changes_nothing() -> None:
    pat = contact("pat", PAT, accountId="fabrikam")
    plan = plan_of([("contacts", pat, _changed(pat)), ("securityRoles", None, None)])
    assert (plan.rebuild, plan.every_record, plan.people, plan.records) == (None, False, set(), set())


@pytest.mark.parametrize(("kind", "before", "change"), [
    ("contacts", contact("pat", PAT), {"email": "pat@northwind.com"}),
    ("accounts", account("fabrikam", "fabrikam.com"), {"email_domains": ("fabrikam.com", "fabrikam.fr")}),
    ("leads", lead("zed", "zed@tailspin.com", "ann"), {"email": "zed@tailspin.org"}),
    ("users", user("ann"), {"opted_out": True}),
    ("contacts", contact("pat", PAT, optedOut=True), {"opted_out": False}),
])
def test_what_no_index_can_find_rebuilds(kind: str, before: Any, change: dict[str, Any]) -> None:
    assert plan_of([(kind, before, _changed(before, **change))]).rebuild


def test_a_new_or_removed_record_rebuilds() -> None:
    pat = contact("pat", PAT)
    assert plan_of([("contacts", None, pat)]).rebuild
    assert plan_of([("contacts", pat, None)]).rebuild


def test_an_opt_out_links_the_persons_activities_again_and_drops_their_insights() -> None:
    pat = contact("pat", PAT, accountId="fabrikam")
    plan = plan_of([("contacts", pat, _changed(pat, opted_out=True))])
    assert (plan.rebuild, plan.people, plan.dropped) == (None, {("contact", "pat")}, {("contact", "pat")})


def test_who_a_records_people_are_links_their_activities_again() -> None:
    pat = contact("pat", PAT, accountId="fabrikam")
    assert plan_of([("contacts", pat, _changed(pat, account_id="northwind"))]).people == {("contact", "pat")}
    fabrikam = account("fabrikam", "fabrikam.com", primaryContactId="pat")
    assert plan_of([("accounts", fabrikam, _changed(fabrikam, primary_contact_id="sam"))]).people == {
        ("contact", "pat"), ("contact", "sam")}
    zed = lead("zed", "zed@tailspin.com", "ann", stakeholderContactIds=["pat"])
    assert plan_of([("leads", zed, _changed(zed, owner_id="bob"))]).people == {("lead", "zed"), ("contact", "pat")}
    opportunity = _opportunity()
    assert plan_of([("opportunities", opportunity, _changed(opportunity, stakeholder_contact_ids=("sam",)))]
                   ).people == {("contact", "pat"), ("contact", "sam")}


def test_what_only_records_show_computes_them_from_their_aggregates() -> None:
    fabrikam = account("fabrikam", "fabrikam.com")
    assert plan_of([("accounts", fabrikam, _changed(fabrikam, name="Fabrikam SA"))]).records == {
        ("account", "fabrikam")}
    opportunity = _opportunity()
    plan = plan_of([("opportunities", opportunity, _changed(opportunity, estimated_revenue=5000.0,
                                                             account_id="northwind"))])
    # The opportunity itself, and the records whose risk notices list its open revenue, before and after.
    assert (plan.people, plan.records) == (set(), {("opportunity", "opp"), ("contact", "pat"),
                                                   ("account", "fabrikam"), ("account", "northwind")})
    pat = contact("pat", PAT)
    assert plan_of([("contacts", pat, _changed(pat, full_name="Patricia"))]).people == {("contact", "pat")}


def test_a_colleagues_roles_or_departure_computes_every_record_from_its_aggregates() -> None:
    ann = user("ann")
    for change in ({"security_role_ids": ("r-other",)}, {"active": False}, {"display_name": "Ann B."}):
        plan = plan_of([("users", ann, _changed(ann, **change))])
        assert (plan.rebuild, plan.every_record) == (None, True)


# -- the service ------------------------------------------------------------------------------------------


class CountingRecords(FakeRecords):
    scans: int = 0

    def iter_activities(self, tenant_id: TenantId, **options: Any) -> Iterator[tuple[Activity, Any]]:
        self.scans += 1
        return super().iter_activities(tenant_id, **options)

    def activities_page(self, tenant_id: TenantId, after: str | None, limit: int) -> tuple[list[Activity], str | None]:
        self.scans += after is None  # a rebuild's scan begins
        return super().activities_page(tenant_id, after, limit)


class World:
    def __init__(self) -> None:
        self.repository = FakeSettingsRepository()
        self.repository.settings[TENANT] = (enabled(), "e1")
        self.clock = FixedClock(NOW)
        self.records = CountingRecords()
        self.insights = FakeInsights()
        settings = TenantSettingsService(self.repository, self.clock)
        index = FakeScheduleIndex()
        self.queue = FakeWorkQueue()
        self.service = InsightsService(settings, self.records, self.insights, self.clock, index, self.queue,
                                       FakeLedgers(), directories=DirectoryCache())
        self.sync = SyncService(settings, self.records, self.clock, index, on_opt_outs=self.service.apply_opt_outs)
        self.records.put(TENANT, "users", user("ann"), user("bob"), at=NOW)
        self.records.put(TENANT, "accounts", account("fabrikam", "fabrikam.com"), account("northwind"), at=NOW)
        self.records.put(TENANT, "contacts", contact("pat", PAT, accountId="fabrikam"),
                         contact("sam", SAM, accountId="fabrikam"), at=NOW)
        activities = [mail(f"p{n}", ANN, PAT, 3 + 7 * n) for n in range(5)]
        activities += [mail(f"s{n}", ANN, SAM, 4 + 7 * n) for n in range(3)]
        self.records.put(TENANT, "activities", *activities, at=NOW - timedelta(hours=1))
        self.service.recompute(TENANT)
        self.records.scans = 0

    def emails(self, entity_type: str, record_id: str) -> int:
        return self.service.record(TENANT, entity_type, record_id).variant.kpis.team.emails_sent  # type: ignore

    def change(self, kind: str, record_id: str, **change: Any) -> None:
        self.clock.advance(timedelta(minutes=20))
        stored = self.records.get(TENANT, kind, record_id)
        item = {**stored.model_dump(by_alias=True, mode="json"), **change, "version": stored.version + 1}
        assert self.sync.ingest(TENANT, kind, [item]).stored == 1


@pytest.fixture
def world() -> World:
    return World()


def test_an_opt_out_leaves_the_accounts_counts_before_the_sync_call_answers(world: World) -> None:
    assert world.emails("account", "fabrikam") == 8
    world.change("contacts", "pat", optedOut=True)
    assert world.emails("account", "fabrikam") == 3  # at once: no refresh ran
    with pytest.raises(NotFound):
        world.service.record(TENANT, "contact", "pat")
    assert ("contact", "pat") not in {i.key for i in world.insights.iter(TENANT)}
    world.clock.advance(timedelta(hours=1))
    world.service.refresh(TENANT)  # the log's opt-out applied again: nothing left to change
    assert world.emails("account", "fabrikam") == 3
    assert world.records.scans == 0


def test_a_contact_moving_account_is_refreshed_without_reading_the_tenants_activities(world: World) -> None:
    world.change("contacts", "pat", accountId="northwind")
    world.clock.advance(timedelta(hours=1))
    world.service.refresh(TENANT)
    assert (world.emails("account", "fabrikam"), world.emails("account", "northwind")) == (3, 5)
    assert world.records.scans == 0


def test_a_colleagues_new_roles_are_refreshed_from_the_aggregates(world: World) -> None:
    world.change("users", "ann", securityRoleIds=["r-other"])
    world.clock.advance(timedelta(hours=1))
    world.service.refresh(TENANT)
    assert world.service.who_knows_whom(TENANT, "contact", "pat").introducers  # still listed: basic mode is CRM
    assert world.records.scans == 0
    world.change("users", "bob", email="bob@contoso.org")  # who is internal changes every fact: a rebuild
    world.clock.advance(timedelta(hours=1))
    world.service.refresh(TENANT)
    assert world.records.scans == 1


def test_a_users_opt_out_sends_the_rebuild_their_activities_need_at_once(world: World) -> None:
    world.change("users", "bob", optedOut=True)
    assert world.queue.kinds() == ["insights-update"]  # not at the timer's next run
    assert world.records.scans == 0
    world.change("users", "ann", optedOut=True)
    world.clock.advance(timedelta(hours=1))
    world.service.recompute(TENANT)
    assert world.records.scans == 1
    assert world.emails("account", "fabrikam") == 0  # every email was Ann's: none counts now
