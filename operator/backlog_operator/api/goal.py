"""The `Goal` custom resource: one unit of work, run as a Kubernetes Job (clone, task, publish)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from backlog_operator.api.admission import (
    PATH_MAX_LENGTH,
    Rule,
    no_credentials_in_template,
    no_credentials_in_url,
    repository_path_rules,
    validations,
)
from backlog_operator.api.common import ApiModel, Condition, SecretKeyReference
from backlog_operator.api.goal_rules import (
    BRANCH_MAX_LENGTH,
    BRANCH_PREFIX_MAX_LENGTH,
    BRANCH_PREFIX_PATTERN,
    DEFAULT_AUTHOR_EMAIL,
    DEFAULT_AUTHOR_NAME,
    DEFAULT_BACKLOG_PATH,
    DEFAULT_BRANCH_PREFIX,
    DEFAULT_COMMIT_MESSAGE,
    DEFAULT_PR_BODY,
    DEFAULT_PR_TITLE,
    ENV_NAME_PATTERN,
    FORGE_REPOSITORY_PATTERN,
    MAX_ATTEMPTS,
    PR_TITLE_MAX_LENGTH,
    REPOSITORY_URL_CREDENTIALS,
    TASK_ID_CHARACTERS,
    TASK_ID_MAX_LENGTH,
    TASK_ID_PATTERN,
    TEMPLATE_MAX_LENGTH,
    TIMEOUT_MAX_SECONDS,
    URL_MAX_LENGTH,
    refuse_credentials,
    refuse_credentials_in_text,
    refuse_outside_path,
    repository_url_has_credentials,
)
from backlog_operator.api.quantity import QUANTITY_PATTERN, ResourceRequirements, positive_quantity
from backlog_operator.api.usage import GoalUsage

# Defined with the rules that need no pydantic (`goal_rules`), and importable from here.
__all__ = [
    "DEFAULT_BACKLOG_PATH",
    "DEFAULT_BRANCH_PREFIX",
    "DEFAULT_COMMIT_MESSAGE",
    "DEFAULT_PR_BODY",
    "DEFAULT_PR_TITLE",
    "TASK_ID_CHARACTERS",
    "TASK_ID_MAX_LENGTH",
    "TASK_ID_PATTERN",
    "TEMPLATE_MAX_LENGTH",
    "URL_MAX_LENGTH",
    "refuse_credentials",
    "refuse_credentials_in_text",
    "refuse_outside_path",
]


class RepositorySpec(ApiModel):
    """Where the work happens: the repository to clone and the branch the pull request targets."""

    url: str = Field(
        min_length=1,
        max_length=URL_MAX_LENGTH,
        description=(
            "Clone URL (https://, ssh://, git@host:path, file://) or, for `backlogctl run` only, "
            "a local path. Must not carry credentials: use credentialsSecret."
        ),
        json_schema_extra=validations(
            no_credentials_in_url(
                "repository.url", "reference a Secret in repository.credentialsSecret instead"
            )
        ),
    )
    base_branch: str = Field(
        default="main",
        min_length=1,
        max_length=BRANCH_MAX_LENGTH,
        description="Branch to clone and to open the pull request against.",
    )
    credentials_secret: SecretKeyReference | None = Field(
        default=None,
        description=(
            "Secret holding a token (under `key`) used for git over HTTPS and for the forge "
            "API, or a GitHub App (keys appId, privateKey, optional installationId) whose "
            "installation tokens the operator mints: one per attempt, for this repository only."
        ),
    )
    insecure: bool = Field(
        default=False,
        description=(
            "Allow sending the token over plain http:// to a host that is not loopback. "
            "Off by default: such a goal fails with reason InsecureUrl."
        ),
    )

    @model_validator(mode="after")
    def _no_credentials_in_url(self) -> RepositorySpec:
        # On the model rather than the field: the error is reported at `repository`, as before.
        # The shared expression (the CRD's rule), and the worker's own reading of a URL.
        if repository_url_has_credentials(self.url):
            raise ValueError(REPOSITORY_URL_CREDENTIALS)
        return self


class BacklogRef(ApiModel):
    """Which backlog file, and which task in it, this goal completes."""

    path: str = Field(
        default=DEFAULT_BACKLOG_PATH,
        min_length=1,
        max_length=PATH_MAX_LENGTH,
        description="Path of the backlog file inside the repository.",
        json_schema_extra=validations(*repository_path_rules("backlog.path")),
    )
    task_id: str | None = Field(
        default=None,
        pattern=TASK_ID_PATTERN,
        description="Id of the task in the backlog. Absent for a free-form goal (no writeback).",
    )

    @field_validator("path")
    @classmethod
    def _inside_the_repository(cls, path: str) -> str:
        return refuse_outside_path(path, "backlog.path")


class EnvVar(ApiModel):
    """A plain environment variable for the task (no valueFrom: the task gets no secrets)."""

    name: str = Field(pattern=ENV_NAME_PATTERN)
    value: str = ""


# `image` is optional in the model because `backlogctl run` reads the same Goal files and ignores
# it. On a cluster a Goal without one can never run, so the CRD requires it, as a CEL rule rather
# than a schema `required`: the model (and its JSON schema) stay as `backlogctl run` reads them,
# and the refusal says why. `backlogctl run` never goes through the API server, so the rule does
# not touch it. The rule holds in Backlog and GoalSchedule goal templates too (their Goals only
# ever run on a cluster). The operator keeps its own check for clusters without CEL.
IMAGE_REQUIRED = Rule(
    rule="has(self.image)",
    message=(
        "task.image is required on a cluster: the image the task runs in "
        "(only `backlogctl run` does without)"
    ),
)


class TaskSpec(ApiModel):
    """The task: a container image and command, run in the workspace with no credentials."""

    model_config = ApiModel.model_config | ConfigDict(json_schema_extra=validations(IMAGE_REQUIRED))

    image: str | None = Field(
        default=None,
        min_length=1,
        description="Image of the task step. Required on a cluster; `backlogctl run` ignores it.",
    )
    command: list[str] = Field(min_length=1, description="Command (entrypoint) of the task step.")
    args: list[str] = Field(default_factory=list, description="Arguments of the command.")
    env: list[EnvVar] = Field(default_factory=list, description="Extra environment variables.")
    resources: ResourceRequirements | None = Field(
        default=None,
        description=(
            "Container resources (requests/limits) of the task step. Replaces the operator's "
            "default (BACKLOG_OPERATOR_TASK_RESOURCES; out of the box requests cpu 250m and "
            "memory 512Mi, limits memory 4Gi) as a whole; `{}` sets none."
        ),
    )
    workspace_size_limit: str | None = Field(
        default=None,
        description=(
            "Size limit of the workspace volume (the clone and whatever the task writes there) "
            "and of the worker's private volume, a quantity such as 8Gi. The kubelet evicts a "
            "Pod that goes over it. Default: the operator's BACKLOG_OPERATOR_WORKSPACE_SIZE_LIMIT "
            "(4Gi out of the box)."
        ),
        json_schema_extra={"pattern": QUANTITY_PATTERN},
    )
    timeout_seconds: int = Field(
        default=3600,
        ge=1,
        le=TIMEOUT_MAX_SECONDS,
        description="Deadline of the whole attempt (the Job's activeDeadlineSeconds).",
    )

    @field_validator("workspace_size_limit")
    @classmethod
    def _size_is_a_quantity(cls, value: str | None) -> str | None:
        return None if value is None else positive_quantity(value, "the size limit")


class PullRequestSpec(ApiModel):
    """How the change is offered: the forge, the branch and the pull request's text."""

    provider: Literal["github", "none"] = Field(
        default="github",
        description="`github` opens a pull request; `none` pushes the branch only.",
    )
    api_base_url: str | None = Field(
        default=None,
        max_length=URL_MAX_LENGTH,
        description="GitHub API base URL, for GitHub Enterprise (default https://api.github.com).",
        json_schema_extra=validations(
            no_credentials_in_url(
                "pullRequest.apiBaseUrl",
                "the token comes from repository.credentialsSecret",
            )
        ),
    )
    repository: str | None = Field(
        default=None,
        pattern=FORGE_REPOSITORY_PATTERN,
        description="owner/name on the forge; derived from repository.url when absent.",
    )
    title: str = Field(
        default=DEFAULT_PR_TITLE,
        max_length=PR_TITLE_MAX_LENGTH,
        description="Title template: {taskId}, {title}, {description}, {goal}, {attemptId}.",
        json_schema_extra=validations(no_credentials_in_template("pullRequest.title")),
    )
    body: str = Field(
        default=DEFAULT_PR_BODY,
        max_length=TEMPLATE_MAX_LENGTH,
        description="Body template, same placeholders.",
        json_schema_extra=validations(no_credentials_in_template("pullRequest.body")),
    )
    labels: list[str] = Field(default_factory=list, description="Labels put on the pull request.")
    draft: bool = Field(default=False, description="Open the pull request as a draft.")
    branch_prefix: str | None = Field(
        default=None,
        max_length=BRANCH_PREFIX_MAX_LENGTH,
        pattern=BRANCH_PREFIX_PATTERN,
        description=(
            "Prefix of the branch `<prefix><task-id>-<attempt>`; "
            "default: the operator's setting, `backlog/` out of the box."
        ),
    )

    @field_validator("api_base_url")
    @classmethod
    def _no_credentials_in_api_url(cls, url: str | None) -> str | None:
        return refuse_credentials(
            url, "pullRequest.apiBaseUrl", "the token comes from repository.credentialsSecret"
        )

    @field_validator("title", "body")
    @classmethod
    def _no_credentials_in_text(cls, text: str, info: ValidationInfo) -> str:
        return refuse_credentials_in_text(text, f"pullRequest.{info.field_name}")

    def branch_prefix_or_default(self) -> str:
        """The prefix in force when the goal sets none."""
        return DEFAULT_BRANCH_PREFIX if self.branch_prefix is None else self.branch_prefix


class CommitSpec(ApiModel):
    """Who the commit is by and what it says."""

    author_name: str = Field(default=DEFAULT_AUTHOR_NAME, min_length=1)
    author_email: str = Field(default=DEFAULT_AUTHOR_EMAIL, min_length=3)
    message: str = Field(
        default=DEFAULT_COMMIT_MESSAGE,
        max_length=TEMPLATE_MAX_LENGTH,
        description="Commit message template, with the same placeholders as the PR title.",
        json_schema_extra=validations(no_credentials_in_template("commit.message")),
    )

    @field_validator("message")
    @classmethod
    def _no_credentials_in_text(cls, text: str) -> str:
        return refuse_credentials_in_text(text, "commit.message")


class RetrySpec(ApiModel):
    """How retryable failures are retried: exponential backoff with jitter."""

    max_attempts: int = Field(
        default=3, ge=1, le=MAX_ATTEMPTS, description="Attempts in all, the first included."
    )
    backoff_seconds: int = Field(default=30, ge=0, description="Delay before the second attempt.")
    max_backoff_seconds: int = Field(default=600, ge=0, description="Upper bound of the delay.")
    permanent_exit_codes: list[int] = Field(
        default_factory=list,
        description="Exit codes of the task command that mean 'do not retry'.",
    )


# How long a staged change waits for a decision by default (7 days), and the bounds.
APPROVAL_EXPIRY_DEFAULT_SECONDS = 7 * 24 * 3600
APPROVAL_EXPIRY_MIN_SECONDS = 60
APPROVAL_EXPIRY_MAX_SECONDS = 30 * 24 * 3600


class ApprovalSpec(ApiModel):
    """Whether a person approves the exact change before anything is pushed (docs/operator.md,
    "Approval")."""

    required: bool = Field(
        default=False,
        description=(
            "Stage the change instead of pushing it: the goal waits in AwaitingApproval until "
            "the annotation backlog.dev/approved-patch names the staged change's hash."
        ),
    )
    expires_after_seconds: int = Field(
        default=APPROVAL_EXPIRY_DEFAULT_SECONDS,
        ge=APPROVAL_EXPIRY_MIN_SECONDS,
        le=APPROVAL_EXPIRY_MAX_SECONDS,
        description=(
            "How long a staged change waits for a decision, from status.approval.stagedAt; "
            "then the goal fails with ApprovalExpired."
        ),
    )


class GoalSpec(ApiModel):
    """What a Goal asks for."""

    repository: RepositorySpec
    backlog: BacklogRef = Field(default_factory=BacklogRef)
    task: TaskSpec
    pull_request: PullRequestSpec = Field(default_factory=PullRequestSpec)
    commit: CommitSpec = Field(default_factory=CommitSpec)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    priority: int = Field(default=0, description="Smaller runs sooner when goals queue.")
    suspend: bool = Field(default=False, description="Hold a queued goal; a running one finishes.")
    approval: ApprovalSpec | None = Field(
        default=None,
        description="A person approves the staged change before it is pushed (default: not).",
    )

    def approval_required(self) -> bool:
        """Whether an attempt stages its change for approval instead of pushing it."""
        return self.approval is not None and self.approval.required


class Phase(StrEnum):
    """Where a Goal is in its life (`status.phase`); the values are the strings on the wire."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    AWAITING_APPROVAL = "AwaitingApproval"


# A goal that has not finished (its Reconciling condition is True) and one that has.
ACTIVE_PHASES = frozenset({Phase.PENDING, Phase.QUEUED, Phase.RUNNING, Phase.AWAITING_APPROVAL})
FINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.SKIPPED})
# Finished with the task done: Skipped means another goal completed it.
SUCCESSFUL_PHASES = frozenset({Phase.SUCCEEDED, Phase.SKIPPED})


class PullRequestStatus(ApiModel):
    """The pull request a goal opened or reused."""

    number: int = Field(description="The pull request's number.")
    url: str = Field(description="Its web address.")


PullRequestState = Literal["open", "merged", "closed"]


class FollowedPullRequest(PullRequestStatus):
    """The pull request a goal opened or reused, as the operator follows it after it opened."""

    state: PullRequestState | None = Field(
        default=None,
        description=(
            "open, merged, or closed (without merging), as last seen on the forge; followed "
            "until merged or closed (BACKLOG_OPERATOR_PR_POLL_SECONDS)."
        ),
    )
    merge_commit: str | None = Field(
        default=None, description="Once merged: the commit the merge made on the base branch."
    )
    merged_by: str | None = Field(default=None, description="Once merged: who merged it.")
    merged_at: datetime | None = Field(default=None, description="Once merged: when.")
    closed_by: str | None = Field(
        default=None, description="Once closed without merging: who closed it, if the forge says."
    )
    closed_at: datetime | None = Field(
        default=None, description="Once closed without merging: when."
    )
    conflicted_files: list[str] | None = Field(
        default=None,
        description=(
            "While open: the files that conflict with the base branch, as the last heal found "
            "them (at most 50); a person resolves them."
        ),
    )
    heals: int | None = Field(
        default=None,
        description="Heal Jobs started for this pull request (bounded per goal).",
    )
    heal_job: str | None = Field(
        default=None, description="The heal Job that runs now, until its result is read."
    )
    healed_heads: str | None = Field(
        default=None,
        description=(
            "`<head>..<base>`: the pull request's head and the base branch's head commits the "
            "last heal was started for; never two heals for one pair."
        ),
    )


class AttemptFailure(ApiModel):
    """How an attempt of the current run failed (the next attempt is told, see worker.md)."""

    attempt: int = Field(description="The attempt that failed (1-based).")
    reason: str = Field(description="The failure's reason (TaskFailed, PushRejected, ...).")
    message: str = Field(default="", description="The same, for people.")
    step: Literal["clone", "task", "publish", "heal"] | None = Field(
        default=None, description="The step that failed, when known."
    )
    time: datetime | None = Field(default=None, description="When the failure was seen.")


class Diffstat(ApiModel):
    """The size of a staged change."""

    files: int = Field(default=0, description="Files changed.")
    insertions: int = Field(default=0, description="Lines added (binary files count none).")
    deletions: int = Field(default=0, description="Lines removed.")


class ApprovalStatus(ApiModel):
    """The staged change awaiting (or given) approval; written only by the operator."""

    patch_hash: str = Field(description="sha256:<64 hex>, the staged change's hash.")
    base_commit: str = Field(description="The commit the change applies to.")
    branch: str = Field(description="The branch the change will be pushed to.")
    changed_files: list[str] = Field(default_factory=list, description="Files the change touches.")
    diffstat: Diffstat = Field(
        default_factory=Diffstat, description="Files, insertions, deletions."
    )
    patch_bytes: int = Field(default=0, description="Size of the (uncompressed) patch.")
    patch_config_map: str = Field(description="The ConfigMap holding the patch (patch.gz).")
    staged_at: datetime = Field(description="When the change was staged.")
    expires_at: datetime = Field(description="When an approval no longer counts.")
    approved_hash: str | None = Field(default=None, description="The hash approved.")
    approved_by: str | None = Field(default=None, description="Who approved (as they said).")
    approved_at: datetime | None = Field(default=None, description="When the approval was taken.")
    rejected_by: str | None = Field(default=None, description="Who rejected (as they said).")
    rejected_at: datetime | None = Field(default=None, description="When the rejection was taken.")
    refused_hash: str | None = Field(
        default=None,
        description="The last approved-patch value refused (not the staged hash): said once.",
    )


class GoalStatus(ApiModel):
    """What the operator observed; written only by the operator."""

    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the status was computed for."
    )
    phase: Phase | None = Field(
        default=None,
        description=(
            "Pending → Queued → Running → Succeeded | Failed, or Skipped; with approval "
            "required, Running → AwaitingApproval → Running (publish) → Succeeded | Failed."
        ),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description=(
            "Ready, Reconciling and Stalled, as metav1.Condition; and Merged once a pull "
            "request is out (True when merged)."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    attempts: int = Field(default=0, description="Attempts of the current run.")
    run: int = Field(default=1, description="Runs so far: 1, plus one per re-run request.")
    job_name: str | None = Field(default=None, description="The Job of the latest attempt.")
    attempt_id: str | None = Field(default=None, description="The latest attempt's id.")
    task_id: str | None = Field(default=None, description="The task (or the goal's name).")
    branch: str | None = Field(default=None, description="The branch that was pushed.")
    commit: str | None = Field(default=None, description="The commit at the branch's head.")
    pull_request: FollowedPullRequest | None = Field(
        default=None, description="The pull request opened or reused, and where it stands."
    )
    changed_files: list[str] = Field(
        default_factory=list, description="Files the pull request changes."
    )
    outcome: str | None = Field(
        default=None, description="The worker's outcome: published, already_completed, failed."
    )
    reason: str | None = Field(default=None, description="Why the goal is in its phase.")
    message: str | None = Field(default=None, description="The same, for people.")
    step: Literal["clone", "task", "publish", "heal"] | None = Field(
        default=None,
        description=(
            "While Running: the step whose container runs or waits (clone, task, publish; heal "
            "is a heal Job's, never a running attempt's)."
        ),
    )
    step_reason: str | None = Field(
        default=None,
        description=(
            "While Running: why the attempt's Pod waits, from its container's state.waiting "
            "(ImagePullBackOff, ErrImagePull, CreateContainerConfigError, ...) or its "
            "PodScheduled=False condition (Unschedulable); absent when nothing holds it up."
        ),
    )
    step_message: str | None = Field(
        default=None, description="The kubelet's or the scheduler's message for stepReason."
    )
    step_reason_time: datetime | None = Field(
        default=None,
        description=(
            "When stepReason was first seen (ErrImagePull and ImagePullBackOff count as one): "
            "the grace period before an attempt that cannot heal is failed runs from here."
        ),
    )
    disruptions: int | None = Field(
        default=None,
        description=(
            "Attempts of the current run ended by a disruption (eviction, node loss, "
            "preemption) that do not count toward spec.retry.maxAttempts (at most 5; later "
            "ones count)."
        ),
    )
    start_time: datetime | None = Field(default=None, description="When the run started.")
    completion_time: datetime | None = Field(default=None, description="When the run ended.")
    next_attempt_time: datetime | None = Field(
        default=None, description="When a backing-off goal tries again."
    )
    queue_position: int | None = Field(
        default=None, description="Place among goals waiting for capacity (1 = next)."
    )
    last_handled_reconcile_at: str | None = Field(
        default=None, description="The last backlog.dev/requested-at value acted on."
    )
    usage: GoalUsage | None = Field(
        default=None,
        description=(
            "What the tasks reported they used (the usage file, see docs/worker.md): the latest "
            "attempts one by one and the sum over every attempt of every run."
        ),
    )
    last_failure: AttemptFailure | None = Field(
        default=None,
        description=(
            "The latest failed attempt of the current run: its reason and message, handed to "
            "the next attempt's task (BACKLOG_PREVIOUS_FAILURE)."
        ),
    )
    approval: ApprovalStatus | None = Field(
        default=None,
        description=(
            "With spec.approval.required: the staged change (hash, base, branch, size, where "
            "the patch is, when it expires) and the decision taken on it."
        ),
    )


class GoalMetadata(ApiModel):
    """The part of `metadata` the worker needs (links back to the goal)."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    name: str = "local"
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    annotations: dict[str, str] = Field(default_factory=dict)


class Goal(ApiModel):
    """A whole Goal object as read from the API or a file."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal["backlog.dev/v1alpha1"] = "backlog.dev/v1alpha1"
    kind: Literal["Goal"] = "Goal"
    metadata: GoalMetadata = Field(default_factory=GoalMetadata)
    spec: GoalSpec
    status: GoalStatus | None = None

    def label(self) -> str:
        """`namespace/name`, how people refer to the goal."""
        return (
            f"{self.metadata.namespace}/{self.metadata.name}"
            if self.metadata.namespace
            else self.metadata.name
        )

    @property
    def work_name(self) -> str:
        """What the work is named after: the task id, or the goal's name for a free-form goal
        (attempt ids, branches, the Job's task label, `status.taskId`)."""
        return self.spec.backlog.task_id or self.metadata.name
