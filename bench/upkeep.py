"""Ingestion with the aggregates' upkeep as production runs it: sync calls and the insights refresh at the same
time, each in processes of its own, on one Azurite, with the real clock (the refresh's mark follows the sync calls
under way). A tenant with its records and no activity yet gets the seed generator's activities (`--copies` times,
each copy shifted further into the past: the second one is past the two-year horizon of the ledgers, slower to
apply) from `--syncs` processes (one run each, side by side), each sending batches of 1,000 one after the
other, while one worker runs the refresh's steps back to back (as the work bus does when a back-fill keeps it
busy). Printed: activities per second from the first call to the moment the last activity is in the aggregates,
the sync alone, and how many the refresh applied.

    .venv/bin/python bench/upkeep.py [--accounts 310] [--days 1800] [--copies 1] [--syncs 1,2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._support import services_for
from bench.insights import NOW, _again, _enable, _records, history_copy, rebuilt
from devhost.azurite import Azurite
from devhost.seed import generate
from shared.clock import SystemClock
from shared.tenancy import TenantId

TABLE = "Upkeep"


def _copies(args: argparse.Namespace, part: int, parts: int) -> list[dict[str, Any]]:
    """This sync process's share of the copies of the generated activities (every `parts`-th batch of 1,000)."""
    activities = generate(accounts=args.accounts, sellers=60, days=args.days, now=NOW)["activities"]
    items = [item for copy in range(args.copies) for item in history_copy(activities, copy, args.days)]
    batches = [items[i:i + 1000] for i in range(0, len(items), 1000)]
    return [item for batch in batches[part::parts] for item in batch]


def set_up(args: argparse.Namespace, connection: str) -> TenantId:
    """A tenant on, consented, with the generator's records and its (empty) aggregates built."""
    container, _ = services_for(connection, TABLE, SystemClock())
    tenant = TenantId(str(uuid.uuid4()))
    _enable(container, tenant)
    _records(container, tenant, generate(accounts=args.accounts, sellers=60, days=args.days, now=NOW))
    rebuilt(container.insights(), tenant)
    return tenant


def sync_worker(args: argparse.Namespace) -> None:
    container, _ = services_for(args.connection, TABLE, SystemClock())
    sync, tenant = container.sync(), TenantId(args.tenant)
    items = _copies(args, args.part, int(args.syncs))
    print("ready", flush=True)
    sys.stdin.readline()  # every process has generated its share: go
    started = time.perf_counter()
    for start in range(0, len(items), 1000):
        _again(lambda at=start: sync.ingest(tenant, "activities", items[at:at + 1000]))
    print(json.dumps({"seconds": time.perf_counter() - started, "activities": len(items)}), flush=True)


def refresh_worker(args: argparse.Namespace) -> None:
    """Refresh steps back to back; once told the sync has ended, one more chain of them (it reads the log up to its
    end), then what it applied."""
    container, _ = services_for(args.connection, TABLE, SystemClock())
    insights, tenant = container.insights(), TenantId(args.tenant)
    stop = Path(args.stop)
    applied = chains = 0
    while True:
        last = stop.exists()
        report = _again(lambda: insights.refresh(tenant))
        applied += report.activities
        while report.more_after is not None:
            after = report.more_after
            report = _again(lambda at=after: insights.refresh(tenant, at))
            applied += report.activities
        chains += 1
        if last:
            break
        if report.activities == 0 and report.more_after is None:
            time.sleep(0.5)  # (caught up: the work bus would wait for the next minute's message)
    print(json.dumps({"applied": applied, "chains": chains}), flush=True)


def measure(args: argparse.Namespace, connection: str, tenant: TenantId) -> dict[str, float]:
    """Sync processes and a refresh worker at once; activities per second until the last one is applied."""
    here = [sys.executable, str(Path(__file__).resolve())]
    common = ["--connection", connection, "--tenant", tenant, "--accounts", str(args.accounts), "--days",
              str(args.days), "--copies", str(args.copies), "--syncs", str(args.syncs)]
    with tempfile.TemporaryDirectory() as scratch:
        stop = Path(scratch) / "synced"
        syncs = [subprocess.Popen([*here, "--sync-worker", "--part", str(part), *common],  # noqa: S603
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for part in range(args.syncs)]
        for process in syncs:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        refresh = subprocess.Popen([*here, "--refresh-worker", "--stop", str(stop), *common],  # noqa: S603
                                   stdout=subprocess.PIPE, text=True)
        started = time.perf_counter()
        for process in syncs:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outs = [json.loads(process.communicate()[0].strip().splitlines()[-1]) for process in syncs]
        synced_s = time.perf_counter() - started
        stop.touch()
        done = json.loads(refresh.communicate()[0].strip().splitlines()[-1])
        elapsed = time.perf_counter() - started
    if any(p.returncode for p in [*syncs, refresh]):
        raise RuntimeError("a worker failed")
    activities = sum(o["activities"] for o in outs)
    return {"activities": activities, "seconds": elapsed, "synced_s": synced_s, "applied": done["applied"],
            "chains": done["chains"], "per_s": activities / elapsed, "sync_per_s": activities / synced_s}


def print_result(result: dict[str, float], syncs: int) -> None:
    print(f"   {result['activities']:,.0f} activities from {syncs} sync process(es) while a worker refreshed: all "
          f"in the aggregates after {result['seconds']:.1f} s = {result['per_s']:,.0f}/s (the sync alone "
          f"{result['synced_s']:.1f} s = {result['sync_per_s']:,.0f}/s; {result['applied']:,.0f} applied in "
          f"{result['chains']:.0f} chains of steps)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=310)
    parser.add_argument("--days", type=int, default=1800)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--syncs", default="1,2", help="sync processes, for each run side by side: 1,2")
    parser.add_argument("--sync-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--refresh-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--connection", help=argparse.SUPPRESS)
    parser.add_argument("--tenant", help=argparse.SUPPRESS)
    parser.add_argument("--stop", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sync_worker:
        sync_worker(args)
        return
    if args.refresh_worker:
        refresh_worker(args)
        return
    print(f"ingestion with the aggregates' upkeep, sync and refresh at once ({args.copies} copies of the seed's "
          "activities, batches of 1,000)")
    for syncs in [int(n) for n in str(args.syncs).split(",")]:
        with Azurite() as azurite:  # (each run on a fresh one: Azurite slows with every row of a table)
            tenant = set_up(args, azurite.connection_string)
            run = argparse.Namespace(**{**vars(args), "syncs": syncs})
            print_result(measure(run, azurite.connection_string, tenant), syncs)


if __name__ == "__main__":
    main()
