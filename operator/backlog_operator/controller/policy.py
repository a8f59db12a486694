"""Retry and queueing decisions. Pure: numbers and lists in, decisions out."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from backlog_operator.api.goal import RetrySpec


def backoff_seconds(
    retry: RetrySpec, failed_attempts: int, rng: random.Random | None = None
) -> float:
    """Delay before the next attempt: exponential from `backoffSeconds`, capped, with jitter.

    "Equal jitter": half the delay is fixed and half random, so goals failing together do not
    retry together, yet the delay still grows.
    """
    base = retry.backoff_seconds * (2 ** max(0, failed_attempts - 1))
    delay = min(float(retry.max_backoff_seconds), float(base))
    draw = (rng or random).random()
    return delay / 2 + draw * delay / 2


def should_retry(retry: RetrySpec, attempts: int, retryable: bool) -> bool:
    """Whether to start another attempt after a failure of attempt number `attempts`."""
    return retryable and attempts < retry.max_attempts


@dataclass(frozen=True)
class QueueEntry:
    """A goal waiting for capacity."""

    key: str  # namespace/name
    repository: str
    priority: int
    created: datetime


def admit(
    waiting: Sequence[QueueEntry],
    running_repositories: Iterable[str],
    *,
    max_per_repository: int,
    max_total: int,
) -> tuple[list[str], dict[str, int]]:
    """Which waiting goals may start now, and the queue position (1-based) of the rest.

    Order: priority (smaller first), then age (older first), then name. A goal whose
    repository is full does not block goals of other repositories.
    """
    running = list(running_repositories)
    per_repository: dict[str, int] = {}
    for repository in running:
        per_repository[repository] = per_repository.get(repository, 0) + 1
    total = len(running)
    admitted: list[str] = []
    positions: dict[str, int] = {}
    for entry in sorted(waiting, key=lambda e: (e.priority, e.created, e.key)):
        in_repository = per_repository.get(entry.repository, 0)
        if total < max_total and in_repository < max_per_repository:
            admitted.append(entry.key)
            per_repository[entry.repository] = in_repository + 1
            total += 1
        else:
            positions[entry.key] = len(positions) + 1
    return admitted, positions
