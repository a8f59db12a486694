"""Finding one task's lines in a backlog file without reading every task.

Writeback edits one task, but reading a 5,000-task file to find it costs a hundred times what
the edit does. This module finds the task's item in the text, and shows that those lines are the
task's item as any YAML parser reads the file, at the speed of a few regular expressions:

1. The task list: the `tasks:` line at column 0 and the first item's dash below it (or, for a
   file that is a bare list, its first dash at column 0). The items' dashes are at column `c`,
   and the first item's first key at column `k`, where every item's keys must be.
2. The task list's lines, from its first item to the first line after it, must match a line
   grammar (`_grammar_source`): items whose keys (plain) all sit at column `k`, each value on
   its key's line (plain, quoted, or a flat flow collection closed on the line), a `|` or `>`
   block scalar (its lines: those indented deeper than `k`), or one level of block list or
   mapping of such values (every line of it at its first line's indentation: a dash or key
   less indented ends it); comments and blank lines anywhere. No construct in it goes on past
   its line but a block scalar, whose extent is measured by indentation as YAML measures it;
   so YAML reads each line the grammar accepts as what it looks like: a dash at column `c`
   starts an item, and nothing else does. Anything else ends the match.
3. The rest of the file (before the list and after it) is read by the fast reader, with the
   list cut out: it must be the root mapping with this `tasks` key once, holding nothing but
   the list, and the list must end where a column-0 line starts (or the file ends).
4. The task: the lines of the list where an item's `id` key holds this id. The grammar holds
   every item's `id` to a form whose text shows its value (plain, single-quoted, or
   double-quoted without escapes), so the search (`_id_line`) sees every one; there must be
   exactly one. An `id` on a line the search looks at whose value it cannot read counts as
   this id. So a duplicate of the id, in any spelling YAML reads as the same (an escape, a
   quoted or flow key, a block scalar: all outside the grammar), sends the file to the whole
   reading, which refuses it as `parse` does.

Anything outside this shape (anchors, aliases, merge keys, tags, multi-line quoted, plain or
flow values, deeper nesting, directives, characters that may be read as line breaks, control
characters, a file that may be past the document's limits) gives None, and the caller reads the
whole file. What the grammar does not look at is the text inside the other tasks' values, and
their data: a defect there (`title: a: b`, a character YAML refuses, a duplicate key, an invalid
field) is the whole reading's to report, and an edit of the one task leaves it as it was.

Every pattern here runs in time linear in the text (possessive quantifiers and atomic groups;
a search back from a line's end stays within the line), and the search for the id reads each
line it looks at once.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from backlog_operator.backlog._fast_reader import FastReader
from backlog_operator.backlog._outline import (
    EMPTY,
    LimitError,
    OutsideSubsetError,
    tasks_node,
)

# A plain scalar's first character: not an indicator (nor `=`/`<`, which start YAML's value and
# merge words), or one of `-?:` followed by a character that is not a space.
_PLAIN_START = r"""(?:[^-?:,\[\]{}#&*!|>'"%@`=< \t\r\n]|[-?:](?=[^ \t\r\n]))"""
_KEY = r"[A-Za-z_][A-Za-z0-9_.\-]*+"
_SINGLE = r"'(?:[^'\r\n]++|'')*+'"
# A flow list or mapping on one line, flat (no collection inside), without comments or escapes:
# between its brackets, plain text and quoted scalars.
_FLOW_TEXT = r"""(?:[^\[\]{}"'#\\\r\n]++|"[^"\\\r\n]*+"|'[^'\r\n]*+')*+"""
_FLOW = rf"(?:\[{_FLOW_TEXT}\]|\{{{_FLOW_TEXT}\}})"
# A flow mapping as an item: the same, its keys plain (so that its `id` is where it is sought).
_FLOW_VALUE = r"""(?:[^\[\]{}"',#\\\r\n]++|"[^"\\\r\n]*+"|'[^'\r\n]*+')*+"""
_FLOW_ENTRY = rf"{_KEY}[ ]*+:(?:[ ]++{_FLOW_VALUE})?[ ]*+"
_FLOW_ITEM = rf"\{{[ ]*+(?:{_FLOW_ENTRY}(?:,[ ]*+{_FLOW_ENTRY})*+(?:,[ ]*+)?)?\}}"


def _grammar_source(c: int, k: int, eol: str, max_tasks: int) -> str:
    """The line grammar of a task list whose dashes are at column `c` and keys at column `k`,
    of at most `max_tasks` items (past them, the match stops at a dash, which is refused).

    Each sub-pattern appears once (compiling is slow in Python); an item's first key, on its
    dash's line, is told from the others by a look behind at the dash. The rest of a line is
    matched by a single negated character where the grammar does not need to look at it: the
    regular expression engine runs that at the speed of a plain search.
    """
    rest = "[^\n]" if eol == "\n" else "[^\r]"  # the rest of a line (see `_plain_characters`)
    eol = re.escape(eol)
    keys = " " * k
    trailer = rf"(?:[ ]++(?:\#{rest}*+)?)?{eol}"  # what may end a line after a value
    blank = rf"[ ]*+{eol}"
    comment = rf"[ ]*+\#{rest}*+{eol}"
    # A double-quoted scalar closed on its line: from its quote to a later quote on the line
    # that no backslash precedes, followed by the line's end or a comment (the last such quote
    # is found first, searching back from the line's end). Whether the text in between is a
    # valid scalar is not looked at: only that the line does not end inside the scalar.
    double = rf'"{rest}*"(?<!\\")'
    # A value on its key's line, up to the next line: plain (whatever follows its first
    # character: no construct of YAML makes a plain scalar go on past its line), quoted or flow
    # (closed on the line).
    value = rf"(?:{_PLAIN_START}{rest}*+{eol}|(?:{double}|{_SINGLE}|{_FLOW}){trailer})"
    # An `id` holds a scalar the search for a task can compare: plain, single-quoted, or
    # double-quoted without escapes.
    id_value = rf'(?:{_PLAIN_START}{rest}*+{eol}|(?:"[^"\\\r\n]*+"|{_SINGLE}){trailer})'
    # A block scalar's lines: the first with text sets the indentation (deeper than the keys),
    # later ones keep it or are blank. Leading blank lines hold no more spaces than the keys'
    # column (ruamel.yaml refuses some longer ones).
    block_scalar = (
        rf"(?:[ ]{{0,{k}}}+{eol})*+"
        rf"(?:(?P<text>{keys}[ ]++)(?=[^ \t\r\n]){rest}*+{eol}"
        rf"(?:(?P=text){rest}*+{eol}|{blank})*+)?"
    )
    # A key with nothing after its colon: a block list (at the keys' column or deeper) or
    # mapping (deeper) of values, each line at the indentation of the first, or nothing. The
    # first line's indentation is captured in a look ahead, and every line, the first too,
    # must start with it: a line less indented (a dash or key at column 0) ends the collection.
    nested = (
        rf"(?:(?:{blank}|{comment})*+(?:"
        rf"(?=(?P<dashes>{keys}[ ]*+)-[ ])(?:(?P=dashes)-[ ]++{value}(?:{blank}|{comment})*+)++"
        rf"|(?=(?P<keys>{keys}[ ]++)[A-Za-z_])"
        rf"(?:(?P=keys){_KEY}[ ]*+:(?:[ ]++{value}|{trailer})(?:{blank}|{comment})*+)++"
        rf"))?"
    )
    entry = (
        rf"(?>id[ ]*+:[ ]++{id_value}"
        rf"|(?!id[ ]*+:){_KEY}[ ]*+:(?:[ ]++(?:{value}|[|>][+-]?{trailer}{block_scalar})"
        rf"|{trailer}{nested}))"
    )
    gap = " " * (k - c - 1)
    lines = rf"(?:(?:{keys}|(?<=-{gap})){entry}|{comment}|{blank})*+"
    item = (
        rf"(?>{' ' * c}-(?:[ ]++{_FLOW_ITEM}{trailer}(?:{comment}|{blank})*+"
        rf"|(?:{gap}(?=[A-Za-z_])|{trailer}){lines}))"
    )
    return rf"{item}{{0,{max_tasks}}}+"


def _matched_to(pattern: re.Pattern[str], text: str, at: int) -> int:
    """Where `pattern` (which also matches nothing) stops matching `text` from `at`."""
    match = pattern.match(text, at)
    return at if match is None else match.end()


@lru_cache(maxsize=32)
def _grammar(c: int, k: int, eol: str, max_tasks: int) -> re.Pattern[str]:
    return re.compile(_grammar_source(c, k, eol, max_tasks))


# Blank and comment lines; a dash starting an item (a key, a flow mapping or nothing after it).
_SKIP = re.compile(r"(?:[ ]*+(?:\#[^\r\n]*+)?\r?\n)*+")
_KEYS_COLUMN_LOOKS = 100  # items looked at for the keys' column after a flow mapping
_SPACES = re.compile(r"[ ]*+")
_DASH = re.compile(
    r"([ ]*+)-(?:([ ]++)(?=[A-Za-z_])|[ ]++(?=\{)|(?=(?:[ ]++(?:\#[^\r\n]*+)?)?\r?\n))"
)
_TASKS_LINE = re.compile(r"^tasks[ ]*+:(?:[ ]++(?:\#[^\r\n]*+)?)?\r?$", re.MULTILINE)
_DOCUMENT_START = re.compile(r"---(?:[ ]++(?:\#[^\r\n]*+)?)?\r?\n")
_DOCUMENT_END = re.compile(r"(?:\.\.\.(?:[ ]++(?:\#[^\r\n]*+)?)?\r?\n" + _SKIP.pattern + r")?\Z")
# The bytes `_plain_characters` looks at: line breaks, commas and opening brackets (for the
# node count), and the ASCII characters YAML does not allow (see `ODD_CHARACTERS`).
_ODD_ASCII = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_OTHER_LINE_BREAKS = "\x85\u2028\u2029"  # NEL, LINE and PARAGRAPH SEPARATOR
_COUNTED = b"\n,[{"
_ALL_BUT_LOOKED_AT = bytes(set(range(256)) - set(_COUNTED + _ODD_ASCII + b"\r"))


class Located(NamedTuple):
    """One task's item: its lines [begin, end), the dashes' column, and the list's shape."""

    begin: int
    end: int
    column: int
    bare_list: bool  # the file is a bare list of tasks (else a mapping with `tasks:`)


class _List(NamedTuple):
    """Where the task list starts (its first dash's line), its columns, and its owner."""

    start: int
    c: int
    k: int
    tasks_key: int  # the offset of the `tasks:` line; -1 for a bare list


def locate(text: str, task_id: str, *, max_nodes: int, max_tasks: int) -> Located | None:
    """The lines of the task `task_id`, or None when only reading the whole file can tell.

    None also for a file that may hold more than `max_nodes` nodes or `max_tasks` tasks, so
    that the whole reading refuses it in its own words.
    """
    eol = "\r\n" if "\r\n" in text[: text.find("\n") + 1] else "\n"
    # A last line without a line break is matched as if it had one (no offset moves).
    padded = text if text.endswith("\n") else text + eol
    lines = _plain_characters(padded, eol)
    found = None if lines is None else _list_start(padded)
    if lines is None or found is None:
        return None
    if 1 + 3 * lines[0] + 2 * lines[1] > max_nodes:
        return None
    end = _matched_to(_grammar(found.c, found.k, eol, max_tasks), padded, found.start)
    if end == found.start or padded[end - 1] != "\n" or not _rest_is_plain(padded, found, end):
        return None
    line = _id_line(padded, task_id, found, end)
    if line is None:
        return None
    dash = "\n" + " " * found.c + "-"
    before = padded.rfind(dash, max(found.start - 1, 0), line + len(dash) - 1)
    after = padded.find(dash, line, end)
    return Located(
        begin=before + 1 if before >= 0 else found.start,
        end=min(after + 1 if after >= 0 else end, len(text)),
        column=found.c,
        bare_list=found.tasks_key < 0,
    )


def _plain_characters(text: str, eol: str) -> tuple[int, int] | None:
    """The file's lines and flow characters (commas and opening brackets), or None when it
    holds a line break other than `eol` (a carriage return or line feed alone, or a character
    that ruamel.yaml reads as one) or an ASCII control character.

    Each line the grammar or the fast reader accepts holds at most three nodes (an item, a
    key, a value) besides what its flow collections hold: one node per item, each after a
    comma or an opening bracket, and two per entry of a flow mapping, each after one too. So
    `1 + 3 * lines + 2 * flow` bounds the nodes the full reading would count. (Other characters
    YAML refuses can only be in values here, which the fast path leaves to the full reading.)
    """
    if not text.isascii() and any(char in text for char in _OTHER_LINE_BREAKS):
        return None
    looked_at = text.encode("utf-8").translate(None, _ALL_BUT_LOOKED_AT)
    line_breaks = looked_at.count(b"\n")
    if len(looked_at.translate(None, _COUNTED + b"\r")) > 0:
        return None  # an ASCII character YAML does not allow
    if eol == "\n" and b"\r" in looked_at:
        return None
    if eol == "\r\n" and not text.count("\r") == text.count("\r\n") == line_breaks:
        return None
    flow = len(looked_at) - line_breaks - (line_breaks if eol == "\r\n" else 0)
    return line_breaks + 1, flow


def _list_start(text: str) -> _List | None:
    """The task list's first item, for a bare list or a `tasks:` key; None for other shapes."""
    first = _matched_to(_SKIP, text, 0)
    document_start = _DOCUMENT_START.match(text, first)
    if document_start is not None:
        first = _matched_to(_SKIP, text, document_start.end())
    dash = _DASH.match(text, first)
    tasks_key = -1
    if dash is None or dash.end(1) > dash.start(1):  # not a dash at column 0: not a bare list
        tasks = _TASKS_LINE.search(text, first)
        if tasks is None:
            return None
        tasks_key = tasks.start()
        first = _matched_to(_SKIP, text, text.index("\n", tasks_key) + 1)
        dash = _DASH.match(text, first)
        if dash is None:
            return None
    c = dash.end(1) - dash.start(1)
    if text.startswith("{", dash.end()):
        k = _keys_column(text, first, c)
    elif dash.group(2) is not None:
        k = dash.end(2) - first
    else:
        # A dash alone on its line: the keys are on the lines below it.
        below = _matched_to(_SKIP, text, text.index("\n", first) + 1)
        k = max(c + 2, _matched_to(_SPACES, text, below) - below)
    return _List(first, c, k, tasks_key)


def _keys_column(text: str, first: int, c: int) -> int:
    """The keys' column of a list whose first item is a flow mapping: that of the first of its
    next few items with a key on its dash's line (c + 2 if none; if it is not the keys' column
    of every item, the grammar stops at the first that differs)."""
    dash = "\n" + " " * c + "- "
    at = text.find(dash, first)
    for _ in range(_KEYS_COLUMN_LOOKS):
        if at < 0:
            break
        spaces = _matched_to(_SPACES, text, at + len(dash))
        if text[spaces : spaces + 1].isalpha() or text.startswith("_", spaces):
            return spaces - at - 1
        at = text.find(dash, spaces)
    return c + 2


def _rest_is_plain(text: str, found: _List, end: int) -> bool:
    """Whether the lines before and after the list read as the root with this task list alone
    in it (the fast reader, with the list cut out), the list ending where a column-0 line
    starts or the file ends."""
    if end < len(text) and text[end] in " \t-":
        return False
    if found.tasks_key < 0:
        # A bare list: before it comments and `---` (as `_list_start` found), after it
        # comments and `...`.
        return _DOCUMENT_END.match(text, end) is not None
    try:
        reader = FastReader(text[: found.start] + text[end:])
        root = reader.read()
    except (OutsideSubsetError, LimitError):
        return False
    if root is None or root.pairs is None or reader.duplicates:
        return False
    node = tasks_node(root)
    keys = [key for key, _value in root.pairs if key.value == "tasks"]
    return (
        node is not None
        and node.style == EMPTY
        and len(keys) == 1
        and keys[0].start == found.tasks_key
    )


_ID_KEY = r"id[ ]*+:[ ]++"
# Lines holding the id's text that the search looks at, at most (descriptions that repeat it).
_MAX_ID_LINES = 1000
# An `id`'s value on its line (plain, single- or double-quoted) and what may follow it; and in a
# flow mapping on a dash's line, an `id` key and its value. The grammar allows no escapes in
# them. YAML separates a value from what follows with spaces or tabs, so a tab around a value
# is not part of it (a plain value in the grammar ends with whatever its line holds, and a flow
# mapping's may hold tabs). A plain value runs over spaces and tabs that a comment or the
# line's end does not follow: each character is looked at once (a lazy `.*?` would try each
# space against the rest of its run, in time quadratic in the line's length).
_ID_VALUE = re.compile(
    r"""[ \t]*+('(?:[^'\r\n]++|'')*+'|"[^"\\\r\n]*+"|"""
    r"""[^'"\r\n](?:[^ \t\r\n]++|[ \t]++(?!\#|\r?\n|\Z))*+)"""
    r"""(?:[ \t]++\#|[ \t]*+\r?\n|[ \t]*+\Z)"""
)
_FLOW_ID_KEY = re.compile(r"[{,][ ]*+id[ ]*+:[ ]")
_FLOW_ID_VALUE = re.compile(
    r"""[ \t]*+('(?:[^'\r\n]++|'')*+'|"[^"\\\r\n]*+"|[^\[\]{}"',#\r\n]*"""
    r"""[^\[\]{}"',# \t\r\n])(?=[ \t]*+[,}])"""
)


@lru_cache(maxsize=32)
def _id_lines(c: int, k: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The start of a line with an item's `id` key: in a block mapping (on the dash's line or
    at column `k`), up to its value; and a dash's line holding a flow mapping."""
    block = re.compile(rf"(?:{' ' * c}-{' ' * (k - c - 1)}|{' ' * k}){_ID_KEY}")
    flow = re.compile(rf"{' ' * c}-[ ]++\{{")
    return block, flow


def _id_line(text: str, task_id: str, found: _List, end: int) -> int | None:
    """The start of the one line of the list where an item's `id` is this id, or None when
    there is none or more than one (or the id's text is on too many lines to look at).

    The grammar holds every item's `id` to a plain, single-quoted or unescaped double-quoted
    scalar, at column `k` or in a flow mapping on the dash's line; a block scalar's lines are
    indented deeper than `k`, and so are a nested mapping's keys. So the id's text (or its
    single-quoted form) appears on that line, and each line where it appears is read once.
    """
    if not task_id or "\n" in task_id or "\r" in task_id:
        return None
    needles = [task_id]
    if "'" in task_id:
        needles.append("'" + task_id.replace("'", "''") + "'")
    found_lines = set()
    looked_at = 0
    for needle in needles:
        at = text.find(needle, found.start, end)
        while at >= 0:
            looked_at += 1
            if looked_at > _MAX_ID_LINES:
                return None
            line = text.rfind("\n", 0, at) + 1
            line_end = text.find("\n", at)  # the text ends with a line break
            if _holds_id(text, task_id, line, line_end, found):
                found_lines.add(line)
                if len(found_lines) > 1:
                    return None
            at = text.find(needle, line_end + 1, end)
    return found_lines.pop() if found_lines else None


def _holds_id(text: str, task_id: str, line: int, line_end: int, found: _List) -> bool:
    """Whether the line [line, line_end) is an item's line whose `id` may be `task_id`.

    An `id` whose value the patterns here cannot read counts as this id: a second line then
    sends the file to the whole reading, which tells. Only a value read as another string
    rules the line out.
    """
    block, flow = _id_lines(found.c, found.k)
    key = block.match(text, line, line_end)
    if key is not None:
        value = _ID_VALUE.match(text, key.end(), line_end + 1)
        return value is None or _scalar(value.group(1)) in (task_id, None)
    if flow.match(text, line, line_end) is None:
        return False
    for entry in _FLOW_ID_KEY.finditer(text, line, line_end):
        value = _FLOW_ID_VALUE.match(text, entry.end(), line_end)
        if value is None or _scalar(value.group(1)) in (task_id, None):
            return True
    return False


def _scalar(text: str) -> str | None:
    """The string a plain, single-quoted or unescaped double-quoted scalar on one line holds
    (None for a double-quoted one with an escape); plain text is taken as it is written."""
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if text.startswith('"'):
        return None if "\\" in text else text[1:-1]
    return text
