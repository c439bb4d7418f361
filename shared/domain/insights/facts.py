"""What one activity contributes to insights, as a compact fact, and which records it belongs to.

A fact is classified once per activity (who is ours, who initiated, the mass-mail discount, an automated
sender) and shared by every record it links to, so a computation costs one classification per activity and a
reference per (record, activity) pair, never a model per pair. Facts are plain lists so that they are stored as
JSON as they are (`ledger` keeps them per record and month).

    [key, id, kind, start µs, completed, origin, initiator, sender side, ours, theirs?, minutes, g, machine,
     thread, our addresses, their addresses]

`origin` is "" for CRM data and the mailbox owner's id for Exchange data: the with-Exchange variant and the
enhanced introducers choose the origins whose gates are open when they are computed, so a role or group
change is a different choice of sums, never a rebuild.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.insights.directory import Directory, EntityType, PeopleOfInterest
from shared.domain.insights.signals import from_a_machine, mass_mail_weight
from shared.domain.records import Activity, ActivityKind, LeadState, OpportunityState, Source

Fact = list[Any]
RecordKey = tuple[EntityType, str]

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

# Field positions in a fact.
KEY, ID, KIND, START, COMPLETED, ORIGIN, INITIATOR, SENDER, OURS, THEIRS, MINUTES, G, MACHINE, THREAD, \
    INTERNAL, EXTERNAL = range(16)
EMAIL, MEETING, CALL, TASK = range(4)
KIND_CODE = {ActivityKind.EMAIL: EMAIL, ActivityKind.APPOINTMENT: MEETING, ActivityKind.PHONE_CALL: CALL,
             ActivityKind.TASK: TASK}
KIND_OF = {code: kind for kind, code in KIND_CODE.items()}
TEAM, CUSTOMER = 0, 1
LINKED, ABOUT = 1, 2  # how an activity concerns a record: it counts for it, it is about its people (introducers)
_SOURCE_NAME = {source: source.value for source in Source}  # (an enum's `.value` is a slow property)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // _US


def moment(value: int) -> datetime:
    return EPOCH + value * _US


DAY_US = 86_400_000_000
_PERIODS: dict[int, str] = {}  # by day since EPOCH (a computation asks once per activity)


def month_of(start_us: int) -> str:
    """The period a fact is kept in: its quarter (`2026Q4`), so that a record's rows hold tens of facts, not a few."""
    day = start_us // DAY_US
    period = _PERIODS.get(day)
    if period is None:
        when = moment(start_us)
        period = _PERIODS[day] = f"{when.year:04d}Q{(when.month - 1) // 3 + 1}"
    return period


def fact_of(directory: Directory, activity: Activity,
            cache: dict[tuple[str | None, tuple[str, ...]], tuple[Any, ...]] | None = None) -> Fact:
    """`cache` lets a pass over many activities classify each set of parties once."""
    parties = activity.parties
    sender = activity.sender
    known = None if cache is None else cache.get((sender, parties))
    if known is None:
        users = directory.users_by_email
        internal = [p for p in parties if p in users]
        external = [p for p in parties if p not in users]
        if sender is None:
            initiator, sender_side = TEAM, 0
        elif sender in users:
            initiator, sender_side = TEAM, 1
        else:
            initiator, sender_side = CUSTOMER, 2
        known = (internal, external, initiator, sender_side, mass_mail_weight(activity), from_a_machine(activity))
        if cache is not None:
            cache[(sender, parties)] = known
    internal, external, initiator, sender_side, g, machine = known
    source = activity.source
    return [f"{_SOURCE_NAME[source]}|{activity.id}", activity.id, KIND_CODE[activity.kind], micros(activity.start),
            activity.completed, activity.mailbox_owner_id or "" if source is Source.EXCHANGE else "",
            initiator, sender_side, len(internal), bool(external), activity.duration_minutes or 0.0,
            g, machine, activity.thread_id or "", internal, external]


@dataclass(frozen=True)
class RecordMeta:
    """What a record's insights need to know of the record itself."""

    entity_type: EntityType
    id: str
    name: str
    applicable: bool
    created_on: datetime | None
    targets: frozenset[str]  # a lead's or contact's address (accounts: their domains' people, found in facts)
    email_domains: tuple[str, ...]


@dataclass
class Linker:
    """The records of a directory, indexed so that linking a fact looks only at records it can concern: by
    party address, by Regarding, by an account's email domain (no scan of the records per activity)."""

    directory: Directory
    records: dict[RecordKey, RecordMeta] = field(default_factory=dict)
    _people: dict[RecordKey, PeopleOfInterest] = field(default_factory=dict)
    _internal_emails: dict[RecordKey, frozenset[str] | None] = field(default_factory=dict)
    _by_email: dict[str, list[RecordKey]] = field(default_factory=lambda: defaultdict(list))
    _about_email: dict[str, list[RecordKey]] = field(default_factory=lambda: defaultdict(list))
    _about_domain: dict[str, list[RecordKey]] = field(default_factory=lambda: defaultdict(list))
    opted_out: frozenset[str] = frozenset()
    _links: dict[tuple[Any, ...], tuple[frozenset[RecordKey], frozenset[RecordKey]]] = field(default_factory=dict)
    _memberships: dict[tuple[Any, ...], tuple[tuple[RecordKey, int], ...]] = field(default_factory=dict)
    classified: dict[tuple[str | None, tuple[str, ...]], tuple[Any, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = self.directory
        self.opted_out = d.opted_out_addresses()
        for key in _record_keys(d):
            meta = _meta(d, *key)
            self.records[key] = meta
            people = d.people_of_interest(*key)
            self._people[key] = people
            self._internal_emails[key] = None if people.internal is None else frozenset(
                d.users[u].email for u in people.internal if u in d.users)
            for email in sorted(people.external):
                self._by_email[email].append(key)
            for target in sorted(meta.targets):
                self._about_email[target].append(key)
            for domain in meta.email_domains:
                self._about_domain[domain].append(key)

    def usable(self, activity: Activity) -> bool:
        """SPEC 4.4: an activity in which someone who opted out takes part is not used at all."""
        return self.opted_out.isdisjoint(activity.parties)

    def links(self, activity: Activity) -> tuple[frozenset[RecordKey], frozenset[RecordKey]]:
        """The records an activity counts for (SPEC 4.1) and those whose introducers it is about (SPEC 4.3).
        They depend only on its parties, whether it is a task and what it regards: computed once per such set."""
        signature = _signature(activity)
        found = self._links.get(signature)
        if found is None:
            found = self._links[signature] = self._link(activity)
        return found

    def memberships(self, activity: Activity) -> tuple[tuple[RecordKey, int], ...]:
        """`links` as each record it concerns with its bits (`LINKED`, `ABOUT`)."""
        signature = _signature(activity)
        found = self._memberships.get(signature)
        if found is None:
            linked, about = self.links(activity)
            found = self._memberships[signature] = tuple(
                (key, (LINKED if key in linked else 0) | (ABOUT if key in about else 0))
                for key in sorted(linked | about))
        return found

    def _link(self, activity: Activity) -> tuple[frozenset[RecordKey], frozenset[RecordKey]]:
        parties = activity.parties
        candidates: set[RecordKey] = set()
        for party in parties:
            candidates.update(self._by_email.get(party, ()))
        linked: set[RecordKey] = set()
        regarding = activity.regarding
        if regarding is not None and (regarding.type, regarding.id) in self.records:
            linked.add((regarding.type, regarding.id))
        if activity.kind is not ActivityKind.TASK and candidates:
            users = self.directory.users_by_email
            party_set = set(parties)
            any_internal = any(p in users for p in parties)
            for key in candidates:
                if key in linked:
                    continue
                internal = self._internal_emails[key]
                if (any_internal if internal is None else bool(party_set & internal)):
                    linked.add(key)
        about: set[RecordKey] = set()
        for party in parties:
            about.update(self._about_email.get(party, ()))
            about.update(self._about_domain.get(party.rpartition("@")[2], ()))
        return frozenset(linked), frozenset(about)


def _signature(activity: Activity) -> tuple[Any, ...]:
    regarding = activity.regarding
    return (activity.parties, activity.kind is ActivityKind.TASK,
            None if regarding is None else (regarding.type, regarding.id))


def _record_keys(directory: Directory) -> Iterable[RecordKey]:
    for account_id in directory.accounts:
        yield "account", account_id
    for contact in directory.contacts.values():
        if not contact.opted_out:
            yield "contact", contact.id
    for lead in directory.leads.values():
        if not lead.opted_out:
            yield "lead", lead.id
    for opportunity_id in directory.opportunities:
        yield "opportunity", opportunity_id


def _meta(directory: Directory, entity_type: EntityType, record_id: str) -> RecordMeta:
    if entity_type == "account":
        account = directory.accounts[record_id]
        return RecordMeta(entity_type, record_id, account.name, True, None, frozenset(), account.email_domains)
    if entity_type == "contact":
        contact = directory.contacts[record_id]
        return RecordMeta(entity_type, record_id, contact.full_name, True, None,
                          frozenset({contact.email} if contact.email else ()), ())
    if entity_type == "lead":
        lead = directory.leads[record_id]
        return RecordMeta(entity_type, record_id, lead.full_name, lead.state is LeadState.ACTIVE, lead.created_on,
                          frozenset({lead.email} if lead.email else ()), ())
    opportunity = directory.opportunities[record_id]
    return RecordMeta(entity_type, record_id, record_id, opportunity.state is OpportunityState.OPEN,
                      opportunity.created_on, frozenset(), ())
