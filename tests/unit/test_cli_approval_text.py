"""The pure parts of `diff`, `approve`, `reject` and `revive`: what a hostile patch can do to a
terminal, the bounds on unpacking it, its diffstat, and the annotation values' limits (the
commands themselves against the API emulator: tests/operator/test_cli_approval.py)."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import pytest

from backlog_operator.api.labels import ANNOTATION_REVIVE_PREFIX, revive_annotation
from backlog_operator.commands import approval
from backlog_operator.commands.cluster import CommandError, printable
from backlog_operator.worker import staging


@pytest.mark.parametrize(
    ("raw", "printed"),
    [
        ("plain\ttab\n", "plain\ttab\n"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("\x1b]8;;https://x\x1b\\link", "\\x1b]8;;https://x\\x1b\\link"),
        ("over\rwrite", "over\\x0dwrite"),
        ("bell\x07 nul\x00 del\x7f", "bell\\x07 nul\\x00 del\\x7f"),
        ("c1 \x9b2J \x85", "c1 \\x9b2J \\x85"),
        ("rtl \u202e \u2066 \u2069 \u200f", "rtl \\u202e \\u2066 \\u2069 \\u200f"),
        ("line\u2028sep", "line\\u2028sep"),
        ("é ü 漢字 🙂", "é ü 漢字 🙂"),
    ],
)
def test_printable_escapes_what_a_terminal_acts_on(raw: str, printed: str) -> None:
    assert printable(raw) == printed


def test_bytes_that_are_not_utf8_are_shown_as_escapes() -> None:
    assert approval.shown(b"ok \xff\xfe \xc3\xa9 \x1b") == "ok \\xff\\xfe é \\x1b"


def test_every_control_character_but_newline_and_tab_is_escaped() -> None:
    controls = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]
    for char in controls:
        out = printable(char)
        assert out == char if char in "\n\t" else out.startswith("\\x"), repr(char)


def test_unpacking_stops_at_the_bound() -> None:
    limit = 1000
    assert approval.gunzip_bounded(gzip.compress(b"x" * limit), limit) == b"x" * limit
    with pytest.raises(CommandError, match="more than 1000 bytes"):
        approval.gunzip_bounded(gzip.compress(b"x" * (limit + 1)), limit)


def test_a_gzip_bomb_is_not_unpacked_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    produced: list[int] = []
    real = zlib.decompressobj

    class Counting:
        """zlib's decompressor, counting the bytes it produces."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.inner = real(*args, **kwargs)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            out = self.inner.decompress(data, max_length)
            produced.append(len(out))
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    monkeypatch.setattr(zlib, "decompressobj", Counting)
    with pytest.raises(CommandError, match="not unpacked further"):
        approval.gunzip_bounded(gzip.compress(b"\0" * (16 << 20)), 1000)
    assert 0 < sum(produced) <= 1001


def test_the_bound_is_the_largest_patch_the_operator_stages() -> None:
    assert approval.MAX_PATCH_BYTES == staging.MAX_PATCH_BYTES


def test_diffstat_counts_hunk_lines_only() -> None:
    patch = (
        "diff --git a/a.txt b/a.txt\n"
        "--- a/a.txt\n"
        "+++ b/a.txt\n"
        "@@ -1,2 +1,2 @@\n"
        "-old\n"
        "+new\n"
        "+--- looks like a header\n"
        " same\n"
        'diff --git "a/odd\\tname" "b/odd\\tname"\n'
        "new file mode 100644\n"
        "GIT binary patch\n"
        "literal 3\n"
    )
    stats = approval.diffstat(patch)
    assert [(s.path, s.added, s.deleted, s.binary) for s in stats] == [
        ("a.txt", 2, 1, False),
        ('"b/odd\\tname"', 0, 0, True),
    ]
    lines = list(approval.stat_lines(stats))
    assert lines[-1] == " 2 file(s) changed, 2 insertion(s)(+), 1 deletion(s)(-)"


def test_a_reason_is_cut_on_a_character() -> None:
    assert approval.cut_reason("x" * 2000) == "x" * 1024
    assert approval.cut_reason("€" * 400) == "€" * 341  # 3 bytes each: 1023 of 1024
    assert approval.cut_reason("short") == "short"


@pytest.mark.parametrize(
    ("task", "valid"),
    [
        ("docs-guide", True),
        ("a", True),
        ("A.b_c-9", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("", False),
        ("-a", False),
        ("a_", False),
        ("a/b", False),
        ("ä", False),
        ("a b", False),
    ],
)
def test_a_task_is_revivable_when_its_id_is_an_annotation_name(task: str, valid: bool) -> None:
    expected = ANNOTATION_REVIVE_PREFIX + task if valid else None
    assert revive_annotation(task) == expected
