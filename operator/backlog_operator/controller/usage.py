"""Usage accounting and daily budgets. Pure: times are arguments, Goals are bodies read.

- `record_attempt`: a Goal's status gains one ended attempt (what its task reported, or that it
  reported nothing) and its total grows.
- `fold_goals`: a Backlog (or GoalSchedule) adds its Goals' attempts that ended since it last
  looked to the UTC day they ended on. Goals are deleted (history limits, people), so the days
  are kept in the owner's status, with how many attempts of each Goal they hold already
  (`counted`): no attempt counts twice, and a Goal is trimmed from history only once the status
  read says its attempts are all counted (`all_counted`), so none is lost with it either.
- `decide`: whether today's budget lets a new Goal start, and how many.

The rule for an attempt that reported no usage (docs/operator.md, "Budgets"): it counts as an
attempt always; with a cost (tokens) limit and `unreportedUsage: Block`, an attempt whose task
ran without reporting a cost (tokens) spends the day's budget; with `Allow` it costs nothing.
An attempt whose task cannot have run (`task_ran`: the clone failed, the task was already
completed, its image or a Secret was missing) has nothing to report and is not "unreported".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from backlog_operator.api.budget import BudgetSpec, BudgetStatus
from backlog_operator.api.goal import FINAL_PHASES
from backlog_operator.api.result import Outcome, WorkerResult
from backlog_operator.api.usage import (
    MAX_ATTEMPT_RECORDS,
    MAX_COUNTERS,
    MAX_CURRENCIES,
    MAX_SUM,
    RETAINED_DAYS,
    AttemptUsage,
    Cost,
    CountedGoal,
    DailyUsage,
    GoalUsage,
    OwnerUsage,
    TaskUsage,
    UsageTotals,
    format_amount,
)
from backlog_operator.controller.owned_goals import phase_of
from backlog_operator.controller.results import Event
from backlog_operator.controller.status import instant

AVAILABLE = "Available"
ATTEMPTS_SPENT = "AttemptsSpent"
TOKENS_SPENT = "TokensSpent"
COST_SPENT = "CostSpent"
USAGE_UNREPORTED = "UsageUnreported"
BUDGET_EXHAUSTED = "BudgetExhausted"
BUDGET_AVAILABLE = "BudgetAvailable"


# ------------------------------------------------------------------------------ one attempt


def record_attempt(
    usage: GoalUsage | None, result: WorkerResult, *, attempt_id: str | None, now: datetime
) -> GoalUsage:
    """`usage` with the attempt that ended with `result` at `now` added (numbered on from the
    total, so a re-run's attempts follow the earlier runs')."""
    usage = usage or GoalUsage()
    reported = result.usage or TaskUsage()
    entry = AttemptUsage.model_validate(
        {
            **reported.model_dump(exclude_defaults=True),
            "number": usage.total.attempts + 1,
            "attempt_id": attempt_id or result.attempt_id,
            "end_time": instant(now),
            "task_ran": task_ran(result),
        }
    )
    return GoalUsage(
        attempts=[*usage.attempts, entry][-MAX_ATTEMPT_RECORDS:],
        total=add_attempt(usage.total, entry),
    )


# Failures of an attempt whose task container never started: its image (or a Secret the Pod
# mounts) was missing (`controller/goals/outcome.py`).
_BEFORE_THE_TASK = frozenset({"InvalidImageName", "ImagePullFailed"})
_POD_NEVER_RAN = frozenset({"SecretNotFound"})


def task_ran(result: WorkerResult) -> bool:
    """Whether the attempt's task ran, or may have: False when the clone step ended the
    attempt, the task was already completed, or the task's container never started."""
    if result.outcome is Outcome.ALREADY_COMPLETED or result.step == "clone":
        return False
    if result.reason in _POD_NEVER_RAN:
        return False
    return not (result.step == "task" and result.reason in _BEFORE_THE_TASK)


def add_attempt(totals: UsageTotals, entry: AttemptUsage) -> UsageTotals:
    """`totals` with one more attempt (`entry`), sums capped at MAX_SUM."""
    costs, cost_kept = _add_cost(totals.costs, entry.cost)
    unreported_cost = entry.task_ran and (entry.cost is None or not cost_kept)
    return totals.model_copy(
        update={
            "attempts": _capped(totals.attempts + 1),
            "input_tokens": _capped(totals.input_tokens + (entry.input_tokens or 0)),
            "output_tokens": _capped(totals.output_tokens + (entry.output_tokens or 0)),
            "costs": costs,
            "duration_seconds": round(totals.duration_seconds + (entry.duration_seconds or 0), 3),
            "counters": _add_counters(totals.counters, entry.counters),
            "without_cost": totals.without_cost + int(unreported_cost),
            "without_tokens": totals.without_tokens
            + int(entry.task_ran and not entry.reports_tokens),
        }
    )


def _capped(value: int) -> int:
    return min(value, MAX_SUM)


def _add_cost(costs: list[Cost], cost: Cost | None) -> tuple[list[Cost], bool]:
    """The costs with `cost` added, and whether it could be (a fifth currency cannot)."""
    if cost is None:
        return list(costs), True
    for index, known in enumerate(costs):
        if known.currency == cost.currency:
            total = min(known.value + cost.value, Decimal(MAX_SUM))
            summed = Cost(amount=format_amount(total), currency=cost.currency)
            return [*costs[:index], summed, *costs[index + 1 :]], True
    if len(costs) >= MAX_CURRENCIES:
        return list(costs), False
    return [*costs, cost], True


def _add_counters(counters: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    summed = dict(counters)
    for name, value in more.items():
        if name in summed:
            summed[name] = _capped(summed[name] + value)
        elif len(summed) < MAX_COUNTERS:
            summed[name] = value
    return summed


# ------------------------------------------------------------------------- an owner's days


def day_of(moment: datetime) -> str:
    """The UTC day of `moment`, as `DailyUsage.date` writes it."""
    return moment.astimezone(UTC).date().isoformat()


def goal_usage(goal: Mapping[str, Any]) -> GoalUsage | None:
    """A listed Goal's `status.usage`, or None (none yet, or not one the operator wrote)."""
    raw = (goal.get("status") or {}).get("usage")
    if not isinstance(raw, Mapping):
        return None
    try:
        return GoalUsage.model_validate(raw)
    except ValidationError:
        return None


def fold_goals(
    previous: OwnerUsage | None, goals: Iterable[Mapping[str, Any]], now: datetime
) -> OwnerUsage:
    """The owner's usage with its Goals' attempts that ended since `previous` counted them.

    Each new attempt goes to the UTC day it ended on (no later than today); days older than
    RETAINED_DAYS are dropped. Attempts a Goal no longer lists one by one (more than
    MAX_ATTEMPT_RECORDS ended between two looks) count today as attempts that reported nothing.
    `counted` keeps the Goals listed now, so it shrinks as Goals are deleted.
    """
    previous = previous or OwnerUsage()
    today = day_of(now)
    days = {day.date: day for day in previous.days}
    done = {item.uid: item.attempts for item in previous.counted}
    counted: list[CountedGoal] = []
    for goal in goals:
        uid = str((goal.get("metadata") or {}).get("uid") or "")
        seen = done.get(uid, 0)
        if uid and seen and _attempts_of(goal) == seen:
            counted.append(CountedGoal(uid=uid, attempts=seen))  # nothing new: not validated
            continue
        usage = goal_usage(goal)
        if not uid or usage is None:
            continue
        new = [entry for entry in usage.attempts if entry.number > seen]
        for entry in new:
            when = min(day_of(entry.end_time), today)
            days[when] = _add_to_day(days.get(when), when, entry)
        for _ in range(max(0, usage.total.attempts - seen - len(new))):
            lost = AttemptUsage(number=1, end_time=now)
            days[today] = _add_to_day(days.get(today), today, lost)
        counted.append(CountedGoal(uid=uid, attempts=max(seen, usage.total.attempts)))
    oldest = (now.astimezone(UTC).date() - timedelta(days=RETAINED_DAYS - 1)).isoformat()
    kept = sorted((day for day in days.values() if day.date >= oldest), key=lambda d: d.date)
    return OwnerUsage(days=kept[-RETAINED_DAYS:], counted=counted)


def _attempts_of(goal: Mapping[str, Any]) -> object:
    """`status.usage.total.attempts` of a listed Goal as read, unchecked (None when absent)."""
    usage = (goal.get("status") or {}).get("usage")
    total = usage.get("total") if isinstance(usage, Mapping) else None
    return total.get("attempts") if isinstance(total, Mapping) else None


def _add_to_day(day: DailyUsage | None, when: str, entry: AttemptUsage) -> DailyUsage:
    totals = add_attempt(day or DailyUsage(date=when), entry)
    return DailyUsage.model_validate(totals.model_dump())


def all_counted(previous: OwnerUsage | None, goal: Mapping[str, Any]) -> bool:
    """Whether `previous` (the owner's status as read) holds all of `goal`'s attempts, so the
    Goal may be deleted without losing any from the days."""
    usage = goal_usage(goal)
    if usage is None or usage.total.attempts == 0:
        return True
    uid = str((goal.get("metadata") or {}).get("uid") or "")
    done = {item.uid: item.attempts for item in (previous.counted if previous else [])}
    return done.get(uid, 0) >= usage.total.attempts


def today_of(usage: OwnerUsage | None, now: datetime) -> UsageTotals:
    """The usage of today (UTC) in `usage`, zero when none."""
    today = day_of(now)
    for day in usage.days if usage else []:
        if day.date == today:
            return day
    return UsageTotals()


def settled(previous: OwnerUsage | None) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a Goal may be deleted now: `previous` (the owner's status as read) holds all its
    attempts (`trim_history`'s `deletable`)."""
    return lambda goal: all_counted(previous, goal)


# When history holds a Goal back until its usage is in the status: look again this soon.
HELD_REQUEUE_SECONDS = 5.0


# ------------------------------------------------------------------------------- the budget


@dataclass(frozen=True)
class BudgetDecision:
    """Today's budget: spent or not (`status`), and how many new Goals may start (`room`;
    None: as many as the other limits allow)."""

    status: BudgetStatus
    room: int | None

    @property
    def exhausted(self) -> bool:
        """Whether no new Goal may start today."""
        return self.status.exhausted

    def requeue_after(self, now: datetime, interval: float) -> float:
        """`interval`, or less when the budget is spent and the day ends sooner."""
        if not self.exhausted or self.status.resume_time is None:
            return interval
        return max(1.0, min(interval, (self.status.resume_time - now).total_seconds()))


def next_midnight(now: datetime) -> datetime:
    """The start of the next UTC day."""
    today: date = now.astimezone(UTC).date()
    return datetime.combine(today + timedelta(days=1), time(0), tzinfo=UTC)


def decide(
    budget: BudgetSpec | None, today: UsageTotals, *, in_flight: int, now: datetime
) -> BudgetDecision | None:
    """Whether today's budget (`budget.perDay`) lets new Goals start, given `today`'s usage and
    the owner's Goals still running or waiting (`in_flight`: each will make an attempt). None
    without a budget."""
    if budget is None:
        return None
    limits = budget.per_day
    room = None
    if limits.attempts is not None:
        room = max(0, limits.attempts - today.attempts - in_flight)
    spent = _spent(budget, today, in_flight)
    resume = next_midnight(now)
    if spent is None:
        status = BudgetStatus(
            exhausted=False, reason=AVAILABLE, message=_available(budget, today), day=day_of(now)
        )
        return BudgetDecision(status=status, room=room)
    reason, why = spent
    message = f"daily budget spent: {why}; no new Goal starts until {resume:%Y-%m-%dT%H:%M:%SZ}"
    status = BudgetStatus(
        exhausted=True, reason=reason, message=message, day=day_of(now), resume_time=resume
    )
    return BudgetDecision(status=status, room=0)


def _spent(budget: BudgetSpec, today: UsageTotals, in_flight: int) -> tuple[str, str] | None:
    """(reason, figures) of the first limit reached, or None."""
    limits, block = budget.per_day, budget.unreported_usage == "Block"
    if limits.attempts is not None and today.attempts + in_flight >= limits.attempts:
        running = f" and {in_flight} running or waiting" if in_flight else ""
        return ATTEMPTS_SPENT, (
            f"{today.attempts} attempt(s) ended today{running}, of {limits.attempts}"
        )
    tokens = today.input_tokens + today.output_tokens
    if limits.tokens is not None and tokens >= limits.tokens:
        return TOKENS_SPENT, f"{tokens} tokens used today, of {limits.tokens}"
    cost = limits.cost
    if cost is not None and today.cost_in(cost.currency) >= cost.value:
        spent = format_amount(today.cost_in(cost.currency))
        return COST_SPENT, f"{spent} {cost.currency} spent today, of {cost.amount}"
    if block and cost is not None:
        other = [c.currency for c in today.costs if c.currency != cost.currency]
        if today.without_cost or other:
            return USAGE_UNREPORTED, _unreported("cost", today.without_cost, other, cost.currency)
    if block and limits.tokens is not None and today.without_tokens:
        return USAGE_UNREPORTED, _unreported("tokens", today.without_tokens, [], "")
    return None


def _unreported(what: str, count: int, other: list[str], currency: str) -> str:
    parts = []
    if count:
        parts.append(f"{count} attempt(s) today reported no {what}")
    if other:
        parts.append(f"attempts reported costs in {', '.join(other)}, not {currency}")
    return "; ".join(parts) + " (budget.unreportedUsage: Block)"


def _available(budget: BudgetSpec, today: UsageTotals) -> str:
    limits = budget.per_day
    parts = []
    if limits.attempts is not None:
        parts.append(f"{today.attempts} of {limits.attempts} attempts")
    if limits.tokens is not None:
        parts.append(f"{today.input_tokens + today.output_tokens} of {limits.tokens} tokens")
    if limits.cost is not None:
        spent = format_amount(today.cost_in(limits.cost.currency))
        parts.append(f"{spent} of {limits.cost.amount} {limits.cost.currency}")
    return "used today: " + ", ".join(parts)


@dataclass(frozen=True)
class Accounted:
    """What an owner's reconcile knows of usage: its days now, and today's budget (None: no
    budget). `events`: the budget's transition, if any."""

    usage: OwnerUsage
    decision: BudgetDecision | None
    events: tuple[Event, ...]

    @property
    def room(self) -> int | None:
        """How many new Goals may start (None: the budget sets no bound)."""
        return None if self.decision is None else self.decision.room

    def status_fields(self) -> tuple[dict[str, Any], tuple[str, ...]]:
        """(fields to set, fields to unset) on the owner's status (no `usage` before any)."""
        fields: dict[str, Any] = {}
        unset: list[str] = []
        if self.usage.days or self.usage.counted:
            fields["usage"] = self.usage
        else:
            unset.append("usage")
        if self.decision is None:
            unset.append("budget")
        else:
            fields["budget"] = self.decision.status
        return fields, tuple(unset)


def account(
    usage: OwnerUsage | None,
    budget: BudgetSpec | None,
    previous: BudgetStatus | None,
    goals: Sequence[Mapping[str, Any]],
    now: datetime,
) -> Accounted:
    """Fold the owner's `goals` into its `usage` and decide today's `budget` (`previous`: the
    budget its status said, for the events)."""
    folded = fold_goals(usage, goals, now)
    in_flight = sum(1 for goal in goals if phase_of(goal) not in FINAL_PHASES)
    decision = decide(budget, today_of(folded, now), in_flight=in_flight, now=now)
    return Accounted(folded, decision, tuple(budget_events(previous, decision)))


def budget_events(previous: BudgetStatus | None, decision: BudgetDecision | None) -> list[Event]:
    """An event when the budget turns spent (or spent again on a new day), or available again;
    none while it stays as it was."""
    if decision is None:
        return []
    now = decision.status
    was_spent = previous is not None and previous.exhausted and previous.day == now.day
    if now.exhausted and not was_spent:
        return [Event("Warning", BUDGET_EXHAUSTED, now.message)]
    if not now.exhausted and previous is not None and previous.exhausted:
        return [Event("Normal", BUDGET_AVAILABLE, f"new Goals may start again; {now.message}")]
    return []
