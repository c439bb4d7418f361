"""The cache of the aggregates a worker wrote last: bounded, taken out while in use, recent quarters only."""

from __future__ import annotations

from shared.services.ports import LEDGER_ARCHIVE, LEDGER_SUMMARY, LedgerState
from shared.storage.ledger_repository import LedgerCache
from shared.tenancy import TenantId

T = TenantId("t-1")


def _state(facts: int) -> LedgerState:
    return LedgerState(months={"2025Q1": [[1, ["old"]]], "2026Q4": [[1, [f"f{i}"]] for i in range(facts)]},
                       etags={"2025Q1": "e1", "2026Q4": "e2", LEDGER_SUMMARY: "e3", LEDGER_ARCHIVE: "e4"},
                       archive={"2023Q1": {}})


def test_an_entry_keeps_the_recent_quarters_and_is_taken_out_while_in_use() -> None:
    cache = LedgerCache(max_facts=1_000)
    cache.keep("T", T, ("account", "a"), _state(3), recent_from="2026Q3")
    taken = cache.take(("T", T, ("account", "a")))
    assert taken is not None
    assert (list(taken.months), taken.archive) == (["2026Q4"], None)
    assert taken.etags == {"2026Q4": "e2", LEDGER_SUMMARY: "e3"}
    assert cache.take(("T", T, ("account", "a"))) is None  # a second user reads it from storage
    assert cache.take(("Other", T, ("account", "a"))) is None


def test_the_cache_holds_a_bounded_number_of_facts_least_recently_kept_first_out() -> None:
    cache = LedgerCache(max_facts=100)
    for n in range(10):
        cache.keep("T", T, ("contact", f"c{n}"), _state(9), recent_from="2026Q3")  # 10 facts each
    cache.keep("T", T, ("contact", "busy"), _state(50), recent_from="2026Q3")  # over a tenth: not kept
    assert cache.take(("T", T, ("contact", "busy"))) is None
    cache.keep("T", T, ("contact", "c10"), _state(9), recent_from="2026Q3")
    assert cache.take(("T", T, ("contact", "c0"))) is None  # the oldest made room
    assert all(cache.take(("T", T, ("contact", f"c{n}"))) is not None for n in range(1, 11))


def test_a_rebuild_forgets_the_tenant() -> None:
    cache = LedgerCache()
    cache.keep("T", T, ("lead", "l"), _state(1), recent_from="2026Q3")
    cache.keep("T", TenantId("t-2"), ("lead", "l"), _state(1), recent_from="2026Q3")
    cache.forget(lambda entry: entry[:2] == ("T", T))
    assert cache.take(("T", T, ("lead", "l"))) is None
    assert cache.take(("T", TenantId("t-2"), ("lead", "l"))) is not None
