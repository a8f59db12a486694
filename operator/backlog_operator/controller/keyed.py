"""Per-object state of the runtime that costs nothing for an object nobody waits on.

- `KeyedLocks`: one reconcile at a time per object; a lock exists only while someone holds or
  waits for it (a lock per object ever seen would grow with every Goal ever deleted).
- `WakeTimes`: when to look at an object again, by key, on the reconcilers' clock; the earliest
  due first (a heap), one time per key (a later plan replaces an earlier one).
- `KeyQueue`: keys waiting for their turn, run in the order they came by a fixed number of
  workers (a burst of thousands of goals is a queue of keys, not thousands of tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

log = logging.getLogger(__name__)


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


class KeyQueue:
    """Keys run by `run`, in the order they were put, at most `workers` at once.

    A waiting key costs a queue entry, not a task: a task per key would hold a coroutine, its
    frames and a copy of the context it was made in (under kopf's handlers, the handler's
    cause: the event's whole body) until its turn came. The workers start with the first key,
    each in a context of its own. `run` reports its own failures; one that escapes it is
    logged, and the worker goes on."""

    def __init__(self, workers: int, run: Callable[[str], Awaitable[None]]) -> None:
        self._size = workers
        self._run = run
        self._queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._put = 0  # keys put so far: each key's number
        self._unfinished: set[int] = set()
        self._finished = asyncio.Condition()

    def put(self, key: str) -> None:
        """Run `key` after the keys put before it."""
        if not self._workers:
            self._workers = [
                asyncio.create_task(
                    self._work(), name=f"backlog-cycles {n}", context=contextvars.Context()
                )
                for n in range(self._size)
            ]
        self._put += 1
        self._unfinished.add(self._put)
        self._queue.put_nowait((self._put, key))

    async def drained(self) -> None:
        """Return once every key put so far has been run (not those put since)."""
        last = self._put
        async with self._finished:
            await self._finished.wait_for(
                lambda: not self._unfinished or min(self._unfinished) > last
            )

    async def stop(self) -> None:
        """Cancel the workers (the keys still waiting are dropped)."""
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []

    def __len__(self) -> int:
        return self._queue.qsize()

    async def _work(self) -> None:
        while True:
            number, key = await self._queue.get()
            try:
                await self._run(key)
            except Exception:  # a worker that died would leave its share of keys unrun
                log.exception("the cycle of %s failed", key)
            finally:
                self._unfinished.discard(number)
                async with self._finished:
                    self._finished.notify_all()
