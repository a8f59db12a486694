"""Thin kopf handlers: find the object, call the runtime, which reconciles and applies.

A Goal's or a worker Job's event is handed to the runtime, which keeps what it says and runs the
goal's cycle in its own tasks (a bounded number at once): the handler returns at once, so a
burst of thousands of Goals does not keep thousands of kopf workers, and their events, waiting.
kopf itself is told to build no per-event "essence" of objects (`NoDiffBase`, `NoProgress`:
the operator has no change-detecting handlers) and to watch only the operator's own Jobs.

Only event handlers are used (no on.create/on.update/on.delete, no kopf timers), so kopf keeps
no "last-handled configuration" annotation and puts no finalizer on Goals: the operator writes
nothing but `status`, GitOps tools see no drift, and deleting a Goal never hangs on a stopped
operator. A deleted Goal's running Job is deleted (foreground) when the DELETED event arrives;
its ownerReference lets the garbage collector do the same should the operator be down.

One registration function per kind (`register_goals`, `register_backlogs`,
`register_schedules`) and one for the operator's life (`register_lifecycle`: login, startup,
cleanup); `build_registry` calls them all. The startup handler puts the `Runtime` into kopf's
`memo`, which every handler gets (a shallow copy per object, so all share the one runtime).

kopf does not retry event handlers: the runtime's cycles never raise into them. A cycle that
fails is retried by the runtime with backoff (`runtime.RetryPolicy`), whatever raised.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import kopf
from kubernetes import client as k8s

from backlog_operator.adapters.kube import KubeCluster
from backlog_operator.api.common import GROUP, VERSION
from backlog_operator.api.goal import FINAL_PHASES, Phase
from backlog_operator.api.labels import (
    ANNOTATION_FAILURES_CLEARED_AT,
    ANNOTATION_REQUESTED_AT,
    LABEL_BACKLOG,
    LABEL_MANAGED_BY,
    LABEL_SCHEDULE,
    MANAGED_BY,
    revived_tasks,
)
from backlog_operator.controller.backlogs.reconciler import ForgeFactory, github_forge
from backlog_operator.controller.health import Readiness
from backlog_operator.controller.metrics import Metrics
from backlog_operator.controller.owned_goals import phase_of
from backlog_operator.controller.runtime import RetryPolicy, Runtime
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.webhooks import Webhooks

_MEMO_KEY = "runtime"
# How long kopf keeps an object's worker after its last event (see `_startup`).
KOPF_WORKER_IDLE_SECONDS = 0.5


def build_registry(
    settings: OperatorSettings,
    api_client_factory: Callable[[], k8s.ApiClient],
    *,
    login: bool = True,
    clock: Callable[[], datetime] | None = None,
    forge_factory: ForgeFactory = github_forge,
    retry: RetryPolicy | None = None,
    metrics: Metrics | None = None,
    readiness: Readiness | None = None,
    webhooks: Webhooks | None = None,
) -> kopf.OperatorRegistry:
    """A kopf registry with the operator's handlers (a fresh one each, so tests can run many).
    `metrics` and `readiness` are what `/metrics` and `/readyz` serve, `webhooks` what the
    webhook receiver answers with (their own otherwise)."""
    registry = kopf.OperatorRegistry()
    register_lifecycle(
        registry,
        settings,
        api_client_factory,
        login=login,
        clock=clock,
        forge_factory=forge_factory,
        retry=retry,
        metrics=metrics,
        readiness=readiness,
        webhooks=webhooks,
    )
    register_goals(registry)
    register_backlogs(registry)
    register_schedules(registry)
    return registry


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's record of an object's last handled "essence", for change-detecting handlers. The
    operator has none (event handlers only, writing no annotation): kopf would still build one,
    deep-copying the body, on every event. An empty essence, never stored."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        """Nothing of the object: no handler compares it with a previous state."""
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        """No previous state kept."""
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        """Nothing kept."""


class NoProgress(kopf.ProgressStorage):
    """kopf's per-handler progress (retries of change handlers), which event handlers never
    have; its `clear` would deep-copy each event's essence."""

    def fetch(self, *, key: kopf.HandlerId, body: kopf.Body) -> kopf.ProgressRecord | None:
        """No progress kept."""
        return None

    def store(
        self,
        *,
        key: kopf.HandlerId,
        record: kopf.ProgressRecord,
        body: kopf.Body,
        patch: kopf.Patch,
    ) -> None:
        """Nothing kept."""

    def purge(self, *, key: kopf.HandlerId, body: kopf.Body, patch: kopf.Patch) -> None:
        """Nothing to purge."""

    def touch(self, *, body: kopf.Body, patch: kopf.Patch, value: str | None) -> None:
        """Nothing to touch."""

    def clear(self, *, essence: kopf.BodyEssence) -> kopf.BodyEssence:
        """The essence as it is (an empty one: `NoDiffBase`)."""
        return essence


def register_lifecycle(
    registry: kopf.OperatorRegistry,
    operator_settings: OperatorSettings,
    api_client_factory: Callable[[], k8s.ApiClient],
    *,
    login: bool = True,
    clock: Callable[[], datetime] | None = None,
    forge_factory: ForgeFactory = github_forge,
    retry: RetryPolicy | None = None,
    metrics: Metrics | None = None,
    readiness: Readiness | None = None,
    webhooks: Webhooks | None = None,
) -> None:
    """Login (unless the caller logs in itself), startup (the runtime, into `memo`; ready once
    it has listed what exists), cleanup (no longer ready)."""
    ready = readiness or Readiness()
    if login:

        @kopf.on.login(registry=registry)
        def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
            return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def _startup(
        settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
    ) -> None:
        _configure_kopf(settings)
        api_client = api_client_factory()
        cluster = KubeCluster(
            api_client,
            concurrency=operator_settings.api_concurrency,
            qps=operator_settings.api_qps,
            burst=operator_settings.api_burst,
            login=_login_of(api_client, operator_settings, settings, logger if login else None),
        )
        runtime = Runtime(
            cluster, operator_settings, clock, forge_factory, retry, metrics, webhooks
        )
        memo[_MEMO_KEY] = runtime
        await runtime.seed(operator_settings.namespaces)
        runtime.start_requeuing()
        ready.mark_synced()

    @kopf.on.cleanup(registry=registry)
    async def _cleanup(memo: kopf.Memo, **_: Any) -> None:
        ready.mark_stopping()
        runtime = memo.get(_MEMO_KEY)
        if isinstance(runtime, Runtime):
            await runtime.stop_requeuing()
            await runtime.cluster.aclose()


def _configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for this operator: its events, its peering, its watches, its workers."""
    settings.posting.enabled = False  # our own events, on transitions only
    # No kopf peering, even where some kopf-based operator installed its CRDs: one replica
    # acts by leader election on a Lease (`controller.leader`, docs/operator.md).
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    # kopf keeps a worker per object (a task, a queue, the object's last event) until no
    # event came for `idle_timeout` (5 s by default). The handlers here hand the event over
    # and return, so a kept worker saves next to nothing, and in a burst of thousands of
    # goals those idle workers were a fifth of the peak memory (docs/operator.md, Scaling).
    settings.queueing.idle_timeout = KOPF_WORKER_IDLE_SECONDS
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.progress_storage = NoProgress()
    # Only the operator's own Jobs, selected by the API server: not every Job of the cluster.
    settings.watching.label_selectors["batch", "jobs"] = f"{LABEL_MANAGED_BY}={MANAGED_BY}"


def _login_of(
    api_client: k8s.ApiClient,
    operator_settings: OperatorSettings,
    settings: kopf.OperatorSettings,
    logger: kopf.Logger | None,
) -> Callable[[], kopf.ConnectionInfo | None] | None:
    """How a goal's requests log in on the event loop (`API_EVENT_LOOP`; None: they go through
    the client, in threads): as kopf's watches do (its login function, called again when a
    token is refused), or, when the caller logs kopf in itself (`login=False`), from the client
    the operator was given, read as kopf's login function reads it."""
    if not operator_settings.api_event_loop:
        return None
    if logger is not None:
        return functools.partial(kopf.login_via_client, logger=logger, settings=settings)
    configuration = api_client.configuration
    return functools.partial(connection_of, configuration, settings.networking.trust_env)


def connection_of(configuration: k8s.Configuration, trust_env: bool = False) -> kopf.ConnectionInfo:
    """A client's configuration as a `kopf.ConnectionInfo`, field by field as
    `kopf.login_via_client` reads it (the token through the client's refresh hook, if any)."""
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else parts
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        trust_env=trust_env,
    )


def register_goals(registry: kopf.OperatorRegistry) -> None:
    """Goals, and the worker Jobs that report on them."""

    @kopf.on.event(GROUP, VERSION, "goals", registry=registry)
    async def _goal_event(
        event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
    ) -> None:
        runtime = _runtime(memo)
        runtime.goal_event(event.get("type"), event.get("object") or dict(body))
        if event.get("type") == "DELETED":
            return
        namespace = str(body.metadata.namespace)
        schedule = _owner_name(body, "GoalSchedule", LABEL_SCHEDULE)
        if schedule:  # its schedule's active list and history follow the goal's phase
            await runtime.apply_schedule(namespace, schedule)
        backlog = _owner_name(body, "Backlog", LABEL_BACKLOG)
        if backlog and (
            phase_of(body) in FINAL_PHASES or phase_of(body) is Phase.AWAITING_APPROVAL
        ):
            # A finished goal frees a slot: the Backlog may start its next task now. One that
            # awaits approval is listed in the Backlog's status at once.
            await runtime.apply_backlog(namespace, backlog)

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_MANAGED_BY: MANAGED_BY}, registry=registry)
    async def _job_event(
        event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
    ) -> None:
        _runtime(memo).job_event(event.get("type"), event.get("object") or dict(body))


def register_backlogs(registry: kopf.OperatorRegistry) -> None:
    """Backlogs: a sync when a person changes one; the runtime's loop does the interval."""

    @kopf.on.event(GROUP, VERSION, "backlogs", registry=registry)
    async def _backlog_event(
        event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
    ) -> None:
        runtime = _runtime(memo)
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        if event.get("type") == "DELETED":
            runtime.forget_backlog(key, body.metadata.uid)
            return
        # Each sync writes its status (lastSyncTime): act on what a person changed only (the
        # spec, or a sync, clear or revive request), not on our own writes; the interval does
        # the rest.
        annotations = body.metadata.annotations
        seen = (
            body.metadata.get("generation"),
            annotations.get(ANNOTATION_REQUESTED_AT),
            annotations.get(ANNOTATION_FAILURES_CLEARED_AT),
            tuple(sorted(revived_tasks(annotations).items())),
        )
        if runtime.backlog_seen.get(key) == seen:
            return
        runtime.backlog_seen[key] = seen
        await runtime.apply_backlog(str(body.metadata.namespace), str(body.metadata.name))


def register_schedules(registry: kopf.OperatorRegistry) -> None:
    """GoalSchedules: reconciled on every change; the runtime's loop wakes them for ticks."""

    @kopf.on.event(GROUP, VERSION, "goalschedules", registry=registry)
    async def _schedule_event(
        event: Mapping[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any
    ) -> None:
        runtime = _runtime(memo)
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        if event.get("type") == "DELETED":
            runtime.forget_schedule(key)
            return
        await runtime.apply_schedule(str(body.metadata.namespace), str(body.metadata.name))


def _owner_name(body: kopf.Body, kind: str, label: str) -> str | None:
    """The name of the `kind` a Goal labelled `label` belongs to, or None when unlabelled.

    The label's value may be a shortened name (`naming.label_value`: names run to 253
    characters, label values to 63), so the name is read from the Goal's controller
    ownerReference of that kind; the label's value only when it has none.
    """
    value = body.metadata.labels.get(label)
    if not value:
        return None
    for owner in body.metadata.get("ownerReferences") or []:
        if (
            owner.get("kind") == kind
            and owner.get("controller") is True
            and str(owner.get("apiVersion", "")).startswith(f"{GROUP}/")
            and owner.get("name")
        ):
            return str(owner["name"])
    return str(value)


def _runtime(memo: kopf.Memo) -> Runtime:
    """The runtime the startup handler put into kopf's memo."""
    runtime = memo[_MEMO_KEY]
    assert isinstance(runtime, Runtime)
    return runtime
