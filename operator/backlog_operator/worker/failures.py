"""One place that turns every error a step can meet into a failed result (reason, retryable),
and the result of a step that finds its task already completed."""

from __future__ import annotations

from backlog_operator.api.worker_result import Outcome, Step, StepResult, failed
from backlog_operator.backlog.errors import BacklogError
from backlog_operator.errors import ClassifiedError
from backlog_operator.redact import Redactor
from backlog_operator.worker.context import InvalidGoalError, WorkerContext

__all__ = ["Step", "StepFailure", "as_step_failure", "attempt_failure", "failed_result"]


class StepFailure(ClassifiedError):  # noqa: N818 (a failure is the normal outcome it names)
    """A step cannot go on, for a reason of the worker's own (not an adapter's)."""


def as_step_failure(error: Exception) -> ClassifiedError:
    """Classify any error a step meets; anything unforeseen is an internal error."""
    if isinstance(error, ClassifiedError):  # git, forge and the worker's own failures
        return error
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
) -> StepResult:
    """The failed result for `error`, every text scrubbed of secrets."""
    problem = as_step_failure(error)
    return failed(
        problem.reason,
        redactor(problem.message),
        retryable=problem.retryable,
        step=step,
        retry_after_seconds=problem.retry_after_seconds,
        task_id=task_id,
        attempt_id=attempt_id,
    )


def attempt_failure(ctx: WorkerContext, error: Exception, *, step: Step) -> StepResult:
    """`failed_result` for this attempt: scrubbed of its secrets, its task and attempt named."""
    return failed_result(
        error, step=step, redactor=ctx.redactor, task_id=ctx.work_name, attempt_id=ctx.attempt_id
    )


def already_completed(ctx: WorkerContext, base_commit: str) -> StepResult:
    """What `publish` (or `apply`) answers when `clone` found the task completed at
    `base_commit`: nothing to publish."""
    return StepResult(
        outcome=Outcome.ALREADY_COMPLETED,
        task_id=ctx.work_name,
        attempt_id=ctx.attempt_id,
        message=f"task {ctx.work_name} is already completed at {base_commit[:12]}",
        step="publish",
    )
