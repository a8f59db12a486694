"""What the operator knows of every goal's phase, for capacity and for one-run-per-task.

The watch stream updates the API's view later than the operator acts, so two goals reconciled
at the same moment could both see a free slot. The registry is updated synchronously, under
one lock, the moment the operator decides to start a goal; it is seeded from a full listing
at start-up, so a restarted operator does not over-admit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from backlog_operator.controller.policy import QueueEntry, admit

RUNNING = "Running"
WAITING = frozenset({"Pending", "Queued"})


@dataclass(frozen=True)
class GoalEntry:
    """One goal as the registry sees it."""

    key: str  # namespace/name
    repository: str
    task: str | None  # repository + backlog path + task id; None for a free-form goal
    phase: str
    priority: int
    created: datetime
    suspended: bool = False
    blocked: bool = False  # waits for another goal of the same task
    ready_at: datetime | None = None  # backing off until then


class Registry:
    """Goals by key; all decisions that compare goals are taken under `lock`."""

    def __init__(self) -> None:
        self._goals: dict[str, GoalEntry] = {}
        self.lock = asyncio.Lock()

    def put(self, entry: GoalEntry) -> None:
        """Record (or replace) a goal's entry."""
        self._goals[entry.key] = entry

    def remove(self, key: str) -> None:
        """Forget a deleted goal."""
        self._goals.pop(key, None)

    def get(self, key: str) -> GoalEntry | None:
        """A goal's entry, if known."""
        return self._goals.get(key)

    def same_task(self, entry: GoalEntry) -> list[GoalEntry]:
        """Other goals for the same repository and task."""
        if entry.task is None:
            return []
        return [
            other
            for other in self._goals.values()
            if other.task == entry.task and other.key != entry.key
        ]

    def active_keys(self, *, include_running: bool) -> list[str]:
        """Goals that are not finished (waiting ones; running ones too if asked)."""
        phases = WAITING | {RUNNING} if include_running else WAITING
        return [key for key, entry in self._goals.items() if entry.phase in phases]

    def running(self) -> list[GoalEntry]:
        """Goals whose Job is running."""
        return [entry for entry in self._goals.values() if entry.phase == RUNNING]

    def waiting(self, now: datetime) -> list[GoalEntry]:
        """Goals that could start now but for capacity (not suspended, blocked or backing off)."""
        return [
            entry
            for entry in self._goals.values()
            if entry.phase in WAITING
            and not entry.suspended
            and not entry.blocked
            and (entry.ready_at is None or entry.ready_at <= now)
        ]

    def admission(
        self, now: datetime, *, max_per_repository: int, max_total: int
    ) -> tuple[list[str], dict[str, int]]:
        """Which waiting goals may start, and the queue positions of the others."""
        return admit(
            [_queue_entry(entry) for entry in self.waiting(now)],
            (entry.repository for entry in self.running()),
            max_per_repository=max_per_repository,
            max_total=max_total,
        )

    def __len__(self) -> int:
        return len(self._goals)

    def keys(self) -> Iterable[str]:
        """Every known goal's key."""
        return self._goals.keys()


def _queue_entry(entry: GoalEntry) -> QueueEntry:
    return QueueEntry(
        key=entry.key, repository=entry.repository, priority=entry.priority, created=entry.created
    )
