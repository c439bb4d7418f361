"""What a change of CRM records changes in the per-record aggregates, so that a refresh applies it without
rebuilding the tenant from its activities.

An activity's facts depend only on who is internal (users' addresses), and the records it counts for on the
records' people (SPEC 4.1): a contact's address and account, an account's primary contact and email domains, a
lead's or opportunity's people. So a change is one of:

- nothing the insights read (a version bump, a security role's name): nothing;
- what only the record's own insights show (a name, a lead's state, an opportunity's revenue): those records are
  computed again from their aggregates (an opportunity's also the account's and contacts' risk notices);
- who the record's people are, or an opt-out: the activities about those people (their ledgers' "about" entries)
  are linked again, leaving the records they counted for and entering those they count for now;
- a user's roles, groups or activity: every record, from its aggregates (gates, introducers and departures are
  read at computation time), never from the activities;
- anything whose activities no index names (a new record, a removal, a new address or email domain, a user's
  opt-out or address, an opt-in): a rebuild from the stored activities.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel

from shared.domain.insights.directory import EntityType
from shared.domain.insights.facts import RecordKey
from shared.domain.records import Account, Contact, InternalUser, Lead, Opportunity

_PEOPLE_FIELDS = {
    "contacts": ("account_id",),
    "accounts": ("primary_contact_id",),
    "leads": ("owner_id", "stakeholder_contact_ids"),
    "opportunities": ("owner_id", "sales_team_ids", "customer_contact_id", "stakeholder_contact_ids"),
}
_NEED_REBUILD = {
    "contacts": ("email",),
    "accounts": ("email_domains",),
    "leads": ("email",),
    "users": ("email", "opted_out"),
}
_UNREAD = {"version"}  # what no insight reads
_ENTITY: dict[str, EntityType] = {"accounts": "account", "contacts": "contact", "leads": "lead",
                                  "opportunities": "opportunity"}


@dataclass
class ChangePlan:
    """What a refresh does for the record changes since its mark."""

    rebuild: str | None = None  # why the aggregates must be rebuilt from the activities (None: they need not)
    every_record: bool = False  # every record's insights, from its aggregates
    people: set[RecordKey] = field(default_factory=set)  # whose "about" activities are linked again
    records: set[RecordKey] = field(default_factory=set)  # computed again from their aggregates
    dropped: set[RecordKey] = field(default_factory=set)  # no longer computed (opted out): their insights go

    def add(self, other: ChangePlan) -> None:
        self.rebuild = self.rebuild or other.rebuild
        self.every_record = self.every_record or other.every_record
        self.people |= other.people
        self.records |= other.records
        self.dropped |= other.dropped


def plan_of(changes: Iterable[tuple[str, BaseModel | None, BaseModel | None]]) -> ChangePlan:
    """The plan for some (kind, before, after) changes of records other than activities; `before` None: a new
    record, `after` None: a removed one."""
    plan = ChangePlan()
    for kind, before, after in changes:
        plan.add(_plan(kind, before, after))
        if plan.rebuild:
            break
    return plan


def _plan(kind: str, before: BaseModel | None, after: BaseModel | None) -> ChangePlan:
    if kind == "securityRoles":
        return ChangePlan()  # gates read role ids from the settings and the users, not the roles' names
    if before is None or after is None:
        return ChangePlan(rebuild=f"a {'new' if before is None else 'removed'} record of {kind}")
    changed = {name for name in type(after).model_fields
               if getattr(before, name) != getattr(after, name)} - _UNREAD
    if not changed:
        return ChangePlan()
    if changed & set(_NEED_REBUILD.get(kind, ())):
        return ChangePlan(rebuild=f"a changed {', '.join(sorted(changed & set(_NEED_REBUILD[kind])))} of {kind}")
    if isinstance(after, InternalUser):
        return ChangePlan(every_record=True)
    key: RecordKey = (_ENTITY[kind], after.id)  # type: ignore[attr-defined]
    if "opted_out" in changed:
        if getattr(before, "opted_out", False):
            return ChangePlan(rebuild=f"an opt-in of {kind}: their activities were left out of every aggregate")
        return ChangePlan(people={key}, dropped={key})
    if getattr(after, "opted_out", False):
        return ChangePlan()  # not computed while they opt out, and their activities count nowhere
    plan = ChangePlan(records={key})
    if changed & set(_PEOPLE_FIELDS.get(kind, ())) or (isinstance(after, Contact) and "full_name" in changed):
        # (Others' "most contacted" show a contact's name: the records the contact's activities count for.)
        plan.people |= _people(before) | _people(after)
    if isinstance(after, Opportunity):
        plan.records |= _carrying(before) | _carrying(after)  # their risk notices list its open revenue
    return plan


def _people(record: BaseModel) -> set[RecordKey]:
    """The people whose activities can count for this record: itself (a contact or lead) and its contacts."""
    if isinstance(record, Contact):
        return {("contact", record.id)}
    if isinstance(record, Account):
        return {("contact", record.primary_contact_id)} if record.primary_contact_id else set()
    if isinstance(record, Lead):
        return {("lead", record.id), *(("contact", c) for c in record.stakeholder_contact_ids)}
    if isinstance(record, Opportunity):
        contacts = (record.customer_contact_id, *record.stakeholder_contact_ids)
        return {("contact", c) for c in contacts if c}
    return set()


def _carrying(opportunity: BaseModel) -> set[RecordKey]:
    assert isinstance(opportunity, Opportunity)
    keys: set[RecordKey] = {("contact", c) for c in (opportunity.customer_contact_id,
                                                     *opportunity.stakeholder_contact_ids) if c}
    if opportunity.account_id:
        keys.add(("account", opportunity.account_id))
    return keys
