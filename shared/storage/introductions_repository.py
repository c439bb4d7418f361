"""Introducer choices and introduction requests in the tenant's partition (implements IntroductionRepository).

Rows: `introducer-choices` (one document: the choices colleagues made, by CRM user id), `intro-request|{id}` (a
request), and two index rows per request written in the same transaction, `intro-to|{introducer}|{id}` and
`intro-from|{requester}|{id}`, so that each side lists its own requests with one range query. Request ids begin
with an inverted time, so key order is newest first.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel, ConfigDict

from shared.domain.introductions import IntroducerChoice, IntroductionRequest
from shared.services.ports import Versioned
from shared.storage.documents import DocumentStore, decode, encode
from shared.storage.tables import Operation, Properties, TableStore
from shared.tenancy import TenantId

CHOICES_ROW = "introducer-choices"
REQUEST_PREFIX = "intro-request|"
_READERS = 8


class _Choices(BaseModel):
    model_config = ConfigDict(frozen=True)

    choices: dict[str, IntroducerChoice]


def _to(introducer_id: str, request_id: str = "") -> str:
    return f"intro-to|{introducer_id}|{request_id}"


def _from(requester_id: str, request_id: str = "") -> str:
    return f"intro-from|{requester_id}|{request_id}"


class TableIntroductions:
    def __init__(self, tables: TableStore) -> None:
        self._tables = tables
        self._documents = DocumentStore(tables)

    def choices(self, tenant_id: TenantId) -> Versioned[dict[str, IntroducerChoice]] | None:
        stored = self._documents.load(tenant_id, CHOICES_ROW, _Choices)
        return None if stored is None else Versioned(dict(stored.document.choices), stored.etag)

    def save_choices(self, tenant_id: TenantId, choices: dict[str, IntroducerChoice], etag: str | None) -> None:
        self._documents.save(tenant_id, CHOICES_ROW, _Choices(choices=choices), etag)

    def create(self, tenant_id: TenantId, request: IntroductionRequest) -> None:
        pointer: Properties = {"RequestId": request.id}
        self._tables.transact(tenant_id, [
            Operation("create", REQUEST_PREFIX + request.id, encode("introductionRequest", request)),
            Operation("create", _to(request.introducer_id, request.id), pointer),
            Operation("create", _from(request.requester_id, request.id), pointer),
        ])

    def get(self, tenant_id: TenantId, request_id: str) -> Versioned[IntroductionRequest] | None:
        return self._documents.load(tenant_id, REQUEST_PREFIX + request_id, IntroductionRequest)

    def replace(self, tenant_id: TenantId, request: IntroductionRequest, etag: str) -> None:
        self._documents.replace(tenant_id, REQUEST_PREFIX + request.id, request, etag)

    def page(self, tenant_id: TenantId, *, introducer_id: str | None = None, requester_id: str | None = None,
             page_size: int, continuation: str | None) -> tuple[list[IntroductionRequest], str | None]:
        if (introducer_id is None) == (requester_id is None):
            raise TypeError("page the requests of one introducer or of one requester")
        prefix = _to(introducer_id) if introducer_id is not None else _from(requester_id or "")
        page = self._tables.query_partition(tenant_id, row_key_from=prefix, row_key_before=prefix[:-1] + "}",
                                            page_size=page_size, continuation=continuation)
        ids = [str(e.properties["RequestId"]) for e in page.entities]
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            found = list(pool.map(lambda rid: self._tables.get(tenant_id, REQUEST_PREFIX + rid), ids))
        return [decode(e, IntroductionRequest) for e in found if e is not None], page.continuation
