"""The port of the timer's index: which tenants may need the timer, and when."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from shared.tenancy import TenantId

RECHECK_INTERVAL = timedelta(days=1)
FULL_RECOMPUTE_INTERVAL = timedelta(days=1)  # scores move with time even without new data (recency)
# A sync call stamps its rows with the moment it began, before it read the data gates, and may commit them until
# the host stops it (host.json functionTimeout, 10 minutes). Whoever needs every row stamped up to a moment —
# the insights refresh mark, a purge's cut-off — waits this long past that moment before trusting a scan.
WRITE_SETTLE = timedelta(minutes=15)
# A settings change takes its moment before it is saved: a sync call that starts in between still reads the gates
# open and stamps its rows a little after that moment. A purge deletes rows stamped up to this much later (a save
# with its retries, and clock skew between hosts, take seconds).
CUTOFF_MARGIN = timedelta(minutes=1)


class IndexKind(StrEnum):
    CONSENT_DEADLINE = "consent-deadline"
    CONSENT_RECHECK = "consent-recheck"
    EXCHANGE_PURGE = "exchange-purge"
    INSIGHTS_RECOMPUTE = "insights-recompute"  # everything: data of every kind or settings changed, or a day passed
    INSIGHTS_REFRESH = "insights-refresh"  # only the records that new activities touch
    OPT_OUT_PURGE = "opt-out-purge"


@dataclass(frozen=True)
class IndexEntry:
    kind: IndexKind
    tenant_id: TenantId
    due: datetime


class ScheduleIndex(Protocol):
    def add(self, kind: IndexKind, tenant_id: TenantId, due: datetime) -> None: ...

    def remove(self, kind: IndexKind, tenant_id: TenantId, due: datetime) -> None: ...

    def due(self, kind: IndexKind, now: datetime) -> Iterator[IndexEntry]: ...
