"""The few lines of POSIX shell that start the task container in a Job.

The task runs in the goal's own image, which has no `backlogctl`; this launcher gives it the
two things the `clone` step decided: skip when the task is already completed, and the task's
id, title and description as environment variables. It needs only `/bin/sh`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

SKIP_MARKER = "skip"
TASK_ENV_FILE = "task.env"

TASK_LAUNCHER = """\
state="${BACKLOG_WORKSPACE:-/workspace}/.backlog-state"
if [ -e "$state/skip" ]; then echo "backlog: task already completed; nothing to run" >&2; exit 0; fi
if [ -r "$state/task.env" ]; then . "$state/task.env"; fi
cd "${BACKLOG_WORKSPACE:-/workspace}/repo" || exit 70
exec "$@"
"""


def launcher_command(command: list[str], args: list[str]) -> list[str]:
    """The task container's command: the launcher, then the goal's command and arguments."""
    return ["/bin/sh", "-c", TASK_LAUNCHER, "backlog-task", *command, *args]


def write_task_environment(state_dir: Path, variables: Mapping[str, str]) -> None:
    """`export NAME='value'` lines the launcher sources; values quoted for the shell."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"export {name}={shlex.quote(value)}\n" for name, value in variables.items()]
    (state_dir / TASK_ENV_FILE).write_text("".join(lines), encoding="utf-8")


def write_skip_marker(state_dir: Path) -> None:
    """Tell the launcher (and `worker task`) that there is nothing to run."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / SKIP_MARKER).write_text("already completed\n", encoding="utf-8")
