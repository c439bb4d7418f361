"""A tenant's CRM data, indexed for the insight rules: who is internal, who belongs to which record."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.domain.records import Account, Activity, Contact, InternalUser, Lead, Opportunity, OpportunityState
from shared.domain.vocabulary import ENTITY_TYPES, EntityType

__all__ = ["ENTITY_TYPES", "Directory", "EntityType", "PeopleOfInterest"]

@dataclass(frozen=True)
class PeopleOfInterest:
    internal: frozenset[str] | None  # user ids; None means "any internal user"
    external: frozenset[str]  # email addresses


@dataclass
class Directory:
    users: dict[str, InternalUser] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    leads: dict[str, Lead] = field(default_factory=dict)
    opportunities: dict[str, Opportunity] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.users_by_email = {u.email: u for u in self.users.values()}
        self.contacts_by_email = {c.email: c for c in self.contacts.values() if c.email}
        self.leads_by_email = {lead.email: lead for lead in self.leads.values() if lead.email}
        self.account_contacts: dict[str, list[Contact]] = defaultdict(list)
        for contact in self.contacts.values():
            if contact.account_id:
                self.account_contacts[contact.account_id].append(contact)
        # The open opportunities each account and contact (customer or stakeholder) carries.
        self.open_opportunities: dict[tuple[str, str], list[Opportunity]] = defaultdict(list)
        for o in self.opportunities.values():
            if o.state is OpportunityState.OPEN:
                for key in {("account", o.account_id or ""), ("contact", o.customer_contact_id or ""),
                            *(("contact", c) for c in o.stakeholder_contact_ids)}:
                    if key[1]:
                        self.open_opportunities[key].append(o)

    @classmethod
    def of(cls, users: Iterable[InternalUser] = (), accounts: Iterable[Account] = (),
           contacts: Iterable[Contact] = (), leads: Iterable[Lead] = (),
           opportunities: Iterable[Opportunity] = ()) -> Directory:
        return cls({u.id: u for u in users}, {a.id: a for a in accounts}, {c.id: c for c in contacts},
                   {lead.id: lead for lead in leads}, {o.id: o for o in opportunities})

    def record(self, entity_type: EntityType, record_id: str) -> Account | Contact | Lead | Opportunity | None:
        if entity_type == "account":
            return self.accounts.get(record_id)
        if entity_type == "contact":
            return self.contacts.get(record_id)
        if entity_type == "lead":
            return self.leads.get(record_id)
        return self.opportunities.get(record_id)

    def opted_out_addresses(self) -> frozenset[str]:
        users = {u.email for u in self.users.values() if u.opted_out}
        contacts = {c.email for c in self.contacts.values() if c.opted_out and c.email}
        leads = {lead.email for lead in self.leads.values() if lead.opted_out and lead.email}
        return frozenset(users | contacts | leads)

    def is_internal(self, address: str) -> bool:
        return address in self.users_by_email

    def contact_email(self, contact_id: str | None) -> str | None:
        contact = self.contacts.get(contact_id or "")
        return contact.email if contact else None

    def people_of_interest(self, entity_type: EntityType, record_id: str) -> PeopleOfInterest:
        """SPEC 4.1, step 1."""
        if entity_type == "account":
            account = self.accounts[record_id]
            emails = {c.email for c in self.account_contacts.get(record_id, []) if c.email}
            primary = self.contact_email(account.primary_contact_id)
            return PeopleOfInterest(None, frozenset(emails | ({primary} if primary else set())))
        if entity_type == "contact":
            email = self.contacts[record_id].email
            return PeopleOfInterest(None, frozenset({email} if email else set()))
        if entity_type == "lead":
            lead = self.leads[record_id]
            emails = {e for e in (self.contact_email(c) for c in lead.stakeholder_contact_ids) if e}
            return PeopleOfInterest(frozenset({lead.owner_id}), frozenset(emails | ({lead.email} if lead.email
                                                                                    else set())))
        opportunity = self.opportunities[record_id]
        # The account's primary contact is a person of interest too, but only through Regarding: the product's
        # worked example counts a meeting with them for the account and the contact, not for the opportunity.
        emails = {e for e in (self.contact_email(c) for c in (opportunity.customer_contact_id,
                                                              *opportunity.stakeholder_contact_ids)) if e}
        return PeopleOfInterest(frozenset({opportunity.owner_id, *opportunity.sales_team_ids}), frozenset(emails))

    def linked(self, entity_type: EntityType, record_id: str, activity: Activity,
               people: PeopleOfInterest | None = None) -> bool:
        """SPEC 4.1, step 2: whether an activity counts for a record."""
        regarding = activity.regarding
        if regarding is not None and regarding.type == entity_type and regarding.id == record_id:
            return True
        if activity.kind.value == "task":
            return False  # tasks count only through Regarding: they have no external parties
        people = people or self.people_of_interest(entity_type, record_id)
        parties = set(activity.parties)
        if not parties & people.external:
            return False  # the account's primary contact, for an opportunity, counts only through Regarding
        if people.internal is None:
            return any(self.is_internal(p) for p in parties)
        internal_emails = {self.users[u].email for u in people.internal if u in self.users}
        return bool(parties & internal_emails)
