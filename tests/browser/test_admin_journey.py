"""The admin journey of the original document, in a real browser (issue 14): Sales Insights settings →
Relationship insights → Overview → Enable → security roles → Save → the consent banner with the days left →
the Microsoft 365 admin's consent → back in the portal; then Options, French, the audit trail, sign-out."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN, Tab

pytestmark = pytest.mark.e2e


def overview_of(tab: Tab, tenant: str) -> dict[str, object]:
    response = tab.stack.admin_api(tenant).get(f"{tab.stack.api}/relationship-intelligence", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_the_admin_journey(tab: Tab, tenant: str) -> None:
    page = tab.page
    tab.sign_in(ADMIN, tenant)
    page.get_by_role("heading", name="Relationship insights: Overview").wait_for()
    assert page.locator("#status").inner_text() == "Not enabled"
    tab.step("overview not enabled")

    # Prerequisites: Premium Sales Insights and a data location in a supported geography.
    page.get_by_label("Premium Sales Insights features are turned on").check()
    page.get_by_label("Office 365 data location").select_option("FR")
    page.locator("#save-prerequisites").click()
    page.get_by_text("Prerequisites saved.").wait_for()
    assert page.locator("#geography").inner_text() == "Geography 1: Europe, Middle East, Africa"
    assert page.locator("#eligible").inner_text() == "yes"
    tab.step("prerequisites")

    page.get_by_role("button", name="Enable").click()
    page.get_by_text("Relationship intelligence is enabled.").wait_for()
    assert page.locator("#status").inner_text() == "Enabled"

    # Security roles whose members' Exchange data is used, then Save.
    roles = page.get_by_role("group", name="Roles whose members' Exchange data is used")
    roles.get_by_label("Salesperson", exact=True).check()
    roles.get_by_label("Sales Manager", exact=True).check()
    page.locator("#save-roles").click()
    page.get_by_text("Security roles saved.").wait_for()
    assert len(overview_of(tab, tenant)["exchange"]["securityRoleIds"]) == 2  # type: ignore[index]

    banner = page.locator("#banner")
    assert banner.get_by_role("heading", name="Consent pending").is_visible()
    assert "14 days left" in banner.inner_text()
    tab.step("consent pending 14 days left")

    # The consent button opens the identity provider's consent page; accepting brings the admin back.
    banner.get_by_role("button", name="Give consent").click()
    page.wait_for_url(re.compile(re.escape(f"{tab.stack.idp.base_url}/{tenant}/v2.0/adminconsent")))
    page.get_by_role("heading", name="Permissions requested").wait_for()
    tab.step("consent page of the identity provider")
    page.get_by_role("button", name="Accept").click()
    page.wait_for_url(re.compile(re.escape(tab.stack.portal.base_url) + r"/#/overview$"))
    page.get_by_text("Consent recorded: Exchange data can now feed relationship intelligence.").wait_for()
    assert page.locator("#banner").count() == 0
    assert page.locator("#consent-status").inner_text() == "granted"
    assert overview_of(tab, tenant)["exchange"]["consent"]["status"] == "granted"  # type: ignore[index]
    tab.step("back from consent banner gone")

    # Exchange off: who knows whom falls back to basic mode.
    page.get_by_role("switch", name="Use Exchange data (mail and meeting metadata)").uncheck()
    page.get_by_text("Exchange integration is off").wait_for()
    assert overview_of(tab, tenant)["exchange"]["integrationEnabled"] is False  # type: ignore[index]
    page.get_by_role("link", name="Options").click()
    page.get_by_role("heading", name="Options", exact=True).wait_for()
    assert "basic" in page.locator("#who-mode").inner_text()
    tab.step("options who knows whom basic mode")
    page.get_by_label("Communication frequency").select_option("monthly")
    page.get_by_label("Email (%)").fill("20")
    page.locator("#save-analytics").click()
    page.get_by_text("Analytics and health options saved.").wait_for()
    analytics = overview_of(tab, tenant)["features"]["relationshipAnalytics"]  # type: ignore[index]
    assert (analytics["communicationFrequency"], analytics["activityInfluence"]["email"]) == ("monthly", 20)

    # The same page in French, by the switch; the choice is kept.
    page.get_by_label("Language").select_option("fr")
    expect(page.locator("#who-mode")).to_contain_text("de base")
    page.get_by_role("link", name="Vue d'ensemble").click()
    page.get_by_role("heading", name="Informations relationnelles : vue d'ensemble").wait_for()
    assert page.locator("html").get_attribute("lang") == "fr"
    tab.step("overview in french")
    page.get_by_label("Langue").select_option("en")

    # The audit trail, newest first, paged.
    page.get_by_role("link", name="Audit trail").click()
    page.locator("#audit-table").wait_for()
    page.get_by_label("Events per page").select_option("5")
    first_page = page.locator("#audit-table tbody tr")
    expect(first_page).to_have_count(5)
    assert "Analytics options set" in first_page.first.inner_text()
    page.get_by_role("button", name="Older events").click()
    page.get_by_text("Page 2", exact=True).wait_for()
    assert page.locator("#audit-table tbody tr").count() >= 1
    assert "Prerequisites set" in page.locator("#audit-table").inner_text()
    tab.step("audit trail page 2")

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    assert requests.get(f"{tab.stack.portal.base_url}/config.json", timeout=5).status_code == 200
    tab.step("signed out")


def test_a_cancelled_sign_in_says_so_and_offers_to_try_again(tab: Tab) -> None:
    page = tab.page
    page.goto(f"{tab.stack.portal.base_url}/")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(tab.stack.idp.base_url)))
    tab.step("sign-in page of the identity provider")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url(re.compile(re.escape(tab.stack.portal.base_url)))
    expect(page.get_by_role("alert")).to_contain_text("Sign-in did not complete")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    tab.step("sign-in cancelled")
