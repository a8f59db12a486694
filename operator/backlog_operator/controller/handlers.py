"""Thin kopf handlers: find the goal, call the reconciler, apply what it decided.

Only event handlers are used (no on.create/on.update/on.delete, no kopf timers), so kopf keeps
no "last-handled configuration" annotation and puts no finalizer on Goals: the operator writes
nothing but `status`, GitOps tools see no drift, and deleting a Goal never hangs on a stopped
operator. A deleted Goal's running Job is deleted (foreground) when the DELETED event arrives;
its ownerReference lets the garbage collector do the same should the operator be down.
Waiting goals are looked at again by one requeue loop (not a kopf timer per goal, which would
need a finalizer and a task per goal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import kopf
from kubernetes import client as k8s

from backlog_operator.adapters.backlog_source import BacklogSource
from backlog_operator.adapters.kube import KubeCluster
from backlog_operator.api.common import GROUP, VERSION
from backlog_operator.api.goal import Goal
from backlog_operator.controller import jobs
from backlog_operator.controller.backlog_reconciler import (
    CLEAR_FAILURES_ANNOTATION,
    LABEL_BACKLOG,
    SYNC_ANNOTATION,
    BacklogReconciler,
    ForgeFactory,
    github_forge,
)
from backlog_operator.controller.reconciler import GoalReconciler, Reconciled, entry_for
from backlog_operator.controller.registry import Registry
from backlog_operator.controller.schedule_reconciler import LABEL_SCHEDULE, GoalScheduleReconciler
from backlog_operator.controller.settings import OperatorSettings

log = logging.getLogger("backlog_operator.controller")

_REQUEUE_CONCURRENCY = 16
_FULL_PASS_EVERY = 12


class _Reconciler(Protocol):
    async def reconcile(self, body: Mapping[str, Any]) -> Reconciled: ...


class Runtime:
    """What the handlers share: the cluster adapter, the reconciler and per-goal locks."""

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
        self.registry = Registry()
        self.reconciler = GoalReconciler(cluster, self.registry, settings, clock=self.clock)
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
        """One reconcile at a time per goal, whoever asks (its events, its Jobs, the requeue)."""
        return self._locks.setdefault(key, asyncio.Lock())

    async def seed(self, namespaces: list[str]) -> None:
        """Learn every goal's phase before the first decision (capacity after a restart)."""
        for namespace in namespaces or [None]:  # type: ignore[list-item]
            for body in await self.cluster.list_goals(namespace):
                try:
                    goal = Goal.model_validate(body)
                except ValueError:
                    continue
                self.registry.put(entry_for(goal, body.get("status") or {}))

    async def apply(self, namespace: str, name: str) -> None:
        """Reconcile one goal from a fresh read, and write its status and events."""
        key = f"{namespace}/{name}"
        async with self.lock(key):
            body = await self.cluster.get_goal(namespace, name)
            if body is None or body.get("metadata", {}).get("deletionTimestamp"):
                return
            result = await self.reconciler.reconcile(body)
            if result.status is not None:
                await self.cluster.patch_goal_status(namespace, name, result.status)
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
            keys = self.registry.active_keys(include_running=passes % _FULL_PASS_EVERY == 0)
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
            "goalschedules", namespace, name, self.schedules, self.schedule_wake, 3600.0
        )

    async def apply_backlog(self, namespace: str, name: str) -> None:
        """Sync one Backlog from a fresh read; remember when to sync again."""
        await self._apply_owner(
            "backlogs", namespace, name, self.backlogs, self.backlog_wake, 300.0
        )

    async def _apply_owner(
        self,
        plural: str,
        namespace: str,
        name: str,
        reconciler: _Reconciler,
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
            if result.status is not None:
                await self.cluster.patch_custom_status(plural, namespace, name, result.status)
            for event in result.events:
                await self.cluster.post_event(body, event.kind, event.reason, event.message)
            delay = result.requeue_after if result.requeue_after is not None else default_delay
            wakes[key] = started + timedelta(seconds=max(0.0, delay))

    async def stop_attempt(self, body: Mapping[str, Any]) -> None:
        """A deleted goal: stop its unfinished Job (foreground), touch nothing in the repository."""
        metadata = body.get("metadata", {})
        key = f"{metadata.get('namespace')}/{metadata.get('name')}"
        async with self.lock(key):
            self.registry.remove(key)
            # By label, not status.jobName: the last status seen may predate the newest Job.
            selector = f"{jobs.LABEL_GOAL_UID}={metadata.get('uid')}"
            for name in await self.cluster.job_names(str(metadata.get("namespace")), selector):
                await self.cluster.delete_job(str(metadata.get("namespace")), name)
        self._locks.pop(key, None)


def build_registry(
    settings: OperatorSettings,
    api_client_factory: Callable[[], k8s.ApiClient],
    *,
    login: bool = True,
    clock: Callable[[], datetime] | None = None,
    forge_factory: ForgeFactory = github_forge,
) -> kopf.OperatorRegistry:
    """A kopf registry with the operator's handlers (a fresh one each, so tests can run many)."""
    registry = kopf.OperatorRegistry()
    runtime: dict[str, Runtime] = {}

    if login:

        @kopf.on.login(registry=registry)
        def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
            return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # our own events, on transitions only
        settings.peering.name = "backlog-operator"
        settings.peering.mandatory = False
        settings.watching.server_timeout = 300
        runtime["current"] = Runtime(
            KubeCluster(api_client_factory()), operator_settings, clock, forge_factory
        )
        await runtime["current"].seed(operator_settings.namespaces)
        runtime["current"].start_requeuing()

    @kopf.on.cleanup(registry=registry)
    async def _cleanup(**_: Any) -> None:
        if "current" in runtime:
            await runtime["current"].stop_requeuing()

    operator_settings = settings

    @kopf.on.event(GROUP, VERSION, "goals", registry=registry)
    async def _goal_event(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        if event.get("type") == "DELETED":
            await runtime["current"].stop_attempt(body)
            return
        await runtime["current"].apply(str(body.metadata.namespace), str(body.metadata.name))
        schedule = body.metadata.labels.get(LABEL_SCHEDULE)
        if schedule:  # its schedule's active list and history follow the goal's phase
            await runtime["current"].apply_schedule(str(body.metadata.namespace), schedule)
        backlog = body.metadata.labels.get(LABEL_BACKLOG)
        if backlog and _phase_of(body) in ("Succeeded", "Failed", "Skipped"):
            # A finished goal frees a slot: the Backlog may start its next task now.
            await runtime["current"].apply_backlog(str(body.metadata.namespace), backlog)

    @kopf.on.event(GROUP, VERSION, "backlogs", registry=registry)
    async def _backlog_event(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        if event.get("type") == "DELETED":
            runtime["current"].backlog_wake.pop(key, None)
            runtime["current"].backlog_seen.pop(key, None)
            return
        # Each sync writes its status (lastSyncTime): act on what a person changed only (the
        # spec, or a sync/clear request), not on our own writes; the interval does the rest.
        annotations = body.metadata.annotations
        seen = (
            body.metadata.get("generation"),
            annotations.get(SYNC_ANNOTATION),
            annotations.get(CLEAR_FAILURES_ANNOTATION),
        )
        if runtime["current"].backlog_seen.get(key) == seen:
            return
        runtime["current"].backlog_seen[key] = seen
        await runtime["current"].apply_backlog(
            str(body.metadata.namespace), str(body.metadata.name)
        )

    @kopf.on.event(GROUP, VERSION, "goalschedules", registry=registry)
    async def _schedule_event(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        if event.get("type") == "DELETED":
            runtime["current"].schedule_wake.pop(key, None)
            return
        await runtime["current"].apply_schedule(
            str(body.metadata.namespace), str(body.metadata.name)
        )

    @kopf.on.event(
        "batch", "v1", "jobs", labels={jobs.LABEL_MANAGED_BY: jobs.MANAGED_BY}, registry=registry
    )
    async def _job_event(body: kopf.Body, **_: Any) -> None:
        for owner in body.metadata.get("ownerReferences") or []:
            if owner.get("kind") == "Goal" and str(owner.get("apiVersion", "")).startswith(GROUP):
                await runtime["current"].apply(str(body.metadata.namespace), str(owner.get("name")))

    return registry


def _phase_of(body: Mapping[str, Any]) -> str:
    return str((body.get("status") or {}).get("phase") or "")
