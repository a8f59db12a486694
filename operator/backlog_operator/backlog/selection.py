"""Which tasks a `Backlog` sync starts, and what its status reports: pure logic, no I/O.

The operator reads the backlog file (`BacklogDocument`), gathers what it knows about the cluster
and the forge into a `SelectionInput` (the tasks with a running Goal, the tasks with an open pull
request, recent failures, the limits, the time), and calls `select_tasks`. It gets back a frozen
`Selection`: the tasks to create Goals for now (in order), the ready tasks a limit holds back
and why, a reason for every other task, and a bounded `BacklogReport` for the Backlog's status.
`goal_name` gives the one Goal name a task can have, so two syncs never create two Goals for it.

Validation comes first, and nothing is selected from a backlog that does not validate
(`validate_tasks` lists every problem; `select_tasks` raises the first as a `BacklogError`):

- a task id must be usable in a Goal name: letters, digits, `-`, `_` and `.`, starting and
  ending with a letter or digit, at most 63 characters (a DNS label's length). Goal names are
  made with `naming.dns_label`, which lowercases and turns `_` and `.` into `-`; two ids that
  become the same label (`Docs_Guide` and `docs-guide`) would share one Goal name, so that is
  an error too;
- every `requires` id must be a task of the file;
- the `requires` graph has no cycle (`a → b → a`, where `→` reads "requires").

A task is selected when it is `ready: true`, its status is `pending` (absent is pending), every
task it requires is `completed` in the file, no Goal is running for it, no pull request of it is
open, it is not declined (its pull request was closed without merging, and no one revived it),
and it is not over the failure budget. Selected tasks are ordered by priority rank
(`Task.sort_key`: integers and words on one scale, no priority last), then file order. Then the
limits cut the list: `suspended`, a forge that could not be asked (fail closed: nothing starts),
`max_running_goals`, `max_open_pull_requests` and an hourly cap on new pull requests.

Windows are half-open, `(now - window, now]`: a pull request opened exactly an hour ago no longer
counts against the hourly cap, a failure exactly `failure_window` ago no longer counts against
the budget. Times after `now` (clock skew) do count, so skew never lets more start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from backlog_operator.api.goal_rules import TASK_ID_CHARACTERS
from backlog_operator.backlog.errors import BacklogError
from backlog_operator.backlog.model import Task, TaskStatus
from backlog_operator.naming import dns_label

# The characters are the Goal's task-id rule (api.goal.TASK_ID_CHARACTERS); the length is
# tighter than a Goal's TASK_ID_MAX_LENGTH (128) on purpose. A Backlog labels each Goal it makes
# (and the Goal's Jobs) `backlog.dev/task=<dns_label(id)>`: an id within a DNS label's length
# keeps that label the id itself, readable and unhashed (`kubectl get goals -l
# backlog.dev/task=<id>` finds them), and the duplicate check below compares exactly those labels.
MAX_TASK_ID_LENGTH = 63
# Status lists are cut to this many ids (their `total` still counts all of them).
DEFAULT_MAX_LISTED = 50
# Per blocked task: how many unfinished requirements and failure reasons the status shows.
MAX_REQUIRES_LISTED = 10
MAX_FAILURE_REASONS = 3
MAX_REASON_LENGTH = 200
# A cycle of thousands of tasks is named by its first few; the whole list helps no one.
MAX_CYCLE_SHOWN = 10
PULL_REQUEST_WINDOW = timedelta(hours=1)

_ID_CHARACTERS = re.compile(rf"[{TASK_ID_CHARACTERS}]+")
_ID_ENDS = re.compile(r"[A-Za-z0-9](?:.*[A-Za-z0-9])?", re.DOTALL)


# ------------------------------------------------------------------------------------ input


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed Goal of a task: when it failed, and why (its condition's message)."""

    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Limits:
    """The Backlog's limits; None means no limit.

    `failure_budget` is N: a task with N failures within `failure_window` is blocked until a
    person clears it.
    """

    max_open_pull_requests: int | None = None
    max_running_goals: int | None = None
    max_new_pull_requests_per_hour: int | None = None
    failure_budget: int | None = None
    failure_window: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        for name in (
            "max_open_pull_requests",
            "max_running_goals",
            "max_new_pull_requests_per_hour",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        if self.failure_budget is not None and self.failure_budget < 1:
            raise ValueError(f"failure_budget must be at least 1, got {self.failure_budget}")
        if self.failure_window <= timedelta(0):
            raise ValueError("failure_window must be positive")


@dataclass(frozen=True)
class SelectionInput:
    """What the operator knows at one sync, besides the backlog file itself.

    - `now`: the sync's time (timezone-aware); nothing here reads a clock.
    - `active_goals`: ids of tasks with a Goal that has not finished.
    - `running_goals`: the Backlog's unfinished Goals; None counts `active_goals`. A number below
      `len(active_goals)` is raised to it, so an inconsistent count never lets more start.
    - `open_pull_requests`: ids of tasks with an open pull request on one of their branches.
    - `open_pull_request_count`: open pull requests on the operator's branch prefix (they may
      include tasks no longer in the file); None counts `open_pull_requests`, and a smaller
      number is raised to it.
    - `pull_requests_opened`: when pull requests were opened; only the last hour's count.
    - `failures`: per task id, its failed Goals (any order; only those within the window count).
    - `cleared`: tasks a person cleared of their failures: a set forgives every failure given,
      a mapping forgives those at or before the time given (later failures count again).
    - `suspended`: the Backlog is suspended; nothing starts, running Goals are left alone.
    - `forge_error`: set when the forge could not be asked; nothing starts (fail closed).
    - `declined`: ids of tasks whose pull request a person closed without merging (and that
      no one revived since): never started, reported as declined.
    - `max_listed`: how many ids each status list shows.
    """

    now: datetime
    limits: Limits = field(default_factory=Limits)
    active_goals: AbstractSet[str] = frozenset()
    running_goals: int | None = None
    open_pull_requests: AbstractSet[str] = frozenset()
    open_pull_request_count: int | None = None
    pull_requests_opened: Sequence[datetime] = ()
    failures: Mapping[str, Sequence[Failure]] = field(default_factory=dict)
    cleared: AbstractSet[str] | Mapping[str, datetime] = frozenset()
    suspended: bool = False
    forge_error: str | None = None
    declined: AbstractSet[str] = frozenset()
    max_listed: int = DEFAULT_MAX_LISTED

    def __post_init__(self) -> None:
        # Comparing an aware time with a naive one raises deep inside; say it here instead.
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime")
        for name in ("running_goals", "open_pull_request_count"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        if self.max_listed < 0:
            raise ValueError(f"max_listed must not be negative, got {self.max_listed}")

    @property
    def running_goal_count(self) -> int:
        """The unfinished Goals counted against `max_running_goals`."""
        return max(self.running_goals or 0, len(self.active_goals))

    @property
    def open_pull_request_total(self) -> int:
        """The open pull requests counted against `max_open_pull_requests`."""
        return max(self.open_pull_request_count or 0, len(self.open_pull_requests))


# ----------------------------------------------------------------------------------- output


class Hold(StrEnum):
    """Why a task is not started now (the first reason that applies, in this order)."""

    COMPLETED = "completed"
    IN_PROGRESS = "in_progress"  # `status: in_progress` in the file
    RUNNING = "running"  # a Goal is running for it
    OPEN_PULL_REQUEST = "open_pull_request"
    DECLINED = "declined"  # its pull request was closed without merging, not revived
    FAILED = "failed"  # `status: failed` in the file
    BLOCKED = "blocked"  # `status: blocked` in the file
    NOT_READY = "not_ready"  # `ready` is not true
    REQUIRES = "requires"  # a required task is not completed
    FAILURE_BUDGET = "failure_budget"
    LIMIT = "limit"  # selectable, but a limit holds it back this sync


class Limit(StrEnum):
    """The limit that held selectable tasks back."""

    SUSPENDED = "suspended"
    FORGE_UNAVAILABLE = "forge_unavailable"
    MAX_RUNNING_GOALS = "max_running_goals"
    MAX_OPEN_PULL_REQUESTS = "max_open_pull_requests"
    MAX_NEW_PULL_REQUESTS_PER_HOUR = "max_new_pull_requests_per_hour"


@dataclass(frozen=True, slots=True)
class Held:
    """A task not started now: the reason, and a sentence for the log."""

    reason: Hold
    detail: str


@dataclass(frozen=True, slots=True)
class LimitReached:
    """The limit that stops selectable tasks from starting, with a sentence for a condition.

    `retry_at` is when the hourly cap next frees a slot, when that is known.
    """

    limit: Limit
    message: str
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IdList:
    """A bounded list of task ids for the status: the first ids, and how many there are."""

    ids: tuple[str, ...] = ()
    total: int = 0

    @property
    def truncated(self) -> bool:
        """True when some ids were left out."""
        return self.total > len(self.ids)


@dataclass(frozen=True, slots=True)
class BlockedTask:
    """A blocked task and what blocks it, bounded for the status.

    `requires`: unfinished requirements (the first `MAX_REQUIRES_LISTED`; `requires_total`
    counts them all). `failures` and `last_failures` (most recent first) are set when the task
    is over the failure budget. `marked_blocked`: the file says `status: blocked`.
    """

    id: str
    requires: tuple[str, ...] = ()
    requires_total: int = 0
    failures: int = 0
    last_failures: tuple[str, ...] = ()
    marked_blocked: bool = False


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """How many tasks the file gives each status (an absent status is pending)."""

    pending: int = 0
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    blocked: int = 0

    @property
    def total(self) -> int:
        """All tasks of the file."""
        return self.pending + self.in_progress + self.completed + self.failed + self.blocked


@dataclass(frozen=True, slots=True)
class BacklogReport:
    """The Backlog's status: counts by the file's status, and task ids by where they stand.

    Each task is in exactly one list. `ready`: selectable now, in selection order (including
    those a limit holds back). `in_progress`: in progress in the file, or with a running Goal
    or an open pull request. `blocked`: by unfinished requirements, the failure budget, or the
    file's `status: blocked`. `failed`: the file says failed. `not_ready`: `ready` is not true.
    `declined`: its pull request was closed without merging. Lists other than `ready` are in
    file order.
    """

    counts: StatusCounts
    ready: IdList
    in_progress: IdList
    blocked: tuple[BlockedTask, ...]
    blocked_total: int
    completed: IdList
    failed: IdList
    not_ready: IdList
    declined: IdList = IdList()


@dataclass(frozen=True)
class Selection:
    """The result of one sync's selection.

    `start`: the tasks to create Goals for now, in order. `deferred`: ids of selectable tasks
    that `limit` holds back, in order. `limit` is set whenever a task is deferred, and always
    when the Backlog is suspended or the forge could not be asked (even with nothing
    selectable, so a condition can say why nothing starts). `held`: a reason for every task
    not started (read-only).
    """

    start: tuple[Task, ...]
    deferred: tuple[str, ...]
    limit: LimitReached | None
    held: Mapping[str, Held]
    report: BacklogReport

    @property
    def start_ids(self) -> tuple[str, ...]:
        """The ids of the tasks to start, in order."""
        return tuple(task.id for task in self.start)


# ------------------------------------------------------------------------------- validation


def task_id_problem(task_id: str) -> str | None:
    """Why `task_id` cannot name a Goal, or None when it can (see the module docstring)."""
    if not _ID_CHARACTERS.fullmatch(task_id):
        return "only letters, digits, '-', '_' and '.' are allowed"
    if not _ID_ENDS.fullmatch(task_id):
        return "it must start and end with a letter or digit"
    if len(task_id) > MAX_TASK_ID_LENGTH:
        return f"it is {len(task_id)} characters long; at most {MAX_TASK_ID_LENGTH} are allowed"
    return None


def _label(task_id: str) -> str:
    # The label before any shortening: two ids that meet here would meet in Goal names.
    return dns_label(task_id, max_length=len(task_id) + 1)


def validate_tasks(tasks: Sequence[Task], *, source: str) -> list[BacklogError]:
    """Every problem of the task graph, as errors naming the file and line, in line order.

    Checks the ids (valid, unique even after `dns_label` normalisation), that every `requires`
    id is a task of the file, and that the requirements have no cycle. An empty list means the
    backlog validates.
    """
    problems: list[BacklogError] = []
    by_id, by_label = _check_ids(tasks, source, problems)
    _check_requires(tasks, by_id, by_label, source, problems)
    problems.extend(_cycle_errors(tasks, by_id, source))
    problems.sort(key=lambda error: error.line or 0)  # stable: same line keeps check order
    return problems


def _check_ids(
    tasks: Sequence[Task], source: str, problems: list[BacklogError]
) -> tuple[dict[str, Task], dict[str, Task]]:
    """Add a problem for each duplicate, invalid or clashing id (see `validate_tasks`).

    Returns each id's first task, and each valid id's task by its Goal name part.
    """
    by_id: dict[str, Task] = {}
    by_label: dict[str, Task] = {}
    for task in tasks:
        first = by_id.get(task.id)
        if first is not None:
            problems.append(
                BacklogError(
                    source,
                    task.line,
                    f"duplicate task id {task.id!r} (first at line {first.line})",
                )
            )
            continue
        by_id[task.id] = task
        why = task_id_problem(task.id)
        if why is not None:
            problems.append(
                BacklogError(
                    source,
                    task.line,
                    f"task id {task.id!r} (line {task.line}) is not a valid name: {why}",
                )
            )
            continue
        label = _label(task.id)
        other = by_label.get(label)
        if other is not None:
            problems.append(
                BacklogError(
                    source,
                    task.line,
                    f"task ids {other.id!r} (line {other.line}) and {task.id!r} (line "
                    f"{task.line}) both make the Goal name part {label!r}; rename one",
                )
            )
        else:
            by_label[label] = task
    return by_id, by_label


def _check_requires(
    tasks: Sequence[Task],
    by_id: Mapping[str, Task],
    by_label: Mapping[str, Task],
    source: str,
    problems: list[BacklogError],
) -> None:
    """Add a problem for each `requires` id that is not a task of the file."""
    for task in tasks:
        for required in dict.fromkeys(task.requires):
            if required not in by_id:
                problems.append(
                    BacklogError(
                        source,
                        task.line,
                        f"task {task.id!r} (line {task.line}) requires unknown task "
                        f"{required!r}{_did_you_mean(required, by_label)}",
                    )
                )


def _did_you_mean(required: str, by_label: Mapping[str, Task]) -> str:
    # Only the cheap, common slip: the same id in another case or with `_` for `-`.
    match = by_label.get(dns_label(required, max_length=len(required) + 1))
    return f" (did you mean {match.id!r}?)" if match is not None else ""


def _cycle_errors(
    tasks: Sequence[Task], by_id: Mapping[str, Task], source: str
) -> list[BacklogError]:
    """One error per dependency cycle (strongly connected component), naming one cycle."""
    position = {task.id: index for index, task in enumerate(tasks) if by_id[task.id] is task}
    edges: list[list[int]] = [[] for _ in tasks]
    for task_id, index in position.items():
        edges[index] = [
            position[r] for r in dict.fromkeys(by_id[task_id].requires) if r in position
        ]
    errors = []
    for component in _strongly_connected(edges):
        first = min(component)
        if len(component) == 1 and first not in edges[first]:
            continue
        cycle = _shortest_cycle(first, set(component), edges)
        names = [tasks[index].id for index in cycle]
        lines = ", ".join(str(tasks[index].line) for index in cycle[:MAX_CYCLE_SHOWN])
        if len(cycle) == 1:
            where = f"task {names[0]!r} requires itself"
        elif len(cycle) > MAX_CYCLE_SHOWN:
            names = [*names[: MAX_CYCLE_SHOWN - 1], "...", names[-1]]
            where = f"{len(cycle)} tasks; lines {lines}, ..."
        else:
            where = f"lines {lines}"
        shown = " → ".join([*names, names[0]])
        errors.append(
            BacklogError(source, tasks[first].line, f"dependency cycle: {shown} ({where})")
        )
    return errors


def _strongly_connected(edges: Sequence[Sequence[int]]) -> list[list[int]]:
    """Tarjan's strongly connected components, iterative (a 10,000-task chain is deep)."""
    count = len(edges)
    order = [-1] * count
    low = [0] * count
    on_stack = [False] * count
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(count):
        if order[root] != -1:
            continue
        work = [(root, 0)]
        order[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            node, next_edge = work[-1]
            if next_edge < len(edges[node]):
                work[-1] = (node, next_edge + 1)
                target = edges[node][next_edge]
                if order[target] == -1:
                    order[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack[target] = True
                    work.append((target, 0))
                elif on_stack[target]:
                    low[node] = min(low[node], order[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == order[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _shortest_cycle(start: int, members: set[int], edges: Sequence[Sequence[int]]) -> list[int]:
    """The shortest cycle through `start` inside its component (breadth first): its nodes."""
    parent: dict[int, int] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in edges[node]:
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return path[::-1]
                if target in members and target not in parent:
                    parent[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError("a strongly connected component always has a cycle")  # pragma: no cover


# -------------------------------------------------------------------------------- selection


def goal_name(backlog_name: str, task_id: str) -> str:
    """The one Goal name for a task of a Backlog: `<backlog>-<dns_label(task id)>`.

    At most 63 characters. A longer name is shortened by `naming.dns_label`, whose hash of the
    whole text keeps it unique and the same at every sync. Two ids of one validated backlog
    never share a name (`validate_tasks` rejects ids that normalise alike).
    """
    return dns_label(f"{backlog_name}-{task_id}")


def select_tasks(tasks: Sequence[Task], given: SelectionInput, *, source: str) -> Selection:
    """Validate the backlog's tasks, then choose the tasks to start now and build the report.

    `tasks` are the file's tasks in file order (`BacklogDocument.tasks`) and `source` names the
    file in errors. Raises the first `BacklogError` of `validate_tasks` when the backlog does
    not validate: nothing is selected from it.
    """
    problems = validate_tasks(tasks, source=source)
    if problems:
        raise problems[0]
    standing = _stand(tasks, given)
    # Sorting on (rank, file position) and nothing else: equal ranks keep the file's order.
    standing.selectable.sort(key=lambda entry: (entry[0], entry[1]))
    ordered = [entry[2] for entry in standing.selectable]
    room, limit = _room(given, len(ordered))
    start = tuple(ordered[:room])
    deferred = tuple(task.id for task in ordered[room:])
    held = standing.held
    if deferred:
        assert limit is not None
        waiting = Held(Hold.LIMIT, limit.message)
        for task_id in deferred:
            held[task_id] = waiting
    return Selection(
        start=start,
        deferred=deferred,
        limit=limit,
        held=MappingProxyType(held),
        report=standing.report(ordered, given.max_listed),
    )


@dataclass(slots=True)
class _Standing:
    """Where the tasks stand before the limits apply (see `_stand`)."""

    counts: dict[TaskStatus, int]
    held: dict[str, Held] = field(default_factory=dict)
    in_progress: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_ready: list[str] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    blocked: list[BlockedTask] = field(default_factory=list)
    # The selectable tasks as (rank, file position, task), in file order.
    selectable: list[tuple[tuple[int, int], int, Task]] = field(default_factory=list)

    def report(self, ordered: Sequence[Task], cap: int) -> BacklogReport:
        """The report, with `ordered` (the selectable tasks in order) as the ready list."""
        return BacklogReport(
            counts=StatusCounts(**{status.value: number for status, number in self.counts.items()}),
            ready=_id_list([task.id for task in ordered], cap),
            in_progress=_id_list(self.in_progress, cap),
            blocked=tuple(self.blocked[:cap]),
            blocked_total=len(self.blocked),
            completed=_id_list(self.completed, cap),
            failed=_id_list(self.failed, cap),
            not_ready=_id_list(self.not_ready, cap),
            declined=_id_list(self.declined, cap),
        )


def _stand(tasks: Sequence[Task], given: SelectionInput) -> _Standing:
    """Count the file's statuses; give every task that cannot start a reason and a status
    list (`Held`, the first reason in the order of `Hold`); collect the selectable ones."""
    standing = _Standing(counts=dict.fromkeys(TaskStatus, 0))
    counts, held, selectable = standing.counts, standing.held, standing.selectable
    in_progress, completed_ids = standing.in_progress, standing.completed
    active, open_pull_requests = given.active_goals, given.open_pull_requests
    declined = given.declined
    completed = {task.id for task in tasks if task.status is TaskStatus.COMPLETED}
    budget = _FailureBudget(given)
    for index, task in enumerate(tasks):
        status = task.status
        counts[status] += 1
        task_id = task.id
        if status is TaskStatus.COMPLETED:
            hold, where = _COMPLETED, completed_ids
        elif status is TaskStatus.IN_PROGRESS:
            hold, where = _IN_PROGRESS, in_progress
        elif task_id in active:
            hold, where = _RUNNING, in_progress
        elif task_id in open_pull_requests:
            hold, where = _OPEN_PULL_REQUEST, in_progress
        elif task_id in declined:
            hold, where = _DECLINED, standing.declined
        elif status is TaskStatus.FAILED:
            hold, where = _FAILED, standing.failed
        elif status is not TaskStatus.BLOCKED and not task.ready:
            hold, where = _NOT_READY, standing.not_ready
        else:
            blocked = _blocked(task, completed, budget)
            if blocked is None:
                selectable.append((task.sort_key, index, task))
            else:
                held[task_id], entry = blocked
                standing.blocked.append(entry)
            continue
        held[task_id] = hold
        where.append(task_id)
    return standing


def _blocked(
    task: Task, completed: AbstractSet[str], budget: _FailureBudget
) -> tuple[Held, BlockedTask] | None:
    """Why a ready task, or one the file marks blocked, cannot start, and its status entry;
    None when it can (every requirement completed, within the failure budget)."""
    marked_blocked = task.status is TaskStatus.BLOCKED
    unfinished = [r for r in dict.fromkeys(task.requires) if r not in completed]
    failures = budget.over(task.id)
    if not (marked_blocked or unfinished or failures):
        return None
    if marked_blocked:
        held = _BLOCKED
    elif unfinished:
        held = Held(Hold.REQUIRES, f"waiting for {_names(unfinished)}")
    else:
        held = Held(Hold.FAILURE_BUDGET, budget.describe(failures))
    entry = BlockedTask(
        id=task.id,
        requires=tuple(unfinished[:MAX_REQUIRES_LISTED]),
        requires_total=len(unfinished),
        failures=len(failures),
        last_failures=tuple(_shorten(failure.reason) for failure in failures[:MAX_FAILURE_REASONS]),
        marked_blocked=marked_blocked,
    )
    return held, entry


# Shared: most tasks of a long-lived backlog are completed, and these never change.
_COMPLETED = Held(Hold.COMPLETED, "completed in the backlog; never selected again")
_IN_PROGRESS = Held(Hold.IN_PROGRESS, "status in_progress in the backlog")
_RUNNING = Held(Hold.RUNNING, "a Goal is running for it")
_OPEN_PULL_REQUEST = Held(Hold.OPEN_PULL_REQUEST, "a pull request of it is open")
_DECLINED = Held(
    Hold.DECLINED, "its pull request was closed without merging; revive it to select it again"
)
_FAILED = Held(Hold.FAILED, "status failed in the backlog")
_BLOCKED = Held(Hold.BLOCKED, "status blocked in the backlog")
_NOT_READY = Held(Hold.NOT_READY, "ready is not true in the backlog")


class _FailureBudget:
    """Counts each task's failures within the window, less those a person cleared."""

    def __init__(self, given: SelectionInput) -> None:
        self._budget = given.limits.failure_budget
        self._window = given.limits.failure_window
        self._since = given.now - given.limits.failure_window
        self._failures = given.failures
        self._cleared = given.cleared

    def over(self, task_id: str) -> list[Failure]:
        """The task's counted failures, most recent first, when they reach the budget; else []."""
        if self._budget is None:
            return []
        recorded = self._failures.get(task_id)
        if not recorded:
            return []
        since = self._since
        if isinstance(self._cleared, Mapping):
            cleared_at = self._cleared.get(task_id)
            if cleared_at is not None:
                since = max(since, cleared_at)
        elif task_id in self._cleared:
            return []
        counted = [failure for failure in recorded if failure.at > since]
        if len(counted) < self._budget:
            return []
        return sorted(counted, key=lambda failure: failure.at, reverse=True)

    def describe(self, failures: Sequence[Failure]) -> str:
        """A log sentence: how often, the budget, the last reason, how to clear it."""
        return (
            f"failed {len(failures)} times within {_duration(self._window)} (budget "
            f"{self._budget}); last: {_shorten(failures[0].reason)}; a person must clear it"
        )


def _room(given: SelectionInput, wanted: int) -> tuple[int, LimitReached | None]:
    """How many of `wanted` selectable tasks may start, and the limit when not all may."""
    if given.suspended:
        return 0, LimitReached(Limit.SUSPENDED, "the Backlog is suspended")
    if given.forge_error is not None:
        return 0, LimitReached(
            Limit.FORGE_UNAVAILABLE,
            f"the forge could not be asked, so nothing starts: {given.forge_error}",
        )
    # Goals that have not opened their pull request yet will: count them as pull requests
    # already, or one sync could start more than the open and hourly limits allow.
    on_the_way = len(given.active_goals - given.open_pull_requests)
    candidates = (
        _running_room(given),
        _open_room(given, on_the_way),
        _hourly_room(given, on_the_way),
    )
    tightest, limit = wanted, None
    for candidate in candidates:
        # The tightest limit is the one to name; on a tie, the first in the order above.
        if candidate is not None and candidate[0] < tightest:
            tightest, limit = candidate
    return max(tightest, 0), limit


def _running_room(given: SelectionInput) -> tuple[int, LimitReached] | None:
    """How many more Goals `max_running_goals` lets run, and the limit; None without it."""
    cap = given.limits.max_running_goals
    if cap is None:
        return None
    running = given.running_goal_count
    return cap - running, LimitReached(
        Limit.MAX_RUNNING_GOALS, f"{running} Goals running, at most {cap}"
    )


def _open_room(given: SelectionInput, on_the_way: int) -> tuple[int, LimitReached] | None:
    """How many more pull requests `max_open_pull_requests` lets open, and the limit."""
    cap = given.limits.max_open_pull_requests
    if cap is None:
        return None
    open_now = given.open_pull_request_total
    return cap - open_now - on_the_way, LimitReached(
        Limit.MAX_OPEN_PULL_REQUESTS,
        f"{open_now} pull requests open and {on_the_way} on the way, at most {cap}",
    )


def _hourly_room(given: SelectionInput, on_the_way: int) -> tuple[int, LimitReached] | None:
    """How many more pull requests the hourly cap lets open now, and the limit, with when the
    next may start if that is known."""
    cap = given.limits.max_new_pull_requests_per_hour
    if cap is None:
        return None
    since = given.now - PULL_REQUEST_WINDOW
    recent = sorted(moment for moment in given.pull_requests_opened if moment > since)
    # For one more to start, this many of the recent ones must leave the window first.
    must_expire = len(recent) + on_the_way - cap + 1
    retry_at = (
        recent[must_expire - 1] + PULL_REQUEST_WINDOW if 0 < must_expire <= len(recent) else None
    )
    message = (
        f"{len(recent)} pull requests opened in the last hour and {on_the_way} on the way, "
        f"at most {cap} an hour"
    )
    if retry_at is not None:
        message += f"; the next may start at {retry_at.isoformat()}"
    return cap - len(recent) - on_the_way, LimitReached(
        Limit.MAX_NEW_PULL_REQUESTS_PER_HOUR, message, retry_at
    )


# ---------------------------------------------------------------------------------- helpers


def _id_list(ids: Sequence[str], cap: int) -> IdList:
    return IdList(tuple(ids[:cap]), len(ids))


def _names(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:MAX_REQUIRES_LISTED])
    more = len(ids) - MAX_REQUIRES_LISTED
    return f"{shown} and {more} more (not completed)" if more > 0 else f"{shown} (not completed)"


def _shorten(text: str) -> str:
    # Failure reasons come from Goal conditions and can be long; the status must stay small.
    flat = " ".join(text.split())
    if len(flat) <= MAX_REASON_LENGTH:
        return flat
    return flat[: MAX_REASON_LENGTH - 3].rstrip() + "..."


def _duration(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
