"""The operator's HTTP endpoints: `/metrics` (Prometheus), `/healthz` and `/readyz`.

An aiohttp server on kopf's own event loop (aiohttp comes with kopf), not prometheus_client's
server in a thread: `/healthz` then answers only while that loop does, which is what a liveness
probe should learn (a loop blocked or dead is an operator that does nothing), and reading the
metrics needs no lock against the loop that records them. A scrape costs microseconds per
series, and the series are few (`controller.metrics`).

- `/metrics`: the registry in the text format, or OpenMetrics when the scraper asks for it.
- `/healthz`: 200 while the event loop runs.
- `/readyz`: 200 when `ready()` says so, else 503 with its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

Ready = Callable[[], tuple[bool, str]]


class ListenError(OSError):
    """The endpoints cannot listen where they were asked to (the port taken, the address
    not this host's)."""


class HttpServer:
    """An aiohttp server on the running event loop: `start()` binds `host:port` (port 0: one
    the system picks, see `port`); subclasses say what it serves (`application`)."""

    def __init__(self, *, host: str, port: int) -> None:
        self.host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        """The app to serve."""
        raise NotImplementedError

    @property
    def port(self) -> int:
        """The port listened on (the one the system picked when asked for port 0)."""
        if self._runner is not None:
            for address in self._runner.addresses:
                if isinstance(address, tuple):
                    return int(address[1])
        return self._port

    async def start(self) -> None:
        """Listen (on the running event loop)."""
        # No access log: probes and scrapes come every few seconds; deliveries log themselves.
        runner = web.AppRunner(self.application(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._port).start()
        except OSError as error:
            await runner.cleanup()
            raise ListenError(
                error.errno, f"cannot listen on {self.host}:{self._port}: {error.strerror}"
            ) from error
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class Endpoints(HttpServer):
    """`/metrics`, `/healthz` and `/readyz`."""

    def __init__(self, registry: CollectorRegistry, ready: Ready, *, host: str, port: int) -> None:
        super().__init__(host=host, port=port)
        self.registry = registry
        self.ready = ready

    def application(self) -> web.Application:
        """The three routes."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.registry), headers={"Content-Type": content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, why = self.ready()
        return web.Response(text=f"{why}\n", status=200 if ready else 503)
