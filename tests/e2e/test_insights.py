"""Sellers' read API over a seeded tenant: KPIs and health, needs attention, who knows whom, the introduction
draft, and every admin switch visibly changing what sellers see (issue 6)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider
from devhost.seed import generate
from shared import bootstrap
from shared.domain.records import Source
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.services.timing import WRITE_SETTLE
from shared.storage.records_repository import TableRecords
from shared.tenancy import TenantId
from tests.e2e.conftest import Api, ok, run_timer

pytestmark = pytest.mark.e2e

ROLE = {r.name: r.id for r in STANDARD_SALES_ROLES}
NOW = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)



@pytest.fixture
def tenant(admin: Api, function_host: FunctionHost, idp: IdentityProvider, container: bootstrap.Container,
           tenant_id: str) -> dict[str, Api]:
    ok(admin.put("relationship-intelligence/prerequisites",
                 {"salesInsightsPremium": True, "office365DataLocation": "FR"}))
    ok(admin.post("relationship-intelligence/enable",
                  {"securityRoleIds": [ROLE["Salesperson"], ROLE["Sales Manager"]]}))
    container.tenant_settings().change(TenantId(tenant_id), "admin", "consentGranted",
                                       lambda s, now: s.record_consent_granted("admin", (), now))
    connector = Api(function_host.base_url, idp.app_token(tenant_id, "seed", ["RelationshipIntelligence.Sync"]))
    for kind, items in generate(accounts=6, sellers=4, seed=11, now=NOW).items():
        report = ok(connector.post(f"sync/{kind}", {"items": items}))
        assert report["rejectedByReason"].keys() <= {"mailboxOwnerNotInSelectedRole"}, report["rejectedByReason"]
    run_timer(function_host)
    seller = Api(function_host.base_url, idp.user_token(tenant_id, str(uuid.uuid4()), ["Salesperson"], name="Sam"))
    vp = Api(function_host.base_url, idp.user_token(tenant_id, str(uuid.uuid4()), ["VicePresidentOfSales"]))
    return {"admin": admin, "seller": seller, "vp": vp, "connector": connector}


def test_kpis_and_health_of_a_record(tenant: dict[str, Api]) -> None:
    view = ok(tenant["seller"].get("insights/account/account-0"))
    assert view["name"] == "Fabrikam"
    assert view["completeness"] == "complete"
    assert set(view["sources"]) == {"crm", "exchange"}
    kpis = view["kpis"]
    assert kpis["team"]["emailsSent"] > 0
    assert kpis["activities"] > 0
    assert len(kpis["mostContactedCustomer"]) <= 3
    health = view["health"]
    assert health["state"] in {"scored", "notEnoughInformation", "noClosedActivities"}
    if health["state"] == "scored":
        assert 0 <= health["score"] <= 100
        assert {f["name"] for f in health["factors"]} >= {"recency", "frequency", "reciprocity"}
    contacts = ok(tenant["seller"].get("insights/contact", params={"pageSize": 100}))["items"]
    scored = next(c for c in contacts if c["state"] == "scored")
    health = ok(tenant["seller"].get(f"insights/contact/{scored['id']}"))["health"]
    assert {f["name"] for f in health["factors"]} >= {"recency", "frequency", "reciprocity"}
    assert health["trendDetail"].startswith(("contact on", "known for")), health["trendDetail"]
    assert tenant["seller"].get("insights/account/nope").status_code == 404
    assert tenant["seller"].get("insights/widget/x").status_code == 404


def test_needs_attention_lists_poor_or_declining_worst_first(tenant: dict[str, Api]) -> None:
    everything = ok(tenant["seller"].get("insights/contact", params={"pageSize": 100}))["items"]
    flagged = ok(tenant["seller"].get("insights/contact", params={"needsAttention": "true", "pageSize": 100}))
    items = flagged["items"]
    assert all(i["grade"] == "poor" or i["trend"] == "declining" for i in items)
    assert [i["score"] for i in items] == sorted(i["score"] for i in items)
    expected = [i for i in everything if i["state"] == "scored" and (i["grade"] == "poor" or i["trend"] == "declining")]
    assert len(items) == len(expected)
    first = ok(tenant["seller"].get("insights/contact", params={"pageSize": 2}))
    assert len(first["items"]) == 2
    second = ok(tenant["seller"].get("insights/contact", params={"pageSize": 2,
                                                                 "continuationToken": first["continuationToken"]}))
    assert second["items"][0]["id"] != first["items"][0]["id"]


def _known_contact(seller: Api) -> str:
    """A contact somebody has talked to (the seed picks contacts at random)."""
    contacts = ok(seller.get("insights/contact", params={"pageSize": 100}))["items"]
    for contact in contacts:
        if ok(seller.get(f"who-knows-whom/contact/{contact['id']}"))["introducers"]:
            return str(contact["id"])
    raise AssertionError("the seed gave no contact an introducer")


def test_who_knows_whom_and_the_introduction_draft(tenant: dict[str, Api]) -> None:
    contact = _known_contact(tenant["seller"])
    view = ok(tenant["seller"].get(f"who-knows-whom/contact/{contact}"))
    assert view["mode"] == "enhanced"
    assert 1 <= len(view["introducers"]) <= 5
    strengths = [i["strength"] for i in view["introducers"]]
    assert strengths == sorted(strengths, reverse=True)
    introducer = view["introducers"][0]
    answer = ok(tenant["seller"].post(f"who-knows-whom/contact/{contact}/introductions",
                                      {"introducerId": introducer["userId"]}))
    assert answer["outcome"] == "draft"  # the tenant's default: every colleague is listed, and drafted at once
    draft = answer["draft"]
    assert draft["to"] == introducer["email"]
    assert view["name"] in draft["subject"]
    assert "Sam" in draft["body"]
    refused = tenant["seller"].post(f"who-knows-whom/contact/{contact}/introductions", {"introducerId": "nobody"})
    assert refused.status_code == 422
    assert tenant["vp"].get(f"who-knows-whom/contact/{contact}").status_code == 403  # not a WKW role by default
    lead = ok(tenant["seller"].get("who-knows-whom/lead/lead-0"))
    assert lead["mode"] == "enhanced"
    company = ok(tenant["seller"].get("who-knows-whom", params={"domain": "Fabrikam.com"}))
    assert (company["entityType"], company["id"], company["name"]) == ("account", "account-0", "Fabrikam")
    assert 1 <= len(company["introducers"]) <= 5
    assert tenant["seller"].get("who-knows-whom", params={"domain": "nowhere.test"}).status_code == 404
    assert tenant["seller"].get("who-knows-whom", params={"domain": "not a domain"}).status_code == 400
    assert tenant["vp"].get("insights/account/account-0").status_code == 200


def test_exchange_off_takes_effect_at_once_and_the_purge_follows(tenant: dict[str, Api],
                                                                 function_host: FunctionHost) -> None:
    ok(tenant["admin"].put("relationship-intelligence/exchange-integration", {"enabled": False}))
    view = ok(tenant["seller"].get("insights/account/account-0"))
    assert view["completeness"] == "partial"
    assert view["sources"] == ["crm"]
    assert ok(tenant["seller"].get("who-knows-whom/contact/contact-0-0"))["mode"] == "basic"
    run_timer(function_host)  # purge of Exchange-derived data, then recompute
    after = ok(tenant["seller"].get("insights/account/account-0"))
    assert after["sources"] == ["crm"]
    assert after["kpis"] == view["kpis"]  # the CRM variant was already what sellers saw


def test_a_mailbox_owner_leaving_the_selected_roles_stops_counting_at_once(tenant: dict[str, Api],
                                                                           function_host: FunctionHost) -> None:
    before = ok(tenant["seller"].get("insights/account/account-1"))
    ok(tenant["admin"].put("relationship-intelligence/security-roles",
                           {"securityRoleIds": [ROLE["Vice President of Sales"]]}))
    now_view = ok(tenant["seller"].get("insights/account/account-1"))
    assert now_view["sources"] == ["crm"]  # no recompute needed: the gates changed
    run_timer(function_host)
    recomputed = ok(tenant["seller"].get("insights/account/account-1"))
    assert recomputed["kpis"]["activities"] <= before["kpis"]["activities"]


def test_features_that_are_off_answer_409(tenant: dict[str, Api]) -> None:
    ok(tenant["admin"].put("relationship-intelligence/features/who-knows-whom", {"enabled": False}))
    refused = tenant["seller"].get("who-knows-whom/contact/contact-0-0")
    assert refused.status_code == 409
    assert refused.json()["feature"] == "whoKnowsWhom"
    ok(tenant["admin"].put("relationship-intelligence/features/relationship-analytics", {"healthDisplay": False}))
    view = ok(tenant["seller"].get("insights/account/account-0"))
    assert view["health"] is None
    assert view["healthHidden"] is True
    ok(tenant["admin"].put("relationship-intelligence/features/relationship-analytics", {"enabled": False}))
    off = tenant["seller"].get("insights/account/account-0")
    assert off.status_code == 409
    assert off.json()["feature"] == "relationshipAnalytics"


def test_a_contact_who_opts_out_leaves_the_analytics(tenant: dict[str, Api], function_host: FunctionHost) -> None:
    before = ok(tenant["seller"].get("insights/account/account-2"))["kpis"]["activities"]
    contacts = [c for c in generate(accounts=6, sellers=4, seed=11, now=NOW)["contacts"]
                if c["accountId"] == "account-2"]
    opted = {**contacts[0], "version": 2, "optedOut": True}
    ok(tenant["connector"].post("sync/contacts", {"items": [opted]}))
    run_timer(function_host)
    after = ok(tenant["seller"].get("insights/account/account-2"))["kpis"]
    assert after["activities"] <= before
    assert opted["email"] not in [c["address"] for c in after["mostContactedCustomer"]]
    assert tenant["seller"].get(f"insights/contact/{opted['id']}").status_code == 404


def test_an_opt_out_removes_the_person_s_stored_activities(tenant: dict[str, Api], function_host: FunctionHost,
                                                          container: bootstrap.Container, tenant_id: str) -> None:
    data = generate(accounts=6, sellers=4, seed=11, now=NOW)
    records = TableRecords(container.tables)
    seller = data["users"][1]
    contact = next(c for c in data["contacts"]
                   if any(c["email"] in a.parties for a in records.iter_records(TenantId(tenant_id), "activities")))
    total = len(list(records.iter_records(TenantId(tenant_id), "activities")))
    ok(tenant["connector"].post("sync/contacts", {"items": [{**contact, "version": 2, "optedOut": True}]}))
    ok(tenant["connector"].post("sync/users", {"items": [{**seller, "version": 2, "optedOut": True}]}))
    run_timer(function_host)
    assert len(list(records.iter_records(TenantId(tenant_id), "activities"))) == total  # not before the writes settle
    run_timer(function_host, container, at=container.clock.now() + WRITE_SETTLE)
    left = list(records.iter_records(TenantId(tenant_id), "activities"))
    assert 0 < len(left) < total
    assert not [a for a in left if contact["email"] in a.parties or seller["email"] in a.parties
                or a.mailbox_owner_id == seller["id"]]


def test_auto_disable_turns_who_knows_whom_off_and_keeps_crm_analytics(
        tenant: dict[str, Api], function_host: FunctionHost, container: bootstrap.Container, tenant_id: str) -> None:
    ok(tenant["admin"].put("relationship-intelligence/exchange-integration", {"enabled": False}))
    ok(tenant["admin"].put("relationship-intelligence/exchange-integration", {"enabled": True}))  # new window
    deadline = container.tenant_settings().current(TenantId(tenant_id)).settings.consent_deadline
    assert deadline is None  # consent is still on record: no window, nothing to disable
    container.tenant_settings().change(TenantId(tenant_id), "admin", "withdraw",
                                       lambda s, now: s.record_consent_withdrawn(now))
    ok(tenant["admin"].put("relationship-intelligence/exchange-integration", {"enabled": True}))
    settings = container.tenant_settings().current(TenantId(tenant_id)).settings
    assert settings.consent_deadline is not None
    run_timer(function_host, container, at=settings.consent_deadline)  # auto-disable
    run_timer(function_host, container, at=settings.consent_deadline + WRITE_SETTLE)  # purge
    assert tenant["seller"].get("who-knows-whom/lead/lead-0").status_code == 409
    view = ok(tenant["seller"].get("insights/account/account-0"))
    assert view["sources"] == ["crm"]
    assert view["kpis"]["activities"] > 0
    records = TableRecords(container.tables)
    assert list(records.iter_records(TenantId(tenant_id), "activities", Source.EXCHANGE)) == []


def test_an_admin_asks_for_a_recompute_and_follows_it(tenant: dict[str, Api], function_host: FunctionHost) -> None:
    asked = tenant["admin"].post("relationship-intelligence/insights/recompute")
    assert asked.status_code == 202
    assert asked.headers["Location"] == "/api/relationship-intelligence/insights/recompute"
    assert asked.json()["state"] in {"queued", "running", "done"}
    assert function_host.drain()
    status = ok(tenant["admin"].get("relationship-intelligence/insights/recompute"))
    assert status["state"] == "done"
    assert status["finishedAt"] >= asked.json()["requestedAt"]
    assert status["records"] == 6 * 3 + len(generate(accounts=6, sellers=4, seed=11, now=NOW)["contacts"])
    assert status["activities"] > 0
    assert tenant["seller"].post("relationship-intelligence/insights/recompute").status_code == 403


def test_a_data_subject_export_lists_what_is_stored_about_a_person(tenant: dict[str, Api]) -> None:
    contact = generate(accounts=6, sellers=4, seed=11, now=NOW)["contacts"][2]
    export = ok(tenant["admin"].get(f"data-subjects/contact/{contact['id']}"))
    assert export["record"]["email"] == contact["email"]
    assert all(contact["email"] in [a.get("sender"), *a["to"], *a["cc"], *a["optionalAttendees"]]
               for a in export["activities"])
    assert export["insights"] is None or export["insights"]["id"] == contact["id"]
    assert tenant["seller"].get(f"data-subjects/contact/{contact['id']}").status_code == 403
    assert tenant["admin"].get("data-subjects/contact/nobody").status_code == 404
