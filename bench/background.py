"""The background work on the queues, on a private Azurite, side by side in one run:

1. the timer's own run (it only sends messages) with 1,000 and 20,000 tenants, 100 of them due: wall time, table
   operations, messages (the ratio should stay near 1: its cost follows the tenants due, not all tenants);
2. 5,000 tenants due at once (consent deadlines passed), done by 1 and by 2 worker processes
   (`python -m devhost worker`, as Azure spreads a queue over instances): tenants per second each, their ratio,
   and the table operations one tenant's step costs;
3. the purge of 300,000 Exchange activities in steps of a bounded time: messages, time, and the position each
   step kept on the index row.

    .venv/bin/python bench/background.py [--sizes 1000 20000] [--due 100] [--burst 5000] [--purge 300000]
    (each part can be left out: `--sizes` with no value, `--burst 0`, `--purge 0`)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._support import services_for
from devhost.azurite import Azurite
from devhost.queues import queue_client
from shared.clock import FixedClock, SystemClock
from shared.domain.records import Activity
from shared.domain.tenant_settings import CONSENT_WINDOW, TenantSettings
from shared.services.background.exchange_purge import ExchangePurge
from shared.services.background.worker import BackgroundWorker
from shared.services.ports import IndexKind, WorkKind
from shared.services.timing import WRITE_SETTLE
from shared.storage.documents import encode
from shared.storage.records_repository import row_key
from shared.storage.schedule_index import _partition, _row_key
from shared.storage.tables import Operation, TableStore
from tests.background import drain

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a11"


def load_tenants(store: TableStore, count: int, due: int, now: datetime) -> list[str]:
    """`count` enabled tenants waiting for consent, written directly; the windows of the first `due` have ended."""
    template = TenantSettings(tenant_id="x").set_prerequisites(True, "FR", now - timedelta(days=30))

    def tenant(i: int) -> tuple[str, datetime]:
        tid = str(uuid.uuid4())
        opened = now - CONSENT_WINDOW - timedelta(hours=1) if i < due else now - timedelta(days=1, seconds=i)
        settings = template.model_copy(update={"tenant_id": tid}).enable(ADMIN, opened)
        store.create(tid, "settings", encode("settings", settings))
        assert settings.consent_deadline is not None
        return tid, settings.consent_deadline

    with ThreadPoolExecutor(max_workers=16) as pool:
        rows = list(pool.map(tenant, range(count)))
    partition = _partition(IndexKind.CONSENT_DEADLINE)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda batch: store.transact(partition, [
            Operation("upsert", _row_key(tid, deadline), {"TenantId": tid, "Due": deadline})
            for tid, deadline in batch]), [rows[i:i + 100] for i in range(0, len(rows), 100)]))
    return [tid for tid, _ in rows[:due]]


def timer_runs(azurite: Azurite, sizes: list[int], due: int) -> None:
    print(f"\n1. the timer only sends: {', '.join(map(str, sizes))} tenants, {due} due")
    results = []
    for size in sizes:
        now = datetime.now(UTC)
        container, counting = services_for(azurite.connection_string, f"Timer{size}{uuid.uuid4().hex[:6]}",
                                           FixedClock(now), queue_connection=azurite.connection_string,
                                           queue_prefix=f"t{uuid.uuid4().hex[:8]}")
        started = time.perf_counter()
        load_tenants(container.tables, size, due, now)
        print(f"   loaded {size:>6} tenants in {time.perf_counter() - started:5.1f} s", flush=True)
        counting.reset()
        started = time.perf_counter()
        report = container.scheduler().run()
        results.append((size, time.perf_counter() - started, counting.total, report.count(WorkKind.CONSENT_DEADLINE)))
    print(f"   {'tenants':>8} {'timer s':>8} {'table ops':>10} {'messages':>9}")
    for size, seconds, ops, messages in results:
        print(f"   {size:>8} {seconds:>8.3f} {ops:>10} {messages:>9}")
    (_, small, small_ops, _), (_, large, large_ops, _) = results[0], results[-1]
    print(f"   ratio {sizes[-1]}/{sizes[0]}: time {large / small:.2f}, table ops {large_ops / small_ops:.2f}")


def _workers(count: int, connection: str, table: str, state: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "AzureWebJobsStorage": connection, "RI_STATE_TABLE": table,
           "RI_AUTHORITY_HOST": "https://127.0.0.1:9", "RI_API_AUDIENCES": "api://bench", "PYTHONUNBUFFERED": "1"}
    return [subprocess.Popen([sys.executable, "-m", "devhost", "--state-dir", str(state), "worker"], cwd=ROOT,  # noqa: S603
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(count)]


def burst(azurite: Azurite, tenants: int, worker_counts: list[int]) -> None:
    print(f"\n2. {tenants} tenants due at once, by worker processes")
    rates = {}
    for workers in worker_counts:
        table = f"Burst{workers}{uuid.uuid4().hex[:6]}"
        container, _ = services_for(azurite.connection_string, table, SystemClock(),
                                    queue_connection=azurite.connection_string)
        load_tenants(container.tables, tenants, tenants, datetime.now(UTC))
        container.scheduler().run()  # 5,000 messages on the queue before any worker starts
        deadline_queue = queue_client(azurite.connection_string, WorkKind.CONSENT_DEADLINE.queue)
        with TemporaryDirectory() as state:
            processes = _workers(workers, azurite.connection_string, table, Path(state))
            started = time.perf_counter()
            try:
                # Done when the queue is empty and every deadline row is gone (a row goes when its tenant's step
                # has auto-disabled it); the rows are only counted once the queue is empty, to load Azurite little.
                while int(deadline_queue.get_queue_properties().approximate_message_count or 0) > 0 or any(
                        True for _ in container.tables.iter_partition(_partition(IndexKind.CONSENT_DEADLINE))):
                    time.sleep(0.5)
                elapsed = time.perf_counter() - started
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(timeout=60)
        rates[workers] = tenants / elapsed
        print(f"   {workers} worker process(es): {elapsed:6.1f} s, {rates[workers]:6.0f} tenants/s", flush=True)
    if len(rates) >= 2:
        low, high = worker_counts[0], worker_counts[-1]
        print(f"   ratio {high}/{low} workers: {rates[high] / rates[low]:.2f}")
    # What one tenant's step costs, counted in this process.
    now = datetime.now(UTC)
    container, counting = services_for(azurite.connection_string, f"Cost{uuid.uuid4().hex[:6]}", FixedClock(now),
                                       queue_connection=azurite.connection_string,
                                       queue_prefix=f"c{uuid.uuid4().hex[:8]}")
    load_tenants(container.tables, 50, 50, now)
    container.scheduler().run()
    counting.reset()
    outcomes = drain(container)
    print(f"   one tenant's auto-disable: {counting.total / 50:.1f} table operations "
          f"({dict(counting.calls)} for 50, outcomes {dict(outcomes.counted)})")


def purge(azurite: Azurite, rows: int, seconds_per_step: float) -> None:
    print(f"\n3. the purge of {rows} Exchange activities, {seconds_per_step:.0f} s per step")
    now = datetime.now(UTC)
    clock = FixedClock(now - WRITE_SETTLE - timedelta(minutes=5))
    container, counting = services_for(azurite.connection_string, f"Purge{uuid.uuid4().hex[:6]}", clock,
                                       queue_connection=azurite.connection_string,
                                       queue_prefix=f"p{uuid.uuid4().hex[:8]}")
    tenant = str(uuid.uuid4())
    settings = TenantSettings(tenant_id=tenant).set_prerequisites(True, "FR", clock.now()).enable(ADMIN, clock.now())
    settings = settings.record_consent_granted(ADMIN, (), clock.now())
    container.tables.create(tenant, "settings", encode("settings", settings))
    sample = Activity.model_validate({"id": "x", "version": 1, "source": "exchange", "kind": "email",
                                      "mailboxOwnerId": "ann", "sender": "ann@contoso.com", "to": ["lee@fabrikam.com"],
                                      "start": clock.now() - timedelta(days=3)}, strict=False)
    started = time.perf_counter()

    def batch(first: int) -> None:
        container.tables.transact(tenant, [Operation("create", row_key("activities", sample.model_copy(
            update={"id": f"x{n:07}"})), {**encode("activities", sample.model_copy(update={"id": f"x{n:07}"})),
                                          "Version": 1, "IngestedAt": clock.now()}) for n in range(first, first + 100)])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(batch, range(0, rows, 100)))
    print(f"   loaded in {time.perf_counter() - started:.0f} s", flush=True)
    container.tenant_settings().set_exchange_integration(tenant, ADMIN, False)
    clock.set(now)
    index = container.index
    positions: list[str] = []
    original_keep = index.keep

    def keep(entry, *, leased_until, position):  # type: ignore[no-untyped-def]
        if position:
            positions.append(json.loads(position)["after"])
        return original_keep(entry, leased_until=leased_until, position=position)

    index.keep = keep  # type: ignore[method-assign]
    purge_work = ExchangePurge(container.tenant_settings(), index, clock, container.records, container.queue,
                               seconds_per_step=seconds_per_step)
    worker = BackgroundWorker({**container.worker().works, WorkKind.EXCHANGE_PURGE: purge_work})
    container.scheduler().run()
    counting.reset()
    started = time.perf_counter()
    outcomes = drain(container, worker=worker)
    elapsed = time.perf_counter() - started
    left = sum(1 for _ in container.activity_tables.iter_partition(tenant, row_key_prefix="activity|exchange|"))
    steps = outcomes.count("purgeContinues") + outcomes.count("purged")
    print(f"   {steps} messages ({outcomes.count('purgeContinues')} continued), {elapsed:.0f} s, "
          f"{rows / elapsed:.0f} rows/s, {left} rows left; {counting.total} table operations {dict(counting.calls)}")
    print(f"   positions kept between the messages: {', '.join(p.rsplit('|', 1)[-1] for p in positions) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 20000], help="none: skip the timer's part")
    parser.add_argument("--due", type=int, default=100)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--purge", type=int, default=300_000)
    parser.add_argument("--purge-step-seconds", type=float, default=30.0)
    args = parser.parse_args()
    with Azurite() as azurite:
        if args.sizes:
            timer_runs(azurite, args.sizes, args.due)
        if args.burst:
            burst(azurite, args.burst, args.workers)
        if args.purge:
            purge(azurite, args.purge, args.purge_step_seconds)


if __name__ == "__main__":
    main()
