"""The data rounds' rows in the tenant's partition (implements the SourceState port). Ids and links only, never
content.

- `source|crm`, `source|exchange`, `mailbox|{Entra id}`: state documents (JSON, with ETags);
- `mbx-item|{mailbox}|{collection}|{sha256 of Graph's id}`: a mailbox item and the activity it became
  (`Activity`, `Round`, `Start`);
- `mbx-holder|{activity}|{mailbox}|{same hash}`: the same, keyed by activity: who else still holds it (`Owner`);
- `crm-child|{relation}|{parent}|{child id}`: a CRM row that only adds to its parent's record (`Row`: its
  allow-listed columns), and `crm-childof|{relation}|{child id}` (`Parent`), since a `$deletedEntity` names only
  the child.

Graph's item ids are hashed in keys (they may hold characters a RowKey may not); the id itself is kept as a
property so that a removal can be matched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel

from shared.errors import ConcurrencyConflict
from shared.services.ports import Child, Holder, MailboxCopy, Versioned
from shared.storage.documents import DocumentStore, decode
from shared.storage.tables import Operation, StoredEntity, TableStore, transactions
from shared.tenancy import TenantId

M = TypeVar("M", bound=BaseModel)

_READERS = 8


def _hash(source_id: str) -> str:
    return hashlib.sha256(source_id.encode()).hexdigest()[:40]


def _item_key(mailbox: str, collection: str, source_id: str) -> str:
    return f"mbx-item|{mailbox.lower()}|{collection}|{_hash(source_id)}"


def _holder_key(activity: str, mailbox: str, source_id: str) -> str:
    return f"mbx-holder|{activity}|{mailbox.lower()}|{_hash(source_id)}"


def _copy(entity: StoredEntity) -> MailboxCopy:
    start = entity.properties.get("Start")
    return MailboxCopy(source_id=str(entity.properties.get("SourceId", "")),
                       collection=str(entity.properties.get("Collection", "")),
                       activity_id=str(entity.properties.get("Activity", "")),
                       round_id=str(entity.properties.get("Round", "")),
                       start=start if isinstance(start, datetime) else None)


class TableSourceState:
    def __init__(self, tables: TableStore) -> None:
        self._tables = tables
        self._documents = DocumentStore(tables)

    # -- state documents --------------------------------------------------------------------------------

    def load(self, tenant_id: TenantId, key: str, model: type[M]) -> Versioned[M] | None:
        return self._documents.load(tenant_id, key, model)

    def save(self, tenant_id: TenantId, key: str, document: BaseModel, etag: str | None) -> str:
        return self._documents.save(tenant_id, key, document, etag)

    def delete(self, tenant_id: TenantId, key: str, etag: str) -> None:
        self._tables.delete(tenant_id, key, etag)

    def load_all(self, tenant_id: TenantId, prefix: str, model: type[M]) -> Iterator[Versioned[M]]:
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=prefix):
            yield Versioned(decode(entity, model), entity.etag)

    # -- which mailbox holds which activity ---------------------------------------------------------------

    def hold(self, tenant_id: TenantId, mailbox_id: str, owner_id: str, copies: Sequence[MailboxCopy]) -> None:
        rows: dict[str, Operation] = {}
        for copy in copies:
            item = _item_key(mailbox_id, copy.collection, copy.source_id)
            properties: dict[str, str | datetime] = {
                "SourceId": copy.source_id, "Collection": copy.collection, "Activity": copy.activity_id,
                "Round": copy.round_id}
            if copy.start is not None:
                properties["Start"] = copy.start
            rows[item] = Operation("upsert", item, dict(properties))
            holder = _holder_key(copy.activity_id, mailbox_id, copy.source_id)
            rows[holder] = Operation("upsert", holder, {"Owner": owner_id, "Mailbox": mailbox_id.lower(),
                                                        "SourceId": copy.source_id})
        for group in transactions(list(rows.values())):
            self._tables.transact(tenant_id, group)

    def held(self, tenant_id: TenantId, mailbox_id: str, collection: str, source_ids: Sequence[str],
             ) -> list[MailboxCopy]:
        keys = [_item_key(mailbox_id, collection, source_id) for source_id in dict.fromkeys(source_ids)]
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            found = list(pool.map(lambda key: self._tables.get(tenant_id, key), keys))
        return [_copy(entity) for entity in found if entity is not None]

    def release(self, tenant_id: TenantId, mailbox_id: str, copies: Sequence[MailboxCopy]) -> None:
        keys = list(dict.fromkeys(
            key for copy in copies for key in (_item_key(mailbox_id, copy.collection, copy.source_id),
                                               _holder_key(copy.activity_id, mailbox_id, copy.source_id))))
        for group in transactions([Operation("delete", key) for key in keys]):
            try:
                self._tables.transact(tenant_id, group)
            except ConcurrencyConflict:  # one of them is gone already: delete the others one by one
                for operation in group:
                    self._tables.delete(tenant_id, operation.row_key)

    def holders(self, tenant_id: TenantId, activity_ids: Sequence[str]) -> dict[str, list[Holder]]:
        def read(activity: str) -> tuple[str, list[Holder]]:
            rows = self._tables.iter_partition(tenant_id, row_key_prefix=f"mbx-holder|{activity}|")
            return activity, [Holder(str(e.properties.get("Mailbox", "")), str(e.properties.get("Owner", "")),
                                     str(e.properties.get("SourceId", ""))) for e in rows]

        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            return dict(pool.map(read, list(dict.fromkeys(activity_ids))))

    def copies(self, tenant_id: TenantId, mailbox_id: str, collection: str | None = None,
               ) -> Iterator[MailboxCopy]:
        prefix = f"mbx-item|{mailbox_id.lower()}|" + (f"{collection}|" if collection else "")
        for entity in self._tables.iter_partition(tenant_id, row_key_prefix=prefix):
            yield _copy(entity)

    # -- the CRM's child rows -------------------------------------------------------------------------------

    def put_children(self, tenant_id: TenantId, relation: str, children: Sequence[Child]) -> None:
        rows: dict[str, Operation] = {}
        for child in children:
            key = f"crm-child|{relation}|{child.parent}|{child.id}"
            rows[key] = Operation("upsert", key, {"Row": json.dumps(child.row, separators=(",", ":"))})
            back = f"crm-childof|{relation}|{child.id}"
            rows[back] = Operation("upsert", back, {"Parent": child.parent})
        for group in transactions(list(rows.values())):
            self._tables.transact(tenant_id, group)

    def remove_children(self, tenant_id: TenantId, relation: str, child_ids: Sequence[str]) -> list[Child]:
        ids = list(dict.fromkeys(child_ids))
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            backs = list(pool.map(lambda child: self._tables.get(tenant_id, f"crm-childof|{relation}|{child}"), ids))
        found = [(child, str(back.properties.get("Parent", ""))) for child, back in zip(ids, backs, strict=True)
                 if back is not None]
        removed: list[Child] = []
        for child, parent in found:
            key = f"crm-child|{relation}|{parent}|{child}"
            entity = self._tables.get(tenant_id, key)
            row = json.loads(str(entity.properties.get("Row", "{}"))) if entity is not None else {}
            self._tables.delete(tenant_id, key)
            self._tables.delete(tenant_id, f"crm-childof|{relation}|{child}")
            removed.append(Child(child, parent, row))
        return removed

    def children_of(self, tenant_id: TenantId, relation: str, parents: Sequence[str]) -> dict[str, list[Child]]:
        def read(parent: str) -> tuple[str, list[Child]]:
            rows = self._tables.iter_partition(tenant_id, row_key_prefix=f"crm-child|{relation}|{parent}|")
            return parent, [Child(e.row_key.rsplit("|", 1)[1], parent, json.loads(str(e.properties.get("Row"))))
                            for e in rows]

        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            return dict(pool.map(read, list(dict.fromkeys(parents))))
