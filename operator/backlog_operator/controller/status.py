"""Status as typed models, and the one place a model becomes a status write. Pure.

Reconcilers build `GoalStatus`, `BacklogStatus` and `GoalScheduleStatus` from the status they
read (`read_status`), changing fields with `evolve` (validated: a misspelt field is an error, not
a key the API server prunes silently). `status_patch` is the only writer: it turns the model into
the JSON merge patch of the status subresource, against the status read.

Merge-patch semantics matter: a field the model no longer has (a re-run clears the last run's
fields with `evolve(..., unset=...)`, a field set to None) must be written as `null`, or the API
server keeps the old value. Only fields set on the model are written (`exclude_unset`): a
default the operator never set (`attempts: 0` before the first attempt) stays absent, as before.
Fields the model does not know are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from pydantic import ValidationError

from backlog_operator.api.common import ApiModel

log = logging.getLogger("backlog_operator.controller")

ModelT = TypeVar("ModelT", bound=ApiModel)


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with seconds, as the API server writes times.

    An aware time in another zone is converted first (writing its wall clock with a `Z` would
    shift it); a naive one is taken as UTC already, as the operator's clocks give.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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


def require_aware(moment: datetime, name: str) -> None:
    """Refuse a naive `moment` (`name` says which argument): pure time rules take instants."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


def instant(moment: datetime) -> datetime:
    """`moment` as a status holds it: whole seconds in UTC (what `timestamp` writes)."""
    parsed = parse_time(timestamp(moment))
    assert parsed is not None
    return parsed


def read_status(model: type[ModelT], raw: Mapping[str, Any] | None) -> ModelT:
    """The status read from an object, as `model`; fields that do not validate are left out.

    The operator writes every status itself, so all of it validates in practice; should a
    person have edited it, the fields that still make sense are kept rather than all lost.
    """
    data = dict(raw or {})
    try:
        return model.model_validate(data)
    except ValidationError:
        pass
    kept = {}
    for key, value in data.items():
        try:
            model.model_validate({key: value})
        except ValidationError:
            log.warning("ignoring status.%s of a %s: it does not validate", key, model.__name__)
            continue
        kept[key] = value
    return model.model_validate(kept)


def evolve(status: ModelT, /, *, unset: Iterable[str] = (), **changes: Any) -> ModelT:
    """A validated copy of `status` with `changes` (by field name) and the fields in `unset`
    back to unset, which the writer removes from the object."""
    cleared = set(unset)
    unknown = cleared - type(status).model_fields.keys()
    if unknown:
        raise ValueError(f"{type(status).__name__} has no field {', '.join(sorted(unknown))}")
    data = {
        name: getattr(status, name)
        for name in status.model_fields_set
        if name not in cleared and name not in changes
    }
    data.update(changes)
    return type(status).model_validate(data)


def to_wire(status: ApiModel) -> dict[str, Any]:
    """The fields set on `status`, camelCase, times as `timestamp` writes them."""
    data = status.model_dump(by_alias=True, exclude_unset=True, exclude_none=True)
    wire: dict[str, Any] = _plain(data)
    return wire


def status_patch(previous: Mapping[str, Any] | None, status: ApiModel) -> dict[str, Any] | None:
    """The merge patch that turns the status read (`previous`) into `status`, or None when
    there is nothing to write.

    A field of the model that `previous` has and `status` has not becomes `null` (removed);
    keys the model does not know are not touched.
    """
    before = dict(previous or {})
    after = to_wire(status)
    known = {field.alias or name for name, field in type(status).model_fields.items()}
    patch = _diff({key: value for key, value in before.items() if key in known}, after)
    return patch or None


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386: the merge patch from `before` to `after` (objects merge, the rest replaces).

    A null in `before` is a field that is absent (merge patches store no nulls).
    """
    before = {key: value for key, value in before.items() if value is not None}
    patch: dict[str, Any] = {key: None for key in before if key not in after}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            nested = _diff(old, value)
            if nested:
                patch[key] = nested
        elif key not in before or old != value:
            patch[key] = value
    return patch


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
