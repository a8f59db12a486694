"""The GoalSchedule reconciler, step by step, against in-memory fakes (no kopf, no HTTP).

Each case is a GoalSchedule body, the Goals it already owns and a fixed clock; it expects the
status (last schedule, next tick, active goals, last success), the conditions, the events, the
Goals created and deleted, and the requeue (the next tick). The cases follow the reconciler's
steps: validation of the spec, cron and time zone; history trimming; suspend; whether a tick is
due (first tick, missed ticks with one catch-up, the starting deadline); the concurrency policy
(Allow, Forbid, Replace) and a tick's Goal made once.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from backlog_operator.api.labels import (
    ANNOTATION_SCHEDULED_AT,
    LABEL_SCHEDULE,
    LABEL_SCHEDULE_UID,
)
from backlog_operator.api.result import failure
from backlog_operator.controller.schedules.reconciler import GoalScheduleReconciler
from backlog_operator.controller.status import status_patch, timestamp, to_wire
from backlog_operator.controller.usage import record_attempt
from tests.unit.fakes import (
    ABSENT,
    FakeCluster,
    FixedClock,
    Json,
    assert_fields,
    conditions_of,
    events_of,
    wire,
)

T = TypeVar("T")

NS = "default"
UID = "5c5c5c5c-1111-2222-3333-444455556666"
CREATED = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
TICK1 = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
TICK2 = TICK1 + timedelta(minutes=5)
TICK3 = TICK2 + timedelta(minutes=5)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def ts(moment: datetime) -> str:
    return timestamp(moment)


def name_for(tick: datetime, schedule: str = "nightly") -> str:
    """A tick's Goal: `<schedule>-<minutes since the epoch>`."""
    return f"{schedule}-{int(tick.timestamp()) // 60}"


def scheduled(reason: str = "Scheduled") -> dict[str, tuple[str, str]]:
    return {
        "Ready": ("True", reason),
        "Reconciling": ("False", "Finished"),
        "Stalled": ("False", "NotStalled"),
    }


STALLED = {
    "Ready": ("False", "InvalidSchedule"),
    "Reconciling": ("False", "Finished"),
    "Stalled": ("True", "InvalidSchedule"),
}


def schedule(
    name: str = "nightly",
    cron: str = "*/5 * * * *",
    *,
    generation: int = 1,
    status: Json | None = None,
    **spec: Any,
) -> Json:
    """A GoalSchedule as the API serves it (the shape of the operator tier's `schedule`)."""
    body: Json = {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "GoalSchedule",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": UID,
            "generation": generation,
            "creationTimestamp": ts(CREATED),
        },
        "spec": {
            "schedule": cron,
            "goalTemplate": {
                "metadata": {"labels": {"team": "docs"}, "annotations": {"note": "weekly docs"}},
                "spec": {
                    "repository": {"url": "https://github.com/o/r.git"},
                    "task": {"image": "busybox", "command": ["true"]},
                    "suspend": True,
                },
            },
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def last(tick: datetime, **more: Any) -> Json:
    """The status after `tick` was handled."""
    return {"observedGeneration": 1, "lastScheduleTime": ts(tick), **more}


def owned(
    name: str,
    phase: str | None,
    *,
    started: datetime | None = None,
    completed: datetime | None = None,
) -> Json:
    """A Goal this schedule made, in `phase`."""
    status: Json = {"phase": phase} if phase else {}
    if started:
        status["startTime"] = ts(started)
    if completed:
        status["completionTime"] = ts(completed)
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "labels": {LABEL_SCHEDULE: "nightly", LABEL_SCHEDULE_UID: UID},
            "ownerReferences": [
                {
                    "apiVersion": "backlog.dev/v1alpha1",
                    "kind": "GoalSchedule",
                    "name": "nightly",
                    "uid": UID,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"repository": {"url": "https://github.com/o/r.git"}},
        "status": status,
    }


def active(*names: str) -> list[Json]:
    return [{"name": name} for name in sorted(names)]


# ---------------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One reconcile at `now`: given the body and the schedule's Goals, expect the status
    `fields` (None: no status write), the conditions, the events ((kind, reason, text in the
    message)), the Goals whose creation was asked and those deleted, and the requeue."""

    body: Json
    now: datetime
    goals: list[Json] = field(default_factory=list)
    fields: dict[str, Any] | None = field(default_factory=dict)
    conditions: dict[str, tuple[str, str]] | None = None
    ready_message: str | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    create_goal: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    requeue: float | None = None
    listed: bool = True  # whether the schedule's Goals were listed


VALIDATION = [
    pytest.param(
        Case(
            body=schedule(cron="61 * * * *"),
            now=TICK1,
            fields={"observedGeneration": 1, "nextScheduleTime": ABSENT, "active": ABSENT},
            conditions=STALLED,
            events=[("Warning", "InvalidSchedule", "61")],
            listed=False,
        ),
        id="invalid-cron-stalls",
    ),
    pytest.param(
        Case(
            body=schedule(timeZone="Mars/Olympus"),
            now=TICK1,
            fields={"observedGeneration": 1},
            conditions=STALLED,
            events=[("Warning", "InvalidSchedule", "unknown time zone 'Mars/Olympus'")],
            listed=False,
        ),
        id="invalid-time-zone-stalls",
    ),
    pytest.param(
        Case(
            body=schedule(concurrencyPolicy="Sometimes"),
            now=TICK1,
            fields={"observedGeneration": 1},
            conditions=STALLED,
            events=[("Warning", "InvalidSchedule", "concurrencyPolicy")],
            listed=False,
        ),
        id="invalid-spec-stalls",
    ),
    pytest.param(
        Case(
            body=schedule(
                cron="61 * * * *",
                status={
                    "observedGeneration": 1,
                    "conditions": [
                        {
                            "type": "Stalled",
                            "status": "True",
                            "reason": "InvalidSchedule",
                            "message": "said",
                            "lastTransitionTime": ts(CREATED),
                        }
                    ],
                },
            ),
            now=TICK1,
            fields=None,
            listed=False,
        ),
        id="invalid-cron-said-once",
    ),
    pytest.param(
        Case(
            body=schedule(
                cron="61 * * * *",
                generation=2,
                status={
                    "observedGeneration": 1,
                    "conditions": [
                        {
                            "type": "Stalled",
                            "status": "True",
                            "reason": "InvalidSchedule",
                            "message": "said",
                            "lastTransitionTime": ts(CREATED),
                        }
                    ],
                },
            ),
            now=TICK1,
            fields={"observedGeneration": 2},
            conditions=STALLED,
            events=[("Warning", "InvalidSchedule", "61")],
            listed=False,
        ),
        id="invalid-cron-edited-but-still-invalid-is-said-again",
    ),
]

TICKS = [
    pytest.param(
        Case(
            body=schedule(),
            now=CREATED + timedelta(seconds=30),
            fields={
                "observedGeneration": 1,
                "nextScheduleTime": ts(TICK1),
                "lastScheduleTime": ABSENT,
                "lastSuccessfulTime": ABSENT,
                "active": [],
            },
            conditions=scheduled(),
            ready_message="next tick at 2026-01-01T00:05:00Z",
            requeue=240.0,
        ),
        id="before-the-first-tick",
    ),
    pytest.param(
        Case(
            body=schedule(),
            now=TICK1 + timedelta(seconds=1),
            fields={
                "lastScheduleTime": ts(TICK1),
                "nextScheduleTime": ts(TICK2),
                "active": active(name_for(TICK1)),
            },
            conditions=scheduled(),
            ready_message="next tick at 2026-01-01T00:10:00Z",
            events=[
                (
                    "Normal",
                    "GoalCreated",
                    f"created goal {name_for(TICK1)} for 2026-01-01T00:05:00Z",
                )
            ],
            create_goal=[name_for(TICK1)],
            requeue=299.0,
        ),
        id="first-tick-stamps-one-goal",
    ),
    pytest.param(
        Case(
            body=schedule(status=last(TICK1)),
            now=TICK1 + timedelta(seconds=20),
            goals=[owned(name_for(TICK1), "Pending")],
            fields={
                "lastScheduleTime": ts(TICK1),
                "nextScheduleTime": ts(TICK2),
                "active": active(name_for(TICK1)),
            },
            conditions=scheduled(),
            requeue=280.0,
        ),
        id="a-handled-tick-is-not-run-again",
    ),
    pytest.param(
        Case(
            body=schedule(),
            now=TICK1 + timedelta(seconds=1),
            goals=[owned(name_for(TICK1), "Pending")],
            fields={"lastScheduleTime": ts(TICK1), "active": active(name_for(TICK1))},
            conditions=scheduled(),
            events=[("Normal", "AlreadyStarted", f"goal {name_for(TICK1)} for this schedule")],
            requeue=299.0,
        ),
        id="tick-whose-goal-exists-already-starts-nothing",
    ),
    pytest.param(
        Case(
            body=schedule(),
            now=TICK1 + timedelta(seconds=1),
            goals=[owned(name_for(TICK1), "Succeeded")],
            fields={"lastScheduleTime": ts(TICK1)},
            conditions=scheduled(),
            create_goal=[name_for(TICK1)],
            requeue=299.0,
        ),
        id="tick-whose-goal-finished-already-is-not-made-twice",
    ),
    pytest.param(
        Case(
            body=schedule(status=last(TICK1), concurrencyPolicy="Forbid"),
            now=TICK2 + timedelta(seconds=1),
            goals=[owned(name_for(TICK1), "Running")],
            fields={
                "lastScheduleTime": ts(TICK2),
                "nextScheduleTime": ts(TICK3),
                "active": active(name_for(TICK1)),
            },
            conditions=scheduled(),
            events=[
                (
                    "Warning",
                    "GoalAlreadyActive",
                    f"concurrencyPolicy is Forbid and {name_for(TICK1)} is still active",
                )
            ],
            requeue=299.0,
        ),
        id="forbid-skips-a-tick-while-a-goal-is-active",
    ),
    pytest.param(
        Case(
            body=schedule(status=last(TICK1), concurrencyPolicy="Forbid"),
            now=TICK2 + timedelta(seconds=1),
            goals=[owned(name_for(TICK1), "Failed", started=TICK1)],
            fields={"lastScheduleTime": ts(TICK2), "active": active(name_for(TICK2))},
            conditions=scheduled(),
            events=[("Normal", "GoalCreated", name_for(TICK2))],
            create_goal=[name_for(TICK2)],
            requeue=299.0,
        ),
        id="forbid-starts-when-nothing-is-active",
    ),
    pytest.param(
        Case(
            body=schedule(status=last(TICK1), concurrencyPolicy="Allow"),
            now=TICK2 + timedelta(seconds=1),
            goals=[owned(name_for(TICK1), "Running")],
            fields={
                "lastScheduleTime": ts(TICK2),
                "active": active(name_for(TICK1), name_for(TICK2)),
            },
            conditions=scheduled(),
            events=[("Normal", "GoalCreated", name_for(TICK2))],
            create_goal=[name_for(TICK2)],
            requeue=299.0,
        ),
        id="allow-runs-ticks-side-by-side",
    ),
    pytest.param(
        Case(
            body=schedule(status=last(TICK1), concurrencyPolicy="Replace"),
            now=TICK2 + timedelta(seconds=1),
            goals=[owned(name_for(TICK1), "Running")],
            fields={"lastScheduleTime": ts(TICK2), "nextScheduleTime": ts(TICK3)},
            conditions=scheduled(),
            events=[
                ("Normal", "Replaced", f"deleted goal {name_for(TICK1)} (Replace)"),
                ("Normal", "GoalCreated", name_for(TICK2)),
            ],
            create_goal=[name_for(TICK2)],
            deleted=[name_for(TICK1)],
            requeue=299.0,
        ),
        id="replace-stops-the-active-goal-and-starts-the-new-one",
    ),
    pytest.param(
        Case(
            body=schedule(startingDeadlineSeconds=600),
            now=datetime(2026, 1, 1, 3, 2, tzinfo=UTC),  # 36 ticks missed
            fields={
                "lastScheduleTime": "2026-01-01T03:00:00Z",
                "nextScheduleTime": "2026-01-01T03:05:00Z",
                "active": active(name_for(datetime(2026, 1, 1, 3, 0, tzinfo=UTC))),
            },
            conditions=scheduled(),
            events=[("Normal", "GoalCreated", "for 2026-01-01T03:00:00Z")],
            create_goal=[name_for(datetime(2026, 1, 1, 3, 0, tzinfo=UTC))],
            requeue=180.0,
        ),
        id="missed-ticks-give-one-catch-up-not-a-burst",
    ),
    pytest.param(
        Case(
            body=schedule(),
            now=datetime(2026, 1, 1, 10, 2, tzinfo=UTC),  # 120 ticks missed
            fields={"lastScheduleTime": "2026-01-01T10:00:00Z"},
            conditions=scheduled(),
            events=[
                ("Warning", "TooManyMissedTimes", "too many missed start times"),
                ("Normal", "GoalCreated", "for 2026-01-01T10:00:00Z"),
            ],
            create_goal=[name_for(datetime(2026, 1, 1, 10, 0, tzinfo=UTC))],
            requeue=180.0,
        ),
        id="too-many-missed-ticks-are-said-and-one-runs",
    ),
    pytest.param(
        Case(
            body=schedule(startingDeadlineSeconds=10),
            now=TICK1 + timedelta(minutes=2),
            fields={
                "lastScheduleTime": ts(TICK1),
                "nextScheduleTime": ts(TICK2),
                "active": [],
            },
            conditions=scheduled(),
            events=[
                (
                    "Warning",
                    "MissSchedule",
                    "missed the schedule time 2026-01-01T00:05:00Z by more than "
                    "startingDeadlineSeconds (10s); next at 2026-01-01T00:10:00Z",
                )
            ],
            requeue=180.0,
        ),
        id="a-tick-too-late-for-the-deadline-is-skipped",
    ),
    pytest.param(
        Case(
            body=schedule(startingDeadlineSeconds=10, status=last(TICK1)),
            now=TICK1 + timedelta(minutes=2, seconds=1),
            fields={"lastScheduleTime": ts(TICK1), "nextScheduleTime": ts(TICK2)},
            conditions=scheduled(),
            requeue=179.0,
        ),
        id="a-skipped-tick-is-said-once",
    ),
    pytest.param(
        Case(
            body=schedule(startingDeadlineSeconds=10),
            now=TICK1 + timedelta(seconds=10),
            fields={"lastScheduleTime": ts(TICK1)},
            conditions=scheduled(),
            events=[("Normal", "GoalCreated", name_for(TICK1))],
            create_goal=[name_for(TICK1)],
            requeue=290.0,
        ),
        id="a-tick-just-within-the-deadline-runs",
    ),
    pytest.param(
        Case(
            body=schedule(cron="0 9 * * *", timeZone="Europe/Berlin"),
            now=CREATED + timedelta(minutes=1),
            fields={"nextScheduleTime": "2026-01-01T08:00:00Z"},
            conditions=scheduled(),
            requeue=(datetime(2026, 1, 1, 8, 0, tzinfo=UTC) - CREATED).total_seconds() - 60,
        ),
        id="time-zone-places-the-ticks",
    ),
    pytest.param(
        Case(
            body=schedule(suspend=True, status=last(TICK1, nextScheduleTime=ts(TICK2))),
            now=TICK3 + timedelta(seconds=1),
            goals=[owned(name_for(TICK1), "Running")],
            fields={
                "lastScheduleTime": ts(TICK1),
                "nextScheduleTime": ABSENT,
                "active": active(name_for(TICK1)),
            },
            conditions=scheduled("Suspended"),
            ready_message="suspended: spec.suspend is true",
        ),
        id="suspended-schedule-stamps-nothing",
    ),
]

T_OLD = TICK1 - timedelta(hours=5)

HISTORY = [
    pytest.param(
        Case(
            body=schedule(
                status=last(TICK1),
                successfulGoalsHistoryLimit=2,
                failedGoalsHistoryLimit=1,
            ),
            now=TICK1 + timedelta(seconds=30),
            goals=[
                owned("s1", "Succeeded", started=T_OLD, completed=T_OLD + timedelta(minutes=9)),
                owned(
                    "s2",
                    "Succeeded",
                    started=T_OLD + timedelta(hours=1),
                    completed=T_OLD + timedelta(hours=1, minutes=7),
                ),
                owned("s3", "Skipped", started=T_OLD + timedelta(minutes=30)),
                owned("f1", "Failed", started=T_OLD + timedelta(hours=2)),
                owned("f2", "Failed", started=T_OLD + timedelta(hours=3)),
            ],
            fields={
                "active": [],
                "lastSuccessfulTime": ts(T_OLD + timedelta(hours=1, minutes=7)),
            },
            conditions=scheduled(),
            events=[("Normal", "HistoryTrimmed", "deleted finished goals s1, f1")],
            deleted=["s1", "f1"],
            requeue=270.0,
        ),
        id="history-keeps-the-newest-finished-goals-per-outcome",
    ),
    pytest.param(
        Case(
            body=schedule(suspend=True, successfulGoalsHistoryLimit=0, failedGoalsHistoryLimit=0),
            now=TICK1 + timedelta(seconds=30),
            goals=[owned("s1", "Skipped", started=T_OLD), owned("r1", "Running")],
            fields={"active": active("r1")},
            conditions=scheduled("Suspended"),
            events=[("Normal", "HistoryTrimmed", "deleted finished goals s1")],
            deleted=["s1"],
        ),
        id="history-is-trimmed-while-suspended-and-never-an-unfinished-goal",
    ),
    pytest.param(
        Case(
            body=schedule(status=last(TICK1, lastSuccessfulTime=ts(T_OLD))),
            now=TICK1 + timedelta(seconds=30),
            fields={"lastSuccessfulTime": ts(T_OLD), "active": []},
            conditions=scheduled(),
            requeue=270.0,
        ),
        id="last-success-is-kept-when-its-goal-is-gone",
    ),
    pytest.param(
        Case(
            body=schedule(
                status=last(TICK1, lastSuccessfulTime=ts(T_OLD)),
                successfulGoalsHistoryLimit=0,
            ),
            now=TICK1 + timedelta(seconds=30),
            goals=[owned("s1", "Succeeded", started=TICK1, completed=TICK1 + timedelta(seconds=9))],
            fields={"lastSuccessfulTime": ts(TICK1 + timedelta(seconds=9)), "active": []},
            conditions=scheduled(),
            events=[("Normal", "HistoryTrimmed", "deleted finished goals s1")],
            deleted=["s1"],
            requeue=270.0,
        ),
        id="a-newer-success-moves-last-success-though-its-goal-is-trimmed-at-once",
    ),
    pytest.param(
        Case(
            body=schedule(status=last(TICK1, lastSuccessfulTime=ts(TICK1))),
            now=TICK1 + timedelta(seconds=30),
            goals=[owned("s1", "Succeeded", started=T_OLD, completed=T_OLD + timedelta(minutes=1))],
            fields={"lastSuccessfulTime": ts(TICK1)},
            conditions=scheduled(),
            requeue=270.0,
        ),
        id="an-older-success-does-not-move-last-success-back",
    ),
    pytest.param(
        Case(
            body=schedule(status=last(TICK1, lastSuccessfulTime=ts(T_OLD))),
            now=TICK1 + timedelta(seconds=30),
            goals=[owned("f1", "Failed", started=TICK1, completed=TICK1 + timedelta(seconds=5))],
            fields={"lastSuccessfulTime": ts(T_OLD)},
            conditions=scheduled(),
            requeue=270.0,
        ),
        id="a-failure-does-not-move-last-success",
    ),
]


@pytest.mark.parametrize("case", [*VALIDATION, *TICKS, *HISTORY])
def test_schedule_reconcile(case: Case) -> None:
    clock = FixedClock(case.now)
    cluster = FakeCluster(clock=clock)
    for goal in case.goals:
        cluster.add_goal(goal)
    reconciler = GoalScheduleReconciler(cluster, clock=clock)

    result = run(reconciler.reconcile(case.body))

    status = wire(result)
    if case.fields is None:
        assert status is None, f"no status write expected, got {status}"
    else:
        assert_fields(status, case.fields)
        assert status is not None
        assert status["observedGeneration"] == case.body["metadata"]["generation"]
    if case.conditions is not None:
        assert conditions_of(status) == case.conditions
    if case.ready_message is not None:
        assert status is not None
        [ready] = [c for c in status["conditions"] if c["type"] == "Ready"]
        assert ready["message"] == case.ready_message
    assert events_of(result) == [(k, r) for k, r, _ in case.events]
    for event, (_, _, text) in zip(result.events, case.events, strict=True):
        assert text in event.message, f"{text!r} not in {event.message!r}"
    assert cluster.created_goals == case.create_goal
    assert cluster.deleted_goals == case.deleted
    assert result.requeue_after == case.requeue
    listed = [(UID in selector) for _, selector in cluster.calls_to("list_goals")]
    assert listed == ([True] if case.listed else [])


def test_a_ticks_goal_is_the_template_labelled_and_owned() -> None:
    clock = FixedClock(TICK1 + timedelta(seconds=1))
    cluster = FakeCluster(clock=clock)

    run(GoalScheduleReconciler(cluster, clock=clock).reconcile(schedule()))

    goal = cluster.goal(name_for(TICK1))
    assert goal["metadata"]["labels"] == {
        "team": "docs",
        LABEL_SCHEDULE: "nightly",
        LABEL_SCHEDULE_UID: UID,
    }
    assert goal["metadata"]["annotations"] == {
        "note": "weekly docs",
        ANNOTATION_SCHEDULED_AT: "2026-01-01T00:05:00Z",
    }
    [owner] = goal["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "GoalSchedule",
        "nightly",
        UID,
        True,
    )
    assert goal["spec"]["repository"]["url"] == "https://github.com/o/r.git"
    assert (goal["spec"]["task"]["image"], goal["spec"]["task"]["command"]) == ("busybox", ["true"])
    assert goal["spec"]["suspend"] is True


def test_ticks_over_an_hour_stamp_one_goal_each_and_never_twice() -> None:
    """Reconciles as the runtime makes them: at each requeue, and again in between."""
    clock = FixedClock(CREATED)
    cluster = FakeCluster(clock=clock)
    reconciler = GoalScheduleReconciler(cluster, clock=clock)
    body = schedule(concurrencyPolicy="Allow")

    for _ in range(12):
        result = run(cluster.apply(reconciler, body))
        assert result.requeue_after is not None
        clock.advance(seconds=result.requeue_after + 1)
        run(cluster.apply(reconciler, body))  # a repeated reconcile of the same tick

    ticks = [TICK1 + timedelta(minutes=5 * i) for i in range(12)]
    assert cluster.created_goals == [name_for(tick) for tick in ticks]
    assert [reason for _, _, reason, _ in cluster.events] == ["GoalCreated"] * 12
    assert body["status"]["lastScheduleTime"] == ts(ticks[-1])
    assert body["status"]["active"] == active(*map(name_for, ticks))
    assert body["status"]["activeCount"] == 12  # `kubectl get`'s ACTIVE column


# ------------------------------------------- regressions these tables found (were strict xfails)


def test_replace_leaves_only_the_new_goal_active() -> None:
    clock = FixedClock(TICK2 + timedelta(seconds=1))
    cluster = FakeCluster(clock=clock)
    cluster.add_goal(owned(name_for(TICK1), "Running"))
    body = schedule(status=last(TICK1), concurrencyPolicy="Replace")

    result = run(GoalScheduleReconciler(cluster, clock=clock).reconcile(body))

    assert cluster.deleted_goals == [name_for(TICK1)]
    assert wire(result)["active"] == active(name_for(TICK2))  # type: ignore[index]


FOREIGN = {**owned(name_for(TICK1), "Running"), "metadata": {"name": name_for(TICK1)}}
OUR_LABELS_ANOTHERS_GOAL = {
    **owned(name_for(TICK1), "Succeeded"),
    "metadata": {
        **owned(name_for(TICK1), None)["metadata"],
        "ownerReferences": [
            {"kind": "GoalSchedule", "name": "nightly", "uid": "another-uid", "controller": True}
        ],
    },
}


@pytest.mark.parametrize(
    ("existing", "expected_events"),
    [
        pytest.param(owned(name_for(TICK1), "Succeeded"), [], id="finished"),
        pytest.param(FOREIGN, [("Warning", "GoalNameTaken")], id="not-this-schedules"),
        pytest.param(
            OUR_LABELS_ANOTHERS_GOAL,
            [("Warning", "GoalNameTaken")],
            id="labelled-but-controlled-by-another",
        ),
    ],
)
def test_an_existing_goal_of_the_ticks_name_is_not_reported_active(
    existing: Json, expected_events: list[tuple[str, str]]
) -> None:
    """As CronJob with a Job of the tick's name that "already exists": this schedule's finished
    Goal is not active; a Goal it does not control (ownerReference uid) is said once
    (GoalNameTaken) and never active, whatever its labels."""
    clock = FixedClock(TICK1 + timedelta(seconds=1))
    cluster = FakeCluster(clock=clock)
    cluster.add_goal(existing)
    reconciler = GoalScheduleReconciler(cluster, clock=clock)
    body = schedule()

    result = run(cluster.apply(reconciler, body))

    assert wire(result)["active"] == []  # type: ignore[index]
    assert body["status"]["lastScheduleTime"] == ts(TICK1)
    assert events_of(result) == expected_events
    assert cluster.created_goals == [name_for(TICK1)]
    assert cluster.goal(name_for(TICK1)) == existing  # neither replaced nor changed
    # The tick is handled: the next reconcile neither tries again nor says it again.
    again = run(cluster.apply(reconciler, body))
    assert events_of(again) == []
    assert cluster.created_goals == [name_for(TICK1)]


def test_an_unfinished_goal_of_the_ticks_name_this_schedule_controls_is_adopted() -> None:
    """The listing lags behind the Goal's creation (an earlier reconcile of the same tick made
    it), so only the create finds it: it is this tick's Goal, active, with no event."""
    clock = FixedClock(TICK1 + timedelta(seconds=1))
    cluster = FakeCluster(clock=clock)
    cluster.add_goal(owned(name_for(TICK1), "Pending"))
    cluster.hidden_once.add(name_for(TICK1))

    result = run(GoalScheduleReconciler(cluster, clock=clock).reconcile(schedule()))

    assert wire(result)["active"] == active(name_for(TICK1))  # type: ignore[index]
    assert events_of(result) == []
    assert cluster.created_goals == [name_for(TICK1)]


# ------------------------------------------------- what a status write is, over many reconciles


def test_last_success_survives_the_history_that_trims_its_goal() -> None:
    """As CronJob's: the reconcile that sees the Goal succeed records its completion and, with
    a history limit of 0, deletes it; later reconciles, which no longer list it, keep the time."""
    clock = FixedClock(TICK1 + timedelta(seconds=1))
    cluster = FakeCluster(clock=clock)
    reconciler = GoalScheduleReconciler(cluster, clock=clock)
    body = schedule(successfulGoalsHistoryLimit=0, failedGoalsHistoryLimit=0)
    run(cluster.apply(reconciler, body))
    goal = cluster.goal(name_for(TICK1))
    done = TICK1 + timedelta(minutes=2)
    goal["status"] = {"phase": "Succeeded", "startTime": ts(TICK1), "completionTime": ts(done)}
    clock.now = done + timedelta(seconds=1)

    run(cluster.apply(reconciler, body))  # sees it succeed, trims it
    assert cluster.deleted_goals == [name_for(TICK1)]
    assert body["status"]["lastSuccessfulTime"] == ts(done)

    for _ in range(3):  # the next ticks, and a reconcile between them
        clock.advance(minutes=5)
        run(cluster.apply(reconciler, body))
        run(cluster.apply(reconciler, body))
        assert body["status"]["lastSuccessfulTime"] == ts(done)


def test_a_reconcile_that_changes_nothing_writes_nothing() -> None:
    """The first reconcile, then twelve ticks (an hour), each reconciled again at once and once
    more a little later (a Goal's event, a requeue): only the first and the ticks' own
    reconciles have a status patch (`status_patch`, the runtime's writer, against the status
    written before)."""
    clock = FixedClock(CREATED)
    cluster = FakeCluster(clock=clock)
    reconciler = GoalScheduleReconciler(cluster, clock=clock)
    body = schedule(concurrencyPolicy="Allow")
    writes = 0

    for _ in range(13):
        before = body.get("status")
        result = run(cluster.apply(reconciler, body))
        assert result.status is not None
        writes += status_patch(before, result.status) is not None
        for wait in (0, 7):
            clock.advance(seconds=wait)
            again = run(reconciler.reconcile(copy.deepcopy(body)))
            assert again.status is not None
            assert status_patch(body["status"], again.status) is None, "a no-op reconcile"
            assert again.events == []
        assert result.requeue_after is not None
        clock.advance(seconds=result.requeue_after - 7 + 1)

    assert writes == 13
    assert cluster.created_goals == [name_for(TICK1 + timedelta(minutes=5 * i)) for i in range(12)]


def test_a_spent_budget_skips_ticks_until_the_next_utc_day() -> None:
    """Attempts budget 2, a tick every 5 minutes, Goals that keep running: two ticks start a
    Goal, the third finds the budget spent (said once), the fourth too; the next day's tick
    starts one again."""
    clock = FixedClock(CREATED)
    cluster = FakeCluster(clock=clock)
    reconciler = GoalScheduleReconciler(cluster, clock=clock)
    body = schedule(concurrencyPolicy="Allow", budget={"perDay": {"attempts": 2}})

    for _ in range(5):
        result = run(cluster.apply(reconciler, body))
        assert result.requeue_after is not None
        clock.advance(seconds=result.requeue_after + 1)

    assert cluster.created_goals == [name_for(TICK1), name_for(TICK2)]
    assert body["status"]["lastScheduleTime"] == ts(TICK1 + timedelta(minutes=15))
    assert body["status"]["budget"]["reason"] == "AttemptsSpent"
    assert conditions_of(body["status"]) == scheduled("BudgetExhausted")
    assert [reason for _, _, reason, _ in cluster.events] == [
        "GoalCreated",
        "GoalCreated",
        "BudgetExhausted",
    ]

    silent = failure("TaskFailed", "exit 3", retryable=False, step="task")
    ended = record_attempt(None, silent, attempt_id=None, now=clock())
    for name in cluster.created_goals:  # they end, one attempt each, reporting nothing
        cluster.goal(name)["status"] = {"phase": "Failed", "usage": to_wire(ended)}
    clock.now = datetime(2026, 1, 2, 0, 0, 30, tzinfo=UTC)
    run(cluster.apply(reconciler, body))

    next_day = datetime(2026, 1, 2, 0, 0, tzinfo=UTC)
    assert cluster.created_goals[-1] == name_for(next_day)
    assert [reason for _, _, reason, _ in cluster.events][-2:] == ["BudgetAvailable", "GoalCreated"]
    assert body["status"]["usage"]["days"] == [
        {
            "date": "2026-01-01",  # the day they ended on
            "attempts": 2,
            "inputTokens": 0,
            "outputTokens": 0,
            "costs": [],
            "durationSeconds": 0,
            "counters": {},
            "withoutCost": 2,
            "withoutTokens": 2,
        }
    ]
