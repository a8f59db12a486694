"""The GitHub stand-in itself, through plain HTTP: when an adapter test fails, these say whether
the adapter or the stand-in is wrong."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.github_standin import GitHubStandIn, parse_link_header

TOKEN = "stand-in-test-token"
REPO = "octo-org/octo-repo"


@pytest.fixture
def gh() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(REPO, token=TOKEN) as standin:
        yield standin


def call(
    gh: GitHubStandIn,
    method: str,
    path: str,
    body: Any = None,
    *,
    auth: str | None = f"token {TOKEN}",
    timeout: float = 5,
    extra_headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request; `path` may be absolute (a `Link` URL) or relative to the API root."""
    if path.startswith("http"):
        parts = urlsplit(path)
        path = f"{parts.path}?{parts.query}" if parts.query else parts.path
    else:
        path = f"{gh.path_prefix}{path}"
    connection = http.client.HTTPConnection("127.0.0.1", gh.port, timeout=timeout)
    headers = {"Authorization": auth} if auth else {}
    headers.update(extra_headers or {})
    payload = None if body is None else json.dumps(body).encode()
    if payload is not None:
        headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        answer_headers = {k.lower(): v for k, v in response.getheaders()}
        data = json.loads(raw) if "json" in answer_headers.get("content-type", "") else raw
        return response.status, answer_headers, data
    finally:
        connection.close()


def test_authentication_is_required_and_checked(gh: GitHubStandIn) -> None:
    assert call(gh, "GET", f"/repos/{REPO}", auth=None)[::2] == (
        401,
        {"message": "Requires authentication", "documentation_url": "https://docs.github.com/rest"},
    )
    status, _, body = call(gh, "GET", f"/repos/{REPO}", auth="token nope")
    assert (status, body["message"]) == (401, "Bad credentials")
    status, _, body = call(gh, "GET", f"/repos/{REPO}", auth=f"Bearer {TOKEN}")
    assert (status, body["full_name"], body["default_branch"]) == (200, REPO, "main")


def test_unknown_repositories_and_paths_are_404(gh: GitHubStandIn) -> None:
    assert call(gh, "GET", "/repos/octo-org/other")[0] == 404
    assert call(gh, "GET", f"/repos/{REPO}/branches")[0] == 404
    assert call(gh, "DELETE", f"/repos/{REPO}/pulls")[0] == 404


def test_every_answer_carries_rate_limit_headers(gh: GitHubStandIn) -> None:
    _, first, _ = call(gh, "GET", f"/repos/{REPO}")
    _, second, _ = call(gh, "GET", f"/repos/{REPO}")

    assert first["x-ratelimit-limit"] == "5000"
    assert int(second["x-ratelimit-remaining"]) == int(first["x-ratelimit-remaining"]) - 1
    assert int(first["x-ratelimit-reset"]) > time.time()


def test_listing_pages_like_github(gh: GitHubStandIn) -> None:
    for i in range(5):
        gh.add_pull(f"feature-{i}")

    status, headers, page1 = call(gh, "GET", f"/repos/{REPO}/pulls?per_page=2")
    links = parse_link_header(headers["link"])

    assert status == 200
    assert [pr["number"] for pr in page1] == [5, 4]  # newest first
    assert set(links) == {"next", "last"}
    assert f"/repositories/{page1[0]['base']['repo']['id']}/pulls?" in links["next"]
    _, headers, page2 = call(gh, "GET", links["next"])
    assert [pr["number"] for pr in page2] == [3, 2]
    assert set(parse_link_header(headers["link"])) == {"prev", "next", "last", "first"}
    _, headers, page3 = call(gh, "GET", links["last"])
    assert [pr["number"] for pr in page3] == [1]
    assert set(parse_link_header(headers["link"])) == {"prev", "first"}
    _, headers, everything = call(gh, "GET", f"/repos/{REPO}/pulls?per_page=100")
    assert len(everything) == 5
    assert "link" not in headers


def test_per_page_is_capped_at_100(gh: GitHubStandIn) -> None:
    for i in range(101):
        gh.add_pull(f"feature-{i}")

    _, headers, page = call(gh, "GET", f"/repos/{REPO}/pulls?per_page=500")

    assert len(page) == 100
    assert "page=2" in parse_link_header(headers["link"])["next"]


def test_listing_filters_like_github(gh: GitHubStandIn) -> None:
    gh.add_pull("feature-a")
    gh.add_pull("feature-a", base="release")
    gh.add_pull("feature-a", fork="someone/octo-repo")
    gh.add_pull("feature-b", state="closed")

    def numbers(query: str) -> list[int]:
        return sorted(pr["number"] for pr in call(gh, "GET", f"/repos/{REPO}/pulls?{query}")[2])

    assert numbers("") == [1, 2, 3]
    assert numbers("head=octo-org:feature-a") == [1, 2]
    assert numbers("head=someone:feature-a") == [3]
    assert numbers("head=feature-b") == [1, 2, 3]  # a bare branch name filters nothing
    assert numbers("base=release") == [2]
    assert numbers("state=closed") == [4]
    assert numbers("state=all") == [1, 2, 3, 4]
    assert call(gh, "GET", f"/repos/{REPO}/pulls?state=merged")[0] == 422


def test_pull_request_shape(gh: GitHubStandIn) -> None:
    gh.add_pull("feature-a", fork_deleted=True)

    status, _, pr = call(
        gh, "POST", f"/repos/{REPO}/pulls", {"head": "b", "base": "main", "title": "T"}
    )

    assert status == 201
    for name in ("url", "html_url", "issue_url", "number", "state", "title", "body", "draft"):
        assert name in pr
    assert pr["head"]["repo"]["full_name"] == REPO
    assert pr["head"]["label"] == "octo-org:b"
    assert pr["base"]["ref"] == "main"
    assert pr["merged"] is False
    assert call(gh, "GET", f"/repos/{REPO}/pulls/1")[2]["head"]["repo"] is None  # deleted fork


def test_creating_a_duplicate_is_422_with_githubs_body(gh: GitHubStandIn) -> None:
    request = {"head": "feature-a", "base": "main", "title": "T"}
    assert call(gh, "POST", f"/repos/{REPO}/pulls", request)[0] == 201

    status, _, body = call(gh, "POST", f"/repos/{REPO}/pulls", request)

    assert status == 422
    assert body["message"] == "Validation Failed"
    assert body["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": "A pull request already exists for octo-org:feature-a.",
        }
    ]
    other_base = {**request, "base": "release"}
    assert call(gh, "POST", f"/repos/{REPO}/pulls", other_base)[0] == 201
    gh.close(1)
    assert call(gh, "POST", f"/repos/{REPO}/pulls", request)[0] == 201  # only open ones count


def test_creating_checks_fields_and_registered_branches(gh: GitHubStandIn) -> None:
    status, _, body = call(gh, "POST", f"/repos/{REPO}/pulls", {"head": "x", "base": "main"})
    assert (status, body["errors"][0]["field"]) == (422, "title")

    gh.add_branch("feature-a", sha="a" * 40)
    status, _, body = call(
        gh, "POST", f"/repos/{REPO}/pulls", {"head": "nope", "base": "main", "title": "T"}
    )
    assert (status, body["errors"]) == (
        422,
        [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
    )
    status, _, pr = call(
        gh, "POST", f"/repos/{REPO}/pulls", {"head": "feature-a", "base": "main", "title": "T"}
    )
    assert (status, pr["head"]["sha"]) == (201, "a" * 40)


def test_merge_close_and_patch(gh: GitHubStandIn) -> None:
    first = gh.add_pull("feature-a")
    second = gh.add_pull("feature-b")

    gh.merge(first.number)
    status, _, body = call(gh, "PATCH", f"/repos/{REPO}/pulls/{second.number}", {"state": "closed"})

    assert call(gh, "GET", f"/repos/{REPO}/pulls/{first.number}")[2]["merged"] is True
    assert (status, body["state"], body["merged"]) == (200, "closed", False)
    assert second.state == "closed"
    assert call(gh, "GET", f"/repos/{REPO}/pulls")[2] == []
    assert call(gh, "GET", f"/repos/{REPO}/pulls/99")[0] == 404


def test_who_merged_is_on_the_pull_who_closed_on_its_issue(gh: GitHubStandIn) -> None:
    merged = gh.add_pull("feature-a")
    closed = gh.add_pull("feature-b")
    still_open = gh.add_pull("feature-c")

    gh.merge(merged.number, by="maintainer")
    gh.close(closed.number, by="reviewer")

    pull = call(gh, "GET", f"/repos/{REPO}/pulls/{merged.number}")[2]
    assert (pull["merged"], pull["merged_by"]["login"]) == (True, "maintainer")
    assert pull["merge_commit_sha"] and pull["merged_at"] and pull["closed_at"]
    pull = call(gh, "GET", f"/repos/{REPO}/pulls/{closed.number}")[2]
    assert (pull["state"], pull["merged"], pull["merged_by"], pull["merge_commit_sha"]) == (
        "closed",
        False,
        None,
        None,
    )
    assert "closed_by" not in pull  # GitHub has it on the issue only
    issue = call(gh, "GET", f"/repos/{REPO}/issues/{closed.number}")[2]
    assert (issue["state"], issue["closed_by"]["login"]) == ("closed", "reviewer")
    assert issue["pull_request"]["url"].endswith(f"/pulls/{closed.number}")
    issue = call(gh, "GET", f"/repos/{REPO}/issues/{still_open.number}")[2]
    assert (issue["state"], issue["closed_by"]) == ("open", None)
    assert call(gh, "GET", f"/repos/{REPO}/issues/99")[0] == 404


def test_conditional_requests_answer_304_free_of_rate_limit(gh: GitHubStandIn) -> None:
    pr = gh.add_pull("feature-a")
    path = f"/repos/{REPO}/pulls/{pr.number}"
    computing = call(gh, "GET", path)[2]  # the first answer: mergeability not computed yet
    assert (computing["mergeable"], computing["mergeable_state"]) == (None, "unknown")

    status, headers, computed = call(gh, "GET", path)
    assert (computed["mergeable"], computed["mergeable_state"]) == (True, "clean")
    etag, remaining = headers["etag"], int(headers["x-ratelimit-remaining"])
    assert status == 200 and etag.startswith('W/"')
    status, headers, body = call(gh, "GET", path, extra_headers={"If-None-Match": etag})
    assert (status, body, headers["etag"]) == (304, b"", etag)
    assert int(headers["x-ratelimit-remaining"]) == remaining  # a 304 is free
    assert gh.not_modified == 1

    gh.close(pr.number)  # the pull request changed: so does its ETag
    status, headers, body = call(gh, "GET", path, extra_headers={"If-None-Match": etag})
    assert (status, body["state"]) == (200, "closed")
    assert headers["etag"] != etag
    assert int(headers["x-ratelimit-remaining"]) == remaining - 1
    assert gh.not_modified == 1


def test_labels_and_comments(gh: GitHubStandIn) -> None:
    pr = gh.add_pull("feature-a", labels=["backlog"])

    status, _, labels = call(gh, "POST", f"/repos/{REPO}/issues/1/labels", ["automated", "backlog"])
    assert (status, [label["name"] for label in labels]) == (200, ["backlog", "automated"])
    call(gh, "POST", f"/repos/{REPO}/issues/1/labels", {"labels": [{"name": "x"}]})
    status, _, comment = call(gh, "POST", f"/repos/{REPO}/issues/1/comments", {"body": "hi"})

    assert pr.labels == ["backlog", "automated", "x"]
    assert (status, comment["body"], pr.comments) == (201, "hi", ["hi"])
    assert call(gh, "POST", f"/repos/{REPO}/issues/1/comments", {})[0] == 422
    assert call(gh, "POST", f"/repos/{REPO}/issues/7/comments", {"body": "x"})[0] == 404


def test_enterprise_prefix() -> None:
    with GitHubStandIn(REPO, token=TOKEN, path_prefix="/api/v3") as ghe:
        assert ghe.base_url.endswith("/api/v3")
        assert call(ghe, "GET", f"/repos/{REPO}")[0] == 200
        assert call(ghe, "GET", f"http://127.0.0.1:{ghe.port}/repos/{REPO}")[0] == 404


def test_injected_failures_match_count_and_run_in_order(gh: GitHubStandIn) -> None:
    gh.fail_next(502, method="POST", times=2, body="<html>Unicorn</html>")
    gh.fail_next(503, path_contains="/pulls", headers={"Retry-After": "7"})

    assert call(gh, "GET", f"/repos/{REPO}")[0] == 200  # matches neither
    status, headers, _ = call(gh, "GET", f"/repos/{REPO}/pulls")
    assert (status, headers["retry-after"]) == (503, "7")
    assert call(gh, "POST", f"/repos/{REPO}/issues/1/comments", {"body": "x"})[::2] == (
        502,
        b"<html>Unicorn</html>",
    )
    assert call(gh, "POST", f"/repos/{REPO}/pulls", {})[0] == 502
    assert call(gh, "GET", f"/repos/{REPO}/pulls")[0] == 200  # all used up
    assert len(gh.requests) == 5


def test_rate_limit_answers_look_like_githubs(gh: GitHubStandIn) -> None:
    reset = gh.rate_limit_next(reset_in=300)
    gh.secondary_rate_limit_next(retry_after=30, status=429)

    status, headers, body = call(gh, "GET", f"/repos/{REPO}")
    assert (status, headers["x-ratelimit-remaining"], headers["x-ratelimit-reset"]) == (
        403,
        "0",
        str(reset),
    )
    assert body["message"].startswith("API rate limit exceeded")
    status, headers, body = call(gh, "GET", f"/repos/{REPO}")
    assert (status, headers["retry-after"]) == (429, "30")
    assert body["message"].startswith("You have exceeded a secondary rate limit")


def test_requests_are_recorded(gh: GitHubStandIn) -> None:
    call(gh, "POST", f"/repos/{REPO}/pulls?x=1", {"head": "a", "base": "main", "title": "T"})

    (recorded,) = gh.requests_to("POST", "/pulls")
    assert recorded.path == f"/repos/{REPO}/pulls"
    assert recorded.query == {"x": "1"}
    assert recorded.headers["authorization"] == f"token {TOKEN}"
    assert recorded.body == {"head": "a", "base": "main", "title": "T"}


def test_stop_ends_a_stalled_answer_at_once() -> None:
    standin = GitHubStandIn(REPO, token=TOKEN).start()
    standin.stall_next(30)
    outcome: list[object] = []

    def ask() -> None:
        try:
            outcome.append(call(standin, "GET", f"/repos/{REPO}", timeout=30)[0])
        # The connection was dropped: also an end. Depending on when, before the headers
        # (an OSError) or after them, with the body cut short (an HTTPException).
        except (OSError, http.client.HTTPException) as error:
            outcome.append(error)

    client = threading.Thread(target=ask)
    client.start()
    while not standin.requests:
        time.sleep(0.01)

    started = time.monotonic()
    standin.stop()
    client.join(timeout=10)

    assert not client.is_alive()
    assert outcome
    assert time.monotonic() - started < 5
