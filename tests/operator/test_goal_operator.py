"""The operator in-process (kopf) against the API emulator over HTTP: Goals → Jobs → status.

No Job controller runs in the emulator: a test plays it, creating the Pod, terminating its
containers with the worker's termination message and marking the Job finished, exactly as
the Job controller and the kubelet report them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from backlog_operator.api.labels import LABEL_GOAL_UID
from backlog_operator.api.result import Outcome, WorkerResult, failure
from backlog_operator.controller.handlers import build_registry
from backlog_operator.controller.runtime import RetryPolicy
from backlog_operator.controller.settings import OperatorSettings
from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.kopf_harness import KopfThread, new_api_client

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
JOBS = "batch/v1/jobs"
PODS = "v1/pods"
EVENTS = "v1/events"

Json = dict[str, Any]


def goal_manifest(
    name: str, *, task: str | None = "docs-guide", repo: str = "o/r", **spec: Any
) -> Json:
    body: Json = {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "repository": {"url": f"https://github.com/{repo}.git"},
            "backlog": {"taskId": task} if task else {},
            "task": {"image": "busybox:1.37", "command": ["true"]},
            "retry": {"maxAttempts": 3, "backoffSeconds": 0, "maxBackoffSeconds": 0},
            **spec,
        },
    }
    return body


class Cluster:
    """The emulator plus the Job controller's part, played by the test."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.api: HardenedEmulator = server.emulator

    def create(self, body: Json) -> Json:
        return self.api.create_object(body)

    def goal(self, name: str) -> Json:
        found = self.api.get_object(GOALS, NS, name)
        assert found is not None, f"goal {name} is gone"
        return found

    def status(self, name: str) -> Json:
        return self.goal(name).get("status") or {}

    def jobs_of(self, name: str) -> list[Json]:
        uid = self.goal(name)["metadata"]["uid"]
        return self.api.list_objects(JOBS, NS, label_selector=f"{LABEL_GOAL_UID}={uid}")

    def wait_phase(
        self, name: str, phase: str, *, reason: str | None = None, timeout: float = 10
    ) -> Json:
        def reached() -> Json | None:
            status = self.status(name)
            if status.get("phase") == phase and (reason is None or status.get("reason") == reason):
                return status
            return None

        return self.api.wait_for(
            reached, timeout=timeout, message=lambda: f"{name}: {self.status(name)}"
        )

    def wait_jobs(self, name: str, count: int) -> list[Json]:
        return self.api.wait_for(
            lambda: (jobs := self.jobs_of(name)) and len(jobs) >= count and jobs,
            message=lambda: f"{name} has {len(self.jobs_of(name))} Jobs, wanted {count}",
        )

    def finish(
        self,
        job: Json,
        result: WorkerResult | None = None,
        *,
        exit_codes: dict[str, int] | None = None,
    ) -> None:
        """Run the Job's Pod to its end; `result` is the termination message of its step."""
        name = job["metadata"]["name"]
        pod = self.api.start_job(NS, name)
        messages: dict[str, str] = {result.step or "publish": result.to_json()} if result else {}
        self.api.finish_pod(NS, pod["metadata"]["name"], exit_codes=exit_codes, messages=messages)
        self.api.complete_job(NS, name, succeeded=not exit_codes)

    def events(self, name: str) -> list[tuple[str, str]]:
        items = self.api.list_objects(EVENTS, NS)
        return [(e["type"], e["reason"]) for e in items if e["involvedObject"]["name"] == name]

    def event_messages(self, name: str, reason: str) -> list[str]:
        items = self.api.list_objects(EVENTS, NS)
        return [
            e["message"]
            for e in items
            if e["involvedObject"]["name"] == name and e["reason"] == reason
        ]

    def requests(self, method: str, path: str) -> int:
        """HTTP requests the operator sent with `method` to `path` (within the emulator's
        request history, which a test raises for long counts)."""
        return sum(1 for r in self.api if r.method.value == method and r.url.path == path)

    def condition(self, name: str, kind: str) -> Json:
        conditions = self.status(name).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), {})


PUBLISHED = WorkerResult(
    outcome=Outcome.PUBLISHED,
    task_id="docs-guide",
    branch="backlog/docs-guide-3f9c2a",
    commit="0" * 40,
    pull_request={"number": 707, "url": "https://github.com/o/r/pull/707"},
    changed_files=["docs/guide.md", ".backlog/backlog.yaml"],
    backlog_updated=True,
)


JOBS_PATH = f"/apis/batch/v1/namespaces/{NS}/jobs"
# Retries of failed cycles as the operator's, only faster (a test waits less for them).
FAST_RETRY = RetryPolicy(base_seconds=0.2, max_seconds=2.0, report_after=3)


@contextmanager
def running_operator(
    server: EmulatorServer, *, retry: RetryPolicy | None = None, **settings: Any
) -> Iterator[None]:
    options: dict[str, Any] = {"requeue_seconds": 0.1, "worker_image": "backlog-operator:test"}
    options.update(settings)
    registry = build_registry(
        OperatorSettings(**options),
        lambda: new_api_client(server),
        login=False,
        retry=retry,
    )
    with KopfThread(server, registry=registry):
        yield


@pytest.fixture
def cluster(emulator_server: EmulatorServer, project_crds: object) -> Iterator[Cluster]:
    """The emulator with the project's CRDs, and the operator running against it."""
    with running_operator(emulator_server):
        yield Cluster(emulator_server)


def test_goal_runs_as_a_job_and_reports_the_pull_request(cluster: Cluster) -> None:
    cluster.create(goal_manifest("g1"))

    [job] = cluster.wait_jobs("g1", 1)
    running = cluster.wait_phase("g1", "Running")
    assert running["attempts"] == 1 and running["jobName"] == job["metadata"]["name"]
    pod_spec = job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod_spec["initContainers"]] == ["clone", "task"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == cluster.goal("g1")["metadata"]["uid"]

    cluster.finish(job, PUBLISHED)

    status = cluster.wait_phase("g1", "Succeeded")
    assert status["pullRequest"] == {
        "number": 707,
        "url": "https://github.com/o/r/pull/707",
        "state": "open",  # followed from now on (tests/operator/test_pull_requests.py)
    }
    assert status["branch"] == "backlog/docs-guide-3f9c2a"
    assert status["changedFiles"] == ["docs/guide.md", ".backlog/backlog.yaml"]
    assert status["observedGeneration"] == cluster.goal("g1")["metadata"]["generation"]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {
        "Ready": ("True", "Published"),
        "Reconciling": ("False", "Finished"),
        "Stalled": ("False", "NotStalled"),
        "Merged": ("False", "PullRequestOpen"),
    }
    assert status["startTime"] and status["completionTime"]
    events = cluster.api.wait_for(
        lambda: ("Normal", "Published") in cluster.events("g1") and cluster.events("g1")
    )
    assert events.count(("Normal", "Started")) == 1
    assert events.count(("Normal", "Published")) == 1


def test_retryable_failure_backs_off_and_a_second_attempt_succeeds(cluster: Cluster) -> None:
    cluster.create(goal_manifest("g2"))
    [first] = cluster.wait_jobs("g2", 1)

    cluster.finish(first, exit_codes={"task": 3})

    jobs = cluster.wait_jobs("g2", 2)
    second = next(j for j in jobs if j["metadata"]["name"] != first["metadata"]["name"])
    cluster.wait_phase("g2", "Running")
    cluster.finish(second, PUBLISHED)
    status = cluster.wait_phase("g2", "Succeeded")
    assert status["attempts"] == 2
    cluster.api.wait_for(lambda: ("Warning", "AttemptFailed") in cluster.events("g2"))


def test_permanent_failure_stalls_without_retry(cluster: Cluster) -> None:
    cluster.create(goal_manifest("g3"))
    [job] = cluster.wait_jobs("g3", 1)
    refused = failure(
        "PathViolation", "the task changed src/app.py", retryable=False, step="publish"
    )

    cluster.finish(job, refused, exit_codes={"publish": 65})

    status = cluster.wait_phase("g3", "Failed")
    assert status["reason"] == "PathViolation"
    assert "src/app.py" in status["message"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"
    assert len(cluster.jobs_of("g3")) == 1


def test_invalid_spec_fails_with_a_clear_message_and_no_secret(cluster: Cluster) -> None:
    body = goal_manifest("g4")
    body["spec"]["repository"]["url"] = "https://bot:ghp_leakme123@github.com/o/r.git"
    cluster.create(body)

    status = cluster.wait_phase("g4", "Failed", reason="InvalidSpec")

    assert "credentials" in status["message"]
    assert "ghp_leakme123" not in json.dumps(status)
    assert cluster.jobs_of("g4") == []
    cluster.api.wait_for(lambda: ("Warning", "InvalidSpec") in cluster.events("g4"))


def test_resources_the_api_server_would_refuse_fail_the_goal_not_the_job(cluster: Cluster) -> None:
    body = goal_manifest("g4r")
    body["spec"]["task"]["resources"] = {
        "requests": {"memory": "8Gi"},
        "limits": {"memory": "4Gi"},
    }
    cluster.create(body)

    status = cluster.wait_phase("g4r", "Failed", reason="InvalidSpec")

    assert status["message"].startswith("invalid spec: spec.task.resources: ")
    assert "requests.memory must not be above limits.memory" in status["message"]
    assert cluster.jobs_of("g4r") == []


def test_job_carries_the_goal_size_limit_and_default_task_resources(cluster: Cluster) -> None:
    body = goal_manifest("g4s")
    body["spec"]["task"]["workspaceSizeLimit"] = "12Gi"
    cluster.create(body)

    [job] = cluster.wait_jobs("g4s", 1)

    pod_spec = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert volumes["workspace"]["emptyDir"] == {"sizeLimit": "12Gi"}
    assert volumes["private"]["emptyDir"] == {"sizeLimit": "12Gi"}
    task = next(c for c in pod_spec["initContainers"] if c["name"] == "task")
    assert task["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "4Gi"},
    }
    assert all(m["name"] != "private" for m in task["volumeMounts"])


def test_two_goals_for_one_task_never_run_at_once(cluster: Cluster) -> None:
    cluster.create(goal_manifest("first"))
    [job] = cluster.wait_jobs("first", 1)
    cluster.create(goal_manifest("second"))

    waiting = cluster.wait_phase("second", "Queued", reason="WaitingForTask")
    assert "default/first" in waiting["message"]
    assert cluster.jobs_of("second") == []

    cluster.finish(job, PUBLISHED)
    cluster.wait_phase("first", "Succeeded")
    skipped = cluster.wait_phase("second", "Skipped")
    assert "default/first" in skipped["message"]
    assert cluster.jobs_of("second") == []


def test_suspended_goal_waits_until_resumed(cluster: Cluster) -> None:
    cluster.create(goal_manifest("g5", suspend=True))
    cluster.wait_phase("g5", "Queued", reason="Suspended")
    assert cluster.jobs_of("g5") == []

    cluster.api.patch_object(GOALS, NS, "g5", {"spec": {"suspend": False}})

    cluster.wait_jobs("g5", 1)
    cluster.wait_phase("g5", "Running")


def test_deleting_a_goal_stops_its_job(cluster: Cluster) -> None:
    cluster.create(goal_manifest("g6"))
    [job] = cluster.wait_jobs("g6", 1)
    cluster.wait_phase("g6", "Running")

    cluster.api.delete_object(GOALS, NS, "g6")

    cluster.api.wait_for(
        lambda: (
            cluster.api.get_object(JOBS, NS, job["metadata"]["name"]) is None
            and cluster.api.get_object(GOALS, NS, "g6") is None
        ),
        message="the goal's Job (or the goal) is still there",
    )


def test_finished_goal_does_not_rerun_on_spec_change_but_on_request(cluster: Cluster) -> None:
    cluster.create(goal_manifest("g7"))
    [job] = cluster.wait_jobs("g7", 1)
    cluster.finish(job, PUBLISHED)
    cluster.wait_phase("g7", "Succeeded")

    cluster.api.patch_object(GOALS, NS, "g7", {"spec": {"priority": 5}})
    cluster.api.wait_for(lambda: ("Normal", "SpecChangedAfterFinish") in cluster.events("g7"))
    generation = cluster.goal("g7")["metadata"]["generation"]
    cluster.api.wait_for(lambda: cluster.status("g7").get("observedGeneration") == generation)
    assert cluster.status("g7")["phase"] == "Succeeded"
    assert len(cluster.jobs_of("g7")) == 1

    annotation = {"metadata": {"annotations": {"backlog.dev/requested-at": "2026-11-21T10:00:00Z"}}}
    cluster.api.patch_object(GOALS, NS, "g7", annotation)

    jobs = cluster.wait_jobs("g7", 2)
    assert len(jobs) == 2
    status = cluster.wait_phase("g7", "Running")
    assert status["lastHandledReconcileAt"] == "2026-11-21T10:00:00Z"


def test_capacity_queues_by_priority_then_age(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    cluster = Cluster(emulator_server)
    with running_operator(emulator_server, max_running_per_repository=1):
        cluster.create(goal_manifest("a-running", task="t1"))
        [job] = cluster.wait_jobs("a-running", 1)
        cluster.create(goal_manifest("b-low", task="t2", priority=9))
        cluster.create(goal_manifest("c-high", task="t3", priority=1))
        cluster.wait_phase("b-low", "Queued", reason="WaitingForCapacity")
        high = cluster.wait_phase("c-high", "Queued", reason="WaitingForCapacity")
        cluster.api.wait_for(lambda: cluster.status("c-high").get("queuePosition") == 1)
        cluster.api.wait_for(lambda: cluster.status("b-low").get("queuePosition") == 2)
        assert high["message"].startswith("waiting for capacity")

        cluster.finish(job, PUBLISHED)

        cluster.wait_jobs("c-high", 1)
        cluster.wait_phase("c-high", "Running")
        assert cluster.status("b-low")["phase"] == "Queued"
        assert cluster.jobs_of("b-low") == []


def test_restarted_operator_adopts_the_running_job(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    cluster = Cluster(emulator_server)
    with running_operator(emulator_server):
        cluster.create(goal_manifest("g8"))
        [job] = cluster.wait_jobs("g8", 1)
        cluster.wait_phase("g8", "Running")

    with running_operator(emulator_server):
        cluster.finish(job, PUBLISHED)
        cluster.wait_phase("g8", "Succeeded")
    assert len(cluster.jobs_of("g8")) == 1


def test_job_made_before_a_crash_is_adopted_not_duplicated(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    """The operator died after creating the Job but before writing the status."""
    from backlog_operator.api.goal import Goal
    from backlog_operator.controller.goals.job import build_job

    cluster = Cluster(emulator_server)
    created = cluster.create(goal_manifest("g9"))
    cluster.api.create_object(build_job(Goal.model_validate(created), 1, OperatorSettings()))

    with running_operator(emulator_server):
        status = cluster.wait_phase("g9", "Running")
        assert status["attempts"] == 1
        cluster.api.wait_for(lambda: ("Normal", "Adopted") in cluster.events("g9"))
    assert len(cluster.jobs_of("g9")) == 1


def test_kubectl_applies_and_lists_goals(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    import shutil

    import yaml

    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    cluster = Cluster(emulator_server)
    manifest = yaml.safe_dump(goal_manifest("from-kubectl"))
    with running_operator(emulator_server):
        # A person's kubectl (the admin), not the operator's service account.
        emulator_server.kubectl("apply", "--validate=false", "-f", "-", input=manifest, admin=True)
        cluster.wait_phase("from-kubectl", "Running")
        again = emulator_server.kubectl(
            "apply", "--validate=false", "-f", "-", input=manifest, admin=True
        )
        assert "unchanged" in again.stdout or "configured" in again.stdout
        listing = emulator_server.kubectl("get", "goals", "-o", "json", admin=True)
        cluster.api.wait_for(lambda: len(cluster.jobs_of("from-kubectl")) == 1)
    names = [item["metadata"]["name"] for item in json.loads(listing.stdout)["items"]]
    assert names == ["from-kubectl"]
    assert len(cluster.jobs_of("from-kubectl")) == 1  # re-applying started nothing new


def test_operator_writes_only_status(cluster: Cluster) -> None:
    """GitOps-safe: no spec edits, no annotations, no finalizers on a Goal, whatever happens."""
    applied = cluster.create(goal_manifest("gitops"))
    [job] = cluster.wait_jobs("gitops", 1)
    cluster.finish(job, PUBLISHED)
    cluster.wait_phase("gitops", "Succeeded")

    final = cluster.goal("gitops")
    assert final["spec"] == applied["spec"]
    assert final["metadata"].get("finalizers") in (None, [])
    assert final["metadata"].get("annotations") in (None, {})
    assert final["metadata"]["generation"] == applied["metadata"]["generation"]


# --- failures of the API, and what they leave behind ------------------------------------------


def test_a_failed_first_read_of_a_new_goal_is_retried_until_it_has_its_status(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    """kopf does not retry event handlers: the runtime retries the cycle with backoff."""
    cluster = Cluster(emulator_server)
    read = cluster.api.faults.add(verb="get", resource="goals", name="g-read", status=500, times=1)
    with running_operator(emulator_server):
        cluster.create(goal_manifest("g-read"))

        status = cluster.wait_phase("g-read", "Running")

    assert read.hits == 1
    assert status["attempts"] == 1
    assert len(cluster.jobs_of("g-read")) == 1


def test_a_failure_that_keeps_happening_shows_on_the_goal_once_and_clears(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    """Every Job create answers 503: not a loop of tracebacks on every tick but retries with
    backoff, Ready=False (ReconcileError, the server's answer) from the third failure in a row,
    one Warning event; the next success puts the phase's conditions back."""
    cluster = Cluster(emulator_server)
    failing = cluster.api.faults.add(verb="create", resource="jobs", status=503)
    with running_operator(emulator_server, retry=FAST_RETRY):
        cluster.create(goal_manifest("g-503"))

        ready = cluster.api.wait_for(
            lambda: (
                (c := cluster.condition("g-503", "Ready")).get("reason") == "ReconcileError" and c
            ),
            message=lambda: f"{cluster.status('g-503')}",
        )
        assert ready["status"] == "False"
        assert "503" in ready["message"] and "ServiceUnavailable" in ready["message"]
        assert cluster.condition("g-503", "Reconciling")["status"] == "True"
        assert cluster.condition("g-503", "Stalled")["status"] == "False"
        hits = failing.hits
        assert 3 <= hits <= 5  # retried with backoff, not on every 0.1 s tick
        cluster.api.wait_for(lambda: failing.hits >= hits + 2, timeout=15)
        assert cluster.events("g-503").count(("Warning", "ReconcileError")) == 1

        cluster.api.faults.remove(failing)

        status = cluster.wait_phase("g-503", "Running", timeout=15)
        ready = cluster.condition("g-503", "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "Running")
        assert cluster.condition("g-503", "Reconciling")["reason"] == "Running"
    assert status["attempts"] == 1 and len(cluster.jobs_of("g-503")) == 1
    assert cluster.events("g-503").count(("Warning", "ReconcileError")) == 1


@pytest.mark.parametrize(
    ("code", "reason", "said"),
    [
        (422, "InvalidSpec", "the server rejected our request due to an error"),
        (400, "InvalidSpec", "the server rejected our request for an unknown reason"),
        (403, "JobRefused", "forbidden: injected fault"),
        (404, "JobRefused", "the server could not find the requested resource"),
    ],
)
def test_a_job_the_api_server_refuses_fails_the_goal_once(
    emulator_server: EmulatorServer, project_crds: object, code: int, reason: str, said: str
) -> None:
    cluster = Cluster(emulator_server)
    cluster.api.faults.add(verb="create", resource="jobs", status=code)
    with running_operator(emulator_server):
        cluster.create(goal_manifest("g-refused"))

        status = cluster.wait_phase("g-refused", "Failed", reason=reason)
        cluster.api.wait_for(lambda: ("Warning", reason) in cluster.events("g-refused"))
        time.sleep(0.5)  # five requeue periods: nothing more is tried or said

    assert said in status["message"] and str(code) in status["message"]
    assert cluster.condition("g-refused", "Stalled")["status"] == "True"
    assert cluster.requests("POST", JOBS_PATH) == 1
    assert cluster.events("g-refused") == [("Warning", reason)]
    assert status["completionTime"]


def test_a_job_create_that_fails_for_a_while_is_retried_with_backoff(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    cluster = Cluster(emulator_server)
    throttled = cluster.api.faults.add(
        verb="create", resource="jobs", status=429, retry_after=0, times=1
    )
    broken = cluster.api.faults.add(verb="create", resource="jobs", status=500, times=1)
    with running_operator(emulator_server, retry=FAST_RETRY):
        cluster.create(goal_manifest("g-flaky"))

        status = cluster.wait_phase("g-flaky", "Running")
        cluster.api.wait_for(lambda: ("Normal", "Started") in cluster.events("g-flaky"))

    assert (throttled.hits, broken.hits) == (1, 1)
    assert status["attempts"] == 1 and len(cluster.jobs_of("g-flaky")) == 1
    assert cluster.requests("POST", JOBS_PATH) == 3
    assert ("Warning", "ReconcileError") not in cluster.events("g-flaky")  # two: not shown


def test_the_client_refusing_a_job_before_sending_it_is_permanent(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    """The official client validates a body against its models before it sends anything."""
    import asyncio

    from backlog_operator.adapters.kube import JobRefusedError, KubeCluster
    from backlog_operator.api.goal import Goal
    from backlog_operator.controller.goals.job import build_job

    created = Cluster(emulator_server).create(goal_manifest("g-client"))
    manifest = build_job(Goal.model_validate(created), 1, OperatorSettings())
    task = manifest["spec"]["template"]["spec"]["initContainers"][1]
    task["resources"] = {"requests": {"cpu": 1}}  # an integer quantity: the client refuses it
    client = new_api_client(emulator_server)
    with pytest.raises(JobRefusedError) as refused:
        asyncio.run(KubeCluster(client).create_job(manifest))
    assert (refused.value.reason, refused.value.retryable) == ("InvalidSpec", False)
    assert "requests.cpu" in str(refused.value)
    assert "valid string" in str(refused.value)
    assert Cluster(emulator_server).requests("POST", JOBS_PATH) == 0


def test_a_crash_between_the_job_and_the_status_does_not_over_admit(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    """The first operator creates g-first's Job, then every status write of g-first fails
    (the operator dies before it): after a restart with a second goal of the same repository
    (more urgent) and a limit of 1, the capacity is rebuilt from the Jobs that exist."""
    cluster = Cluster(emulator_server)
    lost = cluster.api.faults.add(verb="patch", resource="goals/status", name="g-first", status=500)
    with running_operator(emulator_server, max_running_per_repository=1):
        cluster.create(goal_manifest("g-first", task="t1", priority=5))
        [job] = cluster.wait_jobs("g-first", 1)
        cluster.api.wait_for(lambda: lost.hits >= 1)
    cluster.api.faults.remove(lost)
    assert cluster.status("g-first").get("phase") is None  # its Job runs; no status says so

    cluster.create(goal_manifest("g-second", task="t2", priority=0))
    jobs_seen: list[int] = []
    with running_operator(emulator_server, max_running_per_repository=1):
        first = cluster.wait_phase("g-first", "Running")
        second = cluster.wait_phase("g-second", "Queued", reason="WaitingForCapacity")
        for _ in range(10):  # ten requeue periods: still one Job
            jobs_seen.append(len(cluster.api.list_objects(JOBS, NS)))
            time.sleep(0.1)
        assert first["jobName"] == job["metadata"]["name"] and first["attempts"] == 1
        cluster.api.wait_for(lambda: ("Normal", "Adopted") in cluster.events("g-first"))

        cluster.finish(job, PUBLISHED)

        cluster.wait_phase("g-first", "Succeeded")
        cluster.wait_jobs("g-second", 1)
        cluster.wait_phase("g-second", "Running")
    assert second["queuePosition"] == 1
    assert set(jobs_seen) == {1}
    assert cluster.jobs_of("g-second") and len(cluster.jobs_of("g-first")) == 1
    # The first operator never said the start (events follow the status write that failed);
    # the second says it once, as the adoption it is.
    assert cluster.events("g-first").count(("Normal", "Adopted")) == 1


def test_a_job_whose_create_answer_was_lost_is_adopted_and_its_start_said(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    """The create is stored but its answer never arrives (a timeout after the write)."""
    cluster = Cluster(emulator_server)
    lost = cluster.api.faults.add(verb="create", resource="jobs", drop=True, commit=True, times=1)
    with running_operator(emulator_server, retry=FAST_RETRY):
        cluster.create(goal_manifest("g-lost"))

        status = cluster.wait_phase("g-lost", "Running")
        cluster.api.wait_for(lambda: ("Normal", "Started") in cluster.events("g-lost"))

    assert lost.hits == 1
    assert status["attempts"] == 1 and len(cluster.jobs_of("g-lost")) == 1
    assert cluster.requests("POST", JOBS_PATH) == 2  # the lost one, then 409: adopted
    assert cluster.events("g-lost") == [("Normal", "Started")]  # not "Adopted": ours


def test_an_event_the_api_throttles_or_fails_is_posted_again(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    cluster = Cluster(emulator_server)
    throttled = cluster.api.faults.add(
        verb="create", resource="events", status=429, retry_after=1, times=1
    )
    broken = cluster.api.faults.add(verb="create", resource="events", status=503, times=1)
    with running_operator(emulator_server):
        cluster.create(goal_manifest("g-events"))
        [job] = cluster.wait_jobs("g-events", 1)
        cluster.api.wait_for(lambda: ("Normal", "Started") in cluster.events("g-events"))
        cluster.finish(job, PUBLISHED)
        cluster.wait_phase("g-events", "Succeeded")
        cluster.api.wait_for(lambda: ("Normal", "Published") in cluster.events("g-events"))

    assert (throttled.hits, broken.hits) == (1, 1)
    assert sorted(cluster.events("g-events")) == [("Normal", "Published"), ("Normal", "Started")]
