"""Hostile backlog files: time and memory of `BacklogDocument.parse`, against ordinary ones.

For each hostile input (alias bombs, merge-key bombs, deep nesting, long lines, many aliases,
files without aliases past the product limits `MAX_NODES`, `MAX_FULL_NODES`, `MAX_TASKS`,
`MAX_TASK_NODES` and `MAX_LINES`, and files just inside them) parses the file in a child
process and prints the outcome, the parse time, how far the child's resident memory grew, the
same after the worker's edits for a file that loads, and each as a ratio to a baseline measured
in the same run: an ordinary backlog of the same byte size (generated in the style of
`bench_backlog_writeback`), read as the operator reads it (the fast reader), and the same file
with one anchor added, so that ruamel.yaml's composer reads it (the full parser, which many
hostile files here go through). Prints, asserts nothing.

Each child runs under an address-space limit and a timeout, so that an unbounded reader shows
up as "MemoryError" or "killed" instead of eating the machine. To measure another checkout of
the package (before a change, say), point the children at it with --pythonpath.

Run: .venv/bin/python benchmarks/bench_backlog_hostile.py [--rounds N] [--memory-mb N]
     [--timeout S] [--only SUBSTRING] [--pythonpath DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable

# ------------------------------------------------------------------------ the hostile files


def _nine(item: str) -> str:
    return "[" + ",".join([item] * 9) + "]"


def billion_laughs_tasks() -> bytes:
    """The classic: nine anchors of nine aliases each, as the task list (9 ** 9 strings)."""
    levels = zip("abcdefgh", "bcdefghi", strict=True)
    return (
        "tasks:\n"
        + f"  - &a {_nine('lol')}\n"
        + "".join(f"  - &{b} {_nine('*' + a)}\n" for a, b in levels)
    ).encode()


def billion_laughs_field() -> bytes:
    """The same in the (kept, unknown) fields of an ordinary task."""
    levels = enumerate(zip("abcdefgh", "bcdefghi", strict=True), start=1)
    return (
        "tasks:\n  - id: bomb\n    title: an ordinary task\n"
        + f"    l0: &a {_nine('lol')}\n"
        + "".join(f"    l{n}: &{b} {_nine('*' + a)}\n" for n, (a, b) in levels)
    ).encode()


def merge_key_doubling() -> bytes:
    """Merge keys merging the mapping before twice, 40 times: 2 ** 40 times three keys."""
    return (
        "tasks:\n  - &m0 {id: bomb, a: 1, b: 2}\n"
        + "".join(f"  - &m{n} {{<<: [*m{n - 1}, *m{n - 1}], k{n}: {n}}}\n" for n in range(1, 41))
    ).encode()


def big_mapping_merged() -> bytes:
    """A mapping of 1,000 keys merged into each of 10,000 tasks: 20 million nodes."""
    defaults = ", ".join(f"k{n}: {n}" for n in range(1000))
    tasks = "".join(f"  - {{<<: *d, id: t{n}}}\n" for n in range(10_000))
    return f"defaults: &d {{{defaults}}}\ntasks:\n{tasks}".encode()


def big_string_aliased() -> bytes:
    """A 100,000-character string aliased 10,000 times: 1 GB of text."""
    copies = ", ".join(["*s"] * 10_000)
    return f"tasks:\n  - id: t\n    text: &s {'x' * 100_000}\n    copies: [{copies}]\n".encode()


def recursive_alias() -> bytes:
    """An alias inside the node it names."""
    return b"tasks:\n  - id: loop\n    self: &a [1, [2, *a]]\n"


def deep_flow() -> bytes:
    """10,000 nested flow sequences."""
    return ("tasks:\n  - id: deep\n    x: " + "[" * 10_000 + "]" * 10_000 + "\n").encode()


def deep_block() -> bytes:
    """150 nested block mappings."""
    lines = ["tasks:", "  - id: deep", "    x:"]
    lines += ["  " * (level + 3) + f"k{level}:" for level in range(150)]
    return ("\n".join(lines) + " leaf\n").encode()


def deep_through_aliases() -> bytes:
    """Anchors of 60 nested levels, each holding the one before."""
    rows = ["tasks:", "  - id: deep", "    a: &a " + "[" * 60 + "]" * 60]
    rows += [
        f"    {b}: &{b} " + "[" * 59 + f"*{a}" + "]" * 59 for a, b in zip("abc", "bcd", strict=True)
    ]
    return ("\n".join(rows) + "\n").encode()


def long_integer() -> bytes:
    """A 100,000-digit integer (past Python's 4,300-digit limit for int())."""
    return ("tasks:\n  - id: t\n    n: " + "9" * 100_000 + "\n").encode()


def long_line() -> bytes:
    """One 4 MB line of text in a task's description."""
    return ("tasks:\n  - id: long\n    description: " + "x" * 4_000_000 + "\n").encode()


def long_line_of_flow_collections() -> bytes:
    """300,000 empty flow lists on one line in a task (past the task's node limit)."""
    return ("tasks:\n  - id: long\n    x: [" + "[], " * 300_000 + "]\n").encode()


_MAX_BYTES = 5 * 1024 * 1024  # the document's byte limit (DEFAULT_MAX_BYTES)
_MAX_NODES = 500_000  # the document's limits (MAX_NODES and the rest), as of this writing
_MAX_FULL_NODES = 100_000
_MAX_TASK_NODES = 10_000
_MAX_LINES = 500_000
_EDIT_NODES = 12  # what the worker's two edits add to a task that has only an `id`
_EDIT_LINES = 6  # and the lines they add


def _fill(head: str, piece: str, tail: str) -> bytes:
    """`head`, `piece` as many times as the byte limit leaves room for, and `tail`."""
    return (head + piece * ((_MAX_BYTES - len(head) - len(tail)) // len(piece)) + tail).encode()


def dense_words() -> bytes:
    """1.7 million one-letter items in one list, 5 MB (the fast reader; past MAX_NODES)."""
    return _fill("tasks:\n  - id: long\nx: [", "a, ", "]\n")


def dense_lists() -> bytes:
    """1.3 million empty lists in one list, 5 MB (past MAX_NODES)."""
    return _fill("tasks:\n  - id: long\nx: [", "[], ", "]\n")


def half_a_million_lists() -> bytes:
    """500,000 empty lists in one list, 2 MB: within MAX_NODES, past MAX_FULL_NODES (the full
    parser: this took it 22 s and 530 MB while MAX_NODES was its only node limit)."""
    return ("tasks:\n  - id: long\nx: [" + "[], " * 499_990 + "]\n").encode()


def many_tasks() -> bytes:
    """330,000 one-line tasks, 5 MB (the fast reader; past MAX_TASKS)."""
    return ("tasks:\n" + "".join(f"- {{id: t{n}}}\n" for n in range(330_000))).encode()


def many_empty_items() -> bytes:
    """870,000 empty list items, one a line, 5 MB, and an anchor (past MAX_LINES)."""
    return _fill("tasks:\n  - id: &a t\nx:\n", "-\n", "")


def blank_lines() -> bytes:
    """Five million blank lines (past MAX_LINES; they hold no node)."""
    return ("tasks:\n  - id: t\n" + "\n" * (_MAX_BYTES - 20)).encode()


def late_anchor() -> bytes:
    """120,000 plain nodes, then an anchor: refused by the fast reader's count, at once."""
    keys = "".join(f"  k{n}: v\n" for n in range(60_000))
    return f"tasks:\n  - id: t\nx:\n{keys}last: &a v\n".encode()


def full_at_limit() -> bytes:
    """A file only the full parser reads (an anchor), at MAX_FULL_NODES once edited: nested
    empty lists, the dearest nodes for it."""
    room = _MAX_FULL_NODES - _EDIT_NODES - 8  # the root, tasks, the task, id, t, x and `[`
    body = "[[[]]], " * (room // 3) + "[], " * (room % 3)
    return f"tasks:\n  - id: &a t\nx: [{body}]\n".encode()


def plain_at_limit() -> bytes:
    """A plain file at MAX_NODES once edited: the keys and values of one mapping, the dearest
    nodes for the fast reader."""
    keys = "".join(f"  k{n}: v\n" for n in range((_MAX_NODES - _EDIT_NODES - 8) // 2))
    return f"tasks:\n  - id: t\nx:\n{keys}".encode()


def task_at_limit() -> bytes:
    """One task at MAX_TASK_NODES once edited (the worker reads it again with the parser)."""
    items = "    - a\n" * (_MAX_TASK_NODES - _EDIT_NODES - 5)
    return f"tasks:\n  - id: t\n    x:\n{items}".encode()


def lines_at_limit() -> bytes:
    """MAX_LINES lines once edited, blank but two, and an anchor: the full parser scans each."""
    return ("tasks:\n  - id: &a t\n" + "\n" * (_MAX_LINES - _EDIT_LINES - 2)).encode()


def task_of_keys() -> bytes:
    """A task of 250,000 keys (past MAX_TASK_NODES): the worker has the parser read an edited
    task again, which took it 100 s and 440 MB while a task had no limit of its own."""
    keys = "".join(f"      k{n}: v\n" for n in range(249_990))
    return f"tasks:\n  - id: t\n    x:\n{keys}".encode()


def ordinary_tasks_at_limit() -> bytes:
    """20,000 ordinary tasks in plain YAML (4.6 MB, 400,000 nodes): the largest ordinary
    backlog the limits let through, which any limit must leave room for."""
    task = (
        '  - id: task-{n:05d}\n    title: "Task {n}: do it"\n    priority: high\n'
        "    ready: true\n    status: pending\n    dependencies: [task-{n:05d}]\n"
        '    allowed_paths: ["src/a/**", docs/a.md]\n    description: |\n'
        "      Change the code.\n"
    )
    return ("tasks:\n" + "".join(task.format(n=n) for n in range(20_000))).encode()


def many_small_aliases() -> bytes:
    """90,000 aliases of one word (within the alias bounds and MAX_FULL_NODES)."""
    words = ", ".join(["*w"] * 90_000)
    return f"tasks:\n  - id: t\nword: &w lol\nwords: [{words}]\n".encode()


def alias_keys_after_spaces() -> bytes:
    """10,000 aliases of a key whose anchor is followed by a million spaces."""
    return (
        "tasks:\n  - id: t\nkeys: [&k a" + " " * 1_000_000 + "]\nx:\n" + "  - {*k : }\n" * 10_000
    ).encode()


CASES: dict[str, Callable[[], bytes]] = {
    "billion laughs, task list": billion_laughs_tasks,
    "billion laughs, task field": billion_laughs_field,
    "merge keys doubling": merge_key_doubling,
    "big mapping merged 10,000x": big_mapping_merged,
    "100 KB string aliased 10,000x": big_string_aliased,
    "recursive alias": recursive_alias,
    "10,000 nested [": deep_flow,
    "150 nested block mappings": deep_block,
    "nesting through aliases": deep_through_aliases,
    "100,000-digit integer": long_integer,
    "4 MB line (description)": long_line,
    "1.2 MB line of [] in a task": long_line_of_flow_collections,
    "90,000 small aliases": many_small_aliases,
    "alias keys after 1M spaces": alias_keys_after_spaces,
    "5 MB list of words": dense_words,
    "5 MB list of [] lists": dense_lists,
    "500,000 [] lists, 2 MB": half_a_million_lists,
    "330,000 one-line tasks": many_tasks,
    "870,000 empty items, full": many_empty_items,
    "5 million blank lines": blank_lines,
    "120,000 plain nodes, anchor": late_anchor,
    "at MAX_FULL_NODES, full": full_at_limit,
    "at MAX_NODES, fast": plain_at_limit,
    "task at MAX_TASK_NODES": task_at_limit,
    "250,000 keys in a task": task_of_keys,
    "at MAX_LINES, full": lines_at_limit,
    "20,000 ordinary tasks, fast": ordinary_tasks_at_limit,
}

# ------------------------------------------------------------------------ the baseline

_TASK = """\
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
_PRIORITIES = ["critical", "high", "medium", "low", "1", "2", "3"]


def ordinary_backlog(size: int, *, anchor: bool) -> bytes:
    """A hand-written-style backlog of at least `size` bytes (whole tasks, at least one).

    With `anchor`, the header holds an anchor, which sends the file to the full reader.
    """
    parts = ["project: &p bench\ntasks:\n" if anchor else "project: bench\ntasks:\n"]
    length = len(parts[0])
    i = 0
    while length < size or i == 0:
        task = _TASK.format(
            i=i,
            previous=max(i - 1, 0),
            priority=_PRIORITIES[i % len(_PRIORITIES)],
            area=i % 40,
        )
        parts.append(task)
        length += len(task)
        i += 1
    return "".join(parts).encode()


# ------------------------------------------------------------------------ measuring

_CHILD = r"""
import json, resource, sys, time
from datetime import UTC, datetime
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
data = sys.stdin.buffer.read()
from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.backlog.errors import BacklogError

def kilobytes(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)

# A child starts with its parent's peak resident size: reset it to the current one.
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
before = kilobytes("VmRSS")
start = time.perf_counter()
try:
    document = BacklogDocument.parse(data, source="backlog.yaml")
    outcome = f"loaded {len(document.tasks)} tasks"
except BacklogError as error:
    document = None
    outcome = f"refused: {error}"
except BaseException as error:
    document = None
    outcome = f"{type(error).__name__}: {str(error)[:80]}"
seconds = time.perf_counter() - start
result = {"outcome": outcome, "seconds": seconds, "peak_kb": kilobytes("VmHWM"),
          "grown_kb": kilobytes("VmHWM") - before}
if document is not None and document.tasks:
    # As the worker's publish step edits it: the last task completed, then its pull request.
    task_id = document.tasks[-1].id
    start = time.perf_counter()
    try:
        document.mark_completed(task_id, attempt_id="attempt-1", branch="backlog/x",
                                completed_at=datetime(2026, 1, 30, tzinfo=UTC))
        document.set_pr_number(task_id, 7)
    except BaseException as error:
        result["outcome"] += f"; edit: {type(error).__name__}: {str(error)[:60]}"
    result["edit_seconds"] = time.perf_counter() - start
    result["edited_kb"] = kilobytes("VmHWM") - before
print(json.dumps(result))
"""


def measure(data: bytes, args: argparse.Namespace) -> dict[str, object]:
    """Parse (and edit) `data` in a child `args.rounds` times: median seconds, largest growth."""
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.pythonpath, env.get("PYTHONPATH")]))
    runs = []
    for _ in range(args.rounds):
        limit = str(args.memory_mb * 1024 * 1024)
        try:
            completed = subprocess.run(
                [sys.executable, "-c", _CHILD, limit],
                input=data,
                capture_output=True,
                timeout=args.timeout,
                check=False,
                env=env,
            )
        except subprocess.TimeoutExpired:
            return {"outcome": f"killed after {args.timeout:g} s", "seconds": None}
        lines = completed.stdout.decode().strip().splitlines()
        if not lines:
            tail = completed.stderr.decode().strip().splitlines()[-1:]
            return {"outcome": f"child died ({completed.returncode}) {tail}", "seconds": None}
        runs.append(json.loads(lines[-1]))
        if "loaded" not in runs[-1]["outcome"] and "refused" not in runs[-1]["outcome"]:
            break  # a crash: once is enough
    edited = [run["edited_kb"] for run in runs if "edited_kb" in run]
    return {
        "outcome": runs[-1]["outcome"],
        "seconds": statistics.median(run["seconds"] for run in runs),
        "peak_mb": max(run["peak_kb"] for run in runs) / 1024,
        "grown_mb": max(run["grown_kb"] for run in runs) / 1024,
        "edited_mb": max(edited) / 1024 if edited else None,
        "edit_seconds": (
            statistics.median(run["edit_seconds"] for run in runs if "edit_seconds" in run)
            if edited
            else None
        ),
    }


def _ratio(value: object, base: object) -> str:
    if not isinstance(value, float) or not isinstance(base, float) or base <= 0:
        return "-"
    return f"{value / base:.1f}x"


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / 1024 / 1024:.1f} MB"
    if count >= 1024:
        return f"{count / 1024:.0f} KB"
    return f"{count} B"


def _figure(value: object, unit: str, digits: int = 0) -> str:
    return f"{value:.{digits}f} {unit}" if isinstance(value, float) else "-"


def _row(name: str, data: bytes, args: argparse.Namespace) -> str:
    """One case against the ordinary backlogs of its size, measured now: its line."""
    fast = measure(ordinary_backlog(len(data), anchor=False), args)
    full = measure(ordinary_backlog(len(data), anchor=True), args)
    hostile = measure(data, args)
    seconds, grown = hostile["seconds"], hostile.get("grown_mb")
    time_ratio = f"{_ratio(seconds, fast['seconds'])} / {_ratio(seconds, full['seconds'])}"
    grown_ratio = f"{_ratio(grown, fast.get('grown_mb'))} / {_ratio(grown, full.get('grown_mb'))}"
    worker = hostile.get("edited_mb")
    worker_ratio = _ratio(worker, fast.get("edited_mb"))
    return (
        f"{name:29} {_size(len(data)):>7} {_figure(seconds, 's', 2):>8} "
        f"{_figure(grown, 'MB'):>7} {_figure(worker, 'MB'):>7} {time_ratio:>13} "
        f"{grown_ratio:>13} {worker_ratio:>7}  {str(hostile['outcome'])[:70]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="parses per file (median time)")
    parser.add_argument("--memory-mb", type=int, default=2048, help="each child's address space")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per child")
    parser.add_argument("--only", default="", help="only the cases whose name holds this")
    parser.add_argument("--pythonpath", default="", help="import backlog_operator from here")
    args = parser.parse_args()

    header = (
        f"{'case':29} {'bytes':>7} {'parse':>8} {'grown':>7} {'worker':>7} "
        f"{'time vs ord.':>13} {'grown vs ord.':>13} {'worker':>7}  outcome"
    )
    print(f"children: {args.memory_mb} MB address space, {args.timeout:g} s, {args.rounds} rounds")
    print("ord. = an ordinary backlog of the same size, read by the fast reader / with one anchor,")
    print("by the full parser (past some 2.4 MB that one is refused: MAX_FULL_NODES)")
    print(header)
    print("-" * len(header))
    for name, make in CASES.items():
        if args.only in name:
            print(_row(name, make(), args), flush=True)
    print()
    print("parse: median time of BacklogDocument.parse; grown: how far the child's resident memory")
    print("grew past its size before the parse (its peak is reset first); worker: the same after")
    print("the parse and the worker's two edits of the last task (mark_completed, set_pr_number),")
    print("for a file that loads. Ratios: this case / the ordinary backlogs of its size, measured")
    print("in the same run (time and growth: fast / full; worker: fast).")


if __name__ == "__main__":
    main()
