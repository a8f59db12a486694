"""The canonical form and hash of a staged change: stable, and sensitive to every part of it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from backlog_operator.worker import staging
from backlog_operator.worker.failures import StepFailure
from backlog_operator.worker.staging import ChangedEntry, canonical_form, change_hash

BASE = "a" * 40
BRANCH = "backlog/docs-guide-3f9c2a"
ENTRIES = [
    ChangedEntry("docs/guide.md", "100644", "1" * 64),
    ChangedEntry(".backlog/backlog.yaml", "100644", "2" * 64),
    ChangedEntry("old.txt", "000000", None),
]


def test_the_canonical_form_is_as_documented() -> None:
    assert canonical_form(BASE, BRANCH, ENTRIES) == (
        b"backlog-operator staged change v1\n"
        b"base " + BASE.encode() + b"\n"
        b"branch " + BRANCH.encode() + b"\n"
        b"100644 " + b"2" * 64 + b" .backlog/backlog.yaml\0"
        b"100644 " + b"1" * 64 + b" docs/guide.md\0"
        b"000000 - old.txt\0"
    )


def test_the_hash_does_not_depend_on_the_order_of_entries() -> None:
    assert change_hash(BASE, BRANCH, ENTRIES) == change_hash(BASE, BRANCH, ENTRIES[::-1])


def test_the_hash_is_the_same_in_another_process() -> None:
    code = (
        "from backlog_operator.worker.staging import ChangedEntry, change_hash\n"
        f"print(change_hash({BASE!r}, {BRANCH!r}, [ChangedEntry('docs/guide.md', '100644', "
        f"{'1' * 64!r})]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    expected = change_hash(BASE, BRANCH, [ChangedEntry("docs/guide.md", "100644", "1" * 64)])
    assert other == expected
    assert expected.startswith("sha256:") and len(expected) == len("sha256:") + 64


@pytest.mark.parametrize(
    ("base", "branch", "entries"),
    [
        ("b" * 40, BRANCH, ENTRIES),
        (BASE, BRANCH + "x", ENTRIES),
        (BASE, BRANCH, [ChangedEntry("docs/guide.md", "100755", "1" * 64), *ENTRIES[1:]]),
        (BASE, BRANCH, [ChangedEntry("docs/guide.md", "120000", "1" * 64), *ENTRIES[1:]]),
        (BASE, BRANCH, [ChangedEntry("docs/guide.md", "100644", "3" * 64), *ENTRIES[1:]]),
        (BASE, BRANCH, [ChangedEntry("docs/Guide.md", "100644", "1" * 64), *ENTRIES[1:]]),
        (BASE, BRANCH, ENTRIES[:2]),
        (BASE, BRANCH, [*ENTRIES[:2], ChangedEntry("old.txt", "100644", "0" * 64)]),
    ],
    ids=["base", "branch", "mode", "link", "content", "path", "fewer", "deleted-vs-empty"],
)
def test_the_hash_changes_with_every_part(
    base: str, branch: str, entries: list[ChangedEntry]
) -> None:
    assert change_hash(base, branch, entries) != change_hash(BASE, BRANCH, ENTRIES)


def test_a_path_cannot_pose_as_two_entries() -> None:
    # A path holding what looks like an entry separator stays one path (NUL ends a path).
    one = [ChangedEntry("a\n100644 " + "1" * 64 + " b", "100644", "1" * 64)]
    two = [ChangedEntry("a", "100644", "1" * 64), ChangedEntry("b", "100644", "1" * 64)]
    assert change_hash(BASE, BRANCH, one) != change_hash(BASE, BRANCH, two)


def test_a_hash_must_have_the_form_of_one() -> None:
    good = "sha256:" + "0123456789abcdef" * 4
    assert staging.check_hash(good) == good
    for bad in ("", "sha256:", "sha1:" + "0" * 40, "sha256:" + "G" * 64, good.upper()):
        with pytest.raises(StepFailure) as caught:
            staging.check_hash(bad)
        assert caught.value.reason == "InvalidPatchHash"


def test_the_size_bound_is_a_permanent_failure() -> None:
    staging.check_size(staging.MAX_PATCH_BYTES)
    with pytest.raises(StepFailure) as caught:
        staging.check_size(staging.MAX_PATCH_BYTES + 1)
    assert caught.value.reason == "PatchTooLarge"
    assert not caught.value.retryable


@pytest.mark.parametrize("path", [".git/config", "docs/.git/hooks/x", "docs/.GIT/config"])
def test_paths_into_a_git_folder_are_refused(path: str) -> None:
    with pytest.raises(StepFailure) as caught:
        staging.refuse_git_paths(["docs/ok.md", path])
    assert caught.value.reason == "PathViolation"
    staging.refuse_git_paths(["docs/.gitignore", "docs/git/x", ".github/workflows/ci.yml"])


def test_a_manifest_is_hostile_input() -> None:
    ok = staging.Manifest.parse(b'{"baseCommit": "' + b"a" * 40 + b'", "branch": "b"}')
    assert ok == staging.Manifest(base_commit="a" * 40, branch="b")
    for bad in (b"", b"[]", b"{", b'{"baseCommit": 1, "branch": "b"}', b" " * 70000):
        with pytest.raises(StepFailure) as caught:
            staging.Manifest.parse(bad)
        assert caught.value.reason == "InvalidPatch"
