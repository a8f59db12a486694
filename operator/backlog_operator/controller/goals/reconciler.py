"""The Goal reconciler: ordered small steps from a Goal's body to its next status. No kopf here.

1. validate the spec (a bad spec fails the goal with `Stalled`, never a crash loop);
2. honour a re-run request (the `backlog.dev/requested-at` annotation, as Flux's requestedAt);
3. a finished goal stays finished (a changed spec is noted, not re-run);
4. a running goal: read its Job and Pod; while it runs, say its step and what holds the Pod
   up (failing early what cannot heal); on completion write the result and the attempt's
   usage (`status.usage`), retry or stall;
5. a waiting goal: suspend, one run per task, backoff, capacity — then start the attempt's Job
   (a Job the API server refuses fails the goal: `InvalidSpec` or `JobRefused`, never a loop).

With `spec.approval.required` an attempt stages its change and the goal awaits a person's
decision; those steps are `approval_steps.ApprovalSteps` (a staged result stored, the decision
read), and an approved goal's attempts are publish-only Jobs (`approval_job`).

A goal the capacity table holds as running while its status does not say so has a Job that
may exist (created before a crash, or its create's answer or status write was lost): it is
adopted (or created) before anything else is decided, so no other goal takes its slot.

The reconciler returns the `GoalStatus` to write and the events to say; the runtime applies it.
A reconcile that raises is retried by the runtime with backoff; a `ReconcileError` condition the
runtime wrote meanwhile is replaced by the phase's conditions on the next success.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from backlog_operator.adapters.github_app import InstallationToken
from backlog_operator.adapters.kube import describe_failure
from backlog_operator.api.common import Condition, describe_validation_error
from backlog_operator.api.goal import (
    ACTIVE_PHASES,
    FINAL_PHASES,
    SUCCESSFUL_PHASES,
    AttemptFailure,
    FollowedPullRequest,
    Goal,
    GoalStatus,
    Phase,
)
from backlog_operator.api.labels import (
    ANNOTATION_REQUESTED_AT,
    LABEL_ATTEMPT,
    LABEL_GOAL_UID,
    LABEL_RUN,
)
from backlog_operator.api.result import Outcome, WorkerResult, failure
from backlog_operator.controller.conditions import (
    READY,
    RECONCILE_ERROR,
    mark_ready,
    mark_reconciling,
    mark_stalled,
    reason_of,
)
from backlog_operator.controller.conditions import observe_generation as _observe_generation
from backlog_operator.controller.credentials import ForgeCredentials
from backlog_operator.controller.goals import job
from backlog_operator.controller.goals.approval_job import (
    build_publish_job,
    publish_attempt_label,
    publish_job_name,
    publishing,
)
from backlog_operator.controller.goals.approval_steps import ApprovalSteps
from backlog_operator.controller.goals.attempt_token import AttemptTokens, token_secret_name
from backlog_operator.controller.goals.capacity import CapacityTable, entry_for, repository_of
from backlog_operator.controller.goals.heal import Healer
from backlog_operator.controller.goals.outcome import (
    DISRUPTED,
    FAILED_MOUNT,
    PodProgress,
    attempt_result,
    job_finished,
    mount_check_due,
    mount_failure,
    pod_progress,
    same_wait,
    stuck_result,
)
from backlog_operator.controller.goals.previous_failure import (
    LOG_BYTES,
    TASK_CONTAINER,
    previous_failure_value,
)
from backlog_operator.controller.goals.pull_request import MERGED, opened_condition
from backlog_operator.controller.goals.retry import backoff_seconds, should_retry
from backlog_operator.controller.results import AttemptEnd, Event, Reconciled
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.status import evolve, instant, read_status
from backlog_operator.controller.usage import record_attempt
from backlog_operator.errors import AlreadyExistsError, ClassifiedError
from backlog_operator.redact import Redactor

log = logging.getLogger("backlog_operator.controller")

# Status fields that describe one run; cleared when a re-run starts.
_RUN_FIELDS = (
    "job_name",
    "attempt_id",
    "branch",
    "commit",
    "pull_request",
    "changed_files",
    "outcome",
    "reason",
    "message",
    "start_time",
    "completion_time",
    "next_attempt_time",
    "queue_position",
    "step",
    "step_reason",
    "step_message",
    "step_reason_time",
    "disruptions",
    "last_failure",
    "approval",
)
# Status fields that describe the running attempt's Pod; cleared when the attempt ends.
_STEP_FIELDS = ("step", "step_reason", "step_message", "step_reason_time")
# Disruptions (eviction, node loss, preemption) of one run that do not count as attempts; past
# this many they do, so a goal on a cluster that keeps evicting it still ends.
MAX_UNCOUNTED_DISRUPTIONS = 5


class GoalCluster(Protocol):
    """What the Goal reconciler needs of the API (implemented by adapters.kube.KubeCluster)."""

    async def create_job(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...
    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def find_pod(self, namespace: str, selector: str) -> dict[str, Any] | None: ...
    async def pod_events(self, namespace: str, pod: str, reason: str) -> list[dict[str, Any]]: ...


@runtime_checkable
class LogReader(Protocol):
    """A cluster that can read the end of a container's log, and a Secret's key (KubeCluster
    can): a retry is told how the attempt before it failed, with its task's log (the token
    masked). Without it, the retry is told the reason and message only."""

    async def pod_log_tail(
        self, namespace: str, pod: str, container: str, *, max_bytes: int
    ) -> str | None: ...
    async def read_secret_key(self, namespace: str, name: str, key: str) -> str | None: ...


@runtime_checkable
class JobStopper(Protocol):
    """A cluster that can stop an attempt by deleting its Job (KubeCluster can). Without it an
    attempt failed early is left to its Job's deadline."""

    async def delete_job(self, namespace: str, name: str) -> None: ...


def conditions_for(
    phase: Phase,
    reason: str,
    message: str,
    *,
    generation: int | None,
    previous: Sequence[Condition] = (),
    now: datetime,
) -> list[Condition]:
    """The three conditions of a goal in `phase` (docs/operator.md, "Conditions").

    | phase | Ready | Reconciling | Stalled |
    |---|---|---|---|
    | Pending, Queued, Running, AwaitingApproval | False | True (the phase's reason) | False |
    | Succeeded, Skipped | True (Published, AlreadyCompleted, AlreadySucceeded) | False | False |
    | Failed | False (the failure's reason) | False | True (the failure's reason) |
    """
    if phase in SUCCESSFUL_PHASES:
        mark = mark_ready
    elif phase in ACTIVE_PHASES:
        mark = mark_reconciling
    else:
        mark = mark_stalled
    return mark(previous, reason, message, generation=generation, now=now)


class GoalReconciler(ApprovalSteps):
    """Reconciles one Goal at a time; decisions that compare goals are taken synchronously."""

    cluster: GoalCluster

    def __init__(
        self,
        cluster: GoalCluster,
        capacity: CapacityTable,
        settings: OperatorSettings,
        *,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        credentials: ForgeCredentials | None = None,
    ) -> None:
        self.cluster = cluster
        self.capacity = capacity
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rng = rng or random.Random()  # noqa: S311 (jitter)
        # A GitHub App's installation token per attempt, in a Secret of the attempt's Job.
        self.tokens = AttemptTokens(credentials or ForgeCredentials(cluster, clock=self.clock))
        # Jobs this process asked to create and has not seen recorded in a status yet: a 409
        # on one of them is our own create whose answer (or status write) was lost.
        self._created: set[str] = set()
        # Heal Jobs of succeeded goals whose pull request conflicts (goals/heal.py).
        self.heals = Healer(cluster, settings, self.clock)

    async def reconcile(self, body: Mapping[str, Any]) -> Reconciled[GoalStatus]:
        """Compute and carry out the next step for the goal in `body`."""
        result = await self._reconcile(body)
        return self._recovered(body, result)

    async def _reconcile(self, body: Mapping[str, Any]) -> Reconciled[GoalStatus]:
        try:
            goal = Goal.model_validate(dict(body))
        except ValidationError as error:
            status = read_status(GoalStatus, body.get("status"))
            return self._invalid(body, status, describe_validation_error(error))
        status = goal.status or GoalStatus()
        if goal.spec.task.image is None:
            result = self._invalid(body, status, "spec.task.image: required on a cluster")
        else:
            result = await self._next_step(body, goal, status)
        if result.status is not None and result.status.task_id != goal.work_name:
            # Every status write names the work (`kubectl get goals` shows it as TASK), from the
            # first one on: a free-form goal's too, and one that waits or fails before any Job.
            result.status = evolve(result.status, task_id=goal.work_name)
        return result

    async def _next_step(
        self, body: Mapping[str, Any], goal: Goal, status: GoalStatus
    ) -> Reconciled[GoalStatus]:
        status, rerun_events = self._rerun_requested(body, status)
        if status.phase in FINAL_PHASES:
            # A heal of its pull request may have ended (its phase stays as it is).
            return await self.heals.finished(
                goal, status, self._finished(goal, status, rerun_events)
            )
        if status.phase is Phase.RUNNING and status.job_name:
            result = await self._observe(goal, status)
        elif status.phase is Phase.AWAITING_APPROVAL:
            result = await self._awaiting(goal, status)
        else:
            result = await self._start(goal, status)
        result.events[:0] = rerun_events
        return result

    def _recovered(
        self, body: Mapping[str, Any], result: Reconciled[GoalStatus]
    ) -> Reconciled[GoalStatus]:
        """`result`, with the phase's conditions back where the runtime had shown a failure."""
        read = read_status(GoalStatus, body.get("status"))
        if reason_of(read.conditions, READY) != RECONCILE_ERROR:
            return result
        base = result.status or read
        if reason_of(base.conditions, READY) != RECONCILE_ERROR:
            return result
        generation = body.get("metadata", {}).get("generation")
        phase = base.phase or Phase.PENDING
        reason, message = base.reason or phase.value, base.message or ""
        result.status = self._status(base, phase, reason, message, generation)
        return result

    # ------------------------------------------------------------------ 1. validation

    def _invalid(
        self, body: Mapping[str, Any], status: GoalStatus, problem: str
    ) -> Reconciled[GoalStatus]:
        generation = body.get("metadata", {}).get("generation")
        if (
            status.phase is Phase.FAILED
            and status.reason == "InvalidSpec"
            and status.observed_generation == generation
        ):
            return Reconciled()  # already said; events only on transitions
        message = f"invalid spec: {problem}"
        new = self._status(status, Phase.FAILED, "InvalidSpec", message, generation)
        new = evolve(new, completion_time=instant(self.clock()))
        return Reconciled(new, [Event("Warning", "InvalidSpec", message)])

    # ---------------------------------------------------------------- 2. re-run request

    def _rerun_requested(
        self, body: Mapping[str, Any], status: GoalStatus
    ) -> tuple[GoalStatus, list[Event]]:
        token = (body.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_REQUESTED_AT)
        if not token or token == status.last_handled_reconcile_at:
            return status, []
        status = evolve(status, last_handled_reconcile_at=token)
        if status.phase not in FINAL_PHASES:
            return status, []  # running or waiting already: the request is satisfied
        status = evolve(
            status,
            unset=_RUN_FIELDS,
            phase=Phase.PENDING,
            attempts=0,
            run=(status.run or 1) + 1,
            conditions=[c for c in status.conditions if c.type != MERGED],
        )
        return status, [Event("Normal", "RerunRequested", f"re-run requested ({token})")]

    # ------------------------------------------------------------------- 3. finished

    def _finished(
        self, goal: Goal, status: GoalStatus, events: list[Event]
    ) -> Reconciled[GoalStatus]:
        self.capacity.put(entry_for(goal, status))
        generation = goal.metadata.generation
        if status.observed_generation == generation:
            return Reconciled(None, events)
        message = (
            f"the spec changed after the goal finished ({status.phase}); it does not re-run "
            f"by itself: set the annotation {ANNOTATION_REQUESTED_AT} to a new value to run it "
            "again"
        )
        return Reconciled(
            self._observed(status, generation),
            [*events, Event("Normal", "SpecChangedAfterFinish", message)],
        )

    # -------------------------------------------------------------------- 4. running

    async def _observe(self, goal: Goal, status: GoalStatus) -> Reconciled[GoalStatus]:
        namespace = goal.metadata.namespace or "default"
        job_name = status.job_name or ""
        self._created.discard(job_name)  # recorded: a 409 on it no longer means a lost answer
        found_job = await self.cluster.get_job(namespace, job_name)
        pod = None
        if found_job is None:
            result = failure("JobMissing", f"the worker Job {job_name} disappeared", retryable=True)
        elif job_finished(found_job) is None:
            self.capacity.put(entry_for(goal, status))
            return await self._running(goal, status, found_job)
        else:
            pod = await self.cluster.find_pod(namespace, _pod_selector(goal, status))
            found = attempt_result(
                found_job, pod, permanent_exit_codes=goal.spec.retry.permanent_exit_codes
            )
            result = found or failure(
                "JobFailed", "the worker Job ended without a result", retryable=True
            )
        self.tokens.forget(namespace, job_name)  # its token, if it had one, is no more needed
        if result.outcome is Outcome.STAGED:
            done = await self._staged(goal, status, result, pod)
        else:
            done = self._attempt_done(goal, status, result)
        done.attempt = AttemptEnd(result, found_job, pod)
        return done

    async def _running(
        self, goal: Goal, status: GoalStatus, found_job: Mapping[str, Any]
    ) -> Reconciled[GoalStatus]:
        """A running attempt: its step and what holds its Pod up, written when they change."""
        new = status
        if status.observed_generation != goal.metadata.generation:
            # A spec edited while running applies to later attempts; say we have seen it.
            new = self._observed(status, goal.metadata.generation)
        events: list[Event] = []
        if (found_job.get("status") or {}).get("active"):  # the Job has a Pod: read it
            namespace = goal.metadata.namespace or "default"
            progress = await self._pod_progress(namespace, _pod_selector(goal, status))
            if progress is not None:
                new, events = self._progress(new, progress)
                since = new.step_reason_time or self.clock()
                stuck = stuck_result(progress, since, self.clock())
                if stuck is not None:
                    await self._stop(namespace, status.job_name or "")
                    result = self._attempt_done(goal, new, stuck)
                    result.events[:0] = events
                    result.attempt = AttemptEnd(stuck, found_job)
                    return result
        recheck = await self.tokens.refresh_if_due(self.cluster, goal, found_job, self.clock())
        return Reconciled(new if new != status else None, events, requeue_after=recheck)

    async def _pod_progress(self, namespace: str, selector: str) -> PodProgress | None:
        """Where the attempt's Pod is; for one that has waited long for its first container,
        with what its FailedMount Events say (a Secret volume cannot be mounted)."""
        pod = await self.cluster.find_pod(namespace, selector)
        progress = pod_progress(pod)
        if pod is None or progress is None or not mount_check_due(pod, progress, self.clock()):
            return progress
        name = str((pod.get("metadata") or {}).get("name"))
        return mount_failure(await self.cluster.pod_events(namespace, name, FAILED_MOUNT), progress)

    def _progress(
        self, status: GoalStatus, progress: PodProgress
    ) -> tuple[GoalStatus, list[Event]]:
        """`status` with the Pod's step and waiting reason; a Warning when a wait begins."""
        if progress.reason is None:
            if status.step == progress.step and status.step_reason is None:
                return status, []
            unset = [name for name in _STEP_FIELDS if name != "step"]
            if progress.step is None:
                return evolve(status, unset=_STEP_FIELDS), []
            return evolve(status, unset=unset, step=progress.step), []
        same = status.step == progress.step and same_wait(status.step_reason, progress.reason)
        fields: dict[str, Any] = {
            "step": progress.step,
            "step_reason": progress.reason,
            "step_message": progress.message,
            "step_reason_time": status.step_reason_time if same else None,
        }
        fields["step_reason_time"] = fields["step_reason_time"] or instant(self.clock())
        if all(getattr(status, name) == value for name, value in fields.items()):
            return status, []
        new = evolve(status, **fields)
        if same:
            return new, []
        where = f"the {progress.step} step" if progress.step else "the Pod"
        text = f"{where} waits: {progress.reason}" + (
            f": {progress.message}" if progress.message else ""
        )
        return new, [Event("Warning", "StepWaiting", text)]

    async def _stop(self, namespace: str, job_name: str) -> None:
        """Delete an attempt's Job (and its Pod), so an attempt failed early stops."""
        if isinstance(self.cluster, JobStopper) and job_name:
            await self.cluster.delete_job(namespace, job_name)

    def _attempt_done(
        self, goal: Goal, status: GoalStatus, result: WorkerResult
    ) -> Reconciled[GoalStatus]:
        now = self.clock()
        status = evolve(status, unset=_STEP_FIELDS)
        attempts = status.attempts or 1
        generation = goal.metadata.generation
        fields = _result_fields(result)
        # Every ended attempt is recorded, whatever its task reported (nothing, often).
        fields["usage"] = record_attempt(
            status.usage, result, attempt_id=status.attempt_id, now=now
        )
        if result.outcome is not Outcome.FAILED:
            reason = "Published" if result.outcome is Outcome.PUBLISHED else "AlreadyCompleted"
            message = _success_message(result)
            new = self._status(status, Phase.SUCCEEDED, reason, message, generation, **fields)
            new = evolve(new, completion_time=instant(now))
            if new.pull_request is not None:  # followed from now on: Merged=False while open
                new = evolve(new, conditions=opened_condition(new, generation, now))
            self.capacity.put(entry_for(goal, new))
            return Reconciled(new, [Event("Normal", reason, message)])
        reason = result.reason or "Failed"
        message = f"attempt {attempts} failed: {result.message or reason}"
        fields["last_failure"] = AttemptFailure(
            attempt=attempts,
            reason=reason,
            message=result.message or "",
            step=result.step,
            time=instant(now),
        )
        disruptions = status.disruptions or 0
        if reason == DISRUPTED and disruptions < MAX_UNCOUNTED_DISRUPTIONS:
            disruptions += 1  # not the attempt's fault: it does not count toward maxAttempts
            fields["disruptions"] = disruptions
        counted = attempts - disruptions
        if should_retry(goal.spec.retry, counted, bool(result.retryable)):
            delay = backoff_seconds(goal.spec.retry, max(counted, 1), self.rng)
            delay = max(delay, float(result.retry_after_seconds or 0))
            next_time = now + timedelta(seconds=delay)
            limit = goal.spec.retry.max_attempts + disruptions
            text = f"{message}; attempt {attempts + 1} of {limit} in {delay:.0f}s"
            new = self._status(status, Phase.QUEUED, "Backoff", text, generation, **fields)
            new = evolve(new, next_attempt_time=instant(next_time))
            self.capacity.put(entry_for(goal, new))
            event = Event("Warning", "AttemptFailed", text, cause=reason)
            return Reconciled(new, [event], requeue_after=delay)
        why = "retries exhausted" if result.retryable else "not retryable"
        text = f"{message} ({why})"
        new = self._status(status, Phase.FAILED, reason, text, generation, **fields)
        new = evolve(new, completion_time=instant(now))
        self.capacity.put(entry_for(goal, new))
        return Reconciled(new, [Event("Warning", "Failed", text, cause=reason)])

    # -------------------------------------------------------------------- 5. waiting

    async def _start(self, goal: Goal, status: GoalStatus) -> Reconciled[GoalStatus]:
        decided = self._decide(goal, status)
        if decided is not None:
            return decided
        # Admitted: the slot is the goal's. `_run_attempt` records it as running before its
        # first await (the create), so no other decision sees it free; the create itself runs
        # outside any lock, alongside other goals' creates.
        return await self._run_attempt(goal, status, status.attempts + 1)

    def _decide(self, goal: Goal, status: GoalStatus) -> Reconciled[GoalStatus] | None:
        """Whether a waiting goal starts now (None) or waits (how, said in its status).

        Synchronous on purpose: decisions that compare goals read and change the capacity table
        with no `await` in between, so on the one event loop no two of them interleave.
        """
        now = self.clock()
        entry = entry_for(goal, status)
        known = self.capacity.get(entry.key)
        if known is not None and known.phase is Phase.RUNNING:
            # Its Job was created (or its create sent) but the status never said so: adopt it
            # (or create it) before any other decision, in the slot it holds already.
            return None
        generation = goal.metadata.generation
        if goal.spec.suspend:
            self.capacity.put(entry)
            return self._wait(status, "Suspended", "suspended: spec.suspend is true", generation)
        for other in self.capacity.same_task(entry):
            if other.phase is Phase.SUCCEEDED and not other.declined:
                message = f"goal {other.key} already completed this task"
                new = self._status(status, Phase.SKIPPED, "AlreadySucceeded", message, generation)
                new = evolve(new, completion_time=instant(now))
                self.capacity.put(entry_for(goal, new))
                return Reconciled(new, [Event("Normal", "Skipped", message)])
            if other.phase in (Phase.RUNNING, Phase.AWAITING_APPROVAL):
                self.capacity.put(replace(entry, blocked=True))
                message = f"waiting for goal {other.key}, which runs the same task"
                return self._wait(status, "WaitingForTask", message, generation)
        ready_at = status.next_attempt_time
        if ready_at is not None and ready_at > now:
            self.capacity.put(entry)
            reconciled = self._wait(status, "Backoff", status.message or "backing off", generation)
            reconciled.requeue_after = (ready_at - now).total_seconds()
            return reconciled
        self.capacity.put(entry)
        self.admit()
        if self.capacity.reserved(entry.key):
            return None
        position = self.capacity.position(entry.key)
        self.capacity.note_position(entry.key, position)
        message = f"waiting for capacity (position {position} in the queue)"
        return self._wait(
            status, "WaitingForCapacity", message, generation, queue_position=position
        )

    def may_start(self, body: Mapping[str, Any]) -> bool:
        """Whether a reconcile of `body` now might create a Job (False: it can only wait, or
        observe a running attempt, or find the goal finished). True when in doubt.

        A goal waits when no slot is free for it, unless it holds one already (reserved for it,
        or its Job's create sent). Synchronous, like the decision itself: no other decision can
        come between this answer and a reconcile started right after it.
        """
        status = body.get("status") or {}
        phase = status.get("phase") or Phase.PENDING.value
        if phase == Phase.RUNNING.value and status.get("jobName"):
            return False  # observes its attempt; a retry's Job is created by a later reconcile
        if phase not in (Phase.PENDING.value, Phase.QUEUED.value):
            return True  # finished: a re-run request would start it
        metadata = body.get("metadata") or {}
        key = f"{metadata.get('namespace')}/{metadata.get('name')}"
        known = self.capacity.get(key)
        if self.capacity.reserved(key) or (known is not None and known.phase is Phase.RUNNING):
            return True
        url = str(((body.get("spec") or {}).get("repository") or {}).get("url") or "")
        return self.capacity.has_room(
            repository_of(url),
            max_per_repository=self.settings.max_running_per_repository,
            max_total=self.settings.max_running,
        )

    def admit(self) -> list[str]:
        """Reserve the free slots for the goals at the head of the queue (the capacity table's
        `admit`, with this operator's limits); their keys."""
        return self.capacity.admit(
            self.clock(),
            max_per_repository=self.settings.max_running_per_repository,
            max_total=self.settings.max_running,
        )

    def forget(self, job_names: Iterable[str]) -> None:
        """A deleted goal's Jobs: no more a create of this process whose answer may be lost."""
        self._created.difference_update(job_names)

    def _wait(
        self,
        status: GoalStatus,
        reason: str,
        message: str,
        generation: int | None,
        **fields: Any,
    ) -> Reconciled[GoalStatus]:
        """Queued for `reason`: an event when the reason is new, a status write when anything is.

        Still queued for the same reason, the message (and the conditions that carry it) follow
        what changed, the queue position say, without an event: events only on transitions.
        """
        requeue = self.settings.requeue_seconds
        if status.phase is Phase.QUEUED and status.reason == reason:
            wanted = {"observed_generation": generation, "message": message, **fields}
            if status.conditions:  # none (not written by this operator): none added here
                wanted["conditions"] = conditions_for(
                    Phase.QUEUED,
                    reason,
                    message,
                    generation=generation,
                    previous=status.conditions,
                    now=self.clock(),
                )
            if all(getattr(status, name) == value for name, value in wanted.items()):
                return Reconciled(requeue_after=requeue)
            return Reconciled(evolve(status, **wanted), requeue_after=requeue)
        new = self._status(status, Phase.QUEUED, reason, message, generation, **fields)
        return Reconciled(new, [Event("Normal", reason, message)], requeue_after=requeue)

    async def _run_attempt(
        self, goal: Goal, status: GoalStatus, attempt: int
    ) -> Reconciled[GoalStatus]:
        run = status.run or 1
        publish_only = publishing(status)  # approved: the staged change alone is published
        naming = publish_job_name if publish_only else job.job_name
        name = naming(goal.metadata.name, goal.metadata.uid or "", attempt, run)
        ours = name in self._created
        # The slot is taken before anything is awaited (the create is sent): should its answer
        # be lost, the Job may exist, and the next reconcile adopts it before another goal is
        # admitted.
        self.capacity.put(replace(entry_for(goal, status), phase=Phase.RUNNING))
        self._created.add(name)
        token = await self._attempt_token(goal, name)
        if isinstance(token, ClassifiedError):
            return self._fail_start(goal, status, token.reason, str(token))
        if publish_only:
            manifest = build_publish_job(goal, status, attempt, self.settings)
        else:
            previous = await self._previous_failure(goal, status, attempt)
            manifest = job.build_job(goal, attempt, self.settings, run, previous_failure=previous)
        if token is not None:  # clone and publish (or the publish-only container) get it
            job.mount_token_secret(manifest, token_secret_name(name))
        adopted = False
        try:
            created = await self.cluster.create_job(manifest)
        except AlreadyExistsError:
            existing = await self.cluster.get_job(manifest["metadata"]["namespace"], name)
            if existing is None:  # deleted between the two calls: no conflict, try again
                raise ClassifiedError("JobGone", f"Job {name} vanished", retryable=True) from None
            labels = existing.get("metadata", {}).get("labels") or {}
            if labels.get(LABEL_GOAL_UID) != goal.metadata.uid:
                self._created.discard(name)
                return self._job_conflict(goal, status, name)
            # Ours: made by this process (its answer or status write lost: the start was
            # never said) or before a restart (adopted rather than made a second time).
            adopted, created = not ours, existing
        except ClassifiedError as error:
            if error.retryable:
                raise
            self._created.discard(name)
            return self._job_refused(goal, status, error)
        if token is not None:
            refused = await self._put_token(goal, status, created or manifest, token)
            if refused is not None:
                return refused
        message = f"attempt {attempt} {'adopted' if adopted else 'started'}: Job {name}"
        new = self._status(status, Phase.RUNNING, "Running", message, goal.metadata.generation)
        new = evolve(
            new,
            unset=("queue_position", "next_attempt_time", *_STEP_FIELDS),
            attempts=attempt,
            job_name=name,
            attempt_id=status.attempt_id if publish_only else job.attempt_id(goal, attempt, run),
            run=run,
            task_id=goal.work_name,
            start_time=status.start_time or instant(self.clock()),
        )
        self.capacity.put(entry_for(goal, new))
        return Reconciled(new, [Event("Normal", "Started" if not adopted else "Adopted", message)])

    async def _attempt_token(
        self, goal: Goal, name: str
    ) -> InstallationToken | ClassifiedError | None:
        """A GitHub App's installation token minted for the attempt (None: the Secret holds a
        token, mounted as it is); the error when no retry can mint one."""
        try:
            return await self.tokens.prepare(goal)
        except ClassifiedError as error:
            if error.retryable:
                raise
            self._created.discard(name)
            return error

    async def _put_token(
        self,
        goal: Goal,
        status: GoalStatus,
        created: Mapping[str, Any],
        token: InstallationToken,
    ) -> Reconciled[GoalStatus] | None:
        """The attempt's token Secret, owned by its Job (`attempt_token.py`). Refused for good:
        the Job is stopped (its Pod would wait for the Secret) and the goal fails."""
        try:
            await self.tokens.put(self.cluster, created, token)
        except ClassifiedError as error:
            if error.retryable:
                raise  # the next reconcile adopts the Job and puts its Secret then
            name = str((created.get("metadata") or {}).get("name"))
            if isinstance(self.cluster, JobStopper):
                await self.cluster.delete_job(goal.metadata.namespace or "default", name)
            self._created.discard(name)
            return self._fail_start(goal, status, error.reason, str(error))
        return None

    async def _previous_failure(self, goal: Goal, status: GoalStatus, attempt: int) -> str | None:
        """BACKLOG_PREVIOUS_FAILURE for `attempt`: the last failure of this run, with the end of
        that attempt's task log when its Pod is still there; best effort (a log that cannot be
        read is left out, never the retry held up)."""
        failure = status.last_failure
        if failure is None or attempt <= 1:
            return None
        redactor = Redactor()
        log_tail = None
        if isinstance(self.cluster, LogReader):
            try:
                log_tail = await self._failed_task_log(goal, status, failure.attempt, redactor)
            except Exception as error:  # the retry goes on without the log
                message, _ = describe_failure(error)
                log.info("no task log for %s's retry: %s", goal.label(), message)
        return previous_failure_value(failure, log_tail, redactor)

    async def _failed_task_log(
        self, goal: Goal, status: GoalStatus, attempt: int, redactor: Redactor
    ) -> str | None:
        """The end of the task log of `attempt` (its Pod, if it still exists); `redactor`
        learns the goal's token first, should the operator be able to read it."""
        assert isinstance(self.cluster, LogReader)
        namespace = goal.metadata.namespace or "default"
        selector = _pod_selector(goal, evolve(status, attempts=attempt))
        pod = await self.cluster.find_pod(namespace, selector)
        if pod is None:
            return None
        secret = goal.spec.repository.credentials_secret
        if secret is not None:
            redactor.add(await self.cluster.read_secret_key(namespace, secret.name, secret.key))
        name = str((pod.get("metadata") or {}).get("name"))
        # Twice what is kept: masking a token needs all of it, the cut comes after.
        return await self.cluster.pod_log_tail(
            namespace, name, TASK_CONTAINER, max_bytes=2 * LOG_BYTES
        )

    def _job_refused(
        self, goal: Goal, status: GoalStatus, error: ClassifiedError
    ) -> Reconciled[GoalStatus]:
        """The API server (or the client) refused the attempt's Job: no retry can help."""
        return self._fail_start(goal, status, error.reason, str(error))

    def _job_conflict(self, goal: Goal, status: GoalStatus, name: str) -> Reconciled[GoalStatus]:
        message = f"a Job named {name} exists and does not belong to this goal"
        return self._fail_start(goal, status, "JobConflict", message)

    def _fail_start(
        self, goal: Goal, status: GoalStatus, reason: str, message: str
    ) -> Reconciled[GoalStatus]:
        """The attempt could not start and no retry can help: the goal fails for `reason`."""
        new = self._status(status, Phase.FAILED, reason, message, goal.metadata.generation)
        new = evolve(new, completion_time=instant(self.clock()))
        self.capacity.put(entry_for(goal, new))
        return Reconciled(new, [Event("Warning", reason, message)])

    # ---------------------------------------------------------------------- helpers

    def _status(
        self,
        status: GoalStatus,
        phase: Phase,
        reason: str,
        message: str,
        generation: int | None,
        **fields: Any,
    ) -> GoalStatus:
        """`status` in `phase` for `reason`, with its conditions, and `fields` changed."""
        conditions = conditions_for(
            phase,
            reason,
            message,
            generation=generation,
            previous=status.conditions,
            now=self.clock(),
        )
        return evolve(
            status,
            **fields,
            phase=phase,
            reason=reason,
            message=message,
            observed_generation=generation,
            conditions=conditions,
        )

    @staticmethod
    def _observed(status: GoalStatus, generation: int | None) -> GoalStatus:
        """`status` computed for `generation`, nothing else changed."""
        return evolve(
            status,
            observed_generation=generation,
            conditions=_observe_generation(status.conditions, generation),
        )


def _pod_selector(goal: Goal, status: GoalStatus) -> str:
    attempt = status.attempts or 1
    label = publish_attempt_label(attempt) if publishing(status) else str(attempt)
    return (
        f"{LABEL_GOAL_UID}={goal.metadata.uid},"
        f"{LABEL_RUN}={status.run or 1},"
        f"{LABEL_ATTEMPT}={label}"
    )


def _result_fields(result: WorkerResult) -> dict[str, Any]:
    pull = result.pull_request
    return {
        "outcome": result.outcome.value,
        "branch": result.branch,
        "commit": result.commit,
        # Opened or reused just now: open (the operator follows it from here).
        "pull_request": FollowedPullRequest(number=pull.number, url=pull.url, state="open")
        if pull is not None
        else None,
        "changed_files": list(result.changed_files),
    }


def _success_message(result: WorkerResult) -> str:
    if result.outcome is Outcome.ALREADY_COMPLETED:
        return result.message or "the task is already completed in the backlog"
    if result.pull_request is not None:
        pull_request = result.pull_request
        return f"pull request #{pull_request.number} on {result.branch}: {pull_request.url}"
    return f"pushed {result.branch} ({(result.commit or '')[:12]})"
