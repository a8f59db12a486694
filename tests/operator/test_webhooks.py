"""GitHub webhooks in the operator against the API emulator and the GitHub stand-in: GitHub's
own example payloads (`@octokit/webhooks-examples`, held to `@octokit/webhooks-schemas`),
signed here with the Backlog's secret and sent over HTTP to the receiver.

A push to the base branch syncs the Backlog at once (the operator's clock stands still: no
interval sync happens); a pull request closed, merged or reopened is read again from the forge
at once (pull requests are otherwise looked at once an hour here). Every refused or ignored
delivery gets its status code and nothing else happens: the next good push then causes exactly
one sync, and no write was made before it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backlog_operator.adapters.webhook_server import WebhookServer
from backlog_operator.api.labels import LABEL_GOAL_UID
from backlog_operator.api.result import Outcome, WorkerResult
from backlog_operator.controller.handlers import build_registry
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.webhooks import Webhooks
from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import commit_to_remote, make_remote, remote_sha
from tests.support.kopf_harness import KopfThread, new_api_client
from tests.support.operator_process import OperatorProcess
from tests.support.webhooks import (
    deliver,
    examples,
    merged_example,
    payload_bytes,
    schema_errors,
    signature,
    signed_headers,
)

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
BACKLOGS = "backlog.dev/v1alpha1/backlogs"
REPOSITORY = "Codertocat/Hello-World"  # the repository of GitHub's examples
BRANCH = "master"  # their base branch
SECRET = "whsec-Hook-S3cret-0f1e2d3c4b5a69788796a5b4"
TOKEN = "ghp_webhookForgeT0ken0123456789abcdefXY"
MAX_BODY = 256 * 1024
BACKLOG_FILE = """\
tasks:
  - id: ci-cache
    title: Cache CI
    ready: true
"""

Json = dict[str, Any]


class Clock:
    """The operator's clock, standing still: a Backlog syncs again only when asked."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Stand:
    api: HardenedEmulator
    github: GitHubStandIn
    receiver: WebhookServer
    remote: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.receiver.port}"

    def backlog(self) -> Json:
        found = self.api.get_object(BACKLOGS, NS, "team")
        assert found is not None
        return found

    def status(self) -> Json:
        return self.backlog().get("status") or {}

    def path(self) -> str:
        path = self.status()["webhookPath"]
        assert isinstance(path, str)
        return path

    def post(
        self,
        event: str | None,
        body: bytes,
        *,
        secret: str | None = SECRET,
        delivery: str | None = None,
        path: str | None = None,
    ) -> tuple[int, str]:
        headers = signed_headers(secret, body, event, delivery)
        return deliver(self.base + (path or self.path()), body, headers)

    def wait_synced(self, commit: str) -> Json:
        return self.api.wait_for(
            lambda: (s := self.status()).get("lastSyncedCommit") == commit and s,
            message=lambda: f"not synced at {commit}: {self.status()}",
        )

    def mark(self) -> int:
        """The id of the last request the emulator served (the operator's, all of them)."""
        return max((request.id for request in self.api), default=-1)

    def requests_since(self, mark: int) -> list[Any]:
        return [request for request in self.api if request.id > mark]

    def goal_status(self, name: str) -> Json:
        found = self.api.get_object(GOALS, NS, name)
        assert found is not None
        return found.get("status") or {}

    def goal_events(self, name: str) -> list[str]:
        return [
            e["reason"]
            for e in self.api.list_objects("v1/events", NS)
            if e["involvedObject"]["name"] == name
        ]

    def publish(self, goal: str, task: str) -> int:
        """The goal's attempt opens its pull request (on the stand-in) and succeeds."""
        pull = self.github.add_pull(f"backlog/{task}-1", BRANCH, title=task)
        uid = self.api.wait_for(lambda: self.api.get_object(GOALS, NS, goal))["metadata"]["uid"]
        [job] = self.api.wait_for(
            lambda: self.api.list_objects(
                "batch/v1/jobs", NS, label_selector=f"{LABEL_GOAL_UID}={uid}"
            )
        )
        pod = self.api.start_job(NS, job["metadata"]["name"])
        result = WorkerResult(
            outcome=Outcome.PUBLISHED,
            task_id=task,
            branch=f"backlog/{task}-1",
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
        self.api.wait_for(lambda: self.goal_status(goal).get("phase") == "Succeeded")
        return pull.number


def secret_object(name: str, value: str) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": {"token": base64.b64encode(value.encode()).decode()},
    }


def backlog_manifest(api_base_url: str, url: str) -> Json:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Backlog",
        "metadata": {"name": "team", "namespace": NS},
        "spec": {
            "repository": {
                "url": url,
                "baseBranch": BRANCH,
                "credentialsSecret": {"name": "github-token"},
            },
            "webhook": {"secretRef": {"name": "hook-secret"}},
            "goalTemplate": {
                "spec": {
                    "task": {"image": "busybox", "command": ["true"]},
                    "pullRequest": {
                        "provider": "github",
                        "apiBaseUrl": api_base_url,
                        "repository": REPOSITORY,
                    },
                    "retry": {"maxAttempts": 1},
                }
            },
            "syncIntervalSeconds": 60,
        },
    }


@pytest.fixture
def stand(emulator_server: EmulatorServer, project_crds: object, tmp_path: Path) -> Iterator[Stand]:
    owner = tmp_path / REPOSITORY.split("/")[0]
    owner.mkdir()
    # Named as GitHub's examples name their repository: the Backlog is that repository.
    remote = make_remote(
        owner, {".backlog/backlog.yaml": BACKLOG_FILE}, name="Hello-World.git", branch=BRANCH
    )
    webhooks = Webhooks()
    registry = build_registry(
        OperatorSettings(
            requeue_seconds=0.05,
            cache_dir=str(tmp_path / "cache"),
            worker_image="backlog-operator:test",
            pr_poll_seconds=3600,  # never on its own within a test: only when a webhook says
        ),
        lambda: new_api_client(emulator_server),
        login=False,
        clock=Clock(),
        webhooks=webhooks,
    )
    receiver = WebhookServer(
        webhooks.receive, webhooks.known, host="127.0.0.1", port=0, max_body=MAX_BODY
    )
    api = emulator_server.emulator
    api.create_object(secret_object("github-token", TOKEN))
    api.create_object(secret_object("hook-secret", SECRET))
    with (
        GitHubStandIn(REPOSITORY, token=TOKEN, default_branch=BRANCH) as github,
        KopfThread(emulator_server, registry=registry, serving=receiver),
    ):
        stand = Stand(api, github, receiver, remote)
        api.create_object(backlog_manifest(github.base_url, str(remote)))
        stand.wait_synced(str(remote_sha(remote, BRANCH)))
        # Its goal's attempt started (and stays so until a test runs it): the goal controller
        # writes nothing more, so that what a delivery makes happen is all that happens.
        api.wait_for(lambda: "Started" in stand.goal_events("team-ci-cache"))
        yield stand


def branch_pushes() -> list[Json]:
    return [p for p in examples("push") if p["ref"] == f"refs/heads/{BRANCH}"]


def backlog_reads(requests: list[Any]) -> list[Any]:
    return [
        r
        for r in requests
        if str(r.method).upper().endswith("GET")
        and "backlogs" in str(r.resource)
        and r.name == "team"
    ]


def writes(requests: list[Any]) -> list[str]:
    return [
        f"{r.method} {r.resource} {r.name} {r.subresource}"
        for r in requests
        if not str(r.method).upper().endswith(("GET", "HEAD"))
    ]


def exactly_one_sync_after(stand: Stand, refused: Callable[[], None]) -> None:
    """A new commit on the base branch; `refused` (deliveries that must do nothing); then one
    good push: exactly one sync reads the Backlog, and it is the only writer."""
    commit = commit_to_remote(stand.remote, BRANCH, {"notes.md": f"{uuid.uuid4()}\n"})
    mark = stand.mark()
    refused()
    assert stand.post("push", payload_bytes(branch_pushes()[0]))[0] == 202
    stand.wait_synced(commit)
    since = stand.requests_since(mark)
    assert len(backlog_reads(since)) == 1, [f"{r.method} {r.url}" for r in since]
    made = writes(since)
    assert [w for w in made if "backlogs" in w] == [w for w in made if "status" in w], made
    assert len([w for w in made if "backlogs" in w]) == 1, made
    assert not [w for w in made if "backlogs" not in w and "events" not in w], made


# ---------------------------------------------------------------------- path, ping, push


def test_the_path_is_published_and_every_ping_example_is_answered(stand: Stand) -> None:
    digest = hashlib.sha256(f"{SECRET}team{NS}".encode()).hexdigest()
    assert stand.path() == f"/hook/{digest}"

    def pings() -> None:
        for payload in examples("ping"):
            assert stand.post("ping", payload_bytes(payload)) == (200, "pong\n")

    exactly_one_sync_after(stand, pings)


def test_a_push_to_the_base_branch_syncs_the_backlog_at_once(stand: Stand) -> None:
    for payload in branch_pushes():  # each of GitHub's pushes to a branch: one sync each
        assert not schema_errors("push", payload)
        commit = commit_to_remote(stand.remote, BRANCH, {"notes.md": f"{uuid.uuid4()}\n"})
        status, text = stand.post("push", payload_bytes(payload))
        assert (status, text) == (202, "accepted: sync requested\n")
        stand.wait_synced(commit)


def test_tag_pushes_and_pushes_elsewhere_are_ignored(stand: Stand) -> None:
    other_branch = branch_pushes()[0]
    other_branch["ref"] = "refs/heads/feature"
    other_repository = branch_pushes()[0]
    for key in ("clone_url", "html_url", "ssh_url", "git_url", "url"):
        other_repository["repository"][key] = "https://github.com/octo-org/elsewhere.git"
    other_repository["repository"]["full_name"] = "octo-org/elsewhere"
    tags = [p for p in examples("push") if p["ref"].startswith("refs/tags/")]
    assert len(tags) >= 1

    def ignored() -> None:
        for payload in [*tags, other_branch, other_repository]:
            assert not schema_errors("push", payload)
            status, text = stand.post("push", payload_bytes(payload))
            assert status == 200 and text.startswith("ignored:"), (payload["ref"], text)

    exactly_one_sync_after(stand, ignored)


# -------------------------------------------------------------------------------- refused


def raw_request(stand: Stand, head: str) -> bytes:
    """Send `head` (a request line and headers, no body) and read the answer."""
    with socket.create_connection(("127.0.0.1", stand.receiver.port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


def test_refused_deliveries_get_their_status_and_do_nothing(
    stand: Stand, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    push = payload_bytes(branch_pushes()[0])
    path = stand.path()
    stranger = "/hook/" + hashlib.sha256(b"guess").hexdigest()
    one_off = path[:-1] + ("0" if path[-1] != "0" else "1")
    big = push + b" " * (MAX_BODY + 1 - len(push))
    signatures = [signature(SECRET, push), signature(SECRET, big)]

    def refused() -> None:
        for where in (stranger, one_off, "/hook/", "/", "/metrics"):
            assert stand.post("push", push, path=where) == (404, "no such hook\n"), where
        assert stand.post("push", push, secret=None)[0] == 401
        assert stand.post("push", push, secret="not-the-secret")[0] == 401
        forged = signed_headers(SECRET, push, "push")
        forged["X-Hub-Signature-256"] = signature(SECRET, push + b"\n")
        assert deliver(stand.base + path, push, forged)[0] == 401
        no_delivery = signed_headers(SECRET, push, "push")
        del no_delivery["X-GitHub-Delivery"]
        assert deliver(stand.base + path, push, no_delivery)[0] == 400
        assert stand.post(None, push)[0] == 400
        assert stand.post("push", b"{not json")[0] == 400
        assert stand.post("push", b'{"ref": "refs/heads/master"}')[0] == 400
        status, text = stand.post("issues", payload_bytes(examples("issues")[0]))
        assert (status, text) == (200, "ignored: issues events are not acted on\n")
        assert (
            deliver(stand.base + path, push, signed_headers(SECRET, push, "push"), method="GET")[0]
            == 405
        )
        # Over the limit: by its Content-Length, before any of the body is sent...
        answer = raw_request(
            stand,
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"X-GitHub-Event: push\r\nContent-Length: {50 * MAX_BODY}\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
        # ... or chunked, once the limit is passed (signed: the signature does not matter).
        chunks = [big[i : i + 8192] for i in range(0, len(big), 8192)]
        assert (
            deliver(stand.base + path, iter(chunks), signed_headers(SECRET, big, "push"))[0] == 413
        )

    exactly_one_sync_after(stand, refused)
    # Nothing of the secret or the signatures in the log, the events or the Backlog.
    logged = caplog.text
    assert "webhook delivery" in logged and "401 bad or missing signature" in logged
    stored = json.dumps(
        [stand.backlog(), stand.api.list_objects("v1/events", NS), stand.api.list_objects(GOALS)]
    )
    for leak in (SECRET, TOKEN, *signatures, *(s.removeprefix("sha256=") for s in signatures)):
        assert leak not in logged
        assert leak not in stored


def test_a_replayed_delivery_is_refused_and_does_nothing(stand: Stand) -> None:
    delivery = str(uuid.uuid4())
    commit = commit_to_remote(stand.remote, BRANCH, {"notes.md": "first\n"})
    body = payload_bytes(branch_pushes()[0])
    assert stand.post("push", body, delivery=delivery)[0] == 202
    stand.wait_synced(commit)

    def replayed() -> None:
        assert stand.post("push", body, delivery=delivery) == (
            409,
            "delivery received already\n",
        )

    exactly_one_sync_after(stand, replayed)


def test_a_deleted_backlog_no_longer_receives(stand: Stand) -> None:
    path = stand.path()
    stand.api.delete_object(BACKLOGS, NS, "team")
    body = payload_bytes(branch_pushes()[0])
    stand.api.wait_for(lambda: stand.post("push", body, path=path)[0] == 404)


# --------------------------------------------------------------------------- pull requests


@pytest.fixture
def published(stand: Stand) -> tuple[Stand, int]:
    """The Backlog's goal succeeded with pull request #2 (the number of GitHub's examples)."""
    stand.github.add_pull("feature/unrelated", BRANCH)  # #1
    number = stand.publish("team-ci-cache", "ci-cache")
    assert number == examples("pull_request", ["closed"])[0]["number"] == 2
    assert stand.goal_status("team-ci-cache")["pullRequest"]["state"] == "open"
    return stand, number


def test_a_merged_pull_request_is_read_again_at_once(published: tuple[Stand, int]) -> None:
    stand, number = published
    stand.github.merge(number, by="reviewer")
    status, text = stand.post("pull_request", payload_bytes(merged_example()))
    assert (status, text) == (202, f"accepted: pull request #{number} is read again\n")
    pull = stand.api.wait_for(
        lambda: (p := stand.goal_status("team-ci-cache")["pullRequest"])["state"] == "merged" and p
    )
    assert pull["mergedBy"] == "reviewer"  # what the forge says, not what the body said
    stand.api.wait_for(
        lambda: "PullRequestMerged" in stand.goal_events("team-ci-cache"),
        message=lambda: f"{stand.api.list_objects('v1/events', NS)}",
    )


def test_every_closed_and_reopened_example_reads_the_pull_request_again(
    published: tuple[Stand, int],
) -> None:
    stand, number = published
    closed, reopened = (examples("pull_request", [a]) for a in ("closed", "reopened"))
    stand.github.close(number, by="reviewer")
    for payload in closed:
        assert stand.post("pull_request", payload_bytes(payload))[0] == 202
    stand.api.wait_for(
        lambda: stand.goal_status("team-ci-cache")["pullRequest"]["state"] == "closed"
    )
    assert stand.api.wait_for(lambda: stand.status().get("declined"))[0]["id"] == "ci-cache"

    pull = stand.github.pulls[number]  # reopened on the forge
    pull.state, pull.closed_at, pull.closed_by = "open", None, None
    pull.updated_at = datetime.now(UTC)
    for payload in reopened:
        assert stand.post("pull_request", payload_bytes(payload))[0] == 202
    stand.api.wait_for(lambda: stand.goal_status("team-ci-cache")["pullRequest"]["state"] == "open")
    stand.api.wait_for(lambda: "PullRequestReopened" in stand.goal_events("team-ci-cache"))
    # Followed again: its merge is seen too.
    stand.github.merge(number)
    assert stand.post("pull_request", payload_bytes(merged_example()))[0] == 202
    stand.api.wait_for(
        lambda: stand.goal_status("team-ci-cache")["pullRequest"]["state"] == "merged"
    )


def test_a_body_that_lies_is_only_a_hint(published: tuple[Stand, int]) -> None:
    """A signed body saying "merged" while the forge says open changes nothing: the goal's
    status is what the forge answers."""
    stand, number = published
    looks = len(stand.github.requests_to("GET", f"/pulls/{number}"))
    assert stand.post("pull_request", payload_bytes(merged_example()))[0] == 202
    stand.api.wait_for(lambda: len(stand.github.requests_to("GET", f"/pulls/{number}")) > looks)
    # Then it is really closed: the goal says closed, and never said merged (merged is final:
    # a goal that had believed the body would not have been followed to this close).
    stand.github.close(number)
    assert (
        stand.post("pull_request", payload_bytes(examples("pull_request", ["closed"])[0]))[0] == 202
    )
    stand.api.wait_for(
        lambda: stand.goal_status("team-ci-cache")["pullRequest"]["state"] == "closed"
    )
    assert "PullRequestMerged" not in stand.goal_events("team-ci-cache")


def test_other_pull_request_actions_and_numbers_are_ignored(
    published: tuple[Stand, int],
) -> None:
    stand, number = published
    looks = len(stand.github.requests_to("GET", f"/pulls/{number}"))
    for payload in examples("pull_request", ["opened", "labeled", "synchronize"]):
        status, text = stand.post("pull_request", payload_bytes(payload))
        assert status == 200 and text.startswith("ignored:"), text
    # A close of another pull request of the repository: read again, but none is the goal's.
    other = examples("pull_request", ["closed"])[0]
    other["number"] = other["pull_request"]["number"] = 1
    assert stand.post("pull_request", payload_bytes(other))[0] == 202
    # Barrier: a real close of the goal's, seen at once.
    stand.github.close(number)
    assert (
        stand.post("pull_request", payload_bytes(examples("pull_request", ["closed"])[0]))[0] == 202
    )
    stand.api.wait_for(
        lambda: stand.goal_status("team-ci-cache")["pullRequest"]["state"] == "closed"
    )
    assert len(stand.github.requests_to("GET", f"/pulls/{number}")) == looks + 1


def test_a_rotated_secret_moves_the_path(stand: Stand) -> None:
    old = stand.path()
    rotated = "whsec-rotated-9a8b7c6d5e4f"
    stand.api.patch_object(
        "v1/secrets",
        NS,
        "hook-secret",
        {"data": {"token": base64.b64encode(rotated.encode()).decode()}},
    )
    stand.api.patch_object(
        BACKLOGS, NS, "team", {"metadata": {"annotations": {"backlog.dev/requested-at": "1"}}}
    )
    new = stand.api.wait_for(lambda: (p := stand.status().get("webhookPath")) != old and p)
    assert new == "/hook/" + hashlib.sha256(f"{rotated}team{NS}".encode()).hexdigest()
    body = payload_bytes(branch_pushes()[0])
    assert stand.post("push", body, path=old)[0] == 404
    assert stand.post("push", body, path=new)[0] == 401  # the old secret no longer signs
    assert stand.post("push", body, path=new, secret=rotated)[0] == 202


def test_a_missing_secret_means_no_path_and_a_warning(stand: Stand) -> None:
    old = stand.path()
    stand.api.delete_object("v1/secrets", NS, "hook-secret")
    stand.api.patch_object(
        BACKLOGS, NS, "team", {"metadata": {"annotations": {"backlog.dev/requested-at": "2"}}}
    )
    stand.api.wait_for(lambda: "webhookPath" not in stand.status())
    assert stand.post("push", payload_bytes(branch_pushes()[0]), path=old)[0] == 404
    stand.api.wait_for(
        lambda: [
            e
            for e in stand.api.list_objects("v1/events", NS)
            if e["reason"] == "WebhookSecretNotFound" and e["involvedObject"]["name"] == "team"
        ]
    )


def test_backlogctl_operator_receives_on_the_port_its_settings_name(
    emulator_server: EmulatorServer, project_crds: object, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG_FILE}, branch=BRANCH)
    api = emulator_server.emulator
    api.create_object(secret_object("hook-secret", SECRET))
    manifest = backlog_manifest("http://127.0.0.1:9", str(remote))
    manifest["spec"]["goalTemplate"]["spec"]["pullRequest"] = {"provider": "none"}
    del manifest["spec"]["repository"]["credentialsSecret"]
    api.create_object(manifest)
    settings = {
        "WEBHOOK_PORT": str(port),
        "WEBHOOK_BIND_ADDRESS": "127.0.0.1",
        "CACHE_DIR": str(tmp_path / "cache"),
    }
    log = tmp_path / "operator.log"
    with OperatorProcess(emulator_server, settings, log=log) as operator:
        path = api.wait_for(
            lambda: ((api.get_object(BACKLOGS, NS, "team") or {}).get("status") or {}).get(
                "webhookPath"
            ),
            timeout=30,
            message=lambda: log.read_text(errors="replace")[-3000:],
        )
        body = payload_bytes(examples("ping")[0])
        url = f"http://127.0.0.1:{port}{path}"
        assert deliver(url, body, signed_headers(SECRET, body, "ping")) == (200, "pong\n")
        assert deliver(url, body, signed_headers("wrong", body, "ping"))[0] == 401
        operator.kill()
    assert SECRET not in log.read_text(errors="replace")
