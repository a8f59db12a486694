"""What the runtime keeps of the watches (`controller.cache`) and its per-object state
(`controller.keyed`): which events say something new, what a reconcile reads, what is dropped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from backlog_operator.api.labels import LABEL_GOAL_UID
from backlog_operator.controller.cache import Bodies, Jobs, WatchedJobs, slim_job
from backlog_operator.controller.keyed import KeyedLocks, WakeTimes

Json = dict[str, Any]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def goal(version: str | None, phase: str = "Queued", **metadata: Any) -> Json:
    meta: Json = {"name": "g1", "namespace": "ns", **metadata}
    if version is not None:
        meta["resourceVersion"] = version
    return {"apiVersion": "backlog.dev/v1alpha1", "kind": "Goal", "metadata": meta,
            "status": {"phase": phase}}  # fmt: skip


def job(version: str, status: Json | None = None, name: str = "g1-abc-1", uid: str = "u1") -> Json:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": version,
            "labels": {LABEL_GOAL_UID: uid},
            "ownerReferences": [
                {"apiVersion": "backlog.dev/v1alpha1", "kind": "Goal", "name": "g1", "uid": uid}
            ],
            "finalizers": ["batch.kubernetes.io/job-tracking"],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "publish", "image": "x"}]}}},
        "status": status or {},
    }


class TestBodies:
    def test_an_event_no_newer_than_what_is_known_says_nothing(self) -> None:
        bodies = Bodies()
        assert bodies.offer(goal("5"))
        assert not bodies.offer(goal("5"))  # the echo of our own write, or a relist
        assert not bodies.offer(goal("4"))  # older: the watch caught up with our write
        assert bodies.offer(goal("12", phase="Running"))  # "12" > "5" as numbers
        assert bodies.get("ns/g1") == goal("12", phase="Running")

    def test_a_version_that_is_not_a_number_is_never_taken_as_stale(self) -> None:
        bodies = Bodies()
        assert bodies.offer(goal("abc"))
        assert bodies.offer(goal("abc"))
        assert bodies.offer(goal(None))

    def test_a_shed_body_keeps_its_version_but_is_read_again(self) -> None:
        bodies = Bodies()
        bodies.offer(goal("7", phase="Succeeded"))
        bodies.shed("ns/g1")
        assert bodies.get("ns/g1") is None
        assert not bodies.offer(goal("7", phase="Succeeded"))
        bodies.forget("ns/g1")
        assert "ns/g1" not in bodies and len(bodies) == 0

    def test_the_api_servers_bookkeeping_is_not_kept(self) -> None:
        bodies = Bodies()
        bodies.offer(goal("1", managedFields=[{"manager": "kubectl"}]))
        found = bodies.get("ns/g1")
        assert found is not None and "managedFields" not in found["metadata"]


class TestJobs:
    def test_only_what_a_reconcile_reads_is_kept(self) -> None:
        slim = slim_job(job("3", {"active": 1}))
        assert set(slim["metadata"]) == {
            "name",
            "namespace",
            "resourceVersion",
            "labels",
            "ownerReferences",
        }
        assert "spec" not in slim and slim["status"] == {"active": 1}

    def test_an_event_counts_when_it_changes_what_a_reconcile_reads(self) -> None:
        jobs = Jobs()
        jobs.record(job("3"))  # the create's answer
        assert not jobs.offer("ADDED", job("3"))  # its ADDED event: nothing new
        changed_finalizers = job("4")
        changed_finalizers["metadata"]["finalizers"] = []
        assert not jobs.offer("MODIFIED", changed_finalizers)  # nothing a reconcile reads
        assert jobs.offer("MODIFIED", job("5", {"active": 1}))
        assert not jobs.offer("MODIFIED", job("4", {}))  # older than what is known
        assert jobs.active_goals() == ["ns/g1"]
        assert jobs.offer("DELETED", job("6"))
        assert jobs.get("ns", "g1-abc-1") is None and jobs.of_goal("u1") == []

    def test_a_job_not_known_before_counts(self) -> None:
        jobs = Jobs()
        assert jobs.offer(None, job("9"))  # a start-up listing's, or another operator's
        assert jobs.of_goal("u1") == ["ns/g1-abc-1"]

    def test_a_deleted_goals_jobs_are_forgotten(self) -> None:
        jobs = Jobs()
        jobs.record(job("1", name="g1-abc-1"))
        jobs.record(job("2", name="g1-abc-2"))
        jobs.record(job("3", name="g2-def-1", uid="u2"))
        assert jobs.of_goal("u1") == ["ns/g1-abc-1", "ns/g1-abc-2"]
        jobs.forget_goal("u1")
        assert jobs.of_goal("u1") == [] and len(jobs) == 1


class FakeApi:
    """The adapter's Job calls, counted."""

    def __init__(self) -> None:
        self.stored: dict[str, Json] = {}
        self.reads = 0

    async def create_job(self, manifest: Json) -> Json:
        created = {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": "10"}}
        self.stored[manifest["metadata"]["name"]] = created
        return created

    async def get_job(self, namespace: str, name: str) -> Json | None:
        self.reads += 1
        return self.stored.get(name)


def test_a_job_just_created_is_not_read_back() -> None:
    api = FakeApi()
    watched = WatchedJobs(api, Jobs())  # type: ignore[arg-type]  # the two calls it makes

    async def scenario() -> tuple[Json | None, Json | None]:
        manifest = job("0")
        del manifest["metadata"]["resourceVersion"]
        await watched.create_job(manifest)
        return await watched.get_job("ns", "g1-abc-1"), await watched.get_job("ns", "other")

    found, missing = asyncio.run(scenario())
    assert found is not None and found["metadata"]["resourceVersion"] == "10"
    assert missing is None and api.reads == 1  # only the Job it never saw


def test_a_lock_is_kept_only_while_someone_holds_or_waits_for_it() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def one(name: str) -> None:
        async with locks.hold("ns/g1"):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    async def scenario() -> int:
        both = asyncio.gather(one("a"), one("b"))
        await asyncio.sleep(0.005)
        held = len(locks)
        await both
        return held

    assert asyncio.run(scenario()) == 1
    assert order == ["a in", "a out", "b in", "b out"]
    assert len(locks) == 0


def test_wake_times_come_due_in_order_and_a_new_plan_replaces_the_old() -> None:
    wakes = WakeTimes()
    wakes.plan("ns/a", T0 + timedelta(seconds=30))
    wakes.plan("ns/b", T0 + timedelta(seconds=10))
    wakes.plan("ns/c", T0 + timedelta(seconds=20))
    wakes.plan("ns/a", T0 + timedelta(seconds=5))  # replaces 30 s
    wakes.plan("ns/c", None)  # cancelled

    assert wakes.due(T0) == []
    assert wakes.due(T0 + timedelta(seconds=15)) == ["ns/a", "ns/b"]
    assert wakes.due(T0 + timedelta(minutes=5)) == []
    assert len(wakes) == 0
