"""Hostile backlog files: refused with a BacklogError at their line, quickly, in little memory.

The backlog file is untrusted input (anyone who can commit to the repository writes it). YAML
lets a few hundred bytes describe billions of nodes through aliases, or nest thousands of levels
deep. Each hostile file here must be refused with a BacklogError naming the line, in well under
a second and a few MB; a backlog that shares a few lists or mappings through anchors still loads.
Without a single alias, a file within the byte limit can still hold millions of nodes or hundreds
of thousands of tasks: the product limits (`MAX_NODES`, `MAX_TASKS`) refuse it while it is read.

Every hostile case is parsed in a child process with an address-space limit (RLIMIT_AS) and a
timeout, so that a regression fails the test instead of eating the machine. The child reports
the outcome, the parse time and how far its peak memory grew during the parse.
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
MEMORY_LIMIT = 512 * 1024 * 1024  # the child's whole address space
TIMEOUT_SECONDS = 20.0  # the child's start and imports included (about half a second)
PARSE_SECONDS = 1.0  # a hostile file must be refused within this
GROWTH_MB = 32.0  # and the child's peak memory may grow by at most this while it is parsed

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
    document = BacklogDocument.parse(data, source=sys.argv[2])
    result = {"outcome": "loaded", "tasks": len(document.tasks)}
except BacklogError as error:
    result = {"outcome": "refused", "line": error.line, "problem": error.problem}
except BaseException as error:  # MemoryError, RecursionError, a bare ValueError...
    result = {"outcome": type(error).__name__, "problem": str(error)[:300]}
result["seconds"] = time.perf_counter() - start
grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
result["grown_mb"] = grown_kb / 1024
print(json.dumps(result))
"""


def parse_in_child(data: bytes) -> dict[str, Any]:
    """Parse `data` in a child process under the memory limit and the timeout."""
    try:
        completed = subprocess.run(
            [sys.executable, "-c", _CHILD, str(MEMORY_LIMIT), SOURCE],
            input=data,
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"parsing took more than {TIMEOUT_SECONDS} s (killed)")
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

DEEP_FLOW_SEQUENCES = (
    "tasks:\n  - id: deep\n    x: " + "[" * 10_000 + "]" * 10_000 + "\n"
).encode()
DEEP_FLOW_MAPPINGS = (
    "tasks:\n  - id: deep\n    x: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n"
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


# No alias anywhere, and within the byte limit. 1.7 million one-letter items on one line: the
# fast reader read them all, in 3 s and 350 MB.
DENSE_WORDS = _fill("tasks:\n  - id: long\n    x: [", "a, ", "]\n")
# 1.3 million empty lists on one line. The fast reader reads no nested flow collection, so the
# full reader does: it took 90 s and 1.5 GB.
DENSE_LISTS = _fill("tasks:\n  - id: long\n    x: [", "[], ", "]\n")
# 330,000 one-line tasks (the fast reader): 5.5 s and 800 MB, validation included.
MANY_TASKS = ("tasks:\n" + "".join(f"- {{id: t{n}}}\n" for n in range(330_000))).encode()

NODES_PROBLEM = "more than 500000 YAML nodes (keys, values and list items)"
# (case id, file, line of the error, start of the problem, seconds, MB of growth). Measured on a
# busy two-core machine: 0.6 s and 15 MB, 0.7 s and 3 MB, 0.3 s and 56 MB (most of it the fast
# reader's table of 330,000 lines).
LIMITS = [
    ("1.7 million words in a list (fast reader)", DENSE_WORDS, 3, NODES_PROBLEM, 2.0, 64),
    ("1.3 million empty lists in a list (full reader)", DENSE_LISTS, 3, NODES_PROBLEM, 5.0, 64),
    ("330,000 tasks (fast reader)", MANY_TASKS, 20_002, "more than 20000 tasks", 2.0, 128),
]


@pytest.mark.parametrize(
    ("data", "line", "problem", "seconds", "growth_mb"),
    [pytest.param(*case[1:], id=str(case[0])) for case in LIMITS],
)
def test_a_file_past_a_product_limit_is_refused_while_it_is_read(
    data: bytes, line: int, problem: str, seconds: float, growth_mb: float
) -> None:
    assert len(data) <= DEFAULT_MAX_BYTES  # the byte limit lets it through
    result = parse_in_child(data)
    assert result["outcome"] == "refused", result
    assert (result["line"], result["problem"][: len(problem)]) == (line, problem), result
    assert result["seconds"] < seconds, result
    assert result["grown_mb"] < growth_mb, result


def _head(data: bytes, cut: bytes, end: bytes) -> str:
    """The first kilobyte or so of a limit case, closed: the same constructs, few of them."""
    return (data[: data.index(cut, 1000)] + end).decode()


def test_the_limit_cases_go_to_the_reader_they_are_meant_for() -> None:
    assert FastReader(_head(DENSE_WORDS, b", ", b"]\n")).read() is not None
    assert FastReader(_head(MANY_TASKS, b"\n", b"\n")).read() is not None
    with pytest.raises(OutsideSubsetError):
        FastReader(_head(DENSE_LISTS, b", ", b"]\n")).read()


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
    problem = (
        "more than 16 YAML nodes (keys, values and list items); a backlog file may hold at most 16"
    )
    assert (fast_refused.value.line, fast_refused.value.problem) == (6, problem)
    assert (full_refused.value.line, full_refused.value.problem) == (6, problem)


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
        (b"tasks:\n  - id: &a a\n    x:\n    - 1\n    - 2\n    - 3\n", 6),  # the full reader
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


def test_a_five_thousand_task_backlog_is_far_inside_the_limits() -> None:
    body = "".join(
        f"  - id: task-{n}\n    title: Task {n}\n    ready: true\n    status: pending\n"
        f"    dependencies: [task-{max(n - 1, 0)}]\n    allowed_paths: [src/**, docs/**]\n"
        "    description: |\n      Do the thing.\n"
        for n in range(5000)
    )
    reader = FastReader("tasks:\n" + body)
    reader.read()
    assert reader.nodes < document.MAX_NODES // 4
    assert document.MAX_TASKS // 4 >= 5000


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
    # 100,000 aliases of one word: as many nodes as they write, so within the budget.
    text = (
        b"tasks:\n  - id: t\n    word: &w lol\n    words: ["
        + b", ".join([b"*w"] * 100_000)
        + b"]\n"
    )
    result = parse_in_child(text)
    assert (result["outcome"], result.get("tasks")) == ("loaded", 1), result


def test_aliases_of_a_key_followed_by_a_long_run_of_spaces_load_in_linear_time() -> None:
    # The outline looked for the colon after an aliased key from its anchor, across a million
    # spaces, once per alias: 10,000 aliases took some eight minutes.
    text = (
        "tasks:\n  - id: t\n    keys: [&k a" + " " * 1_000_000 + "]\n    x:\n"
        + "    - {*k : }\n" * 10_000
    ).encode()  # fmt: skip
    result = parse_in_child(text)
    assert (result["outcome"], result.get("tasks")) == ("loaded", 1), result
    assert result["seconds"] < 10 * PARSE_SECONDS, result


def test_an_edit_with_a_value_that_looks_like_an_impossible_date_writes_it_quoted() -> None:
    # Writeback asked ruamel.yaml whether the text reads back as itself, and the ValueError of
    # 2026-13-45 escaped; it is now quoted like any value that is not a plain string.
    document = BacklogDocument.parse(b"tasks:\n  - id: t\n    ready: true\n", source=SOURCE)
    document.mark_completed("t", attempt_id="2026-13-45", branch="b", completed_at=NOW)
    assert b'    last_attempt_id: "2026-13-45"\n' in document.render()
