"""Kubernetes quantities and container resources checked as the API server checks them, with no
pydantic: one definition for the model (`api.quantity`) and for the worker steps' own reading of
a goal (`worker.goal`).

Error messages name what is wrong but never repeat the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from backlog_operator.api.admission import (
    DNS_SUBDOMAIN_PATTERN,
    NAME_PART_PATTERN,
    QUALIFIED_NAME_MAX_LENGTH,
    QUALIFIED_PREFIX_TOO_LONG_PATTERN,
)

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


# Resource names a container may request, as the API server allows them: the standard ones,
# `hugepages-<size above zero>`, and extended resources `<domain>/<name>` outside kubernetes.io.
# The CRDs' CEL rules are made from the same expressions (see RESOURCE_RULES below).
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_STANDARD_RESOURCES = frozenset(STANDARD_RESOURCES)
HUGEPAGES_PATTERN = "^hugepages-" + QUANTITY_PATTERN.removeprefix("^")
HUGEPAGES_POSITIVE_PATTERN = r"^hugepages-[0-9.]*[1-9]"  # a digit other than 0 before any unit
EXTENDED_RESOURCE_PATTERN = f"^{DNS_SUBDOMAIN_PATTERN}/{NAME_PART_PATTERN}$"
EXTENDED_RESERVED_PATTERN = r"^(([^/]*\.)?kubernetes\.io/|requests\.)"

_HUGEPAGES = re.compile(HUGEPAGES_PATTERN)
_HUGEPAGES_POSITIVE = re.compile(HUGEPAGES_POSITIVE_PATTERN)
_EXTENDED = re.compile(EXTENDED_RESOURCE_PATTERN)
_EXTENDED_RESERVED = re.compile(EXTENDED_RESERVED_PATTERN)
_DOMAIN_TOO_LONG = re.compile(QUALIFIED_PREFIX_TOO_LONG_PATTERN)


def _is_hugepages(name: str) -> bool:
    return _HUGEPAGES.search(name) is not None and _HUGEPAGES_POSITIVE.search(name) is not None


def _is_extended(name: str) -> bool:
    """`domain/name` outside kubernetes.io: a device plugin's or an admin's resource."""
    # The length first: it bounds the regular expressions' work.
    return (
        len(name) <= QUALIFIED_NAME_MAX_LENGTH
        and _EXTENDED.search(name) is not None
        and _DOMAIN_TOO_LONG.search(name) is None
        and _EXTENDED_RESERVED.search(name) is None
    )


def is_resource_name(name: str) -> bool:
    """True when a container may ask for the resource `name`."""
    return name in _STANDARD_RESOURCES or _is_hugepages(name) or _is_extended(name)


def _check_amounts(field: str, amounts: Mapping[str, int | str]) -> None:
    for name, value in amounts.items():
        if not is_resource_name(name):
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


# At most this many resource names in `requests` or in `limits` (see `api.quantity` for why).
MAX_RESOURCES = 10


def check_resources(requests: Mapping[str, int | str], limits: Mapping[str, int | str]) -> None:
    """ValueError unless `requests` and `limits` are what a container may ask for."""
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
