"""Ingestion of CRM records and activity metadata (SPEC 3, 4.4, 7): the one path every source goes through.

Each item is validated on its own, so one bad item does not refuse the batch: the answer lists what was
stored, what was already there (same or newer version) and what was refused, with a reason per item.
Exchange items pass the data gates of SPEC 3 for their mailbox owner, or are refused with the closed gate.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.clock import Clock
from shared.domain.gates import closed_gate
from shared.domain.records import RECORD_KINDS, Activity, InternalUser, Source, record_key
from shared.domain.tenant_settings import TenantSettings
from shared.errors import ConcurrencyConflict, Conflict, NotFound, StorageUnavailable, field_problems
from shared.services.ports import (
    IndexKind,
    RecordRepository,
    RecordTooLarge,
    ScheduleIndex,
    StoredVersion,
)
from shared.services.tenant_settings import TenantSettingsService
from shared.services.timing import IN_FLIGHT_MARGIN, WRITE_SETTLE
from shared.tenancy import TenantId

MAX_ITEMS = 1000
MAX_ATTEMPTS = 3
CONTENDED_RETRY_AFTER_SECONDS = 2

Item = tuple[int, BaseModel]  # the item's index in the batch, and the record it holds

log = logging.getLogger(__name__)

# The kinds whose new opt-outs are handed to the insights before the call answers (contacts' and leads' leave
# every count then; a user's activities have no index of their own: theirs go with the rebuild it sends).
_OPTED_OUT_AT_ONCE: dict[str, str] = {"contacts": "contact", "leads": "lead", "users": "user"}


@dataclass(frozen=True)
class Rejection:
    index: int
    id: str | None
    reason: str
    detail: str | None = None


@dataclass
class SyncReport:
    kind: str
    received: int
    stored: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.rejected))


@dataclass
class RemovalReport:
    kind: str
    received: int
    removed: int = 0  # now tombstones

    @property
    def absent(self) -> int:
        """Not stored, or removed already (a replayed deletion)."""
        return self.received - self.removed


class SyncService:
    def __init__(self, settings: TenantSettingsService, records: RecordRepository, clock: Clock,
                 index: ScheduleIndex | None = None,
                 on_opt_outs: Callable[[TenantId, list[tuple[str, str]]], None] | None = None) -> None:
        self._settings = settings
        self._records = records
        self._clock = clock
        self._index = index
        self._on_opt_outs = on_opt_outs  # hands new opt-outs to the insights before the call answers

    def ingest(self, tenant_id: TenantId, kind: str, items: Sequence[dict[str, Any]]) -> SyncReport:
        # Every row of the call carries this moment: taken before the gates are read, so a row whose gates were
        # open is never stamped after the moment they closed (the purge's cut-off).
        started = self._clock.now()
        model = RECORD_KINDS.get(kind)
        if model is None:
            raise NotFound(f"unknown kind '{kind}'; use one of {', '.join(RECORD_KINDS)}")
        with self._writing(tenant_id, started):
            return self._ingest(tenant_id, kind, model, items, started)

    @contextmanager
    def _writing(self, tenant_id: TenantId, started: datetime) -> Iterator[None]:
        """Registers this call, stamped `started`, with the log's readers for as long as it may write (they trust
        only rows stamped before the oldest call registered); gives up before writing anything when the
        registration took so long that a reader may have looked past the stamp meanwhile."""
        token = self._records.begin_writing(tenant_id, started)
        try:
            if self._clock.now() - started > IN_FLIGHT_MARGIN / 2:
                raise StorageUnavailable("the storage is slow right now; nothing was written")
            yield
        finally:
            try:
                self._records.end_writing(tenant_id, token)
            except StorageUnavailable:
                # Its readers wait for it until WRITE_SETTLE past its stamp, then delete the registration.
                log.warning("a sync call's registration stays: the insights refresh waits for it a few minutes")

    def _ingest(self, tenant_id: TenantId, kind: str, model: type[BaseModel], items: Sequence[dict[str, Any]],
                started: datetime) -> SyncReport:
        settings = self._settings.current(tenant_id).settings
        if not settings.enabled:
            raise Conflict("relationship intelligence is not enabled for this tenant: no data is accepted")
        report = SyncReport(kind, len(items))
        valid = _once_each(_validated(model, items, report), report)
        if kind == "activities":
            valid = self._gate(tenant_id, settings, valid, report)
        groups = self._groups(kind, valid, report)
        if groups and self._index is not None:
            # Written before the data, like every index row: a crash in between leaves a row with nothing to do,
            # never data that no recompute or purge will look at.
            # One row a minute however many calls come (the update reads what is new from its own mark, records'
            # changes as activities': it plans what each needs, a pass over every record only when one does).
            self._index.add(IndexKind.INSIGHTS_REFRESH, tenant_id, started.replace(second=0, microsecond=0))
        opted = self._new_opt_outs(tenant_id, kind, [record for group in groups for _, record in group])
        if opted and self._index is not None:
            # Their stored data goes too, not only from what sellers see (SPEC 4.4); once this call's rows
            # (the opt-out itself among them) are surely stored. Rows of calls that began before the opt-out
            # was stored and end after the purge are found by the next insights computation.
            self._index.add(IndexKind.OPT_OUT_PURGE, tenant_id, started + WRITE_SETTLE)
        for group in groups:
            self._store(tenant_id, kind, group, report, started)
        if opted and kind in _OPTED_OUT_AT_ONCE and self._on_opt_outs is not None:
            try:
                self._on_opt_outs(tenant_id, [(_OPTED_OUT_AT_ONCE[kind], record_id) for record_id in opted])
            except ConcurrencyConflict:
                log.warning("an opt-out is applied by the next insights update: the aggregates kept changing")
        return report

    def remove(self, tenant_id: TenantId, kind: str, keys: Sequence[str]) -> RemovalReport:
        """Deletions from a source (Graph's `@removed`, Dataverse's `$deletedEntity`), by record key (an activity's
        is `{source}|{id}`). Each stored record becomes a tombstone with a newer version, stamped with this call's
        moment: the insights see it as a change, and a late replay of an older version does not bring it back. A
        deletion needs no gate (taking data out is always allowed); replaying one changes nothing."""
        started = self._clock.now()
        if kind not in RECORD_KINDS:
            raise NotFound(f"unknown kind '{kind}'; use one of {', '.join(RECORD_KINDS)}")
        if not self._settings.current(tenant_id).settings.enabled:
            raise Conflict("relationship intelligence is not enabled for this tenant: no data is accepted")
        wanted = list(dict.fromkeys(keys))
        report = RemovalReport(kind, len(wanted))
        if not wanted:
            return report
        if self._index is not None:  # before the data, as for ingestion
            self._index.add(IndexKind.INSIGHTS_REFRESH, tenant_id, started)
        with self._writing(tenant_id, started):
            report.removed = len(self._records.remove(tenant_id, kind, wanted, started))
        return report

    def _new_opt_outs(self, tenant_id: TenantId, kind: str, records: list[BaseModel]) -> list[str]:
        """The opt-outs this batch brings that are not stored yet. A connector that sends every record again each
        day must not start a purge (a scan of every activity) each day."""
        opted = [r.id for r in records if getattr(r, "opted_out", False)]  # type: ignore[attr-defined]
        if not opted:
            return []
        stored = self._records.get_many(tenant_id, kind, opted)
        return [record_id for record_id in opted if not getattr(stored.get(record_id), "opted_out", False)]

    def _groups(self, kind: str, valid: list[Item], report: SyncReport) -> list[list[Item]]:
        """The items, cut into groups that one atomic write each can hold; an item that no row can hold is
        refused here, before anything is written."""
        weighed: list[tuple[Item, int]] = []
        for index, record in valid:
            try:
                weighed.append(((index, record), self._records.weight(kind, record)))
            except RecordTooLarge:
                report.rejected.append(Rejection(index, record.id, "tooLarge",  # type: ignore[attr-defined]
                                                 "the item is larger than one stored row can hold (about 480 K "
                                                 "characters)"))
        return [[item for item, _ in group] for group in self._records.atomic_groups(
            kind, weighed, lambda w: w[0][1], lambda w: w[1])]

    def _gate(self, tenant_id: TenantId, settings: TenantSettings, valid: list[Item],
              report: SyncReport) -> list[Item]:
        owner_ids = [a.mailbox_owner_id for _, a in valid
                     if isinstance(a, Activity) and a.source is Source.EXCHANGE and a.mailbox_owner_id]
        owners: dict[str, InternalUser] = self._records.get_many(tenant_id, "users", owner_ids) if owner_ids else {}
        passed: list[Item] = []
        for index, activity in valid:
            assert isinstance(activity, Activity)
            reason = closed_gate(settings, activity, owners.get(activity.mailbox_owner_id or ""))
            if reason is None:
                passed.append((index, activity))
            else:
                report.rejected.append(Rejection(index, activity.id, reason))
        return passed

    def _store(self, tenant_id: TenantId, kind: str, group: list[Item], report: SyncReport,
               started: datetime) -> None:
        # Fast path: most items are new (activities never change once done), so each group is first written as
        # creates. A group that meets an existing row wrote nothing (the write is atomic) and takes the slow
        # path: read the stored versions, then replace only what is newer.
        try:
            self._records.write(tenant_id, kind, [(record, None) for _, record in group], started)
        except ConcurrencyConflict:
            self._store_versioned(tenant_id, kind, [record for _, record in group], report, started)
        else:
            report.stored += len(group)

    def _store_versioned(self, tenant_id: TenantId, kind: str, pending: list[BaseModel], report: SyncReport,
                         started: datetime) -> None:
        for _ in range(MAX_ATTEMPTS):
            stored = self._records.versions(tenant_id, kind, pending)
            newer: list[tuple[BaseModel, StoredVersion | None]] = []
            for record in pending:
                current = stored.get(record_key(record))
                if current is None or current.version < record.version:  # type: ignore[attr-defined]
                    newer.append((record, current))
            try:
                if newer:
                    self._records.write(tenant_id, kind, newer, started)
            except ConcurrencyConflict:
                continue  # another batch wrote some of these rows meanwhile: read again and decide again
            report.stored += len(newer)
            report.unchanged += len(pending) - len(newer)
            return
        raise Conflict("these records are being written by another batch right now; send the batch again",
                       headers={"Retry-After": str(CONTENDED_RETRY_AFTER_SECONDS)})


def _validated(model: type[BaseModel], items: Sequence[dict[str, Any]], report: SyncReport) -> list[Item]:
    valid: list[Item] = []
    for index, item in enumerate(items):
        item_id = item.get("id") if isinstance(item.get("id"), str) else None
        try:
            valid.append((index, model.model_validate_json(json.dumps(item))))
        except ValidationError as exc:
            problems = "; ".join(f"{p['field']}: {p['reason']}" for p in field_problems(exc))
            report.rejected.append(Rejection(index, item_id, "invalid", problems[:500]))
    return valid


def _once_each(valid: list[Item], report: SyncReport) -> list[Item]:
    """A batch names each record once: a repeat is refused (which of two contents was meant cannot be told)."""
    first: dict[str, int] = {}
    kept: list[Item] = []
    for index, record in valid:
        key = record_key(record)
        if key in first:
            report.rejected.append(Rejection(index, record.id, "duplicateId",  # type: ignore[attr-defined]
                                             f"this id is already item {first[key]} of the batch; send each "
                                             "record once per batch"))
            continue
        first[key] = index
        kept.append((index, record))
    return kept
