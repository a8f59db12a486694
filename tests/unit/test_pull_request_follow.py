"""Following a goal's pull request after it opened: the status a look writes, and which looks
are due when (`controller/goals/pull_request.py`, pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backlog_operator.api.goal import Goal, GoalStatus
from backlog_operator.controller.goals.pull_request import (
    Followed,
    PullRequestFollower,
    news,
    opened_condition,
    pull_request_seen,
    to_follow,
    unreadable,
)
from backlog_operator.controller.status import evolve

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
URL = "https://github.com/octo/project/pull/7"


@dataclass
class Seen:
    """What the forge says (the shape of adapters.github.PullRequestState)."""

    state: str
    number: int = 7
    merge_commit: str | None = None
    merged_by: str | None = None
    merged_at: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    mergeable: bool | None = None
    mergeable_state: str | None = None
    head_sha: str | None = None
    base_sha: str | None = None


def published(**pull: Any) -> GoalStatus:
    status = GoalStatus.model_validate(
        {
            "phase": "Succeeded",
            "reason": "Published",
            "observedGeneration": 2,
            "pullRequest": {"number": 7, "url": URL, "state": "open", **pull},
        }
    )
    return evolve(status, conditions=opened_condition(status, 2, NOW - timedelta(hours=1)))


def merged_condition(status: GoalStatus) -> tuple[str, str, str]:
    [found] = [c for c in status.conditions if c.type == "Merged"]
    return found.status, found.reason, found.message


# ----------------------------------------------------------------------- what a look writes


def test_a_merge_is_written_with_its_commit_who_and_when() -> None:
    merged_at = NOW - timedelta(minutes=3, microseconds=5)
    new, events = pull_request_seen(
        published(),
        Seen("merged", merge_commit="c" * 40, merged_by="maintainer", merged_at=merged_at),
        NOW,
    )

    assert new is not None and new.pull_request is not None
    pull = new.pull_request.to_wire()
    assert pull == {
        "number": 7,
        "url": URL,
        "state": "merged",
        "mergeCommit": "c" * 40,
        "mergedBy": "maintainer",
        "mergedAt": "2026-03-02T11:56:59Z",
    }
    assert merged_condition(new) == (
        "True",
        "PullRequestMerged",
        f"pull request #7 was merged by maintainer as {'c' * 12}",
    )
    [condition] = [c for c in new.conditions if c.type == "Merged"]
    assert condition.last_transition_time == NOW and condition.observed_generation == 2
    assert [(e.kind, e.reason) for e in events] == [("Normal", "PullRequestMerged")]
    assert new.phase == published().phase  # the goal's outcome stays


def test_a_close_without_merge_is_written_with_who_closed_it() -> None:
    new, events = pull_request_seen(
        published(), Seen("closed", closed_by="reviewer", closed_at=NOW), NOW
    )

    assert new is not None and new.pull_request is not None
    assert (new.pull_request.state, new.pull_request.closed_by) == ("closed", "reviewer")
    assert new.pull_request.merge_commit is None
    assert merged_condition(new) == (
        "False",
        "PullRequestClosed",
        "pull request #7 was closed without merging by reviewer",
    )
    assert [(e.kind, e.reason) for e in events] == [("Normal", "PullRequestClosed")]


def test_nothing_new_writes_nothing() -> None:
    assert pull_request_seen(published(), Seen("open"), NOW) == (None, [])


def test_a_look_at_another_pull_request_writes_nothing() -> None:
    """The goal was run again meanwhile and has another pull request (or none)."""
    assert pull_request_seen(published(), Seen("merged", number=8), NOW) == (None, [])
    assert pull_request_seen(GoalStatus(phase="Succeeded"), Seen("merged"), NOW) == (None, [])


def test_a_state_first_seen_on_a_goal_from_before_is_written_without_an_event() -> None:
    """A goal published before pull requests were followed has no state yet."""
    old = GoalStatus.model_validate(
        {"phase": "Succeeded", "pullRequest": {"number": 7, "url": URL}}
    )
    new, events = pull_request_seen(old, Seen("open"), NOW)
    assert new is not None and new.pull_request is not None
    assert new.pull_request.state == "open"
    assert merged_condition(new)[:2] == ("False", "PullRequestOpen")
    assert [(e.kind, e.reason) for e in events] == [("Normal", "PullRequestOpen")]


def test_unreadable_is_said_once() -> None:
    first = unreadable(published(), "403: not allowed", NOW)
    assert first is not None
    assert merged_condition(first) == ("Unknown", "PullRequestUnreadable", "403: not allowed")
    assert unreadable(first, "403: not allowed", NOW) is None
    # A later look that works puts the condition back.
    new, _ = pull_request_seen(first, Seen("open"), NOW)
    assert new is not None and merged_condition(new)[:2] == ("False", "PullRequestOpen")


# ------------------------------------------------------------------------ which to follow


def goal(provider: str = "github", **status: Any) -> tuple[Goal, GoalStatus]:
    body = {
        "metadata": {"name": "g1", "namespace": "team", "uid": "u1"},
        "spec": {
            "repository": {
                "url": "https://github.com/octo/project.git",
                "credentialsSecret": {"name": "gh", "key": "pat"},
            },
            "task": {"image": "busybox", "command": ["true"]},
            "pullRequest": {"provider": provider, "apiBaseUrl": "https://ghe.example/api/v3"},
        },
    }
    return Goal.model_validate(body), GoalStatus.model_validate(status)


def test_what_following_takes() -> None:
    followed = to_follow(*goal(phase="Succeeded", pullRequest={"number": 7, "url": URL}))
    assert followed is not None
    assert (followed.key, followed.uid, followed.number) == ("team/g1", "u1", 7)
    assert (followed.repository, followed.api_base_url) == (
        "octo/project",
        "https://ghe.example/api/v3",
    )
    assert (followed.secret, followed.state, followed.etag) == (("gh", "pat"), None, None)


@pytest.mark.parametrize(
    ("provider", "status"),
    [
        ("github", {"phase": "Running"}),
        ("github", {"phase": "Succeeded"}),
        (
            "github",
            {"phase": "Succeeded", "pullRequest": {"number": 7, "url": URL, "state": "merged"}},
        ),
        ("none", {"phase": "Succeeded", "pullRequest": {"number": 7, "url": URL}}),
    ],
)
def test_what_is_not_followed(provider: str, status: dict[str, Any]) -> None:
    assert to_follow(*goal(provider, **status)) is None


# --------------------------------------------------------------------------------- timing


def item(key: str, number: int = 1, base: str | None = None) -> Followed:
    return Followed(
        key=key,
        uid=f"uid-{key}",
        number=number,
        repository="octo/project",
        api_base_url=base,
        secret=None,
        state="open",
    )


def test_looks_are_spread_bounded_per_round_and_jittered() -> None:
    """A thousand open pull requests when the operator starts: 20 looks a round at most,
    none in the first half interval, then one round after the other until all are seen."""
    follower = PullRequestFollower(300.0, batch=20, rng=random.Random(7))
    for index in range(1000):
        follower.track(item(f"ns/g{index}", index), f"ns/g{index}", now=0.0)

    assert follower.take_due(149.9) == []
    seen: set[str] = set()
    for n in range(60):
        now = 150.0 + 5.0 * n
        taken = follower.take_due(now)
        assert len(taken) <= 20  # never a burst of more
        # Each next look an interval later, give or take a quarter.
        assert all(now + 225.0 <= i.due <= now + 375.0 for i in taken)
        seen.update(i.key for i in taken)
    assert len(seen) == 1000  # every one seen within one and a half intervals


def test_a_followed_pull_request_keeps_its_etag_and_turn_when_tracked_again() -> None:
    follower = PullRequestFollower(10.0, batch=5, rng=random.Random(1))
    follower.track(item("ns/g"), "ns/g", now=0.0)
    [looked] = follower.take_due(10.0)
    follower.looked("ns/g", 'W/"abc"', "open", now=10.0)
    due = looked.due

    follower.track(item("ns/g"), "ns/g", now=11.0)  # the goal's cycle ran again

    known = follower.get("ns/g")
    assert known is not None and (known.etag, known.due) == ('W/"abc"', due)
    assert follower.take_due(due - 0.1) == []
    assert [i.key for i in follower.take_due(due)] == ["ns/g"]


def test_merged_and_forgotten_are_no_longer_looked_at_and_closed_ones_slowly() -> None:
    follower = PullRequestFollower(10.0, batch=5, closed_interval=100.0, rng=random.Random(1))
    for key in ("ns/merged", "ns/closed", "ns/gone", "ns/open"):
        follower.track(item(key), key, now=0.0)
    follower.take_due(10.0)
    follower.looked("ns/merged", None, "merged", now=10.0, seen=Seen("merged"))
    follower.looked("ns/closed", None, "closed", now=10.0, seen=Seen("closed"))
    follower.forget("ns/gone")

    assert sorted(follower.keys()) == ["ns/closed", "ns/open"]
    # The open one every 10 s (±25 %), the closed one (it may be reopened) every 100 s.
    assert [i.key for i in follower.take_due(25.0)] == ["ns/open"]
    assert [i.key for i in follower.take_due(40.0)] == ["ns/open"]
    assert "ns/closed" in [i.key for i in follower.take_due(136.0)]
    follower.track(None, "ns/closed", now=136.0)
    assert [i.key for i in follower.take_due(1000.0)] == ["ns/open"]
    follower.track(None, "ns/open", now=1000.0)  # run again: no pull request to follow
    assert len(follower) == 0 and follower.take_due(10_000.0) == []


def test_a_rate_limit_holds_every_look_at_that_forge() -> None:
    follower = PullRequestFollower(10.0, batch=10, rng=random.Random(3))
    follower.track(item("ns/a", base="https://ghe"), "ns/a", now=0.0)
    follower.track(item("ns/b", base="https://ghe"), "ns/b", now=0.0)
    follower.track(item("ns/c"), "ns/c", now=0.0)
    first = follower.take_due(10.0)
    assert len(first) == 3

    follower.failed("ns/a", now=10.0, retry_after=600.0)

    assert [i.key for i in follower.take_due(30.0)] == ["ns/c"]  # b waits, c's forge is free
    assert [i.key for i in follower.take_due(600.0)] == ["ns/c"]
    assert {"ns/a", "ns/b"} <= {i.key for i in follower.take_due(612.0)}


def test_a_goal_shown_unreadable_gets_its_next_answer_written() -> None:
    """After a look the forge refused, the next one asks without an ETag (a 304 would leave
    Merged=Unknown standing), also after a restart (the condition says so)."""
    follower = PullRequestFollower(10.0, batch=5, rng=random.Random(1))
    follower.track(item("ns/g"), "ns/g", now=0.0)
    follower.take_due(10.0)
    follower.looked("ns/g", 'W/"abc"', "open", now=10.0)

    follower.shown_unreadable("ns/g")

    known = follower.get("ns/g")
    assert known is not None and (known.unreadable, known.etag) == (True, None)
    follower.looked("ns/g", 'W/"def"', "open", now=20.0)
    assert (known.unreadable, known.etag) == (False, 'W/"def"')

    shown = unreadable(published(), "403", NOW)
    assert shown is not None
    restarted = to_follow(goal()[0], evolve(shown, phase="Succeeded"))
    assert restarted is not None and restarted.unreadable


def test_a_closed_pull_request_reopened_is_open_again_with_an_event() -> None:
    closed, _ = pull_request_seen(
        published(), Seen("closed", closed_by="reviewer", closed_at=NOW), NOW
    )
    assert closed is not None

    reopened, events = pull_request_seen(closed, Seen("open", mergeable=True), NOW)

    assert reopened is not None and reopened.pull_request is not None
    assert reopened.pull_request.to_wire() == {"number": 7, "url": URL, "state": "open"}
    assert merged_condition(reopened)[:2] == ("False", "PullRequestOpen")
    assert [(e.kind, e.reason) for e in events] == [("Normal", "PullRequestReopened")]


def test_an_answer_whose_mergeability_is_not_computed_yet_is_looked_at_again_soon() -> None:
    follower = PullRequestFollower(100.0, batch=5, rng=random.Random(2))
    follower.track(item("ns/g"), "ns/g", now=0.0)
    [taken] = follower.take_due(100.0)
    unknown = Seen("open", mergeable_state="unknown", head_sha="h", base_sha="b")

    follower.looked("ns/g", "e1", "open", now=100.0, seen=unknown)

    assert [i.key for i in follower.take_due(110.0)] == ["ns/g"]  # RECHECK_SECONDS, not 100
    follower.looked("ns/g", "e1", "open", now=110.0, seen=unknown)
    assert follower.take_due(150.0) == []  # once: then the interval again
    assert taken.mergeable_state == "unknown" and taken.heads is None  # no conflict seen


def test_only_answers_a_status_or_a_heal_needs_are_looked_into() -> None:
    followed = item("ns/g")
    followed.state = "open"
    clean = Seen("open", mergeable=True, mergeable_state="clean", head_sha="h", base_sha="b1")
    moved = Seen("open", mergeable=None, mergeable_state="unknown", head_sha="h", base_sha="b2")
    dirty = Seen("open", mergeable=False, mergeable_state="dirty", head_sha="h", base_sha="b2")

    assert not news(followed, clean) and not news(followed, moved)  # a base that moved
    assert news(followed, Seen("merged")) and news(followed, dirty)
    followed.heads = "h..b2"  # that conflict was seen (and its heal decided)
    assert not news(followed, dirty)
    assert news(
        followed,
        Seen("open", mergeable=False, mergeable_state="dirty", head_sha="h2", base_sha="b2"),
    )
    followed.troubled = True  # the goal shows what a heal found: merging again is news
    assert news(followed, clean) and not news(followed, dirty)
