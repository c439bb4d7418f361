"""The Graph client against the local Graph, over HTTPS on loopback, with MSAL tokens from the local identity
provider: paging, delta links replayed later, removals, 410, throttling, mailbox concurrency, token expiry and
the stand-in's own checks of tokens and permissions."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from devhost import organisation
from devhost.graph import LocalGraph
from devhost.idp import IdentityProvider
from devhost.organisation import Organisation
from shared.connectors import AccessDenied, RequestRejected, SourceUnavailable, SyncStateExpired, Throttled
from shared.connectors.graph import DeltaPage, GraphClient
from shared.domain.records import Activity
from shared.domain.source_mapping import graph_message, message_activity_id
from tests.conftest import CLIENT_ID

pytestmark = pytest.mark.integration

PRIVATE = ("subject", "body", "bodyPreview", "uniqueBody")


def _round(client: GraphClient, tenant: str, mailbox: str, folder: str, link: str | None, since: datetime,
           ) -> tuple[list[DeltaPage], str]:
    pages = []
    while True:
        page = client.mail_delta(tenant, mailbox, folder, link, since=since)
        pages.append(page)
        if page.delta_link:
            return pages, page.delta_link
        assert page.next_link
        link = page.next_link


def _ids(pages: list[DeltaPage]) -> list[str]:
    return [item["id"] for page in pages for item in page.items]


def _year(org: Organisation) -> datetime:
    return org.now - timedelta(days=365)


def _graph_token(idp: IdentityProvider, tenant: str, session: requests.Session, **claims: Any) -> str:
    response = session.post(f"{idp.base_url}/{tenant}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "test-secret",
        "scope": "https://graph.microsoft.com/.default"})
    token = response.json()["access_token"]
    if not claims:
        return str(token)
    decoded = jwt.decode(token, options={"verify_signature": False})
    return idp.sign({**decoded, **claims})


def test_a_full_round_pages_through_every_message_received_since_then_hands_a_delta_link(
        graph_client: GraphClient, local_graph: LocalGraph, org: Organisation) -> None:
    mailbox = max((u.entra_id or "" for u in org.users),
                  key=lambda u: len(local_graph.messages(org.tenant, u, "inbox")))
    received = sorted(m["receivedDateTime"] for m in local_graph.messages(org.tenant, mailbox, "inbox"))
    since = datetime.fromisoformat(received[5].replace("Z", "+00:00"))  # the five oldest are left out
    pages, delta_link = _round(graph_client, org.tenant, mailbox, "inbox", None, since)
    expected = {m["id"] for m in local_graph.messages(org.tenant, mailbox, "inbox")
                if datetime.fromisoformat(m["receivedDateTime"].replace("Z", "+00:00")) >= since}
    ids = _ids(pages)
    assert len(ids) == len(set(ids)) == len(expected) > 25
    assert set(ids) == expected
    assert len(expected) < len(local_graph.messages(org.tenant, mailbox, "inbox"))  # older ones left out
    assert all(len(p.items) <= 25 for p in pages)
    assert len(pages) >= 2
    assert all(p.next_link and not p.delta_link for p in pages[:-1])
    assert "$deltatoken=" in delta_link
    assert "$skiptoken=" in (pages[0].next_link or "")
    assert local_graph.calls(org.tenant, mailbox) == len(pages)
    for item in (i for p in pages for i in p.items):
        assert not set(item) & set(PRIVATE)
        mapped = graph_message(item, "owner-1")
        assert mapped is not None
        Activity.model_validate_json(json.dumps(mapped))  # as the sync path reads it


def test_a_delta_link_replayed_later_returns_exactly_what_changed_since(
        graph_client: GraphClient, local_graph: LocalGraph, org: Organisation) -> None:
    seller, colleague = org.users[1], org.users[2]
    customer = next(p["emailaddress1"] for p in org.dataverse["contacts"])
    _, inbox_link = _round(graph_client, org.tenant, seller.entra_id or "", "inbox", None, _year(org))
    quiet, link_after_quiet = _round(graph_client, org.tenant, seller.entra_id or "", "inbox", inbox_link, _year(org))
    assert _ids(quiet) == []
    assert all(not p.removed_ids for p in quiet)

    new = organisation.send_email(local_graph, org, customer, [seller.email, colleague.email],
                                  at=datetime.now(UTC), subject="Signed order form")
    old = next(e.internet_message_id for e in org.emails
               if any(m == seller.entra_id and f == "inbox" for m, f, _ in org.copies[e.internet_message_id])
               and e.internet_message_id != new)
    organisation.change_email(local_graph, org, old, isRead=False, categories=["Follow up"])
    gone = next(e.internet_message_id for e in reversed(org.emails)
                if e.internet_message_id not in (new, old)
                and any(m == seller.entra_id and f == "inbox" for m, f, _ in org.copies[e.internet_message_id]))
    seller_copy = next(x for m, f, x in org.copies[gone] if m == seller.entra_id and f == "inbox")
    organisation.delete_email(local_graph, org, gone)

    pages, _ = _round(graph_client, org.tenant, seller.entra_id or "", "inbox", link_after_quiet, _year(org))
    items = [i for p in pages for i in p.items]
    assert sorted(i["internetMessageId"] for i in items) == sorted([new, old])
    assert [r for p in pages for r in p.removed_ids] == [seller_copy]
    # The same old link again: the same changes (a replay), nothing lost, nothing new.
    again, _ = _round(graph_client, org.tenant, seller.entra_id or "", "inbox", link_after_quiet, _year(org))
    assert sorted(i["id"] for p in again for i in p.items) == sorted(i["id"] for i in items)
    changed = next(i for i in items if i["internetMessageId"] == old)
    mapped = graph_message(changed, seller.systemuser_id or "")
    assert mapped is not None
    assert mapped["id"] == message_activity_id(old)


def test_changes_made_during_a_round_come_in_the_next_one(graph_client: GraphClient, local_graph: LocalGraph,
                                                          org: Organisation) -> None:
    mailbox = org.users[0].entra_id or ""
    first = graph_client.mail_delta(org.tenant, mailbox, "sentitems", None, since=_year(org))
    assert first.next_link
    seen = first.items[0]
    local_graph.update_message(org.tenant, mailbox, "sentitems", seen["id"], categories=["changed"])
    template = {k: v for k, v in local_graph.messages(org.tenant, mailbox, "sentitems")[0].items() if k != "id"}
    added = local_graph.put_message(org.tenant, mailbox, "sentitems", {
        **template, "internetMessageId": "<late@x>", "receivedDateTime": datetime.now(UTC).isoformat()})
    rest, delta_link = _round(graph_client, org.tenant, mailbox, "sentitems", first.next_link, _year(org))
    assert added not in _ids(rest)
    following, _ = _round(graph_client, org.tenant, mailbox, "sentitems", delta_link, _year(org))
    assert sorted(_ids(following)) == sorted([seen["id"], added])


def test_an_evicted_sync_state_is_410_and_a_full_round_gives_each_message_once(
        graph_client: GraphClient, local_graph: LocalGraph, org: Organisation) -> None:
    mailbox = org.users[1].entra_id or ""
    pages, link = _round(graph_client, org.tenant, mailbox, "inbox", None, _year(org))
    before = {graph_message(i, "o")["id"] for p in pages for i in p.items}  # type: ignore[index]
    local_graph.evict_sync_state(org.tenant, mailbox, "inbox")
    with pytest.raises(SyncStateExpired) as caught:
        graph_client.mail_delta(org.tenant, mailbox, "inbox", link, since=_year(org))
    assert caught.value.code == "SyncStateNotFound"
    again, _ = _round(graph_client, org.tenant, mailbox, "inbox", None, _year(org))
    after = [graph_message(i, "o")["id"] for p in again for i in p.items]  # type: ignore[index]
    assert len(after) == len(set(after))
    assert set(after) == before


def test_the_calendar_round_cuts_bodies_away_and_reports_cancellations_and_moves_out_of_the_window(
        graph_client: GraphClient, local_graph: LocalGraph, org: Organisation) -> None:
    organizer = next(m.organizer for m in org.meetings if m.organizer.internal and m.start > org.now - timedelta(
        days=80))
    mailbox = organizer.entra_id or ""
    window = (org.now - timedelta(days=90), org.now + timedelta(days=30))
    link: str | None = None
    items: list[dict[str, Any]] = []
    while True:
        page = graph_client.calendar_delta(org.tenant, mailbox, link, window=window)
        items += page.items
        if page.delta_link:
            break
        link = page.next_link
    raw = local_graph.events(org.tenant, mailbox)
    assert all(e["subject"] and e["body"]["content"] and e["bodyPreview"] for e in raw)  # the stand-in has them
    inside = {e["id"] for e in raw if window[0] <= datetime.fromisoformat(e["start"]["dateTime"]).replace(
        tzinfo=UTC) < window[1]}
    assert {i["id"] for i in items} == inside
    assert all(not set(i) & set(PRIVATE) and "location" not in i for i in items)
    delta_link = page.delta_link
    ours = [m for m in org.meetings if m.organizer is organizer and window[0] <= m.start < window[1]]
    organisation.cancel_meeting(local_graph, org, ours[0].ical_uid)
    moved_id = next(x for m, _, x in org.copies[ours[1].ical_uid] if m == mailbox)
    local_graph.update_event(org.tenant, mailbox, moved_id, start={"dateTime": "2020-01-01T10:00:00.0000000",
                             "timeZone": "UTC"}, end={"dateTime": "2020-01-01T11:00:00.0000000", "timeZone": "UTC"})
    page = graph_client.calendar_delta(org.tenant, mailbox, delta_link, window=window)
    assert page.items == []
    assert moved_id in page.removed_ids
    assert len(page.removed_ids) == 2


def test_a_storm_of_429s_is_waited_out_as_retry_after_says_then_handed_back(
        graph_client: GraphClient, local_graph: LocalGraph, org: Organisation, sleeps: list[float]) -> None:
    mailbox = org.users[1].entra_id or ""
    local_graph.fail_next(429, "TooManyRequests", tenant=org.tenant, retry_after=0.3, times=2)
    page = graph_client.mail_delta(org.tenant, mailbox, "inbox", None, since=_year(org))
    assert page.items
    assert sleeps == [0.3, 0.3]

    sleeps.clear()
    local_graph.fail_next(429, "TooManyRequests", tenant=org.tenant, retry_after=0.5, times=5)
    with pytest.raises(Throttled) as caught:
        graph_client.mail_delta(org.tenant, mailbox, "inbox", page.next_link, since=_year(org))
    assert caught.value.retry_after == 0.5
    assert sleeps == [0.5, 0.5]

    sleeps.clear()
    local_graph.clear_faults()
    local_graph.fail_next(429, "ApplicationThrottled", tenant=org.tenant, retry_after=120)
    with pytest.raises(Throttled) as long_wait:
        graph_client.mail_delta(org.tenant, mailbox, "inbox", page.next_link, since=_year(org))
    assert long_wait.value.retry_after == 120
    assert sleeps == []
    again = graph_client.mail_delta(org.tenant, mailbox, "inbox", page.next_link, since=_year(org))
    assert again.items
    assert set(_ids([again])).isdisjoint(_ids([page]))


def test_503_is_retried_then_source_unavailable(graph_client: GraphClient, local_graph: LocalGraph,
                                                org: Organisation, sleeps: list[float]) -> None:
    mailbox = org.users[1].entra_id or ""
    local_graph.fail_next(503, "ServiceUnavailable", tenant=org.tenant, retry_after=0.2, times=1)
    assert graph_client.mail_delta(org.tenant, mailbox, "inbox", None, since=_year(org)).items
    local_graph.fail_next(503, "ServiceUnavailable", tenant=org.tenant, retry_after=1, times=3)
    with pytest.raises(SourceUnavailable) as caught:
        graph_client.mail_delta(org.tenant, mailbox, "inbox", None, since=_year(org))
    assert caught.value.retry_after == 1
    assert sleeps == [0.2, 1, 1]


def test_a_fifth_concurrent_request_on_a_mailbox_is_refused_and_the_client_never_sends_one(
        graph_client: GraphClient, local_graph: LocalGraph, org: Organisation, idp: IdentityProvider,
        http_factory: Callable[[], requests.Session], sleeps: list[float]) -> None:
    mailbox = org.users[1].entra_id or ""
    token = _graph_token(idp, org.tenant, http_factory())
    url = f"{local_graph.base_url}/v1.0/users/{mailbox}/mailFolders/inbox/messages/delta"
    local_graph.latency_seconds = 0.4
    barrier = threading.Barrier(5)

    def raw(_: int) -> requests.Response:
        session = http_factory()
        barrier.wait()
        return session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(raw, range(5)))
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) == 1
    assert sum(a.status_code == 200 for a in answers) == 4
    assert refused[0].json()["error"]["code"] == "ApplicationThrottled"
    assert "MailboxConcurrency" in refused[0].json()["error"]["message"]
    assert refused[0].headers["Retry-After"]

    local_graph.latency_seconds = 0.15
    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(lambda _: graph_client.mail_delta(org.tenant, mailbox, "inbox", None,
                                                                since=_year(org)), range(8)))
    assert all(p.items for p in pages)
    assert sleeps == []


def test_a_token_that_expires_mid_round_is_renewed_once(graph_client: GraphClient, local_graph: LocalGraph,
                                                       org: Organisation) -> None:
    mailbox = org.users[1].entra_id or ""
    first = graph_client.mail_delta(org.tenant, mailbox, "inbox", None, since=_year(org))
    local_graph.expire_tokens()
    second = graph_client.mail_delta(org.tenant, mailbox, "inbox", first.next_link, since=_year(org))
    assert second.items
    assert local_graph.calls(org.tenant, mailbox) == 3  # first page, the refused one, the same page again


def test_without_consent_there_is_no_graph_call_at_all(graph_client: GraphClient, local_graph: LocalGraph,
                                                       org: Organisation, idp: IdentityProvider) -> None:
    other = str(uuid.uuid4())  # a tenant whose admin never consented
    with pytest.raises(AccessDenied) as caught:
        graph_client.mail_delta(other, org.users[0].entra_id or "", "inbox", None, since=_year(org))
    assert caught.value.code == "AADSTS700016"
    assert local_graph.calls(other) == 0
    graph_client.mail_delta(org.tenant, org.users[0].entra_id or "", "inbox", None, since=_year(org))
    assert local_graph.calls(org.tenant) == 1
    assert local_graph.calls(other) == 0


def test_a_permission_missing_is_access_denied(graph_client: GraphClient, local_graph: LocalGraph,
                                               org: Organisation, idp: IdentityProvider) -> None:
    idp.grants.grant(org.tenant, CLIENT_ID, ["User.Read.All"])  # the admin took mail and calendars away
    with pytest.raises(AccessDenied) as mail:
        graph_client.mail_delta(org.tenant, org.users[0].entra_id or "", "inbox", None, since=_year(org))
    assert mail.value.status == 403
    assert mail.value.code == "ErrorAccessDenied"
    with pytest.raises(AccessDenied) as groups:
        graph_client.transitive_member_ids(org.tenant, next(iter(org.groups)))
    assert groups.value.code == "Authorization_RequestDenied"
    assert graph_client.users(org.tenant).items  # User.Read.All is still there


def test_the_stand_in_refuses_tokens_that_are_not_graphs(local_graph: LocalGraph, org: Organisation,
                                                         idp: IdentityProvider,
                                                         http_factory: Callable[[], requests.Session]) -> None:
    session = http_factory()
    url = f"{local_graph.base_url}/v1.0/users/{org.users[0].entra_id}/mailFolders/inbox/messages/delta"
    good = _graph_token(idp, org.tenant, session)
    assert session.get(url, headers={"Authorization": f"Bearer {good}"}).status_code == 200
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(jwt.decode(good, options={"verify_signature": False}), other_key, algorithm="RS256",
                        headers={"kid": idp.kid})
    cases = {
        "none": None,
        "api audience": _graph_token(idp, org.tenant, session, aud="api://relationship-intelligence-test"),
        "other issuer": _graph_token(idp, org.tenant, session, iss="https://sts.windows.net/someone-else/"),
        "expired": _graph_token(idp, org.tenant, session, exp=1, nbf=0, iat=0),
        "forged": forged,
    }
    for name, token in cases.items():
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        answer = session.get(url, headers=headers)
        assert answer.status_code == 401, name
        assert answer.json()["error"]["code"] == "InvalidAuthenticationToken", name
        assert "WWW-Authenticate" in answer.headers
    no_roles = _graph_token(idp, org.tenant, session, roles=["User.Read.All"])
    assert session.get(url, headers={"Authorization": f"Bearer {no_roles}"}).json()["error"]["code"] == \
        "ErrorAccessDenied"
    # A delta link of one mailbox does not open another.
    link = session.get(url, headers={"Authorization": f"Bearer {good}", "Prefer": "odata.maxpagesize=1000"}
                       ).json()["@odata.deltaLink"]
    foreign = link.replace(str(org.users[0].entra_id), str(org.users[1].entra_id))
    assert session.get(foreign, headers={"Authorization": f"Bearer {good}"}).status_code == 400


def test_select_is_honoured_on_messages_and_the_stand_in_holds_bodies(
        local_graph: LocalGraph, org: Organisation, idp: IdentityProvider,
        http_factory: Callable[[], requests.Session]) -> None:
    session = http_factory()
    token = _graph_token(idp, org.tenant, session)
    base = f"{local_graph.base_url}/v1.0/users/{org.users[1].entra_id}/mailFolders/inbox/messages/delta"
    whole = session.get(base, headers={"Authorization": f"Bearer {token}"}).json()["value"][0]
    assert whole["subject"]
    assert whole["body"]["content"]
    assert whole["bodyPreview"]
    chosen = session.get(f"{base}?$select=sentDateTime", headers={"Authorization": f"Bearer {token}"}).json()
    assert set(chosen["value"][0]) == {"@odata.etag", "id", "sentDateTime"}
    wrong = session.get(f"{base}?$select=nope", headers={"Authorization": f"Bearer {token}"})
    assert wrong.status_code == 400


def test_transitive_members_flatten_nested_groups_over_pages(graph_client: GraphClient, local_graph: LocalGraph,
                                                             org: Organisation, idp: IdentityProvider,
                                                             http_factory: Callable[[], requests.Session]) -> None:
    sales = next(g for g, (name, _) in org.groups.items() if name == "Sales")
    members = graph_client.transitive_member_ids(org.tenant, sales)
    assert members == {u.entra_id for u in org.users[:4]}  # both halves: direct and through "Sales EMEA"
    session = http_factory()
    token = _graph_token(idp, org.tenant, session)
    first = session.get(f"{local_graph.base_url}/v1.0/groups/{sales}/transitiveMembers?$top=2",
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert len(first["value"]) == 2
    assert "$skiptoken=" in first["@odata.nextLink"]
    rest = session.get(first["@odata.nextLink"], headers={"Authorization": f"Bearer {token}"}).json()
    kinds = {m["@odata.type"] for m in first["value"] + rest["value"]}
    assert kinds == {"#microsoft.graph.user", "#microsoft.graph.group"}
    users = graph_client.users(org.tenant)
    assert {u["mail"] for u in users.items} == {u.email for u in org.users}


def test_a_stored_link_to_another_host_is_refused_before_any_call(graph_client: GraphClient,
                                                                  local_graph: LocalGraph,
                                                                  org: Organisation) -> None:
    with pytest.raises(RequestRejected):
        graph_client.mail_delta(org.tenant, "x", "inbox", "https://attacker.example/v1.0/users/x/delta",
                                since=_year(org))
    assert local_graph.calls(org.tenant) == 0
