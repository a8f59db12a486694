"""A running attempt's Pod, read by the Goal reconciler against in-memory fakes: the step and
what holds the Pod up, attempts failed early for what cannot heal (an invalid image name at
once; an image that cannot be pulled or a missing Secret after a grace period), disruptions
that do not count as attempts, and a workspace that filled up.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backlog_operator.api.goal import Goal
from backlog_operator.api.labels import LABEL_ATTEMPT, LABEL_GOAL_UID, LABEL_RUN
from backlog_operator.controller.goals.capacity import CapacityTable
from backlog_operator.controller.goals.job import build_job
from backlog_operator.controller.goals.outcome import (
    MOUNT_CHECK_AFTER,
    STUCK_GRACE,
    PodProgress,
    attempt_result,
    mount_check_due,
    mount_failure,
    pod_progress,
    stuck_result,
)
from backlog_operator.controller.goals.reconciler import MAX_UNCOUNTED_DISRUPTIONS, GoalReconciler
from backlog_operator.controller.results import Reconciled
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.status import timestamp
from tests.unit.fakes import ABSENT, FakeCluster, FixedClock, FixedRandom, Json, assert_fields

NS = "default"
UID = "0a1b2c3d-1111-2222-3333-444455556666"
JOB1 = "g1-0a1b2-1"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
STARTED = NOW - timedelta(minutes=30)


@dataclass
class StoppingCluster(FakeCluster):
    """The fake cluster, able to delete a Job as KubeCluster does (quiet when absent)."""

    deleted: list[str] = field(default_factory=list)

    async def delete_job(self, namespace: str, name: str) -> None:
        self.calls.append(("delete_job", namespace, name))
        self.deleted.append(name)
        self.jobs.pop((namespace, name), None)


def goal(status: Json | None = None, **spec: Any) -> Json:
    body: Json = {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {
            "name": "g1",
            "namespace": NS,
            "uid": UID,
            "generation": 1,
            "creationTimestamp": timestamp(STARTED),
        },
        "spec": {
            "repository": {"url": "https://github.com/o/r.git"},
            "backlog": {"taskId": "docs-guide"},
            "task": {"image": "busybox:1.37", "command": ["true"]},
            "retry": {"maxAttempts": 3, "backoffSeconds": 30, "maxBackoffSeconds": 600},
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def running(attempts: int = 1, **more: Any) -> Json:
    return {
        "phase": "Running",
        "reason": "Running",
        "message": f"attempt {attempts} started: Job g1-0a1b2-{attempts}",
        "observedGeneration": 1,
        "attempts": attempts,
        "run": 1,
        "jobName": f"g1-0a1b2-{attempts}",
        "taskId": "docs-guide",
        "startTime": timestamp(STARTED),
        **more,
    }


def job(attempts: int = 1, *, active: int = 1, failed: str | None = None) -> Json:
    conditions = (
        [{"type": "Failed", "status": "True", "reason": failed, "message": "the Job failed"}]
        if failed
        else []
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"g1-0a1b2-{attempts}",
            "namespace": NS,
            "labels": {LABEL_GOAL_UID: UID, LABEL_RUN: "1", LABEL_ATTEMPT: str(attempts)},
        },
        "status": {"active": active, "conditions": conditions}
        if active
        else {"conditions": conditions},
    }


def container(name: str, **state: Json) -> Json:
    return {"name": name, "state": state}


def done() -> Json:
    return {"terminated": {"exitCode": 0, "reason": "Completed"}}


def pod(
    init: list[Json] | None = None,
    main: list[Json] | None = None,
    attempts: int = 1,
    **status: Any,
) -> Json:
    return {
        "metadata": {
            "name": f"pod-{attempts}",
            "namespace": NS,
            "labels": {LABEL_GOAL_UID: UID, LABEL_RUN: "1", LABEL_ATTEMPT: str(attempts)},
        },
        "status": {
            "initContainerStatuses": init or [],
            "containerStatuses": main or [],
            **status,
        },
    }


def waiting_in(step: str, reason: str, message: str = "") -> Json:
    """A Pod whose `step` waits for `reason`, the steps before it done."""
    steps = ["clone", "task", "publish"]
    before = steps[: steps.index(step)]
    statuses = [container(name, **done()) for name in before]
    statuses.append(container(step, waiting={"reason": reason, "message": message}))
    init = [s for s in statuses if s["name"] != "publish"]
    main = [s for s in statuses if s["name"] == "publish"]
    return pod(init, main)


@dataclass
class World:
    clock: FixedClock
    cluster: StoppingCluster
    reconciler: GoalReconciler
    body: Json

    def apply(self) -> Reconciled[Any]:
        return asyncio.run(self.cluster.apply(self.reconciler, self.body))

    @property
    def status(self) -> Json:
        status: Json = self.body.get("status") or {}
        return status

    def set_pod(self, found: Json) -> None:
        self.cluster.pods[:] = [found]


def world(body: Json, jobs: list[Json], pods: list[Json]) -> World:
    clock = FixedClock(NOW)
    cluster = StoppingCluster(clock=clock)
    for item in jobs:
        cluster.add_job(item)
    cluster.pods.extend(copy.deepcopy(pods))
    settings = OperatorSettings(requeue_seconds=5.0, worker_image="backlog-operator:test")
    reconciler = GoalReconciler(
        cluster, CapacityTable(), settings, clock=clock, rng=FixedRandom(0.5)
    )
    return World(clock, cluster, reconciler, body)


def kinds(result: Reconciled[Any]) -> list[tuple[str, str]]:
    return [(event.kind, event.reason) for event in result.events]


# --------------------------------------------------------------------- pod_progress (pure)


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (None, None),
        (pod(), PodProgress(None)),
        (
            pod(
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 Insufficient memory.",
                    }
                ]
            ),
            PodProgress(None, "Unschedulable", "0/3 nodes are available: 3 Insufficient memory."),
        ),
        (pod([container("clone", running={})]), PodProgress("clone")),
        (waiting_in("clone", "PodInitializing"), PodProgress("clone")),
        (
            waiting_in("task", "ImagePullBackOff", "Back-off pulling image"),
            PodProgress("task", "ImagePullBackOff", "Back-off pulling image"),
        ),
        (
            waiting_in("publish", "CreateContainerConfigError", 'secret "gh" not found'),
            PodProgress("publish", "CreateContainerConfigError", 'secret "gh" not found'),
        ),
        (
            pod(
                [container("clone", **done()), container("task", **done())],
                [container("publish", running={})],
            ),
            PodProgress("publish"),
        ),
    ],
    ids=[
        "no-pod",
        "no-statuses-yet",
        "unschedulable",
        "clone-running",
        "initializing-is-not-a-wait",
        "task-image-pull",
        "publish-config-error",
        "publish-running",
    ],
)
def test_pod_progress(found: Json | None, expected: PodProgress | None) -> None:
    assert pod_progress(found) == expected


def test_stuck_result_grace_and_retryability() -> None:
    since = NOW
    invalid = stuck_result(PodProgress("task", "InvalidImageName", "bad"), since, NOW)
    assert invalid is not None and invalid.reason == "InvalidImageName" and not invalid.retryable
    pull = PodProgress("task", "ErrImagePull", "not found")
    assert stuck_result(pull, since, NOW + STUCK_GRACE - timedelta(seconds=1)) is None
    pulled = stuck_result(pull, since, NOW + STUCK_GRACE)
    assert pulled is not None and pulled.reason == "ImagePullFailed" and pulled.retryable
    secret = PodProgress("clone", "CreateContainerConfigError", "couldn't find key token in Secret")
    assert stuck_result(secret, since, NOW) is None
    missing = stuck_result(secret, since, NOW + STUCK_GRACE)
    assert missing is not None and missing.reason == "SecretNotFound" and not missing.retryable
    other = PodProgress("clone", "CreateContainerConfigError", "runAsNonRoot and image is root")
    assert stuck_result(other, since, NOW + STUCK_GRACE) is None
    unschedulable = PodProgress(None, "Unschedulable", "0/3 nodes")
    assert stuck_result(unschedulable, since, NOW + timedelta(hours=1)) is None


# ------------------------------------------------------------- running: step and waiting


def test_step_is_written_when_it_changes_and_only_then() -> None:
    w = world(goal(running()), [job()], [pod([container("clone", running={})])])
    result = w.apply()
    assert_fields(w.status, {"phase": "Running", "step": "clone", "stepReason": ABSENT})
    assert result.events == []
    assert w.apply().status is None  # nothing changed: no write

    w.set_pod(pod([container("clone", **done()), container("task", running={})]))
    w.apply()
    assert_fields(w.status, {"step": "task"})


def test_a_job_without_an_active_pod_is_not_asked_for_one() -> None:
    w = world(goal(running()), [job(active=0)], [])
    assert w.apply().status is None
    assert w.cluster.calls_to("find_pod") == []


def test_a_wait_is_said_once_and_its_first_seen_time_kept() -> None:
    w = world(goal(running()), [job()], [waiting_in("task", "ErrImagePull", "pull failed")])
    first = w.apply()
    assert kinds(first) == [("Warning", "StepWaiting")]
    assert "ErrImagePull" in first.events[0].message
    assert_fields(
        w.status,
        {
            "phase": "Running",
            "step": "task",
            "stepReason": "ErrImagePull",
            "stepMessage": "pull failed",
            "stepReasonTime": timestamp(NOW),
        },
    )
    # ErrImagePull and ImagePullBackOff alternate: one wait, no new event, the time kept.
    w.clock.advance(minutes=1)
    w.set_pod(waiting_in("task", "ImagePullBackOff", "Back-off pulling image"))
    again = w.apply()
    assert again.events == []
    assert_fields(w.status, {"stepReason": "ImagePullBackOff", "stepReasonTime": timestamp(NOW)})
    # Running again: the wait is cleared.
    w.set_pod(pod([container("clone", **done()), container("task", running={})]))
    w.apply()
    assert_fields(
        w.status,
        {"step": "task", "stepReason": ABSENT, "stepMessage": ABSENT, "stepReasonTime": ABSENT},
    )


def test_unschedulable_is_shown_and_never_failed_early() -> None:
    unschedulable = pod(
        conditions=[
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "x"}
        ]
    )
    w = world(goal(running()), [job()], [unschedulable])
    assert kinds(w.apply()) == [("Warning", "StepWaiting")]
    assert_fields(w.status, {"phase": "Running", "step": ABSENT, "stepReason": "Unschedulable"})
    w.clock.advance(hours=2)
    w.apply()
    assert_fields(w.status, {"phase": "Running", "stepReason": "Unschedulable"})
    assert w.cluster.deleted == []


# ----------------------------------------------------------- running: what cannot heal


def test_invalid_image_name_fails_at_once_and_stops_the_job() -> None:
    w = world(goal(running()), [job()], [waiting_in("task", "InvalidImageName", "bad ref")])
    result = w.apply()
    assert kinds(result) == [("Warning", "StepWaiting"), ("Warning", "Failed")]
    assert_fields(
        w.status,
        {"phase": "Failed", "reason": "InvalidImageName", "step": ABSENT, "stepReason": ABSENT},
    )
    assert "not retryable" in w.status["message"]
    assert w.cluster.deleted == [JOB1]


def test_image_pull_fails_after_the_grace_period_and_is_retried() -> None:
    w = world(goal(running()), [job()], [waiting_in("task", "ImagePullBackOff", "no such tag")])
    w.apply()
    w.clock.advance(seconds=STUCK_GRACE.total_seconds() - 1)
    w.apply()
    assert w.status["phase"] == "Running" and w.cluster.deleted == []
    w.clock.advance(seconds=1)
    result = w.apply()
    assert kinds(result) == [("Warning", "AttemptFailed")]
    assert_fields(
        w.status,
        {"phase": "Queued", "reason": "Backoff", "attempts": 1, "stepReasonTime": ABSENT},
    )
    assert "ImagePullBackOff" in w.status["message"]
    assert w.cluster.deleted == [JOB1]


def test_a_missing_secret_fails_permanently_after_the_grace_period() -> None:
    message = 'secret "gh-token" not found'
    w = world(
        goal(running()), [job()], [waiting_in("clone", "CreateContainerConfigError", message)]
    )
    w.apply()
    assert w.status["phase"] == "Running"
    w.clock.advance(seconds=STUCK_GRACE.total_seconds())
    w.apply()
    assert_fields(w.status, {"phase": "Failed", "reason": "SecretNotFound"})
    assert "gh-token" in w.status["message"]
    assert w.cluster.deleted == [JOB1]


# A Secret volume that cannot be mounted: the Pod's status only says its containers wait to be
# created; the kubelet's FailedMount Events say why.
MISSING_VOLUME = 'MountVolume.SetUp failed for volume "credentials" : secret "gh-token" not found'


def creating(created: datetime) -> Json:
    """A scheduled Pod whose first container is still being created (volumes not mounted)."""
    found = pod(
        [container("clone", waiting={"reason": "PodInitializing"})],
        [container("publish", waiting={"reason": "PodInitializing"})],
        phase="Pending",
    )
    found["metadata"]["creationTimestamp"] = timestamp(created)
    return found


def failed_mount(message: str, *, pod_name: str = "pod-1", at: datetime = NOW) -> Json:
    return {
        "metadata": {"name": f"{pod_name}.1", "namespace": NS},
        "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": NS},
        "reason": "FailedMount",
        "type": "Warning",
        "message": message,
        "lastTimestamp": timestamp(at),
    }


def test_mount_check_is_due_only_for_a_pod_waiting_long_for_its_first_container() -> None:
    on_the_way = PodProgress("clone")
    assert not mount_check_due(creating(NOW), on_the_way, NOW)
    assert not mount_check_due(creating(NOW), on_the_way, NOW + MOUNT_CHECK_AFTER / 2)
    assert mount_check_due(creating(NOW), on_the_way, NOW + MOUNT_CHECK_AFTER)
    later = NOW + MOUNT_CHECK_AFTER
    # A reason given already, a later step, a container that ran: nothing to look for.
    assert not mount_check_due(creating(NOW), PodProgress("clone", "ErrImagePull"), later)
    assert not mount_check_due(creating(NOW), PodProgress("task"), later)
    started = creating(NOW)
    started["status"]["initContainerStatuses"] = [container("clone", running={})]
    assert not mount_check_due(started, on_the_way, later)
    untimed = creating(NOW)
    del untimed["metadata"]["creationTimestamp"]
    assert not mount_check_due(untimed, on_the_way, later)


def test_mount_failure_names_the_newest_missing_secret_and_ignores_other_mounts() -> None:
    on_the_way = PodProgress("clone")
    assert mount_failure([], on_the_way) is on_the_way
    other = failed_mount('MountVolume.SetUp failed for volume "nfs" : mount timed out')
    assert mount_failure([other], on_the_way) is on_the_way
    key = failed_mount(
        'MountVolume.SetUp failed for volume "credentials" : references non-existent secret '
        "key: token",
        at=NOW + timedelta(seconds=5),
    )
    found = mount_failure([failed_mount(MISSING_VOLUME), key, other], on_the_way)
    assert found == PodProgress("clone", "FailedMount", key["message"])


def test_a_secret_volume_that_cannot_be_mounted_fails_the_goal_after_the_grace_period() -> None:
    w = world(goal(running()), [job()], [creating(NOW)])
    w.cluster.pod_event_list.append(failed_mount(MISSING_VOLUME))
    w.apply()  # just created: its Events are not read yet
    assert w.cluster.calls_to("pod_events") == []
    assert_fields(w.status, {"phase": "Running", "step": "clone", "stepReason": ABSENT})

    w.clock.advance(seconds=MOUNT_CHECK_AFTER.total_seconds())
    result = w.apply()
    assert kinds(result) == [("Warning", "StepWaiting")]
    assert "gh-token" in result.events[0].message
    assert_fields(w.status, {"phase": "Running", "step": "clone", "stepReason": "FailedMount"})

    w.clock.advance(seconds=STUCK_GRACE.total_seconds())
    result = w.apply()
    assert kinds(result) == [("Warning", "Failed")]
    assert_fields(w.status, {"phase": "Failed", "reason": "SecretNotFound", "stepReason": ABSENT})
    assert "gh-token" in w.status["message"] and "not retryable" in w.status["message"]
    assert w.cluster.deleted == [JOB1]


def test_a_slow_mount_without_a_missing_secret_is_left_to_run() -> None:
    w = world(goal(running()), [job()], [creating(NOW - timedelta(hours=1))])
    w.cluster.pod_event_list.append(failed_mount("MountVolume.SetUp failed: timed out"))
    assert w.apply().events == []
    w.clock.advance(hours=1)
    w.apply()
    assert_fields(w.status, {"phase": "Running", "stepReason": ABSENT})
    assert w.cluster.deleted == []
    assert w.cluster.calls_to("pod_events") == [(NS, "pod-1", "FailedMount")] * 2


def test_a_wait_that_moves_to_another_step_restarts_the_grace_period() -> None:
    w = world(goal(running()), [job()], [waiting_in("clone", "ImagePullBackOff")])
    w.apply()
    w.clock.advance(minutes=4)
    w.set_pod(waiting_in("publish", "ImagePullBackOff"))
    assert kinds(w.apply()) == [("Warning", "StepWaiting")]
    w.clock.advance(minutes=4)
    w.apply()
    assert w.status["phase"] == "Running"


# -------------------------------------------------------------- finished: disruptions


def evicted(message: str, *, condition: bool = False) -> Json:
    conditions = (
        [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}]
        if condition
        else []
    )
    return pod(
        [container("clone", **done()), container("task", terminated={"exitCode": 137})],
        phase="Failed",
        reason="Evicted" if not condition else None,
        message=message,
        conditions=conditions,
    )


def test_a_disrupted_attempt_is_retried_without_counting() -> None:
    w = world(
        goal(running(attempts=3)),
        [job(3, active=0, failed="BackoffLimitExceeded")],
        [
            {
                **evicted("Eviction API: evicting", condition=True),
                "metadata": pod(attempts=3)["metadata"],
            }
        ],
    )
    result = w.apply()
    assert kinds(result) == [("Warning", "AttemptFailed")]
    assert_fields(w.status, {"phase": "Queued", "reason": "Backoff", "disruptions": 1})
    assert "disrupted" in w.status["message"]
    assert "attempt 4 of 4" in w.status["message"]


def test_disruptions_past_the_limit_count() -> None:
    # Eight attempts, five of them disruptions that did not count: this one (over the limit)
    # counts, the third counted attempt of three.
    status = running(attempts=8, disruptions=MAX_UNCOUNTED_DISRUPTIONS)
    found = evicted("The node had condition: [DiskPressure].")
    found["metadata"] = pod(attempts=8)["metadata"]
    w = world(goal(status), [job(8, active=0, failed="BackoffLimitExceeded")], [found])
    w.apply()
    assert_fields(
        w.status,
        {"phase": "Failed", "reason": "Disrupted", "disruptions": MAX_UNCOUNTED_DISRUPTIONS},
    )
    assert "retries exhausted" in w.status["message"]


def test_eviction_over_the_workspace_limit_is_workspace_full_and_permanent() -> None:
    message = 'Usage of EmptyDir volume "workspace" exceeds the limit "1Gi". '
    w = world(
        goal(running()),
        [job(active=0, failed="BackoffLimitExceeded")],
        [evicted(message)],
    )
    w.apply()
    assert_fields(w.status, {"phase": "Failed", "reason": "WorkspaceFull"})
    assert "spec.task.workspaceSizeLimit" in w.status["message"]


def test_node_pressure_eviction_is_a_disruption_not_a_full_workspace() -> None:
    found = evicted("The node was low on resource: ephemeral-storage. Threshold quantity: 1Gi.")
    result = attempt_result(job(active=0, failed="BackoffLimitExceeded"), found)
    assert result is not None and result.reason == "Disrupted" and result.retryable


def test_the_job_ignores_disrupted_pods_and_keeps_its_backoff_limit() -> None:
    manifest = build_job(
        Goal.model_validate(goal()),
        1,
        OperatorSettings(worker_image="backlog-operator:test"),
    )
    spec = manifest["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["podFailurePolicy"] == {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            }
        ]
    }
