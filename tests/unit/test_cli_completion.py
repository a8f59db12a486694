"""`backlogctl completion bash|zsh|kubectl`: the scripts are valid shell, and their completion
function, called as the shell calls it (COMP_WORDS, COMP_CWORD), offers what the parser takes.

Names of Goals, Backlogs and GoalSchedules come from `kubectl`: here a stand-in `kubectl` on the
PATH that records its arguments (the real one against the API emulator is in
tests/operator/test_cli_cluster.py).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from backlog_operator.cli import main

CASES = [
    (["backlogctl", "ge"], ["get"]),
    (["kubectl-backlog", "ge"], ["get"]),
    (["backlogctl", "re"], ["rerun", "reconcile", "resume", "reject", "revive"]),
    (["kubectl-backlog", "ap"], ["approve"]),
    (["backlogctl", "diff", "--s"], ["--stat"]),
    (["backlogctl", "approve", "g", "--ha"], ["--hash"]),
    (["backlogctl", "reject", "g", "--r"], ["--reason"]),
    (["backlogctl", "get", ""], ["goals", "backlogs", "schedules"]),
    (["backlogctl", "get", "-o", ""], ["json", "yaml", "wide"]),
    (["backlogctl", "get", "--a"], ["--all-namespaces"]),
    (["backlogctl", "logs", "g", "--step", ""], ["clone", "task", "publish", "heal"]),
    (["backlogctl", "logs", "-n", "team", "g", "--step", "p"], ["publish"]),
    (["backlogctl", "worker", "p"], ["publish"]),
    (["backlogctl", "completion", ""], ["bash", "zsh", "kubectl"]),
    (["backlogctl", "run", "--d"], ["--dry-run"]),
    (["backlogctl", "validate", "-o", "j"], ["json"]),
]


def script(tmp_path: Path, shell: str, capsys: pytest.CaptureFixture[str]) -> Path:
    """The script `backlogctl completion SHELL` prints, in a file."""
    assert main(["completion", shell]) == 0
    path = tmp_path / f"completion.{shell}"
    path.write_text(capsys.readouterr().out)
    return path


def complete(
    shell: str, loaded: Path, words: list[str], env: dict[str, str] | None = None
) -> list[str]:
    """Call `_backlogctl` as the shell's completion does; the candidates (COMPREPLY)."""
    setup = "autoload -U compinit && compinit -u; " if shell == "zsh" else ""
    driver = (
        f"{setup}source {shlex.quote(str(loaded))}; "
        f"COMP_WORDS=({' '.join(shlex.quote(word) for word in words)}); "
        f"COMP_CWORD={len(words) - 1}; _backlogctl; "
        'for reply in "${COMPREPLY[@]}"; do echo "$reply"; done'
    )
    completed = subprocess.run(
        [shell, "-c", driver],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    return completed.stdout.splitlines()


def fake_kubectl(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A `kubectl` that records its arguments and lists two objects of the kind asked."""
    folder = tmp_path / "bin"
    folder.mkdir()
    calls = tmp_path / "kubectl-calls"
    kubectl = folder / "kubectl"
    kubectl.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {shlex.quote(str(calls))}\n'
        "kind=${2%%s.*}\n"
        'echo "$kind.backlog.dev/alpha"\n'
        'echo "$kind.backlog.dev/beta"\n'
    )
    kubectl.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}, calls


def test_the_bash_script_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for shell in ("bash", "kubectl"):
        checked = subprocess.run(
            ["bash", "-n", str(script(tmp_path, shell, capsys))], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(("words", "expected"), CASES)
def test_bash_completes_commands_options_and_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], words: list[str], expected: list[str]
) -> None:
    assert complete("bash", script(tmp_path, "bash", capsys), words) == expected


def test_names_come_from_kubectl_with_the_lines_namespace_and_context(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = script(tmp_path, "bash", capsys)
    env, calls = fake_kubectl(tmp_path)

    goals = complete("bash", loaded, ["backlogctl", "logs", "-n", "team", ""], env)
    schedules = complete(
        "bash", loaded, ["backlogctl", "suspend", "--context", "c1", "schedule", "b"], env
    )
    backlogs = complete("bash", loaded, ["backlogctl", "status", "--namespace=ops", "a"], env)

    assert goals == ["alpha", "beta"]
    assert schedules == ["beta"]
    assert backlogs == ["alpha"]
    assert calls.read_text().splitlines() == [
        "get goals.backlog.dev -o name -n team",
        "get goalschedules.backlog.dev -o name --context c1",
        "get backlogs.backlog.dev -o name --namespace=ops",
    ]


def test_the_approval_commands_complete_goal_and_backlog_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = script(tmp_path, "bash", capsys)
    env, calls = fake_kubectl(tmp_path)

    for command in ("diff", "approve", "reject"):
        assert complete("bash", loaded, ["backlogctl", command, "-n", "team", ""], env) == [
            "alpha",
            "beta",
        ]
    revived = complete("bash", loaded, ["kubectl-backlog", "revive", "b"], env)
    task = complete("bash", loaded, ["kubectl-backlog", "revive", "team", ""], env)

    assert revived == ["beta"]
    assert task == []  # a task id: nothing to offer
    assert calls.read_text().splitlines() == [
        *["get goals.backlog.dev -o name -n team"] * 3,
        "get backlogs.backlog.dev -o name",
    ]


@pytest.mark.skipif(
    shutil.which("zsh") is None, reason="zsh is not installed (apt-get install zsh)"
)
def test_the_zsh_script_is_valid_and_completes_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = script(tmp_path, "zsh", capsys)
    checked = subprocess.run(["zsh", "-n", str(loaded)], capture_output=True, text=True)
    env, _ = fake_kubectl(tmp_path)

    assert checked.returncode == 0, checked.stderr
    for words, expected in CASES:
        assert complete("zsh", loaded, words) == expected, words
    assert complete("zsh", loaded, ["backlogctl", "rerun", ""], env) == ["alpha", "beta"]


def test_the_kubectl_plugin_script_prints_candidates_and_a_directive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = script(tmp_path, "kubectl", capsys)
    plugin.chmod(0o755)

    def run(*words: str) -> list[str]:
        done = subprocess.run([str(plugin), *words], capture_output=True, text=True, check=True)
        return done.stdout.splitlines()

    assert run("ge") == ["get", ":4"]
    assert run("logs", "g", "--step", "") == ["clone", "task", "publish", "heal", ":4"]
    assert run("nothing-here", "") == [":4"]
