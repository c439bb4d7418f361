"""The ledgers' summary rows on Azurite: an edit writes the groups it changed (a merge on the summary's ETag), and
what is read back is what a whole write of the same state gives."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from devhost.azurite import Azurite
from shared.errors import ConcurrencyConflict
from shared.services.ports import LEDGER_SUMMARY, LedgerState
from shared.storage.ledger_repository import Key, TableLedgers
from shared.storage.tables import Operation, TableStore
from shared.tenancy import TenantId

pytestmark = pytest.mark.integration

KEY: Key = ("account", "acc-1")
OTHER: Key = ("account", "acc-2")
RECENT = "2026Q3"


class _Recording:
    """The store, keeping each transaction's operations."""

    def __init__(self, store: TableStore) -> None:
        self._store = store
        self.sent: list[Operation] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def transact(self, partition_key: str, operations: Sequence[Operation]) -> Any:
        self.sent.extend(operations)
        return self._store.transact(partition_key, operations)


@pytest.fixture
def store(azurite: Azurite) -> TableStore:
    return TableStore.from_connection_string(azurite.connection_string, f"L{uuid.uuid4().hex[:20]}", direct=True)


def _partial(size: int, tag: str) -> dict[str, Any]:
    return {"n": size, "who": {f"{tag}{i}": [i, i * 2] for i in range(size)}}


def _state() -> LedgerState:
    return LedgerState(
        months={"2026Q3": [[1, {"k": "a1"}]], "2026Q4": [[1, {"k": "a2"}]]},
        partials={"2025Q1": _partial(3, "x"), "2025Q4": _partial(2, "y"), "2026Q3": _partial(1, "z"),
                  "2026Q4": _partial(1, "w")},
        etags={}, base={"o": _partial(2, "b")}, horizon="2024Q4",
        settled={"o": _partial(4, "s")}, settled_from=RECENT)


def _seen(state: LedgerState) -> tuple[Any, ...]:
    return (state.partials, state.base, state.horizon, state.settled, state.settled_from,
            {m: e for m, e in state.months.items() if e})


def _summary_writes(recording: _Recording) -> list[Operation]:
    return [o for o in recording.sent if o.row_key.endswith("|" + LEDGER_SUMMARY)]


def test_an_edit_of_one_period_merges_only_its_partial_and_reads_back_as_a_whole_write(
        store: TableStore, tenant_id: TenantId) -> None:
    recording = _Recording(store)
    ledgers = TableLedgers(recording)  # type: ignore[arg-type]
    state = _state()
    ledgers.write(tenant_id, KEY, state, set(state.months), RECENT)
    [first] = _summary_writes(recording)
    assert first.kind == "create"
    recording.sent.clear()

    read = ledgers.read(tenant_id, KEY, RECENT, ["2026Q4"])
    assert _seen(read) == _seen(state)
    read.months["2026Q4"] = [[1, {"k": "a2"}], [1, {"k": "a3"}]]
    read.partials["2026Q4"] = _partial(40, "w")  # (an edit replaces what it changes)
    ledgers.write(tenant_id, KEY, read, {"2026Q4"}, RECENT)
    [merge] = _summary_writes(recording)
    assert merge.kind == "merge"
    assert set(merge.properties) == {"P2026Q4_Chunks", "P2026Q4_0"}

    again = ledgers.read(tenant_id, KEY, RECENT, ["2026Q4"])
    alone = LedgerState(months=read.months, partials=read.partials, base=read.base, horizon=read.horizon,
                        settled=read.settled, settled_from=read.settled_from)
    ledgers.write(tenant_id, OTHER, alone, set(alone.months), RECENT)
    assert _seen(again) == _seen(ledgers.read(tenant_id, OTHER, RECENT, ["2026Q4"]))
    assert again.partials["2026Q4"] == _partial(40, "w")


def test_groups_that_shrink_or_go_leave_nothing_behind_and_a_new_settling_writes_its_group(
        store: TableStore, tenant_id: TenantId) -> None:
    ledgers = TableLedgers(store)
    state = _state()
    state.partials["2025Q1"] = _partial(4_000, "big")  # more than one property holds
    ledgers.write(tenant_id, KEY, state, set(state.months), RECENT)
    read = ledgers.read(tenant_id, KEY, RECENT)
    assert read.partials["2025Q1"] == _partial(4_000, "big")
    read.partials["2025Q1"] = _partial(1, "small")
    del read.partials["2025Q4"]
    read.settled = {"o": _partial(1, "t")}
    ledgers.write(tenant_id, KEY, read, set(), RECENT)
    row = store.get(tenant_id, "lg|account|acc-1|" + LEDGER_SUMMARY)
    assert row is not None
    assert (row.properties["P2025Q1_Chunks"], row.properties["P2025Q1_1"]) == (1, "")
    assert (row.properties["P2025Q4_Chunks"], row.properties["P2025Q4_0"]) == (0, "")
    again = ledgers.read(tenant_id, KEY, RECENT)
    assert _seen(again) == _seen(read)
    assert "2025Q4" not in again.partials


def test_an_edit_from_a_summary_another_worker_changed_meanwhile_is_a_conflict(
        store: TableStore, tenant_id: TenantId) -> None:
    ledgers = TableLedgers(store)
    state = _state()
    ledgers.write(tenant_id, KEY, state, set(state.months), RECENT)
    mine, theirs = (ledgers.read(tenant_id, KEY, RECENT, ["2026Q4"]) for _ in range(2))
    theirs.partials["2025Q1"] = _partial(5, "v")
    ledgers.write(tenant_id, KEY, theirs, set(), RECENT)  # (their edit touches none of my rows but the summary)
    mine.partials["2026Q4"] = _partial(7, "m")
    with pytest.raises(ConcurrencyConflict):
        ledgers.write(tenant_id, KEY, mine, {"2026Q4"}, RECENT)
    assert ledgers.read(tenant_id, KEY, RECENT).partials["2025Q1"] == _partial(5, "v")


def test_a_summary_written_as_before_is_read_and_written_whole_again(store: TableStore, tenant_id: TenantId) -> None:
    import json

    state = _state()
    old = json.dumps({"h": state.horizon, "b": state.base, "p": state.partials})
    settled = json.dumps({"f": state.settled_from, "s": state.settled})
    store.upsert(tenant_id, "lg|account|acc-1|" + LEDGER_SUMMARY,
                 {"Period": LEDGER_SUMMARY, "PChunks": 1, "P0": old, "DChunks": 1, "D0": settled})
    recording = _Recording(store)
    ledgers = TableLedgers(recording)  # type: ignore[arg-type]
    read = ledgers.read(tenant_id, KEY, RECENT)
    assert (read.partials, read.base, read.horizon, read.settled) == (
        state.partials, state.base, state.horizon, state.settled)
    read.partials["2026Q4"] = _partial(2, "n")
    ledgers.write(tenant_id, KEY, read, set(), RECENT)
    [whole] = _summary_writes(recording)
    assert whole.kind == "replace"
    assert ledgers.read(tenant_id, KEY, RECENT).partials == read.partials
