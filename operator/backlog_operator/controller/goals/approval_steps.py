"""The Goal reconciler's approval steps (docs/operator.md, "Approval"). No kopf here.

- a staging attempt ended `staged`: the change is stored (`approval.store_staged`), the goal
  waits in AwaitingApproval (Event `AwaitingApproval`), its capacity slot given back;
- a goal AwaitingApproval: the decision `approval.decide` reads from its annotations and the
  time: Rejected, ApprovalExpired, ApprovalRefused (once per value), or Approved, which
  starts the publish-only Job (`approval_job`) through the reconciler's usual start (capacity,
  adoption of a Job whose create's answer was lost).

A mixin of `GoalReconciler`, which provides what is declared below.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from backlog_operator.api.goal import ApprovalStatus, Goal, GoalStatus, Phase
from backlog_operator.api.result import WorkerResult
from backlog_operator.controller.goals import approval
from backlog_operator.controller.goals.capacity import CapacityTable, entry_for
from backlog_operator.controller.results import Event, Reconciled
from backlog_operator.controller.status import evolve, instant
from backlog_operator.controller.usage import record_attempt

AWAITING = "AwaitingApproval"


class ApprovalSteps:
    """The approval steps; the rest of the reconciler is `GoalReconciler`'s."""

    cluster: object
    capacity: CapacityTable
    clock: Callable[[], datetime]

    def _status(
        self,
        status: GoalStatus,
        phase: Phase,
        reason: str,
        message: str,
        generation: int | None,
        **fields: Any,
    ) -> GoalStatus:
        raise NotImplementedError

    def _attempt_done(
        self, goal: Goal, status: GoalStatus, result: WorkerResult
    ) -> Reconciled[GoalStatus]:
        raise NotImplementedError

    async def _start(self, goal: Goal, status: GoalStatus) -> Reconciled[GoalStatus]:
        raise NotImplementedError

    # ------------------------------------------------------------------------ staged

    async def _staged(
        self, goal: Goal, status: GoalStatus, result: WorkerResult, pod: dict[str, Any] | None
    ) -> Reconciled[GoalStatus]:
        """A staging attempt ended `staged`: store the change and await approval, or fail the
        attempt as any other (retried when it can be)."""
        now = self.clock()
        stored = await approval.store_staged(self.cluster, goal, result, pod, now)
        if isinstance(stored, WorkerResult):
            return self._attempt_done(goal, status, stored)
        count = len(stored.changed_files)
        message = (
            f"change {stored.patch_hash} staged ({count} file{'s' if count != 1 else ''}, "
            f"branch {stored.branch}); awaiting approval until {instant(stored.expires_at)}"
        )
        new = self._status(
            evolve(status, unset=("step", "step_reason", "step_message", "step_reason_time")),
            Phase.AWAITING_APPROVAL,
            AWAITING,
            message,
            goal.metadata.generation,
            outcome=result.outcome.value,
            branch=stored.branch,
            changed_files=stored.changed_files,
            approval=stored,
            usage=record_attempt(status.usage, result, attempt_id=status.attempt_id, now=now),
        )
        self.capacity.put(entry_for(goal, new))  # no slot held while a person decides
        return Reconciled(new, [Event("Normal", AWAITING, message)])

    # ---------------------------------------------------------------------- awaiting

    async def _awaiting(self, goal: Goal, status: GoalStatus) -> Reconciled[GoalStatus]:
        """A goal AwaitingApproval: the decision its annotations and the time say."""
        self.capacity.put(entry_for(goal, status))
        staged = status.approval
        generation = goal.metadata.generation
        if staged is None:  # written by someone else: nothing to approve, stage again
            message = "awaiting approval without a staged change"
            return self._end(goal, status, "StagedPatchMissing", message)
        decision = approval.decide(goal.metadata.annotations, staged, self.clock())
        if decision.kind == "reject":
            return self._rejected(goal, status, staged, decision)
        if decision.kind == "expire":
            expiry = instant(staged.expires_at)
            message = f"the staged change {staged.patch_hash} was not approved by {expiry}"
            return self._end(goal, status, "ApprovalExpired", message)
        if decision.kind == "refuse":
            if decision.text == staged.refused_hash:
                return Reconciled()  # said once for this value; events only on transitions
            new = evolve(status, approval=staged.model_copy(update={"refused_hash": decision.text}))
            message = (
                f"approval refused: {decision.text!r} is not the staged change's hash "
                f"{staged.patch_hash}; nothing is published"
            )
            return Reconciled(new, [Event("Warning", "ApprovalRefused", message)])
        if decision.kind == "approve":
            return await self._approved(goal, status, staged, decision.by)
        if status.observed_generation != generation:
            return Reconciled(evolve(status, observed_generation=generation))
        return Reconciled()

    def _rejected(
        self, goal: Goal, status: GoalStatus, staged: ApprovalStatus, decision: approval.Decision
    ) -> Reconciled[GoalStatus]:
        now = instant(self.clock())
        recorded = staged.model_copy(update={"rejected_by": decision.by, "rejected_at": now})
        message = f"rejected by {decision.by}: {decision.text}"
        return self._end(goal, evolve(status, approval=recorded), "Rejected", message)

    async def _approved(
        self, goal: Goal, status: GoalStatus, staged: ApprovalStatus, by: str
    ) -> Reconciled[GoalStatus]:
        """Record the approval and start the publish-only Job (with its own attempts)."""
        if not await approval.patch_present(self.cluster, goal, staged):
            message = (
                f"the staged change's ConfigMap {staged.patch_config_map} is gone (or no longer "
                "holds the staged change); nothing was published"
            )
            return self._end(goal, status, "StagedPatchMissing", message)
        recorded = staged.model_copy(
            update={
                "approved_hash": staged.patch_hash,
                "approved_by": by,
                "approved_at": instant(self.clock()),
            }
        )
        message = f"change {staged.patch_hash} approved by {by}; publishing it"
        # Queued for a moment: the usual start decides (capacity, a Job to adopt), counting
        # the publish-only attempts from 1.
        ready = evolve(
            status,
            unset=("disruptions", "last_failure", "next_attempt_time"),
            approval=recorded,
            phase=Phase.QUEUED,
            attempts=0,
        )
        result = await self._start(goal, ready)
        if result.status is None:
            result.status = ready
        result.events.insert(0, Event("Normal", "Approved", message))
        return result

    def _end(
        self, goal: Goal, status: GoalStatus, reason: str, message: str
    ) -> Reconciled[GoalStatus]:
        """The goal fails for `reason` (a person's "no", the time, the patch gone)."""
        new = self._status(status, Phase.FAILED, reason, message, goal.metadata.generation)
        new = evolve(new, completion_time=instant(self.clock()))
        self.capacity.put(entry_for(goal, new))
        return Reconciled(new, [Event("Warning", reason, message)])
