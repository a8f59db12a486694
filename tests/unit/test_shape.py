"""The function-length check of `make lint` (`backlog_operator.tooling.shape`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backlog_operator.tooling import shape
from backlog_operator.tooling.shape import ALLOWED, MAX_LINES, functions, main, problems


def _function(name: str, lines: int, *, indent: str = "", keyword: str = "def") -> str:
    """A function of exactly `lines` lines, from its `def` to its last statement."""
    body = [f"{indent}    x = {n}" for n in range(lines - 2)]
    return "\n".join([f"{indent}{keyword} {name}():", *body, f"{indent}    return x", ""])


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """`pkg/` with `pkg/mod.py`: functions at, over and under the limit, a method, nested ones."""
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "mod.py").write_text(
        "\n".join(
            [
                "import functools",
                "",
                "",
                "@functools.cache",  # decorators do not count
                _function("at_the_limit", MAX_LINES),
                _function("over", MAX_LINES + 1),
                _function("over_async", MAX_LINES + 5, keyword="async def"),
                "class Holder:",
                _function("method", MAX_LINES + 2, indent="    "),
                "if True:",
                _function("conditional", MAX_LINES + 1, indent="    "),
                "def outer():",
                _function("inner", MAX_LINES + 1, indent="    "),
                "    return inner",
                "",
            ]
        )
    )
    return root


def test_lengths_run_from_def_to_the_last_line(package: Path) -> None:
    lengths = {f.qualname: (f.module, f.lines) for f in functions(package / "mod.py")}

    assert lengths == {
        "at_the_limit": ("pkg.mod", MAX_LINES),
        "over": ("pkg.mod", MAX_LINES + 1),
        "over_async": ("pkg.mod", MAX_LINES + 5),
        "Holder.method": ("pkg.mod", MAX_LINES + 2),
        "conditional": ("pkg.mod", MAX_LINES + 1),
        "outer": ("pkg.mod", MAX_LINES + 4),  # inner, a blank line, its return
        "outer.<locals>.inner": ("pkg.mod", MAX_LINES + 1),
    }


def _line_of(path: Path, definition: str) -> int:
    """The line number of the first line of `path` that holds `definition`."""
    lines = path.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if definition in line)


def test_every_function_over_the_limit_is_named_with_file_and_line(package: Path) -> None:
    found = problems([package], allowed=frozenset())

    mod = package / "mod.py"
    assert [line.split(" is ")[0] for line in found] == [
        f"{mod}:{_line_of(mod, definition)}: {name}"
        for name, definition in [
            ("over", "def over("),
            ("over_async", "async def over_async("),
            ("Holder.method", "def method("),
            ("conditional", "def conditional("),
            ("outer", "def outer("),
            ("outer.<locals>.inner", "def inner("),
        ]
    ]
    assert found[0].endswith(
        f" is {MAX_LINES + 1} lines (limit {MAX_LINES}): split it into named steps"
    )


def test_allowed_functions_pass_and_stale_entries_fail(package: Path) -> None:
    allowed = frozenset(
        {
            ("pkg.mod", "over"),
            ("pkg.mod", "over_async"),
            ("pkg.mod", "Holder.method"),
            ("pkg.mod", "conditional"),
            ("pkg.mod", "outer"),
            ("pkg.mod", "outer.<locals>.inner"),
            ("pkg.mod", "at_the_limit"),  # within the limit: no longer needs its place
            ("pkg.mod", "removed"),  # gone
            ("pkg.other", "elsewhere"),  # a module that was not read: not judged
        }
    )

    found = problems([package], allowed=allowed)

    assert found == [
        f"{package / 'mod.py'}:{_line_of(package / 'mod.py', 'def at_the_limit(')}: "
        f"at_the_limit is {MAX_LINES} lines now: "
        "remove it from ALLOWED in backlog_operator.tooling.shape",
        "pkg.mod: removed is gone: remove it from ALLOWED in backlog_operator.tooling.shape",
    ]


def test_main_prints_the_problems_and_fails(
    package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(package / "mod.py")]) == 1
    assert len(capsys.readouterr().out.splitlines()) == 6

    (package / "mod.py").write_text(_function("short", 3))
    assert main([str(package)]) == 0
    assert capsys.readouterr().out == ""

    assert main([]) == 2
    assert main([str(package / "missing")]) == 2
    assert "missing: neither a folder nor a .py file" in capsys.readouterr().err


def test_the_allow_list_names_only_backlog_functions_to_split() -> None:
    assert {module for module, _ in ALLOWED} <= {
        "backlog_operator.backlog.selection",
        "backlog_operator.backlog._edits",
        "backlog_operator.backlog._fast_reader",
    }
    source = Path(shape.__file__).read_text()
    block = source[source.index("ALLOWED: ") :]
    block = block[: block.index("\n)\n")]
    assert block.count("# to split: issue 13") == len(ALLOWED)


def test_runs_as_a_module(package: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "backlog_operator.tooling.shape", str(package)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 1
    assert (
        f"{package / 'mod.py'}:{_line_of(package / 'mod.py', 'def over(')}: over is" in done.stdout
    )
