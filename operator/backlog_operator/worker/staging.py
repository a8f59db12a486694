"""A staged change: what `publish` would commit, held back for a person to approve.

The change is the tree `publish` would commit (the task's work and the backlog writeback)
against the base commit. It travels as a patch, `git diff --binary --full-index` between the
two trees, which `git apply` takes and a person can read. It is identified by its hash, a
`sha256:` over a canonical form of the change itself, not over the patch's bytes: the same
change hashes the same whoever renders the patch and with whichever git, and the hash is
checked on the tree a patch gives, so a patch edited after staging cannot be committed under
the staged hash.

The canonical form (version 1), as bytes::

    backlog-operator staged change v1\\n
    base <base commit sha>\\n
    branch <branch name>\\n
    then, per changed path in the byte order of the paths:
    <new mode> <sha256 of the new content, or "-" when the path is gone> <path>\\0

The branch is in it because the writeback names it: approving the hash approves where the
change goes. Modes are git's (100644, 100755, 120000 for a symbolic link, whose content is
its target).

This module does no I/O of its own: it works on the repository it is given, through the git
adapter, and on the bytes and JSON it is handed.
"""

# No `from __future__ import annotations` here: `typing.NamedTuple` would compile each of its
# fields' annotations from their text, a noticeable part of a step's start. Named tuples, not
# dataclasses: `dataclasses` imports `inspect` (and it `ast`, `dis`), some 10 ms of the `stage`
# and `apply` steps (see tests/git/test_worker_imports.py).

import hashlib
import json
from typing import Any, NamedTuple

from backlog_operator.adapters import git as gitops
from backlog_operator.worker.failures import StepFailure

#: The largest patch staged or applied, in bytes. A change over it fails permanently
#: (PatchTooLarge): a larger one is no change a person reviews before it is pushed.
MAX_PATCH_BYTES = 1 << 20

HASH_PREFIX = "sha256:"
_VERSION = b"backlog-operator staged change v1\n"
_ABSENT = "000000"
_NULL_SHA = "0" * 40
_GITDIR_NAMES = frozenset({".git"})


class ChangedEntry(NamedTuple):
    """One path of the change: its new mode and the sha256 of its new content (None: gone)."""

    path: str
    mode: str
    content_sha256: str | None


class StagedChange(NamedTuple):
    """A change as staged: the patch and what the manifest says of it."""

    base_commit: str
    branch: str
    tree: str
    patch: bytes
    hash: str
    changed_files: list[str]
    diffstat: list[dict[str, Any]]

    def manifest(self) -> dict[str, Any]:
        """The manifest, as JSON-ready data (camelCase, as on the Kubernetes side)."""
        return {
            "version": 1,
            "patchHash": self.hash,
            "baseCommit": self.base_commit,
            "branch": self.branch,
            "changedFiles": self.changed_files,
            "diffstat": self.diffstat,
            "patchBytes": len(self.patch),
        }


class Manifest(NamedTuple):
    """What applying needs from a manifest; hostile input, bound by the hash it is checked on."""

    base_commit: str
    branch: str

    @classmethod
    def parse(cls, data: bytes) -> "Manifest":
        """Read a manifest; StepFailure(InvalidPatch) when it is not one."""
        try:
            loaded = json.loads(data) if len(data) <= 64 * 1024 else None
        except ValueError:
            loaded = None
        base = loaded.get("baseCommit") if isinstance(loaded, dict) else None
        branch = loaded.get("branch") if isinstance(loaded, dict) else None
        if not isinstance(base, str) or not isinstance(branch, str) or len(base) != 40:
            raise StepFailure(
                "InvalidPatch",
                "the manifest is not a staged change's (baseCommit, branch); nothing was pushed",
                retryable=False,
            )
        return cls(base_commit=base, branch=branch)


def canonical_form(base_commit: str, branch: str, entries: list[ChangedEntry]) -> bytes:
    """The bytes the hash is taken over (see the module docstring)."""
    if "\n" in base_commit or "\n" in branch:
        raise ValueError("a base commit or branch name has no newline")
    parts = [_VERSION, f"base {base_commit}\n".encode(), f"branch {branch}\n".encode()]
    for entry in sorted(entries, key=lambda e: _path_bytes(e.path)):
        content = entry.content_sha256 or "-"
        parts.append(f"{entry.mode} {content} ".encode() + _path_bytes(entry.path) + b"\0")
    return b"".join(parts)


def change_hash(base_commit: str, branch: str, entries: list[ChangedEntry]) -> str:
    """`sha256:<hex>` of the canonical form."""
    return HASH_PREFIX + hashlib.sha256(canonical_form(base_commit, branch, entries)).hexdigest()


def _path_bytes(path: str) -> bytes:
    # surrogateescape: the git adapter reads a path that is not UTF-8 that way.
    return path.encode("utf-8", "surrogateescape")


def changed_entries(repo: gitops.AnyRepository, base: str, tree: str) -> list[ChangedEntry]:
    """The change from `base` to `tree` as canonical entries (each new blob read once)."""
    entries = []
    for change in gitops.tree_changes(repo, base, tree):
        if change.new_mode == _ABSENT or change.new_sha in ("", _NULL_SHA):
            entries.append(ChangedEntry(change.path, _ABSENT, None))
            continue
        data = gitops.read_blob(repo, change.new_sha)
        entries.append(ChangedEntry(change.path, change.new_mode, hashlib.sha256(data).hexdigest()))
    return entries


def stage(
    repo: gitops.AnyRepository, *, base_commit: str, commit: str, branch: str
) -> StagedChange:
    """The staged change of `commit` (what `publish` committed, unpushed) on `base_commit`.

    StepFailure(PatchTooLarge) when the patch is over MAX_PATCH_BYTES.
    """
    patch = gitops.binary_patch(repo, base_commit, commit)
    check_size(len(patch))
    entries = changed_entries(repo, base_commit, commit)
    stats = gitops.numstat(repo, base_commit, commit)
    return StagedChange(
        base_commit=base_commit,
        branch=branch,
        tree=gitops.tree_of(repo, commit),
        patch=patch,
        hash=change_hash(base_commit, branch, entries),
        changed_files=sorted(entry.path for entry in entries),
        diffstat=[{"path": p, "added": a, "deleted": d} for p, a, d in sorted(stats)],
    )


def check_size(size: int) -> None:
    """StepFailure(PatchTooLarge), permanent, when a patch of `size` bytes is over the bound."""
    if size > MAX_PATCH_BYTES:
        raise StepFailure(
            "PatchTooLarge",
            f"the change is a patch of {size} bytes, over the limit of {MAX_PATCH_BYTES} for a "
            "change awaiting approval; nothing was pushed",
            retryable=False,
        )


def check_hash(given: str) -> str:
    """`given` if it has the form of a change's hash; StepFailure(InvalidPatchHash) if not."""
    digest = given.removeprefix(HASH_PREFIX)
    if not given.startswith(HASH_PREFIX) or len(digest) != 64 or not _is_hex(digest):
        raise StepFailure(
            "InvalidPatchHash",
            f"{given[:80]!r} is not a change's hash (sha256: and 64 hex digits)",
            retryable=False,
        )
    return given


def _is_hex(text: str) -> bool:
    return all(char in "0123456789abcdef" for char in text)


def refuse_git_paths(paths: list[str]) -> None:
    """StepFailure(PathViolation) for a path with a `.git` part (any letter case)."""
    inside = [path for path in paths if any(p.lower() in _GITDIR_NAMES for p in path.split("/"))]
    if inside:
        raise StepFailure(
            "PathViolation",
            f"the patch writes into a .git folder: {', '.join(inside[:10])}; nothing was pushed",
            retryable=False,
        )


def verify(
    repo: gitops.AnyRepository, manifest: Manifest, tree: str, expected: str
) -> list[ChangedEntry]:
    """The entries of `tree` against the manifest's base when they hash to `expected`;
    StepFailure(PatchHashMismatch) when they do not (the patch or manifest was edited, or the
    hash is another change's)."""
    entries = changed_entries(repo, manifest.base_commit, tree)
    actual = change_hash(manifest.base_commit, manifest.branch, entries)
    if actual != expected:
        raise StepFailure(
            "PatchHashMismatch",
            f"the patch gives the change {actual}, not the approved {expected}: it was edited "
            "after staging, or the hash is another change's; nothing was pushed",
            retryable=False,
        )
    return entries
