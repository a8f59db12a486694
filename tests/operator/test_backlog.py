"""Backlogs in the operator against the API emulator: a real bare repository as the remote,
the forge stand-in where pull requests matter, and the operator's clock in the test's hands."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backlog_operator.api.labels import LABEL_BACKLOG, LABEL_GOAL_UID
from backlog_operator.api.result import Outcome, WorkerResult
from backlog_operator.api.usage import Cost, TaskUsage
from backlog_operator.controller.handlers import build_registry
from backlog_operator.controller.settings import OperatorSettings
from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import commit_to_remote, make_remote
from tests.support.kopf_harness import KopfThread, new_api_client

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
BACKLOGS = "backlog.dev/v1alpha1/backlogs"

LEVIATHAN = """\
# Leviathan-style backlog: `dependencies`, word priorities, comments.
tasks:
  - id: docs-intro
    title: Introduction
    ready: true
    priority: low
  - id: ci-cache          # runs first: highest priority
    title: Cache CI
    ready: true
    priority: critical
  - id: api-docs
    title: API docs
    ready: true
    priority: high
    dependencies: [ci-cache]
  - id: done-already
    title: Done
    ready: true
    status: completed
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


def backlog(name: str, url: str, **spec: Any) -> dict[str, Any]:
    template_spec: dict[str, Any] = {
        "task": {"image": "busybox", "command": ["true"]},
        "pullRequest": {"provider": "none"},
        "retry": {"maxAttempts": 1},  # a failed task fails its Goal at once
    }
    template_spec.update(spec.pop("template", {}))
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Backlog",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "repository": {"url": url},
            "goalTemplate": {"spec": template_spec},
            "syncIntervalSeconds": 60,
            **spec,
        },
    }


class Synced:
    def __init__(self, server: EmulatorServer, clock: Clock) -> None:
        self.api: HardenedEmulator = server.emulator
        self.clock = clock

    def status(self, name: str) -> dict[str, Any]:
        found = self.api.get_object(BACKLOGS, NS, name)
        assert found is not None
        return found.get("status") or {}

    def goals(self, name: str) -> dict[str, dict[str, Any]]:
        found = self.api.list_objects(GOALS, NS, label_selector=f"{LABEL_BACKLOG}={name}")
        return {g["spec"]["backlog"]["taskId"] + f"#{g['metadata']['name']}": g for g in found}

    def tasks_with_goals(self, name: str) -> list[str]:
        return sorted(key.split("#")[0] for key in self.goals(name))

    def wait_synced(self, name: str, commit: str | None = None) -> dict[str, Any]:
        return self.api.wait_for(
            lambda: (
                (s := self.status(name)).get("lastSyncedCommit")
                and (commit is None or s["lastSyncedCommit"] == commit)
                and s
            ),
            message=lambda: f"{name}: {self.status(name)}",
        )

    def finish(self, name: str, task: str, phase: str, *, usage: TaskUsage | None = None) -> None:
        """Run the task's unfinished Goal to `phase` through its Job, as the Job controller and
        the worker would report it (the Goal controller writes the Goal's status itself); a
        published result carries `usage`, what the task reported."""
        [goal] = [
            g
            for key, g in self.goals(name).items()
            if key.startswith(f"{task}#") and (g.get("status") or {}).get("phase") != phase
        ]
        uid = goal["metadata"]["uid"]
        [job] = self.api.wait_for(
            lambda: self.api.list_objects(
                "batch/v1/jobs", NS, label_selector=f"{LABEL_GOAL_UID}={uid}"
            )
        )
        pod = self.api.start_job(NS, job["metadata"]["name"])
        if phase == "Succeeded":
            result = WorkerResult(
                outcome=Outcome.PUBLISHED, task_id=task, branch=f"backlog/{task}-1", usage=usage
            )
            self.api.finish_pod(NS, pod["metadata"]["name"], messages={"publish": result.to_json()})
        else:
            self.api.finish_pod(NS, pod["metadata"]["name"], exit_codes={"task": 3})
        self.api.complete_job(NS, job["metadata"]["name"], succeeded=phase == "Succeeded")
        self.api.wait_for(
            lambda: (
                (self.api.get_object(GOALS, NS, goal["metadata"]["name"]) or {})
                .get("status", {})
                .get("phase")
                == phase
            )
        )

    def next_sync(self) -> None:
        self.clock.now += timedelta(seconds=61)

    def events(self, name: str) -> list[str]:
        return [
            e["reason"]
            for e in self.api.list_objects("v1/events", NS)
            if e["involvedObject"]["name"] == name
        ]


@contextmanager
def operator(
    server: EmulatorServer, clock: Clock, tmp_path: Path, **options: Any
) -> Iterator[None]:
    registry = build_registry(
        # Room for every Goal a Backlog starts to run at once: Goal capacity (one per repository
        # by default, tested in test_goal_operator) would otherwise decide which Job exists.
        OperatorSettings(
            requeue_seconds=0.05,
            cache_dir=str(tmp_path / "cache"),
            max_running_per_repository=100,
            max_running=100,
        ),
        lambda: new_api_client(server),
        login=False,
        clock=clock,
        **options,
    )
    with KopfThread(server, registry=registry):
        yield


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_remote(tmp_path, {".backlog/backlog.yaml": LEVIATHAN})


@pytest.fixture
def synced(
    emulator_server: EmulatorServer, project_crds: object, tmp_path: Path
) -> Iterator[Synced]:
    clock = Clock()
    with operator(emulator_server, clock, tmp_path):
        yield Synced(emulator_server, clock)


def test_sync_reports_the_backlog_and_starts_the_top_task(synced: Synced, remote: Path) -> None:
    synced.api.create_object(backlog("team", str(remote)))

    status = synced.wait_synced("team")
    assert status["counts"] == {
        "pending": 3,
        "inProgress": 0,
        "completed": 1,
        "failed": 0,
        "blocked": 0,
    }
    assert status["blocked"][0]["id"] == "api-docs"
    assert status["blocked"][0]["requires"] == ["ci-cache"]
    assert synced.tasks_with_goals("team") == ["ci-cache"]  # critical first, one at a time
    [goal] = synced.goals("team").values()
    assert goal["metadata"]["ownerReferences"][0]["kind"] == "Backlog"
    assert goal["spec"]["repository"]["url"] == str(remote)
    assert goal["spec"]["backlog"] == {"path": ".backlog/backlog.yaml", "taskId": "ci-cache"}
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


def test_merged_task_is_never_selected_again_and_unblocks_the_next(
    synced: Synced, remote: Path
) -> None:
    synced.api.create_object(backlog("team", str(remote)))
    synced.wait_synced("team")

    synced.finish("team", "ci-cache", "Succeeded")
    # Its work awaits review: ci-cache is not picked again, api-docs still waits for it, and
    # the free slot goes to the only ready task.
    assert synced.api.wait_for(lambda: len(t := synced.tasks_with_goals("team")) == 2 and t) == [
        "ci-cache",
        "docs-intro",
    ]

    # The pull request merges: main's backlog now says ci-cache is completed.
    merged = commit_to_remote(
        remote,
        "main",
        {
            ".backlog/backlog.yaml": LEVIATHAN.replace(
                "    priority: critical\n", "    priority: critical\n    status: completed\n"
            )
        },
    )
    synced.finish("team", "docs-intro", "Succeeded")
    synced.next_sync()

    status = synced.wait_synced("team", merged)
    assert status["counts"]["completed"] == 2
    assert status["completed"] == ["ci-cache", "done-already"]
    assert synced.api.wait_for(lambda: len(t := synced.tasks_with_goals("team")) == 3 and t) == [
        "api-docs",
        "ci-cache",
        "docs-intro",
    ]
    synced.next_sync()
    synced.api.wait_for(lambda: synced.status("team")["lastSyncTime"] > status["lastSyncTime"])
    assert len(synced.tasks_with_goals("team")) == 3  # never a second ci-cache


def test_malformed_backlog_selects_nothing_and_names_file_and_line(
    synced: Synced, tmp_path: Path
) -> None:
    broken = make_remote(
        tmp_path, {".backlog/backlog.yaml": "tasks:\n  - id: a\n  - id: a\n"}, name="broken.git"
    )
    synced.api.create_object(backlog("broken", str(broken)))

    status = synced.api.wait_for(lambda: (s := synced.status("broken")).get("conditions") and s)
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidBacklog")
    assert ".backlog/backlog.yaml:3" in stalled["message"]
    assert "duplicate" in stalled["message"]
    synced.api.wait_for(lambda: "InvalidBacklog" in synced.events("broken") or None)
    assert synced.goals("broken") == {}


def test_failure_budget_blocks_a_task_until_cleared(synced: Synced, remote: Path) -> None:
    synced.api.create_object(
        backlog(
            "team", str(remote), failureBudget={"maxFailures": 1}, limits={"maxRunningGoals": 5}
        )
    )
    synced.wait_synced("team")
    synced.finish("team", "ci-cache", "Failed")

    synced.next_sync()

    status = synced.api.wait_for(
        lambda: (
            any(b["id"] == "ci-cache" for b in synced.status("team").get("blocked", []))
            and synced.status("team")
        )
    )
    blocked = next(b for b in status["blocked"] if b["id"] == "ci-cache")
    assert blocked["reason"] == "FailureBudget"
    assert "TaskFailed" in blocked["message"]
    # ci-cache is held back; the next ready task (api-docs still requires ci-cache) starts.
    assert synced.tasks_with_goals("team") == ["ci-cache", "docs-intro"]

    cleared = (synced.clock.now + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    synced.clock.now += timedelta(seconds=2)
    synced.api.patch_object(
        BACKLOGS,
        NS,
        "team",
        {"metadata": {"annotations": {"backlog.dev/failures-cleared-at": cleared}}},
    )

    retried = synced.api.wait_for(lambda: len(t := synced.tasks_with_goals("team")) == 3 and t)
    assert retried == ["ci-cache", "ci-cache", "docs-intro"]  # a second Goal, a new name


def test_forge_failure_starts_nothing(synced: Synced, remote: Path) -> None:
    with GitHubStandIn("octo/project", token=None) as github:
        github.fail_next(503, times=1000)
        template = {
            "pullRequest": {
                "provider": "github",
                "apiBaseUrl": github.base_url,
                "repository": "octo/project",
            }
        }
        synced.api.create_object(backlog("closed", str(remote), template=template))

        status = synced.api.wait_for(lambda: (s := synced.status("closed")).get("conditions") and s)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ForgeUnavailable")
    assert synced.goals("closed") == {}


def test_open_pull_request_of_a_task_keeps_it_from_being_selected(
    synced: Synced, remote: Path
) -> None:
    with GitHubStandIn("octo/project", token=None) as github:
        github.add_pull("backlog/ci-cache-abc123", "main")
        template = {
            "pullRequest": {
                "provider": "github",
                "apiBaseUrl": github.base_url,
                "repository": "octo/project",
            }
        }
        synced.api.create_object(
            backlog("prs", str(remote), template=template, limits={"maxOpenPullRequests": 2})
        )
        status = synced.wait_synced("prs")
        goals = synced.api.wait_for(lambda: synced.tasks_with_goals("prs"))
    assert "ci-cache" in status["inProgress"]
    assert goals == ["docs-intro"]  # ci-cache has its pull request; api-docs waits for it


def test_suspended_backlog_reports_but_starts_nothing(synced: Synced, remote: Path) -> None:
    synced.api.create_object(backlog("held", str(remote), suspend=True))

    status = synced.wait_synced("held")

    assert status["counts"]["pending"] == 3
    assert synced.goals("held") == {}


def test_requested_sync_reads_a_new_commit_before_the_interval(
    synced: Synced, remote: Path
) -> None:
    synced.api.create_object(backlog("team", str(remote), syncIntervalSeconds=3600))
    first = synced.wait_synced("team")["lastSyncedCommit"]
    moved = commit_to_remote(remote, "main", {"NOTES.md": "new\n"})

    synced.api.patch_object(
        BACKLOGS, NS, "team", {"metadata": {"annotations": {"backlog.dev/requested-at": "now-1"}}}
    )

    status = synced.wait_synced("team", moved)
    assert status["lastSyncedCommit"] != first
    assert status["lastHandledReconcileAt"] == "now-1"


def test_open_pull_request_limit_reached_and_freed(synced: Synced, remote: Path) -> None:
    with GitHubStandIn("octo/project", token=None) as github:
        other = github.add_pull("backlog/someone-else-abc123", "main")
        template = {
            "pullRequest": {
                "provider": "github",
                "apiBaseUrl": github.base_url,
                "repository": "octo/project",
            }
        }
        synced.api.create_object(
            backlog("capped", str(remote), template=template, limits={"maxOpenPullRequests": 1})
        )
        status = synced.wait_synced("capped")
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "LimitReached"
        assert "at most 1" in ready["message"]
        assert synced.goals("capped") == {}

        github.close(other.number)  # reviewed and closed: the slot is free
        synced.next_sync()

        started = synced.api.wait_for(lambda: synced.tasks_with_goals("capped"))
    assert started == ["ci-cache"]


def test_history_keeps_the_newest_finished_goals(synced: Synced, tmp_path: Path) -> None:
    three = "tasks:\n" + "".join(
        f"  - id: t{i}\n    title: T{i}\n    ready: true\n    priority: {i}\n" for i in range(3)
    )
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": three}, name="three.git")
    synced.api.create_object(
        backlog(
            "hist",
            str(remote),
            limits={"maxRunningGoals": 1},
            history={"successful": 1, "failed": 1},
        )
    )
    for task in ("t0", "t1"):

        def has_goal(task: str = task) -> bool:
            return task in synced.tasks_with_goals("hist")

        synced.api.wait_for(has_goal)
        synced.clock.now += timedelta(seconds=1)  # distinct start times order the history
        synced.finish("hist", task, "Succeeded")

    kept = synced.api.wait_for(
        lambda: "t2" in (t := synced.tasks_with_goals("hist")) and "t0" not in t and t
    )
    assert kept == ["t1", "t2"]  # t0's Goal, the older success, was deleted
    synced.api.wait_for(lambda: "HistoryTrimmed" in synced.events("hist") or None)


def test_editing_the_task_gives_it_a_fresh_failure_budget(synced: Synced, remote: Path) -> None:
    synced.api.create_object(
        backlog(
            "edit", str(remote), failureBudget={"maxFailures": 1}, limits={"maxRunningGoals": 5}
        )
    )
    synced.wait_synced("edit")
    synced.finish("edit", "ci-cache", "Failed")
    synced.api.wait_for(
        lambda: any(b["id"] == "ci-cache" for b in synced.status("edit").get("blocked", []))
    )
    moved = commit_to_remote(  # a person rewrites the task after reading why it failed
        remote,
        "main",
        {".backlog/backlog.yaml": LEVIATHAN.replace("title: Cache CI", "title: Cache CI deps")},
    )

    synced.next_sync()

    synced.wait_synced("edit", moved)
    retried = synced.api.wait_for(
        lambda: synced.tasks_with_goals("edit").count("ci-cache") == 2 or None
    )
    assert retried
    assert all(b["id"] != "ci-cache" for b in synced.status("edit").get("blocked", []))


# --- daily budgets ------------------------------------------------------------------------------


def next_utc_day(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def budget_of(synced: Synced, name: str) -> dict[str, Any]:
    budget: dict[str, Any] = synced.status(name).get("budget") or {}
    return budget


def test_an_attempts_budget_stops_new_goals_says_so_and_renews_the_next_day(
    synced: Synced, remote: Path
) -> None:
    synced.api.create_object(
        backlog(
            "daily",
            str(remote),
            limits={"maxRunningGoals": 5},
            budget={"perDay": {"attempts": 1}},
        )
    )
    synced.wait_synced("daily")
    # ci-cache and docs-intro are ready; the day has room for one attempt.
    assert synced.tasks_with_goals("daily") == ["ci-cache"]

    synced.finish("daily", "ci-cache", "Succeeded")

    spent = synced.api.wait_for(
        lambda: budget_of(synced, "daily").get("exhausted") and budget_of(synced, "daily"),
        message=lambda: f"{synced.status('daily')}",
    )
    assert spent["reason"] == "AttemptsSpent"
    assert spent["resumeTime"] == next_utc_day(synced.clock.now).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready = _condition(synced.status("daily"), "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "BudgetExhausted")
    assert "1 attempt(s) ended today, of 1" in ready["message"]
    synced.api.wait_for(lambda: "BudgetExhausted" in synced.events("daily") or None)
    before = synced.status("daily")["lastSyncTime"]
    synced.next_sync()
    synced.api.wait_for(lambda: synced.status("daily")["lastSyncTime"] != before or None)
    assert synced.tasks_with_goals("daily") == ["ci-cache"]  # still held back
    assert synced.events("daily").count("BudgetExhausted") == 1

    synced.clock.now = next_utc_day(synced.clock.now) + timedelta(seconds=5)

    started = synced.api.wait_for(
        lambda: len(t := synced.tasks_with_goals("daily")) == 2 and t,
        message=lambda: f"{synced.status('daily')}",
    )
    assert started == ["ci-cache", "docs-intro"]
    synced.api.wait_for(lambda: "BudgetAvailable" in synced.events("daily") or None)
    status = synced.api.wait_for(
        lambda: budget_of(synced, "daily").get("exhausted") is False and synced.status("daily")
    )
    [yesterday] = status["usage"]["days"]
    assert (yesterday["date"], yesterday["attempts"]) == (spent["day"], 1)


def test_a_cost_budget_counts_what_the_tasks_report(synced: Synced, tmp_path: Path) -> None:
    three = "tasks:\n" + "".join(
        f"  - id: t{i}\n    title: T{i}\n    ready: true\n    priority: {i}\n" for i in range(3)
    )
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": three}, name="three.git")
    synced.api.create_object(
        backlog(
            "paid", str(remote), budget={"perDay": {"cost": {"amount": "1", "currency": "USD"}}}
        )
    )
    synced.wait_synced("paid")

    def spend(amount: str) -> TaskUsage:
        return TaskUsage(input_tokens=1000, cost=Cost(amount=amount, currency="USD"))

    synced.finish("paid", "t0", "Succeeded", usage=spend("0.6"))
    synced.api.wait_for(lambda: "t1" in synced.tasks_with_goals("paid") or None)
    synced.finish("paid", "t1", "Succeeded", usage=spend("0.45"))

    spent = synced.api.wait_for(
        lambda: budget_of(synced, "paid").get("exhausted") and budget_of(synced, "paid"),
        message=lambda: f"{synced.status('paid')}",
    )
    assert spent["reason"] == "CostSpent"
    assert "1.05 USD spent today, of 1" in spent["message"]
    assert synced.tasks_with_goals("paid") == ["t0", "t1"]
    [today] = synced.status("paid")["usage"]["days"]
    assert (today["attempts"], today["inputTokens"], today["costs"]) == (
        2,
        2000,
        [{"amount": "1.05", "currency": "USD"}],
    )
    goal = synced.goals("paid")["t1#paid-t1"]
    assert goal["status"]["usage"]["total"]["costs"] == [{"amount": "0.45", "currency": "USD"}]
    synced.api.wait_for(lambda: "BudgetExhausted" in synced.events("paid") or None)

    synced.clock.now = next_utc_day(synced.clock.now) + timedelta(seconds=5)

    synced.api.wait_for(lambda: "t2" in synced.tasks_with_goals("paid") or None)
    renewed = synced.api.wait_for(  # the status is written after the Goal is created
        lambda: budget_of(synced, "paid").get("exhausted") is False and budget_of(synced, "paid")
    )
    assert renewed["message"] == "used today: 0 of 1 USD"


# --- failures: retried with backoff, shown on the Backlog -------------------------------------


def test_a_failed_first_read_of_a_new_backlog_is_retried_until_it_syncs(
    synced: Synced, remote: Path
) -> None:
    read = synced.api.faults.add(verb="get", resource="backlogs", name="team", status=500, times=1)

    synced.api.create_object(backlog("team", str(remote)))

    status = synced.wait_synced("team")
    assert read.hits == 1
    assert status["counts"]["pending"] == 3
    assert synced.tasks_with_goals("team") == ["ci-cache"]


class _Broken:
    """A forge that fails with what no adapter expects (not a ClassifiedError)."""

    def open_pull_requests(self, head_prefix: str) -> list[tuple[Any, datetime]]:
        raise RuntimeError("the forge client blew up")


@pytest.mark.parametrize("failure", ["forge-raises", "goal-listing-fails"])
def test_a_failing_sync_is_retried_on_backoff_not_on_every_tick(
    emulator_server: EmulatorServer,
    project_crds: object,
    tmp_path: Path,
    remote: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    """A sync that fails after `git ls-remote` and the pull request listing, with requeue ticks
    every 0.05 s: its tries follow the backoff (1 s, doubling), not the ticks. Held by the
    gaps between tries, which a slow machine only widens: one try per tick would show as gaps
    of 0.05 s."""
    from backlog_operator.adapters import git as gitops

    ls_remote = gitops.remote_branch_sha
    tips: list[str] = []
    tried_at: list[float] = []

    def counted(*args: Any, **kwargs: Any) -> str | None:
        tips.append(args[0])
        tried_at.append(time.monotonic())
        return ls_remote(*args, **kwargs)

    monkeypatch.setattr(gitops, "remote_branch_sha", counted)
    forges: list[str] = []

    def forge(repository: str, token: str | None, base_url: str | None) -> Any:
        forges.append(repository)
        return _Broken() if failure == "forge-raises" else _NoPulls()

    clock = Clock()
    synced = Synced(emulator_server, clock)
    template = {"pullRequest": {"provider": "github", "repository": "octo/project"}}
    with operator(emulator_server, clock, tmp_path, forge_factory=forge):
        if failure == "goal-listing-fails":
            synced.api.faults.add(verb="list", resource="goals", status=500)
        synced.api.create_object(backlog("team", str(remote), template=template))
        synced.api.wait_for(lambda: len(forges) >= 3, timeout=60)
        time.sleep(0.5)  # 10 more ticks: none may bring a try forward
        tries = (len(tips), len(forges))
        gaps = [later - earlier for earlier, later in itertools.pairwise(tried_at)]
        ready = synced.api.wait_for(
            lambda: (
                (c := _condition(synced.status("team"), "Ready")).get("reason") == "ReconcileError"
                and c
            ),
            message=lambda: f"{synced.status('team')}",
        )
        synced.api.wait_for(lambda: "ReconcileError" in synced.events("team") or None)
    assert tries[0] == tries[1] >= 3, tries
    # The backoff doubles from 1 s with equal jitter: each wait is at least half its step.
    assert all(gap >= 0.45 * 2**i for i, gap in enumerate(gaps[:3])), gaps
    assert ready["status"] == "False"
    if failure == "forge-raises":  # what no retry is known to fix: Stalled at once
        assert "RuntimeError: the forge client blew up" in ready["message"]
        assert _condition(synced.status("team"), "Stalled")["status"] == "True"
    else:
        assert "500 InternalError" in ready["message"]
        assert _condition(synced.status("team"), "Reconciling")["status"] == "True"
    assert synced.events("team").count("ReconcileError") == 1
    assert synced.goals("team") == {}


class _NoPulls:
    def open_pull_requests(self, head_prefix: str) -> list[tuple[Any, datetime]]:
        return []


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})
