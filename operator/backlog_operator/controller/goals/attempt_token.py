"""An attempt's own token, where the goal's credentials Secret holds a GitHub App.

The App's private key never reaches a Pod. For each attempt the operator mints an installation
token for the goal's one repository with the worker's permissions only (contents: write, pull
requests: write, metadata: read) and puts it in a Secret of its own, `<job>-token`, key
`token`, which the Job mounts (into `clone` and `publish` only, as any token) instead of the
goal's Secret.

Order: the Job first, then its token Secret with the Job as its controlling owner, so the
garbage collector deletes the Secret with the Job and no Secret is ever left behind without
one. A Pod the Job controller starts before the Secret exists waits in `ContainerCreating` (a
Secret volume is not optional: the kubelet retries the mount, no container starts without it;
a volume, unlike an env `secretKeyRef`, never gives `CreateContainerConfigError`). Should the
operator stop between the two, the next reconcile adopts the Job (its create answers 409) and
puts the Secret then, long before the 5 minutes after which a missing Secret fails the attempt
(`SecretNotFound`).

Expiry: GitHub's installation tokens live an hour, and an attempt may run longer (its deadline
is `spec.task.timeout_seconds` from the Job's start). While the Job runs, the operator re-mints
the token `REFRESH_MARGIN` before it expires and updates the Secret in place; the kubelet
updates a mounted Secret volume within a minute or two, and git's credential helper (and the
pull request step) read the file when they use it. A token that outlives the deadline is never
re-minted. The expiry is kept on the Secret (`backlog.dev/token-expires-at`), so an operator
that restarts knows it without asking GitHub.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from backlog_operator import naming
from backlog_operator.adapters.github_app import InstallationToken
from backlog_operator.api.goal import Goal
from backlog_operator.api.labels import LABEL_GOAL_UID, LABEL_MANAGED_BY, MANAGED_BY
from backlog_operator.controller.credentials import ForgeCredentials, SecretDataReader
from backlog_operator.controller.goals.job import TOKEN_SECRET_KEY
from backlog_operator.controller.status import parse_time, timestamp
from backlog_operator.errors import AlreadyExistsError, ClassifiedError

log = logging.getLogger("backlog_operator.controller")

ANNOTATION_TOKEN_EXPIRES = "backlog.dev/token-expires-at"  # noqa: S105 (an annotation's name)
# Re-minted this long before expiry: time for the kubelet to update the mounted file (its sync
# period plus its Secret cache's TTL, a minute each by default) and for a push to finish.
REFRESH_MARGIN = timedelta(minutes=15)
# Never looked at more often than this, whatever the clock says.
_MIN_RECHECK_SECONDS = 30.0


@runtime_checkable
class TokenSecrets(Protocol):
    """A cluster that keeps an attempt's token Secret (KubeCluster can)."""

    async def create_secret(self, manifest: Mapping[str, Any]) -> dict[str, Any]: ...
    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def patch_secret(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None: ...


def token_secret_name(job_name: str) -> str:
    """The name of the token Secret of the Job `job_name` (at most 63 + 6 characters)."""
    return f"{job_name}-token"


def forge_repository(goal: Goal) -> str | None:
    """The goal's repository as owner/name on the forge, or None when it cannot be told."""
    return goal.spec.pull_request.repository or naming.forge_repository(goal.spec.repository.url)


class AttemptTokens:
    """Mints an attempt's installation token, keeps it in its Secret, refreshes it."""

    def __init__(self, credentials: ForgeCredentials) -> None:
        self.credentials = credentials
        # token Secret (namespace/name) -> when its token expires; None: the attempt has none
        self._expiry: dict[str, datetime | None] = {}

    async def prepare(self, goal: Goal) -> InstallationToken | None:
        """A new token for the next attempt of `goal` when its Secret holds an App; None when
        it holds a token (mounted as it is) or cannot be read (the kubelet says so, as ever)."""
        ref = goal.spec.repository.credentials_secret
        if ref is None or not isinstance(self.credentials.cluster, SecretDataReader):
            return None  # no Secret, or a cluster that cannot show an App: mounted as it is
        found = await self.credentials.read(goal.metadata.namespace or "default", ref)
        if found is None or found.app is None:
            return None
        repository = forge_repository(goal)
        if repository is None:
            raise ClassifiedError(
                "InvalidAppCredentials",
                "a GitHub App's token is for one repository: set pullRequest.repository "
                "(owner/name), it cannot be told from repository.url",
                retryable=False,
            )
        return await self.credentials.mint_for_attempt(
            found.app, repository, goal.spec.pull_request.api_base_url
        )

    async def put(self, cluster: object, job: Mapping[str, Any], token: InstallationToken) -> None:
        """The token Secret of `job` (as created or adopted: its uid is the owner's), created,
        or brought up to date with `token` when it exists already (an adopted Job's)."""
        if not isinstance(cluster, TokenSecrets):
            raise ClassifiedError(
                "TokenSecretRefused", "this cluster adapter cannot keep Secrets", retryable=False
            )
        metadata = job.get("metadata") or {}
        if not metadata.get("uid"):  # the create's answer did not say: adopted next time
            raise ClassifiedError("JobGone", "the Job's uid is not known yet", retryable=True)
        namespace, name = str(metadata.get("namespace")), token_secret_name(str(metadata["name"]))
        manifest = _secret(job, name, token)
        try:
            await cluster.create_secret(manifest)
        except AlreadyExistsError:
            await cluster.patch_secret(namespace, name, _update(token))
        self._expiry[f"{namespace}/{name}"] = token.expires_at

    async def refresh_if_due(
        self, cluster: object, goal: Goal, job: Mapping[str, Any], now: datetime
    ) -> float | None:
        """While `job` runs: re-mint its token when it expires within `REFRESH_MARGIN` and
        before the Job's deadline. Seconds until it should be looked at again; None: never
        (no token Secret of its own, or one that outlives the deadline)."""
        if goal.spec.repository.credentials_secret is None or not isinstance(cluster, TokenSecrets):
            return None
        metadata = job.get("metadata") or {}
        namespace, name = str(metadata.get("namespace")), token_secret_name(str(metadata["name"]))
        key = f"{namespace}/{name}"
        if key not in self._expiry:  # after a restart: one read per attempt, then known
            self._expiry[key] = await self._read_expiry(cluster, namespace, name)
        expires, deadline = self._expiry[key], _deadline(job, now)
        if expires is None or expires - REFRESH_MARGIN >= deadline:
            return None  # no token Secret of its own (a token goal), or one long enough
        due = expires - REFRESH_MARGIN
        if now >= due:
            token = await self.prepare(goal)
            if token is None:  # the Secret no longer holds an App: nothing to refresh with
                return None
            await cluster.patch_secret(namespace, name, _update(token))
            self._expiry[key] = expires = token.expires_at
            log.info("re-minted the installation token of Job %s", name.removesuffix("-token"))
            if expires - REFRESH_MARGIN >= deadline:
                return None
            due = expires - REFRESH_MARGIN
        return max(_MIN_RECHECK_SECONDS, (due - now).total_seconds())

    def forget(self, namespace: str, job_name: str) -> None:
        """An attempt that ended: its token's expiry is no longer needed."""
        self._expiry.pop(f"{namespace}/{token_secret_name(job_name)}", None)

    async def _read_expiry(
        self, cluster: TokenSecrets, namespace: str, name: str
    ) -> datetime | None:
        secret = await cluster.get_secret(namespace, name)
        annotations = ((secret or {}).get("metadata") or {}).get("annotations") or {}
        return parse_time(annotations.get(ANNOTATION_TOKEN_EXPIRES))


def _deadline(job: Mapping[str, Any], now: datetime) -> datetime:
    """When the Job's `activeDeadlineSeconds` ends (counted from its start)."""
    spec = job.get("spec") or {}
    started = (
        parse_time((job.get("status") or {}).get("startTime"))
        or parse_time((job.get("metadata") or {}).get("creationTimestamp"))
        or now
    )
    return started + timedelta(seconds=int(spec.get("activeDeadlineSeconds") or 0))


def _secret(job: Mapping[str, Any], name: str, token: InstallationToken) -> dict[str, Any]:
    metadata = job.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": metadata.get("namespace"),
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_GOAL_UID: str(labels.get(LABEL_GOAL_UID) or ""),
            },
            "annotations": {ANNOTATION_TOKEN_EXPIRES: timestamp(token.expires_at)},
            # Goes with the Job (garbage collection). No blockOwnerDeletion: nothing waits for
            # a Secret, and it would need `update` on jobs/finalizers where owner references
            # are enforced.
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "data": {TOKEN_SECRET_KEY: _encoded(token.token)},
    }


def _update(token: InstallationToken) -> dict[str, Any]:
    return {
        "metadata": {"annotations": {ANNOTATION_TOKEN_EXPIRES: timestamp(token.expires_at)}},
        "data": {TOKEN_SECRET_KEY: _encoded(token.token)},
    }


def _encoded(value: str) -> str:
    return base64.b64encode(value.encode()).decode()
