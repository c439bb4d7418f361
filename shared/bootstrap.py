"""Composition root: builds the adapters once per process, from the app's configuration, on first use, and
wires them into the services.

Entry points call `container()`; nothing touches the network or imports heavy SDKs at import time.
Tests and the dev host may `install()` their own container (for example with a fixed clock).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

from shared import observability
from shared.clock import Clock, SystemClock
from shared.config import AppConfig, ConfigurationError
from shared.identity.consent_verifier import MsalConsentVerifier
from shared.identity.permissions import RolePolicy
from shared.identity.tokens import AccessTokenValidator, SigningKeys, https_json_getter, https_session
from shared.services.background.consent_deadline import ConsentDeadlines
from shared.services.background.consent_recheck import ConsentRechecks
from shared.services.background.exchange_purge import ExchangePurge
from shared.services.background.insights_update import InsightsUpdate
from shared.services.background.opt_out_purge import OptOutPurge
from shared.services.background.scheduler import BackgroundScheduler
from shared.services.background.worker import BackgroundWorker
from shared.services.consent import ConsentConfig, ConsentService
from shared.services.insights import InsightsService
from shared.services.ports import ConsentVerifier, WorkMessage, WorkQueue
from shared.services.sync import SyncService
from shared.services.tenant_settings import TenantSettingsService
from shared.storage.consent_requests import TableConsentRequests
from shared.storage.documents import DocumentStore
from shared.storage.insights_repository import TableInsights
from shared.storage.ledger_repository import TableLedgers
from shared.storage.queues import StorageWorkQueue
from shared.storage.records_repository import TableRecords
from shared.storage.schedule_index import TableScheduleIndex
from shared.storage.settings_repository import TableSettingsRepository
from shared.storage.tables import TableStore


@dataclass
class Container:
    config: AppConfig
    clock: Clock
    tables: TableStore
    queue: WorkQueue
    tokens: AccessTokenValidator
    roles: RolePolicy
    consent_verifier: ConsentVerifier

    @property
    def index(self) -> TableScheduleIndex:
        return TableScheduleIndex(self.tables)

    @property
    def records(self) -> TableRecords:
        return TableRecords(self.tables)

    def tenant_settings(self) -> TenantSettingsService:
        return TenantSettingsService(TableSettingsRepository(self.tables), self.clock, self.index)

    def sync(self) -> SyncService:
        return SyncService(self.tenant_settings(), self.records, self.clock, self.index)

    def insights(self) -> InsightsService:
        return InsightsService(self.tenant_settings(), self.records, TableInsights(self.tables), self.clock,
                               self.index, self.queue, TableLedgers(self.tables))

    def consent(self) -> ConsentService:
        client_id, redirect_uri = self.config.consent_settings()
        return ConsentService(
            self.tenant_settings(), TableConsentRequests(DocumentStore(self.tables)), self.consent_verifier,
            self.clock, ConsentConfig(authority_host=self.config.authority_host, client_id=client_id,
                                      redirect_uri=redirect_uri,
                                      proof_backoff_seconds=self.config.consent_proof_backoff_seconds))

    def scheduler(self) -> BackgroundScheduler:
        return BackgroundScheduler(self.index, self.queue, self.clock)

    def worker(self) -> BackgroundWorker:
        settings, index, clock, records, queue = (self.tenant_settings(), self.index, self.clock, self.records,
                                                  self.queue)
        works = (ConsentDeadlines(settings, index), ConsentRechecks(settings, index, clock, self.consent),
                 ExchangePurge(settings, index, clock, records, queue), OptOutPurge(index, clock, records, queue),
                 InsightsUpdate(self.insights(), index))
        return BackgroundWorker({work.kind: work for work in works})


_container: Container | None = None
_lock = threading.Lock()


def build(config: AppConfig, *, clock: Clock | None = None) -> Container:
    observability.install()
    if config.storage_connection:
        tables = TableStore.from_connection_string(config.storage_connection, config.state_table)
    else:
        from shared.identity.managed_identity import ManagedIdentityCredential

        assert config.tables_endpoint is not None
        tables = TableStore.from_endpoint(config.tables_endpoint, ManagedIdentityCredential(), config.state_table)
    keys = SigningKeys(config.authority_host, https_json_getter(config.ca_bundle))
    return Container(
        config=config,
        clock=clock or SystemClock(),
        tables=tables,
        queue=_work_queue(config),
        tokens=AccessTokenValidator(config.authority_host, config.api_audiences, keys),
        roles=RolePolicy.from_config(config),
        consent_verifier=MsalConsentVerifier(
            authority_host=config.authority_host,
            client_id=config.client_id or "",
            client_credential=config.client_credential,
            required_roles=config.required_graph_permissions,
            http_client_factory=lambda: https_session(config.ca_bundle),
        ),
    )


class _NoQueue:
    """What stands for the work bus when none is configured: requests that need no background work still serve."""

    def send(self, message: WorkMessage, *, delay: timedelta | None = None) -> None:
        raise ConfigurationError("no queue storage configured: set AzureWebJobsStorage (a connection string) or "
                                 "AzureWebJobsStorage__accountName / __queueServiceUri with an identity")


def _work_queue(config: AppConfig) -> WorkQueue:
    if config.queue_connection:
        return StorageWorkQueue.from_connection_string(config.queue_connection, config.queue_prefix)
    if config.queues_endpoint is None:
        return _NoQueue()
    from shared.identity.managed_identity import ManagedIdentityCredential

    return StorageWorkQueue.from_endpoint(config.queues_endpoint, ManagedIdentityCredential())


def container() -> Container:
    global _container
    if _container is None:
        with _lock:
            if _container is None:
                _container = build(AppConfig.from_env())
    return _container


def install(replacement: Container | None) -> None:
    """Replace the process-wide container (None: rebuild from the environment on next use)."""
    global _container
    with _lock:
        _container = replacement
