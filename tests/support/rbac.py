"""RBAC for the Kubernetes API emulator: who may do what, decided as the API server decides it.

`request_attributes` maps an HTTP request (method, path, query) to the attributes the API
server authorizes: verb, API group, resource, subresource, namespace and name, exactly as its
``RequestInfoFactory`` does (``GET`` of a collection is ``list``, or ``watch`` with
``?watch=true`` or under ``/watch/``; ``DELETE`` of a collection is ``deletecollection``; a
``fieldSelector=metadata.name=x`` names the object for ``resourceNames``; everything outside
``/api`` and ``/apis`` is a non-resource URL).

`RbacPolicy` holds the rules of the roles bound to one user (e.g. the operator's ClusterRole
from ``kustomize/rbac/role.yaml``) and answers whether a request is allowed, with the RBAC
authorizer's matching (``*`` verbs, groups and resources, ``*/subresource``, ``resourceNames``,
``nonResourceURLs`` with a trailing ``*``), plus the discovery paths every authenticated user is
granted by the default ``system:discovery`` and ``system:public-info-viewer`` roles. A denied
request is answered with the API server's 403 ``Forbidden`` Status (`forbidden_status`).

Requests carrying ``Authorization: Bearer <admin_token>`` are a cluster admin's (the emulator's
kubeconfig has such a user in its ``emulator-admin`` context, for a test's own kubectl calls);
every other request is the policy's user's, whatever credentials it carries::

    policy = RbacPolicy.from_kustomize("kustomize/rbac", role="backlog-operator-manager")
    emulator.enable_rbac(policy)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ADMIN_TOKEN",
    "DISCOVERY_RULES",
    "PolicyRule",
    "RbacPolicy",
    "RequestAttributes",
    "forbidden_status",
    "k8s_status",
    "request_attributes",
]

Json = dict[str, Any]

# The bearer token of the emulator's admin user (the "emulator-admin" kubeconfig context).
ADMIN_TOKEN = "emulator-admin-token"  # a fixed test credential, not a secret
ADMIN_USER = "kubernetes-admin"

_API_PREFIXES = ("api", "apis")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_SPECIAL_VERBS = ("proxy", "watch")


@dataclasses.dataclass(frozen=True)
class RequestAttributes:
    """What the API server authorizes a request by (its ``authorizer.Attributes``)."""

    verb: str
    path: str
    resource_request: bool = False
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def combined_resource(self) -> str:
        """``resource/subresource`` as RBAC rules name it (``pods/log``), or the resource."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @property
    def is_write(self) -> bool:
        return self.verb in ("create", "update", "patch", "delete", "deletecollection")


def _watch_requested(values: Sequence[str]) -> bool:
    # Go's ListOptions decoding: `watch` is a bool (ParseBool); a value it cannot parse makes
    # the request a watch unless it is "false" or "0" (RequestInfoFactory's fallback).
    if not values:
        return False
    return values[0].lower() not in ("false", "0", "f")


def request_attributes(
    method: str, path: str, query: Mapping[str, str] | Mapping[str, Sequence[str]]
) -> RequestAttributes:
    """The authorization attributes of a request, as the API server's ``RequestInfoFactory``
    derives them from the method, the URL path and its query."""

    def values(key: str) -> list[str]:
        value = query.get(key)
        if value is None:
            return []
        return [value] if isinstance(value, str) else list(value)

    parts = [part for part in path.strip("/").split("/") if part]
    plain = RequestAttributes(verb=method.lower(), path=path)
    if len(parts) < 3 or parts[0] not in _API_PREFIXES:
        return plain  # a non-resource URL: /version, /api, /apis/batch, /openapi/v3, ...
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(parts) < 3:
            return plain  # /apis/batch/v1: discovery of a group version
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]

    if parts[0] in _SPECIAL_VERBS:
        if len(parts) < 2:
            return plain
        verb, parts = parts[0], parts[1:]
    else:
        verb = {
            "POST": "create",
            "GET": "get",
            "HEAD": "get",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }.get(method.upper(), "")

    namespace = ""
    if parts[0] == "namespaces" and len(parts) > 1:
        namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 and verb != "proxy" else ""

    # No name and a GET: a list, or a watch; a field selector on metadata.name names the object.
    if not name and verb == "get":
        verb = "watch" if _watch_requested(values("watch")) else "list"
        for selector in values("fieldSelector")[:1]:
            for term in selector.split(","):
                key, op, value = term.partition("==") if "==" in term else term.partition("=")
                value = value.strip()
                valid = value not in ("", ".", "..") and "/" not in value and "%" not in value
                if op and key.strip() == "metadata.name" and valid:
                    name = value
                    break
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestAttributes(
        verb=verb,
        path=path,
        resource_request=True,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


@dataclasses.dataclass(frozen=True)
class PolicyRule:
    """One rule of a (Cluster)Role, matched as the RBAC authorizer matches it."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, rule: Mapping[str, Any]) -> PolicyRule:
        def strings(key: str) -> tuple[str, ...]:
            return tuple(str(item) for item in rule.get(key) or ())

        return cls(
            verbs=strings("verbs"),
            api_groups=strings("apiGroups"),
            resources=strings("resources"),
            resource_names=strings("resourceNames"),
            non_resource_urls=strings("nonResourceURLs"),
        )

    def allows(self, request: RequestAttributes) -> bool:
        if not ("*" in self.verbs or request.verb in self.verbs):
            return False
        if not request.resource_request:
            return any(
                url == "*"
                or url == request.path
                or (url.endswith("*") and request.path.startswith(url[:-1]))
                for url in self.non_resource_urls
            )
        if not ("*" in self.api_groups or request.api_group in self.api_groups):
            return False
        combined, sub = request.combined_resource, request.subresource
        if not any(
            rule == "*" or rule == combined or (sub and rule.startswith("*/") and rule[2:] == sub)
            for rule in self.resources
        ):
            return False
        # resourceNames restrict the rule to named objects: a request without a name (create,
        # list without a metadata.name field selector) never matches such a rule.
        return not self.resource_names or request.name in self.resource_names


# What the default `system:discovery`, `system:public-info-viewer` and `system:basic-user`
# ClusterRoles grant every authenticated user (bound to `system:authenticated`).
DISCOVERY_RULES: tuple[PolicyRule, ...] = (
    PolicyRule(
        verbs=("get",),
        non_resource_urls=(
            "/api",
            "/api/*",
            "/apis",
            "/apis/*",
            "/healthz",
            "/livez",
            "/readyz",
            "/version",
            "/version/",
            "/openapi",
            "/openapi/*",
        ),
    ),
    PolicyRule(
        verbs=("create",),
        api_groups=("authorization.k8s.io", "authentication.k8s.io"),
        resources=("selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"),
    ),
)


def _load_documents(path: str | Path) -> list[Json]:
    path = Path(path)
    files = (
        sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        if path.is_dir()
        else [path]
    )
    documents: list[Json] = []
    for file in files:
        for doc in yaml.safe_load_all(file.read_text(encoding="utf-8")):
            if isinstance(doc, dict):
                documents.append(doc)
    return documents


@dataclasses.dataclass
class RbacPolicy:
    """The rules bound to the user every non-admin request is made as.

    ``rules`` are ``(namespace, rule)`` pairs: ``None`` for a ClusterRole's rules (granted in
    every namespace and at cluster scope through a ClusterRoleBinding), a namespace for a
    Role's (granted there only). ``owner_references_enforcement`` turns on the
    ``OwnerReferencesPermissionEnforcement`` admission plugin's checks (OpenShift has it on):
    setting ``blockOwnerDeletion: true`` on an ownerReference needs ``update`` on the owner's
    ``finalizers`` subresource, and changing ownerReferences of an existing object needs
    ``delete`` on it."""

    user: str = "system:serviceaccount:default:default"
    rules: list[tuple[str | None, PolicyRule]] = dataclasses.field(default_factory=list)
    discovery: bool = True  # grant what system:discovery & co. grant every authenticated user
    admin_token: str = ADMIN_TOKEN
    owner_references_enforcement: bool = False

    @classmethod
    def from_roles(
        cls, roles: Iterable[Mapping[str, Any]], *, user: str | None = None, **options: Any
    ) -> RbacPolicy:
        """A policy granting the rules of these Role/ClusterRole manifests (dicts)."""
        rules: list[tuple[str | None, PolicyRule]] = []
        for role in roles:
            kind = role.get("kind")
            if kind not in ("ClusterRole", "Role"):
                raise ValueError(f"not a Role or ClusterRole: {kind!r}")
            namespace = (role.get("metadata") or {}).get("namespace") if kind == "Role" else None
            if kind == "Role" and not namespace:
                raise ValueError("a Role needs metadata.namespace")
            rules += [(namespace, PolicyRule.from_dict(rule)) for rule in role.get("rules") or ()]
        return cls(user=user or cls.user, rules=rules, **options)

    @classmethod
    def from_kustomize(
        cls, path: str | Path, *, role: str, user: str | None = None, **options: Any
    ) -> RbacPolicy:
        """The ClusterRole named ``role`` from the YAML files of a directory (or one file), as
        is: the files are read, never changed. The user defaults to the subject of a
        ClusterRoleBinding in those files that binds the role (a ServiceAccount becomes
        ``system:serviceaccount:<namespace>:<name>``)."""
        documents = _load_documents(path)
        found = [
            doc
            for doc in documents
            if doc.get("kind") == "ClusterRole" and (doc.get("metadata") or {}).get("name") == role
        ]
        if not found:
            raise ValueError(f"no ClusterRole {role!r} in {path}")
        if user is None:
            for doc in documents:
                ref = doc.get("roleRef") or {}
                if doc.get("kind") == "ClusterRoleBinding" and ref.get("name") == role:
                    for subject in doc.get("subjects") or ():
                        if subject.get("kind") == "ServiceAccount":
                            user = f"system:serviceaccount:{subject['namespace']}:{subject['name']}"
                        elif subject.get("kind") == "User":
                            user = str(subject["name"])
                        if user:
                            break
                if user:
                    break
        return cls.from_roles(found, user=user, **options)

    def is_admin(self, headers: Mapping[str, str]) -> bool:
        """Whether a request's credentials are the emulator admin's (allowed everything)."""
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        return auth == f"Bearer {self.admin_token}"

    def allows(self, request: RequestAttributes) -> bool:
        """Whether the user's rules grant this request (RBAC: any rule allows, nothing denies)."""
        if self.discovery and any(rule.allows(request) for rule in DISCOVERY_RULES):
            return True
        for namespace, rule in self.rules:
            if namespace is not None and namespace != request.namespace:
                continue
            if rule.allows(request):
                return True
        return False

    def forbidden(self, request: RequestAttributes, reason: str = "") -> Json:
        """The Status the API server answers a request RBAC does not allow with."""
        return forbidden_status(request, self.user, reason)


def k8s_status(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> Json:
    """A `Status` object as the API server writes it for a failure (empty details omitted)."""
    body: Json = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    cleaned = {k: v for k, v in (details or {}).items() if v not in (None, "", [], {})}
    if cleaned:
        body["details"] = cleaned
    return body


def forbidden_message(request: RequestAttributes, user: str) -> str:
    """The authorization filter's message (``forbiddenMessage`` in the API server)."""
    if not request.resource_request:
        return f'User "{user}" cannot {request.verb} path "{request.path}"'
    where = (
        f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    )
    return (
        f'User "{user}" cannot {request.verb} resource "{request.combined_resource}" '
        f'in API group "{request.api_group}" {where}'
    )


def forbidden_status(request: RequestAttributes, user: str, reason: str = "") -> Json:
    """403 Forbidden as ``apierrors.NewForbidden`` words it for a denied request."""
    text = forbidden_message(request, user)
    if reason:
        text = f"{text}: {reason}"
    return forbidden_error(request.api_group, request.resource, request.name, text)


def forbidden_error(group: str, resource: str, name: str, text: str) -> Json:
    """``apierrors.NewForbidden(groupResource, name, err)``."""
    qualified = f"{resource}.{group}" if group else resource
    if not resource:
        message = f"forbidden: {text}"
    elif not name:
        message = f"{qualified} is forbidden: {text}"
    else:
        message = f'{qualified} "{name}" is forbidden: {text}'
    return k8s_status(403, "Forbidden", message, {"name": name, "group": group, "kind": resource})
