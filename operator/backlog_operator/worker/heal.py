"""Healing an open pull request that no longer merges because its backlog file conflicts.

Several open pull requests of one backlog all edit the backlog file; where tasks sit close
together (no blank line between them, or one flow mapping per task) merging one makes the
next conflict in that file alone. Healing merges the base branch into the pull request's
branch, the way a person would, and resolves the backlog file by redoing the task's own
writeback on the base's version of it:

1. a fresh bare repository in the private folder fetches the base branch and the pull
   request's branch from the spec's URL (the same credential scoping and configuration rules
   as every other git command of the worker; nothing is checked out, and the merged commits'
   `.gitattributes` choose no merge driver);
2. a branch that already contains the base, or merges cleanly, needs nothing: `NothingToHeal`;
3. a conflict in any file but the backlog file is not resolved: `Conflicted`, with the
   conflicting paths, nothing pushed;
4. a conflict in the backlog file alone: the task's entry must still be in the base's backlog
   (else `TaskNotInBase`) and not completed there (else `CompletedInBase`); the pull request's
   own backlog change must be exactly the task's writeback (replayed on the branch's fork
   point and compared byte for byte, else `Conflicted`); that same writeback is then made on
   the base's backlog, and a merge commit (parents: the branch's head, the base) is pushed as
   a fast-forward of the branch: `Healed`. No force push and no rebase: the pull request's
   diff stays this task's change.

`heal_attempt` is the operation (every failure a result); `heal_main` is the Job step
(`backlogctl worker heal --branch BRANCH`) and `main` the local command
(`backlogctl heal GOAL.yaml --branch BRANCH`).
"""

# No `from __future__ import annotations` here: `typing.NamedTuple` would compile each of its
# fields' annotations from their text, a noticeable part of a step's start.

import argparse
import contextlib
import logging
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from backlog_operator import naming
from backlog_operator.adapters import git as gitops
from backlog_operator.api.worker_result import Outcome, StepResult, failed
from backlog_operator.backlog.document import DEFAULT_MAX_BYTES, BacklogDocument
from backlog_operator.backlog.errors import BacklogError
from backlog_operator.backlog.model import TaskStatus
from backlog_operator.redact import Redactor, private_token_file
from backlog_operator.worker.context import WorkerContext
from backlog_operator.worker.failures import StepFailure, attempt_failure, failed_result

log = logging.getLogger("backlog_operator.worker")

#: The bare repository a heal works in, inside the private folder.
HEAL_GIT_DIR = "heal.git"
#: At most this many conflicting paths are named in a result (its message and its list).
MAX_PATHS_SHOWN = 50


class _Writeback(NamedTuple):
    """The writeback a pull request made to its task, as read back from its branch."""

    task_id: str
    attempt_id: str
    branch: str
    completed_at: datetime
    pr_number: int | None
    #: The number recorded after marking (publish's follow-up commit), not while marking.
    number_later: bool

    def apply(self, document: BacklogDocument) -> None:
        """Make this writeback on `document` (raises BacklogError where it cannot be made)."""
        document.mark_completed(
            self.task_id,
            attempt_id=self.attempt_id,
            branch=self.branch,
            completed_at=self.completed_at,
            pr_number=None if self.number_later else self.pr_number,
        )
        if self.number_later and self.pr_number is not None:
            document.set_pr_number(self.task_id, self.pr_number)


class _Heads(NamedTuple):
    """The two commits a heal merges, in the bare repository it works in."""

    repo: gitops.Repository
    branch: str
    head: str
    base: str


def heal_attempt(ctx: WorkerContext, branch: str) -> StepResult:
    """Heal the pull request on `branch` (see the module docstring); never raises."""
    try:
        return heal(ctx, branch)
    except Exception as error:  # every failure must reach the result contract
        log.debug("heal failed", exc_info=True)
        result = attempt_failure(ctx, error, step="heal")
        return result._replace(branch=branch)


def heal(ctx: WorkerContext, branch: str) -> StepResult:
    """Merge the base branch into `branch`, resolving a backlog-only conflict; raises
    StepFailure or an adapter's error when it cannot even try."""
    heads = _fetch(ctx, _checked_branch(ctx, branch))
    if gitops.is_ancestor(heads.repo, heads.base, heads.head):
        return _nothing_to_heal(ctx, heads, "already contains")
    merged = gitops.merge_trees(heads.repo, heads.head, heads.base)
    if not merged.conflicted:
        return _nothing_to_heal(ctx, heads, "merges cleanly with")
    path = ctx.goal.spec.backlog.path
    if merged.conflicted != [path] or ctx.task_id is None:
        return _conflicted(ctx, heads, merged.conflicted, "resolve them by hand")
    base_backlog = _backlog_at(heads.repo, heads.base, path)
    task = base_backlog[0].find(ctx.task_id) if base_backlog is not None else None
    if base_backlog is None or task is None:
        return _task_gone(ctx, heads)
    if task.status == TaskStatus.COMPLETED:
        return _completed_in_base(ctx, heads)
    writeback = _pull_request_writeback(ctx.task_id, heads, path)
    if writeback is None:
        return _conflicted(
            ctx,
            heads,
            merged.conflicted,
            "the pull request changes the backlog beyond marking its task completed",
        )
    document, mode = base_backlog
    writeback.apply(document)
    tree = gitops.tree_with_file(
        heads.repo, merged.tree, path, gitops.write_blob(heads.repo, document.render()), mode
    )
    return _push_merge(ctx, heads, tree)


def _checked_branch(ctx: WorkerContext, branch: str) -> str:
    """`branch`, when it is one of this task's branches (a heal pushes to nothing else)."""
    spec = ctx.goal.spec
    name = branch.removeprefix("refs/heads/")
    prefix = naming.task_branch_prefix(spec.pull_request.branch_prefix_or_default(), ctx.work_name)
    if not name.startswith(prefix) or name == spec.repository.base_branch:
        raise StepFailure(
            "InvalidBranchName",
            f"{name!r} is not a branch of task {ctx.work_name} (those start with {prefix!r}); "
            "nothing was pushed",
            retryable=False,
        )
    return name


def _fetch(ctx: WorkerContext, branch: str) -> _Heads:
    """A new bare repository holding the base branch and `branch`, whole (for their fork point)."""
    spec = ctx.goal.spec.repository
    ctx.read_token()  # learn the secret before anything is printed, so it is always redacted
    repo = gitops.init_bare_repository(ctx.private_dir / HEAL_GIT_DIR, spec.url)
    credentials = ctx.git_credentials()
    heads: dict[str, str] = {}
    for name in (spec.base_branch, branch):
        log.info("fetching %s", name)
        sha = gitops.fetch_branch(repo, name, url=spec.url, credentials=credentials, depth=None)
        if sha is None:
            raise StepFailure(
                "BranchNotFound",
                f"the branch {name} does not exist on the remote; nothing was pushed",
                retryable=False,
            )
        heads[name] = sha
    return _Heads(repo, branch, head=heads[branch], base=heads[spec.base_branch])


def _backlog_at(
    repo: gitops.Repository, commit: str, path: str
) -> tuple[BacklogDocument, str] | None:
    """The backlog file in `commit` and its mode; None when there is no such file."""
    entry = gitops.entry_at(repo, commit, path)
    if entry is None or not entry.is_file:
        return None
    if entry.size is not None and entry.size > DEFAULT_MAX_BYTES:
        raise StepFailure(
            "InvalidBacklog",
            f"{path} at {commit[:12]} is {entry.size} bytes, over the limit of "
            f"{DEFAULT_MAX_BYTES}; nothing was pushed",
            retryable=False,
        )
    return BacklogDocument.parse(gitops.read_blob(repo, entry.sha), source=path), entry.mode


def _pull_request_writeback(task_id: str, heads: _Heads, path: str) -> _Writeback | None:
    """The task's writeback, when the branch's change to the backlog is exactly that.

    The task's fields as the branch has them, replayed on the backlog at the fork point the way
    `publish` makes them (the number while marking, or in a follow-up commit), must give the
    branch's backlog byte for byte. None otherwise: the branch changed more than its task.
    """
    fork = gitops.merge_base(heads.repo, heads.head, heads.base)
    head_entry = gitops.entry_at(heads.repo, heads.head, path)
    fork_entry = gitops.entry_at(heads.repo, fork, path) if fork is not None else None
    if head_entry is None or fork_entry is None or not head_entry.is_file:
        return None
    wanted = gitops.read_blob(heads.repo, head_entry.sha)
    original = gitops.read_blob(heads.repo, fork_entry.sha)
    try:
        task = BacklogDocument.parse(wanted, source=path).find(task_id)
    except BacklogError:
        return None
    if task is None or task.status != TaskStatus.COMPLETED or task.completed_at is None:
        return None
    if not task.last_attempt_id or not task.branch_name:
        return None
    for number_later in (False, True):
        candidate = _Writeback(
            task_id,
            task.last_attempt_id,
            task.branch_name,
            task.completed_at,
            task.pr_number,
            number_later,
        )
        if _gives(candidate, original, wanted, path):
            return candidate
    return None


def _gives(writeback: _Writeback, original: bytes, wanted: bytes, path: str) -> bool:
    """Whether `writeback` made on `original` gives `wanted`."""
    try:
        document = BacklogDocument.parse(original, source=path)
        writeback.apply(document)
    except (BacklogError, ValueError):  # ValueError: a completed_at without a time zone
        return False
    return document.render() == wanted


def _push_merge(ctx: WorkerContext, heads: _Heads, tree: str) -> StepResult:
    """Commit the merge onto the branch's head and push it (a fast-forward); the result."""
    spec = ctx.goal.spec
    base_branch = spec.repository.base_branch
    commit = gitops.commit_tree(
        heads.repo,
        tree=tree,
        parents=[heads.head, heads.base],
        message=(
            f"Merge {base_branch} into {heads.branch}\n\n"
            f"The backlog conflicted: {ctx.task_id} is marked completed again on "
            f"{base_branch}'s {spec.backlog.path}."
        ),
        author_name=spec.commit.author_name,
        author_email=spec.commit.author_email,
    )
    log.info("pushing the merge of %s onto %s (%s)", base_branch, heads.branch, commit[:12])
    # No lease, no force: the push is refused unless it fast-forwards the branch.
    gitops.push(
        heads.repo, commit, heads.branch, url=spec.repository.url, credentials=ctx.git_credentials()
    )
    changes = gitops.tree_changes(heads.repo, heads.base, commit)
    return StepResult(
        outcome=Outcome.PUBLISHED,
        reason="Healed",
        message=(
            f"merged {base_branch} ({heads.base[:12]}) into {heads.branch}: only "
            f"{spec.backlog.path} conflicted, and the task is marked completed on its current "
            "version"
        ),
        task_id=ctx.work_name,
        attempt_id=ctx.attempt_id,
        branch=heads.branch,
        commit=commit,
        changed_files=sorted(change.path for change in changes),
        backlog_updated=True,
        step="heal",
    )


def _nothing_to_heal(ctx: WorkerContext, heads: _Heads, how: str) -> StepResult:
    base_branch = ctx.goal.spec.repository.base_branch
    return StepResult(
        outcome=Outcome.PUBLISHED,
        reason="NothingToHeal",
        message=f"{heads.branch} {how} {base_branch} ({heads.base[:12]}); nothing was pushed",
        task_id=ctx.work_name,
        attempt_id=ctx.attempt_id,
        branch=heads.branch,
        commit=heads.head,
        step="heal",
    )


def _conflicted(ctx: WorkerContext, heads: _Heads, paths: list[str], why: str) -> StepResult:
    shown = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
    base_branch = ctx.goal.spec.repository.base_branch
    return failed(
        "Conflicted",
        ctx.redactor(
            f"merging {base_branch} ({heads.base[:12]}) into {heads.branch} conflicts in "
            f"{shown}: {why}; nothing was pushed"
        ),
        retryable=False,
        step="heal",
        task_id=ctx.work_name,
        attempt_id=ctx.attempt_id,
        branch=heads.branch,
        commit=heads.head,
        conflicted_files=paths[:MAX_PATHS_SHOWN],
    )


def _task_gone(ctx: WorkerContext, heads: _Heads) -> StepResult:
    spec = ctx.goal.spec
    return failed(
        "TaskNotInBase",
        f"task {ctx.task_id} is no longer in {spec.backlog.path} on "
        f"{spec.repository.base_branch} ({heads.base[:12]}); nothing was pushed",
        retryable=False,
        step="heal",
        task_id=ctx.work_name,
        attempt_id=ctx.attempt_id,
        branch=heads.branch,
        commit=heads.head,
    )


def _completed_in_base(ctx: WorkerContext, heads: _Heads) -> StepResult:
    spec = ctx.goal.spec
    return StepResult(
        outcome=Outcome.ALREADY_COMPLETED,
        reason="CompletedInBase",
        message=(
            f"task {ctx.task_id} is already completed on {spec.repository.base_branch} "
            f"({heads.base[:12]}); this pull request is not needed, nothing was pushed"
        ),
        task_id=ctx.work_name,
        attempt_id=ctx.attempt_id,
        branch=heads.branch,
        commit=heads.head,
        step="heal",
    )


# ------------------------------------------------------------------------------- entry points


def heal_main(args: argparse.Namespace) -> int:
    """`backlogctl worker heal --branch BRANCH`: a heal Job's container."""
    from backlog_operator.worker.context import context_from_environment
    from backlog_operator.worker.steps import configure_logging, emit

    try:
        ctx = context_from_environment()
    except Exception as error:  # a bad goal is a result, not a traceback
        configure_logging()
        return emit(None, failed_result(error, step="heal", redactor=_no_secrets()))
    configure_logging(ctx)
    return emit(ctx, heal_attempt(ctx, args.branch))


def main(args: argparse.Namespace) -> int:
    """`backlogctl heal GOAL.yaml --branch BRANCH`: heal on this machine, in a temporary folder.

    The result JSON is the last line of stdout; the exit status is the result's exit code.
    """
    import tempfile

    from backlog_operator.worker import local
    from backlog_operator.worker.context import InvalidGoalError, load_goal_file
    from backlog_operator.worker.steps import configure_logging, emit

    configure_logging()
    try:
        goal = load_goal_file(Path(args.goal))
        goal = local.resolve_local_repository(goal, Path(args.goal).parent)
    except InvalidGoalError as error:
        return emit(None, failed_result(error, step="heal", redactor=_no_secrets()))
    with (
        _token_file(args.token_file) as token_file,
        tempfile.TemporaryDirectory(prefix="backlog-heal-") as private_dir,
    ):
        ctx = WorkerContext(
            goal=goal,
            attempt_id=args.attempt_id or naming.new_attempt_id(goal.work_name),
            workspace=Path(private_dir),
            private_dir=Path(private_dir),
            token_file=token_file,
        )
        configure_logging(ctx)
        return emit(ctx, heal_attempt(ctx, args.branch))


def _no_secrets() -> Redactor:
    return Redactor()


@contextlib.contextmanager
def _token_file(path: str | None) -> Iterator[Path | None]:
    """--token-file, $BACKLOG_TOKEN_FILE, or $GITHUB_TOKEN in a private temporary file (as
    `backlogctl run` takes it)."""
    given = path or os.environ.get("BACKLOG_TOKEN_FILE")
    if given:
        yield Path(given).resolve()
        return
    with private_token_file(os.environ.get("GITHUB_TOKEN") or None) as token_path:
        yield token_path
