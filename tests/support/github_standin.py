"""A GitHub REST API stand-in served over real HTTP on 127.0.0.1, for code built on PyGithub.

    with GitHubStandIn("octo-org/octo-repo", token="t0k3n") as gh:
        forge = GitHubForge("octo-org/octo-repo", "t0k3n", base_url=gh.base_url)
        ...
        assert gh.pulls[1].labels == ["backlog"]

Endpoints, relative to `path_prefix` ("" like api.github.com, "/api/v3" like GitHub Enterprise):

    GET   /repos/{owner}/{repo}
    GET   /repos/{owner}/{repo}/pulls               state, head (owner:branch), base, sort,
                                                    direction, per_page (max 100), page
    POST  /repos/{owner}/{repo}/pulls               title, head, base, body, draft
    GET   /repos/{owner}/{repo}/pulls/{number}
    PATCH /repos/{owner}/{repo}/pulls/{number}      title, body, state, base
    GET   /repos/{owner}/{repo}/issues/{number}     (the issue of a pull request: closed_by)
    POST  /repos/{owner}/{repo}/issues/{number}/labels     ["a"] or {"labels": ["a"]}
    POST  /repos/{owner}/{repo}/issues/{number}/comments   {"body": "..."}
    GET   /repos/{owner}/{repo}/installation        the GitHub App installation on it
    POST  /app/installations/{id}/access_tokens     an installation token (an hour)

and the same under `/repositories/{id}`, the form GitHub's own `Link` headers point to; and a
GitHub App's (`apps`: its JWT, installations, installation tokens held to their repository,
permissions and expiry on every call above): see `github_apps.py`.

Every answer is held to GitHub's own description of its REST API (npm `@octokit/openapi`, see
`tests/support/openapi.py`): the operation must be one GitHub has (and listed in `OPERATIONS`),
the status one it documents, the body of the shape it documents. What breaks it is kept in
`violations`, and `stop` (the end of the `with` block or fixture) fails the test with the list,
so a wrong shape fails the test that met it even when the code under test swallowed the answer
(a retry, an error it handles). Injected failures (`fail_next`) may carry any status or a body
that is not JSON, as GitHub's front end and proxies send; a JSON body they carry with a
status of known shape is checked.

Shapes carry every field GitHub's description requires, with realistic values (URLs, users,
repositories). A pull request has, on a single one (GET, POST, PATCH), also merged, merged_by,
mergeable, rebaseable, mergeable_state, comments, commits, additions, deletions and
changed_files; its issue tells `closed_by`.

Kept from GitHub:

- Authentication: `Authorization: token X` or `Bearer X` must carry the configured token; a
  missing header is 401 "Requires authentication", a wrong one 401 "Bad credentials".
- Listing: newest first by default, `per_page` capped at 100 (default 30), a `Link` header with
  `prev`/`next`/`last`/`first` when there is more than one page. `head` filters only in the
  `owner:branch` form; a bare branch name is ignored, as GitHub does.
- Creating: 422 "Validation Failed" with GitHub's error list for missing fields, for a
  duplicate (an open pull request from the same head into the same base: "A pull request
  already exists for owner:branch."), and, once branches are registered (`add_branch`), for a
  head or base branch that does not exist.
- Every answer carries `X-RateLimit-*` headers; a 404 for any other repository or path.
- Conditional requests: every 200 answer to a GET carries a weak `ETag` (a digest of the body);
  a GET whose `If-None-Match` names the current one is answered `304 Not Modified` with no body,
  and does not count against the rate limit (`X-RateLimit-Remaining` stays), as GitHub does for
  an authenticated request. `not_modified` counts the 304s.
- `merge(number, by=...)` and `close(number, by=...)` change a pull request as a person would;
  GitHub tells who merged on the pull request (`merged_by`), and who closed one without merging
  only on its issue (`closed_by`). `reopen(number)` opens a closed one again.
- Mergeability is computed lazily, as GitHub does: a single pull request's first answer after
  it, or its base, changed has `mergeable: null` and `mergeable_state: "unknown"`, and the
  computation starts; later answers have `mergeable` true and `clean`, or false and `dirty`
  (a conflict). Closed and merged ones say null and `unknown`.
- With `git_dir` (a bare repository, the remote the worker pushes to), the pull requests are
  its branches for real: `head.sha` and `base.sha` are the branches' tips, mergeability is
  `git merge-tree` of the two, and `merge` makes a real merge commit on the base branch (the
  `merge_commit_sha`), refusing a pull request that conflicts (405, as GitHub's merge button
  is disabled). Without it, heads are made-up digests and every pull request merges.

Not emulated: issues that are not pull requests, reviews, merging through the API, sort by
popularity or long-running (treated as created), `If-Modified-Since`, GraphQL.

Failures are injected with `fail_next` (any status, headers and body), `rate_limit_next`
(primary limit: 403, `X-RateLimit-Remaining: 0`, `X-RateLimit-Reset`),
`secondary_rate_limit_next` (403 or 429 with `Retry-After`) and `stall_next` (answer late).

Why the standard library's `ThreadingHTTPServer` and not kmock: the stand-in is stateful (pull
requests, labels, comments, a queue of injected failures), and that logic is the same few
hundred lines whichever server carries it. kmock's strengths, its request-matching DSL and its
Kubernetes emulator, would go unused, while its aiohttp server needs an event loop running in a
thread of its own with state shared across threads. `ThreadingHTTPServer` answers from plain
threads with exact control over status line, headers and raw body, cannot block (or be blocked
by) an event loop that kopf or pytest-asyncio runs, and adds no dependency.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.support.github_apps import AppAuthority
from tests.support.openapi import Description, github_description

__all__ = [
    "DEFAULT_TOKEN",
    "OPERATIONS",
    "GitHubStandIn",
    "RecordedRequest",
    "StandInPull",
    "free_port",
    "parse_link_header",
]

DOCS = "https://docs.github.com/rest"
# The token a stand-in accepts unless told otherwise.
DEFAULT_TOKEN = "stand-in-token"
_REPO_ID = 1296269
_RATE_LIMIT = 5000
_ROUTE = re.compile(
    r"^/(?:repos/(?P<owner>[^/]+)/(?P<name>[^/]+)|repositories/(?P<id>\d+))(?P<rest>/.*)?$"
)
_PULL = re.compile(r"^/pulls/(?P<number>\d+)$")
_ISSUE_PART = re.compile(r"^/issues/(?P<number>\d+)/(?P<part>labels|comments)$")
_ISSUE = re.compile(r"^/issues/(?P<number>\d+)$")
_NOT_JSON = object()
# The operations the stand-in serves, as GitHub's description names them; an answer to any
# other (but a 401 or 404) is a violation, and a test checks each is in the description.
OPERATIONS = frozenset(
    {
        ("GET", "/repos/{owner}/{repo}"),
        ("GET", "/repos/{owner}/{repo}/pulls"),
        ("POST", "/repos/{owner}/{repo}/pulls"),
        ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}"),
        ("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}"),
        ("GET", "/repos/{owner}/{repo}/issues/{issue_number}"),
        ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
        ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
        ("GET", "/repos/{owner}/{repo}/installation"),
        ("GET", "/app/installations/{installation_id}"),
        ("POST", "/app/installations/{installation_id}/access_tokens"),
    }
)
# A repository's and a user's URLs, after its API URL, as GitHub spells them (templates too).
_REPO_URLS = {
    "forks_url": "forks",
    "keys_url": "keys{/key_id}",
    "collaborators_url": "collaborators{/collaborator}",
    "teams_url": "teams",
    "hooks_url": "hooks",
    "issue_events_url": "issues/events{/number}",
    "events_url": "events",
    "assignees_url": "assignees{/user}",
    "branches_url": "branches{/branch}",
    "tags_url": "tags",
    "blobs_url": "git/blobs{/sha}",
    "git_tags_url": "git/tags{/sha}",
    "git_refs_url": "git/refs{/sha}",
    "trees_url": "git/trees{/sha}",
    "statuses_url": "statuses/{sha}",
    "languages_url": "languages",
    "stargazers_url": "stargazers",
    "contributors_url": "contributors",
    "subscribers_url": "subscribers",
    "subscription_url": "subscription",
    "commits_url": "commits{/sha}",
    "git_commits_url": "git/commits{/sha}",
    "comments_url": "comments{/number}",
    "issue_comment_url": "issues/comments{/number}",
    "contents_url": "contents/{+path}",
    "compare_url": "compare/{base}...{head}",
    "merges_url": "merges",
    "archive_url": "{archive_format}{/ref}",
    "downloads_url": "downloads",
    "issues_url": "issues{/number}",
    "pulls_url": "pulls{/number}",
    "milestones_url": "milestones{/number}",
    "notifications_url": "notifications{?since,all,participating}",
    "labels_url": "labels{/name}",
    "releases_url": "releases{/id}",
    "deployments_url": "deployments",
}
_USER_URLS = {
    "followers_url": "followers",
    "following_url": "following{/other_user}",
    "gists_url": "gists{/gist_id}",
    "starred_url": "starred{/owner}{/repo}",
    "subscriptions_url": "subscriptions",
    "organizations_url": "orgs",
    "repos_url": "repos",
    "events_url": "events{/privacy}",
    "received_events_url": "received_events",
}
_REPO_FLAGS = {
    "archived": False,
    "disabled": False,
    "is_template": False,
    "has_issues": True,
    "has_projects": True,
    "has_wiki": False,
    "has_pages": False,
    "has_downloads": True,
}
_REPO_COUNTS = {
    "forks": 0,
    "forks_count": 0,
    "open_issues": 0,
    "open_issues_count": 0,
    "stargazers_count": 0,
    "watchers": 0,
    "watchers_count": 0,
}
_REPO_CREATED = "2024-01-15T09:30:00Z"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it."""

    method: str
    path: str  # as sent, with the prefix, without the query
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None


@dataclass
class StandInPull:
    """A pull request the stand-in holds. Tests may read and change it directly."""

    number: int
    title: str
    head: str
    base: str
    head_sha: str
    head_repo: str | None  # full name; None for a fork that was deleted
    body: str | None = None
    state: str = "open"
    draft: bool = False
    merged: bool = False
    labels: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    user: str = "backlog-bot"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    closed_at: datetime | None = None
    merged_at: datetime | None = None
    merged_by: str | None = None
    closed_by: str | None = None
    merge_commit: str | None = None
    # (head, base) the mergeability was computed for, and what it came to.
    computed_for: tuple[str, str] | None = None
    mergeable: bool | None = None


@dataclass
class _Failure:
    status: int | None  # None: answer normally (after `delay`)
    headers: dict[str, str]
    body: Any
    times: int
    method: str | None
    path_contains: str | None
    delay: float

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path_contains is None or self.path_contains in path
        )


@dataclass
class _Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class GitHubStandIn:
    """The stand-in: one repository, its pull requests, and a record of every request."""

    def __init__(
        self,
        repository: str = "octo-org/octo-repo",
        token: str | None = DEFAULT_TOKEN,
        *,
        path_prefix: str = "",
        default_branch: str = "main",
        user: str = "backlog-bot",
        git_dir: Path | None = None,
    ) -> None:
        self.repository = repository
        self.git_dir = git_dir
        self.owner, self.name = repository.split("/", 1)
        self.token = token
        self.path_prefix = path_prefix.rstrip("/")
        self.default_branch = default_branch
        self.user = user
        self.pulls: dict[int, StandInPull] = {}
        self.requests: list[RecordedRequest] = []
        # None: any branch name is accepted; a dict (after `add_branch`): branch -> head sha.
        self.branches: dict[str, str] | None = None
        self.rate_remaining = _RATE_LIMIT
        self.rate_reset = int(time.time()) + 3600
        self.not_modified = 0  # 304 answers to conditional requests
        # GitHub's description every answer is held to (None: not installed, nothing checked),
        # and what answers broke it; `stop` fails on any.
        self.description: Description | None = github_description()
        self.violations: list[str] = []
        # GitHub Apps, their installations and installation tokens (tests/support/github_apps.py)
        self.apps = AppAuthority()
        self._failures: list[_Failure] = []
        self._next_number = 1
        self._next_comment_id = 1
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> GitHubStandIn:
        """Listen on an ephemeral port of 127.0.0.1 and serve from a background thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections (stalled answers end at once)."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.assert_described()

    def assert_described(self) -> None:
        """Fail (AssertionError) when any answer served so far is one GitHub would never send.

        Called by `stop`, so a test whose requests met such an answer fails even when the code
        under test swallowed it (a retry, an error it handles).
        """
        with self._lock:
            violations, self.violations = self.violations, []
        if violations:
            assert self.description is not None
            raise AssertionError(
                "The GitHub stand-in answered what GitHub's REST API description "
                f"({self.description.version}) does not allow; fix the stand-in:\n- "
                + "\n- ".join(violations)
            )

    def __enter__(self) -> GitHubStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start the stand-in first"
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root to hand to PyGithub (`base_url=`)."""
        return f"{self.origin}{self.path_prefix}"

    # -- seeding and inspection -----------------------------------------------------------------

    def add_branch(self, name: str, sha: str | None = None) -> str:
        """Register a branch; once any is registered, pull requests need existing branches."""
        with self._lock:
            if self.branches is None:
                self.branches = {self.default_branch: _sha(self.default_branch)}
            self.branches[name] = sha or _sha(name)
            return self.branches[name]

    def add_pull(
        self,
        head: str,
        base: str | None = None,
        *,
        title: str | None = None,
        body: str | None = None,
        state: str = "open",
        draft: bool = False,
        labels: Iterable[str] = (),
        fork: str | None = None,
        fork_deleted: bool = False,
        merged: bool = False,
    ) -> StandInPull:
        """Seed a pull request, e.g. one an earlier attempt opened.

        `fork` is the full name of the fork it comes from (default: this repository);
        `fork_deleted` makes `head.repo` null, as GitHub shows a deleted fork.
        """
        with self._lock:
            head_repo = None if fork_deleted else (fork or self.repository)
            pr = self._new_pull(
                head=head,
                base=base or self.default_branch,
                title=title or f"Changes from {head}",
                body=body,
                draft=draft,
                head_repo=head_repo,
            )
            pr.labels.extend(labels)
            if merged:
                self.merge(pr.number)
            elif state == "closed":
                self.close(pr.number)
            return pr

    def merge(self, number: int, *, by: str = "octocat") -> StandInPull:
        """Mark a pull request merged (and closed), as if the person `by` merged it; with
        `git_dir`, merge its branch into the base branch for real (a merge commit)."""
        with self._lock:
            pr = self.pulls[number]
            if self.git_dir is not None:
                pr.merge_commit = self._git_merge(pr)
            now = datetime.now(UTC)
            pr.state, pr.merged = "closed", True
            pr.merged_at = pr.closed_at = pr.updated_at = now
            pr.merged_by = pr.closed_by = by
            return pr

    def close(self, number: int, *, by: str = "octocat") -> StandInPull:
        """Close a pull request without merging it, as if the person `by` did."""
        with self._lock:
            pr = self.pulls[number]
            now = datetime.now(UTC)
            pr.state, pr.closed_at, pr.updated_at = "closed", now, now
            pr.closed_by = by
            return pr

    def reopen(self, number: int) -> StandInPull:
        """Open a pull request closed without merging again, as a person may."""
        with self._lock:
            pr = self.pulls[number]
            assert not pr.merged, "a merged pull request cannot be reopened"
            pr.state, pr.closed_at, pr.closed_by = "open", None, None
            pr.updated_at = datetime.now(UTC)
            return pr

    # -- git ------------------------------------------------------------------------------------

    def _run_git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            GIT_AUTHOR_NAME="octocat",
            GIT_AUTHOR_EMAIL="octocat@example.com",
            GIT_COMMITTER_NAME="GitHub",
            GIT_COMMITTER_EMAIL="noreply@example.com",
        )
        return subprocess.run(
            ["git", "--git-dir", str(self.git_dir), *args],
            env=env,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def _tip(self, branch: str) -> str | None:
        """A branch's tip in `git_dir`, or None (no repository, or no such branch)."""
        if self.git_dir is None:
            return None
        found = self._run_git("rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False)
        return found.stdout.strip() or None

    def _heads(self, pr: StandInPull) -> tuple[str, str]:
        return (self._tip(pr.head) or pr.head_sha, self._tip(pr.base) or _sha(pr.base))

    def _mergeability(self, pr: StandInPull) -> tuple[bool | None, str]:
        """GitHub's lazy answer: null and `unknown` while not computed for the current heads
        (computed now, for the next answer), then the result."""
        if pr.state != "open":
            return None, "unknown"
        heads = self._heads(pr)
        if pr.computed_for != heads:
            pr.computed_for = heads
            pr.mergeable = self._merges(*heads)
            return None, "unknown"
        return pr.mergeable, "clean" if pr.mergeable else "dirty"

    def _merges(self, head: str, base: str) -> bool:
        if self.git_dir is None:
            return True
        merged = self._run_git("merge-tree", "--write-tree", base, head, check=False)
        return merged.returncode == 0

    def _git_merge(self, pr: StandInPull) -> str:
        """Merge `pr`'s branch into its base in `git_dir`: the merge commit."""
        head, base = self._heads(pr)
        merged = self._run_git("merge-tree", "--write-tree", base, head, check=False)
        if merged.returncode != 0:
            raise ValueError(f"pull request #{pr.number} conflicts with {pr.base}: 405")
        tree = merged.stdout.split()[0]
        message = f"Merge pull request #{pr.number} from {self.owner}/{pr.head}"
        commit = self._run_git(
            "commit-tree", tree, "-p", base, "-p", head, "-m", message
        ).stdout.strip()
        self._run_git("update-ref", f"refs/heads/{pr.base}", commit, base)
        return commit

    def open_pulls(self) -> list[StandInPull]:
        """The open pull requests, oldest first."""
        with self._lock:
            return [pr for pr in self.pulls.values() if pr.state == "open"]

    def requests_to(
        self, method: str | None = None, path_contains: str | None = None
    ) -> list[RecordedRequest]:
        """The recorded requests with this method and/or a path containing this text."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path_contains is None or path_contains in r.path)
            ]

    # -- failure injection ----------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` matching requests with `status`.

        `body` may be JSON-able (sent as JSON), `str`/`bytes` (sent as is), or None for the body
        GitHub sends with that status. Failures are consumed in the order they were added.
        """
        with self._lock:
            self._failures.append(
                _Failure(
                    status=status,
                    headers=dict(headers or {}),
                    body=_default_error_body(status) if body is None else body,
                    times=times,
                    method=method,
                    path_contains=path_contains,
                    delay=delay,
                )
            )

    def clear_failures(self) -> None:
        """Drop the failures still queued: answer normally from now on."""
        with self._lock:
            self._failures.clear()

    def rate_limit_next(
        self,
        *,
        reset_in: int = 120,
        status: int = 403,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> int:
        """GitHub's primary rate limit: `X-RateLimit-Remaining: 0` and the reset time (epoch
        seconds, returned) `reset_in` seconds from now."""
        reset = int(time.time()) + reset_in
        self.fail_next(
            status,
            headers={
                "X-RateLimit-Limit": str(_RATE_LIMIT),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
                "X-RateLimit-Used": str(_RATE_LIMIT),
                "X-RateLimit-Resource": "core",
            },
            body={
                "message": "API rate limit exceeded for user ID 1. If you reach out to GitHub "
                "Support for help, please include the request ID 0000:0000:0000000:0000000:"
                "00000000.",
                "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api",
                "status": str(status),
            },
            times=times,
            method=method,
            path_contains=path_contains,
        )
        return reset

    def secondary_rate_limit_next(
        self,
        *,
        retry_after: int | None = 60,
        status: int = 403,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """GitHub's secondary rate limit: 403 (or 429) with `Retry-After` (None: without it)."""
        self.fail_next(
            status,
            headers={} if retry_after is None else {"Retry-After": str(retry_after)},
            body={
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                "before you try again. If you reach out to GitHub Support for help, please "
                "include the request ID 0000:0000:0000000:0000000:00000000.",
                "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api"
                "#about-secondary-rate-limits",
                "status": str(status),
            },
            times=times,
            method=method,
            path_contains=path_contains,
        )

    def stall_next(
        self,
        seconds: float,
        *,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next matching requests normally, but only after `seconds`."""
        with self._lock:
            self._failures.append(_Failure(None, {}, None, times, method, path_contains, seconds))

    # -- serving --------------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = _NOT_JSON
        method = handler.command
        headers = {k.lower(): v for k, v in handler.headers.items()}
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method, split.path, query, headers, None if body is _NOT_JSON else body
                )
            )
            failure = self._take_failure(method, split.path)
        if failure is not None:
            if failure.delay:
                self._stopping.wait(failure.delay)
            if failure.status is not None:
                injected = _Answer(failure.status, failure.body, failure.headers)
                self._check(method, split.path, injected, injected=True)
                self._send(handler, injected)
                return
        origin = f"http://{headers.get('host') or f'127.0.0.1:{self.port}'}"
        with self._lock:
            answer = self._answer(method, split.path, query, headers, body, origin)
            if method == "GET" and answer.status == 200:
                answer = self._conditional(answer, headers.get("if-none-match"))
        self._check(method, split.path, answer)
        self._send(handler, answer)

    def _check(self, method: str, path: str, answer: _Answer, *, injected: bool = False) -> None:
        """Hold an answer to GitHub's description, keeping what it breaks in `violations`.

        `/repositories/{id}/...`, the form GitHub's `Link` headers point to, serves what
        `/repos/{owner}/{repo}/...` does but is not in the description: checked as that.
        """
        if self.description is None or not path.startswith(self.path_prefix + "/"):
            return  # outside the API root: GitHub Enterprise's web server, not its API
        path = path[len(self.path_prefix) :]
        alias = _ROUTE.match(path)
        if alias is not None and alias.group("id") is not None:
            path = f"/repos/{self.repository}{alias.group('rest') or ''}"
        found = self.description.violations(
            method, path, answer.status, answer.body, injected=injected
        )
        template = self.description.template(path)
        served = not injected and answer.status not in (401, 404)
        if served and (method, template) not in OPERATIONS:
            found.append(f"{method} {template or path}: served, but not listed in OPERATIONS")
        if found:
            with self._lock:
                self.violations.extend(found)

    def _conditional(self, answer: _Answer, if_none_match: str | None) -> _Answer:
        """GitHub's conditional requests: a weak ETag on the answer; 304 when it matches."""
        digest = hashlib.sha256(json.dumps(answer.body, sort_keys=True).encode()).hexdigest()
        etag = f'W/"{digest}"'
        if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
            self.not_modified += 1
            return _Answer(304, None, {"ETag": etag, **answer.headers})
        answer.headers["ETag"] = etag
        return answer

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.matches(method, path):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _send(self, handler: _Handler, answer: _Answer) -> None:
        if answer.status == 304:
            payload, content_type = b"", ""
        elif isinstance(answer.body, bytes):
            payload, content_type = answer.body, "text/html; charset=utf-8"
        elif isinstance(answer.body, str):
            payload, content_type = answer.body.encode(), "text/html; charset=utf-8"
        else:
            payload, content_type = json.dumps(answer.body).encode(), "application/json"
            content_type += "; charset=utf-8"
        with self._lock:
            if answer.status != 304:  # a conditional request answered 304 is free
                self.rate_remaining = max(0, self.rate_remaining - 1)
            headers = {
                "Content-Type": content_type,
                "X-GitHub-Media-Type": "github.v3; format=json",
                "X-GitHub-Api-Version-Selected": "2022-11-28",
                "X-RateLimit-Limit": str(_RATE_LIMIT),
                "X-RateLimit-Remaining": str(self.rate_remaining),
                "X-RateLimit-Reset": str(self.rate_reset),
                "X-RateLimit-Used": str(_RATE_LIMIT - self.rate_remaining),
                "X-RateLimit-Resource": "core",
                "X-GitHub-Request-Id": f"STANDIN:{len(self.requests):08X}",
            }
        if not content_type:
            del headers["Content-Type"]
        # Injected headers replace the defaults whatever their spelling.
        lowered = {k.lower() for k in answer.headers}
        headers = {k: v for k, v in headers.items() if k.lower() not in lowered}
        headers.update(answer.headers)
        try:
            handler.send_response(answer.status)
            for name, value in headers.items():
                handler.send_header(name, value)
            if answer.status != 304:  # a 304 has no body, so no length either
                handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            # The client gave up (e.g. its timeout passed during a stall): nothing to answer.
            handler.close_connection = True

    # -- the API --------------------------------------------------------------------------------

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
        origin: str,
    ) -> _Answer:
        if self.path_prefix:
            if not path.startswith(self.path_prefix + "/"):
                return _not_found()
            path = path[len(self.path_prefix) :]
        authorization = headers.get("authorization", "")
        app_reply = self.apps.answer(
            method, path, authorization, body, f"{origin}{self.path_prefix}"
        )
        if app_reply is not None:
            return _Answer(*app_reply)
        denied = self._check_auth(headers)
        if denied is not None:
            return denied
        match = _ROUTE.match(path)
        if match is None or not self._is_our_repository(match):
            return _not_found()
        credential = headers.get("authorization", "").partition(" ")[2].strip()
        scoped = self.apps.authorize(credential, self.repository, _needs(method, match["rest"]))
        if scoped is not None:  # an installation token held to its repository and permissions
            return _Answer(*scoped)
        if body is _NOT_JSON:
            return _Answer(400, {"message": "Problems parsing JSON", "documentation_url": DOCS})
        api = f"{origin}{self.path_prefix}"
        rest = match.group("rest") or ""
        if rest in ("", "/") and method == "GET":
            return _Answer(200, self._repo_json(api, origin, self.repository, full=True))
        if rest == "/pulls" and method == "GET":
            return self._list_pulls(query, api, origin)
        if rest == "/pulls" and method == "POST":
            return self._create_pull(body, api, origin)
        pull = _PULL.match(rest)
        if pull is not None and method in ("GET", "PATCH"):
            pr = self.pulls.get(int(pull.group("number")))
            if pr is None:
                return _not_found()
            if method == "PATCH":
                return self._update_pull(pr, body, api, origin)
            return _Answer(200, self._pull_json(pr, api, origin, full=True))
        issue = _ISSUE.match(rest)
        if issue is not None and method == "GET":
            pr = self.pulls.get(int(issue.group("number")))
            if pr is None:
                return _not_found()
            return _Answer(200, self._issue_json(pr, api, origin))
        part = _ISSUE_PART.match(rest)
        if part is not None and method == "POST":
            pr = self.pulls.get(int(part.group("number")))
            if pr is None:
                return _not_found()
            if part.group("part") == "labels":
                return self._add_labels(pr, body, api)
            return self._add_comment(pr, body, api, origin)
        return _not_found()

    def _check_auth(self, headers: dict[str, str]) -> _Answer | None:
        if self.token is None:
            return None
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if not scheme:
            return _Answer(401, {"message": "Requires authentication", "documentation_url": DOCS})
        if scheme.lower() not in ("token", "bearer") or (
            credential.strip() != self.token and not self.apps.knows(credential.strip())
        ):
            return _Answer(
                401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}
            )
        return None

    def _is_our_repository(self, match: re.Match[str]) -> bool:
        if match.group("id") is not None:
            return int(match.group("id")) == _REPO_ID
        return f"{match.group('owner')}/{match.group('name')}".lower() == self.repository.lower()

    def _list_pulls(self, query: dict[str, str], api: str, origin: str) -> _Answer:
        state = query.get("state", "open")
        if state not in ("open", "closed", "all"):
            return _validation_failed(
                [{"resource": "PullRequest", "field": "state", "code": "invalid"}]
            )
        pulls = [pr for pr in self.pulls.values() if state in ("all", pr.state)]
        head = query.get("head")
        if head and ":" in head:
            pulls = [pr for pr in pulls if self._head_label(pr).lower() == head.lower()]
        if "base" in query:
            pulls = [pr for pr in pulls if pr.base == query["base"]]
        sort = query.get("sort", "created")
        default_direction = "desc" if sort == "created" else "asc"
        descending = query.get("direction", default_direction) == "desc"
        key = "updated_at" if sort == "updated" else "created_at"
        pulls.sort(key=lambda pr: (getattr(pr, key), pr.number), reverse=descending)

        per_page = min(100, max(1, _int(query.get("per_page"), 30)))
        page = max(1, _int(query.get("page"), 1))
        last = max(1, -(-len(pulls) // per_page))
        items = pulls[(page - 1) * per_page : page * per_page]
        answer = _Answer(200, [self._pull_json(pr, api, origin) for pr in items])
        if last > 1:
            answer.headers["Link"] = self._link(query, page, last, api)
        return answer

    def _link(self, query: dict[str, str], page: int, last: int, api: str) -> str:
        def url(number: int) -> str:
            params = {k: v for k, v in query.items() if k != "page"}
            params["page"] = str(number)
            return f"<{api}/repositories/{_REPO_ID}/pulls?{urlencode(params)}>"

        links = []
        if page > 1:
            links.append(f'{url(min(page - 1, last))}; rel="prev"')
        if page < last:
            links += [f'{url(page + 1)}; rel="next"', f'{url(last)}; rel="last"']
        if page > 1:
            links.append(f'{url(1)}; rel="first"')
        return ", ".join(links)

    def _create_pull(self, body: Any, api: str, origin: str) -> _Answer:
        if not isinstance(body, dict):
            return _validation_failed([{"resource": "PullRequest", "code": "invalid"}])
        missing = [name for name in ("head", "base", "title") if not body.get(name)]
        if missing:
            return _validation_failed(
                [{"resource": "PullRequest", "code": "missing_field", "field": n} for n in missing]
            )
        head_owner, _, head = str(body["head"]).rpartition(":")
        base = str(body["base"])
        same_repository = head_owner in ("", self.owner)
        head_repo = self.repository if same_repository else f"{head_owner}/{self.name}"
        invalid = []
        if self.branches is not None:
            if same_repository and head not in self.branches:
                invalid.append({"resource": "PullRequest", "field": "head", "code": "invalid"})
            if base not in self.branches:
                invalid.append({"resource": "PullRequest", "field": "base", "code": "invalid"})
        if invalid:
            return _validation_failed(invalid)
        for pr in self.pulls.values():
            if (
                pr.state == "open"
                and pr.head == head
                and pr.base == base
                and ((pr.head_repo or "").lower() == head_repo.lower())
            ):
                owner = head_repo.split("/", 1)[0]
                return _validation_failed(
                    [
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {owner}:{head}.",
                        }
                    ]
                )
        pr = self._new_pull(
            head=head,
            base=base,
            title=str(body["title"]),
            body=body.get("body"),
            draft=bool(body.get("draft", False)),
            head_repo=head_repo,
        )
        data = self._pull_json(pr, api, origin, full=True)
        return _Answer(201, data, {"Location": data["url"]})

    def _update_pull(self, pr: StandInPull, body: Any, api: str, origin: str) -> _Answer:
        if not isinstance(body, dict):
            return _validation_failed([{"resource": "PullRequest", "code": "invalid"}])
        if "state" in body:
            if body["state"] not in ("open", "closed"):
                return _validation_failed(
                    [{"resource": "PullRequest", "field": "state", "code": "invalid"}]
                )
            if body["state"] == "closed" and pr.state == "open":
                self.close(pr.number)
            elif body["state"] == "open" and pr.state == "closed" and not pr.merged:
                pr.state, pr.closed_at = "open", None
        for name in ("title", "body", "base"):
            if name in body:
                setattr(pr, name, body[name])
        pr.updated_at = datetime.now(UTC)
        return _Answer(200, self._pull_json(pr, api, origin, full=True))

    def _add_labels(self, pr: StandInPull, body: Any, api: str) -> _Answer:
        names = body.get("labels") if isinstance(body, dict) else body
        if not isinstance(names, list) or not names:
            return _validation_failed([{"resource": "Label", "field": "labels", "code": "invalid"}])
        for item in names:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or not name:
                return _validation_failed(
                    [{"resource": "Label", "field": "name", "code": "invalid"}]
                )
            if name not in pr.labels:
                pr.labels.append(name)
        pr.updated_at = datetime.now(UTC)
        return _Answer(200, [self._label_json(name, api) for name in pr.labels])

    def _add_comment(self, pr: StandInPull, body: Any, api: str, origin: str) -> _Answer:
        if not isinstance(body, dict) or not isinstance(body.get("body"), str) or not body["body"]:
            return _validation_failed(
                [{"resource": "IssueComment", "field": "body", "code": "missing_field"}]
            )
        pr.comments.append(body["body"])
        comment_id = self._next_comment_id
        self._next_comment_id += 1
        now = _iso(datetime.now(UTC))
        return _Answer(
            201,
            {
                "id": comment_id,
                "node_id": f"IC_{comment_id}",
                "url": f"{api}/repos/{self.repository}/issues/comments/{comment_id}",
                "html_url": f"{origin}/{self.repository}/pull/{pr.number}"
                f"#issuecomment-{comment_id}",
                "issue_url": f"{api}/repos/{self.repository}/issues/{pr.number}",
                "body": body["body"],
                "user": self._user_json(self.user, api, origin),
                "created_at": now,
                "updated_at": now,
                "author_association": "CONTRIBUTOR",
            },
        )

    # -- shapes ---------------------------------------------------------------------------------

    def _new_pull(
        self,
        *,
        head: str,
        base: str,
        title: str,
        body: str | None,
        draft: bool,
        head_repo: str | None,
    ) -> StandInPull:
        number = self._next_number
        self._next_number += 1
        sha = (self.branches or {}).get(head) or _sha(f"{head_repo}:{head}:{number}")
        pr = StandInPull(
            number=number,
            title=title,
            head=head,
            base=base,
            head_sha=sha,
            head_repo=head_repo,
            body=body,
            draft=draft,
            user=self.user,
        )
        self.pulls[number] = pr
        return pr

    def _head_label(self, pr: StandInPull) -> str:
        owner = (pr.head_repo or "ghost/x").split("/", 1)[0]
        return f"{owner}:{pr.head}"

    def _pull_json(
        self, pr: StandInPull, api: str, origin: str, *, full: bool = False
    ) -> dict[str, Any]:
        repo_api = f"{api}/repos/{self.repository}"
        head_sha, base_sha = self._heads(pr)
        data: dict[str, Any] = {
            "url": f"{repo_api}/pulls/{pr.number}",
            "id": 100000 + pr.number,
            "node_id": f"PR_{pr.number}",
            "html_url": f"{origin}/{self.repository}/pull/{pr.number}",
            "diff_url": f"{origin}/{self.repository}/pull/{pr.number}.diff",
            "patch_url": f"{origin}/{self.repository}/pull/{pr.number}.patch",
            "issue_url": f"{repo_api}/issues/{pr.number}",
            "commits_url": f"{repo_api}/pulls/{pr.number}/commits",
            "review_comments_url": f"{repo_api}/pulls/{pr.number}/comments",
            "review_comment_url": f"{repo_api}/pulls/comments{{/number}}",
            "comments_url": f"{repo_api}/issues/{pr.number}/comments",
            "statuses_url": f"{repo_api}/statuses/{pr.head_sha}",
            "number": pr.number,
            "state": pr.state,
            "locked": False,
            "title": pr.title,
            "body": pr.body,
            "user": self._user_json(pr.user, api, origin),
            "labels": [self._label_json(name, api) for name in pr.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": _iso(pr.created_at),
            "updated_at": _iso(pr.updated_at),
            "closed_at": _iso(pr.closed_at),
            "merged_at": _iso(pr.merged_at),
            "merge_commit_sha": (pr.merge_commit or _sha(f"merge:{pr.number}"))
            if pr.merged
            else None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": self._part_json(pr.head, head_sha, pr.head_repo, api, origin),
            "base": self._part_json(pr.base, base_sha, self.repository, api, origin),
            "_links": self._pull_links(pr, api, origin),
            "author_association": "CONTRIBUTOR",
            "auto_merge": None,
            "draft": pr.draft,
        }
        if full:
            data.update(self._pull_detail(pr, api, origin))
        return data

    def _pull_detail(self, pr: StandInPull, api: str, origin: str) -> dict[str, Any]:
        """What GitHub adds on a single pull request (GET, POST, PATCH), not in a listing."""
        mergeable, mergeable_state = self._mergeability(pr)
        return {
            "merged": pr.merged,
            "mergeable": mergeable,
            "rebaseable": mergeable,
            "mergeable_state": mergeable_state,
            "merged_by": self._user_json(pr.merged_by, api, origin) if pr.merged_by else None,
            "comments": len(pr.comments),
            "review_comments": 0,
            "maintainer_can_modify": False,
            "commits": 1,
            "additions": 1,
            "deletions": 0,
            "changed_files": 1,
        }

    def _pull_links(self, pr: StandInPull, api: str, origin: str) -> dict[str, Any]:
        repo_api = f"{api}/repos/{self.repository}"
        links = {
            "self": f"{repo_api}/pulls/{pr.number}",
            "html": f"{origin}/{self.repository}/pull/{pr.number}",
            "issue": f"{repo_api}/issues/{pr.number}",
            "comments": f"{repo_api}/issues/{pr.number}/comments",
            "review_comments": f"{repo_api}/pulls/{pr.number}/comments",
            "review_comment": f"{repo_api}/pulls/comments{{/number}}",
            "commits": f"{repo_api}/pulls/{pr.number}/commits",
            "statuses": f"{repo_api}/statuses/{pr.head_sha}",
        }
        return {name: {"href": href} for name, href in links.items()}

    def _issue_json(self, pr: StandInPull, api: str, origin: str) -> dict[str, Any]:
        """The issue of a pull request, as GitHub's issues endpoint shows it."""
        repo_api = f"{api}/repos/{self.repository}"
        closed_by = pr.closed_by if pr.state == "closed" else None
        issue_api = f"{repo_api}/issues/{pr.number}"
        html = f"{origin}/{self.repository}/pull/{pr.number}"
        return {
            "url": issue_api,
            "repository_url": repo_api,
            "labels_url": f"{issue_api}/labels{{/name}}",
            "comments_url": f"{issue_api}/comments",
            "events_url": f"{issue_api}/events",
            "html_url": html,
            "id": 200000 + pr.number,
            "node_id": f"I_{pr.number}",
            "number": pr.number,
            "state": pr.state,
            "state_reason": None if pr.state == "open" else "completed" if pr.merged else None,
            "title": pr.title,
            "body": pr.body,
            "user": self._user_json(pr.user, api, origin),
            "labels": [self._label_json(name, api) for name in pr.labels],
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "active_lock_reason": None,
            "comments": len(pr.comments),
            "created_at": _iso(pr.created_at),
            "updated_at": _iso(pr.updated_at),
            "closed_at": _iso(pr.closed_at),
            "closed_by": self._user_json(closed_by, api, origin) if closed_by else None,
            "author_association": "CONTRIBUTOR",
            "draft": pr.draft,
            "pull_request": {
                "url": f"{repo_api}/pulls/{pr.number}",
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": _iso(pr.merged_at),
            },
            "timeline_url": f"{issue_api}/timeline",
        }

    def _part_json(
        self, ref: str, sha: str, repo: str | None, api: str, origin: str
    ) -> dict[str, Any]:
        owner = (repo or "ghost/x").split("/", 1)[0]
        return {
            "label": f"{owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self._user_json(owner, api, origin),
            "repo": None if repo is None else self._repo_json(api, origin, repo),
        }

    def _repo_json(
        self, api: str, origin: str, full_name: str, *, full: bool = False
    ) -> dict[str, Any]:
        """A repository as a pull request's head and base show it; `full`: as GET shows it."""
        owner, name = full_name.split("/", 1)
        ours = full_name.lower() == self.repository.lower()
        repo_id = _REPO_ID if ours else int(_sha(full_name)[:6], 16)
        data: dict[str, Any] = {
            "id": repo_id,
            "node_id": f"R_{repo_id}",
            "name": name,
            "full_name": full_name,
            "private": True,
            "owner": self._user_json(owner, api, origin, kind="Organization"),
            "html_url": f"{origin}/{full_name}",
            "description": None,
            "fork": not ours,
            "url": f"{api}/repos/{full_name}",
            **{key: f"{api}/repos/{full_name}/{tail}" for key, tail in _REPO_URLS.items()},
            "git_url": f"git://{urlsplit(origin).netloc}/{full_name}.git",
            "ssh_url": f"git@{urlsplit(origin).hostname}:{full_name}.git",
            "clone_url": f"{origin}/{full_name}.git",
            "svn_url": f"{origin}/{full_name}",
            "homepage": None,
            "language": None,
            "mirror_url": None,
            "license": None,
            "size": 108,
            "default_branch": self.default_branch,
            "visibility": "private",
            "created_at": _REPO_CREATED,
            "updated_at": _REPO_CREATED,
            "pushed_at": _REPO_CREATED,
            **_REPO_FLAGS,
            **_REPO_COUNTS,
        }
        if full:
            data.update(network_count=0, subscribers_count=1, has_discussions=False)
        return data

    def _user_json(
        self, login: str, api: str, origin: str, kind: str | None = None
    ) -> dict[str, Any]:
        user_id = int(_sha(login)[:6], 16)
        user_api = f"{api}/users/{login}"
        return {
            "login": login,
            "id": user_id,
            "node_id": f"U_{login}",
            "avatar_url": f"{origin}/avatars/u/{user_id}?v=4",
            "gravatar_id": "",
            "url": user_api,
            "html_url": f"{origin}/{login}",
            **{key: f"{user_api}/{tail}" for key, tail in _USER_URLS.items()},
            "type": kind or ("Bot" if login.endswith("[bot]") else "User"),
            "user_view_type": "public",
            "site_admin": False,
        }

    def _label_json(self, name: str, api: str) -> dict[str, Any]:
        label_id = int(_sha(name)[:6], 16)
        return {
            "id": label_id,
            "node_id": f"LA_{label_id}",
            "url": f"{api}/repos/{self.repository}/labels/{name}",
            "name": name,
            "color": "ededed",
            "default": False,
            "description": None,
        }


class _Server(ThreadingHTTPServer):
    """Keeps its client sockets, so stopping also ends idle keep-alive connections."""

    daemon_threads = True
    standin: GitHubStandIn

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, as GitHub serves: PyGithub reuses one connection.
    protocol_version = "HTTP/1.1"
    server_version = "GitHubStandIn/1"
    server: _Server

    def do_GET(self) -> None:
        self.server.standin._handle(self)

    def do_POST(self) -> None:
        self.server.standin._handle(self)

    def do_PATCH(self) -> None:
        self.server.standin._handle(self)

    def do_PUT(self) -> None:
        self.server.standin._handle(self)

    def do_DELETE(self) -> None:
        self.server.standin._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the stand-in records requests itself; stderr noise would hide test output


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _needs(method: str, rest: str | None) -> dict[str, str]:
    """The permissions (any one of them) an installation token needs for a call on the
    repository, as GitHub's documentation of each endpoint lists them."""
    rest = rest or ""
    write = method not in ("GET", "HEAD")
    if rest in ("", "/"):
        return {"metadata": "read"}
    if rest.startswith("/pulls"):
        return {"pull_requests": "write" if write else "read"}
    if rest.startswith("/issues"):
        level = "write" if write else "read"
        return {"issues": level, "pull_requests": level}
    return {"metadata": "read"}


def _not_found() -> _Answer:
    return _Answer(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})


def _validation_failed(errors: list[dict[str, Any]]) -> _Answer:
    return _Answer(
        422,
        {
            "message": "Validation Failed",
            "errors": errors,
            "documentation_url": f"{DOCS}/pulls/pulls#create-a-pull-request",
            "status": "422",
        },
    )


def _default_error_body(status: int) -> Any:
    messages = {
        401: "Bad credentials",
        403: "Resource not accessible by personal access token",
        404: "Not Found",
        422: "Validation Failed",
        500: "Server Error",
        502: "Server Error",
        503: "Service Unavailable",
    }
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {
        "message": messages.get(status, phrase),
        "documentation_url": DOCS,
        "status": str(status),
    }


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def parse_link_header(header: str) -> dict[str, str]:
    """`{rel: url}` of a `Link` header, for tests of pagination."""
    links = {}
    for part in header.split(", "):
        url, _, rel = part.partition("; ")
        links[rel.removeprefix('rel="').removesuffix('"')] = url.strip("<>")
    return links
