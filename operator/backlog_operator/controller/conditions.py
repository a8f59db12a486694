"""The conditions every kind reports, set in one way: `Ready`, `Reconciling`, `Stalled`. Pure.

As Flux's `conditions` package, for every kind the operator serves (Goal, Backlog,
GoalSchedule), each helper setting the three together, always all three, in that order:

| helper | `Ready` | `Reconciling` | `Stalled` |
|---|---|---|---|
| `mark_ready` | True (reason, message) | False (`Finished`) | False (`NotStalled`) |
| `mark_reconciling` | False (reason, message) | True (reason, message) | False (`NotStalled`) |
| `mark_stalled` | False (reason, message) | False (`Finished`) | True (reason, message) |

Each condition carries the `observedGeneration` it was computed for; `lastTransitionTime`
changes only when a condition's status changes, as Kubernetes expects. Conditions of other
types (a Goal's `Merged`) are kept as they are, after the three.

`mark_failing` is the runtime's, for any kind: a reconcile that keeps failing whatever raised
(`ReconcileError`): still retried (`Reconciling`), or `Stalled` when no retry can fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from backlog_operator.api.common import Condition, ConditionStatus
from backlog_operator.controller.status import instant

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
# Reasons of a condition that is False because nothing is going on.
FINISHED = "Finished"
NOT_STALLED = "NotStalled"
# Reason of Ready=False while reconciles of the object fail (the runtime's, any kind).
RECONCILE_ERROR = "ReconcileError"


def mark_ready(
    previous: Sequence[Condition],
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Ready: the object is as it should be (`reason` says how)."""
    return _summary(
        previous,
        [("True", reason, message), ("False", FINISHED, ""), ("False", NOT_STALLED, "")],
        generation,
        now,
    )


def mark_reconciling(
    previous: Sequence[Condition],
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Not ready yet, but working on it (`reason` says what it waits for)."""
    return _summary(
        previous,
        [("False", reason, message), ("True", reason, message), ("False", NOT_STALLED, "")],
        generation,
        now,
    )


def mark_stalled(
    previous: Sequence[Condition],
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Not ready, and it will not get there without a person (`reason` says why)."""
    return _summary(
        previous,
        [("False", reason, message), ("False", FINISHED, ""), ("True", reason, message)],
        generation,
        now,
    )


def mark_failing(
    previous: Sequence[Condition],
    message: str,
    *,
    permanent: bool,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Reconciles of the object fail (`message`): Ready=False with `ReconcileError`, and
    Reconciling=True while a retry may help, Stalled=True when none can (a person must act:
    a refused request, a missing permission; the operator still tries now and then)."""
    mark = mark_stalled if permanent else mark_reconciling
    return mark(previous, RECONCILE_ERROR, message, generation=generation, now=now)


def set_condition(
    previous: Sequence[Condition],
    kind: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """`previous` with the condition `kind` set (in its place, or added at the end)."""
    old = find(previous, kind)
    changed = old is None or old.status != status
    condition = Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=instant(now) if changed or old is None else old.last_transition_time,
    )
    if old is None:
        return [*previous, condition]
    return [condition if item.type == kind else item for item in previous]


def observe_generation(conditions: Sequence[Condition], generation: int | None) -> list[Condition]:
    """The same conditions, computed for `generation` (a spec change seen, nothing else new)."""
    return [
        condition.model_copy(update={"observed_generation": generation}) for condition in conditions
    ]


def find(conditions: Sequence[Condition], kind: str) -> Condition | None:
    """The condition of type `kind`, if there is one."""
    return next((condition for condition in conditions if condition.type == kind), None)


def reason_of(
    conditions: Sequence[Condition], kind: str, status: ConditionStatus | None = None
) -> str | None:
    """The reason of condition `kind` (only when its status is `status`, if given)."""
    condition = find(conditions, kind)
    if condition is None or (status is not None and condition.status != status):
        return None
    return condition.reason


def _summary(
    previous: Sequence[Condition],
    wanted: Sequence[tuple[ConditionStatus, str, str]],
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    conditions: list[Condition] = []
    for kind, (status, reason, message) in zip((READY, RECONCILING, STALLED), wanted, strict=True):
        (condition,) = set_condition(
            [c for c in previous if c.type == kind][-1:],
            kind,
            status,
            reason,
            message,
            generation=generation,
            now=now,
        )
        conditions.append(condition)
    return conditions + [c for c in previous if c.type not in (READY, RECONCILING, STALLED)]
