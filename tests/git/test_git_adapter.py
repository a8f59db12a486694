"""The git adapter against real repositories: a bare remote, real clones, real pushes.

Every test runs with HOME pointed at an empty folder and no system configuration, so nothing
(an identity, a credential helper, a hook) comes from the machine running the tests.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
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


def commit_everything(repo: git.Repo, message: str) -> str:
    """Commit the whole work tree of the clone with the fixtures' git; the new sha.

    For tests of pushing and fetching, which need a commit to move and nothing more.
    """
    in_repo(repo, "add", "--all")
    identity = ("-c", "user.name=Fixture Committer", "-c", "user.email=fixture@example.com")
    in_repo(repo, *identity, "commit", "--quiet", "--no-verify", "-m", message)
    return in_repo(repo, "rev-parse", "HEAD")


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


def test_head_commit_follows_head_however_it_is_stored(clone: git.Repo) -> None:
    first = in_repo(clone, "rev-parse", "HEAD")
    assert gitops.head_commit(clone) == first  # a fresh clone: read from its files
    write(clone, "second.txt", "second\n")
    second = commit_everything(clone, "second")
    assert gitops.head_commit(clone) == second  # the branch moved
    in_repo(clone, "pack-refs", "--all")
    assert not (Path(clone.git_dir) / "refs" / "heads" / "main").exists()
    assert gitops.head_commit(clone) == second  # packed: git is asked
    in_repo(clone, "checkout", "--quiet", "--detach", first)
    assert gitops.head_commit(clone) == first  # detached


# ------------------------------------------------------------------------------ the sealed clone

SECRET = "outside-Secret-7d1e0c"


@pytest.fixture
def private(clone: git.Repo, tmp_path: Path) -> Path:
    """The private folder the clone's git metadata was sealed into, before any tampering."""
    folder = tmp_path / "private"
    gitops.seal(clone, folder)
    return folder


@pytest.fixture
def sealed(private: Path, clone: git.Repo) -> git.Repo:
    """The sealed metadata over the clone's work tree, as `publish` opens it."""
    return gitops.open_sealed(private, work_tree(clone))


def work_tree(repo: git.Repo) -> Path:
    return Path(str(repo.working_tree_dir))


def sealed_git(private: Path, *args: str, check: bool = True) -> str:
    """A command of the fixtures' git on the sealed metadata alone (no work tree)."""
    return run_git("--git-dir", str(private / gitops.SEALED_GIT_DIR), *args, check=check)


def changes(repo: git.Repo, old: str, new: str) -> list[tuple[str, str, str]]:
    return [(c.path, c.old_mode, c.new_mode) for c in gitops.tree_changes(repo, old, new)]


def all_objects(git_dir: Path) -> str:
    """Every object of a repository, contents included (objects on disk are compressed)."""
    return run_git("--git-dir", str(git_dir), "cat-file", "--batch-all-objects", "--batch")


def decoy_repository(tmp_path: Path) -> Path:
    """A repository that, were it read instead of the sealed one, would ignore every file."""
    fake = tmp_path / "fake"
    run_git("init", "--quiet", str(fake))
    (fake / ".git" / "info").mkdir(exist_ok=True)
    (fake / ".git" / "info" / "exclude").write_text("*\n")
    return fake


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 (git's name)


def test_seal_copies_the_metadata_without_hooks_and_pins_attributes(
    clone: git.Repo, tmp_path: Path
) -> None:
    hook = Path(clone.git_dir) / "hooks" / "pre-commit"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)

    private = tmp_path / "private"
    sealed_dir = gitops.seal(clone, private)

    assert sealed_dir == private / gitops.SEALED_GIT_DIR
    assert not (sealed_dir / "hooks").exists()
    assert hook.exists()  # the clone keeps its own
    assert (sealed_dir / "info" / "attributes").read_text().splitlines() == [
        "* -text !eol -filter -ident -working-tree-encoding -diff -merge"
    ]
    assert sealed_git(private, "config", "gc.auto").strip() == "0"
    assert sealed_git(private, "rev-parse", "HEAD").strip() == gitops.head_commit(clone)
    assert (sealed_dir / "index").read_bytes() == (Path(clone.git_dir) / "index").read_bytes()


@pytest.mark.parametrize("tampering", ["gitdir file", "symlink", "deleted", "rewritten"])
def test_a_replaced_git_folder_changes_nothing_for_snapshot(
    clone: git.Repo, private: Path, tmp_path: Path, tampering: str
) -> None:
    base = gitops.head_commit(clone)
    root = work_tree(clone)
    fake = decoy_repository(tmp_path)
    if tampering == "rewritten":
        (root / ".git" / "info").mkdir(exist_ok=True)
        (root / ".git" / "info" / "exclude").write_text("*\n")
        (root / ".git" / "index").unlink()
    else:
        shutil.rmtree(root / ".git")
    if tampering == "gitdir file":
        (root / ".git").write_text(f"gitdir: {fake / '.git'}\n")
    elif tampering == "symlink":
        (root / ".git").symlink_to(fake / ".git")
    write(clone, "task.txt", "task\n")

    repo = gitops.open_sealed(private, root)
    tree = gitops.snapshot(repo)

    assert changes(repo, base, tree) == [("task.txt", "000000", "100644")]
    assert gitops.head_commit(repo) == base
    assert all_objects(fake / ".git") == ""  # nothing was written there either


def test_sealed_commands_ignore_git_variables_they_inherit(
    clone: git.Repo, private: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = gitops.head_commit(clone)
    fake = decoy_repository(tmp_path)
    # What a surrounding git hook or alias would leave in the environment of `backlogctl run`.
    for name, value in {
        "GIT_DIR": fake / ".git",
        "GIT_WORK_TREE": fake,
        "GIT_INDEX_FILE": fake / ".git" / "index",
        "GIT_OBJECT_DIRECTORY": fake / ".git" / "objects",
        "GIT_COMMON_DIR": fake / ".git",
    }.items():
        monkeypatch.setenv(name, str(value))
    write(clone, "task.txt", "task\n")

    repo = gitops.open_sealed(private, work_tree(clone))
    tree = gitops.snapshot(repo)

    assert changes(repo, base, tree) == [("task.txt", "000000", "100644")]
    assert all_objects(fake / ".git") == ""
    assert not (fake / ".git" / "index").exists()


def test_open_sealed_refuses_a_work_tree_that_is_no_folder(
    clone: git.Repo, private: Path, tmp_path: Path
) -> None:
    root = work_tree(clone)
    moved = tmp_path / "moved"
    root.rename(moved)
    for kind in ("missing", "symlink", "file"):
        if kind == "symlink":
            root.symlink_to(moved, target_is_directory=True)
        elif kind == "file":
            root.unlink()
            root.write_text("not a folder\n")
        with pytest.raises(GitError) as caught:
            gitops.open_sealed(private, root)
        assert (caught.value.reason, caught.value.retryable) == ("InvalidWorkspace", False), kind
        assert str(root) in str(caught.value)

    assert gitops.open_sealed(private, moved).working_tree_dir is not None  # a folder is fine


def test_open_sealed_refuses_a_folder_where_nothing_was_sealed(
    clone: git.Repo, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(GitError) as caught:
        gitops.open_sealed(empty, work_tree(clone))

    assert (caught.value.reason, caught.value.retryable) == ("InvalidWorkspace", False)
    assert "nothing was sealed" in str(caught.value)


# ------------------------------------------------------------------------------------ snapshot


def test_snapshot_takes_every_kind_of_change(clone: git.Repo, sealed: git.Repo) -> None:
    base = gitops.head_commit(clone)
    root = work_tree(clone)
    write(clone, "README.md", "# demo, edited\n")
    write(clone, "new/deeper/file.txt", "new\n")
    (root / "doomed.txt").unlink()
    (root / "old-name.txt").rename(root / "new-name.txt")
    (root / "docs" / "guide.md").chmod(0o755)

    tree = gitops.snapshot(sealed)

    assert changes(sealed, base, tree) == [
        ("README.md", "100644", "100644"),
        ("docs/guide.md", "100644", "100755"),
        ("doomed.txt", "100644", "000000"),
        ("new-name.txt", "000000", "100644"),
        ("new/deeper/file.txt", "000000", "100644"),
        ("old-name.txt", "100644", "000000"),
    ]
    renamed = gitops.entry_at(sealed, tree, "new-name.txt")
    assert renamed is not None
    assert gitops.read_blob(sealed, renamed.sha) == b"to be renamed\n"
    assert gitops.head_commit(sealed) == base  # a snapshot moves no ref
    assert gitops.snapshot(sealed) == tree  # and is the same tree when taken again


def test_snapshot_stores_a_link_as_a_link_never_followed(
    clone: git.Repo, sealed: git.Repo, private: Path, tmp_path: Path
) -> None:
    base = gitops.head_commit(clone)
    root = work_tree(clone)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    (root / "README.md").unlink()
    (root / "README.md").symlink_to(outside / "secret.txt")  # a tracked file became a link
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "leak-dir").symlink_to(outside, target_is_directory=True)

    tree = gitops.snapshot(sealed)

    assert changes(sealed, base, tree) == [
        ("README.md", "100644", "120000"),
        ("leak-dir", "000000", "120000"),
        ("leak.txt", "000000", "120000"),
    ]
    link = gitops.entry_at(sealed, tree, "leak.txt")
    assert link is not None
    assert (link.mode, link.is_file) == ("120000", False)
    assert gitops.read_blob(sealed, link.sha) == str(outside / "secret.txt").encode()
    assert "leak-dir/secret.txt" not in gitops.tree_paths(sealed, tree)
    assert SECRET not in all_objects(private / gitops.SEALED_GIT_DIR)


def test_snapshot_leaves_out_new_ignored_files_but_not_tracked_ones(
    clone: git.Repo, sealed: git.Repo
) -> None:
    base = gitops.head_commit(clone)
    write(clone, ".gitignore", "*.log\ndocs/\ndoomed.txt\n")
    write(clone, "docs/guide.md", "tracked, now ignored, changed\n")
    write(clone, "docs/new.md", "new and ignored\n")
    write(clone, "build.log", "new and ignored\n")
    write(clone, "keep.txt", "new\n")
    (work_tree(clone) / "doomed.txt").unlink()

    tree = gitops.snapshot(sealed)

    assert changes(sealed, base, tree) == [
        (".gitignore", "100644", "100644"),
        ("docs/guide.md", "100644", "100644"),
        ("doomed.txt", "100644", "000000"),
        ("keep.txt", "000000", "100644"),
    ]


def test_snapshot_ignores_the_users_own_ignore_file(
    clone: git.Repo, sealed: git.Repo, no_machine_config: Path
) -> None:
    base = gitops.head_commit(clone)
    ignore = no_machine_config / ".config" / "git" / "ignore"  # git reads it unasked
    ignore.parent.mkdir(parents=True)
    ignore.write_text("*.md\n")
    write(clone, "notes.md", "new\n")

    tree = gitops.snapshot(sealed)

    assert changes(sealed, base, tree) == [("notes.md", "000000", "100644")]


def test_snapshot_leaves_out_a_new_fifo(clone: git.Repo, sealed: git.Repo) -> None:
    base = gitops.head_commit(clone)
    os.mkfifo(work_tree(clone) / "pipe")
    write(clone, "keep.txt", "new\n")

    tree = gitops.snapshot(sealed)

    assert changes(sealed, base, tree) == [("keep.txt", "000000", "100644")]


def test_snapshot_refuses_a_fifo_where_a_tracked_file_was(
    clone: git.Repo, sealed: git.Repo
) -> None:
    readme = work_tree(clone) / "README.md"
    readme.unlink()
    os.mkfifo(readme)

    with pytest.raises(GitError) as caught:
        gitops.snapshot(sealed)

    assert (caught.value.reason, caught.value.retryable) == ("UnsupportedFile", False)
    assert str(caught.value).startswith("README.md: ")


def test_snapshot_makes_a_nested_repository_a_gitlink(clone: git.Repo, sealed: git.Repo) -> None:
    base = gitops.head_commit(clone)
    nested = work_tree(clone) / "vendor" / "lib"
    nested.mkdir(parents=True)
    run_git("init", "--quiet", str(nested))
    (nested / "lib.c").write_text("int x;\n")
    run_git("add", "lib.c", cwd=nested)
    run_git("commit", "--quiet", "-m", "nested", cwd=nested)
    nested_head = run_git("rev-parse", "HEAD", cwd=nested).strip()
    write(clone, "README.md", "changed\n")

    tree = gitops.snapshot(sealed)

    found = gitops.tree_changes(sealed, base, tree)
    assert [(c.path, c.old_mode, c.new_mode, c.is_gitlink) for c in found] == [
        ("README.md", "100644", "100644", False),
        ("vendor/lib", "000000", "160000", True),
    ]
    assert gitops.entry_at(sealed, tree, "vendor/lib") == gitops.TreeEntry(
        "160000", "commit", nested_head, None
    )
    assert "vendor/lib/lib.c" not in gitops.tree_paths(sealed, tree)


def test_snapshot_refuses_a_nested_repository_without_a_commit(
    clone: git.Repo, sealed: git.Repo
) -> None:
    run_git("init", "--quiet", str(work_tree(clone) / "scratch"))

    with pytest.raises(GitError) as caught:
        gitops.snapshot(sealed)

    assert (caught.value.reason, caught.value.retryable) == ("SubmoduleChange", False)
    assert str(caught.value).startswith("scratch: ")


# ------------------------------------------------------------------------ trees and commits


def test_tree_changes_between_commits_and_trees(clone: git.Repo, sealed: git.Repo) -> None:
    base = gitops.head_commit(clone)
    base_tree = in_repo(clone, "rev-parse", "HEAD^{tree}")
    write(clone, "README.md", "changed\n")
    write(clone, "added.txt", "added\n")
    (work_tree(clone) / "doomed.txt").unlink()

    tree = gitops.snapshot(sealed)

    found = gitops.tree_changes(sealed, base, tree)
    assert [change[:3] for change in found] == [
        ("README.md", "100644", "100644"),
        ("added.txt", "000000", "100644"),
        ("doomed.txt", "100644", "000000"),
    ]
    # The new side's object: the blob of "changed\n", as `git hash-object` names it.
    assert found[0].new_sha == hashlib.sha1(b"blob 8\0changed\n").hexdigest()  # noqa: S324
    assert changes(sealed, tree, base_tree) == [
        ("README.md", "100644", "100644"),
        ("added.txt", "100644", "000000"),
        ("doomed.txt", "000000", "100644"),
    ]
    assert gitops.tree_changes(sealed, "HEAD", base_tree) == []
    with pytest.raises(GitError) as caught:
        gitops.tree_changes(sealed, "no-such-ref", tree)
    assert caught.value.reason == "RefNotFound"


def test_tree_paths_lists_files_and_links_but_no_folders(sealed: git.Repo) -> None:
    base_files = [".gitignore", "CHANGELOG.md", "README.md", "docs/guide.md", "doomed.txt"]
    base_files.append("old-name.txt")
    link = gitops.put_file(
        sealed, "deep/er/link", gitops.write_blob(sealed, b"../README.md"), "120000"
    )

    assert gitops.tree_paths(sealed, "HEAD") == base_files
    assert gitops.tree_paths(sealed, link) == sorted([*base_files, "deep/er/link"])


def test_write_blob_stores_bytes_exactly_whatever_the_attributes_say(
    clone: git.Repo, sealed: git.Repo, private: Path
) -> None:
    data = b"line one\r\nNUL \x00 in the middle\r\nlowercase\n" + bytes(range(256))
    write(clone, ".gitattributes", "* text eol=crlf filter=x\n")
    sealed_git(private, "config", "filter.x.clean", "tr a-z A-Z")
    sealed_git(private, "config", "filter.x.required", "true")
    (work_tree(clone) / "crlf.txt").write_bytes(data)

    sha = gitops.write_blob(sealed, data)
    tree = gitops.snapshot(sealed)
    # Even in the task's own clone, where nothing pins the attributes and the filter is set.
    in_repo(clone, "config", "filter.x.clean", "tr a-z A-Z")
    unsealed = gitops.write_blob(clone, data)

    assert sha == unsealed == blob_sha(data)
    assert gitops.read_blob(sealed, sha) == data
    assert gitops.entry_at(sealed, tree, "crlf.txt") == gitops.TreeEntry(
        "100644", "blob", sha, len(data)
    )
    assert list(Path(sealed.git_dir).glob("blob-*")) == []  # the scratch file is gone


def test_put_file_changes_only_the_index(clone: git.Repo, sealed: git.Repo) -> None:
    base = gitops.head_commit(clone)
    readme = work_tree(clone) / "README.md"
    before = readme.stat()
    blob = gitops.write_blob(sealed, b"#!/bin/sh\necho new\n")

    gitops.put_file(sealed, "README.md", blob, "100755")
    tree = gitops.put_file(sealed, "new/dir/file.txt", blob)

    assert gitops.entry_at(sealed, tree, "README.md") == gitops.TreeEntry(
        "100755", "blob", blob, 19
    )
    assert gitops.entry_at(sealed, tree, "new/dir/file.txt") == gitops.TreeEntry(
        "100644", "blob", blob, 19
    )
    assert changes(sealed, base, tree) == [
        ("README.md", "100644", "100755"),
        ("new/dir/file.txt", "000000", "100644"),
    ]
    assert readme.read_text() == "# demo\n"
    assert (readme.stat().st_mode, readme.stat().st_mtime_ns) == (
        before.st_mode,
        before.st_mtime_ns,
    )
    assert not (work_tree(clone) / "new").exists()


def test_commit_tree_needs_no_git_identity(
    clone: git.Repo, sealed: git.Repo, private: Path, no_machine_config: Path
) -> None:
    # The premise: no configuration names anybody, and git may not guess (useConfigOnly).
    sealed_git(private, "config", "user.useConfigOnly", "true")
    assert sealed_git(private, "config", "user.email", check=False) == ""
    bare_env = {"PATH": os.environ["PATH"], "HOME": str(no_machine_config)}
    guess = subprocess.run(
        [
            "git",
            "--git-dir",
            str(private / gitops.SEALED_GIT_DIR),
            "commit-tree",
            "-m",
            "x",
            "HEAD^{tree}",
        ],
        capture_output=True,
        env={**bare_env, "GIT_CONFIG_NOSYSTEM": "1"},
        check=False,
    )
    assert guess.returncode != 0
    base = gitops.head_commit(clone)
    write(clone, "docs/new.md", "new\n")
    tree = gitops.snapshot(sealed)
    message = "#42: add docs\n\n# not a comment\n  indented\nbody"

    sha = gitops.commit_tree(sealed, tree=tree, parents=[base], message=message, **AUTHOR)

    raw = sealed_git(private, "cat-file", "commit", sha)
    headers, _, body = raw.partition("\n\n")
    assert body == message + "\n"
    fields = dict(line.split(" ", 1) for line in headers.splitlines())
    assert fields["tree"] == tree
    assert fields["parent"] == base
    assert fields["author"].startswith("Backlog Bot <bot@example.com> ")
    assert fields["committer"].startswith("Backlog Bot <bot@example.com> ")
    assert gitops.head_commit(sealed) == base  # no ref moved


def test_commit_tree_takes_a_tree_or_a_commit(
    clone: git.Repo, sealed: git.Repo, private: Path
) -> None:
    base = gitops.head_commit(clone)
    base_tree = in_repo(clone, "rev-parse", "HEAD^{tree}")
    other = gitops.put_file(sealed, "x.txt", gitops.write_blob(sealed, b"x\n"))

    from_commit = gitops.commit_tree(sealed, tree=base, parents=[], message="m", **AUTHOR)
    merge = gitops.commit_tree(
        sealed, tree=other, parents=[base, from_commit], message="m", **AUTHOR
    )

    assert in_repo(clone, "rev-parse", "HEAD") == base  # the clone saw nothing of this
    shown = sealed_git(private, "log", "--no-walk=unsorted", "--format=%T|%P", merge, from_commit)
    assert shown.splitlines() == [f"{other}|{base} {from_commit}", f"{base_tree}|"]
    with pytest.raises(GitError) as caught:
        gitops.commit_tree(sealed, tree="no-such-tree", parents=[], message="m", **AUTHOR)
    assert caught.value.reason == "RefNotFound"


def test_entry_at_takes_a_tree_as_well_as_a_commit(clone: git.Repo, sealed: git.Repo) -> None:
    base = gitops.head_commit(clone)
    base_tree = in_repo(clone, "rev-parse", "HEAD^{tree}")
    guide = gitops.TreeEntry("100644", "blob", in_repo(clone, "rev-parse", "HEAD:docs/guide.md"), 6)
    blob = gitops.write_blob(sealed, b"changed\n")
    tree = gitops.put_file(sealed, "docs/guide.md", blob)

    assert gitops.entry_at(sealed, base, "docs/guide.md") == guide
    assert gitops.entry_at(sealed, base_tree, "docs/guide.md") == guide
    assert gitops.entry_at(sealed, tree, "docs/guide.md") == gitops.TreeEntry(
        "100644", "blob", blob, 8
    )
    folder = gitops.entry_at(sealed, tree, "docs")
    assert folder is not None
    assert (folder.mode, folder.kind, folder.size) == ("040000", "tree", None)
    assert gitops.entry_at(sealed, tree, "missing.txt") is None
    with pytest.raises(GitError) as caught:
        gitops.entry_at(sealed, blob, "docs/guide.md")  # a blob is neither
    assert caught.value.reason == "RefNotFound"


def test_mistakes_about_local_state_are_permanent(
    clone: git.Repo, remote: Path, tmp_path: Path
) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    attempts: list[tuple[str, Callable[[], object]]] = [
        ("DestinationNotEmpty", lambda: gitops.clone(str(remote), busy, "main")),
        ("RefNotFound", lambda: gitops.push(clone, "no-such-branch", "backlog/x")),
        ("InvalidBranchName", lambda: gitops.push(clone, "HEAD", "bad..name")),
        ("InvalidBranchName", lambda: gitops.fetch_branch(clone, "bad..name")),
        ("RefNotFound", lambda: gitops.tree_paths(clone, "no-such-commit")),
    ]

    for reason, attempt in attempts:
        with pytest.raises(GitError) as caught:
            attempt()
        assert (caught.value.reason, caught.value.retryable) == (reason, False)
    assert remote_branches(remote) == ["main", "other"]


# ------------------------------------------------------------------------------- pushing


def test_push_new_branch(clone: git.Repo, remote: Path) -> None:
    main_before = remote_sha(remote, "main")
    write(clone, "docs/new.md", "new\n")
    sha = commit_everything(clone, "add docs")

    gitops.push(clone, sha, "backlog/docs-3f9c2a")

    assert remote_sha(remote, "backlog/docs-3f9c2a") == sha
    assert remote_sha(remote, "main") == main_before
    assert run_git("--git-dir", str(remote), "show", f"{sha}:docs/new.md") == "new\n"


def test_push_that_is_not_a_fast_forward(clone: git.Repo, remote: Path) -> None:
    moved = commit_to_remote(remote, "main", {"elsewhere.txt": "x\n"}, "Someone else")
    write(clone, "mine.txt", "mine\n")
    commit_everything(clone, "mine")

    with pytest.raises(GitError) as caught:
        gitops.push(clone, "HEAD", "main")

    assert caught.value.reason == "NonFastForward"
    assert caught.value.retryable is True
    assert remote_sha(remote, "main") == moved


def test_push_with_lease(clone: git.Repo, remote: Path) -> None:
    base = gitops.head_commit(clone)
    old = commit_to_remote(remote, "backlog/x", {"a.txt": "earlier\n"}, "Earlier", start="main")
    write(clone, "a.txt", "later\n")
    sha = commit_everything(clone, "later")

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
    commit_everything(clone, "mine")

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
    commit_everything(clone, "mine")

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


def test_push_and_fetch_go_to_the_given_url_whatever_origin_says(
    clone: git.Repo, remote: Path, tmp_path: Path
) -> None:
    elsewhere = make_remote(tmp_path, {"z.txt": "elsewhere\n"}, name="elsewhere.git")
    commit_to_remote(elsewhere, "other", {"y.txt": "y\n"}, "Elsewhere's other", start="main")
    elsewhere_before = refs_of(elsewhere)
    private = tmp_path / "private"
    sealed_dir = gitops.seal(clone, private)
    for config in (["-C", str(work_tree(clone))], ["--git-dir", str(sealed_dir)]):
        run_git(*config, "config", "remote.origin.url", str(elsewhere))
        run_git(*config, "config", "remote.origin.pushurl", str(elsewhere))
    repo = gitops.open_sealed(private, work_tree(clone))
    write(clone, "docs/new.md", "new\n")
    base = gitops.head_commit(repo)
    commit = gitops.commit_tree(
        repo, tree=gitops.snapshot(repo), parents=[base], message="mine", **AUTHOR
    )

    gitops.push(repo, commit, "backlog/x", url=str(remote))
    fetched = gitops.fetch_branch(repo, "other", url=remote.as_uri())
    missing = gitops.fetch_branch(repo, "z-only-elsewhere", url=str(remote))

    assert remote_sha(remote, "backlog/x") == commit
    assert fetched == remote_sha(remote, "other") != remote_sha(elsewhere, "other")
    assert missing is None
    assert refs_of(elsewhere) == elsewhere_before
    with pytest.raises(RuntimeError):  # not a single object of ours reached it
        run_git("--git-dir", str(elsewhere), "cat-file", "-e", commit)


def test_push_without_url_goes_to_origins_url_not_its_pushurl(
    clone: git.Repo, remote: Path, tmp_path: Path
) -> None:
    elsewhere = make_remote(tmp_path, {"z.txt": "elsewhere\n"}, name="elsewhere.git")
    elsewhere_before = refs_of(elsewhere)
    in_repo(clone, "config", "remote.origin.pushurl", str(elsewhere))
    write(clone, "docs/new.md", "new\n")
    sha = commit_everything(clone, "add docs")

    gitops.push(clone, sha, "backlog/x")

    assert remote_sha(remote, "backlog/x") == sha
    assert refs_of(elsewhere) == elsewhere_before


def refs_of(bare: Path) -> str:
    return run_git("--git-dir", str(bare), "for-each-ref", "--format=%(objectname) %(refname)")


def test_commit_tree_supersedes_a_branch_without_force(clone: git.Repo, remote: Path) -> None:
    earlier = commit_to_remote(
        remote, "backlog/x-1", {"a.txt": "earlier attempt\n"}, "Earlier", start="main"
    )
    write(clone, "a.txt", "this attempt\n")
    ours = commit_everything(clone, "this attempt")
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
    sha = commit_everything(repo, "add docs")
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
    commit_everything(repo, "mine")
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
    # The scan saw the command lines in the log.
    assert any(record.getMessage().startswith("git push ") for record in caplog.records)
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


@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_blob_id_is_the_name_git_gives_the_blob(tmp_path: Path, object_format: str) -> None:
    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", f"--object-format={object_format}", str(repo)], check=True)
    for data in (b"", b"tasks: []\n", "é\r\n".encode() * 1000):
        named = (
            subprocess.run(
                ["git", "hash-object", "--stdin"],
                cwd=repo,
                input=data,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        assert gitops.blob_id(data, like=named) == named
