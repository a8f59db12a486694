"""GitHub webhooks: which Backlog a path is, and what a delivery makes the operator do.

Each sync of a Backlog with `spec.webhook` reads its Secret and registers its route here
(`Routes.register`: the path `api.webhook.hook_path` derives, and the secret that signs its
deliveries); `status.webhookPath` says the path. `Webhooks.receive` answers a delivery the
server (`adapters.webhook_server`) has read:

- 404: no Backlog has this path. Nothing happens.
- 401: `X-Hub-Signature-256` missing, or not the body's with the Backlog's secret. Nothing.
- 400: no `X-GitHub-Event` or `X-GitHub-Delivery`, or a body that is not the event's JSON.
  Nothing.
- 409: a delivery id received already (in the last day). Nothing.
- 200: `ping`; any other event, action, branch or repository. Nothing.
- 202: `push` to the Backlog's base branch of its repository: the Backlog syncs now.
- 202: `pull_request` closed (merged or not) or reopened, in its repository: the Backlog's
  goals with that pull request read it again from the forge now.

A body is only a hint: the sync reads the repository, the goals ask the forge; nothing in the
body is written anywhere. Each delivery is logged with its id, event and answer; never the
secret, the signature or the body.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from backlog_operator.api.webhook import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Ignored,
    MalformedDeliveryError,
    Ping,
    PullRequest,
    Push,
    ReplayGuard,
    delivery_id,
    read_event,
    signature_matches,
)

log = logging.getLogger("backlog_operator.webhooks")

Answer = tuple[int, str]


@dataclass(frozen=True)
class Route:
    """A Backlog that receives webhooks, and what its deliveries are checked against."""

    namespace: str
    name: str
    uid: str
    secret: bytes
    repository: str | None  # owner/name on the forge, when it can be told
    url: str  # spec.repository.url
    branch: str  # spec.repository.baseBranch

    def __repr__(self) -> str:  # never the secret, whoever prints a route
        return f"Route({self.namespace}/{self.name})"


class Routes:
    """Path -> Backlog. Paths are kept by their SHA-256, so that finding one costs the same
    whichever paths exist and whatever the path asked for."""

    def __init__(self) -> None:
        self._by_path: dict[bytes, Route] = {}
        self._path_of: dict[str, bytes] = {}  # Backlog uid -> its path's digest

    def register(self, path: str, route: Route) -> None:
        """`route` answers at `path` from now on (replacing the Backlog's earlier path)."""
        self.forget(route.uid)
        digest = _digest(path)
        self._by_path[digest] = route
        self._path_of[route.uid] = digest

    def forget(self, uid: str) -> None:
        """The Backlog `uid` receives no more webhooks (deleted, or its webhook removed)."""
        digest = self._path_of.pop(uid, None)
        if digest is not None:
            self._by_path.pop(digest, None)

    def find(self, path: str) -> Route | None:
        """The Backlog whose path is `path`, if any."""
        return self._by_path.get(_digest(path))

    def __len__(self) -> int:
        return len(self._by_path)


class WebhookActions(Protocol):
    """What a delivery may ask of the operator (controller.runtime.Runtime)."""

    def request_sync(self, namespace: str, name: str) -> None: ...
    def recheck_pull_request(
        self, namespace: str, backlog_uid: str, repository: str, number: int, *, reopened: bool
    ) -> None: ...


class Webhooks:
    """The routes, the delivery ids received, and the answer to each delivery. `attach` gives
    it the operator to act on (until then a valid delivery is answered 503)."""

    def __init__(
        self,
        *,
        guard: ReplayGuard | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.routes = Routes()
        self.guard = guard or ReplayGuard()
        self.clock = clock
        self.actions: WebhookActions | None = None
        # Told of each answer for a Backlog's path: (event, HTTP status); the runtime's metrics.
        self.observe: Callable[[str, int], None] | None = None

    def attach(self, actions: WebhookActions) -> None:
        """Act on deliveries through `actions` (the runtime, once the operator started)."""
        self.actions = actions

    def known(self, path: str) -> bool:
        """Whether some Backlog receives webhooks at `path`."""
        return self.routes.find(path) is not None

    async def receive(self, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """The answer to one delivery (see the module docstring), after doing what it asks."""
        route = self.routes.find(path)
        delivery = delivery_id(headers.get(DELIVERY_HEADER))
        event = delivery_id(headers.get(EVENT_HEADER))
        if route is None:
            return self._said(None, delivery, event, 404, "no such hook")
        if not signature_matches(route.secret, body, headers.get(SIGNATURE_HEADER)):
            return self._said(route, delivery, event, 401, "bad or missing signature")
        if not event or not delivery:
            return self._said(
                route, delivery, event, 400, f"no {EVENT_HEADER} or {DELIVERY_HEADER}"
            )
        if self.actions is None:
            return self._said(route, delivery, event, 503, "the operator is starting")
        key = f"{route.uid}/{delivery}"
        if not self.guard.first(key, self.clock()):
            return self._said(route, delivery, event, 409, "delivery received already")
        try:
            status, outcome = self._act(route, event, body, self.actions)
        except MalformedDeliveryError as error:
            return self._said(route, delivery, event, 400, str(error))
        except Exception:
            self.guard.forget(key)  # not acted on: the same delivery may come again
            log.exception("webhook delivery %s (%s) failed", delivery, event)
            return self._said(route, delivery, event, 500, "internal error")
        return self._said(route, delivery, event, status, outcome)

    def _act(self, route: Route, event: str, body: bytes, actions: WebhookActions) -> Answer:
        """Do what the delivery asks of `route`'s Backlog; (status, outcome)."""
        parsed = read_event(event, body)
        if isinstance(parsed, Ping):
            return 200, "pong"
        if isinstance(parsed, Ignored):
            return 200, f"ignored: {event} events are not acted on"
        if not parsed.repository.is_one_of(route.repository, route.url):
            return 200, "ignored: another repository"
        if isinstance(parsed, Push):
            if not parsed.is_to_branch(route.branch):
                return 200, f"ignored: not a push to {route.branch}"
            actions.request_sync(route.namespace, route.name)
            return 202, "accepted: sync requested"
        return self._pull_request(route, parsed, actions)

    @staticmethod
    def _pull_request(route: Route, event: PullRequest, actions: WebhookActions) -> Answer:
        if not event.acted_on:
            return 200, f"ignored: pull request {event.action}"
        actions.recheck_pull_request(
            route.namespace,
            route.uid,
            event.repository.full_name,
            event.number,
            reopened=event.action == "reopened",
        )
        return 202, f"accepted: pull request #{event.number} is read again"

    def _said(
        self, route: Route | None, delivery: str, event: str, status: int, outcome: str
    ) -> Answer:
        """Log the answer (delivery id, event, Backlog, status, outcome), count it, return it."""
        if route is not None and self.observe is not None:
            self.observe(event, status)
        where = f"{route.namespace}/{route.name}" if route is not None else "-"
        log.log(
            logging.INFO if status < 400 else logging.WARNING,
            "webhook delivery %s (%s) for backlog %s: %d %s",
            delivery or "-",
            event or "-",
            where,
            status,
            outcome,
        )
        return status, outcome


def _digest(path: str) -> bytes:
    return hashlib.sha256(path.encode("utf-8", "replace")).digest()
