"""The tenant's mailboxes (SPEC 3, 7): a plan decides whose mailboxes may be read, and one round per mailbox reads
mail (Inbox, Sent Items) and meetings (a calendar window) by Graph delta query, metadata only, through the one
ingestion path, in bounded steps that continue in new messages.

The plan (one message per tenant, every `interval`): the mailbox owners are the users in a selected security
role, not disabled, not opted out and not in an excluded group (Graph `transitiveMembers`; a user's membership of
the excluded groups is written on the user, so the read-time gate knows it too). Nothing is fetched unless every
tenant gate is open. It sends one message per owner whose round is not running already, and one per mailbox
whose gates closed (that message drops the mailbox's delta state and item map, so a later consent back-fills
again); it writes the Overview's summary from the mailboxes' state rows as they are then, and each round that ends
moves it on by its outcome (a few attempts under contention; the next plan counts again).

A mailbox round: the first reads 12 months back (mail received since then, the calendar from then to 90 days
ahead); later rounds replay the stored delta links. Where each collection is lives on the mailbox's state row,
written with the ETag read: any message continues from it, a duplicate that finds the row changed stops, a late
message for a round that ran already finds it done. Each step reads a bounded number of pages per collection
(the three at once: Outlook allows 4 requests per mailbox), hands the metadata to the ingestion path (one item
per email or meeting however many folders and mailboxes hold it: the newest version), records which of its
items became which activity, and only then moves the links on.

Deletions: Graph's `@removed` names only the mailbox's item. The item map says which activity it became; the
activity is removed (a tombstone) only when no other mailbox whose gates are open still holds a copy of it. An
item that maps to nothing any more (a meeting cancelled) counts as removed. After a full round of a collection
(a 410, a new calendar window), the copies it held from before and did not see again are removed the same way.
429/503 beyond the client's retries: the step saves its progress and continues after `Retry-After`. A mailbox
Graph refuses for good (403, 404) fails its round with the reason in words; the others go on.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from shared.clock import Clock
from shared.domain import source_mapping as m
from shared.domain.gates import mailbox_gate
from shared.domain.records import InternalUser
from shared.domain.source_state import CALENDAR, COLLECTIONS, ExchangeSummary, MailboxState, RoundError
from shared.domain.tenant_settings import TenantSettings
from shared.errors import ConcurrencyConflict, Conflict
from shared.services.background.rounds import batches, in_words
from shared.services.background.steps import (
    SECONDS_PER_STEP,
    ask_soon,
    continue_later,
    deadline_in,
    done,
    next_slot,
    relay,
    resume,
)
from shared.services.data_sources import SUMMARY_KEY
from shared.services.ports import (
    IndexEntry,
    IndexKind,
    MailboxCopy,
    MailSource,
    RecordRepository,
    ScheduleIndex,
    SourceBusy,
    SourcePositionLost,
    SourceProblem,
    SourceRefused,
    SourceState,
    Versioned,
    WorkKind,
    WorkMessage,
    WorkQueue,
)
from shared.services.sync import SyncService
from shared.services.tenant_settings import TenantSettingsService
from shared.services.timing import BACKFILL, CALENDAR_HORIZON, CALENDAR_ROLL, ROUND_STALLED
from shared.tenancy import TenantId

log = logging.getLogger(__name__)

MAILBOX_PREFIX = "mailbox|"
PAGES_PER_STEP = 10  # per collection and message: with Graph's 100 a page, 3,000 items at most
DROP_BATCH = 500  # item-map rows deleted per message when a mailbox's gates close
CONTENDED_WAIT_SECONDS = 2  # when the ingestion path says other batches write the same items right now


def mailbox_key(mailbox_id: str) -> str:
    return f"{MAILBOX_PREFIX}{mailbox_id.lower()}"


def usable_owner(settings: TenantSettings, user: InternalUser | None, mailbox_id: str | None = None) -> bool:
    """Whether this user's mailbox may be read: every gate of SPEC 3 open, and (for a mailbox) it is theirs."""
    if mailbox_gate(settings, user) is not None or user is None or not user.entra_object_id:
        return False
    return mailbox_id is None or user.entra_object_id.lower() == mailbox_id.lower()


# -- the plan -------------------------------------------------------------------------------------------------


class MailboxPlan:
    kind = WorkKind.MAILBOX_PLAN

    def __init__(self, settings: TenantSettingsService, records: RecordRepository, sync: SyncService,
                 state: SourceState, mail: Callable[[], MailSource], index: ScheduleIndex, queue: WorkQueue,
                 clock: Clock, *, interval: timedelta, seconds_per_step: float = SECONDS_PER_STEP) -> None:
        self._settings = settings
        self._records = records
        self._sync = sync
        self._state = state
        self._mail = mail
        self._index = index
        self._queue = queue
        self._clock = clock
        self._interval = interval
        self._seconds = seconds_per_step

    def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str:
        settings = self._settings.current(tenant_id).settings
        now = self._clock.now()
        summary = self._state.load(tenant_id, SUMMARY_KEY, ExchangeSummary)
        if summary is not None and summary.document.as_of > max(row.due for row in rows):
            done(self._index, rows)
            return "alreadyDone"  # a plan began after these rows came due (at the same instant: it may have read less)
        resumed = resume(self._index, rows, "mailboxes")
        if resumed is None:
            return "stale"
        users = list(self._records.iter_records(tenant_id, "users"))
        usable = settings.exchange_data_usable
        if usable and settings.exchange.excluded_security_group_ids:
            try:
                users = self._with_excluded_groups(tenant_id, settings, users)
            except SourceProblem as exc:
                # Whom an excluded group holds is not known: nobody is read this time rather than someone wrongly.
                self._summarise(tenant_id, now, [], {}, summary, in_words(exc, "Microsoft Graph", now))
                self._index.add(IndexKind.MAILBOX_PLAN, tenant_id, next_slot(tenant_id, self._interval, now))
                done(self._index, rows)
                return "planFailed"
        owners = {u.entra_object_id.lower(): u for u in users
                  if usable and u.entra_object_id and usable_owner(settings, u)}
        states = {v.document.mailbox_id.lower(): v for v in
                  self._state.load_all(tenant_id, MAILBOX_PREFIX, MailboxState)}
        enough = deadline_in(self._seconds)
        sent = Counter[str]()
        handled = resumed.after
        for mailbox in sorted(set(owners) | set(states)):
            if handled is not None and mailbox <= handled:
                continue
            if enough():  # a very large tenant: the next step goes on after the last mailbox handled
                kept = continue_later(self._index, self._queue, self._clock, resumed, rows, "mailboxes", handled)
                return "planContinues" if kept else "superseded"
            sent[self._plan_one(tenant_id, mailbox, owners.get(mailbox), states.get(mailbox), rows, now)] += 1
            handled = mailbox
        self._summarise(tenant_id, now, list(owners), states, summary, None)
        if usable or states:  # while mailboxes may be read, or a closed one's state is still to drop
            self._index.add(IndexKind.MAILBOX_PLAN, tenant_id, next_slot(tenant_id, self._interval, now))
        done(self._index, rows)
        log.info("mailbox plan: %d mailboxes pass the gates %s", len(owners), dict(sent))
        return "planned"

    def _plan_one(self, tenant_id: TenantId, mailbox: str, owner: InternalUser | None,
                  current: Versioned[MailboxState] | None, rows: list[IndexEntry], now: datetime) -> str:
        if owner is not None and (current is None or current.document.owner_id != owner.id) and not (
                current is not None and current.document.dropping):
            fresh = MailboxState(mailbox_id=mailbox, owner_id=owner.id)
            with contextlib.suppress(ConcurrencyConflict):  # another plan wrote it meanwhile: its message reads it
                self._state.save(tenant_id, mailbox_key(mailbox), fresh, current.etag if current else None)
        elif owner is not None and current is not None and current.document.round is not None and (
                current.document.round.stepped_at > now - ROUND_STALLED):
            return "running"
        self._queue.send(WorkMessage(WorkKind.MAILBOX_ROUND, tenant_id, tuple((r.kind, r.due) for r in rows),
                                     None, mailbox))
        return "round" if owner is not None else "drop"

    def _with_excluded_groups(self, tenant_id: TenantId, settings: TenantSettings,
                              users: list[InternalUser]) -> list[InternalUser]:
        """The users with their membership of the excluded groups written on them (the gates read it there)."""
        excluded = [g.lower() for g in settings.exchange.excluded_security_group_ids]
        members = {g: {x.lower() for x in self._mail().transitive_member_ids(tenant_id, g)} for g in excluded}
        changed: list[dict[str, Any]] = []
        result = []
        for user in users:
            entra = (user.entra_object_id or "").lower()
            groups = sorted({g.lower() for g in user.group_ids if g.lower() not in members}
                            | {g for g in excluded if entra and entra in members[g]})
            if groups != sorted(g.lower() for g in user.group_ids):
                user = user.model_copy(update={"group_ids": tuple(groups), "version": user.version + 1})
                changed.append(user.model_dump(mode="json", by_alias=True))
            result.append(user)
        for batch in batches(changed):
            self._sync.ingest(tenant_id, "users", batch)
        return result

    def _summarise(self, tenant_id: TenantId, now: datetime, owners: list[str],
                   states: dict[str, Versioned[MailboxState]], previous: Versioned[ExchangeSummary] | None,
                   plan_error: RoundError | None) -> None:
        mine = [states[o].document for o in owners if o in states]
        errors = [s.last_error for s in mine if s.last_error is not None]
        summary = ExchangeSummary(
            as_of=now, mailboxes=len(owners), synced=sum(1 for s in mine if s.last_success_at is not None),
            failing=sum(1 for s in mine if _failing(s)),
            last_success_at=max((s.last_success_at for s in mine if s.last_success_at), default=None),
            items_in_last_rounds=sum(s.last_round_items or 0 for s in mine),
            last_error=max(errors, key=lambda e: e.at, default=None), plan_error=plan_error)
        try:
            self._state.save(tenant_id, SUMMARY_KEY, summary, previous.etag if previous else None)
        except ConcurrencyConflict:
            log.info("another plan wrote the summary meanwhile")


# -- one mailbox's round --------------------------------------------------------------------------------------


@dataclass
class _Fetched:
    """What one step read from one collection."""

    name: str
    items: list[dict[str, Any]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    link: str | None = None
    done: bool = False
    restarted: bool = False
    problem: SourceProblem | None = None


class MailboxRound:
    kind = WorkKind.MAILBOX_ROUND

    def __init__(self, settings: TenantSettingsService, records: RecordRepository, sync: SyncService,
                 state: SourceState, mail: Callable[[], MailSource], index: ScheduleIndex, queue: WorkQueue,
                 clock: Clock, *, seconds_per_step: float = SECONDS_PER_STEP, pages_per_step: int = PAGES_PER_STEP,
                 drop_batch: int = DROP_BATCH) -> None:
        self._settings = settings
        self._records = records
        self._sync = sync
        self._state = state
        self._mail = mail
        self._index = index
        self._queue = queue
        self._clock = clock
        self._seconds = seconds_per_step
        self._pages = pages_per_step
        self._drop_batch = drop_batch

    def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str:
        return "noMailbox"  # a mailbox round always names its mailbox (WorkMessage.target)

    def run_for(self, tenant_id: TenantId, mailbox_id: str, rows: list[IndexEntry]) -> str:
        message = WorkMessage(self.kind, tenant_id, tuple((r.kind, r.due) for r in rows), None, mailbox_id)
        loaded = self._state.load(tenant_id, mailbox_key(mailbox_id), MailboxState)
        if loaded is None:
            return "noMailbox"  # dropped meanwhile, or never planned
        state = loaded.document
        settings = self._settings.current(tenant_id).settings
        owner: InternalUser | None = self._records.get(tenant_id, "users", state.owner_id)
        if state.dropping or not usable_owner(settings, owner, mailbox_id):
            return self._drop(tenant_id, mailbox_id, loaded, message)  # no Graph call for a closed gate
        now = self._clock.now()
        if state.round is None:
            asked = max((row.due for row in rows), default=now)
            if state.last_started_at is not None and state.last_started_at >= asked:
                return "alreadyDone"
            state = state.start_round(uuid.uuid4().hex[:16], now, backfill=BACKFILL, horizon=CALENDAR_HORIZON,
                                      roll_before=CALENDAR_ROLL)
        assert state.round is not None
        fetched = self._fetch(tenant_id, state, deadline_in(self._seconds))
        try:
            items, removed = self._store(tenant_id, mailbox_id, state, settings, fetched, now)
        except Conflict as exc:  # other mailboxes' rounds write the same emails right now: this step again, soon
            wait = float(exc.headers.get("Retry-After", CONTENDED_WAIT_SECONDS))
            relay(self._index, self._queue, self._clock, message, delay=timedelta(seconds=wait), renew=False)
            return "contended"
        state = self._moved_on(state, fetched, items, removed, now)
        reconciled = 0
        for f in fetched:
            column = state.collection(f.name)
            if f.done and f.problem is None and column.reconcile:
                reconciled += self._reconcile(tenant_id, mailbox_id, state, settings, f.name)
        if reconciled:
            assert state.round is not None
            state = state.model_copy(update={"round": state.round.model_copy(update={
                "removed": state.round.removed + reconciled})})
        if state.round_done:
            state = self._finished(state, now)
        try:
            self._state.save(tenant_id, mailbox_key(mailbox_id), state, loaded.etag)
        except ConcurrencyConflict:
            log.info("another step of this mailbox round got further; this one stops")
            return "superseded"
        if state.round is None:
            self._count_in_summary(tenant_id, loaded.document, state)
            if state.last_round_items:
                ask_soon(self._index, self._queue, self._clock, IndexKind.INSIGHTS_REFRESH, tenant_id)
            return "mailboxRoundFailed" if state.last_error is not None else "mailboxRoundDone"
        waits = [f.problem.retry_after for f in fetched if isinstance(f.problem, SourceBusy) and f.problem.retry_after]
        delay = timedelta(seconds=max(waits)) if waits else None
        relay(self._index, self._queue, self._clock, message, delay=delay, renew=False)
        return "mailboxThrottled" if delay else "mailboxRoundContinues"

    # -- reading ----------------------------------------------------------------------------------------------

    def _fetch(self, tenant_id: TenantId, state: MailboxState, enough: Callable[[], bool]) -> list[_Fetched]:
        pending = [name for name in COLLECTIONS if not state.collection(name).done]
        with ThreadPoolExecutor(max_workers=len(COLLECTIONS), thread_name_prefix="mailbox") as pool:
            return list(pool.map(lambda name: self._read(tenant_id, state, name, enough), pending))

    def _read(self, tenant_id: TenantId, state: MailboxState, name: str, enough: Callable[[], bool]) -> _Fetched:
        column = state.collection(name)
        fetched = _Fetched(name, link=column.link)
        since = state.since or self._clock.now() - BACKFILL
        for _ in range(self._pages):
            try:
                if name == CALENDAR:  # the window matters on a round's first call only (the links carry it)
                    window = (column.window_start or since, column.window_end or since + BACKFILL + CALENDAR_HORIZON)
                    page = self._mail().calendar_delta(tenant_id, state.mailbox_id, fetched.link, window=window)
                else:
                    page = self._mail().mail_delta(tenant_id, state.mailbox_id, name, fetched.link, since=since)
            except SourcePositionLost:
                fetched.restarted, fetched.link = True, None  # a full round of it, from the next step on
                break
            except (SourceBusy, SourceRefused) as exc:
                fetched.problem = exc
                break
            fetched.items += page.items
            fetched.removed += page.removed_ids
            if page.next_link is not None:
                fetched.link = page.next_link
            else:
                fetched.link, fetched.done = page.delta_link, True
                break
            if enough():
                break
        return fetched

    # -- writing ----------------------------------------------------------------------------------------------

    def _store(self, tenant_id: TenantId, mailbox_id: str, state: MailboxState, settings: TenantSettings,
               fetched: list[_Fetched], now: datetime) -> tuple[int, int]:
        """Hands the items to the ingestion path (each activity once: the newest copy), records the copies, and
        removes what went; the number of activities handed in and removed."""
        assert state.round is not None
        newest: dict[str, dict[str, Any]] = {}
        copies: list[MailboxCopy] = []
        gone: dict[str, list[str]] = {}
        for f in fetched:
            gone[f.name] = list(f.removed)
            for raw in f.items:
                item = (m.graph_event(raw, state.owner_id, now=now) if f.name == CALENDAR
                        else m.graph_message(raw, state.owner_id))
                if item is None:  # a draft, a cancelled meeting: if it was an activity, it is one no more
                    gone[f.name].append(str(raw.get("id")))
                    continue
                if item["id"] not in newest or newest[item["id"]]["version"] < item["version"]:
                    newest[item["id"]] = item
                copies.append(MailboxCopy(str(raw["id"]), f.name, item["id"], state.round.id,
                                          m.parse_time(item["start"]) if f.name == CALENDAR else None))
        refused: set[str] = set()
        for batch in batches(list(newest.values())):
            report = self._sync.ingest(tenant_id, "activities", batch)
            refused |= {r.id for r in report.rejected if r.id is not None}
            if report.rejected:
                log.warning("mailbox items refused by the ingestion path %s", report.rejected_by_reason)
        kept = [c for c in copies if c.activity_id not in refused]
        if kept:
            self._state.hold(tenant_id, mailbox_id, state.owner_id, kept)
        removed = 0
        for name, source_ids in gone.items():
            if source_ids:
                removed += self._release(tenant_id, mailbox_id, settings,
                                         self._state.held(tenant_id, mailbox_id, name, source_ids))
        return len(newest) - len(refused & set(newest)), removed

    def _release(self, tenant_id: TenantId, mailbox_id: str, settings: TenantSettings,
                 copies: Sequence[MailboxCopy]) -> int:
        """The mailbox no longer holds these copies; an activity no other open mailbox holds is removed."""
        if not copies:
            return 0
        self._state.release(tenant_id, mailbox_id, copies)
        holders = self._state.holders(tenant_id, [c.activity_id for c in copies])
        owners: dict[str, InternalUser] = self._records.get_many(
            tenant_id, "users", list({h.owner_id for found in holders.values() for h in found}))
        orphans = [a for a in dict.fromkeys(c.activity_id for c in copies)
                   if not any(usable_owner(settings, owners.get(h.owner_id), h.mailbox_id)
                              for h in holders.get(a, []))]
        if not orphans:
            return 0
        return self._sync.remove(tenant_id, "activities", [f"{m.GRAPH_SOURCE}|{a}" for a in orphans]).removed

    def _reconcile(self, tenant_id: TenantId, mailbox_id: str, state: MailboxState, settings: TenantSettings,
                   name: str) -> int:
        """After a full round of a collection: the copies it held from before and did not see again are gone
        (a calendar's only within the new window: the past before it stays as it was)."""
        assert state.round is not None
        column = state.collection(name)
        stale = [c for c in self._state.copies(tenant_id, mailbox_id, name) if c.round_id != state.round.id and (
            name != CALENDAR or column.window_start is None or c.start is None or c.start >= column.window_start)]
        if stale:
            log.info("a full round of %s found %d items gone", name, len(stale))
        return self._release(tenant_id, mailbox_id, settings, stale)

    def _moved_on(self, state: MailboxState, fetched: Iterable[_Fetched], items: int, removed: int,
                  now: datetime) -> MailboxState:
        assert state.round is not None
        failed = state.round.failed
        last_error = state.last_error
        for f in fetched:
            if f.restarted:
                state = state.restarted(f.name, now, horizon=CALENDAR_HORIZON, roll_before=CALENDAR_ROLL)
                continue
            column = state.collection(f.name)
            if isinstance(f.problem, SourceRefused):  # this collection's round is over, failed
                failed = failed or in_words(f.problem, "Microsoft Graph", now)
                column = column.model_copy(update={"done": True})
            elif f.problem is not None:
                last_error = in_words(f.problem, "Microsoft Graph", now)
            column = column.model_copy(update={"link": f.link, "done": column.done or f.done})
            state = state.model_copy(update={"collections": {**state.collections, f.name: column}})
        assert state.round is not None
        return state.model_copy(update={"last_error": last_error, "round": state.round.model_copy(update={
            "stepped_at": now, "items": state.round.items + items, "removed": state.round.removed + removed,
            "failed": failed})})

    def _finished(self, state: MailboxState, now: datetime) -> MailboxState:
        assert state.round is not None
        current = state.round
        outcome: dict[str, Any] = {"round": None, "last_error": current.failed,
                                   "last_round_items": current.items + current.removed}
        if current.failed is None:
            outcome["last_success_at"] = now
        return state.model_copy(update=outcome)

    def _count_in_summary(self, tenant_id: TenantId, before: MailboxState, after: MailboxState) -> None:
        """The Overview's summary, moved on by this round's outcome (the plan wrote it from the rounds before):
        a few attempts, then the next plan's count stands in (the summary is a view, not a record)."""
        for _ in range(3):
            loaded = self._state.load(tenant_id, SUMMARY_KEY, ExchangeSummary)
            if loaded is None:
                return
            summary = loaded.document
            error = summary.last_error
            if after.last_error is not None and (error is None or after.last_error.at >= error.at):
                error = after.last_error
            moved = summary.model_copy(update={
                "synced": summary.synced + int(after.last_success_at is not None and before.last_success_at is None),
                "failing": max(0, summary.failing + int(_failing(after)) - int(_failing(before))),
                "last_success_at": max((t for t in (summary.last_success_at, after.last_success_at) if t),
                                       default=None),
                "items_in_last_rounds": max(0, summary.items_in_last_rounds + (after.last_round_items or 0)
                                            - (before.last_round_items or 0)),
                "last_error": error})
            try:
                self._state.save(tenant_id, SUMMARY_KEY, moved, loaded.etag)
                return
            except ConcurrencyConflict:
                continue

    def _drop(self, tenant_id: TenantId, mailbox_id: str, loaded: Versioned[MailboxState],
              message: WorkMessage) -> str:
        """The mailbox's gates closed: its delta state and item map go (in bounded steps), so that it is read
        from the start again if they open later. Its activities stay, hidden by the read-time gates (and purged
        when Exchange use ends, or its owner opts out)."""
        etag = loaded.etag
        if not loaded.document.dropping:
            try:
                etag = self._state.save(tenant_id, mailbox_key(mailbox_id),
                                        loaded.document.model_copy(update={"dropping": True, "round": None}), etag)
            except ConcurrencyConflict:
                return "superseded"
        batch = list(islice(self._state.copies(tenant_id, mailbox_id), self._drop_batch))
        if batch:
            self._state.release(tenant_id, mailbox_id, batch)
        if len(batch) == self._drop_batch:
            relay(self._index, self._queue, self._clock, message, renew=False)
            return "dropContinues"
        try:
            self._state.delete(tenant_id, mailbox_key(mailbox_id), etag)
        except ConcurrencyConflict:
            return "superseded"
        log.info("a mailbox's gates closed: its delta state is dropped")
        return "dropped"


def _failing(state: MailboxState) -> bool:
    error, success = state.last_error, state.last_success_at
    return error is not None and (success is None or error.at >= success)


__all__ = ["MailboxPlan", "MailboxRound", "mailbox_key", "usable_owner"]
