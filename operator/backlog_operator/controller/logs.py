"""The operator's log: one handler, kopf's formats, the object on every line, no secret.

`configure` is called once at start-up (`backlogctl operator`): kopf's own `kopf.configure`
installs the one handler on the root logger (so every line is printed once), and this module
gives it a formatter built on kopf's:

- `text`: kopf's format (`[time] logger [LEVEL] [namespace/name] message`);
- `json`: one JSON object per line: `time`, `level`, `logger`, `message`, and `object`
  (`apiVersion`, `kind`, `namespace`, `name`, `uid`) where the line concerns an object, plus
  the line's own fields (a transition's `reason`, `eventType` and `cause`).

kopf's per-object lines carry their object (`k8s_ref`); the operator's own lines carry it
either explicitly (`extra={"k8s_ref": ...}`, `object_ref`) or from the cycle they are logged in
(`about`, a context variable the runtime sets around each object's cycle, inherited by the
threads `asyncio.to_thread` runs). Every message and traceback passes through the `Redactor`
(credentials in URLs, well-known token shapes) before it is written.

Each lifecycle transition is one INFO line (`log_transitions`), written where the runtime
posts the Kubernetes Event that records it (events are made on transitions only).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import kopf

# kopf's formatters (used by `kopf.configure`, not exported): subclassed, so the operator's
# lines and kopf's have one shape. Present throughout kopf 1.x (pyproject: kopf<2).
from kopf._core.actions.loggers import ObjectJsonFormatter, ObjectPrefixingTextFormatter

from backlog_operator.controller.results import Event
from backlog_operator.redact import Redactor

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

log = logging.getLogger("backlog_operator.controller")

# The object whose cycle is running in this task (or thread), for lines that do not name one.
_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "backlog_operator_object", default=None
)
_redact = Redactor()
# The order of a JSON line's first keys (the rest follow as they come).
_JSON_ORDER = ("time", "level", "logger", "message", "object")


def object_ref(body: Mapping[str, Any]) -> dict[str, Any]:
    """An object's reference as kopf puts it on its own lines (`k8s_ref`)."""
    metadata = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "namespace": metadata.get("namespace"),
    }


@contextlib.contextmanager
def about(kind: str, namespace: str, name: str) -> Iterator[None]:
    """Lines logged inside (with no object of their own) concern this object."""
    token = _current.set({"kind": kind, "name": name, "namespace": namespace})
    try:
        yield
    finally:
        _current.reset(token)


def log_transitions(body: Mapping[str, Any], events: Sequence[Event]) -> None:
    """One INFO line per transition (per Event posted): `<Kind> <Reason>: <message>`, or
    `<Kind> <Reason> (<cause>): <message>` where the event has a cause (a failed attempt's)."""
    if not events or not log.isEnabledFor(logging.INFO):
        return
    ref = object_ref(body)
    for event in events:
        fields = {"k8s_ref": ref, "reason": event.reason, "eventType": event.kind}
        reason = event.reason
        if event.cause:
            fields["cause"] = event.cause
            reason = f"{reason} ({event.cause})"
        log.info("%s %s: %s", ref["kind"] or "object", reason, event.message, extra=fields)


class _Redacting(logging.Formatter):
    """Formats a copy of the record: its object from the running cycle if it names none, its
    message and traceback redacted (the record itself, shared by handlers, is left alone)."""

    def format(self, record: logging.LogRecord) -> str:
        """The line, with the object and without secrets."""
        record = copy.copy(record)
        record.msg = _redact(record.getMessage())
        record.args = None
        record.exc_text = None  # formatted again, through `formatException`, redacted
        if getattr(record, "k8s_ref", None) is None:
            current = _current.get()
            if current is not None:
                record.k8s_ref = current
        return super().format(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        """The traceback, redacted."""
        return _redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 (logging's name)
        """The stack, redacted."""
        return _redact(super().formatStack(stack_info))


class TextFormatter(_Redacting, ObjectPrefixingTextFormatter):
    """kopf's text format, `[namespace/name]` before the message of a line about an object."""

    def __init__(self) -> None:
        super().__init__(kopf.LogFormat.FULL.value)


class JsonFormatter(_Redacting, ObjectJsonFormatter):
    """kopf's JSON format: one object per line, with `time`, `level`, `logger`, `message` and
    `object`."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )

    def add_fields(
        self,
        log_record: dict[str, object],
        record: logging.LogRecord,
        message_dict: dict[str, object],
    ) -> None:
        """kopf's fields, the line's identity first (easier to read unparsed)."""
        super().add_fields(log_record, record, message_dict)
        fields = dict(log_record)
        log_record.clear()
        log_record.update({key: fields.pop(key) for key in _JSON_ORDER if key in fields})
        log_record.update(fields)


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of `log_format`."""
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(log_format: LogFormat = "text", *, verbose: bool = False) -> logging.Handler:
    """The process's logging: kopf's handler with `log_format`, the root logger's only one
    (stderr); INFO and up (DEBUG when `verbose`); kopf's "Handler ... succeeded" per watch event
    only when `verbose`. The handler installed."""
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=log_format != "json",
    )
    root = logging.getLogger()
    handler = root.handlers[-1]  # kopf's, just added (and its earlier ones removed)
    handler.setFormatter(formatter(log_format))
    root.handlers[:] = [handler]  # and no other (one a library's `basicConfig` may have added)
    # kopf logs each event handler's success at INFO on its per-object logger: three lines per
    # goal, thousands a minute on a large cluster. Its warnings and errors stay; the operator
    # logs each transition itself.
    logging.getLogger("kopf.objects").setLevel(logging.NOTSET if verbose else logging.WARNING)
    return handler
