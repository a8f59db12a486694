"""Bad backlog files: each gives a BacklogError naming the file, the line and the problem.

Every case is loaded from a repository folder, and the file must be byte-for-byte the same
afterwards: reading never writes, and a failed edit never writes either.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.backlog.errors import (
    BacklogEditError,
    BacklogError,
    BacklogNotFoundError,
    UnknownTaskError,
)

SOURCE = ".backlog/backlog.yaml"
EXPECTED_SHAPE = "expected a mapping with a `tasks:` list, or a list of tasks"

# (case id, file bytes, expected line, expected problem text)
BAD_FILES = [
    (
        "malformed YAML",
        b"tasks:\n  - id: a\n    title: 'unclosed\n  - id: b\n",
        5,
        "invalid YAML: found unexpected end of stream (while scanning a quoted scalar at line 3)",
    ),
    (
        "bad indentation",
        b"tasks:\n  - id: a\n   status: pending\n",
        3,
        "invalid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection at line 2)",
    ),
    (
        "tab indentation",
        b"tasks:\n\t- id: a\n",
        2,
        "invalid YAML: found character '\\t' that cannot start any token "
        "(while scanning for the next token)",
    ),
    (
        "two documents",
        b"tasks: []\n---\ntasks: []\n",
        2,
        "invalid YAML: expected a single document in the stream at line 1, "
        "but found another document",
    ),
    ("undefined alias", b"tasks:\n  - *nope\n", 2, "invalid YAML: found undefined alias 'nope'"),
    (
        "duplicate key below a task",
        b"tasks:\n  - id: a\n    meta:\n      k: 1\n      k: 2\n",
        5,
        'invalid YAML: found duplicate key "k" with value "2" (original value: "1") '
        "(while constructing a mapping at line 4)",
    ),
    (
        "tasks is a mapping",
        b"version: 1\ntasks:\n  id: a\n",
        2,
        "`tasks` must be a list of tasks, found a mapping",
    ),
    ("tasks is a string", b"tasks: many\n", 1, "`tasks` must be a list of tasks, found a string"),
    ("no tasks key", b"version: 1\nitems: []\n", 1, f"no `tasks:` key; {EXPECTED_SHAPE}"),
    ("scalar document", b"just text\n", 1, f"{EXPECTED_SHAPE}; found a string"),
    ("empty file", b"", None, f"the file holds no YAML document; {EXPECTED_SHAPE}"),
    (
        "comments only",
        b"# nothing yet\n",
        None,
        f"the file holds no YAML document; {EXPECTED_SHAPE}",
    ),
    (
        "task is a string",
        b"tasks:\n  - id: a\n  - just a string\n",
        3,
        "task #2 is not a mapping (found a string)",
    ),
    ("task is empty", b"tasks:\n  - id: a\n  -\n", 3, "task #2 is not a mapping (found null)"),
    (
        "task without id",
        b"tasks:\n  - id: a\n  - title: nameless\n    status: pending\n",
        3,
        "task #2 has no `id`",
    ),
    (
        "integer id",
        b"tasks:\n  - id: 42\n",
        2,
        'task #1: `id` must be a string, found an integer (quote it: id: "42")',
    ),
    ("empty id", b"tasks:\n  - id: ''\n", 2, "task #1: `id` must not be empty"),
    (
        "duplicate id",
        b"tasks:\n  - id: x\n    title: one\n  - id: y\n  - id: x\n",
        5,
        "duplicate task id 'x' (first at line 2)",
    ),
    (
        "duplicate key in a task",
        b"tasks:\n  - id: a\n    status: pending\n    status: completed\n",
        4,
        "task 'a': duplicate key 'status' (first at line 3)",
    ),
    (
        "duplicate top-level key",
        b"tasks: []\ntasks: []\n",
        2,
        "duplicate top-level key 'tasks' (first at line 1)",
    ),
    (
        "unknown status",
        b"tasks:\n  - id: a\n    title: A\n    status: done\n",
        4,
        "task 'a': unknown status 'done' "
        "(expected one of: pending, in_progress, completed, failed, blocked)",
    ),
    (
        "priority word",
        b"tasks:\n  - id: a\n    priority: urgent\n",
        3,
        "task 'a': `priority` must be an integer or one of critical, high, medium, low; "
        "found 'urgent'",
    ),
    (
        "priority boolean",
        b"tasks:\n  - id: a\n    priority: true\n",
        3,
        "task 'a': `priority` must be an integer or one of critical, high, medium, low; "
        "found a boolean",
    ),
    (
        "requires a string",
        b"tasks:\n  - id: a\n    requires: b\n",
        3,
        "task 'a': `requires` must be a list of task ids, found a string",
    ),
    (
        "requires an integer item",
        b"tasks:\n  - id: a\n    requires: [b, 3]\n",
        3,
        "task 'a': `requires` must be a list of task ids; item 2 is an integer",
    ),
    (
        "dependencies not a list",
        b"- id: a\n  dependencies: {b: 1}\n",
        2,
        "task 'a': `requires` must be a list of task ids, found a mapping",
    ),
    (
        "requires and dependencies",
        b"tasks:\n  - id: a\n    requires: [b]\n    dependencies: [c]\n",
        4,
        "task 'a' has both `requires` and `dependencies`; they are the same field, keep one",
    ),
    (
        "ready not a boolean",
        b"tasks:\n  - id: a\n    ready: maybe\n",
        3,
        "task 'a': `ready` must be true or false, found 'maybe'",
    ),
    (
        "negative pr_number",
        b"tasks:\n  - id: a\n    pr_number: -1\n",
        3,
        "task 'a': `pr_number` must be a positive integer, found -1",
    ),
    (
        "completed_at not a time",
        b"tasks:\n  - id: a\n    completed_at: yesterday\n",
        3,
        "task 'a': `completed_at` must be an ISO-8601 time such as \"2026-01-30T23:15:00Z\", "
        "found 'yesterday'",
    ),
    (
        "title a number",
        b"tasks:\n  - id: a\n    title: 2024\n",
        3,
        "task 'a': `title` must be a string, found an integer (quote it)",
    ),
    (
        "allowed_paths a string",
        b"tasks:\n  - id: a\n    allowed_paths: docs/**\n",
        3,
        "task 'a': `allowed_paths` must be a list of strings, found a string",
    ),
    (
        "not UTF-8",
        b"tasks:\n  - id: a\n    title: caf\xe9\n",
        3,
        "not UTF-8 text: byte 0xe9 at column 15 cannot be decoded; save the file as UTF-8",
    ),
    ("UTF-16", "tasks: []\n".encode("utf-16"), 1, "the file is UTF-16 text; save it as UTF-8"),
    (
        "error after a BOM",
        b"\xef\xbb\xbftasks:\n  - id: a\n  - id: a\n",
        3,
        "duplicate task id 'a' (first at line 2)",
    ),
    (
        "error on the full parser's path",
        b"tasks:\n  - id: x\n    title: a long title\n      on two lines\n  - id: x\n",
        5,
        "duplicate task id 'x' (first at line 2)",
    ),
]


def _write(root: Path, data: bytes) -> Path:
    path = root / SOURCE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "line", "problem"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_bad_backlog_names_file_line_and_problem(
    tmp_path: Path, data: bytes, line: int | None, problem: str
) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(BacklogError) as caught:
        BacklogDocument.load(tmp_path, SOURCE)
    error = caught.value
    assert (error.path, error.line, error.problem) == (SOURCE, line, problem)
    where = f"{SOURCE}:{line}" if line is not None else SOURCE
    assert str(error) == f"{where}: {problem}"
    assert path.read_bytes() == data


def test_error_text_formats_with_and_without_a_line() -> None:
    assert str(BacklogError("b.yaml", 14, "duplicate task id 'x' (first at line 3)")) == (
        "b.yaml:14: duplicate task id 'x' (first at line 3)"
    )
    assert str(BacklogError("b.yaml", None, "no backlog file")) == "b.yaml: no backlog file"


def test_errors_pickle_and_keep_their_fields() -> None:
    for error in (
        BacklogError("b.yaml", 3, "x"),
        BacklogNotFoundError("b.yaml", None, "missing"),
        UnknownTaskError("b.yaml", None, "no task with id 'q'"),
        BacklogEditError("b.yaml", 7, "refused"),
    ):
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
        assert type(copy) is type(error)
        assert (copy.path, copy.line, copy.problem, str(copy)) == (
            error.path,
            error.line,
            error.problem,
            str(error),
        )
        assert isinstance(copy, ValueError)


def test_unknown_task_is_also_a_key_error(tmp_path: Path) -> None:
    data = b"tasks:\n  - id: a\n"
    path = _write(tmp_path, data)
    document = BacklogDocument.load(tmp_path, SOURCE)
    with pytest.raises(KeyError) as caught:
        document.set_pr_number("missing", 3)
    assert isinstance(caught.value, UnknownTaskError)
    assert str(caught.value) == f"{SOURCE}: no task with id 'missing'"
    with pytest.raises(UnknownTaskError):
        document.mark_completed(
            "missing", attempt_id="a", branch="b", completed_at=datetime.now(UTC)
        )
    assert document.render() == data
    assert path.read_bytes() == data


def test_missing_file_is_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(BacklogNotFoundError) as caught:
        BacklogDocument.load(tmp_path, SOURCE)
    assert str(caught.value) == f"{SOURCE}: no backlog file at this path"
    # A file where a folder should be is as missing as a missing folder.
    (tmp_path / ".backlog").write_text("not a folder")
    with pytest.raises(BacklogNotFoundError):
        BacklogDocument.load(tmp_path, SOURCE)


@pytest.mark.parametrize(
    ("relpath", "problem"),
    [
        ("/etc/passwd", "the backlog path must be relative to the repository"),
        ("C:\\backlog.yaml", "the backlog path must be relative to the repository"),
        ("../outside.yaml", "the backlog path must not contain `..`"),
        (".backlog/../../outside.yaml", "the backlog path must not contain `..`"),
        ("", "the backlog path is empty"),
    ],
)
def test_paths_that_leave_the_repository_are_refused(
    tmp_path: Path, relpath: str, problem: str
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "outside.yaml").write_text("tasks: []\n")
    with pytest.raises(BacklogError) as caught:
        BacklogDocument.load(repo, relpath)
    assert caught.value.problem == problem
    assert not isinstance(caught.value, BacklogNotFoundError)


def test_symlink_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".backlog").mkdir(parents=True)
    outside = tmp_path / "secret.yaml"
    outside.write_text("tasks: []\n")
    (repo / ".backlog" / "backlog.yaml").symlink_to(outside)
    (repo / "linked").symlink_to(tmp_path)  # a folder link, in the middle of the path
    for relpath in (SOURCE, "linked/secret.yaml"):
        with pytest.raises(BacklogError) as caught:
            BacklogDocument.load(repo, relpath)
        assert caught.value.problem == (
            "the backlog path leads outside the repository (a symbolic link)"
        )
    # A dangling link out of the repository is refused too, not reported as missing.
    (repo / "dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
    with pytest.raises(BacklogError) as caught:
        BacklogDocument.load(repo, "dangling.yaml")
    assert not isinstance(caught.value, BacklogNotFoundError)


def test_symlink_inside_the_repository_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "backlog.yaml").write_text("tasks:\n  - id: a\n")
    (tmp_path / ".backlog").mkdir()
    (tmp_path / ".backlog" / "backlog.yaml").symlink_to("../real/backlog.yaml")
    document = BacklogDocument.load(tmp_path, SOURCE)
    assert [task.id for task in document.tasks] == ["a"]


def test_a_folder_is_not_a_backlog(tmp_path: Path) -> None:
    (tmp_path / SOURCE).mkdir(parents=True)
    with pytest.raises(BacklogError) as caught:
        BacklogDocument.load(tmp_path, SOURCE)
    assert caught.value.problem == "this is a folder, not a backlog file"


def test_oversized_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    # Invalid YAML: were it parsed, the error would be about the YAML, not the size.
    data = b"tasks: [\n" + b"#" * 2000
    path = _write(tmp_path, data)
    with pytest.raises(BacklogError) as caught:
        BacklogDocument.load(tmp_path, SOURCE, max_bytes=1000)
    assert caught.value.problem == (
        f"the file is larger than the limit of 1000 bytes ({len(data)} bytes)"
    )
    assert path.read_bytes() == data


def test_edit_of_a_value_shared_through_an_anchor_is_refused(tmp_path: Path) -> None:
    data = b"common: &state pending\ntasks:\n  - id: a\n    status: *state\n  - id: b\n"
    path = _write(tmp_path, data)
    document = BacklogDocument.load(tmp_path, SOURCE)
    with pytest.raises(BacklogEditError) as caught:
        document.mark_completed("a", attempt_id="x-1", branch="b/x", completed_at=_NOW)
    assert str(caught.value) == (
        f"{SOURCE}:4: cannot set `status` of task 'a': its value uses a YAML anchor, alias or "
        "tag; edit that line by hand"
    )
    # The failed edit changed nothing, and the other task can still be edited.
    assert document.render() == data
    assert not document.changed
    assert document.find("a") is not None
    assert document.find("a").status == "pending"  # type: ignore[union-attr]
    document.mark_completed("b", attempt_id="x-1", branch="b/x", completed_at=_NOW)
    assert b"status: completed" in document.render()
    assert path.read_bytes() == data


def test_edit_of_an_anchored_task_is_refused() -> None:
    data = b"- &t\n  id: a\n  status: pending\n- id: b\n  copy: *t\n"
    document = BacklogDocument.parse(data, source=SOURCE)
    with pytest.raises(BacklogEditError) as caught:
        document.mark_completed("a", attempt_id="x-1", branch="b/x", completed_at=_NOW)
    assert str(caught.value) == (
        f"{SOURCE}:1: cannot edit task 'a': it is a YAML anchor used elsewhere through an alias;"
        " edit it by hand"
    )
    assert document.render() == data


def test_edit_arguments_are_checked(tmp_path: Path) -> None:
    document = BacklogDocument.parse(b"- id: a\n", source=SOURCE)
    with pytest.raises(ValueError, match="timezone-aware"):
        document.mark_completed(
            "a", attempt_id="x", branch="b", completed_at=datetime(2026, 1, 30, 23, 15)
        )
    with pytest.raises(ValueError, match="attempt_id"):
        document.mark_completed("a", attempt_id=" ", branch="b", completed_at=_NOW)
    with pytest.raises(ValueError, match="pr_number"):
        document.set_pr_number("a", 0)
    with pytest.raises(ValueError, match="pr_number"):
        document.set_pr_number("a", True)
    assert document.render() == b"- id: a\n"


_NOW = datetime(2026, 1, 30, 23, 15, tzinfo=UTC)
