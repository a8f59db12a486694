"""The Goal's status: phases and the conditions that go with them. Pure.

| phase | Ready | Reconciling | Stalled |
|---|---|---|---|
| Pending, Queued, Running | False | True (reason: the phase, or Backoff) | False |
| Succeeded | True (Published / AlreadyCompleted) | False | False |
| Skipped | True (Skipped) | False | False |
| Failed | False (the failure's reason) | False | True (the failure's reason) |

`lastTransitionTime` changes only when a condition's status changes, as Kubernetes expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

ACTIVE_PHASES = frozenset({"Pending", "Queued", "Running"})
FINAL_PHASES = frozenset({"Succeeded", "Failed", "Skipped"})


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with seconds, as the API server writes times."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_for(
    phase: str,
    reason: str,
    message: str,
    *,
    generation: int | None,
    previous: Sequence[Mapping[str, Any]] = (),
    now: datetime,
) -> list[dict[str, Any]]:
    """The three conditions for a goal in `phase`, carrying over unchanged transition times."""
    ready = "True" if phase in ("Succeeded", "Skipped") else "False"
    reconciling = "True" if phase in ACTIVE_PHASES else "False"
    stalled = "True" if phase == "Failed" else "False"
    wanted = [
        ("Ready", ready, reason, message),
        (
            "Reconciling",
            reconciling,
            reason if reconciling == "True" else "Finished",
            message if reconciling == "True" else "",
        ),
        (
            "Stalled",
            stalled,
            reason if stalled == "True" else "NotStalled",
            message if stalled == "True" else "",
        ),
    ]
    before = {str(item.get("type")): item for item in previous}
    conditions = []
    for kind, status, why, text in wanted:
        old = before.get(kind)
        changed = old is None or old.get("status") != status
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": why,
                "message": text,
                "observedGeneration": generation,
                "lastTransitionTime": timestamp(now)
                if changed
                else old.get("lastTransitionTime")
                if old
                else timestamp(now),
            }
        )
    return conditions


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time from a status or an annotation, or None."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
