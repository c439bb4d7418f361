"""A deterministic, realistic tenant: sellers with roles, customer accounts with contacts, leads, opportunities
and a year of emails, meetings, calls and tasks from the CRM and from Exchange mailboxes.

The same arguments (and the same `now`, by default today at 00:00 UTC) always give the same data. Items are in
the sync API's shape (camelCase)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.security_roles import STANDARD_SALES_ROLES

ROLE = {r.name: r.id for r in STANDARD_SALES_ROLES}
FIRST = ["Ann", "Bob", "Cyd", "Dan", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lou", "Max", "Ned", "Oda",
         "Pam", "Raj", "Sue", "Tom", "Uma", "Vic", "Wes", "Xia", "Yan", "Zoe"]
LAST = ["Adams", "Brown", "Chen", "Diaz", "Evans", "Garcia", "Hill", "Ito", "Jones", "Khan", "Lopez", "Moreau",
        "Novak", "Olsen", "Patel", "Quinn", "Rossi", "Smith", "Tanaka", "Umar"]
COMPANIES = ["Fabrikam", "Contoso Pharma", "Northwind", "Tailspin", "Wingtip", "Litware", "Adatum", "Proseware",
             "Woodgrove", "Coho", "Lucerne", "Margie", "Alpine", "Fourth Coffee", "Humongous", "Relecloud"]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def generate(*, accounts: int = 20, sellers: int = 8, seed: int = 7, now: datetime | None = None,
             days: int = 365) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    now = now or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    users: list[dict[str, Any]] = []
    for i in range(sellers):
        name = f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]}"
        role = ROLE["Sales Manager"] if i == 0 else ROLE["Salesperson"] if i % 4 else ROLE["Marketing Manager"]
        users.append({"id": f"user-{i}", "version": 1, "email": f"{name.split()[0].lower()}{i}@contoso.com",
                      "displayName": name, "securityRoleIds": [role]})
    records: dict[str, list[dict[str, Any]]] = {"users": users, "accounts": [], "contacts": [], "leads": [],
                                                "opportunities": [], "activities": []}
    activity_id = 0

    def activity(kind: str, sender: str, to: list[str], start: datetime, **extra: Any) -> None:
        nonlocal activity_id
        activity_id += 1
        source = "exchange" if rng.random() < 0.5 and kind in ("email", "appointment") else "crm"
        owner = next((u["id"] for u in users if u["email"] in (sender, *to)), users[0]["id"])
        item = {"id": f"act-{activity_id}", "version": 1, "source": source, "kind": kind, "sender": sender,
                "to": to, "start": _iso(start), "completed": start <= now, **extra}
        if source == "exchange":
            item["mailboxOwnerId"] = owner
        records["activities"].append(item)

    for a in range(accounts):
        company = COMPANIES[a % len(COMPANIES)] + ("" if a < len(COMPANIES) else f" {a // len(COMPANIES) + 1}")
        domain = company.lower().replace(" ", "") + ".com"
        contacts: list[dict[str, Any]] = []
        for c in range(rng.randint(2, 5)):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = f"{first.lower()}.{last.lower()}{c}@{domain}"
            contact: dict[str, Any] = {"id": f"contact-{a}-{c}", "version": 1, "email": email,
                                       "fullName": f"{first} {last}", "accountId": f"account-{a}"}
            contacts.append(contact)
        records["contacts"] += contacts
        records["accounts"].append({"id": f"account-{a}", "version": 1, "name": company,
                                    "primaryContactId": contacts[0]["id"], "emailDomains": [domain]})
        owner: dict[str, Any] = users[a % sellers]
        team = [u for u in rng.sample(users, k=min(2, sellers)) if u is not owner]
        created = now - timedelta(days=rng.randint(min(30, days), max(30, days)))
        records["opportunities"].append({
            "id": f"opp-{a}", "version": 1, "ownerId": owner["id"], "salesTeamIds": [u["id"] for u in team],
            "customerContactId": contacts[-1]["id"], "stakeholderContactIds": [c["id"] for c in contacts[1:2]],
            "accountId": f"account-{a}", "state": rng.choice(["open", "open", "open", "won", "lost"]),
            "createdOn": _iso(created)})
        lead_first, lead_last = rng.choice(FIRST), rng.choice(LAST)
        lead_email = f"{lead_first.lower()}.{lead_last.lower()}@{domain}"
        records["leads"].append({
            "id": f"lead-{a}", "version": 1, "ownerId": owner["id"],
            "email": lead_email, "fullName": f"{lead_first} {lead_last}",
            "stakeholderContactIds": [contacts[0]["id"]], "state": rng.choice(["active", "active", "qualified"]),
            "createdOn": _iso(now - timedelta(days=rng.randint(10, 200)))})

        # How warm this relationship is: from weekly to almost silent, with replies more or less often.
        cadence = rng.choice([3, 7, 7, 14, 30, 60])
        reply_rate = rng.uniform(0.2, 0.9)
        day = days
        while day > -14:
            day -= max(1, int(rng.expovariate(1 / cadence)))
            start = now - timedelta(days=day, hours=rng.randint(0, 9), minutes=rng.randint(0, 59))
            seller = rng.choice([owner, *team])
            contact = rng.choice(contacts) if rng.random() < 0.85 else {"email": lead_email}
            kind = rng.choices(["email", "appointment", "phoneCall", "task"], [6, 2, 2, 1])[0]
            thread = f"thread-{activity_id + 1}"
            if kind == "email":
                activity("email", seller["email"], [contact["email"]], start, threadId=thread,
                         regarding={"type": "opportunity", "id": f"opp-{a}"} if rng.random() < 0.3 else None)
                if rng.random() < reply_rate:
                    activity("email", contact["email"], [seller["email"]],
                             start + timedelta(hours=rng.uniform(0.5, 72)), threadId=thread)
            elif kind == "appointment":
                attendees = [contact["email"], *(u["email"] for u in team[:1])]
                activity("appointment", seller["email"], attendees, start, durationMinutes=rng.choice([30, 45, 60]))
            elif kind == "phoneCall":
                caller, callee = ((seller["email"], contact["email"]) if rng.random() < 0.7
                                  else (contact["email"], seller["email"]))
                activity("phoneCall", caller, [callee], start, durationMinutes=rng.choice([5, 10, 20]))
            else:
                activity("task", seller["email"], [], start, durationMinutes=15,
                         regarding={"type": "account", "id": f"account-{a}"})
    for item in records["activities"]:
        if item.get("regarding") is None:
            item.pop("regarding", None)
    return records
