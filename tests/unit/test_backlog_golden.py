"""Golden files for backlog writeback: the exact bytes after marking a task completed.

Each case under tests/data/writeback-<name>/ holds `original` (a backlog file), `params.json`
(the task, the mark_completed arguments, an optional follow-up set_pr_number, and the 1-based
line range the target task spans in `original`) and `expected` (the bytes after the edit).
Besides the byte-for-byte comparison, every `expected` is checked on its own, so a golden file
cannot silently be wrong: it differs from `original` only within the target task's lines, and
it reads back as the original data with exactly the intended change to that one task.

Each case is written back twice: reading the whole file (`parse`) and reading the one task
where the layout allows it (`for_task`); both must give the golden bytes.
"""

from __future__ import annotations

import difflib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from backlog_operator.backlog.document import BacklogDocument

DATA = Path(__file__).resolve().parents[1] / "data"
CASES = sorted(path for path in DATA.glob("writeback-*") if path.is_dir())


def _params(case: Path) -> dict[str, Any]:
    params: dict[str, Any] = json.loads((case / "params.json").read_text(encoding="utf-8"))
    return params


READERS = ["parse", "for_task"]


def _apply(case: Path, data: bytes, reader: str = "parse") -> bytes:
    params = _params(case)
    if reader == "parse":
        document = BacklogDocument.parse(data, source="backlog.yaml")
    else:
        document = BacklogDocument.for_task(data, params["task"], source="backlog.yaml")
    mark = params["mark_completed"]
    document.mark_completed(
        params["task"],
        attempt_id=mark["attempt_id"],
        branch=mark["branch"],
        completed_at=datetime.fromisoformat(mark["completed_at"]),
        pr_number=mark["pr_number"],
    )
    if "set_pr_number" in params:
        document.set_pr_number(params["task"], params["set_pr_number"])
    return document.render()


def _lines(data: bytes) -> list[bytes]:
    # Split on LF only, so CR bytes and a missing final newline stay visible in the pieces.
    return data.split(b"\n")


def _yaml_data(data: bytes) -> Any:
    return YAML(typ="safe", pure=True).load(data.decode("utf-8-sig"))


def _tasks(data: Any) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = data["tasks"] if isinstance(data, dict) else data
    return tasks


def test_there_are_enough_golden_cases() -> None:
    assert len(CASES) >= 12
    for case in CASES:
        assert {"original", "expected", "params.json"} <= {p.name for p in case.iterdir()}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_writeback_gives_the_golden_bytes(case: Path, reader: str) -> None:
    original = (case / "original").read_bytes()
    expected = (case / "expected").read_bytes()
    assert _apply(case, original, reader) == expected


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_golden_file_differs_only_in_the_target_task(case: Path) -> None:
    first, last = _params(case)["task_lines"]
    original = _lines((case / "original").read_bytes())
    expected = _lines((case / "expected").read_bytes())
    matcher = difflib.SequenceMatcher(a=original, b=expected, autojunk=False)
    changes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    assert changes, "expected must differ from original"
    for tag, start, end, _, _ in changes:
        # 0-based [start, end) lines of the original; an insertion has start == end and may
        # only go after a line of the task.
        if tag == "insert":
            assert first <= start <= last, f"lines inserted after line {start}, outside the task"
        else:
            assert first - 1 <= start and end <= last, f"lines {start + 1}-{end} changed"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_golden_file_reads_back_as_the_intended_change(case: Path) -> None:
    params = _params(case)
    mark = params["mark_completed"]
    before = _yaml_data((case / "original").read_bytes())
    after = _yaml_data((case / "expected").read_bytes())
    changes: dict[str, Any] = {
        "status": "completed",
        "ready": False,
        "last_attempt_id": mark["attempt_id"],
        "branch_name": mark["branch"],
        "completed_at": mark["completed_at"],
    }
    pr_number = params.get("set_pr_number", mark["pr_number"])
    if pr_number is not None:
        changes["pr_number"] = pr_number
    old_tasks, new_tasks = _tasks(before), _tasks(after)
    assert len(new_tasks) == len(old_tasks)
    for old, new in zip(old_tasks, new_tasks, strict=True):
        if old.get("id") == params["task"]:
            if pr_number is None and old.get("pr_number") not in (None, ""):
                changes["pr_number"] = None  # an earlier attempt's number is not this one's
            assert new == {**old, **changes}
        else:
            assert new == old
    if isinstance(before, dict):
        assert {k: v for k, v in after.items() if k != "tasks"} == {
            k: v for k, v in before.items() if k != "tasks"
        }


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_writeback_is_idempotent(case: Path, reader: str) -> None:
    expected = (case / "expected").read_bytes()
    assert _apply(case, expected, reader) == expected


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_golden_original_keeps_its_bytes_without_edits(case: Path) -> None:
    original = (case / "original").read_bytes()
    assert BacklogDocument.parse(original, source="backlog.yaml").render() == original
