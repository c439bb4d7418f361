"""Typed documents in the tenant's partition: a pydantic model in, the same model out, with its ETag.

A document is stored as JSON split over string properties (Doc0, Doc1, ...), because one string property
holds at most 64 KiB while an entity may hold 1 MiB. `Kind` and `SchemaVersion` make rows self-describing.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.services.ports import Versioned
from shared.storage.tables import (
    MAX_STRING_PROPERTY_CHARS,
    Operation,
    Properties,
    StoredEntity,
    TableStore,
    utf16_units,
)
from shared.tenancy import TenantId

M = TypeVar("M", bound=BaseModel)

# The service counts an entity's strings in UTF-16: 15 full properties are 960 KiB, below the 1 MiB entity limit
# with room for the keys and the other properties.
MAX_DOCUMENT_CHUNKS = 15


class DocumentTooLarge(ValueError):
    """A document that no entity can hold."""


class CorruptDocument(Exception):
    """A stored row does not decode into its model (manual edit, bug, or an unknown schema)."""


def encode(kind: str, document: BaseModel, schema_version: int = 1) -> Properties:
    payload = document.model_dump_json(by_alias=True)
    chunks = _chunks(payload)
    if len(chunks) > MAX_DOCUMENT_CHUNKS:
        raise DocumentTooLarge(f"{kind} document is too large for one entity")
    properties: Properties = {"Kind": kind, "SchemaVersion": schema_version, "DocChunks": len(chunks)}
    for index, chunk in enumerate(chunks or [""]):
        properties[f"Doc{index}"] = chunk
    return properties


def split_text(payload: str) -> list[str]:
    """Any text cut into pieces that string properties can hold."""
    return _chunks(payload)


def _chunks(payload: str) -> list[str]:
    """Pieces of at most MAX_STRING_PROPERTY_CHARS UTF-16 units, never splitting a surrogate pair."""
    size = MAX_STRING_PROPERTY_CHARS
    if utf16_units(payload) == len(payload):
        return [payload[i : i + size] for i in range(0, len(payload), size)]
    chunks, start, units = [], 0, 0
    for index, char in enumerate(payload):
        width = 2 if ord(char) > 0xFFFF else 1
        if units + width > size:
            chunks.append(payload[start:index])
            start, units = index, 0
        units += width
    chunks.append(payload[start:])
    return chunks


def payload(properties: Properties) -> str:
    """The JSON text of an `encode`d document."""
    count = int(properties.get("DocChunks", 1))  # type: ignore[arg-type]
    return "".join(str(properties[f"Doc{i}"]) for i in range(count))


def decode(entity: StoredEntity, model: type[M]) -> M:
    try:
        return model.model_validate_json(payload(entity.properties), context={"stored": True})
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise CorruptDocument(f"{entity.partition_key}/{entity.row_key} does not decode as {model.__name__}") from exc


class DocumentStore:
    """Reads and writes typed documents keyed by (tenant, row key) with optimistic concurrency."""

    def __init__(self, table: TableStore) -> None:
        self.table = table

    def load(self, tenant_id: TenantId, row_key: str, model: type[M]) -> Versioned[M] | None:
        entity = self.table.get(tenant_id, row_key)
        if entity is None:
            return None
        return Versioned(decode(entity, model), entity.etag)

    def create(self, tenant_id: TenantId, row_key: str, document: BaseModel) -> str:
        return self.table.create(tenant_id, row_key, encode(row_key, document))

    def replace(self, tenant_id: TenantId, row_key: str, document: BaseModel, etag: str) -> str:
        return self.table.replace(tenant_id, row_key, encode(row_key, document), etag)

    def save(self, tenant_id: TenantId, row_key: str, document: BaseModel, etag: str | None) -> str:
        """Create when `etag` is None (fails if someone created it meanwhile), else conditional replace."""
        if etag is None:
            return self.create(tenant_id, row_key, document)
        return self.replace(tenant_id, row_key, document, etag)

    @staticmethod
    def operation(row_key: str, document: BaseModel, etag: str | None) -> Operation:
        """The same write as `save`, as one step of a transaction in the tenant's partition."""
        properties = encode(row_key, document)
        if etag is None:
            return Operation("create", row_key, properties)
        return Operation("replace", row_key, properties, etag)
