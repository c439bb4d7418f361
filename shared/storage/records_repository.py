"""CRM records and activities, each in the tenant's partition of its own table.

Rows: `{kind}|{id}` for users, accounts, contacts, leads, opportunities (the state table); `activity|{source}|{id}`
for activities, in a table of their own (`{state table}Activities`), so that all Exchange-derived rows of a tenant
are one RowKey range (the purge walks it) and the records' reads never walk a tenant's activities (Azurite's
queries scan their whole table; in Azure the bulk of the writes gets partitions of its own). Each row keeps the
source `Version` and `IngestedAt` beside the document. A record its source deleted stays as a tombstone: its last
document, `Deleted` true, a version one above, and the moment of removal as `IngestedAt`; readers skip it (unless
they ask for removed activities), the version check still sees it, purges delete it like any row.

Every write also stores, in the same entity-group transaction (so in the same table), a row of the ingestion log
(`ilog|{ingested at, µs}|{random}`) naming the records it stored and holding the documents it replaced: "what
changed since" is then a range query of each table, merged in time order, whose cost follows what changed, and a
write that commits late is never missed by it (the row commits with the data). A removal is logged the same way,
with the document it removed.

A call that writes first registers itself in the tenant's partition (`writing|{its stamp, µs}|{random}`) and
removes that row once its writes have ended: the log's readers trust every row stamped before the oldest call
still registered (within a short margin of their own moment), instead of waiting out a function's longest run.

A tenant's activities may spread over several partitions of their own (`shards`, set for the deployment): with
one, they live in `{tenant}`; with N, in `{tenant}|{n}` for n < N, an activity in the shard a stable hash of its
key names (CRC-32, the same in every process), each shard with its own log (a log row commits with its rows, so in
their partition). No partition mixes tenants, and the tenant part still comes from the caller's validated tenant.
One partition serves about 2,000 entities/s: a back-fill of millions of activities needs several. The shard count
is chosen once for a storage account: a different count finds the rows in other partitions (re-sharding is not
built). Positions of long walks (pages of a rebuild, purges) name the shard they are in: `{n}:{row key}`.
"""

from __future__ import annotations

import heapq
import json
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.domain.records import RECORD_KINDS, Activity, RemovedActivity, Source, record_key
from shared.errors import ConcurrencyConflict
from shared.services.ports import LoggedWrite, PurgeProgress, RecordTooLarge, StoredVersion
from shared.storage.documents import DocumentTooLarge, decode, encode, payload, split_text
from shared.storage.tables import (
    MAX_BATCH_OPERATIONS,
    Operation,
    Page,
    Properties,
    StoredEntity,
    TableStore,
    cut_into_transactions,
    operation_bytes,
    transactions,
)
from shared.tenancy import TenantId

D = TypeVar("D")

_READERS = 8
DELETED = "Deleted"
_ATTEMPTS = 3
LOG_PREFIX = "ilog|"
WRITING_PREFIX = "writing|"  # a sync call under way: its stamp, until it ends (`begin_writing`)
_LOG_NAMES = ["Kind", "IngestedAt", "Keys", "Removed"]  # what a log row says of a write, without its documents
ACTIVITIES_TABLE_SUFFIX = "Activities"
# Rewritten by every transaction that changes records (not activities): its ETag says whether the tenant's records
# are still those a reader loaded.
RECORDS_VERSION_ROW = "records-version"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def log_row_key(ingested_at: datetime) -> str:
    micros = (ingested_at - _EPOCH) // timedelta(microseconds=1)
    return f"{LOG_PREFIX}{max(0, micros):017d}|{uuid.uuid4().hex[:12]}"


def row_key(kind: str, record: BaseModel) -> str:
    if isinstance(record, Activity):
        return f"activity|{record.source.value}|{record.id}"
    return f"{kind}|{record.id}"  # type: ignore[attr-defined]


def key_row(kind: str, key: str) -> str:
    """The row of a record key (for an activity, `{source}|{id}`)."""
    return f"activity|{key}" if kind == "activities" else f"{kind}|{key}"


def _activity_columns(with_ingested_at: bool) -> list[str]:
    return ["DocChunks", "Doc0", DELETED, *(["IngestedAt"] if with_ingested_at else [])]


def _live(entity: StoredEntity | None) -> StoredEntity | None:
    return None if entity is None or entity.properties.get(DELETED) is True else entity


def prefix(kind: str, source: Source | None = None) -> str:
    if kind == "activities":
        return "activity|" if source is None else f"activity|{source.value}|"
    return f"{kind}|"


class ActivityShards:
    """The partitions of the activities' table that hold a tenant's activities and their log."""

    def __init__(self, count: int = 1) -> None:
        if count < 1:  # (the app setting's bounds are the configuration's)
            raise ValueError(f"a tenant's activities need at least one partition, not {count}")
        self.count = count

    def partition(self, tenant_id: TenantId, shard: int) -> str:
        return tenant_id if self.count == 1 else f"{tenant_id}|{shard}"

    def shard(self, key: str) -> int:
        """The shard of an activity (its key, `{source}|{id}`, or its row key)."""
        return 0 if self.count == 1 else zlib.crc32(key.removeprefix("activity|").encode()) % self.count

    def of(self, tenant_id: TenantId, key: str) -> str:
        """The partition of an activity's row."""
        return self.partition(tenant_id, self.shard(key))

    def all(self, tenant_id: TenantId) -> list[str]:
        return [self.partition(tenant_id, shard) for shard in range(self.count)]

    def position(self, shard: int, row_key: str | None) -> str | None:
        """Where a walk over the shards stands: past `row_key` (None: at the start) of this shard."""
        if self.count == 1:
            return row_key
        return f"{shard}:{row_key or ''}"

    def at(self, position: str | None) -> tuple[int, str | None]:
        """The shard and row key a position names (the start of the first shard when None)."""
        if position is None:
            return 0, None
        if self.count == 1:
            return 0, position
        shard, _, row_key = position.partition(":")
        if not shard.isdigit() or int(shard) >= self.count:
            raise ValueError(f"not a position among {self.count} shards: {position!r}")
        return int(shard), row_key or None


class TableRecords:
    """Implements the RecordRepository port on the tenant's partition (and its activities' shards)."""

    def __init__(self, tables: TableStore, activity_tables: TableStore | None = None, *,
                 shards: ActivityShards | None = None) -> None:
        self._records = tables
        self._activities = activity_tables or tables.sibling(tables.table_name + ACTIVITIES_TABLE_SUFFIX)
        self._shards = shards or ActivityShards()

    def _tables_of(self, kind: str) -> TableStore:
        return self._activities if kind == "activities" else self._records

    def _partition_of(self, tenant_id: TenantId, kind: str, key: str) -> str:
        """The partition of a record's row (`key`: its record key or row key)."""
        return self._shards.of(tenant_id, key) if kind == "activities" else tenant_id

    def _log_partitions(self, tenant_id: TenantId) -> list[tuple[TableStore, str]]:
        return [(self._records, tenant_id), *((self._activities, p) for p in self._shards.all(tenant_id))]

    def versions(self, tenant_id: TenantId, kind: str, records: Sequence[BaseModel]) -> dict[str, StoredVersion]:
        """Stored versions of these records by record key (absent ones left out), read in parallel."""
        def read(record: BaseModel) -> tuple[str, StoredEntity | None]:
            key = record_key(record)
            return key, tables.get(self._partition_of(tenant_id, kind, key), row_key(kind, record))

        tables = self._tables_of(kind)

        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            found = list(pool.map(read, records))
        # A tombstone's document is not counted anywhere any more: it is no "previous" document of a new version.
        return {key: StoredVersion(int(e.properties.get("Version", -1)), e.etag,  # type: ignore[arg-type]
                                   None if e.properties.get(DELETED) is True else _document(e))
                for key, e in found if e is not None}

    def get(self, tenant_id: TenantId, kind: str, record_id: str) -> Any:
        """The record (by record key: an activity's is `{source}|{id}`), or None (absent or removed)."""
        entity = _live(self._tables_of(kind).get(self._partition_of(tenant_id, kind, record_id),
                                                 key_row(kind, record_id)))
        return None if entity is None else decode(entity, RECORD_KINDS[kind])

    def get_many(self, tenant_id: TenantId, kind: str, record_ids: Sequence[str]) -> dict[str, Any]:
        def read(record_id: str) -> tuple[str, StoredEntity | None]:
            return record_id, _live(tables.get(self._partition_of(tenant_id, kind, record_id),
                                               key_row(kind, record_id)))

        tables = self._tables_of(kind)

        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            found = list(pool.map(read, list(dict.fromkeys(record_ids))))
        return {rid: decode(e, RECORD_KINDS[kind]) for rid, e in found if e is not None}

    def write(self, tenant_id: TenantId, kind: str, records: Sequence[tuple[BaseModel, StoredVersion | None]],
              ingested_at: datetime) -> None:
        """Creates new rows and replaces stored ones only if unchanged since read (ConcurrencyConflict if not)."""
        replaced = {record_key(record): stored.document for record, stored in records
                    if stored is not None and stored.document is not None}
        keyed = [(record_key(record), _operation(kind, record, stored, ingested_at)) for record, stored in records]
        for partition, group in self._transactions(tenant_id, kind, keyed):
            keys = [key for key, _ in group]
            current = {key: payload(op.properties) for key, op in group} if kind == "activities" else None
            log = _log_row(kind, ingested_at, keys, {k: replaced[k] for k in keys if k in replaced},
                           current=current)
            operations = [op for _, op in group]
            self._tables_of(kind).transact(partition, [*operations, log, *_version_bump(kind, log)])

    def _transactions(self, tenant_id: TenantId, kind: str, keyed: Sequence[tuple[str, Operation]],
                      ) -> Iterator[tuple[str, list[tuple[str, Operation]]]]:
        """Keyed operations cut into transactions of one partition each, of at most 98 rows and half the bytes
        (beside them, the log's row, which may hold the documents they replace, and the records' version)."""
        by_partition: dict[str, list[tuple[str, Operation]]] = {}
        for key, operation in keyed:
            by_partition.setdefault(self._partition_of(tenant_id, kind, key), []).append((key, operation))
        for partition, operations in by_partition.items():
            for group in cut_into_transactions(operations, lambda item: 2 * operation_bytes(item[1]),
                                               limit=_PER_TRANSACTION):
                yield partition, group

    def weight(self, kind: str, record: BaseModel) -> int:
        """What a record weighs in a transaction; RecordTooLarge when no row can hold it."""
        try:
            return operation_bytes(_operation(kind, record, None, datetime.min))
        except DocumentTooLarge as exc:
            raise RecordTooLarge(str(exc)) from exc

    def atomic_groups(self, kind: str, items: Sequence[D], record: Callable[[D], BaseModel],
                      weight: Callable[[D], int]) -> Iterator[list[D]]:
        """Groups of one partition (an activity's shard), of at most 98 (the transaction's other rows are the log's
        and the records' version) and half the bytes (the log may hold the documents the group replaces)."""
        by_shard: dict[int, list[D]] = {}
        for item in items:
            by_shard.setdefault(self._shards.shard(record_key(record(item))) if kind == "activities" else 0,
                                []).append(item)
        for _, group in sorted(by_shard.items()):
            yield from cut_into_transactions(group, lambda item: 2 * weight(item), limit=_PER_TRANSACTION)

    def records_version(self, tenant_id: TenantId) -> str | None:
        entity = self._records.get(tenant_id, RECORDS_VERSION_ROW)
        return None if entity is None else entity.etag

    def written_since(self, tenant_id: TenantId, after: datetime | None, *,
                      documents: bool = True) -> Iterator[LoggedWrite]:
        """The log of both tables (each shard of the activities' has its own), merged in time order (a row's key
        starts with its stamp). The first page of each is read at once, together; the next ones as the merge
        needs them."""
        logs = self._log_partitions(tenant_id)
        with ThreadPoolExecutor(max_workers=min(_READERS, len(logs))) as pool:
            firsts = list(pool.map(lambda log: _log_page(log[0], log[1], after, None, documents), logs))
        return heapq.merge(*(self._logged(tables, partition, after, first, documents=documents)
                             for (tables, partition), first in zip(logs, firsts, strict=True)),
                           key=lambda write: write.id)

    @staticmethod
    def _logged(tables: TableStore, partition: str, after: datetime | None, found: Page, *,
                documents: bool = True) -> Iterator[LoggedWrite]:
        while True:
            for entity in found.entities:
                keys = json.loads(str(entity.properties.get("Keys") or "[]"))
                count = int(entity.properties.get("PrevChunks") or 0)  # type: ignore[arg-type]
                previous = json.loads("".join(str(entity.properties[f"Prev{i}"]) for i in range(count)) or "{}")
                written = int(entity.properties.get("CurChunks") or 0)  # type: ignore[arg-type]
                current = json.loads("".join(str(entity.properties[f"Cur{i}"]) for i in range(written))
                                     ) if written else None
                at = entity.properties.get("IngestedAt")
                yield LoggedWrite(str(entity.properties.get("Kind")), at if isinstance(at, datetime) else _EPOCH,
                                  tuple(keys), previous, entity.row_key, entity.properties.get("Removed") is True,
                                  current)
            if found.continuation is None:
                return
            found = _log_page(tables, partition, after, found.continuation, documents)

    def begin_writing(self, tenant_id: TenantId, at: datetime) -> str:
        row = f"{WRITING_PREFIX}{log_row_key(at).removeprefix(LOG_PREFIX)}"
        self._records.upsert(tenant_id, row, {"StampedAt": at})
        return row

    def end_writing(self, tenant_id: TenantId, token: str) -> None:
        if token.startswith(WRITING_PREFIX):
            self._records.delete(tenant_id, token)

    def writing_since(self, tenant_id: TenantId, expired_before: datetime) -> list[datetime]:
        stamps, expired = [], []
        for entity in self._records.iter_partition(tenant_id, row_key_prefix=WRITING_PREFIX, select=["StampedAt"]):
            at = entity.properties.get("StampedAt")
            if not isinstance(at, datetime) or at < expired_before:
                expired.append(entity.row_key)
            else:
                stamps.append(at)
        for row in expired:  # (a call that crashed; its host stopped it long ago)
            self._records.delete(tenant_id, row)
        return stamps

    def record_writes_since(self, tenant_id: TenantId, after: datetime) -> Iterator[LoggedWrite]:
        first = _log_page(self._records, tenant_id, after, None, True)
        return (w for w in self._logged(self._records, tenant_id, after, first) if w.kind != "activities")

    def forget_written(self, tenant_id: TenantId, through: datetime) -> int:
        upper = log_row_key(through + timedelta(microseconds=1)).rpartition("|")[0]

        def forget(log: tuple[TableStore, str]) -> int:
            tables, partition = log
            old = [Operation("delete", e.row_key) for e in tables.iter_partition(
                partition, row_key_prefix=LOG_PREFIX, select=["Kind"]) if e.row_key < upper]
            for transaction in transactions(old):
                try:
                    tables.transact(partition, transaction)
                except ConcurrencyConflict:
                    continue  # another computation deleted some of them meanwhile: the next one finishes
            return len(old)

        logs = self._log_partitions(tenant_id)
        with ThreadPoolExecutor(max_workers=min(_READERS, len(logs))) as pool:
            return sum(pool.map(forget, logs))

    def activities(self, tenant_id: TenantId, keys: Sequence[str]) -> dict[str, Activity]:
        def read(key: str) -> tuple[str, StoredEntity | None]:
            return key, self._activities.get(self._shards.of(tenant_id, key), f"activity|{key}")

        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            found = list(pool.map(read, list(dict.fromkeys(keys))))
        return {key: decode(live, Activity) for key, e in found if (live := _live(e)) is not None}

    def iter_records(self, tenant_id: TenantId, kind: str, source: Source | None = None) -> Iterator[Any]:
        """Every record of a kind (activities: of one source only, if given)."""
        model = RECORD_KINDS[kind]
        partitions = self._shards.all(tenant_id) if kind == "activities" else [tenant_id]
        for partition in partitions:
            for entity in self._tables_of(kind).iter_partition(partition, row_key_prefix=prefix(kind, source)):
                if entity.properties.get(DELETED) is not True:
                    yield decode(entity, model)

    def iter_activities(self, tenant_id: TenantId, *, with_ingested_at: bool = True, removed: bool = False,
                        ) -> Iterator[tuple[Activity, datetime | None]]:
        """Every activity, with the moment it was stored unless not wanted (decoding it is a third of the scan);
        tombstones too, as RemovedActivity, when `removed`. Only the first part of each document is fetched; the
        rare larger one is read whole."""
        for partition in self._shards.all(tenant_id):
            for entity in self._activities.iter_partition(partition, row_key_prefix=prefix("activities"),
                                                          select=_activity_columns(with_ingested_at)):
                found = self._decoded(partition, entity, with_ingested_at=with_ingested_at, removed=removed)
                if found is not None:
                    yield found

    def activities_page(self, tenant_id: TenantId, after: str | None, limit: int) -> tuple[list[Activity], str | None]:
        """In key order within each shard, shard after shard."""
        page: list[Activity] = []
        scanned = 0
        first, last = self._shards.at(after)
        for shard in range(first, self._shards.count):
            partition = self._shards.partition(tenant_id, shard)
            for entity in self._activities.iter_partition(partition, row_key_prefix=prefix("activities"),
                                                          select=_activity_columns(False), after=last):
                found = self._decoded(partition, entity, with_ingested_at=False, removed=False)
                if found is not None:
                    page.append(found[0])
                scanned += 1
                if scanned == limit:  # (the next page may be empty: one more query says so)
                    return page, self._shards.position(shard, entity.row_key)
            last = None
        return page, None

    def _decoded(self, partition: str, entity: StoredEntity, *, with_ingested_at: bool, removed: bool,
                 ) -> tuple[Activity, datetime | None] | None:
        deleted = entity.properties.get(DELETED) is True
        if deleted and not removed:
            return None
        if int(entity.properties.get("DocChunks") or 1) > 1:  # type: ignore[arg-type]
            whole = self._activities.get(partition, entity.row_key)
            if whole is None:  # deleted (purged) since the scan passed it
                return None
            entity = whole
        ingested = entity.properties.get("IngestedAt") if with_ingested_at else None
        return (decode(entity, RemovedActivity if deleted else Activity),
                ingested if isinstance(ingested, datetime) else None)

    def remove(self, tenant_id: TenantId, kind: str, keys: Sequence[str], removed_at: datetime) -> list[str]:
        """Tombstones for these record keys, written conditionally on the version read (a row changed meanwhile
        is read and judged again); the keys removed now."""
        pending = list(dict.fromkeys(keys))
        removed: list[str] = []
        tables = self._tables_of(kind)
        for _ in range(_ATTEMPTS):
            if not pending:
                break
            with ThreadPoolExecutor(max_workers=_READERS) as pool:
                found = list(pool.map(
                    lambda key: (key, tables.get(self._partition_of(tenant_id, kind, key), key_row(kind, key))),
                    pending))
            operations: dict[str, Operation] = {}
            for key, entity in found:
                if entity is None or entity.properties.get(DELETED) is True:
                    continue
                version = entity.properties.get("Version")
                properties = {name: value for name, value in entity.properties.items()
                              if name in ("Kind", "SchemaVersion", "DocChunks") or name.startswith("Doc")}
                properties.update({"Version": (version if isinstance(version, int) else 0) + 1,
                                   "IngestedAt": removed_at, DELETED: True})
                operations[key] = Operation("replace", entity.row_key, properties, entity.etag)
            pending = []
            documents = {key: _document(entity) for key, entity in found if entity is not None and key in operations}
            # The log row beside them holds the documents they removed.
            for partition, group in self._transactions(tenant_id, kind, list(operations.items())):
                keys = [key for key, _ in group]
                log = _log_row(kind, removed_at, keys, {k: d for k in keys if (d := documents[k]) is not None})
                try:
                    tables.transact(partition, [*(operation for _, operation in group), log,
                                                *_version_bump(kind, log)])
                    removed += keys
                except ConcurrencyConflict:  # one of them changed: judge each again
                    pending += [key for key, _ in group]
        return removed

    def purge_exchange(self, tenant_id: TenantId, ingested_through: datetime, enough: Callable[[], bool],
                       after: str | None = None) -> PurgeProgress:
        """Deletes Exchange-derived rows ingested at or before the given time, until done or `enough()`."""
        def due(entity: StoredEntity) -> bool:
            ingested = entity.properties.get("IngestedAt")
            return not (isinstance(ingested, datetime) and ingested > ingested_through)

        return self._delete_where(tenant_id, prefix("activities", Source.EXCHANGE), due, enough, after)

    def purge_people(self, tenant_id: TenantId, addresses: frozenset[str], user_ids: frozenset[str],
                     enough: Callable[[], bool], after: str | None = None) -> PurgeProgress:
        """Deletes the activity rows in which one of these people takes part, or that came from one of these
        users' mailboxes (their data, after an opt-out), until done or `enough()`."""
        def theirs(entity: StoredEntity) -> bool:
            activity = decode(entity, Activity)
            return bool(addresses.intersection(activity.parties)) or activity.mailbox_owner_id in user_ids

        return self._delete_where(tenant_id, prefix("activities"), theirs, enough, after)

    def _delete_where(self, tenant_id: TenantId, row_prefix: str, wanted: Callable[[StoredEntity], bool],
                      enough: Callable[[], bool], after: str | None) -> PurgeProgress:
        """Bounded, resumable deletion in transactions of 100 (99 rows and their log entry, which keeps the
        deleted documents so that the aggregates they counted in follow); the position is the last key judged."""
        deleted = scanned = 0
        first, last = self._shards.at(after)
        for shard in range(first, self._shards.count):
            partition = self._shards.partition(tenant_id, shard)
            batch: list[StoredEntity] = []
            for entity in self._activities.iter_partition(partition, row_key_prefix=row_prefix, after=last):
                scanned += 1
                if scanned % 500 == 0 and enough():  # a scan that finds little must stop in time too
                    deleted += self._delete(partition, batch) if batch else 0
                    return PurgeProgress(deleted, False, self._shards.position(shard, last))
                last = entity.row_key
                if not wanted(entity):
                    continue
                batch.append(entity)
                if len(batch) == MAX_BATCH_OPERATIONS - 1:
                    deleted += self._delete(partition, batch)
                    batch = []
                    if enough():
                        return PurgeProgress(deleted, False, self._shards.position(shard, last))
            if batch:
                deleted += self._delete(partition, batch)
            last = None
        return PurgeProgress(deleted, True)

    def _delete(self, partition: str, rows: list[StoredEntity]) -> int:
        """One transaction; if a row changed or went meanwhile (another purge of the tenant, a newer version),
        row by row, leaving those. Only the version that was judged is deleted: a row replaced since (a newer
        version, ingested after Exchange came back) is not this purge's to delete."""
        keys = [e.row_key.removeprefix("activity|") for e in rows]
        documents = {k: d for k, e in zip(keys, rows, strict=True) if (d := _document(e)) is not None}
        at = datetime.now(UTC)
        batch = [Operation("delete", e.row_key, etag=e.etag) for e in rows]
        try:
            self._activities.transact(partition, [*batch, _log_row("activities", at, keys, documents, removed=True)])
            return len(batch)
        except ConcurrencyConflict:
            # First, and without `Removed`: the refresh reads what stays (an entry for a row that stays is harmless).
            self._activities.transact(partition, [_log_row("activities", at, keys, documents)])
            deleted = 0
            for operation in batch:
                try:
                    self._activities.delete(partition, operation.row_key, operation.etag)
                    deleted += 1
                except ConcurrencyConflict:
                    continue
            return deleted


def _log_page(tables: TableStore, partition: str, after: datetime | None, continuation: str | None,
              documents: bool) -> Page:
    start = log_row_key(after + timedelta(microseconds=1)).rpartition("|")[0] if after else LOG_PREFIX
    upper = LOG_PREFIX[:-1] + chr(ord("|") + 1)
    return tables.query_partition(partition, row_key_from=start, row_key_before=upper, page_size=1000,
                                  continuation=continuation, select=None if documents else _LOG_NAMES)


_PER_TRANSACTION = MAX_BATCH_OPERATIONS - 2  # records beside the log's row and the version's


def _version_bump(kind: str, log: Operation) -> list[Operation]:
    return [] if kind == "activities" else [Operation("upsert", RECORDS_VERSION_ROW, {"LastWrite": log.row_key})]


def _document(entity: StoredEntity) -> str | None:
    try:
        count = int(entity.properties.get("DocChunks", 1))  # type: ignore[arg-type]
        return "".join(str(entity.properties[f"Doc{i}"]) for i in range(count))
    except (KeyError, TypeError, ValueError):
        return None


def _log_row(kind: str, ingested_at: datetime, keys: list[str], previous: dict[str, str], *,
             removed: bool = False, current: dict[str, str] | None = None) -> Operation:
    properties: Properties = {"Kind": kind, "IngestedAt": ingested_at, "Keys": json.dumps(keys)}
    if removed:
        properties["Removed"] = True
    chunks = split_text(json.dumps(previous)) if previous else []
    properties["PrevChunks"] = len(chunks)
    for index, chunk in enumerate(chunks):
        properties[f"Prev{index}"] = chunk
    written = split_text(json.dumps(current)) if current else []
    if written and len(chunks) + len(written) <= _LOG_CHUNKS:  # (else the reader reads the rows)
        properties["CurChunks"] = len(written)
        for index, chunk in enumerate(written):
            properties[f"Cur{index}"] = chunk
    return Operation("create", log_row_key(ingested_at), properties)


# A log row's documents (replaced and written) in at most this many properties of 32 Ki characters: well within an
# entity's 1 MiB.
_LOG_CHUNKS = 12



def _operation(kind: str, record: BaseModel, stored: StoredVersion | None, ingested_at: datetime) -> Operation:
    properties = {**encode(kind, record), "Version": record.version,  # type: ignore[attr-defined]
                  "IngestedAt": ingested_at}
    key = row_key(kind, record)
    return (Operation("create", key, properties) if stored is None
            else Operation("replace", key, properties, stored.etag))
