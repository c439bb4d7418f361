"""Computed insights in the tenant's partition: `insight|{entity type}|{id}` rows, and the needs-attention index:
`att|{entity type}|x|{gate fingerprint}|{score}|{id}` for a record whose with-Exchange variant needs attention,
`att|{entity type}|c|-|{score}|{id}` for its CRM variant, so that a page of "needs attention" in attention
order is a range query of its size; and the relationships-at-risk index, worst first (the most revenue at stake,
then the strongest tie lost): `rsk|b|-|{rank}|{entity type}|{id}` for the risk measured in basic mode,
`rsk|e|{gate fingerprint}|{rank}|{entity type}|{id}` in enhanced mode. Each insight row names its index rows
(`Att`), written in the same transaction."""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from shared.caching import BoundedCache
from shared.domain.insights.directory import EntityType
from shared.domain.insights.health import needs_attention
from shared.domain.insights.model import RecordInsight
from shared.errors import ConcurrencyConflict
from shared.services.ports import BULK_SHARE, RecomputeStatus, RecordKey, SweepProgress, Versioned
from shared.storage.documents import decode, encode
from shared.storage.tables import (
    Operation,
    Properties,
    StoredEntity,
    TableStore,
    cut_into_transactions,
    operation_bytes,
    prefix_upper_bound,
)
from shared.tenancy import TenantId

PREFIX = "insight|"
DOMAIN_PREFIX = "wkw-domain|"
META_ROW = "insights-meta"
SWEEP_ROW = "insights-sweep"  # the daily recompute's pass under way
RECOMPUTE_ROW = "insights-recompute"
_RECOMPUTE_FACTS = {"requested_at": "RequestedAt", "started_at": "StartedAt", "finished_at": "FinishedAt",
                    "records": "Records", "activities": "Activities"}


ATTENTION_PREFIX = "att|"
RISK_PREFIX = "rsk|"
_READERS = 8


def row_key(entity_type: str, record_id: str) -> str:
    return f"{PREFIX}{entity_type}|{record_id}"


def index_rows(insight: RecordInsight) -> dict[str, dict[str, str | bool]]:
    """The index rows of an insight: one per variant that needs attention (Poor, Declining, or at risk in either
    mode: the read filters), one per mode in which a departure puts it at risk."""
    rows: dict[str, dict[str, str | bool]] = {}
    base = f"{ATTENTION_PREFIX}{insight.entity_type}|"
    at_risk = insight.risk_basic is not None or insight.risk_enhanced is not None
    if needs_attention(insight.crm.health) or insight.risk_basic is not None:
        rows[f"{base}c|-|{insight.crm.health.score or 0:03d}|{insight.id}"] = {
            "Fp": insight.gate_fingerprint, "HasX": insight.with_exchange is not None}
    if insight.with_exchange is not None and (needs_attention(insight.with_exchange.health) or at_risk):
        rows[f"{base}x|{insight.gate_fingerprint}|{insight.with_exchange.health.score or 0:03d}|{insight.id}"] = {}
    for mode, fingerprint, risk in (("b", "-", insight.risk_basic), ("e", insight.gate_fingerprint,
                                                                      insight.risk_enhanced)):
        if risk is not None:
            rows[f"{RISK_PREFIX}{mode}|{fingerprint}|{risk.position(insight.entity_type, insight.id)}"] = {
                "Fp": insight.gate_fingerprint}
    return rows




class InsightCache(BoundedCache[tuple[str, TenantId, RecordKey], Versioned[RecordInsight]]):
    """The insights this process wrote last, with the ETags they were written with: the previous answer the next
    computation of a record starts from (its trend, the index rows to replace), instead of a read. Never trusted
    alone: the write that follows is conditional on the ETag, so an insight another worker wrote meanwhile fails
    it, leaves the cache, and is read again. Bounded by the characters the insights take stored (in memory a
    decoded insight takes about eleven times its stored size: 16 million characters hold every insight of a
    2,000-record tenant, ~6,300 characters each, in ~180 MB); an entry is taken out while in use."""

    def __init__(self, max_stored_chars: int = 16_000_000) -> None:
        super().__init__(max_stored_chars)

    def keep(self, scope: str, tenant_id: TenantId, insight: RecordInsight, etag: str, stored_chars: int) -> None:
        self.put((scope, tenant_id, insight.key), Versioned(insight, etag), stored_chars)


class TableInsights:
    """Implements the InsightRepository port on the tenant's partition."""

    def __init__(self, tables: TableStore, cache: InsightCache | None = None) -> None:
        self._tables = tables
        self._cache = cache
        self._scope = tables.table_name

    def previous(self, tenant_id: TenantId, keys: Sequence[RecordKey], *, records: int,
                 ) -> dict[RecordKey, Versioned[RecordInsight]]:
        cached = {key: stored for key in keys if self._cache is not None
                  and (stored := self._cache.take((self._scope, tenant_id, key))) is not None}
        rest = [key for key in keys if key not in cached]
        if rest and len(rest) * BULK_SHARE >= records:
            found = self._stored(tenant_id, set(rest))
            return {key: stored for key in keys if (stored := cached.get(key) or found.get(key)) is not None}

        def read(key: RecordKey) -> Versioned[RecordInsight] | None:
            entity = self._tables.get(tenant_id, row_key(*key))
            return None if entity is None else Versioned(decode(entity, RecordInsight), entity.etag)

        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            read_now = dict(zip(rest, pool.map(read, rest), strict=True))
        return {key: stored for key in keys if (stored := cached.get(key) or read_now.get(key)) is not None}

    def get(self, tenant_id: TenantId, entity_type: EntityType, record_id: str) -> RecordInsight | None:
        entity = self._tables.get(tenant_id, row_key(entity_type, record_id))
        return None if entity is None else decode(entity, RecordInsight)

    def iter(self, tenant_id: TenantId, entity_type: EntityType | None = None) -> Iterator[RecordInsight]:
        prefix = PREFIX if entity_type is None else f"{PREFIX}{entity_type}|"
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=prefix):
            yield decode(entity, RecordInsight)

    def needing_attention(self, tenant_id: TenantId, entity_type: EntityType, fingerprint: str,
                          after: tuple[int, str] | None, limit: int) -> list[RecordInsight]:
        base = f"{ATTENTION_PREFIX}{entity_type}|"
        streams = [self._index(tenant_id, f"{base}x|{fingerprint}|", after),
                   (e for e in self._index(tenant_id, f"{base}c|-|", after)
                    if not (e.properties.get("HasX") and e.properties.get("Fp") == fingerprint))]
        chosen = [e.row_key.rpartition("|")[2] for e in _first_of(streams, _position, limit)]
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            found = list(pool.map(lambda rid: self.get(tenant_id, entity_type, rid), chosen))
        return [i for i in found if i is not None]

    def _index(self, tenant_id: TenantId, prefix: str, after: tuple[int, str] | None) -> Iterator[StoredEntity]:
        start = None if after is None else f"{prefix}{after[0]:03d}|{after[1]}"
        return self._tables.iter_partition(tenant_id, row_key_prefix=prefix, after=start,
                                           select=["Fp", "HasX"])

    def at_risk(self, tenant_id: TenantId, fingerprint: str, enhanced: bool, after: str | None, limit: int,
                ) -> list[tuple[str, RecordInsight]]:
        """Records at risk worst first, from the index, with their positions: in enhanced mode, the enhanced
        measure of the records computed with the gates as they are, the basic measure of the others."""
        def stream(prefix: str) -> Iterator[StoredEntity]:
            return self._tables.iter_partition(tenant_id, row_key_prefix=prefix,
                                               after=None if after is None else prefix + after, select=["Fp"])

        streams = [stream(f"{RISK_PREFIX}b|-|")]
        if enhanced:
            streams = [stream(f"{RISK_PREFIX}e|{fingerprint}|"),
                       (e for e in streams[0] if e.properties.get("Fp") != fingerprint)]
        chosen = [_risk_position(e.row_key) for e in _first_of(streams, _risk_position, limit)]

        def read(position: str) -> tuple[str, RecordInsight | None]:
            _, _, entity_type, record_id = position.split("|")
            return position, self.get(tenant_id, entity_type, record_id)  # type: ignore[arg-type]

        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            found = list(pool.map(read, chosen))
        return [(p, i) for p, i in found if i is not None]

    def account_of_domain(self, tenant_id: TenantId, domain: str) -> str | None:
        entity = self._tables.get(tenant_id, DOMAIN_PREFIX + domain)
        return None if entity is None else str(entity.properties["AccountId"])

    def refreshed_through(self, tenant_id: TenantId) -> datetime | None:
        """Activities stored up to this moment are reflected in the stored insights."""
        entity = self._tables.get(tenant_id, META_ROW)
        value = entity.properties.get("RefreshedThrough") if entity else None
        return value if isinstance(value, datetime) else None

    def mark_refreshed(self, tenant_id: TenantId, through: datetime) -> None:
        self._tables.upsert(tenant_id, META_ROW, {"RefreshedThrough": through})

    def recompute_status(self, tenant_id: TenantId) -> RecomputeStatus:
        entity = self._tables.get(tenant_id, RECOMPUTE_ROW)
        if entity is None:
            return RecomputeStatus()
        values = {fact: entity.properties.get(name) for fact, name in _RECOMPUTE_FACTS.items()}
        return RecomputeStatus(**values)  # type: ignore[arg-type]

    def note_recompute(self, tenant_id: TenantId, **facts: datetime | int) -> None:
        self._tables.upsert(tenant_id, RECOMPUTE_ROW, {_RECOMPUTE_FACTS[k]: v for k, v in facts.items()}, merge=True)

    def _stored(self, tenant_id: TenantId, wanted: set[RecordKey]) -> dict[RecordKey, Versioned[RecordInsight]]:
        """These records' stored insights, from one query in pages of the rows from the first wanted to the last
        (only the wanted ones decoded)."""
        found: dict[RecordKey, Versioned[RecordInsight]] = {}
        rows = sorted(row_key(*key) for key in wanted)
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=PREFIX, start=rows[0],
                                                  before=prefix_upper_bound(rows[-1])):
            entity_type, _, record_id = entity.row_key.removeprefix(PREFIX).partition("|")
            if (entity_type, record_id) in wanted:
                insight = decode(entity, RecordInsight)
                found[insight.key] = Versioned(insight, entity.etag)
        return found

    def in_range(self, tenant_id: TenantId, after: RecordKey | None, through: RecordKey | None,
                 ) -> dict[RecordKey, Versioned[RecordInsight]]:
        last = None if through is None else row_key(*through)
        found: dict[RecordKey, Versioned[RecordInsight]] = {}
        # (a record whose id extends the last one's sorts after it: past `last`, left to the next range)
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=PREFIX,
                                                  after=None if after is None else row_key(*after),
                                                  before=None if last is None else prefix_upper_bound(last)):
            if last is None or entity.row_key <= last:
                insight = decode(entity, RecordInsight)
                found[insight.key] = Versioned(insight, entity.etag)
        return found

    def tidy(self, tenant_id: TenantId, keep: Collection[RecordKey], domains: Mapping[str, str],
             still_gone: Callable[[list[RecordKey]], list[RecordKey]] | None = None) -> None:
        # The index rows are read before the insights that name them: a row that an insight written after this
        # read names has a new ETag, on which its delete fails; one written before, the insights read show.
        index = {entity.row_key: entity.etag for prefix in (ATTENTION_PREFIX, RISK_PREFIX)
                 for entity in self._tables.iter_partition(tenant_id, row_key_prefix=prefix, select=["RowKey"])}
        named: set[str] = set()
        groups: list[_Group] = []
        candidates: dict[RecordKey, tuple[StoredEntity, list[str]]] = {}
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=PREFIX, select=["Att"]):
            entity_type, _, record_id = entity.row_key.removeprefix(PREFIX).partition("|")
            rows = json.loads(str(entity.properties.get("Att") or "[]"))
            if (entity_type, record_id) in keep:
                named.update(rows)
            else:
                candidates[(entity_type, record_id)] = (entity, rows)  # type: ignore[index]
        gone = set(candidates if still_gone is None else still_gone(list(candidates)))
        for key, (entity, rows) in candidates.items():
            if key not in gone:
                named.update(rows)
                continue
            groups.append((key, None, [Operation("delete", entity.row_key, etag=entity.etag),
                                       *(Operation("delete", r, etag=index.pop(r)) for r in rows if r in index)]))
        groups += [(_record_of(r), None, [Operation("delete", r, etag=etag)]) for r, etag in index.items()
                   if r not in named]
        wanted = dict(domains)
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=DOMAIN_PREFIX):
            domain = entity.row_key.removeprefix(DOMAIN_PREFIX)
            if wanted.get(domain) == entity.properties.get("AccountId"):
                wanted.pop(domain)
            elif domain not in wanted:
                groups.append((_NO_RECORD, None, [Operation("delete", entity.row_key)]))
        groups += [(_NO_RECORD, None, [Operation("upsert", DOMAIN_PREFIX + d, {"AccountId": a})])
                   for d, a in wanted.items()]
        if self._cache is not None and gone:
            self._cache.forget(lambda entry: entry[:2] == (self._scope, tenant_id) and entry[2] in gone)
        self._commit_all(tenant_id, groups)  # (what fails, another worker changed: it stays as that one left it)

    def sweep_progress(self, tenant_id: TenantId) -> tuple[SweepProgress | None, str | None]:
        entity = self._tables.get(tenant_id, SWEEP_ROW)
        if entity is None:
            return None, None
        began, after, ended = (entity.properties.get(name) for name in ("Began", "After", "Ended"))
        if not isinstance(began, datetime):
            return None, entity.etag
        entity_type, _, record_id = str(after or "").partition("|")
        return SweepProgress(began, (entity_type, record_id) if after else None,  # type: ignore[arg-type]
                             int(entity.properties.get("Records") or 0),  # type: ignore[arg-type]
                             ended if isinstance(ended, datetime) else None), entity.etag

    def save_sweep(self, tenant_id: TenantId, progress: SweepProgress | None, etag: str | None, *,
                   replace: bool = False) -> str | None:
        properties: Properties = {} if progress is None else {
            "Began": progress.began, "Records": progress.records,
            **({"After": "|".join(progress.after)} if progress.after is not None else {}),
            **({"Ended": progress.ended} if progress.ended is not None else {})}
        if replace:
            return self._tables.upsert(tenant_id, SWEEP_ROW, properties)
        if etag is None:
            return self._tables.create(tenant_id, SWEEP_ROW, properties)
        return self._tables.replace(tenant_id, SWEEP_ROW, properties, etag)

    def _commit_all(self, tenant_id: TenantId, groups: Sequence[_Group]) -> list[RecordKey]:
        """Each record's group of operations whole, the groups in few transactions; returns the records whose
        group failed on an ETag (nothing of theirs written)."""
        failed: list[RecordKey] = []
        for transaction in cut_into_transactions(groups, lambda g: sum(operation_bytes(o) for o in g[2]),
                                                 count=lambda g: len(g[2])):
            try:
                self._commit(tenant_id, transaction)
            except ConcurrencyConflict:
                # Which write failed, the service does not say in a way worth parsing: each group alone, then.
                for group in transaction:
                    try:
                        self._commit(tenant_id, [group])
                    except ConcurrencyConflict:
                        failed.append(group[0])
        return failed

    def _commit(self, tenant_id: TenantId, groups: Sequence[_Group]) -> None:
        etags = self._tables.transact(tenant_id, [o for _, _, group in groups for o in group])
        at = 0
        for _, written, group in groups:
            if self._cache is not None and written is not None and (etag := etags[at]) is not None:
                self._cache.keep(self._scope, tenant_id, written, etag, _stored_chars(group[0]))
            at += len(group)

    def update(self, tenant_id: TenantId, insights: Sequence[RecordInsight], removed: Iterable[RecordKey] = (),
               previous: Mapping[RecordKey, Versioned[RecordInsight]] | None = None) -> list[RecordKey]:
        """Writes some records' insights and their index rows (each record's in one transaction), and deletes
        the `removed` records' with theirs, leaving the others (and the domain rows) as they are. `previous`: the
        stored insights of these records, just read with their ETags (absent: none is stored); each write is then
        conditional on it, and its index rows to replace are known without reading them again (rows an older
        formula named differently are swept by the daily recompute). Returns the records whose transaction failed
        on an ETag (nothing of theirs written); without `previous`, writes unconditionally."""
        gone = [key for key in removed if key not in {i.key for i in insights}]

        def indexed(key: RecordKey) -> tuple[str | None, dict[str, Any]]:
            """The ETag of the stored insight and its index rows, with their properties when known."""
            if previous is not None and key not in gone:
                found = previous.get(key)
                return (found.etag, dict(index_rows(found.document))) if found is not None else (None, {})
            stored = self._tables.get(tenant_id, row_key(*key))
            return (stored.etag, dict.fromkeys(json.loads(str(stored.properties.get("Att") or "[]")))
                    ) if stored else (None, {})

        keys = [i.key for i in insights] + gone
        if previous is not None and not gone:
            before = [indexed(key) for key in keys]
        else:
            with ThreadPoolExecutor(max_workers=_READERS) as pool:
                before = list(pool.map(indexed, keys))
        # Each record's operations, its insight's row first (None: a record whose rows go).
        groups: list[_Group] = []
        for insight, (etag, old) in zip(insights, before, strict=False):
            rows = index_rows(insight)
            first = self._row_operation(insight, etag) if previous is not None else self._upsert(insight)
            # (a row named alike may hold other properties: a fingerprint or HasX changed, not the score)
            groups.append((insight.key, insight, [first, *(Operation("delete", r) for r in old if r not in rows),
                                                  *(Operation("upsert", r, dict(p)) for r, p in rows.items()
                                                    if r not in old or old[r] not in (None, p))]))
        for key, (etag, old) in zip(gone, before[len(insights):], strict=True):
            if etag is not None:
                groups.append((key, None, [Operation("delete", row_key(*key), etag=etag),
                                           *(Operation("delete", r) for r in old)]))
        failed = self._commit_all(tenant_id, groups)
        if failed and previous is None:
            raise ConcurrencyConflict(f"the insights of {failed[:3]} changed while they were deleted")
        return failed

    @staticmethod
    def _properties(insight: RecordInsight) -> Properties:
        properties = encode("insight", insight)
        properties["Att"] = json.dumps(sorted(index_rows(insight)))
        return properties

    @staticmethod
    def _upsert(insight: RecordInsight) -> Operation:
        return Operation("upsert", row_key(insight.entity_type, insight.id), TableInsights._properties(insight))

    @staticmethod
    def _row_operation(insight: RecordInsight, etag: str | None) -> Operation:
        """The insight's row, replaced on the ETag read (created when none was stored)."""
        key, properties = row_key(insight.entity_type, insight.id), TableInsights._properties(insight)
        return Operation("create", key, properties) if etag is None else Operation("replace", key, properties, etag)


# A record's operations (its insight's row first; None: rows that only go), committed together.
_Group = tuple[RecordKey, RecordInsight | None, list[Operation]]
_NO_RECORD: RecordKey = ("account", "")  # (a domain row's group: no record's)


def _stored_chars(operation: Operation) -> int:
    return sum(len(value) for value in operation.properties.values() if isinstance(value, str))


def _record_of(index_row: str) -> RecordKey:
    """The record an index row belongs to (`att|{type}|{variant}|{fp}|{score}|{id}`,
    `rsk|{mode}|{fp}|{rank}|{type}|{id}`, whose rank takes two parts)."""
    parts = index_row.split("|")
    if index_row.startswith(ATTENTION_PREFIX):
        return parts[1], parts[5]  # type: ignore[return-value]
    return parts[5], parts[6]  # type: ignore[return-value]


def _position(index_row: str) -> tuple[int, str]:
    _, score, record_id = index_row.rsplit("|", 2)
    return int(score), record_id


def _risk_position(index_row: str) -> str:
    return index_row.split("|", 3)[3]


def _first_of(streams: Iterable[Iterator[StoredEntity]], position: Callable[[str], Any], limit: int,
              ) -> list[StoredEntity]:
    """The first `limit` rows of index streams each in order of their row key's position, merged in that order."""
    return list(itertools.islice(heapq.merge(*streams, key=lambda e: position(e.row_key)), limit))
