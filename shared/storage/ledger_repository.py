"""Per-record aggregates in the tenant's partition (see `shared.domain.insights.ledger`).

Rows: `lg|{entity type}|{id}|{yyyy}Q{n}` hold the facts of one record's quarter, `lg|{entity type}|{id}|~` the
partials of its quarters since its horizon and the earlier ones folded (its base), `lg|{entity type}|{id}|!`
the earlier quarters' own partials (read only to change one of them, or to move the horizon). What an insight
needs now (the summary and the quarters since `recent_from`, which the summary's partials name) is a few point
reads per record, bounded however old the record is; `ledgers-meta` says up to when the ledgers were built from
the log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from shared.domain.insights.directory import EntityType
from shared.errors import ConcurrencyConflict
from shared.services.ports import LEDGER_ARCHIVE, LEDGER_SUMMARY, LedgerState
from shared.storage.documents import split_text
from shared.storage.tables import (
    MAX_BATCH_OPERATIONS,
    WRITER_BATCH_BYTES,
    Operation,
    Properties,
    StoredEntity,
    TableStore,
    operation_bytes,
    transactions,
)
from shared.tenancy import TenantId

PREFIX = "lg|"
META_ROW = "ledgers-meta"
_READERS = 8
_WRITERS = 4
Key = tuple[EntityType, str]


def _row(key: Key, month: str) -> str:
    return f"{PREFIX}{key[0]}|{key[1]}|{month}"


def _properties(value: Any, period: str) -> Properties:
    chunks = split_text(json.dumps(value, separators=(",", ":")))
    # `Period` (the quarter, or the summary's "~", the archive's "!", as in the key) lets one query of the tenant's
    # ledgers leave out the rows an insight does not read.
    properties: Properties = {"Period": period, "DChunks": len(chunks)}
    for index, chunk in enumerate(chunks):
        properties[f"D{index}"] = chunk
    return properties


def _value(entity: StoredEntity) -> Any:
    count = int(entity.properties.get("DChunks") or 0)  # type: ignore[arg-type]
    return json.loads("".join(str(entity.properties[f"D{i}"]) for i in range(count)) or "null")


def summary_of(state: LedgerState) -> dict[str, Any]:
    return {"h": state.horizon, "b": state.base, "p": state.partials}


class TableLedgers:
    """Implements the LedgerRepository port."""

    def __init__(self, tables: TableStore) -> None:
        self._tables = tables

    def read(self, tenant_id: TenantId, key: Key, recent_from: str, months: Iterable[str] = (), *,
             with_archive: bool = False) -> LedgerState:
        # Point reads only: the summary names the periods since its horizon that hold facts (their partials), so
        # the recent ones are read by key. (A range query costs Azurite a scan of the whole table.)
        state = LedgerState()
        base = _row(key, "")
        summary = self._tables.get(tenant_id, base + LEDGER_SUMMARY)
        if summary is not None:
            self._take(state, LEDGER_SUMMARY, summary)
        state.etags.setdefault(LEDGER_SUMMARY, None)
        held = set(state.partials)
        wanted = {m for m in held if m >= recent_from} | set(months)
        for month in sorted(wanted):
            if month >= state.horizon and month not in held:  # no facts: no row
                state.months[month], state.etags[month] = [], None
                continue
            stored = self._tables.get(tenant_id, base + month)
            if stored is None:
                state.months[month], state.etags[month] = [], None
            else:
                self._take(state, month, stored)
        if with_archive:
            archive = self._tables.get(tenant_id, base + LEDGER_ARCHIVE)
            state.archive = {} if archive is None else _value(archive) or {}
            state.etags[LEDGER_ARCHIVE] = None if archive is None else archive.etag
        return state

    @staticmethod
    def _take(state: LedgerState, month: str, entity: StoredEntity) -> None:
        value = _value(entity)
        state.etags[month] = entity.etag
        if month == LEDGER_SUMMARY:
            summary = value or {}
            state.partials, state.base, state.horizon = summary.get("p", {}), summary.get("b", {}), summary.get("h", "")
        else:
            state.months[month] = value or []

    def read_many(self, tenant_id: TenantId, keys: Sequence[Key], recent_from: str) -> dict[Key, LedgerState]:
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            states = list(pool.map(lambda key: self.read(tenant_id, key, recent_from), keys))
        return dict(zip(keys, states, strict=True))

    def read_all(self, tenant_id: TenantId, keys: Sequence[Key], recent_from: str) -> dict[Key, LedgerState]:
        """What `read` gives for each of these records, from one query of the tenant's ledgers in pages (the
        service leaves out the archives and the quarters before `recent_from`): for a computation of most records,
        a few round trips instead of one a record."""
        wanted = set(keys)
        states: dict[Key, LedgerState] = {}
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=PREFIX,
                                                  at_least=("Period", recent_from)):
            _, entity_type, record_id, period = entity.row_key.split("|", 3)
            key: Key = (entity_type, record_id)  # type: ignore[assignment]
            if key in wanted:
                self._take(states.setdefault(key, LedgerState()), period, entity)
        for key in keys:
            states.setdefault(key, LedgerState()).etags.setdefault(LEDGER_SUMMARY, None)
        return {key: states[key] for key in keys}

    def write(self, tenant_id: TenantId, key: Key, state: LedgerState, changed: Iterable[str]) -> None:
        for transaction in transactions(self._operations(key, state, changed)):
            self._tables.transact(tenant_id, transaction)

    def write_many(self, tenant_id: TenantId, writes: Sequence[tuple[Key, LedgerState, set[str]]]) -> list[Key]:
        groups: list[tuple[list[Key], list[Operation]]] = [([], [])]
        for key, state, changed in writes:
            operations = self._operations(key, state, changed)
            keys, batch = groups[-1]
            if batch and (len(batch) + len(operations) > MAX_BATCH_OPERATIONS or sum(
                    operation_bytes(o) for o in [*batch, *operations]) > WRITER_BATCH_BYTES):
                groups.append(([], []))
                keys, batch = groups[-1]
            keys.append(key)
            batch.extend(operations)
        failed: list[Key] = []

        def submit(group: tuple[list[Key], list[Operation]]) -> None:
            keys, batch = group
            if not batch:
                return
            try:
                if len(batch) > MAX_BATCH_OPERATIONS:
                    for transaction in transactions(batch):
                        self._tables.transact(tenant_id, transaction)
                else:
                    self._tables.transact(tenant_id, batch)
            except ConcurrencyConflict:
                failed.extend(keys)

        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            list(pool.map(submit, groups))
        return failed

    @staticmethod
    def _operations(key: Key, state: LedgerState, changed: Iterable[str]) -> list[Operation]:
        operations = []
        for month in sorted(set(changed)):
            etag = state.etags.get(month)
            entries = state.months.get(month) or []
            if not entries:
                if etag is not None:
                    operations.append(Operation("delete", _row(key, month), etag=etag))
                continue
            properties = _properties(entries, month)
            operations.append(Operation("create", _row(key, month), properties) if etag is None
                              else Operation("replace", _row(key, month), properties, etag))
        documents = [(LEDGER_SUMMARY, summary_of(state))]
        if state.archive is not None:
            documents.append((LEDGER_ARCHIVE, state.archive))
        for name, document in documents:
            etag = state.etags.get(name)
            properties = _properties(document, name)
            operations.append(Operation("create", _row(key, name), properties) if etag is None
                              else Operation("replace", _row(key, name), properties, etag))
        return operations

    def replace_all(self, tenant_id: TenantId, ledgers: dict[Key, LedgerState]) -> None:
        rows: dict[str, Properties] = {}
        for key in sorted(ledgers):
            state = ledgers[key]
            for month, entries in sorted(state.months.items()):
                if entries:
                    rows[_row(key, month)] = _properties(entries, month)
            rows[_row(key, LEDGER_SUMMARY)] = _properties(summary_of(state), LEDGER_SUMMARY)
            if state.archive:
                rows[_row(key, LEDGER_ARCHIVE)] = _properties(state.archive, LEDGER_ARCHIVE)
        stale = [Operation("delete", e.row_key) for e in self._tables.iter_partition(
            tenant_id, row_key_prefix=PREFIX, select=["DChunks"]) if e.row_key not in rows]
        operations = [Operation("upsert", row, properties) for row, properties in rows.items()] + stale
        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            list(pool.map(lambda batch: self._tables.transact(tenant_id, batch), transactions(operations)))

    def about(self, tenant_id: TenantId, key: Key) -> list[str]:
        base = _row(key, "")
        keys: list[str] = []
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=base):
            period = entity.row_key.removeprefix(base)
            if period in (LEDGER_SUMMARY, LEDGER_ARCHIVE):
                continue
            keys.extend(fact[0] for bits, fact in _value(entity) or [] if bits & 2)
        return keys

    def built_through(self, tenant_id: TenantId) -> tuple[datetime, frozenset[str]] | None:
        entity = self._tables.get(tenant_id, META_ROW)
        value = entity.properties.get("BuiltThrough") if entity else None
        if entity is None or not isinstance(value, datetime):
            return None
        count = int(entity.properties.get("SeenChunks") or 0)  # type: ignore[arg-type]
        text = "".join(str(entity.properties[f"Seen{i}"]) for i in range(count)) if count else \
            str(entity.properties.get("Seen") or "[]")  # as marked before the list was cut into chunks
        return value, frozenset(json.loads(text))

    def mark_built(self, tenant_id: TenantId, through: datetime, seen: Iterable[str]) -> None:
        chunks = split_text(json.dumps(sorted(seen), separators=(",", ":")))  # up to ~5,000 log entries' keys
        properties: Properties = {"BuiltThrough": through, "SeenChunks": len(chunks)}
        properties.update((f"Seen{i}", chunk) for i, chunk in enumerate(chunks))
        self._tables.upsert(tenant_id, META_ROW, properties)
