"""A unified diff between two commits, as `git diff` prints it, for `backlogctl run --dry-run`.

Rendered here from the blobs rather than by `git diff`: the sealed metadata `publish` works in
marks every path `-diff` (content is committed byte for byte, see the git adapter), which
makes git print every change as "Binary files differ".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from backlog_operator.adapters import git as gitops

_ABSENT = "000000"
# As git decides: a NUL byte in the first 8000 bytes makes a file binary.
_BINARY_PROBE = 8000


def unified_diff(repo: gitops.AnyRepository, old: str, new: str) -> str:
    """Every change from commit (or tree) `old` to `new`, as `git diff old new` shows it."""
    parts = []
    for change in sorted(gitops.tree_changes(repo, old, new), key=lambda c: c.path):
        before = _content(repo, old, change.path, change.old_mode)
        after = _content(repo, new, change.path, change.new_mode)
        parts.append(
            "".join(file_diff(change.path, change.old_mode, change.new_mode, before, after))
        )
    return "".join(parts)


def _content(repo: gitops.AnyRepository, commit: str, path: str, mode: str) -> bytes:
    if mode == _ABSENT:
        return b""
    entry = gitops.entry_at(repo, commit, path)
    if entry is None or entry.kind != "blob":
        return b""
    return gitops.read_blob(repo, entry.sha)


def file_diff(
    path: str, old_mode: str, new_mode: str, before: bytes, after: bytes
) -> Iterator[str]:
    """One file's part of a unified diff: git's header, then its hunks (or "Binary files")."""
    old_name = "/dev/null" if old_mode == _ABSENT else f"a/{path}"
    new_name = "/dev/null" if new_mode == _ABSENT else f"b/{path}"
    yield f"diff --git a/{path} b/{path}\n"
    if old_mode == _ABSENT:
        yield f"new file mode {new_mode}\n"
    elif new_mode == _ABSENT:
        yield f"deleted file mode {old_mode}\n"
    elif old_mode != new_mode:
        yield f"old mode {old_mode}\nnew mode {new_mode}\n"
    if before == after:
        return  # a change of mode alone
    old_text, new_text = _text(before), _text(after)
    if old_text is None or new_text is None:
        yield f"Binary files {old_name} and {new_name} differ\n"
        return
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=old_name,
        tofile=new_name,
    )
    for line in lines:
        # A last line without a newline is marked as git and patch(1) mark it.
        yield line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


def _text(data: bytes) -> str | None:
    """The content as text, or None when git would call it binary (or it is not UTF-8)."""
    if b"\0" in data[:_BINARY_PROBE]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
