"""The `publish` step, as ordered small steps, over a work tree it does not trust.

Whatever ran in `task` could write anything into the workspace, its clone's `.git` included.
So `publish` takes from the workspace only the content of the work tree (files, their modes,
symbolic links as links), through the git metadata that `clone` sealed in the private folder
before the task ran; the clone record and `allowed_paths` come from there too, and it pushes
to the spec's URL alone. It never writes into the work tree: the writeback is made on the
snapshot's tree.

1. snapshot the work tree onto the base commit (`TaskTree`), refusing submodule changes,
   paths outside the task's `allowed_paths` and paths that differ only in case (permanent;
   nothing is pushed);
2. find the open pull request of this task, if the forge has one (to reuse it);
3. mark the task completed in the snapshot's backlog file;
4. commit the task's changes and the backlog change together, on the base commit;
5. push: a new branch `<prefix><task>-<attempt>`, or, when reusing an open pull request, a
   commit on its branch whose parents are the branch's head and ours (a fast-forward: the
   earlier attempt's history stays, and the pull request's diff is exactly this attempt's);
6. open the pull request (GitHub's 422 for a duplicate also ends in reuse);
7. record the pull request's number in the backlog with a follow-up commit on the branch.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from backlog_operator import naming
from backlog_operator.adapters import git as gitops
from backlog_operator.api.worker_result import Outcome, ResultPullRequest, StepResult
from backlog_operator.backlog.document import DEFAULT_MAX_BYTES, BacklogDocument
from backlog_operator.backlog.model import path_allowed
from backlog_operator.worker.context import InvalidGoalError, WorkerContext
from backlog_operator.worker.failures import StepFailure, already_completed
from backlog_operator.worker.record import CloneRecord
from backlog_operator.worker.workspace_rules import case_collisions

if TYPE_CHECKING:  # PyGithub costs a sixth of a second to import: only for provider github
    from backlog_operator.adapters.github import GitHubForge, PullRequestRef

log = logging.getLogger("backlog_operator.worker")


class _Publication:
    """What publishing has done so far (for the result)."""

    def __init__(
        self,
        *,
        branch: str,
        tree: str,
        pull_request: PullRequestRef | None,
        created: bool | None,
        warnings: list[str],
    ) -> None:
        self.branch = branch
        self.tree = tree
        self.commit = ""
        self.pull_request = pull_request
        #: Whether this attempt opened `pull_request` (False: it reused an open one).
        self.created = created
        self.backlog_updated = False
        self.changed_files: list[str] = []
        self.warnings = warnings
        #: The backlog as marked, and its file mode: the pull request number is recorded in
        #: this same document, not in a second reading of the file.
        self.backlog: BacklogDocument | None = None
        self.backlog_mode = ""


def publish(
    ctx: WorkerContext, record: CloneRecord, *, now: datetime, dry_run: bool = False
) -> StepResult:
    """Publish the attempt; raises StepFailure (or an adapter's error) when it cannot.

    `dry_run` (`backlogctl run --dry-run`): steps 1, 3 and 4 only. The commit is made in the
    private metadata and nothing else: no push, no forge call (so the branch is always a new
    one); the result names that local commit.
    """
    if record.already_completed:
        return already_completed(ctx, record.base_commit)
    repo = gitops.open_sealed_repository(ctx.private_dir, ctx.repo_dir)
    tree, task_changes = _task_tree(repo, record)
    forge = None if dry_run else _forge(ctx)
    existing = _open_pull_request(ctx, forge)
    state = _Publication(
        branch=existing.head_branch if existing else _new_branch(ctx),
        tree=tree,
        pull_request=existing,
        created=False if existing else None,
        warnings=list(record.warnings),
    )
    state.backlog_updated = _mark_completed(ctx, repo, record, state, now)
    state.changed_files = sorted(
        set(task_changes) | ({record.backlog_path} if state.backlog_updated else set())
    )
    if not state.changed_files:
        raise StepFailure(
            "NoChanges",
            "the task changed nothing and there is no backlog task to mark completed",
            retryable=False,
        )
    state.commit = gitops.commit_tree(
        repo,
        tree=state.tree,
        parents=[record.base_commit],
        message=_render(ctx, record, ctx.goal.spec.commit.message),
        **_author(ctx),
    )
    if dry_run:
        return _result(ctx, state)
    return _push_and_open(ctx, record, repo, forge, state, existing, now)


def publish_commit(
    ctx: WorkerContext,
    record: CloneRecord,
    repo: gitops.Repository,
    *,
    tree: str,
    branch: str,
    changed_files: list[str],
    now: datetime,
) -> StepResult:
    """Commit `tree` (checked by the caller: an approved staged change) on the base commit,
    push it as the new branch `branch` and open its pull request, as `publish` does."""
    gitops.load_index(repo, tree)  # the follow-up commit's writeback edits the index
    state = _Publication(
        branch=branch, tree=tree, pull_request=None, created=None, warnings=list(record.warnings)
    )
    state.changed_files = changed_files
    if ctx.task_id is not None and record.backlog_path in changed_files and record.task_found:
        document, mode = _task_backlog(repo, tree, record, ctx.task_id)
        if document.find(ctx.task_id) is not None:
            state.backlog, state.backlog_mode, state.backlog_updated = document, mode, True
    pushed = _pushed_before(ctx, repo, record, branch, tree)
    if pushed is not None:
        # An earlier try pushed this very change (its answer, or the pull request, was lost):
        # it is taken as it is, never pushed over (that would be refused as a non-fast-forward).
        log.info("%s already holds the approved change (%s); reusing it", branch, pushed[:12])
        state.commit = pushed
        forge = _forge(ctx)
        if forge is not None:
            _open_and_record(ctx, record, repo, forge, state, now)
        return _result(ctx, state)
    state.commit = gitops.commit_tree(
        repo,
        tree=tree,
        parents=[record.base_commit],
        message=_render(ctx, record, ctx.goal.spec.commit.message),
        **_author(ctx),
    )
    return _push_and_open(ctx, record, repo, _forge(ctx), state, None, now)


def _pushed_before(
    ctx: WorkerContext, repo: gitops.Repository, record: CloneRecord, branch: str, tree: str
) -> str | None:
    """The head of `branch` on the remote when it holds exactly `tree` on the base commit (or
    that commit and the follow-up that recorded the pull request's number), else None."""
    url = ctx.goal.spec.repository.url
    head = gitops.fetch_branch(repo, branch, url=url, credentials=ctx.git_credentials(), depth=3)
    if head is None:
        return None
    if _is_change_commit(repo, head, record.base_commit, tree):
        return head
    parent = _first_parent(repo, head)
    if parent is None or not _is_change_commit(repo, parent, record.base_commit, tree):
        return None
    changed = {change.path for change in gitops.tree_changes(repo, parent, head)}
    return head if changed <= {record.backlog_path} else None


def _is_change_commit(repo: gitops.Repository, commit: str, base: str, tree: str) -> bool:
    return gitops.tree_of(repo, commit) == tree and _first_parent(repo, commit) == base


def _first_parent(repo: gitops.Repository, commit: str) -> str | None:
    try:
        return gitops.commit_parents(repo, commit)[0]
    except (gitops.GitError, IndexError):
        return None


def _push_and_open(
    ctx: WorkerContext,
    record: CloneRecord,
    repo: gitops.Repository,
    forge: GitHubForge | None,
    state: _Publication,
    existing: PullRequestRef | None,
    now: datetime,
) -> StepResult:
    """Steps 5 to 7: push (onto `existing`'s branch, or a new one), open, record the number."""
    if existing is not None:
        _push_onto_open_pull_request(ctx, repo, state, existing)
        if forge is not None:  # found through the forge: it is there
            forge.add_labels(existing.number, ctx.goal.spec.pull_request.labels)
    else:
        _push_new_branch(ctx, repo, state)
        if forge is not None:
            _open_and_record(ctx, record, repo, forge, state, now)
    return _result(ctx, state)


def _task_tree(repo: gitops.Repository, record: CloneRecord) -> tuple[str, list[str]]:
    """The tree the task left (on the base commit) and the paths it changed, once checked."""
    tree = gitops.snapshot(repo)
    return tree, refuse_unpublishable(repo, record.base_commit, tree, record.allowed_paths)


def refuse_unpublishable(
    repo: gitops.AnyRepository, base: str, tree: str, allowed: list[str] | None, *, skip: str = ""
) -> list[str]:
    """The paths `tree` changes from `base`, once none is a submodule, outside `allowed`
    (`skip`, the backlog file's writeback, aside) or differing from another only in case."""
    changes = gitops.tree_changes(repo, base, tree)
    _refuse_submodule_changes(changes)
    paths = [change.path for change in changes]
    _refuse_paths_outside([path for path in paths if path != skip], allowed)
    added = [change.path for change in changes if change.old_mode == "000000"]
    if added:
        _refuse_case_collisions(gitops.tree_paths(repo, tree), added)
    return paths


def _refuse_submodule_changes(changes: list[gitops.TreeChange]) -> None:
    submodules = [change.path for change in changes if change.is_gitlink]
    if submodules:
        raise StepFailure(
            "SubmoduleChange",
            "the task added or changed submodules (a nested git repository), which publish "
            f"does not commit: {_shown(submodules)}; nothing was pushed",
            retryable=False,
        )


def _refuse_case_collisions(tree_paths: list[str], added: list[str]) -> None:
    collisions = case_collisions(tree_paths, added)
    if collisions:
        raise StepFailure(
            "CaseCollision",
            "the task added paths that differ from others only in letter case, which "
            f"case-insensitive file systems cannot check out: {_shown(collisions)}; "
            "nothing was pushed",
            retryable=False,
        )


def _shown(paths: list[str]) -> str:
    more = f" and {len(paths) - 10} more" if len(paths) > 10 else ""
    return ", ".join(paths[:10]) + more


def _refuse_paths_outside(changed: list[str], allowed: list[str] | None) -> None:
    if allowed is None:
        return
    outside = [path for path in changed if not path_allowed(path, allowed)]
    if outside:
        raise StepFailure(
            "PathViolation",
            f"the task changed paths outside allowed_paths {allowed}: {_shown(outside)}; "
            "nothing was pushed",
            retryable=False,
        )


def _forge(ctx: WorkerContext) -> GitHubForge | None:
    spec = ctx.goal.spec.pull_request
    if spec.provider == "none":
        return None
    slug = spec.repository or naming.forge_repository(ctx.goal.spec.repository.url)
    if slug is None:
        raise InvalidGoalError(
            "cannot tell owner/name of the repository from its URL; set spec.pullRequest.repository"
        )
    from backlog_operator.adapters.github import GitHubForge

    return GitHubForge(slug, ctx.read_token(), base_url=spec.api_base_url)


def _open_pull_request(ctx: WorkerContext, forge: GitHubForge | None) -> PullRequestRef | None:
    if forge is None:
        return None
    prefix = naming.task_branch_prefix(
        ctx.goal.spec.pull_request.branch_prefix_or_default(), ctx.work_name
    )
    existing = forge.find_open_pull_request(prefix, ctx.goal.spec.repository.base_branch)
    if existing is not None:
        log.info("reusing open pull request #%d (%s)", existing.number, existing.head_branch)
    return existing


def _new_branch(ctx: WorkerContext) -> str:
    return naming.branch_name(
        ctx.goal.spec.pull_request.branch_prefix_or_default(), ctx.work_name, ctx.attempt_id
    )


def _mark_completed(
    ctx: WorkerContext,
    repo: gitops.Repository,
    record: CloneRecord,
    state: _Publication,
    now: datetime,
) -> bool:
    """Mark the task completed in the backlog of `state.tree`; whether it was."""
    if not record.task_found or ctx.task_id is None:
        return False
    document, mode = _task_backlog(
        repo, state.tree, record, ctx.task_id, base=ctx.take_base_backlog()
    )
    if document.find(ctx.task_id) is None:
        # The task removed its own entry: keep its change, say so, do not resurrect the entry.
        state.warnings.append(f"the task removed {ctx.task_id!r} from the backlog; not marked")
        return False
    document.mark_completed(
        ctx.task_id,
        attempt_id=ctx.attempt_id,
        branch=state.branch,
        completed_at=now,
        pr_number=state.pull_request.number if state.pull_request else None,
    )
    state.tree = _with_file(repo, record.backlog_path, document, mode)
    state.backlog, state.backlog_mode = document, mode
    return True


def _task_backlog(
    repo: gitops.Repository,
    tree: str,
    record: CloneRecord,
    task_id: str,
    *,
    base: BacklogDocument | None = None,
) -> tuple[BacklogDocument, str]:
    """The backlog file as the task left it, and its mode; InvalidBacklog if it is no file.

    `base` is the backlog as `clone` read it, when it ran in this process: taken as it is when
    the task left the file's bytes unchanged (the blob's name tells), without reading them a
    second time. In a separate `publish`, bytes unchanged since `clone` validated them whole
    (the record's digest) are read for the task's entry alone (`BacklogDocument.for_task`);
    bytes the task changed are read and validated whole.

    Read from the snapshot's tree, never from the work tree: a link there is a link here,
    and is refused rather than followed.
    """
    path = record.backlog_path
    entry = gitops.entry_at(repo, tree, path)
    problem = None
    if entry is None:
        problem = "the task removed the backlog file (or a folder on its path)"
    elif entry.mode == "120000":
        problem = "the task replaced the backlog file with a symbolic link"
    elif entry.kind == "tree":
        problem = "the task replaced the backlog file with a folder"
    elif not entry.is_file:
        problem = "the task replaced the backlog file with something that is not a file"
    elif entry.size is not None and entry.size > DEFAULT_MAX_BYTES:
        problem = (
            f"the task grew the backlog file to {entry.size} bytes, over the limit of "
            f"{DEFAULT_MAX_BYTES}"
        )
    if problem is not None or entry is None:
        raise StepFailure(
            "InvalidBacklog", f"{path}: {problem}; nothing was pushed", retryable=False
        )
    # The task left the bytes `clone` read when their blob is the one those bytes make: known
    # without reading the blob back.
    if (
        base is not None
        and not base.changed
        and gitops.blob_id(base.render(), like=entry.sha) == entry.sha
    ):
        return base, entry.mode
    data = gitops.read_blob(repo, entry.sha)
    if record.backlog_sha256 == hashlib.sha256(data).hexdigest():
        return BacklogDocument.for_task(data, task_id, source=path), entry.mode
    return BacklogDocument.parse(data, source=path), entry.mode


def _with_file(repo: gitops.Repository, path: str, document: BacklogDocument, mode: str) -> str:
    """The sealed index's tree with `path` holding the document's bytes."""
    return gitops.put_file(repo, path, gitops.write_blob(repo, document.render()), mode)


def _push_new_branch(ctx: WorkerContext, repo: gitops.Repository, state: _Publication) -> None:
    log.info("pushing %s (%s)", state.branch, state.commit[:12])
    gitops.push(
        repo,
        state.commit,
        state.branch,
        url=ctx.goal.spec.repository.url,
        credentials=ctx.git_credentials(),
    )


def _push_onto_open_pull_request(
    ctx: WorkerContext, repo: gitops.Repository, state: _Publication, existing: PullRequestRef
) -> None:
    url = ctx.goal.spec.repository.url
    credentials = ctx.git_credentials()
    head = gitops.fetch_branch(repo, existing.head_branch, url=url, credentials=credentials)
    if head is None:
        raise StepFailure(
            "NonFastForward",
            f"the branch {existing.head_branch} of pull request #{existing.number} disappeared",
            retryable=True,
        )
    state.commit = gitops.commit_tree(
        repo,
        tree=state.commit,
        parents=[head, state.commit],
        message=f"Supersede earlier attempt with {ctx.attempt_id}",
        **_author(ctx),
    )
    log.info("updating pull request #%d on %s", existing.number, existing.head_branch)
    gitops.push(repo, state.commit, existing.head_branch, url=url, credentials=credentials)


def _open_and_record(
    ctx: WorkerContext,
    record: CloneRecord,
    repo: gitops.Repository,
    forge: GitHubForge,
    state: _Publication,
    now: datetime,
) -> None:
    spec = ctx.goal.spec.pull_request
    pull_request, created = forge.open_pull_request(
        head=state.branch,
        base=ctx.goal.spec.repository.base_branch,
        title=_render(ctx, record, spec.title)[:256],
        body=_body(ctx, record),
        draft=spec.draft,
        labels=spec.labels,
    )
    state.pull_request, state.created = pull_request, created
    log.info("%s pull request #%d", "opened" if created else "reused", pull_request.number)
    document = state.backlog
    if not state.backlog_updated or ctx.task_id is None or document is None:
        return
    document.set_pr_number(ctx.task_id, pull_request.number)
    recorded = _with_file(repo, record.backlog_path, document, state.backlog_mode)
    if recorded == gitops.tree_of(repo, state.commit):
        return  # the branch records the number already (an earlier try pushed it)
    follow_up = gitops.commit_tree(
        repo,
        tree=recorded,
        parents=[state.commit],
        message=f"Record pull request #{pull_request.number} for {ctx.task_id}",
        **_author(ctx),
    )
    try:
        gitops.push(
            repo,
            follow_up,
            state.branch,
            url=ctx.goal.spec.repository.url,
            credentials=ctx.git_credentials(),
        )
    except gitops.GitError as error:
        # The pull request exists and carries the work; only the number is missing from it.
        state.warnings.append(
            f"could not record the pull request number: {ctx.redactor(str(error))}"
        )
        return
    state.commit = follow_up


def _result(ctx: WorkerContext, state: _Publication) -> StepResult:
    pull_request = (
        ResultPullRequest(number=state.pull_request.number, url=state.pull_request.url)
        if state.pull_request
        else None
    )
    return StepResult(
        outcome=Outcome.PUBLISHED,
        task_id=ctx.work_name,
        attempt_id=ctx.attempt_id,
        branch=state.branch,
        commit=state.commit,
        pull_request=pull_request,
        pull_request_created=state.created if pull_request else None,
        changed_files=state.changed_files,
        backlog_updated=state.backlog_updated,
        warnings=[ctx.redactor(warning) for warning in state.warnings],
        step="publish",
    )


def _author(ctx: WorkerContext) -> dict[str, str]:
    commit = ctx.goal.spec.commit
    return {"author_name": commit.author_name, "author_email": commit.author_email}


def _render(ctx: WorkerContext, record: CloneRecord, template: str) -> str:
    """Fill {taskId}, {title}, {description}, {goal}, {attemptId}; other braces stay as written."""
    values = {
        "taskId": ctx.work_name,
        "title": record.title or ctx.work_name,
        "description": record.description,
        "goal": ctx.goal.label(),
        "attemptId": ctx.attempt_id,
    }
    text = template
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text.strip() or ctx.work_name


def _body(ctx: WorkerContext, record: CloneRecord) -> str:
    body = _render(ctx, record, ctx.goal.spec.pull_request.body)
    where = f"[{ctx.goal.label()}]({ctx.goal_url})" if ctx.goal_url else f"`{ctx.goal.label()}`"
    footer = f"Opened by backlog-operator for Goal {where}, attempt `{ctx.attempt_id}`."
    if record.task_found:
        footer += (
            f" It also marks task `{ctx.work_name}` completed in `{record.backlog_path}`,"
            " so the task is not picked again once this is merged."
        )
    return f"{body}\n\n---\n{footer}"
