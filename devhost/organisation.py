"""A deterministic, realistic organisation for the local Graph and the local Dataverse (dev and tests only).

`generate(tenant)` makes sellers with Entra ids, Dataverse security roles (one held through a business unit's
copy of a root role) and Entra groups (nested, plus an opt-out group); customer accounts with domains,
contacts, leads, opportunities with sales teams and stakeholders (Dataverse connections); and a year of
interactions: email threads with replies in both directions, meetings, phone calls, some CRM-tracked emails
and appointments, a monthly newsletter to many contacts and automated mail. `load()` puts the same
organisation into both stand-ins: each email in the sender's Sent Items and every internal recipient's Inbox,
each meeting in the organizer's and every internal attendee's calendar (one iCalUId), every message and event
with a subject, a body and a preview. The same arguments (and `now`) always give the same data.

After loading, `send_email`, `change_email`, `delete_email`, `schedule_meeting` and `cancel_meeting` change
the mailboxes the way mail flow would, for tests such as "a new email shows after the next round".
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devhost.dataverse import LOOKUP, LocalDataverse
from devhost.graph import LocalGraph, graph_time
from devhost.seed import COMPANIES, FIRST, LAST
from shared.domain.security_roles import STANDARD_SALES_ROLES

ROLE_IDS = {r.name: r.id for r in STANDARD_SALES_ROLES}
TOPICS = ["Pricing for the renewal", "Next steps on the pilot", "Contract redlines", "Quarterly review",
          "Security questionnaire", "Budget approval", "Roll-out plan", "Invoice question", "Support escalation"]


@dataclass
class Person:
    name: str
    email: str
    entra_id: str | None = None  # internal users only
    systemuser_id: str | None = None
    contact_id: str | None = None

    @property
    def internal(self) -> bool:
        return self.entra_id is not None


@dataclass
class Email:
    internet_message_id: str
    conversation_id: str
    sender: Person
    to: list[Person]
    cc: list[Person]
    sent: datetime
    subject: str
    body: str


@dataclass
class Meeting:
    ical_uid: str
    organizer: Person
    required: list[Person]
    optional: list[Person]
    start: datetime
    minutes: int
    subject: str
    body: str


@dataclass
class Organisation:
    tenant: str
    domain: str
    now: datetime
    environment: str
    users: list[Person]
    groups: dict[str, tuple[str, list[str]]]
    dataverse: dict[str, list[dict[str, Any]]]
    emails: list[Email]
    meetings: list[Meeting]
    # where each email and meeting was put: id -> [(mailbox Entra id, folder or "calendar", Graph item id)]
    copies: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    environment_url: str | None = None
    _counter: int = 0

    def user(self, email: str) -> Person:
        return next(u for u in self.users if u.email == email)

    def next_number(self) -> int:
        self._counter += 1
        return self._counter


def _guid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(str(p) for p in parts)))


def generate(tenant: str, *, sellers: int = 8, accounts: int = 16, seed: int = 7, now: datetime | None = None,
             days: int = 365, environment: str | None = None) -> Organisation:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    now = now or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    domain = "contoso.com"
    dv: dict[str, list[dict[str, Any]]] = {name: [] for name in (
        "systemusers", "roles", "systemuserrolescollection", "accounts", "contacts", "leads", "opportunities",
        "connections", "emails", "appointments", "phonecalls", "activityparties")}
    root_bu, child_bu = _guid(tenant, "bu", "root"), _guid(tenant, "bu", "emea")
    for role in STANDARD_SALES_ROLES:
        dv["roles"].append({"roleid": role.id, "name": role.name, "_parentrootroleid_value": role.id,
                            "_businessunitid_value": root_bu})
    emea_salesperson = _guid(tenant, "role", "emea-salesperson")
    dv["roles"].append({"roleid": emea_salesperson, "name": "Salesperson",
                        "_parentrootroleid_value": ROLE_IDS["Salesperson"], "_businessunitid_value": child_bu})

    users: list[Person] = []
    for i in range(sellers + 1):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        marketing = i == sellers
        person = Person(f"{first} {last}", f"{first.lower()}.{last.lower()}@{domain}", _guid(tenant, "aad", i),
                        _guid(tenant, "systemuser", i))
        users.append(person)
        role_name = "Marketing Manager" if marketing else "Sales Manager" if i == 0 else "Salesperson"
        role_id = emea_salesperson if role_name == "Salesperson" and i % 2 else ROLE_IDS[role_name]
        dv["systemusers"].append({
            "systemuserid": person.systemuser_id, "fullname": person.name, "internalemailaddress": person.email,
            "isdisabled": i == sellers - 1 and sellers > 3, "azureactivedirectoryobjectid": person.entra_id,
            "msdyn_gdproptout": False, "accessmode": 0, "_businessunitid_value": child_bu if i % 2 else root_bu})
        dv["systemuserrolescollection"].append({"systemuserroleid": _guid(tenant, "sur", i),
                                                "systemuserid": person.systemuser_id, "roleid": role_id})
    sales = users[:sellers]
    marketer = users[sellers]
    groups = {
        _guid(tenant, "group", "emea"): ("Sales EMEA", [u.entra_id or "" for u in sales[1::2]]),
        _guid(tenant, "group", "optout"): ("Relationship insights opt-out", [sales[-1].entra_id or ""]),
    }
    groups[_guid(tenant, "group", "sales")] = ("Sales", [_guid(tenant, "group", "emea"),
                                                         *[u.entra_id or "" for u in sales[0::2]]])

    org = Organisation(tenant, domain, now, environment or f"org{tenant.replace('-', '')[:10]}", users, groups, dv,
                       [], [])
    everyone_external: list[Person] = []
    for a in range(accounts):
        company = COMPANIES[a % len(COMPANIES)] + ("" if a < len(COMPANIES) else f" {a // len(COMPANIES) + 1}")
        company_domain = company.lower().replace(" ", "") + ".com"
        account_id = _guid(tenant, "account", a)
        contacts: list[Person] = []
        for c in range(rng.randint(2, 5)):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            contact = Person(f"{first} {last}", f"{first.lower()}.{last.lower()}{c}@{company_domain}",
                             contact_id=_guid(tenant, "contact", a, c))
            contacts.append(contact)
            dv["contacts"].append({
                "contactid": contact.contact_id, "fullname": contact.name, "emailaddress1": contact.email,
                "_parentcustomerid_value": account_id, "_parentcustomerid_value" + LOOKUP: "account",
                "statecode": 0, "msdyn_gdproptout": c == 4, "telephone1": f"+33 1 00 00 {a:02d} {c:02d}",
                "description": f"Private notes about {contact.name}"})
        everyone_external += contacts
        dv["accounts"].append({
            "accountid": account_id, "name": company, "websiteurl": f"https://www.{company_domain}",
            "emailaddress1": f"info@{company_domain}", "_primarycontactid_value": contacts[0].contact_id,
            "_primarycontactid_value" + LOOKUP: "contact", "statecode": 0, "msdyn_gdproptout": False,
            "telephone1": "+33 1 00 00 00 00", "description": f"Account plan for {company}"})
        owner = sales[a % len(sales)]
        team = [u for u in rng.sample(sales, k=min(2, len(sales))) if u is not owner]
        opportunity_id = _guid(tenant, "opportunity", a)
        dv["opportunities"].append({
            "opportunityid": opportunity_id, "name": f"{company} expansion", "_ownerid_value": owner.systemuser_id,
            "_ownerid_value" + LOOKUP: "systemuser", "_parentaccountid_value": account_id,
            "_parentaccountid_value" + LOOKUP: "account", "_parentcontactid_value": contacts[-1].contact_id,
            "_parentcontactid_value" + LOOKUP: "contact", "_customerid_value": account_id,
            "_customerid_value" + LOOKUP: "account", "statecode": rng.choice([0, 0, 0, 1, 2]),
            "createdon": _dv(now - timedelta(days=rng.randint(30, days))), "msdyn_gdproptout": False,
            "estimatedvalue": 25_000.0 * (a + 1), "description": f"Deal notes for {company}"})
        for member in team:
            dv["connections"].append(_connection(tenant, opportunity_id, "opportunity", member.systemuser_id or "",
                                                 "systemuser"))
        for stakeholder in contacts[1:2]:
            dv["connections"].append(_connection(tenant, opportunity_id, "opportunity",
                                                 stakeholder.contact_id or "", "contact"))
        lead_first, lead_last = rng.choice(FIRST), rng.choice(LAST)
        lead = Person(f"{lead_first} {lead_last}", f"{lead_first.lower()}.{lead_last.lower()}@{company_domain}")
        lead_id = _guid(tenant, "lead", a)
        dv["leads"].append({
            "leadid": lead_id, "fullname": lead.name, "emailaddress1": lead.email, "companyname": company,
            "_ownerid_value": owner.systemuser_id, "_ownerid_value" + LOOKUP: "systemuser",
            "statecode": rng.choice([0, 0, 1]), "createdon": _dv(now - timedelta(days=rng.randint(10, 200))),
            "msdyn_gdproptout": False, "description": f"Lead notes for {lead.name}"})
        dv["connections"].append(_connection(tenant, lead_id, "lead", contacts[0].contact_id or "", "contact"))

        cadence = rng.choice([3, 7, 7, 14, 30, 60])
        reply_rate = rng.uniform(0.2, 0.9)
        day = days
        while day > -14:
            day -= max(1, int(rng.expovariate(1 / cadence)))
            start = now - timedelta(days=day, hours=rng.randint(0, 9), minutes=rng.randint(0, 59))
            seller = rng.choice([owner, *team])
            customer = rng.choice(contacts) if rng.random() < 0.85 else lead
            channel = rng.choices(["mail", "meeting", "call", "crm-mail", "crm-meeting"], [6, 2, 2, 1, 1])[0]
            regarding = (opportunity_id, "opportunity") if rng.random() < 0.3 else (account_id, "account")
            topic = rng.choice(TOPICS)
            if channel == "mail" and start <= now:
                first_mail = _email(org, seller, [customer], start, f"{topic} ({company})",
                                    cc=[team[0]] if team and team[0] is not seller and rng.random() < 0.3 else [])
                moment = start
                for turn in range(rng.randint(0, 4)):
                    if rng.random() > reply_rate:
                        break
                    moment += timedelta(hours=rng.uniform(0.5, 72))
                    if moment > now:
                        break
                    author, reader = (customer, seller) if turn % 2 == 0 else (seller, customer)
                    _email(org, author, [reader], moment, f"RE: {topic} ({company})",
                           conversation=first_mail.conversation_id)
            elif channel == "meeting":
                attendees = [customer, *([team[0]] if team and team[0] is not seller else [])]
                optional = [c for c in contacts if c is not customer][:1] if rng.random() < 0.4 else []
                org.meetings.append(Meeting(_guid(tenant, "ical", len(org.meetings)), seller, attendees, optional,
                                            start, rng.choice([30, 45, 60]), f"{topic}: {company}",
                                            f"Agenda for {company}: confidential figures"))
            elif channel == "call" and start <= now:
                caller, callee = (seller, customer) if rng.random() < 0.7 else (customer, seller)
                _crm_activity(org, "phonecalls", caller, [callee], start, regarding,
                              minutes=rng.choice([5, 10, 20]), topic=topic, seller=seller, customer=customer)
            elif channel == "crm-mail" and start <= now:
                _crm_activity(org, "emails", seller, [customer], start, regarding, topic=topic, seller=seller,
                              customer=customer)
            elif channel == "crm-meeting":
                _crm_activity(org, "appointments", seller, [customer], start, regarding, minutes=45, topic=topic,
                              seller=seller, customer=customer)
    # Mass mail: a monthly newsletter from marketing to many contacts, and automated notifications.
    for month in range(12):
        sent = now - timedelta(days=30 * month + 3, hours=2)
        readers = rng.sample(everyone_external, k=min(30, len(everyone_external)))
        _email(org, marketer, readers, sent, f"Contoso newsletter #{12 - month}", cc=[])
        robot = Person("Contoso billing", "noreply@billing.example")
        _email(org, robot, sales[:3], sent + timedelta(hours=1), "Your monthly statement")
    return org


def _connection(tenant: str, record1: str, type1: str, record2: str, type2: str) -> dict[str, Any]:
    return {"connectionid": _guid(tenant, "connection", record1, record2), "_record1id_value": record1,
            "_record1id_value" + LOOKUP: type1, "_record2id_value": record2, "_record2id_value" + LOOKUP: type2,
            "_record2roleid_value": None, "statecode": 0}


def _dv(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _email(org: Organisation, sender: Person, to: list[Person], sent: datetime, subject: str, *,
           cc: list[Person] | None = None, conversation: str | None = None) -> Email:
    number = org.next_number()
    email = Email(f"<{_guid(org.tenant, 'msg', number)[:18]}.{number}@{sender.email.split('@')[1]}>",
                  conversation or "AAQk" + hashlib.sha256(f"{org.tenant}/conv/{number}".encode()).hexdigest()[:40],
                  sender, to, cc or [], sent, subject,
                  f"Hello, about {subject}: our offer is 12,500 EUR (message {number}, confidential).")
    org.emails.append(email)
    return email


def _crm_activity(org: Organisation, entity_set: str, sender: Person, to: list[Person], start: datetime,
                  regarding: tuple[str, str], *, topic: str, seller: Person, customer: Person,
                  minutes: int | None = None) -> None:
    number = org.next_number()
    activity_id = _guid(org.tenant, entity_set, number)
    row: dict[str, Any] = {"activityid": activity_id, "subject": f"{topic} (call {number})",
                           "description": f"Notes: the customer mentioned a budget of {number} k EUR",
                           "statecode": 1, "_regardingobjectid_value": regarding[0],
                           "_regardingobjectid_value" + LOOKUP: regarding[1],
                           "_ownerid_value": seller.systemuser_id, "_ownerid_value" + LOOKUP: "systemuser"}
    if entity_set == "emails":
        row.update(messageid=f"<crm.{number}@{org.domain}>", senton=_dv(start), createdon=_dv(start),
                   directioncode=sender.internal, statuscode=3, conversationtrackingid=_guid(org.tenant, "ct", number))
        types = (1, 2)
    elif entity_set == "appointments":
        row.update(scheduledstart=_dv(start), scheduledend=_dv(start + timedelta(minutes=minutes or 30)),
                   scheduleddurationminutes=minutes, location="Teams",
                   statecode=1 if start <= org.now else 3)
        types = (7, 5)
    else:
        row.update(actualstart=_dv(start), scheduledstart=_dv(start), actualdurationminutes=minutes,
                   directioncode=sender.internal, phonenumber="+33 1 00 00 00 00")
        types = (1, 2)
    org.dataverse[entity_set].append(row)
    for person, mask in [(sender, types[0]), *((p, types[1]) for p in to)]:
        party_type, party_id = (("systemuser", person.systemuser_id) if person.internal else
                                ("contact", person.contact_id) if person.contact_id else ("", None))
        org.dataverse["activityparties"].append({
            "activitypartyid": _guid(org.tenant, "party", activity_id, person.email, mask),
            "_activityid_value": activity_id, "_partyid_value": party_id,
            **({"_partyid_value" + LOOKUP: party_type} if party_id else {}),
            "addressused": person.email, "participationtypemask": mask})


# -- loading and changing -----------------------------------------------------------------------------


def load(org: Organisation, graph: LocalGraph | None, dataverse: LocalDataverse | None, *,
         application_id: str) -> None:
    """Puts the organisation into the stand-ins (either may be None); sets `org.environment_url`."""
    if graph is not None:
        for user in org.users:
            graph.add_user(org.tenant, {"id": user.entra_id, "displayName": user.name, "mail": user.email,
                                        "userPrincipalName": user.email, "givenName": user.name.split()[0],
                                        "surname": user.name.split()[1], "jobTitle": "Account executive"})
        for group_id, (name, members) in org.groups.items():
            graph.add_group(org.tenant, group_id, name, members)
        for email in org.emails:
            _deliver(graph, org, email)
        for meeting in org.meetings:
            _invite(graph, org, meeting)
    if dataverse is not None:
        url = dataverse.add_environment(org.tenant, org.environment, application_ids=(application_id,))
        org.environment_url = url
        for entity_set, rows in org.dataverse.items():
            for row in rows:
                dataverse.put(url, entity_set, row)


def _address(person: Person) -> dict[str, Any]:
    return {"emailAddress": {"name": person.name, "address": person.email}}


def _deliver(graph: LocalGraph, org: Organisation, email: Email) -> None:
    received = email.sent + timedelta(seconds=3)
    message = {
        "internetMessageId": email.internet_message_id, "conversationId": email.conversation_id,
        "conversationIndex": "AQHZ" + email.conversation_id[-12:], "subject": email.subject,
        "body": {"contentType": "html", "content": f"<html><body><p>{email.body}</p></body></html>"},
        "bodyPreview": email.body[:255], "uniqueBody": {"contentType": "html", "content": email.body},
        "from": _address(email.sender), "sender": _address(email.sender),
        "toRecipients": [_address(p) for p in email.to], "ccRecipients": [_address(p) for p in email.cc],
        "bccRecipients": [], "replyTo": [], "sentDateTime": graph_time(email.sent),
        "receivedDateTime": graph_time(received), "createdDateTime": graph_time(email.sent), "isDraft": False,
        "hasAttachments": False, "importance": "normal", "categories": [], "flag": {"flagStatus": "notFlagged"},
        "inferenceClassification": "focused", "isDeliveryReceiptRequested": False, "isReadReceiptRequested": False,
        "webLink": "https://outlook.office365.com/owa/?ItemID=local",
    }
    copies = org.copies.setdefault(email.internet_message_id, [])
    if email.sender.internal:
        item = graph.put_message(org.tenant, email.sender.entra_id or "", "sentitems",
                                 {**message, "isRead": True}, modified=email.sent)
        copies.append((email.sender.entra_id or "", "sentitems", item))
    for reader in dict.fromkeys(p.email for p in [*email.to, *email.cc]):
        person = next((u for u in org.users if u.email == reader), None)
        if person is not None and person is not email.sender:
            item = graph.put_message(org.tenant, person.entra_id or "", "inbox",
                                     {**message, "isRead": email.sent < org.now - timedelta(days=1)},
                                     modified=received)
            copies.append((person.entra_id or "", "inbox", item))


def _invite(graph: LocalGraph, org: Organisation, meeting: Meeting) -> None:
    end = meeting.start + timedelta(minutes=meeting.minutes)
    attendees = [{"type": kind, "status": {"response": "accepted", "time": graph_time(meeting.start)},
                  **_address(p)} for kind, people in (("required", meeting.required), ("optional", meeting.optional))
                 for p in people]
    event = {
        "iCalUId": meeting.ical_uid, "subject": meeting.subject,
        "body": {"contentType": "html", "content": f"<p>{meeting.body}</p>"}, "bodyPreview": meeting.body,
        "start": {"dateTime": meeting.start.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"},
        "organizer": _address(meeting.organizer), "attendees": attendees, "isAllDay": False, "isCancelled": False,
        "isDraft": False, "type": "singleInstance", "seriesMasterId": None, "showAs": "busy",
        "location": {"displayName": "Teams"}, "isOnlineMeeting": True, "sensitivity": "normal",
        "createdDateTime": graph_time(meeting.start - timedelta(days=7)),
        "originalStartTimeZone": "UTC", "originalEndTimeZone": "UTC", "reminderMinutesBeforeStart": 15,
    }
    copies = org.copies.setdefault(meeting.ical_uid, [])
    created = meeting.start - timedelta(days=7)
    if meeting.organizer.internal:
        item = graph.put_event(org.tenant, meeting.organizer.entra_id or "", {**event, "isOrganizer": True},
                               modified=created)
        copies.append((meeting.organizer.entra_id or "", "calendar", item))
    for person in [*meeting.required, *meeting.optional]:
        if person.internal and person is not meeting.organizer:
            item = graph.put_event(org.tenant, person.entra_id or "", {**event, "isOrganizer": False},
                                   modified=created)
            copies.append((person.entra_id or "", "calendar", item))


def send_email(graph: LocalGraph, org: Organisation, sender: str, to: list[str], *, cc: list[str] | None = None,
               at: datetime | None = None, subject: str = "Following up", reply_to: str | None = None) -> str:
    """Mail flow for a new email (addresses of users or contacts); returns its internetMessageId."""
    def person(address: str) -> Person:
        return next((u for u in org.users if u.email == address), None) or Person(address, address)

    conversation = next((e.conversation_id for e in org.emails if e.internet_message_id == reply_to), None)
    email = _email(org, person(sender), [person(a) for a in to], at or datetime.now(UTC), subject,
                   cc=[person(a) for a in cc or []], conversation=conversation)
    _deliver(graph, org, email)
    return email.internet_message_id


def change_email(graph: LocalGraph, org: Organisation, internet_message_id: str, **changes: Any) -> None:
    """Changes every copy (for example `isRead=True` or new `categories`)."""
    for mailbox, folder, item in org.copies[internet_message_id]:
        graph.update_message(org.tenant, mailbox, folder, item, **changes)


def delete_email(graph: LocalGraph, org: Organisation, internet_message_id: str,
                 mailbox: str | None = None) -> list[str]:
    """Deletes the copies (of one mailbox, or all); returns the Graph ids deleted."""
    deleted = []
    for owner, folder, item in list(org.copies[internet_message_id]):
        if mailbox is None or owner == mailbox:
            graph.delete_message(org.tenant, owner, folder, item)
            org.copies[internet_message_id].remove((owner, folder, item))
            deleted.append(item)
    return deleted


def schedule_meeting(graph: LocalGraph, org: Organisation, organizer: str, attendees: list[str], start: datetime,
                     *, minutes: int = 30, subject: str = "Catch-up") -> str:
    """A new meeting in every internal calendar; returns its iCalUId."""
    def person(address: str) -> Person:
        return next((u for u in org.users if u.email == address), None) or Person(address, address)

    meeting = Meeting(_guid(org.tenant, "ical", "new", org.next_number()), person(organizer),
                      [person(a) for a in attendees], [], start, minutes, subject, f"Agenda: {subject} (private)")
    org.meetings.append(meeting)
    _invite(graph, org, meeting)
    return meeting.ical_uid


def cancel_meeting(graph: LocalGraph, org: Organisation, ical_uid: str) -> None:
    """The organizer deletes the meeting: it leaves every calendar."""
    for mailbox, _, item in org.copies.pop(ical_uid):
        graph.delete_event(org.tenant, mailbox, item)


__all__ = ["Email", "Meeting", "Organisation", "Person", "cancel_meeting", "change_email", "delete_email",
           "generate", "load", "schedule_meeting", "send_email"]
