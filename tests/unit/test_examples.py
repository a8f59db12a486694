"""The manifests people copy: `examples/`, `kustomize/samples/` and the YAML in `docs/`.

Each kind has a sample and an example, and each would really work: a Goal (or the Goals a
Backlog or GoalSchedule makes) that opens a pull request names the Secret holding its token,
and that Secret is the one the install steps in docs/operator.md create. (test_admission.py
holds every example and sample to the CRDs and the models.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from backlog_operator.api.backlog import Backlog
from backlog_operator.api.goal import Goal
from backlog_operator.api.schedule import GoalSchedule

ROOT = Path(__file__).resolve().parents[2]
MODELS: dict[str, type[BaseModel]] = {
    "Goal": Goal,
    "Backlog": Backlog,
    "GoalSchedule": GoalSchedule,
}
INSTALL_STEPS = ROOT / "docs" / "operator.md"
CREATE_SECRET = re.compile(r"create secret generic ([a-z0-9][-a-z0-9.]*)\b(.*)")

Json = dict[str, Any]


def documents_in(path: Path) -> list[tuple[str, Json]]:
    """The Goals, Backlogs and GoalSchedules of a YAML file, or of a Markdown file's YAML
    blocks, each named by file and position."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        sources = re.findall(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    else:
        sources = [text]
    found = []
    for block, source in enumerate(sources):
        for index, document in enumerate(yaml.safe_load_all(source)):
            if isinstance(document, dict) and document.get("kind") in MODELS:
                found.append((f"{path.relative_to(ROOT)}#{block}.{index}", document))
    return found


def all_documents() -> list[tuple[str, Json]]:
    files = [
        *sorted((ROOT / "examples").rglob("*.yaml")),
        *sorted((ROOT / "kustomize" / "samples").glob("*.yaml")),
        *sorted((ROOT / "docs").glob("*.md")),
    ]
    return [found for path in files for found in documents_in(path)]


DOCUMENTS = all_documents()
NAMES = [name for name, _ in DOCUMENTS]


def goal_parts(document: Json) -> tuple[Json, Json]:
    """The repository and the pullRequest of the Goals `document` is or makes."""
    spec = document["spec"]
    if document["kind"] == "Goal":
        goal = spec
    elif document["kind"] == "GoalSchedule":
        goal = spec["goalTemplate"]["spec"]
    else:  # a Backlog: its own repository, the template's pull requests
        goal = {**spec["goalTemplate"]["spec"], "repository": spec["repository"]}
    return goal["repository"], goal.get("pullRequest") or {}


def secrets_the_install_steps_create() -> dict[str, str]:
    """Secret name → key, from `kubectl create secret generic` in docs/operator.md's install."""
    install = INSTALL_STEPS.read_text(encoding="utf-8").split("\n## ")[1]
    assert install.startswith("Install"), "docs/operator.md begins with its install steps"
    created = {}
    for name, rest in CREATE_SECRET.findall(install):
        key = re.search(r"--from-(?:file|literal)=([-._a-zA-Z0-9]+)=", rest)
        assert key, f"the install step creating {name} names no key"
        created[name] = key.group(1)
    return created


def test_examples_hold_one_of_each_kind_and_samples_exactly_one() -> None:
    kinds = [doc["kind"] for name, doc in DOCUMENTS if name.startswith("examples/")]
    assert set(kinds) == set(MODELS)
    samples = [doc["kind"] for name, doc in DOCUMENTS if name.startswith("kustomize/samples/")]
    assert sorted(samples) == sorted(MODELS)
    listed = yaml.safe_load((ROOT / "kustomize" / "samples" / "kustomization.yaml").read_text())
    files = sorted(p.name for p in (ROOT / "kustomize" / "samples").glob("*_v1alpha1_*.yaml"))
    assert sorted(listed["resources"]) == files


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=NAMES)
def test_what_opens_pull_requests_names_the_secret_the_install_steps_create(
    name: str, document: Json
) -> None:
    MODELS[document["kind"]].model_validate(document)
    repository, pull_request = goal_parts(document)
    reference = repository.get("credentialsSecret")
    if pull_request.get("provider", "github") == "github":
        # Without a token the forge refuses to open the pull request: such a Goal always fails.
        assert reference is not None, f"{name} opens pull requests but names no token Secret"
    if reference is not None:
        created = secrets_the_install_steps_create()
        assert reference["name"] in created, f"{name}: {reference['name']} is never created"
        assert reference.get("key", "token") == created[reference["name"]], name


def test_the_examples_say_how_to_create_the_secret_they_name() -> None:
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        for _, document in documents_in(path):
            reference = goal_parts(document)[0].get("credentialsSecret")
            if reference is not None:
                made = CREATE_SECRET.search(text)
                assert made and made.group(1) == reference["name"], path
