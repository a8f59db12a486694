"""The webhook receiver's HTTP server: its own port, its own aiohttp app on kopf's event loop.

It only moves bytes: what a delivery means is the handler's (`controller.webhooks`). In order,
each request is answered:
- 405 unless it is a POST;
- 404 when `known(path)` says no path of a Backlog is this one: no header or body is read, and
  the answer does not depend on which Backlogs exist;
- 413 when the body is longer than `max_body` bytes (by its `Content-Length`, or once that many
  bytes have come): nothing more is read;
- else the handler's answer to (path, headers, body).

No access log: the handler logs each delivery (its id, event and outcome), and a URL path is
a Backlog's, which the log has no need of.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Self

from aiohttp import web

from backlog_operator.adapters.endpoints import ListenError

Answer = tuple[int, str]
Handler = Callable[[str, Mapping[str, str], bytes], Awaitable[Answer]]


class WebhookServer:
    """The server: `start()` binds `host:port` (port 0: one the system picks, see `port`)."""

    def __init__(
        self,
        handler: Handler,
        known: Callable[[str], bool],
        *,
        host: str,
        port: int,
        max_body: int,
    ) -> None:
        self.handler = handler
        self.known = known
        self.host = host
        self.max_body = max_body
        self._port = port
        self._runner: web.AppRunner | None = None

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
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{path:.*}", self._receive)
        runner = web.AppRunner(app, access_log=None)
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

    async def _receive(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return _answer(405, "only POST\n", {"Allow": "POST"})
        if not self.known(request.path):
            return _answer(404, "no such hook\n")
        length = request.content_length
        if length is not None and length > self.max_body:
            return _answer(413, f"the body is over {self.max_body} bytes\n")
        body = await self._read(request)
        if body is None:
            return _answer(413, f"the body is over {self.max_body} bytes\n")
        status, text = await self.handler(request.path, request.headers, body)
        return _answer(status, text if text.endswith("\n") else f"{text}\n")

    async def _read(self, request: web.Request) -> bytes | None:
        """The body, or None as soon as it is longer than `max_body` (the rest left unread)."""
        body = bytearray()
        while chunk := await request.content.readany():
            body += chunk
            if len(body) > self.max_body:
                return None
        return bytes(body)


def _answer(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    # The connection is closed after a refusal: a client that sent a body not read has nothing
    # more to say on it.
    response = web.Response(status=status, text=text, headers=headers)
    if status >= 400:
        response.force_close()
    return response
