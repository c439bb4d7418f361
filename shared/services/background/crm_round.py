"""The tenant's CRM round (SPEC 7): Dataverse change tracking over a fixed list of tables, through the one
ingestion path (validation, versions, gates, opt-outs live there), in bounded steps that continue in new messages.

- One round reads the tables in order, roles and role assignments before users, users before what names them,
  the rows that only add to another's record (role assignments, connections, activity parties) before the
  records they add to. Each table continues from the delta link its last round ended with; without one (first
  round, expired token, a new environment URL) it is read whole, and the versions make that harmless.
- Where the round is lives on its state row (`source|crm`, the tenant's partition), written with the ETag read:
  a message continues from the stored link; a duplicate that finds the row changed stops; a late message for a
  round that already ran finds it done. Data is written before the state, so a step that fails is replayed and
  stores nothing twice (versions).
- Derived records: a user's roles come from its role assignments, a lead's stakeholders and an opportunity's
  team from their connections, an activity's people from its activity parties. Those rows are kept (ids and
  allow-listed columns only) so that a change to one of them derives its record again from the stored one, with
  a version above it. Only what changed is handed to the ingestion path (so an unchanged round asks for no
  recompute).
- `$deletedEntity` removes the record (a tombstone). A change token that has expired means a full read of that
  table (rows deleted meanwhile are not noticed then: Dataverse names no deletions in a full read). 429/503
  beyond the client's retries: the step saves what it did and continues after `Retry-After`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.clock import Clock
from shared.domain import source_mapping as m
from shared.domain.records import RECORD_KINDS, Activity, InternalUser, Lead, Opportunity
from shared.domain.source_state import CrmRound as RoundState
from shared.domain.source_state import CrmState, RoundError
from shared.errors import ConcurrencyConflict
from shared.services.background.rounds import batches, in_words
from shared.services.background.steps import (
    SECONDS_PER_STEP,
    ask,
    ask_soon,
    deadline_in,
    done,
    message_for,
    next_slot,
    relay,
)
from shared.services.data_sources import CRM_KEY
from shared.services.ports import (
    ChangePage,
    Child,
    CrmSource,
    IndexEntry,
    IndexKind,
    RecordRepository,
    ScheduleIndex,
    SourceBusy,
    SourcePositionLost,
    SourceRefused,
    SourceState,
    WorkKind,
    WorkQueue,
)
from shared.services.sync import SyncService
from shared.services.tenant_settings import TenantSettingsService
from shared.tenancy import TenantId

log = logging.getLogger(__name__)

PAGES_PER_STEP = 10


@dataclass(frozen=True)
class Table:
    entity_set: str
    columns: tuple[str, ...]
    kind: str | None = None  # the records its rows become
    relation: str | None = None  # rows that add to another table's records: the relation they are kept under


TABLES: tuple[Table, ...] = (
    Table("roles", m.ROLE_COLUMNS, "securityRoles", "roles"),
    Table("systemuserrolescollection", m.ASSIGNMENT_COLUMNS, relation="assignments"),
    Table("systemusers", m.USER_COLUMNS, "users"),
    Table("accounts", m.ACCOUNT_COLUMNS, "accounts"),
    Table("contacts", m.CONTACT_COLUMNS, "contacts"),
    Table("connections", m.CONNECTION_COLUMNS, relation="connections"),
    Table("leads", m.LEAD_COLUMNS, "leads"),
    Table("opportunities", m.OPPORTUNITY_COLUMNS, "opportunities"),
    Table("activityparties", m.PARTY_COLUMNS, relation="parties"),
    Table("emails", m.EMAIL_COLUMNS, "activities"),
    Table("appointments", m.APPOINTMENT_COLUMNS, "activities"),
    Table("phonecalls", m.PHONECALL_COLUMNS, "activities"),
)
_ACTIVITY_SETS = {"email": "emails", "appointment": "appointments", "phoneCall": "phonecalls"}
_ALL_ROLES = "all"


@dataclass
class _Applied:
    items: int = 0
    removed: int = 0
    kinds: set[str] = field(default_factory=set)
    rejected: Counter[str] = field(default_factory=Counter)


class CrmRound:
    kind = WorkKind.CRM_ROUND

    def __init__(self, settings: TenantSettingsService, records: RecordRepository, sync: SyncService,
                 state: SourceState, crm: Callable[[], CrmSource], index: ScheduleIndex, queue: WorkQueue,
                 clock: Clock, *, interval: timedelta, seconds_per_step: float = SECONDS_PER_STEP,
                 pages_per_step: int = PAGES_PER_STEP) -> None:
        self._settings = settings
        self._records = records
        self._sync = sync
        self._state = state
        self._crm = crm  # built on first use: it needs the app registration's credential
        self._index = index
        self._queue = queue
        self._clock = clock
        self._interval = interval
        self._seconds = seconds_per_step
        self._pages = pages_per_step

    def run(self, tenant_id: TenantId, rows: list[IndexEntry]) -> str:
        settings = self._settings.current(tenant_id).settings
        url = settings.crm.environment_url
        if not settings.enabled or url is None:
            done(self._index, rows)
            return "noCrm"  # asked again when the environment is set or the tenant enabled
        loaded = self._state.load(tenant_id, CRM_KEY, CrmState)
        state = (loaded.document if loaded else CrmState()).for_environment(url, settings.crm.changed_at)
        now = self._clock.now()
        if state.round is None:
            asked = max(row.due for row in rows)
            if state.last_started_at is not None and state.last_started_at >= asked:
                done(self._index, rows)
                return "alreadyDone"  # a late or repeated message: a round began after it was asked for
            state = state.model_copy(update={"round": RoundState(started_at=now), "last_started_at": now})
        assert state.round is not None
        current, links = state.round, dict(state.links)
        enough = deadline_in(self._seconds)
        outcome: str | None = None
        problem: RoundError | None = None
        wait: float | None = None
        for _ in range(self._pages):
            table = TABLES[current.set_index]
            try:
                page = self._crm().changes(tenant_id, url, table.entity_set, table.columns,
                                           current.link or links.get(table.entity_set))
            except SourcePositionLost:
                log.info("CRM %s: the change token expired, reading it whole", table.entity_set)
                links.pop(table.entity_set, None)
                current = current.model_copy(update={"link": None})
                continue
            except SourceBusy as exc:
                outcome, problem, wait = "busy", in_words(exc, "Dataverse", now), exc.retry_after
                break
            except SourceRefused as exc:
                outcome, problem = "failed", in_words(exc, "Dataverse", now)
                break
            applied = self._apply(tenant_id, table, page, now)
            if applied.rejected:
                log.warning("CRM %s: items refused by the ingestion path %s", table.entity_set,
                            dict(applied.rejected))
            current = current.model_copy(update={
                "items": current.items + applied.items, "removed": current.removed + applied.removed,
                "records_changed": current.records_changed or bool(applied.kinds - {"activities"}),
                "activities_changed": current.activities_changed or "activities" in applied.kinds,
                "users_changed": current.users_changed or bool(applied.kinds & {"users", "securityRoles"})})
            if page.next_link is not None:
                current = current.model_copy(update={"link": page.next_link})
            else:
                if page.delta_link is not None:
                    links[table.entity_set] = page.delta_link
                current = current.model_copy(update={"set_index": current.set_index + 1, "link": None})
                if current.set_index == len(TABLES):
                    outcome = "done"
                    break
            if enough():
                break
        state = state.model_copy(update={"links": links, "round": current})
        if outcome in ("done", "failed"):
            state = state.model_copy(update={
                "round": None, "last_error": problem,
                **({"last_success_at": now, "last_round_items": current.items,
                    "last_round_removed": current.removed} if outcome == "done" else {})})
        elif problem is not None:
            state = state.model_copy(update={"last_error": problem})
        try:
            self._state.save(tenant_id, CRM_KEY, state, loaded.etag if loaded else None)
        except ConcurrencyConflict:
            log.info("another step of this CRM round got further; this one stops")
            return "superseded"
        if outcome in ("done", "failed"):
            self._after_round(tenant_id, current)
            self._index.add(IndexKind.CRM_ROUND, tenant_id, next_slot(tenant_id, self._interval, now))
            done(self._index, rows)
            log.info("CRM round %s: %d items, %d removed", outcome, current.items, current.removed)
            return "crmRoundDone" if outcome == "done" else "crmRoundFailed"
        relay(self._index, self._queue, self._clock, message_for(tenant_id, rows),
              delay=timedelta(seconds=wait) if wait else None)
        return "crmThrottled" if outcome == "busy" else "crmRoundContinues"

    def _after_round(self, tenant_id: TenantId, current: RoundState) -> None:
        if current.records_changed or current.activities_changed:
            # (the refresh plans what the records' changes need: a pass over every record only when one does)
            ask_soon(self._index, self._queue, self._clock, IndexKind.INSIGHTS_REFRESH, tenant_id)
        if current.users_changed and self._settings.current(tenant_id).settings.exchange_data_usable:
            # Whose mailboxes pass the gates follows the users (roles, opt-outs, Entra ids): plan again now.
            ask(self._index, self._queue, self._clock, IndexKind.MAILBOX_PLAN, tenant_id, self._clock.now())

    # -- one page of one table ----------------------------------------------------------------------------

    def _apply(self, tenant_id: TenantId, table: Table, page: ChangePage, now: datetime) -> _Applied:
        applied = _Applied()
        rows = [m.strip_row(row, table.columns) for row in page.rows]
        if table.entity_set == "roles":
            self._state.put_children(tenant_id, "roles", [
                Child(str(r["roleid"]).lower(), _ALL_ROLES, {"root": str(r.get("_parentrootroleid_value")
                                                                       or r["roleid"]).lower()})
                for r in rows if r.get("roleid")])
            self._state.remove_children(tenant_id, "roles", page.deleted_ids)
            self._store(tenant_id, "securityRoles", [m.dataverse_role(r) for r in rows], applied)
            self._remove(tenant_id, "securityRoles", page.deleted_ids, applied)
        elif table.relation == "assignments":
            roots = {c.id: str(c.row.get("root")) for c in
                     self._state.children_of(tenant_id, "roles", [_ALL_ROLES]).get(_ALL_ROLES, [])}
            children = [Child(str(r["systemuserroleid"]).lower(), str(r["systemuserid"]).lower(),
                              {"role": roots.get(str(r.get("roleid")).lower(), str(r.get("roleid")).lower()),
                               "versionnumber": r.get("versionnumber")})
                        for r in rows if r.get("systemuserroleid") and r.get("systemuserid")]
            users = self._children_changed(tenant_id, "assignments", children, page.deleted_ids)
            self._store(tenant_id, "users", self._users_with_roles(tenant_id, users), applied)
        elif table.kind == "users":
            ids = [str(r.get("systemuserid", "")).lower() for r in rows]
            roles = self._state.children_of(tenant_id, "assignments", ids)
            stored: dict[str, InternalUser] = self._records.get_many(tenant_id, "users", ids)
            self._store(tenant_id, "users", [m.dataverse_user(
                r, role_ids=[str(c.row.get("role")) for c in roles.get(uid, [])],
                group_ids=stored[uid].group_ids if uid in stored else ()) for r, uid in zip(rows, ids, strict=True)],
                applied)
            self._remove(tenant_id, "users", page.deleted_ids, applied)
        elif table.kind in ("accounts", "contacts"):
            mapper = m.dataverse_account if table.kind == "accounts" else m.dataverse_contact
            self._store(tenant_id, table.kind, [mapper(r) for r in rows], applied)
            self._remove(tenant_id, table.kind, page.deleted_ids, applied)
        elif table.relation == "connections":
            children = [Child(str(r["connectionid"]).lower(), str(r["_record1id_value"]).lower(), r)
                        for r in rows if r.get("connectionid") and r.get("_record1id_value")]
            records = self._children_changed(tenant_id, "connections", children, page.deleted_ids)
            leads, opportunities = self._linked_again(tenant_id, records)
            self._store(tenant_id, "leads", leads, applied)
            self._store(tenant_id, "opportunities", opportunities, applied)
        elif table.kind in ("leads", "opportunities"):
            key = "leadid" if table.kind == "leads" else "opportunityid"
            ids = [str(r.get(key, "")).lower() for r in rows]
            links = self._state.children_of(tenant_id, "connections", ids)
            derive = m.dataverse_lead if table.kind == "leads" else m.dataverse_opportunity
            self._store(tenant_id, table.kind, [derive(r, [c.row for c in links.get(rid, [])])
                                                for r, rid in zip(rows, ids, strict=True)], applied)
            self._remove(tenant_id, table.kind, page.deleted_ids, applied)
        elif table.relation == "parties":
            children = [Child(str(r["activitypartyid"]).lower(), str(r["_activityid_value"]).lower(), r)
                        for r in rows if r.get("activitypartyid") and r.get("_activityid_value")]
            activities = self._children_changed(tenant_id, "parties", children, page.deleted_ids)
            self._store(tenant_id, "activities", self._people_again(tenant_id, activities), applied)
        else:
            ids = [str(r.get("activityid", "")).lower() for r in rows]
            parties = self._state.children_of(tenant_id, "parties", ids)
            self._store(tenant_id, "activities", [
                m.dataverse_activity(table.entity_set, r, [c.row for c in parties.get(aid, [])], now=now)
                for r, aid in zip(rows, ids, strict=True)], applied)
            self._remove(tenant_id, "activities", [f"crm|{i}" for i in page.deleted_ids], applied)
        return applied

    def _children_changed(self, tenant_id: TenantId, relation: str, children: list[Child],
                          deleted: Sequence[str]) -> list[str]:
        """Stores the changed child rows and forgets the deleted ones; the parents whose records they change."""
        if children:
            self._state.put_children(tenant_id, relation, children)
        gone = self._state.remove_children(tenant_id, relation, deleted) if deleted else []
        return list(dict.fromkeys([c.parent for c in children] + [c.parent for c in gone]))

    def _users_with_roles(self, tenant_id: TenantId, user_ids: list[str]) -> list[dict[str, Any] | None]:
        stored: dict[str, InternalUser] = self._records.get_many(tenant_id, "users", user_ids)
        assignments = self._state.children_of(tenant_id, "assignments", list(stored))
        items: list[dict[str, Any] | None] = []
        for uid, user in stored.items():
            held = assignments.get(uid, [])
            roles = tuple(sorted({str(c.row.get("role")) for c in held}))
            items.append(_item(user, {"securityRoleIds": list(roles)},
                               max([0, *(_version(c.row) for c in held)])))
        return items

    def _linked_again(self, tenant_id: TenantId, record_ids: list[str],
                      ) -> tuple[list[dict[str, Any] | None], list[dict[str, Any] | None]]:
        leads: dict[str, Lead] = self._records.get_many(tenant_id, "leads", record_ids)
        opportunities: dict[str, Opportunity] = self._records.get_many(tenant_id, "opportunities", record_ids)
        links = self._state.children_of(tenant_id, "connections", [*leads, *opportunities])
        lead_items: list[dict[str, Any] | None] = []
        for lid, lead in leads.items():
            rows = [c.row for c in links.get(lid, [])]
            lead_items.append(_item(lead, {"stakeholderContactIds": m.stakeholders(rows, lid, "contact")},
                                    m.connections_version(rows, lid)))
        opportunity_items: list[dict[str, Any] | None] = []
        for oid, opportunity in opportunities.items():
            rows = [c.row for c in links.get(oid, [])]
            team = [u for u in m.stakeholders(rows, oid, "systemuser") if u != opportunity.owner_id]
            opportunity_items.append(_item(opportunity, {
                "salesTeamIds": team, "stakeholderContactIds": m.stakeholders(rows, oid, "contact")},
                m.connections_version(rows, oid)))
        return lead_items, opportunity_items

    def _people_again(self, tenant_id: TenantId, activity_ids: list[str]) -> list[dict[str, Any] | None]:
        stored: dict[str, Activity] = self._records.get_many(tenant_id, "activities",
                                                             [f"crm|{a}" for a in activity_ids])
        parties = self._state.children_of(tenant_id, "parties", [a.id for a in stored.values()])
        items: list[dict[str, Any] | None] = []
        for activity in stored.values():
            people = m.activity_parties(_ACTIVITY_SETS.get(activity.kind.value, "emails"), activity.id,
                                        [c.row for c in parties.get(activity.id, [])])
            version = people.pop("version")
            items.append(_item(activity, {"sender": None, **people}, version))
        return items

    # -- into the one ingestion path -----------------------------------------------------------------------

    def _store(self, tenant_id: TenantId, kind: str, items: Sequence[dict[str, Any] | None],
               applied: _Applied) -> None:
        changed = self._changed(tenant_id, kind, [i for i in items if i is not None])
        for batch in batches(changed):
            report = self._sync.ingest(tenant_id, kind, batch)
            applied.rejected.update(report.rejected_by_reason)
        applied.items += len(changed)
        if changed:
            applied.kinds.add(kind)

    def _remove(self, tenant_id: TenantId, kind: str, keys: Sequence[str], applied: _Applied) -> None:
        if not keys:
            return
        report = self._sync.remove(tenant_id, kind, keys)
        applied.removed += report.removed
        if report.removed:
            applied.kinds.add(kind)

    def _changed(self, tenant_id: TenantId, kind: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items that differ from what is stored, each with a version above the stored one (a record derived
        again from a child row keeps its row's version otherwise); the others are left out."""
        model = RECORD_KINDS[kind]
        by_key = {(f"crm|{i['id']}" if kind == "activities" else str(i["id"])): i for i in items}
        stored: dict[str, BaseModel] = self._records.get_many(tenant_id, kind, list(by_key))
        changed = []
        for key, item in by_key.items():
            current = stored.get(key)
            if current is None:
                changed.append(item)
                continue
            try:
                candidate = model.model_validate_json(json.dumps(item))
            except ValidationError:
                changed.append(item)  # the ingestion path says why, item by item
                continue
            if _content(candidate) == _content(current):
                continue
            above = int(getattr(current, "version", 0)) + 1
            changed.append({**item, "version": max(int(getattr(candidate, "version", 0)), above)})
        return changed


def _content(record: BaseModel) -> dict[str, Any]:
    return record.model_dump(mode="json", exclude={"version"})


def _version(row: dict[str, Any]) -> int:
    value = row.get("versionnumber")
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


def _item(record: BaseModel, changes: dict[str, Any], version: int) -> dict[str, Any]:
    """A stored record with some fields derived again, as a sync item (its version compared in `_changed`)."""
    item: dict[str, Any] = {**record.model_dump(mode="json", by_alias=True, exclude_none=True), **changes}
    item["version"] = max(version, int(item["version"]))
    return {k: v for k, v in item.items() if v is not None}
