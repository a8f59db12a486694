"""The outline of a backlog file, and the YAML facts that reading and writing it share.

An outline is a tree of `OutlineNode`s: each key and value of the file with its character
offsets, style and, where known, its value. Both readers build it (`_fast_reader` for the plain
subset, `_full_reader` through ruamel.yaml's composer), edits are planned on it (`_edits`), and
the document finds its tasks in it. This module holds the node types, what a plain scalar means
under YAML 1.2, which characters a YAML stream may hold, how to find the task list, and the
duplicate-key check that both readers' outlines go through.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode

from backlog_operator.backlog.errors import BacklogError

# ------------------------------------------------------------------------------ the outline

# Node styles. Scalars: plain, quoted, block; collections: flow or block; "empty" is a key with
# no value text at all (`pr_number:`), whose start and end sit just after the colon.
PLAIN, SINGLE, DOUBLE, LITERAL, FOLDED = "plain", "'", '"', "|", ">"
FLOW, BLOCK, EMPTY = "flow", "block", "empty"


class OutlineNode:
    """One node of the outline: where it is in the text and, where known, its value.

    `start` is the offset of its first character (for a value with an anchor or tag, of the
    `&`/`!`), `end` the offset just after its last character of content: for a block scalar
    the end of its last content line (for `|+`/`>+` of its last kept empty line), for a block
    collection the end of its last item. Offsets count characters of the decoded text.

    A plain class with slots (compared by identity) rather than a dataclass: every worker step
    reads a backlog, and defining dataclasses would cost it several milliseconds.
    """

    __slots__ = (
        "column",
        "end",
        "items",
        "line",
        "pairs",
        "shared",
        "spans",
        "start",
        "style",
        "value",
    )

    def __init__(
        self,
        value: Any,
        start: int,
        end: int,
        line: int,
        style: str,
        pairs: list[tuple[OutlineNode, OutlineNode]] | None = None,
        items: list[OutlineNode] | None = None,
        column: int = 0,
        shared: bool = False,
        spans: list[tuple[int, int]] | None = None,
    ) -> None:
        """A node read at [start, end) on `line` (1-based), in `style`."""
        self.value = value
        self.start = start
        self.end = end
        self.line = line
        self.style = style
        # A mapping's keys and values, duplicates kept.
        self.pairs = pairs
        self.items = items  # a sequence's items
        self.column = column  # a block collection's key or dash column
        self.shared = shared  # an anchored or aliased node: one text, several places in the data
        # Fast reader, the task list as a block sequence: for each item, the offset of its dash
        # line and the offset of the line after it (the next content line, or the end of the
        # text).
        self.spans = spans

    def __repr__(self) -> str:
        return (
            f"OutlineNode({self.value!r}, {self.start}, {self.end}, line={self.line}, "
            f"style={self.style!r})"
        )


def shift(node: OutlineNode, offset: int, lines: int) -> None:
    """Move `node` and everything below it by `offset` characters and `lines` lines: a node
    read from a piece of the text, placed where that piece starts."""
    if node.start >= 0:
        node.start += offset
    if node.end >= 0:
        node.end += offset
    node.line += lines
    for key, value in node.pairs or ():
        shift(key, offset, lines)
        shift(value, offset, lines)
    for item in node.items or ():
        shift(item, offset, lines)


class Outline:
    """A read file: its tree, its tasks' nodes, and which reader read it."""

    __slots__ = ("fast", "items", "root")

    def __init__(self, root: OutlineNode, items: list[OutlineNode], fast: bool) -> None:
        """The outline of a file read by the fast reader (`fast`) or the full one."""
        self.root = root
        self.items = items
        self.fast = fast


# ------------------------------------------------------------------ YAML text and scalars


class OutsideSubsetError(Exception):
    """The fast reader met YAML outside its subset; the full parser reads the file instead."""


class LimitError(Exception):
    """The fast reader went past a limit of the document (`too_many_nodes`, `too_many_tasks`).

    Unlike `OutsideSubsetError` this is final: the full parser would count the same, so the
    document refuses the file at `line` with `problem`.
    """

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(line, problem)
        self.line = line
        self.problem = problem


def too_many_nodes(limit: int) -> str:
    """The refusal of a file past the node limit; both readers word it alike."""
    return (
        f"more than {limit} YAML nodes (keys, values and list items); "
        f"a backlog file may hold at most {limit}"
    )


def too_many_tasks(limit: int) -> str:
    """The refusal of a file past the task limit; both readers and the document word it alike."""
    return f"more than {limit} tasks; a backlog file may hold at most {limit}"


# ruamel.yaml resolves and constructs scalars on both paths, so both agree on what `1e3`,
# `2026-01-30` or `NULL` mean. The instance is only used for those pure lookups.
_SCALARS = YAML(typ="safe", pure=True)
_STR_TAG = "tag:yaml.org,2002:str"
_CONSTRUCTED_TAGS = frozenset(
    {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}
)

# Characters YAML does not allow in a stream (as ruamel.yaml's reader checks), and the
# characters that some YAML readers take as line breaks: both send a file to the full parser.
# Spelled as the few ranges outside what YAML allows (tab, line feed, carriage return, printable
# ASCII, \xa0-\u2027, \u202a-\ud7ff, \ue000-\ufefe, \uff00-\ufffd, \U00010000-\U0010ffff):
# the same characters, and the negated class of those big ranges took every worker step some
# 4 ms to compile.
ODD_CHARACTERS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]"
)

# YAML 1.2 (core schema, as ruamel.yaml reads it) gives a meaning other than a string to a plain
# scalar starting with a letter only for these words; the tests hold the table to ruamel.yaml's.
WORDS: dict[str, object] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("null", "Null", "NULL", "~"), None),
}
# Plain scalars starting with one of these may be numbers, dates or merge keys: ask ruamel.yaml.
_NUMERIC_FIRST = frozenset("-+.0123456789<=")


def plain_value(text: str) -> Any:
    """What a plain scalar means under YAML 1.2 (ruamel.yaml's resolver and constructors)."""
    if text[0] not in _NUMERIC_FIRST:
        return WORDS.get(text, text)
    return _resolved_value(text)


@lru_cache(maxsize=4096)
def _resolved_value(text: str) -> Any:
    resolved = _SCALARS.resolver.resolve(ScalarNode, text, (True, False))
    tag = str(getattr(resolved, "value", resolved))  # a ruamel.yaml Tag, or a str in older ones
    if tag == _STR_TAG:
        return text
    if tag in _CONSTRUCTED_TAGS:
        constructor = _SCALARS.constructor
        try:
            return constructor.yaml_constructors[tag](constructor, ScalarNode(tag, text))
        except (ValueError, OverflowError):
            # An integer past Python's 4,300 digits, a date like 2026-13-45: the full reader
            # refuses the file, at the line of the value.
            raise OutsideSubsetError(f"plain scalar that cannot be read as {tag}") from None
    raise OutsideSubsetError(f"plain scalar resolving to {tag}")


def skip_spaces(text: str, at: int) -> int:
    """The offset of the first character at or after `at` that is not a space."""
    while at < len(text) and text[at] == " ":
        at += 1
    return at


# The tokens of YAML in flow context, for counting the nodes of a flow collection ahead of the
# parser. Inside `[...]` and `{...}`, `,[]{}` cannot be part of a plain scalar, an anchor, an
# alias or a short tag, so outside quoted scalars, comments and verbatim tags they are structure.
# A plain scalar runs on across spaces and line breaks, up to a flow indicator, a `: ` or a
# comment: it is never cut shorter than YAML cuts it, so each node counted is a node of the file.
_FLOW_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n]+)
    | (?P<comment>\#[^\r\n]*)
    | (?P<open>[\[{])
    | (?P<close>[\]}])
    | (?P<indicator>,|[?:](?=[ \t\r\n,\[\]{}]|\Z))
    | (?P<quoted>'(?:[^']|'')*'|"(?:[^"\\]|\\.)*")
    | (?P<alias>\*[^ \t\r\n,\[\]{}]+)
    | (?P<property>&[^ \t\r\n,\[\]{}]+|!<[^>]*>|![^ \t\r\n,\[\]{}]*)
    | (?P<plain>[^ \t\r\n,\[\]{}'"\#|>%@`\x00]
        (?:[^ \t\r\n,\[\]{}:\#]
        | :(?![ \t\r\n,\[\]{}]|\Z)
        | (?<![ \t\r\n])\#
        | [ \t\r\n]+(?=[^ \t\r\n,\[\]{}:\#]|:(?![ \t\r\n,\[\]{}]|\Z))
        )*)
    """,
    re.VERBOSE | re.DOTALL,
)
_NODE_TOKENS = frozenset({"open", "quoted", "alias", "plain"})


def flow_nodes_past(text: str, start: int, room: int) -> int | None:
    """Where the flow collection opening at `start` holds more than `room` nodes, or None.

    Counts a node for each collection, quoted or plain scalar and alias, and none for the
    empty values and single-pair mappings YAML may add: never more nodes than the composer
    will count. Stops, finding nothing, at the collection's end, the end of the text, or
    anything it does not read (the parser will report it).
    """
    nodes = depth = 0
    position = start
    match = _FLOW_TOKEN.match(text, position)
    while match is not None:
        kind = match.lastgroup
        if kind in _NODE_TOKENS:
            nodes += 1
            if nodes > room:
                return position
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
            if depth == 0:
                return None
        position = match.end()
        match = _FLOW_TOKEN.match(text, position)
    return None


# ------------------------------------------------------------------------------- the tasks


def tasks_node(root: OutlineNode) -> OutlineNode | None:
    """The node of the task list: the `tasks:` value, or the root when it is a list."""
    if root.items is not None:
        return root
    for key, value in root.pairs or ():
        if key.value == "tasks":
            return value
    return None


def task_items(root: OutlineNode) -> list[OutlineNode]:
    """The nodes of the tasks, in file order; empty when there is no task list."""
    node = tasks_node(root)
    return node.items if node is not None and node.items is not None else []


def entry_end(pair: tuple[OutlineNode, OutlineNode]) -> int:
    """The offset just after a mapping entry: its value's end, or its key's for no value."""
    key, value = pair
    return value.end if value.end >= 0 else key.end


def check_duplicate_keys(root: OutlineNode, source: str) -> None:
    """Duplicate keys at the top or in a task: the later one would silently win."""
    for number, node in [(0, root), *enumerate(task_items(root), start=1)]:
        seen: dict[Any, int] = {}
        for key, _value in node.pairs or ():
            if key.value == "<<":
                continue
            if key.value in seen:
                first = f"(first at line {seen[key.value]})"
                if number == 0:
                    problem = f"duplicate top-level key {key.value!r} {first}"
                else:
                    label = _task_label(node, number)
                    problem = f"{label}: duplicate key {key.value!r} {first}"
                raise BacklogError(source, key.line, problem)
            seen[key.value] = key.line


def _task_label(item: OutlineNode, number: int) -> str:
    """`task 'the-id'` when the task has a usable id, else `task #3`."""
    for key, value in item.pairs or ():
        if key.value != "id":
            continue
        # Both readers' nodes hold the text of a plain scalar; only a string names the task.
        text = value.value
        if not isinstance(text, str) or not text.strip():
            break
        try:
            if value.style == PLAIN and plain_value(text) != text:
                break
        except OutsideSubsetError:
            break
        return f"task {text!r}"
    return f"task #{number}"
