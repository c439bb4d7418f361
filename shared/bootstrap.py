"""Composition root: builds the adapters once per process, from the app's configuration, on first use, and
wires them into the services.

Entry points call `container()`; nothing touches the network or imports heavy SDKs at import time.
Tests and the dev host may `install()` their own container (for example with a fixed clock).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared import garbage_collection, observability
from shared.clock import Clock, SystemClock
from shared.config import AppConfig, ConfigurationError
from shared.identity.consent_verifier import MsalConsentVerifier
from shared.identity.permissions import RolePolicy
from shared.identity.tokens import AccessTokenValidator, SigningKeys, https_json_getter, https_session
from shared.services.background.consent_deadline import ConsentDeadlines
from shared.services.background.consent_recheck import ConsentRechecks
from shared.services.background.crm_round import CrmRound
from shared.services.background.exchange_purge import ExchangePurge
from shared.services.background.insights_update import InsightsUpdate
from shared.services.background.mailboxes import MailboxPlan, MailboxRound
from shared.services.background.opt_out_purge import OptOutPurge
from shared.services.background.scheduler import BackgroundScheduler
from shared.services.background.worker import BackgroundWorker
from shared.services.consent import ConsentConfig, ConsentService
from shared.services.data_sources import DataSourcesService
from shared.services.directory_cache import DirectoryCache
from shared.services.insights import InsightsService
from shared.services.introductions import IntroductionsService
from shared.services.ports import ConsentVerifier, CrmSource, MailSource, WorkMessage, WorkQueue
from shared.services.sync import SyncService
from shared.services.tenant_settings import TenantSettingsService
from shared.storage.consent_requests import TableConsentRequests
from shared.storage.documents import DocumentStore
from shared.storage.insights_repository import InsightCache, TableInsights
from shared.storage.introductions_repository import TableIntroductions
from shared.storage.ledger_repository import LedgerCache, TableLedgers
from shared.storage.queues import StorageWorkQueue
from shared.storage.records_repository import ACTIVITIES_TABLE_SUFFIX, ActivityShards, TableRecords
from shared.storage.schedule_index import TableScheduleIndex
from shared.storage.settings_repository import TableSettingsRepository
from shared.storage.source_state import TableSourceState
from shared.storage.tables import TableStore


class SourceClients:
    """The Microsoft Graph and Dataverse clients, built on first use (they need the app registration's
    credential), once per process: their app-only tokens are cached per tenant. Our own HTTPS sessions
    (`trust_env` off) trust the local CA only where RI_CA_BUNDLE says so (development)."""

    def __init__(self, config: AppConfig, *, mail: MailSource | None = None, crm: CrmSource | None = None) -> None:
        """`mail` and `crm`: clients built elsewhere (tests, benchmarks)."""
        self._config = config
        self._lock = threading.Lock()
        self._tokens: Any = None
        self._graph = mail
        self._dataverse = crm

    def _token_provider(self) -> Any:
        from shared.connectors import MsalTokenProvider

        if self._tokens is None:
            config = self._config
            self._tokens = MsalTokenProvider(authority_host=config.authority_host, client_id=config.client_id or "",
                                             client_credential=config.client_credential,
                                             http_client_factory=lambda: https_session(config.ca_bundle))
        return self._tokens

    def mail(self) -> MailSource:
        with self._lock:
            if self._graph is None:
                from shared.connectors.graph import GraphClient

                ca = self._config.ca_bundle
                self._graph = GraphClient(self._token_provider(), base_url=self._config.graph_url,
                                          session_factory=lambda: https_session(ca))
            return self._graph

    def crm(self) -> CrmSource:
        with self._lock:
            if self._dataverse is None:
                from shared.connectors.dataverse import DataverseClient

                ca = self._config.ca_bundle
                self._dataverse = DataverseClient(self._token_provider(), page_size=1000,
                                                  allow_loopback=self._config.allow_loopback_sources,
                                                  session_factory=lambda: https_session(ca))
            return self._dataverse


@dataclass
class Container:
    config: AppConfig
    clock: Clock
    tables: TableStore
    queue: WorkQueue
    tokens: AccessTokenValidator
    roles: RolePolicy
    consent_verifier: ConsentVerifier
    sources: SourceClients  # the data sources' clients (tests point them at the local Graph and Dataverse)
    ledger_cache: LedgerCache = field(default_factory=LedgerCache)  # this process's last-written aggregates
    directory_cache: DirectoryCache = field(default_factory=DirectoryCache)  # and last-loaded directories
    insight_cache: InsightCache = field(default_factory=InsightCache)  # and last-written insights

    @property
    def insight_tables(self) -> TableStore:
        """What the insights derive from the data, in a table of its own (`{state table}Insights`: per-record
        aggregates, computed insights, their indexes), partitioned by tenant like the state: their rewrites get
        partitions of their own, and their range queries never walk a tenant's activities (Azurite's queries scan
        their whole table)."""
        return self.tables.sibling(self.tables.table_name + INSIGHTS_TABLE_SUFFIX)

    @property
    def activity_tables(self) -> TableStore:
        """The activities and their log, in a table of their own (`{state table}Activities`), partitioned by tenant
        like the state: the bulk of the writes gets partitions of its own, and the records' and the log's range
        queries never walk a tenant's activities."""
        return self.tables.sibling(self.tables.table_name + ACTIVITIES_TABLE_SUFFIX)

    @property
    def index(self) -> TableScheduleIndex:
        return TableScheduleIndex(self.tables)

    @property
    def records(self) -> TableRecords:
        return TableRecords(self.tables, self.activity_tables, shards=ActivityShards(self.config.activity_shards))

    @property
    def source_state(self) -> TableSourceState:
        return TableSourceState(self.tables)

    def tenant_settings(self) -> TenantSettingsService:
        return TenantSettingsService(TableSettingsRepository(self.tables), self.clock, self.index,
                                     allow_loopback_sources=self.config.allow_loopback_sources)

    def data_sources(self) -> DataSourcesService:
        return DataSourcesService(self.source_state)

    def sync(self) -> SyncService:
        return SyncService(self.tenant_settings(), self.records, self.clock, self.index,
                           on_opt_outs=self.insights().apply_opt_outs)

    def insights(self) -> InsightsService:
        return InsightsService(self.tenant_settings(), self.records, TableInsights(self.insight_tables,
                                                                                   self.insight_cache), self.clock,
                               self.index, self.queue, TableLedgers(self.insight_tables, self.ledger_cache),
                               TableIntroductions(self.tables), self.directory_cache)

    def introductions(self) -> IntroductionsService:
        return IntroductionsService(self.tenant_settings(), self.insights(), self.records,
                                    TableIntroductions(self.tables), self.clock)

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
        sync, state, sources = self.sync(), self.source_state, self.sources
        mailbox_round = MailboxRound(settings, records, sync, state, sources.mail, index, queue, clock)
        works = (ConsentDeadlines(settings, index), ConsentRechecks(settings, index, clock, self.consent),
                 ExchangePurge(settings, index, clock, records, queue), OptOutPurge(index, clock, records, queue),
                 InsightsUpdate(self.insights(), index, queue, clock),
                 CrmRound(settings, records, sync, state, sources.crm, index, queue, clock,
                          interval=self.config.crm_round_interval),
                 MailboxPlan(settings, records, sync, state, sources.mail, index, queue, clock,
                             interval=self.config.mailbox_round_interval),
                 mailbox_round)
        return BackgroundWorker({work.kind: work for work in works}, {mailbox_round.kind: mailbox_round})


INSIGHTS_TABLE_SUFFIX = "Insights"

_container: Container | None = None
_lock = threading.Lock()


def build(config: AppConfig, *, clock: Clock | None = None) -> Container:
    observability.install()
    garbage_collection.configure()
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
        sources=SourceClients(config),
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
