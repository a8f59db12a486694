"""The backlog document and its model: reading, the task fields, edits, saving, path globs."""

from __future__ import annotations

import os
import re
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from backlog_operator.backlog import _edits
from backlog_operator.backlog._fast_reader import FastReader
from backlog_operator.backlog._full_reader import FullReader
from backlog_operator.backlog._outline import (
    ODD_CHARACTERS,
    OutsideSubsetError,
    plain_value,
    task_items,
)
from backlog_operator.backlog.document import BacklogDocument
from backlog_operator.backlog.errors import BacklogEditError
from backlog_operator.backlog.model import PRIORITY_WORDS, Task, TaskStatus, path_allowed

DATA = Path(__file__).resolve().parents[1] / "data"
NOW = datetime(2026, 1, 30, 23, 15, tzinfo=UTC)

MAPPING = b"""\
# Team backlog
version: 3
tasks:
  - id: docs-backlog-guide        # unique within the file
    title: Write the backlog guide
    description: free text, handed to the task command
    ready: true
    status: pending
    priority: 1
    requires: [other-task-id]
    allowed_paths: ["docs/**"]
    owner: someone                # an unknown field, kept
  - id: other-task-id
    dependencies:
      - first
    priority: critical
  - id: bare
owner: platform
"""


def _parse(data: bytes) -> BacklogDocument:
    return BacklogDocument.parse(data, source="backlog.yaml")


def _mark(document: BacklogDocument, task_id: str, **overrides: Any) -> None:
    arguments: dict[str, Any] = {
        "attempt_id": f"attempt-{task_id}-3f9c2a",
        "branch": f"backlog/{task_id}-3f9c2a",
        "completed_at": NOW,
    }
    arguments.update(overrides)
    document.mark_completed(task_id, **arguments)


def _load_yaml(data: bytes) -> Any:
    return YAML(typ="safe", pure=True).load(data.decode("utf-8-sig"))


# Reading --------------------------------------------------------------------------------------


def test_mapping_format_reads_every_field() -> None:
    document = _parse(MAPPING)
    first, second, _ = document.tasks
    assert first.id == "docs-backlog-guide"
    assert first.title == "Write the backlog guide"
    assert first.description == "free text, handed to the task command"
    assert first.ready is True
    assert first.status is TaskStatus.PENDING
    assert first.priority == 1
    assert first.requires == ["other-task-id"]
    assert first.allowed_paths == ["docs/**"]
    assert first.extra == {"owner": "someone"}
    assert first.line == 4
    assert second.requires == ["first"]  # `dependencies` is `requires`
    assert second.priority == "critical"
    assert second.line == 13


def test_absent_fields_take_safe_defaults() -> None:
    task = _parse(MAPPING).tasks[2]
    assert task.ready is False  # never selectable by accident
    assert task.status is TaskStatus.PENDING
    assert (task.priority, task.priority_rank, task.requires, task.allowed_paths) == (
        None,
        None,
        [],
        None,
    )
    assert (task.last_attempt_id, task.branch_name, task.pr_number, task.completed_at) == (
        None,
        None,
        None,
        None,
    )


def test_bare_list_format() -> None:
    document = _parse(b"- id: a\n  status: completed\n- id: b\n")
    assert [task.id for task in document.tasks] == ["a", "b"]
    assert document.find("a") is not None
    assert document.find("a").is_completed  # type: ignore[union-attr]
    assert document.find("zzz") is None


@pytest.mark.parametrize("data", [b"tasks:\n", b"tasks: []\n", b"tasks: # none yet\nother: 1\n"])
def test_empty_task_lists(data: bytes) -> None:
    document = _parse(data)
    assert document.tasks == []
    assert document.render() == data


def test_ready_accepts_yaml_1_1_words() -> None:
    document = _parse(
        b"- {id: a, ready: yes}\n- {id: b, ready: 'On'}\n"
        b"- {id: c, ready: no}\n- {id: d, ready: ~}\n"
    )
    assert [task.ready for task in document.tasks] == [True, True, False, False]


def test_completed_at_reads_quoted_and_plain_times() -> None:
    document = _parse(
        b"- id: a\n  completed_at: '2026-01-30T23:15:00Z'\n"
        b"- id: b\n  completed_at: 2026-01-30T23:15:00Z\n"
        b"- id: c\n  completed_at: 2026-01-30 23:15:00\n"
        b'- id: d\n  completed_at: ""\n'
    )
    times = [task.completed_at for task in document.tasks]
    assert times == [NOW, NOW, NOW, None]
    assert all(time is None or time.tzinfo is not None for time in times)


def test_priorities_sort_words_and_integers_together() -> None:
    document = _parse(
        b"- {id: none}\n- {id: low, priority: low}\n- {id: zero, priority: 0}\n"
        b"- {id: high, priority: High}\n- {id: one, priority: 1}\n"
        b"- {id: crit, priority: critical}\n"
        b"- {id: minus, priority: -5}\n- {id: nine, priority: 9}\n"
    )
    ordered = sorted(document.tasks, key=lambda task: task.sort_key)
    assert [task.id for task in ordered] == [
        "minus",
        "zero",
        "crit",
        "high",
        "one",
        "low",
        "nine",
        "none",
    ]
    assert dict(PRIORITY_WORDS) == {"critical": 0, "high": 1, "medium": 2, "low": 3}
    assert document.find("high").priority == "high"  # type: ignore[union-attr]


def test_a_task_may_have_its_own_line_field() -> None:
    task = _parse(b"tasks:\n  - id: a\n    line: 99\n").tasks[0]
    assert task.line == 2
    assert task.extra == {"line": 99}


def test_task_model_is_usable_on_its_own() -> None:
    task = Task.from_mapping({"id": "x", "priority": "medium", "status": "blocked"})
    assert (task.line, task.priority_rank, task.status) == (0, 2, "blocked")


def test_unedited_document_renders_its_exact_bytes() -> None:
    for data in (MAPPING, b"\xef\xbb\xbf- id: a\r\n", b"- id: a"):
        assert _parse(data).render() == data


# Editing --------------------------------------------------------------------------------------


def test_mark_completed_sets_the_writeback_fields() -> None:
    document = _parse(MAPPING)
    changed_before = document.changed
    _mark(document, "docs-backlog-guide", pr_number=707)
    assert (changed_before, document.changed) == (False, True)
    task = document.find("docs-backlog-guide")
    assert task is not None
    assert task.status is TaskStatus.COMPLETED
    assert task.ready is False
    assert task.last_attempt_id == "attempt-docs-backlog-guide-3f9c2a"
    assert task.branch_name == "backlog/docs-backlog-guide-3f9c2a"
    assert task.pr_number == 707
    assert task.completed_at == NOW
    assert task.extra == {"owner": "someone"}
    assert b'    completed_at: "2026-01-30T23:15:00Z"\n' in document.render()
    # Later tasks moved down by the four inserted lines; the edited one did not move.
    assert [task.line for task in document.tasks] == [4, 17, 21]


def test_completed_at_is_written_in_utc_to_the_second() -> None:
    document = _parse(b"- id: a\n")
    east = timezone(timedelta(hours=2))
    _mark(document, "a", completed_at=datetime(2026, 1, 31, 1, 15, 0, 999999, tzinfo=east))
    assert b'completed_at: "2026-01-30T23:15:00Z"' in document.render()


def test_pr_number_is_written_only_when_given() -> None:
    document = _parse(b"- id: a\n")
    _mark(document, "a")
    assert b"pr_number" not in document.render()
    document.set_pr_number("a", 12)
    assert document.render() == (
        b"- id: a\n  ready: false\n  status: completed\n  last_attempt_id: attempt-a-3f9c2a\n"
        b"  branch_name: backlog/a-3f9c2a\n  pr_number: 12\n"
        b'  completed_at: "2026-01-30T23:15:00Z"\n'
    )
    document.set_pr_number("a", 13)
    assert b"  pr_number: 13\n" in document.render()
    assert document.find("a").pr_number == 13  # type: ignore[union-attr]


def test_edits_on_several_tasks_in_turn() -> None:
    document = _parse(MAPPING)
    _mark(document, "bare")
    _mark(document, "docs-backlog-guide")
    document.set_pr_number("other-task-id", 3)
    data = _load_yaml(document.render())
    before = _load_yaml(MAPPING)
    assert data["tasks"][1] == {**before["tasks"][1], "pr_number": 3}
    assert data["tasks"][0]["status"] == data["tasks"][2]["status"] == "completed"
    # "bare" (last) grew by 5 lines, "docs-backlog-guide" by 3, "other-task-id" by 1.
    assert [task.line for task in document.tasks] == [4, 16, 21]
    assert document.render().endswith(b"owner: platform\n")


def test_repeating_an_edit_changes_nothing() -> None:
    document = _parse(MAPPING)
    _mark(document, "bare", pr_number=4)
    once = document.render()
    _mark(document, "bare", pr_number=4)
    assert document.render() == once


@pytest.mark.parametrize(
    ("branch", "written"),
    [
        ("backlog/plain-1", b"branch_name: backlog/plain-1\n"),
        ("true", b'branch_name: "true"\n'),
        ("123", b'branch_name: "123"\n'),
        ("with space", b'branch_name: "with space"\n'),
        ('q"uote\\', b'branch_name: "q\\"uote\\\\"\n'),
        ("tab\there", b'branch_name: "tab\\there"\n'),
        ("#hash", b'branch_name: "#hash"\n'),
    ],
)
def test_values_are_quoted_when_plain_would_misread(branch: str, written: bytes) -> None:
    document = _parse(b"- id: a\n")
    _mark(document, "a", branch=branch)
    assert written in document.render()
    assert _load_yaml(document.render())[0]["branch_name"] == branch


def test_replaced_values_keep_their_quotes_and_comments() -> None:
    document = _parse(
        b"- id: a\n  status: \"pending\"   # why\n  branch_name: 'old'\n  last_attempt_id: x\n"
    )
    _mark(document, "a")
    # A missing writeback field goes after the nearest earlier one the task has, the others at
    # the end.
    assert document.render() == (
        b"- id: a\n  status: \"completed\"   # why\n  branch_name: 'backlog/a-3f9c2a'\n"
        b'  completed_at: "2026-01-30T23:15:00Z"\n'
        b"  last_attempt_id: attempt-a-3f9c2a\n  ready: false\n"
    )


def test_the_full_parser_path_edits_the_same_way() -> None:
    # A multi-line plain title is outside the fast reader's subset.
    data = b"- id: a\n  title: long\n    title\n  status: pending\n- id: b\n"
    document = _parse(data)
    _mark(document, "a")
    assert not document._outline.fast
    assert document.render() == (
        b"- id: a\n  title: long\n    title\n  status: completed\n  ready: false\n"
        b"  last_attempt_id: attempt-a-3f9c2a\n  branch_name: backlog/a-3f9c2a\n"
        b'  completed_at: "2026-01-30T23:15:00Z"\n- id: b\n'
    )


def test_old_mac_line_endings() -> None:
    document = _parse(b"tasks:\r  - id: a\r    status: pending\r  - id: b\r")
    _mark(document, "a")
    assert document.render() == (
        b"tasks:\r  - id: a\r    status: completed\r    ready: false\r"
        b"    last_attempt_id: attempt-a-3f9c2a\r    branch_name: backlog/a-3f9c2a\r"
        b'    completed_at: "2026-01-30T23:15:00Z"\r  - id: b\r'
    )


@pytest.mark.parametrize("data", [MAPPING, b"- id: a\n  title: long\n    title\n- id: bare\n"])
def test_an_edit_that_would_read_back_wrong_is_refused(
    monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    """The read-back check is the last line of defence: prove it catches a wrong edit."""
    real_emit = _edits._emit

    def wrong_emit(value: object, style: str | None, *, quoted: bool = False) -> str:
        text = real_emit(value, style, quoted=quoted)
        return "in_progress" if text == "completed" else text

    monkeypatch.setattr(_edits, "_emit", wrong_emit)
    document = _parse(data)
    with pytest.raises(BacklogEditError, match="cannot edit task 'bare'"):
        _mark(document, "bare")
    assert document.render() == data
    assert not document.changed
    assert document.find("bare").status is TaskStatus.PENDING  # type: ignore[union-attr]


def test_a_task_from_a_merge_key_gets_its_own_fields() -> None:
    data = b"base: &base\n  status: pending\n  ready: true\ntasks:\n  - <<: *base\n    id: a\n"
    document = _parse(data)
    _mark(document, "a")
    assert _load_yaml(document.render())["base"] == {"status": "pending", "ready": True}
    assert document.find("a").status is TaskStatus.COMPLETED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "data",
    [
        b"paths: &p [a]\ntasks:\n  - id: t\n    allowed_paths: *p\n  - id: u\n    notes: *p\n",
        b"paths: &p [a]\ntasks:\n  - id: t\n    allowed_paths: *p",  # no final line break
        b"paths: &p [a]\ntasks:\n  - {id: t, allowed_paths: *p}\n  - id: u\n",
    ],
)
def test_a_task_whose_last_value_is_an_alias_gets_the_new_fields_after_it(data: bytes) -> None:
    # The alias has its anchor's node: new fields went after the anchor's line, and the edit
    # was refused as it would not read back.
    document = _parse(data)
    _mark(document, "t")
    before, after = _load_yaml(data), _load_yaml(document.render())
    assert after["paths"] == before["paths"] == ["a"]
    assert after["tasks"][0]["allowed_paths"] == ["a"]
    assert after["tasks"][0]["status"] == "completed"
    assert after["tasks"][1:] == before["tasks"][1:]
    assert document.render().startswith(data.split(b"*p")[0] + b"*p")


# Fast reader and full parser agree ------------------------------------------------------------


def _outline_shape(root: Any) -> list[Any]:
    shape = []
    for item in task_items(root):
        pairs = [
            (key.value, key.start, key.end, key.line, value.start, value.end, value.style)
            for key, value in item.pairs or ()
        ]
        shape.append((item.start, item.end, item.line, item.style, pairs))
    return shape


@pytest.mark.parametrize(
    "case", sorted(DATA.glob("writeback-*")), ids=lambda case: case.name.removeprefix("writeback-")
)
def test_fast_reader_agrees_with_the_full_parser(case: Path) -> None:
    for name in ("original", "expected"):
        text = (case / name).read_bytes().decode("utf-8").removeprefix("\ufeff")
        fast_reader = FastReader(text)
        try:
            fast = fast_reader.read()
        except OutsideSubsetError:
            continue
        full_reader = FullReader(text, "x")
        full = full_reader.read()
        assert fast is not None
        assert full is not None
        assert fast.value == full.value
        assert _outline_shape(fast) == _outline_shape(full)
        assert fast_reader.nodes == full_reader.nodes


def test_typical_backlogs_take_the_fast_path() -> None:
    # Not a correctness matter, but a 5,000-task file is only quick on the fast path.
    for name in ("leviathan-style", "mapping-with-other-keys", "crlf", "unicode-bom"):
        data = (DATA / f"writeback-{name}" / "original").read_bytes()
        assert _parse(data)._outline.fast, name


def test_plain_word_table_matches_ruamel() -> None:
    words = ["~", "yes", "no", "on", "off", "y", "n", "nil", "none", "None", "t", "f", "nul"]
    for word in ("true", "false", "null"):
        words += [word, word.title(), word.upper(), word[:1].upper() + word[1:-1] + "E"]
    for word in words:
        assert plain_value(word) == _load_yaml(f"{word}\n".encode()), word


# Saving ---------------------------------------------------------------------------------------


def test_save_is_atomic_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / ".backlog" / "backlog.yaml"
    path.parent.mkdir()
    path.write_bytes(MAPPING)
    path.chmod(0o640)
    document = BacklogDocument.load(tmp_path, ".backlog/backlog.yaml")
    _mark(document, "bare")
    document.save(path)
    assert path.read_bytes() == document.render()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(os.listdir(path.parent)) == ["backlog.yaml"]  # no temporary file left


def test_save_without_a_path_writes_back_to_the_loaded_file(tmp_path: Path) -> None:
    path = tmp_path / "backlog.yaml"
    path.write_bytes(b"- id: a\n")
    document = BacklogDocument.load(tmp_path, "backlog.yaml")
    document.set_pr_number("a", 5)
    document.save()
    assert path.read_bytes() == b"- id: a\n  pr_number: 5\n"
    with pytest.raises(ValueError, match="give a path"):
        _parse(b"- id: a\n").save()


def test_save_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_bytes(b"- id: a\n")
    link = tmp_path / "backlog.yaml"
    link.symlink_to("real.yaml")
    document = BacklogDocument.load(tmp_path, "backlog.yaml")
    document.set_pr_number("a", 5)
    document.save(link)
    assert link.is_symlink()
    assert real.read_bytes() == b"- id: a\n  pr_number: 5\n"


def test_failed_save_leaves_the_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "backlog.yaml"
    path.write_bytes(b"- id: a\n")
    document = BacklogDocument.load(tmp_path, "backlog.yaml")
    document.set_pr_number("a", 5)

    def broken_replace(source: object, target: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        document.save(path)
    assert path.read_bytes() == b"- id: a\n"
    assert os.listdir(tmp_path) == ["backlog.yaml"]


# allowed_paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "patterns", "allowed"),
    [
        ("docs/a.md", ["docs/**"], True),
        ("docs/a/b.md", ["docs/**"], True),
        ("docs", ["docs/**"], False),
        ("docsx/a.md", ["docs/**"], False),
        ("docs/a/b.md", ["docs/"], True),
        ("README.md", ["*.md"], True),
        ("docs/a.md", ["*.md"], False),
        ("a.md", ["**/*.md"], True),
        ("x/y/a.md", ["**/*.md"], True),
        ("x/y/a.py", ["**/*.md"], False),
        ("src/pkg/mod.py", ["src/*/mod.py"], True),
        ("src/pkg/sub/mod.py", ["src/*/mod.py"], False),
        ("src/a/b/c/test_x.py", ["src/**/test_*.py"], True),
        ("src/test_x.py", ["src/**/test_*.py"], True),
        ("a1.txt", ["a?.txt"], True),
        ("a/.txt", ["a?.txt"], False),
        ("b.txt", ["[ab].txt"], True),
        ("c.txt", ["[!ab].txt"], True),
        ("a.txt", ["[!ab].txt"], False),
        (".github/workflows/ci.yml", ["*/workflows/*"], True),
        ("anything/at/all", ["**"], True),
        ("./docs/a.md", ["./docs/**"], True),
        ("docs/a.md", ["/docs/**"], True),
        ("docs/a.md", [], False),
        ("docs/../secret", ["docs/**"], False),
        ("docs/./a.md", ["docs/**"], False),
        ("docs//a.md", ["docs/**"], False),
        ("", ["**"], False),
        ("/etc/passwd", ["**"], False),
        ("Docs/a.md", ["docs/**"], False),
        ("a+b (1).md", ["a+b (1).md"], True),
        ("src/x.py", ["docs/**", "src/*.py"], True),
    ],
)
def test_path_allowed(path: str, patterns: list[str], allowed: bool) -> None:
    assert path_allowed(path, patterns) is allowed


def test_odd_characters_are_those_outside_what_yaml_allows_in_a_stream() -> None:
    # YAML's printable set (as ruamel.yaml's reader checks it), minus the line separators
    # \u2028 and \u2029, which some readers take as line breaks.
    allowed = re.compile(
        "[\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
        "\U00010000-\U0010ffff]"
    )
    every = "".join(map(chr, range(0x110000)))
    odd = {match.start() for match in ODD_CHARACTERS.finditer(every)}
    assert odd == {point for point in range(0x110000) if not allowed.match(every[point])}
