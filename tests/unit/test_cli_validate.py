"""`backlogctl validate FILE...`: real files, the exit status, `file:line` errors on stderr,
the selection order and the blocked tasks on stdout (`-o json` for machines)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backlog_operator.cli import main, program_name

LEVIATHAN = Path(__file__).resolve().parents[1] / "data" / "selection-leviathan" / "backlog.yaml"

CYCLE = """\
tasks:
  - id: a
    ready: true
    requires: [b]
  - id: b
    ready: true
    requires: [a]
  - id: c
    ready: true
    requires: [zz]
"""


def test_a_valid_backlog_prints_the_selection_order_and_blocked_tasks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", str(LEVIATHAN)]) == 0

    out, err = capsys.readouterr()
    assert err == ""
    assert "valid, 12 tasks" in out
    order = [line.split()[1] for line in out.splitlines() if line.startswith("  ") and ". " in line]
    # Priority 1, then high, medium, 2 (words and integers on one scale), then no priority.
    assert order == [
        "lev-004-lint",
        "lev-005-api",
        "lev-003-docs",
        "lev-011-cache",
        "lev-010-cleanup",
    ]
    assert "lev-006-api-docs  (line 50): waiting for lev-005-api, lev-003-docs" in out
    assert "lev-012-perf  (line 83): status blocked in the backlog" in out


def test_json_output_is_the_same_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-o", "json", str(LEVIATHAN)]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True
    assert report["selectionOrder"][0] == "lev-004-lint"
    blocked = {entry["id"]: entry for entry in report["blocked"]}
    assert blocked["lev-006-api-docs"]["reason"] == "Requires"
    assert blocked["lev-006-api-docs"]["requires"] == ["lev-005-api", "lev-003-docs"]
    assert blocked["lev-012-perf"]["reason"] == "MarkedBlocked"


def test_every_graph_error_is_named_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "backlog.yaml"
    path.write_text(CYCLE)

    assert main(["validate", str(path)]) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"error: {path}:2: dependency cycle: a → b → a (lines 2, 5)",
        f"error: {path}:8: task 'c' (line 8) requires unknown task 'zz'",
    ]


def test_a_syntax_error_names_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "backlog.yaml"
    path.write_text("tasks:\n  - id: a\n    ready: true\n  - id: a\n")

    assert main(["validate", "-o", "json", str(path)]) == 1

    out, err = capsys.readouterr()
    assert f"{path}:4: duplicate task id 'a'" in err
    assert json.loads(out)["errors"][0]["line"] == 4


def test_the_worst_file_sets_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CYCLE)

    assert main(["validate", str(LEVIATHAN), str(bad)]) == 1
    assert main(["validate", str(bad), str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: cannot read it" in capsys.readouterr().err


def test_the_program_is_named_as_invoked() -> None:
    assert program_name("/usr/local/bin/kubectl-backlog") == "kubectl backlog"
    assert program_name("/usr/local/bin/backlogctl") == "backlogctl"
    assert program_name("cli.py") == "backlogctl"


def test_version_as_text_and_json() -> None:
    def run(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "backlog_operator.cli", "version", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert run().startswith("backlogctl 0.1")
    assert json.loads(run("-o", "json"))["program"] == "backlogctl"
