"""The GoalSchedule reconciler: Goals stamped on a cron, as CronJob stamps Jobs. No kopf here.

Ordered steps on each reconcile:
1. validate the spec and the cron expression (a bad one: `Stalled`, an event, no crash loop);
2. read the schedule's Goals (by label), add their ended attempts to the usage per day, decide
   today's budget (`spec.budget`), and delete finished Goals beyond the history limits (once
   the status holds all of a Goal's usage; never one whose pull request may still be open);
3. unless suspended: is a tick due (at most one catch-up, within startingDeadlineSeconds)? A
   tick due while the budget is spent starts nothing;
4. apply the concurrency policy (Allow, Forbid, Replace) and create the tick's Goal, named
   after the tick so a repeated reconcile never makes two; a Goal of that name that exists
   already is adopted when this schedule controls it (active unless finished, as CronJob does
   with its Jobs) and otherwise reported (`GoalNameTaken`), never listed as active;
5. report: last schedule and success times, active goals, next tick, conditions (a
   `GoalScheduleStatus`). As CronJob's, `lastSuccessfulTime` only moves forward: it is kept
   when the Goal that set it is trimmed from history or deleted.

The runtime writes the status only when it differs from what was read (`status.status_patch`),
so a reconcile that changes nothing (a Goal's event, a requeue between ticks) writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from backlog_operator import naming
from backlog_operator.api.common import describe_validation_error
from backlog_operator.api.goal import FINAL_PHASES, Phase
from backlog_operator.api.labels import ANNOTATION_SCHEDULED_AT, LABEL_SCHEDULE, LABEL_SCHEDULE_UID
from backlog_operator.api.schedule import ActiveGoal, GoalSchedule, GoalScheduleStatus
from backlog_operator.controller.conditions import STALLED, mark_ready, mark_stalled, reason_of
from backlog_operator.controller.owned_goals import (
    awaiting_pull_request,
    controlled_by,
    owned_goal,
    phase_of,
    trim_history,
)
from backlog_operator.controller.results import Event, Reconciled
from backlog_operator.controller.schedules.cron import (
    ALREADY_STARTED,
    MISSED_SCHEDULE,
    TOO_MANY_MISSED,
    CronSchedule,
    ScheduleError,
    concurrency_decision,
    due,
    goal_name,
    parse_schedule,
)
from backlog_operator.controller.status import (
    evolve,
    instant,
    parse_time,
    read_status,
    timestamp,
)
from backlog_operator.controller.usage import (
    BUDGET_EXHAUSTED,
    HELD_REQUEUE_SECONDS,
    Accounted,
    BudgetDecision,
    account,
    settled,
)
from backlog_operator.errors import AlreadyExistsError


class ScheduleCluster(Protocol):
    """What the GoalSchedule reconciler needs of the API (adapters.kube.KubeCluster)."""

    async def list_goals(
        self, namespace: str | None = None, selector: str = ""
    ) -> list[dict[str, Any]]: ...
    async def get_goal(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def create_goal(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...
    async def delete_goal(self, namespace: str, name: str) -> None: ...


class GoalScheduleReconciler:
    """Reconciles one GoalSchedule at a time."""

    def __init__(self, cluster: ScheduleCluster, *, clock: Callable[[], datetime] | None = None):
        self.cluster = cluster
        self.clock = clock or (lambda: datetime.now(UTC))

    async def reconcile(self, body: Mapping[str, Any]) -> Reconciled[GoalScheduleStatus]:
        """Compute and carry out the next step for the GoalSchedule in `body`."""
        status = read_status(GoalScheduleStatus, body.get("status"))
        generation = body.get("metadata", {}).get("generation")
        try:
            schedule = GoalSchedule.model_validate(dict(body))
            cron = parse_schedule(schedule.spec.schedule, schedule.spec.time_zone)
        except (ValidationError, ScheduleError) as error:
            problem = describe_validation_error(error)
            return self._stalled(status, "InvalidSchedule", problem, generation)
        now = self.clock()
        namespace = schedule.metadata.namespace or "default"
        goals = await self.cluster.list_goals(
            namespace, f"{LABEL_SCHEDULE_UID}={schedule.metadata.uid}"
        )
        active = sorted(g["metadata"]["name"] for g in goals if phase_of(g) not in FINAL_PHASES)
        accounted = account(status.usage, schedule.spec.budget, status.budget, goals, now)
        events, held = await trim_history(
            self.cluster,
            namespace,
            goals,
            successful=schedule.spec.successful_goals_history_limit,
            failed=schedule.spec.failed_goals_history_limit,
            # A Goal whose pull request may still be open is kept: its outcome is not known.
            keep=awaiting_pull_request(goals),
            deletable=settled(status.usage),  # once the status holds all of a Goal's usage
        )
        plan = _plan(schedule, cron, status, now, accounted.decision)
        events += plan.events
        new, active, more = await self._follow(schedule, status, plan, active, accounted)
        events += more
        next_time = plan.next_time
        latest_success = _latest_success(goals, status.last_successful_time)
        fields, unset = accounted.status_fields()
        new = evolve(
            new,
            unset=unset,
            **fields,
            active=[ActiveGoal(name=name) for name in active],
            active_count=len(active),
            next_schedule_time=instant(next_time) if next_time else None,
            last_successful_time=instant(latest_success) if latest_success else None,
            observed_generation=generation,
            conditions=mark_ready(
                status.conditions, plan.reason, plan.message, generation=generation, now=now
            ),
        )
        requeue = (next_time - now).total_seconds() if next_time else None
        if accounted.decision is not None and accounted.decision.exhausted:
            requeue = accounted.decision.requeue_after(now, requeue or 86400.0)
        if held:  # deleted once this status, which holds their usage, is written
            requeue = min(requeue or HELD_REQUEUE_SECONDS, HELD_REQUEUE_SECONDS)
        return Reconciled(new, events, requeue_after=requeue)

    async def _follow(
        self,
        schedule: GoalSchedule,
        status: GoalScheduleStatus,
        plan: _Plan,
        active: list[str],
        accounted: Accounted,
    ) -> tuple[GoalScheduleStatus, list[str], list[Event]]:
        """Step 4: the plan carried out. A tick due while today's budget is spent starts
        nothing and is recorded as handled (the budget's event said why, once)."""
        new, events = status, list(accounted.events)
        if plan.skipped_time is not None:
            # Recorded as handled, so the miss is reported once, not on every reconcile.
            new = evolve(new, last_schedule_time=instant(plan.skipped_time))
        if plan.run_for is not None:
            if accounted.room != 0:
                active, more = await self._tick(schedule, plan.run_for, active)
                events += more
            new = evolve(new, last_schedule_time=instant(plan.run_for))
        return new, active, events

    async def _tick(
        self, schedule: GoalSchedule, tick: datetime, active: list[str]
    ) -> tuple[list[str], list[Event]]:
        """Start the Goal of `tick` under the concurrency policy: the active Goals afterwards
        (`active` less those Replace deleted, plus the tick's if it runs) and the events."""
        name = goal_name(schedule.metadata.name, tick)
        decision = concurrency_decision(
            schedule.spec.concurrency_policy, active, scheduled_goal=name
        )
        if not decision.start:
            kind = "Normal" if decision.reason == ALREADY_STARTED else "Warning"
            return active, [Event(kind, decision.reason or "NotStarted", decision.message)]
        events = []
        namespace = schedule.metadata.namespace or "default"
        for old in decision.stop:
            await self.cluster.delete_goal(namespace, old)
            events.append(Event("Normal", "Replaced", f"deleted goal {old} (Replace)"))
        remaining = {*active} - {*decision.stop}
        try:
            await self.cluster.create_goal(goal_for_tick(schedule, tick, name))
        except AlreadyExistsError:
            adopted, more = await self._existing(schedule, namespace, name, tick)
            return sorted({*remaining, name} if adopted else remaining), events + more
        events.append(Event("Normal", "GoalCreated", f"created goal {name} for {timestamp(tick)}"))
        return sorted({*remaining, name}), events

    async def _existing(
        self, schedule: GoalSchedule, namespace: str, name: str, tick: datetime
    ) -> tuple[bool, list[Event]]:
        """The tick's name is taken: whether the Goal holding it is this schedule's and active.

        As CronJob with a Job of the tick's name: one this schedule controls (ownerReference
        uid) was made by an earlier reconcile of the same tick and is adopted, active unless
        it has finished; one it does not control is not its Goal: a warning, not active. The
        tick is recorded as handled either way, so the warning is said once.
        """
        existing = await self.cluster.get_goal(namespace, name)
        if existing is None:  # deleted since: nothing of this tick runs
            return False, []
        if controlled_by(existing, schedule.metadata.uid):
            return phase_of(existing) not in FINAL_PHASES, []
        message = (
            f"cannot create goal {name} for {timestamp(tick)}: the name is taken by a goal "
            "this schedule does not own"
        )
        return False, [Event("Warning", "GoalNameTaken", message)]

    def _stalled(
        self, status: GoalScheduleStatus, reason: str, problem: str, generation: int | None
    ) -> Reconciled[GoalScheduleStatus]:
        said = reason_of(status.conditions, STALLED, "True") == reason
        if status.observed_generation == generation and said:
            return Reconciled()  # said already: events only on transitions
        conditions = mark_stalled(
            status.conditions, reason, problem, generation=generation, now=self.clock()
        )
        new = evolve(status, observed_generation=generation, conditions=conditions)
        return Reconciled(new, [Event("Warning", reason, problem)])


@dataclass(frozen=True)
class _Plan:
    """What the cron says on this reconcile: the time to start a Goal for (if any), the time
    skipped as too late (if any), the next time, the Ready reason and message, the warnings."""

    run_for: datetime | None
    skipped_time: datetime | None
    next_time: datetime | None
    reason: str
    message: str
    events: tuple[Event, ...] = ()


def _plan(
    schedule: GoalSchedule,
    cron: CronSchedule,
    status: GoalScheduleStatus,
    now: datetime,
    budget: BudgetDecision | None = None,
) -> _Plan:
    """Step 3 of the reconcile: unless suspended, whether a tick is due (`cron.due`); Ready's
    reason `BudgetExhausted` while today's budget is spent."""
    if schedule.spec.suspend:
        return _Plan(None, None, None, "Suspended", "suspended: spec.suspend is true")
    decision = due(
        cron,
        last_schedule_time=status.last_schedule_time,
        creation_time=schedule.metadata.creation_timestamp or now,
        now=now,
        starting_deadline_seconds=schedule.spec.starting_deadline_seconds,
    )
    events: list[Event] = []
    if decision.too_many_missed:
        events.append(Event("Warning", TOO_MANY_MISSED, decision.message))
    if decision.skipped_time is not None:
        events.append(Event("Warning", MISSED_SCHEDULE, decision.message))
    reason, message = "Scheduled", f"next tick at {timestamp(decision.next_time)}"
    if budget is not None and budget.exhausted:
        reason, message = (
            BUDGET_EXHAUSTED,
            f"{budget.status.message}; ticks until then start nothing",
        )
    return _Plan(
        run_for=decision.run_for,
        skipped_time=decision.skipped_time,
        next_time=decision.next_time,
        reason=reason,
        message=message,
        events=tuple(events),
    )


def _latest_success(goals: list[dict[str, Any]], known: datetime | None) -> datetime | None:
    """When the schedule's last successful Goal completed: the latest of `known` (the status's
    `lastSuccessfulTime`) and the completion times of the `goals` that succeeded, or None.

    As CronJob's `lastSuccessfulTime`, it never moves back: the Goal that set it may since have
    been trimmed from history (a `successfulGoalsHistoryLimit` of 0 trims it on the very
    reconcile that sees it succeed) or deleted by a person, and an older success listed later
    does not replace a newer one. Times without a zone count as UTC.
    """
    succeeded = [parse_time(_completion(g)) for g in goals if phase_of(g) is Phase.SUCCEEDED]
    times = [_utc(t) for t in (known, *succeeded) if t is not None]
    return max(times, default=None)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def goal_for_tick(schedule: GoalSchedule, tick: datetime, name: str) -> dict[str, Any]:
    """The Goal of one tick: the template, labelled and owned by the schedule."""
    template = schedule.spec.goal_template
    labels = dict(template.metadata.labels)
    labels.update(
        {
            LABEL_SCHEDULE: naming.label_value(schedule.metadata.name),
            LABEL_SCHEDULE_UID: schedule.metadata.uid or "",
        }
    )
    annotations = dict(template.metadata.annotations)
    annotations[ANNOTATION_SCHEDULED_AT] = timestamp(tick)
    return owned_goal(
        schedule,
        name=name,
        namespace=schedule.metadata.namespace,
        labels=labels,
        annotations=annotations,
        spec=template.spec.to_wire(),
    )


def _completion(goal: Mapping[str, Any]) -> object:
    return (goal.get("status") or {}).get("completionTime")
