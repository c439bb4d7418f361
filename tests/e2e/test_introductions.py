"""Introducers who consent, over HTTP: each choice (always, askFirst with accept, decline and expiry, never) and
the default the admin sets."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devhost.functionhost import FunctionHost
from devhost.idp import IdentityProvider
from shared import bootstrap
from shared.clock import FixedClock
from shared.domain.introductions import REQUEST_LIFETIME
from shared.domain.security_roles import STANDARD_SALES_ROLES
from tests.e2e.conftest import Api, ok, run_timer

pytestmark = pytest.mark.e2e

SALES = next(r.id for r in STANDARD_SALES_ROLES if r.name == "Salesperson")
LEE = "lee@fabrikam.com"


@pytest.fixture
def team(admin: Api, function_host: FunctionHost, idp: IdentityProvider, tenant_id: str) -> dict[str, Any]:
    """A tenant where Ann and Bob know Lee (CRM emails), and Zoe wants an introduction."""
    ok(admin.put("relationship-intelligence/prerequisites", {"salesInsightsPremium": True,
                                                               "office365DataLocation": "FR"}))
    ok(admin.post("relationship-intelligence/enable", {"securityRoleIds": [SALES]}))
    oids = {name: str(uuid.uuid4()) for name in ("ann", "bob", "zoe")}
    connector = Api(function_host.base_url, idp.app_token(tenant_id, "seed", ["RelationshipIntelligence.Sync"]))
    ok(connector.post("sync/users", {"items": [
        {"id": name, "version": 1, "email": f"{name}@contoso.com", "displayName": name.title(),
         "securityRoleIds": [SALES], "entraObjectId": oid} for name, oid in oids.items()]}))
    ok(connector.post("sync/contacts", {"items": [{"id": "lee", "version": 1, "email": LEE, "fullName": "Lee"}]}))
    now = datetime.now(UTC)
    ok(connector.post("sync/activities", {"items": [
        {"id": f"{who}-{n}", "version": 1, "source": "crm", "kind": "email", "sender": f"{who}@contoso.com",
         "to": [LEE], "start": (now - timedelta(days=2 + n)).isoformat()}
        for who, count in (("ann", 4), ("bob", 2)) for n in range(count)]}))
    run_timer(function_host)

    def colleague(name: str) -> Api:
        return Api(function_host.base_url, idp.user_token(tenant_id, oids[name], ["Salesperson"], name=name.title()))

    return {"admin": admin, **{name: colleague(name) for name in oids}}


def _ask(team: dict[str, Any], introducer: str, message: str = "") -> dict[str, Any]:
    return ok(team["zoe"].post("who-knows-whom/contact/lee/introductions",
                               {"introducerId": introducer, "message": message}))


def _listed(team: dict[str, Any]) -> list[str]:
    return [i["userId"] for i in ok(team["zoe"].get("who-knows-whom/contact/lee"))["introducers"]]


def test_always_gives_the_draft_at_once(team: dict[str, Any]) -> None:
    assert ok(team["ann"].get("me/introducer-choice")) == {"userId": "ann", "choice": None, "default": "always",
                                                            "effective": "always"}
    answer = _ask(team, "ann")
    assert (answer["outcome"], answer["request"]) == ("draft", None)
    assert answer["draft"]["to"] == "ann@contoso.com"


def test_ask_first_then_accept_gives_the_draft_to_the_requester_only(team: dict[str, Any]) -> None:
    ok(team["ann"].put("me/introducer-choice", {"choice": "askFirst"}))
    answer = _ask(team, "ann", "We meet Fabrikam next week")
    assert (answer["outcome"], answer["draft"]) == ("requested", None)
    request_id = answer["request"]["id"]
    to_ann = ok(team["ann"].get("me/introduction-requests"))["items"]
    assert [(r["id"], r["status"], r["message"], r["requester"]["name"]) for r in to_ann] == [
        (request_id, "pending", "We meet Fabrikam next week", "Zoe")]
    assert ok(team["zoe"].get("me/introduction-requests?side=requester"))["items"][0]["id"] == request_id
    assert team["bob"].post(f"introduction-requests/{request_id}/accept").status_code == 404  # not asked
    accepted = ok(team["ann"].post(f"introduction-requests/{request_id}/accept"))
    assert (accepted["status"], accepted["draft"]) == ("accepted", None)
    mine = ok(team["zoe"].get(f"introduction-requests/{request_id}"))
    assert mine["draft"]["to"] == "ann@contoso.com"
    assert [e["action"] for e in mine["history"]] == ["requested", "accepted"]
    assert team["ann"].post(f"introduction-requests/{request_id}/decline").status_code == 409


def test_ask_first_then_decline_gives_nothing(team: dict[str, Any]) -> None:
    ok(team["bob"].put("me/introducer-choice", {"choice": "askFirst"}))
    request_id = _ask(team, "bob")["request"]["id"]
    assert ok(team["bob"].post(f"introduction-requests/{request_id}/decline"))["status"] == "declined"
    seen = ok(team["zoe"].get(f"introduction-requests/{request_id}"))
    assert (seen["status"], seen["draft"]) == ("declined", None)


def test_an_unanswered_request_expires_after_14_days(team: dict[str, Any], container: bootstrap.Container) -> None:
    ok(team["ann"].put("me/introducer-choice", {"choice": "askFirst"}))
    request_id = _ask(team, "ann")["request"]["id"]
    later = FixedClock(datetime.now(UTC) + REQUEST_LIFETIME + timedelta(minutes=1))
    bootstrap.install(dataclasses.replace(container, clock=later))
    try:
        assert ok(team["zoe"].get(f"introduction-requests/{request_id}"))["status"] == "expired"
        refused = team["ann"].post(f"introduction-requests/{request_id}/accept")
        assert refused.status_code == 409, refused.text
    finally:
        bootstrap.install(container)


def test_never_takes_a_colleague_off_the_list_at_once(team: dict[str, Any]) -> None:
    assert _listed(team) == ["ann", "bob"]
    ok(team["ann"].put("me/introducer-choice", {"choice": "never"}))
    assert _listed(team) == ["bob"]
    refused = team["zoe"].post("who-knows-whom/contact/lee/introductions", {"introducerId": "ann"})
    assert refused.status_code == 422
    ok(team["ann"].put("me/introducer-choice", {"choice": None}))
    assert _listed(team) == ["ann", "bob"]


def test_the_default_the_admin_sets_applies_to_those_who_did_not_choose(team: dict[str, Any]) -> None:
    overview = ok(team["admin"].put("relationship-intelligence/features/who-knows-whom",
                                    {"introducerDefault": "askFirst"}))
    assert overview["features"]["whoKnowsWhom"]["introducerDefault"] == "askFirst"
    ok(team["bob"].put("me/introducer-choice", {"choice": "always"}))
    assert _ask(team, "ann")["outcome"] == "requested"
    assert _ask(team, "bob")["outcome"] == "draft"
    assert ok(team["ann"].get("me/introducer-choice"))["effective"] == "askFirst"
    bad = team["admin"].put("relationship-intelligence/features/who-knows-whom", {"introducerDefault": "sometimes"})
    assert bad.status_code == 400
    assert team["zoe"].get("me/introducer-choice").status_code == 200  # any colleague has a choice
