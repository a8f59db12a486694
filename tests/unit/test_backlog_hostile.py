"""Hostile backlog files: refused with a BacklogError at their line, quickly, in little memory.

The backlog file is untrusted input (anyone who can commit to the repository writes it). YAML
lets a few hundred bytes describe billions of nodes through aliases, or nest thousands of levels
deep. Each hostile file here must be refused with a BacklogError naming the line, in well under
a second and a few MB; a backlog that shares a few lists or mappings through anchors still loads.
Without a single alias, a file within the byte limit can still hold millions of nodes, hundreds
of thousands of tasks or millions of blank lines: the product limits (`MAX_NODES`,
`MAX_FULL_NODES` for a file only the full parser reads, `MAX_TASKS`, `MAX_TASK_NODES`,
`MAX_LINES`) refuse it while it is read. A file just inside every limit loads, and is edited as
the worker edits it, within a stated memory budget; one node or line more is refused.

Every case is parsed in a child process with an address-space limit (RLIMIT_AS) and a timeout,
so that a regression fails the test instead of eating the machine. The child reports the
outcome, the parse time and how far its resident memory grew past where it stood before the
parse (the peak is reset first: a child inherits its parent's, which would hide the growth).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from backlog_operator.backlog import document
from backlog_operator.backlog._fast_reader import FastReader
from backlog_operator.backlog._full_reader import FullReader
from backlog_operator.backlog._outline import LimitError, OutsideSubsetError
from backlog_operator.backlog.document import DEFAULT_MAX_BYTES, BacklogDocument
from backlog_operator.backlog.errors import BacklogError

SOURCE = ".backlog/backlog.yaml"
NOW = datetime(2026, 1, 30, 23, 15, tzinfo=UTC)
# The child's whole address space. Its imports take some 40 MB of it; the worst file the full
# parser reads, edited as the worker edits it, reached 160 MB (see `FULL_BUDGET_MB`). The fast
# reader's worst file, so edited, reached 355 MB: the tests of it have a limit of their own.
MEMORY_LIMIT = 256 * 1024 * 1024
FAST_MEMORY_LIMIT = 448 * 1024 * 1024
TIMEOUT_SECONDS = 20.0  # the child's start and imports included (about half a second)
PARSE_SECONDS = 1.0  # a hostile file must be refused within this
GROWTH_MB = 8.0  # and the child's resident memory may grow by at most this while it is parsed

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

# The peak resident size starts at the parent's (it survives fork and exec): reset it to the
# current size (Linux 4.0 and later), so that the peak after the parse is the parse's.
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
before = kilobytes("VmRSS")
start = time.perf_counter()
try:
    document = BacklogDocument.parse(data, source=sys.argv[2])
    result = {"outcome": "loaded", "tasks": len(document.tasks)}
except BacklogError as error:
    result = {"outcome": "refused", "line": error.line, "problem": error.problem}
except BaseException as error:  # MemoryError, RecursionError, a bare ValueError...
    result = {"outcome": type(error).__name__, "problem": str(error)[:300]}
result["seconds"] = time.perf_counter() - start
result["grown_mb"] = (kilobytes("VmHWM") - before) / 1024
if sys.argv[3] == "edit" and result["outcome"] == "loaded":
    # As the worker's publish step does: mark the last task completed, then record its PR.
    task_id = document.tasks[-1].id
    try:
        document.mark_completed(
            task_id, attempt_id="attempt-1", branch="backlog/x",
            completed_at=datetime(2026, 1, 30, tzinfo=UTC),
        )
        document.set_pr_number(task_id, 7)
        result["edit"] = "edited" if document.changed else "unchanged"
    except BaseException as error:
        result["edit"] = f"{type(error).__name__}: {str(error)[:300]}"
    result["edited_grown_mb"] = (kilobytes("VmHWM") - before) / 1024
print(json.dumps(result))
"""


def parse_in_child(
    data: bytes,
    *,
    edit: bool = False,
    memory_limit: int = MEMORY_LIMIT,
    timeout: float = TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Parse `data` in a child process under the memory limit and the timeout; with `edit`,
    edit its last task as the worker does, and report the growth of parse and edit too."""
    mode = "edit" if edit else "parse"
    try:
        completed = subprocess.run(
            [sys.executable, "-c", _CHILD, str(memory_limit), SOURCE, mode],
            input=data,
            capture_output=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"parsing took more than {timeout} s (killed)")
    lines = completed.stdout.decode().strip().splitlines()
    if completed.returncode != 0 or not lines:
        stderr = completed.stderr.decode()[-2000:]
        pytest.fail(f"the child failed (exit {completed.returncode}): {stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# ------------------------------------------------------------------------ the hostile files


def _nine(item: str) -> str:
    return "[" + ",".join([item] * 9) + "]"


# The classic "billion laughs", as the task list itself: 340 bytes, 9 ** 9 = 387,420,489 strings.
BILLION_LAUGHS_TASKS = (
    "tasks:\n"
    + f"  - &a {_nine('lol')}\n"
    + "".join(f"  - &{b} {_nine('*' + a)}\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True))
).encode()

# The same in the fields of an ordinary task (unknown fields are kept, so they would validate).
BILLION_LAUGHS_FIELD = (
    "tasks:\n  - id: bomb\n    title: an ordinary task\n"
    + f"    l0: &a {_nine('lol')}\n"
    + "".join(
        f"    l{n}: &{b} {_nine('*' + a)}\n"
        for n, (a, b) in enumerate(zip("abcdefgh", "bcdefghi", strict=True), start=1)
    )
).encode()

# Outside the tasks, at the top of the file: read all the same.
BILLION_LAUGHS_TOP = (
    f"a: &a {_nine('lol')}\n"
    + "".join(f"{b}: &{b} {_nine('*' + a)}\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True))
    + "tasks: []\n"
).encode()

# Merge keys that double what they merge at each level: 2 ** 40 times three keys, 1.5 KB.
MERGE_KEY_DOUBLING = (
    "tasks:\n  - &m0 {id: bomb, a: 1, b: 2}\n"
    + "".join(f"  - &m{n} {{<<: [*m{n - 1}, *m{n - 1}], k{n}: {n}}}\n" for n in range(1, 41))
).encode()

# One mapping of 1,000 keys merged into each of 10,000 tasks: 20 million nodes from 250 KB.
BIG_MAPPING_MERGED = (
    "defaults: &d {" + ", ".join(f"k{n}: {n}" for n in range(1000)) + "}\ntasks:\n"
    + "".join(f"  - {{<<: *d, id: t{n}}}\n" for n in range(10_000))
).encode()  # fmt: skip

# Merge keys that each add one key to the one before, 2,000 of them: the chain nests as deep.
MERGE_KEY_CHAIN = (
    "tasks:\n  - &m0 {id: chain}\n"
    + "".join(f"  - &m{n} {{<<: *m{n - 1}, k{n}: {n}}}\n" for n in range(1, 2001))
).encode()

# One 100,000-character string, aliased 10,000 times: 140 KB that expand to 1 GB of text.
BIG_STRING_ALIASED = (
    "tasks:\n  - id: t\n    text: &s " + "x" * 100_000 + "\n    copies: ["
    + ", ".join(["*s"] * 10_000) + "]\n"
).encode()  # fmt: skip

# Outside the tasks: in a task, 10,000 levels are past the task's node limit as well.
DEEP_FLOW_SEQUENCES = ("tasks:\n  - id: deep\nx: " + "[" * 10_000 + "]" * 10_000 + "\n").encode()
DEEP_FLOW_MAPPINGS = (
    "tasks:\n  - id: deep\nx: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n"
).encode()


def _deep_block(levels: int) -> bytes:
    """Block mappings nested `levels` deep under a task's `x:` (3 + levels in all)."""
    lines = ["tasks:", "  - id: deep", "    x:"]
    lines += ["  " * (level + 3) + f"k{level}:" for level in range(levels)]
    return ("\n".join(lines) + " leaf\n").encode()


def _flow(levels: int) -> str:
    return "[" * levels + "]" * levels


# Each anchor nests 60 levels and holds the one before: 240 levels once expanded.
DEEP_THROUGH_ALIASES = (
    "tasks:\n  - id: deep\n"
    + "    a: &a " + _flow(60) + "\n"
    + "    b: &b " + "[" * 59 + "*a" + "]" * 59 + "\n"
    + "    c: &c " + "[" * 59 + "*b" + "]" * 59 + "\n"
    + "    d: &d " + "[" * 59 + "*c" + "]" * 59 + "\n"
).encode()  # fmt: skip

RECURSIVE_ALIAS = b"tasks:\n  - id: loop\n    self: &a [1, [2, *a]]\n"

# Past Python's 4,300-digit limit for int(): ruamel.yaml raised a bare ValueError.
LONG_INTEGER = ("tasks:\n  - id: t\n    n: " + "9" * 100_000 + "\n").encode()
IMPOSSIBLE_DATE = b"tasks:\n  - id: t\n    completed_at: 2026-13-45\n"

# (case id, file, line of the error, start of the problem)
HOSTILE = [
    ("billion laughs as the task list", BILLION_LAUGHS_TASKS, 7, "aliases expand to more than"),
    ("billion laughs in a task's fields", BILLION_LAUGHS_FIELD, 9, "aliases expand to more than"),
    ("billion laughs at the top", BILLION_LAUGHS_TOP, 6, "aliases expand to more than"),
    ("merge keys doubling", MERGE_KEY_DOUBLING, 15, "aliases expand to more than"),
    ("a big mapping merged", BIG_MAPPING_MERGED, 56, "aliases expand to more than"),
    ("merge keys chained", MERGE_KEY_CHAIN, 100, "nested deeper than 100 levels through"),
    ("a big string aliased", BIG_STRING_ALIASED, 4, "aliases expand to more than 1400"),
    ("10,000 nested flow sequences", DEEP_FLOW_SEQUENCES, 3, "nested deeper than 100 levels"),
    ("10,000 nested flow mappings", DEEP_FLOW_MAPPINGS, 3, "nested deeper than 100 levels"),
    ("150 nested block mappings", _deep_block(150), 101, "nested deeper than 100 levels"),
    ("nesting through aliases", DEEP_THROUGH_ALIASES, 4, "nested deeper than 100 levels"),
    ("a recursive alias", RECURSIVE_ALIAS, 3, "alias *a is inside the node it names"),
    ("a 100,000-digit integer", LONG_INTEGER, 3, "'99999999"),
    ("an impossible date", IMPOSSIBLE_DATE, 3, "'2026-13-45' cannot be read as a date"),
]


@pytest.mark.parametrize(
    ("data", "line", "problem"),
    [pytest.param(data, line, problem, id=name) for name, data, line, problem in HOSTILE],
)
def test_a_hostile_file_is_refused_quickly_at_its_line(
    data: bytes, line: int, problem: str
) -> None:
    result = parse_in_child(data)
    assert result["outcome"] == "refused", result
    assert (result["line"], result["problem"][: len(problem)]) == (line, problem), result
    assert result["seconds"] < PARSE_SECONDS, result
    assert result["grown_mb"] < GROWTH_MB, result


def test_the_alias_budget_is_named_in_the_message() -> None:
    result = parse_in_child(BILLION_LAUGHS_TASKS)  # in the child: a regression would explode
    # 55 nodes written up to the first *e on line 7 (an alias counts as one): 100,000 + 4 x 55.
    assert (result["line"], result["problem"]) == (
        7,
        "aliases expand to more than 100220 nodes (at alias *e); a backlog needs far fewer",
    ), result


def test_the_integer_message_says_what_to_do() -> None:
    with pytest.raises(BacklogError) as caught:
        BacklogDocument.parse(LONG_INTEGER, source=SOURCE)
    assert str(caught.value) == (
        f"{SOURCE}:3: '9999999999999999999999999999999999999...' cannot be read as an integer "
        "(Exceeds the limit (4300 digits) for integer string conversion: value has 100000 "
        "digits); quote it to keep it as text"
    )


# ------------------------------------------------------------------- the product limits


def _fill(head: str, piece: str, tail: str) -> bytes:
    """`head`, `piece` as many times as the byte limit leaves room for, and `tail`."""
    room = DEFAULT_MAX_BYTES - len(head) - len(tail)
    return (head + piece * (room // len(piece)) + tail).encode()


# No alias anywhere, and within the byte limit. 1.7 million one-letter items in a list: the fast
# reader read them all, in 3 s and 350 MB.
DENSE_WORDS = _fill("tasks:\n  - id: long\nx: [", "a, ", "]\n")
# 1.3 million empty lists. The fast reader reads no nested flow collection, so the full parser
# did: it took 90 s and 1.5 GB (now the fast reader counts them ahead, past the node limit). The
# 500,000 that the limit let through (2 MB) took it 22 s and 530 MB, until a file only the full
# parser reads had a lower limit of its own.
DENSE_LISTS = _fill("tasks:\n  - id: long\nx: [", "[], ", "]\n")
HALF_A_MILLION_LISTS = ("tasks:\n  - id: long\nx: [" + "[], " * 499_990 + "]\n").encode()
# 330,000 one-line tasks (the fast reader): 5.5 s and 800 MB, validation included.
MANY_TASKS = ("tasks:\n" + "".join(f"- {{id: t{n}}}\n" for n in range(330_000))).encode()
# The words in one task, and 400,000 empty items in one task the full parser reads (after the
# fast reader's table of lines).
TASK_OF_WORDS = _fill("tasks:\n  - id: long\n    x: [", "a, ", "]\n")
TASK_OF_ITEMS = ("tasks:\n  - id: &a long\n    x:\n" + "    -\n" * 400_000).encode()
# Five million blank lines hold no node, but took the fast reader 360 MB for its table of lines.
BLANK_LINES = ("tasks:\n  - id: t\n" + "\n" * (DEFAULT_MAX_BYTES - 20)).encode()
# A plain file of 120,000 nodes with an anchor at its end: the full parser must read it.
LATE_ANCHOR = (
    "tasks:\n  - id: t\nx:\n" + "".join(f"  k{n}: v\n" for n in range(60_000)) + "last: &a v\n"
).encode()

NODES_PROBLEM = "more than 500000 YAML nodes (keys, values and list items); a backlog file"
FULL_NODES_PROBLEM = (
    "more than 100000 YAML nodes (keys, values and list items) in a file that needs the full "
    "YAML parser"
)
TASK_NODES_PROBLEM = "more than 10000 YAML nodes in the task at line 2; a task may hold"
# (case id, file, line of the error, start of the problem, MB of growth). Measured on a busy
# two-core machine, in this order: 10, 10, 4, 58 (the fast reader's table of 330,000 lines and
# its outline of 20,000 tasks), 15, 39 (the table of 400,000 lines), 5 and 40 MB (the outline
# of the first 100,000 nodes); each in under two seconds, most in a fraction of one.
LIMITS = [
    ("1.7 million words in a list (fast reader)", DENSE_WORDS, 3, NODES_PROBLEM, 16),
    ("1.3 million empty lists", DENSE_LISTS, 3, NODES_PROBLEM, 16),
    ("500,000 empty lists, 2 MB (full parser)", HALF_A_MILLION_LISTS, 3, FULL_NODES_PROBLEM, 16),
    ("330,000 tasks (fast reader)", MANY_TASKS, 20_002, "more than 20000 tasks", 80),
    ("a task of 1.7 million words (fast reader)", TASK_OF_WORDS, 3, TASK_NODES_PROBLEM, 24),
    ("a task of 400,000 items (full parser)", TASK_OF_ITEMS, 9_999, TASK_NODES_PROBLEM, 56),
    ("5 million blank lines", BLANK_LINES, 500_001, "more than 500000 lines; a backlog", 16),
    ("120,000 plain nodes, then an anchor", LATE_ANCHOR, 50_000, FULL_NODES_PROBLEM, 56),
]


@pytest.mark.parametrize(
    ("data", "line", "problem", "growth_mb"),
    [pytest.param(*case[1:], id=str(case[0])) for case in LIMITS],
)
def test_a_file_past_a_product_limit_is_refused_while_it_is_read(
    data: bytes, line: int, problem: str, growth_mb: float
) -> None:
    assert len(data) <= DEFAULT_MAX_BYTES  # the byte limit lets it through
    result = parse_in_child(data)
    assert result["outcome"] == "refused", result
    assert (result["line"], result["problem"][: len(problem)]) == (line, problem), result
    assert result["grown_mb"] < growth_mb, result


def _head(data: bytes, cut: bytes, end: bytes) -> str:
    """The first kilobyte or so of a limit case, closed: the same constructs, few of them."""
    return (data[: data.index(cut, 1000)] + end).decode()


def test_the_limit_cases_go_to_the_reader_they_are_meant_for() -> None:
    assert FastReader(_head(DENSE_WORDS, b", ", b"]\n")).read() is not None
    assert FastReader(_head(TASK_OF_WORDS, b", ", b"]\n")).read() is not None
    assert FastReader(_head(MANY_TASKS, b"\n", b"\n")).read() is not None
    assert FastReader(_head(LATE_ANCHOR, b"\n", b"\n")).read() is not None
    for data in (DENSE_LISTS, HALF_A_MILLION_LISTS):
        with pytest.raises(OutsideSubsetError):
            FastReader(_head(data, b", ", b"]\n")).read()
    with pytest.raises(OutsideSubsetError):
        FastReader(_head(TASK_OF_ITEMS, b"\n", b"\n")).read()


LIMITED = """\
tasks:
  - id: a
    x: [b, c]
  - id: d
    y:
      z: e
"""


def test_both_readers_read_up_to_the_node_limit_and_refuse_the_next_node() -> None:
    fast, full = FastReader(LIMITED), FullReader(LIMITED, "x")
    fast.read()
    full.read()
    nodes = fast.nodes
    assert nodes == full.nodes == 17
    FastReader(LIMITED, max_nodes=nodes).read()
    FullReader(LIMITED, "x", max_nodes=nodes).read()
    with pytest.raises(LimitError) as fast_refused:
        FastReader(LIMITED, max_nodes=nodes - 1).read()
    with pytest.raises(BacklogError) as full_refused:
        FullReader(LIMITED, "x", max_nodes=nodes - 1).read()
    plain = (
        "more than 16 YAML nodes (keys, values and list items); a backlog file may hold at most 16"
    )
    full_problem = (
        "more than 16 YAML nodes (keys, values and list items) in a file that needs the full YAML "
        "parser; such a file may hold at most 16 (plain YAML, without anchors, aliases, tags, or "
        "values and flow collections over several lines, may hold more)"
    )
    assert (fast_refused.value.line, fast_refused.value.problem) == (6, plain)
    assert (full_refused.value.line, full_refused.value.problem) == (6, full_problem)


@pytest.mark.parametrize(
    "more",
    ["    w: &g h\n", "    w: [a,\n      b]\n", "  - id: g\n    v: 'two\n      lines'\n"],
    ids=["an anchor", "a flow list over two lines", "a quoted value over two lines"],
)
def test_a_file_the_fast_reader_gives_up_on_past_the_full_limit_is_refused_as_the_parser_would(
    more: str,
) -> None:
    # The 17th node is on line 6, before what only the full parser reads: past a limit of 16
    # for the full parser, the fast reader refuses the file at once, where the count went past.
    text = LIMITED + more
    with pytest.raises(LimitError) as fast_refused:
        FastReader(text, max_full_nodes=16).read()
    with pytest.raises(BacklogError) as full_refused:
        FullReader(text, "x", max_nodes=16).read()
    assert fast_refused.value.line == full_refused.value.line == 6
    assert fast_refused.value.problem == full_refused.value.problem
    assert fast_refused.value.problem.startswith("more than 16 YAML nodes (keys, values and list")
    # Within the limit, the fast reader gives up on the file as before, and the parser reads it.
    with pytest.raises(OutsideSubsetError):
        FastReader(text, max_full_nodes=100).read()
    assert FullReader(text, "x", max_nodes=100).read() is not None
    # A file that stays plain is the fast reader's to read, whatever the full parser's limit.
    assert FastReader(LIMITED, max_full_nodes=1).read() is not None


@pytest.mark.parametrize(
    ("text", "max_nodes", "line"),
    [
        # Counted ahead from the `[`: refused at the line of the first node past the limit.
        ("x: [a,\n  [b, c],\n  {d: e}]\n", 8, 3),
        ("x: [a,\n  [b, c],\n  {d: e}]\n", 5, 2),
        ("x: ['a, [b]', \"c, {d}\", # e, [f]\n  g]\n", 5, 2),
    ],
)
def test_the_full_reader_counts_a_flow_collection_ahead(
    text: str, max_nodes: int, line: int
) -> None:
    with pytest.raises(BacklogError) as refused:
        FullReader(text, "x", max_nodes=max_nodes).read()
    assert refused.value.line == line
    assert refused.value.problem.startswith(f"more than {max_nodes} YAML nodes")
    reader = FullReader(text, "x")
    reader.read()
    FullReader(text, "x", max_nodes=reader.nodes).read()  # at the limit, it loads


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("tasks:\n  - id: a\n  - id: b\n  - {id: c}\n", 4),
        ("- id: a\n- id: b\n-\n  id: c\n", 4),  # the root list; a dash on its own line
        ("tasks:\n- id: a\n- id: b\n# the third\n- id: c\n", 5),
    ],
)
def test_both_readers_refuse_the_task_past_the_task_limit(text: str, line: int) -> None:
    FastReader(text, max_tasks=3).read()
    FullReader(text, "x", max_tasks=3).read()
    with pytest.raises(LimitError) as fast_refused:
        FastReader(text, max_tasks=2).read()
    with pytest.raises(BacklogError) as full_refused:
        FullReader(text, "x", max_tasks=2).read()
    problem = "more than 2 tasks; a backlog file may hold at most 2"
    assert (fast_refused.value.line, fast_refused.value.problem) == (line, problem)
    assert (full_refused.value.line, full_refused.value.problem) == (line, problem)


def test_other_lists_are_not_held_to_the_task_limit() -> None:
    text = "other:\n- 1\n- 2\n- 3\ntasks:\n  - id: a\n    x:\n    - 1\n    - 2\n    - 3\n"
    assert FastReader(text, max_tasks=1).read() is not None
    assert FullReader(text, "x", max_tasks=1).read() is not None


@pytest.mark.parametrize(
    ("text", "line", "task_line"),
    [
        # The second task holds 9 nodes: its mapping, 3 keys, 3 values, and 2 items.
        ("tasks:\n  - id: a\n  - id: b\n    x: c\n    y:\n    - d\n    - e\n  - id: f\n", 7, 3),
        ("tasks:\n  - id: a\n  - id: b\n    x: c\n    y: [d, e]\n  - id: f\n", 5, 3),  # ahead
        ("- id: a\n- id: b\n  x: c\n  y:\n  - d\n  - e\n", 6, 2),  # the root list
        ("- id: a\n- {id: b, x: c,\n   y: [d, e]}\n- id: f\n", 3, 2),  # the full parser's alone
    ],
)
def test_both_readers_read_a_task_at_its_node_limit_and_refuse_the_next_node(
    text: str, line: int, task_line: int
) -> None:
    assert FullReader(text, "x", max_task_nodes=9).read() is not None
    with pytest.raises(BacklogError) as full_refused:
        FullReader(text, "x", max_task_nodes=8).read()
    problem = f"more than 8 YAML nodes in the task at line {task_line}; a task may hold at most 8"
    assert (full_refused.value.line, full_refused.value.problem) == (line, problem)
    try:
        FastReader(text, max_task_nodes=9).read()
    except OutsideSubsetError:
        assert "{" in text
        return
    with pytest.raises(LimitError) as fast_refused:
        FastReader(text, max_task_nodes=8).read()
    assert (fast_refused.value.line, fast_refused.value.problem) == (line, problem)


def test_other_nodes_are_not_held_to_the_task_node_limit() -> None:
    text = "x: [a, b, c, d]\ntasks:\n  - id: a\ny:\n  z: [e, f]\n"
    assert FastReader(text, max_task_nodes=3).read() is not None
    assert FullReader(text, "x", max_task_nodes=3).read() is not None


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"tasks:\n  - id: a\n  - id: b\n  - id: c\n", 4),  # the fast reader
        (b"x: &x 1\ntasks:\n  - id: a\n  - id: b\n  - id: c\n", 5),  # the full reader
        (b"all: &all [{id: a}, {id: b},\n  {id: c}]\ntasks: *all\n", 2),  # a list by alias
    ],
)
def test_the_document_refuses_a_task_past_max_tasks(
    monkeypatch: pytest.MonkeyPatch, data: bytes, line: int
) -> None:
    monkeypatch.setattr(document, "MAX_TASKS", 2)
    with pytest.raises(BacklogError) as caught:
        BacklogDocument.parse(data, source=SOURCE)
    assert (
        str(caught.value)
        == f"{SOURCE}:{line}: more than 2 tasks; a backlog file may hold at most 2"
    )


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"tasks:\n  - id: a\n    x: [1, 2, 3, 4, 5, 6]\n", 3),  # the fast reader, counting ahead
        (b"tasks:\n  - id: a\n    x:\n    - 1\n    - 2\n    - 3\n", 6),  # the fast reader
    ],
)
def test_the_document_refuses_a_file_past_max_nodes(
    monkeypatch: pytest.MonkeyPatch, data: bytes, line: int
) -> None:
    monkeypatch.setattr(document, "MAX_NODES", 10)
    with pytest.raises(BacklogError) as caught:
        BacklogDocument.parse(data, source=SOURCE)
    assert str(caught.value) == (
        f"{SOURCE}:{line}: more than 10 YAML nodes (keys, values and list items); "
        "a backlog file may hold at most 10"
    )


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"tasks:\n  - id: &a a\n    x:\n    - 1\n    - 2\n    - 3\n", 6),  # the full parser
        # The fast reader, giving up on the file past the full parser's limit: at once.
        (b"tasks:\n  - id: a\n    x:\n    - 1\n    - 2\n    - 3\n    - &b 4\n", 6),
    ],
)
def test_the_document_refuses_a_file_for_the_full_parser_past_max_full_nodes(
    monkeypatch: pytest.MonkeyPatch, data: bytes, line: int
) -> None:
    monkeypatch.setattr(document, "MAX_FULL_NODES", 10)
    with pytest.raises(BacklogError) as caught:
        BacklogDocument.parse(data, source=SOURCE)
    assert caught.value.line == line
    assert caught.value.problem.startswith(
        "more than 10 YAML nodes (keys, values and list items) in a file that needs the full "
    )
    # The same nodes in plain YAML are the fast reader's, within MAX_NODES.
    BacklogDocument.parse(data.replace(b"&a ", b"").replace(b"&b ", b""), source=SOURCE)


@pytest.mark.parametrize(
    ("text", "fast"),
    [
        ("tasks:\n  - id: a\n    x: [a, b, c, d]\n    y: {e: f, g: h}\n", True),
        ("- [a, b, c, d]\n- id: a\n", True),  # a list as an item of the root list
        ("tasks:\n  - id: a\n    x: [[], [], {b: c}, 'd, e']\n", False),
        ("tasks:\n  - id: &a a\n    x: [a,\n      b, c]\n    y:\n    - z\n", False),
    ],
)
def test_each_reader_reads_exactly_the_node_limit_and_refuses_one_node_more(
    text: str, fast: bool
) -> None:
    # Any line is long next to so small a limit: flow collections are counted ahead here.
    full = FullReader(text, "x")
    full.read()
    nodes = full.nodes
    FullReader(text, "x", max_nodes=nodes).read()
    with pytest.raises(BacklogError, match="YAML nodes"):
        FullReader(text, "x", max_nodes=nodes - 1).read()
    if not fast:
        with pytest.raises(OutsideSubsetError):
            FastReader(text).read()
        return
    FastReader(text, max_nodes=nodes).read()
    with pytest.raises(LimitError, match="YAML nodes"):
        FastReader(text, max_nodes=nodes - 1).read()


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("tasks:\n  - id: a\n\n# end\n", 4),
        ("tasks:\n  - id: a\n\n# no final line break", 4),
        ("tasks:\r\n  - id: &a a\r\n\r\n", 3),  # CRLF: the full reader
        ("tasks:\r  - id: a\r\r", 3),  # CR alone ends a line too (the full reader)
    ],
)
def test_both_readers_read_up_to_the_line_limit_and_refuse_the_next_line(
    text: str, lines: int
) -> None:
    assert FullReader(text, "x", max_lines=lines).read() is not None
    with pytest.raises(BacklogError) as full_refused:
        FullReader(text, "x", max_lines=lines - 1).read()
    problem = f"more than {lines - 1} lines; a backlog file may hold at most {lines - 1}"
    assert (full_refused.value.line, full_refused.value.problem) == (lines, problem)
    # The fast reader counts lines as the parser does, before it looks at anything else.
    with pytest.raises(LimitError) as fast_refused:
        FastReader(text, max_lines=lines - 1)
    assert (fast_refused.value.line, fast_refused.value.problem) == (lines, problem)
    try:
        assert FastReader(text, max_lines=lines).read() is not None
    except OutsideSubsetError:
        assert "&" in text or "\r\n" not in text


def test_a_five_thousand_task_backlog_is_far_inside_the_limits() -> None:
    body = "".join(
        f"  - id: task-{n}\n    title: Task {n}\n    ready: true\n    status: pending\n"
        f"    dependencies: [task-{max(n - 1, 0)}]\n    allowed_paths: [src/**, docs/**]\n"
        "    description: |\n      Do the thing.\n"
        for n in range(5000)
    )
    text = "tasks:\n" + body
    reader = FastReader(text, max_task_nodes=25)  # each task holds 20 nodes
    reader.read()
    assert reader.nodes < document.MAX_NODES // 4
    assert reader.nodes < document.MAX_FULL_NODES  # even written so that the parser reads it
    assert document.MAX_TASKS // 4 >= 5000
    assert text.count("\n") < document.MAX_LINES // 10
    assert document.MAX_TASK_NODES > 100 * 20


# -------------------------------------------------------------- just inside every limit

# What an edit adds to a task that has only an `id`: five keys and their values when it is
# marked completed, then `pr_number` and its value. A file just inside a limit stays inside it.
EDIT_NODES = 12
# What a file at a limit may grow the process by: parsing it (the operator's sync), and parsing
# and editing it (the worker's publish step, which reads the edited file back). Measured on a
# busy two-core machine: the full parser 79 and 118 MB, the fast reader 167 and 311 MB (its
# outline costs some 200 bytes a node, and an edit reads the whole file again while the first
# reading is still held), a task at its limit 5 and 9 MB, a file at the line limit 16 MB.
FULL_BUDGET_MB = (96, 144)
FAST_BUDGET_MB = (208, 384)
TASK_BUDGET_MB = (16, 24)
LINES_BUDGET_MB = 24


def _full_file(nodes: int) -> str:
    """A file the fast reader gives up on (an anchor), of exactly `nodes` nodes: most of them
    nested empty lists, the dearest kind for the full parser (see the benchmark)."""
    head = "tasks:\n  - id: &a t\nx: ["  # the root, `tasks`, its list, the task, `id`, t, x, [
    room = nodes - 8
    return head + "[[[]]], " * (room // 3) + "[], " * (room % 3) + "]\n"


def _plain_file(nodes: int) -> str:
    """A plain file of exactly `nodes` nodes: most of them keys and values of one mapping, the
    dearest kind for the fast reader (see the benchmark)."""
    head = "tasks:\n  - id: t\nx:\n"  # the root, `tasks`, its list, the task, `id`, t, x, {
    room = nodes - 8
    odd = "  y: [a]\n" if room % 2 else ""  # a key, a list and its item
    pairs = (room - 3) // 2 if odd else room // 2
    return head + odd + "".join(f"  k{n}: v\n" for n in range(pairs))


def _task_file(nodes: int, *, anchor: str = "") -> str:
    """A file whose one task holds exactly `nodes` nodes (its mapping, `id` and its value, `x`
    and its list, and the list's items), and 1 + 1 + 1 nodes outside it."""
    return f"tasks:\n  - id: {anchor}t\n    x:\n" + "    - a\n" * (nodes - 5)


def test_the_files_at_the_limits_hold_the_nodes_they_are_said_to() -> None:
    for nodes in (40, 41, 42):
        full = FullReader(_full_file(nodes), "x")
        full.read()
        plain = FastReader(_plain_file(nodes))
        plain.read()
        task = FullReader(_task_file(nodes), "x")
        task.read()
        assert (full.nodes, plain.nodes, task.nodes) == (nodes, nodes, nodes + 3)
        with pytest.raises(OutsideSubsetError):
            FastReader(_full_file(nodes)).read()


def test_a_file_for_the_full_parser_at_its_node_limit_loads_and_edits_within_budget() -> None:
    # The edit brings it to exactly MAX_FULL_NODES: the worker reads that back.
    data = _full_file(document.MAX_FULL_NODES - EDIT_NODES).encode()
    result = parse_in_child(data, edit=True, timeout=120.0)
    assert (result["outcome"], result.get("edit")) == ("loaded", "edited"), result
    assert result["grown_mb"] < FULL_BUDGET_MB[0], result
    assert result["edited_grown_mb"] < FULL_BUDGET_MB[1], result


def test_a_file_for_the_full_parser_one_node_past_its_limit_is_refused() -> None:
    result = parse_in_child(_full_file(document.MAX_FULL_NODES + 1).encode())
    assert (result["outcome"], result["line"]) == ("refused", 3), result
    assert result["problem"].startswith(FULL_NODES_PROBLEM), result
    assert result["grown_mb"] < GROWTH_MB, result


def test_a_plain_file_at_the_node_limit_loads_and_edits_within_budget() -> None:
    data = _plain_file(document.MAX_NODES - EDIT_NODES).encode()
    result = parse_in_child(data, edit=True, memory_limit=FAST_MEMORY_LIMIT, timeout=60.0)
    assert (result["outcome"], result.get("edit")) == ("loaded", "edited"), result
    assert result["grown_mb"] < FAST_BUDGET_MB[0], result
    assert result["edited_grown_mb"] < FAST_BUDGET_MB[1], result


def test_a_plain_file_one_node_past_the_limit_is_refused() -> None:
    data = _plain_file(document.MAX_NODES + 1)
    result = parse_in_child(data.encode(), memory_limit=FAST_MEMORY_LIMIT, timeout=60.0)
    assert (result["outcome"], result["line"]) == ("refused", data.count("\n")), result
    assert result["problem"].startswith(NODES_PROBLEM), result
    assert result["grown_mb"] < FAST_BUDGET_MB[0], result


@pytest.mark.parametrize("anchor", ["", "&a "], ids=["fast reader", "full parser"])
def test_a_task_at_its_node_limit_loads_and_one_node_more_is_refused(anchor: str) -> None:
    data = _task_file(document.MAX_TASK_NODES, anchor=anchor).encode()
    (task,) = BacklogDocument.parse(data, source=SOURCE).tasks
    assert task.id == "t"
    over = _task_file(document.MAX_TASK_NODES + 1, anchor=anchor)
    with pytest.raises(BacklogError) as refused:
        BacklogDocument.parse(over.encode(), source=SOURCE)
    assert (refused.value.line, refused.value.problem) == (
        over.count("\n"),
        "more than 10000 YAML nodes in the task at line 2; a task may hold at most 10000",
    )


def test_a_task_at_its_node_limit_is_edited_within_budget() -> None:
    # The worker has the full parser read the edited task again: bounded by the task's limit.
    data = _task_file(document.MAX_TASK_NODES - EDIT_NODES).encode()
    result = parse_in_child(data, edit=True)
    assert (result["outcome"], result.get("edit")) == ("loaded", "edited"), result
    assert result["grown_mb"] < TASK_BUDGET_MB[0], result
    assert result["edited_grown_mb"] < TASK_BUDGET_MB[1], result


@pytest.mark.parametrize("anchor", ["", "&a "], ids=["fast reader", "full parser"])
def test_a_file_at_the_line_limit_loads_and_one_line_more_is_refused(anchor: str) -> None:
    lines = document.MAX_LINES
    data = (f"tasks:\n  - id: {anchor}t\n" + "\n" * (lines - 2)).encode()
    result = parse_in_child(data)
    assert (result["outcome"], result.get("tasks")) == ("loaded", 1), result
    assert result["grown_mb"] < LINES_BUDGET_MB, result
    with pytest.raises(BacklogError) as refused:
        BacklogDocument.parse(data + b"# one more\n", source=SOURCE)
    assert (refused.value.line, refused.value.problem) == (
        lines + 1,
        f"more than {lines} lines; a backlog file may hold at most {lines}",
    )


def test_twenty_thousand_ordinary_tasks_load_and_edit_within_the_fast_budget() -> None:
    # The largest ordinary backlog the limits let through: what any limit must leave room for.
    task = (
        '  - id: task-{n:05d}\n    title: "Task {n}: do it"\n    priority: high\n'
        "    ready: true\n    status: pending\n    dependencies: [task-{n:05d}]\n"
        '    allowed_paths: ["src/a/**", docs/a.md]\n    description: |\n'
        "      Change the code.\n"
    )
    data = ("tasks:\n" + "".join(task.format(n=n) for n in range(20_000))).encode()
    assert len(data) <= DEFAULT_MAX_BYTES
    result = parse_in_child(data, edit=True, memory_limit=FAST_MEMORY_LIMIT, timeout=60.0)
    assert (result["outcome"], result.get("tasks"), result.get("edit")) == (
        "loaded",
        20_000,
        "edited",
    ), result
    assert result["grown_mb"] < FAST_BUDGET_MB[0], result
    assert result["edited_grown_mb"] < FAST_BUDGET_MB[1], result


# -------------------------------------------------------------------- what must still load


def test_nesting_of_exactly_100_levels_loads_and_101_is_refused() -> None:
    # The root mapping, the task list and the task are three levels.
    for text in (f"tasks:\n  - id: deep\n    x: {_flow(97)}\n".encode(), _deep_block(97)):
        (task,) = BacklogDocument.parse(text, source=SOURCE).tasks
        assert task.id == "deep"
    for text in (f"tasks:\n  - id: deep\n    x: {_flow(98)}\n".encode(), _deep_block(98)):
        with pytest.raises(BacklogError, match="nested deeper than 100 levels"):
            BacklogDocument.parse(text, source=SOURCE)


SHARED_ANCHORS = b"""\
defaults: &defaults
  ready: true
  status: pending
  priority: high
docs_paths: &docs ["docs/**", "README.md"]
tasks:
  - <<: *defaults
    id: guide
    title: Write the guide
    allowed_paths: *docs
  - <<: *defaults
    id: reference
    description: &shared |
      Keep each page short.
    allowed_paths: *docs
  - id: api
    description: *shared
    allowed_paths: &api [src/api/**, docs/api.md]
    requires: [guide]
  - id: later
    allowed_paths: *api
"""


def test_a_backlog_sharing_lists_and_mappings_through_anchors_loads() -> None:
    document = BacklogDocument.parse(SHARED_ANCHORS, source=SOURCE)
    guide, reference, api, later = document.tasks
    assert guide.allowed_paths == reference.allowed_paths == ["docs/**", "README.md"]
    assert (guide.ready, guide.status.value, guide.priority) == (True, "pending", "high")
    assert reference.description == api.description == "Keep each page short.\n"
    assert api.ready is False
    assert later.line == 20
    assert later.allowed_paths == api.allowed_paths == ["src/api/**", "docs/api.md"]
    # The file stays editable where the edit touches no shared value.
    document.mark_completed("api", attempt_id="a1", branch="backlog/api-a1", completed_at=NOW)
    again = BacklogDocument.parse(document.render(), source=SOURCE)
    assert again.tasks[2].is_completed and again.tasks[3].allowed_paths == api.allowed_paths
    # An alias nested where strings belong is reported like any other wrong value.
    nested = SHARED_ANCHORS.replace(b"allowed_paths: *api", b"allowed_paths: [*api]")
    with pytest.raises(BacklogError, match="`allowed_paths` must be a list of non-empty strings"):
        BacklogDocument.parse(nested, source=SOURCE)


def test_five_thousand_tasks_sharing_anchors_load_in_the_child() -> None:
    # Every task merges the defaults and aliases a shared list: expanded about twice its size.
    header = (
        b'defaults: &d {ready: true, status: pending}\npaths: &p ["docs/**", "src/**"]\ntasks:\n'
    )
    body = b"".join(
        b"  - <<: *d\n    id: task-%d\n    allowed_paths: *p\n" % number for number in range(5000)
    )
    result = parse_in_child(header + body)
    assert (result["outcome"], result.get("tasks")) == ("loaded", 5000), result


def test_many_small_aliases_load_in_the_child() -> None:
    # 90,000 aliases of one word: as many nodes as they write, so within the alias budget (and
    # within the node limit of the full parser; outside the task, within the task's).
    text = b"tasks:\n  - id: t\nword: &w lol\nwords: [" + b", ".join([b"*w"] * 90_000) + b"]\n"
    result = parse_in_child(text, timeout=60.0)  # the full parser, at 90% of its node limit
    assert (result["outcome"], result.get("tasks")) == ("loaded", 1), result


def test_aliases_of_a_key_followed_by_a_long_run_of_spaces_load_in_linear_time() -> None:
    # The outline looked for the colon after an aliased key from its anchor, across a million
    # spaces, once per alias: 10,000 aliases took some eight minutes.
    text = (
        "tasks:\n  - id: t\nkeys: [&k a" + " " * 1_000_000 + "]\nx:\n" + "  - {*k : }\n" * 10_000
    ).encode()
    result = parse_in_child(text)
    assert (result["outcome"], result.get("tasks")) == ("loaded", 1), result
    assert result["seconds"] < 10 * PARSE_SECONDS, result


def test_an_edit_with_a_value_that_looks_like_an_impossible_date_writes_it_quoted() -> None:
    # Writeback asked ruamel.yaml whether the text reads back as itself, and the ValueError of
    # 2026-13-45 escaped; it is now quoted like any value that is not a plain string.
    document = BacklogDocument.parse(b"tasks:\n  - id: t\n    ready: true\n", source=SOURCE)
    document.mark_completed("t", attempt_id="2026-13-45", branch="b", completed_at=NOW)
    assert b'    last_attempt_id: "2026-13-45"\n' in document.render()
