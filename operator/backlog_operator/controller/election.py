"""Leader election on a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection` does it:
the pure state machine, no I/O (`controller.leader` drives it against `adapters.leases`).

The Lease's spec is the record: `holderIdentity`, `leaseDurationSeconds`, `acquireTime`,
`renewTime`, `leaseTransitions`. Every write names the `resourceVersion` it read, so of two
replicas that write at once the API server keeps one and answers the other 409 Conflict: that
one lost the race (optimistic concurrency, no lock held anywhere else).

- A candidate takes the Lease when nobody holds it (no Lease, or an empty holder) or when the
  holder's lease has expired: `leaseDurationSeconds` have passed, on the candidate's own
  monotonic clock, since the candidate first saw the record as it is now (not since the
  `renewTime` written in it: the holder's clock may disagree with ours). Taking it over bumps
  `leaseTransitions` and sets `acquireTime`.
- The leader renews (`renewTime`) every `retry_period`; a leader that has not renewed for
  `renew_deadline` (shorter than the lease, so it stops before anyone may take over), or that
  reads another holder in the Lease, has lost it, for good: `lost` stays true (the process
  exits and starts again as a candidate, as controller-runtime's managers do).
- On a graceful stop the leader releases: holder cleared, `leaseDurationSeconds` 1, so the
  next candidate takes over at its next try rather than after the lease expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

# Seconds of `leaseDurationSeconds` in the record a release writes (client-go's choice): with
# the holder cleared, any candidate takes the Lease at once whatever it says.
RELEASED_LEASE_SECONDS = 1
# The MicroTime format of `acquireTime` and `renewTime`.
_MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class Timing:
    """client-go's three durations. controller-runtime's defaults are 15, 10 and 2 seconds;
    ours are shorter, so that a standby takes over within 15 s of a leader's crash."""

    lease_duration: int = 12
    renew_deadline: float = 8.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        # As client-go checks them: the leader must give up before anyone may take over, and
        # try more than once before it gives up.
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                "leader election needs lease duration > renew deadline > retry period > 0, got "
                f"{self.lease_duration}, {self.renew_deadline}, {self.retry_period}"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """The spec of the Lease: who holds it, since when, for how long."""

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    lease_transitions: int = 0


@dataclass(frozen=True)
class Observed:
    """A Lease as read (or as a write of ours stored it): its record and `resourceVersion`."""

    record: LeaseRecord
    resource_version: str


@dataclass(frozen=True)
class Write:
    """A write the election asks for: create the Lease (`resource_version` None) or replace
    it, on condition that it is still at `resource_version`."""

    record: LeaseRecord
    resource_version: str | None


class Election:
    """One replica's view of the election. The driver reads the Lease and calls `observe`, asks
    `next_write` what to write, and reports how the write went (`written`, `conflicted`,
    `failed`); `leading` and `lost` say where this replica stands. `clock` is monotonic
    seconds (expiry and deadlines), `wall` the time written into the record."""

    def __init__(
        self,
        identity: str,
        timing: Timing | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not identity:
            raise ValueError("a leader election identity must not be empty")
        self.identity = identity
        self.timing = timing or Timing()
        self.clock, self.wall = clock, wall
        self.observed: Observed | None = None
        self.observed_at = 0.0  # when the record as it is now was first seen
        self.renewed_at: float | None = None  # our last successful write, while leading
        self.leading = False
        self.lost = False

    def observe(self, found: Observed | None) -> None:
        """What a read of the Lease found (None: there is none). A leader that finds another
        holder has lost the Lease."""
        if found is None:
            self.observed = None
            return
        if self.observed is None or found.record != self.observed.record:
            self.observed_at = self.clock()
        self.observed = found
        if self.leading and found.record.holder != self.identity:
            self._lose()

    def expired(self) -> bool:
        """Whether the observed record's lease has run out (or nobody holds it)."""
        if self.observed is None or not self.observed.record.holder:
            return True
        duration = self.observed.record.lease_duration_seconds
        return self.clock() >= self.observed_at + duration

    def next_try_in(self) -> float:
        """Seconds until a standby's next try: the retry period, or less when the observed
        lease expires sooner (so a takeover comes at the expiry, not up to a period later)."""
        if self.observed is None or not self.observed.record.holder:
            return self.timing.retry_period
        expiry = self.observed_at + self.observed.record.lease_duration_seconds
        return min(self.timing.retry_period, max(0.0, expiry - self.clock()))

    def next_write(self) -> Write | None:
        """The write to make now: create or take over the Lease, or renew it; None while
        another replica holds a lease that has not expired (or once this one has lost)."""
        if self.lost:
            return None
        now = self.wall()
        if self.observed is None:
            record = LeaseRecord(self.identity, self.timing.lease_duration, now, now, 0)
            return Write(record, None)
        old = self.observed.record
        if old.holder == self.identity:  # renew (or resume a lease a restart of ours held)
            record = replace(old, lease_duration_seconds=self.timing.lease_duration, renew_time=now)
            if old.acquire_time is None:
                record = replace(record, acquire_time=now)
            return Write(record, self.observed.resource_version)
        if not self.expired():
            return None
        record = LeaseRecord(
            self.identity, self.timing.lease_duration, now, now, old.lease_transitions + 1
        )
        return Write(record, self.observed.resource_version)

    def written(self, stored: Observed, sent_at: float | None = None) -> None:
        """A write of ours was stored: this replica leads until `renew_deadline` from when it
        was sent (`sent_at`, else now): the API server stored it no earlier, so the deadline
        never falls later than the lease's expiry as a standby counts it."""
        self.observed, self.observed_at = stored, self.clock()
        self.renewed_at = self.observed_at if sent_at is None else sent_at
        self.leading = stored.record.holder == self.identity
        if not self.leading:  # our own release
            self.renewed_at = None

    def conflicted(self) -> None:
        """Another write came first (409): a candidate lost the race; a leader reads the
        Lease again at its next try (and learns whether it still holds it)."""
        self.check_deadline()

    def failed(self) -> None:
        """A read or write failed (no answer, 5xx): a leader keeps trying until its deadline."""
        self.check_deadline()

    def check_deadline(self) -> bool:
        """Whether this replica has lost the Lease: a leader loses it once `renew_deadline`
        has passed since its last successful renewal."""
        if (
            self.leading
            and self.renewed_at is not None
            and self.clock() - self.renewed_at >= self.timing.renew_deadline
        ):
            self._lose()
        return self.lost

    def release_write(self) -> Write | None:
        """The write that hands the Lease over on a graceful stop (None: not leading)."""
        if not self.leading or self.lost or self.observed is None:
            return None
        now = self.wall()
        record = replace(
            self.observed.record,
            holder="",
            lease_duration_seconds=RELEASED_LEASE_SECONDS,
            acquire_time=now,
            renew_time=now,
        )
        return Write(record, self.observed.resource_version)

    def _lose(self) -> None:
        self.leading, self.lost, self.renewed_at = False, True, None


def lease_spec(record: LeaseRecord) -> dict[str, Any]:
    """The Lease's spec for a record (the times as MicroTime)."""
    spec: dict[str, Any] = {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "leaseTransitions": record.lease_transitions,
    }
    if record.acquire_time is not None:
        spec["acquireTime"] = record.acquire_time.astimezone(UTC).strftime(_MICRO_TIME)
    if record.renew_time is not None:
        spec["renewTime"] = record.renew_time.astimezone(UTC).strftime(_MICRO_TIME)
    return spec


def observed(lease: Mapping[str, Any]) -> Observed:
    """A Lease as the election sees it: its record and resourceVersion. Missing or malformed
    fields read as absent (a Lease written by hand may lack them)."""
    spec = lease.get("spec") or {}
    record = LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration_seconds=_int(spec.get("leaseDurationSeconds")),
        acquire_time=_time(spec.get("acquireTime")),
        renew_time=_time(spec.get("renewTime")),
        lease_transitions=_int(spec.get("leaseTransitions")),
    )
    return Observed(record, str((lease.get("metadata") or {}).get("resourceVersion") or ""))


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
