"""A goal's pull request after it opened: which to follow, when to ask, what a change means. Pure.

A goal that succeeded with a pull request (`status.pullRequest`, state `open` or not known yet)
is followed until the pull request is merged: the runtime asks the forge about it now and then
with a conditional request (`If-None-Match` with the ETag of the last answer, so that a pull
request that has not changed costs a 304 and no rate limit), and writes what changed into the
goal's status (`pull_request_seen`): `status.pullRequest.state` (`open`, `merged`, `closed`),
the merge commit, who merged or closed it and when, the `Merged` condition, and an event on
each transition. A closed pull request is still looked at, slowly (`closed_interval`): one a
person reopens is followed again (`PullRequestReopened`), and its task is no longer declined.

While open, the forge also says whether the pull request still merges (`mergeable_state`,
computed lazily: `unknown` on the first answer after the pull request or its base changed,
so such an answer is followed by a quicker look); `dirty` (a conflict) starts a heal
(`goals/heal.py`), whose reasons the `Merged` condition keeps until the pull request merges
cleanly again.

`PullRequestFollower` is the bookkeeping, in memory (after a restart the goals' statuses say
again which to follow; only the ETags are lost, so the first look at each costs one request):
per followed goal, the pull request, where to ask, the ETag and when to ask next. Looks are
spread: the first between half an interval and one interval after being followed, each next
one an interval later with a quarter of jitter either way, and at most `batch` are taken each
round (the runtime's loop), so that a thousand open pull requests never go out at once. A
forge that answered with a rate limit is not asked again, for any goal, before its
`Retry-After`.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from backlog_operator import naming
from backlog_operator.api.common import Condition, ConditionStatus
from backlog_operator.api.goal import FollowedPullRequest, Goal, GoalStatus, Phase
from backlog_operator.controller.conditions import find, set_condition
from backlog_operator.controller.results import Event
from backlog_operator.controller.status import evolve, instant

MERGED = "Merged"  # the condition's type
# Its reasons, and the events' of the transitions.
OPEN_REASON = "PullRequestOpen"
MERGED_REASON = "PullRequestMerged"
CLOSED_REASON = "PullRequestClosed"
UNREADABLE_REASON = "PullRequestUnreadable"
REOPENED_REASON = "PullRequestReopened"  # an event's only
# What a heal found (goals/heal.py): the Merged condition's reasons while the pull request is
# open and does not merge; a look keeps them until the forge says it merges again.
CONFLICTED_REASON = "Conflicted"
TASK_NOT_IN_BASE_REASON = "TaskNotInBase"
COMPLETED_IN_BASE_REASON = "CompletedInBase"
HEAL_FAILED_REASON = "HealFailed"
HEAL_LIMIT_REASON = "HealLimitReached"
HEAL_REASONS = frozenset(
    {
        CONFLICTED_REASON,
        TASK_NOT_IN_BASE_REASON,
        COMPLETED_IN_BASE_REASON,
        HEAL_FAILED_REASON,
        HEAL_LIMIT_REASON,
    }
)
# A closed pull request is looked at this many times more rarely than an open one, unless the
# operator is told otherwise (BACKLOG_OPERATOR_PR_CLOSED_POLL_SECONDS).
CLOSED_SLOWER = 12
# After an answer whose mergeability the forge has not computed yet, the next look comes after
# at most this many seconds (once), not a whole interval later.
RECHECK_SECONDS = 10.0
# Jitter of the interval between two looks at one pull request: ±25 %.
JITTER = 0.25


class SeenPullRequest(Protocol):
    """What the forge said of a pull request (adapters.github.PullRequestState; read-only)."""

    @property
    def number(self) -> int: ...

    @property
    def state(self) -> str: ...

    @property
    def merge_commit(self) -> str | None: ...

    @property
    def merged_by(self) -> str | None: ...

    @property
    def merged_at(self) -> datetime | None: ...

    @property
    def closed_by(self) -> str | None: ...

    @property
    def closed_at(self) -> datetime | None: ...

    @property
    def mergeable(self) -> bool | None: ...

    @property
    def mergeable_state(self) -> str | None: ...

    @property
    def head_sha(self) -> str | None: ...

    @property
    def base_sha(self) -> str | None: ...


def opened_condition(status: GoalStatus, generation: int | None, now: datetime) -> list[Condition]:
    """`status.conditions` with `Merged=False` (`PullRequestOpen`) for a goal that has just
    opened (or reused) its pull request."""
    pull = status.pull_request
    message = f"pull request #{pull.number} is open" if pull else "the pull request is open"
    return set_condition(
        status.conditions, MERGED, "False", OPEN_REASON, message, generation=generation, now=now
    )


def pull_request_seen(
    status: GoalStatus, seen: SeenPullRequest, now: datetime
) -> tuple[GoalStatus | None, list[Event]]:
    """The goal's status with what the forge says of its pull request, and the event of the
    transition; (None, []) when nothing changed (or `seen` is not the goal's pull request)."""
    known = status.pull_request
    if known is None or known.number != seen.number or seen.state not in _STATES:
        return None, []
    merged = seen.state == "merged"
    closed = seen.state == "closed"
    merges_again = seen.state != "open" or seen.mergeable is True
    pull = known.model_copy(
        update={
            "state": seen.state,  # one of _STATES, checked above
            "merge_commit": seen.merge_commit if merged else None,
            "merged_by": seen.merged_by if merged else None,
            "merged_at": instant(seen.merged_at) if merged and seen.merged_at else None,
            "closed_by": seen.closed_by if closed else None,
            "closed_at": instant(seen.closed_at) if closed and seen.closed_at else None,
            # Conflicts a heal found hold until the pull request merges (again) or ends.
            "conflicted_files": None if merges_again else known.conflicted_files,
        }
    )
    condition, reason, message = _said(pull)
    old = find(status.conditions, MERGED)
    if old is not None and old.reason in HEAL_REASONS and not merges_again:
        condition, reason, message = old.status, old.reason, old.message
    conditions = set_condition(
        status.conditions,
        MERGED,
        condition,
        reason,
        message,
        generation=status.observed_generation,
        now=now,
    )
    if pull == known and conditions == status.conditions:
        return None, []
    events = []
    if pull.state != known.state:
        reopened = known.state == "closed" and pull.state == "open"
        events.append(Event("Normal", REOPENED_REASON if reopened else reason, message))
    elif old is not None and old.reason in HEAL_REASONS and reason == OPEN_REASON:
        events.append(Event("Normal", reason, f"{message} and merges again"))
    return evolve(status, pull_request=pull, conditions=conditions), events


def unreadable(status: GoalStatus, message: str, now: datetime) -> GoalStatus | None:
    """`Merged=Unknown` (`PullRequestUnreadable`, `message`) while the forge cannot say for a
    reason no retry fixes (a token without access, the pull request gone); None when the
    condition says so already."""
    old = find(status.conditions, MERGED)
    if old is not None and old.reason == UNREADABLE_REASON and old.message == message:
        return None
    conditions = set_condition(
        status.conditions,
        MERGED,
        "Unknown",
        UNREADABLE_REASON,
        message,
        generation=status.observed_generation,
        now=now,
    )
    return evolve(status, conditions=conditions)


_STATES = ("open", "merged", "closed")


def _said(pull: FollowedPullRequest) -> tuple[ConditionStatus, str, str]:
    """The Merged condition's status, reason and message for `pull`."""
    where = f"pull request #{pull.number}"
    if pull.state == "merged":
        by = f" by {pull.merged_by}" if pull.merged_by else ""
        commit = f" as {pull.merge_commit[:12]}" if pull.merge_commit else ""
        return "True", MERGED_REASON, f"{where} was merged{by}{commit}"
    if pull.state == "closed":
        by = f" by {pull.closed_by}" if pull.closed_by else ""
        return "False", CLOSED_REASON, f"{where} was closed without merging{by}"
    return "False", OPEN_REASON, f"{where} is open"


# -------------------------------------------------------------------------------- following


@dataclass
class Followed:
    """A goal whose pull request is followed, and where and how to ask about it."""

    key: str  # namespace/name of the goal
    uid: str
    number: int
    repository: str  # owner/name on the forge
    api_base_url: str | None
    secret: tuple[str, str] | None  # (name, key) of the token's Secret in the goal's namespace
    state: str | None  # as the goal's status says it (None: not looked at yet)
    etag: str | None = None
    due: float = 0.0
    failures: int = field(default=0)
    unreadable: bool = False  # the goal shows Merged=Unknown: the next answer is written
    # The goal's Merged condition says what a heal found (it goes back once the pull request
    # merges again); the last answer's mergeability; the `<head>..<base>` commits of the last
    # answer that said `dirty` (a new pair may need a heal: `news`).
    troubled: bool = False
    mergeable_state: str | None = None
    heads: str | None = None
    rechecked: bool = False  # the look after an `unknown` answer came sooner, once

    @property
    def namespace(self) -> str:
        """The goal's namespace."""
        return self.key.partition("/")[0]

    @property
    def name(self) -> str:
        """The goal's name."""
        return self.key.partition("/")[2]

    def is_pull_request(self, repository: str, number: int) -> bool:
        """Whether this follows pull request `number` of `repository` (owner/name, any case)."""
        return self.number == number and self.repository.casefold() == repository.casefold()


def to_follow(goal: Goal, status: GoalStatus) -> Followed | None:
    """What following the goal's pull request takes; None when it is not to be followed (no
    pull request, or one merged, or no forge to ask). A closed one is followed slowly: it may
    be reopened."""
    pull = status.pull_request
    spec = goal.spec.pull_request
    if status.phase is not Phase.SUCCEEDED or pull is None or pull.state == "merged":
        return None
    if spec.provider != "github":
        return None
    repository = spec.repository or naming.forge_repository(goal.spec.repository.url)
    if repository is None:
        return None
    secret = goal.spec.repository.credentials_secret
    merged = find(status.conditions, MERGED)
    return Followed(
        key=f"{goal.metadata.namespace}/{goal.metadata.name}",
        uid=goal.metadata.uid or "",
        number=pull.number,
        repository=repository,
        api_base_url=spec.api_base_url,
        secret=(secret.name, secret.key) if secret is not None else None,
        state=pull.state,
        unreadable=merged is not None and merged.reason == UNREADABLE_REASON,
        troubled=merged is not None and merged.reason in HEAL_REASONS,
    )


class PullRequestFollower:
    """The goals whose pull request is followed, and when each is due (see the module
    docstring). Times are on a monotonic clock, in seconds: the forge changes in real time."""

    def __init__(
        self,
        interval: float,
        batch: int,
        *,
        closed_interval: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.interval = interval
        self.closed_interval = closed_interval or interval * CLOSED_SLOWER
        self.batch = batch
        self.rng = rng or random.Random()  # noqa: S311 (jitter)
        self._followed: dict[str, Followed] = {}
        self._queue: list[tuple[float, str]] = []  # (due, key); stale entries skipped
        self._hosts_blocked: dict[str | None, float] = {}  # api base URL -> until

    def __len__(self) -> int:
        return len(self._followed)

    def get(self, key: str) -> Followed | None:
        """The goal's record, if its pull request is followed."""
        return self._followed.get(key)

    def track(self, wanted: Followed | None, key: str, now: float) -> None:
        """Follow `wanted` (what `to_follow` says of goal `key` now), or stop following `key`
        when it is None. A pull request followed already keeps its ETag and its turn."""
        if wanted is None:
            self._followed.pop(key, None)
            return
        known = self._followed.get(key)
        if known is not None and (known.uid, known.number) == (wanted.uid, wanted.number):
            known.state, known.unreadable = wanted.state, wanted.unreadable or known.unreadable
            known.troubled = wanted.troubled
            return
        # Within its second half-interval: a pull request just opened has not changed yet,
        # and after a restart the looks at every one of them are spread over that time.
        wanted.due = now + self._interval_of(wanted) * (0.5 + 0.5 * self.rng.random())
        self._followed[key] = wanted
        heapq.heappush(self._queue, (wanted.due, key))

    def forget(self, key: str) -> None:
        """No more looks at the goal's pull request (the goal is gone)."""
        self._followed.pop(key, None)

    def take_due(self, now: float) -> list[Followed]:
        """At most `batch` followed pull requests due now, the longest due first; each is
        planned again an interval later (`looked` and `failed` replan it after the look). One
        whose forge is blocked by a rate limit waits until then."""
        taken: list[Followed] = []
        postponed: list[tuple[float, str]] = []
        while self._queue and len(taken) < self.batch and self._queue[0][0] <= now:
            due, key = heapq.heappop(self._queue)
            item = self._followed.get(key)
            if item is None or item.due != due:
                continue  # stale: forgotten, or planned again since
            until = self._hosts_blocked.get(item.api_base_url, 0.0)
            if until > now:
                postponed.append((until, key))
                continue
            taken.append(item)
            self._plan(item, now + self._jittered(self._interval_of(item)))
        for until, key in postponed:
            self._plan(self._followed[key], until + self.rng.random())
        return taken

    def looked(
        self,
        key: str,
        etag: str | None,
        state: str | None,
        now: float,
        *,
        seen: SeenPullRequest | None = None,
    ) -> None:
        """A look went through: keep the ETag and the state the status now says, and what
        `seen` (the answer, None for a 304) says of whether it merges. An open pull request
        whose mergeability the forge has not computed yet is looked at again soon (once)."""
        item = self._followed.get(key)
        if item is None:
            return
        closed_before = item.state == "closed"
        item.etag, item.state, item.failures, item.unreadable = etag, state, 0, False
        if state == "merged":
            self._followed.pop(key, None)
            return
        if seen is None:
            return
        item.mergeable_state = seen.mergeable_state
        if seen.mergeable_state == "dirty":
            item.heads = heads_of(seen)
        unknown = state == "open" and seen.mergeable is None
        if unknown and not item.rechecked:
            item.rechecked = True
            self._plan(item, now + min(RECHECK_SECONDS, self.interval))
            return
        item.rechecked = unknown
        if closed_before != (state == "closed"):  # reopened or closed: its pace changes
            self._plan(item, now + self._jittered(self._interval_of(item)))

    def failed(self, key: str, now: float, retry_after: float | None = None) -> None:
        """A look failed: the next one in an interval, or after the forge's `Retry-After` (for
        every pull request on that forge)."""
        item = self._followed.get(key)
        if item is None:
            return
        item.failures += 1
        if retry_after:
            self._hosts_blocked[item.api_base_url] = now + retry_after
            self._plan(item, now + max(retry_after, self._jittered(self.interval)))

    def hurry(self, namespace: str, repository: str, number: int, now: float) -> int:
        """Goals in `namespace` following pull request `number` of `repository` are due now,
        ahead of every other (a webhook said it changed); how many. The next round takes
        them, within its batch and the forge's rate limit as every look."""
        hurried = 0
        for item in self._followed.values():
            if item.namespace == namespace and item.is_pull_request(repository, number):
                # Due before anything planned on the clock: first in the queue.
                self._plan(item, -math.inf)
                hurried += 1
        return hurried

    def shown_unreadable(self, key: str) -> None:
        """The goal now shows that its pull request cannot be read: the next look asks
        without an ETag (a 304 would say nothing), and its answer is written."""
        item = self._followed.get(key)
        if item is not None:
            item.unreadable, item.etag = True, None

    def _interval_of(self, item: Followed) -> float:
        return self.closed_interval if item.state == "closed" else self.interval

    def _plan(self, item: Followed, due: float) -> None:
        item.due = due
        heapq.heappush(self._queue, (due, item.key))

    def _jittered(self, seconds: float) -> float:
        return seconds * (1 + JITTER * (2 * self.rng.random() - 1))

    def keys(self) -> Sequence[str]:
        """The goals followed (for tests and the log)."""
        return list(self._followed)


def heads_of(seen: SeenPullRequest) -> str | None:
    """`<head>..<base>`: the commits a pull request's mergeability is computed for."""
    if not seen.head_sha or not seen.base_sha:
        return None
    return f"{seen.head_sha}..{seen.base_sha}"


def news(item: Followed, seen: SeenPullRequest) -> bool:
    """Whether an answer says something the goal's status, or a heal, may need: a new state
    (or the status shows the pull request unreadable), a conflict on commits not seen
    conflicting before (a heal may be due), or a goal that shows a conflict merging again.
    Anything else (a base that moved, mergeability being computed) reads and writes nothing:
    a push to a busy base branch changes every open pull request's answer."""
    return (
        seen.state != item.state
        or item.unreadable
        or (seen.mergeable_state == "dirty" and heads_of(seen) != item.heads)
        or (item.troubled and seen.mergeable is True)
    )


def follow_all(
    follower: PullRequestFollower, goals: Iterable[tuple[Goal, GoalStatus]], now: float
) -> None:
    """Follow every goal of `goals` that has a pull request to follow (at start-up)."""
    for goal, status in goals:
        key = f"{goal.metadata.namespace}/{goal.metadata.name}"
        follower.track(to_follow(goal, status), key, now)
