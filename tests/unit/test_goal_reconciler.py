"""The Goal reconciler, step by step, against in-memory fakes (no kopf, no HTTP).

Each case is a Goal body, what the fake cluster holds (Jobs, Pods), what the capacity table
knows of other goals, the settings and a fixed clock and RNG; it expects the status written
(phase, reason, message, run fields), the conditions, the events, the Jobs created, the requeue
and the capacity table's view afterwards. The cases follow the reconciler's steps: validation,
re-run requests, finished goals, running goals (the Job and its Pod read back; retry, backoff,
permanent failure, exhausted attempts) and waiting goals (suspend, one run per task, backoff,
capacity and queue position, adoption of an existing Job, a foreign Job in the way).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from backlog_operator.api.goal import Goal, GoalStatus, Phase
from backlog_operator.api.labels import (
    ANNOTATION_REQUESTED_AT,
    LABEL_ATTEMPT,
    LABEL_GOAL_UID,
    LABEL_RUN,
)
from backlog_operator.api.result import Outcome, WorkerResult, failure
from backlog_operator.api.usage import Cost, TaskUsage
from backlog_operator.controller.goals.capacity import CapacityTable, entry_for
from backlog_operator.controller.goals.reconciler import GoalReconciler
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.status import timestamp
from backlog_operator.errors import ClassifiedError
from tests.unit.fakes import (
    ABSENT,
    FakeCluster,
    FixedClock,
    FixedRandom,
    Json,
    assert_fields,
    conditions_of,
    events_of,
    wire,
)

T = TypeVar("T")

NS = "default"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # when the goals were created
NOW = T0 + timedelta(hours=1)  # the reconcilers' clock
STARTED = T0 + timedelta(minutes=5)  # when a running goal's run started
UID = "0a1b2c3d-1111-2222-3333-444455556666"
JOB1 = "g1-0a1b2-1"  # job_name("g1", UID, attempt 1, run 1)
JOB2 = "g1-0a1b2-2"
JOB3 = "g1-0a1b2-3"
TOKEN = "2026-11-21T10:00:00Z"
SELECTOR_1 = f"{LABEL_GOAL_UID}={UID},{LABEL_RUN}=1,{LABEL_ATTEMPT}=1"

RUNNING = ("False", "Running"), ("True", "Running"), ("False", "NotStalled")
CONDITION_TYPES = ("Ready", "Reconciling", "Stalled")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def ts(moment: datetime) -> str:
    return timestamp(moment)


def conditions(*triple: tuple[str, str]) -> dict[str, tuple[str, str]]:
    return dict(zip(CONDITION_TYPES, triple, strict=True))


def waiting(reason: str = "Backoff") -> dict[str, tuple[str, str]]:
    """Conditions of a goal that waits (Queued) for `reason`."""
    return conditions(("False", reason), ("True", reason), ("False", "NotStalled"))


def stalled(reason: str) -> dict[str, tuple[str, str]]:
    return conditions(("False", reason), ("False", "Finished"), ("True", reason))


def ready(reason: str) -> dict[str, tuple[str, str]]:
    return conditions(("True", reason), ("False", "Finished"), ("False", "NotStalled"))


# --------------------------------------------------------------------------------- bodies


def goal(
    name: str = "g1",
    *,
    uid: str = UID,
    task_id: str | None = "docs-guide",
    repo: str = "o/r",
    generation: int = 1,
    created: datetime = T0,
    status: Json | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> Json:
    """A Goal as the API serves it (the shape of the operator tier's `goal_manifest`)."""
    body: Json = {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": uid,
            "generation": generation,
            "creationTimestamp": ts(created),
        },
        "spec": {
            "repository": {"url": f"https://github.com/{repo}.git"},
            "backlog": {"taskId": task_id} if task_id else {},
            "task": {"image": "busybox:1.37", "command": ["true"]},
            "retry": {"maxAttempts": 3, "backoffSeconds": 30, "maxBackoffSeconds": 600},
            **spec,
        },
    }
    if annotations:
        body["metadata"]["annotations"] = annotations
    if status is not None:
        body["status"] = status
    return body


def with_retry(**retry: Any) -> dict[str, Any]:
    return {"retry": {"maxAttempts": 3, "backoffSeconds": 30, "maxBackoffSeconds": 600, **retry}}


def running(attempts: int = 1, run: int = 1, job: str = JOB1, **more: Any) -> Json:
    """The status of a goal whose attempt's Job was started."""
    return {
        "phase": "Running",
        "reason": "Running",
        "message": f"attempt {attempts} started: Job {job}",
        "observedGeneration": 1,
        "attempts": attempts,
        "run": run,
        "jobName": job,
        "taskId": "docs-guide",
        "startTime": ts(STARTED),
        **more,
    }


def queued(reason: str, message: str, **more: Any) -> Json:
    return {
        "phase": "Queued",
        "reason": reason,
        "message": message,
        "observedGeneration": 1,
        **more,
    }


def with_conditions(status: Json, *triples: tuple[str, str], generation: int = 1) -> Json:
    """`status` with Ready/Reconciling/Stalled as the reconciler wrote them for `generation`."""
    status["conditions"] = [
        {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": "",
            "observedGeneration": generation,
            "lastTransitionTime": ts(STARTED),
        }
        for kind, (value, reason) in zip(CONDITION_TYPES, triples, strict=True)
    ]
    return status


def succeeded(**more: Any) -> Json:
    return with_conditions(
        {
            "phase": "Succeeded",
            "reason": "Published",
            "message": "pull request #707 on backlog/docs-guide-3f9c2a: https://github.com/o/r/pull/707",
            "observedGeneration": 1,
            "attempts": 1,
            "run": 1,
            "jobName": JOB1,
            "attemptId": "attempt-docs-guide-3d7b91",
            "taskId": "docs-guide",
            "outcome": "published",
            "branch": "backlog/docs-guide-3f9c2a",
            "commit": "0" * 40,
            "pullRequest": {"number": 707, "url": "https://github.com/o/r/pull/707"},
            "changedFiles": ["docs/guide.md"],
            "startTime": ts(STARTED),
            "completionTime": ts(STARTED + timedelta(minutes=3)),
            **more,
        },
        ("True", "Published"),
        ("False", "Finished"),
        ("False", "NotStalled"),
    )


def job(
    name: str = JOB1,
    *,
    uid: str | None = UID,
    attempt: int = 1,
    run: int = 1,
    finished: str | None = None,
    reason: str = "",
    message: str = "",
) -> Json:
    """A worker Job as the Job controller reports it (`finished`: Complete or Failed)."""
    labels = (
        {LABEL_GOAL_UID: uid, LABEL_RUN: str(run), LABEL_ATTEMPT: str(attempt)}
        if uid is not None
        else {}
    )
    conditions = (
        [{"type": finished, "status": "True", "reason": reason, "message": message}]
        if finished
        else []
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "status": {"conditions": conditions},
    }


def pod(*, attempt: int = 1, run: int = 1, **steps: Json) -> Json:
    """The attempt's Pod with its steps terminated as given (clone, task, publish)."""
    init = [
        {"name": step, "state": {"terminated": steps[step]}}
        for step in ("clone", "task")
        if step in steps
    ]
    main = (
        [{"name": "publish", "state": {"terminated": steps["publish"]}}]
        if "publish" in steps
        else []
    )
    return {
        "metadata": {
            "name": f"pod-{run}-{attempt}",
            "namespace": NS,
            "labels": {LABEL_GOAL_UID: UID, LABEL_RUN: str(run), LABEL_ATTEMPT: str(attempt)},
        },
        "status": {"initContainerStatuses": init, "containerStatuses": main},
    }


def ok() -> Json:
    return {"exitCode": 0, "reason": "Completed"}


def exited(code: int, reason: str = "Error", message: str | None = None) -> Json:
    found: Json = {"exitCode": code, "reason": reason}
    if message is not None:
        found["message"] = message
    return found


PUBLISHED = WorkerResult(
    outcome=Outcome.PUBLISHED,
    task_id="docs-guide",
    branch="backlog/docs-guide-3f9c2a",
    commit="0" * 40,
    pull_request={"number": 707, "url": "https://github.com/o/r/pull/707"},
    changed_files=["docs/guide.md", ".backlog/backlog.yaml"],
    backlog_updated=True,
)


def published_pod(result: WorkerResult = PUBLISHED, *, attempt: int = 1, run: int = 1) -> Json:
    return pod(
        attempt=attempt,
        run=run,
        clone=ok(),
        task=ok(),
        publish=exited(0, "Completed", result.to_json()),
    )


def other(
    name: str,
    phase: str | None,
    *,
    task_id: str | None = "docs-guide",
    repo: str = "o/r",
    **more: Any,
) -> Json:
    """Another goal as the capacity table knows it (seeded, as the runtime does at start-up)."""
    status = {"phase": phase} if phase else {}
    status.update(more.pop("status", {}))
    return goal(name, uid=f"uid-{name}", task_id=task_id, repo=repo, status=status, **more)


# ---------------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One reconcile: given `body`, the fake cluster, the capacity table and the settings,
    expect the status `fields` (None: no status write), the `conditions`, the `events`
    ((kind, reason, text in the message)), the Jobs whose creation was asked, the requeue, and
    the goal's phase in the capacity table afterwards (with its `blocked` flag; a waiting goal
    keeps the phase it was read with there, Pending or Queued, both of which wait)."""

    body: Json
    jobs: list[Json] = field(default_factory=list)
    pods: list[Json] = field(default_factory=list)
    others: list[Json] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] | None = None
    message_has: tuple[str, ...] = ()
    message_lacks: tuple[str, ...] = ()
    conditions: dict[str, tuple[str, str]] | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    create_job: list[str] = field(default_factory=list)
    requeue: float | None = None
    entry: tuple[Phase, bool] | None = None
    reads: list[tuple[str, ...]] | None = None  # the get_job/find_pod calls, when they matter


SETTINGS = {"requeue_seconds": 5.0, "worker_image": "backlog-operator:test"}

VALIDATION = [
    pytest.param(
        Case(
            body=goal(repository={"url": "https://bot:ghp_leakme123@github.com/o/r.git"}),
            fields={
                "phase": "Failed",
                "reason": "InvalidSpec",
                "observedGeneration": 1,
                "completionTime": ts(NOW),
                "attempts": ABSENT,
                "jobName": ABSENT,
            },
            message_has=("invalid spec: spec.repository", "credentials"),
            message_lacks=("ghp_leakme123",),
            conditions=stalled("InvalidSpec"),
            events=[("Warning", "InvalidSpec", "invalid spec: spec.repository")],
            reads=[],
        ),
        id="invalid-spec-credentials-in-url",
    ),
    pytest.param(
        Case(
            body=goal(
                task={
                    "image": "busybox:1.37",
                    "command": ["true"],
                    "resources": {"requests": {"memory": "8Gi"}, "limits": {"memory": "4Gi"}},
                }
            ),
            fields={"phase": "Failed", "reason": "InvalidSpec", "completionTime": ts(NOW)},
            message_has=(
                "invalid spec: spec.task.resources: ",
                "requests.memory must not be above limits.memory",
            ),
            conditions=stalled("InvalidSpec"),
            events=[("Warning", "InvalidSpec", "requests.memory must not be above")],
            reads=[],
        ),
        id="invalid-spec-resources-the-api-server-would-refuse",
    ),
    pytest.param(
        Case(
            body=goal(
                repository={"url": "https://bot:x@github.com/o/r.git"},
                status={"phase": "Failed", "reason": "InvalidSpec", "observedGeneration": 1},
            ),
            fields=None,
            reads=[],
        ),
        id="invalid-spec-already-reported-says-nothing",
    ),
    pytest.param(
        Case(
            body=goal(
                generation=2,
                repository={"url": "https://bot:x@github.com/o/r.git"},
                status={"phase": "Failed", "reason": "InvalidSpec", "observedGeneration": 1},
            ),
            fields={"phase": "Failed", "reason": "InvalidSpec", "observedGeneration": 2},
            conditions=stalled("InvalidSpec"),
            events=[("Warning", "InvalidSpec", "credentials")],
            reads=[],
        ),
        id="invalid-spec-edited-but-still-invalid-is-said-again",
    ),
    pytest.param(
        Case(
            body=goal(task={"command": ["true"]}),
            fields={
                "phase": "Failed",
                "reason": "InvalidSpec",
                "message": "invalid spec: spec.task.image: required on a cluster",
                "completionTime": ts(NOW),
            },
            conditions=stalled("InvalidSpec"),
            events=[("Warning", "InvalidSpec", "spec.task.image: required on a cluster")],
            reads=[],
        ),
        id="missing-image",
    ),
]

RERUN = [
    pytest.param(
        Case(
            body=goal(status=succeeded(), annotations={ANNOTATION_REQUESTED_AT: TOKEN}),
            fields={
                "phase": "Running",
                "reason": "Running",
                "message": "attempt 1 started: Job g1-0a1b2-r2-1",
                "run": 2,
                "attempts": 1,
                "jobName": "g1-0a1b2-r2-1",
                "attemptId": "attempt-docs-guide-1cafa2",
                "lastHandledReconcileAt": TOKEN,
                "startTime": ts(NOW),
                "pullRequest": ABSENT,
                "branch": ABSENT,
                "commit": ABSENT,
                "outcome": ABSENT,
                "completionTime": ABSENT,
                "changedFiles": ABSENT,
            },
            conditions=conditions(*RUNNING),
            events=[
                ("Normal", "RerunRequested", f"re-run requested ({TOKEN})"),
                ("Normal", "Started", "attempt 1 started: Job g1-0a1b2-r2-1"),
            ],
            create_job=["g1-0a1b2-r2-1"],
            entry=(Phase.RUNNING, False),
        ),
        id="rerun-request-resets-a-succeeded-goal",
    ),
    pytest.param(
        Case(
            body=goal(
                status=with_conditions(
                    {
                        "phase": "Failed",
                        "reason": "TaskFailed",
                        "message": "attempt 3 failed: ... (retries exhausted)",
                        "observedGeneration": 1,
                        "attempts": 3,
                        "run": 1,
                        "jobName": JOB3,
                        "outcome": "failed",
                        "startTime": ts(STARTED),
                        "completionTime": ts(STARTED + timedelta(minutes=9)),
                    },
                    ("False", "TaskFailed"),
                    ("False", "Finished"),
                    ("True", "TaskFailed"),
                ),
                annotations={ANNOTATION_REQUESTED_AT: TOKEN},
            ),
            fields={
                "phase": "Running",
                "run": 2,
                "attempts": 1,
                "jobName": "g1-0a1b2-r2-1",
                "lastHandledReconcileAt": TOKEN,
                "completionTime": ABSENT,
                "outcome": ABSENT,
                "startTime": ts(NOW),
            },
            conditions=conditions(*RUNNING),
            events=[
                ("Normal", "RerunRequested", TOKEN),
                ("Normal", "Started", "g1-0a1b2-r2-1"),
            ],
            create_job=["g1-0a1b2-r2-1"],
        ),
        id="rerun-request-gives-a-failed-goal-a-fresh-set-of-attempts",
    ),
    pytest.param(
        Case(
            body=goal(
                status=succeeded(lastHandledReconcileAt=TOKEN),
                annotations={ANNOTATION_REQUESTED_AT: TOKEN},
            ),
            fields=None,
            reads=[],
            entry=(Phase.SUCCEEDED, False),
        ),
        id="rerun-request-already-handled-runs-nothing",
    ),
    pytest.param(
        Case(
            body=goal(annotations={ANNOTATION_REQUESTED_AT: TOKEN}),
            fields={
                "phase": "Running",
                "run": 1,
                "attempts": 1,
                "jobName": JOB1,
                "lastHandledReconcileAt": TOKEN,
            },
            conditions=conditions(*RUNNING),
            events=[("Normal", "Started", "attempt 1 started: Job g1-0a1b2-1")],
            create_job=[JOB1],
        ),
        id="rerun-request-on-a-goal-not-yet-run-is-only-recorded",
    ),
]

FINISHED = [
    pytest.param(
        Case(body=goal(status=succeeded()), fields=None, reads=[], entry=(Phase.SUCCEEDED, False)),
        id="succeeded-stays-succeeded",
    ),
    pytest.param(
        Case(
            body=goal(
                status={
                    "phase": "Skipped",
                    "reason": "AlreadySucceeded",
                    "observedGeneration": 1,
                }
            ),
            fields=None,
            reads=[],
            entry=(Phase.SKIPPED, False),
        ),
        id="skipped-stays-skipped",
    ),
    pytest.param(
        Case(
            body=goal(
                status={
                    "phase": "Failed",
                    "reason": "PathViolation",
                    "observedGeneration": 1,
                    "attempts": 1,
                    "jobName": JOB1,
                }
            ),
            fields=None,
            reads=[],
            entry=(Phase.FAILED, False),
        ),
        id="failed-stays-failed",
    ),
    pytest.param(
        Case(
            body=goal(generation=2, priority=5, status=succeeded()),
            fields={
                "phase": "Succeeded",
                "reason": "Published",
                "observedGeneration": 2,
                "completionTime": ts(STARTED + timedelta(minutes=3)),
                "jobName": JOB1,
            },
            conditions=ready("Published"),
            events=[("Normal", "SpecChangedAfterFinish", ANNOTATION_REQUESTED_AT)],
            reads=[],
            entry=(Phase.SUCCEEDED, False),
        ),
        id="spec-changed-after-finish-is-noted-not-run",
    ),
]

TASK_FAILED_3 = "attempt 1 failed: the task command exited with 3"

OBSERVING = [
    pytest.param(
        Case(
            body=goal(status=running()),
            jobs=[job()],
            fields=None,
            reads=[("get_job", NS, JOB1)],
            entry=(Phase.RUNNING, False),
        ),
        id="job-still-running-writes-nothing",
    ),
    pytest.param(
        Case(
            body=goal(generation=2, status=running()),
            jobs=[job()],
            fields={"phase": "Running", "observedGeneration": 2, "attempts": 1, "jobName": JOB1},
            reads=[("get_job", NS, JOB1)],
            entry=(Phase.RUNNING, False),
        ),
        id="spec-edited-while-running-is-observed-only",
    ),
    pytest.param(
        Case(
            body=goal(status=running()),
            fields={
                "phase": "Queued",
                "reason": "Backoff",
                "message": (
                    "attempt 1 failed: the worker Job g1-0a1b2-1 disappeared; attempt 2 of 3 in 22s"
                ),
                "attempts": 1,
                "outcome": "failed",
                "nextAttemptTime": ts(NOW + timedelta(seconds=22)),
                "completionTime": ABSENT,
            },
            conditions=waiting(),
            events=[("Warning", "AttemptFailed", "the worker Job g1-0a1b2-1 disappeared")],
            requeue=22.5,
            reads=[("get_job", NS, JOB1)],
            entry=(Phase.QUEUED, False),
        ),
        id="job-missing-is-a-retryable-failure",
    ),
    pytest.param(
        Case(
            body=goal(status=running()),
            jobs=[job(finished="Complete")],
            pods=[published_pod()],
            fields={
                "phase": "Succeeded",
                "reason": "Published",
                "message": (
                    "pull request #707 on backlog/docs-guide-3f9c2a: "
                    "https://github.com/o/r/pull/707"
                ),
                "outcome": "published",
                "pullRequest": {
                    "number": 707,
                    "url": "https://github.com/o/r/pull/707",
                    "state": "open",
                },
                "branch": "backlog/docs-guide-3f9c2a",
                "commit": "0" * 40,
                "changedFiles": ["docs/guide.md", ".backlog/backlog.yaml"],
                "startTime": ts(STARTED),
                "completionTime": ts(NOW),
                "attempts": 1,
            },
            conditions={**ready("Published"), "Merged": ("False", "PullRequestOpen")},
            events=[("Normal", "Published", "pull request #707 on backlog/docs-guide-3f9c2a")],
            reads=[("get_job", NS, JOB1), ("find_pod", NS, SELECTOR_1)],
            entry=(Phase.SUCCEEDED, False),
        ),
        id="job-complete-publishes-the-pull-request",
    ),
    pytest.param(
        Case(
            body=goal(status=running()),
            jobs=[job(finished="Complete")],
            pods=[
                pod(
                    clone=ok(),
                    task=ok(),
                    publish=exited(
                        0,
                        "Completed",
                        "pushing...\ndone\n"
                        + WorkerResult(
                            outcome=Outcome.PUBLISHED,
                            branch="backlog/docs-guide-1",
                            commit="abcdef0123456789abcdef0123456789abcdef01",
                        ).to_json(),
                    ),
                )
            ],
            fields={
                "phase": "Succeeded",
                "reason": "Published",
                "message": "pushed backlog/docs-guide-1 (abcdef012345)",
                "pullRequest": ABSENT,
                "branch": "backlog/docs-guide-1",
            },
            conditions=ready("Published"),
            events=[("Normal", "Published", "pushed backlog/docs-guide-1 (abcdef012345)")],
        ),
        id="result-after-the-containers-own-output-pushed-without-pull-request",
    ),
    pytest.param(
        Case(
            body=goal(status=running()),
            jobs=[job(finished="Complete")],
            pods=[
                published_pod(
                    WorkerResult(
                        outcome=Outcome.ALREADY_COMPLETED,
                        message="docs-guide is completed in the backlog at 1234abcd",
                    )
                )
            ],
            fields={
                "phase": "Succeeded",
                "reason": "AlreadyCompleted",
                "message": "docs-guide is completed in the backlog at 1234abcd",
                "outcome": "already_completed",
                "completionTime": ts(NOW),
            },
            conditions=ready("AlreadyCompleted"),
            events=[("Normal", "AlreadyCompleted", "docs-guide is completed")],
        ),
        id="already-completed-task-succeeds-with-its-message",
    ),
    pytest.param(
        Case(
            body=goal(status=running()),
            jobs=[job(finished="Complete")],
            pods=[published_pod(WorkerResult(outcome=Outcome.ALREADY_COMPLETED))],
            fields={
                "phase": "Succeeded",
                "reason": "AlreadyCompleted",
                "message": "the task is already completed in the backlog",
            },
            conditions=ready("AlreadyCompleted"),
            events=[("Normal", "AlreadyCompleted", "the task is already completed")],
        ),
        id="already-completed-without-a-message",
    ),
    pytest.param(
        Case(
            body=goal(status=running()),
            jobs=[job(finished="Complete")],
            pods=[pod(clone=ok(), task=ok(), publish=exited(0, "Completed", "{not json"))],
            fields={
                "phase": "Queued",
                "reason": "Backoff",
                "message": (
                    "attempt 1 failed: the publish step ended without a readable result; "
                    "attempt 2 of 3 in 22s"
                ),
                "nextAttemptTime": ts(NOW + timedelta(seconds=22)),
            },
            conditions=waiting(),
            events=[("Warning", "AttemptFailed", "without a readable result")],
            requeue=22.5,
        ),
        id="unreadable-termination-message-is-retried",
    ),
    pytest.param(
        Case(
            body=goal(status=running()),
            jobs=[job(finished="Failed", reason="BackoffLimitExceeded")],
            pods=[pod(clone=ok(), task=exited(3))],
            fields={
                "phase": "Queued",
                "reason": "Backoff",
                "message": f"{TASK_FAILED_3}; attempt 2 of 3 in 22s",
                "attempts": 1,
                "outcome": "failed",
                "nextAttemptTime": ts(NOW + timedelta(seconds=22)),
            },
            conditions=waiting(),
            events=[("Warning", "AttemptFailed", f"{TASK_FAILED_3}; attempt 2 of 3 in 22s")],
            requeue=22.5,
            entry=(Phase.QUEUED, False),
        ),
        id="task-failure-is-retried-after-a-backoff",
    ),
    pytest.param(
        Case(
            body=goal(status=running(attempts=2, job=JOB2)),
            jobs=[job(JOB2, attempt=2, finished="Failed")],
            pods=[
                pod(clone=ok(), task=ok(), publish=exited(0, "Completed", PUBLISHED.to_json())),
                pod(attempt=2, clone=ok(), task=exited(3)),
            ],
            fields={
                "phase": "Queued",
                "reason": "Backoff",
                "message": (
                    "attempt 2 failed: the task command exited with 3; attempt 3 of 3 in 45s"
                ),
                "attempts": 2,
                "nextAttemptTime": ts(NOW + timedelta(seconds=45)),
            },
            conditions=waiting(),
            events=[("Warning", "AttemptFailed", "attempt 3 of 3 in 45s")],
            requeue=45.0,
            reads=[
                ("get_job", NS, JOB2),
                ("find_pod", NS, f"{LABEL_GOAL_UID}={UID},{LABEL_RUN}=1,{LABEL_ATTEMPT}=2"),
            ],
        ),
        id="second-failure-backs-off-twice-as-long-reading-its-own-pod",
    ),
    pytest.param(
        Case(
            body=goal(status=running(attempts=2, job=JOB2), **with_retry(maxBackoffSeconds=40)),
            jobs=[job(JOB2, attempt=2, finished="Failed")],
            pods=[pod(attempt=2, clone=ok(), task=exited(3))],
            fields={
                "phase": "Queued",
                "message": (
                    "attempt 2 failed: the task command exited with 3; attempt 3 of 3 in 30s"
                ),
                "nextAttemptTime": ts(NOW + timedelta(seconds=30)),
            },
            conditions=waiting(),
            events=[("Warning", "AttemptFailed", "in 30s")],
            requeue=30.0,
        ),
        id="backoff-is-capped-by-max-backoff-seconds",
    ),
    pytest.param(
        Case(
            body=goal(status=running(run=2, job="g1-0a1b2-r2-1")),
            jobs=[job("g1-0a1b2-r2-1", run=2, finished="Failed")],
            pods=[published_pod(), pod(run=2, clone=ok(), task=exited(3))],
            fields={"phase": "Queued", "reason": "Backoff", "run": 2},
            conditions=waiting(),
            events=[("Warning", "AttemptFailed", TASK_FAILED_3)],
            requeue=22.5,
            reads=[
                ("get_job", NS, "g1-0a1b2-r2-1"),
                ("find_pod", NS, f"{LABEL_GOAL_UID}={UID},{LABEL_RUN}=2,{LABEL_ATTEMPT}=1"),
            ],
        ),
        id="a-rerun-reads-its-own-pod-not-the-last-runs",
    ),
    pytest.param(
        Case(
            body=goal(status=running()),
            jobs=[job(finished="Failed")],
            pods=[
                pod(
                    clone=ok(),
                    task=ok(),
                    publish=exited(
                        75,
                        "Error",
                        failure(
                            "RateLimited",
                            "the forge asked to wait",
                            retryable=True,
                            step="publish",
                            retry_after_seconds=120,
                        ).to_json(),
                    ),
                )
            ],
            fields={
                "phase": "Queued",
                "reason": "Backoff",
                "message": "attempt 1 failed: the forge asked to wait; attempt 2 of 3 in 120s",
                "nextAttemptTime": ts(NOW + timedelta(seconds=120)),
            },
            conditions=waiting(),
            events=[("Warning", "AttemptFailed", "in 120s")],
            requeue=120.0,
        ),
        id="forge-retry-after-outweighs-the-backoff",
    ),
    pytest.param(
        Case(
            body=goal(status=running()),
            jobs=[
                job(
                    finished="Failed",
                    reason="DeadlineExceeded",
                    message="Job was active longer than specified deadline",
                )
            ],
            fields={
                "phase": "Queued",
                "reason": "Backoff",
                "message": (
                    "attempt 1 failed: the attempt exceeded its deadline: Job was active "
                    "longer than specified deadline; attempt 2 of 3 in 22s"
                ),
            },
            conditions=waiting(),
            events=[("Warning", "AttemptFailed", "exceeded its deadline")],
            requeue=22.5,
        ),
        id="deadline-exceeded-without-a-pod-is-a-timeout",
    ),
    pytest.param(
        Case(
            body=goal(status=running()),
            jobs=[job(finished="Failed")],
            pods=[pod(clone=ok(), task=exited(137, "OOMKilled"))],
            fields={
                "phase": "Queued",
                "reason": "Backoff",
                "message": (
                    "attempt 1 failed: the task step ran out of memory; attempt 2 of 3 in 22s"
                ),
            },
            conditions=waiting(),
            events=[("Warning", "AttemptFailed", "ran out of memory")],
            requeue=22.5,
        ),
        id="out-of-memory-is-retried",
    ),
    pytest.param(
        Case(
            body=goal(status=running(), **with_retry(permanentExitCodes=[42])),
            jobs=[job(finished="Failed")],
            pods=[pod(clone=ok(), task=exited(42))],
            fields={
                "phase": "Failed",
                "reason": "TaskFailed",
                "message": "attempt 1 failed: the task command exited with 42 (not retryable)",
                "outcome": "failed",
                "completionTime": ts(NOW),
                "nextAttemptTime": ABSENT,
            },
            conditions=stalled("TaskFailed"),
            events=[("Warning", "Failed", "exited with 42 (not retryable)")],
            entry=(Phase.FAILED, False),
        ),
        id="permanent-exit-code-fails-at-once",
    ),
    pytest.param(
        Case(
            body=goal(status=running()),
            jobs=[job(finished="Failed")],
            pods=[
                pod(
                    clone=ok(),
                    task=ok(),
                    publish=exited(
                        65,
                        "Error",
                        failure(
                            "PathViolation",
                            "the task changed src/app.py",
                            retryable=False,
                            step="publish",
                        ).to_json(),
                    ),
                )
            ],
            fields={
                "phase": "Failed",
                "reason": "PathViolation",
                "message": "attempt 1 failed: the task changed src/app.py (not retryable)",
                "completionTime": ts(NOW),
            },
            conditions=stalled("PathViolation"),
            events=[("Warning", "Failed", "src/app.py")],
            entry=(Phase.FAILED, False),
        ),
        id="publish-refusal-is-permanent",
    ),
    pytest.param(
        Case(
            body=goal(status=running(attempts=3, job=JOB3)),
            jobs=[job(JOB3, attempt=3, finished="Failed")],
            pods=[pod(attempt=3, clone=ok(), task=exited(3))],
            fields={
                "phase": "Failed",
                "reason": "TaskFailed",
                "message": "attempt 3 failed: the task command exited with 3 (retries exhausted)",
                "attempts": 3,
                "completionTime": ts(NOW),
            },
            conditions=stalled("TaskFailed"),
            events=[("Warning", "Failed", "(retries exhausted)")],
            entry=(Phase.FAILED, False),
        ),
        id="attempts-exhausted",
    ),
]

BUSY = "default/busy"

WAITING = [
    pytest.param(
        Case(
            body=goal(),
            fields={
                "phase": "Running",
                "reason": "Running",
                "message": "attempt 1 started: Job g1-0a1b2-1",
                "observedGeneration": 1,
                "attempts": 1,
                "run": 1,
                "jobName": JOB1,
                "attemptId": "attempt-docs-guide-3d7b91",
                "taskId": "docs-guide",
                "startTime": ts(NOW),
                "queuePosition": ABSENT,
            },
            conditions=conditions(*RUNNING),
            events=[("Normal", "Started", "attempt 1 started: Job g1-0a1b2-1")],
            create_job=[JOB1],
            entry=(Phase.RUNNING, False),
        ),
        id="new-goal-starts-its-first-attempt",
    ),
    pytest.param(
        Case(
            body=goal(task_id=None),
            fields={"phase": "Running", "taskId": "g1", "attemptId": "attempt-g1-3d7b91"},
            conditions=conditions(*RUNNING),
            events=[("Normal", "Started", JOB1)],
            create_job=[JOB1],
        ),
        id="free-form-goal-works-under-its-own-name",
    ),
    pytest.param(
        Case(
            body=goal(suspend=True),
            fields={
                "phase": "Queued",
                "reason": "Suspended",
                "message": "suspended: spec.suspend is true",
                "attempts": ABSENT,
            },
            conditions=waiting("Suspended"),
            events=[("Normal", "Suspended", "suspended: spec.suspend is true")],
            requeue=5.0,
            reads=[],
            entry=(Phase.PENDING, False),
        ),
        id="suspended-goal-waits",
    ),
    pytest.param(
        Case(
            body=goal(suspend=True, status=queued("Suspended", "suspended: spec.suspend is true")),
            fields=None,
            requeue=5.0,
            reads=[],
        ),
        id="suspended-goal-says-it-once",
    ),
    pytest.param(
        Case(
            body=goal(
                suspend=True,
                generation=2,
                status=queued("Suspended", "suspended: spec.suspend is true"),
            ),
            fields={"phase": "Queued", "reason": "Suspended", "observedGeneration": 2},
            requeue=5.0,
        ),
        id="suspended-goal-edited-is-observed-without-an-event",
    ),
    pytest.param(
        Case(
            body=goal(status=queued("Suspended", "suspended: spec.suspend is true")),
            fields={"phase": "Running", "attempts": 1},
            conditions=conditions(*RUNNING),
            events=[("Normal", "Started", JOB1)],
            create_job=[JOB1],
        ),
        id="resumed-goal-starts",
    ),
    pytest.param(
        Case(
            body=goal(),
            others=[other("first", "Succeeded")],
            fields={
                "phase": "Skipped",
                "reason": "AlreadySucceeded",
                "message": "goal default/first already completed this task",
                "completionTime": ts(NOW),
                "attempts": ABSENT,
            },
            conditions=ready("AlreadySucceeded"),
            events=[("Normal", "Skipped", "goal default/first already completed this task")],
            entry=(Phase.SKIPPED, False),
        ),
        id="task-already-done-by-another-goal-is-skipped",
    ),
    pytest.param(
        Case(
            body=goal(),
            others=[other("first", "Running")],
            fields={
                "phase": "Queued",
                "reason": "WaitingForTask",
                "message": "waiting for goal default/first, which runs the same task",
            },
            conditions=waiting("WaitingForTask"),
            events=[("Normal", "WaitingForTask", "default/first")],
            requeue=5.0,
            entry=(Phase.PENDING, True),
        ),
        id="one-run-per-task",
    ),
    pytest.param(
        Case(
            body=goal(),
            others=[other("first", "Running", repo="o/other")],
            fields={"phase": "Running"},
            conditions=conditions(*RUNNING),
            events=[("Normal", "Started", JOB1)],
            create_job=[JOB1],
        ),
        id="same-task-id-in-another-repository-is-another-task",
    ),
    pytest.param(
        Case(
            body=goal(),
            others=[other("first", "Failed")],
            fields={"phase": "Running"},
            conditions=conditions(*RUNNING),
            events=[("Normal", "Started", JOB1)],
            create_job=[JOB1],
        ),
        id="a-failed-goal-of-the-task-does-not-hold-it",
    ),
    pytest.param(
        Case(
            body=goal(
                status=queued(
                    "Backoff",
                    "attempt 1 failed: x; attempt 2 of 3 in 22s",
                    attempts=1,
                    jobName=JOB1,
                    nextAttemptTime=ts(NOW + timedelta(seconds=10)),
                )
            ),
            fields=None,
            requeue=10.0,
            reads=[],
            entry=(Phase.QUEUED, False),
        ),
        id="backing-off-until-the-next-attempt-time",
    ),
    pytest.param(
        Case(
            body=goal(
                status=queued(
                    "Backoff",
                    "attempt 1 failed: x; attempt 2 of 3 in 22s",
                    attempts=1,
                    jobName=JOB1,
                    startTime=ts(STARTED),
                    nextAttemptTime=ts(NOW),
                )
            ),
            fields={
                "phase": "Running",
                "message": "attempt 2 started: Job g1-0a1b2-2",
                "attempts": 2,
                "jobName": JOB2,
                "attemptId": "attempt-docs-guide-54ec6c",
                "nextAttemptTime": ABSENT,
                "startTime": ts(STARTED),
            },
            conditions=conditions(*RUNNING),
            events=[("Normal", "Started", "attempt 2 started: Job g1-0a1b2-2")],
            create_job=[JOB2],
            entry=(Phase.RUNNING, False),
        ),
        id="backoff-over-starts-the-next-attempt-keeping-the-start-time",
    ),
    pytest.param(
        Case(
            body=goal(),
            others=[other("busy", "Running", task_id="other-task")],
            fields={
                "phase": "Queued",
                "reason": "WaitingForCapacity",
                "message": "waiting for capacity (position 1 in the queue)",
                "queuePosition": 1,
                "taskId": "docs-guide",
            },
            conditions=waiting("WaitingForCapacity"),
            events=[("Normal", "WaitingForCapacity", "position 1 in the queue")],
            requeue=5.0,
            reads=[],
            entry=(Phase.PENDING, False),
        ),
        id="capacity-per-repository-full",
    ),
    pytest.param(
        Case(
            body=goal(task_id=None),
            others=[other("busy", "Running", task_id="other-task")],
            # Named before any Job exists: `kubectl get goals` shows the work of a waiting goal.
            fields={"phase": "Queued", "reason": "WaitingForCapacity", "taskId": "g1"},
            conditions=waiting("WaitingForCapacity"),
            events=[("Normal", "WaitingForCapacity", "position 1 in the queue")],
            requeue=5.0,
        ),
        id="a-waiting-free-form-goal-names-its-work",
    ),
    pytest.param(
        Case(
            body=goal(),
            others=[other("busy", "Running", task_id="other-task")],
            settings={"max_running_per_repository": 2},
            fields={"phase": "Running"},
            conditions=conditions(*RUNNING),
            events=[("Normal", "Started", JOB1)],
            create_job=[JOB1],
        ),
        id="capacity-per-repository-raised",
    ),
    pytest.param(
        Case(
            body=goal(),
            others=[other("busy", "Running", task_id="other-task", repo="o/other")],
            fields={"phase": "Running"},
            conditions=conditions(*RUNNING),
            events=[("Normal", "Started", JOB1)],
            create_job=[JOB1],
        ),
        id="capacity-of-another-repository-does-not-count",
    ),
    pytest.param(
        Case(
            body=goal(),
            others=[other("busy", "Running", task_id="other-task", repo="o/other")],
            settings={"max_running": 1},
            fields={"phase": "Queued", "reason": "WaitingForCapacity", "queuePosition": 1},
            conditions=waiting("WaitingForCapacity"),
            events=[("Normal", "WaitingForCapacity", "position 1")],
            requeue=5.0,
        ),
        id="capacity-total-full",
    ),
    pytest.param(
        Case(
            body=goal(priority=9),
            others=[
                other("busy", "Running", task_id="t1"),
                other("c-high", "Pending", task_id="t3", priority=1),
            ],
            fields={
                "phase": "Queued",
                "reason": "WaitingForCapacity",
                "message": "waiting for capacity (position 2 in the queue)",
                "queuePosition": 2,
            },
            conditions=waiting("WaitingForCapacity"),
            events=[("Normal", "WaitingForCapacity", "position 2 in the queue")],
            requeue=5.0,
        ),
        id="queued-behind-a-higher-priority-goal",
    ),
    pytest.param(
        Case(
            body=goal(priority=1),
            others=[
                other("busy", "Running", task_id="t1"),
                other("b-low", "Queued", task_id="t2", priority=9, created=T0 - timedelta(days=1)),
            ],
            fields={"phase": "Queued", "queuePosition": 1},
            conditions=waiting("WaitingForCapacity"),
            events=[("Normal", "WaitingForCapacity", "position 1 in the queue")],
            requeue=5.0,
        ),
        id="higher-priority-goes-before-an-older-goal",
    ),
    pytest.param(
        Case(
            body=goal(),
            others=[
                other("busy", "Running", task_id="t1"),
                other("older", "Pending", task_id="t2", created=T0 - timedelta(minutes=1)),
            ],
            fields={"phase": "Queued", "queuePosition": 2},
            conditions=waiting("WaitingForCapacity"),
            events=[("Normal", "WaitingForCapacity", "position 2 in the queue")],
            requeue=5.0,
        ),
        id="older-goal-goes-first-at-equal-priority",
    ),
    pytest.param(
        Case(
            body=goal(priority=9),
            others=[other("c-high", "Pending", task_id="t3", priority=1)],
            fields={"phase": "Queued", "reason": "WaitingForCapacity", "queuePosition": 1},
            conditions=waiting("WaitingForCapacity"),
            events=[("Normal", "WaitingForCapacity", "position 1 in the queue")],
            requeue=5.0,
        ),
        id="a-free-slot-goes-to-the-head-of-the-queue",
    ),
    pytest.param(
        Case(
            body=goal(priority=9),
            others=[other("c-high", "Pending", task_id="t3", priority=1, suspend=True)],
            fields={"phase": "Running"},
            conditions=conditions(*RUNNING),
            events=[("Normal", "Started", JOB1)],
            create_job=[JOB1],
        ),
        id="a-suspended-goal-holds-no-place-in-the-queue",
    ),
    pytest.param(
        Case(
            body=goal(priority=9),
            others=[
                other(
                    "c-high",
                    "Queued",
                    task_id="t3",
                    priority=1,
                    status={"nextAttemptTime": ts(NOW + timedelta(seconds=60))},
                )
            ],
            fields={"phase": "Running"},
            conditions=conditions(*RUNNING),
            events=[("Normal", "Started", JOB1)],
            create_job=[JOB1],
        ),
        id="a-backing-off-goal-holds-no-place-in-the-queue",
    ),
    pytest.param(
        Case(
            body=goal(
                status=queued(
                    "WaitingForCapacity",
                    "waiting for capacity (position 2 in the queue)",
                    queuePosition=2,
                )
            ),
            others=[other("busy", "Running", task_id="t1")],
            fields={"phase": "Queued", "reason": "WaitingForCapacity", "queuePosition": 1},
            requeue=5.0,
        ),
        id="moving-up-the-queue-is-written-without-an-event",
    ),
    pytest.param(
        Case(
            body=goal(
                status=queued(
                    "WaitingForCapacity",
                    "waiting for capacity (position 1 in the queue)",
                    queuePosition=1,
                )
            ),
            others=[other("busy", "Running", task_id="t1")],
            fields=None,
            requeue=5.0,
        ),
        id="same-place-in-the-queue-writes-nothing",
    ),
    pytest.param(
        Case(
            body=goal(),
            jobs=[job()],
            fields={
                "phase": "Running",
                "message": "attempt 1 adopted: Job g1-0a1b2-1",
                "attempts": 1,
                "jobName": JOB1,
                "startTime": ts(NOW),
            },
            conditions=conditions(*RUNNING),
            events=[("Normal", "Adopted", "attempt 1 adopted: Job g1-0a1b2-1")],
            create_job=[JOB1],
            reads=[("get_job", NS, JOB1)],
            entry=(Phase.RUNNING, False),
        ),
        id="adopts-its-own-job-after-a-restart",
    ),
    pytest.param(
        Case(
            body=goal(),
            jobs=[job(uid="someone-elses-uid")],
            fields={
                "phase": "Failed",
                "reason": "JobConflict",
                "message": "a Job named g1-0a1b2-1 exists and does not belong to this goal",
                "jobName": ABSENT,
            },
            conditions=stalled("JobConflict"),
            events=[("Warning", "JobConflict", "does not belong to this goal")],
            create_job=[JOB1],
            entry=(Phase.FAILED, False),
        ),
        id="job-name-taken-by-a-foreign-job",
    ),
    pytest.param(
        Case(
            body=goal(),
            jobs=[job(uid=None)],
            fields={"phase": "Failed", "reason": "JobConflict"},
            conditions=stalled("JobConflict"),
            events=[("Warning", "JobConflict", JOB1)],
            create_job=[JOB1],
        ),
        id="job-name-taken-by-an-unlabelled-job",
    ),
]


def reconciler_for(
    case: Case, cluster: FakeCluster, clock: FixedClock
) -> tuple[GoalReconciler, CapacityTable]:
    capacity = CapacityTable()
    for body in case.others:
        seeded = Goal.model_validate(body)
        capacity.put(entry_for(seeded, seeded.status or GoalStatus()))
    settings = OperatorSettings(**{**SETTINGS, **case.settings})
    reconciler = GoalReconciler(cluster, capacity, settings, clock=clock, rng=FixedRandom(0.5))
    return reconciler, capacity


@pytest.mark.parametrize("case", [*VALIDATION, *RERUN, *FINISHED, *OBSERVING, *WAITING])
def test_goal_reconcile(case: Case) -> None:
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    for item in case.jobs:
        cluster.add_job(item)
    cluster.pods.extend(case.pods)
    jobs_before = json.dumps(sorted(cluster.jobs.items()), default=str)
    reconciler, capacity = reconciler_for(case, cluster, clock)

    result = run(reconciler.reconcile(case.body))

    status = wire(result)
    if case.fields is None:
        assert status is None, f"no status write expected, got {status}"
    else:
        assert_fields(status, case.fields)
        assert status is not None
        for text in case.message_has:
            assert text in status["message"]
        for text in case.message_lacks:
            assert text not in json.dumps(status)
        generation = case.body["metadata"]["generation"]
        for condition in status.get("conditions", []):
            assert condition["observedGeneration"] == generation, condition
    if case.conditions is not None:
        assert conditions_of(status) == case.conditions
    assert events_of(result) == [(k, r) for k, r, _ in case.events]
    for event, (_, _, text) in zip(result.events, case.events, strict=True):
        assert text in event.message, f"{text!r} not in {event.message!r}"
    assert cluster.created_jobs == case.create_job
    if not case.create_job or case.jobs:
        assert json.dumps(sorted(cluster.jobs.items()), default=str) == jobs_before
    assert result.requeue_after == case.requeue
    if case.reads is not None:
        reads = [call for call in cluster.calls if call[0] in ("get_job", "find_pod")]
        assert reads == case.reads
    if case.entry is not None:
        entry = capacity.get(f"{NS}/g1")
        assert entry is not None
        assert (entry.phase, entry.blocked) == case.entry


def test_started_job_is_the_attempts_job() -> None:
    """The Job created is the attempt's: its name, labels and owner (the Goal)."""
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    reconciler, _ = reconciler_for(Case(body=goal()), cluster, clock)

    run(reconciler.reconcile(goal()))

    created = cluster.job(JOB1)
    labels = created["metadata"]["labels"]
    assert (labels[LABEL_GOAL_UID], labels[LABEL_RUN], labels[LABEL_ATTEMPT]) == (UID, "1", "1")
    assert created["metadata"]["ownerReferences"][0]["uid"] == UID
    assert created["spec"]["backoffLimit"] == 0
    assert created["spec"]["template"]["spec"]["initContainers"][1]["image"] == "busybox:1.37"


# ------------------------------------------------------------------ several reconciles in a row


def finish(
    cluster: FakeCluster,
    name: str,
    *,
    attempt: int,
    failed: bool = False,
    result: WorkerResult = PUBLISHED,
) -> None:
    """Play the Job controller and the kubelet: the attempt's Pod ends, its Job finishes."""
    found = cluster.job(name)
    found["status"] = {
        "conditions": [{"type": "Failed" if failed else "Complete", "status": "True"}]
    }
    labels = found["metadata"]["labels"]
    uid = labels[LABEL_GOAL_UID]
    publish = exited(0, "Completed", result.to_json())
    steps = (
        {"clone": ok(), "task": exited(3)}
        if failed
        else {"clone": ok(), "task": ok(), "publish": publish}
    )
    finished = pod(attempt=attempt, run=int(labels[LABEL_RUN]), **steps)
    finished["metadata"]["labels"][LABEL_GOAL_UID] = uid
    cluster.pods.insert(0, finished)


def test_retry_then_success_over_several_reconciles() -> None:
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    reconciler, _ = reconciler_for(Case(body=goal()), cluster, clock)
    body = goal()

    run(cluster.apply(reconciler, body))
    assert body["status"]["phase"] == "Running"
    finish(cluster, JOB1, attempt=1, failed=True)
    failed = run(cluster.apply(reconciler, body))
    assert (body["status"]["phase"], body["status"]["reason"]) == ("Queued", "Backoff")
    assert failed.requeue_after == 22.5

    clock.advance(seconds=10)
    early = run(cluster.apply(reconciler, body))
    assert (early.status, early.requeue_after) == (None, 12.0)  # 12 s of the 22 left
    assert cluster.created_jobs == [JOB1]

    clock.advance(seconds=12)
    run(cluster.apply(reconciler, body))
    assert (body["status"]["phase"], body["status"]["attempts"]) == ("Running", 2)
    finish(cluster, JOB2, attempt=2)
    run(cluster.apply(reconciler, body))

    assert body["status"]["phase"] == "Succeeded"
    assert body["status"]["attempts"] == 2
    assert body["status"]["startTime"] == ts(NOW)  # the run's start, not the attempt's
    assert cluster.created_jobs == [JOB1, JOB2]
    assert [(kind, reason) for _, kind, reason, _ in cluster.events] == [
        ("Normal", "Started"),
        ("Warning", "AttemptFailed"),
        ("Normal", "Started"),
        ("Normal", "Published"),
    ]


def test_each_attempts_usage_is_recorded_and_summed_across_runs() -> None:
    """The failed task reported nothing (publish never ran), the published attempt its usage;
    a re-run's attempts are numbered on and added to the same total."""
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    reconciler, _ = reconciler_for(Case(body=goal()), cluster, clock)
    body = goal()
    reported = TaskUsage(
        model="m1", input_tokens=100, output_tokens=20, cost=Cost(amount="0.25", currency="USD")
    )
    with_usage = PUBLISHED.model_copy(update={"usage": reported})

    run(cluster.apply(reconciler, body))
    first_id = body["status"]["attemptId"]
    assert "usage" not in body["status"]  # nothing until an attempt ends
    finish(cluster, JOB1, attempt=1, failed=True)
    run(cluster.apply(reconciler, body))
    clock.advance(seconds=30)
    run(cluster.apply(reconciler, body))
    finish(cluster, JOB2, attempt=2, result=with_usage)
    run(cluster.apply(reconciler, body))

    usage = body["status"]["usage"]
    assert [
        (a["number"], a["attemptId"], a.get("inputTokens"), a["endTime"]) for a in usage["attempts"]
    ] == [
        (1, first_id, None, ts(NOW)),
        (2, body["status"]["attemptId"], 100, ts(NOW + timedelta(seconds=30))),
    ]
    assert usage["total"] == {
        "attempts": 2,
        "inputTokens": 100,
        "outputTokens": 20,
        "costs": [{"amount": "0.25", "currency": "USD"}],
        "durationSeconds": 0,
        "counters": {},
        "withoutCost": 1,
        "withoutTokens": 1,
    }

    rerun = {ANNOTATION_REQUESTED_AT: TOKEN}
    body["metadata"]["annotations"] = rerun
    run(cluster.apply(reconciler, body))
    finish(cluster, "g1-0a1b2-r2-1", attempt=1, result=with_usage)
    run(cluster.apply(reconciler, body))

    assert body["status"]["run"] == 2
    assert [a["number"] for a in body["status"]["usage"]["attempts"]] == [1, 2, 3]
    assert body["status"]["usage"]["total"]["inputTokens"] == 200


def test_two_goals_of_one_task_never_run_at_once() -> None:
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    reconciler, capacity = reconciler_for(Case(body=goal()), cluster, clock)
    first = goal("first", uid="1111aaaa-0000")
    second = goal("second", uid="2222bbbb-0000", created=T0 + timedelta(minutes=1))

    run(cluster.apply(reconciler, first))
    run(cluster.apply(reconciler, second))
    assert (second["status"]["phase"], second["status"]["reason"]) == ("Queued", "WaitingForTask")
    assert cluster.created_jobs == ["first-1111a-1"]

    finish(cluster, "first-1111a-1", attempt=1)
    run(cluster.apply(reconciler, first))
    run(cluster.apply(reconciler, second))

    assert first["status"]["phase"] == "Succeeded"
    assert second["status"]["phase"] == "Skipped"
    assert "default/first" in second["status"]["message"]
    assert cluster.created_jobs == ["first-1111a-1"]
    entry = capacity.get("default/second")
    assert entry is not None and entry.phase is Phase.SKIPPED


def test_a_finished_goal_frees_its_slot_for_the_next_in_the_repository() -> None:
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    reconciler, _ = reconciler_for(Case(body=goal()), cluster, clock)
    first = goal("first", uid="1111aaaa-0000", task_id="t1")
    second = goal("second", uid="2222bbbb-0000", task_id="t2")

    run(cluster.apply(reconciler, first))
    run(cluster.apply(reconciler, second))
    assert second["status"]["reason"] == "WaitingForCapacity"
    assert second["status"]["queuePosition"] == 1

    finish(cluster, "first-1111a-1", attempt=1)
    run(cluster.apply(reconciler, first))
    run(cluster.apply(reconciler, second))

    assert second["status"]["phase"] == "Running"
    assert "queuePosition" not in second["status"]
    assert cluster.created_jobs == ["first-1111a-1", "second-2222b-1"]


# ------------------------------------------- regressions these tables found (were strict xfails)


def test_moving_up_the_queue_updates_the_message_too() -> None:
    """The message and the conditions' messages follow the position; no event (no transition),
    and lastTransitionTime stays."""
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    old_message = "waiting for capacity (position 2 in the queue)"
    waiting_status = with_conditions(
        queued("WaitingForCapacity", old_message, queuePosition=2),
        *waiting("WaitingForCapacity").values(),
    )
    for condition in waiting_status["conditions"]:
        if condition["type"] != "Stalled":
            condition["message"] = old_message
    case = Case(body=goal(status=waiting_status), others=[other("busy", "Running", task_id="t1")])
    reconciler, _ = reconciler_for(case, cluster, clock)

    result = run(reconciler.reconcile(case.body))

    status = wire(result)
    new_message = "waiting for capacity (position 1 in the queue)"
    assert status is not None and status["queuePosition"] == 1
    assert status["message"] == new_message
    assert {c["type"]: c["message"] for c in status["conditions"]} == {
        "Ready": new_message,
        "Reconciling": new_message,
        "Stalled": "",
    }
    assert conditions_of(status) == waiting("WaitingForCapacity")
    assert {c["lastTransitionTime"] for c in status["conditions"]} == {ts(STARTED)}
    assert result.events == []


def test_job_conflict_records_when_the_goal_failed() -> None:
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    cluster.add_job(job(uid="someone-elses-uid"))
    reconciler, _ = reconciler_for(Case(body=goal()), cluster, clock)

    status = wire(run(reconciler.reconcile(goal())))

    assert status is not None and status["phase"] == "Failed"
    assert status.get("completionTime") == ts(NOW)


# ------------------------------------------------- a refused or lost Job create, a lost status


def test_a_job_the_api_server_refuses_fails_the_goal_with_its_reason() -> None:
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    refused = ClassifiedError(
        "InvalidSpec", "the API server refused the Job (422 ...)", retryable=False
    )
    cluster.fail_next("create_job", refused)
    reconciler, capacity = reconciler_for(Case(body=goal()), cluster, clock)

    result = run(reconciler.reconcile(goal()))

    status = wire(result)
    assert status is not None
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec")
    assert status["message"] == "the API server refused the Job (422 ...)"
    assert status["completionTime"] == ts(NOW)
    assert conditions_of(status) == stalled("InvalidSpec")
    assert events_of(result) == [("Warning", "InvalidSpec")]
    entry = capacity.get(f"{NS}/g1")
    assert entry is not None and entry.phase is Phase.FAILED


def test_a_retryable_create_failure_raises_and_keeps_the_slot_until_adopted() -> None:
    """The answer of the create is lost after the Job was stored: the reconcile raises (the
    runtime retries it), the goal keeps its slot, and the retry adopts the Job and says it
    started (this process made it: not "Adopted")."""
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    cluster.fail_next("create_job", TimeoutError("no answer"), committed=True)
    reconciler, capacity = reconciler_for(Case(body=goal()), cluster, clock)
    other = goal("other", uid="2222bbbb-0000", task_id="t2", priority=0)  # more urgent

    with pytest.raises(TimeoutError):
        run(reconciler.reconcile(goal()))
    entry = capacity.get(f"{NS}/g1")
    assert entry is not None and entry.phase is Phase.RUNNING
    queued = wire(run(reconciler.reconcile(other)))
    assert queued is not None and queued["reason"] == "WaitingForCapacity"

    result = run(reconciler.reconcile(goal()))

    status = wire(result)
    assert status is not None and (status["phase"], status["jobName"]) == ("Running", JOB1)
    assert events_of(result) == [("Normal", "Started")]
    assert cluster.created_jobs == [JOB1, JOB1]


def test_a_goal_whose_job_exists_is_adopted_before_a_more_urgent_goal_is_admitted() -> None:
    """After a restart the capacity table holds the goal as running (its Job exists; its status
    was never written): it is adopted, and the more urgent goal waits."""
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    cluster.add_job(job())
    late = goal(priority=5)  # the urgent one would win a fair admission
    reconciler, capacity = reconciler_for(Case(body=late), cluster, clock)
    capacity.put(replace(entry_for(Goal.model_validate(late), GoalStatus()), phase=Phase.RUNNING))
    urgent = goal("urgent", uid="2222bbbb-0000", task_id="t2", priority=0)

    waiting_status = wire(run(reconciler.reconcile(urgent)))
    result = run(reconciler.reconcile(late))

    assert waiting_status is not None and waiting_status["reason"] == "WaitingForCapacity"
    status = wire(result)
    assert status is not None and (status["phase"], status["jobName"]) == ("Running", JOB1)
    assert events_of(result) == [("Normal", "Adopted")]
    assert cluster.created_jobs == [JOB1]  # tried once: 409, adopted


def test_a_reconcile_error_the_runtime_showed_is_replaced_on_the_next_success() -> None:
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    cluster.add_job(job())
    running = {
        "phase": "Running",
        "reason": "Running",
        "message": f"attempt 1 started: Job {JOB1}",
        "attempts": 1,
        "jobName": JOB1,
        "run": 1,
        "observedGeneration": 1,
        "startTime": ts(STARTED),
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "ReconcileError",
                "message": "500",
                "observedGeneration": 1,
                "lastTransitionTime": ts(STARTED),
            },
            {
                "type": "Reconciling",
                "status": "True",
                "reason": "ReconcileError",
                "message": "500",
                "observedGeneration": 1,
                "lastTransitionTime": ts(STARTED),
            },
            {
                "type": "Stalled",
                "status": "False",
                "reason": "NotStalled",
                "message": "",
                "observedGeneration": 1,
                "lastTransitionTime": ts(STARTED),
            },
        ],
    }
    reconciler, _ = reconciler_for(Case(body=goal(status=running)), cluster, clock)

    result = run(reconciler.reconcile(goal(status=running)))

    status = wire(result)
    assert status is not None and status["phase"] == "Running"
    assert conditions_of(status) == conditions(*RUNNING)
    assert result.events == []


# ------------------------------------------------ what a retry is told; a declined pull request


def task_env(job: Json) -> dict[str, str]:
    [task] = [c for c in job["spec"]["template"]["spec"]["initContainers"] if c["name"] == "task"]
    return {item["name"]: item["value"] for item in task["env"]}


def test_a_retry_is_told_how_the_attempt_before_it_failed() -> None:
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    cluster.secrets[(NS, "gh")] = {"token": "s3cr3t-goal-token"}
    body = goal(
        repository={"url": "https://github.com/o/r.git", "credentialsSecret": {"name": "gh"}}
    )
    reconciler, _ = reconciler_for(Case(body=body), cluster, clock)
    run(cluster.apply(reconciler, body))
    finish(cluster, JOB1, attempt=1, failed=True)
    cluster.pod_logs[(NS, "pod-1-1", "task")] = (
        "x" * 10_000 + "\nusing s3cr3t-goal-token at https://bot:hunter22@github.com/o/r\nFAIL\n"
    )
    run(cluster.apply(reconciler, body))
    assert body["status"]["lastFailure"] == {
        "attempt": 1,
        "reason": "TaskFailed",
        "message": body["status"]["lastFailure"]["message"],
        "step": "task",
        "time": ts(NOW),
    }
    assert body["status"]["lastFailure"]["message"] == "the task command exited with 3"
    assert "BACKLOG_PREVIOUS_FAILURE" not in task_env(cluster.job(JOB1))

    clock.advance(seconds=30)
    run(cluster.apply(reconciler, body))

    told = json.loads(task_env(cluster.job(JOB2))["BACKLOG_PREVIOUS_FAILURE"])
    assert (told["attempt"], told["reason"], told["step"]) == (1, "TaskFailed", "task")
    assert told["message"] == body["status"]["lastFailure"]["message"]
    assert told["log"].endswith("\nusing *** at https://***@github.com/o/r\nFAIL\n")
    assert len(told["log"].encode()) == 4096
    assert ("find_pod", NS, SELECTOR_1) in cluster.calls
    assert ("pod_log_tail", NS, "pod-1-1", "task") in cluster.calls
    # The worker steps are not told (they have the token; the task is the one to learn).
    for container in cluster.job(JOB2)["spec"]["template"]["spec"]["containers"]:
        assert "BACKLOG_PREVIOUS_FAILURE" not in {e["name"] for e in container["env"]}


def test_a_retry_whose_log_cannot_be_read_is_told_the_reason_alone() -> None:
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    body = goal()
    reconciler, _ = reconciler_for(Case(body=body), cluster, clock)
    run(cluster.apply(reconciler, body))
    finish(cluster, JOB1, attempt=1, failed=True)
    run(cluster.apply(reconciler, body))
    cluster.failures["pod_log_tail"] = [(ClassifiedError("Boom", "no log", retryable=True), False)]
    clock.advance(seconds=30)

    run(cluster.apply(reconciler, body))

    told = json.loads(task_env(cluster.job(JOB2))["BACKLOG_PREVIOUS_FAILURE"])
    assert (told["attempt"], told["reason"]) == (1, "TaskFailed")
    assert "log" not in told
    assert body["status"]["phase"] == "Running"


def test_a_rerun_forgets_the_last_runs_failure_and_pull_request() -> None:
    clock = FixedClock(NOW)
    cluster = FakeCluster(clock=clock)
    status = {
        "phase": "Succeeded",
        "reason": "Published",
        "observedGeneration": 1,
        "pullRequest": {"number": 7, "url": "u", "state": "closed", "closedBy": "reviewer"},
        "lastFailure": {"attempt": 1, "reason": "TaskFailed"},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Published"},
            {"type": "Merged", "status": "False", "reason": "PullRequestClosed"},
        ],
    }
    body = goal(status=status, annotations={ANNOTATION_REQUESTED_AT: "again"})
    reconciler, _ = reconciler_for(Case(body=body), cluster, clock)

    run(cluster.apply(reconciler, body))

    assert body["status"]["phase"] == "Running"
    assert "lastFailure" not in body["status"] and "pullRequest" not in body["status"]
    assert "Merged" not in {c["type"] for c in body["status"]["conditions"]}
    assert "BACKLOG_PREVIOUS_FAILURE" not in task_env(cluster.job(cluster.created_jobs[0]))


def test_a_goal_whose_pull_request_was_closed_did_not_complete_its_task() -> None:
    """A second goal of the task (its Backlog revived it) runs, where one whose pull request
    is open or merged would be skipped."""
    clock = FixedClock(NOW)
    for state, phase in (("closed", "Running"), ("merged", "Skipped"), ("open", "Skipped")):
        cluster = FakeCluster(clock=clock)
        first = goal(
            "g0",
            uid="uid-0",
            status={
                "phase": "Succeeded",
                "pullRequest": {"number": 7, "url": "u", "state": state},
            },
        )
        reconciler, _ = reconciler_for(Case(body=goal(), others=[first]), cluster, clock)
        body = goal()

        run(cluster.apply(reconciler, body))

        assert body["status"]["phase"] == phase, state
