"""GoalSchedules in the operator against the API emulator, with the operator's clock in the
test's hands: a cron tick is a clock advance, not a wait."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backlog_operator.api.labels import LABEL_SCHEDULE
from backlog_operator.controller.handlers import build_registry
from backlog_operator.controller.settings import OperatorSettings
from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.kopf_harness import KopfThread, new_api_client

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
SCHEDULES = "backlog.dev/v1alpha1/goalschedules"


class Clock:
    """The operator's clock; starts at the real time (the emulator stamps real creation times)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def schedule(name: str, cron: str = "*/5 * * * *", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "GoalSchedule",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "schedule": cron,
            "goalTemplate": {
                "metadata": {"labels": {"team": "docs"}},
                "spec": {
                    "repository": {"url": "https://github.com/o/r.git"},
                    "task": {"image": "busybox", "command": ["true"]},
                    # Suspended: these tests are about stamping Goals, not running them.
                    "suspend": True,
                },
            },
            **spec,
        },
    }


class Scheduled:
    def __init__(self, server: EmulatorServer, clock: Clock) -> None:
        self.api: HardenedEmulator = server.emulator
        self.clock = clock

    def goals(self, name: str) -> list[str]:
        found = self.api.list_objects(GOALS, NS, label_selector=f"{LABEL_SCHEDULE}={name}")
        return sorted(g["metadata"]["name"] for g in found)

    def status(self, name: str) -> dict[str, Any]:
        found = self.api.get_object(SCHEDULES, NS, name)
        assert found is not None
        return found.get("status") or {}

    def statuses(self, name: str) -> list[dict[str, Any]]:
        """Every status the GoalSchedule was stored with, oldest first (the emulator keeps each
        stored version), so a test sees what each reconcile wrote, not only the last."""
        versions = list(self.api.objects[SCHEDULES, NS, name].history)
        return [dict(v).get("status") or {} for v in versions if v is not None]

    def events(self, name: str) -> list[str]:
        return [
            e["reason"]
            for e in self.api.list_objects("v1/events", NS)
            if e["involvedObject"]["name"] == name
        ]

    def wait_goals(self, name: str, count: int) -> list[str]:
        return self.api.wait_for(
            lambda: len(goals := self.goals(name)) == count and goals,
            message=lambda: f"{name}: goals {self.goals(name)}, wanted {count}",
        )

    def finish(
        self, goal: str, phase: str, started: datetime, completed: datetime | None = None
    ) -> None:
        status = {"phase": phase, "startTime": started.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if completed is not None:
            status["completionTime"] = completed.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.api.patch_status(GOALS, NS, goal, status)

    def requests(self, method: str, path: str) -> int:
        """How many HTTP requests the operator sent with this method to this path (the
        emulator keeps them all once `request_history` is None)."""
        return sum(1 for r in self.api if r.method.value == method and r.url.path == path)

    def status_changes(self, name: str) -> int:
        """How many times the stored status really changed (the emulator keeps each version)."""
        statuses = [{}, *self.statuses(name)]
        return sum(1 for old, new in itertools.pairwise(statuses) if new != old)

    def next_tick(self) -> None:
        """Move the clock just past the next five-minute mark."""
        now = self.clock.now
        minutes = 5 - now.minute % 5
        self.clock.now = now.replace(second=1) + timedelta(minutes=minutes)


@contextmanager
def operator(server: EmulatorServer, clock: Clock) -> Iterator[None]:
    registry = build_registry(
        OperatorSettings(requeue_seconds=0.05),
        lambda: new_api_client(server),
        login=False,
        clock=clock,
    )
    with KopfThread(server, registry=registry):
        yield


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def scheduled(
    emulator_server: EmulatorServer, project_crds: object, clock: Clock
) -> Iterator[Scheduled]:
    with operator(emulator_server, clock):
        yield Scheduled(emulator_server, clock)


def test_a_tick_stamps_one_goal_from_the_template(scheduled: Scheduled) -> None:
    scheduled.api.create_object(schedule("nightly"))
    scheduled.api.wait_for(lambda: scheduled.status("nightly").get("nextScheduleTime"))
    assert scheduled.goals("nightly") == []

    scheduled.next_tick()

    [name] = scheduled.wait_goals("nightly", 1)
    goal = scheduled.api.get_object(GOALS, NS, name)
    assert goal is not None
    assert goal["metadata"]["labels"]["team"] == "docs"
    assert goal["metadata"]["ownerReferences"][0]["kind"] == "GoalSchedule"
    assert goal["spec"]["repository"]["url"] == "https://github.com/o/r.git"
    status = scheduled.api.wait_for(lambda: (s := scheduled.status("nightly")).get("active") and s)
    assert status["active"] == [{"name": name}]
    assert status["lastScheduleTime"]
    scheduled.api.wait_for(lambda: "GoalCreated" in scheduled.events("nightly") or None)


def test_forbid_skips_a_tick_while_a_goal_is_active(scheduled: Scheduled) -> None:
    scheduled.api.create_object(schedule("forbid", concurrencyPolicy="Forbid"))
    scheduled.next_tick()
    [first] = scheduled.wait_goals("forbid", 1)

    scheduled.next_tick()

    scheduled.api.wait_for(lambda: "GoalAlreadyActive" in scheduled.events("forbid") or None)
    assert scheduled.goals("forbid") == [first]


def test_replace_stops_the_active_goal_and_starts_the_new_one(scheduled: Scheduled) -> None:
    scheduled.api.create_object(schedule("replace", concurrencyPolicy="Replace"))
    scheduled.next_tick()
    [first] = scheduled.wait_goals("replace", 1)

    scheduled.next_tick()

    [second] = scheduled.api.wait_for(
        lambda: (goals := scheduled.goals("replace")) and first not in goals and goals
    )
    assert second != first
    scheduled.api.wait_for(
        lambda: scheduled.status("replace").get("active") == [{"name": second}],
        message=lambda: f"active: {scheduled.status('replace').get('active')}",
    )
    # Not only in the end (a later reconcile lists the Goals afresh): the tick's own write
    # never listed the deleted Goal beside the new one.
    for written in scheduled.statuses("replace"):
        names = {goal["name"] for goal in written.get("active") or []}
        assert not {first, second} <= names, f"deleted {first} still active: {written}"


def test_missed_ticks_after_an_outage_give_one_catch_up_not_a_burst(
    emulator_server: EmulatorServer, project_crds: object, clock: Clock
) -> None:
    helper = Scheduled(emulator_server, clock)
    with operator(emulator_server, clock):
        helper.api.create_object(schedule("outage", startingDeadlineSeconds=600))
        helper.api.wait_for(lambda: helper.status("outage").get("nextScheduleTime"))
    # 36 ticks missed while the operator was down; it comes back 30 s after the last, so the
    # second the test moves on below crosses no tick (the clock starts at the real time).
    last_tick = clock.now.replace(second=0) - timedelta(minutes=clock.now.minute % 5)
    clock.now = last_tick + timedelta(hours=3, seconds=30)

    with operator(emulator_server, clock):
        helper.wait_goals("outage", 1)
        helper.api.wait_for(lambda: helper.status("outage").get("lastScheduleTime"))
        clock.advance(seconds=1)  # a later pass must not start more
        helper.api.wait_for(lambda: helper.status("outage").get("observedGeneration"))
    assert len(helper.goals("outage")) == 1


def test_a_tick_too_late_for_the_deadline_is_skipped_and_said_once(
    emulator_server: EmulatorServer, project_crds: object, clock: Clock
) -> None:
    helper = Scheduled(emulator_server, clock)
    with operator(emulator_server, clock):
        helper.api.create_object(schedule("late", startingDeadlineSeconds=10))
        helper.api.wait_for(lambda: helper.status("late").get("nextScheduleTime"))
    helper.next_tick()
    clock.advance(minutes=2)  # two minutes after the tick: past the 10 s deadline

    with operator(emulator_server, clock):
        helper.api.wait_for(lambda: "MissSchedule" in helper.events("late") or None)
    assert helper.goals("late") == []
    assert helper.events("late").count("MissSchedule") == 1


def test_invalid_cron_is_a_stalled_condition_not_a_crash(scheduled: Scheduled) -> None:
    scheduled.api.create_object(schedule("broken", cron="61 * * * *"))

    status = scheduled.api.wait_for(
        lambda: (s := scheduled.status("broken")).get("conditions") and s
    )
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"
    assert stalled["reason"] == "InvalidSchedule"
    assert "61" in stalled["message"]
    scheduled.api.wait_for(lambda: "InvalidSchedule" in scheduled.events("broken") or None)
    assert scheduled.goals("broken") == []


def test_suspended_schedule_stamps_nothing(scheduled: Scheduled) -> None:
    scheduled.api.create_object(schedule("held", suspend=True))
    scheduled.api.wait_for(lambda: scheduled.status("held").get("conditions"))

    scheduled.next_tick()
    scheduled.next_tick()

    scheduled.api.wait_for(lambda: scheduled.status("held").get("observedGeneration") == 1)
    assert scheduled.goals("held") == []


def test_history_keeps_the_newest_finished_goals_per_outcome(scheduled: Scheduled) -> None:
    scheduled.api.create_object(
        schedule("history", successfulGoalsHistoryLimit=1, failedGoalsHistoryLimit=1)
    )
    names: list[str] = []
    for _ in range(4):
        scheduled.next_tick()
        names = scheduled.wait_goals("history", len(names) + 1)
    started = scheduled.clock.now - timedelta(hours=1)
    for offset, (name, phase) in enumerate(
        zip(sorted(names), ["Succeeded", "Succeeded", "Failed", "Failed"], strict=True)
    ):
        scheduled.finish(name, phase, started + timedelta(minutes=offset))

    kept = scheduled.api.wait_for(
        lambda: len(goals := scheduled.goals("history")) == 2 and goals,
        message=lambda: f"goals left: {scheduled.goals('history')}",
    )
    assert kept == [sorted(names)[1], sorted(names)[3]]


def test_allow_runs_ticks_side_by_side(scheduled: Scheduled) -> None:
    scheduled.api.create_object(schedule("allow", concurrencyPolicy="Allow"))
    scheduled.next_tick()
    [first] = scheduled.wait_goals("allow", 1)

    scheduled.next_tick()

    both = scheduled.wait_goals("allow", 2)
    assert first in both
    status = scheduled.api.wait_for(
        lambda: len((s := scheduled.status("allow")).get("active", [])) == 2 and s
    )
    assert sorted(a["name"] for a in status["active"]) == both


def test_status_is_written_only_when_it_changes(
    emulator_server: EmulatorServer, project_crds: object, clock: Clock
) -> None:
    """An hour of ticks, each reconciled again (an annotation a person sets, the Goal's own
    status writes): as many status PATCHes as real changes, one for the first reconcile and
    one per tick; the reconciles that change nothing write nothing."""
    helper = Scheduled(emulator_server, clock)
    helper.api.request_history = None  # keep every request, to count them
    path = f"/apis/backlog.dev/v1alpha1/namespaces/{NS}/goalschedules/hourly"
    with operator(emulator_server, clock):
        helper.api.create_object(schedule("hourly", concurrencyPolicy="Allow"))
        helper.api.wait_for(lambda: helper.status("hourly").get("nextScheduleTime"))
        for tick in range(1, 13):
            helper.next_tick()
            helper.wait_goals("hourly", tick)

            def all_active(tick: int = tick) -> bool:
                return len(helper.status("hourly")["active"]) == tick

            helper.api.wait_for(all_active)
            reads = helper.requests("GET", path)
            helper.api.patch_object(
                SCHEDULES, NS, "hourly", {"metadata": {"annotations": {"poke": str(tick)}}}
            )
            # The poke's reconcile read the schedule afresh (and the Goal's events may add more).

            def read_again(reads: int = reads) -> bool:
                return helper.requests("GET", path) > reads

            helper.api.wait_for(read_again)
    # Stopped: every reconcile begun has finished, and written whatever it was to write.

    patches = helper.requests("PATCH", f"{path}/status")
    assert patches == helper.status_changes("hourly"), "a status PATCH that changed nothing"
    assert patches == 1 + 12
    assert helper.requests("GET", path) > 2 * patches  # there were reconciles with no write


def test_a_goal_whose_pull_request_may_be_open_is_kept_from_history(
    scheduled: Scheduled,
) -> None:
    """Like a Backlog's: a Goal whose pull request is open (its outcome not known yet: it may
    need a heal, or be closed) is not trimmed, whatever the limit; merged, it is history."""
    manifest = schedule("prs", successfulGoalsHistoryLimit=0)
    manifest["spec"]["goalTemplate"]["spec"]["pullRequest"] = {"provider": "none"}
    scheduled.api.create_object(manifest)
    scheduled.next_tick()
    [first] = scheduled.wait_goals("prs", 1)
    started = scheduled.clock.now
    scheduled.finish(first, "Succeeded", started, started + timedelta(minutes=1))
    pull = {"number": 7, "url": "https://github.com/o/r/pull/7", "state": "open"}
    scheduled.api.patch_status(GOALS, NS, first, {"pullRequest": pull})

    scheduled.next_tick()  # a reconcile that lists the succeeded Goal and trims history
    goals = scheduled.wait_goals("prs", 2)
    scheduled.api.wait_for(lambda: len(scheduled.status("prs").get("active") or []) == 1)
    assert first in goals and "HistoryTrimmed" not in scheduled.events("prs")

    scheduled.api.patch_status(GOALS, NS, first, {"pullRequest": {**pull, "state": "merged"}})
    scheduled.next_tick()
    scheduled.api.wait_for(
        lambda: first not in scheduled.goals("prs") or None,
        message=lambda: f"goals left: {scheduled.goals('prs')}",
    )


def test_last_successful_time_survives_history_trimming(scheduled: Scheduled) -> None:
    """As CronJob's: with successfulGoalsHistoryLimit 0 the Goal that succeeded is deleted on
    the reconcile that sees it succeed; its completion time stays in lastSuccessfulTime."""
    scheduled.api.create_object(schedule("kept", successfulGoalsHistoryLimit=0))
    scheduled.next_tick()
    [first] = scheduled.wait_goals("kept", 1)
    started = scheduled.clock.now
    done = started + timedelta(minutes=1)
    scheduled.clock.advance(minutes=2)
    scheduled.finish(first, "Succeeded", started, done)

    scheduled.api.wait_for(lambda: scheduled.goals("kept") == [] or None)
    stamp = done.strftime("%Y-%m-%dT%H:%M:%SZ")
    scheduled.api.wait_for(lambda: scheduled.status("kept").get("lastSuccessfulTime") == stamp)
    scheduled.next_tick()  # a later reconcile, which no longer lists the trimmed Goal
    [second] = scheduled.wait_goals("kept", 1)
    scheduled.api.wait_for(lambda: scheduled.status("kept").get("active") == [{"name": second}])

    assert scheduled.status("kept")["lastSuccessfulTime"] == stamp
    written = [s.get("lastSuccessfulTime") for s in scheduled.statuses("kept")]
    assert written[written.index(stamp) :] == [stamp] * len(written[written.index(stamp) :])
