"""The task's usage file: read warily by `publish`, carried in the result, never a failure.

The file is the task's, and the task is hostile: what it puts at `$BACKLOG_USAGE_FILE` may be a
link to the token file, a fifo, a folder, a socket, a hard link, a file of a gigabyte, or JSON
that is not what it should be. Each case is read from real files (`read_usage`), then the whole
way: `backlogctl run`, and the Job's three steps as separate processes (`Pod`), where the token
file is mounted into `clone` and `publish` only and must never show up.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backlog_operator.api.goal import Goal
from backlog_operator.api.result import ExitCode
from backlog_operator.api.usage import TaskUsage
from backlog_operator.api.worker_contract import STATE_DIR, USAGE_FILE
from backlog_operator.worker.usage_file import read_usage
from tests.git.conftest import BACKLOG, TOKEN, RunOutcome
from tests.support.gitrepos import make_remote, remote_branches, run_git
from tests.support.pod import Pod

WriteGoal = Callable[..., Path]
RunGoal = Callable[..., RunOutcome]

USAGE = {
    "model": "gpt-5.1-codex",
    "inputTokens": 1200,
    "outputTokens": 80,
    "cost": {"amount": 0.0425, "currency": "USD"},
    "durationSeconds": 12.5,
    "counters": {"toolCalls": 7},
}
# What a task runs to write USAGE where it is told.
WRITE_USAGE = f"printf '%s' '{json.dumps(USAGE)}' > \"$BACKLOG_USAGE_FILE\""


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "workspace" / STATE_DIR
    folder.mkdir(parents=True)
    return folder


def only_warning(state: Path) -> str:
    usage = read_usage(state)
    assert usage is not None
    # Nothing but the warning (and the model's empty counters).
    assert {key: value for key, value in usage.items() if key != "warnings"} == {"counters": {}}
    [warning] = usage["warnings"]
    assert isinstance(warning, str)
    assert TOKEN not in json.dumps(usage)
    return warning


# --------------------------------------------------------------------- reading the file


def test_no_usage_file_is_no_usage(state: Path) -> None:
    assert read_usage(state) is None
    assert read_usage(state.parent / "no-such-folder") is None


def test_a_usage_file_is_read(state: Path) -> None:
    (state / USAGE_FILE).write_text(json.dumps(USAGE))

    usage = read_usage(state)

    assert usage is not None
    assert (usage["model"], usage["inputTokens"], usage["warnings"]) == (USAGE["model"], 1200, [])
    assert usage["cost"] == {"amount": "0.0425", "currency": "USD"}
    # The operator's model reads it back as it is.
    model = TaskUsage.model_validate(usage)
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == usage


def test_a_link_to_the_token_file_is_not_followed(state: Path, token_file: Path) -> None:
    (state / USAGE_FILE).symlink_to(token_file)

    assert "is a symbolic link" in only_warning(state)


def test_a_state_folder_that_became_a_link_is_not_followed(state: Path, token_file: Path) -> None:
    # The task swaps the folder for a link to one where usage.json names the token file.
    elsewhere = token_file.parent / "elsewhere"
    elsewhere.mkdir()
    os.link(token_file, elsewhere / USAGE_FILE)
    for child in state.iterdir():
        child.unlink()
    state.rmdir()
    state.symlink_to(elsewhere)

    assert "is in a folder that is a link" in only_warning(state)


def test_a_hard_link_to_the_token_file_is_refused(state: Path, token_file: Path) -> None:
    os.link(token_file, state / USAGE_FILE)

    assert "has other names" in only_warning(state)


@pytest.fixture
def unblocker(state: Path) -> Iterator[threading.Event]:
    """Should a read of the fifo block, a writer opens it after a while so the test can end;
    `blocked` says it had to (and the test fails)."""
    done, blocked = threading.Event(), threading.Event()

    def guard() -> None:
        if not done.wait(20):
            blocked.set()
            with open(state / USAGE_FILE, "wb"):  # the fifo's writer end
                pass

    thread = threading.Thread(target=guard, daemon=True)
    thread.start()
    yield blocked
    done.set()
    thread.join()


def test_a_fifo_is_refused_without_waiting_for_a_writer(
    state: Path, unblocker: threading.Event
) -> None:
    os.mkfifo(state / USAGE_FILE)

    warning = only_warning(state)

    assert not unblocker.is_set(), "reading the usage file waited for a fifo's writer"
    assert "is not a regular file" in warning


def test_a_folder_is_refused(state: Path) -> None:
    (state / USAGE_FILE).mkdir()

    assert "is not a regular file" in only_warning(state)


def test_a_socket_is_refused(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(state)  # a relative name: socket paths are short
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(USAGE_FILE)
        assert "is not a regular file" in only_warning(state)


def test_a_huge_file_is_refused_without_being_read(state: Path) -> None:
    with open(state / USAGE_FILE, "wb") as handle:
        handle.truncate(1 << 30)  # a gigabyte, sparse: reading it whole would take its memory

    assert "is larger than 16384 bytes" in only_warning(state)


def test_malformed_json_is_a_warning(state: Path) -> None:
    (state / USAGE_FILE).write_bytes(b'{"inputTokens": NaN, "cost": {"amount": Infinity}}')

    assert "is not valid JSON" in only_warning(state)


# ---------------------------------------------------------------------- `backlogctl run`


def test_backlogctl_run_carries_the_tasks_usage_in_its_result(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    goal = write_goal(script=f"mkdir -p docs && echo hi > docs/guide.md && {WRITE_USAGE}")

    run = run_goal(goal)

    assert run.status == 0, run.stderr
    assert run.result["usage"] == {
        "model": "gpt-5.1-codex",
        "inputTokens": 1200,
        "outputTokens": 80,
        "cost": {"amount": "0.0425", "currency": "USD"},
        "durationSeconds": 12.5,
        "counters": {"toolCalls": 7},
        "warnings": [],
    }
    assert USAGE_FILE not in " ".join(run.result["changedFiles"])  # outside the clone
    assert run.result["changedFiles"] == [".backlog/backlog.yaml", "docs/guide.md"]


def test_backlogctl_run_reports_a_failed_tasks_usage_too(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    run = run_goal(write_goal(script=f"{WRITE_USAGE}; exit 3"))

    assert run.status == ExitCode.RETRYABLE
    assert run.result["reason"] == "TaskFailed"
    assert run.result["usage"]["inputTokens"] == 1200
    assert remote_branches(remote) == ["main"]


def test_backlogctl_run_with_a_usage_link_to_the_token_publishes_and_leaks_nothing(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal, token_file: Path
) -> None:
    script = f'mkdir -p docs && echo hi > docs/guide.md && ln -s {token_file} "$BACKLOG_USAGE_FILE"'

    run = run_goal(write_goal(script=script), "--token-file", str(token_file))

    assert run.status == 0, run.stderr
    assert run.result["outcome"] == "published"
    assert run.result["usage"]["warnings"] == ["the usage file is a symbolic link; no usage read"]
    assert TOKEN not in run.stdout + run.stderr


def test_backlogctl_run_without_a_usage_file_has_no_usage(
    remote: Path, write_goal: WriteGoal, run_goal: RunGoal
) -> None:
    run = run_goal(write_goal())

    assert run.status == 0, run.stderr
    assert "usage" not in run.result


# ------------------------------------------------------------------ the Job's three steps


def goal_for(url: str, script: str) -> Goal:
    return Goal.model_validate(
        {
            "metadata": {"name": "g", "namespace": "team", "uid": "1234-5678"},
            "spec": {
                "repository": {"url": url},
                "backlog": {"taskId": "other"},
                "task": {"image": "busybox", "command": ["sh", "-c"], "args": [script]},
                "pullRequest": {"provider": "none"},
            },
        }
    )


def run_pod(tmp_path: Path, script: str, token_file: Path | None = None) -> tuple[Pod, Any]:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG}, name="job.git")
    pod = Pod(tmp_path, goal_for(str(remote), script), token_file=token_file)
    return pod, pod.run()


def test_the_task_container_is_told_where_and_publish_reports_it(tmp_path: Path) -> None:
    pod, result = run_pod(tmp_path, f'echo "$BACKLOG_USAGE_FILE" > where.txt && {WRITE_USAGE}')

    assert result["outcome"] == "published", pod.outputs
    assert result["usage"]["cost"] == {"amount": "0.0425", "currency": "USD"}
    assert result["usage"]["counters"] == {"toolCalls": 7}
    where = run_git("--git-dir", str(tmp_path / "job.git"), "show", f"{result['commit']}:where.txt")
    assert where.strip() == str(pod.workspace / STATE_DIR / USAGE_FILE)


@pytest.mark.parametrize(
    ("make", "warning"),
    [
        ('ln -s {token} "$BACKLOG_USAGE_FILE"', "is a symbolic link"),
        ('mkfifo "$BACKLOG_USAGE_FILE"', "is not a regular file"),
        ('mkdir "$BACKLOG_USAGE_FILE"', "is not a regular file"),
        ('head -c 20000 /dev/zero > "$BACKLOG_USAGE_FILE"', "is larger than 16384 bytes"),
        ("printf '[[[[[[' > \"$BACKLOG_USAGE_FILE\"", "is not valid JSON"),
        (
            "rm -rf ../.backlog-state && ln -s {folder} ../.backlog-state",
            "is in a folder that is a link",
        ),
    ],
    ids=["link-to-token", "fifo", "folder", "too-large", "bad-json", "state-folder-link"],
)
def test_a_hostile_usage_file_is_a_warning_in_a_published_result(
    tmp_path: Path, token_file: Path, make: str, warning: str
) -> None:
    folder = token_file.parent / "folder"
    folder.mkdir()
    (folder / USAGE_FILE).symlink_to(token_file)
    script = "echo done > notes.txt && " + make.format(token=token_file, folder=folder)

    pod, result = run_pod(tmp_path, script, token_file=token_file)

    assert result["outcome"] == "published", pod.outputs
    [said] = result["usage"]["warnings"]
    assert warning in said
    assert {key: value for key, value in result["usage"].items() if value} == {"warnings": [said]}
    everything = "".join(pod.outputs) + pod.termination_message("publish")
    assert TOKEN not in everything
