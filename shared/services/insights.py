"""Insights for sellers' apps (SPEC 4): recomputed per tenant from its records and activities, read back with
the data gates and feature switches applied at read time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.clock import Clock
from shared.domain.insights.computation import compute, of_someone_opted_out, relevant_to, touched
from shared.domain.insights.directory import Directory, EntityType
from shared.domain.insights.model import RecordInsight, SellerView
from shared.domain.insights.who_knows_whom import Introducer
from shared.domain.introductions import effective_choice
from shared.domain.records import RemovedActivity
from shared.domain.tenant_settings import TenantSettings
from shared.domain.vocabulary import DataSubjectType
from shared.errors import Conflict, NotFound, Unprocessable
from shared.services.background.steps import ask
from shared.services.paging import Page, page_of
from shared.services.ports import (
    IndexKind,
    InsightRepository,
    IntroductionRepository,
    RecomputeStatus,
    RecordRepository,
    ScheduleIndex,
    WorkQueue,
)
from shared.services.tenant_settings import TenantSettingsService
from shared.services.timing import FULL_RECOMPUTE_INTERVAL, WRITE_SETTLE
from shared.tenancy import TenantId

log = logging.getLogger(__name__)

_SUBJECT_KINDS: dict[DataSubjectType, str] = {"contact": "contacts", "lead": "leads", "user": "users"}


@dataclass(frozen=True)
class RecomputeReport:
    records: int
    activities: int
    seconds: float


@dataclass(frozen=True)
class Introducers:
    insight: RecordInsight
    mode: Literal["basic", "enhanced"]
    introducers: list[Introducer]


@dataclass(frozen=True)
class DataSubject:
    """Everything stored about one person (SPEC 4.4)."""

    record: Any
    activities: list[Any]
    insight: RecordInsight | None


class InsightsService:
    def __init__(self, settings: TenantSettingsService, records: RecordRepository, insights: InsightRepository,
                 clock: Clock, index: ScheduleIndex, queue: WorkQueue,
                 introductions: IntroductionRepository | None = None) -> None:
        self._settings = settings
        self._records = records
        self._insights = insights
        self._clock = clock
        self._index = index
        self._queue = queue
        self._introductions = introductions  # whose choice hides them from who knows whom

    # -- computing --------------------------------------------------------------------------------------

    def request_recompute(self, tenant_id: TenantId) -> RecomputeStatus:
        """Asks the background work for a full recompute now (an admin's "recompute"); its status follows it."""
        if not self._settings.current(tenant_id).settings.enabled:
            raise Conflict("relationship intelligence is not enabled for this organisation: nothing to compute",
                           extensions={"feature": "relationshipIntelligence"})
        now = self._clock.now()
        self._insights.note_recompute(tenant_id, requested_at=now)
        ask(self._index, self._queue, self._clock, IndexKind.INSIGHTS_RECOMPUTE, tenant_id, now)
        return self._insights.recompute_status(tenant_id)

    def recompute_status(self, tenant_id: TenantId) -> RecomputeStatus:
        return self._insights.recompute_status(tenant_id)

    def recompute(self, tenant_id: TenantId) -> RecomputeReport:
        """Every record's insights, from all the tenant's data."""
        self._insights.note_recompute(tenant_id, started_at=self._clock.now())
        report = self._compute(tenant_id, incremental=False)
        self._insights.note_recompute(tenant_id, finished_at=self._clock.now(), records=report.records,
                                      activities=report.activities)
        return report

    def refresh(self, tenant_id: TenantId) -> RecomputeReport:
        """Only the records touched by activities stored since the last computation (a full one when unknown)."""
        return self._compute(tenant_id, incremental=True)

    def _compute(self, tenant_id: TenantId, *, incremental: bool) -> RecomputeReport:
        started = time.perf_counter()
        now = self._clock.now()
        settings = self._settings.current(tenant_id).settings
        previous = {i.key: i for i in self._insights.iter(tenant_id)}
        if not settings.enabled:
            self._insights.replace_all(tenant_id, [], previous)
            return RecomputeReport(0, 0, time.perf_counter() - started)
        directory = Directory.of(
            users=self._records.iter_records(tenant_id, "users"),
            accounts=self._records.iter_records(tenant_id, "accounts"),
            contacts=self._records.iter_records(tenant_id, "contacts"),
            leads=self._records.iter_records(tenant_id, "leads"),
            opportunities=self._records.iter_records(tenant_id, "opportunities"),
        )
        mark = self._insights.refreshed_through(tenant_id) if incremental else None
        # A full recompute has seen everything stored before it started; only a refresh needs each moment.
        # A refresh sees removed activities (tombstones) too: a removal is a change to the records it touched,
        # which are computed again without it.
        stored = list(self._records.iter_activities(tenant_id, with_ingested_at=mark is not None,
                                                    removed=mark is not None))
        activities = [a for a, _ in stored if not isinstance(a, RemovedActivity)]
        through = _seen_through(mark, [at for _, at in stored], now)
        new = activities if mark is None else [a for a, at in stored if at is not None and at > mark]
        if of_someone_opted_out(directory, [a for a in new if not isinstance(a, RemovedActivity)]):
            self._index.add(IndexKind.OPT_OUT_PURGE, tenant_id, now)  # sent after their opt-out: deleted too
        if mark is None:
            results = compute(directory, settings, activities, now, previous)
            current = {i.key for i in results}
            self._insights.replace_all(tenant_id, results, [k for k in previous if k not in current])
            # Scores move with time (recency): recompute daily even without new data.
            self._index.add(IndexKind.INSIGHTS_RECOMPUTE, tenant_id, now + FULL_RECOMPUTE_INTERVAL)
        else:
            keys = touched(directory, settings, new) if new else set()
            results = (compute(directory, settings, relevant_to(directory, keys, activities), now, previous,
                               only=keys) if keys else [])
            self._insights.update(tenant_id, results)
        if through is not None and through != mark:
            self._insights.mark_refreshed(tenant_id, through)
        report = RecomputeReport(len(results), len(activities), time.perf_counter() - started)
        log.info("insights %s: %d records from %d activities in %.2f s",
                 "refreshed" if mark is not None else "recomputed", report.records, report.activities,
                 report.seconds)
        return report

    # -- sellers' reads ---------------------------------------------------------------------------------

    def record(self, tenant_id: TenantId, entity_type: EntityType, record_id: str) -> SellerView:
        settings = self._analytics_on(tenant_id)
        insight = self._insights.get(tenant_id, entity_type, record_id)
        if insight is None:
            raise NotFound(f"no insights for {entity_type} {record_id} (unknown, opted out, or not computed yet)")
        return insight.seen_by_seller(settings)

    def list_records(self, tenant_id: TenantId, entity_type: EntityType, *, needs_attention: bool, page_size: int,
                     continuation: str | None) -> Page[SellerView]:
        """Records of a type by name; with `needs_attention`, only Poor or Declining ones, worst first."""
        settings = self._analytics_on(tenant_id)
        insights = list(self._insights.iter(tenant_id, entity_type))
        if needs_attention:
            chosen = sorted((i for i in insights if i.needs_attention(settings)),
                            key=lambda i: i.attention_order(settings))
        else:
            chosen = sorted(insights, key=lambda i: (i.name.lower(), i.id))
        page = page_of(chosen, page_size, continuation)
        return Page([i.seen_by_seller(settings) for i in page.items], page.continuation)

    def who_knows_whom(self, tenant_id: TenantId, entity_type: EntityType, record_id: str) -> Introducers:
        settings = self._who_knows_whom_on(tenant_id)
        insight = self._insights.get(tenant_id, entity_type, record_id)
        if insight is None:
            raise NotFound(f"no {entity_type} {record_id} known to relationship intelligence")
        return Introducers(insight, settings.who_knows_whom_mode,
                           insight.introducers(settings, self._listed(tenant_id, settings)))

    def _listed(self, tenant_id: TenantId, settings: TenantSettings) -> Callable[[str], bool]:
        """Who may appear as an introducer: everyone but the colleagues whose choice is `never`."""
        stored = self._introductions.choices(tenant_id) if self._introductions is not None else None
        choices = stored.document if stored is not None else {}
        default = settings.who_knows_whom.introducer_default
        return lambda user_id: effective_choice(choices.get(user_id), default) != "never"

    def who_knows_whom_at(self, tenant_id: TenantId, domain: str) -> Introducers:
        """Introducers to a company, found by one of its email domains."""
        self._who_knows_whom_on(tenant_id)
        account = self._insights.account_of_domain(tenant_id, domain.strip().lower())
        if account is None:
            raise NotFound(f"no account with the email domain {domain}")
        return self.who_knows_whom(tenant_id, "account", account)

    def introducer(self, tenant_id: TenantId, entity_type: EntityType, record_id: str, introducer_id: str,
                   ) -> tuple[Introducers, Introducer, TenantSettings]:
        """One of the record's introducers as they are listed now; 422 when the colleague is not."""
        settings = self._who_knows_whom_on(tenant_id)
        found = self.who_knows_whom(tenant_id, entity_type, record_id)
        introducer = next((i for i in found.introducers if i.user_id == introducer_id), None)
        if introducer is None:
            raise Unprocessable("that colleague is not among the introducers of this person",
                                errors=[{"field": "introducerId", "reason": "not an introducer"}])
        return found, introducer, settings

    def _analytics_on(self, tenant_id: TenantId) -> TenantSettings:
        settings = self._settings.current(tenant_id).settings
        if not settings.enabled:
            raise Conflict("relationship intelligence is not enabled for this organisation",
                           extensions={"feature": "relationshipIntelligence"})
        if not settings.relationship_analytics.enabled:
            raise Conflict("relationship analytics is turned off by your administrator",
                           extensions={"feature": "relationshipAnalytics"})
        return settings

    def _who_knows_whom_on(self, tenant_id: TenantId) -> TenantSettings:
        settings = self._settings.current(tenant_id).settings
        if not settings.enabled or not settings.who_knows_whom.enabled:
            raise Conflict("who knows whom is turned off by your administrator",
                           extensions={"feature": "whoKnowsWhom"})
        return settings

    # -- privacy ----------------------------------------------------------------------------------------

    def export(self, tenant_id: TenantId, entity_type: DataSubjectType, record_id: str) -> DataSubject:
        """A person's record, the activities they take part in (or that came from their mailbox), their insights."""
        record = self._records.get(tenant_id, _SUBJECT_KINDS[entity_type], record_id)
        if record is None:
            raise NotFound(f"no {entity_type} {record_id} is stored for this organisation")
        email = getattr(record, "email", None)
        activities = [a for a, _ in self._records.iter_activities(tenant_id, with_ingested_at=False)
                      if (email and email in a.parties) or (entity_type == "user" and a.mailbox_owner_id == record_id)]
        insight = None if entity_type == "user" else self._insights.get(tenant_id, entity_type, record_id)
        return DataSubject(record, activities, insight)


def _seen_through(mark: datetime | None, stored_at: list[datetime | None], now: datetime) -> datetime | None:
    """The mark the next refresh starts from: every activity stored up to it has been computed, and no row
    stamped up to it can still be committing (a row stamped before a scan began may commit after the scan has
    passed its key, for up to WRITE_SETTLE; the next refresh looks at that margin again: recomputing a record
    twice is harmless, missing an activity until tomorrow is not). A refresh never moves it back; a full
    recompute sets it to what had settled when it began (lower than before only if an earlier computation began
    later: still safe)."""
    settled = now - WRITE_SETTLE
    if mark is None:  # a full recompute has seen everything that had settled when it began
        return settled
    newest = max((at for at in stored_at if at is not None), default=None)
    if newest is None:
        return mark
    return max(mark, min(newest, settled))
