"""Writeback that reads one task (`BacklogDocument.for_task`) against writeback that reads all.

`for_task` finds the task's lines without reading the other tasks (`_locate`) and edits them
alone, or reads the whole file like `parse` when it cannot show those lines are the task's. The
two must write the same bytes wherever `parse` reads the file: on generated backlogs of every
layout the writeback tests know, on hostile layouts built to make a line look like a task where
YAML sees none (inside a multi-line quoted or flow value, a block scalar, a plain scalar that
goes on), and on the golden files.

Where `parse` refuses a file (a defect in another task, which `for_task` does not read) and
`for_task` edits it, the edit must still be exactly the task's: the bytes before and after the
task's lines unchanged, those lines reading as the task with the change, and, wherever a YAML
parser reads the file at all, the one item it reads with this id lying in those lines.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from backlog_operator.backlog import _locate, document
from backlog_operator.backlog._full_reader import FullReader
from backlog_operator.backlog._outline import OutlineNode, task_items
from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.backlog.errors import BacklogError, UnknownTaskError
from tests.unit.test_backlog_property import Generated, backlogs

SOURCE = "backlog.yaml"
NOW = datetime(2026, 1, 30, 23, 15, 7, tzinfo=UTC)
DATA = Path(__file__).resolve().parents[1] / "data"
CHANGES = {
    "status": "completed",
    "ready": False,
    "last_attempt_id": "attempt-1",
    "branch_name": "backlog/x-1",
    "completed_at": "2026-01-30T23:15:07Z",
    "pr_number": 4242,
}
# Golden cases that take the whole reading, and why.
WHOLE_READING = {
    "writeback-alias-last": "anchors and aliases",
    "writeback-document-markers": "a %YAML directive",
    "writeback-full-parser-multiline": "a merge key, a multi-line plain and flow value",
    "writeback-merge-key-task": "a merge key",
    "writeback-lookalike-item-lines": "a line like the task's in another task's title",
    "writeback-other-task-multiline-values": "multi-line plain and flow values",
}

Outcome = bytes | tuple[str, str]


def _write_back(data: bytes, task_id: str, *, one_task: bool) -> Outcome:
    """Mark the task completed and record its pull request number: the bytes, or the error."""
    try:
        if one_task:
            backlog = BacklogDocument.for_task(data, task_id, source=SOURCE)
        else:
            backlog = BacklogDocument.parse(data, source=SOURCE)
        backlog.mark_completed(
            task_id, attempt_id="attempt-1", branch="backlog/x-1", completed_at=NOW
        )
        backlog.set_pr_number(task_id, 4242)
    except BacklogError as error:
        return (type(error).__name__, str(error))
    return backlog.render()


def _load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def _items_with_id(text: str, task_id: str) -> list[OutlineNode] | None:
    """The items a YAML parser reads with this id, or None where it does not read the file."""
    try:
        root = FullReader(text, SOURCE).read()
    except BacklogError:
        return None
    items = task_items(root) if root is not None else []
    return [
        item for item in items if isinstance(item.value, dict) and item.value.get("id") == task_id
    ]


def _check(data: bytes, task_id: str) -> None:
    """`for_task` writes what `parse` writes, or, where `parse` refuses, edits the task alone."""
    whole = _write_back(data, task_id, one_task=False)
    one = _write_back(data, task_id, one_task=True)
    if isinstance(whole, bytes):
        assert one == whole
        return
    if not isinstance(one, bytes):
        return  # both refuse: nothing is written
    # `parse` refuses the file, `for_task` edited: only the task's own lines changed.
    text = data.decode("utf-8-sig")
    located = _locate.locate(
        text, task_id, max_nodes=document.MAX_NODES, max_tasks=document.MAX_TASKS
    )
    assert located is not None, "an edit without the fast path where the whole reading refused"
    edited = one.decode("utf-8-sig")
    tail = len(text) - located.end
    assert edited[: located.begin] == text[: located.begin]
    assert edited[len(edited) - tail :] == text[located.end :]
    (before,) = _load(text[located.begin : located.end])
    assert _load(edited[located.begin : len(edited) - tail]) == [{**before, **CHANGES}]
    items = _items_with_id(text, task_id)
    if items is not None:  # a YAML parser reads the file: the task is there, once
        assert len(items) == 1
        assert located.begin <= items[0].start < located.end


# Generated backlogs (the property tests' layouts) ------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backlog=backlogs(), data=st.data())
def test_one_task_writeback_gives_the_bytes_of_the_whole_reading(
    backlog: Generated, data: st.DataObject
) -> None:
    tasks = backlog.value["tasks"] if isinstance(backlog.value, dict) else backlog.value
    task_id = data.draw(st.sampled_from([task["id"] for task in tasks] + ["absent"]))
    _check(backlog.data, task_id)


def test_generated_backlogs_without_hostile_lines_take_the_fast_path() -> None:
    for seed in range(100):
        text, task_id = _hostile_backlog(random.Random(seed), hostile=False)
        backlog = BacklogDocument.for_task(text.encode(), task_id, source=SOURCE)
        assert backlog._partial, text


# Hostile layouts ---------------------------------------------------------------------------

_REAL = ["alpha", "beta", "gamma", "delta"]
_FAKE = ["ghost", "alpha"]  # a line that only looks like a task, with a new id or a real one


def _hostile_lines(rng: random.Random, c: int, k: int, fake: str) -> list[str]:
    """Lines inside an item that YAML may read otherwise than they look."""
    dash, keys = " " * c + "- ", " " * k
    return rng.choice(
        [
            # a value that goes on over a line where an item seems to start (valid YAML)
            [f'{keys}title: "quoted', f"{dash}id: {fake}", f'{keys}title: end"'],
            [f"{keys}title: 'quoted", f"{dash}id: {fake}", f"{keys}title: end'"],
            [f'{keys}requires: [a, "b', f"{dash}id: {fake}", f'{keys}c"]'],
            [f"{keys}note: {{a: '1", f"{dash}id: {fake}", f"{keys}x'}}"],
            [f'{keys}title: "escaped \\"', f"{dash}id: {fake}", f'{keys}title: end"'],
            [f'{keys}title: "line \\', f"{dash}id: {fake}", f'{keys}title: end"'],
            [f"{keys}requires: [a,", f"{keys}b]"],
            [f"{keys}title: plain", f"{keys}  {dash}{fake}"],
            [f"{keys}title: &anchor plain"],
            [f"{keys}copy: *anchor"],
            [f"{keys}<<: {{ready: true}}"],
            # the same id again, in forms a search for its text does not see
            [f'{keys}id: "{fake[:2]}\\x{ord(fake[2]):02x}{fake[3:]}"'],
            [f"{keys}id: |-", f"{keys}  {fake}"],
            [f"{dash}{{id: {fake}, status: pending}}"],
            [f'{dash}{{"id": {fake}}}'],
            [f"{dash}{{id: {fake}\t}}"],
            [f"{keys}meta:", f"{keys}  id: {fake}"],
            # block scalars: an indentation indicator, a dash line deeper than the keys
            [f"{keys}notes: |2", f"{keys}  {dash}id: {fake}"],
            [f"{keys}notes: >", f"{keys}  text", f"{keys} {dash}id: {fake}"],
            # characters YAML reads as line breaks or refuses, tabs, document markers
            [f"{keys}title: a\rb"],
            [f"{keys}title: a\x85{dash}id: {fake}"],
            [f"{keys}title: a\u2028{dash}id: {fake}"],
            [f"{keys}\ttitle: tabbed"],
            [f"{keys}title: a\x07b"],
            [f"{keys}title: a\x9bb\ufeff"],
            ["...", f"{dash}id: {fake}"],
            ["---", f"{dash}id: {fake}"],
            # keys at another column, a stray scalar, a comment at column 0, not YAML
            [f"{keys} title: deeper"],
            [f"{' ' * (k - 1)}title: shallower"],
            [f"{keys}stray scalar"],
            ["# a comment at column 0"],
            [f"{keys}title: a: b"],
        ]
    )


def _item(rng: random.Random, task_id: str, c: int, k: int, hostile: bool) -> list[str]:
    dash, keys = " " * c + "-", " " * k
    style = rng.random()
    if style < 0.15:
        return [f"{dash} {{id: {task_id}, status: pending, ready: true}}"]
    first = f"{dash}{' ' * (k - c - 1)}id: {task_id}"
    lines = [f"{dash}", f"{keys}id: {task_id}"] if style < 0.25 else [first]
    fields = {
        "title": [f"{keys}title: Task {task_id} # comment"],
        "quoted": [f'{keys}title: "Quoted: {task_id}"'],
        "status": [f"{keys}status: pending", f"{keys}ready: true"],
        "requires": [f"{keys}requires: [a, 'b', \"c\"]"],
        "nested": [f"{keys}requires:", f"{keys}  - a", f"{keys}  - 'b'"],
        "paths": [f"{keys}allowed_paths:", f"{keys}- docs/**"],
        "labels": [f"{keys}labels:", f"{keys}  area: core", f"{keys}  size: s"],
        "description": [
            f"{keys}description: |",
            f"{keys}  Text with - id: {task_id} and 'quotes\"",
            "",
            f"{keys}    more",
        ],
        "folded": [f"{keys}notes: >-", f"{keys}  folded", f"{' ' * c}# a comment less indented"],
        "owner": [f"{keys}owner:   # nothing yet"],
        "comment": ["", f"{' ' * c}# between keys"],
    }
    names = rng.sample(sorted(fields), rng.randint(0, 4))
    if {"title", "quoted"} <= set(names) or {"requires", "nested"} <= set(names):
        names = names[:1]
    for name in names:
        lines += fields[name]
    if hostile:
        lines += _hostile_lines(rng, c, k, rng.choice(_FAKE))
    return lines


def _header(rng: random.Random, hostile: bool) -> list[str]:
    lines = rng.choice([[], ["# A backlog"], ["---"], ["project: bench", "schema: 1", ""]])
    if hostile and rng.random() < 0.2:
        fake = rng.choice(_FAKE)
        lines += rng.choice(
            [
                ["notes: |", f"  - id: {fake}", "    status: pending"],
                ["meta:", " text: |", f"  - id: {fake}"],
                ['quote: "a', f"  - id: {fake}", 'b"'],
                ["flow: [a,", f"  - id: {fake}]"],
                ["plain: a", "  - b"],
                ["tasks:", f"  - id: {fake}"],
                ["defaults: &d {ready: true}"],
                ["%YAML 1.2", "---"],
            ]
        )
    return lines


def _hostile_backlog(rng: random.Random, *, hostile: bool = True) -> tuple[str, str]:
    """A backlog text (sometimes not valid YAML), and the id of the task to mark."""
    bare = rng.random() < 0.2
    c = 0 if bare else rng.choice([0, 2, 2, 4])
    k = c + rng.choice([2, 2, 4])
    ids = rng.sample(_REAL, rng.randint(1, 4))
    if hostile and rng.random() < 0.15:
        ids.append(ids[0])  # a duplicate id
    lines = [] if bare else [*_header(rng, hostile), "tasks:" + rng.choice(["", "  # list"])]
    # Mostly one hostile item, so that the rest of the file often reads.
    hostile_items = {rng.randrange(len(ids))} if hostile and rng.random() < 0.8 else set()
    for number, task_id in enumerate(ids):
        if rng.random() < 0.3:
            lines.append(rng.choice(["", " " * c + "# next", "# next at column 0"]))
        lines += _item(rng, task_id, c, k, number in hostile_items)
    if rng.random() < 0.4:
        lines += rng.choice([["archive: [old]"], ["", "# the end"], ["...", "# after the end"]])
        if bare and lines[-1] == "archive: [old]":
            lines.pop()
    eol = rng.choice(["\n", "\n", "\r\n"])
    # Without a final line break, a block scalar at the end is left to the full reading.
    text = eol.join(lines) + rng.choice([eol, eol, ""] if hostile else [eol])
    return text, rng.choice([*ids, *_FAKE, *_FAKE, "absent"] if hostile else ids)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_one_task_writeback_on_hostile_layouts(rng: random.Random) -> None:
    text, task_id = _hostile_backlog(rng)
    _check(text.encode(), task_id)


HOSTILE = {
    "an item inside a multi-line double-quoted title": (
        'tasks:\n  - id: a\n    title: "a title\n  - id: b\n    title: end"\n',
        "b",
    ),
    "an item inside a multi-line single-quoted title": (
        "tasks:\n  - id: a\n    title: 'it''s\n  - id: b\n    title: end'\n",
        "b",
    ),
    "an item after an escaped quote": (
        'tasks:\n  - id: a\n    title: "a \\"\n  - id: b\n    title: end"\n',
        "b",
    ),
    "an item inside a quoted scalar in a multi-line flow list": (
        'tasks:\n  - id: a\n    requires: [x, "y\n  - id: b"]\n',
        "b",
    ),
    "an item inside a multi-line flow list (not YAML)": (
        "tasks:\n  - id: a\n    requires: [x,\n  - id: b]\n",
        "b",
    ),
    "an item inside a header's block scalar": (
        "notes: |\n  - id: b\n    status: pending\ntasks:\n  - id: a\n",
        "b",
    ),
    "an item inside a nested header's block scalar": (
        "meta:\n text: |\n  - id: b\ntasks:\n  - id: a\n",
        "b",
    ),
    "an item inside a header's plain scalar that goes on": (
        "project: a\n  - b\ntasks:\n  - id: b\n",
        "b",
    ),
    "the same id again, escaped": (
        'tasks:\n  - id: b\n    ready: true\n  - id: "\\x62"\n',
        "b",
    ),
    "the same id again, as a block scalar": (
        "tasks:\n  - id: b\n  - id: |-\n      b\n",
        "b",
    ),
    "the same id again, in a flow mapping": (
        "tasks:\n  - id: b\n  - {status: pending, id: b}\n",
        "b",
    ),
    "the same id again, under a quoted key in a flow mapping": (
        'tasks:\n  - id: b\n  - {status: pending, "id": b}\n',
        "b",
    ),
    "the same key twice in the task": (
        "tasks:\n  - id: b\n    status: pending\n    status: failed\n",
        "b",
    ),
    "`tasks` twice": (
        "tasks:\n  - id: a\ntasks:\n  - id: b\n",
        "b",
    ),
    "line breaks that are a carriage return alone": (
        "tasks:\r  - id: a\r  - id: b\r    ready: true\r",
        "b",
    ),
    "a line separator in another task": (
        "tasks:\n  - id: a\n    title: x\u2028  - id: b\n  - id: c\n",
        "b",
    ),
    "a document end in the list": (
        "tasks:\n  - id: a\n...\n  - id: b\n",
        "b",
    ),
    "the task's block scalar at the end without a line break": (
        "tasks:\n  - id: b\n    description: |\n      text",
        "b",
    ),
    "an id that reads as a number": (
        "tasks:\n  - id: 12\n",
        "12",
    ),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_layouts_take_the_whole_reading(name: str) -> None:
    text, task_id = HOSTILE[name]
    data = text.encode()
    refused = _read_error(data)
    if refused is None:
        assert not BacklogDocument.for_task(data, task_id, source=SOURCE)._partial
    else:
        with pytest.raises(BacklogError) as one:  # refused as it is read, by both
            BacklogDocument.for_task(data, task_id, source=SOURCE)
        assert str(one.value) == refused
    _check(data, task_id)


def _read_error(data: bytes) -> str | None:
    """Why the whole reading refuses the file, or None."""
    try:
        BacklogDocument.parse(data, source=SOURCE)
    except BacklogError as error:
        return str(error)
    return None


def test_an_item_in_another_tasks_value_is_not_a_task() -> None:
    # Read whole, the file holds no task `b`: the line that looks like one is in a title.
    text, task_id = HOSTILE["an item inside a multi-line double-quoted title"]
    with pytest.raises(UnknownTaskError):
        BacklogDocument.for_task(text.encode(), task_id, source=SOURCE).set_pr_number("b", 3)


def test_a_duplicate_id_the_search_cannot_see_is_refused_as_the_whole_reading_does() -> None:
    text, task_id = HOSTILE["the same id again, escaped"]
    with pytest.raises(BacklogError, match="duplicate task id 'b'"):
        BacklogDocument.for_task(text.encode(), task_id, source=SOURCE)


# The file the hostile-layout property found: the first item is `alpha` as a flow mapping, and
# an item at column 0 after another task's nested block list spells it `{"id": alpha}`. The
# list's grammar took that line for one more entry of the nested list (its indentation was not
# required again), so the search saw one `alpha` and the first was edited.
FOUND = (
    "\n- {id: alpha, status: pending, ready: true}\n\n- {id: beta, status: pending, ready: true}"
    "\n\n- {id: gamma, status: pending, ready: true}\n\n- id: delta\n\n# between keys\n"
    "  description: |\n    Text with - id: delta and 'quotes\"\n\n      more\n  notes: >-\n"
    "    folded\n# a comment less indented\n  requires:\n    - a\n    - 'b'\n"
    '- {"id": alpha}\n'
)
# What comes before the second `alpha` in another task: nested collections end where a less
# indented line starts, and that line may be an item.
_BEFORE_DUPLICATE = {
    "after a scalar": ["title: x"],
    "after a nested list": ["requires:", "  - a", "  - 'b'"],
    "after a nested list at the keys' column": ["requires:", "- a"],
    "after a nested mapping": ["labels:", "  area: core"],
    "after a block scalar": ["notes: |", "  text"],
}
# The same id, spelt as YAML reads it: plain, quoted, escaped, under a quoted or explicit key,
# as a block scalar, in a flow mapping, with tabs around it.
_SPELLINGS = {
    "plain": "- id: alpha",
    "single-quoted": "- id: 'alpha'",
    "double-quoted": '- id: "alpha"',
    "escaped": '- id: "\\x61lpha"',
    "plain with a comment": "- id: alpha  # again",
    "a block scalar": "- id: |-\n{k}  alpha",
    "under a double-quoted key": '- "id": alpha',
    "under a single-quoted key": "- 'id': alpha",
    "under an escaped key": '- "i\\x64": alpha',
    "under an explicit key": "- ? id\n{k}: alpha",
    "under a second key": "- title: x\n{k}id: alpha",
    "a flow mapping": "- {id: alpha}",
    "a flow mapping, quoted value": "- {status: pending, id: 'alpha'}",
    "a flow mapping, double-quoted key": '- {"id": alpha}',
    "a flow mapping, single-quoted key": "- {'id': alpha}",
    "a flow mapping, escaped key": '- {"i\\x64": alpha}',
    "a flow mapping, JSON-like": '- {"id":"alpha"}',
    "a flow mapping, a tab after the value": "- {id: alpha\t}",
    "a flow mapping, a tab before the value": "- {id:  \talpha, ready: true}",
    "a flow mapping, quoted, a tab after": "- {id: 'alpha'\t, ready: true}",
}


def _duplicated(before: str, spelling: str, c: int) -> str:
    """A backlog whose task `alpha` comes again after the task `delta`, at dash column `c`."""
    k = c + 2
    dash, keys = " " * c, " " * k
    lines = [] if c == 0 else ["tasks:"]
    lines += [f"{dash}- id: alpha", f"{keys}ready: true", f"{dash}- id: delta"]
    lines += [keys + line for line in _BEFORE_DUPLICATE[before]]
    lines += [dash + line for line in _SPELLINGS[spelling].replace("{k}", "  ").split("\n")]
    return "\n".join(lines) + "\n"


def test_the_found_duplicate_id_is_refused_as_the_whole_reading_does() -> None:
    refused = _read_error(FOUND.encode())
    assert refused == "backlog.yaml:21: duplicate task id 'alpha' (first at line 2)"
    with pytest.raises(BacklogError) as one:
        BacklogDocument.for_task(FOUND.encode(), "alpha", source=SOURCE)
    assert str(one.value) == refused
    assert _locate.locate(FOUND, "alpha", max_nodes=10**6, max_tasks=10**4) is None
    _check(FOUND.encode(), "alpha")


@pytest.mark.parametrize("c", [0, 2])
@pytest.mark.parametrize("before", _BEFORE_DUPLICATE)
@pytest.mark.parametrize("spelling", _SPELLINGS)
def test_a_duplicate_id_in_any_spelling_is_refused_as_the_whole_reading_does(
    spelling: str, before: str, c: int
) -> None:
    data = _duplicated(before, spelling, c).encode()
    refused = _read_error(data)
    assert refused is not None and "duplicate task id 'alpha'" in refused, refused
    with pytest.raises(BacklogError) as one:
        BacklogDocument.for_task(data, "alpha", source=SOURCE)
    assert str(one.value) == refused
    _check(data, "alpha")
    _check(data, "delta")  # there once: edited alone, or refused as the whole reading does


def test_a_key_after_a_nested_mapping_ends_the_task_list() -> None:
    # Read whole, `tasks` is there twice; the fast path took the second for a nested key.
    data = b"tasks:\n  - id: a\n    labels:\n      x: 1\ntasks:\n  - id: b\n"
    refused = _read_error(data)
    assert refused is not None and "duplicate top-level key 'tasks'" in refused
    with pytest.raises(BacklogError) as one:
        BacklogDocument.for_task(data, "b", source=SOURCE)
    assert str(one.value) == refused


@pytest.mark.parametrize("limit", ["MAX_TASKS", "MAX_NODES"])
def test_a_file_past_a_limit_is_refused_as_the_whole_reading_does(
    limit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = "".join(["tasks:\n"] + [f"  - id: t{n}\n    ready: true\n" for n in range(40)]).encode()
    monkeypatch.setattr(document, limit, 30)
    with pytest.raises(BacklogError, match=f"at most {getattr(document, limit)}"):
        BacklogDocument.parse(data, source=SOURCE)
    with pytest.raises(BacklogError, match=f"at most {getattr(document, limit)}"):
        BacklogDocument.for_task(data, "t39", source=SOURCE)


# The document read for one task --------------------------------------------------------------

BACKLOG = b"""\
# A backlog
project: demo

tasks:
  - id: first
    title: "First: the one"
    ready: true
    status: pending
    requires: [second]
    description: |
      - id: not-a-task
        status: pending
  # the next task
  - id: second
    ready: true
    allowed_paths:
      - docs/**
archive: [old]
"""


def test_the_task_is_read_alone() -> None:
    backlog = BacklogDocument.for_task(BACKLOG, "second", source=SOURCE)
    assert backlog._partial
    task = backlog.find("second")
    assert task is not None
    assert (task.line, task.ready, task.allowed_paths) == (14, True, ["docs/**"])
    backlog.mark_completed("second", attempt_id="a-1", branch="b/second", completed_at=NOW)
    assert backlog._partial  # edited without reading the other tasks
    whole = BacklogDocument.parse(BACKLOG, source=SOURCE)
    whole.mark_completed("second", attempt_id="a-1", branch="b/second", completed_at=NOW)
    assert backlog.render() == whole.render()
    assert backlog.changed


def test_the_other_tasks_are_read_when_asked_for() -> None:
    backlog = BacklogDocument.for_task(BACKLOG, "second", source=SOURCE)
    backlog.set_pr_number("second", 7)
    assert [task.id for task in backlog.tasks] == ["first", "second"]
    assert not backlog._partial
    assert backlog.find("second") is not None
    assert backlog.find("second").pr_number == 7  # type: ignore[union-attr]
    other = BacklogDocument.for_task(BACKLOG, "second", source=SOURCE)
    assert other.find("first") is not None
    other.set_pr_number("first", 8)
    assert b"    pr_number: 8\n" in other.render()


def test_a_task_that_is_not_there_is_looked_for_in_the_whole_file() -> None:
    backlog = BacklogDocument.for_task(BACKLOG, "not-a-task", source=SOURCE)
    assert not backlog._partial
    assert backlog.find("not-a-task") is None
    with pytest.raises(UnknownTaskError):
        backlog.set_pr_number("not-a-task", 3)


def test_an_invalid_task_is_reported_as_the_whole_reading_does() -> None:
    data = BACKLOG.replace(b"    ready: true\n    allowed", b"    priority: soon\n    allowed")
    with pytest.raises(BacklogError, match="priority") as whole:
        BacklogDocument.parse(data, source=SOURCE)
    with pytest.raises(BacklogError, match="priority") as one:
        BacklogDocument.for_task(data, "second", source=SOURCE)
    assert str(one.value) == str(whole.value)


def test_the_bench_layout_takes_the_fast_path_in_any_place() -> None:
    task = (
        '  # ---- task {i} ----\n  - id: task-{i}\n    title: "Task {i}: do it"\n'
        "    priority: high\n    ready: true\n    status: pending  # or completed\n"
        "    dependencies: [task-0]\n    allowed_paths: [\"src/**\", 'docs/{i}.md']\n"
        "    description: |\n      Change the code.\n\n      Keep it small.\n"
    )
    data = ("project: x\n\ntasks:\n" + "".join(task.format(i=i) for i in range(30))).encode()
    for number in (0, 15, 29):
        backlog = BacklogDocument.for_task(data, f"task-{number}", source=SOURCE)
        assert backlog._partial
        _check(data, f"task-{number}")


# Golden files -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(DATA.glob("writeback-*")), ids=lambda case: case.name)
def test_golden_files_take_the_path_their_layout_allows(case: Path) -> None:
    params = json.loads((case / "params.json").read_text(encoding="utf-8"))
    data = (case / "original").read_bytes()
    backlog = BacklogDocument.for_task(data, params["task"], source=SOURCE)
    assert backlog._partial == (case.name not in WHOLE_READING)
