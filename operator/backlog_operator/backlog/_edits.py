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
from dataclasses import dataclass
from typing import Any

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


def plan_edits(
    text: str, item: OutlineNode, changes: Mapping[str, object], source: str
) -> list[_Edit]:
    """The text edits that give `item` the values in `changes` and touch nothing else."""
    own: dict[str, tuple[OutlineNode, OutlineNode]] = {}
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
    flow = item.style == FLOW
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
        if value.style in (FLOW, BLOCK):
            raise BacklogEditError(
                source, key.line, f"cannot set `{name}`: it holds a list or mapping"
            )
        hint = value.style if value.style in (SINGLE, DOUBLE) else None
        replacement = _emit(new, hint, quoted=name == "completed_at")
        if value.style == EMPTY:
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
        after = entry_end(pair)
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


def apply_edits(text: str, edits: list[_Edit]) -> str:
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
