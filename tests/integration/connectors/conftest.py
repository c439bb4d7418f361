"""Clients of ours pointed at the local Graph and Dataverse stand-ins (tests/conftest.py starts them once per
session beside the identity provider), with tokens from the real local identity provider through MSAL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

from devhost import organisation
from devhost.dataverse import LocalDataverse
from devhost.graph import LocalGraph
from devhost.idp import DEFAULT_GRAPH_PERMISSIONS, IdentityProvider
from shared.connectors import MsalTokenProvider, RetryPolicy
from shared.connectors.dataverse import DataverseClient
from shared.connectors.graph import GraphClient
from shared.tenancy import TenantId
from tests.conftest import CLIENT_ID, CLIENT_SECRET

# Short waits: the client retries twice inline when Retry-After is at most 2 s, else hands the wait back.
RETRY = RetryPolicy(attempts=3, max_inline_wait=2.0, default_wait=0.05)


@pytest.fixture
def tokens(idp: IdentityProvider, http_factory: Callable[[], requests.Session]) -> MsalTokenProvider:
    return MsalTokenProvider(authority_host=idp.base_url, client_id=CLIENT_ID, client_credential=lambda: CLIENT_SECRET,
                             http_client_factory=http_factory)


@pytest.fixture
def sleeps() -> list[float]:
    """What the clients would have slept (they are given `list.append` as their sleep)."""
    return []


@pytest.fixture
def graph_client(tokens: MsalTokenProvider, local_graph: LocalGraph, sleeps: list[float],
                 http_factory: Callable[[], requests.Session]) -> GraphClient:
    return GraphClient(tokens, base_url=local_graph.base_url, page_size=25, session_factory=http_factory,
                       sleep=sleeps.append, retry=RETRY)


@pytest.fixture
def dataverse_client(tokens: MsalTokenProvider, sleeps: list[float],
                     http_factory: Callable[[], requests.Session]) -> DataverseClient:
    return DataverseClient(tokens, page_size=20, allow_loopback=True, session_factory=http_factory,
                           sleep=sleeps.append, retry=RETRY)


@pytest.fixture
def org(idp: IdentityProvider, local_graph: LocalGraph, local_dataverse: LocalDataverse,
        tenant_id: TenantId) -> Iterator[organisation.Organisation]:
    """A small organisation of its own tenant in both stand-ins, the app consented there."""
    data = organisation.generate(tenant_id, sellers=4, accounts=4)
    organisation.load(data, local_graph, local_dataverse, application_id=CLIENT_ID)
    idp.grants.grant(tenant_id, CLIENT_ID, DEFAULT_GRAPH_PERMISSIONS)
    yield data
    local_graph.clear_faults()
    local_dataverse.clear_faults()
    local_graph.latency_seconds = 0.0
