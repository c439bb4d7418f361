"""Faults of the work bus, against Azurite's queues: a worker killed mid-message, a message that fails every time,
the queue service down while the timer runs, and messages delivered twice or out of order. Each of these tests
has an Azurite of its own, so that no other test's host takes its messages."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import Azurite, end_with_parent
from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider
from devhost.queues import queue_client
from shared import bootstrap
from shared.clock import FixedClock
from shared.config import AppConfig
from shared.domain.audit import SYSTEM_ACTOR
from shared.domain.records import Source
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.errors import StorageUnavailable
from shared.services.ports import IndexKind, WorkKind, WorkMessage
from shared.services.timing import WRITE_SETTLE
from shared.storage.records_repository import TableRecords
from shared.tenancy import TenantId
from tests.background import drain, run_background
from tests.conftest import TEST_QUEUES, make_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = "0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a11"
SELLERS = next(r.id for r in STANDARD_SALES_ROLES if r.name == "Salesperson")


@pytest.fixture
def bus() -> Iterator[Azurite]:
    with Azurite() as emulator:
        yield emulator


@pytest.fixture
def config(bus: Azurite, idp: IdentityProvider) -> AppConfig:
    return make_config(bus.connection_string, idp)


def _exchange_tenant(world: bootstrap.Container, activities: int = 0) -> TenantId:
    tenant = TenantId(str(uuid.uuid4()))
    settings = world.tenant_settings()
    settings.set_prerequisites(tenant, ADMIN, True, "FR")
    settings.enable(tenant, ADMIN, security_role_ids=[SELLERS])
    settings.change(tenant, ADMIN, "consentGranted", lambda s, now: s.record_consent_granted(ADMIN, (), now))
    sync = world.sync()
    sync.ingest(tenant, "users", [{"id": "ann", "version": 1, "email": "ann@contoso.com",
                                   "securityRoleIds": [SELLERS]}])
    start = world.clock.now() - timedelta(days=3)
    for first in range(0, activities, 1000):
        report = sync.ingest(tenant, "activities", [
            {"id": f"x{n:06}", "version": 1, "source": "exchange", "kind": "email", "mailboxOwnerId": "ann",
             "sender": "ann@contoso.com", "to": ["lee@fabrikam.com"], "start": start.isoformat()}
            for n in range(first, min(first + 1000, activities))])
        assert report.rejected == []
    return tenant


def _exchange_rows(world: bootstrap.Container, tenant: TenantId) -> int:
    return sum(1 for _ in world.activity_tables.iter_partition(tenant, row_key_prefix="activity|exchange|",
                                                                select=["Kind"]))


def _worker(config: AppConfig, state_dir: Path, repo_root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "AzureWebJobsStorage": config.queue_connection or "", "RI_STATE_TABLE": config.state_table,
           "RI_AUTHORITY_HOST": config.authority_host, "RI_API_AUDIENCES": ",".join(config.api_audiences),
           "RI_CA_BUNDLE": config.ca_bundle or "", "RI_CLIENT_ID": config.client_id or "",
           "RI_CLIENT_SECRET": config.client_secret or "", "RI_CONSENT_REDIRECT_URI": config.consent_redirect_uri or "",
           "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "devhost", "--state-dir", str(state_dir), "worker",
                             "--lease-seconds", "2"], cwd=repo_root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True, preexec_fn=end_with_parent)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _messages(queue: str, connection: str) -> list[Any]:
    """What waits in a queue (nothing when it does not exist)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return list(queue_client(connection, queue).peek_messages(max_messages=32))
    except ResourceNotFoundError:
        return []


def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_worker_killed_mid_message_leaves_it_to_another_and_nothing_is_counted_twice(
        config: AppConfig, tmp_path: Path, repo_root: Path) -> None:
    # The data and the end of Exchange use lie half an hour back, so that the purge is due in real time (the
    # worker processes read the system clock).
    past = FixedClock(datetime.now(UTC) - WRITE_SETTLE - timedelta(minutes=15))
    world = bootstrap.build(config, clock=past)
    tenant = _exchange_tenant(world, activities=3000)
    world.tenant_settings().set_exchange_integration(tenant, ADMIN, False)
    live = bootstrap.build(config)
    live.scheduler().run()  # the purge's message is on its queue

    first = _worker(config, tmp_path, repo_root)
    try:
        _until(lambda: _exchange_rows(live, tenant) < 2800, 60, "the first worker to start purging")
        first.kill()  # mid-message: its step had deleted some rows, not all
        first.wait(timeout=10)
        left = _exchange_rows(live, tenant)
        assert 0 < left < 3000
        second = _worker(config, tmp_path, repo_root)
        try:
            # The message comes back once its lease (2 s, no longer renewed) has run out.
            _until(lambda: _exchange_rows(live, tenant) == 0, 120, "the second worker to finish the purge")
            _until(lambda: not list(live.index.due(IndexKind.EXCHANGE_PURGE, datetime.now(UTC))), 30,
                   "the purge's row to go")
        finally:
            _stop(second)
    finally:
        _stop(first)
    events = live.tenant_settings().audit(tenant, 50, None).events
    assert [e.action for e in events].count("exchangeDataPurged") == 1
    assert all(e.actor == SYSTEM_ACTOR for e in events if e.action == "exchangeDataPurged")
    assert _messages(f"{WorkKind.EXCHANGE_PURGE.queue}-poison", config.queue_connection or "") == []


def test_a_message_that_fails_every_time_ends_in_the_poison_queue_while_the_others_finish(
        config: AppConfig, bus: Azurite, caplog: pytest.LogCaptureFixture) -> None:
    import function_app

    clock = FixedClock(datetime.now(UTC))
    world = bootstrap.build(config, clock=clock)
    tenants = [_exchange_tenant(world) for _ in range(3)]
    broken = tenants[0]
    row = world.tables.get(broken, "settings")
    assert row is not None
    world.tables.replace(broken, "settings", {**row.properties, "Doc0": "{not json"}, row.etag)
    clock.advance(timedelta(days=1, minutes=1))  # every granted consent is due for its daily re-check
    previous = bootstrap._container
    bootstrap.install(world)
    settings = {"RI_BACKGROUND_SCHEDULE": "0 0 * * * *", "AzureWebJobsStorage": bus.connection_string}
    host = FunctionHost(function_app.app, serve_http=False, run_timers=False, queue_options=TEST_QUEUES,
                        settings=settings)
    caplog.set_level(logging.INFO)
    try:
        host.start()
        world.scheduler().run()
        poison = f"{WorkKind.CONSENT_RECHECK.queue}-poison"
        _until(lambda: bool(_messages(poison, bus.connection_string)), 60, "the poison queue")
        assert host.drain(timeout=60)
    finally:
        host.stop()
        bootstrap.install(previous)
    poisoned = [WorkMessage.from_json(base64.b64decode(m.content).decode())
                for m in _messages(poison, bus.connection_string)]
    assert [m.tenant_id for m in poisoned] == [broken]
    rows = {e.tenant_id for e in world.index.due(IndexKind.CONSENT_RECHECK, clock.now())}
    assert broken in rows  # left for the timer to send again once fixed
    assert not rows & set(tenants[1:])  # the others were checked and moved on
    logged = [r.getMessage() for r in caplog.records if "poison" in r.getMessage()]
    assert any(broken in line and "operation" in line for line in logged), logged


def test_the_queue_service_down_while_the_timer_runs_fails_cleanly_and_loses_no_due_work(
        config: AppConfig, bus: Azurite) -> None:
    clock = FixedClock(datetime.now(UTC))
    world = bootstrap.build(config, clock=clock)
    tenant = _exchange_tenant(world)
    world.tenant_settings().set_exchange_integration(tenant, ADMIN, False)  # a purge is asked for
    clock.advance(WRITE_SETTLE + timedelta(minutes=1))
    bus.kill("queue")
    with pytest.raises(StorageUnavailable):
        world.scheduler().run()
    assert [r.leased_until for r in world.index.due(IndexKind.EXCHANGE_PURGE, clock.now())] == [None]
    bus.restart("queue")
    outcomes = run_background(world)
    assert outcomes.count("purged") == 1
    assert not list(world.index.due(IndexKind.EXCHANGE_PURGE, clock.now()))


def test_the_same_message_twice_and_out_of_order_give_the_same_end_state(config: AppConfig) -> None:
    clock = FixedClock(datetime.now(UTC))
    world = bootstrap.build(config, clock=clock)
    tenant = TenantId(str(uuid.uuid4()))
    world.tenant_settings().set_prerequisites(tenant, ADMIN, True, "FR")
    deadline = world.tenant_settings().enable(tenant, ADMIN).settings.consent_deadline
    assert deadline is not None
    clock.set(deadline)
    purge_due = deadline + WRITE_SETTLE
    purge = WorkMessage(WorkKind.EXCHANGE_PURGE, tenant, ((IndexKind.EXCHANGE_PURGE, purge_due),))
    expire = WorkMessage(WorkKind.CONSENT_DEADLINE, tenant, ((IndexKind.CONSENT_DEADLINE, deadline),))
    worker = world.worker()
    assert worker.handle(purge) == "stale"  # before the deadline's: nothing asked for it yet, nothing done
    assert [worker.handle(expire) for _ in range(2)] == ["autoDisabled", "stale"]
    clock.set(purge_due)
    assert [worker.handle(purge) for _ in range(2)] == ["purged", "stale"]
    drain(world)  # the recompute the purge asked for
    actions = [e.action for e in world.tenant_settings().audit(tenant, 20, None).events]
    assert actions[:2] == ["exchangeDataPurged", "autoDisable"]
    assert actions.count("autoDisable") == 1
    assert actions.count("exchangeDataPurged") == 1
    settings = world.tenant_settings().current(tenant).settings
    assert (settings.auto_disabled_at, settings.exchange.purged_through is not None) == (deadline, True)
    assert not list(TableRecords(world.tables).iter_records(tenant, "activities", Source.EXCHANGE))
