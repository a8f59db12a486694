"""The operator's HTTP endpoints (`adapters.endpoints`) on a loop of their own, over real HTTP:
what each path answers, and a port that is taken."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from backlog_operator.adapters.endpoints import Endpoints, ListenError
from backlog_operator.controller.health import Readiness
from backlog_operator.controller.metrics import Metrics


async def _get(port: int, path: str, accept: str = "") -> tuple[int, str, str]:
    headers = {"Accept": accept} if accept else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as answer,
    ):
        return answer.status, answer.headers["Content-Type"], await answer.text()


def test_each_path_answers_and_readiness_follows_the_operator() -> None:
    async def scenario() -> None:
        metrics, readiness = Metrics(), Readiness()
        async with Endpoints(
            metrics.registry, readiness.check, host="127.0.0.1", port=0
        ) as endpoints:
            port = endpoints.port
            assert port != 0
            assert (await _get(port, "/healthz"))[::2] == (200, "ok\n")
            assert (await _get(port, "/readyz"))[::2] == (
                503,
                "starting: listing goals and worker Jobs\n",
            )
            readiness.mark_synced()
            assert (await _get(port, "/readyz"))[::2] == (200, "ok\n")
            status, kind, text = await _get(port, "/metrics")
            assert (status, kind.split(";")[0]) == (200, "text/plain")
            assert 'backlog_operator_build_info{version="0.1.0"} 1.0' in text
            status, kind, text = await _get(
                port, "/metrics", accept="application/openmetrics-text; version=1.0.0"
            )
            assert kind.startswith("application/openmetrics-text")
            assert text.endswith("# EOF\n")
            assert (await _get(port, "/"))[0] == 404
        with pytest.raises(aiohttp.ClientConnectionError):  # stopped: nothing listens
            await _get(port, "/healthz")

    asyncio.run(scenario())


def test_a_port_that_is_taken_is_a_listen_error_naming_it() -> None:
    async def scenario() -> None:
        metrics, readiness = Metrics(), Readiness()
        async with Endpoints(metrics.registry, readiness.check, host="127.0.0.1", port=0) as first:
            second = Endpoints(metrics.registry, readiness.check, host="127.0.0.1", port=first.port)
            with pytest.raises(ListenError) as raised:
                await second.start()
            assert f"cannot listen on 127.0.0.1:{first.port}" in str(raised.value.strerror)
            await second.stop()  # nothing started: nothing to stop

    asyncio.run(scenario())
