"""Moving on before a page has loaded: the slow page's answer arrives later and must not replace the page the
user is on now (a re-render of the Overview, after a language switch, answered after the audit trail opened)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN, Tab

pytestmark = pytest.mark.e2e


def test_a_late_answer_of_the_page_left_behind_does_not_replace_the_current_page(tab: Tab, tenant: str) -> None:
    page = tab.page
    tab.sign_in(ADMIN, tenant)
    page.get_by_role("heading", name="Relationship insights: Overview").wait_for()

    held: list[Any] = []
    page.route(lambda url: url.endswith("/api/relationship-intelligence"),
               lambda route: held.append(route) if route.request.method == "GET" else route.continue_())
    page.get_by_label("Language").select_option("fr")  # the Overview renders again, its GET held
    page.wait_for_function("() => true")
    assert len(held) == 1
    page.get_by_role("link", name="Journal d'audit").click()
    page.get_by_role("heading", name="Journal d'audit").wait_for()

    with page.expect_response(lambda r: r.url.endswith("/api/relationship-intelligence")):
        held[0].continue_()
    page.wait_for_timeout(300)  # time for a stale render to happen, if it would
    expect(page.get_by_role("heading", name="Journal d'audit")).to_be_visible()
    expect(page.get_by_role("heading", name="Informations relationnelles : vue d'ensemble")).to_have_count(0)
