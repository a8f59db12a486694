"""The Kubernetes adapter: the operator's only I/O against the API server.

The official client is synchronous; every call runs in a worker thread (`asyncio.to_thread`)
so kopf's event loop never blocks. Responses are read as plain JSON dicts (no model objects):
it is faster, and the controller works on dicts anyway.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from backlog_operator.api.common import GROUP, VERSION
from backlog_operator.errors import AlreadyExistsError

GOAL_PLURAL = "goals"
COMPONENT = "backlog-operator"


class KubeCluster:
    """Async façade over the official client for the few calls the operator makes."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    # ------------------------------------------------------------------------------ jobs

    async def create_job(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Job; AlreadyExistsError when one of that name exists."""
        namespace = str(manifest["metadata"]["namespace"])
        try:
            created: dict[str, Any] = await _call(
                self._batch.create_namespaced_job, namespace, manifest, _preload_content=False
            )
        except ApiException as error:
            if error.status == 409:
                raise AlreadyExistsError(manifest["metadata"]["name"]) from None
            raise
        return created

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Job, or None when it does not exist."""
        return await _get_or_none(
            self._batch.read_namespaced_job, name, namespace, _preload_content=False
        )

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and, first, its Pods (foreground), stopping a running attempt."""
        body = client.V1DeleteOptions(propagation_policy="Foreground")
        try:
            await _call(
                self._batch.delete_namespaced_job,
                name,
                namespace,
                body=body,
                _preload_content=False,
            )
        except ApiException as error:
            if error.status != 404:
                raise

    async def job_names(self, namespace: str, selector: str) -> list[str]:
        """Names of the Jobs matching a label selector."""
        listing = await _call(
            self._batch.list_namespaced_job,
            namespace,
            label_selector=selector,
            _preload_content=False,
        )
        return [str(item["metadata"]["name"]) for item in listing.get("items") or []]

    async def find_pod(self, namespace: str, selector: str) -> dict[str, Any] | None:
        """The newest Pod matching a label selector (a Job with backoffLimit 0 has one)."""
        listing = await _call(
            self._core.list_namespaced_pod,
            namespace,
            label_selector=selector,
            _preload_content=False,
        )
        items: list[dict[str, Any]] = listing.get("items") or []
        if not items:
            return None
        return max(
            items, key=lambda pod: str(pod.get("metadata", {}).get("creationTimestamp") or "")
        )

    # ----------------------------------------------------------------------------- goals

    async def get_goal(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Goal, or None when it is gone."""
        return await self.get_custom(GOAL_PLURAL, namespace, name)

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One of our custom objects (goals, goalschedules, backlogs), or None when gone."""
        return await _get_or_none(
            self._custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            _preload_content=False,
        )

    async def list_goals(
        self, namespace: str | None = None, selector: str = ""
    ) -> list[dict[str, Any]]:
        """Goals in one namespace, or in all of them, optionally by label selector."""
        return await self.list_custom(GOAL_PLURAL, namespace, selector)

    async def list_custom(
        self, plural: str, namespace: str | None = None, selector: str = ""
    ) -> list[dict[str, Any]]:
        """Custom objects of ours in one namespace, or in all of them."""
        if namespace:
            listing = await _call(
                self._custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                label_selector=selector,
                _preload_content=False,
            )
        else:
            listing = await _call(
                self._custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                plural,
                label_selector=selector,
                _preload_content=False,
            )
        return list(listing.get("items") or [])

    async def create_goal(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Goal; AlreadyExistsError when one of that name exists."""
        try:
            created: dict[str, Any] = await _call(
                self._custom.create_namespaced_custom_object,
                GROUP,
                VERSION,
                str(manifest["metadata"]["namespace"]),
                GOAL_PLURAL,
                manifest,
                _preload_content=False,
            )
        except ApiException as error:
            if error.status == 409:
                raise AlreadyExistsError(manifest["metadata"]["name"]) from None
            raise
        return created

    async def delete_goal(self, namespace: str, name: str) -> None:
        """Delete a Goal (its Jobs follow: the operator stops them, the GC removes them)."""
        try:
            await _call(
                self._custom.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                GOAL_PLURAL,
                name,
                _preload_content=False,
            )
        except ApiException as error:
            if error.status != 404:
                raise

    async def patch_goal_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch a Goal's status subresource (the operator never writes `spec`)."""
        await self.patch_custom_status(GOAL_PLURAL, namespace, name, status)

    async def patch_custom_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        """Merge-patch the status subresource of one of our objects."""
        try:
            await _call(
                self._custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": dict(status)},
                _preload_content=False,
            )
        except ApiException as error:
            if error.status != 404:  # deleted meanwhile: nothing to report on
                raise

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a Secret a Backlog names (for reading a private backlog), or None."""
        secret = await _get_or_none(
            self._core.read_namespaced_secret, name, namespace, _preload_content=False
        )
        encoded = ((secret or {}).get("data") or {}).get(key)
        if encoded is None:
            return None
        return base64.b64decode(encoded).decode("utf-8").strip()

    # ---------------------------------------------------------------------------- events

    async def post_event(
        self, involved: Mapping[str, Any], kind: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event on `involved` (a Goal's body); `kind` is Normal or Warning."""
        metadata = involved.get("metadata", {})
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata.get('name', 'goal')}.",
                "namespace": metadata.get("namespace"),
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": metadata.get("name"),
                "namespace": metadata.get("namespace"),
                "uid": metadata.get("uid"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await _call(
            self._core.create_namespaced_event,
            metadata.get("namespace"),
            event,
            _preload_content=False,
        )


async def _call(method: Any, *args: Any, **kwargs: Any) -> Any:
    response = await asyncio.to_thread(method, *args, **kwargs)
    data = response.data if hasattr(response, "data") else response
    return json.loads(data) if data else {}


async def _get_or_none(method: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = await _call(method, *args, **kwargs)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return result
