"""The Dataverse client against the local Dataverse, over HTTPS on loopback, with app-only tokens for the
environment from the local identity provider: change tracking, deletions, expired change tokens, throttling,
and the stand-in's checks of audience, tenant and application user."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests

from devhost.dataverse import LocalDataverse
from devhost.idp import IdentityProvider
from devhost.organisation import Organisation
from shared.connectors import AccessDenied, ChangeTokenExpired, SyncStateExpired, Throttled
from shared.connectors.dataverse import ChangePage, DataverseClient
from shared.domain import source_mapping as m
from shared.domain.records import RECORD_KINDS
from tests.conftest import CLIENT_ID, CLIENT_SECRET

pytestmark = pytest.mark.integration


def _round(client: DataverseClient, org: Organisation, entity_set: str, columns: tuple[str, ...],
           link: str | None = None) -> tuple[list[ChangePage], str]:
    pages = []
    while True:
        page = client.changes(org.tenant, org.environment_url or "", entity_set, columns, link)
        pages.append(page)
        if page.delta_link:
            return pages, page.delta_link
        assert page.next_link
        link = page.next_link


def _token(idp: IdentityProvider, tenant: str, session: requests.Session, resource: str) -> str:
    answer = session.post(f"{idp.base_url}/{tenant}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "scope": f"{resource}/.default"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _valid(kind: str, item: dict[str, object] | None) -> None:
    assert item is not None
    RECORD_KINDS[kind].model_validate_json(json.dumps(item))  # as the sync path reads it


def test_a_first_round_reads_every_row_then_a_delta_link_gives_changes_and_deletions_last(
        dataverse_client: DataverseClient, local_dataverse: LocalDataverse, org: Organisation) -> None:
    url = org.environment_url or ""
    pages, _ = _round(dataverse_client, org, "activityparties", m.PARTY_COLUMNS)
    rows = [r for p in pages for r in p.rows]
    assert len(pages) > 2
    assert all(len(p.rows) <= 20 for p in pages)
    assert all(p.delta_link is None for p in pages[:-1])
    assert len(rows) == len({r["activitypartyid"] for r in rows}) == len(local_dataverse.rows(url, "activityparties"))
    assert all(set(r) <= {*m.PARTY_COLUMNS, *(c + m.LOOKUP for c in m.PARTY_COLUMNS)} for r in rows)

    contacts, contacts_link = _round(dataverse_client, org, "contacts", m.CONTACT_COLUMNS)
    first, second, third = (r["contactid"] for r in contacts[0].rows[:3])
    local_dataverse.delete(url, "contacts", first)
    local_dataverse.update(url, "contacts", second, fullname="Renamed Person")
    new = local_dataverse.put(url, "contacts", {"fullname": "New Person", "emailaddress1": "new@fabrikam.com",
                                                "msdyn_gdproptout": False})
    page = dataverse_client.changes(org.tenant, url, "contacts", m.CONTACT_COLUMNS, contacts_link)
    assert [r["contactid"] for r in page.rows] == [second, new]  # by version, deletions after
    assert page.deleted_ids == [first]
    assert page.delta_link is not None
    assert page.delta_link != contacts_link
    renamed = m.dataverse_contact(page.rows[0])
    _valid("contacts", renamed)
    assert renamed is not None
    assert renamed["fullName"] == "Renamed Person"
    assert renamed["version"] > next(m.dataverse_contact(r)["version"] for r in contacts[0].rows  # type: ignore[index]
                                     if r["contactid"] == second)
    # Replayed later, the old link gives the same changes again; the new one gives nothing.
    again = dataverse_client.changes(org.tenant, url, "contacts", m.CONTACT_COLUMNS, contacts_link)
    assert [r["contactid"] for r in again.rows] == [second, new]
    quiet = dataverse_client.changes(org.tenant, url, "contacts", m.CONTACT_COLUMNS, page.delta_link)
    assert quiet.rows == []
    assert quiet.deleted_ids == []
    assert third not in page.deleted_ids


def test_an_expired_change_token_means_a_full_round(dataverse_client: DataverseClient,
                                                    local_dataverse: LocalDataverse, org: Organisation) -> None:
    url = org.environment_url or ""
    _, link = _round(dataverse_client, org, "accounts", m.ACCOUNT_COLUMNS)
    local_dataverse.expire_change_tokens(url)
    with pytest.raises(ChangeTokenExpired) as caught:
        dataverse_client.changes(org.tenant, url, "accounts", m.ACCOUNT_COLUMNS, link)
    assert isinstance(caught.value, SyncStateExpired)  # one handler for both sources: restart the round
    pages, fresh = _round(dataverse_client, org, "accounts", m.ACCOUNT_COLUMNS)
    assert len([r for p in pages for r in p.rows]) == len(local_dataverse.rows(url, "accounts"))
    assert dataverse_client.changes(org.tenant, url, "accounts", m.ACCOUNT_COLUMNS, fresh).rows == []


def test_a_change_token_older_than_seven_days_is_refused(dataverse_client: DataverseClient,
                                                         local_dataverse: LocalDataverse, org: Organisation) -> None:
    _, link = _round(dataverse_client, org, "leads", m.LEAD_COLUMNS)
    original = local_dataverse.clock
    local_dataverse.clock = lambda: datetime.now(UTC) + timedelta(days=8)
    try:
        with pytest.raises(ChangeTokenExpired):
            dataverse_client.changes(org.tenant, org.environment_url or "", "leads", m.LEAD_COLUMNS, link)
    finally:
        local_dataverse.clock = original


def test_track_changes_refuses_filter_orderby_expand_and_top(local_dataverse: LocalDataverse, org: Organisation,
                                                             idp: IdentityProvider,
                                                             http_factory: Callable[[], requests.Session]) -> None:
    session = http_factory()
    url = org.environment_url or ""
    token = _token(idp, org.tenant, session, url)
    headers = {"Authorization": f"Bearer {token}", "Prefer": "odata.track-changes"}
    for option in ("$filter=statecode eq 0", "$orderby=name", "$expand=primarycontactid", "$top=5"):
        answer = session.get(f"{url}/api/data/v9.2/accounts?$select=name&{option}", headers=headers)
        assert answer.status_code == 400, option
        assert "isn't supported when Change Tracking is enabled" in answer.json()["error"]["message"]
    plain = session.get(f"{url}/api/data/v9.2/accounts?$select=name&$filter=statecode eq 0&$top=2",
                        headers={"Authorization": f"Bearer {token}"})
    assert plain.status_code == 200
    assert len(plain.json()["value"]) == 2
    assert "@odata.deltaLink" not in plain.json()


def test_throttling_is_waited_out_then_handed_back(dataverse_client: DataverseClient,
                                                   local_dataverse: LocalDataverse, org: Organisation,
                                                   sleeps: list[float]) -> None:
    local_dataverse.fail_next(429, "0x80072322", "Number of requests exceeded the limit of 6000 over time window "
                              "of 300 seconds.", tenant=org.tenant, retry_after=0.25, times=2)
    assert dataverse_client.changes(org.tenant, org.environment_url or "", "roles", m.ROLE_COLUMNS, None).rows
    assert sleeps == [0.25, 0.25]
    local_dataverse.fail_next(429, "0x80072322", tenant=org.tenant, retry_after=300)
    with pytest.raises(Throttled) as caught:
        dataverse_client.changes(org.tenant, org.environment_url or "", "roles", m.ROLE_COLUMNS, None)
    assert caught.value.retry_after == 300
    assert local_dataverse.calls(org.tenant, "roles") == 4


def test_tokens_must_be_for_this_environment_its_tenant_and_an_application_user(
        dataverse_client: DataverseClient, local_dataverse: LocalDataverse, org: Organisation,
        idp: IdentityProvider, http_factory: Callable[[], requests.Session]) -> None:
    session = http_factory()
    url = org.environment_url or ""
    target = f"{url}/api/data/v9.2/accounts?$select=name"
    graph = _token(idp, org.tenant, session, "https://graph.microsoft.com")
    answer = session.get(target, headers={"Authorization": f"Bearer {graph}"})
    assert answer.status_code == 401
    assert "resource_id=" in answer.headers["WWW-Authenticate"]
    other_env = local_dataverse.add_environment(org.tenant, f"other{uuid.uuid4().hex[:8]}",
                                                application_ids=(CLIENT_ID,))
    assert session.get(target, headers={"Authorization": f"Bearer {_token(idp, org.tenant, session, other_env)}"}
                       ).status_code == 401
    # Another tenant's token for this environment's URL: not this environment's tenant.
    stranger = str(uuid.uuid4())
    idp.grants.grant(stranger, CLIENT_ID, [])
    assert session.get(target, headers={"Authorization": f"Bearer {_token(idp, stranger, session, url)}"}
                       ).status_code == 401
    # No application user for our app in an environment: 403, and the client says access is denied.
    bare = local_dataverse.add_environment(org.tenant, f"bare{uuid.uuid4().hex[:8]}")
    with pytest.raises(AccessDenied) as caught:
        dataverse_client.changes(org.tenant, bare, "accounts", m.ACCOUNT_COLUMNS, None)
    assert caught.value.status == 403
    assert caught.value.code == "0x80072560"
    # The token carries no roles: what an application user may do lives in Dataverse.
    assert "roles" not in jwt.decode(_token(idp, org.tenant, session, url),
                                                   options={"verify_signature": False})


def test_everything_the_organisation_holds_maps_to_items_the_sync_path_accepts(
        dataverse_client: DataverseClient, local_dataverse: LocalDataverse, org: Organisation) -> None:
    def read(entity_set: str, columns: tuple[str, ...]) -> list[dict[str, object]]:
        return [r for p in _round(dataverse_client, org, entity_set, columns)[0] for r in p.rows]

    url = org.environment_url or ""
    roles = read("roles", m.ROLE_COLUMNS)
    catalogue = [x for x in (m.dataverse_role(r) for r in roles) if x]
    assert len(catalogue) == len(roles) - 1  # the business unit's copy of Salesperson is the same role
    root_of = {str(r["roleid"]): str(r["_parentrootroleid_value"]) for r in roles}
    holders: dict[str, set[str]] = {}
    for role in roles:
        link: str | None = None
        while True:
            members, link = dataverse_client.page(
                org.tenant, url, f"roles({role['roleid']})/systemuserroles_association", ["systemuserid"], link)
            for member in members:
                holders.setdefault(str(member["systemuserid"]), set()).add(root_of[str(role["roleid"])])
            if not link:
                break
    users = [m.dataverse_user(r, role_ids=sorted(holders.get(str(r["systemuserid"]), ())))
             for r in read("systemusers", m.USER_COLUMNS)]
    assert sum(u is None for u in users) == 1  # the application user is no seller
    for user in users:
        if user:
            _valid("users", user)
            assert user["securityRoleIds"]
    for entity_set, columns, kind, make in (("accounts", m.ACCOUNT_COLUMNS, "accounts", m.dataverse_account),
                                            ("contacts", m.CONTACT_COLUMNS, "contacts", m.dataverse_contact)):
        for row in read(entity_set, columns):
            _valid(kind, make(row))  # type: ignore[operator]
    connections = read("connections", m.CONNECTION_COLUMNS)
    opportunities = [m.dataverse_opportunity(r, connections) for r in read("opportunities", m.OPPORTUNITY_COLUMNS)]
    for item in opportunities:
        _valid("opportunities", item)
    assert any(o and o["salesTeamIds"] for o in opportunities)
    assert all(o and o["stakeholderContactIds"] for o in opportunities)
    for lead in read("leads", m.LEAD_COLUMNS):
        _valid("leads", m.dataverse_lead(lead, connections))
    parties = read("activityparties", m.PARTY_COLUMNS)
    by_activity: dict[str, list[dict[str, object]]] = {}
    for party in parties:
        by_activity.setdefault(str(party["_activityid_value"]), []).append(party)
    private = {str(r[k]) for s in ("emails", "appointments", "phonecalls") for r in local_dataverse.rows(url, s)
               for k in ("subject", "description")}
    for entity_set in ("emails", "appointments", "phonecalls"):
        rows = read(entity_set, m.ACTIVITY_COLUMNS[entity_set])
        assert rows
        for row in rows:
            item = m.dataverse_activity(entity_set, row, by_activity.get(str(row["activityid"]), []),
                                        now=org.now)
            _valid("activities", item)
            assert item is not None
            assert item["sender"]
            assert item["to"]
            assert not private & {str(v) for v in item.values()}
            assert "subject" not in row
            assert "description" not in row


def test_the_identity_provider_issues_environment_tokens_only_for_dataverse_hosts(
        idp: IdentityProvider, org: Organisation, http_factory: Callable[[], requests.Session]) -> None:
    session = http_factory()
    claims = jwt.decode(_token(idp, org.tenant, session, "https://contoso.crm4.dynamics.com"),
                                      options={"verify_signature": False})
    assert claims["aud"] == "https://contoso.crm4.dynamics.com"
    assert claims["appid"] == CLIENT_ID
    assert claims["uti"]
    for scope in ("https://evil.example/.default", "https://contoso.crm4.dynamics.com/user_impersonation",
                  "https://graph.microsoft.com/.default https://contoso.crm.dynamics.com/.default"):
        answer = session.post(f"{idp.base_url}/{org.tenant}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "scope": scope})
        assert answer.status_code == 400, scope
        assert answer.json()["error"] in ("invalid_scope", "invalid_resource")
    never = session.post(f"{idp.base_url}/{uuid.uuid4()}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "scope": f"{org.environment_url}/.default"})
    assert "AADSTS700016" in never.json()["error_description"]  # no service principal there, no token
