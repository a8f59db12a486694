"""The length check of `make lint`: no function over 60 lines.

`python -m backlog_operator.tooling.shape PATH...` reads every `.py` file under each PATH (a
folder or a file), prints each function or method longer than `MAX_LINES` as
`file:line: name is N lines (limit 60)`, and exits 1 when there is one. A function's length runs
from its `def` line to its last line, docstring, comments and blank lines included, decorators
not. A nested function counts in its own right, and in the length of the function holding it.

Complexity is ruff's part (`C901`, `max-complexity` in pyproject.toml); this check only counts
lines, which ruff does not.

`ALLOWED` names, by module and qualified name, the functions that may be longer for now. An entry
that no longer needs its place (the function is gone, or within the limit) fails the check too,
so the list only ever shrinks.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_LINES = 60

# (module, qualified name) of each function allowed over the limit for now.
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    # None now: every function is within the limit.
)


@dataclass(frozen=True)
class Function:
    """One function or method: where it starts, its qualified name, how many lines it spans."""

    path: Path
    line: int
    module: str
    qualname: str
    lines: int

    @property
    def key(self) -> tuple[str, str]:
        """`(module, qualname)`, as `ALLOWED` names it."""
        return self.module, self.qualname


def python_files(paths: Iterable[Path]) -> list[Path]:
    """Every `.py` file under `paths` (folders are searched, files taken as they are), sorted."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(path.rglob("*.py"))
        elif path.suffix == ".py":
            found.add(path)
        else:
            raise FileNotFoundError(f"{path}: neither a folder nor a .py file")
    return sorted(found)


def module_name(path: Path) -> str:
    """The dotted module name of `path`, from the highest folder up that is still a package
    (`operator/backlog_operator/naming.py` is `backlog_operator.naming`)."""
    resolved = path.resolve()
    parts = [] if resolved.name == "__init__.py" else [resolved.stem]
    folder = resolved.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def functions(path: Path) -> list[Function]:
    """Every function and method defined in the file at `path`, nested ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = module_name(path)
    return [
        Function(
            path, node.lineno, module, qualname, (node.end_lineno or node.lineno) - node.lineno + 1
        )
        for qualname, node in _definitions(tree.body, prefix="")
    ]


def _definitions(
    body: Sequence[ast.AST], *, prefix: str
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield f"{prefix}{node.name}", node
            yield from _definitions(node.body, prefix=f"{prefix}{node.name}.<locals>.")
        elif isinstance(node, ast.ClassDef):
            yield from _definitions(node.body, prefix=f"{prefix}{node.name}.")
        else:
            # Definitions under `if`, `try`, `with`, `match` and loops are in the same scope.
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    yield from _definitions(inner, prefix=prefix)


def problems(
    paths: Iterable[Path],
    *,
    limit: int = MAX_LINES,
    allowed: frozenset[tuple[str, str]] = ALLOWED,
) -> list[str]:
    """One line per function over `limit` that `allowed` does not name, and one per entry of
    `allowed` in a module that was read whose function is gone or no longer over the limit."""
    found: list[str] = []
    seen: dict[tuple[str, str], Function] = {}
    modules: set[str] = set()
    for path in python_files(paths):
        modules.add(module_name(path))
        for function in functions(path):
            seen[function.key] = function
            if function.lines > limit and function.key not in allowed:
                found.append(
                    f"{function.path}:{function.line}: {function.qualname} is "
                    f"{function.lines} lines (limit {limit}): split it into named steps"
                )
    for module, qualname in sorted(allowed):
        entry = seen.get((module, qualname))
        if entry is not None and entry.lines <= limit:
            found.append(
                f"{entry.path}:{entry.line}: {qualname} is {entry.lines} lines now: "
                f"remove it from ALLOWED in {__name__}"
            )
        elif entry is None and module in modules:
            found.append(f"{module}: {qualname} is gone: remove it from ALLOWED in {__name__}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Print every problem found under the paths in `argv`: 1 when there is one, 0 when there
    is none, 2 when a path cannot be read."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:
        print(f"usage: python -m {__name__} PATH...", file=sys.stderr)
        return 2
    try:
        found = problems(Path(argument) for argument in arguments)
    except (OSError, SyntaxError) as error:
        print(f"{__name__}: {error}", file=sys.stderr)
        return 2
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
