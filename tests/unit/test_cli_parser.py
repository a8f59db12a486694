"""`backlogctl run` and `backlogctl worker` parse the same with only their own parser built.

A process started for one of them (a Job's container, a short process) builds only that
command's parser (`cli.STEP_COMMANDS`); its arguments, help and errors must not change.
"""

from __future__ import annotations

import contextlib
import io

import pytest

from backlog_operator import cli

ARGUMENTS = [
    ["run", "goal.yaml"],
    ["run", "goal.yaml", "--workspace", "w", "--attempt-id", "a-1", "--token-file", "t"],
    ["worker", "clone"],
    ["worker", "task", "--", "sh", "-c", "true"],
    ["worker", "publish"],
]
REFUSED_OR_HELP = [
    ["run"],
    ["run", "--help"],
    ["run", "goal.yaml", "--unknown"],
    ["worker"],
    ["worker", "--help"],
    ["worker", "push"],
    ["worker", "clone", "--help"],
]


@pytest.mark.parametrize("argv", ARGUMENTS, ids=" ".join)
def test_a_step_command_parses_the_same_with_its_parser_alone(argv: list[str]) -> None:
    whole = cli.build_parser("backlogctl").parse_args(argv)
    alone = cli.build_parser("backlogctl", only=argv[0]).parse_args(argv)
    assert vars(alone) == vars(whole)


def outcome(parser_only: str | None, argv: list[str]) -> tuple[int | str | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.raises(SystemExit) as ended,
    ):
        cli.build_parser("backlogctl", only=parser_only).parse_args(argv)
    return ended.value.code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", REFUSED_OR_HELP, ids=" ".join)
def test_a_step_command_helps_and_refuses_the_same_with_its_parser_alone(argv: list[str]) -> None:
    assert outcome(argv[0], argv) == outcome(None, argv)


def test_main_builds_only_the_step_commands_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str | None] = []
    build = cli.build_parser

    def recording(prog: str | None = None, *, only: str | None = None) -> object:
        built.append(only)
        return build(prog, only=only)

    monkeypatch.setattr(cli, "build_parser", recording)
    assert cli.main(["version"]) == 0
    with pytest.raises(SystemExit):
        cli.main(["worker", "--help"])
    assert built == [None, "worker"]
