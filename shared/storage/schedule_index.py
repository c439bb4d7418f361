"""Time-ordered index rows that tell the background work which tenants may need it, so its cost follows the
number of tenants due, not the number of tenants (Table Storage's inter-partition secondary-index pattern).

One partition per kind, RowKey `{due as yyyyMMddTHHmmss.ffffffZ}|{tenant}`: "everything due by now" is a single
range query, however many runs were missed. Rows are hints, never decisions: the work re-reads the tenant's
settings (the source of truth) and acts only if the rule still holds; a stale row is simply deleted. A row also
keeps the lease of the message sent for it and, for long work, how far it got.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from shared.errors import ConcurrencyConflict
from shared.services.ports import IndexEntry, IndexKind
from shared.storage.tables import StoredEntity, TableStore
from shared.tenancy import TenantId

_FORMAT = "%Y%m%dT%H%M%S.%fZ"  # fixed width, so text order is time order


def _partition(kind: IndexKind) -> str:
    # Tenant partitions are GUIDs; a leading "~" keeps index partitions apart and sorted after them.
    return f"~index|{kind.value}"


def _row_key(tenant_id: str, due: datetime) -> str:
    return f"{due.astimezone(UTC).strftime(_FORMAT)}|{tenant_id}"


def _entry(kind: IndexKind, entity: StoredEntity) -> IndexEntry:
    stamp, _, tenant = entity.row_key.partition("|")
    leased = entity.properties.get("LeasedUntil")
    position = entity.properties.get("Position")
    return IndexEntry(kind, TenantId(tenant), datetime.strptime(stamp, _FORMAT).replace(tzinfo=UTC),
                      leased_until=leased if isinstance(leased, datetime) else None,
                      position=position if isinstance(position, str) and position else None, etag=entity.etag)


class TableScheduleIndex:
    """Implements the ScheduleIndex port."""

    def __init__(self, tables: TableStore) -> None:
        self._tables = tables

    def add(self, kind: IndexKind, tenant_id: TenantId, due: datetime) -> None:
        self._tables.upsert(_partition(kind), _row_key(tenant_id, due), {"TenantId": tenant_id, "Due": due})

    def remove(self, kind: IndexKind, tenant_id: TenantId, due: datetime) -> None:
        self._tables.delete(_partition(kind), _row_key(tenant_id, due))

    def get(self, kind: IndexKind, tenant_id: TenantId, due: datetime) -> IndexEntry | None:
        entity = self._tables.get(_partition(kind), _row_key(tenant_id, due))
        return None if entity is None else _entry(kind, entity)

    def keep(self, entry: IndexEntry, *, leased_until: datetime, position: str | None) -> IndexEntry | None:
        assert entry.etag is not None, "keep() needs the entry as it was read"
        try:
            etag = self._tables.merge(_partition(entry.kind), _row_key(entry.tenant_id, entry.due),
                                      {"LeasedUntil": leased_until, "Position": position or ""}, entry.etag)
        except ConcurrencyConflict:
            return None
        return IndexEntry(entry.kind, entry.tenant_id, entry.due, leased_until, position, etag)

    def due(self, kind: IndexKind, now: datetime) -> Iterator[IndexEntry]:
        """Rows due at or before `now`, oldest first."""
        upper = now.astimezone(UTC).strftime(_FORMAT) + "|~"
        continuation: str | None = None
        while True:
            page = self._tables.query_partition(_partition(kind), row_key_before=upper, page_size=1000,
                                                continuation=continuation)
            for entity in page.entities:
                yield _entry(kind, entity)
            if page.continuation is None:
                return
            continuation = page.continuation
