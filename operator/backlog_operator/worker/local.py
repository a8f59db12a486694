"""`backlogctl run GOAL.yaml [--dry-run]`: the three steps on this machine, the task as a local
process.

Before the task runs, the access the run needs is checked: the clone is an authenticated read
of the remote (a remote that cannot be reached, or refuses the token, fails there); then, when
the goal's provider is `github`, a token is required and the task's open pull requests are
listed with it (GitHub refuses a bad token). A task already completed skips the check: nothing
will be published.

`--dry-run`: clone and task as usual; `publish` commits locally only (no push, no forge write)
and the change that run would have pushed, the task's work and the backlog writeback, is
printed on stdout as a unified diff, before the result.

Progress, and a failure's reason and message, go to stderr; the result JSON is the last line of
stdout. Exit status 0 for `published` and `already_completed`, 65 (permanent) or 75
(retryable) for `failed`.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backlog_operator import naming
from backlog_operator.adapters import git as gitops
from backlog_operator.api.worker_result import ExitCode, Outcome, StepResult
from backlog_operator.redact import Redactor, private_token_file
from backlog_operator.worker.context import InvalidGoalError, WorkerContext, load_goal_file
from backlog_operator.worker.failures import StepFailure, attempt_failure, failed_result
from backlog_operator.worker.goal import WorkerGoal
from backlog_operator.worker.record import CloneRecord
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
        return _report(None, failed_result(error, step="clone", redactor=Redactor()))
    if ((args.stage or args.apply) and args.dry_run) or (args.stage and args.apply):
        log.error("--dry-run, --stage and --apply go one at a time")
        return int(ExitCode.USAGE)
    if args.apply and not args.hash:
        log.error("--apply needs --hash sha256:... (the hash of the approved change)")
        return int(ExitCode.USAGE)
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
        if args.apply:
            return apply_locally(ctx, Path(args.apply), args.hash or "")
        stage_to = Path(args.out or f"{goal.work_name}.patch") if args.stage else None
        return run_locally(ctx, dry_run=args.dry_run, stage_to=stage_to)


def run_locally(ctx: WorkerContext, *, dry_run: bool = False, stage_to: Path | None = None) -> int:
    """clone → access check → task → publish in this process; returns the exit status.

    `stage_to`: publish as a dry run and write the change there as a staged change."""
    record = _cloned_with_access(ctx)
    if isinstance(record, StepResult):
        return _report(ctx, record)
    exit_code = run_task(ctx, record)
    if exit_code != 0:
        return _report(ctx, task_failed(ctx, exit_code))
    if not dry_run and stage_to is None:
        return _report(ctx, publish_attempt(ctx))
    result = publish_attempt(ctx, dry_run=True)
    if stage_to is not None and result.outcome is Outcome.PUBLISHED and result.commit:
        from backlog_operator.worker.staged_run import write_stage

        return _report(ctx, write_stage(ctx, record.base_commit, result, stage_to))
    if result.outcome is Outcome.PUBLISHED and result.commit:
        print_dry_run_diff(ctx, record.base_commit, result.commit)
        result = result._replace(message=_dry_run_message(ctx, result))
    return _report(ctx, result)


def apply_locally(ctx: WorkerContext, patch: Path, given_hash: str) -> int:
    """clone → access check → apply the staged change at `patch` (no task runs)."""
    from backlog_operator.worker import staged_run

    record = _cloned_with_access(ctx)
    if isinstance(record, StepResult):
        return _report(ctx, record)
    return _report(ctx, staged_run.apply_attempt(ctx, record, patch, given_hash))


def _cloned_with_access(ctx: WorkerContext) -> CloneRecord | StepResult:
    """Clone, then check the token and the forge before anything runs (a task already
    completed publishes nothing: no check); the record, or the failed result."""
    record = clone_attempt(ctx)
    if isinstance(record, StepResult) or record.already_completed:
        return record
    refused = check_access(ctx)
    return record if refused is None else refused


def _report(ctx: WorkerContext | None, result: StepResult) -> int:
    """`emit` the result (JSON, the last line of stdout) and, for the person who ran this, a
    failure's reason and message on stderr as well."""
    if result.outcome is Outcome.FAILED:
        log.error("%s step failed: %s: %s", result.step or "run", result.reason, result.message)
    return emit(ctx, result)


def check_access(ctx: WorkerContext) -> StepResult | None:
    """None when the token and the forge let this run publish; else the failed result (step
    `clone`: the task has not run). See the module docstring."""
    try:
        _check_access(ctx)
    except Exception as error:  # every failure must reach the result contract
        log.debug("access check failed", exc_info=True)
        return attempt_failure(ctx, error, step="clone")
    return None


def _check_access(ctx: WorkerContext) -> None:
    spec = ctx.goal.spec
    token = ctx.read_token()
    github = spec.pull_request.provider != "none"
    if github and token is None:
        raise StepFailure(
            "CredentialsUnavailable",
            "the goal opens pull requests on GitHub, which needs a token: give --token-file, "
            "$BACKLOG_TOKEN_FILE or $GITHUB_TOKEN (or set spec.pullRequest.provider to none)",
            retryable=False,
        )
    if github:
        _check_forge(ctx, token)


def _check_forge(ctx: WorkerContext, token: str | None) -> None:
    """List the task's open pull requests with the token: a read that GitHub refuses (401) for a
    bad token, and that tells what a real run would reuse."""
    from backlog_operator.adapters.github import GitHubForge  # PyGithub: only for github

    spec = ctx.goal.spec
    slug = spec.pull_request.repository or naming.forge_repository(spec.repository.url)
    if slug is None:
        raise InvalidGoalError(
            "cannot tell owner/name of the repository from its URL; set spec.pullRequest.repository"
        )
    prefix = naming.task_branch_prefix(spec.pull_request.branch_prefix_or_default(), ctx.work_name)
    with GitHubForge(slug, token, base_url=spec.pull_request.api_base_url) as forge:
        existing = forge.find_open_pull_request(prefix, spec.repository.base_branch)
    if existing is not None:
        log.info(
            "pull request #%d (%s) is open for this task: a run adds its change to it",
            existing.number,
            existing.head_branch,
        )


def print_dry_run_diff(ctx: WorkerContext, base_commit: str, commit: str) -> None:
    """The change a real run would push (`base_commit`..`commit`), as a unified diff on stdout."""
    from backlog_operator.worker.diff import unified_diff  # difflib: only for a dry run

    try:
        repo = gitops.open_sealed_repository(ctx.private_dir, ctx.repo_dir)
        diff = unified_diff(repo, base_commit, commit)
    except gitops.GitError as error:  # the result still says what would be pushed
        log.warning("cannot show the change: %s", error)
        return
    sys.stdout.write(ctx.redactor(diff))
    sys.stdout.flush()


def _dry_run_message(ctx: WorkerContext, result: StepResult) -> str:
    count = len(result.changed_files)
    also = " and open a pull request" if ctx.goal.spec.pull_request.provider != "none" else ""
    return (
        f"dry run, nothing pushed: a run would push {count} changed "
        f"file{'s' if count != 1 else ''} on branch {result.branch}{also}"
    )


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
