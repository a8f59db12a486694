"""The few lines of POSIX shell that start the task container in a Job.

The task runs in the goal's own image, which has no `backlogctl`; this launcher gives it the
two things the `clone` step decided: skip when the task is already completed, and the task's
id, title and description as environment variables. It needs only `/bin/sh`.

The launcher itself (`launcher_command`) is part of the Job's contract and lives in
`api.worker_contract`; this module writes what it reads.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from backlog_operator.api.worker_contract import SKIP_MARKER, TASK_ENV_FILE


def write_task_environment(state_dir: Path, variables: Mapping[str, str]) -> None:
    """`export NAME='value'` lines the launcher sources; values quoted for the shell."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"export {name}={shlex.quote(value)}\n" for name, value in variables.items()]
    (state_dir / TASK_ENV_FILE).write_text("".join(lines), encoding="utf-8")


def write_skip_marker(state_dir: Path) -> None:
    """Tell the launcher (and `worker task`) that there is nothing to run."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / SKIP_MARKER).write_text("already completed\n", encoding="utf-8")
