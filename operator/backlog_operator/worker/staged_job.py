"""The approval gate's steps in a Job: `backlogctl worker stage` and `backlogctl worker apply`.

`worker stage` is the main container of an attempt whose goal requires approval, in place of
`publish`: the same `publish` as a dry run (every refusal applies, nothing is pushed, no forge
is asked, so it is given no token), then the commit it made is staged (`worker.staging`). The
manifest and the gzipped patch are printed on stdout between frame lines (`api.staged_log`),
and the result, outcome `staged`, carries the hash, base, branch, diffstat and both digests.

`worker apply --hash sha256:... --staged DIR` is the one container of the publish-only Job
that runs once a person approved: it clones the base branch, reads the staged change from DIR
(the Goal's patch ConfigMap, mounted read-only: `patch.gz` and `manifest.json`), and applies,
checks and publishes it as `backlogctl run --apply` does (`worker.staged_run`). A ConfigMap that
is gone (its optional volume is then empty) fails with `StagedPatchMissing`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from backlog_operator.adapters import git as gitops
from backlog_operator.api.staged_log import (
    MAX_GZIP_BYTES,
    MAX_MANIFEST_BYTES,
    StagedLogError,
    digest,
    frame_lines,
    gunzip_patch,
    gzip_patch,
)
from backlog_operator.api.worker_result import Outcome, StepResult
from backlog_operator.worker import staging
from backlog_operator.worker.context import WorkerContext
from backlog_operator.worker.failures import StepFailure, already_completed, attempt_failure
from backlog_operator.worker.record import CloneRecord
from backlog_operator.worker.steps import (
    _context_or_result,
    _setup_failed,
    clone_attempt,
    configure_logging,
    emit,
    publish_attempt,
)

log = logging.getLogger("backlog_operator.worker")

PATCH_FILE = "patch.gz"
MANIFEST_FILE = "manifest.json"


# ----------------------------------------------------------------------------------- stage


def stage_attempt(ctx: WorkerContext) -> tuple[StepResult, list[str]]:
    """`publish` as a dry run, then its commit staged: the result, and the frame lines that
    carry the manifest and the patch (none unless the outcome is `staged`)."""
    result = publish_attempt(ctx, dry_run=True)
    if result.outcome is not Outcome.PUBLISHED or not result.commit:
        return result, []
    try:
        record = CloneRecord.load(ctx.private_dir)
        repo = gitops.open_sealed_repository(ctx.private_dir, ctx.repo_dir)
        change = staging.stage(
            repo, base_commit=record.base_commit, commit=result.commit, branch=result.branch or ""
        )
        manifest = {**change.manifest(), "taskId": ctx.work_name, "attemptId": ctx.attempt_id}
        manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        packed = gzip_patch(change.patch)
        _check_stored_size(len(packed), len(manifest_bytes))
    except Exception as error:  # every failure must reach the result contract
        log.debug("staging failed", exc_info=True)
        return attempt_failure(ctx, error, step="publish"), []
    staged = _staged_fields(change, packed, manifest_bytes)
    count = len(change.changed_files)
    message = (
        f"staged for approval, nothing pushed: {change.hash}, {count} changed "
        f"file{'s' if count != 1 else ''} for branch {change.branch}"
    )
    staged_result = result._replace(
        outcome=Outcome.STAGED,
        commit=None,
        changed_files=change.changed_files,
        message=message,
        staged=staged,
    )
    return staged_result, list(frame_lines(manifest_bytes, packed))


def _check_stored_size(gzip_bytes: int, manifest_bytes: int) -> None:
    """PatchTooLarge (permanent) when the stored ConfigMap would not fit the API's 1 MiB."""
    if gzip_bytes > MAX_GZIP_BYTES or manifest_bytes > MAX_MANIFEST_BYTES:
        raise StepFailure(
            "PatchTooLarge",
            f"the change is {gzip_bytes} bytes gzipped (manifest {manifest_bytes}), over the "
            f"{MAX_GZIP_BYTES} a staged change may be stored in; nothing was pushed",
            retryable=False,
        )


def _staged_fields(
    change: staging.StagedChange, packed: bytes, manifest_bytes: bytes
) -> dict[str, Any]:
    """The result's `staged` (camelCase, see docs/worker.md)."""
    insertions = sum(int(item["added"] or 0) for item in change.diffstat)
    deletions = sum(int(item["deleted"] or 0) for item in change.diffstat)
    return {
        "patchHash": change.hash,
        "baseCommit": change.base_commit,
        "diffstat": {
            "files": len(change.changed_files),
            "insertions": insertions,
            "deletions": deletions,
        },
        "patchBytes": len(change.patch),
        "patchGzipBytes": len(packed),
        "patchDigest": digest(packed),
        "manifestDigest": digest(manifest_bytes),
    }


def stage_main(args: argparse.Namespace) -> int:
    """`backlogctl worker stage`: the main container of an attempt awaiting approval."""
    ctx = _context_or_result("publish")
    if isinstance(ctx, StepResult):
        return _setup_failed(ctx)
    configure_logging(ctx)
    result, frames = stage_attempt(ctx)
    sys.stderr.flush()  # the log lines before the frames, never between them
    if frames:
        sys.stdout.write("".join(f"{line}\n" for line in frames))
        sys.stdout.flush()
    return emit(ctx, result)


# ----------------------------------------------------------------------------------- apply


def read_mounted(folder: Path) -> tuple[bytes, staging.Manifest]:
    """The staged patch and its manifest from the mounted ConfigMap's files; StepFailure
    StagedPatchMissing when they are not there, InvalidPatch when they are no staged change."""
    try:
        with (folder / PATCH_FILE).open("rb") as stream:
            packed = stream.read(MAX_GZIP_BYTES + 1)
        with (folder / MANIFEST_FILE).open("rb") as stream:
            manifest = stream.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise StepFailure(
            "StagedPatchMissing",
            "the staged change's ConfigMap is gone (or was emptied); nothing was pushed: "
            "run the goal again to stage a new change",
            retryable=False,
        ) from None
    except OSError as error:
        raise StepFailure(
            "InvalidPatch", f"cannot read the staged change: {error.strerror}", retryable=False
        ) from None
    if len(packed) > MAX_GZIP_BYTES:
        staging.check_size(staging.MAX_PATCH_BYTES + 1)
    try:
        patch = gunzip_patch(packed, limit=staging.MAX_PATCH_BYTES)
    except StagedLogError as error:
        raise StepFailure("InvalidPatch", f"{error}; nothing was pushed", retryable=False) from None
    return patch, staging.Manifest.parse(manifest)


def apply_attempt(ctx: WorkerContext, folder: Path, given_hash: str) -> StepResult:
    """clone, then apply the staged change in `folder` if its tree hashes to `given_hash`;
    every failure a failed result."""
    from backlog_operator.worker.staged_run import apply_staged

    record = clone_attempt(ctx)
    if isinstance(record, StepResult):
        return record
    if record.already_completed:
        return already_completed(ctx, record.base_commit)
    try:
        staging.check_hash(given_hash)
        patch, manifest = read_mounted(folder)
        return apply_staged(ctx, record, patch, manifest, given_hash)
    except Exception as error:  # every failure must reach the result contract
        log.debug("applying the staged change failed", exc_info=True)
        return attempt_failure(ctx, error, step="publish")


def apply_main(args: argparse.Namespace) -> int:
    """`backlogctl worker apply --hash sha256:... --staged DIR`: the publish-only Job."""
    ctx = _context_or_result("publish")
    if isinstance(ctx, StepResult):
        return _setup_failed(ctx)
    configure_logging(ctx)
    return emit(ctx, apply_attempt(ctx, Path(args.staged), args.hash))
