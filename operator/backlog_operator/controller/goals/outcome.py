"""What a worker Job's attempt came to, read from the Job and its Pod. Pure.

A finished attempt is turned into a WorkerResult: the `publish` step's termination message when
it wrote one, otherwise a failure built from the step that failed (its termination message,
exit code and reason), from the Job's own failure (deadline exceeded) or from a missing Pod.
A Pod evicted or disrupted (DisruptionTarget) ends as `Disrupted` (retryable, not counted as an
attempt by the reconciler), or as `WorkspaceFull` (permanent) when it outgrew its workspace.

While the Job runs, `pod_progress` reads where its Pod is (the step, and why it waits) and
`stuck_result` says when waiting cannot heal: an invalid image name at once, an image that
cannot be pulled or a missing Secret (or key) after `STUCK_GRACE`. A Secret volume that cannot be
mounted leaves no trace in the Pod's status (its containers just wait to be created): the
kubelet says it in `FailedMount` Events, read once a Pod has waited `MOUNT_CHECK_AFTER`
(`mount_check_due`, `mount_failure`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from backlog_operator.api.result import ExitCode, Outcome, WorkerResult, failure

Step = Literal["clone", "task", "publish", "heal"]
# An attempt's steps, in order; a heal Job runs the one step `heal` (`heal_result`).
STEPS: tuple[Step, ...] = ("clone", "task", "publish")
HEAL_STEP: Step = "heal"

# How long an image that cannot be pulled, or a Secret (or key) that is missing, may hold up an
# attempt before it is failed: long enough for a registry hiccup or a Secret applied late.
STUCK_GRACE = timedelta(minutes=5)
DISRUPTED = "Disrupted"
# How long a Pod may wait for its first container before its Events are read for a volume that
# cannot be mounted (a mount takes seconds; reading Events for every Pod would cost a call each).
MOUNT_CHECK_AFTER = timedelta(seconds=30)
FAILED_MOUNT = "FailedMount"
# Waiting reasons on the normal way to running: not a problem, not reported.
_ON_THE_WAY = frozenset({"ContainerCreating", "PodInitializing"})
_IMAGE_PULL = frozenset({"ErrImagePull", "ImagePullBackOff"})
# The kubelet's words for a missing Secret or key: in a container's CreateContainerConfigError
# (an env var from a Secret) and in a FailedMount Event (a Secret volume).
_MISSING_SECRET = re.compile(
    r"secret .* not found|couldn't find key|non-existent secret key", re.IGNORECASE
)
# The kubelet's messages for an eviction over an emptyDir's sizeLimit or an ephemeral-storage
# limit (not the node's own disk pressure, which is a disruption).
_STORAGE_LIMIT = re.compile(
    r"emptydir|ephemeral local storage|local ephemeral storage", re.IGNORECASE
)


@dataclass(frozen=True)
class PodProgress:
    """Where a running attempt's Pod is: its step, and why it waits (None: it does not)."""

    step: Step | None
    reason: str | None = None
    message: str | None = None


def pod_progress(pod: Mapping[str, Any] | None) -> PodProgress | None:
    """The step a Pod runs or waits in and its waiting reason, or None without a Pod."""
    if not pod:
        return None
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = str(condition.get("reason") or "Unschedulable")
            return PodProgress(None, reason, str(condition.get("message") or "") or None)
    statuses = _container_statuses(pod)
    if not statuses:
        return PodProgress(None)
    for step in STEPS:
        state = (statuses.get(step) or {}).get("state") or {}
        terminated = state.get("terminated")
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        waiting = state.get("waiting")
        reason = str((waiting or {}).get("reason") or "")
        if not waiting or reason in _ON_THE_WAY or not reason:
            return PodProgress(step)
        return PodProgress(step, reason, str(waiting.get("message") or "") or None)
    return PodProgress("publish")


def same_wait(one: str | None, other: str | None) -> bool:
    """Whether two waiting reasons are the same wait (an image pull alternates two)."""
    if one in _IMAGE_PULL and other in _IMAGE_PULL:
        return True
    return one == other


def stuck_result(progress: PodProgress, since: datetime, now: datetime) -> WorkerResult | None:
    """The failure of an attempt whose Pod waits for what cannot heal, or None: it may yet run.

    `since`: when the wait was first seen. InvalidImageName fails at once (permanent); an image
    that cannot be pulled (retryable) and a missing Secret or key (permanent) after STUCK_GRACE.
    """
    reason, step = progress.reason, progress.step
    where = f"the {step} step" if step else "the Pod"
    said = f": {progress.message}" if progress.message else ""
    if reason == "InvalidImageName":
        return failure(
            "InvalidImageName",
            f"{where} has an invalid image name{said}",
            retryable=False,
            step=step,
        )
    if now - since < STUCK_GRACE:
        return None
    minutes = int(STUCK_GRACE.total_seconds() // 60)
    if reason in _IMAGE_PULL:
        text = f"{where} could not pull its image for {minutes} minutes ({reason}){said}"
        return failure("ImagePullFailed", text, retryable=True, step=step)
    missing_secret = reason in ("CreateContainerConfigError", FAILED_MOUNT)
    if missing_secret and _MISSING_SECRET.search(progress.message or ""):
        text = f"{where} is missing a Secret or key for {minutes} minutes{said}"
        return failure("SecretNotFound", text, retryable=False, step=step)
    return None


def mount_check_due(pod: Mapping[str, Any], progress: PodProgress, now: datetime) -> bool:
    """Whether a Pod has waited for its first container long enough (`MOUNT_CHECK_AFTER`) that
    its FailedMount Events should be read: scheduled, nothing started, no reason given."""
    if progress.reason is not None or progress.step not in (None, STEPS[0]):
        return False
    status = pod.get("status") or {}
    if status.get("phase", "Pending") != "Pending":
        return False
    if any(
        "running" in (item.get("state") or {}) or "terminated" in (item.get("state") or {})
        for item in _container_statuses(pod).values()
    ):
        return False
    created = _parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
    return created is not None and now - created >= MOUNT_CHECK_AFTER


def mount_failure(events: Iterable[Mapping[str, Any]], progress: PodProgress) -> PodProgress:
    """`progress` with the newest FailedMount that names a missing Secret or key as its waiting
    reason (the first step waits on it), or `progress` as it was."""
    found = [
        event
        for event in events
        if event.get("reason") == FAILED_MOUNT
        and _MISSING_SECRET.search(str(event.get("message") or ""))
    ]
    if not found:
        return progress
    newest = max(found, key=_event_time)
    return PodProgress(progress.step or STEPS[0], FAILED_MOUNT, str(newest.get("message")))


def _event_time(event: Mapping[str, Any]) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


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
    if finished != "Complete" or publish is None:
        disrupted = _disruption(pod)
        if disrupted is not None:
            return disrupted
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


def heal_result(job: Mapping[str, Any], pod: Mapping[str, Any] | None) -> WorkerResult | None:
    """A heal Job's result (its one container's termination message, as an attempt's `publish`
    is read), or a failure built from its exit code or the Job's; None while it runs."""
    finished = job_finished(job)
    if finished is None:
        return None
    terminated = _terminated(_container_statuses(pod).get(HEAL_STEP))
    if terminated is not None:
        parsed = _parse_message(terminated.get("message"))
        if parsed is not None:
            return parsed
        if terminated.get("exitCode", 0) != 0 or finished != "Complete":
            return _step_failure(HEAL_STEP, terminated, set())
    disrupted = _disruption(pod)
    if disrupted is not None:
        return disrupted
    if finished == "Complete":
        return failure(
            "InvalidResult",
            "the heal step ended without a readable result",
            retryable=True,
            step=HEAL_STEP,
        )
    return _failure(job, {}, set())


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


def _disruption(pod: Mapping[str, Any] | None) -> WorkerResult | None:
    """`WorkspaceFull` for a Pod evicted over its storage limits, `Disrupted` for one evicted,
    preempted or lost with its node (a DisruptionTarget condition), else None."""
    status = (pod or {}).get("status") or {}
    evicted = status.get("reason") == "Evicted"
    message = str(status.get("message") or "").strip()
    if evicted and _STORAGE_LIMIT.search(message):
        return failure(
            "WorkspaceFull",
            f"the Pod was evicted for using more disk than allowed ({message}); the same task "
            "would fill it again: raise spec.task.workspaceSizeLimit (or its resources' "
            "ephemeral-storage limit) or have the task write less",
            retryable=False,
        )
    disruption = next(
        (
            condition
            for condition in status.get("conditions") or []
            if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True"
        ),
        None,
    )
    if not evicted and disruption is None:
        return None
    why = message or str((disruption or {}).get("message") or "") or "evicted"
    return failure(DISRUPTED, f"the Pod was disrupted: {why}", retryable=True)


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
