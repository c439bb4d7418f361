"""The 14-day rule seen as the admin sees it: enable, let 14 days pass, the scheduler runs the timer through the
host's admin endpoint, the queue triggers do the work, and the Overview shows the auto-disable with its banner."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import requests

from devhost.functionhost import FunctionHost
from shared import bootstrap
from shared.clock import FixedClock
from shared.services.timing import WRITE_SETTLE
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e


def test_the_timer_disables_who_knows_whom_and_exchange_after_14_days(
        admin: Api, function_host: FunctionHost, container: bootstrap.Container) -> None:
    clock = FixedClock(container.clock.now())
    bootstrap.install(dataclasses.replace(container, clock=clock))
    try:
        assert admin.put("relationship-intelligence/prerequisites",
                         {"salesInsightsPremium": True, "office365DataLocation": "US"}).status_code == 200
        assert admin.post("relationship-intelligence/enable").status_code == 200

        clock.advance(timedelta(days=14))
        run = requests.post(f"{function_host.base_url}/admin/functions/schedule_background_work",
                            headers={"x-devhost-wait": "true"}, json={"input": ""}, timeout=60)
        assert run.status_code == 202  # the timer only put the work on the queues
        assert function_host.drain(), "the queue triggers did not finish"

        overview = admin.get("relationship-intelligence").json()
        assert overview["autoDisabledAt"] is not None
        assert overview["banner"]["kind"] == "autoDisabled"
        assert overview["features"]["whoKnowsWhom"]["enabled"] is False
        assert overview["features"]["relationshipAnalytics"]["enabled"] is True
        assert overview["exchange"]["integrationEnabled"] is False
        assert overview["exchange"]["consent"]["status"] == "expired"
        events = admin.get("relationship-intelligence/audit").json()["events"]
        assert [(e["action"], e["actor"]) for e in events[:1]] == [("autoDisable", "system")]
        # A later run purges the (here empty) Exchange-derived data, once sync calls that began before the
        # auto-disable have surely finished writing.
        clock.advance(WRITE_SETTLE)
        run = requests.post(f"{function_host.base_url}/admin/functions/schedule_background_work",
                            headers={"x-devhost-wait": "true"}, json={"input": ""}, timeout=60)
        assert run.status_code == 202  # the timer only put the work on the queues
        assert function_host.drain(), "the queue triggers did not finish"
        events = admin.get("relationship-intelligence/audit").json()["events"]
        assert [(e["action"], e["actor"]) for e in events[:2]] == [("exchangeDataPurged", "system"),
                                                                   ("autoDisable", "system")]

        overview = admin.put("relationship-intelligence/exchange-integration", {"enabled": True}).json()
        assert overview["banner"]["kind"] == "consentPending"
        assert overview["banner"]["daysLeft"] == 14
    finally:
        bootstrap.install(container)
