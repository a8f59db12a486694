"""Fixtures for the operator tier: a hardened Kubernetes API emulator served over HTTP.

Every fixture is function-scoped: an emulator starts and stops in milliseconds, so each test
gets a fresh API server with only the built-in kinds, kopf's peering CRDs and the "default"
namespace. Register the CRDs a test needs on ``emulator`` (``register_crd(dict)`` or
``register_crds_from_dir(path)``), or use ``project_crds`` for the project's generated ones.

The operator's tests (those that take ``project_crds``) meet the API server's strictness by
default: built-in kinds validated as the API server does (``strict_validation``) and every
request but the admin's authorized against the operator's ClusterRole from ``kustomize/rbac``
(``OPERATOR_ROLE``), so a Job the API server would refuse, or a call the role does not grant,
fails the test here rather than on a cluster. The test's own calls through the emulator's
synchronous API (and kubectl with ``admin=True``) are never authorized. A test about the
emulator itself takes ``emulator`` alone and gets the lenient defaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import kubernetes.client
import pytest

from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.kopf_harness import api_client, stop_leaked_operators
from tests.support.rbac import RbacPolicy

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
RBAC_DIR = Path(__file__).resolve().parents[2] / "kustomize" / "rbac"
OPERATOR_ROLE = "backlog-operator-manager"


@pytest.fixture
def emulator_server() -> Iterator[EmulatorServer]:
    """A running emulator server (URL, kubeconfig, ``kubectl(...)``)."""
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> HardenedEmulator:
    """The running emulator's state and helpers (create, get, patch_status, wait_for, ...)."""
    return emulator_server.emulator


@pytest.fixture
def kube_client(emulator_server: EmulatorServer) -> Iterator[kubernetes.client.ApiClient]:
    """The official client, configured for the emulator from its kubeconfig."""
    with api_client(emulator_server) as client:
        yield client


@pytest.fixture
def project_crds(emulator: HardenedEmulator) -> list[kmock.resource]:
    """The project's CRDs (generated into crds/) registered on the emulator, which is made as
    strict as an API server: `strict_validation`, and RBAC with the operator's ClusterRole."""
    if not any(CRD_DIR.glob("*.yaml")):
        pytest.skip(f"no generated CRDs in {CRD_DIR.name}/ yet")
    resources = emulator.register_crds_from_dir(CRD_DIR)
    emulator.strict_validation = True
    emulator.enable_rbac(operator_policy())
    return resources


def operator_policy(**options: Any) -> RbacPolicy:
    """The operator's ClusterRole from kustomize/rbac, as is (no OwnerReferencesPermission-
    Enforcement unless asked in `options`)."""
    return RbacPolicy.from_kustomize(RBAC_DIR, role=OPERATOR_ROLE, **options)


@pytest.fixture(autouse=True)
def _no_leaked_operators() -> Iterator[None]:
    """Fail the test that leaves a kopf operator running, and stop it: a leaked operator keeps
    retrying against a stopped emulator and can hang the whole run."""
    yield
    leaked = stop_leaked_operators()
    if leaked:
        pytest.fail(f"{len(leaked)} kopf operator(s) left running; stop them (use `with`).")
