"""Property tests of backlog writeback, on generated backlog files.

`backlogs()` writes random backlog files (field order, quoting, comments, indentation, block
and flow styles, line endings, BOM, document markers) together with the data they hold and the
lines each task spans. After marking a random task completed, the file must read (with
ruamel.yaml, independently of the code under test) as the original data plus exactly the
intended change, and every line outside that task must be byte-identical.

A second group compares the fast reader with the full parser on loosely generated YAML: where
the fast reader accepts a text, both must read the same data with the same positions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from backlog_operator.backlog._fast_reader import FastReader
from backlog_operator.backlog._full_reader import FullReader
from backlog_operator.backlog._outline import (
    OutsideSubsetError,
    check_duplicate_keys,
    flow_nodes_past,
    task_items,
)
from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.backlog.errors import BacklogError
from backlog_operator.backlog.model import path_allowed

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that any quoting style can hold on one line; includes YAML's special characters.
SAFE_TEXT = st.text(
    alphabet=st.sampled_from(list("abcdefxyz XYZ0123456789-_./:#'\",[]{}&*!|>%@`?é日🚀")),
    min_size=1,
    max_size=24,
)
IDS = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
STATUSES = ["pending", "in_progress", "completed", "failed", "blocked"]


def _load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def _plain_ok(value: str, flow: bool) -> bool:
    """Whether `value` written plain reads back as the same string (in block or flow)."""
    if value != value.strip() or not value or value[0] in "-?:,[]{}#&*!|>'\"%@`":
        return False
    if ": " in value or " #" in value or value.endswith(":"):
        return False
    if flow and any(char in value for char in ",[]{}"):
        return False
    try:
        return bool(_load(f"k: {value}\n") == {"k": value})
    except Exception:
        return False


def _scalar(draw: st.DrawFn, value: str, *, flow: bool = False) -> str:
    """`value` as YAML text, in a randomly drawn style that reads back as `value`."""
    styles = ["single", "double"] + (["plain"] if _plain_ok(value, flow) else [])
    style = draw(st.sampled_from(styles))
    if style == "plain":
        return value
    if style == "single":
        return "'" + value.replace("'", "''") + "'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Generated:
    """A generated backlog: its bytes, data, and each task's (first, last) 0-based lines."""

    data: bytes
    value: Any
    spans: list[tuple[int, int]]
    eol: str


@st.composite
def _field(draw: st.DrawFn, name: str, ids: list[str]) -> tuple[Any, str, list[str]]:
    """A field's value, the text after `name:` on its line, and its continuation lines.

    Continuation lines are given relative to the key's indentation (the caller indents them).
    """
    value: Any
    if name == "title":
        value = draw(SAFE_TEXT)
        return value, " " + _scalar(draw, value), []
    if name == "ready":
        value = draw(st.booleans())
        return value, " " + ("true" if value else "false"), []
    if name == "status":
        value = draw(st.sampled_from(STATUSES))
        return value, " " + _scalar(draw, value), []
    if name == "priority":
        value = draw(st.one_of(st.integers(-3, 20), st.sampled_from(["critical", "high", "low"])))
        return value, f" {value}", []
    if name == "pr_number":
        value = draw(st.integers(1, 99999))
        return value, f" {value}", []
    if name in ("last_attempt_id", "branch_name", "owner"):
        value = draw(st.from_regex(r"[a-z][a-z0-9/_-]{0,20}", fullmatch=True))
        return value, " " + _scalar(draw, value), []
    if name == "completed_at":
        moment = draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)))
        moment = moment.replace(microsecond=0, tzinfo=UTC)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if draw(st.booleans()):
            return moment, f" {stamp}", []  # plain: YAML reads a timestamp
        return stamp, " " + _scalar(draw, stamp), []
    if name in ("requires", "allowed_paths"):
        pool = ids if name == "requires" else ["docs/**", "**/*.md", "src/x.py", "a b/*"]
        value = draw(st.lists(st.sampled_from(pool), max_size=3))
        if not value or draw(st.booleans()):
            items = [_scalar(draw, item, flow=True) for item in value]
            return value, " [" + ", ".join(items) + "]", []
        dash_indent = draw(st.sampled_from([0, 2]))
        lines = [" " * dash_indent + "- " + _scalar(draw, item) for item in value]
        return value, "", lines
    if name == "description":
        paragraphs = draw(
            st.lists(
                st.from_regex(r"[A-Za-z][A-Za-z ,.'#:-]{0,30}[a-z.]", fullmatch=True),
                min_size=1,
                max_size=4,
            )
        )
        style = draw(st.sampled_from(["|", "|-", ">", "|+", "plain"]))
        if style == "plain":
            value = paragraphs[0]
            return value, " " + _scalar(draw, value), []
        indent = draw(st.sampled_from([2, 4]))
        if style == ">":
            # One paragraph of lines that fold into one line.
            return " ".join(paragraphs) + "\n", " >", [" " * indent + p for p in paragraphs]
        lines = []
        for number, paragraph in enumerate(paragraphs):
            if number and draw(st.booleans()):
                lines.append("")
            # The first line sets the block's indentation; later ones may indent more.
            extra = draw(st.sampled_from([0, 0, 2])) if number else 0
            lines.append(" " * (indent + extra) + paragraph)
        body = "\n".join(line[indent:] for line in lines)
        if style == "|-":
            return body, " |-", lines
        if style == "|+":
            # A kept block takes every blank line that follows: end it with a comment line.
            return body + "\n\n", " |+", [*lines, "", "# after a kept block"]
        return body + "\n", " |", lines
    raise AssertionError(name)


FIELDS = [
    "title",
    "description",
    "ready",
    "status",
    "priority",
    "requires",
    "allowed_paths",
    "last_attempt_id",
    "branch_name",
    "pr_number",
    "completed_at",
    "owner",
]
COMMENTS = st.sampled_from(["", "", "", "  # note", " # a: b, [c]", "    #\ttabbed"])


@st.composite
def backlogs(draw: st.DrawFn) -> Generated:
    ids = draw(st.lists(IDS, min_size=1, max_size=6, unique=True))
    eol = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    bare_list = draw(st.booleans())
    dash_indent = 0 if bare_list else draw(st.sampled_from([0, 2, 4]))
    lines: list[str] = []
    if draw(st.booleans()):
        lines += ["# A generated backlog", "#"]
    if draw(st.booleans()):
        lines.append("---")
    top: dict[str, Any] = {}
    if not bare_list:
        if draw(st.booleans()):
            lines += ["version: 2  # schema", ""]
            top["version"] = 2
        lines.append("tasks:" + draw(COMMENTS))
    tasks: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []
    for task_id in ids:
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", " " * dash_indent + "# about the next task"])))
        names = draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=8))
        names.insert(draw(st.integers(0, len(names))), "id")
        task: dict[str, Any] = {}
        first = len(lines)
        flow = draw(st.integers(0, 5)) == 0
        if flow:
            # A flow mapping on one line: only one-line scalar fields.
            entries = []
            for name in names:
                if name == "id":
                    task["id"] = task_id
                    entries.append("id: " + _scalar(draw, task_id, flow=True))
                elif name in ("ready", "status", "priority", "pr_number", "owner"):
                    value, text, _ = draw(_field(name, ids))
                    task[name] = value
                    entries.append(f"{name}:{text}")
            lines.append(" " * dash_indent + "- {" + ", ".join(entries) + "}" + draw(COMMENTS))
        else:
            gap = draw(st.sampled_from([1, 1, 3]))
            key_indent = dash_indent + 1 + gap
            dash_alone = draw(st.integers(0, 6)) == 0
            if dash_alone:
                lines.append(" " * dash_indent + "-" + draw(COMMENTS))
                key_indent = dash_indent + 2
            for number, name in enumerate(names):
                more: list[str]
                if name == "id":
                    value, text, more = task_id, " " + _scalar(draw, task_id), []
                else:
                    value, text, more = draw(_field(name, ids))
                task[name] = value
                comment = draw(COMMENTS) if not text.startswith((" |", " >")) else ""
                prefix = " " * key_indent
                if number == 0 and not dash_alone:
                    prefix = " " * dash_indent + "-" + " " * gap
                lines.append(f"{prefix}{name}:{text}{comment}")
                lines += [" " * key_indent + line if line else "" for line in more]
                if number < len(names) - 1 and draw(st.integers(0, 8)) == 0:
                    lines.append(" " * key_indent + "# between keys")
        spans.append((first, len(lines) - 1))
        tasks.append(task)
    if not bare_list and draw(st.booleans()):
        lines += ["", "archive: [old]  # after the tasks"]
        top["archive"] = ["old"]
    if draw(st.booleans()):
        lines += ["", "# trailing comment"]
    if draw(st.booleans()):
        lines += ["...", "# after the end marker"]
    text = eol.join(lines)
    if draw(st.integers(0, 4)) or not lines[-1].strip() or lines[-1].startswith(" "):
        text += eol  # mostly a final line break; never end on a block scalar without one
    bom = draw(st.integers(0, 6)) == 0
    written: Any = tasks if bare_list else {**top, "tasks": tasks}
    return Generated((b"\xef\xbb\xbf" if bom else b"") + text.encode(), written, spans, eol)


def _lines(data: bytes) -> list[bytes]:
    return data.removeprefix(b"\xef\xbb\xbf").split(b"\n")


def _tasks_of(value: Any) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = value["tasks"] if isinstance(value, dict) else value
    return tasks


@SETTINGS
@given(backlog=backlogs(), data=st.data())
def test_mark_completed_changes_exactly_one_task(backlog: Generated, data: st.DataObject) -> None:
    _check_mark_completed(backlog, data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backlog=backlogs(), data=st.data())
def test_mark_completed_on_the_full_parser_path(backlog: Generated, data: st.DataObject) -> None:
    """The same with the fast reader declining every file, as it does for unusual YAML."""

    def decline(self: object) -> None:
        raise OutsideSubsetError("declined by the test")

    with mock.patch.object(FastReader, "read", decline):
        _check_mark_completed(backlog, data)


def _check_mark_completed(backlog: Generated, data: st.DataObject) -> None:
    text = backlog.data.decode("utf-8-sig")
    assert _load(text) == backlog.value  # the generator writes what it says
    document = BacklogDocument.parse(backlog.data, source="backlog.yaml")
    assert [task.id for task in document.tasks] == [t["id"] for t in _tasks_of(backlog.value)]
    assert document.render() == backlog.data

    position = data.draw(st.integers(0, len(backlog.spans) - 1), label="task")
    task_id = _tasks_of(backlog.value)[position]["id"]
    pr_number = data.draw(st.none() | st.integers(1, 10**6), label="pr_number")
    moment = datetime(2026, 1, 30, 23, 15, 7, tzinfo=UTC)
    attempt = f"attempt-{task_id}-3f9c2a"
    branch = data.draw(st.sampled_from([f"backlog/{task_id}-3f9c2a", "true", "a: b #c"]))
    document.mark_completed(
        task_id, attempt_id=attempt, branch=branch, completed_at=moment, pr_number=pr_number
    )
    rendered = document.render()

    changes: dict[str, Any] = {
        "status": "completed",
        "ready": False,
        "last_attempt_id": attempt,
        "branch_name": branch,
        "completed_at": "2026-01-30T23:15:07Z",
    }
    if pr_number is not None:
        changes["pr_number"] = pr_number
    elif _tasks_of(backlog.value)[position].get("pr_number") not in (None, ""):
        changes["pr_number"] = None  # an earlier attempt's number is not this one's
    expected = _tasks_of(backlog.value)
    expected[position] = {**expected[position], **changes}
    assert _load(rendered.decode("utf-8-sig")) == backlog.value  # value now holds the change

    # Every line outside the task is byte-identical, and the BOM stays as it was.
    first, last = backlog.spans[position]
    old_lines, new_lines = _lines(backlog.data), _lines(rendered)
    after = len(old_lines) - last - 1
    assert new_lines[:first] == old_lines[:first]
    assert new_lines[len(new_lines) - after :] == old_lines[last + 1 :]
    assert rendered.startswith(b"\xef\xbb\xbf") == backlog.data.startswith(b"\xef\xbb\xbf")
    # New lines use the file's line ending (a file with no line break at all shows none).
    if backlog.eol == "\r\n" and b"\r\n" in backlog.data:
        assert all(line.endswith(b"\r") for line in new_lines[:-1])

    # The edited file reads back through the module too, with the change.
    again = BacklogDocument.parse(rendered, source="backlog.yaml")
    task = again.find(task_id)
    assert task is not None
    assert (task.status, task.ready, task.branch_name) == ("completed", False, branch)


@SETTINGS
@given(backlog=backlogs(), data=st.data())
def test_set_pr_number_after_mark_completed(backlog: Generated, data: st.DataObject) -> None:
    document = BacklogDocument.parse(backlog.data, source="backlog.yaml")
    tasks = _tasks_of(backlog.value)
    position = data.draw(st.integers(0, len(tasks) - 1), label="task")
    task_id = tasks[position]["id"]
    moment = datetime(2026, 1, 30, tzinfo=UTC)
    document.mark_completed(task_id, attempt_id="a-1", branch="b/1", completed_at=moment)
    document.set_pr_number(task_id, 4242)
    value = _load(document.render().decode("utf-8-sig"))
    for number, (old, new) in enumerate(zip(tasks, _tasks_of(value), strict=True)):
        if number == position:
            assert new == {
                **old,
                "status": "completed",
                "ready": False,
                "last_attempt_id": "a-1",
                "branch_name": "b/1",
                "completed_at": "2026-01-30T00:00:00Z",
                "pr_number": 4242,
            }
        else:
            assert new == old


# The fast reader against the full parser ------------------------------------------------------

_ODD_SCALARS = [
    # strings, quoted and plain
    *["pending", "'quoted'", '"dq"', '"e\\n\\u00e9\\t\\\\"', "'it''s'", "a b  c", "a#b"],
    *["http://x", "x: y", "é ü", "数字", "a\tb", "-x", "--x", "'a''b'", '"\\x41\\_\\N"', "a,b"],
    # numbers, dates and the words YAML resolves
    *["1", "-1", "+2", "1_000", "0o17", "0x1f", "1.5", ".inf", "-.inf", ".nan", "0", "012"],
    *["1e3", "2026-01-30", "2026-01-30T23:15:00Z", "2026-01-30 23:15:00", "=", "<<"],
    *["true", "True", "FALSE", "yes", "~", "null", "Null", "---", "..."],
    # flow collections
    *["[a, b]", "[]", "{}", "[a, 'b', \"c\"]", "[ a , b , ]", "{id: x, s: 1}", "{a: , b: c}"],
    *["{a: 1,}", "[a b, c]", "[a:b]", "[a #b]", "{a:b}", "{'a': 1}"],
    # what the fast reader leaves to the full parser, valid or not
    *['"\\q"', "'", '"', "@x", "?x", "!x", "&a x", "*a", "!!str x", "|", ">", "'multi", "[a,"],
    *["{a: b", "x:", "%x", ":x"],
]
_KEYS = ["id", "status", "title", "a", "b", "k_1", "x.y", "n-a", "true", "null", "tasks"]
_COMMENTS = ["", " # c", "  #c\tt", "#nc", " #"]


def _soup_block_scalar(rng: random.Random, indent: int) -> tuple[str, list[str]]:
    head = rng.choice(["|", ">", "|-", ">-", "|+", ">+", "|2", "| # c", ">  #c"])
    width = indent + rng.choice([1, 2, 2, 4])
    lines = []
    for _ in range(rng.randint(0, 5)):
        roll = rng.random()
        if roll < 0.2:
            lines.append("")
        elif roll < 0.3:
            lines.append(" " * rng.randint(0, width + 2))
        elif roll < 0.45:
            lines.append(" " * (width + rng.choice([1, 2])) + "more")
        elif roll < 0.5:
            lines.append(" " * width + "\ttab")
        elif roll < 0.6:
            lines.append(" " * max(0, width - rng.choice([0, 1])) + "# comment?")
        else:
            lines.append(" " * width + rng.choice(["text", "a: b", "- x", "w o r d s"]))
    return head, lines


def _soup_mapping(rng: random.Random, indent: int, depth: int, first: str | None) -> list[str]:
    out = []
    keys = rng.sample(_KEYS, rng.randint(1, 4))
    if rng.random() < 0.1:
        keys.append(keys[0])
    for number, key in enumerate(keys):
        prefix = first if number == 0 and first is not None else " " * indent
        roll = rng.random()
        more: list[str] = []
        if depth > 3 or roll < 0.55:
            text = " " + rng.choice(_ODD_SCALARS) + rng.choice(_COMMENTS)
        elif roll < 0.7:
            text, more = _soup_block_scalar(rng, indent)
            text = " " + text
        else:
            text = rng.choice(["", " # c"])
            if roll > 0.72:
                more = _soup_node(rng, indent + rng.choice([2, 4, 1, 0]), depth + 1)
        out.append(f"{prefix}{key}:{text}")
        out += more
        if rng.random() < 0.15:
            out.append(rng.choice(["", " " * rng.randint(0, 8) + "# c"]))
    return out


def _soup_sequence(rng: random.Random, indent: int, depth: int) -> list[str]:
    out = []
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.5:
            gap = rng.choice([1, 1, 3])
            first = " " * indent + "-" + " " * gap
            out += _soup_mapping(rng, indent + 1 + gap, depth + 1, first)
        elif roll < 0.7:
            out.append(" " * indent + "- " + rng.choice(_ODD_SCALARS) + rng.choice(_COMMENTS))
        elif roll < 0.8:
            out.append(" " * indent + "-" + rng.choice(["", " # c"]))
            out += _soup_node(rng, indent + rng.choice([2, 4]), depth + 1)
        else:
            status = rng.choice(_ODD_SCALARS)
            out.append(" " * indent + "- {id: " + rng.choice("ab") + ", status: " + status + "}")
    return out


def _soup_node(rng: random.Random, indent: int, depth: int) -> list[str]:
    if rng.random() < 0.5:
        return _soup_sequence(rng, indent, depth)
    return _soup_mapping(rng, indent, depth, None)


def _soup(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.4:
        lines = ["tasks:", *_soup_sequence(rng, rng.choice([0, 2, 4]), 1)]
        if rng.random() < 0.3:
            lines += _soup_mapping(rng, 0, 1, None)
    elif roll < 0.7:
        lines = _soup_sequence(rng, 0, 0)
    else:
        lines = _soup_node(rng, 0, 0)
    for _ in range(rng.choice([0, 0, 1, 2])):
        odd = rng.choice(["---", "...", "--- # x", "%YAML 1.2", "   ", "\t# tab", "  # c", ""])
        lines.insert(rng.randint(0, len(lines)), odd)
    eol = rng.choice(["\n", "\n", "\r\n"])
    return eol.join(lines) + rng.choice([eol, eol, eol, ""])


def _read_fast(text: str) -> tuple[Any, int] | None:
    """The fast reader's outline as `_read` would accept it and the nodes it counted, or None
    where it gives up."""
    try:
        reader = FastReader(text)
        root = reader.read()
    except OutsideSubsetError:
        return None
    if root is not None:
        allowed = {id(root)} | {id(item) for item in task_items(root)}
        if any(id(node) not in allowed for node in reader.duplicates):
            return None
    return root, reader.nodes


def _shape(root: Any) -> list[Any]:
    shape = []
    for item in task_items(root):
        pairs = [
            (key.value, key.start, key.end, key.line, value.start, value.end, value.line, style)
            for key, value in item.pairs or ()
            for style in [value.style]
        ]
        column = item.column if item.style == "block" else None  # no column in flow style
        shape.append((item.start, item.end, item.line, item.style, column, pairs))
    return shape


@settings(max_examples=400, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_fast_reader_reads_as_the_full_parser_does(rng: random.Random) -> None:
    text = _soup(rng)
    read = _read_fast(text)
    if read is None:
        return  # outside the fast reader's subset: the full parser alone reads it
    fast, nodes = read
    fast_error = full_error = None
    try:
        check_duplicate_keys(fast, "x")
    except BacklogError as error:
        fast_error = str(error)
    reader = FullReader(text, "x")
    try:
        full = reader.read()
    except BacklogError as error:
        full_error = str(error)
    assert fast_error == full_error
    if full_error is not None:
        return
    assert full is not None
    # repr: NaN is not equal to itself, and 1 == True.
    assert repr(fast.value) == repr(full.value)
    assert _shape(fast) == _shape(full)
    assert nodes == reader.nodes  # both count the same nodes against MAX_NODES


@settings(max_examples=150, deadline=None)
@given(backlog=backlogs())
def test_fast_reader_reads_generated_backlogs_as_the_full_parser_does(backlog: Generated) -> None:
    text = backlog.data.decode("utf-8-sig")
    read = _read_fast(text)
    reader = FullReader(text, "x")
    full = reader.read()
    assert full is not None
    if read is not None:
        fast, nodes = read
        assert repr(fast.value) == repr(full.value)
        assert _shape(fast) == _shape(full)
        assert nodes == reader.nodes


# Counting a flow collection's nodes ahead (the node limit) ----------------------------------

_FLOW_PLAIN = ["a", "a b", "a'b", "a#b", "a:b", "-1", "x-y", "日本", "a\n    b", "~", "a: b"]
_FLOW_QUOTED = ["'a, [b]'", "'it''s'", '"a, {b}"', '"x \\" ,"', '"two\n    lines"', "''"]
_FLOW_BREAKS = [", ", ",", " , ", ",\n    ", " # a comment, [x]\n    , ", ",\n    # [c]\n    "]


def _flow_soup(rng: random.Random, anchors: list[str], depth: int = 0) -> str:
    """A random flow collection or scalar: nested lists and mappings, plain, quoted and
    multi-line scalars, anchors, aliases, tags and comments (not always valid YAML)."""
    roll = rng.random()
    if depth < 4 and roll < 0.5:
        count = rng.randint(0, 4)
        if roll < 0.3:
            body = [_flow_soup(rng, anchors, depth + 1) for _ in range(count)]
            opening, closing = "[", "]"
        else:
            body = [_flow_entry(rng, anchors, depth) for _ in range(count)]
            opening, closing = "{", "}"
        text = "".join(
            (rng.choice(_FLOW_BREAKS) if index else "") + item for index, item in enumerate(body)
        )
        trailing = "," if body and rng.random() < 0.2 else ""
        node = f"{opening}{text}{trailing}{closing}"
        prefix = rng.choice(["", "", "&"])
    elif anchors and roll < 0.6:
        return "*" + rng.choice(anchors)
    else:
        node = rng.choice(_FLOW_QUOTED if rng.random() < 0.4 else _FLOW_PLAIN)
        prefix = rng.choice(["", "", "", "!!str ", "!<tag:yaml.org,2002:str> ", "&"])
    if prefix == "&":
        anchors.append(f"n{len(anchors)}")
        prefix = f"&{anchors[-1]} "
    return prefix + node


def _flow_entry(rng: random.Random, anchors: list[str], depth: int) -> str:
    number = rng.randint(0, 99)
    key = rng.choice([f'"k,{number}"', f"k{number}", f"k l{number}", f"'[k]{number}'"])
    roll = rng.random()
    if roll < 0.1:
        return key  # a key without a value
    if roll < 0.2:
        return key + ":"
    return f"{key}: {_flow_soup(rng, anchors, depth + 1)}"


@settings(max_examples=400, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_counting_a_flow_collection_ahead_never_counts_more_than_the_parser(
    rng: random.Random,
) -> None:
    flow = _flow_soup(rng, [])
    text = f"x: {flow}\n"
    reader = FullReader(text, "x")
    try:
        reader.read()
    except BacklogError:
        return  # not valid YAML: the parser reports it, whatever was counted
    if flow.startswith(("[", "{")):
        written = reader.nodes - 2  # the root mapping and the key `x`
        assert flow_nodes_past(text, 3, written) is None, text
    # At the limit the file loads; one node less and it is refused.
    FullReader(text, "x", max_nodes=reader.nodes).read()
    with pytest.raises(BacklogError, match="YAML nodes"):
        FullReader(text, "x", max_nodes=reader.nodes - 1).read()


# allowed_paths ------------------------------------------------------------------------------

_COMPONENTS = st.from_regex(r"[a-z0-9._-]{1,6}", fullmatch=True).filter(
    lambda component: component not in (".", "..")
)


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(_COMPONENTS, min_size=1, max_size=5))
def test_path_allowed_properties(parts: list[str]) -> None:
    path = "/".join(parts)
    assert path_allowed(path, ["**"])
    assert path_allowed(path, [path])
    assert path_allowed(path, ["**/" + parts[-1]])
    assert path_allowed(path, ["/".join(["*"] * len(parts))])
    assert not path_allowed(path, ["/".join(["*"] * (len(parts) + 1))])
    assert path_allowed(path, [parts[0] + "/**"]) == (len(parts) > 1)
    assert not path_allowed(path, [])
