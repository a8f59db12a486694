"""The approval gate in the operator, against the API emulator (under the operator's own
ClusterRole): a goal that requires approval stages its change instead of pushing it, waits in
AwaitingApproval (holding its task, not a capacity slot) with the change stored in a ConfigMap
it owns, and is published by a publish-only Job once the annotation approves exactly the staged
hash; a wrong hash is refused, a rejection fails it and declines its task in its Backlog, a
ConfigMap gone fails the approval. The worker's side (the frames in the log) is played by the
test, with the module the worker prints them with."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backlog_operator.api.labels import LABEL_GOAL_UID
from backlog_operator.api.result import Outcome, StagedResult, WorkerResult
from backlog_operator.api.staged_log import digest, frame_lines, gzip_patch
from tests.operator.test_cli_cluster import cli
from tests.operator.test_pull_requests import (
    BACKLOGS,
    NS,
    TOKEN,
    Cluster,
    backlog_manifest,
    backlog_status,
    github,
    goal_manifest,
    goals_of,
    running_operator,
)
from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import make_remote

__all__ = ["github"]  # the fixture, shared with the pull request tests

GOALS = "backlog.dev/v1alpha1/goals"
CONFIGMAPS = "v1/configmaps"
PATCH = (
    b"diff --git a/docs/guide.md b/docs/guide.md\n"
    b"new file mode 100644\n"
    b"index 0000000000000000000000000000000000000000..ce01362503d8a3c9d4f6b1f8b2b9f0b4f1d2c3e4\n"
    b"--- /dev/null\n+++ b/docs/guide.md\n@@ -0,0 +1 @@\n+hello\n"
)
HASH = "sha256:" + "5e" * 32
BASE = "b" * 40
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


@pytest.fixture
def cluster(
    emulator_server: EmulatorServer, project_crds: object, github: GitHubStandIn, tmp_path: Path
) -> Iterator[Cluster]:
    # One running goal at most: a goal awaiting approval must not hold that slot.
    with running_operator(emulator_server, tmp_path, max_running=1):
        yield Cluster(emulator_server, github)


def approval_goal(cluster: Cluster, name: str, task: str = "docs-guide") -> Json:
    manifest = goal_manifest(cluster, name, approval={"required": True})
    manifest["spec"]["backlog"]["taskId"] = task
    return manifest


def branch_of(task: str) -> str:
    return f"backlog/{task}-3f9c2a"


def stage(cluster: Cluster, name: str, task: str = "docs-guide", *, cut: bool = False) -> Json:
    """The goal's staging attempt runs: its `publish` container prints the framed change and
    reports it, as `backlogctl worker stage` does. Returns the manifest staged."""
    [job] = cluster.api.wait_for(lambda: cluster.jobs_of(name))
    return stage_job(cluster.api, job["metadata"]["name"], task, cut=cut)


def stage_job(api: HardenedEmulator, job_name: str, task: str, *, cut: bool = False) -> Json:
    """The staging Job `job_name` runs to `staged` (see `stage`); the manifest staged."""
    pod = api.start_job(NS, job_name)
    manifest = {
        "version": 1,
        "patchHash": HASH,
        "baseCommit": BASE,
        "branch": branch_of(task),
        "changedFiles": [".backlog/backlog.yaml", "docs/guide.md"],
        "diffstat": [{"path": "docs/guide.md", "added": 1, "deleted": 0}],
        "patchBytes": len(PATCH),
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    packed = gzip_patch(PATCH)
    frames = list(frame_lines(manifest_bytes, packed))
    if cut:  # a log the kubelet rotated away in the middle
        frames = frames[:3] + frames[-2:]
    result = WorkerResult(
        outcome=Outcome.STAGED,
        task_id=task,
        branch=branch_of(task),
        changed_files=manifest["changedFiles"],
        step="publish",
        staged=StagedResult(
            patch_hash=HASH,
            base_commit=BASE,
            diffstat={"files": 2, "insertions": 1, "deletions": 0},
            patch_bytes=len(PATCH),
            patch_gzip_bytes=len(packed),
            patch_digest=digest(packed),
            manifest_digest=digest(manifest_bytes),
        ),
    )
    log = "backlog INFO publishing as a dry run\n" + "\n".join(frames) + "\n" + result.to_json()
    api.set_pod_log(NS, pod["metadata"]["name"], log + "\n", container="publish")
    api.finish_pod(NS, pod["metadata"]["name"], messages={"publish": result.to_json()})
    api.complete_job(NS, job_name, succeeded=True)
    return manifest


def annotate(cluster: Cluster, name: str, **annotations: str) -> None:
    keys = {key.replace("_", "-"): value for key, value in annotations.items()}
    cluster.api.patch_object(
        GOALS,
        NS,
        name,
        {"metadata": {"annotations": {f"backlog.dev/{k}": v for k, v in keys.items()}}},
    )


def config_map(cluster: Cluster, name: str) -> Json | None:
    return cluster.api.get_object(CONFIGMAPS, NS, name)


def containers(job: Json) -> tuple[list[Json], list[Json]]:
    spec = job["spec"]["template"]["spec"]
    return spec.get("initContainers") or [], spec["containers"]


def mounts(container: Json) -> dict[str, Json]:
    return {m["name"]: m for m in container.get("volumeMounts") or []}


def env_names(container: Json) -> set[str]:
    return {e["name"] for e in container.get("env") or []}


# ------------------------------------------------------------- staged, approved, published


def test_a_staged_change_awaits_approval_and_only_that_change_is_published(
    cluster: Cluster,
) -> None:
    cluster.api.create_object(approval_goal(cluster, "g1"))
    [job] = cluster.api.wait_for(lambda: cluster.jobs_of("g1"))
    init, [main] = containers(job)
    # The staging attempt: clone (with the token), task, and `worker stage` with no token.
    assert main["args"] == ["worker", "stage"]
    assert "credentials" not in mounts(main) and "BACKLOG_TOKEN_FILE" not in env_names(main)
    assert "credentials" in mounts(init[0])

    staged = stage(cluster, "g1")

    status = cluster.wait_status("g1", lambda s: s.get("phase") == "AwaitingApproval")
    approval = status["approval"]
    assert approval["patchHash"] == HASH and approval["baseCommit"] == BASE
    assert approval["branch"] == branch_of("docs-guide")
    assert approval["changedFiles"] == staged["changedFiles"]
    assert approval["diffstat"] == {"files": 2, "insertions": 1, "deletions": 0}
    assert approval["patchBytes"] == len(PATCH)
    assert approval["expiresAt"] > approval["stagedAt"]
    assert "approvedHash" not in approval
    ready, reconciling = cluster.condition("g1", "Ready"), cluster.condition("g1", "Reconciling")
    assert (ready["status"], ready["reason"]) == ("False", "AwaitingApproval")
    assert (reconciling["status"], reconciling["reason"]) == ("True", "AwaitingApproval")
    cluster.api.wait_for(lambda: ("Normal", "AwaitingApproval") in cluster.events("g1") or None)

    # The change is in a ConfigMap the Goal owns, exactly as staged.
    stored = config_map(cluster, approval["patchConfigMap"])
    assert stored is not None and approval["patchConfigMap"] == "g1-patch"
    goal = cluster.goal("g1")
    [owner] = stored["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Goal", "g1", goal["metadata"]["uid"])
    assert owner["controller"] is True and owner["blockOwnerDeletion"] is True
    assert stored["metadata"]["labels"][LABEL_GOAL_UID] == goal["metadata"]["uid"]
    assert gzip.decompress(base64.b64decode(stored["binaryData"]["patch.gz"])) == PATCH
    assert json.loads(stored["data"]["manifest.json"]) == staged

    # No capacity slot held while a person decides: another goal runs meanwhile (max 1).
    # (And it holds its task: a goal of the same task waits for it.)
    cluster.api.create_object(goal_manifest(cluster, "same-task"))
    cluster.wait_status("same-task", lambda s: s.get("reason") == "WaitingForTask")
    other = goal_manifest(cluster, "other")
    other["spec"]["backlog"]["taskId"] = "docs-other"
    cluster.api.create_object(other)
    cluster.wait_status("other", lambda s: s.get("phase") == "Running")

    # A wrong hash is refused, once per value; the goal keeps waiting.
    wrong = "sha256:" + "00" * 32
    annotate(cluster, "g1", approved_patch=wrong)
    cluster.api.wait_for(lambda: ("Warning", "ApprovalRefused") in cluster.events("g1") or None)
    annotate(cluster, "g1", approved_by="mallory")  # another change, the same wrong value
    cluster.wait_status("g1", lambda s: s["approval"].get("refusedHash") == wrong)
    assert cluster.events("g1").count(("Warning", "ApprovalRefused")) == 1
    assert cluster.status("g1")["phase"] == "AwaitingApproval"
    assert len(cluster.jobs_of("g1")) == 1

    # The staged hash: approved. The publish-only Job waits for a slot like any attempt...
    annotate(cluster, "g1", approved_patch=HASH, approved_by="alice")
    queued = cluster.wait_status("g1", lambda s: s.get("reason") == "WaitingForCapacity")
    assert queued["approval"]["approvedHash"] == HASH
    assert len(cluster.jobs_of("g1")) == 1
    cluster.publish("other", "docs-other", "backlog/docs-other-3f9c2a")
    # ... and, once one is free, applies exactly that change.
    publish_job = cluster.api.wait_for(
        lambda: [
            j for j in cluster.jobs_of("g1") if j["metadata"]["name"] != job["metadata"]["name"]
        ]
    )[0]
    status = cluster.wait_status("g1", lambda s: s.get("phase") == "Running")
    assert status["approval"]["approvedHash"] == HASH
    assert status["approval"]["approvedBy"] == "alice"
    assert status["attempts"] == 1
    cluster.api.wait_for(lambda: ("Normal", "Approved") in cluster.events("g1") or None)

    init, [only] = containers(publish_job)
    pod_spec = publish_job["spec"]["template"]["spec"]
    assert init == [] and only["name"] == "publish"
    assert only["args"] == [
        "worker",
        "apply",
        "--hash",
        HASH,
        "--staged",
        "/var/run/backlog/staged",
    ]
    assert mounts(only)["staged"] == {
        "name": "staged",
        "mountPath": "/var/run/backlog/staged",
        "readOnly": True,
    }
    assert "credentials" in mounts(only) and "BACKLOG_TOKEN_FILE" in env_names(only)
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert volumes["staged"]["configMap"]["name"] == "g1-patch"
    assert volumes["staged"]["configMap"]["optional"] is True
    assert pod_spec["automountServiceAccountToken"] is False
    assert only["securityContext"]["readOnlyRootFilesystem"] is True
    assert only["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e["value"] for e in only["env"]}
    assert env["BACKLOG_ATTEMPT_ID"] == cluster.status("g1")["attemptId"]
    assert "approval" not in json.loads(env["BACKLOG_GOAL"])["spec"]

    # It publishes: the goal succeeds with the approval kept.
    pod = cluster.api.start_job(NS, publish_job["metadata"]["name"])
    pull = cluster.github.add_pull(branch_of("docs-guide"), "main", title="docs-guide")
    published = WorkerResult(
        outcome=Outcome.PUBLISHED,
        task_id="docs-guide",
        branch=branch_of("docs-guide"),
        commit="c" * 40,
        pull_request={"number": pull.number, "url": f"https://example.test/pull/{pull.number}"},
        changed_files=staged["changedFiles"],
        backlog_updated=True,
        step="publish",
    )
    cluster.api.finish_pod(NS, pod["metadata"]["name"], messages={"publish": published.to_json()})
    cluster.api.complete_job(NS, publish_job["metadata"]["name"], succeeded=True)
    status = cluster.wait_status("g1", lambda s: s.get("phase") == "Succeeded")
    assert status["reason"] == "Published"
    assert status["approval"]["approvedHash"] == HASH
    assert status["approval"]["approvedBy"] == "alice" and status["approval"]["approvedAt"]

    # The token is nowhere the operator wrote: status, events, the stored change.
    events = cluster.api.list_objects("v1/events", NS)
    written = json.dumps([cluster.goal("g1"), stored, events])
    assert TOKEN not in written


def test_a_cut_log_is_not_stored_and_the_attempt_is_staged_again(cluster: Cluster) -> None:
    cluster.api.create_object(approval_goal(cluster, "g2"))
    stage(cluster, "g2", cut=True)

    status = cluster.wait_status("g2", lambda s: s.get("reason") == "Backoff")
    assert status["lastFailure"]["reason"] == "StagedPatchUnreadable"
    assert config_map(cluster, "g2-patch") is None
    assert "approval" not in status


def test_an_approval_of_a_change_whose_configmap_is_gone_fails(cluster: Cluster) -> None:
    cluster.api.create_object(approval_goal(cluster, "g3"))
    stage(cluster, "g3")
    cluster.wait_status("g3", lambda s: s.get("phase") == "AwaitingApproval")
    cluster.api.delete_object(CONFIGMAPS, NS, "g3-patch")

    annotate(cluster, "g3", approved_patch=HASH)

    status = cluster.wait_status("g3", lambda s: s.get("phase") == "Failed")
    assert status["reason"] == "StagedPatchMissing"
    assert len(cluster.jobs_of("g3")) == 1  # nothing was started to publish
    cluster.api.wait_for(lambda: ("Warning", "StagedPatchMissing") in cluster.events("g3") or None)


# ------------------------------------------------------ the Backlog: in flight, rejected


def test_a_rejected_change_declines_its_task_in_the_backlog(
    cluster: Cluster, tmp_path: Path
) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG_FILE})
    manifest = backlog_manifest(cluster, str(remote))
    manifest["spec"]["goalTemplate"]["spec"]["approval"] = {"required": True}
    cluster.api.create_object(manifest)
    cluster.api.wait_for(lambda: "team-ci-cache" in goals_of(cluster) or None)
    stage(cluster, "team-ci-cache", "ci-cache")
    cluster.wait_status("team-ci-cache", lambda s: s.get("phase") == "AwaitingApproval")

    # Awaiting approval, the goal is in flight (maxRunningGoals 1: no second task starts) and
    # listed in the Backlog's status.
    awaiting = cluster.api.wait_for(lambda: backlog_status(cluster).get("awaitingApproval"))
    [item] = awaiting
    assert (item["task"], item["goal"], item["patchHash"]) == ("ci-cache", "team-ci-cache", HASH)
    assert item["expiresAt"]
    cluster.api.patch_object(
        BACKLOGS, NS, "team", {"metadata": {"annotations": {"backlog.dev/requested-at": "0"}}}
    )
    cluster.api.wait_for(lambda: backlog_status(cluster).get("lastHandledReconcileAt") == "0")
    assert sorted(goals_of(cluster)) == ["team-ci-cache"]
    assert backlog_status(cluster)["inProgressCount"] == 1

    annotate(cluster, "team-ci-cache", rejected="not this way", rejected_by="bob")

    status = cluster.wait_status("team-ci-cache", lambda s: s.get("phase") == "Failed")
    assert status["reason"] == "Rejected"
    assert status["message"] == "rejected by bob: not this way"
    assert status["approval"]["rejectedBy"] == "bob" and status["approval"]["rejectedAt"]
    cluster.api.wait_for(lambda: ("Warning", "Rejected") in cluster.events("team-ci-cache") or None)
    declined = cluster.api.wait_for(lambda: backlog_status(cluster).get("declined"))
    assert [(d["id"], d["reason"], d.get("closedBy")) for d in declined] == [
        ("ci-cache", "Rejected", "bob")
    ]
    # The slot it held in the Backlog is free: the next task starts; ci-cache does not again.
    cluster.api.wait_for(lambda: "team-docs-intro" in goals_of(cluster) or None)
    cluster.api.patch_object(
        BACKLOGS, NS, "team", {"metadata": {"annotations": {"backlog.dev/requested-at": "1"}}}
    )
    cluster.api.wait_for(lambda: backlog_status(cluster).get("lastHandledReconcileAt") == "1")
    assert sorted(goals_of(cluster)) == ["team-ci-cache", "team-docs-intro"]
    assert backlog_status(cluster).get("awaitingApproval", []) == []


# ------------------------------------------------------- the people's side, end to end


def test_a_person_reads_the_staged_change_and_approves_it_with_kubectl_backlog(
    cluster: Cluster, emulator_server: EmulatorServer
) -> None:
    """What the operator staged is what `diff` prints, and `approve --hash` (the CLI as its own
    process, as a person runs it) is what starts the publish-only Job, with who approved."""
    cluster.api.create_object(approval_goal(cluster, "g5"))
    stage(cluster, "g5")
    cluster.wait_status("g5", lambda s: s.get("phase") == "AwaitingApproval")

    shown = cli(emulator_server, "diff", "g5", "-n", NS)
    assert shown.returncode == 0, shown.stderr
    assert HASH in shown.stdout and PATCH.decode() in shown.stdout

    refused = cli(emulator_server, "approve", "g5", "--hash", "sha256:" + "00" * 32, "-n", NS)
    assert refused.returncode != 0 and HASH in refused.stderr
    approved = cli(emulator_server, "approve", "g5", "--hash", HASH, "-n", NS)
    assert approved.returncode == 0, approved.stderr

    status = cluster.wait_status("g5", lambda s: s.get("phase") == "Running")
    assert status["approval"]["approvedHash"] == HASH
    assert status["approval"]["approvedBy"] == "emulator-admin"
    [publish_job] = [j for j in cluster.jobs_of("g5") if j["metadata"]["name"] == status["jobName"]]
    assert publish_job["spec"]["template"]["spec"]["containers"][0]["args"][:2] == [
        "worker",
        "apply",
    ]
