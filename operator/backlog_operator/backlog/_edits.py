"""Surgical edits of one task: YAML text for new values, and the edits that put it in place.

An edit replaces the text of one value, or inserts a missing `key: value` after the task's
last key or the writeback field it follows (a line in block style, with the task's own
indentation and line ending; `, key: value` in a flow mapping), and leaves every other
character of the file alone. Reading the result back to check it is the document's part
(`BacklogDocument._edit`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from backlog_operator.backlog._outline import (
    BLOCK,
    DOUBLE,
    EMPTY,
    FLOW,
    ODD_CHARACTERS,
    SINGLE,
    OutlineNode,
    OutsideSubsetError,
    entry_end,
    plain_value,
)
from backlog_operator.backlog.errors import BacklogEditError

# Writeback fields in the order the README lists them; a missing one is inserted after the
# nearest earlier one the task already has, so a later set_pr_number lands before completed_at.
_WRITEBACK_KEYS = ("last_attempt_id", "branch_name", "pr_number", "completed_at")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SAFE_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./+-]*")


def _emit(value: object, style: str | None, *, quoted: bool = False) -> str:
    """YAML text for a new value, in the style the old value had where that is possible.

    Strings stay plain when they read back as the same string in block and flow context, else
    take the old value's quotes (double quotes when there were none). `quoted` asks for quotes
    even when plain would do (timestamps, which YAML would otherwise read as dates).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    printable = not ODD_CHARACTERS.search(text) and not any(c in text for c in "\t\n\r\ufeff")
    if style == SINGLE and printable:
        return "'" + text.replace("'", "''") + "'"
    if style != DOUBLE and not quoted and _SAFE_PLAIN.fullmatch(text):
        try:
            if plain_value(text) == text:
                return text
        except OutsideSubsetError:
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
        elif ODD_CHARACTERS.match(char) or char in "\r\ufeff":
            code = ord(char)
            if code < 0x100:
                out.append(f"\\x{code:02x}")
            else:
                out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


class Edit(NamedTuple):
    """Replace text[start:end] with `text`; an insertion has start == end.

    `order` breaks ties between edits at one offset: a value's replacement comes before the
    keys inserted right after it (a flow mapping's `, key: value`).
    """

    start: int
    end: int
    text: str
    order: int


_MISSING = object()


def plan_edits(
    text: str, item: OutlineNode, changes: Mapping[str, object], source: str
) -> list[Edit]:
    """The text edits that give `item` the values in `changes` and touch nothing else."""
    data: dict[str, Any] = item.value
    if item.shared:
        raise BacklogEditError(
            source,
            item.line,
            f"cannot edit task {data.get('id')!r}: it is a YAML anchor used elsewhere through an"
            " alias; edit it by hand",
        )
    own: dict[str, tuple[OutlineNode, OutlineNode]] = {}
    for key, value in item.pairs or ():
        own.setdefault(key.value, (key, value))
    edits: list[Edit] = []
    missing: list[str] = []
    for name, new in changes.items():
        old = data.get(name, _MISSING)
        if type(old) is type(new) and old == new:
            continue  # already so, perhaps through a merge key: nothing to write
        if name in own:
            task_id = data.get("id")
            edits.append(_replacement(text, own[name], new, len(edits), task_id, source))
        else:
            missing.append(name)
    if missing:
        if not item.pairs:
            raise BacklogEditError(source, item.line, "cannot add fields to an empty task")
        for after, names in _insertion_points(item, own, missing):
            entries = [f"{name}: {_emit_field(name, changes[name], None)}" for name in names]
            edits.append(_insertion(text, item, after, entries, len(edits)))
    return edits


def _emit_field(name: str, value: object, style: str | None) -> str:
    """`_emit` for a field; `completed_at` is quoted always (plain, it would read as a date)."""
    return _emit(value, style, quoted=name == "completed_at")


def _replacement(
    text: str,
    entry: tuple[OutlineNode, OutlineNode],
    new: object,
    order: int,
    task_id: object,
    source: str,
) -> Edit:
    """The edit that replaces the value of a task's existing `key: value` entry with `new`.

    Refused (BacklogEditError) for a value shared through an anchor or alias, tagged, or a list
    or mapping: writing there would change more than this one field.
    """
    key, value = entry
    name = key.value
    if value.shared or value.start < 0 or text[value.start : value.start + 1] in ("&", "!", "*"):
        raise BacklogEditError(
            source,
            key.line,
            f"cannot set `{name}` of task {task_id!r}: its value uses a YAML anchor,"
            " alias or tag; edit that line by hand",
        )
    if value.style in (FLOW, BLOCK):
        raise BacklogEditError(source, key.line, f"cannot set `{name}`: it holds a list or mapping")
    hint = value.style if value.style in (SINGLE, DOUBLE) else None
    replacement = _emit_field(name, new, hint)
    if value.style == EMPTY:
        replacement = " " + replacement
    return Edit(value.start, value.end, replacement, order)


def _insertion_points(
    item: OutlineNode, own: Mapping[str, tuple[OutlineNode, OutlineNode]], missing: list[str]
) -> list[tuple[int, list[str]]]:
    """Where the missing keys go: groups of them, each with the offset it is inserted at.

    A writeback field follows the nearest earlier writeback field the task has (in the order
    of `_WRITEBACK_KEYS`); any other key, or one with none before it, follows the last entry.
    """
    assert item.pairs
    groups: dict[str | None, list[str]] = {}
    for name in missing:
        anchor = None
        if name in _WRITEBACK_KEYS:
            earlier = _WRITEBACK_KEYS[: _WRITEBACK_KEYS.index(name)]
            anchor = next((key for key in reversed(earlier) if key in own), None)
        groups.setdefault(anchor, []).append(name)
    last = item.pairs[-1]
    return [
        (entry_end(own[anchor] if anchor is not None else last), names)
        for anchor, names in groups.items()
    ]


def _insertion(text: str, item: OutlineNode, after: int, entries: list[str], order: int) -> Edit:
    """The edit that inserts `entries` (`key: value` texts) into `item` after offset `after`.

    In a flow mapping, `, key: value` right there; in a block mapping, one line each after the
    line that ends there, with the task's indentation and the file's line break.
    """
    if item.style == FLOW:
        return Edit(after, after, "".join(", " + entry for entry in entries), order)
    indent = " " * item.column
    line_break = _LINE_BREAK.search(text, after)
    if line_break is None:
        # The last line has no line break: add one before, none after, as the file had.
        first_break = _LINE_BREAK.search(text)
        eol = first_break.group(0) if first_break is not None else "\n"
        return Edit(len(text), len(text), "".join(eol + indent + e for e in entries), order)
    eol = line_break.group(0)
    insertion = "".join(indent + entry + eol for entry in entries)
    return Edit(line_break.end(), line_break.end(), insertion, order)


def apply_edits(text: str, edits: list[Edit]) -> str:
    """`text` with `edits` (from `plan_edits`) in place; edits at one offset keep their order."""
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
