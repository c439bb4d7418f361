"""Latency under concurrent clients, through the dev host on a private Azurite: p50 and p99 at 1, 10 and 50
concurrent clients for GET of the Overview and for POST /api/sync/activities with 100 new items (each client its
own tenant, and all clients sharing one tenant).

The clients run in a process of their own (threads, one keep-alive session each), so that they do not share
the app's interpreter lock; the app runs as one worker process does. Also printed: the answers' statuses, the
table round trips per request, and how often urllib3 warned that the Azure SDK's connection pool was full.

    .venv/bin/python bench/concurrency.py [--levels 1,10,50] [--overview 400] [--sync 100]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench._support import services_for
from devhost.azurite import Azurite
from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider, RegisteredApp
from shared import bootstrap
from shared.clock import SystemClock

AUDIENCE = "api://bench"
ITEMS = 100


class PoolFull(logging.Handler):
    """Counts urllib3's "Connection pool is full, discarding connection" warnings (the SDK's pools)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Connection pool is full" in record.getMessage():
            self.count += 1


def _activities(client: int, call: int) -> dict[str, Any]:
    start = datetime.now(UTC).isoformat()
    return {"items": [{"id": f"a-{client}-{call}-{i}-{uuid.uuid4().hex[:8]}", "version": 1, "source": "crm",
                       "kind": "email", "sender": "seller@contoso.com", "to": ["buyer@fabrikam.com"],
                       "start": start, "regarding": {"type": "account", "id": "a-1"}} for i in range(ITEMS)]}


def _client_load(job: dict[str, Any]) -> list[tuple[float, int]]:
    """In the clients' process: each thread sends its requests one after the other; (ms, status) per request."""
    tokens: list[str] = job["tokens"]
    barrier = threading.Barrier(len(tokens))
    results: list[list[tuple[float, int]]] = [[] for _ in tokens]

    def run(index: int) -> None:
        session = requests.Session()
        session.trust_env = False
        session.headers["Authorization"] = f"Bearer {tokens[index]}"
        barrier.wait()
        for call in range(job["per_client"]):
            body = _activities(index, call) if job["method"] == "POST" else None
            started = time.perf_counter()
            response = session.request(job["method"], job["url"], json=body, timeout=600)
            results[index].append(((time.perf_counter() - started) * 1000, response.status_code))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tokens))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [sample for samples in results for sample in samples]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,10,50")
    parser.add_argument("--overview", type=int, default=400, help="Overview requests per level (at least 5 each)")
    parser.add_argument("--sync", type=int, default=100, help="sync calls per level (at least 2 per client)")
    parser.add_argument("--scenarios", default="overview,sync,sync-shared")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    pool_full = PoolFull()
    logging.getLogger("urllib3.connectionpool").addHandler(pool_full)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as state, Azurite() as azurite, IdentityProvider(
            Path(state), RegisteredApp("bench", "bench", ("http://127.0.0.1/cb",)), api_audience=AUDIENCE,
            port=0) as idp, context.Pool(1) as clients:
        container, counting = services_for(azurite.connection_string, "Bench", SystemClock(),
                                          authority_host=idp.base_url, api_audiences=(AUDIENCE,),
                                          ca_bundle=str(idp.tls.ca_cert),
                                          queue_connection=azurite.connection_string)
        bootstrap.install(container)
        import function_app

        with FunctionHost(function_app.app, port=0, run_timers=False, run_queues=False,
                          settings={"RI_BACKGROUND_SCHEDULE": "0 0 * * * *",
                                    "AzureWebJobsStorage": azurite.connection_string}) as host:
            base = f"{host.base_url}/api/"
            tenants = [str(uuid.uuid4()) for _ in range(max(levels))]
            admins = [idp.user_token(t, str(uuid.uuid4()), ["SystemAdministrator"]) for t in tenants]
            connectors = [idp.app_token(t, "bench", ["RelationshipIntelligence.Sync"]) for t in tenants]
            for token in admins:
                headers = {"Authorization": f"Bearer {token}"}
                requests.put(base + "relationship-intelligence/prerequisites", headers=headers, timeout=30,
                             json={"salesInsightsPremium": True, "office365DataLocation": "FR"}).raise_for_status()
                requests.post(base + "relationship-intelligence/enable", headers=headers,
                              timeout=30).raise_for_status()
            clients.apply(_client_load, ({"tokens": admins[:1], "per_client": 5, "method": "GET",
                                          "url": base + "relationship-intelligence"},))  # warm-up

            print(f"{'scenario':<34} {'clients':>7} {'calls':>6} {'p50 ms':>9} {'p99 ms':>9} {'calls/s':>8} "
                  f"{'trips/call':>10} {'pool full':>9}  statuses")
            scenarios = {
                "overview": ("GET Overview, own tenants", "GET", "relationship-intelligence", admins, False,
                             args.overview),
                "sync": ("POST sync 100 items, own tenants", "POST", "sync/activities", connectors, False, args.sync),
                "sync-shared": ("POST sync 100 items, one tenant", "POST", "sync/activities", connectors, True,
                                args.sync)}
            for name, method, path, tokens, shared, total in (scenarios[s] for s in args.scenarios.split(",")):
                for level in levels:
                    chosen = [tokens[0]] * level if shared else tokens[:level]
                    per_client = max(2 if method == "POST" else 5, total // level)
                    counting.reset()
                    warnings_before = pool_full.count
                    started = time.perf_counter()
                    samples = clients.apply(_client_load, ({"tokens": chosen, "per_client": per_client,
                                                            "method": method, "url": base + path},))
                    elapsed = time.perf_counter() - started
                    latencies = [ms for ms, _ in samples]
                    statuses = Counter(status for _, status in samples)
                    print(f"{name:<34} {level:>7} {len(samples):>6} {statistics.median(latencies):>9.1f} "
                          f"{_percentile(latencies, 0.99):>9.1f} {len(samples) / elapsed:>8.1f} "
                          f"{counting.total / len(samples):>10.1f} {pool_full.count - warnings_before:>9}  "
                          f"{dict(sorted(statuses.items()))}", flush=True)
        bootstrap.install(None)


if __name__ == "__main__":
    main()
