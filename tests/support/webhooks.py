"""GitHub's webhook payloads for tests: the examples of `@octokit/webhooks-examples`, each held
to its JSON schema from `@octokit/webhooks-schemas` (both installed by `make fixtures`), signed
here as GitHub signs them, and sent over real HTTP.

    body = payload_bytes(examples("push")[0])
    status, text = deliver(url, body, signed_headers(SECRET, body, "push"))
"""

from __future__ import annotations

import copy
import functools
import hashlib
import hmac
import http.client
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from tests.support.npm_fixtures import package

Json = dict[str, Any]


@functools.cache
def _index() -> list[Json]:
    folder = package("@octokit/webhooks-examples")
    data: list[Json] = json.loads((folder / "api.github.com" / "index.json").read_text("utf-8"))
    return data


@functools.cache
def _schema() -> Json:
    folder = package("@octokit/webhooks-schemas")
    data: Json = json.loads((folder / "schema.json").read_text("utf-8"))
    return data


def examples(event: str, actions: Iterable[str] | None = None) -> list[Json]:
    """GitHub's example payloads of `event` (those of `actions` only, when given), copies."""
    wanted = set(actions) if actions is not None else None
    found = [
        copy.deepcopy(example)
        for entry in _index()
        if entry["name"] == event
        for example in entry["examples"]
        if wanted is None or example.get("action") in wanted
    ]
    assert found, f"@octokit/webhooks-examples has no {event} example {sorted(wanted or [])}"
    return found


def definition(event: str, payload: Mapping[str, Any]) -> str:
    """The name of the schema definition `payload` of `event` is held to."""
    action = payload.get("action")
    return f"{event}${action}" if action else f"{event}$event"


# Fields GitHub's schemas now require that some of its older examples were recorded without
# (GitHub sends them today). The operator reads none of them (tests/unit/test_webhook.py).
ADDED_SINCE_EXAMPLES = frozenset(
    {
        "deliveries_url",
        "is_template",
        "web_commit_signoff_required",
        "topics",
        "visibility",
        "custom_properties",
    }
)


def schema_errors(event: str, payload: Mapping[str, Any]) -> list[str]:
    """Where `payload` differs from GitHub's schema of its event (and action), but for the
    absence of a field in `ADDED_SINCE_EXAMPLES`."""
    schema = _schema()
    root = {"$ref": f"#/definitions/{definition(event, payload)}", **schema}
    root.pop("oneOf", None)
    validator = jsonschema.Draft7Validator(root)
    errors = []
    for error in validator.iter_errors(payload):
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = set(error.validator_value) - set(error.instance)
            if missing <= ADDED_SINCE_EXAMPLES:
                continue
        errors.append(f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}")
    return errors


def schema_definition(name: str) -> Json:
    """The schema definition `name` (e.g. `push$event`), as GitHub's schema has it."""
    found: Json = _schema()["definitions"][name]
    return found


def merged_example() -> Json:
    """A `pull_request` `closed` payload for a merged pull request: GitHub's examples close
    without merging only, so one of them is given what a merge adds (held to the schema)."""
    payload = examples("pull_request", ["closed"])[0]
    pull = payload["pull_request"]
    pull.update(
        merged=True,
        merged_at=pull["closed_at"],
        merge_commit_sha="c4295bd74fb0f4fbb4f6a5b5a5b5a5b5a5b5a5b5",
        merged_by=copy.deepcopy(payload["sender"]),
    )
    errors = schema_errors("pull_request", payload)
    assert not errors, errors
    return payload


def payload_bytes(payload: Mapping[str, Any]) -> bytes:
    """The body GitHub would send (JSON; whitespace is the signer's and the receiver's alike)."""
    return json.dumps(payload, indent=2).encode()


def signature(secret: str | bytes, body: bytes) -> str:
    """`X-Hub-Signature-256` of `body` with `secret`, as GitHub's documentation computes it."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str | bytes | None,
    body: bytes,
    event: str | None,
    delivery: str | None = None,
) -> dict[str, str]:
    """The headers of a delivery: event, a fresh delivery id (or `delivery`), the signature
    (none when `secret` is None), JSON content."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
    }
    if event is not None:
        headers["X-GitHub-Event"] = event
    if secret is not None:
        headers["X-Hub-Signature-256"] = signature(secret, body)
    return headers


def deliver(
    url: str, body: bytes | Iterable[bytes], headers: Mapping[str, str], *, method: str = "POST"
) -> tuple[int, str]:
    """Send one delivery over HTTP: (status, body text). An iterable body goes chunked."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        chunked = not isinstance(body, bytes)
        connection.request(
            method, parts.path, body=body, headers=dict(headers), encode_chunked=chunked
        )
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()
