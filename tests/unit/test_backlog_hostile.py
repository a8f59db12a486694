"""Hostile backlog files: refused with a BacklogError at their line, quickly, in little memory.

The backlog file is untrusted input (anyone who can commit to the repository writes it). YAML
lets a few hundred bytes describe billions of nodes through aliases, or nest thousands of levels
deep. Each hostile file here must be refused with a BacklogError naming the line, in well under
a second and a few MB; a backlog that shares a few lists or mappings through anchors still loads.

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

from backlog_operator.backlog.document import BacklogDocument
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
