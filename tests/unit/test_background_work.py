"""Each kind of background work on fakes of its ports: it re-reads the tenant's state and decides again, so a
late, repeated or stale request changes nothing twice, and a failing step leaves its rows for the next run."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.clock import FixedClock
from shared.domain.tenant_settings import ConsentStatus
from shared.errors import StorageUnavailable
from shared.services.background.consent_deadline import ConsentDeadlines
from shared.services.background.consent_recheck import ConsentRechecks
from shared.services.background.exchange_purge import ExchangePurge
from shared.services.background.insights_update import InsightsUpdate
from shared.services.background.opt_out_purge import OptOutPurge
from shared.services.background.scheduler import MAX_ROWS_PER_MESSAGE, BackgroundScheduler
from shared.services.background.steps import LEASE, ask_soon
from shared.services.background.worker import BackgroundWorker
from shared.services.consent import ConsentConfig, ConsentService
from shared.services.insights import InsightsService, RecomputeReport
from shared.services.ports import GrantCheck, IndexEntry, IndexKind, WorkKind, WorkMessage
from shared.services.tenant_settings import TenantSettingsService
from shared.services.timing import CUTOFF_MARGIN, RECHECK_INTERVAL, WRITE_SETTLE
from shared.tenancy import TenantId
from tests.builders import NOW, TENANT, contact, mail, user
from tests.fakes import (
    FakeConsentRequests,
    FakeConsentVerifier,
    FakeInsights,
    FakeLedgers,
    FakeRecords,
    FakeScheduleIndex,
    FakeSettingsRepository,
    FakeWorkQueue,
)


class World:
    def __init__(self) -> None:
        self.clock = FixedClock(NOW)
        self.index = FakeScheduleIndex()
        self.repository = FakeSettingsRepository()
        self.settings = TenantSettingsService(self.repository, self.clock, self.index)
        self.records = FakeRecords()
        self.queue = FakeWorkQueue()
        self.verifier = FakeConsentVerifier()
        self.consent = ConsentService(self.settings, FakeConsentRequests(), self.verifier, self.clock,
                                      ConsentConfig("https://login.test", "client", "https://app.test/cb"))
        self.settings.set_prerequisites(TENANT, "admin", True, "FR")
        self.deadline = self.settings.enable(TENANT, "admin", security_role_ids=[]).settings.consent_deadline

    def rows(self, kind: IndexKind) -> list[IndexEntry]:
        return list(self.index.due(kind, self.clock.now() + timedelta(days=3650)))

    def grant(self) -> None:
        self.settings.change(TENANT, "admin", "consentGranted",
                             lambda s, now: s.record_consent_granted("admin", ("Mail.ReadBasic.All",), now))


@pytest.fixture
def world() -> World:
    return World()


def test_the_deadline_disables_exchange_use_at_its_moment_and_not_before(world: World) -> None:
    work = ConsentDeadlines(world.settings, world.index)
    rows = world.rows(IndexKind.CONSENT_DEADLINE)
    assert world.deadline is not None
    assert [r.due for r in rows] == [world.deadline]
    world.clock.set(world.deadline - timedelta(seconds=1))
    assert work.run(TENANT, rows) == "notYetDue"
    world.clock.set(world.deadline)
    assert work.run(TENANT, rows) == "autoDisabled"
    after = world.settings.current(TENANT).settings
    assert (after.consent_status(), after.who_knows_whom.enabled, after.auto_disabled_at) == (
        ConsentStatus.EXPIRED, False, world.deadline)
    assert world.rows(IndexKind.CONSENT_DEADLINE) == []
    assert [r.due for r in world.rows(IndexKind.EXCHANGE_PURGE)] == [world.deadline + WRITE_SETTLE]
    events = len(world.repository.events)
    assert work.run(TENANT, rows) == "stale"  # delivered again: nothing changes twice
    assert len(world.repository.events) == events
    assert world.repository.events[0].action == "autoDisable"


def test_a_deadline_whose_window_closed_is_stale(world: World) -> None:
    rows = world.rows(IndexKind.CONSENT_DEADLINE)
    world.grant()
    world.clock.set(world.deadline + timedelta(hours=1))  # type: ignore[operator]
    events = len(world.repository.events)
    assert ConsentDeadlines(world.settings, world.index).run(TENANT, rows) == "stale"
    assert len(world.repository.events) == events
    assert world.settings.current(TENANT).settings.exchange_data_usable


def test_a_granted_consent_is_rechecked_and_a_withdrawal_noticed(world: World) -> None:
    world.grant()
    work = ConsentRechecks(world.settings, world.index, world.clock, lambda: world.consent)
    world.clock.advance(RECHECK_INTERVAL)
    assert work.run(TENANT, world.rows(IndexKind.CONSENT_RECHECK)) == "stillGranted"
    assert [r.due for r in world.rows(IndexKind.CONSENT_RECHECK)] == [world.clock.now() + RECHECK_INTERVAL]
    world.verifier.answers = [GrantCheck("transient", error_code="503")]
    assert work.run(TENANT, world.rows(IndexKind.CONSENT_RECHECK)) == "recheckInconclusive"
    assert world.settings.current(TENANT).settings.consent_granted
    world.verifier.answers = [GrantCheck("servicePrincipalMissing", error_code="AADSTS700016")]
    assert work.run(TENANT, world.rows(IndexKind.CONSENT_RECHECK)) == "withdrawn"
    after = world.settings.current(TENANT).settings
    assert (after.consent_status(), after.exchange_data_usable) == (ConsentStatus.WITHDRAWN, False)
    assert world.rows(IndexKind.CONSENT_RECHECK) == []
    assert world.rows(IndexKind.EXCHANGE_PURGE)


def test_the_exchange_purge_waits_for_calls_in_flight_then_deletes_what_came_before(world: World) -> None:
    world.records.put(TENANT, "users", user("ann"), at=NOW)
    world.records.put(TENANT, "activities", *[mail(f"x{n}", "ann@contoso.com", "lee@fabrikam.com", 1,
                                                   source="exchange") for n in range(3)],
                      mail("c1", "ann@contoso.com", "lee@fabrikam.com", 1), at=NOW)
    world.clock.advance(timedelta(hours=1))
    ended = world.settings.set_exchange_integration(TENANT, "admin", False).settings.exchange.purge_requested_at
    assert ended is not None
    world.records.put(TENANT, "activities", mail("late", "ann@contoso.com", "lee@fabrikam.com", 0,
                                                 source="exchange"), at=ended + CUTOFF_MARGIN + timedelta(seconds=1))
    work = ExchangePurge(world.settings, world.index, world.clock, world.records, world.queue)
    rows = world.rows(IndexKind.EXCHANGE_PURGE)
    assert work.run(TENANT, rows) == "notYetDue"
    world.clock.set(ended + WRITE_SETTLE)
    assert work.run(TENANT, rows) == "purged"
    assert sorted(a.id for a, _ in world.records.iter_activities(TENANT)) == ["c1", "late"]
    assert world.settings.current(TENANT).settings.exchange.purged_through == ended + CUTOFF_MARGIN
    assert world.rows(IndexKind.EXCHANGE_PURGE) == []
    assert world.rows(IndexKind.INSIGHTS_RECOMPUTE)  # insights computed meanwhile may count what went
    assert world.queue.kinds() == ["insights-update"]  # asked for at once, not at the timer's next run


def test_a_purge_out_of_time_resumes_and_finishes(world: World) -> None:
    world.records.group_size = 10
    world.records.put(TENANT, "activities", *[mail(f"x{n}", "ann@contoso.com", "lee@fabrikam.com", 1,
                                                   source="exchange") for n in range(25)], at=NOW)
    ended = world.settings.set_exchange_integration(TENANT, "admin", False).settings.exchange.purge_requested_at
    world.clock.set(ended + WRITE_SETTLE)  # type: ignore[operator]
    hurried = ExchangePurge(world.settings, world.index, world.clock, world.records, world.queue,
                            seconds_per_step=0)
    rows = world.rows(IndexKind.EXCHANGE_PURGE)
    assert hurried.run(TENANT, rows) == "purgeContinues"
    assert len(list(world.records.iter_activities(TENANT))) == 15
    kept = world.rows(IndexKind.EXCHANGE_PURGE)
    assert [r.due for r in kept] == [r.due for r in rows]  # still due, with its position and a lease
    assert kept[0].position is not None
    assert kept[0].leased_until == world.clock.now() + LEASE
    continuation, _ = world.queue.sent[-1]
    assert (continuation.kind, continuation.entries()[0].due) == (WorkKind.EXCHANGE_PURGE, rows[0].due)
    outcomes = [hurried.run(TENANT, continuation.entries()) for _ in range(2)]
    assert outcomes == ["purgeContinues", "purged"]
    assert list(world.records.iter_activities(TENANT)) == []


def test_a_purge_resumes_from_its_position_and_a_duplicate_delivery_stops(world: World) -> None:
    world.records.group_size = 10
    world.records.put(TENANT, "activities", *[mail(f"x{n:02}", "ann@contoso.com", "lee@fabrikam.com", 1,
                                                   source="exchange") for n in range(30)], at=NOW)
    ended = world.settings.set_exchange_integration(TENANT, "admin", False).settings.exchange.purge_requested_at
    world.clock.set(ended + WRITE_SETTLE)  # type: ignore[operator]
    rows = world.rows(IndexKind.EXCHANGE_PURGE)
    first = ExchangePurge(world.settings, world.index, world.clock, world.records, world.queue, seconds_per_step=0)
    assert first.run(TENANT, rows) == "purgeContinues"
    # A second delivery of the first message read the row before the first step kept its position: its own
    # step finds the row changed and stops instead of starting a second chain.
    stale_read = IndexEntry(rows[0].kind, TENANT, rows[0].due, etag="W/\"before the first step\"")
    sends = len(world.queue.sent)
    fresh_get = world.index.get
    world.index.get = lambda *key: stale_read  # type: ignore[method-assign]
    assert first.run(TENANT, rows) == "superseded"
    assert len(world.queue.sent) == sends  # no second chain
    world.index.get = fresh_get  # type: ignore[method-assign]
    assert first.run(TENANT, rows) == "purged"  # the chain resumes after its own position
    assert list(world.records.iter_activities(TENANT)) == []


def test_a_purge_row_without_a_request_is_stale_and_deletes_nothing(world: World) -> None:
    world.records.put(TENANT, "activities", mail("x1", "ann@contoso.com", "lee@fabrikam.com", 1, source="exchange"),
                      at=NOW)
    world.index.add(IndexKind.EXCHANGE_PURGE, TENANT, NOW)
    rows = world.rows(IndexKind.EXCHANGE_PURGE)
    work = ExchangePurge(world.settings, world.index, world.clock, world.records, world.queue)
    assert work.run(TENANT, rows) == "stale"
    assert len(list(world.records.iter_activities(TENANT))) == 1
    assert world.rows(IndexKind.EXCHANGE_PURGE) == []


def test_the_opt_out_purge_deletes_the_persons_activities_and_their_mailbox(world: World) -> None:
    world.records.put(TENANT, "users", user("ann"), user("bob", optedOut=True), at=NOW)
    world.records.put(TENANT, "contacts", contact("k1", "lee@fabrikam.com", optedOut=True),
                      contact("k2", "kim@fabrikam.com"), at=NOW)
    world.records.put(TENANT, "activities", mail("a1", "ann@contoso.com", "lee@fabrikam.com", 1),
                      mail("a2", "ann@contoso.com", "kim@fabrikam.com", 1),
                      mail("a3", "bob@contoso.com", "kim@fabrikam.com", 1, source="exchange"), at=NOW)
    world.index.add(IndexKind.OPT_OUT_PURGE, TENANT, NOW)
    work = OptOutPurge(world.index, world.clock, world.records, world.queue)
    assert work.run(TENANT, world.rows(IndexKind.OPT_OUT_PURGE)) == "optOutPurged"
    assert [a.id for a, _ in world.records.iter_activities(TENANT)] == ["a2"]
    assert world.rows(IndexKind.OPT_OUT_PURGE) == []


def test_one_update_per_tenant_full_if_any_row_asks_for_it(world: World) -> None:
    calls: list[str] = []

    class Recording(InsightsService):

        def recompute(self, tenant_id: TenantId, asked=None, after=None):  # type: ignore[no-untyped-def]
            calls.append(f"recompute asked at {asked:%H:%M}")
            return RecomputeReport(0, 0, 0.0)

        def refresh(self, tenant_id: TenantId, after=None):  # type: ignore[no-untyped-def]
            calls.append("refresh")
            return RecomputeReport(0, 0, 0.0)

    insights = Recording(world.settings, world.records, FakeInsights(), world.clock, world.index, world.queue,
                         FakeLedgers())
    work = InsightsUpdate(insights, world.index, world.queue, world.clock)
    refresh_only = [IndexEntry(IndexKind.INSIGHTS_REFRESH, TENANT, NOW)]
    assert work.run(TENANT, refresh_only) == "refreshed"
    both = [*refresh_only, IndexEntry(IndexKind.INSIGHTS_RECOMPUTE, TENANT, NOW + timedelta(minutes=5)),
            IndexEntry(IndexKind.INSIGHTS_RECOMPUTE, TENANT, NOW)]
    for row in both:
        world.index.add(row.kind, row.tenant_id, row.due)
    assert work.run(TENANT, both) == "recomputed"
    # (a pass that began at the last ask or after answers every row; one under way is continued whatever they ask)
    assert calls == ["refresh", f"recompute asked at {NOW + timedelta(minutes=5):%H:%M}"]


def test_when_a_pass_ends_the_rows_asked_after_it_began_are_sent_again_for_the_next(world: World) -> None:
    """A pass under way is continued whatever its rows ask; when it ends, the rows due after it began were not
    answered by it: they stay, and go again at once (the next step begins a pass for them). A late duplicate of a
    step whose rows are gone does nothing."""
    calls: list[datetime] = []
    began = NOW + timedelta(minutes=2)

    class Recording(InsightsService):

        def recompute(self, tenant_id: TenantId, asked=None, after=None):  # type: ignore[no-untyped-def]
            calls.append(asked)
            return RecomputeReport(0, 0, 0.0, pass_began=began)

    insights = Recording(world.settings, world.records, FakeInsights(), world.clock, world.index, world.queue,
                         FakeLedgers())
    work = InsightsUpdate(insights, world.index, world.queue, world.clock)
    for due in (NOW, NOW + timedelta(minutes=5)):
        world.index.add(IndexKind.INSIGHTS_RECOMPUTE, TENANT, due)
    world.clock.set(NOW + timedelta(minutes=6))
    world.queue.sent.clear()
    assert work.run(TENANT, world.rows(IndexKind.INSIGHTS_RECOMPUTE)) == "recomputed"
    assert calls == [NOW + timedelta(minutes=5)]
    (left,) = world.rows(IndexKind.INSIGHTS_RECOMPUTE)
    assert left.due == NOW + timedelta(minutes=5)
    assert [m.rows for m, _ in world.queue.sent] == [((IndexKind.INSIGHTS_RECOMPUTE, left.due),)]
    gone = IndexEntry(IndexKind.INSIGHTS_RECOMPUTE, TENANT, NOW)  # (done above)
    assert work.run(TENANT, [gone]) == "stale"
    assert len(calls) == 1


def test_asks_within_a_minute_send_one_message_and_one_more_after_it_for_what_came_meanwhile(world: World) -> None:
    """The first update may have read the log before a later round wrote: that round's data must not wait for
    the next day. However many rounds end in the minute, at most two messages go."""
    world.queue.sent.clear()
    for seconds in (10, 20, 30, 40):
        world.clock.set(NOW.replace(second=seconds))
        ask_soon(world.index, world.queue, world.clock, IndexKind.INSIGHTS_REFRESH, TENANT)
    minute = NOW.replace(second=0, microsecond=0)
    assert [(m.rows, delay) for m, delay in world.queue.sent] == [
        (((IndexKind.INSIGHTS_REFRESH, minute),), None),
        (((IndexKind.INSIGHTS_REFRESH, minute + timedelta(minutes=1)),), timedelta(seconds=40))]
    assert [r.due for r in world.rows(IndexKind.INSIGHTS_REFRESH)] == [minute, minute + timedelta(minutes=1)]


def test_the_timer_only_sends_one_message_per_tenant_and_kind_and_leases_the_rows(world: World) -> None:
    other = TenantId("0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a11")
    for tenant in (TENANT, other):
        world.index.add(IndexKind.INSIGHTS_REFRESH, tenant, NOW - timedelta(minutes=5))
        world.index.add(IndexKind.INSIGHTS_RECOMPUTE, tenant, NOW)
        world.index.add(IndexKind.CONSENT_RECHECK, tenant, NOW)
    world.index.add(IndexKind.CONSENT_RECHECK, TENANT, NOW + timedelta(hours=1))  # not due yet
    world.queue.sent.clear()
    before = {key: entry for key, entry in world.index.rows.items()}
    report = BackgroundScheduler(world.index, world.queue, world.clock).run()
    assert (report.count(WorkKind.INSIGHTS_UPDATE), report.count(WorkKind.CONSENT_RECHECK)) == (2, 2)
    updates = [m for m, _ in world.queue.sent if m.kind is WorkKind.INSIGHTS_UPDATE]
    assert sorted(len(m.rows) for m in updates) == [2, 2]  # a refresh and a recompute: one computation
    assert world.index.rows == {k: v for k, v in world.index.rows.items() if k in before}  # nothing done here
    assert BackgroundScheduler(world.index, world.queue, world.clock).run().messages == {}  # leased
    world.clock.advance(LEASE + timedelta(seconds=1))
    assert BackgroundScheduler(world.index, world.queue, world.clock).run().count(WorkKind.CONSENT_RECHECK) == 2


def test_a_tenant_with_many_rows_gets_a_bounded_message(world: World) -> None:
    for minute in range(MAX_ROWS_PER_MESSAGE + 20):
        world.index.add(IndexKind.INSIGHTS_REFRESH, TENANT, NOW - timedelta(minutes=minute))
    world.queue.sent.clear()
    BackgroundScheduler(world.index, world.queue, world.clock).run()
    assert [len(m.rows) for m, _ in world.queue.sent] == [MAX_ROWS_PER_MESSAGE]
    assert len(WorkMessage.from_json(world.queue.sent[0][0].to_json()).rows) == MAX_ROWS_PER_MESSAGE


def test_a_queue_that_cannot_be_reached_fails_the_run_and_leaves_the_rows_due(world: World) -> None:
    class Down(FakeWorkQueue):
        def send(self, message: WorkMessage, *, delay: timedelta | None = None) -> None:
            raise StorageUnavailable("queue storage is unreachable")

    world.index.add(IndexKind.CONSENT_RECHECK, TENANT, NOW)
    with pytest.raises(StorageUnavailable):
        BackgroundScheduler(world.index, Down(), world.clock).run()
    assert [r.leased_until for r in world.rows(IndexKind.CONSENT_RECHECK)] == [None]
    assert BackgroundScheduler(world.index, world.queue, world.clock).run().count(WorkKind.CONSENT_RECHECK) == 1


def test_the_worker_hands_a_message_to_its_kind_of_work(world: World) -> None:
    seen: list[tuple[TenantId, list[IndexEntry]]] = []

    class Recording:
        kind = WorkKind.CONSENT_RECHECK

        def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str:
            seen.append((tenant_id, rows))
            return "done"

    message = WorkMessage(WorkKind.CONSENT_RECHECK, TENANT, ((IndexKind.CONSENT_RECHECK, NOW),), "op-1")
    assert BackgroundWorker({WorkKind.CONSENT_RECHECK: Recording()}).handle(WorkMessage.from_json(
        message.to_json())) == "done"
    assert seen == [(TENANT, [IndexEntry(IndexKind.CONSENT_RECHECK, TENANT, NOW)])]
