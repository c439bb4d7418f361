"""Insights at size, side by side in one run, each tenant on an Azurite of its own:

1. ingestion through the sync service into a tenant of ~100,000 activities over ~2,000 records (the seed's
   generator), then the ingestion of further activities *with* the aggregates' upkeep (sync + refresh);
2. a tenant of ~1,000,000 activities: the same records, and the same activity ten times over, shifted into the
   past (ten times the history: what the issue asks cost not to follow), each copy synced in batches of 1,000 then
   refreshed as the work bus would (the aggregates' upkeep); or (`--large-by direct`) loaded directly in
   transactions of 100 with a thread pool, then its aggregates rebuilt from the stored rows;
3. for both: the refresh after 60 new activities (time, table calls), the daily recompute of every record (time,
   table reads), the peak RSS of a worker process doing both (its own VmHWM);
4. the data-subject export of one contact of the 100,000-activity tenant, the needs-attention page of its ~2,000
   records through the local host (p50, p99);
5. for both: a rebuild of the aggregates from the stored activities in a fresh worker (time, steps, table calls,
   peak RSS);
6. the pure computation of a rebuild (no storage) at 1,000 and 10,000 accounts: activities per second and the
   ratio of the times.

    .venv/bin/python bench/insights.py [--accounts 310] [--days 1800] [--copies 10] [--queries 200]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench._support import CountingTableStore, services_for
from devhost.azurite import Azurite
from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider, RegisteredApp
from devhost.seed import generate
from shared import bootstrap, garbage_collection
from shared.clock import FixedClock
from shared.domain.insights.computation import compute
from shared.domain.insights.directory import Directory
from shared.domain.records import Account, Activity, Contact, InternalUser, Lead, Opportunity
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.errors import ConcurrencyConflict, StorageUnavailable
from shared.services.insights import REBUILD_FACTS
from shared.services.timing import WRITE_SETTLE
from shared.storage.records_repository import LOG_PREFIX
from shared.tenancy import TenantId

NOW = datetime(2026, 11, 26, tzinfo=UTC)
AUDIENCE = "api://bench"
ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Stand:
    """A tenant of the benchmark on an Azurite of its own. Azure serves each partition on its own, but Azurite's
    in-memory store slows with every row of a table (a 200-row range of one partition took 11.8 ms to read and a
    100-row transaction 46 ms; 27 and 93 ms once another partition held 300,000 rows): two tenants in one
    Azurite would measure each with the other's history."""

    name: str
    tenant: TenantId
    connection: str
    container: bootstrap.Container
    counting: CountingTableStore
    sync: Any
    insights: Any


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _enable(container: bootstrap.Container, tenant: TenantId) -> None:
    settings = container.tenant_settings()
    roles = tuple(r.id for r in STANDARD_SALES_ROLES)
    settings.change(tenant, "admin", "prerequisites", lambda s, now: s.set_prerequisites(True, "FR", now))
    settings.change(tenant, "admin", "enable", lambda s, now: s.enable("admin", now, security_role_ids=roles))
    settings.change(tenant, "admin", "consent", lambda s, now: s.record_consent_granted("admin", (), now))


def _records(container: bootstrap.Container, tenant: TenantId, data: dict[str, list[dict[str, Any]]]) -> None:
    sync = container.sync()
    for kind in ("users", "accounts", "contacts", "leads", "opportunities"):
        for start in range(0, len(data[kind]), 1000):
            sync.ingest(tenant, kind, data[kind][start:start + 1000])


def _fresh(activities: list[dict[str, Any]], count: int, seed: int, at: datetime) -> list[dict[str, Any]]:
    """New activities of the same records: some of the tenant's, again, within the last day."""
    rng = random.Random(seed)
    return [{**a, "id": f"new{seed}-{a['id']}", "start": _iso(at - timedelta(minutes=rng.randint(1, 1440))),
             "completed": True} for a in rng.sample(activities, min(count, len(activities)))]


def history_copy(activities: list[dict[str, Any]], copy: int, days: int) -> list[dict[str, Any]]:
    """The tenant's activities again as copy `copy` of its history: new ids, `copy` times its span further into the
    past (copy 0: the activities themselves, under new ids)."""
    span = timedelta(days=days + 1)
    return [{**a, "id": f"{a['id']}-c{copy}",
             "start": _iso(datetime.fromisoformat(a["start"].replace("Z", "+00:00")) - copy * span),
             "completed": a["completed"] or copy > 0} for a in activities]


def load_directly(container: bootstrap.Container, tenant: TenantId, items: list[dict[str, Any]],
                  at: datetime) -> None:
    records = container.records
    models = [Activity.model_validate(a, strict=False) for a in items]
    groups = [models[i:i + 98] for i in range(0, len(models), 98)]  # as many as a sync call puts in a transaction

    def write(group: list[Activity]) -> None:
        for attempt in range(6):  # Azurite drops a connection now and then under this load
            try:
                records.write(tenant, "activities", [(m, None) for m in group], at)
                return
            except ConcurrencyConflict:
                return  # an attempt that seemed to fail had committed
            except StorageUnavailable:
                time.sleep(1 + attempt)
        raise RuntimeError("Azurite keeps failing")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, groups))


def rebuilt(insights: Any, tenant: TenantId) -> tuple[Any, int]:
    """A full recompute, its steps run one after the other as the queue would hand them over (a rebuild of the
    aggregates ends each step within its time budget); the last report and the number of steps."""
    steps = 1
    report = _again(lambda: insights.recompute(tenant))
    while report.rebuilding:
        steps += 1
        report = _again(lambda: insights.recompute(tenant))
    return report, steps


def daily(insights: Any, tenant: TenantId, asked: datetime | None = None) -> Any:
    """The pass over every record asked for at `asked` (None: a new one now), its steps one after the other (one,
    within its time budget, for these tenants); the last step's report, with the records of every step."""
    report = insights.recompute(tenant, asked)
    records = report.records
    while report.sweeping:
        report = insights.recompute(tenant, asked or report.pass_began)
        records += report.records
    return dataclasses.replace(report, records=records)


def rebuild_worker(args: argparse.Namespace) -> None:
    """A worker process: the tenant's aggregates rebuilt from its stored activities (its ledgers' mark removed,
    as a change that no index can follow does), step by step."""
    clock = FixedClock(datetime.fromisoformat(args.at))
    container, counting = services_for(args.connection, args.table, clock)
    tenant = TenantId(args.tenant)
    container.insight_tables.delete(tenant, "ledgers-meta")
    counting.reset()
    started = time.perf_counter()
    report, steps = rebuilt(container.insights(), tenant)
    print(json.dumps({"seconds": time.perf_counter() - started, "steps": steps, "records": report.records,
                      "activities": report.activities, "calls": counting.total, "rss_mb": peak_rss_mb()}))


def worker(args: argparse.Namespace) -> None:
    """A worker process: the refresh after the new activities already stored, then the daily recompute."""
    if args.rebuild:
        rebuild_worker(args)
        return
    clock = FixedClock(datetime.fromisoformat(args.at))
    container, counting = services_for(args.connection, args.table, clock)
    insights = container.insights()
    tenant = TenantId(args.tenant)
    started = time.perf_counter()
    refreshed = insights.refresh(tenant)
    refresh_s = time.perf_counter() - started
    counting.reset()
    started = time.perf_counter()
    report = daily(insights, tenant)
    recompute_s = time.perf_counter() - started
    print(json.dumps({"refresh": refresh_s, "refreshed": refreshed.records, "recompute": recompute_s,
                      "records": report.records, "reads": counting.calls["query"] + counting.calls["get"],
                      "rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's own peak resident memory. Not `ru_maxrss`: Linux keeps it across execve, so a worker
    spawned by this (large) benchmark process would report the parent's peak (about 1.2 GB here) as its own."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pure_compute(shapes: list[tuple[int, int]]) -> None:
    """`compute()` as the service runs a computation (collections paused), best of two, for tenants of
    (accounts, days of activity): the first is the tenant of the sections above, the next two the linearity check."""
    print("\n6. the pure computation of a rebuild (no storage), as the service runs it (collections paused)")
    times = []
    for accounts, days in shapes:
        data = generate(accounts=accounts, sellers=60, days=days, now=NOW)
        directory = Directory.of(
            users=[InternalUser.model_validate(x, strict=False) for x in data["users"]],
            accounts=[Account.model_validate(x, strict=False) for x in data["accounts"]],
            contacts=[Contact.model_validate(x, strict=False) for x in data["contacts"]],
            leads=[Lead.model_validate(x, strict=False) for x in data["leads"]],
            opportunities=[Opportunity.model_validate(x, strict=False) for x in data["opportunities"]])
        activities = [Activity.model_validate(x, strict=False) for x in data["activities"]]
        from tests.builders import enabled

        settings = enabled(roles=tuple(r.id for r in STANDARD_SALES_ROLES))

        def run(d: Directory = directory, s: Any = settings, a: list[Activity] = activities) -> None:
            with garbage_collection.paused():
                compute(d, s, a, NOW)

        best = min(_timed(run) for _ in range(2))
        times.append(best)
        records = len(directory.accounts) + len(directory.contacts) + len(directory.leads) + len(
            directory.opportunities)
        print(f"   {accounts:>6} accounts, {days:>5} days, {records:>6} records, {len(activities):>8,} activities: "
              f"{best:6.2f} s = {len(activities) / best:>8,.0f} activities/s, {1e6 * best / records:5.0f} µs per "
              f"record", flush=True)
    print(f"   ratio {shapes[-1][0]}/{shapes[-2][0]} accounts: time {times[-1] / times[-2]:.1f}")


def _batches(sync: Any, insights: Any, tenant: TenantId, clock: FixedClock, activities: list[dict[str, Any]], *,
             seed: int, apart: timedelta) -> int:
    """10 × 1,000 new activities synced `apart` (each refreshed after it when `insights` is given); how many."""
    fresh = 0
    for batch in range(10):
        clock.advance(apart)
        items = _fresh(activities, 1000, seed + batch, clock.now())
        fresh += len(items)
        sync.ingest(tenant, "activities", items)
        if insights is not None:
            insights.refresh(tenant)
    return fresh


def _synced(sync: Any, tenant: TenantId, clock: FixedClock, items: list[dict[str, Any]], *,
            apart: timedelta) -> int:
    """`items` synced in batches of 1,000, `apart` from each other; how many."""
    for start in range(0, len(items), 1000):
        clock.advance(apart)
        _again(lambda at=start: sync.ingest(tenant, "activities", items[at:at + 1000]))
    return len(items)


def _refreshed(insights: Any, tenant: TenantId) -> int:
    """The refresh's steps, one after the other as the work bus hands them over, until the log is applied; how
    many."""
    report, steps = _again(lambda: insights.refresh(tenant)), 1
    while report.more_after is not None:
        after = report.more_after
        report, steps = _again(lambda at=after: insights.refresh(tenant, at)), steps + 1
    return steps


def _range_probe_ms(stand: Stand) -> float:
    """One range query of a single row of the tenant's activity log partition: what a query costs in its
    Azurite."""
    tables = stand.container.activity_tables
    times = [_timed(lambda: tables.query_partition(stand.tenant, row_key_from=LOG_PREFIX, page_size=1))
             for _ in range(9)]
    return statistics.median(times) * 1000


def _worker_run(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    """This script as a worker process; what it printed on its error output when it fails."""
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), *arguments],  # noqa: S603
                         capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        print(out.stderr[-4000:], file=sys.stderr, flush=True)
        out.check_returncode()
    return out


def _again(work: Any) -> Any:
    """What a queue message does when storage fails: it runs again (a rebuild is idempotent)."""
    for attempt in range(4):
        try:
            return work()
        except StorageUnavailable:
            print(f"   (storage unavailable; attempt {attempt + 2})", file=sys.stderr, flush=True)
    return work()


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=310)
    parser.add_argument("--days", type=int, default=1800)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--large-by", choices=("sync", "direct"), default="sync",
                        help="how the large tenant gets its history: synced and refreshed batch by batch, or loaded "
                             "directly then rebuilt")
    parser.add_argument("--large-rebuild", action="store_true",
                        help="section 5 rebuilds the large tenant too (when it was synced)")
    parser.add_argument("--compute-only", action="store_true", help="only section 6: the pure computation")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rebuild", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--connection", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--tenant", help=argparse.SUPPRESS)
    parser.add_argument("--at", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.compute_only:
        pure_compute([(args.accounts, args.days), (1000, 60), (10000, 60)])
        return
    data = generate(accounts=args.accounts, sellers=60, days=args.days, now=NOW)
    records = sum(len(data[k]) for k in ("accounts", "contacts", "leads", "opportunities"))
    activities = data["activities"]
    print(f"tenants: {len(activities):,} activities over {records:,} records, {len(data['users'])} sellers; "
          f"the large one: the same records, {args.copies}× the history ({len(activities) * args.copies:,})")

    with tempfile.TemporaryDirectory() as state, contextlib.ExitStack() as stack, IdentityProvider(
            Path(state), RegisteredApp("bench", "bench", ("http://127.0.0.1/cb",)), api_audience=AUDIENCE,
            port=0) as idp:
        clock = FixedClock(NOW)
        table = "Insights"

        def stand(name: str) -> Stand:
            azurite = stack.enter_context(Azurite())
            container, counting = services_for(azurite.connection_string, table, clock, authority_host=idp.base_url,
                                               api_audiences=(AUDIENCE,), ca_bundle=str(idp.tls.ca_cert))
            tenant = TenantId(str(uuid.uuid4()))
            _enable(container, tenant)
            _records(container, tenant, data)
            return Stand(name, tenant, azurite.connection_string, container, counting, container.sync(),
                         container.insights())

        small = stand("100k")
        large = stand("1M" if args.copies >= 10 else f"{args.copies}×") if args.copies else small
        stands = [small] if large is small else [small, large]

        print("\n1. ingestion through the sync service (batches of 1,000)")
        small.counting.reset()
        started = time.perf_counter()
        for start in range(0, len(activities), 1000):
            small.sync.ingest(small.tenant, "activities", activities[start:start + 1000])
        elapsed = time.perf_counter() - started
        print(f"   {len(activities):,} activities in {elapsed:.1f} s = {len(activities) / elapsed:,.0f}/s "
              f"({small.counting.total / len(activities):.3f} table calls per activity)", flush=True)
        clock.advance(timedelta(hours=1))
        started = time.perf_counter()
        built, steps = rebuilt(small.insights, small.tenant)
        print(f"   the first computation (a rebuild of every ledger from the stored rows): {built.records:,} records "
              f"from {built.activities:,} activities in {time.perf_counter() - started:.1f} s, {steps} step(s)",
              flush=True)

        started = time.perf_counter()
        if large is not small and args.large_by == "direct":
            print(f"\n2. the large tenant, loaded directly ({args.copies} copies of the history, 98 rows + the "
                  "log's per transaction, 4 threads), then its aggregates rebuilt")
            for copy in range(args.copies):
                load_directly(large.container, large.tenant, history_copy(activities, copy, args.days), clock.now())
                print(f"   copy {copy + 1}: {len(activities) * (copy + 1):,} activities after "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
            print(f"   loaded in {time.perf_counter() - started:.0f} s")
            clock.advance(timedelta(hours=1))
            started = time.perf_counter()
            built, steps = rebuilt(large.insights, large.tenant)
            print(f"   its rebuild: {built.records:,} records from {built.activities:,} activities in "
                  f"{time.perf_counter() - started:.1f} s, {steps} step(s)", flush=True)
        elif large is not small:
            print(f"\n2. the large tenant, grown as production grows it: {args.copies} copies of the history, each "
                  "synced in batches of 1,000, then the refresh's steps (the aggregates' upkeep)")
            rebuilt(large.insights, large.tenant)  # its records, no activity yet: its (empty) aggregates
            for copy in range(args.copies):
                began = time.perf_counter()
                items = history_copy(activities, copy, args.days)
                stored = _synced(large.sync, large.tenant, clock, items, apart=timedelta(seconds=5))
                sync_s = time.perf_counter() - began
                clock.advance(WRITE_SETTLE + timedelta(minutes=1))
                steps = _refreshed(large.insights, large.tenant)
                took = time.perf_counter() - began
                print(f"   copy {copy + 1}: {stored:,} synced in {sync_s:.0f} s, refreshed in {took - sync_s:.0f} s "
                      f"({steps} steps): {stored / took:,.0f}/s with the upkeep; "
                      f"{len(activities) * (copy + 1):,} after {time.perf_counter() - started:.0f} s", flush=True)

        print("\n3. after 60 new activities (about a day of this tenant's activity), each tenant")
        rows = {}
        for at, seed in zip(stands, (1, 2), strict=False):
            tenant, sync, insights, counting = at.tenant, at.sync, at.insights, at.counting
            clock.advance(timedelta(hours=1))
            sync.ingest(tenant, "activities", _fresh(activities, 60, seed, clock.now()))
            counting.reset()
            started = time.perf_counter()
            refreshed = insights.refresh(tenant)
            refresh_s, refresh_calls = time.perf_counter() - started, counting.total
            counting.reset()
            started = time.perf_counter()
            report = daily(insights, tenant)
            recompute_s = time.perf_counter() - started
            reads = counting.calls["query"] + counting.calls["get"]
            # A warm worker: the daily recompute has just read every ledger, so this refresh starts its edits from
            # them (each write still conditional on the ETags) instead of reading them again.
            clock.advance(timedelta(minutes=20))
            sync.ingest(tenant, "activities", _fresh(activities, 60, seed + 20, clock.now()))
            counting.reset()
            started = time.perf_counter()
            warm = insights.refresh(tenant)
            warm_s, warm_calls = time.perf_counter() - started, counting.total
            clock.advance(timedelta(hours=1))
            sync.ingest(tenant, "activities", _fresh(activities, 60, seed + 10, clock.now()))
            clock.advance(timedelta(minutes=1))
            out = _worker_run(["--worker", "--connection", at.connection, "--table", table,
                               "--tenant", tenant, "--at", clock.now().isoformat()])
            rows[at.name] = (refreshed.records, refresh_s, refresh_calls, report.records, recompute_s, reads,
                             json.loads(out.stdout.strip().splitlines()[-1]), (warm.records, warm_s, warm_calls))
        print(f"   {'tenant':>7} {'refresh s':>9} {'records':>7} {'calls':>6} {'daily s':>8} {'records':>7} "
              f"{'reads':>6} {'warm refresh s':>14} {'records':>7} {'calls':>6} {'worker: refresh s':>17} "
              f"{'daily s':>8} {'peak RSS MB':>11}")
        for name, (n, rs, calls, m, ds, reads, w, (wn, ws, wc)) in rows.items():
            print(f"   {name:>7} {rs:>9.2f} {n:>7} {calls:>6} {ds:>8.2f} {m:>7} {reads:>6} {ws:>14.2f} {wn:>7} "
                  f"{wc:>6} {w['refresh']:>17.2f} {w['recompute']:>8.2f} {w['rss_mb']:>11.0f}")
        a, b = rows[small.name], rows[large.name]
        print(f"   ratio large/100k: refresh {b[1] / a[1]:.2f}, warm refresh {b[7][1] / a[7][1]:.2f}, daily "
              f"recompute {b[4] / a[4]:.2f}, worker peak RSS {b[6]['rss_mb'] / a[6]['rss_mb']:.2f}")
        probes = {at.name: _range_probe_ms(at) for at in stands}
        print("   the same calls cost what each Azurite makes them cost: a query of one row of the log, median of 9: "
              + ", ".join(f"{name} {ms:.1f} ms" for name, ms in probes.items())
              + " (Azurite filters every row of a table for each query; Azure reads the partition's range)")

        print("\n   ingestion with the aggregates' upkeep: 10 × 1,000 new activities, each batch synced then refreshed")
        started = time.perf_counter()
        fresh = _batches(small.sync, small.insights, small.tenant, clock, activities, seed=100,
                         apart=timedelta(minutes=20))
        elapsed = time.perf_counter() - started
        print(f"   {fresh:,} activities in {elapsed:.1f} s = {fresh / elapsed:,.0f}/s", flush=True)
        print("   the same as the work bus runs it (one refresh a minute per tenant): 10 × 1,000 synced within a "
              "minute, then the refresh's steps")
        clock.advance(timedelta(minutes=20))
        started = time.perf_counter()
        fresh = _batches(small.sync, None, small.tenant, clock, activities, seed=200, apart=timedelta(seconds=5))
        synced = time.perf_counter() - started
        steps = _refreshed(small.insights, small.tenant)
        elapsed = time.perf_counter() - started
        print(f"   {fresh:,} activities in {elapsed:.1f} s (sync {synced:.1f} s, {steps} refresh steps) = "
              f"{fresh / elapsed:,.0f}/s", flush=True)

        print("\n4. reads of the 100,000-activity tenant")
        contact = data["contacts"][0]["id"]
        times = [_timed(lambda: small.insights.export(small.tenant, "contact", contact)) for _ in range(5)]
        found = small.insights.export(small.tenant, "contact", contact)
        print(f"   data-subject export of one contact ({len(found.activities)} activities): median "
              f"{statistics.median(times) * 1000:.0f} ms", flush=True)
        bootstrap.install(small.container)
        import function_app

        with FunctionHost(function_app.app, port=0, run_timers=False,
                          settings={"RI_BACKGROUND_SCHEDULE": "0 0 * * * *",
                                    "AzureWebJobsStorage": small.connection}) as host:
            session = requests.Session()
            session.trust_env = False
            session.headers["Authorization"] = "Bearer " + idp.user_token(small.tenant, str(uuid.uuid4()),
                                                                          ["Salesperson"])
            latencies = []
            for _ in range(args.queries):
                started = time.perf_counter()
                session.get(f"{host.base_url}/api/insights/contact?needsAttention=true&pageSize=25"
                            ).raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(f"   needs-attention page of contacts over HTTP: median {statistics.median(latencies):.0f} ms, "
                  f"p99 {p99:.0f} ms ({len(latencies)} requests)")
        bootstrap.install(None)

        # Last: it rewrites every ledger, which would leave this process's cache of them stale for what follows.
        print(f"\n5. a rebuild of the aggregates from the stored activities in a fresh worker, each tenant (facts "
              f"gathered up to {REBUILD_FACTS:,} at a time, then merged)")
        print(f"   {'tenant':>7} {'activities':>10} {'seconds':>8} {'steps':>5} {'calls':>6} {'peak RSS MB':>11}")
        done = {}
        for at in stands:
            if at is large and args.large_by == "sync" and not args.large_rebuild:
                print(f"   {at.name:>7} (not run: add --large-rebuild; on in-memory Azurite, at a few GB, it drops "
                      "connections during the rebuild of a 1,000,000-activity tenant)")
                continue
            out = _worker_run(["--worker", "--rebuild", "--connection", at.connection, "--table", table,
                               "--tenant", at.tenant, "--at", clock.now().isoformat()])
            done[at.name] = r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"   {at.name:>7} {r['activities']:>10,} {r['seconds']:>8.1f} {r['steps']:>5} {r['calls']:>6} "
                  f"{r['rss_mb']:>11.0f}", flush=True)
        if len(done) == 2:
            first, last = done[small.name], done[large.name]
            print(f"   ratio large/100k: time {last['seconds'] / first['seconds']:.2f}, peak RSS "
                  f"{last['rss_mb'] / first['rss_mb']:.2f}")

    pure_compute([(args.accounts, args.days), (1000, 60), (10000, 60)])


if __name__ == "__main__":
    main()
