"""Sellers in a real browser: records needing attention first, then search; a seeded contact's health card,
KPI widgets and who knows whom with "Get introduced"; an admin page refused in words."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest
import requests
from playwright.sync_api import expect

from devhost.idp import SAMPLE_USERS
from devhost.seed import generate
from shared.domain.security_roles import STANDARD_SALES_ROLES
from tests.browser.conftest import SELLER, Stack, Tab, consent_directly
from tests.e2e.test_departures import ann_leaves, organisation_with_a_departure_to_come

pytestmark = pytest.mark.e2e

ROLE = {r.name: r.id for r in STANDARD_SALES_ROLES}
MANAGER = SAMPLE_USERS[2]  # Morgan Manager: a Sales Manager


def seeded_tenant(stack: Stack, tenant: str) -> dict[str, str]:
    """An enabled, consented tenant loaded through the real sync API; returns a contact with introducers."""
    admin = stack.admin_api(tenant)
    base = f"{stack.api}/relationship-intelligence"
    assert admin.put(f"{base}/prerequisites", json={"salesInsightsPremium": True, "office365DataLocation": "FR"},
                     timeout=10).status_code == 200
    assert admin.post(f"{base}/enable", json={"securityRoleIds": [ROLE["Salesperson"], ROLE["Sales Manager"]]},
                      timeout=10).status_code == 200
    consent_directly(stack, tenant)
    connector = stack.session(stack.idp.app_token(tenant, "seed", ["RelationshipIntelligence.Sync"]))
    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for kind, items in generate(accounts=4, sellers=4, seed=11, now=now).items():
        response = connector.post(f"{stack.api}/sync/{kind}", json={"items": items}, timeout=120)
        assert response.status_code == 200, response.text
    stack.run_timer()
    seller = stack.session(stack.idp.user_token(tenant, SELLER.object_id, SELLER.roles, name=SELLER.name))
    contacts = seller.get(f"{stack.api}/insights/contact", params={"pageSize": 100}, timeout=10).json()["items"]
    for contact in contacts:
        if contact["state"] != "scored":
            continue
        who = seller.get(f"{stack.api}/who-knows-whom/contact/{contact['id']}", timeout=10).json()
        if who["introducers"]:
            return {"id": contact["id"], "name": contact["name"], "introducer": who["introducers"][0]["name"]}
    raise AssertionError("the seed gave no scored contact an introducer")


def test_a_seller_sees_a_contacts_health_and_who_knows_whom(tab: Tab, tenant: str) -> None:
    contact = seeded_tenant(tab.stack, tenant)
    page = tab.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=tab.stack.portal.base_url)
    tab.sign_in(SELLER, tenant)
    page.get_by_role("heading", name="My customers").wait_for()
    assert page.get_by_role("link", name="Overview").count() == 0  # no admin page in a seller's navigation
    page.get_by_role("heading", name="Needing attention").wait_for()
    tab.step("records needing attention first")

    search = page.get_by_label("Search by name")
    search.fill(contact["name"])
    page.locator("#all-records, #attention").get_by_role("link", name=contact["name"]).first.click()
    page.get_by_role("heading", name=contact["name"]).wait_for()
    assert unquote(page.url).endswith(f"#/record/contact/{contact['id']}")

    health = page.get_by_role("region", name="Relationship health")
    expect(health.locator(".score")).to_have_text(re.compile(r"^Score\d{1,3}$"))
    expect(health.locator("#trend")).to_contain_text(re.compile("Improving|Steady|Declining|not enough information"))
    expect(health.locator("#factors")).to_contain_text("Recency")
    expect(health.locator("#factors")).to_contain_text("Reciprocity")
    expect(health.locator("#drivers li").first).to_be_visible()
    expect(page.locator("#kpi-summary")).to_contain_text("activities:")
    expect(page.locator("#chart-summary")).to_contain_text(re.compile("activities in 60 days|No activity"))
    expect(page.get_by_role("region", name="Response time")).to_be_visible()

    who = page.get_by_role("region", name="Who knows whom")
    expect(who).to_contain_text("enhanced")
    introducers = who.locator("#introducers > li")
    assert 1 <= introducers.count() <= 5
    tab.step("contact health card and who knows whom")

    who.get_by_role("button", name=f"Get introduced by {contact['introducer']}").click()
    draft = page.locator("#draft")
    expect(draft.get_by_role("heading", name="Your introduction request")).to_be_focused()
    expect(draft.locator("#draft-subject")).to_contain_text(contact["name"])
    expect(draft.locator("#draft-body")).to_contain_text(SELLER.name)
    assert (draft.locator("#mail-draft").get_attribute("href") or "").startswith("mailto:")
    draft.get_by_role("button", name="Copy").click()
    expect(draft.get_by_text("Copied.")).to_be_visible()
    assert contact["name"] in page.evaluate("navigator.clipboard.readText()")
    tab.step("get introduced draft")


def test_a_seller_opening_an_admin_page_sees_the_refusal_in_words(tab: Tab, tenant: str) -> None:
    page = tab.page
    tab.expect_api_errors(409)  # the tenant has not enabled relationship intelligence
    tab.sign_in(SELLER, tenant)
    page.get_by_role("heading", name="My customers").wait_for()
    expect(page.get_by_text("Your administrator has not turned this on.")).to_be_visible()
    page.goto(f"{tab.stack.portal.base_url}/#/overview")
    page.get_by_role("heading", name="You cannot open this page").wait_for()
    refusal = page.get_by_role("alert")
    expect(refusal).to_contain_text("this page needs the System Administrator or System Customizer role")
    expect(refusal).to_contain_text("Your roles: Salesperson.")
    tab.step("admin page refused")
    # and the API agrees: the same call with the seller's token is a 403 problem
    token = tab.stack.idp.user_token(tenant, SELLER.object_id, SELLER.roles)
    refused = requests.get(f"{tab.stack.api}/relationship-intelligence", headers={"Authorization": f"Bearer {token}"},
                           timeout=10)
    assert refused.status_code == 403
    page.get_by_role("link", name="Go to the pages you can use").click()
    page.get_by_role("heading", name="My customers").wait_for()


def test_a_manager_sees_the_relationships_a_departure_put_at_risk_and_a_seller_sees_why(tab: Tab,
                                                                                          tenant: str) -> None:
    stack = tab.stack
    admin = stack.admin_api(tenant)
    base = f"{stack.api}/relationship-intelligence"
    assert admin.put(f"{base}/prerequisites", json={"salesInsightsPremium": True, "office365DataLocation": "FR"},
                     timeout=10).status_code == 200
    assert admin.post(f"{base}/enable", json={}, timeout=10).status_code == 200
    connector = stack.session(stack.idp.app_token(tenant, "crm", ["RelationshipIntelligence.Sync"]))
    for kind, items in [*organisation_with_a_departure_to_come().items(), ("users", [ann_leaves()])]:
        response = connector.post(f"{stack.api}/sync/{kind}", json={"items": items}, timeout=60)
        assert response.status_code == 200, response.text
    stack.run_timer()
    page = tab.page
    tab.sign_in(MANAGER, tenant)
    page.get_by_role("link", name="Relationships at risk").click()
    items = page.locator("#at-risk-list li")
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("Northwind")
    expect(items.first).to_contain_text("Ann Adams left")
    expect(items.first).to_contain_text("250,000 at stake")
    expect(items.first).to_contain_text("Cy Chen")
    tab.step("relationships at risk, worst first")
    items.first.get_by_role("link", name="Northwind").click()
    notice = page.locator("#at-risk")
    expect(notice).to_contain_text("its strongest tie, Ann Adams, left on")
    expect(notice).to_contain_text("no remaining colleague's tie reaches 40")
    tab.step("the record says why")
