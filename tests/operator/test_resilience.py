"""The operator when the API server fails it: every Goal, Backlog and GoalSchedule still gets to
its right status, with no second Job for one attempt and no goal over capacity.

Faults come from the emulator (`tests.support.faults`) and act on the operator's HTTP requests
only (kopf's and the operator's own); the test plays the Job controller and the people through
the emulator's synchronous API, which is never failed. The operator's clock is the test's, so
a cron tick is a clock advance; retries of failed cycles run on real time, made short here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest
from kubernetes.client.exceptions import ApiException

from backlog_operator.adapters.kube import describe_failure
from backlog_operator.api.goal import Goal
from backlog_operator.api.labels import LABEL_ATTEMPT, LABEL_GOAL_UID, LABEL_RUN, LABEL_SCHEDULE
from backlog_operator.api.result import Outcome, WorkerResult, failure
from backlog_operator.controller import runtime
from backlog_operator.controller.goals.job import build_job
from backlog_operator.controller.handlers import build_registry
from backlog_operator.controller.runtime import Backoff, RetryPolicy
from backlog_operator.controller.settings import OperatorSettings
from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.faults import Fault
from tests.support.gitrepos import make_remote
from tests.support.kopf_harness import KopfThread, new_api_client

_T = TypeVar("_T")

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
BACKLOGS = "backlog.dev/v1alpha1/backlogs"
SCHEDULES = "backlog.dev/v1alpha1/goalschedules"
JOBS = "batch/v1/jobs"
WRITES = ("create", "patch", "update", "delete")
# The operator's backoff, shorter: a test waits seconds, not minutes, for its objects.
QUICK_RETRY = RetryPolicy(base_seconds=0.05, max_seconds=0.5, report_after=3)
CONVERGED_WITHIN = 60.0

Json = dict[str, Any]

BACKLOG_FILE = """\
tasks:
  - id: ci-cache
    title: Cache CI
    ready: true
    priority: critical
  - id: docs-intro
    title: Introduction
    ready: true
    priority: low
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def operator(server: EmulatorServer, clock: Clock, tmp_path: Path) -> Iterator[None]:
    registry = build_registry(
        OperatorSettings(
            requeue_seconds=0.05, cache_dir=str(tmp_path / "cache"), max_running_per_repository=1
        ),
        lambda: new_api_client(server),
        login=False,
        clock=clock,
        retry=QUICK_RETRY,
    )
    with KopfThread(server, registry=registry):
        yield


def goal(name: str, repo: str, task: str | None = None, **spec: Any) -> Json:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "repository": {"url": f"https://github.com/{repo}.git"},
            "backlog": {"taskId": task or name},
            "task": {"image": "busybox:1.37", "command": ["true"]},
            "retry": {"maxAttempts": 3, "backoffSeconds": 0, "maxBackoffSeconds": 0},
            **spec,
        },
    }


def schedule(name: str) -> Json:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "GoalSchedule",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "schedule": "*/5 * * * *",
            "goalTemplate": {
                "spec": {
                    "repository": {"url": "https://github.com/o/scheduled.git"},
                    "task": {"image": "busybox:1.37", "command": ["true"]},
                    "suspend": True,
                }
            },
        },
    }


def backlog(name: str, url: str) -> Json:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Backlog",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "repository": {"url": url},
            "syncIntervalSeconds": 60,
            "goalTemplate": {
                "spec": {
                    "task": {"image": "busybox:1.37", "command": ["true"]},
                    "pullRequest": {"provider": "none"},
                }
            },
        },
    }


def published(task: str) -> WorkerResult:
    return WorkerResult(outcome=Outcome.PUBLISHED, task_id=task, branch=f"backlog/{task}-1")


class World:
    """The emulator, with the Job controller's part and the checks the test makes as it goes."""

    def __init__(self, server: EmulatorServer) -> None:
        self.api: HardenedEmulator = server.emulator
        self.over_capacity: list[list[str]] = []

    def status(self, resource: str, name: str) -> Json:
        found = self.api.get_object(resource, NS, name)
        assert found is not None, f"{name} is gone"
        return found.get("status") or {}

    def jobs_of(self, name: str) -> list[Json]:
        found = self.api.get_object(GOALS, NS, name)
        assert found is not None
        uid = found["metadata"]["uid"]
        return self.api.list_objects(JOBS, NS, label_selector=f"{LABEL_GOAL_UID}={uid}")

    def unfinished_jobs(self, name: str) -> list[Json]:
        if self.api.get_object(GOALS, NS, name) is None:
            return []
        return [j for j in self.jobs_of(name) if not (j.get("status") or {}).get("conditions")]

    def wait(
        self,
        predicate: Callable[[], _T | Literal[False] | None],
        message: str | Callable[[], str],
    ) -> _T:
        def check() -> _T | Literal[False] | None:
            shared = self.unfinished_jobs("shared-a") + self.unfinished_jobs("shared-b")
            if len(shared) > 1:  # one running goal per repository at most
                self.over_capacity.append([j["metadata"]["name"] for j in shared])
            return predicate()

        return self.api.wait_for(check, timeout=CONVERGED_WITHIN, message=message)

    def phase(self, name: str, phase: str, reason: str | None = None) -> Json:
        def reached() -> Json | None:
            status = self.status(GOALS, name)
            if status.get("phase") == phase and reason in (None, status.get("reason")):
                return status
            return None

        return self.wait(reached, lambda: f"{name}: {self.status(GOALS, name)}")

    def run(self, name: str, attempt: int, result: WorkerResult | None, **codes: int) -> None:
        """Wait for the Job of `attempt`, then run it to its end with `result` or exit codes."""
        job = self.wait(
            lambda: next(
                (
                    j
                    for j in self.jobs_of(name)
                    if j["metadata"]["labels"][LABEL_ATTEMPT] == str(attempt)
                ),
                None,
            ),
            lambda: f"{name}: no Job of attempt {attempt}; {self.status(GOALS, name)}",
        )
        job_name = job["metadata"]["name"]
        pod = self.api.start_job(NS, job_name)
        messages: dict[str, str] = {result.step or "publish": result.to_json()} if result else {}
        self.api.finish_pod(
            NS, pod["metadata"]["name"], exit_codes=codes or None, messages=messages
        )
        self.api.complete_job(NS, job_name, succeeded=not codes)

    def run_in_turn(self, names: list[str]) -> None:
        """Run goals of one repository to success in the order the operator starts them."""
        waiting = list(names)
        while waiting:
            [name] = self.wait(
                lambda: [n for n in waiting if self.unfinished_jobs(n)][:1],
                lambda: f"none of {waiting} runs",
            )
            self.run(name, 1, published(name))
            waiting.remove(name)


def add_faults(api: HardenedEmulator) -> list[Fault]:
    """About a fifth of the operator's requests fail: 500s, timeouts (504), and writes whose
    answer is lost after the API server stored them. Seeded: a run is reproducible."""
    return [
        api.faults.add(status=500, probability=0.12, seed=11),
        api.faults.add(status=504, probability=0.06, seed=12),
        api.faults.add(verb=WRITES, drop=True, commit=True, probability=0.05, seed=13),
    ]


def test_every_object_converges_with_a_fifth_of_the_operators_requests_failing(
    emulator_server: EmulatorServer, project_crds: object, tmp_path: Path
) -> None:
    world = World(emulator_server)
    clock = Clock()
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG_FILE})
    faults = add_faults(world.api)
    started = time.monotonic()
    with operator(emulator_server, clock, tmp_path):
        for body in (
            goal("ok", "o/one"),
            goal("broken", "o/two"),
            goal("flaky", "o/three"),
            goal("shared-a", "o/shared", priority=1),
            goal("shared-b", "o/shared", priority=2),
        ):
            world.api.create_object(body)
        invalid = goal("invalid", "o/four")
        invalid["spec"]["repository"]["url"] = "https://bot:ghp_secret123@github.com/o/four.git"
        world.api.create_object(invalid)
        world.api.create_object(backlog("team", str(remote)))
        world.api.create_object(schedule("nightly"))

        world.run("ok", 1, published("ok"))
        refused = failure(
            "PathViolation", "the task changed src/app.py", retryable=False, step="publish"
        )
        world.run("broken", 1, refused, publish=65)
        world.run("flaky", 1, None, task=3)
        world.run("flaky", 2, published("flaky"))
        world.run_in_turn(["shared-a", "shared-b"])  # one repository, one at a time
        backlog_goal = world.wait(
            lambda: _owned(world.api, "team"), lambda: f"team: {world.status(BACKLOGS, 'team')}"
        )
        world.run(backlog_goal[0], 1, published("ci-cache"))
        world.wait(lambda: world.status(SCHEDULES, "nightly").get("nextScheduleTime"), "no tick")
        tick = _next_tick(clock)

        assert world.phase("ok", "Succeeded", "Published")["attempts"] == 1
        assert world.phase("broken", "Failed", "PathViolation")["attempts"] == 1
        assert world.phase("flaky", "Succeeded", "Published")["attempts"] == 2
        assert world.phase("invalid", "Failed", "InvalidSpec")["message"].startswith("invalid spec")
        for name in ("shared-a", "shared-b"):
            assert world.phase(name, "Succeeded")["attempts"] == 1
        team = world.wait(
            lambda: (
                len(goals := _owned(world.api, "team")) == 2
                and _ready(s := world.status(BACKLOGS, "team"))
                and "team-docs-intro" in _said_started(s)
                and (goals, s)
            ),
            lambda: f"team: {_owned(world.api, 'team')} {world.status(BACKLOGS, 'team')}",
        )
        nightly = world.wait(
            lambda: (s := world.status(SCHEDULES, "nightly")).get("active") and s,
            lambda: f"nightly: {world.status(SCHEDULES, 'nightly')}",
        )
    elapsed = time.monotonic() - started

    faulted = sum(fault.hits for fault in faults)
    assert faulted >= 20, f"only {faulted} requests failed: the faults did not bite"
    assert elapsed < CONVERGED_WITHIN * 2
    assert world.over_capacity == []
    for name, attempts in (
        ("ok", 1),
        ("broken", 1),
        ("flaky", 2),
        ("shared-a", 1),
        ("shared-b", 1),
    ):
        jobs = world.jobs_of(name)
        keys = [
            (j["metadata"]["labels"][LABEL_RUN], j["metadata"]["labels"][LABEL_ATTEMPT])
            for j in jobs
        ]
        assert len(keys) == len(set(keys)) == attempts, (name, keys)
    assert world.jobs_of("invalid") == []
    assert "ghp_secret123" not in str(world.status(GOALS, "invalid"))
    goals, status = team
    assert goals == ["team-ci-cache", "team-docs-intro"]
    assert status["lastSyncedCommit"]
    assert world.status(GOALS, "team-ci-cache")["phase"] == "Succeeded"
    [scheduled] = world.api.list_objects(GOALS, NS, label_selector=f"{LABEL_SCHEDULE}=nightly")
    assert nightly["active"] == [{"name": scheduled["metadata"]["name"]}]
    assert nightly["lastScheduleTime"] == tick.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_failed_first_read_of_a_new_schedule_is_retried_until_it_has_its_status(
    emulator_server: EmulatorServer, project_crds: object, tmp_path: Path
) -> None:
    world = World(emulator_server)
    read = world.api.faults.add(
        verb="get", resource="goalschedules", name="nightly", status=500, times=1
    )
    with operator(emulator_server, Clock(), tmp_path):
        world.api.create_object(schedule("nightly"))

        status = world.wait(
            lambda: (s := world.status(SCHEDULES, "nightly")).get("nextScheduleTime") and s,
            "the schedule has no status",
        )
    assert read.hits == 1
    assert _ready(status)


def test_a_job_that_finished_while_no_operator_ran_is_adopted_before_its_task_runs_again(
    emulator_server: EmulatorServer,
    project_crds: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator created a goal's Job and died before writing its status; the Job published
    while none ran, and a goal asking the same task, first in the queue, was applied. The next
    operator adopts the Job (the first goal succeeds with it, one attempt) before it admits
    anyone: the other goal is skipped, and the task does not run twice."""
    world = World(emulator_server)
    first = world.api.create_object(goal("first", "o/one", task="t"))
    world.api.create_object(build_job(Goal.model_validate(first), 1, OperatorSettings()))
    world.run("first", 1, published("t"))
    world.api.create_object(goal("urgent", "o/one", task="t", priority=-1))
    # No audit of running goals: the adopted Job's end, which no event will tell, must be
    # noticed by itself.
    monkeypatch.setattr(runtime, "AUDIT_EVERY", 10**9)

    with operator(emulator_server, Clock(), tmp_path):
        world.wait(
            lambda: (
                world.jobs_of("urgent") or world.status(GOALS, "urgent").get("phase") == "Skipped"
            ),
            lambda: f"urgent: {world.status(GOALS, 'urgent')}",
        )
        assert world.jobs_of("urgent") == [], "the task ran a second time"
        assert world.phase("first", "Succeeded", "Published")["attempts"] == 1
    assert len(world.jobs_of("first")) == 1
    assert world.status(GOALS, "urgent")["reason"] == "AlreadySucceeded"


def _owned(api: HardenedEmulator, backlog_name: str) -> list[str]:
    found = api.list_objects(GOALS, NS, label_selector=f"backlog.dev/backlog={backlog_name}")
    return sorted(g["metadata"]["name"] for g in found)


def _said_started(status: Json) -> list[str]:
    """The Goals a Backlog's status says it started, or that run (when the create's answer was
    lost, the retried sync finds the Goal made and reports it in progress instead)."""
    running = [f"team-{task}" for task in status.get("inProgress", [])]
    return [*status.get("started", []), *running]


def _ready(status: Json) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )


def _next_tick(clock: Clock) -> datetime:
    """Move the operator's clock just past the next five-minute mark; that mark."""
    now = clock.now
    tick = now.replace(second=0) + timedelta(minutes=5 - now.minute % 5)
    clock.now = tick + timedelta(seconds=1)
    return tick


# --- the pieces, without a server ----------------------------------------------------------------


class _Draw(random.Random):
    def random(self) -> float:
        return 0.5


def test_backoff_doubles_to_its_cap_with_equal_jitter_and_resets_on_success() -> None:
    now = [100.0]
    backoff = Backoff(
        RetryPolicy(base_seconds=1, max_seconds=300), clock=lambda: now[0], rng=_Draw()
    )

    delays = [backoff.failed("goals:ns/g")[1] for _ in range(11)]

    # Half fixed, half drawn (0.5 here): 3/4 of 1, 2, 4, ... capped at 300.
    assert delays == [0.75 * d for d in (1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300)]
    assert backoff.failures("goals:ns/g") == 11 and backoff.failing("goals") == ["ns/g"]
    assert not backoff.ready("goals:ns/g")
    now[0] += 225
    assert backoff.ready("goals:ns/g")
    backoff.succeeded("goals:ns/g")
    assert backoff.failures("goals:ns/g") == 0 and backoff.failing("goals") == []
    assert backoff.failed("goals:ns/g") == (1, 0.75)


def test_a_failure_is_described_in_one_redacted_sentence() -> None:
    answer = ApiException(status=503, reason="Service Unavailable")
    answer.body = '{"kind": "Status", "reason": "ServiceUnavailable", "message": "try later"}'
    forbidden = ApiException(status=403, reason="Forbidden")
    forbidden.body = '{"reason": "Forbidden", "message": "goals is forbidden"}'

    assert describe_failure(answer) == (
        "the API server answered 503 ServiceUnavailable: try later",
        False,
    )
    assert describe_failure(forbidden) == (
        "the API server answered 403 Forbidden: goals is forbidden",
        True,
    )
    assert describe_failure(ConnectionResetError("reset")) == (
        "the API server could not be reached (ConnectionResetError)",
        False,
    )
    text, permanent = describe_failure(KeyError("https://bot:ghp_abc123@github.com/o/r"))
    assert permanent and "ghp_abc123" not in text and text.startswith("KeyError: ")
