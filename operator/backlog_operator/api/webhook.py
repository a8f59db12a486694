"""GitHub webhook deliveries, checked and read without I/O.

- `hook_path`: where a Backlog's deliveries go, `/hook/<sha256(secret + name + namespace)>`
  (as Flux's notification-controller derives a Receiver's): not guessable without the secret,
  different for two Backlogs sharing one secret, and changed by rotating the secret.
- `signature_matches`: `X-Hub-Signature-256` (`sha256=<hex HMAC-SHA256 of the raw body>`)
  compared in constant time.
- `ReplayGuard`: the delivery ids already received (`X-GitHub-Delivery`), a bounded number for
  a bounded time, so that a delivery captured on the way is not acted on twice.
- `read_event`: the few events the operator acts on (`ping`, `push`, `pull_request`), held to
  the fields GitHub's schemas give them; anything else is `Ignored`. A body is hostile input
  even when signed (the secret may leak): it only ever says what to look at again, never what
  the state is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError

HOOK_PREFIX = "/hook/"
SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
SIGNATURE_PREFIX = "sha256="
# GitHub caps a payload at 25 MB, but the events read here are far smaller (a push lists its
# commits' messages and file names): above this a delivery is refused (413) before it is read,
# and the Backlog's interval sync picks the change up.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# The pull request actions after which a goal's pull request is read again. GitHub says
# "closed" for a merge too (with `pull_request.merged`); "merged" is accepted for old senders.
PULL_REQUEST_ACTIONS = frozenset({"closed", "reopened", "merged"})
# Delivery ids are GUIDs; anything longer or stranger is cut before it is logged or kept.
_DELIVERY_ID_MAX = 64


class MalformedDeliveryError(ValueError):
    """A signed body that is not the JSON the event's schema says (answered 400)."""


def hook_path(secret: str, name: str, namespace: str) -> str:
    """The path of the Backlog `namespace/name` whose webhook secret is `secret`."""
    digest = hashlib.sha256(f"{secret}{name}{namespace}".encode()).hexdigest()
    return f"{HOOK_PREFIX}{digest}"


def signature_matches(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` (the value of `X-Hub-Signature-256`) signs `body` with `secret`,
    compared in constant time; a missing or malformed header never matches."""
    if not header:
        return False
    expected = SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode("utf-8", "replace"))


def sign(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` GitHub sends with `body` (for tests and tools)."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def delivery_id(header: str | None) -> str:
    """The delivery id as it may be kept and logged: printable id characters only, cut short
    ("" when there is none)."""
    if not header:
        return ""
    kept = "".join(c for c in header[: _DELIVERY_ID_MAX * 2] if c.isalnum() or c in "-_.")
    return kept[:_DELIVERY_ID_MAX]


class ReplayGuard:
    """Delivery ids received in the last `seconds`, at most `capacity` of them (the oldest
    forgotten first). Times are the caller's (a monotonic clock): no I/O, no clock here."""

    def __init__(self, capacity: int = 10_000, seconds: float = 86_400.0) -> None:
        self.capacity = capacity
        self.seconds = seconds
        self._seen: OrderedDict[str, float] = OrderedDict()  # id -> when, oldest first

    def first(self, key: str, now: float) -> bool:
        """Record `key`; whether it is new (False: a replay, within the time kept)."""
        while self._seen:
            oldest, when = next(iter(self._seen.items()))
            if when > now - self.seconds:
                break
            del self._seen[oldest]
        if key in self._seen:
            return False
        self._seen[key] = now
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def forget(self, key: str) -> None:
        """Forget `key` (a delivery that could not be handled may be sent again)."""
        self._seen.pop(key, None)

    def __len__(self) -> int:
        return len(self._seen)


class _GitHubModel(BaseModel):
    """GitHub's snake_case JSON; fields not read are ignored; types strict (a number is not a
    string)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class Repository(_GitHubModel):
    """The repository a delivery is about."""

    full_name: str
    clone_url: str | None = None
    html_url: str | None = None
    ssh_url: str | None = None
    git_url: str | None = None

    def is_one_of(self, slug: str | None, url: str) -> bool:
        """Whether this is the repository `slug` (owner/name, any case) or cloned from `url`."""
        if slug is not None and self.full_name.casefold() == slug.casefold():
            return True
        wanted = _plain_url(url)
        known = (self.clone_url, self.html_url, self.ssh_url, self.git_url)
        return any(candidate and _plain_url(candidate) == wanted for candidate in known)


class Ping(_GitHubModel):
    """`ping`: sent when a webhook is created; answered, nothing done."""

    zen: str | None = None
    hook_id: int | None = None


class Push(_GitHubModel):
    """`push`: commits pushed to (or a branch or tag created or deleted at) `ref`."""

    ref: str
    after: str | None = None
    repository: Repository

    def is_to_branch(self, branch: str) -> bool:
        """Whether the push is to branch `branch` (not a tag, not another branch)."""
        return self.ref == f"refs/heads/{branch}"


class PullRequestFields(_GitHubModel):
    """The pull request of a `pull_request` event (what is read of it)."""

    number: int
    state: str
    merged: bool | None = None


class PullRequest(_GitHubModel):
    """`pull_request`: something happened to pull request `number`."""

    action: str
    number: int
    pull_request: PullRequestFields
    repository: Repository

    @property
    def acted_on(self) -> bool:
        """Whether the action may change what a goal's status says of its pull request."""
        return self.action in PULL_REQUEST_ACTIONS


@dataclass(frozen=True)
class Ignored:
    """An event the operator does not act on."""

    event: str


Event = Ping | Push | PullRequest | Ignored
_MODELS: dict[str, type[Ping | Push | PullRequest]] = {
    "ping": Ping,
    "push": Push,
    "pull_request": PullRequest,
}


def read_event(event: str, body: bytes) -> Event:
    """The delivery of event `event` (the `X-GitHub-Event` header) with `body`: a `Ping`, a
    `Push`, a `PullRequest`, or `Ignored` for any other event (its body is not read). Raises
    `MalformedDeliveryError` when the body is not that event's JSON."""
    model = _MODELS.get(event)
    if model is None:
        return Ignored(event)
    try:
        data = json.loads(body)
    except ValueError:
        raise MalformedDeliveryError(
            "the body is not JSON (set the webhook's content type to application/json)"
        ) from None
    if not isinstance(data, dict):
        raise MalformedDeliveryError(f"a {event} delivery is a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        where = sorted({".".join(str(part) for part in e["loc"]) for e in error.errors()})
        raise MalformedDeliveryError(
            f"not a {event} delivery: {', '.join(where[:5]) or 'the body'} missing or mistyped"
        ) from None


def _plain_url(url: str) -> str:
    """A repository URL as compared: no trailing slash or `.git`, any case."""
    text = url.strip().rstrip("/")
    text = text.removesuffix(".git")
    return text.casefold()
