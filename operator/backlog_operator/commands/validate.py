"""`backlogctl validate FILE...`: lint backlog files offline, for people and for CI.

Reads each file as the operator does (`BacklogDocument`), checks the task graph
(`validate_tasks`: ids, requirements, cycles) and, when it validates, shows what a Backlog sync
would do with it as it stands, with no Goal running and no limit: the selection order, and
every task that is not selectable with the reason. Errors name the file and line
(`backlog.yaml:14: duplicate task id ...`) and go to stderr; `-o json` puts a machine-readable
report on stdout.

Exit status: 0 when every file validates, 1 when one does not, 2 when one cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from backlog_operator.backlog.document import DEFAULT_MAX_BYTES, BacklogDocument
from backlog_operator.backlog.errors import BacklogError
from backlog_operator.backlog.model import Task
from backlog_operator.backlog.selection import (
    BacklogReport,
    Hold,
    SelectionInput,
    select_tasks,
    validate_tasks,
)

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2

# The file's own reasons, as the Backlog's status words them (`BlockedTask.reason`).
_BLOCKED_REASONS = {
    Hold.REQUIRES: "Requires",
    Hold.BLOCKED: "MarkedBlocked",
    Hold.FAILURE_BUDGET: "FailureBudget",
}


@dataclass
class FileReport:
    """What `validate` found in one file (JSON-ready through `as_json`)."""

    file: str
    errors: list[BacklogError] = field(default_factory=list)
    unreadable: str | None = None
    tasks: list[Task] = field(default_factory=list)
    order: list[Task] = field(default_factory=list)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    report: BacklogReport | None = None

    @property
    def valid(self) -> bool:
        """True when the file was read and has no problem."""
        return self.unreadable is None and not self.errors

    def as_json(self) -> dict[str, Any]:
        """The report as camelCase JSON, as everywhere on the Kubernetes side."""
        out: dict[str, Any] = {
            "file": self.file,
            "valid": self.valid,
            "errors": [
                {"file": e.path, "line": e.line, "message": e.problem, "text": str(e)}
                for e in self.errors
            ],
        }
        if self.unreadable is not None:
            out["errors"].append({"file": self.file, "line": None, "message": self.unreadable})
        if self.report is not None:
            report = self.report
            out |= {
                "tasks": len(self.tasks),
                "counts": {
                    "pending": report.counts.pending,
                    "inProgress": report.counts.in_progress,
                    "completed": report.counts.completed,
                    "failed": report.counts.failed,
                    "blocked": report.counts.blocked,
                },
                "selectionOrder": [task.id for task in self.order],
                "blocked": self.blocked,
                "notReady": list(report.not_ready.ids),
                "inProgress": list(report.in_progress.ids),
                "failed": list(report.failed.ids),
                "completed": list(report.completed.ids),
            }
        return out


def check_file(path: Path, *, now: datetime | None = None) -> FileReport:
    """Read, validate and (when valid) select from one backlog file; never raises for the
    file's content (its problems are in the report)."""
    found = FileReport(file=str(path))
    try:
        with path.open("rb") as handle:
            data = handle.read(DEFAULT_MAX_BYTES + 1)
    except OSError as error:
        found.unreadable = error.strerror or str(error)
        return found
    if len(data) > DEFAULT_MAX_BYTES:
        found.unreadable = f"the file is larger than the limit of {DEFAULT_MAX_BYTES} bytes"
        return found
    try:
        document = BacklogDocument.parse(data, source=str(path))
    except BacklogError as error:
        found.errors.append(error)
        return found
    found.tasks = document.tasks
    found.errors = validate_tasks(found.tasks, source=str(path))
    if found.errors:
        return found
    given = SelectionInput(now=now or datetime.now(UTC), max_listed=len(found.tasks))
    selection = select_tasks(found.tasks, given, source=str(path))
    found.report = selection.report
    found.order = list(selection.start)
    by_id = {task.id: task for task in found.tasks}
    for entry in selection.report.blocked:
        held = selection.held[entry.id]
        found.blocked.append(
            {
                "id": entry.id,
                "line": by_id[entry.id].line,
                "reason": _BLOCKED_REASONS.get(held.reason, str(held.reason)),
                "requires": list(entry.requires),
                "message": held.detail,
            }
        )
    return found


def _print_text(found: FileReport, out: TextIO) -> None:
    """The human summary of a valid file."""
    report = found.report
    assert report is not None
    counts = report.counts
    out.write(
        f"{found.file}: valid, {len(found.tasks)} tasks "
        f"({counts.pending} pending, {counts.in_progress} in progress, "
        f"{counts.completed} completed, {counts.failed} failed, {counts.blocked} blocked)\n"
    )
    out.write("selection order (no Goal running, no limit):\n")
    for number, task in enumerate(found.order, 1):
        priority = "" if task.priority is None else f"  priority {task.priority}"
        out.write(f"  {number}. {task.id}  (line {task.line}){priority}\n")
    if not found.order:
        out.write("  (none: no task is selectable)\n")
    if found.blocked:
        out.write("blocked:\n")
        for entry in found.blocked:
            out.write(f"  {entry['id']}  (line {entry['line']}): {entry['message']}\n")
    if report.not_ready.ids:
        out.write(f"not ready: {', '.join(report.not_ready.ids)}\n")
    if report.in_progress.ids:
        out.write(f"in progress: {', '.join(report.in_progress.ids)}\n")
    if report.failed.ids:
        out.write(f"failed: {', '.join(report.failed.ids)}\n")


def main(args: argparse.Namespace) -> int:
    """Validate each file named; the exit status is the worst file's (see the module)."""
    status = EXIT_VALID
    reports = []
    for name in args.files:
        found = check_file(Path(name))
        reports.append(found)
        for error in found.errors:
            print(f"error: {error}", file=sys.stderr)
        if found.unreadable is not None:
            print(f"error: {found.file}: cannot read it: {found.unreadable}", file=sys.stderr)
            status = max(status, EXIT_UNREADABLE)
        elif found.errors:
            status = max(status, EXIT_INVALID)
        elif args.output != "json":
            _print_text(found, sys.stdout)
    if args.output == "json":
        documents = [found.as_json() for found in reports]
        json.dump(documents[0] if len(documents) == 1 else documents, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return status
