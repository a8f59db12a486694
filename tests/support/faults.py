"""Fault injection for the Kubernetes API emulator: chosen requests fail the way a real API
server, its load balancer or the network fails them.

A fault is selected by the request's RBAC verb (``create``, ``get``, ``list``, ``watch``,
``patch``, ``update``, ``delete``, ``deletecollection``; see `tests.support.rbac`) and
resource (``"jobs"``, ``"goals/status"``, ``"pods/log"``), optionally by API group,
namespace and name, and acts at most ``times`` times, each time with ``probability`` drawn
from its own RNG seeded with ``seed`` (so a run is reproducible whatever else happens). It
answers a status code with the API server's Status body (429 and 503 with ``Retry-After``),
waits ``delay`` seconds first, or drops the connection without an answer. With
``commit=True`` (writes only) the request takes effect first and only its answer is lost, as
when a response times out after the API server stored the object::

    emulator.faults.add(verb="create", resource="jobs", status=500, times=1)
    emulator.faults.add(verb="patch", resource="goals/status", status=409, probability=0.3, seed=7)
    emulator.faults.add(verb="list", resource="pods", delay=0.5)
    emulator.faults.add(verb="create", resource="jobs", drop=True, commit=True, times=1)
    emulator.faults.add(verb="watch", resource="jobs", status=429, retry_after=1, times=2)

Faults apply to HTTP requests only (the emulator's synchronous API used by tests is never
failed), before RBAC (as the API server's priority-and-fairness filter answers 429 before
authorization). A fault never retries or loops; a delay ends early when the emulator stops.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Iterable
from typing import Any

from tests.support.rbac import RequestAttributes, k8s_status

__all__ = ["Fault", "FaultInjector"]

Json = dict[str, Any]

_VERBS = frozenset(
    ("create", "get", "list", "watch", "patch", "update", "delete", "deletecollection")
)

# The reason and message the API server (or the layer in front of it) answers each code with.
_REASONS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden: injected fault"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    409: (
        "Conflict",
        "Operation cannot be fulfilled: the object has been modified; please apply your changes "
        "to the latest version and try again",
    ),
    410: ("Expired", "too old resource version"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected fault"),
    502: ("InternalError", "Bad Gateway"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: (
        "Timeout",
        "Timeout: request did not complete within requested timeout - context deadline exceeded",
    ),
}


@dataclasses.dataclass(eq=False)
class Fault:
    """One injected fault; ``hits`` counts the requests it acted on."""

    verbs: frozenset[str] | None
    resource: str | None
    subresource: str | None
    group: str | None
    namespace: str | None
    name: str | None
    status: int | None
    delay: float
    drop: bool
    retry_after: int | None
    message: str | None
    times: int | None
    probability: float
    commit: bool
    rng: random.Random
    hits: int = 0

    def matches(self, request: RequestAttributes) -> bool:
        if not request.resource_request:
            return False
        if self.verbs is not None and request.verb not in self.verbs:
            return False
        if self.commit and not request.is_write:
            return False
        if self.resource is not None and request.resource != self.resource:
            return False
        if self.subresource is not None and request.subresource != self.subresource:
            return False
        if self.group is not None and request.api_group != self.group:
            return False
        if self.namespace is not None and request.namespace != self.namespace:
            return False
        return self.name is None or request.name == self.name

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def status_body(self, request: RequestAttributes) -> Json:
        """The Status object answered with ``status``."""
        assert self.status is not None
        reason, default = _REASONS.get(self.status, ("InternalError", f"injected {self.status}"))
        details: Json = {"name": request.name, "group": request.api_group, "kind": request.resource}
        if self.status == 500:
            details["causes"] = [{"message": self.message or "injected fault"}]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        return k8s_status(self.status, reason, self.message or default, details)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class FaultInjector:
    """The emulator's faults (``emulator.faults``): empty, so inactive, unless a test adds one.
    The first fault (in the order added) that matches a request and is not exhausted acts."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        *,
        verb: str | Iterable[str] | None = None,
        resource: str | None = None,
        group: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        status: int | None = None,
        delay: float = 0.0,
        drop: bool = False,
        retry_after: int | None = None,
        message: str | None = None,
        times: int | None = None,
        probability: float = 1.0,
        seed: int = 0,
        commit: bool = False,
    ) -> Fault:
        """Fail matching requests: ``status`` (a Status answer), ``drop`` (close the connection
        unanswered) and/or ``delay`` (seconds to wait first; alone, the request is then served).
        ``resource`` may name a subresource (``"jobs/status"``); ``None`` matches any."""
        verbs = None if verb is None else frozenset([verb] if isinstance(verb, str) else verb)
        if verbs is not None and not verbs <= _VERBS:
            raise ValueError(f"unknown verbs {sorted(verbs - _VERBS)}; known: {sorted(_VERBS)}")
        if status is None and not drop and delay <= 0:
            raise ValueError("a fault needs a status, drop=True or a delay")
        if status is not None and not 400 <= status <= 599:
            raise ValueError(f"not an error status: {status}")
        if status is not None and drop:
            raise ValueError("a dropped connection has no status")
        if delay < 0 or delay > 60:
            raise ValueError("delay must be between 0 and 60 seconds")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        if not 0 < probability <= 1:
            raise ValueError("probability must be in (0, 1]")
        if (
            commit
            and verbs is not None
            and not verbs
            <= {
                "create",
                "update",
                "patch",
                "delete",
                "deletecollection",
            }
        ):
            raise ValueError("commit=True applies to writes only")
        if commit and status is None and not drop:
            raise ValueError("commit=True needs a status or drop=True: the answer that is lost")
        plural, _, sub = (resource or "").partition("/")
        fault = Fault(
            verbs=verbs,
            resource=plural or None,
            subresource=sub if resource is not None else None,
            group=group,
            namespace=namespace,
            name=name,
            status=status,
            delay=delay,
            drop=drop,
            retry_after=retry_after,
            message=message,
            times=times,
            probability=probability,
            commit=commit,
            rng=random.Random(seed),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def select(self, request: RequestAttributes) -> Fault | None:
        """The fault acting on this request, counted as a hit; None for most requests."""
        if not self._faults:
            return None
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(request):
                    continue
                if fault.probability < 1 and fault.rng.random() >= fault.probability:
                    continue
                fault.hits += 1
                return fault
        return None
