"""A running attempt's Pod, through the operator (kopf) against the API emulator over HTTP.

The test plays the Job controller and the kubelet: it starts the Job's Pod and patches the
Pod's status (a container waiting for ImagePullBackOff, InvalidImageName, ...; an eviction),
then marks the Job failed where the Job controller would. The operator reads the Pod on its
Job's events and on its periodic full pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from backlog_operator.controller.goals import outcome
from tests.operator.test_goal_operator import (
    JOBS,
    NS,
    PODS,
    PUBLISHED,
    Cluster,
    goal_manifest,
    running_operator,
)
from tests.support.emulator import EmulatorServer

Json = dict[str, Any]


@pytest.fixture
def cluster(emulator_server: EmulatorServer, project_crds: object) -> Iterator[Cluster]:
    with running_operator(emulator_server):
        yield Cluster(emulator_server)


def start(cluster: Cluster, name: str) -> tuple[Json, Json]:
    """The goal's first Job, started: its Pod created and the Job active."""
    [job] = cluster.wait_jobs(name, 1)
    cluster.wait_phase(name, "Running")
    pod = cluster.api.start_job(NS, job["metadata"]["name"])
    return job, pod


def wait_in(cluster: Cluster, pod: Json, step: str, reason: str, message: str = "") -> None:
    """The Pod's `step` waits for `reason`; the steps before it are done."""
    steps = ["clone", "task", "publish"]
    done = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    statuses = [{"name": s, "state": done} for s in steps[: steps.index(step)]]
    statuses.append({"name": step, "state": {"waiting": {"reason": reason, "message": message}}})
    cluster.api.patch_status(
        PODS,
        NS,
        pod["metadata"]["name"],
        {
            "phase": "Pending",
            "initContainerStatuses": [s for s in statuses if s["name"] != "publish"],
            "containerStatuses": [s for s in statuses if s["name"] == "publish"],
        },
    )


def job_gone(cluster: Cluster, job: Json) -> bool:
    found = cluster.api.get_object(JOBS, NS, job["metadata"]["name"])
    return found is None or bool(found["metadata"].get("deletionTimestamp"))


def test_the_step_and_its_waiting_reason_show_on_the_goal(cluster: Cluster) -> None:
    cluster.create(goal_manifest("w1"))
    job, pod = start(cluster, "w1")

    wait_in(cluster, pod, "task", "ImagePullBackOff", 'Back-off pulling image "busybox:9"')

    status = cluster.api.wait_for(
        lambda: (s := cluster.status("w1")).get("stepReason") == "ImagePullBackOff" and s,
        message=lambda: str(cluster.status("w1")),
    )
    assert status["phase"] == "Running"
    assert status["step"] == "task"
    assert "busybox:9" in status["stepMessage"]
    assert status["stepReasonTime"]
    cluster.api.wait_for(lambda: ("Warning", "StepWaiting") in cluster.events("w1"))

    # The image arrives: the task runs, the wait is cleared, and the attempt ends as usual.
    wait_in(cluster, pod, "publish", "PodInitializing")
    cluster.api.wait_for(
        lambda: (s := cluster.status("w1")).get("step") == "publish" and "stepReason" not in s,
        message=lambda: str(cluster.status("w1")),
    )
    messages = {"publish": PUBLISHED.to_json()}
    cluster.api.finish_pod(NS, pod["metadata"]["name"], messages=messages)
    cluster.api.complete_job(NS, job["metadata"]["name"])
    status = cluster.wait_phase("w1", "Succeeded")
    assert "step" not in status and "stepReasonTime" not in status
    assert cluster.events("w1").count(("Warning", "StepWaiting")) == 1


def test_an_invalid_image_name_fails_the_goal_at_once_and_stops_the_job(cluster: Cluster) -> None:
    cluster.create(goal_manifest("w2"))
    job, pod = start(cluster, "w2")

    wait_in(cluster, pod, "task", "InvalidImageName", 'couldn\'t parse image name "Bad:Ref"')

    status = cluster.wait_phase("w2", "Failed", reason="InvalidImageName")
    assert "Bad:Ref" in status["message"]
    cluster.api.wait_for(lambda: job_gone(cluster, job), message="the Job was not deleted")
    assert len(cluster.jobs_of("w2")) <= 1


def test_an_image_that_cannot_be_pulled_fails_the_attempt_after_the_grace_period(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outcome, "STUCK_GRACE", timedelta(seconds=1))
    cluster.create(goal_manifest("w3"))
    first, pod = start(cluster, "w3")

    wait_in(cluster, pod, "task", "ErrImagePull", "manifest unknown")

    # Retryable: a second attempt (a new Job) starts; the first one is deleted.
    cluster.api.wait_for(lambda: job_gone(cluster, first), message="the Job was not deleted")
    second = cluster.api.wait_for(
        lambda: next(
            (
                j
                for j in cluster.jobs_of("w3")
                if j["metadata"]["name"] != first["metadata"]["name"] and not job_gone(cluster, j)
            ),
            None,
        ),
        message="no second attempt",
    )
    cluster.wait_phase("w3", "Running")
    assert cluster.event_messages("w3", "AttemptFailed")
    assert "ImagePull" in cluster.event_messages("w3", "AttemptFailed")[0]
    cluster.finish(second, PUBLISHED)
    assert cluster.wait_phase("w3", "Succeeded")["attempts"] == 2


def test_a_missing_secret_fails_the_goal_after_the_grace_period(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outcome, "STUCK_GRACE", timedelta(seconds=1))
    cluster.create(goal_manifest("w4"))
    _, pod = start(cluster, "w4")

    wait_in(cluster, pod, "clone", "CreateContainerConfigError", 'secret "gh-token" not found')

    status = cluster.wait_phase("w4", "Failed", reason="SecretNotFound")
    assert "gh-token" in status["message"]
    assert len(cluster.jobs_of("w4")) <= 1


def test_a_secret_volume_that_cannot_be_mounted_fails_the_goal_after_the_grace_period(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outcome, "MOUNT_CHECK_AFTER", timedelta(0))
    monkeypatch.setattr(outcome, "STUCK_GRACE", timedelta(seconds=1))
    cluster.create(goal_manifest("w6"))
    _, pod = start(cluster, "w6")
    # The kubelet cannot mount the credentials volume: the Pod's containers wait to be created,
    # and only an Event about the Pod says why.
    wait_in(cluster, pod, "clone", "PodInitializing")
    message = 'MountVolume.SetUp failed for volume "credentials" : secret "gh-token" not found'
    cluster.api.create_object(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{pod['metadata']['name']}.mount", "namespace": NS},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod["metadata"]["name"],
                "namespace": NS,
                "uid": pod["metadata"]["uid"],
            },
            "reason": "FailedMount",
            "type": "Warning",
            "message": message,
            "source": {"component": "kubelet"},
        }
    )

    status = cluster.wait_phase("w6", "Failed", reason="SecretNotFound")
    assert "gh-token" in status["message"]
    assert any("gh-token" in text for text in cluster.event_messages("w6", "StepWaiting"))
    assert len(cluster.jobs_of("w6")) <= 1


def evict(cluster: Cluster, job: Json, pod: Json, message: str, *, condition: bool) -> None:
    """The kubelet (or the eviction API) ends the Pod; the Job controller fails the Job."""
    status: Json = {"phase": "Failed", "message": message}
    if condition:
        status["conditions"] = [
            {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
        ]
    else:
        status["reason"] = "Evicted"
    cluster.api.patch_status(PODS, NS, pod["metadata"]["name"], status)
    cluster.api.complete_job(NS, job["metadata"]["name"], succeeded=False)


def test_a_disruption_does_not_count_as_an_attempt(cluster: Cluster) -> None:
    body = goal_manifest("w5")
    body["spec"]["retry"]["maxAttempts"] = 1
    cluster.create(body)
    first, pod = start(cluster, "w5")
    assert first["spec"]["podFailurePolicy"]["rules"][0]["action"] == "Ignore"

    evict(cluster, first, pod, "Eviction API: evicting", condition=True)

    # maxAttempts 1, yet a second attempt: the disruption was not the attempt's failure.
    jobs = cluster.wait_jobs("w5", 2)
    second = next(j for j in jobs if j["metadata"]["name"] != first["metadata"]["name"])
    status = cluster.wait_phase("w5", "Running")
    assert status["disruptions"] == 1
    cluster.finish(second, PUBLISHED)
    cluster.wait_phase("w5", "Succeeded")


def test_an_eviction_over_the_workspace_limit_is_workspace_full(cluster: Cluster) -> None:
    cluster.create(goal_manifest("w6"))
    job, pod = start(cluster, "w6")

    message = 'Usage of EmptyDir volume "workspace" exceeds the limit "1Gi". '
    evict(cluster, job, pod, message, condition=False)

    status = cluster.wait_phase("w6", "Failed", reason="WorkspaceFull")
    assert "spec.task.workspaceSizeLimit" in status["message"]
    assert len(cluster.jobs_of("w6")) == 1
