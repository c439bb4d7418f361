"""The ports of the service layer: what the use cases need from storage and identity, as protocols.

Services depend on these only; `shared.storage` and `shared.identity` implement them, the composition root
(`shared.bootstrap`) plugs the implementations in, and unit tests use in-memory fakes of the same protocols.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

from shared.domain.audit import AuditEvent
from shared.domain.consent import ConsentRequest
from shared.domain.insights.directory import EntityType
from shared.domain.insights.model import RecordInsight
from shared.domain.introductions import IntroducerChoice, IntroductionRequest
from shared.domain.records import Activity
from shared.domain.security_roles import SecurityRole
from shared.domain.tenant_settings import TenantSettings
from shared.services.work import IndexKind, WorkKind
from shared.tenancy import TenantId

__all__ = ["IndexKind", "WorkKind"]  # re-exported: the index and the queues speak of them

D = TypeVar("D")
M = TypeVar("M", bound=BaseModel)

# -- tenant settings ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Current:
    settings: TenantSettings
    etag: str | None  # None: nothing stored yet for this tenant


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    continuation: str | None


class SettingsRepository(Protocol):
    def load(self, tenant_id: TenantId) -> Current: ...

    def save(self, tenant_id: TenantId, settings: TenantSettings, etag: str | None, event: AuditEvent) -> str:
        """Writes the settings (conditional on `etag`) and the event atomically; ConcurrencyConflict if stale."""
        ...

    def audit(self, tenant_id: TenantId, page_size: int, continuation: str | None) -> AuditPage:
        """Newest first; ValueError for a continuation token this repository did not issue."""
        ...

    def role_catalogue(self, tenant_id: TenantId) -> Sequence[SecurityRole] | None:
        """The catalogue a connector synced, or None when there is none."""
        ...


# -- the background work's index ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexEntry:
    kind: IndexKind
    tenant_id: TenantId
    due: datetime
    leased_until: datetime | None = None  # a message for it was sent; the timer leaves it alone until then
    position: str | None = None  # how far long work got (a purge's last key and what it judged by)
    etag: str | None = None

    @property
    def key(self) -> tuple[IndexKind, TenantId, datetime]:
        return self.kind, self.tenant_id, self.due


class ScheduleIndex(Protocol):
    """Which tenants may need background work, and from when (hints: the work re-reads the tenant's state)."""

    def add(self, kind: IndexKind, tenant_id: TenantId, due: datetime) -> None: ...

    def remove(self, kind: IndexKind, tenant_id: TenantId, due: datetime) -> None: ...

    def due(self, kind: IndexKind, now: datetime) -> Iterator[IndexEntry]:
        """Entries due at or before `now`, oldest first."""
        ...

    def get(self, kind: IndexKind, tenant_id: TenantId, due: datetime) -> IndexEntry | None: ...

    def keep(self, entry: IndexEntry, *, leased_until: datetime, position: str | None) -> IndexEntry | None:
        """Records a lease (and a position) on the entry as read; None when it changed or went meanwhile."""
        ...


# -- the work bus -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkMessage:
    """One kind of work for one tenant, naming the index rows that asked for it: ids only, never data."""

    kind: WorkKind
    tenant_id: TenantId
    rows: tuple[tuple[IndexKind, datetime], ...]
    operation_id: str | None = None
    target: str | None = None  # work fanned out within the tenant: what it is for (a mailbox's Entra object id)

    def entries(self) -> list[IndexEntry]:
        return [IndexEntry(kind, self.tenant_id, due) for kind, due in self.rows]

    def to_json(self) -> str:
        data: dict[str, Any] = {"kind": self.kind.value, "tenantId": self.tenant_id,
                                "operationId": self.operation_id,
                                "rows": [[kind.value, due.isoformat()] for kind, due in self.rows]}
        if self.target is not None:
            data["target"] = self.target
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> WorkMessage:
        """ValueError (KeyError, TypeError) for a message that is not one of ours."""
        data = json.loads(text)
        target = data.get("target")
        return cls(kind=WorkKind(data["kind"]), tenant_id=TenantId(str(data["tenantId"])),
                   rows=tuple((IndexKind(kind), datetime.fromisoformat(due)) for kind, due in data["rows"]),
                   operation_id=data.get("operationId"), target=None if target is None else str(target))


class WorkQueue(Protocol):
    def send(self, message: WorkMessage, *, delay: timedelta | None = None) -> None:
        """Enqueues the message, visible after `delay`; StorageUnavailable when the queue cannot be reached."""
        ...


# -- records and activities ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredVersion:
    version: int
    etag: str
    document: str | None = None  # the stored document (JSON), when read: a replace logs what it replaced


@dataclass(frozen=True)
class LoggedWrite:
    """One entry of the ingestion log: a write of some records of one kind, stored in the same transaction as
    them, with the documents it replaced (so that what the old versions counted for can be undone)."""

    kind: str
    ingested_at: datetime
    keys: tuple[str, ...]  # record keys (activities: "{source}|{id}")
    previous: dict[str, str]  # record key -> the replaced document (JSON)
    id: str = ""  # the log entry's own key
    removed: bool = False  # every row named was deleted in the entry's own transaction: none is left to read
    # Activities: record key -> the document written (JSON), so that what changed is known without reading the
    # rows again; None: the entry carries none (a removal, a tombstone, a group too large), the rows are read.
    current: dict[str, str] | None = None


class RecordTooLarge(ValueError):
    """A record that no stored row can hold."""


@dataclass(frozen=True)
class PurgeProgress:
    deleted: int
    finished: bool
    position: str | None = None  # unfinished: where the next step resumes (after this key)


class RecordRepository(Protocol):
    """CRM records and activity metadata of a tenant, each kept with the source's version and the moment it was
    stored. Keys are (kind, id); activities are kind "activities"."""

    def weight(self, kind: str, record: BaseModel) -> int:
        """What a record weighs in one atomic write (RecordTooLarge when no row can hold it)."""
        ...

    def atomic_groups(self, kind: str, items: Sequence[D], record: Callable[[D], BaseModel],
                      weight: Callable[[D], int]) -> Iterator[list[D]]:
        """The items (each holding a record of this kind), cut into groups that one atomic write each can hold."""
        ...

    def versions(self, tenant_id: TenantId, kind: str, records: Sequence[BaseModel]) -> dict[str, StoredVersion]:
        """Stored versions of these records by id (absent ones left out)."""
        ...

    def write(self, tenant_id: TenantId, kind: str, records: Sequence[tuple[BaseModel, StoredVersion | None]],
              ingested_at: datetime) -> None:
        """One atomic write: creates (None) or replaces the version read; ConcurrencyConflict if any changed."""
        ...

    def get(self, tenant_id: TenantId, kind: str, record_id: str) -> Any: ...

    def get_many(self, tenant_id: TenantId, kind: str, record_ids: Sequence[str]) -> dict[str, Any]: ...

    def iter_records(self, tenant_id: TenantId, kind: str) -> Iterator[Any]: ...

    def iter_activities(self, tenant_id: TenantId, *, with_ingested_at: bool = True, removed: bool = False,
                        ) -> Iterator[tuple[Activity, datetime | None]]:
        """Every activity; tombstones (as RemovedActivity, stamped with the moment of removal) only if `removed`."""
        ...

    def remove(self, tenant_id: TenantId, kind: str, keys: Sequence[str], removed_at: datetime) -> list[str]:
        """Turns these records (by record key) into tombstones: each row keeps its document, flagged deleted, with
        a version one above the stored one and `removed_at` as the moment it was stored; the keys of those that
        were removed now (absent or already removed ones are left out). Readers skip tombstones; purges delete
        them."""
        ...

    def records_version(self, tenant_id: TenantId) -> str | None:
        """Changes whenever a write of records (not activities) commits: read before loading the records, the same
        value later means they are unchanged (None: none written since versions were kept)."""
        ...

    def written_since(self, tenant_id: TenantId, after: datetime | None, *,
                      documents: bool = True) -> Iterator[LoggedWrite]:
        """The ingestion log: every write stored after that moment (all of them without one), oldest first. A
        range query or two (records and activities log in their own tables): its cost follows what was written
        since, never the tenant's history. Without `documents`: only what each write names (no documents it
        replaced or stored)."""
        ...

    def forget_written(self, tenant_id: TenantId, through: datetime) -> int:
        """Deletes the log's entries stored up to that moment (applied: the documents they hold, replaced or
        purged ones among them, must not outlive their use); returns how many."""
        ...

    def activities(self, tenant_id: TenantId, keys: Sequence[str]) -> dict[str, Activity]:
        """The stored activities of these keys ("{source}|{id}"); those gone (purged, removed) are left out."""
        ...

    def activities_page(self, tenant_id: TenantId, after: str | None, limit: int) -> tuple[list[Activity], str | None]:
        """Up to `limit` stored activities in key order, from the start or `after` a position an earlier page
        returned (tombstones left out), and the position of this page's end (None: no more)."""
        ...

    def begin_writing(self, tenant_id: TenantId, at: datetime) -> str:
        """Registers a call about to stamp the rows it writes with `at` (the log's readers wait for it, see
        `writing_since`); returns what `end_writing` takes."""
        ...

    def end_writing(self, tenant_id: TenantId, token: str) -> None:
        """The call `begin_writing` registered has ended: it writes no more."""
        ...

    def writing_since(self, tenant_id: TenantId, expired_before: datetime) -> list[datetime]:
        """The stamps of the calls still registered, stamped at `expired_before` or after (one small range query);
        those stamped before are deleted (their calls crashed: their host stopped them long ago)."""
        ...

    def record_writes_since(self, tenant_id: TenantId, after: datetime) -> Iterator[LoggedWrite]:
        """The log's writes of records (not activities) stored after that moment, oldest first (one range query:
        records are logged in their own table)."""
        ...

    def purge_exchange(self, tenant_id: TenantId, ingested_through: datetime, enough: Callable[[], bool],
                       after: str | None = None) -> PurgeProgress:
        """Deletes Exchange-derived activities stored up to that moment, from the start or `after` a position a
        previous step returned, until done or `enough()` says so."""
        ...

    def purge_people(self, tenant_id: TenantId, addresses: frozenset[str], user_ids: frozenset[str],
                     enough: Callable[[], bool], after: str | None = None) -> PurgeProgress:
        """Deletes the activities these people take part in or that came from these users' mailboxes."""
        ...


# -- the data sources (SPEC 7) ------------------------------------------------------------------------------


class SourceProblem(Exception):
    """A data source could not answer this call. `code` is the source's error code (never its message, which may
    quote data); `retry_after` is how long to wait, in seconds, when the source said so."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class SourceBusy(SourceProblem):
    """Throttled (429) or unavailable (5xx, the network) beyond the client's own retries: try again later."""


class SourcePositionLost(SourceProblem):
    """The stored delta or change token no longer applies (Graph 410, an expired Dataverse token): read all."""


class SourceRefused(SourceProblem):
    """Access denied, or the request refused (a mailbox that does not exist, a missing application user): the
    round of that scope fails, with the reason recorded for the admin."""


@dataclass(frozen=True)
class DeltaPage:
    """One page of a Graph delta round. Exactly one of `next_link` (the round goes on) and `delta_link` (the
    round is over: store it for the next one) is set. Items are metadata only (cut to allow-lists)."""

    items: list[dict[str, Any]]
    removed_ids: list[str]
    next_link: str | None
    delta_link: str | None


@dataclass(frozen=True)
class ChangePage:
    """One page of a Dataverse change-tracking round: `next_link` while it goes on, `delta_link` on its last."""

    rows: list[dict[str, Any]]
    deleted_ids: list[str]
    next_link: str | None
    delta_link: str | None


class MailSource(Protocol):
    """Microsoft Graph with the tenant's consented app-only token, one page per call."""

    def mail_delta(self, tenant: str, mailbox_id: str, folder: str, link: str | None, *,
                   since: datetime) -> DeltaPage: ...

    def calendar_delta(self, tenant: str, mailbox_id: str, link: str | None, *,
                       window: tuple[datetime, datetime]) -> DeltaPage: ...

    def transitive_member_ids(self, tenant: str, group_id: str) -> set[str]: ...


class CrmSource(Protocol):
    """A Dataverse environment through change tracking, one page per call."""

    def changes(self, tenant: str, environment_url: str, entity_set: str, select: Sequence[str],
                link: str | None) -> ChangePage: ...


@dataclass(frozen=True)
class MailboxCopy:
    """One item of a mailbox (a message in a folder, an event) and the activity it became."""

    source_id: str  # Graph's id of the item in that mailbox
    collection: str
    activity_id: str
    round_id: str = ""
    start: datetime | None = None  # events: when they start (a later window reconciles only what it covers)


@dataclass(frozen=True)
class Holder:
    """A mailbox that holds a copy of an activity, and the CRM user who owns it."""

    mailbox_id: str
    owner_id: str
    source_id: str


@dataclass(frozen=True)
class Child:
    """A row of a CRM table that only adds to another's record (a role assignment to a user, a connection to a
    lead or opportunity, an activity party to an activity): kept so the record can be derived again."""

    id: str
    parent: str
    row: dict[str, Any]


class SourceState(Protocol):
    """The data rounds' own rows in the tenant's partition: their state documents, the map from mailbox items
    to activities, and the CRM's child rows. Ids only, never content."""

    def load(self, tenant_id: TenantId, key: str, model: type[M]) -> Versioned[M] | None: ...

    def save(self, tenant_id: TenantId, key: str, document: BaseModel, etag: str | None) -> str:
        """Create (etag None) or replace the version read; ConcurrencyConflict when it changed meanwhile."""
        ...

    def delete(self, tenant_id: TenantId, key: str, etag: str) -> None:
        """Deletes the version read; ConcurrencyConflict when it changed meanwhile."""
        ...

    def load_all(self, tenant_id: TenantId, prefix: str, model: type[M]) -> Iterator[Versioned[M]]: ...

    def hold(self, tenant_id: TenantId, mailbox_id: str, owner_id: str, copies: Sequence[MailboxCopy]) -> None:
        """Records that the mailbox holds these copies (written again when seen again: idempotent)."""
        ...

    def held(self, tenant_id: TenantId, mailbox_id: str, collection: str, source_ids: Sequence[str],
             ) -> list[MailboxCopy]:
        """The copies of these items the mailbox's collection is known to hold."""
        ...

    def release(self, tenant_id: TenantId, mailbox_id: str, copies: Sequence[MailboxCopy]) -> None: ...

    def holders(self, tenant_id: TenantId, activity_ids: Sequence[str]) -> dict[str, list[Holder]]: ...

    def copies(self, tenant_id: TenantId, mailbox_id: str, collection: str | None = None,
               ) -> Iterator[MailboxCopy]:
        """The mailbox's copies (of one collection), streamed in key order."""
        ...

    def put_children(self, tenant_id: TenantId, relation: str, children: Sequence[Child]) -> None: ...

    def remove_children(self, tenant_id: TenantId, relation: str, child_ids: Sequence[str]) -> list[Child]:
        """Deletes them; the ones that were there (with their parent)."""
        ...

    def children_of(self, tenant_id: TenantId, relation: str, parents: Sequence[str]) -> dict[str, list[Child]]: ...


# -- per-record aggregates ----------------------------------------------------------------------------------

LEDGER_SUMMARY = "~"  # the period key under which a ledger keeps its partials
LEDGER_ARCHIVE = "!"  # ... and the partials of the periods before its horizon


@dataclass
class LedgerState:
    """What is stored of one record's aggregates: the facts of some periods (those read); the partials of the
    periods from `horizon` on, and `base`, those of every earlier period folded by origin (what the daily
    recompute reads stays bounded however old the record is); `archive`, the earlier periods' own partials, when
    read (a change to an old period refolds `base` from it); the ETags they were read with (None: not stored)."""

    months: dict[str, list[Any]] = field(default_factory=dict)
    partials: dict[str, dict[str, Any]] = field(default_factory=dict)
    etags: dict[str, str | None] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)
    horizon: str = ""
    archive: dict[str, dict[str, Any]] | None = None
    # What an insight reads of the periods before `settled_from` (`ledger.settle`), kept with the partials so that
    # a pass over every record reads this instead of them; None: to be settled again.
    settled: dict[str, Any] | None = None
    settled_from: str = ""
    complete: bool = True  # False: read for an insight only (settled partials and recent facts), never written
    layout: Any = None  # how the storage holds the summary it was read from (its own business; None: not known)


# Reading one record in this many of a tenant's (or more) costs fewer round trips as one query of them all (a page
# holds 1,000 rows; a record has ~3 ledger rows and one insight) than as point reads.
BULK_SHARE = 4


class LedgerRepository(Protocol):
    def read(self, tenant_id: TenantId, key: tuple[EntityType, str], recent_from: str,
             months: Iterable[str] = (), *, with_archive: bool = False, for_update: bool = False) -> LedgerState:
        """The partials, the facts of every period from `recent_from` on and of these other periods (and the
        archive if asked). `for_update`: the state is to be written back (conditionally on its ETags), so it may
        be what this process wrote last, not read again."""
        ...

    def read_many(self, tenant_id: TenantId, keys: Sequence[tuple[EntityType, str]], recent_from: str,
                  ) -> dict[tuple[EntityType, str], LedgerState]: ...

    def read_for_update(self, tenant_id: TenantId, edits: Mapping[tuple[EntityType, str], Iterable[str]],
                        recent_from: str, *, records: int) -> dict[tuple[EntityType, str], LedgerState]:
        """What `read(key, recent_from, months, for_update=True)` gives for each record and the periods it
        edits; a record that edits only periods from `recent_from` on may come as read for an insight (without its
        partials, `complete` False: `needs_partials` says which edits it cannot take). `records`: how many the
        tenant holds; when those to read are at least one in BULK_SHARE of them, they come from one query of its
        ledgers."""
        ...

    def read_all(self, tenant_id: TenantId, keys: Sequence[tuple[EntityType, str]], recent_from: str,
                 ) -> dict[tuple[EntityType, str], LedgerState]:
        """As `read_many`, for many records next to each other: one range query of their ledgers instead of a few
        point reads a record."""
        ...

    def write(self, tenant_id: TenantId, key: tuple[EntityType, str], state: LedgerState,
              changed: Iterable[str], recent_from: str | None = None) -> None:
        """Stores the changed months (an empty one is deleted) and the partials, each conditional on the ETag it
        was read with, in one transaction: ConcurrencyConflict if any changed meanwhile. The state then holds
        the new ETags (what a later `read(for_update=True)` may start from, the periods from `recent_from` on)."""
        ...

    def write_many(self, tenant_id: TenantId, writes: Sequence[tuple[tuple[EntityType, str], LedgerState, set[str]]],
                   recent_from: str | None = None) -> list[tuple[EntityType, str]]:
        """Several records' writes, each as `write` does, packed into few transactions (a record's rows never
        split between two); returns the records whose transaction failed on an ETag (nothing of those written)."""
        ...

    def clear(self, tenant_id: TenantId, limit: int) -> int:
        """Deletes up to `limit` of the tenant's rebuild fragments (before a rebuild gathers, and once it has
        merged them); returns how many."""
        ...

    def write_fragments(self, tenant_id: TenantId, rebuild: str, flush: int,
                        facts: Mapping[tuple[EntityType, str], Mapping[str, list[Any]]]) -> None:
        """Stores what one flush of a rebuild found: per record and period, the facts, in rows of their own (two
        deliveries of one flush never overwrite each other's)."""
        ...

    def read_fragments(self, tenant_id: TenantId, rebuild: str, after: str | None, limit: int,
                       ) -> tuple[dict[tuple[EntityType, str], dict[str, list[Any]]], str | None]:
        """The rebuild's fragments of the records next in key order (after the position an earlier call
        returned), whole records until about `limit` rows: their facts per period, every flush's together, and the
        position to continue from (None: no more). Reading the same position again gives the same."""
        ...

    def replace_records(self, tenant_id: TenantId, ledgers: dict[tuple[EntityType, str], LedgerState],
                        recent_from: str | None = None, *, after: str | None = None,
                        through: str | None = None) -> None:
        """A rebuild's writes: stores these records' ledgers as given (archive included) and deletes every other
        ledger row of the records from the one past position `after` through position `through` (positions as
        `read_fragments` gives them; None: from the first, through the last); the states then hold their new
        ETags."""
        ...

    def about(self, tenant_id: TenantId, key: tuple[EntityType, str]) -> list[str]:
        """The keys of the activities a record's ledger holds as being about its person (their own index)."""
        ...

    def built_through(self, tenant_id: TenantId) -> tuple[datetime, frozenset[str]] | None:
        """The ledgers reflect every write logged up to this moment, and these later log entries (None: never
        built)."""
        ...

    def built_version(self, tenant_id: TenantId) -> tuple[tuple[datetime, frozenset[str]] | None, str | None]:
        """What `built_through` says and, from the same read, the ETag of the row that says it (what `mark_built`
        may be conditional on; None: no row)."""
        ...

    def mark_built(self, tenant_id: TenantId, through: datetime, seen: Iterable[str], *,
                   etag: str | None = None) -> None:
        """Sets what `built_through` says (and ends a rebuild); conditional on `etag` when given (the rebuild's
        progress as read): ConcurrencyConflict if it changed."""
        ...

    def rebuild_progress(self, tenant_id: TenantId) -> tuple[RebuildProgress | None, str | None]:
        """Where the tenant's rebuild is (None: none under way) and the ETag of the row that says so (None: no
        row). While a rebuild is under way, `built_through` is None."""
        ...

    def save_rebuild(self, tenant_id: TenantId, progress: RebuildProgress, etag: str | None) -> str:
        """Stores the rebuild's progress in place of what `rebuild_progress` gave with this ETag (None: no row
        yet); returns the new ETag. ConcurrencyConflict if it changed meanwhile."""
        ...


@dataclass(frozen=True)
class RebuildProgress:
    """A rebuild of a tenant's aggregates from its stored activities, done in bounded steps that each save this:
    the ledgers are cleared; the activities are read in pages (`after`: the position of the last page done), their
    facts gathered per record up to a bound, then stored as fragments (`flushes` so far; a tenant whose facts all
    fit the first flush gets its ledgers from it at once); the fragments are merged into each record's ledger, a
    group of records at a time (`after`: the last record merged), and deleted; then every record is computed. The
    records count as they stood at `began` (the log says how they changed since); the ledgers then reflect the log
    up to `settled` and the record writes of `seen`."""

    began: datetime
    settled: datetime
    seen: frozenset[str]
    phase: Literal["clear", "activities", "merge", "cleanup", "insights"] = "clear"
    after: str | None = None
    activities: int = 0
    flushes: int = 0

    @property
    def name(self) -> str:
        """What names this rebuild's fragments (a late step of an earlier one may still write its own); to the
        millisecond, which any store keeps of `began`."""
        return self.began.strftime("%Y%m%dT%H%M%S") + f"{self.began.microsecond // 1000:03d}"


# -- computed insights --------------------------------------------------------------------------------------

RecordKey = tuple[EntityType, str]


@dataclass(frozen=True)
class SweepProgress:
    """The daily recompute's pass over every record, in steps that each save this: the records after `after` (in
    key order) are yet to compute, `records` are computed. A recompute asked for at a moment is the pass that began
    then or after (a pass begun later replaces one under way); `ended`: when it ended."""

    began: datetime
    after: RecordKey | None = None
    records: int = 0
    ended: datetime | None = None


@dataclass(frozen=True)
class RecomputeStatus:
    """The tenant's latest full recompute: asked for, started, finished (and what it computed)."""

    requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    records: int | None = None
    activities: int | None = None

    @property
    def state(self) -> Literal["never", "queued", "running", "done"]:
        started, finished = self.started_at, self.finished_at
        if self.requested_at is not None and (started is None or self.requested_at > started):
            return "queued"
        if started is not None and (finished is None or finished < started):
            return "running"
        return "done" if finished is not None else "never"


class InsightRepository(Protocol):
    def get(self, tenant_id: TenantId, entity_type: EntityType, record_id: str) -> RecordInsight | None: ...

    def iter(self, tenant_id: TenantId, entity_type: EntityType | None = None) -> Iterator[RecordInsight]: ...

    def account_of_domain(self, tenant_id: TenantId, domain: str) -> str | None: ...

    def needing_attention(self, tenant_id: TenantId, entity_type: EntityType, fingerprint: str,
                          after: tuple[int, str] | None, limit: int) -> list[RecordInsight]:
        """Records of a type whose variant served under these gates needs attention, worst first (score, then
        id), after a position, from an index kept in that order: a page costs its size, not the tenant's."""
        ...

    def at_risk(self, tenant_id: TenantId, fingerprint: str, enhanced: bool, after: str | None, limit: int,
                ) -> list[tuple[str, RecordInsight]]:
        """Records a departure put at risk, worst first (revenue at stake, then the strength of the tie lost), as
        measured in the mode and under the gates served, after a position, with their positions: from an index
        kept in that order."""
        ...

    def refreshed_through(self, tenant_id: TenantId) -> datetime | None:
        """Activities stored up to this moment are reflected in the stored insights."""
        ...

    def mark_refreshed(self, tenant_id: TenantId, through: datetime) -> None: ...

    def in_range(self, tenant_id: TenantId, after: RecordKey | None, through: RecordKey | None,
                 ) -> dict[RecordKey, Versioned[RecordInsight]]:
        """The stored insights of the records after `after` (None: from the first) through `through` (None: to the
        last), in key order, with their ETags: one range query."""
        ...

    def tidy(self, tenant_id: TenantId, keep: Collection[RecordKey], domains: Mapping[str, str],
             still_gone: Callable[[list[RecordKey]], list[RecordKey]] | None = None) -> None:
        """Deletes the insights of records not in `keep` (those `still_gone` says, asked once the insights are
        read) and the index rows no kept insight names (each delete conditional on the ETag read, so that what
        another worker wrote meanwhile stays), and keeps which account each email domain belongs to as `domains`
        says. Reads the keys of the tenant's insights and index rows."""
        ...

    def sweep_progress(self, tenant_id: TenantId) -> tuple[SweepProgress | None, str | None]:
        """The daily recompute's pass over every record under way, and the ETag its next save is conditional on."""
        ...

    def save_sweep(self, tenant_id: TenantId, progress: SweepProgress | None, etag: str | None, *,
                   replace: bool = False) -> str | None:
        """Saves where the pass got to, conditional on `etag` (None: on there being no pass stored; with
        `replace`, whatever is stored is replaced); raises ConcurrencyConflict when another step saved since.
        Returns the new ETag."""
        ...

    def previous(self, tenant_id: TenantId, keys: Sequence[RecordKey], *, records: int,
                 ) -> dict[RecordKey, Versioned[RecordInsight]]:
        """The stored insights of these records with their ETags, to be replaced (absent: none stored). What this
        process wrote last may stand in for a read: the write that follows is conditional on the ETag. `records`:
        as `LedgerRepository.read_for_update` has it."""
        ...

    def update(self, tenant_id: TenantId, insights: Sequence[RecordInsight], removed: Iterable[RecordKey] = (),
               previous: Mapping[RecordKey, Versioned[RecordInsight]] | None = None) -> list[RecordKey]:
        """Writes these insights and deletes the removed records'; with `previous` (as `previous` gave it), each
        record's write is conditional on it, and the records whose write failed on an ETag are returned."""
        ...

    def recompute_status(self, tenant_id: TenantId) -> RecomputeStatus: ...

    def note_recompute(self, tenant_id: TenantId, **facts: datetime | int) -> None:
        """Records facts of the latest recompute (requested_at, started_at, finished_at, records, activities)."""
        ...


# -- admin consent ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Versioned(Generic[D]):
    document: D
    etag: str


# Insights to store and the stored versions they replace (None: unconditionally).


class ConsentRequests(Protocol):
    def create(self, tenant_id: TenantId, secret_hash: str, request: ConsentRequest) -> None: ...

    def get(self, tenant_id: TenantId, secret_hash: str) -> Versioned[ConsentRequest] | None: ...

    def consume(self, tenant_id: TenantId, secret_hash: str, used: ConsentRequest, etag: str) -> None:
        """Marks the request used, only if nobody did meanwhile (ConcurrencyConflict otherwise)."""
        ...


GrantOutcome = Literal["granted", "missingPermissions", "servicePrincipalMissing", "tokenError", "transient"]


@dataclass(frozen=True)
class GrantCheck:
    outcome: GrantOutcome
    roles: tuple[str, ...] = ()
    error_code: str | None = None  # e.g. AADSTS700016; never the identity provider's raw description

    @property
    def granted(self) -> bool:
        return self.outcome == "granted"

    @property
    def definitive(self) -> bool:
        """A "no" that proves the consent is not (or no longer) in place."""
        return self.outcome in ("missingPermissions", "servicePrincipalMissing")


class ConsentVerifier(Protocol):
    def check(self, tenant_id: TenantId) -> GrantCheck:
        """Whether our app holds every permission it needs in that tenant, proven by the identity platform."""
        ...


# -- introductions ------------------------------------------------------------------------------------------


class IntroductionRepository(Protocol):
    """Colleagues' introducer choices and introduction requests, in the tenant's partition."""

    def choices(self, tenant_id: TenantId) -> Versioned[dict[str, IntroducerChoice]] | None:
        """Every choice made, by CRM user id (None: nobody chose yet)."""
        ...

    def save_choices(self, tenant_id: TenantId, choices: dict[str, IntroducerChoice], etag: str | None) -> None:
        """Conditional on the ETag read (None: creates); ConcurrencyConflict when someone wrote meanwhile."""
        ...

    def create(self, tenant_id: TenantId, request: IntroductionRequest) -> None: ...

    def get(self, tenant_id: TenantId, request_id: str) -> Versioned[IntroductionRequest] | None: ...

    def replace(self, tenant_id: TenantId, request: IntroductionRequest, etag: str) -> None:
        """ConcurrencyConflict when the request changed since it was read."""
        ...

    def page(self, tenant_id: TenantId, *, introducer_id: str | None = None, requester_id: str | None = None,
             page_size: int, continuation: str | None) -> tuple[list[IntroductionRequest], str | None]:
        """Requests to one introducer, or from one requester, newest first; ValueError for a foreign token."""
        ...
