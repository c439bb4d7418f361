"""Shared fixtures. Real parts only where they matter: Azurite for storage (started here, on a free
loopback port, in memory) and the dev host's identity provider over HTTPS for tokens and MSAL.
Each fixture starts only when a test asks for it, so unit tests run without either."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from devhost.azurite import Azurite
from devhost.dataverse import LocalDataverse
from devhost.graph import LocalGraph
from devhost.idp import IdentityProvider, RegisteredApp
from devhost.queues import QueueOptions
from shared import bootstrap
from shared.config import AppConfig
from shared.tenancy import TenantId

# Quicker than host.json's for tests: the queues are polled at least every 0.2 s, a failure is retried after 1 s.
TEST_QUEUES = QueueOptions(batch_size=8, max_polling_seconds=0.2, visibility_timeout_seconds=1, max_dequeue_count=3)

CLIENT_ID = "6f1b0c52-8a4e-4d7b-9c3a-2e5f7a9b1c0d"
CLIENT_SECRET = "test-secret"
AUDIENCE = "api://relationship-intelligence-test"
REDIRECT_URI = "http://127.0.0.1:7071/api/consent/callback"


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityProvider]:
    app = RegisteredApp(CLIENT_ID, CLIENT_SECRET, (REDIRECT_URI,))
    provider = IdentityProvider(tmp_path_factory.mktemp("idp"), app, api_audience=AUDIENCE, port=0)
    with provider:
        yield provider


@pytest.fixture(scope="session")
def local_graph(idp: IdentityProvider) -> Iterator[LocalGraph]:
    """The local Microsoft Graph (HTTPS on loopback, beside the identity provider), shared by the session: each
    test gives it a tenant of its own."""
    with LocalGraph(idp) as graph:
        yield graph


@pytest.fixture(scope="session")
def local_dataverse(idp: IdentityProvider) -> Iterator[LocalDataverse]:
    with LocalDataverse(idp) as dataverse:
        yield dataverse


@pytest.fixture
def http_factory(idp: IdentityProvider) -> Callable[[], requests.Session]:
    """Our clients' sessions: the identity provider's CA trusted, nothing taken from the machine's environment."""
    def make() -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(idp.tls.ca_cert)
        return session

    return make


def make_config(connection_string: str, idp: IdentityProvider, **overrides: object) -> AppConfig:
    base = AppConfig(
        storage_connection=connection_string,
        queue_connection=connection_string,
        tables_endpoint=None,
        state_table="TenantState",
        authority_host=idp.base_url,
        api_audiences=(AUDIENCE, CLIENT_ID),
        ca_bundle=str(idp.tls.ca_cert),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        consent_redirect_uri=REDIRECT_URI,
        consent_proof_backoff_seconds=0.05,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def config(azurite: Azurite, idp: IdentityProvider) -> AppConfig:
    return make_config(azurite.connection_string, idp)


@pytest.fixture(scope="session")
def container(config: AppConfig) -> Iterator[bootstrap.Container]:
    container = bootstrap.build(config)
    bootstrap.install(container)
    yield container
    bootstrap.install(None)


@pytest.fixture
def idp_session(idp: IdentityProvider) -> requests.Session:
    """A client of the identity provider that trusts its CA (and nothing from the machine's environment)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(idp.tls.ca_cert)
    return session


@pytest.fixture
def tenant_id() -> TenantId:
    return TenantId(str(uuid.uuid4()))


@pytest.fixture
def user_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
