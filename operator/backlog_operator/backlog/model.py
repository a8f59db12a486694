"""The backlog's tasks as pydantic models, and the `allowed_paths` glob matching.

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
- Unknown fields are kept (`Task.model_extra`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
)


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


class Task(BaseModel):
    """One task of the backlog, validated; `line` is where it starts in the file (1-based)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    id: str
    title: str | None = None
    description: str | None = None
    ready: bool = False
    status: TaskStatus = TaskStatus.PENDING
    priority: int | str | None = None
    requires: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("requires", "dependencies")
    )
    allowed_paths: list[str] | None = None
    last_attempt_id: str | None = None
    branch_name: str | None = None
    pr_number: int | None = None
    completed_at: datetime | None = None

    # Private, not a field: a task may well have its own `line:` key, which stays an extra field.
    _line: int = PrivateAttr(default=0)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, line: int) -> Task:
        """Validate one task's mapping as read from the file, remembering its line."""
        task = cls.model_validate(dict(data))
        task._line = line
        return task

    @property
    def line(self) -> int:
        """The 1-based line where the task starts in the file (0 when not read from a file)."""
        return self._line

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

    @field_validator("id", mode="before")
    @classmethod
    def _check_id(cls, value: object) -> str:
        if not isinstance(value, str):
            hint = f' (quote it: id: "{value}")' if isinstance(value, int | float) else ""
            raise ValueError(f"`id` must be a string, found {value_kind(value)}{hint}")
        if not value.strip():
            raise ValueError("`id` must not be empty")
        return value

    @field_validator(
        "title", "description", "last_attempt_id", "branch_name", "allowed_paths", mode="before"
    )
    @classmethod
    def _check_text(cls, value: object, info: ValidationInfo) -> object:
        field = info.field_name
        if value is None:
            return None
        if field == "allowed_paths":
            return _string_list(value, field)
        if not isinstance(value, str):
            raise ValueError(f"`{field}` must be a string, found {value_kind(value)} (quote it)")
        return value

    @field_validator("ready", mode="before")
    @classmethod
    def _check_ready(cls, value: object) -> bool:
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE_WORDS | _FALSE_WORDS:
            return value.lower() in _TRUE_WORDS
        shown = repr(value) if isinstance(value, str) else value_kind(value)
        raise ValueError(f"`ready` must be true or false, found {shown}")

    @field_validator("status", mode="before")
    @classmethod
    def _check_status(cls, value: object) -> TaskStatus:
        if value is None:
            return TaskStatus.PENDING
        if isinstance(value, str) and value in TaskStatus._value2member_map_:
            return TaskStatus(value)
        shown = repr(value) if isinstance(value, str) else value_kind(value)
        expected = ", ".join(status.value for status in TaskStatus)
        raise ValueError(f"unknown status {shown} (expected one of: {expected})")

    @field_validator("priority", mode="before")
    @classmethod
    def _check_priority(cls, value: object) -> int | str | None:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in PRIORITY_WORDS:
            return value.lower()
        shown = repr(value) if isinstance(value, str) else value_kind(value)
        words = ", ".join(PRIORITY_WORDS)
        raise ValueError(f"`priority` must be an integer or one of {words}; found {shown}")

    @field_validator("requires", mode="before")
    @classmethod
    def _check_requires(cls, value: object) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError(f"`requires` must be a list of task ids, found {value_kind(value)}")
        for number, item in enumerate(value, start=1):
            if not isinstance(item, str) or not item.strip():
                shown = repr(item) if isinstance(item, str) else value_kind(item)
                raise ValueError(f"`requires` must be a list of task ids; item {number} is {shown}")
        return list(value)

    @field_validator("pr_number", mode="before")
    @classmethod
    def _check_pr_number(cls, value: object) -> int | None:
        if value is None or value == "":
            return None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        shown = repr(value) if isinstance(value, str | int) else value_kind(value)
        raise ValueError(f"`pr_number` must be a positive integer, found {shown}")

    @field_validator("completed_at", mode="before")
    @classmethod
    def _check_completed_at(cls, value: object) -> datetime | None:
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
