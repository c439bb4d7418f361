"""The directories a worker loaded last: reused only at the same records version, bounded by records."""

from __future__ import annotations

from shared.domain.insights.directory import Directory
from shared.domain.records import Contact
from shared.services.directory_cache import DirectoryCache
from shared.tenancy import TenantId

T = TenantId("t-1")


def _directory(contacts: int) -> Directory:
    return Directory.of(contacts=[Contact(id=f"c{i}", version=1) for i in range(contacts)])


def test_a_directory_is_reused_only_at_the_version_it_was_loaded_at() -> None:
    cache, loads = DirectoryCache(), []

    def load() -> Directory:
        loads.append(1)
        return _directory(3)

    first = cache.get(T, "v1", load)
    assert cache.get(T, "v1", load) is first
    assert cache.get(T, "v2", load) is not first  # a write of records committed since
    assert cache.get(TenantId("t-2"), "v2", load) is not first
    assert cache.get(T, None, load) is not first  # no version kept yet: never reused
    assert len(loads) == 4


def test_the_cache_holds_a_bounded_number_of_records() -> None:
    cache = DirectoryCache(max_records=40)
    kept = [cache.get(TenantId(f"t{n}"), "v", lambda: _directory(9)) for n in range(5)]  # 10 records each
    assert cache.get(TenantId("t0"), "v", lambda: _directory(9)) is not kept[0]  # the oldest made room
    assert cache.get(TenantId("t4"), "v", lambda: _directory(9)) is kept[4]
    big = cache.get(TenantId("big"), "v", lambda: _directory(20))  # over a quarter of the bound: not kept
    assert cache.get(TenantId("big"), "v", lambda: _directory(20)) is not big
