"""A Goal's Job run from the built image: the operator's own Job manifest, each step in its own
container of the image, against a bare repository behind smart HTTP and the GitHub stand-in.

The Pod spec comes from `build_job`, so a change to the Job (mount paths, the token's place,
the user, the read-only root) is tried against the image as it is built, not as it is meant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from backlog_operator.api.goal import Goal
from backlog_operator.controller.goals.job import RUN_AS, TOKEN_DIR, build_job
from backlog_operator.controller.settings import OperatorSettings
from tests.image.buildah_pod import BuildahPod
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import GitHttpServer, make_remote, remote_sha, run_git

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

KUSTOMIZE = Path(__file__).resolve().parents[2] / "kustomize"
OPERATOR_MODULES = ["backlog_operator.controller.main", "backlog_operator.controller.handlers"]

TOKEN = "ghp_imageTestT0ken0123456789abcdef"
BACKLOG = """\
# The team's backlog.
tasks:
  - id: docs-guide
    title: Write the guide
    ready: true
    status: pending
"""
# The task reports what it can reach; publish commits the report with the backlog change.
TASK_SCRIPT = f"""
mkdir -p docs
{{
  echo "uid=$(id -u)"
  echo "task=$BACKLOG_TASK_ID"
  echo "token-file=${{BACKLOG_TOKEN_FILE:-unset}}"
  if [ -e {TOKEN_DIR} ]; then echo "token: visible"; else echo "token: absent"; fi
  if [ -e /private ]; then echo "private: visible"; else echo "private: absent"; fi
}} > docs/guide.md
"""


def goal_for(url: str, image: str, github: GitHubStandIn) -> Goal:
    return Goal.model_validate(
        {
            "metadata": {"name": "image-goal", "namespace": "team", "uid": "5f3a9c1e-0000-4000"},
            "spec": {
                "repository": {
                    "url": url,
                    "baseBranch": "main",
                    "credentialsSecret": {"name": "forge-token", "key": "token"},
                },
                "backlog": {"taskId": "docs-guide"},
                "task": {"image": image, "command": ["sh", "-c", TASK_SCRIPT]},
                "pullRequest": {
                    "provider": "github",
                    "apiBaseUrl": github.base_url,
                    "repository": github.repository,
                },
            },
        }
    )


def test_the_jobs_three_steps_run_from_the_image_and_publish(image: str, tmp_path: Path) -> None:
    projects = tmp_path / "srv"
    projects.mkdir()
    remote = make_remote(projects, {".backlog/backlog.yaml": BACKLOG, "README.md": "# p\n"})
    with (
        GitHttpServer(projects, TOKEN) as git_server,
        GitHubStandIn("octo/project", TOKEN) as github,
    ):
        goal = goal_for(git_server.url_for(remote), image, github)
        job = build_job(goal, 1, OperatorSettings(worker_image=image))
        pod = BuildahPod(
            job["spec"]["template"]["spec"],
            tmp_path / "pod",
            secrets={"forge-token": {"token": TOKEN}},
        )
        failed = pod.run()
        pulls = github.open_pulls()

    outputs = {name: done.stdout + done.stderr for name, done in pod.outputs.items()}
    assert failed is None, f"step {failed} failed:\n{outputs}"
    assert list(outputs) == ["clone", "task", "publish"]
    result: dict[str, Any] = json.loads(pod.termination_message("publish"))
    assert result["outcome"] == "published", result
    assert result["taskId"] == "docs-guide"
    assert result["changedFiles"] == [".backlog/backlog.yaml", "docs/guide.md"]
    # On the pushed branch: the task's change with the backlog's in one commit, then the PR number.
    head = remote_sha(remote, result["branch"])
    assert result["branch"].startswith("backlog/docs-guide-")
    assert head is not None
    assert head == result["commit"]
    first = run_git("--git-dir", str(remote), "rev-parse", f"{head}~1").strip()
    assert files_in(remote, first) == [".backlog/backlog.yaml", "docs/guide.md"]
    assert run_git("--git-dir", str(remote), "rev-parse", f"{head}~2").strip() == remote_sha(
        remote, "main"
    )
    (pull,) = pulls
    assert (pull.head, pull.base) == (result["branch"], "main")
    assert result["pullRequest"]["number"] == pull.number
    backlog = show(remote, head, ".backlog/backlog.yaml")
    assert "status: completed" in backlog and f"pr_number: {pull.number}" in backlog
    # The task ran as the Pod's user, without the token, its variable or the private volume.
    assert show(remote, head, "docs/guide.md").splitlines() == [
        f"uid={RUN_AS}",
        "task=docs-guide",
        "token-file=unset",
        "token: absent",
        "private: absent",
    ]
    for name, text in [*outputs.items(), ("termination", pod.termination_message("publish"))]:
        assert TOKEN not in text, f"the token leaked into the output of {name}"


def test_a_read_only_root_refuses_writes_outside_the_volumes(image: str, tmp_path: Path) -> None:
    """The stand-in's own check: where the Job sets it, the root is read-only, not only closed
    to the user (/tmp is open to all in the image), and the volumes stay writable."""
    container = {
        "name": "writer",
        "image": image,
        "command": ["/bin/sh", "-c", "touch /workspace/ok && touch /tmp/not-ok"],
        "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
        "securityContext": {"readOnlyRootFilesystem": True},
    }
    spec = {
        "securityContext": {"runAsUser": RUN_AS, "runAsGroup": RUN_AS},
        "containers": [container],
        "volumes": [{"name": "workspace", "emptyDir": {}}],
    }
    pod = BuildahPod(spec, tmp_path / "pod")

    assert pod.run() == "writer"

    assert "'/tmp/not-ok': Read-only file system" in pod.outputs["writer"].stderr
    assert (tmp_path / "pod" / "volumes" / "workspace" / "ok").exists()


def test_the_operator_imports_in_its_deployments_container(image: str, tmp_path: Path) -> None:
    """The Deployment's manager container (its user, read-only root and /tmp), importing what
    `backlogctl operator` runs; the real command would wait for an API server."""
    deployment = yaml.safe_load((KUSTOMIZE / "manager" / "manager.yaml").read_text())
    pod_spec = deployment["spec"]["template"]["spec"]
    (manager,) = pod_spec["containers"]
    manager["image"] = image
    manager["command"] = ["python3", "-c", f"import {', '.join(OPERATOR_MODULES)}; print('ok')"]
    pod = BuildahPod(pod_spec, tmp_path / "pod")

    assert pod.run() is None, pod.outputs["manager"].stderr
    assert pod.outputs["manager"].stdout.strip() == "ok"


def show(remote: Path, ref: str, path: str) -> str:
    """A file's text at `ref` of the bare remote."""
    return run_git("--git-dir", str(remote), "show", f"{ref}:{path}")


def files_in(remote: Path, commit: str) -> list[str]:
    """Paths a commit changed relative to its first parent."""
    out = run_git(
        "--git-dir", str(remote), "diff-tree", "--no-commit-id", "--name-only", "-r", commit
    )
    return sorted(out.split())
