"""`backlogctl diff|approve|reject|revive` (and `kubectl backlog ...`) against the API emulator.

The Goal's status and its patch's ConfigMap are set by hand, as the operator's side of the
approval contract writes them (status.approval; a ConfigMap with `binaryData.patch.gz` and
`data.manifest.json`): these tests need no operator. The command runs as its own process over
real HTTP, as a person runs it.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kmock
import pytest

from backlog_operator.api.labels import (
    ANNOTATION_APPROVED_BY,
    ANNOTATION_APPROVED_PATCH,
    ANNOTATION_REJECTED,
    ANNOTATION_REJECTED_BY,
    ANNOTATION_REVIVE_PREFIX,
    LABEL_GOAL_UID,
    LABEL_MANAGED_BY,
    MANAGED_BY,
)
from tests.operator.conftest import CRD_DIR, operator_policy
from tests.operator.test_backlog import backlog
from tests.operator.test_cli_cluster import SCRIPTS, cli
from tests.operator.test_goal_operator import goal_manifest
from tests.support.emulator import EmulatorServer, HardenedEmulator, load_crds_from_dir
from tests.support.rbac import RbacPolicy, request_attributes

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
BACKLOGS = "backlog.dev/v1alpha1/backlogs"
CONFIGMAPS = "v1/configmaps"
RBAC = Path(__file__).resolve().parents[2] / "kustomize" / "rbac"
APPROVER_ROLE = "backlog-operator-goal-approver-role"
ADMIN_USER = "emulator-admin"  # the kubeconfig user of the emulator's admin context
Json = dict[str, Any]

BASE = "1f" * 20
BRANCH = "backlog/docs-guide-3f9c2a"
PATCH = (
    b"diff --git a/docs/guide.md b/docs/guide.md\n"
    b"new file mode 100644\n"
    b"index 0000000000000000000000000000000000000000..1111111111111111111111111111111111111111\n"
    b"--- /dev/null\n"
    b"+++ b/docs/guide.md\n"
    b"@@ -0,0 +1,2 @@\n"
    b"+# Guide\n"
    b"+Read me.\n"
    b"diff --git a/.backlog/backlog.yaml b/.backlog/backlog.yaml\n"
    b"index 2222222222222222222222222222222222222222.."
    b"3333333333333333333333333333333333333333 100644\n"
    b"--- a/.backlog/backlog.yaml\n"
    b"+++ b/.backlog/backlog.yaml\n"
    b"@@ -1,3 +1,3 @@\n"
    b" tasks:\n"
    b"   - id: docs-guide\n"
    b"-    status: pending\n"
    b"+    status: completed\n"
)


def hash_of(patch: bytes) -> str:
    """A hash of the contract's form (the staged change's hash is not over the patch's bytes,
    but any `sha256:<64 hex>` stands for one here)."""
    return "sha256:" + hashlib.sha256(patch).hexdigest()


HASH = hash_of(PATCH)
OTHER_HASH = hash_of(b"another change")


@pytest.fixture
def server(emulator_server: EmulatorServer) -> EmulatorServer:
    """The emulator as strict as the operator's tests make it, with the project's CRDs."""
    api = emulator_server.emulator
    for crd in load_crds_from_dir(CRD_DIR):
        api.register_crd(crd)
    api.strict_validation = True
    api.enable_rbac(operator_policy())
    return emulator_server


def awaiting(
    api: HardenedEmulator,
    name: str = "docs-guide",
    *,
    patch: bytes = PATCH,
    staged_hash: str = HASH,
    expires_in: timedelta = timedelta(days=7),
    manifest: Json | None = None,
    packed: bytes | None = None,
    config_map: bool = True,
) -> Json:
    """A Goal awaiting approval of `patch`, and its ConfigMap, as the operator writes them."""
    goal = api.create_object(goal_manifest(name))
    now = datetime.now(UTC)
    cm_name = f"{name}-patch"
    approval = {
        "patchHash": staged_hash,
        "baseCommit": BASE,
        "branch": BRANCH,
        "changedFiles": [".backlog/backlog.yaml", "docs/guide.md"],
        "diffstat": {"files": 2, "insertions": 3, "deletions": 1},
        "patchBytes": len(patch),
        "patchConfigMap": cm_name,
        "stagedAt": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expiresAt": (now + expires_in).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    api.patch_status(GOALS, NS, name, {"phase": "AwaitingApproval", "approval": approval})
    if config_map:
        written = {
            "version": 1,
            "patchHash": staged_hash,
            "baseCommit": BASE,
            "branch": BRANCH,
            "changedFiles": approval["changedFiles"],
            "diffstat": [],
            "patchBytes": len(patch),
        }
        api.create_object(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": cm_name,
                    "namespace": NS,
                    "labels": {
                        LABEL_MANAGED_BY: MANAGED_BY,
                        LABEL_GOAL_UID: goal["metadata"]["uid"],
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": "backlog.dev/v1alpha1",
                            "kind": "Goal",
                            "name": name,
                            "uid": goal["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "binaryData": {
                    "patch.gz": _b64(gzip.compress(patch) if packed is None else packed)
                },
                "data": {"manifest.json": json.dumps(written | (manifest or {}))},
            }
        )
    return goal_now(api, name)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def goal_now(api: HardenedEmulator, name: str = "docs-guide") -> Json:
    found = api.get_object(GOALS, NS, name)
    assert found is not None
    return found


def annotations_of(obj: Json) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


def unchanged_but(before: Json, after: Json, added: dict[str, str]) -> None:
    """`after` is `before` with exactly the annotations `added` (and a new resourceVersion)."""
    expected = copy.deepcopy(before)
    expected["metadata"].setdefault("annotations", {}).update(added)
    strip = ("resourceVersion", "managedFields")
    left = {k: v for k, v in expected["metadata"].items() if k not in strip}
    right = {k: v for k, v in after["metadata"].items() if k not in strip}
    assert right == left
    assert {k: v for k, v in after.items() if k != "metadata"} == {
        k: v for k, v in expected.items() if k != "metadata"
    }


# ---------------------------------------------------------------------------------------- diff


def test_diff_prints_hash_base_branch_expiry_then_the_patch(server: EmulatorServer) -> None:
    awaiting(server.emulator)

    result = cli(server, "diff", "docs-guide")

    assert result.returncode == 0, result.stderr
    head, _, patch = result.stdout.partition("\ndiff --git ")
    assert "diff --git " + patch == PATCH.decode()
    assert f"  hash:     {HASH}" in head.splitlines()
    assert f"  base:     {BASE}" in head.splitlines()
    assert f"  branch:   {BRANCH}" in head.splitlines()
    [expires] = [line for line in head.splitlines() if line.startswith("  expires:")]
    assert "(in 6d" in expires
    assert f"kubectl backlog approve docs-guide --hash {HASH}" in head
    # What is printed is a patch git takes: the text before `diff --git` is skipped.
    assert result.stdout.endswith(PATCH.decode())


def test_diff_stat_lists_the_files_and_totals(server: EmulatorServer) -> None:
    awaiting(server.emulator)

    result = cli(server, "diff", "docs-guide", "--stat")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "diff --git" not in result.stdout
    assert any(line.split() == ["+2", "-0", "docs/guide.md"] for line in lines), lines
    assert any(line.split() == ["+1", "-1", ".backlog/backlog.yaml"] for line in lines), lines
    assert lines[-1] == " 2 file(s) changed, 3 insertion(s)(+), 1 deletion(s)(-)"


def test_diff_neutralises_terminal_escape_sequences(server: EmulatorServer) -> None:
    hostile = PATCH + (
        b"diff --git a/x.txt b/x.txt\n@@ -0,0 +1,4 @@\n"
        b"+\x1b]0;owned\x07title\n"  # OSC: set the window title
        b"+\x1b[2J\x1b[Hclear screen\r+looks like another line\n"
        b"+\xc2\x9b31mC1 CSI \xe2\x80\xae reversed\n"  # U+009B, U+202E
        b"+not utf-8: \xff\n"
    )
    awaiting(server.emulator, patch=hostile)

    result = cli(server, "diff", "docs-guide")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    for acting in ("\x1b", "\x07", "\r", "\x9b", "\u202e", "\ufffd"):
        assert acting not in out
    assert "+\\x1b]0;owned\\x07title\n" in out
    assert "+\\x1b[2J\\x1b[Hclear screen\\x0d+looks like another line\n" in out
    assert "+\\x9b31mC1 CSI \\u202e reversed\n" in out
    assert "+not utf-8: \\xff\n" in out


def test_diff_refuses_a_goal_not_awaiting_approval(server: EmulatorServer) -> None:
    api = server.emulator
    api.create_object(goal_manifest("running"))
    api.patch_status(GOALS, NS, "running", {"phase": "Running"})
    api.create_object(goal_manifest("no-approval"))
    api.patch_status(GOALS, NS, "no-approval", {"phase": "AwaitingApproval"})

    running = cli(server, "diff", "running")
    missing = cli(server, "diff", "no-approval")

    assert running.returncode == 1 and running.stdout == ""
    assert 'goal "running" is not awaiting approval (phase Running)' in running.stderr
    assert missing.returncode == 1 and missing.stdout == ""
    assert "names no staged change (status.approval.patchHash)" in missing.stderr


def test_diff_refuses_a_manifest_naming_another_change(server: EmulatorServer) -> None:
    awaiting(server.emulator, manifest={"patchHash": OTHER_HASH})

    result = cli(server, "diff", "docs-guide")

    assert result.returncode == 1
    assert result.stdout == ""  # not a byte of the patch
    assert f'holds change {OTHER_HASH}, but goal "docs-guide" staged {HASH}' in result.stderr


def test_diff_refuses_a_manifest_of_another_base(server: EmulatorServer) -> None:
    awaiting(server.emulator, manifest={"baseCommit": "2e" * 20})

    result = cli(server, "diff", "docs-guide")

    assert result.returncode == 1 and result.stdout == ""
    assert "manifest's baseCommit is not the goal's" in result.stderr


def test_diff_says_when_the_configmap_is_gone(server: EmulatorServer) -> None:
    awaiting(server.emulator, config_map=False)

    result = cli(server, "diff", "docs-guide")

    assert result.returncode == 1 and result.stdout == ""
    assert 'ConfigMap "docs-guide-patch" not found in namespace "default"' in result.stderr
    assert "Traceback" not in result.stderr


def test_diff_refuses_a_gzip_bomb_without_unpacking_it(server: EmulatorServer) -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB unpacked, 64 KiB packed
    assert len(bomb) < 100_000
    awaiting(server.emulator, packed=bomb)

    result = cli(server, "diff", "docs-guide")

    assert result.returncode == 1 and result.stdout == ""
    assert "unpacks to more than 1048576 bytes" in result.stderr


def test_diff_refuses_what_is_not_one_whole_gzip_stream(server: EmulatorServer) -> None:
    api = server.emulator
    awaiting(api, "cut", packed=gzip.compress(PATCH)[:-12])
    awaiting(api, "trailing", packed=gzip.compress(PATCH) + gzip.compress(b"hidden\n"))
    awaiting(api, "plain", packed=PATCH)

    cut = cli(server, "diff", "cut")
    trailing = cli(server, "diff", "trailing")
    plain = cli(server, "diff", "plain")

    assert cut.returncode == trailing.returncode == plain.returncode == 1
    assert cut.stdout == trailing.stdout == plain.stdout == ""
    assert "cut short" in cut.stderr
    assert "data after its gzip stream" in trailing.stderr
    assert "not gzip data" in plain.stderr


# ------------------------------------------------------------------------------------- approve


def test_approve_with_the_staged_hash_writes_the_two_annotations_only(
    server: EmulatorServer,
) -> None:
    api = server.emulator
    before = awaiting(api)

    result = cli(server, "approve", "docs-guide", "--hash", HASH)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"goal/docs-guide approved by {ADMIN_USER}: {HASH}")
    after = goal_now(api)
    unchanged_but(
        before, after, {ANNOTATION_APPROVED_PATCH: HASH, ANNOTATION_APPROVED_BY: ADMIN_USER}
    )


def test_approve_without_hash_approves_the_staged_change(server: EmulatorServer) -> None:
    api = server.emulator
    awaiting(api)

    result = cli(server, "approve", "docs-guide")

    assert result.returncode == 0, result.stderr
    assert annotations_of(goal_now(api))[ANNOTATION_APPROVED_PATCH] == HASH


def test_approving_again_keeps_the_first_approval(server: EmulatorServer) -> None:
    api = server.emulator
    awaiting(api)
    assert cli(server, "approve", "docs-guide", "--hash", HASH).returncode == 0
    first = goal_now(api)

    again = cli(server, "approve", "docs-guide", "--hash", HASH, admin=False)

    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"goal/docs-guide is approved already by {ADMIN_USER}")
    assert goal_now(api) == first  # not written again: who approved first stays


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (OTHER_HASH, "is not the change staged for goal"),
        (HASH.upper(), "is not a change's hash"),
        ("sha256:abc", "is not a change's hash"),
    ],
)
def test_approve_refuses_a_hash_that_is_not_the_staged_one(
    server: EmulatorServer, given: str, said: str
) -> None:
    api = server.emulator
    before = awaiting(api)

    result = cli(server, "approve", "docs-guide", "--hash", given)

    assert result.returncode == 1 and result.stdout == ""
    assert said in result.stderr
    assert goal_now(api) == before  # nothing written


def test_approve_refuses_an_expired_change(server: EmulatorServer) -> None:
    api = server.emulator
    before = awaiting(api, expires_in=timedelta(minutes=-1))

    result = cli(server, "approve", "docs-guide", "--hash", HASH)

    assert result.returncode == 1 and result.stdout == ""
    assert "expired at" in result.stderr and "(expired)" in result.stderr
    assert goal_now(api) == before


def test_approve_refuses_a_goal_not_awaiting_approval(server: EmulatorServer) -> None:
    api = server.emulator
    awaiting(api)
    api.patch_status(GOALS, NS, "docs-guide", {"phase": "Running"})
    before = goal_now(api)

    result = cli(server, "approve", "docs-guide", "--hash", HASH)
    missing = cli(server, "approve", "nope")

    assert result.returncode == 1 and result.stdout == ""
    assert "is not awaiting approval (phase Running)" in result.stderr
    assert goal_now(api) == before
    assert missing.returncode == 1
    assert 'goal "nope" not found in namespace "default"' in missing.stderr


def test_a_change_staged_again_while_approving_fails_the_write(server: EmulatorServer) -> None:
    """The merge patch carries the resourceVersion read: the Goal staged again between the
    read and the write answers 409, and neither annotation is written."""
    api = server.emulator
    awaiting(api)
    restaged = {"approval": {"patchHash": OTHER_HASH}}

    def restage(request: kmock.Request) -> None:
        # What the operator would do at that moment; None: the request is then served.
        api.patch_status(GOALS, NS, "docs-guide", restaged)

    api[kmock.method.PATCH, kmock.resource(GOALS)][:1] << restage

    result = cli(server, "approve", "docs-guide", "--hash", HASH)

    assert result.returncode == 1 and result.stdout == ""
    assert 'goal "docs-guide" changed after it was read' in result.stderr
    assert "nothing was written" in result.stderr
    after = goal_now(api)
    assert after["status"]["approval"]["patchHash"] == OTHER_HASH
    assert ANNOTATION_APPROVED_PATCH not in annotations_of(after)
    assert ANNOTATION_APPROVED_BY not in annotations_of(after)


# -------------------------------------------------------------------------------------- reject


def test_reject_writes_the_reason_and_who(server: EmulatorServer) -> None:
    api = server.emulator
    before = awaiting(api)

    result = cli(server, "reject", "docs-guide", "--reason", "touches the wrong file")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"goal/docs-guide rejected by {ADMIN_USER}: {HASH}")
    unchanged_but(
        before,
        goal_now(api),
        {ANNOTATION_REJECTED: "touches the wrong file", ANNOTATION_REJECTED_BY: ADMIN_USER},
    )


def test_reject_cuts_the_reason_to_one_kib_on_a_character(server: EmulatorServer) -> None:
    api = server.emulator
    awaiting(api)
    reason = "a" * 1023 + "é" * 10  # é is two bytes: the cut falls inside the first

    result = cli(server, "reject", "docs-guide", "--reason", reason)

    assert result.returncode == 0, result.stderr
    assert annotations_of(goal_now(api))[ANNOTATION_REJECTED] == "a" * 1023
    assert "(cut to 1 KiB)" in result.stdout


def test_reject_refuses_a_goal_not_awaiting_approval(server: EmulatorServer) -> None:
    api = server.emulator
    api.create_object(goal_manifest("done"))
    api.patch_status(GOALS, NS, "done", {"phase": "Succeeded"})
    before = goal_now(api, "done")

    result = cli(server, "reject", "done", "--reason", "no")

    assert result.returncode == 1 and result.stdout == ""
    assert "is not awaiting approval (phase Succeeded)" in result.stderr
    assert goal_now(api, "done") == before


def test_approve_and_reject_refuse_each_other(server: EmulatorServer) -> None:
    api = server.emulator
    awaiting(api, "approved")
    awaiting(api, "rejected")
    assert cli(server, "approve", "approved", "--hash", HASH).returncode == 0
    assert cli(server, "reject", "rejected", "--reason", "no").returncode == 0

    late_reject = cli(server, "reject", "approved", "--reason", "changed my mind")
    late_approve = cli(server, "approve", "rejected", "--hash", HASH)

    assert late_reject.returncode == late_approve.returncode == 1
    assert "is approved already" in late_reject.stderr
    assert "is rejected already" in late_approve.stderr
    assert ANNOTATION_REJECTED not in annotations_of(goal_now(api, "approved"))
    assert ANNOTATION_APPROVED_PATCH not in annotations_of(goal_now(api, "rejected"))


# -------------------------------------------------------------------------------------- revive


DECLINED = {
    "id": "docs-guide",
    "pullRequest": {"number": 707, "url": "https://github.com/o/r/pull/707"},
    "closedBy": "octocat",
    "declinedAt": "2026-01-30T23:15:00Z",
    "goal": "team-docs-guide",
}


def test_revive_sets_the_task_annotation_and_says_it_was_declined(
    server: EmulatorServer,
) -> None:
    api = server.emulator
    before = api.create_object(backlog("team", "https://github.com/o/r.git"))
    api.patch_status(BACKLOGS, NS, "team", {"declined": [DECLINED]})
    before = api.get_object(BACKLOGS, NS, "team") or {}
    started = datetime.now(UTC).replace(microsecond=0)

    result = cli(server, "revive", "team", "docs-guide")

    assert result.returncode == 0, result.stderr
    after = api.get_object(BACKLOGS, NS, "team") or {}
    key = ANNOTATION_REVIVE_PREFIX + "docs-guide"
    value = annotations_of(after)[key]
    assert started <= datetime.fromisoformat(value.replace("Z", "+00:00")) <= datetime.now(UTC)
    unchanged_but(before, after, {key: value})
    assert "was declined (pull request #707 closed by octocat)" in result.stdout


def test_revive_of_a_rejected_task_says_its_staged_change_was_rejected(
    server: EmulatorServer,
) -> None:
    api = server.emulator
    api.create_object(backlog("team", "https://github.com/o/r.git"))
    rejected = {
        "id": "docs-guide",
        "reason": "Rejected",
        "closedBy": "alice",
        "declinedAt": "2026-01-30T23:15:00Z",
        "message": "rejected by alice: touches the CI \x1b[31mconfig",
        "goal": "team-docs-guide",
    }
    api.patch_status(BACKLOGS, NS, "team", {"declined": [rejected]})

    result = cli(server, "revive", "team", "docs-guide")

    assert result.returncode == 0, result.stderr
    assert "pull request" not in result.stdout
    assert (
        "task docs-guide was declined (its staged change was rejected by alice; goal "
        "team-docs-guide says: rejected by alice: touches the CI \\x1b[31mconfig): the next "
        "sync may select it again"
    ) in result.stdout
    assert ANNOTATION_REVIVE_PREFIX + "docs-guide" in annotations_of(
        api.get_object(BACKLOGS, NS, "team") or {}
    )


def test_revive_of_a_task_not_declined_says_so(server: EmulatorServer) -> None:
    api = server.emulator
    api.create_object(backlog("team", "https://github.com/o/r.git"))

    result = cli(server, "revive", "team", "lint")

    assert result.returncode == 0, result.stderr
    assert "is not declined as of the Backlog's last sync" in result.stdout
    found = api.get_object(BACKLOGS, NS, "team") or {}
    assert ANNOTATION_REVIVE_PREFIX + "lint" in annotations_of(found)


@pytest.mark.parametrize("task", ["a" * 64, "_lint", "lint.", "docs/guide", "ünï", "a b"])
def test_revive_refuses_a_task_id_no_annotation_can_name(server: EmulatorServer, task: str) -> None:
    api = server.emulator
    api.create_object(backlog("team", "https://github.com/o/r.git"))
    before = api.get_object(BACKLOGS, NS, "team")

    result = cli(server, "revive", "team", task)

    assert result.returncode == 1 and result.stdout == ""
    assert "is not a task id a Backlog selects" in result.stderr
    assert api.get_object(BACKLOGS, NS, "team") == before


def test_revive_of_a_missing_backlog(server: EmulatorServer) -> None:
    result = cli(server, "revive", "nope", "lint")

    assert result.returncode == 1
    assert 'backlog "nope" not found in namespace "default"' in result.stderr


# ------------------------------------------------------------------------- the approver's Role


def test_the_approver_role_grants_exactly_what_the_commands_use(server: EmulatorServer) -> None:
    """As a user bound to the approver ClusterRole alone (the kubeconfig's default context):
    diff, approve, reject, and the listing and watching of `kubectl backlog get goals` and
    `kubectl get goals -w` all work, and use every rule of the role, and nothing else."""
    api = server.emulator
    policy = RbacPolicy.from_kustomize(RBAC, role=APPROVER_ROLE, user="jane")
    api.enable_rbac(policy)
    api.request_history = None
    awaiting(api, "first")
    awaiting(api, "second")

    diff = cli(server, "diff", "first", admin=False)
    approve = cli(server, "approve", "first", "--hash", HASH, admin=False)
    reject = cli(server, "reject", "second", "--reason", "no", admin=False)
    listed = cli(server, "get", "goals", admin=False)
    watched = server.kubectl("get", "goals.backlog.dev", "--watch", "--request-timeout=2s")
    revive = cli(server, "revive", "team", "lint", admin=False)

    for done in (diff, approve, reject, listed):
        assert done.returncode == 0, done.stderr
    assert watched.returncode in (0, 1), watched.stderr  # ends at its request timeout
    # The kubeconfig user of the default context is who approved.
    assert annotations_of(goal_now(api, "first"))[ANNOTATION_APPROVED_BY] == "emulator"
    # Reviving is a Backlog's editor's right, not the approver's.
    assert revive.returncode == 1 and "403" in revive.stderr
    made = set()
    for request in list(api):
        info = request_attributes(request.method.value, request.url.path, dict(request.params))
        if info.resource_request and not policy.is_admin(dict(request.headers)):
            made.add((info.api_group, info.combined_resource, info.verb))
    granted = {
        (group, resource, verb)
        for _, rule in policy.rules
        for group in rule.api_groups
        for resource in rule.resources
        for verb in rule.verbs
    }
    made.discard(("backlog.dev", "backlogs", "get"))  # the refused revive
    assert made == granted


@pytest.mark.parametrize("role", ["backlog-operator-goal-viewer-role"])
def test_a_viewer_may_read_but_not_approve(server: EmulatorServer, role: str) -> None:
    api = server.emulator
    api.enable_rbac(RbacPolicy.from_kustomize(RBAC, role=role, user="jane"))
    before = awaiting(api)

    result = cli(server, "approve", "docs-guide", "--hash", HASH, admin=False)

    assert result.returncode == 1
    assert result.stderr.startswith("error: the API server answered 403: ")
    assert goal_now(api) == before


# ------------------------------------------------------------------------- as a kubectl plugin


@pytest.mark.skipif(
    shutil.which("kubectl") is None or not (SCRIPTS / "kubectl-backlog").exists(),
    reason="kubectl or the kubectl-backlog script is not installed",
)
def test_kubectl_backlog_diff_then_approve(server: EmulatorServer) -> None:
    api = server.emulator
    awaiting(api)
    path = f"{SCRIPTS}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "KUBECONFIG": str(server.kubeconfig), "PATH": path}

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "backlog", *args, "--context", "emulator-admin"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    diff = kubectl("diff", "docs-guide")
    wrong = kubectl("approve", "docs-guide", "--hash", OTHER_HASH)
    approve = kubectl("approve", "docs-guide", "--hash", HASH)

    assert diff.returncode == 0, diff.stderr
    assert f"kubectl backlog approve docs-guide --hash {HASH}" in diff.stdout
    assert diff.stdout.endswith(PATCH.decode())
    assert wrong.returncode == 1 and "is not the change staged" in wrong.stderr
    assert approve.returncode == 0, approve.stderr
    assert annotations_of(goal_now(api))[ANNOTATION_APPROVED_PATCH] == HASH
