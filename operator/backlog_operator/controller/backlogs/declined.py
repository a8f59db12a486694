"""Declined tasks: a pull request a person closed without merging is a "no". Pure.

A Backlog's Goal that succeeded opened a pull request; the operator follows it (its
`status.pullRequest.state`). Closed without merging, the task stays `pending` and `ready` in
main's backlog (the writeback was never merged), so by the file alone it would be picked again,
and the next pull request would be the same "no" asked again. Instead the task is *declined*:
not selected, and reported with the pull request and who closed it, until a person revives it.

A goal whose staged change a person rejected (phase Failed, reason `Rejected`, see
docs/operator.md "Approval") is the same "no", asked before anything was pushed.

The record of the decline is the Goal itself (the operator writes nothing else): a task is
declined when its latest Goal (by creation) succeeded with a pull request that was closed
without merging, or was rejected, and none of these has happened since:

- the Backlog carries `revive.backlog.dev/<task-id>` with a time at or after the close;
- the task's entry in the file changed (the Goal's `backlog.dev/task-digest` is not the entry's
  digest any more: a person rewrote the task after reading why it was refused);
- that Goal was deleted (a person cleared the record).

History trimming keeps such a Goal (`kept_goals`), and a Goal whose pull request is still open
(its outcome is not known yet).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from backlog_operator.api.backlog import AwaitingApprovalTask, DeclinedTask
from backlog_operator.api.goal import Phase, PullRequestStatus
from backlog_operator.api.labels import ANNOTATION_TASK_DIGEST, revived_tasks
from backlog_operator.controller.owned_goals import awaiting_pull_request, phase_of
from backlog_operator.controller.status import parse_time

CLOSED, MERGED = "closed", "merged"
REJECTED = "Rejected"


def pull_request_of(goal: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A listed Goal's `status.pullRequest`, or None."""
    found = (goal.get("status") or {}).get("pullRequest")
    return found if isinstance(found, Mapping) else None


def pull_request_state(goal: Mapping[str, Any]) -> str | None:
    """`open`, `merged` or `closed` as the Goal's status says; None when it says nothing (no
    pull request, or one not looked at yet)."""
    found = pull_request_of(goal)
    state = found.get("state") if found is not None else None
    return str(state) if state else None


def revive_times(annotations: Mapping[str, str]) -> dict[str, datetime]:
    """Task id -> the time of its `revive.backlog.dev/<task-id>` annotation (a value that is no
    RFC 3339 time revives nothing)."""
    found = {}
    for task_id, value in revived_tasks(annotations).items():
        moment = parse_time(value.strip())
        if moment is not None and moment.tzinfo is not None:
            found[task_id] = moment
    return found


def declined_tasks(
    goals: Iterable[Mapping[str, Any]],
    digests: Mapping[str, str],
    revived: Mapping[str, datetime],
) -> dict[str, DeclinedTask]:
    """The declined tasks of the file (ids in `digests`), each with its record (see the module
    docstring). `goals` are the Backlog's Goals; `revived` is `revive_times` of its
    annotations."""
    latest: dict[str, Mapping[str, Any]] = {}
    for goal in goals:
        task = task_of(goal)
        if task in digests and (task not in latest or goal_age(goal) > goal_age(latest[task])):
            latest[task] = goal
    declined = {}
    for task, goal in latest.items():
        record = _declined(task, goal, digests[task], revived.get(task))
        if record is not None:
            declined[task] = record
    return declined


def _declined(
    task: str, goal: Mapping[str, Any], digest: str, revived_at: datetime | None
) -> DeclinedTask | None:
    if is_rejected(goal):
        return _rejected(task, goal, digest, revived_at)
    pull = pull_request_of(goal)
    if phase_of(goal) is not Phase.SUCCEEDED or pull is None or pull.get("state") != CLOSED:
        return None
    annotations = (goal.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ANNOTATION_TASK_DIGEST) != digest:
        return None  # the entry was edited since: a new task as far as the "no" goes
    closed_at = parse_time(pull.get("closedAt"))
    if revived_at is not None and (closed_at is None or revived_at >= closed_at):
        return None
    try:
        pull_request = PullRequestStatus(number=int(pull["number"]), url=str(pull["url"]))
    except (KeyError, TypeError, ValueError):
        return None
    return DeclinedTask(
        id=task,
        pull_request=pull_request,
        closed_by=pull.get("closedBy") or None,
        declined_at=closed_at,
        goal=str((goal.get("metadata") or {}).get("name")),
    )


def is_rejected(goal: Mapping[str, Any]) -> bool:
    """Whether a listed Goal's staged change was rejected (Failed, reason Rejected)."""
    return phase_of(goal) is Phase.FAILED and (goal.get("status") or {}).get("reason") == REJECTED


def _rejected(
    task: str, goal: Mapping[str, Any], digest: str, revived_at: datetime | None
) -> DeclinedTask | None:
    annotations = (goal.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ANNOTATION_TASK_DIGEST) != digest:
        return None  # the entry was edited since: a new task as far as the "no" goes
    status = goal.get("status") or {}
    found = status.get("approval")
    approval: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    rejected_at = parse_time(approval.get("rejectedAt") or status.get("completionTime"))
    if revived_at is not None and (rejected_at is None or revived_at >= rejected_at):
        return None
    return DeclinedTask(
        id=task,
        reason=REJECTED,
        closed_by=str(approval.get("rejectedBy") or "") or None,
        declined_at=rejected_at,
        message=str(status.get("message") or "")[:1024] or None,
        goal=str((goal.get("metadata") or {}).get("name")),
    )


def awaiting_approval(goals: Iterable[Mapping[str, Any]], cap: int) -> list[AwaitingApprovalTask]:
    """The Backlog's Goals that await approval (at most `cap`, by task)."""
    found = []
    for goal in goals:
        approval = (goal.get("status") or {}).get("approval")
        if phase_of(goal) is not Phase.AWAITING_APPROVAL or not isinstance(approval, Mapping):
            continue
        found.append(
            AwaitingApprovalTask(
                task=task_of(goal),
                goal=str((goal.get("metadata") or {}).get("name")),
                patch_hash=str(approval.get("patchHash") or ""),
                expires_at=parse_time(approval.get("expiresAt")),
            )
        )
    return sorted(found, key=lambda item: (item.task, item.goal))[:cap]


def kept_goals(
    goals: Iterable[Mapping[str, Any]], declined: Mapping[str, DeclinedTask]
) -> set[str]:
    """Names of finished Goals history trimming must keep: those whose pull request may still
    be open (not known merged or closed), and those holding a decline."""
    return {record.goal for record in declined.values()} | awaiting_pull_request(list(goals))


def goal_age(goal: Mapping[str, Any]) -> tuple[str, int, str]:
    """A Goal's place in time among its task's Goals, the latest greatest."""
    # RFC 3339 in UTC with seconds sorts as text; within one second the later try's name
    # (`-2`, `-10`) is the longer or the greater one.
    metadata = goal.get("metadata") or {}
    name = str(metadata.get("name") or "")
    return (str(metadata.get("creationTimestamp") or ""), len(name), name)


def task_of(goal: Mapping[str, Any]) -> str:
    """The backlog task a Goal works on (empty: none)."""
    return str(((goal.get("spec") or {}).get("backlog") or {}).get("taskId") or "")
