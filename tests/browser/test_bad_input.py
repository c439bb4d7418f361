"""Bad input through the forms: the API's problem document appears beside the field it names, and nothing
changes (same settings, no audit event). A stale page (412) says what changed elsewhere and reloads."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN, Stack, Tab

pytestmark = pytest.mark.e2e

BASE = "relationship-intelligence"


def enabled_tenant(stack: Stack, tenant: str) -> requests.Session:
    admin = stack.admin_api(tenant)
    assert admin.put(f"{stack.api}/{BASE}/prerequisites", timeout=10,
                     json={"salesInsightsPremium": True, "office365DataLocation": "FR"}).status_code == 200
    assert admin.post(f"{stack.api}/{BASE}/enable", json={}, timeout=10).status_code == 200
    return admin


def state(stack: Stack, admin: requests.Session) -> tuple[dict[str, Any], int]:
    overview = admin.get(f"{stack.api}/{BASE}", timeout=10).json()
    audit = admin.get(f"{stack.api}/{BASE}/audit", params={"pageSize": 100}, timeout=10).json()
    overview.pop("banner")  # its days left follow the clock
    return overview, len(audit["events"])


def test_bad_options_show_the_apis_problem_beside_the_field_and_change_nothing(tab: Tab, tenant: str) -> None:
    admin = enabled_tenant(tab.stack, tenant)
    before = state(tab.stack, admin)
    page = tab.page
    tab.expect_api_errors(400)
    tab.sign_in(ADMIN, tenant)
    page.get_by_role("link", name="Options").click()
    form = page.locator("#analytics-form")
    form.wait_for()

    # Influence +60 %: the API's limit is ±50 (the form leaves validation to the API, its single source).
    page.get_by_label("Email (%)").fill("60")
    page.locator("#save-analytics").click()
    email = page.get_by_label("Email (%)")
    expect(email).to_have_attribute("aria-invalid", "true")
    error = form.locator('[data-field="activityInfluence/email"] .field-error')
    expect(error).to_contain_text("less than or equal to 50")
    assert error.get_attribute("id") in (email.get_attribute("aria-describedby") or "")
    assert state(tab.stack, admin) == before
    tab.step("influence plus 60 refused")

    # Inverted grade bands: Good's minimum under Fair's.
    email.fill("10")
    page.get_by_label("Minimum of Good").fill("30")
    page.get_by_label("Minimum of Fair").fill("50")
    page.locator("#save-analytics").click()
    grading = form.locator('fieldset[data-field="grading"]')
    expect(grading).to_have_attribute("aria-invalid", "true")
    expect(grading.locator(".field-error")).to_contain_text("goodMin must be greater than fairMin")
    expect(form.locator('[data-field="activityInfluence/email"] .field-error')).to_have_count(0)
    assert state(tab.stack, admin) == before
    tab.step("inverted grade bands refused")

    # A template placeholder the API does not know.
    page.get_by_label("Subject").fill("Meet {customer}")
    page.locator("#save-who").click()
    subject_error = page.locator('#who-form [data-field="introductionEmailTemplate/subject"] .field-error')
    expect(subject_error).to_contain_text("unknown placeholders")
    assert state(tab.stack, admin) == before
    tab.step("unknown placeholder refused")


def test_an_unknown_role_is_refused_beside_the_role_picker(tab: Tab, tenant: str) -> None:
    admin = enabled_tenant(tab.stack, tenant)
    before = state(tab.stack, admin)
    page = tab.page
    tab.expect_api_errors(400, 422)
    tab.sign_in(ADMIN, tenant)
    roles = page.locator("#roles-form")
    roles.wait_for()
    # A role that left the catalogue after the page was drawn.
    salesperson = roles.get_by_label("Salesperson", exact=True)
    salesperson.evaluate("box => { box.value = 'role-deleted-meanwhile'; }")
    salesperson.check()
    page.locator("#save-roles").click()
    picker = roles.locator('fieldset[data-field="securityRoleIds"]')
    expect(picker).to_have_attribute("aria-invalid", "true")
    expect(picker.locator(".field-error")).to_contain_text("not in the tenant's security-role catalogue")
    assert state(tab.stack, admin) == before
    tab.step("unknown role refused")

    # No role at all: the API says how to use nobody's data.
    salesperson.uncheck()
    page.locator("#save-roles").click()
    expect(picker.locator(".field-error")).to_contain_text("at least 1 item")
    assert state(tab.stack, admin) == before


def test_a_stale_page_says_what_changed_and_reloads(tab: Tab, tenant: str) -> None:
    admin = enabled_tenant(tab.stack, tenant)
    page = tab.page
    tab.expect_api_errors(412, 409)
    tab.sign_in(ADMIN, tenant)
    page.get_by_role("link", name="Options").click()
    page.locator("#analytics-form").wait_for()
    # Another admin turns health display off meanwhile.
    changed = admin.put(f"{tab.stack.api}/{BASE}/features/relationship-analytics", json={"healthDisplay": False},
                        timeout=10)
    assert changed.status_code == 200
    page.get_by_label("Communication frequency").select_option("daily")
    page.locator("#save-analytics").click()
    warning = page.locator(".notice.warning")
    expect(warning).to_contain_text("changed elsewhere")
    expect(warning).to_contain_text("Health display: yes → no")
    expect(page.get_by_role("switch", name="Show relationship health scores")).not_to_be_checked()
    expect(page.get_by_label("Communication frequency")).to_have_value("weekly")  # reloaded, not saved
    assert admin.get(f"{tab.stack.api}/{BASE}", timeout=10).json()["features"]["relationshipAnalytics"][
        "communicationFrequency"] == "weekly"
    tab.step("stale page reloaded")

    # A rule of the product (409): enabling while Premium is being turned off is refused in words.
    page.get_by_role("link", name="Overview").click()
    page.get_by_label("Premium Sales Insights features are turned on").uncheck()
    page.locator("#save-prerequisites").click()
    expect(page.locator(".notice.warning")).to_contain_text("disable it before turning Premium Sales Insights off")
    expect(page.get_by_label("Premium Sales Insights features are turned on")).to_be_checked()
    tab.step("rule conflict explained")


def test_excluded_groups_refuse_what_is_no_group_id(tab: Tab, tenant: str) -> None:
    admin = enabled_tenant(tab.stack, tenant)
    before = state(tab.stack, admin)
    page = tab.page
    tab.expect_api_errors(400)
    tab.sign_in(ADMIN, tenant)
    page.get_by_role("link", name="Excluded groups").click()
    area = page.get_by_label("Security group ids, one per line")
    area.fill("5e1f6a8c-3b7d-4c2e-9f10-a1b2c3d4e5f6\nnot-a-group")
    page.locator("#save-groups").click()
    expect(area).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[data-field="groupIds"] .field-error')).to_contain_text("should match pattern")
    assert state(tab.stack, admin) == before
    tab.step("bad group id refused")
    area.fill("5E1F6A8C-3B7D-4C2E-9F10-A1B2C3D4E5F6")
    page.locator("#save-groups").click()
    page.get_by_text("Excluded security groups saved.").wait_for()
    expect(area).to_have_value("5e1f6a8c-3b7d-4c2e-9f10-a1b2c3d4e5f6")


def test_the_crm_environment_url_is_refused_beside_its_field_then_saved_and_its_sync_shown(tab: Tab,
                                                                                          tenant: str) -> None:
    admin = enabled_tenant(tab.stack, tenant)
    before = state(tab.stack, admin)
    page = tab.page
    tab.expect_api_errors(400)
    tab.sign_in(ADMIN, tenant)
    url = page.get_by_label("Dataverse environment URL")
    url.fill("https://evil.example/org")
    page.locator("#save-crm").click()
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(page.locator('#crm-form [data-field="environmentUrl"] .field-error')).not_to_be_empty()
    assert state(tab.stack, admin) == before
    tab.step("a URL outside Dataverse refused")
    url.fill("https://contoso.crm4.dynamics.com")
    page.locator("#save-crm").click()
    page.get_by_text("Environment URL saved").wait_for()
    expect(page.get_by_label("Dataverse environment URL")).to_have_value("https://contoso.crm4.dynamics.com")
    status = page.locator("#sync-status")
    expect(status.get_by_role("row", name="CRM (Dataverse)")).to_contain_text("waiting for the next round")
    expect(status.get_by_role("row", name="Exchange")).to_contain_text("0 of 0 mailboxes read")
    overview, _ = state(tab.stack, admin)
    assert overview["crmEnvironmentUrl"] == "https://contoso.crm4.dynamics.com"
    tab.step("environment URL saved, sources shown")
