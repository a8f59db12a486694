"""The full reader: the outline built with ruamel.yaml's composer.

It reads every file the fast reader (`_fast_reader`) declines, finds the line of a syntax
error, and gives the same outline as the fast reader where both can read a file: node offsets
are taken from the composer's marks, block scalar ends are found as PyYAML's scanner finds
them, and the values of the root, the task list and the tasks are those ruamel.yaml constructs.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from backlog_operator.backlog._outline import (
    BLOCK,
    DOUBLE,
    EMPTY,
    FLOW,
    FOLDED,
    LITERAL,
    PLAIN,
    SINGLE,
    OutlineNode,
    check_duplicate_keys,
    entry_end,
    skip_spaces,
    tasks_node,
)
from backlog_operator.backlog.errors import BacklogError

_ANY_BLOCK_HEADER = re.compile(r"[|>](?:([1-9])([+-]?)|([+-]?)([1-9]?))")
# ruamel.yaml's scalar styles as the outline's.
_SCALAR_STYLES = {None: PLAIN, "'": SINGLE, '"': DOUBLE, "|": LITERAL, ">": FOLDED}


def _line_start(text: str, offset: int) -> int:
    return max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1


def _block_scalar_end(text: str, start: int, parent: int) -> int | None:
    """Where the content of the block scalar whose header is at `start` ends (see `OutlineNode`).

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


class FullReader:
    """Builds the outline with ruamel.yaml's composer, for files the fast reader declines."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.uses: dict[int, int] = {}

    def read(self) -> OutlineNode | None:
        """The document's root node, or None for an empty document; BacklogError if invalid."""
        yaml = YAML(typ="safe", pure=True)
        try:
            composed = yaml.compose(self.text)
            if composed is None:
                return None
            self._count_uses(composed)
            root = self._convert(composed, -1)
            check_duplicate_keys(root, self.source)
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

    def _convert(self, node: Node, parent: int) -> OutlineNode:
        text = self.text
        start = node.start_mark.index
        line = node.start_mark.line + 1
        shared = self.uses.get(id(node), 0) > 1 or getattr(node, "anchor", None) is not None
        if isinstance(node, ScalarNode):
            style = _SCALAR_STYLES.get(node.style, PLAIN)
            end = node.end_mark.index
            if style in (LITERAL, FOLDED):
                end = _block_scalar_end(text, start, parent) or end
            elif style == PLAIN and node.value == "" and start == end:
                style = EMPTY
            return OutlineNode(node.value, start, end, line, style, shared=shared)
        column = start - _line_start(text, start)
        flow = bool(getattr(node, "flow_style", False))
        pairs: list[tuple[OutlineNode, OutlineNode]] | None = None
        items: list[OutlineNode] | None = None
        if isinstance(node, MappingNode):
            pairs = []
            for key_node, value_node in node.value:
                key = self._convert(key_node, column)
                value = self._convert(value_node, column)
                if value.style == EMPTY:
                    # An empty value's marks point at whatever follows; anchor it to the colon.
                    colon = _colon_after(text, key.end)
                    value.start = value.end = colon + 1 if colon is not None else -1
                    value.line = key.line
                pairs.append((key, value))
            last = entry_end(pairs[-1]) if pairs else None
        else:
            assert isinstance(node, SequenceNode)
            items = [self._convert(item, column) for item in node.value]
            last = items[-1].end if items else None
        end = node.end_mark.index if flow or last is None else last
        return OutlineNode(
            None,
            start,
            end,
            line,
            FLOW if flow else BLOCK,
            pairs=pairs,
            items=items,
            column=column,
            shared=shared,
        )


def _colon_after(text: str, offset: int) -> int | None:
    """The offset of the `:` that follows a key ending at `offset`, past spaces only."""
    offset = skip_spaces(text, offset)
    return offset if text.startswith(":", offset) else None


def _attach_values(root: OutlineNode, data: Any) -> None:
    """Give the outline's root, task list and tasks the values ruamel.yaml constructed."""
    root.value = data
    task_list = tasks_node(root)
    if task_list is None or not isinstance(data, dict | list):
        return
    tasks = data.get("tasks") if isinstance(data, dict) else data
    task_list.value = tasks
    if task_list.items is not None and isinstance(tasks, list):
        for item, value in zip(task_list.items, tasks, strict=False):
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
