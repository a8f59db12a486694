"""What the watch streams said, kept so that a reconcile needs no read of its own.

- `Bodies`: the newest body of each Goal the operator has seen, from a watch event or from the
  answer to its own status write, with its resourceVersion. An event no newer than what is
  known says nothing new and costs no reconcile: among them the echo of the operator's own
  status writes. A reconcile reads the goal here, and from the API only when it is not here.
- `Jobs`: the worker Jobs, slimmed to what the operator reads (identity, labels, owners,
  deletion, status), by name and by goal. A running goal's reconcile reads its Job here (one
  it has just created included: recorded from the create's answer), a Job event that changes
  nothing a reconcile reads costs none, and a deleted goal's Jobs are found here by name.
- `WatchedJobs`: the goal reconciler's cluster: the Kubernetes adapter, with Jobs read from and
  recorded in `Jobs`.

Both keep compact JSON rather than parsed bodies (a tenth of the memory; parsing one again
takes microseconds). Which of two versions of an object is newer is told by its
resourceVersion: Kubernetes calls it opaque, but every API server (etcd's revision) hands out
increasing integers; where one is not an integer, nothing is taken as stale and the operator
reads and reconciles as it would without this cache.

Like an informer's cache, what is here may lag the API by a watch event's delay: a status
write is sent with the resourceVersion it was computed from, so a reconcile on a body already
changed on the server is refused (409) and retried from a fresh read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Container, Mapping
from typing import Any

from backlog_operator.adapters.kube import KubeCluster
from backlog_operator.api.common import GROUP
from backlog_operator.api.labels import LABEL_GOAL_UID

Json = dict[str, Any]
# The metadata a reconcile reads of a Job (the rest, the Pod template above all, is not kept).
_JOB_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "labels",
    "ownerReferences",
    "deletionTimestamp",
)


def version(body: Mapping[str, Any]) -> int | None:
    """An object's resourceVersion as a number, or None when it is not one."""
    raw = (body.get("metadata") or {}).get("resourceVersion")
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def newer(found: int | None, known: int | None) -> bool:
    """Whether a version `found` may be newer than `known` (unknown versions always may)."""
    return found is None or known is None or found > known


def object_key(body: Mapping[str, Any]) -> str:
    """`namespace/name` of an object."""
    metadata = body.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def _dump(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class Bodies:
    """The newest known body of each object of one kind, by `namespace/name`."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[int | None, bytes]] = {}

    def offer(self, body: Mapping[str, Any]) -> bool:
        """Keep `body` if it may be newer than the one known; whether it was (False: it says
        nothing the operator has not seen, such as the echo of its own write)."""
        key, found = object_key(body), version(body)
        known = self._known.get(key)
        if known is not None and not newer(found, known[0]):
            return False
        metadata = body.get("metadata") or {}
        if "managedFields" in metadata:  # the API server's bookkeeping: large, never read
            body = {**body, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}
        self._known[key] = (found, _dump(body))
        return True

    def get(self, key: str) -> Json | None:
        """The newest known body (a fresh copy), or None."""
        known = self._known.get(key)
        if known is None or not known[1]:
            return None
        body: Json = json.loads(known[1])
        return body

    def forget(self, key: str) -> None:
        """Drop what is known (gone, or perhaps stale: a refused write)."""
        self._known.pop(key, None)

    def shed(self, key: str) -> None:
        """Keep the version known, not the body (a finished goal: its echoes still say
        nothing new, and the rare reconcile of it reads it from the API)."""
        known = self._known.get(key)
        if known is not None:
            self._known[key] = (known[0], b"")

    def __contains__(self, key: object) -> bool:
        return key in self._known

    def __len__(self) -> int:
        return len(self._known)


def slim_job(job: Mapping[str, Any]) -> Json:
    """A Job with only what the operator reads of it: identity, labels, owners, status."""
    metadata = job.get("metadata") or {}
    return {
        "apiVersion": job.get("apiVersion", "batch/v1"),
        "kind": job.get("kind", "Job"),
        "metadata": {key: metadata[key] for key in _JOB_METADATA if key in metadata},
        "status": job.get("status") or {},
    }


def goal_of(job: Mapping[str, Any]) -> str | None:
    """`namespace/name` of the Goal that owns a Job, or None."""
    metadata = job.get("metadata") or {}
    for owner in metadata.get("ownerReferences") or []:
        if owner.get("kind") == "Goal" and str(owner.get("apiVersion", "")).startswith(GROUP):
            return f"{metadata.get('namespace')}/{owner.get('name')}"
    return None


class _Known:
    """One Job as kept: its version, its owner, what a reconcile reads of it (as JSON)."""

    __slots__ = ("active", "blob", "finished", "goal", "signal", "uid", "version")

    def __init__(self, job: Mapping[str, Any]) -> None:
        slim = slim_job(job)
        metadata, status = slim["metadata"], slim["status"]
        self.version = version(slim)
        self.goal = goal_of(slim)
        self.uid = (metadata.get("labels") or {}).get(LABEL_GOAL_UID)
        self.finished = any(
            c.get("status") == "True" and c.get("type") in ("Complete", "Failed")
            for c in status.get("conditions") or []
        )
        self.active = bool(status.get("active"))
        self.blob = _dump(slim)
        # What may change of it that a reconcile of its goal reads, as a digest (its name,
        # labels and owner do not change).
        self.signal = hashlib.blake2b(
            _dump([status, metadata.get("deletionTimestamp")]), digest_size=16
        ).digest()


class Jobs:
    """The worker Jobs the operator has seen, by `namespace/name` and by their goal's uid."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Known] = {}
        self._by_goal: dict[str, set[str]] = {}

    def offer(self, event_type: str | None, job: Mapping[str, Any]) -> bool:
        """Record a watch event of a Job; whether it may change what a reconcile of its goal
        decides: a Job not known before, gone, or whose status or metadata changed."""
        key = object_key(job)
        if event_type == "DELETED":
            self._drop(key)
            return True
        known = self._jobs.get(key)
        if known is not None and not newer(version(job), known.version):
            return False
        found = _Known(job)
        self._keep(key, found)
        return known is None or known.signal != found.signal

    def record(self, job: Mapping[str, Any]) -> None:
        """A Job as the API server answered a create or a read of it."""
        known = self._jobs.get(object_key(job))
        if known is None or newer(version(job), known.version):
            self._keep(object_key(job), _Known(job))

    def get(self, namespace: str, name: str) -> Json | None:
        """The newest known state of a Job (a fresh copy), or None when not known."""
        known = self._jobs.get(f"{namespace}/{name}")
        if known is None:
            return None
        body: Json = json.loads(known.blob)
        return body

    def of_goal(self, uid: str) -> list[str]:
        """`namespace/name` of every known Job of the goal with `uid`."""
        return sorted(self._by_goal.get(uid, ()))

    def forget_goal(self, uid: str) -> None:
        """Drop a deleted goal's Jobs (their DELETED events may never come: the watch can miss
        them while it reconnects)."""
        for key in list(self._by_goal.get(uid, ())):
            self._drop(key)

    def forget(self, key: str) -> None:
        """Drop one Job, so that the next reconcile of its goal reads it from the API."""
        self._drop(key)

    def missing(self, listed: Container[str]) -> list[tuple[str, str | None]]:
        """Known Jobs a full listing did not have: their keys and their goals' keys."""
        return [(key, job.goal) for key, job in self._jobs.items() if key not in listed]

    def goals(self) -> set[str]:
        """Goals (`namespace/name`) with a known Job."""
        return {job.goal for job in self._jobs.values() if job.goal}

    def active_goals(self) -> list[str]:
        """Goals (`namespace/name`) with an unfinished Job that has a Pod."""
        return sorted(
            {
                job.goal
                for job in self._jobs.values()
                if job.active and not job.finished and job.goal
            }
        )

    def _keep(self, key: str, found: _Known) -> None:
        self._drop(key)
        self._jobs[key] = found
        if found.uid:
            self._by_goal.setdefault(found.uid, set()).add(key)

    def _drop(self, key: str) -> None:
        known = self._jobs.pop(key, None)
        if known is not None and known.uid:
            keys = self._by_goal.get(known.uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_goal[known.uid]

    def __len__(self) -> int:
        return len(self._jobs)


class WatchedJobs:
    """The goal reconciler's cluster (`GoalCluster`, `JobStopper`, `LogReader`, `PatchStore`):
    Jobs from `Jobs` where known, from the API where not; a created Job recorded from the
    create's answer."""

    def __init__(self, cluster: KubeCluster, jobs: Jobs) -> None:
        self.cluster = cluster
        self.jobs = jobs

    async def create_job(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create the Job and record it (no read-back: the answer is the Job)."""
        created = await self.cluster.create_job(manifest)
        self.jobs.record(created if created.get("metadata") else manifest)
        return created

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Job as the watch last said it; read from the API when not known."""
        known = self.jobs.get(namespace, name)
        if known is not None:
            return known
        found = await self.cluster.get_job(namespace, name)
        if found is not None:
            self.jobs.record(found)
        return found

    async def find_pod(self, namespace: str, selector: str) -> dict[str, Any] | None:
        """The attempt's Pod (Pods are not watched: read from the API)."""
        return await self.cluster.find_pod(namespace, selector)

    async def pod_events(self, namespace: str, pod: str, reason: str) -> list[dict[str, Any]]:
        """Events about a Pod with `reason` (Events are not watched: read from the API)."""
        return await self.cluster.pod_events(namespace, pod, reason)

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job (foreground: its Pod first)."""
        await self.cluster.delete_job(namespace, name)

    async def pod_log_tail(
        self, namespace: str, pod: str, container: str, *, max_bytes: int
    ) -> str | None:
        """The end of a container's log (read from the API)."""
        return await self.cluster.pod_log_tail(namespace, pod, container, max_bytes=max_bytes)

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a Secret (read from the API)."""
        return await self.cluster.read_secret_key(namespace, name, key)

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """All keys of a Secret (read from the API)."""
        return await self.cluster.read_secret_data(namespace, name)

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret (read from the API)."""
        return await self.cluster.get_secret(namespace, name)

    async def create_secret(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Secret."""
        return await self.cluster.create_secret(manifest)

    async def patch_secret(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """Merge-patch a Secret."""
        await self.cluster.patch_secret(namespace, name, patch)

    async def pod_log(
        self, namespace: str, pod: str, container: str, *, max_bytes: int
    ) -> str | None:
        """A container's whole log, bounded (read from the API): a staged change's frames."""
        return await self.cluster.pod_log(namespace, pod, container, max_bytes=max_bytes)

    async def create_config_map(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a ConfigMap (a staged change's)."""
        return await self.cluster.create_config_map(manifest)

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A ConfigMap, or None (read from the API: ConfigMaps are not watched)."""
        return await self.cluster.get_config_map(namespace, name)

    async def patch_config_map(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch a ConfigMap (a re-run's staged change)."""
        return await self.cluster.patch_config_map(namespace, name, patch)
