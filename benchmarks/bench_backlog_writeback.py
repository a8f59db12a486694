"""Backlog writeback on a 5,000-task file: load, mark one task completed, render.

Marks tasks at the start, the middle and the end of a generated backlog (header comments,
block scalars, flow lists, word and integer priorities), each time from a fresh load of the
file, and compares with what a YAML library alone needs for the same file in the same run: a
ruamel.yaml round-trip load and dump, and PyYAML's safe_load where PyYAML is installed. Checks
with difflib that each result differs from the original only in the marked task's lines.
Figures are medians. Exits non-zero when a check fails or a task takes over the target.

Run: .venv/bin/python benchmarks/bench_backlog_writeback.py [--tasks N] [--rounds N]
"""

from __future__ import annotations

import argparse
import difflib
import gc
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ruamel.yaml import YAML

from backlog_operator.backlog.document import BacklogDocument

TARGET_SECONDS = 0.5
RELPATH = ".backlog/backlog.yaml"

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


def make_backlog(tasks: int) -> bytes:
    """A backlog of `tasks` tasks in the style of a hand-written file."""
    parts = [HEADER]
    for i in range(tasks):
        priority = PRIORITIES[i % len(PRIORITIES)]
        parts.append(TASK.format(i=i, previous=max(i - 1, 0), priority=priority, area=i % 40))
    return "".join(parts).encode()


def median_seconds(action: Callable[[], object], rounds: int) -> float:
    """The median wall time of `action`, each run starting from a collected heap."""
    times = []
    for _ in range(rounds):
        gc.collect()  # what an earlier round left behind is not this round's cost
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def task_lines(document: BacklogDocument, task_id: str) -> range:
    """The 1-based lines of a task in the original file: its first to the next task's first."""
    lines = [task.line for task in document.tasks]
    index = [task.id for task in document.tasks].index(task_id)
    end = lines[index + 1] if index + 1 < len(lines) else 10**9
    return range(lines[index] - 1, end)  # the comment line above each generated task is its own


def main() -> int:
    """Measure, check and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = make_backlog(args.tasks)
    moment = datetime(2026, 1, 30, 23, 15, tzinfo=UTC)
    failures = []
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as tmp:
        repo = Path(tmp)
        (repo / ".backlog").mkdir()
        (repo / RELPATH).write_bytes(data)
        original = BacklogDocument.load(repo, RELPATH)
        reader = "fast reader" if original._outline.fast else "full parser"
        picks = {
            "start": original.tasks[0].id,
            "middle": original.tasks[len(original.tasks) // 2].id,
            "end": original.tasks[-1].id,
        }
        lines = data.count(b"\n")
        print(f"backlog: {args.tasks} tasks, {len(data) / 1e6:.2f} MB, {lines} lines")
        print(f"rounds: {args.rounds}, medians; read by the {reader}")
        results: dict[str, float] = {}
        for where, task_id in picks.items():

            def mark(task_id: str = task_id) -> bytes:
                document = BacklogDocument.load(repo, RELPATH)
                document.mark_completed(
                    task_id,
                    attempt_id=f"attempt-{task_id}-3f9c2a",
                    branch=f"backlog/{task_id}-3f9c2a",
                    completed_at=moment,
                    pr_number=707,
                )
                return document.render()

            results[where] = median_seconds(mark, args.rounds)
            removed, added, touched = changed_lines(data, mark())
            allowed = task_lines(original, task_id)
            outside = [line for line in touched if line not in allowed]
            verdict = "only the task's lines" if not outside else f"OUTSIDE the task: {outside}"
            print(
                f"mark {where:<6} ({task_id}): {results[where]:.3f} s per marked task; "
                f"diff: {removed} lines changed, {added - removed} added, {verdict}"
            )
            if outside or (removed, added) != (2, 6):
                failures.append(f"{where}: unexpected diff ({removed} removed, {added} added)")

        def ruamel_round_trip() -> None:
            yaml = YAML()  # round-trip
            yaml.dump(yaml.load(data), io.BytesIO())

        # One round: it takes some thirty times as long as a marked task.
        baselines = {"ruamel.yaml round-trip load+dump": median_seconds(ruamel_round_trip, 1)}
        try:
            import yaml as pyyaml
        except ImportError:
            print("PyYAML is not installed: no safe_load baseline")
        else:
            loader = getattr(pyyaml, "CSafeLoader", pyyaml.SafeLoader)
            name = f"PyYAML safe_load ({loader.__name__})"
            baselines[name] = median_seconds(lambda: pyyaml.load(data, Loader=loader), 3)  # noqa: S506
    worst = max(results.values())
    for name, seconds in baselines.items():
        print(f"baseline {name}: {seconds:.3f} s; worst mark / baseline = {worst / seconds:.2f}")
    print(f"worst: {worst:.3f} s per marked task (target <= {TARGET_SECONDS} s)")
    if worst > TARGET_SECONDS:
        failures.append(f"{worst:.3f} s per marked task is over the target")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
