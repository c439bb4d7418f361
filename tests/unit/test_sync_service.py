"""The ingestion path on fakes of its ports: item-by-item validation, one item per id, versions, the data
gates at the door, and the background work a batch asks for."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.clock import FixedClock
from shared.errors import Conflict, NotFound, StorageUnavailable
from shared.services.ports import IndexKind
from shared.services.sync import SyncService
from shared.services.tenant_settings import TenantSettingsService
from shared.services.timing import IN_FLIGHT_MARGIN, WRITE_SETTLE
from shared.tenancy import TenantId
from tests.builders import NOW, TENANT, contact, enabled, mail, user
from tests.fakes import FakeRecords, FakeScheduleIndex, FakeSettingsRepository, item


class World:
    def __init__(self, *, consent: bool = True, groups: tuple[str, ...] = ()) -> None:
        self.repository = FakeSettingsRepository()
        self.repository.settings[TENANT] = (enabled(consent=consent, groups=groups), "e0")
        self.records = FakeRecords()
        self.index = FakeScheduleIndex()
        self.clock = FixedClock(NOW)
        self.sync = SyncService(TenantSettingsService(self.repository, self.clock, self.index), self.records,
                                self.clock, self.index)


@pytest.fixture
def world() -> World:
    return World()


def test_items_are_validated_one_by_one(world: World) -> None:
    report = world.sync.ingest(TENANT, "contacts", [item(contact("c1", "lee@fabrikam.com")),
                                                    {"id": "c2", "version": 1, "email": "not an address"},
                                                    {"id": "c3", "version": 1, "subject": "no bodies here"}])
    assert report.stored == 1
    assert [(r.index, r.id, r.reason) for r in report.rejected] == [(1, "c2", "invalid"), (2, "c3", "invalid")]
    assert "subject: unknown field" in (report.rejected[1].detail or "")


def test_a_record_named_twice_in_one_batch_is_refused_the_second_time(world: World) -> None:
    report = world.sync.ingest(TENANT, "contacts", [item(contact("c1", "a@fabrikam.com")),
                                                    item(contact("c1", "b@fabrikam.com"))])
    assert (report.stored, report.unchanged) == (1, 0)
    assert [(r.index, r.reason) for r in report.rejected] == [(1, "duplicateId")]
    assert world.records.get(TENANT, "contacts", "c1").email == "a@fabrikam.com"


def test_a_crm_and_an_exchange_activity_may_share_an_id(world: World) -> None:
    world.records.put(TENANT, "users", user("ann"), at=NOW)
    report = world.sync.ingest(TENANT, "activities", [
        item(mail("m1", "ann@contoso.com", "lee@fabrikam.com", 1)),
        item(mail("m1", "ann@contoso.com", "lee@fabrikam.com", 1, source="exchange"))])
    assert (report.stored, report.rejected) == (2, [])


def test_only_a_newer_version_replaces_a_stored_one(world: World) -> None:
    world.sync.ingest(TENANT, "contacts", [item(contact("c1", "v5@fabrikam.com", version=5))])
    older = world.sync.ingest(TENANT, "contacts", [item(contact("c1", "v4@fabrikam.com", version=4))])
    same = world.sync.ingest(TENANT, "contacts", [item(contact("c1", "v5@fabrikam.com", version=5))])
    newer = world.sync.ingest(TENANT, "contacts", [item(contact("c1", "v6@fabrikam.com", version=6))])
    assert (older.unchanged, same.unchanged, newer.stored) == (1, 1, 1)
    assert world.records.get(TENANT, "contacts", "c1").email == "v6@fabrikam.com"


def test_exchange_items_meet_the_gates_of_their_mailbox_owner() -> None:
    world = World(groups=("g-exec",))
    world.records.put(TENANT, "users", user("ann"), user("eve", groupIds=["g-exec"]),
                      user("cyd", securityRoleIds=["r-other"]), at=NOW)
    report = world.sync.ingest(TENANT, "activities", [
        item(mail(f"x-{who}", f"{who}@contoso.com", "lee@fabrikam.com", 1, source="exchange"))
        for who in ("ann", "eve", "cyd", "zed")])
    assert report.stored == 1
    assert {r.id: r.reason for r in report.rejected} == {
        "x-eve": "mailboxOwnerInExcludedGroup", "x-cyd": "mailboxOwnerNotInSelectedRole",
        "x-zed": "mailboxOwnerUnknown"}


def test_without_consent_exchange_items_are_refused_and_crm_items_stored() -> None:
    world = World(consent=False)
    world.records.put(TENANT, "users", user("ann"), at=NOW)
    report = world.sync.ingest(TENANT, "activities", [
        item(mail("x1", "ann@contoso.com", "lee@fabrikam.com", 1, source="exchange")),
        item(mail("c1", "ann@contoso.com", "lee@fabrikam.com", 1))])
    assert (report.stored, report.rejected_by_reason) == (1, {"consentNotGranted": 1})


def test_nothing_is_accepted_while_relationship_intelligence_is_off(world: World) -> None:
    world.repository.settings.clear()
    with pytest.raises(Conflict):
        world.sync.ingest(TENANT, "contacts", [item(contact("c1", "lee@fabrikam.com"))])
    with pytest.raises(NotFound):
        World().sync.ingest(TENANT, "mailboxes", [{}])


def test_activities_and_records_ask_for_a_refresh_which_plans_what_their_changes_need(world: World) -> None:
    world.sync.ingest(TENANT, "activities", [item(mail("c1", "ann@contoso.com", "lee@fabrikam.com", 1))])
    world.sync.ingest(TENANT, "contacts", [item(contact("k1", "lee@fabrikam.com"))])
    assert world.index.of(IndexKind.INSIGHTS_REFRESH, TENANT) == [NOW]
    assert world.index.of(IndexKind.INSIGHTS_RECOMPUTE, TENANT) == []


def test_a_new_opt_out_asks_for_a_purge_once_this_call_has_settled(world: World) -> None:
    world.sync.ingest(TENANT, "contacts", [item(contact("k1", "lee@fabrikam.com", version=1))])
    assert world.index.of(IndexKind.OPT_OUT_PURGE, TENANT) == []
    world.sync.ingest(TENANT, "contacts", [item(contact("k1", "lee@fabrikam.com", version=2, optedOut=True))])
    assert world.index.of(IndexKind.OPT_OUT_PURGE, TENANT) == [NOW + WRITE_SETTLE]
    world.clock.advance(timedelta(days=1))
    world.sync.ingest(TENANT, "contacts", [item(contact("k1", "lee@fabrikam.com", version=3, optedOut=True))])
    assert world.index.of(IndexKind.OPT_OUT_PURGE, TENANT) == [NOW + WRITE_SETTLE]  # sent again: no new purge


def test_a_batch_is_written_in_groups_and_stamped_with_the_moment_it_began(world: World) -> None:
    world.records.group_size = 10
    report = world.sync.ingest(TENANT, "activities", [
        item(mail(f"c{n}", "ann@contoso.com", "lee@fabrikam.com", 1)) for n in range(25)])
    assert (report.stored, world.records.writes) == (25, 3)
    assert {at for _, at in world.records.iter_activities(TENANT)} == {NOW}


def test_an_item_no_row_can_hold_is_refused_before_anything_is_written(world: World) -> None:
    world.records.max_weight = 200
    big = contact("big", "lee@fabrikam.com", fullName="x" * 190)
    report = world.sync.ingest(TENANT, "contacts", [item(big), item(contact("small", "kim@fabrikam.com"))])
    assert (report.stored, [r.reason for r in report.rejected]) == (1, ["tooLarge"])


def test_calls_within_a_minute_share_one_index_row(world: World) -> None:
    for seconds in (5, 35, 59):
        world.clock.set(NOW + timedelta(seconds=seconds))
        world.sync.ingest(TENANT, "activities", [item(mail(f"c{seconds}", "ann@contoso.com", "lee@fabrikam.com", 1))])
    assert world.index.of(IndexKind.INSIGHTS_REFRESH, TENANT) == [NOW]


def test_a_removal_leaves_a_tombstone_that_readers_skip_and_an_older_replay_does_not_revive(world: World) -> None:
    world.sync.ingest(TENANT, "contacts", [item(contact("c1", "lee@fabrikam.com", version=5))])
    world.clock.advance(timedelta(minutes=3))
    removed = world.sync.remove(TENANT, "contacts", ["c1", "c1", "never-stored"])
    assert (removed.received, removed.removed, removed.absent) == (2, 1, 1)
    assert world.records.get(TENANT, "contacts", "c1") is None
    assert list(world.records.iter_records(TENANT, "contacts")) == []
    row = world.records.rows[(TENANT, "contacts", "c1")]
    assert (row.deleted, row.version, row.ingested_at) == (True, 6, world.clock.now())
    assert world.index.of(IndexKind.INSIGHTS_REFRESH, TENANT)[-1] == world.clock.now()
    replay = world.sync.ingest(TENANT, "contacts", [item(contact("c1", "lee@fabrikam.com", version=5))])
    assert (replay.stored, replay.unchanged) == (0, 1)
    assert world.records.get(TENANT, "contacts", "c1") is None
    assert world.sync.remove(TENANT, "contacts", ["c1"]).removed == 0  # a replayed deletion changes nothing


def test_a_newer_version_after_a_removal_is_stored_again(world: World) -> None:
    world.sync.ingest(TENANT, "contacts", [item(contact("c1", "lee@fabrikam.com", version=5))])
    world.sync.remove(TENANT, "contacts", ["c1"])
    again = world.sync.ingest(TENANT, "contacts", [item(contact("c1", "lee@fabrikam.com", version=9))])
    assert again.stored == 1
    assert world.records.get(TENANT, "contacts", "c1").version == 9


def test_removed_activities_are_read_only_when_asked(world: World) -> None:
    world.records.put(TENANT, "users", user("ann"), at=NOW)
    world.sync.ingest(TENANT, "activities", [item(mail("m1", "ann@contoso.com", "lee@fabrikam.com", 1,
                                                       source="exchange", owner="ann"))])
    assert world.sync.remove(TENANT, "activities", ["exchange|m1"]).removed == 1
    assert list(world.records.iter_activities(TENANT)) == []
    [(tombstone, at)] = list(world.records.iter_activities(TENANT, removed=True))
    assert type(tombstone).__name__ == "RemovedActivity"
    assert at == NOW
    assert world.index.of(IndexKind.INSIGHTS_REFRESH, TENANT) == [NOW]


def test_removal_needs_the_tenant_enabled_and_a_known_kind(world: World) -> None:
    with pytest.raises(NotFound):
        world.sync.remove(TENANT, "tasks", ["x"])
    world.repository.settings[TENANT] = (enabled().disable(NOW), "e1")
    with pytest.raises(Conflict):
        world.sync.remove(TENANT, "contacts", ["c1"])


def test_a_call_is_registered_with_its_stamp_while_it_writes_and_no_longer(world: World) -> None:
    seen, original = [], world.records.write

    def write(*args: Any, **kwargs: Any) -> None:
        seen.append(sorted(world.records.writing.values()))
        original(*args, **kwargs)

    world.records.write = write  # type: ignore[method-assign]
    world.sync.ingest(TENANT, "contacts", [item(contact("c1", "lee@fabrikam.com"))])
    world.sync.remove(TENANT, "contacts", ["c1"])
    assert seen == [[(TENANT, NOW)]]
    assert world.records.writing == {}


def test_a_call_whose_registration_was_slow_writes_nothing_and_asks_to_be_sent_again(world: World) -> None:
    """A refresh may have looked for calls under way before the registration committed: it trusts rows stamped up
    to IN_FLIGHT_MARGIN before its moment, so a call registered later than half of that must not write."""
    original = world.records.begin_writing

    def slow(tenant_id: TenantId, at: datetime) -> str:
        world.clock.advance(IN_FLIGHT_MARGIN / 2 + timedelta(seconds=1))
        return original(tenant_id, at)

    world.records.begin_writing = slow  # type: ignore[method-assign]
    with pytest.raises(StorageUnavailable):
        world.sync.ingest(TENANT, "contacts", [item(contact("c1", "lee@fabrikam.com"))])
    assert world.records.get(TENANT, "contacts", "c1") is None
    assert (world.records.writes, world.records.writing) == (0, {})
