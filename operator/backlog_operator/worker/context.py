"""What a worker step knows: the goal, the attempt, the workspace, where secrets and results go.

In a Job every step reads the same environment (set by the operator on each container):

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
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from backlog_operator import naming
from backlog_operator.adapters.git import GitCredentials
from backlog_operator.api.common import describe_validation_error
from backlog_operator.api.goal import Goal
from backlog_operator.redact import Redactor

DEFAULT_WORKSPACE = "/workspace"
DEFAULT_PRIVATE_DIR = "/private"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
REPO_DIR = "repo"
STATE_DIR = ".backlog-state"


class InvalidGoalError(ValueError):
    """The goal (or the worker's environment) is unusable: a permanent failure."""


@dataclass
class WorkerContext:
    """Everything a step needs, resolved once."""

    goal: Goal
    attempt_id: str
    workspace: Path
    private_dir: Path
    token_file: Path | None = None
    termination_log: Path | None = None
    goal_url: str | None = None
    redactor: Redactor = field(default_factory=Redactor)

    @property
    def repo_dir(self) -> Path:
        """The clone; the task runs here."""
        return self.workspace / REPO_DIR

    @property
    def state_dir(self) -> Path:
        """What `clone` tells the task (its variables, the skip marker), outside the clone.

        The task can write here: `publish` reads nothing from it. What `publish` relies on is
        in `private_dir`, which the task never sees.
        """
        return self.workspace / STATE_DIR

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
        return self.task_id or self.goal.metadata.name

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


def parse_goal(text: str, *, source: str) -> Goal:
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
    try:
        return Goal.model_validate(dict(data))
    except ValueError as error:
        raise InvalidGoalError(
            f"{source}: invalid Goal: {describe_validation_error(error)}"
        ) from None


def load_goal_file(path: Path) -> Goal:
    """Read and validate a Goal manifest from a file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidGoalError(f"{path}: cannot read: {error.strerror}") from None
    return parse_goal(text, source=str(path))


def context_from_environment(environ: Mapping[str, str] | None = None) -> WorkerContext:
    """Build the context of a step running in a Job container (see the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get("BACKLOG_GOAL"):
        goal = parse_goal(env["BACKLOG_GOAL"], source="$BACKLOG_GOAL")
    elif env.get("BACKLOG_GOAL_FILE"):
        goal = load_goal_file(Path(env["BACKLOG_GOAL_FILE"]))
    else:
        raise InvalidGoalError("neither BACKLOG_GOAL nor BACKLOG_GOAL_FILE is set")
    attempt_id = env.get("BACKLOG_ATTEMPT_ID") or naming.new_attempt_id(
        goal.spec.backlog.task_id or goal.metadata.name
    )
    token_file = env.get("BACKLOG_TOKEN_FILE")
    context = WorkerContext(
        goal=goal,
        attempt_id=attempt_id,
        workspace=Path(env.get("BACKLOG_WORKSPACE", DEFAULT_WORKSPACE)),
        private_dir=Path(env.get("BACKLOG_PRIVATE_DIR", DEFAULT_PRIVATE_DIR)),
        token_file=Path(token_file) if token_file else None,
        termination_log=Path(env.get("BACKLOG_TERMINATION_LOG", DEFAULT_TERMINATION_LOG)),
        goal_url=env.get("BACKLOG_GOAL_URL") or None,
    )
    if context.token_file is not None and context.token_file.exists():
        context.read_token()  # learn the secret early so every later message is redacted
    return context


def goal_to_environment(goal: Goal) -> str:
    """The JSON the operator puts in `BACKLOG_GOAL` (metadata and spec only)."""
    payload = {
        "apiVersion": goal.api_version,
        "kind": goal.kind,
        "metadata": goal.metadata.model_dump(
            by_alias=True, exclude_none=True, mode="json", include={"name", "namespace", "uid"}
        ),
        "spec": goal.spec.to_wire(),
    }
    return json.dumps(payload, separators=(",", ":"))
