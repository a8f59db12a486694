"""The worker's three steps: `clone` → `task` → `publish`.

Each step is a function over a WorkerContext (so `backlogctl run` calls them in one process),
plus a `*_main` entry point for a Job container that reads its context from the environment,
writes its result JSON to the termination-message path, prints it as the last stdout line and
exits with the code the operator maps (see ExitCode).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import select
import shlex
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from backlog_operator.adapters import git as gitops
from backlog_operator.api.worker_contract import (
    STATE_DIR,
    TASK_ENV_FILE,
    TERMINATION_LOG,
    TERMINATION_LOG_VARIABLE,
    USAGE_FILE_VARIABLE,
    WORKSPACE,
    WORKSPACE_VARIABLE,
    launcher_command,
)
from backlog_operator.api.worker_result import ExitCode, StepResult
from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.backlog.errors import BacklogNotFoundError
from backlog_operator.redact import Redactor
from backlog_operator.worker import launcher
from backlog_operator.worker.context import WorkerContext, context_from_environment
from backlog_operator.worker.failures import Step, StepFailure, attempt_failure, failed_result
from backlog_operator.worker.record import CloneRecord
from backlog_operator.worker.usage_file import read_usage, remove_usage_file

log = logging.getLogger("backlog_operator.worker")

# What a task may see of the caller's environment in `backlogctl run`: enough to find its
# tools, nothing that could carry a credential (GITHUB_TOKEN, SSH_AUTH_SOCK, GIT_* ...).
_TASK_ENV_ALLOWLIST = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "TMPDIR", "USER")


# ---------------------------------------------------------------------------------------- clone


def clone(ctx: WorkerContext) -> CloneRecord:
    """Clone the base branch and check the backlog; raise StepFailure when that cannot be done."""
    spec = ctx.goal.spec
    ctx.read_token()  # learn the secret before anything is printed, so it is always redacted
    log.info("cloning %s at %s", spec.repository.url, spec.repository.base_branch)
    repo = gitops.clone_repository(
        spec.repository.url,
        ctx.repo_dir,
        spec.repository.base_branch,
        credentials=ctx.git_credentials(),
    )
    # Before anything untrusted runs: publish works from this copy, never from the clone's .git.
    gitops.seal(repo, ctx.private_dir)
    record = CloneRecord(base_commit=gitops.head_commit(repo), backlog_path=spec.backlog.path)
    if ctx.task_id is not None:
        record = _check_backlog(ctx, record)
    record.save(ctx.private_dir)
    if record.already_completed:
        launcher.write_skip_marker(ctx.state_dir)
    remove_usage_file(ctx.state_dir)
    launcher.write_task_environment(ctx.state_dir, task_variables(ctx, record))
    return record


def _check_backlog(ctx: WorkerContext, record: CloneRecord) -> CloneRecord:
    task_id = ctx.task_id
    try:
        document = BacklogDocument.load(ctx.repo_dir, record.backlog_path)
    except BacklogNotFoundError as error:
        warning = f"{error}; the task runs without writeback"
        log.warning("%s", warning)
        return record._replace(warnings=[warning])
    ctx.base_backlog = document  # a `publish` in this process need not read it again
    task = document.find(task_id) if task_id else None
    if task is None:
        warning = f"task {task_id!r} is not in {record.backlog_path}; it runs without writeback"
        log.warning("%s", warning)
        return record._replace(warnings=[warning])
    completed = task.status == "completed"
    if completed:
        log.info("task %s is already completed at %s", task_id, record.base_commit[:12])
    return record._replace(
        task_found=True,
        already_completed=completed,
        title=task.title or "",
        description=task.description or "",
        allowed_paths=list(task.allowed_paths) if task.allowed_paths is not None else None,
        backlog_sha256=hashlib.sha256(document.render()).hexdigest(),
    )


def clone_attempt(ctx: WorkerContext) -> CloneRecord | StepResult:
    """Clone; every failure becomes a failed result, never an exception."""
    try:
        return clone(ctx)
    except Exception as error:  # every failure must reach the result contract
        log.debug("clone failed", exc_info=True)
        return attempt_failure(ctx, error, step="clone")


# ----------------------------------------------------------------------------------------- task


def task_variables(ctx: WorkerContext, record: CloneRecord) -> dict[str, str]:
    """What the task learns about itself through its environment."""
    return {
        "BACKLOG_TASK_ID": ctx.work_name,
        "BACKLOG_TASK_TITLE": record.title,
        "BACKLOG_TASK_DESCRIPTION": record.description,
        "BACKLOG_ATTEMPT_ID": ctx.attempt_id,
        "BACKLOG_GOAL_NAME": ctx.goal.metadata.name,
        USAGE_FILE_VARIABLE: str(ctx.usage_file),
    }


def task_environment(ctx: WorkerContext, record: CloneRecord) -> dict[str, str]:
    """The task's whole environment: an allowlist of ours, the goal's env, the task variables."""
    env = {name: os.environ[name] for name in _TASK_ENV_ALLOWLIST if name in os.environ}
    env.update({item.name: item.value for item in ctx.goal.spec.task.env})
    env.update(task_variables(ctx, record))
    return env


def run_task(ctx: WorkerContext, record: CloneRecord, argv: list[str] | None = None) -> int:
    """Run the task command in the clone with no credentials; its exit code is the verdict."""
    if record.already_completed:
        log.info("task already completed; nothing to run")
        return 0
    spec = ctx.goal.spec.task
    command = argv or [*spec.command, *spec.args]
    shown = shlex.join(command)
    log.info("running the task: %s", shown if len(shown) <= 200 else shown[:199] + "…")
    try:
        process = subprocess.Popen(
            command,
            cwd=ctx.repo_dir,
            env=task_environment(ctx, record),
            stdin=subprocess.DEVNULL,
            # Its own process group, so whatever it leaves running is ended with it (below).
            start_new_session=True,
        )
    except FileNotFoundError:
        log.error("task command not found: %s", command[0])
        return 127
    try:
        return _wait(process, spec.timeout_seconds)
    except subprocess.TimeoutExpired:
        log.error("task exceeded its timeout of %ss", spec.timeout_seconds)
        return 124
    finally:
        _end_process_group(process)


def _wait(process: subprocess.Popen[bytes], timeout: float) -> int:
    """`process.wait(timeout)`, woken by the process's end rather than by polling.

    With a timeout, Popen.wait polls with sleeps that grow to 50 ms: up to that much time lost
    after every task. A pidfd (Linux 5.3 and later) is readable the moment the process ends.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # another system, an older kernel
        return process.wait(timeout=timeout)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        ended = poller.poll(timeout * 1000)
    finally:
        os.close(pidfd)
    if not ended:
        raise subprocess.TimeoutExpired(process.args, timeout)
    return process.wait()


def _end_process_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the task's process group: nothing it started may go on beside `publish`.

    As a container's end does in a Job. A process that made a session of its own escapes
    this; locally the task runs as your user anyway (see docs/worker.md).
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def task_failed(ctx: WorkerContext, exit_code: int) -> StepResult:
    """The result of an attempt whose task command failed (retryable: tasks are often flaky),
    with what the task reported it used (in a Job the operator builds this result itself, from
    the Pod, and no step reads the usage file: `publish` does not run after a failed task)."""
    result = attempt_failure(
        ctx,
        StepFailure("TaskFailed", f"the task command exited with {exit_code}", retryable=True),
        step="task",
    )
    return result._replace(usage=read_usage(ctx.state_dir))


# -------------------------------------------------------------------------------------- publish


def publish_attempt(
    ctx: WorkerContext, *, now: datetime | None = None, dry_run: bool = False
) -> StepResult:
    """Publish the task's changes (`dry_run`: commit them locally only, see `publish`); every
    failure becomes a failed result, never an exception."""
    try:
        record = CloneRecord.load(ctx.private_dir)
    except FileNotFoundError:
        return attempt_failure(
            ctx,
            StepFailure(
                "InvalidWorkspace",
                f"no clone record in {ctx.private_dir}: the clone step has not run here",
                retryable=True,
            ),
            step="publish",
        )
    # Here, not at the top: `worker clone` has no use for it.
    from backlog_operator.worker.publish import publish

    # Read before anything is published: the task's report, whatever publishing comes to.
    usage = None if record.already_completed else read_usage(ctx.state_dir)
    try:
        result = publish(ctx, record, now=now or datetime.now(UTC), dry_run=dry_run)
    except Exception as error:
        log.debug("publish failed", exc_info=True)
        result = attempt_failure(ctx, error, step="publish")
    return result if usage is None else result._replace(usage=usage)


# ------------------------------------------------------------------------------- entry points


def configure_logging(ctx: WorkerContext | None = None, *, verbose: bool = False) -> None:
    """Progress to stderr, every record scrubbed of the secrets the context knows."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("backlog %(levelname)s %(message)s"))
    if ctx is not None:
        handler.addFilter(ctx.redactor.filter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("git", "github", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def emit(ctx: WorkerContext | None, result: StepResult) -> int:
    """Write the result to the termination-message path and stdout; return the exit code."""
    text = result.to_json()
    if ctx is not None:
        text = ctx.redactor(text)
        if ctx.termination_log is not None:
            try:
                ctx.termination_log.parent.mkdir(parents=True, exist_ok=True)
                ctx.termination_log.write_text(text, encoding="utf-8")
            except OSError as error:
                log.warning("cannot write %s: %s", ctx.termination_log, error.strerror)
    print(text, flush=True)
    return int(result.exit_code)


def _context_or_result(step: Step) -> WorkerContext | StepResult:
    """The step's context, or (a bad goal or environment) its failed result."""
    try:
        return context_from_environment()
    except Exception as error:  # a bad goal is a result, not a traceback
        configure_logging()
        return failed_result(error, step=step, redactor=Redactor())


def _setup_failed(result: StepResult) -> int:
    """Report a step that could not even read its goal, termination message included."""
    path = Path(os.environ.get(TERMINATION_LOG_VARIABLE, TERMINATION_LOG))
    with contextlib.suppress(OSError):
        path.write_text(result.to_json(), encoding="utf-8")
    return emit(None, result)


def clone_main(args: argparse.Namespace) -> int:
    """`backlogctl worker clone`: the Job's first init container."""
    ctx = _context_or_result("clone")
    if isinstance(ctx, StepResult):
        return _setup_failed(ctx)
    configure_logging(ctx)
    outcome = clone_attempt(ctx)
    return emit(ctx, outcome) if isinstance(outcome, StepResult) else 0


def task_main(args: argparse.Namespace) -> int:
    """`backlogctl worker task [-- COMMAND...]`: the task step, when the task image is ours.

    Runs the same launcher as the Job's task container, so it sees what a task sees there:
    the workspace and the variables `clone` wrote for it, nothing of the private folder.
    """
    configure_logging()
    workspace = Path(os.environ.get(WORKSPACE_VARIABLE, WORKSPACE))
    if not (workspace / STATE_DIR / TASK_ENV_FILE).exists():
        log.error("no task variables in %s: run `backlogctl worker clone` first", workspace)
        return int(ExitCode.USAGE)
    argv = [part for part in (args.argv or []) if part != "--"]
    if not argv:
        ctx = _context_or_result("task")
        if isinstance(ctx, StepResult):
            return _setup_failed(ctx)
        argv = [*ctx.goal.spec.task.command, *ctx.goal.spec.task.args]
    return subprocess.run(launcher_command(argv, []), check=False).returncode


def publish_main(args: argparse.Namespace) -> int:
    """`backlogctl worker publish`: the Job's main container."""
    ctx = _context_or_result("publish")
    if isinstance(ctx, StepResult):
        return _setup_failed(ctx)
    configure_logging(ctx)
    return emit(ctx, publish_attempt(ctx))
