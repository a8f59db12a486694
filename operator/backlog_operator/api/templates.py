"""Goal templates: what a Backlog or a GoalSchedule stamps onto the Goals it creates."""

from __future__ import annotations

from pydantic import Field

from backlog_operator.api.common import ApiModel
from backlog_operator.api.goal import (
    CommitSpec,
    GoalSpec,
    PullRequestSpec,
    RetrySpec,
    TaskSpec,
)


class TemplateMetadata(ApiModel):
    """Labels and annotations copied onto every Goal made from the template."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class GoalTemplate(ApiModel):
    """A whole Goal spec (a GoalSchedule runs the same goal on every tick)."""

    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata)
    spec: GoalSpec


class TaskGoalSpec(ApiModel):
    """A Goal spec without what the Backlog decides itself: the repository and the task."""

    task: TaskSpec
    pull_request: PullRequestSpec = Field(default_factory=PullRequestSpec)
    commit: CommitSpec = Field(default_factory=CommitSpec)
    retry: RetrySpec = Field(default_factory=RetrySpec)


class TaskGoalTemplate(ApiModel):
    """The template of the Goals a Backlog creates, one per selected task."""

    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata)
    spec: TaskGoalSpec
