"""A tenant's insights, computed in one pass over its records and activities (SPEC 4): each record in two
variants, CRM data only and with Exchange data when it is usable (see `model` for how reads choose)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from shared.domain.gates import closed_gate, gate_fingerprint
from shared.domain.insights.directory import ENTITY_TYPES, Directory, EntityType
from shared.domain.insights.health import compute_health
from shared.domain.insights.kpis import compute_kpis
from shared.domain.insights.model import RecordInsight, Variant
from shared.domain.insights.who_knows_whom import introducers
from shared.domain.records import Activity, LeadState, OpportunityState, Source
from shared.domain.tenant_settings import TenantSettings


def _name(directory: Directory, entity_type: EntityType, record_id: str) -> str:
    if entity_type == "account":
        return directory.accounts[record_id].name
    if entity_type == "contact":
        return directory.contacts[record_id].full_name
    if entity_type == "lead":
        return directory.leads[record_id].full_name
    return record_id


def _records(directory: Directory) -> Iterable[tuple[EntityType, str]]:
    for entity_type in ENTITY_TYPES:
        if entity_type == "account":
            ids: Iterable[str] = directory.accounts
        elif entity_type == "contact":
            ids = (c.id for c in directory.contacts.values() if not c.opted_out)
        elif entity_type == "lead":
            ids = (lead.id for lead in directory.leads.values() if not lead.opted_out)
        else:
            ids = directory.opportunities
        for record_id in ids:
            yield entity_type, record_id


def link(directory: Directory, activities: Sequence[Activity]) -> dict[tuple[EntityType, str], list[Activity]]:
    """Every record's linked activities, looking only at records an activity can possibly concern."""
    candidates_by_email: dict[str, set[tuple[EntityType, str]]] = defaultdict(set)
    people = {}
    for key in _records(directory):
        poi = directory.people_of_interest(*key)
        people[key] = poi
        for email in poi.external:
            candidates_by_email[email].add(key)
    linked: dict[tuple[EntityType, str], list[Activity]] = defaultdict(list)
    for activity in activities:
        candidates = set().union(*(candidates_by_email.get(p, set()) for p in activity.parties))
        if activity.regarding is not None:
            candidates.add((activity.regarding.type, activity.regarding.id))
        for key in candidates:
            if key in people and directory.linked(key[0], key[1], activity, people[key]):
                linked[key].append(activity)
    return linked


def usable_activities(directory: Directory, settings: TenantSettings, activities: Iterable[Activity]) -> list[Activity]:
    """Read-time gates: Exchange items whose gates closed since ingestion are left out, and so is every activity
    in which a person who opted out takes part (SPEC 4.4: their data is excluded from analytics)."""
    opted_out = directory.opted_out_addresses()
    return [a for a in activities
            if closed_gate(settings, a, directory.users.get(a.mailbox_owner_id or "")) is None
            and not opted_out.intersection(a.parties)]


def of_someone_opted_out(directory: Directory, activities: Iterable[Activity]) -> bool:
    """Whether any of these activities belongs to a person who opted out: one takes part, or it came from their
    mailbox. Their data must not stay stored (SPEC 4.4), even when a connector sends it after the opt-out."""
    addresses = directory.opted_out_addresses()
    owners = {u.id for u in directory.users.values() if u.opted_out}
    return any(addresses.intersection(a.parties) or a.mailbox_owner_id in owners for a in activities)


def touched(directory: Directory, settings: TenantSettings, new: Sequence[Activity]) -> set[tuple[EntityType, str]]:
    """The records whose insights new activities can change: those they link to, and those whose introducers
    they can change (the lead or contact taking part, the account of a party's email domain)."""
    usable = usable_activities(directory, settings, new)
    keys: set[tuple[EntityType, str]] = set(link(directory, usable))
    accounts_at: dict[str, set[str]] = {}  # a domain can be shared (a group's companies, a parent's domain)
    for account in directory.accounts.values():
        for domain in account.email_domains:
            accounts_at.setdefault(domain, set()).add(account.id)
    for activity in usable:
        for party in activity.parties:
            contact = directory.contacts_by_email.get(party)
            if contact is not None:
                keys.add(("contact", contact.id))
            lead = directory.leads_by_email.get(party)
            if lead is not None:
                keys.add(("lead", lead.id))
            keys.update(("account", a) for a in accounts_at.get(party.rpartition("@")[2], ()))
    return keys


def relevant_to(directory: Directory, keys: set[tuple[EntityType, str]],
              activities: Iterable[Activity]) -> list[Activity]:
    """The activities these records' insights can depend on: those with a person of interest of theirs, with
    someone at an account's email domain (its introducers), or regarding one of them. An incremental refresh
    computes from these only."""
    addresses: set[str] = set()
    domains: set[str] = set()
    for entity_type, record_id in keys:
        if directory.record(entity_type, record_id) is None:
            continue
        addresses |= directory.people_of_interest(entity_type, record_id).external
        if entity_type == "account":
            domains |= set(directory.accounts[record_id].email_domains)
    return [a for a in activities
            if (a.regarding is not None and (a.regarding.type, a.regarding.id) in keys)
            or any(p in addresses or p.rpartition("@")[2] in domains for p in a.parties)]


def compute(directory: Directory, settings: TenantSettings, activities: Sequence[Activity], now: datetime,
            previous: dict[tuple[EntityType, str], RecordInsight] | None = None,
            only: set[tuple[EntityType, str]] | None = None) -> list[RecordInsight]:
    """Insights of every record, or of the `only` ones (an incremental refresh)."""
    usable = usable_activities(directory, settings, activities)
    with_exchange = settings.exchange_data_usable
    crm_only = [a for a in usable if a.source is Source.CRM]
    linked_all = link(directory, usable) if with_exchange else {}
    linked_crm = link(directory, crm_only)
    fingerprint = gate_fingerprint(settings)
    by_party_all = _by_party(usable)
    by_party_crm = _by_party(crm_only)
    basic_settings = _basic(settings)
    classified: dict[str, Any] = {}
    results = []
    for key in _records(directory):
        if only is not None and key not in only:
            continue
        entity_type, record_id = key
        before = (previous or {}).get(key)
        crm = _variant(directory, settings, key, linked_crm.get(key, []), before.crm if before else None, now,
                       classified)
        full = (_variant(directory, settings, key, linked_all.get(key, []),
                         before.with_exchange if before else None, now, classified) if with_exchange else None)
        basic = enhanced = None
        targets = _targets(directory, entity_type, record_id, by_party_all)
        if targets:
            basic = introducers(directory, basic_settings, targets, _about(by_party_crm, targets), now)
            enhanced = (introducers(directory, settings, targets, _about(by_party_all, targets), now)
                        if with_exchange else None)
        results.append(RecordInsight(entity_type=entity_type, id=record_id,
                                     name=_name(directory, entity_type, record_id), computed_at=now,
                                     gate_fingerprint=fingerprint, crm=crm, with_exchange=full,
                                     introducers_basic=basic, introducers_enhanced=enhanced,
                                     email_domains=list(directory.accounts[record_id].email_domains)
                                     if entity_type == "account" else []))
    return results


def _variant(directory: Directory, settings: TenantSettings, key: tuple[EntityType, str], items: Sequence[Activity],
             prior: Variant | None, now: datetime, classified: dict[str, Any]) -> Variant:
    options = settings.relationship_analytics
    kpis = compute_kpis(directory, items, now, classified)
    applicable, created_on = _applicability(directory, *key)
    health = compute_health(directory, items, now, applicable=applicable, created_on=created_on,
                            frequency=options.communication_frequency, influence=options.activity_influence,
                            grading=options.grading, response_rate=kpis.customer.response_rate,
                            previous_trend=prior.health.trend if prior else None)
    return Variant(kpis=kpis, health=health)


def _targets(directory: Directory, entity_type: EntityType, record_id: str,
             by_party: dict[str, list[Activity]]) -> frozenset[str]:
    """Whom introducers lead to: the lead or contact, or everyone at an account's email domains."""
    if entity_type == "lead":
        email = directory.leads[record_id].email
        return frozenset({email} if email else set())
    if entity_type == "contact":
        email = directory.contacts[record_id].email
        return frozenset({email} if email else set())
    if entity_type == "account":
        domains = tuple(f"@{d}" for d in directory.accounts[record_id].email_domains)
        return frozenset(a for a in by_party if domains and a.endswith(domains))
    return frozenset()


def _about(by_party: dict[str, list[Activity]], targets: frozenset[str]) -> list[Activity]:
    seen: dict[int, Activity] = {}
    for target in targets:
        for activity in by_party.get(target, []):
            seen[id(activity)] = activity
    return list(seen.values())


def _by_party(activities: Sequence[Activity]) -> dict[str, list[Activity]]:
    index: dict[str, list[Activity]] = defaultdict(list)
    for activity in activities:
        for party in activity.parties:
            index[party].append(activity)
    return index


def _basic(settings: TenantSettings) -> TenantSettings:
    """The same settings seen in basic mode (Exchange not usable), for the CRM-only introducers."""
    return settings.model_copy(update={"exchange": settings.exchange.model_copy(update={"integration_enabled":
                                                                                            False})})


def _applicability(directory: Directory, entity_type: EntityType, record_id: str) -> tuple[bool, datetime | None]:
    if entity_type == "lead":
        lead = directory.leads[record_id]
        return lead.state is LeadState.ACTIVE, lead.created_on
    if entity_type == "opportunity":
        opportunity = directory.opportunities[record_id]
        return opportunity.state is OpportunityState.OPEN, opportunity.created_on
    return True, None
