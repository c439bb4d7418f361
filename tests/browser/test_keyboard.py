"""Everything is reachable by keyboard: the skip link, the navigation, the forms and their buttons."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN, Tab

pytestmark = pytest.mark.e2e


def tab_to(tab: Tab, selector: str, limit: int = 60) -> None:
    """Presses Tab until `selector` has the focus (the page's own order, no clicking)."""
    page = tab.page
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab in {limit} presses")


def test_an_admin_enables_and_picks_roles_with_the_keyboard_only(tab: Tab, tenant: str) -> None:
    page = tab.page
    tab.sign_in(ADMIN, tenant)
    page.reload()
    page.get_by_role("heading", name="Relationship insights: Overview").wait_for()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    assert page.url.endswith("#/overview")  # the skip link moved the focus, not the route

    tab_to(tab, "#premium")
    page.keyboard.press("Space")
    tab_to(tab, "#location")
    page.keyboard.type("France")  # a closed select takes the typed label
    tab_to(tab, "#save-prerequisites")
    page.keyboard.press("Enter")
    page.get_by_text("Prerequisites saved.").wait_for()
    expect(page.locator("#save-prerequisites")).to_be_focused()  # focus stays where it was after the redraw

    tab_to(tab, "#enable", limit=80)  # above the prerequisites: Tab goes round the page to it
    page.keyboard.press("Enter")
    page.get_by_text("Relationship intelligence is enabled.").wait_for()
    tab_to(tab, 'input[name="securityRoleIds"][value]:not(:checked)')
    page.keyboard.press("Space")
    tab_to(tab, "#save-roles")
    page.keyboard.press("Enter")
    page.get_by_text("Security roles saved.").wait_for()
    tab_to(tab, "#give-consent", limit=80)  # the banner's button, after the navigation
    tab_to(tab, 'a[href="#/options"]', limit=80)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Options", exact=True).wait_for()
    expect(page.get_by_role("heading", name="Options", exact=True)).to_be_focused()  # a new page announces itself
    tab_to(tab, "#save-who", limit=80)
    tab.step("keyboard only")
