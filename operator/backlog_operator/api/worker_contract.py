"""The contract between the worker Job the operator builds and the worker steps that run in it.

The controller (`controller/goals/job.py`) writes it and the worker (`worker/context.py`,
`worker/launcher.py`, `worker/steps.py`) reads it; both import it from here, so neither imports
the other. Every step's container gets the same environment:

| variable | meaning | default |
|---|---|---|
| `BACKLOG_GOAL` | the Goal as JSON (`metadata` and `spec`) | required unless `BACKLOG_GOAL_FILE` |
| `BACKLOG_GOAL_FILE` | a file holding the Goal (YAML or JSON) | |
| `BACKLOG_ATTEMPT_ID` | this attempt's id | a new one |
| `BACKLOG_WORKSPACE` | the shared workspace volume (the task's too) | `/workspace` |
| `BACKLOG_PRIVATE_DIR` | a volume of `clone` and `publish` only, not of `task` | `/private` |
| `BACKLOG_TOKEN_FILE` | a mounted Secret key holding the forge token | none (no credentials) |
| `BACKLOG_TERMINATION_LOG` | where the result JSON goes | `/dev/termination-log` |
| `BACKLOG_GOAL_URL` | a link to the goal, put in the pull request body | none |

The `task` container alone also gets `BACKLOG_PREVIOUS_FAILURE` on a retry: JSON saying how the
previous attempt of the run failed (`attempt`, `reason`, `message`, `step`, and `log`, the end of
that attempt's task log when its Pod still exists), so that an agent can learn from it. The
operator writes it from the goal's status and the task's own output, bounded and with anything
shaped like a token masked; it never carries a credential.

The `task` step runs in the goal's own image, which has no `backlogctl`: its command is
`launcher_command`, a few lines of POSIX shell that skip the task when `clone` left the skip
marker and source the task's variables `clone` wrote, both in the workspace's state folder.
Among them is `BACKLOG_USAGE_FILE`: where the task may write what it used (`api.usage`), a file
in that state folder that `publish` reads, warily (`worker.usage_file`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the worker steps read the contract, and import no pydantic
    from backlog_operator.api.goal import Goal

# The environment of every worker step (see the table above).
GOAL_VARIABLE = "BACKLOG_GOAL"
GOAL_FILE_VARIABLE = "BACKLOG_GOAL_FILE"
ATTEMPT_ID_VARIABLE = "BACKLOG_ATTEMPT_ID"
WORKSPACE_VARIABLE = "BACKLOG_WORKSPACE"
PRIVATE_DIR_VARIABLE = "BACKLOG_PRIVATE_DIR"
TOKEN_FILE_VARIABLE = "BACKLOG_TOKEN_FILE"  # noqa: S105 (a variable's name, not a secret)
TERMINATION_LOG_VARIABLE = "BACKLOG_TERMINATION_LOG"
GOAL_URL_VARIABLE = "BACKLOG_GOAL_URL"
# The task container's only: the previous attempt's failure, as JSON (see the module docstring).
PREVIOUS_FAILURE_VARIABLE = "BACKLOG_PREVIOUS_FAILURE"

# Where the Job mounts its volumes, and what the worker assumes when it is not told.
WORKSPACE = "/workspace"
PRIVATE_DIR = "/private"  # the worker steps' own volume, out of the task's reach
TERMINATION_LOG = "/dev/termination-log"

# Inside the workspace: the clone (where the task runs) and what `clone` tells the task.
REPO_DIR = "repo"
STATE_DIR = ".backlog-state"
SKIP_MARKER = "skip"  # in STATE_DIR: the task is already completed, run nothing
TASK_ENV_FILE = "task.env"  # in STATE_DIR: `export NAME='value'` lines the launcher sources
USAGE_FILE = "usage.json"  # in STATE_DIR: what the task reports it used (its to write)
# The task's variable naming USAGE_FILE's path (one of those clone writes into TASK_ENV_FILE).
USAGE_FILE_VARIABLE = "BACKLOG_USAGE_FILE"

# The launcher spells out the names above: BACKLOG_WORKSPACE, WORKSPACE, STATE_DIR, SKIP_MARKER,
# TASK_ENV_FILE and REPO_DIR.
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


def goal_to_environment(goal: Goal) -> str:
    """The JSON the operator puts in `BACKLOG_GOAL` (metadata and spec only)."""
    payload = {
        "apiVersion": goal.api_version,
        "kind": goal.kind,
        "metadata": goal.metadata.model_dump(
            by_alias=True, exclude_none=True, mode="json", include={"name", "namespace", "uid"}
        ),
        # The steps have no use for spec.approval: the operator picks the step (stage, apply).
        "spec": {key: value for key, value in goal.spec.to_wire().items() if key != "approval"},
    }
    return json.dumps(payload, separators=(",", ":"))
