"""What a retry is told of the attempt before it: `BACKLOG_PREVIOUS_FAILURE`. Pure.

The next attempt's task (often a coding agent) gets, in the task container's environment, JSON
with the previous attempt's `attempt`, `reason`, `message` and `step` (from the goal's
`status.lastFailure`) and `log`, the end of that attempt's task log when its Pod still exists.
Everything in it is either the operator's own words or the task's own output, and it still
passes through the redactor (the token of the goal, if the operator could read it, any URL
credentials, anything shaped like a GitHub token or an Authorization header): the variable is
in the Job's spec, readable by whoever can read Jobs. Bounded: the message to
`MESSAGE_BYTES`, the log to `LOG_BYTES`, so the whole value stays small.
"""

from __future__ import annotations

import json

from backlog_operator.api.goal import AttemptFailure
from backlog_operator.redact import Redactor, mask_token_shapes

LOG_BYTES = 4096
MESSAGE_BYTES = 1024
TASK_CONTAINER = "task"


def previous_failure_value(failure: AttemptFailure, log: str | None, redactor: Redactor) -> str:
    """The JSON of BACKLOG_PREVIOUS_FAILURE for `failure`, with the end of the failed attempt's
    task `log` when there is one (see the module docstring)."""

    def clean(text: str) -> str:
        return mask_token_shapes(redactor(text))

    payload: dict[str, object] = {
        "attempt": failure.attempt,
        "reason": clean(failure.reason),
        "message": _head(clean(failure.message), MESSAGE_BYTES),
    }
    if failure.step is not None:
        payload["step"] = failure.step
    if log:
        payload["log"] = _tail(clean(log), LOG_BYTES)
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _head(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "..."


def _tail(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[-limit:].decode(errors="ignore")
