"""GitHub App authentication: the App's JWT, its installation for a repository, and
installation tokens restricted to one repository and to the permissions asked for.

A credentials Secret holds an App instead of a token when it has the key `appId` (with
`privateKey`, the App's PEM private key, and optionally `installationId`; without it the
installation is found for the repository: `GET /repos/{owner}/{repo}/installation`).

Why not PyGithub's `Auth.AppInstallationAuth`: its `get_access_token` cannot restrict a token
to one repository (`repositories`), and it refreshes 20 s before expiry, too late for a token
that a Pod reads from a Secret volume the kubelet updates a minute or more after the operator.
So the JWT is signed here with PyJWT (RS256, `iss` the App id, issued 60 s in the past for clock
skew, valid 9 minutes: GitHub refuses more than 10) and the token minted with one request:

    POST /app/installations/{installation_id}/access_tokens
    {"repositories": ["name"], "permissions": {"contents": "write", ...}}
    -> 201 {"token": "ghs_...", "expires_at": "...", "permissions": {...},
            "repository_selection": "selected", "repositories": [...]}

Errors are `ForgeError`s with reasons of their own (docs/operator.md): `InvalidAppCredentials`
(the Secret's keys are malformed: found before any request), `AppAuthenticationFailed` (401:
an unknown App, or a key that is not the App's), `AppNotInstalled` (404: the App has no
installation on the repository, or the installation id is unknown), `AppPermissionsMissing`
(422: the installation cannot reach the repository or was not granted the permissions), and
the usual `ForgeUnavailable` / `RateLimited`. No message carries the key, the JWT or a token.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from backlog_operator import __version__
from backlog_operator.adapters.github import DEFAULT_API_URL, ForgeError
from backlog_operator.redact import Redactor

__all__ = [
    "APP_ID_KEY",
    "INSTALLATION_ID_KEY",
    "OPERATOR_PERMISSIONS",
    "PRIVATE_KEY_KEY",
    "WORKER_PERMISSIONS",
    "AppCredentials",
    "GitHubApp",
    "InstallationToken",
    "app_credentials",
]

APP_ID_KEY = "appId"
PRIVATE_KEY_KEY = "privateKey"
INSTALLATION_ID_KEY = "installationId"
# What the worker needs and nothing more: push a branch, open and label a pull request.
WORKER_PERMISSIONS: Mapping[str, str] = {
    "contents": "write",
    "pull_requests": "write",
    "metadata": "read",
}
# The operator's own calls only read: a Backlog's sync (its backlog file, its open pull
# requests) and following a goal's pull request.
OPERATOR_PERMISSIONS: Mapping[str, str] = {
    "contents": "read",
    "pull_requests": "read",
    "metadata": "read",
}
# GitHub's advice: issued a minute in the past (clocks drift), at most 10 minutes long.
_JWT_BACKDATE = 60
_JWT_LIFETIME = 540
_NUMBER = re.compile(r"^[0-9]{1,19}$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class AppCredentials:
    """A GitHub App as a credentials Secret holds it (the key never shown by `repr`)."""

    app_id: str
    private_key: RSAPrivateKey = field(repr=False)
    installation_id: int | None = None


@dataclass(frozen=True)
class InstallationToken:
    """An installation token, the installation it is for, and when it stops working."""

    token: str = field(repr=False)
    expires_at: datetime
    installation_id: int
    repository: str
    permissions: Mapping[str, str] = field(default_factory=dict)


def app_credentials(data: Mapping[str, str]) -> AppCredentials | None:
    """The App in a Secret's decoded `data`, or None when it holds none (no `appId`).

    A malformed App is an `InvalidAppCredentials` ForgeError naming the key at fault, never its
    value: what no retry mends (the Secret has to be fixed).
    """
    if APP_ID_KEY not in data:
        return None
    app_id = data[APP_ID_KEY].strip()
    if not _NUMBER.match(app_id):
        raise _invalid(f"the Secret's {APP_ID_KEY} is not a GitHub App id (a number)")
    pem = (data.get(PRIVATE_KEY_KEY) or "").strip()
    if not pem:
        raise _invalid(f"the Secret has {APP_ID_KEY} but no {PRIVATE_KEY_KEY}")
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise _invalid(
            f"the Secret's {PRIVATE_KEY_KEY} is not a PEM private key without a passphrase "
            "(the .pem file GitHub gives for the App)"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise _invalid(f"the Secret's {PRIVATE_KEY_KEY} is not an RSA key (GitHub Apps sign RS256)")
    installation = (data.get(INSTALLATION_ID_KEY) or "").strip()
    if installation and not _NUMBER.match(installation):
        raise _invalid(f"the Secret's {INSTALLATION_ID_KEY} is not an installation id (a number)")
    return AppCredentials(app_id, key, int(installation) if installation else None)


def _invalid(message: str) -> ForgeError:
    return ForgeError("InvalidAppCredentials", message, retryable=False)


class GitHubApp:
    """One GitHub App at one API root (`base_url`; GitHub Enterprise: `https://HOST/api/v3`).

    Blocking: callers run it in a thread. `clock` tells the time the JWT is signed at.
    """

    def __init__(
        self,
        credentials: AppCredentials,
        *,
        base_url: str | None = None,
        timeout: float = 15.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.credentials = credentials
        self.base_url = (base_url or DEFAULT_API_URL).rstrip("/")
        self.timeout = max(1, math.ceil(timeout))
        self.clock = clock or (lambda: datetime.now(UTC))
        self._redact = Redactor()

    def __repr__(self) -> str:
        return f"GitHubApp({self.credentials.app_id!r}, base_url={self.base_url!r})"

    def app_jwt(self) -> str:
        """A JWT that authenticates as the App for the next nine minutes."""
        now = int(self.clock().timestamp())
        payload = {
            "iat": now - _JWT_BACKDATE,
            "exp": now + _JWT_LIFETIME,
            "iss": self.credentials.app_id,
        }
        token = jwt.encode(payload, self.credentials.private_key, algorithm="RS256")
        self._redact.add(token)
        return token

    def installation_id(self, repository: str) -> int:
        """The App's installation on `repository` (owner/name): the Secret's, else asked."""
        if self.credentials.installation_id is not None:
            return self.credentials.installation_id
        _require_repository(repository)
        found = self._request(
            "GET",
            f"/repos/{repository}/installation",
            None,
            f"finding its installation on {repository}",
        )
        installation = found.get("id")
        if not isinstance(installation, int):
            raise self._unreadable(f"finding its installation on {repository}")
        return installation

    def mint(
        self, repository: str, permissions: Mapping[str, str] = WORKER_PERMISSIONS
    ) -> InstallationToken:
        """A new installation token for `repository` (owner/name) alone, with `permissions`."""
        _require_repository(repository)
        installation = self.installation_id(repository)
        action = f"minting a token for {repository}"
        answer = self._request(
            "POST",
            f"/app/installations/{installation}/access_tokens",
            {"repositories": [repository.split("/", 1)[1]], "permissions": dict(permissions)},
            action,
            installation=installation,
        )
        token, expires = answer.get("token"), _time(answer.get("expires_at"))
        if not isinstance(token, str) or not token or expires is None:
            raise self._unreadable(action)
        self._redact.add(token)
        granted = answer.get("permissions")
        return InstallationToken(
            token=token,
            expires_at=expires,
            installation_id=installation,
            repository=repository,
            permissions=dict(granted) if isinstance(granted, Mapping) else dict(permissions),
        )

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        action: str,
        *,
        installation: int | None = None,
    ) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self.app_jwt()}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": f"backlog-operator/{__version__}",
        }
        try:
            answer = requests.request(
                method,
                f"{self.base_url}{path}",
                json=body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except (requests.RequestException, OSError) as error:
            raise ForgeError(
                "ForgeUnavailable",
                f"Could not reach GitHub at {self.base_url} while {action} "
                f"({type(error).__name__}).",
                retryable=True,
            ) from None
        if answer.status_code >= 400:
            raise self._refused(answer, action, installation)
        try:
            data = answer.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self._unreadable(action)
        return data

    def _refused(
        self, answer: requests.Response, action: str, installation: int | None
    ) -> ForgeError:
        status = answer.status_code
        said = _message(answer)
        where = f"while {action} with GitHub App {self.credentials.app_id} at {self.base_url}"
        text = f"{status} {said}".strip()
        retry_after = _int_or_none(answer.headers.get("Retry-After"))
        if status == 401 or (status == 404 and "integration not found" in said.lower()):
            reason, message, retryable = (
                "AppAuthenticationFailed",
                f"GitHub refused the App's signature {where} ({text}): the App id is unknown "
                "or the private key is not this App's.",
                False,
            )
        elif status == 404:
            what = (
                f"installation {installation} does not exist"
                if installation is not None
                else "the App is not installed on the repository"
            )
            reason, message, retryable = (
                "AppNotInstalled",
                f"GitHub answered 404 {where}: {what}; install the App on it (or fix "
                f"{INSTALLATION_ID_KEY}).",
                False,
            )
        elif status == 422 or (
            status == 403 and retry_after is None and "rate" not in said.lower()
        ):
            reason, message, retryable = (
                "AppPermissionsMissing",
                f"GitHub refused {where} ({text}): the installation must reach the repository "
                "and grant contents: write, pull requests: write and metadata: read.",
                False,
            )
        elif status in (403, 429):
            reason, message, retryable = "RateLimited", f"GitHub's rate limit {where}.", True
        else:
            reason, message, retryable = (
                "ForgeUnavailable",
                f"GitHub answered {text} {where}.",
                status >= 500 or status == 408,
            )
        return ForgeError(
            reason,
            self._redact(message),
            retryable=retryable,
            retry_after_seconds=retry_after if retryable else None,
            status=status,
        )

    def _unreadable(self, action: str) -> ForgeError:
        return ForgeError(
            "UnexpectedResponse",
            f"GitHub at {self.base_url} answered something unreadable while {action}.",
            retryable=True,
        )


def _require_repository(repository: str) -> None:
    if not _REPOSITORY.match(repository):
        raise ValueError(f"repository must be 'owner/name', not {repository!r}")


def _message(answer: requests.Response) -> str:
    try:
        data = answer.json()
    except ValueError:
        return ""
    return str(data.get("message") or "") if isinstance(data, dict) else ""


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None
