"""GitHub Apps for the GitHub stand-in: JWTs checked, installations, installation tokens.

    gh = GitHubStandIn("octo/project").start()
    key = gh.apps.add_app(1234)                    # an RSA key; its public half is the App's
    gh.apps.install(1234, ["octo/project"])        # installation id 1 by default
    gh.apps.clock = lambda: frozen                 # the time GitHub's side sees (epoch s)

Endpoints (relative to the stand-in's prefix), as GitHub serves them:

    GET  /repos/{owner}/{repo}/installation              (JWT) 200 the installation
    GET  /app/installations/{installation_id}            (JWT) 200 the installation
    POST /app/installations/{installation_id}/access_tokens
         {"repositories": [name], "permissions": {...}}  (JWT) 201 {token, expires_at,
                                                          permissions, repository_selection}

Kept from GitHub:

- The JWT is verified as GitHub does: RS256 with the App's public key (`iss` the App id); an
  undecodable token or a wrong signature is 401 "A JSON web token could not be decoded", an
  unknown App 404 "Integration not found", `iat` in the future, `exp` in the past, or `exp`
  more than 10 minutes after now (the stand-in's clock) 401 with GitHub's own messages.
- Installation tokens (`ghs_` and 36 characters) live one hour on the stand-in's clock;
  `repositories` must be names the installation reaches (else 422), `permissions` no more than
  the installation was granted (else 422); without `permissions` the token gets the
  installation's.
- Every call the stand-in serves with an installation token is held to it: expired → 401 "Bad
  credentials"; another repository → 404 "Not Found" (GitHub hides what a token cannot see);
  a permission the token lacks → 403 "Resource not accessible by integration". Git over HTTP
  (`git_authorizer`, for `GitHttpServer`) is held to it too: fetching needs `contents: read`,
  pushing `contents: write`, on the token's repositories only.

Not emulated: `repositories` in the token's answer (optional in GitHub's description, and each
a full repository), `repository_ids`, single-file permissions, suspended installations,
revoking a token (`DELETE /installation/token`), listing installations.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DOCS = "https://docs.github.com/rest"
TOKEN_LIFETIME = 3600
JWT_MAX_LIFETIME = 600
# What an installation is granted unless told otherwise: the worker's permissions, and issues.
DEFAULT_PERMISSIONS = {
    "contents": "write",
    "pull_requests": "write",
    "metadata": "read",
    "issues": "write",
}
_LEVELS = {"read": 1, "write": 2, "admin": 3}
_INSTALLATION = re.compile(r"^/app/installations/(?P<id>\d+)(?P<tokens>/access_tokens)?$")
_REPO_INSTALLATION = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)/installation$")
_ALPHABET = string.ascii_letters + string.digits

Reply = tuple[int, Any]  # (HTTP status, JSON body)


@dataclass
class StandInApp:
    """A GitHub App: its id and the public key its JWTs are checked with."""

    app_id: int
    slug: str
    public_key: Any


@dataclass
class StandInInstallation:
    """An installation of an App on an account, reaching `repositories` (full names)."""

    installation_id: int
    app_id: int
    account: str
    repositories: list[str]
    permissions: dict[str, str]


@dataclass
class IssuedToken:
    """An installation token the stand-in issued."""

    token: str = field(repr=False)
    installation_id: int
    repositories: list[str]
    permissions: dict[str, str]
    expires_at: float  # epoch seconds, on the stand-in's clock


def new_private_key() -> rsa.RSAPrivateKey:
    """An RSA key of the size GitHub gives Apps."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    """`key` as the PEM file GitHub hands out (PKCS#1, "BEGIN RSA PRIVATE KEY")."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


class AppAuthority:
    """The Apps, installations and tokens of one stand-in. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.apps: dict[int, StandInApp] = {}
        self.installations: dict[int, StandInInstallation] = {}
        self.issued: list[IssuedToken] = []
        self.refusals: list[tuple[int, str]] = []  # (status, message) of every refusal
        self.token_lifetime = TOKEN_LIFETIME  # seconds an installation token lives
        self._lock = threading.RLock()

    # -- seeding ----------------------------------------------------------------------------

    def add_app(self, app_id: int, key: rsa.RSAPrivateKey | None = None) -> rsa.RSAPrivateKey:
        """Register App `app_id`; its private key (made here unless given)."""
        key = key or new_private_key()
        with self._lock:
            self.apps[app_id] = StandInApp(app_id, f"app-{app_id}", key.public_key())
        return key

    def install(
        self,
        app_id: int,
        repositories: list[str],
        *,
        installation_id: int | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> StandInInstallation:
        """Install App `app_id` on the owner of `repositories`, reaching those."""
        with self._lock:
            number = installation_id or len(self.installations) + 1
            installation = StandInInstallation(
                number,
                app_id,
                repositories[0].split("/", 1)[0],
                list(repositories),
                dict(permissions or DEFAULT_PERMISSIONS),
            )
            self.installations[number] = installation
            return installation

    def issue(self, installation_id: int, names: list[str], permissions: Mapping[str, str]) -> str:
        """A token minted as `POST .../access_tokens` would (for tests that need one directly)."""
        with self._lock:
            status, body = self._mint(
                self.installations[installation_id],
                {"repositories": names, "permissions": dict(permissions)},
            )
        assert status == 201, body
        token: str = body["token"]
        return token

    def expire_all(self) -> None:
        """Every token issued so far stops working now (as if an hour had passed)."""
        with self._lock:
            for issued in self.issued:
                issued.expires_at = min(issued.expires_at, self.clock() - 1)

    # -- serving ----------------------------------------------------------------------------

    def answer(
        self, method: str, path: str, authorization: str, body: Any, api: str
    ) -> Reply | None:
        """The answer to an App endpoint, or None when `path` is not one."""
        installation = _INSTALLATION.match(path)
        by_repository = _REPO_INSTALLATION.match(path)
        if installation is None and by_repository is None:
            return None
        with self._lock:
            app, refused = self._verify_jwt(authorization)
            if refused is not None:
                return self._refuse(*refused)
            assert app is not None
            if by_repository is not None and method == "GET":
                repository = f"{by_repository['owner']}/{by_repository['name']}"
                found = self._installation_on(app.app_id, repository)
                if found is None:
                    return self._refuse(404, "Not Found")
                return 200, self._installation_json(found, api)
            assert installation is not None
            number = int(installation["id"])
            known = self.installations.get(number)
            if known is None or known.app_id != app.app_id:
                return self._refuse(404, "Not Found")
            if installation["tokens"] and method == "POST":
                return self._mint(known, body)
            if not installation["tokens"] and method == "GET":
                return 200, self._installation_json(known, api)
            return self._refuse(404, "Not Found")

    def knows(self, credential: str) -> bool:
        """Whether `credential` is an installation token this stand-in issued."""
        with self._lock:
            return any(t.token == credential for t in self.issued)

    def authorize(
        self, credential: str, repository: str, needs: Mapping[str, str] | None
    ) -> Reply | None:
        """None when the installation token `credential` may make a call on `repository`
        that `needs` these permissions (any one of them); else GitHub's refusal."""
        with self._lock:
            issued = next((t for t in self.issued if t.token == credential), None)
            if issued is None:
                return None  # not an installation token: the stand-in's own check applies
            if issued.expires_at <= self.clock():
                return self._refuse(401, "Bad credentials")
            if repository.lower() not in [r.lower() for r in issued.repositories]:
                return self._refuse(404, "Not Found")
            if needs and not any(_grants(issued.permissions, k, v) for k, v in needs.items()):
                return self._refuse(403, "Resource not accessible by integration")
            return None

    def git_authorizer(self) -> Callable[[str, str, bool], bool]:
        """For `GitHttpServer(authorize=...)`: (password, repository path, push) -> allowed."""

        def allowed(password: str, path: str, push: bool) -> bool:
            parts = path.strip("/").split("/")
            repository = "/".join(parts[:2]).removesuffix(".git") if len(parts) >= 2 else ""
            needs = {"contents": "write" if push else "read"}
            return self.knows(password) and self.authorize(password, repository, needs) is None

        return allowed

    # -- inside -----------------------------------------------------------------------------

    def _verify_jwt(self, authorization: str) -> tuple[StandInApp | None, tuple[int, str] | None]:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            return None, (401, "A JSON web token could not be decoded")
        credential = credential.strip()
        try:
            claims = jwt.decode(credential, options={"verify_signature": False})
            header = jwt.get_unverified_header(credential)
        except jwt.InvalidTokenError:
            return None, (401, "A JSON web token could not be decoded")
        app = self.apps.get(_int(claims.get("iss")))
        if app is None:
            return None, (404, "Integration not found")
        if header.get("alg") != "RS256":
            return None, (401, "A JSON web token could not be decoded")
        try:  # the signature only: the times are checked on the stand-in's clock below
            jwt.decode(
                credential,
                app.public_key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.InvalidTokenError:
            return None, (401, "A JSON web token could not be decoded")
        return app, _times_refused(claims, self.clock())

    def _installation_on(self, app_id: int, repository: str) -> StandInInstallation | None:
        for installation in self.installations.values():
            reached = [r.lower() for r in installation.repositories]
            if installation.app_id == app_id and repository.lower() in reached:
                return installation
        return None

    def _mint(self, installation: StandInInstallation, body: Any) -> Reply:
        body = body if isinstance(body, dict) else {}
        names = body.get("repositories")
        owner = installation.account
        if names is None:
            repositories = list(installation.repositories)
        else:
            repositories = [f"{owner}/{n}" for n in names if isinstance(n, str)]
            reached = [r.lower() for r in installation.repositories]
            if len(repositories) != len(names) or any(
                r.lower() not in reached for r in repositories
            ):
                return self._refuse(
                    422,
                    "There is at least one repository that does not exist or is not "
                    "accessible to the parent installation.",
                )
        asked = body.get("permissions")
        permissions = dict(installation.permissions) if asked is None else dict(asked)
        if any(not _grants(installation.permissions, k, v) for k, v in permissions.items()):
            return self._refuse(
                422, "The permissions requested are not granted to this installation."
            )
        token = "ghs_" + "".join(secrets.choice(_ALPHABET) for _ in range(36))
        issued = IssuedToken(
            token,
            installation.installation_id,
            repositories,
            permissions,
            self.clock() + self.token_lifetime,
        )
        self.issued.append(issued)
        return 201, {
            "token": token,
            "expires_at": _iso(issued.expires_at),
            "permissions": permissions,
            "repository_selection": "selected" if names is not None else "all",
        }

    def _installation_json(self, installation: StandInInstallation, api: str) -> dict[str, Any]:
        number = installation.installation_id
        app = self.apps[installation.app_id]
        return {
            "id": number,
            "account": _account_json(installation.account, api),
            "repository_selection": "selected",
            "access_tokens_url": f"{api}/app/installations/{number}/access_tokens",
            "repositories_url": f"{api}/installation/repositories",
            "html_url": f"{api.rsplit('/api/v3', 1)[0]}/organizations/{installation.account}"
            f"/settings/installations/{number}",
            "app_id": installation.app_id,
            "app_slug": app.slug,
            "target_id": int(installation.app_id) * 7,
            "target_type": "Organization",
            "permissions": dict(installation.permissions),
            "events": [],
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    def _refuse(self, status: int, message: str) -> Reply:
        self.refusals.append((status, message))
        return status, {"message": message, "documentation_url": DOCS, "status": str(status)}


def _times_refused(claims: Mapping[str, Any], now: float) -> tuple[int, str] | None:
    """GitHub's checks of a JWT's times, with its messages (a signer whose clock runs ahead
    hears of `exp` first, as people running Apps report)."""
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(exp, int) or exp <= now:
        return (
            401,
            "'Expiration time' claim ('exp') must be a numeric value representing the future "
            "time at which the assertion expires",
        )
    if exp > now + JWT_MAX_LIFETIME:
        return 401, "'Expiration time' claim ('exp') is too far in the future"
    if not isinstance(iat, int) or iat > now:
        return (
            401,
            "'Issued at' claim ('iat') must be an Integer representing the time that the "
            "assertion was issued",
        )
    return None


def _account_json(login: str, api: str) -> dict[str, Any]:
    """The account an App is installed on, as GitHub's `simple-user` (an organisation)."""
    number = int(hashlib.sha1(login.encode(), usedforsecurity=False).hexdigest()[:6], 16)
    users = f"{api}/users/{login}"
    web = api.removesuffix("/api/v3")
    return {
        "login": login,
        "id": number,
        "node_id": f"O_{number}",
        "avatar_url": f"{web}/avatars/u/{number}",
        "gravatar_id": "",
        "url": users,
        "html_url": f"{web}/{login}",
        "followers_url": f"{users}/followers",
        "following_url": f"{users}/following{{/other_user}}",
        "gists_url": f"{users}/gists{{/gist_id}}",
        "starred_url": f"{users}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{users}/subscriptions",
        "organizations_url": f"{users}/orgs",
        "repos_url": f"{users}/repos",
        "events_url": f"{users}/events{{/privacy}}",
        "received_events_url": f"{users}/received_events",
        "type": "Organization",
        "site_admin": False,
    }


def _grants(granted: Mapping[str, str], permission: str, level: str) -> bool:
    return _LEVELS.get(granted.get(permission, ""), 0) >= _LEVELS.get(level, 99)


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
