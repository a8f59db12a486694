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

import json
import re
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from pydantic import Field, field_validator

from backlog_operator.api.common import ApiModel

# The file: bytes read at most, then the bounds of each field.
USAGE_FILE_MAX_BYTES = 16 * 1024
MAX_NESTING = 8  # the usage object is 2 deep (counters, cost); JSON nested deeper is refused
MODEL_MAX_LENGTH = 128
MAX_TOKENS = 10**15  # per attempt; far beyond any model's window, well inside int64
MAX_COST = Decimal(10**9)  # per attempt, in the currency's units
MAX_DURATION_SECONDS = 10**7  # about 115 days
MAX_COUNTERS = 16
MAX_COUNTER = 10**15
COUNTER_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$"
MAX_USAGE_WARNINGS = 3
USAGE_WARNING_LENGTH = 200
# An ISO 4217 code: three capital letters (USD, EUR). Compared as written with a budget's.
CURRENCY_PATTERN = r"^[A-Z]{3}$"
# A non-negative decimal in plain notation, at most 9 places: how amounts are written and read.
COST_PLACES = 9
DECIMAL_PATTERN = r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,9})?$"
DECIMAL_MAX_LENGTH = 28
# Sums stop here rather than overflow an int64 (or the decimal pattern's 18 digits).
MAX_SUM = 10**18 - 1
# Currencies summed apart in one total; an attempt in a further one counts as reporting no cost.
MAX_CURRENCIES = 4
# Attempts a Goal's status lists one by one (the newest); its total counts them all.
MAX_ATTEMPT_RECORDS = 10
# UTC days a Backlog's (or GoalSchedule's) status keeps, today included.
RETAINED_DAYS = 7
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

_COUNTER_NAME = re.compile(COUNTER_NAME_PATTERN)
_CURRENCY = re.compile(CURRENCY_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_KNOWN = ("model", "inputTokens", "outputTokens", "cost", "durationSeconds", "counters")


def format_amount(amount: Decimal) -> str:
    """`amount` as DECIMAL_PATTERN writes it: plain notation, at most 9 places, no trailing 0."""
    rounded = amount.quantize(Decimal(1).scaleb(-COST_PLACES), rounding=ROUND_HALF_EVEN)
    text = format(rounded, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def parse_amount(text: str) -> Decimal:
    """The Decimal of an amount written as DECIMAL_PATTERN says (a model validated it)."""
    return Decimal(text)


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
            if not _COUNTER_NAME.match(name) or not 0 <= value <= MAX_COUNTER:
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

    Never raises. The warnings name fields and problems, never the file's content.
    """
    if len(data) > USAGE_FILE_MAX_BYTES:
        return _refused(f"is larger than {USAGE_FILE_MAX_BYTES} bytes")
    if _nesting(data) > MAX_NESTING:
        # Refused before parsing: the parser's own bound is the interpreter's recursion limit.
        return _refused(f"is nested deeper than {MAX_NESTING} levels")
    try:
        document = json.loads(
            data.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constant
        )
    except UnicodeDecodeError:
        return _refused("is not UTF-8 text")
    except ValueError:  # JSONDecodeError, NaN or Infinity, an integer of too many digits
        return _refused("is not valid JSON (NaN and Infinity are not numbers here)")
    if not isinstance(document, dict):
        return _refused("is not a JSON object")
    fields: dict[str, Any] = {}
    warnings: list[str] = []
    for key, check in _CHECKS.items():
        if key not in document:
            continue
        value, problem = check(document[key])
        if problem is not None:
            warnings.append(f"{key} {problem}; left out")
        elif value is not None:
            fields[key] = value
    unknown = sum(1 for key in document if key not in _KNOWN)
    if unknown:
        warnings.append(f"{unknown} unknown field(s) ignored")
    return TaskUsage.model_validate({**fields, "warnings": _bounded_warnings(warnings)})


def _nesting(data: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text (brackets in strings skipped);
    one pass, no recursion, whatever the text holds."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _refused(problem: str) -> TaskUsage:
    return TaskUsage(warnings=[f"the usage file {problem}; no usage read"])


def _bounded_warnings(warnings: list[str]) -> list[str]:
    cut = [
        text[: USAGE_WARNING_LENGTH - 1] + "…" if len(text) > USAGE_WARNING_LENGTH else text
        for text in warnings
    ]
    if len(cut) <= MAX_USAGE_WARNINGS:
        return cut
    return [*cut[: MAX_USAGE_WARNINGS - 1], f"and {len(cut) - MAX_USAGE_WARNINGS + 1} more"]


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


Checked = tuple[Any, str | None]


def _whole(value: object, limit: int) -> Checked:
    """A non-negative integer up to `limit` (an integral decimal such as 12.0 too)."""
    if isinstance(value, bool):
        return None, "must be a number"
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            return None, "must be a whole number"
        value = int(value)
    if not isinstance(value, int):
        return None, "must be a number"
    if not 0 <= value <= limit:
        return None, f"must be between 0 and {limit:.0e}"
    return value, None


def _tokens(value: object) -> Checked:
    return _whole(value, MAX_TOKENS)


def _model(value: object) -> Checked:
    if not isinstance(value, str):
        return None, "must be a string"
    if not value or len(value) > MODEL_MAX_LENGTH or _CONTROL.search(value):
        return None, f"must be 1 to {MODEL_MAX_LENGTH} printable characters"
    return value, None


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    number = Decimal(value)
    return number if number.is_finite() else None


def _cost(value: object) -> Checked:
    if not isinstance(value, dict):
        return None, 'must be an object {"amount": number, "currency": "USD"}'
    amount, currency = _number(value.get("amount")), value.get("currency")
    if amount is None or not 0 <= amount <= MAX_COST:
        return None, f"amount must be a number between 0 and {MAX_COST:.0e}"
    if not isinstance(currency, str) or not _CURRENCY.match(currency.upper()):
        return None, "currency must be an ISO 4217 code such as USD"
    if set(value) - {"amount", "currency"}:
        return None, "must have only amount and currency"
    return Cost(amount=format_amount(amount), currency=currency.upper()), None


def _duration(value: object) -> Checked:
    number = _number(value)
    if number is None or not 0 <= number <= MAX_DURATION_SECONDS:
        return None, f"must be a number of seconds between 0 and {MAX_DURATION_SECONDS:.0e}"
    return round(float(number), 3), None


def _counters(value: object) -> Checked:
    if not isinstance(value, dict):
        return None, "must be an object of names to whole numbers"
    if len(value) > MAX_COUNTERS:
        return None, f"must have at most {MAX_COUNTERS} entries"
    counters = {}
    for name, count in value.items():
        if not _COUNTER_NAME.match(name):
            return None, f"names must match {COUNTER_NAME_PATTERN}"
        checked, problem = _whole(count, MAX_COUNTER)
        if problem is not None:
            return None, f"values {problem}"
        counters[name] = checked
    return counters, None


_CHECKS = {
    "model": _model,
    "inputTokens": _tokens,
    "outputTokens": _tokens,
    "cost": _cost,
    "durationSeconds": _duration,
    "counters": _counters,
}
