"""Healing a goal's pull request that no longer merges. No kopf here.

Several open pull requests of one backlog all edit the backlog file; on compact layouts merging
one makes the next conflict. While a goal's pull request is followed (`pull_request.py`), the
forge says whether it still merges; on `dirty` (a conflict) the operator starts a **heal Job**
for the goal: one container running `backlogctl worker heal --branch BRANCH` (see
`worker/heal.py`), built from the attempt's Job so it has the same hardening, the token mounted
into that container only, owned by the Goal and labelled as its Jobs are (so the Job watch
brings its end to the goal's reconcile), with `backlog.dev/heal` instead of an attempt number.

Bounds, so a heal that fails is never repeated in a loop: at most one heal per pair of commits
(the pull request's head and the base branch's head, `status.pullRequest.healedHeads`), one at
a time (`healJob`), and at most `BACKLOG_OPERATOR_MAX_HEALS` per goal (`heals`); past that the
`Merged` condition says `HealLimitReached`.

Its result (the container's termination message, read as an attempt's is) acts on the goal's
status without changing its phase: `Healed` records the new head commit (an event, the pull
request followed on), `NothingToHeal` nothing; `Conflicted` (files listed in
`status.pullRequest.conflictedFiles` and the condition's message), `TaskNotInBase`,
`CompletedInBase` and any failure (`HealFailed`) set the `Merged` condition's reason, with a
Warning event (Normal for CompletedInBase), until the pull request merges again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, Protocol

from backlog_operator import naming
from backlog_operator.api.common import ConditionStatus
from backlog_operator.api.goal import Goal, GoalStatus, Phase
from backlog_operator.api.labels import LABEL_ATTEMPT, LABEL_GOAL_UID, LABEL_HEAL, LABEL_RUN
from backlog_operator.api.result import Outcome, WorkerResult, failure
from backlog_operator.api.worker_contract import ATTEMPT_ID_VARIABLE
from backlog_operator.controller.conditions import set_condition
from backlog_operator.controller.goals import job
from backlog_operator.controller.goals.outcome import heal_result, job_finished
from backlog_operator.controller.goals.pull_request import (
    COMPLETED_IN_BASE_REASON,
    CONFLICTED_REASON,
    HEAL_FAILED_REASON,
    HEAL_LIMIT_REASON,
    MERGED,
    OPEN_REASON,
    TASK_NOT_IN_BASE_REASON,
    SeenPullRequest,
    heads_of,
)
from backlog_operator.controller.results import Event, Reconciled
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.status import evolve
from backlog_operator.errors import AlreadyExistsError, ClassifiedError

log = logging.getLogger("backlog_operator.controller")

HEAL_CONTAINER = "heal"
HEALED = "Healed"
HEALING = "Healing"  # the event of a heal Job started
NOTHING_TO_HEAL = "NothingToHeal"
# What a heal Job's end can say (`heal_outcome`), as the metrics count them.
HEAL_OUTCOMES = (
    HEALED,
    NOTHING_TO_HEAL,
    COMPLETED_IN_BASE_REASON,
    CONFLICTED_REASON,
    TASK_NOT_IN_BASE_REASON,
    HEAL_FAILED_REASON,
)
# A heal fetches two branches and merges trees: minutes at most.
HEAL_DEADLINE_SECONDS = 900
# Conflicting files kept in the status (the worker sends at most 50) and named in a message.
MAX_CONFLICTED_FILES = 50
FILES_IN_MESSAGE = 10
MESSAGE_CHARACTERS = 1024


class HealCluster(Protocol):
    """What healing needs of the API (the goal reconciler's cluster has it)."""

    async def create_job(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...
    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def find_pod(self, namespace: str, selector: str) -> dict[str, Any] | None: ...


# ----------------------------------------------------------------------------- pure decisions


def heal_due(
    status: GoalStatus, seen: SeenPullRequest, max_heals: int
) -> Literal["heal", "limit"] | None:
    """Whether the answer `seen` starts a heal (`heal`), finds the goal out of heals (`limit`),
    or neither: the goal succeeded with this pull request, open and `dirty`, no heal runs, and
    none was started for these head and base commits yet."""
    pull = status.pull_request
    if status.phase is not Phase.SUCCEEDED or pull is None or pull.number != seen.number:
        return None
    if seen.state != "open" or seen.mergeable_state != "dirty" or not status.branch:
        return None
    heads = heads_of(seen)
    if pull.heal_job is not None or heads is None or heads == pull.healed_heads:
        return None
    return "limit" if (pull.heals or 0) >= max_heals else "heal"


def heal_job_name(goal_name: str, goal_uid: str, run: int, number: int) -> str:
    """The `number`th heal Job of a goal's `run`: deterministic, so a heal whose start was not
    recorded (a lost answer) is adopted rather than made twice."""
    suffix = f"heal{number}" if run == 1 else f"r{run}-heal{number}"
    return naming.dns_label(f"{goal_name}-{goal_uid[:5]}-{suffix}", max_length=63)


def build_heal_job(
    goal: Goal, status: GoalStatus, settings: OperatorSettings, number: int
) -> dict[str, Any]:
    """The heal Job: the attempt's Job (its hardening, volumes, owner) reduced to one container,
    the publish step's, running `worker heal` on the goal's branch."""
    run = status.run or 1
    manifest = job.build_job(goal, max(status.attempts, 1), settings, run)
    labels = {k: v for k, v in job.job_labels(goal, 1, run).items() if k != LABEL_ATTEMPT}
    labels[LABEL_HEAL] = str(number)
    manifest["metadata"]["name"] = heal_job_name(
        goal.metadata.name, goal.metadata.uid or "", run, number
    )
    manifest["metadata"]["labels"] = labels
    spec = manifest["spec"]
    spec["activeDeadlineSeconds"] = HEAL_DEADLINE_SECONDS
    spec["template"]["metadata"]["labels"] = dict(labels)
    pod = spec["template"]["spec"]
    pod.pop("initContainers", None)  # no clone, and no task: nothing untrusted runs here
    [container] = pod.pop("containers")
    container["name"] = HEAL_CONTAINER
    container["args"] = ["worker", "heal", "--branch", status.branch or ""]
    for variable in container["env"]:
        if variable["name"] == ATTEMPT_ID_VARIABLE and status.attempt_id:
            variable["value"] = status.attempt_id  # the attempt whose pull request it heals
    pod["containers"] = [container]
    return manifest


def heal_pod_selector(goal: Goal, status: GoalStatus) -> str:
    """The label selector of the running heal's Pod."""
    number = (status.pull_request.heals if status.pull_request else None) or 1
    return (
        f"{LABEL_GOAL_UID}={goal.metadata.uid},{LABEL_RUN}={status.run or 1},{LABEL_HEAL}={number}"
    )


def heal_started(
    status: GoalStatus, name: str, heads: str | None, now: datetime
) -> tuple[GoalStatus, list[Event]]:
    """`status` with the heal Job `name` running for `heads`, and its event."""
    pull = status.pull_request
    assert pull is not None  # heal_due said so
    number = (pull.heals or 0) + 1
    new = evolve(
        status,
        pull_request=pull.model_copy(
            update={"heal_job": name, "heals": number, "healed_heads": heads}
        ),
    )
    message = (
        f"pull request #{pull.number} conflicts with its base branch: heal Job {name} merges "
        f"the base into {status.branch} (heal {number})"
    )
    return new, [Event("Normal", HEALING, message)]


def heal_limited(
    status: GoalStatus, heads: str | None, max_heals: int, now: datetime
) -> tuple[GoalStatus, list[Event]]:
    """`status` saying the pull request conflicts again and no heal is left (said once per
    pair of commits)."""
    pull = status.pull_request
    assert pull is not None
    message = (
        f"pull request #{pull.number} conflicts with its base branch again, and was healed "
        f"{pull.heals or 0} time(s) already (at most {max_heals}): resolve it by hand"
    )
    new = _merged_condition(status, "False", HEAL_LIMIT_REASON, message, now)
    new = evolve(new, pull_request=pull.model_copy(update={"healed_heads": heads}))
    return new, [Event("Warning", HEAL_LIMIT_REASON, message)]


def heal_outcome(result: WorkerResult) -> str:
    """What a heal Job's `result` says, one of `HEAL_OUTCOMES` (any failure the step or its
    Job had, other than those it names, is `HealFailed`)."""
    if result.outcome is Outcome.PUBLISHED:
        return HEALED if result.reason == HEALED else NOTHING_TO_HEAL
    named = (COMPLETED_IN_BASE_REASON, CONFLICTED_REASON, TASK_NOT_IN_BASE_REASON)
    return result.reason if result.reason in named else HEAL_FAILED_REASON


def heal_ended(
    status: GoalStatus, result: WorkerResult, now: datetime
) -> tuple[GoalStatus, list[Event]]:
    """`status` after the heal's `result` (see the module docstring), and its events."""
    pull = status.pull_request
    assert pull is not None
    pull = pull.model_copy(update={"heal_job": None})
    status = evolve(status, pull_request=pull)
    where = f"pull request #{pull.number}"
    said = _cut(result.message or "")
    outcome = heal_outcome(result)
    if outcome == HEALED:
        healed = evolve(
            status,
            commit=result.commit or status.commit,
            changed_files=list(result.changed_files) or status.changed_files,
            pull_request=pull.model_copy(update={"conflicted_files": None}),
        )
        new = _merged_condition(healed, "False", OPEN_REASON, f"{where} is open", now)
        return new, [Event("Normal", HEALED, f"{where}: {said}")]
    if outcome == NOTHING_TO_HEAL:  # the forge will say it merges
        log.info("%s: %s", where, said)
        return status, []
    if outcome == COMPLETED_IN_BASE_REASON:
        message = f"{where} is not needed: {said}"
        new = _merged_condition(status, "False", COMPLETED_IN_BASE_REASON, message, now)
        return new, [Event("Normal", COMPLETED_IN_BASE_REASON, message)]
    if outcome == CONFLICTED_REASON:
        files = list(result.conflicted_files or [])[:MAX_CONFLICTED_FILES]
        message = f"{where} conflicts with its base branch in {_listed(files)}: {said}"
        conflicted = evolve(
            status, pull_request=pull.model_copy(update={"conflicted_files": files})
        )
        new = _merged_condition(conflicted, "False", CONFLICTED_REASON, message, now)
        return new, [Event("Warning", CONFLICTED_REASON, message)]
    if outcome == TASK_NOT_IN_BASE_REASON:
        message = f"{where} cannot be healed: {said}"
        new = _merged_condition(status, "False", TASK_NOT_IN_BASE_REASON, message, now)
        return new, [Event("Warning", TASK_NOT_IN_BASE_REASON, message)]
    message = f"{where} could not be healed ({result.reason or 'Failed'}): {said}"
    new = _merged_condition(status, "False", HEAL_FAILED_REASON, message, now)
    return new, [Event("Warning", HEAL_FAILED_REASON, message)]


def _merged_condition(
    status: GoalStatus, condition: ConditionStatus, reason: str, message: str, now: datetime
) -> GoalStatus:
    conditions = set_condition(
        status.conditions,
        MERGED,
        condition,
        reason,
        message,
        generation=status.observed_generation,
        now=now,
    )
    return evolve(status, conditions=conditions)


def _listed(files: list[str]) -> str:
    if not files:
        return "files it does not name"
    shown = ", ".join(files[:FILES_IN_MESSAGE])
    more = len(files) - FILES_IN_MESSAGE
    return shown + (f" and {more} more" if more > 0 else "")


def _cut(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARACTERS else text[: MESSAGE_CHARACTERS - 1] + "…"


# --------------------------------------------------------------------------------- the Healer


class Healer:
    """Starts heal Jobs when a look finds a goal's pull request conflicting, and reads their
    end when the goal is reconciled."""

    def __init__(
        self,
        cluster: HealCluster,
        settings: OperatorSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.clock = clock

    async def after_look(
        self, body: Mapping[str, Any], status: GoalStatus, seen: SeenPullRequest
    ) -> Reconciled[GoalStatus]:
        """What a look's answer `seen` starts for the goal in `body` (whose status, with that
        answer written, is `status`): a heal Job, the heal limit said, or nothing."""
        due = heal_due(status, seen, self.settings.max_heals)
        if due is None:
            return Reconciled()
        heads, now = heads_of(seen), self.clock()
        if due == "limit":
            return Reconciled(*heal_limited(status, heads, self.settings.max_heals, now))
        try:
            goal = Goal.model_validate(dict(body))
        except ValueError:
            return Reconciled()
        number = ((status.pull_request.heals if status.pull_request else None) or 0) + 1
        manifest = build_heal_job(goal, status, self.settings, number)
        name = manifest["metadata"]["name"]
        try:
            await self.cluster.create_job(manifest)
        except AlreadyExistsError:
            existing = await self.cluster.get_job(manifest["metadata"]["namespace"], name)
            labels = ((existing or {}).get("metadata") or {}).get("labels") or {}
            if existing is not None and labels.get(LABEL_GOAL_UID) != goal.metadata.uid:
                return self._refused(status, heads, f"a Job named {name} exists already", now)
            # Ours, made before its start was recorded: adopted.
        except ClassifiedError as error:
            if error.retryable:
                raise
            return self._refused(status, heads, str(error), now)
        return Reconciled(*heal_started(status, name, heads, now))

    def _refused(
        self, status: GoalStatus, heads: str | None, why: str, now: datetime
    ) -> Reconciled[GoalStatus]:
        """The heal Job could not be made: said on the goal, not tried again for these heads."""
        pull = status.pull_request
        assert pull is not None
        status = evolve(status, pull_request=pull.model_copy(update={"healed_heads": heads}))
        result = failure("JobRefused", why, retryable=False, step="heal")
        return Reconciled(*heal_ended(status, result, now), heal=heal_outcome(result))

    async def finished(
        self, goal: Goal, status: GoalStatus, result: Reconciled[GoalStatus]
    ) -> Reconciled[GoalStatus]:
        """`result` (a finished goal's reconcile) with the end of its heal Job, if one ran and
        has ended."""
        pull = status.pull_request
        if pull is None or pull.heal_job is None:
            return result
        namespace = goal.metadata.namespace or "default"
        found = await self.cluster.get_job(namespace, pull.heal_job)
        if found is None:
            ended: WorkerResult | None = failure(
                "JobMissing", f"the heal Job {pull.heal_job} disappeared", retryable=True
            )
        elif job_finished(found) is None:
            return result
        else:
            pod = await self.cluster.find_pod(namespace, heal_pod_selector(goal, status))
            ended = heal_result(found, pod)
        assert ended is not None  # the Job has finished
        new, events = heal_ended(result.status or status, ended, self.clock())
        result.status = new
        result.events.extend(events)
        result.heal = heal_outcome(ended)
        return result
