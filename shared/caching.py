"""A process's bounded memory of what it read or wrote last (the workers' caches of aggregates, insights and
directories build on it)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """Entries with a weight each, least recently kept first out once their weights pass `capacity`; an entry
    weighing more than `largest` (a tenth of it, unless said) is not kept: it would crowd out the others.
    Thread-safe."""

    def __init__(self, capacity: int, largest: int | None = None) -> None:
        self.capacity = capacity
        self.largest = capacity // 10 if largest is None else largest
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, key: K) -> V | None:
        """The entry, taken out (whoever uses it puts back what it becomes)."""
        with self._lock:
            found = self._entries.pop(key, None)
            if found is None:
                return None
            self._weight -= found[1]
            return found[0]

    def peek(self, key: K) -> V | None:
        """The entry, left in (for values nobody changes)."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V, weight: int = 1) -> None:
        if weight > self.largest:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            self._weight += weight - (old[1] if old else 0)
            self._entries[key] = (value, weight)
            while self._weight > self.capacity:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._weight -= dropped

    def forget(self, which: Callable[[K], bool]) -> None:
        with self._lock:
            for key in [k for k in self._entries if which(k)]:
                self._weight -= self._entries.pop(key)[1]
