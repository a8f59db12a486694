"""The backlog file as a document: read and validate it, and edit one task's fields in place.

Writeback must leave every byte of the file outside the edited fields as it was (comments,
quoting, indentation, block scalars, line endings, other tasks), and a YAML library's
round-trip dump does not promise that. So the file is never re-serialised. Reading builds an
outline of the file (each task's keys and values with their character offsets); an edit
replaces the text of one value, or inserts a missing `key: value` line after the task's last
key (block style, the task's own indentation and line ending), and leaves everything else
alone. Each edit is checked by reading the result back: the data must be the old data plus
exactly the intended change, or the edit is refused and the document is left as it was. (On
the fast path it is enough to read back the edited task's own lines, see
`BacklogDocument._verify_item`; ruamel.yaml reads them as well, as a second opinion.)

Reading has two paths that build the same outline (`_outline`):

- a fast reader for the plain YAML that backlog files are written in (block mappings and
  sequences, plain and single-line quoted scalars, single-line flow collections, `|` and `>`
  block scalars, comments, `---`/`...`), which reads a 5,000-task file in a fraction of the time
  a full parser needs, and gives up on anything outside that subset (`_fast_reader`);
- ruamel.yaml's composer, which reads everything else (and finds the line of a syntax error)
  (`_full_reader`).

Scalars are resolved by ruamel.yaml's own YAML 1.2 rules on both paths, and the tests compare
the two paths on generated documents. The edits themselves are planned in `_edits`; this
module reads the file (fast reader first), checks its shape, validates its tasks, and checks
and applies each edit.

Writeback of one task in a large file need not read the others: `BacklogDocument.for_task` finds
the task's lines (`_locate`, at the speed of a few regular expressions over the text), reads
those alone with the fast reader, and edits and checks them as above; the outline then holds that
one task. Where the layout does not let `_locate` show which lines are the task's, it reads the
whole file as `parse` does.

The file is untrusted input: anyone who can commit to the repository writes it. Besides the
byte limit of `load` (`DEFAULT_MAX_BYTES`), reading bounds what the text can make it build: the
fast reader's subset has no anchors or aliases and gives up past 64 levels, and the full reader
refuses, at the offending line, a file whose aliases expand to many times what it writes
("billion laughs"), one nested deeper than 100 levels, and a recursive alias (`_full_reader`).

Even without an alias, five megabytes of `[], [], ...` or of one-line tasks would take minutes
and gigabytes to read and validate. So product limits hold whatever the size in bytes, and a
file past one is refused at the line where it goes past, with a sentence naming the limit:

- `MAX_TASKS`: at most 20,000 tasks (the benchmarks' backlog has 5,000);
- `MAX_NODES`: at most 500,000 YAML nodes in the whole file, counting every key, value, list
  item and collection as written (an alias counts one; what it expands to is the alias bounds'
  matter). A 5,000-task backlog holds some 70,000 to 100,000;
- `MAX_FULL_NODES`: at most 100,000 of them in a file the fast reader cannot read, which the
  full parser reads at some twenty times the cost a node: this keeps its worst case to a few
  seconds and some 80 MB (the fast reader's, at `MAX_NODES`, is a second or two and 170 MB);
- `MAX_TASK_NODES`: at most 10,000 in one task (a task holds some 15 to 25). Writeback has the
  full parser read the edited task again, as a second opinion: this keeps that quick too;
- `MAX_LINES`: at most 500,000 lines (a 5,000-task backlog has some 40,000 to 60,000). Five
  megabytes of blank lines hold no node, but cost each reader a table entry or a scan a line.

Both readers count as they read, so the refusal comes before memory grows: the fast reader node
by node, and a flow collection on a line longer than the nodes left ahead of building it; the
full reader as ruamel.yaml composes, and each flow collection ahead as its scanner opens it.
A file the fast reader gives up on after more than `MAX_FULL_NODES` nodes is refused at once.
"""

from __future__ import annotations

import contextlib
import gc
import os
import stat
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from backlog_operator.backlog._edits import Edit, apply_edits, plan_edits
from backlog_operator.backlog._fast_reader import FastReader
from backlog_operator.backlog._full_reader import FullReader
from backlog_operator.backlog._outline import (
    BLOCK,
    PLAIN,
    LimitError,
    Outline,
    OutlineNode,
    OutsideSubsetError,
    check_duplicate_keys,
    shift,
    task_items,
    tasks_node,
    too_many_tasks,
)
from backlog_operator.backlog.errors import (
    BacklogEditError,
    BacklogError,
    BacklogNotFoundError,
    UnknownTaskError,
)
from backlog_operator.backlog.model import Task, TaskFieldError, value_kind

if TYPE_CHECKING:  # `_locate` is imported by `for_task`, the one reading that uses it
    from backlog_operator.backlog._locate import Located

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
# What one file may hold, whatever its size in bytes (see the module docstring).
MAX_TASKS = 20_000
MAX_NODES = 500_000
MAX_FULL_NODES = 100_000
MAX_TASK_NODES = 10_000
MAX_LINES = 500_000

_BOM = b"\xef\xbb\xbf"
_EXPECTED_SHAPE = "expected a mapping with a `tasks:` list, or a list of tasks"


# ------------------------------------------------------------------------ reading and shape


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


def _read(text: str, source: str) -> Outline:
    """Read `text` (fast reader first) and check its shape; BacklogError when it is wrong."""
    root: OutlineNode | None = None
    try:
        root = _read_fast(text)
        fast = True
    except OutsideSubsetError:
        fast = False
    except LimitError as error:
        raise BacklogError(source, error.line, error.problem) from None
    if not fast:
        # Out of the `except` block: its traceback would keep the fast reader's lines alive.
        root = FullReader(
            text,
            source,
            max_nodes=MAX_FULL_NODES,
            max_tasks=MAX_TASKS,
            max_task_nodes=MAX_TASK_NODES,
            max_lines=MAX_LINES,
        ).read()
    if root is None:
        raise BacklogError(source, None, f"the file holds no YAML document; {_EXPECTED_SHAPE}")
    check_duplicate_keys(root, source)
    return Outline(root, _task_items_checked(root, source), fast)


def _read_fast(text: str) -> OutlineNode | None:
    """The fast reader's root; OutsideSubsetError when the full parser must read the file."""
    reader = FastReader(
        text,
        max_nodes=MAX_NODES,
        max_tasks=MAX_TASKS,
        max_task_nodes=MAX_TASK_NODES,
        max_full_nodes=MAX_FULL_NODES,
        max_lines=MAX_LINES,
    )
    root = reader.read()
    if root is not None:
        allowed = {id(root)} | {id(item) for item in task_items(root)}
        if any(id(node) not in allowed for node in reader.duplicates):
            raise OutsideSubsetError("duplicate keys below the tasks")  # the parser reports it
    return root


def _task_items_checked(root: OutlineNode, source: str) -> list[OutlineNode]:
    if root.pairs is None and root.items is None:
        raise BacklogError(source, root.line, f"{_EXPECTED_SHAPE}; found {value_kind(root.value)}")
    node = tasks_node(root)
    if node is None:
        raise BacklogError(source, root.line, f"no `tasks:` key; {_EXPECTED_SHAPE}")
    if node.items is None:
        if node.value is None:
            return []  # `tasks:` with nothing under it yet
        key_line = next(key.line for key, value in root.pairs or () if value is node)
        raise BacklogError(
            source, key_line, f"`tasks` must be a list of tasks, found {value_kind(node.value)}"
        )
    if len(node.items) > MAX_TASKS:
        # The readers refuse a task list as they read it; this also holds one made by an alias.
        raise BacklogError(source, node.items[MAX_TASKS].line, too_many_tasks(MAX_TASKS))
    return node.items


# ------------------------------------------------------------------------ validating the tasks


def _build_tasks(outline: Outline, source: str) -> tuple[list[Task], dict[str, int]]:
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


def _key_line(item: OutlineNode, key: str) -> int:
    for key_node, _value in item.pairs or ():
        if key_node.value == key:
            return key_node.line
    return item.line


def _validate_task(item: OutlineNode, number: int, source: str) -> Task:
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
    except TaskFieldError as error:
        raise BacklogError(source, _key_line(item, error.key), f"{label}: {error}") from None


# ------------------------------------------------------------------------ decoding, one item


def _decode(data: bytes, source: str) -> tuple[str, bool]:
    """The file's text and whether it started with a UTF-8 byte order mark."""
    bom = data.startswith(_BOM)
    body = data[len(_BOM) :] if bom else data
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise BacklogError(source, 1, "the file is UTF-16 text; save it as UTF-8")
    try:
        return body.decode("utf-8"), bom
    except UnicodeDecodeError as error:
        line = body.count(b"\n", 0, error.start) + 1
        column = error.start - (body.rfind(b"\n", 0, error.start) + 1) + 1
        raise BacklogError(
            source,
            line,
            f"not UTF-8 text: byte 0x{body[error.start]:02x} at column {column} "
            "cannot be decoded; save the file as UTF-8",
        ) from None


class _MisreadError(Exception):
    """A task's lines read as something else than one task ending where it should."""


def _read_item(text: str, begin: int, end: int, column: int, depth: int) -> OutlineNode | None:
    """The task list item on the lines text[begin:end], read alone by the fast reader.

    Its offsets and lines count from `begin`. The fast reader's reading of an item depends only
    on the item's lines and the first content line after them (`FastReader.sequence_item`), so
    the window holds that line too, and the item must end just before it (or at the end of the
    text when `end` is there). None when the lines are outside the fast reader's subset;
    _MisreadError when they read as anything but one item ending at `end` without duplicate
    keys.
    """
    newline = text.find("\n", end)
    window = text[begin : len(text) if newline == -1 else newline + 1]
    try:
        reader = FastReader(window)
        item, next_index = reader.sequence_item(0, column, depth)
    except OutsideSubsetError:
        return None
    ends_at = reader.count if end == len(text) else reader.count - 1
    if next_index != ends_at or reader.duplicates:
        raise _MisreadError
    return item


# --------------------------------------------------------------------------------- the document


def _same(left: object, right: object) -> bool:
    """Data equality that also holds for NaN values (a task may carry `.nan` in a field)."""
    return left == right or repr(left) == repr(right)


class BacklogDocument:
    """A backlog file: its validated tasks, and surgical edits of one task's fields.

    Build one with `parse` or `load` (or `for_task`, to edit one task of a large file); edit
    with `mark_completed` and `set_pr_number`; get the bytes with `render` or write them with
    `save`. A failed edit raises and leaves the document as it was.
    """

    def __init__(
        self,
        *,
        source: str,
        text: str,
        bom: bool,
        outline: Outline,
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
        # From `for_task`: the outline and tasks hold that one task, and its outline is kept
        # up to date after each edit (rather than read again).
        self._partial = False

    @classmethod
    def parse(cls, data: bytes, *, source: str) -> BacklogDocument:
        """Read a backlog from its bytes; `source` names the file in error messages."""
        text, bom = _decode(data, source)
        return cls._from_text(text, bom, source)

    @classmethod
    def _from_text(cls, text: str, bom: bool, source: str) -> BacklogDocument:
        with _collector_paused():
            outline = _read(text, source)
            tasks, index = _build_tasks(outline, source)
        return cls(source=source, text=text, bom=bom, outline=outline, tasks=tasks, index=index)

    @classmethod
    def for_task(cls, data: bytes, task_id: str, *, source: str) -> BacklogDocument:
        """Read a backlog from its bytes to edit the task `task_id`, reading no other task
        where the file's layout allows it; `source` names the file in error messages.

        Wherever `parse` reads the file, editing this task (`mark_completed`, `set_pr_number`)
        gives the bytes it gives after `parse`, and `find(task_id)` the same task. The other
        tasks are neither read nor validated (`_locate` says what is checked): a defect in one
        of them, for which `parse` would refuse the file, is not reported, and the edit leaves
        it as it was. `tasks`, `find` of another id and an edit of another task read the whole
        file first, as `parse` does (and may raise what it raises). A file in which the task's
        lines cannot be shown this way, or that does not hold the task, is read whole at once.
        """
        from backlog_operator.backlog._locate import locate

        text, bom = _decode(data, source)
        located = locate(text, task_id, max_nodes=MAX_NODES, max_tasks=MAX_TASKS)
        document = None if located is None else cls._one_task(text, bom, source, located)
        if document is None or document._tasks[0].id != task_id:
            return cls._from_text(text, bom, source)
        return document

    @classmethod
    def _one_task(
        cls, text: str, bom: bool, source: str, located: Located
    ) -> BacklogDocument | None:
        """A document holding the located task alone, or None where it does not read as one
        valid task (the whole reading then says why, as `parse` would)."""
        begin, end, column = located.begin, located.end, located.column
        try:
            item = _read_item(text, begin, end, column, 1 if located.bare_list else 2)
        except _MisreadError:
            return None
        if item is None or item.pairs is None:
            return None
        first_line = text.count("\n", 0, begin) + 1
        shift(item, begin, first_line - 1)
        try:
            task = _validate_task(item, 1, source)
        except BacklogError:
            return None
        # The task list of the outline holds this item alone; its line is the item's first.
        tasks = OutlineNode(
            None, begin, end, first_line, BLOCK, items=[item], column=column, spans=[(begin, end)]
        )
        root = tasks
        if not located.bare_list:
            key = OutlineNode("tasks", 0, 0, 1, PLAIN)
            root = OutlineNode({}, 0, 0, 1, BLOCK, pairs=[(key, tasks)])
        outline = Outline(root, [item], fast=True)
        document = cls(
            source=source, text=text, bom=bom, outline=outline, tasks=[task], index={task.id: 0}
        )
        document._partial = True
        return document

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
        """The tasks, in file order (from `for_task`: once the whole file is read)."""
        self._read_whole()
        return list(self._tasks)

    @property
    def changed(self) -> bool:
        """Whether an edit changed the text since it was read."""
        return self._changed

    def find(self, task_id: str) -> Task | None:
        """The task with this id, or None."""
        if task_id not in self._index:
            self._read_whole()
        position = self._index.get(task_id)
        return self._tasks[position] if position is not None else None

    def _read_whole(self) -> None:
        """Read the whole (perhaps edited) text, where `for_task` read one task of it."""
        if not self._partial:
            return
        with _collector_paused():
            outline = _read(self._text, self.source)
            tasks, index = _build_tasks(outline, self.source)
        self._outline, self._tasks, self._index = outline, tasks, index
        self._partial = self._stale = False

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
        and `completed_at` (UTC, whole seconds, quoted: "2026-01-30T23:15:00Z"). Without a
        `pr_number`, one the task has from an earlier attempt is set to `null`: it names
        another attempt's pull request, not this one's (a later `set_pr_number` records the
        new one). Raises UnknownTaskError for an id not in the file.
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
        elif (task := self.find(task_id)) is not None and task.pr_number is not None:
            changes["pr_number"] = None  # stale: an earlier attempt's pull request
        changes["completed_at"] = stamp
        self._edit(task_id, changes)

    def set_pr_number(self, task_id: str, pr_number: int) -> None:
        """Record the task's pull request number."""
        self._edit(task_id, {"pr_number": _require_pr_number(pr_number)})

    def _edit(self, task_id: str, changes: dict[str, object]) -> None:
        position = self._position(task_id)
        item = self._outline.items[position]
        edits = plan_edits(self._text, item, changes, self.source)
        if not edits:
            return
        text = apply_edits(self._text, edits)
        expected = {**item.value, **changes}
        outline = reread = None
        if self._outline.fast:
            reread = self._verify_item(text, position, expected, edits)
        if reread is None:
            if self._partial:
                # Only the whole file can show the edit is right: read it, then edit.
                self._read_whole()
                self._edit(task_id, changes)
                return
            outline = self._verify_whole(text, position, expected)
        if self._outline.fast:
            self._cross_check(text, position, expected)
        try:
            task = Task.from_mapping(expected, line=item.line)
        except TaskFieldError as error:
            raise self._refuse(item, f"the result does not validate: {error}") from None
        # Only now does the document change: every check above raises before this point.
        line_shift = sum(
            edit.text.count("\n") - self._text.count("\n", edit.start, edit.end) for edit in edits
        )
        if reread is not None and self._partial:
            self._keep_outline(reread, len(text) - len(self._text))
        self._text = text
        self._tasks[position] = task
        self._changed = True
        if outline is not None:
            self._outline = outline
            for existing, new_item in zip(self._tasks, outline.items, strict=True):
                existing.relocate(new_item.line)
        elif not self._partial:
            # The outline's offsets after the edit are out of date: read again before the next
            # edit, rather than on every edit (most documents see one).
            self._stale = True
            for later in self._tasks[position + 1 :] if line_shift else ():  # lines moved
                later.relocate(later.line + line_shift)

    def _position(self, task_id: str) -> int:
        """The task's index, with an outline up to date (read again after an edit)."""
        if task_id not in self._index:
            self._read_whole()
        position = self._index.get(task_id)
        if position is None:
            raise UnknownTaskError(self.source, None, f"no task with id {task_id!r}")
        if self._stale:
            with _collector_paused():
                self._outline = _read(self._text, self.source)
            self._stale = False
        return position

    def _keep_outline(self, item: OutlineNode, growth: int) -> None:
        """Put the edited task's item, read back from its lines, in the one-task outline."""
        tasks = tasks_node(self._outline.root)
        assert tasks is not None
        assert tasks.spans is not None
        begin, end = tasks.spans[0]
        shift(item, begin, tasks.line - 1)
        tasks.spans[0] = (begin, end + growth)
        tasks.items = self._outline.items = [item]

    def _verify_item(
        self, text: str, position: int, expected: dict[str, Any], edits: list[Edit]
    ) -> OutlineNode | None:
        """Read back only the edited task, when the fast reader read the file: its new item
        (offsets from its first line), or None when it cannot be read this way (then read the
        whole file).

        The edits lie within the task's lines, and the fast reader's reading of a sequence item
        depends only on the item's lines and the first content line after them. So when the
        text before the item and from that line on is unchanged (no edit replaces text outside
        the item's lines: `apply_edits` changes nothing else), and the edited item's lines read
        as one item ending just before that same line, the whole file reads as before but for
        that item.
        """
        tasks = tasks_node(self._outline.root)
        if tasks is None or tasks.spans is None:
            return None
        begin, end = tasks.spans[position]
        new_end = end + len(text) - len(self._text)
        if any(edit.start < begin or edit.end > end for edit in edits):
            raise self._refuse(self._outline.items[position], "an edit spilled out of the task")
        depth = 1 if tasks is self._outline.root else 2
        wrong = self._refuse(self._outline.items[position], "the edited task reads back wrong")
        try:
            item = _read_item(text, begin, new_end, tasks.column, depth)
        except _MisreadError:
            raise wrong from None
        if item is None:
            return None
        if not _same(item.value, expected):
            raise wrong
        return item

    def _verify_whole(self, text: str, position: int, expected: dict[str, Any]) -> Outline:
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
        tasks_before = tasks_node(old.root)
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
        tasks = tasks_node(self._outline.root)
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

    def _refuse(self, item: OutlineNode, why: str) -> BacklogEditError:
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
