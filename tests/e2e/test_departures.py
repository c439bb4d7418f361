"""Relationships at risk when a colleague leaves (issue 16), over HTTP: a connector deactivates a seller; the
accounts and contacts only they knew are listed for managers, worst first, with the next best introducers and
the revenue of the open opportunities concerned; the ones a colleague also knows are not; the record's insights
say why and "needs attention" includes them; reactivating the seller clears it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider
from shared import bootstrap
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.tenancy import TenantId
from tests.e2e.conftest import Api, ok, run_timer

pytestmark = pytest.mark.e2e

SELLERS = next(r.id for r in STANDARD_SALES_ROLES if r.name == "Salesperson")
NOW = datetime.now(UTC).replace(microsecond=0)


def _user(uid: str, name: str, version: int = 1, **extra: Any) -> dict[str, Any]:
    return {"id": uid, "version": version, "email": f"{uid}@contoso.com", "displayName": name,
            "securityRoleIds": [SELLERS], **extra}


def _emails(sender: str, to: str, count: int, first: int) -> list[dict[str, Any]]:
    return [{"id": f"act-{first + n}", "version": 1, "source": "crm", "kind": "email", "sender": sender,
             "to": [to], "start": (NOW - timedelta(days=3 + 5 * n)).isoformat().replace("+00:00", "Z"),
             "completed": True} for n in range(count)]


def organisation_with_a_departure_to_come() -> dict[str, list[dict[str, Any]]]:
    """Ann alone knows Northwind (Cy barely), Ann and Bob both know Fabrikam; Northwind has an open opportunity."""
    return {
        "users": [_user("ann", "Ann Adams"), _user("bob", "Bob Brown"), _user("cy", "Cy Chen")],
        "accounts": [{"id": "only-ann", "version": 1, "name": "Northwind", "primaryContactId": "nora",
                      "emailDomains": ["northwind.example"]},
                     {"id": "shared", "version": 1, "name": "Fabrikam", "primaryContactId": "fay",
                      "emailDomains": ["fabrikam.example"]}],
        "contacts": [{"id": "nora", "version": 1, "email": "nora@northwind.example", "fullName": "Nora N",
                      "accountId": "only-ann"},
                     {"id": "fay", "version": 1, "email": "fay@fabrikam.example", "fullName": "Fay F",
                      "accountId": "shared"}],
        "opportunities": [
            {"id": "big", "version": 1, "name": "Northwind renewal", "ownerId": "ann", "accountId": "only-ann",
             "customerContactId": "nora", "state": "open", "estimatedRevenue": 250000,
             "createdOn": (NOW - timedelta(days=30)).isoformat()},
            {"id": "won", "version": 1, "name": "Northwind pilot", "ownerId": "ann", "accountId": "only-ann",
             "state": "won", "estimatedRevenue": 9000, "createdOn": (NOW - timedelta(days=90)).isoformat()}],
        "activities": [*_emails("ann@contoso.com", "nora@northwind.example", 8, 0),
                       *_emails("cy@contoso.com", "nora@northwind.example", 1, 100),  # a weak tie: below 40
                       *_emails("ann@contoso.com", "ned@northwind.example", 3, 400),  # no contact: the domain's
                       *_emails("ann@contoso.com", "fay@fabrikam.example", 8, 200),
                       *_emails("bob@contoso.com", "fay@fabrikam.example", 4, 300)],  # a colleague knows Fay too
    }


def ann_leaves(version: int = 2) -> dict[str, Any]:
    left = (NOW - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    return _user("ann", "Ann Adams", version, active=False, deactivatedOn=left)


@pytest.fixture
def tenant(admin: Api, function_host: FunctionHost, idp: IdentityProvider, container: bootstrap.Container,
           tenant_id: str) -> dict[str, Api]:
    ok(admin.put("relationship-intelligence/prerequisites",
                 {"salesInsightsPremium": True, "office365DataLocation": "FR"}))
    ok(admin.post("relationship-intelligence/enable", {"securityRoleIds": [SELLERS]}))
    container.tenant_settings().change(TenantId(tenant_id), "admin", "consentGranted",
                                       lambda s, now: s.record_consent_granted("admin", (), now))
    connector = Api(function_host.base_url, idp.app_token(tenant_id, "crm", ["RelationshipIntelligence.Sync"]))
    data = organisation_with_a_departure_to_come()
    for kind, items in data.items():
        report = ok(connector.post(f"sync/{kind}", {"items": items}))
        assert report["rejected"] == [], report
    run_timer(function_host)
    manager = Api(function_host.base_url, idp.user_token(tenant_id, str(uuid.uuid4()), ["SalesManager"]))
    seller = Api(function_host.base_url, idp.user_token(tenant_id, str(uuid.uuid4()), ["Salesperson"]))
    return {"manager": manager, "seller": seller, "connector": connector}


def test_a_departure_lists_what_only_the_colleague_knew_and_reactivating_clears_it(
        tenant: dict[str, Api], function_host: FunctionHost) -> None:
    manager, seller, connector = tenant["manager"], tenant["seller"], tenant["connector"]
    assert ok(manager.get("relationships-at-risk"))["items"] == []

    left = ann_leaves()
    ok(connector.post("sync/users", {"items": [left]}))
    run_timer(function_host)

    items = ok(manager.get("relationships-at-risk"))["items"]
    assert [(i["entityType"], i["id"]) for i in items] == [("account", "only-ann"), ("contact", "nora")]
    account = items[0]
    assert account["departed"]["userId"] == "ann"
    assert account["departed"]["leftOn"].startswith(left["deactivatedOn"][:10])
    assert account["revenueAtStake"] == 250000  # the open opportunity only; the won one is not at stake
    assert [o["id"] for o in account["openOpportunities"]] == ["big"]
    assert [i["userId"] for i in account["nextBest"]] == ["cy"]
    assert account["nextBest"][0]["strength"] < 40
    assert "Ann Adams" in account["reason"]
    # Managers page through them worst first; a seller may not list them.
    first = ok(manager.get("relationships-at-risk", params={"pageSize": 1}))
    assert [i["id"] for i in first["items"]] == ["only-ann"]
    second = ok(manager.get("relationships-at-risk", params={"pageSize": 1,
                                                              "continuationToken": first["continuationToken"]}))
    assert [i["id"] for i in second["items"]] == ["nora"]
    assert seller.get("relationships-at-risk").status_code == 403
    assert manager.get("relationships-at-risk", params={"continuationToken": "bogus"}).status_code == 400

    # The record says why, and needs attention lists it though its health alone would not.
    insight = ok(seller.get("insights/account/only-ann"))
    assert insight["atRisk"]["departed"]["userId"] == "ann"
    assert "left on" in insight["atRisk"]["reason"]
    assert ok(seller.get("insights/account/shared"))["atRisk"] is None
    attention = ok(seller.get("insights/account", params={"needsAttention": "true"}))["items"]
    assert "only-ann" in [i["id"] for i in attention]

    # Nora opts out: she leaves the list at the next read, before any computation, and her emails leave the
    # account's counts (SPEC 4.4: they count nowhere); Ann's emails with Ned, also of Northwind, keep it at risk.
    emails = ok(seller.get("insights/account/only-ann"))["kpis"]["team"]["emailsSent"]
    nora = next(c for c in organisation_with_a_departure_to_come()["contacts"] if c["id"] == "nora")
    ok(connector.post("sync/contacts", {"items": [{**nora, "version": 2, "optedOut": True}]}))
    assert [i["id"] for i in ok(manager.get("relationships-at-risk"))["items"]] == ["only-ann"]
    assert ok(seller.get("insights/account/only-ann"))["kpis"]["team"]["emailsSent"] == emails - 9

    ok(connector.post("sync/users", {"items": [_user("ann", "Ann Adams", 3)]}))
    run_timer(function_host)
    assert ok(manager.get("relationships-at-risk"))["items"] == []
    assert ok(seller.get("insights/account/only-ann"))["atRisk"] is None
