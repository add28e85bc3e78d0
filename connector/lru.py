"""A bounded, thread-safe least-recently-used map, for the query API's per-process caches."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Lru(Generic[V]):
    """At most `capacity` units of weight (`weigh(value)`, 1 each by default); putting more evicts the
    least recently used entries. A value heavier than the whole capacity is not kept. Every method takes
    one lock, so threads may share it; values should be immutable, as readers get them without a copy."""

    def __init__(self, capacity: int, weigh: Callable[[V], int] = lambda _value: 1) -> None:
        self.capacity, self._weigh = capacity, weigh
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._weight = 0

    def get(self, key: Hashable) -> V | None:
        """The value under `key` (now the most recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: V) -> None:
        """Keep `value` under `key`, replacing what was there, evicting the least recently used."""
        weight = self._weigh(value)
        with self._lock:
            self._drop(key)
            if weight > self.capacity:
                return
            self._entries[key] = (value, weight)
            self._weight += weight
            while self._weight > self.capacity:
                self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
            self._weight = 0

    @property
    def weight(self) -> int:
        """The total weight held."""
        return self._weight

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._weight -= entry[1]
