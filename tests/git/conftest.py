"""Fixtures of the git tier: a remote with a backlog, goals that point at it, a forge stand-in."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from backlog_operator.cli import main as backlogctl
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import make_remote

BACKLOG = """\
# Team backlog: comments and layout must survive writeback.
tasks:
  - id: docs-guide
    title: Write the guide
    description: |
      Explain the backlog.
    ready: true
    status: pending
    priority: high
    allowed_paths: ["docs/**"]

  - id: done-task
    title: Already done
    ready: false
    status: completed

  - id: other
    title: Something else
    ready: true
"""

TOKEN = "ghp_s3cr3tT0kenValue1234567890"


@pytest.fixture
def no_machine_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME and no system config: no identity, helper or hook from this machine.

    Also drops the suite-wide GIT_TERMINAL_PROMPT & co: the adapters must set what they rely on.
    """
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in list(os.environ):
        if name.startswith("GIT_") and name != "GIT_CONFIG_NOSYSTEM":
            monkeypatch.delenv(name)
    monkeypatch.delenv("EMAIL", raising=False)
    return home


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository whose `main` holds a backlog and a README."""
    return make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG, "README.md": "# project\n"})


@pytest.fixture
def github() -> Iterator[GitHubStandIn]:
    """The GitHub API stand-in, over HTTP on 127.0.0.1."""
    with GitHubStandIn(repository="octo/project", token=TOKEN) as standin:
        yield standin


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """A file holding the token, as a mounted Secret key would."""
    path = tmp_path / "secret" / "token"
    path.parent.mkdir()
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def write_goal(tmp_path: Path, remote: Path) -> Callable[..., Path]:
    """Write a Goal manifest for the remote; keyword arguments override parts of the spec."""

    def write(
        *,
        task_id: str | None = "docs-guide",
        script: str = "mkdir -p docs && echo hello > docs/guide.md",
        pull_request: dict[str, Any] | None = None,
        url: str | None = None,
        **spec: Any,
    ) -> Path:
        body: dict[str, Any] = {
            "apiVersion": "backlog.dev/v1alpha1",
            "kind": "Goal",
            "metadata": {"name": "goal-one", "namespace": "team"},
            "spec": {
                "repository": {"url": url or str(remote), "baseBranch": "main"},
                "backlog": {"taskId": task_id} if task_id else {},
                "task": {"image": "busybox", "command": ["sh", "-c", script]},
                "pullRequest": pull_request or {"provider": "none"},
                **spec,
            },
        }
        path = tmp_path / "goal.yaml"
        path.write_text(yaml.safe_dump(body))
        return path

    return write


class RunOutcome:
    """What `backlogctl run` did: exit status, the result, and everything it printed."""

    def __init__(self, status: int, stdout: str, stderr: str) -> None:
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        lines = [line for line in stdout.splitlines() if line.strip()]
        self.result: dict[str, Any] = json.loads(lines[-1])


@pytest.fixture
def run_goal(capfd: pytest.CaptureFixture[str]) -> Callable[..., RunOutcome]:
    """Run `backlogctl run GOAL [args]` in this process and parse its last stdout line."""

    def run(goal: Path, *args: str) -> RunOutcome:
        status = backlogctl(["run", str(goal), *args])
        captured = capfd.readouterr()
        return RunOutcome(status, captured.out, captured.err)

    return run
