"""Names as label values: an object's name runs to 253 characters, a label value to 63.

`naming.label_value` keeps a name that is a valid label value as it is and shortens any other
to a readable prefix plus a hash of the whole name; the labels that carry a Backlog's or a
GoalSchedule's name are written, and selected, with it. The names the operator derives from
long owner names (Goals, Jobs) stay valid too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backlog_operator import naming
from backlog_operator.api.backlog import Backlog
from backlog_operator.api.goal import Goal
from backlog_operator.api.labels import (
    LABEL_BACKLOG,
    LABEL_GOAL,
    LABEL_SCHEDULE,
    LABEL_TASK,
    name_selector,
)
from backlog_operator.api.schedule import GoalSchedule
from backlog_operator.backlog.model import Task
from backlog_operator.backlog.selection import goal_name as backlog_goal_name
from backlog_operator.controller.backlogs.reconciler import goal_for_task
from backlog_operator.controller.goals.job import job_labels, job_name
from backlog_operator.controller.schedules.cron import goal_name as schedule_goal_name
from backlog_operator.controller.schedules.reconciler import goal_for_tick

# apimachinery's IsValidLabelValue, and IsDNS1123Subdomain / IsDNS1123Label for names.
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

# The longest object name Kubernetes allows (a DNS subdomain of 253 characters), with dots.
LONG_NAME = "team." * 50 + "abc"
UID = "0c6e7a4e-1d2b-4f51-9d8e-3f1e2a6b7c8d"


def valid_label_value(value: str) -> bool:
    return len(value) <= 63 and LABEL_VALUE.fullmatch(value) is not None


def test_long_name_is_the_longest_object_name() -> None:
    assert len(LONG_NAME) == 253
    assert DNS_SUBDOMAIN.fullmatch(LONG_NAME)


@pytest.mark.parametrize(
    "name",
    ["team", "a", "", "nightly-docs", "Team_1.x", "a" * 62, "x" * 63, "1.2.3", "a-b.c_d"],
)
def test_a_valid_label_value_is_kept_as_it_is(name: str) -> None:
    assert naming.label_value(name) == name


def test_exactly_63_characters_are_kept_64_are_shortened() -> None:
    exact = "b" * 63
    assert naming.label_value(exact) == exact
    longer = "b" * 64
    value = naming.label_value(longer)
    assert valid_label_value(value)
    assert value != longer[:63]
    assert value.startswith("b" * 40)


def test_a_253_character_name_gives_a_readable_valid_value() -> None:
    value = naming.label_value(LONG_NAME)
    assert valid_label_value(value)
    assert len(value) == 63
    # The prefix is the name's own start, the tail a hash of the whole name.
    prefix, digest = value.rsplit("-", 1)
    assert LONG_NAME.startswith(prefix)
    assert re.fullmatch(r"[0-9a-f]{10}", digest)


def test_the_value_is_stable() -> None:
    assert naming.label_value(LONG_NAME) == naming.label_value(str(LONG_NAME))
    # Pinned: selectors written by another operator version must find the same Goals.
    assert naming.label_value("a" * 64) == f"{'a' * 52}-ffe054fe7a"
    assert naming.label_value(LONG_NAME) == f"{LONG_NAME[:52]}-cbd109d54f"


def test_names_that_differ_only_after_the_cut_get_different_values() -> None:
    first = "x" * 200 + "first"
    second = "x" * 200 + "second"
    assert naming.label_value(first)[:52] == naming.label_value(second)[:52]
    assert naming.label_value(first) != naming.label_value(second)
    assert naming.label_value(LONG_NAME) != naming.label_value(LONG_NAME[:-1] + "d")


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("a b", "a-b"),
        ("team/alpha", "team-alpha"),
        ("-leading", "leading"),
        ("trailing.", "trailing"),
        ("_x_", "x"),
        ("ünïcode", "n-code"),
        ("x" * 51 + "." + "y" * 20, "x" * 51),  # the cut ends on a dot: stripped
    ],
)
def test_characters_a_label_value_cannot_hold_are_replaced(name: str, head: str) -> None:
    value = naming.label_value(name)
    assert valid_label_value(value)
    assert value.rsplit("-", 1)[0] == head
    # ...and the hash keeps a replaced name apart from the name it was replaced into.
    assert value != naming.label_value(head)


@pytest.mark.parametrize("name", ["/", "...", "-", "é"])
def test_a_name_with_nothing_readable_is_its_hash(name: str) -> None:
    value = naming.label_value(name)
    assert valid_label_value(value)
    assert re.fullmatch(r"[0-9a-f]{10}", value)


@given(st.text(max_size=300))
def test_any_name_gives_a_valid_label_value(name: str) -> None:
    value = naming.label_value(name)
    assert valid_label_value(value)
    if valid_label_value(name):
        assert value == name


def test_name_selector_selects_what_is_written() -> None:
    assert name_selector(LABEL_BACKLOG, "team") == "backlog.dev/backlog=team"
    assert name_selector(LABEL_SCHEDULE, LONG_NAME) == (
        f"backlog.dev/goal-schedule={naming.label_value(LONG_NAME)}"
    )


# ------------------------------------------------- what the operator writes for a long owner


def backlog(name: str) -> Backlog:
    return Backlog.model_validate(
        {
            "apiVersion": "backlog.dev/v1alpha1",
            "kind": "Backlog",
            "metadata": {"name": name, "namespace": "default", "uid": UID},
            "spec": {
                "repository": {"url": "https://github.com/o/r.git"},
                "goalTemplate": {"spec": {"task": {"image": "busybox", "command": ["true"]}}},
            },
        }
    )


def schedule(name: str) -> GoalSchedule:
    return GoalSchedule.model_validate(
        {
            "apiVersion": "backlog.dev/v1alpha1",
            "kind": "GoalSchedule",
            "metadata": {"name": name, "namespace": "default", "uid": UID},
            "spec": {
                "schedule": "*/5 * * * *",
                "goalTemplate": {
                    "spec": {
                        "repository": {"url": "https://github.com/o/r.git"},
                        "task": {"image": "busybox", "command": ["true"]},
                    }
                },
            },
        }
    )


def assert_valid_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        assert valid_label_value(value), f"{key}={value!r}"


@pytest.mark.parametrize("number", [1, 2, 12])
def test_a_long_backlogs_goal_has_a_valid_name_and_labels(number: int) -> None:
    task = Task.from_mapping({"id": "ci-cache", "title": "Cache CI", "line": 3})
    manifest = goal_for_task(backlog(LONG_NAME), task, number=number)
    name = manifest["metadata"]["name"]
    assert len(name) <= 63 and DNS_LABEL.fullmatch(name)
    assert_valid_labels(manifest["metadata"]["labels"])
    assert manifest["metadata"]["labels"][LABEL_BACKLOG] == naming.label_value(LONG_NAME)
    assert manifest["metadata"]["ownerReferences"][0]["name"] == LONG_NAME


def test_a_short_backlogs_labels_are_unchanged() -> None:
    task = Task.from_mapping({"id": "ci-cache", "title": "Cache CI", "line": 3})
    manifest = goal_for_task(backlog("team"), task)
    assert manifest["metadata"]["name"] == "team-ci-cache"
    assert manifest["metadata"]["labels"][LABEL_BACKLOG] == "team"
    assert manifest["metadata"]["labels"][LABEL_TASK] == "ci-cache"


def test_two_long_backlogs_never_share_goal_names() -> None:
    other = LONG_NAME[:-1] + "d"
    assert backlog_goal_name(LONG_NAME, "t") != backlog_goal_name(other, "t")


def test_a_long_schedules_goal_has_a_valid_name_and_labels() -> None:
    tick = datetime(2024, 5, 1, 3, 5, tzinfo=UTC)
    name = schedule_goal_name(LONG_NAME, tick)
    assert len(name) <= 63 and DNS_LABEL.fullmatch(name)
    manifest = goal_for_tick(schedule(LONG_NAME), tick, name)
    assert_valid_labels(manifest["metadata"]["labels"])
    assert manifest["metadata"]["labels"][LABEL_SCHEDULE] == naming.label_value(LONG_NAME)
    assert manifest["metadata"]["ownerReferences"][0]["name"] == LONG_NAME
    assert schedule_goal_name(LONG_NAME[:-1] + "d", tick) != name


def test_a_short_schedules_labels_are_unchanged() -> None:
    tick = datetime(2024, 5, 1, 3, 5, tzinfo=UTC)
    manifest = goal_for_tick(schedule("nightly"), tick, schedule_goal_name("nightly", tick))
    assert manifest["metadata"]["labels"][LABEL_SCHEDULE] == "nightly"


@given(
    owner=st.from_regex(DNS_SUBDOMAIN, fullmatch=True).filter(lambda n: len(n) <= 253),
    run=st.integers(1, 1000),
    attempt=st.integers(1, 1000),
)
def test_job_names_and_labels_of_any_goal_stay_valid(owner: str, run: int, attempt: int) -> None:
    goal_name = backlog_goal_name(owner, "ci-cache")
    goal = Goal.model_validate(
        {
            "apiVersion": "backlog.dev/v1alpha1",
            "kind": "Goal",
            "metadata": {"name": goal_name, "namespace": "default", "uid": UID},
            "spec": {
                "repository": {"url": "https://github.com/o/r.git"},
                "task": {"image": "busybox", "command": ["true"]},
                "backlog": {"path": ".backlog/backlog.yaml", "taskId": "ci-cache"},
            },
        }
    )
    assert len(goal_name) <= 63 and DNS_LABEL.fullmatch(goal_name)
    job = job_name(goal_name, UID, attempt, run)
    assert len(job) <= 63 and DNS_LABEL.fullmatch(job)
    labels = job_labels(goal, attempt, run)
    assert_valid_labels(labels)
    assert labels[LABEL_GOAL] == goal_name
