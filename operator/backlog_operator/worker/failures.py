"""One place that turns every error a step can meet into a failed result (reason, retryable)."""

from __future__ import annotations

import sys
from typing import Literal

from backlog_operator.api.result import WorkerResult, failure
from backlog_operator.redact import Redactor

Step = Literal["clone", "task", "publish"]


class StepFailure(Exception):  # noqa: N818 (a failure is the normal outcome it names)
    """A step cannot go on; carries the result's reason and whether a retry may help."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retryable: bool,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.retry_after_seconds = retry_after_seconds


def as_step_failure(error: Exception) -> StepFailure:
    """Classify an adapter's or the backlog's error; anything unknown is an internal error."""
    from backlog_operator.adapters.git import GitError
    from backlog_operator.backlog.errors import BacklogError
    from backlog_operator.worker.context import InvalidGoalError

    if isinstance(error, StepFailure):
        return error
    if isinstance(error, GitError):
        return StepFailure(error.reason, str(error), retryable=error.retryable)
    # Only a loaded forge adapter can have raised its error: do not import PyGithub to ask.
    forge = sys.modules.get("backlog_operator.adapters.github")
    if forge is not None and isinstance(error, forge.ForgeError):
        return StepFailure(
            error.reason,
            str(error),
            retryable=error.retryable,
            retry_after_seconds=error.retry_after_seconds,
        )
    if isinstance(error, BacklogError):
        return StepFailure("InvalidBacklog", str(error), retryable=False)
    if isinstance(error, InvalidGoalError):
        return StepFailure("InvalidGoal", str(error), retryable=False)
    # A bug or an environment problem we did not foresee: worth one more attempt.
    return StepFailure("InternalError", f"{type(error).__name__}: {error}", retryable=True)


def failed_result(
    error: Exception,
    *,
    step: Step,
    redactor: Redactor,
    task_id: str | None = None,
    attempt_id: str | None = None,
) -> WorkerResult:
    """The failed result for `error`, every text scrubbed of secrets."""
    problem = as_step_failure(error)
    return failure(
        problem.reason,
        redactor(problem.message),
        retryable=problem.retryable,
        step=step,
        retry_after_seconds=problem.retry_after_seconds,
        task_id=task_id,
        attempt_id=attempt_id,
    )
