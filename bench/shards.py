"""A tenant's activities on 1, 4 and 8 partitions of their own (`RI_ACTIVITY_SHARDS`), side by side in one run,
each on an Azurite of its own: ingestion through the sync service (time, transactions, rows written per
activity), the first computation (a rebuild that pages through every shard), a refresh after 60 new activities
(it reads every shard's log), and what the rows written mean against Azure's targets for a back-fill of
10,000,000 activities (about 2,000 entities/s per partition, 20,000 per storage account).

Azurite has no per-partition limit: what it shows is what the shards cost (more, smaller transactions; N logs to
read), not what they gain; the gain is the arithmetic at the end.

    .venv/bin/python bench/shards.py [--accounts 310] [--days 1800] [--shards 1 4 8]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._support import services_for
from bench.insights import _enable, _fresh, _records, rebuilt
from devhost.azurite import Azurite
from devhost.seed import generate
from shared.clock import FixedClock
from shared.tenancy import TenantId

NOW = datetime(2026, 11, 26, tzinfo=UTC)
PARTITION_ENTITIES_PER_S = 2_000  # Azure's scalability targets for Table Storage
ACCOUNT_ENTITIES_PER_S = 20_000
BACKFILL = 10_000_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=310)
    parser.add_argument("--days", type=int, default=1800)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    data = generate(accounts=args.accounts, sellers=60, days=args.days, now=NOW)
    activities = data["activities"]
    print(f"a tenant of {len(activities):,} activities; shards {', '.join(map(str, args.shards))}\n")
    print(f"{'shards':>6} {'ingest/s':>9} {'txns':>6} {'rows/act':>8} {'rebuild s':>9} {'refresh s':>9} "
          f"{'calls':>5} {'10M back-fill, partition-bound':>31}")
    for shards in args.shards:
        with Azurite() as azurite:
            clock = FixedClock(NOW)
            container, counting = services_for(azurite.connection_string, "Shards", clock, activity_shards=shards)
            tenant = TenantId(str(uuid.uuid4()))
            _enable(container, tenant)
            _records(container, tenant, data)
            sync, insights = container.sync(), container.insights()
            counting.reset()
            started = time.perf_counter()
            for start in range(0, len(activities), 1000):
                sync.ingest(tenant, "activities", activities[start:start + 1000])
            ingest = time.perf_counter() - started
            transactions = counting.calls["transaction"]
            # Each transaction holds its rows and one log row: rows written per activity.
            rows = (len(activities) + transactions) / len(activities)
            clock.advance(timedelta(hours=1))
            started = time.perf_counter()
            rebuilt(insights, tenant)
            rebuild = time.perf_counter() - started
            clock.advance(timedelta(hours=1))
            sync.ingest(tenant, "activities", _fresh(activities, 60, 7, clock.now()))
            clock.advance(timedelta(minutes=1))
            counting.reset()
            started = time.perf_counter()
            insights.refresh(tenant)
            refresh = time.perf_counter() - started
            per_s = min(PARTITION_ENTITIES_PER_S * shards, ACCOUNT_ENTITIES_PER_S)
            hours = BACKFILL * rows / per_s / 3600
            print(f"{shards:>6} {len(activities) / ingest:>9,.0f} {transactions:>6,} {rows:>8.3f} {rebuild:>9.1f} "
                  f"{refresh:>9.2f} {counting.total:>5} {hours:>24.2f} h at {per_s:,}/s", flush=True)


if __name__ == "__main__":
    main()
