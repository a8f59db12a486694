"""GitHub webhook deliveries read and checked without I/O (`api.webhook`), and the routes and
answers of `controller.webhooks`, held to GitHub's own example payloads and their schemas."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest

from backlog_operator.api.webhook import (
    Ignored,
    MalformedDeliveryError,
    Ping,
    PullRequest,
    PullRequestFields,
    Push,
    ReplayGuard,
    Repository,
    delivery_id,
    hook_path,
    read_event,
    sign,
    signature_matches,
)
from backlog_operator.controller.metrics import Metrics
from backlog_operator.controller.webhooks import Route, Webhooks
from tests.support.webhooks import (
    ADDED_SINCE_EXAMPLES,
    examples,
    merged_example,
    payload_bytes,
    schema_definition,
    schema_errors,
    signature,
    signed_headers,
)

SECRET = "It's a Secret to Everybody"  # GitHub's documented test vector
BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


# ------------------------------------------------------------------------ path and signature


def test_the_path_is_fluxs_sha256_of_secret_name_and_namespace() -> None:
    expected = hashlib.sha256(b"s3cr3tteamdefault").hexdigest()
    assert hook_path("s3cr3t", "team", "default") == f"/hook/{expected}"
    paths = {
        hook_path("s3cr3t", "team", "default"),
        hook_path("s3cr3t", "team", "other"),
        hook_path("s3cr3t", "team2", "default"),
        hook_path("s3cr3u", "team", "default"),
    }
    assert len(paths) == 4
    assert all("s3cr3t" not in path for path in paths)


def test_signature_is_githubs_documented_example() -> None:
    assert sign(SECRET.encode(), BODY) == GITHUB_SIGNATURE
    assert signature_matches(SECRET.encode(), BODY, GITHUB_SIGNATURE)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        GITHUB_SIGNATURE.upper(),
        GITHUB_SIGNATURE[:-1],
        GITHUB_SIGNATURE + "0",
        GITHUB_SIGNATURE.removeprefix("sha256="),
        "sha1=" + GITHUB_SIGNATURE.removeprefix("sha256="),
        "sha256=" + "é" * 64,
    ],
)
def test_a_signature_that_is_not_exactly_the_bodys_never_matches(header: str | None) -> None:
    assert not signature_matches(SECRET.encode(), BODY, header)


def test_another_secret_or_body_does_not_match() -> None:
    assert not signature_matches(b"another secret", BODY, GITHUB_SIGNATURE)
    assert not signature_matches(SECRET.encode(), BODY + b" ", GITHUB_SIGNATURE)


def test_delivery_ids_are_cut_to_id_characters() -> None:
    assert delivery_id("72d3162e-cc78-11e3-81ab-4c9367dc0958") == (
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    )
    assert delivery_id("a\nb c\x1b[31m") == "abc31m"
    assert len(delivery_id("x" * 10_000)) == 64
    assert delivery_id(None) == ""


# ------------------------------------------------------------------------------ replay guard


def test_a_delivery_id_is_refused_again_until_it_expires() -> None:
    guard = ReplayGuard(capacity=10, seconds=60)
    assert guard.first("a", 0.0)
    assert not guard.first("a", 30.0)
    assert guard.first("a", 61.0)  # expired: new again


def test_the_guard_keeps_a_bounded_number_of_ids_oldest_forgotten_first() -> None:
    guard = ReplayGuard(capacity=3, seconds=3600)
    for n, key in enumerate("abcd"):
        assert guard.first(key, float(n))
    assert len(guard) == 3
    assert guard.first("a", 5.0)  # the oldest went
    assert not guard.first("d", 5.0)
    guard.forget("d")
    assert guard.first("d", 6.0)


# ------------------------------------------------------------------ GitHub's payloads, parsed


def test_every_ping_example_is_a_ping() -> None:
    for payload in examples("ping"):
        assert not schema_errors("ping", payload)
        assert isinstance(read_event("ping", payload_bytes(payload)), Ping)


def test_every_push_example_is_read_with_its_ref_and_repository() -> None:
    for payload in examples("push"):
        assert not schema_errors("push", payload), payload["ref"]
        push = read_event("push", payload_bytes(payload))
        assert isinstance(push, Push)
        assert push.ref == payload["ref"]
        assert push.repository.full_name == payload["repository"]["full_name"]
        assert push.is_to_branch("master") == (payload["ref"] == "refs/heads/master")
        assert push.repository.is_one_of("codertocat/hello-world", "https://example.invalid/x")
        assert push.repository.is_one_of(None, payload["repository"]["clone_url"])
        assert not push.repository.is_one_of("Codertocat/Other", "https://example.invalid/x")


@pytest.mark.parametrize("action", ["closed", "reopened"])
def test_every_closed_or_reopened_pull_request_example_is_acted_on(action: str) -> None:
    for payload in examples("pull_request", [action]):
        assert not schema_errors("pull_request", payload)
        event = read_event("pull_request", payload_bytes(payload))
        assert isinstance(event, PullRequest)
        assert (event.action, event.number) == (action, payload["number"])
        assert event.pull_request.merged is payload["pull_request"]["merged"]
        assert event.acted_on


def test_a_merged_pull_request_is_read_as_merged() -> None:
    event = read_event("pull_request", payload_bytes(merged_example()))
    assert isinstance(event, PullRequest)
    assert event.action == "closed" and event.pull_request.merged is True and event.acted_on


def test_other_pull_request_actions_are_not_acted_on() -> None:
    others = examples("pull_request", ["opened", "labeled", "synchronize", "edited"])
    for payload in others:
        event = read_event("pull_request", payload_bytes(payload))
        assert isinstance(event, PullRequest) and not event.acted_on, payload["action"]


def test_what_the_parser_requires_github_always_sends() -> None:
    """Every field the models require is required by GitHub's schema: the parser never refuses
    a delivery GitHub may send."""
    required = {
        "push$event": {"ref", "repository"},
        "pull_request$closed": {"action", "number", "pull_request", "repository"},
        "pull_request$reopened": {"action", "number", "pull_request", "repository"},
    }
    for name, fields in required.items():
        assert fields <= set(schema_definition(name)["required"]), name
    assert {"full_name"} <= set(schema_definition("repository")["required"])
    assert {"number", "state"} <= set(schema_definition("pull-request")["required"])
    read = {
        name
        for model in (Push, PullRequest, Repository, PullRequestFields, Ping)
        for name in model.model_fields
    }
    assert not read & ADDED_SINCE_EXAMPLES, "an example lacking it would not hold the parser"
    assert set(Push.model_fields) - {"after"} == {"ref", "repository"}
    required_pull = {n for n, f in PullRequest.model_fields.items() if f.is_required()}
    assert required_pull == {"action", "number", "pull_request", "repository"}


@pytest.mark.parametrize(
    ("event", "body"),
    [
        ("push", b"{not json"),
        ("push", b"[1, 2]"),
        ("push", json.dumps({"ref": 7, "repository": {"full_name": "a/b"}}).encode()),
        ("push", json.dumps({"ref": "refs/heads/main"}).encode()),
        ("pull_request", json.dumps({"action": "closed", "number": "2"}).encode()),
        ("ping", b"payload=%7B%7D"),  # a form-encoded delivery
    ],
)
def test_a_body_that_is_not_the_events_json_is_malformed(event: str, body: bytes) -> None:
    with pytest.raises(MalformedDeliveryError) as raised:
        read_event(event, body)
    assert "secret" not in str(raised.value)


def test_a_mistyped_example_fails_githubs_schema_and_the_parser_alike() -> None:
    payload = examples("pull_request", ["closed"])[0]
    payload["number"] = str(payload["number"])
    assert schema_errors("pull_request", payload)
    with pytest.raises(MalformedDeliveryError):
        read_event("pull_request", payload_bytes(payload))


def test_other_events_are_ignored_unread() -> None:
    assert read_event("issues", b"not even json") == Ignored("issues")


# ----------------------------------------------------------------------------- the answers


class Actions:
    def __init__(self) -> None:
        self.syncs: list[tuple[str, str]] = []
        self.rechecks: list[tuple[str, str, str, int, bool]] = []

    def request_sync(self, namespace: str, name: str) -> None:
        self.syncs.append((namespace, name))

    def recheck_pull_request(
        self, namespace: str, backlog_uid: str, repository: str, number: int, *, reopened: bool
    ) -> None:
        self.rechecks.append((namespace, backlog_uid, repository, number, reopened))


HOOK_SECRET = "hook-secret"


def hooks_with_route(secret: str = HOOK_SECRET) -> tuple[Webhooks, Actions, str]:
    webhooks = Webhooks(clock=lambda: 0.0)
    actions = Actions()
    webhooks.attach(actions)
    path = hook_path(secret, "team", "default")
    route = Route(
        namespace="default",
        name="team",
        uid="uid-1",
        secret=secret.encode(),
        repository="Codertocat/Hello-World",
        url="https://github.com/Codertocat/Hello-World.git",
        branch="master",
    )
    webhooks.routes.register(path, route)
    assert "hook-secret" not in repr(route)
    return webhooks, actions, path


def answer(webhooks: Webhooks, path: str, body: bytes, headers: dict[str, str]) -> Any:
    return asyncio.run(webhooks.receive(path, headers, body))


def test_a_route_answers_at_its_path_only_and_moves_with_its_secret() -> None:
    webhooks, _, path = hooks_with_route()
    assert webhooks.known(path)
    assert not webhooks.known(path[:-1] + ("0" if path[-1] != "0" else "1"))
    new = hook_path("rotated", "team", "default")
    route = webhooks.routes.find(path)
    assert route is not None
    webhooks.routes.register(new, route)
    assert webhooks.known(new) and not webhooks.known(path)
    webhooks.routes.forget("uid-1")
    assert not webhooks.known(new) and len(webhooks.routes) == 0


def test_a_push_to_the_base_branch_asks_for_a_sync_once_per_delivery() -> None:
    webhooks, actions, path = hooks_with_route()
    [payload] = [p for p in examples("push") if p["ref"] == "refs/heads/master"][:1]
    body = payload_bytes(payload)
    headers = signed_headers("hook-secret", body, "push")
    assert answer(webhooks, path, body, headers)[0] == 202
    assert answer(webhooks, path, body, headers)[0] == 409
    assert actions.syncs == [("default", "team")]


@pytest.mark.parametrize(
    ("secret", "event", "status"),
    [(None, "push", 401), ("wrong", "push", 401), ("hook-secret", None, 400)],
)
def test_refused_deliveries_ask_for_nothing(secret: str | None, event: str, status: int) -> None:
    webhooks, actions, path = hooks_with_route()
    body = payload_bytes(examples("push")[-2])
    assert answer(webhooks, path, body, signed_headers(secret, body, event))[0] == status
    assert actions.syncs == [] and actions.rechecks == []


def test_a_signature_over_another_body_is_refused() -> None:
    webhooks, actions, path = hooks_with_route()
    body = payload_bytes(examples("push")[-2])
    headers = signed_headers("hook-secret", body, "push")
    headers["X-Hub-Signature-256"] = signature("hook-secret", body + b"\n")
    assert answer(webhooks, path, body, headers)[0] == 401
    assert actions.syncs == []


def test_each_answer_for_a_backlogs_path_is_counted_with_bounded_labels() -> None:
    webhooks, _, path = hooks_with_route()
    metrics = Metrics()
    webhooks.observe = metrics.webhook_answered
    body = payload_bytes(examples("push")[-2])
    headers = signed_headers(HOOK_SECRET, body, "push")
    answer(webhooks, path, body, headers)
    answer(webhooks, path, body, headers)
    answer(webhooks, path, body, signed_headers(None, body, "x-made-up-event"))
    answer(webhooks, "/hook/unknown", body, headers)
    counted = {
        (sample.labels["event"], sample.labels["code"]): sample.value
        for family in metrics.registry.collect()
        if family.name == "backlog_webhook_deliveries"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert counted == {("push", "202"): 1, ("push", "409"): 1, ("other", "401"): 1}
