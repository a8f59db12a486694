"""The stand-in's answers to the GitHub App operations, held to GitHub's OpenAPI description
(npm `@octokit/openapi`, installed by `make fixtures`) by the stand-in's own check of every
answer it serves (tests/support/openapi.py): an answer GitHub would never send fails here, not
on a real installation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from backlog_operator.adapters.github_app import WORKER_PERMISSIONS, GitHubApp, app_credentials
from tests.support.github_apps import private_pem
from tests.support.github_standin import GitHubStandIn
from tests.support.npm_fixtures import package
from tests.support.openapi import PACKAGE

REPO = "octo/project"


@pytest.fixture
def gh() -> Iterator[GitHubStandIn]:
    package(PACKAGE)  # skips where `make fixtures` has not installed the description
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
    assert minted.json()["repository_selection"] == "selected"
    assert gh.violations == []


def test_a_refusal_has_githubs_basic_error_shape(gh: GitHubStandIn) -> None:
    gh.apps.add_app(3)
    answer = requests.get(
        f"{gh.base_url}/repos/{REPO}/installation",
        headers={"Authorization": "Bearer not-a-jwt"},
        timeout=5,
    )
    assert answer.status_code == 401
    assert gh.violations == []
