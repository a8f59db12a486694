"""Pull requests on GitHub (and GitHub Enterprise) through PyGithub.

Every method blocks on the network; callers run them in a thread. The adapter never sleeps for
a rate limit: PyGithub's own retry policy (`GithubRetry`) would wait until the limit resets,
possibly for most of an hour, so it is replaced by a bounded policy that retries only failed
connection attempts (a request that never reached GitHub is safe to repeat, even a POST), never
a read timeout and never an HTTP status. PyGithub's pause between reads is switched off; its
one-second pause between writes, which GitHub asks integrations for, is kept by default.

Errors reach callers as `ForgeError`, mapped from what GitHub answered:

| GitHub's answer                                    | reason                 | retryable |
|----------------------------------------------------|------------------------|-----------|
| connection refused or reset, DNS failure, timeout  | `ForgeUnavailable`     | yes       |
| 5xx, 408                                           | `ForgeUnavailable`     | yes       |
| 403/429 that is a rate limit (see below)           | `RateLimited`          | yes       |
| 401                                                | `AuthenticationFailed` | no        |
| any other 403                                      | `AccessDenied`         | no        |
| 404 (repository missing, or the token lacks access)| `NotFound`             | no        |
| 422 (except a duplicate pull request, reused)      | `Rejected`             | no        |
| any other 4xx                                      | `Rejected`             | no        |
| a body PyGithub cannot read                        | `UnexpectedResponse`   | yes       |

A 403 or 429 is a rate limit when it carries `Retry-After`, or `X-RateLimit-Remaining: 0`, or a
rate-limit message (primary or secondary). `retry_after_seconds` follows GitHub's guidance: the
`Retry-After` value; else the time until `X-RateLimit-Reset` (measured against the response's
`Date` header where there is one, so a skewed local clock does not matter); else one minute.
5xx answers carry `retry_after_seconds` only when they send `Retry-After`.

Every answer GitHub sends (and every call that got none) can be observed through `on_answer`:
its HTTP status (None: no answer) and the `X-RateLimit-Remaining` it carried. The operator counts
them in its metrics; the worker leaves it unset.

Following a pull request after it opened (`pull_request_state`) is a conditional request: the
ETag of the last answer goes out as `If-None-Match`, and GitHub answers 304 Not Modified, which
does not count against the rate limit, while nothing changed. PyGithub has no call that hands
back a 304 with the ETag kept outside its objects, so the request goes through its requester
(same connection pool, token, timeouts and retry policy) and the answer is read here.

The token travels only in the `Authorization` header (`Auth.Token`): never in a URL, and every
message passes through the redactor before it reaches an exception or a log line.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from github import Auth, Github
from github.GithubException import BadAttributeException, GithubException
from github.PullRequest import PullRequest
from github.Requester import Requester
from urllib3.util.retry import Retry

from backlog_operator import __version__
from backlog_operator.errors import ClassifiedError
from backlog_operator.redact import Redactor

__all__ = [
    "DEFAULT_API_URL",
    "AnswerHook",
    "ForgeError",
    "GitHubForge",
    "PullRequestPoll",
    "PullRequestRef",
    "PullRequestState",
]

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
# GitHub's largest page: fewest round trips when walking every open pull request.
_PAGE_SIZE = 100
# GitHub's advice for a secondary rate limit that names no wait: at least one minute.
_DEFAULT_RATE_LIMIT_WAIT = 60
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_DUPLICATE = "a pull request already exists"

# Called with each answer's HTTP status (None: the call got no answer) and the rate limit
# remaining that answer reported (None: it reported none).
AnswerHook = Callable[[int | None, int | None], None]


@dataclass(frozen=True)
class PullRequestRef:
    """What the operator keeps of a pull request."""

    number: int
    url: str
    head_branch: str
    head_sha: str
    base_branch: str


@dataclass(frozen=True)
class PullRequestState:
    """Where a pull request stands: `state` is `open`, `merged` or `closed` (without merging).

    `merge_commit` and `merged_by` (a login) are set once merged; `closed_by` once closed
    without merging, when GitHub says who (it does on the issue of the pull request, not on the
    pull request itself). A deleted account is `ghost` on GitHub's side, or absent.
    """

    number: int
    url: str
    state: str
    merge_commit: str | None = None
    merged_by: str | None = None
    merged_at: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    #: GitHub computes these lazily, in the background: null (and `unknown`) on the first read
    #: after the pull request or its base changed, the answer on a later one. `mergeable_state`
    #: `dirty` is a merge conflict with the base.
    mergeable: bool | None = None
    mergeable_state: str | None = None
    head_sha: str | None = None
    base_sha: str | None = None


@dataclass(frozen=True)
class PullRequestPoll:
    """One conditional read of a pull request: `state` is None when GitHub answered 304 (nothing
    changed since the ETag sent); `etag` is the one to send next time."""

    state: PullRequestState | None
    etag: str | None


class ForgeError(ClassifiedError):
    """A forge call that failed, classified so the caller can decide whether to retry.

    `reason` is a CamelCase word (`ForgeUnavailable`, `RateLimited`, `AuthenticationFailed`,
    `AccessDenied`, `NotFound`, `Rejected`, `Conflict`, `UnexpectedResponse`); `str(error)` is a
    sentence for people that never contains the token.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retryable: bool,
        retry_after_seconds: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(
            reason, message, retryable=retryable, retry_after_seconds=retry_after_seconds
        )
        self.status = status

    def __repr__(self) -> str:
        return (
            f"ForgeError(reason={self.reason!r}, status={self.status!r}, "
            f"retryable={self.retryable!r}, retry_after_seconds={self.retry_after_seconds!r}, "
            f"message={self.message!r})"
        )


class GitHubForge:
    """Finds and opens pull requests of one repository.

    `repository` is `owner/name`; `base_url` is the REST API root, e.g.
    `https://ghe.example.com/api/v3` for GitHub Enterprise. `token` may be None for anonymous
    access to a public repository (reads only, and a far smaller rate limit). `timeout` bounds
    each connect and each read, in whole seconds (PyGithub accepts integers only; a fraction is
    rounded up). `seconds_between_writes` is PyGithub's pause between two writes of this client;
    None or 0 switches it off.
    """

    def __init__(
        self,
        repository: str,
        token: str | None,
        *,
        base_url: str | None = None,
        timeout: float = 15.0,
        seconds_between_writes: float | None = 1.0,
    ) -> None:
        if not _REPOSITORY.match(repository):
            raise ValueError(f"repository must be 'owner/name', not {repository!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.repository = repository
        self.owner = repository.split("/", 1)[0]
        self.base_url = (base_url or DEFAULT_API_URL).rstrip("/")
        self.timeout = max(1, math.ceil(timeout))
        self._redact = Redactor([token] if token else [])
        self._client = Github(
            auth=Auth.Token(token) if token else None,
            base_url=self.base_url,
            timeout=self.timeout,
            user_agent=f"backlog-operator/{__version__}",
            per_page=_PAGE_SIZE,
            retry=_connection_retry(),
            seconds_between_requests=None,
            seconds_between_writes=seconds_between_writes or None,
            # Lazy objects are built from a URL without fetching it first: one request per
            # operation instead of a GET of the repository (or issue) before every call.
            lazy=True,
        )
        self._repo = self._client.get_repo(repository)
        self.on_answer: AnswerHook | None = None
        # PyGithub hands every answer (status, lower-cased headers, body) to its Requester's
        # DEBUG_ON_RESPONSE, a no-op unless its debug flag is set: this client's own requester
        # (shared by the repository and every object read through it) tells `on_answer` instead.
        self._client.requester.DEBUG_ON_RESPONSE = self._answered  # type: ignore[method-assign,assignment]

    def __repr__(self) -> str:
        return f"GitHubForge({self.repository!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the client's pooled connections."""
        self._client.close()

    def __enter__(self) -> GitHubForge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def find_open_pull_request(self, head_prefix: str, base: str) -> PullRequestRef | None:
        """The open pull request from a branch of this repository starting with `head_prefix`
        into `base`; the newest when there are several, None when there is none.

        GitHub's `head` filter matches a whole branch name only, so every open pull request into
        `base` is listed (all pages) and filtered here. Pull requests from forks never match,
        even when their branch name does.
        """
        _require_prefix(head_prefix)
        with self._translate("listing open pull requests"):
            pulls = self._repo.get_pulls(state="open", base=base, sort="created", direction="desc")
            matches = [pr for pr in pulls if self._is_ours(pr, head_prefix)]
            if not matches:
                return None
            # Numbers only grow, so the highest number is the newest pull request.
            return _ref(max(matches, key=lambda pr: pr.number))

    def open_pull_requests(self, head_prefix: str) -> list[tuple[PullRequestRef, datetime]]:
        """The open pull requests from this repository's branches starting with `head_prefix`
        (all pages, any base), each with when it was opened."""
        _require_prefix(head_prefix)
        with self._translate("listing open pull requests"):
            return [
                (_ref(pr), pr.created_at)
                for pr in self._repo.get_pulls(state="open")
                if self._is_ours(pr, head_prefix)
            ]

    def open_pull_request(
        self,
        *,
        head: str,
        base: str,
        title: str,
        body: str,
        draft: bool,
        labels: Sequence[str],
    ) -> tuple[PullRequestRef, bool]:
        """Open a pull request from branch `head` into `base` and label it.

        Returns `(pull_request, created)`. When GitHub answers that an open pull request from
        `head` into `base` already exists (an earlier attempt opened it), that one is returned
        with `created=False`, and the labels are added to it too: a crash between creating and
        labelling must not leave it unlabelled. Its title, body and draft state are left as
        they are.
        """
        with self._translate(f"opening a pull request from {head} into {base}"):
            try:
                pr = self._repo.create_pull(
                    base=base, head=head, title=title, body=body, draft=draft
                )
                created = True
            except GithubException as error:
                if not _is_duplicate(error):
                    raise
                existing = self._open_pull_from(head, base)
                if existing is None:
                    raise ForgeError(
                        "Conflict",
                        f"GitHub says a pull request from {head} into {base} already exists in "
                        f"{self.repository}, but no open one was found; it may have just been "
                        "closed.",
                        retryable=True,
                        status=error.status,
                    ) from None
                pr, created = existing, False
            if labels:
                pr.add_to_labels(*labels)
            ref = _ref(pr)
        log.info(
            "%s pull request #%d (%s) in %s",
            "Opened" if created else "Reusing open",
            ref.number,
            ref.url,
            self.repository,
        )
        return ref, created

    def add_labels(self, number: int, labels: Sequence[str]) -> None:
        """Put `labels` on pull request `number` (those it has already stay; none: no call).

        Called on every attempt that reuses a pull request, so a label lost to an error after
        the pull request was opened is put on by the next attempt.
        """
        if not labels:
            return
        with self._translate(f"labelling pull request #{number}"):
            self._repo.get_pull(number).add_to_labels(*labels)

    def _answered(
        self, status: int | None, headers: Mapping[str, Any], data: object = None
    ) -> None:
        """Tell `on_answer` of one answer (or of a call that got none: `status` None)."""
        if self.on_answer is None:
            return
        remaining = _int_or_none(headers.get("x-ratelimit-remaining"))
        try:
            self.on_answer(status, remaining)
        except Exception:  # an observer must never fail the call it observes
            log.debug("the forge answer hook failed", exc_info=True)

    def pull_request_state(self, number: int, etag: str | None = None) -> PullRequestPoll:
        """Pull request `number` as it stands, asked with `If-None-Match: etag` when there is
        one: `state` None when nothing changed (a 304, free of rate limit).

        Closed without merging, the issue of the pull request is read too (one more request,
        once: the caller stops asking after a merge or a close) for who closed it; should that
        read fail, `closed_by` is None rather than the close unseen.
        """
        action = f"reading pull request #{number}"
        with self._translate(action):
            headers = {"If-None-Match": etag} if etag else None
            status, answered, body = self._client.requester.requestJson(
                "GET", f"/repos/{self.repository}/pulls/{int(number)}", headers=headers
            )
            if status == 304:
                return PullRequestPoll(None, etag)
            if status >= 400:
                raise GithubException(status, _json_or_none(body), answered)
            found = _pull_state(_json_or_none(body))
            new_etag = {str(k).lower(): v for k, v in answered.items()}.get("etag")
        if found is None:
            raise ForgeError(
                "UnexpectedResponse",
                f"GitHub at {self.base_url} answered something unreadable while {action} "
                f"in {self.repository}.",
                retryable=True,
            )
        if found.state == "closed":
            found = replace(found, closed_by=self._closed_by(number))
        return PullRequestPoll(found, str(new_etag) if new_etag else None)

    def _closed_by(self, number: int) -> str | None:
        """Who closed issue (pull request) `number`, or None when GitHub cannot say."""
        try:
            with self._translate(f"reading issue #{number}"):
                _, data = self._client.requester.requestJsonAndCheck(
                    "GET", f"/repos/{self.repository}/issues/{int(number)}"
                )
        except ForgeError as error:
            log.info("who closed pull request #%d is unknown: %s", number, error)
            return None
        return _login(data.get("closed_by") if isinstance(data, Mapping) else None)

    def _open_pull_from(self, head: str, base: str) -> PullRequest | None:
        # GitHub's `head` filter wants `owner:branch`; the branch check below guards against a
        # server that ignores the filter.
        pulls = self._repo.get_pulls(state="open", head=f"{self.owner}:{head}", base=base)
        found = [pr for pr in pulls if pr.head.ref == head and self._from_this_repository(pr)]
        return max(found, key=lambda pr: pr.number) if found else None

    def _is_ours(self, pr: PullRequest, head_prefix: str) -> bool:
        return pr.head.ref.startswith(head_prefix) and self._from_this_repository(pr)

    def _from_this_repository(self, pr: PullRequest) -> bool:
        # A fork's branch may carry the same name; `repo` is null when the fork was deleted.
        repo = pr.head.repo
        return repo is not None and repo.full_name.lower() == self.repository.lower()

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        """Turn whatever PyGithub or the network raise into a ForgeError without the token."""
        try:
            yield
        except GithubException as error:
            raise self._from_status(error, action) from None
        except BadAttributeException:
            raise ForgeError(
                "UnexpectedResponse",
                f"GitHub at {self.base_url} answered something unreadable while {action} "
                f"in {self.repository}.",
                retryable=True,
            ) from None
        except OSError as error:
            self._answered(None, {})
            # requests' ConnectionError and Timeout are OSErrors. Their text repeats the URL
            # (no token in it, but no help either); the kind of failure is what people need.
            raise ForgeError(
                "ForgeUnavailable",
                self._redact(
                    f"Could not reach GitHub at {self.base_url} while {action} in "
                    f"{self.repository}: {_describe_network_error(error, self.timeout)}."
                ),
                retryable=True,
            ) from None

    def _from_status(self, error: GithubException, action: str) -> ForgeError:
        status = error.status
        headers = {str(k).lower(): str(v) for k, v in (error.headers or {}).items()}
        said = _github_message(error.data)
        where = f"while {action} in {self.repository}"
        answer = f"{status} {said}" if said else str(status)

        if status in (403, 429):
            wait = _rate_limit_wait(status, headers, said)
            if wait is not None:
                return self._error(
                    "RateLimited",
                    f"GitHub's rate limit was reached {where}; retry in {wait} s.",
                    retryable=True,
                    retry_after_seconds=wait,
                    status=status,
                )
        if status == 401:
            return self._error(
                "AuthenticationFailed",
                f"GitHub refused the token {where} ({answer}); check the token's secret.",
                retryable=False,
                status=status,
            )
        if status == 403:
            return self._error(
                "AccessDenied",
                f"The token is not allowed to do this {where} ({answer}); it needs write "
                "access to pull requests and contents.",
                retryable=False,
                status=status,
            )
        if status == 404:
            return self._error(
                "NotFound",
                f"GitHub answered 404 {where}: the repository {self.repository} does not exist "
                f"at {self.base_url}, or the token lacks access to it.",
                retryable=False,
                status=status,
            )
        if status >= 500 or status == 408:
            return self._error(
                "ForgeUnavailable",
                f"GitHub is unavailable {where} ({answer}).",
                retryable=True,
                retry_after_seconds=_retry_after(headers),
                status=status,
            )
        details = _github_error_details(error.data)
        return self._error(
            "Rejected",
            f"GitHub rejected the request {where} ({answer}{': ' + details if details else ''}).",
            retryable=False,
            status=status,
        )

    def _error(
        self,
        reason: str,
        message: str,
        *,
        retryable: bool,
        status: int,
        retry_after_seconds: int | None = None,
    ) -> ForgeError:
        return ForgeError(
            reason,
            self._redact(message),
            retryable=retryable,
            retry_after_seconds=retry_after_seconds,
            status=status,
        )


def _connection_retry() -> Retry:
    """Retry a failed connection twice (0 s, then 0.2 s apart), and nothing else.

    `respect_retry_after_header=False` matters: urllib3 would otherwise sleep for a 429's or
    503's `Retry-After` itself.
    """
    return Retry(
        total=2,
        connect=2,
        read=0,
        status=0,
        other=0,
        redirect=0,
        backoff_factor=0.1,
        respect_retry_after_header=False,
        raise_on_status=False,
    )


def _require_prefix(head_prefix: str) -> None:
    # An empty prefix would claim every open pull request of the repository as this task's.
    if not head_prefix:
        raise ValueError("head_prefix must not be empty")


def _ref(pr: PullRequest) -> PullRequestRef:
    return PullRequestRef(
        number=pr.number,
        url=pr.html_url,
        head_branch=pr.head.ref,
        head_sha=pr.head.sha,
        base_branch=pr.base.ref,
    )


def _json_or_none(body: str) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _pull_state(data: Any) -> PullRequestState | None:
    """A pull request's JSON as the state the operator follows; None when it is not one."""
    if not isinstance(data, Mapping):
        return None
    number, state = data.get("number"), data.get("state")
    if not isinstance(number, int) or state not in ("open", "closed"):
        return None
    merged = bool(data.get("merged")) or data.get("merged_at") is not None
    sha = data.get("merge_commit_sha")
    return PullRequestState(
        number=number,
        url=str(data.get("html_url") or ""),
        state="merged" if merged else str(state),
        # GitHub fills merge_commit_sha for an open pull request too (a test merge): only a
        # merged one's is the merge commit.
        merge_commit=str(sha) if merged and sha else None,
        merged_by=_login(data.get("merged_by")) if merged else None,
        merged_at=_time(data.get("merged_at")),
        closed_at=_time(data.get("closed_at")) if state == "closed" else None,
        mergeable=data.get("mergeable") if isinstance(data.get("mergeable"), bool) else None,
        mergeable_state=_text(data.get("mergeable_state")),
        head_sha=_text((data.get("head") or {}).get("sha")) if _is_map(data.get("head")) else None,
        base_sha=_text((data.get("base") or {}).get("sha")) if _is_map(data.get("base")) else None,
    )


def _is_map(value: Any) -> bool:
    return isinstance(value, Mapping)


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _login(user: Any) -> str | None:
    login = user.get("login") if isinstance(user, Mapping) else None
    return str(login) if login else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_duplicate(error: GithubException) -> bool:
    if error.status != 422:
        return False
    messages = [_github_message(error.data)]
    data = error.data if isinstance(error.data, Mapping) else {}
    errors = data.get("errors")
    if isinstance(errors, list):
        messages += [str(e.get("message", "")) for e in errors if isinstance(e, Mapping)]
    return any(m.lower().startswith(_DUPLICATE) for m in messages if m)


def _github_message(data: Any) -> str:
    if isinstance(data, Mapping):
        return str(data.get("message") or "")
    return ""


def _github_error_details(data: Any) -> str:
    """GitHub's `errors` list of a 422, as one line: `head invalid; A pull request ...`."""
    errors = data.get("errors") if isinstance(data, Mapping) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for item in errors:
        if isinstance(item, Mapping):
            text = item.get("message") or " ".join(
                str(item[k]) for k in ("field", "code") if item.get(k)
            )
            parts.append(str(text))
        elif item:
            parts.append(str(item))
    return "; ".join(p for p in parts if p)


def _rate_limit_wait(status: int, headers: Mapping[str, str], message: str) -> int | None:
    """Seconds to wait when a 403/429 is a rate limit, None when it is not one."""
    retry_after = _retry_after(headers)
    if retry_after is not None:
        return retry_after
    if headers.get("x-ratelimit-remaining") == "0":
        reset = _int_or_none(headers.get("x-ratelimit-reset"))
        if reset is None:
            return _DEFAULT_RATE_LIMIT_WAIT
        return max(1, math.ceil(reset - _server_now(headers)))
    if status == 429 or Requester.isRateLimitError(message):
        return _DEFAULT_RATE_LIMIT_WAIT
    return None


def _retry_after(headers: Mapping[str, str]) -> int | None:
    """`Retry-After` in seconds (GitHub sends seconds; an HTTP date is accepted too)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _int_or_none(value)
    if seconds is None:
        try:
            seconds = math.ceil(parsedate_to_datetime(value).timestamp() - _server_now(headers))
        except (TypeError, ValueError):
            return None
    return max(1, seconds)


def _server_now(headers: Mapping[str, str]) -> float:
    # GitHub's reset time is on GitHub's clock: measure against its `Date` when present.
    date = headers.get("date")
    if date:
        try:
            return parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _describe_network_error(error: OSError, timeout: int) -> str:
    names = {type(e).__name__ for e in _causes(error)}
    text = " ".join(str(e) for e in _causes(error)).lower()
    if any("timeout" in name.lower() for name in names) or "timed out" in text:
        return f"no answer within {timeout} s"
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "host name not found"
    if any("ssl" in name.lower() for name in names):
        return "TLS handshake failed"
    return f"network error ({type(error).__name__})"


def _causes(error: BaseException) -> Iterable[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    # urllib3 keeps the root cause in `reason` of its MaxRetryError, inside requests' args.
    for item in list(seen):
        for arg in getattr(item, "args", ()):
            if isinstance(arg, BaseException):
                seen.append(arg)
                reason = getattr(arg, "reason", None)
                if isinstance(reason, BaseException):
                    seen.append(reason)
    return seen
