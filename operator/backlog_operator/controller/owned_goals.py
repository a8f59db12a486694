"""What the Backlog and GoalSchedule controllers share about the Goals they own. Pure helpers,
plus the one shared step both take: deleting finished Goals beyond the history limits.

- `owned_goal`: the manifest of a Goal they create, controlled by its owner (the garbage
  collector deletes it with the owner);
- `controlled_by`: whether a Goal is controlled by an owner (its ownerReference, by uid);
- `phase_of`: a listed Goal's phase;
- `awaiting_pull_request`: the succeeded Goals whose pull request may still be open (history
  keeps them: their outcome is not known yet);
- history, as CronJob's: finished Goals beyond the limit per outcome are deleted oldest first
  (by start time, then name; a Goal that never started counts as newest); Skipped counts as
  success, the task was done (`history_to_delete`, `trim_history`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import kopf

from backlog_operator.api.common import API_VERSION, ApiModel
from backlog_operator.api.goal import FINAL_PHASES, SUCCESSFUL_PHASES, Phase
from backlog_operator.controller.results import Event
from backlog_operator.controller.status import parse_time, require_aware


def awaiting_pull_request(goals: Sequence[Mapping[str, Any]]) -> set[str]:
    """Names of the succeeded Goals with a pull request not known to be merged or closed: its
    outcome is not known yet (it may need a heal, or be declined), so history keeps them."""
    kept = set()
    for goal in goals:
        pull = (goal.get("status") or {}).get("pullRequest")
        if not isinstance(pull, Mapping) or pull.get("state") in ("merged", "closed"):
            continue
        if phase_of(goal) is Phase.SUCCEEDED:
            kept.add(str((goal.get("metadata") or {}).get("name")))
    return kept


class GoalDeleter(Protocol):
    """The one API call history trimming makes."""

    async def delete_goal(self, namespace: str, name: str) -> None: ...


def owned_goal(
    owner: ApiModel,
    *,
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    spec: Mapping[str, Any],
) -> dict[str, Any]:
    """A Goal's manifest, controlled by `owner` (a Backlog or a GoalSchedule)."""
    manifest: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Goal",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": dict(annotations),
        },
        "spec": dict(spec),
    }
    reference = owner.model_dump(
        by_alias=True, mode="json", include={"api_version", "kind", "metadata"}
    )
    kopf.append_owner_reference(manifest, owner=kopf.Body(cast(kopf.RawBody, reference)))
    return manifest


def controlled_by(goal: Mapping[str, Any], owner_uid: str | None) -> bool:
    """Whether `goal` is controlled by the object of `owner_uid`: an ownerReference with that
    uid and `controller: true`, as `owned_goal` writes it (and as Kubernetes' controllers
    decide what they own, `metav1.IsControlledBy`). Labels anyone can copy do not count."""
    if not owner_uid:
        return False
    references = (goal.get("metadata") or {}).get("ownerReferences") or []
    return any(
        isinstance(ref, Mapping) and ref.get("uid") == owner_uid and ref.get("controller") is True
        for ref in references
    )


def phase_of(goal: Mapping[str, Any]) -> Phase:
    """A Goal's phase (Pending until the operator has written one)."""
    value = (goal.get("status") or {}).get("phase") or Phase.PENDING
    try:
        return Phase(value)
    except ValueError:  # not a phase the operator writes: not finished, as it reads
        return Phase.PENDING


@dataclass(frozen=True)
class FinishedGoal:
    """An owned Goal that has finished.

    `succeeded` is its outcome as the history limits count it: True for Succeeded (and Skipped:
    the task was already done), False for Failed. `start_time` is its status.startTime, None
    when it never started.
    """

    name: str
    succeeded: bool
    start_time: datetime | None


def history_to_delete(
    finished: Sequence[FinishedGoal], successful_limit: int, failed_limit: int
) -> list[str]:
    """Names of the finished Goals to delete: beyond each limit, the oldest, oldest first.

    Age is CronJob's: start time, ties broken by name, a Goal with no start time counting as the
    newest. A limit of 0 keeps none of that outcome.
    """
    if successful_limit < 0 or failed_limit < 0:
        raise ValueError("history limits must not be negative")
    for goal in finished:
        if goal.start_time is not None:
            require_aware(goal.start_time, f"start_time of {goal.name}")
    doomed: list[FinishedGoal] = []
    for succeeded, limit in ((True, successful_limit), (False, failed_limit)):
        goals = sorted((g for g in finished if g.succeeded is succeeded), key=_age)
        doomed.extend(goals[: max(0, len(goals) - limit)])
    return [goal.name for goal in sorted(doomed, key=_age)]


async def trim_history(
    cluster: GoalDeleter,
    namespace: str,
    goals: Sequence[Mapping[str, Any]],
    *,
    successful: int,
    failed: int,
    keep: AbstractSet[str] = frozenset(),
    deletable: Callable[[Mapping[str, Any]], bool] | None = None,
) -> tuple[list[Event], list[str]]:
    """Delete finished Goals beyond the limits per outcome, oldest first (as CronJob does);
    the events, and the names of those beyond the limits that `deletable` held back for now.

    Skipped counts as success: the task was done. Goals named in `keep` are neither deleted nor
    counted (a Backlog's Goal whose pull request is open, or that holds a decline). A Goal
    `deletable` refuses still counts against the limits (it is gone soon), so no newer Goal is
    deleted in its place.
    """
    finished = [
        FinishedGoal(
            name=g["metadata"]["name"],
            succeeded=phase_of(g) in SUCCESSFUL_PHASES,
            start_time=parse_time((g.get("status") or {}).get("startTime")),
        )
        for g in goals
        if phase_of(g) in FINAL_PHASES and g["metadata"]["name"] not in keep
    ]
    beyond = history_to_delete(finished, successful, failed)
    allowed = {str(g["metadata"]["name"]) for g in goals if deletable is None or deletable(g)}
    doomed = [name for name in beyond if name in allowed]
    held = [name for name in beyond if name not in allowed]
    for name in doomed:
        await cluster.delete_goal(namespace, name)
    if not doomed:
        return [], held
    return [Event("Normal", "HistoryTrimmed", f"deleted finished goals {', '.join(doomed)}")], held


def _age(goal: FinishedGoal) -> tuple[bool, datetime, str]:
    # CronJob's byJobStartTime: by start time, a Job with none after all others, then by name.
    started = (
        goal.start_time.astimezone(UTC) if goal.start_time else datetime.max.replace(tzinfo=UTC)
    )
    return (goal.start_time is None, started, goal.name)
