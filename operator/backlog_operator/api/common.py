"""Shared pieces of the custom resources: camelCase base model, conditions, secret references."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from backlog_operator.api.goal_rules import (
    DEFAULT_SECRET_KEY,
    SECRET_KEY_MAX_LENGTH,
    SECRET_KEY_PATTERN,
    SECRET_NAME_MAX_LENGTH,
    SECRET_NAME_PATTERN,
)

GROUP = "backlog.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class ApiModel(BaseModel):
    """Base of every model on the Kubernetes side: camelCase on the wire, snake_case in Python.

    Unknown fields are refused, so a typo in a manifest is an error rather than a silent no-op
    (the generated CRD says the same to the API server).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict[str, object]:
        """The model as the Kubernetes API sees it: camelCase keys, no unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One entry of `status.conditions`, in the shape of `metav1.Condition`."""

    type: str = Field(description="Ready, Reconciling or Stalled.")
    status: ConditionStatus
    reason: str = Field(description="A CamelCase word naming why the condition is as it is.")
    message: str = Field(default="", description="A sentence for people.")
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this condition was computed for."
    )
    last_transition_time: datetime | None = Field(
        default=None, description="When the status last changed (not the reason or message)."
    )


class SecretKeyReference(ApiModel):
    """A key of a Secret in the Goal's namespace; only the reference is stored, never the value."""

    name: str = Field(
        min_length=1,
        max_length=SECRET_NAME_MAX_LENGTH,
        pattern=SECRET_NAME_PATTERN,
        description="Name of the Secret, in the same namespace as the resource.",
    )
    key: str = Field(
        default=DEFAULT_SECRET_KEY,
        min_length=1,
        max_length=SECRET_KEY_MAX_LENGTH,
        pattern=SECRET_KEY_PATTERN,
        description=(
            "Key inside the Secret that holds the token (not used when the Secret holds a "
            "GitHub App: a key appId)."
        ),
    )


def describe_validation_error(error: Exception) -> str:
    """A one-line description of a pydantic ValidationError that never echoes input values.

    pydantic's own text repeats the offending input, which may be a URL with a token in it.
    """
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return str(error)
    problems = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(part) for part in item["loc"]) or "(root)"
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)
