"""One attempt's Pod on this machine: the three steps as separate processes, with the Job's mounts.

The operator's Job gives each container its own environment and volumes (see
`controller/goals/job.py`): `clone` and `publish` get the goal, the token file and the private
folder; `task` gets the workspace and its own variables, nothing else. `Pod` runs
`backlogctl worker clone`, the task launcher and `backlogctl worker publish` the same way, so
tests check the contract between the manifest and the worker, and what a task can reach.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backlog_operator.api.goal import Goal
from backlog_operator.api.worker_contract import goal_to_environment, launcher_command

ATTEMPT_ID = "attempt-t-0a0b0c"

Completed = subprocess.CompletedProcess[str]


def backlogctl(*args: str, env: Mapping[str, str]) -> Completed:
    """`backlogctl ARGS` as its own process, as a container runs it."""
    return subprocess.run(
        [sys.executable, "-m", "backlog_operator.cli", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Pod:
    """The three containers of one attempt, sharing a workspace folder.

    `token_file` stands for the mounted Secret key: only `clone` and `publish` are told its
    path. `home` is each container's HOME (the same folder for all three, the worst case: a
    task that writes `~/.gitconfig` for the steps after it).
    """

    def __init__(
        self, root: Path, goal: Goal, *, token_file: Path | None = None, home: Path | None = None
    ) -> None:
        self.workspace = root / "workspace"
        self.workspace.mkdir()
        # The volume of clone and publish only: the task step is never given its path.
        self.private = root / "private"
        self.private.mkdir()
        self.logs = root / "termination"
        self.logs.mkdir()
        self.goal = goal
        self.token_file = token_file
        self.base_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "BACKLOG_"))
        }
        if home is not None:
            home.mkdir(parents=True, exist_ok=True)
            self.base_env["HOME"] = str(home)
        self.outputs: list[str] = []

    def worker(self, step: str, *args: str) -> Completed:
        """`backlogctl worker STEP ARGS` with the environment of the `clone`/`publish`
        containers (a heal Job's container has the same)."""
        env = dict(self.base_env)
        env.update(
            BACKLOG_GOAL=goal_to_environment(self.goal),
            BACKLOG_ATTEMPT_ID=ATTEMPT_ID,
            BACKLOG_WORKSPACE=str(self.workspace),
            BACKLOG_PRIVATE_DIR=str(self.private),
            BACKLOG_TERMINATION_LOG=str(self.logs / step),
        )
        if self.token_file is not None:
            env["BACKLOG_TOKEN_FILE"] = str(self.token_file)
        return self._keep(backlogctl("worker", step, *args, env=env))

    def task(self) -> Completed:
        """The task container: the launcher and the goal's command, the goal's env only."""
        spec = self.goal.spec.task
        env = {"PATH": os.environ["PATH"], "BACKLOG_WORKSPACE": str(self.workspace)}
        if "HOME" in self.base_env:
            env["HOME"] = self.base_env["HOME"]
        env.update({item.name: item.value for item in spec.env})
        return self._keep(
            subprocess.run(
                launcher_command(spec.command, spec.args),
                env=env,
                cwd=self.workspace,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        )

    def run(self) -> dict[str, Any]:
        """clone → task → publish as the kubelet runs them: stop at the first failing step.

        The result the operator would read: the failing step's termination message, or the
        task's exit code as a `TaskFailed` stand-in.
        """
        if self.worker("clone").returncode != 0:
            return self.result("clone")
        task = self.task()
        if task.returncode != 0:
            return {"outcome": "failed", "reason": "TaskFailed", "exitCode": task.returncode}
        self.worker("publish")
        return self.result("publish")

    def result(self, step: str) -> dict[str, Any]:
        """The termination message `step` wrote."""
        result: dict[str, Any] = json.loads(self.termination_message(step))
        return result

    def termination_message(self, step: str) -> str:
        """The raw termination message of `step`."""
        return (self.logs / step).read_text()

    def _keep(self, completed: Completed) -> Completed:
        self.outputs += [completed.stdout, completed.stderr]
        return completed
