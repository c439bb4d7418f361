"""A small Dataverse Web API client for the CRM connector: change tracking one page per call.

`changes()` starts a round with `Prefer: odata.track-changes` (every row, then an `@odata.deltaLink` on the last
page) or replays a stored next/delta link; new and updated rows come back as `rows` (only the selected
columns, with lookups' logical names), deletions as `deleted_ids`. A refused change token is
`ChangeTokenExpired`: drop the link and start a full round. `page()` reads a collection that cannot be tracked
(a role's members). Errors and retries as for Graph (shared/connectors/_http.py).

`validate_environment_url()` is the only way an environment URL given by an admin reaches a request: https on a
Dynamics organisation host, or, when development allows it, the local stand-in on loopback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from shared.connectors._http import (
    ChangeTokenExpired,
    RequestRejected,
    RetryPolicy,
    SourceError,
    TokenProvider,
    Transport,
    same_origin,
)
from shared.domain.crm_environment import InvalidEnvironmentUrl, validate_environment_url
from shared.domain.source_mapping import LOOKUP
from shared.services.ports import ChangePage

API_PATH = "/api/data/v9.2"
PAGE_SIZE = 5000
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_PATH = re.compile(r"^[a-z_][a-z0-9_]*(\([0-9a-f-]{36}\)/[a-z_][a-z0-9_]*)?$")


def _classify(status: int, code: str | None, message: str) -> SourceError | None:
    text = message.lower()
    if status in (400, 410) and "expired" in text and ("token" in text or "version" in text):
        return ChangeTokenExpired("the change token was refused: start a full round", status=status, code=code)
    return None


@dataclass
class DataverseClient:
    tokens: TokenProvider
    page_size: int = PAGE_SIZE
    allow_loopback: bool = False
    session_factory: Callable[[], Any] | None = None
    sleep: Callable[[float], None] | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 60.0
    _transport: Transport = field(init=False, repr=False)

    def __post_init__(self) -> None:
        kwargs: dict[str, Any] = {} if self.sleep is None else {"sleep": self.sleep}
        self._transport = Transport(self.tokens, session_factory=self.session_factory, retry=self.retry,
                                    timeout=self.timeout, classify=_classify, **kwargs)

    def _headers(self, track: bool) -> dict[str, str]:
        prefer = [f"odata.maxpagesize={self.page_size}",
                  f'odata.include-annotations="{LOOKUP.lstrip("@")}"']
        if track:
            prefer.insert(0, "odata.track-changes")
        return {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0",
                "Prefer": ",".join(prefer)}

    def _get(self, tenant: str, environment_url: str, url: str, track: bool) -> dict[str, Any]:
        env = validate_environment_url(environment_url, allow_loopback=self.allow_loopback)
        if not same_origin(url, env) or not urlsplit(url).path.startswith(urlsplit(env).path + API_PATH + "/"):
            raise RequestRejected("a stored link points outside the environment", code="foreignLink")
        return self._transport.get(tenant, f"{env}/.default", url, self._headers(track))

    def _first_url(self, environment_url: str, path: str, select: Sequence[str]) -> str:
        if not _PATH.match(path) or not select or not all(_NAME.match(c) for c in select):
            raise ValueError("an entity set (or role navigation) and column names, lower case")
        env = validate_environment_url(environment_url, allow_loopback=self.allow_loopback)
        return f"{env}{API_PATH}/{path}?$select={quote(','.join(select), safe=',')}"

    def changes(self, tenant: str, environment_url: str, entity_set: str, select: Sequence[str],
                link: str | None) -> ChangePage:
        """One page of a change-tracking round over `entity_set` (`link` None starts a full one)."""
        url = link or self._first_url(environment_url, entity_set, select)
        body = self._get(tenant, environment_url, url, track=True)
        rows: list[dict[str, Any]] = []
        deleted: list[str] = []
        for item in body.get("value") or []:
            if not isinstance(item, dict):
                continue
            if str(item.get("@odata.context", "")).endswith("/$deletedEntity") or item.get("reason") == "deleted":
                if isinstance(item.get("id"), str):
                    deleted.append(item["id"].lower())
                continue
            rows.append({k: v for k, v in item.items() if k in select or
                         (k.endswith(LOOKUP) and k[:-len(LOOKUP)] in select)})
        next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
        if not isinstance(next_link, str) and not isinstance(delta_link, str):
            raise RequestRejected("a tracked page without a next or delta link", code="noLink")
        return ChangePage(rows, deleted, next_link if isinstance(next_link, str) else None,
                          None if isinstance(next_link, str) else delta_link)

    def page(self, tenant: str, environment_url: str, path: str, select: Sequence[str],
             link: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a collection read without change tracking (e.g. `roles({id})/systemuserroles_association`)
        and the next link, if any."""
        url = link or self._first_url(environment_url, path, select)
        body = self._get(tenant, environment_url, url, track=False)
        rows = [{k: v for k, v in item.items() if k in select} for item in body.get("value") or []
                if isinstance(item, dict)]
        next_link = body.get("@odata.nextLink")
        return rows, next_link if isinstance(next_link, str) else None


__all__ = ["ChangePage", "DataverseClient", "InvalidEnvironmentUrl", "validate_environment_url"]
