"""In-memory fakes of what the reconcilers need, for table-driven unit tests (no HTTP, no kopf).

- `FakeCluster`: the `GoalCluster`, `BacklogCluster` and `ScheduleCluster` Protocols at once,
  over dictionaries of Jobs, Pods, Goals and Secrets, recording every call it answers; plus
  `post_event` (what the runtime does with a reconcile's events) and `apply` (the runtime's
  cycle: reconcile, write the status back into the body, post the events).
- `FakeForge` and `FakeForgeFactory`: the `Forge` Protocol and its factory, with open pull
  requests or an error to raise.
- `FakeBacklogSource`: `BacklogSource.read` over files held per repository URL and branch.
- `FixedClock` and `FixedRandom`: the injected clock and RNG, so every time is exact.

The fakes behave as the API does where the reconcilers depend on it: create raises
`AlreadyExistsError` on a taken name, get returns None when absent, delete of an absent object
is quiet, label selectors are `key=value` pairs joined by commas.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from backlog_operator.adapters.backlog_source import BacklogSnapshot
from backlog_operator.adapters.git import GitCredentials
from backlog_operator.controller.results import Reconciled
from backlog_operator.controller.status import timestamp, to_wire
from backlog_operator.errors import AlreadyExistsError, ClassifiedError

Json = dict[str, Any]


# --------------------------------------------------------------------------- time, chance


class FixedClock:
    """The reconcilers' clock: it moves only when a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FixedRandom(random.Random):
    """An RNG whose every draw is `value` (backoff jitter becomes exact)."""

    def __init__(self, value: float = 0.5) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


# ------------------------------------------------------------------------------ cluster


def matches(labels: Mapping[str, str] | None, selector: str) -> bool:
    """Whether `labels` satisfy an equality selector (`a=b,c=d`; empty selects everything)."""
    wanted = [part.split("=", 1) for part in selector.split(",") if part]
    return all((labels or {}).get(key) == value for key, value in wanted)


@dataclass
class FakeCluster:
    """Jobs, Pods, Goals and Secrets of one API server, and a log of the calls made on it.

    `jobs` and `goals` are keyed by (namespace, name); `pods` is a plain list (found by labels);
    `secrets` maps (namespace, name) to the Secret's decoded data. `hidden_once` names Goals the
    next `list_goals` leaves out (a listing that lags behind a create, as a watch cache can).
    """

    clock: FixedClock | None = None
    jobs: dict[tuple[str, str], Json] = field(default_factory=dict)
    pods: list[Json] = field(default_factory=list)
    pod_event_list: list[Json] = field(default_factory=list)  # Events about Pods (kubelet's)
    pod_logs: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (ns, pod, container)
    goals: dict[tuple[str, str], Json] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    hidden_once: set[str] = field(default_factory=set)
    # method name -> exceptions its next calls raise, in order (after recording the call; a
    # `(error, True)` pair raises after the call took effect: an answer lost on the way back)
    failures: dict[str, list[tuple[Exception, bool]]] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    events: list[tuple[str, str, str, str]] = field(default_factory=list)
    _uids: int = 0

    # ---- seeding

    def add_job(self, job: Json) -> Json:
        metadata = job["metadata"]
        self.jobs[(metadata.get("namespace") or "default", metadata["name"])] = copy.deepcopy(job)
        return job

    def add_goal(self, goal: Json) -> Json:
        metadata = goal["metadata"]
        self.goals[(metadata.get("namespace") or "default", metadata["name"])] = copy.deepcopy(goal)
        return goal

    def add_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.secrets[(namespace, name)] = dict(data)

    # ---- what the tests read back

    def fail_next(self, method: str, error: Exception, *, committed: bool = False) -> None:
        """The next call to `method` raises `error` (after doing its work when `committed`)."""
        self.failures.setdefault(method, []).append((error, committed))

    def _failure(self, method: str, *, committed: bool) -> None:
        queued = self.failures.get(method) or []
        if queued and queued[0][1] is committed:
            raise queued.pop(0)[0]

    def calls_to(self, method: str) -> list[tuple[str, ...]]:
        """The arguments of every call to `method`, in order."""
        return [call[1:] for call in self.calls if call[0] == method]

    @property
    def created_jobs(self) -> list[str]:
        return [name for _, name in self.calls_to("create_job")]

    @property
    def created_goals(self) -> list[str]:
        return [name for _, name in self.calls_to("create_goal")]

    @property
    def deleted_goals(self) -> list[str]:
        return [name for _, name in self.calls_to("delete_goal")]

    def goal(self, name: str, namespace: str = "default") -> Json:
        return self.goals[(namespace, name)]

    def job(self, name: str, namespace: str = "default") -> Json:
        return self.jobs[(namespace, name)]

    # ---- GoalCluster

    async def create_job(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        namespace = manifest["metadata"].get("namespace") or "default"
        name = manifest["metadata"]["name"]
        self.calls.append(("create_job", namespace, name))
        self._failure("create_job", committed=False)
        if (namespace, name) in self.jobs:
            raise AlreadyExistsError(name)
        stored = copy.deepcopy(dict(manifest))
        stored["metadata"]["uid"] = self._uid("job")
        self.jobs[(namespace, name)] = stored
        self._failure("create_job", committed=True)
        return copy.deepcopy(stored)

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_job", namespace, name))
        found = self.jobs.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def find_pod(self, namespace: str, selector: str) -> dict[str, Any] | None:
        self.calls.append(("find_pod", namespace, selector))
        for pod in self.pods:
            metadata = pod.get("metadata", {})
            if (metadata.get("namespace") or "default") == namespace and matches(
                metadata.get("labels"), selector
            ):
                return copy.deepcopy(pod)
        return None

    async def pod_log_tail(
        self, namespace: str, pod: str, container: str, *, max_bytes: int
    ) -> str | None:
        self.calls.append(("pod_log_tail", namespace, pod, container))
        self._failure("pod_log_tail", committed=False)
        text = self.pod_logs.get((namespace, pod, container))
        return None if text is None else text.encode()[-max_bytes:].decode(errors="ignore")

    async def pod_events(self, namespace: str, pod: str, reason: str) -> list[dict[str, Any]]:
        self.calls.append(("pod_events", namespace, pod, reason))
        return [
            copy.deepcopy(event)
            for event in self.pod_event_list
            if (event.get("metadata") or {}).get("namespace", "default") == namespace
            and (event.get("involvedObject") or {}).get("name") == pod
            and event.get("reason") == reason
        ]

    # ---- BacklogCluster / ScheduleCluster

    async def list_goals(
        self, namespace: str | None = None, selector: str = ""
    ) -> list[dict[str, Any]]:
        self.calls.append(("list_goals", namespace or "", selector))
        hidden, self.hidden_once = self.hidden_once, set()
        return [
            copy.deepcopy(goal)
            for (ns, name), goal in sorted(self.goals.items())
            if (namespace is None or ns == namespace)
            and name not in hidden
            and matches(goal["metadata"].get("labels"), selector)
        ]

    async def get_goal(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_goal", namespace, name))
        found = self.goals.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def create_goal(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        namespace = manifest["metadata"].get("namespace") or "default"
        name = manifest["metadata"]["name"]
        self.calls.append(("create_goal", namespace, name))
        if (namespace, name) in self.goals:
            raise AlreadyExistsError(name)
        stored = copy.deepcopy(dict(manifest))
        stored["metadata"].update(uid=self._uid("goal"), generation=1)
        if self.clock is not None:
            stored["metadata"]["creationTimestamp"] = timestamp(self.clock())
        self.goals[(namespace, name)] = stored
        return copy.deepcopy(stored)

    async def delete_goal(self, namespace: str, name: str) -> None:
        self.calls.append(("delete_goal", namespace, name))
        self.goals.pop((namespace, name), None)

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        self.calls.append(("read_secret_key", namespace, name, key))
        return self.secrets.get((namespace, name), {}).get(key)

    # ---- what the runtime does with a reconcile

    async def post_event(
        self, body: Mapping[str, Any], kind: str, reason: str, message: str
    ) -> None:
        self.events.append((body["metadata"]["name"], kind, reason, message))

    async def apply(self, reconciler: Any, body: Json) -> Reconciled[Any]:
        """One runtime cycle on `body` (changed in place): reconcile, write, post the events."""
        result: Reconciled[Any] = await reconciler.reconcile(copy.deepcopy(body))
        if result.status is not None:
            body["status"] = to_wire(result.status)
        for event in result.events:
            await self.post_event(body, event.kind, event.reason, event.message)
        return result

    def _uid(self, kind: str) -> str:
        self._uids += 1
        return f"{kind}-uid-{self._uids:04d}"


# ------------------------------------------------------------------------------- forge


@dataclass(frozen=True)
class FakePullRequest:
    """What the Backlog reconciler reads of an open pull request (`PullRequestRef`)."""

    number: int
    head_branch: str
    url: str = "https://github.com/octo/project/pull/1"


@dataclass
class FakeForge:
    """Open pull requests as (head branch, opened at); `error` is raised instead when set."""

    pulls: list[tuple[str, datetime]] = field(default_factory=list)
    error: ClassifiedError | None = None
    asked: list[str] = field(default_factory=list)

    def open_pull_requests(self, head_prefix: str) -> list[tuple[Any, datetime]]:
        self.asked.append(head_prefix)
        if self.error is not None:
            raise self.error
        return [
            (FakePullRequest(number, branch), opened)
            for number, (branch, opened) in enumerate(self.pulls, start=1)
            if branch.startswith(head_prefix)
        ]


@dataclass
class FakeForgeFactory:
    """The `ForgeFactory`: hands out `forge`, recording (repository, token, base URL)."""

    forge: FakeForge = field(default_factory=FakeForge)
    made: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    def __call__(self, repository: str, token: str | None, base_url: str | None) -> FakeForge:
        self.made.append((repository, token, base_url))
        return self.forge


# ------------------------------------------------------------------------ backlog source


@dataclass
class SourceRead:
    """One call of `FakeBacklogSource.read`: what was asked and the token git would have used."""

    url: str
    branch: str
    path: str
    known_commit: str | None
    token: str | None
    insecure: bool | None


@dataclass
class FakeBacklogSource:
    """Branch tips and their files per (url, branch); `error` is raised instead when set."""

    tips: dict[tuple[str, str], tuple[str, dict[str, bytes]]] = field(default_factory=dict)
    error: ClassifiedError | None = None
    reads: list[SourceRead] = field(default_factory=list)

    def put(
        self, url: str, commit: str, files: Mapping[str, str | bytes], branch: str = "main"
    ) -> None:
        """Move `branch` of `url` to `commit`, holding `files`."""
        data = {
            path: text.encode() if isinstance(text, str) else text for path, text in files.items()
        }
        self.tips[(url, branch)] = (commit, data)

    def read(
        self,
        url: str,
        branch: str,
        path: str,
        *,
        credentials: GitCredentials | None = None,
        known_commit: str | None = None,
        **_: Any,
    ) -> BacklogSnapshot:
        token_file: Path | None = credentials.token_file if credentials else None
        self.reads.append(
            SourceRead(
                url,
                branch,
                path,
                known_commit,
                token_file.read_text(encoding="utf-8") if token_file else None,
                credentials.insecure if credentials else None,
            )
        )
        if self.error is not None:
            raise self.error
        commit, files = self.tips[(url, branch)]
        if commit == known_commit:
            return BacklogSnapshot(commit=commit, data=None, changed=False)
        return BacklogSnapshot(commit=commit, data=files.get(path), changed=True)


# ------------------------------------------------------------------------------ reading


def conditions_of(wire_status: Mapping[str, Any] | None) -> dict[str, tuple[str, str]]:
    """The status's conditions as {type: (status, reason)}."""
    return {
        c["type"]: (c["status"], c["reason"]) for c in (wire_status or {}).get("conditions", [])
    }


def events_of(result: Reconciled[Any]) -> list[tuple[str, str]]:
    """A reconcile's events as (kind, reason), in order."""
    return [(event.kind, event.reason) for event in result.events]


def wire(result: Reconciled[Any]) -> Json | None:
    """The status a reconcile asks for, as it would be written (camelCase, times as text)."""
    return None if result.status is None else to_wire(result.status)


ABSENT = object()  # an expected status field that must not be there


def assert_fields(status: Mapping[str, Any] | None, expected: Mapping[str, Any]) -> None:
    """Every field of `expected` has that value in `status` (ABSENT: is not there)."""
    assert status is not None, "no status was written"
    for key, value in expected.items():
        if value is ABSENT:
            assert key not in status, f"status.{key} should be absent, is {status[key]!r}"
        else:
            assert status.get(key) == value, f"status.{key}: {status.get(key)!r} != {value!r}"
