"""The admin journey of the original document, in a real browser (issue 14)."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import ADMIN, Tab

pytestmark = pytest.mark.e2e


def test_the_admin_journey(tab: Tab, tenant: str) -> None:
    page = tab.page
    tab.sign_in(ADMIN, tenant)
    tab.step("overview not enabled")
    status = page.locator("#status")
    assert status.inner_text() == "Not enabled"
