"""The worker's result as the steps write it: plain data, with no pydantic to import.

Every worker step is a short process, and pydantic costs one more to import than its git
commands take; so the steps build a `StepResult` and write its JSON, and the operator reads that
JSON back with the pydantic model `api.result.WorkerResult`. The two have the same fields and
write the same JSON (`fit_result` is the one place that fits it into the kubelet's 4096 bytes);
`tests/unit/test_redact_and_result.py` holds them together.
"""

# No `from __future__ import annotations` here: `typing.NamedTuple` would compile each of its
# fields' annotations from their text, a noticeable part of a worker step's start.

import json
from collections.abc import Mapping, Sequence
from enum import IntEnum, StrEnum
from typing import Any, Literal, NamedTuple

MAX_RESULT_BYTES = 4096

Step = Literal["clone", "task", "publish", "heal"]


class Outcome(StrEnum):
    """How an attempt ended."""

    PUBLISHED = "published"
    ALREADY_COMPLETED = "already_completed"
    FAILED = "failed"
    # Nothing pushed: the change is staged for approval (`staged` says what it is).
    STAGED = "staged"


class ExitCode(IntEnum):
    """Exit codes of the worker steps, mapped by the operator (sysexits.h numbers).

    Any other non-zero code (a crash, an OOM kill) is treated as retryable.
    """

    OK = 0
    USAGE = 64  # bad command line: permanent
    PERMANENT = 65  # bad goal, bad backlog, path violation, access denied: do not retry
    RETRYABLE = 75  # unreachable remote, base moved, forge 5xx or rate limit: retry later


class ResultPullRequest(NamedTuple):
    """The pull request an attempt opened or reused."""

    number: int
    url: str


class StepResult(NamedTuple):
    """Outcome of one attempt (the fields of `api.result.WorkerResult`, in its order).

    A named tuple: it costs a step a fraction of what a dataclass would to define.
    """

    outcome: Outcome
    task_id: str | None = None
    attempt_id: str | None = None
    branch: str | None = None
    commit: str | None = None
    pull_request: ResultPullRequest | None = None
    pull_request_created: bool | None = None
    changed_files: Sequence[str] = ()
    backlog_updated: bool = False
    reason: str | None = None
    message: str | None = None
    retryable: bool | None = None
    retry_after_seconds: int | None = None
    conflicted_files: Sequence[str] | None = None
    warnings: Sequence[str] = ()
    step: Step | None = None
    #: The task's usage in its JSON form (`api.usage_rules.usage_data`), or None.
    usage: Mapping[str, Any] | None = None
    #: A staged change (outcome `staged`): its camelCase fields (docs/worker.md), or None.
    staged: Mapping[str, Any] | None = None

    @property
    def exit_code(self) -> ExitCode:
        """The exit code the step ends with."""
        if self.outcome is not Outcome.FAILED:
            return ExitCode.OK
        return ExitCode.RETRYABLE if self.retryable else ExitCode.PERMANENT

    def to_wire(self) -> dict[str, Any]:
        """The fields in camelCase, without those that are None (as the operator's model)."""
        pull_request = self.pull_request
        values: dict[str, Any] = {
            "outcome": self.outcome.value,
            "taskId": self.task_id,
            "attemptId": self.attempt_id,
            "branch": self.branch,
            "commit": self.commit,
            "pullRequest": (
                None
                if pull_request is None
                else {"number": pull_request.number, "url": pull_request.url}
            ),
            "pullRequestCreated": self.pull_request_created,
            "changedFiles": list(self.changed_files),
            "backlogUpdated": self.backlog_updated,
            "reason": self.reason,
            "message": self.message,
            "retryable": self.retryable,
            "retryAfterSeconds": self.retry_after_seconds,
            "conflictedFiles": (
                None if self.conflicted_files is None else list(self.conflicted_files)
            ),
            "warnings": list(self.warnings),
            "step": self.step,
            # A copy: fitting pops the usage's own keys, never a nested value's.
            "usage": None if self.usage is None else dict(self.usage),
            "staged": None if self.staged is None else dict(self.staged),
        }
        return {key: value for key, value in values.items() if value is not None}

    def to_json(self) -> str:
        """Compact JSON of at most MAX_RESULT_BYTES bytes (see `fit_result`)."""
        return fit_result(self.to_wire())


def failed(
    reason: str,
    message: str,
    *,
    retryable: bool,
    step: Step | None = None,
    task_id: str | None = None,
    attempt_id: str | None = None,
    retry_after_seconds: int | None = None,
    branch: str | None = None,
    commit: str | None = None,
    conflicted_files: Sequence[str] | None = None,
) -> StepResult:
    """A failed result."""
    return StepResult(
        outcome=Outcome.FAILED,
        reason=reason,
        message=message,
        retryable=retryable,
        step=step,
        task_id=task_id,
        attempt_id=attempt_id,
        retry_after_seconds=retry_after_seconds,
        branch=branch,
        commit=commit,
        conflicted_files=conflicted_files,
    )


def fit_result(data: dict[str, Any]) -> str:
    """A result's camelCase fields as compact JSON of at most MAX_RESULT_BYTES bytes.

    To fit, in order: each warning is cut to 200 characters, the changed-file and the
    conflicted-file lists are halved (with `changedFilesTruncated: true` for the first) while
    more than ten remain, warnings are dropped, the message is cut, the changed files go, then
    the conflicted files, and last the usage's warnings and counters. The outcome, its
    identifiers and the usage's figures always stay: a result that does not fit is one the
    operator cannot read.
    """
    if _fits(data):
        return _dump(data)
    data["warnings"] = [_cut(str(w), 200) for w in data.get("warnings", [])]
    while not _fits(data) and len(data.get("changedFiles", [])) > 10:
        data["changedFiles"] = data["changedFiles"][: len(data["changedFiles"]) // 2]
        data["changedFilesTruncated"] = True
    while not _fits(data) and len(data.get("conflictedFiles") or []) > 10:
        data["conflictedFiles"] = data["conflictedFiles"][: len(data["conflictedFiles"]) // 2]
    if not _fits(data):
        data.pop("warnings", None)
    if not _fits(data) and data.get("message"):
        overflow = len(_dump(data).encode()) - MAX_RESULT_BYTES
        data["message"] = _cut(str(data["message"]), max(0, len(data["message"]) - overflow - 8))
    while not _fits(data) and data.get("changedFiles"):
        data["changedFiles"] = data["changedFiles"][:-1]
        data["changedFilesTruncated"] = True
    while not _fits(data) and data.get("conflictedFiles"):
        data["conflictedFiles"] = data["conflictedFiles"][:-1]
    usage = data.get("usage")
    for detail in ("warnings", "counters"):  # bounded, so this fits; the figures stay
        if not _fits(data) and isinstance(usage, dict):
            usage.pop(detail, None)
    return _dump(data)


def _dump(data: dict[str, object]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _fits(data: dict[str, object]) -> bool:
    return len(_dump(data).encode()) <= MAX_RESULT_BYTES


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: max(0, length - 1)] + "…"
