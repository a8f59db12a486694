"""Redaction of secrets, and the worker's result contract (shape, size, exit codes)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from backlog_operator.api.common import describe_validation_error
from backlog_operator.api.goal import GoalSpec, PullRequestStatus
from backlog_operator.api.result import MAX_RESULT_BYTES, ExitCode, Outcome, WorkerResult, failure
from backlog_operator.api.worker_result import ResultPullRequest, StepResult, failed
from backlog_operator.redact import Redactor
from backlog_operator.worker.record import RECORD_FILE, CloneRecord


def test_redactor_masks_known_secrets_and_url_userinfo() -> None:
    redact = Redactor(["ghp_topsecret"])
    text = "token ghp_topsecret at https://user:pw@host/x and ssh://git@host/y"
    assert redact(text) == "token *** at https://***@host/x and ssh://git@host/y"


def test_redactor_ignores_too_short_values() -> None:
    assert Redactor(["ab"])("abc") == "abc"


def test_logging_filter_masks_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redact")
    handler_filter = Redactor(["ghp_topsecret"]).filter()
    logger.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger="test.redact"):
            logger.info("cloning with %s", "ghp_topsecret")
    finally:
        logger.removeFilter(handler_filter)
    assert "ghp_topsecret" not in caplog.text
    assert "cloning with ***" in caplog.text


def test_validation_errors_never_echo_input() -> None:
    with pytest.raises(ValueError, match="credentials") as raised:
        GoalSpec.model_validate(
            {"repository": {"url": "https://u:sekrit-token@h/o/r"}, "task": {"command": ["x"]}}
        )
    text = describe_validation_error(raised.value)
    assert "sekrit-token" not in text
    assert text.startswith("repository:")


def test_result_json_is_camel_case_and_maps_exit_codes() -> None:
    ok = WorkerResult(
        outcome=Outcome.PUBLISHED, task_id="t", changed_files=["a"], backlog_updated=True
    )
    assert json.loads(ok.to_json()) == {
        "outcome": "published",
        "taskId": "t",
        "changedFiles": ["a"],
        "backlogUpdated": True,
        "warnings": [],
    }
    assert ok.exit_code is ExitCode.OK
    assert failure("X", "m", retryable=True).exit_code is ExitCode.RETRYABLE
    assert failure("X", "m", retryable=False).exit_code is ExitCode.PERMANENT


def test_result_fits_the_termination_message_limit() -> None:
    many = [f"src/module_{i:05d}/file_with_a_long_name.py" for i in range(2000)]
    result = WorkerResult(outcome=Outcome.PUBLISHED, changed_files=many, warnings=["w" * 5000])
    text = result.to_json()
    assert len(text.encode()) <= MAX_RESULT_BYTES
    data = json.loads(text)
    assert data["changedFilesTruncated"] is True
    assert 0 < len(data["changedFiles"]) < 2000
    assert WorkerResult.from_json(text).outcome is Outcome.PUBLISHED


def test_a_heal_with_many_long_conflicted_paths_still_fits() -> None:
    # A conflict in hundreds of deep paths: the result must still reach the operator whole.
    paths = [f"src/{'deep/' * 40}module_{n:04d}.py" for n in range(300)]
    result = failure("Conflicted", "conflicts", retryable=False, step="heal")
    text = result.model_copy(update={"conflicted_files": paths}).to_json()
    assert len(text.encode()) <= MAX_RESULT_BYTES
    read = WorkerResult.from_json(text)
    assert read.reason == "Conflicted"
    assert read.conflicted_files and set(read.conflicted_files) < set(paths)


def test_long_failure_message_is_cut_to_fit() -> None:
    text = failure("Big", "é" * 5000, retryable=True).to_json()
    assert len(text.encode()) <= MAX_RESULT_BYTES
    assert json.loads(text)["reason"] == "Big"


def test_the_steps_result_has_the_operators_fields() -> None:
    # The steps write a StepResult, the operator reads a WorkerResult: one shape, field by field.
    assert list(StepResult._fields) == list(WorkerResult.model_fields)
    assert list(ResultPullRequest._fields) == list(PullRequestStatus.model_fields)


# A usage as a step's result carries it (`usage_rules.usage_data`), the model's JSON of it.
FULL_USAGE: dict[str, Any] = {
    "model": "gpt-5.1-codex",
    "inputTokens": 12000,
    "outputTokens": 800,
    "cost": {"amount": "0.42", "currency": "USD"},
    "durationSeconds": 95.5,
    "counters": {"toolCalls": 31},
    "warnings": ["1 unknown field(s) ignored"],
}

STEP_RESULTS: list[dict[str, Any]] = [
    {"outcome": Outcome.PUBLISHED},
    {
        "outcome": Outcome.PUBLISHED,
        "task_id": "docs-guide",
        "attempt_id": "attempt-docs-guide-3f9c2a",
        "branch": "backlog/docs-guide-3f9c2a",
        "commit": "a" * 40,
        "pull_request": (7, "https://github.example/o/r/pull/7"),
        "changed_files": ["docs/guide.md", ".backlog/backlog.yaml"],
        "backlog_updated": True,
        "warnings": ["the task removed 'x' from the backlog; not marked"],
        "step": "publish",
    },
    {
        "outcome": Outcome.ALREADY_COMPLETED,
        "task_id": "t",
        "message": "done at abc",
        "step": "clone",
    },
    {
        "outcome": Outcome.FAILED,
        "reason": "RateLimited",
        "message": "é" * 5000,
        "retryable": True,
        "retry_after_seconds": 60,
        "step": "publish",
    },
    {
        "outcome": Outcome.PUBLISHED,
        "changed_files": [f"src/module_{i:05d}/file_with_a_long_name.py" for i in range(2000)],
        "warnings": ["w" * 5000, "v" * 10],
    },
    {
        "outcome": Outcome.PUBLISHED,
        "pull_request": (8, "https://github.example/o/r/pull/8"),
        "pull_request_created": False,
        "step": "publish",
        "usage": FULL_USAGE,
    },
    {
        "outcome": Outcome.FAILED,
        "reason": "Conflicted",
        "message": "merging main into backlog/t-1 conflicts in src/a.py",
        "retryable": False,
        "branch": "backlog/t-1",
        "commit": "b" * 40,
        "conflicted_files": [f"src/{n}.py" for n in range(50)],
        "step": "heal",
    },
    {
        # Too many conflicted paths to fit: the list is cut, the same in both.
        "outcome": Outcome.FAILED,
        "reason": "Conflicted",
        "retryable": False,
        "conflicted_files": [f"src/{'deep/' * 40}{n}.py" for n in range(300)],
        "step": "heal",
    },
    {
        "outcome": Outcome.FAILED,
        "reason": "TaskFailed",
        "step": "task",
        "usage": {"counters": {}, "warnings": ["the usage file is a symbolic link; no usage read"]},
    },
    {
        # Too big even with no changed files: last the usage's warnings and counters go.
        "outcome": Outcome.PUBLISHED,
        "pull_request_created": True,
        "conflicted_files": [f"src/{'y' * 40}/{n}.py" for n in range(50)],
        "changed_files": [f"docs/{'x' * 60}-{n}.md" for n in range(200)],
        "warnings": ["w" * 500] * 10,
        "message": "m" * 3000,
        "usage": {
            **FULL_USAGE,
            "counters": {f"counter.{n:02d}.{'x' * 50}": 10**15 for n in range(16)},
            "warnings": ["u" * 200] * 3,
        },
    },
]


@pytest.mark.parametrize("fields", STEP_RESULTS)
def test_the_steps_result_json_is_the_operators(fields: dict[str, Any]) -> None:
    pull_request = fields.get("pull_request")
    step = StepResult(
        **{**fields, "pull_request": pull_request and ResultPullRequest(*pull_request)}
    )
    model = WorkerResult(
        **{
            **fields,
            "pull_request": pull_request
            and PullRequestStatus(number=pull_request[0], url=pull_request[1]),
        }
    )

    assert step.to_json() == model.to_json()
    assert len(step.to_json().encode()) <= MAX_RESULT_BYTES
    assert step.exit_code is model.exit_code
    assert WorkerResult.from_json(step.to_json()).outcome is step.outcome
    assert step.usage == fields.get("usage")  # fitting changed the JSON, not the result


def test_a_failed_step_result_is_the_operators_failure() -> None:
    step = failed("PathViolation", "changed src/", retryable=False, step="publish", task_id="t")
    model = failure("PathViolation", "changed src/", retryable=False, step="publish", task_id="t")
    assert step.to_json() == model.to_json()
    assert step.exit_code is ExitCode.PERMANENT


def test_a_failed_heal_is_the_operators_failure() -> None:
    fields: dict[str, Any] = {
        "retryable": False,
        "step": "heal",
        "branch": "backlog/t-1",
        "commit": "c" * 40,
        "conflicted_files": ["src/a.py", ".backlog/backlog.yaml"],
    }
    step = failed("Conflicted", "conflicts in src/a.py", **fields)
    model = failure("Conflicted", "conflicts in src/a.py", **fields)
    assert step.to_json() == model.to_json()
    assert json.loads(step.to_json())["conflictedFiles"] == fields["conflicted_files"]


def test_the_clone_record_reads_back_what_it_wrote(tmp_path: Path) -> None:
    record = CloneRecord(
        base_commit="a" * 40,
        backlog_path=".backlog/backlog.yaml",
        task_found=True,
        title="Tïtle",
        allowed_paths=["docs/**"],
        backlog_sha256="b" * 64,
        warnings=["w"],
    )
    record.save(tmp_path)
    assert CloneRecord.load(tmp_path) == record


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},  # an unknown key
        {"task_found": "yes"},
        {"allowed_paths": "docs/**"},
        {"allowed_paths": ["docs/**", 1]},
        {"warnings": None},
        {"backlog_sha256": 5},
        {"base_commit": None},
    ],
)
def test_a_clone_record_of_another_shape_is_refused(
    tmp_path: Path, change: dict[str, object]
) -> None:
    data = {"base_commit": "a" * 40, "backlog_path": ".backlog/backlog.yaml", **change}
    (tmp_path / RECORD_FILE).write_text(json.dumps(data))
    with pytest.raises(ValueError, match=RECORD_FILE):
        CloneRecord.load(tmp_path)


def test_a_clone_record_without_its_commit_is_refused(tmp_path: Path) -> None:
    (tmp_path / RECORD_FILE).write_text(json.dumps({"backlog_path": "b.yaml"}))
    with pytest.raises(ValueError, match="missing"):
        CloneRecord.load(tmp_path)


def test_a_result_with_an_unknown_key_is_refused_not_ignored() -> None:
    written = json.loads(failure("TaskFailed", "boom", retryable=False, step="task").to_json())
    assert WorkerResult.from_json(json.dumps(written)).reason == "TaskFailed"
    with pytest.raises(ValueError, match="smuggled"):
        WorkerResult.from_json(json.dumps({**written, "smuggled": "x"}))
