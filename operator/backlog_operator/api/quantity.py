"""Kubernetes resource quantities and container resources, checked as the API server checks them.

The API server answers 422 to a malformed quantity, to requests above limits, or to a resource
name a container cannot ask for. Checking the same in the models reports a Goal as invalid
(`InvalidSpec`, naming the field) instead of letting the create of its Job fail later.

Error messages name what is wrong but never repeat the value (see
`common.describe_validation_error`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator

from backlog_operator.api.admission import (
    QUALIFIED_NAME_MAX_LENGTH,
    QUALIFIED_PREFIX_TOO_LONG_PATTERN,
    Rule,
    cel_string,
    validations,
)
from backlog_operator.api.common import ApiModel
from backlog_operator.api.quantity_rules import (
    EXTENDED_RESERVED_PATTERN,
    EXTENDED_RESOURCE_PATTERN,
    HUGEPAGES_PATTERN,
    HUGEPAGES_POSITIVE_PATTERN,
    MAX_RESOURCES,
    QUANTITY_EXAMPLES,
    QUANTITY_PATTERN,
    STANDARD_RESOURCES,
    check_resources,
    is_resource_name,
    parse_quantity,
    positive_quantity,
)

# The checks are defined without pydantic (`quantity_rules`), and importable from here.
__all__ = [
    "MAX_RESOURCES",
    "QUANTITY_EXAMPLES",
    "QUANTITY_PATTERN",
    "STANDARD_RESOURCES",
    "Quantity",
    "ResourceRequirements",
    "is_resource_name",
    "parse_quantity",
    "positive_quantity",
]

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
        check_resources(self.requests or {}, self.limits or {})
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
