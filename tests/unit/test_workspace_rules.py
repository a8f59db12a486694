"""Pure rules about the paths a task leaves behind."""

from __future__ import annotations

import pytest

from backlog_operator.worker.workspace_rules import case_collisions


@pytest.mark.parametrize(
    ("tree", "added", "expected"),
    [
        (["README.md", "docs/a.md"], ["docs/a.md"], []),
        (["README.md", "readme.md"], ["readme.md"], ["readme.md"]),
        (["Docs/a.md", "docs/b.md"], ["docs/b.md"], ["docs"]),
        (["DOCS/x/a.md", "docs/X/b.md"], ["docs/X/b.md"], ["docs", "docs/X"]),
        (["docs/x/a.md", "docs/X/b.md"], ["docs/X/b.md"], ["docs/X"]),
        # A collision the base already had is not the task's doing: only added paths count.
        (["A.txt", "a.txt", "new.txt"], ["new.txt"], []),
        (["straße.md", "STRASSE.md"], ["STRASSE.md"], ["STRASSE.md"]),
    ],
)
def test_case_collisions(tree: list[str], added: list[str], expected: list[str]) -> None:
    assert case_collisions(tree, added) == expected
