"""Kubernetes resource quantities and container resources, checked as the API server checks them.

The API server answers 422 to a malformed quantity, to requests above limits, or to a resource
name a container cannot ask for. Checking the same in the models reports a Goal as invalid
(`InvalidSpec`, naming the field) instead of letting the create of its Job fail later.

Error messages name what is wrong but never repeat the value (see
`common.describe_validation_error`).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, model_validator

from backlog_operator.api.common import ApiModel

# `resource.Quantity`'s syntax without a sign: every quantity this project takes is a size or an
# amount, never negative. (The decimal exponent is an integer, as Go's parser demands.)
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
QUANTITY_EXAMPLES = "such as 4Gi, 512Mi, 250m or 2"

_QUANTITY = re.compile(QUANTITY_PATTERN)
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(value: int | str) -> Decimal:
    """The amount a non-negative quantity stands for; ValueError when it is not one."""
    if isinstance(value, bool):
        raise ValueError(f"not a Kubernetes quantity ({QUANTITY_EXAMPLES})")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative, and a quantity here never is")
        return Decimal(value)
    match = _QUANTITY.match(value)
    if match is None:
        raise ValueError(f"not a Kubernetes quantity ({QUANTITY_EXAMPLES})")
    number, suffix = match.group(1), match.group(3) or ""
    if suffix in _BINARY:
        return Decimal(number) * (1 << _BINARY[suffix])
    if suffix in _DECIMAL:
        return Decimal(f"{number}e{_DECIMAL[suffix]}")
    return Decimal(f"{number}{suffix}")  # a decimal exponent: 1e3, 5E-2


def positive_quantity(value: str, what: str) -> str:
    """`value` when it is a quantity above zero; else a ValueError starting with `what`."""
    try:
        amount = parse_quantity(value)
    except ValueError as error:
        raise ValueError(f"{what} is {error}") from None
    if amount <= 0:
        raise ValueError(f"{what} must be greater than zero")
    return value


# Resource names a container may request, as the API server allows them.
_STANDARD_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
_HUGEPAGES = "hugepages-"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def _is_hugepages(name: str) -> bool:
    if not name.startswith(_HUGEPAGES):
        return False
    try:
        return parse_quantity(name.removeprefix(_HUGEPAGES)) > 0
    except ValueError:
        return False


def _is_extended(name: str) -> bool:
    """`domain/name` outside kubernetes.io: a device plugin's or an admin's resource."""
    domain, slash, rest = name.partition("/")
    return (
        bool(slash)
        and domain != "kubernetes.io"
        and not domain.endswith(".kubernetes.io")
        and not name.startswith("requests.")
        and len(domain) <= 253
        and _DNS_SUBDOMAIN.match(domain) is not None
        and len(rest) <= 63
        and _NAME_PART.match(rest) is not None
    )


def _check_amounts(field: str, amounts: dict[str, int | str]) -> None:
    for name, value in amounts.items():
        if not (name in _STANDARD_RESOURCES or _is_hugepages(name) or _is_extended(name)):
            raise ValueError(
                f"{field}.{name} is not a resource a container can ask for (cpu, memory, "
                "ephemeral-storage, hugepages-<size>, or an extended resource domain/name)"
            )
        try:
            amount = parse_quantity(value)
        except ValueError as error:
            raise ValueError(f"{field}.{name} is {error}") from None
        if _is_extended(name) and amount != amount.to_integral_value():
            raise ValueError(f"{field}.{name} must be a whole number (an extended resource)")


Quantity = Annotated[int | str, Field(json_schema_extra={"pattern": QUANTITY_PATTERN})]


class ResourceRequirements(ApiModel):
    """Container resources, as in a Pod spec (`requests` and `limits`, no `claims`)."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="Amounts the scheduler reserves (cpu, memory, ephemeral-storage, ...).",
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="Amounts the container may not exceed (memory above it is OOM-killed).",
    )

    @model_validator(mode="after")
    def _valid_for_a_container(self) -> ResourceRequirements:
        requests, limits = self.requests or {}, self.limits or {}
        _check_amounts("requests", requests)
        _check_amounts("limits", limits)
        for name, value in requests.items():
            overcommit = name in _STANDARD_RESOURCES  # hugepages and extended ones: no
            if name not in limits:
                if not overcommit:
                    raise ValueError(f"limits.{name} is required: {name} cannot be overcommitted")
                continue
            request, limit = parse_quantity(value), parse_quantity(limits[name])
            if not overcommit and request != limit:
                raise ValueError(f"requests.{name} must equal limits.{name}")
            if request > limit:
                raise ValueError(f"requests.{name} must not be above limits.{name}")
        names = {*requests, *limits}
        if any(_is_hugepages(name) for name in names) and not names & {"cpu", "memory"}:
            raise ValueError("hugepages need a cpu or memory request or limit too")
        return self

    def to_container(self) -> dict[str, Any]:
        """The `resources` of a container spec."""
        return self.to_wire()
