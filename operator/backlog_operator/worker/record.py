"""The record the `clone` step leaves for `publish`, in the private folder.

It is read from the backlog at the base commit, before the task runs, and kept where the task
cannot write (a volume not mounted into the task container), so a task can neither widen its
own `allowed_paths` nor skip the writeback by editing the backlog file or the record.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

RECORD_FILE = "clone.json"


class CloneRecord(BaseModel):
    """What `clone` found."""

    model_config = ConfigDict(extra="forbid")

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
    warnings: list[str] = []

    def save(self, private_dir: Path) -> None:
        """Write the record into the private folder."""
        private_dir.mkdir(parents=True, exist_ok=True)
        (private_dir / RECORD_FILE).write_text(self.model_dump_json(indent=2), encoding="utf-8")

    @classmethod
    def load(cls, private_dir: Path) -> CloneRecord:
        """Read the record; FileNotFoundError when `clone` has not run with this folder."""
        return cls.model_validate_json((private_dir / RECORD_FILE).read_text(encoding="utf-8"))
