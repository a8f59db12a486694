"""Each worker step imports what it needs and nothing more.

A step is a short process: pydantic, GitPython, PyGithub, the Kubernetes client or kopf would
cost more to import than most of its git commands take (pydantic and the Goal's models alone
were a third of `backlogctl run` on a small repository). The steps run as a Job's containers
run them, and `backlogctl run` as a person runs it, with Python reporting every module it
imports (`PYTHONPROFILEIMPORTTIME`, the variable of `-X importtime`), so what is checked is what
a process really loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backlog_operator.api.goal import Goal
from backlog_operator.api.staged_log import read_frames
from backlog_operator.worker.staged_job import MANIFEST_FILE, PATCH_FILE
from tests.git.conftest import BACKLOG
from tests.support.gitrepos import make_remote
from tests.support.pod import Pod

#: Never needed by `clone`, nor by `publish` without a forge: the git CLI does the git work, and
#: the goal, the backlog, the clone record and the result are read and written without pydantic
#: (`worker.goal`, `backlog.model`, `worker.record`, `api.worker_result`).
NEVER = {"git", "gitdb", "github", "kubernetes", "kopf", "pydantic", "pydantic_core"}
#: Nor `dataclasses`, which imports `inspect` (and it `ast`, `dis`, `tokenize`): with the classes
#: defined, some 10 ms of every step. The modules a step imports use named tuples, or plain
#: classes with slots where a value changes.
NEVER |= {"dataclasses", "inspect"}


# The task writes a file and reports its usage: `publish` checks the usage file without pydantic.
WRITE_AND_REPORT = (
    "echo x > docs/x.md && printf '%s' "
    """'{"inputTokens": 12, "cost": {"amount": 0.5, "currency": "usd"}, "counters": {"n": 1}}' """
    '> "$BACKLOG_USAGE_FILE"'
)


def imported(stderr: str) -> set[str]:
    """The modules a process imported, from its `-X importtime` lines."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def packages(modules: set[str]) -> set[str]:
    """The top-level packages of `modules`."""
    return {module.split(".")[0] for module in modules}


def goal(url: str, provider: str) -> Goal:
    return Goal.model_validate(
        {
            "metadata": {"name": "g", "namespace": "team"},
            "spec": {
                "repository": {"url": url},
                "backlog": {"taskId": "docs-guide"},
                "task": {"image": "busybox", "command": ["sh", "-c", WRITE_AND_REPORT]},
                "pullRequest": {"provider": provider, "repository": "o/r"},
            },
        }
    )


@pytest.fixture
def import_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The steps started from here print each import to stderr."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")


@pytest.mark.usefixtures("import_report")
def test_clone_imports_no_forge_client_and_no_git_library(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG, "docs/a.md": "a\n"})
    # A goal whose pull request goes to GitHub: still nothing of PyGithub before `publish`.
    pod = Pod(tmp_path, goal(str(remote), "github"))

    clone = pod.worker("clone")

    assert clone.returncode == 0, clone.stderr
    modules = imported(clone.stderr)
    assert "backlog_operator.worker.steps" in modules  # the report is there
    assert "ruamel" in packages(modules)  # goal and backlog are read
    assert packages(modules) & NEVER == set()
    assert "backlog_operator.worker.publish" not in modules  # the next step's code


@pytest.mark.usefixtures("import_report")
def test_publish_without_a_forge_imports_no_forge_client_and_no_git_library(
    tmp_path: Path,
) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG, "docs/a.md": "a\n"})
    pod = Pod(tmp_path, goal(str(remote), "none"))
    assert pod.worker("clone").returncode == 0
    assert pod.task().returncode == 0

    publish = pod.worker("publish")

    assert publish.returncode == 0, publish.stderr
    assert pod.result("publish")["outcome"] == "published"
    assert pod.result("publish")["usage"] == {
        "inputTokens": 12,
        "cost": {"amount": "0.5", "currency": "USD"},
        "counters": {"n": 1},
        "warnings": [],
    }
    modules = imported(publish.stderr)
    assert "backlog_operator.worker.publish" in modules
    assert packages(modules) & NEVER == set()


@pytest.mark.usefixtures("import_report")
def test_backlogctl_run_imports_no_pydantic_no_forge_client_and_no_git_library(
    tmp_path: Path,
) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG, "docs/a.md": "a\n"})
    goal_file = tmp_path / "goal.yaml"
    goal_file.write_text(json.dumps(goal(str(remote), "none").model_dump(by_alias=True)))

    run = subprocess.run(
        [sys.executable, "-m", "backlog_operator.cli", "run", str(goal_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.splitlines()[-1])
    assert (result["outcome"], result["usage"]["inputTokens"]) == ("published", 12)
    modules = imported(run.stderr)
    assert {"backlog_operator.worker.local", "backlog_operator.worker.publish"} <= modules
    assert packages(modules) & NEVER == set()


def staged_goal(url: str, provider: str) -> Goal:
    """`goal`, with approval required: its attempt stages, a publish-only Job applies."""
    body = goal(url, provider).model_dump(by_alias=True, exclude_none=True)
    body["spec"]["approval"] = {"required": True}
    return Goal.model_validate(body)


@pytest.mark.usefixtures("import_report")
def test_stage_and_apply_import_no_pydantic_no_forge_client_and_no_git_library(
    tmp_path: Path,
) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG, "docs/a.md": "a\n"})
    (tmp_path / "stage").mkdir()
    # Pull requests go to GitHub: `stage` asks no forge, so nothing of PyGithub either.
    stager = Pod(tmp_path / "stage", staged_goal(str(remote), "github"))
    assert stager.worker("clone").returncode == 0
    assert stager.task().returncode == 0

    stage = stager.worker("stage")

    assert stage.returncode == 0, stage.stderr
    assert stager.result("stage")["outcome"] == "staged"
    modules = imported(stage.stderr)
    assert {"backlog_operator.worker.staged_job", "backlog_operator.worker.staging"} <= modules
    assert packages(modules) & NEVER == set()

    # The publish-only Job, the ConfigMap's files mounted (as the operator stores them).
    manifest, packed = read_frames(stage.stdout)
    mounted = tmp_path / "configmap"
    mounted.mkdir()
    (mounted / PATCH_FILE).write_bytes(packed)
    (mounted / MANIFEST_FILE).write_bytes(manifest)
    (tmp_path / "apply").mkdir()
    applier = Pod(tmp_path / "apply", staged_goal(str(remote), "none"))
    digest = stager.result("stage")["staged"]["patchHash"]

    apply = applier.worker("apply", "--hash", digest, "--staged", str(mounted))

    assert apply.returncode == 0, apply.stderr
    assert applier.result("apply")["outcome"] == "published"
    modules = imported(apply.stderr)
    assert {"backlog_operator.worker.staged_run", "backlog_operator.worker.publish"} <= modules
    assert packages(modules) & NEVER == set()


@pytest.mark.usefixtures("import_report")
def test_backlogctl_run_stage_and_apply_import_no_pydantic_no_forge_client_and_no_git_library(
    tmp_path: Path,
) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG, "docs/a.md": "a\n"})
    goal_file = tmp_path / "goal.yaml"
    goal_file.write_text(json.dumps(goal(str(remote), "none").model_dump(by_alias=True)))
    patch = tmp_path / "change.patch"

    def backlogctl_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "backlog_operator.cli", "run", str(goal_file), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    stage = backlogctl_run("--stage", "--out", str(patch))
    assert stage.returncode == 0, stage.stderr
    digest = stage.stdout.splitlines()[0]
    apply = backlogctl_run("--apply", str(patch), "--hash", digest)

    assert apply.returncode == 0, apply.stderr
    assert json.loads(apply.stdout.splitlines()[-1])["outcome"] == "published"
    for process in (stage, apply):
        modules = imported(process.stderr)
        assert {"backlog_operator.worker.staged_run", "backlog_operator.worker.staging"} <= modules
        assert packages(modules) & NEVER == set()
