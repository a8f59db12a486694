"""`backlogctl heal`: a task's pull request branch that conflicts only in the backlog file is
merged with the base and its writeback redone; any other conflict is reported, nothing pushed.

Two tasks of a compact backlog (no blank line between tasks, or one flow mapping per task)
each get a branch as `backlogctl run` pushes it; the first is merged into `main` in a work
clone, as a person merging its pull request would; the second then conflicts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from backlog_operator.api.goal import Goal
from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.cli import main as backlogctl
from tests.git.conftest import TOKEN, RunOutcome
from tests.git.test_worker_imports import NEVER, imported, packages
from tests.support.gitrepos import GitHttpServer, make_remote, remote_sha, run_git
from tests.support.pod import Pod

# Compact block layout: no blank line between tasks, and each task's first line is one the
# writeback changes, so the end of one task's writeback touches the next task's (git merges
# changes apart by an unchanged line, such as `- id: beta`, without a conflict).
BLOCK = """\
# compact: no blank line between tasks
tasks:
  - status: pending
    id: alpha
    title: Alpha
  - status: pending
    id: beta
    title: Beta
"""

# The same tasks id first: the two writebacks are an unchanged line apart and merge cleanly.
ID_FIRST = """\
tasks:
  - id: alpha
    title: Alpha
    status: pending
  - id: beta
    title: Beta
    status: pending
"""

FLOW = """\
tasks:
  - {id: alpha, title: Alpha, status: pending}
  - {id: beta, title: Beta, status: pending}
"""

BACKLOG_PATH = ".backlog/backlog.yaml"


def goal_file(folder: Path, task_id: str, url: str, script: str | None = None) -> Path:
    """A Goal manifest for `task_id` that writes docs/<task>.md (or runs `script`)."""
    body: dict[str, Any] = {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {"name": f"goal-{task_id}", "namespace": "team"},
        "spec": {
            "repository": {"url": url, "baseBranch": "main"},
            "backlog": {"taskId": task_id},
            "task": {
                "image": "busybox",
                "command": [
                    "sh",
                    "-c",
                    script or f"mkdir -p docs && echo {task_id} > docs/{task_id}.md",
                ],
            },
            "pullRequest": {"provider": "none"},
        },
    }
    path = folder / f"goal-{task_id}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def run(capfd: pytest.CaptureFixture[str], *argv: str) -> RunOutcome:
    status = backlogctl(list(argv))
    captured = capfd.readouterr()
    return RunOutcome(status, captured.out, captured.err)


def open_branch(
    capfd: pytest.CaptureFixture[str], goal: Path, attempt: str
) -> tuple[str, dict[str, Any]]:
    """Run the goal as `backlogctl run` does (push a branch); the branch and the result."""
    outcome = run(capfd, "run", str(goal), "--attempt-id", attempt)
    assert outcome.status == 0, outcome.stderr
    assert outcome.result["outcome"] == "published"
    return str(outcome.result["branch"]), outcome.result


def merge_into_main(remote: Path, work: Path, branch: str) -> None:
    """Merge `branch` into `main` in a work clone and push main (a merge commit)."""
    if not work.exists():
        run_git("clone", "--quiet", str(remote), str(work))
    run_git("fetch", "--quiet", "origin", cwd=work)
    run_git("checkout", "--quiet", "-B", "main", "origin/main", cwd=work)
    run_git("merge", "--no-ff", "--quiet", "-m", f"Merge {branch}", f"origin/{branch}", cwd=work)
    run_git("push", "--quiet", "origin", "main", cwd=work)


def conflicts_with_main(remote: Path, work: Path, branch: str) -> bool:
    """Whether merging `branch` into main would conflict (asked of git, nothing kept)."""
    run_git("fetch", "--quiet", "origin", cwd=work)
    merged = run_git(
        "merge-tree", "--write-tree", "origin/main", f"origin/{branch}", cwd=work, check=False
    )
    return "CONFLICT" in merged


def file_at(remote: Path, ref: str, path: str) -> str | None:
    shown = run_git("--git-dir", str(remote), "show", f"{ref}:{path}", check=False)
    return shown or None


def _ancestor(remote: Path, old: str, new: str) -> bool:
    out = run_git("--git-dir", str(remote), "rev-list", new).split()
    return old in out


@pytest.mark.parametrize("layout", [BLOCK, FLOW], ids=["compact-block", "flow-mapping"])
def test_a_backlog_only_conflict_is_healed_and_then_merges(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], layout: str
) -> None:
    remote = make_remote(tmp_path, {BACKLOG_PATH: layout, "README.md": "# project\n"})
    alpha, _ = open_branch(capfd, goal_file(tmp_path, "alpha", str(remote)), "attempt-alpha-1")
    beta_goal = goal_file(tmp_path, "beta", str(remote))
    beta, published = open_branch(capfd, beta_goal, "attempt-beta-1")
    pr_backlog = BacklogDocument.parse(
        (file_at(remote, beta, BACKLOG_PATH) or "").encode(), source=BACKLOG_PATH
    ).find("beta")
    assert pr_backlog is not None
    work = tmp_path / "work"
    merge_into_main(remote, work, alpha)
    assert conflicts_with_main(remote, work, beta)  # what this test is about
    old_tip = remote_sha(remote, beta)
    assert old_tip is not None

    healed = run(capfd, "heal", str(beta_goal), "--branch", beta)

    assert healed.status == 0, healed.stderr
    result = healed.result
    assert result["outcome"] == "published" and result["reason"] == "Healed"
    assert result["step"] == "heal" and result["branch"] == beta
    new_tip = remote_sha(remote, beta)
    assert result["commit"] == new_tip != old_tip
    assert _ancestor(remote, old_tip, str(new_tip))  # a fast-forward, no force push
    parents = run_git("--git-dir", str(remote), "rev-list", "--parents", "-n1", str(new_tip))
    assert parents.split()[1:] == [old_tip, remote_sha(remote, "main")]
    # The pull request's diff is still this task's change alone.
    assert sorted(result["changedFiles"]) == [BACKLOG_PATH, "docs/beta.md"]
    assert not conflicts_with_main(remote, work, beta)

    merge_into_main(remote, work, beta)
    main_text = file_at(remote, "main", BACKLOG_PATH) or ""
    document = BacklogDocument.parse(main_text.encode(), source=BACKLOG_PATH)
    tasks = {task.id: task for task in document.tasks}
    assert tasks["alpha"].status == "completed" and tasks["beta"].status == "completed"
    assert tasks["beta"].last_attempt_id == pr_backlog.last_attempt_id == "attempt-beta-1"
    assert tasks["beta"].branch_name == beta == published["branch"]
    assert tasks["beta"].completed_at == pr_backlog.completed_at
    assert tasks["alpha"].branch_name == alpha
    assert file_at(remote, "main", "docs/alpha.md") == "alpha\n"
    assert file_at(remote, "main", "docs/beta.md") == "beta\n"
    if layout is FLOW:
        assert main_text.count("{id:") == 2  # the layout stayed as it was


def test_a_conflict_in_a_task_file_is_reported_and_nothing_is_pushed(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    remote = make_remote(tmp_path, {BACKLOG_PATH: BLOCK, "docs/shared.md": "shared\n"})
    script = "echo {0} > docs/shared.md"
    alpha_goal = goal_file(tmp_path, "alpha", str(remote), script.format("alpha"))
    alpha, _ = open_branch(capfd, alpha_goal, "attempt-alpha-1")
    beta_goal = goal_file(tmp_path, "beta", str(remote), script.format("beta"))
    beta, _ = open_branch(capfd, beta_goal, "attempt-beta-1")
    merge_into_main(remote, tmp_path / "work", alpha)
    old_tip = remote_sha(remote, beta)
    branches = run_git("--git-dir", str(remote), "for-each-ref", "refs/heads")

    outcome = run(capfd, "heal", str(beta_goal), "--branch", beta)

    assert outcome.status == 65, outcome.stderr
    result = outcome.result
    assert result["outcome"] == "failed" and result["reason"] == "Conflicted"
    assert result["retryable"] is False and result["step"] == "heal"
    assert result["conflictedFiles"] == [BACKLOG_PATH, "docs/shared.md"]
    assert "docs/shared.md" in result["message"]
    assert "alpha" not in result["message"]  # paths, never the conflicting contents
    assert remote_sha(remote, beta) == old_tip
    assert run_git("--git-dir", str(remote), "for-each-ref", "refs/heads") == branches


def test_a_clean_branch_needs_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    remote = make_remote(tmp_path, {BACKLOG_PATH: ID_FIRST})
    alpha, _ = open_branch(capfd, goal_file(tmp_path, "alpha", str(remote)), "attempt-alpha-1")
    beta_goal = goal_file(tmp_path, "beta", str(remote))
    beta, _ = open_branch(capfd, beta_goal, "attempt-beta-1")
    old_tip = remote_sha(remote, beta)

    before = run(capfd, "heal", str(beta_goal), "--branch", beta)  # main has not moved
    merge_into_main(remote, tmp_path / "work", alpha)
    after = run(capfd, "heal", str(beta_goal), "--branch", beta)  # merges cleanly

    for outcome in (before, after):
        assert outcome.status == 0, outcome.stderr
        assert outcome.result["reason"] == "NothingToHeal"
        assert outcome.result["commit"] == old_tip
    assert "already contains" in before.result["message"]
    assert "merges cleanly" in after.result["message"]
    assert remote_sha(remote, beta) == old_tip


@pytest.mark.parametrize("change", ["removed", "completed"])
def test_a_task_gone_or_done_in_the_base_is_not_healed(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], change: str
) -> None:
    remote = make_remote(tmp_path, {BACKLOG_PATH: FLOW})
    beta_goal = goal_file(tmp_path, "beta", str(remote))
    beta, _ = open_branch(capfd, beta_goal, "attempt-beta-1")
    old_tip = remote_sha(remote, beta)
    edited = (
        FLOW.replace("  - {id: beta, title: Beta, status: pending}\n", "")
        if change == "removed"
        else FLOW.replace("Beta, status: pending", "Beta, status: completed")
    )
    work = tmp_path / "work"
    run_git("clone", "--quiet", str(remote), str(work))
    (work / BACKLOG_PATH).write_text(edited)
    run_git("commit", "--quiet", "-am", "Edit the backlog", cwd=work)
    run_git("push", "--quiet", "origin", "main", cwd=work)

    outcome = run(capfd, "heal", str(beta_goal), "--branch", beta)

    if change == "removed":
        assert outcome.status == 65
        assert outcome.result["outcome"] == "failed"
        assert outcome.result["reason"] == "TaskNotInBase"
    else:
        assert outcome.status == 0
        assert outcome.result["outcome"] == "already_completed"
        assert outcome.result["reason"] == "CompletedInBase"
    assert remote_sha(remote, beta) == old_tip


def test_a_branch_that_changed_the_backlog_beyond_its_task_is_not_healed(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    remote = make_remote(tmp_path, {BACKLOG_PATH: FLOW})
    alpha, _ = open_branch(capfd, goal_file(tmp_path, "alpha", str(remote)), "attempt-alpha-1")
    # beta's task also edits alpha's entry: taking main's backlog would drop that edit.
    script = "sed -i 's/title: Alpha/title: Alpha edited by beta/' .backlog/backlog.yaml"
    beta_goal = goal_file(tmp_path, "beta", str(remote), script)
    beta, _ = open_branch(capfd, beta_goal, "attempt-beta-1")
    merge_into_main(remote, tmp_path / "work", alpha)
    old_tip = remote_sha(remote, beta)

    outcome = run(capfd, "heal", str(beta_goal), "--branch", beta)

    assert outcome.status == 65
    assert outcome.result["reason"] == "Conflicted"
    assert outcome.result["conflictedFiles"] == [BACKLOG_PATH]
    assert "beyond marking its task completed" in outcome.result["message"]
    assert remote_sha(remote, beta) == old_tip


def test_only_the_tasks_own_branches_are_healed(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    remote = make_remote(tmp_path, {BACKLOG_PATH: FLOW})
    main_before = remote_sha(remote, "main")
    goal = goal_file(tmp_path, "beta", str(remote))

    for branch in ("main", "backlog/alpha-1234"):
        outcome = run(capfd, "heal", str(goal), "--branch", branch)
        assert outcome.status == 65
        assert outcome.result["reason"] == "InvalidBranchName"
    missing = run(capfd, "heal", str(goal), "--branch", "backlog/beta-gone")
    assert missing.result["reason"] == "BranchNotFound"
    assert remote_sha(remote, "main") == main_before


def test_healing_over_https_never_shows_the_token(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], token_file: Path
) -> None:
    projects = tmp_path / "projects"
    projects.mkdir()
    remote = make_remote(projects, {BACKLOG_PATH: BLOCK})
    alpha, _ = open_branch(capfd, goal_file(tmp_path, "alpha", str(remote)), "attempt-alpha-1")
    beta, _ = open_branch(capfd, goal_file(tmp_path, "beta", str(remote)), "attempt-beta-1")
    merge_into_main(remote, tmp_path / "work", alpha)
    with GitHttpServer(projects, TOKEN) as server:
        http_goal = goal_file(tmp_path / "projects", "beta", server.url_for(remote))
        outcome = run(
            capfd, "heal", str(http_goal), "--branch", beta, "--token-file", str(token_file)
        )
        wrong = tmp_path / "wrong-token"
        wrong.write_text("ghp_notTheRightOne000000000000000\n")
        refused = run(capfd, "heal", str(http_goal), "--branch", beta, "--token-file", str(wrong))
    assert outcome.status == 0, outcome.stderr
    assert outcome.result["reason"] == "Healed"
    assert refused.result["reason"] == "AuthenticationFailed"
    for text in (outcome.stdout, outcome.stderr, refused.stdout, refused.stderr):
        assert TOKEN not in text
    assert TOKEN not in json.dumps(outcome.result)


@pytest.mark.parametrize("command", ["heal", "worker heal"])
def test_healing_imports_no_pydantic_no_git_library_nor_forge_client(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], command: str
) -> None:
    """`backlogctl heal` and a heal Job's container (`worker heal`) are short processes too,
    held to what every worker step imports (`test_worker_imports.NEVER`)."""
    remote = make_remote(tmp_path, {BACKLOG_PATH: FLOW})
    alpha, _ = open_branch(capfd, goal_file(tmp_path, "alpha", str(remote)), "attempt-alpha-1")
    beta_goal = goal_file(tmp_path, "beta", str(remote))
    beta, _ = open_branch(capfd, beta_goal, "attempt-beta-1")
    merge_into_main(remote, tmp_path / "work", alpha)
    if command == "heal":
        env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
        process = subprocess.run(
            [
                sys.executable,
                "-m",
                "backlog_operator.cli",
                "heal",
                str(beta_goal),
                "--branch",
                beta,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        result = json.loads(process.stdout.splitlines()[-1])
    else:
        (tmp_path / "pod").mkdir()
        pod = Pod(tmp_path / "pod", Goal.model_validate(yaml.safe_load(beta_goal.read_text())))
        pod.base_env["PYTHONPROFILEIMPORTTIME"] = "1"
        process = pod.worker("heal", "--branch", beta)
        result = pod.result("heal")
    assert process.returncode == 0, process.stderr
    assert result["reason"] == "Healed"
    assert result["step"] == "heal"
    loaded = imported(process.stderr)
    assert "backlog_operator.worker.heal" in loaded  # the report is read at all
    assert packages(loaded) & NEVER == set()
