"""The table calls a worker makes most, point reads, queries of a partition and entity-group transactions, in Table
Storage's REST protocol directly (the same requests the SDK sends, without its pipeline).

Why (`bench/table_calls.py`): through the SDK's pipeline a point read costs about 1.0 ms of CPU (0.34 ms here), a
page of 1,000 rows 50 ms (9 ms), and a transaction of 100 rows 35 ms (2.8 ms): the SDK builds and parses its
multipart body with the `email` package. Single writes and table creation stay on the SDK. Both paths sign alike:
Shared Key with the account key of a connection string (Azurite's included), or a bearer token from the app's
managed identity.

Errors keep `TableStore`'s contract: a failed condition (404/409/412 in a transaction) is ConcurrencyConflict;
faults (unreachable, timeouts, 408, 429, 5xx) are StorageUnavailable once retried twice: a read always, a
transaction only when it cannot have been applied (no connection made, or 500, 503, 504), as the SDK does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from shared.errors import ConcurrencyConflict, StorageUnavailable

if TYPE_CHECKING:
    import urllib3

    from shared.storage.tables import Operation, Properties, PropertyValue, StoredEntity

log = logging.getLogger(__name__)

API_VERSION = "2019-02-02"
STORAGE_SCOPE = "https://storage.azure.com/.default"
_RETRIES = 2
_BACKOFF = 0.2
_JSON = "application/json"
_ACCEPT = "application/json;odata=minimalmetadata"
_PART = re.compile(rb"HTTP/1\.1 (\d{3})[^\r\n]*\r\n(.*?)\r\n\r\n", re.S)
_ETAG = re.compile(rb"^etag:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.I | re.M)


class Rejected(Exception):
    """A request the service refused for a reason no retry changes (a bug: its status and error code)."""


class SharedKey:
    """Signs a request with the account key (the SDK's Shared Key scheme for the Table service)."""

    def __init__(self, account: str, key: str) -> None:
        self._account = account
        self._key = base64.b64decode(key)

    def headers(self, method: str, path: str, content_type: str, date: str) -> dict[str, str]:
        text = f"{method}\n\n{content_type}\n{date}\n/{self._account}{path}"
        signature = base64.b64encode(hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).digest())
        return {"Authorization": f"SharedKey {self._account}:{signature.decode('ascii')}"}


class Bearer:
    """A token of the app's identity for Azure Storage, fetched again five minutes before it expires."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None

    def headers(self, method: str, path: str, content_type: str, date: str) -> dict[str, str]:
        with self._lock:
            if self._token is None or self._token[1] - 300 < time.time():
                found = self._credential.get_token(STORAGE_SCOPE)
                self._token = found.token, float(found.expires_on)
            return {"Authorization": f"Bearer {self._token[0]}"}


Signer = SharedKey | Bearer


class TableConnection:
    """An account's table endpoint, how requests to it are signed, and the pool of connections they share."""

    def __init__(self, endpoint: str, signer: Signer, *, connect_timeout: float = 3, read_timeout: float = 10,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        import urllib3

        self.endpoint = endpoint.rstrip("/")
        self.base_path = urlsplit(self.endpoint).path  # Azurite's URLs name the account: /devstoreaccount1
        self.origin = self.endpoint.removesuffix(self.base_path)
        self.signer = signer
        self.sleep = sleep
        self.pool = urllib3.PoolManager(maxsize=64, block=False, retries=False,
                                        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout))

    @classmethod
    def of(cls, connection_string: str) -> TableConnection | None:
        """From a connection string that names an account key (else None: the SDK alone serves it)."""
        parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
        account, key = parts.get("AccountName"), parts.get("AccountKey")
        if not account or not key:
            return None
        endpoint = parts.get("TableEndpoint") or "{}://{}.table.{}".format(
            parts.get("DefaultEndpointsProtocol", "https"), account, parts.get("EndpointSuffix", "core.windows.net"))
        return cls(endpoint, SharedKey(account, key))


class TableHttp:
    """Point reads and transactions of one table."""

    def __init__(self, connection: TableConnection, table: str) -> None:
        self._connection = connection
        self._endpoint = connection.endpoint
        self._base_path = connection.base_path
        self._table = table

    def get(self, partition_key: str, row_key: str) -> StoredEntity | None:
        path = f"{self._base_path}/{self._table}(PartitionKey='{_key(partition_key)}',RowKey='{_key(row_key)}')"
        response = self._send("GET", path, b"", "")
        if response.status == 404:
            return None
        if response.status != 200:
            _fail(response.status, _error_code(response.data), "point read")
        return entity_of(json.loads(response.data), response.headers.get("ETag"))

    def query(self, partition_key: str, clauses: Sequence[tuple[str, str, str]], top: int,
              select: Sequence[str] | None, continuation: dict[str, str | None] | None,
              ) -> tuple[list[StoredEntity], dict[str, str | None] | None]:
        """One page of the partition's rows matching every (property, operator, string value) clause, in key
        order, and where the next page starts (None: the last)."""
        conditions = [f"PartitionKey eq {_literal(partition_key)}"]
        conditions += [f"{name} {operator} {_literal(value)}" for name, operator, value in clauses]
        query = {"$filter": " and ".join(conditions), "$top": str(top)}
        if select:
            query["$select"] = ",".join(select)
        for name in ("PartitionKey", "RowKey"):
            if continuation and continuation.get(name) is not None:
                query[f"Next{name}"] = str(continuation[name])
        path = f"{self._base_path}/{self._table}()"
        response = self._send("GET", path, b"", "", "?" + urlencode(query, quote_via=quote))
        if response.status != 200:
            _fail(response.status, _error_code(response.data), "query")
        found = [entity_of(document, None, partition_key) for document in json.loads(response.data)["value"]]
        following = {name: response.headers.get(f"x-ms-continuation-Next{name}") for name in ("PartitionKey", "RowKey")}
        return found, following if any(following.values()) else None

    def transact(self, partition_key: str, operations: Sequence[Operation]) -> list[str | None]:
        batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
        table_url = f"{self._endpoint}/{self._table}"
        parts: list[str] = []
        for op in operations:
            url = f"{table_url}(PartitionKey='{_key(partition_key)}',RowKey='{_key(op.row_key)}')"
            headers = [f"Content-Type: {_JSON}", f"Accept: {_ACCEPT}", "DataServiceVersion: 3.0"]
            body = ""
            if op.kind == "create":
                method, url = "POST", table_url
                headers.append("Prefer: return-no-content")
                body = body_of(partition_key, op.row_key, op.properties)
            elif op.kind == "delete":
                method = "DELETE"
                headers.append(f"If-Match: {op.etag or '*'}")
            else:
                method = "MERGE" if op.kind == "merge" else "PUT"  # (MERGE keeps the properties it does not name)
                if op.kind in ("replace", "merge"):
                    headers.append(f"If-Match: {op.etag}")
                body = body_of(partition_key, op.row_key, op.properties)
            parts.append(f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
                         f"{method} {url} HTTP/1.1\r\n" + "\r\n".join(headers) + f"\r\n\r\n{body}\r\n")
        content = (f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n" + "".join(parts)
                   + f"--{changeset}--\r\n--{batch}--\r\n").encode("utf-8")
        response = self._send("POST", f"{self._base_path}/$batch", content, f"multipart/mixed; boundary={batch}")
        if response.status == 413:
            raise Rejected("the transaction is too large")
        if response.status != 202:
            _fail(response.status, _error_code(response.data), "transaction")
        answers = _PART.findall(response.data)
        failed = [(int(status), headers) for status, headers in answers if not 200 <= int(status) < 300]
        if failed:
            _fail(failed[0][0], _error_code(response.data), "transaction")
        if len(answers) != len(operations):
            raise StorageUnavailable("table storage answered a transaction in part; try again shortly")
        etags = [(_ETAG.search(headers) or None) for _, headers in answers]
        return [None if op.kind == "delete" or etag is None else etag.group(1).decode("ascii")
                for op, etag in zip(operations, etags, strict=True)]

    def _send(self, method: str, path: str, body: bytes, content_type: str, query: str = "",
              ) -> urllib3.BaseHTTPResponse:
        import urllib3

        connection = self._connection
        for attempt in range(_RETRIES + 1):
            date = formatdate(usegmt=True)
            headers = {"x-ms-date": date, "x-ms-version": API_VERSION, "Accept": _ACCEPT if method == "GET" else _JSON,
                       "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
                       **connection.signer.headers(method, path, content_type, date)}
            if content_type:
                headers["Content-Type"] = content_type
            try:
                response = connection.pool.request(method, connection.origin + path + query, body=body, headers=headers,
                                                   redirect=False)
            except urllib3.exceptions.HTTPError as exc:
                # A transaction that may have reached the service is not sent again (as the SDK: it may have
                # committed, and would then fail as a conflict); one that never left (no connection) may be.
                unsent = isinstance(exc, urllib3.exceptions.ConnectTimeoutError | urllib3.exceptions.NewConnectionError)
                if attempt == _RETRIES or (method == "POST" and not unsent):
                    log.warning("table storage unreachable: %s", type(exc).__name__)
                    raise StorageUnavailable("table storage is unreachable; try again shortly") from exc
            else:
                retried = response.status in _POST_RETRIED if method == "POST" else _transient(response.status)
                if not retried or attempt == _RETRIES:
                    return response
            connection.sleep(_BACKOFF * 2 ** attempt)
        raise AssertionError("unreachable")


_POST_RETRIED = (500, 503, 504)  # what the SDK retries of a transaction: the service did not apply it


def _transient(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _fail(status: int, code: str, what: str) -> None:
    """A transaction's failed condition (404, 409, 412) is a conflict; elsewhere those are bugs (a table that is
    gone, say)."""
    if what == "transaction" and (status in (404, 409, 412) or code in {
            "UpdateConditionNotSatisfied", "EntityAlreadyExists", "ResourceNotFound"}):
        raise ConcurrencyConflict(f"{what} rejected: {code or status}")
    if _transient(status):
        log.warning("table storage fault: status %s", status)
        raise StorageUnavailable("table storage is busy or failing; try again shortly")
    raise Rejected(f"{what} answered {status}: {code}")


def _error_code(data: bytes) -> str:
    found = re.search(rb'"code"\s*:\s*"([^"]+)"', data)
    return found.group(1).decode("ascii", "replace") if found else ""


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _key(value: str) -> str:
    return quote(value.replace("'", "''"), safe="")


def body_of(partition_key: str, row_key: str, properties: Properties) -> str:
    """An entity as the service reads it: types JSON cannot say are named (`@odata.type`)."""
    body: dict[str, Any] = {"PartitionKey": partition_key, "RowKey": row_key}
    for name, value in properties.items():
        if value is None or isinstance(value, bool | str):
            body[name] = value
        elif isinstance(value, int):
            if -2**31 <= value < 2**31:
                body[name] = value
            else:
                body[name], body[f"{name}@odata.type"] = str(value), "Edm.Int64"
        elif isinstance(value, float):
            body[name] = value if math.isfinite(value) else ("NaN" if math.isnan(value) else
                                                             "Infinity" if value > 0 else "-Infinity")
            body[f"{name}@odata.type"] = "Edm.Double"
        elif isinstance(value, datetime):
            moment = value.astimezone(UTC) if value.tzinfo is not None else value
            body[name], body[f"{name}@odata.type"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "Edm.DateTime"
        elif isinstance(value, bytes):
            body[name], body[f"{name}@odata.type"] = base64.b64encode(value).decode("ascii"), "Edm.Binary"
        else:
            raise TypeError(f"a property of type {type(value).__name__} cannot be stored")
    return json.dumps(body, separators=(",", ":"))


def entity_of(document: dict[str, Any], etag: str | None, partition_key: str | None = None) -> StoredEntity:
    """A stored entity as `TableStore` returns it (what the SDK's decoding gives, unwrapped)."""
    from shared.storage.tables import StoredEntity

    types = {name[:-11]: value for name, value in document.items() if name.endswith("@odata.type")}
    properties: Properties = {}
    for name, value in document.items():
        if name.startswith("odata.") or name.endswith("@odata.type") or name in ("PartitionKey", "RowKey",
                                                                                  "Timestamp"):
            continue
        properties[name] = _typed(value, types.get(name))
    return StoredEntity(document.get("PartitionKey", partition_key), document["RowKey"], properties,  # type: ignore[arg-type]
                        etag or str(document.get("odata.etag")))


def _typed(value: Any, edm: str | None) -> PropertyValue:
    if edm is None:
        return value  # type: ignore[no-any-return]
    if edm == "Edm.Int64":
        return int(value)
    if edm == "Edm.Double":
        return float(value)
    if edm == "Edm.DateTime":
        seconds, _, fraction = str(value).rstrip("Z").partition(".")
        moment = datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        return moment.replace(microsecond=int((fraction + "000000")[:6])) if fraction else moment
    if edm == "Edm.Binary":
        return base64.b64decode(value)
    return value  # type: ignore[no-any-return]
