"""Computed insights in the tenant's partition: `insight|{entity type}|{id}` rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from shared.domain.insights.directory import EntityType
from shared.domain.insights.snapshot import RecordInsight
from shared.storage.documents import decode, encode
from shared.storage.tables import MAX_BATCH_OPERATIONS, Operation, TableStore
from shared.tenancy import TenantId

PREFIX = "insight|"
DOMAIN_PREFIX = "wkw-domain|"
_BATCH_BYTES = 3 * 1024 * 1024  # below the 4 MiB of a transaction, with room for the envelope


def row_key(entity_type: str, record_id: str) -> str:
    return f"{PREFIX}{entity_type}|{record_id}"


class TableInsights:
    def __init__(self, tables: TableStore) -> None:
        self._tables = tables

    def get(self, tenant_id: TenantId, entity_type: EntityType, record_id: str) -> RecordInsight | None:
        entity = self._tables.get(tenant_id, row_key(entity_type, record_id))
        return None if entity is None else decode(entity, RecordInsight)

    def iter(self, tenant_id: TenantId, entity_type: EntityType | None = None) -> Iterator[RecordInsight]:
        prefix = PREFIX if entity_type is None else f"{PREFIX}{entity_type}|"
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=prefix):
            yield decode(entity, RecordInsight)

    def account_of_domain(self, tenant_id: TenantId, domain: str) -> str | None:
        entity = self._tables.get(tenant_id, DOMAIN_PREFIX + domain)
        return None if entity is None else str(entity.properties["AccountId"])

    def replace_all(self, tenant_id: TenantId, insights: Sequence[RecordInsight], stale: Sequence[str]) -> None:
        """Upserts the new insights (and the email-domain → account rows) and deletes rows of records that are
        gone, in size-bounded transactions."""
        operations = [Operation("upsert", row_key(i.entity_type, i.id), encode("insight", i)) for i in insights]
        operations += [Operation("delete", key) for key in stale]
        domains = {d: i.id for i in insights for d in i.email_domains}
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=DOMAIN_PREFIX):
            domain = entity.row_key.removeprefix(DOMAIN_PREFIX)
            if domains.get(domain) == entity.properties.get("AccountId"):
                domains.pop(domain)
            elif domain not in domains:
                operations.append(Operation("delete", entity.row_key))
        operations += [Operation("upsert", DOMAIN_PREFIX + d, {"AccountId": a}) for d, a in domains.items()]
        batch: list[Operation] = []
        size = 0
        for op in operations:
            op_size = sum(len(str(v)) for v in op.properties.values()) + 256
            if batch and (len(batch) == MAX_BATCH_OPERATIONS or size + op_size > _BATCH_BYTES):
                self._tables.transact(tenant_id, batch)
                batch, size = [], 0
            batch.append(op)
            size += op_size
        if batch:
            self._tables.transact(tenant_id, batch)
