"""Composition root: builds the adapters once per process, from settings, on first use.

Entry points call `services()`; nothing touches the network or imports heavy SDKs at import time.
Tests and the dev host may `install()` their own container (for example with a fixed clock).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from shared import observability
from shared.clock import Clock, SystemClock
from shared.config import Settings
from shared.identity.consent_verifier import ConsentVerifier, MsalConsentVerifier
from shared.identity.permissions import RolePolicy
from shared.identity.tokens import AccessTokenValidator, SigningKeys, https_json_getter, https_session
from shared.services.consent import ConsentConfig, ConsentService
from shared.services.consent_timer import ConsentTimer
from shared.services.insights import InsightsService
from shared.services.settings import SettingsService
from shared.services.sync import SyncService
from shared.storage.consent_requests import TableConsentRequests
from shared.storage.documents import DocumentStore
from shared.storage.insights_repository import TableInsights
from shared.storage.records_repository import TableRecords
from shared.storage.schedule_index import TableScheduleIndex
from shared.storage.settings_repository import TableSettingsRepository
from shared.storage.tables import TableStore


@dataclass
class Services:
    settings: Settings
    clock: Clock
    tables: TableStore
    documents: DocumentStore
    tokens: AccessTokenValidator
    roles: RolePolicy
    consent_verifier: ConsentVerifier

    def settings_service(self) -> SettingsService:
        return SettingsService(TableSettingsRepository(self.tables), self.clock, TableScheduleIndex(self.tables))

    def sync_service(self) -> SyncService:
        return SyncService(self.settings_service(), TableRecords(self.tables), self.clock,
                           TableScheduleIndex(self.tables))

    def insights_service(self) -> InsightsService:
        return InsightsService(self.settings_service(), TableRecords(self.tables), TableInsights(self.tables),
                               self.clock, TableScheduleIndex(self.tables))

    def consent_timer(self) -> ConsentTimer:
        return ConsentTimer(self.settings_service(), TableScheduleIndex(self.tables), self.clock, self.consent_service,
                            TableRecords(self.tables), self.insights_service())

    def consent_service(self) -> ConsentService:
        client_id, redirect_uri = self.settings.consent_settings()
        return ConsentService(
            self.settings_service(), TableConsentRequests(self.documents), self.consent_verifier, self.clock,
            ConsentConfig(authority_host=self.settings.authority_host, client_id=client_id,
                          redirect_uri=redirect_uri,
                          proof_backoff_seconds=self.settings.consent_proof_backoff_seconds))


_services: Services | None = None
_lock = threading.Lock()


def build(settings: Settings, *, clock: Clock | None = None) -> Services:
    observability.install()
    if settings.storage_connection:
        tables = TableStore.from_connection_string(settings.storage_connection, settings.state_table)
    else:
        from shared.identity.managed_identity import ManagedIdentityCredential

        assert settings.tables_endpoint is not None
        tables = TableStore.from_endpoint(settings.tables_endpoint, ManagedIdentityCredential(), settings.state_table)
    keys = SigningKeys(settings.authority_host, https_json_getter(settings.ca_bundle))
    return Services(
        settings=settings,
        clock=clock or SystemClock(),
        tables=tables,
        documents=DocumentStore(tables),
        tokens=AccessTokenValidator(settings.authority_host, settings.api_audiences, keys),
        roles=RolePolicy.from_settings(settings),
        consent_verifier=MsalConsentVerifier(
            authority_host=settings.authority_host,
            client_id=settings.client_id or "",
            client_credential=settings.client_credential,
            required_roles=settings.required_graph_permissions,
            http_client_factory=lambda: https_session(settings.ca_bundle),
        ),
    )


def services() -> Services:
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                _services = build(Settings.from_env())
    return _services


def install(container: Services | None) -> None:
    """Replace the process-wide container (None: rebuild from the environment on next use)."""
    global _services
    with _lock:
        _services = container
