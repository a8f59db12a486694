"""`backlogctl get|status|logs|rerun|reconcile|suspend|resume` against the API emulator.

The command runs as a separate process, as a person runs it, with `KUBECONFIG` pointing at the
emulator (over real HTTP, the project's CRDs with their schemas); the objects are made and
read back with the emulator's synchronous API.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from backlog_operator.api.goal import Goal, GoalStatus
from backlog_operator.api.labels import (
    ANNOTATION_REQUESTED_AT,
    LABEL_ATTEMPT,
    LABEL_BACKLOG,
    LABEL_BACKLOG_UID,
    LABEL_GOAL_UID,
    LABEL_RUN,
    LABEL_TASK,
)
from backlog_operator.controller.goals import approval_job, heal, job
from backlog_operator.controller.settings import OperatorSettings
from tests.operator.test_backlog import backlog
from tests.operator.test_goal_operator import goal_manifest
from tests.support.emulator import EmulatorServer, HardenedEmulator

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
BACKLOGS = "backlog.dev/v1alpha1/backlogs"
SCHEDULES = "backlog.dev/v1alpha1/goalschedules"
Json = dict[str, Any]

pytestmark = pytest.mark.usefixtures("project_crds")


def cli(
    server: EmulatorServer, *args: str, admin: bool = True, program: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as its own process against the emulator (as the admin: RBAC lets it by)."""
    env = {**os.environ, "KUBECONFIG": str(server.kubeconfig)}
    context = ["--context", "emulator-admin"] if admin else []
    command = [program] if program else [sys.executable, "-m", "backlog_operator.cli"]
    return subprocess.run(
        [*command, *args, *context],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def make_goal(api: HardenedEmulator, name: str, status: Json | None = None, **meta: Any) -> Json:
    body = goal_manifest(name)
    body["metadata"].update(meta)
    api.create_object(body)
    if status:
        api.patch_status(GOALS, NS, name, status)
    found = api.get_object(GOALS, NS, name)
    assert found is not None
    return found


SUCCEEDED = {
    "phase": "Succeeded",
    "taskId": "docs-guide",
    "attempts": 1,
    "outcome": "published",
    "reason": "Published",
    "message": "pull request #707 opened",
    "branch": "backlog/docs-guide-abc123",
    "pullRequest": {"number": 707, "url": "https://github.com/o/r/pull/707"},
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Published",
            "message": "pull request #707 opened",
            "lastTransitionTime": "2026-01-30T23:15:00Z",
        }
    ],
}


# ---------------------------------------------------------------------------------------- get


def test_get_goals_shows_ready_status_pr_and_age(emulator_server: EmulatorServer) -> None:
    api = emulator_server.emulator
    make_goal(api, "done", SUCCEEDED)
    make_goal(api, "fresh")

    result = cli(emulator_server, "get", "goals")

    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "PR", "AGE"]
    done = next(row for row in rows if row.startswith("done "))
    assert done.split()[:2] == ["done", "True"]
    assert "pull request #707 opened" in done
    assert "#707" in done.split()
    assert done.split()[-1].endswith("s")  # made seconds ago
    fresh = next(row for row in rows if row.startswith("fresh "))
    assert fresh.split()[:4] == ["fresh", "Unknown", "-", "-"]


def test_get_wide_json_yaml_and_all_namespaces(emulator_server: EmulatorServer) -> None:
    api = emulator_server.emulator
    make_goal(api, "done", SUCCEEDED)

    wide = cli(emulator_server, "get", "gl", "-o", "wide")
    as_json = cli(emulator_server, "get", "goals", "done", "-o", "json")
    as_yaml = cli(emulator_server, "get", "goals", "-o", "yaml")
    every = cli(emulator_server, "get", "goals", "-A")

    assert wide.returncode == 0, wide.stderr
    assert wide.stdout.splitlines()[0].split()[5:] == [
        "PHASE",
        "TASK",
        "ATTEMPTS",
        "STEP",
        "PR",
        "URL",
    ]
    assert "https://github.com/o/r/pull/707" in wide.stdout
    assert json.loads(as_json.stdout)["status"]["pullRequest"]["number"] == 707
    listed = yaml.safe_load(as_yaml.stdout)
    assert listed["kind"] == "List"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["done"]
    assert every.stdout.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert every.stdout.splitlines()[1].split()[:2] == [NS, "done"]


def test_get_backlogs_shows_the_pull_requests_of_its_goals(
    emulator_server: EmulatorServer,
) -> None:
    api = emulator_server.emulator
    api.create_object(backlog("team", "https://github.com/o/r.git"))
    make_goal(api, "team-docs-guide", SUCCEEDED, labels={LABEL_BACKLOG: "team"})
    make_goal(api, "other", SUCCEEDED | {"pullRequest": {"number": 9, "url": "https://x/9"}})

    result = cli(emulator_server, "get", "backlogs")

    assert result.returncode == 0, result.stderr
    row = result.stdout.splitlines()[1].split()
    assert row[0] == "team"
    assert "#707" in row
    assert "#9" not in result.stdout  # not this Backlog's goal


def test_get_of_a_missing_object_fails_with_a_message_on_stderr(
    emulator_server: EmulatorServer,
) -> None:
    result = cli(emulator_server, "get", "goals", "nope")

    assert result.returncode == 1
    assert result.stdout == ""
    assert 'goal "nope" not found in namespace "default"' in result.stderr


def test_namespace_option_is_used(emulator_server: EmulatorServer) -> None:
    make_goal(emulator_server.emulator, "done", SUCCEEDED)

    result = cli(emulator_server, "get", "goals", "-n", "elsewhere")

    assert result.returncode == 0
    assert result.stdout == ""
    assert 'No goals found in namespace "elsewhere"' in result.stderr


# --------------------------------------------------------- rerun, reconcile, suspend, resume


def test_rerun_sets_the_requested_at_annotation(emulator_server: EmulatorServer) -> None:
    api = emulator_server.emulator
    make_goal(api, "done", SUCCEEDED)

    result = cli(emulator_server, "rerun", "done")

    assert result.returncode == 0, result.stderr
    annotations = (api.get_object(GOALS, NS, "done") or {})["metadata"]["annotations"]
    value = annotations[ANNOTATION_REQUESTED_AT]
    assert value in result.stdout
    again = cli(emulator_server, "rerun", "done")
    assert again.returncode == 0
    newer = (api.get_object(GOALS, NS, "done") or {})["metadata"]["annotations"]
    assert newer[ANNOTATION_REQUESTED_AT] != value  # a new value each time: a new request


def test_reconcile_sets_the_annotation_on_the_backlog(emulator_server: EmulatorServer) -> None:
    api = emulator_server.emulator
    api.create_object(backlog("team", "https://github.com/o/r.git"))

    result = cli(emulator_server, "reconcile", "team")

    assert result.returncode == 0, result.stderr
    found = api.get_object(BACKLOGS, NS, "team") or {}
    assert ANNOTATION_REQUESTED_AT in found["metadata"]["annotations"]
    missing = cli(emulator_server, "reconcile", "nope")
    assert missing.returncode == 1
    assert 'backlog "nope" not found' in missing.stderr


@pytest.mark.parametrize(
    ("kind", "resource"), [("goal", GOALS), ("backlog", BACKLOGS), ("schedule", SCHEDULES)]
)
def test_suspend_and_resume_set_spec_suspend(
    emulator_server: EmulatorServer, kind: str, resource: str
) -> None:
    api = emulator_server.emulator
    if kind == "goal":
        make_goal(api, "it")
    elif kind == "backlog":
        api.create_object(backlog("it", "https://github.com/o/r.git"))
    else:
        template = goal_manifest("x")
        api.create_object(
            {
                "apiVersion": "backlog.dev/v1alpha1",
                "kind": "GoalSchedule",
                "metadata": {"name": "it", "namespace": NS},
                "spec": {"schedule": "@daily", "goalTemplate": {"spec": template["spec"]}},
            }
        )

    suspended = cli(emulator_server, "suspend", kind, "it")
    assert suspended.returncode == 0, suspended.stderr
    assert (api.get_object(resource, NS, "it") or {})["spec"]["suspend"] is True
    resumed = cli(emulator_server, "resume", kind, "it")
    assert resumed.returncode == 0, resumed.stderr
    assert (api.get_object(resource, NS, "it") or {})["spec"]["suspend"] is False


def test_a_refused_request_is_one_line_on_stderr(emulator_server: EmulatorServer) -> None:
    # The default context is the operator's service account, which writes Goals' status only.
    make_goal(emulator_server.emulator, "done", SUCCEEDED)

    result = cli(emulator_server, "rerun", "done", admin=False)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: the API server answered 403: ")
    assert 'cannot patch resource "goals"' in result.stderr
    assert len(result.stderr.splitlines()) == 1
    annotations = (emulator_server.emulator.get_object(GOALS, NS, "done") or {})["metadata"]
    assert ANNOTATION_REQUESTED_AT not in (annotations.get("annotations") or {})


# ------------------------------------------------------------------------------------- status


def test_status_lists_ready_blocked_in_progress_and_pull_requests(
    emulator_server: EmulatorServer,
) -> None:
    api = emulator_server.emulator
    made = api.create_object(backlog("team", "https://github.com/o/r.git"))
    api.patch_status(
        BACKLOGS,
        NS,
        "team",
        {
            "counts": {"pending": 3, "inProgress": 1, "completed": 1, "failed": 0, "blocked": 1},
            "ready": ["lint", "api"],
            "readyCount": 2,
            "blocked": [
                {
                    "id": "api-docs",
                    "reason": "Requires",
                    "requires": ["api"],
                    "message": "waiting for api (not completed)",
                }
            ],
            "inProgress": ["metrics"],
            "completed": ["docs-guide"],
        },
    )
    labels = {LABEL_BACKLOG: "team", LABEL_BACKLOG_UID: made["metadata"]["uid"]}
    make_goal(api, "team-docs-guide", SUCCEEDED, labels=labels | {LABEL_TASK: "docs-guide"})
    running = {"phase": "Running", "taskId": "metrics", "step": "task", "attempts": 2}
    make_goal(api, "team-metrics", running, labels=labels | {LABEL_TASK: "metrics"})

    text = cli(emulator_server, "status", "team")
    as_json = cli(emulator_server, "status", "team", "-o", "json")

    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "Ready (2, in selection order): lint, api" in out
    assert "api-docs: Requires: waiting for api (not completed)" in out
    assert "metrics: goal team-metrics Running, step task, attempt 2" in out
    assert "#707 docs-guide (Succeeded) https://github.com/o/r/pull/707" in out
    assert "Usage: 1/1 goals running" in out
    view = json.loads(as_json.stdout)
    assert view["usage"]["runningGoals"] == 1
    assert [row["goal"] for row in view["pullRequests"]] == ["team-docs-guide"]


def test_status_shows_todays_task_usage_and_the_budget_state(
    emulator_server: EmulatorServer,
) -> None:
    api = emulator_server.emulator
    body = backlog("team", "https://github.com/o/r.git")
    body["spec"]["budget"] = {"perDay": {"cost": {"amount": "1.00", "currency": "USD"}}}
    api.create_object(body)
    today = datetime.now(UTC).date().isoformat()
    day = {
        "attempts": 3,
        "inputTokens": 12000,
        "outputTokens": 800,
        "costs": [{"amount": "1.25", "currency": "USD"}],
        "withoutCost": 1,
        "withoutTokens": 0,
    }
    message = "daily budget spent: 1.25 USD spent today, of 1.00; no new Goal starts until ..."
    status = {
        "usage": {"days": [{"date": "2000-01-01", "attempts": 9}, {"date": today, **day}]},
        "budget": {"exhausted": True, "reason": "CostSpent", "message": message, "day": today},
    }
    api.patch_status(BACKLOGS, NS, "team", status)

    text = cli(emulator_server, "status", "team")
    as_json = cli(emulator_server, "status", "team", "-o", "json")

    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert (
        f"Task usage today ({today} UTC): 3 attempt(s), 12000 input + 800 output tokens, "
        "cost 1.25 USD"
    ) in lines
    assert "  attempts whose task reported no cost: 1, no tokens: 0" in lines
    assert f"Budget: SPENT (CostSpent): {message}" in lines
    view = json.loads(as_json.stdout)["taskUsage"]
    assert view["attempts"] == 3 and view["budget"]["exhausted"] is True
    # A Backlog with no budget and no usage yet says so.
    api.create_object(backlog("plain", "https://github.com/o/p.git"))
    plain = cli(emulator_server, "status", "plain").stdout.splitlines()
    assert (
        f"Task usage today ({today} UTC): 0 attempt(s), 0 input + 0 output tokens, "
        "cost none reported"
    ) in plain
    assert "Budget: none (spec.budget is not set)" in plain


def test_status_shows_tasks_awaiting_approval_conflicted_and_declined(
    emulator_server: EmulatorServer,
) -> None:
    api = emulator_server.emulator
    api.create_object(backlog("team", "https://github.com/o/r.git"))
    change = "sha256:" + "ab" * 32
    status = {
        "awaitingApproval": [
            {
                "task": "docs-guide",
                "goal": "team-docs-guide",
                "patchHash": change,
                "expiresAt": "2099-01-01T00:00:00Z",
            },
            {
                "task": "lint",
                "goal": "team-lint",
                "patchHash": change,
                "expiresAt": "2000-01-01T00:00:00Z",
            },
        ],
        "conflicted": [
            {
                "id": "api",
                "pullRequest": {"number": 708, "url": "https://github.com/o/r/pull/708"},
                "goal": "team-api",
                "reason": "Conflicted",
                "conflictedFiles": [".backlog/backlog.yaml", "docs/\x1b[2Jx.md"],
            }
        ],
        "declined": [
            {
                "id": "metrics",
                "pullRequest": {"number": 700, "url": "https://github.com/o/r/pull/700"},
                "closedBy": "octocat",
                "goal": "team-metrics",
            },
            {"id": "ci", "reason": "Rejected", "closedBy": "alice", "goal": "team-ci"},
        ],
    }
    api.patch_status(BACKLOGS, NS, "team", status)

    text = cli(emulator_server, "status", "team")
    as_yaml = cli(emulator_server, "status", "team", "-o", "yaml")

    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "Awaiting approval (2):" in lines
    found = [line for line in lines if line.startswith("  docs-guide: goal team-docs-guide")]
    assert found and found[0].startswith(
        f"  docs-guide: goal team-docs-guide, change {change}, expires 2099-01-01T00:00:00Z (in "
    )
    assert (
        f"  lint: goal team-lint, change {change}, expires 2000-01-01T00:00:00Z (expired)" in lines
    )
    assert "Conflicted (1):" in lines
    assert (
        "  api: pull request #708 (goal team-api): Conflicted in .backlog/backlog.yaml, "
        "docs/\\x1b[2Jx.md"
    ) in lines
    assert "\x1b" not in text.stdout
    assert "Declined (2):" in lines
    assert "  metrics: pull request #700 closed by octocat" in lines
    assert "  ci: its staged change was rejected by alice (goal team-ci)" in lines
    view = yaml.safe_load(as_yaml.stdout)
    assert view["awaitingApproval"] == status["awaitingApproval"]
    assert view["conflicted"] == status["conflicted"]
    assert view["declined"] == status["declined"]
    # A Backlog with none of them says so.
    api.create_object(backlog("plain", "https://github.com/o/p.git"))
    plain = cli(emulator_server, "status", "plain").stdout.splitlines()
    assert {"Awaiting approval (0): none", "Conflicted (0): none", "Declined (0): none"} <= set(
        plain
    )


# --------------------------------------------------------------------------------------- logs


def make_pod(api: HardenedEmulator, goal: Json, attempt: int) -> str:
    name = f"{goal['metadata']['name']}-{attempt}-pod"
    labels = {
        LABEL_GOAL_UID: goal["metadata"]["uid"],
        LABEL_RUN: "1",
        LABEL_ATTEMPT: str(attempt),
    }
    api.create_object(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {
                "initContainers": [
                    {"name": "clone", "image": "op"},
                    {"name": "task", "image": "busybox"},
                ],
                "containers": [{"name": "publish", "image": "op"}],
            },
        }
    )
    for step in ("clone", "task", "publish"):
        api.set_pod_log(NS, name, f"{step} of attempt {attempt}\n", container=step)
    return name


def test_logs_prints_the_step_of_the_attempt(emulator_server: EmulatorServer) -> None:
    api = emulator_server.emulator
    goal = make_goal(api, "g", SUCCEEDED | {"attempts": 2})
    make_pod(api, goal, 1)
    make_pod(api, goal, 2)

    task = cli(emulator_server, "logs", "g", "--step", "task")
    first = cli(emulator_server, "logs", "g", "--step", "clone", "--attempt", "1")
    every = cli(emulator_server, "logs", "g")

    assert task.returncode == 0, task.stderr
    assert task.stdout == "task of attempt 2\n"
    assert first.stdout == "clone of attempt 1\n"
    assert every.stdout == "clone of attempt 2\ntask of attempt 2\npublish of attempt 2\n"
    assert "==> g-2-pod task <==" in every.stderr


def test_logs_of_a_gone_pod_say_so_and_show_the_status(emulator_server: EmulatorServer) -> None:
    make_goal(emulator_server.emulator, "g", SUCCEEDED)

    result = cli(emulator_server, "logs", "g", "--step", "task")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "The Pod of goal g, attempt 1, is gone" in result.stderr
    assert "outcome: published" in result.stderr
    assert "pullRequest: #707 https://github.com/o/r/pull/707" in result.stderr


def test_logs_follow_prints_lines_written_later(emulator_server: EmulatorServer) -> None:
    api = emulator_server.emulator
    goal = make_goal(api, "g", {"phase": "Running", "step": "task", "attempts": 1})
    pod = make_pod(api, goal, 1)
    clone_done = {"name": "clone", "state": {"terminated": {"exitCode": 0}}}

    def task(state: Json) -> None:
        statuses = [clone_done, {"name": "task", "state": state}]
        api.patch_status("v1/pods", NS, pod, {"initContainerStatuses": statuses})

    task({"running": {"startedAt": "2026-01-30T23:15:00Z"}})
    env = {**os.environ, "KUBECONFIG": str(emulator_server.kubeconfig)}
    command = [sys.executable, "-m", "backlog_operator.cli", "logs", "g", "-f"]
    process = subprocess.Popen(
        [*command, "--context", "emulator-admin"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout or []:
            lines.put(line)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        # A bound on waiting only, so a broken follow fails instead of hanging the suite.
        assert lines.get(timeout=60) == "task of attempt 1\n"  # the step running now
        api.append_pod_log(NS, pod, "written later\n", container="task")
        assert lines.get(timeout=60) == "written later\n"
        task({"terminated": {"exitCode": 0}})
        assert process.wait(timeout=60) == 0  # the stream ends with the container
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        reader.join()
    assert lines.empty()
    assert process.stderr is not None and process.stderr.read() == ""


def test_logs_follow_ends_quietly_on_interrupt(emulator_server: EmulatorServer) -> None:
    api = emulator_server.emulator
    goal = make_goal(api, "g", {"phase": "Running", "step": "task", "attempts": 1})
    pod = make_pod(api, goal, 1)
    running = {"name": "task", "state": {"running": {"startedAt": "2026-01-30T23:15:00Z"}}}
    api.patch_status("v1/pods", NS, pod, {"initContainerStatuses": [running]})
    env = {**os.environ, "KUBECONFIG": str(emulator_server.kubeconfig)}
    command = [sys.executable, "-m", "backlog_operator.cli", "logs", "g", "-f", "--step", "task"]
    process = subprocess.Popen(
        [*command, "--context", "emulator-admin"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "task of attempt 1\n"  # following now
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130
    assert "Traceback" not in err


CHANGE = "sha256:" + "ab" * 32
APPROVED = {
    "patchHash": CHANGE,
    "baseCommit": "0" * 40,
    "branch": "backlog/docs-guide-abc123",
    "patchConfigMap": "g-patch",
    "stagedAt": "2026-01-30T23:00:00Z",
    "expiresAt": "2099-01-01T00:00:00Z",
    "approvedHash": CHANGE,
    "approvedBy": "alice",
    "approvedAt": "2026-01-30T23:10:00Z",
}


def start_job(api: HardenedEmulator, manifest: Json, logs: dict[str, str]) -> str:
    """Create a Job as the operator built it, start it as the Job controller does (its Pod
    carries the Job's labels and `job-name`), give its containers these logs; the Pod's name."""
    api.create_object(manifest)
    pod = api.start_job(NS, manifest["metadata"]["name"])["metadata"]["name"]
    for container, text in logs.items():
        api.set_pod_log(NS, pod, text, container=container)
    return str(pod)


def test_logs_finds_the_latest_job_the_publish_only_attempt_and_the_heal(
    emulator_server: EmulatorServer,
) -> None:
    api = emulator_server.emulator
    settings = OperatorSettings(worker_image="backlog-operator:test")
    api.create_object(goal_manifest("g", approval={"required": True}))
    goal = Goal.model_validate(api.get_object(GOALS, NS, "g"))
    # The staging attempt (approval required: `publish` runs `worker stage`), approved, then the
    # publish-only attempt p1 that opened the pull request, then a heal of it.
    staging = job.build_job(goal, 1, settings)
    assert staging["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker", "stage"]
    start_job(api, staging, {"clone": "clone 1\n", "task": "task 1\n", "publish": "stage 1\n"})
    status = GoalStatus.model_validate(
        {"attempts": 1, "attemptId": "attempt-docs-guide-abc123", "approval": APPROVED}
    )
    publish = approval_job.build_publish_job(goal, status, 1, settings)
    start_job(api, publish, {"publish": "apply p1\n"})
    status = status.model_copy(update={"branch": APPROVED["branch"]})
    start_job(api, heal.build_heal_job(goal, status, settings, 1), {"heal": "heal 1\n"})
    pull = {"number": 707, "url": "https://github.com/o/r/pull/707", "heals": 1}
    goal_status = {
        "phase": "Succeeded",
        "attempts": 1,
        "jobName": publish["metadata"]["name"],
        "approval": APPROVED,
        "pullRequest": pull,
    }
    api.patch_status(GOALS, NS, "g", goal_status)

    latest = cli(emulator_server, "logs", "g")
    staged = cli(emulator_server, "logs", "g", "--attempt", "1")
    stage_step = cli(emulator_server, "logs", "g", "--attempt", "1", "--step", "publish")
    publish_only = cli(emulator_server, "logs", "g", "--attempt", "p1")
    healed = cli(emulator_server, "logs", "g", "--heal")
    heal_step = cli(emulator_server, "logs", "g", "--heal", "--step", "heal")
    no_task = cli(emulator_server, "logs", "g", "--heal", "--step", "task")

    assert (latest.returncode, latest.stdout) == (0, "apply p1\n"), latest.stderr
    assert staged.stdout == "clone 1\ntask 1\nstage 1\n"
    assert stage_step.stdout == "stage 1\n"
    assert publish_only.stdout == "apply p1\n"
    assert (healed.returncode, healed.stdout) == (0, "heal 1\n"), healed.stderr
    assert heal_step.stdout == "heal 1\n"
    assert no_task.returncode == 1 and no_task.stdout == ""
    assert "(heal 1) has no step task: its steps are heal" in no_task.stderr


def test_logs_of_a_goal_never_healed_or_of_a_gone_publish_attempt_say_so(
    emulator_server: EmulatorServer,
) -> None:
    api = emulator_server.emulator
    make_goal(api, "g", SUCCEEDED | {"approval": APPROVED, "jobName": "g-12345-p1"})

    never_healed = cli(emulator_server, "logs", "g", "--heal")
    gone = cli(emulator_server, "logs", "g")
    gone_p2 = cli(emulator_server, "logs", "g", "--attempt", "p2")

    assert never_healed.returncode == 1
    assert 'goal "g" has no heal Job: its pull request was never healed' in never_healed.stderr
    assert gone.returncode == 1
    assert "The Pod of goal g, Job g-12345-p1, is gone" in gone.stderr
    assert "The Pod of goal g, publish-only attempt p2, is gone" in gone_p2.stderr


def test_logs_finds_a_pod_labelled_job_name_only(emulator_server: EmulatorServer) -> None:
    # Before Kubernetes 1.27 the Job controller labelled its Pods `job-name` alone.
    api = emulator_server.emulator
    goal = make_goal(api, "g", SUCCEEDED | {"jobName": "g-12345-p1"})
    labels = {"job-name": "g-12345-p1", LABEL_GOAL_UID: goal["metadata"]["uid"]}
    pod = {"name": "g-12345-p1-x", "namespace": NS, "labels": labels}
    spec = {"containers": [{"name": "publish", "image": "op"}]}
    api.create_object({"apiVersion": "v1", "kind": "Pod", "metadata": pod, "spec": spec})
    api.set_pod_log(NS, "g-12345-p1-x", "apply p1\n", container="publish")

    result = cli(emulator_server, "logs", "g")

    assert (result.returncode, result.stdout) == (0, "apply p1\n"), result.stderr


@pytest.mark.parametrize("attempt", ["0", "p0", "x1", "-1", "p"])
def test_logs_refuses_an_attempt_that_is_not_one(
    emulator_server: EmulatorServer, attempt: str
) -> None:
    result = cli(emulator_server, "logs", "g", f"--attempt={attempt}")

    assert result.returncode == 2
    assert "is not an attempt: N, or pN for a publish-only one" in result.stderr


def test_logs_heal_and_attempt_do_not_go_together(emulator_server: EmulatorServer) -> None:
    result = cli(emulator_server, "logs", "g", "--heal", "--attempt", "1")

    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


# ------------------------------------------------------------------------- as a kubectl plugin


# The environment's scripts folder: where `pip install` put `kubectl-backlog`.
SCRIPTS = Path(sys.executable).parent


@pytest.mark.skipif(
    shutil.which("kubectl") is None or not (SCRIPTS / "kubectl-backlog").exists(),
    reason="kubectl or the kubectl-backlog script is not installed",
)
def test_kubectl_runs_the_plugin_and_usage_names_it(emulator_server: EmulatorServer) -> None:
    make_goal(emulator_server.emulator, "done", SUCCEEDED)
    path = f"{SCRIPTS}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "KUBECONFIG": str(emulator_server.kubeconfig), "PATH": path}

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "backlog", *args], capture_output=True, text=True, env=env, check=False
        )

    got = kubectl("get", "goals", "--context", "emulator-admin")
    version = kubectl("version")
    wrong = kubectl("get", "widgets")

    assert got.returncode == 0, got.stderr
    assert got.stdout.splitlines()[1].startswith("done ")
    assert version.stdout.startswith("kubectl backlog ")
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("usage: kubectl backlog get")
    assert "unknown kind 'widgets'" in wrong.stderr


@pytest.mark.skipif(
    shutil.which("kubectl") is None or not (SCRIPTS / "kubectl-backlog").exists(),
    reason="kubectl or the kubectl-backlog script is not installed",
)
def test_kubectl_completes_the_plugin_with_names_from_the_cluster(
    emulator_server: EmulatorServer, tmp_path: Path
) -> None:
    api = emulator_server.emulator
    make_goal(api, "docs-guide")
    make_goal(api, "lint")
    plugin = tmp_path / "kubectl_complete-backlog"
    plugin.write_text(cli(emulator_server, "completion", "kubectl", admin=False).stdout)
    plugin.chmod(0o755)
    path = os.pathsep.join([str(tmp_path), str(SCRIPTS), os.environ.get("PATH", "")])
    env = {**os.environ, "KUBECONFIG": str(emulator_server.kubeconfig), "PATH": path}

    def tab(*words: str) -> list[str]:
        # What kubectl's own shell completion asks it for `kubectl backlog WORDS<TAB>`.
        done = subprocess.run(
            ["kubectl", "__complete", "backlog", *words],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        return done.stdout.splitlines()

    assert tab("sta") == ["status", ":4"]
    assert tab("logs", "--context", "emulator-admin", "") == ["docs-guide", "lint", ":4"]
    assert tab("rerun", "--context", "emulator-admin", "-n", "elsewhere", "") == [":4"]


def test_unreachable_cluster_is_one_line_on_stderr(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "backlog_operator.cli", "get", "goals", "--kubeconfig", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot reach the API server")
    assert "Traceback" not in result.stderr


_ = kmock  # the fixtures' types
