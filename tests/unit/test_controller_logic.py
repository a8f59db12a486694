"""The operator's pure logic: reading attempts, retry and queue policy, conditions, the Job."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backlog_operator.api.goal import Goal, RetrySpec
from backlog_operator.api.result import Outcome, WorkerResult
from backlog_operator.controller import jobs
from backlog_operator.controller.outcome import attempt_result
from backlog_operator.controller.policy import QueueEntry, admit, backoff_seconds, should_retry
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.status import conditions_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(condition: str | None, reason: str = "") -> dict[str, Any]:
    conditions = (
        [{"type": condition, "status": "True", "reason": reason, "message": "m"}]
        if condition
        else []
    )
    return {"status": {"conditions": conditions}}


def pod(**steps: dict[str, Any]) -> dict[str, Any]:
    init = [{"name": n, "state": {"terminated": steps[n]}} for n in ("clone", "task") if n in steps]
    main = (
        [{"name": "publish", "state": {"terminated": steps["publish"]}}]
        if "publish" in steps
        else []
    )
    return {"status": {"initContainerStatuses": init, "containerStatuses": main}}


PUBLISHED = WorkerResult(outcome=Outcome.PUBLISHED, branch="b", commit="c").to_json()


class TestAttemptResult:
    def test_running_job_has_no_result(self) -> None:
        assert attempt_result(job(None), None) is None

    def test_complete_job_reads_the_publish_message(self) -> None:
        result = attempt_result(job("Complete"), pod(publish={"exitCode": 0, "message": PUBLISHED}))
        assert result is not None and result.outcome is Outcome.PUBLISHED and result.branch == "b"

    def test_failed_clone_reports_its_own_result(self) -> None:
        message = json.dumps(
            {"outcome": "failed", "reason": "BranchNotFound", "message": "no", "retryable": False}
        )
        result = attempt_result(job("Failed"), pod(clone={"exitCode": 65, "message": message}))
        assert result is not None and (result.reason, result.retryable) == ("BranchNotFound", False)

    def test_task_exit_code_is_retryable_unless_listed_permanent(self) -> None:
        failed = pod(clone={"exitCode": 0}, task={"exitCode": 3, "reason": "Error"})
        retry = attempt_result(job("Failed"), failed)
        stop = attempt_result(job("Failed"), failed, permanent_exit_codes=[3])
        assert retry is not None and (retry.reason, retry.retryable) == ("TaskFailed", True)
        assert stop is not None and stop.retryable is False
        assert "exited with 3" in (retry.message or "")

    def test_oom_is_retryable(self) -> None:
        result = attempt_result(
            job("Failed"), pod(clone={"exitCode": 0}, task={"exitCode": 137, "reason": "OOMKilled"})
        )
        assert result is not None and (result.reason, result.retryable) == ("OutOfMemory", True)

    def test_deadline_is_a_timeout(self) -> None:
        result = attempt_result(job("Failed", "DeadlineExceeded"), None)
        assert result is not None and (result.reason, result.retryable) == ("TimedOut", True)

    def test_publish_crash_without_json_maps_exit_code(self) -> None:
        result = attempt_result(
            job("Failed"),
            pod(clone={"exitCode": 0}, task={"exitCode": 0}, publish={"exitCode": 65}),
        )
        assert result is not None and result.retryable is False


class TestPolicy:
    def test_backoff_grows_is_capped_and_jittered(self) -> None:
        retry = RetrySpec(backoff_seconds=10, max_backoff_seconds=60)
        rng = random.Random(1)
        delays = [backoff_seconds(retry, n, rng) for n in (1, 2, 3, 4, 5)]
        assert 5 <= delays[0] <= 10 and 10 <= delays[1] <= 20 and 20 <= delays[2] <= 40
        assert all(30 <= d <= 60 for d in delays[3:])
        assert len({backoff_seconds(retry, 3, rng) for _ in range(20)}) > 1

    def test_retry_stops_at_max_attempts_and_for_permanent_failures(self) -> None:
        retry = RetrySpec(max_attempts=3)
        assert should_retry(retry, 1, True) and should_retry(retry, 2, True)
        assert not should_retry(retry, 3, True)
        assert not should_retry(retry, 1, False)

    def test_admission_orders_by_priority_then_age_and_respects_capacity(self) -> None:
        waiting = [
            QueueEntry("ns/late-urgent", "repo-a", 0, T0 + timedelta(minutes=5)),
            QueueEntry("ns/early", "repo-a", 5, T0),
            QueueEntry("ns/other-repo", "repo-b", 9, T0),
            QueueEntry("ns/early-urgent", "repo-c", 0, T0),
        ]
        admitted, positions = admit(waiting, ["repo-b"], max_per_repository=1, max_total=3)
        assert admitted == ["ns/early-urgent", "ns/late-urgent"]
        assert positions == {"ns/early": 1, "ns/other-repo": 2}


class TestConditions:
    def test_each_phase_sets_the_three_conditions(self) -> None:
        def by_type(phase: str) -> dict[str, str]:
            return {
                c["type"]: c["status"]
                for c in conditions_for(phase, "R", "m", generation=2, now=T0)
            }

        assert by_type("Running") == {"Ready": "False", "Reconciling": "True", "Stalled": "False"}
        assert by_type("Succeeded") == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
        assert by_type("Failed") == {"Ready": "False", "Reconciling": "False", "Stalled": "True"}

    def test_transition_time_changes_only_with_status(self) -> None:
        first = conditions_for("Queued", "WaitingForCapacity", "m", generation=1, now=T0)
        later = T0 + timedelta(minutes=1)
        second = conditions_for("Running", "Running", "m", generation=1, previous=first, now=later)
        times = {c["type"]: c["lastTransitionTime"] for c in second}
        assert times["Ready"] == "2026-01-01T00:00:00Z"  # False → False
        assert times["Reconciling"] == "2026-01-01T00:00:00Z"  # True → True
        third = conditions_for(
            "Succeeded", "Published", "m", generation=1, previous=second, now=later
        )
        assert {c["type"]: c["lastTransitionTime"] for c in third}[
            "Ready"
        ] == "2026-01-01T00:01:00Z"


def goal(**spec: Any) -> Goal:
    body = {
        "metadata": {"name": "docs-guide-goal", "namespace": "team", "uid": "abcdef12-3456"},
        "spec": {
            "repository": {
                "url": "https://github.com/o/r.git",
                "credentialsSecret": {"name": "forge"},
            },
            "backlog": {"taskId": "docs-guide"},
            "task": {
                "image": "busybox:1.37",
                "command": ["sh", "-c", "true"],
                "timeoutSeconds": 600,
            },
            **spec,
        },
    }
    return Goal.model_validate(body)


class TestJob:
    def test_job_shape(self) -> None:
        manifest = jobs.build_job(goal(), 2, OperatorSettings(worker_image="op:1"))
        spec = manifest["spec"]
        pod_spec = spec["template"]["spec"]
        assert manifest["metadata"]["name"] == jobs.job_name("docs-guide-goal", "abcdef12-3456", 2)
        assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 600)
        assert "ttlSecondsAfterFinished" in spec
        assert [c["name"] for c in pod_spec["initContainers"]] == ["clone", "task"]
        assert [c["name"] for c in pod_spec["containers"]] == ["publish"]
        assert pod_spec["automountServiceAccountToken"] is False
        assert pod_spec["restartPolicy"] == "Never"
        assert pod_spec["securityContext"]["runAsNonRoot"] is True
        owner = manifest["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("Goal", "abcdef12-3456", True)
        assert manifest["metadata"]["labels"][jobs.LABEL_ATTEMPT] == "2"

    def test_only_clone_and_publish_see_the_credentials(self) -> None:
        pod_spec = jobs.build_job(goal(), 1, OperatorSettings())["spec"]["template"]["spec"]
        containers = {c["name"]: c for c in [*pod_spec["initContainers"], *pod_spec["containers"]]}
        for name in ("clone", "publish"):
            assert any(m["name"] == "credentials" for m in containers[name]["volumeMounts"])
            assert containers[name]["securityContext"]["readOnlyRootFilesystem"] is True
        task = containers["task"]
        assert all(m["name"] != "credentials" for m in task["volumeMounts"])
        assert all(not e["name"].startswith(("BACKLOG_TOKEN", "BACKLOG_GOAL")) for e in task["env"])
        assert task["image"] == "busybox:1.37"
        assert task["command"][:2] == ["/bin/sh", "-c"] and task["command"][-3:] == [
            "sh",
            "-c",
            "true",
        ]
        for container in containers.values():
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert container["securityContext"]["allowPrivilegeEscalation"] is False

    def test_names_are_deterministic_and_differ_per_goal_incarnation(self) -> None:
        assert jobs.job_name("g", "uid-1", 1) == jobs.job_name("g", "uid-1", 1)
        assert jobs.job_name("g", "uid-1", 1) != jobs.job_name("g", "uid-2", 1)
        assert jobs.job_name("x" * 80, "uid-1", 1) != jobs.job_name("x" * 80, "uid-1", 2)
        assert len(jobs.job_name("x" * 80, "uid-1", 12)) <= 63

    def test_worker_gets_the_goal_and_the_operator_default_prefix(self) -> None:
        manifest = jobs.build_job(goal(), 1, OperatorSettings(default_branch_prefix="bot/"))
        env = {
            e["name"]: e["value"]
            for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        passed = json.loads(env["BACKLOG_GOAL"])
        assert passed["spec"]["pullRequest"]["branchPrefix"] == "bot/"
        assert passed["metadata"] == {
            "name": "docs-guide-goal",
            "namespace": "team",
            "uid": "abcdef12-3456",
        }
        assert env["BACKLOG_ATTEMPT_ID"] == jobs.attempt_id(goal(), 1)
        assert env["BACKLOG_TOKEN_FILE"].endswith("/token")


@pytest.mark.parametrize(("raw", "expected"), [("a, b,,c", ["a", "b", "c"]), ("", [])])
def test_settings_read_namespaces_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    monkeypatch.setenv("BACKLOG_OPERATOR_NAMESPACES", raw)
    assert OperatorSettings().namespaces == expected


def test_settings_reject_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLOG_OPERATOR_MAX_RUNNING", "0")
    with pytest.raises(ValueError, match="max_running"):
        OperatorSettings()


def test_operator_refuses_bad_settings_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from backlog_operator.cli import main

    monkeypatch.setenv("BACKLOG_OPERATOR_MAX_RUNNING", "zero")
    assert main(["operator"]) == 64
    err = capsys.readouterr().err
    assert "invalid settings" in err
    assert "max_running" in err
