"""What the CRDs refuse at admission (schema and CEL rules), and that the models refuse the same.

Every CEL rule of the generated CRDs is evaluated here by a real CEL implementation, cel-python
(`celpy`), whose `matches()` is RE2 like the API server's. cel-python lacks Kubernetes' quantity
library (`quantity()`, `compareTo()`, `add()`, `isInteger()`), so this module implements those few
functions (`KUBERNETES_FUNCTIONS`) as the API server documents them. The API server's own
evaluator and its cost estimator do not run here; `test_every_rule_fits_the_cost_budget`
recomputes the estimate the API server makes when the CRD is written, conservatively.

An object is judged as the API server judges it: defaults first, then the OpenAPI schema (as
JSON Schema), then each rule on each node that is present. For every case the models must agree:
the operator refuses the same object (on clusters without CEL it is the only check).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import celpy
import jsonschema
import pytest
import re2
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from backlog_operator import naming
from backlog_operator.api import admission
from backlog_operator.api.backlog import Backlog
from backlog_operator.api.goal import Goal, TaskSpec
from backlog_operator.api.quantity import QUANTITY_PATTERN, is_resource_name, parse_quantity
from backlog_operator.api.schedule import GoalSchedule
from backlog_operator.tooling.crds import (
    all_crds,
    backlog_crd,
    crd_file_name,
    goal_crd,
    goal_schedule_crd,
    openapi_to_json_schema,
)
from tests.unit.test_crds import ROOT, apply_defaults

# ---------------------------------------------------------------------------------------------
# Kubernetes' CEL quantity library, for cel-python.

_SIGNED_QUANTITY = re.compile(r"^[+-]?" + QUANTITY_PATTERN.removeprefix("^"))


class CelQuantity:
    """A value of the `Quantity` type of Kubernetes' CEL library."""

    def __init__(self, amount: Decimal) -> None:
        self.amount = amount


def _quantity(text: Any) -> CelQuantity:
    if not isinstance(text, celtypes.StringType):
        raise TypeError("no such overload: quantity() takes a string")
    if _SIGNED_QUANTITY.match(text) is None:
        raise ValueError("quantity() of a string that is not a quantity")
    sign = -1 if text.startswith("-") else 1
    return CelQuantity(sign * parse_quantity(text.lstrip("+-")))


def _is_quantity(text: Any) -> celtypes.BoolType:
    return celtypes.BoolType(isinstance(text, str) and _SIGNED_QUANTITY.match(text) is not None)


def _add(quantity: CelQuantity, other: Any) -> CelQuantity:
    if isinstance(other, CelQuantity):
        return CelQuantity(quantity.amount + other.amount)
    if isinstance(other, celtypes.IntType):
        return CelQuantity(quantity.amount + int(other))
    raise TypeError("no such overload: add() takes a quantity or an int")


def _compare_to(left: CelQuantity, right: CelQuantity) -> celtypes.IntType:
    return celtypes.IntType((left.amount > right.amount) - (left.amount < right.amount))


def _is_integer(quantity: CelQuantity) -> celtypes.BoolType:
    return celtypes.BoolType(quantity.amount == quantity.amount.to_integral_value())


KUBERNETES_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "quantity": _quantity,
    "isQuantity": _is_quantity,
    "add": _add,
    "compareTo": _compare_to,
    "isInteger": _is_integer,
}

_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def evaluate(rule: str, value: Any) -> bool | str:
    """The rule on `value` as `self`: True, False, or the text of an evaluation error (which the
    API server reports as a refusal too)."""
    if rule not in _PROGRAMS:
        _PROGRAMS[rule] = _ENV.program(_ENV.compile(rule), functions=KUBERNETES_FUNCTIONS)
    try:
        result = _PROGRAMS[rule].evaluate({"self": json_to_cel(value)})
    except Exception as error:  # any failure of a rule refuses the object
        return f"error: {type(error).__name__}: {error}"
    if isinstance(result, celtypes.BoolType):
        return bool(result)
    return f"error: {result!r}"


# ---------------------------------------------------------------------------------------------
# Judging an object as the API server does.


def rule_nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with CEL rules, with its path (`.spec.task`, `.spec.labels.*`)."""
    if "x-kubernetes-validations" in schema:
        yield path or ".", schema
    for name, sub in schema.get("properties", {}).items():
        yield from rule_nodes(sub, f"{path}.{name}")
    for key, suffix in (("additionalProperties", ".*"), ("items", "[]")):
        if isinstance(schema.get(key), dict):
            yield from rule_nodes(schema[key], path + suffix)


def cel_failures(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """`path: message` for every rule that does not hold, on every node present in `value`."""
    failures = []
    for rule in schema.get("x-kubernetes-validations", []):
        outcome = evaluate(rule["rule"], value)
        if outcome is not True:
            detail = "" if outcome is False else f" ({outcome})"
            failures.append(f"{path or '.'}: {rule['message']}{detail}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                failures += cel_failures(sub, value[name], f"{path}.{name}")
        if isinstance(schema.get("additionalProperties"), dict):
            for name, item in value.items():
                failures += cel_failures(schema["additionalProperties"], item, f"{path}.{name}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            failures += cel_failures(schema["items"], item, f"{path}[{index}]")
    return failures


def openapi_schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def admission_errors(crd: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """What the API server would answer to a create of `document`: schema errors, then the
    messages of the CEL rules that do not hold. Empty when it would be stored."""
    schema = openapi_schema(crd)
    defaulted = apply_defaults(document, schema)
    validator = jsonschema.Draft202012Validator(openapi_to_json_schema(schema))
    errors = [
        f"{'.'.join(str(part) for part in error.absolute_path)}: schema: {error.message}"
        for error in validator.iter_errors(defaulted)
    ]
    return errors + cel_failures(schema, defaulted)


# ---------------------------------------------------------------------------------------------
# The three kinds, and where the shared parts sit in each.

GOAL: dict[str, Any] = {
    "apiVersion": "backlog.dev/v1alpha1",
    "kind": "Goal",
    "metadata": {"name": "g", "namespace": "default"},
    "spec": {
        "repository": {"url": "https://github.com/o/r.git"},
        "backlog": {"taskId": "t1"},
        "task": {"image": "busybox:1.37", "command": ["make", "docs"]},
    },
}
GOAL_SCHEDULE: dict[str, Any] = {
    "apiVersion": "backlog.dev/v1alpha1",
    "kind": "GoalSchedule",
    "metadata": {"name": "s", "namespace": "default"},
    "spec": {
        "schedule": "@hourly",
        "goalTemplate": {
            "metadata": {"labels": {"team": "docs"}},
            "spec": copy.deepcopy(GOAL["spec"]),
        },
    },
}
BACKLOG: dict[str, Any] = {
    "apiVersion": "backlog.dev/v1alpha1",
    "kind": "Backlog",
    "metadata": {"name": "b", "namespace": "default"},
    "spec": {
        "repository": {"url": "https://github.com/o/r.git"},
        "goalTemplate": {
            "metadata": {"labels": {"team": "docs"}},
            "spec": {"task": {"image": "busybox:1.37", "command": ["make", "docs"]}},
        },
    },
}

Kind = tuple[str, dict[str, Any], Callable[[], dict[str, Any]], type[BaseModel]]
KINDS: list[Kind] = [
    ("Goal", GOAL, goal_crd, Goal),
    ("GoalSchedule", GOAL_SCHEDULE, goal_schedule_crd, GoalSchedule),
    ("Backlog", BACKLOG, backlog_crd, Backlog),
]

# Where each shared part is, per kind (absent: the kind has no such part).
PLACES: dict[str, dict[str, tuple[str, ...]]] = {
    "Goal": {
        "task": ("spec", "task"),
        "pullRequest": ("spec", "pullRequest"),
        "commit": ("spec", "commit"),
        "repository": ("spec", "repository"),
        "backlogRef": ("spec", "backlog"),
    },
    "GoalSchedule": {
        "task": ("spec", "goalTemplate", "spec", "task"),
        "pullRequest": ("spec", "goalTemplate", "spec", "pullRequest"),
        "commit": ("spec", "goalTemplate", "spec", "commit"),
        "repository": ("spec", "goalTemplate", "spec", "repository"),
        "backlogRef": ("spec", "goalTemplate", "spec", "backlog"),
        "metadata": ("spec", "goalTemplate", "metadata"),
        "budget": ("spec", "budget"),
    },
    "Backlog": {
        "task": ("spec", "goalTemplate", "spec", "task"),
        "pullRequest": ("spec", "goalTemplate", "spec", "pullRequest"),
        "commit": ("spec", "goalTemplate", "spec", "commit"),
        "repository": ("spec", "repository"),
        "backlogSpec": ("spec",),
        "metadata": ("spec", "goalTemplate", "metadata"),
        "budget": ("spec", "budget"),
    },
}


def _part(document: dict[str, Any], place: tuple[str, ...]) -> dict[str, Any]:
    node = document
    for key in place:
        node = node.setdefault(key, {})
    return node


# A case: which part, what to change in it, and the rule message expected (a fragment), or
# SCHEMA for a refusal by the OpenAPI schema, or None for an object the API server stores.
SCHEMA = "schema:"
Case = tuple[str, Callable[[dict[str, Any]], None], str | None]


def put(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(part: dict[str, Any]) -> None:
        part.update(copy.deepcopy(fields))

    return mutate


def drop(name: str) -> Callable[[dict[str, Any]], None]:
    def mutate(part: dict[str, Any]) -> None:
        part.pop(name, None)

    return mutate


def resources(requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None) -> Any:
    given = {"requests": requests, "limits": limits}
    return put(resources={key: value for key, value in given.items() if value is not None})


URL_RULE = "must not carry credentials"
TEMPLATE_RULE = "must not contain a URL with credentials"
NAMES_RULE = "a container can ask for cpu, memory, ephemeral-storage"
WITHIN_RULE = "a request is above its limit"
OVERCOMMIT_RULE = "cannot be overcommitted"
WHOLE_RULE = "is counted in whole units"
HUGEPAGES_RULE = "hugepages need a cpu or memory"
KEY_RULE = "must be a Kubernetes key"

BUDGET_RULE = "budget.perDay must set at least one of cost, tokens or attempts"

CASES: dict[str, Case] = {
    # spec.budget (Backlog, GoalSchedule)
    "budget of attempts": ("budget", put(perDay={"attempts": 20}), None),
    "budget of everything": (
        "budget",
        put(
            perDay={"cost": {"amount": "25.50", "currency": "EUR"}, "tokens": 10**6, "attempts": 0},
            unreportedUsage="Allow",
        ),
        None,
    ),
    "budget with nothing per day": ("budget", put(perDay={}), BUDGET_RULE),
    "budget without perDay": ("budget", put(unreportedUsage="Block"), SCHEMA),
    "budget cost as a number": (
        "budget",
        put(perDay={"cost": {"amount": 25, "currency": "USD"}}),
        SCHEMA,
    ),
    "budget cost negative": (
        "budget",
        put(perDay={"cost": {"amount": "-1", "currency": "USD"}}),
        SCHEMA,
    ),
    "budget cost with an exponent": (
        "budget",
        put(perDay={"cost": {"amount": "1e3", "currency": "USD"}}),
        SCHEMA,
    ),
    "budget cost with ten places": (
        "budget",
        put(perDay={"cost": {"amount": "0.0000000001", "currency": "USD"}}),
        SCHEMA,
    ),
    "budget currency in lower case": (
        "budget",
        put(perDay={"cost": {"amount": "1", "currency": "usd"}}),
        SCHEMA,
    ),
    "budget cost without a currency": ("budget", put(perDay={"cost": {"amount": "1"}}), SCHEMA),
    "budget of negative tokens": ("budget", put(perDay={"tokens": -1}), SCHEMA),
    "budget unreported usage misspelt": (
        "budget",
        put(perDay={"attempts": 1}, unreportedUsage="allow"),
        SCHEMA,
    ),
    # task.image
    "image given": ("task", put(image="ghcr.io/o/tools:1"), None),
    "image missing": ("task", drop("image"), "task.image is required on a cluster"),
    "image empty": ("task", put(image=""), SCHEMA),
    # quantities: integers and strings, as Kubernetes takes them
    "quantities as strings and integers": (
        "task",
        resources({"cpu": "250m", "memory": 536870912}, {"cpu": 2, "memory": "1Gi"}),
        None,
    ),
    "quantity with an exponent": ("task", resources({"memory": "5e8"}, {"memory": "1e9"}), None),
    "no resources at all": ("task", put(resources={}), None),
    "quantity that is not one": ("task", resources({"cpu": "lots"}), SCHEMA),
    "negative integer quantity": ("task", resources({"cpu": -1}), SCHEMA),
    "negative string quantity": ("task", resources(limits={"memory": "-1Gi"}), SCHEMA),
    "fractional number quantity": ("task", resources({"cpu": 0.5}), SCHEMA),
    "too many resources": (
        "task",
        resources({f"example.com/r{n}": 1 for n in range(11)}),
        SCHEMA,
    ),
    # resource names
    "unknown resource name": ("task", resources({"gpu": 1}), NAMES_RULE),
    "unknown limit name": ("task", resources(limits={"storage": "1Gi"}), NAMES_RULE),
    "kubernetes.io resource": (
        "task",
        resources({"kubernetes.io/foo": 1}, {"kubernetes.io/foo": 1}),
        NAMES_RULE,
    ),
    "requests. prefixed resource": (
        "task",
        resources({"requests.example.com/x": 1}, {"requests.example.com/x": 1}),
        NAMES_RULE,
    ),
    "zero hugepages size": (
        "task",
        resources(limits={"hugepages-0": "1Gi", "memory": 1}),
        NAMES_RULE,
    ),
    "extended resource": (
        "task",
        resources({"nvidia.com/gpu": 1}, {"nvidia.com/gpu": "1"}),
        None,
    ),
    "hugepages with memory": (
        "task",
        resources({"hugepages-2Mi": "64Mi", "memory": "1Gi"}, {"hugepages-2Mi": "64Mi"}),
        None,
    ),
    # requests and limits
    "request above limit": ("task", resources({"memory": "8Gi"}, {"memory": "4Gi"}), WITHIN_RULE),
    "integer request above string limit": (
        "task",
        resources({"cpu": 2}, {"cpu": "1500m"}),
        WITHIN_RULE,
    ),
    "string request above integer limit": (
        "task",
        resources({"cpu": "2001m"}, {"cpu": 2}),
        WITHIN_RULE,
    ),
    "request equal to limit in other units": (
        "task",
        resources({"memory": "1024Mi"}, {"memory": "1Gi"}),
        None,
    ),
    "request without a limit": ("task", resources({"memory": "8Gi"}), None),
    "extended request without a limit": ("task", resources({"example.com/x": 1}), OVERCOMMIT_RULE),
    "extended request below its limit": (
        "task",
        resources({"example.com/x": 1}, {"example.com/x": 2}),
        OVERCOMMIT_RULE,
    ),
    "fractional extended resource": (
        "task",
        resources(limits={"example.com/x": "500m"}),
        WHOLE_RULE,
    ),
    "fractional extended request": (
        "task",
        resources({"example.com/x": "1500m"}, {"example.com/x": "1500m"}),
        WHOLE_RULE,
    ),
    "hugepages alone": ("task", resources(limits={"hugepages-2Mi": "64Mi"}), HUGEPAGES_RULE),
    # credentials in URLs
    "https clone URL": ("repository", put(url="https://github.com/o/r.git"), None),
    "ssh clone URL with its user": ("repository", put(url="ssh://git@github.com/o/r.git"), None),
    "scp-like clone URL": ("repository", put(url="git@github.com:o/r.git"), None),
    "https URL with the git user": ("repository", put(url="https://git@github.com/o/r"), None),
    "user and password in the URL": (
        "repository",
        put(url="https://bot:ghp_x@github.com/o/r.git"),
        URL_RULE,
    ),
    "token as the user name": ("repository", put(url="https://ghp_x@github.com/o/r"), URL_RULE),
    "token in the query": (
        "repository",
        put(url="https://gitlab.example/o/r.git?private_token=abc"),
        URL_RULE,
    ),
    "password in an ssh URL": ("repository", put(url="ssh://git:pw@h/o/r"), URL_RULE),
    "URL too long": ("repository", put(url="https://h/" + "a" * 2048), SCHEMA),
    "API URL": ("pullRequest", put(apiBaseUrl="https://ghe.example/api/v3"), None),
    "token in the API URL": (
        "pullRequest",
        put(apiBaseUrl="https://ghe.example/api/v3?access_token=abc"),
        URL_RULE,
    ),
    "title with a plain URL": ("pullRequest", put(title="{taskId}: see https://h/x"), None),
    "title with credentials": (
        "pullRequest",
        put(title="see https://u:p@h/x"),
        TEMPLATE_RULE,
    ),
    "body with a token URL": (
        "pullRequest",
        put(body="Logs: https://ci.example/run/1?token=abc\n{description}"),
        TEMPLATE_RULE,
    ),
    "body with an e-mail address": ("pullRequest", put(body="Ask a@b.example."), None),
    "body too long": ("pullRequest", put(body="x" * 65537), SCHEMA),
    "commit message with credentials": (
        "commit",
        put(message="{taskId}\n\nfrom https://x-access-token:t@github.com/o/r"),
        TEMPLATE_RULE,
    ),
    # the backlog path
    "backlog path in a folder": ("backlogRef", put(path="docs/backlog.yaml"), None),
    "backlog path with dots in names": ("backlogRef", put(path="a..b/.x..y.yaml"), None),
    "absolute backlog path": ("backlogRef", put(path="/etc/backlog.yaml"), "must be relative"),
    "home backlog path": ("backlogRef", put(path="~/backlog.yaml"), "must be relative"),
    "drive backlog path": ("backlogRef", put(path="C:\\backlog.yaml"), "must be relative"),
    "backslash backlog path": ("backlogRef", put(path="\\backlog.yaml"), "must be relative"),
    "climbing backlog path": ("backlogRef", put(path="../backlog.yaml"), "`..` segment"),
    "climbing in the middle": ("backlogRef", put(path="a/../../b.yaml"), "`..` segment"),
    "climbing with backslashes": ("backlogRef", put(path="a\\..\\b.yaml"), "`..` segment"),
    "only dots": ("backlogRef", put(path=".."), "`..` segment"),
    "Backlog path": ("backlogSpec", put(path="planning/backlog.yaml"), None),
    "absolute Backlog path": ("backlogSpec", put(path="/backlog.yaml"), "must be relative"),
    "climbing Backlog path": ("backlogSpec", put(path="x/../../y"), "`..` segment"),
    # goal template labels and annotations
    "labels": (
        "metadata",
        put(labels={"app.kubernetes.io/name": "docs", "tier": "", "a": "b.c-d_e"}),
        None,
    ),
    "label key with a space": ("metadata", put(labels={"bad key": "x"}), KEY_RULE),
    "label key starting with a dash": ("metadata", put(labels={"-x": "y"}), KEY_RULE),
    "label key with an empty name": ("metadata", put(labels={"example.com/": "y"}), KEY_RULE),
    "label key with capitals in the prefix": (
        "metadata",
        put(labels={"Example.com/x": "y"}),
        KEY_RULE,
    ),
    "label name of 64": ("metadata", put(labels={"n" * 64: "y"}), KEY_RULE),
    "label name of 63": ("metadata", put(labels={"n" * 63: "y"}), None),
    "label prefix of 254": (
        "metadata",
        put(labels={("p" * 60 + ".") * 4 + "p" * 10 + "/x": "y"}),
        KEY_RULE,
    ),
    "label prefix of 253": (
        "metadata",
        put(labels={("p" * 60 + ".") * 4 + "p" * 9 + "/x": "y"}),
        None,
    ),
    "label value with a space": ("metadata", put(labels={"x": "two words"}), SCHEMA),
    "label value of 64": ("metadata", put(labels={"x": "v" * 64}), SCHEMA),
    "label value ending in a dash": ("metadata", put(labels={"x": "v-"}), SCHEMA),
    "too many labels": ("metadata", put(labels={f"l{n}": "v" for n in range(65)}), SCHEMA),
    "annotation key with a space": ("metadata", put(annotations={"bad key": "x"}), KEY_RULE),
    "annotation with any value": (
        "metadata",
        put(annotations={"example.com/note": "free text, spaces and all: " + "x" * 100}),
        None,
    ),
}

# Each case on each kind that has its part: (case name, kind, case).
CASES_BY_KIND: list[tuple[str, Kind, Case]] = [
    (name, kinds, case)
    for name, case in CASES.items()
    for kinds in KINDS
    if case[0] in PLACES[kinds[0]]
]
PARAMS = [
    pytest.param(kind, template, make_crd, model, case, id=f"{kind}: {name}")
    for name, (kind, template, make_crd, model), case in CASES_BY_KIND
]


def _task_of(parsed: BaseModel) -> TaskSpec:
    spec = parsed.spec  # type: ignore[attr-defined]
    template = getattr(spec, "goal_template", None)
    task: TaskSpec = (template.spec if template is not None else spec).task
    return task


@pytest.mark.parametrize(("kind", "template", "make_crd", "model", "case"), PARAMS)
def test_admission_and_models_agree(
    kind: str,
    template: dict[str, Any],
    make_crd: Callable[[], dict[str, Any]],
    model: type[BaseModel],
    case: Case,
) -> None:
    part, mutate, expected = case
    document = copy.deepcopy(template)
    mutate(_part(document, PLACES[kind][part]))

    errors = admission_errors(make_crd(), document)
    try:
        parsed = model.model_validate(document)
    except ValidationError:
        model_refuses = True
    else:
        # The model leaves the image optional for `backlogctl run`; the Goal reconciler refuses a
        # Goal without one (`spec.task.image: required on a cluster`), whatever made the Goal.
        model_refuses = _task_of(parsed).image is None

    if expected is None:
        assert errors == [], "the CRD refuses a valid object"
        assert not model_refuses, "the model refuses a valid object"
    else:
        assert any(expected in error for error in errors), errors
        assert model_refuses, "the CRD refuses it, the model does not"


def test_every_rule_is_exercised() -> None:
    """Each rule of each CRD fails in at least one case above: no rule goes untested."""
    failed: set[tuple[str, str]] = set()
    for _name, (kind, template, make_crd, _model), (part, mutate, expected) in CASES_BY_KIND:
        if expected in (None, SCHEMA):
            continue
        document = copy.deepcopy(template)
        mutate(_part(document, PLACES[str(kind)][part]))
        for error in admission_errors(make_crd(), document):
            failed.add((str(kind), error.split(": ", 1)[1]))
    for crd in all_crds():
        kind = crd["spec"]["names"]["kind"]
        for path, node in rule_nodes(openapi_schema(crd)):
            for rule in node["x-kubernetes-validations"]:
                assert any(
                    failed_kind == kind and message.startswith(rule["message"])
                    for failed_kind, message in failed
                ), f"{kind} {path}: no case makes this rule fail: {rule['message']}"


@pytest.mark.parametrize(("kind", "template", "make_crd", "model"), KINDS)
def test_the_base_objects_are_valid(
    kind: str,
    template: dict[str, Any],
    make_crd: Callable[[], dict[str, Any]],
    model: type[BaseModel],
) -> None:
    assert admission_errors(make_crd(), template) == []
    model.model_validate(template)


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    """Every Goal, Backlog and GoalSchedule in the examples and the kustomize samples."""
    files = sorted((ROOT / "examples").rglob("*.yaml")) + sorted(
        (ROOT / "kustomize" / "samples").glob("*.yaml")
    )
    documents = []
    for path in files:
        for index, document in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if isinstance(document, dict) and document.get("kind") in CRDS_BY_KIND:
                documents.append((f"{path.relative_to(ROOT)}#{index}", document))
    return documents


CRDS_BY_KIND = {kind: (make_crd, model) for kind, _, make_crd, model in KINDS}
EXAMPLES = example_documents()


def test_there_are_examples_of_every_kind() -> None:
    assert {document["kind"] for _, document in EXAMPLES} == set(CRDS_BY_KIND)


@pytest.mark.parametrize(("name", "document"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_every_example_is_admitted(name: str, document: dict[str, Any]) -> None:
    make_crd, model = CRDS_BY_KIND[document["kind"]]
    assert admission_errors(make_crd(), document) == [], name
    model.model_validate(document)


# ---------------------------------------------------------------------------------------------
# The shared expressions: one meaning in CEL (RE2) and in Python.


def all_rules() -> Iterator[tuple[str, str, dict[str, Any], dict[str, str]]]:
    for crd in all_crds():
        for path, node in rule_nodes(openapi_schema(crd)):
            for rule in node["x-kubernetes-validations"]:
                yield crd_file_name(crd), path, node, rule


RULES = list(all_rules())


@pytest.mark.parametrize(
    ("crd", "path", "node", "rule"),
    RULES,
    ids=[f"{c} {p} {r['message'][:40]}" for c, p, _, r in RULES],
)
def test_every_rule_compiles_and_its_expressions_are_re2(
    crd: str, path: str, node: dict[str, Any], rule: dict[str, str]
) -> None:
    _ENV.compile(rule["rule"])
    assert rule["message"].strip() and len(rule["message"]) <= 400
    for pattern in re.findall(r"matches\(r'([^']*)'\)", rule["rule"]):
        re2.compile(pattern)
        re.compile(pattern)


INTERESTING = st.lists(
    st.sampled_from([*"ab:/@?&#=.gitGIT hstp_-\\~0\n", "token", "://", "https", "git@"]),
    max_size=30,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(INTERESTING)
def test_credential_expression_means_the_same_in_re2_and_python(text: str) -> None:
    assert admission.has_credentials(text) == (
        re2.search(admission.CREDENTIALS_PATTERN, text) is not None
    )


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["https", "http", "ssh", "git+https", "HTTPS"]),
    st.text(alphabet="agitGIT:x_-", max_size=8),
    st.sampled_from(["", "@"]),
)
def test_credential_expression_covers_the_workers_reading(
    scheme: str, userinfo: str, at: str
) -> None:
    """Whatever the worker (naming.url_has_credentials) calls a credential, the shared
    expression (the CRD's rule) does too."""
    url = f"{scheme}://{userinfo}{at}github.com/o/r.git"
    if naming.url_has_credentials(url):
        assert admission.has_credentials(url), url


@pytest.mark.parametrize(
    ("text", "carries"),
    [
        ("https://github.com/o/r.git", False),
        ("https://git@github.com/o/r.git", False),
        ("ssh://git@github.com:22/o/r.git", False),
        ("git@github.com:o/r.git", False),
        ("file:///srv/git/r.git", False),
        ("https://h/x/commit/ab@cd", False),
        ("https://[::1]:8080/o/r", False),
        ("https://h/x?page=2&tokens=3", False),
        ("https://h/x?token=", False),
        ("mail a@b.example", False),
        ("https://bot:pw@h/o/r", True),
        ("https://:pw@h/o/r", True),
        ("https://x-access-token:t@h/o/r", True),
        ("https://ghp_abc@h/o/r", True),
        ("https://GIT@h/o/r", True),
        ("https://gi@h/o/r", True),
        ("ssh://git:pw@h/o/r", True),
        ("https://h/o/r?access_token=1", True),
        ("https://h/o/r?a=1&Token=2", True),
        ("https://h/api?api_key=k", True),
        ("text then https://u:p@h/x and more", True),
    ],
)
def test_credential_expression_on_examples(text: str, carries: bool) -> None:
    rule = admission.no_credentials_in_url("url", "").rule
    assert admission.has_credentials(text) is carries
    assert evaluate(rule, text) is (not carries)


KEYS = [
    "app",
    "app.kubernetes.io/name",
    "a/b",
    "A_b.c-d",
    "x" * 63,
    "x" * 64,
    "",
    "/x",
    "a/",
    "a//b",
    "-a",
    "a-",
    "UPPER.example.com/x",
    "ex ample.com/x",
    "a/b/c",
    ("p" * 63 + ".") * 3 + "p" * 61 + "/n",
    ("p" * 63 + ".") * 3 + "p" * 62 + "/n",
]


@pytest.mark.parametrize("key", KEYS)
def test_key_rule_and_model_agree(key: str) -> None:
    rule = admission.qualified_keys_rule("labels").rule
    assert evaluate(rule, {key: "v"}) is admission.is_qualified_name(key)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aZ0-_./", max_size=70))
def test_key_rule_and_model_agree_on_any_key(key: str) -> None:
    rule = admission.qualified_keys_rule("labels").rule
    assert evaluate(rule, {key: "v"}) is admission.is_qualified_name(key)


RESOURCE_NAMES = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "storage",
    "hugepages-2Mi",
    "hugepages-1Gi",
    "hugepages-0",
    "hugepages-0.0Mi",
    "hugepages-0.5",
    "hugepages-",
    "hugepages-lots",
    "nvidia.com/gpu",
    "example.com/a_b.c",
    "kubernetes.io/x",
    "node.kubernetes.io/x",
    "requests.example.com/x",
    "Example.com/x",
    "example.com/",
    "example.com/" + "n" * 64,
    "d" * 254 + "/x",
]


@pytest.mark.parametrize("name", RESOURCE_NAMES)
def test_resource_name_rule_and_model_agree(name: str) -> None:
    (limits,) = (
        node
        for path, node in rule_nodes(openapi_schema(goal_crd()))
        if path == ".spec.task.resources.limits"
    )
    names_rule = next(r for r in limits["x-kubernetes-validations"] if NAMES_RULE in r["message"])
    assert evaluate(names_rule["rule"], {name: 1}) is is_resource_name(name)


@pytest.mark.parametrize(
    "path",
    [
        "a",
        "a/b",
        ".backlog/backlog.yaml",
        "a..b",
        "/a",
        "\\a",
        "~",
        "c:x",
        "..",
        "a/..",
        "a\\..\\b",
    ],
)
def test_path_rules_and_model_agree(path: str) -> None:
    holds = all(evaluate(rule.rule, path) is True for rule in admission.repository_path_rules("p"))
    assert holds is (admission.repository_path_problem(path) is None)


# ---------------------------------------------------------------------------------------------
# Cost: what the API server estimates when the CRD is written, recomputed conservatively.

STATIC_COST_LIMIT = 10_000_000  # the API server's limit per rule (StaticEstimatedCostLimit)
CRD_COST_LIMIT = 100_000_000  # and per CRD (StaticEstimatedCRDCostLimit)
# An int-or-string value is estimated at the largest request (3 MiB) whatever its maxLength, up
# to Kubernetes 1.34; a string with a maxLength at 4 bytes a character; a string without one at
# the largest request. Map keys are not bounded by any keyword; they are taken at the longest key
# any rule here allows, which is more than the API server assumes.
LARGEST_REQUEST = 3 * 1024 * 1024 - 2
LONGEST_KEY = admission.QUALIFIED_NAME_MAX_LENGTH
ITERATION = re.compile(r"(self(?:\.\w+)?)\.(all|exists|exists_one|map|filter)\(")
MATCHES = re.compile(r"([\w.\[\]]+)\.matches\(r'([^']*)'\)")
QUANTITY = re.compile(r"(?<!\w)quantity\(([^()]+)\)")
CALL_SLACK = 200  # every other call, comparison and index costs a few: far fewer than this


def _string_size(schema: dict[str, Any]) -> int:
    if schema.get("x-kubernetes-int-or-string"):
        return LARGEST_REQUEST
    if "maxLength" in schema:
        return int(schema["maxLength"]) * 4
    return LARGEST_REQUEST


def _size_of(expression: str, node: dict[str, Any]) -> int:
    """The estimated size of a rule's operand: `self`, `self.x`, a key `k`, or a value
    `self[k]`/`self.x[k]`; a string literal is its own length."""
    literal = re.fullmatch(r"'([^']*)'", expression)
    if literal:
        return len(literal.group(1))
    if expression == "k":
        return LONGEST_KEY * 4
    match = re.fullmatch(r"self(?:\.(\w+))?(\[k\])?", expression)
    assert match, f"the cost estimate cannot read {expression!r}: teach it"
    target = node["properties"][match.group(1)] if match.group(1) else node
    if match.group(2):
        target = target["additionalProperties"]
    return _string_size(target)


def _iterations(rule: str, node: dict[str, Any]) -> int:
    """How often the body of the rule's comprehensions runs, at most (their bounds added up)."""
    total = 0
    for operand, _ in ITERATION.findall(rule):
        target = node if operand == "self" else node["properties"][operand.removeprefix("self.")]
        bound = target.get("maxProperties", target.get("maxItems"))
        assert bound is not None, f"{operand} is iterated over but has no maxProperties/maxItems"
        total += int(bound)
    return max(total, 1)


def estimated_cost(rule: str, node: dict[str, Any]) -> int:
    """An upper bound of the API server's estimate: every regex match and quantity parse is
    charged as if it ran in every iteration."""
    per_iteration = CALL_SLACK
    for operand, pattern in MATCHES.findall(rule):
        string = math.ceil((_size_of(operand, node) + 1) * 0.1)
        per_iteration += string * math.ceil(len(pattern) * 0.25)
    for operand in QUANTITY.findall(rule):
        per_iteration += math.ceil(_size_of(operand, node) * 0.1)
    return per_iteration * _iterations(rule, node)


@pytest.mark.parametrize(
    ("crd", "path", "node", "rule"),
    RULES,
    ids=[f"{c} {p} {r['message'][:40]}" for c, p, _, r in RULES],
)
def test_every_rule_fits_the_cost_budget(
    crd: str, path: str, node: dict[str, Any], rule: dict[str, str]
) -> None:
    cost = estimated_cost(rule["rule"], node)
    assert cost < STATIC_COST_LIMIT, f"{crd} {path}: estimated cost {cost:,}"


@pytest.mark.parametrize("crd", all_crds(), ids=crd_file_name)
def test_every_crd_fits_the_cost_budget(crd: dict[str, Any]) -> None:
    # No rule sits under a list or map, so each runs once per object.
    for path, _ in rule_nodes(openapi_schema(crd)):
        assert "[]" not in path and ".*" not in path, f"{path}: a rule repeated per item"
    total = sum(
        estimated_cost(rule["rule"], node)
        for _, node in rule_nodes(openapi_schema(crd))
        for rule in node["x-kubernetes-validations"]
    )
    assert total < CRD_COST_LIMIT, f"estimated {total:,}"


def test_the_cost_estimate_notices_a_missing_bound() -> None:
    unbounded = {"type": "object", "additionalProperties": {"type": "string"}}
    with pytest.raises(AssertionError, match="no maxProperties"):
        estimated_cost("self.all(k, k.matches(r'^a$'))", unbounded)
    assert estimated_cost("self.matches(r'^a$')", {"type": "string"}) > STATIC_COST_LIMIT / 100


def test_strings_a_rule_matches_are_bounded() -> None:
    """Every string a rule runs a regular expression on has a maxLength."""
    for _, path, node, rule in RULES:
        if re.search(r"(?<![\w\]])self\.matches\(", rule["rule"]):
            assert "maxLength" in node, f"{path} is matched but has no maxLength"
