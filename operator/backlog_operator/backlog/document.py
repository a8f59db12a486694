"""The backlog file as a document: read and validate it, and edit one task's fields in place.

Writeback must leave every byte of the file outside the edited fields as it was (comments,
quoting, indentation, block scalars, line endings, other tasks), and a YAML library's
round-trip dump does not promise that. So the file is never re-serialised. Reading builds an
outline of the file (each task's keys and values with their character offsets); an edit
replaces the text of one value, or inserts a missing `key: value` line after the task's last
key (block style, the task's own indentation and line ending), and leaves everything else
alone. Each edit is checked by reading the result back: the data must be the old data plus
exactly the intended change, or the edit is refused and the document is left as it was. (On
the fast path below it is enough to read back the edited task's own lines, see
`BacklogDocument._verify_item`; ruamel.yaml reads them as well, as a second opinion.)

Reading has two paths that build the same outline:

- a fast reader for the plain YAML that backlog files are written in (block mappings and
  sequences, plain and single-line quoted scalars, single-line flow collections, `|` and `>`
  block scalars, comments, `---`/`...`), which reads a 5,000-task file in a fraction of the time
  a full parser needs, and gives up on anything outside that subset;
- ruamel.yaml's composer, which reads everything else (and finds the line of a syntax error).

Scalars are resolved by ruamel.yaml's own YAML 1.2 rules on both paths, and the tests compare
the two paths on generated documents.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from backlog_operator.backlog.errors import (
    BacklogEditError,
    BacklogError,
    BacklogNotFoundError,
    UnknownTaskError,
)
from backlog_operator.backlog.model import Task, value_kind

DEFAULT_MAX_BYTES = 5 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_EXPECTED_SHAPE = "expected a mapping with a `tasks:` list, or a list of tasks"

# Writeback fields in the order the design shows them; a missing one is inserted after the
# nearest earlier one the task already has, so a later set_pr_number lands before completed_at.
_WRITEBACK_KEYS = ("last_attempt_id", "branch_name", "pr_number", "completed_at")

# Node styles. Scalars: plain, quoted, block; collections: flow or block; "empty" is a key with
# no value text at all (`pr_number:`), whose start and end sit just after the colon.
_PLAIN, _SINGLE, _DOUBLE, _LITERAL, _FOLDED = "plain", "'", '"', "|", ">"
_FLOW, _BLOCK, _EMPTY = "flow", "block", "empty"


@dataclass(slots=True, eq=False)
class _Node:
    """One node of the outline: where it is in the text and, where known, its value.

    `start` is the offset of its first character (for a value with an anchor or tag, of the
    `&`/`!`), `end` the offset just after its last character of content: for a block scalar
    the end of its last content line (for `|+`/`>+` of its last kept empty line), for a block
    collection the end of its last item. Offsets count characters of the decoded text.
    """

    value: Any
    start: int
    end: int
    line: int  # 1-based
    style: str
    pairs: list[tuple[_Node, _Node]] | None = None  # a mapping's keys and values, duplicates kept
    items: list[_Node] | None = None  # a sequence's items
    column: int = 0  # a block collection's key or dash column
    shared: bool = False  # an anchored or aliased node: one text, several places in the data
    # Fast reader, block sequences: for each item, the offset of its dash line and the offset of
    # the line after it (the next content line, or the end of the text).
    spans: list[tuple[int, int]] | None = None


@dataclass(slots=True)
class _Outline:
    """A read file: its tree, its tasks' nodes, and which reader read it."""

    root: _Node
    items: list[_Node]
    fast: bool


# --------------------------------------------------------------------------- the fast reader


class _OutsideSubsetError(Exception):
    """The fast reader met YAML outside its subset; the full parser reads the file instead."""


# ruamel.yaml resolves and constructs scalars on both paths, so both agree on what `1e3`,
# `2026-01-30` or `NULL` mean. The instance is only used for those pure lookups.
_SCALARS = YAML(typ="safe", pure=True)
_STR_TAG = "tag:yaml.org,2002:str"
_CONSTRUCTED_TAGS = frozenset(
    {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}
)

# Characters YAML does not allow in a stream (as ruamel.yaml's reader checks), and the
# characters that some YAML readers take as line breaks: both send a file to the full parser.
_ODD_CHARACTERS = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
    "\U00010000-\U0010ffff]"
)
# A simple key, its colon, and the spaces after it.
_KEY = re.compile(r"([A-Za-z_][\w.\-]*) *(:)(?: +|$)")
_FLOW_KEY = re.compile(r"([A-Za-z_][\w.\-]*) *:(?=[ ,}])")
_SINGLE_QUOTED = re.compile(r"'((?:[^'\t]|'')*)'")
_DOUBLE_QUOTED = re.compile(r'"((?:[^"\\\t]|\\.)*)"')
_FLOW_PLAIN = re.compile(r"[^\s,\[\]{}#&*!|>'\"%@`?:\-](?:[^\s,\[\]{}:]| +(?=[^\s,\[\]{}#:]))*")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TRAILER = re.compile(r"(?: +#.*)?")  # what may follow a value on its line: a comment
_BLOCK_HEADER = re.compile(r"([|>])([+-]?)(?: +#.*)?")
_ANY_BLOCK_HEADER = re.compile(r"[|>](?:([1-9])([+-]?)|([+-]?)([1-9]?))")
_DOC_START = re.compile(r"---(?: +#.*)?")
_DOC_END = re.compile(r"\.\.\.(?: +#.*)?")
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)")
_SIMPLE_ESCAPES = {
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "t": "\t",
    "n": "\n",
    "v": "\v",
    "f": "\f",
    "r": "\r",
    "e": "\x1b",
    " ": " ",
    '"': '"',
    "/": "/",
    "\\": "\\",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}
_MAX_DEPTH = 64


# YAML 1.2 (core schema, as ruamel.yaml reads it) gives a meaning other than a string to a plain
# scalar starting with a letter only for these words; the tests hold the table to ruamel.yaml's.
_WORDS: dict[str, object] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("null", "Null", "NULL", "~"), None),
}
# Plain scalars starting with one of these may be numbers, dates or merge keys: ask ruamel.yaml.
_NUMERIC_FIRST = frozenset("-+.0123456789<=")


def _plain_value(text: str) -> Any:
    """What a plain scalar means under YAML 1.2 (ruamel.yaml's resolver and constructors)."""
    if text[0] not in _NUMERIC_FIRST:
        return _WORDS.get(text, text)
    return _resolved_value(text)


@lru_cache(maxsize=4096)
def _resolved_value(text: str) -> Any:
    resolved = _SCALARS.resolver.resolve(ScalarNode, text, (True, False))
    tag = str(getattr(resolved, "value", resolved))  # a ruamel.yaml Tag, or a str in older ones
    if tag == _STR_TAG:
        return text
    if tag in _CONSTRUCTED_TAGS:
        constructor = _SCALARS.constructor
        return constructor.yaml_constructors[tag](constructor, ScalarNode(tag, text))
    raise _OutsideSubsetError(f"plain scalar resolving to {tag}")


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code[0] in "xuU" and len(code) > 1:
        number = int(code[1:], 16)
        if 0xD800 <= number <= 0xDFFF:
            raise _OutsideSubsetError("surrogate escape")
        return chr(number)
    if code in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[code]
    raise _OutsideSubsetError("unknown escape")


class _FastReader:
    """Reads the plain subset of YAML that backlog files use, line by line.

    Anything outside the subset raises `_OutsideSubsetError`; the caller then uses the full parser.
    The subset keeps every construct on the lines it obviously belongs to (no multi-line plain
    or quoted scalars, no multi-line flow collections, no anchors, tags, directives or tabs
    outside comments), so reading a line never depends on more than the indentation above it.
    """

    def __init__(self, text: str) -> None:
        if _ODD_CHARACTERS.search(text) or "\ufeff" in text:
            raise _OutsideSubsetError("unusual characters")
        crlf = "\r" in text
        if crlf and not (text.count("\r") == text.count("\r\n") == text.count("\n")):
            raise _OutsideSubsetError("mixed line endings")
        self.text = text
        self.final_break = text.endswith("\n")
        raw = text.split("\n")
        if self.final_break:
            raw.pop()
        lines: list[str] = []
        starts: list[int] = []
        indents: list[int] = []
        content: list[bool] = []
        offset = 0
        for line in raw:
            starts.append(offset)
            offset += len(line) + 1
            if crlf and line.endswith("\r"):
                line = line[:-1]
            stripped = line.lstrip(" ")
            lines.append(line)
            # A document marker ends every collection and block scalar: give it indentation -1.
            marker = line.startswith(("---", "...")) and line[3:4] in ("", " ", "\t")
            indents.append(-1 if marker else len(line) - len(stripped))
            # Blank and comment-only lines are skipped between nodes; a tab-led line is kept as
            # content, so that whatever meets it gives up.
            content.append(bool(stripped) and stripped[0] != "#")
        self.lines = lines
        self.starts = starts
        self.indents = indents
        self.content = content
        self.count = len(lines)
        self.duplicates: list[_Node] = []

    # The document ------------------------------------------------------------------------

    def read(self) -> _Node | None:
        """The document's root node, or None for a document without one."""
        index = self._skip_to_content(0)
        if index < self.count and self.lines[index].startswith("%"):
            raise _OutsideSubsetError("directive")
        if index < self.count and self.indents[index] < 0:
            if not _DOC_START.fullmatch(self.lines[index]):
                raise _OutsideSubsetError("content after ---, or ... first")
            index = self._skip_to_content(index + 1)
            if index >= self.count:
                raise _OutsideSubsetError("an explicit empty document")
        if index >= self.count:
            return None
        if self.indents[index] != 0:
            raise _OutsideSubsetError("indented root")
        node, index = self._block_node(index, -1, 0)
        index = self._skip_to_content(index)
        if index < self.count:
            if not _DOC_END.fullmatch(self.lines[index]):
                raise _OutsideSubsetError("more than one document, or content after the root")
            if self._skip_to_content(index + 1) < self.count:
                raise _OutsideSubsetError("content after ...")
        return node

    def _is_dash(self, index: int, column: int) -> bool:
        line = self.lines[index]
        return line.startswith("-", column) and (len(line) == column + 1 or line[column + 1] == " ")

    # Block collections ---------------------------------------------------------------------

    def _block_node(self, index: int, parent: int, depth: int) -> tuple[_Node, int]:
        """A block mapping or sequence starting at content line `index`."""
        if depth > _MAX_DEPTH:
            raise _OutsideSubsetError("nested too deeply")
        column = self.indents[index]
        if self._is_dash(index, column):
            return self._block_sequence(index, column, depth)
        if _KEY.match(self.lines[index], column):
            return self._block_mapping(index, column, depth)
        raise _OutsideSubsetError("a scalar or flow collection on its own line")

    def _skip_to_content(self, index: int) -> int:
        """The first content line at or after `index` (blank and comment lines are skipped)."""
        content = self.content
        count = self.count
        while index < count and not content[index]:
            index += 1
        return index

    def _block_sequence(self, index: int, column: int, depth: int) -> tuple[_Node, int]:
        """A block sequence whose dashes are at `column`, the first on line `index`."""
        start = self.starts[index] + column
        items: list[_Node] = []
        spans: list[tuple[int, int]] = []
        node = _Node(None, start, start, index + 1, _BLOCK, items=items, column=column)
        indents = self.indents
        count = self.count
        while True:
            begin = self.starts[index]
            item, index = self._sequence_item(index, column, depth + 1)
            items.append(item)
            spans.append((begin, self.starts[index] if index < count else len(self.text)))
            if index >= count or indents[index] < column:
                break
            if indents[index] > column:
                raise _OutsideSubsetError("unexpected indentation")
            if not self._is_dash(index, column):
                break
        node.value = [item.value for item in items]
        node.end = items[-1].end
        node.spans = spans
        return node, index

    def _sequence_item(self, index: int, column: int, depth: int) -> tuple[_Node, int]:
        """The item whose dash is at (`index`, `column`), and the next content line's index.

        What it reads depends only on the item's own lines and the first content line after
        them, which is what lets an edit be checked by reading the edited item alone.
        """
        line = self.lines[index]
        count = self.count
        at = column + 1
        while at < len(line) and line[at] == " ":
            at += 1
        if at == len(line) or line[at] == "#":
            following = self._skip_to_content(index + 1)
            if following < count and self.indents[following] > column:
                return self._block_node(following, column, depth)
            offset = self.starts[index] + column + 1
            return _Node(None, offset, offset, index + 1, _EMPTY), following
        if self._is_dash(index, at):
            raise _OutsideSubsetError("compact nested sequence")
        if _KEY.match(line, at):
            return self._block_mapping(index, at, depth)
        if line[at] in "|>":
            raise _OutsideSubsetError("block scalar as a sequence item")
        item = self._inline(index, at)
        index = self._skip_to_content(index + 1)
        if index < count and self.indents[index] > column:
            raise _OutsideSubsetError("multi-line scalar")
        return item, index

    def _block_mapping(self, index: int, column: int, depth: int) -> tuple[_Node, int]:
        """A block mapping whose first key is at (`index`, `column`); later keys line up."""
        start = self.starts[index] + column
        pairs: list[tuple[_Node, _Node]] = []
        data: dict[str, Any] = {}
        node = _Node(data, start, start, index + 1, _BLOCK, pairs=pairs, column=column)
        lines = self.lines
        starts = self.starts
        indents = self.indents
        content = self.content
        count = self.count
        match_key = _KEY.match
        while True:
            line = lines[index]
            match = match_key(line, column)
            if match is None:
                raise _OutsideSubsetError("not a simple key")
            name = match.group(1)
            if name in _WORDS:
                raise _OutsideSubsetError("key that is not a string")
            line_start = starts[index]
            key = _Node(name, line_start + column, line_start + match.end(1), index + 1, _PLAIN)
            at = match.end()
            if at == len(line) or line[at] == "#":
                following = index + 1
                while following < count and not content[following]:
                    following += 1
                if following < count and indents[following] > column:
                    value, index = self._block_node(following, column, depth + 1)
                elif (
                    following < count
                    and indents[following] == column
                    and self._is_dash(following, column)
                ):
                    value, index = self._block_sequence(following, column, depth + 1)
                else:
                    colon = line_start + match.start(2)
                    value = _Node(None, colon + 1, colon + 1, index + 1, _EMPTY)
                    index = following
            elif line[at] in "|>":
                value, index = self._block_scalar(index, at, column)
                index = self._skip_to_content(index)
            else:
                value = self._inline(index, at)
                index += 1
                while index < count and not content[index]:
                    index += 1
                if index < count and indents[index] > column:
                    raise _OutsideSubsetError("multi-line scalar")
            if name in data:
                self.duplicates.append(node)
            data[name] = value.value
            pairs.append((key, value))
            # `index` is now the next content line (or the end).
            if index >= count or indents[index] < column:
                break
            if indents[index] > column:
                raise _OutsideSubsetError("unexpected indentation")
            if self._is_dash(index, column):
                break  # the sequence that follows a non-indented sequence's owner key
        node.end = pairs[-1][1].end
        return node, index

    # Block scalars ----------------------------------------------------------------------

    def _block_scalar(self, index: int, at: int, parent: int) -> tuple[_Node, int]:
        """A `|` or `>` scalar whose header is at (`index`, `at`), built as PyYAML does."""
        header = _BLOCK_HEADER.fullmatch(self.lines[index], at)
        if header is None:
            raise _OutsideSubsetError("block scalar header")
        folded = header.group(1) == ">"
        chomping = header.group(2)
        lines = self.lines
        count = self.count
        row = index + 1
        leading = 0
        while row < count and not lines[row].strip(" "):
            # ruamel.yaml refuses some leading lines of spaces that PyYAML takes; take none.
            if lines[row]:
                raise _OutsideSubsetError("block scalar led by a line of spaces")
            leading += 1
            row += 1
        if row >= count or self.indents[row] <= parent:
            raise _OutsideSubsetError("empty block scalar")
        indent = self.indents[row]
        parts = ["\n" * leading]
        last_content = row
        last_line = row
        previous_plain = False
        gap = 0
        first = True
        while row < count:
            line = lines[row]
            if not line.strip(" "):
                if len(line) >= indent:
                    raise _OutsideSubsetError("whitespace-only line inside a block scalar")
                gap += 1
                last_line = row
                row += 1
                continue
            if self.indents[row] < indent:
                break
            text = line[indent:]
            if folded and "\t" in text:
                raise _OutsideSubsetError("tab in a folded scalar")
            plain_start = text[0] not in " \t"
            if not first:
                if folded and previous_plain and plain_start:
                    parts.append(" " if gap == 0 else "\n" * gap)
                else:
                    parts.append("\n" * (gap + 1))
            parts.append(text)
            first = False
            previous_plain = plain_start
            gap = 0
            last_content = last_line = row
            row += 1
        if last_line == count - 1 and not self.final_break:
            raise _OutsideSubsetError(
                "block scalar at the end of a file without a final line break"
            )
        if chomping != "-":
            parts.append("\n")
        if chomping == "+":
            parts.append("\n" * gap)
        else:
            last_line = last_content
        end = self.starts[last_line] + len(lines[last_line])
        start = self.starts[index] + at
        return _Node("".join(parts), start, end, index + 1, header.group(1)), row

    # One-line values ----------------------------------------------------------------------

    def _inline(self, index: int, at: int) -> _Node:
        """The value that starts at column `at` and ends on the same line, then a comment."""
        line = self.lines[index]
        base = self.starts[index]
        char = line[at]
        if char in "'\"":
            value, style, end = self._quoted(line, at)
        elif char == "[":
            items, end = self._flow_sequence(line, at, base, index)
            node = _Node([item.value for item in items], base + at, base + end, index + 1, _FLOW)
            node.items = items
            self._trailer(line, end)
            return node
        elif char == "{":
            return self._flow_mapping(line, at, base, index)
        else:
            if char in "?:,]}#&*!|>%@`" or (
                char == "-" and (at + 1 == len(line) or line[at + 1] == " ")
            ):
                raise _OutsideSubsetError("indicator starting a value")
            comment = line.find(" #", at)
            text = (line[at:] if comment == -1 else line[at:comment]).rstrip(" ")
            if ": " in text or text.endswith(":") or "\t" in text:
                raise _OutsideSubsetError("plain scalar with ': ' or a tab")
            # What follows is spaces and perhaps a comment: nothing to check.
            return _Node(_plain_value(text), base + at, base + at + len(text), index + 1, _PLAIN)
        self._trailer(line, end)
        return _Node(value, base + at, base + end, index + 1, style)

    @staticmethod
    def _trailer(line: str, end: int) -> None:
        if not _TRAILER.fullmatch(line, end):
            raise _OutsideSubsetError("text after a value")

    @staticmethod
    def _quoted(line: str, at: int) -> tuple[str, str, int]:
        """A single-line quoted scalar at `at`: its value, style and end column."""
        if line[at] == "'":
            match = _SINGLE_QUOTED.match(line, at)
            if match is None:
                raise _OutsideSubsetError("multi-line single-quoted scalar")
            return match.group(1).replace("''", "'"), _SINGLE, match.end()
        match = _DOUBLE_QUOTED.match(line, at)
        if match is None:
            raise _OutsideSubsetError("multi-line double-quoted scalar")
        body = match.group(1)
        if "\\" in body:
            body = _ESCAPE.sub(_unescape, body)
        return body, _DOUBLE, match.end()

    def _flow_scalar(self, line: str, at: int, base: int, index: int) -> tuple[_Node, int]:
        char = line[at : at + 1]
        if char in ("'", '"'):
            value, style, end = self._quoted(line, at)
            return _Node(value, base + at, base + end, index + 1, style), end
        match = _FLOW_PLAIN.match(line, at)
        if match is None:
            raise _OutsideSubsetError("flow item")
        text = match.group(0)
        node = _Node(_plain_value(text), base + at, base + match.end(), index + 1, _PLAIN)
        return node, match.end()

    @staticmethod
    def _skip_spaces(line: str, at: int) -> int:
        while at < len(line) and line[at] == " ":
            at += 1
        return at

    def _flow_sequence(self, line: str, at: int, base: int, index: int) -> tuple[list[_Node], int]:
        """`[a, 'b', "c"]` on one line, scalars only: its items and the column after `]`."""
        items: list[_Node] = []
        at = self._skip_spaces(line, at + 1)
        if line.startswith("]", at):
            return items, at + 1
        while True:
            item, at = self._flow_scalar(line, at, base, index)
            items.append(item)
            at = self._skip_spaces(line, at)
            if line.startswith(",", at):
                at = self._skip_spaces(line, at + 1)
                if line.startswith("]", at):
                    return items, at + 1
            elif line.startswith("]", at):
                return items, at + 1
            else:
                raise _OutsideSubsetError("flow sequence")

    def _flow_mapping(self, line: str, at: int, base: int, index: int) -> _Node:
        """`{id: a, status: pending}` on one line, scalar values only."""
        pairs: list[tuple[_Node, _Node]] = []
        data: dict[str, Any] = {}
        node = _Node(data, base + at, base + at, index + 1, _FLOW, pairs=pairs)
        at = self._skip_spaces(line, at + 1)
        while not line.startswith("}", at):
            match = _FLOW_KEY.match(line, at)
            if match is None:
                raise _OutsideSubsetError("flow mapping key")
            name = match.group(1)
            if name in _WORDS:
                raise _OutsideSubsetError("key that is not a string")
            key = _Node(name, base + at, base + at + len(name), index + 1, _PLAIN)
            colon = match.end() - 1
            at = self._skip_spaces(line, match.end())
            if line.startswith((",", "}"), at):
                value = _Node(None, base + colon + 1, base + colon + 1, index + 1, _EMPTY)
            else:
                value, at = self._flow_scalar(line, at, base, index)
                at = self._skip_spaces(line, at)
            if name in data:
                self.duplicates.append(node)
            data[name] = value.value
            pairs.append((key, value))
            if line.startswith(",", at):
                at = self._skip_spaces(line, at + 1)
            elif not line.startswith("}", at):
                raise _OutsideSubsetError("flow mapping")
        node.end = base + at + 1
        self._trailer(line, at + 1)
        return node


# ------------------------------------------------------------------ the full parser's path


def _line_start(text: str, offset: int) -> int:
    return max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1


def _block_scalar_end(text: str, start: int, parent: int) -> int | None:
    """Where the content of the block scalar whose header is at `start` ends (see `_Node`).

    Follows PyYAML's scanner: the indentation is the explicit indicator's or that of the first
    non-blank line; a line of spaces only is empty when shorter than the indentation, content
    otherwise. None when the header cannot be read.
    """
    header = _ANY_BLOCK_HEADER.match(text, start)
    if header is None:
        return None
    digit = header.group(1) or header.group(4)
    keep = (header.group(2) or header.group(3)) == "+"
    break_at = text.find("\n", start)
    if break_at == -1:
        return len(text)
    header_end = break_at - 1 if text[break_at - 1 : break_at] == "\r" else break_at
    indent = max(parent, 0) + int(digit) if digit else None
    last_content = last_line = None
    position = break_at + 1
    while position < len(text):
        newline = text.find("\n", position)
        line_end = len(text) if newline == -1 else newline
        content_end = line_end - 1 if text[line_end - 1 : line_end] == "\r" else line_end
        line = text[position:content_end]
        stripped = line.lstrip(" ")
        width = len(line) - len(stripped)
        if not stripped:
            last_line = content_end
            if indent is not None and width >= indent:
                last_content = content_end
        else:
            if indent is None:
                indent = width if width > parent else parent + 1
            if width < indent:
                break
            last_content = last_line = content_end
        if newline == -1:
            break
        position = newline + 1
    if last_content is None:
        return header_end
    return last_line if keep and last_line is not None else last_content


class _FullReader:
    """Builds the outline with ruamel.yaml's composer, for files the fast reader declines."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.uses: dict[int, int] = {}

    def read(self) -> _Node | None:
        yaml = YAML(typ="safe", pure=True)
        try:
            composed = yaml.compose(self.text)
            if composed is None:
                return None
            self._count_uses(composed)
            root = self._convert(composed, -1)
            _check_duplicate_keys(root, self.source)
            data = yaml.constructor.construct_document(composed)
        except MarkedYAMLError as error:
            raise _yaml_error(error, self.source) from None
        except YAMLError as error:
            raise BacklogError(self.source, None, f"invalid YAML: {error}") from None
        except RecursionError:
            raise BacklogError(self.source, None, "invalid YAML: nested too deeply") from None
        _attach_values(root, data)
        return root

    def _count_uses(self, node: Node) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            seen = self.uses.get(id(current), 0)
            self.uses[id(current)] = seen + 1
            if seen:
                continue  # an alias: its children were counted at the anchor
            if isinstance(current, MappingNode):
                for key, value in current.value:
                    stack.extend((key, value))
            elif isinstance(current, SequenceNode):
                stack.extend(current.value)

    def _convert(self, node: Node, parent: int) -> _Node:
        text = self.text
        start = node.start_mark.index
        line = node.start_mark.line + 1
        shared = self.uses.get(id(node), 0) > 1 or getattr(node, "anchor", None) is not None
        if isinstance(node, ScalarNode):
            style = {None: _PLAIN, "'": _SINGLE, '"': _DOUBLE, "|": _LITERAL, ">": _FOLDED}.get(
                node.style, _PLAIN
            )
            end = node.end_mark.index
            if style in (_LITERAL, _FOLDED):
                end = _block_scalar_end(text, start, parent) or end
            elif style == _PLAIN and node.value == "" and start == end:
                style = _EMPTY
            return _Node(node.value, start, end, line, style, shared=shared)
        column = start - _line_start(text, start)
        flow = bool(getattr(node, "flow_style", False))
        if isinstance(node, MappingNode):
            pairs = []
            for key_node, value_node in node.value:
                key = self._convert(key_node, column)
                value = self._convert(value_node, column)
                if value.style == _EMPTY:
                    # An empty value's marks point at whatever follows; anchor it to the colon.
                    colon = _colon_after(text, key.end)
                    value.start = value.end = colon + 1 if colon is not None else -1
                    value.line = key.line
                pairs.append((key, value))
            end = node.end_mark.index if flow or not pairs else _entry_end(pairs[-1])
            return _Node(
                None,
                start,
                end,
                line,
                _FLOW if flow else _BLOCK,
                pairs=pairs,
                column=column,
                shared=shared,
            )
        assert isinstance(node, SequenceNode)
        items = [self._convert(item, column) for item in node.value]
        end = node.end_mark.index if flow or not items else items[-1].end
        return _Node(
            None,
            start,
            end,
            line,
            _FLOW if flow else _BLOCK,
            items=items,
            column=column,
            shared=shared,
        )


def _colon_after(text: str, offset: int) -> int | None:
    """The offset of the `:` that follows a key ending at `offset`, past spaces only."""
    while offset < len(text) and text[offset] == " ":
        offset += 1
    return offset if text.startswith(":", offset) else None


def _entry_end(pair: tuple[_Node, _Node]) -> int:
    key, value = pair
    return value.end if value.end >= 0 else key.end


def _attach_values(root: _Node, data: Any) -> None:
    """Give the outline's root, task list and tasks the values ruamel.yaml constructed."""
    root.value = data
    tasks_node = _tasks_node(root)
    if tasks_node is None or not isinstance(data, dict | list):
        return
    tasks = data.get("tasks") if isinstance(data, dict) else data
    tasks_node.value = tasks
    if tasks_node.items is not None and isinstance(tasks, list):
        for item, value in zip(tasks_node.items, tasks, strict=False):
            item.value = value


def _yaml_error(error: MarkedYAMLError, source: str) -> BacklogError:
    """A ruamel.yaml error as a BacklogError at its problem's line."""
    mark = error.problem_mark or error.context_mark
    problem = (error.problem or error.context or "cannot be read").strip()
    context = error.context.strip() if error.context and error.problem else ""
    if context and error.context_mark is not None:
        context += f" at line {error.context_mark.line + 1}"
    if context and problem.startswith("but "):
        # ruamel.yaml splits some messages as context "expected X" + problem "but found Y".
        detail = f"invalid YAML: {context}, {problem}"
    else:
        detail = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    return BacklogError(source, mark.line + 1 if mark is not None else None, detail)


# ------------------------------------------------------------------- outline and validation


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cycle collector while reading builds a great many small objects.

    A 5,000-task file makes some 100,000 objects that all stay alive; meanwhile CPython's
    collector would walk them again and again, a third of the reading time. Nothing read here
    forms reference cycles, so the pause changes nothing but the time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read(text: str, source: str) -> _Outline:
    """Read `text` (fast reader first) and check its shape; BacklogError when it is wrong."""
    root: _Node | None
    fast = True
    try:
        reader = _FastReader(text)
        root = reader.read()
        if root is not None:
            allowed = {id(root)} | {id(item) for item in _task_items(root)}
            if any(id(node) not in allowed for node in reader.duplicates):
                raise _OutsideSubsetError("duplicate keys below the tasks")  # the parser reports it
    except _OutsideSubsetError:
        fast = False
        root = _FullReader(text, source).read()
    if root is None:
        raise BacklogError(source, None, f"the file holds no YAML document; {_EXPECTED_SHAPE}")
    _check_duplicate_keys(root, source)
    return _Outline(root, _task_items_checked(root, source), fast)


def _tasks_node(root: _Node) -> _Node | None:
    """The node of the task list: the `tasks:` value, or the root when it is a list."""
    if root.items is not None:
        return root
    for key, value in root.pairs or ():
        if key.value == "tasks":
            return value
    return None


def _task_items(root: _Node) -> list[_Node]:
    node = _tasks_node(root)
    return node.items if node is not None and node.items is not None else []


def _task_items_checked(root: _Node, source: str) -> list[_Node]:
    if root.pairs is None and root.items is None:
        raise BacklogError(source, root.line, f"{_EXPECTED_SHAPE}; found {value_kind(root.value)}")
    node = _tasks_node(root)
    if node is None:
        raise BacklogError(source, root.line, f"no `tasks:` key; {_EXPECTED_SHAPE}")
    if node.items is None:
        if node.value is None:
            return []  # `tasks:` with nothing under it yet
        key_line = next(key.line for key, value in root.pairs or () if value is node)
        raise BacklogError(
            source, key_line, f"`tasks` must be a list of tasks, found {value_kind(node.value)}"
        )
    return node.items


def _check_duplicate_keys(root: _Node, source: str) -> None:
    """Duplicate keys at the top or in a task: the later one would silently win."""
    for number, node in [(0, root), *enumerate(_task_items(root), start=1)]:
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


def _task_label(item: _Node, number: int) -> str:
    """`task 'the-id'` when the task has a usable id, else `task #3`."""
    for key, value in item.pairs or ():
        if key.value != "id":
            continue
        # Both readers' nodes hold the text of a plain scalar; only a string names the task.
        text = value.value
        if not isinstance(text, str) or not text.strip():
            break
        try:
            if value.style == _PLAIN and _plain_value(text) != text:
                break
        except _OutsideSubsetError:
            break
        return f"task {text!r}"
    return f"task #{number}"


def _build_tasks(outline: _Outline, source: str) -> tuple[list[Task], dict[str, int]]:
    """Validate every task; the tasks and the index of each id."""
    tasks: list[Task] = []
    index: dict[str, int] = {}
    id_lines: dict[str, int] = {}
    for number, item in enumerate(outline.items, start=1):
        if not isinstance(item.value, dict) or item.pairs is None:
            raise BacklogError(
                source,
                item.line,
                f"task #{number} is not a mapping (found {value_kind(item.value)})",
            )
        task = _validate_task(item, number, source)
        first = id_lines.get(task.id)
        id_line = _key_line(item, "id")
        if first is not None:
            raise BacklogError(
                source, id_line, f"duplicate task id {task.id!r} (first at line {first})"
            )
        id_lines[task.id] = id_line
        index[task.id] = len(tasks)
        tasks.append(task)
    return tasks, index


def _key_line(item: _Node, key: str) -> int:
    for key_node, _value in item.pairs or ():
        if key_node.value == key:
            return key_node.line
    return item.line


def _validate_task(item: _Node, number: int, source: str) -> Task:
    data: dict[Any, Any] = item.value
    raw_id = data.get("id")
    label = f"task {raw_id!r}" if isinstance(raw_id, str) and raw_id.strip() else f"task #{number}"
    if "id" not in data:
        raise BacklogError(source, item.line, f"task #{number} has no `id`")
    if "requires" in data and "dependencies" in data:
        raise BacklogError(
            source,
            _key_line(item, "dependencies"),
            f"{label} has both `requires` and `dependencies`; they are the same field, keep one",
        )
    if any(not isinstance(key, str) for key in data):
        odd = next(key for key in data if not isinstance(key, str))
        raise BacklogError(source, item.line, f"{label}: key {odd!r} is not a string")
    try:
        return Task.from_mapping(data, line=item.line)
    except ValidationError as error:
        problem = error.errors(include_url=False, include_input=False)[0]
        field_name = str(problem["loc"][0]) if problem["loc"] else ""
        cause = (problem.get("ctx") or {}).get("error")
        message = str(cause) if cause is not None else f"`{field_name}`: {problem['msg']}"
        raise BacklogError(source, _key_line(item, field_name), f"{label}: {message}") from None


# ----------------------------------------------------------------------------- writing values


_SAFE_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./+-]*")


def _emit(value: object, style: str | None, *, quoted: bool = False) -> str:
    """YAML text for a new value, in the style the old value had where that is possible.

    Strings stay plain when they read back as the same string in block and flow context, else
    take the old value's quotes (double quotes when there were none). `quoted` asks for quotes
    even when plain would do (timestamps, which YAML would otherwise read as dates).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    printable = not _ODD_CHARACTERS.search(text) and not any(c in text for c in "\t\n\r\ufeff")
    if style == _SINGLE and printable:
        return "'" + text.replace("'", "''") + "'"
    if style != _DOUBLE and not quoted and _SAFE_PLAIN.fullmatch(text):
        try:
            if _plain_value(text) == text:
                return text
        except _OutsideSubsetError:
            pass
    return _double_quoted(text)


def _double_quoted(text: str) -> str:
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif _ODD_CHARACTERS.match(char) or char in "\r\ufeff":
            code = ord(char)
            if code < 0x100:
                out.append(f"\\x{code:02x}")
            else:
                out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


@dataclass(slots=True)
class _Edit:
    """Replace text[start:end] with `text`; an insertion has start == end.

    `order` breaks ties between edits at one offset: a value's replacement comes before the
    keys inserted right after it (a flow mapping's `, key: value`).
    """

    start: int
    end: int
    text: str
    order: int


_MISSING = object()


def _plan_edits(text: str, item: _Node, changes: Mapping[str, object], source: str) -> list[_Edit]:
    """The text edits that give `item` the values in `changes` and touch nothing else."""
    own: dict[str, tuple[_Node, _Node]] = {}
    for key, value in item.pairs or ():
        own.setdefault(key.value, (key, value))
    data: dict[str, Any] = item.value
    if item.shared:
        raise BacklogEditError(
            source,
            item.line,
            f"cannot edit task {data.get('id')!r}: it is a YAML anchor used elsewhere through an"
            " alias; edit it by hand",
        )
    flow = item.style == _FLOW
    edits: list[_Edit] = []
    missing: list[str] = []
    for name, new in changes.items():
        old = data.get(name, _MISSING)
        if type(old) is type(new) and old == new:
            continue  # already so, perhaps through a merge key: nothing to write
        if name not in own:
            missing.append(name)
            continue
        key, value = own[name]
        if (
            value.shared
            or value.start < 0
            or text[value.start : value.start + 1] in ("&", "!", "*")
        ):
            raise BacklogEditError(
                source,
                key.line,
                f"cannot set `{name}` of task {data.get('id')!r}: its value uses a YAML anchor,"
                " alias or tag; edit that line by hand",
            )
        if value.style in (_FLOW, _BLOCK):
            raise BacklogEditError(
                source, key.line, f"cannot set `{name}`: it holds a list or mapping"
            )
        hint = value.style if value.style in (_SINGLE, _DOUBLE) else None
        replacement = _emit(new, hint, quoted=name == "completed_at")
        if value.style == _EMPTY:
            replacement = " " + replacement
        edits.append(_Edit(value.start, value.end, replacement, len(edits)))
    if not missing:
        return edits
    if not item.pairs:
        raise BacklogEditError(source, item.line, "cannot add fields to an empty task")
    groups: dict[str | None, list[str]] = {}
    for name in missing:
        anchor = None
        if name in _WRITEBACK_KEYS:
            earlier = _WRITEBACK_KEYS[: _WRITEBACK_KEYS.index(name)]
            anchor = next((key for key in reversed(earlier) if key in own), None)
        groups.setdefault(anchor, []).append(name)
    for anchor, names in groups.items():
        pair = own[anchor] if anchor is not None else item.pairs[-1]
        after = _entry_end(pair)
        entries = [
            f"{name}: {_emit(changes[name], None, quoted=name == 'completed_at')}" for name in names
        ]
        if flow:
            insertion = "".join(", " + entry for entry in entries)
            edits.append(_Edit(after, after, insertion, len(edits)))
            continue
        indent = " " * item.column
        line_break = _LINE_BREAK.search(text, after)
        if line_break is None:
            # The last line has no line break: add one before, none after, as the file had.
            first_break = _LINE_BREAK.search(text)
            eol = first_break.group(0) if first_break is not None else "\n"
            insertion = "".join(eol + indent + entry for entry in entries)
            edits.append(_Edit(len(text), len(text), insertion, len(edits)))
        else:
            eol = line_break.group(0)
            insertion = "".join(indent + entry + eol for entry in entries)
            edits.append(_Edit(line_break.end(), line_break.end(), insertion, len(edits)))
    return edits


def _apply_edits(text: str, edits: list[_Edit]) -> str:
    pieces = []
    position = 0
    for edit in sorted(edits, key=lambda edit: (edit.start, edit.order)):
        if edit.start < position:
            raise AssertionError("overlapping edits")
        pieces.append(text[position : edit.start])
        pieces.append(edit.text)
        position = edit.end
    pieces.append(text[position:])
    return "".join(pieces)


def _same(left: object, right: object) -> bool:
    """Data equality that also holds for NaN values (a task may carry `.nan` in a field)."""
    return left == right or repr(left) == repr(right)


# --------------------------------------------------------------------------------- the document


class BacklogDocument:
    """A backlog file: its validated tasks, and surgical edits of one task's fields.

    Build one with `parse` or `load`; edit with `mark_completed` and `set_pr_number`; get the
    bytes with `render` or write them with `save`. A failed edit raises and leaves the document
    as it was.
    """

    def __init__(
        self,
        *,
        source: str,
        text: str,
        bom: bool,
        outline: _Outline,
        tasks: list[Task],
        index: dict[str, int],
        path: Path | None = None,
    ) -> None:
        """Use `parse` or `load`; this only stores what they read."""
        self.source = source
        self.path = path
        self._text = text
        self._bom = bom
        self._outline = outline
        self._tasks = tasks
        self._index = index
        self._changed = False
        self._stale = False

    @classmethod
    def parse(cls, data: bytes, *, source: str) -> BacklogDocument:
        """Read a backlog from its bytes; `source` names the file in error messages."""
        bom = data.startswith(_BOM)
        body = data[len(_BOM) :] if bom else data
        if body.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise BacklogError(source, 1, "the file is UTF-16 text; save it as UTF-8")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            line = body.count(b"\n", 0, error.start) + 1
            column = error.start - (body.rfind(b"\n", 0, error.start) + 1) + 1
            raise BacklogError(
                source,
                line,
                f"not UTF-8 text: byte 0x{body[error.start]:02x} at column {column} "
                "cannot be decoded; save the file as UTF-8",
            ) from None
        with _collector_paused():
            outline = _read(text, source)
            tasks, index = _build_tasks(outline, source)
        return cls(source=source, text=text, bom=bom, outline=outline, tasks=tasks, index=index)

    @classmethod
    def load(
        cls, repo_root: Path, relpath: str, *, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> BacklogDocument:
        """Read the backlog at `relpath` inside the repository at `repo_root`.

        Refuses a path that is absolute, climbs with `..`, or leads outside the repository
        through a symbolic link; a file larger than `max_bytes` is refused before it is read.
        A missing file raises BacklogNotFoundError.
        """
        source = relpath
        target = _resolve_inside(Path(repo_root), relpath)
        try:
            info = os.stat(target)
        except (FileNotFoundError, NotADirectoryError):
            raise BacklogNotFoundError(source, None, "no backlog file at this path") from None
        if stat.S_ISDIR(info.st_mode):
            raise BacklogError(source, None, "this is a folder, not a backlog file")
        if not stat.S_ISREG(info.st_mode):
            raise BacklogError(source, None, "this is not a regular file")
        too_big = f"the file is larger than the limit of {max_bytes} bytes"
        if info.st_size > max_bytes:
            raise BacklogError(source, None, f"{too_big} ({info.st_size} bytes)")
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            descriptor = os.open(target, flags)
        except FileNotFoundError:
            raise BacklogNotFoundError(source, None, "no backlog file at this path") from None
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise BacklogError(source, None, "this is not a regular file")
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise BacklogError(source, None, too_big)
        document = cls.parse(data, source=source)
        document.path = target
        return document

    # Reading ---------------------------------------------------------------------------

    @property
    def tasks(self) -> list[Task]:
        """The tasks, in file order."""
        return list(self._tasks)

    @property
    def changed(self) -> bool:
        """Whether an edit changed the text since it was read."""
        return self._changed

    def find(self, task_id: str) -> Task | None:
        """The task with this id, or None."""
        position = self._index.get(task_id)
        return self._tasks[position] if position is not None else None

    # Editing ---------------------------------------------------------------------------

    def mark_completed(
        self,
        task_id: str,
        *,
        attempt_id: str,
        branch: str,
        completed_at: datetime,
        pr_number: int | None = None,
    ) -> None:
        """Record that an attempt completed the task.

        Sets `status: completed`, `ready: false`, `last_attempt_id`, `branch_name`, `pr_number`
        (only when given) and `completed_at` (UTC, whole seconds, quoted:
        "2026-01-30T23:15:00Z"). Raises UnknownTaskError for an id not in the file.
        """
        if completed_at.tzinfo is None or completed_at.utcoffset() is None:
            raise ValueError("completed_at must be a timezone-aware datetime")
        _require_text("attempt_id", attempt_id)
        _require_text("branch", branch)
        stamp = completed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        changes: dict[str, object] = {
            "ready": False,
            "status": "completed",
            "last_attempt_id": attempt_id,
            "branch_name": branch,
        }
        if pr_number is not None:
            changes["pr_number"] = _require_pr_number(pr_number)
        changes["completed_at"] = stamp
        self._edit(task_id, changes)

    def set_pr_number(self, task_id: str, pr_number: int) -> None:
        """Record the task's pull request number."""
        self._edit(task_id, {"pr_number": _require_pr_number(pr_number)})

    def _edit(self, task_id: str, changes: dict[str, object]) -> None:
        position = self._index.get(task_id)
        if position is None:
            raise UnknownTaskError(self.source, None, f"no task with id {task_id!r}")
        if self._stale:
            with _collector_paused():
                self._outline = _read(self._text, self.source)
            self._stale = False
        item = self._outline.items[position]
        edits = _plan_edits(self._text, item, changes, self.source)
        if not edits:
            return
        text = _apply_edits(self._text, edits)
        expected = {**item.value, **changes}
        outline = None
        if not (self._outline.fast and self._verify_item(text, position, expected)):
            outline = self._verify_whole(text, position, expected)
        if self._outline.fast:
            self._cross_check(text, position, expected)
        try:
            task = Task.from_mapping(expected, line=item.line)
        except ValidationError as error:
            raise self._refuse(item, f"the result does not validate: {error}") from None
        # Only now does the document change: every check above raises before this point.
        line_shift = text.count("\n") - self._text.count("\n")
        self._text = text
        self._tasks[position] = task
        if outline is None:
            # The outline's offsets after the edit are out of date: read again before the next
            # edit, rather than on every edit (most documents see one).
            self._stale = True
            for later in self._tasks[position + 1 :]:
                later._line += line_shift
        else:
            self._outline = outline
            for existing, new_item in zip(self._tasks, outline.items, strict=True):
                existing._line = new_item.line
        self._changed = True

    def _verify_item(self, text: str, position: int, expected: dict[str, Any]) -> bool:
        """Read back only the edited task, when the fast reader read the file.

        The edits lie within the task's lines, and the fast reader's reading of a sequence item
        depends only on the item's lines and the first content line after them. So when the
        text before the item and from that line on is unchanged, and the edited item's lines
        read as one item ending just before that same line, the whole file reads as before but
        for that item. False when the item cannot be read this way (then read the whole file).
        """
        old_text = self._text
        tasks = _tasks_node(self._outline.root)
        if tasks is None or tasks.spans is None:
            return False
        begin, end = tasks.spans[position]
        new_end = end + len(text) - len(old_text)
        if text[:begin] != old_text[:begin] or text[new_end:] != old_text[end:]:
            raise self._refuse(self._outline.items[position], "an edit spilled out of the task")
        newline = text.find("\n", new_end)
        window = text[begin : len(text) if newline == -1 else newline + 1]
        depth = 1 if tasks is self._outline.root else 2
        try:
            reader = _FastReader(window)
            item, next_index = reader._sequence_item(0, tasks.column, depth)
        except _OutsideSubsetError:
            return False
        ends_at = reader.count if new_end == len(text) else reader.count - 1
        if next_index != ends_at or reader.duplicates or not _same(item.value, expected):
            raise self._refuse(self._outline.items[position], "the edited task reads back wrong")
        return True

    def _verify_whole(self, text: str, position: int, expected: dict[str, Any]) -> _Outline:
        """Read the whole edited text back: the old data plus the change only."""
        old = self._outline
        item = old.items[position]
        try:
            with _collector_paused():
                outline = _read(text, self.source)
        except BacklogError as error:
            raise self._refuse(
                item, f"the edited file would not read back ({error.problem})"
            ) from None
        if len(outline.items) != len(old.items):
            raise self._refuse(item, "the edited file reads back with a different task count")
        if not _same(outline.items[position].value, expected):
            raise self._refuse(item, "the edited task reads back with different data")
        tasks_before = _tasks_node(old.root)
        assert tasks_before is not None
        expected_tasks = list(tasks_before.value)
        expected_tasks[position] = expected
        expected_root = (
            expected_tasks
            if old.root.items is not None
            else {**old.root.value, "tasks": expected_tasks}
        )
        if not _same(outline.root.value, expected_root):
            raise self._refuse(item, "the edit would change data outside the task")
        return outline

    def _cross_check(self, text: str, position: int, expected: dict[str, Any]) -> None:
        """Have the full YAML parser read the edited task's lines too.

        The fast reader's result is what the edit is checked against; this second opinion on
        the one task that changed guards against the two readers ever disagreeing there.
        """
        tasks = _tasks_node(self._outline.root)
        if tasks is None or tasks.spans is None:
            raise self._refuse(self._outline.items[position], "the task list is not a block list")
        begin, end = tasks.spans[position]
        chunk = text[begin : end + len(text) - len(self._text)]
        try:
            check = YAML(typ="safe", pure=True).load(chunk)
        except YAMLError:
            check = None
        if not (isinstance(check, list) and len(check) == 1 and _same(check[0], expected)):
            raise self._refuse(
                self._outline.items[position], "the edited task does not read back the same"
            )

    def _refuse(self, item: _Node, why: str) -> BacklogEditError:
        task_id = item.value.get("id") if isinstance(item.value, dict) else None
        return BacklogEditError(self.source, item.line, f"cannot edit task {task_id!r}: {why}")

    # Writing ---------------------------------------------------------------------------

    def render(self) -> bytes:
        """The file's bytes: identical to what was read, but for the edited fields."""
        data = self._text.encode("utf-8")
        return _BOM + data if self._bom else data

    def save(self, path: Path | None = None) -> None:
        """Write the file atomically (a temporary file in the same folder, then a rename).

        Keeps the file's permission bits, and writes through a symbolic link rather than
        replacing it. Without `path`, writes back to the file `load` read.
        """
        if path is None:
            if self.path is None:
                raise ValueError("this document was not loaded from a file; give a path")
            path = self.path
        target = Path(os.path.realpath(path))
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o644
        descriptor, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(self.render())
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise


def _resolve_inside(repo_root: Path, relpath: str) -> Path:
    """The real path of `relpath` inside the repository, or BacklogError when it leaves it."""
    source = relpath
    if not relpath or not relpath.strip():
        raise BacklogError(source or "(empty path)", None, "the backlog path is empty")
    posix = PurePosixPath(relpath)
    if posix.is_absolute() or PureWindowsPath(relpath).is_absolute() or relpath.startswith("~"):
        raise BacklogError(source, None, "the backlog path must be relative to the repository")
    if ".." in posix.parts or ".." in PureWindowsPath(relpath).parts:
        raise BacklogError(source, None, "the backlog path must not contain `..`")
    try:
        root = repo_root.resolve()
        target = (root / posix).resolve()
    except (OSError, RuntimeError) as error:
        raise BacklogError(source, None, f"the backlog path cannot be resolved: {error}") from None
    if not target.is_relative_to(root):
        raise BacklogError(
            source, None, "the backlog path leads outside the repository (a symbolic link)"
        )
    return target


def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")


def _require_pr_number(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError("pr_number must be a positive integer")
    return value
