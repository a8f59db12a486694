"""The generated CRDs: in step with the models, structural, and agreeing with the models.

The committed files under crds/ must be exactly what the models generate now; the schema must
be one the API server accepts (structural, no `$ref`, ...); and the samples and examples must
be accepted, and broken ones refused, alike by the CRD's schema and by the pydantic models.
"""

from __future__ import annotations

import copy
import enum
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.config import JsonValue

from backlog_operator import cli
from backlog_operator.api.goal import Goal, RepositorySpec, RetrySpec
from backlog_operator.tooling.crds import (
    SchemaError,
    all_crds,
    backlog_crd,
    crd_file_name,
    crd_for,
    goal_crd,
    goal_schedule_crd,
    openapi_to_json_schema,
    render,
    render_kustomization,
    structural_schema,
)

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
REGENERATE = "run `make crds` (backlogctl crds --output crds) and commit the result"

# Keywords of the API server's JSONSchemaProps (apiextensions.k8s.io/v1) that a generated
# schema may use. `$ref`, `definitions`, `additionalItems`, `uniqueItems: true` and
# `additionalProperties: false` are refused by the API server and must never appear.
ALLOWED_KEYWORDS = {
    "description",
    "type",
    "format",
    "default",
    "enum",
    "example",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "items",
    "properties",
    "additionalProperties",
    "anyOf",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
    "x-kubernetes-embedded-resource",
}
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def goal_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the Goal CRD's only version."""
    (version,) = goal_crd()["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def goal_validator() -> jsonschema.protocols.Validator:
    """A jsonschema validator that judges a Goal the way the API server would."""
    schema = openapi_to_json_schema(goal_schema())
    validator_class = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
    validator_class.check_schema(schema)
    validator: jsonschema.protocols.Validator = validator_class(schema)
    return validator


def structural_problems(schema: Any, path: str = "(root)", *, root: bool = True) -> Iterator[str]:
    """What the API server would refuse in `schema` as a structural schema, one line each."""
    if not isinstance(schema, dict):
        yield f"{path}: not a mapping"
        return
    for key in schema:
        if key not in ALLOWED_KEYWORDS:
            yield f"{path}: keyword {key!r} is not allowed (or not structural)"
    int_or_string = schema.get("x-kubernetes-int-or-string") is True
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    kind = schema.get("type")
    if kind is None and not (int_or_string or preserve):
        yield f"{path}: no type (and neither int-or-string nor preserve-unknown-fields)"
    if kind is not None and kind not in JSON_TYPES:
        yield f"{path}: type {kind!r} is not one of {sorted(JSON_TYPES)}"
    if root and kind != "object":
        yield f"{path}: the root must be an object"
    if int_or_string:
        if kind is not None:
            yield f"{path}: int-or-string must not have a type"
        if schema.get("anyOf") not in (None, [{"type": "integer"}, {"type": "string"}]):
            yield f"{path}: int-or-string allows only anyOf [integer, string]"
    elif "anyOf" in schema:
        yield f"{path}: anyOf is only structural for int-or-string here"
    if "properties" in schema and "additionalProperties" in schema:
        yield f"{path}: properties and additionalProperties are mutually exclusive"
    if schema.get("additionalProperties") is False:
        yield f"{path}: additionalProperties: false is refused by apiextensions/v1"
    if kind == "array" and not isinstance(schema.get("items"), dict):
        yield f"{path}: an array needs one items schema"
    if kind != "object" and ("properties" in schema or "additionalProperties" in schema):
        yield f"{path}: properties on a non-object"
    for name in schema.get("required", []):
        if name not in schema.get("properties", {}):
            yield f"{path}: required {name!r} is not a property"
    for value in schema.get("enum", []):
        if kind in JSON_TYPES and not isinstance(value, JSON_TYPES[kind]):
            yield f"{path}: enum value {value!r} is not of type {kind}"
    if schema.get("x-kubernetes-list-type") == "set":
        item_type = schema.get("items", {}).get("type")
        if item_type not in {"string", "integer", "number", "boolean"}:
            yield f"{path}: a set's items must be scalars"
    for rule in schema.get("x-kubernetes-validations", []):
        if not isinstance(rule, dict) or set(rule) != {"rule", "message"}:
            yield f"{path}: a CEL rule needs exactly a rule and a message: {rule!r}"
        elif not (str(rule["rule"]).strip() and str(rule["message"]).strip()):
            yield f"{path}: a CEL rule with an empty rule or message"
    if "default" in schema:
        try:
            jsonschema.validate(schema["default"], openapi_to_json_schema(schema))
        except jsonschema.ValidationError as error:
            yield f"{path}: default {schema['default']!r} is invalid: {error.message}"
    for name, sub in schema.get("properties", {}).items():
        yield from structural_problems(sub, f"{path}.{name}", root=False)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from structural_problems(schema["additionalProperties"], f"{path}.*", root=False)
    if isinstance(schema.get("items"), dict):
        yield from structural_problems(schema["items"], f"{path}[]", root=False)


def schema_at(schema: dict[str, Any], json_path: str) -> dict[str, Any]:
    """The sub-schema a simple `.a.b.c` JSONPath points at."""
    node = schema
    for part in json_path.strip(".").split("."):
        node = node["properties"][part]
    return node


def apply_defaults(instance: Any, schema: dict[str, Any]) -> Any:
    """Default `instance` the way the API server does: absent properties of present objects."""
    if isinstance(instance, dict) and "properties" in schema:
        defaulted = dict(instance)
        for name, sub in schema["properties"].items():
            if name not in defaulted and "default" in sub:
                defaulted[name] = copy.deepcopy(sub["default"])
            if name in defaulted:
                defaulted[name] = apply_defaults(defaulted[name], sub)
        return defaulted
    if isinstance(instance, list) and "items" in schema:
        return [apply_defaults(item, schema["items"]) for item in instance]
    return instance


def goal_documents() -> list[tuple[str, dict[str, Any]]]:
    """Every Goal in the samples and examples, with a name for the test id."""
    files = sorted((ROOT / "examples").rglob("*.yaml")) + sorted(
        (ROOT / "kustomize" / "samples").glob("*.yaml")
    )
    documents = []
    for path in files:
        for index, document in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if isinstance(document, dict) and document.get("kind") == "Goal":
                documents.append((f"{path.relative_to(ROOT)}#{index}", document))
    return documents


GOALS = goal_documents()

# ---------------------------------------------------------------------------------------------
# The committed files are what the models generate now.


@pytest.mark.parametrize("crd", all_crds(), ids=crd_file_name)
def test_committed_crd_is_what_the_models_generate(crd: dict[str, Any]) -> None:
    path = CRD_DIR / crd_file_name(crd)
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing: {REGENERATE}"
    assert path.read_text(encoding="utf-8") == render(crd), (
        f"{path.relative_to(ROOT)} is out of date with the pydantic models: {REGENERATE}"
    )


def test_committed_crd_kustomization_lists_exactly_the_crds() -> None:
    names = [crd_file_name(crd) for crd in all_crds()]
    path = CRD_DIR / "kustomization.yaml"
    assert path.read_text(encoding="utf-8") == render_kustomization(names), REGENERATE
    stray = {p.name for p in CRD_DIR.glob("*.yaml")} - {*names, "kustomization.yaml"}
    assert not stray, f"files in crds/ that no model generates any more: {sorted(stray)}"


def test_backlogctl_crds_writes_the_committed_files(tmp_path: Path) -> None:
    assert cli.main(["crds", "--output", str(tmp_path)]) == 0
    for written in tmp_path.iterdir():
        committed = CRD_DIR / written.name
        assert committed.read_text(encoding="utf-8") == written.read_text(encoding="utf-8")


def test_backlogctl_crds_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["crds", "--output", "-"]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert documents == all_crds()


def test_render_is_deterministic_and_sorted() -> None:
    text = render(goal_crd())
    assert text == render(goal_crd())
    assert text.startswith("# Generated"), "the header must say the file is generated"
    assert "make crds" in text.splitlines()[0]
    spec = yaml.safe_load(text)["spec"]
    assert list(spec) == sorted(spec)


# ---------------------------------------------------------------------------------------------
# The Goal CRD's shape.


def test_goal_crd_names_and_version() -> None:
    crd = goal_crd()
    assert crd["metadata"]["name"] == "goals.backlog.dev"
    spec = crd["spec"]
    assert spec["group"] == "backlog.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "Goal",
        "listKind": "GoalList",
        "plural": "goals",
        "singular": "goal",
        "shortNames": ["gl"],
        "categories": ["backlog-operator"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_goal_crd_printer_columns_point_at_real_fields() -> None:
    (version,) = goal_crd()["spec"]["versions"]
    columns = {column["name"]: column for column in version["additionalPrinterColumns"]}
    assert [name for name, column in columns.items() if not column.get("priority")] == [
        "Ready",
        "Phase",
        "Task",
        "PR",
        "Age",
    ]
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Phase"]["jsonPath"] == ".status.phase"
    # The status names the work for every goal, a free-form one too (its name).
    assert columns["Task"]["jsonPath"] == ".status.taskId"
    assert (columns["PR"]["jsonPath"], columns["PR"]["type"]) == (
        ".status.pullRequest.number",
        "integer",
    )
    assert (columns["Age"]["jsonPath"], columns["Age"]["type"]) == (
        ".metadata.creationTimestamp",
        "date",
    )
    schema = version["schema"]["openAPIV3Schema"]
    for column in columns.values():
        if column["jsonPath"].startswith(".metadata.") or "[?(" in column["jsonPath"]:
            continue
        target = schema_at(schema, column["jsonPath"])
        assert target["type"] == column["type"], column["name"]


@pytest.mark.parametrize(
    ("crd", "shown"),
    [
        (backlog_crd(), ["Ready", "Ready Tasks", "In Progress", "Commit", "Age"]),
        (goal_crd(), ["Ready", "Phase", "Task", "PR", "Age"]),
        (goal_schedule_crd(), ["Schedule", "Suspend", "Active", "Last Schedule", "Age"]),
    ],
    ids=["backlog", "goal", "goalschedule"],
)
def test_kubectl_get_shows_the_columns_of_its_kind(crd: dict[str, Any], shown: list[str]) -> None:
    (version,) = crd["spec"]["versions"]
    columns = version["additionalPrinterColumns"]
    assert [column["name"] for column in columns if not column.get("priority")] == shown
    # AGE last, as every built-in kind shows it; `-o wide`'s extra columns after it.
    assert [column["name"] for column in columns].index("Age") == len(shown) - 1


def test_the_category_is_no_name_of_any_kind() -> None:
    """kubectl expands a category before it looks for a resource: a category spelt like a
    kind's name (it was `backlog`) turns `kubectl get backlog NAME` into a get of every kind of
    the category ("you must specify only one resource")."""
    names = set()
    categories = set()
    for crd in all_crds():
        spec_names = crd["spec"]["names"]
        names |= {spec_names["plural"], spec_names["singular"], spec_names["kind"].lower()}
        names |= set(spec_names.get("shortNames", []))
        categories |= set(spec_names["categories"])
    assert categories == {"backlog-operator"}
    assert not categories & names


@pytest.mark.parametrize("crd", all_crds(), ids=crd_file_name)
def test_every_schema_is_structural(crd: dict[str, Any]) -> None:
    (version,) = crd["spec"]["versions"]
    problems = list(structural_problems(version["schema"]["openAPIV3Schema"]))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("crd", all_crds(), ids=crd_file_name)
def test_every_printer_column_points_at_a_field_of_its_type(crd: dict[str, Any]) -> None:
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert "status" in version["subresources"]
    for column in version.get("additionalPrinterColumns", []):
        path = column["jsonPath"]
        if path.startswith(".metadata.") or "[?(" in path:
            continue
        target = schema_at(schema, path)
        if column["type"] == "date":  # a printer "date" shows a date-time string as an age
            assert (target["type"], target.get("format")) == ("string", "date-time"), path
        else:
            assert target["type"] == column["type"], column["name"]


def schema_nodes(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every schema node (not property names, nor default values) in `schema`."""
    yield schema
    for sub in schema.get("properties", {}).values():
        yield from schema_nodes(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from schema_nodes(schema[key])


def test_goal_schema_has_no_pydantic_leftovers() -> None:
    for node in schema_nodes(goal_schema()):
        assert not {"$ref", "$defs", "title", "const", "nullable"} & set(node), node
        # The one anyOf the API server allows here is int-or-string's, as kubebuilder emits it.
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, node
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], node


def test_goal_schema_metadata_is_left_to_the_api_server() -> None:
    schema = goal_schema()
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["required"] == ["spec"]


def test_goal_schema_follows_the_models() -> None:
    spec = schema_at(goal_schema(), ".spec")
    assert spec["required"] == ["repository", "task"]
    assert spec["properties"]["pullRequest"]["properties"]["provider"]["enum"] == [
        "github",
        "none",
    ]
    assert spec["properties"]["task"]["properties"]["timeoutSeconds"]["maximum"] == 604800
    assert schema_at(goal_schema(), ".status.startTime") == {
        "description": "When the run started.",
        "format": "date-time",
        "type": "string",
    }
    # Only the operator writes the status, and kopf keeps nothing there (no change handlers):
    # neither spec nor status preserves unknown fields.
    assert "x-kubernetes-preserve-unknown-fields" not in json.dumps(spec)
    assert "x-kubernetes-preserve-unknown-fields" not in json.dumps(
        schema_at(goal_schema(), ".status")
    )


def test_goal_schema_descriptions_come_from_the_models() -> None:
    url = schema_at(goal_schema(), ".spec.repository.url")
    assert url["description"] == RepositorySpec.model_fields["url"].description
    # A field without a description of its own takes its model's docstring.
    assert schema_at(goal_schema(), ".spec.retry")["description"] == RetrySpec.__doc__


# ---------------------------------------------------------------------------------------------
# Samples and examples: the CRD and the models agree.


def test_there_are_samples_and_examples() -> None:
    names = [name for name, _ in GOALS]
    assert any(name.startswith("examples/goals/") for name in names)
    assert any(name.startswith("kustomize/samples/") for name in names)


@pytest.mark.parametrize(("name", "document"), GOALS, ids=[name for name, _ in GOALS])
def test_sample_is_valid_for_the_crd(name: str, document: dict[str, Any]) -> None:
    errors = [error.message for error in goal_validator().iter_errors(document)]
    assert not errors, f"{name}: {errors}"


@pytest.mark.parametrize(("name", "document"), GOALS, ids=[name for name, _ in GOALS])
def test_sample_is_valid_for_the_models(name: str, document: dict[str, Any]) -> None:
    Goal.model_validate(document)


@pytest.mark.parametrize(("name", "document"), GOALS, ids=[name for name, _ in GOALS])
def test_crd_defaults_agree_with_model_defaults(name: str, document: dict[str, Any]) -> None:
    defaulted = apply_defaults(document, goal_schema())
    assert goal_validator().is_valid(defaulted)
    assert Goal.model_validate(defaulted) == Goal.model_validate(document)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def mutate(document: dict[str, Any]) -> None:
        node = document
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def mutate(document: dict[str, Any]) -> None:
        node = document
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


BROKEN: dict[str, Callable[[dict[str, Any]], None]] = {
    "missing repository": _delete("spec.repository"),
    "missing task": _delete("spec.task"),
    "missing repository url": _delete("spec.repository.url"),
    "unknown provider": _set("spec.pullRequest.provider", "gitlab"),
    "task id with a space": _set("spec.backlog.taskId", "two words"),
    "empty command": _set("spec.task.command", []),
    "command is a string": _set("spec.task.command", "make docs"),
    "zero timeout": _set("spec.task.timeoutSeconds", 0),
    "too many attempts": _set("spec.retry.maxAttempts", 101),
    "secret without a name": _set("spec.repository.credentialsSecret", {"key": "token"}),
    "secret name in capitals": _set("spec.repository.credentialsSecret", {"name": "Token"}),
    "misspelt field": _set("spec.task.comand", ["true"]),
    "misspelt section": _set("spec.pullrequest", {"draft": True}),
    "draft is a string": _set("spec.pullRequest.draft", "yes please"),
    "empty image": _set("spec.task.image", ""),
    "quantity that is not one": _set("spec.task.resources", {"requests": {"cpu": "lots"}}),
    "negative quantity": _set("spec.task.resources", {"limits": {"memory": -1}}),
    "backlog path too long": _set("spec.backlog.path", "a/" * 600),
}


@pytest.mark.parametrize("mutation", list(BROKEN.values()), ids=list(BROKEN))
def test_broken_goal_is_refused_by_crd_and_models(
    mutation: Callable[[dict[str, Any]], None],
) -> None:
    _, sample = GOALS[0]
    document = copy.deepcopy(sample)
    mutation(document)
    assert not goal_validator().is_valid(document), "the CRD accepts it"
    with pytest.raises(ValidationError):
        Goal.model_validate(document)


def test_null_optional_field_is_pruned_not_rejected() -> None:
    """`taskId: null` means absent to the models; the CRD must not declare it otherwise.

    The API server prunes a null of a field that is not nullable before validating, so the
    schema must not list a null branch nor a `nullable` that would store the null.
    """
    task_id = schema_at(goal_schema(), ".spec.backlog.taskId")
    assert "nullable" not in task_id
    _, sample = GOALS[0]
    document = copy.deepcopy(sample)
    document["spec"]["backlog"]["taskId"] = None
    assert Goal.model_validate(document).spec.backlog.task_id is None


# ---------------------------------------------------------------------------------------------
# The generator itself, on constructs the Goal does not use yet (Backlog, GoalSchedule will).


class Colour(enum.StrEnum):
    """A colour."""

    RED = "red"
    BLUE = "blue"


class Inner(BaseModel):
    """The inner model's own description."""

    model_config = ConfigDict(extra="forbid")
    size: int = Field(default=1, gt=0, le=10)


class Loose(BaseModel):
    """Keeps what it does not know."""

    model_config = ConfigDict(extra="allow")
    known: str = "yes"


class Everything(BaseModel):
    """A spec with one of every construct."""

    quantity: int | str = Field(default="1", description="A quantity.")
    anything: Any = None
    free: dict[str, Any] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    tags: set[str] = Field(default_factory=set)
    colour: Colour = Colour.RED
    fixed: Literal["only"] = "only"
    inner: Inner | None = Field(default=None, description="The field's description wins.")
    loose: Loose = Field(default_factory=Loose)
    when: list[int] = Field(default_factory=list, max_length=3)


class Whole(BaseModel):
    """A whole test object."""

    api_version: str = Field(default="test.example/v1", alias="apiVersion")
    kind: str = "Whole"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: Everything


def test_generator_translates_each_construct() -> None:
    crd = crd_for(Whole, kind="Whole", plural="wholes", singular="whole", group="test.example")
    (version,) = crd["spec"]["versions"]
    assert "subresources" not in version, "no status field, no status subresource"
    schema = version["schema"]["openAPIV3Schema"]
    problems = list(structural_problems(schema))
    assert not problems, "\n".join(problems)
    spec = schema_at(schema, ".spec")["properties"]
    assert spec["quantity"] == {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "default": "1",
        "description": "A quantity.",
        "x-kubernetes-int-or-string": True,
    }
    assert spec["anything"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert spec["free"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert spec["counts"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert spec["tags"]["x-kubernetes-list-type"] == "set"
    assert spec["colour"] == {
        "default": "red",
        "description": "A colour.",
        "enum": ["red", "blue"],
        "type": "string",
    }
    assert spec["fixed"]["enum"] == ["only"]
    assert spec["inner"]["description"] == "The field's description wins."
    assert spec["inner"]["properties"]["size"] == {
        "default": 1,
        "exclusiveMinimum": True,
        "maximum": 10,
        "minimum": 0,
        "type": "integer",
    }
    assert spec["loose"]["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["when"]["maxItems"] == 3
    validator = jsonschema.Draft202012Validator(openapi_to_json_schema(schema))
    assert validator.is_valid({"spec": {"quantity": 2, "inner": {"size": 10}}})
    assert not validator.is_valid({"spec": {"quantity": 2.5}})
    assert not validator.is_valid({"spec": {"inner": {"size": 0}}})
    assert not validator.is_valid({"spec": {"tags": ["a", "a"]}})
    assert validator.is_valid({"spec": {"loose": {"unknown": [1]}}})


def test_generator_refuses_what_no_structural_schema_can_say() -> None:
    class Union(BaseModel):
        value: int | list[str]

    class Node(BaseModel):
        children: list[Node] = Field(default_factory=list)

    with pytest.raises(SchemaError, match="value"):
        structural_schema(Union.model_json_schema())
    with pytest.raises(SchemaError, match="refers to itself"):
        structural_schema(Node.model_json_schema())


def test_generator_needs_a_spec() -> None:
    class NoSpec(BaseModel):
        kind: str = "NoSpec"

    with pytest.raises(SchemaError, match="no spec"):
        crd_for(NoSpec, kind="NoSpec", plural="nospecs", singular="nospec")


def test_generator_keeps_cel_rules_and_merges_a_fields_with_its_models() -> None:
    class Ruled(BaseModel):
        model_config = ConfigDict(
            json_schema_extra={"x-kubernetes-validations": [{"rule": "a", "message": "A"}]}
        )
        size: int = 1

    class Holder(BaseModel):
        ruled: Ruled | None = Field(
            default=None,
            json_schema_extra={"x-kubernetes-validations": [{"rule": "b", "message": "B"}]},
        )

    schema = structural_schema(Holder.model_json_schema())
    assert schema["properties"]["ruled"]["x-kubernetes-validations"] == [
        {"rule": "a", "message": "A"},
        {"rule": "b", "message": "B"},
    ]


@pytest.mark.parametrize(
    "rules",
    [
        [{"rule": "self.x > 0"}],
        [{"rule": "self.x > 0", "message": " "}],
        [{"rule": "self.x > 0", "message": "x", "fieldPath": ".x"}],
        [],
    ],
)
def test_generator_refuses_a_rule_without_a_message(rules: list[JsonValue]) -> None:
    class Bad(BaseModel):
        x: int = Field(default=1, json_schema_extra={"x-kubernetes-validations": rules})

    with pytest.raises(SchemaError, match="x"):
        structural_schema(Bad.model_json_schema())
