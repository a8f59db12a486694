"""The one shape every expected failure has: a reason, a sentence, and whether to retry."""

from __future__ import annotations


class ClassifiedError(Exception):
    """A failure that says what happened (`reason`, a CamelCase word) and whether a later
    attempt may succeed (`retryable`), with a sentence for people that holds no secret.

    The git and forge adapters raise subclasses; the worker turns any of them into a failed
    result without knowing which adapter it came from.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retryable: bool,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.retry_after_seconds = retry_after_seconds

    def __str__(self) -> str:
        return self.message


class AlreadyExistsError(Exception):
    """The object to create exists already (the API's 409 on create)."""
