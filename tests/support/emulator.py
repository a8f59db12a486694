"""A Kubernetes API emulator hardened for operator tests, served over real HTTP on 127.0.0.1.

`HardenedEmulator` subclasses kmock's `KubernetesEmulator` and restores the API-server
behaviours kopf, the official client and kubectl rely on (each fix names the behaviour it
restores in a comment):

1. create answers 201 Created with the stored object;
2. server-set metadata: uid, resourceVersion, creationTimestamp, generation (bumped on spec
   changes only), generateName, the namespace taken from the URL;
3. namespaces are an ordinary cluster-scoped resource (`GET /api/v1/namespaces` works);
4. JSON patches (RFC 6902, with `test`) apply to objects that carry a resourceVersion; a failed
   `test` answers 422, as kopf expects from the API server;
5. lists carry kind/apiVersion/resourceVersion, watches stream `application/json`, discovery
   reports the core group as `v1`, subresources carry no short names, PUT replaces,
   server-side apply creates a missing object;
6. a watch subscribes atomically with its snapshot and resumes from `?resourceVersion=`
   (410 Expired once that is older than the kept history), so no event between a list and its
   watch is lost;
7. `/status` is a real subresource, a stale resourceVersion answers 409 Conflict, label
   selectors (equality- and set-based) and field selectors filter lists and watches; lists
   are paged (`?limit=`, `?continue=`) as the API server pages them, so a client that lists
   10,000 objects 500 at a time holds one page at once here too.

Also: custom resources are pruned, defaulted and validated against their CRD's
openAPIV3Schema (422 Invalid; 400 for unknown fields with `fieldValidation=Strict`), names,
labels and ownerReferences are validated, a CRD stored through the API (`kubectl apply -f
crd.yaml`) is served at once, and a minimal OpenAPI v3 index lets kubectl validate on the
server, so `kubectl create -f`/`apply` work without `--validate=false`. Serving a request costs
the same however many objects are stored and requests were served before it (kmock's own
matching re-scans every past request; see `HardenedEmulator`). A write that changes nothing
(empty metadata maps are not stored, as ObjectMeta's are `omitempty`) keeps the resourceVersion
and sends no event; a strategic-merge patch of a built-in merges lists by the official schema's
merge keys and applies its directives; every response has its own content type (kmock kept a
`pods/log` answer's text/plain for later object GETs; `follow=true` streams lines appended with
`append_pod_log` while the container's status says it runs). `kubectl get` of a custom resource gets
the Table it asks for (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): Name, then the
CRD's printer columns (or the default Age) evaluated by JSONPath, a `date` shown as an age,
rows with the object's metadata (`?includeObject=`), one Table per event on a watch (`kubectl
get -w`); built-in kinds answer the object itself, so kubectl shows their NAME and AGE only.

Opt-in strictness, off by default (switch it on per test; see each for details):

- ``HardenedEmulator(strict_validation=True)`` (or set the attribute): built-in kinds are
  decoded and validated as the API server does: the official schemas of the advertised
  version (`SERVER_VERSION`) from `kubernetes-validate` (wrong types, malformed quantities or
  times: 400 "cannot be handled as a Job"; unknown fields dropped with a ``Warning`` header, or
  400 with ``fieldValidation=Strict``; quantities stored canonically), then the API server's
  own rules for Jobs, Pods and Events (`_BUILTIN_CHECKS`: images, container and volume names,
  requests within limits, restartPolicy, immutable Job templates and Pod specs, event
  namespaces) and ObjectMeta's annotation size and label-key prefixes: 422 Invalid with
  ``details.causes[].field``.
- ``emulator.enable_rbac(RbacPolicy.from_kustomize("kustomize/rbac", role=...))``: every HTTP
  request not sent to `EmulatorServer.admin_url` (kubectl ``admin=True``, the kubeconfig's
  "emulator-admin" context) is authorized against the role, 403 Forbidden as the API server
  words it (`tests.support.rbac`); optionally with OwnerReferencesPermissionEnforcement.
- ``emulator.faults.add(verb="create", resource="jobs", status=500, times=1)``: chosen HTTP
  requests answer an error status, wait, or lose their connection (`tests.support.faults`).

`EmulatorServer` runs it on 127.0.0.1 in a background thread with its own event loop, usable
from synchronous tests, and writes a kubeconfig for kubectl and the official client::

    with EmulatorServer() as server:
        server.emulator.register_crd(GOAL_CRD)
        server.kubectl("apply", "-f", "goal.yaml")
        goal = server.emulator.get_object("backlog.dev/v1alpha1/goals", "default", "g1")

Never emulated (assert around them instead): garbage collection by ownerReferences,
namespace deletion cascading to its content, server-side apply field ownership (an apply to an
existing object is a merge patch), `dryRun`, managedFields, periodic watch bookmarks, admission
(but OwnerReferencesPermissionEnforcement with RBAC), defaulting of built-ins (a Job gets no
generated selector, backoffLimit or template labels), the API server's validation beyond
`_BUILTIN_CHECKS` (e.g. probes, security contexts, affinity), authentication (identity is by
port), OpenAPI schemas (`kubectl explain`), protobuf (typed kubectl commands such as `kubectl
create namespace` get 415), table output of built-in kinds, CEL validation rules, pagination
of a Table (`kubectl get` gets every row at once), deleting a CRD's objects with it, and
controllers: Jobs never run; tests move Job and Pod status themselves with `start_job`,
`finish_pod`, `complete_job` or `patch_status`.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import contextvars
import copy
import dataclasses
import datetime
import decimal
import functools
import hashlib
import json
import random
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import jsonschema
import kmock
import kubernetes_validate
import referencing
import yaml
from kmock._internal import enums, parsing, rendering

from tests.support.faults import Fault, FaultInjector
from tests.support.rbac import (
    ADMIN_TOKEN,
    RbacPolicy,
    RequestAttributes,
    forbidden_error,
    request_attributes,
)

__all__ = [
    "BUILTIN_RESOURCES",
    "KOPF_PEERING_CRDS",
    "EmulatorServer",
    "HardenedEmulator",
    "ResourceRef",
    "load_crds_from_dir",
    "running_emulator",
]

# A resource as tests name it: "backlog.dev/v1alpha1/goals", "v1/pods", "batch/v1/jobs",
# or a `kmock.resource(...)`.
ResourceRef = str | kmock.resource
Json = dict[str, Any]
_T = TypeVar("_T")

# (apiVersion, plural, kind, namespaced, short names, subresources, categories): the built-in
# kinds the operator and kopf touch (validated against official schemas: `strict_validation`).
BUILTIN_RESOURCES: tuple[
    tuple[str, str, str, bool, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...
] = (
    ("v1", "namespaces", "Namespace", False, ("ns",), ("status", "finalize"), ()),
    ("v1", "events", "Event", True, ("ev",), (), ()),
    ("v1", "pods", "Pod", True, ("po",), ("status", "log"), ("all",)),
    ("v1", "secrets", "Secret", True, (), (), ()),
    ("v1", "configmaps", "ConfigMap", True, ("cm",), (), ()),
    ("v1", "serviceaccounts", "ServiceAccount", True, ("sa",), (), ()),
    ("events.k8s.io/v1", "events", "Event", True, ("ev",), (), ()),
    ("batch/v1", "jobs", "Job", True, (), ("status",), ("all",)),
    ("coordination.k8s.io/v1", "leases", "Lease", True, (), (), ()),
    (
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        ("status",),
        ("api-extensions",),
    ),
)


def _peering_crd(kind: str, plural: str, scope: str) -> Json:
    # The shape kopf documents for its peering CRDs: no status subresource, status kept as is.
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kopf.dev"},
        "spec": {
            "scope": scope,
            "group": "kopf.dev",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


# kopf's own peering CRDs (one active operator among replicas); registered by default.
KOPF_PEERING_CRDS: tuple[Json, ...] = (
    _peering_crd("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
    _peering_crd("KopfPeering", "kopfpeerings", "Namespaced"),
)

_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_SUBRESOURCE_VERBS = {"status": ("get", "patch", "update"), "log": ("get",)}
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_GENERATED_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the API server's generateName alphabet
_SERVER_OWNED_META = (
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
_INITIAL_STATUS: dict[tuple[str, str], Json] = {
    # What the built-in registries' PrepareForCreate set, for the kinds tests look at.
    ("", "namespaces"): {"phase": "Active"},
    ("", "pods"): {"phase": "Pending"},
}
# Kinds whose names must be DNS labels (63 characters at most), not just DNS subdomains.
_LABEL_NAMED = {("", "namespaces"), ("batch", "jobs")}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _api_version(res: kmock.resource) -> str:
    return f"{res.group}/{res.version}" if res.group else str(res.version)


def _container_running(pod: Json, container: str | None) -> bool:
    """Whether the Pod's status says the container (any, when None) is running."""
    status = pod.get("status") or {}
    statuses = [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]
    return any(
        "running" in (entry.get("state") or {})
        for entry in statuses
        if container is None or entry.get("name") == container
    )


def _as_resource(ref: ResourceRef) -> kmock.resource:
    res = ref if isinstance(ref, kmock.resource) else kmock.resource(ref)
    if res.group is None or res.version is None or res.plural is None:
        raise ValueError(f"Not a specific resource (group/version/plural): {ref!r}")
    return res


# Pods: their logs' followers wait on the Pods' wake-up (a log written, a status changed).
_PODS = _as_resource("v1/pods")


def _version_rank(version: str) -> tuple[int, int, int]:
    # Kubernetes version priority: GA before beta before alpha, higher numbers first.
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0)
    stage = {"alpha": 2, "beta": 1, None: 0}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0))


# --------------------------------------------------------------------------------------------
# Errors, shaped as the API server's `Status` objects.
# --------------------------------------------------------------------------------------------


def _error(code: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=code, reason=reason, message=message, details=details)


def _not_found(res: kmock.resource, name: str | None) -> kmock.KubernetesError:
    what = f"{res.plural}.{res.group}" if res.group else str(res.plural)
    return _error(
        404,
        "NotFound",
        f'{what} "{name}" not found',
        name=name,
        group=res.group,
        kind=res.plural,
    )


def _unknown_resource() -> kmock.KubernetesError:
    return _error(404, "NotFound", "the server could not find the requested resource")


def _conflict(res: kmock.resource, name: str) -> kmock.KubernetesError:
    what = f"{res.plural}.{res.group}" if res.group else str(res.plural)
    return _error(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {what} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        name=name,
        group=res.group,
        kind=res.plural,
    )


def _bad_request(message: str) -> kmock.KubernetesError:
    return _error(400, "BadRequest", message)


def _page(items: list[Json], rv: str, limit: str | None, token: str | None) -> dict[str, Any]:
    """One page of a list (pagination: `?limit=` and `?continue=`), as the API server pages:
    items in key order (namespace, then name), at most `limit` of them, and a `continue` token
    while more follow; every page says the resourceVersion of the first, the one a watch
    resumes from after the last. Unlike the API server's (a consistent snapshot at that
    version), a later page is read from the objects as they are then. A token that is not one
    this emulator gave answers 400, as a malformed one does."""
    after: list[str] | None = None
    if token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            rv, after = str(decoded["rv"]), [str(part) for part in decoded["after"]]
        except (ValueError, KeyError, TypeError) as error:
            raise _bad_request(f"continue key is not valid: {error}") from None
    if after is not None:
        start = next((i for i, item in enumerate(items) if _list_key(item) > after), len(items))
        items = items[start:]
    metadata: dict[str, Any] = {"resourceVersion": rv}
    size = int(limit) if limit and limit.isdigit() else 0
    if 0 < size < len(items):
        items = items[:size]
        last = json.dumps({"rv": rv, "after": _list_key(items[-1])}).encode()
        metadata["continue"] = base64.urlsafe_b64encode(last).decode()
    return {"metadata": metadata, "items": items}


def _list_key(item: Mapping[str, Any]) -> list[str]:
    metadata = item.get("metadata") or {}
    return [metadata.get("namespace") or "", str(metadata.get("name"))]


@dataclasses.dataclass(frozen=True)
class _Cause:
    field: str
    reason: str
    message: str


def _invalid(
    kind: str, group: str, name: str | None, causes: Sequence[_Cause]
) -> kmock.KubernetesError:
    # The API server's 422 Invalid: "Kind.group "name" is invalid: field: message, ...".
    qualified = f"{kind}.{group}" if group else kind
    texts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return _error(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {joined}',
        name=name,
        group=group,
        kind=kind,
        causes=[{"reason": c.reason, "message": c.message, "field": c.field} for c in causes],
    )


# --------------------------------------------------------------------------------------------
# Patches and selectors.
# --------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch: dicts merge, ``None`` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclasses.dataclass(frozen=True)
class _Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case _:
                return not present


def _split_terms(text: str) -> list[str]:
    # Commas separate requirements, except inside the parentheses of set-based ones.
    terms, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term.strip() for term in terms if term.strip()]


def parse_label_selector(text: str) -> list[_Requirement]:
    """Parse a label selector, equality-based (``a=b``, ``a!=b``) and set-based (``a in (b,c)``,
    ``a notin (b)``, ``a``, ``!a``), as the API server accepts it; 400 on anything else."""
    result: list[_Requirement] = []
    for term in _split_terms(text):
        if m := re.fullmatch(r"([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            result.append(_Requirement(m.group(1), m.group(2), values))
        elif m := re.fullmatch(r"!\s*([^\s!=(),]+)", term):
            result.append(_Requirement(m.group(1), "!"))
        elif m := re.fullmatch(r"([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)", term):
            op = "!=" if m.group(2) == "!=" else "="
            result.append(_Requirement(m.group(1), op, frozenset({m.group(3)})))
        elif re.fullmatch(r"[^\s!=(),]+", term):
            result.append(_Requirement(term, "exists"))
        else:
            raise _bad_request(f"unable to parse requirement: {term!r}")
    return result


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def parse_field_selector(text: str) -> list[tuple[str, str, str]]:
    """Parse a field selector (``metadata.name=x``, ``status.phase!=Running``) into triples."""
    result = []
    for term in _split_terms(text):
        m = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)", term)
        if not m:
            raise _bad_request(f"invalid field selector: {term!r}")
        result.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3).strip()))
    return result


@dataclasses.dataclass(frozen=True)
class _Filter:
    namespace: str | None = None
    name: str | None = None
    labels: tuple[_Requirement, ...] = ()
    fields: tuple[tuple[str, str, str], ...] = ()

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        labels = meta.get("labels") or {}
        if not all(req.matches(labels) for req in self.labels):
            return False
        for path, op, value in self.fields:
            if (_field_value(obj, path) == value) != (op == "="):
                return False
        return True


# --------------------------------------------------------------------------------------------
# CustomResourceDefinition schemas: prune, default, validate.
# --------------------------------------------------------------------------------------------


def _to_json_schema(schema: Any) -> Any:
    # OpenAPI v3.0's `nullable: true` is JSON Schema's "or null"; the rest of a structural
    # schema is draft-4 compatible (unknown `x-kubernetes-*` keywords are ignored).
    if isinstance(schema, list):
        return [_to_json_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    result = {key: _to_json_schema(value) for key, value in schema.items()}
    if result.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
        if "enum" in result:
            result["enum"] = [*result["enum"], None]
    return result


def _prune_and_default(value: Any, schema: Mapping[str, Any], *, root: bool = False) -> Any:
    """Drop fields the structural schema does not declare and fill declared defaults, as the
    API server does for custom resources before validating and storing them."""
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get(
            "x-kubernetes-embedded-resource"
        )
        result = {}
        for key, item in value.items():
            if root and key in ("apiVersion", "kind", "metadata"):
                result[key] = item
            elif key in props:
                result[key] = _prune_and_default(item, props[key])
            elif isinstance(additional, Mapping):
                result[key] = _prune_and_default(item, additional)
            elif additional is True or preserve:
                result[key] = item
        for key, sub in props.items():
            if key not in result and isinstance(sub, Mapping) and "default" in sub:
                result[key] = _prune_and_default(copy.deepcopy(sub["default"]), sub)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_prune_and_default(item, schema["items"]) for item in value]
    return value


def _unknown_fields(value: Any, pruned: Any, path: str = "") -> list[str]:
    # The fields pruning removed, for `fieldValidation=Strict` (the API server's 400).
    if isinstance(value, dict) and isinstance(pruned, dict):
        found = []
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key not in pruned:
                found.append(where)
            else:
                found += _unknown_fields(item, pruned[key], where)
        return found
    if isinstance(value, list) and isinstance(pruned, list):
        return [
            f
            for i, (a, b) in enumerate(zip(value, pruned, strict=False))
            for f in _unknown_fields(a, b, f"{path}[{i}]")
        ]
    return []


_JSON_TYPES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _schema_causes(
    validator: jsonschema.protocols.Validator, obj: Mapping[str, Any]
) -> list[_Cause]:
    causes = []
    body = {key: value for key, value in obj.items() if key != "metadata"}
    errors = validator.iter_errors(body)
    for err in sorted(errors, key=lambda e: [str(part) for part in e.absolute_path]):
        field = ""
        for part in err.absolute_path:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        if err.validator == "required":
            missing = re.findall(r"'([^']+)' is a required property", err.message)
            name = missing[0] if missing else "?"
            causes.append(
                _Cause(f"{field}.{name}" if field else name, "FieldValueRequired", "Required value")
            )
        elif err.validator == "enum":
            allowed = ", ".join(json.dumps(v) for v in err.validator_value)
            message = f"Unsupported value: {json.dumps(err.instance)}: supported values: {allowed}"
            causes.append(_Cause(field, "FieldValueNotSupported", message))
        elif err.validator == "type":
            actual = json.dumps(_JSON_TYPES.get(type(err.instance), "object"))
            message = (
                f"Invalid value: {actual}: {field} in body must be of type "
                f"{err.validator_value}: {actual}"
            )
            causes.append(_Cause(field, "FieldValueTypeInvalid", message))
        else:
            message = f"Invalid value: {json.dumps(err.instance)}: {err.message}"
            causes.append(_Cause(field, "FieldValueInvalid", message))
    return causes


# --------------------------------------------------------------------------------------------
# Built-in kinds: the official schemas plus the API server's own validation (strict mode).
# --------------------------------------------------------------------------------------------

# The version the emulator reports (`/version`, OpenAPI); built-in schemas are chosen for it.
SERVER_VERSION = (1, 32)

_QUANTITY_PATTERN = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15}
_DECIMAL_SUFFIXES["E"] = 18
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
_STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_TOTAL_ANNOTATION_SIZE = 256 * 1024  # TotalAnnotationSizeLimitB


class QuantityError(ValueError):
    """A string the API server's `resource.ParseQuantity` refuses (message as it words it)."""


def parse_quantity(text: str) -> decimal.Decimal:
    """The value of a Kubernetes quantity ("100m", "1.5Gi", "2e3"), parsed as the API server's
    ``resource.ParseQuantity`` does; `QuantityError` with its message when it is malformed."""
    wrong = QuantityError(f"quantities must match the regular expression '{_QUANTITY_PATTERN}'")
    text = text.strip()
    if not text:
        raise wrong
    pos, end, sign = 0, len(text), 1
    if text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        pos = 1
    start = pos
    while pos < end and text[pos].isdigit():
        pos += 1
    number = text[start:pos] or "0"
    fraction = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos].isdigit():
            pos += 1
        fraction = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in "eEinumkKMGTP":
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isdigit():
        pos += 1
    if pos < end:
        raise wrong
    suffix = text[suffix_start:]
    value = decimal.Decimal(f"{number}.{fraction or '0'}") * sign
    if suffix in _BINARY_SUFFIXES:
        return value * decimal.Decimal(2) ** _BINARY_SUFFIXES[suffix]
    if suffix in _DECIMAL_SUFFIXES:
        return value.scaleb(_DECIMAL_SUFFIXES[suffix])
    if len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[+-]?\d+", suffix[1:]):
        return value.scaleb(int(suffix[1:]))
    raise QuantityError("unable to parse quantity's suffix")


def canonical_quantity(raw: Any) -> str:
    """A quantity as the API server writes it back (``Quantity.String()``): "1000m" is "1",
    0.5 is "500m", "1.5Gi" is "1536Mi", 1000 is "1k"."""
    text = str(raw).strip() if isinstance(raw, str) else format(decimal.Decimal(str(raw)), "f")
    value = parse_quantity(text)
    if value == 0:
        return "0"
    suffix = text.lstrip("+-0123456789.")
    sign, magnitude = ("-" if value < 0 else ""), abs(value)
    if suffix in _BINARY_SUFFIXES and magnitude == magnitude.to_integral_value():
        for name, power in sorted(_BINARY_SUFFIXES.items(), key=lambda item: -item[1]):
            if magnitude % (2**power) == 0:
                return f"{sign}{int(magnitude / 2**power)}{name}"
        return f"{sign}{int(magnitude)}"
    exponent = suffix[:1] in ("e", "E")
    names = {v: k for k, v in _DECIMAL_SUFFIXES.items()}
    for power in range(18, -12, -3):
        scaled = magnitude.scaleb(-power)
        if scaled == scaled.to_integral_value():
            unit = (f"e{power}" if power else "") if exponent else names[power]
            return f"{sign}{int(scaled)}{unit}"
    nanos = magnitude.scaleb(9).to_integral_value(rounding=decimal.ROUND_CEILING)
    return f"{sign}{int(nanos)}n"


def _canonical_quantities(value: Any, schema: Any) -> Any:
    # Every Quantity in a decoded object, as the API server serializes it (always a string).
    resolved = _resolve_schema(schema)
    if resolved is None:
        return value
    if resolved.get("format") == "k8s-quantity" and value is not None:
        return canonical_quantity(value)
    if isinstance(value, dict):
        props = resolved.get("properties") or {}
        additional = resolved.get("additionalProperties")
        return {
            key: _canonical_quantities(
                item, props.get(key, additional if isinstance(additional, Mapping) else None)
            )
            for key, item in value.items()
        }
    if isinstance(value, list) and isinstance(resolved.get("items"), Mapping):
        return [_canonical_quantities(item, resolved["items"]) for item in value]
    return value


def _quantity_value(value: Any) -> decimal.Decimal:
    if isinstance(value, bool):
        raise QuantityError("quantities must be strings or numbers")
    if isinstance(value, int | float):
        return decimal.Decimal(str(value))
    return parse_quantity(str(value))


_FORMATS = jsonschema.FormatChecker(formats=())


def _check_quantity(value: Any) -> bool:
    if isinstance(value, str):
        parse_quantity(value)
    return True


def _check_time(value: Any) -> bool:
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError(
            f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse '
            f'"{value}" as "2006"'
        )
    return True


_FORMATS.checks("k8s-quantity", raises=QuantityError)(_check_quantity)
_FORMATS.checks("date-time", raises=ValueError)(_check_time)


def _builtin_schema_dir() -> Path:
    # The newest schemas not newer than the advertised server version (else the newest).
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    found = []
    for path in root.iterdir():
        if m := re.fullmatch(r"v(\d+)\.(\d+)\.\d+-local-strict", path.name):
            found.append(((int(m.group(1)), int(m.group(2))), path))
    found.sort()
    eligible = [path for version, path in found if version <= SERVER_VERSION]
    return eligible[-1] if eligible else found[-1][1]


@functools.cache
def _builtin_definitions() -> Json:
    path = _builtin_schema_dir() / "_definitions.json"
    definitions: Json = json.loads(path.read_text(encoding="utf-8"))
    defs = definitions["$defs"]
    # A Quantity is a string or a number the API server parses when decoding (a malformed one
    # is a decoding error, 400); times likewise.
    defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {
        "type": ["string", "number", "null"],
        "format": "k8s-quantity",
    }
    # Fields the schemas list as required only because their Go fields lack `omitempty`: the
    # API server decodes a missing one as its zero value and its validation accepts that.
    for name in (
        "io.k8s.api.core.v1.ContainerStatus",
        "io.k8s.api.core.v1.ContainerStateTerminated",
    ):
        defs[name].pop("required", None)
    return definitions


@functools.cache
def _builtin_schema(api_version: str, kind: str) -> Json | None:
    """The official (strict) schema of a built-in kind, or None for a kind without one."""
    group, _, version = api_version.rpartition("/")
    prefix = f"{group.split('.')[0]}-" if group else ""
    path = _builtin_schema_dir() / f"{kind.lower()}-{prefix}{version}.json"
    if not path.exists():
        return None
    schema: Json = json.loads(path.read_text(encoding="utf-8"))
    return schema


@functools.cache
def _builtin_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """The official schema of a built-in kind (strict: unknown fields are reported), or None."""
    group = api_version.rpartition("/")[0]
    found = _builtin_schema(api_version, kind)
    if found is None:
        return None
    schema = copy.deepcopy(found)
    if kind == "Event" and not group:
        # A core Event without involvedObject decodes to an empty reference; the legacy event
        # validation decides about it (its namespace), not a required-field check.
        schema["required"] = ["metadata"]
    definitions = _builtin_definitions()
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        [
            (schema["$id"], referencing.Resource.from_contents(schema)),
            (definitions["$id"], referencing.Resource.from_contents(definitions)),
        ]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry, format_checker=_FORMATS)


def _path(parts: Iterable[Any], base: str = "") -> str:
    field = base
    for part in parts:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return field


def _go_type(schema_type: Any) -> str:
    types = [
        t for t in (schema_type if isinstance(schema_type, list) else [schema_type]) if t != "null"
    ]
    return {"integer": "int64", "number": "float64", "object": "map", "array": "slice"}.get(
        types[0] if types else "", types[0] if types else "value"
    )


def _decode_builtin(
    meta: _ResourceMeta, obj: Json, *, strict: bool
) -> tuple[Json, list[_Cause], list[str]]:
    """What decoding a built-in object into its Go type does: a wrongly typed field or a
    malformed quantity or time is 400 BadRequest ("cannot be handled as a Job"); an unknown
    field is dropped (``fieldValidation=Strict``: 400). Returns the object with unknown fields
    dropped, the schema's other findings (422 causes: required fields, enums) and the names of
    the dropped fields (warnings)."""
    validator = _builtin_validator(meta.api_version, meta.kind)
    if validator is None:
        return obj, [], []
    unknown: list[tuple[tuple[Any, ...], str]] = []
    causes: list[_Cause] = []
    undecodable: list[str] = []
    errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    for err in errors:
        where = tuple(err.absolute_path)
        field = _path(where)
        if err.validator == "additionalProperties" and err.validator_value is False:
            declared = err.schema.get("properties") or {}
            unknown += [(where, key) for key in err.instance if key not in declared]
        elif err.validator == "format":
            undecodable.append(str(err.cause) if err.cause else err.message)
        elif err.validator in ("type", "oneOf", "anyOf"):
            actual = _JSON_TYPES.get(type(err.instance), "object")
            expected = _go_type(err.validator_value) if err.validator == "type" else "IntOrString"
            undecodable.append(
                f"json: cannot unmarshal {actual} into Go struct field {meta.kind}.{field} of "
                f"type {expected}"
            )
        elif err.validator == "required":
            missing = re.findall(r"'([^']+)' is a required property", err.message)
            name = missing[0] if missing else "?"
            causes.append(
                _Cause(f"{field}.{name}" if field else name, "FieldValueRequired", "Required value")
            )
        elif err.validator == "enum" and field not in ("apiVersion", "kind"):
            allowed = ", ".join(json.dumps(v) for v in err.validator_value)
            message = f"Unsupported value: {json.dumps(err.instance)}: supported values: {allowed}"
            causes.append(_Cause(field, "FieldValueNotSupported", message))
        elif err.validator != "enum":
            causes.append(
                _Cause(field, "FieldValueInvalid", f"Invalid value: {json.dumps(err.instance)}")
            )
    if undecodable:
        raise _bad_request(
            f'{meta.kind} in version "{meta.res.version}" cannot be handled as a {meta.kind}: '
            f"{undecodable[0]}"
        )
    names = [_path((*where, key)) for where, key in unknown]
    if names and strict:
        raise _bad_request(
            "strict decoding error: " + ", ".join(f'unknown field "{name}"' for name in names)
        )
    if names:
        obj = copy.deepcopy(obj)
        for where, key in unknown:
            parent: Any = obj
            for part in where:
                parent = parent[part]
            parent.pop(key, None)
    obj = _canonical_quantities(obj, _builtin_schema(meta.api_version, meta.kind))
    return obj, causes, [f'unknown field "{name}"' for name in names]


def _strict_metadata_causes(obj: Json) -> list[_Cause]:
    # ObjectMeta rules beyond the ones always checked: a `/` needs a non-empty prefix, and all
    # annotations together are at most 256 KiB (ValidateAnnotations).
    causes = []
    md = obj.get("metadata") or {}
    for field in ("labels", "annotations"):
        for key in md.get(field) or {}:
            if key.startswith("/"):
                causes.append(
                    _Cause(
                        f"metadata.{field}",
                        "FieldValueInvalid",
                        f"Invalid value: {json.dumps(key)}: prefix part must be non-empty",
                    )
                )
    annotations = md.get("annotations") or {}
    size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if size > _TOTAL_ANNOTATION_SIZE:
        causes.append(
            _Cause(
                "metadata.annotations",
                "FieldValueTooLong",
                f"Too long: may not be more than {_TOTAL_ANNOTATION_SIZE} bytes",
            )
        )
    return causes


def _label_name_causes(value: str, field: str) -> list[_Cause]:
    if not value:
        return [_Cause(field, "FieldValueRequired", "Required value")]
    if not _DNS_LABEL.fullmatch(value) or len(value) > 63:
        return [
            _Cause(
                field,
                "FieldValueInvalid",
                f"Invalid value: {json.dumps(value)}: a lowercase RFC 1123 label must consist "
                "of lower case alphanumeric characters or '-', and must start and end with an "
                "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            )
        ]
    return []


def _nonnegative(obj: Mapping[str, Any], key: str, base: str) -> list[_Cause]:
    value = obj.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return [
            _Cause(
                f"{base}.{key}",
                "FieldValueInvalid",
                f"Invalid value: {value}: must be greater than or equal to 0",
            )
        ]
    return []


def _resources_causes(resources: Mapping[str, Any], base: str) -> list[_Cause]:
    # ValidateResourceRequirements: resource names, non-negative (and for extended resources
    # integer) quantities, requests not above limits (equal to them where overcommit is not
    # allowed: extended resources and hugepages).
    causes: list[_Cause] = []
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    parsed: dict[tuple[str, str], decimal.Decimal] = {}
    for part, values in (("limits", limits), ("requests", requests)):
        for name, raw in values.items():
            where = f"{base}.{part}[{name}]"
            standard = name in _STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-")
            prefix, _, short = name.rpartition("/")
            extended = (
                bool(prefix)
                and prefix != "kubernetes.io"
                and not prefix.endswith(".kubernetes.io")
                and bool(_DNS_SUBDOMAIN.fullmatch(prefix))
                and bool(_LABEL_NAME.fullmatch(short))
            )
            if not standard and not extended:
                causes.append(
                    _Cause(
                        where,
                        "FieldValueInvalid",
                        f"Invalid value: {json.dumps(name)}: must be a standard resource for "
                        "containers",
                    )
                )
                continue
            try:
                value = _quantity_value(raw)
            except QuantityError:
                continue  # refused when decoding already
            parsed[(part, name)] = value
            if value < 0:
                causes.append(
                    _Cause(
                        where,
                        "FieldValueInvalid",
                        f"Invalid value: {json.dumps(str(raw))}: must be greater than or "
                        "equal to 0",
                    )
                )
            elif extended and value != value.to_integral_value():
                causes.append(
                    _Cause(
                        where,
                        "FieldValueInvalid",
                        f"Invalid value: {json.dumps(str(raw))}: must be an integer",
                    )
                )
    for name, raw in requests.items():
        request, limit = parsed.get(("requests", name)), parsed.get(("limits", name))
        overcommit = name in _STANDARD_CONTAINER_RESOURCES
        if request is None:
            continue
        if limit is not None:
            if not overcommit and request != limit:
                causes.append(
                    _Cause(
                        f"{base}.requests",
                        "FieldValueInvalid",
                        f"Invalid value: {json.dumps(str(raw))}: must be equal to {name} limit "
                        f"of {limits[name]}",
                    )
                )
            elif request > limit:
                causes.append(
                    _Cause(
                        f"{base}.requests",
                        "FieldValueInvalid",
                        f"Invalid value: {json.dumps(str(raw))}: must be less than or equal to "
                        f"{name} limit of {limits[name]}",
                    )
                )
        elif not overcommit:
            causes.append(
                _Cause(
                    f"{base}.limits",
                    "FieldValueRequired",
                    "Required value: Limit must be set for non overcommitable resources",
                )
            )
    return causes


def _pod_spec_causes(spec: Mapping[str, Any], base: str) -> list[_Cause]:
    """The part of ValidatePodSpec an operator building Pods and Job templates runs into."""
    causes: list[_Cause] = []
    volumes: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        name = str(volume.get("name") or "")
        where = f"{base}.volumes[{i}].name"
        found = _label_name_causes(name, where)
        if not found and name in volumes:
            found = [_Cause(where, "FieldValueDuplicate", f"Duplicate value: {json.dumps(name)}")]
        causes += found
        volumes.add(name)
    if not spec.get("containers"):
        causes.append(_Cause(f"{base}.containers", "FieldValueRequired", "Required value"))
    names: set[str] = set()
    for field in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(field) or []):
            where = f"{base}.{field}[{i}]"
            name = str(container.get("name") or "")
            found = _label_name_causes(name, f"{where}.name")
            if not found and name in names:
                found = [
                    _Cause(
                        f"{where}.name",
                        "FieldValueDuplicate",
                        f"Duplicate value: {json.dumps(name)}",
                    )
                ]
            causes += found
            names.add(name)
            if not container.get("image"):
                causes.append(_Cause(f"{where}.image", "FieldValueRequired", "Required value"))
            for j, env in enumerate(container.get("env") or []):
                env_name = str(env.get("name") or "")
                # RelaxedEnvironmentVariableValidation (on by default since 1.32).
                if env_name and ("=" in env_name or not all(32 <= ord(c) <= 126 for c in env_name)):
                    causes.append(
                        _Cause(
                            f"{where}.env[{j}].name",
                            "FieldValueInvalid",
                            f"Invalid value: {json.dumps(env_name)}: a valid environment "
                            "variable name must consist only of printable ASCII characters "
                            "other than '='",
                        )
                    )
            paths: set[str] = set()
            for j, mount in enumerate(container.get("volumeMounts") or []):
                mount_name = str(mount.get("name") or "")
                if mount_name and mount_name not in volumes:
                    causes.append(
                        _Cause(
                            f"{where}.volumeMounts[{j}].name",
                            "FieldValueNotFound",
                            f"Not found: {json.dumps(mount_name)}",
                        )
                    )
                mount_path = str(mount.get("mountPath") or "")
                if mount_path and mount_path in paths:
                    causes.append(
                        _Cause(
                            f"{where}.volumeMounts[{j}].mountPath",
                            "FieldValueInvalid",
                            f"Invalid value: {json.dumps(mount_path)}: must be unique",
                        )
                    )
                paths.add(mount_path)
            causes += _resources_causes(container.get("resources") or {}, f"{where}.resources")
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in ("Always", "OnFailure", "Never"):
        causes.append(
            _Cause(
                f"{base}.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: {json.dumps(policy)}: supported values: "Always", '
                '"OnFailure", "Never"',
            )
        )
    causes += _nonnegative(spec, "terminationGracePeriodSeconds", base)
    active = spec.get("activeDeadlineSeconds")
    if isinstance(active, int) and active <= 0:
        causes.append(
            _Cause(
                f"{base}.activeDeadlineSeconds",
                "FieldValueInvalid",
                f"Invalid value: {active}: must be between 1 and 2147483647, inclusive",
            )
        )
    return causes


def _job_causes(obj: Json, old: Json | None) -> list[_Cause]:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or {}
    causes = _pod_spec_causes(pod_spec, "spec.template.spec")
    # The pod template's restartPolicy defaults to Always, which a Job refuses.
    policy = pod_spec.get("restartPolicy") or "Always"
    if policy not in ("OnFailure", "Never"):
        causes.append(
            _Cause(
                "spec.template.spec.restartPolicy",
                "FieldValueNotSupported",
                f'Unsupported value: {json.dumps(policy)}: supported values: "OnFailure", "Never"',
            )
        )
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit"):
        causes += _nonnegative(spec, key, "spec")
    causes += _nonnegative(spec, "ttlSecondsAfterFinished", "spec")
    if old is not None:
        old_spec = old.get("spec") or {}
        for key in (
            "completions",
            "selector",
            "completionMode",
            "podFailurePolicy",
            "successPolicy",
            "managedBy",
            "backoffLimitPerIndex",
        ):
            if spec.get(key) != old_spec.get(key):
                causes.append(
                    _Cause(
                        f"spec.{key}",
                        "FieldValueInvalid",
                        f"Invalid value: {json.dumps(spec.get(key))}: field is immutable",
                    )
                )
        old_template = old_spec.get("template") or {}
        if template != old_template:
            # A suspended Job that never started may change its scheduling directives.
            mutable = (
                ("labels", "annotations"),
                ("nodeSelector", "affinity", "tolerations", "schedulingGates"),
            )

            def fixed(t: Mapping[str, Any]) -> tuple[Json, Json]:
                md = {k: v for k, v in (t.get("metadata") or {}).items() if k not in mutable[0]}
                sp = {k: v for k, v in (t.get("spec") or {}).items() if k not in mutable[1]}
                return md, sp

            suspended = bool(old_spec.get("suspend")) and not (old.get("status") or {}).get(
                "startTime"
            )
            if not suspended or fixed(template) != fixed(old_template):
                causes.append(
                    _Cause(
                        "spec.template",
                        "FieldValueInvalid",
                        "Invalid value: core.PodTemplateSpec{...}: field is immutable",
                    )
                )
    return causes


_POD_MUTABLE_MESSAGE = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set "
    "to 1 if it was previously negative)"
)


def _pod_causes(obj: Json, old: Json | None) -> list[_Cause]:
    spec = obj.get("spec") or {}
    causes = _pod_spec_causes(spec, "spec")
    if old is not None:
        old_spec = old.get("spec") or {}

        def fixed(s: Mapping[str, Any]) -> Json:
            result = {
                k: v
                for k, v in s.items()
                if k
                not in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")
            }
            for field in ("containers", "initContainers"):
                if field in result:
                    result[field] = [
                        {k: v for k, v in c.items() if k != "image"} for c in result[field]
                    ]
            return result

        if fixed(spec) != fixed(old_spec):
            causes.append(_Cause("spec", "FieldValueForbidden", _POD_MUTABLE_MESSAGE))
    return causes


def _length_causes(obj: Mapping[str, Any], key: str, field: str, limit: int) -> list[_Cause]:
    value = obj.get(key) or ""
    if len(str(value)) > limit:
        return [
            _Cause(
                field,
                "FieldValueInvalid",
                f'Invalid value: "": can have at most {limit} characters',
            )
        ]
    return []


def _event_causes(obj: Json, old: Json | None) -> list[_Cause]:
    # ValidateEventCreate for core/v1 (the legacy rules: the involved object's namespace must be
    # the event's, and a "new" event with eventTime needs the reporting fields).
    causes: list[_Cause] = []
    namespace = (obj.get("metadata") or {}).get("namespace") or ""
    involved = obj.get("involvedObject") or {}
    involved_ns = involved.get("namespace") or ""
    mismatch = _Cause(
        "involvedObject.namespace",
        "FieldValueInvalid",
        f"Invalid value: {json.dumps(involved_ns)}: does not match event.namespace",
    )
    if not obj.get("eventTime"):
        if (not involved_ns and namespace not in ("", "default")) or (
            involved_ns and involved_ns != namespace
        ):
            causes.append(mismatch)
        return causes
    if not involved_ns and namespace not in ("default", "kube-system"):
        causes.append(mismatch)
    for key, field in (
        ("reportingComponent", "source"),
        ("reportingInstance", "reportingInstance"),
        ("action", "action"),
        ("reason", "reason"),
    ):
        if not obj.get(key):
            causes.append(_Cause(field, "FieldValueRequired", "Required value"))
    for key in ("reportingInstance", "action", "reason"):
        causes += _length_causes(obj, key, key, 128)
    causes += _length_causes(obj, "message", "message", 1024)
    return causes


def _events_v1_causes(obj: Json, old: Json | None) -> list[_Cause]:
    # events.k8s.io/v1 events are validated strictly (ValidateEventCreate).
    causes: list[_Cause] = []
    if obj.get("type") not in ("Normal", "Warning"):
        causes.append(
            _Cause(
                "type",
                "FieldValueInvalid",
                f'Invalid value: "": has invalid value: {obj.get("type") or ""}',
            )
        )
    if obj.get("deprecatedFirstTimestamp"):
        causes.append(
            _Cause("firstTimestamp", "FieldValueInvalid", 'Invalid value: "": needs to be unset')
        )
    for key in ("reportingController", "reportingInstance", "action", "reason"):
        if not obj.get(key):
            causes.append(_Cause(key, "FieldValueRequired", "Required value"))
    for key in ("reportingInstance", "action", "reason"):
        causes += _length_causes(obj, key, key, 128)
    causes += _length_causes(obj, "note", "note", 1024)
    namespace = (obj.get("metadata") or {}).get("namespace") or ""
    regarding_ns = (obj.get("regarding") or {}).get("namespace") or ""
    if not regarding_ns and namespace not in ("default", "kube-system"):
        causes.append(
            _Cause(
                "involvedObject.namespace",
                "FieldValueInvalid",
                f"Invalid value: {json.dumps(regarding_ns)}: does not match event.namespace",
            )
        )
    return causes


# The API server's own validation of the built-in kinds the operator writes, by (group, plural).
_BUILTIN_CHECKS: dict[tuple[str, str], Callable[[Json, Json | None], list[_Cause]]] = {
    ("batch", "jobs"): _job_causes,
    ("", "pods"): _pod_causes,
    ("", "events"): _event_causes,
    ("events.k8s.io", "events"): _events_v1_causes,
}


# --------------------------------------------------------------------------------------------
# Table output for printer columns (`kubectl get`), as the API server serves custom resources.
# --------------------------------------------------------------------------------------------

# One step of the JSONPath subset printer columns use: `.field`, `['field']`, `[n]`, `[*]`, and a
# filter `[?(@.a.b == literal)]` (or `!=`). Anything else is refused, so a column the emulator
# cannot evaluate fails loudly instead of showing an empty cell.
_JSONPATH_STEP = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_-]+)
      | \[(?P<index>-?\d+)\]
      | \[(?P<star>\*)\]
      | \['(?P<quoted>[^']*)'\]
      | \[\?\(@(?P<where>(?:\.[A-Za-z0-9_-]+)+)\s*(?P<op>==|!=)\s*
          (?P<literal>"[^"]*"|'[^']*'|-?\d+(?:\.\d+)?|true|false)\)\]
    """,
    re.VERBOSE,
)
_TABLE_VERSIONS = ("v1", "v1beta1")
_OBJECT_EVENTS = ("ADDED", "MODIFIED", "DELETED")
_NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_CREATION_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC."
)


def _literal(text: str) -> Any:
    if text[0] in "\"'":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    return float(text) if "." in text else int(text)


def jsonpath_values(obj: Any, path: str) -> list[Any]:
    """The values a printer column's JSONPath (e.g. ``.status.conditions[?(@.type=="Ready")]
    .status``) finds in `obj`, in order; missing keys find nothing, as the API server's table
    convertor allows. ValueError for syntax outside the subset columns use."""
    values, position = [obj], 0
    while position < len(path):
        step = _JSONPATH_STEP.match(path, position)
        if step is None:
            raise ValueError(f"unsupported JSONPath {path!r} at {path[position:]!r}")
        position = step.end()
        values = [found for value in values for found in _step(value, step)]
    return values


def _step(value: Any, step: re.Match[str]) -> list[Any]:
    key = step["field"] if step["field"] is not None else step["quoted"]
    if key is not None:
        return [value[key]] if isinstance(value, dict) and key in value else []
    if step["index"] is not None:
        index = int(step["index"])
        return (
            [value[index]] if isinstance(value, list) and -len(value) <= index < len(value) else []
        )
    if step["star"] is not None:
        return list(value.values()) if isinstance(value, dict) else list(value or [])
    wanted, equal = _literal(step["literal"]), step["op"] == "=="
    kept = []
    for item in value if isinstance(value, list) else []:
        found = jsonpath_values(item, step["where"])
        if bool(found) and (found[0] == wanted) == equal:
            kept.append(item)
    return kept


def human_duration(seconds: float) -> str:
    """How long ago, as kubectl shows an age (apimachinery's `duration.HumanDuration`)."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes, hours, days = whole // 60, whole // 3600, whole // 86400
    if minutes < 10:
        return f"{minutes}m{whole % 60}s" if whole % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        years, rest = days // 365, days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{days // 365}y"


def _printed(value: Any) -> str | None:
    # What kubectl's JSONPath printer writes for a value: text as is, lists and maps as compact
    # JSON with sorted keys (Go's json.Marshal), numbers and booleans as Go prints them.
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def table_cell(column_type: str, values: Sequence[Any], now: datetime.datetime) -> Any:
    """A printer column's cell from the values its JSONPath found (only the first counts), as
    the API server's table convertor makes it: None where the value is missing or of another
    type, a `date` as an age."""
    if not values or values[0] is None:
        return None
    value = values[0]
    if column_type == "string":
        return _printed(value)
    if column_type == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if column_type == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "date" and isinstance(value, str):
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return "<invalid>"
        if moment.tzinfo is None:
            return "<invalid>"
        return human_duration((now - moment).total_seconds())
    return None


def printer_columns(crd_version: Mapping[str, Any]) -> list[Json]:
    """A served CRD version's `additionalPrinterColumns`, or the API server's default (Age)."""
    columns = crd_version.get("additionalPrinterColumns") or []
    if columns:
        return [dict(column) for column in columns]
    return [
        {
            "name": "Age",
            "type": "date",
            "jsonPath": ".metadata.creationTimestamp",
            "description": _CREATION_DESCRIPTION,
        }
    ]


def table_version(accept: str, *, tables: bool = True) -> str | None:
    """Which `meta.k8s.io` Table version an Accept header asks for first ("v1", "v1beta1"), or
    None when it takes the object itself first; with ``tables=False`` (a resource served without
    printer columns) only the object will do. 406 Not Acceptable when nothing offered will."""
    for media in accept.split(",") if accept.strip() else ["*/*"]:
        kind, *raw = (part.strip() for part in media.split(";"))
        params = dict(part.split("=", 1) for part in raw if "=" in part)
        if kind not in ("application/json", "application/*", "*/*"):
            continue
        if "as" not in params:
            return None
        wanted = (params["as"], params.get("g"), params.get("v"))
        if tables and wanted[:2] == ("Table", "meta.k8s.io") and wanted[2] in _TABLE_VERSIONS:
            return wanted[2]
    raise _error(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/yaml",
    )


# --------------------------------------------------------------------------------------------
# The emulator.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _ResourceMeta:
    res: kmock.resource
    kind: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    custom: bool = False  # served from a CustomResourceDefinition
    schema: Mapping[str, Any] | None = None
    validator: jsonschema.protocols.Validator | None = None
    # `kubectl get`'s columns of a custom resource (its CRD version's, or the default Age).
    columns: tuple[Json, ...] = ()

    @property
    def api_version(self) -> str:
        return _api_version(self.res)


@dataclasses.dataclass(frozen=True)
class _Event:
    rv: int
    res: kmock.resource
    type: str  # ADDED, MODIFIED, DELETED
    obj: Json
    old: Json | None = None


# The warnings (`Warning: 299 - "..."` headers) and the RBAC attributes of the HTTP request being
# served, for the synchronous API it calls (None outside a request).
_WARNINGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "emulator_warnings", default=None
)
_AUTHORIZING: contextvars.ContextVar[RequestAttributes | None] = contextvars.ContextVar(
    "emulator_authorizing", default=None
)


def _warn(messages: Iterable[str]) -> None:
    collected = _WARNINGS.get()
    if collected is not None:
        collected.extend(messages)


def _normalize_metadata(obj: Json) -> None:
    # ObjectMeta's collections are `omitempty` and it is stored through its Go type for every
    # kind (custom resources' metadata too): an empty or null labels, annotations, finalizers
    # or ownerReferences (e.g. left by a merge patch that removed the last key, or a patch
    # `{"metadata": {"annotations": {"x": null}}}` on an object without annotations) is not
    # stored, so such a write is a no-op (no new resourceVersion, no MODIFIED event).
    md = obj.get("metadata")
    if isinstance(md, dict):
        for key in ("labels", "annotations", "finalizers", "ownerReferences", "managedFields"):
            if key in md and md[key] in (None, {}, []):
                del md[key]
        if md.get("generateName") in (None, ""):
            md.pop("generateName", None)


_SMP_DIRECTIVES = ("$setElementOrder/", "$deleteFromPrimitiveList/", "$retainKeys", "$patch")


def strategic_merge_patch(target: Any, patch: Any, schema: Any = None) -> Any:
    """A strategic-merge patch as the API server applies it to built-ins, following the official
    schema's ``x-kubernetes-patch-strategy`` and ``-merge-key`` when ``schema`` is given: lists
    of maps merge by key (``containers`` by ``name``), lists of primitives with the merge
    strategy are unions, other lists are replaced; directives are applied, never stored:
    ``$patch: replace|delete`` (maps and list items), ``$retainKeys``,
    ``$deleteFromPrimitiveList/<field>``, and ``$setElementOrder/<field>`` (order only,
    ignored)."""
    schema = _resolve_schema(schema)
    if not isinstance(patch, Mapping):
        return _strip_directives(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives(patch)
    if directive == "delete":
        return None
    props = (schema or {}).get("properties") or {}
    additional = (schema or {}).get("additionalProperties")
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        sub = props.get(key, additional if isinstance(additional, Mapping) else None)
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in (value or [])]
        elif key.startswith(_SMP_DIRECTIVES):
            continue
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, _resolve_schema(sub))
        else:
            merged = strategic_merge_patch(result.get(key), value, sub)
            if merged is None and isinstance(value, Mapping):
                result.pop(key, None)  # `$patch: delete`
            else:
                result[key] = merged
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain or k in patch}
    return result


def _resolve_schema(schema: Any) -> Mapping[str, Any] | None:
    while isinstance(schema, Mapping) and "$ref" in schema:
        schema = _builtin_definitions()["$defs"].get(str(schema["$ref"]).rsplit("/", 1)[-1])
    return schema if isinstance(schema, Mapping) else None


def _merge_list(target: list[Any], patch: list[Any], schema: Mapping[str, Any] | None) -> Any:
    strategy = str((schema or {}).get("x-kubernetes-patch-strategy") or "").split(",")
    key = (schema or {}).get("x-kubernetes-patch-merge-key")
    replace = any(isinstance(i, Mapping) and i.get("$patch") == "replace" for i in patch)
    if schema is None or "merge" not in strategy or replace:
        return _strip_directives(patch)
    result = copy.deepcopy(target)
    if key is None:  # a set of primitives (e.g. finalizers): a union
        return result + [v for v in patch if v not in result]
    for item in patch:
        if not isinstance(item, Mapping):
            continue
        found = next(
            (
                i
                for i, t in enumerate(result)
                if isinstance(t, Mapping) and t.get(key) == item.get(key)
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if found is not None:
                del result[found]
        elif found is not None:
            result[found] = strategic_merge_patch(result[found], item, schema.get("items"))
        else:
            result.append(_strip_directives(item))
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if not k.startswith(_SMP_DIRECTIVES) and v is not None
        }
    if isinstance(value, list):
        return [
            _strip_directives(item)
            for item in value
            if not (isinstance(item, Mapping) and item.get("$patch") in ("delete", "replace"))
        ]
    return copy.deepcopy(value)


def _parse_path(path: str) -> parsing.ParsedPath:
    # kmock's parser treats `/api/v1/namespaces/{name}` as a namespace prefix and crashes on
    # `/api/v1/namespaces`: on the API server, namespaces are a cluster-scoped resource with
    # `status` and `finalize` subresources (fix 3).
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[0] in ("api", "apis"):
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        group = "" if parts[0] == "api" else parts[1]
        version = parts[1] if parts[0] == "api" else (parts[2] if len(parts) > 2 else None)
        if (
            rest
            and rest[0] == "namespaces"
            and (len(rest) <= 2 or (len(rest) == 3 and rest[2] in ("status", "finalize")))
        ):
            return parsing.ParsedPath(
                group=group,
                version=version,
                plural="namespaces",
                namespace=None,
                name=rest[1] if len(rest) > 1 else None,
                subresource=rest[2] if len(rest) > 2 else None,
            )
    return parsing.parse_path(path)


@attrs.define(kw_only=True)
class HardenedEmulator(kmock.KubernetesEmulator):
    """kmock's `KubernetesEmulator` with the API-server behaviours operator tests rely on.

    State lives in kmock's ``objects`` array (one history entry per stored version; treat it
    as read-only), guarded by a thread lock, so the synchronous API (`create_object`,
    `get_object`, `list_objects`, `patch_object`, `replace_object`, `delete_object`,
    `patch_status`, `register_crd`, the Job/Pod helpers, `wait_for`) is safe from any thread,
    including while the server runs in its own loop, and emits the same watch events as HTTP
    requests do. Errors are raised as `kmock.KubernetesError` with the API server's status and
    reason. Faults are injected by verb and resource with ``emulator.faults.add(...)``
    (`tests.support.faults`); kmock's request DSL still works too, e.g.
    ``emulator[kmock.method.POST, kmock.resource("batch/v1/jobs")] << 500``; an intercepted
    request changes nothing, as a failed request would not.

    The cost of a request does not grow with the number of stored objects or of requests
    served before it: a request is matched against each reaction once (kmock re-scans its
    whole request history for every reaction), objects are indexed by resource and namespace,
    and a watch wakes only for its own resource's events. Iterating the emulator
    (``for request in emulator``) yields the last ``request_history`` requests or more; a
    reaction on a slice (``emulator["post"][:1]``) counts within those.
    """

    builtins: bool = True  # register `BUILTIN_RESOURCES`, kopf's peering CRDs and "default"
    event_history: int = 100_000  # watch events kept for `?resourceVersion=` resumption
    request_history: int | None = 1_000  # requests kept for assertions (None: all)
    # Opt-in strictness (off by default; may be switched on or off at any time):
    # built-in kinds decoded and validated as the API server does (`_admit_builtin`), plus the
    # ObjectMeta rules not always checked (annotation size, empty label-key prefix).
    strict_validation: bool = False
    # RBAC: requests not made as the admin are authorized against this policy (`enable_rbac`).
    rbac: RbacPolicy | None = None
    # Faults injected into chosen HTTP requests (`tests.support.faults`); none by default.
    faults: FaultInjector = attrs.field(factory=FaultInjector)
    # Local ports whose requests are the admin's (`EmulatorServer.admin_url`).
    admin_ports: set[int] = attrs.field(factory=set)

    _meta: dict[kmock.resource, _ResourceMeta] = attrs.field(factory=dict, init=False)
    _kinds: dict[tuple[str, str], kmock.resource] = attrs.field(factory=dict, init=False)
    _store_lock: threading.RLock = attrs.field(factory=threading.RLock, init=False)
    _changed: threading.Condition = attrs.field(factory=threading.Condition, init=False)
    _changes: int = attrs.field(default=0, init=False)
    _rv: int = attrs.field(default=1, init=False)
    _log: list[_Event] = attrs.field(factory=list, init=False)
    # The live objects by resource, namespace and name (the same `Object`s as in `objects`):
    # lists and watch snapshots look at one resource's objects, not at everything ever stored.
    _live: dict[kmock.resource, dict[str | None, dict[str, kmock.Object]]] = attrs.field(
        factory=dict, init=False
    )
    _pod_logs: dict[tuple[str, str, str | None], str] = attrs.field(factory=dict, init=False)
    _loop: asyncio.AbstractEventLoop | None = attrs.field(default=None, init=False)
    # One wake-up per watched resource: every watcher of it awaits the current one.
    _wakes: dict[kmock.resource, asyncio.Event] = attrs.field(factory=dict, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    _watching: dict[kmock.resource, int] = attrs.field(factory=dict, init=False)
    _served_requests: int = attrs.field(default=0, init=False)
    # The emulator's own reactions (installed at construction; kept, so their ids stay unique),
    # and all reactions in the order kmock tries them, recomputed when a test adds one.
    _own_reactions: tuple[kmock.Reaction, ...] = attrs.field(default=(), init=False)
    _own_ids: frozenset[int] = attrs.field(factory=frozenset, init=False)
    _order_key: tuple[int, ...] = attrs.field(default=(), init=False)
    _order: list[kmock.Reaction] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # PUT (replace) and DELETE on a collection have no kmock action; route them by method.
        self.fallback[self._is_replace] << self._serve_replace
        self.fallback[self._is_delete_collection] << self._serve_delete_collection
        self.fallback["get /openapi/v3"] << self._serve_openapi_root
        self.fallback["get", re.compile(r"/openapi/v3/.+")] << self._serve_openapi_group_version
        self._own_reactions = tuple(self._payloads)
        self._own_ids = frozenset(map(id, self._own_reactions))
        if self.builtins:
            for api_version, plural, kind, namespaced, short, subs, cats in BUILTIN_RESOURCES:
                self.register_resource(
                    f"{api_version}/{plural}",
                    kind=kind,
                    namespaced=namespaced,
                    short_names=short,
                    subresources=subs,
                    categories=cats,
                )
            for crd in KOPF_PEERING_CRDS:
                self.register_crd(crd)
            self.create_object(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
            )

    # ----------------------------------------------------------------------------------------
    # Registration.
    # ----------------------------------------------------------------------------------------

    def register_resource(
        self,
        resource: ResourceRef,
        *,
        kind: str,
        namespaced: bool = True,
        singular: str | None = None,
        short_names: Iterable[str] = (),
        subresources: Iterable[str] = (),
        categories: Iterable[str] = (),
    ) -> kmock.resource:
        """Serve a resource (e.g. ``"v1/pods"``) in discovery, lists, watches and writes."""
        res = _as_resource(resource)
        meta = _ResourceMeta(
            res=res,
            kind=kind,
            singular=singular or kind.lower(),
            namespaced=namespaced,
            short_names=tuple(short_names),
            subresources=tuple(subresources),
            categories=tuple(categories),
        )
        with self._store_lock:
            self._meta[res] = meta
            self._kinds[(meta.api_version, kind)] = res
            # Keep kmock's own registry in step, for code that inspects `emulator.resources`.
            self.resources[res] = kmock.ResourceInfo(
                kind=kind,
                singular=meta.singular,
                namespaced=namespaced,
                verbs=set(_VERBS),
                shortnames=set(meta.short_names),
                categories=set(meta.categories),
                subresources=set(meta.subresources),
            )
        return res

    def register_crd(self, definition: Mapping[str, Any]) -> list[kmock.resource]:
        """Register a CustomResourceDefinition (a dict as in its YAML): store it like
        `kubectl apply` would, and serve its versions with discovery, the status subresource
        and schema validation. Returns the resources of its served versions."""
        crd: Json = copy.deepcopy(dict(definition))
        crd.setdefault("apiVersion", "apiextensions.k8s.io/v1")
        crd.setdefault("kind", "CustomResourceDefinition")
        name = crd["metadata"]["name"]
        crds = _as_resource("apiextensions.k8s.io/v1/customresourcedefinitions")
        with self._store_lock:
            if self._current(crds, None, name) is None:
                stored = self.create_object(crd, resource=crds)
            else:
                stored = self.replace_object(crds, None, name, crd)
        group = stored["spec"]["group"]
        plural = stored["spec"]["names"]["plural"]
        return [
            kmock.resource(group, v["name"], plural)
            for v in stored["spec"]["versions"]
            if v.get("served", True)
        ]

    def register_crds_from_dir(self, path: str | Path) -> list[kmock.resource]:
        """Register every CustomResourceDefinition in the YAML files of a directory."""
        resources: list[kmock.resource] = []
        for crd in load_crds_from_dir(path):
            resources += self.register_crd(crd)
        return resources

    def _activate_crd(self, crd: Json) -> None:
        # Called when a CRD object is stored, whether by `register_crd` or over HTTP
        # (`kubectl apply -f crd.yaml`): the API server starts serving its versions.
        spec = crd["spec"]
        names = spec["names"]
        expected = f"{names['plural']}.{spec['group']}"
        if crd["metadata"]["name"] != expected:
            raise _invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                crd["metadata"]["name"],
                [
                    _Cause(
                        "metadata.name",
                        "FieldValueInvalid",
                        f'must be spec.names.plural+"."+spec.group: {json.dumps(expected)}',
                    )
                ],
            )
        for version in spec["versions"]:
            res = kmock.resource(spec["group"], version["name"], names["plural"])
            if not version.get("served", True):
                continue
            subresources = tuple(version.get("subresources") or spec.get("subresources") or {})
            schema = (version.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
            self.register_resource(
                res,
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=names.get("shortNames") or (),
                subresources=subresources,
                categories=names.get("categories") or (),
            )
            meta = self._meta[res]
            meta.custom = True
            meta.columns = tuple(printer_columns(version))
            if schema:
                meta.schema = schema
                meta.validator = jsonschema.Draft4Validator(_to_json_schema(schema))
        # The API server reports the names as accepted and the CRD as established.
        now = _now()
        crd["status"] = {
            "acceptedNames": dict(names),
            "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")],
            "conditions": [
                {"type": t, "status": "True", "reason": r, "lastTransitionTime": now}
                for t, r in (
                    ("NamesAccepted", "NoConflicts"),
                    ("Established", "InitialNamesAccepted"),
                )
            ],
        }

    def _deactivate_crd(self, crd: Json) -> None:
        spec = crd["spec"]
        for version in spec["versions"]:
            res = kmock.resource(spec["group"], version["name"], spec["names"]["plural"])
            self._meta.pop(res, None)
            self._kinds.pop((_api_version(res), spec["names"]["kind"]), None)
            self.resources.pop(res, None)

    def _meta_for(self, res: kmock.resource | None) -> _ResourceMeta:
        if res is None or res.plural is None or res not in self._meta:
            raise _unknown_resource()
        return self._meta[res]

    # ----------------------------------------------------------------------------------------
    # Store primitives (call with the store lock held).
    # ----------------------------------------------------------------------------------------

    def _current(self, res: kmock.resource, namespace: str | None, name: str) -> Json | None:
        try:
            obj = self.objects[res, namespace, name]
        except KeyError:
            return None
        return None if obj.deleted else obj.raw

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _emit(self, event: _Event) -> None:
        self._log.append(event)
        # Trimmed in batches (a list's head deletion moves the whole list); the history a watch
        # can resume from is still exactly the last `event_history` events (`_log_start`).
        if len(self._log) > 2 * self.event_history + 64:
            del self._log[: len(self._log) - self.event_history]
        self._notify_waiters()
        self._wake_from_any_thread(event.res)

    def _wake_from_any_thread(self, res: kmock.resource) -> None:
        # The watchers of `res` (and the followers of its Pods' logs) run in the server's loop.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._wake_watchers(res)
            else:
                # A loop closed in between has nobody watching.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._wake_watchers, res)

    def _log_start(self) -> int:
        # Where the resumable history starts in `_log` (the last `event_history` events).
        return max(0, len(self._log) - self.event_history)

    def _notify_waiters(self) -> None:
        # Wake `wait_for` callers in other threads to re-check their conditions.
        with self._changed:
            self._changes += 1
            self._changed.notify_all()

    def _wake_watchers(self, res: kmock.resource | None = None) -> None:
        # The watchers of a resource (of all, if none is given) await its current wake-up; set
        # it, and the next watcher to wait takes a fresh one. Runs in the server's loop.
        for key in list(self._wakes) if res is None else [res]:
            wake = self._wakes.pop(key, None)
            if wake is not None:
                wake.set()

    def _store(self, res: kmock.resource, namespace: str | None, name: str, obj: Json) -> None:
        key = (res, namespace, name)
        if key in self.objects:
            self.objects[key].history.append(obj)
        else:
            self.objects[key] = obj
        self._live.setdefault(res, {}).setdefault(namespace, {})[name] = self.objects[key]

    def _unindex(self, res: kmock.resource, namespace: str | None, name: str) -> None:
        names = self._live.get(res, {}).get(namespace)
        if names is not None:
            names.pop(name, None)
            if not names:
                del self._live[res][namespace]

    def _finalize_delete(self, meta: _ResourceMeta, obj: Json) -> Json:
        # The object leaves storage; its DELETED event carries a new resourceVersion.
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        namespace, name = obj["metadata"].get("namespace"), obj["metadata"]["name"]
        self._store(meta.res, namespace, name, obj)
        self.objects[meta.res, namespace, name].delete()
        self._unindex(meta.res, namespace, name)
        self._emit(_Event(self._rv, meta.res, "DELETED", obj))
        if meta.res.plural == "customresourcedefinitions":
            self._deactivate_crd(obj)
        return obj

    # ----------------------------------------------------------------------------------------
    # Validation shared by create and update.
    # ----------------------------------------------------------------------------------------

    def _check_metadata(self, meta: _ResourceMeta, obj: Json) -> list[_Cause]:
        causes: list[_Cause] = []
        md = obj.get("metadata") or {}
        name = md.get("name") or ""
        label_named = (meta.res.group, meta.res.plural) in _LABEL_NAMED
        pattern, limit = (_DNS_LABEL, 63) if label_named else (_DNS_SUBDOMAIN, 253)
        if not pattern.fullmatch(name) or len(name) > limit:
            causes.append(
                _Cause(
                    "metadata.name",
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(name)}: a lowercase RFC 1123 "
                    f"{'label' if label_named else 'subdomain'} must consist of lower case "
                    f"alphanumeric characters, '-' or '.', at most {limit} characters",
                )
            )
        for field in ("labels", "annotations"):
            for key, value in (md.get(field) or {}).items():
                prefix, _, short = key.rpartition("/")
                if (
                    not _LABEL_NAME.fullmatch(short)
                    or len(short) > 63
                    or (prefix and (not _DNS_SUBDOMAIN.fullmatch(prefix) or len(prefix) > 253))
                ):
                    causes.append(
                        _Cause(f"metadata.{field}", "FieldValueInvalid", f"Invalid value: {key!r}")
                    )
                if field == "labels" and (
                    not isinstance(value, str)
                    or len(value) > 63
                    or (value and not _LABEL_NAME.fullmatch(value))
                ):
                    causes.append(
                        _Cause(
                            "metadata.labels",
                            "FieldValueInvalid",
                            f"Invalid value: {json.dumps(value)}: a valid label must be 63 "
                            "characters or less, alphanumeric, '-', '_' or '.', starting and "
                            "ending with an alphanumeric character",
                        )
                    )
        for i, ref in enumerate(md.get("ownerReferences") or []):
            for required in ("apiVersion", "kind", "name", "uid"):
                if not ref.get(required):
                    causes.append(
                        _Cause(
                            f"metadata.ownerReferences[{i}].{required}",
                            "FieldValueRequired" if required != "uid" else "FieldValueInvalid",
                            f"Invalid value: {json.dumps(ref.get(required, ''))}: "
                            f"{required} must not be empty",
                        )
                    )
        return causes

    def _admit(
        self, meta: _ResourceMeta, obj: Json, *, strict: bool = False, old: Json | None = None
    ) -> Json:
        """Prune, default and validate an object as the API server does before storing it
        (``old`` is the stored object an update replaces)."""
        _normalize_metadata(obj)
        builtin = self.strict_validation and not meta.custom
        decoded: list[_Cause] = []
        if builtin:
            # Strict mode: decode as into the Go type (400 on wrong types, malformed quantities
            # or times; unknown fields dropped with a warning, or 400 when Strict).
            obj, decoded, warnings = _decode_builtin(meta, obj, strict=strict)
            _warn(warnings)
        causes = self._check_metadata(meta, obj)
        if self.strict_validation:
            causes += _strict_metadata_causes(obj)
        causes += decoded
        if builtin:
            check = _BUILTIN_CHECKS.get((str(meta.res.group), str(meta.res.plural)))
            if check is not None:
                causes += check(obj, old)
        if meta.custom and meta.schema:
            pruned = _prune_and_default(obj, meta.schema, root=True)
            if strict:
                unknown = _unknown_fields(obj, pruned)
                if unknown:
                    # `fieldValidation=Strict`: unknown fields are an error, not dropped.
                    raise _bad_request(
                        "strict decoding error: "
                        + ", ".join(f'unknown field "{field}"' for field in unknown)
                    )
            obj = pruned
            assert meta.validator is not None
            causes += _schema_causes(meta.validator, obj)
        if causes:
            raise _invalid(meta.kind, meta.res.group or "", obj["metadata"].get("name"), causes)
        return obj

    # ----------------------------------------------------------------------------------------
    # The API, synchronously: used by the HTTP handlers and directly by tests.
    # ----------------------------------------------------------------------------------------

    def create_object(
        self,
        manifest: Mapping[str, Any],
        *,
        resource: ResourceRef | None = None,
        namespace: str | None = None,
        strict: bool = False,
    ) -> Json:
        """Create an object (a dict with apiVersion and kind) as a POST would; returns it.

        The resource is looked up from apiVersion/kind unless given; the namespace is
        taken from the argument, then from the object's metadata."""
        if not isinstance(manifest, Mapping):
            raise _bad_request("the body of the request is not a JSON object")
        obj: Json = copy.deepcopy(dict(manifest))
        with self._store_lock:
            if resource is not None:
                res = _as_resource(resource)
            else:
                key = (str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
                if key not in self._kinds:
                    raise _bad_request(f"no resource is registered for {key[0]}, Kind={key[1]}")
                res = self._kinds[key]
            meta = self._meta_for(res)
            # Fix 2: apiVersion/kind must match the endpoint; the server fills them in.
            if (
                obj.get("apiVersion", meta.api_version) != meta.api_version
                or obj.get("kind", meta.kind) != meta.kind
            ):
                raise _bad_request(
                    f"the API version in the data ({obj.get('apiVersion')}) or kind "
                    f"({obj.get('kind')}) does not match the expected {meta.api_version}, "
                    f"Kind={meta.kind}"
                )
            obj["apiVersion"], obj["kind"] = meta.api_version, meta.kind
            md = obj.setdefault("metadata", {})
            if not isinstance(md, dict):
                raise _bad_request("metadata must be an object")

            # Fix 2: the namespace comes from the URL; a different one in the body is refused.
            if meta.namespaced:
                if namespace and md.get("namespace") and md["namespace"] != namespace:
                    raise _bad_request(
                        "the namespace of the provided object does not match the namespace "
                        "sent on the request"
                    )
                md["namespace"] = namespace or md.get("namespace") or "default"
            else:
                md.pop("namespace", None)
            ns = md.get("namespace")

            # Fix 2: generateName gets the API server's five random characters.
            if not md.get("name") and md.get("generateName"):
                while True:
                    suffix = "".join(random.choices(_GENERATED_CHARS, k=5))
                    candidate = f"{md['generateName']}{suffix}"
                    if self._current(res, ns, candidate) is None:
                        md["name"] = candidate
                        break
            if not md.get("name"):
                raise _invalid(
                    meta.kind,
                    res.group or "",
                    None,
                    [
                        _Cause(
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            name = md["name"]
            if self._current(res, ns, name) is not None:
                what = f"{res.plural}.{res.group}" if res.group else str(res.plural)
                raise _error(
                    409,
                    "AlreadyExists",
                    f'{what} "{name}" already exists',
                    name=name,
                    group=res.group,
                    kind=res.plural,
                )

            # Fix 2: server-owned metadata is set by the server, whatever the client sent.
            for field in (*_SERVER_OWNED_META, "resourceVersion", "managedFields", "selfLink"):
                md.pop(field, None)
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = _now()
            md["generation"] = 1
            # A status subresource means status is ignored on create (PrepareForCreate).
            if "status" in meta.subresources:
                obj.pop("status", None)
                initial = _INITIAL_STATUS.get((str(res.group), str(res.plural)))
                if initial is not None:
                    obj["status"] = copy.deepcopy(initial)
            obj = self._admit(meta, obj, strict=strict)
            self._enforce_owner_references(meta, obj, None)
            if res.plural == "customresourcedefinitions":
                self._activate_crd(obj)
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            self._store(res, ns, name, obj)
            self._emit(_Event(self._rv, res, "ADDED", obj))
            return copy.deepcopy(obj)

    def get_object(self, resource: ResourceRef, namespace: str | None, name: str) -> Json | None:
        """The stored object (a copy), or None if absent."""
        res = _as_resource(resource)
        with self._store_lock:
            obj = self._current(res, namespace, name)
            return copy.deepcopy(obj) if obj is not None else None

    def list_objects(
        self,
        resource: ResourceRef,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Json]:
        """The stored objects of a resource (copies), in all namespaces if none is given."""
        res = _as_resource(resource)
        flt = _Filter(
            namespace=namespace,
            labels=tuple(parse_label_selector(label_selector)),
            fields=tuple(parse_field_selector(field_selector)),
        )
        with self._store_lock:
            return [copy.deepcopy(obj) for obj in self._select(res, flt)]

    def _select(self, res: kmock.resource, flt: _Filter) -> list[Json]:
        # The API server lists in key order: namespace, then name. Only the resource's live
        # objects in the namespace (or in all of them) are looked at.
        spaces = self._live.get(res, {})
        namespaces: list[str | None]
        if flt.namespace is not None:
            namespaces = [flt.namespace] if flt.namespace in spaces else []
        else:
            namespaces = sorted(spaces, key=lambda ns: "" if ns is None else ns)
        found: list[Json] = []
        for ns in namespaces:
            objects = spaces[ns]
            if flt.name is not None:
                names = [flt.name] if flt.name in objects else []
            else:
                names = sorted(objects)
            for name in names:
                obj = objects[name]
                if not obj.deleted:
                    raw = obj.raw
                    if flt.matches(raw):
                        found.append(raw)
        return found

    def _update(
        self,
        res: kmock.resource,
        namespace: str | None,
        name: str,
        change: Callable[[Json], Json],
        *,
        subresource: str | None = None,
        strict: bool = False,
    ) -> Json:
        """Apply a change to a stored object with the API server's update semantics."""
        with self._store_lock:
            meta = self._meta_for(res)
            if subresource is not None and subresource not in meta.subresources:
                raise _unknown_resource()
            if subresource not in (None, "status"):
                raise _error(405, "MethodNotAllowed", f"{subresource} cannot be updated here")
            ns = namespace if meta.namespaced else None
            old = self._current(res, ns, name)
            if old is None:
                raise _not_found(res, name)
            new = change(copy.deepcopy(old))
            if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), dict):
                raise _bad_request("the patched object is not a JSON object")
            new_md = new.setdefault("metadata", {})

            # Fix 7: a resourceVersion in the request is a precondition: stale means 409.
            if new_md.get("resourceVersion") not in (None, "", old["metadata"]["resourceVersion"]):
                raise _conflict(res, name)

            # Fix 7: `/status` is a subresource: the main endpoint ignores status, and the
            # status endpoint ignores everything but status (the CRD status strategy).
            if "status" in meta.subresources:
                if subresource == "status":
                    status = new.get("status")
                    new = copy.deepcopy(old)
                    new.pop("status", None)
                    if status is not None:
                        new["status"] = status
                else:
                    new.pop("status", None)
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
            new_md = new.setdefault("metadata", {})

            # Identity and server-owned metadata cannot be changed by clients.
            new["apiVersion"], new["kind"] = meta.api_version, meta.kind
            new_md["name"] = name
            if ns is not None:
                new_md["namespace"] = ns
            else:
                new_md.pop("namespace", None)
            for field in _SERVER_OWNED_META:
                new_md.pop(field, None)
                if field in old["metadata"]:
                    new_md[field] = old["metadata"][field]
            new_md["resourceVersion"] = old["metadata"]["resourceVersion"]
            if old["metadata"].get("deletionTimestamp"):
                added = set(new_md.get("finalizers") or []) - set(
                    old["metadata"].get("finalizers") or []
                )
                if added:
                    raise _invalid(
                        meta.kind,
                        res.group or "",
                        name,
                        [
                            _Cause(
                                "metadata.finalizers",
                                "FieldValueForbidden",
                                "Forbidden: no new finalizers can be added if the object is "
                                "being deleted",
                            )
                        ],
                    )
            new = self._admit(meta, new, strict=strict, old=old)
            new_md = new["metadata"]
            self._enforce_owner_references(meta, new, old)

            # A no-op write changes nothing: same resourceVersion, no watch event.
            if new == old:
                return copy.deepcopy(old)

            # Fix 2: generation counts changes of anything but metadata (and status, when
            # status is a subresource).
            skip = {"metadata", "status"} if "status" in meta.subresources else {"metadata"}
            if {k: v for k, v in new.items() if k not in skip} != {
                k: v for k, v in old.items() if k not in skip
            }:
                new_md["generation"] = int(old["metadata"].get("generation", 1)) + 1
            if res.plural == "customresourcedefinitions":
                self._activate_crd(new)  # validates first: a refused CRD changes nothing
                self._deactivate_crd(old)
                self._activate_crd(new)  # versions dropped from the CRD stop being served
            new_md["resourceVersion"] = str(self._next_rv())
            self._store(res, ns, name, new)
            self._emit(_Event(self._rv, res, "MODIFIED", new, old))

            # The last finalizer removed from a deleting object lets it go.
            if new_md.get("deletionTimestamp") and not new_md.get("finalizers"):
                self._finalize_delete(meta, new)
            return copy.deepcopy(new)

    def patch_object(
        self,
        resource: ResourceRef,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
        strict: bool = False,
    ) -> Json:
        """Patch an object: ``patch_type`` is "merge" (RFC 7386; also used for apply to an
        existing object), "strategic" (`strategic_merge_patch`) or "json" (RFC 6902). Returns
        the stored object."""
        res = _as_resource(resource)
        if patch_type == "json":
            if not isinstance(patch, list):
                raise _bad_request("a JSON patch must be a list of operations")

            def change(obj: Json) -> Json:
                # Fix 4: JSON patches apply in full, `test` included; a failing operation is
                # 422, which kopf takes as "retry on the next cycle".
                try:
                    result: Json = jsonpatch.apply_patch(obj, patch)
                except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
                    raise _error(422, "Invalid", f"the server rejected our request: {e}") from e
                return result
        else:
            if not isinstance(patch, Mapping):
                raise _bad_request("a merge patch must be a JSON object")

            def change(obj: Json) -> Json:
                if patch_type == "strategic":
                    meta = self._meta_for(res)
                    schema = _builtin_schema(meta.api_version, meta.kind)
                    merged: Json = strategic_merge_patch(obj, patch, schema)
                    return merged
                result: Json = merge_patch(obj, patch)
                return result

        return self._update(res, namespace, name, change, subresource=subresource, strict=strict)

    def replace_object(
        self,
        resource: ResourceRef,
        namespace: str | None,
        name: str,
        obj: Mapping[str, Any],
        *,
        subresource: str | None = None,
        strict: bool = False,
    ) -> Json:
        """Replace an object as PUT does (a resourceVersion in it must be current)."""
        res = _as_resource(resource)
        body = copy.deepcopy(dict(obj))
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise _bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        return self._update(
            res, namespace, name, lambda _: body, subresource=subresource, strict=strict
        )

    def delete_object(
        self,
        resource: ResourceRef,
        namespace: str | None,
        name: str,
        *,
        preconditions: Mapping[str, str] | None = None,
    ) -> Json:
        """Delete an object as the API server does: with finalizers, mark it (deletionTimestamp)
        and keep it until they are gone; without, remove it. Returns its last state."""
        res = _as_resource(resource)
        with self._store_lock:
            meta = self._meta_for(res)
            ns = namespace if meta.namespaced else None
            obj = self._current(res, ns, name)
            if obj is None:
                raise _not_found(res, name)
            for field in ("uid", "resourceVersion"):
                wanted = (preconditions or {}).get(field)
                if wanted and wanted != obj["metadata"].get(field):
                    raise _error(
                        409,
                        "Conflict",
                        f"Precondition failed: {field} in precondition: {wanted}, "
                        f"{field} in object meta: {obj['metadata'].get(field)}",
                        name=name,
                        group=res.group,
                        kind=res.plural,
                    )
            if not obj["metadata"].get("finalizers"):
                return copy.deepcopy(self._finalize_delete(meta, obj))
            if obj["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(obj)
            # Graceful deletion: mark, bump generation, wait for the finalizers.
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1
            new["metadata"]["resourceVersion"] = str(self._next_rv())
            self._store(res, ns, name, new)
            self._emit(_Event(self._rv, res, "MODIFIED", new, obj))
            return copy.deepcopy(new)

    # ----------------------------------------------------------------------------------------
    # RBAC (opt-in).
    # ----------------------------------------------------------------------------------------

    @property
    def admin_token(self) -> str:
        """The bearer token of the admin user (the kubeconfig's "emulator-admin" context)."""
        return self.rbac.admin_token if self.rbac is not None else ADMIN_TOKEN

    def enable_rbac(self, policy: RbacPolicy | None) -> None:
        """Authorize every HTTP request not made as the admin against ``policy`` (None: turn
        RBAC off). The synchronous API used by tests is never authorized."""
        self.rbac = policy

    def _authorize_also(self, verb: str) -> None:
        # A request that needs a second permission (an apply that creates: `create` too).
        request, policy = _AUTHORIZING.get(), self.rbac
        if request is None or policy is None:
            return
        needed = dataclasses.replace(request, verb=verb)
        if not policy.allows(needed):
            status = policy.forbidden(needed)
            raise _error(403, "Forbidden", status["message"], **status.get("details", {}))

    def _enforce_owner_references(self, meta: _ResourceMeta, obj: Json, old: Json | None) -> None:
        # The OwnerReferencesPermissionEnforcement admission plugin (gc_admission.go), when the
        # policy turns it on: changing an existing object's ownerReferences needs `delete` on it;
        # a new `blockOwnerDeletion: true` needs `update` on the owner's `finalizers`.
        request, policy = _AUTHORIZING.get(), self.rbac
        if request is None or policy is None or not policy.owner_references_enforcement:
            return
        refs = (obj.get("metadata") or {}).get("ownerReferences") or []
        old_refs = ((old or {}).get("metadata") or {}).get("ownerReferences") or []
        if (old is None and not refs) or (old is not None and refs == old_refs):
            return
        name = str((obj.get("metadata") or {}).get("name") or "")
        group, plural = str(meta.res.group or ""), str(meta.res.plural)

        def refuse(text: str) -> kmock.KubernetesError:
            status = forbidden_error(group, plural, name, text)
            return _error(403, "Forbidden", status["message"], **status.get("details", {}))

        if old is not None and not policy.allows(dataclasses.replace(request, verb="delete")):
            raise refuse("cannot set an ownerRef on a resource you can't delete: , <nil>")
        blocking_before = {r.get("uid") for r in old_refs if r.get("blockOwnerDeletion")}
        new_blocking = [
            r for r in refs if r.get("blockOwnerDeletion") and r.get("uid") not in blocking_before
        ]
        if not new_blocking:
            return
        anything = RequestAttributes(
            verb="update",
            path=request.path,
            resource_request=True,
            api_group="*",
            resource="*",
            subresource="finalizers",
        )
        if policy.allows(anything):
            return
        for ref in new_blocking:
            owner = self._kinds.get((str(ref.get("apiVersion")), str(ref.get("kind"))))
            if owner is None:
                raise refuse(
                    "cannot set blockOwnerDeletion in this case because cannot find RESTMapping "
                    f"for APIVersion {ref.get('apiVersion')} Kind {ref.get('kind')}: no matches "
                    f'for kind "{ref.get("kind")}" in version "{ref.get("apiVersion")}"'
                )
            finalizers = RequestAttributes(
                verb="update",
                path=request.path,
                resource_request=True,
                api_group=str(owner.group or ""),
                api_version=str(owner.version),
                resource=str(owner.plural),
                subresource="finalizers",
                namespace=request.namespace,
                name=str(ref.get("name") or ""),
            )
            if not policy.allows(finalizers):
                raise refuse(
                    "cannot set blockOwnerDeletion if an ownerReference refers to a resource "
                    "you can't set finalizers on: , <nil>"
                )

    # ----------------------------------------------------------------------------------------
    # Helpers for tests: status changes the missing controllers would make.
    # ----------------------------------------------------------------------------------------

    def patch_status(
        self, resource: ResourceRef, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> Json:
        """Merge-patch an object's status (through `/status` where it is a subresource), as a
        controller would. Returns the stored object."""
        res = _as_resource(resource)
        with self._store_lock:
            sub = "status" if "status" in self._meta_for(res).subresources else None
        return self.patch_object(res, namespace, name, {"status": dict(status)}, subresource=sub)

    def start_job(self, namespace: str, name: str) -> Json:
        """Do what the Job controller does when a Job starts: create its Pod from the template
        (labelled and owned as the controller does) and mark the Job active. Returns the Pod."""
        job = self.get_object("batch/v1/jobs", namespace, name)
        if job is None:
            raise _not_found(_as_resource("batch/v1/jobs"), name)
        template = (job.get("spec") or {}).get("template") or {}
        uid = job["metadata"]["uid"]
        labels = {
            **((template.get("metadata") or {}).get("labels") or {}),
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        pod = self.create_object(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": f"{name}-",
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": (template.get("metadata") or {}).get("annotations") or {},
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": name,
                            "uid": uid,
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
        )
        self.patch_status("v1/pods", namespace, pod["metadata"]["name"], {"phase": "Running"})
        self.patch_status("batch/v1/jobs", namespace, name, {"active": 1, "startTime": _now()})
        return self.get_object("v1/pods", namespace, pod["metadata"]["name"]) or pod

    def finish_pod(
        self,
        namespace: str,
        name: str,
        *,
        exit_codes: Mapping[str, int] | None = None,
        messages: Mapping[str, str] | None = None,
    ) -> Json:
        """Terminate a Pod's containers as the kubelet reports it: init containers in order,
        then the main ones. Exit codes default to 0; an init container that fails leaves the
        later ones waiting. ``messages`` are termination messages by container name."""
        pod = self.get_object("v1/pods", namespace, name)
        if pod is None:
            raise _not_found(_as_resource("v1/pods"), name)
        codes, texts, now = dict(exit_codes or {}), dict(messages or {}), _now()
        spec = pod.get("spec") or {}

        def terminated(container: Mapping[str, Any]) -> Json:
            code = codes.get(container["name"], 0)
            state: Json = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": now,
                "finishedAt": now,
            }
            if container["name"] in texts:
                state["message"] = texts[container["name"]]
            return {
                "name": container["name"],
                "image": container.get("image", ""),
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": state},
            }

        def waiting(container: Mapping[str, Any], reason: str) -> Json:
            return {
                "name": container["name"],
                "image": container.get("image", ""),
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": reason}},
            }

        failed = False
        init_statuses = []
        for container in spec.get("initContainers") or []:
            init_statuses.append(
                waiting(container, "PodInitializing") if failed else terminated(container)
            )
            failed = (
                failed or init_statuses[-1]["state"].get("terminated", {}).get("exitCode", 0) != 0
            )
        main_statuses = [
            waiting(c, "PodInitializing") if failed else terminated(c)
            for c in spec.get("containers") or []
        ]
        failed = failed or any(s["state"]["terminated"]["exitCode"] for s in main_statuses)
        status: Json = {
            "phase": "Failed" if failed else "Succeeded",
            "containerStatuses": main_statuses,
        }
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        return self.patch_status("v1/pods", namespace, name, status)

    def complete_job(
        self,
        namespace: str,
        name: str,
        *,
        succeeded: bool = True,
        reason: str | None = None,
        message: str | None = None,
    ) -> Json:
        """Mark a Job finished as the Job controller does: the Complete (or Failed) condition
        after SuccessCriteriaMet (or FailureTarget), counters and completionTime."""
        job = self.get_object("batch/v1/jobs", namespace, name)
        if job is None:
            raise _not_found(_as_resource("batch/v1/jobs"), name)
        now = _now()
        start = (job.get("status") or {}).get("startTime") or now

        def condition(kind: str, why: str, text: str) -> Json:
            return {
                "type": kind,
                "status": "True",
                "reason": why,
                "message": text,
                "lastProbeTime": now,
                "lastTransitionTime": now,
            }

        if succeeded:
            status: Json = {
                "startTime": start,
                "completionTime": now,
                "active": None,
                "ready": 0,
                "succeeded": 1,
                "conditions": [
                    condition(
                        "SuccessCriteriaMet",
                        reason or "CompletionsReached",
                        message or "Reached expected number of succeeded pods",
                    ),
                    condition(
                        "Complete",
                        reason or "CompletionsReached",
                        message or "Reached expected number of succeeded pods",
                    ),
                ],
            }
        else:
            why = reason or "BackoffLimitExceeded"
            text = message or "Job has reached the specified backoff limit"
            status = {
                "startTime": start,
                "active": None,
                "ready": 0,
                "failed": 1,
                "conditions": [
                    condition("FailureTarget", why, text),
                    condition("Failed", why, text),
                ],
            }
        return self.patch_status("batch/v1/jobs", namespace, name, status)

    def set_pod_log(
        self, namespace: str, name: str, text: str, container: str | None = None
    ) -> None:
        """Set what ``GET .../pods/{name}/log`` answers (for one container or any)."""
        with self._store_lock:
            self._pod_logs[(namespace, name, container)] = text
        self._wake_from_any_thread(_PODS)

    def append_pod_log(
        self, namespace: str, name: str, text: str, container: str | None = None
    ) -> None:
        """Add lines to a container's log, as the container writes them: a ``follow=true``
        reader gets them at once."""
        with self._store_lock:
            key = (namespace, name, container)
            self._pod_logs[key] = self._pod_logs.get(key, "") + text
        self._wake_from_any_thread(_PODS)

    def wait_for(
        self,
        predicate: Callable[[], _T | Literal[False] | None],
        *,
        timeout: float = 10.0,
        interval: float = 0.05,
        message: str | Callable[[], str] = "condition not met",
    ) -> _T:
        """Wait until ``predicate()`` is truthy and return its value (so never None or False:
        ``lambda: a and b`` waits for ``b``). It is re-checked on every
        change to the emulator's objects, and every ``interval`` seconds for anything else;
        fails the test with ``message`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                seen = self._changes
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                text = message() if callable(message) else message
                raise AssertionError(f"Timed out after {timeout}s: {text}")
            with self._changed:
                if self._changes == seen:
                    self._changed.wait(timeout=min(remaining, interval))

    def open_watches(self, resource: ResourceRef) -> int:
        """How many watch streams on a resource are open now. kopf signals ready before it
        watches anything: ``emulator.wait_for(lambda: emulator.open_watches(GOALS))`` waits
        until it does (needed only to assert that something does *not* happen; objects created
        earlier are seen anyway)."""
        with self._store_lock:
            return self._watching.get(_as_resource(resource), 0)

    @property
    def resource_version(self) -> str:
        """The latest resourceVersion handed out (as the API server's list metadata has it)."""
        return str(self._rv)

    # ----------------------------------------------------------------------------------------
    # HTTP: request parsing and routing.
    # ----------------------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Serve one HTTP request (kmock's entry point, with the namespace-aware parser)."""
        # Same as kmock's RawHandler.__call__, except for `_parse_request` (fix 3), the
        # bounded request history, and the opt-in faults and RBAC in front of the handlers.
        await raw_request.read()
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            request = await self._parse_request(raw_request, id=self._served_requests)
            self._served_requests += 1
            self._remember(request)
            info = request_attributes(raw_request.method, raw_request.path, raw_request.query)
            fault = self.faults.select(info)
            if fault is not None:
                if fault.delay:
                    await self._pause(fault.delay)
                if not fault.commit and (fault.drop or fault.status is not None):
                    return self._fail(raw_request, fault, info)
            # RBAC as the API server's authorization filter: before any handler, a Status 403.
            authorizing = None
            if self.rbac is not None and not self._is_admin(raw_request):
                if not self.rbac.allows(info):
                    return aiohttp.web.json_response(self.rbac.forbidden(info), status=403)
                authorizing = _AUTHORIZING.set(info)
            warnings: list[str] = []
            collecting = _WARNINGS.set(warnings)
            try:
                response = await self._handle(request)
            except rendering.StreamingError as e:
                raw_response = e.args[0]
                if e.__cause__ is not None:
                    raise e.__cause__ from None
                raise
            finally:
                # Requests on one keep-alive connection share a task (and its context).
                _WARNINGS.reset(collecting)
                if authorizing is not None:
                    _AUTHORIZING.reset(authorizing)
            if warnings and not response.prepared:
                # The API server's warnings (e.g. dropped unknown fields), as client-go reads them.
                response.headers["Warning"] = ", ".join(
                    '299 - "{}"'.format(w.replace("\\", "\\\\").replace('"', '\\"'))
                    for w in warnings
                )
            if fault is not None and fault.commit:
                return self._fail(raw_request, fault, info)  # done, but the answer is lost
            return response
        except Exception as e:
            if not self._errors:
                raise
            self._errors[-1].append(e)
            if raw_response is None or not raw_response.prepared:
                return await self._render_error(e)
            await self._stream_error(e, raw_response)
            await raw_response.write_eof()
            return raw_response

    def _is_admin(self, raw_request: aiohttp.web.BaseRequest) -> bool:
        # The admin endpoint's requests, or those with the admin's bearer token.
        transport = raw_request.transport
        local = transport.get_extra_info("sockname") if transport is not None else None
        if local and local[1] in self.admin_ports:
            return True
        return self.rbac is not None and self.rbac.is_admin(raw_request.headers)

    async def _pause(self, seconds: float) -> None:
        # An injected delay, cut short when the emulator stops.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._closing and (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(left, 0.05))

    @staticmethod
    def _fail(
        raw_request: aiohttp.web.BaseRequest, fault: Fault, info: RequestAttributes
    ) -> aiohttp.web.StreamResponse:
        # An injected failure: a Status answer, or the connection closed without one.
        if fault.drop:
            transport = raw_request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError  # aiohttp closes the connection; nothing is written
        assert fault.status is not None
        return aiohttp.web.json_response(
            fault.status_body(info), status=fault.status, headers=fault.headers()
        )

    @staticmethod
    async def _parse_request(raw_request: aiohttp.web.BaseRequest, *, id: int) -> rendering.Request:
        body = await raw_request.read()
        text = body.decode("utf-8", errors="replace")
        data: Any = None
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                # Server-side apply bodies may be YAML (application/apply-patch+yaml).
                if "yaml" in raw_request.content_type:
                    try:
                        data = yaml.safe_load(text)
                    except yaml.YAMLError:
                        data = None
        k8s = _parse_path(raw_request.path)
        resource = (
            None
            if k8s.group is None
            else kmock.resource(group=k8s.group, version=k8s.version, plural=k8s.plural)
        )
        method = enums.method(raw_request.method)
        return rendering.Request(
            id=id,
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            data=data,
            body=body,
            text=text,
            action=parsing.guess_k8s(k8s, method, dict(raw_request.query)),
            resource=resource,
            namespace=k8s.namespace,
            name=k8s.name,
            subresource=k8s.subresource,
        )

    def _remember(self, request: rendering.Request) -> None:
        # The requests kept for assertions: the last `request_history` (trimmed in batches, as
        # deleting a list's head moves all of it).
        self._requests.append(request)
        limit = self.request_history
        if limit is not None and len(self._requests) > 2 * limit + 64:
            del self._requests[: len(self._requests) - limit]

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # kmock's RawHandler._handle, except for how a request is matched to reactions.
        # It bypasses kmock's own state-tracking in KubernetesEmulator._handle: the state
        # changes in the fallback handlers below, so a test's reaction intercepting a request
        # (e.g. a 500 injected with `emulator[...] << 500`) leaves the objects untouched, as a
        # failed request does on a real API server.
        #
        # kmock asks `request in reaction's view`, which iterates every request the view has
        # ever seen through its filters: each request costs O(requests so far x reactions).
        # Here the request itself is checked against each view's criteria (`_sees`), with the
        # same answer. The emulator's own reactions serve without recording the request again
        # (nothing can read their records); a test's reactions record it, as in kmock.
        for reaction in self._reactions_in_order():
            if self._sees(reaction._source, request) and not reaction._disabled.is_set():
                try:
                    # kmock's Response keeps the status and headers of a `Response` a handler
                    # returned (it sets them on itself), so after `pods/log` answered text/plain
                    # every later object GET did too. Each request renders a fresh copy: a
                    # response's content type and status are its own, as on the API server.
                    fresh = attrs.evolve(reaction.response)
                    if id(reaction) not in self._own_ids:
                        reaction._requests.append(request)  # what `reaction(request)` records
                    return await fresh(request)
                except rendering.ReactionMismatchError:  # either mismatch or depletion
                    reaction._disabled.set()
                except NotImplementedError:  # matched, but nothing to respond with
                    pass
        raise NotImplementedError(
            "Undefined server behaviour: no reaction matching the request is defined."
        )

    def _reactions_in_order(self) -> list[kmock.Reaction]:
        # kmock's order: by priority, highest first (padded with zeroes to the same depth), then
        # in the order of definition. Recomputed only when the reactions change.
        key = tuple(map(id, self._payloads))
        if key != self._order_key:
            reactions = list(self._payloads)
            priorities = [tuple(-p for p in r.priorities) for r in reactions]
            depth = max((len(p) for p in priorities), default=0)
            padded = [p + (0,) * (depth - len(p)) for p in priorities]
            indexes = sorted(range(len(reactions)), key=lambda i: padded[i])
            self._order = [reactions[i] for i in indexes]  # keeps them alive: ids stay unique
            self._order_key = key
        return self._order

    def _sees(self, view: kmock.View, request: rendering.Request) -> bool:
        """Whether a just-received request is among a DSL view's requests (kmock's
        ``request in view``), without iterating the requests the view saw before."""
        kind = type(view)  # exactly kmock's views: a subclass may see requests differently
        match view:
            case kmock.Filter() if kind is kmock.Filter:
                return self._sees(view._source, request) and bool(view.criteria(request))
            case kmock.Priority() if kind is kmock.Priority:
                return self._sees(view._source, request)
            case _ if view is self:
                return True  # every request reaches the handler that received it
            case kmock.OrGroup() if kind is kmock.OrGroup:
                return any(self._sees(source, request) for source in view._sources)
            case kmock.AndGroup() if kind is kmock.AndGroup:
                return all(self._sees(source, request) for source in view._sources)
            case kmock.Exclusion() if kind is kmock.Exclusion:
                return self._sees(view._source, request) and not any(
                    self._sees(excluded, request) for excluded in view._exclusions
                )
            case _:
                # Slices, streams, other handlers, reactions' records: kmock's own check.
                return request in view

    def _get_resources(self) -> list[kmock.resource]:
        # kmock adds the resource of every stored object, scanning them all; every stored
        # object's resource is registered already.
        return kmock.KubernetesScaffold._get_resources(self)

    @staticmethod
    def _is_resource_request(request: rendering.Request) -> bool:
        return request.resource is not None and request.resource.plural is not None

    @classmethod
    def _is_replace(cls, request: rendering.Request) -> bool:
        return cls._is_resource_request(request) and request.method == enums.method.PUT

    @classmethod
    def _is_delete_collection(cls, request: rendering.Request) -> bool:
        return (
            cls._is_resource_request(request)
            and request.method == enums.method.DELETE
            and request.name is None
        )

    def _filter_for(self, request: rendering.Request, meta: _ResourceMeta) -> _Filter:
        return _Filter(
            namespace=request.namespace if meta.namespaced else None,
            name=request.name,
            labels=tuple(parse_label_selector(request.params.get("labelSelector", ""))),
            fields=tuple(parse_field_selector(request.params.get("fieldSelector", ""))),
        )

    # Fix 5: lists carry kind, apiVersion and the resourceVersion a watch resumes from.
    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        if not self._is_resource_request(request):
            raise NotImplementedError  # discovery paths are served elsewhere
        meta = self._meta_for(request.resource)
        flt = self._filter_for(request, meta)
        table = self._table_version(request, meta)
        with self._store_lock:
            items = self._select(meta.res, flt)
            rv = str(self._rv)
        if table is not None:
            return self._table(request, meta, items, rv, table)
        page = _page(items, rv, request.params.get("limit"), request.params.get("continue"))
        return {
            "apiVersion": meta.api_version,
            "kind": f"{meta.kind}List",
            **page,
        }

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        meta = self._meta_for(request.resource)
        ns = request.namespace if meta.namespaced else None
        assert request.name is not None
        if request.subresource == "log" and "log" in meta.subresources:
            container = request.params.get("container")
            with self._store_lock:
                if self._current(meta.res, ns, request.name) is None:
                    raise _not_found(meta.res, request.name)
                text = self._pod_log(ns or "", request.name, container)
            if request.params.get("follow") == "true":
                stream = self._follow_log(meta, ns or "", request.name, container)
                return rendering.Response(headers={"Content-Type": "text/plain"}, payload=stream)
            return rendering.Response(
                status=200, headers={"Content-Type": "text/plain"}, payload=text.encode()
            )
        if request.subresource is not None and (
            request.subresource != "status" or "status" not in meta.subresources
        ):
            raise _unknown_resource()
        table = self._table_version(request, meta) if request.subresource is None else None
        with self._store_lock:
            obj = self._current(meta.res, ns, request.name)
        if obj is None:
            raise _not_found(meta.res, request.name)
        if table is not None:
            return self._table(request, meta, [obj], obj["metadata"]["resourceVersion"], table)
        return obj

    def _pod_log(self, namespace: str, name: str, container: str | None) -> str:
        # The container's own log, else the one set for any container of the Pod.
        text = self._pod_logs.get((namespace, name, container))
        return self._pod_logs.get((namespace, name, None), "") if text is None else text

    async def _follow_log(
        self, meta: _ResourceMeta, namespace: str, name: str, container: str | None
    ) -> AsyncIterator[rendering.Payload]:
        # `follow=true` as the kubelet serves it: the log so far, then each line as it is
        # written, until the container is no longer running (or the Pod is gone).
        sent = 0
        yield b""  # the headers now, as the API server sends them
        while not self._closing:
            wake = self._wakes.get(meta.res)
            if wake is None:
                wake = self._wakes[meta.res] = asyncio.Event()
            with self._store_lock:
                pod = self._current(meta.res, namespace, name)
                text = self._pod_log(namespace, name, container)
            if len(text) > sent:
                yield text[sent:].encode()
                sent = len(text)
                continue
            if pod is None or not _container_running(pod, container) or self._loop is None:
                return
            await wake.wait()

    # Table output: what `kubectl get` asks for first (`Accept: application/json;as=Table;
    # v=v1;g=meta.k8s.io, ...`). The API server answers a custom resource's list or object as a
    # Table of its CRD's printer columns; without one, kubectl prints NAME and AGE only.
    # Built-in kinds answer the object (their columns are the API server's own code).
    @staticmethod
    def _table_version(request: rendering.Request, meta: _ResourceMeta) -> str | None:
        accept = next((v for k, v in request.headers.items() if k.lower() == "accept"), "")
        return table_version(accept, tables=meta.custom)

    @staticmethod
    def _table(
        request: rendering.Request,
        meta: _ResourceMeta,
        objects: Sequence[Json],
        resource_version: str,
        version: str,
    ) -> Json:
        include = request.params.get("includeObject", "Metadata")
        if include not in ("None", "Metadata", "Object"):
            raise _bad_request(f'includeObject: unsupported value "{include}"')
        now = datetime.datetime.now(datetime.UTC)
        definitions = [
            {
                "name": "Name",
                "type": "string",
                "format": "name",
                "description": _NAME_DESCRIPTION,
                "priority": 0,
            }
        ]
        for column in meta.columns:
            definitions.append(
                {
                    "name": column["name"],
                    "type": column["type"],
                    "format": column.get("format", ""),
                    "description": column.get("description")
                    or f"Custom resource definition column (in JSONPath format): "
                    f"{column['jsonPath']}",
                    "priority": column.get("priority", 0),
                }
            )
        rows = []
        for obj in objects:
            row: Json = {
                "cells": [
                    obj["metadata"]["name"],
                    *(
                        table_cell(column["type"], jsonpath_values(obj, column["jsonPath"]), now)
                        for column in meta.columns
                    ),
                ]
            }
            if include == "Object":
                row["object"] = obj
            elif include == "Metadata":
                row["object"] = {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": f"meta.k8s.io/{version}",
                    "metadata": obj["metadata"],
                }
            rows.append(row)
        return {
            "kind": "Table",
            "apiVersion": f"meta.k8s.io/{version}",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": definitions,
            "rows": rows,
        }

    @staticmethod
    def _body(request: rendering.Request) -> Any:
        # Only JSON (and YAML for apply) is understood; protobuf, which kubectl's typed
        # commands send, is refused the way a server without that codec would refuse it.
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if request.body and request.data is None:
            raise _error(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format ({content_type}) - accepted "
                "media types include: application/json, application/yaml",
            )
        return request.data

    @staticmethod
    def _strict(request: rendering.Request) -> bool:
        return request.params.get("fieldValidation") == "Strict"

    # Fix 1: create answers 201 Created with the stored object.
    async def _serve_create(self, request: rendering.Request) -> rendering.Payload:
        if not self._is_resource_request(request):
            raise NotImplementedError
        meta = self._meta_for(request.resource)
        body = self._body(request)
        obj = self.create_object(
            body, resource=meta.res, namespace=request.namespace, strict=self._strict(request)
        )
        return rendering.Response(status=201, payload=obj)

    async def _serve_update(self, request: rendering.Request) -> rendering.Payload:
        meta = self._meta_for(request.resource)
        assert request.name is not None
        body, strict = self._body(request), self._strict(request)
        ns = request.namespace if meta.namespaced else None
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        kwargs: dict[str, Any] = {"subresource": request.subresource, "strict": strict}
        if content_type == "application/json-patch+json":
            obj = self.patch_object(meta.res, ns, request.name, body, patch_type="json", **kwargs)
        elif content_type == "application/merge-patch+json":
            obj = self.patch_object(meta.res, ns, request.name, body, **kwargs)
        elif content_type == "application/strategic-merge-patch+json":
            # Custom resources do not support strategic merge: the API server answers 415.
            # For built-ins it follows the official schema's patch strategies and merge keys.
            if meta.custom:
                raise _error(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    "include: application/json-patch+json, application/merge-patch+json, "
                    "application/apply-patch+yaml",
                )
            obj = self.patch_object(
                meta.res, ns, request.name, body, patch_type="strategic", **kwargs
            )
        elif content_type == "application/apply-patch+yaml":
            # Fix 5: server-side apply creates a missing object (201 Created); an apply to an
            # existing object is approximated by a merge patch (no field ownership).
            if not request.params.get("fieldManager"):
                raise _bad_request("PATCH with apply requires fieldManager to be set")
            if not isinstance(body, Mapping):
                raise _bad_request("the apply configuration is not an object")
            with self._store_lock:
                if self._current(meta.res, ns, request.name) is None:
                    # An apply that creates the object is authorized as a create too.
                    self._authorize_also("create")
                    body = merge_patch(body, {"metadata": {"name": request.name}})
                    created = self.create_object(
                        body, resource=meta.res, namespace=ns, strict=strict
                    )
                    return rendering.Response(status=201, payload=created)
                obj = self.patch_object(meta.res, ns, request.name, body, **kwargs)
        else:
            raise _error(415, "UnsupportedMediaType", f"unsupported patch type: {content_type!r}")
        return rendering.Response(status=200, payload=obj)

    # Fix 5: PUT replaces the object (subject to its resourceVersion).
    async def _serve_replace(self, request: rendering.Request) -> rendering.Payload:
        meta = self._meta_for(request.resource)
        if request.name is None:
            raise _error(405, "MethodNotAllowed", "PUT needs an object name")
        body = self._body(request)
        if not isinstance(body, Mapping):
            raise _bad_request("the body of the request is not a JSON object")
        obj = self.replace_object(
            meta.res,
            request.namespace if meta.namespaced else None,
            request.name,
            body,
            subresource=request.subresource,
            strict=self._strict(request),
        )
        return rendering.Response(status=200, payload=obj)

    async def _serve_delete(self, request: rendering.Request) -> rendering.Payload:
        meta = self._meta_for(request.resource)
        assert request.name is not None
        options = request.data if isinstance(request.data, Mapping) else {}
        preconditions = options.get("preconditions") or {}
        return self.delete_object(
            meta.res, request.namespace, request.name, preconditions=preconditions
        )

    async def _serve_delete_collection(self, request: rendering.Request) -> rendering.Payload:
        meta = self._meta_for(request.resource)
        flt = self._filter_for(request, meta)
        with self._store_lock:
            deleted = [
                self.delete_object(meta.res, o["metadata"].get("namespace"), o["metadata"]["name"])
                for o in self._select(meta.res, flt)
            ]
            rv = str(self._rv)
        return {
            "apiVersion": meta.api_version,
            "kind": f"{meta.kind}List",
            "metadata": {"resourceVersion": rv},
            "items": deleted,
        }

    # Fix 5 and 6: watches stream `application/json` lines; they start from the requested
    # resourceVersion (replaying the history since then), or from a snapshot taken atomically
    # with the subscription, so nothing created around the list-then-watch is ever missed.
    async def _serve_watch(  # type: ignore[override]  # a stream with headers, not a bare stream
        self, request: rendering.Request
    ) -> rendering.Payload:
        meta = self._meta_for(request.resource)
        flt = self._filter_for(request, meta)
        since = request.params.get("resourceVersion") or None
        if since is not None and not since.isdigit():
            raise _bad_request(f"invalid resourceVersion: {since!r}")
        timeout = request.params.get("timeoutSeconds")
        initial = request.params.get("sendInitialEvents") == "true"
        table = self._table_version(request, meta)
        stream = self._watch(meta, flt, since, float(timeout) if timeout else None, initial)
        if table is not None:  # `kubectl get -w`: each event's object a Table of one row
            stream = self._as_tables(stream, request, meta, table)
        return rendering.Response(headers={"Content-Type": "application/json"}, payload=stream)

    async def _as_tables(
        self,
        stream: AsyncIterator[rendering.Payload],
        request: rendering.Request,
        meta: _ResourceMeta,
        version: str,
    ) -> AsyncIterator[rendering.Payload]:
        # As the API server's watch encoder: only the first Table carries the column
        # definitions (kubectl keeps the last ones it saw); errors and bookmarks pass as they are.
        first = True
        async with contextlib.aclosing(stream) as events:  # type: ignore[type-var]
            async for event in events:
                if not isinstance(event, dict) or event.get("type") not in _OBJECT_EVENTS:
                    yield event
                    continue
                obj = event["object"]
                rv = obj["metadata"].get("resourceVersion", "")
                table = self._table(request, meta, [obj], rv, version)
                if not first:
                    table["columnDefinitions"] = []
                first = False
                yield {"type": event["type"], "object": table}

    async def _watch(
        self,
        meta: _ResourceMeta,
        flt: _Filter,
        since: str | None,
        timeout: float | None,
        send_initial: bool,
    ) -> AsyncIterator[rendering.Payload]:
        yield b""  # send the headers now, as the API server does, even if nothing happens
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        with self._store_lock:
            snapshot: list[Json] = []
            if since is None or since == "0":
                snapshot, position = self._select(meta.res, flt), self._rv
            else:
                position = int(since)
            start = self._log_start()
            oldest = self._log[start].rv - 1 if start < len(self._log) else self._rv
        if since not in (None, "0") and position < oldest:
            # Versions older than the kept history are gone: 410 Expired, so the client lists
            # again, as with the API server's compacted watch cache.
            yield {
                "type": "ERROR",
                "object": {
                    "apiVersion": "v1",
                    "kind": "Status",
                    "metadata": {},
                    "status": "Failure",
                    "message": f"too old resource version: {since} ({oldest})",
                    "reason": "Expired",
                    "code": 410,
                },
            }
            return
        with self._store_lock:
            self._watching[meta.res] = self._watching.get(meta.res, 0) + 1
        self._notify_waiters()  # `open_watches` changed
        try:
            stream = self._stream(meta, flt, snapshot, position, deadline, send_initial)
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    yield event
        finally:
            with self._store_lock:
                self._watching[meta.res] -= 1

    async def _stream(
        self,
        meta: _ResourceMeta,
        flt: _Filter,
        snapshot: list[Json],
        position: int,
        deadline: float | None,
        send_initial: bool,
    ) -> AsyncGenerator[rendering.Payload, None]:
        loop = asyncio.get_running_loop()
        for obj in snapshot:
            yield {"type": "ADDED", "object": obj}
        if send_initial:
            yield {
                "type": "BOOKMARK",
                "object": {
                    "apiVersion": meta.api_version,
                    "kind": meta.kind,
                    "metadata": {
                        "resourceVersion": str(position),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                },
            }
        while not self._closing:
            attached = self._loop is not None
            wake = self._wakes.get(meta.res)
            if wake is None:
                wake = self._wakes[meta.res] = asyncio.Event()
            with self._store_lock:
                start = bisect.bisect_right(self._log, position, key=lambda e: e.rv)
                events = [e for e in self._log[start:] if e.res == meta.res]
                position = self._rv
            for event in events:
                translated = self._translate(event, flt)
                if translated is not None:
                    yield translated
            if not attached:
                return
            if events:
                continue
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                await asyncio.wait_for(wake.wait(), timeout=remaining)
            except TimeoutError:
                return

    @staticmethod
    def _translate(event: _Event, flt: _Filter) -> Json | None:
        # With a selector, an object that starts or stops matching is ADDED or DELETED for the
        # watcher, as the API server's watch cache reports it.
        now, before = flt.matches(event.obj), flt.matches(event.old)
        if event.type == "MODIFIED":
            if now and before:
                return {"type": "MODIFIED", "object": event.obj}
            if now:
                return {"type": "ADDED", "object": event.obj}
            if before:
                return {"type": "DELETED", "object": event.obj}
            return None
        return {"type": event.type, "object": event.obj} if now else None

    # ----------------------------------------------------------------------------------------
    # Fix 5: discovery as the API server answers it.
    # ----------------------------------------------------------------------------------------

    def _served(self) -> list[_ResourceMeta]:
        with self._store_lock:
            return list(self._meta.values())

    async def _serve_server_version(self, request: rendering.Request) -> rendering.Payload:
        major, minor = SERVER_VERSION
        return {
            "major": str(major),
            "minor": str(minor),
            "gitVersion": f"v{major}.{minor}.0",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2024-12-11T00:00:00Z",
            "goVersion": "go1.23.3",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    async def _serve_api(self, request: rendering.Request) -> rendering.Payload:
        host = request.url.host or "127.0.0.1"
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{host}:{request.url.port}"}
            ],
        }

    def _groups(self) -> dict[str, list[str]]:
        groups: dict[str, set[str]] = {}
        for meta in self._served():
            if meta.res.group:
                groups.setdefault(str(meta.res.group), set()).add(str(meta.res.version))
        return {g: sorted(vs, key=_version_rank) for g, vs in sorted(groups.items())}

    @staticmethod
    def _group_doc(group: str, versions: list[str]) -> Json:
        return {
            "name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
        }

    async def _serve_apis(self, request: rendering.Request) -> rendering.Payload:
        groups = [self._group_doc(g, vs) for g, vs in self._groups().items()]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    async def _serve_group(self, request: rendering.Request) -> rendering.Payload:
        assert request.resource is not None
        versions = self._groups().get(str(request.resource.group))
        if not versions:
            raise _unknown_resource()
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            **self._group_doc(str(request.resource.group), versions),
        }

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        assert request.resource is not None
        group, version = request.resource.group, request.resource.version
        metas = [m for m in self._served() if m.res.group == group and m.res.version == version]
        if not metas and group != "":
            raise _unknown_resource()
        resources: list[Json] = []
        for meta in sorted(metas, key=lambda m: str(m.res.plural)):
            entry: Json = {
                "name": meta.res.plural,
                "singularName": meta.singular,
                "namespaced": meta.namespaced,
                "kind": meta.kind,
                "verbs": list(_VERBS),
            }
            if meta.short_names:
                entry["shortNames"] = list(meta.short_names)
            if meta.categories:
                entry["categories"] = list(meta.categories)
            resources.append(entry)
            # Subresources carry their own verbs and no short names or categories.
            for sub in meta.subresources:
                resources.append(
                    {
                        "name": f"{meta.res.plural}/{sub}",
                        "singularName": "",
                        "namespaced": meta.namespaced,
                        "kind": meta.kind,
                        "verbs": list(_SUBRESOURCE_VERBS.get(sub, ("get", "update"))),
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            # The core group's groupVersion is "v1", not "/v1".
            "groupVersion": f"{group}/{version}" if group else str(version),
            "resources": resources,
        }

    # Just enough OpenAPI v3 for kubectl to see that every resource supports the
    # `fieldValidation` parameter: kubectl then validates on the server (`?fieldValidation=
    # Strict`, answered like the API server) instead of downloading schemas to validate itself.
    async def _serve_openapi_root(self, request: rendering.Request) -> rendering.Payload:
        paths = {}
        for group, version in sorted(
            {(str(m.res.group), str(m.res.version)) for m in self._served()}
        ):
            gv = f"apis/{group}/{version}" if group else f"api/{version}"
            doc = json.dumps(self._openapi_doc(group, version), sort_keys=True).encode()
            digest = hashlib.sha256(doc).hexdigest()[:32].upper()
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
        return {"paths": paths}

    async def _serve_openapi_group_version(self, request: rendering.Request) -> rendering.Payload:
        parts = request.url.path.split("/")[3:]  # after /openapi/v3/
        if len(parts) == 2 and parts[0] == "api":
            return self._openapi_doc("", parts[1])
        if len(parts) == 3 and parts[0] == "apis":
            return self._openapi_doc(parts[1], parts[2])
        raise _unknown_resource()

    def _openapi_doc(self, group: str, version: str) -> Json:
        metas = [m for m in self._served() if m.res.group == group and m.res.version == version]
        if not metas:
            raise _unknown_resource()
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        paths = {}
        for meta in metas:
            scope = "/namespaces/{namespace}" if meta.namespaced else ""
            paths[f"{prefix}{scope}/{meta.res.plural}/{{name}}"] = {
                "patch": {
                    "x-kubernetes-group-version-kind": {
                        "group": group,
                        "version": version,
                        "kind": meta.kind,
                    },
                    "parameters": [
                        {"name": name, "in": "query", "schema": {"type": "string"}}
                        for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                    ],
                    "responses": {"200": {"description": "OK"}},
                }
            }
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v{}.{}.0".format(*SERVER_VERSION)},
            "paths": paths,
            "components": {"schemas": {}},
        }

    # ----------------------------------------------------------------------------------------
    # The event loop the server runs in.
    # ----------------------------------------------------------------------------------------

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._closing = loop, False
        self._wakes.clear()

    def _detach(self) -> None:
        # End every open watch stream so the server can shut down at once.
        self._closing = True
        self._wake_watchers()
        self._loop = None


def load_crds_from_dir(path: str | Path) -> list[Json]:
    """Every CustomResourceDefinition document in the ``*.yaml``/``*.yml`` files of a directory
    (in file-name order); other documents are skipped."""
    crds: list[Json] = []
    for file in sorted(Path(path).iterdir()):
        if file.suffix not in (".yaml", ".yml"):
            continue
        for doc in yaml.safe_load_all(file.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crds.append(doc)
    return crds


class EmulatorServer:
    """A `HardenedEmulator` served over HTTP on 127.0.0.1 from a background thread with its own
    event loop, so synchronous tests (and kopf in yet another thread) can use it.

    ``start()`` returns once the port listens and a kubeconfig for it is written to
    ``kubeconfig``; ``stop()`` ends open watch streams and shuts the server down. Use it as a
    context manager, or through `running_emulator`."""

    def __init__(
        self,
        emulator: HardenedEmulator | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.emulator = emulator if emulator is not None else HardenedEmulator()
        self._host, self._port = host, port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.port: int | None = None
        self.admin_port: int | None = None

    @property
    def admin_url(self) -> str:
        """The admin endpoint's base URL: what comes in there is the admin's, whom RBAC lets
        through (kubectl sends no bearer token over plain HTTP, so identity is by port)."""
        if self.admin_port is None:
            raise RuntimeError("The emulator server is not running.")
        return f"http://{self._host}:{self.admin_port}"

    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:41234``."""
        if self.port is None:
            raise RuntimeError("The emulator server is not running.")
        return f"http://{self._host}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig file (context "emulator", namespace "default") for this server."""
        if self._tmp is None:
            raise RuntimeError("The emulator server is not running.")
        return Path(self._tmp.name) / "kubeconfig"

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving; returns when the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("The emulator server is already started.")
        self._tmp = tempfile.TemporaryDirectory(prefix="k8s-emulator-")
        self._thread = threading.Thread(target=self._run, name="k8s-emulator", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("The emulator server did not start in time.")
        if self._failure is not None:
            raise RuntimeError("The emulator server failed to start.") from self._failure
        self.write_kubeconfig(self.kubeconfig)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: open watches end, connections close, the thread exits."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("The emulator server did not stop in time.")
        self._thread = None
        self.port = self.admin_port = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:
            self._failure = e
            self._started.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with self.emulator:
            self.emulator._attach(asyncio.get_running_loop())
            # aiohttp's low-level server, not kmock.Server: kmock's also swaps aiohttp's DNS
            # resolver process-wide, which other threads' clients would then go through.
            server = aiohttp.web.Server(self.emulator, handler_cancellation=True, access_log=None)
            runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1.0)
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, self._host, self._port)
            await site.start()
            self.port = runner.addresses[0][1]
            admin_site = aiohttp.web.TCPSite(runner, self._host, 0)
            await admin_site.start()
            self.admin_port = runner.addresses[1][1]
            self.emulator.admin_ports = {self.admin_port}
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                self.emulator._detach()
                await runner.cleanup()

    def write_kubeconfig(self, path: str | Path, *, namespace: str = "default") -> Path:
        """Write a kubeconfig for this server. Its current context "emulator" has no
        credentials (with RBAC on, its requests are the policy's user's, as the operator's);
        the "emulator-admin" context talks to the admin endpoint (`admin_url`), which RBAC
        lets through."""
        path = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "emulator", "cluster": {"server": self.url}},
                {"name": "emulator-admin", "cluster": {"server": self.admin_url}},
            ],
            "users": [
                {"name": "emulator", "user": {}},
                {"name": "emulator-admin", "user": {"token": self.emulator.admin_token}},
            ],
            "contexts": [
                {
                    "name": name,
                    "context": {"cluster": name, "user": name, "namespace": namespace},
                }
                for name in ("emulator", "emulator-admin")
            ],
            "current-context": "emulator",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 30.0,
        admin: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this server (its own kubeconfig and discovery cache); with
        ``admin=True`` as the admin, whom RBAC lets through."""
        assert self._tmp is not None, "The emulator server is not running."
        command = [
            "kubectl",
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={Path(self._tmp.name) / 'kubectl-cache'}",
            *(["--context=emulator-admin"] if admin else []),
            *args,
        ]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result


@contextlib.contextmanager
def running_emulator(
    *,
    crds: Iterable[Mapping[str, Any]] = (),
    crd_dir: str | Path | None = None,
) -> Iterator[EmulatorServer]:
    """Run an `EmulatorServer` with the given CRDs (dicts, or every CRD in ``crd_dir``)::

    with running_emulator(crd_dir="crds") as server:
        server.kubectl("get", "goals")
    """
    emulator = HardenedEmulator()
    for crd in crds:
        emulator.register_crd(crd)
    if crd_dir is not None:
        emulator.register_crds_from_dir(crd_dir)
    with EmulatorServer(emulator) as server:
        yield server
