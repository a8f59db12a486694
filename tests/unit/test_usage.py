"""Task usage: the usage file's checks, the sums per Goal and per UTC day, and daily budgets.

Pure functions with a controlled clock: `parse_usage` (what a hostile task can put in the file,
none of which fails anything or is echoed back), `record_attempt` (a Goal's attempts and
total), `fold_goals` (an owner's days, no attempt counted twice, none lost with a deleted Goal),
`decide` (the budget: each limit, the rule for unreported usage, the day's rollover) and
`budget_events` (on transitions only).
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from backlog_operator.api.budget import BudgetSpec
from backlog_operator.api.result import MAX_RESULT_BYTES, Outcome, WorkerResult, failure
from backlog_operator.api.usage import (
    MAX_ATTEMPT_RECORDS,
    MAX_COUNTERS,
    RETAINED_DAYS,
    USAGE_FILE_MAX_BYTES,
    Cost,
    GoalUsage,
    OwnerUsage,
    TaskUsage,
    UsageTotals,
    parse_usage,
)
from backlog_operator.api.usage_rules import usage_data
from backlog_operator.controller.status import to_wire
from backlog_operator.controller.usage import (
    all_counted,
    decide,
    fold_goals,
    next_midnight,
    record_attempt,
    settled,
    task_ran,
    today_of,
)
from backlog_operator.controller.usage import budget_events as events_for

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SECRET = "ghp_0123456789abcdefSECRET"

FULL = {
    "model": "gpt-5.1-codex",
    "inputTokens": 12000,
    "outputTokens": 800,
    "cost": {"amount": 0.42, "currency": "USD"},
    "durationSeconds": 95.5,
    "counters": {"toolCalls": 31, "files.read": 12},
}


def usage_of(document: Any) -> TaskUsage:
    return parse_usage(json.dumps(document).encode())


# ------------------------------------------------------------------------ the usage file


def test_a_full_usage_file_is_read_whole() -> None:
    usage = usage_of(FULL)

    assert usage.model_dump(by_alias=True, exclude_none=True) == {
        "model": "gpt-5.1-codex",
        "inputTokens": 12000,
        "outputTokens": 800,
        "cost": {"amount": "0.42", "currency": "USD"},
        "durationSeconds": 95.5,
        "counters": {"toolCalls": 31, "files.read": 12},
        "warnings": [],
    }


def test_amounts_are_exact_decimals_rounded_to_nine_places() -> None:
    text = b'{"cost": {"amount": 0.1000000004999, "currency": "eur"}, "inputTokens": 1e3}'
    usage = parse_usage(text)

    assert usage.cost == Cost(amount="0.1", currency="EUR")  # 0.1, not 0.1000000000000000055
    assert usage.input_tokens == 1000


@pytest.mark.parametrize(
    ("document", "left_out"),
    [
        ({"model": 7}, "model must be a string"),
        ({"model": "x" * 129}, "model must be 1 to 128"),
        ({"model": "gpt\x1b[31m"}, "model must be 1 to 128 printable"),
        ({"inputTokens": -1}, "inputTokens must be between 0"),
        ({"inputTokens": 10**16}, "inputTokens must be between 0"),
        ({"inputTokens": "12"}, "inputTokens must be a number"),
        ({"inputTokens": True}, "inputTokens must be a number"),
        ({"outputTokens": 1.5}, "outputTokens must be a whole number"),
        ({"cost": 0.42}, "cost must be an object"),
        ({"cost": {"amount": "0.42", "currency": "USD"}}, "cost amount must be a number"),
        ({"cost": {"amount": -0.01, "currency": "USD"}}, "cost amount must be a number"),
        ({"cost": {"amount": 1e10, "currency": "USD"}}, "cost amount must be a number"),
        ({"cost": {"amount": 1, "currency": "dollars"}}, "cost currency must be an ISO 4217"),
        ({"cost": {"amount": 1}}, "cost currency must be an ISO 4217"),
        ({"cost": {"amount": 1, "currency": "USD", "x": 1}}, "cost must have only amount"),
        ({"durationSeconds": -3}, "durationSeconds must be a number of seconds"),
        ({"durationSeconds": [1]}, "durationSeconds must be a number of seconds"),
        ({"counters": [1, 2]}, "counters must be an object"),
        ({"counters": {"bad name": 1}}, "counters names must match"),
        ({"counters": {"ok": -1}}, "counters values must be between 0"),
        ({"counters": {"ok": 0.5}}, "counters values must be a whole number"),
        ({"counters": {f"c{n}": 1 for n in range(17)}}, "counters must have at most 16"),
    ],
)
def test_a_field_that_does_not_hold_is_left_out_with_a_warning(
    document: dict[str, Any], left_out: str
) -> None:
    usage = usage_of(
        {**document, "outputTokens": 5} if "outputTokens" not in document else document
    )

    assert any(warning.startswith(left_out) for warning in usage.warnings), usage.warnings
    field = next(iter(document))
    assert field not in usage.model_dump(by_alias=True, exclude_unset=True)
    assert "outputTokens" in document or usage.output_tokens == 5  # the others stay


def test_the_other_fields_stay_when_one_is_wrong() -> None:
    usage = usage_of({**FULL, "cost": {"amount": "lots", "currency": "USD"}})

    assert usage.cost is None
    assert (usage.input_tokens, usage.output_tokens, usage.model) == (12000, 800, FULL["model"])


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"inputTokens": NaN}', "is not valid JSON"),
        (b'{"cost": {"amount": Infinity, "currency": "USD"}}', "is not valid JSON"),
        (b'{"durationSeconds": -Infinity}', "is not valid JSON"),
        (b'{"inputTokens": ' + b"9" * 5000 + b"}", "is not valid JSON"),
        (b"[" * 8000 + b"]" * 8000, "is nested deeper than 8 levels"),
        (b'{"a":' * 2000 + b"1" + b"}" * 2000, "is nested deeper than 8 levels"),
        (b'{"a": [[[[[[[[1]]]]]]]]}', "is nested deeper than 8 levels"),
        (b"\xff\xfe{}", "is not UTF-8"),
        (b'["inputTokens", 3]', "is not a JSON object"),
        (b'"gpt"', "is not a JSON object"),
        (b"", "is not valid JSON"),
        (b"{" + b" " * USAGE_FILE_MAX_BYTES + b"}", "is larger than 16384 bytes"),
    ],
)
def test_a_malformed_file_is_a_warning_and_no_usage(data: bytes, problem: str) -> None:
    usage = parse_usage(data)

    [warning] = usage.warnings
    assert problem in warning
    assert usage.model_dump(exclude_unset=True, exclude={"warnings"}) == {}


def test_deep_nesting_is_refused_whatever_the_recursion_limit() -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)  # the parser alone would then go 8,000 deep
    try:
        usage = parse_usage(b"[" * 8000 + b"]" * 8000)
    finally:
        sys.setrecursionlimit(limit)

    assert usage.warnings == ["the usage file is nested deeper than 8 levels; no usage read"]


def test_brackets_in_strings_are_not_nesting() -> None:
    usage = parse_usage(b'{"model": "[[[[[[[[[[\\"{{{{{{{{{{", "inputTokens": 3}')

    assert (usage.model, usage.input_tokens, usage.warnings) == ('[[[[[[[[[["{{{{{{{{{{', 3, [])


def test_warnings_never_repeat_what_the_file_holds() -> None:
    document = {
        SECRET: 1,
        "model": SECRET + "\x00",
        "counters": {SECRET + " x": 1},
        "cost": {"amount": SECRET, "currency": SECRET},
        "inputTokens": SECRET,
    }

    usage = usage_of(document)

    assert SECRET not in json.dumps(usage.model_dump())
    assert len(usage.warnings) == 3  # bounded, the rest summed up
    assert usage.warnings[-1] == "and 3 more"


# ---------------------------------------------------------------------------- the result


# What the file's checks are held to: documents near every bound, and generated ones.
NEAR_THE_BOUNDS: list[Any] = [
    FULL,
    {},
    {"model": "x" * 128},
    {"model": "x" * 129},
    {"model": "gpt\n"},
    {"inputTokens": 10**15, "outputTokens": 0},
    {"inputTokens": 1e15},
    {"cost": {"amount": -0.0, "currency": "usd"}},
    {"cost": {"amount": 1e9, "currency": "EUR"}},
    {"cost": {"amount": 0.0000000001, "currency": "EUR"}},
    {"cost": {"amount": 1, "currency": "usd\n"}},
    {"cost": {"amount": 1, "currency": "US"}},
    {"durationSeconds": -0.0},
    {"durationSeconds": 1e7},
    {"durationSeconds": 0.0004},
    {"counters": {"ok\n": 1}},
    {"counters": {f"c{n}": 10**15 for n in range(16)}},
    {"counters": {"x" * 63: 1}},
    {"counters": {"x" * 64: 1}},
    {"other": 1, "more": 2, "model": 3, "inputTokens": -1, "cost": 1, "counters": 2},
]


def generated_documents(count: int) -> list[Any]:
    """Usage documents drawn from values that hold and values that do not, field by field."""
    pool: list[Any] = [0, -0.0, 1, 1.5, -1, 1e3, 10**15, 10**16, True, None, "x", "", [], {}]
    costs: list[Any] = [
        {"amount": amount, "currency": currency}
        for amount in (0, -0.0, 0.42, 1e-10, 1e9, 1e10, "1")
        for currency in ("USD", "usd", "usd\n", "EURO", 3)
    ]
    counters: list[Any] = [{"a": 1}, {"a\n": 1}, {"1a": 1}, {"a": -1}, {"a": 2.0}, {"a": 0.5}]
    rng = random.Random(7)
    documents = []
    for _ in range(count):
        document = {
            "model": rng.choice([*pool, "gpt-5", "gpt\t", "m" * 128, "m" * 129]),
            "inputTokens": rng.choice(pool),
            "outputTokens": rng.choice(pool),
            "cost": rng.choice([*pool, *costs]),
            "durationSeconds": rng.choice([*pool, 1e7, 1e7 + 1, 0.0005]),
            "counters": rng.choice([*pool, *counters]),
            "extra": 1,
        }
        documents.append({key: value for key, value in document.items() if rng.random() < 0.6})
    return documents


def test_the_files_checks_give_what_the_model_reads_back() -> None:
    # A worker step checks the file with `usage_data` (no pydantic), the operator reads what it
    # wrote with TaskUsage: whatever the file, the two agree, and the model never refuses it.
    for document in [*NEAR_THE_BOUNDS, *generated_documents(400)]:
        plain = usage_data(json.dumps(document).encode())

        model = TaskUsage.model_validate(plain)

        assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == plain, document
        assert json.loads(json.dumps(plain)) == plain  # plain JSON values only


def test_usage_in_a_result_that_must_shrink_keeps_its_figures() -> None:
    usage = usage_of(
        {**FULL, "counters": {f"counter.{n:02d}.{'x' * 50}": 10**15 for n in range(MAX_COUNTERS)}}
    )
    result = WorkerResult(
        outcome=Outcome.PUBLISHED,
        task_id="t",
        changed_files=[f"docs/{'x' * 60}-{n}.md" for n in range(200)],
        warnings=["w" * 500] * 10,
        message="m" * 3000,
        usage=usage.model_copy(update={"warnings": ["u" * 200] * 3}),
    )

    text = result.to_json()

    assert len(text.encode()) <= MAX_RESULT_BYTES
    back = WorkerResult.from_json(text)
    assert back.usage is not None
    assert (back.usage.input_tokens, back.usage.cost) == (12000, usage.cost)
    assert back.usage.model == FULL["model"]


def test_a_result_without_usage_has_no_usage_key() -> None:
    assert "usage" not in json.loads(WorkerResult(outcome=Outcome.PUBLISHED).to_json())


# ----------------------------------------------------------------------- a Goal's attempts


def published(usage: TaskUsage | None = None) -> WorkerResult:
    return WorkerResult(outcome=Outcome.PUBLISHED, step="publish", usage=usage)


def test_each_ended_attempt_is_numbered_and_summed() -> None:
    first = record_attempt(
        None,
        failure("TaskFailed", "exit 1", retryable=True, step="task"),
        attempt_id="a-1",
        now=NOW,
    )
    second = record_attempt(
        first, published(usage_of(FULL)), attempt_id="a-2", now=NOW + timedelta(minutes=5)
    )

    assert [(a.number, a.attempt_id, a.task_ran) for a in second.attempts] == [
        (1, "a-1", True),
        (2, "a-2", True),
    ]
    total = second.total
    assert (total.attempts, total.input_tokens, total.output_tokens) == (2, 12000, 800)
    assert total.costs == [Cost(amount="0.42", currency="USD")]
    assert (total.without_cost, total.without_tokens) == (1, 1)  # the failed task's
    assert total.counters == {"toolCalls": 31, "files.read": 12}
    assert to_wire(second)["attempts"][1]["endTime"] == "2026-03-02T12:05:00Z"


def test_an_attempt_whose_task_never_ran_is_not_unreported() -> None:
    clone_failed = failure("RepositoryUnreachable", "down", retryable=True, step="clone")
    done = WorkerResult(outcome=Outcome.ALREADY_COMPLETED, step="publish")
    lost = failure("JobMissing", "gone", retryable=True)  # may have run: fail closed

    usage = None
    for result in (clone_failed, done, lost):
        usage = record_attempt(usage, result, attempt_id=None, now=NOW)

    assert usage is not None
    assert [a.task_ran for a in usage.attempts] == [False, False, True]
    assert (usage.total.attempts, usage.total.without_cost, usage.total.without_tokens) == (
        3,
        1,
        1,
    )


@pytest.mark.parametrize(
    ("result", "ran"),
    [
        (failure("ImagePullFailed", "no image", retryable=True, step="task"), False),
        (failure("InvalidImageName", "bad", retryable=False, step="task"), False),
        (failure("SecretNotFound", "no secret", retryable=False, step="clone"), False),
        (failure("SecretNotFound", "no secret", retryable=False), False),
        (failure("ImagePullFailed", "no image", retryable=True, step="publish"), True),
        (failure("TimedOut", "deadline", retryable=True), True),
        (failure("OutOfMemory", "oom", retryable=True, step="task"), True),
        (failure("PathViolation", "src/", retryable=False, step="publish"), True),
    ],
)
def test_whether_the_task_can_have_run(result: WorkerResult, ran: bool) -> None:
    assert task_ran(result) is ran


def test_a_goal_lists_its_latest_attempts_and_sums_them_all() -> None:
    usage = None
    for _ in range(MAX_ATTEMPT_RECORDS + 5):
        usage = record_attempt(
            usage, published(TaskUsage(input_tokens=10)), attempt_id=None, now=NOW
        )

    assert usage is not None
    assert [a.number for a in usage.attempts] == list(range(6, MAX_ATTEMPT_RECORDS + 6))
    assert (usage.total.attempts, usage.total.input_tokens) == (15, 150)


def test_costs_are_summed_per_currency_and_a_fifth_counts_as_unreported() -> None:
    usage = None
    for currency in ("USD", "EUR", "USD", "GBP", "JPY", "CHF"):
        cost = TaskUsage(cost=Cost(amount="0.1", currency=currency), input_tokens=1)
        usage = record_attempt(usage, published(cost), attempt_id=None, now=NOW)

    assert usage is not None
    assert {c.currency: c.amount for c in usage.total.costs} == {
        "USD": "0.2",
        "EUR": "0.1",
        "GBP": "0.1",
        "JPY": "0.1",
    }
    assert usage.total.without_cost == 1


# ---------------------------------------------------------------------- an owner's days


def goal(uid: str, usage: GoalUsage | None, phase: str = "Succeeded") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if usage is not None:
        status["usage"] = to_wire(usage)
    return {"metadata": {"name": uid, "uid": uid}, "status": status}


def attempts(count: int, when: datetime, **usage: Any) -> GoalUsage:
    recorded = None
    for _ in range(count):
        recorded = record_attempt(
            recorded, published(TaskUsage(**usage)), attempt_id=None, now=when
        )
    assert recorded is not None
    return recorded


def test_attempts_go_to_the_utc_day_they_ended_on_and_count_once() -> None:
    yesterday = NOW - timedelta(days=1)
    a = attempts(2, yesterday, input_tokens=100, cost=Cost(amount="1.5", currency="USD"))
    b = attempts(1, NOW, output_tokens=7)

    usage = fold_goals(None, [goal("a", a), goal("b", b)], NOW)
    again = fold_goals(usage, [goal("a", a), goal("b", b)], NOW + timedelta(minutes=5))

    assert again == usage
    assert [(d.date, d.attempts, d.input_tokens, d.output_tokens) for d in usage.days] == [
        ("2026-03-01", 2, 200, 0),
        ("2026-03-02", 1, 0, 7),
    ]
    assert usage.days[0].costs == [Cost(amount="3", currency="USD")]
    assert usage.days[1].without_cost == 1


def test_a_goals_new_attempts_are_added_to_what_was_counted() -> None:
    first = attempts(1, NOW, input_tokens=5)
    usage = fold_goals(None, [goal("a", first, phase="Queued")], NOW)
    more = record_attempt(first, published(TaskUsage(input_tokens=6)), attempt_id=None, now=NOW)

    usage = fold_goals(usage, [goal("a", more)], NOW)

    assert [(d.attempts, d.input_tokens) for d in usage.days] == [(2, 11)]
    assert [(c.uid, c.attempts) for c in usage.counted] == [("a", 2)]


def test_a_deleted_goal_keeps_its_usage_in_the_days() -> None:
    usage = fold_goals(None, [goal("a", attempts(3, NOW, input_tokens=1))], NOW)

    usage = fold_goals(usage, [], NOW)

    assert [(d.attempts, d.input_tokens) for d in usage.days] == [(3, 3)]
    assert usage.counted == []


def test_a_goal_is_settled_for_history_only_once_the_status_read_holds_its_attempts() -> None:
    ended = goal("a", attempts(2, NOW))
    never = goal("b", None, phase="Failed")
    before = OwnerUsage()

    after = fold_goals(before, [ended, never], NOW)

    assert not all_counted(before, ended)
    assert [settled(before)(g) for g in (ended, never)] == [False, True]
    assert all_counted(after, ended)


def test_attempts_a_goal_no_longer_lists_count_as_unreported_today() -> None:
    usage = attempts(MAX_ATTEMPT_RECORDS + 3, NOW - timedelta(hours=3), input_tokens=1)

    folded = fold_goals(None, [goal("a", usage)], NOW)

    [day] = folded.days
    assert (day.attempts, day.input_tokens, day.without_tokens) == (13, 10, 3)


def test_only_the_last_seven_days_are_kept() -> None:
    usage: OwnerUsage | None = None
    for back in range(10, -1, -1):
        when = NOW - timedelta(days=back)
        usage = fold_goals(usage, [goal(f"g{back}", attempts(1, when))], when)

    assert usage is not None
    assert [d.date for d in usage.days] == [
        (NOW - timedelta(days=back)).date().isoformat() for back in range(RETAINED_DAYS - 1, -1, -1)
    ]


# ---------------------------------------------------------------------------- the budget


def budget(unreported: str = "Block", **per_day: Any) -> BudgetSpec:
    return BudgetSpec.model_validate({"perDay": per_day, "unreportedUsage": unreported})


def day(**totals: Any) -> UsageTotals:
    return UsageTotals.model_validate(totals)


def test_no_budget_no_decision() -> None:
    assert decide(None, day(attempts=99), in_flight=5, now=NOW) is None


def test_attempts_count_those_ended_and_those_in_flight() -> None:
    limit = budget(attempts=5)

    roomy = decide(limit, day(attempts=2), in_flight=1, now=NOW)
    full = decide(limit, day(attempts=3), in_flight=2, now=NOW)

    assert roomy is not None and full is not None
    assert (roomy.exhausted, roomy.room, roomy.status.reason) == (False, 2, "Available")
    assert "3 of 5 attempts" not in roomy.status.message
    assert (full.exhausted, full.room, full.status.reason) == (True, 0, "AttemptsSpent")
    assert full.status.message.startswith("daily budget spent: 3 attempt(s) ended today")
    assert "and 2 running or waiting, of 5" in full.status.message
    assert full.status.resume_time == datetime(2026, 3, 3, tzinfo=UTC)


def test_tokens_are_input_and_output_together() -> None:
    decision = decide(
        budget(tokens=1000), day(input_tokens=900, output_tokens=100), in_flight=0, now=NOW
    )

    assert decision is not None
    assert (decision.exhausted, decision.status.reason, decision.room) == (True, "TokensSpent", 0)


def test_cost_is_compared_exactly_in_the_budgets_currency() -> None:
    limit = budget(cost={"amount": "0.3", "currency": "USD"})
    below = day(costs=[{"amount": "0.2", "currency": "USD"}])
    spent = day(costs=[{"amount": "0.1", "currency": "USD"}, {"amount": "0.2", "currency": "USD"}])

    not_yet = decide(limit, below, in_flight=3, now=NOW)
    done = decide(
        limit, day(costs=[{"amount": "0.30000", "currency": "USD"}]), in_flight=0, now=NOW
    )

    assert not_yet is not None and done is not None
    assert (not_yet.exhausted, not_yet.room) == (False, None)  # no attempts limit: no bound
    assert not_yet.status.message == "used today: 0.2 of 0.3 USD"
    assert (done.exhausted, done.status.reason) == (True, "CostSpent")
    assert spent.cost_in("USD") == Decimal("0.3")


@pytest.mark.parametrize(
    ("unreported", "today", "reason"),
    [
        ("Block", {"attempts": 1, "withoutCost": 1}, "UsageUnreported"),
        ("Allow", {"attempts": 1, "withoutCost": 1}, None),
        (
            "Block",
            {"attempts": 1, "costs": [{"amount": "0.01", "currency": "EUR"}]},
            "UsageUnreported",
        ),
        ("Allow", {"attempts": 1, "costs": [{"amount": "9", "currency": "EUR"}]}, None),
        ("Block", {"attempts": 1, "withoutTokens": 1}, None),  # only cost is budgeted
    ],
)
def test_unreported_cost_blocks_by_default_and_allow_lets_it_pass(
    unreported: str, today: dict[str, Any], reason: str | None
) -> None:
    limit = budget(unreported, cost={"amount": "5", "currency": "USD"})

    decision = decide(limit, day(**today), in_flight=0, now=NOW)

    assert decision is not None
    assert decision.exhausted is (reason is not None)
    if reason is not None:
        assert decision.status.reason == reason
        assert "budget.unreportedUsage: Block" in decision.status.message


def test_unreported_tokens_block_a_tokens_budget() -> None:
    decision = decide(budget(tokens=10**6), day(attempts=1, withoutTokens=1), in_flight=0, now=NOW)

    assert decision is not None
    assert decision.status.reason == "UsageUnreported"


def test_with_only_attempts_budgeted_an_unreported_attempt_is_just_an_attempt() -> None:
    decision = decide(
        budget(attempts=3), day(attempts=1, withoutCost=1, withoutTokens=1), in_flight=0, now=NOW
    )

    assert decision is not None
    assert (decision.exhausted, decision.room) == (False, 2)


def test_the_budget_is_renewed_at_the_next_utc_midnight() -> None:
    late = datetime(2026, 3, 2, 23, 59, 30, tzinfo=UTC)
    usage = fold_goals(None, [goal("a", attempts(2, late))], late)
    limit = budget(attempts=2)

    spent = decide(limit, today_of(usage, late), in_flight=0, now=late)
    after = late + timedelta(seconds=31)
    renewed = decide(limit, today_of(fold_goals(usage, [], after), after), in_flight=0, now=after)

    assert spent is not None and renewed is not None
    assert spent.exhausted and spent.status.day == "2026-03-02"
    assert spent.requeue_after(late, 300.0) == 30.0  # looks again at midnight, not in 5 min
    assert not renewed.exhausted and renewed.status.day == "2026-03-03"
    assert renewed.room == 2
    assert next_midnight(datetime(2026, 12, 31, 23, 0, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )


def test_events_only_on_transitions() -> None:
    limit = budget(attempts=1)
    spent = decide(limit, day(attempts=1), in_flight=0, now=NOW)
    available = decide(limit, day(), in_flight=0, now=NOW)
    tomorrow = NOW + timedelta(days=1)
    spent_tomorrow = decide(limit, day(attempts=1), in_flight=0, now=tomorrow)
    assert spent and available and spent_tomorrow

    assert [e.reason for e in events_for(None, spent)] == ["BudgetExhausted"]
    assert events_for(spent.status, spent) == []
    assert [e.reason for e in events_for(spent.status, available)] == ["BudgetAvailable"]
    assert events_for(available.status, available) == []
    assert events_for(None, available) == []
    assert [e.reason for e in events_for(spent.status, spent_tomorrow)] == ["BudgetExhausted"]
    assert events_for(spent.status, None) == []
