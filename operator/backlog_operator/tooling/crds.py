"""CustomResourceDefinitions generated from the pydantic models (`backlogctl crds`, `make crds`).

The models in `backlog_operator.api` are the single source of truth for the custom resources.
This module turns a model's JSON schema into the *structural* OpenAPI v3 schema the API server
demands (no `$ref`, no `anyOf` of differing types, a type on every node, ...), wraps it into a
CustomResourceDefinition, and writes it as YAML. Anything the translation cannot express raises
`SchemaError` naming the field, rather than producing a CRD that is quietly looser than the model.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from backlog_operator.api.backlog import Backlog
from backlog_operator.api.common import GROUP, VERSION
from backlog_operator.api.goal import Goal
from backlog_operator.api.schedule import GoalSchedule

CRD_API_VERSION = "apiextensions.k8s.io/v1"

HEADER = (
    "# Generated from the pydantic models in backlog_operator.api by `make crds`\n"
    "# (`backlogctl crds --output crds`). Do not edit: change the models and regenerate.\n"
    "# Needs Kubernetes 1.29 or later: its CEL rules use the quantity library.\n"
)

# Fields every object has; the API server owns their schema, so a CRD only names them.
_OBJECT_FIELDS = ("apiVersion", "kind", "metadata")

# JSON-schema keywords kept as they are: the API server understands them with the same meaning.
_KEPT = frozenset(
    {
        "description",
        "type",
        "format",
        "enum",
        "default",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "required",
    }
)
# Keywords dropped on purpose: annotations the API server either refuses (`title` is allowed
# but only clutters `kubectl explain`) or has no notion of.
_DROPPED = frozenset({"title", "readOnly", "writeOnly", "deprecated", "$comment", "$schema"})

_SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean"})
_VALIDATIONS = "x-kubernetes-validations"
# What a rule may say. `reason`, `fieldPath` and `messageExpression` are left out on purpose: an
# API server older than 1.28 does not know them, and kubectl's strict field validation would
# then refuse the whole CRD.
_RULE_KEYS = frozenset({"rule", "message"})
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


class SchemaError(ValueError):
    """A model uses a construct that a structural OpenAPI v3 schema cannot express."""


@dataclass(frozen=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry: a column of `kubectl get`."""

    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    description: str = ""
    priority: int = 0
    format: str | None = None

    def to_crd(self) -> dict[str, Any]:
        """The column as the CRD spells it."""
        column: dict[str, Any] = {"name": self.name, "jsonPath": self.json_path, "type": self.type}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        if self.format:
            column["format"] = self.format
        return column


def structural_schema(json_schema: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a pydantic JSON schema (with its `$defs`) into a structural OpenAPI v3 schema.

    - `$ref`s are inlined; a field's own description and default win over its model's.
    - `X | None` loses its null branch. The API server prunes a null that the schema does not
      declare nullable, so `field: null` still means "absent", exactly as the model reads it.
    - `int | str` becomes `x-kubernetes-int-or-string`; `Any` and `dict[str, Any]` become
      `x-kubernetes-preserve-unknown-fields`; `extra="allow"` models keep unknown fields too.
    - `extra="forbid"` needs nothing: pruning drops unknown fields and kubectl's strict field
      validation reports them (the API server refuses `additionalProperties: false`).
    - `set[...]` becomes `x-kubernetes-list-type: set` (`uniqueItems` is refused).
    - `exclusiveMinimum: n` (JSON Schema) becomes `minimum: n, exclusiveMinimum: true` (OpenAPI).
    - `Literal` (`const`) becomes a one-value `enum`; titles are dropped.
    - `x-kubernetes-validations` (CEL rules, see `api/admission.py`) are kept, each with its
      message; a field's rules add to those of the model it refers to.
    """
    definitions = dict(json_schema.get("$defs", {}))
    body = {key: value for key, value in json_schema.items() if key != "$defs"}
    return _convert(body, definitions, path="", expanding=frozenset())


def _resolve(
    node: Mapping[str, Any], definitions: Mapping[str, Any], path: str, expanding: frozenset[str]
) -> tuple[dict[str, Any], frozenset[str]]:
    """Inline `$ref`, single-member `allOf` and the union forms until none is left at the top."""
    node = dict(node)
    while True:
        if "$ref" in node:
            name = str(node.pop("$ref")).rpartition("/")[2]
            if name in expanding:
                raise SchemaError(
                    f"{path or '(root)'}: {name} refers to itself; "
                    "a structural schema cannot recurse"
                )
            if name not in definitions:
                raise SchemaError(f"{path or '(root)'}: unknown reference {name}")
            expanding = expanding | {name}
            # The referring field's own keywords (description, default) override the model's.
            node = _merged(definitions[name], node)
        elif "allOf" in node and len(node["allOf"]) == 1:
            (only,) = node.pop("allOf")
            node = _merged(only, node)
        elif "anyOf" in node or "oneOf" in node:
            key = "anyOf" if "anyOf" in node else "oneOf"
            branches = [branch for branch in node.pop(key) if branch != {"type": "null"}]
            if len(branches) == 1:
                node = _merged(branches[0], node)
            elif branches == _INT_OR_STRING or branches == _INT_OR_STRING[::-1]:
                node = {**node, "x-kubernetes-int-or-string": True, "anyOf": _INT_OR_STRING}
                return node, expanding
            else:
                raise SchemaError(
                    f"{path or '(root)'}: a union of {len(branches)} kinds of value has no "
                    "structural schema (only `X | None` and `int | str` have)"
                )
        else:
            return node, expanding


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override`'s keywords over `base`'s, except CEL rules: a field's rules add to those of the
    model it refers to, so that neither is lost."""
    merged = {**base, **override}
    rules = [*base.get(_VALIDATIONS, []), *override.get(_VALIDATIONS, [])]
    if rules:
        merged[_VALIDATIONS] = rules
    return merged


def _checked_rules(rules: Any, where: str) -> list[dict[str, str]]:
    """The CEL rules of a node, each with a rule and a message for people."""
    if not isinstance(rules, list) or not rules:
        raise SchemaError(f"{where}: {_VALIDATIONS} must be a non-empty list")
    for rule in rules:
        if not isinstance(rule, Mapping) or set(rule) != _RULE_KEYS:
            raise SchemaError(f"{where}: each CEL rule has exactly a rule and a message")
        if not all(isinstance(rule[key], str) and rule[key].strip() for key in _RULE_KEYS):
            raise SchemaError(f"{where}: a CEL rule's rule and message must be non-empty text")
    return [dict(rule) for rule in rules]


def _convert(
    node: Mapping[str, Any], definitions: Mapping[str, Any], path: str, expanding: frozenset[str]
) -> dict[str, Any]:
    """Convert one schema node (and, recursively, its children)."""
    node, expanding = _resolve(node, definitions, path, expanding)
    where = path or "(root)"
    result: dict[str, Any] = {}
    if node.get("default", ...) is None:
        # `X | None = None`: the model's "absent", which the pruned null already says.
        del node["default"]
    for key, value in node.items():
        result.update(_convert_keyword(key, value, node, where))
    _convert_children(node, result, definitions, path, expanding)
    return result


def _convert_keyword(key: str, value: Any, node: Mapping[str, Any], where: str) -> dict[str, Any]:
    """What one keyword of `node` becomes in the structural schema: nothing when it is dropped,
    or its children, which `_convert_children` converts."""
    if key == _VALIDATIONS:
        return {key: _checked_rules(value, where)}
    if key in _KEPT or key.startswith("x-kubernetes-"):
        return {key: value}
    if key in _DROPPED or key in {"properties", "additionalProperties", "items"}:
        return {}
    if key == "anyOf" and node.get("x-kubernetes-int-or-string"):
        # The one junctor a structural schema may type inside (see _resolve).
        return {key: value}
    if key == "const":
        return {"enum": [value]}
    if key == "examples":
        return {"example": value[0]} if value else {}
    if key in {"exclusiveMinimum", "exclusiveMaximum"}:
        if isinstance(value, bool):
            return {key: value}
        return {"minimum" if key == "exclusiveMinimum" else "maximum": value, key: True}
    if key == "uniqueItems":
        if not value:
            return {}
        if node.get("items", {}).get("type") not in _SCALAR_TYPES:
            raise SchemaError(f"{where}: only a set of scalars has a structural schema")
        return {"x-kubernetes-list-type": "set"}
    raise SchemaError(f"{where}: JSON-schema keyword {key!r} has no structural equivalent")


def _convert_children(
    node: Mapping[str, Any],
    result: dict[str, Any],
    definitions: Mapping[str, Any],
    path: str,
    expanding: frozenset[str],
) -> None:
    """Fill `result` by the node's type: an object's properties, an array's items, or, with no
    type, any value."""
    where = path or "(root)"
    kind = node.get("type")
    if isinstance(kind, list):
        raise SchemaError(f"{where}: a list of types {kind!r} has no structural schema")
    if kind == "null":
        raise SchemaError(f"{where}: a field that can only be null has no structural schema")
    if kind == "object":
        _convert_object(node, result, definitions, path, expanding)
    elif kind == "array":
        if "items" not in node:
            raise SchemaError(f"{where}: an array needs a type for its items")
        result["items"] = _convert(node["items"], definitions, f"{path}[]", expanding)
    elif kind is None and not result.get("x-kubernetes-int-or-string"):
        # `Any`: any JSON value, which only preserve-unknown-fields allows without a type.
        result["x-kubernetes-preserve-unknown-fields"] = True


def _convert_object(
    node: Mapping[str, Any],
    result: dict[str, Any],
    definitions: Mapping[str, Any],
    path: str,
    expanding: frozenset[str],
) -> None:
    """Fill `result` with the properties and the unknown-field policy of an object node."""
    where = path or "(root)"
    properties = node.get("properties")
    extra = node.get("additionalProperties")
    if properties is not None:
        result["properties"] = {
            name: _convert(schema, definitions, f"{path}.{name}".lstrip("."), expanding)
            for name, schema in properties.items()
        }
    if extra is True or extra == {}:
        # `extra="allow"`, `dict[str, Any]`: keep whatever is there.
        result["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(extra, Mapping):
        if properties:
            raise SchemaError(
                f"{where}: properties and a typed additionalProperties cannot be combined "
                "in a structural schema"
            )
        result["additionalProperties"] = _convert(extra, definitions, f"{path}.*", expanding)


def crd_for(
    model: type[BaseModel],
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: Sequence[str] = (),
    categories: Sequence[str] = (),
    printer_columns: Sequence[PrinterColumn] = (),
    group: str = GROUP,
    version: str = VERSION,
    scope: Literal["Namespaced", "Cluster"] = "Namespaced",
    description: str | None = None,
) -> dict[str, Any]:
    """A CustomResourceDefinition for `model`, a whole-object model with `spec` (and `status`).

    The model's own `apiVersion`, `kind` and `metadata` fields are replaced by the standard ones
    (the API server owns them); every other field becomes a property of the schema, converted
    by `structural_schema`. A `status` field turns on the status subresource, so that only the
    operator (through `/status`) writes it and a spec change bumps `metadata.generation`.
    """
    source = model.model_json_schema(by_alias=True, mode="validation")
    fields = {
        name: schema
        for name, schema in source.get("properties", {}).items()
        if name not in _OBJECT_FIELDS
    }
    if "spec" not in fields:
        raise SchemaError(f"{model.__name__} has no spec field")
    schema = _object_schema(
        source, fields, description=description or (model.__doc__ or kind).strip()
    )
    served: dict[str, Any] = {
        "name": version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
    }
    if printer_columns:
        served["additionalPrinterColumns"] = [column.to_crd() for column in printer_columns]
    if "status" in fields:
        served["subresources"] = {"status": {}}
    return {
        "apiVersion": CRD_API_VERSION,
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": _names(kind, plural, singular, short_names, categories),
            "scope": scope,
            "versions": [served],
        },
    }


def _object_schema(
    source: Mapping[str, Any], fields: Mapping[str, Any], *, description: str
) -> dict[str, Any]:
    """The `openAPIV3Schema` of a whole object: the standard `apiVersion`, `kind` and
    `metadata`, then `fields` (the model's own, from its JSON schema `source`) converted."""
    properties: dict[str, Any] = {
        "apiVersion": {
            "description": "The versioned schema of this representation of an object.",
            "type": "string",
        },
        "kind": {"description": "The REST resource this object represents.", "type": "string"},
        "metadata": {"type": "object"},
    }
    for name, field_schema in fields.items():
        properties[name] = structural_schema({**field_schema, "$defs": source.get("$defs", {})})
    schema: dict[str, Any] = {
        "description": description,
        "type": "object",
        "properties": properties,
    }
    required = [name for name in source.get("required", []) if name in fields]
    if required:
        schema["required"] = required
    return schema


def _names(
    kind: str,
    plural: str,
    singular: str,
    short_names: Sequence[str],
    categories: Sequence[str],
) -> dict[str, Any]:
    """The CRD's `spec.names`."""
    names: dict[str, Any] = {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": singular,
    }
    if short_names:
        names["shortNames"] = list(short_names)
    if categories:
        names["categories"] = list(categories)
    return names


# The category `kubectl get backlog-operator` lists every kind by. It must differ from every
# kind's plural, singular and short names: kubectl expands a category before it looks for a
# resource, so a category named `backlog` made `kubectl get backlog NAME` ask for a Goal and a
# GoalSchedule of that name too ("you must specify only one resource").
CATEGORY = "backlog-operator"

# `kubectl get`'s columns. The API server shows a `date` column as an age, as AGE is shown.
AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")
READY = PrinterColumn(
    "Ready",
    '.status.conditions[?(@.type=="Ready")].status',
    "string",
    "The Ready condition's status.",
)


def goal_crd() -> dict[str, Any]:
    """The CustomResourceDefinition of `Goal` (`goals.backlog.dev`)."""
    return crd_for(
        Goal,
        kind="Goal",
        plural="goals",
        singular="goal",
        short_names=["gl"],
        categories=[CATEGORY],
        description=(
            "A Goal is one unit of work: a task of a repository's backlog, run as a Kubernetes "
            "Job (clone, task, publish) that ends in a pull request marking the task completed."
        ),
        printer_columns=[
            READY,
            PrinterColumn("Phase", ".status.phase", "string", "Where the goal is in its life."),
            PrinterColumn(
                "Task",
                ".status.taskId",
                "string",
                "The backlog task's id (the goal's name for a free-form goal).",
            ),
            PrinterColumn(
                "PR", ".status.pullRequest.number", "integer", "The pull request's number."
            ),
            AGE,
            PrinterColumn("Attempts", ".status.attempts", "integer", "Attempts so far.", 1),
            PrinterColumn("Reason", ".status.reason", "string", "Why the goal is in its phase.", 1),
            PrinterColumn("PR URL", ".status.pullRequest.url", "string", "Its web address.", 1),
        ],
    )


def backlog_crd() -> dict[str, Any]:
    """The CustomResourceDefinition of `Backlog` (`backlogs.backlog.dev`)."""
    return crd_for(
        Backlog,
        kind="Backlog",
        plural="backlogs",
        singular="backlog",
        short_names=["bl"],
        categories=[CATEGORY],
        description=(
            "A Backlog is a repository's backlog file, synced on an interval: the operator "
            "reports its tasks and creates one Goal per selected task, within limits."
        ),
        printer_columns=[
            READY,
            PrinterColumn("Ready Tasks", ".status.readyCount", "integer", "Selectable now."),
            PrinterColumn("In Progress", ".status.inProgressCount", "integer", "Being worked on."),
            PrinterColumn("Commit", ".status.shortCommit", "string", "Branch tip read last."),
            AGE,
            PrinterColumn(
                "Completed", ".status.counts.completed", "integer", "Done in the file.", 1
            ),
            PrinterColumn("Last Sync", ".status.lastSyncTime", "date", "The last sync.", 1),
        ],
    )


def goal_schedule_crd() -> dict[str, Any]:
    """The CustomResourceDefinition of `GoalSchedule` (`goalschedules.backlog.dev`)."""
    return crd_for(
        GoalSchedule,
        kind="GoalSchedule",
        plural="goalschedules",
        singular="goalschedule",
        short_names=["gs"],
        categories=[CATEGORY],
        description="A GoalSchedule stamps a Goal from its template on a cron, as CronJob does.",
        printer_columns=[
            PrinterColumn("Schedule", ".spec.schedule", "string"),
            PrinterColumn("Suspend", ".spec.suspend", "boolean"),
            PrinterColumn("Active", ".status.activeCount", "integer", "Goals not finished."),
            PrinterColumn("Last Schedule", ".status.lastScheduleTime", "date", "Last tick."),
            AGE,
            PrinterColumn(
                "Last Success", ".status.lastSuccessfulTime", "date", "A Goal last succeeded.", 1
            ),
        ],
    )


def all_crds() -> list[dict[str, Any]]:
    """Every CustomResourceDefinition of the project, in a stable order."""
    return [backlog_crd(), goal_crd(), goal_schedule_crd()]


def crd_file_name(crd: Mapping[str, Any]) -> str:
    """`<plural>.<group>.yaml`, the file a CRD is written to."""
    return f"{crd['metadata']['name']}.yaml"


def _yaml() -> YAML:
    dumper = YAML()
    dumper.default_flow_style = False
    # One line per description: a reworded sentence then changes one line of the diff, not a
    # whole re-folded paragraph.
    dumper.width = 4096
    dumper.indent(mapping=2, sequence=2, offset=0)
    return dumper


def _sorted(value: Any) -> Any:
    """Sort mapping keys (at every depth) so the output only changes when the models do.

    List order is kept: in enums, `required`, printer columns and versions it is meaningful.
    Multi-line strings become literal blocks, readable as written.
    """
    if isinstance(value, Mapping):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


def render(crd: Mapping[str, Any]) -> str:
    """The CRD as the YAML text committed under `crds/`: header comment, sorted keys."""
    stream = io.StringIO()
    stream.write(HEADER)
    _yaml().dump(_sorted(crd), stream)
    return stream.getvalue()


def render_kustomization(file_names: Iterable[str]) -> str:
    """A kustomization listing the CRD files, so other kustomizations can use the folder.

    Kustomize refuses to load a *file* outside a kustomization's root, but it may load another
    kustomization *folder* anywhere: this is how `kustomize/crd` uses `crds/` without a copy.
    """
    stream = io.StringIO()
    stream.write(HEADER)
    _yaml().dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": sorted(file_names),
        },
        stream,
    )
    return stream.getvalue()


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD and the folder's kustomization into `directory`; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    names = []
    for crd in all_crds():
        name = crd_file_name(crd)
        names.append(name)
        written.append(directory / name)
        written[-1].write_text(render(crd), encoding="utf-8")
    kustomization = directory / "kustomization.yaml"
    kustomization.write_text(render_kustomization(names), encoding="utf-8")
    written.append(kustomization)
    return written


def openapi_to_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) that accepts what the API server would store.

    For validating manifests offline (tests, emulators) with `jsonschema`:
    - objects with properties and no `x-kubernetes-preserve-unknown-fields` refuse unknown
      fields, as kubectl's default strict field validation does;
    - `x-kubernetes-int-or-string` keeps its `anyOf`; `x-kubernetes-list-type: set` becomes
      `uniqueItems`; boolean `exclusiveMinimum`/`exclusiveMaximum` become numbers;
    - `nullable: true` adds `null` to the type.
    The API server prunes nulls of non-nullable fields before validating; prune them from an
    instance first where that matters.
    """
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            converted[key] = {name: openapi_to_json_schema(sub) for name, sub in value.items()}
        elif key in {"items", "additionalProperties"} and isinstance(value, Mapping):
            converted[key] = openapi_to_json_schema(value)
        elif key in {"anyOf", "allOf", "oneOf"}:
            converted[key] = [openapi_to_json_schema(sub) for sub in value]
        elif key == "not":
            converted[key] = openapi_to_json_schema(value)
        elif key in {"exclusiveMinimum", "exclusiveMaximum"}:
            if value is True:
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                converted[key] = schema[bound]
        elif key == "x-kubernetes-list-type" and value == "set":
            converted["uniqueItems"] = True
        elif key == "nullable" or key.startswith("x-kubernetes-") or key == "example":
            continue
        else:
            converted[key] = value
    if schema.get("exclusiveMinimum") is True:
        converted.pop("minimum", None)
    if schema.get("exclusiveMaximum") is True:
        converted.pop("maximum", None)
    if schema.get("nullable") and "type" in converted:
        converted["type"] = [converted["type"], "null"]
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        converted["additionalProperties"] = False
    return converted


def main(args: argparse.Namespace) -> int:
    """`backlogctl crds --output DIR|-`: write the CRDs into DIR, or all of them to stdout."""
    output = str(args.output)
    if output == "-":
        sys.stdout.write("---\n".join(render(crd) for crd in all_crds()))
        return 0
    for path in write_crds(Path(output)):
        print(f"wrote {path}")
    if args.reference:
        # Imported here: the reference is made from the CRDs, so it imports this module.
        from backlog_operator.tooling.reference import reference_markdown

        Path(args.reference).write_text(reference_markdown() + "\n", encoding="utf-8")
        print(f"wrote {args.reference}")
    return 0
