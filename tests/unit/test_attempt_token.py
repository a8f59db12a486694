"""An attempt's own installation token (controller/goals/attempt_token.py): its Secret owned by
the Job, and re-minted only when it would expire before the Job's deadline, on a clock the test
controls (the GitHub stand-in's and the operator's the same)."""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backlog_operator.api.goal import Goal
from backlog_operator.controller.credentials import ForgeCredentials
from backlog_operator.controller.goals.attempt_token import (
    ANNOTATION_TOKEN_EXPIRES,
    REFRESH_MARGIN,
    AttemptTokens,
)
from backlog_operator.controller.goals.job import build_job, mount_token_secret
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.errors import AlreadyExistsError
from tests.support.github_apps import private_pem
from tests.support.github_standin import GitHubStandIn

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REPO = "octo/project"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.timestamp()


class Secrets:
    """A cluster holding Secrets: the App's, and the ones the operator makes."""

    def __init__(self, app: Mapping[str, str]) -> None:
        self.store: dict[str, dict[str, Any]] = {
            "app": {"data": {k: base64.b64encode(v.encode()).decode() for k, v in app.items()}}
        }
        self.patches: list[tuple[str, Mapping[str, Any]]] = []

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        return (await self.read_secret_data(namespace, name) or {}).get(key)

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self.store.get(name)
        if found is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in found["data"].items()}

    async def create_secret(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        if name in self.store:
            raise AlreadyExistsError(name)
        self.store[name] = copy.deepcopy(dict(manifest))
        return self.store[name]

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get(name)

    async def patch_secret(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.patches.append((name, patch))
        self.store[name]["data"].update(patch["data"])
        self.store[name]["metadata"]["annotations"].update(patch["metadata"]["annotations"])

    def token(self, name: str) -> str:
        return base64.b64decode(self.store[name]["data"]["token"]).decode()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gh(clock: Clock) -> Iterator[GitHubStandIn]:
    with GitHubStandIn(REPO, token="unused-static") as standin:
        standin.apps.clock = clock.epoch
        yield standin


def goal(gh: GitHubStandIn, timeout: int) -> Goal:
    return Goal.model_validate(
        {
            "apiVersion": "backlog.dev/v1alpha1",
            "kind": "Goal",
            "metadata": {"name": "g", "namespace": "ns", "uid": "uid-1234567", "generation": 1},
            "spec": {
                "repository": {
                    "url": f"https://github.com/{REPO}.git",
                    "credentialsSecret": {"name": "app"},
                },
                "task": {"image": "busybox", "command": ["true"], "timeoutSeconds": timeout},
                "pullRequest": {"apiBaseUrl": gh.base_url},
            },
        }
    )


def started_job(the_goal: Goal, clock: Clock) -> dict[str, Any]:
    manifest = build_job(the_goal, 1, OperatorSettings(worker_image="w:1"))
    mount_token_secret(manifest, f"{manifest['metadata']['name']}-token")
    manifest["metadata"]["uid"] = "job-uid-1"
    manifest["status"] = {"active": 1, "startTime": clock().strftime("%Y-%m-%dT%H:%M:%SZ")}
    return manifest


def world(gh: GitHubStandIn, clock: Clock) -> tuple[Secrets, AttemptTokens]:
    key = gh.apps.add_app(11)
    gh.apps.install(11, [REPO])
    cluster = Secrets({"appId": "11", "privateKey": private_pem(key)})
    return cluster, AttemptTokens(ForgeCredentials(cluster, clock=clock))


def test_the_token_secret_is_owned_by_the_job_and_mounted_instead_of_the_apps(
    gh: GitHubStandIn, clock: Clock
) -> None:
    cluster, tokens = world(gh, clock)
    the_goal = goal(gh, 600)
    job = started_job(the_goal, clock)
    token = asyncio.run(tokens.prepare(the_goal))
    assert token is not None
    asyncio.run(tokens.put(cluster, job, token))
    secret = cluster.store["g-uid-1-1-token"]
    [owner] = secret["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "g-uid-1-1",
        "uid": "job-uid-1",
        "controller": True,
        "blockOwnerDeletion": False,
    }
    assert cluster.token("g-uid-1-1-token") == token.token
    assert secret["metadata"]["annotations"][ANNOTATION_TOKEN_EXPIRES] == "2026-03-01T13:00:00Z"
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == "g-uid-1-1-token"
    # Put again (an adopted Job): the Secret is brought up to date, not made twice.
    again = asyncio.run(tokens.prepare(the_goal))
    assert again is not None
    asyncio.run(tokens.put(cluster, job, again))
    assert cluster.token("g-uid-1-1-token") == again.token


def test_a_token_that_outlives_the_deadline_is_never_reminted(
    gh: GitHubStandIn, clock: Clock
) -> None:
    cluster, tokens = world(gh, clock)
    the_goal = goal(gh, 1800)  # 30 min: the hour's token outlives it with room to spare
    job = started_job(the_goal, clock)
    token = asyncio.run(tokens.prepare(the_goal))
    assert token is not None
    asyncio.run(tokens.put(cluster, job, token))
    for minutes in (0, 20, 29):
        clock.now = START + timedelta(minutes=minutes)
        assert asyncio.run(tokens.refresh_if_due(cluster, the_goal, job, clock())) is None
    assert cluster.patches == [] and len(gh.apps.issued) == 1


def test_a_token_that_would_expire_before_the_deadline_is_reminted_before_it_does(
    gh: GitHubStandIn, clock: Clock
) -> None:
    cluster, tokens = world(gh, clock)
    the_goal = goal(gh, 3 * 3600)  # three hours: two re-mints
    job = started_job(the_goal, clock)
    token = asyncio.run(tokens.prepare(the_goal))
    assert token is not None
    asyncio.run(tokens.put(cluster, job, token))
    name = "g-uid-1-1-token"

    wait = asyncio.run(tokens.refresh_if_due(cluster, the_goal, job, clock()))
    assert wait == (timedelta(hours=1) - REFRESH_MARGIN).total_seconds()  # looked at again then
    clock.now = START + timedelta(minutes=44)
    assert asyncio.run(tokens.refresh_if_due(cluster, the_goal, job, clock())) == 60
    assert cluster.patches == []
    clock.now = START + timedelta(minutes=45)
    asyncio.run(tokens.refresh_if_due(cluster, the_goal, job, clock()))
    [(patched, _)] = cluster.patches
    assert patched == name and cluster.token(name) == gh.apps.issued[-1].token != token.token
    assert gh.apps.issued[-1].repositories == [REPO]
    annotation = cluster.store[name]["metadata"]["annotations"][ANNOTATION_TOKEN_EXPIRES]
    assert annotation == "2026-03-01T13:45:00Z"
    # An operator that restarts knows the expiry from the Secret, and re-mints in time.
    restarted = AttemptTokens(ForgeCredentials(cluster, clock=clock))
    clock.now = START + timedelta(minutes=90)
    asyncio.run(restarted.refresh_if_due(cluster, the_goal, job, clock()))
    assert len(cluster.patches) == 2
    last = cluster.store[name]["metadata"]["annotations"][ANNOTATION_TOKEN_EXPIRES]
    assert last == "2026-03-01T14:30:00Z"
    clock.now = START + timedelta(minutes=135)
    asyncio.run(restarted.refresh_if_due(cluster, the_goal, job, clock()))
    # Expiring at 15:15, its margin reaches the deadline (15:00): the last one.
    assert len(cluster.patches) == 3
    clock.now = START + timedelta(minutes=170)
    assert asyncio.run(restarted.refresh_if_due(cluster, the_goal, job, clock())) is None
    assert len(cluster.patches) == 3


def test_a_secret_holding_a_token_gets_no_attempt_token(gh: GitHubStandIn, clock: Clock) -> None:
    cluster = Secrets({"token": "ghp_plain"})
    tokens = AttemptTokens(ForgeCredentials(cluster, clock=clock))
    assert asyncio.run(tokens.prepare(goal(gh, 600))) is None
    assert gh.requests == []
