"""The git adapter against real repositories: a bare remote, real clones, real pushes.

Every test runs with HOME pointed at an empty folder and no system configuration, so nothing
(an identity, a credential helper, a hook) comes from the machine running the tests.
"""

from __future__ import annotations

import logging
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import git
import pytest

from backlog_operator.adapters import git as gitops
from backlog_operator.adapters.git import GitCredentials, GitError
from tests.support.gitrepos import (
    GitHttpServer,
    commit_to_remote,
    make_remote,
    protect_refs,
    remote_branches,
    remote_sha,
    run_git,
    silent_port,
    unused_port,
)

AUTHOR = {"author_name": "Backlog Bot", "author_email": "bot@example.com"}
TOKEN = "tok-3f9c2a-Secret-Value-0123456789"


pytestmark = pytest.mark.usefixtures("no_machine_config")


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare remote: three commits on main, a second branch, a .gitignore for *.log."""
    remote = make_remote(
        tmp_path,
        {
            "README.md": "# demo\n",
            ".gitignore": "*.log\n",
            "docs/guide.md": "guide\n",
            "old-name.txt": "to be renamed\n",
            "doomed.txt": "to be deleted\n",
        },
    )
    commit_to_remote(remote, "main", {"CHANGELOG.md": "one\n"}, "Second")
    commit_to_remote(remote, "main", {"CHANGELOG.md": "one\ntwo\n"}, "Third")
    commit_to_remote(remote, "other", {"other.txt": "x\n"}, "Other branch", start="main")
    return remote


@pytest.fixture
def clone(remote: Path, tmp_path: Path) -> git.Repo:
    """A fresh shallow clone of main."""
    return gitops.clone(str(remote), tmp_path / "work", "main")


def in_repo(repo: git.Repo, *args: str) -> str:
    """A git command's output in the clone (the fixtures' own git, not the adapter)."""
    return run_git(*args, cwd=Path(str(repo.working_tree_dir))).strip()


def write(repo: git.Repo, path: str, text: str) -> None:
    target = Path(str(repo.working_tree_dir)) / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------------- clone


@pytest.mark.parametrize("form", ["relative path", "absolute path", "file URL"])
def test_clone_is_shallow_and_single_branch(
    remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    monkeypatch.chdir(tmp_path)
    url = {
        "relative path": remote.name,
        "absolute path": str(remote),
        "file URL": remote.as_uri(),
    }[form]

    repo = gitops.clone(url, tmp_path / "work", "main")

    assert in_repo(repo, "rev-list", "--count", "HEAD") == "1"
    assert gitops.head_commit(repo) == remote_sha(remote, "main")
    refs = in_repo(repo, "for-each-ref", "--format=%(refname)").split()
    assert set(refs) - {"refs/remotes/origin/HEAD"} == {
        "refs/heads/main",
        "refs/remotes/origin/main",
    }
    with pytest.raises(RuntimeError):  # the other branch's commit was never fetched
        run_git("cat-file", "-e", str(remote_sha(remote, "other")), cwd=tmp_path / "work")
    assert (tmp_path / "work" / "CHANGELOG.md").read_text() == "one\ntwo\n"
    origin = in_repo(repo, "config", "remote.origin.url")
    assert origin in (str(remote), remote.as_uri())  # absolute, valid from anywhere


def test_clone_whole_history_when_depth_is_none(remote: Path, tmp_path: Path) -> None:
    repo = gitops.clone(str(remote), tmp_path / "work", "other", depth=None)

    assert in_repo(repo, "rev-list", "--count", "HEAD") == "4"
    assert in_repo(repo, "rev-parse", "--abbrev-ref", "HEAD") == "other"


def test_clone_of_a_missing_branch_is_branch_not_found(remote: Path, tmp_path: Path) -> None:
    with pytest.raises(GitError) as caught:
        gitops.clone(str(remote), tmp_path / "work", "no-such-branch")

    assert caught.value.reason == "BranchNotFound"
    assert caught.value.retryable is False
    assert "no-such-branch" in str(caught.value)
    assert not (tmp_path / "work").exists()


def test_clone_of_a_missing_repository_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(GitError) as caught:
        gitops.clone(str(tmp_path / "nowhere.git"), tmp_path / "work", "main")

    assert caught.value.reason == "RepositoryUnreachable"
    # No such repository: another attempt would find none either.
    assert caught.value.retryable is False


def test_clone_from_a_refused_port_is_unreachable_and_retryable(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{unused_port()}/remote.git"

    with pytest.raises(GitError) as caught:
        gitops.clone(url, tmp_path / "work", "main")

    assert caught.value.reason == "RepositoryUnreachable"
    assert caught.value.retryable is True


def test_clone_that_hangs_is_killed_at_the_timeout(tmp_path: Path) -> None:
    with silent_port() as port:
        started = time.monotonic()
        with pytest.raises(GitError) as caught:
            gitops.clone(f"http://127.0.0.1:{port}/r.git", tmp_path / "w", "main", timeout=1)

    assert time.monotonic() - started < 10
    assert caught.value.reason == "RepositoryUnreachable"
    assert caught.value.retryable is True
    assert "timed out" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://someone:ghp_s3cr3tValue@example.invalid/owner/repo.git",
        "https://ghp_s3cr3tValue@example.invalid/owner/repo.git",
    ],
)
def test_url_with_credentials_is_refused_without_echoing_them(url: str, tmp_path: Path) -> None:
    with pytest.raises(GitError) as caught:
        gitops.clone(url, tmp_path / "work", "main")
    with pytest.raises(GitError) as asked:
        gitops.remote_branch_sha(url, "main")

    for error in (caught.value, asked.value):
        assert error.reason == "CredentialsInUrl"
        assert error.retryable is False
        assert "s3cr3t" not in str(error)
        assert "s3cr3t" not in repr(error)
    assert not (tmp_path / "work").exists()


def test_remote_helper_url_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    with pytest.raises(GitError) as caught:
        gitops.clone(f"ext::sh -c touch% {marker}", tmp_path / "work", "main")

    assert caught.value.reason == "UnsupportedUrl"
    assert not marker.exists()


# ----------------------------------------------------------------------------- inspecting


def test_changed_paths_lists_every_kind_of_change(clone: git.Repo) -> None:
    root = Path(str(clone.working_tree_dir))
    assert gitops.changed_paths(clone) == []
    write(clone, "README.md", "# demo, edited\n")
    write(clone, "new/deeper/file.txt", "new\n")
    write(clone, "staged.txt", "staged\n")
    in_repo(clone, "add", "staged.txt")
    (root / "doomed.txt").unlink()
    (root / "old-name.txt").rename(root / "new-name.txt")
    in_repo(clone, "mv", "docs/guide.md", "docs/handbook.md")  # a rename git knows about
    write(clone, "build.log", "ignored\n")
    write(clone, "logs/run.log", "ignored too\n")

    assert gitops.changed_paths(clone) == [
        "README.md",
        "docs/guide.md",
        "docs/handbook.md",
        "doomed.txt",
        "new-name.txt",
        "new/deeper/file.txt",
        "old-name.txt",
        "staged.txt",
    ]


def test_read_file_at_returns_exact_bytes_or_none(clone: git.Repo) -> None:
    head = gitops.head_commit(clone)

    assert gitops.read_file_at(clone, head, "CHANGELOG.md") == b"one\ntwo\n"
    assert gitops.read_file_at(clone, "HEAD", "docs/guide.md") == b"guide\n"
    assert gitops.read_file_at(clone, "HEAD", "docs") is None  # a folder is not a file
    assert gitops.read_file_at(clone, "HEAD", "missing.txt") is None
    with pytest.raises(GitError) as caught:
        gitops.read_file_at(clone, "no-such-ref", "README.md")
    assert caught.value.reason == "RefNotFound"


# ----------------------------------------------------------------------------- committing


def test_commit_all_needs_no_git_identity(clone: git.Repo, no_machine_config: Path) -> None:
    # The premise: no configuration here names anybody.
    lookup = subprocess.run(["git", "config", "user.email"], capture_output=True, check=False)
    assert lookup.returncode == 1
    assert not any(no_machine_config.iterdir())
    base = gitops.head_commit(clone)
    write(clone, "docs/new.md", "new\n")
    (Path(str(clone.working_tree_dir)) / "doomed.txt").unlink()

    sha = gitops.commit_all(clone, "#42: add docs\n\nbody", **AUTHOR)

    assert sha == gitops.head_commit(clone) != base
    who = in_repo(clone, "log", "-1", "--format=%an|%ae|%cn|%ce|%P", sha)
    assert who == f"Backlog Bot|bot@example.com|Backlog Bot|bot@example.com|{base}"
    assert in_repo(clone, "log", "-1", "--format=%B", sha) == "#42: add docs\n\nbody"
    changed = in_repo(clone, "diff-tree", "--no-commit-id", "--name-status", "-r", sha)
    assert changed.splitlines() == ["A\tdocs/new.md", "D\tdoomed.txt"]
    assert gitops.changed_paths(clone) == []


def test_commit_all_with_a_single_changed_file(clone: git.Repo) -> None:
    write(clone, "README.md", "only this\n")

    sha = gitops.commit_all(clone, "one file", **AUTHOR)

    assert in_repo(clone, "diff-tree", "--no-commit-id", "--name-only", "-r", sha) == "README.md"


def test_commit_all_with_nothing_to_commit(clone: git.Repo) -> None:
    write(clone, "scratch.log", "ignored\n")

    with pytest.raises(GitError) as caught:
        gitops.commit_all(clone, "nothing", **AUTHOR)

    assert caught.value.reason == "NothingToCommit"


def test_create_branch_with_and_without_checkout(clone: git.Repo) -> None:
    base = gitops.head_commit(clone)

    gitops.create_branch(clone, "backlog/side")
    gitops.create_branch(clone, "backlog/work", checkout=True)

    assert in_repo(clone, "rev-parse", "backlog/side", "backlog/work") == f"{base}\n{base}"
    assert in_repo(clone, "symbolic-ref", "HEAD") == "refs/heads/backlog/work"
    with pytest.raises(GitError) as caught:
        gitops.create_branch(clone, "backlog/side")
    assert caught.value.reason == "BranchExists"


def test_mistakes_about_local_state_are_permanent(
    clone: git.Repo, remote: Path, tmp_path: Path
) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    attempts: dict[str, Callable[[], object]] = {
        "DestinationNotEmpty": lambda: gitops.clone(str(remote), busy, "main"),
        "RefNotFound": lambda: gitops.push(clone, "no-such-branch", "backlog/x"),
        "InvalidBranchName": lambda: gitops.create_branch(clone, "bad..name"),
    }

    for reason, attempt in attempts.items():
        with pytest.raises(GitError) as caught:
            attempt()
        assert (caught.value.reason, caught.value.retryable) == (reason, False)
    with pytest.raises(GitError) as caught:
        gitops.create_branch(clone, "backlog/y", at="no-such-commit")
    assert caught.value.reason == "RefNotFound"
    assert "backlog/x" not in remote_branches(remote)


# ------------------------------------------------------------------------------- pushing


def test_push_new_branch(clone: git.Repo, remote: Path) -> None:
    main_before = remote_sha(remote, "main")
    write(clone, "docs/new.md", "new\n")
    sha = gitops.commit_all(clone, "add docs", **AUTHOR)

    gitops.push(clone, sha, "backlog/docs-3f9c2a")

    assert remote_sha(remote, "backlog/docs-3f9c2a") == sha
    assert remote_sha(remote, "main") == main_before
    assert run_git("--git-dir", str(remote), "show", f"{sha}:docs/new.md") == "new\n"


def test_push_that_is_not_a_fast_forward(clone: git.Repo, remote: Path) -> None:
    moved = commit_to_remote(remote, "main", {"elsewhere.txt": "x\n"}, "Someone else")
    write(clone, "mine.txt", "mine\n")
    gitops.commit_all(clone, "mine", **AUTHOR)

    with pytest.raises(GitError) as caught:
        gitops.push(clone, "HEAD", "main")

    assert caught.value.reason == "NonFastForward"
    assert caught.value.retryable is True
    assert remote_sha(remote, "main") == moved


def test_push_with_lease(clone: git.Repo, remote: Path) -> None:
    base = gitops.head_commit(clone)
    old = commit_to_remote(remote, "backlog/x", {"a.txt": "earlier\n"}, "Earlier", start="main")
    write(clone, "a.txt", "later\n")
    sha = gitops.commit_all(clone, "later", **AUTHOR)

    with pytest.raises(GitError) as stale:
        gitops.push(clone, sha, "backlog/x", expect_remote_sha=base)
    gitops.push(clone, sha, "backlog/x", expect_remote_sha=old)

    assert stale.value.reason == "NonFastForward"
    assert stale.value.retryable is True
    assert remote_sha(remote, "backlog/x") == sha


def test_push_to_a_protected_branch_is_rejected(clone: git.Repo, remote: Path) -> None:
    protect_refs(remote, "refs/heads/main", "refs/heads/release/*")
    before = remote_sha(remote, "main")
    write(clone, "mine.txt", "mine\n")
    gitops.commit_all(clone, "mine", **AUTHOR)

    with pytest.raises(GitError) as caught:
        gitops.push(clone, "HEAD", "main")

    assert caught.value.reason == "PushRejected"
    assert caught.value.retryable is False
    assert "refs/heads/main is protected" in str(caught.value)  # the hook's own words
    assert remote_sha(remote, "main") == before
    with pytest.raises(GitError) as glob:
        gitops.push(clone, "HEAD", "release/1.0")
    assert glob.value.reason == "PushRejected"
    assert remote_branches(remote) == ["main", "other"]


def test_push_to_a_remote_that_does_not_exist(clone: git.Repo, tmp_path: Path) -> None:
    in_repo(clone, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    write(clone, "mine.txt", "mine\n")
    gitops.commit_all(clone, "mine", **AUTHOR)

    with pytest.raises(GitError) as caught:
        gitops.push(clone, "HEAD", "backlog/x")

    assert caught.value.reason == "RepositoryUnreachable"


def test_fetch_branch_and_remote_branch_sha(clone: git.Repo, remote: Path) -> None:
    other = remote_sha(remote, "other")

    assert gitops.fetch_branch(clone, "other") == other
    assert in_repo(clone, "rev-parse", "refs/remotes/origin/other") == other
    assert gitops.fetch_branch(clone, "no-such-branch") is None
    assert gitops.remote_branch_sha(clone, "other") == other
    assert gitops.remote_branch_sha(str(remote), "main") == remote_sha(remote, "main")
    assert gitops.remote_branch_sha(remote.as_uri(), "no-such-branch") is None


def test_commit_tree_supersedes_a_branch_without_force(clone: git.Repo, remote: Path) -> None:
    earlier = commit_to_remote(
        remote, "backlog/x-1", {"a.txt": "earlier attempt\n"}, "Earlier", start="main"
    )
    write(clone, "a.txt", "this attempt\n")
    ours = gitops.commit_all(clone, "this attempt", **AUTHOR)
    head = gitops.fetch_branch(clone, "backlog/x-1")
    assert head == earlier

    merge = gitops.commit_tree(
        clone, tree=ours, parents=[earlier, ours], message="Supersede", **AUTHOR
    )
    gitops.push(clone, merge, "backlog/x-1")  # no lease: must be a fast-forward

    assert remote_sha(remote, "backlog/x-1") == merge
    shown = run_git("--git-dir", str(remote), "log", "-1", "--format=%P|%T|%an|%cn", merge)
    tree = in_repo(clone, "rev-parse", f"{ours}^{{tree}}")
    assert shown.strip() == f"{earlier} {ours}|{tree}|Backlog Bot|Backlog Bot"
    assert gitops.head_commit(clone) == ours  # no local ref moved


# ------------------------------------------------------------------- credentials over HTTP


@pytest.fixture
def http_remote(remote: Path, tmp_path: Path) -> Iterator[tuple[GitHttpServer, str]]:
    """The remote served over smart HTTP, requiring TOKEN as the password."""
    with GitHttpServer(tmp_path, TOKEN) as server:
        yield server, server.url_for(remote)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret" / "token"
    path.parent.mkdir()
    path.write_text(TOKEN + "\n", encoding="utf-8")  # Secret keys often end with a newline
    return path


def test_clone_and_push_over_http_with_a_token_file(
    http_remote: tuple[GitHttpServer, str], token_file: Path, remote: Path, tmp_path: Path
) -> None:
    server, url = http_remote
    credentials = GitCredentials(token_file=token_file)

    repo = gitops.clone(url, tmp_path / "work", "main", credentials=credentials)
    write(repo, "docs/new.md", "new\n")
    sha = gitops.commit_all(repo, "add docs", **AUTHOR)
    gitops.push(repo, sha, "backlog/http", credentials=credentials)

    assert remote_sha(remote, "backlog/http") == sha
    assert gitops.remote_branch_sha(url, "backlog/http", credentials=credentials) == sha
    assert server.refused >= 1  # the server did ask, so the token came from the helper
    assert in_repo(repo, "config", "remote.origin.url") == url
    git_dir = tmp_path / "work" / ".git"
    for path in git_dir.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in repr(credentials.environment(url))


def test_token_is_read_when_git_asks_for_it(
    http_remote: tuple[GitHttpServer, str], tmp_path: Path
) -> None:
    server, url = http_remote
    token_file = tmp_path / "token"
    credentials = GitCredentials(token_file=token_file)
    token_file.write_text(TOKEN, encoding="utf-8")
    repo = gitops.clone(url, tmp_path / "work", "main", credentials=credentials)

    # The Secret is rotated while the worker runs: the next command must use the new token.
    server.token = "rotated-Token-987654321"
    token_file.write_text(server.token, encoding="utf-8")
    gitops.push(repo, "HEAD", "backlog/after-rotation", credentials=credentials)

    assert gitops.remote_branch_sha(repo, "backlog/after-rotation", credentials=credentials)


def test_missing_repository_over_http_is_not_retried(
    http_remote: tuple[GitHttpServer, str], token_file: Path, tmp_path: Path
) -> None:
    _, url = http_remote
    credentials = GitCredentials(token_file=token_file)

    with pytest.raises(GitError) as caught:
        gitops.clone(
            url.replace("remote.git", "nope.git"), tmp_path / "w", "main", credentials=credentials
        )

    assert (caught.value.reason, caught.value.retryable) == ("RepositoryUnreachable", False)


def test_wrong_token_fails_at_once_without_a_prompt(
    http_remote: tuple[GitHttpServer, str], tmp_path: Path
) -> None:
    _, url = http_remote
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong-token-0000", encoding="utf-8")

    started = time.monotonic()
    with pytest.raises(GitError) as caught:
        gitops.clone(url, tmp_path / "work", "main", credentials=GitCredentials(wrong))

    assert time.monotonic() - started < 10
    assert caught.value.reason == "AuthenticationFailed"
    assert caught.value.retryable is False
    assert "wrong-token-0000" not in str(caught.value)


def test_no_credentials_fails_without_a_prompt(
    http_remote: tuple[GitHttpServer, str], tmp_path: Path
) -> None:
    _, url = http_remote

    with pytest.raises(GitError) as caught:
        gitops.clone(url, tmp_path / "w1", "main")
    with pytest.raises(GitError) as anonymous:
        gitops.clone(url, tmp_path / "w2", "main", credentials=GitCredentials(token_file=None))

    assert caught.value.reason == anonymous.value.reason == "AuthenticationFailed"
    assert "terminal prompts disabled" in str(caught.value)  # git's words for GIT_TERMINAL_PROMPT=0


def test_callers_own_helper_and_askpass_are_never_asked(
    http_remote: tuple[GitHttpServer, str],
    tmp_path: Path,
    no_machine_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, url = http_remote
    asked = tmp_path / "asked"
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\necho askpass >> '{asked}'\necho '{TOKEN}'\n")
    askpass.chmod(0o755)
    monkeypatch.setenv("GIT_ASKPASS", str(askpass))
    monkeypatch.setenv("SSH_ASKPASS", str(askpass))
    helper = f"!f() {{ echo helper >> '{asked}'; echo username=x; echo password={TOKEN}; }}; f"
    (no_machine_config / ".gitconfig").write_text(f'[credential]\n\thelper = "{helper}"\n')

    with pytest.raises(GitError) as anonymous:
        gitops.clone(url, tmp_path / "w1", "main", credentials=GitCredentials(token_file=None))
    assert anonymous.value.reason == "AuthenticationFailed"
    assert not asked.exists()

    # Without GitCredentials too: a user's configuration is never read (a task running as the
    # same user could have written it), and askpass, a prompt, is never run.
    with pytest.raises(GitError) as without:
        gitops.clone(url, tmp_path / "w2", "main")
    assert without.value.reason == "AuthenticationFailed"
    assert not asked.exists()


def test_unreadable_token_file_is_a_permanent_error(
    http_remote: tuple[GitHttpServer, str], tmp_path: Path
) -> None:
    _, url = http_remote

    with pytest.raises(GitError) as caught:
        gitops.clone(url, tmp_path / "w", "main", credentials=GitCredentials(tmp_path / "none"))

    assert caught.value.reason == "CredentialsUnavailable"
    assert caught.value.retryable is False


def test_token_appears_in_no_error_log_or_output(
    http_remote: tuple[GitHttpServer, str],
    token_file: Path,
    remote: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    server, url = http_remote
    credentials = GitCredentials(token_file=token_file)
    protect_refs(remote, "refs/heads/main")
    caplog.set_level(logging.DEBUG, logger="git")
    caplog.set_level(logging.DEBUG, logger="backlog_operator")
    errors: list[GitError] = []

    repo = gitops.clone(url, tmp_path / "work", "main", credentials=credentials)
    write(repo, "mine.txt", "mine\n")
    gitops.commit_all(repo, "mine", **AUTHOR)
    gitops.push(repo, "HEAD", "backlog/ok", credentials=credentials)
    attempts: list[Callable[[], object]] = [
        lambda: gitops.push(repo, "HEAD", "main", credentials=credentials),  # hook refuses
        lambda: gitops.clone(url, tmp_path / "w2", "no-such", credentials=credentials),
        lambda: gitops.fetch_branch(repo, "no-such", credentials=credentials),
        lambda: gitops.push(repo, "HEAD~0", "other", credentials=credentials),  # not a ff
    ]
    for attempt in attempts:
        try:
            attempt()
        except GitError as error:
            errors.append(error)
    server.token = "another-Token-123456"  # now TOKEN is wrong: an authentication failure
    try:
        gitops.push(repo, "HEAD", "backlog/late", credentials=credentials)
    except GitError as error:
        errors.append(error)

    assert [error.reason for error in errors] == [
        "PushRejected",
        "BranchNotFound",
        "NonFastForward",
        "AuthenticationFailed",
    ]
    assert any("git.cmd" in record.name for record in caplog.records)  # the scan saw git's log
    texts = [
        text
        for error in errors
        for text in (str(error), repr(error), error.detail, *map(str, error.args))
    ]
    texts += ["".join(traceback.format_exception(error)) for error in errors]
    texts += [record.getMessage() for record in caplog.records]
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]
    leaks = [text for text in texts if TOKEN in text]
    assert leaks == []
