"""The GitHub adapter: real PyGithub over real HTTP against the GitHub stand-in."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from email.utils import formatdate

import pytest

from backlog_operator.adapters.github import (
    ForgeError,
    GitHubForge,
    PullRequestRef,
    PullRequestState,
    _rate_limit_wait,
)
from tests.support.github_standin import DOCS, GitHubStandIn, free_port

TOKEN = "ghp_standInSecretToken0123456789abcdef"
REPO = "octo-org/octo-repo"
PREFIX = "backlog/docs-guide-"


@pytest.fixture
def gh() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(REPO, token=TOKEN) as standin:
        yield standin


@pytest.fixture
def forge(gh: GitHubStandIn) -> Iterator[GitHubForge]:
    # No pause between writes: GitHub asks for one, the stand-in does not need it.
    with GitHubForge(REPO, TOKEN, base_url=gh.base_url, seconds_between_writes=None) as client:
        yield client


def _open(forge: GitHubForge, head: str = f"{PREFIX}3f9c2a") -> tuple[PullRequestRef, bool]:
    return forge.open_pull_request(
        head=head,
        base="main",
        title="Write the backlog guide",
        body="Task docs-guide",
        draft=True,
        labels=["backlog", "automated"],
    )


def _raises(call: object, *args: object) -> ForgeError:
    assert callable(call)
    with pytest.raises(ForgeError) as caught:
        call(*args)
    return caught.value


# -- opening pull requests ----------------------------------------------------------------------


def test_open_pull_request_creates_a_labelled_draft(gh: GitHubStandIn, forge: GitHubForge) -> None:
    ref, created = _open(forge)

    assert created is True
    pr = gh.pulls[ref.number]
    assert (pr.title, pr.body, pr.draft, pr.base, pr.head) == (
        "Write the backlog guide",
        "Task docs-guide",
        True,
        "main",
        f"{PREFIX}3f9c2a",
    )
    assert pr.labels == ["backlog", "automated"]
    assert ref == PullRequestRef(
        number=pr.number,
        url=f"{gh.origin}/{REPO}/pull/{pr.number}",
        head_branch=f"{PREFIX}3f9c2a",
        head_sha=pr.head_sha,
        base_branch="main",
    )
    create = gh.requests_to("POST", "/pulls")[0]
    assert create.body["draft"] is True
    assert create.headers["authorization"] == f"token {TOKEN}"
    assert create.headers["user-agent"].startswith("backlog-operator/")


def test_open_pull_request_reuses_the_open_one_on_duplicate(
    gh: GitHubStandIn, forge: GitHubForge
) -> None:
    earlier = gh.add_pull(f"{PREFIX}3f9c2a", "main", title="From an earlier attempt")

    ref, created = _open(forge)

    assert created is False
    assert ref.number == earlier.number
    assert [p.number for p in gh.open_pulls()] == [earlier.number]
    assert gh.requests_to("POST", "/pulls")  # GitHub was asked, and said 422
    # Labels are added even when reusing: an earlier attempt may have died before labelling.
    assert earlier.labels == ["backlog", "automated"]
    assert earlier.title == "From an earlier attempt"


def test_a_duplicate_that_is_no_longer_open_is_a_retryable_conflict(
    gh: GitHubStandIn, forge: GitHubForge
) -> None:
    gh.fail_next(
        422,
        method="POST",
        body={
            "message": "Validation Failed",
            "errors": [
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"A pull request already exists for octo-org:{PREFIX}3f9c2a.",
                }
            ],
            "documentation_url": DOCS,
        },
    )

    error = _raises(_open, forge)

    assert (error.reason, error.retryable) == ("Conflict", True)


def test_other_422_is_rejected_with_githubs_words(gh: GitHubStandIn, forge: GitHubForge) -> None:
    gh.add_branch("some-other-branch")  # from now on unknown branches are refused

    error = _raises(_open, forge)

    assert (error.reason, error.retryable, error.status) == ("Rejected", False, 422)
    assert "Validation Failed" in str(error)
    assert "head invalid" in str(error)
    assert not gh.pulls


def test_a_post_that_failed_with_5xx_is_not_repeated(gh: GitHubStandIn, forge: GitHubForge) -> None:
    gh.fail_next(500, method="POST", path_contains="/pulls")

    error = _raises(_open, forge)

    assert (error.reason, error.retryable) == ("ForgeUnavailable", True)
    assert len(gh.requests_to("POST", "/pulls")) == 1
    assert not gh.pulls


# -- finding and listing ------------------------------------------------------------------------


def test_find_walks_every_page_and_picks_the_newest(gh: GitHubStandIn, forge: GitHubForge) -> None:
    older = gh.add_pull(f"{PREFIX}aaaaaa")
    newer = gh.add_pull(f"{PREFIX}bbbbbb")
    for i in range(248):
        gh.add_pull(f"backlog/other-task-{i}-cccccc")

    found = forge.find_open_pull_request(PREFIX, "main")

    assert found is not None
    assert found.number == newer.number != older.number
    assert found.head_branch == f"{PREFIX}bbbbbb"
    pages = [r.query.get("page", "1") for r in gh.requests_to("GET", "/pulls")]
    assert pages == ["1", "2", "3"]
    assert gh.requests_to("GET", "/pulls")[0].query["per_page"] == "100"


def test_find_ignores_closed_forks_other_prefixes_and_other_bases(
    gh: GitHubStandIn, forge: GitHubForge
) -> None:
    gh.add_pull(f"{PREFIX}closed", state="closed")
    gh.add_pull(f"{PREFIX}merged", merged=True)
    gh.add_pull(f"{PREFIX}fromfork", fork="someone/octo-repo")
    gh.add_pull(f"{PREFIX}deletedfork", fork_deleted=True)
    gh.add_pull("backlog/docs-guidebook-aaaaaa")  # a different task whose id extends ours
    gh.add_pull(f"{PREFIX}release", base="release-1.0")

    assert forge.find_open_pull_request(PREFIX, "main") is None

    ours = gh.add_pull(f"{PREFIX}ours")
    found = forge.find_open_pull_request(PREFIX, "main")
    assert found is not None
    assert found.number == ours.number


def test_listing_walks_every_page_into_any_base(gh: GitHubStandIn, forge: GitHubForge) -> None:
    ours = [
        gh.add_pull(f"backlog/task-{i}-aaaaaa", base="main" if i % 2 else "develop")
        for i in range(130)
    ]
    for i in range(5):
        gh.add_pull(f"backlog/done-{i}-aaaaaa", state="closed")
    gh.add_pull("backlog/forked-aaaaaa", fork="someone/octo-repo")
    gh.add_pull("feature/not-ours")

    listed = forge.open_pull_requests("backlog/")

    assert sorted(ref.number for ref, _ in listed) == sorted(pr.number for pr in ours)
    assert {ref.base_branch for ref, _ in listed} == {"main", "develop"}
    assert all(isinstance(opened, datetime) and opened.tzinfo for _, opened in listed)
    assert len(gh.requests_to("GET", "/pulls")) == 2


def test_an_empty_prefix_is_refused(forge: GitHubForge) -> None:
    with pytest.raises(ValueError, match="head_prefix"):
        forge.open_pull_requests("")


# -- errors -------------------------------------------------------------------------------------


# -- following a pull request after it opened ----------------------------------------------------


def test_a_pull_request_is_followed_with_conditional_requests(
    gh: GitHubStandIn, forge: GitHubForge
) -> None:
    pr = gh.add_pull(f"{PREFIX}3f9c2a")

    # GitHub computes mergeability lazily: unknown on the first answer, known on the next.
    computing = forge.pull_request_state(pr.number)
    assert computing.state is not None
    assert (computing.state.mergeable, computing.state.mergeable_state) == (None, "unknown")
    first = forge.pull_request_state(pr.number, computing.etag)
    assert first.state is not None and first.etag and first.etag != computing.etag
    assert (first.state.mergeable, first.state.mergeable_state) == (True, "clean")
    assert (first.state.number, first.state.state, first.state.merge_commit) == (1, "open", None)
    assert first.state.url.endswith("/octo-org/octo-repo/pull/1")
    assert first.state.head_sha == pr.head_sha and first.state.base_sha
    unchanged = forge.pull_request_state(pr.number, first.etag)
    assert (unchanged.state, unchanged.etag) == (None, first.etag)
    assert gh.not_modified == 1
    [_, _, third] = gh.requests_to("GET", "/pulls/1")
    assert third.headers["if-none-match"] == first.etag

    gh.merge(pr.number, by="maintainer")
    merged = forge.pull_request_state(pr.number, first.etag)
    assert merged.state is not None and merged.etag not in (None, first.etag)
    assert (merged.state.state, merged.state.merged_by, merged.state.closed_by) == (
        "merged",
        "maintainer",
        None,
    )
    assert merged.state.merge_commit and len(merged.state.merge_commit) == 40
    assert merged.state.merged_at is not None and merged.state.merged_at.tzinfo is not None
    assert gh.requests_to("GET", "/issues/") == []  # who merged is on the pull request


def test_closed_without_merging_says_who_closed_it(gh: GitHubStandIn, forge: GitHubForge) -> None:
    pr = gh.add_pull(f"{PREFIX}3f9c2a")
    gh.close(pr.number, by="reviewer")

    closed = forge.pull_request_state(pr.number).state

    assert closed == PullRequestState(
        number=1,
        url=closed.url if closed else "",
        state="closed",
        closed_by="reviewer",
        closed_at=closed.closed_at if closed else None,
        mergeable_state="unknown",
        head_sha=closed.head_sha if closed else None,
        base_sha=closed.base_sha if closed else None,
    )
    assert closed is not None and closed.closed_at is not None
    assert len(gh.requests_to("GET", "/issues/1")) == 1


def test_who_closed_it_unknown_when_the_issue_cannot_be_read(
    gh: GitHubStandIn, forge: GitHubForge
) -> None:
    pr = gh.add_pull(f"{PREFIX}3f9c2a")
    gh.close(pr.number)
    gh.fail_next(502, path_contains="/issues/")

    closed = forge.pull_request_state(pr.number).state

    assert closed is not None and (closed.state, closed.closed_by) == ("closed", None)


def test_following_a_pull_request_maps_errors(gh: GitHubStandIn, forge: GitHubForge) -> None:
    gh.add_pull(f"{PREFIX}3f9c2a")
    assert _raises(forge.pull_request_state, 7).reason == "NotFound"
    gh.rate_limit_next(reset_in=90)
    limited = _raises(forge.pull_request_state, 1)
    assert (limited.reason, limited.retryable) == ("RateLimited", True)
    gh.fail_next(200, body="<html>maintenance</html>", path_contains="/pulls/1")
    assert _raises(forge.pull_request_state, 1).reason == "UnexpectedResponse"


def test_primary_rate_limit_is_reported_not_slept_on(gh: GitHubStandIn, forge: GitHubForge) -> None:
    gh.rate_limit_next(reset_in=600)

    started = time.monotonic()
    error = _raises(forge.find_open_pull_request, PREFIX, "main")
    elapsed = time.monotonic() - started

    assert (error.reason, error.retryable, error.status) == ("RateLimited", True, 403)
    assert error.retry_after_seconds is not None
    assert 590 <= error.retry_after_seconds <= 601
    assert len(gh.requests) == 1  # asked once: no retry, no waiting for the reset
    assert elapsed < 5


def test_secondary_rate_limit_429_uses_retry_after(gh: GitHubStandIn, forge: GitHubForge) -> None:
    gh.secondary_rate_limit_next(retry_after=42, status=429)

    started = time.monotonic()
    error = _raises(forge.open_pull_requests, PREFIX)

    assert (error.reason, error.retryable, error.retry_after_seconds) == ("RateLimited", True, 42)
    assert error.status == 429
    assert len(gh.requests) == 1  # urllib3 would otherwise honour Retry-After itself
    assert time.monotonic() - started < 5


def test_secondary_rate_limit_without_retry_after_waits_a_minute(
    gh: GitHubStandIn, forge: GitHubForge
) -> None:
    gh.secondary_rate_limit_next(retry_after=None, method="POST")

    error = _raises(_open, forge)

    assert (error.reason, error.retry_after_seconds) == ("RateLimited", 60)
    assert not gh.pulls


def test_rate_limit_reset_is_measured_on_githubs_clock() -> None:
    github_now = 1_700_000_000  # GitHub's clock, far from ours
    headers = {
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(github_now + 90),
        "date": formatdate(github_now, usegmt=True),
    }

    assert _rate_limit_wait(403, headers, "API rate limit exceeded for user ID 1.") == 90
    assert (
        _rate_limit_wait(
            403,
            {
                "retry-after": formatdate(github_now + 30, usegmt=True),
                "date": formatdate(github_now, usegmt=True),
            },
            "",
        )
        == 30
    )
    assert _rate_limit_wait(403, {"x-ratelimit-remaining": "17"}, "Forbidden") is None


@pytest.mark.parametrize(
    ("status", "headers", "body", "retry_after"),
    [
        (500, {}, None, None),
        (502, {}, "<html><body><h1>Unicorn!</h1></body></html>", None),
        (503, {"Retry-After": "30"}, None, 30),
    ],
)
def test_server_errors_are_retryable(
    gh: GitHubStandIn,
    forge: GitHubForge,
    status: int,
    headers: dict[str, str],
    body: str | None,
    retry_after: int | None,
) -> None:
    gh.fail_next(status, headers=headers, body=body)

    error = _raises(forge.find_open_pull_request, PREFIX, "main")

    assert (error.reason, error.retryable, error.status) == ("ForgeUnavailable", True, status)
    assert error.retry_after_seconds == retry_after
    assert len(gh.requests) == 1


def test_a_wrong_token_is_a_permanent_authentication_failure(gh: GitHubStandIn) -> None:
    forge = GitHubForge(REPO, "ghp_wrongToken", base_url=gh.base_url)

    error = _raises(forge.open_pull_requests, PREFIX)

    assert (error.reason, error.retryable, error.status) == ("AuthenticationFailed", False, 401)
    assert "Bad credentials" in str(error)


def test_forbidden_is_access_denied(gh: GitHubStandIn, forge: GitHubForge) -> None:
    gh.fail_next(403, method="POST")

    error = _raises(_open, forge)

    assert (error.reason, error.retryable, error.status) == ("AccessDenied", False, 403)
    assert "Resource not accessible by personal access token" in str(error)


def test_unknown_repository_is_not_found(gh: GitHubStandIn) -> None:
    forge = GitHubForge("octo-org/missing", TOKEN, base_url=gh.base_url)

    error = _raises(forge.find_open_pull_request, PREFIX, "main")

    assert (error.reason, error.retryable, error.status) == ("NotFound", False, 404)
    assert "octo-org/missing" in str(error)
    assert "lacks access" in str(error)


def test_connection_refused_is_unavailable() -> None:
    forge = GitHubForge(REPO, TOKEN, base_url=f"http://127.0.0.1:{free_port()}")

    error = _raises(forge.open_pull_requests, PREFIX)

    assert (error.reason, error.retryable, error.status) == ("ForgeUnavailable", True, None)
    assert "connection refused" in str(error)


def test_no_answer_within_the_timeout_is_unavailable(gh: GitHubStandIn) -> None:
    gh.stall_next(10)
    forge = GitHubForge(REPO, TOKEN, base_url=gh.base_url, timeout=1)

    started = time.monotonic()
    error = _raises(forge.open_pull_requests, PREFIX)

    assert (error.reason, error.retryable) == ("ForgeUnavailable", True)
    assert "no answer within 1 s" in str(error)
    assert len(gh.requests) == 1  # a read timeout is not retried: a POST may have landed
    assert time.monotonic() - started < 5


# -- GitHub Enterprise, anonymous access, arguments ---------------------------------------------


def test_enterprise_base_url_with_api_prefix() -> None:
    with GitHubStandIn(REPO, token=TOKEN, path_prefix="/api/v3") as ghe:
        for i in range(120):
            ghe.add_pull(f"backlog/other-{i}-aaaaaa")
        forge = GitHubForge(REPO, TOKEN, base_url=f"{ghe.base_url}/", seconds_between_writes=None)

        ref, created = _open(forge)
        found = forge.find_open_pull_request(PREFIX, "main")

        assert created
        assert found == ref
        assert all(r.path.startswith("/api/v3/") for r in ghe.requests)
        assert len(ghe.requests_to("GET", "/pulls")) == 2  # the Link to page 2 kept the prefix

        # Without the prefix nothing is there, as on a real Enterprise server.
        bare = GitHubForge(REPO, TOKEN, base_url=ghe.origin)
        assert _raises(bare.open_pull_requests, PREFIX).reason == "NotFound"


def test_anonymous_access_sends_no_authorization() -> None:
    with GitHubStandIn(REPO, token=None) as public:
        public.add_pull(f"{PREFIX}aaaaaa")
        forge = GitHubForge(REPO, None, base_url=public.base_url)

        assert len(forge.open_pull_requests(PREFIX)) == 1
        assert "authorization" not in public.requests[0].headers


@pytest.mark.parametrize("repository", ["octo-repo", "octo-org/octo-repo/extra", "", "a b/c"])
def test_repository_must_be_owner_slash_name(repository: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        GitHubForge(repository, TOKEN)


# -- the token stays secret ---------------------------------------------------------------------


def test_the_token_appears_in_no_error_log_or_repr(
    gh: GitHubStandIn, forge: GitHubForge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("github", "urllib3", "backlog_operator"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors: list[ForgeError] = []

    _open(forge)
    _open(forge)  # the duplicate path too
    gh.fail_next(403)
    gh.rate_limit_next()
    gh.secondary_rate_limit_next(status=429)
    gh.fail_next(500)
    gh.fail_next(422)
    for _ in range(5):
        errors.append(_raises(forge.find_open_pull_request, PREFIX, "main"))
    elsewhere = GitHubForge("octo-org/missing", TOKEN, base_url=gh.base_url)
    errors.append(_raises(elsewhere.open_pull_requests, PREFIX))
    errors.append(_raises(_open, elsewhere))
    nowhere = GitHubForge(REPO, TOKEN, base_url=f"http://127.0.0.1:{free_port()}")
    errors.append(_raises(_open, nowhere))

    # The token did travel, in the header only: this test would see it if it leaked.
    assert all(r.headers.get("authorization") == f"token {TOKEN}" for r in gh.requests)
    assert not any(TOKEN in r.path or TOKEN in str(r.query) for r in gh.requests)
    assert [e.reason for e in errors] == [
        "AccessDenied",
        "RateLimited",
        "RateLimited",
        "ForgeUnavailable",
        "Rejected",
        "NotFound",
        "NotFound",
        "ForgeUnavailable",
    ]
    for error in errors:
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        assert all(TOKEN not in str(arg) for arg in error.args)
    loggers = {record.name for record in caplog.records}
    assert {"github.Requester", "urllib3.connectionpool"} <= loggers  # debug logs were captured
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
    for text in (repr(forge), repr(nowhere), str(vars(forge))):
        assert TOKEN not in text


def test_a_token_echoed_by_the_server_is_masked_in_errors(
    gh: GitHubStandIn, forge: GitHubForge
) -> None:
    gh.fail_next(403, body={"message": f"token {TOKEN} may not do this"})
    gh.fail_next(
        422,
        body={
            "message": "Validation Failed",
            "errors": [{"code": "custom", "message": TOKEN}],
            "documentation_url": DOCS,
        },
    )

    errors = [_raises(forge.open_pull_requests, PREFIX) for _ in range(2)]

    assert [e.reason for e in errors] == ["AccessDenied", "Rejected"]
    for error in errors:
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        assert "***" in str(error)


# -- each answer, observed ----------------------------------------------------------------------


def test_every_answer_is_told_with_its_status_and_rate_limit_remaining(
    gh: GitHubStandIn, forge: GitHubForge
) -> None:
    answers: list[tuple[int | None, int | None]] = []
    forge.on_answer = lambda status, remaining: answers.append((status, remaining))
    for i in range(130):
        gh.add_pull(f"backlog/task-{i}-aaaaaa")
    gh.rate_remaining = 100

    forge.open_pull_requests("backlog/")  # two pages
    _open(forge)  # a create, then its labels
    gh.fail_next(503)
    _raises(forge.open_pull_requests, "backlog/")

    # One call per answer, each with the X-RateLimit-Remaining it carried (the stand-in counts
    # down one per request, as GitHub does).
    assert [status for status, _ in answers] == [200, 200, 201, 200, 503]
    assert [remaining for _, remaining in answers] == [99, 98, 97, 96, 95]


def test_a_call_that_got_no_answer_is_told_without_a_status() -> None:
    answers: list[tuple[int | None, int | None]] = []
    forge = GitHubForge(REPO, TOKEN, base_url=f"http://127.0.0.1:{free_port()}")
    forge.on_answer = lambda status, remaining: answers.append((status, remaining))

    _raises(forge.open_pull_requests, PREFIX)

    assert answers == [(None, None)]


def test_an_observer_that_fails_does_not_fail_the_call(
    gh: GitHubStandIn, forge: GitHubForge
) -> None:
    def broken(status: int | None, remaining: int | None) -> None:
        raise RuntimeError("the observer blew up")

    forge.on_answer = broken
    gh.add_pull(f"{PREFIX}aaaaaa")

    assert len(forge.open_pull_requests(PREFIX)) == 1
