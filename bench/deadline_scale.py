"""How the consent timer's cost grows with the number of tenants: it should follow the tenants that are due,
not all tenants. Loads N tenants with open consent windows into Azurite (100 of them due), runs the timer,
and prints wall time and table round trips; then the throughput with 5,000 tenants due at once.

    .venv/bin/python bench/deadline_scale.py [--sizes 1000 20000] [--due 100] [--burst 5000]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._support import services_for
from devhost.azurite import Azurite
from shared.clock import FixedClock
from shared.domain.tenant_settings import CONSENT_WINDOW, TenantSettings
from shared.services.ports import IndexKind
from shared.storage.documents import encode
from shared.storage.schedule_index import _partition, _row_key
from shared.storage.tables import Operation, TableStore
from shared.tenancy import TenantId

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ADMIN = "0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a11"


def load(store: TableStore, count: int, due: int) -> datetime:
    """`count` enabled tenants waiting for consent; the first `due` windows end before the returned time."""
    now = T0 + CONSENT_WINDOW + timedelta(hours=1)
    template = TenantSettings(tenant_id="x").set_prerequisites(True, "FR", T0)

    def tenant(i: int) -> tuple[str, datetime]:
        tid = str(uuid.uuid4())
        opened = T0 if i < due else T0 + timedelta(days=2, seconds=i)
        settings = template.model_copy(update={"tenant_id": tid}).enable(ADMIN, opened)
        store.create(tid, "settings", encode("settings", settings))
        assert settings.consent_deadline is not None
        return tid, settings.consent_deadline

    with ThreadPoolExecutor(max_workers=16) as pool:
        rows = list(pool.map(tenant, range(count)))
    partition = _partition(IndexKind.CONSENT_DEADLINE)
    batches = [rows[i:i + 100] for i in range(0, len(rows), 100)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda batch: store.transact(partition, [
            Operation("upsert", _row_key(tid, deadline), {"TenantId": tid, "Due": deadline})
            for tid, deadline in batch]), batches))
    return now


def measure(azurite: Azurite, count: int, due: int) -> tuple[float, int, int]:
    clock = FixedClock(T0)
    container, counting = services_for(azurite.connection_string, f"Scale{count}x{due}{uuid.uuid4().hex[:6]}", clock)
    started = time.perf_counter()
    now = load(container.tables, count, due)
    print(f"  loaded {count:>6} tenants ({due} due) in {time.perf_counter() - started:6.1f} s", flush=True)
    clock.set(now)
    counting.reset()
    started = time.perf_counter()
    report = container.background().run()
    elapsed = time.perf_counter() - started
    assert report.count("autoDisabled") == due, report.outcomes
    if due < count:  # a tenant that is not due yet was left alone
        waiting = next(iter(container.tables.iter_partition(_partition(IndexKind.CONSENT_DEADLINE))))
        tenant = TenantId(str(waiting.properties["TenantId"]))
        assert container.tenant_settings().current(tenant).settings.exchange.integration_enabled
    return elapsed, counting.total, report.count("autoDisabled")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--due", type=int, default=100)
    parser.add_argument("--burst", type=int, default=5000)
    args = parser.parse_args()
    with Azurite() as azurite:
        results = {}
        for size in args.sizes:
            results[size] = measure(azurite, size, args.due)
        print(f"\n{'tenants':>8} {'due':>5} {'timer wall s':>13} {'table ops':>10} {'ops/due':>8}")
        for size, (elapsed, ops, due) in results.items():
            print(f"{size:>8} {due:>5} {elapsed:>13.3f} {ops:>10} {ops / due:>8.1f}")
        small, large = results[args.sizes[0]], results[args.sizes[-1]]
        print(f"ratio {args.sizes[-1]}/{args.sizes[0]}: wall time {large[0] / small[0]:.2f}, "
              f"table ops {large[1] / small[1]:.2f}  (close to 1: the work follows the due tenants)")
        if args.burst:
            elapsed, ops, due = measure(azurite, args.burst, args.burst)
            print(f"\nburst: {due} tenants due at once, auto-disabled in {elapsed:.1f} s = {due / elapsed:.0f} "
                  f"tenants/s, {ops} table ops ({ops / due:.1f} per tenant)")


if __name__ == "__main__":
    main()
