"""The Backlog reconciler: sync the backlog file, report it, start Goals for selected tasks.

Ordered steps on each reconcile (no kopf here):
1. validate the spec;
2. read the backlog file at the base branch's tip (no fetch when the tip has not moved);
3. parse and validate it (a bad file: a condition and an event naming file and line; nothing
   is selected from a backlog that does not validate);
4. see what runs: this Backlog's Goals (by label) and, through the forge, its open pull
   requests — when the forge cannot be asked, nothing starts (fail closed);
5. select tasks within the limits and the failure budget, and create one Goal per task, named
   from the task id so two syncs never create two Goals for one task; a task whose pull request
   was closed without merging is declined (`declined.py`), not selected, until revived; none
   while today's budget (`spec.budget`) is spent, and no more than it has room for;
6. delete finished Goals beyond the history limits, oldest first (but those whose pull request
   is open, or that hold a decline; and only once the status holds all of a Goal's usage:
   `controller/usage.py`);
7. report counts, ready, blocked, in-progress, declined and conflicted tasks (an open pull
   request that no longer merges and was not healed: `conflicted.py`), usage per day, the
   budget, and conditions (a `BacklogStatus`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from backlog_operator import naming
from backlog_operator.adapters.backlog_source import BacklogSource
from backlog_operator.adapters.git import GitCredentials
from backlog_operator.api.backlog import (
    Backlog,
    BacklogStatus,
    BlockedTask,
    DeclinedTask,
    TaskCounts,
)
from backlog_operator.api.common import describe_validation_error
from backlog_operator.api.goal import DEFAULT_BRANCH_PREFIX, FINAL_PHASES, SUCCESSFUL_PHASES, Phase
from backlog_operator.api.labels import (
    ANNOTATION_FAILURES_CLEARED_AT,
    ANNOTATION_REQUESTED_AT,
    ANNOTATION_REVIVE_PREFIX,
    ANNOTATION_TASK_DIGEST,
    LABEL_BACKLOG,
    LABEL_BACKLOG_UID,
    LABEL_TASK,
)
from backlog_operator.api.webhook import hook_path
from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.backlog.errors import BacklogError
from backlog_operator.backlog.model import Task
from backlog_operator.backlog.selection import (
    Failure,
    Limits,
    Selection,
    SelectionInput,
    goal_name,
    select_tasks,
)
from backlog_operator.controller.backlogs.conflicted import conflicted_tasks, newly_conflicted
from backlog_operator.controller.backlogs.declined import (
    CLOSED,
    awaiting_approval,
    declined_tasks,
    is_rejected,
    kept_goals,
    pull_request_state,
    revive_times,
    task_of,
)
from backlog_operator.controller.conditions import (
    READY,
    mark_ready,
    mark_reconciling,
    mark_stalled,
    reason_of,
)
from backlog_operator.controller.credentials import ForgeCredentials
from backlog_operator.controller.owned_goals import owned_goal, phase_of, trim_history
from backlog_operator.controller.results import Event, Reconciled
from backlog_operator.controller.status import evolve, instant, parse_time, read_status
from backlog_operator.controller.usage import (
    BUDGET_EXHAUSTED,
    HELD_REQUEUE_SECONDS,
    Accounted,
    account,
    settled,
)
from backlog_operator.controller.webhooks import Route, Routes
from backlog_operator.errors import AlreadyExistsError, ClassifiedError
from backlog_operator.redact import private_token_file

log = logging.getLogger("backlog_operator.controller")

_LISTED = 50  # ids per status list: the status stays small whatever the backlog's size
SHORT_COMMIT = 7  # `status.shortCommit`: git's own abbreviation, for `kubectl get`


class BacklogCluster(Protocol):
    """What the Backlog reconciler needs of the API (implemented by adapters.kube.KubeCluster)."""

    async def list_goals(
        self, namespace: str | None = None, selector: str = ""
    ) -> list[dict[str, Any]]: ...
    async def create_goal(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...
    async def delete_goal(self, namespace: str, name: str) -> None: ...
    async def read_secret_key(self, namespace: str, name: str, key: str) -> str | None: ...


class Forge(Protocol):
    """The forge calls the operator makes (adapters.github.GitHubForge): a sync lists the open
    pull requests; a goal's pull request is followed after it opened."""

    def open_pull_requests(self, head_prefix: str) -> list[tuple[Any, datetime]]: ...
    def pull_request_state(self, number: int, etag: str | None = None) -> Any: ...


ForgeFactory = Callable[[str, str | None, str | None], Forge]
# Told of each answer of the forge to a Backlog's sync: (namespace, Backlog name, HTTP status or
# None when no answer came, the rate limit remaining or None).
ForgeObserver = Callable[[str, str, int | None, int | None], None]


@runtime_checkable
class ObservableForge(Protocol):
    """A forge that tells of each answer it gets (GitHubForge does); others are not observed."""

    on_answer: Callable[[int | None, int | None], None] | None


def github_forge(repository: str, token: str | None, base_url: str | None) -> Forge:
    """The default forge: GitHub (imported on first use: PyGithub is slow to import)."""
    from backlog_operator.adapters.github import GitHubForge

    return GitHubForge(repository, token, base_url=base_url)


@dataclass
class _Parsed:
    commit: str
    tasks: list[Task]


class BacklogReconciler:
    """Reconciles one Backlog at a time."""

    def __init__(
        self,
        cluster: BacklogCluster,
        source: BacklogSource,
        *,
        forge_factory: ForgeFactory = github_forge,
        clock: Callable[[], datetime] | None = None,
        forge_observer: ForgeObserver | None = None,
        credentials: ForgeCredentials | None = None,
        webhooks: Routes | None = None,
    ) -> None:
        self.cluster = cluster
        self.source = source
        self.webhooks = webhooks if webhooks is not None else Routes()
        self.forge_factory = forge_factory
        self.forge_observer = forge_observer
        self.clock = clock or (lambda: datetime.now(UTC))
        # The Secret's token, or its GitHub App's installation tokens (cached).
        self.credentials = credentials or ForgeCredentials(cluster, clock=self.clock)
        # Backlog uid -> what was read (URL, branch, path) and that commit's tasks: one per
        # Backlog, replaced when it reads something else, dropped when it is deleted.
        self._parsed: dict[str, tuple[str, _Parsed]] = {}

    async def reconcile(self, body: Mapping[str, Any]) -> Reconciled[BacklogStatus]:
        """Sync the Backlog in `body` and start what may start."""
        status = read_status(BacklogStatus, body.get("status"))
        generation = body.get("metadata", {}).get("generation")
        try:
            backlog = Backlog.model_validate(dict(body))
        except ValidationError as error:
            self.webhooks.forget(str(body.get("metadata", {}).get("uid")))
            return self._not_ready(
                status, "InvalidSpec", describe_validation_error(error), generation, stalled=True
            )
        path, warning = await self._webhook(backlog, status, generation)
        status = (
            evolve(status, webhook_path=path) if path else evolve(status, unset=["webhook_path"])
        )
        result = await self._sync(backlog, status, generation)
        result.events[:0] = warning
        return result

    async def _sync(
        self, backlog: Backlog, status: BacklogStatus, generation: int | None
    ) -> Reconciled[BacklogStatus]:
        interval = float(backlog.spec.sync_interval_seconds)
        try:
            token, parsed = await self._read_with_token(backlog)
            forge_error, open_prs = await self._open_pull_requests(backlog, token)
        except BacklogError as error:
            return self._not_ready(
                status, "InvalidBacklog", str(error), generation, stalled=True, requeue=interval
            )
        except ClassifiedError as error:
            return self._not_ready(status, error.reason, str(error), generation, requeue=interval)
        goals = await self.cluster.list_goals(
            backlog.metadata.namespace, f"{LABEL_BACKLOG_UID}={backlog.metadata.uid}"
        )
        accounted = account(status.usage, backlog.spec.budget, status.budget, goals, self.clock())
        digests = {task.id: task_digest(task) for task in parsed.tasks}
        declined = declined_tasks(goals, digests, revive_times(backlog.metadata.annotations))
        given = self._selection_input(backlog, goals, open_prs, forge_error, digests, declined)
        try:
            # Tens of milliseconds on a big backlog: off kopf's event loop, like the parse.
            selection = await asyncio.to_thread(
                select_tasks, parsed.tasks, given, source=backlog.spec.path
            )
        except BacklogError as error:
            return self._not_ready(
                status, "InvalidBacklog", str(error), generation, stalled=True, requeue=interval
            )
        started, events = await self._start(backlog, selection.start[: accounted.room], goals)
        trimmed, held = await trim_history(
            self.cluster,
            backlog.metadata.namespace or "default",
            goals,
            successful=backlog.spec.history.successful,
            failed=backlog.spec.history.failed,
            keep=kept_goals(goals, declined),
            deletable=settled(status.usage),  # once the status holds all of a Goal's usage
        )
        new = self._report(backlog, status, parsed, selection, started, generation, declined, goals)
        new = evolve(new, conflicted=conflicted_tasks(goals, list(digests), _LISTED))
        new = self._budget(new, status, accounted, events, generation)  # its events go first
        events += trimmed + _newly_declined(status, new) + newly_conflicted(status, new)
        if forge_error is not None:
            new = self._forge_unavailable(new, status, forge_error, generation, events)
        if status.last_synced_commit != parsed.commit:
            events.append(_synced(backlog, parsed, selection))
        decision = accounted.decision
        requeue = decision.requeue_after(self.clock(), interval) if decision else interval
        if held:  # deleted once this status, which holds their usage, is written
            requeue = min(requeue, HELD_REQUEUE_SECONDS)
        return Reconciled(new, events, requeue_after=requeue)

    # ------------------------------------------------------------------- reading

    async def _token(self, backlog: Backlog, *, fresh: bool = False) -> str | None:
        """The token of the Backlog's Secret, or an installation token of its GitHub App
        (cached until shortly before it expires; `fresh`: a new one, after a 401)."""
        spec = backlog.spec.goal_template.spec.pull_request
        return await self.credentials.token(
            backlog.metadata.namespace or "default",
            backlog.spec.repository.credentials_secret,
            spec.repository or naming.forge_repository(backlog.spec.repository.url),
            spec.api_base_url,
            fresh=fresh,
        )

    async def _read_with_token(self, backlog: Backlog) -> tuple[str | None, _Parsed]:
        """The token, and the backlog read with it; read once more with a new token when the
        remote refuses it (a GitHub App's installation token revoked or expired early)."""
        token = await self._token(backlog)
        try:
            return token, await self._read(backlog, token)
        except ClassifiedError as error:
            if error.reason != "AuthenticationFailed" or token is None:
                raise
        token = await self._token(backlog, fresh=True)
        return token, await self._read(backlog, token)

    async def _read(self, backlog: Backlog, token: str | None) -> _Parsed:
        repository = backlog.spec.repository
        # What is read: a changed URL, branch or path must not serve the old parse.
        uid, read = (
            str(backlog.metadata.uid),
            f"{repository.url}|{repository.base_branch}|{backlog.spec.path}",
        )
        known = self._parsed.get(uid)
        cached = known[1] if known is not None and known[0] == read else None
        with private_token_file(token) as token_file:
            credentials = (
                GitCredentials(token_file=token_file, insecure=repository.insecure)
                if token_file
                else None
            )
            snapshot = await asyncio.to_thread(
                self.source.read,
                repository.url,
                repository.base_branch,
                backlog.spec.path,
                credentials=credentials,
                known_commit=cached.commit if cached else None,
            )
        if not snapshot.changed and cached is not None:
            return cached
        if snapshot.data is None:
            raise BacklogError(backlog.spec.path, None, f"no such file at {snapshot.commit[:12]}")
        document = await asyncio.to_thread(
            BacklogDocument.parse, snapshot.data, source=backlog.spec.path
        )
        parsed = _Parsed(snapshot.commit, document.tasks)
        self._parsed[uid] = (read, parsed)
        return parsed

    def forget(self, uid: str) -> None:
        """A deleted Backlog: drop what was read of it."""
        self._parsed.pop(uid, None)
        self.webhooks.forget(uid)

    async def _webhook(
        self, backlog: Backlog, status: BacklogStatus, generation: int | None
    ) -> tuple[str | None, list[Event]]:
        """Register the Backlog's webhook route from its Secret (read at each sync: a rotated
        secret moves the path); (its path or None, a warning when the Secret cannot say)."""
        uid, hook = str(backlog.metadata.uid), backlog.spec.webhook
        if hook is None:
            self.webhooks.forget(uid)
            return None, []
        namespace, name = backlog.metadata.namespace or "default", backlog.metadata.name
        ref = hook.secret_ref
        secret = await self.cluster.read_secret_key(namespace, ref.name, ref.key)
        if not secret:
            self.webhooks.forget(uid)
            said = status.webhook_path is None and status.observed_generation == generation
            message = (
                f"webhook secret {ref.name!r} has no key {ref.key!r} (or does not exist): "
                "deliveries are refused until it does"
            )
            return None, [] if said else [Event("Warning", "WebhookSecretNotFound", message)]
        path = hook_path(secret, name, namespace)
        repository = backlog.spec.repository
        slug = backlog.spec.goal_template.spec.pull_request.repository
        self.webhooks.register(
            path,
            Route(
                namespace=namespace,
                name=name,
                uid=uid,
                secret=secret.encode(),
                repository=slug or naming.forge_repository(repository.url),
                url=repository.url,
                branch=repository.base_branch,
            ),
        )
        return path, []

    async def _open_pull_requests(
        self, backlog: Backlog, token: str | None
    ) -> tuple[str | None, list[tuple[str, datetime]]]:
        """(why the forge could not be asked, or None; open pull requests as (branch, opened))."""
        spec = backlog.spec.goal_template.spec.pull_request
        if spec.provider == "none":
            return None, []
        slug = spec.repository or naming.forge_repository(backlog.spec.repository.url)
        if slug is None:
            return "cannot tell owner/name of the repository; set pullRequest.repository", []
        prefix = spec.branch_prefix_or_default()

        def listing() -> list[tuple[Any, datetime]]:
            # The forge is made in the thread too: its first use imports PyGithub (slow).
            forge = self.forge_factory(slug, token, spec.api_base_url)
            if self.forge_observer is not None and isinstance(forge, ObservableForge):
                namespace, name = backlog.metadata.namespace or "default", backlog.metadata.name
                forge.on_answer = partial(self.forge_observer, namespace, name)
            return forge.open_pull_requests(prefix or DEFAULT_BRANCH_PREFIX)

        try:
            try:
                pulls = await asyncio.to_thread(listing)
            except ClassifiedError as error:
                if error.reason != "AuthenticationFailed" or token is None:
                    raise
                # An installation token revoked or expired early: once more with a new one.
                token = await self._token(backlog, fresh=True)
                pulls = await asyncio.to_thread(listing)
        except ClassifiedError as error:
            return str(error), []
        return None, [(str(ref.head_branch), opened) for ref, opened in pulls]

    # ---------------------------------------------------------------- selection

    def _selection_input(
        self,
        backlog: Backlog,
        goals: list[dict[str, Any]],
        open_prs: list[tuple[str, datetime]],
        forge_error: str | None,
        digests: Mapping[str, str],
        declined: Mapping[str, DeclinedTask],
    ) -> SelectionInput:
        now = self.clock()
        spec = backlog.spec
        prefix = spec.goal_template.spec.pull_request.branch_prefix_or_default()
        running = {task_of(g) for g in goals if phase_of(g) not in FINAL_PHASES} - {""}
        # A Goal that succeeded pushed its work; main's backlog says `completed` only once that
        # is merged. Until then the task counts as having an open pull request (held, and
        # counted against the limit) even where the forge is not asked (`provider: none`). A
        # pull request closed without merging holds nothing: its task is declined, or revived.
        awaiting_merge = {
            task_of(g)
            for g in goals
            if phase_of(g) in SUCCESSFUL_PHASES and pull_request_state(g) != CLOSED
        }
        # Failures count against the budget only while the task's entry is the one they ran:
        # editing the task in the backlog (a new description, say) gives it a fresh budget.
        failures: dict[str, list[Failure]] = {}
        for goal in goals:
            annotations = goal.get("metadata", {}).get("annotations") or {}
            if annotations.get(ANNOTATION_TASK_DIGEST) != digests.get(task_of(goal)):
                continue
            if phase_of(goal) is Phase.FAILED and not is_rejected(goal):  # a "no" is no failure
                when = parse_time((goal.get("status") or {}).get("completionTime")) or now
                reason = str((goal.get("status") or {}).get("reason") or "Failed")
                failures.setdefault(task_of(goal), []).append(Failure(at=when, reason=reason))
        cleared_at = parse_time(backlog.metadata.annotations.get(ANNOTATION_FAILURES_CLEARED_AT))
        return SelectionInput(
            now=now,
            limits=Limits(
                max_open_pull_requests=spec.limits.max_open_pull_requests,
                max_running_goals=spec.limits.max_running_goals,
                max_new_pull_requests_per_hour=spec.limits.max_new_pull_requests_per_hour,
                failure_budget=spec.failure_budget.max_failures,
                failure_window=timedelta(seconds=spec.failure_budget.window_seconds),
            ),
            active_goals=frozenset(running),
            open_pull_requests=frozenset(
                _tasks_of_branches([b for b, _ in open_prs], prefix) | (awaiting_merge - {""})
            ),
            open_pull_request_count=len(open_prs),
            pull_requests_opened=[opened for _, opened in open_prs],
            failures=failures,
            cleared=dict.fromkeys(failures, cleared_at) if cleared_at else frozenset(),
            suspended=spec.suspend,
            forge_error=forge_error,
            declined=frozenset(declined),
            max_listed=_LISTED,
        )

    async def _start(
        self, backlog: Backlog, tasks: Sequence[Task], goals: list[dict[str, Any]]
    ) -> tuple[list[str], list[Event]]:
        started, events = [], []
        for task in tasks:
            earlier = sum(1 for goal in goals if task_of(goal) == task.id)
            manifest = goal_for_task(backlog, task, number=earlier + 1)
            try:
                await self.cluster.create_goal(manifest)
            except AlreadyExistsError:
                # An earlier sync made it (one Goal per task and try), unless the name is taken
                # by something else: then say so rather than start anything twice.
                events += await self._name_taken(backlog, manifest, task)
                continue
            started.append(manifest["metadata"]["name"])
            events.append(
                Event(
                    "Normal",
                    "GoalCreated",
                    f"created goal {manifest['metadata']['name']} for task {task.id}",
                )
            )
        return started, events

    async def _name_taken(
        self, backlog: Backlog, manifest: Mapping[str, Any], task: Task
    ) -> list[Event]:
        name = manifest["metadata"]["name"]
        mine = await self.cluster.list_goals(
            backlog.metadata.namespace, f"{LABEL_BACKLOG_UID}={backlog.metadata.uid}"
        )
        if any(g["metadata"]["name"] == name and task_of(g) == task.id for g in mine):
            return []
        message = f"cannot create goal {name} for task {task.id}: the name is taken"
        return [Event("Warning", "GoalNameTaken", message)]

    # ------------------------------------------------------------------- status

    def _report(
        self,
        backlog: Backlog,
        status: BacklogStatus,
        parsed: _Parsed,
        selection: Selection,
        started: list[str],
        generation: int | None,
        declined: Mapping[str, DeclinedTask],
        goals: list[dict[str, Any]],
    ) -> BacklogStatus:
        report = selection.report
        counts = report.counts
        blocked = [
            BlockedTask(
                id=item.id,
                reason="FailureBudget"
                if item.failures
                else "Requires"
                if item.requires
                else "MarkedBlocked",
                requires=list(item.requires),
                message="; ".join(item.last_failures),
            )
            for item in report.blocked
        ]
        if selection.limit is not None:
            reason, message = "LimitReached", selection.limit.message
        else:
            reason, message = "Synced", f"{len(started)} goal(s) started at {parsed.commit[:12]}"
        return evolve(
            status,
            observed_generation=generation,
            last_synced_commit=parsed.commit,
            last_sync_time=instant(self.clock()),
            counts=TaskCounts(
                pending=counts.pending,
                in_progress=counts.in_progress,
                completed=counts.completed,
                failed=counts.failed,
                blocked=counts.blocked,
            ),
            ready=list(report.ready.ids),
            blocked=blocked,
            in_progress=list(report.in_progress.ids),
            completed=list(report.completed.ids),
            started=started,
            declined=[declined[task_id] for task_id in report.declined.ids],
            awaiting_approval=awaiting_approval(goals, _LISTED),
            ready_count=report.ready.total,
            in_progress_count=report.in_progress.total,
            short_commit=parsed.commit[:SHORT_COMMIT],
            last_handled_reconcile_at=backlog.metadata.annotations.get(ANNOTATION_REQUESTED_AT),
            conditions=mark_ready(
                status.conditions, reason, message, generation=generation, now=self.clock()
            ),
        )

    def _budget(
        self,
        new: BacklogStatus,
        status: BacklogStatus,
        accounted: Accounted,
        events: list[Event],
        generation: int | None,
    ) -> BacklogStatus:
        """`new` with the usage per day and today's budget; Ready's reason `BudgetExhausted`
        while it is spent; the budget's transition in `events`."""
        fields, unset = accounted.status_fields()
        events[:0] = accounted.events  # why Goals start again (or not) comes first
        decision = accounted.decision
        if decision is not None and decision.exhausted:
            fields["conditions"] = mark_ready(
                status.conditions,
                BUDGET_EXHAUSTED,
                decision.status.message,
                generation=generation,
                now=self.clock(),
            )
        return evolve(new, unset=unset, **fields)

    def _forge_unavailable(
        self,
        new: BacklogStatus,
        status: BacklogStatus,
        forge_error: str,
        generation: int | None,
        events: list[Event],
    ) -> BacklogStatus:
        """`new` saying that nothing started because the forge could not be asked; a warning
        in `events` unless `status`, the status before, said so already."""
        conditions = mark_reconciling(
            status.conditions,
            "ForgeUnavailable",
            forge_error,
            generation=generation,
            now=self.clock(),
        )
        if reason_of(status.conditions, READY) != "ForgeUnavailable":
            events.append(Event("Warning", "ForgeUnavailable", f"nothing started: {forge_error}"))
        return evolve(new, conditions=conditions)

    def _not_ready(
        self,
        status: BacklogStatus,
        reason: str,
        message: str,
        generation: int | None,
        *,
        stalled: bool = False,
        requeue: float | None = None,
    ) -> Reconciled[BacklogStatus]:
        mark = mark_stalled if stalled else mark_reconciling
        conditions = mark(
            status.conditions, reason, message, generation=generation, now=self.clock()
        )
        new = evolve(status, observed_generation=generation, conditions=conditions)
        said = reason_of(status.conditions, READY) == reason
        events = [] if said else [Event("Warning", reason, message)]
        return Reconciled(new, events, requeue_after=requeue)


def goal_for_task(backlog: Backlog, task: Task, *, number: int = 1) -> dict[str, Any]:
    """The `number`th Goal of one task: the template, the Backlog's repository and file, the
    task's id. The first is named `<backlog>-<task>`, later ones (after a failure) `...-<n>`."""
    template = backlog.spec.goal_template
    spec: dict[str, Any] = template.spec.to_wire()
    spec["repository"] = backlog.spec.repository.to_wire()
    spec["backlog"] = {"path": backlog.spec.path, "taskId": task.id}
    if task.priority_rank is not None:
        spec["priority"] = task.priority_rank
    labels = dict(template.metadata.labels)
    labels.update(
        {
            LABEL_BACKLOG: naming.label_value(backlog.metadata.name),
            LABEL_BACKLOG_UID: backlog.metadata.uid or "",
            LABEL_TASK: naming.dns_label(task.id),
        }
    )
    return owned_goal(
        backlog,
        name=_numbered(goal_name(backlog.metadata.name, task.id), number),
        namespace=backlog.metadata.namespace,
        labels=labels,
        annotations={
            **template.metadata.annotations,
            ANNOTATION_TASK_DIGEST: task_digest(task),
        },
        spec=spec,
    )


def _newly_declined(before: BacklogStatus, now: BacklogStatus) -> list[Event]:
    """An event for each task the status lists as declined that it did not list before."""
    known = {task.id for task in before.declined}
    events = []
    for task in now.declined:
        if task.id in known:
            continue
        by = f" by {task.closed_by}" if task.closed_by else ""
        what = (
            f"pull request #{task.pull_request.number} was closed without merging{by}"
            if task.pull_request is not None
            else f"its staged change was rejected{by}"
        )
        events.append(
            Event(
                "Normal",
                "TaskDeclined",
                f"task {task.id} is not selected again: {what}; revive it with the annotation "
                f"{ANNOTATION_REVIVE_PREFIX}{task.id}=<time>, or edit its entry",
            )
        )
    return events


def _synced(backlog: Backlog, parsed: _Parsed, selection: Selection) -> Event:
    """The event of a sync that read a new commit (and the log line of what stays completed)."""
    completed = selection.report.completed
    log.info(
        "backlog %s at %s: %d completed task(s) are not selected again: %s",
        f"{backlog.metadata.namespace}/{backlog.metadata.name}",
        parsed.commit[:12],
        completed.total,
        ", ".join(completed.ids),
    )
    return Event("Normal", "Synced", f"read {backlog.spec.path} at {parsed.commit[:12]}")


def task_digest(task: Task) -> str:
    """A short digest of a task's entry in the file (every field but where it stands)."""
    # As pydantic's JSON mode writes them (times in ISO 8601 with `Z`, NaN as null), as when the
    # task was a pydantic model: the digests on existing Goals stay valid.
    fields = to_jsonable_python(
        {key: value for key, value in task.fields().items() if key != "line"},
        inf_nan_mode="null",
    )
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _numbered(name: str, number: int) -> str:
    return name if number == 1 else naming.dns_label(f"{name}-{number}")


def _tasks_of_branches(branches: list[str], prefix: str) -> set[str]:
    """Task ids of `<prefix><task>-<attempt>` branches (the attempt suffix has no dash)."""
    found = set()
    for branch in branches:
        if branch.startswith(prefix) and "-" in branch[len(prefix) :]:
            found.add(branch[len(prefix) :].rsplit("-", 1)[0])
    return found
