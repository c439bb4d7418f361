"""Schemathesis over the whole OpenAPI document, against the dev host: no 5xx, and every response conforms to the
document (status codes, content types, headers, bodies). One test per documented operation, the sync's once per
kind (`/api/sync/users`, …), driven through Hypothesis directly (schemathesis' pytest plugin does not support this
pytest release).

Each operation gets schema-valid cases, schema-violating ones (negative mode: they must be refused with a 4xx),
and hostile ones: a valid case with one query value replaced by digits other than ASCII (`²`, `٥`, `５`, `𝟏`) or
5,000 of them, or unicode text, and one body field replaced by arrays or objects nested past the API's limit or
by unicode text. Admins call the admin operations, a seller the insights, a data connector of an enabled tenant
the sync (so that its items are validated, not refused at the door)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider
from shared.api import endpoints
from shared.api.requests import MAX_JSON_DEPTH

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TENANT = str(uuid.uuid4())
SYNC_TENANT = str(uuid.uuid4())  # enabled, so that sync calls reach item-level validation
OPERATIONS = [(e.method, e.path) for e in endpoints.DOCUMENTED]
APP_ONLY = {(e.method, e.path) for e in endpoints.DOCUMENTED if e.auth == "app"}
INSIGHTS = {(e.method, e.path) for e in endpoints.DOCUMENTED if e.tag == "insights"}

# Not ASCII digits, or too many of them: each is a 400 where an integer is expected.
HOSTILE_NUMBERS = ["²", "٥", "５", "𝟏", "߃", "9" * 5000, "-0", "1e3"]
HOSTILE_TEXT = ["é", "Ωμέγα", "日本語", "\u202eevil", "\u200b", "🙂" * 50, "٥", "ǅ", "\ufeffx", "a\u0301" * 30]


def _nested(depth: int, inner: Any, kind: str) -> Any:
    for _ in range(depth):
        inner = [inner] if kind == "array" else {"a": inner}
    return inner


HOSTILE_VALUES = [*HOSTILE_TEXT, _nested(MAX_JSON_DEPTH + 1, 1, "array"), _nested(MAX_JSON_DEPTH + 1, 1, "object"),
                  _nested(300, "x", "array"), _nested(MAX_JSON_DEPTH - 2, "٥", "array")]


@st.composite
def _hostile(draw: st.DrawFn, operation: Any) -> Any:
    """A schema-valid case with one query value and one body field made hostile."""
    case = draw(operation.as_strategy())
    declared = {p["name"]: p["schema"] for p in operation.definition.raw.get("parameters", []) if p["in"] == "query"}
    if declared:
        name = draw(st.sampled_from(sorted(declared)))
        numbers = declared[name].get("type") == "integer"
        case.query = {**(case.query or {}), name: draw(st.sampled_from(HOSTILE_NUMBERS if numbers else HOSTILE_TEXT))}
    if isinstance(case.body, dict):
        field = draw(st.sampled_from(sorted(case.body) or ["extra"]))
        case.body = {**case.body, field: draw(st.sampled_from(HOSTILE_VALUES))}
    return case


@pytest.fixture(scope="module")
def api_schema(function_host: FunctionHost, idp: IdentityProvider) -> Any:
    base = f"{function_host.base_url}/api"
    admin = {"Authorization": f"Bearer {idp.user_token(SYNC_TENANT, str(uuid.uuid4()), ['SystemAdministrator'])}"}
    requests.put(f"{base}/relationship-intelligence/prerequisites", headers=admin, timeout=10,
                 json={"salesInsightsPremium": True, "office365DataLocation": "FR"}).raise_for_status()
    requests.post(f"{base}/relationship-intelligence/enable", headers=admin, timeout=10).raise_for_status()
    document = requests.get(f"{base}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    # The bearer token is ours to send (each case gets a valid one), and unknown query parameters are ignored by
    # design, as most HTTP APIs do: negative cases violate the declared parameters and bodies instead.
    schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)
    # A body made too large by a negative case is refused as such: 413 is a refusal too.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return schema


def test_the_document_lists_every_operation_tested() -> None:
    documented = {(e.method, e.path) for e in endpoints.DOCUMENTED}
    assert set(OPERATIONS) == documented
    assert {path for _, path in APP_ONLY} == {f"/api/sync/{v.value}" for v in endpoints.SYNC.variants}


def test_the_hostile_values_are_what_they_claim() -> None:
    assert not any(value.isascii() and value.isdigit() and len(value) < 4 for value in HOSTILE_NUMBERS)
    assert all(not text.isascii() for text in HOSTILE_TEXT)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms(api_schema: Any, function_host: FunctionHost, idp: IdentityProvider, method: str,
                            path: str) -> None:
    operation = api_schema[path][method]
    if (method, path) in APP_ONLY:
        token = idp.app_token(SYNC_TENANT, "connector", ["RelationshipIntelligence.Sync"])
    elif (method, path) in INSIGHTS:
        token = idp.user_token(TENANT, "0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a12", ["Salesperson", "SalesManager"])
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
    strategies = [operation.as_strategy(), operation.as_strategy(GenerationMode.NEGATIVE), _hostile(operation)]

    @given(st.one_of(strategies))
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def check(case: Any) -> None:
        # The host leaves query values that are empty out of what reaches the function (ASP.NET's query collection,
        # devhost/functionhost.py): `pageSize=` is the request without pageSize, which a negative case it is not.
        assume(not any(value == "" for value in (case.query or {}).values()))
        case.call_and_validate(base_url=function_host.base_url, headers={"Authorization": f"Bearer {token}"},
                               allow_redirects=False, excluded_checks=excluded)

    check()
