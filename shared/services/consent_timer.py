"""The scheduled work on consent (SPEC 2.4, 2.5): the 14-day auto-disable, the daily re-check of granted consent,
and the purge of Exchange-derived data once its use has ended. Each step re-reads the tenant's settings and
decides again, so a late, replayed or concurrent run changes nothing twice; a failing tenant is logged and left
for the next run."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shared import observability
from shared.clock import Clock
from shared.domain.audit import SYSTEM_ACTOR
from shared.services.consent import ConsentService
from shared.services.insights import InsightsService
from shared.services.schedules import (
    CUTOFF_MARGIN,
    RECHECK_INTERVAL,
    WRITE_SETTLE,
    IndexEntry,
    IndexKind,
    ScheduleIndex,
)
from shared.services.settings import SettingsService
from shared.storage.records_repository import TableRecords
from shared.tenancy import TenantId

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 8
# Bounded work per tenant and run, resumed by the next run: the time budget keeps a run well inside the host's
# 10-minute functionTimeout; the row cap bounds one step whatever the store's speed.
PURGE_SECONDS_PER_RUN = 300.0
PURGE_ROWS_PER_RUN = 1_000_000


@dataclass(frozen=True)
class RunReport:
    outcomes: dict[str, int]

    def count(self, outcome: str) -> int:
        return self.outcomes.get(outcome, 0)


class ConsentTimer:
    def __init__(self, settings: SettingsService, index: ScheduleIndex, clock: Clock,
                 consent: Callable[[], ConsentService], records: TableRecords,
                 insights: InsightsService | None = None, *,
                 workers: int = DEFAULT_WORKERS, purge_rows_per_run: int = PURGE_ROWS_PER_RUN,
                 purge_seconds_per_run: float = PURGE_SECONDS_PER_RUN) -> None:
        self._settings = settings
        self._index = index
        self._clock = clock
        self._consent = consent
        self._records = records
        self._insights = insights
        self._workers = workers
        self._purge_rows = purge_rows_per_run
        self._purge_seconds = purge_seconds_per_run

    def run(self) -> RunReport:
        now = self._clock.now()
        # Deadlines first; the purge an auto-disable requests is due WRITE_SETTLE later, in a later run.
        entries = [*self._index.due(IndexKind.CONSENT_DEADLINE, now), *self._index.due(IndexKind.CONSENT_RECHECK, now)]
        operation = observability.current_operation_id()
        with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="consent-timer") as pool:
            outcomes = list(pool.map(lambda entry: self._step(entry, operation), entries))
            purges = [*self._index.due(IndexKind.EXCHANGE_PURGE, self._clock.now()),
                      *self._index.due(IndexKind.OPT_OUT_PURGE, self._clock.now())]
            until = time.monotonic() + self._purge_seconds

            def enough() -> bool:  # this run's time budget for purges
                return time.monotonic() >= until

            by_tenant: dict[TenantId, dict[IndexKind, list[IndexEntry]]] = {}
            for entry in purges:
                by_tenant.setdefault(entry.tenant_id, {}).setdefault(entry.kind, []).append(entry)
            # One worker per tenant, each kind once: two rows of a tenant would scan and delete the same rows.
            for done in pool.map(lambda kinds: [self._purge_step(rows, operation, enough)
                                                for rows in kinds.values()], by_tenant.values()):
                outcomes += done
            # Last: recompute the insights of tenants whose data or settings changed (once per tenant).
            recomputes = self._due_recomputes()
            outcomes += list(pool.map(lambda group: self._recompute(group, operation), recomputes.values()))
        entries += purges
        report = RunReport(dict(Counter(outcomes)))
        log.info("consent timer: %d index rows due, outcomes %s", len(entries), report.outcomes)
        return report

    def _step(self, entry: IndexEntry, operation: str | None) -> str:
        with observability.log_context(tenant_id=entry.tenant_id, operation_id=operation):
            try:
                if entry.kind is IndexKind.CONSENT_DEADLINE:
                    return self._deadline(entry)
                return self._recheck(entry)
            except Exception:
                log.exception("consent timer step %s failed; retried next run", entry.kind.value)
                return "failed"

    def _purge_step(self, rows: list[IndexEntry], operation: str | None, enough: Callable[[], bool]) -> str:
        """The rows of one tenant and kind that are due: one purge does what each asks."""
        with observability.log_context(tenant_id=rows[0].tenant_id, operation_id=operation):
            try:
                if rows[0].kind is IndexKind.EXCHANGE_PURGE:
                    return self._purge(rows, enough)
                return self._purge_opted_out(rows, enough)
            except Exception:
                log.exception("purge %s failed; retried next run", rows[0].kind.value)
                return "failed"

    def _done(self, rows: list[IndexEntry]) -> None:
        for row in rows:
            self._index.remove(row.kind, row.tenant_id, row.due)

    def _deadline(self, entry: IndexEntry) -> str:
        outcome = self._settings.change(entry.tenant_id, SYSTEM_ACTOR, "autoDisable",
                                        lambda s, now: s.auto_disable(now))
        if outcome.changed:
            return "autoDisabled"  # the change itself removed the index row of the closed window
        if outcome.settings.consent_deadline != entry.due:
            self._index.remove(entry.kind, entry.tenant_id, entry.due)
            return "stale"
        return "notYetDue"

    def _due_recomputes(self) -> dict[str, list[IndexEntry]]:
        if self._insights is None:
            return {}
        groups: dict[str, list[IndexEntry]] = {}
        now = self._clock.now()
        for kind in (IndexKind.INSIGHTS_RECOMPUTE, IndexKind.INSIGHTS_REFRESH):
            for entry in self._index.due(kind, now):
                groups.setdefault(entry.tenant_id, []).append(entry)
        return groups

    def _recompute(self, entries: list[IndexEntry], operation: str | None) -> str:
        """One computation per tenant: everything if anything asks for it, else only what new activities touch."""
        tenant = entries[0].tenant_id
        full = any(entry.kind is IndexKind.INSIGHTS_RECOMPUTE for entry in entries)
        with observability.log_context(tenant_id=tenant, operation_id=operation):
            try:
                assert self._insights is not None
                if full:
                    self._insights.recompute(tenant)
                else:
                    self._insights.refresh(tenant)
                for entry in entries:  # rows added while computing stay due for the next run
                    self._index.remove(entry.kind, entry.tenant_id, entry.due)
                return "recomputed" if full else "refreshed"
            except Exception:
                log.exception("insights recompute failed; retried next run")
                return "failed"

    def _purge(self, rows: list[IndexEntry], enough: Callable[[], bool]) -> str:
        """Deletes Exchange-derived rows ingested up to the moment their use ended; resumes next run if many.
        The row only says "look here": the settings say up to when (a row left by a change that was not
        stored must never delete data ingested after the last real request)."""
        tenant = rows[0].tenant_id
        requested = self._settings.current(tenant).settings.exchange.purge_requested_at
        if requested is None:
            self._done(rows)
            return "stale"
        if self._clock.now() < requested + WRITE_SETTLE:
            return "notYetDue"  # sync calls that read the gates open may still be writing
        through = requested + CUTOFF_MARGIN
        deleted, finished = self._records.purge_exchange(tenant, through, self._purge_rows, enough)
        log.info("purged %d Exchange-derived rows%s", deleted, "" if finished else "; more next run")
        if not finished:
            return "purgeContinues"
        self._settings.change(tenant, SYSTEM_ACTOR, "exchangeDataPurged",
                              lambda s, now: s.record_exchange_purged(through))
        self._recompute_after_purge(tenant)
        self._done(rows)
        return "purged"

    def _purge_opted_out(self, rows: list[IndexEntry], enough: Callable[[], bool]) -> str:
        """Deletes the activity rows of everyone who opted out (as a party, or as the owner of the mailbox)."""
        entry = rows[0]
        users = list(self._records.iter_records(entry.tenant_id, "users"))
        contacts = list(self._records.iter_records(entry.tenant_id, "contacts"))
        leads = list(self._records.iter_records(entry.tenant_id, "leads"))
        addresses = frozenset({u.email for u in users if u.opted_out}
                              | {p.email for p in [*contacts, *leads] if p.opted_out and p.email})
        user_ids = frozenset(u.id for u in users if u.opted_out)
        deleted, finished = self._records.purge_people(entry.tenant_id, addresses, user_ids, self._purge_rows,
                                                       enough)
        log.info("purged %d activity rows of people who opted out%s", deleted, "" if finished else "; more next run")
        if not finished:
            return "purgeContinues"
        self._recompute_after_purge(entry.tenant_id)
        self._done(rows)
        return "optOutPurged"

    def _recompute_after_purge(self, tenant_id: TenantId) -> None:
        """Insights computed while the purge ran may still count what it deleted (Exchange may be back on)."""
        self._index.add(IndexKind.INSIGHTS_RECOMPUTE, tenant_id, self._clock.now())

    def _recheck(self, entry: IndexEntry) -> str:
        if not self._settings.current(entry.tenant_id).settings.consent_granted:
            self._index.remove(entry.kind, entry.tenant_id, entry.due)
            return "stale"
        check = self._consent().recheck(entry.tenant_id)
        if check is None or check.definitive:
            self._index.remove(entry.kind, entry.tenant_id, entry.due)
            return "withdrawn" if check is not None else "stale"
        if not check.granted:
            return "recheckInconclusive"  # the row stays due: the next run tries again
        self._index.add(entry.kind, entry.tenant_id, self._clock.now() + RECHECK_INTERVAL)
        self._index.remove(entry.kind, entry.tenant_id, entry.due)
        return "stillGranted"
