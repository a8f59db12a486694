"""Pure rules about the paths a task leaves behind (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable


def case_collisions(tree_paths: Iterable[str], added: Iterable[str]) -> list[str]:
    """The added paths (or their folders) that equal another path of the tree but for case.

    `README.md` beside `readme.md`, or `Docs/a` beside `docs/b`: a case-insensitive file
    system (macOS, Windows) checks out only one of them, silently. Sorted, each named once.
    """
    spellings: dict[str, set[str]] = {}
    for path in tree_paths:
        for prefix in _prefixes(path):
            spellings.setdefault(prefix.casefold(), set()).add(prefix)
    colliding = set()
    for path in added:
        for prefix in _prefixes(path):
            if len(spellings.get(prefix.casefold(), ())) > 1:
                colliding.add(prefix)
    return sorted(colliding)


def _prefixes(path: str) -> list[str]:
    """`a`, `a/b`, `a/b/c` for `a/b/c`."""
    parts = path.split("/")
    return ["/".join(parts[: index + 1]) for index in range(len(parts))]
