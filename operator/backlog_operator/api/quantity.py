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

from pydantic import ConfigDict, Field, model_validator

from backlog_operator.api.admission import (
    DNS_SUBDOMAIN_PATTERN,
    NAME_PART_PATTERN,
    QUALIFIED_NAME_MAX_LENGTH,
    QUALIFIED_PREFIX_TOO_LONG_PATTERN,
    Rule,
    cel_string,
    validations,
)
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


def _check_amounts(field: str, amounts: dict[str, int | str]) -> None:
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


# An amount: an integer or a quantity string (`x-kubernetes-int-or-string`, as in a Pod spec).
# The pattern applies to strings only; `minimum` to integers only.
Quantity = Annotated[
    int | str, Field(json_schema_extra={"pattern": QUANTITY_PATTERN, "minimum": 0})
]

# --------------------------------------------------------------------------------------------
# The same checks as CEL rules for the CRDs (see api/admission.py).
#
# Cost: the API server estimates an int-or-string value at up to 3 MiB whatever its bounds (until
# Kubernetes 1.34), and `quantity()` at a tenth of its argument's length: about 315,000 a call.
# The rules comparing requests with limits make two calls per resource name, so MAX_RESOURCES
# names keep each of them near 6,300,000, under the API server's 10,000,000 per rule.
MAX_RESOURCES = 10


def _cel_quantity(value: str) -> str:
    """A CEL quantity from an int-or-string `value` (`quantity()` takes strings only, and a
    `string()` of it would leave the API server unable to bound the cost)."""
    return f"(type({value}) == string ? quantity({value}) : quantity('0').add({value}))"


def _cel_compare(name: str) -> str:
    """`requests[name]` compared with `limits[name]`: -1, 0 or 1."""
    request, limit = _cel_quantity(f"self.requests[{name}]"), _cel_quantity(f"self.limits[{name}]")
    return f"{request}.compareTo({limit})"


_CEL_STANDARD = "[" + ", ".join(f"'{name}'" for name in STANDARD_RESOURCES) + "]"


def resource_names_rule(field: str) -> Rule:
    """Every key of the map `field` is a resource a container can ask for."""
    hugepages = (
        f"(k.matches({cel_string(HUGEPAGES_PATTERN)})"
        f" && k.matches({cel_string(HUGEPAGES_POSITIVE_PATTERN)}))"
    )
    extended = (
        f"(size(k) <= {QUALIFIED_NAME_MAX_LENGTH}"
        f" && k.matches({cel_string(EXTENDED_RESOURCE_PATTERN)})"
        f" && !k.matches({cel_string(QUALIFIED_PREFIX_TOO_LONG_PATTERN)})"
        f" && !k.matches({cel_string(EXTENDED_RESERVED_PATTERN)}))"
    )
    return Rule(
        rule=f"self.all(k, k in {_CEL_STANDARD} || {hugepages} || {extended})",
        message=(
            f"{field}: a container can ask for cpu, memory, ephemeral-storage, "
            "hugepages-<size> and extended resources <domain>/<name> outside kubernetes.io only"
        ),
    )


def whole_extended_rule(field: str) -> Rule:
    """Extended resources (`domain/name`) in the map `field` come in whole units."""
    return Rule(
        rule=f"self.all(k, !k.contains('/') || {_cel_quantity('self[k]')}.isInteger())",
        message=f"{field}: an extended resource (<domain>/<name>) is counted in whole units",
    )


REQUESTS_WITHIN_LIMITS = Rule(
    rule=(
        "!has(self.requests) || !has(self.limits) || self.requests.all(k, "
        f"!(k in self.limits) || {_cel_compare('k')} <= 0)"
    ),
    message=(
        "resources: a request is above its limit: requests.<name> must be at most limits.<name>"
    ),
)
NOT_OVERCOMMITTED = Rule(
    rule=(
        f"!has(self.requests) || self.requests.all(k, k in {_CEL_STANDARD} || "
        f"(has(self.limits) && k in self.limits && {_cel_compare('k')} == 0))"
    ),
    message=(
        "resources: hugepages and extended resources cannot be overcommitted: each of their "
        "requests needs a limit of the same amount"
    ),
)
HUGEPAGES_NEED_CPU_OR_MEMORY = Rule(
    rule=(
        "!((has(self.requests) && self.requests.exists(k, k.startsWith('hugepages-')))"
        " || (has(self.limits) && self.limits.exists(k, k.startsWith('hugepages-'))))"
        " || (has(self.requests) && ('cpu' in self.requests || 'memory' in self.requests))"
        " || (has(self.limits) && ('cpu' in self.limits || 'memory' in self.limits))"
    ),
    message="resources: hugepages need a cpu or memory request or limit too",
)

Amounts = Annotated[dict[str, Quantity], Field(max_length=MAX_RESOURCES)]


class ResourceRequirements(ApiModel):
    """Container resources, as in a Pod spec (`requests` and `limits`, no `claims`)."""

    model_config = ApiModel.model_config | ConfigDict(
        json_schema_extra=validations(
            REQUESTS_WITHIN_LIMITS, NOT_OVERCOMMITTED, HUGEPAGES_NEED_CPU_OR_MEMORY
        )
    )

    requests: Amounts | None = Field(
        default=None,
        description="Amounts the scheduler reserves (cpu, memory, ephemeral-storage, ...).",
        json_schema_extra=validations(
            resource_names_rule("requests"), whole_extended_rule("requests")
        ),
    )
    limits: Amounts | None = Field(
        default=None,
        description="Amounts the container may not exceed (memory above it is OOM-killed).",
        json_schema_extra=validations(resource_names_rule("limits"), whole_extended_rule("limits")),
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
        """The `resources` of a container spec, every amount a string.

        Kubernetes accepts `cpu: 2`, but the official client (v37) refuses an integer quantity
        before it sends the Job: `2` goes out as `"2"`, the same amount.
        """
        return {
            part: {name: str(amount) for name, amount in amounts.items()}
            for part, amounts in self.to_wire().items()
            if isinstance(amounts, dict)
        }
