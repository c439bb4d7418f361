"""The two table calls a worker makes most, through the Azure SDK and through the direct REST path the app uses
(shared.storage.table_http), side by side on a private Azurite: CPU and wall time per point read, per transaction
of 100 activity-sized rows and per page of 1,000 of them read by a query.

    .venv/bin/python bench/table_calls.py [--reads 2000] [--transactions 100]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.azurite import Azurite
from shared.storage.tables import Operation, TableStore

ROW = {"Kind": "activities", "Source": "exchange", "D0": "x" * 700, "DChunks": 1, "Version": 3, "At": 2**40}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(store: TableStore, reads: int, transactions: int) -> tuple[float, ...]:
    tenant = str(uuid.uuid4())
    for t in range(transactions):
        store.transact(tenant, [Operation("upsert", f"w{t:04d}-{i:03d}", ROW) for i in range(100)])  # warm up
    cpu, wall = _cpu(), time.perf_counter()
    for t in range(transactions):
        store.transact(tenant, [Operation("upsert", f"r{t:04d}-{i:03d}", ROW) for i in range(100)])
    write_cpu, write_wall = (_cpu() - cpu) / transactions, (time.perf_counter() - wall) / transactions
    keys = [f"r{t % transactions:04d}-{t % 100:03d}" for t in range(reads)]
    cpu, wall = _cpu(), time.perf_counter()
    for key in keys:
        assert store.get(tenant, key) is not None
    read_cpu, read_wall = (_cpu() - cpu) / reads, (time.perf_counter() - wall) / reads
    cpu, wall = _cpu(), time.perf_counter()
    rows = sum(1 for _ in store.iter_partition(tenant, row_key_prefix="r"))
    pages = rows / 1000
    return write_cpu, write_wall, read_cpu, read_wall, (_cpu() - cpu) / pages, (time.perf_counter() - wall) / pages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--transactions", type=int, default=100)
    args = parser.parse_args()
    with Azurite() as azurite:
        results = {}
        for path in ("sdk", "direct"):
            store = TableStore.from_connection_string(azurite.connection_string, f"Calls{path}",
                                                      direct=path == "direct")
            results[path] = measure(store, args.reads, args.transactions)
        print(f"{'path':>7} {'transaction of 100 rows: CPU ms':>32} {'wall ms':>8} {'point read: CPU ms':>19} "
              f"{'wall ms':>8} {'query page of 1,000: CPU ms':>28} {'wall ms':>8}")
        for path, (tc, tw, rc, rw, qc, qw) in results.items():
            print(f"{path:>7} {tc * 1000:>32.1f} {tw * 1000:>8.1f} {rc * 1000:>19.2f} {rw * 1000:>8.2f} "
                  f"{qc * 1000:>28.1f} {qw * 1000:>8.1f}")
        sdk, direct = results["sdk"], results["direct"]
        print(f"  ratio sdk/direct: transaction CPU {sdk[0] / direct[0]:.1f}, wall {sdk[1] / direct[1]:.1f}; "
              f"point read CPU {sdk[2] / direct[2]:.1f}, wall {sdk[3] / direct[3]:.1f}; "
              f"query CPU {sdk[4] / direct[4]:.1f}, wall {sdk[5] / direct[5]:.1f}")


if __name__ == "__main__":
    main()
