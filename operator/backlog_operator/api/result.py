"""The worker's result: the JSON the `publish` step writes to its termination-message path.

The operator reads it back into the Goal's status, so its shape is a public contract
(documented in docs/worker.md). It must fit in 4096 bytes, the kubelet's limit.

This is the operator's model of it, which validates what it reads. The worker steps write it
from the plain `api.worker_result.StepResult` (same fields, same JSON; no pydantic to import).
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field

from backlog_operator.api.common import ApiModel
from backlog_operator.api.goal import Diffstat, PullRequestStatus
from backlog_operator.api.usage import TaskUsage
from backlog_operator.api.worker_result import (
    MAX_RESULT_BYTES,
    ExitCode,
    Outcome,
    fit_result,
)

__all__ = ["MAX_RESULT_BYTES", "ExitCode", "Outcome", "StagedResult", "WorkerResult", "failure"]


class StagedResult(ApiModel):
    """What a `stage` step staged (outcome `staged`); the patch itself is in the step's log."""

    patch_hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$", description="The change's hash.")
    base_commit: str = Field(pattern=r"^[0-9a-f]{40}$", description="The commit it applies to.")
    diffstat: Diffstat = Field(default_factory=Diffstat)
    patch_bytes: int = Field(ge=0, description="Size of the patch.")
    patch_gzip_bytes: int = Field(ge=0, description="Size of the gzipped patch in the log.")
    patch_digest: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$", description="sha256 of the gzipped patch's bytes."
    )
    manifest_digest: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$", description="sha256 of the manifest's bytes."
    )


class WorkerResult(ApiModel):
    """Outcome of one attempt, camelCase as everywhere on the Kubernetes side."""

    outcome: Outcome
    task_id: str | None = None
    attempt_id: str | None = None
    branch: str | None = None
    commit: str | None = None
    pull_request: PullRequestStatus | None = None
    pull_request_created: bool | None = Field(
        default=None,
        description="True: this attempt opened the pull request; false: it reused an open one.",
    )
    changed_files: list[str] = Field(default_factory=list)
    backlog_updated: bool = False
    reason: str | None = Field(
        default=None,
        description="CamelCase word: why an attempt failed, or what a heal did (Healed, ...).",
    )
    message: str | None = Field(default=None, description="A sentence for people.")
    retryable: bool | None = Field(
        default=None, description="For a failure: worth another attempt."
    )
    retry_after_seconds: int | None = Field(default=None, description="The forge asked to wait.")
    conflicted_files: list[str] | None = Field(
        default=None,
        description="A heal that met conflicts: the conflicting paths (at most 50).",
    )
    warnings: list[str] = Field(default_factory=list)
    step: Literal["clone", "task", "publish", "heal"] | None = Field(
        default=None, description="The step that produced this result."
    )
    usage: TaskUsage | None = Field(
        default=None,
        description="What the task reported it used (its usage file, checked); None: no file.",
    )
    staged: StagedResult | None = Field(
        default=None, description="Outcome staged: the change staged for approval."
    )

    @property
    def exit_code(self) -> ExitCode:
        """The exit code the step ends with."""
        if self.outcome is not Outcome.FAILED:
            return ExitCode.OK
        return ExitCode.RETRYABLE if self.retryable else ExitCode.PERMANENT

    def to_json(self) -> str:
        """Compact JSON of at most MAX_RESULT_BYTES bytes (see `worker_result.fit_result`)."""
        return fit_result(self.model_dump(by_alias=True, exclude_none=True, mode="json"))

    @classmethod
    def from_json(cls, text: str) -> WorkerResult:
        """Parse a termination message written by `to_json`. Unknown keys are refused, as any
        field out of bounds is: a result is read as input the operator does not trust."""
        data = json.loads(text)
        data.pop("changedFilesTruncated", None)
        return cls.model_validate(data)


def failure(
    reason: str,
    message: str,
    *,
    retryable: bool,
    step: Literal["clone", "task", "publish", "heal"] | None = None,
    **fields: object,
) -> WorkerResult:
    """A failed result."""
    return WorkerResult(
        outcome=Outcome.FAILED,
        reason=reason,
        message=message,
        retryable=retryable,
        step=step,
        **fields,
    )
