"""Hostile backlog files: time and peak memory of `BacklogDocument.parse`, against ordinary ones.

For each hostile input (alias bombs, merge-key bombs, deep nesting, long lines, many aliases,
and files without aliases that hold more nodes or tasks than the product limits `MAX_NODES` and
`MAX_TASKS` allow) parses the file in a child process and prints the outcome, the parse time,
the peak memory of the child, and both as ratios to a baseline measured in the same run: an
ordinary backlog of the same byte size (generated in the style of `bench_backlog_writeback`),
read as the operator reads it (the fast reader), and the same file with one anchor added, so
that ruamel.yaml's composer reads it (the full reader, which most hostile files here go
through). Prints, asserts nothing.

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
    """300,000 empty flow lists on one line (the full reader; each one a node)."""
    return ("tasks:\n  - id: long\n    x: [" + "[], " * 300_000 + "]\n").encode()


_MAX_BYTES = 5 * 1024 * 1024  # the document's byte limit (DEFAULT_MAX_BYTES)


def _fill(head: str, piece: str, tail: str) -> bytes:
    """`head`, `piece` as many times as the byte limit leaves room for, and `tail`."""
    return (head + piece * ((_MAX_BYTES - len(head) - len(tail)) // len(piece)) + tail).encode()


def dense_words() -> bytes:
    """1.7 million one-letter items in one list, 5 MB (the fast reader; past MAX_NODES)."""
    return _fill("tasks:\n  - id: long\n    x: [", "a, ", "]\n")


def dense_lists() -> bytes:
    """1.3 million empty lists in one list, 5 MB (the full reader; past MAX_NODES)."""
    return _fill("tasks:\n  - id: long\n    x: [", "[], ", "]\n")


def many_tasks() -> bytes:
    """330,000 one-line tasks, 5 MB (the fast reader; past MAX_TASKS)."""
    return ("tasks:\n" + "".join(f"- {{id: t{n}}}\n" for n in range(330_000))).encode()


def many_empty_items() -> bytes:
    """870,000 empty list items, one a line, 5 MB, and an anchor: the full reader composes
    MAX_NODES nodes before it refuses the file (no flow collection to count ahead)."""
    return _fill("tasks:\n  - id: &a t\n    x:\n", "    -\n", "")


def many_small_aliases() -> bytes:
    """100,000 aliases of one word."""
    words = ", ".join(["*w"] * 100_000)
    return f"tasks:\n  - id: t\n    word: &w lol\n    words: [{words}]\n".encode()


def alias_keys_after_spaces() -> bytes:
    """10,000 aliases of a key whose anchor is followed by a million spaces."""
    return (
        "tasks:\n  - id: t\n    keys: [&k a" + " " * 1_000_000 + "]\n    x:\n"
        + "    - {*k : }\n" * 10_000
    ).encode()  # fmt: skip


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
    "1.2 MB line of [] lists": long_line_of_flow_collections,
    "100,000 small aliases": many_small_aliases,
    "alias keys after 1M spaces": alias_keys_after_spaces,
    "5 MB list of words": dense_words,
    "5 MB list of [] lists": dense_lists,
    "330,000 one-line tasks": many_tasks,
    "5 MB of empty items, full": many_empty_items,
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
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
data = sys.stdin.buffer.read()
from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.backlog.errors import BacklogError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    document = BacklogDocument.parse(data, source="backlog.yaml")
    outcome = f"loaded {len(document.tasks)} tasks"
except BacklogError as error:
    outcome = f"refused: {error}"
except BaseException as error:
    outcome = f"{type(error).__name__}: {str(error)[:80]}"
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "seconds": seconds, "peak_kb": peak,
                  "grown_kb": peak - before}))
"""


def measure(data: bytes, args: argparse.Namespace) -> dict[str, object]:
    """Parse `data` in a child `args.rounds` times: median seconds, largest peak."""
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
    return {
        "outcome": runs[-1]["outcome"],
        "seconds": statistics.median(run["seconds"] for run in runs),
        "peak_mb": max(run["peak_kb"] for run in runs) / 1024,
        "grown_mb": max(run["grown_kb"] for run in runs) / 1024,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="parses per file (median time)")
    parser.add_argument("--memory-mb", type=int, default=2048, help="each child's address space")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per child")
    parser.add_argument("--only", default="", help="only the cases whose name holds this")
    parser.add_argument("--pythonpath", default="", help="import backlog_operator from here")
    args = parser.parse_args()

    header = (
        f"{'case':30} {'bytes':>8} {'parse':>9} {'peak':>8} {'grown':>8} "
        f"{'time vs ordinary':>17} {'peak vs ordinary':>17}  outcome"
    )
    print(f"children: {args.memory_mb} MB address space, {args.timeout:g} s, {args.rounds} rounds")
    print("ordinary = a hand-written-style backlog of the same size: fast reader / full reader")
    print(header)
    print("-" * len(header))
    for name, make in CASES.items():
        if args.only not in name:
            continue
        data = make()
        fast = measure(ordinary_backlog(len(data), anchor=False), args)
        full = measure(ordinary_backlog(len(data), anchor=True), args)
        hostile = measure(data, args)
        seconds = hostile["seconds"]
        shown_seconds = f"{seconds:.3f} s" if isinstance(seconds, float) else "-"
        peak = hostile.get("peak_mb")
        grown = hostile.get("grown_mb")
        time_ratio = f"{_ratio(seconds, fast['seconds'])} / {_ratio(seconds, full['seconds'])}"
        peak_ratio = f"{_ratio(peak, fast.get('peak_mb'))} / {_ratio(peak, full.get('peak_mb'))}"
        print(
            f"{name:30} {_size(len(data)):>8} {shown_seconds:>9} "
            f"{f'{peak:.0f} MB' if isinstance(peak, float) else '-':>8} "
            f"{f'{grown:.0f} MB' if isinstance(grown, float) else '-':>8} "
            f"{time_ratio:>17} {peak_ratio:>17}  {str(hostile['outcome'])[:90]}",
            flush=True,
        )
    print()
    print("parse: median time of BacklogDocument.parse; peak: the child's peak RSS (imports")
    print("included); grown: how far the peak grew during the parse. Ratios: hostile / ordinary")
    print("(read by the fast reader / with one anchor, by the full reader), same byte size.")


if __name__ == "__main__":
    main()
