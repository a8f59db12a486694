"""What a reconciler hands back: the status it wants, the events to post, when to look again.

Reconcilers of every kind decide; they do not write. The runtime (`runtime.py`) applies a
`Reconciled`: it turns the status model into a merge patch (`status.status_patch`, the one
writer of status), posts the events, and plans the next look.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from backlog_operator.api.common import ApiModel
from backlog_operator.api.result import WorkerResult

StatusT = TypeVar("StatusT", bound=ApiModel)


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the reconciled object."""

    kind: str  # Normal | Warning
    reason: str
    message: str
    # What caused it where `reason` does not say (a failed attempt's reason): for the log only.
    cause: str | None = None


@dataclass(frozen=True)
class AttemptEnd:
    """A worker attempt that ended in this reconcile: its result, and its Job and Pod as they
    were read (None: gone, or never read). The runtime records it in the metrics once the status
    that says so is written, so an attempt whose write is retried counts once."""

    result: WorkerResult
    job: Mapping[str, Any] | None = None
    pod: Mapping[str, Any] | None = None


@dataclass
class Reconciled(Generic[StatusT]):
    """The outcome of one reconcile: a status to write, events to post, when to look again.

    `status` is the whole status the object should have (None: leave it as it is); the writer
    sends only what differs from the status read, and nothing when nothing does. `attempt`: a
    Goal's attempt that ended here, `heal` the result of its heal Job that ended here (for the
    metrics).
    """

    status: StatusT | None = None
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    attempt: AttemptEnd | None = None
    heal: str | None = None  # a Goal's heal Job that ended here: its result (for the metrics)
