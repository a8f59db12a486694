"""The capacity table: what the operator knows of every goal's phase, for capacity and for
one-run-per-task, and the queue admission that decides which waiting goals start.

The watch stream updates the API's view later than the operator acts, so two goals reconciled
at the same moment could both see a free slot. The table is updated synchronously, under one
lock, the moment the operator decides to start a goal; it is seeded from a full listing at
start-up, so a restarted operator does not over-admit. `admit` is pure: numbers and lists in,
decisions out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from backlog_operator.api.goal import Goal, GoalStatus, Phase

WAITING = frozenset({Phase.PENDING, Phase.QUEUED})


@dataclass(frozen=True)
class GoalEntry:
    """One goal as the capacity table sees it."""

    key: str  # namespace/name
    repository: str
    task: str | None  # repository + backlog path + task id; None for a free-form goal
    phase: Phase
    priority: int
    created: datetime
    suspended: bool = False
    blocked: bool = False  # waits for another goal of the same task
    ready_at: datetime | None = None  # backing off until then


def entry_for(goal: Goal, status: GoalStatus) -> GoalEntry:
    """The capacity table's view of a goal with `status`."""
    repository = goal.spec.repository.url.rstrip("/").removesuffix(".git")
    task = goal.spec.backlog.task_id
    return GoalEntry(
        key=f"{goal.metadata.namespace}/{goal.metadata.name}",
        repository=repository,
        task=f"{repository}|{goal.spec.backlog.path}|{task}" if task else None,
        phase=status.phase or Phase.PENDING,
        priority=goal.spec.priority,
        created=goal.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC),
        suspended=goal.spec.suspend,
        ready_at=status.next_attempt_time,
    )


class CapacityTable:
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
        phases = WAITING | {Phase.RUNNING} if include_running else WAITING
        return [key for key, entry in self._goals.items() if entry.phase in phases]

    def running(self) -> list[GoalEntry]:
        """Goals whose Job is running."""
        return [entry for entry in self._goals.values() if entry.phase is Phase.RUNNING]

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


# ---------------------------------------------------------------------- queue admission


@dataclass(frozen=True)
class QueueEntry:
    """A goal waiting for capacity."""

    key: str  # namespace/name
    repository: str
    priority: int
    created: datetime


def admit(
    waiting: Sequence[QueueEntry],
    running_repositories: Iterable[str],
    *,
    max_per_repository: int,
    max_total: int,
) -> tuple[list[str], dict[str, int]]:
    """Which waiting goals may start now, and the queue position (1-based) of the rest.

    Order: priority (smaller first), then age (older first), then name. A goal whose
    repository is full does not block goals of other repositories.
    """
    running = list(running_repositories)
    per_repository: dict[str, int] = {}
    for repository in running:
        per_repository[repository] = per_repository.get(repository, 0) + 1
    total = len(running)
    admitted: list[str] = []
    positions: dict[str, int] = {}
    for entry in sorted(waiting, key=lambda e: (e.priority, e.created, e.key)):
        in_repository = per_repository.get(entry.repository, 0)
        if total < max_total and in_repository < max_per_repository:
            admitted.append(entry.key)
            per_repository[entry.repository] = in_repository + 1
            total += 1
        else:
            positions[entry.key] = len(positions) + 1
    return admitted, positions


def _queue_entry(entry: GoalEntry) -> QueueEntry:
    return QueueEntry(
        key=entry.key, repository=entry.repository, priority=entry.priority, created=entry.created
    )
