"""Every label and annotation the operator reads or writes, in one place.

Labels are how the operator finds what it made (label selectors); annotations are how people
ask it for something or how it remembers a fact about an object it created. Each constant says
who sets it, on what, and what it means. The `backlog.dev/` prefix is the API group's.

A label value holds at most 63 characters, an object's name up to 253: a label that carries a
name is written as `naming.label_value(name)` (the name itself when it fits, otherwise a prefix
and a hash of the whole name), and a selector on it must use the same function. To find the
object a Goal belongs to, read its controller ownerReference, which has the name in full.
"""

from __future__ import annotations

from collections.abc import Mapping

from backlog_operator.naming import label_value

# --------------------------------------------------------------------------- worker Jobs

# Set by the operator on every worker Job and its Pod template; the value is MANAGED_BY. The
# Job watch is limited to Jobs carrying it, so the operator never hears of anyone else's Jobs.
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "backlog-operator"
# Set by the operator on a worker Job and its Pod: the Goal's name (as a DNS label,
# `naming.dns_label`: at most 63, shortened with a hash), for people.
LABEL_GOAL = "backlog.dev/goal"
# Set by the operator on a worker Job and its Pod: the Goal's uid. How a deleted Goal's Jobs are
# found, and how a restarted operator tells its own Job (adopt it) from a foreign one.
LABEL_GOAL_UID = "backlog.dev/goal-uid"
# Set by the operator on a worker Job and its Pod, and by a Backlog on each Goal it creates: the
# task id (or, on a Job of a free-form goal, the goal's name) as a DNS label.
LABEL_TASK = "backlog.dev/task"
# Set by the operator on a worker Job and its Pod: the run (1, plus one per re-run request) and
# the attempt within it; with LABEL_GOAL_UID they select the Pod of one attempt.
LABEL_RUN = "backlog.dev/run"
LABEL_ATTEMPT = "backlog.dev/attempt"
# Set by the operator on a heal Job and its Pod instead of LABEL_ATTEMPT: the heal's number
# (1, 2, ...) within the run (docs/operator.md, "Healing a pull request that conflicts").
LABEL_HEAL = "backlog.dev/heal"

# ------------------------------------------------------------------ Goals a Backlog owns

# Set by a Backlog on each Goal it creates: the Backlog's name (`naming.label_value`). A
# finished Goal with it makes the operator sync that Backlog (named by the Goal's controller
# ownerReference) at once (a slot is free).
LABEL_BACKLOG = "backlog.dev/backlog"
# Set by a Backlog on each Goal it creates: the Backlog's uid. How a sync lists its own Goals
# (not those of an earlier Backlog of the same name).
LABEL_BACKLOG_UID = "backlog.dev/backlog-uid"
# Set by a Backlog on each Goal it creates: a digest of the task's entry in the backlog file.
# Only failures of the entry as it is now count against the failure budget.
ANNOTATION_TASK_DIGEST = "backlog.dev/task-digest"

# ------------------------------------------------------------ Goals a GoalSchedule owns

# Set by a GoalSchedule on each Goal it creates: the schedule's name (`naming.label_value`). A
# Goal with it makes the operator reconcile that schedule (named by the Goal's controller
# ownerReference) when the Goal changes (its active list and history).
LABEL_SCHEDULE = "backlog.dev/goal-schedule"
# Set by a GoalSchedule on each Goal it creates: the schedule's uid; how it lists its own Goals.
LABEL_SCHEDULE_UID = "backlog.dev/goal-schedule-uid"
# Set by a GoalSchedule on each Goal it creates: the tick (RFC 3339, UTC) the Goal is for.
ANNOTATION_SCHEDULED_AT = "backlog.dev/scheduled-at"

# --------------------------------------------------------------------- set by people

# Set by a person (any new value, a timestamp by habit; as Flux's reconcile.fluxcd.io/requestedAt):
# on a finished Goal, run it again; on a Backlog, sync now. The value acted on is recorded in
# `status.lastHandledReconcileAt`.
ANNOTATION_REQUESTED_AT = "backlog.dev/requested-at"
# Set by a person (or `kubectl backlog approve`) on a Goal AwaitingApproval: `sha256:<64 hex>`,
# the staged change approved. Honoured only when it equals `status.approval.patchHash` and the
# approval has not expired; any other value is refused (an `ApprovalRefused` Event).
ANNOTATION_APPROVED_PATCH = "backlog.dev/approved-patch"
# Set with it: who approved (the kubeconfig user of the CLI's context; `unknown` when absent).
# Informational: at most 253 printable characters.
ANNOTATION_APPROVED_BY = "backlog.dev/approved-by"
# Set by a person (or `kubectl backlog reject`) on a Goal AwaitingApproval: the reason (may be
# empty; at most 1 KiB). The goal fails `Rejected` and its Backlog declines the task until revived.
ANNOTATION_REJECTED = "backlog.dev/rejected"
# Set with it: who rejected (informational; `unknown` when absent).
ANNOTATION_REJECTED_BY = "backlog.dev/rejected-by"
# Set by a person on a Backlog (an RFC 3339 time): failures of its tasks up to that time no
# longer count against the failure budget.
ANNOTATION_FAILURES_CLEARED_AT = "backlog.dev/failures-cleared-at"
# Set by a person on a Backlog, one per task: `revive.backlog.dev/<task-id>: <RFC 3339 time>`.
# A task whose pull request was closed without merging (declined) is selected again when this
# time is at or after the close. The key carries the task id (an annotation name holds up to 63
# of the same characters a Backlog's task ids do), so reviving one task never undoes another's
# revival, and the operator, which writes only status, never needs to remove it.
ANNOTATION_REVIVE_PREFIX = "revive.backlog.dev/"
# The name part of an annotation key (after its prefix): at most 63 characters, alphanumeric at
# both ends, `-`, `_` and `.` between. A task id is revivable when it is such a name.
ANNOTATION_NAME_MAX_LENGTH = 63


def revived_tasks(annotations: Mapping[str, str]) -> dict[str, str]:
    """Task id -> the time written, of the `revive.backlog.dev/<task-id>` annotations."""
    return {
        key[len(ANNOTATION_REVIVE_PREFIX) :]: value
        for key, value in annotations.items()
        if key.startswith(ANNOTATION_REVIVE_PREFIX) and len(key) > len(ANNOTATION_REVIVE_PREFIX)
    }


def revive_annotation(task_id: str) -> str | None:
    """The `revive.backlog.dev/<task-id>` annotation key of a task, or None when the id is not
    valid as an annotation's name (longer than 63, or not alphanumeric at both ends)."""
    if not 0 < len(task_id) <= ANNOTATION_NAME_MAX_LENGTH or not task_id.isascii():
        return None
    inner_ok = all(char.isalnum() or char in "-_." for char in task_id)
    if not inner_ok or not (task_id[0].isalnum() and task_id[-1].isalnum()):
        return None
    return ANNOTATION_REVIVE_PREFIX + task_id


def name_selector(label: str, name: str) -> str:
    """The label selector of the objects whose `label` carries the name `name` (a Backlog's,
    a GoalSchedule's): `label=<naming.label_value(name)>`, as the label is written."""
    return f"{label}={label_value(name)}"
