"""Computed insights in the tenant's partition: `insight|{entity type}|{id}` rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from shared.domain.insights.directory import EntityType
from shared.domain.insights.model import RecordInsight
from shared.services.ports import RecomputeStatus, RecordKey
from shared.storage.documents import decode, encode
from shared.storage.tables import Operation, TableStore, transactions
from shared.tenancy import TenantId

PREFIX = "insight|"
DOMAIN_PREFIX = "wkw-domain|"
META_ROW = "insights-meta"
RECOMPUTE_ROW = "insights-recompute"
_RECOMPUTE_FACTS = {"requested_at": "RequestedAt", "started_at": "StartedAt", "finished_at": "FinishedAt",
                    "records": "Records", "activities": "Activities"}


def row_key(entity_type: str, record_id: str) -> str:
    return f"{PREFIX}{entity_type}|{record_id}"


class TableInsights:
    """Implements the InsightRepository port on the tenant's partition."""

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

    def replace_all(self, tenant_id: TenantId, insights: Sequence[RecordInsight], stale: Iterable[RecordKey],
                    ) -> None:
        """Upserts the new insights (and the email-domain → account rows) and deletes rows of records that are
        gone, in size-bounded transactions."""
        operations = [Operation("upsert", row_key(i.entity_type, i.id), encode("insight", i)) for i in insights]
        operations += [Operation("delete", row_key(*key)) for key in stale]
        domains = {d: i.id for i in insights for d in i.email_domains}
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=DOMAIN_PREFIX):
            domain = entity.row_key.removeprefix(DOMAIN_PREFIX)
            if domains.get(domain) == entity.properties.get("AccountId"):
                domains.pop(domain)
            elif domain not in domains:
                operations.append(Operation("delete", entity.row_key))
        operations += [Operation("upsert", DOMAIN_PREFIX + d, {"AccountId": a}) for d, a in domains.items()]
        self._write(tenant_id, operations)

    def update(self, tenant_id: TenantId, insights: Sequence[RecordInsight]) -> None:
        """Upserts some records' insights, leaving the others (and the domain rows) as they are."""
        self._write(tenant_id, [Operation("upsert", row_key(i.entity_type, i.id), encode("insight", i))
                                for i in insights])

    def _write(self, tenant_id: TenantId, operations: Sequence[Operation]) -> None:
        for transaction in transactions(operations):
            self._tables.transact(tenant_id, transaction)
