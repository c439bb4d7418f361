"""The insights service on fakes of its ports: what sellers may read as the tenant's switches and gates stand
now, paging, who knows whom and the introduction draft, the data-subject export, and what a computation asks
the background work for."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.clock import FixedClock
from shared.domain.tenant_settings import TenantSettings
from shared.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from shared.services import insights as insights_module
from shared.services.background.insights_update import InsightsUpdate
from shared.services.background.steps import next_slot
from shared.services.insights import InsightsService
from shared.services.ports import IndexEntry, IndexKind
from shared.services.tenant_settings import TenantSettingsService
from shared.services.timing import FULL_RECOMPUTE_INTERVAL, IN_FLIGHT_MARGIN, WRITE_SETTLE
from tests.builders import NOW, TENANT, account, contact, enabled, mail, user
from tests.fakes import (
    FakeInsights,
    FakeLedgers,
    FakeRecords,
    FakeScheduleIndex,
    FakeSettingsRepository,
    FakeWorkQueue,
)

ANN, BOB = "ann@contoso.com", "bob@contoso.com"
STEADY, FADING = "lee@fabrikam.com", "kim@fabrikam.com"


class World:
    def __init__(self, settings: TenantSettings | None = None) -> None:
        self.repository = FakeSettingsRepository()
        self.set(settings or enabled())
        self.records = FakeRecords()
        self.insights_store = FakeInsights()
        self.index = FakeScheduleIndex()
        self.clock = FixedClock(NOW)
        self.queue = FakeWorkQueue()
        self.service = InsightsService(TenantSettingsService(self.repository, self.clock), self.records,
                                       self.insights_store, self.clock, self.index, self.queue, FakeLedgers())
        self.records.put(TENANT, "users", user("ann"), user("bob"), at=NOW)
        self.records.put(TENANT, "accounts", account("fabrikam", "fabrikam.com"), at=NOW)
        self.records.put(TENANT, "contacts", contact("steady", STEADY, accountId="fabrikam"),
                         contact("fading", FADING, accountId="fabrikam"), at=NOW)
        # A weekly tie with replies, and one that faded two months ago.
        activities = [mail(f"s{w}", ANN, STEADY, 7 * w + 1) for w in range(12)]
        activities += [mail(f"r{w}", STEADY, ANN, 7 * w + 2) for w in range(12)]
        activities += [mail(f"f{n}", BOB, FADING, 60 + n) for n in range(4)]
        activities += [mail(f"x{n}", BOB, STEADY, 3 + n, source="exchange", owner="bob") for n in range(3)]
        self.records.put(TENANT, "activities", *activities, at=NOW - timedelta(hours=1))

    def set(self, settings: TenantSettings) -> None:
        self.repository.settings[TENANT] = (settings, "e1")


@pytest.fixture
def world() -> World:
    world = World()
    world.service.recompute(TENANT)
    return world


def test_a_record_reads_its_kpis_and_health(world: World) -> None:
    view = world.service.record(TENANT, "contact", "steady")
    assert (view.completeness, view.health_hidden) == ("complete", False)
    assert view.variant.kpis.team.emails_sent == 15  # 12 from ann in CRM, 3 from bob's mailbox
    assert view.health is not None
    assert view.health.state == "scored"


def test_a_closed_gate_serves_the_crm_variant_on_the_very_next_read(world: World) -> None:
    world.set(enabled().select_security_roles(("r-other",)))
    view = world.service.record(TENANT, "contact", "steady")
    assert (view.completeness, view.variant.kpis.team.emails_sent) == ("partial", 12)


def test_hidden_health_is_left_out_of_reads_but_still_computed(world: World) -> None:
    world.set(enabled().update_relationship_analytics(health_display=False))
    view = world.service.record(TENANT, "contact", "steady")
    assert view.health is None
    assert view.health_hidden
    assert view.variant.health.state == "scored"


def test_switched_off_features_say_so(world: World) -> None:
    world.set(enabled().update_relationship_analytics(enabled=False))
    with pytest.raises(Conflict) as off:
        world.service.record(TENANT, "contact", "steady")
    assert off.value.extensions == {"feature": "relationshipAnalytics"}
    world.set(enabled().update_who_knows_whom(enabled=False))
    with pytest.raises(Conflict) as wkw_off:
        world.service.who_knows_whom(TENANT, "contact", "steady")
    assert wkw_off.value.extensions == {"feature": "whoKnowsWhom"}
    with pytest.raises(NotFound):
        World().service.record(TENANT, "contact", "steady")  # not computed yet


def test_needing_attention_lists_the_faded_tie_worst_first_in_pages(world: World) -> None:
    flagged = world.service.list_records(TENANT, "contact", needs_attention=True, page_size=10, continuation=None)
    assert [v.insight.id for v in flagged.items] == ["fading"]
    first = world.service.list_records(TENANT, "contact", needs_attention=False, page_size=1, continuation=None)
    assert first.continuation is not None
    second = world.service.list_records(TENANT, "contact", needs_attention=False, page_size=1,
                                        continuation=first.continuation)
    assert [v.insight.id for v in [*first.items, *second.items]] == ["fading", "steady"]
    assert second.continuation is None
    with pytest.raises(ValidationFailed):
        world.service.list_records(TENANT, "contact", needs_attention=False, page_size=1, continuation="bm9wZQ")


def test_introducers_follow_the_mode(world: World) -> None:
    enhanced = world.service.who_knows_whom(TENANT, "contact", "steady")
    assert enhanced.mode == "enhanced"
    assert [i.user_id for i in enhanced.introducers] == ["ann", "bob"]
    world.set(enabled(consent=False))
    basic = world.service.who_knows_whom(TENANT, "contact", "steady")
    assert (basic.mode, [i.user_id for i in basic.introducers]) == ("basic", ["ann"])
    with pytest.raises(Unprocessable):
        world.service.introducer(TENANT, "contact", "steady", "bob")  # an Exchange-only tie, in basic mode


def test_introducers_to_a_company_are_found_by_its_domain(world: World) -> None:
    found = world.service.who_knows_whom_at(TENANT, "Fabrikam.com ")
    assert (found.insight.entity_type, found.insight.id) == ("account", "fabrikam")
    with pytest.raises(NotFound):
        world.service.who_knows_whom_at(TENANT, "unknown.com")


def test_a_data_subject_export_has_the_persons_activities(world: World) -> None:
    subject = world.service.export(TENANT, "contact", "fading")
    assert sorted(a.id for a in subject.activities) == ["f0", "f1", "f2", "f3"]
    assert subject.insight is not None
    mailbox = world.service.export(TENANT, "user", "bob")
    assert {a.id for a in mailbox.activities} >= {"x0", "x1", "x2"}
    with pytest.raises(NotFound):
        world.service.export(TENANT, "lead", "nobody")


def test_an_export_reads_the_log_only_for_what_the_ledgers_have_not_applied(world: World) -> None:
    world.clock.advance(timedelta(hours=1))
    world.records.put(TENANT, "activities", mail("applied", BOB, FADING, 0), mail("applied-other", BOB, STEADY, 0),
                      at=world.clock.now())
    world.service.refresh(TENANT)  # applied, but still in the log (the settle margin)
    world.records.put(TENANT, "activities", mail("pending", BOB, FADING, 0), at=world.clock.now())
    world.records.put(TENANT, "activities", mail("other", BOB, STEADY, 0), at=world.clock.now())
    reads = world.records.activity_reads
    subject = world.service.export(TENANT, "contact", "fading")
    assert {"applied", "pending"} <= {a.id for a in subject.activities}
    assert "other" not in {a.id for a in subject.activities}
    # f0-f3 and "applied" from the person's index, and the two writes not applied yet; not "applied-other".
    assert world.records.activity_reads - reads == 5 + 2


def test_a_full_recompute_asks_for_the_next_one_on_the_tenants_daily_slot(world: World) -> None:
    """Every pass asks for the next on the same grid, so that the passes an admin or a change asked for merge with
    the daily one instead of adding a recompute a day each."""
    (due,) = world.index.of(IndexKind.INSIGHTS_RECOMPUTE, TENANT)
    assert due == next_slot(TENANT, FULL_RECOMPUTE_INTERVAL, NOW)
    assert NOW + FULL_RECOMPUTE_INTERVAL / 2 <= due < NOW + FULL_RECOMPUTE_INTERVAL * 1.5
    world.clock.advance(timedelta(hours=3))
    world.service.recompute(TENANT)  # (an admin's, say)
    assert world.index.of(IndexKind.INSIGHTS_RECOMPUTE, TENANT) == [due]


def test_a_refresh_recomputes_only_what_new_activities_touch(world: World) -> None:
    world.clock.advance(timedelta(hours=1))
    world.records.put(TENANT, "activities", mail("new", BOB, FADING, 0), at=world.clock.now())
    report = world.service.refresh(TENANT)
    ids = {i.id for i in world.insights_store.iter(TENANT) if i.computed_at == world.clock.now()}
    assert report.records == len(ids)
    assert "fading" in ids
    assert "steady" not in ids


def test_a_refresh_takes_what_was_written_from_the_log_and_reads_only_the_rows_it_does_not_hold(
        world: World) -> None:
    before = world.insights_store.get(TENANT, "contact", "fading")
    assert before is not None
    world.clock.advance(timedelta(hours=1))
    world.records.put(TENANT, "activities", mail("new", BOB, FADING, 3), at=world.clock.now())
    world.records.put(TENANT, "activities", mail("new", BOB, FADING, 1, version=2), at=world.clock.now())
    assert world.records.remove(TENANT, "activities", ["crm|f0"], world.clock.now()) == ["crm|f0"]  # (a tombstone:
    reads = world.records.activity_reads  # its log entry holds no document)
    world.service.refresh(TENANT)
    assert world.records.activity_reads - reads == 1
    after = world.insights_store.get(TENANT, "contact", "fading")
    assert after is not None
    assert after.crm.kpis.activities == before.crm.kpis.activities
    assert after.crm.kpis.last_interaction is not None
    assert after.crm.kpis.last_interaction.activity_id == "new"
    assert after.crm.kpis.last_interaction.at == NOW - timedelta(days=1)  # version 2: a day ago, not 3


def test_an_activity_of_someone_who_opted_out_asks_for_their_purge(world: World) -> None:
    world.records.put(TENANT, "contacts", contact("fading", FADING, accountId="fabrikam", version=2, optedOut=True),
                      at=NOW)
    world.clock.advance(timedelta(hours=1))
    world.records.put(TENANT, "activities", mail("late", BOB, FADING, 0), at=world.clock.now())
    world.service.refresh(TENANT)
    assert world.index.of(IndexKind.OPT_OUT_PURGE, TENANT) == [world.clock.now()]


def test_a_recompute_asked_of_a_tenant_never_computed_is_done_once_its_rebuild_ends() -> None:
    """The first computation rebuilds the aggregates, and its last phase is the pass over every record: the
    recompute's status follows it from queued to done."""
    fresh = World()
    asked = fresh.service.request_recompute(TENANT)
    assert asked.state == "queued"
    fresh.clock.advance(timedelta(seconds=30))
    work = InsightsUpdate(fresh.service, fresh.index, fresh.queue, fresh.clock)
    assert work.run(TENANT, list(fresh.index.due(IndexKind.INSIGHTS_RECOMPUTE, fresh.clock.now()))) == "recomputed"
    status = fresh.service.recompute_status(TENANT)
    assert (status.state, status.records) == ("done", 3)


def test_an_asked_recompute_goes_on_the_queue_and_its_status_follows_it(world: World) -> None:
    world.clock.advance(timedelta(minutes=5))
    asked = world.service.request_recompute(TENANT)
    assert asked.state == "queued"
    assert world.queue.kinds() == ["insights-update"]
    assert world.index.of(IndexKind.INSIGHTS_RECOMPUTE, TENANT)[0] == world.clock.now()
    world.clock.advance(timedelta(seconds=30))
    world.service.recompute(TENANT)
    status = world.service.recompute_status(TENANT)
    assert (status.state, status.records) == ("done", 3)  # the account and its two contacts
    world.set(enabled().disable(NOW))
    with pytest.raises(Conflict):
        world.service.request_recompute(TENANT)


def test_a_refresh_sees_a_removal_as_a_change_and_computes_the_record_without_it(world: World) -> None:
    before = world.insights_store.get(TENANT, "contact", "fading")
    assert before is not None
    world.clock.advance(timedelta(hours=1))
    assert world.records.remove(TENANT, "activities", ["crm|f0"], world.clock.now()) == ["crm|f0"]
    world.service.refresh(TENANT)
    after = world.insights_store.get(TENANT, "contact", "fading")
    assert after is not None
    assert after.computed_at == world.clock.now()
    assert after.crm.kpis.activities == before.crm.kpis.activities - 1
    assert "steady" not in {i.id for i in world.insights_store.iter(TENANT) if i.computed_at == world.clock.now()}


def test_a_person_who_opts_out_is_not_served_on_the_very_next_read(world: World) -> None:
    """Fails on the engine before: their insight and introducers stayed until a recompute ran."""
    world.records.put(TENANT, "contacts", contact("fading", FADING, accountId="fabrikam", version=2, optedOut=True),
                      at=NOW)
    with pytest.raises(NotFound):
        world.service.record(TENANT, "contact", "fading")
    with pytest.raises(NotFound):
        world.service.who_knows_whom(TENANT, "contact", "fading")
    listed = world.service.list_records(TENANT, "contact", needs_attention=False, page_size=10, continuation=None)
    assert [v.insight.id for v in listed.items] == ["steady"]  # nor in the lists
    attention = world.service.list_records(TENANT, "contact", needs_attention=True, page_size=10, continuation=None)
    assert "fading" not in [v.insight.id for v in attention.items]
    assert [i.user_id for i in world.service.who_knows_whom(TENANT, "contact", "steady").introducers] == ["ann", "bob"]
    world.records.put(TENANT, "users", user("bob", version=2, optedOut=True), at=NOW)
    assert [i.user_id for i in world.service.who_knows_whom(TENANT, "contact", "steady").introducers] == ["ann"]
    with pytest.raises(Unprocessable):
        world.service.introducer(TENANT, "contact", "steady", "bob")


def test_the_log_forgets_what_a_computation_applied(world: World) -> None:
    """The log holds replaced and purged documents: they must not outlive their use."""
    world.clock.advance(timedelta(hours=1))
    world.records.delete(TENANT, "activities", "crm|f0", world.clock.now())  # a purge logs what it deletes
    world.clock.advance(timedelta(hours=1))
    world.service.refresh(TENANT)
    mark = world.insights_store.refreshed_through(TENANT)
    world.clock.advance(timedelta(hours=1))
    world.service.refresh(TENANT)
    assert mark is not None
    assert all(w.ingested_at > mark for _, w in world.records.log)
    assert not any("crm|f0" in w.previous for _, w in world.records.log)


def test_a_long_ingestion_log_is_refreshed_in_bounded_steps_that_continue_each_other(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A purge or a back-fill logs far more than one step should hold: each step takes a bounded part, keeps
    where it got to and sends the next; the end state is the one a single refresh gives."""
    monkeypatch.setattr(insights_module, "MAX_LOGGED_KEYS_PER_STEP", 2)
    world.clock.advance(timedelta(hours=1))
    for n in range(5):  # five writes of one activity each, a second apart
        world.clock.advance(timedelta(seconds=1))
        world.records.put(TENANT, "activities", mail(f"n{n}", BOB, FADING, n), at=world.clock.now())
    world.clock.advance(timedelta(seconds=1))
    work = InsightsUpdate(world.service, world.index, world.queue, world.clock)
    world.index.add(IndexKind.INSIGHTS_REFRESH, TENANT, world.clock.now())
    world.queue.sent.clear()
    outcomes = [work.run(TENANT, [IndexEntry(IndexKind.INSIGHTS_REFRESH, TENANT, world.clock.now())])]
    while world.queue.sent:
        message, _ = world.queue.sent.pop(0)
        outcomes.append(work.run(TENANT, [IndexEntry(kind, TENANT, due) for kind, due in message.rows]))
    # 2 + 2 + 1 activities (the records stored with the world, which the first computation applied and the
    # settle margin reads again, do not count toward a step's part)
    assert outcomes == ["updateContinues", "updateContinues", "refreshed"]
    fading = world.insights_store.get(TENANT, "contact", "fading")
    assert fading is not None
    assert fading.crm.kpis.activities == 4 + 5
    assert world.index.of(IndexKind.INSIGHTS_REFRESH, TENANT) == []
    # Every step's writes are known applied, not only the last's: the next refresh, which reads them all again
    # (the settle margin), applies none of them.
    assert world.service.refresh(TENANT).activities == 0


def test_writes_a_step_applied_and_reads_again_in_the_settle_margin_do_not_count_toward_the_next_steps_part(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh right after a batch as large as a step's part reads that batch again (the settle margin) and
    finds it applied: the new batch after it is still applied in that same step."""
    monkeypatch.setattr(insights_module, "MAX_LOGGED_KEYS_PER_STEP", 2)
    world.clock.advance(timedelta(hours=1))
    world.records.put(TENANT, "activities", mail("a0", BOB, FADING, 0), mail("a1", BOB, FADING, 1),
                      at=world.clock.now())
    first = world.service.refresh(TENANT)
    assert (first.activities, first.more_after) == (2, None)
    world.clock.advance(timedelta(seconds=1))  # (still within the settle margin of the first batch)
    world.records.put(TENANT, "activities", mail("b0", BOB, FADING, 2), mail("b1", BOB, FADING, 3),
                      at=world.clock.now())
    second = world.service.refresh(TENANT)
    assert (second.activities, second.more_after) == (2, None)
    fading = world.insights_store.get(TENANT, "contact", "fading")
    assert fading is not None
    assert fading.crm.kpis.activities == 4 + 4


def test_the_daily_pass_keeps_the_insight_of_a_record_created_while_it_ran(world: World,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A record created after a step of the pass loaded the tenant's records may get its insight from a refresh
    meanwhile: the pass, which does not know the record, must not delete that insight as a gone record's."""
    steady = world.insights_store.get(TENANT, "contact", "steady")
    assert steady is not None
    newcomer = steady.model_copy(update={"id": "newcomer", "name": "Newcomer"})
    original, ran = world.insights_store.in_range, []

    def in_range(*args: object, **kwargs: object) -> object:
        if not ran:
            ran.append(True)
            world.records.put(TENANT, "contacts", contact("newcomer", "sam@fabrikam.com", accountId="fabrikam"),
                              at=world.clock.now())  # created meanwhile, and computed by a refresh
            world.insights_store.update(TENANT, [newcomer])
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(world.insights_store, "in_range", in_range)
    world.clock.advance(timedelta(days=1))
    world.service.recompute(TENANT)
    assert ran
    assert world.insights_store.get(TENANT, "contact", "newcomer") is not None
    world.records.remove(TENANT, "contacts", ["newcomer"], world.clock.now())
    monkeypatch.undo()
    world.clock.advance(timedelta(days=1))
    world.service.recompute(TENANT)
    assert world.insights_store.get(TENANT, "contact", "newcomer") is None  # gone now: its insight goes


def test_a_refresh_trusts_the_log_up_to_the_oldest_sync_call_under_way_and_no_further(world: World) -> None:
    """A call stamped T that commits after a refresh has read the log past T: the mark stays before T while the
    call is registered, so the next refresh reads its rows; once no call is under way the mark follows the log up
    to IN_FLIGHT_MARGIN before the refresh's moment (not WRITE_SETTLE: a back-fill would read its last quarter
    of an hour of the log again at every refresh)."""
    world.clock.advance(timedelta(hours=1))
    slow_call = world.clock.now()
    token = world.records.begin_writing(TENANT, slow_call)
    world.clock.advance(timedelta(minutes=5))
    world.records.put(TENANT, "activities", mail("b0", BOB, FADING, 0), at=world.clock.now())  # a later call
    assert world.service.refresh(TENANT).activities == 1
    mark = world.insights_store.refreshed_through(TENANT)
    assert mark is not None
    assert mark < slow_call
    world.records.put(TENANT, "activities", mail("a0", BOB, FADING, 1), at=slow_call)  # it commits now
    world.records.end_writing(TENANT, token)
    assert world.service.refresh(TENANT).activities == 1  # a0, found (b0 read again, known applied)
    assert world.insights_store.refreshed_through(TENANT) == world.clock.now() - IN_FLIGHT_MARGIN
    assert world.service.refresh(TENANT).activities == 0
    fading = world.insights_store.get(TENANT, "contact", "fading")
    assert fading is not None
    assert fading.crm.kpis.activities == 4 + 2


def test_a_call_that_never_ended_holds_the_mark_back_only_until_the_settle_time_past_its_stamp(world: World) -> None:
    world.clock.advance(timedelta(hours=1))
    crashed = world.clock.now()
    world.records.begin_writing(TENANT, crashed)  # its host stopped it: it never ends its registration
    world.clock.advance(timedelta(minutes=5))
    world.records.put(TENANT, "activities", mail("b0", BOB, FADING, 0), at=world.clock.now())
    world.service.refresh(TENANT)
    assert (world.insights_store.refreshed_through(TENANT) or NOW) < crashed
    world.clock.set(crashed + WRITE_SETTLE + timedelta(seconds=1))
    world.service.refresh(TENANT)
    assert (world.insights_store.refreshed_through(TENANT) or NOW) > crashed
    assert world.records.writing == {}  # its registration is gone


def test_a_chain_of_steps_from_the_mark_applies_none_of_the_margin_again_past_its_first_step(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """During a back-fill every write of the last IN_FLIGHT_MARGIN is read again by the next chain of steps; its
    first step stops at its bound, and the writes after it must still be known applied by the steps that follow
    (the first step's mark once named only what it had read itself)."""
    monkeypatch.setattr(insights_module, "MAX_LOGGED_KEYS_PER_STEP", 2)
    world.clock.advance(timedelta(hours=1))
    for n in range(6):
        world.records.put(TENANT, "activities", mail(f"a{n}", BOB, FADING, 2 * n),
                          mail(f"b{n}", BOB, FADING, 2 * n + 1), at=world.clock.now())
        world.clock.advance(timedelta(seconds=2))

    def chain() -> tuple[int, int]:
        report, steps, applied = world.service.refresh(TENANT), 1, 0
        applied += report.activities
        while report.more_after is not None:
            report, steps = world.service.refresh(TENANT, report.more_after), steps + 1
            applied += report.activities
        return applied, steps

    assert chain() == (12, 6)
    again, steps = chain()  # (all of it within the margin: read again)
    assert steps > 1
    assert again == 0
    fading = world.insights_store.get(TENANT, "contact", "fading")
    assert fading is not None
    assert fading.crm.kpis.activities == 4 + 12
