"""Mapping of Graph messages/events and Dataverse rows to sync items: privacy first (no subject, body or preview
in any output, whatever the input's shape), ids and versions, skipped items, edge cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.domain import source_mapping as m
from shared.domain.records import RECORD_KINDS

SECRET = "TOP-SECRET-BODY"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _person(address: str, name: str = SECRET) -> dict[str, Any]:
    return {"emailAddress": {"name": name, "address": address}}


def _message(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": "AAMkAAA=", "internetMessageId": "<abc@fabrikam.com>", "conversationId": "AAQkAD/+=",
        "from": _person("Lee@Fabrikam.com"), "sender": _person("lee@fabrikam.com"),
        "toRecipients": [_person("ann@contoso.com"), _person("/O=EXCHANGELABS/OU=EXCHANGE/CN=RECIPIENTS/CN=BOB")],
        "ccRecipients": [_person("cyd@contoso.com")], "bccRecipients": [_person("secret@contoso.com")],
        "sentDateTime": "2026-05-01T10:00:00Z", "receivedDateTime": "2026-05-01T10:00:03Z", "isDraft": False,
        "lastModifiedDateTime": "2026-05-01T10:00:03.1234567Z", "parentFolderId": "inbox",
        "subject": SECRET, "bodyPreview": SECRET, "body": {"contentType": "html", "content": SECRET},
        "uniqueBody": {"content": SECRET}, "internetMessageHeaders": [{"name": "Subject", "value": SECRET}],
        "flag": {"note": SECRET}, "categories": [SECRET], "unknownFutureField": SECRET,
    }
    message.update(overrides)
    return message


def _event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "AAMkEV=", "iCalUId": "040000008200E00074C5B7101A82E008", "subject": SECRET, "bodyPreview": SECRET,
        "body": {"contentType": "html", "content": SECRET}, "location": {"displayName": SECRET},
        "start": {"dateTime": "2026-05-02T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-05-02T09:45:00.0000000", "timeZone": "UTC"},
        "organizer": _person("ann@contoso.com"),
        "attendees": [{"type": "required", "status": {"response": "accepted"}, **_person("lee@fabrikam.com")},
                      {"type": "optional", **_person("kim@fabrikam.com")},
                      {"type": "required", **_person("ann@contoso.com")},
                      {"type": "resource", **_person("room-1@contoso.com")}],
        "isAllDay": False, "isCancelled": False, "isDraft": False, "type": "singleInstance",
        "lastModifiedDateTime": "2026-04-25T08:00:00.5Z", "onlineMeeting": {"joinUrl": SECRET},
    }
    event.update(overrides)
    return event


def _valid(kind: str, item: dict[str, Any] | None) -> dict[str, Any]:
    assert item is not None
    RECORD_KINDS[kind].model_validate_json(json.dumps(item))
    return item


def _no_secret(value: Any) -> None:
    assert SECRET not in json.dumps(value)


@pytest.mark.parametrize("shape", [
    {}, {"from": None}, {"toRecipients": None}, {"sender": _person("x@y.com"), "from": None},
    {"internetMessageId": None}, {"conversationId": None}, {"sentDateTime": None},
    {"toRecipients": [{"emailAddress": None}, {}, "garbage"]}, {"ccRecipients": [_person("")]},
])
def test_a_message_of_any_shape_gives_metadata_only(shape: dict[str, Any]) -> None:
    stripped = m.strip_message(_message(**shape))
    _no_secret(stripped)
    item = _valid("activities", m.graph_message(_message(**shape), "owner-1"))
    _no_secret(item)
    assert item["source"] == "exchange"
    assert item["kind"] == "email"
    assert item["mailboxOwnerId"] == "owner-1"


def test_a_message_maps_ids_parties_threads_and_versions() -> None:
    item = _valid("activities", m.graph_message(_message(), "owner-1"))
    assert item["id"] == m.message_activity_id("<abc@fabrikam.com>")
    assert item["id"] == _valid("activities", m.graph_message(_message(id="other-copy"), "owner-2"))["id"]
    assert item["sender"] == "lee@fabrikam.com"
    assert item["to"] == ["ann@contoso.com"]  # the X.500 name is not an address
    assert item["cc"] == ["cyd@contoso.com"]
    assert "secret@contoso.com" not in json.dumps(item)  # bcc is never read
    assert item["start"] == "2026-05-01T10:00:00Z"
    assert item["threadId"] == m.hashed_id("c", "AAQkAD/+=")
    assert item["version"] == int(datetime(2026, 5, 1, 10, 0, 3, 123456, tzinfo=UTC).timestamp() * 1_000_000)
    later = m.graph_message(_message(lastModifiedDateTime="2026-05-01T10:00:03.1234580Z"), "owner-1")
    assert later is not None
    assert later["version"] > item["version"]
    assert "inReplyToSentAt" not in item


def test_drafts_removals_and_unusable_messages_give_nothing() -> None:
    assert m.graph_message(_message(isDraft=True), "o") is None
    assert m.graph_message({"id": "x", "@removed": {"reason": "deleted"}}, "o") is None
    assert m.graph_message(_message(lastModifiedDateTime=None), "o") is None
    assert m.graph_message(_message(sentDateTime=None, receivedDateTime=None), "o") is None
    fallback = m.graph_message(_message(internetMessageId=""), "o")
    assert fallback is not None
    assert fallback["id"].startswith("g-")


def test_many_recipients_are_capped_at_what_an_activity_holds() -> None:
    crowd = [_person(f"p{i}@fabrikam.com") for i in range(700)]
    item = _valid("activities", m.graph_message(_message(toRecipients=crowd), "o"))
    assert len(item["to"]) == 500


@pytest.mark.parametrize("shape", [
    {}, {"organizer": None}, {"attendees": None}, {"end": None}, {"body": None},
    {"start": {"dateTime": "2026-05-02T11:00:00", "timeZone": "Europe/Paris"}},
    {"attendees": [{"emailAddress": {"address": "x@y.com"}}, "junk", {"type": "optional"}]},
])
def test_an_event_of_any_shape_gives_metadata_only(shape: dict[str, Any]) -> None:
    _no_secret(m.strip_event(_event(**shape)))
    item = _valid("activities", m.graph_event(_event(**shape), "owner-1", now=NOW))
    _no_secret(item)
    assert item["kind"] == "appointment"


def test_an_event_maps_people_duration_times_and_its_ical_id() -> None:
    item = _valid("activities", m.graph_event(_event(), "owner-1", now=NOW))
    assert item["id"] == m.event_activity_id("040000008200E00074C5B7101A82E008")
    assert item["sender"] == "ann@contoso.com"
    assert item["to"] == ["lee@fabrikam.com"]  # the organizer is not their own attendee; rooms are no people
    assert item["optionalAttendees"] == ["kim@fabrikam.com"]
    assert item["durationMinutes"] == 45
    assert item["completed"] is True
    paris = m.graph_event(_event(start={"dateTime": "2026-05-02T11:00:00", "timeZone": "Europe/Paris"}), "o",
                          now=NOW)
    assert paris is not None
    assert paris["start"] == "2026-05-02T09:00:00Z"
    future = m.graph_event(_event(start={"dateTime": "2026-07-01T09:00:00", "timeZone": "UTC"},
                                  end={"dateTime": "2026-07-01T10:00:00", "timeZone": "UTC"}), "o", now=NOW)
    assert future is not None
    assert future["completed"] is False


@pytest.mark.parametrize("shape", [{"isCancelled": True}, {"isDraft": True}, {"type": "seriesMaster"},
                                   {"iCalUId": None}, {"start": None}, {"@removed": {"reason": "deleted"}}])
def test_cancelled_draft_master_and_broken_events_give_nothing(shape: dict[str, Any]) -> None:
    assert m.graph_event(_event(**shape), "o", now=NOW) is None


def test_ids_fit_the_record_id_pattern_whatever_the_source_id() -> None:
    for raw in ("<a@b>", "x" * 5000, "<ü/\\#?@例え.jp>", " spaced "):
        value = m.hashed_id("m", raw)
        assert len(value) <= 100
        assert all(c.isalnum() or c in "._:-" for c in value)


# -- Dataverse ------------------------------------------------------------------------------------------

LOOKUP = m.LOOKUP


def test_users_roles_and_application_users() -> None:
    row = {"systemuserid": "AAAAAAAA-0000-0000-0000-000000000001", "fullname": "Ann Adams",
           "internalemailaddress": "Ann@Contoso.com", "isdisabled": True, "msdyn_gdproptout": True,
           "azureactivedirectoryobjectid": "x", "versionnumber": 12, "description": SECRET,
           "modifiedon": "2026-11-20T08:00:00Z"}
    user = _valid("users", m.dataverse_user(row, role_ids=["R1", "r1"], group_ids=["G"]))
    assert user["id"] == "aaaaaaaa-0000-0000-0000-000000000001"
    assert user["email"] == "ann@contoso.com"
    assert user["active"] is False
    assert user["deactivatedOn"].startswith("2026-11-20T08:00:00")  # the departure, as far as Dataverse says
    active = m.dataverse_user({**row, "isdisabled": False})
    assert active is not None
    assert "deactivatedOn" not in active
    assert user["optedOut"] is True
    assert user["securityRoleIds"] == ["r1"]
    assert user["groupIds"] == ["g"]
    _no_secret(user)
    assert m.dataverse_user({**row, "applicationid": "app"}) is None
    assert m.dataverse_user({**row, "internalemailaddress": None}) is None
    root = {"roleid": "11111111-0000-0000-0000-000000000000", "name": "Salesperson", "versionnumber": 3,
            "_parentrootroleid_value": "11111111-0000-0000-0000-000000000000"}
    _valid("securityRoles", m.dataverse_role(root))
    assert m.dataverse_role({**root, "_parentrootroleid_value": "22222222-0000-0000-0000-000000000000"}) is None


def test_accounts_contacts_leads_and_opportunities() -> None:
    account = _valid("accounts", m.dataverse_account({
        "accountid": "a1", "name": "Fabrikam", "websiteurl": "https://www.Fabrikam.com/en", "versionnumber": 5,
        "emailaddress1": "info@fabrikam.co.uk", "_primarycontactid_value": "c1", "description": SECRET}))
    assert account["emailDomains"] == ["fabrikam.com", "fabrikam.co.uk"]
    assert account["primaryContactId"] == "c1"
    _no_secret(account)
    gmail = m.dataverse_account({"accountid": "a2", "name": "X", "emailaddress1": "boss@gmail.com",
                                 "websiteurl": "not a url", "versionnumber": 1})
    assert gmail is not None
    assert gmail["emailDomains"] == []
    contact = _valid("contacts", m.dataverse_contact({
        "contactid": "c1", "fullname": "Lee", "emailaddress1": "bad", "_parentcustomerid_value": "c9",
        "_parentcustomerid_value" + LOOKUP: "contact", "versionnumber": 2, "msdyn_gdproptout": True}))
    assert "email" not in contact
    assert "accountId" not in contact  # a contact's parent contact is no account
    assert contact["optedOut"] is True
    links = [{"connectionid": "k1", "_record1id_value": "o1", "_record2id_value": "u2",
              "_record2id_value" + LOOKUP: "systemuser", "statecode": 0, "versionnumber": 40},
             {"connectionid": "k2", "_record1id_value": "o1", "_record2id_value": "c1",
              "_record2id_value" + LOOKUP: "contact", "statecode": 0, "versionnumber": 41},
             {"connectionid": "k3", "_record1id_value": "o1", "_record2id_value": "c2",
              "_record2id_value" + LOOKUP: "contact", "statecode": 1, "versionnumber": 42}]
    opportunity = _valid("opportunities", m.dataverse_opportunity({
        "opportunityid": "o1", "_ownerid_value": "u1", "_customerid_value": "c3",
        "_customerid_value" + LOOKUP: "contact", "_parentaccountid_value": "a1", "statecode": 1,
        "createdon": "2026-01-01T00:00:00Z", "versionnumber": 7, "name": "Renewal", "estimatedvalue": 1200.5},
        links))
    assert (opportunity["name"], opportunity["estimatedRevenue"]) == ("Renewal", 1200.5)
    assert opportunity["salesTeamIds"] == ["u2"]
    assert opportunity["stakeholderContactIds"] == ["c1"]  # the inactive connection does not count
    assert opportunity["customerContactId"] == "c3"
    assert opportunity["accountId"] == "a1"
    assert opportunity["state"] == "won"
    assert opportunity["version"] == 42  # a changed connection is a change of the opportunity
    lead = _valid("leads", m.dataverse_lead({
        "leadid": "l1", "_ownerid_value": "u1", "statecode": 2, "createdon": "2026-01-01T00:00:00Z",
        "emailaddress1": "lead@fabrikam.com", "versionnumber": 3}, []))
    assert lead["state"] == "disqualified"
    assert m.dataverse_lead({"leadid": "l2", "versionnumber": 1}) is None


def _parties(activity: str, *people: tuple[int, str | None, str]) -> list[dict[str, Any]]:
    return [{"activitypartyid": f"p{i}", "_activityid_value": activity, "participationtypemask": mask,
             "addressused": address, "_partyid_value": f"id-{i}", "_partyid_value" + LOOKUP: kind,
             "versionnumber": 100 + i} for i, (mask, address, kind) in enumerate(people)]


def test_crm_activities_with_their_parties() -> None:
    email_row = {"activityid": "E1", "senton": "2026-05-01T10:00:00Z", "statecode": 1, "versionnumber": 50,
                 "_regardingobjectid_value": "o1", "_regardingobjectid_value" + LOOKUP: "opportunity",
                 "conversationtrackingid": "t-1", "subject": SECRET, "description": SECRET}
    parties = _parties("e1", (1, "ann@contoso.com", "systemuser"), (2, "lee@fabrikam.com", "contact"),
                       (3, None, "contact"), (4, "bcc@fabrikam.com", "contact"))
    item = _valid("activities", m.dataverse_activity("emails", email_row, parties, now=NOW,
                                                     address_of=lambda kind, _: "kim@fabrikam.com"))
    _no_secret(item)
    assert item["sender"] == "ann@contoso.com"
    assert item["to"] == ["lee@fabrikam.com"]
    assert item["cc"] == ["kim@fabrikam.com"]  # from the contact's own address
    assert "bcc@fabrikam.com" not in json.dumps(item)
    assert item["regarding"] == {"type": "opportunity", "id": "o1"}
    assert item["version"] == 103  # its newest party
    assert item["source"] == "crm"
    assert m.dataverse_activity("emails", {**email_row, "statecode": 0}, parties, now=NOW) is None  # a draft
    meeting = _valid("activities", m.dataverse_activity("appointments", {
        "activityid": "a1", "scheduledstart": "2026-07-01T10:00:00Z", "scheduledend": "2026-07-01T10:30:00Z",
        "statecode": 3, "versionnumber": 9, "_regardingobjectid_value": "x",
        "_regardingobjectid_value" + LOOKUP: "incident"}, _parties(
        "a1", (7, "ann@contoso.com", "systemuser"), (5, "lee@fabrikam.com", "contact"),
        (6, "kim@fabrikam.com", "contact")), now=NOW))
    assert meeting["durationMinutes"] == 30
    assert meeting["completed"] is False
    assert meeting["optionalAttendees"] == ["kim@fabrikam.com"]
    assert "regarding" not in meeting  # a case is not a record we follow
    call = _valid("activities", m.dataverse_activity("phonecalls", {
        "activityid": "c1", "actualstart": "2026-05-01T10:00:00Z", "actualdurationminutes": 12, "statecode": 1,
        "versionnumber": 4, "phonenumber": SECRET}, _parties("c1", (1, "lee@fabrikam.com", "contact"),
                                                             (2, "ann@contoso.com", "systemuser")), now=NOW))
    _no_secret(call)
    assert call["kind"] == "phoneCall"
    assert call["sender"] == "lee@fabrikam.com"
    assert m.dataverse_activity("phonecalls", {"activityid": "c2", "statecode": 2, "versionnumber": 1,
                                               "actualstart": "2026-05-01T10:00:00Z"}, [], now=NOW) is None
    with pytest.raises(ValueError, match="activity"):
        m.dataverse_activity("tasks", {}, [], now=NOW)


def test_times_of_every_shape() -> None:
    assert m.parse_time("2026-05-01T10:00:00.1234567Z") == datetime(2026, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert m.parse_time("2026-05-01T12:00:00+02:00") == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert m.parse_time("2026-05-01T10:00:00") == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert m.parse_time("2026-05-01T10:00:00", "Not/AZone") is None
    assert m.parse_time("yesterday") is None
    assert m.parse_time(None) is None
