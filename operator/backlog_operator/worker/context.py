"""What a worker step knows: the goal, the attempt, the workspace, where secrets and results go.

In a Job every step reads the same environment, set by the operator on each container; the
variables, their meaning and defaults are the contract in `api.worker_contract` (its module
docstring has the table, and docs/worker.md says the same for people).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from backlog_operator import naming
from backlog_operator.adapters.git import GitCredentials
from backlog_operator.api.worker_contract import (
    ATTEMPT_ID_VARIABLE,
    GOAL_FILE_VARIABLE,
    GOAL_URL_VARIABLE,
    GOAL_VARIABLE,
    PRIVATE_DIR_VARIABLE,
    REPO_DIR,
    STATE_DIR,
    TERMINATION_LOG_VARIABLE,
    TOKEN_FILE_VARIABLE,
    USAGE_FILE,
    WORKSPACE_VARIABLE,
)
from backlog_operator.api.worker_contract import PRIVATE_DIR as DEFAULT_PRIVATE_DIR
from backlog_operator.api.worker_contract import TERMINATION_LOG as DEFAULT_TERMINATION_LOG
from backlog_operator.api.worker_contract import WORKSPACE as DEFAULT_WORKSPACE
from backlog_operator.redact import Redactor
from backlog_operator.worker.goal import InvalidGoalError, WorkerGoal, goal_from_data

if TYPE_CHECKING:
    from backlog_operator.backlog.document import BacklogDocument


__all__ = [
    "InvalidGoalError",
    "WorkerContext",
    "context_from_environment",
    "load_goal_file",
    "parse_goal",
]


class WorkerContext:
    """Everything a step needs, resolved once."""

    def __init__(
        self,
        *,
        goal: WorkerGoal,
        attempt_id: str,
        workspace: Path,
        private_dir: Path,
        token_file: Path | None = None,
        termination_log: Path | None = None,
        goal_url: str | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        """The step's goal, attempt and folders; where the token and the result are."""
        self.goal = goal
        self.attempt_id = attempt_id
        self.workspace = workspace
        self.private_dir = private_dir
        self.token_file = token_file
        self.termination_log = termination_log
        self.goal_url = goal_url
        self.redactor = redactor if redactor is not None else Redactor()
        #: The backlog as `clone` read it at the base commit, for a `publish` in the same
        #: process (`backlogctl run`): see `take_base_backlog`.
        self.base_backlog: BacklogDocument | None = None

    @property
    def repo_dir(self) -> Path:
        """The clone; the task runs here."""
        return self.workspace / REPO_DIR

    @property
    def state_dir(self) -> Path:
        """What `clone` tells the task (its variables, the skip marker), outside the clone.

        The task can write here: `publish` reads nothing from it but the task's own usage
        report, as hostile input (`worker.usage_file`). What `publish` relies on is in
        `private_dir`, which the task never sees.
        """
        return self.workspace / STATE_DIR

    @property
    def usage_file(self) -> Path:
        """Where the task may write its usage (`BACKLOG_USAGE_FILE`), outside the clone."""
        return self.state_dir / USAGE_FILE

    def git_credentials(self) -> GitCredentials | None:
        """The token for git, offered only to the spec's repository host (see the adapter)."""
        if self.token_file is None:
            return None
        return GitCredentials(
            token_file=self.token_file, insecure=self.goal.spec.repository.insecure
        )

    @property
    def task_id(self) -> str | None:
        """The backlog task this goal completes, or None for a free-form goal."""
        return self.goal.spec.backlog.task_id

    @property
    def work_name(self) -> str:
        """What branches are named after: the task id, or the goal's name for a free-form goal."""
        return self.goal.work_name

    def take_base_backlog(self) -> BacklogDocument | None:
        """The backlog `clone` read in this process, once (whoever takes it may edit it)."""
        document, self.base_backlog = self.base_backlog, None
        return document

    def read_token(self) -> str | None:
        """The forge token from the mounted file (and remember it, to redact it everywhere)."""
        if self.token_file is None:
            return None
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise InvalidGoalError(
                f"cannot read the token file {self.token_file}: {error.strerror}"
            ) from None
        self.redactor.add(token)
        return token or None


def parse_goal(text: str, *, source: str) -> WorkerGoal:
    """A Goal from YAML or JSON text; InvalidGoalError names the source and the problem."""
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as error:
        raise InvalidGoalError(f"{source}: not valid YAML: {error}") from None
    if not isinstance(data, Mapping):
        raise InvalidGoalError(f"{source}: a Goal must be a mapping with a `spec`")
    kind = data.get("kind", "Goal")
    if kind != "Goal":
        raise InvalidGoalError(f"{source}: expected kind Goal, found {kind!r}")
    return goal_from_data(data, source=source)


def load_goal_file(path: Path) -> WorkerGoal:
    """Read and validate a Goal manifest from a file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidGoalError(f"{path}: cannot read: {error.strerror}") from None
    return parse_goal(text, source=str(path))


def context_from_environment(environ: Mapping[str, str] | None = None) -> WorkerContext:
    """Build the context of a step running in a Job container (see the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get(GOAL_VARIABLE):
        goal = parse_goal(env[GOAL_VARIABLE], source=f"${GOAL_VARIABLE}")
    elif env.get(GOAL_FILE_VARIABLE):
        goal = load_goal_file(Path(env[GOAL_FILE_VARIABLE]))
    else:
        raise InvalidGoalError(f"neither {GOAL_VARIABLE} nor {GOAL_FILE_VARIABLE} is set")
    attempt_id = env.get(ATTEMPT_ID_VARIABLE) or naming.new_attempt_id(goal.work_name)
    token_file = env.get(TOKEN_FILE_VARIABLE)
    context = WorkerContext(
        goal=goal,
        attempt_id=attempt_id,
        workspace=Path(env.get(WORKSPACE_VARIABLE, DEFAULT_WORKSPACE)),
        private_dir=Path(env.get(PRIVATE_DIR_VARIABLE, DEFAULT_PRIVATE_DIR)),
        token_file=Path(token_file) if token_file else None,
        termination_log=Path(env.get(TERMINATION_LOG_VARIABLE, DEFAULT_TERMINATION_LOG)),
        goal_url=env.get(GOAL_URL_VARIABLE) or None,
    )
    if context.token_file is not None and context.token_file.exists():
        context.read_token()  # learn the secret early so every later message is redacted
    return context
