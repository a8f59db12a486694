"""The operator's runtime under kopf: one per operator, kept in kopf's `memo`.

It holds the cluster adapter, the reconcilers and the capacity table, and runs the cycles the
handlers ask for: read the object afresh under its lock, reconcile, write the status (through
`status.status_patch`, the one writer) and post the events. Waiting goals, GoalSchedules and
Backlogs are looked at again by one requeue loop (not a kopf timer per object, which would need
a finalizer and a task per object).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from backlog_operator.adapters.backlog_source import BacklogSource
from backlog_operator.adapters.kube import KubeCluster
from backlog_operator.api.common import ApiModel
from backlog_operator.api.goal import Goal, GoalStatus
from backlog_operator.api.labels import LABEL_GOAL_UID
from backlog_operator.controller.backlogs.reconciler import (
    BacklogReconciler,
    ForgeFactory,
    github_forge,
)
from backlog_operator.controller.goals.capacity import CapacityTable, entry_for
from backlog_operator.controller.goals.reconciler import GoalReconciler
from backlog_operator.controller.results import Reconciled
from backlog_operator.controller.schedules.reconciler import GoalScheduleReconciler
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.status import status_patch

log = logging.getLogger("backlog_operator.controller")

_REQUEUE_CONCURRENCY = 16
_FULL_PASS_EVERY = 12
# When a GoalSchedule or a Backlog is looked at again if its reconciler does not say.
_SCHEDULE_DELAY = 3600.0
_BACKLOG_DELAY = 300.0


class _OwnerReconciler(Protocol):
    async def reconcile(self, body: Mapping[str, Any]) -> Reconciled[Any]: ...


class Runtime:
    """What the handlers share: the cluster adapter, the reconcilers and per-object locks."""

    def __init__(
        self,
        cluster: KubeCluster,
        settings: OperatorSettings,
        clock: Callable[[], datetime] | None = None,
        forge_factory: ForgeFactory = github_forge,
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
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

    async def seed(self, namespaces: list[str]) -> None:
        """Learn every goal's phase before the first decision (capacity after a restart)."""
        for namespace in namespaces or [None]:  # type: ignore[list-item]
            for body in await self.cluster.list_goals(namespace):
                try:
                    goal = Goal.model_validate(body)
                except ValueError:
                    continue
                self.capacity.put(entry_for(goal, goal.status or GoalStatus()))

    async def apply(self, namespace: str, name: str) -> None:
        """Reconcile one goal from a fresh read, and write its status and events."""
        key = f"{namespace}/{name}"
        async with self.lock(key):
            body = await self.cluster.get_goal(namespace, name)
            if body is None or body.get("metadata", {}).get("deletionTimestamp"):
                return
            result = await self.goals.reconcile(body)
            patch = _patch(body, result.status)
            if patch is not None:
                await self.cluster.patch_goal_status(namespace, name, patch)
            for event in result.events:
                await self.cluster.post_event(body, event.kind, event.reason, event.message)

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
            # Running goals hear from their Jobs' events; a slow full pass covers missed ones.
            keys = self.capacity.active_keys(include_running=passes % _FULL_PASS_EVERY == 0)
            await self._apply_many(keys)
            now = self.clock()
            for wakes, apply in (
                (self.schedule_wake, self.apply_schedule),
                (self.backlog_wake, self.apply_backlog),
            ):
                for key, wake in list(wakes.items()):
                    if wake > now:
                        continue
                    namespace, _, name = key.partition("/")
                    try:
                        await apply(namespace, name)
                    except Exception:  # one object's trouble must not stop the loop
                        log.exception("requeued reconcile of %s failed", key)

    async def _apply_many(self, keys: list[str]) -> None:
        limit = asyncio.Semaphore(_REQUEUE_CONCURRENCY)

        async def one(key: str) -> None:
            namespace, _, name = key.partition("/")
            async with limit:
                try:
                    await self.apply(namespace, name)
                except Exception:  # one goal's trouble must not stop the loop
                    log.exception("requeued reconcile of %s failed", key)

        await asyncio.gather(*(one(key) for key in keys))

    async def apply_schedule(self, namespace: str, name: str) -> None:
        """Reconcile one GoalSchedule from a fresh read; remember when to look again."""
        await self._apply_owner(
            "goalschedules", namespace, name, self.schedules, self.schedule_wake, _SCHEDULE_DELAY
        )

    async def apply_backlog(self, namespace: str, name: str) -> None:
        """Sync one Backlog from a fresh read; remember when to sync again."""
        await self._apply_owner(
            "backlogs", namespace, name, self.backlogs, self.backlog_wake, _BACKLOG_DELAY
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
        async with self.lock(f"{plural}:{key}"):
            started = self.clock()  # the next look is due relative to this one's start
            body = await self.cluster.get_custom(plural, namespace, name)
            if body is None or body.get("metadata", {}).get("deletionTimestamp"):
                wakes.pop(key, None)
                return
            result = await reconciler.reconcile(body)
            patch = _patch(body, result.status)
            if patch is not None:
                await self.cluster.patch_custom_status(plural, namespace, name, patch)
            for event in result.events:
                await self.cluster.post_event(body, event.kind, event.reason, event.message)
            delay = result.requeue_after if result.requeue_after is not None else default_delay
            wakes[key] = started + timedelta(seconds=max(0.0, delay))

    async def stop_attempt(self, body: Mapping[str, Any]) -> None:
        """A deleted goal: stop its unfinished Job (foreground), touch nothing in the repository."""
        metadata = body.get("metadata", {})
        key = f"{metadata.get('namespace')}/{metadata.get('name')}"
        async with self.lock(key):
            self.capacity.remove(key)
            # By label, not status.jobName: the last status seen may predate the newest Job.
            selector = f"{LABEL_GOAL_UID}={metadata.get('uid')}"
            for name in await self.cluster.job_names(str(metadata.get("namespace")), selector):
                await self.cluster.delete_job(str(metadata.get("namespace")), name)
        self._locks.pop(key, None)

    def forget_backlog(self, key: str) -> None:
        """A deleted Backlog: no more syncs of it."""
        self.backlog_wake.pop(key, None)
        self.backlog_seen.pop(key, None)

    def forget_schedule(self, key: str) -> None:
        """A deleted GoalSchedule: no more ticks of it."""
        self.schedule_wake.pop(key, None)


def _patch(body: Mapping[str, Any], status: ApiModel | None) -> dict[str, Any] | None:
    """The status write a reconcile asks for, against the status it read (None: no write)."""
    if status is None:
        return None
    return status_patch(body.get("status"), status)
