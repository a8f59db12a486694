"""`backlogctl run GOAL.yaml`: the three steps on this machine, the task as a local process.

Progress goes to stderr; the result JSON is the last line of stdout. Exit status 0 for
`published` and `already_completed`, 65 (permanent) or 75 (retryable) for `failed`.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backlog_operator import naming
from backlog_operator.api.worker_result import ExitCode, StepResult
from backlog_operator.redact import Redactor, private_token_file
from backlog_operator.worker.context import InvalidGoalError, WorkerContext, load_goal_file
from backlog_operator.worker.failures import failed_result
from backlog_operator.worker.goal import WorkerGoal
from backlog_operator.worker.steps import (
    clone_attempt,
    configure_logging,
    emit,
    publish_attempt,
    run_task,
    task_failed,
)

log = logging.getLogger("backlog_operator.worker")

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")


def main(args: argparse.Namespace) -> int:
    """Run the goal in `args.goal` locally; see the module docstring."""
    configure_logging()
    try:
        goal = resolve_local_repository(load_goal_file(Path(args.goal)), Path(args.goal).parent)
    except InvalidGoalError as error:
        return emit(None, failed_result(error, step="clone", redactor=Redactor()))
    if args.workspace and _not_empty(Path(args.workspace)):
        log.error("workspace %s is not empty; give an empty or new folder", args.workspace)
        return int(ExitCode.USAGE)
    with (
        _token_file(args.token_file) as token_file,
        _workspace(args.workspace) as workspace,
        _private_dir() as private_dir,
    ):
        ctx = WorkerContext(
            goal=goal,
            attempt_id=args.attempt_id or naming.new_attempt_id(goal.work_name),
            workspace=workspace,
            private_dir=private_dir,
            token_file=token_file,
        )
        configure_logging(ctx)
        return run_locally(ctx)


def run_locally(ctx: WorkerContext) -> int:
    """clone → task → publish in this process; returns the exit status."""
    record = clone_attempt(ctx)
    if isinstance(record, StepResult):
        return emit(ctx, record)
    exit_code = run_task(ctx, record)
    if exit_code != 0:
        return emit(ctx, task_failed(ctx, exit_code))
    return emit(ctx, publish_attempt(ctx))


def resolve_local_repository(goal: WorkerGoal, base: Path) -> WorkerGoal:
    """A repository given as a local path is taken relative to the goal file's folder."""
    url = goal.spec.repository.url
    if "://" in url or _SCP_LIKE.match(url):
        return goal
    path = (base / url).resolve()
    if not path.exists():
        raise InvalidGoalError(f"repository {url!r} is not a URL and no folder {path} exists")
    repository = goal.spec.repository._replace(url=str(path))
    return goal._replace(spec=goal.spec._replace(repository=repository))


def _not_empty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


@contextmanager
def _workspace(path: str | None) -> Iterator[Path]:
    """The given (empty, checked by the caller) folder, or a temporary one removed afterwards."""
    if path is not None:
        workspace = Path(path).resolve()
        workspace.mkdir(parents=True, exist_ok=True)
        yield workspace
        return
    workspace = Path(tempfile.mkdtemp(prefix="backlog-run-"))
    try:
        yield workspace
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


@contextmanager
def _private_dir() -> Iterator[Path]:
    """Where `clone` leaves what `publish` relies on: a new folder (mode 0700), not the task's.

    The task is not told about it. Locally the task runs as your user and could still find
    it: only a Job (a volume the task container does not mount) keeps it out of reach.
    """
    folder = Path(tempfile.mkdtemp(prefix="backlog-private-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _token_file(path: str | None) -> Iterator[Path | None]:
    """--token-file, $BACKLOG_TOKEN_FILE, or $GITHUB_TOKEN written to a private temporary file."""
    given = path or os.environ.get("BACKLOG_TOKEN_FILE")
    if given:
        yield Path(given).resolve()
        return
    with private_token_file(os.environ.get("GITHUB_TOKEN") or None) as token_path:
        yield token_path
