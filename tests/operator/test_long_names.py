"""Owners with the longest names Kubernetes allows (253 characters), against the emulator in
strict validation (a label value over 63 characters is a 422, as from an API server).

The labels that carry an owner's name hold `naming.label_value(name)` (a prefix and a hash when
the name does not fit), every lookup by them uses the same value, and the operator names a
Goal's owner from its ownerReference: a Backlog and a GoalSchedule with such names create their
Goals, the Goals run, and the next sync or tick finds its own Goals instead of duplicating them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backlog_operator import naming
from backlog_operator.api.labels import (
    LABEL_BACKLOG,
    LABEL_GOAL_UID,
    LABEL_SCHEDULE,
    name_selector,
)
from backlog_operator.api.result import Outcome, WorkerResult
from tests.operator import test_backlog as backlogs
from tests.operator import test_goal_schedule as schedules
from tests.support.emulator import EmulatorServer
from tests.support.gitrepos import make_remote

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
JOBS = "batch/v1/jobs"

# A DNS subdomain of 253 characters, the longest name an object may have.
LONG_NAME = "team." * 50 + "abc"


class LongSynced(backlogs.Synced):
    """`Synced`, finding a Backlog's Goals by the label value its name is written as."""

    def goals(self, name: str) -> dict[str, dict[str, Any]]:
        found = self.api.list_objects(GOALS, NS, label_selector=name_selector(LABEL_BACKLOG, name))
        return {g["spec"]["backlog"]["taskId"] + f"#{g['metadata']['name']}": g for g in found}


class LongScheduled(schedules.Scheduled):
    """`Scheduled`, finding a GoalSchedule's Goals by the label value its name is written as."""

    def goals(self, name: str) -> list[str]:
        found = self.api.list_objects(GOALS, NS, label_selector=name_selector(LABEL_SCHEDULE, name))
        return sorted(g["metadata"]["name"] for g in found)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_remote(tmp_path, {".backlog/backlog.yaml": backlogs.LEVIATHAN})


@pytest.fixture
def synced(
    emulator_server: EmulatorServer, project_crds: object, tmp_path: Path
) -> Iterator[LongSynced]:
    clock = backlogs.Clock()
    with backlogs.operator(emulator_server, clock, tmp_path):
        yield LongSynced(emulator_server, clock)


@pytest.fixture
def scheduled(emulator_server: EmulatorServer, project_crds: object) -> Iterator[LongScheduled]:
    clock = schedules.Clock()
    with schedules.operator(emulator_server, clock):
        yield LongScheduled(emulator_server, clock)


def assert_labelled(goal: dict[str, Any], label: str, kind: str) -> None:
    metadata = goal["metadata"]
    assert len(metadata["name"]) <= 63
    assert metadata["labels"][label] == naming.label_value(LONG_NAME)
    assert all(len(value) <= 63 for value in metadata["labels"].values())
    [owner] = metadata["ownerReferences"]
    assert (owner["kind"], owner["name"]) == (kind, LONG_NAME)


def test_long_name_is_the_longest_object_name() -> None:
    assert len(LONG_NAME) == 253
    assert len(naming.label_value(LONG_NAME)) == 63


def test_a_backlog_with_a_253_character_name_starts_runs_and_finds_its_goals(
    synced: LongSynced, remote: Path
) -> None:
    synced.api.create_object(backlogs.backlog(LONG_NAME, str(remote)))

    first = synced.wait_synced(LONG_NAME)
    assert synced.tasks_with_goals(LONG_NAME) == ["ci-cache"]
    [goal] = synced.goals(LONG_NAME).values()
    assert_labelled(goal, LABEL_BACKLOG, "Backlog")
    assert first["started"] == [goal["metadata"]["name"]]
    synced.api.wait_for(lambda: "GoalCreated" in synced.events(LONG_NAME) or None)

    # The Goal runs; once it has finished, its event syncs the Backlog named by the Goal's
    # ownerReference (the clock stands still: no interval sync), and the free slot goes to
    # the next ready task.
    synced.finish(LONG_NAME, "ci-cache", "Succeeded")
    assert synced.api.wait_for(
        lambda: len(t := synced.tasks_with_goals(LONG_NAME)) == 2 and t,
        message=lambda: f"goals: {synced.tasks_with_goals(LONG_NAME)}",
    ) == ["ci-cache", "docs-intro"]

    # A later sync lists its own Goals and starts nothing twice.
    synced_at = synced.status(LONG_NAME)["lastSyncTime"]
    synced.next_sync()
    synced.api.wait_for(lambda: synced.status(LONG_NAME)["lastSyncTime"] > synced_at)
    assert synced.tasks_with_goals(LONG_NAME) == ["ci-cache", "docs-intro"]
    assert "GoalNameTaken" not in synced.events(LONG_NAME)
    for goal in synced.goals(LONG_NAME).values():
        assert_labelled(goal, LABEL_BACKLOG, "Backlog")


def run_goal(scheduled: LongScheduled, name: str) -> None:
    """Run a Goal's Job to success, as the Job controller and the worker would report it."""
    goal = scheduled.api.get_object(GOALS, NS, name)
    assert goal is not None
    uid = goal["metadata"]["uid"]
    [job] = scheduled.api.wait_for(
        lambda: scheduled.api.list_objects(JOBS, NS, label_selector=f"{LABEL_GOAL_UID}={uid}")
    )
    assert len(job["metadata"]["name"]) <= 63
    pod = scheduled.api.start_job(NS, job["metadata"]["name"])
    result = WorkerResult(outcome=Outcome.PUBLISHED, task_id=name, branch=f"backlog/{name}-1")
    scheduled.api.finish_pod(NS, pod["metadata"]["name"], messages={"publish": result.to_json()})
    scheduled.api.complete_job(NS, job["metadata"]["name"], succeeded=True)
    scheduled.api.wait_for(
        lambda: (
            (scheduled.api.get_object(GOALS, NS, name) or {}).get("status", {}).get("phase")
            == "Succeeded"
        )
    )


def test_a_goal_schedule_with_a_253_character_name_stamps_runs_and_finds_its_goals(
    scheduled: LongScheduled,
) -> None:
    body = schedules.schedule(LONG_NAME, concurrencyPolicy="Forbid")
    body["spec"]["goalTemplate"]["spec"]["suspend"] = False  # its Goal runs
    scheduled.api.create_object(body)
    scheduled.api.wait_for(lambda: scheduled.status(LONG_NAME).get("nextScheduleTime"))

    scheduled.next_tick()
    [name] = scheduled.wait_goals(LONG_NAME, 1)
    goal = scheduled.api.get_object(GOALS, NS, name)
    assert goal is not None
    assert_labelled(goal, LABEL_SCHEDULE, "GoalSchedule")
    scheduled.api.wait_for(lambda: scheduled.status(LONG_NAME).get("active") == [{"name": name}])

    # The next tick finds its own Goal still active (Forbid): no second Goal.
    scheduled.next_tick()
    scheduled.api.wait_for(lambda: "GoalAlreadyActive" in scheduled.events(LONG_NAME) or None)
    assert scheduled.goals(LONG_NAME) == [name]

    # The Goal runs; its event reconciles the schedule named by its ownerReference (the clock
    # stands still: no tick is due), which sees it succeed.
    run_goal(scheduled, name)
    status = scheduled.api.wait_for(
        lambda: (s := scheduled.status(LONG_NAME)).get("lastSuccessfulTime") and s,
        message=lambda: f"status: {scheduled.status(LONG_NAME)}",
    )
    assert status.get("active", []) == []

    # The tick after: one new Goal, the finished one kept, nothing taken twice.
    scheduled.next_tick()
    goals = scheduled.wait_goals(LONG_NAME, 2)
    assert name in goals
    assert "GoalNameTaken" not in scheduled.events(LONG_NAME)
    for goal_name in goals:
        stamped = scheduled.api.get_object(GOALS, NS, goal_name)
        assert stamped is not None
        assert_labelled(stamped, LABEL_SCHEDULE, "GoalSchedule")
