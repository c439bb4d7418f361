"""Record changes in the insights, side by side in one run on a private Azurite: what a refresh costs after each
kind of CRM change (`shared/domain/insights/record_changes.py`), against the rebuild from every stored activity
that each of them cost before, and the sync call that brings a contact's opt-out (it applies it before answering).

    .venv/bin/python bench/record_changes.py [--accounts 155] [--days 1800]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._support import services_for
from bench.insights import NOW, _enable, _records, daily
from devhost.azurite import Azurite
from devhost.seed import generate
from shared.clock import FixedClock
from shared.services.ports import IndexKind
from shared.tenancy import TenantId


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=155)
    parser.add_argument("--days", type=int, default=1800)
    args = parser.parse_args()
    data = generate(accounts=args.accounts, sellers=60, days=args.days, now=NOW)
    activities = data["activities"]
    records = sum(len(data[k]) for k in ("accounts", "contacts", "leads", "opportunities"))
    print(f"a tenant of {len(activities):,} activities over {records:,} records, {len(data['users'])} sellers")
    with Azurite() as azurite:
        clock = FixedClock(NOW)
        container, counting = services_for(azurite.connection_string, "Changes", clock,
                                           queue_connection=azurite.connection_string)  # (a pass is asked by message)
        tenant = TenantId(str(uuid.uuid4()))
        _enable(container, tenant)
        _records(container, tenant, data)
        sync, insights = container.sync(), container.insights()
        for start in range(0, len(activities), 1000):
            sync.ingest(tenant, "activities", activities[start:start + 1000])
        clock.advance(timedelta(hours=1))
        insights.recompute(tenant)

        def changed(record: dict[str, Any], **change: Any) -> dict[str, Any]:
            record.update(change, version=record["version"] + 1)
            return record

        contacts = [c for c in data["contacts"] if c.get("accountId")]
        accounts = [a["id"] for a in data["accounts"]]
        moved, opted, renamed = contacts[0], contacts[1], contacts[2]
        user = data["users"][1]
        changes = [
            ("a contact's name", "contacts", [changed(renamed, fullName=f"{renamed['fullName']} Jr")]),
            ("a contact moves to another account", "contacts",
             [changed(moved, accountId=next(a for a in accounts if a != moved["accountId"]))]),
            ("a colleague's security roles", "users",
             [changed(user, securityRoleIds=[*user.get("securityRoleIds", ()), "r-extra"])]),
            ("a new contact (no index finds its activities)", "contacts",
             [{"id": f"new-{uuid.uuid4().hex[:8]}", "version": 1, "email": "newcomer@example.org",
               "fullName": "Newcomer", "accountId": accounts[0]}]),
        ]
        for row in container.index.due(IndexKind.INSIGHTS_RECOMPUTE, clock.now()):
            container.index.remove(row.kind, row.tenant_id, row.due)  # (asked by the set-up: done above)
        print(f"\n{'record change':<60} {'refresh s':>9} {'table calls':>11} {'records':>7} {'rebuild?':>8}")
        for name, kind, batch in changes:
            clock.advance(timedelta(hours=1))
            assert sync.ingest(tenant, kind, batch).stored == len(batch)
            clock.advance(timedelta(minutes=1))
            counting.reset()
            started = time.perf_counter()
            report = insights.refresh(tenant)
            rebuilt, records = report.activities >= len(activities), report.records
            asked = [row.due for row in container.index.due(IndexKind.INSIGHTS_RECOMPUTE, clock.now())
                     if row.tenant_id == tenant]
            if asked:  # a change that concerns every record asks for a pass over them: its steps, one by one
                records += daily(insights, tenant, max(asked)).records
                for due in asked:
                    container.index.remove(IndexKind.INSIGHTS_RECOMPUTE, tenant, due)
                name += " (+ a pass)"
            seconds = time.perf_counter() - started
            print(f"{name:<60} {seconds:>9.2f} {counting.total:>11,} {records:>7,} "
                  f"{'yes' if rebuilt else 'no':>8}", flush=True)

        clock.advance(timedelta(hours=1))
        counting.reset()
        started = time.perf_counter()
        sync.ingest(tenant, "contacts", [changed(opted, optedOut=True)])
        seconds = time.perf_counter() - started
        print(f"\nthe sync call bringing a contact's opt-out, applied before it answers: {seconds:.2f} s, "
              f"{counting.total:,} table calls")


if __name__ == "__main__":
    main()
