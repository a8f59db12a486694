"""The operator under its own ClusterRole, as OpenShift runs it: the emulator authorizes every
request the operator makes against `backlog-operator-manager` from kustomize/rbac (read as it
is), with the OwnerReferencesPermissionEnforcement admission plugin on, so an ownerReference
with blockOwnerDeletion needs `update` on the owner's `finalizers`.

kopf runs as the Deployment runs it: the harness does not make it standalone, the operator's
startup does (no kopf peering, though the emulator serves kopf's peering CRDs: leader election
on a Lease replaces it, under a Role of its own, tests/operator/test_leader_election.py). The
tests' own reads and writes go through the emulator's Python API, which RBAC does not see:
every HTTP request is the operator's.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from backlog_operator.api.labels import LABEL_BACKLOG, LABEL_GOAL_UID
from backlog_operator.api.result import Outcome, WorkerResult
from backlog_operator.controller import runtime
from backlog_operator.controller.goals import outcome
from backlog_operator.controller.handlers import build_registry
from backlog_operator.controller.settings import OperatorSettings
from tests.operator.test_approval import HASH as STAGED_HASH
from tests.operator.test_approval import stage_job
from tests.operator.test_goal_schedule import Clock, Scheduled, schedule
from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.github_apps import private_pem
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import make_remote
from tests.support.kopf_harness import KopfThread, new_api_client
from tests.support.rbac import RbacPolicy, RequestAttributes, request_attributes
from tests.unit.test_manifests import MANAGER_ROLE, operator_calls

RBAC = Path(__file__).resolve().parents[2] / "kustomize" / "rbac"
NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
BACKLOGS = "backlog.dev/v1alpha1/backlogs"
SCHEDULES = "backlog.dev/v1alpha1/goalschedules"
JOBS = "batch/v1/jobs"
PODS = "v1/pods"
REFUSED = "cannot set blockOwnerDeletion"

BACKLOG_FILE = """\
tasks:
  - id: docs-intro
    title: Introduction
    ready: true
"""


def manager_policy(*, without: str | None = None) -> RbacPolicy:
    """The operator's ClusterRole with OwnerReferencesPermissionEnforcement; `without` names a
    resource (`backlogs/finalizers`) whose rules are left out, to see the role fail without
    them. The files are read, never changed."""
    if without is None:
        return RbacPolicy.from_kustomize(RBAC, role=MANAGER_ROLE, owner_references_enforcement=True)
    role = yaml.safe_load((RBAC / "role.yaml").read_text(encoding="utf-8"))
    assert role["metadata"]["name"] == MANAGER_ROLE
    kept = [rule for rule in role["rules"] if without not in rule["resources"]]
    assert len(kept) == len(role["rules"]) - 1, f"one rule grants {without}"
    role = {**copy.deepcopy(role), "rules": kept}
    user = RbacPolicy.from_kustomize(RBAC, role=MANAGER_ROLE).user
    return RbacPolicy.from_roles([role], user=user, owner_references_enforcement=True)


@contextmanager
def operator(
    server: EmulatorServer, clock: Clock, tmp_path: Path, namespaces: Collection[str] = ()
) -> Iterator[None]:
    """`backlogctl operator` as the Deployment runs it, on the test's clock."""
    registry = build_registry(
        OperatorSettings(
            requeue_seconds=0.05,
            cache_dir=str(tmp_path / "cache"),
            namespaces=list(namespaces),
        ),
        lambda: new_api_client(server),
        login=False,
        clock=clock,
    )
    with KopfThread(server, registry=registry, namespaces=namespaces, standalone=False):
        yield


class Cluster:
    """The emulator under RBAC, and what the operator asked of it."""

    def __init__(self, server: EmulatorServer, policy: RbacPolicy) -> None:
        self.api: HardenedEmulator = server.emulator
        self.policy = policy
        self.api.request_history = None  # keep every request: the tests look at all of them
        self.api.enable_rbac(policy)

    def requests(self) -> list[RequestAttributes]:
        """Every resource request the operator made, as RBAC sees it."""
        found = [
            request_attributes(r.method.value, r.url.path, dict(r.params)) for r in list(self.api)
        ]
        return [request for request in found if request.resource_request]

    def calls(self) -> set[tuple[str, str, str]]:
        """The operator's requests as (group, resource, verb)."""
        return {(r.api_group, r.combined_resource, r.verb) for r in self.requests()}

    def granted(self) -> set[tuple[str, str, str]]:
        """What the role grants, as (group, resource, verb)."""
        return {
            (group, resource, verb)
            for _, rule in self.policy.rules
            for group in rule.api_groups
            for resource in rule.resources
            for verb in rule.verbs
        }

    def denied(self) -> list[str]:
        """The requests RBAC refused (with 403 Forbidden)."""
        return sorted(
            {
                f"{r.verb} {r.api_group}/{r.combined_resource}"
                for r in self.requests()
                if not self.policy.allows(r)
            }
        )

    def said(self, text: str, logs: str) -> bool:
        """Whether `text` is in the operator's log, an Event or a status condition."""
        messages = [logs, *(e.get("message", "") for e in self.api.list_objects("v1/events", NS))]
        for resource in (GOALS, BACKLOGS, SCHEDULES):
            for found in self.api.list_objects(resource, NS):
                conditions = (found.get("status") or {}).get("conditions") or []
                messages += [c.get("message", "") for c in conditions]
        return any(text in message for message in messages)

    def goals(self, label: str, value: str) -> list[dict[str, Any]]:
        return self.api.list_objects(GOALS, NS, label_selector=f"{label}={value}")

    def jobs_of(self, goal: dict[str, Any]) -> list[dict[str, Any]]:
        uid = goal["metadata"]["uid"]
        return self.api.list_objects(JOBS, NS, label_selector=f"{LABEL_GOAL_UID}={uid}")

    def run_to_success(self, goal: dict[str, Any], task: str) -> None:
        """What the Job controller and the worker would do: the attempt's Pod runs, publishes."""
        [job] = self.api.wait_for(lambda: self.jobs_of(goal))
        pod = self.api.start_job(NS, job["metadata"]["name"])
        result = WorkerResult(outcome=Outcome.PUBLISHED, task_id=task, branch=f"backlog/{task}-1")
        self.api.finish_pod(NS, pod["metadata"]["name"], messages={"publish": result.to_json()})
        self.api.complete_job(NS, job["metadata"]["name"], succeeded=True)
        name = goal["metadata"]["name"]
        self.api.wait_for(
            lambda: (
                ((self.api.get_object(GOALS, NS, name) or {}).get("status") or {}).get("phase")
                == "Succeeded"
            ),
            message=lambda: f"{name}: {(self.api.get_object(GOALS, NS, name) or {}).get('status')}",
        )


def backlog(name: str, url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Backlog",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "repository": {"url": url},
            "goalTemplate": {
                "spec": {
                    "task": {"image": "busybox", "command": ["true"]},
                    "pullRequest": {"provider": "none"},
                }
            },
            **spec,
        },
    }


def standalone_goal(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "repository": {"url": "https://github.com/o/r.git"},
            "backlog": {"taskId": name},
            "task": {"image": "busybox", "command": ["true"]},
            "pullRequest": {"provider": "none"},
        },
    }


def app_goal(api: HardenedEmulator, github: GitHubStandIn, clock: Clock) -> None:
    """A Goal whose credentials Secret holds a GitHub App, its attempt started; the App's
    tokens live ten minutes, inside the margin: re-minted as soon as the operator looks."""
    github.apps.clock = lambda: clock().timestamp()
    github.apps.token_lifetime = 600
    key = github.apps.add_app(7)
    github.apps.install(7, ["octo/app"])
    pem = base64.b64encode(private_pem(key).encode()).decode()
    api.create_object(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "github-app", "namespace": NS},
            "data": {"appId": base64.b64encode(b"7").decode(), "privateKey": pem},
        }
    )
    goal = standalone_goal("with-app")
    goal["spec"]["repository"] = {
        "url": "https://github.com/octo/app.git",
        "credentialsSecret": {"name": "github-app"},
    }
    goal["spec"]["pullRequest"] = {"provider": "github", "apiBaseUrl": github.base_url}
    created = api.create_object(goal)
    uid = created["metadata"]["uid"]
    [job] = api.wait_for(
        lambda: api.list_objects(JOBS, NS, label_selector=f"{LABEL_GOAL_UID}={uid}")
    )
    api.start_job(NS, job["metadata"]["name"])


def blocking_owner(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    owner: dict[str, Any]
    [owner] = obj["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["blockOwnerDeletion"], owner["controller"]) == (kind, True, True)
    return owner


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cluster(emulator_server: EmulatorServer, project_crds: object) -> Cluster:
    return Cluster(emulator_server, manager_policy())


# ------------------------------------------------------------------ the core paths, allowed


def test_a_backlog_creates_its_goal_and_the_goal_its_job(
    emulator_server: EmulatorServer,
    cluster: Cluster,
    clock: Clock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG_FILE})
    with operator(emulator_server, clock, tmp_path):
        cluster.api.create_object(backlog("team", str(remote)))

        [goal] = cluster.api.wait_for(lambda: cluster.goals(LABEL_BACKLOG, "team"))
        [job] = cluster.api.wait_for(lambda: cluster.jobs_of(goal))
        cluster.api.wait_for(
            lambda: (
                (cluster.api.get_object(BACKLOGS, NS, "team") or {})
                .get("status", {})
                .get("lastSyncedCommit")
            )
        )
        cluster.run_to_success(goal, "docs-intro")

    assert blocking_owner(goal, "Backlog")["name"] == "team"
    assert blocking_owner(job, "Goal")["uid"] == goal["metadata"]["uid"]
    assert cluster.denied() == []
    assert not cluster.said("Forbidden", caplog.text)


def test_a_goal_schedule_stamps_its_goal(
    emulator_server: EmulatorServer,
    cluster: Cluster,
    clock: Clock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduled = Scheduled(emulator_server, clock)
    with operator(emulator_server, clock, tmp_path):
        cluster.api.create_object(schedule("nightly"))
        cluster.api.wait_for(lambda: scheduled.status("nightly").get("nextScheduleTime"))
        scheduled.next_tick()

        [name] = scheduled.wait_goals("nightly", 1)
        cluster.api.wait_for(lambda: scheduled.status("nightly").get("active"))

    goal = cluster.api.get_object(GOALS, NS, name)
    assert goal is not None
    assert blocking_owner(goal, "GoalSchedule")["name"] == "nightly"
    assert cluster.denied() == []
    assert not cluster.said("Forbidden", caplog.text)


# ----------------------------------------------------- without a finalizers rule: refused


@pytest.mark.parametrize(
    "without", ["backlogs/finalizers", "goalschedules/finalizers", "goals/finalizers"]
)
def test_without_the_finalizers_rule_owned_objects_are_refused(
    emulator_server: EmulatorServer,
    project_crds: object,
    clock: Clock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    without: str,
) -> None:
    """Each finalizers rule is needed: without it, the create of what that kind owns is
    refused by the admission plugin (403), and nothing of it exists."""
    cluster = Cluster(emulator_server, manager_policy(without=without))
    scheduled = Scheduled(emulator_server, clock)
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG_FILE})
    owned, path = {
        "backlogs/finalizers": (GOALS, "goals"),
        "goalschedules/finalizers": (GOALS, "goals"),
        "goals/finalizers": (JOBS, "jobs"),
    }[without]
    with operator(emulator_server, clock, tmp_path):
        if without == "backlogs/finalizers":
            cluster.api.create_object(backlog("team", str(remote)))
        elif without == "goalschedules/finalizers":
            cluster.api.create_object(schedule("nightly"))
            cluster.api.wait_for(lambda: scheduled.status("nightly").get("nextScheduleTime"))
            scheduled.next_tick()
        else:
            cluster.api.create_object(standalone_goal("alone"))
        # The operator asked for it, and was told why not.
        cluster.api.wait_for(
            lambda: any(r.verb == "create" and r.resource == path for r in cluster.requests())
        )
        cluster.api.wait_for(
            lambda: cluster.said(REFUSED, caplog.text) or None,
            message=f"no sign of the refusal ({REFUSED!r}) in the log, events or status",
        )

    assert cluster.api.list_objects(owned, NS) == []
    assert cluster.denied() == []  # authorized: the admission plugin refused it


# ------------------------------------------------------------ every rule is used, no more


def test_the_operator_uses_every_rule_of_its_role(
    emulator_server: EmulatorServer,
    cluster: Cluster,
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Everything the operator does, in all namespaces and then limited to one: the calls it
    makes are exactly what its role grants (each `finalizers` rule is not a call: the test
    above shows each one needed) and exactly the list beside the role's unit tests."""
    api, scheduled = cluster.api, Scheduled(emulator_server, clock)
    api.create_object(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "forge-token", "namespace": NS},
            "data": {"token": base64.b64encode(b"t0ken").decode()},
        }
    )
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG_FILE})
    monkeypatch.setattr(runtime, "AUDIT_EVERY", 20)  # the Jobs listed afresh: each second
    github = GitHubStandIn("octo/app", token="unused-static")
    with github, operator(emulator_server, clock, tmp_path):
        # A Backlog with a token: secrets get; its Goal runs to success (jobs, pods).
        api.create_object(
            backlog(
                "team",
                str(remote),
                repository={"url": str(remote), "credentialsSecret": {"name": "forge-token"}},
            )
        )
        [goal] = api.wait_for(
            lambda: cluster.goals(LABEL_BACKLOG, "team"),
            message=lambda: (
                f"no Goal: {(api.get_object(BACKLOGS, NS, 'team') or {}).get('status')}"
            ),
        )
        cluster.run_to_success(goal, "docs-intro")
        # A Goal whose Secret holds a GitHub App: its attempt's token in a Secret of the Job's
        # (secrets create), re-minted while it runs as it would expire too soon (secrets patch).
        app_goal(api, github, clock)
        api.wait_for(
            lambda: {("", "secrets", "create"), ("", "secrets", "patch")} <= cluster.calls()
        )
        # A Goal whose attempt fails: its retry is told the end of the failed task's log
        # (pods/log get), found by listing the attempt's Pod.
        failing = standalone_goal("retried")
        failing["spec"]["repository"]["url"] = "https://github.com/o/retried.git"
        failing["spec"]["retry"] = {"maxAttempts": 2, "backoffSeconds": 0}
        failing = api.create_object(failing)
        [job] = api.wait_for(lambda: cluster.jobs_of(failing))
        pod = api.start_job(NS, job["metadata"]["name"])
        api.set_pod_log(NS, pod["metadata"]["name"], "tests failed\n", container="task")
        api.finish_pod(NS, pod["metadata"]["name"], exit_codes={"task": 3})
        api.complete_job(NS, job["metadata"]["name"], succeeded=False)
        api.wait_for(lambda: len(cluster.jobs_of(failing)) == 2 or None)
        assert ("", "pods/log", "get") in cluster.calls()
        # A Goal that requires approval: its staged change is kept in a ConfigMap
        # (configmaps create; one of the Goal's own there already, from an earlier staging:
        # get and patch), read again when approved (get).
        gated = standalone_goal("gated")
        gated["spec"]["repository"]["url"] = "https://github.com/o/gated.git"
        gated["spec"]["approval"] = {"required": True}
        gated = api.create_object(gated)
        [job] = api.wait_for(lambda: cluster.jobs_of(gated))
        api.create_object(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "gated-patch",
                    "namespace": NS,
                    "labels": {LABEL_GOAL_UID: gated["metadata"]["uid"]},
                },
                "data": {"manifest.json": "{}"},
            }
        )
        stage_job(api, job["metadata"]["name"], "gated")
        api.wait_for(lambda: ("", "configmaps", "patch") in cluster.calls())

        def gated_phase() -> str | None:
            return ((api.get_object(GOALS, NS, "gated") or {}).get("status") or {}).get("phase")

        api.wait_for(lambda: gated_phase() == "AwaitingApproval")
        api.patch_object(
            GOALS,
            NS,
            "gated",
            {"metadata": {"annotations": {"backlog.dev/approved-patch": STAGED_HASH}}},
        )
        api.wait_for(lambda: len(cluster.jobs_of(gated)) == 2 or None)
        # A GoalSchedule replacing its Goal at the next tick: goals delete.
        api.create_object(schedule("nightly", concurrencyPolicy="Replace"))
        api.wait_for(lambda: scheduled.status("nightly").get("nextScheduleTime"))
        scheduled.next_tick()
        [first] = scheduled.wait_goals("nightly", 1)
        scheduled.next_tick()
        api.wait_for(lambda: (g := scheduled.goals("nightly")) and first not in g)
        # A Goal whose Pod waits to start: its FailedMount Events are listed (events list);
        # its Job deleted by someone else: read by name, found gone (jobs get).
        monkeypatch.setattr(outcome, "MOUNT_CHECK_AFTER", timedelta(0))
        alone = api.create_object(standalone_goal("alone"))
        [job] = api.wait_for(lambda: cluster.jobs_of(alone))
        pod = api.start_job(NS, job["metadata"]["name"])
        waiting = {"name": "clone", "state": {"waiting": {"reason": "PodInitializing"}}}
        api.patch_status(PODS, NS, pod["metadata"]["name"], {"phase": "Pending"})
        api.patch_status(PODS, NS, pod["metadata"]["name"], {"initContainerStatuses": [waiting]})
        api.patch_status(JOBS, NS, job["metadata"]["name"], {"ready": 0})  # a Job event
        api.wait_for(lambda: ("", "events", "list") in cluster.calls())
        api.delete_object(JOBS, NS, job["metadata"]["name"])
        api.wait_for(lambda: ("batch", "jobs", "get") in cluster.calls())
        # A Goal deleted while its attempt runs: its Jobs deleted by name. (Not "alone": the
        # loss of its Job may have ended its attempt already, and then there is no Job to stop.)
        doomed = api.create_object(standalone_goal("doomed"))
        api.wait_for(lambda: cluster.jobs_of(doomed))
        api.delete_object(GOALS, NS, "doomed")
        api.wait_for(lambda: ("batch", "jobs", "delete") in cluster.calls())
    with operator(emulator_server, clock, tmp_path, namespaces=[NS]):
        # Limited to one namespace: kopf watches namespaces.
        api.wait_for(lambda: ("", "namespaces", "watch") in cluster.calls())

    assert cluster.denied() == []
    granted = {call for call in cluster.granted() if not call[1].endswith("/finalizers")}
    made = cluster.calls()
    assert sorted(granted - made) == [], "granted, but never used"
    assert sorted(made - granted) == [], "used, but not granted"
    listed = {call for call in operator_calls() if not call[1].endswith("/finalizers")}
    assert made == listed, "tests/unit/test_manifests.py OPERATOR_CALLS is out of step"
