"""Hostile input through the dev host, on every route it concerns: a body nesting arrays 1,000 deep (about
2 KB), integers in query strings written with other digits than ASCII or with thousands of them, and continuation
tokens that decode to such strings. Each is a 400 problem document and changes nothing (Hardening issue)."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider
from shared import bootstrap
from shared.api import endpoints
from shared.api.requests import MAX_JSON_DEPTH
from shared.domain.vocabulary import RECORD_KIND_NAMES
from shared.services.paging import offset_token
from shared.storage.records_repository import TableRecords
from shared.tenancy import TenantId
from tests.e2e.conftest import Api, ok

pytestmark = pytest.mark.e2e

DEEP_BODIES = {
    "arrays in a field": b'{"items": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    "top-level arrays": b"[" * 1000 + b"]" * 1000,
    "objects in a list": b'{"securityRoleIds": [' + b'{"a": ' * 700 + b"1" + b"}" * 700 + b"]}",
    "never closed": b'{"items": [' + b"[" * 2000,
}


class World:
    def __init__(self, host: FunctionHost, idp: IdentityProvider, tenant: str) -> None:
        self.tenant = tenant
        self.admin = Api(host.base_url, idp.user_token(tenant, str(uuid.uuid4()), ["SystemAdministrator"]))
        self.seller = Api(host.base_url, idp.user_token(tenant, str(uuid.uuid4()), ["Salesperson"]))
        self.connector = Api(host.base_url, idp.app_token(tenant, "connector", ["RelationshipIntelligence.Sync"]))

    def caller(self, endpoint: endpoints.Endpoint) -> Api:
        if endpoint.auth == "app":
            return self.connector
        return self.admin if endpoint.tag == "settings" else self.seller

    def state(self, container: bootstrap.Container) -> tuple[Any, ...]:
        """What a refused request must leave as it was: settings, audit trail, every kind of record."""
        records = TableRecords(container.tables)
        stored = tuple(sorted(r.id for kind in RECORD_KIND_NAMES
                              for r in records.iter_records(TenantId(self.tenant), kind)))
        return (ok(self.admin.get("relationship-intelligence")),
                ok(self.admin.get("relationship-intelligence/audit", params={"pageSize": 100})), stored)


@pytest.fixture
def world(function_host: FunctionHost, idp: IdentityProvider, tenant_id: str) -> World:
    world = World(function_host, idp, tenant_id)
    ok(world.admin.put("relationship-intelligence/prerequisites",
                       {"salesInsightsPremium": True, "office365DataLocation": "FR"}))
    ok(world.admin.post("relationship-intelligence/enable"))
    return world


def _with_body() -> list[tuple[endpoints.Endpoint, str]]:
    """Every route that takes a JSON body, once per allowed path value (each sync kind, lead and contact)."""
    routes = []
    for endpoint in endpoints.ALL:
        if endpoint.request is None:
            continue
        allowed = dict(endpoint.path_values)
        choices: list[dict[str, str]] = [{}]
        for name in endpoint.path_parameters:
            choices = [{**chosen, name: value} for chosen in choices for value in allowed.get(name, ("c-1",))]
        for chosen in choices:
            path = endpoint.path.removeprefix("/api/")
            for name, value in chosen.items():
                path = path.replace("{" + name + "}", value)
            routes.append((endpoint, path))
    return routes


ROUTES_WITH_BODY = _with_body()


def test_every_family_of_json_routes_is_covered() -> None:
    paths = {path for _, path in ROUTES_WITH_BODY}
    assert {"relationship-intelligence/prerequisites", "relationship-intelligence/enable",
            "who-knows-whom/contact/c-1/introductions"} <= paths
    assert {f"sync/{kind}" for kind in RECORD_KIND_NAMES} <= paths


@pytest.mark.parametrize("shape", DEEP_BODIES)
@pytest.mark.parametrize(("endpoint", "path"), ROUTES_WITH_BODY,
                         ids=[f"{e.method} {p}" for e, p in ROUTES_WITH_BODY])
def test_a_body_nested_too_deep_is_a_400_and_changes_nothing(world: World, container: bootstrap.Container,
                                                             endpoint: endpoints.Endpoint, path: str,
                                                             shape: str) -> None:
    before = world.state(container)
    response = world.caller(endpoint).call(endpoint.method, path, data=DEEP_BODIES[shape],
                                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert (problem["status"], problem["type"]) == (400, "urn:relationship-intelligence:problem:bad-request")
    assert f"{MAX_JSON_DEPTH} levels" in problem["detail"]
    assert world.state(container) == before


def test_a_body_at_the_nesting_limit_is_judged_by_its_fields(world: World) -> None:
    """Depth 32 passes the scan and is refused by the model (400 with the field), not by the nesting rule."""
    body = b'{"securityRoleIds": ' + b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1) + b"}"
    response = world.admin.call("PUT", "relationship-intelligence/security-roles", data=body,
                                headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"].startswith("securityRoleIds")


def test_brackets_and_escaped_quotes_inside_strings_are_data(world: World) -> None:
    """A sync item whose text is full of brackets and escaped quotes is stored, not taken for nesting."""
    name = '\\"' + "[{" * 90 + '"\\'
    report = ok(world.connector.post("sync/contacts", {"items": [{"id": "c-1", "version": 1, "fullName": name}]}))
    assert report["stored"] == 1


# -- integers and tokens in query strings -------------------------------------------------------------------

LISTS = {"insights": "insights/contact", "audit": "relationship-intelligence/audit"}
BAD_PAGE_SIZES = {
    "superscript two": "²",
    "Arabic-Indic five": "٥",
    "fullwidth five": "５",
    "mathematical bold one": "𝟏",
    "5,000 digits": "9" * 5000,
    "negative": "-1",
    "plus sign": "+5",
    "spaces": " 5 ",
    "underscore": "1_0",
    "exponent": "1e1",
    "leading zero": "05",
    "zero": "0",
    "over the maximum": "101",
}


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


BAD_OFFSET_TOKENS = {
    "superscript two": _b64("²"),
    "Arabic-Indic five": _b64("٥"),
    "fullwidth digits": _b64("１０"),
    "too many digits": _b64("9" * 45),  # fits in 64 characters, decodes to a 45-digit number
    "5,000 digits": _b64("9" * 5000),
    "not base64": "%%%",
    "not ASCII": "²",
    "negative": _b64("-5"),
    "empty offset": _b64(" "),
}
BAD_AUDIT_TOKENS = {
    "not base64": "%%%",
    "not ASCII": "٥",
    "arrays 1,500 deep": _b64("[" * 1500).rstrip("="),
    "not an object": _b64('["PartitionKey"]').rstrip("="),
    "a number as key": _b64('{"RowKey": 5}').rstrip("="),
    "an unknown field": _b64('{"RowKey": "audit|1", "Top": "5"}').rstrip("="),
    "control characters": _b64('{"RowKey": "a\\r\\nX: 1"}').rstrip("="),
    "too long": "A" * 2049,
}


def _refused(response: Any, parameter: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400
    assert [e["field"] for e in problem["errors"]] == [parameter]


@pytest.mark.parametrize("value", BAD_PAGE_SIZES.values(), ids=BAD_PAGE_SIZES.keys())
@pytest.mark.parametrize("listing", LISTS)
def test_page_size_takes_ascii_digits_only(world: World, listing: str, value: str) -> None:
    api = world.seller if listing == "insights" else world.admin
    _refused(api.get(LISTS[listing], params={"pageSize": value}), "pageSize")
    assert ok(api.get(LISTS[listing], params={"pageSize": "5"})) is not None


@pytest.mark.parametrize("token", BAD_OFFSET_TOKENS.values(), ids=BAD_OFFSET_TOKENS.keys())
def test_an_insights_token_that_is_not_ours_is_a_400(world: World, token: str) -> None:
    _refused(world.seller.get(LISTS["insights"], params={"continuationToken": token}), "continuationToken")


def test_an_insights_token_of_ours_is_taken(world: World) -> None:
    assert ok(world.seller.get(LISTS["insights"], params={"continuationToken": offset_token(3)}))["items"] == []


@pytest.mark.parametrize("token", BAD_AUDIT_TOKENS.values(), ids=BAD_AUDIT_TOKENS.keys())
def test_an_audit_token_that_is_not_ours_is_a_400(world: World, token: str) -> None:
    _refused(world.admin.get(LISTS["audit"], params={"continuationToken": token}), "continuationToken")
