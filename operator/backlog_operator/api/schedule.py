"""The `GoalSchedule` custom resource: Goals stamped on a cron, as CronJob stamps Jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from backlog_operator.api.budget import BudgetSpec, BudgetStatus
from backlog_operator.api.common import ApiModel, Condition
from backlog_operator.api.goal import GoalMetadata
from backlog_operator.api.templates import GoalTemplate
from backlog_operator.api.usage import OwnerUsage


class GoalScheduleSpec(ApiModel):
    """What a GoalSchedule asks for (the fields of CronJob, for Goals)."""

    schedule: str = Field(min_length=1, description="Cron expression (5 fields or @hourly ...).")
    time_zone: str | None = Field(default=None, description="IANA time zone; default UTC.")
    goal_template: GoalTemplate = Field(description="The Goal made on every tick.")
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = Field(
        default="Allow",
        description="Allow: run alongside; Forbid: skip while one runs; Replace: stop it first.",
    )
    starting_deadline_seconds: int | None = Field(
        default=None, ge=0, description="A missed tick later than this is skipped."
    )
    suspend: bool = Field(default=False, description="Stamp nothing; running goals go on.")
    successful_goals_history_limit: int = Field(default=3, ge=0)
    failed_goals_history_limit: int = Field(default=1, ge=0)
    budget: BudgetSpec | None = Field(
        default=None,
        description="A daily budget: once spent, ticks start no Goal until the next UTC day.",
    )


class ActiveGoal(ApiModel):
    """A Goal of this schedule that has not finished."""

    name: str


class GoalScheduleStatus(ApiModel):
    """What the operator did; written only by the operator."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    last_schedule_time: datetime | None = None
    last_successful_time: datetime | None = None
    next_schedule_time: datetime | None = None
    active: list[ActiveGoal] = Field(default_factory=list)
    # For `kubectl get`'s ACTIVE column, which cannot count a list.
    active_count: int | None = Field(default=None, description="How many Goals `active` has.")
    usage: OwnerUsage | None = Field(
        default=None, description="What the schedule's Goals used, per UTC day (the last 7)."
    )
    budget: BudgetStatus | None = Field(
        default=None, description="Today's budget, when spec.budget sets one."
    )


class GoalSchedule(ApiModel):
    """A whole GoalSchedule object."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal["backlog.dev/v1alpha1"] = "backlog.dev/v1alpha1"
    kind: Literal["GoalSchedule"] = "GoalSchedule"
    metadata: GoalMetadata = Field(default_factory=GoalMetadata)
    spec: GoalScheduleSpec
    status: GoalScheduleStatus | None = None
