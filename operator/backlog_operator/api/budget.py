"""A daily budget of a Backlog or a GoalSchedule (`spec.budget`), and how its status says it.

```yaml
budget:
  perDay:
    cost: {amount: "25.00", currency: USD}
    tokens: 5000000
    attempts: 40
  unreportedUsage: Block      # or Allow
```

Days are UTC days. Once one limit is reached, no new Goal starts until the next day; Goals
already started run on (their retries too). The rule for attempts whose task reported no usage
is `unreportedUsage` (docs/operator.md, "Budgets").
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from backlog_operator.api.admission import Rule, validations
from backlog_operator.api.common import ApiModel
from backlog_operator.api.usage import MAX_SUM, Cost

PER_DAY_NOT_EMPTY = Rule(
    rule="has(self.cost) || has(self.tokens) || has(self.attempts)",
    message="budget.perDay must set at least one of cost, tokens or attempts",
)


class DailyBudget(ApiModel):
    """What the Goals may use in one UTC day; any limit reached stops new Goals that day."""

    model_config = ApiModel.model_config | ConfigDict(
        json_schema_extra=validations(PER_DAY_NOT_EMPTY)
    )

    cost: Cost | None = Field(
        default=None,
        description=(
            "The cost the tasks report, in one currency. An attempt that reports a cost in "
            "another currency counts as reporting none."
        ),
    )
    tokens: int | None = Field(
        default=None, ge=0, le=MAX_SUM, description="Input and output tokens together."
    )
    attempts: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SUM,
        description=(
            "Attempts that ended this day, plus one for each Goal still running or waiting "
            "(its next attempt); every attempt counts, whatever it reported."
        ),
    )

    @model_validator(mode="after")
    def _not_empty(self) -> DailyBudget:
        if self.cost is None and self.tokens is None and self.attempts is None:
            raise ValueError(PER_DAY_NOT_EMPTY.message)
        return self


class BudgetSpec(ApiModel):
    """`spec.budget`: the daily budget, and how attempts that report no usage count."""

    per_day: DailyBudget = Field(description="The limits of one UTC day.")
    unreported_usage: Literal["Block", "Allow"] = Field(
        default="Block",
        description=(
            "With a cost (or tokens) limit: an attempt whose task ran and reported no cost (or "
            "no tokens) makes the day's budget count as spent (`Block`, fail closed), or counts "
            "as costing nothing (`Allow`). Attempts whose task never ran (the clone failed, the "
            "task was already completed, its image or a Secret was missing) report nothing and "
            "count as costing nothing."
        ),
    )


class BudgetStatus(ApiModel):
    """Where today's budget stands; written only by the operator."""

    exhausted: bool = Field(description="True: no new Goal starts until `resumeTime`.")
    reason: str = Field(
        description=(
            "Available, or why it is spent: AttemptsSpent, TokensSpent, CostSpent, UsageUnreported."
        )
    )
    message: str = Field(default="", description="The same, for people, with the figures.")
    day: str = Field(description="The UTC day this is about (YYYY-MM-DD).")
    resume_time: datetime | None = Field(
        default=None, description="When new Goals may start again: the next UTC midnight."
    )
