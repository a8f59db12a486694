"""GitHub App credentials in the operator, end to end: the API emulator, the GitHub stand-in
(which checks the App's JWT and holds every installation token to its repository, permissions
and expiry) and real git over HTTP that demands the installation token.

A Goal whose credentials Secret holds an App gets, per attempt, an installation token for its
one repository in a Secret owned by its Job, mounted into `clone` and `publish` only; the
attempt's three steps then run here as the Pod would run them (the token file is what the
kubelet would mount), push over HTTP and open the pull request with that token. A Backlog with
an App reads its backlog and counts open pull requests with cached read-only tokens, minted
again when the forge refuses one. Neither the private key nor any installation token shows in
a log line, an Event, a status, a termination message or the Job's spec.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from backlog_operator.api.goal import Goal
from backlog_operator.api.labels import LABEL_BACKLOG, LABEL_GOAL_UID
from backlog_operator.controller.handlers import build_registry
from backlog_operator.controller.settings import OperatorSettings
from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.github_apps import private_pem
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import GitHttpServer, make_remote, remote_branches
from tests.support.kopf_harness import KopfThread, new_api_client
from tests.support.pod import Pod

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
BACKLOGS = "backlog.dev/v1alpha1/backlogs"
JOBS = "batch/v1/jobs"
PODS = "v1/pods"
SECRETS = "v1/secrets"
EVENTS = "v1/events"
REPOSITORY = "octo/project"
APP_ID = 31337
BACKLOG_FILE = """\
tasks:
  - id: docs-guide
    title: Write the guide
    ready: true
"""

Json = dict[str, Any]


class World:
    """The cluster (emulator), GitHub (stand-in, with the App installed), and the git remote."""

    def __init__(self, server: EmulatorServer, github: GitHubStandIn, root: Path) -> None:
        self.api: HardenedEmulator = server.emulator
        self.github = github
        self.key = github.apps.add_app(APP_ID)
        github.apps.install(APP_ID, [REPOSITORY, "octo/other"], installation_id=9)
        self.pem = private_pem(self.key)
        self.remote = make_remote(
            root / "octo", {".backlog/backlog.yaml": BACKLOG_FILE}, name="project.git"
        )
        self.other = make_remote(root / "octo", {"README": "other\n"}, name="other.git")
        self.git = GitHttpServer(
            root, token="no-static-token", authorize=github.apps.git_authorizer()
        )
        self.api.create_object(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "github-app", "namespace": NS},
                "data": {
                    "appId": _b64(str(APP_ID)),
                    "privateKey": _b64(self.pem),
                },
            }
        )

    def repository(self) -> Json:
        return {
            "url": self.git.url_for(self.remote),
            "credentialsSecret": {"name": "github-app"},
        }

    def pull_request(self) -> Json:
        return {"provider": "github", "apiBaseUrl": self.github.base_url, "repository": REPOSITORY}

    def goal(self, name: str) -> Json:
        found = self.api.get_object(GOALS, NS, name)
        assert found is not None
        return found

    def status(self, name: str) -> Json:
        return self.goal(name).get("status") or {}

    def jobs_of(self, name: str) -> list[Json]:
        uid = self.goal(name)["metadata"]["uid"]
        return self.api.list_objects(JOBS, NS, label_selector=f"{LABEL_GOAL_UID}={uid}")

    def secret_data(self, name: str) -> dict[str, str]:
        found = self.api.get_object(SECRETS, NS, name) or {}
        return {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}

    def issued(self) -> list[str]:
        return [t.token for t in self.github.apps.issued]

    def leaks(self, text: str) -> list[str]:
        """What of the App's secrets `text` holds: a private key line, an installation token."""
        secrets = [line for line in self.pem.splitlines() if "-----" not in line][:3]
        found = [s[:12] + "..." for s in (*secrets, *self.issued()) if s in text]
        return found + (["BEGIN RSA PRIVATE KEY"] if "PRIVATE KEY" in text else [])


@contextmanager
def running_operator(server: EmulatorServer, tmp_path: Path) -> Iterator[None]:
    settings = OperatorSettings(
        requeue_seconds=0.05,
        worker_image="backlog-operator:test",
        cache_dir=str(tmp_path / "cache"),
        pr_poll_seconds=0.2,
        max_running_per_repository=10,
    )
    registry = build_registry(settings, lambda: new_api_client(server), login=False)
    with KopfThread(server, registry=registry):
        yield


@pytest.fixture
def world(emulator_server: EmulatorServer, project_crds: object, tmp_path: Path) -> Iterator[World]:
    # A static token the stand-in also knows, that nothing here is given: only App tokens work.
    with GitHubStandIn(REPOSITORY, token="static-token-unused") as github:
        world = World(emulator_server, github, tmp_path / "git")
        with world.git, running_operator(emulator_server, tmp_path):
            yield world


def goal_manifest(world: World, name: str, **spec: Any) -> Json:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "repository": world.repository(),
            "backlog": {"taskId": "docs-guide"},
            "task": {
                "image": "busybox:1.37",
                "command": ["sh", "-c", "mkdir -p docs && echo guide > docs/guide.md"],
            },
            "pullRequest": world.pull_request(),
            "retry": {"maxAttempts": 1},
            **spec,
        },
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _container(job: Json, name: str) -> Json:
    spec = job["spec"]["template"]["spec"]
    return next(c for c in spec["initContainers"] + spec["containers"] if c["name"] == name)


def test_a_goal_with_a_github_app_runs_end_to_end_on_an_attempt_token(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.api.create_object(goal_manifest(world, "app-goal"))
    [job] = world.api.wait_for(lambda: world.jobs_of("app-goal"))
    job_name = job["metadata"]["name"]

    # The attempt's own Secret: owned by the Job, holding one installation token.
    secret = world.api.wait_for(lambda: world.api.get_object(SECRETS, NS, f"{job_name}-token"))
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", job_name, job["metadata"]["uid"])
    assert owner["controller"] is True
    assert secret["metadata"]["annotations"]["backlog.dev/token-expires-at"]
    token = world.secret_data(f"{job_name}-token")["token"]
    [issued] = world.github.apps.issued
    assert token == issued.token
    # For the one repository, with the worker's permissions only (the stand-in's record).
    assert issued.repositories == [REPOSITORY]
    assert issued.permissions == {
        "contents": "write",
        "pull_requests": "write",
        "metadata": "read",
    }

    # Mounted from that Secret into clone and publish; the task gets no credentials at all.
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == f"{job_name}-token"
    assert volumes["credentials"]["secret"]["items"] == [{"key": "token", "path": "token"}]
    assert not any(
        (v.get("secret") or {}).get("secretName") == "github-app" for v in volumes.values()
    )
    for step, mounted in (("clone", True), ("task", False), ("publish", True)):
        names = {m["name"] for m in _container(job, step).get("volumeMounts") or []}
        assert ("credentials" in names) is mounted, step

    # The Pod's three steps, with the token file the kubelet would mount.
    token_file = tmp_path / "mounted-token"
    token_file.write_text(token)
    pod_root = tmp_path / "pod"
    pod_root.mkdir()
    pod = Pod(pod_root, Goal.model_validate(world.goal("app-goal")), token_file=token_file)
    result = pod.run()
    assert result["outcome"] == "published", result
    assert result["branch"] in remote_branches(world.remote)  # pushed with the App's token
    [pull] = world.github.open_pulls()
    assert result["pullRequest"]["number"] == pull.number

    started = world.api.start_job(NS, job_name)
    world.api.finish_pod(
        NS, started["metadata"]["name"], messages={"publish": pod.termination_message("publish")}
    )
    world.api.complete_job(NS, job_name, succeeded=True)
    status = world.api.wait_for(
        lambda: (s := world.status("app-goal")).get("phase") == "Succeeded" and s
    )
    assert status["pullRequest"]["number"] == pull.number
    # Followed afterwards with the App too: a cached read-only token of the operator's own.
    world.api.wait_for(lambda: world.github.requests_to("GET", f"/pulls/{pull.number}") or None)
    follower = world.github.apps.issued[-1]
    assert follower.permissions["pull_requests"] == "read" and follower.repositories == [REPOSITORY]

    _assert_no_app_secret_anywhere(world, pod, caplog)


def _assert_no_app_secret_anywhere(
    world: World, pod: Pod, caplog: pytest.LogCaptureFixture
) -> None:
    """The token scan: nothing of the App's key or its tokens where it must not be."""
    haystacks: dict[str, str] = {"operator log": caplog.text}
    for item in world.api.list_objects(EVENTS, NS):
        haystacks[f"event {item.get('reason')}"] = json.dumps(item)
    for plural in (GOALS, BACKLOGS):
        for item in world.api.list_objects(plural, NS):
            haystacks[f"status of {item['metadata']['name']}"] = json.dumps(item.get("status"))
    for item in world.api.list_objects(PODS, NS):
        haystacks[f"pod {item['metadata']['name']}"] = json.dumps(item)  # termination messages
    for item in world.api.list_objects(JOBS, NS):
        haystacks[f"job {item['metadata']['name']}"] = json.dumps(item)  # env values too
    haystacks["worker output"] = "\n".join(pod.outputs)
    for written in pod.logs.iterdir():  # the termination messages the steps wrote
        haystacks[f"{written.name} termination message"] = written.read_text()
    for request in world.github.requests:  # GitHub itself never sees the key, only JWTs
        haystacks[f"request {request.path}"] = json.dumps(request.body)
    assert world.issued(), "no token was issued: the scan would prove nothing"
    leaked = {where: found for where, text in haystacks.items() if (found := world.leaks(text))}
    assert leaked == {}


def test_an_app_token_that_would_expire_before_the_deadline_is_reminted_in_its_secret(
    world: World,
) -> None:
    world.github.apps.token_lifetime = 600  # ten minutes: inside the refresh margin at once
    world.api.create_object(goal_manifest(world, "long"))
    [job] = world.api.wait_for(lambda: world.jobs_of("long"))
    name = f"{job['metadata']['name']}-token"
    first = world.api.wait_for(lambda: world.secret_data(name).get("token"))
    world.api.start_job(NS, job["metadata"]["name"])  # running: the operator looks at it

    def renewed() -> str | None:
        now = world.secret_data(name).get("token")
        return now if now and now != first else None

    second = world.api.wait_for(renewed)
    assert second in world.issued()
    [asked] = [t for t in world.github.apps.issued if t.token == second]
    assert asked.repositories == [REPOSITORY] and asked.permissions["contents"] == "write"


def test_an_app_not_installed_on_the_repository_fails_the_goal_with_a_clear_reason(
    world: World,
) -> None:
    manifest = goal_manifest(world, "elsewhere")
    manifest["spec"]["pullRequest"]["repository"] = "octo/nowhere"
    world.api.create_object(manifest)
    status = world.api.wait_for(
        lambda: (s := world.status("elsewhere")).get("phase") == "Failed" and s
    )
    assert status["reason"] == "AppNotInstalled"
    assert "install the App" in status["message"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "AppNotInstalled")
    assert world.jobs_of("elsewhere") == []  # no Job without a token


def test_a_malformed_private_key_stalls_the_goal_and_names_the_key(world: World) -> None:
    world.api.create_object(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "bad-app", "namespace": NS},
            "data": {"appId": _b64(str(APP_ID)), "privateKey": _b64("not a key at all")},
        }
    )
    manifest = goal_manifest(world, "bad")
    manifest["spec"]["repository"]["credentialsSecret"] = {"name": "bad-app"}
    world.api.create_object(manifest)
    status = world.api.wait_for(lambda: (s := world.status("bad")).get("phase") == "Failed" and s)
    assert status["reason"] == "InvalidAppCredentials"
    assert "privateKey is not a PEM private key" in status["message"]
    assert "not a key at all" not in json.dumps(status)


def sync_again(world: World, interval: int) -> None:
    """A change to the Backlog's spec: it syncs now."""
    world.api.patch_object(BACKLOGS, NS, "team", {"spec": {"syncIntervalSeconds": interval}})


def test_a_backlog_with_an_app_syncs_with_cached_tokens_renewed_when_refused(
    world: World,
) -> None:
    backlog = {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Backlog",
        "metadata": {"name": "team", "namespace": NS},
        "spec": {
            "repository": world.repository(),
            "goalTemplate": {
                "spec": {
                    "task": {"image": "busybox", "command": ["true"]},
                    "pullRequest": world.pull_request(),
                }
            },
            "syncIntervalSeconds": 10,
        },
    }
    world.api.create_object(backlog)
    world.api.wait_for(
        lambda: world.api.list_objects(GOALS, NS, label_selector=f"{LABEL_BACKLOG}=team")
    )
    # Its git read and its pull request count used one read-only token, cached.
    listed = world.github.requests_to("GET", f"/repos/{REPOSITORY}/pulls")
    assert listed
    readers = [t for t in world.github.apps.issued if t.permissions["contents"] == "read"]
    assert len(readers) == 1
    used = listed[-1].headers["authorization"].split(" ", 1)[1]
    assert used == readers[0].token
    sync_again(world, 11)
    world.api.wait_for(lambda: len(world.github.requests_to("GET", "/pulls")) >= 2 or None)
    assert len([t for t in world.github.apps.issued if t.permissions["contents"] == "read"]) == 1

    # GitHub stops honouring it early (revoked, a skewed clock): refused, then a new one.
    world.github.apps.expire_all()
    seen = len(world.github.requests_to("GET", "/pulls"))
    sync_again(world, 12)
    world.api.wait_for(lambda: len(world.github.requests_to("GET", "/pulls")) > seen or None)
    renewed = [t for t in world.github.apps.issued if t.permissions["contents"] == "read"]
    assert len(renewed) == 2
    last = world.github.requests_to("GET", "/pulls")[-1].headers["authorization"]
    assert last.endswith(renewed[-1].token)
    ready = world.api.wait_for(
        lambda: next(
            (
                c
                for c in (world.api.get_object(BACKLOGS, NS, "team") or {})
                .get("status", {})
                .get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            ),
            None,
        )
    )
    assert ready


def test_a_token_secret_that_fails_to_be_made_is_made_when_the_job_is_adopted(
    world: World,
) -> None:
    # The Job is created, then its Secret's create fails (as if the operator stopped between
    # the two): the next look adopts the Job and puts its Secret; one Job, never a second.
    world.api.faults.add(verb="create", resource="secrets", status=500, times=1)
    world.api.create_object(goal_manifest(world, "windowed"))
    [job] = world.api.wait_for(lambda: world.jobs_of("windowed"))
    secret = world.api.wait_for(
        lambda: world.api.get_object(SECRETS, NS, f"{job['metadata']['name']}-token"),
        timeout=15,
    )
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    status = world.api.wait_for(lambda: (s := world.status("windowed")).get("phase") and s)
    assert status["phase"] == "Running" and status["jobName"] == job["metadata"]["name"]
    assert len(world.jobs_of("windowed")) == 1
    # Each try minted a token of its own; the Secret holds the last one.
    assert world.secret_data(secret["metadata"]["name"])["token"] == world.issued()[-1]


def test_a_token_secret_the_api_server_refuses_stops_the_job_and_fails_the_goal(
    world: World,
) -> None:
    world.api.faults.add(verb="create", resource="secrets", status=403)
    world.api.create_object(goal_manifest(world, "refused"))
    status = world.api.wait_for(
        lambda: (s := world.status("refused")).get("phase") == "Failed" and s
    )
    assert status["reason"] == "TokenSecretRefused"
    assert "403" in status["message"]
    world.api.wait_for(lambda: world.jobs_of("refused") == [] or None)  # deleted
