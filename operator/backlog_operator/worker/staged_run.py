"""`backlogctl run GOAL.yaml --stage` and `--apply PATCH --hash sha256:...`.

`--stage`: clone and task as usual, then `publish` as a dry run (every refusal of a real run
applies), and the commit it made is written as a staged change: the patch, and next to it a
manifest (`PATCH.json`: hash, base commit, branch, changed files, diffstat). The hash is
printed. Nothing is pushed, no pull request is opened.

`--apply`: a fresh clone; the patch is applied to the recorded base commit in a private index
(never to a work tree), and the tree it gives is checked before anything is committed: its hash
must be the given one, and, the patch being as hostile as a task, its paths must pass every
check of `publish` (allowed_paths, no `.git`, no submodule, no case collision), with the backlog
file changed only by the task's writeback. When the base branch moved since staging, the patch
must still apply to its new head (otherwise the pull request could not merge). Then the tree is
committed on the base commit, pushed as the staged branch, and the pull request opened.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from backlog_operator import naming
from backlog_operator.adapters import git as gitops
from backlog_operator.api.worker_result import StepResult
from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.backlog.model import path_allowed
from backlog_operator.worker import staging
from backlog_operator.worker.context import WorkerContext
from backlog_operator.worker.failures import StepFailure, already_completed, attempt_failure
from backlog_operator.worker.record import CloneRecord

log = logging.getLogger("backlog_operator.worker")

MANIFEST_SUFFIX = ".json"


def manifest_path(patch: Path) -> Path:
    """Where the manifest of the patch at `patch` is: `PATCH.json`."""
    return patch.with_name(patch.name + MANIFEST_SUFFIX)


def write_stage(ctx: WorkerContext, base_commit: str, result: StepResult, out: Path) -> StepResult:
    """Write the staged change of a dry run's `result` to `out` (and its manifest); the result
    to report, the hash in its message, or the failure."""
    try:
        repo = gitops.open_sealed_repository(ctx.private_dir, ctx.repo_dir)
        change = staging.stage(
            repo, base_commit=base_commit, commit=result.commit or "", branch=result.branch or ""
        )
        out.write_bytes(change.patch)
        manifest = {**change.manifest(), "taskId": ctx.work_name, "attemptId": ctx.attempt_id}
        manifest_path(out).write_text(_json(manifest), encoding="utf-8")
    except Exception as error:  # every failure must reach the result contract
        log.debug("staging failed", exc_info=True)
        return attempt_failure(ctx, error, step="publish")
    print(change.hash, flush=True)
    count = len(change.changed_files)
    message = (
        f"staged, nothing pushed: {change.hash}, {count} changed file{'s' if count != 1 else ''} "
        f"for branch {change.branch}, patch in {out}"
    )
    return result._replace(message=message, commit=None)


def _json(data: object) -> str:
    import json

    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def read_staged(patch_path: Path, given_hash: str) -> tuple[bytes, staging.Manifest]:
    """The patch (bounded) and its manifest, once the hash has a hash's form; StepFailure."""
    staging.check_hash(given_hash)
    try:
        with patch_path.open("rb") as stream:
            patch = stream.read(staging.MAX_PATCH_BYTES + 1)
        manifest_bytes = manifest_path(patch_path).read_bytes()
    except OSError as error:
        raise StepFailure(
            "InvalidPatch", f"cannot read the staged change: {error}", retryable=False
        ) from error
    staging.check_size(len(patch))
    return patch, staging.Manifest.parse(manifest_bytes)


def apply_staged(
    ctx: WorkerContext,
    record: CloneRecord,
    patch: bytes,
    manifest: staging.Manifest,
    given_hash: str,
    *,
    now: datetime | None = None,
) -> StepResult:
    """Apply, check and publish the staged change (see the module docstring); raises
    StepFailure or an adapter's error when it refuses or cannot."""
    from backlog_operator.worker.publish import publish_commit, refuse_unpublishable

    _refuse_foreign_branch(ctx, manifest.branch)
    repo = gitops.open_sealed_repository(ctx.private_dir, ctx.repo_dir)
    head = record.base_commit
    if manifest.base_commit != head:
        record = _record_at_base(ctx, repo, record, manifest.base_commit)
    tree = gitops.tree_from_patch(repo, manifest.base_commit, patch)
    entries = staging.verify(repo, manifest, tree, given_hash)  # before anything is committed
    paths = sorted(entry.path for entry in entries)
    staging.refuse_git_paths(paths)
    writeback = record.backlog_path if record.task_found else ""
    refuse_unpublishable(repo, manifest.base_commit, tree, record.allowed_paths, skip=writeback)
    if writeback in paths:
        _refuse_backlog_beyond_writeback(ctx, repo, record, manifest, tree)
    if manifest.base_commit != head:
        _refuse_conflict_with_head(repo, head, patch)
    log.info("the patch gives the approved change %s; publishing it", given_hash)
    return publish_commit(
        ctx,
        record,
        repo,
        tree=tree,
        branch=manifest.branch,
        changed_files=paths,
        now=now or datetime.now(UTC),
    )


def _refuse_foreign_branch(ctx: WorkerContext, branch: str) -> None:
    prefix = naming.task_branch_prefix(
        ctx.goal.spec.pull_request.branch_prefix_or_default(), ctx.work_name
    )
    if not branch.startswith(prefix) or naming.sanitize_ref(branch) != branch:
        raise StepFailure(
            "InvalidPatch",
            f"the staged branch {branch[:200]!r} is not one of this task's ({prefix}...); "
            "nothing was pushed",
            retryable=False,
        )


def _record_at_base(
    ctx: WorkerContext, repo: gitops.Repository, record: CloneRecord, base: str
) -> CloneRecord:
    """The clone record as of the staged base commit (fetched): its backlog's allowed_paths."""
    url = ctx.goal.spec.repository.url
    if not gitops.fetch_commit(repo, base, url=url, credentials=ctx.git_credentials()):
        raise StepFailure(
            "BaseCommitUnavailable",
            f"the staged base commit {base[:12]} is no longer on the remote (the base branch "
            "was rewritten since staging); stage the change again. Nothing was pushed",
            retryable=False,
        )
    document = _backlog_at(repo, base, record.backlog_path)
    task = document.find(ctx.task_id) if document is not None and ctx.task_id else None
    if task is None:
        return record._replace(base_commit=base, task_found=False)
    allowed = list(task.allowed_paths) if task.allowed_paths is not None else None
    return record._replace(base_commit=base, task_found=True, allowed_paths=allowed)


def _backlog_at(repo: gitops.Repository, tree: str, path: str) -> BacklogDocument | None:
    entry = gitops.entry_at(repo, tree, path)
    if entry is None or not entry.is_file:
        return None
    return BacklogDocument.parse(gitops.read_blob(repo, entry.sha), source=path)


def _refuse_backlog_beyond_writeback(
    ctx: WorkerContext,
    repo: gitops.Repository,
    record: CloneRecord,
    manifest: staging.Manifest,
    tree: str,
) -> None:
    """Where the task may not edit the backlog file, its change must be the writeback alone:
    the base's file marked completed with the values the patch's entry holds, byte for byte."""
    path = record.backlog_path
    if record.allowed_paths is None or path_allowed(path, record.allowed_paths):
        return
    base = _backlog_at(repo, manifest.base_commit, path)
    staged = _backlog_at(repo, tree, path)
    task = staged.find(ctx.task_id) if staged is not None and ctx.task_id else None
    if base is not None and task is not None and task.last_attempt_id and task.completed_at:
        base.mark_completed(
            task.id,
            attempt_id=task.last_attempt_id,
            branch=manifest.branch,
            completed_at=task.completed_at,
        )
        if staged is not None and base.render() == staged.render():
            return
    raise StepFailure(
        "PathViolation",
        f"the patch changes {path} beyond marking task {ctx.work_name} completed, and "
        f"allowed_paths {record.allowed_paths} does not cover it; nothing was pushed",
        retryable=False,
    )


def _refuse_conflict_with_head(repo: gitops.Repository, head: str, patch: bytes) -> None:
    try:
        gitops.tree_from_patch(repo, head, patch)
    except gitops.GitError as error:
        raise StepFailure(
            "BaseMoved",
            f"the base branch moved since staging (now {head[:12]}) and the staged change no "
            f"longer applies to it: {error.detail or error}; stage the change again. "
            "Nothing was pushed",
            retryable=False,
        ) from error


def apply_attempt(
    ctx: WorkerContext, record: CloneRecord, patch_path: Path, given: str
) -> StepResult:
    """`read_staged` and `apply_staged`, every failure a failed result."""
    if record.already_completed:
        return already_completed(ctx, record.base_commit)
    try:
        patch, manifest = read_staged(patch_path, given)
        return apply_staged(ctx, record, patch, manifest, given)
    except Exception as error:  # every failure must reach the result contract
        log.debug("applying the staged change failed", exc_info=True)
        return attempt_failure(ctx, error, step="publish")
