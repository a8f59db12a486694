"""Whether the operator is ready (`/readyz`); it is alive (`/healthz`) while its loop answers.

Ready means all three:
- synced: the start-up listing of every Goal and worker Job is done, so the capacity table holds
  what runs and no decision over-admits (`Runtime.seed`, in the startup handler). kopf's own
  first listing of each kind follows as watch events, which the runtime takes as they come;
- active: this replica is the one that acts. With leader election (`controller.leader`) that
  is the replica holding the Lease: a standby answers 503 "standby" (it lists nothing, as it
  runs no kopf, until it leads); without, the only replica always is;
- not stopping: kopf's cleanup has not begun.
"""

from __future__ import annotations

from collections.abc import Callable


def _always() -> bool:
    return True


class Readiness:
    """What `/readyz` answers; the startup and cleanup handlers move it."""

    def __init__(self, active: Callable[[], bool] = _always) -> None:
        self.synced = False
        self.stopping = False
        # The hook for leader election: whether this replica holds the lease. Without one the
        # only replica is the active one.
        self.active = active

    def mark_synced(self) -> None:
        """The start-up listing is done: the runtime decides from what it knows."""
        self.synced = True

    def mark_stopping(self) -> None:
        """The operator is shutting down: no longer ready."""
        self.stopping = True

    def check(self) -> tuple[bool, str]:
        """(ready, why) for `/readyz`."""
        if self.stopping:
            return False, "stopping"
        if not self.active():
            return False, "standby: another replica is active"
        if not self.synced:
            return False, "starting: listing goals and worker Jobs"
        return True, "ok"
