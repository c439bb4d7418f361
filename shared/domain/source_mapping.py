"""Pure functions from Graph messages and events and Dataverse rows to the camelCase items of `POST /sync/{kind}`
(shared/domain/records.py). Privacy first: every function starts from an allow-list of metadata fields, so a
subject, a body, a preview or any field we do not know is dropped before anything else looks at the item, and
can never be stored or logged.

Decisions:
- An email is one activity however many mailboxes hold it (the sender's Sent Items, each recipient's Inbox):
  its id is a hash of its `internetMessageId` (`m-…`); a meeting's is a hash of its `iCalUId` (`e-…`, distinct
  per occurrence). A message without an internetMessageId falls back to its Graph id (per mailbox).
- `version` grows with every change: Graph's `lastModifiedDateTime` in microseconds since the epoch; Dataverse's
  `versionnumber` (the environment's row version, monotonic), for an activity the greatest of its row's and its
  parties' so that a changed party list counts as a change.
- Drafts, cancelled meetings, series masters and cancelled CRM activities give no item (None).
- Addresses that are not SMTP addresses (Exchange's X.500 `/O=…` names) are dropped; threads are a hash of the
  Graph `conversationId` (`c-…`), of Dataverse's `conversationtrackingid` for CRM emails.
- `inReplyToSentAt` is left out: Graph's metadata does not name the message answered (only headers would,
  and they are not read); the insights derive replies from the thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

MESSAGE_KEEP = frozenset({"id", "internetMessageId", "conversationId", "from", "sender", "toRecipients",
                          "ccRecipients", "sentDateTime", "receivedDateTime", "isDraft", "lastModifiedDateTime",
                          "parentFolderId", "@removed"})
EVENT_KEEP = frozenset({"id", "iCalUId", "start", "end", "isAllDay", "isCancelled", "isDraft", "organizer",
                        "attendees", "lastModifiedDateTime", "type", "seriesMasterId", "@removed"})
GRAPH_SOURCE = "exchange"
CRM_SOURCE = "crm"
LOOKUP = "@Microsoft.Dynamics.CRM.lookuplogicalname"
MAX_PARTIES = 500
CONSUMER_DOMAINS = frozenset({"gmail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com", "icloud.com",
                              "aol.com", "gmx.com", "proton.me", "protonmail.com"})


# -- privacy: the allow-lists ---------------------------------------------------------------------------


def _addresses_only(value: Any) -> Any:
    """A recipient (or list of them) reduced to its address."""
    if isinstance(value, list):
        return [_addresses_only(v) for v in value if isinstance(v, dict)]
    if isinstance(value, dict):
        email = value.get("emailAddress")
        address = email.get("address") if isinstance(email, dict) else None
        out: dict[str, Any] = {"emailAddress": {"address": address if isinstance(address, str) else None}}
        if isinstance(value.get("type"), str):
            out["type"] = value["type"]
        return out
    return None


def strip_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """Only the metadata fields of a Graph message, recipients reduced to addresses."""
    out: dict[str, Any] = {}
    for key in MESSAGE_KEEP:
        if key in message:
            value = message[key]
            out[key] = _addresses_only(value) if key in ("from", "sender", "toRecipients", "ccRecipients") else value
    return out


def strip_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """Only the metadata fields of a Graph event (whose delta always carries the body): times, people, state."""
    out: dict[str, Any] = {}
    for key in EVENT_KEEP:
        if key not in event:
            continue
        value = event[key]
        if key in ("organizer", "attendees"):
            value = _addresses_only(value)
        elif key in ("start", "end") and isinstance(value, dict):
            value = {"dateTime": value.get("dateTime"), "timeZone": value.get("timeZone")}
        out[key] = value
    return out


def strip_row(row: Mapping[str, Any], columns: Iterable[str]) -> dict[str, Any]:
    """Only the named Dataverse columns (and their lookup annotations)."""
    wanted = set(columns)
    return {k: v for k, v in row.items() if k in wanted or (k.endswith(LOOKUP) and k[:-len(LOOKUP)] in wanted)}


# -- values ---------------------------------------------------------------------------------------------


@cache
def _email_adapter() -> Any:
    from pydantic import TypeAdapter

    from shared.domain.records import Email

    return TypeAdapter(Email)


def email_address(value: Any) -> str | None:
    """A valid SMTP address, lower-cased, or None (X.500 names, empty, malformed)."""
    if not isinstance(value, str) or "@" not in value:
        return None
    from pydantic import ValidationError

    try:
        return str(_email_adapter().validate_python(value))
    except ValidationError:
        return None


def _addresses(recipients: Any) -> list[str]:
    found = [email_address((r.get("emailAddress") or {}).get("address")) for r in recipients or []
             if isinstance(r, dict)]
    return list(dict.fromkeys(a for a in found if a))[:MAX_PARTIES]


def parse_time(value: Any, zone: str | None = "UTC") -> datetime | None:
    """Graph and Dataverse times (7 fractional digits allowed, `Z` or an offset); a time without a zone is read
    in `zone` (Graph's events come in UTC unless asked otherwise)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        if zone not in ("UTC", "Etc/UTC", "tzone://Microsoft/Utc", None):
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                moment = moment.replace(tzinfo=ZoneInfo(str(zone)))
            except (ZoneInfoNotFoundError, ValueError):
                return None
        else:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def hashed_id(prefix: str, value: str) -> str:
    """A record id (fits ^[A-Za-z0-9._:-]{1,100}$) standing for a source identifier of any shape."""
    return f"{prefix}-{hashlib.sha256(value.strip().encode()).hexdigest()[:40]}"


def message_activity_id(internet_message_id: str) -> str:
    return hashed_id("m", internet_message_id)


def event_activity_id(ical_uid: str) -> str:
    return hashed_id("e", ical_uid)


def _version(item: Mapping[str, Any]) -> int | None:
    modified = parse_time(item.get("lastModifiedDateTime"))
    return None if modified is None else _micros(modified)


# -- Exchange -------------------------------------------------------------------------------------------


def graph_message(message: Mapping[str, Any], mailbox_owner_id: str) -> dict[str, Any] | None:
    """An email activity from a Graph message of the owner's mailbox, or None (a draft, a removal, unusable)."""
    m = strip_message(message)
    if m.get("isDraft") is True or "@removed" in m or not isinstance(m.get("id"), str):
        return None
    version = _version(m)
    start = parse_time(m.get("sentDateTime")) or parse_time(m.get("receivedDateTime"))
    if version is None or start is None:
        return None
    internet_id = m.get("internetMessageId")
    activity_id = (message_activity_id(internet_id) if isinstance(internet_id, str) and internet_id.strip()
                   else hashed_id("g", f"{mailbox_owner_id}/{m['id']}"))
    sender = _addresses([m.get("from") or m.get("sender")] if m.get("from") or m.get("sender") else [])
    item: dict[str, Any] = {
        "id": activity_id, "version": version, "source": GRAPH_SOURCE, "kind": "email",
        "mailboxOwnerId": mailbox_owner_id, "start": _iso(start), "completed": True,
        "to": _addresses(m.get("toRecipients")), "cc": _addresses(m.get("ccRecipients")),
    }
    if sender:
        item["sender"] = sender[0]
    if isinstance(m.get("conversationId"), str) and m["conversationId"]:
        item["threadId"] = hashed_id("c", m["conversationId"])
    return item


def graph_event(event: Mapping[str, Any], mailbox_owner_id: str, *, now: datetime) -> dict[str, Any] | None:
    """An appointment activity from a Graph event, or None (a draft, cancelled, a series master, unusable)."""
    e = strip_event(event)
    if (e.get("isDraft") is True or e.get("isCancelled") is True or e.get("type") == "seriesMaster"
            or "@removed" in e):
        return None
    version = _version(e)
    start_info, end_info = e.get("start") or {}, e.get("end") or {}
    start = parse_time(start_info.get("dateTime"), start_info.get("timeZone"))
    end = parse_time(end_info.get("dateTime"), end_info.get("timeZone"))
    uid = e.get("iCalUId")
    if version is None or start is None or not isinstance(uid, str) or not uid.strip():
        return None
    attendees = [a for a in e.get("attendees") or [] if isinstance(a, dict)]
    organizer = _addresses([e["organizer"]] if isinstance(e.get("organizer"), dict) else [])
    required = [a for a in _addresses([a for a in attendees if a.get("type", "required") == "required"])
                if a not in organizer]
    optional = [a for a in _addresses([a for a in attendees if a.get("type") == "optional"]) if a not in organizer]
    item: dict[str, Any] = {
        "id": event_activity_id(uid), "version": version, "source": GRAPH_SOURCE, "kind": "appointment",
        "mailboxOwnerId": mailbox_owner_id, "start": _iso(start), "to": required, "optionalAttendees": optional,
        "completed": (end or start) <= now,
    }
    if organizer:
        item["sender"] = organizer[0]
    if end is not None and end >= start:
        item["durationMinutes"] = min(round((end - start).total_seconds() / 60, 1), 60 * 24 * 7)
    return item


# -- Dataverse ------------------------------------------------------------------------------------------

USER_COLUMNS = ("systemuserid", "fullname", "internalemailaddress", "isdisabled", "azureactivedirectoryobjectid",
                "msdyn_gdproptout", "applicationid", "modifiedon", "versionnumber")
ROLE_COLUMNS = ("roleid", "name", "_parentrootroleid_value", "versionnumber")
ASSIGNMENT_COLUMNS = ("systemuserroleid", "systemuserid", "roleid", "versionnumber")  # systemuserrolescollection
ACCOUNT_COLUMNS = ("accountid", "name", "websiteurl", "emailaddress1", "_primarycontactid_value", "versionnumber")
CONTACT_COLUMNS = ("contactid", "fullname", "emailaddress1", "_parentcustomerid_value", "msdyn_gdproptout",
                   "versionnumber")
LEAD_COLUMNS = ("leadid", "fullname", "emailaddress1", "_ownerid_value", "statecode", "createdon",
                "msdyn_gdproptout", "versionnumber")
OPPORTUNITY_COLUMNS = ("opportunityid", "name", "_ownerid_value", "_parentaccountid_value", "_parentcontactid_value",
                       "_customerid_value", "statecode", "createdon", "estimatedvalue", "versionnumber")
CONNECTION_COLUMNS = ("connectionid", "_record1id_value", "_record2id_value", "statecode", "versionnumber")
EMAIL_COLUMNS = ("activityid", "messageid", "conversationtrackingid", "senton", "createdon", "directioncode",
                 "statecode", "_regardingobjectid_value", "versionnumber")
APPOINTMENT_COLUMNS = ("activityid", "scheduledstart", "scheduledend", "scheduleddurationminutes", "statecode",
                       "_regardingobjectid_value", "versionnumber")
PHONECALL_COLUMNS = ("activityid", "actualstart", "scheduledstart", "actualdurationminutes", "directioncode",
                     "statecode", "_regardingobjectid_value", "versionnumber")
PARTY_COLUMNS = ("activitypartyid", "_activityid_value", "_partyid_value", "addressused", "participationtypemask",
                 "versionnumber")
ACTIVITY_COLUMNS = {"emails": EMAIL_COLUMNS, "appointments": APPOINTMENT_COLUMNS, "phonecalls": PHONECALL_COLUMNS}
ACTIVITY_KINDS = {"emails": "email", "appointments": "appointment", "phonecalls": "phoneCall"}
# participationtypemask: 1 sender, 2 to, 3 cc, 4 bcc, 5 required, 6 optional, 7 organizer, 8 regarding, 9 owner
_SENDER, _TO, _CC, _REQUIRED, _OPTIONAL, _ORGANIZER = 1, 2, 3, 5, 6, 7


def _int_version(row: Mapping[str, Any]) -> int | None:
    value = row.get("versionnumber")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _guid(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def dataverse_role(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """A catalogue role, for a root role only (business units' copies are the same role, under its root id)."""
    r = strip_row(row, ROLE_COLUMNS)
    role_id, version, name = _guid(r.get("roleid")), _int_version(r), r.get("name")
    root = _guid(r.get("_parentrootroleid_value")) or role_id
    if role_id is None or version is None or not isinstance(name, str) or not name or root != role_id:
        return None
    return {"id": role_id, "version": version, "name": name[:200]}


def dataverse_user(row: Mapping[str, Any], *, role_ids: Sequence[str] = (), group_ids: Sequence[str] = (),
                   ) -> dict[str, Any] | None:
    """An internal user from a systemuser row; `role_ids` are root role ids (see `dataverse_role`), `group_ids`
    the Entra groups the user belongs to (transitively). Application users and rows without an address give
    None. The id is the systemuserid (what owner and team lookups name)."""
    r = strip_row(row, USER_COLUMNS)
    user_id, version = _guid(r.get("systemuserid")), _int_version(r)
    email = email_address(r.get("internalemailaddress"))
    if user_id is None or version is None or email is None or r.get("applicationid"):
        return None
    user: dict[str, Any] = {
        "id": user_id, "version": version, "email": email, "displayName": str(r.get("fullname") or "")[:200],
        "securityRoleIds": sorted({x.lower() for x in role_ids})[:100],
        "groupIds": sorted({g.lower() for g in group_ids})[:1000],
        "optedOut": r.get("msdyn_gdproptout") is True, "active": r.get("isdisabled") is not True}
    entra = _guid(r.get("azureactivedirectoryobjectid"))
    if entra:
        user["entraObjectId"] = entra
    changed = parse_time(r.get("modifiedon"))
    if r.get("isdisabled") is True and changed is not None:
        user["deactivatedOn"] = _iso(changed)  # the last change of a disabled user: its deactivation, or later
    return user


def _domain(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().lower()
    if "@" in text:
        host = text.rsplit("@", 1)[1]
    else:
        from urllib.parse import urlsplit

        host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    host = host.removeprefix("www.")
    labels = host.split(".")
    if len(labels) < 2 or not all(label and all(c.isalnum() or c == "-" for c in label) for label in labels):
        return None
    return host


def dataverse_account(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """An account; its email domains come from its web site and its main address (consumer mail domains
    excluded)."""
    r = strip_row(row, ACCOUNT_COLUMNS)
    account_id, version = _guid(r.get("accountid")), _int_version(r)
    if account_id is None or version is None:
        return None
    domains = [d for d in (_domain(r.get("websiteurl")), _domain(r.get("emailaddress1")))
               if d and d not in CONSUMER_DOMAINS]
    item: dict[str, Any] = {"id": account_id, "version": version, "name": str(r.get("name") or "")[:200],
                            "emailDomains": list(dict.fromkeys(domains))}
    if _guid(r.get("_primarycontactid_value")):
        item["primaryContactId"] = _guid(r["_primarycontactid_value"])
    return item


def dataverse_contact(row: Mapping[str, Any]) -> dict[str, Any] | None:
    r = strip_row(row, CONTACT_COLUMNS)
    contact_id, version = _guid(r.get("contactid")), _int_version(r)
    if contact_id is None or version is None:
        return None
    item: dict[str, Any] = {"id": contact_id, "version": version, "fullName": str(r.get("fullname") or "")[:200],
                            "optedOut": r.get("msdyn_gdproptout") is True}
    email = email_address(r.get("emailaddress1"))
    if email:
        item["email"] = email
    parent = _guid(r.get("_parentcustomerid_value"))
    if parent and r.get("_parentcustomerid_value" + LOOKUP, "account") == "account":
        item["accountId"] = parent
    return item


def stakeholders(connections: Iterable[Mapping[str, Any]], record_id: str, kind: str) -> list[str]:
    """The ids of the records of `kind` (contact, systemuser) that the record's active connections name."""
    return _stakeholders(connections, record_id, kind)


def connections_version(connections: Iterable[Mapping[str, Any]], record_id: str) -> int:
    return _connections_version(connections, record_id)


def _stakeholders(connections: Iterable[Mapping[str, Any]], record_id: str, kind: str) -> list[str]:
    found = []
    for c in connections:
        c = strip_row(c, CONNECTION_COLUMNS)
        if _guid(c.get("_record1id_value")) == record_id and c.get("statecode", 0) == 0 \
                and c.get("_record2id_value" + LOOKUP) == kind and _guid(c.get("_record2id_value")):
            found.append(_guid(c["_record2id_value"]) or "")
    return sorted(set(found))[:200]


def _connections_version(connections: Iterable[Mapping[str, Any]], record_id: str) -> int:
    versions = [_int_version(c) or 0 for c in connections if _guid(c.get("_record1id_value")) == record_id]
    return max(versions, default=0)


def dataverse_lead(row: Mapping[str, Any], connections: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any] | None:
    """A lead; its stakeholders are the contacts its (active) connections name."""
    r = strip_row(row, LEAD_COLUMNS)
    lead_id, version = _guid(r.get("leadid")), _int_version(r)
    owner, created = _guid(r.get("_ownerid_value")), parse_time(r.get("createdon"))
    if lead_id is None or version is None or owner is None or created is None:
        return None
    links = list(connections)
    state = {0: "active", 1: "qualified", 2: "disqualified"}.get(r.get("statecode"), "active")  # type: ignore[arg-type]
    item: dict[str, Any] = {"id": lead_id, "version": max(version, _connections_version(links, lead_id)),
                            "ownerId": owner, "fullName": str(r.get("fullname") or "")[:200], "state": state,
                            "createdOn": _iso(created), "optedOut": r.get("msdyn_gdproptout") is True,
                            "stakeholderContactIds": _stakeholders(links, lead_id, "contact")}
    email = email_address(r.get("emailaddress1"))
    if email:
        item["email"] = email
    return item


def dataverse_opportunity(row: Mapping[str, Any], connections: Iterable[Mapping[str, Any]] = (),
                          ) -> dict[str, Any] | None:
    """An opportunity; its sales team are the users, its stakeholders the contacts, of its connections."""
    r = strip_row(row, OPPORTUNITY_COLUMNS)
    opportunity_id, version = _guid(r.get("opportunityid")), _int_version(r)
    owner, created = _guid(r.get("_ownerid_value")), parse_time(r.get("createdon"))
    if opportunity_id is None or version is None or owner is None or created is None:
        return None
    links = list(connections)
    state = {0: "open", 1: "won", 2: "lost"}.get(r.get("statecode"), "open")  # type: ignore[arg-type]
    customer, customer_type = _guid(r.get("_customerid_value")), r.get("_customerid_value" + LOOKUP)
    account = _guid(r.get("_parentaccountid_value")) or (customer if customer_type == "account" else None)
    contact = _guid(r.get("_parentcontactid_value")) or (customer if customer_type == "contact" else None)
    item: dict[str, Any] = {
        "id": opportunity_id, "version": max(version, _connections_version(links, opportunity_id)),
        "ownerId": owner, "state": state, "createdOn": _iso(created),
        "salesTeamIds": [u for u in _stakeholders(links, opportunity_id, "systemuser") if u != owner],
        "stakeholderContactIds": _stakeholders(links, opportunity_id, "contact"),
        "name": str(r.get("name") or "")[:200],
    }
    revenue = r.get("estimatedvalue")
    if isinstance(revenue, int | float) and not isinstance(revenue, bool) and 0 <= revenue <= 1e15:
        item["estimatedRevenue"] = float(revenue)
    if account:
        item["accountId"] = account
    if contact:
        item["customerContactId"] = contact
    return item


def dataverse_activity(entity_set: str, row: Mapping[str, Any], parties: Iterable[Mapping[str, Any]], *,
                       now: datetime, address_of: Callable[[str, str], str | None] | None = None,
                       ) -> dict[str, Any] | None:
    """A CRM activity from an email, appointment or phone call row and its activity parties. A party's address
    is the one used on the activity, else `address_of(logical name, id)` (for example a user's or contact's
    main address). Drafts (open emails) and cancelled activities give None."""
    columns = ACTIVITY_COLUMNS.get(entity_set)
    if columns is None:
        raise ValueError(f"not an activity table: {entity_set}")
    r = strip_row(row, columns)
    activity_id, version = _guid(r.get("activityid")), _int_version(r)
    state = r.get("statecode")
    if activity_id is None or version is None or state == 2 or (entity_set == "emails" and state == 0):
        return None
    people = activity_parties(entity_set, activity_id, parties, address_of=address_of)
    version = max(version, people.pop("version"))
    if entity_set == "emails":
        start = parse_time(r.get("senton")) or parse_time(r.get("createdon"))
        duration = None
    elif entity_set == "appointments":
        start = parse_time(r.get("scheduledstart"))
        end = parse_time(r.get("scheduledend"))
        minutes = r.get("scheduleddurationminutes")
        duration = float(minutes) if isinstance(minutes, int | float) else (
            (end - start).total_seconds() / 60 if start and end and end >= start else None)
    else:
        start = parse_time(r.get("actualstart")) or parse_time(r.get("scheduledstart"))
        minutes = r.get("actualdurationminutes")
        duration = float(minutes) if isinstance(minutes, int | float) else None
    if start is None:
        return None
    completed = state == 1 or (entity_set == "appointments" and start + _minutes(duration) <= now)
    item: dict[str, Any] = {
        "id": activity_id, "version": version, "source": CRM_SOURCE, "kind": ACTIVITY_KINDS[entity_set],
        "start": _iso(start), **people, "completed": bool(completed),
    }
    if duration is not None:
        item["durationMinutes"] = min(max(0.0, duration), 60 * 24 * 7)
    regarding, regarding_type = _guid(r.get("_regardingobjectid_value")), r.get("_regardingobjectid_value" + LOOKUP)
    if regarding and regarding_type in ("account", "contact", "lead", "opportunity"):
        item["regarding"] = {"type": regarding_type, "id": regarding}
    thread = r.get("conversationtrackingid")
    if entity_set == "emails" and isinstance(thread, str) and thread:
        item["threadId"] = hashed_id("c", thread)
    return item


def activity_parties(entity_set: str, activity_id: str, parties: Iterable[Mapping[str, Any]], *,
                     address_of: Callable[[str, str], str | None] | None = None) -> dict[str, Any]:
    """Who takes part in a CRM activity, from its activity parties (those of other activities are ignored): the
    item's `sender`, `to`, `cc` and `optionalAttendees`, and `version`, the greatest of the parties' versions
    (0 without parties). A party's address is the one used on the activity, else `address_of(logical name,
    id)`."""
    own = [strip_row(p, PARTY_COLUMNS) for p in parties]
    own = [p for p in own if _guid(p.get("_activityid_value")) == activity_id]

    def addresses(*masks: int) -> list[str]:
        found = []
        for p in own:
            if p.get("participationtypemask") not in masks:
                continue
            address = email_address(p.get("addressused"))
            party, kind = _guid(p.get("_partyid_value")), p.get("_partyid_value" + LOOKUP)
            if address is None and address_of is not None and party and isinstance(kind, str):
                address = email_address(address_of(kind, party))
            if address:
                found.append(address)
        return list(dict.fromkeys(found))[:MAX_PARTIES]

    if entity_set == "emails":
        sender, to, cc, optional = addresses(_SENDER), addresses(_TO), addresses(_CC), []
    elif entity_set == "appointments":
        sender, to, cc, optional = addresses(_ORGANIZER), addresses(_REQUIRED, _TO), [], addresses(_OPTIONAL)
    else:
        sender, to, cc, optional = addresses(_SENDER), addresses(_TO), [], []
    people: dict[str, Any] = {"to": [a for a in to if a not in sender], "cc": cc, "optionalAttendees": optional,
                              "version": max([0, *(_int_version(p) or 0 for p in own)])}
    if sender:
        people["sender"] = sender[0]
    return people


def _minutes(duration: float | None) -> Any:
    from datetime import timedelta

    return timedelta(minutes=duration or 0)


__all__ = ["ACCOUNT_COLUMNS", "ACTIVITY_COLUMNS", "APPOINTMENT_COLUMNS", "ASSIGNMENT_COLUMNS", "CONNECTION_COLUMNS",
           "CONTACT_COLUMNS", "EMAIL_COLUMNS", "EVENT_KEEP", "LEAD_COLUMNS", "MESSAGE_KEEP", "OPPORTUNITY_COLUMNS",
           "PARTY_COLUMNS", "PHONECALL_COLUMNS", "ROLE_COLUMNS", "USER_COLUMNS", "activity_parties",
           "connections_version", "dataverse_account", "dataverse_activity", "dataverse_contact", "dataverse_lead",
           "dataverse_opportunity", "dataverse_role", "dataverse_user", "email_address", "event_activity_id",
           "graph_event", "graph_message", "hashed_id", "message_activity_id", "parse_time", "stakeholders",
           "strip_event", "strip_message", "strip_row"]
