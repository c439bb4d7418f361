"""Per-record aggregates in the tenant's partition (see `shared.domain.insights.ledger`).

Rows: `lg|{entity type}|{id}|{yyyymm}` hold the facts of one record's month, `lg|{entity type}|{id}|~` the
partials of all its months. What an insight needs now (the partials and the months since `recent_from`) is
then one range query per record, whatever the record's history; `ledgers-meta` says up to when the ledgers
were built from the log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from shared.domain.insights.directory import EntityType
from shared.services.ports import LEDGER_SUMMARY, LedgerState
from shared.storage.documents import split_text
from shared.storage.tables import Operation, Properties, StoredEntity, TableStore, transactions
from shared.tenancy import TenantId

PREFIX = "lg|"
META_ROW = "ledgers-meta"
_READERS = 8
_WRITERS = 4
Key = tuple[EntityType, str]


def _row(key: Key, month: str) -> str:
    return f"{PREFIX}{key[0]}|{key[1]}|{month}"


def _properties(value: Any) -> Properties:
    chunks = split_text(json.dumps(value, separators=(",", ":")))
    properties: Properties = {"DChunks": len(chunks)}
    for index, chunk in enumerate(chunks):
        properties[f"D{index}"] = chunk
    return properties


def _value(entity: StoredEntity) -> Any:
    count = int(entity.properties.get("DChunks") or 0)  # type: ignore[arg-type]
    return json.loads("".join(str(entity.properties[f"D{i}"]) for i in range(count)) or "null")


class TableLedgers:
    """Implements the LedgerRepository port."""

    def __init__(self, tables: TableStore) -> None:
        self._tables = tables

    def read(self, tenant_id: TenantId, key: Key, recent_from: str, months: Iterable[str] = ()) -> LedgerState:
        state = LedgerState()
        base = _row(key, "")
        page: str | None = None
        while True:
            found = self._tables.query_partition(tenant_id, row_key_from=base + recent_from,
                                                 row_key_before=base + "~~", page_size=1000, continuation=page)
            for entity in found.entities:
                self._take(state, entity.row_key.removeprefix(base), entity)
            if found.continuation is None:
                break
            page = found.continuation
        for month in sorted(set(months) - set(state.months)):
            if month >= recent_from:
                state.etags.setdefault(month, None)
                state.months.setdefault(month, [])
                continue
            stored = self._tables.get(tenant_id, base + month)
            if stored is None:
                state.months[month], state.etags[month] = [], None
            else:
                self._take(state, month, stored)
        state.etags.setdefault(LEDGER_SUMMARY, None)
        return state

    @staticmethod
    def _take(state: LedgerState, month: str, entity: StoredEntity) -> None:
        value = _value(entity)
        state.etags[month] = entity.etag
        if month == LEDGER_SUMMARY:
            state.partials = value or {}
        else:
            state.months[month] = value or []

    def read_many(self, tenant_id: TenantId, keys: Sequence[Key], recent_from: str) -> dict[Key, LedgerState]:
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            states = list(pool.map(lambda key: self.read(tenant_id, key, recent_from), keys))
        return dict(zip(keys, states, strict=True))

    def write(self, tenant_id: TenantId, key: Key, state: LedgerState, changed: Iterable[str]) -> None:
        operations = []
        for month in sorted(set(changed)):
            etag = state.etags.get(month)
            entries = state.months.get(month) or []
            if not entries:
                if etag is not None:
                    operations.append(Operation("delete", _row(key, month), etag=etag))
                continue
            properties = _properties(entries)
            operations.append(Operation("create", _row(key, month), properties) if etag is None
                              else Operation("replace", _row(key, month), properties, etag))
        etag = state.etags.get(LEDGER_SUMMARY)
        properties = _properties(state.partials)
        operations.append(Operation("create", _row(key, LEDGER_SUMMARY), properties) if etag is None
                          else Operation("replace", _row(key, LEDGER_SUMMARY), properties, etag))
        for transaction in transactions(operations):
            self._tables.transact(tenant_id, transaction)

    def replace_all(self, tenant_id: TenantId, ledgers: dict[Key, dict[str, list[Any]]],
                    partials: dict[Key, dict[str, dict[str, Any]]]) -> None:
        rows: dict[str, Properties] = {}
        for key in sorted(set(ledgers) | set(partials)):
            for month, entries in sorted(ledgers.get(key, {}).items()):
                if entries:
                    rows[_row(key, month)] = _properties(entries)
            rows[_row(key, LEDGER_SUMMARY)] = _properties(partials.get(key, {}))
        stale = [Operation("delete", e.row_key) for e in self._tables.iter_partition(
            tenant_id, row_key_prefix=PREFIX, select=["DChunks"]) if e.row_key not in rows]
        operations = [Operation("upsert", row, properties) for row, properties in rows.items()] + stale
        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            list(pool.map(lambda batch: self._tables.transact(tenant_id, batch), transactions(operations)))

    def built_through(self, tenant_id: TenantId) -> tuple[datetime, frozenset[str]] | None:
        entity = self._tables.get(tenant_id, META_ROW)
        value = entity.properties.get("BuiltThrough") if entity else None
        if entity is None or not isinstance(value, datetime):
            return None
        return value, frozenset(json.loads(str(entity.properties.get("Seen") or "[]")))

    def mark_built(self, tenant_id: TenantId, through: datetime, seen: Iterable[str]) -> None:
        self._tables.upsert(tenant_id, META_ROW, {"BuiltThrough": through, "Seen": json.dumps(sorted(seen))})
