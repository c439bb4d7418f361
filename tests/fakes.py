"""In-memory fakes of the service layer's ports (cosmicpython's FakeRepository style), for fast unit tests of the
services. They keep the ports' contracts that the services rely on: conditional writes raise ConcurrencyConflict,
groups are written atomically, versions and ingestion times are kept per row."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.domain.audit import AuditEvent
from shared.domain.consent import ConsentRequest
from shared.domain.insights.directory import EntityType
from shared.domain.insights.health import needs_attention
from shared.domain.insights.model import RecordInsight
from shared.domain.records import RECORD_KINDS, Activity, Source, record_key
from shared.domain.security_roles import SecurityRole
from shared.domain.tenant_settings import TenantSettings
from shared.errors import ConcurrencyConflict
from shared.services.ports import (
    LEDGER_ARCHIVE,
    LEDGER_SUMMARY,
    AuditPage,
    Current,
    GrantCheck,
    IndexEntry,
    IndexKind,
    LedgerState,
    LoggedWrite,
    PurgeProgress,
    RecomputeStatus,
    RecordKey,
    RecordTooLarge,
    StoredVersion,
    Versioned,
    WorkMessage,
)
from shared.storage.ledger_repository import summary_of
from shared.tenancy import TenantId

D = TypeVar("D")
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


@dataclass
class FakeRecords:
    """Rows keyed (tenant, kind, record key); an atomic write holds at most `group_size` records."""

    group_size: int = 100
    max_weight: int = 480_000
    rows: dict[tuple[str, str, str], _Row] = field(default_factory=dict)
    writes: int = 0
    log: list[tuple[str, LoggedWrite]] = field(default_factory=list)

    def _log(self, tenant_id: str, kind: str, at: datetime, keys: list[str], previous: dict[str, str]) -> None:
        self.log.append((tenant_id, LoggedWrite(kind, at, tuple(keys), previous, f"log-{len(self.log):08d}")))

    def written_since(self, tenant_id: TenantId, after: datetime | None) -> Iterator[LoggedWrite]:
        entries = [w for tenant, w in self.log if tenant == tenant_id and (after is None or w.ingested_at > after)]
        yield from sorted(entries, key=lambda w: (w.ingested_at, w.id))

    def forget_written(self, tenant_id: TenantId, through: datetime) -> int:
        kept = [(t, w) for t, w in self.log if t != tenant_id or w.ingested_at > through]
        forgotten, self.log = len(self.log) - len(kept), kept
        return forgotten

    def activities(self, tenant_id: TenantId, keys: Sequence[str]) -> dict[str, Activity]:
        return {key: self.rows[(tenant_id, "activities", key)].record for key in keys
                if (tenant_id, "activities", key) in self.rows}

    def weight(self, kind: str, record: BaseModel) -> int:
        size = len(record.model_dump_json())
        if size > self.max_weight:
            raise RecordTooLarge(f"{size} characters")
        return size

    def atomic_groups(self, items: Sequence[D], weight: Callable[[D], int]) -> Iterator[list[D]]:
        for start in range(0, len(items), self.group_size):
            yield list(items[start:start + self.group_size])

    def versions(self, tenant_id: TenantId, kind: str, records: Sequence[BaseModel]) -> dict[str, StoredVersion]:
        found = {}
        for record in records:
            row = self.rows.get((tenant_id, kind, record_key(record)))
            if row is not None:
                found[record_key(record)] = StoredVersion(row.version, row.etag,
                                                          row.record.model_dump_json(by_alias=True))
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
                  {record_key(r): s.document for r, s in records if s is not None and s.document is not None})

    def put(self, tenant_id: TenantId, kind: str, *records: BaseModel, at: datetime) -> None:
        """Test set-up: store records as if a sync had."""
        previous = {}
        for record in records:
            old = self.rows.get((tenant_id, kind, record_key(record)))
            if old is not None:
                previous[record_key(record)] = old.record.model_dump_json(by_alias=True)
            self.rows[(tenant_id, kind, record_key(record))] = _Row(record, record.version,  # type: ignore[attr-defined]
                                                                   _etag(), at)
        self._log(tenant_id, kind, at, [record_key(r) for r in records], previous)

    def remove(self, tenant_id: TenantId, kind: str, key: str, at: datetime) -> None:
        """Test set-up: a row deleted (a purge, a removal), logged with what it held."""
        old = self.rows.pop((tenant_id, kind, key))
        self._log(tenant_id, kind, at, [key], {key: old.record.model_dump_json(by_alias=True)})

    def get(self, tenant_id: TenantId, kind: str, record_id: str) -> Any:
        row = self.rows.get((tenant_id, kind, record_id))
        return None if row is None else row.record

    def get_many(self, tenant_id: TenantId, kind: str, record_ids: Sequence[str]) -> dict[str, Any]:
        return {rid: self.rows[(tenant_id, kind, rid)].record for rid in record_ids
                if (tenant_id, kind, rid) in self.rows}

    def iter_records(self, tenant_id: TenantId, kind: str) -> Iterator[Any]:
        assert kind in RECORD_KINDS
        for (tenant, row_kind, _), row in sorted(self.rows.items()):
            if tenant == tenant_id and row_kind == kind:
                yield row.record

    def iter_activities(self, tenant_id: TenantId, *, with_ingested_at: bool = True,
                        ) -> Iterator[tuple[Activity, datetime | None]]:
        for (tenant, kind, _), row in sorted(self.rows.items()):
            if tenant == tenant_id and kind == "activities":
                yield row.record, row.ingested_at if with_ingested_at else None

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
                    self.remove(tenant_id, "activities", key[2], self.rows[key].ingested_at)
                    deleted += 1
            if enough() and start + self.group_size < len(keys):
                return PurgeProgress(deleted, False, group[-1][2])
        return PurgeProgress(deleted, True)


@dataclass
class FakeLedgers:
    """Rows keyed (tenant, record key, month), stored as JSON as the adapter stores them, with ETags."""

    rows: dict[tuple[str, RecordKey, str], tuple[str, str]] = field(default_factory=dict)
    built: dict[str, tuple[datetime, frozenset[str]]] = field(default_factory=dict)

    def read(self, tenant_id: TenantId, key: RecordKey, recent_from: str, months: Iterable[str] = (), *,
             with_archive: bool = False) -> LedgerState:
        state = LedgerState()
        wanted = set(months)
        for (tenant, record, month), (text, etag) in sorted(self.rows.items()):
            if tenant != tenant_id or record != key:
                continue
            if month == LEDGER_SUMMARY:
                summary = json.loads(text)
                state.partials, state.base, state.horizon = summary["p"], summary["b"], summary["h"]
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

    def write(self, tenant_id: TenantId, key: RecordKey, state: LedgerState, changed: Iterable[str]) -> None:
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
                   ) -> list[RecordKey]:
        failed = []
        for key, state, changed in writes:
            try:
                self.write(tenant_id, key, state, changed)
            except ConcurrencyConflict:
                failed.append(key)
        return failed

    def replace_all(self, tenant_id: TenantId, ledgers: dict[RecordKey, LedgerState]) -> None:
        self.rows = {k: v for k, v in self.rows.items() if k[0] != tenant_id}
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

    def mark_built(self, tenant_id: TenantId, through: datetime, seen: Iterable[str]) -> None:
        self.built[tenant_id] = (through, frozenset(seen))


@dataclass
class FakeInsights:
    rows: dict[tuple[str, EntityType, str], RecordInsight] = field(default_factory=dict)
    domains: dict[tuple[str, str], str] = field(default_factory=dict)
    marks: dict[str, datetime] = field(default_factory=dict)
    recomputes: dict[str, dict[str, datetime | int]] = field(default_factory=dict)

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
            if needs_attention(health) and (after is None or position > after):
                found.append((position, insight))
        return [insight for _, insight in sorted(found, key=lambda f: f[0])][:limit]

    def refreshed_through(self, tenant_id: TenantId) -> datetime | None:
        return self.marks.get(tenant_id)

    def mark_refreshed(self, tenant_id: TenantId, through: datetime) -> None:
        self.marks[tenant_id] = through

    def replace_all(self, tenant_id: TenantId, insights: Sequence[RecordInsight], stale: Iterable[RecordKey],
                    ) -> None:
        for entity_type, record_id in stale:
            self.rows.pop((tenant_id, entity_type, record_id), None)
        self.update(tenant_id, insights)
        self.domains = {k: v for k, v in self.domains.items() if k[0] != tenant_id}
        for insight in insights:
            for domain in insight.email_domains:
                self.domains[(tenant_id, domain)] = insight.id

    def recompute_status(self, tenant_id: TenantId) -> RecomputeStatus:
        return RecomputeStatus(**self.recomputes.get(tenant_id, {}))  # type: ignore[arg-type]

    def note_recompute(self, tenant_id: TenantId, **facts: datetime | int) -> None:
        self.recomputes.setdefault(tenant_id, {}).update(facts)

    def update(self, tenant_id: TenantId, insights: Sequence[RecordInsight]) -> None:
        for insight in insights:
            # Stored as the adapter stores them: through JSON, so nothing the model cannot hold survives.
            self.rows[(tenant_id, insight.entity_type, insight.id)] = RecordInsight.model_validate_json(
                insight.model_dump_json(by_alias=True))


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
