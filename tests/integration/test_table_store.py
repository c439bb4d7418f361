"""The table adapter against real Azurite: ETag concurrency, atomic transactions, typed documents."""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from devhost.azurite import Azurite, connection_string, free_port
from shared.errors import ConcurrencyConflict, StorageUnavailable
from shared.storage.documents import CorruptDocument, DocumentStore
from shared.storage.tables import Operation, TableStore
from shared.tenancy import TenantId

pytestmark = pytest.mark.integration


class Profile(BaseModel):
    name: str
    counter: int = 0
    tags: list[str] = []


@pytest.fixture(params=["direct", "sdk"])
def store(azurite: Azurite, request: pytest.FixtureRequest) -> TableStore:
    # A table per test: creation on first use is part of what is tested. Point reads and transactions go straight
    # to the REST API ("direct", what the app uses) or through the SDK: both keep the same contract.
    return TableStore.from_connection_string(azurite.connection_string, f"T{uuid.uuid4().hex[:20]}",
                                             direct=request.param == "direct")


def test_table_is_created_on_first_use_and_rows_round_trip(store: TableStore, tenant_id: TenantId) -> None:
    assert store.get(tenant_id, "missing") is None
    etag = store.create(tenant_id, "row", {"Name": "a", "Count": 3, "Flag": True})
    entity = store.get(tenant_id, "row")
    assert entity is not None
    assert entity.properties == {"Name": "a", "Count": 3, "Flag": True}
    assert entity.etag == etag


def test_create_twice_is_a_conflict(store: TableStore, tenant_id: TenantId) -> None:
    store.create(tenant_id, "row", {"V": 1})
    with pytest.raises(ConcurrencyConflict):
        store.create(tenant_id, "row", {"V": 2})
    stored = store.get(tenant_id, "row")
    assert stored is not None
    assert stored.properties["V"] == 1


def test_replace_with_a_stale_etag_is_refused_and_changes_nothing(store: TableStore, tenant_id: TenantId) -> None:
    first = store.create(tenant_id, "row", {"V": 1})
    second = store.replace(tenant_id, "row", {"V": 2}, first)
    assert second != first
    with pytest.raises(ConcurrencyConflict):
        store.replace(tenant_id, "row", {"V": 3}, first)
    stored = store.get(tenant_id, "row")
    assert stored is not None
    assert stored.properties["V"] == 2


def test_replace_of_a_deleted_row_is_a_conflict(store: TableStore, tenant_id: TenantId) -> None:
    etag = store.create(tenant_id, "row", {"V": 1})
    store.delete(tenant_id, "row")
    with pytest.raises(ConcurrencyConflict):
        store.replace(tenant_id, "row", {"V": 2}, etag)


def test_delete_is_idempotent_without_etag_and_conditional_with_one(store: TableStore, tenant_id: TenantId) -> None:
    store.delete(tenant_id, "never-existed")
    first = store.create(tenant_id, "row", {"V": 1})
    store.replace(tenant_id, "row", {"V": 2}, first)
    with pytest.raises(ConcurrencyConflict):
        store.delete(tenant_id, "row", etag=first)
    assert store.get(tenant_id, "row") is not None


def test_no_update_is_lost_under_concurrent_read_modify_write(store: TableStore, tenant_id: TenantId) -> None:
    store.create(tenant_id, "counter", {"N": 0})
    workers, increments = 8, 5

    def worker() -> None:
        done = 0
        while done < increments:
            current = store.get(tenant_id, "counter")
            assert current is not None
            try:
                store.replace(tenant_id, "counter", {"N": int(current.properties["N"]) + 1}, current.etag)  # type: ignore[arg-type]
                done += 1
            except ConcurrencyConflict:
                continue

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.get(tenant_id, "counter")
    assert final is not None
    assert final.properties["N"] == workers * increments


def test_transaction_with_one_stale_etag_writes_nothing(store: TableStore, tenant_id: TenantId) -> None:
    stale = store.create(tenant_id, "settings", {"V": 1})
    store.replace(tenant_id, "settings", {"V": 2}, stale)
    with pytest.raises(ConcurrencyConflict):
        store.transact(tenant_id, [
            Operation("replace", "settings", {"V": 3}, etag=stale),
            Operation("create", "audit-1", {"What": "change"}),
        ])
    assert store.get(tenant_id, "audit-1") is None
    current = store.get(tenant_id, "settings")
    assert current is not None
    assert current.properties["V"] == 2


def test_transaction_applies_all_operations_and_returns_new_etags(store: TableStore, tenant_id: TenantId) -> None:
    etag = store.create(tenant_id, "settings", {"V": 1})
    store.create(tenant_id, "old", {"X": 1})
    etags = store.transact(tenant_id, [
        Operation("replace", "settings", {"V": 2}, etag=etag),
        Operation("create", "audit-1", {"What": "change"}),
        Operation("upsert", "index", {"Due": "x"}),
        Operation("delete", "old"),
    ])
    settings = store.get(tenant_id, "settings")
    assert settings is not None
    assert settings.properties["V"] == 2
    assert etags[0] == settings.etag
    assert etags[3] is None
    assert store.get(tenant_id, "old") is None
    assert store.get(tenant_id, "audit-1") is not None


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ([Operation("upsert", f"r{i}", {}) for i in range(101)], "at most 100"),
        ([Operation("upsert", "same", {}), Operation("upsert", "same", {})], "only once"),
        ([Operation("upsert", f"r{i}", {"A": "x" * 30_000, "B": "y" * 30_000}) for i in range(100)], "4 MiB"),
        ([], "at least one"),
    ],
)
def test_transaction_limits_are_enforced_before_calling_the_service(
        store: TableStore, tenant_id: TenantId, operations: list[Operation], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        store.transact(tenant_id, operations)
    assert list(store.iter_partition(tenant_id)) == []


@pytest.mark.parametrize("key", ["a/b", "a#b", "a?b", "a\\b", "tab\there", "", "x" * 1025])
def test_invalid_keys_are_refused_for_writes_and_not_found_for_reads(store: TableStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        store.upsert(key or "", "row", {})
    assert store.get("tenant", key) is None


def test_partition_pages_and_prefix_iteration(store: TableStore, tenant_id: TenantId) -> None:
    other = TenantId(str(uuid.uuid4()))
    for i in range(25):
        store.upsert(tenant_id, f"audit|{i:04d}", {"I": i})
    store.upsert(tenant_id, "settings", {"V": 1})
    store.upsert(other, "audit|0000", {"I": -1})
    page = store.query_partition(tenant_id, row_key_from="audit|", row_key_before="audit}", page_size=10)
    assert [e.properties["I"] for e in page.entities] == list(range(10))
    assert page.continuation is not None
    second = store.query_partition(tenant_id, row_key_from="audit|", row_key_before="audit}", page_size=10,
                                   continuation=page.continuation)
    assert [e.properties["I"] for e in second.entities] == list(range(10, 20))
    assert [e.properties["I"] for e in store.iter_partition(tenant_id, row_key_prefix="audit|")] == list(range(25))


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("token", [
    "not-base64-json!",
    _token("[" * 1500),  # json.loads would raise RecursionError
    _token("[]"),
    _token("{}"),
    _token('{"PartitionKey": 5}'),
    _token('{"PartitionKey": ["x"]}'),
    _token('{"RowKey": "a\\r\\nX-Injected: 1"}'),
    _token('{"RowKey": "\u00e9t\u00e9"}'),
    _token('{"RowKey": "audit|1", "Other": "x"}'),
], ids=["not base64", "deep", "array", "empty", "number", "list", "control characters", "not ASCII", "extra key"])
def test_a_malformed_continuation_token_is_a_value_error(store: TableStore, tenant_id: TenantId, token: str) -> None:
    with pytest.raises(ValueError, match="continuation"):
        store.query_partition(tenant_id, continuation=token)


def test_unreachable_storage_is_storage_unavailable_and_fast() -> None:
    dead = TableStore.from_connection_string(connection_string(free_port()), "TenantState")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        dead.get("t", "r")
    assert StorageUnavailable("x").headers["Retry-After"]
    elapsed = time.monotonic() - started
    assert elapsed < 15, elapsed  # bounded retries: a caller gets its 503 quickly


def test_documents_round_trip_with_their_etag_and_split_over_properties(
        store: TableStore, tenant_id: TenantId) -> None:
    documents = DocumentStore(store)
    big = Profile(name="é" * 70_000, counter=1, tags=["a", "b"])
    etag = documents.save(tenant_id, "profile", big, None)
    loaded = documents.load(tenant_id, "profile", Profile)
    assert loaded is not None
    assert loaded.document == big
    assert loaded.etag == etag
    raw = store.get(tenant_id, "profile")
    assert raw is not None
    assert raw.properties["DocChunks"] == 3
    assert raw.properties["Kind"] == "profile"


def test_document_save_detects_a_concurrent_change(store: TableStore, tenant_id: TenantId) -> None:
    documents = DocumentStore(store)
    etag = documents.save(tenant_id, "profile", Profile(name="a"), None)
    documents.save(tenant_id, "profile", Profile(name="b"), etag)
    with pytest.raises(ConcurrencyConflict):
        documents.save(tenant_id, "profile", Profile(name="c"), etag)
    with pytest.raises(ConcurrencyConflict):
        documents.save(tenant_id, "profile", Profile(name="d"), None)
    loaded = documents.load(tenant_id, "profile", Profile)
    assert loaded is not None
    assert loaded.document.name == "b"


def test_a_corrupt_document_is_reported_as_such(store: TableStore, tenant_id: TenantId) -> None:
    store.upsert(tenant_id, "profile", {"Kind": "profile", "DocChunks": 1, "Doc0": '{"name": 12'})
    with pytest.raises(CorruptDocument):
        DocumentStore(store).load(tenant_id, "profile", Profile)


def test_tenants_never_see_each_others_rows(store: TableStore) -> None:
    a, b = TenantId(str(uuid.uuid4())), TenantId(str(uuid.uuid4()))
    documents = DocumentStore(store)
    documents.save(a, "profile", Profile(name="a"), None)
    assert documents.load(b, "profile", Profile) is None
    assert list(store.iter_partition(b)) == []


def test_a_scan_fetches_only_the_selected_properties(store: TableStore, tenant_id: TenantId) -> None:
    store.create(tenant_id, "a|1", {"Keep": "x", "Drop": "y"})
    store.create(tenant_id, "a|2", {"Drop": "y"})
    rows = list(store.iter_partition(tenant_id, row_key_prefix="a|", select=["Keep"]))
    assert [(r.partition_key, r.row_key) for r in rows] == [(tenant_id, "a|1"), (tenant_id, "a|2")]
    assert all("Drop" not in r.properties for r in rows)
    assert rows[0].properties.get("Keep") == "x"
    assert rows[0].etag == store.get(tenant_id, "a|1").etag  # type: ignore[union-attr]


def test_activities_larger_than_one_property_survive_the_narrow_scan(store: TableStore, tenant_id: TenantId) -> None:
    from datetime import UTC, datetime

    from shared.domain.records import Activity
    from shared.storage.records_repository import TableRecords

    now = datetime(2026, 11, 26, tzinfo=UTC)
    many = [f"{'x' * 180}{i}@fabrikam.com" for i in range(450)]  # about 90,000 characters: several properties
    big = Activity.model_validate({"id": "big", "version": 1, "source": "crm", "kind": "email",
                                   "sender": "ann@contoso.com", "to": many, "start": now}, strict=False)
    small = big.model_copy(update={"id": "small", "to": ("lee@fabrikam.com",)})
    records = TableRecords(store)
    records.write(tenant_id, "activities", [(big, None), (small, None)], now)
    assert _activities(store).get(tenant_id, "activity|crm|big").properties["DocChunks"] > 1  # type: ignore[union-attr,operator]
    found = {a.id: (a, at) for a, at in records.iter_activities(tenant_id)}
    assert found["big"] == (big, now)
    assert found["small"] == (small, now)
    assert {a.id: at for a, at in records.iter_activities(tenant_id, with_ingested_at=False)} == {
        "big": None, "small": None}


def test_a_large_activity_deleted_while_a_scan_runs_is_skipped(store: TableStore, tenant_id: TenantId) -> None:
    from datetime import UTC, datetime

    from shared.domain.records import Activity
    from shared.storage.records_repository import TableRecords

    now = datetime(2026, 11, 26, tzinfo=UTC)
    big = Activity.model_validate({"id": "big", "version": 1, "source": "crm", "kind": "email",
                                   "sender": "ann@contoso.com", "to": [f"{'x' * 180}{i}@fabrikam.com"
                                                                       for i in range(450)], "start": now},
                                  strict=False)
    records = TableRecords(store)
    records.write(tenant_id, "activities", [(big.model_copy(update={"id": "a-first"}), None), (big, None)], now)
    scan = records.iter_activities(tenant_id)
    assert next(scan)[0].id == "a-first"  # the page holding both rows' first parts has been fetched
    _activities(store).delete(tenant_id, "activity|crm|big")  # a purge, meanwhile
    assert list(scan) == []


def _activities(store: TableStore) -> TableStore:
    from shared.storage.records_repository import ACTIVITIES_TABLE_SUFFIX

    return store.sibling(store.table_name + ACTIVITIES_TABLE_SUFFIX)


class _Meddling:
    """The store, with someone else's write slipped in just before the next transaction."""

    def __init__(self, store: TableStore, meddle: Callable[[], None]) -> None:
        self._store = store
        self._meddle: Callable[[], None] | None = meddle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def transact(self, partition_key: str, operations: Any) -> Any:
        if self._meddle is not None:
            meddle, self._meddle = self._meddle, None
            meddle()
        return self._store.transact(partition_key, operations)


@pytest.mark.parametrize("gone_too", [False, True])
def test_a_purge_deletes_only_the_versions_it_judged(store: TableStore, tenant_id: TenantId, gone_too: bool) -> None:
    from datetime import UTC, datetime, timedelta

    from shared.domain.records import Activity
    from shared.storage.records_repository import TableRecords

    ended = datetime(2026, 11, 26, tzinfo=UTC)
    mails = [Activity.model_validate({"id": f"x{n}", "version": 1, "source": "exchange", "kind": "email",
                                      "mailboxOwnerId": "u-1", "sender": "ann@contoso.com", "start": ended},
                                     strict=False) for n in (1, 2, 3)]
    TableRecords(store).write(tenant_id, "activities", [(m, None) for m in mails], ended - timedelta(hours=1))

    def meanwhile() -> None:  # Exchange is back: a newer x2 arrives; another purge run has deleted x3
        newer = mails[1].model_copy(update={"version": 2})
        stored = TableRecords(store).versions(tenant_id, "activities", [newer])["exchange|x2"]
        TableRecords(store).write(tenant_id, "activities", [(newer, stored)], ended + timedelta(hours=1))
        if gone_too:
            _activities(store).delete(tenant_id, "activity|exchange|x3")

    records = TableRecords(store, _Meddling(_activities(store), meanwhile))  # type: ignore[arg-type]
    progress = records.purge_exchange(tenant_id, ended, enough=lambda: False)
    assert progress.finished
    assert progress.deleted >= 1  # Azurite reports a conditional delete of a missing row as done; the service would not
    left = [(a.id, a.version) for a, _ in TableRecords(store).iter_activities(tenant_id)]
    assert left == [("x2", 2)]


def test_a_purge_scan_that_finds_little_still_stops_in_time(store: TableStore, tenant_id: TenantId) -> None:
    from datetime import UTC, datetime

    from shared.domain.records import Activity
    from shared.services.ports import PurgeProgress
    from shared.storage.records_repository import TableRecords

    now = datetime(2026, 11, 26, tzinfo=UTC)
    calls = [Activity.model_validate({"id": f"k{n}", "version": 1, "source": "crm", "kind": "phoneCall",
                                      "sender": "ann@contoso.com", "to": ["lee@fabrikam.com"], "start": now},
                                     strict=False) for n in range(600)]
    records = TableRecords(store)
    records.write(tenant_id, "activities", [(c, None) for c in calls], now)
    nobody = frozenset({"nobody@fabrikam.com"})
    hurried = records.purge_people(tenant_id, nobody, frozenset(), enough=lambda: True)
    assert (hurried.deleted, hurried.finished) == (0, False)
    assert hurried.position == sorted(f"activity|crm|{c.id}" for c in calls)[498]  # every key up to it judged
    assert records.purge_people(tenant_id, nobody, frozenset(), enough=lambda: False) == PurgeProgress(0, True)
    doomed = frozenset({"lee@fabrikam.com"})
    rest = records.purge_people(tenant_id, doomed, frozenset(), enough=lambda: False, after=hurried.position)
    assert rest == PurgeProgress(101, True)  # only the keys past the position


def test_concurrent_calls_reuse_pooled_connections(store: TableStore, tenant_id: TenantId,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """50 calls in flight at once on one client: none is told the pool is full (requests' default pool of 10
    threw away a connection after each extra concurrent call)."""
    store.upsert(tenant_id, "settings", {"V": 1})
    barrier = threading.Barrier(50)

    def read() -> None:
        barrier.wait()
        for _ in range(5):
            assert store.get(tenant_id, "settings") is not None

    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        threads = [threading.Thread(target=read) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()] == []
