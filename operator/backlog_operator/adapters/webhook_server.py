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

from aiohttp import web

from backlog_operator.adapters.endpoints import HttpServer

Answer = tuple[int, str]
Handler = Callable[[str, Mapping[str, str], bytes], Awaitable[Answer]]


class WebhookServer(HttpServer):
    """Deliveries to any path, answered as the module docstring says."""

    def __init__(
        self,
        handler: Handler,
        known: Callable[[str], bool],
        *,
        host: str,
        port: int,
        max_body: int,
    ) -> None:
        super().__init__(host=host, port=port)
        self.handler = handler
        self.known = known
        self.max_body = max_body

    def application(self) -> web.Application:
        """One route: every method, every path."""
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{path:.*}", self._receive)
        return app

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
