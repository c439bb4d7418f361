"""The admin's journey through the settings pages, over HTTP as the portal does it (SPEC 2, issue 3)."""

from __future__ import annotations

import concurrent.futures
import uuid

import pytest

from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider
from shared.bootstrap import Container
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.storage.settings_repository import TableSettingsRepository
from shared.tenancy import TenantId
from tests.e2e.conftest import Api, ok

pytestmark = pytest.mark.e2e

SALESPERSON = next(r.id for r in STANDARD_SALES_ROLES if r.name == "Salesperson")
SALES_MANAGER = next(r.id for r in STANDARD_SALES_ROLES if r.name == "Sales Manager")



def test_the_whole_admin_flow(admin: Api) -> None:
    overview = ok(admin.get("relationship-intelligence"))
    assert overview["status"] == "notEnabled"
    assert overview["banner"] is None

    refused = admin.post("relationship-intelligence/enable")
    assert refused.status_code == 409
    assert refused.json()["missingPrerequisite"] == "salesInsightsPremium"

    ok(admin.put("relationship-intelligence/prerequisites",
                 {"salesInsightsPremium": True, "office365DataLocation": "FR"}))
    enabled = admin.post("relationship-intelligence/enable")
    overview = ok(enabled)
    assert enabled.headers["ETag"] == overview["etag"]
    assert overview["status"] == "enabled"
    assert overview["features"]["relationshipAnalytics"]["enabled"]
    assert overview["features"]["whoKnowsWhom"]["enabled"]
    assert overview["exchange"]["integrationEnabled"]
    assert overview["exchange"]["consent"]["status"] == "pending"
    assert overview["banner"]["kind"] == "consentPending"
    assert overview["banner"]["daysLeft"] == 14
    first_deadline = overview["banner"]["deadline"]

    again = ok(admin.post("relationship-intelligence/enable"))
    assert again["changed"] is False

    overview = ok(admin.put("relationship-intelligence/security-roles",
                            {"securityRoleIds": [SALESPERSON, SALES_MANAGER]}))
    assert overview["exchange"]["securityRoleIds"] == [SALESPERSON, SALES_MANAGER]

    overview = ok(admin.put("relationship-intelligence/features/relationship-analytics", {
        "healthDisplay": False, "activityInfluence": {"email": 20, "meeting": -50, "phoneCall": 50, "task": 0},
        "communicationFrequency": "monthly", "grading": {"goodMin": 70, "fairMin": 45}}))
    analytics = overview["features"]["relationshipAnalytics"]
    assert analytics["grading"] == {"goodMin": 70, "fairMin": 45}
    assert analytics["communicationFrequency"] == "monthly"
    assert analytics["healthDisplay"] is False

    overview = ok(admin.put("relationship-intelligence/features/who-knows-whom", {
        "introductionEmailTemplate": {"subject": "Meet {target}?", "body": "Hi {introducer}, from {requester}"}}))
    assert overview["features"]["whoKnowsWhom"]["introductionEmailTemplate"]["subject"] == "Meet {target}?"

    overview = ok(admin.put("relationship-intelligence/exchange-integration", {"enabled": False}))
    assert overview["exchange"]["consent"]["status"] == "notRequired"
    assert overview["banner"] is None
    assert overview["features"]["whoKnowsWhom"]["mode"] == "basic"

    overview = ok(admin.put("relationship-intelligence/exchange-integration", {"enabled": True}))
    assert overview["exchange"]["consent"]["status"] == "pending"
    assert overview["banner"]["deadline"] >= first_deadline

    overview = ok(admin.post("relationship-intelligence/disable"))
    assert overview["status"] == "disabled"
    assert overview["banner"] is None
    overview = ok(admin.post("relationship-intelligence/enable"))
    assert overview["status"] == "enabled"
    assert overview["features"]["relationshipAnalytics"]["grading"] == {"goodMin": 70, "fairMin": 45}

    audit = ok(admin.get("relationship-intelligence/audit", params={"pageSize": 100}))
    actions = [e["action"] for e in audit["events"]]
    assert actions == ["enable", "disable", "setExchangeIntegration", "setExchangeIntegration", "setWhoKnowsWhom",
                       "setRelationshipAnalytics", "selectSecurityRoles", "enable", "setPrerequisites"]
    latest = audit["events"][0]
    assert {"field": "status", "old": "disabled", "new": "enabled"} in latest["changes"]


def test_audit_pages_with_a_continuation_token(admin: Api) -> None:
    for location in ("FR", "DE", "US", "JP"):
        ok(admin.put("relationship-intelligence/prerequisites",
                     {"salesInsightsPremium": True, "office365DataLocation": location}))
    first = ok(admin.get("relationship-intelligence/audit", params={"pageSize": 3}))
    assert len(first["events"]) == 3
    assert first["continuationToken"]
    second = ok(admin.get("relationship-intelligence/audit",
                          params={"pageSize": 3, "continuationToken": first["continuationToken"]}))
    assert len(second["events"]) == 1
    assert second["continuationToken"] is None
    locations = [c["new"] for e in first["events"] + second["events"] for c in e["changes"]
                 if c["field"] == "prerequisites.office365DataLocation"]
    assert locations == ["JP", "US", "DE", "FR"]


def test_an_unsupported_location_enables_on_crm_data_only(admin: Api) -> None:
    ok(admin.put("relationship-intelligence/prerequisites",
                 {"salesInsightsPremium": True, "office365DataLocation": "DE"}))
    overview = ok(admin.post("relationship-intelligence/enable"))
    assert overview["banner"]["kind"] == "exchangeUnavailable"
    assert overview["exchange"]["integrationEnabled"] is False
    assert overview["exchange"]["consent"]["status"] == "notRequired"
    refused = admin.put("relationship-intelligence/exchange-integration", {"enabled": True})
    assert refused.status_code == 409
    assert "outside the supported" in refused.json()["detail"]


def test_if_match_is_honoured(admin: Api) -> None:
    first = admin.put("relationship-intelligence/prerequisites",
                      {"salesInsightsPremium": True, "office365DataLocation": "FR"})
    etag = first.headers["ETag"]
    ok(admin.post("relationship-intelligence/enable", headers={"If-Match": etag}))
    stale = admin.post("relationship-intelligence/disable", headers={"If-Match": etag})
    assert stale.status_code == 412
    assert ok(admin.get("relationship-intelligence"))["status"] == "enabled"


def test_tenants_are_isolated_by_the_token(function_host: FunctionHost, idp: IdentityProvider) -> None:
    tenant_a, tenant_b = str(uuid.uuid4()), str(uuid.uuid4())
    a = Api(function_host.base_url, idp.user_token(tenant_a, str(uuid.uuid4()), ["SystemAdministrator"]))
    b = Api(function_host.base_url, idp.user_token(tenant_b, str(uuid.uuid4()), ["SystemAdministrator"]))
    ok(a.put("relationship-intelligence/prerequisites", {"salesInsightsPremium": True, "office365DataLocation": "FR"}))
    ok(a.post("relationship-intelligence/enable"))
    # B sees only B, whatever it puts in the URL or body: there is no tenant parameter to abuse.
    overview_b = ok(b.get("relationship-intelligence", params={"tenantId": tenant_a}))
    assert overview_b["tenantId"] == tenant_b
    assert overview_b["status"] == "notEnabled"
    assert ok(b.get("relationship-intelligence/audit"))["events"] == []
    assert b.put("relationship-intelligence/prerequisites", {"salesInsightsPremium": True,
                 "office365DataLocation": "FR", "tenantId": tenant_a}).status_code == 400
    assert ok(a.get("relationship-intelligence"))["status"] == "enabled"


def test_concurrent_conflicting_updates_lose_nothing(function_host: FunctionHost, idp: IdentityProvider,
                                                     container: Container) -> None:
    tenant = str(uuid.uuid4())
    api = Api(function_host.base_url, idp.user_token(tenant, str(uuid.uuid4()), ["SystemAdministrator"]))
    etag = api.put("relationship-intelligence/prerequisites",
                   {"salesInsightsPremium": True, "office365DataLocation": "FR"}).headers["ETag"]
    frequencies = ["daily", "weekly", "everyTwoWeeks", "monthly", "quarterly"] * 4

    def attempt(i: int) -> tuple[int, str | None, str]:
        client = Api(function_host.base_url, api.session.headers["Authorization"].split()[1])
        headers = {"If-Match": etag} if i % 2 else {}
        response = client.put("relationship-intelligence/features/relationship-analytics",
                              {"communicationFrequency": frequencies[i]}, headers=headers)
        return response.status_code, response.headers.get("ETag"), frequencies[i]

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(attempt, range(20)))
    assert {status for status, _, _ in results} <= {200, 409, 412}
    accepted = [r for r in results if r[0] == 200]
    assert accepted
    stored = TableSettingsRepository(container.tables).load(TenantId(tenant))
    final = ok(api.get("relationship-intelligence"))
    # The stored state is the one whose response carried the final ETag: the last accepted write.
    last = {freq for status, tag, freq in accepted if tag == stored.etag}
    # (several answers can carry it: a request that found its value already stored changes nothing)
    assert last == {final["features"]["relationshipAnalytics"]["communicationFrequency"]}
    events = ok(api.get("relationship-intelligence/audit", params={"pageSize": 100}))["events"]
    changes = [e for e in events if e["action"] == "setRelationshipAnalytics"]
    assert len(changes) <= len(accepted)  # every stored change has an accepted request; no phantom writes


BAD_INPUTS = [
    ("PUT", "relationship-intelligence/prerequisites", b"{not json", "application/json", 400),
    ("PUT", "relationship-intelligence/prerequisites", b'{"salesInsightsPremium": true}', "text/plain", 415),
    ("PUT", "relationship-intelligence/prerequisites", b'{"salesInsightsPremium": "yes", '
                                                       b'"office365DataLocation": "FR"}', "application/json", 400),
    ("PUT", "relationship-intelligence/prerequisites", b'{"salesInsightsPremium": true, '
                                                       b'"office365DataLocation": "XX"}', "application/json", 400),
    ("PUT", "relationship-intelligence/prerequisites",
     b'{"salesInsightsPremium": true, "office365DataLocation": "FR", "x": 1}', "application/json", 400),
    ("PUT", "relationship-intelligence/security-roles", b'{"securityRoleIds": []}', "application/json", 400),
    ("PUT", "relationship-intelligence/security-roles",
     b'{"securityRoleIds": ["' + SALESPERSON.encode() + b'", "' + SALESPERSON.upper().encode() + b'"]}',
     "application/json", 400),
    ("PUT", "relationship-intelligence/security-roles", b'{"securityRoleIds": ["no-such-role"]}',
     "application/json", 422),
    ("PUT", "relationship-intelligence/exchange-integration", b'{"enabled": 1}', "application/json", 400),
    ("PUT", "relationship-intelligence/features/relationship-analytics",
     b'{"activityInfluence": {"email": 51}}', "application/json", 400),
    ("PUT", "relationship-intelligence/features/relationship-analytics",
     b'{"grading": {"goodMin": 40, "fairMin": 60}}', "application/json", 400),
    ("PUT", "relationship-intelligence/features/relationship-analytics",
     b'{"communicationFrequency": "hourly"}', "application/json", 400),
    ("PUT", "relationship-intelligence/features/who-knows-whom",
     b'{"introductionEmailTemplate": {"subject": "Hi {boss}", "body": "x"}}', "application/json", 400),
    ("PUT", "relationship-intelligence/excluded-security-groups", b'{"groupIds": ["not-a-guid"]}',
     "application/json", 400),
    ("PUT", "relationship-intelligence/prerequisites", b'{"salesInsightsPremium": true, "office365DataLocation": "'
     + b"F" * 70_000 + b'"}', "application/json", 413),
    ("POST", "relationship-intelligence/enable", b'{"securityRoleIds": "all"}', "application/json", 400),
    ("GET", "relationship-intelligence/audit?pageSize=0", b"", None, 400),
    ("GET", "relationship-intelligence/audit?continuationToken=%%%", b"", None, 400),
]


@pytest.mark.parametrize(("method", "path", "body", "content_type", "status"), BAD_INPUTS,
                         ids=[f"{m} {p.split('/')[-1]} {s}" for m, p, _, _, s in BAD_INPUTS])
def test_bad_input_is_a_problem_and_changes_nothing(admin: Api, method: str, path: str, body: bytes,
                                                    content_type: str | None, status: int) -> None:
    ok(admin.put("relationship-intelligence/prerequisites",
                 {"salesInsightsPremium": True, "office365DataLocation": "FR"}))
    ok(admin.post("relationship-intelligence/enable"))
    before = ok(admin.get("relationship-intelligence"))
    audit_before = ok(admin.get("relationship-intelligence/audit"))
    headers = {"Content-Type": content_type} if content_type else {}
    response = admin.call(method, path, data=body, headers=headers)
    assert response.status_code == status, response.text
    problem = response.json()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    if status == 400 and body.startswith(b"{") and b"not json" not in body:
        assert problem["errors"], problem
    assert ok(admin.get("relationship-intelligence")) == before
    assert ok(admin.get("relationship-intelligence/audit")) == audit_before


def test_excluded_groups_are_deduplicated_and_bounded(admin: Api) -> None:
    group = str(uuid.uuid4())
    overview = ok(admin.put("relationship-intelligence/excluded-security-groups",
                            {"groupIds": [group, group.upper(), str(uuid.UUID(int=7))]}))
    assert overview["exchange"]["excludedSecurityGroupIds"] == [group, str(uuid.UUID(int=7))]
    too_many = admin.put("relationship-intelligence/excluded-security-groups",
                         {"groupIds": [str(uuid.uuid4()) for _ in range(501)]})
    assert too_many.status_code == 400
    assert too_many.json()["errors"][0]["field"] == "groupIds"
