"""What a task reports it used, and the sums the operator keeps of it. Pure: no I/O.

A task may write a small JSON file (its path is in `BACKLOG_USAGE_FILE`, see docs/worker.md):

    {"model": "gpt-5", "inputTokens": 12000, "outputTokens": 800,
     "cost": {"amount": 0.42, "currency": "USD"}, "durationSeconds": 95.5,
     "counters": {"toolCalls": 31}}

`parse_usage` reads its bytes. The file is the task's, and the task is untrusted: every field is
checked on its own (a field that does not hold is left out and named in a warning), nothing of
the file's content is ever repeated in a warning, and nothing in it can fail the attempt.

The models here are shared by the worker's result (`TaskUsage`), the Goal's status (one
`AttemptUsage` per attempt and their `UsageTotals`) and the Backlog's and GoalSchedule's status
(`DailyUsage` per UTC day). Costs are decimal strings (`"0.42"`), summed exactly, never floats.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from pydantic import Field, field_validator

from backlog_operator.api.common import ApiModel

# The bounds and the file's checks need no pydantic (a worker step runs them): they are defined
# in `usage_rules`, and importable from here.
from backlog_operator.api.usage_rules import COUNTER_NAME_PATTERN as COUNTER_NAME_PATTERN
from backlog_operator.api.usage_rules import CURRENCY_PATTERN as CURRENCY_PATTERN
from backlog_operator.api.usage_rules import DATE_PATTERN as DATE_PATTERN
from backlog_operator.api.usage_rules import DECIMAL_MAX_LENGTH as DECIMAL_MAX_LENGTH
from backlog_operator.api.usage_rules import DECIMAL_PATTERN as DECIMAL_PATTERN
from backlog_operator.api.usage_rules import MAX_ATTEMPT_RECORDS as MAX_ATTEMPT_RECORDS
from backlog_operator.api.usage_rules import MAX_COUNTER as MAX_COUNTER
from backlog_operator.api.usage_rules import MAX_COUNTERS as MAX_COUNTERS
from backlog_operator.api.usage_rules import MAX_CURRENCIES as MAX_CURRENCIES
from backlog_operator.api.usage_rules import MAX_DURATION_SECONDS as MAX_DURATION_SECONDS
from backlog_operator.api.usage_rules import MAX_SUM as MAX_SUM
from backlog_operator.api.usage_rules import MAX_TOKENS as MAX_TOKENS
from backlog_operator.api.usage_rules import MAX_USAGE_WARNINGS as MAX_USAGE_WARNINGS
from backlog_operator.api.usage_rules import MODEL_MAX_LENGTH as MODEL_MAX_LENGTH
from backlog_operator.api.usage_rules import RETAINED_DAYS as RETAINED_DAYS
from backlog_operator.api.usage_rules import USAGE_FILE_MAX_BYTES as USAGE_FILE_MAX_BYTES
from backlog_operator.api.usage_rules import format_amount as format_amount
from backlog_operator.api.usage_rules import parse_amount as parse_amount
from backlog_operator.api.usage_rules import usage_fields

_COUNTER_NAME = re.compile(COUNTER_NAME_PATTERN)


class Cost(ApiModel):
    """An amount of money: a decimal string and its currency."""

    amount: str = Field(
        pattern=DECIMAL_PATTERN,
        max_length=DECIMAL_MAX_LENGTH,
        description='A non-negative decimal in plain notation, such as "0.42" (at most 9 places).',
    )
    currency: str = Field(
        pattern=CURRENCY_PATTERN, description="An ISO 4217 code: three capital letters (USD)."
    )

    @property
    def value(self) -> Decimal:
        """The amount as a Decimal."""
        return parse_amount(self.amount)


class TaskUsage(ApiModel):
    """What a task reported for one attempt (its usage file, checked); carried in the result."""

    model: str | None = Field(
        default=None, max_length=MODEL_MAX_LENGTH, description="The model the task used."
    )
    input_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    output_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    cost: Cost | None = Field(default=None, description="What the attempt cost.")
    duration_seconds: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DURATION_SECONDS,
        allow_inf_nan=False,
        description="How long the task says it worked.",
    )
    counters: dict[str, int] = Field(
        default_factory=dict,
        max_length=MAX_COUNTERS,
        description="Free-form counts the task reported (tool calls, files read, ...).",
    )
    warnings: list[str] = Field(
        default_factory=list,
        max_length=MAX_USAGE_WARNINGS,
        description="What was wrong with the usage file (fields left out, or all of it).",
    )

    @field_validator("counters")
    @classmethod
    def _counter_names_and_values(cls, counters: dict[str, int]) -> dict[str, int]:
        for name, value in counters.items():
            if not _COUNTER_NAME.fullmatch(name) or not 0 <= value <= MAX_COUNTER:
                raise ValueError(f"counter names match {COUNTER_NAME_PATTERN}, values 0..1e15")
        return counters

    @property
    def reports_tokens(self) -> bool:
        """Whether token counts were reported."""
        return self.input_tokens is not None or self.output_tokens is not None


class UsageTotals(ApiModel):
    """Usage summed over attempts (a Goal's, or a day's of a Backlog or GoalSchedule)."""

    attempts: int = Field(default=0, ge=0, description="Attempts that ended.")
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    costs: list[Cost] = Field(
        default_factory=list,
        max_length=MAX_CURRENCIES,
        description="What the attempts cost, one entry per currency.",
    )
    duration_seconds: float = Field(default=0, ge=0, allow_inf_nan=False)
    counters: dict[str, int] = Field(
        default_factory=dict,
        max_length=MAX_COUNTERS,
        description="The attempts' counters summed (the first 16 names met).",
    )
    without_cost: int = Field(
        default=0,
        ge=0,
        description=(
            "Attempts whose task ran (or may have) and reported no cost: no usage file, a "
            "malformed one, a task that failed in a Job (publish, which reads the file, does "
            "not run then), or a cost in a fifth currency."
        ),
    )
    without_tokens: int = Field(
        default=0, ge=0, description="Attempts whose task ran (or may have) and reported no tokens."
    )

    def cost_in(self, currency: str) -> Decimal:
        """The summed cost in `currency` (0 when none was reported in it)."""
        return sum(
            (cost.value for cost in self.costs if cost.currency == currency), start=Decimal(0)
        )


class AttemptUsage(TaskUsage):
    """One ended attempt's usage, as the Goal's status lists it."""

    number: int = Field(
        ge=1, description="The attempt's number over all of the Goal's runs (1, 2, ...)."
    )
    attempt_id: str | None = Field(default=None, description="The attempt's id.")
    end_time: datetime = Field(description="When the operator saw the attempt end.")
    task_ran: bool = Field(
        default=True,
        description=(
            "False when the task cannot have run: the clone step failed, the task was "
            "already completed, or its image (or a Secret of the Pod) was missing. Such an "
            "attempt has nothing to report."
        ),
    )


class GoalUsage(ApiModel):
    """A Goal's usage: its latest attempts one by one, and the sum over all of them."""

    attempts: list[AttemptUsage] = Field(
        default_factory=list,
        max_length=MAX_ATTEMPT_RECORDS,
        description="The latest attempts (at most 10), oldest first.",
    )
    total: UsageTotals = Field(
        default_factory=UsageTotals, description="Every attempt of every run."
    )


class DailyUsage(UsageTotals):
    """The usage of the attempts that ended on one UTC day."""

    date: str = Field(pattern=DATE_PATTERN, description="The UTC day, YYYY-MM-DD.")


class CountedGoal(ApiModel):
    """How many of a Goal's attempts are in the days already (so none is counted twice)."""

    uid: str = Field(description="The Goal's uid.")
    attempts: int = Field(ge=0, description="Its attempts counted so far.")


class OwnerUsage(ApiModel):
    """The usage of a Backlog's (or a GoalSchedule's) Goals, per UTC day."""

    days: list[DailyUsage] = Field(
        default_factory=list,
        max_length=RETAINED_DAYS,
        description="The last 7 UTC days with usage, oldest first.",
    )
    counted: list[CountedGoal] = Field(
        default_factory=list,
        description="Bookkeeping: how much of each existing Goal's usage `days` holds.",
    )


# ---------------------------------------------------------------------------- the usage file


def parse_usage(data: bytes) -> TaskUsage:
    """The usage in a usage file's bytes: the fields that hold, and warnings for the rest.

    Never raises. The warnings name fields and problems, never the file's content. The checks
    are `usage_rules.usage_fields`' (a worker step runs them without pydantic).
    """
    return TaskUsage.model_validate(usage_fields(data))
