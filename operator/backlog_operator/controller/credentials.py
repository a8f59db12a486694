"""Tokens for the forge, from a credentials Secret that holds a token or a GitHub App.

A Secret with the key `appId` holds an App (`adapters/github_app.py`); any other holds a token
under the key the reference names. For the operator's own calls (a Backlog's sync: its git read
and its open pull requests; following a goal's pull request) an App's installation tokens, with
read permissions only, are cached per (API root, App, installation, repository) and used until
`REUSE_MARGIN` before they expire; a caller that gets a 401 asks again with `fresh=True`, which
mints a new one. Each attempt of a goal gets a token of its own (`mint_for_attempt`), never a
cached one.

No kopf here, and nothing blocks the event loop: the App's requests run in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from backlog_operator.adapters.github_app import (
    APP_ID_KEY,
    INSTALLATION_ID_KEY,
    OPERATOR_PERMISSIONS,
    PRIVATE_KEY_KEY,
    WORKER_PERMISSIONS,
    AppCredentials,
    GitHubApp,
    InstallationToken,
    app_credentials,
)
from backlog_operator.api.common import SecretKeyReference
from backlog_operator.errors import ClassifiedError

# A cached installation token is not handed out when it has less than this left: the call
# made with it (a paged listing, a git fetch) has time to finish.
REUSE_MARGIN = timedelta(minutes=5)

# Parsed Apps kept (one per Secret content): a handful in any namespace's life.
_PARSED_APPS = 64
AppFactory = Callable[[AppCredentials, "str | None"], GitHubApp]


@runtime_checkable
class SecretKeyReader(Protocol):
    """A cluster that reads one key of a Secret (every cluster adapter can)."""

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str | None: ...


@runtime_checkable
class SecretDataReader(Protocol):
    """A cluster that reads all of a Secret's keys (KubeCluster can): needed to see an App."""

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None: ...


@dataclass(frozen=True)
class SecretCredentials:
    """What a credentials Secret holds: a token, or a GitHub App (exactly one is set)."""

    token: str | None = None
    app: AppCredentials | None = None


def secret_not_found(ref: SecretKeyReference) -> ClassifiedError:
    """The Secret (or its key) does not exist: retryable, it may be created yet."""
    return ClassifiedError(
        "SecretNotFound",
        f"secret {ref.name!r} has no key {ref.key!r} (or does not exist)",
        retryable=True,
    )


class ForgeCredentials:
    """Reads credentials Secrets; mints and caches an App's installation tokens."""

    def __init__(
        self,
        cluster: SecretKeyReader | SecretDataReader | object,
        *,
        clock: Callable[[], datetime] | None = None,
        app_factory: AppFactory | None = None,
    ) -> None:
        self.cluster = cluster
        self.clock = clock or (lambda: datetime.now(UTC))
        self.app_factory: AppFactory = app_factory or (
            lambda app, base_url: GitHubApp(app, base_url=base_url, clock=self.clock)
        )
        self._cached: dict[tuple[str, str, int | None, str], InstallationToken] = {}
        self._apps: dict[str, AppCredentials] = {}  # digest of a Secret's App keys -> parsed
        self.minted = 0  # installation tokens minted (the cache's misses), for tests and metrics

    async def read(self, namespace: str, ref: SecretKeyReference) -> SecretCredentials | None:
        """What the Secret `ref` holds; None when it (or the key) does not exist."""
        if isinstance(self.cluster, SecretDataReader):
            data = await self.cluster.read_secret_data(namespace, ref.name)
            if data is None:
                return None
            app = await self._parsed_app(data)
            if app is not None:
                return SecretCredentials(app=app)
            found = (data.get(ref.key) or "").strip()
            return SecretCredentials(token=found) if found else None
        if not isinstance(self.cluster, SecretKeyReader):
            return None  # a cluster that reads no Secret: the kubelet mounts the goal's
        value = await self.cluster.read_secret_key(namespace, ref.name, ref.key)
        return SecretCredentials(token=value) if value else None

    async def _parsed_app(self, data: Mapping[str, str]) -> AppCredentials | None:
        """The App in a Secret's data, parsed once per content: loading an RSA key checks it,
        which takes tens of milliseconds (in a thread, off the event loop), and a Secret is
        read at every sync and look."""
        if APP_ID_KEY not in data:
            return None
        digest = hashlib.sha256(
            "\0".join(
                data.get(k, "") for k in (APP_ID_KEY, PRIVATE_KEY_KEY, INSTALLATION_ID_KEY)
            ).encode()
        ).hexdigest()
        known = self._apps.get(digest)
        if known is None:
            known = await asyncio.to_thread(app_credentials, data)
            if len(self._apps) >= _PARSED_APPS:  # Secrets rotated many times: start afresh
                self._apps.clear()
            if known is not None:
                self._apps[digest] = known
        return known

    async def token(
        self,
        namespace: str,
        ref: SecretKeyReference | None,
        repository: str | None,
        api_base_url: str | None,
        *,
        fresh: bool = False,
    ) -> str | None:
        """The token for the operator's own calls on `repository` (owner/name): the Secret's,
        or an installation token of its App (cached; `fresh`: a new one, after a 401).

        None when no Secret is named. An App needs `repository` (a token is for one).
        """
        if ref is None:
            return None
        found = await self.read(namespace, ref)
        if found is None:
            raise secret_not_found(ref)
        if found.app is None:
            return found.token
        if repository is None:
            raise ClassifiedError(
                "InvalidAppCredentials",
                "a GitHub App's token is for one repository: set pullRequest.repository "
                "(owner/name), it cannot be told from the URL",
                retryable=False,
            )
        return (await self._cached_token(found.app, repository, api_base_url, fresh)).token

    async def _cached_token(
        self, app: AppCredentials, repository: str, api_base_url: str | None, fresh: bool
    ) -> InstallationToken:
        key = (api_base_url or "", app.app_id, app.installation_id, repository.lower())
        known = self._cached.get(key)
        if not fresh and known is not None and known.expires_at - REUSE_MARGIN > self.clock():
            return known
        minted = await self._mint(app, repository, api_base_url, OPERATOR_PERMISSIONS)
        self._cached[key] = minted
        return minted

    async def mint_for_attempt(
        self, app: AppCredentials, repository: str, api_base_url: str | None
    ) -> InstallationToken:
        """A new token for one attempt: `repository` only, the worker's permissions only."""
        return await self._mint(app, repository, api_base_url, WORKER_PERMISSIONS)

    async def _mint(
        self,
        app: AppCredentials,
        repository: str,
        api_base_url: str | None,
        permissions: Mapping[str, str],
    ) -> InstallationToken:
        client = self.app_factory(app, api_base_url)
        minted = await asyncio.to_thread(client.mint, repository, permissions)
        self.minted += 1
        return minted
