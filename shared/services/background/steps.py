"""What the kinds of background work share: a time budget per step, the index rows' lease and position, and
sending a follow-up message right away (the index row stays the durable record: the timer sends it again if the
message is lost)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from shared import observability
from shared.clock import Clock
from shared.services.ports import IndexEntry, IndexKind, PurgeProgress, ScheduleIndex, WorkMessage, WorkQueue
from shared.services.work import WORK_OF_INDEX
from shared.tenancy import TenantId

log = logging.getLogger(__name__)

# A step of long work ends well inside the host's 10-minute functionTimeout, and continues in a new message.
SECONDS_PER_STEP = 240.0
# A row whose message was sent is left alone by the timer for this long (the timer runs hourly: a lost message is
# sent again by the next run, a slow one is not sent twice).
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
