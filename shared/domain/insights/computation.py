"""A tenant's insights computed from scratch over its activities (SPEC 4): each record in two variants, CRM data
only and with Exchange data when it is usable (see `model` for how reads choose).

This is the reference the per-record aggregates are held to: it builds every record's ledger from the
activities in one pass (one classification per activity, a reference per (record, activity) pair) and calls the
same `ledger.insight` the incremental path calls, so both give the same answer field by field."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from shared.domain.gates import closed_gate
from shared.domain.insights.directory import Directory, EntityType
from shared.domain.insights.facts import START, Linker, RecordKey, fact_of, month_of
from shared.domain.insights.ledger import Context, Entry, insight, partials, settle
from shared.domain.insights.model import RecordInsight
from shared.domain.records import Activity
from shared.domain.tenant_settings import TenantSettings

Ledgers = dict[RecordKey, dict[str, list[Entry]]]


def ledgers(linker: Linker, activities: Iterable[Activity], only: set[RecordKey] | None = None) -> Ledgers:
    """Every record's facts by month (activities someone who opted out takes part in are left out)."""
    result: Ledgers = {}
    directory, classified, opted_out, memberships = linker.directory, linker.classified, linker.opted_out, \
        linker.memberships
    for activity in activities:
        if not opted_out.isdisjoint(activity.parties):  # (`linker.usable`, inlined: once per activity)
            continue
        concerned = memberships(activity)
        if only is not None:
            concerned = tuple((key, bits) for key, bits in concerned if key in only)
        if not concerned:
            continue
        fact = fact_of(directory, activity, classified)
        month = month_of(fact[START])
        for key, bits in concerned:
            months = result.get(key)
            if months is None:
                months = result[key] = {}
            entries = months.get(month)
            if entries is None:
                months[month] = [[bits, fact]]
            else:
                entries.append([bits, fact])
    return result


def compute(directory: Directory, settings: TenantSettings, activities: Sequence[Activity], now: datetime,
            previous: dict[tuple[EntityType, str], RecordInsight] | None = None,
            only: set[tuple[EntityType, str]] | None = None, linker: Linker | None = None) -> list[RecordInsight]:
    """Insights of every record, or of the `only` ones."""
    linker = linker or Linker(directory)
    ctx = Context(directory, settings, now)
    built = ledgers(linker, activities, only)
    results = []
    empty: dict[str, list[Entry]] = {}
    for key, meta in linker.records.items():
        if only is not None and key not in only:
            continue
        months = built.get(key, empty)
        old = {m: partials(entries) for m, entries in months.items() if m < ctx.recent_from}
        recent = [e for m, entries in months.items() if m >= ctx.recent_from for e in entries]
        results.append(insight(ctx, meta, settle({}, old, ctx.recent_from), recent, (previous or {}).get(key)))
    return results


def of_someone_opted_out(directory: Directory, activities: Iterable[Activity]) -> bool:
    """Whether any of these activities belongs to a person who opted out: one takes part, or it came from their
    mailbox. Their data must not stay stored (SPEC 4.4), even when a connector sends it after the opt-out."""
    addresses = directory.opted_out_addresses()
    owners = {u.id for u in directory.users.values() if u.opted_out}
    return any(addresses.intersection(a.parties) or a.mailbox_owner_id in owners for a in activities)


def touched(directory: Directory, settings: TenantSettings, new: Sequence[Activity]) -> set[tuple[EntityType, str]]:
    """The records whose insights new activities can change: those they link to, and those whose introducers
    they can change (the lead or contact taking part, the account of a party's email domain)."""
    linker = Linker(directory)
    keys: set[RecordKey] = set()
    for activity in new:
        owner = directory.users.get(activity.mailbox_owner_id or "")
        if closed_gate(settings, activity, owner) is None and linker.usable(activity):
            linked, about = linker.links(activity)
            keys |= linked | about
    return keys
