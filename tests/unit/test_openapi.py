"""The GitHub stand-in held to GitHub's own REST API description: the validator, and the hook
that checks every answer the stand-in serves."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from backlog_operator.adapters.github_app import WORKER_PERMISSIONS, GitHubApp, app_credentials
from tests.support import github_standin
from tests.support.github_apps import private_pem
from tests.support.github_standin import OPERATIONS, GitHubStandIn, StandInPull
from tests.support.npm_fixtures import package
from tests.support.openapi import PACKAGE, Description, convert_schema, github_description

TOKEN = "stand-in-test-token"
REPO = "octo-org/octo-repo"
PULL = "/repos/{owner}/{repo}/pulls/{pull_number}"


@pytest.fixture(scope="session")
def description() -> Description:
    """GitHub's description, read once (skips where `make fixtures` has not installed it)."""
    package(PACKAGE)
    found = github_description()
    assert found is not None
    return found


@pytest.fixture
def gh(description: Description) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(REPO, token=TOKEN) as standin:
        yield standin


def call(
    gh: GitHubStandIn, method: str, path: str, body: Any = None, *, authorization: str = ""
) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", gh.port, timeout=5)
    try:
        payload = None if body is None else json.dumps(body).encode()
        authorization = authorization or f"token {TOKEN}"
        connection.request(method, path, body=payload, headers={"Authorization": authorization})
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        connection.close()


def app_answers(gh: GitHubStandIn) -> dict[tuple[str, str], tuple[int, Any]]:
    """The GitHub App operations, answered to an App's JWT (tests/support/github_apps.py)."""
    key = gh.apps.add_app(3)
    gh.apps.install(3, [REPO], installation_id=12)
    found = app_credentials({"appId": "3", "privateKey": private_pem(key)})
    assert found is not None
    jwt = f"Bearer {GitHubApp(found, base_url=gh.base_url).app_jwt()}"
    asked = {"repositories": [REPO.split("/")[1]], "permissions": dict(WORKER_PERMISSIONS)}
    installation = "/app/installations/{installation_id}"
    return {
        ("GET", "/repos/{owner}/{repo}/installation"): call(
            gh, "GET", f"/repos/{REPO}/installation", authorization=jwt
        ),
        ("GET", installation): call(gh, "GET", "/app/installations/12", authorization=jwt),
        ("POST", f"{installation}/access_tokens"): call(
            gh, "POST", "/app/installations/12/access_tokens", asked, authorization=jwt
        ),
    }


def pull_body(gh: GitHubStandIn, number: int = 1) -> dict[str, Any]:
    status, body = call(gh, "GET", f"/repos/{REPO}/pulls/{number}")
    assert status == 200
    assert isinstance(body, dict)
    return body


# -- the converter and the validator on a small description of their own -------------------------

SMALL = {
    "openapi": "3.0.3",
    "info": {"version": "test"},
    "paths": {
        "/things/{id}": {
            "get": {
                "responses": {
                    "200": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/thing"}}
                        }
                    },
                    "404": {"$ref": "#/components/responses/not_found"},
                }
            }
        }
    },
    "components": {
        "schemas": {
            "thing": {
                "type": "object",
                "required": ["id", "owner", "state", "seen_at"],
                "properties": {
                    "id": {"type": "integer"},
                    "owner": {"$ref": "#/components/schemas/nullable-user"},
                    "state": {"type": "string", "enum": ["open", "closed"], "nullable": True},
                    "seen_at": {"type": "string", "format": "date-time", "nullable": True},
                    "home": {"type": "string", "format": "uri"},
                    # A property named like a keyword is a property, not a keyword.
                    "nullable": {"type": "boolean"},
                },
            },
            "nullable-user": {
                "type": "object",
                "required": ["login"],
                "properties": {"login": {"type": "string"}},
                "nullable": True,
            },
            "basic-error": {"type": "object", "properties": {"message": {"type": "string"}}},
        },
        "responses": {
            "not_found": {
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/basic-error"}}
                }
            }
        },
    },
}


def small() -> Description:
    return Description(json.loads(json.dumps(SMALL)))


def test_nullable_becomes_a_json_schema_type() -> None:
    assert convert_schema({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert convert_schema({"type": "string", "enum": ["a"], "nullable": True}) == {
        "type": ["string", "null"],
        "enum": ["a", None],
    }
    assert convert_schema({"anyOf": [{"type": "integer"}], "nullable": True}) == {
        "anyOf": [{"type": "null"}, {"anyOf": [{"type": "integer"}]}]
    }
    nested = convert_schema(
        {
            "type": "object",
            "properties": {"nullable": {"type": "array", "items": {"type": "x", "nullable": True}}},
            "additionalProperties": False,
        }
    )
    assert nested == {
        "type": "object",
        "properties": {"nullable": {"type": "array", "items": {"type": ["x", "null"]}}},
        "additionalProperties": False,
    }


def test_nullable_and_refs_are_followed_when_validating() -> None:
    description = small()
    fine = {"id": 1, "owner": None, "state": None, "seen_at": None, "nullable": True}
    assert description.violations("GET", "/things/1", 200, fine) == []
    assert description.violations("GET", "/things/1", 200, {**fine, "owner": {"login": "a"}}) == []

    problems = description.violations("GET", "/things/1", 200, {**fine, "owner": {"name": "a"}})
    assert problems == ["GET /things/{id} answered 200: .owner: 'login' is a required property"]
    problems = description.violations("GET", "/things/1", 200, {**fine, "state": "merged"})
    assert problems == [
        "GET /things/{id} answered 200: .state: 'merged' is not one of ['open', 'closed', None]"
    ]
    # A shared response by `$ref`, and its schema by `$ref` again.
    assert description.violations("GET", "/things/1", 404, {"message": "Not Found"}) == []
    assert description.violations("GET", "/things/1", 404, {"message": 404}) == [
        "GET /things/{id} answered 404: .message: 404 is not of type 'string'"
    ]


def test_formats_that_show_a_shape_are_checked() -> None:
    description = small()
    thing = {"id": 1, "owner": None, "state": "open", "seen_at": "2026-01-30T23:15:00Z"}
    assert description.violations("GET", "/things/1", 200, {**thing, "home": "https://x/y"}) == []

    for wrong in ({"seen_at": "2026-01-30"}, {"seen_at": "yesterday"}, {"home": "/relative"}):
        (problem,) = description.violations("GET", "/things/1", 200, {**thing, **wrong})
        assert "is not a" in problem


# -- GitHub's description ------------------------------------------------------------------------


def test_every_operation_the_standin_serves_is_in_githubs_description(
    description: Description,
) -> None:
    missing = sorted(op for op in OPERATIONS if description.operation(*op) is None)
    assert missing == []
    # The stand-in answers each with a shape GitHub documents (stop checks, at the end).
    with GitHubStandIn(REPO, token=TOKEN) as gh:
        gh.add_pull("feature")
        answers = {
            ("GET", "/repos/{owner}/{repo}"): call(gh, "GET", f"/repos/{REPO}"),
            ("GET", "/repos/{owner}/{repo}/pulls"): call(gh, "GET", f"/repos/{REPO}/pulls"),
            ("POST", "/repos/{owner}/{repo}/pulls"): call(
                gh, "POST", f"/repos/{REPO}/pulls", {"head": "b", "base": "main", "title": "T"}
            ),
            ("GET", PULL): call(gh, "GET", f"/repos/{REPO}/pulls/1"),
            ("PATCH", PULL): call(gh, "PATCH", f"/repos/{REPO}/pulls/1", {"title": "New"}),
            ("GET", "/repos/{owner}/{repo}/issues/{issue_number}"): call(
                gh, "GET", f"/repos/{REPO}/issues/1"
            ),
            ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels"): call(
                gh, "POST", f"/repos/{REPO}/issues/1/labels", ["backlog"]
            ),
            ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): call(
                gh, "POST", f"/repos/{REPO}/issues/1/comments", {"body": "Hello"}
            ),
            **app_answers(gh),
        }
        assert set(answers) == OPERATIONS
        assert {op: status for op, (status, _) in answers.items() if status >= 300} == {}
        assert gh.violations == []


def test_a_refused_app_jwt_is_answered_in_githubs_basic_error_shape(gh: GitHubStandIn) -> None:
    gh.apps.add_app(3)
    status, body = call(gh, "GET", f"/repos/{REPO}/installation", authorization="Bearer not-a-jwt")
    assert status == 401
    assert isinstance(body, dict) and body.get("message")
    assert gh.violations == []


def test_a_missing_required_field_is_caught(gh: GitHubStandIn, description: Description) -> None:
    gh.add_pull("feature")
    body = pull_body(gh)
    assert description.violations("GET", f"/repos/{REPO}/pulls/1", 200, body) == []

    del body["mergeable_state"]
    del body["head"]["repo"]["owner"]["login"]

    assert description.violations("GET", f"/repos/{REPO}/pulls/1", 200, body) == [
        f"GET {PULL} answered 200: the body: 'mergeable_state' is a required property",
        f"GET {PULL} answered 200: .head.repo.owner: 'login' is a required property",
    ]


def test_a_wrong_type_is_caught(gh: GitHubStandIn, description: Description) -> None:
    gh.add_pull("feature")
    body = {**pull_body(gh), "number": "1", "merged": None, "mergeable": "yes"}

    assert description.violations("GET", f"/repos/{REPO}/pulls/1", 200, body) == [
        f"GET {PULL} answered 200: .mergeable: 'yes' is not of type 'boolean', 'null'",
        f"GET {PULL} answered 200: .merged: None is not of type 'boolean'",
        f"GET {PULL} answered 200: .number: '1' is not of type 'integer'",
    ]


def test_an_undocumented_status_or_operation_is_caught(description: Description) -> None:
    error = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
    assert description.violations("GET", f"/repos/{REPO}/pulls/1", 201, {}) == [
        f"GET {PULL} answered 201: the description documents only 200, 304, 404, 406, 500, 503"
    ]
    (problem,) = description.violations("POST", f"/repos/{REPO}/pulls", 200, {})
    assert problem.startswith("POST /repos/{owner}/{repo}/pulls answered 200: the description")
    assert description.violations("GET", f"/repos/{REPO}/pulls/1/nonsense", 200, {}) == [
        f"GET /repos/{REPO}/pulls/1/nonsense: GitHub's description has no such operation"
    ]
    # What GitHub answers to any path or operation is not a violation: held to its shape.
    assert description.violations("GET", f"/repos/{REPO}/pulls/1/nonsense", 404, error) == []
    assert description.violations("POST", f"/repos/{REPO}/pulls", 503, error) == []
    assert description.violations("GET", f"/repos/{REPO}/pulls", 304, None) == []
    assert description.violations("GET", f"/repos/{REPO}/pulls", 502, {"message": 1}) == [
        "GET /repos/{owner}/{repo}/pulls answered 502: .message: 1 is not of type 'string'"
    ]
    # A failure a test injects may be anything a proxy sends; a JSON body of a known shape
    # is still checked.
    assert description.violations("GET", f"/repos/{REPO}", 418, "<html>", injected=True) == []
    assert description.violations("GET", f"/repos/{REPO}", 404, {"message": 1}, injected=True)


def test_a_wrong_shape_served_fails_the_test_when_the_standin_stops(
    description: Description, monkeypatch: pytest.MonkeyPatch
) -> None:
    shape = GitHubStandIn._pull_detail

    def without_merged(self: GitHubStandIn, pr: StandInPull, api: str, origin: str) -> Any:
        return {k: v for k, v in shape(self, pr, api, origin).items() if k != "merged"}

    monkeypatch.setattr(GitHubStandIn, "_pull_detail", without_merged)
    gh = GitHubStandIn(REPO, token=TOKEN).start()
    gh.add_pull("feature")
    # The client reads the answer happily (it retries or moves on): the stand-in remembers.
    assert call(gh, "GET", f"/repos/{REPO}/pulls/1")[0] == 200
    assert call(gh, "GET", f"/repos/{REPO}/pulls/1")[0] == 200

    with pytest.raises(AssertionError) as failed:
        gh.stop()

    assert f"GET {PULL} answered 200: the body: 'merged' is a required property" in str(
        failed.value
    )
    assert str(failed.value).count("'merged' is a required property") == 2


def test_an_unlisted_operation_or_another_object_served_is_a_violation(
    gh: GitHubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    gh.add_pull("feature")
    monkeypatch.setattr(
        github_standin, "OPERATIONS", OPERATIONS - {("GET", "/repos/{owner}/{repo}")}
    )
    # A pull request served as its issue.
    issue = GitHubStandIn._issue_json
    monkeypatch.setattr(GitHubStandIn, "_pull_json", lambda *a, **k: issue(*a[:4]))

    assert call(gh, "GET", f"/repos/{REPO}")[0] == 200
    assert call(gh, "GET", f"/repos/{REPO}/pulls/1")[0] == 200

    violations, gh.violations = list(gh.violations), []
    assert "GET /repos/{owner}/{repo}: served, but not listed in OPERATIONS" in violations
    assert f"GET {PULL} answered 200: the body: 'head' is a required property" in violations


def test_link_header_pages_are_checked_as_the_repository_they_alias(gh: GitHubStandIn) -> None:
    for number in range(3):
        gh.add_pull(f"b{number}")
    status, body = call(gh, "GET", "/repositories/1296269/pulls?per_page=2&page=2")
    assert (status, [pr["number"] for pr in body]) == (200, [1])
    assert gh.violations == []
