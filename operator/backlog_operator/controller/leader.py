"""Leader election's loops: `LeaderElector` drives an `election.Election` against the Lease
(`adapters.leases.LeaseStore`).

- `acquire`: a standby reads the Lease every `retry_period` (and once more right when the
  lease it saw expires) and takes it when it is free or has expired; it returns once this
  replica leads (or when asked to stop first).
- `keep`: the leader renews every `retry_period`; each try is cut off at the renew deadline.
  Once the Lease is lost (not renewed within `renew_deadline`, or another holder read in it) it
  calls `on_lost` and returns: the caller must stop acting at once (`main` exits the process).
- `release`: on a graceful stop, once nothing acts any more, the holder is cleared so that the
  standby takes over at its next try.

What this replica is shows on `/readyz` (`leading` is `Readiness.active`) and on
`/metrics` (`leader_election_master_status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from backlog_operator.adapters.kube import describe_failure
from backlog_operator.adapters.leases import LeaseConflictError
from backlog_operator.controller.election import Election, Observed, lease_spec, observed

log = logging.getLogger("backlog_operator.controller")


class LeaseIO(Protocol):
    """What the elector needs of the Lease (`adapters.leases.LeaseStore`)."""

    namespace: str
    name: str

    async def read(self) -> dict[str, Any] | None: ...

    async def write(self, spec: dict[str, Any], resource_version: str | None) -> dict[str, Any]: ...


class LeaderElector:
    """One replica's part in the election, with `on_change(leading)` told of every change."""

    def __init__(
        self,
        election: Election,
        store: LeaseIO,
        *,
        on_change: Callable[[bool], None] = lambda leading: None,
    ) -> None:
        self.election = election
        self.store = store
        self.on_change = on_change
        self.timing = election.timing

    @property
    def leading(self) -> bool:
        """Whether this replica holds the Lease (and has not lost it)."""
        return self.election.leading

    async def try_once(self) -> bool:
        """Read the Lease, then take or renew it when the election says so; whether this
        replica leads afterwards. Failures are logged: the next try reads afresh."""
        before = self.election.leading
        try:
            self.election.observe(_or_none(await self.store.read()))
            write = self.election.next_write()
            if write is not None:
                sent_at = self.election.clock()
                stored = await self.store.write(lease_spec(write.record), write.resource_version)
                self.election.written(observed(stored), sent_at)
        except LeaseConflictError:
            self.election.conflicted()
        except Exception as error:  # no answer, 5xx, 403: tried again
            message, _ = describe_failure(error)
            log.warning("leader election: the Lease could not be read or written: %s", message)
            self.election.failed()
        self._tell(before)
        return self.election.leading

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait as a standby until this replica leads (True) or `stop` is set (False)."""
        where = f"{self.store.namespace}/{self.store.name}"
        log.info("leader election: %s waits for Lease %s", self.election.identity, where)
        while not stop.is_set():
            if await self.try_once():
                log.info("leader election: %s leads (Lease %s)", self.election.identity, where)
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.election.next_try_in())
        return False

    async def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew the Lease every retry period until it is lost, then call `on_lost`."""
        while not self.election.lost:
            await asyncio.sleep(self.timing.retry_period)
            renewed_at = self.election.renewed_at or 0.0
            left = renewed_at + self.timing.renew_deadline - self.election.clock()
            try:
                await asyncio.wait_for(self.try_once(), max(left, 0.001))
            except TimeoutError:  # the try hangs past the deadline: the Lease is lost
                before = self.election.leading
                self.election.failed()
                self._tell(before)
            self.election.check_deadline()
        self.on_change(False)
        log.error(
            "leader election: %s lost Lease %s/%s: stopping at once",
            self.election.identity,
            self.store.namespace,
            self.store.name,
        )
        on_lost()

    async def release(self) -> None:
        """Hand the Lease over (holder cleared), when this replica leads; failures are logged
        (the standby then takes over once the lease expires)."""
        write = self.election.release_write()
        if write is None:
            return
        before = self.election.leading
        try:
            stored = await self.store.write(lease_spec(write.record), write.resource_version)
        except Exception as error:
            message, _ = describe_failure(error)
            log.warning("leader election: releasing the Lease failed: %s", message)
            return
        self.election.written(observed(stored))
        self._tell(before)
        log.info("leader election: %s released its Lease", self.election.identity)

    def _tell(self, before: bool) -> None:
        if self.election.leading != before:
            self.on_change(self.election.leading)


def _or_none(found: dict[str, Any] | None) -> Observed | None:
    return None if found is None else observed(found)
