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
from backlog_operator.api.usage import TaskUsage

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

    @property
    def exit_code(self) -> ExitCode:
        """The exit code the step ends with."""
        if self.outcome is not Outcome.FAILED:
            return ExitCode.OK
        return ExitCode.RETRYABLE if self.retryable else ExitCode.PERMANENT

    def to_json(self) -> str:
        """Compact JSON of at most MAX_RESULT_BYTES bytes.

        To fit, in order: each warning is cut to 200 characters, the changed-file list is
        halved (with `changedFilesTruncated: true`) while more than ten remain, warnings are
        dropped, the message is cut, the changed files go, and last the usage's warnings and
        counters. The outcome, its identifiers and the usage's figures always stay.
        """
        data = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        if _fits(data):
            return _dump(data)
        data["warnings"] = [_cut(str(w), 200) for w in data.get("warnings", [])]
        while not _fits(data) and len(data.get("changedFiles", [])) > 10:
            data["changedFiles"] = data["changedFiles"][: len(data["changedFiles"]) // 2]
            data["changedFilesTruncated"] = True
        if not _fits(data):
            data.pop("warnings", None)
        if not _fits(data) and data.get("message"):
            overflow = len(_dump(data).encode()) - MAX_RESULT_BYTES
            data["message"] = _cut(
                str(data["message"]), max(0, len(data["message"]) - overflow - 8)
            )
        while not _fits(data) and data.get("changedFiles"):
            data["changedFiles"] = data["changedFiles"][:-1]
            data["changedFilesTruncated"] = True
        usage = data.get("usage")
        for detail in ("warnings", "counters"):  # bounded, so this fits; the figures stay
            if not _fits(data) and isinstance(usage, dict):
                usage.pop(detail, None)
        return _dump(data)

    @classmethod
    def from_json(cls, text: str) -> WorkerResult:
        """Parse a termination message written by `to_json` (extra keys are ignored)."""
        data = json.loads(text)
        data.pop("changedFilesTruncated", None)
        return cls.model_validate(data)


def _dump(data: dict[str, object]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _fits(data: dict[str, object]) -> bool:
    return len(_dump(data).encode()) <= MAX_RESULT_BYTES


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: max(0, length - 1)] + "…"


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
