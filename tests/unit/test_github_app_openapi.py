"""The stand-in's answers to the GitHub App operations, held to GitHub's OpenAPI description
(npm `@octokit/openapi`, installed by `make fixtures`): an answer GitHub would never send
fails here, not on a real installation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema
import pytest
import requests

from backlog_operator.adapters.github_app import WORKER_PERMISSIONS, GitHubApp, app_credentials
from tests.support.github_apps import private_pem
from tests.support.github_standin import GitHubStandIn
from tests.support.npm_fixtures import package

REPO = "octo/project"


@cache
def _description() -> dict[str, Any]:
    path = package("@octokit/openapi") / "generated" / "api.github.com.json"
    found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return found


def _schema(path: str, method: str, status: str) -> dict[str, Any]:
    """The response schema of an operation, its `$ref`s resolved and OpenAPI's `nullable`
    spelt as JSON Schema (a type that also admits null)."""
    description = _description()
    answer = description["paths"][path][method]["responses"][status]
    schema: dict[str, Any] = _plain(answer["content"]["application/json"]["schema"], description, 0)
    return schema


def _plain(node: Any, description: dict[str, Any], depth: int) -> Any:
    if depth > 12:  # deep enough for these schemas; anything further is accepted
        return {}
    if isinstance(node, list):
        return [_plain(item, description, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        return _plain(description["components"]["schemas"][name], description, depth + 1)
    plain = {k: _plain(v, description, depth) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [plain, {"type": "null"}]}
    return plain


@pytest.fixture
def gh() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(REPO, token="unused-static") as standin:
        yield standin


def test_installation_and_installation_token_answers_match_githubs_description(
    gh: GitHubStandIn,
) -> None:
    key = gh.apps.add_app(3)
    gh.apps.install(3, [REPO], installation_id=12)
    found = app_credentials({"appId": "3", "privateKey": private_pem(key)})
    assert found is not None
    app = GitHubApp(found, base_url=gh.base_url)
    headers = {"Authorization": f"Bearer {app.app_jwt()}"}

    by_repository = requests.get(
        f"{gh.base_url}/repos/{REPO}/installation", headers=headers, timeout=5
    )
    by_id = requests.get(f"{gh.base_url}/app/installations/12", headers=headers, timeout=5)
    minted = requests.post(
        f"{gh.base_url}/app/installations/12/access_tokens",
        headers=headers,
        json={"repositories": ["project"], "permissions": dict(WORKER_PERMISSIONS)},
        timeout=5,
    )

    assert (by_repository.status_code, by_id.status_code, minted.status_code) == (200, 200, 201)
    installation = _schema("/repos/{owner}/{repo}/installation", "get", "200")
    jsonschema.validate(by_repository.json(), installation)
    jsonschema.validate(by_id.json(), _schema("/app/installations/{installation_id}", "get", "200"))
    token = _schema("/app/installations/{installation_id}/access_tokens", "post", "201")
    jsonschema.validate(minted.json(), token)
    assert minted.json()["repository_selection"] == "selected"


def test_a_refusal_has_githubs_basic_error_shape(gh: GitHubStandIn) -> None:
    gh.apps.add_app(3)
    answer = requests.get(
        f"{gh.base_url}/repos/{REPO}/installation",
        headers={"Authorization": "Bearer not-a-jwt"},
        timeout=5,
    )
    assert answer.status_code == 401
    description = _description()
    error = _plain({"$ref": "#/components/schemas/basic-error"}, description, 0)
    jsonschema.validate(answer.json(), error)
