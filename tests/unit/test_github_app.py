"""GitHub App authentication against the GitHub stand-in over real HTTP: the App's JWT checked
with its public key, installations found, installation tokens held to their repository, their
permissions and their expiry (a clock the test controls), and cached for the operator's calls.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from backlog_operator.adapters.github import ForgeError, GitHubForge
from backlog_operator.adapters.github_app import (
    OPERATOR_PERMISSIONS,
    WORKER_PERMISSIONS,
    AppCredentials,
    GitHubApp,
    app_credentials,
)
from backlog_operator.api.common import SecretKeyReference
from backlog_operator.controller.credentials import REUSE_MARGIN, ForgeCredentials
from backlog_operator.errors import ClassifiedError
from tests.support.github_apps import new_private_key, private_pem
from tests.support.github_standin import GitHubStandIn

REPO = "octo/project"
OTHER = "octo/other"
APP_ID = 4242
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """One time for both sides: the operator's and GitHub's (the stand-in's)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gh(clock: Clock) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(REPO, token="static-token-nobody-uses") as standin:
        standin.apps.clock = clock.epoch
        yield standin


@pytest.fixture
def pem(gh: GitHubStandIn) -> str:
    key = gh.apps.add_app(APP_ID)
    gh.apps.install(APP_ID, [REPO, OTHER], installation_id=77)
    return private_pem(key)


def app(pem: str, gh: GitHubStandIn, clock: Clock, **data: str) -> GitHubApp:
    found = app_credentials({"appId": str(APP_ID), "privateKey": pem, **data})
    assert found is not None
    return GitHubApp(found, base_url=gh.base_url, clock=clock)


def forge(gh: GitHubStandIn, token: str, repository: str = REPO) -> GitHubForge:
    return GitHubForge(repository, token, base_url=gh.base_url, seconds_between_writes=None)


# ---------------------------------------------------------------------------- the App's JWT


def test_the_jwt_is_verified_with_the_apps_public_key(
    gh: GitHubStandIn, pem: str, clock: Clock
) -> None:
    minted = app(pem, gh, clock).mint(REPO)
    assert minted.token.startswith("ghs_") and minted.installation_id == 77

    stranger = private_pem(new_private_key())  # a key that is not the App's
    with pytest.raises(ForgeError) as refused:
        app(stranger, gh, clock).mint(REPO)
    assert refused.value.reason == "AppAuthenticationFailed"
    assert not refused.value.retryable
    assert (401, "A JSON web token could not be decoded") in gh.apps.refusals
    assert len(gh.apps.issued) == 1  # nothing was issued to the wrong key


def test_an_unknown_app_is_refused_as_github_does(
    gh: GitHubStandIn, pem: str, clock: Clock
) -> None:
    found = app_credentials({"appId": "999", "privateKey": pem})
    assert found is not None
    with pytest.raises(ForgeError) as refused:
        GitHubApp(found, base_url=gh.base_url, clock=clock).mint(REPO)
    assert refused.value.reason == "AppAuthenticationFailed"
    assert (404, "Integration not found") in gh.apps.refusals


def test_the_jwt_lives_less_than_ten_minutes_on_githubs_clock(
    gh: GitHubStandIn, pem: str, clock: Clock
) -> None:
    client = app(pem, gh, clock)
    claims = jwt.decode(client.app_jwt(), options={"verify_signature": False})
    assert claims["iss"] == str(APP_ID)
    assert claims["exp"] - claims["iat"] <= 600
    assert claims["iat"] < clock.epoch() < claims["exp"]

    # An operator whose clock runs two minutes ahead signs an exp too far in GitHub's future.
    ahead = Clock()
    ahead.advance(120)
    with pytest.raises(ForgeError) as refused:
        app(pem, gh, ahead).mint(REPO)
    assert refused.value.reason == "AppAuthenticationFailed"
    assert gh.apps.refusals[-1] == (
        401,
        "'Expiration time' claim ('exp') is too far in the future",
    )
    # One ten minutes behind signs a JWT GitHub holds expired.
    behind = Clock()
    behind.advance(-600)
    with pytest.raises(ForgeError):
        app(pem, gh, behind).mint(REPO)
    assert "'Expiration time' claim ('exp') must be" in gh.apps.refusals[-1][1]


# --------------------------------------------------------------------------- installations


def test_the_installation_is_found_for_the_repository_unless_the_secret_names_it(
    gh: GitHubStandIn, pem: str, clock: Clock
) -> None:
    app(pem, gh, clock).mint(REPO)
    assert [r.path for r in gh.requests] == [
        f"/repos/{REPO}/installation",
        "/app/installations/77/access_tokens",
    ]
    gh.requests.clear()
    app(pem, gh, clock, installationId="77").mint(REPO)
    assert [r.path for r in gh.requests] == ["/app/installations/77/access_tokens"]


def test_an_app_not_installed_on_the_repository_or_a_wrong_installation_is_said(
    gh: GitHubStandIn, pem: str, clock: Clock
) -> None:
    with pytest.raises(ForgeError) as missing:
        app(pem, gh, clock).mint("octo/elsewhere")
    assert missing.value.reason == "AppNotInstalled" and not missing.value.retryable
    assert "not installed on the repository" in str(missing.value)

    with pytest.raises(ForgeError) as wrong:
        app(pem, gh, clock, installationId="78").mint(REPO)
    assert wrong.value.reason == "AppNotInstalled"
    assert "installation 78 does not exist" in str(wrong.value)


def test_permissions_the_installation_lacks_are_said(gh: GitHubStandIn, clock: Clock) -> None:
    key = gh.apps.add_app(APP_ID)
    gh.apps.install(APP_ID, [REPO], permissions={"contents": "read", "metadata": "read"})
    with pytest.raises(ForgeError) as refused:
        app(private_pem(key), gh, clock).mint(REPO)
    assert refused.value.reason == "AppPermissionsMissing"
    assert "contents: write, pull requests: write" in str(refused.value)


@pytest.mark.parametrize(
    ("data", "fault"),
    [
        ({"appId": "not-a-number", "privateKey": "x"}, "appId is not a GitHub App id"),
        ({"appId": "12"}, "no privateKey"),
        ({"appId": "12", "privateKey": "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n"}, "not a PEM"),
        ({"appId": "12", "privateKey": "PEM", "installationId": "x"}, "not a PEM"),
    ],
)
def test_a_malformed_app_secret_names_the_key_not_its_value(
    data: dict[str, str], fault: str
) -> None:
    with pytest.raises(ForgeError) as refused:
        app_credentials(data)
    assert refused.value.reason == "InvalidAppCredentials" and not refused.value.retryable
    assert fault in str(refused.value)
    assert "AAAA" not in str(refused.value)


def test_a_malformed_installation_id_is_refused(pem: str) -> None:
    with pytest.raises(ForgeError, match="installationId is not an installation id"):
        app_credentials({"appId": "12", "privateKey": pem, "installationId": "seventy"})


def test_a_secret_without_app_id_holds_a_token() -> None:
    assert app_credentials({"token": "ghp_x"}) is None


# ------------------------------------------------------------ tokens held to their scope


def test_a_token_is_for_one_repository_and_the_workers_permissions(
    gh: GitHubStandIn, pem: str, clock: Clock
) -> None:
    minted = app(pem, gh, clock).mint(REPO, WORKER_PERMISSIONS)
    [asked] = gh.requests_to("POST", "/access_tokens")
    assert asked.body == {"repositories": ["project"], "permissions": dict(WORKER_PERMISSIONS)}
    [issued] = gh.apps.issued
    assert issued.repositories == [REPO] and issued.permissions == dict(WORKER_PERMISSIONS)
    assert minted.expires_at == START + timedelta(hours=1)
    assert dict(minted.permissions) == dict(WORKER_PERMISSIONS)

    with forge(gh, minted.token) as client:
        ref, created = client.open_pull_request(
            head="backlog/t-1", base="main", title="T", body="", draft=False, labels=["backlog"]
        )
    assert created and gh.pulls[ref.number].labels == ["backlog"]


def test_a_token_for_another_repository_is_refused(
    gh: GitHubStandIn, pem: str, clock: Clock
) -> None:
    elsewhere = app(pem, gh, clock).mint(OTHER, WORKER_PERMISSIONS)
    with forge(gh, elsewhere.token) as client, pytest.raises(ForgeError) as refused:
        client.open_pull_request(
            head="backlog/t-1", base="main", title="T", body="", draft=False, labels=[]
        )
    assert refused.value.reason == "NotFound"
    assert gh.pulls == {}


def test_a_read_only_token_cannot_open_a_pull_request(
    gh: GitHubStandIn, pem: str, clock: Clock
) -> None:
    reader = app(pem, gh, clock).mint(REPO, OPERATOR_PERMISSIONS)
    with forge(gh, reader.token) as client:
        assert client.open_pull_requests("backlog/") == []  # reading is allowed
        with pytest.raises(ForgeError) as refused:
            client.open_pull_request(
                head="backlog/t-1", base="main", title="T", body="", draft=False, labels=[]
            )
    assert refused.value.reason == "AccessDenied"
    assert (403, "Resource not accessible by integration") in gh.apps.refusals


def test_a_token_stops_working_when_it_expires(gh: GitHubStandIn, pem: str, clock: Clock) -> None:
    minted = app(pem, gh, clock).mint(REPO, OPERATOR_PERMISSIONS)
    with forge(gh, minted.token) as client:
        clock.advance(3599)
        assert client.open_pull_requests("backlog/") == []
        clock.advance(1)
        with pytest.raises(ForgeError) as expired:
            client.open_pull_requests("backlog/")
    assert expired.value.reason == "AuthenticationFailed"


def test_no_key_jwt_or_token_in_messages_reprs_or_logs(
    gh: GitHubStandIn, pem: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = app(pem, gh, clock)
    minted = client.mint(REPO)
    gh.fail_next(500, path_contains="/access_tokens")
    with pytest.raises(ForgeError) as failed:
        client.mint(REPO)
    assert failed.value.reason == "ForgeUnavailable" and failed.value.retryable
    texts = [repr(client), repr(client.credentials), repr(minted), str(failed.value), caplog.text]
    body = pem.splitlines()[1]
    for text in texts:
        assert minted.token not in text and body not in text
        assert "BEGIN RSA" not in text


# ------------------------------------------------------- cached for the operator's calls


class SecretCluster:
    """A cluster that holds Secrets (all keys readable), counting reads."""

    def __init__(self, secrets: dict[str, dict[str, str]]) -> None:
        self.secrets = secrets
        self.reads = 0

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        return self.secrets.get(name, {}).get(key)

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        self.reads += 1
        return self.secrets.get(name)


def test_operator_tokens_are_cached_until_shortly_before_expiry_and_renewed_on_request(
    gh: GitHubStandIn, pem: str, clock: Clock
) -> None:
    cluster = SecretCluster({"app": {"appId": str(APP_ID), "privateKey": pem}})
    credentials = ForgeCredentials(cluster, clock=clock)
    ref = SecretKeyReference(name="app")

    def token(**options: Any) -> str | None:
        return asyncio.run(credentials.token("ns", ref, REPO, gh.base_url, **options))

    first = token()
    assert token() == first and credentials.minted == 1
    assert gh.apps.issued[0].permissions == dict(OPERATOR_PERMISSIONS)
    clock.advance((timedelta(hours=1) - REUSE_MARGIN).total_seconds() - 1)
    assert token() == first  # still more than the margin left
    clock.advance(2)
    second = token()
    assert second != first and credentials.minted == 2
    assert token(fresh=True) not in (first, second)  # after a 401: a new one at once
    assert credentials.minted == 3
    # Another repository: a token of its own.
    other = asyncio.run(credentials.token("ns", ref, OTHER, gh.base_url))
    assert gh.apps.issued[-1].repositories == [OTHER] and other != second


def test_a_secret_with_a_token_is_used_as_it_is() -> None:
    cluster = SecretCluster({"pat": {"token": "ghp_plain"}})
    credentials = ForgeCredentials(cluster)
    found = asyncio.run(credentials.token("ns", SecretKeyReference(name="pat"), REPO, None))
    assert found == "ghp_plain" and credentials.minted == 0


def test_an_app_needs_the_repository_named(pem: str) -> None:
    cluster = SecretCluster({"app": {"appId": str(APP_ID), "privateKey": pem}})
    with pytest.raises(ClassifiedError, match=r"set pullRequest\.repository"):
        asyncio.run(
            ForgeCredentials(cluster).token("ns", SecretKeyReference(name="app"), None, None)
        )


def test_app_credentials_do_not_show_the_key() -> None:
    found = app_credentials({"appId": "5", "privateKey": private_pem(new_private_key())})
    assert isinstance(found, AppCredentials)
    assert "PRIVATE" not in repr(found) and "private_key" not in repr(found)


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(mac)}"


def _signed(key: Any, **claims: Any) -> str:
    return jwt.encode(claims, key, algorithm="RS256")


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({"iat": -60, "exp": 540}, True),
        ({"iat": 0, "exp": 600}, True),  # ten minutes: GitHub's limit, inclusive
        ({"iat": 0, "exp": 601}, False),  # a second more
        ({"iat": 30, "exp": 300}, False),  # issued in the future
        ({"iat": -700, "exp": -1}, False),  # expired
        ({"exp": 300}, False),  # no iat
    ],
)
def test_the_stand_in_holds_a_jwt_to_githubs_time_bounds(
    gh: GitHubStandIn, clock: Clock, claims: dict[str, int], accepted: bool
) -> None:
    key = gh.apps.add_app(APP_ID)
    gh.apps.install(APP_ID, [REPO])
    now = int(clock.epoch())
    token = _signed(key, iss=str(APP_ID), **{k: now + v for k, v in claims.items()})
    answer = requests.get(
        f"{gh.base_url}/repos/{REPO}/installation",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert answer.status_code == (200 if accepted else 401), answer.text


def test_the_stand_in_refuses_a_jwt_not_signed_rs256_with_the_apps_key(
    gh: GitHubStandIn, clock: Clock
) -> None:
    key = gh.apps.add_app(APP_ID)
    gh.apps.install(APP_ID, [REPO])
    now = int(clock.epoch())
    claims = {"iss": str(APP_ID), "iat": now - 60, "exp": now + 500}
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = [
        _hs256(claims, public),  # the public key as an HMAC secret (PyJWT will not do it)
        jwt.encode(claims, new_private_key(), algorithm="RS256"),  # another key
        jwt.encode(claims, key, algorithm="RS512"),  # the App's key, another algorithm
    ]
    for token in forged:
        answer = requests.get(
            f"{gh.base_url}/repos/{REPO}/installation",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert answer.status_code == 401
        assert answer.json()["message"] == "A JSON web token could not be decoded"
    assert gh.apps.issued == []


def test_a_secrets_app_is_parsed_once_per_content(pem: str) -> None:
    # Loading an RSA key checks it (tens of milliseconds): not at every sync and look.
    cluster = SecretCluster({"app": {"appId": str(APP_ID), "privateKey": pem}})
    credentials = ForgeCredentials(cluster)
    ref = SecretKeyReference(name="app")
    first = asyncio.run(credentials.read("ns", ref))
    again = asyncio.run(credentials.read("ns", ref))
    assert first is not None and again is not None and first.app is again.app
    cluster.secrets["app"] = {"appId": str(APP_ID), "privateKey": private_pem(new_private_key())}
    rotated = asyncio.run(credentials.read("ns", ref))
    assert rotated is not None and rotated.app is not first.app  # a rotated key is read anew
