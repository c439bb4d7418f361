"""Insights at size: ingestion throughput into Azurite (batched sync), full and incremental recompute time for
about 100,000 activities over about 2,000 records, and who-knows-whom latency through the dev host.

    .venv/bin/python bench/insights.py [--accounts 310] [--days 1800] [--queries 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench._support import services_for
from devhost.azurite import Azurite
from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider, RegisteredApp
from devhost.seed import generate
from shared import bootstrap
from shared.clock import FixedClock
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.services.timing import WRITE_SETTLE
from shared.tenancy import TenantId

NOW = datetime(2026, 11, 26, tzinfo=UTC)
AUDIENCE = "api://bench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=310)
    parser.add_argument("--days", type=int, default=1800)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    data = generate(accounts=args.accounts, sellers=60, days=args.days, now=NOW)
    records = sum(len(data[k]) for k in ("accounts", "contacts", "leads", "opportunities"))
    print(f"tenant: {len(data['activities'])} activities over {records} records, {len(data['users'])} sellers")

    with tempfile.TemporaryDirectory() as state, Azurite() as azurite, IdentityProvider(
            Path(state), RegisteredApp("bench", "bench", ("http://127.0.0.1/cb",)), api_audience=AUDIENCE,
            port=0) as idp:
        clock = FixedClock(NOW)
        container, counting = services_for(azurite.connection_string, "Insights", clock,
                                          authority_host=idp.base_url, api_audiences=(AUDIENCE,),
                                          ca_bundle=str(idp.tls.ca_cert))
        tenant = TenantId(str(uuid.uuid4()))
        settings = container.tenant_settings()
        roles = tuple(r.id for r in STANDARD_SALES_ROLES)
        settings.change(tenant, "admin", "prerequisites", lambda s, now: s.set_prerequisites(True, "FR", now))
        settings.change(tenant, "admin", "enable", lambda s, now: s.enable("admin", now, security_role_ids=roles))
        settings.change(tenant, "admin", "consent", lambda s, now: s.record_consent_granted("admin", (), now))
        sync = container.sync()
        for kind in ("users", "accounts", "contacts", "leads", "opportunities"):
            for start in range(0, len(data[kind]), 1000):
                sync.ingest(tenant, kind, data[kind][start:start + 1000])
        activities = data["activities"]
        counting.reset()
        started = time.perf_counter()
        for start in range(0, len(activities), 1000):
            sync.ingest(tenant, "activities", activities[start:start + 1000])
        elapsed = time.perf_counter() - started
        print(f"ingestion: {len(activities)} activities in {elapsed:.1f} s = {len(activities) / elapsed:,.0f}/s "
              f"({counting.total / len(activities):.2f} table calls per activity, batches of 1,000)")

        insights = container.insights()
        clock.advance(timedelta(hours=1))  # a recompute some time after the load (not within WRITE_SETTLE)
        started = time.perf_counter()
        report = insights.recompute(tenant)
        print(f"full recompute: {report.records} records from {report.activities} activities in "
              f"{time.perf_counter() - started:.1f} s")

        fresh = generate(accounts=args.accounts, sellers=60, days=30, seed=99, now=NOW + timedelta(hours=1))
        pool = [{**a, "id": f"new-{a['id']}"} for a in fresh["activities"] if a["start"] < _iso(NOW)]
        pool.reverse()  # the most recent first, like a connector catching up
        for count in (60, 1000):  # about a day of this tenant's activity; about three weeks
            clock.advance(timedelta(hours=1))
            new, pool = pool[:count], pool[count:]
            sync.ingest(tenant, "activities", new)
            started = time.perf_counter()
            refreshed = insights.refresh(tenant)
            print(f"incremental refresh after {len(new)} new activities: {refreshed.records} records recomputed "
                  f"from {refreshed.activities} activities read in {time.perf_counter() - started:.1f} s")

        bootstrap.install(container)
        import function_app

        with FunctionHost(function_app.app, port=0, run_timers=False,
                          settings={"RI_BACKGROUND_SCHEDULE": "0 0 * * * *"}) as host:
            session = requests.Session()
            session.trust_env = False
            session.headers["Authorization"] = "Bearer " + idp.user_token(tenant, str(uuid.uuid4()), ["Salesperson"])
            targets = [c["id"] for c in data["contacts"]][: args.queries]
            latencies = []
            for target in targets:
                started = time.perf_counter()
                session.get(f"{host.base_url}/api/who-knows-whom/contact/{target}").raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(f"who knows whom over HTTP: median {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms "
                  f"({len(latencies)} queries)")
        bootstrap.install(None)

        exchange = sum(1 for a in activities if a["source"] == "exchange")
        settings.change(tenant, "admin", "off", lambda s, now: s.set_exchange_integration(False, now))
        clock.advance(WRITE_SETTLE)
        started = time.perf_counter()
        outcome = container.background().run()
        elapsed = time.perf_counter() - started
        print(f"purge of {exchange} Exchange-derived activities (and the recompute after it) in one timer run: "
              f"{elapsed:.1f} s, {outcome.outcomes}")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


if __name__ == "__main__":
    main()
