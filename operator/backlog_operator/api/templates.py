"""Goal templates: what a Backlog or a GoalSchedule stamps onto the Goals it creates."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from backlog_operator.api.admission import (
    MAX_TEMPLATE_METADATA,
    is_qualified_name,
    qualified_keys_rule,
    validations,
)
from backlog_operator.api.common import ApiModel
from backlog_operator.api.goal import (
    ApprovalSpec,
    CommitSpec,
    GoalSpec,
    PullRequestSpec,
    RetrySpec,
    TaskSpec,
)
from backlog_operator.naming import LABEL_VALUE_MAX_LENGTH, LABEL_VALUE_PATTERN

LabelValue = Annotated[str, Field(max_length=LABEL_VALUE_MAX_LENGTH, pattern=LABEL_VALUE_PATTERN)]


class TemplateMetadata(ApiModel):
    """Labels and annotations copied onto every Goal made from the template."""

    # The values' syntax is a schema pattern; the keys' needs CEL (a structural schema has no
    # `propertyNames`), with `maxProperties` bounding the rule's cost.
    labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_TEMPLATE_METADATA,
        description="Labels of every Goal made from the template (Kubernetes label syntax).",
        json_schema_extra=validations(qualified_keys_rule("goalTemplate.metadata.labels")),
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_TEMPLATE_METADATA,
        description="Annotations of every Goal made from the template.",
        json_schema_extra=validations(qualified_keys_rule("goalTemplate.metadata.annotations")),
    )

    @field_validator("labels", "annotations")
    @classmethod
    def _valid_keys(cls, metadata: dict[str, str]) -> dict[str, str]:
        for key in metadata:
            if not is_qualified_name(key):
                shown = key if len(key) <= 80 else f"{key[:77]}..."
                raise ValueError(
                    f"key {shown!r} is not a Kubernetes key: an optional DNS subdomain prefix (at "
                    "most 253 characters) and `/`, then a name of 1 to 63 letters, digits, `-`, "
                    "`_` or `.` that starts and ends with a letter or digit"
                )
        return metadata


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
    approval: ApprovalSpec | None = Field(
        default=None,
        description="A person approves each goal's staged change before it is pushed.",
    )


class TaskGoalTemplate(ApiModel):
    """The template of the Goals a Backlog creates, one per selected task."""

    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata)
    spec: TaskGoalSpec
