"""Tenant settings, their audit trail and the synced role catalogue, in the tenant's partition.

Rows: `settings` (the aggregate), `audit|{inverted revision}` (newest first in RowKey order); the role catalogue
a connector synced is read from its `securityRoles|{id}` rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.domain.audit import AuditEvent
from shared.domain.security_roles import SecurityRole
from shared.domain.tenant_settings import TenantSettings
from shared.services.ports import AuditPage, Current
from shared.storage.documents import DocumentStore, decode, encode
from shared.storage.records_repository import TableRecords
from shared.storage.tables import Operation, TableStore
from shared.tenancy import TenantId

SETTINGS_ROW = "settings"
AUDIT_PREFIX = "audit|"
_MAX_REVISION = 10**19


def audit_row_key(event: AuditEvent) -> str:
    # Inverted revision: newest first in RowKey order, and two changes can never share a key (the second
    # transaction fails whole, like its stale settings write).
    return f"{AUDIT_PREFIX}{_MAX_REVISION - event.sequence:020d}"


class TableSettingsRepository:
    """Implements the SettingsRepository port on the tenant's partition."""

    def __init__(self, tables: TableStore) -> None:
        self._tables = tables
        self._documents = DocumentStore(tables)

    def load(self, tenant_id: TenantId) -> Current:
        stored = self._documents.load(tenant_id, SETTINGS_ROW, TenantSettings)
        if stored is None:
            return Current(TenantSettings(tenant_id=tenant_id), None)
        return Current(stored.document, stored.etag)

    def save(self, tenant_id: TenantId, settings: TenantSettings, etag: str | None, event: AuditEvent) -> str:
        etags = self._tables.transact(tenant_id, [
            DocumentStore.operation(SETTINGS_ROW, settings, etag),
            Operation("create", audit_row_key(event), encode("audit", event)),
        ])
        new_etag = etags[0]
        assert new_etag is not None
        return new_etag

    def audit(self, tenant_id: TenantId, page_size: int, continuation: str | None) -> AuditPage:
        page = self._tables.query_partition(tenant_id, row_key_from=AUDIT_PREFIX, row_key_before="audit}",
                                            page_size=page_size, continuation=continuation)
        return AuditPage([decode(e, AuditEvent) for e in page.entities], page.continuation)

    def role_catalogue(self, tenant_id: TenantId) -> Sequence[SecurityRole] | None:
        """The catalogue a connector synced (`POST /api/sync/securityRoles`), or None when there is none."""
        roles = [SecurityRole(id=r.id.lower(), name=r.name)
                 for r in TableRecords(self._tables).iter_records(tenant_id, "securityRoles")]
        return roles or None
