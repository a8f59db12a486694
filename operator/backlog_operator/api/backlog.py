"""The `Backlog` custom resource: a repository's backlog file, synced and worked through."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from backlog_operator.api.admission import PATH_MAX_LENGTH, repository_path_rules, validations
from backlog_operator.api.budget import BudgetSpec, BudgetStatus
from backlog_operator.api.common import ApiModel, Condition, SecretKeyReference
from backlog_operator.api.goal import (
    DEFAULT_BACKLOG_PATH,
    GoalMetadata,
    PullRequestStatus,
    RepositorySpec,
    refuse_outside_path,
)
from backlog_operator.api.templates import TaskGoalTemplate
from backlog_operator.api.usage import OwnerUsage


class BacklogLimits(ApiModel):
    """How much the Backlog may have going on at once."""

    max_open_pull_requests: int = Field(
        default=5, ge=0, description="Open pull requests on this operator's branches, at most."
    )
    max_running_goals: int = Field(
        default=1, ge=0, description="Goals of this Backlog running at once."
    )
    max_new_pull_requests_per_hour: int | None = Field(
        default=None, ge=0, description="New pull requests in any hour; none = no limit."
    )


class FailureBudget(ApiModel):
    """When a task that keeps failing stops being selected."""

    max_failures: int = Field(default=3, ge=1, description="Failed Goals within the window.")
    window_seconds: int = Field(default=86400, ge=60, description="How far back failures count.")


class GoalHistory(ApiModel):
    """How many finished Goals to keep, per outcome (older ones are deleted)."""

    successful: int = Field(default=10, ge=0)
    failed: int = Field(default=10, ge=0)


class WebhookSpec(ApiModel):
    """GitHub webhooks for this Backlog: a push to its base branch syncs it at once, a pull
    request closed or reopened is looked at again at once (docs/operator.md, "Webhooks")."""

    secret_ref: SecretKeyReference = Field(
        description=(
            "Secret key (default `token`) holding the webhook's secret, as set in GitHub: it "
            "signs each delivery (X-Hub-Signature-256) and, with the Backlog's name and "
            "namespace, makes the path deliveries are sent to (status.webhookPath)."
        )
    )


class BacklogSpec(ApiModel):
    """What a Backlog asks for."""

    repository: RepositorySpec
    path: str = Field(
        default=DEFAULT_BACKLOG_PATH,
        min_length=1,
        max_length=PATH_MAX_LENGTH,
        description="The backlog file.",
        json_schema_extra=validations(*repository_path_rules("path")),
    )
    goal_template: TaskGoalTemplate = Field(description="Stamped onto each Goal it creates.")
    sync_interval_seconds: int = Field(default=300, ge=10, description="How often to sync.")
    limits: BacklogLimits = Field(default_factory=BacklogLimits)
    failure_budget: FailureBudget = Field(default_factory=FailureBudget)
    history: GoalHistory = Field(default_factory=GoalHistory)
    suspend: bool = Field(default=False, description="Stop selecting; running goals go on.")
    budget: BudgetSpec | None = Field(
        default=None,
        description="A daily budget: once spent, no new Goal starts until the next UTC day.",
    )
    webhook: WebhookSpec | None = Field(
        default=None,
        description="Receive GitHub webhooks: sync on a push, not only every syncIntervalSeconds.",
    )

    @field_validator("path")
    @classmethod
    def _inside_the_repository(cls, path: str) -> str:
        return refuse_outside_path(path, "path")


class BlockedTask(ApiModel):
    """A task that cannot be selected, and why."""

    id: str
    reason: Literal["Requires", "FailureBudget", "MarkedBlocked"]
    requires: list[str] = Field(default_factory=list, description="Unfinished requirements.")
    message: str = ""


class DeclinedTask(ApiModel):
    """A task a person said "no" to: its pull request was closed without merging, or its
    staged change was rejected. It is not selected again until revived (a
    `revive.backlog.dev/<task-id>` annotation with a later time, an edit of its entry in the
    file, or deleting its Goal)."""

    id: str
    reason: Literal["Rejected"] | None = Field(
        default=None,
        description="Rejected: the staged change was rejected; absent: the pull request closed.",
    )
    pull_request: PullRequestStatus | None = Field(
        default=None, description="The pull request that was closed (none for Rejected)."
    )
    closed_by: str | None = Field(
        default=None, description="Who closed it (if the forge says), or who rejected the change."
    )
    declined_at: datetime | None = Field(
        default=None, description="When it was closed or rejected."
    )
    message: str | None = Field(default=None, description="For Rejected: the goal's message.")
    goal: str = Field(description="The Goal that holds the decline (kept).")


class AwaitingApprovalTask(ApiModel):
    """A task whose Goal staged its change and waits for a person's approval (in flight)."""

    task: str
    goal: str
    patch_hash: str = Field(description="The staged change's hash (what to approve).")
    expires_at: datetime | None = Field(default=None, description="When it expires.")


class ConflictedTask(ApiModel):
    """A task whose open pull request no longer merges and was not healed: a person resolves
    it (its Goal's `Merged` condition says why, with the files)."""

    id: str
    pull_request: PullRequestStatus = Field(description="The pull request that conflicts.")
    goal: str = Field(description="The Goal that opened it.")
    reason: str = Field(
        description="Conflicted, TaskNotInBase or HealLimitReached (the Goal's Merged reason)."
    )
    conflicted_files: list[str] = Field(
        default_factory=list, description="The conflicting files (at most 10)."
    )


class TaskCounts(ApiModel):
    """Tasks per state in the backlog file."""

    pending: int = 0
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    blocked: int = 0


class BacklogStatus(ApiModel):
    """What the operator found at the last sync; written only by the operator."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    last_synced_commit: str | None = Field(default=None, description="Branch tip read last.")
    last_sync_time: datetime | None = None
    counts: TaskCounts | None = None
    ready: list[str] = Field(default_factory=list, description="Selectable now (capped).")
    blocked: list[BlockedTask] = Field(default_factory=list, description="Capped.")
    in_progress: list[str] = Field(default_factory=list, description="Capped.")
    completed: list[str] = Field(
        default_factory=list, description="Completed in the file: never selected again (capped)."
    )
    started: list[str] = Field(default_factory=list, description="Goals created at the last sync.")
    declined: list[DeclinedTask] = Field(
        default_factory=list,
        description=(
            "Tasks whose pull request was closed without merging, or whose staged change was "
            "rejected: not selected (capped)."
        ),
    )
    awaiting_approval: list[AwaitingApprovalTask] = Field(
        default_factory=list,
        description="Tasks whose Goal awaits approval of its staged change (capped).",
    )
    conflicted: list[ConflictedTask] = Field(
        default_factory=list,
        description=(
            "Tasks whose open pull request conflicts with the base branch and was not healed "
            "(capped)."
        ),
    )
    # Counts and the short commit for `kubectl get`'s columns, which cannot count or cut.
    ready_count: int | None = Field(
        default=None, description="How many tasks are selectable now (`ready` is capped)."
    )
    in_progress_count: int | None = Field(
        default=None,
        description=(
            "How many tasks are in progress in the file, or have a running Goal or an open pull "
            "request (`inProgress` is capped)."
        ),
    )
    short_commit: str | None = Field(
        default=None, description="lastSyncedCommit's first 7 characters."
    )
    last_handled_reconcile_at: str | None = None
    usage: OwnerUsage | None = Field(
        default=None, description="What the Backlog's Goals used, per UTC day (the last 7)."
    )
    budget: BudgetStatus | None = Field(
        default=None, description="Today's budget, when spec.budget sets one."
    )
    webhook_path: str | None = Field(
        default=None,
        description=(
            "Where GitHub delivers this Backlog's webhooks, on the operator's webhook port: "
            "/hook/ and the SHA-256 of the secret, the name and the namespace (spec.webhook)."
        ),
    )


class Backlog(ApiModel):
    """A whole Backlog object."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal["backlog.dev/v1alpha1"] = "backlog.dev/v1alpha1"
    kind: Literal["Backlog"] = "Backlog"
    metadata: GoalMetadata = Field(default_factory=GoalMetadata)
    spec: BacklogSpec
    status: BacklogStatus | None = None
