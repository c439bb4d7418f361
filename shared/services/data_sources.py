"""What the Overview shows of the data sources (SPEC 7): per source, the last successful round, what it covered
and the last error in words, as the rounds left them on their state rows."""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain.source_state import CrmState, ExchangeSummary
from shared.services.ports import SourceState
from shared.tenancy import TenantId

CRM_KEY = "source|crm"
SUMMARY_KEY = "source|exchange"


@dataclass(frozen=True)
class DataSources:
    crm: CrmState | None  # None: no CRM round has run
    exchange: ExchangeSummary | None  # None: no mailbox plan has run


class DataSourcesService:
    def __init__(self, state: SourceState) -> None:
        self._state = state

    def status(self, tenant_id: TenantId) -> DataSources:
        crm = self._state.load(tenant_id, CRM_KEY, CrmState)
        exchange = self._state.load(tenant_id, SUMMARY_KEY, ExchangeSummary)
        return DataSources(crm.document if crm else None, exchange.document if exchange else None)
