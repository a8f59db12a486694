"""What a reconciler hands back: the status it wants, the events to post, when to look again.

Reconcilers of every kind decide; they do not write. The runtime (`runtime.py`) applies a
`Reconciled`: it turns the status model into a merge patch (`status.status_patch`, the one
writer of status), posts the events, and plans the next look.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from backlog_operator.api.common import ApiModel

StatusT = TypeVar("StatusT", bound=ApiModel)


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the reconciled object."""

    kind: str  # Normal | Warning
    reason: str
    message: str
    # What caused it where `reason` does not say (a failed attempt's reason): for the log only.
    cause: str | None = None


@dataclass
class Reconciled(Generic[StatusT]):
    """The outcome of one reconcile: a status to write, events to post, when to look again.

    `status` is the whole status the object should have (None: leave it as it is); the writer
    sends only what differs from the status read, and nothing when nothing does.
    """

    status: StatusT | None = None
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
