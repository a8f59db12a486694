"""Per-object state of the runtime that costs nothing for an object nobody waits on.

- `KeyedLocks`: one reconcile at a time per object; a lock exists only while someone holds or
  waits for it (a lock per object ever seen would grow with every Goal ever deleted).
- `WakeTimes`: when to look at an object again, by key, on the reconcilers' clock; the earliest
  due first (a heap), one time per key (a later plan replaces an earlier one).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import AsyncIterator
from datetime import datetime


class KeyedLocks:
    """Locks by key, made when first wanted and dropped when the last holder or waiter leaves."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of `key` for the `async with` block."""
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class WakeTimes:
    """When each key is due to be looked at again."""

    def __init__(self) -> None:
        self._when: dict[str, datetime] = {}
        self._heap: list[tuple[datetime, str]] = []

    def plan(self, key: str, when: datetime | None) -> None:
        """Look at `key` again at `when` (None: no time planned)."""
        if when is None:
            self._when.pop(key, None)
        elif self._when.get(key) != when:
            self._when[key] = when
            heapq.heappush(self._heap, (when, key))

    def due(self, now: datetime) -> list[str]:
        """The keys whose time has come, each once (their plans are done)."""
        found: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            when, key = heapq.heappop(self._heap)
            if self._when.get(key) == when:  # else replaced or cancelled since
                del self._when[key]
                found.append(key)
        if len(self._heap) > 2 * len(self._when) + 64:  # drop the replaced and cancelled
            self._heap = [(when, key) for key, when in self._when.items()]
            heapq.heapify(self._heap)
        return found

    def get(self, key: str) -> datetime | None:
        """The time planned for `key`, if any."""
        return self._when.get(key)

    def __len__(self) -> int:
        return len(self._when)
