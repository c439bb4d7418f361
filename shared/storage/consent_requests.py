"""Consent requests in the tenant's partition, keyed by the hash of the state's secret."""

from __future__ import annotations

from shared.domain.consent import ConsentRequest
from shared.services.ports import Versioned
from shared.storage.documents import DocumentStore
from shared.tenancy import TenantId

PREFIX = "consent-request|"


class TableConsentRequests:
    """Implements the ConsentRequests port on the tenant's partition."""

    def __init__(self, documents: DocumentStore) -> None:
        self._documents = documents

    def create(self, tenant_id: TenantId, secret_hash: str, request: ConsentRequest) -> None:
        self._documents.create(tenant_id, PREFIX + secret_hash, request)

    def get(self, tenant_id: TenantId, secret_hash: str) -> Versioned[ConsentRequest] | None:
        return self._documents.load(tenant_id, PREFIX + secret_hash, ConsentRequest)

    def consume(self, tenant_id: TenantId, secret_hash: str, used: ConsentRequest, etag: str) -> None:
        """Marks the request used, only if nobody did meanwhile (ConcurrencyConflict otherwise)."""
        self._documents.replace(tenant_id, PREFIX + secret_hash, used, etag)
