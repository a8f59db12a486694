"""The operator's log formatters and set-up (`controller.logs`): the object on each line, the
JSON shape, redaction, one handler, kopf's per-event lines only when verbose."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest

from backlog_operator.controller import logs
from backlog_operator.controller.results import Event

TOKEN = "ghp_" + "F0rmatterT0kenValue" * 2
URL = f"https://x-access-token:{TOKEN}@github.com/o/r.git"
GOAL = {
    "apiVersion": "backlog.dev/v1alpha1",
    "kind": "Goal",
    "metadata": {"name": "g1", "namespace": "team", "uid": "u-1"},
}


def record(
    message: str,
    *args: object,
    level: int = logging.INFO,
    name: str = "backlog_operator.controller",
    exc_info: logging._SysExcInfoType | None = None,
    **extra: object,
) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, message, args, exc_info)
    made.__dict__.update(extra)
    return made


def as_json(line: str) -> dict[str, object]:
    assert "\n" not in line  # one line per record
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


def test_text_names_the_object_of_the_cycle_it_is_logged_in() -> None:
    text = logs.formatter("text")

    with logs.about("Goal", "team", "g1"):
        inside = text.format(record("reconcile of %s failed", "goals team/g1"))
    outside = text.format(record("a requeue pass failed"))

    assert "[INFO    ] [team/g1] reconcile of goals team/g1 failed" in inside
    assert outside.endswith("[INFO    ] a requeue pass failed")
    assert "backlog_operator.con" in inside  # kopf's own text format


def test_an_object_named_on_the_line_wins_over_the_cycles() -> None:
    text = logs.formatter("text")

    with logs.about("Backlog", "team", "backlog"):
        line = text.format(record("started", k8s_ref=logs.object_ref(GOAL)))

    assert "[team/g1] started" in line


def test_json_has_time_level_logger_message_and_object() -> None:
    with logs.about("Goal", "team", "g1"):
        line = as_json(logs.formatter("json").format(record("queued", level=logging.WARNING)))

    assert list(line)[:5] == ["time", "level", "logger", "message", "object"]
    assert datetime.fromisoformat(str(line["time"])).tzinfo is not None
    assert (line["level"], line["logger"], line["message"]) == (
        "WARNING",
        "backlog_operator.controller",
        "queued",
    )
    assert line["object"] == {"kind": "Goal", "namespace": "team", "name": "g1"}
    free = as_json(logs.formatter("json").format(record("no object")))
    assert "object" not in free


def test_kopfs_per_object_lines_keep_their_object_in_both_formats() -> None:
    ref = logs.object_ref(GOAL)
    kopf_line = record("Handler 'x' succeeded.", name="kopf.objects", k8s_ref=ref, k8s_skip=True)

    assert "[team/g1] Handler 'x' succeeded." in logs.formatter("text").format(kopf_line)
    line = as_json(logs.formatter("json").format(kopf_line))
    assert line["object"] == ref and line["logger"] == "kopf.objects"
    assert "k8s_skip" not in line


@pytest.mark.parametrize("log_format", logs.LOG_FORMATS)
def test_a_token_never_reaches_a_line(log_format: logs.LogFormat) -> None:
    formatter = logs.formatter(log_format)
    try:
        raise RuntimeError(f"git push {URL} failed")
    except RuntimeError:
        failed = sys.exc_info()

    lines = [
        formatter.format(record(f"cloning {URL}")),
        formatter.format(record("cloning %s with %s", URL, TOKEN)),
        formatter.format(record("push failed", exc_info=failed)),
    ]

    for line in lines:
        assert TOKEN not in line
        assert "x-access-token" not in line
    assert "https://***@github.com/o/r.git" in lines[0]
    assert "with ***" in lines[1]
    assert "RuntimeError: git push https://***@github.com/o/r.git failed" in lines[2]
    if log_format == "json":
        assert "https://***@github.com" in str(as_json(lines[2])["exc_info"])


def test_a_transition_is_one_info_line_with_its_reason_and_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = [
        Event("Normal", "Started", "attempt 1 started: Job g1-1"),
        Event("Warning", "AttemptFailed", "attempt 1 failed: exit 3", cause="TaskFailed"),
    ]
    with caplog.at_level(logging.INFO, logger="backlog_operator.controller"):
        logs.log_transitions(GOAL, events)

    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "Goal Started: attempt 1 started: Job g1-1"),
        (logging.INFO, "Goal AttemptFailed (TaskFailed): attempt 1 failed: exit 3"),
    ]
    line = as_json(logs.formatter("json").format(caplog.records[1]))
    assert (line["reason"], line["eventType"], line["cause"]) == (
        "AttemptFailed",
        "Warning",
        "TaskFailed",
    )
    assert line["object"] == logs.object_ref(GOAL)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The logging set-up of the test process, put back after a test that configures it."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    objects = logging.getLogger("kopf.objects")
    asyncio_logger = logging.getLogger("asyncio")
    saved_objects = objects.level
    saved_asyncio = (asyncio_logger.handlers[:], asyncio_logger.propagate)
    yield
    root.handlers[:], root.level = saved
    objects.setLevel(saved_objects)
    asyncio_logger.handlers[:], asyncio_logger.propagate = saved_asyncio


@pytest.mark.usefixtures("root_logging")
def test_configure_prints_each_line_once_and_hides_kopfs_handler_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A handler added before (a library's `logging.basicConfig`), printing to stderr too.
    logging.getLogger().addHandler(logging.StreamHandler(sys.stderr))
    logs.configure("json")
    logs.configure("json")  # configured again (a test, a restart in-process): still one handler

    logging.getLogger("backlog_operator.controller").info("Goal Started: attempt 1")
    logging.getLogger("backlog_operator.controller").debug("not at INFO")
    ref = logs.object_ref(GOAL)
    logging.getLogger("kopf.objects").info("Handler 'x' succeeded.", extra={"k8s_ref": ref})
    logging.getLogger("kopf.objects").warning("Handler 'x' failed.", extra={"k8s_ref": ref})

    lines = [as_json(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in lines] == ["Goal Started: attempt 1", "Handler 'x' failed."]


@pytest.mark.usefixtures("root_logging")
def test_verbose_shows_debug_and_kopfs_handler_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("text", verbose=True)

    logging.getLogger("backlog_operator.controller").debug("a debug line")
    logging.getLogger("kopf.objects").info(
        "Handler 'x' succeeded.", extra={"k8s_ref": logs.object_ref(GOAL)}
    )

    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].endswith("[DEBUG   ] a debug line")
    assert err[1].endswith("[INFO    ] [team/g1] Handler 'x' succeeded.")
