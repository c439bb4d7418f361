"""Table round trips per request and median latency of each settings route, through the dev host on Azurite
(the same path a portal's request takes, token validation included).

    .venv/bin/python bench/api_roundtrips.py [--requests 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
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
from shared.domain.security_roles import STANDARD_SALES_ROLES

AUDIENCE = "api://bench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30)
    count = parser.parse_args().requests
    with tempfile.TemporaryDirectory() as state, Azurite() as azurite, IdentityProvider(
            Path(state), RegisteredApp("bench", "bench", ("http://127.0.0.1/cb",)), api_audience=AUDIENCE,
            port=0) as idp:
        container, counting = services_for(azurite.connection_string, "Bench", SystemClock(),
                                          authority_host=idp.base_url, api_audiences=(AUDIENCE,),
                                          ca_bundle=str(idp.tls.ca_cert))
        bootstrap.install(container)
        import function_app

        with FunctionHost(function_app.app, port=0, run_timers=False,
                          settings={"RI_BACKGROUND_SCHEDULE": "0 0 * * * *"}) as host:
            tenant = str(uuid.uuid4())
            session = requests.Session()
            session.trust_env = False
            session.headers["Authorization"] = "Bearer " + idp.user_token(tenant, str(uuid.uuid4()),
                                                                          ["SystemAdministrator"])
            base = f"{host.base_url}/api/"
            session.put(base + "relationship-intelligence/prerequisites",
                        json={"salesInsightsPremium": True, "office365DataLocation": "FR"}).raise_for_status()
            session.post(base + "relationship-intelligence/enable").raise_for_status()
            roles = [STANDARD_SALES_ROLES[2].id, STANDARD_SALES_ROLES[3].id]
            turn = {"n": 0}

            def alternate(first: dict[str, Any], second: dict[str, Any]) -> Callable[[], Any]:
                """Each mutation alternates between two values, so that every request changes something."""
                def body() -> dict[str, Any]:
                    turn["n"] += 1
                    return first if turn["n"] % 2 else second
                return body

            cases: list[tuple[str, str, Callable[[], Any] | None]] = [
                ("GET", "relationship-intelligence", None),
                ("GET", "security-roles", None),
                ("GET", "relationship-intelligence/audit", None),
                ("PUT", "relationship-intelligence/exchange-integration",
                 alternate({"enabled": False}, {"enabled": True})),
                ("PUT", "relationship-intelligence/security-roles",
                 alternate({"securityRoleIds": roles[:1]}, {"securityRoleIds": roles})),
                ("PUT", "relationship-intelligence/features/relationship-analytics",
                 alternate({"communicationFrequency": "monthly"}, {"communicationFrequency": "weekly"})),
                ("POST", "relationship-intelligence/enable", None),
                ("GET", "me", None),
            ]
            print(f"{'route':<64} {'trips/req':>9} {'median ms':>10} {'p95 ms':>8}")
            for method, path, body in cases:
                latencies, trips = [], []
                for _ in range(count):
                    counting.reset()
                    started = time.perf_counter()
                    response = session.request(method, base + path, json=body() if body else None)
                    latencies.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                    trips.append(counting.total)
                quantiles = statistics.quantiles(latencies, n=20)
                print(f"{method + ' /api/' + path:<64} {statistics.mean(trips):>9.1f} "
                      f"{statistics.median(latencies):>10.1f} {quantiles[18]:>8.1f}")
            print("\nA mutation reads the settings once and writes them with their audit event in one entity-group "
                  "transaction;\nopening or closing a consent window, requesting a purge or changing what insights "
                  "depend on adds one index write each;\nenabling an enabled tenant only reads; selecting roles "
                  "reads the role catalogue too.")
        bootstrap.install(None)


if __name__ == "__main__":
    main()
