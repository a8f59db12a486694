"""`backlogctl run --stage` and `--apply PATCH --hash`: a change staged, then published exactly.

Real git remotes (bare repositories) and the GitHub stand-in: staging pushes nothing and opens
nothing; applying pushes exactly the staged tree, and refuses (pushing nothing) a patch edited
after staging, a wrong hash, a patch over the size bound, a patch into `.git`, through a
symbolic link or outside `allowed_paths` (also when its hash is the one given: the patch is as
hostile as the task), and a patch that no longer applies to a base branch that moved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from backlog_operator.adapters import git as gitops
from backlog_operator.worker import staging
from tests.git.conftest import TOKEN, RunOutcome
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import commit_to_remote, remote_sha, run_git

WriteGoal = Callable[..., Path]
RunGoal = Callable[..., RunOutcome]


def refs(remote: Path) -> str:
    """Every ref of the bare remote with its sha: what a push would change."""
    return run_git("--git-dir", str(remote), "for-each-ref", "--format=%(objectname) %(refname)")


def github_spec(github: GitHubStandIn) -> dict[str, object]:
    return {"provider": "github", "apiBaseUrl": github.base_url, "repository": github.repository}


def stage(run_goal: RunGoal, goal: Path, patch: Path, *extra: str) -> RunOutcome:
    run = run_goal(goal, "--stage", "--out", str(patch), "--attempt-id", "a-1", *extra)
    assert run.status == 0, run.stderr
    return run


def staged_tree(remote: Path, patch: Path) -> str:
    """The tree the staged patch gives on its base, applied by plain git in a fresh clone."""
    manifest = json.loads(patch.with_name(patch.name + ".json").read_text())
    checkout = patch.parent / "check"
    run_git("clone", "--quiet", str(remote), str(checkout))
    run_git("read-tree", manifest["baseCommit"], cwd=checkout)
    run_git("apply", "--cached", "--binary", str(patch), cwd=checkout)
    return run_git("write-tree", cwd=checkout).strip()


def tree_of(remote: Path, revision: str) -> str:
    return run_git("--git-dir", str(remote), "rev-parse", f"{revision}^{{tree}}").strip()


def test_stage_pushes_nothing_then_apply_pushes_exactly_the_staged_tree(
    remote: Path,
    write_goal: WriteGoal,
    run_goal: RunGoal,
    github: GitHubStandIn,
    token_file: Path,
    tmp_path: Path,
) -> None:
    goal = write_goal(pull_request=github_spec(github))
    patch = tmp_path / "change.patch"
    before = refs(remote)

    staged = stage(run_goal, goal, patch, "--token-file", str(token_file))

    assert refs(remote) == before
    assert github.open_pulls() == []
    assert [r.method for r in github.requests] == ["GET"]  # the access check, no write
    manifest = json.loads(patch.with_name("change.patch.json").read_text())
    printed = [line for line in staged.stdout.splitlines() if line.startswith("sha256:")]
    assert printed == [manifest["patchHash"]]
    assert manifest["patchHash"] in staged.result["message"]
    assert manifest["baseCommit"] == remote_sha(remote, "main")
    assert manifest["changedFiles"] == [".backlog/backlog.yaml", "docs/guide.md"]
    assert {"path": "docs/guide.md", "added": 1, "deleted": 0} in manifest["diffstat"]
    assert b"+hello\n" in patch.read_bytes()  # readable: text stays text
    for text in (patch.read_text(), json.dumps(manifest), staged.stdout, staged.stderr):
        assert TOKEN not in text

    applied = run_goal(
        goal, "--apply", str(patch), "--hash", manifest["patchHash"],
        "--token-file", str(token_file), "--attempt-id", "a-2",
    )  # fmt: skip

    assert applied.status == 0, applied.stderr
    assert TOKEN not in applied.stdout + applied.stderr
    branch = manifest["branch"]
    assert applied.result["branch"] == branch
    [pull] = github.open_pulls()
    assert pull.head == branch
    # The commit of the change is the staged tree on the staged base; the follow-up commit on
    # top only records the pull request's number.
    change = f"refs/heads/{branch}~1"
    assert tree_of(remote, change) == staged_tree(remote, patch)
    parent = run_git("--git-dir", str(remote), "rev-parse", f"{change}~1").strip()
    assert parent == manifest["baseCommit"]
    follow_up = run_git("--git-dir", str(remote), "diff", change, branch)
    assert f"+    pr_number: {pull.number}" in follow_up
    assert follow_up.count("\n+") + follow_up.count("\n-") <= 4  # the number, nothing else


def test_apply_without_a_forge_pushes_the_staged_tree_as_it_is(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, tmp_path: Path
) -> None:
    goal = write_goal()
    patch = tmp_path / "change.patch"
    stage(run_goal, goal, patch)
    manifest = json.loads(patch.with_name("change.patch.json").read_text())

    applied = run_goal(goal, "--apply", str(patch), "--hash", manifest["patchHash"])

    assert applied.status == 0, applied.stderr
    assert tree_of(remote, manifest["branch"]) == staged_tree(remote, patch)
    assert applied.result["changedFiles"] == manifest["changedFiles"]


@pytest.fixture
def staged(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, tmp_path: Path
) -> tuple[Path, Path, dict[str, object]]:
    """A goal (provider none) and its staged change: (goal, patch, manifest)."""
    goal = write_goal()
    patch = tmp_path / "change.patch"
    stage(run_goal, goal, patch)
    return goal, patch, json.loads(patch.with_name("change.patch.json").read_text())


def refused(run_goal: RunGoal, goal: Path, patch: Path, digest: str, remote: Path) -> str:
    """Apply and expect a permanent refusal that pushed nothing; its reason."""
    before = refs(remote)
    run = run_goal(goal, "--apply", str(patch), "--hash", digest)
    assert run.status == 65, run.stdout + run.stderr
    assert refs(remote) == before
    assert run.result["outcome"] == "failed"
    assert "nothing was pushed" in run.result["message"].lower() or run.result["reason"] in (
        "PatchDoesNotApply",
        "InvalidPatchHash",
    )
    return str(run.result["reason"])


def test_a_patch_edited_after_staging_is_refused(
    staged: tuple[Path, Path, dict[str, object]], run_goal: RunGoal, remote: Path
) -> None:
    goal, patch, manifest = staged
    patch.write_bytes(patch.read_bytes().replace(b"+hello\n", b"+HELLO\n"))

    assert refused(run_goal, goal, patch, str(manifest["patchHash"]), remote) == (
        "PatchHashMismatch"
    )


def test_a_manifest_naming_another_branch_is_refused(
    staged: tuple[Path, Path, dict[str, object]], run_goal: RunGoal, remote: Path
) -> None:
    goal, patch, manifest = staged
    edited = {**manifest, "branch": "backlog/docs-guide-other"}
    patch.with_name("change.patch.json").write_text(json.dumps(edited))

    assert refused(run_goal, goal, patch, str(manifest["patchHash"]), remote) == (
        "PatchHashMismatch"
    )


def test_a_wrong_or_malformed_hash_is_refused(
    staged: tuple[Path, Path, dict[str, object]], run_goal: RunGoal, remote: Path
) -> None:
    goal, patch, _ = staged

    assert refused(run_goal, goal, patch, "sha256:" + "0" * 64, remote) == "PatchHashMismatch"
    assert refused(run_goal, goal, patch, "md5:abc", remote) == "InvalidPatchHash"


def test_an_oversized_change_is_not_staged_and_an_oversized_patch_not_applied(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, tmp_path: Path
) -> None:
    big = staging.MAX_PATCH_BYTES // 20
    goal = write_goal(
        script=f"mkdir -p docs && seq 1 {big} | sed 's/$/ lorem ipsum dolor sit/' > docs/big.md"
    )
    patch = tmp_path / "big.patch"
    before = refs(remote)

    run = run_goal(goal, "--stage", "--out", str(patch))

    assert run.status == 65, run.stderr
    assert run.result["reason"] == "PatchTooLarge"
    assert not patch.exists()
    assert refs(remote) == before
    patch.write_bytes(b"x" * (staging.MAX_PATCH_BYTES + 1))
    patch.with_name("big.patch.json").write_text(
        json.dumps({"baseCommit": remote_sha(remote, "main"), "branch": "backlog/docs-guide-x"})
    )
    assert refused(run_goal, goal, patch, "sha256:" + "1" * 64, remote) == "PatchTooLarge"


def hostile(remote: Path, tmp_path: Path, change: Callable[[Path], object]) -> tuple[Path, str]:
    """A patch made by hand from `change` in a clone, with its manifest and its true hash."""
    checkout = tmp_path / "hostile"
    run_git("clone", "--quiet", str(remote), str(checkout))
    base = run_git("rev-parse", "HEAD", cwd=checkout).strip()
    change(checkout)
    run_git("add", "--all", cwd=checkout)
    tree = run_git("write-tree", cwd=checkout).strip()
    patch = tmp_path / "hostile.patch"
    patch.write_bytes(
        run_git("diff", "--binary", "--full-index", "--cached", base, cwd=checkout).encode(
            "utf-8", "surrogateescape"
        )
    )
    branch = "backlog/docs-guide-evil"
    repo = gitops.Repository(checkout / ".git", checkout)
    digest = staging.change_hash(base, branch, staging.changed_entries(repo, base, tree))
    manifest = {"baseCommit": base, "branch": branch, "patchHash": digest}
    patch.with_name("hostile.patch.json").write_text(json.dumps(manifest))
    return patch, digest


def test_a_patch_outside_allowed_paths_is_refused_even_with_its_own_hash(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, tmp_path: Path
) -> None:
    patch, digest = hostile(remote, tmp_path, lambda c: (c / "README.md").write_text("owned\n"))

    assert refused(run_goal, write_goal(), patch, digest, remote) == "PathViolation"


def test_a_backlog_change_beyond_the_writeback_is_refused(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, tmp_path: Path
) -> None:
    def edit(checkout: Path) -> None:
        backlog = checkout / ".backlog" / "backlog.yaml"
        backlog.write_text(backlog.read_text().replace("ready: true", "ready: false"))

    patch, digest = hostile(remote, tmp_path, edit)

    assert refused(run_goal, write_goal(), patch, digest, remote) == "PathViolation"


def test_a_patch_into_a_git_folder_is_refused(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, tmp_path: Path
) -> None:
    patch = tmp_path / "git.patch"
    base = remote_sha(remote, "main")
    patch.write_text(
        "diff --git a/docs/.git/config b/docs/.git/config\n"
        "new file mode 100644\n"
        "--- /dev/null\n"
        "+++ b/docs/.git/config\n"
        "@@ -0,0 +1 @@\n"
        "+[core]\n"
    )
    manifest = {"baseCommit": base, "branch": "backlog/docs-guide-evil"}
    patch.with_name("git.patch.json").write_text(json.dumps(manifest))

    reason = refused(run_goal, write_goal(), patch, "sha256:" + "2" * 64, remote)

    assert reason in ("PatchDoesNotApply", "PathViolation")


def test_a_patch_through_a_symbolic_link_is_refused(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, tmp_path: Path
) -> None:
    patch = tmp_path / "link.patch"
    patch.write_text(
        "diff --git a/docs/out b/docs/out\n"
        "new file mode 120000\n"
        "--- /dev/null\n"
        "+++ b/docs/out\n"
        "@@ -0,0 +1 @@\n"
        "+../..\n"
        "\\ No newline at end of file\n"
        "diff --git a/docs/out/escaped b/docs/out/escaped\n"
        "new file mode 100644\n"
        "--- /dev/null\n"
        "+++ b/docs/out/escaped\n"
        "@@ -0,0 +1 @@\n"
        "+owned\n"
    )
    manifest = {"baseCommit": remote_sha(remote, "main"), "branch": "backlog/docs-guide-evil"}
    patch.with_name("link.patch.json").write_text(json.dumps(manifest))

    assert refused(run_goal, write_goal(), patch, "sha256:" + "3" * 64, remote) == (
        "PatchDoesNotApply"
    )
    assert not (tmp_path.parent / "escaped").exists()


def test_a_base_that_moved_applies_on_the_staged_base_unless_it_conflicts(
    staged: tuple[Path, Path, dict[str, object]], run_goal: RunGoal, remote: Path
) -> None:
    goal, patch, manifest = staged
    commit_to_remote(remote, "main", {"docs/guide.md": "theirs\n"})

    assert refused(run_goal, goal, patch, str(manifest["patchHash"]), remote) == "BaseMoved"

    commit_to_remote(remote, "main", {"docs/guide.md": None, "NOTES.md": "unrelated\n"})
    applied = run_goal(goal, "--apply", str(patch), "--hash", str(manifest["patchHash"]))

    assert applied.status == 0, applied.stderr
    parent = run_git("--git-dir", str(remote), "rev-parse", f"{manifest['branch']}~1").strip()
    assert parent == manifest["baseCommit"]


def test_a_base_commit_gone_from_the_remote_is_refused(
    staged: tuple[Path, Path, dict[str, object]], run_goal: RunGoal, remote: Path
) -> None:
    goal, patch, manifest = staged
    gone = {**manifest, "baseCommit": "f" * 40}
    patch.with_name("change.patch.json").write_text(json.dumps(gone))

    assert refused(run_goal, goal, patch, str(manifest["patchHash"]), remote) == (
        "BaseCommitUnavailable"
    )
