"""A repository's backlog file at its branch tip, read cheaply for the periodic Backlog sync.

A sync first asks the remote where the branch points (`git ls-remote`: one round trip, nothing
fetched). When that is the commit read last time, it stops there. Otherwise it fetches that tip,
depth 1, into a bare repository kept per remote under the cache folder and reused by every later
sync, so a new commit brings only the objects it adds. Where the server filters, that repository
is a partial clone: fetches bring commits and folders but no file contents, and only the backlog
file's own blob is fetched after. The file's size is read from the tree before its bytes, and a
file over the limit is refused without being read.

Cache folders are named by a hash of the remote's URL, never by the URL; credentials never reach
the disk (the git adapter's credential helper reads the token file when git asks). A lock file
per remote serialises the syncs of one repository, across threads and processes; different
repositories proceed in parallel. A cache git can no longer use, or one in which a fetch or a
read fails for a reason the remote does not explain, is discarded and made again.

Everything blocks: callers run `BacklogSource.read` in a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git

from backlog_operator.adapters import git as gitops
from backlog_operator.adapters.git import GitCredentials, GitError
from backlog_operator.backlog.document import DEFAULT_MAX_BYTES

log = logging.getLogger(__name__)

#: The file is larger than the limit; it was not read (permanent for that commit).
TOO_LARGE = "BacklogTooLarge"
#: Something other than a regular file is at the path: a folder, a symbolic link, a submodule.
NOT_A_FILE = "BacklogNotAFile"
#: The path cannot name a file in a repository (absolute, empty, `.` or `..` in it).
INVALID_PATH = "InvalidPath"
#: The cache folder cannot be made, locked or cleared (the disk, its permissions).
CACHE_UNAVAILABLE = "CacheUnavailable"

# Failures whose cause is the remote, the credentials or the request, never the cache: a new
# cache would fail the same way, so the error is raised as it is.
_NOT_THE_CACHE = frozenset(
    {
        "AuthenticationFailed",
        "BranchNotFound",
        "CredentialsUnavailable",
        "CredentialsInUrl",
        "UnsupportedUrl",
        "GitNotInstalled",
        TOO_LARGE,
        NOT_A_FILE,
    }
)


@dataclass(frozen=True)
class BacklogSnapshot:
    """One read of the backlog file.

    - `commit`: the branch tip that was read (or found unchanged).
    - `data`: the file's bytes, exactly; None when no file is at the path in that commit, and
      when nothing changed.
    - `changed`: False when the tip is `known_commit`: nothing was fetched and `data` is None.
    """

    commit: str
    data: bytes | None
    changed: bool


class BacklogSource:
    """Reads backlog files from remotes through a cache of small bare repositories.

    `cache_dir` holds one folder per remote (made when first needed, readable only by this
    user); it may be emptied at any time between reads. `lazy_blobs=False` makes new caches
    fetch whole trees, for servers that filter but refuse to send a single blob.

    `read` raises GitError with the git adapter's reasons (RepositoryUnreachable,
    AuthenticationFailed, BranchNotFound, CredentialsUnavailable, CredentialsInUrl,
    UnsupportedUrl, GitFailed, ...) and these of its own: BacklogTooLarge, BacklogNotAFile,
    InvalidPath (all permanent) and CacheUnavailable (retryable).
    """

    def __init__(self, cache_dir: Path, *, lazy_blobs: bool = True) -> None:
        self.cache_dir = Path(cache_dir).absolute()
        self.lazy_blobs = lazy_blobs

    def cache_path(self, url: str) -> Path:
        """The cache folder of the remote `url` (it may not exist yet)."""
        return self.cache_dir / f"{_key(gitops.remote_url(url))}.git"

    def read(
        self,
        url: str,
        branch: str,
        path: str,
        *,
        credentials: GitCredentials | None = None,
        known_commit: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float | None = gitops.NETWORK_TIMEOUT_SECONDS,
    ) -> BacklogSnapshot:
        """The file at `path` on `branch` of `url`, unless the branch still is at `known_commit`.

        `known_commit` is the commit this same path was read at last time (None: read anyway).
        A file larger than `max_bytes` is refused before its bytes are read (BacklogTooLarge).
        `timeout` bounds each git command that talks to the remote.
        """
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        wanted = _tree_path(path)
        remote = gitops.remote_url(url)
        tip = gitops.remote_branch_sha(remote, branch, credentials=credentials, timeout=timeout)
        if tip is None:
            raise _branch_not_found("ls-remote", branch)
        if tip == known_commit:
            log.debug("%s at %s: still %s, nothing to fetch", remote, branch, tip)
            return BacklogSnapshot(commit=tip, data=None, changed=False)
        request = _Request(remote, branch, wanted, credentials, known_commit, max_bytes, timeout)
        key = _key(remote)
        with self._locked(key):
            return self._read_cached(self.cache_dir / f"{key}.git", request)

    # Cache handling --------------------------------------------------------------------------

    def _read_cached(self, cache: Path, request: _Request) -> BacklogSnapshot:
        repo = self._open(cache, request.remote) or self._create(cache, request.remote)
        try:
            with repo:
                return request.run(repo)
        except GitError as error:
            if not _cache_may_be_at_fault(error):
                raise
            log.warning(
                "discarding the cache of %s after a failure there: %s", request.remote, error
            )
        self._discard(cache)
        # The new cache fetches whole trees: if the failure came from the server refusing single
        # blobs, a lazy cache would fail again on every sync.
        with self._create(cache, request.remote, lazy_blobs=False) as repo:
            return request.run(repo)

    def _open(self, cache: Path, remote: str) -> git.Repo | None:
        """The cache at `cache` when git can use it for `remote`; None (and it is gone) if not."""
        if not os.path.lexists(cache):
            return None
        try:
            repo = git.Repo(cache)
        except Exception:  # whatever GitPython trips on (no HEAD, no objects), git would too
            repo = None
        if repo is not None:
            if _is_cache_of(repo, remote):
                return repo
            repo.close()
        log.warning("discarding the damaged cache %s of %s", cache.name, remote)
        self._discard(cache)
        return None

    def _create(self, cache: Path, remote: str, *, lazy_blobs: bool | None = None) -> git.Repo:
        lazy = self.lazy_blobs if lazy_blobs is None else lazy_blobs
        # Made in place: the remote's lock is held, and a folder left half made by a crash has
        # no origin yet (`init_bare` writes it last), so `_open` discards it.
        return gitops.init_bare(cache, remote, lazy_blobs=lazy)

    def _discard(self, cache: Path) -> None:
        # Renamed first, so that a removal that stops halfway never leaves a half cache in place.
        trash = cache.with_name(f".discarded-{cache.name}-{uuid.uuid4().hex}")
        try:
            os.replace(cache, trash)
        except FileNotFoundError:
            return
        except OSError as error:
            raise _cache_unavailable(f"the cache {cache.name} cannot be removed", error) from None
        if trash.is_dir() and not trash.is_symlink():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            trash.unlink(missing_ok=True)

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """Hold the lock of one remote's cache: one sync at a time per repository."""
        try:
            # Private: a cache holds the contents of private repositories.
            self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle = open(self.cache_dir / f"{key}.lock", "a+b")  # noqa: SIM115 (closed below)
        except OSError as error:
            raise _cache_unavailable("the cache folder cannot be used", error) from None
        try:
            # flock locks belong to the open file, so threads of one process exclude each
            # other just as processes do.
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            handle.close()  # also releases the lock


@dataclass(frozen=True)
class _Request:
    """One read, carried out in a cache repository."""

    remote: str
    branch: str
    path: str
    credentials: GitCredentials | None
    known_commit: str | None
    max_bytes: int
    timeout: float | None

    def run(self, repo: git.Repo) -> BacklogSnapshot:
        """Fetch the branch tip (depth 1) into `repo` and read the file there."""
        log.debug("fetching %s of %s", self.branch, self.remote)
        commit = gitops.fetch_branch(
            repo, self.branch, credentials=self.credentials, depth=1, timeout=self.timeout
        )
        if commit is None:  # deleted since ls-remote
            raise _branch_not_found("fetch", self.branch)
        if commit == self.known_commit:  # moved back since ls-remote: the caller has this one
            return BacklogSnapshot(commit=commit, data=None, changed=False)
        entry = gitops.entry_at(
            repo, commit, self.path, credentials=self.credentials, timeout=self.timeout
        )
        if entry is None:
            return BacklogSnapshot(commit=commit, data=None, changed=True)
        if not entry.is_file:
            raise GitError(
                NOT_A_FILE,
                f"{self.path} at {commit[:12]} is not a regular file "
                f"(a {_describe(entry.mode)}); the backlog must be a file",
                retryable=False,
            )
        if entry.size is None or entry.size > self.max_bytes:
            raise GitError(
                TOO_LARGE,
                f"{self.path} at {commit[:12]} is {entry.size} bytes, over the limit of "
                f"{self.max_bytes} bytes; it was not read",
                retryable=False,
            )
        data = gitops.read_blob(repo, entry.sha, credentials=self.credentials, timeout=self.timeout)
        if len(data) != entry.size:
            # The object store disagrees with itself: a damaged cache, made again by the caller.
            raise GitError(
                "GitFailed", f"{self.path} read back with an unexpected size", retryable=True
            )
        return BacklogSnapshot(commit=commit, data=data, changed=True)


def _is_cache_of(repo: git.Repo, remote: str) -> bool:
    """Whether `repo` is a bare repository whose origin is `remote`."""
    try:
        with repo.config_reader("repository") as config:
            origin = str(config.get_value('remote "origin"', "url"))
    except Exception:  # an unreadable config, or no origin: never finished, or damaged
        return False
    return repo.bare and origin == remote


def _key(remote: str) -> str:
    """The cache folder's name for a remote: a hash, so no URL (or part of one) is a path."""
    return hashlib.sha256(remote.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _tree_path(path: str) -> str:
    """`path` checked as a name inside a tree; GitError(InvalidPath) if it cannot be one."""
    parts = path.split("/")
    # Git stores no empty, `.` or `..` component, so such a path could only ever be missing:
    # say what is wrong with it instead.
    if any(part in ("", ".", "..") for part in parts) or any(c in path for c in "\0\n"):
        raise GitError(
            INVALID_PATH,
            f"{path!r} is not a path inside a repository (relative, no empty, '.' or '..' parts)",
            retryable=False,
        )
    return path


def _describe(mode: str) -> str:
    return {"040000": "folder", "120000": "symbolic link", "160000": "submodule"}.get(
        mode, f"entry of mode {mode}"
    )


def _branch_not_found(command: str, branch: str) -> GitError:
    name = branch.removeprefix("refs/heads/")
    return GitError(
        "BranchNotFound",
        f"git {command} failed: the branch {name!r} does not exist on the remote",
        retryable=False,
    )


def _cache_unavailable(summary: str, error: OSError) -> GitError:
    # Only the OS's words: the folder's path is this machine's business, not a status's.
    return GitError(CACHE_UNAVAILABLE, f"{summary}: {error.strerror or error}", retryable=True)


def _cache_may_be_at_fault(error: GitError) -> bool:
    """Whether a new cache might succeed where this one failed."""
    if error.reason in _NOT_THE_CACHE:
        return False
    # Network trouble passes by itself; the next sync tries again with the same cache.
    return not (error.reason == "RepositoryUnreachable" and error.retryable)
