"""The operator's `/metrics`, `/healthz` and `/readyz`, scraped over real HTTP while goals and
Backlogs run through it against the API emulator (and the GitHub stand-in).

The endpoints run on the operator's own event loop, entered before kopf starts as
`backlogctl operator` does (`KopfThread(serving=...)`); the last test runs `backlogctl operator`
itself, in its own process, to check that its settings wire them up.
"""

from __future__ import annotations

import base64
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backlog_operator.adapters.endpoints import Endpoints
from backlog_operator.api.result import Outcome, WorkerResult
from backlog_operator.api.usage import TaskUsage
from backlog_operator.controller.handlers import build_registry
from backlog_operator.controller.health import Readiness
from backlog_operator.controller.metrics import Metrics
from backlog_operator.controller.settings import OperatorSettings
from tests.operator.test_goal_operator import FAST_RETRY, PUBLISHED, Cluster, goal_manifest
from tests.support.emulator import EmulatorServer
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import make_remote
from tests.support.kopf_harness import KopfThread, new_api_client, wait_for
from tests.support.operator_process import OperatorProcess

NS = "default"
BACKLOGS = "backlog.dev/v1alpha1/backlogs"
GOALS = "backlog.dev/v1alpha1/goals"
# A model name is the task's free text: it must reach no label, whatever it holds.
HOSTILE_MODEL = 'gpt"} evil_series{x="1'
USAGE = TaskUsage.model_validate(
    {
        "model": HOSTILE_MODEL,
        "inputTokens": 1200,
        "outputTokens": 80,
        "cost": {"amount": "0.42", "currency": "USD"},
    }
)
TOKEN = "ghp_metricsMustNeverShowThis0123456789"
BACKLOG_FILE = """\
tasks:
  - id: first-task
    title: First
    ready: true
    priority: 1
  - id: second-task
    title: Second
    ready: true
    priority: 2
    requires: [first-task]
  - id: done-task
    title: Done
    status: completed
"""

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Scrape:
    """One answer of `/metrics`: its text, and its samples by (name, labels)."""

    text: str
    samples: Series

    def value(self, name: str, **labels: str) -> float:
        """A sample's value; 0 when the series does not exist (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)


def get(port: int, path: str) -> tuple[int, str]:
    """GET http://127.0.0.1:port/path: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(port: int) -> Scrape:
    status, text = get(port, "/metrics")
    assert status == 200, text
    samples: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(text, samples)


def scrape_until(port: int, ready: Callable[[Scrape], bool], message: str = "metrics") -> Scrape:
    """Scrape until `ready(scrape)` holds (what the watch says reaches the metrics a moment
    after the API has it)."""
    last: list[Scrape] = []

    def check() -> Scrape | None:
        last[:] = [scrape(port)]
        return last[0] if ready(last[0]) else None

    found = wait_for(check, message=lambda: f"{message}:\n{last[0].text if last else ''}")
    assert found is not None
    return found


@contextmanager
def metered_operator(
    server: EmulatorServer, *, start: bool = True, **settings: Any
) -> Iterator[tuple[KopfThread, Endpoints]]:
    """The operator with its endpoints on a port the system picks, as `backlogctl operator`
    serves them (its own registry, its readiness)."""
    options: dict[str, Any] = {"requeue_seconds": 0.1, "worker_image": "backlog-operator:test"}
    options.update(settings)
    metrics, readiness = Metrics(), Readiness()
    registry = build_registry(
        OperatorSettings(**options),
        lambda: new_api_client(server),
        login=False,
        retry=FAST_RETRY,
        metrics=metrics,
        readiness=readiness,
    )
    endpoints = Endpoints(metrics.registry, readiness.check, host="127.0.0.1", port=0)
    operator = KopfThread(server, registry=registry, serving=endpoints)
    operator.start(wait=start)
    with operator:
        yield operator, endpoints


@pytest.fixture
def cluster(emulator_server: EmulatorServer, project_crds: object) -> Cluster:
    return Cluster(emulator_server)


def test_a_goal_that_succeeds_and_one_that_fails_are_counted(
    cluster: Cluster, emulator_server: EmulatorServer
) -> None:
    with metered_operator(emulator_server) as (_, endpoints):
        port = endpoints.port
        before = scrape(port)
        cluster.create(goal_manifest("goal-that-publishes", task="docs-guide", repo="o/one"))
        failing = goal_manifest("goal-that-fails", task="ci-cache", repo="o/two")
        failing["spec"]["retry"] = {"maxAttempts": 1}
        cluster.create(failing)
        [published_job] = cluster.wait_jobs("goal-that-publishes", 1)
        [failed_job] = cluster.wait_jobs("goal-that-fails", 1)
        cluster.finish(published_job, PUBLISHED.model_copy(update={"pull_request_created": True}))
        cluster.finish(failed_job, exit_codes={"task": 3})
        cluster.wait_phase("goal-that-publishes", "Succeeded")
        cluster.wait_phase("goal-that-fails", "Failed", reason="TaskFailed")
        # What the watch says (the phases), what the status writes record (the runs, with the
        # attempts) and the cycles' ends reach the metrics in any order: wait for all three.
        after = scrape_until(
            port,
            lambda s: (
                s.value("backlog_goals", namespace=NS, phase="Succeeded") == 1
                and s.value("backlog_goals", namespace=NS, phase="Failed") == 1
                and s.value("backlog_goal_run_duration_seconds_count", phase="Succeeded") == 1
                and s.value("backlog_goal_run_duration_seconds_count", phase="Failed") == 1
                and s.value(
                    "controller_runtime_reconcile_total", controller="goal", result="success"
                )
                >= 4
            ),
        )

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("backlog_goal_attempts_total", outcome="published", reason="Published") == 1
    assert grew("backlog_goal_attempts_total", outcome="failed", reason="TaskFailed") == 1
    assert grew("backlog_goal_attempt_duration_seconds_count", outcome="published") == 1
    assert grew("backlog_goal_attempt_duration_seconds_count", outcome="failed") == 1
    # The failed attempt's Pod ran clone and task; publish never started.
    assert grew("backlog_goal_step_duration_seconds_count", step="clone") == 2
    assert grew("backlog_goal_step_duration_seconds_count", step="task") == 2
    assert grew("backlog_goal_step_duration_seconds_count", step="publish") == 1
    assert grew("backlog_goal_run_duration_seconds_count", phase="Succeeded") == 1
    assert grew("backlog_goal_run_duration_seconds_count", phase="Failed") == 1
    assert grew("backlog_goal_queue_wait_seconds_count") == 2
    assert grew("backlog_pull_requests_total", action="opened") == 1
    assert grew("backlog_pull_requests_total", action="reused") == 0
    assert after.value("backlog_goals", namespace=NS, phase="Running") == 0
    # Each goal: its start, its Job's events, its end; none failed.
    reconciles = grew("controller_runtime_reconcile_total", controller="goal", result="success")
    assert grew("controller_runtime_reconcile_total", controller="goal", result="error") == 0
    assert grew("controller_runtime_reconcile_time_seconds_count", controller="goal") == reconciles
    assert after.value("backlog_goal_slots_limit") == 10
    assert after.value("backlog_operator_build_info", version="0.1.0") == 1
    # No goal's name, no task id: labels are kinds, phases, outcomes and reasons.
    for word in ("goal-that-publishes", "goal-that-fails", "docs-guide", "ci-cache", "o/one"):
        assert word not in after.text


def test_a_goals_reported_usage_is_counted_once_whatever_rewrites_its_status(
    cluster: Cluster, emulator_server: EmulatorServer
) -> None:
    alone = {"namespace": NS, "owner_kind": "", "owner": ""}
    with metered_operator(emulator_server) as (_, endpoints):
        cluster.create(goal_manifest("goal-with-usage"))
        [job] = cluster.wait_jobs("goal-with-usage", 1)
        cluster.finish(job, PUBLISHED.model_copy(update={"usage": USAGE}))
        cluster.wait_phase("goal-with-usage", "Succeeded")
        counted = scrape_until(
            endpoints.port,
            lambda s: s.value("backlog_task_usage_attempts_total", **alone) == 1,
        )
        # The spec edited after the end: the status is written again (observedGeneration, an
        # event posted after the write is recorded), with the same attempt in it.
        cluster.api.patch_object(GOALS, NS, "goal-with-usage", {"spec": {"priority": 5}})
        wait_for(
            lambda: ("Normal", "SpecChangedAfterFinish") in cluster.events("goal-with-usage"),
            message="the status was not written again",
        )
        assert cluster.status("goal-with-usage")["observedGeneration"] == 2
        again = scrape(endpoints.port)
    for scraped in (counted, again):
        assert scraped.value("backlog_task_usage_attempts_total", **alone) == 1
        tokens = scraped.value("backlog_task_usage_tokens_total", **alone, direction="input")
        assert tokens == 1200
        assert scraped.value("backlog_task_usage_tokens_total", **alone, direction="output") == 80
        assert scraped.value("backlog_task_usage_cost_total", **alone, currency="USD") == 0.42
        assert scraped.value("backlog_task_usage_unreported_total", **alone, missing="cost") == 0
        assert "gpt" not in scraped.text and "evil_series" not in scraped.text
    assert cluster.status("goal-with-usage")["usage"]["total"]["attempts"] == 1


def test_a_reconcile_that_fails_is_counted_as_an_error(
    cluster: Cluster, emulator_server: EmulatorServer
) -> None:
    cluster.api.faults.add(verb="create", resource="jobs", status=500, times=1)
    with metered_operator(emulator_server) as (_, endpoints):
        cluster.create(goal_manifest("goal-retried"))
        cluster.wait_phase("goal-retried", "Running")
        after = scrape(endpoints.port)
    errors = after.value("controller_runtime_reconcile_errors_total", controller="goal")
    assert errors >= 1  # the refused create (and any conflict its retry met)
    assert after.value("controller_runtime_reconcile_total", controller="goal", result="error") == (
        errors
    )
    assert after.value("controller_runtime_reconcile_errors_total", controller="backlog") == 0


def test_the_queue_depth_and_the_slots_held_follow_the_capacity(
    cluster: Cluster, emulator_server: EmulatorServer
) -> None:
    with metered_operator(emulator_server, max_running=1) as (_, endpoints):
        for index in range(3):
            cluster.create(goal_manifest(f"queued-{index}", task=f"t{index}", repo=f"o/r{index}"))
        waiting = scrape_until(
            endpoints.port,
            lambda s: (
                s.value("backlog_goals", namespace=NS, phase="Queued") == 2
                and s.value("backlog_goals", namespace=NS, phase="Running") == 1
            ),
        )
        assert waiting.value("backlog_goal_queue_depth") == 2
        assert waiting.value("backlog_goal_slots_held") == 1
        assert waiting.value("backlog_goal_slots_limit") == 1
        [running] = [name for name in ("queued-0", "queued-1", "queued-2") if cluster.jobs_of(name)]
        cluster.finish(cluster.jobs_of(running)[0], PUBLISHED)
        moved = scrape_until(
            endpoints.port,
            lambda s: (
                s.value("backlog_goals", namespace=NS, phase="Succeeded") == 1
                and s.value("backlog_goals", namespace=NS, phase="Running") == 1
                # Each admission's wait is observed as the slot is taken, which a loaded
                # machine may let the phase gauge (from the watch) overtake.
                and s.value("backlog_goal_queue_wait_seconds_count") == 2
            ),
        )
    assert moved.value("backlog_goal_queue_depth") == 1


def test_readyz_says_ready_only_once_the_start_up_listing_is_done(
    cluster: Cluster, emulator_server: EmulatorServer
) -> None:
    fault = cluster.api.faults.add(verb="list", resource="goals", status=500)
    with metered_operator(emulator_server, start=False) as (operator, endpoints):
        port = wait_for(lambda: endpoints.port, message="the endpoints never listened")
        # The listing fails and is tried again: alive, and not ready.
        wait_for(lambda: cluster.requests("GET", "/apis/backlog.dev/v1alpha1/goals") >= 2)
        assert get(port, "/healthz") == (200, "ok\n")
        status, why = get(port, "/readyz")
        assert (status, why) == (503, "starting: listing goals and worker Jobs\n")
        cluster.api.faults.remove(fault)
        operator.wait_ready()
        assert get(port, "/readyz") == (200, "ok\n")
        assert get(port, "/healthz") == (200, "ok\n")
        assert get(port, "/nothing-here")[0] == 404


def test_backlog_tasks_and_forge_answers_are_counted_and_no_secret_shows(
    cluster: Cluster, emulator_server: EmulatorServer, tmp_path: Path
) -> None:
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "forge-token", "namespace": NS},
            "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
        }
    )
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG_FILE})
    with (
        GitHubStandIn("octo/project", token=TOKEN) as github,
        metered_operator(emulator_server, cache_dir=str(tmp_path / "cache")) as (_, endpoints),
    ):
        github.rate_remaining = 4321
        cluster.create(_backlog(str(remote), github.base_url))
        synced = scrape_until(
            endpoints.port,
            # The stand-in counts down from there, one request at a time, as GitHub does.
            lambda s: (
                4000
                < s.value("backlog_forge_rate_limit_remaining", namespace=NS, backlog="team")
                == github.rate_remaining
                and s.value("backlog_tasks_ready", namespace=NS, backlog="team") == 1
            ),
        )
        # A Goal of the Backlog, with the token, runs; its failure's reason is counted.
        goal = wait_for(lambda: cluster.api.list_objects("backlog.dev/v1alpha1/goals", NS))[0]
        name = goal["metadata"]["name"]
        [job] = cluster.wait_jobs(name, 1)
        cluster.finish(
            job,
            WorkerResult(
                outcome=Outcome.FAILED,
                reason="PathViolation",
                message=f"not {TOKEN}",
                retryable=False,
                step="publish",
            ),
            exit_codes={"publish": 65},
        )
        cluster.wait_phase(name, "Failed")
        github.fail_next(503, times=1000)  # the next sync's forge answers 503
        cluster.api.patch_object(BACKLOGS, NS, "team", {"spec": {"syncIntervalSeconds": 11}})
        final = scrape_until(
            endpoints.port,
            lambda s: (
                s.value("backlog_forge_requests_total", status="503") >= 1
                and s.value("backlog_goal_attempts_total", outcome="failed", reason="PathViolation")
                == 1
            ),
        )
        cluster.api.delete_object(BACKLOGS, NS, "team")
        gone = scrape_until(
            endpoints.port,
            lambda s: (
                (
                    "backlog_tasks",
                    frozenset({("namespace", NS), ("backlog", "team"), ("state", "pending")}),
                )
                not in s.samples
            ),
        )
    assert synced.value("backlog_forge_requests_total", status="200") >= 1
    tasks = {
        state: synced.value("backlog_tasks", namespace=NS, backlog="team", state=state)
        for state in ("pending", "in_progress", "completed", "failed", "blocked")
    }
    assert tasks == {"pending": 2, "in_progress": 0, "completed": 1, "failed": 0, "blocked": 0}
    assert synced.value("backlog_tasks_ready", namespace=NS, backlog="team") == 1
    assert (
        final.value("controller_runtime_reconcile_total", controller="backlog", result="success")
        >= 1
    )
    for text in (synced.text, final.text, gone.text):
        assert TOKEN not in text
        assert base64.b64encode(TOKEN.encode()).decode() not in text
        assert "forge-token" not in text and "first-task" not in text
    assert "backlog_forge_rate_limit_remaining{" not in gone.text


def test_a_backlogs_spent_budget_and_its_goals_usage_are_shown(
    cluster: Cluster, emulator_server: EmulatorServer, tmp_path: Path
) -> None:
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "forge-token", "namespace": NS},
            "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
        }
    )
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": BACKLOG_FILE})
    owner = {"namespace": NS, "owner_kind": "Backlog", "owner": "team"}
    with (
        GitHubStandIn("octo/project", token=TOKEN) as github,
        metered_operator(emulator_server, cache_dir=str(tmp_path / "cache")) as (_, endpoints),
    ):
        backlog = _backlog(str(remote), github.base_url)
        backlog["spec"]["budget"] = {"perDay": {"attempts": 5, "tokens": 1000}}
        cluster.create(backlog)
        available = scrape_until(
            endpoints.port,
            lambda s: (
                ("backlog_budget_exhausted", frozenset(owner.items())) in s.samples
                and s.value("backlog_budget_exhausted", **owner) == 0
            ),
        )
        goal = wait_for(lambda: cluster.api.list_objects(GOALS, NS))[0]
        [job] = cluster.wait_jobs(goal["metadata"]["name"], 1)
        # Its task reports 1280 tokens, of the 1000 of the day: the budget is spent.
        cluster.finish(job, PUBLISHED.model_copy(update={"usage": USAGE}))
        spent = scrape_until(
            endpoints.port,
            lambda s: (
                s.value("backlog_task_usage_attempts_total", **owner) == 1
                and s.value("backlog_budget_exhausted", **owner) == 1
            ),
        )
        cluster.api.delete_object(BACKLOGS, NS, "team")
        gone = scrape_until(
            endpoints.port, lambda s: "backlog_budget_exhausted{" not in s.text, "budget gone"
        )
    assert available.value("backlog_budget_remaining", **owner, limit="tokens") == 1000
    assert available.value("backlog_budget_remaining", **owner, limit="attempts") == 5
    assert spent.value("backlog_budget_remaining", **owner, limit="tokens") == 0
    assert spent.value("backlog_budget_remaining", **owner, limit="attempts") == 4
    assert spent.value("backlog_task_usage_tokens_total", **owner, direction="input") == 1200
    assert spent.value("backlog_task_usage_cost_total", **owner, currency="USD") == 0.42
    assert "backlog_budget_remaining{" not in gone.text
    # Counters outlive their owner (a deleted Backlog's usage still happened).
    assert gone.value("backlog_task_usage_attempts_total", **owner) == 1


def _backlog(url: str, api: str) -> dict[str, Any]:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Backlog",
        "metadata": {"name": "team", "namespace": NS},
        "spec": {
            "repository": {"url": url, "credentialsSecret": {"name": "forge-token"}},
            "goalTemplate": {
                "spec": {
                    "task": {"image": "busybox", "command": ["true"]},
                    "pullRequest": {
                        "provider": "github",
                        "apiBaseUrl": api,
                        "repository": "octo/project",
                    },
                    "retry": {"maxAttempts": 1},
                }
            },
            "syncIntervalSeconds": 10,
        },
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_backlogctl_operator_serves_the_endpoints_its_settings_name(
    emulator_server: EmulatorServer, project_crds: object, tmp_path: Path
) -> None:
    port = _free_port()
    settings = {"METRICS_PORT": str(port), "METRICS_BIND_ADDRESS": "127.0.0.1"}
    with OperatorProcess(emulator_server, settings, log=tmp_path / "operator.log") as operator:
        ready = wait_for(
            lambda: _answer(port, "/readyz") == (200, "ok\n"),
            timeout=30,
            message=lambda: (tmp_path / "operator.log").read_text(errors="replace")[-3000:],
        )
        assert ready
        assert get(port, "/healthz") == (200, "ok\n")
        assert "backlog_operator_build_info" in get(port, "/metrics")[1]
        operator.kill()


def _answer(port: int, path: str) -> tuple[int, str] | None:
    try:
        return get(port, path)
    except OSError:  # not listening yet
        return None
