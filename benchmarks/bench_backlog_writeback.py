"""Backlog writeback against the raw floor: read the file, one targeted replacement, write it.

For a generated backlog (header comments, block scalars, flow lists, word and integer
priorities) of 5,000 tasks and of 100, measures in the same run, per task marked (at the start,
the middle and the end of the file), each from the file on disk and back to it:

- the floor: read the bytes, replace the task's `status: pending` found by a byte search, write;
- writeback: read, `BacklogDocument.for_task`, `mark_completed`, `render`, write;
- the pull request number later: the same on the marked file with `set_pr_number`;
- the whole-file path (`BacklogDocument.parse`, then `mark_completed`), for comparison.

Checks that writeback gives the very bytes of the whole-file path and changes only the marked
task's lines (difflib). Figures are medians of wall time. The target: writeback at most
`TARGET_RATIO` times the floor at 5,000 tasks; exits non-zero when a check fails or the target
is missed.

Run: .venv/bin/python benchmarks/bench_backlog_writeback.py [--tasks N] [--rounds N]
"""

from __future__ import annotations

import argparse
import difflib
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from backlog_operator.backlog.document import BacklogDocument

TARGET_RATIO = 10.0
SMALL = 100

HEADER = """\
# =====================================================================
#  Generated backlog for the writeback benchmark
# =====================================================================

project: bench
schema: 1

tasks:
"""
TASK = """\
  # ---- task {i} -------------------------------------------------------
  - id: task-{i:05d}
    title: "Task number {i}: do the thing"
    priority: {priority}
    ready: true
    status: pending       # pending | in_progress | completed | failed | blocked
    dependencies: [task-{previous:05d}]
    allowed_paths: ["src/area{area}/**", 'docs/area{area}.md']
    description: |
      Change the code under src/area{area} so that the thing happens.

      Keep the change small; one pull request per task.
"""
PRIORITIES = ["critical", "high", "medium", "low", "1", "2", "3"]
MOMENT = datetime(2026, 1, 30, 23, 15, tzinfo=UTC)


def make_backlog(tasks: int) -> bytes:
    """A backlog of `tasks` tasks in the style of a hand-written file."""
    parts = [HEADER]
    for i in range(tasks):
        priority = PRIORITIES[i % len(PRIORITIES)]
        parts.append(TASK.format(i=i, previous=max(i - 1, 0), priority=priority, area=i % 40))
    return "".join(parts).encode()


def medians(actions: list[Callable[[], object]], rounds: int) -> list[float]:
    """The median wall time of each action, the actions taking turns in every round (so that
    a machine busy with other work slows them alike), each run from a collected heap."""
    times: list[list[float]] = [[] for _ in actions]
    for _ in range(rounds):
        for action, spent in zip(actions, times, strict=True):
            gc.collect()  # what an earlier run left behind is not this run's cost
            start = time.perf_counter()
            action()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def changed_lines(before: bytes, after: bytes) -> tuple[int, int, list[int]]:
    """Lines removed and added by the edit, and the 1-based original lines it touches."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    # difflib is slow on 60,000 lines that repeat: diff only what lies between the common
    # beginning and end, which is exact.
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    middle = difflib.SequenceMatcher(
        a=old[head : len(old) - tail], b=new[head : len(new) - tail], autojunk=False
    )
    removed = added = 0
    touched: list[int] = []
    for tag, i1, i2, j1, j2 in middle.get_opcodes():
        if tag == "equal":
            continue
        removed += i2 - i1
        added += j2 - j1
        first, last = head + i1, head + i2
        touched += list(range(first + 1, last + 1)) if last > first else [first]  # insert: after
    return removed, added, touched


def task_lines(data: bytes, task_id: str) -> range:
    """The 1-based lines of a task: its comment line to the line before the next one's."""
    start = data.index(f"  - id: {task_id}\n".encode())
    first = data.count(b"\n", 0, start)  # the comment line above each generated task
    following = data.find(b"\n  # ---- task", start)  # the end of the task's last line
    last = data.count(b"\n", 0, following) + 1 if following >= 0 else 10**9
    return range(first, last + 1)


class Case:
    """One task of one backlog on disk, and the ways of writing it back."""

    def __init__(self, folder: Path, data: bytes, task_id: str) -> None:
        self.source = folder / "backlog.yaml"
        self.marked = folder / "marked.yaml"
        self.target = folder / "out.yaml"
        self.source.write_bytes(data)
        self.task_id = task_id
        self.needle = f"  - id: {task_id}\n".encode()

    def floor(self) -> bytes:
        """Read, replace the task's status found by a byte search, write."""
        data = self.source.read_bytes()
        at = data.index(b"status: pending", data.index(self.needle))
        result = data[:at] + b"status: completed" + data[at + len(b"status: pending") :]
        self.target.write_bytes(result)
        return result

    def mark(self) -> bytes:
        """Writeback: mark the task completed, reading only what that needs."""
        document = BacklogDocument.for_task(
            self.source.read_bytes(), self.task_id, source="backlog.yaml"
        )
        self._mark(document)
        result = document.render()
        self.target.write_bytes(result)
        return result

    def pull_request(self) -> bytes:
        """Writeback later: record the pull request number in the marked file."""
        document = BacklogDocument.for_task(
            self.marked.read_bytes(), self.task_id, source="backlog.yaml"
        )
        document.set_pr_number(self.task_id, 707)
        result = document.render()
        self.target.write_bytes(result)
        return result

    def whole(self) -> bytes:
        """The whole-file path: read and validate every task, then mark the one."""
        document = BacklogDocument.parse(self.source.read_bytes(), source="backlog.yaml")
        self._mark(document)
        result = document.render()
        self.target.write_bytes(result)
        return result

    def _mark(self, document: BacklogDocument) -> None:
        document.mark_completed(
            self.task_id,
            attempt_id=f"attempt-{self.task_id}-3f9c2a",
            branch=f"backlog/{self.task_id}-3f9c2a",
            completed_at=MOMENT,
        )


def check(case: Case, data: bytes) -> list[str]:
    """What is wrong with the case's results: bytes unlike the whole-file path's, or lines
    changed outside the task."""
    problems = []
    marked = case.mark()
    if marked != case.whole():
        problems.append("writeback bytes differ from the whole-file path's")
    case.marked.write_bytes(marked)
    document = BacklogDocument.parse(marked, source="backlog.yaml")
    document.set_pr_number(case.task_id, 707)
    if case.pull_request() != document.render():
        problems.append("the pull request number differs from the whole-file path's")
    removed, added, touched = changed_lines(data, marked)
    outside = [line for line in touched if line not in task_lines(data, case.task_id)]
    if outside or (removed, added) != (2, 5):
        problems.append(f"unexpected diff: {removed} removed, {added} added, outside {outside}")
    return [f"{case.task_id}: {problem}" for problem in problems]


def measure(tasks: int, rounds: int, folder: Path) -> tuple[float, list[str]]:
    """Print the figures for a backlog of `tasks` tasks; the worst ratio and the problems."""
    data = make_backlog(tasks)
    lines = data.count(b"\n")
    print(f"\n{tasks} tasks, {len(data) / 1e6:.2f} MB, {lines} lines")
    worst = 0.0
    problems: list[str] = []
    for where, number in (("start", 0), ("middle", tasks // 2), ("end", tasks - 1)):
        case = Case(folder, data, f"task-{number:05d}")
        problems += check(case, data)
        floor, mark, pull_request = medians([case.floor, case.mark, case.pull_request], rounds)
        whole_floor, whole = medians([case.floor, case.whole], max(3, rounds // 3))
        ratio = max(mark, pull_request) / floor
        worst = max(worst, ratio)
        print(
            f"  {where:<6} floor {floor * 1e3:6.2f} ms | writeback {mark * 1e3:6.2f} ms, "
            f"pr number {pull_request * 1e3:6.2f} ms: {ratio:4.1f}x the floor | "
            f"whole-file path {whole * 1e3:7.1f} ms: {whole / whole_floor:5.1f}x"
        )
    return worst, problems


def main() -> int:
    """Measure, check and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(f"rounds: {args.rounds}, medians of wall time")
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as tmp:
        worst, problems = measure(args.tasks, args.rounds, Path(tmp))
        small, small_problems = measure(SMALL, args.rounds, Path(tmp))
    print(
        f"\nworst writeback at {args.tasks} tasks: {worst:.1f}x the floor "
        f"(target <= {TARGET_RATIO:.0f}x); at {SMALL} tasks: {small:.1f}x"
    )
    failures = problems + small_problems
    if worst > TARGET_RATIO:
        failures.append(f"{worst:.1f}x the floor is over the target")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
