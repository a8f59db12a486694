"""The cluster tier: a real cluster made by kind, the image built with Docker and loaded there.

Runs under `make e2e`. Skipped, with a message saying what is missing, where no Docker engine
answers or no `kind` binary exists (the other tiers cover the same scenarios without them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = os.environ.get("BACKLOG_E2E_CLUSTER", "backlog-e2e")
IMAGE = "backlog-operator:dev"


def missing_tools() -> list[str]:
    """What the cluster tier lacks on this machine, in words."""
    missing = [
        f"no `{tool}` binary" for tool in ("kind", "kubectl", "docker") if not shutil.which(tool)
    ]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
        if probe.returncode != 0:
            missing.append("no Docker engine answers `docker info`")
    return missing


def run(*command: str, input: str | None = None, timeout: float = 600) -> str:
    """Run a command; fail the test with its output when it fails."""
    completed = subprocess.run(
        command, input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if completed.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout


@pytest.fixture(scope="session")
def kind_cluster() -> Iterator[str]:
    """A kind cluster with the image loaded and the bundle (kind overlay) installed."""
    missing = missing_tools()
    if missing:
        pytest.skip("cluster tests need Docker and kind: " + "; ".join(missing))
    context = f"kind-{CLUSTER}"
    existing = run("kind", "get", "clusters").split()
    if CLUSTER not in existing:
        run("kind", "create", "cluster", "--name", CLUSTER, "--wait", "120s")
    try:
        run("docker", "build", "-t", IMAGE, str(ROOT), timeout=1200)
        run("kind", "load", "docker-image", IMAGE, "--name", CLUSTER)
        bundle = run("kubectl", "kustomize", str(ROOT / "kustomize" / "overlays" / "kind"))
        run("kubectl", "--context", context, "apply", "-f", "-", input=bundle)
        run(
            "kubectl",
            "--context",
            context,
            "-n",
            "backlog-operator-system",
            "rollout",
            "status",
            "deployment/backlog-operator",
            "--timeout=180s",
        )
        yield context
    finally:
        if not os.environ.get("BACKLOG_E2E_KEEP") and CLUSTER not in existing:
            subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], check=False)
