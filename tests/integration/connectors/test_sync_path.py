"""From the stand-ins through our clients and mapping into the one ingestion path (SyncService on Azurite): each
email stored once however many mailboxes hold it, a full round after a 410 stores nothing twice, a new email
shows after the next round, and no subject, body or preview reaches storage or the logs."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from devhost import organisation
from devhost.graph import LocalGraph
from devhost.organisation import Organisation
from shared import bootstrap
from shared.connectors import SyncStateExpired
from shared.connectors.dataverse import DataverseClient
from shared.connectors.graph import FOLDERS, GraphClient
from shared.domain import source_mapping as m
from shared.domain.security_roles import STANDARD_SALES_ROLES
from shared.tenancy import TenantId

pytestmark = pytest.mark.integration


def _enable(container: bootstrap.Container, tenant: str) -> None:
    settings = container.tenant_settings()
    tid = TenantId(tenant)
    settings.change(tid, "a", "p", lambda s, now: s.set_prerequisites(True, "FR", now))
    settings.change(tid, "a", "e", lambda s, now: s.enable(
        "a", now, security_role_ids=tuple(r.id for r in STANDARD_SALES_ROLES)))
    settings.change(tid, "a", "c", lambda s, now: s.record_consent_granted("a", (), now))


def _users(client: DataverseClient, org: Organisation) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Users with their root roles, and each mailbox's (Entra id's) systemuserid."""
    url = org.environment_url or ""
    roles = [r for r in client.changes(org.tenant, url, "roles", m.ROLE_COLUMNS, None).rows]
    root = {r["roleid"]: r["_parentrootroleid_value"] for r in roles}
    held: dict[str, list[str]] = {}
    for role_id in root:
        rows, _ = client.page(org.tenant, url, f"roles({role_id})/systemuserroles_association", ["systemuserid"],
                              None)
        for row in rows:
            held.setdefault(row["systemuserid"], []).append(root[role_id])
    users, owners = [], {}
    for row in client.changes(org.tenant, url, "systemusers", m.USER_COLUMNS, None).rows:
        user = m.dataverse_user(row, role_ids=held.get(row["systemuserid"], []))
        if user is not None:
            users.append(user)
            owners[row["azureactivedirectoryobjectid"]] = user["id"]
    return users, owners


def _mail_round(client: GraphClient, org: Organisation, owners: dict[str, str],
                links: dict[tuple[str, str], str | None]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for entra_id, owner in owners.items():
        for folder in FOLDERS:
            link = links.get((entra_id, folder))
            while True:
                try:
                    page = client.mail_delta(org.tenant, entra_id, folder, link, since=org.now - timedelta(days=365))
                except SyncStateExpired:
                    link = None  # the stored position is gone: a full round of this folder
                    continue
                items += [a for a in (m.graph_message(i, owner) for i in page.items) if a]
                if page.delta_link:
                    links[(entra_id, folder)] = page.delta_link
                    break
                link = page.next_link
    return items


def _once_each(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A batch names each record once (the sync path refuses a repeat): the newest copy of each."""
    newest: dict[str, dict[str, Any]] = {}
    for item in items:
        if item["id"] not in newest or newest[item["id"]]["version"] < item["version"]:
            newest[item["id"]] = item
    return list(newest.values())


def test_mail_flows_into_storage_once_and_nothing_private_gets_there(
        container: bootstrap.Container, graph_client: GraphClient, dataverse_client: DataverseClient,
        local_graph: LocalGraph, org: Organisation, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _enable(container, org.tenant)
    sync = container.sync()
    users, owners = _users(dataverse_client, org)
    assert sync.ingest(TenantId(org.tenant), "users", users).rejected == []

    # A closed gate stops the fetching itself: the disabled seller's mailbox is not read.
    disabled = {u["id"] for u in users if not u["active"]}
    assert disabled
    owners = {entra: owner for entra, owner in owners.items() if owner not in disabled}
    links: dict[tuple[str, str], str | None] = {}
    items = _mail_round(graph_client, org, owners, links)
    report = sync.ingest(TenantId(org.tenant), "activities", _once_each(items))
    assert report.rejected == []
    reached = {e.internet_message_id for e in org.emails
               if any(mb in owners for mb, _, _ in org.copies[e.internet_message_id])}
    assert {i["id"] for i in items} == {m.message_activity_id(i) for i in reached}  # one per email
    assert len(items) > len(reached)  # many emails sit in two mailboxes (Sent Items and an Inbox)
    assert report.stored == len(reached)

    # The delta position is lost everywhere: full rounds again, nothing new stored.
    for entra_id in owners:
        local_graph.evict_sync_state(org.tenant, entra_id)
    again = sync.ingest(TenantId(org.tenant), "activities", _once_each(_mail_round(graph_client, org, owners, links)))
    assert again.stored == 0

    # A new email to two sellers: after the next round, one activity more.
    seller, colleague = (u for u in org.users[:2])
    new = organisation.send_email(local_graph, org, "lee.olsen@fabrikam.com", [seller.email, colleague.email],
                                  subject="Secret merger plans")
    latest_items = _mail_round(graph_client, org, owners, links)
    assert {i["id"] for i in latest_items} == {m.message_activity_id(new)}
    assert len(latest_items) == 2  # the email sits in both inboxes: one activity
    latest = sync.ingest(TenantId(org.tenant), "activities", _once_each(latest_items))
    assert (latest.stored, latest.unchanged) == (1, 0)

    # Meetings too: the calendar delta hands whole events (bodies included) to the client, which cuts them.
    window = (org.now - timedelta(days=90), org.now + timedelta(days=30))
    events: list[dict[str, Any]] = []
    for entra_id, owner in owners.items():
        link = None
        while True:
            page = graph_client.calendar_delta(org.tenant, entra_id, link, window=window)
            events += [a for a in (m.graph_event(i, owner, now=org.now) for i in page.items) if a]
            if page.delta_link:
                break
            link = page.next_link
    meetings = sync.ingest(TenantId(org.tenant), "activities", _once_each(events))
    assert meetings.rejected == []
    assert meetings.stored == len({e["id"] for e in events}) > 0

    private = {e.subject for e in org.emails} | {e.body for e in org.emails}
    private |= {x.subject for x in org.meetings} | {x.body for x in org.meetings}
    private |= {s for e in org.emails for s in (e.body[:255],)}
    rows = [*container.tables.iter_partition(org.tenant), *container.activity_tables.iter_partition(org.tenant),
            *container.insight_tables.iter_partition(org.tenant)]
    text = repr(rows)
    assert rows
    leaked = [p for p in private if p in text]
    assert leaked == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert [p for p in private if p in logged] == []
