"""Errors about a backlog file, each naming the file, the line and the problem.

They end up in a Goal's status and in the output of `backlogctl`, so their text is written for
the person who has to fix the file: `.backlog/backlog.yaml:14: duplicate task id 'x' (first at
line 3)`.
"""

from __future__ import annotations


class BacklogError(ValueError):
    """A backlog file that cannot be read, validated or edited.

    `path` is the file as its owner knows it (relative to the repository), `line` the 1-based
    line the problem is on when there is one, and `problem` a sentence without the location.
    """

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        # The three go to Exception.args too, so the error pickles and copies like any other.
        super().__init__(path, line, problem)
        self.path = path
        self.line = line
        self.problem = problem

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.problem}"
        return f"{self.path}:{self.line}: {self.problem}"


class BacklogNotFoundError(BacklogError):
    """There is no backlog file at the given path (the task then runs without writeback)."""


class UnknownTaskError(BacklogError, KeyError):
    """An edit named a task id that is not in the file.

    Also a KeyError, so code that looks tasks up like dictionary keys can catch it as one.
    """

    # KeyError's own __str__ would show the arguments tuple; keep the readable form.
    __str__ = BacklogError.__str__


class BacklogEditError(BacklogError):
    """An edit that cannot be made without touching more than the task's own fields.

    Raised instead of ever writing a file whose data is not exactly the intended change, for
    example when a field's value is shared through a YAML anchor.
    """
