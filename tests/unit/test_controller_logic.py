"""The operator's pure logic: reading attempts, retry and queue policy, conditions, the Job."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from backlog_operator.api import worker_contract
from backlog_operator.api.common import Condition, describe_validation_error
from backlog_operator.api.goal import Goal, GoalStatus, Phase, RetrySpec
from backlog_operator.api.labels import LABEL_ATTEMPT
from backlog_operator.api.quantity import ResourceRequirements, parse_quantity
from backlog_operator.api.result import Outcome, WorkerResult
from backlog_operator.controller.conditions import mark_ready, mark_reconciling, mark_stalled
from backlog_operator.controller.goals import job as jobs
from backlog_operator.controller.goals import reconciler
from backlog_operator.controller.goals.capacity import QueueEntry, admit
from backlog_operator.controller.goals.outcome import attempt_result
from backlog_operator.controller.goals.retry import backoff_seconds, should_retry
from backlog_operator.controller.settings import DEFAULT_TASK_RESOURCES, OperatorSettings
from backlog_operator.controller.status import evolve, read_status, status_patch, to_wire

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def conditions_for(
    phase: str,
    reason: str,
    message: str,
    *,
    generation: int | None,
    previous: list[dict[str, Any]] | None = None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The Goal's conditions for `phase`, as written into the status."""
    conditions = reconciler.conditions_for(
        Phase(phase),
        reason,
        message,
        generation=generation,
        previous=[Condition.model_validate(item) for item in previous or []],
        now=now,
    )
    return [condition.to_wire() for condition in conditions]


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

    def test_every_kind_marks_the_same_three_conditions(self) -> None:
        def summary(conditions: list[Condition]) -> list[tuple[str, str, str, str]]:
            return [(c.type, c.status, c.reason, c.message) for c in conditions]

        ready = mark_ready([], "Synced", "ok", generation=4, now=T0)
        assert summary(ready) == [
            ("Ready", "True", "Synced", "ok"),
            ("Reconciling", "False", "Finished", ""),
            ("Stalled", "False", "NotStalled", ""),
        ]
        assert {c.observed_generation for c in ready} == {4}
        later = T0 + timedelta(minutes=1)
        busy = mark_reconciling(ready, "ForgeUnavailable", "down", generation=4, now=later)
        assert summary(busy)[:2] == [
            ("Ready", "False", "ForgeUnavailable", "down"),
            ("Reconciling", "True", "ForgeUnavailable", "down"),
        ]
        stalled = mark_stalled(busy, "InvalidBacklog", "bad", generation=5, now=later)
        assert summary(stalled)[2] == ("Stalled", "True", "InvalidBacklog", "bad")
        times = {c.type: c.last_transition_time for c in stalled}
        assert times == {"Ready": later, "Reconciling": later, "Stalled": later}
        assert {c.type: c.last_transition_time for c in busy}["Stalled"] == T0


class TestStatusWriter:
    def test_a_field_set_to_none_or_unset_is_written_as_null(self) -> None:
        previous = {"phase": "Failed", "jobName": "j", "queuePosition": 2, "attempts": 3}
        status = evolve(
            read_status(GoalStatus, previous),
            unset=("job_name",),
            queue_position=None,
            phase=Phase.PENDING,
        )
        assert status_patch(previous, status) == {
            "phase": "Pending",
            "jobName": None,
            "queuePosition": None,
        }

    def test_only_what_changed_is_written_and_nothing_when_nothing_did(self) -> None:
        previous = {"phase": "Queued", "startTime": "2026-01-01T00:00:00Z", "foreign": 1}
        status = read_status(GoalStatus, previous)
        assert status_patch(previous, status) is None
        moved = evolve(status, start_time=T0 + timedelta(seconds=1, microseconds=5))
        assert status_patch(previous, moved) == {"startTime": "2026-01-01T00:00:01Z"}

    def test_defaults_never_set_are_not_written(self) -> None:
        status = evolve(GoalStatus(), phase=Phase.QUEUED)
        assert to_wire(status) == {"phase": "Queued"}
        assert status_patch(None, status) == {"phase": "Queued"}

    def test_a_misspelt_field_is_an_error(self) -> None:
        with pytest.raises(ValidationError):
            evolve(GoalStatus(), jobname="j")
        with pytest.raises(ValueError, match="no field"):
            evolve(GoalStatus(), unset=("jobname",))

    def test_a_status_field_that_does_not_validate_is_left_out(self) -> None:
        status = read_status(GoalStatus, {"phase": "Sleeping", "attempts": 2})
        assert (status.phase, status.attempts) == (None, 2)


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
        assert manifest["metadata"]["labels"][LABEL_ATTEMPT] == "2"

    def test_only_clone_and_publish_see_the_credentials(self) -> None:
        pod_spec = jobs.build_job(goal(), 1, OperatorSettings())["spec"]["template"]["spec"]
        containers = {c["name"]: c for c in [*pod_spec["initContainers"], *pod_spec["containers"]]}
        for name in ("clone", "publish"):
            assert any(m["name"] == "credentials" for m in containers[name]["volumeMounts"])
            assert containers[name]["securityContext"]["readOnlyRootFilesystem"] is True
        task = containers["task"]
        assert all(m["name"] != "credentials" for m in task["volumeMounts"])
        assert all(
            not e["name"].startswith(("BACKLOG_TOKEN", "BACKLOG_GOAL", "BACKLOG_PRIVATE"))
            for e in task["env"]
        )
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


def pod_spec_of(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def containers_of(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod_spec = pod_spec_of(manifest)
    return {c["name"]: c for c in [*pod_spec["initContainers"], *pod_spec["containers"]]}


def volumes_of(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec_of(manifest)["volumes"]}


def task_spec(**task: Any) -> dict[str, Any]:
    return {"image": "busybox:1.37", "command": ["sh", "-c", "true"], **task}


class TestJobHardening:
    """What keeps the untrusted task step away from the worker's state and the node's disk."""

    def test_private_volume_is_mounted_only_into_clone_and_publish(self) -> None:
        manifest = jobs.build_job(goal(), 1, OperatorSettings())
        containers = containers_of(manifest)
        for name in ("clone", "publish"):
            mounts = {m["name"]: m for m in containers[name]["volumeMounts"]}
            assert mounts["private"]["mountPath"] == worker_contract.PRIVATE_DIR == "/private"
            assert mounts["workspace"]["mountPath"] == worker_contract.WORKSPACE
            assert not mounts["private"].get("readOnly")
            env = {e["name"]: e["value"] for e in containers[name]["env"]}
            assert env["BACKLOG_PRIVATE_DIR"] == "/private"
        task = containers["task"]
        assert [m["name"] for m in task["volumeMounts"]] == ["workspace"]
        assert all(m["mountPath"] != "/private" for m in task["volumeMounts"])
        assert "BACKLOG_PRIVATE_DIR" not in {e["name"] for e in task["env"]}
        assert "private" in volumes_of(manifest)

    def test_task_gets_neither_private_dir_nor_credentials_even_with_env_of_its_own(self) -> None:
        manifest = jobs.build_job(
            goal(task=task_spec(env=[{"name": "LOG_LEVEL", "value": "info"}])),
            1,
            OperatorSettings(),
        )
        task = containers_of(manifest)["task"]
        assert {e["name"] for e in task["env"]} == {"LOG_LEVEL", "BACKLOG_WORKSPACE"}
        assert {m["name"] for m in task["volumeMounts"]} == {"workspace"}

    def test_without_a_token_the_private_volume_is_still_there(self) -> None:
        body = {"url": "https://github.com/o/r.git"}
        manifest = jobs.build_job(goal(repository=body), 1, OperatorSettings())
        assert set(volumes_of(manifest)) == {"workspace", "private", "tmp"}
        for name in ("clone", "publish"):
            assert {m["name"] for m in containers_of(manifest)[name]["volumeMounts"]} == {
                "workspace",
                "private",
                "tmp",
            }

    def test_workspace_and_private_volumes_carry_the_default_size_limit(self) -> None:
        volumes = volumes_of(jobs.build_job(goal(), 1, OperatorSettings()))
        assert volumes["workspace"] == {"name": "workspace", "emptyDir": {"sizeLimit": "4Gi"}}
        assert volumes["private"] == {"name": "private", "emptyDir": {"sizeLimit": "4Gi"}}
        assert volumes["tmp"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}

    def test_operator_setting_and_goal_override_the_size_limit(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("BACKLOG_OPERATOR_WORKSPACE_SIZE_LIMIT", "10Gi")
        settings = OperatorSettings()
        assert settings.workspace_size_limit == "10Gi"
        volumes = volumes_of(jobs.build_job(goal(), 1, settings))
        assert volumes["workspace"]["emptyDir"]["sizeLimit"] == "10Gi"
        assert volumes["private"]["emptyDir"]["sizeLimit"] == "10Gi"
        big = goal(task=task_spec(workspaceSizeLimit="20Gi"))
        assert big.spec.task.workspace_size_limit == "20Gi"
        volumes = volumes_of(jobs.build_job(big, 1, settings))
        assert volumes["workspace"]["emptyDir"]["sizeLimit"] == "20Gi"
        assert volumes["private"]["emptyDir"]["sizeLimit"] == "20Gi"

    def test_task_gets_default_resources(self) -> None:
        task = containers_of(jobs.build_job(goal(), 1, OperatorSettings()))["task"]
        assert task["resources"] == {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"memory": "4Gi"},
        }
        assert "cpu" not in task["resources"]["limits"], "a CPU limit would throttle the agent"
        assert DEFAULT_TASK_RESOURCES.to_container() == task["resources"]

    def test_goal_resources_replace_the_default_as_a_whole(self) -> None:
        own = {"requests": {"cpu": "2"}, "limits": {"cpu": 4}}
        task = containers_of(
            jobs.build_job(goal(task=task_spec(resources=own)), 1, OperatorSettings())
        )["task"]
        # No default memory request or limit mixed in; the integer goes out as a string, which
        # the official client requires.
        assert task["resources"] == {"requests": {"cpu": "2"}, "limits": {"cpu": "4"}}
        bare = containers_of(
            jobs.build_job(goal(task=task_spec(resources={})), 1, OperatorSettings())
        )["task"]
        assert "resources" not in bare

    def test_operator_setting_overrides_the_default_resources(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(
            "BACKLOG_OPERATOR_TASK_RESOURCES",
            '{"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "8Gi"}}',
        )
        settings = OperatorSettings()
        task = containers_of(jobs.build_job(goal(), 1, settings))["task"]
        assert task["resources"] == {
            "requests": {"cpu": "1", "memory": "2Gi"},
            "limits": {"memory": "8Gi"},
        }
        own = {"limits": {"memory": "1Gi"}}
        task = containers_of(jobs.build_job(goal(task=task_spec(resources=own)), 1, settings))[
            "task"
        ]
        assert task["resources"] == own
        monkeypatch.setenv("BACKLOG_OPERATOR_TASK_RESOURCES", "{}")
        task = containers_of(jobs.build_job(goal(), 1, OperatorSettings()))["task"]
        assert "resources" not in task

    def test_worker_steps_keep_their_own_resources(self) -> None:
        own = {"limits": {"memory": "16Gi"}}
        containers = containers_of(
            jobs.build_job(goal(task=task_spec(resources=own)), 1, OperatorSettings())
        )
        for name in ("clone", "publish"):
            assert containers[name]["resources"]["limits"] == {"memory": "512Mi"}

    @pytest.mark.parametrize(
        "task",
        [
            {},
            {"resources": {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": 2**31}}},
            {"resources": {}, "workspaceSizeLimit": "500M"},
            {"workspaceSizeLimit": "1.5Gi"},
        ],
        ids=["defaults", "own-resources", "no-resources", "fractional-size"],
    )
    def test_rendered_job_is_a_valid_kubernetes_job(self, task: dict[str, Any]) -> None:
        manifest = jobs.build_job(goal(task=task_spec(**task)), 3, OperatorSettings(), run=2)
        try:
            kubernetes_validate.validate(manifest, "1.32", strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"the Job does not validate: {error.message}")


def invalid_goal(**task: Any) -> str:
    """The InvalidSpec message of a goal with this task, as the reconciler writes it."""
    with pytest.raises(ValidationError) as caught:
        goal(task=task_spec(**task))
    return describe_validation_error(caught.value)


class TestGoalQuantities:
    """A real API server answers 422 to these; the model refuses them first, naming the field."""

    @pytest.mark.parametrize("size", ["4GB", "4 Gi", "-1Gi", "Gi", "", "1e", "0", "0Gi"])
    def test_bad_workspace_size_limit(self, size: str) -> None:
        message = invalid_goal(workspaceSizeLimit=size)
        assert message.startswith("spec.task.workspaceSizeLimit: ")
        assert message.endswith(
            (
                "the size limit is not a Kubernetes quantity (such as 4Gi, 512Mi, 250m or 2)",
                "the size limit must be greater than zero",
            )
        )

    @pytest.mark.parametrize(
        ("resources", "expected"),
        [
            ({"requests": {"memory": "512MB"}}, "requests.memory is not a Kubernetes quantity"),
            ({"limits": {"cpu": "one"}}, "limits.cpu is not a Kubernetes quantity"),
            ({"limits": {"memory": -1}}, "limits.memory is negative"),
            (
                {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}},
                "requests.memory must not be above limits.memory",
            ),
            (
                {"requests": {"cpu": "1500m"}, "limits": {"cpu": "1.2"}},
                "requests.cpu must not be above limits.cpu",
            ),
            ({"requests": {"gpu": 1}}, "requests.gpu is not a resource a container can ask for"),
            (
                {"requests": {"example.com/gpu": 1}},
                "limits.example.com/gpu is required",
            ),
            (
                {"limits": {"example.com/gpu": "500m"}},
                "limits.example.com/gpu must be a whole number",
            ),
            ({"claims": [{"name": "x"}]}, "spec.task.resources.claims"),
        ],
    )
    def test_bad_resources(self, resources: dict[str, Any], expected: str) -> None:
        message = invalid_goal(resources=resources)
        assert message.startswith("spec.task.resources")
        assert expected in message

    @pytest.mark.parametrize(
        "resources",
        [
            {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "4Gi"}},
            {"requests": {"cpu": "1"}, "limits": {"cpu": "1000m"}},
            {"requests": {"memory": "1G"}, "limits": {"memory": "1Gi"}},
            {
                "requests": {"memory": "1e9"},
                "limits": {"memory": "1Gi", "ephemeral-storage": "10Gi"},
            },
            {"limits": {"example.com/gpu": 1, "hugepages-2Mi": "1Gi", "memory": "2Gi"}},
        ],
    )
    def test_good_resources(self, resources: dict[str, Any]) -> None:
        parsed = goal(task=task_spec(resources=resources)).spec.task.resources
        as_strings = {
            part: {name: str(amount) for name, amount in amounts.items()}
            for part, amounts in resources.items()
        }
        assert parsed is not None and parsed.to_container() == as_strings


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("4Gi", 4 * 2**30),
        ("512Mi", 512 * 2**20),
        ("250m", "0.25"),
        ("1.5", "1.5"),
        ("1e3", 1000),
        ("1E3", 1000),
        ("2E", 2 * 10**18),
        (".5k", 500),
        (7, 7),
    ],
)
def test_quantities_parse_to_their_amount(text: str | int, amount: int | str) -> None:
    from decimal import Decimal

    assert parse_quantity(text) == Decimal(amount)


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


def test_settings_default_the_workspace_size_limit_and_task_resources() -> None:
    settings = OperatorSettings()
    assert settings.workspace_size_limit == "4Gi"
    assert settings.task_resources == DEFAULT_TASK_RESOURCES
    assert settings.task_resources == ResourceRequirements(
        requests={"cpu": "250m", "memory": "512Mi"}, limits={"memory": "4Gi"}
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WORKSPACE_SIZE_LIMIT", "4GB", "is not a Kubernetes quantity"),
        ("WORKSPACE_SIZE_LIMIT", "0", "must be greater than zero"),
        ("TASK_RESOURCES", "cpu=1", "is not JSON"),
        ("TASK_RESOURCES", '["requests"]', "a JSON object with only requests and limits"),
        ("TASK_RESOURCES", '{"claims": []}', "a JSON object with only requests and limits"),
        ("TASK_RESOURCES", '{"requests": {"cpu": "1 core"}}', "requests.cpu is not a Kubernetes"),
        (
            "TASK_RESOURCES",
            '{"requests": {"memory": "8Gi"}, "limits": {"memory": "4Gi"}}',
            "requests.memory must not be above limits.memory",
        ),
        ("TASK_RESOURCES", '{"limits": {"mem": "4Gi"}}', "limits.mem is not a resource"),
    ],
)
def test_settings_refuse_bad_quantities_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(f"BACKLOG_OPERATOR_{variable}", value)
    with pytest.raises(ValidationError) as caught:
        OperatorSettings()
    message = describe_validation_error(caught.value)
    assert f"BACKLOG_OPERATOR_{variable}" in message
    assert expected in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [("WORKSPACE_SIZE_LIMIT", "lots"), ("TASK_RESOURCES", "{not json")],
)
def test_operator_refuses_bad_quantity_settings_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
) -> None:
    from backlog_operator.cli import main

    monkeypatch.setenv(f"BACKLOG_OPERATOR_{variable}", value)
    assert main(["operator"]) == 64
    err = capsys.readouterr().err
    assert "invalid settings" in err
    assert f"BACKLOG_OPERATOR_{variable}" in err
    assert "Traceback" not in err


def test_timestamp_writes_every_time_in_utc() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from backlog_operator.controller.status import timestamp

    berlin_summer = timezone(timedelta(hours=2))
    assert timestamp(datetime(2026, 7, 1, 14, 0, 5, tzinfo=berlin_summer)) == "2026-07-01T12:00:05Z"
    assert timestamp(datetime(2026, 7, 1, 12, 0, 5, tzinfo=UTC)) == "2026-07-01T12:00:05Z"
    assert timestamp(datetime(2026, 7, 1, 12, 0, 5)) == "2026-07-01T12:00:05Z"
