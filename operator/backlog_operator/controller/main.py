"""`backlogctl operator`: run the operator in this process (what the Deployment runs)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys

import kopf
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from pydantic import ValidationError

from backlog_operator.adapters.endpoints import Endpoints, ListenError
from backlog_operator.adapters.webhook_server import WebhookServer
from backlog_operator.api.common import describe_validation_error
from backlog_operator.api.result import ExitCode
from backlog_operator.controller import logs
from backlog_operator.controller.handlers import build_registry
from backlog_operator.controller.health import Readiness
from backlog_operator.controller.metrics import Metrics
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.webhooks import Webhooks

# Python's cycle collector, tuned for a long-running process that allocates much per event and
# frees nearly all of it by reference counting: a young collection every 50,000 allocations
# (not 700), and everything imported at start-up (the Kubernetes client's models above all)
# frozen out of the full collections, whose cost otherwise grows with every goal the operator
# knows. Measured in a burst of goals: a quarter of the operator's CPU, then under a twentieth.
GC_THRESHOLDS = (50_000, 20, 10)


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
    receiver: WebhookServer | None = None,
) -> None:
    """kopf, with the endpoints (and the webhook receiver) listening on its loop from before
    its start-up (so `/readyz` says "not yet" while the operator lists what exists) until it
    has stopped. A delivery before the start-up is done finds no Backlog's path (404)."""
    async with endpoints or contextlib.nullcontext(), receiver or contextlib.nullcontext():
        await kopf.operator(
            registry=registry,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=settings.liveness_endpoint or None,
        )
