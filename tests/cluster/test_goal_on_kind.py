"""A Goal on a real cluster: the operator's Job clones from a git server inside the cluster,
runs the task, pushes the branch with the backlog marked completed, and the Goal succeeds."""

from __future__ import annotations

import json

import pytest

from tests.cluster.conftest import IMAGE, run

NAMESPACE = "backlog-e2e"

# A git daemon (from the operator image, which has git) serving one bare repository with a
# backlog; pushes allowed. Plain git:// inside the cluster: no credentials in this scenario.
GIT_SERVER = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: git-server, namespace: {NAMESPACE}}}
spec:
  selector: {{matchLabels: {{app: git-server}}}}
  template:
    metadata: {{labels: {{app: git-server}}}}
    spec:
      securityContext: {{runAsNonRoot: true, runAsUser: 65532}}
      containers:
        - name: git
          image: {IMAGE}
          imagePullPolicy: IfNotPresent
          command: ["/bin/sh", "-c"]
          args:
            - |
              set -e
              export HOME=/tmp
              git init -q -b main /tmp/seed && cd /tmp/seed
              mkdir .backlog
              printf 'tasks:\\n  - id: e2e-task\\n' > .backlog/backlog.yaml
              printf '    title: End to end\\n    ready: true\\n' >> .backlog/backlog.yaml
              git add -A && git -c user.name=e2e -c user.email=e2e@example.invalid commit -qm seed
              git clone -q --bare /tmp/seed /srv/remote.git
              git --git-dir /srv/remote.git config daemon.receivepack true
              exec git daemon --reuseaddr --export-all --enable=receive-pack --base-path=/srv /srv
          ports: [{{containerPort: 9418}}]
          volumeMounts: [{{name: srv, mountPath: /srv}}, {{name: tmp, mountPath: /tmp}}]
      volumes: [{{name: srv, emptyDir: {{}}}}, {{name: tmp, emptyDir: {{}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: git-server, namespace: {NAMESPACE}}}
spec:
  selector: {{app: git-server}}
  ports: [{{port: 9418, targetPort: 9418}}]
"""

GOAL = f"""
apiVersion: backlog.dev/v1alpha1
kind: Goal
metadata: {{name: e2e, namespace: {NAMESPACE}}}
spec:
  repository: {{url: "git://git-server.{NAMESPACE}.svc.cluster.local/remote.git"}}
  backlog: {{taskId: e2e-task}}
  task:
    image: {IMAGE}
    command: ["/bin/sh", "-c", "echo done > RESULT.txt"]
  pullRequest: {{provider: none}}
"""


@pytest.mark.cluster
def test_goal_succeeds_and_the_branch_carries_the_backlog_change(kind_cluster: str) -> None:
    kubectl = ("kubectl", "--context", kind_cluster)
    run(*kubectl, "apply", "-f", "-", input=GIT_SERVER)
    run(*kubectl, "-n", NAMESPACE, "rollout", "status", "deployment/git-server", "--timeout=120s")

    run(*kubectl, "apply", "-f", "-", input=GOAL)
    run(
        *kubectl,
        "-n",
        NAMESPACE,
        "wait",
        "goal/e2e",
        "--for=jsonpath={.status.phase}=Succeeded",
        "--timeout=300s",
    )

    status = json.loads(run(*kubectl, "-n", NAMESPACE, "get", "goal", "e2e", "-o", "json"))[
        "status"
    ]
    assert status["changedFiles"] == [".backlog/backlog.yaml", "RESULT.txt"]
    branch = status["branch"]
    backlog = run(
        *kubectl,
        "-n",
        NAMESPACE,
        "exec",
        "deploy/git-server",
        "--",
        "git",
        "--git-dir",
        "/srv/remote.git",
        "show",
        f"{branch}:.backlog/backlog.yaml",
    )
    assert "status: completed" in backlog
    listing = run(*kubectl, "-n", NAMESPACE, "get", "goals")
    assert "Succeeded" in listing  # the printer columns


def test_manifests_of_this_scenario_are_well_formed() -> None:
    """Runs everywhere: the scenario's own manifests parse and the Goal validates."""
    import yaml

    from backlog_operator.api.goal import Goal

    kinds = [doc["kind"] for doc in yaml.safe_load_all(GIT_SERVER)]
    assert kinds == ["Namespace", "Deployment", "Service"]
    goal = Goal.model_validate(yaml.safe_load(GOAL))
    assert goal.spec.repository.url.startswith("git://git-server.")
