"""`backlogctl run --dry-run`, and the access check before the task of every `backlogctl run`.

Real git remotes (a bare repository, and the same served over smart HTTP behind a token) and
the GitHub stand-in: a dry run leaves every ref of the remote as it was and writes nothing to the
forge; its diff holds the task's change and the backlog writeback, and applies to the base; a
bad or missing token fails before the task starts (its marker file is never made).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backlog_operator.api.result import ExitCode
from backlog_operator.worker.diff import file_diff
from tests.git.conftest import TOKEN, RunOutcome
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import GitHttpServer, run_git

WriteGoal = Callable[..., Path]
RunGoal = Callable[..., RunOutcome]


def refs(remote: Path) -> str:
    """Every ref of the bare remote with its sha: what a push would change."""
    return run_git("--git-dir", str(remote), "for-each-ref", "--format=%(objectname) %(refname)")


def github_spec(github: GitHubStandIn) -> dict[str, object]:
    return {"provider": "github", "apiBaseUrl": github.base_url, "repository": github.repository}


def diff_of(run: RunOutcome) -> str:
    """What the dry run printed before its result line."""
    return run.stdout[: run.stdout.rstrip("\n").rfind("\n") + 1]


@pytest.fixture
def http_remote(remote: Path, tmp_path: Path) -> Iterator[tuple[GitHttpServer, str]]:
    """The remote served over smart HTTP, pushes allowed, TOKEN required for everything."""
    with GitHttpServer(tmp_path, TOKEN) as server:
        yield server, server.url_for(remote)


def test_dry_run_pushes_nothing_and_prints_the_change_with_the_writeback(
    remote: Path,
    write_goal: WriteGoal,
    run_goal: RunGoal,
    github: GitHubStandIn,
    token_file: Path,
    tmp_path: Path,
) -> None:
    goal = write_goal(pull_request=github_spec(github))
    before = refs(remote)

    run = run_goal(goal, "--dry-run", "--token-file", str(token_file), "--attempt-id", "a-1")

    assert run.status == 0, run.stderr
    assert refs(remote) == before
    assert [r.method for r in github.requests] == ["GET"]  # the access check, no write
    assert github.open_pulls() == []
    result = run.result
    assert result["outcome"] == "published"
    assert result["changedFiles"] == [".backlog/backlog.yaml", "docs/guide.md"]
    assert result["message"].startswith("dry run, nothing pushed: a run would push 2 changed")
    assert "pullRequest" not in result
    diff = diff_of(run)
    assert "diff --git a/docs/guide.md b/docs/guide.md\nnew file mode 100644\n" in diff
    assert "--- /dev/null\n+++ b/docs/guide.md\n@@ -0,0 +1 @@\n+hello\n" in diff
    assert "diff --git a/.backlog/backlog.yaml b/.backlog/backlog.yaml\n" in diff
    assert "-    status: pending\n" in diff
    assert "+    status: completed\n" in diff
    assert "+    last_attempt_id: a-1\n" in diff
    # The diff is one `git apply` takes: the change a real run would push, against the base.
    checkout = tmp_path / "checkout"
    run_git("clone", "--quiet", str(remote), str(checkout))
    run_git("apply", "--check", "-", cwd=checkout, input=diff.encode())
    assert TOKEN not in run.stdout + run.stderr


def test_dry_run_over_http_leaves_the_remote_untouched(
    remote: Path,
    http_remote: tuple[GitHttpServer, str],
    write_goal: WriteGoal,
    run_goal: RunGoal,
    token_file: Path,
) -> None:
    _, url = http_remote
    before = refs(remote)

    run = run_goal(write_goal(url=url), "--dry-run", "--token-file", str(token_file))

    assert run.status == 0, run.stderr
    assert refs(remote) == before
    assert "+hello\n" in diff_of(run)
    assert "+    status: completed\n" in diff_of(run)


def test_dry_run_of_a_completed_task_prints_no_diff(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    run = run_goal(write_goal(task_id="done-task"), "--dry-run")

    assert run.status == 0, run.stderr
    assert run.result["outcome"] == "already_completed"
    assert diff_of(run) == ""


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_bad_token_fails_before_the_task_starts(
    write_goal: WriteGoal, run_goal: RunGoal, github: GitHubStandIn, tmp_path: Path, dry_run: bool
) -> None:
    marker = tmp_path / "task-ran"
    wrong = tmp_path / "wrong-token"
    wrong.write_text("ghp_wrongwrongwrong")
    goal = write_goal(script=f"touch {marker}", pull_request=github_spec(github))

    run = run_goal(goal, "--token-file", str(wrong), *(["--dry-run"] if dry_run else []))

    assert run.status == ExitCode.PERMANENT
    assert (run.result["reason"], run.result["step"]) == ("AuthenticationFailed", "clone")
    assert not marker.exists()
    assert "ghp_wrongwrongwrong" not in run.stdout + run.stderr


def test_a_missing_token_for_github_fails_before_the_task_starts(
    write_goal: WriteGoal,
    run_goal: RunGoal,
    github: GitHubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("BACKLOG_TOKEN_FILE", raising=False)
    marker = tmp_path / "task-ran"
    goal = write_goal(script=f"touch {marker}", pull_request=github_spec(github))

    run = run_goal(goal, "--dry-run")

    assert run.status == ExitCode.PERMANENT
    assert run.result["reason"] == "CredentialsUnavailable"
    assert "--token-file" in run.result["message"]
    assert not marker.exists()
    assert github.requests == []


def test_a_token_the_git_server_refuses_fails_before_the_task_starts(
    remote: Path,
    http_remote: tuple[GitHttpServer, str],
    write_goal: WriteGoal,
    run_goal: RunGoal,
    tmp_path: Path,
) -> None:
    _, url = http_remote
    marker = tmp_path / "task-ran"
    wrong = tmp_path / "wrong-token"
    wrong.write_text("wrong-token-0000")

    run = run_goal(
        write_goal(url=url, script=f"touch {marker}"), "--dry-run", "--token-file", str(wrong)
    )

    assert run.status == ExitCode.PERMANENT
    assert run.result["reason"] == "AuthenticationFailed"
    assert not marker.exists()


def test_an_unreachable_remote_fails_before_the_task_starts(
    write_goal: WriteGoal, run_goal: RunGoal, tmp_path: Path
) -> None:
    marker = tmp_path / "task-ran"
    goal = write_goal(url="http://127.0.0.1:9/nothing.git", script=f"touch {marker}")

    run = run_goal(goal, "--dry-run")

    assert run.status == ExitCode.RETRYABLE
    assert run.result["reason"] == "RepositoryUnreachable"
    assert not marker.exists()


# ----------------------------------------------------------------------- the diff's format


def test_file_diff_marks_a_missing_final_newline_a_mode_change_and_binary_files() -> None:
    text = "".join(file_diff("a.txt", "100644", "100755", b"one\ntwo", b"one\nthree"))
    binary = "".join(file_diff("b.bin", "100644", "000000", b"\0\1\2", b""))
    mode_only = "".join(file_diff("run.sh", "100644", "100755", b"x\n", b"x\n"))

    assert text == (
        "diff --git a/a.txt b/a.txt\nold mode 100644\nnew mode 100755\n"
        "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n one\n"
        "-two\n\\ No newline at end of file\n+three\n\\ No newline at end of file\n"
    )
    assert binary == (
        "diff --git a/b.bin b/b.bin\ndeleted file mode 100644\n"
        "Binary files a/b.bin and /dev/null differ\n"
    )
    assert mode_only == "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n"
