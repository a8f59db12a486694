"""`backlogctl operator`: run the operator in this process (what the Deployment runs).

With leader election on (`BACKLOG_OPERATOR_LEADER_ELECTION`, the bundle's two replicas), the
process serves its endpoints at once but starts kopf only once it holds the Lease: a standby
watches nothing and acts on nothing. A leader that loses the Lease exits at once (status 1), as
controller-runtime's managers do, and the kubelet starts it again as a standby; on SIGTERM it
stops kopf, then releases the Lease, so that the standby takes over at its next try.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import socket
import sys
from pathlib import Path

import kopf
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from pydantic import ValidationError

from backlog_operator.adapters.endpoints import Endpoints, ListenError
from backlog_operator.adapters.leases import LeaseStore
from backlog_operator.adapters.webhook_server import WebhookServer
from backlog_operator.api.common import describe_validation_error
from backlog_operator.api.result import ExitCode
from backlog_operator.controller import logs
from backlog_operator.controller.election import Election, Timing
from backlog_operator.controller.handlers import build_registry
from backlog_operator.controller.health import Readiness
from backlog_operator.controller.leader import LeaderElector
from backlog_operator.controller.metrics import Metrics
from backlog_operator.controller.settings import ENV_PREFIX, OperatorSettings
from backlog_operator.controller.webhooks import Webhooks

log = logging.getLogger("backlog_operator.controller")

# Python's cycle collector, tuned for a long-running process that allocates much per event and
# frees nearly all of it by reference counting: a young collection every 50,000 allocations
# (not 700), and everything imported at start-up (the Kubernetes client's models above all)
# frozen out of the full collections, whose cost otherwise grows with every goal the operator
# knows. Measured in a burst of goals: a quarter of the operator's CPU, then under a twentieth.
GC_THRESHOLDS = (50_000, 20, 10)
# Where a Pod finds its own namespace (the Lease's, unless the settings name another).
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# The exit status of a leader that lost its Lease (the kubelet starts it again as a standby).
LOST_LEASE_EXIT = 1


def api_client() -> k8s.ApiClient:
    """In a Pod: the service account; elsewhere: the kubeconfig."""
    try:
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()  # type: ignore[no-untyped-call]
    return k8s.ApiClient()


def main(args: argparse.Namespace) -> int:
    """Validate the settings, then run kopf until stopped."""
    try:
        settings = OperatorSettings()
    except ValidationError as error:
        print(
            f"backlogctl operator: invalid settings: {describe_validation_error(error)}",
            file=sys.stderr,
        )
        return int(ExitCode.USAGE)
    if args.namespace:
        settings = settings.model_copy(update={"namespaces": list(args.namespace)})
    # One handler (kopf's), never a second one of `logging.basicConfig`: each line once.
    logs.configure(args.log_format or settings.log_format, verbose=args.verbose)
    metrics, readiness, webhooks = Metrics(), Readiness(), Webhooks()
    try:
        elector = leader_elector(settings, metrics, readiness)
    except ValueError as error:
        print(f"backlogctl operator: {error}", file=sys.stderr)
        return int(ExitCode.USAGE)
    registry = build_registry(
        settings, api_client, metrics=metrics, readiness=readiness, webhooks=webhooks
    )
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        asyncio.run(
            operate(
                settings,
                registry,
                serving(settings, metrics, readiness),
                elector,
                receiving(settings, webhooks),
            )
        )
    except ListenError as error:
        print(
            f"backlogctl operator: {error.strerror} (BACKLOG_OPERATOR_METRICS_PORT, "
            "BACKLOG_OPERATOR_METRICS_BIND_ADDRESS, BACKLOG_OPERATOR_WEBHOOK_PORT, "
            "BACKLOG_OPERATOR_WEBHOOK_BIND_ADDRESS)",
            file=sys.stderr,
        )
        return 1
    return 0


def serving(settings: OperatorSettings, metrics: Metrics, readiness: Readiness) -> Endpoints | None:
    """`/metrics`, `/healthz` and `/readyz` on the metrics port (None: `METRICS_PORT` is 0)."""
    if not settings.metrics_port:
        return None
    return Endpoints(
        metrics.registry,
        readiness.check,
        host=settings.metrics_bind_address,
        port=settings.metrics_port,
    )


def leader_elector(
    settings: OperatorSettings, metrics: Metrics, readiness: Readiness
) -> LeaderElector | None:
    """The replica's part in leader election (None: off), its standing shown on `/readyz` and
    `/metrics`. ValueError when the Lease's namespace cannot be known."""
    if not settings.leader_election:
        return None
    namespace = settings.leader_election_namespace or _own_namespace()
    name = settings.leader_election_lease_name
    # As controller-runtime's `<host name>_<uuid>`: a restarted process is a new candidate.
    identity = f"{settings.pod_name or socket.gethostname()}_{secrets.token_hex(4)}"
    timing = Timing(
        settings.lease_duration_seconds,
        settings.renew_deadline_seconds,
        settings.retry_period_seconds,
    )
    # A read or write that takes longer than a retry period is abandoned (it is tried again).
    store = LeaseStore(api_client(), namespace, name, timeout=timing.retry_period)
    gauge = metrics.leader.labels(name)
    gauge.set(0)
    elector = LeaderElector(
        Election(identity, timing), store, on_change=lambda leading: gauge.set(int(leading))
    )
    readiness.active = lambda: elector.leading
    return elector


def _own_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
    except OSError:
        raise ValueError(
            f"leader election needs the Lease's namespace: set {ENV_PREFIX}"
            "LEADER_ELECTION_NAMESPACE (not in a Pod: no service account namespace to use)"
        ) from None


def receiving(settings: OperatorSettings, webhooks: Webhooks) -> WebhookServer | None:
    """The GitHub webhook receiver on its own port (None: `WEBHOOK_PORT` is 0)."""
    if not settings.webhook_port:
        return None
    return WebhookServer(
        webhooks.receive,
        webhooks.known,
        host=settings.webhook_bind_address,
        port=settings.webhook_port,
        max_body=settings.webhook_max_body_bytes,
    )


async def operate(
    settings: OperatorSettings,
    registry: kopf.OperatorRegistry,
    endpoints: Endpoints | None,
    elector: LeaderElector | None = None,
    receiver: WebhookServer | None = None,
) -> None:
    """kopf, with the endpoints (and the webhook receiver) listening on its loop from before
    its start-up (so `/readyz` says "not yet" while the operator lists what exists) until it
    has stopped; with leader election, kopf only once this replica leads, and the Lease
    released after kopf stopped. A delivery before the start-up is done (or to a standby)
    finds no Backlog's path (404)."""
    async with endpoints or contextlib.nullcontext(), receiver or contextlib.nullcontext():
        if elector is None:
            await _kopf(settings, registry)
            return
        stop = _stop_on_signals()
        if not await elector.acquire(stop):
            return
        # Made before kopf starts: kopf cancels, as it stops, every task made after it started,
        # and the renewals must go on until kopf has stopped.
        keeper = asyncio.create_task(elector.keep(_stop_acting_now), name="leader-lease")
        keeper.add_done_callback(_renewals_ended)
        try:
            await _kopf(settings, registry, stop)
        finally:
            keeper.remove_done_callback(_renewals_ended)
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await elector.release()


async def _kopf(
    settings: OperatorSettings, registry: kopf.OperatorRegistry, stop: asyncio.Event | None = None
) -> None:
    if stop is not None:
        # kopf waits for its stop flag in a task of its own, which a stop by kopf's own signal
        # handler leaves waiting: kopf's shutdown would then wait 5 s for it before it gives up
        # (and the Lease would be released that much later). Its cleanup sets the flag.
        @kopf.on.cleanup(registry=registry)
        def _stopped(**_: object) -> None:
            stop.set()

    await kopf.operator(
        registry=registry,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint or None,
        standalone=True,
        stop_flag=stop,
    )


def _stop_on_signals() -> asyncio.Event:
    """An event SIGTERM and SIGINT set: a standby stops waiting; kopf, given it as its stop
    flag, stops too should a signal come before kopf answers signals itself."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    return stop


def _renewals_ended(keeper: asyncio.Task[None]) -> None:
    """The renewals stopped while kopf runs (they end only when the Lease is lost, and then
    the process has exited already): whatever ended them, nobody renews, so stop acting."""
    if not keeper.cancelled():
        log.critical("leader election: the Lease's renewals stopped: %r", keeper.exception())
        _stop_acting_now()


def _stop_acting_now() -> None:
    """The Lease is lost: another replica may lead any moment now. Nothing more may be done,
    not even kopf's graceful stop (its handlers would go on acting meanwhile): exit."""
    logging.shutdown()
    sys.stderr.flush()
    os._exit(LOST_LEASE_EXIT)
