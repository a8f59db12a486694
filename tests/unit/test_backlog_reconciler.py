"""The Backlog reconciler, step by step, against in-memory fakes (no git, no forge, no kopf).

Each case is a Backlog body, the backlog file at the branch tip (or an error reading it), the
Goals the Backlog already owns, its Secret, the forge's open pull requests (or its failure) and a
fixed clock; it expects the status (counts, ready, blocked, in-progress, started, the last sync),
the conditions, the events, the Goals created and deleted, what was asked of git and the forge,
and the requeue (the sync interval). The cases follow the reconciler's steps: validation, the
secret, reading and parsing the file, the forge (failing closed), selection within the limits
and the failure budget, Goal names, history trimming and the report.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from backlog_operator.adapters.git import GitError
from backlog_operator.adapters.github import ForgeError
from backlog_operator.api.labels import (
    ANNOTATION_FAILURES_CLEARED_AT,
    ANNOTATION_REQUESTED_AT,
    ANNOTATION_TASK_DIGEST,
    LABEL_BACKLOG,
    LABEL_BACKLOG_UID,
    LABEL_TASK,
)
from backlog_operator.api.result import Outcome, WorkerResult, failure
from backlog_operator.api.usage import Cost, TaskUsage
from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.controller.backlogs.reconciler import BacklogReconciler, task_digest
from backlog_operator.controller.status import timestamp, to_wire
from backlog_operator.controller.usage import record_attempt
from backlog_operator.errors import ClassifiedError
from tests.unit.fakes import (
    ABSENT,
    FakeBacklogSource,
    FakeCluster,
    FakeForge,
    FakeForgeFactory,
    FixedClock,
    Json,
    assert_fields,
    conditions_of,
    events_of,
    wire,
)

T = TypeVar("T")

NS = "default"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
UID = "b0b0b0b0-1111-2222-3333-444455556666"
URL = "https://github.com/octo/project.git"
PATH = ".backlog/backlog.yaml"
C1 = "1" * 40
C0 = "0" * 40
GHE = "https://ghe.example/api/v3"

LEVIATHAN = """\
# Leviathan-style backlog: `dependencies`, word priorities, comments.
tasks:
  - id: docs-intro
    title: Introduction
    ready: true
    priority: low
  - id: ci-cache          # runs first: highest priority
    title: Cache CI
    ready: true
    priority: critical
  - id: api-docs
    title: API docs
    ready: true
    priority: high
    dependencies: [ci-cache]
  - id: done-already
    title: Done
    ready: true
    status: completed
"""
MERGED = LEVIATHAN.replace(
    "    priority: critical\n", "    priority: critical\n    status: completed\n"
)
DIGESTS = {
    task.id: task_digest(task)
    for task in BacklogDocument.parse(LEVIATHAN.encode(), source=PATH).tasks
}


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def ts(moment: datetime) -> str:
    return timestamp(moment)


def ready(reason: str) -> dict[str, tuple[str, str]]:
    return {
        "Ready": ("True", reason),
        "Reconciling": ("False", "Finished"),
        "Stalled": ("False", "NotStalled"),
    }


def reconciling(reason: str) -> dict[str, tuple[str, str]]:
    return {
        "Ready": ("False", reason),
        "Reconciling": ("True", reason),
        "Stalled": ("False", "NotStalled"),
    }


def stalled(reason: str) -> dict[str, tuple[str, str]]:
    return {
        "Ready": ("False", reason),
        "Reconciling": ("False", "Finished"),
        "Stalled": ("True", reason),
    }


def said(reason: str, ready_status: str = "False", **more: Any) -> Json:
    """A status whose Ready condition already has `reason` (what the last reconcile said)."""
    return {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": ready_status,
                "reason": reason,
                "message": "said before",
                "observedGeneration": 1,
                "lastTransitionTime": ts(NOW - timedelta(hours=1)),
            }
        ],
        **more,
    }


# --------------------------------------------------------------------------------- bodies


def backlog(
    name: str = "team",
    *,
    generation: int = 1,
    status: Json | None = None,
    annotations: dict[str, str] | None = None,
    template: Json | None = None,
    **spec: Any,
) -> Json:
    """A Backlog as the API serves it (the shape of the operator tier's `backlog`)."""
    template_spec: Json = {
        "task": {"image": "busybox", "command": ["true"]},
        "pullRequest": {"provider": "none"},
        "retry": {"maxAttempts": 1},
    }
    template_spec.update(template or {})
    body: Json = {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Backlog",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": UID,
            "generation": generation,
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "repository": {"url": URL},
            "goalTemplate": {"spec": template_spec},
            "syncIntervalSeconds": 60,
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def github(**more: Any) -> Json:
    return {"pullRequest": {"provider": "github", **more}}


def owned(
    task: str,
    phase: str | None,
    *,
    name: str | None = None,
    digest: str | None = None,
    reason: str | None = None,
    started: datetime | None = None,
    completed: datetime | None = None,
) -> Json:
    """A Goal this Backlog created for `task`, in `phase`."""
    status: Json = {}
    if phase:
        status["phase"] = phase
    if reason:
        status["reason"] = reason
    if started:
        status["startTime"] = ts(started)
    if completed:
        status["completionTime"] = ts(completed)
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {
            "name": name or f"team-{task}",
            "namespace": NS,
            "uid": f"uid-{name or task}",
            "labels": {LABEL_BACKLOG: "team", LABEL_BACKLOG_UID: UID, LABEL_TASK: task},
            "annotations": {ANNOTATION_TASK_DIGEST: digest or DIGESTS.get(task, "")},
        },
        "spec": {
            "repository": {"url": URL},
            "backlog": {"path": PATH, "taskId": task},
            "task": {"image": "busybox", "command": ["true"]},
        },
        "status": status,
    }


def published(
    task: str,
    state: str | None,
    *,
    number: int = 7,
    closed_at: datetime | None = None,
    closed_by: str | None = "reviewer",
    created: datetime | None = None,
    **more: Any,
) -> Json:
    """A succeeded Goal of `task` whose pull request is in `state` (None: not looked at yet)."""
    goal = owned(task, "Succeeded", started=OLD, **more)
    pull: Json = {"number": number, "url": f"https://github.com/octo/project/pull/{number}"}
    if state is not None:
        pull["state"] = state
    if state == "closed":
        pull["closedAt"] = ts(closed_at or NOW - timedelta(hours=1))
        if closed_by:
            pull["closedBy"] = closed_by
    goal["status"]["pullRequest"] = pull
    if created is not None:
        goal["metadata"]["creationTimestamp"] = ts(created)
    return goal


def failed(task: str, at: datetime, **more: Any) -> Json:
    return owned(task, "Failed", reason="TaskFailed", completed=at, **more)


COUNTS = {"pending": 3, "inProgress": 0, "completed": 1, "failed": 0, "blocked": 0}
API_DOCS_BLOCKED = {"id": "api-docs", "reason": "Requires", "requires": ["ci-cache"], "message": ""}
CREATED_CI_CACHE = ("Normal", "GoalCreated", "created goal team-ci-cache for task ci-cache")
SYNCED = ("Normal", "Synced", f"read {PATH} at {C1[:12]}")


# ---------------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One sync: given the body, the file (`files`, or `source_error`), the Backlog's Goals,
    its secrets and the forge, expect the status `fields`, the conditions (and the Ready
    message, when given), the events ((kind, reason, text in the message)), the Goals created
    (every create asked, in order) and deleted, the reads of the file (known commit, token),
    the forges made, and the requeue."""

    body: Json
    files: dict[str, str] | None = field(default_factory=lambda: {PATH: LEVIATHAN})
    source_error: ClassifiedError | None = None
    goals: list[Json] = field(default_factory=list)
    hidden: set[str] = field(default_factory=set)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    pulls: list[tuple[str, datetime]] = field(default_factory=list)
    forge_error: ClassifiedError | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    conditions: dict[str, tuple[str, str]] | None = None
    ready_message: str | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    create_goal: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    reads: list[tuple[str | None, str | None]] | None = None  # (known commit, token) per read
    forges: list[tuple[str, str | None, str | None]] | None = None  # forges made, when given
    requeue: float | None = 60.0


VALIDATION = [
    pytest.param(
        Case(
            body=backlog(syncIntervalSeconds=5),
            fields={"observedGeneration": 1, "lastSyncedCommit": ABSENT, "counts": ABSENT},
            conditions=stalled("InvalidSpec"),
            events=[("Warning", "InvalidSpec", "syncIntervalSeconds")],
            reads=[],
            requeue=None,
        ),
        id="invalid-spec-stalls",
    ),
    pytest.param(
        Case(
            body=backlog(syncIntervalSeconds=5, status=said("InvalidSpec")),
            conditions=stalled("InvalidSpec"),
            reads=[],
            requeue=None,
        ),
        id="invalid-spec-said-once",
    ),
]

READING = [
    pytest.param(
        Case(
            body=backlog(repository={"url": URL, "credentialsSecret": {"name": "gh"}}),
            fields={"observedGeneration": 1, "lastSyncedCommit": ABSENT, "started": ABSENT},
            conditions=reconciling("SecretNotFound"),
            ready_message="secret 'gh' has no key 'token' (or does not exist)",
            events=[("Warning", "SecretNotFound", "secret 'gh' has no key 'token'")],
            reads=[],
        ),
        id="missing-secret-waits-without-reading",
    ),
    pytest.param(
        Case(
            body=backlog(
                repository={"url": URL, "credentialsSecret": {"name": "gh"}},
                status=said("SecretNotFound"),
            ),
            conditions=reconciling("SecretNotFound"),
            reads=[],
        ),
        id="missing-secret-said-once",
    ),
    pytest.param(
        Case(
            body=backlog(
                repository={"url": URL, "credentialsSecret": {"name": "gh", "key": "pat"}},
                template=github(),
            ),
            secrets={(NS, "gh"): {"pat": "ghp_sekrit"}},
            fields={"lastSyncedCommit": C1, "started": ["team-ci-cache"]},
            conditions=ready("LimitReached"),
            events=[CREATED_CI_CACHE, SYNCED],
            create_goal=["team-ci-cache"],
            reads=[(None, "ghp_sekrit")],
            forges=[("octo/project", "ghp_sekrit", None)],
        ),
        id="secret-token-reaches-git-and-the-forge",
    ),
    pytest.param(
        Case(
            body=backlog(),
            source_error=GitError(
                "RepositoryUnreachable", "cannot reach github.com", retryable=True
            ),
            fields={"lastSyncedCommit": ABSENT},
            conditions=reconciling("RepositoryUnreachable"),
            ready_message="cannot reach github.com",
            events=[("Warning", "RepositoryUnreachable", "cannot reach github.com")],
            reads=[(None, None)],
        ),
        id="unreachable-repository-is-retried-at-the-interval",
    ),
    pytest.param(
        Case(
            body=backlog(),
            files={PATH: "tasks:\n  - id: a\n  - id: a\n"},
            fields={"lastSyncedCommit": ABSENT, "counts": ABSENT},
            conditions=stalled("InvalidBacklog"),
            ready_message=f"{PATH}:3: duplicate task id 'a' (first at line 2)",
            events=[("Warning", "InvalidBacklog", f"{PATH}:3: duplicate task id")],
        ),
        id="malformed-backlog-stalls-naming-file-and-line",
    ),
    pytest.param(
        Case(
            body=backlog(),
            files={PATH: "tasks: [\n"},
            conditions=stalled("InvalidBacklog"),
            events=[("Warning", "InvalidBacklog", f"{PATH}:2: invalid YAML")],
        ),
        id="invalid-yaml-stalls",
    ),
    pytest.param(
        Case(
            body=backlog(),
            files={PATH: "tasks:\n  - id: a\n    ready: true\n    requires: [zz]\n"},
            conditions=stalled("InvalidBacklog"),
            ready_message=f"{PATH}:2: task 'a' (line 2) requires unknown task 'zz'",
            events=[("Warning", "InvalidBacklog", "requires unknown task 'zz'")],
        ),
        id="unknown-requirement-stalls-and-selects-nothing",
    ),
    pytest.param(
        Case(
            body=backlog(),
            files={"README.md": "hello"},
            conditions=stalled("InvalidBacklog"),
            ready_message=f"{PATH}: no such file at {C1[:12]}",
            events=[("Warning", "InvalidBacklog", "no such file")],
        ),
        id="no-backlog-file-stalls",
    ),
    pytest.param(
        Case(
            body=backlog(status=said("InvalidBacklog")),
            files={PATH: "tasks:\n  - id: a\n  - id: a\n"},
            conditions=stalled("InvalidBacklog"),
        ),
        id="malformed-backlog-said-once",
    ),
]

SELECTING = [
    pytest.param(
        Case(
            body=backlog(),
            fields={
                "observedGeneration": 1,
                "lastSyncedCommit": C1,
                "lastSyncTime": ts(NOW),
                "counts": COUNTS,
                "ready": ["ci-cache", "docs-intro"],
                "blocked": [API_DOCS_BLOCKED],
                "inProgress": [],
                "completed": ["done-already"],
                "started": ["team-ci-cache"],
                "lastHandledReconcileAt": ABSENT,
                # What `kubectl get backlogs` shows: the lists' lengths, the commit shortened.
                "readyCount": 2,
                "inProgressCount": 0,
                "shortCommit": C1[:7],
            },
            conditions=ready("LimitReached"),
            ready_message="0 Goals running, at most 1",
            events=[CREATED_CI_CACHE, SYNCED],
            create_goal=["team-ci-cache"],
            reads=[(None, None)],
            forges=[],
        ),
        id="first-sync-reports-and-starts-the-top-task",
    ),
    pytest.param(
        Case(
            body=backlog(limits={"maxRunningGoals": 5}),
            fields={"started": ["team-ci-cache", "team-docs-intro"]},
            conditions=ready("Synced"),
            ready_message=f"2 goal(s) started at {C1[:12]}",
            events=[
                CREATED_CI_CACHE,
                ("Normal", "GoalCreated", "created goal team-docs-intro for task docs-intro"),
                SYNCED,
            ],
            create_goal=["team-ci-cache", "team-docs-intro"],
        ),
        id="room-for-more-starts-more-in-priority-order",
    ),
    pytest.param(
        Case(
            body=backlog(),
            goals=[owned("ci-cache", "Running")],
            fields={"inProgress": ["ci-cache"], "ready": ["docs-intro"], "started": []},
            conditions=ready("LimitReached"),
            ready_message="1 Goals running, at most 1",
            events=[SYNCED],
        ),
        id="running-goal-holds-its-task-and-its-slot",
    ),
    pytest.param(
        Case(
            body=backlog(),
            goals=[owned("ci-cache", None)],
            fields={"inProgress": ["ci-cache"], "started": []},
            conditions=ready("LimitReached"),
            events=[SYNCED],
        ),
        id="goal-not-yet-reconciled-counts-as-running",
    ),
    pytest.param(
        Case(
            body=backlog(),
            goals=[owned("ci-cache", "Succeeded")],
            fields={
                "inProgress": ["ci-cache"],
                "blocked": [API_DOCS_BLOCKED],
                "started": ["team-docs-intro"],
            },
            conditions=ready("Synced"),
            ready_message=f"1 goal(s) started at {C1[:12]}",
            events=[("Normal", "GoalCreated", "team-docs-intro"), SYNCED],
            create_goal=["team-docs-intro"],
        ),
        id="succeeded-goal-awaits-its-merge-and-the-next-task-starts",
    ),
    pytest.param(
        Case(
            body=backlog(),
            files={PATH: MERGED},
            goals=[owned("ci-cache", "Succeeded")],
            fields={
                "counts": {**COUNTS, "pending": 2, "completed": 2},
                "completed": ["ci-cache", "done-already"],
                "ready": ["api-docs", "docs-intro"],
                "blocked": [],
                "started": ["team-api-docs"],
            },
            conditions=ready("LimitReached"),
            events=[("Normal", "GoalCreated", "team-api-docs for task api-docs"), SYNCED],
            create_goal=["team-api-docs"],
        ),
        id="merged-task-is-never-selected-again-and-unblocks-the-next",
    ),
    pytest.param(
        Case(
            body=backlog(suspend=True),
            fields={"counts": COUNTS, "ready": ["ci-cache", "docs-intro"], "started": []},
            conditions=ready("LimitReached"),
            ready_message="the Backlog is suspended",
            events=[SYNCED],
        ),
        id="suspended-backlog-reports-but-starts-nothing",
    ),
    pytest.param(
        Case(
            body=backlog(
                template=github(repository="octo/project", apiBaseUrl=GHE),
                limits={"maxOpenPullRequests": 2},
            ),
            pulls=[("backlog/ci-cache-abc123", NOW - timedelta(hours=3))],
            fields={"inProgress": ["ci-cache"], "started": ["team-docs-intro"]},
            conditions=ready("Synced"),
            events=[("Normal", "GoalCreated", "team-docs-intro"), SYNCED],
            create_goal=["team-docs-intro"],
            forges=[("octo/project", None, GHE)],
        ),
        id="open-pull-request-keeps-its-task-from-being-selected",
    ),
    pytest.param(
        Case(
            body=backlog(template=github(branchPrefix="bots/"), limits={"maxOpenPullRequests": 2}),
            pulls=[
                ("bots/ci-cache-abc123", NOW - timedelta(hours=3)),
                ("backlog/docs-intro-abc123", NOW - timedelta(hours=3)),
            ],
            fields={"inProgress": ["ci-cache"], "started": ["team-docs-intro"]},
            conditions=ready("Synced"),
            events=[("Normal", "GoalCreated", "team-docs-intro"), SYNCED],
            create_goal=["team-docs-intro"],
            forges=[("octo/project", None, None)],
        ),
        id="branch-prefix-decides-which-pull-requests-are-the-backlogs",
    ),
    pytest.param(
        Case(
            body=backlog(template=github(), limits={"maxOpenPullRequests": 1}),
            pulls=[("backlog/someone-else-abc123", NOW - timedelta(hours=3))],
            fields={"started": [], "ready": ["ci-cache", "docs-intro"]},
            conditions=ready("LimitReached"),
            ready_message="1 pull requests open and 0 on the way, at most 1",
            events=[SYNCED],
        ),
        id="open-pull-request-limit-reached",
    ),
    pytest.param(
        Case(
            body=backlog(
                template=github(),
                limits={"maxNewPullRequestsPerHour": 1, "maxRunningGoals": 5},
            ),
            pulls=[("backlog/other-abc123", NOW - timedelta(minutes=30))],
            fields={"started": []},
            conditions=ready("LimitReached"),
            ready_message=(
                "1 pull requests opened in the last hour and 0 on the way, at most 1 an hour; "
                f"the next may start at {(NOW + timedelta(minutes=30)).isoformat()}"
            ),
            events=[SYNCED],
        ),
        id="hourly-pull-request-cap-reached",
    ),
    pytest.param(
        Case(
            body=backlog(template=github()),
            forge_error=ForgeError("ForgeUnavailable", "GitHub answered 503", retryable=True),
            fields={"counts": COUNTS, "lastSyncedCommit": C1, "started": []},
            conditions=reconciling("ForgeUnavailable"),
            ready_message="GitHub answered 503",
            events=[
                ("Warning", "ForgeUnavailable", "nothing started: GitHub answered 503"),
                SYNCED,
            ],
            forges=[("octo/project", None, None)],
        ),
        id="forge-down-fails-closed",
    ),
    pytest.param(
        Case(
            body=backlog(template=github(), status=said("ForgeUnavailable", lastSyncedCommit=C1)),
            forge_error=ForgeError("ForgeUnavailable", "GitHub answered 503", retryable=True),
            fields={"started": []},
            conditions=reconciling("ForgeUnavailable"),
        ),
        id="forge-down-said-once",
    ),
    pytest.param(
        Case(
            body=backlog(repository={"url": "file:///project.git"}, template=github()),
            fields={"started": []},
            conditions=reconciling("ForgeUnavailable"),
            ready_message="cannot tell owner/name of the repository; set pullRequest.repository",
            events=[("Warning", "ForgeUnavailable", "cannot tell owner/name"), SYNCED],
            forges=[],
        ),
        id="forge-repository-unknown-fails-closed",
    ),
    pytest.param(
        Case(
            body=backlog(),
            goals=[owned("ci-cache", "Pending")],
            hidden={"team-ci-cache"},
            fields={"started": []},
            events=[SYNCED],
            create_goal=["team-ci-cache"],
        ),
        id="goal-made-by-an-earlier-sync-is-not-made-twice",
    ),
    pytest.param(
        Case(
            body=backlog(),
            goals=[
                {**owned("ci-cache", None), "metadata": {"name": "team-ci-cache", "namespace": NS}}
            ],
            fields={"started": []},
            events=[
                (
                    "Warning",
                    "GoalNameTaken",
                    "cannot create goal team-ci-cache for task ci-cache: the name is taken",
                ),
                SYNCED,
            ],
            create_goal=["team-ci-cache"],
        ),
        id="goal-name-taken-by-something-else",
    ),
]

BUDGET: Json = {"failureBudget": {"maxFailures": 1}, "limits": {"maxRunningGoals": 5}}
FAILED_BEFORE = NOW - timedelta(minutes=10)

FAILURES = [
    pytest.param(
        Case(
            body=backlog(**BUDGET),
            goals=[failed("ci-cache", FAILED_BEFORE)],
            fields={
                "blocked": [  # in file order
                    {
                        "id": "ci-cache",
                        "reason": "FailureBudget",
                        "requires": [],
                        "message": "TaskFailed",
                    },
                    API_DOCS_BLOCKED,
                ],
                "started": ["team-docs-intro"],
            },
            conditions=ready("Synced"),
            events=[("Normal", "GoalCreated", "team-docs-intro"), SYNCED],
            create_goal=["team-docs-intro"],
        ),
        id="failure-budget-spent-blocks-the-task",
    ),
    pytest.param(
        Case(
            body=backlog(failureBudget={"maxFailures": 2}, limits={"maxRunningGoals": 5}),
            goals=[failed("ci-cache", FAILED_BEFORE)],
            fields={
                "blocked": [API_DOCS_BLOCKED],
                "started": ["team-ci-cache-2", "team-docs-intro"],
            },
            conditions=ready("Synced"),
            events=[
                ("Normal", "GoalCreated", "created goal team-ci-cache-2 for task ci-cache"),
                ("Normal", "GoalCreated", "team-docs-intro"),
                SYNCED,
            ],
            create_goal=["team-ci-cache-2", "team-docs-intro"],
        ),
        id="failure-within-budget-gets-a-second-goal",
    ),
    pytest.param(
        Case(
            body=backlog(
                annotations={ANNOTATION_FAILURES_CLEARED_AT: ts(NOW - timedelta(minutes=5))},
                **BUDGET,
            ),
            goals=[failed("ci-cache", FAILED_BEFORE)],
            fields={
                "blocked": [API_DOCS_BLOCKED],
                "started": ["team-ci-cache-2", "team-docs-intro"],
            },
            conditions=ready("Synced"),
            events=[
                ("Normal", "GoalCreated", "team-ci-cache-2"),
                ("Normal", "GoalCreated", "team-docs-intro"),
                SYNCED,
            ],
            create_goal=["team-ci-cache-2", "team-docs-intro"],
        ),
        id="cleared-failures-give-the-task-a-new-goal",
    ),
    pytest.param(
        Case(
            body=backlog(
                annotations={ANNOTATION_FAILURES_CLEARED_AT: ts(NOW - timedelta(minutes=20))},
                **BUDGET,
            ),
            goals=[failed("ci-cache", FAILED_BEFORE)],
            fields={"started": ["team-docs-intro"]},
            events=[("Normal", "GoalCreated", "team-docs-intro"), SYNCED],
            create_goal=["team-docs-intro"],
        ),
        id="failure-after-clearing-counts-again",
    ),
    pytest.param(
        Case(
            body=backlog(**BUDGET),
            goals=[failed("ci-cache", FAILED_BEFORE, digest="0123456789abcdef")],
            fields={
                "blocked": [API_DOCS_BLOCKED],
                "started": ["team-ci-cache-2", "team-docs-intro"],
            },
            events=[
                ("Normal", "GoalCreated", "team-ci-cache-2"),
                ("Normal", "GoalCreated", "team-docs-intro"),
                SYNCED,
            ],
            create_goal=["team-ci-cache-2", "team-docs-intro"],
        ),
        id="edited-task-gets-a-fresh-budget",
    ),
    pytest.param(
        Case(
            body=backlog(
                failureBudget={"maxFailures": 1, "windowSeconds": 3600},
                limits={"maxRunningGoals": 5},
            ),
            goals=[failed("ci-cache", NOW - timedelta(hours=2))],
            fields={"started": ["team-ci-cache-2", "team-docs-intro"]},
            events=[
                ("Normal", "GoalCreated", "team-ci-cache-2"),
                ("Normal", "GoalCreated", "team-docs-intro"),
                SYNCED,
            ],
            create_goal=["team-ci-cache-2", "team-docs-intro"],
        ),
        id="failure-outside-the-window-does-not-count",
    ),
]

OLD = NOW - timedelta(hours=5)

HISTORY_AND_REPORT = [
    pytest.param(
        Case(
            body=backlog(history={"successful": 2, "failed": 1}),
            goals=[
                owned("old-s1", "Succeeded", started=OLD),
                owned("old-s2", "Skipped", started=OLD + timedelta(hours=1)),
                owned("old-s3", "Succeeded", started=OLD + timedelta(minutes=90)),
                owned("old-f1", "Failed", started=OLD),
                owned("old-f2", "Failed", started=OLD + timedelta(hours=2)),
                owned("old-f3", "Failed"),  # never started: the newest
                owned("ci-cache", "Running", started=OLD),
            ],
            fields={"started": []},
            events=[
                (
                    "Normal",
                    "HistoryTrimmed",
                    "deleted finished goals team-old-f1, team-old-s1, team-old-f2",
                ),
                SYNCED,
            ],
            deleted=["team-old-f1", "team-old-s1", "team-old-f2"],
        ),
        id="history-keeps-the-newest-finished-goals-per-outcome",
    ),
    pytest.param(
        Case(
            body=backlog(history={"successful": 0, "failed": 0}),
            goals=[owned("ci-cache", "Running", started=OLD)],
            fields={"started": []},
            events=[SYNCED],
        ),
        id="history-never-deletes-an-unfinished-goal",
    ),
    pytest.param(
        Case(
            body=backlog(
                syncIntervalSeconds=3600,
                annotations={ANNOTATION_REQUESTED_AT: "now-1"},
                status=said("Synced", "True", lastSyncedCommit=C0),
            ),
            goals=[owned("ci-cache", "Running")],
            fields={"lastHandledReconcileAt": "now-1", "lastSyncedCommit": C1},
            conditions=ready("LimitReached"),
            events=[SYNCED],
            requeue=3600.0,
        ),
        id="requested-sync-is-recorded-and-the-interval-is-the-requeue",
    ),
    pytest.param(
        Case(
            body=backlog(status=said("Synced", "True", lastSyncedCommit=C1)),
            goals=[owned("ci-cache", "Running")],
            fields={"lastSyncedCommit": C1, "lastSyncTime": ts(NOW)},
            conditions=ready("LimitReached"),
            events=[],
        ),
        id="same-commit-as-last-sync-is-not-announced",
    ),
    pytest.param(
        Case(
            body=backlog(generation=4, status=said("Synced", "True", lastSyncedCommit=C1)),
            goals=[owned("ci-cache", "Running")],
            fields={"observedGeneration": 4},
            conditions=ready("LimitReached"),
        ),
        id="a-new-generation-is-observed",
    ),
]


CLOSED_AT = NOW - timedelta(hours=1)
DECLINED_CI_CACHE = {
    "id": "ci-cache",
    "pullRequest": {"number": 7, "url": "https://github.com/octo/project/pull/7"},
    "closedBy": "reviewer",
    "declinedAt": ts(CLOSED_AT),
    "goal": "team-ci-cache",
}
DECLINED_EVENT = (
    "Normal",
    "TaskDeclined",
    "pull request #7 was closed without merging by reviewer",
)

DECLINING = [
    pytest.param(
        Case(
            body=backlog(history={"successful": 0, "failed": 0}),
            goals=[published("ci-cache", "closed")],
            fields={
                "declined": [DECLINED_CI_CACHE],
                "inProgress": [],
                "ready": ["docs-intro"],
                "started": ["team-docs-intro"],
            },
            events=[("Normal", "GoalCreated", "team-docs-intro"), DECLINED_EVENT, SYNCED],
            create_goal=["team-docs-intro"],
            deleted=[],  # its Goal holds the decline: kept whatever the history says
        ),
        id="closed-without-merge-is-declined-not-selected-and-kept",
    ),
    pytest.param(
        Case(
            body=backlog(status=said("Synced", "True", declined=[DECLINED_CI_CACHE])),
            goals=[published("ci-cache", "closed")],
            fields={"declined": [DECLINED_CI_CACHE], "started": ["team-docs-intro"]},
            events=[("Normal", "GoalCreated", "team-docs-intro"), SYNCED],  # said once
            create_goal=["team-docs-intro"],
        ),
        id="a-decline-is-announced-once",
    ),
    pytest.param(
        Case(
            body=backlog(
                annotations={"revive.backlog.dev/ci-cache": ts(NOW - timedelta(minutes=5))}
            ),
            goals=[published("ci-cache", "closed")],
            fields={"declined": [], "started": ["team-ci-cache-2"]},
            events=[("Normal", "GoalCreated", "team-ci-cache-2 for task ci-cache"), SYNCED],
            create_goal=["team-ci-cache-2"],
        ),
        id="revived-after-the-close-is-selected-again-as-a-new-goal",
    ),
    pytest.param(
        Case(
            body=backlog(
                annotations={
                    "revive.backlog.dev/ci-cache": ts(NOW - timedelta(hours=2)),
                    "revive.backlog.dev/docs-intro": "not a time",
                }
            ),
            goals=[published("ci-cache", "closed")],
            fields={"declined": [DECLINED_CI_CACHE], "started": ["team-docs-intro"]},
            events=[("Normal", "GoalCreated", "team-docs-intro"), DECLINED_EVENT, SYNCED],
            create_goal=["team-docs-intro"],
        ),
        id="a-revival-before-the-close-does-not-count",
    ),
    pytest.param(
        Case(
            body=backlog(),
            goals=[published("ci-cache", "closed", digest="an-older-entry")],
            fields={"declined": [], "started": ["team-ci-cache-2"]},
            events=[("Normal", "GoalCreated", "team-ci-cache-2"), SYNCED],
            create_goal=["team-ci-cache-2"],
        ),
        id="an-edited-entry-is-selected-again",
    ),
    pytest.param(
        Case(
            body=backlog(),
            goals=[
                published("ci-cache", "closed", created=NOW - timedelta(days=2)),
                owned("ci-cache", "Running", name="team-ci-cache-2"),
            ],
            fields={"declined": [], "inProgress": ["ci-cache"], "started": []},
            events=[SYNCED],
        ),
        id="the-latest-goal-decides-a-revived-task-runs",
    ),
    pytest.param(
        Case(
            body=backlog(history={"successful": 0, "failed": 0}),
            goals=[
                published("ci-cache", "open", name="team-ci-cache"),
                published("docs-intro", None, name="team-docs-intro"),
                published("api-docs", "merged", name="team-api-docs"),
            ],
            # Merged but not yet read so from the file: held too, but its Goal is history.
            fields={
                "declined": [],
                "inProgress": ["docs-intro", "ci-cache", "api-docs"],
                "started": [],
            },
            events=[("Normal", "HistoryTrimmed", "deleted finished goals team-api-docs"), SYNCED],
            deleted=["team-api-docs"],
        ),
        id="open-pull-requests-hold-their-task-and-their-goal",
    ),
]


def reconciler_for(
    case: Case, clock: FixedClock
) -> tuple[BacklogReconciler, FakeCluster, FakeBacklogSource, FakeForgeFactory]:
    cluster = FakeCluster(clock=clock)
    for goal in case.goals:
        cluster.add_goal(goal)
    cluster.hidden_once = set(case.hidden)
    cluster.secrets.update(case.secrets)
    source = FakeBacklogSource(error=case.source_error)
    url = case.body["spec"].get("repository", {}).get("url", URL)
    if case.files is not None:
        source.put(url, C1, case.files)
    forges = FakeForgeFactory(FakeForge(pulls=list(case.pulls), error=case.forge_error))
    reconciler = BacklogReconciler(cluster, source, forge_factory=forges, clock=clock)  # type: ignore[arg-type]
    return reconciler, cluster, source, forges


@pytest.mark.parametrize(
    "case", [*VALIDATION, *READING, *SELECTING, *FAILURES, *HISTORY_AND_REPORT, *DECLINING]
)
def test_backlog_reconcile(case: Case) -> None:
    clock = FixedClock(NOW)
    reconciler, cluster, source, forges = reconciler_for(case, clock)

    result = run(reconciler.reconcile(case.body))

    status = wire(result)
    assert status is not None  # a Backlog's status is always computed; the writer diffs it
    assert_fields(status, case.fields)
    assert status["observedGeneration"] == case.body["metadata"]["generation"]
    if case.conditions is not None:
        assert conditions_of(status) == case.conditions
    if case.ready_message is not None:
        [ready_condition] = [c for c in status["conditions"] if c["type"] == "Ready"]
        assert ready_condition["message"] == case.ready_message
    assert events_of(result) == [(k, r) for k, r, _ in case.events]
    for event, (_, _, text) in zip(result.events, case.events, strict=True):
        assert text in event.message, f"{text!r} not in {event.message!r}"
    assert cluster.created_goals == case.create_goal
    assert cluster.deleted_goals == case.deleted
    if case.reads is not None:
        assert [(read.known_commit, read.token) for read in source.reads] == case.reads
    if case.forges is not None:
        assert forges.made == case.forges
    assert result.requeue_after == case.requeue
    assert "ghp_sekrit" not in json.dumps(status)


# ------------------------------------------------------------------ several syncs in a row


def test_created_goal_is_the_template_for_the_task_owned_by_the_backlog() -> None:
    clock = FixedClock(NOW)
    body = backlog(
        template={
            "pullRequest": {"provider": "none", "branchPrefix": "bots/"},
            "retry": {"maxAttempts": 2},
        }
    )
    body["spec"]["goalTemplate"]["metadata"] = {
        "labels": {"team": "docs"},
        "annotations": {"note": "n"},
    }
    reconciler, cluster, _, _ = reconciler_for(Case(body=body), clock)

    run(reconciler.reconcile(body))

    goal = cluster.goal("team-ci-cache")
    assert goal["metadata"]["labels"] == {
        "team": "docs",
        LABEL_BACKLOG: "team",
        LABEL_BACKLOG_UID: UID,
        LABEL_TASK: "ci-cache",
    }
    assert goal["metadata"]["annotations"] == {
        "note": "n",
        ANNOTATION_TASK_DIGEST: DIGESTS["ci-cache"],
    }
    [owner] = goal["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Backlog",
        "team",
        UID,
        True,
    )
    spec = goal["spec"]
    assert spec["repository"]["url"] == URL
    assert spec["backlog"] == {"path": PATH, "taskId": "ci-cache"}
    assert spec["priority"] == 0  # `critical`, the first word of the scale
    assert spec["pullRequest"]["branchPrefix"] == "bots/"
    assert spec["retry"]["maxAttempts"] == 2


def test_unchanged_tip_is_not_fetched_or_parsed_again() -> None:
    clock = FixedClock(NOW)
    body = backlog()
    reconciler, cluster, source, _ = reconciler_for(Case(body=body), clock)
    run(cluster.apply(reconciler, body))
    # Were the file read again, this would fail the sync: the cached parse must serve it.
    source.put(URL, C1, {PATH: "tasks: [\n"})
    clock.advance(seconds=61)

    second = run(cluster.apply(reconciler, body))

    assert [read.known_commit for read in source.reads] == [None, C1]
    assert events_of(second) == []  # nothing new, no Synced
    assert body["status"]["lastSyncTime"] == ts(NOW + timedelta(seconds=61))
    assert cluster.created_goals == ["team-ci-cache"]  # the running Goal holds the task


def test_a_deleted_backlogs_parse_is_not_kept() -> None:
    clock = FixedClock(NOW)
    body = backlog()
    reconciler, cluster, source, _ = reconciler_for(Case(body=body), clock)
    run(cluster.apply(reconciler, body))
    body["spec"]["path"] = "docs/backlog.yaml"  # a second read of the same Backlog
    source.put(URL, C1, {PATH: LEVIATHAN, "docs/backlog.yaml": "tasks: []\n"})
    run(cluster.apply(reconciler, body))
    assert len(reconciler._parsed) == 1  # what it reads now, not everything it ever read

    reconciler.forget(body["metadata"]["uid"])

    assert reconciler._parsed == {}


def test_a_changed_path_is_read_afresh_not_from_the_old_parse() -> None:
    clock = FixedClock(NOW)
    body = backlog()
    reconciler, cluster, source, _ = reconciler_for(Case(body=body), clock)
    run(cluster.apply(reconciler, body))
    body["spec"]["path"] = "docs/backlog.yaml"
    source.put(URL, C1, {PATH: LEVIATHAN, "docs/backlog.yaml": "tasks: []\n"})

    second = run(cluster.apply(reconciler, body))

    assert [(read.path, read.known_commit) for read in source.reads] == [
        (PATH, None),
        ("docs/backlog.yaml", None),
    ]
    assert body["status"]["counts"] == {
        "pending": 0,
        "inProgress": 0,
        "completed": 0,
        "failed": 0,
        "blocked": 0,
    }
    assert second.events == []


def test_merged_task_is_never_selected_again_over_several_syncs() -> None:
    clock = FixedClock(NOW)
    body = backlog()
    reconciler, cluster, source, _ = reconciler_for(Case(body=body), clock)

    def finish(name: str) -> None:
        cluster.goal(name)["status"] = {"phase": "Succeeded", "startTime": ts(clock())}

    run(cluster.apply(reconciler, body))
    finish("team-ci-cache")
    clock.advance(seconds=61)
    run(cluster.apply(reconciler, body))
    assert cluster.created_goals == ["team-ci-cache", "team-docs-intro"]

    source.put(URL, "2" * 40, {PATH: MERGED})  # ci-cache's pull request merged
    finish("team-docs-intro")
    clock.advance(seconds=61)
    merged = run(cluster.apply(reconciler, body))

    assert body["status"]["lastSyncedCommit"] == "2" * 40
    assert body["status"]["completed"] == ["ci-cache", "done-already"]
    assert cluster.created_goals == ["team-ci-cache", "team-docs-intro", "team-api-docs"]
    assert events_of(merged) == [
        ("Normal", "GoalCreated"),
        ("Normal", "Synced"),
    ]
    clock.advance(seconds=61)
    run(cluster.apply(reconciler, body))
    assert len(cluster.created_goals) == 3  # never a second ci-cache


# Tasks of every kind of field and unknown field, and their digests as the operator wrote them
# into Goal annotations while a task was a pydantic model (`model_dump(mode="json")`): a digest
# that changed would make every existing Goal look out of date.
DIGESTED = """\
tasks:
  - id: plain
    title: A plain task
    ready: true
  - id: full
    title: Full
    description: |
      Several lines
      of text
    ready: "yes"
    status: completed
    priority: High
    dependencies: [plain]
    allowed_paths: ["docs/**", "src/*.py"]
    last_attempt_id: attempt-full-1
    branch_name: backlog/full-1
    pr_number: 707
    completed_at: "2026-01-30T23:15:00Z"
  - id: extras
    priority: 3
    line: 99
    owner: someone
    when: 2026-01-02
    stamp: 2026-01-02T03:04:05
    stamp_tz: 2026-01-02T03:04:05+02:00
    ratio: 1.5
    nothing: null
    not_a_number: .nan
    infinite: -.inf
    flag: false
    big: 123456789012345678901234567890
    nested: {a: [1, 2, {b: c}], d: null}
    listed: [x, 1, true, 2.5]
  - id: naive-time
    completed_at: 2026-01-30 23:15:00
    pr_number: ""
    requires: []
  - id: date-only
    completed_at: 2026-01-30
    status: null
    ready: off
    priority: null
"""


def test_task_digests_are_those_goals_already_carry() -> None:
    tasks = BacklogDocument.parse(DIGESTED.encode(), source=PATH).tasks

    assert {task.id: task_digest(task) for task in tasks} == {
        "plain": "4181395da27a7706",
        "full": "8c5e4159e019ce37",
        "extras": "2f255320becb9376",
        "naive-time": "f2c573f99fe7398f",
        "date-only": "6948a5bf1359fa58",
    }


# ------------------------------------------------------------------------ usage and budget


def ended(cluster: FakeCluster, name: str, phase: str, *results: WorkerResult) -> None:
    """The Goal `name` ends in `phase` after one attempt per result, recorded as the Goal
    reconciler records them (at the clock's time)."""
    goal = cluster.goal(name)
    usage = None
    for result in results:
        usage = record_attempt(usage, result, attempt_id=None, now=cluster.clock())  # type: ignore[misc]
    assert usage is not None
    goal["status"] = {
        "phase": phase,
        "startTime": ts(NOW),
        "completionTime": ts(cluster.clock()),  # type: ignore[misc]
        "usage": to_wire(usage),
    }


PUBLISHED_USAGE = WorkerResult(
    outcome=Outcome.PUBLISHED,
    step="publish",
    usage=TaskUsage(input_tokens=1000, output_tokens=50, cost=Cost(amount="0.4", currency="USD")),
)


def test_an_attempts_budget_stops_new_goals_until_the_next_utc_day() -> None:
    clock = FixedClock(NOW)
    body = backlog(limits={"maxRunningGoals": 5}, budget={"perDay": {"attempts": 1}})
    reconciler, cluster, _, _ = reconciler_for(Case(body=body), clock)

    first = run(cluster.apply(reconciler, body))
    # Two tasks are ready; the budget has room for one attempt.
    assert cluster.created_goals == ["team-ci-cache"]
    assert body["status"]["budget"]["exhausted"] is False
    assert "BudgetExhausted" not in [reason for _, reason in events_of(first)]

    clock.advance(seconds=61)
    spent = run(cluster.apply(reconciler, body))  # its Goal runs: its attempt is in flight
    assert cluster.created_goals == ["team-ci-cache"]
    assert body["status"]["budget"] == {
        "exhausted": True,
        "reason": "AttemptsSpent",
        "message": "daily budget spent: 0 attempt(s) ended today and 1 running or waiting, "
        "of 1; no new Goal starts until 2026-03-03T00:00:00Z",
        "day": "2026-03-02",
        "resumeTime": "2026-03-03T00:00:00Z",
    }
    assert conditions_of(body["status"]) == ready("BudgetExhausted")
    assert events_of(spent) == [("Warning", "BudgetExhausted")]

    ended(cluster, "team-ci-cache", "Succeeded", PUBLISHED_USAGE)
    clock.advance(seconds=61)
    still = run(cluster.apply(reconciler, body))
    assert cluster.created_goals == ["team-ci-cache"]
    assert body["status"]["budget"]["message"].startswith("daily budget spent: 1 attempt(s)")
    assert events_of(still) == []  # said once

    clock.now = datetime(2026, 3, 3, 0, 0, 5, tzinfo=UTC)
    renewed = run(cluster.apply(reconciler, body))

    assert cluster.created_goals == ["team-ci-cache", "team-docs-intro"]
    assert events_of(renewed)[0] == ("Normal", "BudgetAvailable")
    assert body["status"]["budget"]["exhausted"] is False
    assert body["status"]["budget"]["day"] == "2026-03-03"
    [yesterday] = body["status"]["usage"]["days"]
    assert (yesterday["date"], yesterday["attempts"], yesterday["inputTokens"]) == (
        "2026-03-02",
        1,
        1000,
    )
    assert conditions_of(body["status"])["Ready"] != ("True", "BudgetExhausted")


def test_a_spent_budget_looks_again_at_midnight() -> None:
    clock = FixedClock(datetime(2026, 3, 2, 23, 59, 40, tzinfo=UTC))
    body = backlog(budget={"perDay": {"attempts": 0}})
    reconciler, cluster, _, _ = reconciler_for(Case(body=body), clock)

    result = run(cluster.apply(reconciler, body))

    assert cluster.created_goals == []
    assert result.requeue_after == 20.0  # not the 60 s interval


@pytest.mark.parametrize(("unreported", "spent"), [("Block", "UsageUnreported"), ("Allow", None)])
def test_a_task_that_reported_no_cost_spends_a_cost_budget_unless_allowed(
    unreported: str, spent: str | None
) -> None:
    clock = FixedClock(NOW)
    body = backlog(
        limits={"maxRunningGoals": 1},
        budget={
            "perDay": {"cost": {"amount": "10", "currency": "USD"}},
            "unreportedUsage": unreported,
        },
    )
    reconciler, cluster, _, _ = reconciler_for(Case(body=body), clock)
    run(cluster.apply(reconciler, body))
    silent = failure("TaskFailed", "exit 3", retryable=True, step="task")  # no usage file read
    ended(cluster, "team-ci-cache", "Failed", silent)
    clock.advance(seconds=61)

    run(cluster.apply(reconciler, body))

    budget = body["status"]["budget"]
    assert budget["exhausted"] is (spent is not None)
    if spent is not None:
        assert budget["reason"] == spent
        assert "1 attempt(s) today reported no cost" in budget["message"]
        assert cluster.created_goals == ["team-ci-cache"]
    else:
        assert budget["message"] == "used today: 0 of 10 USD"
        assert cluster.created_goals == ["team-ci-cache", "team-ci-cache-2"]  # tried again


def test_a_finished_goal_leaves_history_only_once_its_usage_is_counted() -> None:
    clock = FixedClock(NOW)
    body = backlog(history={"successful": 0, "failed": 0})
    reconciler, cluster, _, _ = reconciler_for(Case(body=body), clock)
    run(cluster.apply(reconciler, body))
    ended(cluster, "team-ci-cache", "Succeeded", PUBLISHED_USAGE)
    clock.advance(seconds=61)

    held = run(cluster.apply(reconciler, body))
    assert cluster.deleted_goals == []  # the status read does not hold its attempt yet
    assert body["status"]["usage"]["days"][0]["attempts"] == 1
    assert held.requeue_after == 5.0  # soon, not at the next interval

    clock.advance(seconds=5)
    again = run(cluster.apply(reconciler, body))
    assert cluster.deleted_goals == ["team-ci-cache"]
    assert again.requeue_after == 60.0
    clock.advance(seconds=61)
    run(cluster.apply(reconciler, body))

    [day] = body["status"]["usage"]["days"]
    assert (day["attempts"], day["costs"]) == (1, [{"amount": "0.4", "currency": "USD"}])
    assert body["status"]["usage"]["counted"] == []
    assert "budget" not in body["status"]  # no spec.budget: no budget status


def test_a_declined_task_is_not_picked_again_once_its_goal_would_leave_the_history() -> None:
    """What happened before pull requests were followed: a succeeded Goal held its task until
    history trimming deleted it, and the task whose pull request a person had closed was picked
    again. Now its Goal is kept, and the task stays declined sync after sync."""
    clock = FixedClock(NOW)
    body = backlog(history={"successful": 0, "failed": 0})
    reconciler, cluster, _, _ = reconciler_for(Case(body=body), clock)
    run(cluster.apply(reconciler, body))  # ci-cache starts
    cluster.goal("team-ci-cache")["status"] = {
        "phase": "Succeeded",
        "startTime": ts(clock()),
        "pullRequest": {
            "number": 7,
            "url": "https://github.com/octo/project/pull/7",
            "state": "closed",
            "closedAt": ts(clock()),
            "closedBy": "reviewer",
        },
    }
    for _ in range(3):
        clock.advance(seconds=61)
        run(cluster.apply(reconciler, body))
    assert cluster.created_goals == ["team-ci-cache", "team-docs-intro"]
    assert cluster.deleted_goals == []
    assert [task["id"] for task in body["status"]["declined"]] == ["ci-cache"]

    # Revived: one more Goal for it, after which it is no longer declined.
    body["metadata"]["annotations"]["revive.backlog.dev/ci-cache"] = ts(clock())
    cluster.goal("team-docs-intro")["status"] = {"phase": "Failed", "completionTime": ts(clock())}
    clock.advance(seconds=61)
    run(cluster.apply(reconciler, body))
    assert cluster.created_goals[-1] == "team-ci-cache-2"
    assert body["status"]["declined"] == []
