"""Schemathesis over the whole OpenAPI document, against the dev host with a valid admin token: no 5xx,
and every response conforms to the document (status codes, content types, headers, bodies).

Operations are driven through Hypothesis directly (schemathesis' pytest plugin does not support this pytest
release), one test per operation of the catalogue."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider
from shared.api import endpoints

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TENANT = str(uuid.uuid4())
OPERATIONS = [(e.method, e.path) for e in endpoints.ALL]


@pytest.fixture(scope="module")
def api_schema(function_host: FunctionHost) -> Any:
    document = requests.get(f"{function_host.base_url}/api/openapi.json", timeout=10).json()
    return schemathesis.openapi.from_dict(document)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms(api_schema: Any, function_host: FunctionHost, idp: IdentityProvider, method: str,
                            path: str) -> None:
    operation = api_schema[path][method]
    token = idp.user_token(TENANT, "0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a11", ["SystemAdministrator"])

    @given(operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def check(case: Any) -> None:
        # Every check but "valid data is accepted": the product refuses schema-valid requests on purpose when
        # its state says so (stale If-Match 412, unknown role ids 422, unknown country 400, spent state 400).
        case.call_and_validate(base_url=function_host.base_url, headers={"Authorization": f"Bearer {token}"},
                               allow_redirects=False, excluded_checks=[positive_data_acceptance])

    check()
