"""The capacity table: what the operator knows of every goal's phase, for capacity and for
one-run-per-task, and the queue admission that decides which waiting goals start.

The watch stream updates the API's view later than the operator acts, so two goals reconciled
at the same moment could both see a free slot. The table is updated synchronously, the moment
the operator decides to start a goal (no `await` between reading it and taking the slot, so on
one event loop no two decisions interleave); it is seeded from a full listing at start-up, so a
restarted operator does not over-admit.

It is kept incrementally, so a decision costs O(log n) however many goals it knows (finished
ones included): slots held per repository and in all, a sorted queue of the goals that could
start now but for capacity (one per repository too, and the heads of those), backing-off goals
by when they may start, goals by task. `admit` is the rule itself, pure (numbers and lists in,
decisions out); `CapacityTable.admit` applies the same rule to the queue as it changes.

A slot is taken in two ways: by a goal whose Job was created (or whose create was sent): phase
Running; or by a reservation, for the goal at the head of the queue when a slot frees, which
its own next decision turns into a start (or gives back, should it no longer want to start).
Reservations are how a freed slot goes to the next goal at once, in queue order, with no
polling: `take_woken` names the goals whose decision is due.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from backlog_operator.api.goal import Goal, GoalStatus, Phase

WAITING = frozenset({Phase.PENDING, Phase.QUEUED})
# Queue positions written exactly for the first goals of the queue; further back a position is
# written again only when it moved by a tenth (a goal far back need not hear of every start).
EXACT_POSITIONS = 20
POSITION_TOLERANCE = 0.1

# (priority, created, key): the queue's order, smaller first.
Order = tuple[int, datetime, str]


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
    position: int | None = None  # the queue position its status says
    # Succeeded, but its pull request was closed without merging: it did not complete the task.
    declined: bool = False

    @property
    def order(self) -> Order:
        """Its place in the queue: priority (smaller first), then age, then name."""
        return (self.priority, self.created, self.key)


def repository_of(url: str) -> str:
    """The repository a goal's `spec.repository.url` names, as capacity counts it."""
    return url.rstrip("/").removesuffix(".git")


def entry_for(goal: Goal, status: GoalStatus) -> GoalEntry:
    """The capacity table's view of a goal with `status`."""
    repository = repository_of(goal.spec.repository.url)
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
        position=status.queue_position,
        declined=status.pull_request is not None and status.pull_request.state == "closed",
    )


def position_stale(written: int | None, actual: int) -> bool:
    """Whether a queue position written as `written` is worth writing again as `actual`."""
    if written == actual:
        return False
    if written is None or min(written, actual) <= EXACT_POSITIONS:
        return True
    return abs(actual - written) >= written * POSITION_TOLERANCE


class _Queue:
    """Goals that could start now but for capacity: in queue order, per repository, and the
    head of each repository's queue in order (what admission walks)."""

    def __init__(self) -> None:
        self._order: list[Order] = []
        self._by_repository: dict[str, list[Order]] = {}
        self._heads: list[Order] = []
        self._entries: dict[str, GoalEntry] = {}

    def add(self, entry: GoalEntry) -> None:
        self._entries[entry.key] = entry
        bisect.insort(self._order, entry.order)
        mine = self._by_repository.setdefault(entry.repository, [])
        head = mine[0] if mine else None
        bisect.insort(mine, entry.order)
        if mine[0] != head:
            self._move_head(head, mine[0])

    def discard(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        _remove(self._order, entry.order)
        mine = self._by_repository[entry.repository]
        head = mine[0]
        _remove(mine, entry.order)
        if not mine:
            del self._by_repository[entry.repository]
            self._move_head(head, None)
        elif mine[0] != head:
            self._move_head(head, mine[0])

    def _move_head(self, old: Order | None, new: Order | None) -> None:
        if old is not None:
            _remove(self._heads, old)
        if new is not None:
            bisect.insort(self._heads, new)

    def first(self, full: Container[str]) -> GoalEntry | None:
        """The first goal whose repository is not `full` (those at their limit)."""
        for order in self._heads:  # skips at most one head per full repository
            entry = self._entries[order[2]]
            if entry.repository not in full:
                return entry
        return None

    def rank(self, key: str) -> int | None:
        """A queued goal's 1-based place in the queue, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        return bisect.bisect_left(self._order, entry.order) + 1

    def note(self, entry: GoalEntry) -> None:
        """Replace a queued goal's entry by one with the same order (a new position said)."""
        if entry.key in self._entries:
            self._entries[entry.key] = entry

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[GoalEntry]:
        return (self._entries[order[2]] for order in self._order)

    def __len__(self) -> int:
        return len(self._order)


def _remove(items: list[Order], item: Order) -> None:
    index = bisect.bisect_left(items, item)
    if index < len(items) and items[index] == item:
        del items[index]


class CapacityTable:
    """Goals by key, with what admission needs kept up to date on every `put`."""

    def __init__(self) -> None:
        self._goals: dict[str, GoalEntry] = {}
        self._by_task: dict[str, set[str]] = {}
        self._reserved: set[str] = set()
        self._held: dict[str, int] = {}  # repository -> slots held (running or reserved)
        self._held_total = 0
        self._per_repository = 0  # the limit `_full` was kept for
        self._full: set[str] = set()  # repositories holding that many slots
        self._queue = _Queue()
        self._later: list[tuple[datetime, str]] = []  # backing off: when each may start
        self._woken: dict[str, None] = {}  # goals whose decision is due, in order
        self._positions_moved = False

    # ---------------------------------------------------------------------- the entries

    def put(self, entry: GoalEntry) -> None:
        """Record (or replace) a goal's entry; a reservation it held is given back (its own
        decision is what `put` records)."""
        old = self._goals.get(entry.key)
        self._unlink(old)
        self._goals[entry.key] = entry
        self._link(entry)
        self._woken.pop(entry.key, None)  # its decision, which was due, is this
        self._wake_task(old, entry)

    def remove(self, key: str) -> None:
        """Forget a deleted goal (its slot is free)."""
        old = self._goals.pop(key, None)
        self._unlink(old)
        self._woken.pop(key, None)
        self._wake_task(old, None)

    def get(self, key: str) -> GoalEntry | None:
        """A goal's entry, if known."""
        return self._goals.get(key)

    def _link(self, entry: GoalEntry) -> None:
        if entry.task is not None:
            self._by_task.setdefault(entry.task, set()).add(entry.key)
        if entry.phase is Phase.RUNNING:
            self._hold(entry.repository, 1)
        elif entry.phase in WAITING and not entry.suspended and not entry.blocked:
            if entry.ready_at is None:
                self._queue.add(entry)
                self._positions_moved = True
            else:  # enters the queue when `admit` finds its time has come
                heapq.heappush(self._later, (entry.ready_at, entry.key))

    def _unlink(self, entry: GoalEntry | None) -> None:
        if entry is None:
            return
        if entry.task is not None:
            keys = self._by_task.get(entry.task)
            if keys is not None:
                keys.discard(entry.key)
                if not keys:
                    del self._by_task[entry.task]
        if entry.phase is Phase.RUNNING:
            self._hold(entry.repository, -1)
        if entry.key in self._reserved:
            self._reserved.discard(entry.key)
            self._hold(entry.repository, -1)
        if entry.key in self._queue:
            self._queue.discard(entry.key)
            self._positions_moved = True
        # An entry in `_later` is dropped when it comes up (`_release_due` checks it).

    def _hold(self, repository: str, change: int) -> None:
        held = self._held.get(repository, 0) + change
        if held:
            self._held[repository] = held
        else:
            self._held.pop(repository, None)
        self._held_total += change
        if self._per_repository and held >= self._per_repository:
            self._full.add(repository)
        else:
            self._full.discard(repository)

    def _limit(self, per_repository: int) -> None:
        """Keep `_full` for this per-repository limit (recomputed only when it changes)."""
        if per_repository != self._per_repository:
            self._per_repository = per_repository
            self._full = {repo for repo, held in self._held.items() if held >= per_repository}

    def _wake_task(self, old: GoalEntry | None, new: GoalEntry | None) -> None:
        """A goal of a task changed phase (or went): the other waiting goals of that task decide
        again (one waited for it to end; one may be skipped now that it succeeded)."""
        if old is None or old.task is None or (new is not None and new.phase is old.phase):
            return
        for key in self._by_task.get(old.task, ()):
            other = self._goals[key]
            if key != old.key and other.phase in WAITING:
                self._woken[key] = None

    def same_task(self, entry: GoalEntry) -> list[GoalEntry]:
        """Other goals for the same repository and task."""
        if entry.task is None:
            return []
        return [self._goals[key] for key in self._by_task.get(entry.task, ()) if key != entry.key]

    # ------------------------------------------------------------------------ admission

    def admit(self, now: datetime, *, max_per_repository: int, max_total: int) -> list[str]:
        """Reserve a slot for each goal that may start now, in queue order (the `admit` rule:
        a goal whose repository is full does not block goals of other repositories); return
        their keys. Each also goes to `take_woken`: its own decision turns the reservation into
        a start."""
        self._release_due(now)
        self._limit(max_per_repository)
        admitted: list[str] = []
        while self._held_total < max_total:
            entry = self._queue.first(self._full)
            if entry is None:
                break
            self._queue.discard(entry.key)
            self._positions_moved = True
            self._reserved.add(entry.key)
            self._hold(entry.repository, 1)
            self._woken[entry.key] = None
            admitted.append(entry.key)
        return admitted

    def _release_due(self, now: datetime) -> None:
        """Backing-off goals whose time has come join the queue."""
        while self._later and self._later[0][0] <= now:
            ready_at, key = heapq.heappop(self._later)
            entry = self._goals.get(key)
            if (
                entry is not None
                and entry.ready_at == ready_at
                and entry.phase in WAITING
                and not entry.suspended
                and not entry.blocked
                and key not in self._queue
                and key not in self._reserved
            ):
                self._queue.add(entry)
                self._positions_moved = True

    def has_room(self, repository: str, *, max_per_repository: int, max_total: int) -> bool:
        """Whether a slot is free for a goal of `repository` (in all, and in its repository)."""
        return self._held_total < max_total and self._held.get(repository, 0) < max_per_repository

    def reserved(self, key: str) -> bool:
        """Whether a slot is reserved for the goal (admitted; its Job not created yet)."""
        return key in self._reserved

    def position(self, key: str) -> int | None:
        """A queued goal's place in the queue (1-based), or None when it is not queued."""
        return self._queue.rank(key)

    def note_position(self, key: str, position: int | None) -> None:
        """The queue position a goal's status now says (for `stale_positions`)."""
        entry = self._goals.get(key)
        if entry is not None and entry.position != position:
            entry = replace(entry, position=position)
            self._goals[key] = entry
            self._queue.note(entry)

    def stale_positions(self) -> list[str]:
        """Queued goals whose status's position is worth writing again (`position_stale`);
        a walk of the queue, only when it changed since the last walk."""
        if not self._positions_moved:
            return []
        self._positions_moved = False
        return [
            entry.key
            for rank, entry in enumerate(self._queue, start=1)
            if position_stale(entry.position, rank)
        ]

    def take_woken(self) -> list[str]:
        """Goals whose decision is due (a slot reserved for them, or their task changed), each
        once, and forget them; a goal that has decided meanwhile is left out."""
        woken = [
            key
            for key in self._woken
            if key in self._reserved
            or ((entry := self._goals.get(key)) is not None and entry.phase in WAITING)
        ]
        self._woken.clear()
        return woken

    # --------------------------------------------------------------------------- reading

    def running(self) -> list[GoalEntry]:
        """Goals whose Job is running."""
        return [entry for entry in self._goals.values() if entry.phase is Phase.RUNNING]

    def held(self) -> int:
        """Slots held in all: running goals and reservations."""
        return self._held_total

    def queued(self) -> int:
        """Goals in the queue (waiting for capacity only)."""
        return len(self._queue)

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
    repository is full does not block goals of other repositories. (The rule, on whole lists;
    `CapacityTable.admit` keeps to it one change at a time.)
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
