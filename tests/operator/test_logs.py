"""The operator's log, read from its own process (`backlogctl operator`, as the Deployment runs
it) against the API emulator: one line per transition, at INFO, naming its object; kopf's
per-event lines only with `--verbose`; nothing printed twice; `json` lines that parse; no token.

The Backlog's lines are read in-process (its sync needs a git remote and the test's clock).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from backlog_operator.api.result import failure
from backlog_operator.controller import logs
from tests.operator.conftest import CRD_DIR
from tests.operator.test_backlog import LEVIATHAN, Clock, Synced, backlog, operator
from tests.operator.test_goal_operator import PUBLISHED, Cluster, goal_manifest
from tests.support.emulator import EmulatorServer
from tests.support.gitrepos import commit_to_remote, make_remote
from tests.support.operator_process import OperatorProcess

NS = "default"
TOKEN = "ghp_" + "L0gT0kenNeverPrinted" * 2
CREDENTIAL_URL = f"https://x-access-token:{TOKEN}@github.com/o/r.git"
# kopf's text format: `[time] logger [LEVEL   ] message`.
TEXT_LINE = re.compile(
    r"^\[[0-9-]+ [0-9:,]+\] (?P<logger>\S+)\s+\[(?P<level>[A-Z]+)\s*\] (?P<msg>.*)$"
)

Line = dict[str, Any]  # level, logger, message, object (namespace, name, kind) or None


def _goal_story(server: EmulatorServer) -> None:
    """Two goals, one slot: `ok` starts and publishes while `bad` is queued; then `bad` starts,
    fails once (a retryable failure whose message holds a credential) and then for good."""
    cluster = Cluster(server)
    cluster.create(goal_manifest("ok", task="t-ok"))
    [ok_job] = cluster.wait_jobs("ok", 1)
    cluster.create(goal_manifest("bad", task="t-bad"))
    cluster.wait_phase("bad", "Queued", reason="WaitingForCapacity")
    cluster.finish(ok_job, PUBLISHED)
    cluster.wait_phase("ok", "Succeeded")
    [first] = cluster.wait_jobs("bad", 1)
    pushed = failure(
        "PushFailed", f"push to {CREDENTIAL_URL} refused", retryable=True, step="publish"
    )
    cluster.finish(first, pushed, exit_codes={"publish": 1})
    second = next(
        j for j in cluster.wait_jobs("bad", 2) if j["metadata"]["name"] != first["metadata"]["name"]
    )
    refused = failure(
        "PathViolation", "the task changed src/app.py", retryable=False, step="publish"
    )
    cluster.finish(second, refused, exit_codes={"publish": 65})
    cluster.wait_phase("bad", "Failed")
    # Both outcomes are in the status; their events (and lines) are written right after.
    cluster.api.wait_for(lambda: ("Warning", "Failed") in cluster.events("bad") or None)


def _run(tmp_path: Path, settings: dict[str, str], args: tuple[str, ...] = ()) -> str:
    """The whole output of an operator process that ran the goal story, then stopped."""
    log = tmp_path / "operator.log"
    with EmulatorServer() as server:
        server.emulator.register_crds_from_dir(CRD_DIR)
        with OperatorProcess(server, {"MAX_RUNNING": "1", **settings}, log=log, args=args):
            _goal_story(server)
    return log.read_text(encoding="utf-8")


def _text_lines(output: str) -> list[Line]:
    lines = []
    for raw in output.splitlines():
        match = TEXT_LINE.match(raw)
        assert match, f"not a line of kopf's text format: {raw!r}"
        message = match["msg"]
        about = re.match(r"^\[(?P<ns>[^/\]]+)/(?P<name>[^\]]+)\] (?P<rest>.*)$", message)
        obj = {"namespace": about["ns"], "name": about["name"]} if about else None
        lines.append(
            {
                "level": match["level"],
                "logger": match["logger"],
                "message": about["rest"] if about else message,
                "object": obj,
            }
        )
    return lines


def _json_lines(output: str) -> list[Line]:
    lines = []
    for raw in output.splitlines():
        line = json.loads(raw)  # every line is one JSON object
        assert {"time", "level", "logger", "message"} <= set(line), line
        lines.append(line)
    return lines


# What the goal story must log, once each: (goal, the message's start).
TRANSITIONS = [
    ("ok", "Goal Started: attempt 1 started: Job ok-"),
    ("ok", "Goal Published: pull request #707 on backlog/docs-guide-3f9c2a: https://github.com/"),
    ("bad", "Goal WaitingForCapacity: waiting for capacity (position 1 in the queue)"),
    ("bad", "Goal Started: attempt 1 started: Job bad-"),
    (
        "bad",
        "Goal AttemptFailed (PushFailed): attempt 1 failed: push to https://***@github.com/o/r.git",
    ),
    ("bad", "Goal Started: attempt 2 started: Job bad-"),
    (
        "bad",
        "Goal Failed (PathViolation): attempt 2 failed: the task changed src/app.py "
        "(not retryable)",
    ),
]


def _assert_transitions(lines: list[Line]) -> None:
    for goal, start in TRANSITIONS:
        found = [line for line in lines if line["message"].startswith(start)]
        assert len(found) == 1, f"{start!r}: {len(found)} lines\n" + "\n".join(
            str(line) for line in lines
        )
        [line] = found
        assert line["level"] == "INFO"
        assert line["logger"].startswith("backlog_operator.con")  # kopf's text cuts at 20
        assert line["object"] is not None
        assert (line["object"]["namespace"], line["object"]["name"]) == (NS, goal)


def _assert_printed_once(output: str, lines: list[Line]) -> None:
    assert TOKEN not in output
    starts = [line for line in lines if line["message"].startswith("Activity 'register_lifecycle")]
    assert len(starts) == 3, starts  # startup, login, cleanup: each once
    messages = [(line["logger"], line["message"]) for line in lines]
    assert len(messages) == len(set(messages)), "a line was printed twice"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_each_transition_is_one_info_line_naming_its_goal(tmp_path: Path, log_format: str) -> None:
    output = _run(tmp_path, {"LOG_FORMAT": log_format})

    lines = _text_lines(output) if log_format == "text" else _json_lines(output)
    _assert_transitions(lines)
    _assert_printed_once(output, lines)
    assert not [line for line in lines if line["message"].startswith("Handler ")]
    if log_format == "json":
        for line in lines:
            if line["logger"] == "backlog_operator.controller":
                assert line["object"]["kind"] == "Goal"
                assert line["reason"] in line["message"] and line["eventType"]


def test_verbose_brings_back_kopfs_line_for_every_event(tmp_path: Path) -> None:
    output = _run(tmp_path, {}, ("--verbose", "--log-format", "json"))

    lines = _json_lines(output)
    handled = [line for line in lines if re.match(r"Handler '.*' succeeded", line["message"])]
    assert handled and all(line["object"]["kind"] in {"Goal", "Job"} for line in handled)
    _assert_transitions(lines)
    assert TOKEN not in output


def _more(cluster: Cluster, path: str, before: int) -> bool | None:
    return cluster.requests("GET", path) > before or None


# --- Backlogs, in-process ----------------------------------------------------------------------


class _Captured(logging.Handler):
    """The operator's own lines, formatted as `backlogctl operator --log-format json` does."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logs.formatter("json"))
        self.lines: list[Line] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = json.loads(self.format(record))
        with self._lock:
            self.lines.append(line)

    def about(self, name: str, start: str) -> list[Line]:
        with self._lock:
            return [
                line
                for line in self.lines
                if (line.get("object") or {}).get("name") == name
                and line["message"].startswith(start)
            ]


@pytest.fixture
def captured() -> Iterator[_Captured]:
    handler = _Captured()
    logger = logging.getLogger("backlog_operator")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_backlog_logs_each_new_commit_and_a_failing_sync_once(
    emulator_server: EmulatorServer,
    project_crds: object,
    tmp_path: Path,
    captured: _Captured,
) -> None:
    remote = make_remote(tmp_path, {".backlog/backlog.yaml": LEVIATHAN})
    clock = Clock()
    synced = Synced(emulator_server, clock)
    cluster = Cluster(emulator_server)

    reads = f"/apis/backlog.dev/v1alpha1/namespaces/{NS}/backlogs/team"

    def more_syncs(count: int) -> None:
        """`count` more syncs (each cycle reads the Backlog first), seeing the same commit."""
        for _ in range(count):
            before = cluster.requests("GET", reads)
            synced.next_sync()
            synced.api.wait_for(partial(_more, cluster, reads, before))

    with operator(emulator_server, clock, tmp_path):
        synced.api.create_object(backlog("team", str(remote)))
        first = synced.wait_synced("team")["lastSyncedCommit"]
        broken = commit_to_remote(remote, "main", {".backlog/backlog.yaml": "tasks: [\n"})
        synced.next_sync()
        synced.api.wait_for(lambda: "InvalidBacklog" in synced.events("team") or None)
        more_syncs(2)
        fixed = commit_to_remote(remote, "main", {".backlog/backlog.yaml": LEVIATHAN})
        synced.next_sync()
        synced.wait_synced("team", fixed)
        synced.api.wait_for(lambda: synced.events("team").count("Synced") == 2 or None)

    assert broken != fixed
    [read] = captured.about("team", f"Backlog Synced: read .backlog/backlog.yaml at {first[:12]}")
    assert read["level"] == "INFO" and read["object"]["kind"] == "Backlog"
    assert read["object"]["namespace"] == NS
    assert len(captured.about("team", "Backlog InvalidBacklog: ")) == 1
    assert (
        len(captured.about("team", f"Backlog Synced: read .backlog/backlog.yaml at {fixed[:12]}"))
        == 1
    )
    # Every line of the operator's own names its object (the backlog, or a goal it started).
    assert all(line.get("object") for line in captured.lines), captured.lines
