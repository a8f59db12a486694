"""The metric recording helpers (`controller.metrics`) and readiness (`controller.health`), read
back through prometheus_client's own exposition, as a scrape would see them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from backlog_operator.api.backlog import BacklogStatus, TaskCounts
from backlog_operator.api.budget import BudgetStatus
from backlog_operator.api.goal import GoalStatus, Phase, PullRequestStatus
from backlog_operator.api.result import Outcome, WorkerResult, failure
from backlog_operator.api.usage import Cost, GoalUsage, OwnerUsage, TaskUsage
from backlog_operator.controller.health import Readiness
from backlog_operator.controller.metrics import (
    MAX_CURRENCIES,
    MAX_OWNERS,
    MAX_REASONS,
    Metrics,
    attempt_seconds,
    step_seconds,
)
from backlog_operator.controller.results import AttemptEnd
from backlog_operator.controller.usage import record_attempt

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
TOKEN = "ghp_neverInMetrics0123456789abcdef"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def goal(name: str, phase: str | None, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "team",
            "creationTimestamp": stamp(NOW - timedelta(minutes=10)),
        }
    }
    if phase is not None or status:
        body["status"] = {"phase": phase, **status} if phase else dict(status)
    return body


# -------------------------------------------------------------------------------- reconciles


def test_reconciles_are_counted_per_controller_and_result_from_zero() -> None:
    metrics = Metrics()
    for controller in ("goal", "backlog", "goalschedule"):
        for result in ("success", "error"):
            assert (
                value(
                    metrics,
                    "controller_runtime_reconcile_total",
                    controller=controller,
                    result=result,
                )
                == 0
            )
        assert (
            value(metrics, "controller_runtime_reconcile_errors_total", controller=controller) == 0
        )

    metrics.reconciled("goals", 0.02, error=False)
    metrics.reconciled("goals", 0.5, error=True)
    metrics.reconciled("backlogs", 3.0, error=False)

    assert (
        value(metrics, "controller_runtime_reconcile_total", controller="goal", result="success")
        == 1
    )
    assert (
        value(metrics, "controller_runtime_reconcile_total", controller="goal", result="error") == 1
    )
    assert value(metrics, "controller_runtime_reconcile_errors_total", controller="goal") == 1
    assert value(metrics, "controller_runtime_reconcile_time_seconds_count", controller="goal") == 2
    assert value(
        metrics, "controller_runtime_reconcile_time_seconds_sum", controller="goal"
    ) == pytest.approx(0.52)
    assert (
        value(
            metrics,
            "controller_runtime_reconcile_time_seconds_bucket",
            controller="backlog",
            le="2.5",
        )
        == 0
    )
    assert (
        value(
            metrics,
            "controller_runtime_reconcile_time_seconds_bucket",
            controller="backlog",
            le="5.0",
        )
        == 1
    )


def test_each_operator_counts_in_its_own_registry() -> None:
    one, other = Metrics(), Metrics()  # a second one registers the same names: no clash
    one.reconciled("goals", 0.1, error=False)
    assert (
        value(one, "controller_runtime_reconcile_total", controller="goal", result="success") == 1
    )
    assert (
        value(other, "controller_runtime_reconcile_total", controller="goal", result="success") == 0
    )


# ------------------------------------------------------------------------------------- goals


def test_goals_by_phase_follow_the_watch_and_forget_deleted_goals() -> None:
    metrics = Metrics()
    metrics.goal_seen(None, goal("a", None))  # no status yet: Pending
    metrics.goal_seen("ADDED", goal("b", "Queued"))
    metrics.goal_seen("MODIFIED", goal("b", "Queued", queuePosition=1))  # same phase: no change
    assert value(metrics, "backlog_goals", namespace="team", phase="Pending") == 1
    assert value(metrics, "backlog_goals", namespace="team", phase="Queued") == 1

    metrics.goal_seen("MODIFIED", goal("a", "Running"))
    metrics.goal_seen("MODIFIED", goal("b", "Running"))
    metrics.goal_seen("MODIFIED", goal("c", "SomethingElse"))
    assert value(metrics, "backlog_goals", namespace="team", phase="Pending") == 0
    assert value(metrics, "backlog_goals", namespace="team", phase="Queued") == 0
    assert value(metrics, "backlog_goals", namespace="team", phase="Running") == 2
    assert value(metrics, "backlog_goals", namespace="team", phase="Unknown") == 1

    metrics.goal_seen("DELETED", goal("a", "Running"))
    metrics.forget_goal("team/b")  # gone while the watch was away
    metrics.forget_goal("team/b")  # twice: counted once
    assert value(metrics, "backlog_goals", namespace="team", phase="Running") == 0
    assert value(metrics, "backlog_goals", namespace="team", phase="Unknown") == 1


def test_queue_depth_and_slots_are_read_when_scraped() -> None:
    metrics = Metrics()
    queued = [3]
    metrics.track_capacity(lambda: queued[0], lambda: 2, 10)
    assert value(metrics, "backlog_goal_queue_depth") == 3
    queued[0] = 1
    assert value(metrics, "backlog_goal_queue_depth") == 1
    assert value(metrics, "backlog_goal_slots_held") == 2
    assert value(metrics, "backlog_goal_slots_limit") == 10


def test_a_start_ends_a_wait_from_creation_or_from_the_backoffs_end() -> None:
    metrics = Metrics()
    running = GoalStatus(phase=Phase.RUNNING, attempts=1, run=1)
    metrics.goal_written(goal("a", "Queued"), running, NOW)  # created ten minutes ago
    retry = running.model_copy(update={"attempts": 2})
    backoff_end = stamp(NOW - timedelta(seconds=30))
    metrics.goal_written(goal("b", "Queued", nextAttemptTime=backoff_end), retry, NOW)
    # Not a start: still running; a re-run's wait (since when?) is not measured.
    metrics.goal_written(goal("c", "Running"), running, NOW)
    metrics.goal_written(goal("d", "Pending"), running.model_copy(update={"run": 2}), NOW)

    assert value(metrics, "backlog_goal_queue_wait_seconds_count") == 2
    assert value(metrics, "backlog_goal_queue_wait_seconds_sum") == 600 + 30


def test_a_final_phase_ends_a_run() -> None:
    metrics = Metrics()
    done = GoalStatus(
        phase=Phase.SUCCEEDED,
        start_time=NOW - timedelta(minutes=3),
        completion_time=NOW,
    )
    metrics.goal_written(goal("a", "Running"), done, NOW)
    metrics.goal_written(goal("a", "Succeeded"), done, NOW)  # already final: once
    skipped = GoalStatus(phase=Phase.SKIPPED, completion_time=NOW)  # never started: no run
    metrics.goal_written(goal("b", "Pending"), skipped, NOW)

    assert value(metrics, "backlog_goal_run_duration_seconds_count", phase="Succeeded") == 1
    assert value(metrics, "backlog_goal_run_duration_seconds_sum", phase="Succeeded") == 180
    assert value(metrics, "backlog_goal_run_duration_seconds_count", phase="Skipped") is None


# ---------------------------------------------------------------------------------- attempts


def job(
    start: datetime, *, end: datetime | None = None, failed_at: datetime | None = None
) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": stamp(start)}
    if end is not None:
        status["completionTime"] = stamp(end)
    if failed_at is not None:
        status["conditions"] = [
            {"type": "Failed", "status": "True", "lastTransitionTime": stamp(failed_at)}
        ]
    return {"status": status}


def pod(**steps: tuple[datetime, datetime] | None) -> dict[str, Any]:
    def container(name: str, times: tuple[datetime, datetime] | None) -> dict[str, Any]:
        if times is None:
            return {"name": name, "state": {"waiting": {"reason": "PodInitializing"}}}
        started, finished = times
        terminated = {"startedAt": stamp(started), "finishedAt": stamp(finished), "exitCode": 0}
        return {"name": name, "state": {"terminated": terminated}}

    init = [container(name, steps[name]) for name in ("clone", "task") if name in steps]
    main = [container("publish", steps["publish"])] if "publish" in steps else []
    return {"status": {"initContainerStatuses": init, "containerStatuses": main}}


def published(created: bool | None) -> WorkerResult:
    return WorkerResult(
        outcome=Outcome.PUBLISHED,
        pull_request=PullRequestStatus(number=7, url="https://github.com/o/r/pull/7"),
        pull_request_created=created,
    )


def test_an_attempt_is_counted_with_its_outcome_reason_and_durations() -> None:
    metrics = Metrics()
    start = NOW - timedelta(minutes=5)
    steps = {
        "clone": (start, start + timedelta(seconds=10)),
        "task": (start + timedelta(seconds=10), start + timedelta(seconds=250)),
        "publish": (start + timedelta(seconds=250), start + timedelta(seconds=270)),
    }
    metrics.attempt_ended(AttemptEnd(published(True), job(start, end=NOW), pod(**steps)), NOW)
    failed = failure("TaskFailed", "the task command exited with 3", retryable=True, step="task")
    ended = NOW - timedelta(minutes=1)
    failed_steps = {"clone": steps["clone"], "task": steps["task"], "publish": None}
    metrics.attempt_ended(AttemptEnd(failed, job(start, failed_at=ended), pod(**failed_steps)), NOW)

    assert (
        value(metrics, "backlog_goal_attempts_total", outcome="published", reason="Published") == 1
    )
    assert value(metrics, "backlog_goal_attempts_total", outcome="failed", reason="TaskFailed") == 1
    assert value(metrics, "backlog_goal_attempt_duration_seconds_sum", outcome="published") == 300
    assert value(metrics, "backlog_goal_attempt_duration_seconds_sum", outcome="failed") == 240
    assert value(metrics, "backlog_goal_step_duration_seconds_count", step="clone") == 2
    assert value(metrics, "backlog_goal_step_duration_seconds_sum", step="task") == 480
    assert value(metrics, "backlog_goal_step_duration_seconds_count", step="publish") == 1
    assert value(metrics, "backlog_pull_requests_total", action="opened") == 1


def test_pull_requests_opened_or_reused_and_unknown_ones_not_counted() -> None:
    metrics = Metrics()
    for created in (True, False, False, None):
        metrics.attempt_ended(AttemptEnd(published(created)), NOW)
    done = WorkerResult(outcome=Outcome.ALREADY_COMPLETED)
    metrics.attempt_ended(AttemptEnd(done), NOW)

    assert value(metrics, "backlog_pull_requests_total", action="opened") == 1
    assert value(metrics, "backlog_pull_requests_total", action="reused") == 2
    assert (
        value(
            metrics,
            "backlog_goal_attempts_total",
            outcome="already_completed",
            reason="AlreadyCompleted",
        )
        == 1
    )
    # No Job (gone, or never read): no duration.
    assert (
        value(metrics, "backlog_goal_attempt_duration_seconds_count", outcome="published") is None
    )


def test_attempt_and_step_times_from_the_job_and_the_pod() -> None:
    start = NOW - timedelta(minutes=2)
    assert attempt_seconds(job(start, end=NOW), NOW) == 120
    assert attempt_seconds(job(start, failed_at=NOW - timedelta(minutes=1)), NOW) == 60
    assert attempt_seconds(job(start), NOW) == 120  # stopped while it ran: until now
    assert attempt_seconds({"status": {}}, NOW) is None
    assert attempt_seconds(None, NOW) is None
    assert attempt_seconds(job(NOW + timedelta(seconds=5), end=NOW), NOW) == 0  # skewed clocks
    restarted = pod(clone=(start, start + timedelta(seconds=4)))
    restarted["status"]["initContainerStatuses"].append(
        {
            "name": "sidecar",
            "state": {"terminated": {"startedAt": stamp(start), "finishedAt": stamp(NOW)}},
        }
    )
    assert step_seconds(restarted) == [("clone", 4.0)]  # only the three steps
    assert step_seconds(None) == []


def test_reasons_are_camelcase_words_and_few() -> None:
    metrics = Metrics()
    odd = [f"reason with {TOKEN}", "lowercase", "x" * 10, "Tab\tbed", "A" * 64]
    for reason in odd:
        metrics.attempt_ended(AttemptEnd(failure(reason, TOKEN, retryable=True)), NOW)
    assert value(metrics, "backlog_goal_attempts_total", outcome="failed", reason="Other") == len(
        odd
    )

    for index in range(MAX_REASONS + 5):
        metrics.reason(f"Reason{index}")
    assert metrics.reason("Reason3") == "Reason3"  # known: kept
    assert metrics.reason(f"Reason{MAX_REASONS + 1}") == "Other"  # past the limit
    assert metrics.reason("AnotherNewReason") == "Other"


# ---------------------------------------------------------------------------------- backlogs


def test_forge_answers_and_the_rate_limit_per_backlog() -> None:
    metrics = Metrics()
    metrics.forge_answered("team", "web", 200, 4999)
    metrics.forge_answered("team", "web", 200, 4998)
    metrics.forge_answered("team", "api", 403, 0)
    metrics.forge_answered("team", "api", None, None)  # no answer: the limit stays as said

    assert value(metrics, "backlog_forge_requests_total", status="200") == 2
    assert value(metrics, "backlog_forge_requests_total", status="403") == 1
    assert value(metrics, "backlog_forge_requests_total", status="error") == 1
    assert (
        value(metrics, "backlog_forge_rate_limit_remaining", namespace="team", backlog="web")
        == 4998
    )
    assert (
        value(metrics, "backlog_forge_rate_limit_remaining", namespace="team", backlog="api") == 0
    )


def test_backlog_tasks_by_state_and_gone_with_the_backlog() -> None:
    metrics = Metrics()
    counts = TaskCounts(pending=5, in_progress=1, completed=7, failed=2, blocked=3)
    metrics.backlog_synced("team", "web", BacklogStatus(counts=counts, ready_count=4))
    metrics.backlog_synced("team", "web", BacklogStatus())  # no counts (a failed sync): kept
    metrics.backlog_synced("team", "api", None)
    metrics.forge_answered("team", "web", 200, 10)

    assert {
        state: value(metrics, "backlog_tasks", namespace="team", backlog="web", state=state)
        for state in ("pending", "in_progress", "completed", "failed", "blocked")
    } == {"pending": 5, "in_progress": 1, "completed": 7, "failed": 2, "blocked": 3}
    assert value(metrics, "backlog_tasks_ready", namespace="team", backlog="web") == 4

    metrics.forget_backlog("team", "web")
    metrics.forget_backlog("team", "never-synced")
    assert not [key for key in samples(metrics) if ("backlog", "web") in key[1]]


def test_no_secret_goal_name_or_message_reaches_the_output() -> None:
    metrics = Metrics()
    body = goal("goal-with-a-telling-name", "Queued")
    metrics.goal_seen(None, body)
    result = failure("AuthenticationFailed", f"GitHub refused {TOKEN}", retryable=False)
    metrics.attempt_ended(AttemptEnd(result, job(NOW)), NOW)
    status = GoalStatus(phase=Phase.FAILED, message=TOKEN, start_time=NOW, completion_time=NOW)
    metrics.goal_written(body, status, NOW)
    text = generate_latest(metrics.registry).decode()
    assert TOKEN not in text
    assert "goal-with-a-telling-name" not in text
    assert "GitHub refused" not in text


# ------------------------------------------------------------------------------------- usage


def owned(name: str, kind: str = "Backlog", owner: str = "web", **meta: Any) -> dict[str, Any]:
    """A Goal's body controlled by a Backlog (or GoalSchedule) of the project's group."""
    body = goal(name, "Running")
    body["metadata"]["uid"] = f"uid-{name}"
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "backlog.dev/v1alpha1", "kind": kind, "name": owner, "controller": True}
    ]
    body["metadata"].update(meta)
    return body


def ended(usage: GoalUsage | None, reported: TaskUsage | None, **result: Any) -> GoalStatus:
    """A Goal's status with one more attempt recorded, as the reconciler writes it."""
    worker = published(True) if not result else failure(**result)
    worker = worker.model_copy(update={"usage": reported})
    return GoalStatus(usage=record_attempt(usage, worker, attempt_id="a", now=NOW))


REPORTED = TaskUsage.model_validate(
    {
        "model": "gpt-5",
        "inputTokens": 1200,
        "outputTokens": 80,
        "cost": {"amount": "0.42", "currency": "USD"},
    }
)


def test_an_attempts_usage_is_counted_once_under_the_goals_owner() -> None:
    metrics = Metrics()
    body = owned("web-task")
    first = ended(None, REPORTED)
    metrics.usage_recorded(body, first)
    metrics.usage_recorded(body, first)  # the same attempt again: not counted twice
    second = ended(first.usage, None, reason="TaskFailed", message="exit 3", retryable=True)
    metrics.usage_recorded(body, second)
    owner = {"namespace": "team", "owner_kind": "Backlog", "owner": "web"}

    assert value(metrics, "backlog_task_usage_attempts_total", **owner) == 2
    assert value(metrics, "backlog_task_usage_tokens_total", **owner, direction="input") == 1200
    assert value(metrics, "backlog_task_usage_tokens_total", **owner, direction="output") == 80
    assert value(metrics, "backlog_task_usage_cost_total", **owner, currency="USD") == 0.42
    # The failed attempt's task ran and reported nothing: unreported, both ways.
    assert value(metrics, "backlog_task_usage_unreported_total", **owner, missing="cost") == 1
    assert value(metrics, "backlog_task_usage_unreported_total", **owner, missing="tokens") == 1
    assert "gpt-5" not in generate_latest(metrics.registry).decode()
    # A Goal of its own; and one whose clone failed (its task never ran: not unreported).
    alone = goal("alone", "Running")
    metrics.usage_recorded(
        alone, ended(None, None, reason="CloneFailed", message="x", retryable=True, step="clone")
    )
    none = {"namespace": "team", "owner_kind": "", "owner": ""}
    assert value(metrics, "backlog_task_usage_attempts_total", **none) == 1
    assert value(metrics, "backlog_task_usage_unreported_total", **none, missing="cost") == 0


def test_a_recreated_goal_of_the_same_name_counts_again() -> None:
    metrics = Metrics()
    metrics.usage_recorded(owned("web-task"), ended(None, REPORTED))
    metrics.forget_goal("team/web-task")
    metrics.usage_recorded(owned("web-task", uid="uid-2"), ended(None, REPORTED))
    owner = {"namespace": "team", "owner_kind": "Backlog", "owner": "web"}
    assert value(metrics, "backlog_task_usage_attempts_total", **owner) == 2


def test_hostile_currencies_and_many_owners_make_few_label_values() -> None:
    metrics = Metrics()
    codes = [f"Q{a}{b}" for a in "ABCDEFGHIJ" for b in "ABCDEFGHIJ"]  # 100 valid ISO-like codes
    for index, code in enumerate(codes):
        reported = REPORTED.model_copy(update={"cost": Cost(amount="0.42", currency=code)})
        metrics.usage_recorded(owned(f"g{index}"), ended(None, reported))
    for index in range(MAX_OWNERS + 50):
        metrics.usage_recorded(owned(f"o{index}", owner=f"backlog-{index}"), ended(None, None))
    found = samples(metrics)
    currencies = {
        dict(labels)["currency"]
        for name, labels in found
        if name == "backlog_task_usage_cost_total"
    }
    assert len(currencies) == MAX_CURRENCIES + 1 and "Other" in currencies
    owners = {dict(labels)["owner"] for name, labels in found if name.startswith("backlog_task_")}
    assert len(owners) == MAX_OWNERS + 1 and "Other" in owners
    # Every cost is still counted, under `Other` past the first currencies.
    total = sum(v for (name, _), v in found.items() if name == "backlog_task_usage_cost_total")
    assert total == pytest.approx(0.42 * len(codes))
    # An owner reference of another group, or not the controller, is no owner.
    foreign = owned("foreign")
    foreign["metadata"]["ownerReferences"][0]["apiVersion"] = "evil.example/v1"
    assert metrics.owner_of(foreign["metadata"]) == ("team", "", "")


def owner_body(budget: dict[str, Any] | None, kind: str = "Backlog") -> dict[str, Any]:
    body: dict[str, Any] = {"kind": kind, "metadata": {"name": "web", "namespace": "team"}}
    body["spec"] = {"budget": budget} if budget else {}
    return body


def test_the_budget_state_and_what_each_limit_leaves() -> None:
    metrics = Metrics()
    budget = {
        "perDay": {"cost": {"amount": "1.00", "currency": "USD"}, "tokens": 1000, "attempts": 3}
    }
    day = {
        "date": "2026-02-01",
        "attempts": 2,
        "inputTokens": 900,
        "outputTokens": 300,
        "costs": [{"amount": "0.25", "currency": "USD"}, {"amount": "9", "currency": "EUR"}],
    }
    usage = OwnerUsage.model_validate({"days": [day]})
    spent = BudgetStatus(exhausted=True, reason="TokensSpent", day="2026-02-01")
    metrics.budget_seen("Backlog", owner_body(budget), usage, spent)
    owner = {"namespace": "team", "owner_kind": "Backlog", "owner": "web"}

    assert value(metrics, "backlog_budget_exhausted", **owner) == 1
    assert value(metrics, "backlog_budget_remaining", **owner, limit="attempts") == 1
    assert value(metrics, "backlog_budget_remaining", **owner, limit="tokens") == 0
    assert value(metrics, "backlog_budget_remaining", **owner, limit="cost") == 0.75
    # The next day: nothing used yet, available again; a limit dropped loses its series.
    budget["perDay"].pop("tokens")
    available = BudgetStatus(exhausted=False, reason="Available", day="2026-02-02")
    metrics.budget_seen("Backlog", owner_body(budget), usage, available)
    assert value(metrics, "backlog_budget_exhausted", **owner) == 0
    assert value(metrics, "backlog_budget_remaining", **owner, limit="attempts") == 3
    assert value(metrics, "backlog_budget_remaining", **owner, limit="tokens") is None
    # No budget any more, or the Backlog deleted: no series.
    metrics.budget_seen("Backlog", owner_body(None), usage, None)
    assert value(metrics, "backlog_budget_exhausted", **owner) is None
    metrics.budget_seen("GoalSchedule", owner_body(budget, "GoalSchedule"), usage, available)
    metrics.forget_budget("team", "GoalSchedule", "web")
    assert not [key for key in samples(metrics) if key[0].startswith("backlog_budget_")]


# ------------------------------------------------------------------------------------ health


def test_ready_once_synced_while_active_and_not_stopping() -> None:
    active = [True]
    readiness = Readiness(active=lambda: active[0])
    assert readiness.check() == (False, "starting: listing goals and worker Jobs")
    readiness.mark_synced()
    assert readiness.check() == (True, "ok")
    active[0] = False  # leader election lost the lease
    assert readiness.check() == (False, "standby: another replica is active")
    active[0] = True
    readiness.mark_stopping()
    assert readiness.check() == (False, "stopping")
    assert Readiness().active() is True  # one replica: always the active one
    # A standby runs no kopf, so it never lists: it says it waits, not that it starts.
    assert Readiness(active=lambda: False).check() == (False, "standby: another replica is active")
