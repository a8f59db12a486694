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
   selectors (equality- and set-based) and field selectors filter lists and watches.

Also: custom resources are pruned, defaulted and validated against their CRD's
openAPIV3Schema (422 Invalid; 400 for unknown fields with `fieldValidation=Strict`), names,
labels and ownerReferences are validated, a CRD stored through the API (`kubectl apply -f
crd.yaml`) is served at once, and a minimal OpenAPI v3 index lets kubectl validate on the
server, so `kubectl create -f`/`apply` work without `--validate=false`. Serving a request costs
the same however many objects are stored and requests were served before it (kmock's own
matching re-scans every past request; see `HardenedEmulator`).

`EmulatorServer` runs it on 127.0.0.1 in a background thread with its own event loop, usable
from synchronous tests, and writes a kubeconfig for kubectl and the official client::

    with EmulatorServer() as server:
        server.emulator.register_crd(GOAL_CRD)
        server.kubectl("apply", "-f", "goal.yaml")
        goal = server.emulator.get_object("backlog.dev/v1alpha1/goals", "default", "g1")

Never emulated (assert around them instead): garbage collection by ownerReferences,
namespace deletion cascading to its content, strategic-merge patch of built-ins (a JSON merge
patch, so lists are replaced), server-side apply field ownership (an apply to an existing
object is a merge patch), `dryRun`, managedFields, periodic watch bookmarks, admission, RBAC,
authentication, OpenAPI schemas (`kubectl explain`), protobuf (typed kubectl commands such as
`kubectl create namespace` get 415), table output for printer columns, CEL validation rules,
pagination (`limit` is ignored), deleting a CRD's objects with it, and controllers: Jobs never
run; tests move Job and Pod status themselves with `start_job`, `finish_pod`, `complete_job` or
`patch_status`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import dataclasses
import datetime
import hashlib
import json
import random
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import jsonschema
import kmock
import yaml
from kmock._internal import enums, parsing, rendering

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
# kinds the operator and kopf touch. Discovery only; built-ins are not schema-validated.
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


def _as_resource(ref: ResourceRef) -> kmock.resource:
    res = ref if isinstance(ref, kmock.resource) else kmock.resource(ref)
    if res.group is None or res.version is None or res.plural is None:
        raise ValueError(f"Not a specific resource (group/version/plural): {ref!r}")
    return res


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
    reason. kmock's request DSL still works for fault injection, e.g.
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
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._wake_watchers(event.res)
            else:
                # A loop closed in between has nobody watching.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._wake_watchers, event.res)

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

    def _admit(self, meta: _ResourceMeta, obj: Json, *, strict: bool = False) -> Json:
        """Prune, default and validate an object as the API server does before storing it."""
        causes = self._check_metadata(meta, obj)
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
            new = self._admit(meta, new, strict=strict)
            new_md = new["metadata"]

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
        """Patch an object: ``patch_type`` is "merge" (RFC 7386; also used for strategic merge
        and apply to an existing object) or "json" (RFC 6902). Returns the stored object."""
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

    def wait_for(
        self,
        predicate: Callable[[], _T],
        *,
        timeout: float = 10.0,
        interval: float = 0.05,
        message: str | Callable[[], str] = "condition not met",
    ) -> _T:
        """Wait until ``predicate()`` is truthy and return its value. It is re-checked on every
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
        # Same as kmock's RawHandler.__call__, except for `_parse_request` (fix 3) and the
        # bounded request history.
        await raw_request.read()
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            request = await self._parse_request(raw_request, id=self._served_requests)
            self._served_requests += 1
            self._remember(request)
            try:
                return await self._handle(request)
            except rendering.StreamingError as e:
                raw_response = e.args[0]
                if e.__cause__ is not None:
                    raise e.__cause__ from None
                raise
        except Exception as e:
            if not self._errors:
                raise
            self._errors[-1].append(e)
            if raw_response is None or not raw_response.prepared:
                return await self._render_error(e)
            await self._stream_error(e, raw_response)
            await raw_response.write_eof()
            return raw_response

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
                    if id(reaction) in self._own_ids:
                        return await reaction.response(request)
                    return await reaction(request)
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
        with self._store_lock:
            items = self._select(meta.res, flt)
            rv = str(self._rv)
        return {
            "apiVersion": meta.api_version,
            "kind": f"{meta.kind}List",
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        meta = self._meta_for(request.resource)
        ns = request.namespace if meta.namespaced else None
        assert request.name is not None
        if request.subresource == "log" and "log" in meta.subresources:
            with self._store_lock:
                if self._current(meta.res, ns, request.name) is None:
                    raise _not_found(meta.res, request.name)
                container = request.params.get("container")
                text = self._pod_logs.get((ns or "", request.name, container))
                if text is None:
                    text = self._pod_logs.get((ns or "", request.name, None), "")
            return rendering.Response(
                status=200, headers={"Content-Type": "text/plain"}, payload=text.encode()
            )
        if request.subresource is not None and (
            request.subresource != "status" or "status" not in meta.subresources
        ):
            raise _unknown_resource()
        with self._store_lock:
            obj = self._current(meta.res, ns, request.name)
        if obj is None:
            raise _not_found(meta.res, request.name)
        return obj

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
            # For built-ins it is approximated by a merge patch (lists are replaced).
            if meta.custom:
                raise _error(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    "include: application/json-patch+json, application/merge-patch+json, "
                    "application/apply-patch+yaml",
                )
            obj = self.patch_object(meta.res, ns, request.name, body, **kwargs)
        elif content_type == "application/apply-patch+yaml":
            # Fix 5: server-side apply creates a missing object (201 Created); an apply to an
            # existing object is approximated by a merge patch (no field ownership).
            if not request.params.get("fieldManager"):
                raise _bad_request("PATCH with apply requires fieldManager to be set")
            if not isinstance(body, Mapping):
                raise _bad_request("the apply configuration is not an object")
            with self._store_lock:
                if self._current(meta.res, ns, request.name) is None:
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
        stream = self._watch(meta, flt, since, float(timeout) if timeout else None, initial)
        return rendering.Response(headers={"Content-Type": "application/json"}, payload=stream)

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
    ) -> AsyncIterator[rendering.Payload]:
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
        return {
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.0",
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
            "info": {"title": "Kubernetes", "version": "v1.32.0"},
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
        self.port = None
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
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                self.emulator._detach()
                await runner.cleanup()

    def write_kubeconfig(self, path: str | Path, *, namespace: str = "default") -> Path:
        """Write a kubeconfig for this server (no credentials: the emulator has no auth)."""
        path = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace},
                }
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
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this server (its own kubeconfig and discovery cache)."""
        assert self._tmp is not None, "The emulator server is not running."
        command = [
            "kubectl",
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={Path(self._tmp.name) / 'kubectl-cache'}",
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
