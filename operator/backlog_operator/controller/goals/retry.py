"""Retry decisions of a Goal's failed attempts. Pure: numbers in, decisions out."""

from __future__ import annotations

import random

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
