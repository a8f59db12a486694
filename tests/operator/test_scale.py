"""What the operator costs per goal, through kopf against the API emulator over HTTP.

A goal costs the requests its start needs and no more (its own status echo and the Job it just
created are not read back); waiting goals are not polled; a freed slot goes to the next goal at
once, not at the next requeue round; a deleted goal's Jobs are deleted by name, and nothing is
kept of the goal afterwards. Speed itself is measured in benchmarks/bench_operator.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kopf
import pytest

from backlog_operator.adapters.kube import KubeCluster
from backlog_operator.controller import runtime
from backlog_operator.controller.handlers import build_registry
from backlog_operator.controller.runtime import Runtime
from backlog_operator.controller.settings import OperatorSettings
from tests.operator.test_goal_operator import (
    GOALS,
    JOBS,
    NS,
    PUBLISHED,
    Cluster,
    goal_manifest,
)
from tests.support.emulator import EmulatorServer
from tests.support.kopf_harness import KopfThread, new_api_client

OURS = ("/goals", "/jobs", "/events", "/pods")


@contextmanager
def operator_runtime(server: EmulatorServer, **settings: Any) -> Iterator[Runtime]:
    """The operator in-process; its runtime, to look at what it keeps."""
    options: dict[str, Any] = {"requeue_seconds": 0.1, "worker_image": "backlog-operator:test"}
    options.update(settings)
    registry = build_registry(
        OperatorSettings(**options), lambda: new_api_client(server), login=False
    )
    memo = kopf.Memo()
    with KopfThread(server, registry=registry, memo=memo):
        runtime = server.emulator.wait_for(lambda: memo.get("runtime"))
        assert isinstance(runtime, Runtime)
        yield runtime


def requests_to_ours(cluster: Cluster) -> list[tuple[str, str, str]]:
    """(method, path, query) of the operator's requests about goals, Jobs, events and Pods
    (kopf's watch streams left out)."""
    return [
        (r.method.value, r.url.path, r.url.query_string)
        for r in cluster.api
        if any(part in r.url.path for part in OURS) and "watch=" not in r.url.query_string
    ]


def test_a_new_goal_costs_a_read_its_job_its_status_and_its_event(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    cluster = Cluster(emulator_server)
    with operator_runtime(emulator_server):
        cluster.api.wait_for(
            lambda: cluster.api.open_watches(GOALS) and cluster.api.open_watches(JOBS)
        )
        before = len(requests_to_ours(cluster))
        cluster.create(goal_manifest("g1"))
        cluster.wait_phase("g1", "Running")
        cluster.api.wait_for(lambda: ("Normal", "Started") in cluster.events("g1"))
        time.sleep(0.5)  # its status echo and its Job's events come and go: nothing more

        made = sorted((method, path) for method, path, _ in requests_to_ours(cluster)[before:])

    goal, job = f"/apis/backlog.dev/v1alpha1/namespaces/{NS}/goals/g1", cluster.jobs_of("g1")
    assert made == sorted(
        [
            ("GET", goal),  # read afresh: it may start a Job
            ("POST", f"/apis/batch/v1/namespaces/{NS}/jobs"),
            ("PATCH", f"{goal}/status"),
            ("POST", f"/api/v1/namespaces/{NS}/events"),
        ]
    ), f"the Job {job[0]['metadata']['name']} and the status echo cost nothing more"


def test_waiting_goals_are_not_looked_at_while_nothing_changes(
    emulator_server: EmulatorServer, project_crds: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The running goal's periodic Pod read and Job audit are not what this is about.
    monkeypatch.setattr(runtime, "PODS_EVERY", 10**9)
    monkeypatch.setattr(runtime, "AUDIT_EVERY", 10**9)
    cluster = Cluster(emulator_server)
    with operator_runtime(emulator_server, max_running=1, max_running_per_repository=5):
        cluster.create(goal_manifest("a-runs", task="t0"))
        cluster.wait_jobs("a-runs", 1)
        names = [f"waits-{index}" for index in range(1, 6)]
        for name in names:
            cluster.create(goal_manifest(name, task=name))
        cluster.api.wait_for(lambda: all(cluster.status(n).get("queuePosition") for n in names))
        time.sleep(0.3)  # the last writes' echoes
        before = len(requests_to_ours(cluster))

        time.sleep(1.0)  # ten requeue rounds

        assert requests_to_ours(cluster)[before:] == []
    assert [cluster.status(name)["queuePosition"] for name in names] == [1, 2, 3, 4, 5]


def test_a_freed_slot_is_taken_at_once_not_at_the_next_requeue_round(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    cluster = Cluster(emulator_server)
    # A requeue round every minute: only an event-driven admission starts the next goal in time.
    with operator_runtime(emulator_server, max_running=1, requeue_seconds=60):
        cluster.create(goal_manifest("first", task="t1"))
        [job] = cluster.wait_jobs("first", 1)
        cluster.create(goal_manifest("second", task="t2"))
        cluster.create(goal_manifest("third", task="t3", priority=200))
        cluster.wait_phase("second", "Queued", reason="WaitingForCapacity")
        cluster.wait_phase("third", "Queued", reason="WaitingForCapacity")

        cluster.finish(job, PUBLISHED)

        cluster.wait_jobs("second", 1)
        cluster.wait_phase("second", "Running")
        assert cluster.jobs_of("third") == []


def test_deleted_goals_jobs_are_deleted_by_name_and_nothing_of_them_is_kept(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    cluster = Cluster(emulator_server)
    names = [f"gone-{index}" for index in range(4)]
    with operator_runtime(emulator_server, max_running=3, max_running_per_repository=3) as runtime:
        for name in names:
            cluster.create(goal_manifest(name, task=name))
        running = cluster.api.wait_for(
            lambda: len(found := [n for n in names if cluster.jobs_of(n)]) == 3 and found
        )
        [waiting] = set(names) - set(running)
        cluster.wait_phase(waiting, "Queued", reason="WaitingForCapacity")
        jobs = [job["metadata"]["name"] for name in running for job in cluster.jobs_of(name)]

        for name in names:
            cluster.api.delete_object(GOALS, NS, name)

        cluster.api.wait_for(
            lambda: all(cluster.api.get_object(JOBS, NS, job) is None for job in jobs),
            message="a deleted goal's Job is still there",
        )
        cluster.api.wait_for(lambda: len(runtime.capacity) == 0 and not runtime.jobs)
        time.sleep(0.3)  # the Jobs' DELETED events
        kept = {
            "capacity": len(runtime.capacity),
            "bodies": len(runtime.bodies),
            "jobs": len(runtime.jobs),
            "locks": len(runtime._locks),
            "wakes": len(runtime.goal_wake),
            "failing": len(runtime.backoff.failing("goals")),
        }
        listed = [
            query for method, path, query in requests_to_ours(cluster)
            if method == "GET" and path.endswith("/jobs") and "goal-uid" in query
        ]  # fmt: skip

    assert kept == dict.fromkeys(kept, 0)
    assert listed == []  # by name, not by a label selector per goal


def test_a_job_deleted_while_the_watch_was_away_is_found_by_the_audit(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    """No watch runs here: the Job's deletion sends the runtime no event; its audit (a listing
    of the worker Jobs) finds the Job gone, and the goal's cycle says so."""
    cluster = Cluster(emulator_server)
    cluster.create(goal_manifest("g-audit"))

    async def scenario() -> None:
        client = new_api_client(emulator_server)
        settings = OperatorSettings(requeue_seconds=0.1, worker_image="backlog-operator:test")
        runtime = Runtime(KubeCluster(client), settings)
        try:
            await runtime.seed([])
            await runtime.apply(NS, "g-audit")  # its Job created, as an event would have it
            [job] = cluster.jobs_of("g-audit")
            cluster.api.delete_object(JOBS, NS, job["metadata"]["name"])

            await runtime.audit()
            await runtime.settled()  # the cycles the audit started
        finally:
            runtime.cluster.close()
            client.close()  # type: ignore[no-untyped-call]  # kubernetes leaves it unannotated

    asyncio.run(scenario())

    status = cluster.status("g-audit")
    assert (status["phase"], status["reason"]) == ("Queued", "Backoff"), status
    assert "disappeared" in status["message"]
