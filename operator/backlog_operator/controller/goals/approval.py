"""The approval gate, operator side: a staged change stored, and the decision a person takes.

A goal with `spec.approval.required` runs its attempt as usual, but the Job's main container
stages the change instead of pushing it (`backlogctl worker stage`). Its result (outcome
`staged`) says what the change is and carries digests of the bytes the step printed in its log;
`store_staged` reads that log (`pods/log`, bounded), checks the digests, and keeps the bytes in
a ConfigMap owned by the Goal. The goal then waits in AwaitingApproval, holding its task but no
capacity slot, until `decide` finds on it (docs/operator.md, "Approval"):

- `backlog.dev/rejected` → Failed, `Rejected`;
- its time passed (`status.approval.expiresAt`) → Failed, `ApprovalExpired`;
- `backlog.dev/approved-patch` equal to the staged hash → approved: a publish-only Job
  (`approval_job`) applies exactly that change;
- any other approved-patch value → refused (`ApprovalRefused`, once per value), still waiting.

Nothing here imports kopf; the reading and writing go through the cluster adapter, off the
event loop.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

from backlog_operator.api.goal import (
    APPROVAL_EXPIRY_DEFAULT_SECONDS,
    ApprovalStatus,
    Goal,
)
from backlog_operator.api.labels import (
    ANNOTATION_APPROVED_BY,
    ANNOTATION_APPROVED_PATCH,
    ANNOTATION_REJECTED,
    ANNOTATION_REJECTED_BY,
    LABEL_GOAL_UID,
)
from backlog_operator.api.result import StagedResult, WorkerResult, failure
from backlog_operator.api.staged_log import (
    LOG_READ_BYTES,
    MAX_GZIP_BYTES,
    StagedLogError,
    digest,
    read_frames,
)
from backlog_operator.controller.goals.approval_job import (
    MANIFEST_KEY,
    PATCH_KEY,
    patch_config_map,
)
from backlog_operator.controller.status import instant
from backlog_operator.errors import AlreadyExistsError

PUBLISH_CONTAINER = "publish"
UNKNOWN_USER = "unknown"
# What is kept of who approved or rejected, and of a rejection's reason.
USER_MAX_LENGTH = 253
REASON_MAX_BYTES = 1024
UNREADABLE = "StagedPatchUnreadable"


@runtime_checkable
class PatchStore(Protocol):
    """A cluster that can read a step's log and keep a staged patch (KubeCluster can)."""

    async def pod_log(
        self, namespace: str, pod: str, container: str, *, max_bytes: int
    ) -> str | None: ...
    async def create_config_map(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...
    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def patch_config_map(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]: ...


# ------------------------------------------------------------------------- storing the change


async def store_staged(
    cluster: object,
    goal: Goal,
    result: WorkerResult,
    pod: Mapping[str, Any] | None,
    now: datetime,
) -> ApprovalStatus | WorkerResult:
    """The staged change of `result`, read from its Pod's log and stored in the Goal's patch
    ConfigMap: the goal's `status.approval`, or the attempt's failure when it cannot be."""
    staged = result.staged
    if staged is None or not result.branch:
        return failure("InvalidResult", "a staged result without its change", retryable=True)
    if not isinstance(cluster, PatchStore):
        return failure(UNREADABLE, "this operator cannot store a staged change", retryable=False)
    name = str(((pod or {}).get("metadata") or {}).get("name") or "")
    namespace = goal.metadata.namespace or "default"
    log = None
    if name:
        log = await cluster.pod_log(namespace, name, PUBLISH_CONTAINER, max_bytes=LOG_READ_BYTES)
    if log is None:
        return failure(
            UNREADABLE, "the staging step's Pod or log is gone; staging again", retryable=True
        )
    read = checked_bytes(log, staged, result.branch)
    if isinstance(read, WorkerResult):
        return read
    manifest_bytes, packed, changed = read
    config_map = patch_config_map(goal, manifest_bytes, packed)
    conflict = await _keep(cluster, goal, config_map)
    if conflict is not None:
        return conflict
    seconds = _expiry_seconds(goal)
    return ApprovalStatus(
        patch_hash=staged.patch_hash,
        base_commit=staged.base_commit,
        branch=result.branch,
        changed_files=changed,
        diffstat=staged.diffstat,
        patch_bytes=staged.patch_bytes,
        patch_config_map=config_map["metadata"]["name"],
        staged_at=instant(now),
        expires_at=instant(now + timedelta(seconds=seconds)),
    )


def _expiry_seconds(goal: Goal) -> int:
    approval = goal.spec.approval
    return approval.expires_after_seconds if approval else APPROVAL_EXPIRY_DEFAULT_SECONDS


def checked_bytes(
    log: str, staged: StagedResult, branch: str
) -> tuple[bytes, bytes, list[str]] | WorkerResult:
    """The manifest, the gzipped patch and the changed files from the log, once their digests
    are the result's and the manifest names the same change; or the failure."""
    try:
        manifest_bytes, packed = read_frames(log)
    except StagedLogError as error:
        return failure(UNREADABLE, f"{error}; staging again", retryable=True)
    if digest(manifest_bytes) != staged.manifest_digest or digest(packed) != staged.patch_digest:
        return failure(
            UNREADABLE,
            "the staged change in the log is not the one the step reported (cut or altered); "
            "staging again",
            retryable=True,
        )
    if len(packed) > MAX_GZIP_BYTES:
        return failure(
            "PatchTooLarge",
            f"the staged change is {len(packed)} bytes gzipped, over {MAX_GZIP_BYTES}",
            retryable=False,
        )
    try:
        manifest = json.loads(manifest_bytes)
        same = (
            manifest["patchHash"] == staged.patch_hash
            and manifest["baseCommit"] == staged.base_commit
            and manifest["branch"] == branch
        )
        changed = [str(path) for path in manifest.get("changedFiles") or []]
    except (ValueError, KeyError, TypeError):
        same, changed = False, []
    if not same:
        return failure(
            "InvalidResult", "the staged manifest does not name the staged change", retryable=True
        )
    return manifest_bytes, packed, changed


async def _keep(cluster: PatchStore, goal: Goal, config_map: dict[str, Any]) -> WorkerResult | None:
    """Create the patch's ConfigMap, or bring the Goal's own one (an earlier staging's) up to
    date; the failure when a ConfigMap of that name belongs to someone else."""
    metadata = config_map["metadata"]
    try:
        await cluster.create_config_map(config_map)
        return None
    except AlreadyExistsError:
        pass
    existing = await cluster.get_config_map(metadata["namespace"], metadata["name"])
    labels = ((existing or {}).get("metadata") or {}).get("labels") or {}
    if existing is not None and labels.get(LABEL_GOAL_UID) != goal.metadata.uid:
        return failure(
            "PatchConfigMapConflict",
            f"a ConfigMap named {metadata['name']} exists and does not belong to this goal",
            retryable=False,
        )
    if existing is None:  # deleted between the two calls: the next attempt creates it
        return failure(UNREADABLE, "the patch's ConfigMap vanished; staging again", retryable=True)
    await cluster.patch_config_map(
        metadata["namespace"],
        metadata["name"],
        {"data": config_map["data"], "binaryData": config_map["binaryData"]},
    )
    return None


async def patch_present(cluster: object, goal: Goal, approval: ApprovalStatus) -> bool:
    """Whether the staged patch's ConfigMap is there and holds the staged change."""
    if not isinstance(cluster, PatchStore):
        return False
    namespace = goal.metadata.namespace or "default"
    found = await cluster.get_config_map(namespace, approval.patch_config_map)
    if found is None:
        return False
    labels = (found.get("metadata") or {}).get("labels") or {}
    data = found.get("data") or {}
    try:
        manifest = json.loads(data.get(MANIFEST_KEY) or "")
        base64.b64decode((found.get("binaryData") or {})[PATCH_KEY], validate=True)
    except (ValueError, KeyError, TypeError):
        return False
    return bool(
        labels.get(LABEL_GOAL_UID) == goal.metadata.uid
        and isinstance(manifest, dict)
        and manifest.get("patchHash") == approval.patch_hash
    )


# ------------------------------------------------------------------------------ the decision


@dataclass(frozen=True)
class Decision:
    """What a goal awaiting approval comes to now (`decide`)."""

    kind: Literal["wait", "approve", "refuse", "reject", "expire"]
    by: str = UNKNOWN_USER
    text: str = ""  # the rejection's reason, or the refused value


def decide(annotations: Mapping[str, str], approval: ApprovalStatus, now: datetime) -> Decision:
    """The decision the annotations (and the time) say. A rejection wins over anything else
    (a "no" is never overtaken), then the expiry, then an approval."""
    if ANNOTATION_REJECTED in annotations:
        reason = _cut_bytes(_printable(annotations[ANNOTATION_REJECTED]), REASON_MAX_BYTES)
        return Decision("reject", _user(annotations.get(ANNOTATION_REJECTED_BY)), reason)
    if now >= approval.expires_at:
        return Decision("expire")
    approved = annotations.get(ANNOTATION_APPROVED_PATCH)
    if approved is None:
        return Decision("wait")
    if approved.strip() == approval.patch_hash:
        return Decision("approve", _user(annotations.get(ANNOTATION_APPROVED_BY)))
    return Decision("refuse", text=_cut_bytes(_printable(approved), 200))


def _user(value: str | None) -> str:
    text = _printable(value or "").strip()
    return text[:USER_MAX_LENGTH] if text else UNKNOWN_USER


def _printable(text: str) -> str:
    return "".join(char if char.isprintable() else " " for char in text)


def _cut_bytes(text: str, limit: int) -> str:
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode(errors="ignore")
