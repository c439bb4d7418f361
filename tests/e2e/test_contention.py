"""Contention over HTTP: when the settings keep changing under a request (every save meets a newer ETag), the
answer is a 409 problem with Retry-After, as the sync's contended 409 is, and the OpenAPI document says so.
The contention is real code on Azurite: the services' retries against repositories whose writes always find the
rows changed, installed as the process's container."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider
from shared import bootstrap
from shared.api import endpoints
from shared.domain.audit import AuditEvent
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.domain.tenant_settings import TenantSettings
from shared.errors import ConcurrencyConflict
from shared.services.tenant_settings import MAX_ATTEMPTS, TenantSettingsService
from shared.storage.records_repository import TableRecords
from shared.storage.settings_repository import TableSettingsRepository
from shared.tenancy import TenantId
from tests.e2e.conftest import Api, ok

pytestmark = pytest.mark.e2e

SALES_MANAGER = next(r.id for r in STANDARD_SALES_ROLES if r.name == "Sales Manager")
PREREQUISITES = {"salesInsightsPremium": True, "office365DataLocation": "FR"}


class AlwaysChanged(TableSettingsRepository):
    """Reads for real; every save finds that someone else saved first."""

    def __init__(self, inner: TableSettingsRepository, saves: list[str]) -> None:
        super().__init__(inner._tables)
        self.saves = saves

    def save(self, tenant_id: TenantId, settings: TenantSettings, etag: str | None, event: AuditEvent) -> str:
        self.saves.append(event.action)
        raise ConcurrencyConflict("someone else saved first")


class AlwaysWritten(TableRecords):
    """Records whose every write finds that another batch wrote some of the same rows first."""

    def write(self, *args: Any, **kwargs: Any) -> None:
        raise ConcurrencyConflict("another batch wrote these rows first")


@dataclasses.dataclass
class ContendedContainer(bootstrap.Container):
    saves: list[str] = dataclasses.field(default_factory=list)

    def tenant_settings(self) -> TenantSettingsService:
        return TenantSettingsService(AlwaysChanged(TableSettingsRepository(self.tables), self.saves), self.clock,
                                     self.index)

    @property
    def records(self) -> TableRecords:
        return AlwaysWritten(self.tables)


@pytest.fixture
def contended(container: bootstrap.Container) -> Iterator[ContendedContainer]:
    """Installs the contended container for the test's requests (the set-up before it runs on the real one)."""
    replacement = ContendedContainer(**{f.name: getattr(container, f.name) for f in dataclasses.fields(container)})
    yield replacement
    bootstrap.install(container)


# Each settings change, with a body that changes something in the state its set-up leaves.
CHANGES: list[tuple[endpoints.Endpoint, dict[str, Any] | None, bool]] = [  # (endpoint, body, enable first)
    (endpoints.PREREQUISITES, {"salesInsightsPremium": True, "office365DataLocation": "US"}, True),
    (endpoints.ENABLE, None, False),
    (endpoints.DISABLE, None, True),
    (endpoints.SECURITY_ROLES, {"securityRoleIds": [SALES_MANAGER]}, True),
    (endpoints.EXCHANGE, {"enabled": False}, True),
    (endpoints.EXCLUDED_GROUPS, {"groupIds": [str(uuid.UUID(int=5))]}, True),
    (endpoints.CRM_ENVIRONMENT, {"environmentUrl": "https://contoso.crm4.dynamics.com"}, True),
    (endpoints.ANALYTICS, {"communicationFrequency": "monthly"}, True),
    (endpoints.WHO_KNOWS_WHOM_OPTIONS, {"enabled": False}, True),
]
SETTINGS_CHANGES = [e for e in endpoints.ALL if e.tag == "settings" and e.method != "GET"]


def test_every_settings_change_is_exercised() -> None:
    assert {e.function_name for e, _, _ in CHANGES} == {e.function_name for e in SETTINGS_CHANGES}


@pytest.mark.parametrize(("endpoint", "body", "enabled"), CHANGES, ids=[e.function_name for e, _, _ in CHANGES])
def test_a_contended_settings_change_is_a_409_with_retry_after(admin: Api, contended: ContendedContainer,
                                                               endpoint: endpoints.Endpoint,
                                                               body: dict[str, Any] | None, enabled: bool) -> None:
    ok(admin.put("relationship-intelligence/prerequisites", PREREQUISITES))
    if enabled:
        ok(admin.post("relationship-intelligence/enable"))
    before = ok(admin.get("relationship-intelligence"))
    bootstrap.install(contended)
    path = endpoint.path.removeprefix("/api/")
    response = admin.call(endpoint.method, path, json=body)
    assert response.status_code == 409, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["type"] == "urn:relationship-intelligence:problem:conflict"
    assert int(response.headers["Retry-After"]) > 0
    assert len(contended.saves) == MAX_ATTEMPTS  # it re-read and re-decided before giving up
    # With If-Match the client asked for exactly its version: the same contention is a 412, without retries.
    stale = admin.call(endpoint.method, path, json=body, headers={"If-Match": before["etag"]})
    assert stale.status_code == 412, stale.text
    assert len(contended.saves) == MAX_ATTEMPTS + 1
    assert ok(admin.get("relationship-intelligence")) == before


def test_a_contended_sync_is_a_409_with_retry_after_too(admin: Api, function_host: FunctionHost, idp: IdentityProvider,
                                                         tenant_id: str, container: bootstrap.Container,
                                                         contended: ContendedContainer) -> None:
    ok(admin.put("relationship-intelligence/prerequisites", PREREQUISITES))
    ok(admin.post("relationship-intelligence/enable"))
    connector = Api(function_host.base_url, idp.app_token(tenant_id, "connector", ["RelationshipIntelligence.Sync"]))
    bootstrap.install(contended)
    response = connector.post("sync/contacts", {"items": [{"id": "c-1", "version": 1}]})
    assert response.status_code == 409, response.text
    assert response.json()["type"] == "urn:relationship-intelligence:problem:conflict"
    assert int(response.headers["Retry-After"]) > 0
    bootstrap.install(container)
    assert list(TableRecords(container.tables).iter_records(TenantId(tenant_id), "contacts")) == []


def test_the_openapi_document_declares_retry_after_on_every_contended_409(function_host: FunctionHost) -> None:
    document = requests.get(f"{function_host.base_url}/api/openapi.json", timeout=10).json()
    for endpoint in [*SETTINGS_CHANGES, endpoints.SYNC]:
        name = endpoint.function_name  # the sync's operations are one per kind: sync_records_{kind}
        operations = [operation for item in document["paths"].values() for operation in item.values()
                      if operation["operationId"] == name or operation["operationId"].startswith(name + "_")]
        assert operations, endpoint.function_name
        for operation in operations:
            conflict = operation["responses"]["409"]
            assert conflict["headers"]["Retry-After"]["schema"] == {"type": "integer"}, endpoint.function_name
            assert "Retry-After" in conflict["description"], endpoint.function_name


def test_a_consent_callback_that_meets_contention_is_a_page_that_says_try_again(
        admin: Api, contended: ContendedContainer, function_host: FunctionHost, idp: IdentityProvider,
        tenant_id: str) -> None:
    from devhost.idp import DEFAULT_GRAPH_PERMISSIONS
    from tests.conftest import CLIENT_ID
    from tests.e2e.test_consent import _success_params, callback, consent_link, enable

    enable(admin)
    link = consent_link(admin)
    idp.grants.grant(tenant_id, CLIENT_ID, DEFAULT_GRAPH_PERMISSIONS)
    bootstrap.install(contended)
    answer = callback(function_host, _success_params(link, tenant_id))
    assert answer.status_code == 503  # a person's browser reads this: a page, not a problem document
    assert answer.headers["Content-Type"].startswith("text/html")
    assert int(answer.headers["Retry-After"]) > 0
    assert "Try again" in answer.text
