"""Leader election's state machine (`controller.election`) and its loops (`controller.leader`) on
a clock the test moves, against a Lease kept in memory with the API server's optimistic
concurrency (a write naming a stale resourceVersion is refused with a conflict)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from pydantic import ValidationError

from backlog_operator.adapters.leases import LeaseConflictError
from backlog_operator.controller import main
from backlog_operator.controller.election import (
    RELEASED_LEASE_SECONDS,
    Election,
    LeaseRecord,
    Observed,
    Timing,
    lease_spec,
    observed,
)
from backlog_operator.controller.health import Readiness
from backlog_operator.controller.leader import LeaderElector
from backlog_operator.controller.metrics import Metrics
from backlog_operator.controller.settings import OperatorSettings

TIMING = Timing(lease_duration=15, renew_deadline=10.0, retry_period=2.0)
START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """Monotonic seconds and the wall time they stand for, moved by the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return START + timedelta(seconds=self.now)


class MemoryLease:
    """One Lease as the API server keeps it: each stored write bumps its resourceVersion, and a
    write naming another is refused (409), as is a create of one that exists."""

    namespace, name = "backlog-operator-system", "backlog-operator"

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.failing = False  # every call raises, as an unreachable API server does
        self.writes: list[dict[str, Any]] = []

    async def read(self) -> dict[str, Any] | None:
        if self.failing:
            raise ConnectionError("no answer")
        return None if self.lease is None else dict(self.lease)

    async def write(self, spec: dict[str, Any], resource_version: str | None) -> dict[str, Any]:
        if self.failing:
            raise ConnectionError("no answer")
        current = None if self.lease is None else self.lease["metadata"]["resourceVersion"]
        if resource_version != current:
            raise LeaseConflictError("Conflict")
        self.version += 1
        self.lease = {"metadata": {"resourceVersion": str(self.version)}, "spec": dict(spec)}
        self.writes.append(dict(spec))
        return dict(self.lease)


def election(identity: str, clock: Clock) -> Election:
    return Election(identity, TIMING, clock=clock, wall=clock.wall)


def held_by(holder: str, rv: str = "7", duration: int = 15) -> Observed:
    return Observed(LeaseRecord(holder, duration, START, START, 3), rv)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ----------------------------------------------------------------------- the state machine


def test_no_lease_is_created_with_this_replica_holding_it() -> None:
    clock = Clock()
    mine = election("a", clock)
    mine.observe(None)
    write = mine.next_write()
    assert write is not None and write.resource_version is None
    assert write.record == LeaseRecord("a", 15, clock.wall(), clock.wall(), 0)
    mine.written(Observed(write.record, "1"))
    assert mine.leading and not mine.lost


def test_a_held_lease_is_taken_only_once_it_expired_on_the_candidates_own_clock() -> None:
    clock = Clock()
    mine = election("b", clock)
    mine.observe(held_by("a"))  # its renewTime says 2026-01-01; our clock decides, not it
    assert mine.next_write() is None
    clock.now += 14.9
    mine.observe(held_by("a"))  # the same record: not renewed since
    assert mine.next_write() is None and not mine.expired()
    clock.now += 0.1
    write = mine.next_write()
    assert write is not None and write.resource_version == "7"
    assert write.record.holder == "b" and write.record.lease_transitions == 4
    assert write.record.acquire_time == write.record.renew_time == clock.wall()


def test_a_standby_tries_again_right_when_the_lease_it_saw_expires() -> None:
    clock = Clock()
    mine = election("b", clock)
    assert mine.next_try_in() == 2.0  # nothing seen yet: the retry period
    mine.observe(held_by("a"))
    clock.now += 14.0
    assert mine.next_try_in() == 1.0  # the expiry comes before the next period's try
    clock.now += 1.0
    assert mine.next_try_in() == 0.0
    assert mine.next_write() is not None


def test_a_renewal_seen_restarts_the_wait() -> None:
    clock = Clock()
    mine = election("b", clock)
    mine.observe(held_by("a", rv="7"))
    clock.now += 10
    renewed = Observed(LeaseRecord("a", 15, START, START + timedelta(seconds=10), 3), "8")
    mine.observe(renewed)
    clock.now += 10  # 20 s since first seen, 10 since the renewal was seen
    assert mine.next_write() is None
    clock.now += 5
    assert mine.next_write() is not None


def test_a_released_lease_is_taken_at_once() -> None:
    clock = Clock()
    mine = election("b", clock)
    mine.observe(Observed(LeaseRecord("", RELEASED_LEASE_SECONDS, START, START, 3), "9"))
    write = mine.next_write()
    assert write is not None and write.record.holder == "b"
    assert write.record.lease_transitions == 4


def test_the_leader_renews_keeping_its_acquire_time_and_transitions() -> None:
    clock = Clock()
    mine = election("a", clock)
    mine.observe(held_by("b"))
    clock.now += 15
    taken = mine.next_write()
    assert taken is not None
    mine.written(Observed(taken.record, "8"))
    clock.now += 2
    mine.observe(Observed(taken.record, "8"))
    renewal = mine.next_write()
    assert renewal is not None and renewal.resource_version == "8"
    assert renewal.record.acquire_time == taken.record.acquire_time
    assert renewal.record.renew_time == clock.wall()
    assert renewal.record.lease_transitions == taken.record.lease_transitions


def test_a_leader_that_cannot_renew_steps_down_at_the_renew_deadline_before_expiry() -> None:
    clock = Clock()
    mine = election("a", clock)
    mine.observe(None)
    write = mine.next_write()
    assert write is not None
    mine.written(Observed(write.record, "1"))
    clock.now += 9.9
    mine.failed()
    assert (mine.leading, mine.lost) == (True, False)
    clock.now += 0.1  # 10 s: the deadline, 5 s before anyone else may take the Lease
    mine.failed()
    assert (mine.leading, mine.lost) == (False, True)
    assert mine.next_write() is None and mine.release_write() is None


def test_the_renew_deadline_counts_from_when_the_renewal_was_sent() -> None:
    clock = Clock()
    mine = election("a", clock)
    mine.observe(None)
    write = mine.next_write()
    assert write is not None
    sent_at = clock.now
    clock.now += 1.5  # a slow answer: the API server may have stored it as it was sent
    mine.written(Observed(write.record, "1"), sent_at)
    clock.now += 8.5  # 10 s since it was sent, 8.5 since the answer
    assert mine.check_deadline() and not mine.leading


def test_a_leader_that_reads_another_holder_has_lost_for_good() -> None:
    clock = Clock()
    mine = election("a", clock)
    mine.observe(None)
    write = mine.next_write()
    assert write is not None
    mine.written(Observed(write.record, "1"))
    mine.observe(held_by("b", rv="2"))
    assert mine.lost and not mine.leading
    clock.now += 60  # even once that lease expires: a lost replica never leads again
    assert mine.next_write() is None


def test_the_release_clears_the_holder_and_shortens_the_lease() -> None:
    clock = Clock()
    mine = election("a", clock)
    mine.observe(None)
    write = mine.next_write()
    assert write is not None
    mine.written(Observed(write.record, "1"))
    clock.now += 3
    release = mine.release_write()
    assert release is not None and release.resource_version == "1"
    assert release.record.holder == ""
    assert release.record.lease_duration_seconds == RELEASED_LEASE_SECONDS
    assert release.record.lease_transitions == 0
    mine.written(Observed(release.record, "2"))
    assert not mine.leading and not mine.lost


def test_timings_must_let_the_leader_give_up_before_the_lease_expires() -> None:
    with pytest.raises(ValueError, match="lease duration > renew deadline > retry period"):
        Timing(lease_duration=10, renew_deadline=10.0, retry_period=2.0)
    with pytest.raises(ValueError, match=r"got 15, 2\.0, 2\.0"):
        Timing(lease_duration=15, renew_deadline=2.0, retry_period=2.0)


def test_the_lease_spec_round_trips_with_microseconds() -> None:
    record = LeaseRecord("a_1f2e", 15, START, START + timedelta(microseconds=123456), 2)
    spec = lease_spec(record)
    assert spec["renewTime"] == "2026-01-01T00:00:00.123456Z"
    assert observed({"metadata": {"resourceVersion": "5"}, "spec": spec}) == Observed(record, "5")
    assert observed({"metadata": {}, "spec": {"holderIdentity": None}}).record == LeaseRecord()


# -------------------------------------------------------------------------------- the loops


def test_of_two_candidates_writing_at_once_one_wins_the_other_lost_the_race() -> None:
    clock, lease = Clock(), MemoryLease()
    first, second = election("a", clock), election("b", clock)

    async def race() -> None:
        # Both read "no Lease", then both create it: the API server stores one.
        first.observe(None)
        second.observe(None)
        for candidate in (first, second):
            write = candidate.next_write()
            assert write is not None
            try:
                stored = await lease.write(lease_spec(write.record), write.resource_version)
            except LeaseConflictError:
                candidate.conflicted()
            else:
                candidate.written(observed(stored))

    run(race())
    assert first.leading and not second.leading and not second.lost
    assert len(lease.writes) == 1


def test_a_stale_update_conflicts_and_the_candidate_stays_standby() -> None:
    clock, lease = Clock(), MemoryLease()
    leader = LeaderElector(election("a", clock), lease)
    standby = LeaderElector(election("b", clock), lease)
    assert run(leader.try_once())
    assert not run(standby.try_once())
    clock.now += 15  # the standby sees the lease expire, but the leader renews first
    standby.election.observe(observed(run(lease.read())))
    write = standby.election.next_write()
    assert write is not None
    assert run(leader.try_once())
    with pytest.raises(LeaseConflictError):
        run(lease.write(lease_spec(write.record), write.resource_version))
    standby.election.conflicted()
    assert not standby.leading and leader.leading
    assert run(lease.read())["spec"]["holderIdentity"] == "a"


def test_the_standby_takes_over_once_the_leader_stops_renewing() -> None:
    clock, lease = Clock(), MemoryLease()
    changes: list[bool] = []
    leader = LeaderElector(election("a", clock), lease)
    standby = LeaderElector(election("b", clock), lease, on_change=changes.append)
    assert run(leader.try_once())
    for _ in range(8):  # tries at 0, 2, ... 14 s: held
        assert not run(standby.try_once())
        clock.now += 2
    assert run(standby.try_once())  # 16 s since it first saw the record
    assert changes == [True]
    spec = run(lease.read())["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


def test_a_released_lease_is_taken_at_the_standbys_next_try() -> None:
    clock, lease = Clock(), MemoryLease()
    leader = LeaderElector(election("a", clock), lease)
    standby = LeaderElector(election("b", clock), lease)
    assert run(leader.try_once())
    assert not run(standby.try_once())
    run(leader.release())
    assert lease.writes[-1]["holderIdentity"] == ""
    assert not leader.leading
    assert run(standby.try_once())


def test_keep_calls_on_lost_when_renewals_fail_past_the_deadline() -> None:
    lease = MemoryLease()
    timing = Timing(lease_duration=3, renew_deadline=0.2, retry_period=0.05)
    elector = LeaderElector(Election("a", timing), lease)
    lost: list[bool] = []

    async def scenario() -> None:
        assert await elector.try_once()
        lease.failing = True
        await asyncio.wait_for(elector.keep(lambda: lost.append(True)), 5)

    run(scenario())
    assert lost == [True] and elector.election.lost


def test_keep_calls_on_lost_when_another_replica_took_the_lease() -> None:
    lease = MemoryLease()
    timing = Timing(lease_duration=3, renew_deadline=1.0, retry_period=0.05)
    elector = LeaderElector(Election("a", timing), lease)
    lost: list[bool] = []

    async def scenario() -> None:
        assert await elector.try_once()
        stolen = await lease.read()
        assert stolen is not None
        spec = {**stolen["spec"], "holderIdentity": "intruder"}
        await lease.write(spec, stolen["metadata"]["resourceVersion"])
        await asyncio.wait_for(elector.keep(lambda: lost.append(True)), 5)

    run(scenario())
    assert lost == [True]


def test_acquire_returns_when_asked_to_stop() -> None:
    lease = MemoryLease()
    timing = Timing(lease_duration=3, renew_deadline=1.0, retry_period=0.05)
    holder = LeaderElector(Election("a", timing), lease)
    waiting = LeaderElector(Election("b", timing), lease)

    async def scenario() -> bool:
        assert await holder.try_once()
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, stop.set)
        return await waiting.acquire(stop)

    assert run(scenario()) is False
    assert not waiting.leading


# ----------------------------------------------------------------------- settings and wiring


def test_settings_refuse_a_lease_that_does_not_outlast_the_renew_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKLOG_OPERATOR_LEASE_DURATION_SECONDS", "8")
    with pytest.raises(ValidationError, match="LEASE_DURATION_SECONDS > RENEW_DEADLINE_SECONDS"):
        OperatorSettings()
    monkeypatch.setenv("BACKLOG_OPERATOR_LEASE_DURATION_SECONDS", "15")
    monkeypatch.setenv("BACKLOG_OPERATOR_RETRY_PERIOD_SECONDS", "8")
    with pytest.raises(ValidationError, match=r"got 15, 8\.0, 8\.0"):
        OperatorSettings()


def test_leader_election_is_off_unless_asked_and_then_uses_the_pods_namespace_and_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(main, "api_client", k8s.ApiClient)  # no cluster: nothing is called
    metrics, readiness = Metrics(), Readiness()
    assert main.leader_elector(OperatorSettings(), metrics, readiness) is None
    assert readiness.active() is True

    namespace_file = tmp_path / "namespace"
    monkeypatch.setattr(main, "SERVICE_ACCOUNT_NAMESPACE", namespace_file)
    on = OperatorSettings(leader_election=True, pod_name="backlog-operator-7c9f-x2")
    with pytest.raises(ValueError, match="BACKLOG_OPERATOR_LEADER_ELECTION_NAMESPACE"):
        main.leader_elector(on, metrics, readiness)
    namespace_file.write_text("ops\n", encoding="utf-8")
    elector = main.leader_elector(on, metrics, readiness)
    assert elector is not None
    assert (elector.store.namespace, elector.store.name) == ("ops", "backlog-operator")
    assert re.fullmatch(r"backlog-operator-7c9f-x2_[0-9a-f]{8}", elector.election.identity)
    assert elector.timing == Timing(12, 8.0, 2.0)
    # A standby until it leads: /readyz 503, leader_election_master_status 0, then 1.
    assert readiness.check() == (False, "standby: another replica is active")
    gauge = ("leader_election_master_status", {"name": "backlog-operator"})
    assert metrics.registry.get_sample_value(*gauge) == 0
    elector.on_change(True)
    assert metrics.registry.get_sample_value(*gauge) == 1
    named = OperatorSettings(leader_election=True, leader_election_namespace="elsewhere")
    other = main.leader_elector(named, Metrics(), Readiness())
    assert other is not None and other.store.namespace == "elsewhere"


def test_renewals_that_end_for_any_reason_but_a_cancel_stop_the_replica(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stopped: list[bool] = []
    monkeypatch.setattr(main, "_stop_acting_now", lambda: stopped.append(True))

    async def broken() -> None:
        raise RuntimeError("a defect in the renewals")

    async def scenario() -> None:
        failed = asyncio.create_task(broken())
        await asyncio.wait([failed])
        main._renewals_ended(failed)
        cancelled = asyncio.create_task(asyncio.sleep(60))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.wait([cancelled])
        main._renewals_ended(cancelled)  # kopf stopped: the renewals are cancelled, as planned

    run(scenario())
    assert stopped == [True]
