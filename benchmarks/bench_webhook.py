"""The webhook receiver over HTTP: what an answer costs, and that a 404 costs the same whichever
Backlogs exist.

Serves `WebhookServer` with `controller.webhooks.Webhooks` (actions recorded, not run) on
127.0.0.1 and sends deliveries with aiohttp's client on the same loop. The baseline, measured
in the same run, is a 404 for an unknown path with no Backlog registered; every other figure
is printed as a ratio to it:
- 404 with 10,000 Backlogs registered, for a random path and for a path one character away
  from a registered one (the lookup hashes the path: neither should differ from the baseline);
- 401 for a bad signature and 202 for a signed push, with GitHub-sized bodies (2 KiB) and with
  a body just under the 1 MiB limit (reading and hashing it);
- 413 for a body over the limit, refused by its Content-Length.
A refusal (4xx) closes its connection, so those figures include a new connection each.
Prints, asserts nothing.

Run: .venv/bin/python benchmarks/bench_webhook.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import statistics
import time
import uuid
from collections.abc import Mapping

import aiohttp

from backlog_operator.adapters.webhook_server import WebhookServer
from backlog_operator.api.webhook import DEFAULT_MAX_BODY_BYTES, hook_path, sign
from backlog_operator.controller.webhooks import Route, Webhooks

SECRET = "bench-secret"  # noqa: S105 (a benchmark's value)


class _Actions:
    def __init__(self) -> None:
        self.syncs = 0

    def request_sync(self, namespace: str, name: str) -> None:
        self.syncs += 1

    def recheck_pull_request(
        self, namespace: str, backlog_uid: str, repository: str, number: int, *, reopened: bool
    ) -> None:
        """Not measured."""


def _register(webhooks: Webhooks, count: int) -> str:
    """`count` Backlogs; the path of the last."""
    path = ""
    for n in range(count):
        name = f"team-{n}"
        path = hook_path(SECRET, name, "default")
        webhooks.routes.register(
            path,
            Route("default", name, f"uid-{n}", SECRET.encode(), "o/r", "https://x/o/r", "main"),
        )
    return path


def _push(size: int) -> bytes:
    payload = {"ref": "refs/heads/main", "repository": {"full_name": "o/r"}, "pad": ""}
    body = json.dumps(payload).encode()
    payload["pad"] = "x" * max(0, size - len(body))
    return json.dumps(payload).encode()


def _headers(body: bytes, *, good: bool) -> dict[str, str]:
    return {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(SECRET.encode() if good else b"wrong", body),
        "Content-Type": "application/json",
    }


async def _median(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str] | None,
    rounds: int,
    *,
    good: bool = False,
) -> tuple[float, int]:
    times, status = [], 0
    for _ in range(rounds):
        sent = dict(headers) if headers is not None else _headers(body, good=good)
        started = time.perf_counter()
        async with session.post(url, data=body, headers=sent) as response:
            await response.read()
            status = response.status
        times.append(time.perf_counter() - started)
    return statistics.median(times), status


async def _run(rounds: int) -> None:
    webhooks = Webhooks()
    webhooks.attach(_Actions())
    server = WebhookServer(
        webhooks.receive,
        webhooks.known,
        host="127.0.0.1",
        port=0,
        max_body=DEFAULT_MAX_BODY_BYTES,
    )
    small, large = _push(2048), _push(DEFAULT_MAX_BODY_BYTES - 1024)
    unknown = "/hook/" + hashlib.sha256(b"nobody").hexdigest()
    async with server, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{server.port}"
        plain = {"Content-Type": "application/json"}
        baseline, _ = await _median(session, base + unknown, small, plain, rounds)
        path = _register(webhooks, 10_000)
        near = path[:-1] + ("0" if path[-1] != "0" else "1")
        figures = {
            "404, 10,000 Backlogs, random path": await _median(
                session, base + unknown, small, plain, rounds
            ),
            "404, 10,000 Backlogs, one character off": await _median(
                session, base + near, small, plain, rounds
            ),
            "401, 2 KiB body": await _median(session, base + path, small, None, rounds),
            "202, 2 KiB body": await _median(session, base + path, small, None, rounds, good=True),
            "401, 1 MiB body": await _median(session, base + path, large, None, rounds),
            "202, 1 MiB body": await _median(session, base + path, large, None, rounds, good=True),
        }
        over = large + b" " * 4096
        figures["413, over 1 MiB (Content-Length)"] = await _median(
            session, base + path, over, plain, rounds
        )
    print(f"baseline: 404, no Backlog: {baseline * 1e6:.0f} us (median of {rounds})")
    for label, (seconds, status) in figures.items():
        print(f"{label:45s} {status}  {seconds * 1e6:8.0f} us  x{seconds / baseline:.2f}")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=200)
    logging.getLogger("backlog_operator.webhooks").setLevel(logging.ERROR)  # a line a delivery
    asyncio.run(_run(parser.parse_args().rounds))


if __name__ == "__main__":
    main()
