"""The backlog's tasks, validated, and the `allowed_paths` glob matching.

A task in the backlog file (see the README, "The backlog file"):

    - id: docs-backlog-guide        # required, a non-empty string, unique within the file
      title: Write the backlog guide
      description: free text
      ready: true                   # absent means false: only tasks marked ready are selectable
      status: pending               # pending | in_progress | completed | failed | blocked
      priority: 1                   # an integer or critical | high | medium | low
      requires: [other-task-id]     # also accepted as `dependencies`
      allowed_paths: ["docs/**"]
      last_attempt_id: ...          # the four writeback fields
      branch_name: ...
      pr_number: 707
      completed_at: "2026-01-30T23:15:00Z"

Choices made where the README is silent, so that a mistake never makes a task run by accident:

- `ready` absent (or null) is false. Besides YAML booleans, the YAML 1.1 words `yes`/`no`/`on`/
  `off` (any case, also quoted) are accepted: files written for YAML 1.1 parsers use them.
- `status` absent (or null) is `pending`; any other unknown word is an error, not a guess.
- `priority` ranks (words in any case): `critical` = 0, `high` = 1, `medium` = 2, `low` = 3; an
  integer is its own rank, so `priority: 1` and `priority: high` sort together and `priority: 0`
  runs before `high`. Smaller runs sooner; a task without a priority sorts after all others.
- `requires` and `dependencies` are the same field; a task giving both is an error.
- An empty string in `pr_number` or `completed_at` (a placeholder, `completed_at: ""`) is absent.
- Unknown fields are kept (`Task.extra`).

A task is a plain frozen dataclass checked by explicit code, not a pydantic model: every worker
step reads the backlog, and pydantic costs a worker step more to import than its git commands
take. `Task.from_mapping` is the only way in from a file, and checks the fields in their order,
reporting the first problem (`TaskFieldError`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any


class TaskStatus(StrEnum):
    """Where a task stands. Only `completed` is written by the operator."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    BLOCKED = "blocked"


# Rank of each priority word; integers are their own rank (see the module docstring).
PRIORITY_WORDS: Mapping[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}

_TRUE_WORDS = frozenset({"true", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "no", "off"})


def value_kind(value: object) -> str:
    """A short name of a YAML value's kind, for messages: "a list", "an integer", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, datetime | date):
        return "a date"
    return type(value).__name__


def _string_list(value: object, field: str) -> list[str]:
    """A list of non-empty strings, or a ValueError saying which item is wrong."""
    if not isinstance(value, list):
        raise ValueError(f"`{field}` must be a list of strings, found {value_kind(value)}")
    for number, item in enumerate(value, start=1):
        if not isinstance(item, str) or not item.strip():
            shown = repr(item) if isinstance(item, str) else value_kind(item)
            raise ValueError(
                f"`{field}` must be a list of non-empty strings; item {number} is {shown}"
            )
    return list(value)


class TaskFieldError(ValueError):
    """A task's field is invalid; `key` is the key it was read from (to point at its line)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


# A task's fields, in the order of the constructor's arguments (and of `repr`).
_TASK_FIELDS = (
    "id",
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
    "extra",
    "line",
)


class Task:
    """One task of the backlog, validated; `line` is where it starts in the file (1-based).

    Build one with `from_mapping`, which validates; the constructor takes the values as given.
    `extra` holds the fields the operator does not know, as read (a task may well have its own
    `line:` key, which is one of them). Read-only but for `relocate`. A plain class rather than
    a dataclass: every worker step reads a backlog, and defining dataclasses (importing
    `dataclasses` and `inspect`) would cost it several milliseconds.
    """

    __slots__ = _TASK_FIELDS
    id: str
    title: str | None
    description: str | None
    ready: bool
    status: TaskStatus
    priority: int | str | None
    requires: list[str]
    allowed_paths: list[str] | None
    last_attempt_id: str | None
    branch_name: str | None
    pr_number: int | None
    completed_at: datetime | None
    extra: dict[str, Any]
    #: The 1-based line where the task starts in the file (0 when not read from a file).
    line: int

    def __init__(
        self,
        id: str,
        title: str | None = None,
        description: str | None = None,
        ready: bool = False,
        status: TaskStatus = TaskStatus.PENDING,
        priority: int | str | None = None,
        requires: list[str] | None = None,
        allowed_paths: list[str] | None = None,
        last_attempt_id: str | None = None,
        branch_name: str | None = None,
        pr_number: int | None = None,
        completed_at: datetime | None = None,
        extra: dict[str, Any] | None = None,
        line: int = 0,
    ) -> None:
        """The task's values as given (see `from_mapping`, which validates)."""
        values = (
            id,
            title,
            description,
            ready,
            status,
            priority,
            [] if requires is None else requires,
            allowed_paths,
            last_attempt_id,
            branch_name,
            pr_number,
            completed_at,
            {} if extra is None else extra,
            line,
        )
        for name, value in zip(_TASK_FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Task is read-only: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a Task is read-only: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not Task:
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # equal by value, and it holds lists

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _TASK_FIELDS)
        return f"Task({shown})"

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _TASK_FIELDS)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, line: int = 0) -> Task:
        """Validate one task's mapping as read from the file, remembering its line.

        The fields are checked in the order above and the first problem raised as a
        TaskFieldError naming the key it was read from. `requires` is also read from
        `dependencies` when there is no `requires` (a `dependencies` beside it is kept as an
        unknown field; the backlog document refuses a task giving both).
        """
        values: dict[str, Any] = {}
        used: set[str] = set()
        for name, check in _CHECKS:
            key = "dependencies" if name == "requires" and "requires" not in data else name
            if key not in data:
                continue
            used.add(key)
            try:
                values[name] = check(data[key], name)
            except ValueError as error:
                raise TaskFieldError(key, str(error)) from None
        if "id" not in values:
            raise TaskFieldError("id", "`id` is required")
        extra = {key: value for key, value in data.items() if key not in used}
        return cls(**values, extra=extra, line=line)

    def relocate(self, line: int) -> None:
        """The task now starts at `line` (an edit above it moved it): the one change a task
        ever sees, made in place so that whoever holds the task sees it too."""
        object.__setattr__(self, "line", line)

    def fields(self) -> dict[str, Any]:
        """Every field as read (defaults included), then the unknown ones; without `line`."""
        known = {name: getattr(self, name) for name, _check in _CHECKS}
        return {**known, **self.extra}

    @property
    def priority_rank(self) -> int | None:
        """The priority as a number (smaller runs sooner), or None without a priority."""
        if self.priority is None:
            return None
        if isinstance(self.priority, str):
            return PRIORITY_WORDS[self.priority]
        return self.priority

    @property
    def sort_key(self) -> tuple[int, int]:
        """Sorts tasks by priority, tasks without one last (ties keep the file's order)."""
        rank = self.priority_rank
        return (1, 0) if rank is None else (0, rank)

    @property
    def is_completed(self) -> bool:
        """True when the backlog says the task is done."""
        return self.status is TaskStatus.COMPLETED


def _check_id(value: object, _field: str) -> str:
    if not isinstance(value, str):
        hint = f' (quote it: id: "{value}")' if isinstance(value, int | float) else ""
        raise ValueError(f"`id` must be a string, found {value_kind(value)}{hint}")
    if not value.strip():
        raise ValueError("`id` must not be empty")
    return value


def _check_text(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"`{field}` must be a string, found {value_kind(value)} (quote it)")
    return value


def _check_paths(value: object, field: str) -> list[str] | None:
    return None if value is None else _string_list(value, field)


def _check_ready(value: object, _field: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.lower() in _TRUE_WORDS
    shown = repr(value) if isinstance(value, str) else value_kind(value)
    raise ValueError(f"`ready` must be true or false, found {shown}")


def _check_status(value: object, _field: str) -> TaskStatus:
    if value is None:
        return TaskStatus.PENDING
    if isinstance(value, str) and value in TaskStatus._value2member_map_:
        return TaskStatus(value)
    shown = repr(value) if isinstance(value, str) else value_kind(value)
    expected = ", ".join(status.value for status in TaskStatus)
    raise ValueError(f"unknown status {shown} (expected one of: {expected})")


def _check_priority(value: object, _field: str) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in PRIORITY_WORDS:
        return value.lower()
    shown = repr(value) if isinstance(value, str) else value_kind(value)
    words = ", ".join(PRIORITY_WORDS)
    raise ValueError(f"`priority` must be an integer or one of {words}; found {shown}")


def _check_requires(value: object, _field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"`requires` must be a list of task ids, found {value_kind(value)}")
    for number, item in enumerate(value, start=1):
        if not isinstance(item, str) or not item.strip():
            shown = repr(item) if isinstance(item, str) else value_kind(item)
            raise ValueError(f"`requires` must be a list of task ids; item {number} is {shown}")
    return list(value)


def _check_pr_number(value: object, _field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    shown = repr(value) if isinstance(value, str | int) else value_kind(value)
    raise ValueError(f"`pr_number` must be a positive integer, found {shown}")


def _check_completed_at(value: object, _field: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"`completed_at` must be an ISO-8601 time such as "
                f'"2026-01-30T23:15:00Z", found {value!r}'
            ) from None
    else:
        raise ValueError(f"`completed_at` must be a time, found {value_kind(value)}")
    # A time without a zone in the backlog was written by the operator in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# Each field of a Task and its check, in the order of the fields (the first problem is reported).
_CHECKS: tuple[tuple[str, Callable[[object, str], Any]], ...] = (
    ("id", _check_id),
    ("title", _check_text),
    ("description", _check_text),
    ("ready", _check_ready),
    ("status", _check_status),
    ("priority", _check_priority),
    ("requires", _check_requires),
    ("allowed_paths", _check_paths),
    ("last_attempt_id", _check_text),
    ("branch_name", _check_text),
    ("pr_number", _check_pr_number),
    ("completed_at", _check_completed_at),
)


def path_allowed(path: str, patterns: Iterable[str]) -> bool:
    """Whether the repository-relative `path` matches one of the `allowed_paths` patterns.

    Patterns are matched against the whole path, component by component:

    - `*` matches any run of characters within one path component, `?` one character, and
      `[abc]` / `[!abc]` a character class; none of them ever matches `/`.
    - `**` as a whole component matches any number of components, including none:
      `docs/**` matches `docs/a.md` and `docs/a/b.md`; `**/*.md` matches `a.md` and `x/y/a.md`.
    - So `*.md` matches only `README.md` at the top, not `docs/a.md`.
    - A pattern ending in `/` means everything under it (`docs/` is `docs/**`); a leading `./` or
      `/` is ignored. Matching is case-sensitive and `*` matches names starting with a dot.

    An empty pattern list allows nothing. A path that is absolute, climbs out with `..`, or is
    not in git's normal form (`a/./b`, `a//b`) is never allowed.
    """
    normalised = path.removeprefix("./")
    if normalised.startswith("/") or {"", ".", ".."} & set(normalised.split("/")):
        return False
    return any(_compile_pattern(pattern).fullmatch(normalised) for pattern in patterns)


@lru_cache(maxsize=512)
def _compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression for one `allowed_paths` pattern (see `path_allowed`)."""
    pattern = pattern.removeprefix("./").lstrip("/")
    if pattern.endswith("/"):
        pattern += "**"
    parts = pattern.split("/")
    regex = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            # Trailing `**` needs at least one character: `docs/**` names files inside docs.
            regex.append(".+" if last else "(?:[^/]+/)*")
        else:
            regex.append(_translate_component(part) + ("" if last else "/"))
    return re.compile("".join(regex))


def _translate_component(part: str) -> str:
    """fnmatch-style translation of one path component, where nothing matches `/`."""
    out = []
    index = 0
    while index < len(part):
        char = part[index]
        index += 1
        if char == "*":
            while index < len(part) and part[index] == "*":
                index += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            close = part.find("]", index + 1 if part[index : index + 1] in ("!", "]") else index)
            if close == -1:
                out.append(re.escape(char))
                continue
            body = part[index:close].replace("\\", "\\\\")
            index = close + 1
            if body.startswith("!"):
                body = "^" + body[1:]
            elif body.startswith("^"):
                body = "\\" + body
            out.append(f"(?!/)[{body}]")
        else:
            out.append(re.escape(char))
    return "".join(out)
