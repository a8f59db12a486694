"""Redaction of secrets, and the worker's result contract (shape, size, exit codes)."""

from __future__ import annotations

import json
import logging

import pytest

from backlog_operator.api.common import describe_validation_error
from backlog_operator.api.goal import GoalSpec
from backlog_operator.api.result import MAX_RESULT_BYTES, ExitCode, Outcome, WorkerResult, failure
from backlog_operator.redact import Redactor


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


def test_long_failure_message_is_cut_to_fit() -> None:
    text = failure("Big", "é" * 5000, retryable=True).to_json()
    assert len(text.encode()) <= MAX_RESULT_BYTES
    assert json.loads(text)["reason"] == "Big"
