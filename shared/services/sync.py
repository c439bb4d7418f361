"""Ingestion of CRM records and activity metadata from a sync connector (SPEC 3, 4.4).

Each item is validated on its own, so one bad item does not refuse the batch: the answer lists what was
stored, what was already there (same or newer version) and what was refused, with a reason per item.
Exchange items pass the data gates of SPEC 3 for their mailbox owner, or are refused with the closed gate.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.api.requests import field_problems
from shared.clock import Clock
from shared.domain.gates import closed_gate
from shared.domain.records import RECORD_KINDS, Activity, InternalUser, Source
from shared.errors import ConcurrencyConflict, Conflict, NotFound
from shared.services.schedules import WRITE_SETTLE, IndexKind, ScheduleIndex
from shared.services.settings import SettingsService
from shared.storage.documents import DocumentTooLarge
from shared.storage.records_repository import StoredVersion, TableRecords, row_key
from shared.storage.tables import cut_into_transactions
from shared.tenancy import TenantId

MAX_ITEMS = 1000
MAX_ATTEMPTS = 3


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


class SyncService:
    def __init__(self, settings: SettingsService, records: TableRecords, clock: Clock,
                 index: ScheduleIndex | None = None) -> None:
        self._settings = settings
        self._records = records
        self._clock = clock
        self._index = index

    def ingest(self, tenant_id: TenantId, kind: str, items: Sequence[dict[str, Any]]) -> SyncReport:
        # Every row of the call carries this moment: taken before the gates are read, so a row whose gates were
        # open is never stamped after the moment they closed (the purge's cut-off).
        started = self._clock.now()
        model = RECORD_KINDS.get(kind)
        if model is None:
            raise NotFound(f"unknown kind '{kind}'; use one of {', '.join(RECORD_KINDS)}")
        settings = self._settings.current(tenant_id).settings
        if not settings.enabled:
            raise Conflict("relationship intelligence is not enabled for this tenant: no data is accepted")
        report = SyncReport(kind, len(items))
        valid: list[tuple[int, BaseModel]] = []
        for index, item in enumerate(items):
            record = _validate(model, item, index, report)
            if record is not None:
                valid.append((index, record))
        valid = _last_of_each_id(valid, report)
        if kind == "activities":
            valid = self._gate(tenant_id, settings, valid, report)
        chunks = self._chunks(kind, valid, report)
        valid = [item for chunk in chunks for item in chunk]
        if valid and self._index is not None:
            # Written before the data, like every index row: a crash in between leaves a row with nothing to do,
            # never data that no recompute or purge will look at.
            kind_of_work = IndexKind.INSIGHTS_REFRESH if kind == "activities" else IndexKind.INSIGHTS_RECOMPUTE
            self._index.add(kind_of_work, tenant_id, started)
            if self._new_opt_outs(tenant_id, kind, valid):
                # Their stored data goes too, not only from what sellers see (SPEC 4.4); once this call's rows
                # (the opt-out itself among them) are surely stored. Rows of calls that began before the opt-out
                # was stored and end after the purge are found by the next insights computation.
                self._index.add(IndexKind.OPT_OUT_PURGE, tenant_id, started + WRITE_SETTLE)
        for chunk in chunks:
            self._store(tenant_id, kind, chunk, report, started)
        return report

    def _new_opt_outs(self, tenant_id: TenantId, kind: str, valid: list[tuple[int, BaseModel]]) -> bool:
        """Whether this batch brings an opt-out not stored yet. A connector that sends every record again each
        day must not start a purge (a scan of every activity) each day."""
        opted = [r.id for _, r in valid if getattr(r, "opted_out", False)]  # type: ignore[attr-defined]
        if not opted:
            return False
        stored = self._records.get_many(tenant_id, kind, opted)
        return any(not getattr(stored.get(record_id), "opted_out", False) for record_id in opted)

    def _chunks(self, kind: str, valid: list[tuple[int, BaseModel]], report: SyncReport,
                ) -> list[list[tuple[int, BaseModel]]]:
        """The items, cut into groups that one transaction each can hold (by count and by size); an item that no
        row can hold is refused here, before anything is written."""
        weighed: list[tuple[int, BaseModel, int]] = []
        for index, record in valid:
            try:
                weighed.append((index, record, self._records.row_bytes(kind, record)))
            except DocumentTooLarge:
                report.rejected.append(Rejection(index, record.id, "tooLarge",  # type: ignore[attr-defined]
                                                 "the item is larger than one stored row can hold (about 480 K "
                                                 "characters)"))
        return [[(index, record) for index, record, _ in chunk]
                for chunk in cut_into_transactions(weighed, lambda item: item[2])]

    def _gate(self, tenant_id: TenantId, settings: Any, valid: list[tuple[int, BaseModel]],
              report: SyncReport) -> list[tuple[int, BaseModel]]:
        owner_ids = [a.mailbox_owner_id for _, a in valid
                     if isinstance(a, Activity) and a.source is Source.EXCHANGE and a.mailbox_owner_id]
        owners: dict[str, InternalUser] = self._records.get_many(tenant_id, "users", owner_ids) if owner_ids else {}
        passed: list[tuple[int, BaseModel]] = []
        for index, activity in valid:
            assert isinstance(activity, Activity)
            owner = owners.get(activity.mailbox_owner_id or "")
            reason = closed_gate(settings, activity, owner)
            if reason is None:
                passed.append((index, activity))
            else:
                report.rejected.append(Rejection(index, activity.id, reason))
        return passed

    def _store(self, tenant_id: TenantId, kind: str, chunk: list[tuple[int, BaseModel]], report: SyncReport,
               started: datetime) -> None:
        # Fast path: most items are new (activities never change once done), so each chunk is first written as
        # creates in one transaction. A chunk that meets an existing row wrote nothing (transactions are atomic)
        # and takes the slow path: read the stored versions, then replace only what is newer.
        try:
            self._records.write(tenant_id, kind, [(record, None) for _, record in chunk], started)
        except ConcurrencyConflict:
            self._store_versioned(tenant_id, kind, chunk, report, started)
        else:
            report.stored += len(chunk)

    def _store_versioned(self, tenant_id: TenantId, kind: str, pending: list[tuple[int, BaseModel]],
                         report: SyncReport, started: datetime) -> None:
        for _ in range(MAX_ATTEMPTS):
            stored = self._records.versions(tenant_id, [row_key(kind, r) for _, r in pending])
            newer: list[tuple[BaseModel, StoredVersion | None]] = []
            for _, record in pending:
                current = stored.get(row_key(kind, record))
                if current is None or current.version < record.version:  # type: ignore[attr-defined]
                    newer.append((record, current))
            try:
                self._records.write(tenant_id, kind, newer, started)
            except ConcurrencyConflict:
                continue  # another batch wrote some of these rows meanwhile: read again and decide again
            report.stored += len(newer)
            report.unchanged += len(pending) - len(newer)
            return
        raise Conflict("these records are being written by another batch right now; send the batch again",
                       headers={"Retry-After": "2"})


def _validate(model: type[BaseModel], item: dict[str, Any], index: int, report: SyncReport) -> BaseModel | None:
    item_id = item.get("id") if isinstance(item.get("id"), str) else None
    try:
        return model.model_validate_json(json.dumps(item))
    except ValidationError as exc:
        problems = "; ".join(f"{p['field']}: {p['reason']}" for p in field_problems(exc))
        report.rejected.append(Rejection(index, item_id, "invalid", problems[:500]))
        return None


def _last_of_each_id(valid: list[tuple[int, BaseModel]], report: SyncReport) -> list[tuple[int, BaseModel]]:
    """One batch may carry the same record twice: the highest version wins, the others count as unchanged."""
    best: dict[str, tuple[int, BaseModel]] = {}
    for index, record in valid:
        key = row_key(report.kind, record)
        if key not in best or best[key][1].version <= record.version:  # type: ignore[attr-defined]
            if key in best:
                report.unchanged += 1
            best[key] = (index, record)
        else:
            report.unchanged += 1
    return list(best.values())
