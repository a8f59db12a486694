"""The record the `clone` step leaves for the `task` and `publish` steps in the workspace.

It is read from the pristine clone, before the task runs, so a task cannot widen its own
`allowed_paths` or un-complete itself by editing the backlog file.
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
    warnings: list[str] = []

    def save(self, state_dir: Path) -> None:
        """Write the record into the workspace's state folder."""
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / RECORD_FILE).write_text(self.model_dump_json(indent=2), encoding="utf-8")

    @classmethod
    def load(cls, state_dir: Path) -> CloneRecord:
        """Read the record; FileNotFoundError when `clone` has not run in this workspace."""
        return cls.model_validate_json((state_dir / RECORD_FILE).read_text(encoding="utf-8"))
