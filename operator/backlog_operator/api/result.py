"""The worker's result: the JSON the `publish` step writes to its termination-message path.

The operator reads it back into the Goal's status, so its shape is a public contract
(documented in docs/worker.md). It must fit in 4096 bytes, the kubelet's limit.
"""

from __future__ import annotations

import json
from enum import IntEnum, StrEnum
from typing import Literal

from pydantic import Field

from backlog_operator.api.common import ApiModel
from backlog_operator.api.goal import PullRequestStatus

MAX_RESULT_BYTES = 4096


class Outcome(StrEnum):
    """How an attempt ended."""

    PUBLISHED = "published"
    ALREADY_COMPLETED = "already_completed"
    FAILED = "failed"


class ExitCode(IntEnum):
    """Exit codes of the worker steps, mapped by the operator (sysexits.h numbers).

    Any other non-zero code (a crash, an OOM kill) is treated as retryable.
    """

    OK = 0
    USAGE = 64  # bad command line: permanent
    PERMANENT = 65  # bad goal, bad backlog, path violation, access denied: do not retry
    RETRYABLE = 75  # unreachable remote, base moved, forge 5xx or rate limit: retry later


class WorkerResult(ApiModel):
    """Outcome of one attempt, camelCase as everywhere on the Kubernetes side."""

    outcome: Outcome
    task_id: str | None = None
    attempt_id: str | None = None
    branch: str | None = None
    commit: str | None = None
    pull_request: PullRequestStatus | None = None
    changed_files: list[str] = Field(default_factory=list)
    backlog_updated: bool = False
    reason: str | None = Field(default=None, description="CamelCase word, for a failure.")
    message: str | None = Field(default=None, description="A sentence for people.")
    retryable: bool | None = Field(default=None, description="For a failure: worth another attempt.")
    retry_after_seconds: int | None = Field(default=None, description="The forge asked to wait.")
    warnings: list[str] = Field(default_factory=list)
    step: Literal["clone", "task", "publish"] | None = Field(
        default=None, description="The step that produced this result."
    )

    @property
    def exit_code(self) -> ExitCode:
        """The exit code the step ends with."""
        if self.outcome is not Outcome.FAILED:
            return ExitCode.OK
        return ExitCode.RETRYABLE if self.retryable else ExitCode.PERMANENT

    def to_json(self) -> str:
        """Compact JSON of at most MAX_RESULT_BYTES bytes.

        What is cut to fit, in order: the changed-file list, warnings, then the message;
        `changedFiles` is truncated rather than dropped so the operator still sees some.
        """
        data = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        text = _dump(data)
        while len(text.encode()) > MAX_RESULT_BYTES and data.get("changedFiles"):
            files: list[str] = data["changedFiles"]  # type: ignore[assignment]
            data["changedFiles"] = files[: len(files) // 2]
            data["changedFilesTruncated"] = True
            text = _dump(data)
        if len(text.encode()) > MAX_RESULT_BYTES:
            data.pop("warnings", None)
            text = _dump(data)
        if len(text.encode()) > MAX_RESULT_BYTES and data.get("message"):
            overflow = len(text.encode()) - MAX_RESULT_BYTES
            message = str(data["message"]).encode()[: -(overflow + 16)].decode(errors="ignore")
            data["message"] = message + "…"
            text = _dump(data)
        return text

    @classmethod
    def from_json(cls, text: str) -> WorkerResult:
        """Parse a termination message written by `to_json` (extra keys are ignored)."""
        data = json.loads(text)
        data.pop("changedFilesTruncated", None)
        return cls.model_validate(data)


def _dump(data: dict[str, object]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def failure(
    reason: str,
    message: str,
    *,
    retryable: bool,
    step: Literal["clone", "task", "publish"] | None = None,
    **fields: object,
) -> WorkerResult:
    """A failed result."""
    return WorkerResult(
        outcome=Outcome.FAILED,
        reason=reason,
        message=message,
        retryable=retryable,
        step=step,
        **fields,  # type: ignore[arg-type]
    )
