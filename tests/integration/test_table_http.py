"""The direct REST path of point reads and transactions (shared.storage.table_http) against real Azurite: what it
writes the SDK reads alike and the reverse, every property type and awkward key; the service's faults."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from devhost.azurite import Azurite, connection_string
from shared.errors import ConcurrencyConflict, StorageUnavailable
from shared.storage.table_http import _ETAG, Bearer, Rejected, TableConnection, TableHttp
from shared.storage.tables import Operation, Properties, TableStore

pytestmark = pytest.mark.integration

EVERY_TYPE: Properties = {
    "Text": "héllo \"quoted\" \\ ✓ 𝄞", "Empty": "", "Small": -7, "Int32Edge": 2**31 - 1, "Big": 2**40,
    "Negative64": -2**40, "Ratio": 0.25, "Whole": 3.0, "Flag": True, "Off": False,
    "At": datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=UTC), "Midnight": datetime(2026, 1, 1, tzinfo=UTC),
    "Bytes": b"\x00\x01\xfe\xff",
}
AWKWARD_KEYS = ["plain", "it's", "a|b|c", "with space", "100%", "ünï©ødé", "a+b=c&d", "tilde~!", "(paren)"]


@pytest.fixture
def stores(azurite: Azurite) -> tuple[TableStore, TableStore]:
    table = f"H{uuid.uuid4().hex[:20]}"
    return (TableStore.from_connection_string(azurite.connection_string, table),
            TableStore.from_connection_string(azurite.connection_string, table, direct=False))


@pytest.mark.parametrize("writer", ["direct", "sdk"])
def test_what_one_path_writes_the_other_reads_alike(stores: tuple[TableStore, TableStore], writer: str) -> None:
    direct, sdk = stores
    write, other = (direct, sdk) if writer == "direct" else (sdk, direct)
    tenant = str(uuid.uuid4())
    etags = write.transact(tenant, [Operation("upsert", key, {**EVERY_TYPE, "Key": key}) for key in AWKWARD_KEYS])
    for key, etag in zip(AWKWARD_KEYS, etags, strict=True):
        seen = [store.get(tenant, key) for store in (direct, sdk)]
        assert seen[0] == seen[1]
        assert seen[0] is not None
        assert seen[0].properties == {**EVERY_TYPE, "Key": key}
        assert seen[0].etag == etag
    assert other.get(tenant, "never written") is None


def test_a_transaction_with_a_failed_condition_writes_nothing_and_is_a_conflict(
        stores: tuple[TableStore, TableStore]) -> None:
    direct, _ = stores
    tenant = str(uuid.uuid4())
    first = direct.create(tenant, "row", {"V": 1})
    [second] = direct.transact(tenant, [Operation("replace", "row", {"V": 2}, first)])
    assert second is not None
    assert second != first
    for stale in ([Operation("replace", "row", {"V": 3}, first), Operation("create", "new", {"V": 1})],
                  [Operation("create", "row", {"V": 3})],
                  [Operation("delete", "gone", etag=second)],
                  [Operation("create", "new", {"V": 1}), Operation("delete", "row", etag=first)]):
        with pytest.raises(ConcurrencyConflict):
            direct.transact(tenant, stale)
    assert direct.get(tenant, "new") is None
    stored = direct.get(tenant, "row")
    assert stored is not None
    assert (stored.properties, stored.etag) == ({"V": 2}, second)
    assert direct.transact(tenant, [Operation("delete", "row", etag=second)]) == [None]
    assert direct.get(tenant, "row") is None


class _Failing(BaseHTTPRequestHandler):
    status = 503
    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        self.seen.append(self.command)
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"odata.error":{"code":"ServerBusy","message":{"value":"busy"}}}'
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def failing() -> Iterator[tuple[str, type[_Failing]]]:
    handler = type("Handler", (_Failing,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/devstoreaccount1", handler
    finally:
        server.shutdown()


@pytest.mark.parametrize("status", [503, 500, 429, 408])
def test_a_busy_service_is_retried_twice_then_storage_unavailable(failing: tuple[str, type[_Failing]],
                                                                   status: int) -> None:
    """A read always; a transaction only on the statuses that say the service did not apply it (the SDK's rule:
    one that may have committed would fail as a conflict when sent again)."""
    endpoint, handler = failing
    handler.status = status
    pauses: list[float] = []
    connection = TableConnection.of(connection_string(0).replace("http://127.0.0.1:0/devstoreaccount1", endpoint))
    assert connection is not None
    http = TableHttp(TableConnection(connection.endpoint, connection.signer, sleep=pauses.append), "T")
    with pytest.raises(StorageUnavailable):
        http.get("t", "r")
    with pytest.raises(StorageUnavailable):
        http.transact("t", [Operation("upsert", "r", {"V": 1})])
    again = status in (500, 503)
    assert handler.seen == ["GET"] * 3 + ["POST"] * (3 if again else 1)
    assert pauses == [0.2, 0.4] * (2 if again else 1)


class _Hanging(_Failing):
    def _answer(self) -> None:  # reads the request, then drops the connection without an answer
        self.seen.append(self.command)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.close_connection = True


def test_a_transaction_whose_connection_drops_after_sending_is_not_sent_again() -> None:
    handler = type("Handler", (_Hanging,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        connection = TableConnection.of(connection_string(0).replace(
            "http://127.0.0.1:0/devstoreaccount1", f"http://127.0.0.1:{server.server_address[1]}/devstoreaccount1"))
        assert connection is not None
        http = TableHttp(TableConnection(connection.endpoint, connection.signer, sleep=lambda _: None), "T")
        with pytest.raises(StorageUnavailable):
            http.transact("t", [Operation("upsert", "r", {"V": 1})])
        assert handler.seen == ["POST"]  # it may have committed: the caller's retry decides, as with the SDK
        with pytest.raises(StorageUnavailable):
            http.get("t", "r")
        assert handler.seen == ["POST"] + ["GET"] * 3
    finally:
        server.shutdown()


def test_a_query_of_a_table_that_is_gone_is_not_a_conflict(azurite: Azurite) -> None:
    connection = TableConnection.of(azurite.connection_string)
    assert connection is not None
    with pytest.raises(Rejected, match="404"):
        TableHttp(connection, f"Gone{uuid.uuid4().hex[:12]}").query("t", [], 10, None, None)


def test_a_transactions_etags_are_read_whatever_header_follows_them() -> None:
    assert _ETAG.search(b'ETag: W/"datetime\'1\'"\r\nDataServiceVersion: 3.0;').group(1) == b'W/"datetime\'1\'"'
    assert _ETAG.search(b'X: y\r\netag:  W/"b"  ').group(1) == b'W/"b"'


def test_an_unreachable_service_is_storage_unavailable() -> None:
    connection = TableConnection.of(connection_string(1))
    assert connection is not None
    http = TableHttp(TableConnection(connection.endpoint, connection.signer, sleep=lambda _: None), "T")
    with pytest.raises(StorageUnavailable):
        http.get("t", "r")


def test_a_managed_identity_token_is_fetched_once_and_again_before_it_expires() -> None:
    issued: list[str] = []
    now = time.time()

    class Credential:
        def get_token(self, scope: str) -> Any:
            issued.append(scope)
            return SimpleNamespace(token=f"token-{len(issued)}", expires_on=now + (3600 if len(issued) == 1 else 200))

    bearer = Bearer(Credential())
    assert bearer.headers("GET", "/t", "", "date") == {"Authorization": "Bearer token-1"}
    assert bearer.headers("POST", "/$batch", "multipart/mixed", "date") == {"Authorization": "Bearer token-1"}
    assert issued == ["https://storage.azure.com/.default"]
    bearer._token = ("token-1", now + 100)  # within five minutes of its expiry
    assert bearer.headers("GET", "/t", "", "date") == {"Authorization": "Bearer token-2"}
    assert len(issued) == 2


def test_queries_give_alike_pages_and_continuations_on_both_paths(stores: tuple[TableStore, TableStore]) -> None:
    direct, sdk = stores
    tenant = "it's a tenant"
    direct.transact(tenant, [Operation("upsert", key, {**EVERY_TYPE, "Key": key}) for key in AWKWARD_KEYS])
    direct.transact(tenant, [Operation("upsert", f"it's-{i:02d}", {"Period": f"2026Q{i % 4 + 1}"})
                             for i in range(30)])
    for arguments in ({"row_key_from": "it's", "row_key_before": "it's-2"}, {"row_key_after": "a|b|c"},
                      {"select": ["Key", "Flag"]}, {"at_least": ("Period", "2026Q3")}, {}):
        pages = [store.query_partition(tenant, page_size=7, **arguments) for store in (direct, sdk)]  # type: ignore[arg-type]
        assert pages[0] == pages[1]
        assert pages[0].continuation is not None
        # a page's continuation, from either path, goes on alike on the other
        following = [sdk.query_partition(tenant, page_size=7, continuation=pages[0].continuation, **arguments),  # type: ignore[arg-type]
                     direct.query_partition(tenant, page_size=7, continuation=pages[1].continuation, **arguments)]  # type: ignore[arg-type]
        assert following[0] == following[1]
        assert following[0].entities[0].row_key > pages[0].entities[-1].row_key
    assert [e.row_key for e in direct.iter_partition(tenant, row_key_prefix="it's-")] == [
        f"it's-{i:02d}" for i in range(30)]


@pytest.mark.parametrize("writer", ["direct", "sdk"])
def test_a_merge_keeps_the_properties_it_does_not_name_and_is_conditional(
        stores: tuple[TableStore, TableStore], writer: str) -> None:
    direct, sdk = stores
    store = direct if writer == "direct" else sdk
    tenant = str(uuid.uuid4())
    first = store.create(tenant, "row", {"A": "kept", "B": 1})
    [second] = store.transact(tenant, [Operation("merge", "row", {"B": 2, "C": "new"}, first)])
    stored = direct.get(tenant, "row")
    assert stored is not None
    assert (stored.properties, stored.etag) == ({"A": "kept", "B": 2, "C": "new"}, second)
    with pytest.raises(ConcurrencyConflict):
        store.transact(tenant, [Operation("merge", "row", {"B": 3}, first), Operation("create", "other", {"V": 1})])
    assert direct.get(tenant, "other") is None
    again = direct.get(tenant, "row")
    assert again is not None
    assert again.properties["B"] == 2
    with pytest.raises(ValueError, match="ETag"):
        store.transact(tenant, [Operation("merge", "row", {"B": 4})])
