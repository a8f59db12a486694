"""The operator's runtime under kopf: one per operator, kept in kopf's `memo`.

It holds the cluster adapter, the reconcilers and the capacity table, and runs the cycles the
handlers ask for: read the object afresh under its lock, reconcile, write the status (through
`status.status_patch`, the one writer) and post the events. Waiting goals, GoalSchedules and
Backlogs are looked at again by one requeue loop (not a kopf timer per object, which would need
a finalizer and a task per object).

kopf does not retry event handlers, so the runtime does: a cycle that raises, whatever raised,
is tried again by the requeue loop after a per-object exponential backoff with equal jitter
(`RetryPolicy`: 1 s doubling to 5 min), on real time, reset by the next success; meanwhile the
object is not looked at on every tick. A failure that keeps happening (or one no retry can fix)
shows on the object: Ready=False with reason `ReconcileError`, one Warning event when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from backlog_operator.adapters.backlog_source import BacklogSource
from backlog_operator.adapters.kube import KubeCluster, describe_failure
from backlog_operator.api.backlog import BacklogStatus
from backlog_operator.api.common import ApiModel
from backlog_operator.api.goal import Goal, GoalStatus, Phase
from backlog_operator.api.labels import (
    LABEL_ATTEMPT,
    LABEL_GOAL_UID,
    LABEL_MANAGED_BY,
    LABEL_RUN,
    MANAGED_BY,
)
from backlog_operator.api.schedule import GoalScheduleStatus
from backlog_operator.controller.backlogs.reconciler import (
    BacklogReconciler,
    ForgeFactory,
    github_forge,
)
from backlog_operator.controller.conditions import READY, RECONCILE_ERROR, mark_failing, reason_of
from backlog_operator.controller.goals.capacity import WAITING, CapacityTable, entry_for
from backlog_operator.controller.goals.outcome import job_finished
from backlog_operator.controller.goals.reconciler import GoalReconciler
from backlog_operator.controller.goals.retry import jittered_backoff
from backlog_operator.controller.results import Event, Reconciled
from backlog_operator.controller.schedules.reconciler import GoalScheduleReconciler
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.status import evolve, read_status, status_patch

log = logging.getLogger("backlog_operator.controller")

_REQUEUE_CONCURRENCY = 16
_FULL_PASS_EVERY = 12
# When a GoalSchedule or a Backlog is looked at again if its reconciler does not say.
_SCHEDULE_DELAY = 3600.0
_BACKLOG_DELAY = 300.0

GOALS, BACKLOGS, SCHEDULES = "goals", "backlogs", "goalschedules"
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
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self.retry = retry or RetryPolicy()
        self.backoff = Backoff(self.retry)
        self.capacity = CapacityTable()
        self.goals = GoalReconciler(cluster, self.capacity, settings, clock=self.clock)
        self.schedules = GoalScheduleReconciler(cluster, clock=self.clock)
        self.backlogs = BacklogReconciler(
            cluster,
            BacklogSource(Path(settings.cache_dir)),
            forge_factory=forge_factory,
            clock=self.clock,
        )
        # namespace/name -> the next time to look at that GoalSchedule or Backlog
        self.schedule_wake: dict[str, datetime] = {}
        self.backlog_wake: dict[str, datetime] = {}
        self.backlog_seen: dict[str, tuple[object, ...]] = {}  # what the last sync answered
        self._locks: dict[str, asyncio.Lock] = {}
        self._requeuer: asyncio.Task[None] | None = None

    def lock(self, key: str) -> asyncio.Lock:
        """One reconcile at a time per object, whoever asks (its events, its Jobs, the requeue)."""
        return self._locks.setdefault(key, asyncio.Lock())

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
        goal of its task or repository is admitted."""
        for namespace in namespaces or [None]:  # type: ignore[list-item]
            goals = await self.cluster.list_goals(namespace)
            jobs = await self.cluster.list_jobs(namespace, f"{LABEL_MANAGED_BY}={MANAGED_BY}")
            running: set[str | None] = set()  # goal uids
            made: set[tuple[str | None, ...]] = set()  # (goal uid, run, attempt)
            for job in jobs:
                labels = (job.get("metadata") or {}).get("labels") or {}
                made.add(
                    (labels.get(LABEL_GOAL_UID), labels.get(LABEL_RUN), labels.get(LABEL_ATTEMPT))
                )
                if job_finished(job) is None:
                    running.add(labels.get(LABEL_GOAL_UID))
            for body in goals:
                try:
                    goal = Goal.model_validate(body)
                except ValueError:
                    continue
                status = goal.status or GoalStatus()
                entry = entry_for(goal, status)
                uid = goal.metadata.uid
                unrecorded = (uid, str(status.run or 1), str(status.attempts + 1)) in made
                if entry.phase in WAITING and (uid in running or unrecorded):
                    entry = replace(entry, phase=Phase.RUNNING)
                self.capacity.put(entry)

    # -------------------------------------------------------------------------- cycles

    async def apply(self, namespace: str, name: str) -> None:
        """Reconcile one goal from a fresh read, and write its status and events."""
        await self._cycle(GOALS, namespace, name, self._apply_goal)

    async def _apply_goal(self, namespace: str, name: str, seen: _Seen) -> None:
        body = await self.cluster.get_goal(namespace, name)
        seen.body = body
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return
        result = await self.goals.reconcile(body)
        await self._write(GOALS, body, result)

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
            delay = result.requeue_after if result.requeue_after is not None else default_delay
            wakes[key] = started + timedelta(seconds=max(0.0, delay))

        await self._cycle(plural, namespace, name, step)

    async def _cycle(self, plural: str, namespace: str, name: str, step: _Step) -> None:
        """Run one cycle under the object's lock; a failure, whatever raised, is retried with
        backoff by the requeue loop (and shown on the object when it keeps happening)."""
        key = f"{namespace}/{name}"
        seen = _Seen()
        async with self.lock(key if plural == GOALS else f"{plural}:{key}"):
            try:
                await step(namespace, name, seen)
            except Exception as error:
                await self._failed(plural, key, seen.body, error)
                return
            self.backoff.succeeded(f"{plural}:{key}")

    async def _write(self, plural: str, body: Mapping[str, Any], result: Reconciled[Any]) -> None:
        """The status a reconcile asks for (if it changed), then its events (best effort)."""
        await self._write_status(plural, body, _patch(body, result.status))
        await self._post(body, result.events)

    async def _write_status(
        self, plural: str, body: Mapping[str, Any], patch: Mapping[str, Any] | None
    ) -> None:
        """A status patch computed from `body`, refused (409, retried) if the object changed
        since it was read: a status someone else wrote meanwhile is never overwritten."""
        if patch is None:
            return
        metadata = body.get("metadata", {})
        await self.cluster.patch_custom_status(
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
                await self.cluster.post_event(body, "Warning", RECONCILE_ERROR, message)
        except Exception as error:
            log.info("could not show the failure on %s %s: %s", plural, metadata.get("name"), error)

    # ----------------------------------------------------------------------- requeue loop

    def start_requeuing(self) -> None:
        """Start the loop that looks again at waiting goals (capacity, backoff, suspend)."""
        self._requeuer = asyncio.create_task(self._requeue_forever(), name="backlog-requeue")

    async def stop_requeuing(self) -> None:
        """Stop the requeue loop (on operator exit)."""
        if self._requeuer is not None:
            self._requeuer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._requeuer
            self._requeuer = None

    async def _requeue_forever(self) -> None:
        passes = 0
        while True:
            await asyncio.sleep(self.settings.requeue_seconds)
            passes += 1
            try:
                await self.requeue_pass(full=passes % _FULL_PASS_EVERY == 0)
            except Exception:  # nothing may stop the loop
                log.exception("a requeue pass failed")

    async def requeue_pass(self, *, full: bool = False) -> None:
        """Look again at what waits: waiting goals (running ones too on a `full` pass), failed
        objects of every kind whose backoff is over, GoalSchedules and Backlogs that are due."""
        # Running goals hear from their Jobs' events; a slow full pass covers missed ones.
        waiting = self.capacity.active_keys(include_running=full)
        goals = [key for key in waiting if not self.backoff.failures(f"{GOALS}:{key}")]
        goals += [key for key in self._retries_due(GOALS) if key not in goals]
        await self._apply_many(goals)
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

    def _retries_due(self, plural: str) -> list[str]:
        return [
            key for key in self.backoff.failing(plural) if self.backoff.ready(f"{plural}:{key}")
        ]

    async def _apply_many(self, keys: list[str]) -> None:
        limit = asyncio.Semaphore(_REQUEUE_CONCURRENCY)

        async def one(key: str) -> None:
            namespace, _, name = key.partition("/")
            async with limit:
                await self.apply(namespace, name)

        await asyncio.gather(*(one(key) for key in keys))

    # -------------------------------------------------------------------------- deletion

    async def stop_attempt(self, body: Mapping[str, Any]) -> None:
        """A deleted goal: stop its unfinished Job (foreground), touch nothing in the repository.

        Should the API fail here, the Job is left to the garbage collector (its ownerReference
        names the goal), which deletes it in the background.
        """
        metadata = body.get("metadata", {})
        namespace = str(metadata.get("namespace"))
        key = f"{namespace}/{metadata.get('name')}"
        async with self.lock(key):
            self.capacity.remove(key)
            self.backoff.forget(f"{GOALS}:{key}")
            # By label, not status.jobName: the last status seen may predate the newest Job.
            selector = f"{LABEL_GOAL_UID}={metadata.get('uid')}"
            try:
                for name in await self.cluster.job_names(namespace, selector):
                    await self.cluster.delete_job(namespace, name)
            except Exception as error:
                message, _ = describe_failure(error)
                log.warning("stopping the Jobs of deleted goal %s failed: %s", key, message)
        self._locks.pop(key, None)

    def forget_backlog(self, key: str) -> None:
        """A deleted Backlog: no more syncs of it."""
        self.backlog_wake.pop(key, None)
        self.backlog_seen.pop(key, None)
        self.backoff.forget(f"{BACKLOGS}:{key}")

    def forget_schedule(self, key: str) -> None:
        """A deleted GoalSchedule: no more ticks of it."""
        self.schedule_wake.pop(key, None)
        self.backoff.forget(f"{SCHEDULES}:{key}")


def _due(wakes: Mapping[str, datetime], now: datetime) -> list[str]:
    return [key for key, wake in wakes.items() if wake <= now]


def _patch(body: Mapping[str, Any], status: ApiModel | None) -> dict[str, Any] | None:
    """The status write a reconcile asks for, against the status it read (None: no write)."""
    if status is None:
        return None
    return status_patch(body.get("status"), status)
