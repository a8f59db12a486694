"""The publish-only Job of an approved staged change, and the patch's ConfigMap. Pure.

One Pod, one container, `publish`: `backlogctl worker apply` clones the base branch, applies
exactly the staged patch (mounted read-only from the Goal's patch ConfigMap) on the recorded
base commit, checks that the tree hashes to the approved hash before committing, then pushes
and opens the pull request as `publish` does. The token is mounted into that container only,
and the Pod has the same hardening as every worker Pod (no service-account token, non-root,
read-only root, all capabilities dropped). The ConfigMap's volume is optional: one that is gone
gives an empty folder, and the step fails `StagedPatchMissing` rather than the Pod waiting for
a mount that cannot happen.

Attempts of the publish-only Job are counted from 1 again after the approval (their own retry
budget); their Jobs and Pods carry the attempt label `p<n>`, so they are never mistaken for the
staging attempts' (`publish_attempt_label`).
"""

from __future__ import annotations

from typing import Any

from backlog_operator import naming
from backlog_operator.api.goal import Goal, GoalStatus
from backlog_operator.api.labels import LABEL_ATTEMPT, LABEL_GOAL_UID, LABEL_MANAGED_BY, MANAGED_BY
from backlog_operator.controller.goals import job
from backlog_operator.controller.settings import OperatorSettings

STAGED_DIR = "/var/run/backlog/staged"
PATCH_KEY = "patch.gz"
MANIFEST_KEY = "manifest.json"


def publishing(status: GoalStatus) -> bool:
    """Whether the goal's attempts are now publish-only (an approval was accepted)."""
    return status.approval is not None and status.approval.approved_hash is not None


def publish_attempt_label(attempt: int) -> str:
    """The attempt label of a publish-only attempt: `p<n>`."""
    return f"p{attempt}"


def next_attempt_label(status: GoalStatus) -> str:
    """The attempt label of the goal's next attempt's Job (`p<n>` once publish-only)."""
    attempt = status.attempts + 1
    return publish_attempt_label(attempt) if publishing(status) else str(attempt)


def publish_job_name(goal_name: str, goal_uid: str, attempt: int, run: int = 1) -> str:
    """Deterministic per goal, run and publish attempt, as `job.job_name`."""
    suffix = f"p{attempt}" if run == 1 else f"r{run}-p{attempt}"
    return naming.dns_label(f"{goal_name}-{goal_uid[:5]}-{suffix}", max_length=63)


def patch_config_map_name(goal_name: str) -> str:
    """The name of a Goal's patch ConfigMap: `<goal>-patch` (at most 253)."""
    return naming.child_name(goal_name, "patch")


def build_publish_job(
    goal: Goal, status: GoalStatus, attempt: int, settings: OperatorSettings
) -> dict[str, Any]:
    """The publish-only Job of `attempt` (1-based, counted from the approval)."""
    approval = status.approval
    assert approval is not None
    assert approval.approved_hash is not None
    run = status.run or 1
    name = publish_job_name(goal.metadata.name, goal.metadata.uid or "", attempt, run)
    labels = {**job.job_labels(goal, attempt, run), LABEL_ATTEMPT: publish_attempt_label(attempt)}
    goal = job.with_default_prefix(goal, settings)
    has_token = goal.spec.repository.credentials_secret is not None
    # The staged attempt's id: the pull request and its commits are that attempt's work.
    env = job.worker_env(goal, status.attempt_id or "", settings)
    args = ["worker", "apply", "--hash", approval.approved_hash, "--staged", STAGED_DIR]
    container = job.worker_container("publish", settings, env, has_token, args=args)
    container["volumeMounts"].append({"name": "staged", "mountPath": STAGED_DIR, "readOnly": True})
    staged_volume = {
        "name": "staged",
        "configMap": {
            "name": approval.patch_config_map,
            "optional": True,  # gone: an empty folder, and StagedPatchMissing (not a stuck Pod)
            "items": [
                {"key": PATCH_KEY, "path": PATCH_KEY},
                {"key": MANIFEST_KEY, "path": MANIFEST_KEY},
            ],
            "defaultMode": 0o444,
        },
    }
    pod = {"containers": [container], "volumes": [*job.volumes(goal, settings), staged_volume]}
    return job.worker_job(goal, settings, name, labels, pod)


def patch_config_map(goal: Goal, manifest: bytes, patch_gz: bytes) -> dict[str, Any]:
    """The ConfigMap that holds a staged change: `binaryData.patch.gz` and `data.manifest.json`,
    owned by the Goal (deleted with it)."""
    import base64

    config_map: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": patch_config_map_name(goal.metadata.name),
            "namespace": goal.metadata.namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_GOAL_UID: goal.metadata.uid or ""},
        },
        "data": {MANIFEST_KEY: manifest.decode("utf-8")},
        "binaryData": {PATCH_KEY: base64.b64encode(patch_gz).decode("ascii")},
    }
    job.own(config_map, goal)
    return config_map
