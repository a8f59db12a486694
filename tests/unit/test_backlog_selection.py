"""The selection logic of a Backlog sync: validation, order, exclusions, budget, limits, report.

Most tests read tests/data/selection-leviathan/backlog.yaml, a backlog in the Leviathan style
(a `tasks:` mapping with `dependencies`, word and integer priorities, comments, tasks completed,
in progress, failed and blocked), through `BacklogDocument`, as the operator does. With nothing
running, its selectable tasks in order are:

    lev-004-lint     priority 1        (rank 1, first in the file of the rank-1 tasks)
    lev-005-api      priority high     (rank 1)
    lev-003-docs     priority medium   (rank 2, first in the file of the rank-2 tasks)
    lev-011-cache    priority 2        (rank 2)
    lev-010-cleanup  no priority       (last)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.backlog.errors import BacklogError
from backlog_operator.backlog.model import Task, TaskStatus
from backlog_operator.backlog.selection import (
    MAX_TASK_ID_LENGTH,
    BlockedTask,
    Failure,
    Hold,
    IdList,
    Limit,
    Limits,
    Selection,
    SelectionInput,
    StatusCounts,
    goal_name,
    select_tasks,
    task_id_problem,
    validate_tasks,
)
from backlog_operator.naming import dns_label

DATA = Path(__file__).resolve().parents[1] / "data" / "selection-leviathan" / "backlog.yaml"
SOURCE = ".backlog/backlog.yaml"
NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
ORDER = ["lev-004-lint", "lev-005-api", "lev-003-docs", "lev-011-cache", "lev-010-cleanup"]


def leviathan(**replacements: str) -> list[Task]:
    """The Leviathan backlog's tasks; each keyword replaces one snippet of the file first."""
    text = DATA.read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return BacklogDocument.parse(text.encode(), source=SOURCE).tasks


def tasks_from(text: str) -> list[Task]:
    """The tasks of a small backlog text, read as the operator reads the file."""
    return BacklogDocument.parse(text.encode(), source=SOURCE).tasks


def task(task_id: str, line: int = 0, **fields: Any) -> Task:
    """A ready, pending task built without a file (for the property test)."""
    return Task.from_mapping({"id": task_id, "ready": True, **fields}, line=line)


def select(tasks: Sequence[Task], **given: Any) -> Selection:
    return select_tasks(tasks, SelectionInput(now=given.pop("now", NOW), **given), source=SOURCE)


def failures(*hours_ago: float, reason: str = "tests failed") -> tuple[Failure, ...]:
    return tuple(
        Failure(at=NOW - timedelta(hours=h), reason=f"{reason} ({h}h ago)") for h in hours_ago
    )


# --------------------------------------------------------------------------------- ordering


def test_leviathan_selection_order_mixes_integer_and_word_priorities() -> None:
    selection = select(leviathan())
    assert selection.start_ids == tuple(ORDER)
    assert selection.deferred == ()
    assert selection.limit is None
    assert selection.report.ready == IdList(tuple(ORDER), len(ORDER))


def test_ties_keep_file_order_and_tasks_without_priority_come_last() -> None:
    tasks = [
        task("z-first", priority="medium"),
        task("no-priority"),
        task("a-second", priority=2),
        task("negative", priority=-5),
        task("c-third", priority="MEDIUM"),
        task("critical", priority="critical"),
        task("zero", priority=0),
    ]
    selection = select(tasks)
    assert selection.start_ids == (
        "negative",
        "critical",
        "zero",
        "z-first",
        "a-second",
        "c-third",
        "no-priority",
    )


def test_completed_tasks_are_never_selected() -> None:
    tasks = leviathan()
    done = {t.id for t in tasks if t.status is TaskStatus.COMPLETED}
    assert done == {"lev-001-bootstrap", "lev-002-ci"}
    # Even with nothing else in the way and no limits, a completed task stays out.
    selection = select(tasks, cleared=frozenset(done))
    assert not done & set(selection.start_ids)
    for task_id in done:
        assert selection.held[task_id].reason is Hold.COMPLETED
        assert "never selected again" in selection.held[task_id].detail
    assert selection.report.completed == IdList(("lev-001-bootstrap", "lev-002-ci"), 2)


def test_a_simulated_merge_completes_the_task_and_unblocks_what_requires_it() -> None:
    before = select(leviathan(), active_goals=frozenset({"lev-005-api"}))
    assert "lev-005-api" not in before.start_ids
    assert before.held["lev-006-api-docs"].reason is Hold.REQUIRES
    merged = leviathan(
        **{
            "ready: true\n    status: pending\n    dependencies: [lev-002-ci]\n\n": (
                "ready: false\n    status: completed\n    dependencies: [lev-002-ci]\n\n"
            ),
            "priority: medium\n    ready: true\n    status: pending": (
                "priority: medium\n    ready: false\n    status: completed"
            ),
        }
    )
    after = select(merged)
    assert after.held["lev-005-api"].reason is Hold.COMPLETED
    # lev-006 is critical, so it comes first once both of its requirements are completed.
    assert after.start_ids == (
        "lev-006-api-docs",
        "lev-004-lint",
        "lev-011-cache",
        "lev-010-cleanup",
    )


# ----------------------------------------------------------------------------- dependencies


def test_dependencies_completed_versus_not() -> None:
    selection = select(leviathan())
    # lev-003 requires lev-002 (completed): selectable. lev-006 requires two pending tasks.
    assert "lev-003-docs" in selection.start_ids
    held = selection.held["lev-006-api-docs"]
    assert held.reason is Hold.REQUIRES
    assert held.detail == "waiting for lev-005-api, lev-003-docs (not completed)"
    blocked = {entry.id: entry for entry in selection.report.blocked}
    assert blocked["lev-006-api-docs"] == BlockedTask(
        id="lev-006-api-docs",
        requires=("lev-005-api", "lev-003-docs"),
        requires_total=2,
    )


def test_a_chain_runs_one_link_at_a_time() -> None:
    text = "tasks:\n" + "".join(
        f"  - id: step-{i}\n    ready: true\n    priority: low\n"
        + (f"    dependencies: [step-{i - 1}]\n" if i else "")
        for i in range(5)
    )
    for done in range(5):
        edited = text
        for i in range(done):
            edited = edited.replace(
                f"id: step-{i}\n    ready: true",
                f"id: step-{i}\n    ready: true\n    status: completed",
            )
        selection = select(tasks_from(edited))
        assert selection.start_ids == (f"step-{done}",)
        waiting = [entry.id for entry in selection.report.blocked]
        assert waiting == [f"step-{i}" for i in range(done + 1, 5)]
        assert all(entry.requires_total == 1 for entry in selection.report.blocked)


def test_a_requirement_in_progress_or_failed_is_not_completed() -> None:
    tasks = [
        task("running", status="in_progress"),
        task("broken", status="failed"),
        task("after-running", requires=["running"]),
        task("after-broken", dependencies=["broken"]),
    ]
    selection = select(tasks)
    assert selection.start_ids == ()
    assert selection.held["after-running"].reason is Hold.REQUIRES
    assert selection.held["after-broken"].reason is Hold.REQUIRES


# ------------------------------------------------------------------ running Goals, open PRs


def test_running_goals_and_open_pull_requests_are_excluded() -> None:
    selection = select(
        leviathan(),
        active_goals=frozenset({"lev-004-lint"}),
        open_pull_requests=frozenset({"lev-003-docs"}),
    )
    assert selection.start_ids == ("lev-005-api", "lev-011-cache", "lev-010-cleanup")
    assert selection.held["lev-004-lint"].reason is Hold.RUNNING
    assert selection.held["lev-003-docs"].reason is Hold.OPEN_PULL_REQUEST
    # In progress: the file's own in_progress task, then the running and the open one.
    assert selection.report.in_progress == IdList(
        ("lev-003-docs", "lev-004-lint", "lev-007-metrics"), 3
    )


def test_a_declined_task_is_never_selected_and_reported_declined() -> None:
    """A person closed its pull request without merging: the task stays pending and ready in
    the file (the writeback was never merged), but it is not picked again."""
    selection = select(leviathan(), declined=frozenset({"lev-004-lint", "lev-003-docs"}))

    assert selection.start_ids == ("lev-005-api", "lev-011-cache", "lev-010-cleanup")
    assert selection.held["lev-004-lint"].reason is Hold.DECLINED
    assert "closed without merging" in selection.held["lev-004-lint"].detail
    assert selection.report.declined == IdList(("lev-003-docs", "lev-004-lint"), 2)  # file order
    assert "lev-004-lint" not in selection.report.ready.ids
    assert "lev-004-lint" not in selection.report.in_progress.ids
    # Still pending in the file: the counts are the file's.
    assert selection.report.counts == select(leviathan()).report.counts


def test_a_declined_task_stays_out_whatever_the_limits_allow() -> None:
    tasks = [task("declined-one", priority="critical"), task("next")]
    selection = select(
        tasks,
        limits=Limits(max_running_goals=5, max_open_pull_requests=5),
        declined=frozenset({"declined-one"}),
    )
    assert selection.start_ids == ("next",)
    assert selection.deferred == ()
    assert selection.limit is None


def test_a_running_goal_or_open_pull_request_comes_before_declined() -> None:
    """A revived task's new Goal runs (or a person reopened the pull request): it is in
    progress, not declined, even if a stale decline is given."""
    selection = select(
        leviathan(),
        declined=frozenset({"lev-004-lint", "lev-005-api"}),
        active_goals=frozenset({"lev-004-lint"}),
        open_pull_requests=frozenset({"lev-005-api"}),
    )
    assert selection.held["lev-004-lint"].reason is Hold.RUNNING
    assert selection.held["lev-005-api"].reason is Hold.OPEN_PULL_REQUEST
    assert selection.report.declined == IdList((), 0)


def test_completed_in_the_file_wins_over_declined() -> None:
    """Merged by hand after all (or marked completed): completed, never declined."""
    selection = select(leviathan(), declined=frozenset({"lev-001-bootstrap"}))
    assert selection.held["lev-001-bootstrap"].reason is Hold.COMPLETED
    assert selection.report.declined.total == 0


def test_declined_list_is_capped_but_counted() -> None:
    tasks = [task(f"t{i}", line=i) for i in range(5)]
    selection = select(tasks, declined=frozenset(f"t{i}" for i in range(4)), max_listed=2)
    assert selection.report.declined == IdList(("t0", "t1"), 4)
    assert selection.start_ids == ("t4",)


def test_goals_and_pull_requests_of_tasks_not_in_the_file_are_ignored_but_counted() -> None:
    selection = select(
        leviathan(),
        active_goals=frozenset({"gone-task"}),
        limits=Limits(max_running_goals=2),
    )
    assert selection.start_ids == tuple(ORDER[:1])
    assert selection.limit is not None
    assert selection.limit.limit is Limit.MAX_RUNNING_GOALS


# ----------------------------------------------------------------------------- failure budget

BUDGET = Limits(failure_budget=3, failure_window=timedelta(hours=24))


def test_failures_within_the_window_block_a_task_with_the_last_reasons() -> None:
    selection = select(
        leviathan(), limits=BUDGET, failures={"lev-004-lint": failures(20, 1, 5, 30)}
    )
    assert "lev-004-lint" not in selection.start_ids
    held = selection.held["lev-004-lint"]
    assert held.reason is Hold.FAILURE_BUDGET
    assert held.detail.startswith(
        "failed 3 times within 1d (budget 3); last: tests failed (1h ago)"
    )
    blocked = {entry.id: entry for entry in selection.report.blocked}
    assert blocked["lev-004-lint"] == BlockedTask(
        id="lev-004-lint",
        failures=3,
        last_failures=("tests failed (1h ago)", "tests failed (5h ago)", "tests failed (20h ago)"),
    )


def test_failures_older_than_the_window_do_not_count() -> None:
    # Two within the window, one exactly at its start (no longer within), one older.
    selection = select(
        leviathan(), limits=BUDGET, failures={"lev-004-lint": failures(1, 2, 24, 48)}
    )
    assert selection.start_ids[0] == "lev-004-lint"
    just_inside = select(
        leviathan(), limits=BUDGET, failures={"lev-004-lint": failures(1, 2, 23.99)}
    )
    assert just_inside.held["lev-004-lint"].reason is Hold.FAILURE_BUDGET


def test_without_a_budget_failures_do_not_block() -> None:
    selection = select(leviathan(), failures={"lev-004-lint": failures(1, 2, 3, 4, 5)})
    assert selection.start_ids == tuple(ORDER)


def test_cleared_tasks_are_selectable_again() -> None:
    recorded = {"lev-004-lint": failures(1, 2, 3)}
    blocked = select(leviathan(), limits=BUDGET, failures=recorded)
    assert "lev-004-lint" not in blocked.start_ids

    by_set = select(
        leviathan(), limits=BUDGET, failures=recorded, cleared=frozenset({"lev-004-lint"})
    )
    assert by_set.start_ids == tuple(ORDER)

    # Cleared 30 minutes ago: the three earlier failures are forgiven...
    cleared_at = {"lev-004-lint": NOW - timedelta(minutes=30)}
    by_time = select(leviathan(), limits=BUDGET, failures=recorded, cleared=cleared_at)
    assert by_time.start_ids == tuple(ORDER)
    # ...but three new ones after the clearing block the task again.
    again = {"lev-004-lint": (*recorded["lev-004-lint"], *failures(0.3, 0.2, 0.1))}
    reblocked = select(leviathan(), limits=BUDGET, failures=again, cleared=cleared_at)
    assert reblocked.held["lev-004-lint"].reason is Hold.FAILURE_BUDGET


def test_a_task_blocked_by_requires_and_budget_reports_both() -> None:
    selection = select(leviathan(), limits=BUDGET, failures={"lev-006-api-docs": failures(1, 2, 3)})
    entry = next(e for e in selection.report.blocked if e.id == "lev-006-api-docs")
    assert entry.requires == ("lev-005-api", "lev-003-docs")
    assert entry.failures == 3
    assert selection.held["lev-006-api-docs"].reason is Hold.REQUIRES


# ------------------------------------------------------------------------------------ limits


def test_max_open_pull_requests_reached_and_freed() -> None:
    limits = Limits(max_open_pull_requests=4)
    reached = select(leviathan(), limits=limits, open_pull_request_count=4)
    assert reached.start_ids == ()
    assert reached.deferred == tuple(ORDER)
    assert reached.limit is not None
    assert reached.limit.limit is Limit.MAX_OPEN_PULL_REQUESTS
    assert reached.limit.message == "4 pull requests open and 0 on the way, at most 4"
    assert all(reached.held[task_id].reason is Hold.LIMIT for task_id in ORDER)
    # The ready list still shows what would start.
    assert reached.report.ready.ids == tuple(ORDER)

    freed = select(leviathan(), limits=limits, open_pull_request_count=2)
    assert freed.start_ids == tuple(ORDER[:2])
    assert freed.deferred == tuple(ORDER[2:])


def test_running_goals_count_as_pull_requests_on_the_way() -> None:
    # One Goal running without a pull request yet: it will open one, so it takes a slot.
    selection = select(
        leviathan(),
        limits=Limits(max_open_pull_requests=3),
        active_goals=frozenset({"lev-004-lint"}),
        open_pull_request_count=1,
    )
    assert selection.start_ids == ("lev-005-api",)
    assert selection.limit is not None
    assert selection.limit.message == "1 pull requests open and 1 on the way, at most 3"


def test_max_running_goals_reached_and_freed() -> None:
    limits = Limits(max_running_goals=3)
    reached = select(leviathan(), limits=limits, running_goals=3)
    assert reached.start_ids == ()
    assert reached.limit is not None
    assert reached.limit.limit is Limit.MAX_RUNNING_GOALS
    assert reached.limit.message == "3 Goals running, at most 3"
    freed = select(leviathan(), limits=limits, running_goals=1)
    assert freed.start_ids == tuple(ORDER[:2])
    plenty = select(leviathan(), limits=Limits(max_running_goals=10), running_goals=5)
    assert plenty.start_ids == tuple(ORDER)
    assert plenty.limit is None


def test_a_running_count_below_the_active_goals_is_raised_to_them() -> None:
    given = SelectionInput(now=NOW, active_goals=frozenset({"a", "b"}), running_goals=1)
    assert given.running_goal_count == 2
    given = SelectionInput(now=NOW, open_pull_requests=frozenset({"a"}), open_pull_request_count=0)
    assert given.open_pull_request_total == 1


def test_hourly_cap_counts_only_the_last_hour_and_frees_at_the_boundary() -> None:
    limits = Limits(max_new_pull_requests_per_hour=2)
    opened = (NOW - timedelta(minutes=50), NOW - timedelta(minutes=10))
    reached = select(leviathan(), limits=limits, pull_requests_opened=opened)
    assert reached.start_ids == ()
    assert reached.limit is not None
    assert reached.limit.limit is Limit.MAX_NEW_PULL_REQUESTS_PER_HOUR
    assert reached.limit.retry_at == NOW + timedelta(minutes=10)
    assert reached.limit.message.endswith(
        f"the next may start at {reached.limit.retry_at.isoformat()}"
    )

    # At retry_at the older one is exactly an hour old: it no longer counts, one may start.
    later = select(
        leviathan(), limits=limits, pull_requests_opened=opened, now=NOW + timedelta(minutes=10)
    )
    assert later.start_ids == tuple(ORDER[:1])
    # A second before, it still counts.
    before = select(
        leviathan(),
        limits=limits,
        pull_requests_opened=opened,
        now=NOW + timedelta(minutes=10) - timedelta(seconds=1),
    )
    assert before.start_ids == ()


def test_hourly_cap_counts_goals_on_the_way_and_future_timestamps() -> None:
    limits = Limits(max_new_pull_requests_per_hour=3)
    selection = select(
        leviathan(),
        limits=limits,
        active_goals=frozenset({"lev-004-lint"}),
        pull_requests_opened=(NOW + timedelta(minutes=1),),  # a skewed clock still counts
    )
    assert selection.start_ids == ("lev-005-api",)
    # Goals alone fill the cap: no time can be promised, they must finish first.
    full = select(
        leviathan(),
        limits=Limits(max_new_pull_requests_per_hour=1),
        active_goals=frozenset({"lev-004-lint"}),
    )
    assert full.start_ids == ()
    assert full.limit is not None
    assert full.limit.retry_at is None


def test_the_tightest_limit_is_named() -> None:
    selection = select(
        leviathan(),
        limits=Limits(
            max_running_goals=4, max_open_pull_requests=1, max_new_pull_requests_per_hour=3
        ),
    )
    assert selection.start_ids == tuple(ORDER[:1])
    assert selection.limit is not None
    assert selection.limit.limit is Limit.MAX_OPEN_PULL_REQUESTS


def test_limits_of_zero_start_nothing() -> None:
    selection = select(leviathan(), limits=Limits(max_running_goals=0))
    assert selection.start_ids == ()
    assert selection.deferred == tuple(ORDER)


def test_suspended_and_forge_unavailable_start_nothing() -> None:
    suspended = select(leviathan(), suspended=True)
    assert suspended.start_ids == ()
    assert suspended.limit is not None
    assert suspended.limit.limit is Limit.SUSPENDED
    assert suspended.report.ready.ids == tuple(ORDER)

    closed = select(leviathan(), forge_error="HTTP 502 from the forge")
    assert closed.start_ids == ()
    assert closed.limit is not None
    assert closed.limit.limit is Limit.FORGE_UNAVAILABLE
    assert "HTTP 502 from the forge" in closed.limit.message
    # Even with nothing selectable, the condition still says why nothing could start.
    assert select([], forge_error="timeout").limit is not None


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SelectionInput(now=datetime(2026, 2, 1, 12, 0))
    with pytest.raises(ValueError, match="max_running_goals"):
        Limits(max_running_goals=-1)
    with pytest.raises(ValueError, match="failure_budget"):
        Limits(failure_budget=0)
    with pytest.raises(ValueError, match="failure_window"):
        Limits(failure_window=timedelta(0))
    with pytest.raises(ValueError, match="running_goals"):
        SelectionInput(now=NOW, running_goals=-2)


# -------------------------------------------------------------------------------- validation


def only_error(tasks: Sequence[Task]) -> BacklogError:
    """The one validation problem of `tasks`; select_tasks raises that same error."""
    problems = validate_tasks(tasks, source=SOURCE)
    assert len(problems) == 1, [str(p) for p in problems]
    with pytest.raises(BacklogError) as raised:
        select(tasks)
    assert str(raised.value) == str(problems[0])
    return problems[0]


def test_the_leviathan_backlog_validates() -> None:
    assert validate_tasks(leviathan(), source=SOURCE) == []


def test_unknown_requires_names_the_task_and_line() -> None:
    tasks = leviathan(**{"dependencies: [lev-005-api, lev-003-docs]": "dependencies: [lev-05-api]"})
    error = only_error(tasks)
    assert str(error) == (
        ".backlog/backlog.yaml:50: task 'lev-006-api-docs' (line 50) requires unknown task "
        "'lev-05-api'"
    )
    assert (error.path, error.line) == (SOURCE, 50)


def test_unknown_requires_suggests_the_id_in_another_case() -> None:
    tasks = leviathan(
        **{
            "[lev-002-ci]\n    description": "[LEV_002_CI]\n    description",
        }
    )
    assert str(only_error(tasks)).endswith(
        "requires unknown task 'LEV_002_CI' (did you mean 'lev-002-ci'?)"
    )


def test_self_cycle() -> None:
    tasks = leviathan(
        **{"dependencies: [lev-005-api, lev-003-docs]": "dependencies: [lev-006-api-docs]"}
    )
    error = only_error(tasks)
    assert str(error) == (
        ".backlog/backlog.yaml:50: dependency cycle: lev-006-api-docs → lev-006-api-docs "
        "(task 'lev-006-api-docs' requires itself)"
    )


def test_longer_cycle_is_named_from_its_first_task_in_the_file() -> None:
    text = """\
tasks:
  - id: a
    ready: true
  - id: b            # line 4
    ready: true
    requires: [c]
  - id: c            # line 7
    ready: true
    requires: [d]
  - id: d            # line 10
    requires: [b, a]
"""
    error = only_error(tasks_from(text))
    assert str(error) == (
        ".backlog/backlog.yaml:4: dependency cycle: b → c → d → b (lines 4, 7, 10)"
    )


def test_each_cycle_is_reported_and_the_first_in_the_file_raised() -> None:
    tasks = [
        task("x", line=3, requires=["y"]),
        task("y", line=5, requires=["x"]),
        task("p", line=8, requires=["q"]),
        task("q", line=9, requires=["r"]),
        task("r", line=10, requires=["p", "x"]),
    ]
    problems = validate_tasks(tasks, source=SOURCE)
    assert [p.problem for p in problems] == [
        "dependency cycle: x → y → x (lines 3, 5)",
        "dependency cycle: p → q → r → p (lines 8, 9, 10)",
    ]
    with pytest.raises(BacklogError, match="x → y → x"):
        select(tasks)


def test_a_long_cycle_is_shortened_in_the_message() -> None:
    count = 40
    tasks = [task(f"t{i}", line=i + 1, requires=[f"t{(i + 1) % count}"]) for i in range(count)]
    (error,) = validate_tasks(tasks, source=SOURCE)
    assert error.problem.startswith("dependency cycle: t0 → t1 → ")
    assert "→ t8 → ... → t39 → t0 (40 tasks; lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ...)" in (
        error.problem
    )
    assert len(error.problem) < 300


def test_a_deep_chain_validates_without_recursion() -> None:
    tasks = [task(f"t{i}", line=i + 1, requires=[f"t{i - 1}"] if i else []) for i in range(5000)]
    assert validate_tasks(tasks, source=SOURCE) == []


@pytest.mark.parametrize(
    ("task_id", "why"),
    [
        ("docs guide", "only letters, digits, '-', '_' and '.' are allowed"),
        ("docs/guide", "only letters, digits, '-', '_' and '.' are allowed"),
        ("ünïcode", "only letters, digits, '-', '_' and '.' are allowed"),
        ("-lead", "it must start and end with a letter or digit"),
        ("trail.", "it must start and end with a letter or digit"),
        ("_", "it must start and end with a letter or digit"),
        ("x" * 64, "it is 64 characters long; at most 63 are allowed"),
    ],
)
def test_bad_ids_are_errors(task_id: str, why: str) -> None:
    assert task_id_problem(task_id) == why
    text = f'tasks:\n  - id: lev-001\n  - id: "{task_id}"\n    ready: true\n'
    error = only_error(tasks_from(text))
    assert (
        str(error)
        == f".backlog/backlog.yaml:3: task id {task_id!r} (line 3) is not a valid name: {why}"
    )


@pytest.mark.parametrize("task_id", ["a", "7", "lev-001-bootstrap", "Docs_Guide.v2", "x" * 63])
def test_good_ids(task_id: str) -> None:
    assert task_id_problem(task_id) is None


@pytest.mark.parametrize(
    ("first", "second", "label"),
    [
        ("docs-guide", "Docs_Guide", "docs-guide"),
        ("a.b", "a-b", "a-b"),
        ("LEV-1", "lev-1", "lev-1"),
        ("a__b", "a-b", "a-b"),
    ],
)
def test_ids_colliding_after_normalisation_are_errors(first: str, second: str, label: str) -> None:
    text = f"tasks:\n  - id: {first}\n    ready: true\n\n  - id: {second}\n    ready: true\n"
    error = only_error(tasks_from(text))
    assert str(error) == (
        f".backlog/backlog.yaml:5: task ids {first!r} (line 2) and {second!r} (line 5) both make "
        f"the Goal name part {label!r}; rename one"
    )


def test_duplicate_ids_given_without_a_file_are_errors() -> None:
    tasks = [task("a", line=1), task("a", line=4)]
    assert (
        str(only_error(tasks)) == ".backlog/backlog.yaml:4: duplicate task id 'a' (first at line 1)"
    )


def test_all_problems_are_listed_in_line_order() -> None:
    tasks = [
        task("a", line=2, requires=["b"]),
        task("b", line=4, requires=["a", "ghost"]),
        task("bad id", line=6),
    ]
    problems = validate_tasks(tasks, source=SOURCE)
    assert [(p.line, p.problem.split(":")[0]) for p in problems] == [
        (2, "dependency cycle"),
        (4, "task 'b' (line 4) requires unknown task 'ghost'"),
        (6, "task id 'bad id' (line 6) is not a valid name"),
    ]


# ------------------------------------------------------------------------------------- report


def test_report_counts_and_lists() -> None:
    selection = select(leviathan(), active_goals=frozenset({"lev-011-cache"}))
    report = selection.report
    assert report.counts == StatusCounts(pending=7, in_progress=1, completed=2, failed=1, blocked=1)
    assert report.counts.total == 12
    assert report.ready == IdList(
        ("lev-004-lint", "lev-005-api", "lev-003-docs", "lev-010-cleanup"), 4
    )
    assert report.in_progress == IdList(("lev-007-metrics", "lev-011-cache"), 2)
    assert report.completed == IdList(("lev-001-bootstrap", "lev-002-ci"), 2)
    assert report.failed == IdList(("lev-008-tracing",), 1)
    assert report.not_ready == IdList(("lev-009-release",), 1)
    assert report.blocked == (
        BlockedTask(
            id="lev-006-api-docs", requires=("lev-005-api", "lev-003-docs"), requires_total=2
        ),
        BlockedTask(
            id="lev-012-perf", requires=("lev-007-metrics",), requires_total=1, marked_blocked=True
        ),
    )
    assert report.blocked_total == 2
    # Every task is in exactly one list, and every task not started has a reason.
    listed = [
        *report.ready.ids,
        *report.in_progress.ids,
        *report.completed.ids,
        *report.failed.ids,
        *report.not_ready.ids,
        *(entry.id for entry in report.blocked),
    ]
    assert sorted(listed) == sorted(t.id for t in leviathan())
    assert set(selection.held) == {t.id for t in leviathan()} - set(selection.start_ids)
    assert selection.held["lev-009-release"].reason is Hold.NOT_READY
    assert selection.held["lev-008-tracing"].reason is Hold.FAILED
    assert selection.held["lev-007-metrics"].reason is Hold.IN_PROGRESS
    assert selection.held["lev-012-perf"].reason is Hold.BLOCKED


def test_report_lists_are_bounded() -> None:
    tasks = [task(f"t{i}", requires=[f"dep{j}" for j in range(15)]) for i in range(30)]
    tasks += [task(f"dep{j}", status="failed") for j in range(15)]
    selection = select(tasks, max_listed=5)
    report = selection.report
    assert len(report.blocked) == 5
    assert report.blocked_total == 30
    assert len(report.blocked[0].requires) == 10
    assert report.blocked[0].requires_total == 15
    assert report.failed == IdList(tuple(f"dep{j}" for j in range(5)), 15)
    assert report.failed.truncated
    assert selection.held["t0"].detail.endswith("and 5 more (not completed)")


def test_long_failure_reasons_are_shortened_for_the_status() -> None:
    reason = "x " * 500
    recorded = {"a": tuple(Failure(NOW - timedelta(minutes=m), reason) for m in range(5))}
    selection = select([task("a")], limits=Limits(failure_budget=5), failures=recorded)
    (entry,) = selection.report.blocked
    assert entry.failures == 5
    assert len(entry.last_failures) == 3
    assert all(len(text) <= 200 and text.endswith("...") for text in entry.last_failures)


def test_an_empty_backlog_selects_nothing() -> None:
    selection = select(tasks_from("tasks:\n"))
    assert selection.start == ()
    assert selection.limit is None
    assert selection.report.counts.total == 0


# --------------------------------------------------------------------------------- Goal names


def test_goal_names_are_deterministic_and_readable() -> None:
    assert goal_name("leviathan", "lev-001-bootstrap") == "leviathan-lev-001-bootstrap"
    assert goal_name("team.backlog", "Docs_Guide") == "team-backlog-docs-guide"
    assert goal_name("leviathan", "lev-001") == goal_name("leviathan", "lev-001")


def test_long_goal_names_are_shortened_uniquely() -> None:
    backlog = "a-rather-long-backlog-name-for-the-platform-team"
    first = goal_name(backlog, "x" * 60 + "1")
    second = goal_name(backlog, "x" * 60 + "2")
    assert len(first) == len(second) == 63
    assert first != second
    assert first == dns_label(f"{backlog}-{'x' * 60}1")


@settings(max_examples=200, deadline=None)
@given(
    backlog=st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,60}[a-z0-9])?", fullmatch=True),
    ids=st.lists(
        st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?", fullmatch=True),
        min_size=2,
        max_size=6,
        unique=True,
    ),
)
def test_goal_names_of_a_validated_backlog_are_distinct_labels(
    backlog: str, ids: list[str]
) -> None:
    tasks = [task(task_id, line=n) for n, task_id in enumerate(ids, start=1)]
    if validate_tasks(tasks, source=SOURCE):
        return  # ids that normalise alike: rejected, as tested above
    names = [goal_name(backlog, task_id) for task_id in ids]
    assert len(set(names)) == len(names)
    assert all(name == dns_label(name) and len(name) <= MAX_TASK_ID_LENGTH for name in names)


# ------------------------------------------------------------------------------------ property

# Weighted towards pending and completed, so that most examples have something to select.
STATUSES = ["pending", "pending", "pending", "completed", "completed", *TaskStatus]
PRIORITIES = st.one_of(
    st.none(), st.integers(-3, 5), st.sampled_from(["critical", "high", "medium", "low"])
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Task], SelectionInput]:
    """A valid backlog (requirements point at earlier tasks) and what the operator knows."""
    count = draw(st.integers(0, 25))
    tasks = []
    for index in range(count):
        requires = draw(st.lists(st.integers(0, index - 1), max_size=3)) if index else []
        tasks.append(
            task(
                f"t{index}",
                line=index + 1,
                ready=draw(st.sampled_from([True, True, True, False])),
                status=draw(st.sampled_from(STATUSES)),
                priority=draw(PRIORITIES),
                requires=[f"t{r}" for r in requires],
            )
        )
    # Ids of the file's tasks, and one that is not in it (a Goal of a task since removed).
    ids = st.sampled_from([*(t.id for t in tasks), "gone"])
    optional = st.one_of(st.none(), st.integers(0, 6))
    limits = Limits(
        max_open_pull_requests=draw(optional),
        max_running_goals=draw(optional),
        max_new_pull_requests_per_hour=draw(optional),
        failure_budget=draw(st.one_of(st.none(), st.integers(1, 3))),
    )
    minutes = st.integers(-5, 180).map(lambda m: NOW - timedelta(minutes=m))
    given = SelectionInput(
        now=NOW,
        limits=limits,
        active_goals=frozenset(draw(st.lists(ids, max_size=4))),
        running_goals=draw(optional),
        open_pull_requests=frozenset(draw(st.lists(ids, max_size=4))),
        open_pull_request_count=draw(optional),
        pull_requests_opened=tuple(draw(st.lists(minutes, max_size=6))),
        failures={
            task_id: tuple(
                Failure(moment, "failed") for moment in draw(st.lists(minutes, max_size=4))
            )
            for task_id in draw(st.lists(ids, max_size=4))
        },
        cleared=frozenset(draw(st.lists(ids, max_size=2))),
        suspended=draw(st.booleans()) and draw(st.booleans()),
        declined=frozenset(draw(st.lists(ids, max_size=3))),
    )
    return tasks, given


def _allowed(given: SelectionInput) -> int | None:
    """The most any limit lets start (None without a limit), computed independently."""
    limits = given.limits
    pending_prs = len(given.active_goals - given.open_pull_requests)
    bounds = []
    if limits.max_running_goals is not None:
        bounds.append(limits.max_running_goals - given.running_goal_count)
    if limits.max_open_pull_requests is not None:
        bounds.append(limits.max_open_pull_requests - given.open_pull_request_total - pending_prs)
    if limits.max_new_pull_requests_per_hour is not None:
        recent = [m for m in given.pull_requests_opened if NOW - m < timedelta(hours=1)]
        bounds.append(limits.max_new_pull_requests_per_hour - len(recent) - pending_prs)
    return max(min(bounds), 0) if bounds else None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_selection_properties(scenario: tuple[list[Task], SelectionInput]) -> None:
    tasks, given = scenario
    selection = select_tasks(tasks, given, source=SOURCE)
    by_id: Mapping[str, Task] = {t.id: t for t in tasks}
    position = {t.id: index for index, t in enumerate(tasks)}
    started = selection.start
    # Never a task with an unfinished requirement, nor one that is not ready and pending,
    # running, with an open pull request, or completed.
    for chosen in started:
        assert all(by_id[r].status is TaskStatus.COMPLETED for r in chosen.requires)
        assert chosen.ready and chosen.status is TaskStatus.PENDING
        assert chosen.id not in given.active_goals | given.open_pull_requests
        assert chosen.id not in given.declined
    # Never over a limit.
    allowed = _allowed(given)
    if given.suspended:
        assert started == ()
    elif allowed is not None:
        assert len(started) <= allowed
    # Sorted by (rank, file order), and the deferred ones follow in the same order.
    order = [(by_id[i].sort_key, position[i]) for i in (*selection.start_ids, *selection.deferred)]
    assert order == sorted(order)
    assert (
        list(selection.report.ready.ids)
        == [*selection.start_ids, *selection.deferred][: given.max_listed]
    )
    # Not started means a reason; a limit is named whenever a ready task waits.
    assert set(selection.held) == set(by_id) - set(selection.start_ids)
    assert bool(selection.deferred) <= (selection.limit is not None)
    # Over the budget (and not cleared): never started.
    budget = given.limits.failure_budget
    if budget is not None:
        for chosen in started:
            if chosen.id in given.cleared:
                continue
            recent = [
                f for f in given.failures.get(chosen.id, ()) if NOW - f.at < timedelta(hours=24)
            ]
            assert len(recent) < budget
