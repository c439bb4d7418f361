"""Data flows in by itself (issue 13), over HTTP with the parts `make run` starts: the local Functions host and its
queue triggers, Azurite, the local identity provider (the consent goes through its page), the local Graph and
Dataverse. Enable, consent, the timer: insights appear; a new email shows in the KPIs after the next round and a
deleted one leaves them; a user taken out of the selected roles is no longer read; with Exchange off, Graph is
not called at all (the local Graph counts calls per tenant and mailbox)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from devhost import organisation
from devhost.dataverse import LocalDataverse
from devhost.functionhost import FunctionHost
from devhost.graph import LocalGraph
from devhost.idp import IdentityProvider
from shared import bootstrap
from shared.domain.security_roles import STANDARD_SALES_ROLES
from tests.conftest import CLIENT_ID
from tests.e2e.conftest import Api, ok, run_timer
from tests.e2e.test_consent import answer_consent_page, callback, consent_link, consent_status

pytestmark = pytest.mark.e2e

ROLES = {r.name: r.id for r in STANDARD_SALES_ROLES}


@pytest.fixture
def sourced(container: bootstrap.Container, local_graph: LocalGraph) -> Iterator[bootstrap.Container]:
    """The app as `make run` configures it: Graph is the local one, a loopback Dataverse may be set."""
    config = dataclasses.replace(container.config, graph_url=local_graph.base_url, allow_loopback_sources=True)
    configured = dataclasses.replace(container, config=config, sources=bootstrap.SourceClients(config))
    bootstrap.install(configured)
    yield configured
    bootstrap.install(container)


@pytest.fixture
def org(local_graph: LocalGraph, local_dataverse: LocalDataverse, tenant_id: str) -> organisation.Organisation:
    data = organisation.generate(tenant_id, sellers=4, accounts=3)
    organisation.load(data, local_graph, local_dataverse, application_id=CLIENT_ID)
    return data


def account_activities(seller: Api, account_id: str) -> int:
    return int(ok(seller.get(f"insights/account/{account_id}"))["kpis"]["activities"])


def test_enable_consent_and_the_timer_and_the_data_comes_by_itself(
        sourced: bootstrap.Container, function_host: FunctionHost, idp: IdentityProvider, idp_session: requests.Session,
        local_graph: LocalGraph, org: organisation.Organisation, tenant_id: str) -> None:
    admin = Api(function_host.base_url, idp.user_token(tenant_id, str(uuid.uuid4()), ["SystemAdministrator"]))
    seller = Api(function_host.base_url, idp.user_token(tenant_id, org.users[1].entra_id or "", ["Salesperson"]))
    ok(admin.put("relationship-intelligence/prerequisites", {"salesInsightsPremium": True,
                                                             "office365DataLocation": "FR"}))
    ok(admin.post("relationship-intelligence/enable",
                  {"securityRoleIds": [ROLES["Salesperson"], ROLES["Sales Manager"]]}))
    refused = admin.put("relationship-intelligence/crm-environment", {"environmentUrl": "https://evil.example/x"})
    assert refused.status_code == 400
    overview = ok(admin.put("relationship-intelligence/crm-environment", {"environmentUrl": org.environment_url}))
    assert overview["crmEnvironmentUrl"] == org.environment_url
    audit = ok(admin.get("relationship-intelligence/audit"))["events"][0]
    assert audit["action"] == "setCrmEnvironment"
    assert {c["field"]: c["new"] for c in audit["changes"]}["crm.environmentUrl"] == org.environment_url
    callback(function_host, answer_consent_page(idp_session, consent_link(admin), "accept"))
    assert consent_status(admin) == "granted"

    # At a minute's last half second: an update of the insights asked while another is under way waits for the next
    # minute (steps.ask_soon), and the drain would otherwise wait up to a minute each round for it.
    at = datetime.now(UTC).replace(second=59, microsecond=500_000)
    run_timer(function_host, sourced, at)
    sources: dict[str, Any] = ok(admin.get("relationship-intelligence"))["dataSources"]
    assert sources["crm"]["lastSuccessAt"] is not None
    assert sources["crm"]["lastError"] is None
    assert sources["exchange"]["mailboxes"] == 3  # the disabled seller and the marketer are not read
    assert sources["exchange"]["mailboxesSynced"] == 3
    assert sources["exchange"]["itemsInLastRound"] > 0
    # Rounds that ended while the insights' update was under way asked for another a minute later: a later run
    # of the timer sends what is left (the leases of the first run's rows have passed by then).
    at += timedelta(minutes=91)
    run_timer(function_host, sourced, at)
    account = org.dataverse["accounts"][0]
    before = account_activities(seller, account["accountid"])
    assert before > 0
    names = {i["name"] for i in ok(seller.get("insights/account?pageSize=100"))["items"]}
    assert names == {a["name"] for a in org.dataverse["accounts"]}

    # A new email from the account's primary contact to two sellers: after the next round, one more activity.
    contact = next(c for c in org.dataverse["contacts"] if c["contactid"] == account["_primarycontactid_value"])
    sent = organisation.send_email(local_graph, org, contact["emailaddress1"],
                                   [org.users[0].email, org.users[2].email], subject="Our budget for next year")
    at += timedelta(minutes=91)
    run_timer(function_host, sourced, at)
    assert account_activities(seller, account["accountid"]) == before + 1

    # Deleted from every mailbox: after the next round, it leaves the KPIs.
    organisation.delete_email(local_graph, org, sent)
    at += timedelta(minutes=91)
    run_timer(function_host, sourced, at)
    assert account_activities(seller, account["accountid"]) == before

    # Salespersons taken out of the selected roles: their mailboxes are no longer read.
    salesperson = org.users[2].entra_id or ""
    ok(admin.put("relationship-intelligence/security-roles", {"securityRoleIds": [ROLES["Sales Manager"]]}))
    at += timedelta(minutes=91)
    run_timer(function_host, sourced, at)
    calls = local_graph.calls(tenant_id, salesperson)
    at += timedelta(minutes=91)
    run_timer(function_host, sourced, at)
    assert local_graph.calls(tenant_id, salesperson) == calls
    assert local_graph.calls(tenant_id, org.users[0].entra_id or "") > 0  # the sales manager's still is

    # Exchange integration off: no Graph call at all in the following rounds.
    ok(admin.put("relationship-intelligence/exchange-integration", {"enabled": False}))
    at += timedelta(minutes=91)
    run_timer(function_host, sourced, at)
    calls = local_graph.calls(tenant_id)
    at += timedelta(minutes=91)
    run_timer(function_host, sourced, at)
    assert local_graph.calls(tenant_id) == calls
    ok(admin.post("relationship-intelligence/disable"))  # nothing of this tenant's is left to run
