"""The worker steps' own reading of a goal (`worker.goal`) against the model (`api.goal.Goal`).

The reader exists so that a worker step need not import pydantic; it must never accept a goal
the model refuses, and must read what it accepts as the model does. Held here: it knows every
field of every model in the Goal, every validator of the model has its check in the reader,
and, on a goal that sets every field, each field's boundaries, wrong types, Python-named and
unknown keys, and random changes: where the reader accepts, the model accepts and both read the
same. The goals people and the operator write are read without the model at all.
"""

from __future__ import annotations

import copy
import json
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from backlog_operator.api.goal import Goal
from backlog_operator.api.worker_contract import goal_to_environment
from backlog_operator.worker.context import InvalidGoalError, parse_goal
from backlog_operator.worker.goal import KNOWN_KEYS, Unsure, WorkerGoal, read_goal

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# A goal that sets every field the reader reads (and those it checks and drops).
FULL: dict[str, Any] = {
    "apiVersion": "backlog.dev/v1alpha1",
    "kind": "Goal",
    "metadata": {
        "name": "api-pagination",
        "namespace": "team",
        "uid": "0b0b0b0b-1111-2222-3333-444455556666",
        "generation": 2,
        "annotations": {"example.com/owner": "someone"},
        "labels": {"app": "x"},
    },
    "spec": {
        "repository": {
            "url": "https://github.com/example/service.git",
            "baseBranch": "main",
            "credentialsSecret": {"name": "github-token", "key": "token"},
            "insecure": False,
        },
        "backlog": {"path": ".backlog/backlog.yaml", "taskId": "api-pagination"},
        "task": {
            "image": "python:3.12-slim",
            "command": ["python", "tools/implement.py"],
            "args": ["--task", "api-pagination"],
            "env": [{"name": "LOG_LEVEL", "value": "info"}],
            "resources": {
                "requests": {"cpu": "500m", "memory": "512Mi"},
                "limits": {"memory": "1Gi", "cpu": 2},
            },
            "workspaceSizeLimit": "8Gi",
            "timeoutSeconds": 1800,
        },
        "pullRequest": {
            "provider": "github",
            "apiBaseUrl": "https://github.example.com/api/v3",
            "repository": "example/service",
            "title": "{taskId}: {title}",
            "body": "{description}",
            "labels": ["backlog", "automated"],
            "draft": True,
            "branchPrefix": "backlog/",
        },
        "commit": {
            "authorName": "backlog-operator",
            "authorEmail": "backlog-operator@users.noreply.github.com",
            "message": "{taskId}: {title}",
        },
        "retry": {
            "maxAttempts": 3,
            "backoffSeconds": 60,
            "maxBackoffSeconds": 600,
            "permanentExitCodes": [3],
        },
        "priority": 5,
        "suspend": False,
        "approval": {"required": True, "expiresAfterSeconds": 3600},
    },
}


def model_verdict(data: Any) -> WorkerGoal | None:
    """The model's reading, as the worker's view; None where the model refuses the goal."""
    try:
        return WorkerGoal.from_model(Goal.model_validate(data))
    except ValidationError:
        return None


def reader_verdict(data: Any) -> WorkerGoal | None:
    """The reader's reading; None where it leaves the goal to the model."""
    try:
        return read_goal(data)
    except Unsure:
        return None


def assert_never_looser(data: Any) -> WorkerGoal | None:
    read = reader_verdict(data)
    if read is not None:
        assert read == model_verdict(data), json.dumps(data, default=str)[:2000]
    return read


# ------------------------------------------------------------------------------ the models


def nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The models inside a field's annotation (`X | None`, `list[X]`, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, dict):
        for argument in typing.get_args(annotation):
            found += nested_models(argument)
    return found


def goal_models() -> dict[str, type[BaseModel]]:
    """Every model of the Goal's spec and metadata, by name (not the status: the reader leaves
    any status to the model)."""
    seen: dict[str, type[BaseModel]] = {}
    pending: list[type[BaseModel]] = [Goal]
    while pending:
        model = pending.pop()
        if model.__name__ in seen or model.__name__ == "GoalStatus":
            continue
        seen[model.__name__] = model
        for field in model.model_fields.values():
            pending += nested_models(field.annotation)
    return seen


def test_the_reader_knows_the_fields_of_every_model_of_the_goal() -> None:
    models = goal_models()
    assert set(models) == set(KNOWN_KEYS)
    for name, model in models.items():
        aliases = {field.alias or key for key, field in model.model_fields.items()}
        assert aliases == KNOWN_KEYS[name], name


# Every validator of the models, each with its check in the reader (worker/goal.py): a new one
# needs a check there too (or the reader would accept what it refuses).
VALIDATORS = {
    "RepositorySpec": ["_no_credentials_in_url"],  # repository_url_has_credentials
    "BacklogRef": ["_inside_the_repository"],  # repository_path_problem
    "TaskSpec": ["_size_is_a_quantity"],  # positive_quantity
    "PullRequestSpec": ["_no_credentials_in_api_url", "_no_credentials_in_text"],
    "CommitSpec": ["_no_credentials_in_text"],  # has_credentials
    "ResourceRequirements": ["_valid_for_a_container"],  # check_resources
}


def test_each_validator_of_the_models_has_its_check_in_the_reader() -> None:
    found = {}
    for name, model in goal_models().items():
        decorators = model.__pydantic_decorators__
        names = [*decorators.field_validators, *decorators.model_validators]
        if names:
            found[name] = sorted(names)
    assert found == {name: sorted(names) for name, names in VALIDATORS.items()}


# --------------------------------------------------------------------------- generated goals


def field_paths(model: type[BaseModel], prefix: tuple[str | int, ...]) -> Iterator[Any]:
    """(path, field) of every field of `model` and of the models below it, FULL's shape."""
    for key, field in model.model_fields.items():
        path = (*prefix, field.alias or key)
        yield path, key, field
        for nested in nested_models(field.annotation):
            if typing.get_origin(field.annotation) is list:
                yield from field_paths(nested, (*path, 0))
            elif typing.get_origin(field.annotation) is dict:
                continue
            else:
                yield from field_paths(nested, path)


def bounds(field: Any) -> tuple[int | None, int | None]:
    least = most = None
    for item in field.metadata:
        least = getattr(item, "min_length", None) or getattr(item, "ge", None) or least
        most = getattr(item, "max_length", None) or getattr(item, "le", None) or most
    return least, most


def candidates(field: Any, current: Any) -> list[Any]:
    """Values to try in a field: other types, the bounds and just past them, odd text."""
    least, most = bounds(field)
    values: list[Any] = [None, True, False, 0, -1, 1, "1", 1.5, [], {}, "", "x", [1], ["x"]]
    values += [{"name": "x"}, "https://user:pw@host/x", "../up", "/abs", "a\n", "é"]
    for size in {least, most} - {None}:
        assert size is not None
        values += [size - 1, size, size + 1, "a" * (size - 1), "a" * size, "a" * (size + 1)]
    if isinstance(current, str):
        values += [current + "\n", current + " ", current.upper(), current * 2]
    if isinstance(current, list):
        values += [current * 2, [*current, 1], [*current, None]]
    return values


def get_in(data: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def set_in(data: Any, path: tuple[str | int, ...], value: Any) -> Any:
    changed = copy.deepcopy(data)
    get_in(changed, path[:-1])[path[-1]] = value
    return changed


def deleted(data: Any, path: tuple[str | int, ...]) -> Any:
    changed = copy.deepcopy(data)
    del get_in(changed, path[:-1])[path[-1]]
    return changed


def generated() -> Iterator[tuple[str, Any]]:
    for path, name, field in field_paths(Goal, ()):
        if path[0] == "status":
            continue
        try:
            current = get_in(FULL, path)
        except (KeyError, IndexError):
            current = None
        for value in candidates(field, current):
            yield f"{'.'.join(map(str, path))}={value!r}"[:80], set_in(FULL, path, value)
        if current is not None:
            yield f"{path} deleted", deleted(FULL, path)
        parent = path[:-1]
        if name != path[-1]:  # the Python name, which the model reads too
            yield f"{path} as {name}", set_in(FULL, (*parent, name), current)
            yield f"{path} as {name}, a list", set_in(FULL, (*parent, name), [1])
        yield f"{parent} unknown key", set_in(FULL, (*parent, "unknownKey"), 1)
    yield "a status", {**FULL, "status": {"phase": "Running"}}
    yield "a creation time", set_in(FULL, ("metadata", "creationTimestamp"), "2026-01-01T00:00:00Z")
    yield "a numeric key", {**FULL, 1: "x"}


def test_full_goal_is_read_by_the_reader_as_by_the_model() -> None:
    assert assert_never_looser(FULL) is not None


@pytest.mark.parametrize(("label", "data"), list(generated()))
def test_the_reader_never_accepts_what_the_model_refuses(label: str, data: Any) -> None:
    assert_never_looser(data)


def test_the_reader_refuses_what_the_model_refuses_among_the_generated_goals() -> None:
    # Not vacuous: among the generated goals, many are refused by the model, and the reader
    # leaves every one of those to it; it reads most of those the model accepts itself.
    verdicts = [(model_verdict(data), reader_verdict(data)) for _label, data in generated()]
    refused = [read for model, read in verdicts if model is None]
    accepted = [read for model, read in verdicts if model is not None]
    assert len(refused) > 300 and not any(refused)
    assert sum(read is not None for read in accepted) > len(accepted) // 2


def leaf_paths(data: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    paths: list[tuple[str | int, ...]] = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            paths += leaf_paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            paths += leaf_paths(value, (*prefix, index))
    return paths


PATHS = leaf_paths(FULL)
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["", "main", "a/b", "https://t@h/x", "8Gi", "0", "-1m", "x\n", "ftp://h"]),
    st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), ODD), min_size=1, max_size=3))
def test_randomly_changed_goals(changes: list[tuple[tuple[str | int, ...], Any]]) -> None:
    data = FULL
    for path, value in changes:
        try:
            data = set_in(data, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change made the path go away
    assert_never_looser(data)


# ------------------------------------------------------------------- goals as they are written


def written_goals() -> list[Path]:
    return [*sorted((EXAMPLES / "goals").glob("*.yaml")), EXAMPLES / "local" / "goal.yaml"]


@pytest.mark.parametrize("path", written_goals(), ids=lambda path: path.name)
def test_example_goals_and_their_job_environment_are_read_without_the_model(path: Path) -> None:
    from ruamel.yaml import YAML

    data = YAML(typ="safe", pure=True).load(path.read_text())
    model = Goal.model_validate(data)
    in_job = json.loads(goal_to_environment(model))

    assert read_goal(data) == WorkerGoal.from_model(model)
    assert read_goal(in_job) == WorkerGoal.from_model(model)


def test_a_goal_the_model_refuses_is_refused_in_the_models_words() -> None:
    manifest = {"kind": "Goal", "spec": {"repository": {"url": "r"}, "task": {"command": []}}}
    with pytest.raises(InvalidGoalError) as raised:
        parse_goal(json.dumps(manifest), source="goal.json")
    assert str(raised.value) == (
        "goal.json: invalid Goal: spec.task.command: List should have at least 1 item after "
        "validation, not 0"
    )


def test_a_goal_the_reader_leaves_to_the_model_is_still_read() -> None:
    manifest = {**FULL, "status": {"phase": "Running"}}  # as `kubectl get -o yaml` gives it
    assert parse_goal(json.dumps(manifest), source="goal.json") == model_verdict(manifest)
