"""Retry decisions of a Goal's failed attempts, and the one backoff curve (the runtime's
retries of failed cycles use it too). Pure: numbers in, decisions out."""

from __future__ import annotations

import random

from backlog_operator.api.goal import RetrySpec

_MAX_EXPONENT = 128


def backoff_seconds(
    retry: RetrySpec, failed_attempts: int, rng: random.Random | None = None
) -> float:
    """Delay before the next attempt: exponential from `backoffSeconds`, capped, with jitter."""
    return jittered_backoff(retry.backoff_seconds, retry.max_backoff_seconds, failed_attempts, rng)


def jittered_backoff(
    base: float, cap: float, failures: int, rng: random.Random | None = None
) -> float:
    """Delay after `failures` failures in a row: `base` doubling per failure, at most `cap`.

    "Equal jitter": half the delay is fixed and half random, so objects failing together do
    not come back together, yet the delay still grows. The exponent is bounded (a loop that
    fails for days must not overflow a float) far above where any cap is reached.
    """
    exponent = min(max(0, failures - 1), _MAX_EXPONENT)
    delay = min(float(cap), float(base) * 2.0**exponent)
    draw = (rng or random).random()
    return delay / 2 + draw * delay / 2


def should_retry(retry: RetrySpec, attempts: int, retryable: bool) -> bool:
    """Whether to start another attempt after a failure of attempt number `attempts`."""
    return retryable and attempts < retry.max_attempts
