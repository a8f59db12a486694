"""What the Backlog and GoalSchedule controllers read of the Goals they own. Pure helpers,
plus the one shared step both take: deleting finished Goals beyond the history limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from backlog_operator.controller.reconciler import Event
from backlog_operator.controller.schedule import FinishedGoal, history_to_delete
from backlog_operator.controller.status import FINAL_PHASES, parse_time


class GoalDeleter(Protocol):
    """The one API call history trimming makes."""

    async def delete_goal(self, namespace: str, name: str) -> None: ...


def phase_of(goal: Mapping[str, Any]) -> str:
    """A Goal's phase (Pending until the operator has written one)."""
    return str((goal.get("status") or {}).get("phase") or "Pending")


async def trim_history(
    cluster: GoalDeleter,
    namespace: str,
    goals: Sequence[Mapping[str, Any]],
    *,
    successful: int,
    failed: int,
) -> list[Event]:
    """Delete finished Goals beyond the limits per outcome, oldest first (as CronJob does).

    Skipped counts as success: the task was done.
    """
    finished = [
        FinishedGoal(
            name=g["metadata"]["name"],
            succeeded=phase_of(g) in ("Succeeded", "Skipped"),
            start_time=parse_time((g.get("status") or {}).get("startTime")),
        )
        for g in goals
        if phase_of(g) in FINAL_PHASES
    ]
    doomed = history_to_delete(finished, successful, failed)
    for name in doomed:
        await cluster.delete_goal(namespace, name)
    if not doomed:
        return []
    return [Event("Normal", "HistoryTrimmed", f"deleted finished goals {', '.join(doomed)}")]
