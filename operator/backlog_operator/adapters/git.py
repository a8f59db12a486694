"""Git through its command line: clone, fetch, commit a work tree snapshot, push; the token unseen.

Every function blocks (callers run them in threads) and raises `GitError` with a CamelCase
`reason`, a `retryable` verdict and a sentence scrubbed of secrets.

Each command is one `git` process started here (with `LC_ALL=C`, so its messages can be
classified, and stdin closed). A repository is a `Repository` (where its metadata is, where
commands run, the variables they get), which needs nothing imported: the worker's steps are
short processes, and GitPython alone costs more to import than most of their git commands take.
Every function also takes a GitPython `Repo`, and `clone`, `open_sealed` and `init_bare` return
one (imported when called) for callers that use GitPython's API; `clone_repository` and
`open_sealed_repository` are the same without it.

How a token reaches git: `GitCredentials.environment()` installs a credential helper through
`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`. The helper is a line of shell that
reads the token file when git asks for a password and answers on its stdout, so the token never
appears in a command line (GitPython prints those in logs and in `GitCommandError`), in a remote
URL, in `.git/config`, or in the environment. Prompts are off (`GIT_TERMINAL_PROMPT=0`, empty
askpass, ssh in batch mode): a missing or wrong credential fails at once instead of waiting.
The helper is scoped to the scheme, host and port of the one URL a command talks to, so git
never offers the token to another server (a redirect, a rewritten URL, a proxy).

No configuration but our own: every command runs with `GIT_CONFIG_NOSYSTEM` and
`GIT_CONFIG_GLOBAL=/dev/null`, and with `core.excludesFile` and `core.attributesFile` pointed at
/dev/null (git otherwise reads `~/.config/git/ignore` and `~/.config/git/attributes` without
any configuration naming them), so neither the machine's nor a user's git configuration (which
a task running as the same user could write) reaches these commands.

`seal` and `open_sealed` give the `publish` step its own git metadata, out of the task's
reach, over the work tree the task leaves; see docs/worker.md for that trust boundary.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple, TypeAlias
from urllib.parse import urlsplit

from backlog_operator.errors import ClassifiedError
from backlog_operator.naming import url_has_credentials
from backlog_operator.redact import Redactor

if TYPE_CHECKING:  # imported where a GitPython `Repo` is made (see the module docstring)
    import git

log = logging.getLogger(__name__)

#: Upper bound of a command that talks to a remote (clone, fetch, push, ls-remote).
NETWORK_TIMEOUT_SECONDS = 600.0
#: Upper bound of a local command (add, write-tree, commit-tree): only a sick file system takes
#: this long.
LOCAL_TIMEOUT_SECONDS = 300.0

# Transports git may use, also for redirects and submodules; `ext::` and friends run commands.
_ALLOWED_PROTOCOLS = ("file", "git", "http", "https", "ssh")
_URL_SCHEMES = frozenset({*_ALLOWED_PROTOCOLS, "git+ssh", "ssh+git"})
# `<transport>::<address>` asks git for a remote helper by name: never from a goal.
_REMOTE_HELPER_SYNTAX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_FULL_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# HEAD naming a branch: `ref: refs/heads/<name>`.
_BRANCH_HEAD = re.compile(r"ref: (refs/heads/[A-Za-z0-9._/-]+)\n?")
# git's words for a revision that names no object (of the kind asked for). Like the patterns
# below that read failures, left to `re` to compile (and keep) when a command fails.
_NO_SUCH_OBJECT = r"not a valid object name|bad revision"

# Environment variables the credential helper reads; the token itself is never in one.
_TOKEN_FILE_VARIABLE = "BACKLOG_GIT_TOKEN_FILE"  # noqa: S105 (a variable name)
_USERNAME_VARIABLE = "BACKLOG_GIT_USERNAME"
# Answers only `get` (git also sends `store` and `erase`). `tr` reads the file on its stdin and
# `printf` is a shell builtin, so the token is in no process's argv; whitespace is dropped
# because a Secret's key often ends with a newline.
_CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    f'printf "username=%s\\n" "${_USERNAME_VARIABLE}"; '
    f'printf "password=%s\\n" "$(tr -d \' \\t\\r\\n\' < "${_TOKEN_FILE_VARIABLE}")"; '
    "}; f"
)

# Command-line scoped configuration for every command. Hooks are off because a person's hooks
# (core.hooksPath: post-checkout on clone, pre-push) must not change or block the operator's
# commands; the per-user ignore and attributes files, which git reads by default, are off for
# the same reason as the global configuration (see the module docstring); the low-speed limit
# ends a stalled transfer long before the overall timeout.
_BASE_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", os.devnull),
    ("core.excludesFile", os.devnull),
    ("core.attributesFile", os.devnull),
    ("http.lowSpeedLimit", "1"),
    ("http.lowSpeedTime", "60"),
)


class GitError(ClassifiedError):
    """A git operation failed.

    `reason` is a CamelCase word (RepositoryUnreachable, AuthenticationFailed, BranchNotFound,
    PushRejected, NonFastForward, RefNotFound, InvalidBranchName, CredentialsInUrl, UnsupportedUrl,
    InvalidWorkspace, UnsupportedFile, SubmoduleChange, GitFailed, ...); `retryable` says
    whether a later attempt may succeed; `str()` is a sentence for people that includes git's
    own words, scrubbed of secrets and URL credentials.
    """

    def __init__(self, reason: str, message: str, *, retryable: bool, detail: str = "") -> None:
        super().__init__(reason, message, retryable=retryable)
        #: What git printed (scrubbed, shortened); also part of `message`.
        self.detail = detail


class _Credentials(NamedTuple):
    token_file: Path | None
    username: str = "x-access-token"
    insecure: bool = False


class GitCredentials(_Credentials):
    """A token for git over HTTPS, held in a file (a mounted Secret key) and read only on use.

    `token_file=None` means anonymous access: no helper at all is consulted, not even the user's.
    `insecure` allows the token over plain http:// to a host that is not loopback.
    """

    __slots__ = ()

    def __new__(
        cls, token_file: Path | None, username: str = "x-access-token", insecure: bool = False
    ) -> GitCredentials:
        """The credentials; ValueError for a user name that is not one non-empty line."""
        # The helper speaks a line-based protocol: a newline in the user name would forge a field.
        if any(char in username for char in "\r\n\0") or not username:
            raise ValueError("the git user name must be one non-empty line")
        return super().__new__(cls, token_file, username, insecure)

    def environment(self, url: str) -> dict[str, str]:
        """Environment for git processes talking to `url`: no prompts, only our helper.

        Holds the token file's path, never the token. An empty `credential.helper` first resets
        the list; our helper is then configured for `url`'s scheme, host and port alone, so git
        asks it for no other server. Raises GitError(InsecureUrl) for a token over plain http to
        a host that is not loopback, unless `insecure`.
        """
        config: list[tuple[str, str]] = [("credential.helper", "")]
        env: dict[str, str] = {}
        scope = credential_scope(url)
        if self.token_file is not None and scope is not None:
            self._refuse_plain_http(scope)
            config.append((f"credential.{scope}.helper", _CREDENTIAL_HELPER))
            # Absolute: git runs the helper in the repository, not in our working directory.
            env[_TOKEN_FILE_VARIABLE] = str(Path(self.token_file).absolute())
            env[_USERNAME_VARIABLE] = self.username
        return {**_environment(config), **env}

    def _refuse_plain_http(self, scope: str) -> None:
        parts = urlsplit(scope)
        if parts.scheme != "http" or self.insecure or _is_loopback(parts.hostname or ""):
            return
        raise GitError(
            "InsecureUrl",
            f"refusing to send the token over plain http to {parts.hostname}; use https, or "
            "set spec.repository.insecure to true if this network is trusted",
            retryable=False,
        )

    def read_token(self) -> str | None:
        """The token, for scrubbing error texts; None when there is none or it cannot be read."""
        if self.token_file is None:
            return None
        try:
            return Path(self.token_file).read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError):
            return None


class Repository(NamedTuple):
    """A repository as the commands here see it: its git folder, where they run, their variables.

    `environment` is what every command on it gets besides the module's own (the sealed clone
    names its git folder, work tree and index there).
    """

    git_dir: Path
    cwd: Path
    environment: Mapping[str, str] = MappingProxyType({})


#: What the functions here take: a `Repository`, or a GitPython `Repo` (its folders and the
#: variables set on it with `update_environment` are used; its own command runner is not).
AnyRepository: TypeAlias = "Repository | git.Repo"


def _repository(repo: AnyRepository) -> Repository:
    if isinstance(repo, Repository):
        return repo
    # A GitPython Repo runs its commands in its working folder (the git folder, when bare).
    return Repository(Path(repo.git_dir), Path(repo.working_dir), dict(repo.git.environment()))


def _gitpython(repo: Repository) -> git.Repo:
    """The same repository as a GitPython `Repo`, for the callers that want its API."""
    import git

    gitpython = git.Repo(repo.git_dir)
    gitpython.git.update_environment(**repo.environment)
    return gitpython


# ------------------------------------------------------------------------------------- network


def clone(
    url: str,
    dest: Path,
    branch: str,
    *,
    credentials: GitCredentials | None = None,
    depth: int | None = 1,
    timeout: float | None = NETWORK_TIMEOUT_SECONDS,
) -> git.Repo:
    """`clone_repository`, as a GitPython `Repo`."""
    repo = clone_repository(
        url, dest, branch, credentials=credentials, depth=depth, timeout=timeout
    )
    return _gitpython(repo)


def clone_repository(
    url: str,
    dest: Path,
    branch: str,
    *,
    credentials: GitCredentials | None = None,
    depth: int | None = 1,
    timeout: float | None = NETWORK_TIMEOUT_SECONDS,
) -> Repository:
    """Clone only `branch` of `url` into `dest` (shallow unless `depth` is None).

    `url` is an https://, ssh://, git://, file:// URL, an scp-like `user@host:path`, or a local
    path (made absolute, so the clone's `origin` keeps working from anywhere).

    Raises GitError: RepositoryUnreachable (network trouble or timeout: retryable; no such
    repository: not retryable), AuthenticationFailed, BranchNotFound, CredentialsInUrl.
    """
    remote = _remote_url(url)
    dest = Path(dest).absolute()
    # --no-local: otherwise git copies a local repository whole and ignores --depth.
    args = ["clone", "--no-tags", "--single-branch", "--no-local", f"--branch={branch}"]
    if depth is not None:
        args.append(f"--depth={_positive(depth)}")
    args += ["--", remote, str(dest)]
    redact = _redactor(credentials)
    log.debug("cloning %s at %s into %s", redact(remote), branch, dest)
    result = _git(None, args, env=_network_env(credentials, remote), timeout=timeout)
    if result.status != 0:
        raise _network_error("clone", result, redact, branch=branch)
    return Repository(dest / ".git", dest)


def push(
    repo: AnyRepository,
    local_ref: str,
    remote_branch: str,
    *,
    url: str | None = None,
    credentials: GitCredentials | None = None,
    expect_remote_sha: str | None = None,
    timeout: float | None = NETWORK_TIMEOUT_SECONDS,
) -> None:
    """Push `local_ref` (a branch, HEAD or a sha) to `refs/heads/<remote_branch>` at `url`.

    Without `url`, origin's URL as configured (and checked); the push names the URL itself, so a
    `pushurl` never redirects it.

    With `expect_remote_sha=None` the remote branch must be new or fast-forwarded; otherwise it
    is replaced only while it still points at that sha (`--force-with-lease`).

    Raises GitError: PushRejected (a hook, branch protection or missing permission: not
    retryable), NonFastForward (the branch moved or the lease is stale: retryable),
    InvalidBranchName, RepositoryUnreachable, AuthenticationFailed.
    """
    # The URL itself, configured or given: naming `origin` would let its pushurl redirect the push.
    remote, scope = _remote_and_scope(repo, url if url is not None else _origin_url(repo))
    target = f"refs/heads/{_strip_heads(remote_branch)}"
    # --porcelain: one machine-readable status line per ref, instead of guessing from prose.
    # --no-verify: a person's pre-push hooks have no say over the operator's pushes.
    args = ["push", "--porcelain", "--no-verify"]
    if expect_remote_sha is not None:
        args.append(f"--force-with-lease={target}:{expect_remote_sha}")
    args += ["--", remote, f"{local_ref}:{target}"]
    redact = _redactor(credentials)
    log.debug("pushing %s to %s", local_ref, target)
    result = _git(repo, args, env=_network_env(credentials, scope), timeout=timeout)
    if result.status != 0:
        raise _push_error(result, redact, target)


def fetch_branch(
    repo: AnyRepository,
    branch: str,
    *,
    url: str | None = None,
    credentials: GitCredentials | None = None,
    depth: int | None = 1,
    timeout: float | None = NETWORK_TIMEOUT_SECONDS,
) -> str | None:
    """Fetch one branch of `url` (default: origin's) into `refs/remotes/origin/<branch>`.

    Its sha, or None when the remote has no such branch.
    """
    remote, scope = _remote_and_scope(repo, url)
    name = _strip_heads(branch)
    tracking = f"refs/remotes/origin/{name}"
    args = ["fetch", "--no-tags", "--no-write-fetch-head"]
    if depth is not None:
        args.append(f"--depth={_positive(depth)}")
    # The explicit refspec matters: a single-branch clone's configured refspec names only the
    # branch it was cloned at.
    args += ["--", remote, f"+refs/heads/{name}:{tracking}"]
    redact = _redactor(credentials)
    result = _git(repo, args, env=_network_env(credentials, scope), timeout=timeout)
    if result.status != 0:
        error = _network_error("fetch", result, redact, branch=name)
        if error.reason != "BranchNotFound":
            raise error
        # Gone from the remote: forget a stale copy so nobody builds on it later.
        _git(repo, ["update-ref", "-d", tracking], timeout=LOCAL_TIMEOUT_SECONDS)
        return None
    return _resolve(repo, tracking)


def remote_branch_sha(
    remote: str | Path | AnyRepository,
    branch: str,
    *,
    credentials: GitCredentials | None = None,
    timeout: float | None = NETWORK_TIMEOUT_SECONDS,
) -> str | None:
    """The sha a remote branch points at, without fetching anything (`git ls-remote`).

    `remote` is a URL or path, or a clone (its origin is asked). None when the branch is absent.
    """
    ref = f"refs/heads/{_strip_heads(branch)}"
    if isinstance(remote, str | Path):
        where: AnyRepository | None = None
        target = _remote_url(str(remote))
    else:
        where = remote
        target = _origin_url(remote)
    redact = _redactor(credentials)
    result = _git(
        where,
        ["ls-remote", "--", target, ref],
        env=_network_env(credentials, target),
        timeout=timeout,
    )
    if result.status != 0:
        raise _network_error("ls-remote", result, redact)
    # ls-remote matches patterns by their tail (`x/refs/heads/main` matches too): compare exactly.
    for line in result.text.splitlines():
        sha, _, name = line.partition("\t")
        if name == ref:
            return sha
    return None


# --------------------------------------------------------------------------------------- local


def head_commit(repo: AnyRepository) -> str:
    """The sha of HEAD."""
    return _head_from_files(_repository(repo)) or _resolve(repo, "HEAD")


def _head_from_files(repo: Repository) -> str | None:
    """HEAD's sha when HEAD names a branch held in a file of its own, as in a fresh clone.

    Read without a git process; None for anything else (a detached or packed head, a linked
    worktree, another ref storage, a git folder named by other variables): git is asked then.
    """
    git_dir = repo.git_dir
    named = {repo.environment.get(name, str(git_dir)) for name in ("GIT_DIR", "GIT_COMMON_DIR")}
    if named != {str(git_dir)} or (git_dir / "commondir").exists():
        return None
    try:
        head = _BRANCH_HEAD.fullmatch((git_dir / "HEAD").read_text(encoding="ascii"))
        ref = git_dir / head.group(1) if head and ".." not in head.group(1) else None
        if ref is None or not stat.S_ISREG(os.lstat(ref).st_mode):
            return None
        sha = ref.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return sha if _FULL_SHA.match(sha) else None


# --------------------------------------------------------------------------- the sealed clone

#: The sealed clone's git metadata and index, inside the private folder.
SEALED_GIT_DIR = "git"
# Attributes for every path, in the sealed metadata's `info/attributes`, which wins over any
# `.gitattributes` in the work tree: content is committed byte for byte, with no filter,
# end-of-line or encoding conversion chosen by whoever wrote the work tree.
_SEALED_ATTRIBUTES = "* -text !eol -filter -ident -working-tree-encoding -diff -merge\n"
_GITLINK = "160000"


class TreeChange(NamedTuple):
    """One path that differs between two trees, with its mode on each side ("000000": absent)."""

    path: str
    old_mode: str
    new_mode: str
    #: The object on the new side (all zeros when the path is gone there); "" when not asked.
    new_sha: str = ""

    @property
    def is_gitlink(self) -> bool:
        """A submodule entry on either side."""
        return _GITLINK in (self.old_mode, self.new_mode)


# What `seal` leaves behind (paths in the git folder): hooks (see above), and what no command
# here reads: reflogs, the template's `branches`, loose remote-tracking refs (`publish` names the
# base commit by its sha, and fetches what else it needs), and empty folders below the top
# (`refs/tags`, `objects/info`), which git makes when it needs them. On some disks each folder
# made and removed costs milliseconds.
_NOT_SEALED = frozenset({"hooks", "logs", "branches", "refs/remotes"})


def _left_behind(source: Path, folder: str, names: list[str]) -> set[str]:
    """What `seal` does not copy from `folder` (a folder of the clone's git metadata)."""
    below = Path(folder).relative_to(source)
    return {
        name
        for name in names
        if (below / name).as_posix() in _NOT_SEALED
        or (below.parts and _is_empty_folder(os.path.join(folder, name)))
    }


def _is_empty_folder(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode) and not os.listdir(path)
    except OSError:
        return False


def seal(clone: AnyRepository, private_dir: Path) -> Path:
    """Copy a fresh clone's git metadata into `private_dir`; the copy's path.

    Call it before anything untrusted runs in the clone: the copy (configuration, objects,
    refs, index) is then what `open_sealed` works from, whatever happens to the clone's own
    `.git` afterwards. Hooks are left behind and content attributes are pinned (see above).
    """
    target = Path(private_dir).absolute() / SEALED_GIT_DIR
    target.parent.mkdir(parents=True, exist_ok=True)
    source = _repository(clone).git_dir
    shutil.copytree(
        source,
        target,
        symlinks=True,
        ignore=lambda folder, names: _left_behind(source, folder, names),
    )
    (target / "info").mkdir(exist_ok=True)
    (target / "info" / "attributes").write_text(_SEALED_ATTRIBUTES, encoding="utf-8")
    # A background gc would outlive the step that started it. Appended to the copy of a
    # configuration git has just written (a later section wins), instead of a `git config`.
    with (target / "config").open("a", encoding="utf-8") as config:
        config.write("[gc]\n\tauto = 0\n")
    return target


def open_sealed(private_dir: Path, work_tree: Path) -> git.Repo:
    """`open_sealed_repository`, as a GitPython `Repo`."""
    return _gitpython(open_sealed_repository(private_dir, work_tree))


def open_sealed_repository(private_dir: Path, work_tree: Path) -> Repository:
    """The metadata `seal` kept, over `work_tree`: nothing of the work tree's `.git` is read.

    Every command on the returned repository names its git folder, work tree and index
    explicitly, so git neither discovers nor reads another. Raises GitError(InvalidWorkspace)
    when `work_tree` is not a real folder (a symbolic link would point the snapshot at any
    files of this container) or nothing was sealed.
    """
    git_dir = Path(private_dir).absolute() / SEALED_GIT_DIR
    work_tree = Path(work_tree).absolute()
    try:
        is_folder = stat.S_ISDIR(os.lstat(work_tree).st_mode)
    except OSError:
        is_folder = False
    if not is_folder:
        raise GitError(
            "InvalidWorkspace",
            f"{work_tree} is not a folder (the task replaced or removed it)",
            retryable=False,
        )
    if not (git_dir / "HEAD").is_file():
        raise GitError("InvalidWorkspace", f"nothing was sealed in {private_dir}", retryable=False)
    environment = {
        "GIT_DIR": str(git_dir),
        "GIT_WORK_TREE": str(work_tree),
        "GIT_INDEX_FILE": str(git_dir / "index"),
        "GIT_OBJECT_DIRECTORY": str(git_dir / "objects"),
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": "",
        "GIT_COMMON_DIR": str(git_dir),
    }
    # Commands run in the private folder, outside the work tree (as GitPython's Repo of the
    # sealed folder runs them).
    return Repository(git_dir, git_dir.parent, environment)


def snapshot(repo: AnyRepository) -> str:
    """Stage the whole work tree (additions, changes, deletions) and return its tree's sha.

    Files are taken as they are, symbolic links as links (never followed); a nested
    repository becomes a submodule entry (callers decide about those); other file types
    (fifos, sockets, devices) are left out, unless one stands where a tracked file was:
    GitError(UnsupportedFile). A nested repository without a commit cannot be an entry at all:
    GitError(SubmoduleChange).
    """
    added = _git(repo, ["add", "--all"], timeout=LOCAL_TIMEOUT_SECONDS)
    unsupported = re.findall(r"error: (.+): can only add regular files", added.stderr)
    if added.status != 0 and unsupported:
        raise GitError(
            "UnsupportedFile",
            f"{', '.join(unsupported[:10])}: neither a file, a link nor a folder (a fifo, "
            "socket or device where a tracked file was); git cannot commit it",
            retryable=False,
        )
    uncommitted = re.findall(r"error: '(.+?)/?' does not have a commit checked out", added.stderr)
    if added.status != 0 and uncommitted:
        raise GitError(
            "SubmoduleChange",
            f"{', '.join(uncommitted[:10])}: a nested git repository (without a commit), "
            "which cannot be committed",
            retryable=False,
        )
    if added.status != 0:
        raise _local_error(["add", "--all"], added)
    return _checked(repo, ["write-tree"]).text.strip()


def tree_changes(repo: AnyRepository, old: str, new: str) -> list[TreeChange]:
    """Every path that differs between the trees of `old` and `new` (commits or trees)."""
    args = ["diff-tree", "-r", "-z", "--raw", "--no-renames", "--no-ext-diff"]
    # `--`: the two revisions are never taken for paths.
    listing = _checked(repo, [*args, _peeled(old, "tree"), _peeled(new, "tree"), "--"])
    fields = listing.text.split("\0")
    changes = []
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(":"):
            continue
        old_mode, new_mode, _, new_sha = meta[1:].split()[:4]
        changes.append(TreeChange(path, old_mode, new_mode, new_sha))
    return changes


def binary_patch(repo: AnyRepository, old: str, new: str) -> bytes:
    """`git diff --binary --full-index` from tree `old` to tree `new`, as `git apply` takes it.

    Made in a throwaway git folder that borrows `repo`'s objects: the sealed metadata marks
    every path `-diff`, which would turn every text change into a binary one (see `seal`).
    """
    args = ["diff-tree", "-p", "--binary", "--full-index", "--no-renames", "--no-ext-diff"]
    with _plain_view(repo) as view:
        return _checked(
            view, [*args, "--no-textconv", _peeled(old, "tree"), _peeled(new, "tree"), "--"]
        ).stdout


def numstat(repo: AnyRepository, old: str, new: str) -> list[tuple[str, int | None, int | None]]:
    """(path, lines added, lines deleted) per changed path; None, None for a binary file."""
    args = ["diff-tree", "-r", "-z", "--numstat", "--no-renames", "--no-ext-diff"]
    with _plain_view(repo) as view:
        listing = _checked(view, [*args, _peeled(old, "tree"), _peeled(new, "tree"), "--"]).text
    rows = []
    for record in listing.split("\0"):
        added, _, rest = record.partition("\t")
        deleted, _, path = rest.partition("\t")
        if path:
            rows.append((path, _count(added), _count(deleted)))
    return rows


def _count(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def tree_from_patch(repo: AnyRepository, base: str, patch: bytes) -> str:
    """The tree `patch` (as `binary_patch` makes it) turns `base` (a commit) into.

    Applied to a private index alone, never to a work tree, so no path of the patch is written
    to disk. Raises GitError(PatchDoesNotApply) when git refuses the patch: it does not apply
    to `base`, or a path in it is one git will not have in a tree.
    """
    with tempfile.TemporaryDirectory(prefix="backlog-apply-") as folder:
        env = {"GIT_INDEX_FILE": os.path.join(folder, "index")}
        _checked(repo, ["read-tree", _peeled(base, "tree")], env=env)
        # --unsafe-paths is not given: a path leaving the repository is refused.
        args = ["apply", "--cached", "--binary", "--whitespace=nowarn", "-"]
        applied = _git(repo, args, env=env, timeout=LOCAL_TIMEOUT_SECONDS, data=patch)
        if applied.status != 0:
            detail = _excerpt(applied.stderr, Redactor())
            raise GitError(
                "PatchDoesNotApply",
                _sentence("the patch does not apply to its base commit", detail),
                retryable=False,
                detail=detail,
            )
        return _checked(repo, ["write-tree"], env=env).text.strip()


@contextlib.contextmanager
def _plain_view(repo: AnyRepository) -> Iterator[Repository]:
    """A bare, empty git folder reading `repo`'s objects: no attributes, hooks or config."""
    source = _repository(repo)
    objects = source.environment.get("GIT_OBJECT_DIRECTORY") or str(source.git_dir / "objects")
    with tempfile.TemporaryDirectory(prefix="backlog-view-") as folder:
        made = _git(None, ["init", "--quiet", "--bare", folder], timeout=LOCAL_TIMEOUT_SECONDS)
        if made.status != 0:
            raise _local_error(["init"], made)
        view = Path(folder)
        environment = {
            "GIT_DIR": folder,
            "GIT_OBJECT_DIRECTORY": str(view / "objects"),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(Path(objects).absolute()),
        }
        yield Repository(view, view, environment)


def fetch_commit(
    repo: AnyRepository,
    sha: str,
    *,
    url: str,
    credentials: GitCredentials | None = None,
    timeout: float | None = NETWORK_TIMEOUT_SECONDS,
) -> bool:
    """Fetch commit `sha` (and nothing else: depth 1) from `url`; whether the remote had it."""
    if not _FULL_SHA.match(sha):
        raise GitError("RefNotFound", f"{sha!r} is not a full commit name", retryable=False)
    remote, scope = _remote_and_scope(repo, url)
    args = ["fetch", "--no-tags", "--no-write-fetch-head", "--depth=1", "--", remote, sha]
    result = _git(repo, args, env=_network_env(credentials, scope), timeout=timeout)
    if result.status != 0:
        error = _network_error("fetch", result, _redactor(credentials))
        if error.reason in ("GitFailed", "BranchNotFound", "RefNotFound"):
            return False
        raise error
    return True


def load_index(repo: AnyRepository, tree: str) -> None:
    """Make the index hold `tree` (the work tree is not touched): `put_file` then edits it."""
    _checked(repo, ["read-tree", _peeled(tree, "tree")])


def tree_of(repo: AnyRepository, revision: str) -> str:
    """The sha of the tree of `revision` (a commit or a tree); GitError(RefNotFound)."""
    return _resolve(repo, revision, "tree")


def tree_paths(repo: AnyRepository, tree: str) -> list[str]:
    """Every path of a file, link or submodule in `tree` (a commit or a tree)."""
    listing = _checked(
        repo, ["ls-tree", "-r", "-z", "--name-only", "--full-tree", _peeled(tree, "tree")]
    )
    return [path for path in listing.text.split("\0") if path]


def write_blob(repo: AnyRepository, data: bytes) -> str:
    """Store `data` as a blob, exactly (no filters); its sha."""
    # Read from stdin, a blob is hashed as it is: no attribute, filter or conversion applies.
    return _checked(repo, ["hash-object", "-w", "--no-filters", "--stdin"], data=data).text.strip()


def put_file(repo: AnyRepository, path: str, blob: str, mode: str = "100644") -> str:
    """Set `path` to `blob` in the index (nothing is written to the work tree); the new tree."""
    _checked(repo, ["update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}"])
    return _checked(repo, ["write-tree"]).text.strip()


def commit_tree(
    repo: AnyRepository,
    *,
    tree: str,
    parents: Sequence[str],
    message: str,
    author_name: str,
    author_email: str,
) -> str:
    """A new commit of `tree` (a tree, or a commit whose tree is taken) with these parents.

    Its sha; no ref moves. With a branch's head among the parents, pushing it onto that branch
    is a fast-forward: how an open pull request's branch is superseded without a force push.
    """
    args = ["commit-tree", "--no-gpg-sign", "-m", message]
    for parent in parents:
        args += ["-p", _peeled(parent, "commit")]
    args.append(_peeled(tree, "tree"))
    return _checked(repo, args, env=_identity(author_name, author_email)).text.strip()


def commit_parents(repo: AnyRepository, commit: str) -> list[str]:
    """The parents of `commit`, first parent first; GitError(RefNotFound) when it is none
    (or when the history was fetched too shallow to hold them: a shallow commit has none)."""
    text = _checked(repo, ["rev-list", "--parents", "-n", "1", _peeled(commit, "commit")]).text
    return text.split()[1:]


# ------------------------------------------------------------------- fetching without a work tree


class TreeEntry(NamedTuple):
    """What a path is in a commit's tree, told without reading a file's contents.

    `mode` as git writes it (100644 a file, 100755 an executable file, 120000 a symbolic link,
    040000 a folder, 160000 a submodule), `kind` (blob, tree, commit), the object's `sha`, and
    `size` in bytes for a blob (None for anything else).
    """

    mode: str
    kind: str
    sha: str
    size: int | None

    @property
    def is_file(self) -> bool:
        """True for a regular file (executable or not); a symbolic link is not one."""
        return self.kind == "blob" and self.mode in ("100644", "100755")


def remote_url(url: str) -> str:
    """`url` as git is given it: checked, local paths made absolute (the key of one remote).

    Raises GitError: CredentialsInUrl, UnsupportedUrl.
    """
    return _remote_url(url)


def init_bare(dest: Path, url: str, *, lazy_blobs: bool = False) -> git.Repo:
    """`init_bare_repository`, as a GitPython `Repo`."""
    return _gitpython(init_bare_repository(dest, url, lazy_blobs=lazy_blobs))


def init_bare_repository(dest: Path, url: str, *, lazy_blobs: bool = False) -> Repository:
    """A new bare repository at `dest` (which must not hold one) whose origin is `url`.

    `remote.origin.url` is written last, so a repository left half made (a crash) has none.

    For fetching into with `fetch_branch` and reading with `entry_at` and `read_blob`; nothing is
    checked out. With `lazy_blobs` it is a partial clone of origin: fetches bring commits and
    folders but no file contents (`blob:none`), and `entry_at` fetches the one blob it is asked
    about. A server that does not filter sends everything, which costs time and nothing else.

    Raises GitError: CredentialsInUrl, UnsupportedUrl, GitFailed.
    """
    remote = _remote_url(url)
    dest = Path(dest).absolute()
    # An empty template: no sample hooks or other files from the machine's git installation.
    result = _git(
        None, ["init", "--quiet", "--bare", "--template=", str(dest)], timeout=LOCAL_TIMEOUT_SECONDS
    )
    if result.status != 0:
        detail = _excerpt(result.stderr, Redactor())
        reason, sentence = _classify_local("init", result)
        raise GitError(reason, _sentence(sentence, detail), retryable=False, detail=detail)
    repo = Repository(dest, dest)
    # A background gc would outlive the fetch that started it, and race with whoever removes or
    # replaces this folder next.
    settings = [("gc.autoDetach", "false")]
    if lazy_blobs:
        # What `git clone --filter=blob:none` writes; fetches from origin then use the filter.
        settings += [
            ("core.repositoryFormatVersion", "1"),
            ("extensions.partialClone", "origin"),
            ("remote.origin.promisor", "true"),
            ("remote.origin.partialCloneFilter", "blob:none"),
        ]
    # The origin last: a repository that has one was made to the end.
    settings.append(("remote.origin.url", remote))
    for key, value in settings:
        # `--`: a value is never read as an option.
        _checked(repo, ["config", "--", key, value])
    return repo


def entry_at(
    repo: AnyRepository,
    ref: str,
    path: str,
    *,
    credentials: GitCredentials | None = None,
    timeout: float | None = NETWORK_TIMEOUT_SECONDS,
) -> TreeEntry | None:
    """What `path` is in `ref`, a commit or a tree (None when nothing is there); reads no file.

    In a partial clone (`init_bare(lazy_blobs=True)`) a blob's size is only known once the blob
    is here, so git fetches that one blob from origin: hence `credentials` and the network
    errors (RepositoryUnreachable, AuthenticationFailed, ...) besides GitError(RefNotFound) when
    `ref` names neither a commit nor a tree.
    """
    tree = _peeled(ref, "tree")
    wanted = path.strip("/")
    # --literal-pathspecs: a path such as `:(glob)*` is a name, not pathspec magic.
    args = ["--literal-pathspecs", "ls-tree", "-z", "-l", "--full-tree", tree, "--", wanted]
    env = _origin_env(repo, credentials)
    result = _git(repo, args, env=env, timeout=timeout)
    if result.status != 0 and re.search(_NO_SUCH_OBJECT, result.stderr, re.IGNORECASE):
        raise GitError("RefNotFound", f"{ref!r} names neither a commit nor a tree", retryable=False)
    if result.status != 0:
        raise _network_error("ls-tree", result, _redactor(credentials))
    for entry in result.text.split("\0"):
        meta, _, name = entry.partition("\t")
        fields = meta.split()
        if name == wanted and len(fields) == 4:
            mode, kind, sha, size = fields
            return TreeEntry(mode, kind, sha, int(size) if size.isdigit() else None)
    return None


def read_blob(
    repo: AnyRepository,
    sha: str,
    *,
    credentials: GitCredentials | None = None,
    timeout: float | None = NETWORK_TIMEOUT_SECONDS,
) -> bytes:
    """The bytes of blob `sha`; in a partial clone that lacks it, fetched from origin first.

    Raises GitError: RefNotFound when `sha` is no blob here (nor, in a partial clone, at origin),
    and the network errors of a fetch.
    """
    if not _FULL_SHA.match(sha):
        raise GitError("RefNotFound", f"{sha!r} is not a full object name", retryable=False)
    env = _origin_env(repo, credentials)
    result = _git(repo, ["cat-file", "blob", sha], env=env, timeout=timeout)
    if result.status != 0:
        error = _network_error("cat-file", result, _redactor(credentials))
        # A failed fetch of the blob says why in its own words (classified above); otherwise
        # git's only complaint is that the object is not there.
        missing = re.search(r"bad file|not a valid object|unable to read", result.stderr, re.I)
        if error.reason == "GitFailed" and missing:
            raise GitError("RefNotFound", f"there is no blob {sha} here", retryable=False)
        raise error
    return result.stdout


def blob_id(data: bytes, *, like: str) -> str:
    """The object name git gives a blob holding `data`, computed here without a git process.

    In the hash of `like`, an object name of the same repository: SHA-1, or SHA-256 in a
    repository of that object format (64 hex digits).
    """
    digest = hashlib.sha256 if len(like) == 64 else hashlib.sha1
    header = b"blob %d\0" % len(data)
    return digest(header + data).hexdigest()


# ------------------------------------------------------------------------- merging without a tree

# For `merge_trees`, in the bare repository's `info/attributes` (which wins over any
# `.gitattributes` of the merged commits): git's own text merge for every path, and no filter,
# end-of-line or encoding conversion chosen by the repository's content.
_MERGE_ATTRIBUTES = "* -text !eol -filter -ident -working-tree-encoding -diff merge=text\n"


class MergedTree(NamedTuple):
    """What merging two commits gives: the tree (conflicting files hold conflict markers) and
    the paths that conflict (empty: a clean merge)."""

    tree: str
    conflicted: list[str]


def is_ancestor(repo: AnyRepository, ancestor: str, descendant: str) -> bool:
    """Whether commit `ancestor` is `descendant` or in its history."""
    args = [
        "merge-base",
        "--is-ancestor",
        _peeled(ancestor, "commit"),
        _peeled(descendant, "commit"),
    ]
    result = _git(repo, args, timeout=LOCAL_TIMEOUT_SECONDS)
    if result.status not in (0, 1):
        raise _local_error(args, result)
    return result.status == 0


def merge_base(repo: AnyRepository, one: str, other: str) -> str | None:
    """The best common ancestor of two commits (one of them, when there are several); None for
    unrelated histories."""
    args = ["merge-base", _peeled(one, "commit"), _peeled(other, "commit")]
    result = _git(repo, args, timeout=LOCAL_TIMEOUT_SECONDS)
    if result.status == 1 and not result.stderr:
        return None
    if result.status != 0:
        raise _local_error(args, result)
    return result.text.split()[0]


def merge_trees(repo: AnyRepository, ours: str, theirs: str) -> MergedTree:
    """Merge commit `theirs` into `ours` as `git merge` would, without a work tree or index.

    For a bare repository (`init_bare_repository`): nothing is checked out and no ref moves.
    Its `info/attributes` is pinned first, so the merged commits' `.gitattributes` choose no
    merge driver or conversion. Raises GitError (GitFailed) when git cannot merge at all
    (unrelated histories).
    """
    info = _repository(repo).git_dir / "info"
    info.mkdir(exist_ok=True)
    (info / "attributes").write_text(_MERGE_ATTRIBUTES, encoding="utf-8")
    args = ["merge-tree", "--write-tree", "--name-only", "--no-messages", "-z"]
    args += [_peeled(ours, "commit"), _peeled(theirs, "commit")]
    result = _git(repo, args, timeout=LOCAL_TIMEOUT_SECONDS)
    # 0: clean, 1: conflicts; anything else is git refusing to merge.
    fields = [field for field in result.text.split("\0") if field]
    if result.status not in (0, 1) or not fields or not _FULL_SHA.match(fields[0]):
        raise _local_error(args, result)
    return MergedTree(fields[0], sorted(set(fields[1:])) if result.status == 1 else [])


def tree_with_file(
    repo: AnyRepository, tree: str, path: str, blob: str, mode: str = "100644"
) -> str:
    """`tree` (a tree or a commit) with `path` holding `blob`; the new tree's sha.

    Made in an index file of its own beside the git folder, so neither a work tree nor the
    repository's index is touched.
    """
    index = _repository(repo).git_dir / "merge-index"
    env = {"GIT_INDEX_FILE": str(index)}
    try:
        _checked(repo, ["read-tree", _peeled(tree, "tree")], env=env)
        _checked(repo, ["update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}"], env=env)
        return _checked(repo, ["write-tree"], env=env).text.strip()
    finally:
        index.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ internals


class _Result(NamedTuple):
    status: int
    stdout: bytes
    stderr: str
    timeout: float | None = None
    killed: bool = False

    @property
    def text(self) -> str:
        # surrogateescape: a path that is not UTF-8 survives the round trip to the file system.
        return self.stdout.decode("utf-8", "surrogateescape")

    @property
    def timed_out(self) -> bool:
        return self.killed or self.status < 0


def _git(
    where: AnyRepository | None,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None,
    data: bytes | None = None,
) -> _Result:
    """Run one git command; never raises for git's own failures (callers classify them).

    `data` goes to its stdin (otherwise closed). After `timeout` seconds the command and the
    processes it started are killed, and the result says it timed out.
    """
    repo = _repository(where) if where is not None else None
    # The variable GitPython reads, so a machine that names its git there keeps it.
    command = [os.environ.get("GIT_PYTHON_GIT_EXECUTABLE") or "git", *args]
    # Messages in English (they are classified); then the repository's variables, then ours.
    environment = {
        **os.environ,
        "LANGUAGE": "C",
        "LC_ALL": "C",
        **(repo.environment if repo is not None else {}),
        **_environment(()),
        **(env or {}),
    }
    cwd = repo.cwd if repo is not None and os.access(repo.cwd, os.X_OK) else None
    # Command lines carry no secret (see the module docstring): fine for a debug log.
    log.debug("git %s (in %s)", " ".join(args), cwd or ".")
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=environment,
            stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as error:
        raise GitError(
            "GitNotInstalled", "the git executable cannot be run", retryable=False
        ) from error
    stdout, stderr, killed = _communicate(process, data, timeout)
    text = stderr.decode("utf-8", "surrogateescape").removesuffix("\n")
    return _Result(process.returncode, stdout, text, timeout=timeout, killed=killed)


def _communicate(
    process: subprocess.Popen[bytes], data: bytes | None, timeout: float | None
) -> tuple[bytes, bytes, bool]:
    """The process's stdout and stderr, and whether it was killed for running out of time.

    The deadline is a timer that kills the process: `communicate(timeout=...)` would end by
    polling for the process's exit with sleeps, a millisecond or more lost per command.
    """
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        _kill_with_descendants(process.pid)

    watchdog = threading.Timer(timeout, kill) if timeout is not None else None
    if watchdog is not None:
        watchdog.daemon = True
        watchdog.start()
    try:
        stdout, stderr = process.communicate(data)
    except BaseException:  # interrupted: leave no git behind
        _kill_with_descendants(process.pid)
        process.wait()
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
    return stdout, stderr, killed.is_set()


def _kill_with_descendants(pid: int) -> None:
    """SIGKILL a command and what it started (a transport helper, ssh), found before killing."""
    pids = [pid]
    for parent in pids:
        try:
            children = subprocess.run(
                ["pgrep", "-P", str(parent)], capture_output=True, check=False, timeout=10
            ).stdout.split()
        except (OSError, subprocess.SubprocessError):
            continue  # no pgrep: the command itself is still killed
        pids += [int(child) for child in children if child.isdigit()]
    for each in pids:
        with contextlib.suppress(OSError):
            os.kill(each, signal.SIGKILL)


def _checked(
    repo: AnyRepository,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> _Result:
    """Run a local command; any failure is a GitError."""
    result = _git(repo, args, env=env, timeout=LOCAL_TIMEOUT_SECONDS, data=data)
    if result.status != 0:
        raise _local_error(args, result)
    return result


def _local_error(args: Sequence[str], result: _Result) -> GitError:
    detail = _excerpt(result.stderr, Redactor())
    reason, sentence = _classify_local(args[0], result)
    return GitError(reason, _sentence(sentence, detail), retryable=False, detail=detail)


def _peeled(revision: str, kind: str) -> str:
    """`revision^{kind}` for a command to resolve itself; GitError(RefNotFound) for an option."""
    # A leading dash would be read as an option; no ref name starts with one.
    if revision.startswith("-"):
        raise GitError("RefNotFound", f"{revision!r} does not name a {kind}", retryable=False)
    return f"{revision}^{{{kind}}}"


def _resolve(repo: AnyRepository, revision: str, kind: str = "") -> str:
    """The full sha of `revision` (peeled to `kind`: commit, tree); GitError(RefNotFound)."""
    # A leading dash would be read as an option; no ref name starts with one.
    result = None
    if not revision.startswith("-"):
        peeled = f"{revision}^{{{kind}}}" if kind else revision
        result = _git(
            repo, ["rev-parse", "--verify", "--quiet", peeled], timeout=LOCAL_TIMEOUT_SECONDS
        )
    sha = result.text.strip() if result is not None else ""
    if result is None or result.status != 0 or not _FULL_SHA.match(sha):
        what = f"a {kind}" if kind else "anything"
        raise GitError("RefNotFound", f"{revision!r} does not name {what}", retryable=False)
    return sha


def _environment(config: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Variables every git command gets, with `config` appended to the base configuration."""
    entries = [*_BASE_CONFIG, *config]
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        # An empty GIT_ASKPASS wins over core.askPass and SSH_ASKPASS, and is then skipped.
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_ALLOW_PROTOCOL": ":".join(_ALLOWED_PROTOCOLS),
        # Traces (GIT_TRACE_CURL, if a person set it) must mask Authorization headers.
        "GIT_TRACE_REDACT": "1",
        # Only the configuration we pass (and the repository's own): see the module docstring.
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_COUNT": str(len(entries)),
    }
    for index, (key, value) in enumerate(entries):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    if not os.environ.get("GIT_SSH_COMMAND") and not os.environ.get("GIT_SSH"):
        # BatchMode: a passphrase or an unknown host key fails instead of waiting on a terminal.
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes -o ConnectTimeout=30"
    return env


def _network_env(credentials: GitCredentials | None, url: str) -> dict[str, str]:
    """The environment of a command that talks to `url` (the token's helper scoped to it)."""
    if credentials is None:
        return _environment(())
    token_file = credentials.token_file
    if token_file is not None and not os.access(token_file, os.R_OK):
        raise GitError(
            "CredentialsUnavailable",
            f"the token file {token_file} cannot be read",
            retryable=False,
        )
    return credentials.environment(url)


def _origin_env(repo: AnyRepository, credentials: GitCredentials | None) -> dict[str, str]:
    """The environment of a command that may fetch from origin (a partial clone's lazy blob).

    Origin's URL is looked up (one more git process) only when there are credentials to scope.
    """
    if credentials is None:
        return _environment(())
    return _network_env(credentials, _origin_url(repo, required=False))


def credential_scope(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, the only server its token is offered to.

    None for any other transport (ssh, git, file, a local path), which never asks for a token.
    """
    if "://" not in url:
        return None
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.netloc.rpartition("@")[2]  # userinfo is refused elsewhere; never part of a key
    return f"{scheme}://{host.lower()}"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    import ipaddress  # only for a token over plain http

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _identity(name: str, email: str) -> dict[str, str]:
    # Author and committer alike, from the goal: a machine without git identity can commit.
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def _redactor(credentials: GitCredentials | None) -> Redactor:
    redactor = Redactor()
    if credentials is not None:
        redactor.add(credentials.read_token())
    return redactor


def _remote_url(url: str) -> str:
    """`url` checked and ready for git: no credentials, a known transport, local paths absolute."""
    if url_has_credentials(url):
        # The URL itself is not repeated: it holds the secret.
        raise GitError(
            "CredentialsInUrl",
            "the repository URL carries credentials; give the token as a file instead",
            retryable=False,
        )
    if _REMOTE_HELPER_SYNTAX.match(url):
        raise GitError(
            "UnsupportedUrl",
            "remote helper URLs (<transport>::<address>) are not supported",
            retryable=False,
        )
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme not in _URL_SCHEMES:
            raise GitError(
                "UnsupportedUrl", f"the URL scheme {scheme!r} is not supported", retryable=False
            )
        return url
    colon, slash = url.find(":"), url.find("/")
    if colon > 0 and (slash == -1 or colon < slash):
        return url  # scp-like `user@host:path`, git's own rule: a colon before any slash
    return os.path.abspath(os.path.expanduser(url))


def _remote_and_scope(repo: AnyRepository, url: str | None) -> tuple[str, str]:
    """What to name on git's command line, and the URL the token is scoped to.

    A given URL is named itself. Without one, `origin` is named (so its configured partial
    clone filter applies) and its checked URL scopes the token.
    """
    if url is not None:
        remote = _remote_url(url)
        return remote, remote
    return "origin", _origin_url(repo)


def _origin_url(repo: AnyRepository, *, required: bool = True) -> str:
    """Origin's URL as configured, checked like any URL we are given (no credentials in it).

    Raises GitError(RepositoryUnreachable) when there is none and `required`; else "".
    """
    result = _git(repo, ["config", "--get", "remote.origin.url"], timeout=LOCAL_TIMEOUT_SECONDS)
    if result.status == 0 and result.text.strip():
        return _remote_url(result.text.strip())
    if required:
        raise GitError("RepositoryUnreachable", "the clone has no origin", retryable=False)
    return ""


def _strip_heads(branch: str) -> str:
    return branch.removeprefix("refs/heads/")


def _positive(depth: int) -> int:
    if depth < 1:
        raise ValueError("depth must be at least 1 (or None for the whole history)")
    return depth


# ------------------------------------------------------------------------------ classification

# (pattern in git's stderr, reason, retryable, sentence), first match wins. git's messages are
# English because every command runs with LC_ALL=C (see `_git`).
# The patterns stay text until a command fails: compiling them all would cost every step's
# start for the rare failure (`re` keeps what it compiles).
_Rule = tuple[str, str, bool, str]


def _rule(pattern: str, reason: str, retryable: bool, sentence: str) -> _Rule:
    return pattern, reason, retryable, sentence


_AUTHENTICATION = "the remote refused the credentials (or none were given)"
_NETWORK_RULES: tuple[_Rule, ...] = (
    _rule(
        r"invalid refspec",
        "InvalidBranchName",
        False,
        "the branch (or the commit to push) is not a valid git name",
    ),
    _rule(
        r"already exists and is not an empty directory",
        "DestinationNotEmpty",
        False,
        "the destination folder is not empty",
    ),
    _rule(
        r"src refspec .* does not match any",
        "RefNotFound",
        False,
        "there is no such local branch or commit to push",
    ),
    _rule(
        r"authentication failed|could not read (username|password)|terminal prompts disabled"
        r"|invalid username or password|HTTP Basic: Access denied|returned error: 401"
        r"|permission denied \(publickey|permission denied, please try again",
        "AuthenticationFailed",
        False,
        _AUTHENTICATION,
    ),
    _rule(
        r"host key verification failed|no matching host key type",
        "AuthenticationFailed",
        False,
        "the remote's ssh host key is not trusted",
    ),
    _rule(
        r"remote branch \S+ not found in upstream|couldn't find remote ref",
        "BranchNotFound",
        False,
        "the branch does not exist on the remote",
    ),
    _rule(
        r"returned error: 403|permission to \S+ denied",
        "AuthenticationFailed",
        False,
        "the credentials are not allowed to read this repository",
    ),
    _rule(
        r"does not exist|does not appear to be a git repository|repository not found"
        r"|not a git repository|returned error: 404|repository '.*' not found",
        "RepositoryUnreachable",
        False,
        "the repository does not exist, or these credentials cannot see it",
    ),
    _rule(
        r"could not resolve host|name or service not known|temporary failure in name resolution"
        r"|failed to connect|couldn't connect|connection refused|connection timed out"
        r"|connection reset|operation timed out|timed out|network is unreachable"
        r"|no route to host|unable to access|remote end hung up|early EOF|RPC failed"
        r"|returned error: 5\d\d|SSL|TLS|gnutls|could not read from remote repository",
        "RepositoryUnreachable",
        True,
        "the remote cannot be reached",
    ),
)

# `git push --porcelain`: `!<TAB>from:to<TAB>[rejected] (non-fast-forward)` for a refused ref.
_PORCELAIN_REJECTION = r"^!\t[^\t]*\t\[(?P<kind>[^\]]+)\]\s*(?:\((?P<why>.*)\))?"


def _push_error(result: _Result, redact: Redactor, target: str) -> GitError:
    detail = _excerpt(result.stderr + "\n" + result.text, redact)
    for line in result.text.splitlines():
        match = re.match(_PORCELAIN_REJECTION, line)
        if not match:
            continue
        kind, why = match.group("kind"), (match.group("why") or "").lower()
        if kind == "rejected" and any(
            word in why for word in ("non-fast-forward", "fetch first", "stale info")
        ):
            sentence = f"{target} on the remote moved on; the push would lose its commits"
            return GitError(
                "NonFastForward", _sentence(sentence, detail), retryable=True, detail=detail
            )
        if kind == "remote rejected" and "shallow update not allowed" in why:
            sentence = "the remote refused history that this shallow clone cannot complete"
            return GitError("GitFailed", _sentence(sentence, detail), retryable=True, detail=detail)
        if kind == "remote failure":
            sentence = "the remote did not confirm the push"
            return GitError(
                "RepositoryUnreachable", _sentence(sentence, detail), retryable=True, detail=detail
            )
        sentence = (
            f"the remote refused the push to {target} (a hook, branch protection or permission)"
        )
        return GitError("PushRejected", _sentence(sentence, detail), retryable=False, detail=detail)
    if re.search(r"returned error: 403|permission to \S+ denied", result.stderr, re.IGNORECASE):
        sentence = f"the credentials are not allowed to push to {target}"
        return GitError("PushRejected", _sentence(sentence, detail), retryable=False, detail=detail)
    return _network_error("push", result, redact)


def _network_error(
    command: str, result: _Result, redact: Redactor, *, branch: str | None = None
) -> GitError:
    detail = _excerpt(result.stderr, redact)
    if result.timed_out:
        sentence = f"git {command} timed out talking to the remote (after {result.timeout:g} s)"
        return GitError("RepositoryUnreachable", _sentence(sentence, ""), retryable=True)
    for pattern, reason, retryable, sentence in _NETWORK_RULES:
        if re.search(pattern, result.stderr, re.IGNORECASE):
            if reason == "BranchNotFound" and branch is not None:
                sentence = f"the branch {branch!r} does not exist on the remote"
            full = _sentence(f"git {command} failed: {sentence}", detail)
            return GitError(reason, full, retryable=retryable, detail=detail)
    # Unforeseen, after talking to a remote: as likely a passing fault as a lasting one.
    return GitError(
        "GitFailed", _sentence(f"git {command} failed", detail), retryable=True, detail=detail
    )


def _classify_local(command: str, result: _Result) -> tuple[str, str]:
    stderr = result.stderr.lower()
    if result.timed_out:
        return "GitFailed", f"git {command} timed out"
    if re.search(
        r"not a valid object name|unknown revision|bad revision|invalid reference", stderr
    ):
        return "RefNotFound", f"git {command} failed: no such revision"
    return "GitFailed", f"git {command} failed"


# Lines that say nothing the rest of git's message does not: progress, advice, boilerplate.
_NOISE = (
    "hint:",
    "Cloning into",
    "To ",
    "Done",
    "error: failed to push some refs",
    "Please make sure you have the correct access rights",
    "and the repository exists.",
)


def _excerpt(text: str, redact: Redactor, limit: int = 800) -> str:
    """git's meaningful lines, scrubbed and joined on one line."""
    lines = []
    for raw in text.splitlines():
        line = " ".join(raw.split())  # porcelain output is tab-separated
        if line and not line.startswith(_NOISE):
            lines.append(redact(line))
    joined = " | ".join(dict.fromkeys(lines))  # git repeats itself ("fatal: ..." twice)
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


def _sentence(summary: str, detail: str) -> str:
    return f"{summary}: {detail}" if detail else summary
