"""The tenants' directories (their records, as the insights link activities to them) this process loaded last.

A computation needs the tenant's whole directory; loading it costs a read of every record, however little changed.
An entry is reused only while the repository's records version is the one read before the records were loaded:
any write of records that commits later changes it. Bounded by the records the entries hold; one cache per store
(the container holds it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from shared.domain.insights.directory import Directory
from shared.tenancy import TenantId


def _size(directory: Directory) -> int:
    return (len(directory.users) + len(directory.accounts) + len(directory.contacts) + len(directory.leads)
            + len(directory.opportunities) + 1)


class DirectoryCache:
    def __init__(self, max_records: int = 200_000) -> None:
        self.max_records = max_records
        self._entries: OrderedDict[TenantId, tuple[str, Directory, int]] = OrderedDict()
        self._records = 0
        self._lock = threading.Lock()

    def get(self, tenant_id: TenantId, version: str | None, load: Callable[[], Directory]) -> Directory:
        """The directory as `load` gives it now: the one kept, if kept at this version (a Directory is never
        changed once built, so threads share it)."""
        key = tenant_id
        if version is not None:
            with self._lock:
                found = self._entries.get(key)
                if found is not None and found[0] == version:
                    self._entries.move_to_end(key)
                    return found[1]
        directory = load()
        size = _size(directory)
        if version is None or size > self.max_records // 4:
            return directory  # versions not kept yet, or a tenant too large to crowd out the others
        with self._lock:
            old = self._entries.pop(key, None)
            self._records += size - (old[2] if old else 0)
            self._entries[key] = (version, directory, size)
            while self._records > self.max_records:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self._records -= dropped
        return directory
