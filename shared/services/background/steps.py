"""What the kinds of background work share: a time budget per step, the index rows' lease and position, and
sending a follow-up message right away (the index row stays the durable record: the timer sends it again if the
message is lost)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from shared import observability
from shared.clock import Clock
from shared.services.ports import IndexEntry, IndexKind, PurgeProgress, ScheduleIndex, WorkMessage, WorkQueue
from shared.services.work import WORK_OF_INDEX
from shared.tenancy import TenantId

log = logging.getLogger(__name__)

# A step of long work ends well inside the host's 10-minute functionTimeout, and continues in a new message.
SECONDS_PER_STEP = 240.0
# A row whose message was sent is left alone by the timer for this long (a lost message is sent again by a run after
# it, a slow one is not sent twice; the data rounds' state rows, not this lease, keep their duplicates harmless).
LEASE = timedelta(minutes=55)


def deadline_in(seconds: float, monotonic: Callable[[], float] = time.monotonic) -> Callable[[], bool]:
    """A test that says when the budget is spent."""
    until = monotonic() + seconds
    return lambda: monotonic() >= until


def done(index: ScheduleIndex, rows: Sequence[IndexEntry]) -> None:
    for row in rows:
        index.remove(row.kind, row.tenant_id, row.due)


def snooze(index: ScheduleIndex, rows: Sequence[IndexEntry], until: datetime) -> None:
    """Work that came too early: the timer sends its rows again once `until` has come, not a lease later."""
    for row in rows:
        entry = index.get(row.kind, row.tenant_id, row.due)
        if entry is not None:
            index.keep(entry, leased_until=until, position=entry.position)


def message_for(tenant_id: TenantId, rows: Sequence[IndexEntry]) -> WorkMessage:
    kinds = {WORK_OF_INDEX[row.kind] for row in rows}
    assert len(kinds) == 1, "one message carries one kind of work"
    return WorkMessage(kinds.pop(), tenant_id, tuple((row.kind, row.due) for row in rows),
                       observability.current_operation_id())


def ask(index: ScheduleIndex, queue: WorkQueue, clock: Clock, kind: IndexKind, tenant_id: TenantId,
        due: datetime) -> None:
    """Asks for work by its index row (written first: the durable part), and when it is due already, by a message
    at once instead of at the timer's next run."""
    index.add(kind, tenant_id, due)
    if due > clock.now():
        return
    entry = index.get(kind, tenant_id, due)
    if entry is None:
        return  # done already
    queue.send(message_for(tenant_id, [entry]))
    index.keep(entry, leased_until=clock.now() + LEASE, position=entry.position)


def ask_soon(index: ScheduleIndex, queue: WorkQueue, clock: Clock, kind: IndexKind, tenant_id: TenantId) -> None:
    """`ask` for work due now, at most once a minute per tenant and kind: the rounds of many mailboxes that end
    together send one or two messages, not one each. (Its row is due at the minute's start: only for work that does
    not judge by when it was asked, as the insights' refresh does not; the recompute does.)"""
    now = clock.now()
    due = now.replace(second=0, microsecond=0)
    entry = index.get(kind, tenant_id, due)
    if entry is None or entry.leased_until is None or entry.leased_until <= now:
        ask(index, queue, clock, kind, tenant_id, due)
        return
    # This minute's is on its way and may already have read what is new before this ask's data was written: the
    # next minute's follows it (one more at most, however many ask), sent to arrive when it is due.
    due += timedelta(minutes=1)
    later = index.get(kind, tenant_id, due)
    if later is not None and later.leased_until is not None and later.leased_until > now:
        return
    if later is None:
        index.add(kind, tenant_id, due)  # (an add clears a lease: only when there is none)
        later = index.get(kind, tenant_id, due)
        if later is None:
            return
    queue.send(message_for(tenant_id, [later]), delay=due - now)
    index.keep(later, leased_until=due + LEASE, position=later.position)


def relay(index: ScheduleIndex, queue: WorkQueue, clock: Clock, message: WorkMessage, *,
          delay: timedelta | None = None, renew: bool = True) -> None:
    """Sends the next step of long work as the same message (later, after `delay`), first renewing the lease of
    the index rows it names (unless they are another work's, as a mailbox round's are the plan's), so that the
    timer does not send them again meanwhile."""
    until = clock.now() + (delay or timedelta()) + LEASE
    for row in message.entries() if renew else []:
        entry = index.get(row.kind, row.tenant_id, row.due)
        if entry is not None:
            index.keep(entry, leased_until=until, position=entry.position)
    queue.send(WorkMessage(message.kind, message.tenant_id, message.rows, observability.current_operation_id(),
                           message.target), delay=delay)


def next_slot(tenant_id: TenantId, interval: timedelta, now: datetime) -> datetime:
    """When a recurring round of the tenant is next due: on a grid of `interval` offset per tenant (so tenants
    spread over the interval), at least half an interval from now. Two chains of the same round, started by two
    requests, land on the same slots and merge into one (the index row is keyed by its due time)."""
    seconds = max(1, int(interval.total_seconds()))
    offset = int(hashlib.sha256(tenant_id.encode()).hexdigest()[:8], 16) % seconds
    origin = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
    earliest = now + interval / 2
    steps = math.ceil((earliest - origin).total_seconds() / seconds)
    return origin + timedelta(seconds=steps * seconds)


@dataclass(frozen=True)
class Resumed:
    """Where long work resumes: after `after` (None: from the start), judged by the same criterion as before."""

    entry: IndexEntry
    after: str | None


def resume(index: ScheduleIndex, rows: Sequence[IndexEntry], judged_by: str) -> Resumed | None:
    """The position the first row keeps, if it was reached judging by the same criterion (a purge's cut-off);
    from the start otherwise. None when the row is gone: another message finished the work."""
    entry = index.get(rows[0].kind, rows[0].tenant_id, rows[0].due)
    if entry is None:
        return None
    saved = json.loads(entry.position) if entry.position else {}
    return Resumed(entry, saved.get("after") if saved.get("judgedBy") == judged_by else None)


def continue_later(index: ScheduleIndex, queue: WorkQueue, clock: Clock, resumed: Resumed, rows: Sequence[IndexEntry],
                   judged_by: str, after: str | None) -> bool:
    """Keeps the position on the row, then sends the next step. False when the row changed meanwhile: another
    delivery of the same work got further, and this one stops."""
    position = json.dumps({"judgedBy": judged_by, "after": after})
    kept = index.keep(resumed.entry, leased_until=clock.now() + LEASE, position=position)
    if kept is None:
        log.info("another step of this work got further; this one stops")
        return False
    queue.send(message_for(resumed.entry.tenant_id, rows))
    return True


StepOutcome = Literal["stale", "purgeContinues", "superseded", "finished"]


def purge_step(index: ScheduleIndex, queue: WorkQueue, clock: Clock, rows: Sequence[IndexEntry], judged_by: str,
               purge: Callable[[str | None], PurgeProgress], what: str) -> StepOutcome:
    """One step of a purge that resumes after the position the last step kept (when it judged by the same
    criterion), and keeps its own and sends the next step when its time budget runs out."""
    resumed = resume(index, rows, judged_by)
    if resumed is None:
        return "stale"
    progress = purge(resumed.after)
    log.info("purged %d %s%s", progress.deleted, what, "" if progress.finished else "; more to do")
    if progress.finished:
        return "finished"
    kept = continue_later(index, queue, clock, resumed, rows, judged_by, progress.position)
    return "purgeContinues" if kept else "superseded"
