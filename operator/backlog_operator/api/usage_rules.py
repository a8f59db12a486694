"""The checks of a task's usage file, in plain code: no pydantic to import. Pure: no I/O.

A worker step reads the usage file (`worker.usage_file`) and puts what `usage_data` makes of
it into its result, in the JSON form of the operator's model `api.usage.TaskUsage`, which
`api.usage.parse_usage` validates it with (and `tests/unit/test_usage.py` holds the two
together). The bounds here are the model's too.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

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

# fullmatch, never match: pydantic's patterns read `$` as the end of the text, where Python's
# `re` also lets it match before a final line break ("USD\n" would pass here, then fail the
# model).
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


# ---------------------------------------------------------------------------- the usage file


def usage_data(data: bytes) -> dict[str, Any]:
    """The usage in a usage file's bytes as `api.usage.TaskUsage` writes it in JSON (its
    defaults, empty counters and warnings, always there): what a step's result carries.

    Never raises. The warnings name fields and problems, never the file's content.
    """
    return as_written(usage_fields(data))


def as_written(fields: dict[str, Any]) -> dict[str, Any]:
    """`usage_fields`' fields as the model writes them: in its order, with its defaults."""
    written = {key: value for key, value in fields.items() if key != "warnings"}
    return {**written, "counters": fields.get("counters", {}), "warnings": fields["warnings"]}


def usage_fields(data: bytes) -> dict[str, Any]:
    """The fields of a usage file's bytes that hold (camelCase), and `warnings` for the rest.

    Never raises. The warnings name fields and problems, never the file's content.
    """
    if len(data) > USAGE_FILE_MAX_BYTES:
        return refused(f"is larger than {USAGE_FILE_MAX_BYTES} bytes")
    if _nesting(data) > MAX_NESTING:
        # Refused before parsing: the parser's own bound is the interpreter's recursion limit.
        return refused(f"is nested deeper than {MAX_NESTING} levels")
    try:
        document = json.loads(
            data.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constant
        )
    except UnicodeDecodeError:
        return refused("is not UTF-8 text")
    except ValueError:  # JSONDecodeError, NaN or Infinity, an integer of too many digits
        return refused("is not valid JSON (NaN and Infinity are not numbers here)")
    if not isinstance(document, dict):
        return refused("is not a JSON object")
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
    return {**fields, "warnings": _bounded_warnings(warnings)}


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


def refused(problem: str) -> dict[str, Any]:
    """The usage of a file refused whole: a warning, no field."""
    return {"warnings": [f"the usage file {problem}; no usage read"]}


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
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency.upper()):
        return None, "currency must be an ISO 4217 code such as USD"
    if set(value) - {"amount", "currency"}:
        return None, "must have only amount and currency"
    # -0 is 0 (written "-0" it would not be an amount the model reads).
    return {"amount": format_amount(abs(amount)), "currency": currency.upper()}, None


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
        if not _COUNTER_NAME.fullmatch(name):
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
