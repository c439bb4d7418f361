"""Schemathesis over the whole OpenAPI document, against the dev host: no 5xx, and every response conforms to the
document (status codes, content types, headers, bodies). One test per documented operation, the sync's once per
kind (`/api/sync/users`, …), driven through Hypothesis directly (schemathesis' pytest plugin does not support this
pytest release).

Admins call the admin operations, a seller the insights, a data connector of an enabled tenant
the sync (so that its items are validated, not refused at the door)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider
from shared.api import endpoints

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TENANT = str(uuid.uuid4())
SYNC_TENANT = str(uuid.uuid4())  # enabled, so that sync calls reach item-level validation
OPERATIONS = [(e.method, e.path) for e in endpoints.DOCUMENTED]
APP_ONLY = {(e.method, e.path) for e in endpoints.DOCUMENTED if e.auth == "app"}
INSIGHTS = {(e.method, e.path) for e in endpoints.DOCUMENTED if e.tag == "insights"}

@pytest.fixture(scope="module")
def api_schema(function_host: FunctionHost, idp: IdentityProvider) -> Any:
    base = f"{function_host.base_url}/api"
    admin = {"Authorization": f"Bearer {idp.user_token(SYNC_TENANT, str(uuid.uuid4()), ['SystemAdministrator'])}"}
    requests.put(f"{base}/relationship-intelligence/prerequisites", headers=admin, timeout=10,
                 json={"salesInsightsPremium": True, "office365DataLocation": "FR"}).raise_for_status()
    requests.post(f"{base}/relationship-intelligence/enable", headers=admin, timeout=10).raise_for_status()
    document = requests.get(f"{base}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    return schema


def test_the_document_lists_every_operation_tested() -> None:
    documented = {(e.method, e.path) for e in endpoints.DOCUMENTED}
    assert set(OPERATIONS) == documented
    assert {path for _, path in APP_ONLY} == {f"/api/sync/{v.value}" for v in endpoints.SYNC.variants}


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms(api_schema: Any, function_host: FunctionHost, idp: IdentityProvider, method: str,
                            path: str) -> None:
    operation = api_schema[path][method]
    if (method, path) in APP_ONLY:
        token = idp.app_token(SYNC_TENANT, "connector", ["RelationshipIntelligence.Sync"])
    elif (method, path) in INSIGHTS:
        token = idp.user_token(TENANT, "0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a12", ["Salesperson"])
    else:
        token = idp.user_token(TENANT, "0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a11", ["SystemAdministrator"])
    # Never "valid data is accepted": the product refuses schema-valid requests on purpose when its state says so
    # (stale If-Match 412, unknown role ids 422, unknown country 400, spent state 400, a feature off 409).
    excluded = [positive_data_acceptance]
    if (method, path) in APP_ONLY:
        # By design a sync answers 200 to a batch with invalid items, listing them in `rejected` (one bad item
        # does not refuse the batch, as the operation's description says); bodies that are not an object with
        # 1 to 1,000 objects in `items` are still refused with 400.
        excluded.append(negative_data_rejection)
    @given(operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def check(case: Any) -> None:
        case.call_and_validate(base_url=function_host.base_url, headers={"Authorization": f"Bearer {token}"},
                               allow_redirects=False, excluded_checks=excluded)

    check()
