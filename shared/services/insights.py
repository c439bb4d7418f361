"""Insights for sellers' apps (SPEC 4): recomputed per tenant from its records and activities, read back with
the data gates and feature switches applied at read time."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from shared import garbage_collection
from shared.clock import Clock
from shared.domain.gates import gate_fingerprint
from shared.domain.insights.computation import ledgers, of_someone_opted_out
from shared.domain.insights.departures import POSITION, RelationshipRisk
from shared.domain.insights.departures import departed as departed_user
from shared.domain.insights.directory import Directory, EntityType
from shared.domain.insights.facts import KEY, Linker
from shared.domain.insights.ledger import (
    Context,
    Edits,
    apply_edits,
    fold_by_origin,
    horizon_for,
    insight,
    ledger_edits,
    needs_archive,
    needs_partials,
    partials,
    recent_from,
    settled_for,
)
from shared.domain.insights.model import RecordInsight, SellerView
from shared.domain.insights.record_changes import ChangePlan, plan_of
from shared.domain.insights.who_knows_whom import Introducer
from shared.domain.introductions import effective_choice
from shared.domain.records import RECORD_KINDS, Activity
from shared.domain.tenant_settings import TenantSettings
from shared.domain.vocabulary import DataSubjectType
from shared.errors import ConcurrencyConflict, Conflict, NotFound, Unprocessable, ValidationFailed
from shared.services.background.steps import SECONDS_PER_STEP, ask, deadline_in, next_slot
from shared.services.directory_cache import DirectoryCache
from shared.services.paging import Page, page_of
from shared.services.ports import (
    LEDGER_SUMMARY,
    IndexKind,
    InsightRepository,
    IntroductionRepository,
    LedgerRepository,
    LedgerState,
    LoggedWrite,
    RebuildProgress,
    RecomputeStatus,
    RecordKey,
    RecordRepository,
    ScheduleIndex,
    SweepProgress,
    Versioned,
    WorkQueue,
)
from shared.services.tenant_settings import TenantSettingsService
from shared.services.timing import FULL_RECOMPUTE_INTERVAL, IN_FLIGHT_MARGIN, WRITE_SETTLE
from shared.tenancy import TenantId

log = logging.getLogger(__name__)

# A rebuild reads the activities in pages, gathers their facts (what a step holds: up to REBUILD_FACTS of them), then
# merges the fragments into ledgers a group of records at a time; it clears the ledger rows before, a chunk at a time.
REBUILD_PAGE = 5_000
REBUILD_FACTS = 250_000  # facts a rebuild gathers before it stores them as fragments (~1.3 KB each in memory, measured)
MERGE_ROWS = 10_000  # fragment rows merged together (whole records; each holds a few facts)
CLEAR_ROWS = 5_000
REBUILD_STEP_SECONDS = SECONDS_PER_STEP
RECOMPUTE_STEP_SECONDS = SECONDS_PER_STEP  # a step of the pass over every record ends past this

_SUBJECT_KINDS: dict[DataSubjectType, str] = {"contact": "contacts", "lead": "leads", "user": "users"}


@dataclass(frozen=True)
class RecomputeReport:
    records: int  # computed in this step; a rebuild's last step: every record
    activities: int
    seconds: float
    more_after: datetime | None = None  # the log holds more than a step takes: the next continues after this
    rebuilding: bool = False  # a rebuild of the aggregates is under way: the next step continues it
    sweeping: bool = False  # the recompute's pass over every record goes on: the recompute's next step continues it
    pass_began: datetime | None = None  # (a recompute's) when the pass it continued, began or found ended began
    superseded: bool = False  # another delivery got further with it: this one's chain ends


@dataclass(frozen=True)
class Introducers:
    insight: RecordInsight
    mode: Literal["basic", "enhanced"]
    introducers: list[Introducer]


@dataclass(frozen=True)
class AtRisk:
    insight: RecordInsight
    risk: RelationshipRisk


@dataclass(frozen=True)
class DataSubject:
    """Everything stored about one person (SPEC 4.4)."""

    record: Any
    activities: list[Any]
    insight: RecordInsight | None


class InsightsService:
    def __init__(self, settings: TenantSettingsService, records: RecordRepository, insights: InsightRepository,
                 clock: Clock, index: ScheduleIndex, queue: WorkQueue, ledgers: LedgerRepository,
                 introductions: IntroductionRepository | None = None, directories: DirectoryCache | None = None,
                 ) -> None:
        self._settings = settings
        self._directories = directories
        self._ledgers = ledgers
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

    def recompute(self, tenant_id: TenantId, asked: datetime | None = None, after: datetime | None = None,
                  ) -> RecomputeReport:
        """Every record's insights, from all the tenant's data: a step of the pass over every record under way,
        or, when none is, of a new one unless the last began when it was `asked` for or after (`asked` None: a new
        pass now, whatever is under way), after applying the log as a refresh does (`after`: as `refresh` has it).
        The pass goes on in the next step when this one's time is spent."""
        with garbage_collection.paused():
            return self._compute(tenant_id, incremental=False, after=after, asked=asked)

    def refresh(self, tenant_id: TenantId, after: datetime | None = None) -> RecomputeReport:
        """Only the records touched by activities stored since the last computation (a full one when unknown),
        in steps of a bounded part of the ingestion log: a step that continues one reads the log `after` it."""
        with garbage_collection.paused():
            return self._compute(tenant_id, incremental=True, after=after)

    def _compute(self, tenant_id: TenantId, *, incremental: bool, after: datetime | None = None,
                 asked: datetime | None = None) -> RecomputeReport:
        """Applies what the ingestion log holds since the last computation to the per-record aggregates and
        computes the records it touched, each from its own aggregates; then, for the daily recompute (recency
        moves scores), goes on with the pass over every record (a change that concerns every record asks for
        one). Record changes are applied as `record_changes` plans them: most link the activities about the
        people concerned again; what no index can find (or aggregates never built) rebuilds the aggregates from
        the stored activities."""
        started = time.perf_counter()
        enough = deadline_in(RECOMPUTE_STEP_SECONDS)
        now = self._clock.now()
        settings = self._settings.current(tenant_id).settings
        if not settings.enabled:
            self._insights.tidy(tenant_id, keep=set(), domains={})
            self._insights.save_sweep(tenant_id, None, None, replace=True)
            return RecomputeReport(0, 0, time.perf_counter() - started)
        built, meta = self._ledgers.built_version(tenant_id)  # (a rebuild that begins after changes `meta`)
        mark = self._insights.refreshed_through(tenant_id)
        if built is None or mark is None:
            return self._rebuild(tenant_id, settings, now, started)  # (or continues the one under way)
        start = mark if after is None or mark > after else after
        # Writes a step already applied are applied once: the settle margin makes the next step read them again.
        def applied(write: LoggedWrite) -> bool:
            return write.ingested_at <= built[0] or write.id in built[1]

        # (Before the log is read: a call that ends after the read, its rows unread, must still hold the mark back.)
        settled = self._settled(tenant_id, now)
        writes, more = _first_writes(self._records.written_since(tenant_id, start), MAX_LOGGED_KEYS_PER_STEP, applied)
        directory = self._directory(tenant_id)
        unapplied = [w for w in writes if not applied(w)]
        plan, before = _record_changes(directory, [w for w in unapplied if w.kind != "activities"])
        if plan.rebuild:
            log.info("insights rebuilt from the activities: %s", plan.rebuild)
            return self._rebuild(tenant_id, settings, now, started)
        linker = Linker(directory)
        ctx = Context(directory, settings, now)
        previous_docs: dict[str, str] = {}
        keys: list[str] = []
        gone: set[str] = set()  # removed by the latest write naming them: nothing to read
        written: dict[str, str | None] = {}  # what the latest write naming them stored, when its entry says
        for write in unapplied:
            if write.kind == "activities":
                keys.extend(write.keys)
                (gone.update if write.removed else gone.difference_update)(write.keys)
                for key, document in write.previous.items():
                    previous_docs.setdefault(key, document)  # the oldest: what the ledgers may still count
                written.update((key, None if write.current is None else write.current.get(key))
                               for key in write.keys)
        keys = list(dict.fromkeys(keys))
        present = [k for k in keys if k not in gone]
        # (A later write of one, not read yet, replaces what this counts when a next step applies it.)
        current = {k: Activity.model_validate_json(text, context={"stored": True}) for k in present
                   if (text := written.get(k)) is not None}
        unread = [k for k in present if k not in current]
        current |= self._records.activities(tenant_id, unread) if unread else {}
        if of_someone_opted_out(directory, current.values()):
            self._index.add(IndexKind.OPT_OUT_PURGE, tenant_id, now)  # sent after their opt-out: deleted too
        changes = [(key, _record("activities", previous_docs.get(key)), current.get(key)) for key in keys]
        changes += self._relinked(tenant_id, plan.people, set(keys))
        touched = self._touch(tenant_id, ctx, linker, changes, before, extra=plan.records)
        sweep: _Sweep = "none"
        reached: list[RecordKey] = []
        began: datetime | None = None
        if not incremental:  # (the pass computes the touched records it reaches from what `touched` holds)
            sweep, reached, began = self._sweep_step(tenant_id, ctx, linker, asked, enough, touched,
                                                     activities=len(current))
        if plan.every_record and began != ctx.now:  # (a pass this step began knows the change already)
            # A pass over every record, in steps of its own: asked now, after the change was stored, so that a pass
            # under way (which may have passed records it concerns) does not count as its.
            ask(self._index, self._queue, self._clock, IndexKind.INSIGHTS_RECOMPUTE, tenant_id, self._clock.now())
        done = set(reached)
        results = [touched.insight(ctx, linker, key) for key in touched.keys if key not in done]
        self._store(tenant_id, ctx, linker, results, touched.versions, removed=plan.dropped)
        computed = len(results) + len(reached)
        through = _seen_through(mark, [w.ingested_at for w in writes], settled)
        if through is not None and through != mark:
            self._insights.mark_refreshed(tenant_id, through)
        if through is not None and writes:
            # The aggregates follow every write read here: the next step looks again only at those that the
            # settle margin makes it read again, and finds them applied (past a bound, activities' are applied
            # again: harmless, only slower).
            # What the mark named stays named unless this step read it and the mark now passes it: a step that goes
            # on from another (`after`) did not read that one's writes, and one that starts from the mark stops at
            # its bound (the writes past it, applied by the steps after, are read again by the next steps).
            passed = {w.id for w in writes if w.ingested_at <= through}
            carried = frozenset(i for i in built[1] if i not in passed)
            margin = [w for w in writes if w.ingested_at > through]
            activities_seen = [w.id for w in margin if w.kind == "activities"]
            seen = carried | frozenset(
                [w.id for w in margin if w.kind != "activities"]
                + (activities_seen if len(carried) + len(activities_seen) <= MAX_SEEN_ACTIVITY_WRITES else []))
            if (max(built[0], through), seen) != built:
                try:
                    self._ledgers.mark_built(tenant_id, max(built[0], through), seen, etag=meta)
                except ConcurrencyConflict:
                    # A rebuild began meanwhile (it sets the mark when it ends), or another step marked first:
                    # the next step reads that margin again, harmlessly.
                    log.info("the ledgers' mark changed meanwhile; left as it is")
        if through is not None:
            self._records.forget_written(tenant_id, through)  # applied, never read again: what they held goes
        report = RecomputeReport(computed, len(current), time.perf_counter() - started,
                                 writes[-1].ingested_at if more else None, sweeping=sweep == "continues",
                                 superseded=sweep == "superseded", pass_began=began)
        log.info("insights %s: %d records from %d changed activities in %.2f s%s%s",
                 "refreshed" if incremental else "recomputed", report.records, report.activities, report.seconds,
                 "; the log goes on" if more else "", "; the pass over every record goes on" if report.sweeping else "")
        return report

    def _sweep_step(self, tenant_id: TenantId, ctx: Context, linker: Linker, asked: datetime | None,
                    enough: Callable[[], bool], touched: _Touched, *, activities: int,
                    ) -> tuple[_Sweep, list[RecordKey], datetime | None]:
        """A step of the pass over every record under way; when none is, of a new one, unless the last began at
        `asked` or after (`asked` None: a new pass now, whatever is under way). A pass under way is never
        begun again: what was asked after it began waits for the next. Returns how the pass stands after the
        step, the records it computed and when the pass began."""
        progress, etag = self._insights.sweep_progress(tenant_id)
        if asked is not None and progress is not None and progress.ended is not None and progress.began >= asked:
            return "none", [], progress.began  # done already
        try:
            if asked is None or progress is None or progress.ended is not None:
                progress, replaced = SweepProgress(began=ctx.now), etag
                etag = self._insights.save_sweep(tenant_id, progress, None if asked is None else replaced,
                                                 replace=asked is None)
                self._insights.note_recompute(tenant_id, started_at=self._clock.now(), activities=activities)
                self._index.add(IndexKind.INSIGHTS_RECOMPUTE, tenant_id,
                                next_slot(tenant_id, FULL_RECOMPUTE_INTERVAL, ctx.now))
            saved = progress

            def save(position: RecordKey | None, records: int) -> None:
                nonlocal saved, etag
                saved = dataclasses.replace(saved, after=position, records=saved.records + records)
                if position is None:
                    saved = dataclasses.replace(saved, records=len(linker.records), ended=self._clock.now())
                try:
                    etag = self._insights.save_sweep(tenant_id, saved, etag)
                except ConcurrencyConflict as conflict:
                    raise _MovedOn from conflict

            position, computed = self._sweep(tenant_id, ctx, linker, progress.after, enough, save, held=touched)
        except (_MovedOn, ConcurrencyConflict):  # (a conflict here: another began or ended a pass first)
            log.info("another step of the pass over every record got further; this one stops")
            return "superseded", [], progress.began if progress is not None else None
        if position is not None:
            return "continues", computed, progress.began
        self._insights.note_recompute(tenant_id, finished_at=self._clock.now(), records=len(linker.records))
        return "ended", computed, progress.began

    def _sweep(self, tenant_id: TenantId, ctx: Context, linker: Linker, after: RecordKey | None,
               enough: Callable[[], bool], save: Callable[[RecordKey | None, int], None],
               known: Mapping[RecordKey, LedgerState] | None = None, held: _Touched | None = None,
               ) -> tuple[RecordKey | None, list[RecordKey]]:
        """Computes every record after `after` (in key order) from its aggregates, a chunk of records next to each
        other at a time (one range query of their stored insights, read before the aggregates; one of their
        ledgers; then their writes, each conditional on the insight read), deleting the insights in the chunk's
        range of records that are gone, and `save`s where it got to after each chunk; until the step's time is
        spent (returns where it got to) or every record is computed and what no record names deleted (saves and
        returns None). Memory follows a chunk, not the tenant; a chunk done again computes the same. `known`: every
        record's aggregates, just written (by a rebuild that held them all: a record it left out has none);
        `held`: some records' aggregates and the insights read before them. Returns the records computed too.

        The next chunk's reads run in a second thread while this one's insights are computed and written: the
        storage works while the computation does (a chunk's ranges of rows are its own, so neither sees the
        other's writes)."""
        keys = sorted(k for k in linker.records if after is None or k > after)
        mine = set(held.keys) if held is not None else set()

        def read(at: int, after: RecordKey | None) -> tuple[list[RecordKey], RecordKey | None, _ChunkRead]:
            """The chunk from `at`, the last record of its range (None: the last chunk's runs to the end), its
            stored insights and, read after them, its aggregates not `held` or `known`."""
            chunk = keys[at:at + RECOMPUTE_CHUNK]
            through = chunk[-1] if at + len(chunk) < len(keys) else None
            stored = self._insights.in_range(tenant_id, after, through)
            rest = [] if known is not None else [k for k in chunk if k not in mine]
            return chunk, through, (stored, self._ledgers.read_all(tenant_id, rest, ctx.recent_from) if rest else {})

        at = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sweep-read") as reader:
            reading = reader.submit(read, at, after)
            while True:
                chunk, through, (stored, read_states) = reading.result()
                at += len(chunk)
                if through is not None:
                    reading = reader.submit(read, at, through)
                versions = {k: v for k, v in stored.items() if k not in mine}
                if held is not None:
                    versions.update((k, v) for k in chunk if k in mine and (v := held.versions.get(k)) is not None)
                if known is not None:
                    states = {k: known.get(k) or LedgerState() for k in chunk}
                else:
                    states = {k: held.states[k] for k in chunk if k in mine} if held is not None else {}
                    states.update(read_states)
                unsettled = [k for k in chunk if states[k].settled_from != ctx.recent_from
                             and states[k].etags.get(LEDGER_SUMMARY) is not None]
                results = [_insight(ctx, linker, k, states[k], _document(versions.get(k))) for k in chunk]
                if unsettled:  # (a quarter went by: what the next pass reads, settled again; one changed
                    # meanwhile is settled again by its next change, or the next pass)
                    self._ledgers.write_many(tenant_id, [(k, states[k], set()) for k in unsettled], ctx.recent_from)
                gone = self._still_gone(tenant_id, ctx, [k for k in stored if k not in states])
                try:
                    self._store(tenant_id, ctx, linker, results, versions, removed=gone)
                except ConcurrencyConflict as conflict:
                    # (not another step's progress: records another worker keeps writing; the message comes again)
                    reading.cancel()
                    raise KeepChanging(str(conflict)) from conflict
                if through is None:
                    break
                save(through, len(chunk))
                if enough():
                    reading.cancel()  # (if it has not begun: the next step reads the chunk again)
                    return through, keys[:at]
        domains = {domain: key[1] for key in sorted(linker.records) for domain in linker.records[key].email_domains}
        self._insights.tidy(tenant_id, keep=set(linker.records), domains=domains,
                            still_gone=lambda keys: self._still_gone(tenant_id, ctx, keys))
        save(None, len(chunk))
        return None, keys

    def _still_gone(self, tenant_id: TenantId, ctx: Context, candidates: list[RecordKey]) -> list[RecordKey]:
        """The records of stored insights that the step's records lack and the tenant's records as they now stand
        lack too: one created since the step loaded them may have an insight a refresh wrote meanwhile."""
        fresh = self._fresher(tenant_id, ctx) if candidates else None
        return [key for key in candidates if fresh is None or key not in fresh.records]

    def _fresher(self, tenant_id: TenantId, ctx: Context) -> Linker | None:
        """The tenant's records if they changed since `ctx`'s were loaded (one read when they did not)."""
        directory = self._directory(tenant_id)
        return None if directory is ctx.directory else Linker(directory)

    def apply_opt_outs(self, tenant_id: TenantId, people: Iterable[tuple[str, str]]) -> None:
        """A contact's or lead's new opt-out, applied at once (SPEC 4.4): the activities about them leave the
        aggregates of every record they counted for (an account's counts, its introducers) and those records are
        computed again, and their own insights go. Costs the tenant's records and the person's activities; the
        next refresh finds the same change in the log and applies it again, changing nothing. A user's asks for
        the rebuild it needs now."""
        settings = self._settings.current(tenant_id).settings
        people = list(people)
        built = self._ledgers.built_through(tenant_id)
        if not settings.enabled or built is None:
            return
        if any(kind == "user" for kind, _ in people):
            # A user's activities have no index of their own: the rebuild they need is sent now, not at the
            # timer's next run (who knows whom leaves them out from the next read already).
            ask(self._index, self._queue, self._clock, IndexKind.INSIGHTS_RECOMPUTE, tenant_id, self._clock.now())
        persons: list[RecordKey] = [("contact" if kind == "contact" else "lead", record_id)
                                    for kind, record_id in people if kind in ("contact", "lead")]
        if not persons:
            return
        directory = self._directory(tenant_id)
        kinds: dict[str, dict[str, Any]] = {"contact": directory.contacts, "lead": directory.leads}
        opted = {key: kinds[key[0]][key[1]] for key in persons if getattr(kinds[key[0]].get(key[1]), "opted_out", 0)}
        if not opted:
            return
        # What the activities leave is what they counted for: the records as the aggregates know them, before the
        # writes of records the log holds that no step has applied yet (a lead's new owner, say), and the people
        # not opted out.
        mark = self._insights.refreshed_through(tenant_id)
        pending = [] if mark is None else [w for w in self._records.written_since(tenant_id, mark)
                                           if w.kind != "activities" and w.ingested_at > built[0]
                                           and w.id not in built[1]]
        applied = _as_applied(directory, pending)
        counted: dict[str, dict[str, Any]] = {"contact": applied.contacts, "lead": applied.leads}
        # (As the aggregates know them: a contact moved to another account since counts for the one it was in.)
        before = Linker(_with(applied, [(f"{k[0]}s", counted[k[0]].get(k[1], r).model_copy(update={"opted_out": False}))
                                        for k, r in opted.items()]))
        linker = Linker(directory)
        ctx = Context(directory, settings, self._clock.now())
        results, versions = self._apply(tenant_id, ctx, linker, self._relinked(tenant_id, set(opted), set()),
                                        before, extra=set())
        self._store(tenant_id, ctx, linker, results, versions, removed=list(opted))
        log.info("opt-out applied at once: %d records computed again", len(results))

    def _relinked(self, tenant_id: TenantId, people: set[RecordKey], logged: set[str],
                  ) -> list[tuple[str, Activity | None, Activity | None]]:
        """The activities about these people (their ledgers' index), as changes that link them again: they leave
        the records they counted for and enter those they count for now. Those in the log are changes already."""
        if not people:
            return []
        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            found = list(pool.map(lambda person: self._ledgers.about(tenant_id, person), sorted(people)))
        keys = [k for k in dict.fromkeys(k for about in found for k in about) if k not in logged]
        activities = self._records.activities(tenant_id, keys) if keys else {}
        return [(key, activity, activity) for key, activity in activities.items()]

    def _touch(self, tenant_id: TenantId, ctx: Context, linker: Linker,
               changes: list[tuple[str, Activity | None, Activity | None]], before: Linker | None, *,
               extra: set[RecordKey]) -> _Touched:
        """Applies the changes to the aggregates; returns the records they touched and the `extra` ones, with the
        stored insights they replace (the ETags each write is conditional on) and their aggregates."""
        edits = ledger_edits(linker, changes, before)
        wanted = [k for k in dict.fromkeys([*sorted(edits), *sorted(extra)]) if k in linker.records]
        # The stored insights (and their ETags) are read before the aggregates they are computed from: a write
        # conditional on them then lands only if no insight was written since, and any insight written before
        # was computed from aggregates no newer than those read after it. So an answer computed from older
        # aggregates never replaces one computed from newer.
        versions = self._insights.previous(tenant_id, wanted, records=len(linker.records))

        def compute(key: RecordKey, state: LedgerState) -> RecordInsight | None:
            return _insight(ctx, linker, key, state, _document(versions.get(key))) if key in linker.records else None

        states, computed = self._upkeep(tenant_id, ctx, edits, len(linker.records), compute)
        missing = [k for k in wanted if k not in states]
        if missing:
            states.update(self._ledgers.read_many(tenant_id, missing, ctx.recent_from))
        return _Touched(wanted, versions, states, computed)

    def _apply(self, tenant_id: TenantId, ctx: Context, linker: Linker,
               changes: list[tuple[str, Activity | None, Activity | None]], before: Linker | None, *,
               extra: set[RecordKey]) -> tuple[list[RecordInsight], dict[RecordKey, _Stored]]:
        """`_touch`, then the records it touched computed, each from its aggregates; returns them and the stored
        insights they replace."""
        touched = self._touch(tenant_id, ctx, linker, changes, before, extra=extra)
        return [touched.insight(ctx, linker, key) for key in touched.keys], touched.versions

    def _store(self, tenant_id: TenantId, ctx: Context, linker: Linker, results: list[RecordInsight],
               versions: dict[RecordKey, Versioned[RecordInsight]], removed: Iterable[RecordKey]) -> None:
        """Writes the insights, each conditional on the stored one it replaces; one that another worker wrote
        meanwhile is computed again from its aggregates and the insight as it now stands, and written again."""
        removed = list(removed)
        gone = set(removed) - {r.key for r in results}
        failed = self._insights.update(tenant_id, results, removed=removed, previous=versions)
        doomed = [key for key in failed if key in gone or key not in linker.records]
        if doomed:
            self._insights.update(tenant_id, [], removed=doomed)  # to delete: as they now stand
        self._again(tenant_id, ctx, linker, [key for key in failed if key not in doomed])

    def _again(self, tenant_id: TenantId, ctx: Context, linker: Linker, pending: list[RecordKey]) -> None:
        """The records whose insight another worker wrote meanwhile: computed again from the insight as it now
        stands and the aggregates read after it (as `_apply` reads them), and written again on its ETag."""
        for _ in range(MAX_LEDGER_ATTEMPTS):
            if not pending:
                return
            now = self._insights.previous(tenant_id, pending, records=len(linker.records))
            states = self._ledgers.read_many(tenant_id, pending, ctx.recent_from)
            pending = self._insights.update(
                tenant_id, [_insight(ctx, linker, key, states[key], _document(now.get(key))) for key in pending],
                previous=now)
        if pending:
            raise ConcurrencyConflict(f"the insights of {pending[:3]} keep changing; the refresh is retried")

    def _upkeep(self, tenant_id: TenantId, ctx: Context, edits: Edits, records: int,
                compute: Callable[[RecordKey, LedgerState], RecordInsight | None],
                ) -> tuple[dict[RecordKey, LedgerState], dict[RecordKey, RecordInsight]]:
        """Applies what changed activities change (`ledger_edits`: a new version or a removal undoes the old one)
        to the aggregates of the records concerned (`records`: how many the tenant holds), each record in one
        ETag-checked write; returns their states, and the insights `compute` made of them while the writes were
        under way (their storage's round trips overlap the computation; insights are written only after)."""
        states: dict[RecordKey, LedgerState] = {}
        horizon = horizon_for(ctx.now)
        read = self._ledgers.read_for_update(tenant_id, edits, ctx.recent_from, records=records)

        def prepare(key: RecordKey) -> tuple[RecordKey, LedgerState]:
            months, state = edits[key], read[key]
            if not state.complete and needs_partials(state, months, horizon, ctx.recent_from):
                state = self._ledgers.read(tenant_id, key, ctx.recent_from, months)  # (whole: it needs its partials)
            if needs_archive(state, months, horizon):
                state = self._ledgers.read(tenant_id, key, ctx.recent_from, months, with_archive=True)
            apply_edits(state, months, horizon, ctx.recent_from)
            settled_for(state, ctx.recent_from)  # (what the computation reads, settled before it reads alongside)
            return key, state

        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            first = dict(pool.map(prepare, sorted(edits)))
        # One pass packs the records' writes into few transactions; a record another worker changed meanwhile is
        # read and written again on its own (and computed again).
        with ThreadPoolExecutor(max_workers=1) as writer:
            written = writer.submit(self._ledgers.write_many, tenant_id,
                                    [(k, s, set(edits[k])) for k, s in first.items()], ctx.recent_from)
            computed = {k: result for k, s in first.items() if (result := compute(k, s)) is not None}
            failed = set(written.result())
        states.update((k, s) for k, s in first.items() if k not in failed)
        for key in failed:
            computed.pop(key, None)

        def apply(key: RecordKey) -> tuple[RecordKey, LedgerState]:
            months = edits[key]
            for _ in range(MAX_LEDGER_ATTEMPTS):
                state = self._ledgers.read(tenant_id, key, ctx.recent_from, months)
                if needs_archive(state, months, horizon):
                    state = self._ledgers.read(tenant_id, key, ctx.recent_from, months, with_archive=True)
                apply_edits(state, months, horizon, ctx.recent_from)
                try:
                    self._ledgers.write(tenant_id, key, state, months, ctx.recent_from)
                except ConcurrencyConflict:
                    continue  # another worker changed this record meanwhile: read again, apply again
                return key, state
            raise ConcurrencyConflict(f"the aggregates of {key} keep changing; the refresh is retried")

        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            states.update(pool.map(apply, sorted(failed)))
        return states, computed

    def _rebuild(self, tenant_id: TenantId, settings: TenantSettings, now: datetime, started: float,
                 ) -> RecomputeReport:
        """Every record's aggregates from the stored activities, then every record's insights from them, in
        bounded chunks that each save where the rebuild got to (the ledgers' meta row, ETag-checked), so that what
        a worker holds follows a chunk, never the tenant, and a step that fails or runs out of time is continued
        by the next: fragments an unfinished rebuild left are cleared; the activities' facts are gathered in memory
        up to a bound and stored per record as fragments (a tenant whose facts fit the bound gets its ledgers at
        once); the fragments are merged into ledgers, a range of records at a time, then deleted; then every record
        is computed (a replayed chunk writes what it wrote before). The records count as they stood when it began;
        the log holds how they changed since, which the next refresh applies. While it runs, `built_through` is
        None: every refresh continues it and no opt-out touches the ledgers (the gates hide the person at read
        time)."""
        enough = deadline_in(REBUILD_STEP_SECONDS)
        progress, etag = self._ledgers.rebuild_progress(tenant_id)
        try:
            if progress is None:
                settled = self._settled(tenant_id, now)
                seen = frozenset(w.id for w in self._records.record_writes_since(tenant_id, settled))
                progress = RebuildProgress(began=now, settled=settled, seen=seen)
                etag = self._ledgers.save_rebuild(tenant_id, progress, etag)
                self._insights.note_recompute(tenant_id, started_at=self._clock.now())  # (it ends with a pass)
                log.info("insights rebuild begins")
            while True:
                if progress.phase in ("clear", "cleanup"):
                    if self._ledgers.rebuild_progress(tenant_id)[1] != etag:
                        # A late duplicate must not clear what a later phase wrote (its save would fail after).
                        raise ConcurrencyConflict("the rebuild moved on")
                    if self._ledgers.clear(tenant_id, CLEAR_ROWS) == 0:
                        progress = dataclasses.replace(
                            progress, phase="activities" if progress.phase == "clear" else "insights")
                elif progress.phase == "activities":
                    progress, states = self._gather(tenant_id, settings, progress, etag, now, enough)
                    if states is not None:  # every ledger, held: the insights come from them at once
                        etag = self._ledgers.save_rebuild(tenant_id, progress, etag)
                        return self._rebuilt(tenant_id, settings, now, started, progress, etag, enough, states)
                elif progress.phase == "merge":
                    # (The fragments stay until every record is merged: a replayed chunk reads the same again.)
                    facts, position = self._ledgers.read_fragments(tenant_id, progress.name, progress.after,
                                                                   MERGE_ROWS)
                    horizon = horizon_for(now)
                    self._ledgers.replace_records(tenant_id, {k: _ledger_of(m, horizon, recent_from(now))
                                                              for k, m in facts.items()},
                                                  recent_from(now), after=progress.after, through=position)
                    progress = dataclasses.replace(progress, after=position,
                                                   phase="merge" if position is not None else "cleanup")
                else:
                    return self._rebuilt(tenant_id, settings, now, started, progress, etag, enough)
                etag = self._ledgers.save_rebuild(tenant_id, progress, etag)
                if enough():
                    log.info("insights rebuild continues: %s, %d activities so far", progress.phase,
                             progress.activities)
                    return RecomputeReport(0, progress.activities, time.perf_counter() - started, rebuilding=True)
        except ConcurrencyConflict:
            # Another delivery of this step got further (or began the rebuild): it carries on from there.
            log.info("another step of the insights rebuild got further; this one stops")
            return RecomputeReport(0, 0, time.perf_counter() - started, rebuilding=True, superseded=True)

    def _as_of(self, tenant_id: TenantId, settings: TenantSettings, began: datetime, now: datetime,
               ) -> tuple[Linker, Context]:
        """The tenant's records as they stood when the rebuild began (those written since as their oldest
        documents in the log say)."""
        directory = _as_applied(self._directory(tenant_id), list(self._records.record_writes_since(tenant_id, began)))
        return Linker(directory), Context(directory, settings, now)

    def _gather(self, tenant_id: TenantId, settings: TenantSettings, progress: RebuildProgress, etag: str | None,
                now: datetime, enough: Callable[[], bool],
                ) -> tuple[RebuildProgress, dict[RecordKey, LedgerState] | None]:
        """Reads pages of activities and gathers their facts per record, until the facts reach REBUILD_FACTS, the
        step's time is spent or no activity is left; stores them as one flush of fragments, or, when the first
        flush holds every activity, as the ledgers themselves (and returns them)."""
        linker, ctx = self._as_of(tenant_id, settings, progress.began, now)
        gathered: dict[RecordKey, dict[str, list[Any]]] = {}
        held = read = 0
        position = progress.after
        while True:
            page, position = self._records.activities_page(tenant_id, position, REBUILD_PAGE)
            read += len(page)
            if of_someone_opted_out(ctx.directory, page):
                self._index.add(IndexKind.OPT_OUT_PURGE, tenant_id, now)  # stored after their opt-out: deleted too
            for key, months in ledgers(linker, page).items():
                mine = gathered.setdefault(key, {})
                for month, entries in months.items():
                    mine.setdefault(month, []).extend(entries)
                    held += len(entries)
            if position is None or held >= REBUILD_FACTS or enough():
                break
        activities = progress.activities + read
        if self._ledgers.rebuild_progress(tenant_id)[1] != etag:
            raise ConcurrencyConflict("the rebuild moved on")  # another delivery stored this chunk first
        if position is None and progress.flushes == 0:
            horizon = horizon_for(now)
            states = {k: _ledger_of(m, horizon, ctx.recent_from) for k, m in gathered.items()}
            self._ledgers.replace_records(tenant_id, states, ctx.recent_from)
            return dataclasses.replace(progress, phase="insights", after=None, activities=activities), states
        self._ledgers.write_fragments(tenant_id, progress.name, progress.flushes, gathered)
        return dataclasses.replace(progress, phase="activities" if position is not None else "merge", after=position,
                                   activities=activities, flushes=progress.flushes + 1), None

    def _rebuilt(self, tenant_id: TenantId, settings: TenantSettings, now: datetime, started: float,
                 progress: RebuildProgress, etag: str | None, enough: Callable[[], bool],
                 known: Mapping[RecordKey, LedgerState] | None = None) -> RecomputeReport:
        """The rebuild's last phase: every record computed from its new aggregates (`known`: all of them, held),
        in chunks that each save where it got to, then the ledgers marked built (ending the rebuild: ETag-checked,
        so that only one delivery ends it). It counts as a pass of the daily recompute over every record."""
        linker, ctx = self._as_of(tenant_id, settings, progress.began, now)
        def save(position: RecordKey | None, records: int) -> None:
            nonlocal progress, etag
            if position is not None:  # (the end is marked below, with the ledgers)
                progress = dataclasses.replace(progress, after="|".join(position))
                etag = self._ledgers.save_rebuild(tenant_id, progress, etag)

        entity_type, _, record_id = (progress.after or "").partition("|")
        after: RecordKey | None = (entity_type, record_id) if progress.after else None  # type: ignore[assignment]
        position, computed = self._sweep(tenant_id, ctx, linker, after, enough, save, known)
        if position is not None:
            log.info("insights rebuild continues: every record's insights, %d this step", len(computed))
            return RecomputeReport(len(computed), progress.activities, time.perf_counter() - started,
                                   rebuilding=True)
        # (the pass it counts as is saved first: once the ledgers are marked built, a pass may begin)
        self._insights.save_sweep(tenant_id, SweepProgress(progress.began, records=len(linker.records),
                                                           ended=self._clock.now()), None, replace=True)
        self._ledgers.mark_built(tenant_id, progress.settled, progress.seen, etag=etag)
        self._insights.mark_refreshed(tenant_id, progress.settled)
        self._records.forget_written(tenant_id, progress.settled)
        self._index.add(IndexKind.INSIGHTS_RECOMPUTE, tenant_id, next_slot(tenant_id, FULL_RECOMPUTE_INTERVAL, now))
        self._insights.note_recompute(tenant_id, finished_at=self._clock.now(), records=len(linker.records),
                                      activities=progress.activities)
        report = RecomputeReport(len(linker.records), progress.activities, time.perf_counter() - started,
                                 pass_began=progress.began)
        log.info("insights rebuilt: %d records from %d activities (this step %.2f s)", report.records,
                 report.activities, report.seconds)
        return report

    def _settled(self, tenant_id: TenantId, now: datetime) -> datetime:
        """The latest moment up to which every row of the log has committed (or never will): just before the
        oldest sync call still under way, at most IN_FLIGHT_MARGIN before `now`, at least WRITE_SETTLE before."""
        floor = now - WRITE_SETTLE
        under_way = self._records.writing_since(tenant_id, floor)
        return max(floor, min([now - IN_FLIGHT_MARGIN, *(at - _JUST_BEFORE for at in under_way)]))

    def _directory(self, tenant_id: TenantId) -> Directory:
        """The tenant's records: O(records), never O(activities); the one this process loaded last while no
        write of records has committed since (one read)."""
        def load() -> Directory:
            return Directory.of(
                users=self._records.iter_records(tenant_id, "users"),
                accounts=self._records.iter_records(tenant_id, "accounts"),
                contacts=self._records.iter_records(tenant_id, "contacts"),
                leads=self._records.iter_records(tenant_id, "leads"),
                opportunities=self._records.iter_records(tenant_id, "opportunities"),
            )

        if self._directories is None:
            return load()
        version = self._records.records_version(tenant_id)  # read before the records: a later write changes it
        return self._directories.get(tenant_id, version, load)

    # -- sellers' reads ---------------------------------------------------------------------------------

    def record(self, tenant_id: TenantId, entity_type: EntityType, record_id: str) -> SellerView:
        settings = self._analytics_on(tenant_id)
        insight = self._insights.get(tenant_id, entity_type, record_id)
        if insight is None or self._opted_out(tenant_id, entity_type, record_id):
            raise NotFound(f"no insights for {entity_type} {record_id} (unknown, opted out, or not computed yet)")
        view = insight.seen_by_seller(settings)
        if view.risk is None:
            return view
        [risk] = self._risks_now(tenant_id, settings, [view.risk])
        return dataclasses.replace(view, risk=risk)

    def relationships_at_risk(self, tenant_id: TenantId, *, page_size: int, continuation: str | None,
                              ) -> Page[AtRisk]:
        """Accounts and contacts a departure left without a strong tie, worst first (managers' view)."""
        settings = self._analytics_on(tenant_id)
        after = _risk_position(continuation)
        found = self._insights.at_risk(tenant_id, gate_fingerprint(settings),
                                       settings.who_knows_whom_mode == "enhanced", after, page_size + 1)
        more = len(found) > page_size
        found = found[:page_size]
        risks = self._risks_now(tenant_id, settings, [i.risk(settings) for _, i in found])
        at_risk = [(i, r) for (_, i), r in zip(found, risks, strict=True) if r is not None]
        contacts = {i.id for i in self._served(tenant_id, "contact", [i for i, _ in at_risk
                                                                      if i.entity_type == "contact"])}
        items = [AtRisk(i, r) for i, r in at_risk if i.entity_type != "contact" or i.id in contacts]
        token = "r" + base64.urlsafe_b64encode(found[-1][0].encode()).decode("ascii") if more else None
        return Page(items, token)

    def _risks_now(self, tenant_id: TenantId, settings: TenantSettings, risks: list[RelationshipRisk | None],
                   ) -> list[RelationshipRisk | None]:
        """As things stand now: a colleague who came back clears the risk; the next best are listed as who knows
        whom lists them (their choice, an opt-out since)."""
        named = sorted({u for r in risks if r is not None for u in (r.departed.user_id,
                                                                      *(i.user_id for i in r.next_best))})
        users = self._records.get_many(tenant_id, "users", named) if named else {}  # one batch for the page
        listed = self._listed(tenant_id, settings)
        result: list[RelationshipRisk | None] = []
        for risk in risks:
            user = users.get(risk.departed.user_id) if risk is not None else None
            if risk is None or user is None or not departed_user(user):
                result.append(None)
                continue
            shown = self._serving(tenant_id, [i for i in risk.next_best if listed(i.user_id)], users)
            result.append(risk.model_copy(update={"next_best": shown}))
        return result

    def _opted_out(self, tenant_id: TenantId, entity_type: EntityType, record_id: str) -> bool:
        """A person who opted out since the last computation is not served (one point read: at once)."""
        if entity_type not in ("contact", "lead"):
            return False
        stored = self._records.get(tenant_id, _SUBJECT_KINDS[entity_type], record_id)
        return bool(getattr(stored, "opted_out", False))

    def _serving(self, tenant_id: TenantId, introducers: list[Introducer], users: dict[str, Any] | None = None,
                 ) -> list[Introducer]:
        """Introducers who opted out since the last computation are left out at once (a point read each, unless
        their records were read already)."""
        if not introducers:
            return introducers
        if users is None:
            users = self._records.get_many(tenant_id, "users", [i.user_id for i in introducers])
        return [i for i in introducers if not getattr(users.get(i.user_id), "opted_out", False)]

    def list_records(self, tenant_id: TenantId, entity_type: EntityType, *, needs_attention: bool, page_size: int,
                     continuation: str | None) -> Page[SellerView]:
        """Records of a type by name; with `needs_attention`, only Poor or Declining ones, worst first."""
        settings = self._analytics_on(tenant_id)
        if needs_attention:
            # From the index, in attention order: the page costs its size, not the number of records.
            after = _attention_position(continuation)
            found = self._insights.needing_attention(tenant_id, entity_type, gate_fingerprint(settings), after,
                                                     page_size + 1)
            shown = [i for i in found if i.needs_attention(settings)][:page_size]
            more = len(found) > page_size and bool(shown)
            token = _attention_token(shown[-1].attention_order(settings)) if more else None
            return Page([i.seen_by_seller(settings) for i in self._served(tenant_id, entity_type, shown)], token)
        insights = list(self._insights.iter(tenant_id, entity_type))
        chosen = sorted(insights, key=lambda i: (i.name.lower(), i.id))
        page = page_of(chosen, page_size, continuation)
        return Page([i.seen_by_seller(settings) for i in self._served(tenant_id, entity_type, page.items)],
                    page.continuation)

    def _served(self, tenant_id: TenantId, entity_type: EntityType, insights: list[RecordInsight],
                ) -> list[RecordInsight]:
        """A page without the people who opted out since the last computation (one batch of reads: at once)."""
        if entity_type not in ("contact", "lead") or not insights:
            return insights
        stored = self._records.get_many(tenant_id, _SUBJECT_KINDS[entity_type], [i.id for i in insights])
        return [i for i in insights if not getattr(stored.get(i.id), "opted_out", False)]

    def who_knows_whom(self, tenant_id: TenantId, entity_type: EntityType, record_id: str) -> Introducers:
        settings = self._who_knows_whom_on(tenant_id)
        insight = self._insights.get(tenant_id, entity_type, record_id)
        if insight is None or self._opted_out(tenant_id, entity_type, record_id):
            raise NotFound(f"no {entity_type} {record_id} known to relationship intelligence")
        return Introducers(insight, settings.who_knows_whom_mode,
                           self._serving(tenant_id, insight.introducers(settings, self._listed(tenant_id, settings))))

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
        mark = self._insights.refreshed_through(tenant_id)
        built = self._ledgers.built_through(tenant_id)
        if entity_type != "user" and email and not record.opted_out and mark is not None and built is not None:
            # The person's own index: the activities their ledger holds as being about them, and those logged
            # that the ledgers have not applied yet (cost: their activities and the newest writes, not the
            # tenant's). Users, and people who opted out (their ledger no longer holds their activities), are
            # found by a scan.
            keys = self._ledgers.about(tenant_id, (entity_type, record_id))
            keys += [k for w in self._records.written_since(tenant_id, mark, documents=False) if w.kind == "activities"
                     and w.ingested_at > built[0] and w.id not in built[1] for k in w.keys]
            found = self._records.activities(tenant_id, keys)
            activities = sorted((a for a in found.values() if email in a.parties), key=lambda a: (a.source, a.id))
        else:
            activities = [a for a, _ in self._records.iter_activities(tenant_id, with_ingested_at=False)
                          if (email and email in a.parties)
                          or (entity_type == "user" and a.mailbox_owner_id == record_id)]
        insight = None if entity_type == "user" else self._insights.get(tenant_id, entity_type, record_id)
        return DataSubject(record, activities, insight)


MAX_LEDGER_ATTEMPTS = 5
_ChunkRead = tuple[dict[RecordKey, Versioned[RecordInsight]], dict[RecordKey, LedgerState]]
RECOMPUTE_CHUNK = 200  # records computed together by the daily recompute (~250 KB each while in memory)
_Sweep = Literal["none", "continues", "ended", "superseded"]  # how the pass over every record stands after a step
# What one step of the refresh takes from the ingestion log (a purge of a large mailbox logs hundreds of
# thousands): each key's documents are held in memory until the step ends. A record touched in two steps is
# read, computed and written twice: 10,000 new activities (~1,900 records) took 4.5-8.0 s in one step against
# 7.4-13.6 s in two; a step of 20,000 peaked at the same traced memory as steps of 5,000 (190 MB: the
# records' aggregates and insights, not the log, make the peak).
MAX_LOGGED_KEYS_PER_STEP = 20_000
# The activity writes within the settle margin that the ledgers' mark names as applied (each ~34 characters).
MAX_SEEN_ACTIVITY_WRITES = 5_000
_WRITERS = 8


_Stored = Versioned[RecordInsight]


class KeepChanging(RuntimeError):
    """Records whose insights another worker kept writing while a pass over every record wrote them: the step
    fails (not a conflict with another step's progress), and its message is delivered again."""


class _MovedOn(Exception):
    """Another delivery saved the pass's position first: it carries the pass on."""


@dataclass(frozen=True)
class _Touched:
    """The records changes touched: their aggregates as written, and their stored insights as read before."""

    keys: list[RecordKey]
    versions: dict[RecordKey, _Stored]
    states: dict[RecordKey, LedgerState]
    computed: dict[RecordKey, RecordInsight]  # those computed already, from these states

    def insight(self, ctx: Context, linker: Linker, key: RecordKey) -> RecordInsight:
        found = self.computed.get(key)
        return found if found is not None else _insight(ctx, linker, key, self.states[key],
                                                        _document(self.versions.get(key)))


def _ledger_of(months: dict[str, list[Any]], horizon: str, recent_from: str) -> LedgerState:
    """A record's ledger from all its facts (an activity that two flushes both found counts once)."""
    periods = {period: [unique[k] for k in sorted(unique)] for period, entries in months.items()
               if (unique := {entry[1][KEY]: entry for entry in entries})}
    every = {period: partials(entries) for period, entries in periods.items()}
    archive = {p: part for p, part in every.items() if p < horizon}
    state = LedgerState(months=periods, partials={p: v for p, v in every.items() if p >= horizon},
                        base=fold_by_origin(archive), horizon=horizon, archive=archive)
    settled_for(state, recent_from)
    return state


def _ledger_order(key: RecordKey) -> str:
    return f"{key[0]}|{key[1]}|"  # as their ledgers' rows are ordered


def _document(stored: _Stored | None) -> RecordInsight | None:
    return None if stored is None else stored.document


def _insight(ctx: Context, linker: Linker, key: RecordKey, state: LedgerState,
             previous: RecordInsight | None) -> RecordInsight:
    recent = [e for m, entries in state.months.items() if m >= ctx.recent_from for e in entries]
    return insight(ctx, linker.records[key], settled_for(state, ctx.recent_from), recent, previous)


def _risk_position(token: str | None) -> str | None:
    """Where a page of relationships at risk resumes; a token we did not issue is a 400."""
    if not token:
        return None
    try:
        position = base64.urlsafe_b64decode(token.removeprefix("r").encode("ascii")).decode("ascii")
        if token.startswith("r") and POSITION.match(position):
            return position
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise ValidationFailed("the continuation token is not one this API issued",
                           errors=[{"field": "continuationToken", "reason": "malformed"}])


def _attention_token(position: tuple[int, str]) -> str:
    return "a" + base64.urlsafe_b64encode(f"{position[0]}|{position[1]}".encode()).decode("ascii")


def _attention_position(token: str | None) -> tuple[int, str] | None:
    """Where a needs-attention page resumes; a token we did not issue is a 400."""
    if not token:
        return None
    try:
        score, _, record_id = base64.urlsafe_b64decode(token.removeprefix("a").encode("ascii")).decode().partition("|")
        if token.startswith("a") and record_id and score.isdigit():
            return int(score), record_id
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise ValidationFailed("the continuation token is not one this API issued",
                           errors=[{"field": "continuationToken", "reason": "malformed"}])


def _first_writes(found: Iterable[LoggedWrite], limit: int, applied: Callable[[LoggedWrite], bool],
                  ) -> tuple[list[LoggedWrite], bool]:
    """The oldest logged writes, up to about `limit` keys of writes not `applied` yet (those the settle margin
    reads again count only toward a larger bound of what the step holds), and whether more follow. Writes
    stamped alike are never split: the next step reads the log after the last stamp taken."""
    taken: list[LoggedWrite] = []
    keys = held = 0
    for write in found:
        if (keys >= limit or held >= _HELD_KEYS_PER_LIMIT * limit) and write.ingested_at != taken[-1].ingested_at:
            return taken, True
        taken.append(write)
        held += len(write.keys)
        keys += 0 if applied(write) else len(write.keys)
    return taken, False


_HELD_KEYS_PER_LIMIT = 4
_JUST_BEFORE = timedelta(microseconds=1)  # (the log's stamps are µs: a mark at a stamp counts its rows as applied)


def _oldest_documents(writes: Iterable[LoggedWrite]) -> dict[tuple[str, str], str | None]:
    """The oldest document each of these writes' records replaced (what the aggregates may still count)."""
    oldest: dict[tuple[str, str], str | None] = {}
    for write in writes:
        for key in write.keys:
            oldest.setdefault((write.kind, key), write.previous.get(key))
    return oldest


def _as_applied(directory: Directory, writes: Iterable[LoggedWrite]) -> Directory:
    """The directory as the aggregates know it before these writes of records."""
    return _with(directory, [(kind, record) for (kind, _), document in _oldest_documents(writes).items()
                             if (record := _record(kind, document)) is not None])


def _record_changes(directory: Directory, writes: list[LoggedWrite]) -> tuple[ChangePlan, Linker | None]:
    """The plan for the records these writes changed, from the oldest document each replaced (what the
    aggregates may still count) to the record as it is now, and the records as they were (when people changed)."""
    changes = [(kind, _record(kind, document), _current(directory, kind, record_id))
               for (kind, record_id), document in _oldest_documents(writes).items()]
    plan = plan_of(changes)
    if plan.rebuild or not plan.people:
        return plan, None
    return plan, Linker(_with(directory, [(kind, b) for kind, b, _ in changes if b is not None]))


_DIRECTORY_KINDS = ("users", "accounts", "contacts", "leads", "opportunities")


def _current(directory: Directory, kind: str, record_id: str) -> Any:
    return getattr(directory, kind).get(record_id) if kind in _DIRECTORY_KINDS else None


def _with(directory: Directory, records: Iterable[tuple[str, Any]]) -> Directory:
    """The directory with these records in place of its own."""
    swapped: dict[str, dict[str, Any]] = {kind: dict(getattr(directory, kind)) for kind in _DIRECTORY_KINDS}
    for kind, record in records:
        if kind in swapped:
            swapped[kind][record.id] = record
    return Directory(**swapped)


def _record(kind: str, document: str | None) -> Any:
    """A stored document as the record it holds (None: none, or one this code cannot read any more)."""
    if document is None or kind not in RECORD_KINDS:
        return None
    try:
        return RECORD_KINDS[kind].model_validate_json(document, context={"stored": True})
    except ValueError:
        return None


def _seen_through(mark: datetime | None, stored_at: list[datetime | None], settled: datetime) -> datetime | None:
    """The mark the next refresh starts from: every activity stored up to it has been computed, and no row
    stamped up to it can still be committing (`settled`: a row stamped before a scan began may commit after the
    scan has passed its key, while its call is under way; the next refresh looks at that margin again:
    recomputing a record twice is harmless, missing an activity until tomorrow is not). A refresh never moves it
    back; a full recompute sets it to what had settled when it began (lower than before only if an earlier
    computation began later: still safe)."""
    if mark is None:  # a full recompute has seen everything that had settled when it began
        return settled
    newest = max((at for at in stored_at if at is not None), default=None)
    if newest is None:
        return mark
    return max(mark, min(newest, settled))
