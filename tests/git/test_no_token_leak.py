"""The token never leaves the places it is meant for.

Git over real smart HTTP that demands the token, the forge stand-in that demands it too; then
every output is scanned: stdout, stderr, logs, the result, the termination message, the
pull request's text, the remote's refs and files, the clone's `.git/config`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.git.conftest import TOKEN
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import GitHttpServer, make_remote, run_git


def goal_manifest(url: str, github: GitHubStandIn, script: str) -> dict[str, object]:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {"name": "leak-check", "namespace": "team"},
        "spec": {
            "repository": {"url": url, "credentialsSecret": {"name": "forge"}},
            "backlog": {"taskId": "t1"},
            "task": {"image": "busybox", "command": ["sh", "-c", script]},
            "pullRequest": {
                "provider": "github",
                "apiBaseUrl": github.base_url,
                "repository": github.repository,
            },
        },
    }


BACKLOG = "tasks:\n  - id: t1\n    title: Token check\n    ready: true\n"


@pytest.mark.parametrize("outcome", ["published", "push-refused", "forge-down"])
def test_token_appears_in_no_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, outcome: str
) -> None:
    projects = tmp_path / "srv"
    projects.mkdir()
    remote = make_remote(projects, {".backlog/backlog.yaml": BACKLOG})
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    workspace = tmp_path / "ws"
    # The task tries to learn the token every way it could; it must find nothing.
    script = "env > leaked-env.txt; cat ~/.git-credentials >> leaked-env.txt 2>/dev/null; true"
    with (
        GitHttpServer(projects, TOKEN) as git_server,
        GitHubStandIn("octo/project", TOKEN) as github,
    ):
        url = git_server.url_for(remote)
        if outcome == "push-refused":
            from tests.support.gitrepos import protect_refs

            protect_refs(remote, "refs/heads/backlog/*")
        if outcome == "forge-down":
            # Down once the task has run (a forge down before fails the access check first).
            github.fail_next(500, times=10, method="POST")
        goal = tmp_path / "goal.yaml"
        goal.write_text(yaml.safe_dump(goal_manifest(url, github, script)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "backlog_operator.cli",
                "run",
                str(goal),
                "--token-file",
                str(token_file),
                "--workspace",
                str(workspace),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        forge_bodies = [json.dumps(r.body) for r in github.requests]
        pr_texts = [f"{pr.title}\n{pr.body}" for pr in github.pulls.values()]
        git_requests = git_server.requests

    result = json.loads(completed.stdout.strip().splitlines()[-1])
    expected = {"published": "published", "push-refused": "failed", "forge-down": "failed"}[outcome]
    assert result["outcome"] == expected, completed.stderr
    assert git_requests > 0  # git really went over HTTP with the token
    haystacks = {
        "stdout": completed.stdout,
        "stderr": completed.stderr,
        "logs": caplog.text,
        "forge request bodies": "\n".join(forge_bodies),
        "pull requests": "\n".join(pr_texts),
        "clone config": (workspace / "repo" / ".git" / "config").read_text(),
        "task's view": (workspace / "repo" / "leaked-env.txt").read_text(),
        "remote refs and objects": run_git("--git-dir", str(remote), "log", "--all", "-p"),
    }
    for where, text in haystacks.items():
        assert TOKEN not in text, f"the token leaked into {where}"
    assert "x-access-token" not in haystacks["clone config"]


def test_credential_free_url_is_required(tmp_path: Path) -> None:
    from backlog_operator.worker.context import InvalidGoalError, parse_goal

    manifest = {
        "kind": "Goal",
        "spec": {
            "repository": {"url": f"https://x-access-token:{TOKEN}@github.com/o/r.git"},
            "task": {"command": ["true"]},
        },
    }
    with pytest.raises(InvalidGoalError) as raised:
        parse_goal(json.dumps(manifest), source="goal.json")
    assert TOKEN not in str(raised.value)
    assert "credentials" in str(raised.value)
