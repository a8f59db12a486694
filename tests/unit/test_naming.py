"""Names derived from tasks and goals: valid git refs and DNS labels whatever the input."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backlog_operator import naming


def git_accepts_branch(name: str) -> bool:
    return (
        subprocess.run(
            ["git", "check-ref-format", "--branch", name], capture_output=True
        ).returncode
        == 0
    )


@pytest.mark.parametrize(
    "task_id",
    [
        "docs-guide",
        "Fix..the.lock",
        "a b c",
        "x~y^z:w?*[",
        ".hidden",
        "ends.lock",
        "a//b",
        "@",
        "-lead",
        "ünïcode",
    ],
)
def test_branch_names_are_valid_refs(task_id: str) -> None:
    name = naming.branch_name("backlog/", task_id, "attempt-x-3f9c2a")
    assert name.endswith("-3f9c2a")
    assert git_accepts_branch(name), name


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_task_id_gives_a_valid_ref(task_id: str) -> None:
    assert git_accepts_branch(naming.branch_name("backlog/", task_id, "attempt-x-abcdef"))


def test_branch_name_matches_design_example() -> None:
    assert (
        naming.branch_name("backlog/", "docs-backlog-guide", "attempt-docs-backlog-guide-3f9c2a")
        == "backlog/docs-backlog-guide-3f9c2a"
    )
    assert (
        naming.task_branch_prefix("backlog/", "docs-backlog-guide") == "backlog/docs-backlog-guide-"
    )


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=0, max_size=200))
def test_dns_labels_are_valid_and_bounded(text: str) -> None:
    label = naming.dns_label(text)
    assert 1 <= len(label) <= 63
    assert label[0].isalnum() and label[-1].isalnum()
    assert all(c.isdigit() or ("a" <= c <= "z") or c == "-" for c in label)


def test_long_dns_labels_stay_unique() -> None:
    a = naming.dns_label("x" * 100 + "a")
    b = naming.dns_label("x" * 100 + "b")
    assert a != b and len(a) == len(b) == 63


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/o/r.git", False),
        ("git@github.com:o/r.git", False),
        ("ssh://git@github.com/o/r.git", False),
        ("https://x-access-token:ghp_abc@github.com/o/r.git", True),
        ("https://ghp_abc@github.com/o/r.git", True),
        ("/srv/git/r.git", False),
    ],
)
def test_credentials_in_urls_are_detected(url: str, expected: bool) -> None:
    assert naming.url_has_credentials(url) is expected


@pytest.mark.parametrize(
    ("url", "slug"),
    [
        ("https://github.com/octo/project.git", "octo/project"),
        ("git@github.com:octo/project.git", "octo/project"),
        ("https://ghe.example.com/team/app", "team/app"),
    ],
)
def test_forge_repository_from_url(url: str, slug: str) -> None:
    assert naming.forge_repository(url) == slug


def test_attempt_ids_are_unique_and_carry_the_task() -> None:
    ids = {naming.new_attempt_id("docs-guide") for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("attempt-docs-guide-") for i in ids)
