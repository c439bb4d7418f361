"""Table Storage access with the service's limits enforced here, not trusted to the emulator.

- Optimistic concurrency: conditional writes carry the ETag read earlier; a mismatch is ConcurrencyConflict.
- Entity-group transactions: one partition, at most 100 operations, each row once, at most 4 MiB.
- Faults of the service (unreachable, timeouts, 5xx, throttling) are StorageUnavailable, which the HTTP
  layer turns into 503 + Retry-After. A failed call wrote nothing we rely on: single-entity writes and
  transactions are atomic on the service side.
- The table is created on first use, once per process.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from shared.errors import ConcurrencyConflict, StorageUnavailable
from shared.storage.table_http import Bearer, TableConnection, TableHttp
from shared.storage.transport import storage_transport

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH_OPERATIONS = 100
MAX_BATCH_BYTES = 4 * 1024 * 1024
WRITER_BATCH_BYTES = MAX_BATCH_BYTES - 256 * 1024  # what writers aim at: the estimate misses the batch envelope
MAX_KEY_CHARS = 1024
MAX_STRING_PROPERTY_CHARS = 32 * 1024  # 64 KiB of UTF-16 (a character outside the BMP takes two)
MAX_PROPERTIES = 252  # 255 minus PartitionKey, RowKey, Timestamp
_FORBIDDEN_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
_TOKEN_PART = re.compile(r"[\x20-\x7e]{1,2048}")  # sent back as a header value: printable ASCII

PropertyValue = str | int | float | bool | datetime | bytes
Properties = dict[str, PropertyValue]


def check_key(name: str, value: str) -> None:
    if not value or len(value) > MAX_KEY_CHARS or _FORBIDDEN_KEY_CHARS.search(value):
        raise ValueError(f"invalid {name} for Table Storage: {value[:64]!r}")


@dataclass(frozen=True)
class StoredEntity:
    partition_key: str
    row_key: str
    properties: Properties
    etag: str


@dataclass(frozen=True)
class Operation:
    """One step of an entity-group transaction."""

    kind: Literal["create", "replace", "merge", "upsert", "delete"]
    row_key: str
    properties: Properties = field(default_factory=dict)
    etag: str | None = None  # replace/merge/delete: the version that must still be stored


@dataclass(frozen=True)
class Page:
    entities: list[StoredEntity]
    continuation: str | None


def _connection_kwargs() -> dict[str, Any]:
    # Fail fast: a handful of quick retries, then 503 to the caller, instead of the SDK's long default.
    return {"retry_total": 2, "retry_backoff_factor": 0.2,
            "transport": storage_transport(connection_timeout=3, read_timeout=10)}


class TableStore:
    def __init__(self, service_factory: Callable[[], TableServiceClient], table_name: str,
                 direct: TableConnection | None = None) -> None:
        self._service_factory = service_factory
        self.table_name = table_name
        # Point reads, queries and transactions without the SDK's pipeline (see table_http), when it can sign them.
        self._direct = direct
        self._http = None if direct is None else TableHttp(direct, table_name)
        self._client: TableClient | None = None
        self._ready = False
        self._lock = threading.Lock()
        self._siblings: dict[str, TableStore] = {}

    @classmethod
    def from_connection_string(cls, connection_string: str, table_name: str, *, direct: bool = True) -> TableStore:
        """`direct`: point reads and transactions without the SDK's pipeline (the SDK serves all: False)."""
        def factory() -> TableServiceClient:
            from azure.data.tables import TableServiceClient

            return TableServiceClient.from_connection_string(connection_string, **_connection_kwargs())

        return cls(factory, table_name, TableConnection.of(connection_string) if direct else None)

    @classmethod
    def from_endpoint(cls, endpoint: str, credential: Any, table_name: str) -> TableStore:
        def factory() -> TableServiceClient:
            from azure.data.tables import TableServiceClient

            return TableServiceClient(endpoint=endpoint, credential=credential, **_connection_kwargs())

        direct = TableConnection(endpoint, Bearer(credential)) if hasattr(credential, "get_token") else None
        return cls(factory, table_name, direct)

    def sibling(self, table_name: str) -> TableStore:
        """Another table of the same account, reached the same way (made once, then shared)."""
        with self._lock:
            found = self._siblings.get(table_name)
            if found is None:
                found = self._siblings[table_name] = self._new_sibling(table_name)
        return found

    def _new_sibling(self, table_name: str) -> TableStore:
        return TableStore(self._service_factory, table_name, self._direct)

    # -- plumbing -------------------------------------------------------------------------------------

    def _table(self) -> TableClient:
        if self._ready and self._client is not None:
            return self._client
        with self._lock:
            if not self._ready:
                with _mapped_errors():
                    service = self._service_factory()
                    service.create_table_if_not_exists(self.table_name)
                    self._client = service.get_table_client(self.table_name)
                self._ready = True
        assert self._client is not None
        return self._client

    def ping(self) -> None:
        """Proves the table answers (creating it if needed). Raises StorageUnavailable otherwise."""
        table = self._table()
        with _mapped_errors():
            next(iter(table.query_entities("PartitionKey eq @pk", parameters={"pk": "~ping"}, results_per_page=1)),
                 None)

    # -- single entities ------------------------------------------------------------------------------

    def get(self, partition_key: str, row_key: str) -> StoredEntity | None:
        """The row, or None. A key that no write could have stored (ids from a URL) is simply not found."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            check_key("PartitionKey", partition_key)
            check_key("RowKey", row_key)
        except ValueError:
            return None
        table = self._table()
        if self._http is not None:
            return self._http.get(partition_key, row_key)
        with _mapped_errors():
            try:
                entity = table.get_entity(partition_key, row_key)
            except ResourceNotFoundError:
                return None
        return _stored(entity)

    def create(self, partition_key: str, row_key: str, properties: Properties) -> str:
        """Insert; ConcurrencyConflict when the row exists already."""
        from azure.core.exceptions import ResourceExistsError

        entity = _entity(partition_key, row_key, properties)
        table = self._table()
        with _mapped_errors():
            try:
                meta = table.create_entity(entity)
            except ResourceExistsError as exc:
                raise ConcurrencyConflict(f"{row_key} exists already") from exc
        return str(meta["etag"])

    def replace(self, partition_key: str, row_key: str, properties: Properties, etag: str) -> str:
        """Replace only if the stored version is still `etag`; ConcurrencyConflict otherwise."""
        return self._update_if_unchanged(partition_key, row_key, properties, etag, merge=False)

    def merge(self, partition_key: str, row_key: str, properties: Properties, etag: str) -> str:
        """Sets these properties (keeping the others) only if the stored version is still `etag`."""
        return self._update_if_unchanged(partition_key, row_key, properties, etag, merge=True)

    def _update_if_unchanged(self, partition_key: str, row_key: str, properties: Properties, etag: str, *,
                             merge: bool) -> str:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        entity = _entity(partition_key, row_key, properties)
        table = self._table()
        with _mapped_errors():
            try:
                meta = table.update_entity(entity, mode=UpdateMode.MERGE if merge else UpdateMode.REPLACE,
                                           etag=etag, match_condition=MatchConditions.IfNotModified)
            except ResourceNotFoundError as exc:
                raise ConcurrencyConflict(f"{row_key} was deleted meanwhile") from exc
        return str(meta["etag"])

    def upsert(self, partition_key: str, row_key: str, properties: Properties, *, merge: bool = False) -> str:
        """Insert or replace (with `merge`: insert or set these properties, keeping the others)."""
        from azure.data.tables import UpdateMode

        entity = _entity(partition_key, row_key, properties)
        table = self._table()
        with _mapped_errors():
            meta = table.upsert_entity(entity, mode=UpdateMode.MERGE if merge else UpdateMode.REPLACE)
        return str(meta["etag"])

    def delete(self, partition_key: str, row_key: str, etag: str | None = None) -> None:
        """Delete; idempotent without an ETag, conditional (ConcurrencyConflict) with one."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceNotFoundError

        check_key("PartitionKey", partition_key)
        check_key("RowKey", row_key)
        table = self._table()
        with _mapped_errors():
            try:
                if etag is None:
                    table.delete_entity(partition_key, row_key)
                else:
                    table.delete_entity(
                        partition_key, row_key, etag=etag, match_condition=MatchConditions.IfNotModified
                    )
            except ResourceNotFoundError as exc:
                if etag is not None:
                    raise ConcurrencyConflict(f"{row_key} was deleted meanwhile") from exc

    # -- queries --------------------------------------------------------------------------------------

    def query_partition(
        self,
        partition_key: str,
        *,
        row_key_from: str | None = None,
        row_key_after: str | None = None,
        row_key_before: str | None = None,
        page_size: int = 100,
        continuation: str | None = None,
        select: Sequence[str] | None = None,
        at_least: tuple[str, str] | None = None,
    ) -> Page:
        """One page of a partition's rows in RowKey order, optionally within [from, before) and past `after`.
        `select` names the only properties to fetch (RowKey included): the SDK's decoding of each property is most
        of a scan's cost. `at_least` (property, value): only rows whose string property is at least the value (the
        service filters: what it leaves out is never sent)."""
        check_key("PartitionKey", partition_key)
        if at_least is not None and not at_least[0].isidentifier():
            raise ValueError(f"not a property name: {at_least[0]!r}")
        bounds = [("RowKey", "ge", row_key_from), ("RowKey", "gt", row_key_after), ("RowKey", "lt", row_key_before),
                  (at_least[0], "ge", at_least[1]) if at_least is not None else ("", "", None)]
        conditions = [(name, operator, value) for name, operator, value in bounds if value is not None]
        table = self._table()
        if self._http is not None:
            found, following = self._http.query(partition_key, conditions, page_size,
                                                ["RowKey", *select] if select else None, _decode_token(continuation))
            return Page(found, _encode_token(following))
        clauses = ["PartitionKey eq @pk", *(f"{name} {operator} @p{i}" for i, (name, operator, _) in enumerate(
            conditions))]
        parameters: dict[str, Any] = {"pk": partition_key, **{f"p{i}": c[2] for i, c in enumerate(conditions)}}
        with _mapped_errors():
            pages: Any = table.query_entities(
                " and ".join(clauses), parameters=parameters, results_per_page=page_size,
                select=["RowKey", *select] if select else None,
            ).by_page(continuation_token=_decode_token(continuation))
            page: list[Any] = next(pages, [])
            entities = [_stored(e, partition_key) for e in page]
            token = _encode_token(pages.continuation_token)
        return Page(entities, token)

    def iter_partition(self, partition_key: str, *, row_key_prefix: str = "",
                       select: Sequence[str] | None = None, after: str | None = None,
                       at_least: tuple[str, str] | None = None, start: str | None = None,
                       before: str | None = None) -> Iterator[StoredEntity]:
        """Every row whose key has the prefix, in key order; with `after`, only the rows past that key; with
        `start` and `before`, only those from the one and before the other."""
        continuation: str | None = None
        upper = prefix_upper_bound(row_key_prefix) if row_key_prefix else None
        if before is not None:
            upper = before if upper is None else min(upper, before)
        lower = max(row_key_prefix, start) if start is not None else row_key_prefix
        while True:
            page = self.query_partition(
                partition_key,
                row_key_from=lower or None,
                row_key_after=after,
                row_key_before=upper,
                page_size=1000,
                continuation=continuation,
                select=select,
                at_least=at_least,
            )
            yield from page.entities
            if page.continuation is None:
                return
            continuation = page.continuation

    # -- transactions ---------------------------------------------------------------------------------

    def transact(self, partition_key: str, operations: Sequence[Operation]) -> list[str | None]:
        """All or nothing within one partition. Returns the new ETag of each operation (None for deletes)."""
        from azure.core import MatchConditions
        from azure.data.tables import TableTransactionError, UpdateMode

        _check_batch(partition_key, operations)
        table = self._table()
        if self._http is not None:
            for op in operations:
                _check_entity(partition_key, op.row_key, op.properties)
                if op.kind in ("replace", "merge") and op.etag is None:
                    raise ValueError(f"a {op.kind} inside a transaction needs the ETag it read")
            return self._http.transact(partition_key, operations)
        batch: list[Any] = []
        for op in operations:
            entity = _entity(partition_key, op.row_key, op.properties)
            if op.kind == "create":
                batch.append(("create", entity))
            elif op.kind == "upsert":
                batch.append(("upsert", entity, {"mode": UpdateMode.REPLACE}))
            elif op.kind in ("replace", "merge"):
                if op.etag is None:
                    raise ValueError(f"a {op.kind} inside a transaction needs the ETag it read")
                # (a merge writes only the properties it names and keeps the others)
                mode = UpdateMode.REPLACE if op.kind == "replace" else UpdateMode.MERGE
                condition = {"etag": op.etag, "match_condition": MatchConditions.IfNotModified}
                batch.append(("update", entity, {"mode": mode, **condition}))
            else:
                options = {} if op.etag is None else {
                    "etag": op.etag, "match_condition": MatchConditions.IfNotModified}
                batch.append(("delete", entity, options))
        with _mapped_errors():
            try:
                results = table.submit_transaction(batch)
            except TableTransactionError as exc:
                code = str(getattr(exc, "error_code", "") or "")
                if exc.status_code in (404, 409, 412) or code in {
                    "UpdateConditionNotSatisfied", "EntityAlreadyExists", "ResourceNotFound"}:
                    raise ConcurrencyConflict(f"transaction rejected: {code or exc.status_code}") from exc
                raise
        return [None if op.kind == "delete" else str(meta.get("etag")) for op, meta in zip(
            operations, results, strict=True)]


# -- helpers ------------------------------------------------------------------------------------------


@contextmanager
def _mapped_errors() -> Iterator[None]:
    from azure.core.exceptions import (
        HttpResponseError,
        ResourceModifiedError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except ResourceModifiedError as exc:
        raise ConcurrencyConflict("the stored version changed since it was read") from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        log.warning("table storage unreachable: %s", type(exc).__name__)
        raise StorageUnavailable("table storage is unreachable; try again shortly") from exc
    except HttpResponseError as exc:
        if exc.status_code is None or exc.status_code in (408, 429) or exc.status_code >= 500:
            log.warning("table storage fault: status %s", exc.status_code)
            raise StorageUnavailable("table storage is busy or failing; try again shortly") from exc
        raise


def _entity(partition_key: str, row_key: str, properties: Properties) -> dict[str, Any]:
    """The entity as the SDK sends it, once checked against the service's limits."""
    _check_entity(partition_key, row_key, properties)
    return {"PartitionKey": partition_key, "RowKey": row_key, **{n: _typed(v) for n, v in properties.items()}}


def _check_entity(partition_key: str, row_key: str, properties: Properties) -> None:
    check_key("PartitionKey", partition_key)
    check_key("RowKey", row_key)
    if len(properties) > MAX_PROPERTIES:
        raise ValueError(f"an entity holds at most {MAX_PROPERTIES} properties")
    for name, value in properties.items():
        if name in ("PartitionKey", "RowKey", "Timestamp", "etag"):
            raise ValueError(f"{name} is a reserved property name")
        if isinstance(value, str) and utf16_units(value) > MAX_STRING_PROPERTY_CHARS:
            raise ValueError(f"property {name} exceeds 64 KiB")


def _typed(value: PropertyValue) -> Any:
    # The SDK sends a plain int as Int32 (and refuses one beyond it); larger ones must say they are Int64.
    if isinstance(value, int) and not isinstance(value, bool) and not -2**31 <= value < 2**31:
        from azure.data.tables import EdmType, EntityProperty

        return EntityProperty(value, EdmType.INT64)
    return value


def _stored(entity: Any, partition_key: str | None = None) -> StoredEntity:
    properties: Properties = {}
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            continue
        properties[name] = _plain(value)
    return StoredEntity(entity.get("PartitionKey", partition_key), entity["RowKey"], properties,
                        str(entity.metadata["etag"]))


def _plain(value: Any) -> PropertyValue:
    # The SDK returns EntityProperty for Int64 and some typed values; unwrap to plain Python values.
    inner = getattr(value, "value", value)
    return inner  # type: ignore[no-any-return]


def utf16_units(text: str) -> int:
    """How the service measures a string: UTF-16 code units."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def operation_bytes(operation: Operation) -> int:
    """One operation's share of a transaction's payload (JSON, escaped as sent), with some room for headers."""
    return 512 + len(operation.row_key) + sum(len(name) + _approx_size(v) for name, v in operation.properties.items())


def transactions(operations: Sequence[Operation]) -> Iterator[list[Operation]]:
    """The operations in order, cut into transactions the service accepts: by count and by payload size."""
    return cut_into_transactions(operations, operation_bytes)


def cut_into_transactions(items: Iterable[T], cost: Callable[[T], int], limit: int = MAX_BATCH_OPERATIONS,
                          count: Callable[[T], int] = lambda _: 1) -> Iterator[list[T]]:
    """Items in order, in groups that one transaction each can hold, given what each weighs in it and how many
    of the transaction's `limit` operations it takes (an item of several operations is never split)."""
    batch: list[T] = []
    size = operations = 0
    for item in items:
        weight, taken = cost(item), count(item)
        if batch and (operations + taken > limit or size + weight > WRITER_BATCH_BYTES):
            yield batch
            batch, size, operations = [], 0, 0
        batch.append(item)
        size += weight
        operations += taken
    if batch:
        yield batch


def _check_batch(partition_key: str, operations: Sequence[Operation]) -> None:
    check_key("PartitionKey", partition_key)
    if not operations:
        raise ValueError("a transaction needs at least one operation")
    if len(operations) > MAX_BATCH_OPERATIONS:
        raise ValueError(f"a transaction holds at most {MAX_BATCH_OPERATIONS} operations")
    row_keys = [op.row_key for op in operations]
    if len(set(row_keys)) != len(row_keys):
        raise ValueError("a transaction may touch each row only once")
    size = sum(operation_bytes(op) for op in operations)
    if size > MAX_BATCH_BYTES:
        raise ValueError("a transaction's payload is at most 4 MiB")


def _approx_size(value: PropertyValue) -> int:
    if isinstance(value, str):  # as the SDK sends it: JSON-escaped quotes and backslashes, \uXXXX beyond ASCII
        return len(json.dumps(value)) + 64
    if isinstance(value, bytes):
        return len(value) * 4 // 3 + 64
    return 64


def prefix_upper_bound(prefix: str) -> str:
    """The first key past every key that starts with the prefix."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _encode_token(token: Any) -> str | None:
    if not token:
        return None
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(token, sort_keys=True).encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> Any:
    if not token:
        return None
    import base64
    import binascii
    import json

    try:
        padded = token + "=" * (-len(token) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: json recurses per array, and a token of 2,048 characters can open 1,500 of them.
        raise ValueError("malformed continuation token") from exc
    # What _encode_token wrote: the service's next PartitionKey and RowKey (one may be null), sent back as headers.
    if not (isinstance(decoded, dict) and decoded and decoded.keys() <= {"PartitionKey", "RowKey"} and all(
            value is None or (isinstance(value, str) and _TOKEN_PART.fullmatch(value)) for value in decoded.values())):
        raise ValueError("malformed continuation token")
    return decoded
