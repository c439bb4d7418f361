"""The data rounds end to end in process: the timer's scheduler, the real queues on Azurite and the worker, our
Graph and Dataverse clients against the local stand-ins, the one ingestion path, the insights. Each test has a
table, queues and a tenant of its own."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from devhost import organisation
from devhost.dataverse import LocalDataverse
from devhost.graph import LocalGraph
from devhost.idp import DEFAULT_GRAPH_PERMISSIONS, IdentityProvider
from devhost.organisation import Organisation
from shared import bootstrap
from shared.clock import FixedClock
from shared.config import AppConfig
from shared.connectors import MsalTokenProvider
from shared.connectors.dataverse import DataverseClient
from shared.connectors.graph import GraphClient
from shared.domain import source_mapping as m
from shared.domain.records import Activity, Source
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.domain.source_state import CrmState, MailboxState
from shared.services.background.mailboxes import mailbox_key
from shared.services.data_sources import CRM_KEY
from shared.tenancy import TenantId
from tests.background import Outcomes, drain, run_background
from tests.conftest import CLIENT_ID
from tests.integration.connectors.conftest import RETRY

pytestmark = pytest.mark.integration

ADMIN = "0f9d2c51-5d2c-4bd4-9d7a-0d9b1e0c7a11"
ROLES = {r.name: r.id for r in STANDARD_SALES_ROLES}


@pytest.fixture
def org(idp: IdentityProvider, local_graph: LocalGraph, local_dataverse: LocalDataverse,
        tenant_id: TenantId) -> Iterator[Organisation]:
    """A small organisation of its own tenant in both stand-ins (four sellers, one disabled, and a marketer), the
    app consented there."""
    data = organisation.generate(tenant_id, sellers=4, accounts=3)
    organisation.load(data, local_graph, local_dataverse, application_id=CLIENT_ID)
    idp.grants.grant(tenant_id, CLIENT_ID, DEFAULT_GRAPH_PERMISSIONS)
    yield data
    local_graph.clear_faults()
    local_dataverse.clear_faults()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC))


@pytest.fixture
def world(config: AppConfig, local_graph: LocalGraph, tokens: MsalTokenProvider, sleeps: list[float],
          http_factory: Callable[[], requests.Session], clock: FixedClock) -> bootstrap.Container:
    unique = uuid.uuid4().hex[:16]
    cfg = dataclasses.replace(config, state_table=f"Rounds{unique}", queue_prefix=f"r{unique}",
                              graph_url=local_graph.base_url, allow_loopback_sources=True)
    built = bootstrap.build(cfg, clock=clock)
    graph = GraphClient(tokens, base_url=local_graph.base_url, page_size=25, session_factory=http_factory,
                        sleep=sleeps.append, retry=RETRY)
    dataverse = DataverseClient(tokens, page_size=40, allow_loopback=True, session_factory=http_factory,
                                sleep=sleeps.append, retry=RETRY)
    return dataclasses.replace(built, sources=bootstrap.SourceClients(cfg, mail=graph, crm=dataverse))


def connect(world: bootstrap.Container, org: Organisation, *, roles: tuple[str, ...] = ("Salesperson",
                                                                                         "Sales Manager")) -> None:
    """What the admin does: prerequisites, enable with roles, the CRM's environment URL; and consent."""
    service = world.tenant_settings()
    tenant = TenantId(org.tenant)
    service.set_prerequisites(tenant, ADMIN, True, "FR")
    service.enable(tenant, ADMIN, security_role_ids=[ROLES[r] for r in roles])
    service.set_crm_environment(tenant, ADMIN, org.environment_url)
    service.change(tenant, ADMIN, "consentGranted", lambda s, now: s.record_consent_granted(ADMIN, (), now))


def settle(world: bootstrap.Container, *, patience: float = 0.0) -> Outcomes:
    outcomes = run_background(world)
    if patience:
        more = drain(world, patience=patience)
        outcomes.counted.update(more.counted)
    assert outcomes.count("failed") == 0, outcomes.counted
    return outcomes


def exchange_activities(world: bootstrap.Container, tenant: str) -> list[Activity]:
    return [a for a, _ in world.records.iter_activities(TenantId(tenant), with_ingested_at=False)
            if a.source is Source.EXCHANGE]


def reached(org: Organisation, mailboxes: set[str]) -> set[str]:
    """The activity ids of the emails and meetings some of these mailboxes hold."""
    emails = {m.message_activity_id(i) for i, copies in org.copies.items() if i.startswith("<")
              and any(mb in mailboxes for mb, _, _ in copies)}
    meetings = {m.event_activity_id(i) for i, copies in org.copies.items() if not i.startswith("<")
                and any(mb in mailboxes for mb, _, _ in copies)}
    return emails | meetings


def open_mailboxes(world: bootstrap.Container, org: Organisation) -> set[str]:
    users = world.records.iter_records(TenantId(org.tenant), "users")
    return {u.entra_object_id for u in users if u.active and u.entra_object_id
            and {ROLES["Salesperson"], ROLES["Sales Manager"]} & set(u.security_role_ids)}


def opted_out(org: Organisation) -> set[str]:
    return {str(c["emailaddress1"]) for c in org.dataverse["contacts"] if c.get("msdyn_gdproptout")}


def countable(activities: list[Activity], org: Organisation) -> set[str]:
    """Their ids, leaving out those of people who opted out: the opt-out purge deletes them once it is due, and
    a full read hands them in again (the ingestion path takes them, the next purge deletes them again)."""
    out = opted_out(org)
    return {a.id for a in activities if not out & set(a.parties)}


def test_the_timer_brings_the_crm_and_the_mailboxes_in_and_changes_follow(
        world: bootstrap.Container, org: Organisation, local_graph: LocalGraph, local_dataverse: LocalDataverse,
        clock: FixedClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    connect(world, org)
    outcomes = settle(world)
    tenant = TenantId(org.tenant)
    assert outcomes.count("crmRoundDone") == 1
    crm = world.source_state.load(tenant, CRM_KEY, CrmState)
    assert crm is not None
    assert crm.document.last_success_at is not None
    users = {u.id: u for u in world.records.iter_records(tenant, "users")}
    assert len(users) == len(org.users)
    seller = users[org.users[1].systemuser_id or ""]
    assert seller.entra_object_id == org.users[1].entra_id
    assert seller.security_role_ids == (ROLES["Salesperson"],)  # a business unit's copy, under its root role
    assert len(list(world.records.iter_records(tenant, "opportunities"))) == len(org.dataverse["opportunities"])
    team = [o for o in world.records.iter_records(tenant, "opportunities") if o.sales_team_ids]
    assert team  # from the connections
    crm_activities = [a for a, _ in world.records.iter_activities(tenant) if a.source is Source.CRM]
    assert crm_activities
    assert all(a.sender or a.to for a in crm_activities)  # people from the activity parties

    mailboxes = open_mailboxes(world, org)
    assert len(mailboxes) == len(org.users) - 2  # the disabled seller and the marketer are not read
    assert {a.id for a in exchange_activities(world, org.tenant)} == reached(org, mailboxes)
    states = [world.source_state.load(tenant, mailbox_key(mb), MailboxState) for mb in mailboxes]
    assert all(s is not None and s.document.last_success_at is not None for s in states)
    assert outcomes.count("mailboxRoundDone") >= len(mailboxes)
    for mailbox in {u.entra_id for u in org.users} - mailboxes:
        assert local_graph.calls(org.tenant, mailbox or "") == 0
    insights = list(world.insights().list_records(tenant, "account", needs_attention=False, page_size=100,
                                                  continuation=None).items)
    assert len(insights) == len(org.dataverse["accounts"])

    # A new email to two sellers and a new meeting show after the next round, once; only what changed is read.
    seller, colleague = seller_and_colleague(org)
    before = {a.id for a in exchange_activities(world, org.tenant)}
    new = organisation.send_email(local_graph, org, "lee.olsen@fabrikam.com", [seller.email, colleague.email],
                                  subject="Merger plans")
    gone = organisation.send_email(local_graph, org, seller.email, ["lee.olsen@fabrikam.com"], subject="Terms")
    meeting = organisation.schedule_meeting(local_graph, org, seller.email, [colleague.email, "lee.olsen@fabrikam.com"],
                                            clock.now() + timedelta(days=2), subject="Confidential pricing review")
    outcomes = next_rounds(world, clock)
    assert {a.id for a in exchange_activities(world, org.tenant)} - before == {
        m.message_activity_id(new), m.message_activity_id(gone), m.event_activity_id(meeting)}
    assert outcomes.count("refreshed") + outcomes.count("recomputed") >= 1
    seller_state = state_of(world, org.tenant, seller.entra_id or "")
    assert seller_state is not None
    assert seller_state.last_round_items == 3
    # Deleted from one inbox: the other still holds it, so it stays. Then the seller's sync state is lost (410)
    # while another email is deleted: the full round stores nothing twice and notices the deletion.
    organisation.delete_email(local_graph, org, new, mailbox=seller.entra_id)
    organisation.delete_email(local_graph, org, gone)
    local_graph.evict_sync_state(org.tenant, seller.entra_id or "")
    stored = countable(exchange_activities(world, org.tenant), org)
    next_rounds(world, clock)
    assert countable(exchange_activities(world, org.tenant), org) == stored - {m.message_activity_id(gone)}
    seller_state = state_of(world, org.tenant, seller.entra_id or "")
    assert seller_state is not None
    assert seller_state.last_error is None
    # Deleted from the last mailbox that held it: it leaves, as a tombstone the insights see as a change.
    organisation.delete_email(local_graph, org, new)
    next_rounds(world, clock)
    assert m.message_activity_id(new) not in {a.id for a in exchange_activities(world, org.tenant)}
    removed = [a for a, _ in world.records.iter_activities(tenant, removed=True) if a.id == m.message_activity_id(new)]
    assert [type(a).__name__ for a in removed] == ["RemovedActivity"]

    # The CRM: a deleted phone call leaves, a renamed contact changes, and a user taken out of every role (their
    # role assignment deleted) loses them: the plan that follows drops their mailbox's delta state.
    url = org.environment_url or ""
    call = local_dataverse.rows(url, "phonecalls")[0]
    local_dataverse.delete(url, "phonecalls", call["activityid"])
    contact = local_dataverse.rows(url, "contacts")[0]
    local_dataverse.update(url, "contacts", contact["contactid"], fullname="Renamed Person")
    assignment = next(r for r in local_dataverse.rows(url, "systemuserrolescollection")
                      if r["systemuserid"] == colleague.systemuser_id)
    local_dataverse.delete(url, "systemuserrolescollection", assignment["systemuserroleid"])
    outcomes = next_rounds(world, clock)
    assert outcomes.count("crmRoundDone") == 1
    assert world.records.get(tenant, "activities", f"crm|{call['activityid']}") is None
    assert world.records.get(tenant, "contacts", contact["contactid"]).full_name == "Renamed Person"
    assert world.records.get(tenant, "users", colleague.systemuser_id or "").security_role_ids == ()
    crm = world.source_state.load(tenant, CRM_KEY, CrmState)
    assert crm is not None
    assert (crm.document.last_round_items, crm.document.last_round_removed) == (2, 1)
    assert outcomes.count("dropped") == 1
    assert state_of(world, org.tenant, colleague.entra_id or "") is None
    assert list(world.source_state.copies(tenant, colleague.entra_id or "")) == []
    calls = local_graph.calls(org.tenant, colleague.entra_id or "")
    kinds = ("securityRoles", "users", "accounts", "contacts", "leads", "opportunities")
    records = {kind: list(world.records.iter_records(tenant, kind)) for kind in kinds}
    crm_activities = countable([a for a, _ in world.records.iter_activities(tenant) if a.source is Source.CRM], org)
    local_dataverse.expire_change_tokens(url)
    next_rounds(world, clock)
    crm = world.source_state.load(tenant, CRM_KEY, CrmState)
    assert crm is not None
    assert crm.document.last_error is None
    assert local_graph.calls(org.tenant, colleague.entra_id or "") == calls  # no longer read
    assert records == {kind: list(world.records.iter_records(tenant, kind)) for kind in kinds}
    assert countable([a for a, _ in world.records.iter_activities(tenant) if a.source is Source.CRM],
                     org) == crm_activities

    # Privacy: with subjects, bodies and previews in every message and event (and CRM subjects and
    # descriptions), no stored row of the tenant and no log line holds any of them.
    private = {e.subject for e in org.emails} | {e.body for e in org.emails} | {e.body[:255] for e in org.emails}
    private |= {x.subject for x in org.meetings} | {x.body for x in org.meetings}
    private |= {str(r[c]) for rows in org.dataverse.values() for r in rows for c in ("subject", "description")
                if r.get(c)}
    rows = [*world.tables.iter_partition(org.tenant), *world.activity_tables.iter_partition(org.tenant),
            *world.insight_tables.iter_partition(org.tenant)]
    assert len(rows) > 100
    text = repr(rows)
    assert [p for p in private if p in text] == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert [p for p in private if p in logged] == []


def next_rounds(world: bootstrap.Container, clock: FixedClock, *, patience: float = 0.0) -> Outcomes:
    """The timer after the longer interval (the CRM's) and then some: every round is due again (a round's next
    slot is between half an interval and one and a half intervals away, on the tenant's grid)."""
    clock.advance(world.config.crm_round_interval * 3 / 2 + timedelta(minutes=1))
    return settle(world, patience=patience)


def state_of(world: bootstrap.Container, tenant: str, mailbox: str) -> MailboxState | None:
    found = world.source_state.load(TenantId(tenant), mailbox_key(mailbox), MailboxState)
    return None if found is None else found.document


def seller_and_colleague(org: Organisation) -> tuple[organisation.Person, organisation.Person]:
    return org.users[0], org.users[2]  # both read: a sales manager and a salesperson of the root business unit


def test_a_back_fill_through_429s_an_expiring_token_redeliveries_and_a_mailbox_failing_for_good(
        world: bootstrap.Container, org: Organisation, local_graph: LocalGraph, sleeps: list[float]) -> None:
    connect(world, org)
    # A storm of 429s on mail (short waits inline, a longer one delays the message), the calendar too.
    local_graph.fail_next(429, "ApplicationThrottled", tenant=org.tenant, path_contains="/messages/delta",
                          retry_after=1, times=12)
    local_graph.fail_next(429, "ApplicationThrottled", tenant=org.tenant, path_contains="/calendarView/delta",
                          retry_after=3, times=3)
    # One mailbox Graph refuses for good.
    failing = org.users[1]
    local_graph.fail_next(403, "ErrorAccessDenied", tenant=org.tenant, path_contains=failing.entra_id, times=1000)
    worker = world.worker()
    world.scheduler().run()
    events: dict[str, Any] = {"expired": False, "repeated": []}

    class Unreliable:
        """The worker as the platform may run it: every mailbox step delivered twice (the second time after the
        first finished), and every token seen so far expiring after the first mailbox step."""

        def handle(self, message: Any) -> str:
            outcome = worker.handle(message)
            if message.target is not None:
                events["repeated"].append(worker.handle(message))
                if not events["expired"]:
                    local_graph.expire_tokens()
                    events["expired"] = True
            return outcome

    outcomes = drain(world, worker=Unreliable(), patience=3.5)  # type: ignore[arg-type]
    assert outcomes.count("failed") == 0, outcomes.counted
    assert outcomes.count("mailboxThrottled") >= 1
    assert sleeps
    assert set(sleeps) <= {1, 3}  # the waits are the Retry-After asked for
    assert {"alreadyDone", "superseded", "mailboxRoundContinues"} & set(events["repeated"])
    readable = open_mailboxes(world, org) - {failing.entra_id or ""}
    activities = exchange_activities(world, org.tenant)
    assert len(activities) == len({a.id for a in activities})
    assert reached(org, readable) <= {a.id for a in activities}
    for mailbox in readable:
        state = state_of(world, org.tenant, mailbox)
        assert state is not None
        assert state.last_success_at is not None
        held = {c.activity_id for c in world.source_state.copies(TenantId(org.tenant), mailbox)}
        assert state.last_round_items == len(held)  # each item of its back-fill counted once
    broken = state_of(world, org.tenant, failing.entra_id or "")
    assert broken is not None
    assert broken.last_success_at is None
    assert broken.last_error is not None
    assert broken.last_error.code == "ErrorAccessDenied"
    assert "refused access to this mailbox" in broken.last_error.message
    local_graph.clear_faults()
