"""The worker Job of one attempt, built from a Goal. Pure: a dict in, a manifest out.

One Pod: init containers `clone` and `task`, main container `publish`, a shared workspace.
The credentials Secret and the `private` volume (the clone step's record and a copy of the git
metadata that `publish` uses) are mounted only into `clone` and `publish`: the task, which runs
untrusted code, gets no token, no service-account token and nothing it could tamper with to
steer `publish`. Both emptyDirs have a size limit, so one task cannot fill a node's disk.
Everything runs as non-root with all capabilities dropped.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, cast

import kopf

from backlog_operator import naming
from backlog_operator.api.goal import Goal
from backlog_operator.api.labels import (
    LABEL_ATTEMPT,
    LABEL_GOAL,
    LABEL_GOAL_UID,
    LABEL_MANAGED_BY,
    LABEL_RUN,
    LABEL_TASK,
    MANAGED_BY,
)
from backlog_operator.api.worker_contract import (
    ATTEMPT_ID_VARIABLE,
    GOAL_URL_VARIABLE,
    GOAL_VARIABLE,
    PREVIOUS_FAILURE_VARIABLE,
    PRIVATE_DIR,
    PRIVATE_DIR_VARIABLE,
    TOKEN_FILE_VARIABLE,
    WORKSPACE,
    WORKSPACE_VARIABLE,
    goal_to_environment,
    launcher_command,
)
from backlog_operator.controller.settings import OperatorSettings

TOKEN_DIR = "/var/run/secrets/backlog"  # noqa: S105 (a mount path, not a secret)
TOKEN_SECRET_KEY = "token"  # noqa: S105 (the key of an attempt's own token Secret)
RUN_AS = 65532
# A Pod evicted, preempted or lost with its node is not the attempt's failure: the Job
# controller replaces it without counting it against backoffLimit (a podFailurePolicy needs
# restartPolicy Never, which the Pod has). A disruption that fails the Job anyway (a cluster that
# sets no DisruptionTarget condition) is retried by the operator as `Disrupted`.
_POD_FAILURE_POLICY = {
    "rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    ]
}
_WORKER_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "512Mi"},
}


def job_name(goal_name: str, goal_uid: str, attempt: int, run: int = 1) -> str:
    """Deterministic per goal, run and attempt: a restarted operator adopts, never duplicates.

    The uid's prefix keeps a re-created goal of the same name from adopting an old goal's Job;
    the run (counted up by each re-run request) keeps a re-run from adopting a finished one.
    """
    suffix = str(attempt) if run == 1 else f"r{run}-{attempt}"
    return naming.dns_label(f"{goal_name}-{goal_uid[:5]}-{suffix}", max_length=63)


def attempt_id(goal: Goal, attempt: int, run: int = 1) -> str:
    """The attempt id the worker uses; deterministic too (the same Job has the same id)."""
    nonce = hashlib.sha256(f"{goal.metadata.uid}/{run}/{attempt}".encode()).hexdigest()[:6]
    return naming.new_attempt_id(goal.work_name, nonce=nonce)


def job_labels(goal: Goal, attempt: int, run: int = 1) -> dict[str, str]:
    """Labels of the Job and its Pod: how the operator finds them again."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_GOAL: naming.dns_label(goal.metadata.name),
        LABEL_GOAL_UID: goal.metadata.uid or "",
        LABEL_TASK: naming.dns_label(goal.work_name),
        LABEL_ATTEMPT: str(attempt),
        LABEL_RUN: str(run),
    }


def build_job(
    goal: Goal,
    attempt: int,
    settings: OperatorSettings,
    run: int = 1,
    *,
    previous_failure: str | None = None,
) -> dict[str, Any]:
    """The Job manifest of `attempt` (1-based) of `run` (1-based) of `goal`; on a retry,
    `previous_failure` (JSON) goes to the task container as BACKLOG_PREVIOUS_FAILURE."""
    name = job_name(goal.metadata.name, goal.metadata.uid or "", attempt, run)
    labels = job_labels(goal, attempt, run)
    goal = with_default_prefix(goal, settings)
    spec = goal.spec
    env = worker_env(goal, attempt_id(goal, attempt, run), settings)
    has_token = spec.repository.credentials_secret is not None
    if spec.approval_required():
        # Staged for approval: nothing is pushed and no forge is asked, so the main container
        # gets no token at all (only `clone` reads the repository with it).
        main = worker_container(
            "publish", settings, without_token(env), False, args=["worker", "stage"]
        )
    else:
        main = worker_container("publish", settings, env, has_token)
    pod = {
        "initContainers": [
            worker_container("clone", settings, env, has_token),
            _task_container(goal, settings, previous_failure),
        ],
        "containers": [main],
        "volumes": volumes(goal, settings),
    }
    return worker_job(goal, settings, name, labels, pod)


def worker_job(
    goal: Goal, settings: OperatorSettings, name: str, labels: dict[str, str], pod: dict[str, Any]
) -> dict[str, Any]:
    """A worker Job of `goal` (an attempt's, a publish-only one): the shared head and Pod
    hardening, `pod`'s containers and volumes, owned by the Goal."""
    manifest: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": goal.metadata.namespace, "labels": labels},
        "spec": {
            **job_spec_head(goal, settings),  # backoffLimit 0: the operator owns retries
            "template": {
                "metadata": {"labels": labels},
                "spec": {**pod_template_spec(settings), **pod},
            },
        },
    }
    own(manifest, goal)
    return manifest


def own(manifest: dict[str, Any], goal: Goal) -> None:
    """Make the Goal the controller of `manifest`'s object (a Job, the patch's ConfigMap)."""
    # The garbage collector deletes it with the Goal, even when the operator is not running
    # (blockOwnerDeletion: foreground deletion waits for it).
    owner = goal.model_dump(by_alias=True, mode="json", include={"api_version", "kind", "metadata"})
    kopf.append_owner_reference(manifest, owner=kopf.Body(cast(kopf.RawBody, owner)))


def with_default_prefix(goal: Goal, settings: OperatorSettings) -> Goal:
    """`goal` with the operator's branch prefix where its spec sets none."""
    spec = goal.spec
    if spec.pull_request.branch_prefix is not None:
        return goal
    pull_request = spec.pull_request.model_copy(
        update={"branch_prefix": settings.default_branch_prefix}
    )
    return goal.model_copy(update={"spec": spec.model_copy(update={"pull_request": pull_request})})


def without_token(env: list[dict[str, str]]) -> list[dict[str, str]]:
    """A worker container's environment with no word of the token file."""
    return [item for item in env if item["name"] != TOKEN_FILE_VARIABLE]


def pod_template_spec(settings: OperatorSettings) -> dict[str, Any]:
    """What every worker Pod's spec holds besides its containers and volumes: no service
    account token, no service links, non-root, seccomp."""
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "serviceAccountName": settings.worker_service_account,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def job_spec_head(goal: Goal, settings: OperatorSettings) -> dict[str, Any]:
    """A worker Job's spec besides its template: no Job-level retries (the operator's), the
    disruption policy, the deadline, the time-to-live."""
    return {
        "backoffLimit": 0,
        "podFailurePolicy": copy.deepcopy(_POD_FAILURE_POLICY),
        "activeDeadlineSeconds": goal.spec.task.timeout_seconds,
        "ttlSecondsAfterFinished": settings.job_ttl_seconds,
    }


def worker_env(goal: Goal, attempt: str, settings: OperatorSettings) -> list[dict[str, str]]:
    """The environment of a worker container (`clone`, `publish`, `stage`, `apply`)."""
    env = [
        {"name": GOAL_VARIABLE, "value": goal_to_environment(goal)},
        {"name": ATTEMPT_ID_VARIABLE, "value": attempt},
        {"name": WORKSPACE_VARIABLE, "value": WORKSPACE},
        {"name": PRIVATE_DIR_VARIABLE, "value": PRIVATE_DIR},
        {"name": "HOME", "value": "/tmp"},  # noqa: S108  # git writes nothing there, but wants a HOME
    ]
    if goal.spec.repository.credentials_secret is not None:
        env.append({"name": TOKEN_FILE_VARIABLE, "value": f"{TOKEN_DIR}/token"})
    if settings.goal_url_template:
        url = settings.goal_url_template.format(
            namespace=goal.metadata.namespace or "", name=goal.metadata.name
        )
        env.append({"name": GOAL_URL_VARIABLE, "value": url})
    return env


def _restricted(read_only_root: bool) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
    }


def worker_container(
    step: str,
    settings: OperatorSettings,
    env: list[dict[str, str]],
    has_token: bool,
    *,
    args: list[str] | None = None,
) -> dict[str, Any]:
    """A worker container (operator image, read-only root, all capabilities dropped)."""
    mounts: list[dict[str, Any]] = [
        {"name": "workspace", "mountPath": WORKSPACE},
        {"name": "private", "mountPath": PRIVATE_DIR},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (an emptyDir, for a read-only root)
    ]
    if has_token:
        mounts.append({"name": "credentials", "mountPath": TOKEN_DIR, "readOnly": True})
    return {
        "name": step,
        "image": settings.worker_image,
        "args": args or ["worker", step],
        "env": env,
        "volumeMounts": mounts,
        "resources": _WORKER_RESOURCES,
        "securityContext": _restricted(read_only_root=True),
        "terminationMessagePolicy": "File",
    }


def _task_container(
    goal: Goal, settings: OperatorSettings, previous_failure: str | None = None
) -> dict[str, Any]:
    task = goal.spec.task
    env = [{"name": item.name, "value": item.value} for item in task.env]
    env.append({"name": WORKSPACE_VARIABLE, "value": WORKSPACE})
    if previous_failure is not None:
        env.append({"name": PREVIOUS_FAILURE_VARIABLE, "value": previous_failure})
    container: dict[str, Any] = {
        "name": "task",
        "image": task.image,
        "command": launcher_command(task.command, task.args),
        "workingDir": WORKSPACE,
        "env": env,
        "volumeMounts": [{"name": "workspace", "mountPath": WORKSPACE}],
        # Task images often write outside the workspace (caches, tools): root stays writable.
        "securityContext": _restricted(read_only_root=False),
    }
    # The goal's resources replace the operator's default as a whole (`{}`: none at all).
    resources = settings.task_resources if task.resources is None else task.resources
    if resources.requests or resources.limits:
        container["resources"] = resources.to_container()
    return container


def workspace_size_limit(goal: Goal, settings: OperatorSettings) -> str:
    """The `sizeLimit` of the workspace and private volumes: the goal's, else the operator's."""
    return goal.spec.task.workspace_size_limit or settings.workspace_size_limit


def volumes(goal: Goal, settings: OperatorSettings) -> list[dict[str, Any]]:
    """The workspace, private, tmp and (with a Secret) credentials volumes."""
    size_limit = workspace_size_limit(goal, settings)
    volumes: list[dict[str, Any]] = [
        # The clone and whatever the task writes: on the node's disk, limited.
        {"name": "workspace", "emptyDir": {"sizeLimit": size_limit}},
        # The clone step's record and a copy of the clone's .git, never larger than the workspace.
        {"name": "private", "emptyDir": {"sizeLimit": size_limit}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
    ]
    secret = goal.spec.repository.credentials_secret
    if secret is not None:
        volumes.append(
            {
                "name": "credentials",
                "secret": {
                    "secretName": secret.name,
                    "items": [{"key": secret.key, "path": "token"}],
                    "defaultMode": 0o440,
                },
            }
        )
    return volumes


def mount_token_secret(manifest: dict[str, Any], secret_name: str) -> dict[str, Any]:
    """`manifest` with its credentials volume taken from the attempt's own token Secret
    `secret_name` (key `token`) instead of the goal's Secret, which holds a GitHub App's
    private key: that never reaches a Pod. Mounted where the goal's token was: `clone` and
    `publish` only."""
    for volume in manifest["spec"]["template"]["spec"]["volumes"]:
        if volume["name"] == "credentials":
            volume["secret"]["secretName"] = secret_name
            volume["secret"]["items"] = [{"key": TOKEN_SECRET_KEY, "path": "token"}]
    return manifest
