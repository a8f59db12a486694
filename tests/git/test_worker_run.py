"""`backlogctl run`: the three steps against real git repositories and the GitHub stand-in.

A bare repository is the remote; every test asserts on what reached it (refs, commits, files)
and on what reached the forge, not only on what the worker says it did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backlog_operator.api.result import ExitCode
from backlog_operator.backlog.document import BacklogDocument
from tests.git.conftest import BACKLOG as TEAM_BACKLOG
from tests.git.conftest import TOKEN, RunOutcome
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import (
    commit_to_remote,
    protect_refs,
    remote_branches,
    remote_sha,
    run_git,
)

WriteGoal = Callable[..., Path]
BACKLOG = ".backlog/backlog.yaml"
RunGoal = Callable[..., RunOutcome]


def show(remote: Path, ref: str, path: str) -> str:
    """A file's text at `ref` of the bare remote."""
    return run_git("--git-dir", str(remote), "show", f"{ref}:{path}")


def files_in(remote: Path, commit: str) -> list[str]:
    """Paths a commit changed relative to its first parent."""
    out = run_git(
        "--git-dir", str(remote), "diff-tree", "--no-commit-id", "--name-only", "-r", commit
    )
    return sorted(out.split())


def github_spec(github: GitHubStandIn, **extra: object) -> dict[str, object]:
    return {
        "provider": "github",
        "apiBaseUrl": github.base_url,
        "repository": github.repository,
        "labels": ["backlog", "automated"],
        **extra,
    }


def test_publishes_task_and_backlog_change_in_one_commit_and_opens_pr(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, github: GitHubStandIn, token_file: Path
) -> None:
    goal = write_goal(pull_request=github_spec(github, draft=True, title="Do {taskId}: {title}"))

    run = run_goal(
        goal, "--token-file", str(token_file), "--attempt-id", "attempt-docs-guide-abc123"
    )

    assert run.status == 0, run.stderr
    result = run.result
    assert result["outcome"] == "published"
    assert result["branch"] == "backlog/docs-guide-abc123"
    assert result["changedFiles"] == [".backlog/backlog.yaml", "docs/guide.md"]
    assert result["backlogUpdated"] is True
    [pr] = github.open_pulls()
    assert result["pullRequest"]["number"] == pr.number
    assert result["pullRequest"]["url"].endswith(f"/octo/project/pull/{pr.number}")
    assert result["pullRequestCreated"] is True  # opened by this attempt
    assert (pr.head, pr.base, pr.draft) == ("backlog/docs-guide-abc123", "main", True)
    assert pr.title == "Do docs-guide: Write the guide"
    assert "Explain the backlog." in (pr.body or "") and "team/goal-one" in (pr.body or "")
    assert sorted(pr.labels) == ["automated", "backlog"]
    # The remote holds two commits on the branch: work + writeback together, then the PR number.
    head = remote_sha(remote, "backlog/docs-guide-abc123")
    assert head is not None
    assert head == result["commit"]
    first = run_git("--git-dir", str(remote), "rev-parse", f"{head}~1").strip()
    assert files_in(remote, first) == [".backlog/backlog.yaml", "docs/guide.md"]
    assert files_in(remote, head) == [".backlog/backlog.yaml"]
    assert run_git("--git-dir", str(remote), "rev-parse", f"{head}~2").strip() == remote_sha(
        remote, "main"
    )
    backlog = show(remote, head, ".backlog/backlog.yaml")
    assert "status: completed" in backlog and f"pr_number: {pr.number}" in backlog
    assert "branch_name: backlog/docs-guide-abc123" in backlog
    assert "# Team backlog: comments and layout must survive writeback." in backlog
    assert show(remote, head, "docs/guide.md") == "hello\n"
    author = run_git("--git-dir", str(remote), "log", "-1", "--format=%an <%ae>", first).strip()
    assert author == "backlog-operator <backlog-operator@users.noreply.github.com>"


@pytest.mark.parametrize("task_edits_backlog", [False, True])
def test_the_backlog_is_read_once_unless_the_task_changed_it(
    remote: Path,
    write_goal: WriteGoal,
    run_goal: RunGoal,
    github: GitHubStandIn,
    token_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    task_edits_backlog: bool,
) -> None:
    readings: list[bytes] = []
    parse = BacklogDocument.parse.__func__  # type: ignore[attr-defined]

    def counted(cls: type[BacklogDocument], data: bytes, *, source: str) -> BacklogDocument:
        readings.append(data)
        document: BacklogDocument = parse(cls, data, source=source)
        return document

    monkeypatch.setattr(BacklogDocument, "parse", classmethod(counted))
    # Task `other` may change any path; the note goes where no edit of the worker's lands.
    script = "echo x > x.txt"
    if task_edits_backlog:
        script += " && sed -i 's/^# Team backlog.*/# Team backlog, edited by the task/' " + BACKLOG
    goal = write_goal(task_id="other", script=script, pull_request=github_spec(github))

    run = run_goal(goal, "--token-file", str(token_file))

    assert run.status == 0, run.stderr
    [pr] = github.open_pulls()
    backlog = show(remote, run.result["commit"], BACKLOG)
    assert f"pr_number: {pr.number}" in backlog and "status: completed" in backlog
    assert ("edited by the task" in backlog) is task_edits_backlog
    # Once by `clone`; `publish`, in the same process, reads again only bytes it has not seen.
    assert len(readings) == (2 if task_edits_backlog else 1)


def test_task_that_changes_nothing_still_gets_a_pr_with_the_backlog_change(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, github: GitHubStandIn, token_file: Path
) -> None:
    goal = write_goal(script="true", pull_request=github_spec(github))

    run = run_goal(goal, "--token-file", str(token_file))

    assert run.status == 0, run.stderr
    assert run.result["changedFiles"] == [".backlog/backlog.yaml"]
    assert len(github.open_pulls()) == 1
    assert "status: completed" in show(remote, run.result["branch"], ".backlog/backlog.yaml")


def test_already_completed_task_runs_nothing_and_pushes_nothing(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, github: GitHubStandIn, tmp_path: Path
) -> None:
    marker = tmp_path / "task-ran"
    goal = write_goal(
        task_id="done-task", script=f"touch {marker}", pull_request=github_spec(github)
    )

    run = run_goal(goal)

    assert run.status == 0, run.stderr
    assert run.result["outcome"] == "already_completed"
    assert "branch" not in run.result and "pullRequest" not in run.result
    assert not marker.exists()
    assert remote_branches(remote) == ["main"]
    assert github.requests == []


def test_task_missing_from_backlog_publishes_without_writeback(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    goal = write_goal(task_id="not-in-backlog", script="echo x > notes.txt")

    run = run_goal(goal)

    assert run.status == 0, run.stderr
    assert run.result["outcome"] == "published"
    assert run.result["backlogUpdated"] is False
    assert run.result["changedFiles"] == ["notes.txt"]
    assert any("not-in-backlog" in warning for warning in run.result["warnings"])
    assert "pullRequest" not in run.result  # provider none: the branch only
    assert "pullRequestCreated" not in run.result
    assert show(remote, run.result["branch"], ".backlog/backlog.yaml") == show(
        remote, "main", ".backlog/backlog.yaml"
    )


def test_an_earlier_attempts_pr_number_is_cleared_when_this_one_opens_none(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    """The task went through a pull request before (#700, then reopened by a person); this
    attempt pushes a branch only (`provider: none`): #700 is not its pull request."""
    reopened = TEAM_BACKLOG.replace(
        '    allowed_paths: ["docs/**"]\n',
        '    allowed_paths: ["docs/**"]\n    branch_name: backlog/docs-guide-111111\n'
        "    pr_number: 700\n",
    )
    commit_to_remote(remote, "main", {BACKLOG: reopened})
    goal = write_goal(pull_request={"provider": "none"})

    run = run_goal(goal, "--attempt-id", "attempt-docs-guide-222222")

    assert run.status == 0, run.stderr
    assert "pullRequest" not in run.result
    written = BacklogDocument.parse(
        show(remote, run.result["branch"], BACKLOG).encode(), source=BACKLOG
    ).find("docs-guide")
    assert written is not None
    assert (written.pr_number, written.branch_name) == (None, "backlog/docs-guide-222222")
    assert "    pr_number: null\n" in show(remote, run.result["branch"], BACKLOG)


def test_task_environment_has_task_fields_and_no_credentials(
    remote: Path,
    write_goal: WriteGoal,
    run_goal: RunGoal,
    token_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    goal = write_goal(script="mkdir -p docs && env | sort > docs/env.txt")

    run = run_goal(goal, "--token-file", str(token_file))

    assert run.status == 0, run.stderr
    env = show(remote, run.result["branch"], "docs/env.txt")
    assert "BACKLOG_TASK_ID=docs-guide" in env
    assert "BACKLOG_TASK_TITLE=Write the guide" in env
    assert "Explain the backlog." in env
    assert TOKEN not in env
    for name in ("GITHUB_TOKEN", "SSH_AUTH_SOCK", "BACKLOG_TOKEN_FILE", "GIT_CONFIG_COUNT"):
        assert f"{name}=" not in env


def test_changes_outside_allowed_paths_are_refused_and_nothing_is_pushed(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    goal = write_goal(script="mkdir -p docs src && echo a > docs/ok.md && echo b > src/app.py")

    run = run_goal(goal)

    assert run.status == ExitCode.PERMANENT
    assert run.result["outcome"] == "failed"
    assert run.result["reason"] == "PathViolation"
    assert run.result["retryable"] is False
    assert "src/app.py" in run.result["message"]
    assert remote_branches(remote) == ["main"]


def test_task_cannot_widen_its_own_allowed_paths(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    script = 'sed -i \'s#\\["docs/\\*\\*"\\]#["**"]#\' .backlog/backlog.yaml && echo b > app.py'
    goal = write_goal(script=script)

    run = run_goal(goal)

    assert run.result["reason"] == "PathViolation"
    assert remote_branches(remote) == ["main"]


def test_failing_task_is_a_retryable_failure_and_pushes_nothing(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    run = run_goal(write_goal(script="echo partial > docs.md; exit 3"))

    assert run.status == ExitCode.RETRYABLE
    assert (run.result["reason"], run.result["retryable"]) == ("TaskFailed", True)
    assert "exited with 3" in run.result["message"]
    assert remote_branches(remote) == ["main"]


def _running(pid: int) -> bool:
    """Whether process `pid` exists and has not ended (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_task_past_its_timeout_is_ended_with_what_it_started(
    remote: Path, tmp_path: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    pid_file = tmp_path / "background.pid"
    script = f"sleep 300 & echo $! > {pid_file}; sleep 300"
    task = {"image": "busybox", "command": ["sh", "-c", script], "timeoutSeconds": 1}

    run = run_goal(write_goal(task=task))

    assert run.status == ExitCode.RETRYABLE
    assert (run.result["reason"], run.result["retryable"]) == ("TaskFailed", True)
    assert "exited with 124" in run.result["message"]
    assert remote_branches(remote) == ["main"]
    background = int(pid_file.read_text())
    for _ in range(100):  # SIGKILL is sent; its delivery and the reaping take a moment
        if not _running(background):
            break
        time.sleep(0.1)
    assert not _running(background)


def test_push_to_protected_branch_is_a_permanent_failure(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, github: GitHubStandIn, token_file: Path
) -> None:
    protect_refs(remote, "refs/heads/backlog/*")
    goal = write_goal(pull_request=github_spec(github))

    run = run_goal(goal, "--token-file", str(token_file))

    assert run.status == ExitCode.PERMANENT
    assert (run.result["reason"], run.result["retryable"]) == ("PushRejected", False)
    assert remote_branches(remote) == ["main"]
    assert github.requests_to("POST", "/pulls") == []


def test_branch_that_moved_is_a_retryable_failure(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    goal = write_goal()
    first = run_goal(goal, "--attempt-id", "attempt-docs-guide-aaaaaa")
    assert first.status == 0, first.stderr
    commit_to_remote(remote, "backlog/docs-guide-aaaaaa", {"docs/guide.md": "someone else\n"})

    second = run_goal(
        write_goal(script="mkdir -p docs && echo again > docs/guide.md"),
        "--attempt-id",
        "attempt-docs-guide-aaaaaa",
    )

    assert second.status == ExitCode.RETRYABLE
    assert (second.result["reason"], second.result["retryable"]) == ("NonFastForward", True)
    assert show(remote, "backlog/docs-guide-aaaaaa", "docs/guide.md") == "someone else\n"


def test_reuses_the_open_pull_request_of_the_task_without_losing_history(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, github: GitHubStandIn, token_file: Path
) -> None:
    earlier = commit_to_remote(
        remote, "backlog/docs-guide-old111", {"docs/guide.md": "first try\n"}, start="main"
    )
    existing = github.add_pull("backlog/docs-guide-old111", "main")

    run = run_goal(write_goal(pull_request=github_spec(github)), "--token-file", str(token_file))

    assert run.status == 0, run.stderr
    assert run.result["pullRequest"]["number"] == existing.number
    assert run.result["pullRequestCreated"] is False  # reused
    assert run.result["branch"] == "backlog/docs-guide-old111"
    assert github.requests_to("POST", "/pulls") == []  # no second pull request
    assert len(github.open_pulls()) == 1
    head = remote_sha(remote, "backlog/docs-guide-old111")
    assert head is not None
    assert head == run.result["commit"]
    parents = run_git("--git-dir", str(remote), "rev-list", "--parents", "-n1", head).split()[1:]
    assert earlier in parents  # a fast-forward: the earlier attempt's commit is kept
    assert show(remote, head, "docs/guide.md") == "hello\n"
    assert f"pr_number: {existing.number}" in show(remote, head, ".backlog/backlog.yaml")
    merge_base = run_git("--git-dir", str(remote), "merge-base", "main", head).strip()
    assert merge_base == remote_sha(remote, "main")  # the pull request's diff is this attempt's


def test_labels_lost_after_opening_are_put_on_by_the_next_attempt(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, github: GitHubStandIn, token_file: Path
) -> None:
    github.fail_next(502, method="POST", path_contains="/labels")
    goal = write_goal(pull_request=github_spec(github))

    first = run_goal(goal, "--token-file", str(token_file))
    assert (first.result["reason"], first.result["retryable"]) == ("ForgeUnavailable", True)
    (opened,) = github.open_pulls()
    assert opened.labels == []  # opened, then the labels were lost

    second = run_goal(goal, "--token-file", str(token_file))

    assert second.status == 0, second.stderr
    assert second.result["pullRequest"]["number"] == opened.number  # reused, not a second one
    assert sorted(opened.labels) == ["automated", "backlog"]


def test_forge_server_error_is_retryable(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, github: GitHubStandIn, token_file: Path
) -> None:
    github.fail_next(502, method="POST", path_contains="/pulls")

    run = run_goal(write_goal(pull_request=github_spec(github)), "--token-file", str(token_file))

    assert run.status == ExitCode.RETRYABLE
    assert (run.result["reason"], run.result["retryable"]) == ("ForgeUnavailable", True)


def test_forge_rate_limit_is_retryable_with_a_delay(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, github: GitHubStandIn, token_file: Path
) -> None:
    github.fail_next(429, headers={"Retry-After": "120"}, method="GET", path_contains="/pulls")

    run = run_goal(write_goal(pull_request=github_spec(github)), "--token-file", str(token_file))

    assert run.status == ExitCode.RETRYABLE
    assert run.result["reason"] == "RateLimited"
    assert 100 <= run.result["retryAfterSeconds"] <= 120
    assert remote_branches(remote) == ["main"]  # it asked the forge before pushing anything


def test_wrong_token_is_a_permanent_failure(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, github: GitHubStandIn, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text("ghp_wrongwrongwrong")

    run = run_goal(write_goal(pull_request=github_spec(github)), "--token-file", str(wrong))

    assert run.status == ExitCode.PERMANENT
    assert (run.result["reason"], run.result["retryable"]) == ("AuthenticationFailed", False)
    assert "ghp_wrongwrongwrong" not in run.stdout + run.stderr


def test_unreachable_remote_is_retryable(
    write_goal: WriteGoal, run_goal: RunGoal, tmp_path: Path
) -> None:
    run = run_goal(write_goal(url="http://127.0.0.1:9/nothing.git"))

    assert run.status == ExitCode.RETRYABLE
    assert (run.result["reason"], run.result["retryable"]) == ("RepositoryUnreachable", True)


def test_malformed_backlog_fails_permanently_naming_file_and_line(
    tmp_path: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    from tests.support.gitrepos import make_remote

    broken = make_remote(
        tmp_path,
        {".backlog/backlog.yaml": "tasks:\n  - id: a\n    title: [unclosed\n"},
        name="broken.git",
    )
    run = run_goal(write_goal(task_id="a", url=str(broken)))

    assert run.status == ExitCode.PERMANENT
    assert run.result["reason"] == "InvalidBacklog"
    assert ".backlog/backlog.yaml:" in run.result["message"]
    assert remote_branches(broken) == ["main"]


def test_invalid_goal_is_a_permanent_failure_with_a_clear_message(
    tmp_path: Path, run_goal: RunGoal
) -> None:
    goal = tmp_path / "bad.yaml"
    goal.write_text(
        "apiVersion: backlog.dev/v1alpha1\nkind: Goal\nmetadata: {name: x}\n"
        "spec:\n  repository: {url: 'https://user:hunter2-secret@example.com/o/r.git'}\n"
        "  task: {command: []}\n"
    )

    run = run_goal(goal)

    assert run.status == ExitCode.PERMANENT
    assert run.result["reason"] == "InvalidGoal"
    assert "task.command" in run.result["message"]
    assert "repository" in run.result["message"]
    assert "hunter2-secret" not in run.stdout + run.stderr


def test_free_form_goal_names_its_branch_after_the_goal(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    run = run_goal(
        write_goal(task_id=None, script="echo x > free.txt"),
        "--attempt-id",
        "attempt-goal-one-123abc",
    )

    assert run.status == 0, run.stderr
    assert run.result["branch"] == "backlog/goal-one-123abc"
    assert run.result["changedFiles"] == ["free.txt"]


def test_free_form_goal_that_changes_nothing_fails_clearly(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    run = run_goal(write_goal(task_id=None, script="true"))

    assert run.status == ExitCode.PERMANENT
    assert run.result["reason"] == "NoChanges"
    assert remote_branches(remote) == ["main"]


def test_weird_task_id_still_gives_a_valid_branch(
    tmp_path: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    from tests.support.gitrepos import make_remote

    backlog = "tasks:\n  - id: Fix..the.lock\n    title: t\n    ready: true\n"
    weird = make_remote(tmp_path, {".backlog/backlog.yaml": backlog}, name="weird.git")

    run = run_goal(write_goal(task_id="Fix..the.lock", url=str(weird), script="echo x > a"))

    assert run.status == 0, run.stderr
    branch = run.result["branch"]
    run_git("check-ref-format", "--branch", branch)
    assert remote_sha(weird, branch) == run.result["commit"]


def test_non_empty_workspace_is_refused(
    write_goal: WriteGoal, run_goal: RunGoal, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from backlog_operator.cli import main as backlogctl

    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "precious.txt").write_text("keep me")

    status = backlogctl(["run", str(write_goal()), "--workspace", str(workspace)])

    assert status == ExitCode.USAGE
    assert (workspace / "precious.txt").read_text() == "keep me"
    assert "not empty" in capfd.readouterr().err


def test_leviathan_backlog_path_works_unchanged(
    tmp_path: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    from tests.support.gitrepos import make_remote

    leviathan = (
        "# Leviathan backlog\n"
        "tasks:\n"
        "  - id: lev-001\n"
        "    title: First\n"
        "    ready: true\n"
        "    priority: critical\n"
        "    dependencies: []\n"
    )
    remote = make_remote(tmp_path, {".leviathan/backlog.yaml": leviathan}, name="lev.git")

    run = run_goal(
        write_goal(
            task_id="lev-001",
            url=str(remote),
            backlog={"path": ".leviathan/backlog.yaml", "taskId": "lev-001"},
        )
    )

    assert run.status == 0, run.stderr
    assert run.result["changedFiles"] == [".leviathan/backlog.yaml", "docs/guide.md"]
    written = show(remote, run.result["branch"], ".leviathan/backlog.yaml")
    # The file keeps its comment, order and `dependencies`; only the task's fields change.
    assert written.startswith(
        "# Leviathan backlog\ntasks:\n  - id: lev-001\n    title: First\n    ready: false\n"
        "    priority: critical\n    dependencies: []\n"
    )
    assert "    status: completed\n" in written
