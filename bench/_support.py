"""Shared set-up of the benchmarks: an Azurite of their own and a table adapter that counts round trips."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from typing import Any

from shared import bootstrap
from shared.clock import Clock
from shared.config import AppConfig
from shared.storage.tables import TableStore


class CountingTableStore(TableStore):
    """The real adapter, counting each call that goes to the service (one call = one round trip)."""

    def __init__(self, inner: TableStore) -> None:
        super().__init__(inner._service_factory, inner.table_name, inner._direct)
        self.calls: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._count_lock:
            self.calls[name] += 1

    def _new_sibling(self, table_name: str) -> TableStore:
        sibling = CountingTableStore(TableStore(self._service_factory, table_name, self._direct))
        sibling.calls, sibling._count_lock = self.calls, self._count_lock  # one count for every table
        return sibling

    def reset(self) -> None:
        with self._count_lock:
            self.calls.clear()

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def get(self, *args: Any, **kwargs: Any) -> Any:
        self._count("get")
        return super().get(*args, **kwargs)

    def create(self, *args: Any, **kwargs: Any) -> Any:
        self._count("create")
        return super().create(*args, **kwargs)

    def replace(self, *args: Any, **kwargs: Any) -> Any:
        self._count("replace")
        return super().replace(*args, **kwargs)

    def merge(self, *args: Any, **kwargs: Any) -> Any:
        self._count("merge")
        return super().merge(*args, **kwargs)

    def upsert(self, *args: Any, **kwargs: Any) -> Any:
        self._count("upsert")
        return super().upsert(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        self._count("delete")
        return super().delete(*args, **kwargs)

    def query_partition(self, *args: Any, **kwargs: Any) -> Any:
        self._count("query")
        return super().query_partition(*args, **kwargs)

    def transact(self, *args: Any, **kwargs: Any) -> Any:
        self._count("transaction")
        return super().transact(*args, **kwargs)


def services_for(connection_string: str, table: str, clock: Clock, **settings: Any) -> tuple[bootstrap.Container,
                                                                                               CountingTableStore]:
    values: dict[str, Any] = {"authority_host": "https://127.0.0.1:9", "api_audiences": ("api://bench",),
                              "ca_bundle": None, **settings}
    base = AppConfig(storage_connection=connection_string, tables_endpoint=None, state_table=table, **values)
    built = bootstrap.build(base, clock=clock)
    counting = CountingTableStore(built.tables)
    return dataclasses.replace(built, tables=counting), counting
