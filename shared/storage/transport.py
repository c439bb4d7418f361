"""The HTTP transport of our Azure SDK clients (tables, queues), built once per client and shared by the table
and queue clients it hands out.

- A connection pool sized for a worker's concurrency: requests' default keeps 10 connections per host, so with
  more requests in flight every extra one opened a connection and threw it away after one call (urllib3's
  "Connection pool is full, discarding connection"), paying a new TCP (and in Azure, TLS) handshake each time.
- No environment lookups per request: with `trust_env` requests reads the proxy variables and stats `~/.netrc` on
  every call (about 6 % of a table read's CPU). The app talks only to Azure Storage (Azurite locally), never
  through a proxy.
- No retries in the adapter: the SDK's retry policy (`retry_total`, …) decides, as it does with its own session.
"""

from __future__ import annotations

from typing import Any

POOL_CONNECTIONS = 64  # idle connections kept per host; never a limit (a 65th request opens one more)


def storage_transport(*, connection_timeout: float, read_timeout: float) -> Any:
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_CONNECTIONS,
                          max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    for prefix in ("http://", "https://"):
        session.mount(prefix, adapter)
    return RequestsTransport(session=session, session_owner=False, connection_timeout=connection_timeout,
                             read_timeout=read_timeout)
