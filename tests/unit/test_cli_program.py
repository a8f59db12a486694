"""How `backlogctl` / `kubectl backlog` talks to people and to machines: usage and errors name
the program as it was invoked, human text and errors go to stderr, JSON to stdout.

The installed entry points themselves are run (`kubectl-backlog` as kubectl runs a plugin: by
that file name), each as its own process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# The environment's scripts folder: where `pip install` put `backlogctl` and `kubectl-backlog`.
SCRIPTS = Path(sys.executable).parent
PROGRAMS = [("kubectl-backlog", "kubectl backlog"), ("backlogctl", "backlogctl")]


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )


@pytest.mark.parametrize(("script", "shown"), PROGRAMS)
def test_usage_and_usage_errors_name_the_program_as_invoked(script: str, shown: str) -> None:
    program = SCRIPTS / script
    if not program.exists():
        pytest.skip(f"the {script} script is not installed in this environment")

    top = run(str(program), "--help")
    logs = run(str(program), "logs", "--help")
    wrong = run(str(program), "get", "widgets")
    missing = run(str(program))

    assert top.returncode == 0
    assert top.stdout.startswith(f"usage: {shown} [-h]")
    assert logs.stdout.startswith(f"usage: {shown} logs [-h]")
    assert (wrong.returncode, wrong.stdout) == (2, "")
    assert wrong.stderr.startswith(f"usage: {shown} get")
    assert f"{shown} get: error: argument KIND: unknown kind 'widgets'" in wrong.stderr
    assert (missing.returncode, missing.stdout) == (2, "")
    assert f"{shown}: error: the following arguments are required: COMMAND" in missing.stderr


def test_a_failed_run_is_json_on_stdout_and_a_sentence_on_stderr(tmp_path: Path) -> None:
    done = run(sys.executable, "-m", "backlog_operator.cli", "run", "missing.yaml", cwd=tmp_path)

    assert done.returncode == 65
    [line] = done.stdout.splitlines()
    result = json.loads(line)
    assert (result["outcome"], result["reason"]) == ("failed", "InvalidGoal")
    assert "clone step failed: InvalidGoal: missing.yaml: cannot read" in done.stderr
    assert "{" not in done.stderr


def test_json_outputs_are_on_stdout_alone(tmp_path: Path) -> None:
    bad = tmp_path / "backlog.yaml"
    bad.write_text("tasks:\n  - id: a\n    ready: maybe\n")
    cli = [sys.executable, "-m", "backlog_operator.cli"]

    version = run(*cli, "version", "-o", "json")
    invalid = run(*cli, "validate", "-o", "json", str(bad))

    assert (version.returncode, version.stderr) == (0, "")
    assert json.loads(version.stdout)["program"] == "backlogctl"
    assert invalid.returncode == 1
    assert json.loads(invalid.stdout)["valid"] is False  # stdout is the JSON document, whole
    expected = f"error: {bad}:3: task 'a': `ready` must be true or false, found 'maybe'\n"
    assert invalid.stderr == expected
