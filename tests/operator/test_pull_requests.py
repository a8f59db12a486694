"""A goal's pull request after it opened, in the operator against the API emulator and the
GitHub stand-in: followed with conditional requests until merged or closed; closed without
merging, its task is declined by its Backlog until revived. And what a retry is told of the
attempt before it (`BACKLOG_PREVIOUS_FAILURE`)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backlog_operator.api.labels import LABEL_BACKLOG, LABEL_GOAL_UID
from backlog_operator.api.result import Outcome, WorkerResult
from backlog_operator.controller.handlers import build_registry
from backlog_operator.controller.metrics import Metrics
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.status import timestamp
from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import make_remote
from tests.support.kopf_harness import KopfThread, new_api_client

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
BACKLOGS = "backlog.dev/v1alpha1/backlogs"
JOBS = "batch/v1/jobs"
EVENTS = "v1/events"
TOKEN = "ghp_followTheP0llRequestToken1234567"
REPOSITORY = "octo/project"
# Short, so that a test sees several looks: every round of the loop (0.05 s) may take them.
POLL_SECONDS = 0.2

Json = dict[str, Any]

BACKLOG_FILE = """\
tasks:
  - id: ci-cache
    title: Cache CI
    ready: true
    priority: critical
  - id: docs-intro
    title: Introduction
    ready: true
    priority: low
"""


class Cluster:
    """The emulator, the Job controller's part played by the test, and the forge stand-in."""

    def __init__(self, server: EmulatorServer, github: GitHubStandIn) -> None:
        self.api: HardenedEmulator = server.emulator
        self.github = github
        self.api.create_object(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "github-token", "namespace": NS},
                "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
            }
        )

    def pull_request_spec(self) -> Json:
        return {
            "provider": "github",
            "apiBaseUrl": self.github.base_url,
            "repository": REPOSITORY,
        }

    def goal(self, name: str) -> Json:
        found = self.api.get_object(GOALS, NS, name)
        assert found is not None, f"goal {name} is gone"
        return found

    def status(self, name: str) -> Json:
        return self.goal(name).get("status") or {}

    def condition(self, name: str, kind: str) -> Json:
        conditions = self.status(name).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), {})

    def jobs_of(self, name: str) -> list[Json]:
        uid = self.goal(name)["metadata"]["uid"]
        return self.api.list_objects(JOBS, NS, label_selector=f"{LABEL_GOAL_UID}={uid}")

    def publish(self, name: str, task: str, branch: str) -> int:
        """The goal's attempt runs and opens a pull request from `branch` (on the stand-in,
        as the worker would); its number."""
        pull = self.github.add_pull(branch, "main", title=task)
        [job] = self.api.wait_for(lambda: self.jobs_of(name))
        pod = self.api.start_job(NS, job["metadata"]["name"])
        result = WorkerResult(
            outcome=Outcome.PUBLISHED,
            task_id=task,
            branch=branch,
            commit="0" * 40,
            pull_request={
                "number": pull.number,
                "url": f"https://github.com/{REPOSITORY}/pull/{pull.number}",
            },
            changed_files=[".backlog/backlog.yaml"],
            backlog_updated=True,
            step="publish",
        )
        self.api.finish_pod(NS, pod["metadata"]["name"], messages={"publish": result.to_json()})
        self.api.complete_job(NS, job["metadata"]["name"], succeeded=True)
        self.wait_status(name, lambda s: s.get("phase") == "Succeeded")
        return pull.number

    def wait_status(self, name: str, predicate: Any, timeout: float = 10) -> Json:
        return self.api.wait_for(
            lambda: (s := self.status(name)) and predicate(s) and s,
            timeout=timeout,
            message=lambda: f"{name}: {self.status(name)}",
        )

    def looks(self, number: int) -> list[Any]:
        """The operator's GETs of pull request `number` on the stand-in."""
        return self.github.requests_to("GET", f"/repos/{REPOSITORY}/pulls/{number}")

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


@contextmanager
def running_operator(
    server: EmulatorServer, tmp_path: Path, metrics: Metrics | None = None, **settings: Any
) -> Iterator[None]:
    options: dict[str, Any] = {
        "requeue_seconds": 0.05,
        "worker_image": "backlog-operator:test",
        "cache_dir": str(tmp_path / "cache"),
        "pr_poll_seconds": POLL_SECONDS,
        "max_running_per_repository": 10,
    }
    options.update(settings)
    registry = build_registry(
        OperatorSettings(**options), lambda: new_api_client(server), login=False, metrics=metrics
    )
    with KopfThread(server, registry=registry):
        yield


@pytest.fixture
def github() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(REPOSITORY, token=TOKEN) as standin:
        yield standin


@pytest.fixture
def cluster(
    emulator_server: EmulatorServer, project_crds: object, github: GitHubStandIn, tmp_path: Path
) -> Iterator[Cluster]:
    with running_operator(emulator_server, tmp_path):
        yield Cluster(emulator_server, github)


def goal_manifest(cluster: Cluster, name: str, **spec: Any) -> Json:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "repository": {
                "url": f"https://github.com/{REPOSITORY}.git",
                "credentialsSecret": {"name": "github-token"},
            },
            "backlog": {"taskId": "docs-guide"},
            "task": {"image": "busybox:1.37", "command": ["true"]},
            "pullRequest": cluster.pull_request_spec(),
            "retry": {"maxAttempts": 3, "backoffSeconds": 0, "maxBackoffSeconds": 0},
            **spec,
        },
    }


# ------------------------------------------------------------------- followed to merged


def test_a_pull_request_is_followed_with_etags_until_it_merges(cluster: Cluster) -> None:
    cluster.api.create_object(goal_manifest(cluster, "g1"))
    number = cluster.publish("g1", "docs-guide", "backlog/docs-guide-3f9c2a")

    opened = cluster.status("g1")
    assert opened["pullRequest"]["state"] == "open"
    merged_condition = cluster.condition("g1", "Merged")
    assert (merged_condition["status"], merged_condition["reason"]) == ("False", "PullRequestOpen")

    # Looked at again and again; nothing changed, so every look after the first is a 304,
    # which costs no rate limit.
    cluster.api.wait_for(lambda: cluster.github.not_modified >= 2 or None)
    first, second = cluster.looks(number)[:2]
    assert "if-none-match" not in first.headers
    assert second.headers["if-none-match"].startswith('W/"')
    assert second.headers["authorization"] == f"token {TOKEN}"
    assert cluster.github.requests_to("GET", "/issues/") == []
    assert cluster.status("g1")["pullRequest"] == opened["pullRequest"]  # nothing written

    cluster.github.merge(number, by="maintainer")

    status = cluster.wait_status("g1", lambda s: s["pullRequest"].get("state") == "merged")
    pull = status["pullRequest"]
    assert pull["mergedBy"] == "maintainer" and len(pull["mergeCommit"]) == 40
    assert pull["mergedAt"] and "closedBy" not in pull
    assert status["phase"] == "Succeeded"  # the goal's own outcome does not change
    merged_condition = cluster.condition("g1", "Merged")
    assert (merged_condition["status"], merged_condition["reason"]) == ("True", "PullRequestMerged")
    assert "merged by maintainer" in merged_condition["message"]
    ready = cluster.condition("g1", "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Published")
    cluster.api.wait_for(lambda: ("Normal", "PullRequestMerged") in cluster.events("g1") or None)

    # Merged: no more looks at it.
    looked = len(cluster.looks(number))
    time.sleep(10 * POLL_SECONDS)
    assert len(cluster.looks(number)) == looked
    assert cluster.events("g1").count(("Normal", "PullRequestMerged")) == 1


def test_a_goal_without_a_pull_request_is_not_followed(cluster: Cluster) -> None:
    spec = goal_manifest(cluster, "branch-only")
    spec["spec"]["pullRequest"] = {"provider": "none"}
    cluster.api.create_object(spec)
    [job] = cluster.api.wait_for(lambda: cluster.jobs_of("branch-only"))
    pod = cluster.api.start_job(NS, job["metadata"]["name"])
    result = WorkerResult(
        outcome=Outcome.PUBLISHED, task_id="docs-guide", branch="b", step="publish"
    )
    cluster.api.finish_pod(NS, pod["metadata"]["name"], messages={"publish": result.to_json()})
    cluster.api.complete_job(NS, job["metadata"]["name"], succeeded=True)
    status = cluster.wait_status("branch-only", lambda s: s.get("phase") == "Succeeded")

    time.sleep(10 * POLL_SECONDS)

    assert "pullRequest" not in status
    assert cluster.condition("branch-only", "Merged") == {}
    assert cluster.github.requests == []


def test_a_pull_request_the_token_cannot_read_shows_on_the_goal(cluster: Cluster) -> None:
    cluster.api.create_object(goal_manifest(cluster, "g2"))
    number = cluster.publish("g2", "docs-guide", "backlog/docs-guide-3f9c2a")
    cluster.github.fail_next(403, times=1000, path_contains=f"/pulls/{number}")

    cluster.wait_status(
        "g2",
        lambda s: any(c["type"] == "Merged" and c["status"] == "Unknown" for c in s["conditions"]),
    )

    merged_condition = cluster.condition("g2", "Merged")
    assert merged_condition["reason"] == "PullRequestUnreadable"
    assert "not allowed" in merged_condition["message"]
    assert TOKEN not in json.dumps(cluster.goal("g2"))
    assert cluster.status("g2")["pullRequest"]["state"] == "open"

    # The token is given access again: the next look that works puts the condition back
    # (still open, so no event).
    cluster.github.clear_failures()
    cluster.wait_status(
        "g2",
        lambda s: any(c["type"] == "Merged" and c["status"] == "False" for c in s["conditions"]),
    )
    assert cluster.condition("g2", "Merged")["reason"] == "PullRequestOpen"
    assert ("Normal", "PullRequestOpen") not in cluster.events("g2")


# ------------------------------------------------------- closed: the Backlog's task declined


def backlog_manifest(cluster: Cluster, url: str) -> Json:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Backlog",
        "metadata": {"name": "team", "namespace": NS},
        "spec": {
            "repository": {"url": url, "credentialsSecret": {"name": "github-token"}},
            "goalTemplate": {
                "spec": {
                    "task": {"image": "busybox", "command": ["true"]},
                    "pullRequest": cluster.pull_request_spec(),
                    "retry": {"maxAttempts": 1},
                }
            },
            "syncIntervalSeconds": 10,
            "limits": {"maxRunningGoals": 1, "maxOpenPullRequests": 5},
            # Before pull requests were followed, a succeeded Goal held its task until history
            # trimming deleted it: here once the next task's Goal succeeded, and the closed
            # task came back.
            "history": {"successful": 1, "failed": 0},
        },
    }


def backlog_status(cluster: Cluster) -> Json:
    found = cluster.api.get_object(BACKLOGS, NS, "team")
    assert found is not None
    return found.get("status") or {}


def goals_of(cluster: Cluster) -> dict[str, str]:
    """The Backlog's Goals: name -> task."""
    return {
        g["metadata"]["name"]: g["spec"]["backlog"]["taskId"]
        for g in cluster.api.list_objects(GOALS, NS, label_selector=f"{LABEL_BACKLOG}=team")
    }


def test_a_closed_pull_request_declines_its_task_until_revived(
    cluster: Cluster, tmp_path: Path
) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG_FILE})
    cluster.api.create_object(backlog_manifest(cluster, str(remote)))
    cluster.api.wait_for(lambda: "team-ci-cache" in goals_of(cluster) or None)
    number = cluster.publish("team-ci-cache", "ci-cache", "backlog/ci-cache-3f9c2a")
    cluster.api.wait_for(lambda: "team-docs-intro" in goals_of(cluster) or None)

    cluster.github.close(number, by="reviewer")

    status = cluster.wait_status(
        "team-ci-cache", lambda s: s["pullRequest"].get("state") == "closed"
    )
    assert status["pullRequest"]["closedBy"] == "reviewer"
    merged_condition = cluster.condition("team-ci-cache", "Merged")
    assert (merged_condition["status"], merged_condition["reason"]) == (
        "False",
        "PullRequestClosed",
    )
    cluster.api.wait_for(
        lambda: ("Normal", "PullRequestClosed") in cluster.events("team-ci-cache") or None
    )
    declined = cluster.api.wait_for(lambda: backlog_status(cluster).get("declined"))
    assert declined == [
        {
            "id": "ci-cache",
            "pullRequest": {
                "number": number,
                "url": f"https://github.com/{REPOSITORY}/pull/{number}",
            },
            "closedBy": "reviewer",
            "declinedAt": status["pullRequest"]["closedAt"],
            "goal": "team-ci-cache",
        }
    ]
    cluster.api.wait_for(lambda: ("Normal", "TaskDeclined") in cluster.events("team") or None)

    # The next syncs, with docs-intro's Goal finished and room to start: ci-cache is pending
    # and ready in the file, and still not picked again; its Goal is kept as the record.
    cluster.publish("team-docs-intro", "docs-intro", "backlog/docs-intro-3f9c2a")
    synced = backlog_status(cluster)["lastSyncTime"]
    cluster.api.patch_object(
        BACKLOGS, NS, "team", {"metadata": {"annotations": {"backlog.dev/requested-at": "1"}}}
    )
    cluster.api.wait_for(lambda: backlog_status(cluster).get("lastHandledReconcileAt") == "1")
    assert backlog_status(cluster)["lastSyncTime"] >= synced
    assert sorted(goals_of(cluster)) == ["team-ci-cache", "team-docs-intro"]
    assert [t["id"] for t in backlog_status(cluster)["declined"]] == ["ci-cache"]

    # Revived: a second Goal for the task, which runs (not skipped as already done by the
    # first, which is still there: the one history keeps).
    revived = timestamp(datetime.now(UTC) + timedelta(seconds=1))
    cluster.api.patch_object(
        BACKLOGS,
        NS,
        "team",
        {"metadata": {"annotations": {"revive.backlog.dev/ci-cache": revived}}},
    )
    cluster.api.wait_for(lambda: "team-ci-cache-2" in goals_of(cluster) or None)
    cluster.api.wait_for(lambda: cluster.jobs_of("team-ci-cache-2") or None)
    cluster.wait_status("team-ci-cache-2", lambda s: s.get("phase") == "Running")
    assert "team-ci-cache" in goals_of(cluster)
    cluster.api.wait_for(lambda: backlog_status(cluster).get("declined") == [] or None)


# ------------------------------------------------------------------ what a retry is told


def test_a_retry_is_told_the_previous_failure_with_its_task_log_masked(
    cluster: Cluster,
) -> None:
    cluster.api.create_object(goal_manifest(cluster, "g3"))
    [first] = cluster.api.wait_for(lambda: cluster.jobs_of("g3"))
    pod = cluster.api.start_job(NS, first["metadata"]["name"])
    noise = "".join(f"compiling module {i}\n" for i in range(400))
    cluster.api.set_pod_log(
        NS,
        pod["metadata"]["name"],
        f"{noise}pushing with {TOKEN} and ghp_someOtherTokenShaped0123456789\n"
        "error: tests failed in test_cache.py\n",
        container="task",
    )
    cluster.api.set_pod_log(NS, pod["metadata"]["name"], "clone step output\n", container="clone")
    cluster.api.finish_pod(NS, pod["metadata"]["name"], exit_codes={"task": 3})
    cluster.api.complete_job(NS, first["metadata"]["name"], succeeded=False)

    second = cluster.api.wait_for(
        lambda: [
            j for j in cluster.jobs_of("g3") if j["metadata"]["name"] != first["metadata"]["name"]
        ]
    )[0]

    containers = {c["name"]: c for c in second["spec"]["template"]["spec"]["initContainers"]}
    env = {e["name"]: e["value"] for e in containers["task"]["env"]}
    told = json.loads(env["BACKLOG_PREVIOUS_FAILURE"])
    assert (told["attempt"], told["reason"], told["step"]) == (1, "TaskFailed", "task")
    assert "3" in told["message"]
    assert told["log"].endswith("error: tests failed in test_cache.py\n")
    assert len(told["log"].encode()) <= 4096
    assert "compiling module 399" in told["log"] and "compiling module 0\n" not in told["log"]
    assert TOKEN not in told["log"] and "ghp_someOther" not in told["log"]
    assert "clone step output" not in told["log"]
    assert TOKEN not in json.dumps(second)
    # Only the task is told; the worker steps are not, nor was the first attempt.
    for step in ("clone",):
        assert "BACKLOG_PREVIOUS_FAILURE" not in {e["name"] for e in containers[step]["env"]}
    first_task = next(
        c for c in first["spec"]["template"]["spec"]["initContainers"] if c["name"] == "task"
    )
    assert "BACKLOG_PREVIOUS_FAILURE" not in {e["name"] for e in first_task["env"]}
    last_failure = cluster.status("g3")["lastFailure"]
    assert (last_failure["attempt"], last_failure["reason"]) == (1, "TaskFailed")
