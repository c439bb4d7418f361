"""A small Microsoft Graph client for the Exchange connector: one page per call, so that a round can be cut into
bounded queue messages (each stores the link it ends on and the next one replays it unchanged).

- `mail_delta`: a folder's messages (`inbox`, `sentitems`), METADATA ONLY: the first call asks for exactly
  `MESSAGE_FIELDS` (never subject, body or preview) and `receivedDateTime ge since` for the back-fill; later
  calls replay the stored `@odata.nextLink` / `@odata.deltaLink`.
- `calendar_delta`: the primary calendar's events in a window. Graph returns whole events there (bodies too,
  whatever is asked), so each page is cut down to `EVENT_FIELDS` before it leaves this module.
- `transitive_member_ids`, `users`: the directory.

At most 4 requests run at once per mailbox (Outlook answers a fifth with 429 MailboxConcurrency). 429/503 are
retried within a small budget honouring `Retry-After`, then raised as `Throttled` / `SourceUnavailable` with the
wait, so the caller can delay its queue message instead of sleeping. A 410 (`SyncStateNotFound`) is
`SyncStateExpired`: start a full round. 401/403 that a fresh token does not cure is `AccessDenied`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from shared.connectors._http import (
    RequestRejected,
    RetryPolicy,
    SourceError,
    SyncStateExpired,
    TokenProvider,
    Transport,
    same_origin,
)
from shared.domain.source_mapping import strip_event, strip_message
from shared.services.ports import DeltaPage

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GRAPH_URL = "https://graph.microsoft.com"
FOLDERS = ("inbox", "sentitems")
MESSAGE_FIELDS = ("id", "internetMessageId", "conversationId", "from", "sender", "toRecipients", "ccRecipients",
                  "sentDateTime", "receivedDateTime", "isDraft", "lastModifiedDateTime", "parentFolderId")
MAILBOX_CONCURRENCY = 4
PAGE_SIZE = 100


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_link: str | None


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("a time needs its zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _classify(status: int, code: str | None, message: str) -> SourceError | None:
    if status == 410 or code in ("SyncStateNotFound", "SyncStateInvalid", "resyncRequired"):
        return SyncStateExpired("the delta state is gone: start a full round", status=status, code=code)
    return None


@dataclass
class GraphClient:
    tokens: TokenProvider
    base_url: str = GRAPH_URL
    page_size: int = PAGE_SIZE
    session_factory: Callable[[], Any] | None = None
    sleep: Callable[[float], None] | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    _transport: Transport = field(init=False, repr=False)
    _semaphores: weakref.WeakValueDictionary[tuple[str, str], threading.BoundedSemaphore] = field(
        default_factory=weakref.WeakValueDictionary, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        kwargs: dict[str, Any] = {} if self.sleep is None else {"sleep": self.sleep}
        self._transport = Transport(self.tokens, session_factory=self.session_factory, retry=self.retry,
                                    timeout=self.timeout, classify=_classify, **kwargs)

    # -- plumbing -------------------------------------------------------------------------------------

    def _semaphore(self, tenant: str, mailbox_id: str) -> threading.BoundedSemaphore:
        with self._lock:
            key = (tenant, mailbox_id.lower())
            semaphore = self._semaphores.get(key)
            if semaphore is None:
                semaphore = threading.BoundedSemaphore(MAILBOX_CONCURRENCY)
                self._semaphores[key] = semaphore
            return semaphore

    def _get(self, tenant: str, url: str, *, mailbox_id: str | None = None, paged: bool = True) -> dict[str, Any]:
        if not same_origin(url, self.base_url):
            raise RequestRejected("a stored link points outside Microsoft Graph", code="foreignLink")
        headers = {"Accept": "application/json"}
        if paged:
            headers["Prefer"] = f"odata.maxpagesize={self.page_size}"
        guard = None
        if mailbox_id is not None:
            semaphore = self._semaphore(tenant, mailbox_id)  # held by this frame while the call runs

            @contextmanager
            def hold() -> Iterator[None]:
                with semaphore:
                    yield

            guard = hold
        return self._transport.get(tenant, GRAPH_SCOPE, url, headers, guard)

    def _delta(self, tenant: str, mailbox_id: str, url: str, strip: Callable[[dict[str, Any]], dict[str, Any]],
               ) -> DeltaPage:
        body = self._get(tenant, url, mailbox_id=mailbox_id)
        items: list[dict[str, Any]] = []
        removed: list[str] = []
        for raw in body.get("value") or []:
            if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
                continue
            if "@removed" in raw:
                removed.append(raw["id"])
            else:
                items.append(strip(raw))  # privacy first: nothing but metadata leaves this call
        next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
        if not isinstance(next_link, str) and not isinstance(delta_link, str):
            raise RequestRejected("a delta page without a next or delta link", code="noLink")
        return DeltaPage(items, removed, next_link if isinstance(next_link, str) else None,
                         None if isinstance(next_link, str) else delta_link)

    # -- mail and calendar ----------------------------------------------------------------------------

    def mail_delta(self, tenant: str, mailbox_id: str, folder: str, link: str | None, *,
                   since: datetime) -> DeltaPage:
        """One page of a folder's delta round. `link` None starts a full round (messages received since
        `since`); otherwise the stored next or delta link, replayed unchanged."""
        if folder not in FOLDERS:
            raise ValueError(f"folder must be one of {FOLDERS}")
        if link is None:
            query = urlencode({"$select": ",".join(MESSAGE_FIELDS),
                               "$filter": f"receivedDateTime ge {_iso(since)}"}, quote_via=quote, safe=",$")
            link = f"{self.base_url}/v1.0/users/{quote(mailbox_id, safe='')}/mailFolders/{folder}/messages/delta?" \
                   f"{query}"
        return self._delta(tenant, mailbox_id, link, strip_message)

    def calendar_delta(self, tenant: str, mailbox_id: str, link: str | None, *,
                       window: tuple[datetime, datetime]) -> DeltaPage:
        """One page of the calendar's delta round over `window` (fixed by the first call: a later window needs a
        new round). Removals include events changed outside the window, as Graph reports them."""
        if link is None:
            start, end = window
            if not start < end:
                raise ValueError("the window must end after it starts")
            query = urlencode({"startDateTime": _iso(start), "endDateTime": _iso(end)}, quote_via=quote)
            link = f"{self.base_url}/v1.0/users/{quote(mailbox_id, safe='')}/calendarView/delta?{query}"
        return self._delta(tenant, mailbox_id, link, strip_event)

    # -- directory ------------------------------------------------------------------------------------

    def transitive_member_ids(self, tenant: str, group_id: str) -> set[str]:
        """Ids of the users in a group, nested groups included (every page is read: groups are small next to
        mailboxes; a very large group costs one call per 999 members)."""
        url: str | None = (f"{self.base_url}/v1.0/groups/{quote(group_id, safe='')}/transitiveMembers?"
                           "$select=id&$top=999")
        members: set[str] = set()
        while url:
            body = self._get(tenant, url, paged=False)
            for item in body.get("value") or []:
                if isinstance(item, dict) and item.get("@odata.type") == "#microsoft.graph.user" \
                        and isinstance(item.get("id"), str):
                    members.add(item["id"])
            next_link = body.get("@odata.nextLink")
            url = next_link if isinstance(next_link, str) else None
        return members

    def users(self, tenant: str, link: str | None = None) -> Page:
        """One page of the tenant's users (id, mail, userPrincipalName, accountEnabled, displayName)."""
        url = link or (f"{self.base_url}/v1.0/users?$select=id,mail,userPrincipalName,accountEnabled,displayName"
                       "&$top=999")
        body = self._get(tenant, url, paged=False)
        keep = ("id", "mail", "userPrincipalName", "accountEnabled", "displayName")
        items = [{k: v for k, v in item.items() if k in keep} for item in body.get("value") or []
                 if isinstance(item, dict)]
        next_link = body.get("@odata.nextLink")
        return Page(items, next_link if isinstance(next_link, str) else None)


__all__ = ["FOLDERS", "GRAPH_SCOPE", "MESSAGE_FIELDS", "DeltaPage", "GraphClient", "Page"]
