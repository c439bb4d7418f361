"""The tenants' directories (their records, as the insights link activities to them) this process loaded last.

A computation needs the tenant's whole directory; loading it costs a read of every record, however little changed.
An entry is reused only while the repository's records version is the one read before the records were loaded:
any write of records that commits later changes it. Bounded by the records the entries hold; one cache per store
(the container holds it).
"""

from __future__ import annotations

from collections.abc import Callable

from shared.caching import BoundedCache
from shared.domain.insights.directory import Directory
from shared.tenancy import TenantId


def _size(directory: Directory) -> int:
    return (len(directory.users) + len(directory.accounts) + len(directory.contacts) + len(directory.leads)
            + len(directory.opportunities) + 1)


class DirectoryCache:
    def __init__(self, max_records: int = 200_000) -> None:
        self._kept: BoundedCache[TenantId, tuple[str, Directory]] = BoundedCache(max_records, max_records // 4)

    def get(self, tenant_id: TenantId, version: str | None, load: Callable[[], Directory]) -> Directory:
        """The directory as `load` gives it now: the one kept, if kept at this version (a Directory is never
        changed once built, so threads share it)."""
        found = self._kept.peek(tenant_id) if version is not None else None
        if found is not None and found[0] == version:
            return found[1]
        directory = load()
        if version is not None:  # (None: versions not kept yet)
            self._kept.put(tenant_id, (version, directory), _size(directory))
        return directory
