"""The rows the data rounds add, on Azurite: tombstones of removed records (kept with a newer version, skipped
by readers, deleted by purges) and the rounds' own rows (mailbox item map, CRM child rows)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from devhost.azurite import Azurite
from shared.domain.records import Activity, Contact
from shared.services.ports import Child, MailboxCopy
from shared.storage.records_repository import ACTIVITIES_TABLE_SUFFIX, TableRecords
from shared.storage.source_state import TableSourceState
from shared.storage.tables import TableStore
from shared.tenancy import TenantId
from tests.builders import mail

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 26, 12, tzinfo=UTC)


@pytest.fixture
def store(azurite: Azurite) -> TableStore:
    return TableStore.from_connection_string(azurite.connection_string, f"T{uuid.uuid4().hex[:20]}")


def test_a_tombstone_keeps_its_document_with_a_newer_version_and_readers_skip_it(
        store: TableStore, tenant_id: TenantId) -> None:
    records = TableRecords(store)
    lee = Contact(id="c1", version=4, email="lee@fabrikam.com")
    records.write(tenant_id, "contacts", [(lee, None)], AT)
    records.write(tenant_id, "activities", [(mail("m1", "ann@contoso.com", "lee@fabrikam.com", 1), None)], AT)
    later = AT + timedelta(minutes=5)
    assert records.remove(tenant_id, "contacts", ["c1", "c1", "c2"], later) == ["c1"]
    assert records.remove(tenant_id, "activities", ["crm|m1"], later) == ["crm|m1"]
    assert records.remove(tenant_id, "contacts", ["c1"], later) == []
    row = store.get(tenant_id, "contacts|c1")
    assert row is not None
    assert (row.properties["Deleted"], row.properties["Version"], row.properties["IngestedAt"]) == (True, 5, later)
    assert records.get(tenant_id, "contacts", "c1") is None
    assert records.get_many(tenant_id, "contacts", ["c1"]) == {}
    assert list(records.iter_records(tenant_id, "contacts")) == []
    assert records.versions(tenant_id, "contacts", [lee])["c1"].version == 5  # the version check still sees it
    assert list(records.iter_activities(tenant_id)) == []
    [(removed, at)] = list(records.iter_activities(tenant_id, removed=True))
    assert (type(removed).__name__, removed.id, at) == ("RemovedActivity", "m1", later)
    assert records.purge_people(tenant_id, frozenset({"lee@fabrikam.com"}), frozenset(), lambda: False).deleted == 1


def test_the_records_version_changes_with_every_write_or_removal_of_records_and_not_with_activities(
        store: TableStore, tenant_id: TenantId) -> None:
    """A process reuses the directory it loaded while this version stays the one it read before loading it."""
    records = TableRecords(store)
    assert records.records_version(tenant_id) is None
    records.write(tenant_id, "contacts", [(Contact(id="c1", version=1, email="lee@fabrikam.com"), None)], AT)
    first = records.records_version(tenant_id)
    assert first is not None
    records.write(tenant_id, "activities", [(mail("m1", "ann@contoso.com", "lee@fabrikam.com", 1), None)], AT)
    assert records.records_version(tenant_id) == first
    stored = records.versions(tenant_id, "contacts", [Contact(id="c1", version=2)])["c1"]
    records.write(tenant_id, "contacts", [(Contact(id="c1", version=2, email="lee@fabrikam.com"), stored)], AT)
    second = records.records_version(tenant_id)
    assert second not in (None, first)
    records.remove(tenant_id, "contacts", ["c1"], AT + timedelta(minutes=1))
    assert records.records_version(tenant_id) not in (None, first, second)
    assert records.records_version(TenantId(str(uuid.uuid4()))) is None  # another tenant's is its own


def test_a_removal_is_logged_with_the_document_it_removed_and_a_new_version_after_it_replaces_nothing(
        store: TableStore, tenant_id: TenantId) -> None:
    """The aggregates follow the ingestion log: a removal must be there, and a tombstone counts nowhere."""
    records = TableRecords(store)
    first = mail("m1", "ann@contoso.com", "lee@fabrikam.com", 1)
    records.write(tenant_id, "activities", [(first, None)], AT)
    later = AT + timedelta(minutes=5)
    records.remove(tenant_id, "activities", ["crm|m1"], later)
    [write] = [w for w in records.written_since(tenant_id, None) if w.ingested_at == AT]
    assert Activity.model_validate_json(write.current["crm|m1"]) == first  # type: ignore[index]
    removal = [w for w in records.written_since(tenant_id, AT) if w.ingested_at == later]
    assert [(w.kind, w.keys) for w in removal] == [("activities", ("crm|m1",))]
    assert "lee@fabrikam.com" in removal[0].previous["crm|m1"]
    assert removal[0].current is None  # a tombstone: nothing to count
    named = list(records.written_since(tenant_id, None, documents=False))  # (what an export reads of it)
    assert [(w.id, w.kind, w.keys, w.removed, w.ingested_at) for w in named] == [
        (w.id, w.kind, w.keys, w.removed, w.ingested_at) for w in records.written_since(tenant_id, None)]
    assert all(w.previous == {} and w.current is None for w in named)
    assert records.activities(tenant_id, ["crm|m1"]) == {}
    again = first.model_copy(update={"version": 9})
    stored = records.versions(tenant_id, "activities", [again])["crm|m1"]
    assert (stored.version, stored.document) == (2, None)
    records.write(tenant_id, "activities", [(again, stored)], later + timedelta(minutes=1))
    [rewrite] = [w for w in records.written_since(tenant_id, later)]
    assert (rewrite.keys, rewrite.previous) == (("crm|m1",), {})
    assert records.activities(tenant_id, ["crm|m1"])["crm|m1"].version == 9


def test_a_purge_logs_its_rows_as_removed_only_when_it_deleted_them_all(store: TableStore,
                                                                         tenant_id: TenantId) -> None:
    """The refresh reads nothing for keys a purge's entry says it removed: that must be true of every one."""
    records = TableRecords(store)
    records.write(tenant_id, "activities", [(mail(f"m{n}", "ann@contoso.com", "lee@fabrikam.com", n), None)
                                            for n in range(3)], AT)
    assert records.purge_people(tenant_id, frozenset({"lee@fabrikam.com"}), frozenset(), lambda: False).deleted == 3
    [purge] = [w for w in records.written_since(tenant_id, AT) if w.keys != ()]
    assert (purge.keys, purge.removed) == (("crm|m0", "crm|m1", "crm|m2"), True)
    # One row changes between the purge's scan and its transaction: row by row, and the entry names no removal.
    records.write(tenant_id, "activities", [(mail(f"n{n}", "ann@contoso.com", "lee@fabrikam.com", n), None)
                                            for n in range(2)], AT + timedelta(minutes=1))
    activities = store.sibling(store.table_name + ACTIVITIES_TABLE_SUFFIX)
    rows = [e for e in activities.iter_partition(tenant_id, row_key_prefix="activity|")]
    activities.upsert(tenant_id, rows[0].row_key, rows[0].properties)  # a new ETag: the scanned one is stale
    deleted = records._delete(tenant_id, rows)  # the transaction and its fallback, on purpose
    assert deleted == 1
    [fallback] = [w for w in records.written_since(tenant_id, AT + timedelta(minutes=1)) if w.kind == "activities"
                  and len(w.keys) == 2 and w.previous]
    assert fallback.removed is False


def test_the_mailbox_item_map_and_the_crm_child_rows(store: TableStore, tenant_id: TenantId) -> None:
    state = TableSourceState(store)
    ann, bob = str(uuid.uuid4()), str(uuid.uuid4())
    copies = [MailboxCopy("AAMk/+=1", "inbox", "m-1", "r1"), MailboxCopy("AAMk/+=2", "sentitems", "m-1", "r1"),
              MailboxCopy("EV1", "calendar", "e-1", "r1", start=AT)]
    state.hold(tenant_id, ann, "u-ann", copies)
    state.hold(tenant_id, bob, "u-bob", [MailboxCopy("B1", "inbox", "m-1", "r2")])
    assert [c.source_id for c in state.held(tenant_id, ann, "inbox", ["AAMk/+=1", "nope"])] == ["AAMk/+=1"]
    assert sorted((h.mailbox_id, h.owner_id) for h in state.holders(tenant_id, ["m-1"])["m-1"]) == sorted(
        [(ann, "u-ann"), (ann, "u-ann"), (bob, "u-bob")])
    assert [c.start for c in state.copies(tenant_id, ann, "calendar")] == [AT]
    state.release(tenant_id, ann, copies[:1])
    state.release(tenant_id, ann, copies[:1])  # again: nothing left to release
    assert len(state.holders(tenant_id, ["m-1"])["m-1"]) == 2
    assert len(list(state.copies(tenant_id, ann))) == 2

    state.put_children(tenant_id, "parties", [Child("p1", "a1", {"addressused": "x@y.com"}),
                                              Child("p2", "a1", {"addressused": "z@y.com"})])
    assert [c.id for c in state.children_of(tenant_id, "parties", ["a1", "a2"])["a1"]] == ["p1", "p2"]
    [gone] = state.remove_children(tenant_id, "parties", ["p1", "p9"])
    assert (gone.parent, gone.row) == ("a1", {"addressused": "x@y.com"})
    assert [c.id for c in state.children_of(tenant_id, "parties", ["a1"])["a1"]] == ["p2"]
