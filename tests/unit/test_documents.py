"""How a document is cut into string properties: by the service's measure (UTF-16 units), within one entity."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from shared.storage.documents import MAX_DOCUMENT_CHUNKS, DocumentTooLarge, _chunks, encode
from shared.storage.tables import MAX_STRING_PROPERTY_CHARS, Operation, transactions, utf16_units


class Note(BaseModel):
    text: str


def test_characters_beyond_the_bmp_count_twice() -> None:
    payload = chr(0x1F600) * 20_000 + "a" * 20_000  # 60,000 units in 40,000 characters
    chunks = _chunks(payload)
    assert "".join(chunks) == payload
    assert all(utf16_units(c) <= MAX_STRING_PROPERTY_CHARS for c in chunks)
    assert len(chunks) == 2
    assert [len(c) for c in _chunks("a" * 70_000)] == [32_768, 32_768, 4_464]


def test_a_document_no_entity_can_hold_is_refused() -> None:
    fits = "a" * (MAX_DOCUMENT_CHUNKS * MAX_STRING_PROPERTY_CHARS - 100)
    assert encode("note", Note(text=fits))["DocChunks"] == MAX_DOCUMENT_CHUNKS
    with pytest.raises(DocumentTooLarge):
        encode("note", Note(text=chr(0x1F600) * (len(fits) // 2 + 100)))


def test_transactions_are_cut_by_count_and_by_payload_size() -> None:
    small = [Operation("create", f"s{i}", {"Doc0": "x"}) for i in range(250)]
    assert [len(t) for t in transactions(small)] == [100, 100, 50]
    heavy = [Operation("create", f"h{i}", {"Doc0": '"' * 30_000}) for i in range(100)]  # escaped: 60 KB each
    sizes = [len(t) for t in transactions(heavy)]
    assert sum(sizes) == 100
    assert len(sizes) == 2


def test_a_row_stored_before_times_needed_a_zone_still_reads_as_utc() -> None:
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from shared.domain.records import Lead
    from shared.storage.documents import decode
    from shared.storage.tables import StoredEntity

    naive = '{"id":"l-1","version":1,"ownerId":"u-1","createdOn":"2026-01-01T10:00:00"}'
    stored = StoredEntity("t", "leads|l-1", {"DocChunks": 1, "Doc0": naive}, "etag")
    assert decode(stored, Lead).created_on == datetime(2026, 1, 1, 10, tzinfo=UTC)
    with pytest.raises(ValidationError, match="needs its zone"):
        Lead.model_validate_json(naive)  # what a connector sends now must say its zone
