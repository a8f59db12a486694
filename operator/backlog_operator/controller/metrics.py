"""The operator's Prometheus metrics: all defined here, recorded by the runtime where statuses
are written and watch events arrive, and by the Backlog reconciler's forge as it answers.

One `Metrics` per operator, each with its own `CollectorRegistry` rather than prometheus_client's
global one: tests run several operators in one process, and each must count only its own (and
a second operator in a process would otherwise fail on names already registered). `main`
serves it on `/metrics` (`adapters.endpoints`). Nothing here lists the API: every figure comes
from what the operator already does or is told.

| metric {labels} | type | what it counts |
|---|---|---|
| `controller_runtime_reconcile_total{controller,result}` | counter | reconciles (1) |
| `controller_runtime_reconcile_errors_total{controller}` | counter | reconciles that failed |
| `controller_runtime_reconcile_time_seconds{controller}` | histogram | a reconcile's time (2) |
| `backlog_goals{namespace,phase}` | gauge | Goals by `status.phase` (3) |
| `backlog_goal_queue_depth` | gauge | Goals waiting for a free slot only |
| `backlog_goal_slots_held` | gauge | slots held: running, and admitted to start |
| `backlog_goal_slots_limit` | gauge | slots in all (`MAX_RUNNING`) |
| `backlog_goal_queue_wait_seconds` | histogram | from "may start" to the Job (4) |
| `backlog_goal_attempts_total{outcome,reason}` | counter | attempts ended (5) |
| `backlog_goal_attempt_duration_seconds{outcome}` | histogram | an attempt's Job, start to end |
| `backlog_goal_step_duration_seconds{step}` | histogram | a step's container, start to end |
| `backlog_goal_run_duration_seconds{phase}` | histogram | `startTime` to `completionTime` |
| `backlog_pull_requests_total{action}` | counter | pull requests `opened` or `reused` |
| `backlog_pull_request_heals_total{result}` | counter | heal Jobs ended, by result (14) |
| `backlog_forge_requests_total{status}` | counter | forge requests by HTTP status (6) |
| `backlog_forge_rate_limit_remaining{namespace,backlog}` | gauge | in the last answer |
| `backlog_tasks{namespace,backlog,state}` | gauge | a Backlog's tasks by state (7) |
| `backlog_tasks_ready{namespace,backlog}` | gauge | of them, selectable now |
| `backlog_task_usage_attempts_total{namespace,owner_kind,owner}` | counter | attempts (8) |
| `backlog_task_usage_tokens_total{namespace,owner_kind,owner,direction}` | counter | tokens (8) |
| `backlog_task_usage_cost_total{namespace,owner_kind,owner,currency}` | counter | cost (8, 9) |
| `backlog_task_usage_unreported_total{namespace,owner_kind,owner,missing}` | counter | (10) |
| `backlog_budget_exhausted{namespace,owner_kind,owner}` | gauge | 1: today's budget spent |
| `backlog_budget_remaining{namespace,owner_kind,owner,limit}` | gauge | what today leaves (11) |
| `backlog_webhook_deliveries_total{event,code}` | counter | GitHub webhook deliveries (13) |
| `backlog_operator_build_info{version}` | gauge | 1 |
| `leader_election_master_status{name}` | gauge | 1 while this replica leads, 0 standby (12) |

(1) By kind (`goal`, `backlog`, `goalschedule`) and result (`success`, `error`), named as
controller-runtime's so that its dashboards work. (2) The status write and events included.
(3) `Pending` when it has none yet; as the watch last said them. (4) From the goal's creation,
or its backoff's end, to its attempt's Job. (5) By outcome (`published`, `already_completed`,
`failed`) and reason (`Published`, `AlreadyCompleted`, or the failure's). (6) Of Backlog syncs;
`error`: no answer came. (7) At its last sync: `pending`, `in_progress`, `completed`, `failed`,
`blocked`.
(8) What tasks reported, counted once per attempt as the Goal's status that records it is
written, under the Goal's owner (`Backlog` or `GoalSchedule`, by its controller ownerReference;
both empty for a Goal of its own); `direction` `input` or `output`. Never the model: it is the
task's free text. (9) In the currency's units; a currency past the first `MAX_CURRENCIES` seen
is `Other`. (10) Attempts whose task ran and reported no `cost`, or no `tokens` (`missing`), as
`status.usage` counts them. (11) By `limit` (`attempts`, `tokens`, `cost` in the budget's
currency) of `spec.budget.perDay` that the owner sets: the limit less what attempts that ended
today used, never below 0 (goals running or waiting take from it as they end).
(12) controller-runtime's name; `name` is the Lease's. Only with leader election on
(`BACKLOG_OPERATOR_LEADER_ELECTION`); a standby serves it too (the metrics Service publishes
replicas that are not ready). (13) Those
answered for a Backlog's path (a 404 is not counted), by `event` (`ping`, `push`,
`pull_request`, else `other`) and the answer's HTTP `code`. (14) `Healed`, `NothingToHeal`,
`CompletedInBase`, `Conflicted`, `TaskNotInBase`, `HealFailed` (any other failure of the step
or its Job, and a heal Job the API refused), counted as the goal's status that records the end
is written.

Labels are few and bounded: kinds, phases, steps, outcomes and HTTP statuses are fixed sets; a
reason is a CamelCase word (anything else counts as `Other`, as does any reason past the first
`MAX_REASONS`); namespaces and names are those of Backlogs and GoalSchedules only (owners past
the first `MAX_OWNERS` seen are `Other`, a name no Kubernetes object can have). Never a goal's
name, a task id, a model, a URL, a message or anything read from a Secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from backlog_operator import __version__
from backlog_operator.api.backlog import BacklogStatus
from backlog_operator.api.budget import BudgetSpec, BudgetStatus
from backlog_operator.api.goal import FINAL_PHASES, GoalStatus, Phase
from backlog_operator.api.result import Outcome
from backlog_operator.api.usage import AttemptUsage, OwnerUsage, UsageTotals
from backlog_operator.controller.results import AttemptEnd
from backlog_operator.controller.status import parse_time

# The `controller` label of each kind (the plural the runtime names it by), as controller-runtime
# names a controller after its kind.
CONTROLLERS = {"goals": "goal", "backlogs": "backlog", "goalschedules": "goalschedule"}
STEPS = ("clone", "task", "publish")
TASK_STATES = ("pending", "in_progress", "completed", "failed", "blocked")
WEBHOOK_EVENTS = frozenset({"ping", "push", "pull_request"})
# Reasons kept apart at most; later ones (a bug, or a Job controller's new words) are `Other`.
MAX_REASONS = 100
OTHER = "Other"
_REASON = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")
# Owners (namespace, kind, name) and currencies kept apart at most; later ones are `Other`.
MAX_OWNERS = 500
MAX_CURRENCIES = 10
OWNER_KINDS = ("Backlog", "GoalSchedule")
BUDGET_LIMITS = ("attempts", "tokens", "cost")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_GROUP_PREFIX = "backlog.dev/"
_NAME_MAX_LENGTH = 253
_PHASES = frozenset(phase.value for phase in Phase)
_FINAL_PHASES = frozenset(phase.value for phase in FINAL_PHASES)
_SUCCESS_REASONS = {Outcome.PUBLISHED: "Published", Outcome.ALREADY_COMPLETED: "AlreadyCompleted"}

# Reconciles take milliseconds (a few seconds for a Backlog that fetches); attempts and runs
# minutes to hours; waits for a slot anything up to a day.
_RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_ATTEMPT_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200)
_WAIT_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400)


class Metrics:
    """The operator's metrics in their own registry, and the helpers that record them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._define_reconciles()
        self._define_goals()
        self._define_attempts()
        self._define_backlogs()
        self._define_usage()
        Gauge(
            "backlog_operator_build_info",
            "The operator's version, as a label; the value is 1.",
            ["version"],
            registry=self.registry,
        ).labels(__version__).set(1)
        self.leader = Gauge(
            "leader_election_master_status",
            "1 while this replica holds the leader election Lease `name`, 0 while it waits.",
            ["name"],
            registry=self.registry,
        )
        self._goal_phases: dict[str, tuple[str, str]] = {}  # goal -> (namespace, phase) counted
        self._reasons: set[str] = set()
        self._owners: set[tuple[str, str, str]] = set()
        self._currencies: set[str] = set()
        self._usage_counted: dict[str, tuple[str, int]] = {}  # goal -> (uid, attempt number)

    def _define_reconciles(self) -> None:
        self.reconciles = Counter(
            "controller_runtime_reconcile_total",
            "Reconciles by controller and result.",
            ["controller", "result"],
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors_total",
            "Reconciles that failed, by controller.",
            ["controller"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Time of one reconcile (with its status write and events), by controller.",
            ["controller"],
            buckets=_RECONCILE_BUCKETS,
            registry=self.registry,
        )
        for controller in CONTROLLERS.values():  # zero from the start, as controller-runtime
            self.reconcile_errors.labels(controller)
            for result in ("success", "error"):
                self.reconciles.labels(controller, result)

    def _define_goals(self) -> None:
        self.goals = Gauge(
            "backlog_goals",
            "Goals by namespace and phase, as the watch last said them.",
            ["namespace", "phase"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "backlog_goal_queue_depth", "Goals waiting for capacity only.", registry=self.registry
        )
        self.slots_held = Gauge(
            "backlog_goal_slots_held",
            "Slots held: goals running and goals admitted to start.",
            registry=self.registry,
        )
        self.slots_limit = Gauge(
            "backlog_goal_slots_limit", "Slots in all (MAX_RUNNING).", registry=self.registry
        )
        self.queue_wait = Histogram(
            "backlog_goal_queue_wait_seconds",
            "From when a goal could start (its creation, or its backoff's end) to its Job.",
            buckets=_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.run_seconds = Histogram(
            "backlog_goal_run_duration_seconds",
            "A run that ended, from status.startTime to status.completionTime, by final phase.",
            ["phase"],
            buckets=_ATTEMPT_BUCKETS,
            registry=self.registry,
        )

    def _define_attempts(self) -> None:
        self.attempts = Counter(
            "backlog_goal_attempts_total",
            "Attempts ended, by outcome and reason.",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.attempt_seconds = Histogram(
            "backlog_goal_attempt_duration_seconds",
            "An attempt from its Job's start to its end, by outcome.",
            ["outcome"],
            buckets=_ATTEMPT_BUCKETS,
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "backlog_goal_step_duration_seconds",
            "A step's container from its start to its end, by step.",
            ["step"],
            buckets=_ATTEMPT_BUCKETS,
            registry=self.registry,
        )
        self.pull_requests = Counter(
            "backlog_pull_requests_total",
            "Pull requests of published attempts: opened, or reused.",
            ["action"],
            registry=self.registry,
        )
        self.heals = Counter(
            "backlog_pull_request_heals_total",
            "Heal Jobs of conflicting pull requests ended, by result.",
            ["result"],
            registry=self.registry,
        )

    def _define_backlogs(self) -> None:
        self.webhook_deliveries = Counter(
            "backlog_webhook_deliveries_total",
            "GitHub webhook deliveries to Backlogs' paths, by event and answer.",
            ["event", "code"],
            registry=self.registry,
        )
        self.forge_requests = Counter(
            "backlog_forge_requests_total",
            "Requests of Backlog syncs to the forge, by HTTP status (error: no answer).",
            ["status"],
            registry=self.registry,
        )
        self.forge_rate_limit = Gauge(
            "backlog_forge_rate_limit_remaining",
            "The rate limit remaining in the forge's last answer to a Backlog's sync.",
            ["namespace", "backlog"],
            registry=self.registry,
        )
        self.tasks = Gauge(
            "backlog_tasks",
            "A Backlog's tasks at its last sync, by state.",
            ["namespace", "backlog", "state"],
            registry=self.registry,
        )
        self.tasks_ready = Gauge(
            "backlog_tasks_ready",
            "A Backlog's tasks selectable now, at its last sync.",
            ["namespace", "backlog"],
            registry=self.registry,
        )

    def _define_usage(self) -> None:
        owner = ["namespace", "owner_kind", "owner"]
        self.usage_attempts = Counter(
            "backlog_task_usage_attempts_total",
            "Attempts whose usage was recorded in their Goal's status, by the Goal's owner.",
            owner,
            registry=self.registry,
        )
        self.usage_tokens = Counter(
            "backlog_task_usage_tokens_total",
            "Tokens the tasks reported, by the Goal's owner and direction (input, output).",
            [*owner, "direction"],
            registry=self.registry,
        )
        self.usage_cost = Counter(
            "backlog_task_usage_cost_total",
            "What the tasks reported they cost, in the currency's units, by the Goal's owner.",
            [*owner, "currency"],
            registry=self.registry,
        )
        self.usage_unreported = Counter(
            "backlog_task_usage_unreported_total",
            "Attempts whose task ran and reported no cost, or no tokens (missing).",
            [*owner, "missing"],
            registry=self.registry,
        )
        self.budget_exhausted = Gauge(
            "backlog_budget_exhausted",
            "1 while a Backlog's or GoalSchedule's daily budget is spent, else 0.",
            owner,
            registry=self.registry,
        )
        self.budget_remaining = Gauge(
            "backlog_budget_remaining",
            "A daily budget's limit less what attempts that ended today used (cost: in the "
            "budget's currency).",
            [*owner, "limit"],
            registry=self.registry,
        )

    # ---------------------------------------------------------------------- reconciles

    def reconciled(self, plural: str, seconds: float, *, error: bool) -> None:
        """One reconcile of a kind (by its plural) took `seconds`, and failed or not."""
        controller = CONTROLLERS.get(plural, plural)
        self.reconciles.labels(controller, "error" if error else "success").inc()
        if error:
            self.reconcile_errors.labels(controller).inc()
        self.reconcile_seconds.labels(controller).observe(max(0.0, seconds))

    # --------------------------------------------------------------------------- goals

    def track_capacity(
        self, queued: Callable[[], int], held: Callable[[], int], limit: int
    ) -> None:
        """Read the queue's depth and the slots held when scraped (the capacity table keeps
        them up to date at every decision)."""
        self.queue_depth.set_function(queued)
        self.slots_held.set_function(held)
        self.slots_limit.set(limit)

    def goal_seen(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A Goal's watch event: its phase counted where it is now (not at all once deleted)."""
        metadata = body.get("metadata") or {}
        namespace = str(metadata.get("namespace"))
        key = f"{namespace}/{metadata.get('name')}"
        if event_type == "DELETED":
            self.forget_goal(key)
            return
        phase = (body.get("status") or {}).get("phase") or Phase.PENDING.value
        counted = (namespace, phase if phase in _PHASES else "Unknown")
        known = self._goal_phases.get(key)
        if known == counted:
            return
        if known is not None:
            self.goals.labels(*known).dec()
        self.goals.labels(*counted).inc()
        self._goal_phases[key] = counted

    def forget_goal(self, key: str) -> None:
        """A goal that is gone: no longer counted."""
        self._usage_counted.pop(key, None)
        known = self._goal_phases.pop(key, None)
        if known is not None:
            self.goals.labels(*known).dec()

    def goal_written(self, body: Mapping[str, Any], status: GoalStatus, now: datetime) -> None:
        """A Goal's status, computed from `body`, was written: a start ends a wait for a slot,
        a final phase ends a run."""
        before = body.get("status") or {}
        phase = before.get("phase")
        if status.phase is Phase.RUNNING and phase != Phase.RUNNING.value:
            since = parse_time(before.get("nextAttemptTime"))
            if since is None and status.attempts == 1 and (status.run or 1) == 1:
                since = parse_time((body.get("metadata") or {}).get("creationTimestamp"))
            if since is not None:
                self.queue_wait.observe(max(0.0, (now - since).total_seconds()))
        ended = status.phase in FINAL_PHASES and phase not in _FINAL_PHASES
        if ended and status.phase and status.start_time and status.completion_time:
            seconds = (status.completion_time - status.start_time).total_seconds()
            self.run_seconds.labels(status.phase.value).observe(max(0.0, seconds))

    def attempt_ended(self, end: AttemptEnd, now: datetime) -> None:
        """An attempt ended (its status written): its outcome and reason, how long it and its
        steps took, the pull request it opened or reused."""
        result = end.result
        outcome = result.outcome.value
        reason = _SUCCESS_REASONS.get(result.outcome) or self.reason(result.reason or "Failed")
        self.attempts.labels(outcome, reason).inc()
        seconds = attempt_seconds(end.job, now)
        if seconds is not None:
            self.attempt_seconds.labels(outcome).observe(seconds)
        for step, took in step_seconds(end.pod):
            self.step_seconds.labels(step).observe(took)
        created = result.pull_request_created if result.pull_request is not None else None
        if result.outcome is Outcome.PUBLISHED and created is not None:
            self.pull_requests.labels("opened" if created else "reused").inc()

    def heal_ended(self, result: str) -> None:
        """A heal Job ended with `result` (one of `heal.HEAL_OUTCOMES`; its status written)."""
        self.heals.labels(result).inc()

    def reason(self, reason: str) -> str:
        """`reason` as a label value: a CamelCase word among the first `MAX_REASONS` seen, else
        `Other` (a label's values must stay few whatever the cluster or a worker says)."""
        if reason in self._reasons:
            return reason
        if not _REASON.match(reason) or len(self._reasons) >= MAX_REASONS:
            return OTHER
        self._reasons.add(reason)
        return reason

    # ------------------------------------------------------------------------ backlogs

    def webhook_answered(self, event: str, code: int) -> None:
        """A webhook delivery to a Backlog's path was answered `code` (its event unverified
        when refused: only the events acted on are named)."""
        named = event if event in WEBHOOK_EVENTS else "other"
        self.webhook_deliveries.labels(named, str(code)).inc()

    def forge_answered(
        self, namespace: str, backlog: str, status: int | None, remaining: int | None
    ) -> None:
        """The forge answered a Backlog's sync (`status` None: no answer came)."""
        self.forge_requests.labels("error" if status is None else str(status)).inc()
        if remaining is not None:
            self.forge_rate_limit.labels(namespace, backlog).set(remaining)

    def backlog_synced(self, namespace: str, name: str, status: BacklogStatus | None) -> None:
        """A Backlog's status after a sync: its tasks by state."""
        if status is None or status.counts is None:
            return
        counts = status.counts
        for state in TASK_STATES:
            self.tasks.labels(namespace, name, state).set(getattr(counts, state))
        if status.ready_count is not None:
            self.tasks_ready.labels(namespace, name).set(status.ready_count)

    def forget_backlog(self, namespace: str, name: str) -> None:
        """A deleted Backlog: its series go."""
        for gauge, labels in self._backlog_series(namespace, name):
            with suppress(KeyError):  # never set
                gauge.remove(*labels)
        self.forget_budget(namespace, "Backlog", name)

    def _backlog_series(self, namespace: str, name: str) -> Iterator[tuple[Gauge, tuple[str, ...]]]:
        for state in TASK_STATES:
            yield self.tasks, (namespace, name, state)
        yield self.tasks_ready, (namespace, name)
        yield self.forge_rate_limit, (namespace, name)

    # --------------------------------------------------------------------------- usage

    def usage_recorded(self, body: Mapping[str, Any], status: GoalStatus) -> None:
        """A Goal's status that records an attempt's end (`status`, computed from `body`) was
        written: that attempt's usage, the newest in `status.usage`, counted under the Goal's
        owner, once (an attempt already counted for this Goal is not counted again)."""
        usage = status.usage
        if usage is None or not usage.attempts:
            return
        entry = usage.attempts[-1]
        metadata = body.get("metadata") or {}
        key = f"{metadata.get('namespace')}/{metadata.get('name')}"
        uid = str(metadata.get("uid") or "")
        known = self._usage_counted.get(key)
        if known is not None and known[0] == uid and known[1] >= entry.number:
            return
        self._usage_counted[key] = (uid, entry.number)
        self._count_usage(self.owner_of(metadata), entry)

    def _count_usage(self, owner: tuple[str, str, str], entry: AttemptUsage) -> None:
        self.usage_attempts.labels(*owner).inc()
        self.usage_tokens.labels(*owner, "input").inc(entry.input_tokens or 0)
        self.usage_tokens.labels(*owner, "output").inc(entry.output_tokens or 0)
        if entry.cost is not None:
            currency = self.currency(entry.cost.currency)
            self.usage_cost.labels(*owner, currency).inc(float(entry.cost.value))
        self.usage_unreported.labels(*owner, "cost").inc(int(entry.task_ran and not entry.cost))
        unreported_tokens = entry.task_ran and not entry.reports_tokens
        self.usage_unreported.labels(*owner, "tokens").inc(int(unreported_tokens))

    def owner_of(self, metadata: Mapping[str, Any]) -> tuple[str, str, str]:
        """(namespace, kind, name) of the Backlog or GoalSchedule a Goal's controller
        ownerReference names; the kind and name empty for a Goal of its own."""
        namespace = str(metadata.get("namespace"))
        for ref in metadata.get("ownerReferences") or []:
            if (
                isinstance(ref, Mapping)
                and ref.get("controller") is True
                and ref.get("kind") in OWNER_KINDS
                and str(ref.get("apiVersion", "")).startswith(_GROUP_PREFIX)
                and ref.get("name")
            ):
                return self.owner(namespace, str(ref["kind"]), str(ref["name"]))
        return (namespace, "", "")

    def owner(self, namespace: str, kind: str, name: str) -> tuple[str, str, str]:
        """The labels of an owner: as they are among the first `MAX_OWNERS` seen, else its name
        is `Other` (no Kubernetes name has a capital letter)."""
        key = (namespace, kind, name)
        if key in self._owners:
            return key
        if len(self._owners) >= MAX_OWNERS or not 0 < len(name) <= _NAME_MAX_LENGTH:
            return (namespace, kind, OTHER)
        self._owners.add(key)
        return key

    def currency(self, currency: str) -> str:
        """`currency` as a label value: an ISO 4217 code among the first `MAX_CURRENCIES` seen,
        else `Other` (a task may report any of 17,576 three-letter codes)."""
        if currency in self._currencies:
            return currency
        if not _CURRENCY.match(currency) or len(self._currencies) >= MAX_CURRENCIES:
            return OTHER
        self._currencies.add(currency)
        return currency

    def budget_seen(
        self,
        kind: str,
        body: Mapping[str, Any],
        usage: OwnerUsage | None,
        budget: BudgetStatus | None,
    ) -> None:
        """A Backlog's or GoalSchedule's status after its reconcile: whether today's budget is
        spent, and what each limit of its `spec.budget` leaves; no series without a budget."""
        metadata = body.get("metadata") or {}
        namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
        spec = budget_spec(body)
        if spec is None or budget is None:
            self.forget_budget(namespace, kind, name)
            return
        owner = self.owner(namespace, kind, name)
        if owner[2] == OTHER:  # its series would mix with other owners': none
            return
        self.budget_exhausted.labels(*owner).set(1 if budget.exhausted else 0)
        for limit, left in remaining(spec, day_totals(usage, budget.day)).items():
            if left is None:
                with suppress(KeyError):
                    self.budget_remaining.remove(*owner, limit)
            else:
                self.budget_remaining.labels(*owner, limit).set(left)

    def forget_budget(self, namespace: str, kind: str, name: str) -> None:
        """An owner without a budget (or gone): its budget series go."""
        with suppress(KeyError):
            self.budget_exhausted.remove(namespace, kind, name)
        for limit in BUDGET_LIMITS:
            with suppress(KeyError):
                self.budget_remaining.remove(namespace, kind, name, limit)


def budget_spec(body: Mapping[str, Any]) -> BudgetSpec | None:
    """The `spec.budget` of a Backlog's or GoalSchedule's body, None when unset or invalid."""
    raw = (body.get("spec") or {}).get("budget")
    if not isinstance(raw, Mapping):
        return None
    try:
        return BudgetSpec.model_validate(raw)
    except ValueError:
        return None


def day_totals(usage: OwnerUsage | None, day: str) -> UsageTotals:
    """The usage of the UTC `day` in an owner's `usage`, zero when it has none."""
    for totals in usage.days if usage else []:
        if totals.date == day:
            return totals
    return UsageTotals()


def remaining(spec: BudgetSpec, today: UsageTotals) -> dict[str, float | None]:
    """What each limit of `spec.perDay` leaves after `today` (None: no such limit), never
    below 0; cost in the budget's currency."""
    limits = spec.per_day
    left: dict[str, float | None] = dict.fromkeys(BUDGET_LIMITS)
    if limits.attempts is not None:
        left["attempts"] = max(0, limits.attempts - today.attempts)
    if limits.tokens is not None:
        left["tokens"] = max(0, limits.tokens - today.input_tokens - today.output_tokens)
    if limits.cost is not None:
        cost = limits.cost.value - today.cost_in(limits.cost.currency)
        left["cost"] = max(float(cost), 0.0)
    return left


def attempt_seconds(job: Mapping[str, Any] | None, now: datetime) -> float | None:
    """An attempt's time from its Job's status: `startTime` to `completionTime`, else to when
    it failed (its Failed condition), else to `now` (an attempt stopped while it ran)."""
    status = (job or {}).get("status") or {}
    start = parse_time(status.get("startTime"))
    if start is None:
        return None
    end = parse_time(status.get("completionTime"))
    for condition in status.get("conditions") or []:
        if end is None and condition.get("type") == "Failed" and condition.get("status") == "True":
            end = parse_time(condition.get("lastTransitionTime"))
    return max(0.0, ((end or now) - start).total_seconds())


def step_seconds(pod: Mapping[str, Any] | None) -> list[tuple[str, float]]:
    """Each step that ran to its end in the attempt's Pod, and how long it took (its
    container's `startedAt` to `finishedAt`)."""
    status = (pod or {}).get("status") or {}
    found: list[tuple[str, float]] = []
    containers = [*(status.get("initContainerStatuses") or [])]
    for item in [*containers, *(status.get("containerStatuses") or [])]:
        name = item.get("name")
        state = item.get("state") or {}
        terminated = state.get("terminated") or (item.get("lastState") or {}).get("terminated")
        if name not in STEPS or not isinstance(terminated, Mapping):
            continue
        started = parse_time(terminated.get("startedAt"))
        finished = parse_time(terminated.get("finishedAt"))
        if started is not None and finished is not None:
            found.append((str(name), max(0.0, (finished - started).total_seconds())))
    return found
