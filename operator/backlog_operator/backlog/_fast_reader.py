"""The fast reader: a line-based reader for the plain subset of YAML that backlog files use.

Block mappings and sequences, plain and single-line quoted scalars, single-line flow
collections, `|` and `>` block scalars, comments and `---`/`...` are read line by line, which
takes a fraction of the time a full parser needs for a 5,000-task file. Anything else raises
`OutsideSubsetError`, and the caller reads the file with the full parser (`_full_reader`).
Scalars get their meaning from ruamel.yaml's resolver (`plain_value`), as on the full path.

It counts the nodes it reads as the full parser counts them (every key, value, list item and
collection), the tasks of the task list and the nodes of each task, and raises `LimitError` at
the line where one goes past the limit it was given (the document's `MAX_NODES`, `MAX_TASKS`
and `MAX_TASK_NODES`). The full parser reads fewer nodes (`MAX_FULL_NODES`): a file that gives
up on the subset after more than that many is refused at once, at the line where the count went
past them, as the full parser would refuse it after the same count, only much later.
"""

from __future__ import annotations

import re
import sys
from array import array
from typing import Any, NamedTuple

from backlog_operator.backlog._full_reader import (
    count_lines,
    too_many_full_nodes,
    too_many_lines,
    too_many_task_nodes,
)
from backlog_operator.backlog._outline import (
    BLOCK,
    DOUBLE,
    EMPTY,
    FLOW,
    ODD_CHARACTERS,
    PLAIN,
    SINGLE,
    WORDS,
    LimitError,
    OutlineNode,
    OutsideSubsetError,
    flow_nodes_past,
    plain_value,
    skip_spaces,
    too_many_nodes,
    too_many_tasks,
)

# A simple key, its colon, and the spaces after it.
_KEY = re.compile(r"([A-Za-z_][\w.\-]*) *(:)(?: +|$)")
_FLOW_KEY = re.compile(r"([A-Za-z_][\w.\-]*) *:(?=[ ,}])")
_SINGLE_QUOTED = re.compile(r"'((?:[^'\t]|'')*)'")
_DOUBLE_QUOTED = re.compile(r'"((?:[^"\\\t]|\\.)*)"')
_FLOW_PLAIN = re.compile(r"[^\s,\[\]{}#&*!|>'\"%@`?:\-](?:[^\s,\[\]{}:]| +(?=[^\s,\[\]{}#:]))*")
_TRAILER = re.compile(r"(?: +#.*)?")  # what may follow a value on its line: a comment
_BLOCK_HEADER = re.compile(r"([|>])([+-]?)(?: +#.*)?")
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


class _ScalarBody(NamedTuple):
    """The content of a block scalar (`FastReader._block_scalar_body`), before chomping."""

    text: str  # the lines, joined, without a final line break
    last_content: int  # the index of its last line with text
    last_line: int  # the index of its last line, the empty lines after the text included
    gap: int  # how many empty lines follow the text
    after: int  # the index of the first line after it


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code[0] in "xuU" and len(code) > 1:
        number = int(code[1:], 16)
        if 0xD800 <= number <= 0xDFFF:
            raise OutsideSubsetError("surrogate escape")
        return chr(number)
    if code in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[code]
    raise OutsideSubsetError("unknown escape")


class FastReader:
    """Reads the plain subset of YAML that backlog files use, line by line.

    Anything outside the subset raises `OutsideSubsetError`; the caller then uses the full parser.
    The subset keeps every construct on the lines it obviously belongs to (no multi-line plain
    or quoted scalars, no multi-line flow collections, no anchors, tags, directives or tabs
    outside comments), so reading a line never depends on more than the indentation above it.
    """

    def __init__(
        self,
        text: str,
        *,
        max_nodes: int = sys.maxsize,
        max_tasks: int = sys.maxsize,
        max_task_nodes: int = sys.maxsize,
        max_full_nodes: int = sys.maxsize,
        max_lines: int = sys.maxsize,
    ) -> None:
        """Split `text` into lines; `read` reads them, refusing a file past any of the limits.

        `max_full_nodes` is the full parser's node limit: see the module docstring. A text of
        more than `max_lines` lines is refused here, before its table of lines is built.
        """
        if max_lines < sys.maxsize and count_lines(text) > max_lines:
            raise LimitError(max_lines + 1, too_many_lines(max_lines))
        if ODD_CHARACTERS.search(text) or "\ufeff" in text:
            raise OutsideSubsetError("unusual characters")
        crlf = "\r" in text
        if crlf and not (text.count("\r") == text.count("\r\n") == text.count("\n")):
            raise OutsideSubsetError("mixed line endings")
        self.text = text
        self.final_break = text.endswith("\n")
        self._split(crlf=crlf)
        self.duplicates: list[OutlineNode] = []
        # The limits, and the YAML nodes read so far: every key, value, item and collection, as
        # ruamel.yaml's composer counts them on the full path (`_full_reader`).
        self.max_nodes = max_nodes
        self.max_tasks = max_tasks
        self.max_task_nodes = max_task_nodes
        self.max_full_nodes = max_full_nodes
        self.nodes = 0
        # While a task is read: the count it may not pass, and the line where it starts.
        self._task_end = sys.maxsize
        self._task_line = 0
        # The line where the count went past `max_full_nodes`, once it has.
        self._full_line: int | None = None
        # The count past which `_went_past` has a look: the least of the limits in force.
        self._ceiling = min(max_nodes, max_full_nodes)
        # The content line where the task list's block sequence starts, once known.
        self._task_list = -1
        self._names: dict[str, str] = {}  # each block mapping key's name, as first read
        self._numbered = self._numbered_as = -1  # the last line `_number` numbered

    def _split(self, *, crlf: bool) -> None:
        """The table of lines: each line's text (without its line break), where it starts,
        its indentation, and whether it holds content."""
        lines = self.text.split("\n")
        if self.final_break:
            lines.pop()
        # Where each line starts: 8 bytes a line in an array, where a list of ints takes 40.
        starts = array("q")
        indents: list[int] = []
        content: list[bool] = []
        offset = 0
        for number, line in enumerate(lines):
            starts.append(offset)
            offset += len(line) + 1
            if crlf and line.endswith("\r"):
                line = lines[number] = line[:-1]
            stripped = line.lstrip(" ")
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

    # The document ------------------------------------------------------------------------

    def read(self) -> OutlineNode | None:
        """The document's root node, or None for a document without one."""
        try:
            return self._document()
        except OutsideSubsetError:
            if self._full_line is None:
                raise  # the full parser reads the file
        # Out of the `except` block: its traceback would keep what was read alive.
        raise LimitError(self._full_line, too_many_full_nodes(self.max_full_nodes))

    def _document(self) -> OutlineNode | None:
        index = self._skip_to_content(0)
        if index < self.count and self.lines[index].startswith("%"):
            raise OutsideSubsetError("directive")
        if index < self.count and self.indents[index] < 0:
            if not _DOC_START.fullmatch(self.lines[index]):
                raise OutsideSubsetError("content after ---, or ... first")
            index = self._skip_to_content(index + 1)
            if index >= self.count:
                raise OutsideSubsetError("an explicit empty document")
        if index >= self.count:
            return None
        if self.indents[index] != 0:
            raise OutsideSubsetError("indented root")
        self._task_list = index  # when the root is a list, it is the task list
        self._count_nodes(1, index)
        node, index = self._block_node(index, 0)
        index = self._skip_to_content(index)
        if index < self.count:
            if not _DOC_END.fullmatch(self.lines[index]):
                raise OutsideSubsetError("more than one document, or content after the root")
            if self._skip_to_content(index + 1) < self.count:
                raise OutsideSubsetError("content after ...")
        return node

    def _count_nodes(self, nodes: int, index: int) -> None:
        """Count `nodes` more nodes, read on line `index`; refuse the file past a limit."""
        self.nodes += nodes
        if self.nodes > self._ceiling:
            self._went_past(index)

    def _went_past(self, index: int) -> None:
        """The count went past `_ceiling` on line `index`: past `max_nodes` or the task's limit
        the file is refused; past `max_full_nodes` the line is noted (see `read`)."""
        if self.nodes > self.max_nodes:
            raise LimitError(index + 1, too_many_nodes(self.max_nodes))
        if self.nodes > self._task_end:
            raise LimitError(index + 1, too_many_task_nodes(self.max_task_nodes, self._task_line))
        if self._full_line is None and self.nodes > self.max_full_nodes:
            self._full_line = index + 1
        self._set_ceiling()

    def _set_ceiling(self) -> None:
        self._ceiling = min(self.max_nodes, self._task_end)
        if self._full_line is None:
            self._ceiling = min(self._ceiling, self.max_full_nodes)

    def _number(self, index: int) -> int:
        """The 1-based number of line `index`, as one int for all the nodes on the line (a key
        and its value, the items of a flow collection): a line's int takes 32 bytes."""
        if index != self._numbered:
            self._numbered = index
            self._numbered_as = index + 1
        return self._numbered_as

    def _is_dash(self, index: int, column: int) -> bool:
        line = self.lines[index]
        return line.startswith("-", column) and (len(line) == column + 1 or line[column + 1] == " ")

    # Block collections ---------------------------------------------------------------------

    def _block_node(self, index: int, depth: int) -> tuple[OutlineNode, int]:
        """A block mapping or sequence starting at content line `index`."""
        if depth > _MAX_DEPTH:
            raise OutsideSubsetError("nested too deeply")
        column = self.indents[index]
        if self._is_dash(index, column):
            return self._block_sequence(index, column, depth)
        if _KEY.match(self.lines[index], column):
            return self._block_mapping(index, column, depth)
        raise OutsideSubsetError("a scalar or flow collection on its own line")

    def _skip_to_content(self, index: int) -> int:
        """The first content line at or after `index` (blank and comment lines are skipped)."""
        content = self.content
        count = self.count
        while index < count and not content[index]:
            index += 1
        return index

    def _block_sequence(self, index: int, column: int, depth: int) -> tuple[OutlineNode, int]:
        """A block sequence whose dashes are at `column`, the first on line `index`."""
        start = self.starts[index] + column
        items: list[OutlineNode] = []
        node = OutlineNode(
            None, start, start, self._number(index), BLOCK, items=items, column=column
        )
        indents = self.indents
        count = self.count
        # The task list, alone, is held to `max_tasks` and keeps each item's span.
        tasks = index == self._task_list
        max_items = self.max_tasks if tasks else sys.maxsize
        spans: list[tuple[int, int]] | None = [] if tasks else None
        while True:
            begin = self.starts[index]
            if tasks:
                self._start_task(index)
            self._count_nodes(1, index)
            item, index = self.sequence_item(index, column, depth + 1)
            items.append(item)
            if len(items) > max_items:
                raise LimitError(item.line, too_many_tasks(max_items))
            if tasks:
                self._task_end = sys.maxsize
                self._set_ceiling()
            if spans is not None:
                spans.append((begin, self.starts[index] if index < count else len(self.text)))
            if index >= count or indents[index] < column:
                break
            if indents[index] > column:
                raise OutsideSubsetError("unexpected indentation")
            if not self._is_dash(index, column):
                break
        node.value = [item.value for item in items]
        node.end = items[-1].end
        node.spans = spans
        return node, index

    def _start_task(self, index: int) -> None:
        """A task starts on line `index`: hold its nodes to `max_task_nodes`."""
        if self.max_task_nodes < sys.maxsize:
            self._task_end = self.nodes + self.max_task_nodes
            self._task_line = index + 1
            self._set_ceiling()

    def sequence_item(self, index: int, column: int, depth: int) -> tuple[OutlineNode, int]:
        """The item whose dash is at (`index`, `column`), and the next content line's index.

        What it reads depends only on the item's own lines and the first content line after
        them, which is what lets an edit be checked by reading the edited item alone.
        """
        line = self.lines[index]
        count = self.count
        at = skip_spaces(line, column + 1)
        if at == len(line) or line[at] == "#":
            following = self._skip_to_content(index + 1)
            if following < count and self.indents[following] > column:
                return self._block_node(following, depth)
            offset = self.starts[index] + column + 1
            return OutlineNode(None, offset, offset, self._number(index), EMPTY), following
        if self._is_dash(index, at):
            raise OutsideSubsetError("compact nested sequence")
        if _KEY.match(line, at):
            return self._block_mapping(index, at, depth)
        if line[at] in "|>":
            raise OutsideSubsetError("block scalar as a sequence item")
        item = self._inline(index, at)
        index = self._skip_to_content(index + 1)
        if index < count and self.indents[index] > column:
            raise OutsideSubsetError("multi-line scalar")
        return item, index

    def _block_mapping(self, index: int, column: int, depth: int) -> tuple[OutlineNode, int]:
        """A block mapping whose first key is at (`index`, `column`); later keys line up."""
        start = self.starts[index] + column
        pairs: list[tuple[OutlineNode, OutlineNode]] = []
        data: dict[str, Any] = {}
        node = OutlineNode(
            data, start, start, self._number(index), BLOCK, pairs=pairs, column=column
        )
        lines = self.lines
        starts = self.starts
        indents = self.indents
        content = self.content
        count = self.count
        match_key = _KEY.match
        names = self._names
        while True:  # one key a turn; the common case (a value on the key's line) stays inline
            line = lines[index]
            match = match_key(line, column)
            if match is None:
                raise OutsideSubsetError("not a simple key")
            name = match.group(1)
            if name in WORDS:
                raise OutsideSubsetError("key that is not a string")
            # One string for each key name: a backlog repeats a dozen names in every task.
            name = names.setdefault(name, name)
            line_start = starts[index]
            key = OutlineNode(
                name, line_start + column, line_start + match.end(1), self._number(index), PLAIN
            )
            self.nodes += 2
            if self.nodes > self._ceiling:
                self._went_past(index)
            at = match.end()
            if at == len(line) or line[at] == "#":
                colon = line_start + match.start(2)
                value, index = self._value_below(index, column, depth, colon, name)
            elif line[at] in "|>":
                value, index = self._block_scalar(index, at, column)
                index = self._skip_to_content(index)
            else:
                value = self._inline(index, at)
                index += 1
                while index < count and not content[index]:
                    index += 1
                if index < count and indents[index] > column:
                    raise OutsideSubsetError("multi-line scalar")
            if name in data:
                self.duplicates.append(node)
            data[name] = value.value
            pairs.append((key, value))
            # `index` is now the next content line (or the end). At `column` it holds the next
            # key, or the dash of the sequence after a non-indented sequence's owner key.
            if index >= count or indents[index] < column or self._is_dash(index, column):
                break
            if indents[index] > column:
                raise OutsideSubsetError("unexpected indentation")
        node.end = pairs[-1][1].end
        return node, index

    def _value_below(
        self, index: int, column: int, depth: int, colon: int, name: str
    ) -> tuple[OutlineNode, int]:
        """The value of key `name` (at `column` on line `index`) with nothing after its colon.

        A block collection on the lines below (a sequence may start at the key's own column),
        or else an empty value just after the colon. Returns it and the next content line.
        """
        following = self._skip_to_content(index + 1)
        if depth == 0 and name == "tasks":
            self._task_list = following
        if following < self.count and self.indents[following] > column:
            return self._block_node(following, depth + 1)
        if (
            following < self.count
            and self.indents[following] == column
            and self._is_dash(following, column)
        ):
            return self._block_sequence(following, column, depth + 1)
        return OutlineNode(None, colon + 1, colon + 1, self._number(index), EMPTY), following

    # Block scalars ----------------------------------------------------------------------

    def _block_scalar(self, index: int, at: int, parent: int) -> tuple[OutlineNode, int]:
        """A `|` or `>` scalar whose header is at (`index`, `at`), built as PyYAML does."""
        header = _BLOCK_HEADER.fullmatch(self.lines[index], at)
        if header is None:
            raise OutsideSubsetError("block scalar header")
        lines = self.lines
        count = self.count
        row = index + 1
        leading = 0
        while row < count and not lines[row].strip(" "):
            # ruamel.yaml refuses some leading lines of spaces that PyYAML takes; take none.
            if lines[row]:
                raise OutsideSubsetError("block scalar led by a line of spaces")
            leading += 1
            row += 1
        if row >= count or self.indents[row] <= parent:
            raise OutsideSubsetError("empty block scalar")
        body = self._block_scalar_body(row, folded=header.group(1) == ">")
        if body.last_line == count - 1 and not self.final_break:
            raise OutsideSubsetError("block scalar at the end of a file without a final line break")
        chomping = header.group(2)
        value = "\n" * leading + body.text
        if chomping != "-":
            value += "\n"
        last_line = body.last_line
        if chomping == "+":
            value += "\n" * body.gap
        else:
            last_line = body.last_content
        end = self.starts[last_line] + len(lines[last_line])
        start = self.starts[index] + at
        return OutlineNode(value, start, end, self._number(index), header.group(1)), body.after

    def _block_scalar_body(self, row: int, *, folded: bool) -> _ScalarBody:
        """The lines of a block scalar from its first content line, `row`, which sets its
        indentation: joined as `|` (literal) or `>` (folded) joins them."""
        lines = self.lines
        count = self.count
        indent = self.indents[row]
        parts: list[str] = []
        last_content = last_line = row
        previous_plain = False
        gap = 0
        while row < count:
            line = lines[row]
            if not line.strip(" "):
                if len(line) >= indent:
                    raise OutsideSubsetError("whitespace-only line inside a block scalar")
                gap += 1
                last_line = row
                row += 1
                continue
            if self.indents[row] < indent:
                break
            text = line[indent:]
            if folded and "\t" in text:
                raise OutsideSubsetError("tab in a folded scalar")
            plain_start = text[0] not in " \t"
            if parts:
                # Folding joins two lines that start with text; empty lines between stay.
                fold = folded and previous_plain and plain_start
                parts.append((" " if gap == 0 else "\n" * gap) if fold else "\n" * (gap + 1))
            parts.append(text)
            previous_plain = plain_start
            gap = 0
            last_content = last_line = row
            row += 1
        return _ScalarBody("".join(parts), last_content, last_line, gap, row)

    # One-line values ----------------------------------------------------------------------

    def _inline(self, index: int, at: int) -> OutlineNode:
        """The value that starts at column `at` and ends on the same line, then a comment."""
        line = self.lines[index]
        base = self.starts[index]
        char = line[at]
        if char in "'\"":
            value, style, end = self._quoted(line, at)
        elif char == "[":
            if len(line) - at > self._room():
                self._count_ahead(line, at, index)
            items, end = self._flow_sequence(line, at, base, index)
            node = OutlineNode(
                [item.value for item in items], base + at, base + end, self._number(index), FLOW
            )
            node.items = items
            self._trailer(line, end)
            return node
        elif char == "{":
            if len(line) - at > self._room():
                self._count_ahead(line, at, index)
            return self._flow_mapping(line, at, base, index)
        else:
            if char in "?:,]}#&*!|>%@`" or (
                char == "-" and (at + 1 == len(line) or line[at + 1] == " ")
            ):
                raise OutsideSubsetError("indicator starting a value")
            comment = line.find(" #", at)
            text = (line[at:] if comment == -1 else line[at:comment]).rstrip(" ")
            if ": " in text or text.endswith(":") or "\t" in text:
                raise OutsideSubsetError("plain scalar with ': ' or a tab")
            # What follows is spaces and perhaps a comment: nothing to check.
            return OutlineNode(
                plain_value(text), base + at, base + at + len(text), self._number(index), PLAIN
            )
        self._trailer(line, end)
        return OutlineNode(value, base + at, base + end, self._number(index), style)

    def _room(self) -> int:
        """How many more nodes the file, and the task being read, may hold."""
        return min(self.max_nodes, self._task_end) - self.nodes

    def _count_ahead(self, line: str, at: int, index: int) -> None:
        """Refuse the flow collection at `at` if it holds more nodes than are left to read.

        Only a line longer than that many characters can; it is counted ahead, at the speed
        of a regular expression (`flow_nodes_past`), rather than built node by node first.
        The collection itself was counted already, with its key or as an item.
        """
        if flow_nodes_past(line, at, self._room() + 1) is not None:
            if self._task_end < self.max_nodes:
                raise LimitError(
                    index + 1, too_many_task_nodes(self.max_task_nodes, self._task_line)
                )
            raise LimitError(index + 1, too_many_nodes(self.max_nodes))

    @staticmethod
    def _trailer(line: str, end: int) -> None:
        if not _TRAILER.fullmatch(line, end):
            raise OutsideSubsetError("text after a value")

    @staticmethod
    def _quoted(line: str, at: int) -> tuple[str, str, int]:
        """A single-line quoted scalar at `at`: its value, style and end column."""
        if line[at] == "'":
            match = _SINGLE_QUOTED.match(line, at)
            if match is None:
                raise OutsideSubsetError("multi-line single-quoted scalar")
            return match.group(1).replace("''", "'"), SINGLE, match.end()
        match = _DOUBLE_QUOTED.match(line, at)
        if match is None:
            raise OutsideSubsetError("multi-line double-quoted scalar")
        body = match.group(1)
        if "\\" in body:
            body = _ESCAPE.sub(_unescape, body)
        return body, DOUBLE, match.end()

    def _flow_scalar(self, line: str, at: int, base: int, index: int) -> tuple[OutlineNode, int]:
        char = line[at : at + 1]
        if char in ("'", '"'):
            value, style, end = self._quoted(line, at)
            return OutlineNode(value, base + at, base + end, self._number(index), style), end
        match = _FLOW_PLAIN.match(line, at)
        if match is None:
            raise OutsideSubsetError("flow item")
        text = match.group(0)
        node = OutlineNode(
            plain_value(text), base + at, base + match.end(), self._number(index), PLAIN
        )
        return node, match.end()

    def _flow_sequence(
        self, line: str, at: int, base: int, index: int
    ) -> tuple[list[OutlineNode], int]:
        """`[a, 'b', "c"]` on one line, scalars only: its items and the column after `]`."""
        items: list[OutlineNode] = []
        at = skip_spaces(line, at + 1)
        if line.startswith("]", at):
            return items, at + 1
        while True:
            self._count_nodes(1, index)
            item, at = self._flow_scalar(line, at, base, index)
            items.append(item)
            at = skip_spaces(line, at)
            if line.startswith(",", at):
                at = skip_spaces(line, at + 1)
                if line.startswith("]", at):
                    return items, at + 1
            elif line.startswith("]", at):
                return items, at + 1
            else:
                raise OutsideSubsetError("flow sequence")

    def _flow_mapping(self, line: str, at: int, base: int, index: int) -> OutlineNode:
        """`{id: a, status: pending}` on one line, scalar values only."""
        pairs: list[tuple[OutlineNode, OutlineNode]] = []
        data: dict[str, Any] = {}
        node = OutlineNode(data, base + at, base + at, self._number(index), FLOW, pairs=pairs)
        at = skip_spaces(line, at + 1)
        while not line.startswith("}", at):
            match = _FLOW_KEY.match(line, at)
            if match is None:
                raise OutsideSubsetError("flow mapping key")
            name = match.group(1)
            if name in WORDS:
                raise OutsideSubsetError("key that is not a string")
            key = OutlineNode(name, base + at, base + at + len(name), self._number(index), PLAIN)
            self._count_nodes(2, index)
            colon = match.end() - 1
            at = skip_spaces(line, match.end())
            if line.startswith((",", "}"), at):
                value = OutlineNode(
                    None, base + colon + 1, base + colon + 1, self._number(index), EMPTY
                )
            else:
                value, at = self._flow_scalar(line, at, base, index)
                at = skip_spaces(line, at)
            if name in data:
                self.duplicates.append(node)
            data[name] = value.value
            pairs.append((key, value))
            if line.startswith(",", at):
                at = skip_spaces(line, at + 1)
            elif not line.startswith("}", at):
                raise OutsideSubsetError("flow mapping")
        node.end = base + at + 1
        self._trailer(line, at + 1)
        return node
