"""The worker as a Job's containers run it: `worker clone`, the launcher, `worker publish`.

Each step is a separate process with the environment the operator gives that container, so
this checks the contract between the Job manifest and the worker: environment variables,
the shared workspace, the termination message, the exit codes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from backlog_operator.api.goal import Goal
from backlog_operator.api.result import MAX_RESULT_BYTES, ExitCode
from backlog_operator.api.worker_contract import goal_to_environment
from backlog_operator.backlog.document import BacklogDocument
from tests.git.conftest import BACKLOG
from tests.support.gitrepos import make_remote, remote_branches, remote_sha, run_git
from tests.support.pod import Pod, backlogctl


def goal_for(url: str, task_id: str, script: str) -> Goal:
    return Goal.model_validate(
        {
            "metadata": {"name": "g", "namespace": "team", "uid": "1234-5678"},
            "spec": {
                "repository": {"url": url},
                "backlog": {"taskId": task_id},
                "task": {
                    "image": "busybox",
                    "command": ["sh", "-c"],
                    "args": [script],
                    "env": [{"name": "GREETING", "value": "hi there"}],
                },
                "pullRequest": {"provider": "none"},
            },
        }
    )


def test_three_containers_publish_and_report_through_the_termination_message(
    tmp_path: Path,
) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG})
    script = (
        'mkdir -p docs && printf "%s|%s|%s\\n" '
        '"$BACKLOG_TASK_ID" "$BACKLOG_TASK_TITLE" "$GREETING" > docs/who.txt'
    )
    pod = Pod(tmp_path, goal_for(str(remote), "docs-guide", script))

    clone = pod.worker("clone")
    assert clone.returncode == 0, clone.stderr
    task = pod.task()
    assert task.returncode == 0, task.stderr
    publish = pod.worker("publish")
    assert publish.returncode == 0, publish.stderr

    message = pod.termination_message("publish")
    assert len(message.encode()) <= MAX_RESULT_BYTES
    assert json.loads(message) == json.loads(publish.stdout.strip().splitlines()[-1])
    result = json.loads(message)
    assert result["branch"] == "backlog/docs-guide-0a0b0c"
    assert remote_sha(remote, result["branch"]) == result["commit"]
    who = run_git("--git-dir", str(remote), "show", f"{result['commit']}:docs/who.txt")
    assert who == "docs-guide|Write the guide|hi there\n"


def test_already_completed_task_is_skipped_by_the_launcher(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG})
    pod = Pod(tmp_path, goal_for(str(remote), "done-task", "touch ran && exit 9"))

    assert pod.worker("clone").returncode == 0
    task = pod.task()
    publish = pod.worker("publish")

    assert task.returncode == 0
    assert "already completed" in task.stderr
    assert not (pod.workspace / "repo" / "ran").exists()
    assert publish.returncode == 0
    assert json.loads(pod.termination_message("publish"))["outcome"] == "already_completed"
    assert remote_branches(remote) == ["main"]


def test_failed_clone_writes_its_result_and_a_mapped_exit_code(tmp_path: Path) -> None:
    pod = Pod(tmp_path, goal_for(str(tmp_path / "no-such-remote.git"), "docs-guide", "true"))

    clone = pod.worker("clone")

    assert clone.returncode in (ExitCode.RETRYABLE, ExitCode.PERMANENT)
    result = json.loads(pod.termination_message("clone"))
    assert result["outcome"] == "failed"
    assert result["step"] == "clone"
    assert result["retryable"] == (clone.returncode == ExitCode.RETRYABLE)


def test_missing_goal_is_a_permanent_failure(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKLOG_")}
    completed = backlogctl("worker", "publish", env=env)
    assert completed.returncode == ExitCode.PERMANENT
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["reason"] == "InvalidGoal"
    assert "BACKLOG_GOAL" in result["message"]


def test_bad_goal_in_publish_reports_its_own_step_and_termination_message(
    tmp_path: Path,
) -> None:
    log = tmp_path / "termination"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKLOG_")}
    env.update(BACKLOG_GOAL='{"spec": {}}', BACKLOG_TERMINATION_LOG=str(log))
    completed = backlogctl("worker", "publish", env=env)
    assert completed.returncode == ExitCode.PERMANENT
    result = json.loads(log.read_text())
    assert (result["reason"], result["step"]) == ("InvalidGoal", "publish")


def test_task_step_without_a_clone_says_what_to_do(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG})
    pod = Pod(tmp_path, goal_for(str(remote), "docs-guide", "true"))
    env = dict(pod.base_env)
    env.update(BACKLOG_GOAL=goal_to_environment(pod.goal), BACKLOG_WORKSPACE=str(pod.workspace))
    completed = backlogctl("worker", "task", "--", "true", env=env)
    assert completed.returncode == ExitCode.USAGE
    assert "run `backlogctl worker clone` first" in completed.stderr


def test_publish_reads_whole_a_backlog_the_task_changed_and_refuses_it_broken(
    tmp_path: Path,
) -> None:
    """Unchanged bytes are read for the task's entry alone (clone validated them whole); bytes
    the task changed are validated whole again, so a broken entry of another task is refused."""
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG})
    script = "sed -i 's/^  - id: done-task$/  - id: docs-guide/' .backlog/backlog.yaml"
    pod = Pod(tmp_path, goal_for(str(remote), "other", script))

    assert pod.worker("clone").returncode == 0
    assert pod.task().returncode == 0
    publish = pod.worker("publish")

    result = json.loads(pod.termination_message("publish"))
    assert publish.returncode != 0
    assert (result["outcome"], result["reason"]) == ("failed", "InvalidBacklog")
    assert remote_branches(remote) == ["main"]


def test_an_unchanged_backlog_is_marked_as_a_whole_reading_would_mark_it(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG})
    pod = Pod(tmp_path, goal_for(str(remote), "other", "echo done > notes.txt"))

    assert pod.worker("clone").returncode == 0
    assert pod.task().returncode == 0
    assert pod.worker("publish").returncode == 0

    result = json.loads(pod.termination_message("publish"))
    pushed = run_git("--git-dir", str(remote), "show", f"{result['commit']}:.backlog/backlog.yaml")
    whole = BacklogDocument.parse(BACKLOG.encode(), source="backlog.yaml")
    marked = BacklogDocument.parse(pushed.encode(), source="backlog.yaml")
    task = marked.find("other")
    assert task is not None and task.status == "completed"
    assert [t.id for t in marked.tasks] == [t.id for t in whole.tasks]
    # Every line of the other tasks is as it was.
    assert pushed.split("  - id: other")[0] == BACKLOG.split("  - id: other")[0]
