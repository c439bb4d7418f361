"""The local Microsoft Graph: a stateful loopback stand-in for the parts of Graph v1.0 the connectors read
(dev and tests only).

- `/v1.0/users`, `/v1.0/users/{id|userPrincipalName}`, `/v1.0/groups/{id}/transitiveMembers` (nested groups
  flattened, each member with its `@odata.type`), paged with `$top` and `$skiptoken`;
- `/v1.0/users/{id}/mailFolders/{inbox|sentitems}/messages/delta` and `/v1.0/users/{id}/calendarView/delta`
  with Graph's delta semantics: options on the first request only, `Prefer: odata.maxpagesize` (default 10),
  `@odata.nextLink` with a `$skiptoken` and, on a round's last page, `@odata.deltaLink` with a `$deltatoken`.
  Both tokens encode a position in the mailbox's change log (signed), so a link replayed at any later time
  returns exactly what changed since; `{"id", "@removed": {"reason"}}` for deletions; `$select` on messages
  (`id` always returned); calendar delta returns whole events whatever is asked, body included, and reports
  changes outside its window as removals, as the real API does;
- bearer tokens from the local identity provider: signature, `aud` Graph, issuer of the token's tenant, and
  the application permission each resource needs (403 otherwise);
- what tests need: faults (429/503 with `Retry-After`, any status), a fifth concurrent request on one mailbox
  answered 429 `MailboxConcurrency`, evicted sync state (410 `SyncStateNotFound`), tokens that expire, an
  added latency, and call counts per tenant and mailbox.

Every message and event here carries a subject, a body and a preview: a connector must never let them through.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from devhost.standin import ApiError, LoopbackService, Request

GRAPH_AUDIENCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
FOLDERS = ("inbox", "sentitems")
CALENDAR = "calendar"
MAILBOX_CONCURRENCY = 4
DEFAULT_PAGE = 10

MAIL_ROLES = {"Mail.ReadBasic.All", "Mail.Read", "Mail.ReadWrite"}
CALENDAR_ROLES = {"Calendars.ReadBasic.All", "Calendars.Read", "Calendars.ReadWrite"}
USER_ROLES = {"User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All", "Directory.Read.All"}
MEMBER_ROLES = {"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"}

MESSAGE_PROPERTIES = frozenset({
    "id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories", "receivedDateTime", "sentDateTime",
    "hasAttachments", "internetMessageId", "subject", "bodyPreview", "importance", "parentFolderId", "conversationId",
    "conversationIndex", "isDeliveryReceiptRequested", "isReadReceiptRequested", "isRead", "isDraft", "webLink",
    "inferenceClassification", "body", "sender", "from", "toRecipients", "ccRecipients", "bccRecipients", "replyTo",
    "flag", "uniqueBody"})
_FILTER = re.compile(r"^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$")


def graph_time(moment: datetime) -> str:
    """Graph's way: UTC with seven fractional digits and a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class _Collection:
    """One mail folder or the calendar of one mailbox: current items, the sequence number of each item's last
    change (deletions kept as tombstones), and a generation that eviction of the sync state bumps."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    generation: int = 0


@dataclass
class _Tenant:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    mailboxes: dict[str, dict[str, _Collection]] = field(default_factory=dict)


@dataclass
class LocalGraph(LoopbackService):
    name: str = "graph"
    _tenants: dict[str, _Tenant] = field(default_factory=dict, init=False, repr=False)
    _seq: int = field(default=0, init=False, repr=False)
    _inflight: Counter[tuple[str, str]] = field(default_factory=Counter, init=False, repr=False)
    latency_seconds: float = 0.0

    # -- directory ------------------------------------------------------------------------------------

    def _tenant(self, tenant: str) -> _Tenant:
        return self._tenants.setdefault(tenant, _Tenant())

    def add_user(self, tenant: str, user: dict[str, Any]) -> str:
        with self._lock:
            user = {"accountEnabled": True, **user}
            user.setdefault("id", str(uuid.uuid4()))
            self._tenant(tenant).users[user["id"]] = user
            self._tenant(tenant).mailboxes.setdefault(user["id"], {})
            return str(user["id"])

    def add_group(self, tenant: str, group_id: str, display_name: str, members: list[str]) -> None:
        """Members are user or group ids of the tenant (nested groups allowed)."""
        with self._lock:
            self._tenant(tenant).groups[group_id] = {"id": group_id, "displayName": display_name,
                                                     "members": list(members)}

    def set_group_members(self, tenant: str, group_id: str, members: list[str]) -> None:
        with self._lock:
            self._tenant(tenant).groups[group_id]["members"] = list(members)

    # -- mailbox content ------------------------------------------------------------------------------

    def _collection(self, tenant: str, mailbox: str, name: str) -> _Collection:
        return self._tenant(tenant).mailboxes.setdefault(mailbox, {}).setdefault(name, _Collection())

    def _change(self, collection: _Collection, item_id: str) -> None:
        self._seq += 1
        collection.changed[item_id] = self._seq

    def _stamp(self, collection: _Collection, item: dict[str, Any], at: datetime | None) -> None:
        previous = collection.items.get(item["id"], {}).get("lastModifiedDateTime")
        moment = at or datetime.now(UTC)
        if previous is not None and moment <= _parse_time(previous):
            moment = _parse_time(previous) + timedelta(microseconds=1)  # a change always moves the time on
        item["lastModifiedDateTime"] = graph_time(moment)
        item["changeKey"] = uuid.uuid4().hex[:16]

    def put_message(self, tenant: str, mailbox: str, folder: str, message: dict[str, Any], *,
                    modified: datetime | None = None) -> str:
        """Creates or replaces a message in a mailbox's folder; returns its id."""
        if folder not in FOLDERS:
            raise ValueError(f"folder must be one of {FOLDERS}")
        with self._lock:
            collection = self._collection(tenant, mailbox, folder)
            item = dict(message)
            item.setdefault("id", "AAMk" + uuid.uuid4().hex)
            item["parentFolderId"] = f"{folder}-{mailbox}"
            for name, default in (("subject", "(no subject)"), ("bodyPreview", "…"),
                                  ("body", {"contentType": "html", "content": "<p>…</p>"})):
                item.setdefault(name, default)
            self._stamp(collection, item, modified)
            collection.items[item["id"]] = item
            collection.deleted.discard(item["id"])
            self._change(collection, item["id"])
            return str(item["id"])

    def update_message(self, tenant: str, mailbox: str, folder: str, message_id: str, **changes: Any) -> None:
        with self._lock:
            current = self._collection(tenant, mailbox, folder).items[message_id]
            self.put_message(tenant, mailbox, folder, {**current, **changes})

    def delete_message(self, tenant: str, mailbox: str, folder: str, message_id: str) -> None:
        with self._lock:
            collection = self._collection(tenant, mailbox, folder)
            del collection.items[message_id]
            collection.deleted.add(message_id)
            self._change(collection, message_id)

    def put_event(self, tenant: str, mailbox: str, event: dict[str, Any], *, modified: datetime | None = None) -> str:
        with self._lock:
            collection = self._collection(tenant, mailbox, CALENDAR)
            item = dict(event)
            item.setdefault("id", "AAMkE" + uuid.uuid4().hex)
            for name, default in (("subject", "(no subject)"), ("bodyPreview", "…"),
                                  ("body", {"contentType": "html", "content": "<p>…</p>"})):
                item.setdefault(name, default)
            self._stamp(collection, item, modified)
            collection.items[item["id"]] = item
            collection.deleted.discard(item["id"])
            self._change(collection, item["id"])
            return str(item["id"])

    def update_event(self, tenant: str, mailbox: str, event_id: str, **changes: Any) -> None:
        with self._lock:
            current = self._collection(tenant, mailbox, CALENDAR).items[event_id]
            self.put_event(tenant, mailbox, {**current, **changes})

    def delete_event(self, tenant: str, mailbox: str, event_id: str) -> None:
        with self._lock:
            collection = self._collection(tenant, mailbox, CALENDAR)
            del collection.items[event_id]
            collection.deleted.add(event_id)
            self._change(collection, event_id)

    def messages(self, tenant: str, mailbox: str, folder: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._collection(tenant, mailbox, folder).items.values()]

    def events(self, tenant: str, mailbox: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._collection(tenant, mailbox, CALENDAR).items.values()]

    def evict_sync_state(self, tenant: str, mailbox: str, collection: str | None = None) -> None:
        """Every skip and delta token of this mailbox (or of one folder / the calendar) now answers 410."""
        with self._lock:
            names = [collection] if collection else [*FOLDERS, CALENDAR]
            for name in names:
                self._collection(tenant, mailbox, name).generation += 1

    # -- protocol -------------------------------------------------------------------------------------

    def audience_ok(self, audience: Any, request: Request) -> bool:
        return audience in GRAPH_AUDIENCES

    def scope_of(self, request: Request) -> str:
        s = request.segments
        return s[2] if len(s) >= 3 and s[:2] == ["v1.0", "users"] else ""

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any] | None:
        return {"error": {"code": code, "message": message, "innerError": {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "request-id": str(uuid.uuid4()),
            "client-request-id": str(uuid.uuid4())}}}

    def unauthorized(self, message: str, request: Request) -> ApiError:
        return ApiError(401, self.error_body(401, "InvalidAuthenticationToken", message), {
            "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                                'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'})

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> ApiError:
        return ApiError(status, self.error_body(status, code, message), headers)

    def _require(self, claims: dict[str, Any], allowed: set[str], directory: bool) -> None:
        if not allowed.intersection(claims.get("roles") or []):
            if directory:
                raise self._error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the "
                                                                       "operation.")
            raise self._error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")

    def handle(self, request: Request, claims: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        tenant = str(claims["tid"])
        s = request.segments
        if not s or s[0] != "v1.0":
            raise self._error(400, "BadRequest", "Invalid version.")
        if s[1:] == ["users"]:
            self._require(claims, USER_ROLES, True)
            return self._users(tenant, request)
        if len(s) == 3 and s[1] == "users":
            self._require(claims, USER_ROLES, True)
            with self._lock:
                user = self._find_user(tenant, s[2])
                if user is None:
                    raise self._error(404, "Request_ResourceNotFound", f"Resource '{s[2]}' does not exist or one "
                                      "of its queried reference-property objects are not present.")
                return 200, {"@odata.context": f"{self.base_url}/v1.0/$metadata#users/$entity",
                             **_select(user, request.query.get("$select"))}, {}
        if len(s) == 4 and s[1] == "groups" and s[3] == "transitiveMembers":
            self._require(claims, MEMBER_ROLES, True)
            return self._members(tenant, s[2], request)
        if len(s) == 7 and s[1] == "users" and s[3] == "mailFolders" and s[5:] == ["messages", "delta"]:
            self._require(claims, MAIL_ROLES, False)
            return self._in_mailbox(tenant, s[2], lambda user: self._delta(tenant, user, s[4].lower(), request))
        if len(s) == 5 and s[1] == "users" and s[3:] == ["calendarView", "delta"]:
            self._require(claims, CALENDAR_ROLES, False)
            return self._in_mailbox(tenant, s[2], lambda user: self._delta(tenant, user, CALENDAR, request))
        raise self._error(400, "BadRequest", f"Resource not found for the segment '{s[-1]}'.")

    def _find_user(self, tenant: str, key: str) -> dict[str, Any] | None:
        users = self._tenant(tenant).users
        return users.get(key) or next((u for u in users.values()
                                       if str(u.get("userPrincipalName", "")).lower() == key.lower()), None)

    def _in_mailbox(self, tenant: str, key: str, work: Callable[[str], tuple[int, dict[str, Any], dict[str, str]]],
                    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            user = self._find_user(tenant, key)
            if user is None:
                raise self._error(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
            slot = (tenant, str(user["id"]))
            self._inflight[slot] += 1
            busy = self._inflight[slot] > MAILBOX_CONCURRENCY
        try:
            if busy:
                raise self._error(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                                  {"Retry-After": "1"})
            if self.latency_seconds:
                time.sleep(self.latency_seconds)
            with self._lock:
                return work(str(user["id"]))
        finally:
            with self._lock:
                self._inflight[slot] -= 1

    # -- directory reads ------------------------------------------------------------------------------

    def _offset_page(self, tenant: str, request: Request, rows: list[dict[str, Any]], kind: str,
                     context: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        query = request.query
        state = None
        if "$skiptoken" in query:
            state = self.cursors.decode(query["$skiptoken"])
            if state is None or state.get("k") != kind:
                raise self._error(400, "Directory_InvalidSkipToken", "The specified page token value has expired "
                                  "or is invalid.")
        top = int(state["top"]) if state else _int(query.get("$top"), 100, 1, 999)
        select = state["sel"] if state else query.get("$select")
        offset = int(state["o"]) if state else 0
        page = [_select(r, select) for r in rows[offset:offset + top]]
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/v1.0/$metadata#{context}", "value": page}
        if offset + top < len(rows):
            token = self.cursors.encode({"k": kind, "o": offset + top, "top": top, "sel": select})
            body["@odata.nextLink"] = f"{self.base_url}{request.path}?$skiptoken={quote(token)}"
        return 200, body, {}

    def _users(self, tenant: str, request: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            rows = [{"@odata.type": "#microsoft.graph.user", **u} for u in self._tenant(tenant).users.values()]
        rows.sort(key=lambda u: str(u["id"]))
        return self._offset_page(tenant, request, rows, "users", "users")

    def _members(self, tenant: str, group_id: str, request: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            data = self._tenant(tenant)
            if group_id not in data.groups:
                raise self._error(404, "Request_ResourceNotFound", f"Resource '{group_id}' does not exist or one "
                                  "of its queried reference-property objects are not present.")
            seen: dict[str, dict[str, Any]] = {}
            pending = list(data.groups[group_id]["members"])
            while pending:
                member = pending.pop(0)
                if member in seen or member == group_id:
                    continue
                if member in data.groups:
                    group = data.groups[member]
                    seen[member] = {"@odata.type": "#microsoft.graph.group", "id": member,
                                    "displayName": group["displayName"]}
                    pending.extend(group["members"])
                elif member in data.users:
                    seen[member] = {"@odata.type": "#microsoft.graph.user", **data.users[member]}
        return self._offset_page(tenant, request, list(seen.values()), f"members:{group_id}", "directoryObjects")

    # -- delta ----------------------------------------------------------------------------------------

    def _delta(self, tenant: str, mailbox: str, name: str, request: Request,
               ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if name != CALENDAR and name not in FOLDERS:
            raise self._error(404, "ErrorInvalidIdMalformed", "Id is malformed.")
        collection = self._collection(tenant, mailbox, name)
        query = request.query
        token = query.get("$skiptoken") or query.get("$deltatoken")
        if token is not None:
            state = self.cursors.decode(token)
            if state is None or state.get("mb") != mailbox or state.get("c") != name:
                raise self._error(400, "ErrorInvalidUrlQuery", "The sync state is invalid for this request.")
            if state["g"] != collection.generation:
                raise self._error(410, "SyncStateNotFound", "The sync state generation is not found.")
            if "$deltatoken" in query:  # a new round: what changed after the stored position, up to now
                state = {**state, "full": False, "s": self._seq, "l": state["s"]}
        else:  # a full round: every item there now (its last change at or before `s`)
            state = {"mb": mailbox, "c": name, "g": collection.generation, "full": True, "s": self._seq, "l": 0,
                     **self._options(name, query)}
        size = _page_size(request.headers.get("Prefer", ""))
        candidates = sorted((seq, item_id) for item_id, seq in collection.changed.items()
                            if state["l"] < seq <= state["s"])
        full = bool(state["full"])
        value: list[dict[str, Any]] = []
        last = state["l"]
        for seq, item_id in candidates:
            if len(value) >= size:
                break
            last = seq
            entry = self._entry(collection, item_id, state, full)
            if entry is not None:
                value.append(entry)
        more = bool(candidates) and last < candidates[-1][0]
        path = (f"/v1.0/users/{mailbox}/calendarView/delta" if name == CALENDAR
                else f"/v1.0/users/{mailbox}/mailFolders/{name}/messages/delta")
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/v1.0/$metadata#Collection("
                                                  f"{'event' if name == CALENDAR else 'message'})", "value": value}
        if more:
            body["@odata.nextLink"] = (f"{self.base_url}{path}?$skiptoken="
                                       f"{quote(self.cursors.encode({**state, 'l': last}))}")
        else:
            body["@odata.deltaLink"] = f"{self.base_url}{path}?$deltatoken={quote(self.cursors.encode(state))}"
        return 200, body, {"Preference-Applied": f"odata.maxpagesize={size}"}

    def _options(self, name: str, query: dict[str, str]) -> dict[str, Any]:
        if name == CALENDAR:
            try:
                start, end = _parse_time(query["startDateTime"]), _parse_time(query["endDateTime"])
            except (KeyError, ValueError) as exc:
                raise self._error(400, "ErrorInvalidParameter", "This request requires a time window specified by "
                                  "the query string parameters StartDateTime and EndDateTime.") from exc
            return {"ws": start.isoformat(), "we": end.isoformat()}  # $select is not honoured: whole events
        options: dict[str, Any] = {}
        if "$select" in query:
            names = [n.strip() for n in query["$select"].split(",") if n.strip()]
            unknown = [n for n in names if n not in MESSAGE_PROPERTIES]
            if unknown:
                raise self._error(400, "RequestBroker--ParseUri", f"Could not find a property named '{unknown[0]}' "
                                  "on type 'microsoft.graph.message'.")
            options["sel"] = names
        if "$filter" in query:
            match = _FILTER.match(query["$filter"])
            if not match:
                raise self._error(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more "
                                  "invalid nodes.")
            options["f"] = [match.group(1), _parse_time(match.group(2)).isoformat()]
        return options

    def _entry(self, collection: _Collection, item_id: str, state: dict[str, Any], full: bool,
               ) -> dict[str, Any] | None:
        if item_id in collection.deleted:
            return None if full else {"id": item_id, "@removed": {"reason": "deleted"}}
        item = collection.items[item_id]
        if "ws" in state:
            start, end = _parse_time(item["start"]["dateTime"]), _parse_time(item["end"]["dateTime"])  # UTC here
            inside = start < datetime.fromisoformat(state["we"]) and end > datetime.fromisoformat(state["ws"])
            if not inside:
                return None if full else {"id": item_id, "@removed": {"reason": "deleted"}}
            return {"@odata.type": "#microsoft.graph.event", "@odata.etag": f'W/"{item["changeKey"]}"', **item}
        if "f" in state:
            op, bound = state["f"]
            received = _parse_time(item["receivedDateTime"])
            limit = datetime.fromisoformat(bound)
            if received < limit or (op == "gt" and received == limit):
                return None
        fields = state.get("sel")
        shown = item if fields is None else {k: v for k, v in item.items() if k == "id" or k in fields}
        return {"@odata.etag": f'W/"{item["changeKey"]}"', **shown}


def _select(row: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return dict(row)
    names = {n.strip() for n in select.split(",")}
    return {k: v for k, v in row.items() if k in names or k in ("id", "@odata.type")}


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(value))) if value else default
    except ValueError:
        return default


def _page_size(prefer: str) -> int:
    match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
    return max(1, int(match.group(1))) if match else DEFAULT_PAGE


__all__ = ["CALENDAR", "FOLDERS", "LocalGraph", "graph_time"]
