"""Edge cases of the Graph and Dataverse clients, with `responses` standing in for the network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

from shared.connectors import (
    AccessDenied,
    ChangeTokenExpired,
    RequestRejected,
    RetryPolicy,
    SourceUnavailable,
    SyncStateExpired,
    Throttled,
)
from shared.connectors._http import retry_after_seconds
from shared.connectors.dataverse import DataverseClient, InvalidEnvironmentUrl, validate_environment_url
from shared.connectors.graph import MESSAGE_FIELDS, GraphClient

GRAPH = "https://graph.microsoft.com/v1.0"
ENV = "https://contoso.crm4.dynamics.com"
SINCE = datetime(2025, 6, 1, tzinfo=UTC)


class Tokens:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bool]] = []

    def token(self, tenant: str, scope: str, *, fresh: bool = False) -> str:
        self.calls.append((tenant, scope, fresh))
        return f"token-{len(self.calls)}"


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def graph(tokens: Tokens, sleeps: list[float]) -> GraphClient:
    return GraphClient(tokens, sleep=sleeps.append, retry=RetryPolicy(attempts=3, max_inline_wait=5,
                                                                       default_wait=0.5))


@pytest.fixture
def dataverse(tokens: Tokens, sleeps: list[float]) -> DataverseClient:
    return DataverseClient(tokens, sleep=sleeps.append, page_size=2)


def _delta_url(folder: str = "inbox") -> str:
    return f"{GRAPH}/users/u1/mailFolders/{folder}/messages/delta"


@responses.activate
def test_the_first_mail_call_asks_for_metadata_since_the_backfill_date_only(graph: GraphClient,
                                                                            tokens: Tokens) -> None:
    responses.get(_delta_url(), json={"value": [], "@odata.deltaLink": f"{_delta_url()}?$deltatoken=d1"},
                  match=[matchers.header_matcher({"Prefer": "odata.maxpagesize=100",
                                                  "Authorization": "Bearer token-1"})])
    page = graph.mail_delta("t1", "u1", "inbox", None, since=SINCE)
    query = parse_qs(urlsplit(responses.calls[0].request.url or "").query)
    assert query["$select"] == [",".join(MESSAGE_FIELDS)]
    assert not {"subject", "body", "bodyPreview"} & set(query["$select"][0].split(","))
    assert query["$filter"] == ["receivedDateTime ge 2025-06-01T00:00:00Z"]
    assert page.delta_link == f"{_delta_url()}?$deltatoken=d1"
    assert page.next_link is None
    assert tokens.calls == [("t1", "https://graph.microsoft.com/.default", False)]


@responses.activate
def test_a_stored_link_is_replayed_unchanged_and_pages_are_stripped(graph: GraphClient) -> None:
    link = f"{_delta_url('sentitems')}?$skiptoken=abc%3D%3D"
    responses.get(link, json={"@odata.nextLink": f"{_delta_url('sentitems')}?$skiptoken=next", "value": [
        {"id": "m1", "subject": "private", "bodyPreview": "private", "internetMessageId": "<1@x>"},
        {"id": "m2", "@removed": {"reason": "deleted"}}, "junk", {"no": "id"}]})
    page = graph.mail_delta("t1", "u1", "sentitems", link, since=SINCE)
    assert responses.calls[0].request.url == link
    assert page.items == [{"id": "m1", "internetMessageId": "<1@x>"}]
    assert page.removed_ids == ["m2"]
    assert page.next_link
    assert page.delta_link is None


@responses.activate
def test_calendar_pages_lose_their_bodies_before_anyone_sees_them(graph: GraphClient) -> None:
    responses.get(f"{GRAPH}/users/u1/calendarView/delta", json={"@odata.deltaLink": "x", "value": [
        {"id": "e1", "iCalUId": "i", "subject": "s", "body": {"content": "b"}, "bodyPreview": "p",
         "location": {"displayName": "l"}, "organizer": {"emailAddress": {"name": "n", "address": "a@b.c"}}}]})
    page = graph.calendar_delta("t1", "u1", None, window=(SINCE, SINCE + timedelta(days=90)))
    assert page.items == [{"id": "e1", "iCalUId": "i", "organizer": {"emailAddress": {"address": "a@b.c"}}}]
    query = parse_qs(urlsplit(responses.calls[0].request.url or "").query)
    assert query == {"startDateTime": ["2025-06-01T00:00:00Z"], "endDateTime": ["2025-08-30T00:00:00Z"]}
    with pytest.raises(ValueError, match="window"):
        graph.calendar_delta("t1", "u1", None, window=(SINCE, SINCE))


@responses.activate
def test_retry_after_as_an_http_date_and_a_missing_one(graph: GraphClient, sleeps: list[float]) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    responses.get(_delta_url(), status=429, headers={"Retry-After": when}, json={"error": {"code": "x"}})
    responses.get(_delta_url(), status=503, body="<html>busy</html>")
    responses.get(_delta_url(), json={"value": [], "@odata.deltaLink": "d"})
    graph.mail_delta("t1", "u1", "inbox", None, since=SINCE)
    assert 1.5 < sleeps[0] <= 3
    assert sleeps[1] == 1.0  # no Retry-After: the default wait, growing with the attempt


@responses.activate
def test_network_failures_are_retried_then_source_unavailable(graph: GraphClient, sleeps: list[float]) -> None:
    responses.get(_delta_url(), body=requests.ConnectionError("reset"))
    with pytest.raises(SourceUnavailable) as caught:
        graph.mail_delta("t1", "u1", "inbox", None, since=SINCE)
    assert caught.value.code == "ConnectionError"
    assert len(responses.calls) == 3
    assert sleeps == [0.5, 0.5]


@responses.activate
def test_a_401_gets_one_fresh_token_then_access_denied(graph: GraphClient, tokens: Tokens) -> None:
    responses.get(_delta_url(), status=401, json={"error": {"code": "InvalidAuthenticationToken",
                                                            "message": "Access token has expired"}})
    with pytest.raises(AccessDenied) as caught:
        graph.mail_delta("t1", "u1", "inbox", None, since=SINCE)
    assert [fresh for _, _, fresh in tokens.calls] == [False, True]
    assert caught.value.code == "InvalidAuthenticationToken"
    assert "expired" not in str(caught.value)  # the source's words are never carried


@pytest.mark.parametrize(("status", "body", "error"), [
    (410, {"error": {"code": "SyncStateNotFound"}}, SyncStateExpired),
    (400, {"error": {"code": "SyncStateInvalid"}}, SyncStateExpired),
    (403, {"error": {"code": "ErrorAccessDenied"}}, AccessDenied),
    (400, {"error": {"code": "BadRequest"}}, RequestRejected),
    (404, {"error": {"code": "ErrorInvalidUser"}}, RequestRejected),
    (200, ["not", "an", "object"], SourceUnavailable),
    (200, {"value": []}, RequestRejected),  # neither link: never loop on it
])
@responses.activate
def test_answers_are_classified(graph: GraphClient, status: int, body: Any, error: type[Exception]) -> None:
    responses.get(_delta_url(), status=status, json=body)
    with pytest.raises(error):
        graph.mail_delta("t1", "u1", "inbox", None, since=SINCE)


@responses.activate
def test_throttled_carries_the_wait(graph: GraphClient, sleeps: list[float]) -> None:
    responses.get(_delta_url(), status=429, headers={"Retry-After": "60"}, json={"error": {"code": "x"}})
    with pytest.raises(Throttled) as caught:
        graph.mail_delta("t1", "u1", "inbox", None, since=SINCE)
    assert caught.value.retry_after == 60
    assert sleeps == []


def test_links_elsewhere_and_odd_folders_are_refused_without_a_call(graph: GraphClient, tokens: Tokens) -> None:
    for link in ("http://graph.microsoft.com/v1.0/x", "https://graph.microsoft.com.evil.example/v1.0/x",
                 "https://evil.example/v1.0/users/u1/mailFolders/inbox/messages/delta"):
        with pytest.raises(RequestRejected):
            graph.mail_delta("t1", "u1", "inbox", link, since=SINCE)
    with pytest.raises(ValueError, match="folder"):
        graph.mail_delta("t1", "u1", "drafts", None, since=SINCE)
    with pytest.raises(ValueError, match="zone"):
        graph.mail_delta("t1", "u1", "inbox", None, since=datetime(2025, 1, 1))
    assert tokens.calls == []


@responses.activate
def test_transitive_members_follow_every_page_and_keep_users(graph: GraphClient) -> None:
    first = f"{GRAPH}/groups/g1/transitiveMembers"
    responses.get(first, json={"value": [{"@odata.type": "#microsoft.graph.user", "id": "u1"},
                                         {"@odata.type": "#microsoft.graph.group", "id": "g2"}],
                               "@odata.nextLink": f"{first}?$skiptoken=2"})
    responses.get(f"{first}?$skiptoken=2", json={"value": [{"@odata.type": "#microsoft.graph.user", "id": "u2"},
                                                           {"@odata.type": "#microsoft.graph.device", "id": "d"}]})
    assert graph.transitive_member_ids("t1", "g1") == {"u1", "u2"}


@responses.activate
def test_dataverse_changes_parse_rows_and_deleted_entities(dataverse: DataverseClient, tokens: Tokens) -> None:
    url = f"{ENV}/api/data/v9.2/contacts"
    responses.get(url, match=[matchers.header_matcher({
        "Prefer": 'odata.track-changes,odata.maxpagesize=2,odata.include-annotations='
                  '"Microsoft.Dynamics.CRM.lookuplogicalname"'})], json={
        "@odata.deltaLink": f"{url}?$select=contactid,fullname&$deltatoken=9%2101%2F01%2F2026",
        "value": [{"@odata.etag": 'W/"9"', "contactid": "c1", "fullname": "A", "description": "private",
                   "_x_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account"},
                  {"@odata.context": f"{ENV}/api/data/v9.2/$metadata#contacts/$deletedEntity", "id": "C2",
                   "reason": "deleted"}]})
    page = dataverse.changes("t1", ENV + "/", "contacts", ["contactid", "fullname"], None)
    assert page.rows == [{"contactid": "c1", "fullname": "A"}]
    assert page.deleted_ids == ["c2"]
    assert page.delta_link
    assert tokens.calls == [("t1", f"{ENV}/.default", False)]
    assert parse_qs(urlsplit(responses.calls[0].request.url or "").query) == {"$select": ["contactid,fullname"]}


@responses.activate
def test_dataverse_expired_tokens_and_throttling(dataverse: DataverseClient, sleeps: list[float]) -> None:
    link = f"{ENV}/api/data/v9.2/accounts?$select=name&$deltatoken=1%2101%2F01%2F2020"
    responses.get(link, status=400, json={"error": {"code": "0x80044352", "message": "The change tracking token "
                                                    "has expired. Perform a full synchronization."}})
    with pytest.raises(ChangeTokenExpired):
        dataverse.changes("t1", ENV, "accounts", ["name"], link)
    responses.get(f"{ENV}/api/data/v9.2/roles", status=429, headers={"Retry-After": "2"},
                  json={"error": {"code": "0x80072322"}})
    responses.get(f"{ENV}/api/data/v9.2/roles", json={"value": [], "@odata.deltaLink": "d"})
    assert dataverse.changes("t1", ENV, "roles", ["name"], None).rows == []
    assert sleeps == [2]
    responses.get(f"{ENV}/api/data/v9.2/leads", status=403, json={"error": {"code": "0x80072560"}})
    with pytest.raises(AccessDenied):
        dataverse.changes("t1", ENV, "leads", ["fullname"], None)


def test_dataverse_refuses_foreign_links_and_odd_names(dataverse: DataverseClient) -> None:
    with pytest.raises(RequestRejected):
        dataverse.changes("t1", ENV, "accounts", ["name"], "https://other.crm.dynamics.com/api/data/v9.2/accounts")
    with pytest.raises(RequestRejected):
        dataverse.changes("t1", ENV, "accounts", ["name"], f"{ENV}/somewhere/else")
    for entity_set, select in (("accounts?$filter=x", ["name"]), ("accounts", []), ("accounts", ["na me"])):
        with pytest.raises(ValueError, match="entity set"):
            dataverse.changes("t1", ENV, entity_set, select, None)


@pytest.mark.parametrize(("value", "loopback", "expected"), [
    ("https://contoso.crm.dynamics.com", False, "https://contoso.crm.dynamics.com"),
    ("https://Contoso.CRM4.dynamics.com/", False, "https://contoso.crm4.dynamics.com"),
    ("https://org-1.crm11.dynamics.com:443", False, "https://org-1.crm11.dynamics.com"),
    ("https://127.0.0.1:7074/org1", True, "https://127.0.0.1:7074/org1"),
])
def test_environment_urls_that_pass(value: str, loopback: bool, expected: str) -> None:
    assert validate_environment_url(value, allow_loopback=loopback) == expected


@pytest.mark.parametrize(("value", "loopback"), [
    ("http://contoso.crm.dynamics.com", False), ("https://contoso.crm.dynamics.com.evil.example", False),
    ("https://evil.example/contoso.crm.dynamics.com", False), ("https://user@contoso.crm.dynamics.com", False),
    ("https://contoso.crm.dynamics.com/api", False), ("https://contoso.crm.dynamics.com?x=1", False),
    ("https://contoso.crm.dynamics.com:8443", False), ("https://127.0.0.1:7074/org1", False),
    ("https://10.0.0.1:7074/org1", True), ("https://127.0.0.1:7074/a/b", True), ("not a url", False),
    ("https://-bad.crm.dynamics.com", False), ("https://127.0.0.1:99999/org", True),
])
def test_environment_urls_that_do_not(value: str, loopback: bool) -> None:
    with pytest.raises(InvalidEnvironmentUrl):
        validate_environment_url(value, allow_loopback=loopback)


def test_retry_after_values() -> None:
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds("-3") == 0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past
