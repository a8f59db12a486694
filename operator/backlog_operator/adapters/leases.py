"""The Lease adapter: leader election's only I/O (read, create and replace one
`coordination.k8s.io/v1` Lease).

Its calls run in a thread pool of their own, never behind the operator's other API calls (a
burst of goals fills the cluster adapter's threads and rate limit, and a renewal that waits
there could miss the leader's deadline). Each call has a timeout shorter than that deadline.
A write sends the `resourceVersion` it read: 409 Conflict (another replica wrote first) and
409 AlreadyExists (another replica created the Lease first) are both `LeaseConflictError`.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException


class LeaseConflictError(Exception):
    """Another replica wrote the Lease (or created it) first."""


class LeaseStore:
    """One Lease, `namespace`/`name`, read and written through the official client."""

    def __init__(
        self, api_client: client.ApiClient, namespace: str, name: str, *, timeout: float
    ) -> None:
        self.namespace, self.name = namespace, name
        self._api = client.CoordinationV1Api(api_client)
        self._timeout = timeout
        self._executor = ThreadPoolExecutor(2, thread_name_prefix="lease")

    def close(self) -> None:
        """Let the threads go once the calls in flight are done."""
        self._executor.shutdown(wait=False)

    async def read(self) -> dict[str, Any] | None:
        """The Lease as stored, or None when there is none."""
        try:
            return await self._call(self._api.read_namespaced_lease, self.name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def write(self, spec: Mapping[str, Any], resource_version: str | None) -> dict[str, Any]:
        """Create the Lease (`resource_version` None) or replace it if it is still at
        `resource_version`, with `spec`; the Lease as stored. LeaseConflictError when another
        replica came first."""
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": dict(spec),
        }
        try:
            if resource_version is None:
                stored = await self._call(self._api.create_namespaced_lease, self.namespace, body)
            else:
                stored = await self._call(
                    self._api.replace_namespaced_lease, self.name, self.namespace, body
                )
        except ApiException as error:
            if error.status == 409:
                raise LeaseConflictError(str(error.reason)) from None
            raise
        return stored

    async def _call(self, method: Any, *args: Any) -> dict[str, Any]:
        call = functools.partial(
            _call_sync, method, *args, _preload_content=False, _request_timeout=self._timeout
        )
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)


def _call_sync(method: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    response = method(*args, **kwargs)
    data = json.loads(response.data or b"{}")
    return data if isinstance(data, dict) else {}
