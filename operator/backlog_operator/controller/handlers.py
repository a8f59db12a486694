"""Thin kopf handlers: find the goal, call the reconciler, apply what it decided.

Only event handlers, timers and a delete handler are used (no on.create/on.update), so kopf
keeps no "last-handled configuration" annotation on Goals: GitOps tools see no drift, and the
operator writes nothing but `status` (and kopf's finalizer, for the delete handler).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf
from kubernetes import client as k8s

from backlog_operator.adapters.kube import KubeCluster
from backlog_operator.api.common import GROUP, VERSION
from backlog_operator.api.goal import Goal
from backlog_operator.controller import jobs
from backlog_operator.controller.reconciler import GoalReconciler, entry_for
from backlog_operator.controller.registry import Registry
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.status import ACTIVE_PHASES

log = logging.getLogger("backlog_operator.controller")


class Runtime:
    """What the handlers share: the cluster adapter, the reconciler and per-goal locks."""

    def __init__(self, cluster: KubeCluster, settings: OperatorSettings) -> None:
        self.cluster = cluster
        self.settings = settings
        self.registry = Registry()
        self.reconciler = GoalReconciler(cluster, self.registry, settings)
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, key: str) -> asyncio.Lock:
        """One reconcile at a time per goal, whichever handler asks (goal, timer or Job)."""
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

    async def stop_attempt(self, body: Mapping[str, Any]) -> None:
        """A deleted goal: stop its running Job (foreground), touch nothing in the repository."""
        metadata = body.get("metadata", {})
        key = f"{metadata.get('namespace')}/{metadata.get('name')}"
        async with self.lock(key):
            self.registry.remove(key)
            job_name = (body.get("status") or {}).get("jobName")
            if job_name:
                await self.cluster.delete_job(str(metadata.get("namespace")), str(job_name))
        self._locks.pop(key, None)


def build_registry(
    settings: OperatorSettings,
    api_client_factory: Callable[[], k8s.ApiClient],
    *,
    login: bool = True,
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
        runtime["current"] = Runtime(KubeCluster(api_client_factory()), operator_settings)
        await runtime["current"].seed(operator_settings.namespaces)

    operator_settings = settings

    def _active(status: Mapping[str, Any], **_: Any) -> bool:
        return status.get("phase") in ACTIVE_PHASES or not status.get("phase")

    @kopf.on.event(GROUP, VERSION, "goals", registry=registry)
    async def _goal_event(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        if event.get("type") == "DELETED":
            runtime["current"].registry.remove(f"{body.metadata.namespace}/{body.metadata.name}")
            return
        await runtime["current"].apply(str(body.metadata.namespace), str(body.metadata.name))

    @kopf.timer(
        GROUP, VERSION, "goals", interval=settings.requeue_seconds, when=_active, registry=registry
    )
    async def _goal_timer(body: kopf.Body, **_: Any) -> None:
        await runtime["current"].apply(str(body.metadata.namespace), str(body.metadata.name))

    @kopf.on.delete(GROUP, VERSION, "goals", registry=registry)
    async def _goal_deleted(body: kopf.Body, **_: Any) -> None:
        await runtime["current"].stop_attempt(body)

    @kopf.on.event(
        "batch", "v1", "jobs", labels={jobs.LABEL_MANAGED_BY: jobs.MANAGED_BY}, registry=registry
    )
    async def _job_event(body: kopf.Body, **_: Any) -> None:
        for owner in body.metadata.get("ownerReferences") or []:
            if owner.get("kind") == "Goal" and str(owner.get("apiVersion", "")).startswith(GROUP):
                await runtime["current"].apply(str(body.metadata.namespace), str(owner.get("name")))

    return registry
