"""The operator's runtime under kopf: one per operator, kept in kopf's `memo`.

It holds the cluster adapter, the reconcilers, the capacity table and what the watches said
(`cache`), and runs the cycles the handlers and its own loop ask for: take the object's newest
known body under its lock (a Goal's from the watch, read from the API only when none is known),
reconcile, write the status (through `status.status_patch`, the one writer) and post the events.

Goals are driven by events, not polled:
- a Goal's watch event starts a cycle when it says something new (the echo of the operator's
  own status write does not);
- a Job's watch event starts its goal's cycle when it changes what a reconcile reads (its
  status, its deletion); the Job is kept, so that reconcile reads no Job (nor the one it has just
  created);
- a slot that frees goes to the head of the queue at once: the capacity table reserves it
  (`CapacityTable.admit`) and the goals it names are reconciled right away, as are the waiting
  goals of a task whose running goal ended;
- times: a backing-off goal is looked at when its next attempt is due, a running goal whose Pod
  waits when that wait's grace ends (`outcome.STUCK_GRACE`);
- a queue position is written again when it moved materially (`capacity.position_stale`).
A goal that succeeded with a pull request has it followed until it is merged (a closed one
slowly: it may be reopened) (`goals/pull_request.py`): each round of the loop takes the few
looks that are due (conditional requests to the forge, in a thread, in a background task of
their own) and writes what changed into the goal's status; one that no longer merges starts a
heal Job (`goals/heal.py`), whose end the goal's reconcile reads. A GitHub webhook
(`controller.webhooks`) asks for more at once: a Backlog's sync (`request_sync`), or a look at
a pull request it says was closed or reopened (`recheck_pull_request`: due first, in a round of
looks started now).
One loop (`BACKLOG_OPERATOR_REQUEUE_SECONDS`) runs what is due: those times, failed cycles'
retries, GoalSchedules and Backlogs whose next look is due, queue positions, pull request looks;
every twelfth
round the running goals whose Job has a Pod (a Pod that starts to wait changes no Job: the Pod
is read), and the worker Jobs listed afresh, a page at a time (a Job deleted while the watch
was away sends no event). Not a kopf timer per object, which would need a finalizer and a task
per object.

What it does is also counted (`metrics.Metrics`, served on `/metrics`): each cycle's time and
result as it ends, each status as it is written (a goal's wait for a slot, its run, its
attempt and the usage its task reported; a Backlog's tasks), each Goal's phase as its watch
says it, and the daily budget of a Backlog or GoalSchedule after each of its reconciles.

kopf does not retry event handlers, so the runtime does: a cycle that raises, whatever raised,
is tried again by the requeue loop after a per-object exponential backoff with equal jitter
(`RetryPolicy`: 1 s doubling to 5 min), on real time, reset by the next success; meanwhile the
object is not looked at on every tick. A failure that keeps happening (or one no retry can fix)
shows on the object: Ready=False with reason `ReconcileError`, one Warning event when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from backlog_operator.adapters.backlog_source import BacklogSource
from backlog_operator.adapters.kube import KubeCluster, describe_failure
from backlog_operator.api.backlog import BacklogStatus
from backlog_operator.api.common import ApiModel, SecretKeyReference
from backlog_operator.api.goal import FINAL_PHASES, Goal, GoalStatus, Phase
from backlog_operator.api.labels import (
    LABEL_ATTEMPT,
    LABEL_BACKLOG_UID,
    LABEL_GOAL_UID,
    LABEL_HEAL,
    LABEL_MANAGED_BY,
    LABEL_RUN,
    MANAGED_BY,
)
from backlog_operator.api.schedule import GoalScheduleStatus
from backlog_operator.controller import logs
from backlog_operator.controller.backlogs.reconciler import (
    BacklogReconciler,
    ForgeFactory,
    github_forge,
)
from backlog_operator.controller.cache import Bodies, Jobs, WatchedJobs, goal_of, object_key
from backlog_operator.controller.conditions import READY, RECONCILE_ERROR, mark_failing, reason_of
from backlog_operator.controller.credentials import ForgeCredentials
from backlog_operator.controller.goals import outcome
from backlog_operator.controller.goals.approval_job import next_attempt_label
from backlog_operator.controller.goals.capacity import WAITING, CapacityTable, entry_for
from backlog_operator.controller.goals.outcome import job_finished
from backlog_operator.controller.goals.pull_request import (
    Followed,
    PullRequestFollower,
    news,
    pull_request_seen,
    to_follow,
    unreadable,
)
from backlog_operator.controller.goals.reconciler import GoalReconciler
from backlog_operator.controller.goals.retry import jittered_backoff
from backlog_operator.controller.keyed import KeyedLocks, KeyQueue, WakeTimes
from backlog_operator.controller.metrics import Metrics
from backlog_operator.controller.results import Event, Reconciled
from backlog_operator.controller.schedules.reconciler import GoalScheduleReconciler
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.status import evolve, read_status, status_patch
from backlog_operator.controller.webhooks import Webhooks
from backlog_operator.errors import ClassifiedError

log = logging.getLogger("backlog_operator.controller")

# Goal cycles at once, at most, per request the adapter may have in flight: enough to keep
# every connection busy, few enough that a burst of thousands of goals does not hold
# thousands of half-done cycles (each with its goal, its Job manifest, its answers) in memory.
CYCLES_PER_CONNECTION = 2
# Every this many rounds of the loop: running goals whose Job has a Pod (their Pod read); the
# worker Jobs listed afresh (one deleted while the watch was away sends no event).
PODS_EVERY = 12
AUDIT_EVERY = 12
# When a GoalSchedule or a Backlog is looked at again if its reconciler does not say.
_SCHEDULE_DELAY = 3600.0
_BACKLOG_DELAY = 300.0

GOALS, BACKLOGS, SCHEDULES = "goals", "backlogs", "goalschedules"
_KINDS = {GOALS: "Goal", BACKLOGS: "Backlog", SCHEDULES: "GoalSchedule"}
_STATUS_MODELS: dict[str, type[ApiModel]] = {
    GOALS: GoalStatus,
    BACKLOGS: BacklogStatus,
    SCHEDULES: GoalScheduleStatus,
}


class _OwnerReconciler(Protocol):
    async def reconcile(self, body: Mapping[str, Any]) -> Reconciled[Any]: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed cycle is tried again: `base_seconds` doubling per failure in a row up to
    `max_seconds`, with equal jitter; shown on the object (`ReconcileError`) from the
    `report_after`th failure in a row on, or at the first when no retry can fix it."""

    base_seconds: float = 1.0
    max_seconds: float = 300.0
    report_after: int = 3


class Backoff:
    """Per-object retry times after failed cycles, on a monotonic clock (real time, not the
    reconcilers' clock: the API server recovers in real time). Keys are `<plural>:<ns>/<name>`."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 (jitter)
        self._failures: dict[str, int] = {}
        self._due: dict[str, float] = {}

    def failed(self, key: str) -> tuple[int, float]:
        """Record one more failure in a row of `key`: (failures in a row, delay before the next
        try). "Equal jitter": half the delay fixed, half random, so objects failing together
        do not all come back together, yet the delay still grows."""
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        delay = jittered_backoff(self.policy.base_seconds, self.policy.max_seconds, count, self.rng)
        self._due[key] = self.clock() + delay
        return count, delay

    def succeeded(self, key: str) -> None:
        """A cycle of `key` went through: its next failure starts from the base delay again."""
        self._failures.pop(key, None)
        self._due.pop(key, None)

    forget = succeeded

    def failures(self, key: str) -> int:
        """Failures of `key` in a row (0: its last cycle went through)."""
        return self._failures.get(key, 0)

    def ready(self, key: str) -> bool:
        """Whether the next try of a failing `key` is due."""
        due = self._due.get(key)
        return due is not None and due <= self.clock()

    def failing(self, plural: str) -> list[str]:
        """`<ns>/<name>` of the objects of `plural` whose last cycle failed."""
        prefix = f"{plural}:"
        return [key[len(prefix) :] for key in self._failures if key.startswith(prefix)]


@dataclass
class _Seen:
    """What a cycle read, for reporting its failure on the object."""

    body: Mapping[str, Any] | None = None


_Step = Callable[[str, str, _Seen], Awaitable[None]]


class Runtime:
    """What the handlers share: the cluster adapter, the reconcilers and per-object locks."""

    def __init__(
        self,
        cluster: KubeCluster,
        settings: OperatorSettings,
        clock: Callable[[], datetime] | None = None,
        forge_factory: ForgeFactory = github_forge,
        retry: RetryPolicy | None = None,
        metrics: Metrics | None = None,
        webhooks: Webhooks | None = None,
    ) -> None:
        self.cluster = cluster
        # Backlogs' webhook routes (each sync registers its own); deliveries act on this runtime.
        self.webhooks = webhooks or Webhooks()
        self.webhooks.attach(self)
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.webhooks.observe = self.metrics.webhook_answered
        self.clock = clock or (lambda: datetime.now(UTC))
        self.retry = retry or RetryPolicy()
        self.backoff = Backoff(self.retry)
        self.capacity = CapacityTable()
        self.bodies = Bodies()  # Goals, as the watch (or our own writes) last said them
        self.jobs = Jobs()  # worker Jobs, likewise
        # Tokens of credentials Secrets; a GitHub App's installation tokens, cached.
        self.credentials = ForgeCredentials(cluster, clock=self.clock)
        self._build_reconcilers(cluster, settings, forge_factory)
        self.metrics.track_capacity(self.capacity.queued, self.capacity.held, settings.max_running)
        self.forge_factory = forge_factory
        # Goals whose pull request is followed, until merged (closed ones slowly).
        self.pulls = PullRequestFollower(
            settings.pr_poll_seconds,
            settings.pr_polls_per_round,
            closed_interval=settings.pr_closed_poll_seconds or None,
        )
        self._following: asyncio.Task[None] | None = None
        self._follow_again = False  # a webhook asked for looks while a round was running
        self._sync_asked: set[str] = set()  # Backlogs whose webhook sync has not started yet
        # namespace/name -> the next time to look at that GoalSchedule or Backlog
        self.schedule_wake: dict[str, datetime] = {}
        self.backlog_wake: dict[str, datetime] = {}
        self.backlog_seen: dict[str, tuple[object, ...]] = {}  # what the last sync answered
        self.goal_wake = WakeTimes()  # goals: a backoff's end, a waiting Pod's grace's end
        self._locks = KeyedLocks()
        self._requeuer: asyncio.Task[None] | None = None
        self._spawned: set[str] = set()  # goals whose cycle is asked for and not started
        self._tasks: set[asyncio.Task[None]] = set()
        self._auditing: asyncio.Task[None] | None = None
        cycles = CYCLES_PER_CONNECTION * settings.api_concurrency
        self._cycles = asyncio.Semaphore(cycles)
        self._asked = KeyQueue(cycles, self._spawned_cycle)  # goals asked for, in order

    def _build_reconcilers(
        self, cluster: KubeCluster, settings: OperatorSettings, forge_factory: ForgeFactory
    ) -> None:
        self.goals = GoalReconciler(
            WatchedJobs(cluster, self.jobs),
            self.capacity,
            settings,
            clock=self.clock,
            credentials=self.credentials,
        )
        self.schedules = GoalScheduleReconciler(cluster, clock=self.clock)
        self.backlogs = BacklogReconciler(
            cluster,
            BacklogSource(Path(settings.cache_dir)),
            forge_factory=forge_factory,
            clock=self.clock,
            forge_observer=self.metrics.forge_answered,
            credentials=self.credentials,
            webhooks=self.webhooks.routes,
        )

    def lock(self, key: str) -> contextlib.AbstractAsyncContextManager[None]:
        """One reconcile at a time per object, whoever asks (its events, its Jobs, the loop)."""
        return self._locks.hold(key)

    # ------------------------------------------------------------------------ start-up

    async def seed(self, namespaces: list[str]) -> None:
        """Learn every goal's phase before the first decision (capacity after a restart), tried
        again with backoff until the API answers: admitting before knowing would over-admit."""
        while True:
            try:
                await self._seed(namespaces)
            except Exception as error:
                count, delay = self.backoff.failed("seed:")
                message, _ = describe_failure(error)
                log.warning("reading goals and jobs at start-up failed (%d): %s", count, message)
                await asyncio.sleep(delay)
                continue
            self.backoff.succeeded("seed:")
            return

    async def _seed(self, namespaces: list[str]) -> None:
        """The capacity table from the goals' statuses and from the worker Jobs that exist: a
        waiting goal with an unfinished Job, or with a Job of the attempt its status would start
        next (created just before a crash, its status never written; it may have finished
        since), holds its slot as running, and is adopted on its next reconcile, before another
        goal of its task or repository is admitted. The Jobs are kept (`Jobs`), so the watch's
        first events of them, saying nothing new, cost nothing."""
        for namespace in namespaces or [None]:  # type: ignore[list-item]
            goals = await self.cluster.list_goals(namespace)
            running: set[str | None] = set()  # goal uids
            made: set[tuple[str | None, ...]] = set()  # (goal uid, run, attempt)
            selector = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
            async for page in self.cluster.job_pages(namespace, selector):
                for job in page:
                    self.jobs.record(job)
                    labels = (job.get("metadata") or {}).get("labels") or {}
                    made.add(
                        (
                            labels.get(LABEL_GOAL_UID),
                            labels.get(LABEL_RUN),
                            labels.get(LABEL_ATTEMPT),
                        )
                    )
                    # A heal Job (its goal succeeded) holds no slot, and is no attempt.
                    if job_finished(job) is None and LABEL_HEAL not in labels:
                        running.add(labels.get(LABEL_GOAL_UID))
            for body in goals:
                try:
                    goal = Goal.model_validate(body)
                except ValueError:
                    continue
                status = goal.status or GoalStatus()
                entry = entry_for(goal, status)
                self.pulls.track(to_follow(goal, status), entry.key, time.monotonic())
                uid = goal.metadata.uid
                unrecorded = (uid, str(status.run or 1), next_attempt_label(status)) in made
                if entry.phase in WAITING and (uid in running or unrecorded):
                    entry = replace(entry, phase=Phase.RUNNING)
                self.capacity.put(entry)

    # -------------------------------------------------------------------------- events

    def goal_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A Goal's watch event: a cycle if the event says something new; a deleted goal's
        attempt stopped. Both run in the runtime's own tasks (a bounded number of cycles at
        once), so the event handler returns at once and kopf keeps no event while it waits."""
        self.metrics.goal_seen(event_type, body)
        metadata = body.get("metadata") or {}
        if event_type == "DELETED":
            namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
            stop = self.stop_attempt(namespace, name, str(metadata.get("uid")))
            self._start(stop, f"backlog-stop {namespace}/{name}")
        elif self.bodies.offer(body):
            self._spawn([object_key(body)], asked=True)

    def job_event(self, event_type: str | None, job: Mapping[str, Any]) -> None:
        """A worker Job's watch event: a cycle of its goal if the Job changed what it reads."""
        goal = goal_of(job)
        # A goal the capacity table does not know is gone (every other one is learnt at
        # start-up or before its first Job): its Jobs, deleted with it, tell nothing.
        if goal is None or self.capacity.get(goal) is None:
            return
        if self.jobs.offer(event_type, job):
            self._spawn([goal], asked=True)

    # -------------------------------------------------------------------------- cycles

    async def apply(self, namespace: str, name: str) -> None:
        """Reconcile one goal from its newest known body, and write its status and events (a
        bounded number at once: the others wait their turn, in order)."""
        async with self._cycles:
            await self._cycle(GOALS, namespace, name, self._apply_goal)
        self._admit_and_wake()

    async def _spawned_cycle(self, key: str) -> None:
        async with self._cycles:
            self._spawned.discard(key)  # from now on, asking again means another cycle
            namespace, _, name = key.partition("/")
            await self._cycle(GOALS, namespace, name, self._apply_goal)
        self._admit_and_wake()

    async def _apply_goal(self, namespace: str, name: str, seen: _Seen) -> None:
        key = f"{namespace}/{name}"
        body = await self._goal_body(key)
        seen.body = body
        if body is None:  # gone, its DELETED event missed (the watch was away): forget it
            self._forget_goal(key)
            return
        if body.get("metadata", {}).get("deletionTimestamp"):
            return
        try:
            result = await self.goals.reconcile(body)
            self._admit_and_wake()  # a slot it freed goes on now, not after its writes
            written = await self._write(GOALS, body, result)
        except Exception:
            self.bodies.forget(key)  # perhaps stale (a 409): the retry reads it afresh
            raise
        if written is not None:
            self.bodies.offer(written)  # so its echo says nothing new
        status = result.status or read_status(GoalStatus, body.get("status"))
        wake = self._next_look(status)
        if status.phase is Phase.RUNNING and result.requeue_after is not None:
            # A running attempt asks to be looked at (its token re-minted before it expires).
            asked = self.clock() + timedelta(seconds=result.requeue_after)
            wake = asked if wake is None else min(wake, asked)
        self.goal_wake.plan(key, wake)
        if self._job_ended_unseen(namespace, status):
            # Its Job ended before the goal said it ran (adopted after a restart): no event of
            # that Job will come, and the echo of this write says nothing new. Look again now.
            self.goal_wake.plan(key, self.clock())
        if status.phase in FINAL_PHASES:
            self._follow(key, body, status)
            self.bodies.shed(key)  # rarely looked at again: keep its version, not its body

    async def _goal_body(self, key: str) -> dict[str, Any] | None:
        """The goal's newest known body, unless its reconcile may start a Job: then it is read
        afresh, as the decision to start one (the one act no later write can take back) is
        taken on the goal as the API has it now. A goal that can only wait (no slot free for
        it) or whose attempt runs is reconciled from what the watch said; a status computed
        from a body that is no longer the newest is refused by the API server (409), and the
        retry reads the goal afresh."""
        body = self.bodies.get(key)
        if body is None or self.goals.may_start(body):
            namespace, _, name = key.partition("/")
            body = await self.cluster.get_goal(namespace, name)
            if body is not None:
                self.bodies.offer(body)
        return body

    def _follow(self, key: str, body: Mapping[str, Any], status: GoalStatus) -> None:
        """Follow the pull request of a finished goal, or stop following it (the goal's
        model is read only for one that has a pull request still to follow: open, or closed
        and perhaps reopened later)."""
        pull = status.pull_request
        if status.phase is not Phase.SUCCEEDED or pull is None or pull.state == "merged":
            self.pulls.track(None, key, time.monotonic())
            return
        try:
            goal = Goal.model_validate(body)
        except ValueError:
            return
        self.pulls.track(to_follow(goal, status), key, time.monotonic())

    def _job_ended_unseen(self, namespace: str, status: GoalStatus) -> bool:
        """Whether a goal that now says Running names a Job known to have finished."""
        if status.phase is not Phase.RUNNING or not status.job_name:
            return False
        known = self.jobs.get(namespace, status.job_name)
        return known is not None and job_finished(known) is not None

    def _next_look(self, status: GoalStatus) -> datetime | None:
        """When a goal with `status` is due to be looked at with no event: its next attempt's
        time while it backs off, the end of its Pod's grace while the Pod waits, the expiry of
        the change it stages while it awaits approval."""
        if status.phase is Phase.QUEUED and status.reason == "Backoff":
            return status.next_attempt_time or self.clock()
        if status.phase is Phase.AWAITING_APPROVAL and status.approval is not None:
            return status.approval.expires_at  # the expiry is a look at that time, no polling
        if status.phase is Phase.RUNNING and status.step_reason and status.step_reason_time:
            end = status.step_reason_time + outcome.STUCK_GRACE
            return end if end > self.clock() else None
        return None

    def _admit_and_wake(self) -> None:
        """Free slots to the head of the queue; reconcile the goals whose decision is due."""
        self.goals.admit()
        self._spawn(self.capacity.take_woken())

    def _spawn(self, keys: Iterable[str], *, asked: bool = False) -> None:
        """Reconcile these goals soon, a bounded number at once, in the order asked (each once
        however often asked before its cycle starts). A goal whose cycles fail waits for its
        backoff, unless its own watch `asked` (an event may be what mends it)."""
        for key in keys:
            failing = f"{GOALS}:{key}"
            if key in self._spawned or (
                not asked and self.backoff.failures(failing) and not self.backoff.ready(failing)
            ):
                continue
            self._spawned.add(key)
            self._asked.put(key)

    def _start(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run `work` in a task of its own, kept until it ends (cancelled on exit), in a context
        of its own: one made in a kopf handler's would keep kopf's cause (the event's body) as
        long as it runs."""
        task = asyncio.create_task(work, name=name, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def apply_schedule(self, namespace: str, name: str) -> None:
        """Reconcile one GoalSchedule from a fresh read; remember when to look again."""
        await self._apply_owner(
            SCHEDULES, namespace, name, self.schedules, self.schedule_wake, _SCHEDULE_DELAY
        )

    async def apply_backlog(self, namespace: str, name: str) -> None:
        """Sync one Backlog from a fresh read; remember when to sync again."""
        await self._apply_owner(
            BACKLOGS, namespace, name, self.backlogs, self.backlog_wake, _BACKLOG_DELAY
        )

    async def _apply_owner(
        self,
        plural: str,
        namespace: str,
        name: str,
        reconciler: _OwnerReconciler,
        wakes: dict[str, datetime],
        default_delay: float,
    ) -> None:
        """The shared cycle of the kinds that own Goals: read, reconcile, write, plan the next."""
        key = f"{namespace}/{name}"

        async def step(namespace: str, name: str, seen: _Seen) -> None:
            started = self.clock()  # the next look is due relative to this one's start
            body = await self.cluster.get_custom(plural, namespace, name)
            seen.body = body
            if body is None or body.get("metadata", {}).get("deletionTimestamp"):
                wakes.pop(key, None)
                return
            result = await reconciler.reconcile(body)
            await self._write(plural, body, result)
            self._record_budget(plural, body, result)
            delay = result.requeue_after if result.requeue_after is not None else default_delay
            wakes[key] = started + timedelta(seconds=max(0.0, delay))

        await self._cycle(plural, namespace, name, step)

    async def _cycle(self, plural: str, namespace: str, name: str, step: _Step) -> None:
        """Run one cycle under the object's lock; a failure, whatever raised, is retried with
        backoff by the requeue loop (and shown on the object when it keeps happening)."""
        key = f"{namespace}/{name}"
        seen = _Seen()
        lock = self.lock(key if plural == GOALS else f"{plural}:{key}")
        with logs.about(_KINDS[plural], namespace, name):  # its lines name it
            async with lock:
                started = time.perf_counter()
                try:
                    await step(namespace, name, seen)
                except Exception as error:
                    self.metrics.reconciled(plural, time.perf_counter() - started, error=True)
                    await self._failed(plural, key, seen.body, error)
                    return
                self.metrics.reconciled(plural, time.perf_counter() - started, error=False)
                self.backoff.succeeded(f"{plural}:{key}")

    async def _write(
        self, plural: str, body: Mapping[str, Any], result: Reconciled[Any]
    ) -> dict[str, Any] | None:
        """The status a reconcile asks for (if it changed), then its events (best effort); the
        object as written (None: nothing written, or it is gone)."""
        written = await self._write_status(plural, body, _patch(body, result.status))
        logs.log_transitions(body, result.events)  # once: events are made on transitions only
        if written is not None:  # None: unchanged, or gone
            self._record(plural, body, result)
        await self._post(body, result.events)
        return written

    def _record(self, plural: str, body: Mapping[str, Any], result: Reconciled[Any]) -> None:
        """The metrics of a status as written: a goal's wait or run that ended, its attempt, its
        heal Job's end; a Backlog's tasks."""
        if isinstance(result.status, GoalStatus):
            now = self.clock()
            self.metrics.goal_written(body, result.status, now)
            if result.attempt is not None:
                self.metrics.attempt_ended(result.attempt, now)
                self.metrics.usage_recorded(body, result.status)
            if result.heal is not None:
                self.metrics.heal_ended(result.heal)
        elif isinstance(result.status, BacklogStatus):
            metadata = body.get("metadata") or {}
            namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
            self.metrics.backlog_synced(namespace, name, result.status)

    def _record_budget(self, plural: str, body: Mapping[str, Any], result: Reconciled[Any]) -> None:
        """The budget metrics of a Backlog or GoalSchedule after each reconcile, whether its
        status changed or not (gauges: set again to the same value, they say the same)."""
        status = result.status
        if status is None and (body.get("spec") or {}).get("budget") is not None:
            status = read_status(_STATUS_MODELS[plural], body.get("status"))
        usage, budget = getattr(status, "usage", None), getattr(status, "budget", None)
        self.metrics.budget_seen(_KINDS[plural], body, usage, budget)

    async def _write_status(
        self, plural: str, body: Mapping[str, Any], patch: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        """A status patch computed from `body`, refused (409, retried) if the object changed
        since it was read: a status someone else wrote meanwhile is never overwritten."""
        if patch is None:
            return None
        metadata = body.get("metadata", {})
        return await self.cluster.patch_custom_status(
            plural,
            str(metadata.get("namespace")),
            str(metadata.get("name")),
            patch,
            resource_version=metadata.get("resourceVersion"),
        )

    async def _post(self, body: Mapping[str, Any], events: Sequence[Event]) -> None:
        """Post events after the status that records their transition; one the API will not
        take after a few tries (`KubeCluster.post_event`) is logged and lost, the status stays."""
        for event in events:
            try:
                await self.cluster.post_event(body, event.kind, event.reason, event.message)
            except Exception as error:
                metadata = body.get("metadata", {})
                message, _ = describe_failure(error)
                log.warning(
                    "event %s on %s/%s lost: %s",
                    event.reason,
                    metadata.get("namespace"),
                    metadata.get("name"),
                    message,
                )

    # -------------------------------------------------------------------------- failures

    async def _failed(
        self, plural: str, key: str, body: Mapping[str, Any] | None, error: Exception
    ) -> None:
        """Plan the next try of a failed cycle; log it (the traceback once per streak); show it
        on the object once it keeps failing, or at once when no retry can fix it."""
        count, delay = self.backoff.failed(f"{plural}:{key}")
        message, permanent = describe_failure(error)
        log.warning(
            "reconcile of %s %s failed (%d in a row), next try in %.1fs: %s",
            plural,
            key,
            count,
            delay,
            message,
            exc_info=error if count == 1 else None,
        )
        if body is not None and (permanent or count >= self.retry.report_after):
            await self._show_failure(plural, body, message, permanent=permanent)

    async def _show_failure(
        self, plural: str, body: Mapping[str, Any], message: str, *, permanent: bool
    ) -> None:
        """Ready=False (`ReconcileError`, the message) on the object, and one Warning event when
        it starts failing; best effort (the API may be what fails)."""
        metadata = body.get("metadata", {})
        status = read_status(_STATUS_MODELS[plural], body.get("status"))
        previous = getattr(status, "conditions", [])
        conditions = mark_failing(
            previous,
            message,
            permanent=permanent,
            generation=metadata.get("generation"),
            now=self.clock(),
        )
        started = reason_of(previous, READY) != RECONCILE_ERROR
        try:
            await self._write_status(
                plural, body, _patch(body, evolve(status, conditions=conditions))
            )
            if started:
                event = Event("Warning", RECONCILE_ERROR, message)
                logs.log_transitions(body, [event])
                await self.cluster.post_event(body, event.kind, event.reason, event.message)
        except Exception as error:
            log.info("could not show the failure on %s %s: %s", plural, metadata.get("name"), error)

    # ----------------------------------------------------------------------- requeue loop

    def start_requeuing(self) -> None:
        """Start the loop that runs what is due (times, retries, schedules, syncs)."""
        self._requeuer = asyncio.create_task(self._requeue_forever(), name="backlog-requeue")

    async def stop_requeuing(self) -> None:
        """Stop the requeue loop and the cycles it started (on operator exit)."""
        tasks = [task for task in (self._requeuer, *self._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._asked.stop()
        self._requeuer = None

    async def settled(self) -> None:
        """Return once the cycles asked for so far, and the tasks started so far, have ended."""
        await self._asked.drained()
        await asyncio.gather(*self._tasks)

    async def _requeue_forever(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(self.settings.requeue_seconds)
            rounds += 1
            try:
                await self.requeue_pass(
                    pods=rounds % PODS_EVERY == 0, audit=rounds % AUDIT_EVERY == 0
                )
            except Exception:  # nothing may stop the loop
                log.exception("a requeue pass failed")

    async def requeue_pass(self, *, pods: bool = False, audit: bool = False) -> None:
        """Run what is due: goals whose time came (a backoff's end, a Pod's grace) or whose
        failed cycle's backoff is over, queue positions that moved, running goals whose Job has
        a Pod (`pods`), the Jobs audited (`audit`, in the background); GoalSchedules and
        Backlogs that are due or whose failed cycle's backoff is over."""
        goals = self.goal_wake.due(self.clock()) + self._retries_due(GOALS)
        goals += self.capacity.stale_positions()
        if pods:
            goals += self.jobs.active_goals()
        if audit and (self._auditing is None or self._auditing.done()):
            self._auditing = self._start(self._audit_logged(), "backlog-audit")
        if len(self.pulls) and (self._following is None or self._following.done()):
            self._following = self._start(self._follow_logged(), "backlog-prs")
        self._admit_and_wake()  # backing-off goals whose time came may take free slots
        self._spawn(goals)
        now = self.clock()
        for plural, wakes, apply in (
            (SCHEDULES, self.schedule_wake, self.apply_schedule),
            (BACKLOGS, self.backlog_wake, self.apply_backlog),
        ):
            # A failing one comes back when its backoff says, not when its schedule does.
            due = {key for key in _due(wakes, now) if not self.backoff.failures(f"{plural}:{key}")}
            for key in sorted(due | set(self._retries_due(plural))):
                namespace, _, name = key.partition("/")
                await apply(namespace, name)

    # --------------------------------------------------------------- pull requests

    async def follow_pull_requests(self) -> None:
        """Look at the pull requests whose turn it is (a bounded number), one after the other;
        a token and a forge client serve every look at the same repository in this round."""
        items = self.pulls.take_due(time.monotonic())
        tokens: dict[tuple[str, ...], str | None] = {}
        forges: dict[tuple[str, str | None, str | None], Any] = {}
        try:
            for item in items:
                await self._look(item, tokens, forges)
        finally:
            for forge in forges.values():
                close = getattr(forge, "close", None)
                if callable(close):
                    await asyncio.to_thread(close)

    async def _look(
        self,
        item: Followed,
        tokens: dict[tuple[str, ...], str | None],
        forges: dict[tuple[str, str | None, str | None], Any],
    ) -> None:
        """One look at a goal's pull request; a change is written into the goal's status."""
        try:
            try:
                poll = await self._poll(item, tokens, forges)
            except ClassifiedError as error:
                if error.reason != "AuthenticationFailed" or item.secret is None:
                    raise
                # An installation token revoked or expired early: once more with a new one.
                await self._forge_token(item, tokens, fresh=True)
                poll = await self._poll(item, tokens, forges)
        except Exception as error:
            await self._look_failed(item, error)
            return
        seen = poll.state
        if seen is None or not news(item, seen):
            # A 304, or nothing the status shows, or a heal needs, changed (a comment changes
            # the ETag).
            self.pulls.looked(item.key, poll.etag, item.state, time.monotonic(), seen=seen)
            return

        async def write(namespace: str, name: str, read: _Seen) -> None:
            body = await self._goal_body(item.key)
            read.body = body
            if body is None or (body.get("metadata") or {}).get("uid") != item.uid:
                self.pulls.forget(item.key)  # gone, or another goal of that name
                return
            status = read_status(GoalStatus, body.get("status"))
            new, events = pull_request_seen(status, seen, self.clock())
            healing = await self.goals.heals.after_look(body, new or status, seen)
            if healing.status is not None:  # a heal Job started, or none left
                new, events = healing.status, [*events, *healing.events]
            if new is not None:
                await self._write_seen(body, new, events, heal=healing.heal)
            if healing.status is not None:
                # A heal Job adopted (its start's write was lost) may have ended already: no
                # event of it would come. The goal's reconcile reads it now.
                self._spawn([item.key])
            self.pulls.looked(item.key, poll.etag, seen.state, time.monotonic(), seen=seen)
            self._follow(item.key, body, new or status)

        await self._cycle(GOALS, item.namespace, item.name, write)

    async def _write_seen(
        self,
        body: Mapping[str, Any],
        new: GoalStatus,
        events: Sequence[Event],
        *,
        heal: str | None = None,
    ) -> None:
        """Write what was seen of a goal's pull request (and the end of a heal Job that could
        not be made); its capacity entry follows (a goal whose pull request was closed without
        merging did not complete its task)."""
        written = await self._write(GOALS, body, Reconciled(new, list(events), heal=heal))
        key = object_key(body)
        if written is not None:
            self.bodies.offer(written)
            self.bodies.shed(key)
        with contextlib.suppress(ValueError):
            self.capacity.put(entry_for(Goal.model_validate(body), new))

    async def _poll(
        self,
        item: Followed,
        tokens: dict[tuple[str, ...], str | None],
        forges: dict[tuple[str, str | None, str | None], Any],
    ) -> Any:
        token = await self._forge_token(item, tokens)
        key = (item.repository, item.api_base_url, token)
        if key not in forges:  # made in a thread: its first use imports PyGithub
            forges[key] = await asyncio.to_thread(
                self.forge_factory, item.repository, token, item.api_base_url
            )
        return await asyncio.to_thread(forges[key].pull_request_state, item.number, item.etag)

    async def _forge_token(
        self, item: Followed, tokens: dict[tuple[str, ...], str | None], *, fresh: bool = False
    ) -> str | None:
        """The token of the goal's credentials Secret, or an installation token of its GitHub
        App for the goal's repository (read once per round, Secret and repository)."""
        if item.secret is None:
            return None
        key = (item.namespace, *item.secret, item.repository, item.api_base_url or "")
        if fresh or key not in tokens:
            ref = SecretKeyReference(name=item.secret[0], key=item.secret[1])
            tokens[key] = await self.credentials.token(
                item.namespace, ref, item.repository, item.api_base_url, fresh=fresh
            )
        return tokens[key]

    async def _look_failed(self, item: Followed, error: Exception) -> None:
        """A look that failed: tried again later (after the forge's wait for a rate limit);
        one no retry fixes shows on the goal (Merged=Unknown) at the first of a streak."""
        message, permanent = describe_failure(error)
        if isinstance(error, ClassifiedError):
            message, permanent = str(error), not error.retryable
        waited = getattr(error, "retry_after_seconds", None)
        first = item.failures == 0
        self.pulls.failed(item.key, time.monotonic(), float(waited) if waited else None)
        log.log(
            logging.WARNING if first else logging.INFO,
            "looking at pull request #%d of goal %s failed: %s",
            item.number,
            item.key,
            message,
        )
        if not (permanent and first):
            return

        async def show(namespace: str, name: str, read: _Seen) -> None:
            body = await self._goal_body(item.key)
            read.body = body
            status = read_status(GoalStatus, (body or {}).get("status"))
            new = unreadable(status, message, self.clock()) if body is not None else None
            if body is not None and new is not None:
                await self._write_seen(body, new, [])
                self.pulls.shown_unreadable(item.key)

        await self._cycle(GOALS, item.namespace, item.name, show)

    async def _follow_logged(self) -> None:
        while True:
            self._follow_again = False
            try:
                await self.follow_pull_requests()
            except Exception as error:  # the next round tries again
                message, _ = describe_failure(error)
                log.warning("following pull requests failed: %s", message)
            if not self._follow_again:
                return

    def _follow_now(self) -> None:
        """A round of pull request looks now (or another one as soon as the running one ends),
        not at the loop's next round."""
        if self._following is None or self._following.done():
            self._following = self._start(self._follow_logged(), "backlog-prs")
        else:
            self._follow_again = True

    # ---------------------------------------------------------------------- webhooks

    def request_sync(self, namespace: str, name: str) -> None:
        """Sync the Backlog now (a webhook's push to its base branch): one sync however many
        pushes arrive before it starts."""
        key = f"{namespace}/{name}"
        if key in self._sync_asked:
            return
        self._sync_asked.add(key)

        async def sync() -> None:
            self._sync_asked.discard(key)  # from now on, a push means another sync
            await self.apply_backlog(namespace, name)

        self._start(sync(), f"backlog-sync {key}")

    def recheck_pull_request(
        self, namespace: str, backlog_uid: str, repository: str, number: int, *, reopened: bool
    ) -> None:
        """The goals in `namespace` that follow pull request `number` of `repository` look at
        it now (a webhook said it was closed, merged or reopened). When none follows it (one
        closed, now reopened; or a goal whose status is being written as the webhook comes),
        the Backlog's goals with that pull request are read, followed and looked at now."""
        now = time.monotonic()
        if self.pulls.hurry(namespace, repository, number, now) and not reopened:
            self._follow_now()
            return

        async def refollow() -> None:
            selector = f"{LABEL_BACKLOG_UID}={backlog_uid}"
            try:
                goals = await self.cluster.list_goals(namespace, selector)
            except Exception as error:  # the poll sees it, later
                log.warning("listing goals for a pull request's webhook failed: %s", error)
                return
            for body in goals:
                with contextlib.suppress(ValueError):
                    goal = Goal.model_validate(body)
                    wanted = to_follow(goal, goal.status or GoalStatus())
                    if wanted is not None and wanted.is_pull_request(repository, number):
                        self.pulls.track(wanted, wanted.key, now)
            if self.pulls.hurry(namespace, repository, number, now):
                self._follow_now()

        self._start(refollow(), f"backlog-pull-request {namespace}")

    async def audit(self) -> None:
        """The worker Jobs as the API has them now, from one listing read page by page (not a
        read per goal): a Job that changed, or is gone, without the watch saying so (no event
        comes of a Job deleted while the watch was away) starts its goal's cycle, as does a
        running goal with no Job known."""
        listed: set[str] = set()
        goals: list[str] = []
        selector = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
        for namespace in self.settings.namespaces or [None]:  # type: ignore[list-item]
            async for page in self.cluster.job_pages(namespace, selector):
                for job in page:
                    listed.add(object_key(job))
                    goal = goal_of(job)
                    known = goal is not None and self.capacity.get(goal) is not None
                    if known and self.jobs.offer(None, job):
                        goals.append(str(goal))
        for key, goal in self.jobs.missing(listed):
            self.jobs.forget(key)  # its goal's cycle reads it: found (made meanwhile) or not
            if goal is not None and self.capacity.get(goal) is not None:
                goals.append(goal)
        with_jobs = self.jobs.goals()
        goals += [entry.key for entry in self.capacity.running() if entry.key not in with_jobs]
        self._spawn(goals)

    async def _audit_logged(self) -> None:
        try:
            await self.audit()
        except Exception as error:  # the next audit tries again
            message, _ = describe_failure(error)
            log.warning("auditing the worker Jobs failed: %s", message)

    def _retries_due(self, plural: str) -> list[str]:
        return [
            key for key in self.backoff.failing(plural) if self.backoff.ready(f"{plural}:{key}")
        ]

    # -------------------------------------------------------------------------- deletion

    async def stop_attempt(self, namespace: str, name: str, uid: str) -> None:
        """A deleted goal: stop its Jobs (foreground), touch nothing in the repository, and
        forget it (its slot goes to the next goal).

        Its Jobs are deleted by name, as the watch (or the create's answer) made them known: no
        listing per goal. A goal held as running with no Job known (a create whose answer was
        lost) has its Jobs listed by label. Should the API fail here, the Jobs are left to the
        garbage collector (their ownerReference names the goal), which deletes them.
        """
        key = f"{namespace}/{name}"
        async with self.lock(key):
            entry = self.capacity.get(key)
            self._forget_goal(key)
            jobs = self.jobs.of_goal(uid)
            try:
                if not jobs and entry is not None and entry.phase is Phase.RUNNING:
                    selector = f"{LABEL_GOAL_UID}={uid}"
                    names = await self.cluster.job_names(namespace, selector)
                    jobs = [f"{namespace}/{name}" for name in names]
                for job in jobs:
                    await self.cluster.delete_job(namespace, job.partition("/")[2])
            except Exception as error:
                message, _ = describe_failure(error)
                with logs.about("Goal", namespace, name):
                    log.warning("stopping the Jobs of the deleted goal failed: %s", message)
            self.jobs.forget_goal(uid)
            self.goals.forget(job.partition("/")[2] for job in jobs)
        self._admit_and_wake()

    def _forget_goal(self, key: str) -> None:
        """Everything kept about a goal, but its Jobs."""
        self.capacity.remove(key)
        self.metrics.forget_goal(key)
        self.pulls.forget(key)
        self.backoff.forget(f"{GOALS}:{key}")
        self.bodies.forget(key)
        self.goal_wake.plan(key, None)

    def forget_backlog(self, key: str, uid: str | None = None) -> None:
        """A deleted Backlog: no more syncs of it, nothing kept of what it read."""
        if uid:
            self.backlogs.forget(uid)
            self.webhooks.routes.forget(uid)
        self.backlog_wake.pop(key, None)
        self.backlog_seen.pop(key, None)
        self.backoff.forget(f"{BACKLOGS}:{key}")
        namespace, _, name = key.partition("/")
        self.metrics.forget_backlog(namespace, name)

    def forget_schedule(self, key: str) -> None:
        """A deleted GoalSchedule: no more ticks of it."""
        self.schedule_wake.pop(key, None)
        self.backoff.forget(f"{SCHEDULES}:{key}")
        namespace, _, name = key.partition("/")
        self.metrics.forget_budget(namespace, "GoalSchedule", name)


def _due(wakes: Mapping[str, datetime], now: datetime) -> list[str]:
    return [key for key, wake in wakes.items() if wake <= now]


def _patch(body: Mapping[str, Any], status: ApiModel | None) -> dict[str, Any] | None:
    """The status write a reconcile asks for, against the status it read (None: no write)."""
    if status is None:
        return None
    return status_patch(body.get("status"), status)
