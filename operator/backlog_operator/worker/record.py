"""The record the `clone` step leaves for `publish`, in the private folder.

It is read from the backlog at the base commit, before the task runs, and kept where the task
cannot write (a volume not mounted into the task container), so a task can neither widen its
own `allowed_paths` nor skip the writeback by editing the backlog file or the record.

A named tuple read back with explicit checks (no pydantic to import in a worker step): a record
with an unknown key, a missing one or a value of another type is refused (ValueError).
"""

# No `from __future__ import annotations` here: `typing.NamedTuple` would compile each of its
# fields' annotations from their text, a noticeable part of a worker step's start.

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

RECORD_FILE = "clone.json"


class CloneRecord(NamedTuple):
    """What `clone` found."""

    base_commit: str
    backlog_path: str
    task_found: bool = False
    already_completed: bool = False
    title: str = ""
    description: str = ""
    allowed_paths: list[str] | None = None
    #: The SHA-256 of the backlog's bytes that clone read and validated whole: where the task
    #: left the same bytes, publish reads only the task's entry to mark it (the rest was checked).
    backlog_sha256: str | None = None
    warnings: Sequence[str] = ()

    def save(self, private_dir: Path) -> None:
        """Write the record into the private folder."""
        private_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self._asdict(), indent=2, ensure_ascii=False)
        (private_dir / RECORD_FILE).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, private_dir: Path) -> "CloneRecord":
        """Read the record; FileNotFoundError when `clone` has not run with this folder, and
        ValueError when the file is not a record."""
        text = (private_dir / RECORD_FILE).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: object) -> "CloneRecord":
        """The record from its JSON object, every key known and of its type; else ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"{RECORD_FILE}: not a JSON object")
        unknown = set(data) - set(cls._fields)
        if unknown:
            raise ValueError(f"{RECORD_FILE}: unknown keys {sorted(unknown)}")
        for name, check in _CHECKS.items():
            if name in data and not check(data[name]):
                raise ValueError(f"{RECORD_FILE}: {name} has a value of the wrong type")
        missing = {"base_commit", "backlog_path"} - set(data)
        if missing:
            raise ValueError(f"{RECORD_FILE}: missing {sorted(missing)}")
        return cls(**data)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


_CHECKS = {
    "base_commit": _is_str,
    "backlog_path": _is_str,
    "task_found": _is_bool,
    "already_completed": _is_bool,
    "title": _is_str,
    "description": _is_str,
    "allowed_paths": lambda value: value is None or _is_strings(value),
    "backlog_sha256": lambda value: value is None or _is_str(value),
    "warnings": _is_strings,
}
