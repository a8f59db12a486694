"""The Goal reconciler: ordered small steps from a Goal's body to its next status. No kopf here.

1. validate the spec (a bad spec fails the goal with `Stalled`, never a crash loop);
2. honour a re-run request (the `backlog.dev/requested-at` annotation, as Flux's requestedAt);
3. a finished goal stays finished (a changed spec is noted, not re-run);
4. a running goal: read its Job and Pod; on completion write the result, retry or stall;
5. a waiting goal: suspend, one run per task, backoff, capacity — then start the attempt's Job.

The reconciler returns what to write and say; the kopf handlers apply it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from backlog_operator.api.common import describe_validation_error
from backlog_operator.api.goal import Goal
from backlog_operator.api.result import Outcome, WorkerResult, failure
from backlog_operator.controller import jobs
from backlog_operator.controller.outcome import attempt_result, job_finished
from backlog_operator.controller.policy import backoff_seconds, should_retry
from backlog_operator.controller.registry import GoalEntry, Registry
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.status import (
    FINAL_PHASES,
    conditions_for,
    parse_time,
    timestamp,
)
from backlog_operator.errors import AlreadyExistsError

RERUN_ANNOTATION = "backlog.dev/requested-at"

# Status fields that describe one run; cleared when a re-run starts.
_RUN_FIELDS = (
    "jobName",
    "attemptId",
    "branch",
    "commit",
    "pullRequest",
    "changedFiles",
    "outcome",
    "reason",
    "message",
    "startTime",
    "completionTime",
    "nextAttemptTime",
    "queuePosition",
)


class Cluster(Protocol):
    """What the reconciler needs of the API (implemented by adapters.kube.KubeCluster)."""

    async def create_job(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...
    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def find_pod(self, namespace: str, selector: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the goal."""

    kind: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Reconciled:
    """The outcome of one reconcile: a status to write, events to post, when to look again."""

    status: dict[str, Any] | None = None
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None


class GoalReconciler:
    """Reconciles one Goal at a time; decisions that compare goals are taken under one lock."""

    def __init__(
        self,
        cluster: Cluster,
        registry: Registry,
        settings: OperatorSettings,
        *,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.cluster = cluster
        self.registry = registry
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rng = rng or random.Random()  # noqa: S311 (jitter)

    async def reconcile(self, body: Mapping[str, Any]) -> Reconciled:
        """Compute and carry out the next step for the goal in `body`."""
        status: dict[str, Any] = dict(body.get("status") or {})
        try:
            goal = Goal.model_validate(dict(body))
        except ValidationError as error:
            return self._invalid(body, status, describe_validation_error(error))
        if goal.spec.task.image is None:
            return self._invalid(body, status, "spec.task.image: required on a cluster")
        status, rerun_events = self._rerun_requested(body, status)
        if status.get("phase") in FINAL_PHASES:
            return self._finished(goal, status, rerun_events)
        if status.get("phase") == "Running" and status.get("jobName"):
            result = await self._observe(goal, status)
        else:
            async with self.registry.lock:  # admission compares goals: one decision at a time
                result = await self._start(goal, status)
        result.events[:0] = rerun_events
        return result

    # ------------------------------------------------------------------ 1. validation

    def _invalid(self, body: Mapping[str, Any], status: dict[str, Any], problem: str) -> Reconciled:
        generation = body.get("metadata", {}).get("generation")
        if (
            status.get("phase") == "Failed"
            and status.get("reason") == "InvalidSpec"
            and status.get("observedGeneration") == generation
        ):
            return Reconciled()  # already said; events only on transitions
        new = self._status(status, "Failed", "InvalidSpec", f"invalid spec: {problem}", generation)
        new["completionTime"] = timestamp(self.clock())
        return Reconciled(new, [Event("Warning", "InvalidSpec", f"invalid spec: {problem}")])

    # ---------------------------------------------------------------- 2. re-run request

    def _rerun_requested(
        self, body: Mapping[str, Any], status: dict[str, Any]
    ) -> tuple[dict[str, Any], list[Event]]:
        token = (body.get("metadata", {}).get("annotations") or {}).get(RERUN_ANNOTATION)
        if not token or token == status.get("lastHandledReconcileAt"):
            return status, []
        status = dict(status, lastHandledReconcileAt=token)
        if status.get("phase") not in FINAL_PHASES:
            return status, []  # running or waiting already: the request is satisfied
        for name in _RUN_FIELDS:
            status[name] = None
        status.update(phase="Pending", attempts=0, run=int(status.get("run") or 1) + 1)
        return status, [Event("Normal", "RerunRequested", f"re-run requested ({token})")]

    # ------------------------------------------------------------------- 3. finished

    def _finished(self, goal: Goal, status: dict[str, Any], events: list[Event]) -> Reconciled:
        self.registry.put(self._entry(goal, status))
        generation = goal.metadata.generation
        if status.get("observedGeneration") == generation:
            return Reconciled(None, events)
        message = (
            f"the spec changed after the goal finished ({status.get('phase')}); it does not re-run "
            f"by itself: set the annotation {RERUN_ANNOTATION} to a new value to run it again"
        )
        new = dict(status, observedGeneration=generation)
        new["conditions"] = [
            dict(condition, observedGeneration=generation)
            for condition in status.get("conditions") or []
        ]
        return Reconciled(new, [*events, Event("Normal", "SpecChangedAfterFinish", message)])

    # -------------------------------------------------------------------- 4. running

    async def _observe(self, goal: Goal, status: dict[str, Any]) -> Reconciled:
        namespace = goal.metadata.namespace or "default"
        job = await self.cluster.get_job(namespace, status["jobName"])
        if job is None:
            result = failure(
                "JobMissing", f"the worker Job {status['jobName']} disappeared", retryable=True
            )
        elif job_finished(job) is None:
            self.registry.put(self._entry(goal, status))
            return Reconciled(self._refresh_generation(goal, status))
        else:
            pod = await self.cluster.find_pod(namespace, _pod_selector(goal, status))
            found = attempt_result(
                job, pod, permanent_exit_codes=goal.spec.retry.permanent_exit_codes
            )
            result = found or failure(
                "JobFailed", "the worker Job ended without a result", retryable=True
            )
        return self._attempt_done(goal, status, result)

    def _refresh_generation(self, goal: Goal, status: dict[str, Any]) -> dict[str, Any] | None:
        if status.get("observedGeneration") == goal.metadata.generation:
            return None
        # A spec edited while running applies to later attempts; say we have seen it.
        return dict(
            status,
            observedGeneration=goal.metadata.generation,
            conditions=[
                dict(c, observedGeneration=goal.metadata.generation)
                for c in status.get("conditions") or []
            ],
        )

    def _attempt_done(self, goal: Goal, status: dict[str, Any], result: WorkerResult) -> Reconciled:
        now = self.clock()
        attempts = int(status.get("attempts") or 1)
        fields = _result_fields(result)
        if result.outcome is not Outcome.FAILED:
            reason = "Published" if result.outcome is Outcome.PUBLISHED else "AlreadyCompleted"
            message = _success_message(result)
            new = self._status(
                status, "Succeeded", reason, message, goal.metadata.generation, **fields
            )
            new["completionTime"] = timestamp(now)
            self.registry.put(self._entry(goal, new))
            return Reconciled(new, [Event("Normal", reason, message)])
        reason = result.reason or "Failed"
        message = f"attempt {attempts} failed: {result.message or reason}"
        if should_retry(goal.spec.retry, attempts, bool(result.retryable)):
            delay = backoff_seconds(goal.spec.retry, attempts, self.rng)
            delay = max(delay, float(result.retry_after_seconds or 0))
            next_time = now + timedelta(seconds=delay)
            limit = goal.spec.retry.max_attempts
            text = f"{message}; attempt {attempts + 1} of {limit} in {delay:.0f}s"
            new = self._status(
                status, "Queued", "Backoff", text, goal.metadata.generation, **fields
            )
            new["nextAttemptTime"] = timestamp(next_time)
            self.registry.put(self._entry(goal, new))
            return Reconciled(new, [Event("Warning", "AttemptFailed", text)], requeue_after=delay)
        why = "retries exhausted" if result.retryable else "not retryable"
        text = f"{message} ({why})"
        new = self._status(status, "Failed", reason, text, goal.metadata.generation, **fields)
        new["completionTime"] = timestamp(now)
        self.registry.put(self._entry(goal, new))
        return Reconciled(new, [Event("Warning", "Failed", text)])

    # -------------------------------------------------------------------- 5. waiting

    async def _start(self, goal: Goal, status: dict[str, Any]) -> Reconciled:
        now = self.clock()
        entry = self._entry(goal, status)
        generation = goal.metadata.generation
        if goal.spec.suspend:
            self.registry.put(entry)
            return self._wait(status, "Suspended", "suspended: spec.suspend is true", generation)
        for other in self.registry.same_task(entry):
            if other.phase == "Succeeded":
                message = f"goal {other.key} already completed this task"
                new = self._status(status, "Skipped", "AlreadySucceeded", message, generation)
                new["completionTime"] = timestamp(now)
                self.registry.put(self._entry(goal, new))
                return Reconciled(new, [Event("Normal", "Skipped", message)])
            if other.phase == "Running":
                self.registry.put(replace(entry, blocked=True))
                message = f"waiting for goal {other.key}, which runs the same task"
                return self._wait(status, "WaitingForTask", message, generation)
        ready_at = parse_time(status.get("nextAttemptTime"))
        if ready_at is not None and ready_at > now:
            self.registry.put(entry)
            reconciled = self._wait(
                status, "Backoff", status.get("message") or "backing off", generation
            )
            reconciled.requeue_after = (ready_at - now).total_seconds()
            return reconciled
        self.registry.put(entry)
        admitted, positions = self.registry.admission(
            now,
            max_per_repository=self.settings.max_running_per_repository,
            max_total=self.settings.max_running,
        )
        if entry.key not in admitted:
            position = positions.get(entry.key)
            message = f"waiting for capacity (position {position} in the queue)"
            return self._wait(
                status, "WaitingForCapacity", message, generation, queuePosition=position
            )
        return await self._run_attempt(goal, status, int(status.get("attempts") or 0) + 1)

    def _wait(
        self,
        status: dict[str, Any],
        reason: str,
        message: str,
        generation: int | None,
        **fields: Any,
    ) -> Reconciled:
        """Queued for `reason`: an event when the reason is new, a status write when anything is."""
        requeue = self.settings.requeue_seconds
        if status.get("phase") == "Queued" and status.get("reason") == reason:
            wanted = {"observedGeneration": generation, **fields}
            if all(status.get(name) == value for name, value in wanted.items()):
                return Reconciled(requeue_after=requeue)
            return Reconciled(dict(status, **wanted), requeue_after=requeue)
        new = self._status(status, "Queued", reason, message, generation, **fields)
        return Reconciled(new, [Event("Normal", reason, message)], requeue_after=requeue)

    async def _run_attempt(self, goal: Goal, status: dict[str, Any], attempt: int) -> Reconciled:
        run = int(status.get("run") or 1)
        manifest = jobs.build_job(goal, attempt, self.settings, run)
        name = manifest["metadata"]["name"]
        adopted = False
        try:
            await self.cluster.create_job(manifest)
        except AlreadyExistsError:
            existing = await self.cluster.get_job(manifest["metadata"]["namespace"], name)
            labels = (existing or {}).get("metadata", {}).get("labels") or {}
            if labels.get(jobs.LABEL_GOAL_UID) != goal.metadata.uid:
                return self._invalid_job_conflict(goal, status, name)
            adopted = True  # made by us before a restart: adopt it rather than make a second
        message = f"attempt {attempt} {'adopted' if adopted else 'started'}: Job {name}"
        new = self._status(status, "Running", "Running", message, goal.metadata.generation)
        new.update(
            attempts=attempt,
            jobName=name,
            attemptId=jobs.attempt_id(goal, attempt, run),
            run=run,
            taskId=goal.spec.backlog.task_id or goal.metadata.name,
            startTime=status.get("startTime") or timestamp(self.clock()),
            queuePosition=None,
            nextAttemptTime=None,
        )
        self.registry.put(self._entry(goal, new))
        return Reconciled(new, [Event("Normal", "Started" if not adopted else "Adopted", message)])

    def _invalid_job_conflict(self, goal: Goal, status: dict[str, Any], name: str) -> Reconciled:
        message = f"a Job named {name} exists and does not belong to this goal"
        new = self._status(status, "Failed", "JobConflict", message, goal.metadata.generation)
        self.registry.put(self._entry(goal, new))
        return Reconciled(new, [Event("Warning", "JobConflict", message)])

    # ---------------------------------------------------------------------- helpers

    def _status(
        self,
        status: Mapping[str, Any],
        phase: str,
        reason: str,
        message: str,
        generation: int | None,
        **fields: Any,
    ) -> dict[str, Any]:
        new = dict(status)
        new.update(fields)
        new.update(phase=phase, reason=reason, message=message, observedGeneration=generation)
        new["conditions"] = conditions_for(
            phase,
            reason,
            message,
            generation=generation,
            previous=status.get("conditions") or [],
            now=self.clock(),
        )
        return new

    def _entry(self, goal: Goal, status: Mapping[str, Any]) -> GoalEntry:
        return entry_for(goal, status)


def entry_for(goal: Goal, status: Mapping[str, Any]) -> GoalEntry:
    """The registry's view of a goal."""
    repository = goal.spec.repository.url.rstrip("/").removesuffix(".git")
    task = goal.spec.backlog.task_id
    return GoalEntry(
        key=f"{goal.metadata.namespace}/{goal.metadata.name}",
        repository=repository,
        task=f"{repository}|{goal.spec.backlog.path}|{task}" if task else None,
        phase=str(status.get("phase") or "Pending"),
        priority=goal.spec.priority,
        created=goal.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC),
        suspended=goal.spec.suspend,
        ready_at=parse_time(status.get("nextAttemptTime")),
    )


def _pod_selector(goal: Goal, status: Mapping[str, Any]) -> str:
    return (
        f"{jobs.LABEL_GOAL_UID}={goal.metadata.uid},"
        f"{jobs.LABEL_RUN}={int(status.get('run') or 1)},"
        f"{jobs.LABEL_ATTEMPT}={int(status.get('attempts') or 1)}"
    )


def _result_fields(result: WorkerResult) -> dict[str, Any]:
    pull_request = result.pull_request.to_wire() if result.pull_request else None
    return {
        "outcome": result.outcome.value,
        "branch": result.branch,
        "commit": result.commit,
        "pullRequest": pull_request,
        "changedFiles": list(result.changed_files),
    }


def _success_message(result: WorkerResult) -> str:
    if result.outcome is Outcome.ALREADY_COMPLETED:
        return result.message or "the task is already completed in the backlog"
    if result.pull_request is not None:
        pull_request = result.pull_request
        return f"pull request #{pull_request.number} on {result.branch}: {pull_request.url}"
    return f"pushed {result.branch} ({(result.commit or '')[:12]})"
