"""Healing a goal's pull request, the pure parts (`controller/goals/heal.py`): when a look starts
a heal, what each heal result does to the goal's status, how a heal Job's end is read, and
which tasks a Backlog lists as conflicted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from backlog_operator.api.backlog import BacklogStatus
from backlog_operator.api.goal import GoalStatus
from backlog_operator.api.result import Outcome, WorkerResult, failure
from backlog_operator.controller.backlogs.conflicted import conflicted_tasks, newly_conflicted
from backlog_operator.controller.goals.heal import (
    HEAL_OUTCOMES,
    heal_due,
    heal_ended,
    heal_outcome,
    heal_started,
)
from backlog_operator.controller.goals.outcome import heal_result
from backlog_operator.controller.goals.pull_request import opened_condition, pull_request_seen
from backlog_operator.controller.status import evolve

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
URL = "https://github.com/octo/project/pull/7"


@dataclass
class Seen:
    """What the forge says (the shape of adapters.github.PullRequestState)."""

    state: str = "open"
    mergeable: bool | None = False
    mergeable_state: str | None = "dirty"
    head_sha: str | None = "h1"
    base_sha: str | None = "b1"
    number: int = 7
    merge_commit: str | None = None
    merged_by: str | None = None
    merged_at: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None


def published(**pull: Any) -> GoalStatus:
    status = GoalStatus.model_validate(
        {
            "phase": "Succeeded",
            "reason": "Published",
            "branch": "backlog/beta-1",
            "commit": "a" * 40,
            "changedFiles": [".backlog/backlog.yaml", "docs/beta.md"],
            "pullRequest": {"number": 7, "url": URL, "state": "open", **pull},
        }
    )
    return evolve(status, conditions=opened_condition(status, 1, NOW))


def merged(status: GoalStatus) -> tuple[str, str, str]:
    [found] = [c for c in status.conditions if c.type == "Merged"]
    return found.status, found.reason, found.message


def test_a_heal_is_due_once_per_pair_of_commits_and_within_the_bound() -> None:
    assert heal_due(published(), Seen(), max_heals=3) == "heal"
    assert heal_due(published(), Seen(mergeable=None, mergeable_state="unknown"), 3) is None
    assert heal_due(published(), Seen(mergeable=True, mergeable_state="clean"), 3) is None
    assert heal_due(published(), Seen(state="closed"), 3) is None
    assert heal_due(published(healJob="g-abc-heal1"), Seen(), 3) is None  # one at a time
    assert heal_due(published(healedHeads="h1..b1", heals=1), Seen(), 3) is None  # same pair
    assert heal_due(published(healedHeads="h1..b1", heals=1), Seen(base_sha="b2"), 3) == "heal"
    assert heal_due(published(healedHeads="h1..b1", heals=3), Seen(base_sha="b2"), 3) == "limit"
    assert heal_due(evolve(published(), phase="Failed"), Seen(), 3) is None
    assert heal_due(published(), Seen(number=8), 3) is None


def test_a_heal_started_is_counted_with_its_commits() -> None:
    new, [event] = heal_started(published(), "g-abc-heal1", "h1..b1", NOW)

    assert new.pull_request is not None
    assert (new.pull_request.heal_job, new.pull_request.heals) == ("g-abc-heal1", 1)
    assert new.pull_request.healed_heads == "h1..b1"
    assert (event.kind, event.reason) == ("Normal", "Healing")


def healing() -> GoalStatus:
    return heal_started(published(), "g-abc-heal1", "h1..b1", NOW)[0]


def test_healed_records_the_new_head_and_keeps_the_phase() -> None:
    result = WorkerResult(
        outcome=Outcome.PUBLISHED,
        reason="Healed",
        message="merged main into backlog/beta-1",
        commit="b" * 40,
        changed_files=[".backlog/backlog.yaml", "docs/beta.md"],
        step="heal",
    )

    new, [event] = heal_ended(healing(), result, NOW)

    assert new.phase == "Succeeded" and new.commit == "b" * 40
    assert new.pull_request is not None and new.pull_request.heal_job is None
    assert merged(new)[:2] == ("False", "PullRequestOpen")
    assert (event.kind, event.reason) == ("Normal", "Healed")


def test_nothing_to_heal_changes_nothing_but_the_running_heal() -> None:
    result = WorkerResult(outcome=Outcome.PUBLISHED, reason="NothingToHeal", step="heal")

    new, events = heal_ended(healing(), result, NOW)

    assert events == [] and new.commit == "a" * 40
    assert merged(new)[:2] == ("False", "PullRequestOpen")


@pytest.mark.parametrize(
    ("result", "reason", "kind"),
    [
        (
            failure(
                "Conflicted",
                "conflicts; nothing was pushed",
                retryable=False,
                step="heal",
                conflicted_files=[f"src/f{i}.py" for i in range(60)],
            ),
            "Conflicted",
            "Warning",
        ),
        (
            failure("TaskNotInBase", "gone", retryable=False, step="heal"),
            "TaskNotInBase",
            "Warning",
        ),
        (
            WorkerResult(outcome=Outcome.ALREADY_COMPLETED, reason="CompletedInBase", step="heal"),
            "CompletedInBase",
            "Normal",
        ),
        (
            failure("AuthenticationFailed", "no access", retryable=False, step="heal"),
            "HealFailed",
            "Warning",
        ),
    ],
)
def test_a_heal_that_cannot_heal_says_why_on_the_merged_condition(
    result: WorkerResult, reason: str, kind: str
) -> None:
    new, [event] = heal_ended(healing(), result, NOW)

    assert merged(new)[:2] == ("False", reason) and new.phase == "Succeeded"
    assert (event.kind, event.reason) == (kind, reason)
    assert new.pull_request is not None and new.pull_request.heal_job is None
    if reason == "Conflicted":
        assert new.pull_request.conflicted_files == [f"src/f{i}.py" for i in range(50)]
        assert "src/f9.py and 40 more" in merged(new)[2]  # of the 50 kept
    if reason == "HealFailed":
        assert "AuthenticationFailed" in merged(new)[2]


def test_a_conflict_holds_until_the_pull_request_merges_again() -> None:
    result = failure(
        "Conflicted", "c", retryable=False, step="heal", conflicted_files=["docs/a.md"]
    )
    conflicted, _ = heal_ended(healing(), result, NOW)

    still, _ = pull_request_seen(conflicted, Seen(head_sha="h2"), NOW)
    assert still is None  # still dirty: the condition and the files stay
    resolved, events = pull_request_seen(
        conflicted, Seen(mergeable=True, mergeable_state="clean"), NOW
    )

    assert resolved is not None and resolved.pull_request is not None
    assert resolved.pull_request.conflicted_files is None
    assert merged(resolved)[:2] == ("False", "PullRequestOpen")
    assert [(e.kind, e.reason) for e in events] == [("Normal", "PullRequestOpen")]


def job(finished: str | None) -> dict[str, Any]:
    conditions = [{"type": finished, "status": "True"}] if finished else []
    return {"status": {"conditions": conditions}}


def pod(**terminated: Any) -> dict[str, Any]:
    return {
        "status": {
            "containerStatuses": [{"name": "heal", "state": {"terminated": terminated}}],
        }
    }


def test_a_heal_jobs_end_is_read_from_its_one_container() -> None:
    said = WorkerResult(outcome=Outcome.PUBLISHED, reason="Healed", step="heal").to_json()

    assert heal_result(job(None), None) is None
    read = heal_result(job("Complete"), pod(exitCode=0, message=said))
    assert read is not None and read.reason == "Healed"
    died = heal_result(job("Failed"), pod(exitCode=1, reason="Error"))
    assert died is not None and (died.reason, died.step) == ("StepFailed", "heal")
    gone = heal_result(job("Failed"), None)
    assert gone is not None and gone.outcome is Outcome.FAILED


def listed_goal(name: str, task: str, reason: str, state: str = "open") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-03-02T10:00:00Z"},
        "spec": {"backlog": {"taskId": task}},
        "status": {
            "phase": "Succeeded",
            "pullRequest": {
                "number": 7,
                "url": URL,
                "state": state,
                "conflictedFiles": [f"f{i}" for i in range(12)],
            },
            "conditions": [{"type": "Merged", "status": "False", "reason": reason}],
        },
    }


def test_a_backlog_lists_the_tasks_whose_pull_request_needs_a_person() -> None:
    goals = [
        listed_goal("team-a", "a", "Conflicted"),
        listed_goal("team-b", "b", "PullRequestOpen"),
        listed_goal("team-c", "c", "HealLimitReached"),
        listed_goal("team-d", "d", "Conflicted", state="closed"),
        listed_goal("team-e", "e", "HealFailed"),
    ]

    found = conflicted_tasks(goals, ["e", "d", "c", "b", "a"], limit=50)

    assert [(t.id, t.reason) for t in found] == [("c", "HealLimitReached"), ("a", "Conflicted")]
    assert found[1].conflicted_files == [f"f{i}" for i in range(10)]
    assert conflicted_tasks(goals, ["c", "a"], limit=1)[0].id == "c"
    events = newly_conflicted(BacklogStatus(), BacklogStatus(conflicted=found))
    assert [(e.kind, e.reason) for e in events] == [("Warning", "TaskConflicted")] * 2
    assert newly_conflicted(BacklogStatus(conflicted=found), BacklogStatus(conflicted=found)) == []


@pytest.mark.parametrize(
    ("outcome", "reason", "counted"),
    [
        (Outcome.PUBLISHED, "Healed", "Healed"),
        (Outcome.PUBLISHED, "NothingToHeal", "NothingToHeal"),
        (Outcome.FAILED, "CompletedInBase", "CompletedInBase"),
        (Outcome.FAILED, "Conflicted", "Conflicted"),
        (Outcome.FAILED, "TaskNotInBase", "TaskNotInBase"),
        (Outcome.FAILED, "StepFailed", "HealFailed"),
        (Outcome.FAILED, "JobMissing", "HealFailed"),
        (Outcome.FAILED, "Published", "HealFailed"),  # a failure that says otherwise
    ],
)
def test_a_heals_end_is_one_of_the_counted_results(
    outcome: Outcome, reason: str, counted: str
) -> None:
    result = WorkerResult(outcome=outcome, reason=reason, message="m")
    assert heal_outcome(result) == counted
    assert counted in HEAL_OUTCOMES
