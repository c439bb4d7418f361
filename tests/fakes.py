"""In-memory fakes of the service layer's ports (cosmicpython's FakeRepository style), for fast unit tests of the
services. They keep the ports' contracts that the services rely on: conditional writes raise ConcurrencyConflict,
groups are written atomically, versions and ingestion times are kept per row."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.domain.audit import AuditEvent
from shared.domain.consent import ConsentRequest
from shared.domain.insights.directory import EntityType
from shared.domain.insights.health import needs_attention
from shared.domain.insights.model import RecordInsight
from shared.domain.introductions import IntroducerChoice, IntroductionRequest
from shared.domain.records import RECORD_KINDS, Activity, RemovedActivity, Source, record_key
from shared.domain.security_roles import SecurityRole
from shared.domain.tenant_settings import TenantSettings
from shared.errors import ConcurrencyConflict
from shared.services.ports import (
    LEDGER_ARCHIVE,
    LEDGER_SUMMARY,
    AuditPage,
    ChangePage,
    Child,
    Current,
    DeltaPage,
    GrantCheck,
    Holder,
    IndexEntry,
    IndexKind,
    LedgerState,
    LoggedWrite,
    MailboxCopy,
    PurgeProgress,
    RebuildProgress,
    RecomputeStatus,
    RecordKey,
    RecordTooLarge,
    SourcePositionLost,
    StoredVersion,
    SweepProgress,
    Versioned,
    WorkMessage,
)
from shared.storage.ledger_repository import summary_of
from shared.tenancy import TenantId

D = TypeVar("D")
M = TypeVar("M", bound=BaseModel)
_etags = itertools.count(1)


def _etag() -> str:
    return f"W/\"{next(_etags)}\""


class FakeSettingsRepository:
    def __init__(self) -> None:
        self.settings: dict[str, tuple[TenantSettings, str]] = {}
        self.events: list[AuditEvent] = []
        self.catalogue: list[SecurityRole] | None = None
        self.conflicts_to_raise = 0

    def load(self, tenant_id: TenantId) -> Current:
        stored = self.settings.get(tenant_id)
        return Current(TenantSettings(tenant_id=tenant_id), None) if stored is None else Current(*stored)

    def save(self, tenant_id: TenantId, settings: TenantSettings, etag: str | None, event: AuditEvent) -> str:
        if self.conflicts_to_raise:
            self.conflicts_to_raise -= 1
            raise ConcurrencyConflict("simulated")
        current = self.settings.get(tenant_id)
        if (current[1] if current else None) != etag:
            raise ConcurrencyConflict("stale")
        new = _etag()
        self.settings[tenant_id] = (settings, new)
        self.events.insert(0, event)
        return new

    def audit(self, tenant_id: TenantId, page_size: int, continuation: str | None) -> AuditPage:
        start = int(continuation or 0)
        page = self.events[start:start + page_size]
        more = start + page_size < len(self.events)
        return AuditPage(page, str(start + page_size) if more else None)

    def role_catalogue(self, tenant_id: TenantId) -> Sequence[SecurityRole] | None:
        return self.catalogue


class FakeScheduleIndex:
    def __init__(self) -> None:
        self.rows: dict[tuple[IndexKind, TenantId, datetime], IndexEntry] = {}

    def add(self, kind: IndexKind, tenant_id: TenantId, due: datetime) -> None:
        self.rows[(kind, tenant_id, due)] = IndexEntry(kind, tenant_id, due, etag=_etag())

    def remove(self, kind: IndexKind, tenant_id: TenantId, due: datetime) -> None:
        self.rows.pop((kind, tenant_id, due), None)

    def due(self, kind: IndexKind, now: datetime) -> Iterator[IndexEntry]:
        for entry in sorted(self.rows.values(), key=lambda e: e.due):
            if entry.kind is kind and entry.due <= now:
                yield entry

    def get(self, kind: IndexKind, tenant_id: TenantId, due: datetime) -> IndexEntry | None:
        return self.rows.get((kind, tenant_id, due))

    def keep(self, entry: IndexEntry, *, leased_until: datetime, position: str | None) -> IndexEntry | None:
        current = self.rows.get(entry.key)
        if current is None or current.etag != entry.etag:
            return None
        kept = IndexEntry(entry.kind, entry.tenant_id, entry.due, leased_until, position, _etag())
        self.rows[entry.key] = kept
        return kept

    def of(self, kind: IndexKind, tenant_id: TenantId) -> list[datetime]:
        return sorted(e.due for e in self.rows.values() if e.kind is kind and e.tenant_id == tenant_id)


@dataclass
class _Row:
    record: Any
    version: int
    etag: str
    ingested_at: datetime
    deleted: bool = False


@dataclass
class FakeRecords:
    """Rows keyed (tenant, kind, record key); an atomic write holds at most `group_size` records."""

    group_size: int = 100
    max_weight: int = 480_000
    rows: dict[tuple[str, str, str], _Row] = field(default_factory=dict)
    writes: int = 0
    log: list[tuple[str, LoggedWrite]] = field(default_factory=list)
    logged: int = 0
    record_writes: dict[str, int] = field(default_factory=dict)
    activity_reads: int = 0
    writing: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # the calls under way, by token

    def records_version(self, tenant_id: TenantId) -> str | None:
        return str(self.record_writes[tenant_id]) if tenant_id in self.record_writes else None

    def _log(self, tenant_id: str, kind: str, at: datetime, keys: list[str], previous: dict[str, str], *,
             removed: bool = False, written: Sequence[BaseModel] = ()) -> None:
        if kind != "activities":
            self.record_writes[tenant_id] = self.record_writes.get(tenant_id, 0) + 1
        self.logged += 1  # (ids stay unique after the log is forgotten, as the storage's random ones do)
        current = {record_key(r): r.model_dump_json(by_alias=True) for r in written} if written and \
            kind == "activities" else None
        self.log.append((tenant_id, LoggedWrite(kind, at, tuple(keys), previous, f"log-{self.logged:08d}",
                                                removed, current)))

    def written_since(self, tenant_id: TenantId, after: datetime | None, *,
                      documents: bool = True) -> Iterator[LoggedWrite]:
        entries = [w for tenant, w in self.log if tenant == tenant_id and (after is None or w.ingested_at > after)]
        for write in sorted(entries, key=lambda w: (w.ingested_at, w.id)):
            yield write if documents else replace(write, previous={}, current=None)

    def forget_written(self, tenant_id: TenantId, through: datetime) -> int:
        kept = [(t, w) for t, w in self.log if t != tenant_id or w.ingested_at > through]
        forgotten, self.log = len(self.log) - len(kept), kept
        return forgotten

    def begin_writing(self, tenant_id: TenantId, at: datetime) -> str:
        self.logged += 1
        token = f"writing-{self.logged:08d}"
        self.writing[token] = (tenant_id, at)
        return token

    def end_writing(self, tenant_id: TenantId, token: str) -> None:
        self.writing.pop(token, None)

    def writing_since(self, tenant_id: TenantId, expired_before: datetime) -> list[datetime]:
        for token, (tenant, at) in list(self.writing.items()):
            if tenant == tenant_id and at < expired_before:
                del self.writing[token]
        return [at for tenant, at in self.writing.values() if tenant == tenant_id]

    def activities(self, tenant_id: TenantId, keys: Sequence[str]) -> dict[str, Activity]:
        self.activity_reads += len(set(keys))
        rows = {key: self.rows.get((tenant_id, "activities", key)) for key in keys}
        return {key: row.record for key, row in rows.items() if row is not None and not row.deleted}

    def activities_page(self, tenant_id: TenantId, after: str | None, limit: int) -> tuple[list[Activity], str | None]:
        keys = sorted(k for (tenant, kind, k) in self.rows if tenant == tenant_id and kind == "activities"
                      and (after is None or k > after))
        page = keys[:limit]
        found = [row.record for k in page if not (row := self.rows[(tenant_id, "activities", k)]).deleted]
        return found, page[-1] if len(page) == limit else None

    def record_writes_since(self, tenant_id: TenantId, after: datetime) -> Iterator[LoggedWrite]:
        return (w for w in self.written_since(tenant_id, after) if w.kind != "activities")

    def weight(self, kind: str, record: BaseModel) -> int:
        size = len(record.model_dump_json())
        if size > self.max_weight:
            raise RecordTooLarge(f"{size} characters")
        return size

    def atomic_groups(self, kind: str, items: Sequence[D], record: Callable[[D], BaseModel],
                      weight: Callable[[D], int]) -> Iterator[list[D]]:
        for start in range(0, len(items), self.group_size):
            yield list(items[start:start + self.group_size])

    def versions(self, tenant_id: TenantId, kind: str, records: Sequence[BaseModel]) -> dict[str, StoredVersion]:
        found = {}
        for record in records:
            row = self.rows.get((tenant_id, kind, record_key(record)))
            if row is not None:
                found[record_key(record)] = StoredVersion(
                    row.version, row.etag, None if row.deleted else row.record.model_dump_json(by_alias=True))
        return found

    def write(self, tenant_id: TenantId, kind: str, records: Sequence[tuple[BaseModel, StoredVersion | None]],
              ingested_at: datetime) -> None:
        for record, stored in records:  # all or nothing: check first, then write
            row = self.rows.get((tenant_id, kind, record_key(record)))
            if (row is None) != (stored is None) or (row is not None and stored is not None
                                                     and row.etag != stored.etag):
                raise ConcurrencyConflict(f"{record_key(record)} changed")
        self.writes += 1
        for record, _ in records:
            self.rows[(tenant_id, kind, record_key(record))] = _Row(record, record.version,  # type: ignore[attr-defined]
                                                                   _etag(), ingested_at)
        self._log(tenant_id, kind, ingested_at, [record_key(r) for r, _ in records],
                  {record_key(r): s.document for r, s in records if s is not None and s.document is not None},
                  written=[r for r, _ in records])

    def put(self, tenant_id: TenantId, kind: str, *records: BaseModel, at: datetime) -> None:
        """Test set-up: store records as if a sync had."""
        previous = {}
        for record in records:
            old = self.rows.get((tenant_id, kind, record_key(record)))
            if old is not None and not old.deleted:
                previous[record_key(record)] = old.record.model_dump_json(by_alias=True)
            self.rows[(tenant_id, kind, record_key(record))] = _Row(record, record.version,  # type: ignore[attr-defined]
                                                                   _etag(), at)
        self._log(tenant_id, kind, at, [record_key(r) for r in records], previous, written=records)

    def delete(self, tenant_id: TenantId, kind: str, key: str, at: datetime) -> None:
        """Test set-up: a row deleted (as a purge does), logged with what it held."""
        old = self.rows.pop((tenant_id, kind, key))
        self._log(tenant_id, kind, at, [key], {key: old.record.model_dump_json(by_alias=True)}, removed=True)

    def get(self, tenant_id: TenantId, kind: str, record_id: str) -> Any:
        row = self.rows.get((tenant_id, kind, record_id))
        return None if row is None or row.deleted else row.record

    def get_many(self, tenant_id: TenantId, kind: str, record_ids: Sequence[str]) -> dict[str, Any]:
        return {rid: self.rows[(tenant_id, kind, rid)].record for rid in record_ids
                if (tenant_id, kind, rid) in self.rows and not self.rows[(tenant_id, kind, rid)].deleted}

    def iter_records(self, tenant_id: TenantId, kind: str) -> Iterator[Any]:
        assert kind in RECORD_KINDS
        for (tenant, row_kind, _), row in sorted(self.rows.items()):
            if tenant == tenant_id and row_kind == kind and not row.deleted:
                yield row.record

    def iter_activities(self, tenant_id: TenantId, *, with_ingested_at: bool = True, removed: bool = False,
                        ) -> Iterator[tuple[Activity, datetime | None]]:
        for (tenant, kind, _), row in sorted(self.rows.items()):
            if tenant == tenant_id and kind == "activities" and (removed or not row.deleted):
                record = (RemovedActivity.model_validate_json(row.record.model_dump_json(by_alias=True))
                          if row.deleted else row.record)
                yield record, row.ingested_at if with_ingested_at else None

    def remove(self, tenant_id: TenantId, kind: str, keys: Sequence[str], removed_at: datetime) -> list[str]:
        removed = []
        for key in dict.fromkeys(keys):
            row = self.rows.get((tenant_id, kind, key))
            if row is not None and not row.deleted:
                self.rows[(tenant_id, kind, key)] = _Row(row.record, row.version + 1, _etag(), removed_at, True)
                removed.append(key)
        if removed:
            self._log(tenant_id, kind, removed_at, removed,
                      {key: self.rows[(tenant_id, kind, key)].record.model_dump_json(by_alias=True) for key in removed})
        return removed

    def live(self, tenant_id: TenantId, kind: str) -> dict[str, Any]:
        """Test view: the records of a kind that are not tombstones, by record key."""
        return {key: row.record for (tenant, row_kind, key), row in self.rows.items()
                if tenant == tenant_id and row_kind == kind and not row.deleted}

    def purge_exchange(self, tenant_id: TenantId, ingested_through: datetime, enough: Callable[[], bool],
                       after: str | None = None) -> PurgeProgress:
        return self._delete(tenant_id, lambda row: row.record.source is Source.EXCHANGE
                            and row.ingested_at <= ingested_through, enough, after)

    def purge_people(self, tenant_id: TenantId, addresses: frozenset[str], user_ids: frozenset[str],
                     enough: Callable[[], bool], after: str | None = None) -> PurgeProgress:
        return self._delete(tenant_id, lambda row: bool(addresses.intersection(row.record.parties))
                            or row.record.mailbox_owner_id in user_ids, enough, after)

    def _delete(self, tenant_id: TenantId, wanted: Callable[[_Row], bool], enough: Callable[[], bool],
                after: str | None) -> PurgeProgress:
        """In key order, a group at a time; the position is the last key judged."""
        keys = [key for key in sorted(self.rows) if key[0] == tenant_id and key[1] == "activities"
                and (after is None or key[2] > after)]
        deleted = 0
        for start in range(0, len(keys), self.group_size):
            group = keys[start:start + self.group_size]
            for key in group:
                if wanted(self.rows[key]):
                    self.delete(tenant_id, "activities", key[2], self.rows[key].ingested_at)
                    deleted += 1
            if enough() and start + self.group_size < len(keys):
                return PurgeProgress(deleted, False, group[-1][2])
        return PurgeProgress(deleted, True)


@dataclass
class FakeLedgers:
    """Rows keyed (tenant, record key, month), stored as JSON as the adapter stores them, with ETags."""

    rows: dict[tuple[str, RecordKey, str], tuple[str, str]] = field(default_factory=dict)
    built: dict[str, tuple[datetime, frozenset[str]]] = field(default_factory=dict)
    rebuilds: dict[str, RebuildProgress] = field(default_factory=dict)
    fragments: dict[tuple[str, RecordKey, str, str, int, str], str] = field(default_factory=dict)
    meta_etags: dict[str, str] = field(default_factory=dict)

    def read(self, tenant_id: TenantId, key: RecordKey, recent_from: str, months: Iterable[str] = (), *,
             with_archive: bool = False, for_update: bool = False) -> LedgerState:
        state = LedgerState()
        wanted = set(months)
        for (tenant, record, month), (text, etag) in sorted(self.rows.items()):
            if tenant != tenant_id or record != key:
                continue
            if month == LEDGER_SUMMARY:
                summary = json.loads(text)
                state.partials, state.base, state.horizon = summary["p"], summary["b"], summary["h"]
                state.settled, state.settled_from = summary["s"] if summary["f"] else None, summary["f"]
                state.etags[month] = etag
            elif month == LEDGER_ARCHIVE:
                if with_archive:
                    state.archive, state.etags[month] = json.loads(text), etag
            elif month >= recent_from or month in wanted:
                state.months[month], state.etags[month] = json.loads(text), etag
        for month in wanted - set(state.months):
            state.months[month], state.etags[month] = [], None
        state.etags.setdefault(LEDGER_SUMMARY, None)
        if with_archive and state.archive is None:
            state.archive, state.etags[LEDGER_ARCHIVE] = {}, None
        return state

    def read_many(self, tenant_id: TenantId, keys: Sequence[RecordKey], recent_from: str,
                  ) -> dict[RecordKey, LedgerState]:
        return {key: self.read(tenant_id, key, recent_from) for key in keys}

    def read_all(self, tenant_id: TenantId, keys: Sequence[RecordKey], recent_from: str,
                 ) -> dict[RecordKey, LedgerState]:
        return self.read_many(tenant_id, keys, recent_from)

    def read_for_update(self, tenant_id: TenantId, edits: Mapping[RecordKey, Iterable[str]], recent_from: str, *,
                        records: int) -> dict[RecordKey, LedgerState]:
        return {key: self.read(tenant_id, key, recent_from, months, for_update=True) for key, months in edits.items()}

    def write(self, tenant_id: TenantId, key: RecordKey, state: LedgerState, changed: Iterable[str],
              recent_from: str | None = None) -> None:
        months = [*sorted(set(changed)), LEDGER_SUMMARY, *([LEDGER_ARCHIVE] if state.archive is not None else [])]
        for month in months:  # all or nothing
            stored = self.rows.get((tenant_id, key, month))
            if (stored[1] if stored else None) != state.etags.get(month):
                raise ConcurrencyConflict(f"{key} {month} changed")
        for month in months:
            value: Any = (summary_of(state) if month == LEDGER_SUMMARY else state.archive if month == LEDGER_ARCHIVE
                          else state.months.get(month))
            if value or month in (LEDGER_SUMMARY, LEDGER_ARCHIVE):
                self.rows[(tenant_id, key, month)] = (json.dumps(value), _etag())
            else:
                self.rows.pop((tenant_id, key, month), None)

    def write_many(self, tenant_id: TenantId, writes: Sequence[tuple[RecordKey, LedgerState, set[str]]],
                   recent_from: str | None = None) -> list[RecordKey]:
        failed = []
        for key, state, changed in writes:
            try:
                self.write(tenant_id, key, state, changed)
            except ConcurrencyConflict:
                failed.append(key)
        return failed

    def clear(self, tenant_id: TenantId, limit: int) -> int:
        fragments = sorted(k for k in self.fragments if k[0] == tenant_id)[:limit]
        for fragment in fragments:
            del self.fragments[fragment]
        return len(fragments)

    def write_fragments(self, tenant_id: TenantId, rebuild: str, flush: int,
                        facts: Mapping[RecordKey, Mapping[str, list[Any]]]) -> None:
        token = _etag()
        for key, periods in facts.items():
            for period, entries in periods.items():
                if entries:
                    self.fragments[(tenant_id, key, period, rebuild, flush, token)] = json.dumps(entries)

    def read_fragments(self, tenant_id: TenantId, rebuild: str, after: str | None, limit: int,
                       ) -> tuple[dict[RecordKey, dict[str, list[Any]]], str | None]:
        """Positions are the records' keys as JSON (records in that order)."""
        mine = sorted((k for k in self.fragments if k[0] == tenant_id and k[3] == rebuild
                       and (after is None or json.dumps(k[1]) > after)), key=lambda k: (json.dumps(k[1]), *k[2:]))
        facts: dict[RecordKey, dict[str, list[Any]]] = {}
        for rows, fragment in enumerate(mine):
            key, period = fragment[1], fragment[2]
            if key not in facts and rows >= limit:
                return facts, json.dumps(list(facts)[-1])
            facts.setdefault(key, {}).setdefault(period, []).extend(json.loads(self.fragments[fragment]))
        return facts, None

    def replace_records(self, tenant_id: TenantId, ledgers: dict[RecordKey, LedgerState],
                        recent_from: str | None = None, *, after: str | None = None,
                        through: str | None = None) -> None:
        for row in [k for k in self.rows if k[0] == tenant_id and (after is None or json.dumps(k[1]) > after)
                    and (through is None or json.dumps(k[1]) <= through)]:
            del self.rows[row]  # (those written below come back)
        for key, state in ledgers.items():
            for month, entries in state.months.items():
                if entries:
                    self.rows[(tenant_id, key, month)] = (json.dumps(entries), _etag())
            self.rows[(tenant_id, key, LEDGER_SUMMARY)] = (json.dumps(summary_of(state)), _etag())
            if state.archive:
                self.rows[(tenant_id, key, LEDGER_ARCHIVE)] = (json.dumps(state.archive), _etag())

    def about(self, tenant_id: TenantId, key: RecordKey) -> list[str]:
        return [fact[0] for (tenant, record, period), (text, _) in sorted(self.rows.items())
                if tenant == tenant_id and record == key and period not in (LEDGER_SUMMARY, LEDGER_ARCHIVE)
                for bits, fact in json.loads(text) if bits & 2]

    def built_through(self, tenant_id: TenantId) -> tuple[datetime, frozenset[str]] | None:
        return self.built.get(tenant_id)

    def built_version(self, tenant_id: TenantId) -> tuple[tuple[datetime, frozenset[str]] | None, str | None]:
        return self.built.get(tenant_id), self.meta_etags.get(tenant_id)

    def mark_built(self, tenant_id: TenantId, through: datetime, seen: Iterable[str], *,
                   etag: str | None = None) -> None:
        if etag is not None and self.meta_etags.get(tenant_id) != etag:
            raise ConcurrencyConflict("the ledgers' meta row changed")
        self.rebuilds.pop(tenant_id, None)
        self.built[tenant_id] = (through, frozenset(seen))
        self.meta_etags[tenant_id] = _etag()

    def rebuild_progress(self, tenant_id: TenantId) -> tuple[RebuildProgress | None, str | None]:
        return self.rebuilds.get(tenant_id), self.meta_etags.get(tenant_id)

    def save_rebuild(self, tenant_id: TenantId, progress: RebuildProgress, etag: str | None) -> str:
        if self.meta_etags.get(tenant_id) != etag:
            raise ConcurrencyConflict("the ledgers' meta row changed")
        self.built.pop(tenant_id, None)
        self.rebuilds[tenant_id] = progress
        self.meta_etags[tenant_id] = _etag()
        return self.meta_etags[tenant_id]


@dataclass
class FakeInsights:
    rows: dict[tuple[str, EntityType, str], RecordInsight] = field(default_factory=dict)
    etags: dict[tuple[str, EntityType, str], str] = field(default_factory=dict)
    domains: dict[tuple[str, str], str] = field(default_factory=dict)
    marks: dict[str, datetime] = field(default_factory=dict)
    recomputes: dict[str, dict[str, datetime | int]] = field(default_factory=dict)
    sweeps: dict[str, Versioned[SweepProgress | None]] = field(default_factory=dict)

    def get(self, tenant_id: TenantId, entity_type: EntityType, record_id: str) -> RecordInsight | None:
        return self.rows.get((tenant_id, entity_type, record_id))

    def iter(self, tenant_id: TenantId, entity_type: EntityType | None = None) -> Iterator[RecordInsight]:
        for (tenant, kind, _), insight in sorted(self.rows.items()):
            if tenant == tenant_id and entity_type in (None, kind):
                yield insight

    def account_of_domain(self, tenant_id: TenantId, domain: str) -> str | None:
        return self.domains.get((tenant_id, domain))

    def needing_attention(self, tenant_id: TenantId, entity_type: EntityType, fingerprint: str,
                          after: tuple[int, str] | None, limit: int) -> list[RecordInsight]:
        """What the adapter's index gives: the variant served under these gates, worst first."""
        found = []
        for insight in self.iter(tenant_id, entity_type):
            exchange = insight.with_exchange is not None and insight.gate_fingerprint == fingerprint
            health = (insight.with_exchange if exchange and insight.with_exchange else insight.crm).health
            position = (health.score or 0, insight.id)
            risky = insight.risk_basic is not None or insight.risk_enhanced is not None
            if (needs_attention(health) or risky) and (after is None or position > after):
                found.append((position, insight))
        return [insight for _, insight in sorted(found, key=lambda f: f[0])][:limit]

    def at_risk(self, tenant_id: TenantId, fingerprint: str, enhanced: bool, after: str | None, limit: int,
                ) -> list[tuple[str, RecordInsight]]:
        """What the adapter's index gives: the measure of the mode and gates served, worst first."""
        found = []
        for insight in self.iter(tenant_id):
            risk = insight.risk_enhanced if enhanced and insight.gate_fingerprint == fingerprint else \
                insight.risk_basic
            if risk is not None:
                position = risk.position(insight.entity_type, insight.id)
                if after is None or position > after:
                    found.append((position, insight))
        return sorted(found, key=lambda f: f[0])[:limit]

    def refreshed_through(self, tenant_id: TenantId) -> datetime | None:
        return self.marks.get(tenant_id)

    def mark_refreshed(self, tenant_id: TenantId, through: datetime) -> None:
        self.marks[tenant_id] = through

    def in_range(self, tenant_id: TenantId, after: RecordKey | None, through: RecordKey | None,
                 ) -> dict[RecordKey, Versioned[RecordInsight]]:
        return {(kind, record_id): Versioned(insight, self._etag_of(tenant_id, (kind, record_id)) or "")
                for (tenant, kind, record_id), insight in sorted(self.rows.items()) if tenant == tenant_id
                and (after is None or (kind, record_id) > after) and (through is None or (kind, record_id) <= through)}

    def tidy(self, tenant_id: TenantId, keep: Collection[RecordKey], domains: Mapping[str, str],
             still_gone: Callable[[list[RecordKey]], list[RecordKey]] | None = None) -> None:
        candidates = [(k[1], k[2]) for k in self.rows if k[0] == tenant_id and (k[1], k[2]) not in keep]
        gone = set(candidates if still_gone is None else still_gone(candidates))
        for key in [(tenant_id, *k) for k in candidates if k in gone]:
            self.rows.pop(key)
            self.etags.pop(key, None)
        self.domains = {k: v for k, v in self.domains.items() if k[0] != tenant_id}
        self.domains.update({(tenant_id, domain): account for domain, account in domains.items()})

    def sweep_progress(self, tenant_id: TenantId) -> tuple[SweepProgress | None, str | None]:
        found = self.sweeps.get(tenant_id)
        return (None, None) if found is None else (found.document, found.etag)

    def save_sweep(self, tenant_id: TenantId, progress: SweepProgress | None, etag: str | None, *,
                   replace: bool = False) -> str | None:
        found = self.sweeps.get(tenant_id)
        if not replace and (found.etag if found is not None else None) != etag:
            raise ConcurrencyConflict("another step saved the pass since")
        self.sweeps[tenant_id] = Versioned(progress, _etag())
        return self.sweeps[tenant_id].etag

    def recompute_status(self, tenant_id: TenantId) -> RecomputeStatus:
        return RecomputeStatus(**self.recomputes.get(tenant_id, {}))  # type: ignore[arg-type]

    def note_recompute(self, tenant_id: TenantId, **facts: datetime | int) -> None:
        self.recomputes.setdefault(tenant_id, {}).update(facts)

    def previous(self, tenant_id: TenantId, keys: Sequence[RecordKey], *, records: int,
                 ) -> dict[RecordKey, Versioned[RecordInsight]]:
        return {key: Versioned(found, self._etag_of(tenant_id, key)) for key in keys
                if (found := self.rows.get((tenant_id, *key))) is not None}

    def _etag_of(self, tenant_id: str, key: RecordKey) -> str | None:
        if (tenant_id, *key) not in self.rows:
            return None
        return self.etags.get((tenant_id, *key), "set up directly")

    def update(self, tenant_id: TenantId, insights: Sequence[RecordInsight], removed: Iterable[RecordKey] = (),
               previous: Mapping[RecordKey, Versioned[RecordInsight]] | None = None) -> list[RecordKey]:
        failed = []
        if previous is not None:  # each record's write conditional on what was read
            for insight in insights:
                read = previous.get(insight.key)
                if self._etag_of(tenant_id, insight.key) != (read.etag if read else None):
                    failed.append(insight.key)
        for entity_type, record_id in removed:
            self.rows.pop((tenant_id, entity_type, record_id), None)
            self.etags.pop((tenant_id, entity_type, record_id), None)
        for insight in insights:
            if insight.key in failed:
                continue
            # Stored as the adapter stores them: through JSON, so nothing the model cannot hold survives.
            self.rows[(tenant_id, insight.entity_type, insight.id)] = RecordInsight.model_validate_json(
                insight.model_dump_json(by_alias=True))
            self.etags[(tenant_id, insight.entity_type, insight.id)] = _etag()
        return failed


class FakeConsentRequests:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], Versioned[ConsentRequest]] = {}

    def create(self, tenant_id: TenantId, secret_hash: str, request: ConsentRequest) -> None:
        if (tenant_id, secret_hash) in self.requests:
            raise ConcurrencyConflict("exists")
        self.requests[(tenant_id, secret_hash)] = Versioned(request, _etag())

    def get(self, tenant_id: TenantId, secret_hash: str) -> Versioned[ConsentRequest] | None:
        return self.requests.get((tenant_id, secret_hash))

    def consume(self, tenant_id: TenantId, secret_hash: str, used: ConsentRequest, etag: str) -> None:
        current = self.requests.get((tenant_id, secret_hash))
        if current is None or current.etag != etag:
            raise ConcurrencyConflict("used meanwhile")
        self.requests[(tenant_id, secret_hash)] = Versioned(used, _etag())


@dataclass
class FakeConsentVerifier:
    """Answers what the test says the identity platform would: one check after another, the last repeating."""

    answers: list[GrantCheck] = field(default_factory=lambda: [GrantCheck("granted", roles=("Mail.ReadBasic.All",))])
    checks: int = 0

    def check(self, tenant_id: TenantId) -> GrantCheck:
        self.checks += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class FakeIntroductions:
    def __init__(self) -> None:
        self.stored_choices: Versioned[dict[str, IntroducerChoice]] | None = None
        self.requests: dict[tuple[str, str], Versioned[IntroductionRequest]] = {}

    def choices(self, tenant_id: TenantId) -> Versioned[dict[str, IntroducerChoice]] | None:
        return self.stored_choices

    def save_choices(self, tenant_id: TenantId, choices: dict[str, IntroducerChoice], etag: str | None) -> None:
        if (self.stored_choices.etag if self.stored_choices else None) != etag:
            raise ConcurrencyConflict("stale")
        self.stored_choices = Versioned(dict(choices), _etag())

    def create(self, tenant_id: TenantId, request: IntroductionRequest) -> None:
        self.requests[(tenant_id, request.id)] = Versioned(request, _etag())

    def get(self, tenant_id: TenantId, request_id: str) -> Versioned[IntroductionRequest] | None:
        return self.requests.get((tenant_id, request_id))

    def replace(self, tenant_id: TenantId, request: IntroductionRequest, etag: str) -> None:
        current = self.requests.get((tenant_id, request.id))
        if current is None or current.etag != etag:
            raise ConcurrencyConflict("stale")
        self.requests[(tenant_id, request.id)] = Versioned(request, _etag())

    def page(self, tenant_id: TenantId, *, introducer_id: str | None = None, requester_id: str | None = None,
             page_size: int, continuation: str | None) -> tuple[list[IntroductionRequest], str | None]:
        mine = sorted((v.document for (t, _), v in self.requests.items() if t == tenant_id
                       and (v.document.introducer_id == introducer_id or v.document.requester_id == requester_id)),
                      key=lambda r: r.id)
        start = int(continuation or 0)
        more = start + page_size < len(mine)
        return mine[start:start + page_size], str(start + page_size) if more else None


@dataclass
class FakeWorkQueue:
    sent: list[tuple[WorkMessage, timedelta | None]] = field(default_factory=list)

    def send(self, message: WorkMessage, *, delay: timedelta | None = None) -> None:
        self.sent.append((message, delay))

    def kinds(self) -> list[str]:
        return [message.kind.value for message, _ in self.sent]


def item(model: BaseModel) -> dict[str, Any]:
    """A record as a connector sends it (camelCase JSON)."""
    loaded: dict[str, Any] = json.loads(model.model_dump_json(by_alias=True))
    return loaded


class FakeSourceState:
    """The rounds' rows: documents with ETags, the mailbox item map, the CRM's child rows."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], tuple[str, str, type[BaseModel]]] = {}
        self.copies_: dict[tuple[str, str, str, str], MailboxCopy] = {}
        self.holders_: dict[tuple[str, str], dict[tuple[str, str], Holder]] = {}
        self.children: dict[tuple[str, str], dict[str, Child]] = {}
        self.conflicts_to_raise = 0

    def load(self, tenant_id: TenantId, key: str, model: type[M]) -> Versioned[M] | None:
        found = self.docs.get((tenant_id, key))
        return None if found is None else Versioned(model.model_validate_json(found[0]), found[1])

    def save(self, tenant_id: TenantId, key: str, document: BaseModel, etag: str | None) -> str:
        if self.conflicts_to_raise:
            self.conflicts_to_raise -= 1
            raise ConcurrencyConflict("simulated")
        current = self.docs.get((tenant_id, key))
        if (current[1] if current else None) != etag:
            raise ConcurrencyConflict(f"{key} changed")
        new = _etag()
        self.docs[(tenant_id, key)] = (document.model_dump_json(by_alias=True), new, type(document))
        return new

    def delete(self, tenant_id: TenantId, key: str, etag: str) -> None:
        current = self.docs.get((tenant_id, key))
        if current is None or current[1] != etag:
            raise ConcurrencyConflict(f"{key} changed")
        del self.docs[(tenant_id, key)]

    def load_all(self, tenant_id: TenantId, prefix: str, model: type[M]) -> Iterator[Versioned[M]]:
        for (tenant, key), (text, etag, _) in sorted(self.docs.items()):
            if tenant == tenant_id and key.startswith(prefix):
                yield Versioned(model.model_validate_json(text), etag)

    def hold(self, tenant_id: TenantId, mailbox_id: str, owner_id: str, copies: Sequence[MailboxCopy]) -> None:
        for copy in copies:
            self.copies_[(tenant_id, mailbox_id.lower(), copy.collection, copy.source_id)] = copy
            self.holders_.setdefault((tenant_id, copy.activity_id), {})[(mailbox_id.lower(), copy.source_id)] = (
                Holder(mailbox_id.lower(), owner_id, copy.source_id))

    def held(self, tenant_id: TenantId, mailbox_id: str, collection: str, source_ids: Sequence[str],
             ) -> list[MailboxCopy]:
        found = [self.copies_.get((tenant_id, mailbox_id.lower(), collection, s)) for s in dict.fromkeys(source_ids)]
        return [c for c in found if c is not None]

    def release(self, tenant_id: TenantId, mailbox_id: str, copies: Sequence[MailboxCopy]) -> None:
        for copy in copies:
            self.copies_.pop((tenant_id, mailbox_id.lower(), copy.collection, copy.source_id), None)
            self.holders_.get((tenant_id, copy.activity_id), {}).pop((mailbox_id.lower(), copy.source_id), None)

    def holders(self, tenant_id: TenantId, activity_ids: Sequence[str]) -> dict[str, list[Holder]]:
        return {a: list(self.holders_.get((tenant_id, a), {}).values()) for a in activity_ids}

    def copies(self, tenant_id: TenantId, mailbox_id: str, collection: str | None = None) -> Iterator[MailboxCopy]:
        for (tenant, mailbox, name, _), copy in sorted(self.copies_.items()):
            if tenant == tenant_id and mailbox == mailbox_id.lower() and collection in (None, name):
                yield copy

    def put_children(self, tenant_id: TenantId, relation: str, children: Sequence[Child]) -> None:
        for child in children:
            self.children.setdefault((tenant_id, relation), {})[child.id] = child

    def remove_children(self, tenant_id: TenantId, relation: str, child_ids: Sequence[str]) -> list[Child]:
        rows = self.children.get((tenant_id, relation), {})
        return [rows.pop(c) for c in dict.fromkeys(child_ids) if c in rows]

    def children_of(self, tenant_id: TenantId, relation: str, parents: Sequence[str]) -> dict[str, list[Child]]:
        rows = self.children.get((tenant_id, relation), {}).values()
        return {p: sorted((c for c in rows if c.parent == p), key=lambda c: c.id) for p in dict.fromkeys(parents)}


@dataclass
class _Log:
    """One collection of a fake source: its items and the sequence number of each id's last change."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    generation: int = 0


class FakeDeltaSource:
    """A delta API in memory, with Graph's and Dataverse's shape of links: a full round returns what is there, a
    delta link replays what changed since (deletions as removals), pages of `page_size`. `fail` raises the next
    problems given for a scope (a mailbox, an entity set), `expire` makes the scope's links refused."""

    def __init__(self, page_size: int = 3) -> None:
        self.page_size = page_size
        self.seq = 0
        self.logs: dict[tuple[str, str], _Log] = {}
        self.calls: Counter[str] = Counter()
        self.problems: dict[str, list[Exception]] = {}
        self.members: dict[str, set[str]] = {}

    def put(self, scope: str, collection: str, item: dict[str, Any], key: str = "id") -> None:
        self.seq += 1
        log = self.logs.setdefault((scope, collection), _Log())
        log.items[str(item[key])] = item
        log.changed[str(item[key])] = self.seq

    def delete(self, scope: str, collection: str, item_id: str) -> None:
        self.seq += 1
        log = self.logs.setdefault((scope, collection), _Log())
        log.items.pop(item_id, None)
        log.changed[item_id] = self.seq

    def fail(self, scope: str, *problems: Exception) -> None:
        self.problems.setdefault(scope, []).extend(problems)

    def expire(self, scope: str, collection: str) -> None:
        self.logs.setdefault((scope, collection), _Log()).generation += 1

    def page(self, scope: str, collection: str, link: str | None) -> tuple[list[dict[str, Any]], list[str],
                                                                             str | None, str | None]:
        self.calls[scope] += 1
        if self.problems.get(scope):
            raise self.problems[scope].pop(0)
        log = self.logs.setdefault((scope, collection), _Log())
        if link is None:
            since, upto, offset, full = 0, self.seq, 0, True
        else:
            kind, generation, *numbers = link.split("|")
            if int(generation) != log.generation:
                raise SourcePositionLost("gone", status=410, code="SyncStateNotFound")
            since, upto, offset = (int(n) for n in numbers)
            full = kind == "full"
            if kind == "delta":
                since, upto, offset = upto, self.seq, 0
        changes = sorted((seq, i) for i, seq in log.changed.items() if since < seq <= upto)
        window = changes[offset:offset + self.page_size]
        items = [log.items[i] for _, i in window if i in log.items]
        removed = [] if full else [i for _, i in window if i not in log.items]
        if offset + self.page_size < len(changes):
            kind = "full" if full else "next"
            return items, removed, f"{kind}|{log.generation}|{since}|{upto}|{offset + self.page_size}", None
        return items, removed, None, f"delta|{log.generation}|0|{upto}|0"


class FakeMailSource(FakeDeltaSource):
    def mail_delta(self, tenant: str, mailbox_id: str, folder: str, link: str | None, *,
                   since: datetime) -> DeltaPage:
        return DeltaPage(*self.page(mailbox_id, folder, link))

    def calendar_delta(self, tenant: str, mailbox_id: str, link: str | None, *,
                       window: tuple[datetime, datetime]) -> DeltaPage:
        return DeltaPage(*self.page(mailbox_id, "calendar", link))

    def transitive_member_ids(self, tenant: str, group_id: str) -> set[str]:
        self.calls["groups"] += 1
        if self.problems.get("groups"):
            raise self.problems["groups"].pop(0)
        return set(self.members.get(group_id, set()))


class FakeCrmSource(FakeDeltaSource):
    def changes(self, tenant: str, environment_url: str, entity_set: str, select: Sequence[str],
                link: str | None) -> ChangePage:
        items, removed, next_link, delta_link = self.page(entity_set, entity_set, link)
        return ChangePage([{k: v for k, v in i.items() if k in select or k.endswith("lookuplogicalname")}
                           for i in items], removed, next_link, delta_link)
