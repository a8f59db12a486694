"""BacklogSource against real repositories: bare remotes on disk and over smart HTTP.

Every test runs with HOME pointed at an empty folder and no system configuration, so nothing
(a credential helper, a protocol setting) comes from the machine running the tests.
"""

from __future__ import annotations

import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from backlog_operator.adapters import git as gitops
from backlog_operator.adapters.backlog_source import BacklogSnapshot, BacklogSource
from backlog_operator.adapters.git import GitCredentials, GitError
from backlog_operator.backlog.document import DEFAULT_MAX_BYTES
from tests.support.gitrepos import (
    GitHttpServer,
    commit_to_remote,
    make_remote,
    remote_sha,
    run_git,
    silent_port,
    unused_port,
)

PATH = ".backlog/backlog.yaml"
BACKLOG = "tasks:\n  - id: first\n    title: First\n    ready: true\n"
TOKEN = "tok-7d1e5b-Backlog-Source-0123456789"


pytestmark = pytest.mark.usefixtures("no_machine_config")


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare remote whose main holds a backlog, a README and a docs folder."""
    return make_remote(
        tmp_path,
        {PATH: BACKLOG, "README.md": "# project\n", "docs/guide.md": "guide\n"},
    )


@pytest.fixture
def source(tmp_path: Path) -> BacklogSource:
    return BacklogSource(tmp_path / "cache")


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret" / "token"
    path.parent.mkdir()
    path.write_text(TOKEN + "\n", encoding="utf-8")  # Secret keys often end with a newline
    return path


@pytest.fixture
def http_remote(remote: Path, tmp_path: Path) -> Iterator[tuple[GitHttpServer, str]]:
    """The remote served over smart HTTP, requiring TOKEN as the password."""
    with GitHttpServer(tmp_path, TOKEN) as server:
        yield server, server.url_for(remote)


def cache_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


def cached_objects(cache: Path) -> dict[str, str]:
    """Object name → type of every object present in the cache (none is fetched to list them)."""
    out = run_git("--git-dir", str(cache), "cat-file", "--batch-check", "--batch-all-objects")
    return {sha: kind for sha, kind, *_ in (line.split() for line in out.splitlines())}


def allow_filters(remote: Path) -> None:
    """Let the remote honour `--filter`, as the big forges do (git's own default is off)."""
    run_git("--git-dir", str(remote), "config", "uploadpack.allowFilter", "true")


def blob_sha(remote: Path, path: str) -> str:
    return run_git("--git-dir", str(remote), "rev-parse", f"main:{path}").strip()


def commit_entry(remote: Path, path: str, mode: str, sha: str) -> str:
    """Commit one tree entry of any mode onto main (mode 0 removes the path); the new sha.

    For symbolic links and submodules, and for deletions (`commit_to_remote` deletes through
    `update-index --force-remove`, which git refuses without a work tree).
    """
    index = remote / "test-index"
    env = {"GIT_INDEX_FILE": str(index)}
    try:
        run_git("--git-dir", str(remote), "read-tree", "main", env=env)
        entry = f"{mode} {sha}\t{path}\n".encode()
        run_git("--git-dir", str(remote), "update-index", "--index-info", input=entry, env=env)
        tree = run_git("--git-dir", str(remote), "write-tree", env=env).strip()
    finally:
        index.unlink(missing_ok=True)
    commit = run_git(
        "--git-dir", str(remote), "commit-tree", "-p", "main", "-m", "entry", tree
    ).strip()
    run_git("--git-dir", str(remote), "update-ref", "refs/heads/main", commit)
    return commit


# ------------------------------------------------------------------------------- reading


def test_first_read_fetches_the_tip_and_returns_the_file(
    remote: Path, source: BacklogSource, tmp_path: Path
) -> None:
    snapshot = source.read(str(remote), "main", PATH)

    assert snapshot == BacklogSnapshot(
        commit=str(remote_sha(remote, "main")), data=BACKLOG.encode(), changed=True
    )
    cache = source.cache_path(str(remote))
    assert cache.parent == tmp_path / "cache"
    assert cache.is_dir()
    # Named by a hash: no part of the URL is a path on disk.
    assert len(cache.name) == len("0" * 32 + ".git")
    assert all(c in "0123456789abcdef" for c in cache.name.removesuffix(".git"))
    assert not any(remote.name in path.name for path in (tmp_path / "cache").rglob("*"))
    # Bare and shallow: no work tree, only the tip's commit.
    assert not (cache / PATH).exists()
    assert (cache / "shallow").read_text().split() == [snapshot.commit]


def test_unchanged_tip_asks_the_remote_and_fetches_nothing(
    http_remote: tuple[GitHttpServer, str], token_file: Path, source: BacklogSource
) -> None:
    server, url = http_remote
    credentials = GitCredentials(token_file=token_file)
    first = source.read(url, "main", PATH, credentials=credentials)
    cache = source.cache_path(url)
    before = cache_state(cache)

    start = server.requests
    gitops.remote_branch_sha(url, "main", credentials=credentials)
    ls_remote_requests = server.requests - start
    start = server.requests
    again = source.read(url, "main", PATH, credentials=credentials, known_commit=first.commit)

    assert again == BacklogSnapshot(commit=first.commit, data=None, changed=False)
    assert server.requests - start == ls_remote_requests  # what `git ls-remote` costs, no more
    assert cache_state(cache) == before


def test_new_commit_is_read_into_the_same_cache(
    remote: Path, source: BacklogSource, tmp_path: Path
) -> None:
    first = source.read(str(remote), "main", PATH)
    cache = source.cache_path(str(remote))
    inode = cache.stat().st_ino
    objects = cached_objects(cache)
    newer = BACKLOG + "  - id: second\n    title: Second\n"
    sha = commit_to_remote(remote, "main", {PATH: newer}, "Add a task")

    second = source.read(str(remote), "main", PATH, known_commit=first.commit)

    assert second == BacklogSnapshot(commit=sha, data=newer.encode(), changed=True)
    assert cache.stat().st_ino == inode  # the same folder, not made again
    assert set(objects) < set(cached_objects(cache))  # the first fetch's objects are still there
    assert [path.name for path in (tmp_path / "cache").glob("*.git")] == [cache.name]


def test_read_without_known_commit_reads_again(remote: Path, source: BacklogSource) -> None:
    first = source.read(str(remote), "main", PATH)

    again = source.read(str(remote), "main", PATH)

    assert again == first


def test_missing_branch_is_branch_not_found(remote: Path, source: BacklogSource) -> None:
    with pytest.raises(GitError) as caught:
        source.read(str(remote), "no-such-branch", PATH)

    assert (caught.value.reason, caught.value.retryable) == ("BranchNotFound", False)
    assert "no-such-branch" in str(caught.value)


def test_missing_file_is_none(remote: Path, source: BacklogSource) -> None:
    snapshot = source.read(str(remote), "main", "no/such/backlog.yaml")

    assert snapshot == BacklogSnapshot(str(remote_sha(remote, "main")), None, changed=True)


def test_empty_file_is_empty_bytes(remote: Path, source: BacklogSource) -> None:
    commit_to_remote(remote, "main", {PATH: b""})

    assert source.read(str(remote), "main", PATH).data == b""


def test_deleted_file_is_none_after_it_was_read(remote: Path, source: BacklogSource) -> None:
    first = source.read(str(remote), "main", PATH)
    commit_entry(remote, PATH, "0", "0" * 40)  # deleted

    snapshot = source.read(str(remote), "main", PATH, known_commit=first.commit)

    assert (snapshot.data, snapshot.changed) == (None, True)


@pytest.mark.parametrize("kind", ["folder", "symbolic link", "submodule"])
def test_something_other_than_a_file_is_refused(
    remote: Path, source: BacklogSource, kind: str
) -> None:
    path = "docs"
    if kind == "symbolic link":
        path = "link.yaml"
        commit_entry(remote, path, "120000", blob_sha(remote, PATH))
    elif kind == "submodule":
        path = "vendored"
        commit_entry(remote, path, "160000", str(remote_sha(remote, "main")))

    with pytest.raises(GitError) as caught:
        source.read(str(remote), "main", path)

    assert (caught.value.reason, caught.value.retryable) == ("BacklogNotAFile", False)
    assert kind in str(caught.value)


@pytest.mark.parametrize("path", ["", "/abs/backlog.yaml", "../backlog.yaml", "a//b", "a/./b"])
def test_a_path_that_cannot_be_in_a_repository_is_refused(
    remote: Path, source: BacklogSource, path: str
) -> None:
    with pytest.raises(GitError) as caught:
        source.read(str(remote), "main", path)

    assert (caught.value.reason, caught.value.retryable) == ("InvalidPath", False)


def test_pathspec_magic_is_a_plain_name(remote: Path, source: BacklogSource) -> None:
    commit_to_remote(remote, "main", {":(glob)*.yaml": "odd\n"})

    assert source.read(str(remote), "main", ":(glob)*.yaml").data == b"odd\n"
    assert source.read(str(remote), "main", ":(glob)*").data is None


# ----------------------------------------------------------------------------- size limit


def test_file_over_the_limit_is_refused_without_reading_it(
    remote: Path, source: BacklogSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_to_remote(remote, "main", {PATH: b"x" * 1001, "exact.yaml": b"y" * 1000})
    reads: list[str] = []
    read_blob = gitops.read_blob

    def counting_read_blob(*args: object, **kwargs: object) -> bytes:
        reads.append(str(args[1]))
        return read_blob(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gitops, "read_blob", counting_read_blob)

    with pytest.raises(GitError) as caught:
        source.read(str(remote), "main", PATH, max_bytes=1000)
    assert (caught.value.reason, caught.value.retryable) == ("BacklogTooLarge", False)
    assert "1001 bytes" in str(caught.value) and "1000 bytes" in str(caught.value)
    assert reads == []  # refused from the tree's size: the blob was never read

    exact = source.read(str(remote), "main", "exact.yaml", max_bytes=1000)
    assert exact.data == b"y" * 1000
    assert reads == [blob_sha(remote, "exact.yaml")]


def test_default_limit_is_the_backlog_documents(remote: Path, source: BacklogSource) -> None:
    commit_to_remote(remote, "main", {PATH: b"#" * (DEFAULT_MAX_BYTES + 1)})

    with pytest.raises(GitError) as caught:
        source.read(str(remote), "main", PATH)

    assert caught.value.reason == "BacklogTooLarge"
    assert str(DEFAULT_MAX_BYTES) in str(caught.value)


# ------------------------------------------------------------------------ remote trouble


def test_unreachable_remote_is_retryable_and_leaves_no_cache(
    source: BacklogSource, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{unused_port()}/remote.git"

    with pytest.raises(GitError) as caught:
        source.read(url, "main", PATH)

    assert (caught.value.reason, caught.value.retryable) == ("RepositoryUnreachable", True)
    assert not (tmp_path / "cache").exists()


def test_hung_remote_times_out_as_retryable(source: BacklogSource) -> None:
    with silent_port() as port:
        started = time.monotonic()
        with pytest.raises(GitError) as caught:
            source.read(f"http://127.0.0.1:{port}/remote.git", "main", PATH, timeout=2)

    assert time.monotonic() - started < 30
    assert (caught.value.reason, caught.value.retryable) == ("RepositoryUnreachable", True)


def test_missing_repository_is_not_retryable(source: BacklogSource, tmp_path: Path) -> None:
    with pytest.raises(GitError) as caught:
        source.read(str(tmp_path / "nope.git"), "main", PATH)

    assert (caught.value.reason, caught.value.retryable) == ("RepositoryUnreachable", False)


def test_credentials_in_the_url_are_refused_before_anything_is_written(
    source: BacklogSource, tmp_path: Path
) -> None:
    with pytest.raises(GitError) as caught:
        source.read(f"https://user:{TOKEN}@example.invalid/r.git", "main", PATH)

    assert caught.value.reason == "CredentialsInUrl"
    assert TOKEN not in str(caught.value)
    assert not (tmp_path / "cache").exists()


# --------------------------------------------------------------------- HTTP and a token


def test_token_over_http_reads_and_is_never_on_disk(
    http_remote: tuple[GitHttpServer, str], token_file: Path, source: BacklogSource
) -> None:
    server, url = http_remote
    credentials = GitCredentials(token_file=token_file)

    snapshot = source.read(url, "main", PATH, credentials=credentials)

    assert snapshot.data == BACKLOG.encode()
    assert server.refused >= 1  # the server did ask, so the token came from the helper
    cache = source.cache_path(url)
    assert run_git("--git-dir", str(cache), "config", "remote.origin.url").strip() == url
    assert TOKEN not in run_git("--git-dir", str(cache), "config", "--list")
    for path in source.cache_dir.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_wrong_token_fails_at_once_and_is_not_repeated(
    http_remote: tuple[GitHttpServer, str], tmp_path: Path, source: BacklogSource
) -> None:
    _, url = http_remote
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong-token-0000-abcdef", encoding="utf-8")

    started = time.monotonic()
    with pytest.raises(GitError) as caught:
        source.read(url, "main", PATH, credentials=GitCredentials(wrong))

    assert time.monotonic() - started < 10
    assert (caught.value.reason, caught.value.retryable) == ("AuthenticationFailed", False)
    texts = [str(caught.value), repr(caught.value), caught.value.detail]
    texts.append("".join(traceback.format_exception(caught.value)))
    assert not [text for text in texts if "wrong-token-0000-abcdef" in text or TOKEN in text]


def test_token_rotated_between_syncs_is_used(
    http_remote: tuple[GitHttpServer, str], token_file: Path, remote: Path, source: BacklogSource
) -> None:
    server, url = http_remote
    credentials = GitCredentials(token_file=token_file)
    first = source.read(url, "main", PATH, credentials=credentials)
    server.token = "rotated-Token-987654321"
    token_file.write_text(server.token, encoding="utf-8")
    sha = commit_to_remote(remote, "main", {PATH: "tasks: []\n"})

    second = source.read(url, "main", PATH, credentials=credentials, known_commit=first.commit)

    assert (second.commit, second.data) == (sha, b"tasks: []\n")


# ------------------------------------------------------------------- partial clone (bonus)


def test_filtering_server_sends_only_the_backlog_blob(
    http_remote: tuple[GitHttpServer, str], token_file: Path, remote: Path, source: BacklogSource
) -> None:
    _, url = http_remote
    allow_filters(remote)
    credentials = GitCredentials(token_file=token_file)

    snapshot = source.read(url, "main", PATH, credentials=credentials)

    assert snapshot.data == BACKLOG.encode()
    blobs = {sha for sha, kind in cached_objects(source.cache_path(url)).items() if kind == "blob"}
    # The backlog's blob came on its own, with the token (the lazy fetch asked the helper too).
    assert blobs == {blob_sha(remote, PATH)}


def test_plain_cache_when_lazy_blobs_are_off(remote: Path, tmp_path: Path) -> None:
    allow_filters(remote)
    source = BacklogSource(tmp_path / "cache", lazy_blobs=False)

    source.read(str(remote), "main", PATH)

    kinds = cached_objects(source.cache_path(str(remote))).values()
    assert list(kinds).count("blob") == 3


def test_server_that_filters_but_refuses_single_blobs_is_still_read(
    remote: Path, source: BacklogSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Protocol v0 without uploadpack.allowAnySHA1InWant: a blob cannot be asked for by name.
    # (Command-line scope: the adapter reads no user or system configuration.)
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'protocol.version'='0'")
    allow_filters(remote)

    snapshot = source.read(remote.as_uri(), "main", PATH)

    assert snapshot.data == BACKLOG.encode()
    cache = source.cache_path(remote.as_uri())
    # Made again as a plain cache, which later syncs keep using.
    assert "promisor" not in run_git("--git-dir", str(cache), "config", "--list")
    sha = commit_to_remote(remote, "main", {PATH: "tasks: []\n"})
    assert source.read(remote.as_uri(), "main", PATH).commit == sha


# ------------------------------------------------------------------------- damaged caches


def _delete_head(cache: Path) -> None:
    (cache / "HEAD").unlink()


def _delete_objects(cache: Path) -> None:
    shutil.rmtree(cache / "objects")


def _empty_object_store(cache: Path) -> None:
    for pack in (cache / "objects" / "pack").iterdir():
        pack.unlink()
    for loose in (cache / "objects").glob("??"):
        shutil.rmtree(loose)


def _truncate_packs(cache: Path) -> None:
    for pack in (cache / "objects" / "pack").glob("*.pack"):
        pack.write_bytes(pack.read_bytes()[:40])


def _garble_config(cache: Path) -> None:
    (cache / "config").write_text("[[[ not a config\n")


def _break_branch_ref(cache: Path) -> None:
    (cache / "refs" / "remotes" / "origin" / "main").write_text("0123\n")


def _replace_with_a_file(cache: Path) -> None:
    shutil.rmtree(cache)
    cache.write_text("not a repository\n")


@pytest.mark.parametrize(
    "damage",
    [
        _delete_head,
        _delete_objects,
        _empty_object_store,
        _truncate_packs,
        _garble_config,
        _break_branch_ref,
        _replace_with_a_file,
    ],
)
@pytest.mark.parametrize("new_commit", [False, True], ids=["same tip", "new tip"])
def test_damaged_cache_is_made_again(
    remote: Path, source: BacklogSource, damage: Callable[[Path], None], new_commit: bool
) -> None:
    source.read(str(remote), "main", PATH)
    cache = source.cache_path(str(remote))
    damage(cache)
    expected = BACKLOG
    if new_commit:
        expected = "tasks: []\n"
        commit_to_remote(remote, "main", {PATH: expected})

    snapshot = source.read(str(remote), "main", PATH)

    assert snapshot.data == expected.encode()
    assert snapshot.commit == remote_sha(remote, "main")
    # Healthy again: the next sync of a new commit works from this cache.
    sha = commit_to_remote(remote, "main", {PATH: "tasks: [] # again\n"})
    assert source.read(str(remote), "main", PATH).commit == sha
    assert not [path for path in source.cache_dir.iterdir() if path.name.startswith(".")]


def test_cache_of_another_url_in_the_folder_is_replaced(
    remote: Path, source: BacklogSource, tmp_path: Path
) -> None:
    # A folder whose origin is not this remote (never the case unless made by hand) is not used.
    other = make_remote(tmp_path, {PATH: "other\n"}, name="other.git")
    source.read(str(other), "main", PATH)
    shutil.move(source.cache_path(str(other)), source.cache_path(str(remote)))

    assert source.read(str(remote), "main", PATH).data == BACKLOG.encode()


# ------------------------------------------------------------------------------ threads


def test_syncs_of_different_repositories_run_at_once(tmp_path: Path, source: BacklogSource) -> None:
    remotes = [make_remote(tmp_path, {PATH: f"r{n}\n"}, name=f"r{n}.git") for n in range(4)]
    at_once = threading.Barrier(len(remotes))

    def sync(remote: Path) -> list[bytes | None]:
        seen = []
        at_once.wait(timeout=30)
        known = None
        for round_ in range(3):
            snapshot = source.read(str(remote), "main", PATH, known_commit=known)
            seen.append(snapshot.data)
            known = snapshot.commit
            commit_to_remote(remote, "main", {PATH: f"{remote.stem} {round_}\n"})
        return seen

    with ThreadPoolExecutor(len(remotes)) as pool:
        results = list(pool.map(sync, remotes))

    for remote, seen in zip(remotes, results, strict=True):
        name = remote.stem
        assert seen == [f"{name}\n".encode(), f"{name} 0\n".encode(), f"{name} 1\n".encode()]
    assert len(list(source.cache_dir.glob("*.git"))) == len(remotes)


def test_syncs_of_one_repository_at_once_share_one_cache(
    remote: Path, source: BacklogSource
) -> None:
    at_once = threading.Barrier(6)

    def sync(_: int) -> BacklogSnapshot:
        at_once.wait(timeout=30)
        return source.read(str(remote), "main", PATH)

    with ThreadPoolExecutor(6) as pool:
        snapshots = list(pool.map(sync, range(6)))

    assert {snapshot.data for snapshot in snapshots} == {BACKLOG.encode()}
    assert len(list(source.cache_dir.glob("*.git"))) == 1
