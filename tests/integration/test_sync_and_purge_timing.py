"""Purges against the sync: a call racing the end of Exchange use must put every row on one side of the purge's
cut-off, and data a connector sends after a person opted out must not stay stored."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from shared import bootstrap
from shared.clock import FixedClock
from shared.config import AppConfig
from shared.domain.records import Activity, Source
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.services.background.exchange_purge import ExchangePurge
from shared.services.background.worker import BackgroundWorker
from shared.services.ports import IndexKind, WorkKind
from shared.services.timing import CUTOFF_MARGIN, WRITE_SETTLE
from shared.storage.records_repository import TableRecords
from shared.storage.schedule_index import TableScheduleIndex
from shared.tenancy import TenantId
from tests.background import drain, run_background

pytestmark = pytest.mark.integration

SELLER = {"id": "u-1", "version": 1, "email": "ann@contoso.com", "securityRoleIds": [STANDARD_SALES_ROLES[0].id]}


class TickingClock(FixedClock):
    """A clock that moves a second each time it is read: a call that reads it twice sees two moments."""

    def now(self) -> datetime:
        moment = super().now()
        self.advance(timedelta(seconds=1))
        return moment


@pytest.fixture
def world(config: AppConfig, container: bootstrap.Container) -> bootstrap.Container:
    return bootstrap.build(dataclasses.replace(config, state_table=f"Race{(unique := uuid.uuid4().hex[:16])}",
                                               queue_prefix=f"t{unique}"),
                           clock=TickingClock(container.clock.now()))


def _exchange_on(world: bootstrap.Container) -> TenantId:
    tenant = TenantId(str(uuid.uuid4()))
    settings = world.tenant_settings()
    settings.change(tenant, "a", "p", lambda s, now: s.set_prerequisites(True, "US", now))
    settings.change(tenant, "a", "e", lambda s, now: s.enable(
        "a", now, security_role_ids=tuple(r.id for r in STANDARD_SALES_ROLES)))
    settings.change(tenant, "a", "c", lambda s, now: s.record_consent_granted("a", (), now))
    world.sync().ingest(tenant, "users", [SELLER])
    return tenant


def _mail(n: int, start: datetime) -> dict[str, object]:
    return {"id": f"x{n}", "version": 1, "source": "exchange", "kind": "email", "mailboxOwnerId": "u-1",
            "sender": "ann@contoso.com", "to": ["lee@fabrikam.com"], "start": start.isoformat()}


def test_every_row_of_a_sync_call_carries_the_moment_it_began(world: bootstrap.Container) -> None:
    tenant = _exchange_on(world)
    began = world.clock.now() + timedelta(seconds=1)  # the next reading is the call's first
    report = world.sync().ingest(tenant, "activities", [_mail(n, began) for n in range(250)])
    assert report.stored == 250
    stamps = {at for _, at in TableRecords(world.tables).iter_activities(tenant)}
    assert stamps == {began}  # not the moment each chunk of 100 was written


def test_a_row_stamped_before_exchange_use_ended_but_stored_after_is_purged(world: bootstrap.Container) -> None:
    tenant = _exchange_on(world)
    records = TableRecords(world.tables)
    began = world.clock.now()
    world.tenant_settings().change(tenant, "a", "off", lambda s, now: s.set_exchange_integration(False, now))
    ended = world.tenant_settings().current(tenant).settings.exchange.purge_requested_at
    assert ended is not None
    assert ended > began
    # A call that read the gates open at `began` commits its rows only now, after Exchange use ended.
    late = Activity.model_validate_json(json.dumps(_mail(1, began)))
    records.write(tenant, "activities", [(late, None)], began)
    # One that began while the change was being saved: it read the gates open, a moment after the change's time.
    later = Activity.model_validate_json(json.dumps(_mail(2, began)))
    records.write(tenant, "activities", [(later, None)], ended + timedelta(seconds=30))
    assert isinstance(world.clock, FixedClock)
    world.clock.set(ended + WRITE_SETTLE - timedelta(seconds=2))
    assert run_background(world).count("purged") == 0  # such calls may still be writing: not yet
    assert list(records.iter_records(tenant, "activities", Source.EXCHANGE)) == [late, later]
    world.clock.set(ended + WRITE_SETTLE)
    outcome = run_background(world)
    assert outcome.count("purged") == 1
    assert outcome.count("recomputed") == 1  # insights computed meanwhile may have counted what the purge deleted
    assert list(records.iter_records(tenant, "activities", Source.EXCHANGE)) == []


def test_an_activity_sent_after_its_person_opted_out_is_deleted_too(world: bootstrap.Container) -> None:
    tenant = _exchange_on(world)
    sync = world.sync()
    sync.ingest(tenant, "contacts", [{"id": "c-1", "version": 1, "email": "lee@fabrikam.com", "optedOut": True}])
    assert run_background(world).count("recomputed") == 1
    crm_call = {"id": "k-1", "version": 1, "source": "crm", "kind": "phoneCall", "sender": "ann@contoso.com",
                "to": ["lee@fabrikam.com"], "start": world.clock.now().isoformat(), "durationMinutes": 5}
    someone_else = {**crm_call, "id": "k-2", "to": ["sam@fabrikam.com"]}
    assert sync.ingest(tenant, "activities", [crm_call, _mail(2, world.clock.now()), someone_else]).stored == 3
    records = TableRecords(world.tables)
    assert run_background(world).count("refreshed") == 1  # which notices it, and asks for a purge
    assert run_background(world).count("optOutPurged") == 1
    assert [a.id for a, _ in records.iter_activities(tenant)] == ["k-2"]


def test_an_opt_out_sent_again_does_not_start_another_purge(world: bootstrap.Container) -> None:
    tenant = _exchange_on(world)
    sync = world.sync()
    index = TableScheduleIndex(world.tables)

    def purges() -> int:
        return len([e for e in index.due(IndexKind.OPT_OUT_PURGE, world.clock.now() + timedelta(days=1))
                    if e.tenant_id == tenant])

    lee = {"id": "c-1", "version": 1, "email": "lee@fabrikam.com", "optedOut": True}
    sync.ingest(tenant, "contacts", [lee])
    assert purges() == 1
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE)
    assert run_background(world).count("optOutPurged") == 1
    assert purges() == 0
    sync.ingest(tenant, "contacts", [lee])  # the connector's daily full sync: nothing new
    assert purges() == 0
    sync.ingest(tenant, "contacts", [{**lee, "version": 2, "fullName": "Lee"}])  # an edit, still opted out
    assert purges() == 0
    sync.ingest(tenant, "contacts", [{"id": "c-2", "version": 1, "email": "sam@fabrikam.com", "optedOut": True}])
    world.clock.advance(timedelta(minutes=1))
    sync.ingest(tenant, "contacts", [{"id": "c-3", "version": 1, "email": "kim@fabrikam.com", "optedOut": True}])
    assert purges() == 2
    world.clock.advance(WRITE_SETTLE)
    assert run_background(world).count("optOutPurged") == 1  # one scan does what both rows ask
    assert purges() == 0


def test_a_purge_out_of_time_continues_in_a_message_of_its_own_from_its_position(world: bootstrap.Container,
                                                                                 ) -> None:
    tenant = _exchange_on(world)
    assert world.sync().ingest(tenant, "activities", [_mail(n, world.clock.now()) for n in range(250)]).stored
    world.tenant_settings().change(tenant, "a", "off", lambda s, now: s.set_exchange_integration(False, now))
    assert isinstance(world.clock, FixedClock)
    world.clock.advance(WRITE_SETTLE + timedelta(minutes=1))
    hurried = ExchangePurge(world.tenant_settings(), world.index, world.clock, world.records, world.queue,
                            seconds_per_step=0)  # one transaction of 100 per message, then the budget is spent
    worker = BackgroundWorker({**world.worker().works, WorkKind.EXCHANGE_PURGE: hurried})
    world.scheduler().run()
    outcomes = drain(world, worker=worker)
    assert (outcomes.count("purgeContinues"), outcomes.count("purged")) == (2, 1)
    assert list(TableRecords(world.tables).iter_records(tenant, "activities", Source.EXCHANGE)) == []


def test_a_purge_waits_for_the_latest_end_of_exchange_use(world: bootstrap.Container) -> None:
    tenant = _exchange_on(world)
    settings = world.tenant_settings()
    index = TableScheduleIndex(world.tables)
    assert isinstance(world.clock, FixedClock)

    def switch(enabled: bool) -> datetime | None:
        settings.change(tenant, "a", "exchange", lambda s, now: s.set_exchange_integration(enabled, now))
        return settings.current(tenant).settings.exchange.purge_requested_at

    def rows() -> int:
        return len([e for e in index.due(IndexKind.EXCHANGE_PURGE, world.clock.now() + timedelta(days=1))
                    if e.tenant_id == tenant])

    first = switch(False)
    world.clock.advance(timedelta(minutes=10))
    switch(True)
    world.clock.advance(timedelta(minutes=10))
    second = switch(False)
    assert first is not None
    assert second is not None
    assert second > first
    assert rows() == 2
    world.clock.set(first + WRITE_SETTLE + timedelta(minutes=1))  # the first row is due; calls may still write
    assert run_background(world).count("notYetDue") == 1
    assert rows() == 2
    world.clock.set(second + WRITE_SETTLE)
    assert run_background(world).count("purged") == 1
    assert rows() == 0


def test_the_settle_time_outlasts_any_call_the_host_lets_run(repo_root: Path) -> None:
    hours, minutes, seconds = map(int, json.loads((repo_root / "host.json").read_text())["functionTimeout"].split(":"))
    longest_call = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    assert longest_call + CUTOFF_MARGIN < WRITE_SETTLE
