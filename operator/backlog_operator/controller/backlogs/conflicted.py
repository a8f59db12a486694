"""Conflicted tasks: an open pull request that no longer merges and was not healed. Pure.

The operator heals a task's pull request that conflicts in the backlog file alone
(`controller/goals/heal.py`); one that conflicts in the task's own files (`Conflicted`), whose
task is gone from the base's backlog (`TaskNotInBase`), or that kept conflicting past the heal
limit (`HealLimitReached`) needs a person. Its Goal says so in its `Merged` condition; the
Backlog lists the task in `status.conflicted`, from its latest Goal (by creation), until the
pull request merges cleanly again, is merged or closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from backlog_operator.api.backlog import BacklogStatus, ConflictedTask
from backlog_operator.api.goal import Phase, PullRequestStatus
from backlog_operator.controller.backlogs.declined import goal_age, pull_request_of, task_of
from backlog_operator.controller.goals.pull_request import (
    CONFLICTED_REASON,
    HEAL_LIMIT_REASON,
    MERGED,
    TASK_NOT_IN_BASE_REASON,
)
from backlog_operator.controller.owned_goals import phase_of
from backlog_operator.controller.results import Event

# The Merged reasons that need a person (CompletedInBase and HealFailed do not list the task:
# the first needs nothing, the second is the operator's own trouble, said on the Goal).
NEEDS_A_PERSON = frozenset({CONFLICTED_REASON, TASK_NOT_IN_BASE_REASON, HEAL_LIMIT_REASON})
FILES_LISTED = 10


def conflicted_tasks(
    goals: Iterable[Mapping[str, Any]], task_ids: Sequence[str], limit: int
) -> list[ConflictedTask]:
    """The conflicted tasks among `task_ids` (the file's, in its order), at most `limit`."""
    latest: dict[str, Mapping[str, Any]] = {}
    for goal in goals:
        task = task_of(goal)
        if task and (task not in latest or goal_age(goal) > goal_age(latest[task])):
            latest[task] = goal
    found = []
    for task_id in task_ids:
        newest = latest.get(task_id)
        record = _conflicted(task_id, newest) if newest is not None else None
        if record is not None:
            found.append(record)
            if len(found) >= limit:
                break
    return found


def newly_conflicted(before: BacklogStatus, now: BacklogStatus) -> list[Event]:
    """A Warning event for each task the status lists as conflicted that it did not before."""
    known = {task.id for task in before.conflicted}
    return [
        Event(
            "Warning",
            "TaskConflicted",
            f"task {task.id}: pull request #{task.pull_request.number} does not merge "
            f"({task.reason}); see goal {task.goal}",
        )
        for task in now.conflicted
        if task.id not in known
    ]


def _conflicted(task_id: str, goal: Mapping[str, Any]) -> ConflictedTask | None:
    pull = pull_request_of(goal)
    if phase_of(goal) is not Phase.SUCCEEDED or pull is None or pull.get("state") != "open":
        return None
    conditions = (goal.get("status") or {}).get("conditions") or []
    merged = next((c for c in conditions if isinstance(c, Mapping) and c.get("type") == MERGED), {})
    reason = str(merged.get("reason") or "")
    if reason not in NEEDS_A_PERSON:
        return None
    try:
        pull_request = PullRequestStatus(number=int(pull["number"]), url=str(pull["url"]))
    except (KeyError, TypeError, ValueError):
        return None
    files = pull.get("conflictedFiles") or []
    return ConflictedTask(
        id=task_id,
        pull_request=pull_request,
        goal=str((goal.get("metadata") or {}).get("name")),
        reason=reason,
        conflicted_files=[str(path) for path in files[:FILES_LISTED]],
    )
