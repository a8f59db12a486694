"""The approval gate's worker steps as a Job runs them, with real git and the GitHub stand-in.

`worker clone`, the task, and `worker stage` (given no token) stage the change and print it in
the step's log; the operator's own reading of that log (`approval.checked_bytes`) takes the
bytes it would store in the Goal's ConfigMap; `worker apply` (the publish-only Job's one
container) reads them as mounted and pushes exactly the staged change. A patch edited in the
ConfigMap is refused before anything is pushed; a retry after a push that worked reuses the
branch and its pull request; the token is nowhere in the log, the stored bytes or the results.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from backlog_operator.api.goal import Goal
from backlog_operator.api.result import WorkerResult
from backlog_operator.api.staged_log import gzip_patch
from backlog_operator.controller.goals.approval import checked_bytes
from backlog_operator.worker.staged_job import MANIFEST_FILE, PATCH_FILE
from tests.git.conftest import BACKLOG, TOKEN
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import make_remote, run_git
from tests.support.pod import Pod

SCRIPT = "mkdir -p docs && echo hello > docs/guide.md"


def refs(remote: Path) -> str:
    return run_git("--git-dir", str(remote), "for-each-ref", "--format=%(objectname) %(refname)")


def goal_for(remote: Path, github: GitHubStandIn) -> Goal:
    return Goal.model_validate(
        {
            "metadata": {"name": "g", "namespace": "team", "uid": "1234-5678"},
            "spec": {
                "repository": {"url": str(remote)},
                "backlog": {"taskId": "docs-guide"},
                "task": {"image": "busybox", "command": ["sh", "-c"], "args": [SCRIPT]},
                "pullRequest": {
                    "provider": "github",
                    "apiBaseUrl": github.base_url,
                    "repository": github.repository,
                },
                "approval": {"required": True},
            },
        }
    )


class Staged:
    """A staging attempt's outcome: its result, its log, and the bytes the operator stores."""

    def __init__(self, result: dict[str, Any], log: str, manifest: bytes, packed: bytes) -> None:
        self.result = result
        self.log = log
        self.manifest = manifest
        self.packed = packed

    def mount(self, folder: Path, *, packed: bytes | None = None) -> Path:
        """The ConfigMap's files as the publish-only Job mounts them."""
        folder.mkdir(parents=True)
        (folder / PATCH_FILE).write_bytes(self.packed if packed is None else packed)
        (folder / MANIFEST_FILE).write_bytes(self.manifest)
        return folder

    @property
    def hash(self) -> str:
        return str(self.result["staged"]["patchHash"])


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret" / "token"
    path.parent.mkdir()
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG, "README.md": "# project\n"})


def stage_in_a_pod(root: Path, goal: Goal, token_file: Path) -> tuple[Pod, Staged]:
    root.mkdir()
    pod = Pod(root, goal, token_file=token_file)
    assert pod.worker("clone").returncode == 0
    assert pod.task().returncode == 0
    pod.token_file = None  # the stage container is given no token (controller/goals/job.py)
    staged = pod.worker("stage")
    assert staged.returncode == 0, staged.stderr
    result = json.loads(pod.termination_message("stage"))
    parsed = WorkerResult.model_validate(result)
    assert parsed.staged is not None and parsed.branch is not None
    read = checked_bytes(staged.stderr + staged.stdout, parsed.staged, parsed.branch)
    assert not isinstance(read, WorkerResult), read
    manifest, packed, _ = read
    return pod, Staged(result, staged.stderr + staged.stdout, manifest, packed)


def apply_in_a_pod(root: Path, goal: Goal, token_file: Path, folder: Path, digest: str) -> Pod:
    root.mkdir()
    pod = Pod(root, goal, token_file=token_file)
    pod.worker("apply", "--hash", digest, "--staged", str(folder))
    return pod


def test_a_staged_job_then_apply_pushes_exactly_the_staged_change(
    tmp_path: Path, remote: Path, github: GitHubStandIn, token_file: Path
) -> None:
    goal = goal_for(remote, github)
    before = refs(remote)

    stager, staged = stage_in_a_pod(tmp_path / "stage", goal, token_file)

    assert staged.result["outcome"] == "staged"
    assert refs(remote) == before and github.open_pulls() == []
    assert [r.method for r in github.requests] == []  # staging asks no forge
    manifest = json.loads(staged.manifest)
    assert manifest["patchHash"] == staged.hash
    assert manifest["changedFiles"] == [".backlog/backlog.yaml", "docs/guide.md"]
    assert staged.result["staged"]["diffstat"]["files"] == 2
    assert b"+hello\n" in gzip.decompress(staged.packed)

    folder = staged.mount(tmp_path / "configmap")
    pod = apply_in_a_pod(tmp_path / "apply", goal, token_file, folder, staged.hash)

    result = pod.result("apply")
    assert result["outcome"] == "published", result
    branch = manifest["branch"]
    assert result["branch"] == branch
    [pull] = github.open_pulls()
    assert pull.head == branch
    change = f"refs/heads/{branch}~1"  # the follow-up on top records the PR's number
    checkout = tmp_path / "check"
    run_git("clone", "--quiet", str(remote), str(checkout))
    run_git("read-tree", manifest["baseCommit"], cwd=checkout)
    (tmp_path / "p").write_bytes(gzip.decompress(staged.packed))
    run_git("apply", "--cached", "--binary", str(tmp_path / "p"), cwd=checkout)
    staged_tree = run_git("write-tree", cwd=checkout).strip()
    assert run_git("--git-dir", str(remote), "rev-parse", f"{change}^{{tree}}").strip() == (
        staged_tree
    )

    # A retry of the publish-only Job after that push (its answer lost): the branch and the
    # pull request are reused, nothing is pushed over them.
    pushed = refs(remote)
    again = apply_in_a_pod(tmp_path / "retry", goal, token_file, folder, staged.hash)
    retried = again.result("apply")
    assert retried["outcome"] == "published", retried
    assert retried["pullRequest"]["number"] == pull.number
    assert refs(remote) == pushed
    assert len(github.open_pulls()) == 1

    # The token: nowhere in the log, the stored bytes, the results.
    seen = [*stager.outputs, *pod.outputs, *again.outputs, staged.manifest.decode()]
    seen += [gzip.decompress(staged.packed).decode(), json.dumps(staged.result)]
    assert all(TOKEN not in text for text in seen)


def test_a_patch_edited_in_the_configmap_is_refused_and_nothing_is_pushed(
    tmp_path: Path, remote: Path, github: GitHubStandIn, token_file: Path
) -> None:
    goal = goal_for(remote, github)
    _, staged = stage_in_a_pod(tmp_path / "stage", goal, token_file)
    edited = gzip.decompress(staged.packed).replace(b"+hello\n", b"+evil!\n")
    folder = staged.mount(tmp_path / "configmap", packed=gzip_patch(edited))
    before = refs(remote)

    pod = apply_in_a_pod(tmp_path / "apply", goal, token_file, folder, staged.hash)

    result = pod.result("apply")
    assert (result["outcome"], result["reason"]) == ("failed", "PatchHashMismatch")
    assert result["retryable"] is False
    assert refs(remote) == before and github.open_pulls() == []


def test_a_configmap_gone_fails_the_apply_with_staged_patch_missing(
    tmp_path: Path, remote: Path, github: GitHubStandIn, token_file: Path
) -> None:
    goal = goal_for(remote, github)
    empty = tmp_path / "configmap"
    empty.mkdir()  # an optional ConfigMap volume whose ConfigMap is gone: an empty folder

    pod = apply_in_a_pod(tmp_path / "apply", goal, token_file, empty, "sha256:" + "a" * 64)

    result = pod.result("apply")
    assert (result["reason"], result["retryable"]) == ("StagedPatchMissing", False)


def test_a_cut_log_is_refused_by_the_operator(
    tmp_path: Path, remote: Path, github: GitHubStandIn, token_file: Path
) -> None:
    goal = goal_for(remote, github)
    _, staged = stage_in_a_pod(tmp_path / "stage", goal, token_file)
    parsed = WorkerResult.model_validate(staged.result)
    assert parsed.staged is not None and parsed.branch is not None
    lines = staged.log.splitlines()
    cut = "\n".join(line for i, line in enumerate(lines) if i != len(lines) // 2)

    read = checked_bytes(cut, parsed.staged, parsed.branch)

    assert isinstance(read, WorkerResult)
    assert read.reason == "StagedPatchUnreadable"
