"""What a worker Job's attempt came to, read from the Job and its Pod. Pure.

A finished attempt is turned into a WorkerResult: the `publish` step's termination message when
it wrote one, otherwise a failure built from the step that failed (its termination message,
exit code and reason), from the Job's own failure (deadline exceeded) or from a missing Pod.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from backlog_operator.api.result import ExitCode, Outcome, WorkerResult, failure

Step = Literal["clone", "task", "publish"]
STEPS: tuple[Step, ...] = ("clone", "task", "publish")


def job_finished(job: Mapping[str, Any]) -> str | None:
    """`Complete` or `Failed` when the Job has finished, else None."""
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return str(condition["type"])
    return None


def attempt_result(
    job: Mapping[str, Any],
    pod: Mapping[str, Any] | None,
    *,
    permanent_exit_codes: Iterable[int] = (),
) -> WorkerResult | None:
    """The attempt's result, or None while the Job is still running."""
    finished = job_finished(job)
    if finished is None:
        return None
    statuses = _container_statuses(pod)
    publish = _terminated(statuses.get("publish"))
    if finished == "Complete" and publish is not None:
        parsed = _parse_message(publish.get("message"))
        if parsed is not None:
            return parsed
        return failure(
            "InvalidResult",
            "the publish step ended without a readable result",
            retryable=True,
            step="publish",
        )
    return _failure(job, statuses, set(permanent_exit_codes))


def _failure(
    job: Mapping[str, Any], statuses: Mapping[str, Mapping[str, Any]], permanent: set[int]
) -> WorkerResult:
    for step in STEPS:
        terminated = _terminated(statuses.get(step))
        if terminated is None or terminated.get("exitCode", 0) == 0:
            continue
        return _step_failure(step, terminated, permanent)
    reason, message = _job_failure(job)
    if reason == "DeadlineExceeded":
        return failure("TimedOut", f"the attempt exceeded its deadline: {message}", retryable=True)
    return failure(reason or "JobFailed", message or "the worker Job failed", retryable=True)


def _step_failure(step: Step, terminated: Mapping[str, Any], permanent: set[int]) -> WorkerResult:
    code = int(terminated.get("exitCode", 1))
    kill_reason = str(terminated.get("reason") or "")
    if step != "task":
        parsed = _parse_message(terminated.get("message"))
        if parsed is not None and parsed.outcome is Outcome.FAILED:
            return parsed
    if kill_reason == "OOMKilled":
        return failure(
            "OutOfMemory", f"the {step} step ran out of memory", retryable=True, step=step
        )
    if step == "task":
        return failure(
            "TaskFailed",
            f"the task command exited with {code}"
            + (f" ({kill_reason})" if kill_reason not in ("", "Error") else ""),
            retryable=code not in permanent,
            step="task",
        )
    retryable = code != ExitCode.PERMANENT and code != ExitCode.USAGE
    return failure(
        "StepFailed",
        f"the {step} step exited with {code}" + (f" ({kill_reason})" if kill_reason else ""),
        retryable=retryable,
        step=step,
    )


def _job_failure(job: Mapping[str, Any]) -> tuple[str, str]:
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return str(condition.get("reason") or ""), str(condition.get("message") or "")
    return "", ""


def _container_statuses(pod: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    if not pod:
        return {}
    status = pod.get("status") or {}
    found: dict[str, Mapping[str, Any]] = {}
    for item in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        found[str(item.get("name"))] = item
    return found


def _terminated(status: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not status:
        return None
    state = status.get("state") or {}
    terminated = state.get("terminated") or (status.get("lastState") or {}).get("terminated")
    return terminated if isinstance(terminated, Mapping) else None


def _parse_message(message: object) -> WorkerResult | None:
    if not isinstance(message, str) or not message.strip():
        return None
    # The message may have text before the JSON (a container's own output); the JSON is last.
    text = message.strip().splitlines()[-1]
    try:
        return WorkerResult.from_json(text)
    except (ValueError, json.JSONDecodeError):
        return None
