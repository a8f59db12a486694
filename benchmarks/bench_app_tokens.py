"""What a GitHub App costs the operator's own calls, against a plain token in the same run.

Against the GitHub stand-in over real HTTP (127.0.0.1), times `ForgeCredentials.token` for a
Secret holding a token (the baseline: one Secret read), for one holding an App with the token
cached (a Secret read and a parse of the private key), and for one minted (`fresh=True`: the
JWT signed, the installation found, the token minted: two HTTP requests), and an attempt's
token (`mint_for_attempt`). Prints each as a median and a ratio to the baseline; asserts
nothing.

Run: .venv/bin/python benchmarks/bench_app_tokens.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backlog_operator.adapters.github_app import app_credentials
from backlog_operator.api.common import SecretKeyReference
from backlog_operator.controller.credentials import ForgeCredentials
from tests.support.github_apps import private_pem
from tests.support.github_standin import GitHubStandIn

REPO = "octo/project"


class Secrets:
    """Secrets as the operator reads them (decoded), from memory: the cost is the rest."""

    def __init__(self, secrets: dict[str, dict[str, str]]) -> None:
        self.secrets = secrets

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        return self.secrets.get(name, {}).get(key)

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get(name)


def median_ms(rounds: int, call: Callable[[], Awaitable[object]]) -> float:
    async def run() -> list[float]:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            await call()
            times.append(time.perf_counter() - started)
        return times

    return statistics.median(asyncio.run(run())) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds
    with GitHubStandIn(REPO, token="unused-static") as gh:  # noqa: S106 (a stand-in's)
        key = gh.apps.add_app(1)
        gh.apps.install(1, [REPO])
        pem = private_pem(key)
        cluster = Secrets({"pat": {"token": "ghp_x"}, "app": {"appId": "1", "privateKey": pem}})
        credentials = ForgeCredentials(cluster)
        pat, app = SecretKeyReference(name="pat"), SecretKeyReference(name="app")
        parsed = app_credentials({"appId": "1", "privateKey": pem})
        assert parsed is not None
        figures = {
            "token Secret (baseline)": median_ms(
                rounds, lambda: credentials.token("ns", pat, REPO, gh.base_url)
            ),
            "App, token cached": median_ms(
                rounds, lambda: credentials.token("ns", app, REPO, gh.base_url)
            ),
            "App, token minted (fresh)": median_ms(
                rounds, lambda: credentials.token("ns", app, REPO, gh.base_url, fresh=True)
            ),
            "attempt token (mint_for_attempt)": median_ms(
                rounds, lambda: credentials.mint_for_attempt(parsed, REPO, gh.base_url)
            ),
        }
    base = figures["token Secret (baseline)"]
    print(f"{'':36} {'median ms':>10} {'x baseline':>11}   ({rounds} rounds)")
    for name, value in figures.items():
        print(f"{name:36} {value:10.3f} {value / base:11.1f}")


if __name__ == "__main__":
    main()
