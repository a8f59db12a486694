"""The full reader: the outline built with ruamel.yaml's composer.

It reads every file the fast reader (`_fast_reader`) declines, finds the line of a syntax
error, and gives the same outline as the fast reader where both can read a file: node offsets
are taken from the composer's marks, block scalar ends are found as PyYAML's scanner finds
them, and the values of the root, the task list and the tasks are those ruamel.yaml constructs.

The file is untrusted input, and YAML lets a few hundred bytes describe a document of billions
of nodes through aliases (`&a [*b, *b, ...]`, "billion laughs"), or nest deeply enough to
exhaust the stack. ruamel.yaml's composer and constructor share one node and one object per
anchor, so they stay small; what blows up is whatever walks the result as a tree: the outline
built here, the validation, and later the operator's JSON digests and the worker's prompts. So
the composer measures, as it composes, what the document would be with every alias expanded
(`_BoundedComposer`), and refuses the file, at the line of the alias or of the node that goes
too deep, before anything expands it:

- nesting deeper than `MAX_DEPTH` collections, counting what aliases bring in;
- aliases expanding the document to more than `ALIAS_BASE_NODES` nodes plus `ALIAS_FACTOR`
  times the nodes written in it so far (an alias counts as one written node), or scalars to
  more than `ALIAS_BASE_CHARACTERS` plus `ALIAS_FACTOR` times the characters written;
- an alias inside the node it names (a recursive structure, infinite once expanded).

A backlog that shares a few lists or mappings through anchors stays far inside these bounds.

The document's limits on the file as written are counted here too, as the composer composes:
each node written (an alias counts one), each item of the task list, each task's nodes, and the
lines (`document.MAX_FULL_NODES`, `MAX_TASKS`, `MAX_TASK_NODES`, `MAX_LINES`). This parser
costs some 30 to 60 microseconds a node, twenty times what the fast reader costs, and up to
800 bytes while it reads; so a file that needs it has a node limit of its own, lower than a
plain file's: what it reads in a few seconds and well under 100 MB (see
benchmarks/bench_backlog_hostile.py). One line can hold a million nodes in a flow collection
(`[], [], ...`); so where one opens, the scanner counts its nodes ahead with a regular
expression and refuses it before anything is composed.

The composed nodes are converted to the outline, then constructed (ruamel.yaml's values), each
collection filled as soon as it is met rather than all at the end. An anchored node is converted
once: each alias of it is a shallow copy of that outline node, placed where the alias is
written, not at its anchor (ruamel.yaml gives it the anchor's node), so that a task whose last
value is an alias ends there, and an aliased key's colon is looked for just after it. So the
outline grows with the nodes written, not with what aliases expand to; line starts come from
one index of the text.
"""

from __future__ import annotations

import copy
import re
import sys
from array import array
from bisect import bisect_left
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import FileMark, MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionStartEvent, SequenceStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import Reader
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scanner import Scanner
from ruamel.yaml.tag import Tag

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
    flow_nodes_past,
    skip_spaces,
    tasks_node,
    too_many_tasks,
)
from backlog_operator.backlog.errors import BacklogError

_ANY_BLOCK_HEADER = re.compile(r"[|>](?:([1-9])([+-]?)|([+-]?)([1-9]?))")
# ruamel.yaml's scalar styles as the outline's.
_SCALAR_STYLES = {None: PLAIN, "'": SINGLE, '"': DOUBLE, "|": LITERAL, ">": FOLDED}
_LINE_BREAKS = re.compile(r"[\r\n]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # a line break as ruamel.yaml's reader counts them

# How far a file may go (see the module docstring). A backlog nests five or six levels deep and
# its aliases, if any, share a few short lists or mappings: these are generous for that, and
# keep what reading builds within a small multiple of what the file itself writes.
MAX_DEPTH = 100
ALIAS_FACTOR = 4
ALIAS_BASE_NODES = 100_000
ALIAS_BASE_CHARACTERS = 1_000_000


def too_many_full_nodes(limit: int) -> str:
    """The refusal of a file past the full parser's node budget; the fast reader words it alike
    when it gives up on a file that has already gone past it."""
    return (
        f"more than {limit} YAML nodes (keys, values and list items) in a file that needs the "
        f"full YAML parser; such a file may hold at most {limit} (plain YAML, without anchors, "
        "aliases, tags, or values and flow collections over several lines, may hold more)"
    )


def too_many_lines(limit: int) -> str:
    """The refusal of a file of more than `limit` lines; both readers word it alike."""
    return f"more than {limit} lines; a backlog file may hold at most {limit}"


def count_lines(text: str) -> int:
    """The lines of `text` as YAML counts them: ended by LF, CRLF or a lone CR."""
    breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
    return breaks + (1 if text and not text.endswith(("\n", "\r")) else 0)


def too_many_task_nodes(limit: int, line: int) -> str:
    """The refusal of a task of more than `limit` nodes, starting at `line`; both readers."""
    return (
        f"more than {limit} YAML nodes in the task at line {line}; a task may hold at most {limit}"
    )


_KINDS = {
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:timestamp": "a date",
}


class _RefusedError(Exception):
    """A file refused while it is composed or constructed: the line and the problem."""

    def __init__(self, mark: Any, problem: str, *, line: int | None = None) -> None:
        super().__init__(problem)
        self.line: int | None = mark.line + 1 if mark is not None else line
        self.problem = problem


class _LeanReader(Reader):
    """ruamel.yaml's reader, with marks that do not point into the text.

    For text read from a string, each mark would also keep the buffer and an offset into it,
    for error snippets that the messages here never show; every node keeps two marks, and
    these leaner ones (ruamel.yaml's own, for files) save a fifth of what composing keeps.
    """

    def get_mark(self) -> Any:
        """The current position: name, offset, line and column (all 0-based)."""
        return FileMark(self.name, self.index, self.line, self.column)


class _SharedTagResolver(VersionedResolver):
    """ruamel.yaml's resolver, giving every scalar it resolves to one tag the same `Tag`.

    ruamel.yaml makes a new `Tag` for each null, boolean, number or date it resolves, which
    grows to some 300 bytes once constructing has cached its strings in it: more than the node.
    Nothing changes a resolved tag, so one of each does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tags: dict[tuple[Any, Any], Tag] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """The tag of a node, as ruamel.yaml resolves it: a shared one."""
        tag = super().resolve(kind, value, implicit)
        return self._tags.setdefault((tag.handle, tag.suffix), tag)


class _BoundedScanner(Scanner):
    """ruamel.yaml's scanner, refusing a flow collection nested deeper than `MAX_DEPTH`, or one
    that holds more nodes than the composer's node limit leaves room for.

    The composer would refuse both too, but later: the scanner reads ahead of the composer, and
    each `[` or `{` it has not yet resolved is checked again at every later token (a kilobyte of
    `[[[[...` costs half a second before the composer sees the 101st level); and composing costs
    tens of microseconds and a few hundred bytes a node (a line of `[], [], ...` took half a
    minute and 280 MB to reach the node limit). So where a flow collection opens in block
    context, its nodes are counted ahead, at the speed of a regular expression
    (`_outline.flow_nodes_past`).
    """

    def fetch_flow_collection_start(self, *args: Any, **kwargs: Any) -> None:
        """Open a flow collection as ruamel.yaml does, unless it is one level too many."""
        if self.flow_level >= MAX_DEPTH:
            raise _RefusedError(self.reader.get_mark(), f"nested deeper than {MAX_DEPTH} levels")
        if self.flow_level == 0:
            self._count_ahead()
        super().fetch_flow_collection_start(*args, **kwargs)

    def _count_ahead(self) -> None:
        """Refuse the flow collection that opens here if its nodes alone pass the node limit.

        The composer has counted at most the nodes before it (it lags behind the scanner), so
        the room left is never less than the true room: nothing within the limit is refused.
        """
        composer = self.loader.composer
        if composer.max_nodes == sys.maxsize:
            return
        reader = self.reader
        room = composer.max_nodes - composer.written_nodes
        past = flow_nodes_past(reader.buffer, reader.pointer, room)
        if past is not None:
            breaks = len(_LINE_BREAK.findall(reader.buffer, reader.pointer, past))
            line = reader.line + breaks + 1
            raise _RefusedError(None, too_many_full_nodes(composer.max_nodes), line=line)


class _BoundedComposer(Composer):
    """ruamel.yaml's composer, measuring the document as if every alias were expanded.

    For each node composed it counts one node written (an alias too: it is a node of the text)
    and the characters of a scalar; for an alias, the expanded size of the node it names, known
    once that node is complete. The counts never expand anything, so they cost a constant per
    node of the text. `_RefusedError` stops composition at the first alias or node past the bounds.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        # A reused anchor name is valid YAML (the later one wins); ruamel.yaml would issue a
        # warning for each, which a hostile file could repeat thousands of times into the log.
        self.warn_double_anchors = False
        self.written_nodes = 0
        self.written_characters = 0
        self.expanded_nodes = 0
        self.expanded_characters = 0
        # For each collection being composed: its expanded [nodes, characters, height so far].
        self._open: list[list[int]] = []
        # The expanded (nodes, characters, height) of each anchored node, once complete.
        self._anchored: dict[int, tuple[int, int, int]] = {}
        # The document's limits (`limit`), and the items of the task list composed so far.
        self.max_nodes = sys.maxsize
        self.max_tasks = sys.maxsize
        self.max_task_nodes = sys.maxsize
        self.tasks = 0
        self._task_list: list[int] | None = None  # the task list's entry in `_open`
        # While a task is composed: the count of written nodes it may not pass, and its line.
        self._task_end = sys.maxsize
        self._task_line = 0
        # Where each alias is written: (start, end, 1-based line), by (id of the collection it
        # is in, position of its pair or item there, whether it is a mapping key).
        self.aliases: dict[tuple[int, int, bool], tuple[int, int, int]] = {}

    def limit(self, *, max_nodes: int, max_tasks: int, max_task_nodes: int) -> None:
        """Refuse a document of more than `max_nodes` written nodes or `max_tasks` tasks, or
        with a task of more than `max_task_nodes` written nodes."""
        self.max_nodes = max_nodes
        self.max_tasks = max_tasks
        self.max_task_nodes = max_task_nodes

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose one node as ruamel.yaml does, counting it (see the class docstring)."""
        if not (self._open and self._open[-1] is self._task_list):
            return self._compose_counted(parent, index)
        event = self.parser.peek_event()
        self.tasks += 1
        if self.tasks > self.max_tasks:
            raise _RefusedError(event.start_mark, too_many_tasks(self.max_tasks))
        self._task_end = self.written_nodes + self.max_task_nodes
        self._task_line = event.start_mark.line + 1
        node = self._compose_counted(parent, index)
        self._task_end = sys.maxsize
        return node

    def _compose_counted(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        self._count_written(event)
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)  # the anchored node; raises if unknown
            self._alias(event, node)
            self._note_alias(event, parent, index)
            return node
        collection = isinstance(event, CollectionStartEvent)
        characters = 0 if collection else len(event.value)
        self.expanded_nodes += 1
        self.written_characters += characters
        self.expanded_characters += characters
        if collection:
            if len(self._open) >= MAX_DEPTH:
                raise _RefusedError(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
            totals = [1, 0, 1]
            if isinstance(event, SequenceStartEvent) and self._holds_tasks(parent, index):
                self._task_list = totals
            self._open.append(totals)
        node = super().compose_node(parent, index)
        if collection:
            nodes, characters, height = self._open.pop()
            size = (nodes, characters, height)
        else:
            size = (1, characters, 0)
        self._add(size)
        if event.anchor is not None:
            self._anchored[id(node)] = size
        return node

    def _note_alias(self, event: Any, parent: Any, index: Any) -> None:
        """Note where an alias is written: ruamel.yaml gives it its anchor's node and marks.

        `parent` is the collection being composed (the alias is its next pair's key when
        `index` is None, else its next pair's value or its next item).
        """
        if parent is not None:
            where = (id(parent), len(parent.value), index is None)
            start, end = event.start_mark, event.end_mark
            self.aliases[where] = (start.index, end.index, start.line + 1)

    def _count_written(self, event: Any) -> None:
        """Count one node of the text (an alias too); refuse the document past `max_nodes`, or
        the task being composed past `max_task_nodes`."""
        self.written_nodes += 1
        if self.written_nodes > self.max_nodes:
            raise _RefusedError(event.start_mark, too_many_full_nodes(self.max_nodes))
        if self.written_nodes > self._task_end:
            problem = too_many_task_nodes(self.max_task_nodes, self._task_line)
            raise _RefusedError(event.start_mark, problem)

    def _holds_tasks(self, parent: Any, index: Any) -> bool:
        """Whether the sequence composed as `parent`'s `index` is the task list: the root, or
        the value of the root mapping's `tasks` key (as `_outline.tasks_node` finds it)."""
        if not self._open:
            return True
        return (
            len(self._open) == 1
            and isinstance(parent, MappingNode)
            and isinstance(index, ScalarNode)
            and index.value == "tasks"
        )

    def _add(self, size: tuple[int, int, int]) -> None:
        """Add a child's expanded size to the collection being composed."""
        if self._open:
            nodes, characters, height = size
            totals = self._open[-1]
            totals[0] += nodes
            totals[1] += characters
            totals[2] = max(totals[2], height + 1)

    def _alias(self, event: Any, node: Any) -> None:
        size = self._anchored.get(id(node))
        name = f"*{event.anchor}"
        if size is None:  # its anchor is still being composed: the alias is inside it
            raise _RefusedError(
                event.start_mark,
                f"alias {name} is inside the node it names (a structure that contains itself)",
            )
        nodes, characters, height = size
        if len(self._open) + height > MAX_DEPTH:
            raise _RefusedError(
                event.start_mark, f"nested deeper than {MAX_DEPTH} levels through alias {name}"
            )
        self.expanded_nodes += nodes
        self.expanded_characters += characters
        node_limit = ALIAS_BASE_NODES + ALIAS_FACTOR * self.written_nodes
        if self.expanded_nodes > node_limit:
            raise _RefusedError(
                event.start_mark,
                f"aliases expand to more than {node_limit} nodes (at alias {name}); "
                "a backlog needs far fewer",
            )
        character_limit = ALIAS_BASE_CHARACTERS + ALIAS_FACTOR * self.written_characters
        if self.expanded_characters > character_limit:
            raise _RefusedError(
                event.start_mark,
                f"aliases expand to more than {character_limit} characters of text "
                f"(at alias {name}); a backlog needs far fewer",
            )
        self._add(size)


class _CheckedConstructor(SafeConstructor):
    """ruamel.yaml's safe constructor; a scalar it cannot convert is refused at its line.

    ruamel.yaml raises a bare ValueError for an integer of more than 4,300 digits (Python's
    limit) or a date such as 2026-13-45; that would escape as neither YAML nor backlog error.
    """

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        """Construct as ruamel.yaml does, refusing a scalar it cannot convert."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as error:
            if not isinstance(node, ScalarNode):
                raise
            text = str(node.value)
            shown = text if len(text) <= 40 else text[:37] + "..."
            kind = _KINDS.get(str(node.tag), f"a value of tag {node.tag}")
            detail = str(error).split(";", 1)[0]
            raise _RefusedError(
                node.start_mark,
                f"{shown!r} cannot be read as {kind} ({detail}); quote it to keep it as text",
            ) from None


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

    def __init__(
        self,
        text: str,
        source: str,
        *,
        max_nodes: int = sys.maxsize,
        max_tasks: int = sys.maxsize,
        max_task_nodes: int = sys.maxsize,
        max_lines: int = sys.maxsize,
    ) -> None:
        """Read `text` (named `source` in errors), refusing it past any of the limits."""
        self.text = text
        self.source = source
        self.max_nodes = max_nodes
        self.max_tasks = max_tasks
        self.max_task_nodes = max_task_nodes
        self.max_lines = max_lines
        self.nodes = 0  # the nodes of the text, once read: as `FastReader.nodes` counts them
        self._aliases: dict[tuple[int, int, bool], tuple[int, int, int]] = {}
        self._breaks: array[int] | None = None
        self._colons: dict[int, int | None] = {}
        # Each anchored node's outline node, once converted: its aliases are copies of it.
        self._converted: dict[Node, OutlineNode] = {}

    def read(self) -> OutlineNode | None:
        """The document's root node, or None for an empty document; BacklogError if invalid."""
        if self.max_lines < sys.maxsize and count_lines(self.text) > self.max_lines:
            # Each line costs the scanner a few microseconds even when blank.
            raise BacklogError(self.source, self.max_lines + 1, too_many_lines(self.max_lines))
        yaml = YAML(typ="safe", pure=True)
        yaml.Reader = _LeanReader
        yaml.Resolver = _SharedTagResolver
        yaml.Scanner = _BoundedScanner
        yaml.Composer = _BoundedComposer
        yaml.Constructor = _CheckedConstructor
        composer = yaml.composer
        composer.limit(
            max_nodes=self.max_nodes, max_tasks=self.max_tasks, max_task_nodes=self.max_task_nodes
        )
        try:
            composed = yaml.compose(self.text)
            self.nodes = composer.written_nodes
            self._aliases = composer.aliases
            if composed is None:
                return None
            # Converted first: constructing merges `<<` keys into the nodes, in place.
            root = self._convert(composed, -1)
            self._converted.clear()
            check_duplicate_keys(root, self.source)
            data = _construct(yaml.constructor, composed)
        except _RefusedError as refused:
            raise BacklogError(self.source, refused.line, refused.problem) from None
        except MarkedYAMLError as error:
            raise _yaml_error(error, self.source) from None
        except YAMLError as error:
            raise BacklogError(self.source, None, f"invalid YAML: {error}") from None
        except BacklogError:
            raise
        except (ValueError, OverflowError) as error:  # not expected: `_CheckedConstructor`
            raise BacklogError(self.source, None, f"cannot be read: {error}") from None
        except RecursionError:
            # Not expected within MAX_DEPTH; a last guard should the stack already be deep.
            raise BacklogError(self.source, None, "invalid YAML: nested too deeply") from None
        _attach_values(root, data)
        return root

    def _line_start(self, offset: int) -> int:
        """The offset where the line holding `offset` starts: after the last CR or LF before it."""
        if self._breaks is None:
            breaks = (match.start() for match in _LINE_BREAKS.finditer(self.text))
            self._breaks = array("q", breaks)  # 8 bytes a line, where a list of ints takes 40
        before = bisect_left(self._breaks, offset)
        return self._breaks[before - 1] + 1 if before else 0

    def _colon_after(self, offset: int) -> int | None:
        """`_colon_after`, once per offset: a colon may follow its key after a long run of
        spaces, and no offset should have them skipped twice."""
        if offset not in self._colons:
            self._colons[offset] = _colon_after(self.text, offset)
        return self._colons[offset]

    def _convert(self, node: Node, parent: int) -> OutlineNode:
        """The outline of `node`, whose collection's key or dash column is `parent`."""
        # Only an anchored node is in more than one place (its aliases are): converted once.
        shared = getattr(node, "anchor", None) is not None
        if shared:
            converted = self._converted.get(node)
            if converted is not None:
                return copy.copy(converted)  # `_placed` moves the copy where the alias is
            converted = self._convert_new(node, parent, shared=True)
            self._converted[node] = converted
            return converted
        return self._convert_new(node, parent, shared=False)

    def _convert_new(self, node: Node, parent: int, *, shared: bool) -> OutlineNode:
        text = self.text
        start = node.start_mark.index
        line = node.start_mark.line + 1
        if isinstance(node, ScalarNode):
            style = _SCALAR_STYLES.get(node.style, PLAIN)
            end = node.end_mark.index
            if style in (LITERAL, FOLDED):
                end = _block_scalar_end(text, start, parent) or end
            elif style == PLAIN and node.value == "" and start == end:
                style = EMPTY
            return OutlineNode(node.value, start, end, line, style, shared=shared)
        column = start - self._line_start(start)
        flow = bool(getattr(node, "flow_style", False))
        pairs: list[tuple[OutlineNode, OutlineNode]] | None = None
        items: list[OutlineNode] | None = None
        if isinstance(node, MappingNode):
            pairs = []
            for position, (key_node, value_node) in enumerate(node.value):
                key = self._placed(self._convert(key_node, column), node, position, is_key=True)
                value = self._convert(value_node, column)
                if value.style == EMPTY:
                    # An empty value's marks point at whatever follows; anchor it to the colon.
                    colon = self._colon_after(key.end)
                    value.start = value.end = colon + 1 if colon is not None else -1
                    value.line = key.line
                pairs.append((key, self._placed(value, node, position, is_key=False)))
            last = entry_end(pairs[-1]) if pairs else None
        else:
            assert isinstance(node, SequenceNode)
            items = [
                self._placed(self._convert(item, column), node, position, is_key=False)
                for position, item in enumerate(node.value)
            ]
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

    def _placed(
        self, converted: OutlineNode, parent: Node, position: int, *, is_key: bool
    ) -> OutlineNode:
        """`converted`, at the alias it is written as there, if it is one (see `_note_alias`).

        An alias has its anchor's node, so it was converted at its anchor's place; the outline
        wants it where it is written, so that the entry it ends ends there (an edit inserts a
        missing key after a task's last entry) and its key reports its own line.
        """
        if converted.shared:
            where = self._aliases.get((id(parent), position, is_key))
            if where is not None:
                converted.start, converted.end, converted.line = where
        return converted


def _construct(constructor: SafeConstructor, composed: Node) -> Any:
    """ruamel.yaml's values of the document, each collection filled as soon as it is met.

    `construct_document` would keep a suspended generator (some 500 bytes) for each collection
    until the end, so that a structure may contain itself: the composer refuses those.
    """
    data = constructor.construct_object(composed, deep=True)
    constructor.constructed_objects.clear()
    return data


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
