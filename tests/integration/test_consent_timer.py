"""The 14-day rule and the daily re-check, run by the timer's service against Azurite (issue 5)."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import datetime, timedelta

import pytest

from devhost.idp import DEFAULT_GRAPH_PERMISSIONS, IdentityProvider
from shared import bootstrap
from shared.clock import FixedClock
from shared.config import AppConfig
from shared.domain.tenant_settings import ConsentStatus, TenantSettings
from shared.services.ports import IndexKind, WorkKind, WorkMessage
from shared.services.tenant_settings import TenantSettingsService
from shared.services.timing import WRITE_SETTLE
from shared.storage.records_repository import TableRecords
from shared.storage.schedule_index import TableScheduleIndex
from shared.tenancy import TenantId
from tests.background import run_background
from tests.conftest import CLIENT_ID

pytestmark = pytest.mark.integration

ADMIN = "0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a11"


@pytest.fixture
def clock(container: bootstrap.Container) -> FixedClock:
    return FixedClock(container.clock.now())


@pytest.fixture
def world(config: AppConfig, clock: FixedClock) -> bootstrap.Container:
    """A table of its own: the timer works on every tenant of its table, and these tests move time by weeks."""
    return bootstrap.build(dataclasses.replace(config, state_table=f"Timer{(unique := uuid.uuid4().hex[:16])}",
                                               queue_prefix=f"t{unique}"), clock=clock)


def enable(world: bootstrap.Container, tenant: TenantId, location: str = "FR") -> TenantSettings:
    service = world.tenant_settings()
    service.change(tenant, ADMIN, "setPrerequisites", lambda s, now: s.set_prerequisites(True, location, now))
    return service.change(tenant, ADMIN, "enable", lambda s, now: s.enable(ADMIN, now)).settings


def settings_of(world: bootstrap.Container, tenant: TenantId) -> TenantSettings:
    return world.tenant_settings().current(tenant).settings


def due_rows(world: bootstrap.Container, kind: IndexKind, tenant: TenantId) -> list[object]:
    far = world.clock.now() + timedelta(days=3650)
    return [e for e in TableScheduleIndex(world.tables).due(kind, far) if e.tenant_id == tenant]


def test_a_tenant_is_disabled_at_its_deadline_and_not_a_second_before(world: bootstrap.Container, clock: FixedClock,
                                                                       tenant_id: TenantId) -> None:
    deadline = enable(world, tenant_id).consent_deadline
    assert deadline is not None
    clock.set(deadline - timedelta(seconds=1))
    run_background(world)
    assert settings_of(world, tenant_id).exchange.integration_enabled
    clock.set(deadline)
    report = run_background(world)
    assert report.count("autoDisabled") >= 1
    after = settings_of(world, tenant_id)
    assert after.auto_disabled_at == deadline
    assert not after.who_knows_whom.enabled
    assert after.relationship_analytics.enabled
    assert after.consent_status() is ConsentStatus.EXPIRED
    assert due_rows(world, IndexKind.CONSENT_DEADLINE, tenant_id) == []
    events = world.tenant_settings().audit(tenant_id, 5, None).events
    assert [(e.action, e.actor) for e in events[:1]] == [("autoDisable", "system")]
    clock.set(deadline + WRITE_SETTLE - timedelta(seconds=1))
    assert run_background(world).count("purged") == 0  # sync calls that began before may still write
    clock.set(deadline + WRITE_SETTLE)
    assert run_background(world).count("purged") == 1
    events = world.tenant_settings().audit(tenant_id, 5, None).events
    assert [(e.action, e.actor) for e in events[:2]] == [("exchangeDataPurged", "system"), ("autoDisable", "system")]
    assert events[0].sequence == events[1].sequence + 1


def test_running_twice_changes_nothing_the_second_time(world: bootstrap.Container, clock: FixedClock,
                                                        tenant_id: TenantId) -> None:
    deadline = enable(world, tenant_id).consent_deadline
    assert deadline is not None
    clock.set(deadline + timedelta(minutes=5))
    run_background(world)
    etag = world.tenant_settings().current(tenant_id).etag
    run_background(world)
    assert world.tenant_settings().current(tenant_id).etag == etag


def test_consent_a_second_before_the_deadline_keeps_everything_on(world: bootstrap.Container, clock: FixedClock,
                                                                  tenant_id: TenantId) -> None:
    deadline = enable(world, tenant_id).consent_deadline
    assert deadline is not None
    clock.set(deadline - timedelta(seconds=1))
    world.tenant_settings().change(tenant_id, ADMIN, "consentGranted",
                                    lambda s, now: s.record_consent_granted(ADMIN, (), now))
    clock.set(deadline + timedelta(hours=1))
    run_background(world)
    after = settings_of(world, tenant_id)
    assert after.exchange_data_usable
    assert after.who_knows_whom.enabled
    assert due_rows(world, IndexKind.CONSENT_DEADLINE, tenant_id) == []


def test_exchange_off_and_on_again_opens_a_new_window(world: bootstrap.Container, clock: FixedClock,
                                                      tenant_id: TenantId) -> None:
    first = enable(world, tenant_id).consent_deadline
    assert first is not None
    service = world.tenant_settings()
    clock.advance(timedelta(days=10))
    service.change(tenant_id, ADMIN, "x", lambda s, now: s.set_exchange_integration(False, now))
    assert due_rows(world, IndexKind.CONSENT_DEADLINE, tenant_id) == []
    clock.advance(timedelta(days=1))
    second = service.change(tenant_id, ADMIN, "x", lambda s, now: s.set_exchange_integration(True, now)
                            ).settings.consent_deadline
    assert second == clock.now() + timedelta(days=14)
    clock.set(first + timedelta(hours=1))
    run_background(world)
    assert settings_of(world, tenant_id).exchange.integration_enabled
    clock.set(second)
    run_background(world)
    assert not settings_of(world, tenant_id).exchange.integration_enabled


def test_thirty_missed_days_are_caught_up_in_one_run(world: bootstrap.Container, clock: FixedClock) -> None:
    tenants = [TenantId(str(uuid.uuid4())) for _ in range(3)]
    for offset, tenant in enumerate(tenants):
        enable(world, tenant)
        clock.advance(timedelta(days=offset + 1))
    clock.advance(timedelta(days=44))
    run_background(world)
    assert all(settings_of(world, t).auto_disabled_at is not None for t in tenants)


def test_a_stale_index_row_is_cleaned_and_decides_nothing(world: bootstrap.Container, clock: FixedClock,
                                                          tenant_id: TenantId) -> None:
    enable(world, tenant_id)
    index = TableScheduleIndex(world.tables)
    orphan = clock.now() - timedelta(days=1)
    index.add(IndexKind.CONSENT_DEADLINE, tenant_id, orphan)
    report = run_background(world)
    assert report.count("stale") >= 1
    after = settings_of(world, tenant_id)
    assert after.exchange.integration_enabled
    assert [e.due for e in due_rows(world, IndexKind.CONSENT_DEADLINE, tenant_id)] == [after.consent_deadline]


def test_a_corrupt_tenant_does_not_stop_the_others(world: bootstrap.Container, clock: FixedClock) -> None:
    broken, healthy = TenantId(str(uuid.uuid4())), TenantId(str(uuid.uuid4()))
    enable(world, broken)
    deadline = enable(world, healthy).consent_deadline
    assert deadline is not None
    world.tables.upsert(broken, "settings", {"Kind": "settings", "DocChunks": 1, "Doc0": "{not json"})
    clock.set(deadline + timedelta(minutes=1))
    report = run_background(world)
    assert report.count("failed") >= 1
    assert settings_of(world, healthy).auto_disabled_at is not None
    leftover = due_rows(world, IndexKind.CONSENT_DEADLINE, broken)
    assert leftover  # kept: retried next run
    for entry in leftover:  # other tests share this Azurite: leave no broken tenant behind
        TableScheduleIndex(world.tables).remove(entry.kind, entry.tenant_id, entry.due)  # type: ignore[attr-defined]


def test_the_timer_and_a_consent_callback_racing_end_consistent(world: bootstrap.Container,
                                                                clock: FixedClock) -> None:
    outcomes = set()
    for _ in range(15):
        tenant = TenantId(str(uuid.uuid4()))
        deadline = enable(world, tenant).consent_deadline
        assert deadline is not None
        clock.set(deadline)
        service = world.tenant_settings()
        barrier = threading.Barrier(2)

        def grant(tenant: TenantId = tenant, service: TenantSettingsService = service,
                  barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            service.change(tenant, ADMIN, "consentGranted", lambda s, now: s.record_consent_granted(ADMIN, (), now))

        def tick(barrier: threading.Barrier = barrier, tenant: TenantId = tenant, deadline: datetime = deadline,
                 ) -> None:
            # The deadline's message, as the queue delivers it, handled by the worker while the consent lands.
            message = WorkMessage(WorkKind.CONSENT_DEADLINE, tenant, ((IndexKind.CONSENT_DEADLINE, deadline),))
            worker = world.worker()
            barrier.wait()
            worker.handle(message)

        threads = [threading.Thread(target=grant), threading.Thread(target=tick)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = settings_of(world, tenant)
        actions = {e.action for e in world.tenant_settings().audit(tenant, 10, None).events}
        assert "consentGranted" in actions
        assert after.consent_granted
        if "autoDisable" in actions:  # the timer won: features off, the late consent recorded only
            assert not after.exchange.integration_enabled
            assert not after.who_knows_whom.enabled
            assert after.auto_disabled_at is not None
            outcomes.add("expired first")
        else:  # the consent won: the timer re-read and found nothing to do
            assert after.exchange_data_usable
            assert after.who_knows_whom.enabled
            assert after.auto_disabled_at is None
            outcomes.add("granted first")
    assert outcomes  # both orders are consistent; which occurs is up to the scheduler


def test_granted_consent_is_rechecked_daily_and_a_revocation_is_noticed(
        world: bootstrap.Container, clock: FixedClock, idp: IdentityProvider, tenant_id: TenantId) -> None:
    enable(world, tenant_id)
    idp.grants.grant(tenant_id, CLIENT_ID, DEFAULT_GRAPH_PERMISSIONS)
    world.tenant_settings().change(tenant_id, ADMIN, "consentGranted",
                                    lambda s, now: s.record_consent_granted(ADMIN, (), now))
    clock.advance(timedelta(hours=23))
    run_background(world)
    assert len(due_rows(world, IndexKind.CONSENT_RECHECK, tenant_id)) == 1
    clock.advance(timedelta(hours=2))
    assert run_background(world).count("stillGranted") >= 1
    rows = due_rows(world, IndexKind.CONSENT_RECHECK, tenant_id)
    assert [r.due for r in rows] == [clock.now() + timedelta(days=1)]  # type: ignore[attr-defined]

    clock.advance(timedelta(days=1))
    idp.fail_next("/oauth2/v2.0/token", status=503)
    assert run_background(world).count("recheckInconclusive") >= 1
    assert settings_of(world, tenant_id).consent_granted
    idp.grants.revoke(tenant_id, CLIENT_ID)
    clock.advance(timedelta(hours=1))
    assert run_background(world).count("withdrawn") >= 1
    after = settings_of(world, tenant_id)
    assert after.consent_status() is ConsentStatus.WITHDRAWN
    assert not after.exchange_data_usable
    assert due_rows(world, IndexKind.CONSENT_RECHECK, tenant_id) == []


def test_a_purge_row_never_deletes_data_ingested_after_the_last_real_request(
        world: bootstrap.Container, clock: FixedClock, tenant_id: TenantId) -> None:
    enable(world, tenant_id)
    world.tenant_settings().change(tenant_id, ADMIN, "consentGranted",
                                    lambda s, now: s.record_consent_granted(ADMIN, (), now).select_security_roles(
                                        ("r1",)))
    sync = world.sync()
    sync.ingest(tenant_id, "users", [{"id": "u1", "version": 1, "email": "u1@contoso.com", "securityRoleIds": ["r1"]}])
    stored = sync.ingest(tenant_id, "activities", [{
        "id": "x1", "version": 1, "source": "exchange", "kind": "email", "mailboxOwnerId": "u1",
        "sender": "u1@contoso.com", "to": ["c@fabrikam.com"], "start": clock.now().isoformat()}])
    assert stored.stored == 1
    index = TableScheduleIndex(world.tables)
    # A purge row whose change was never stored (the settings still want no purge) ...
    index.add(IndexKind.EXCHANGE_PURGE, tenant_id, clock.now() + timedelta(minutes=5))
    clock.advance(timedelta(minutes=10))
    report = run_background(world)
    assert report.count("stale") >= 1
    assert settings_of(world, tenant_id).exchange.purged_through is None
    assert [a.id for a in TableRecords(world.tables).iter_records(tenant_id, "activities")] == ["x1"]
