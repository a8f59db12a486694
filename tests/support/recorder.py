"""A credential sink on 127.0.0.1: the "somewhere else" a hostile task tries to send our token.

Security tests run a task that rewrites git configuration (remote URLs, `url.<x>.insteadOf`,
`http.proxy`, ...) so that the worker's git token leaves for a server the task controls. The
`CredentialRecorder` plays that server, and plays it eagerly, so that a leak cannot go unseen:

    with CredentialRecorder() as sink:
        run_hostile_task(remote_url=sink.url_for(), proxy=sink.proxy_url)
        assert not sink.saw(TOKEN)

- As a git smart-HTTP server it answers every request without `Authorization` with
  `401` and `WWW-Authenticate: Basic realm="git"`, which is what makes git ask its credential
  helper for the password and send it on the retry. A request with credentials is recorded and
  answered `404`: never git data, so no clone or fetch can proceed against it.
- As an HTTP proxy (an absolute-URI request line, or `CONNECT host:port`) it answers
  `407` with `Proxy-Authenticate: Basic realm="proxy"` until a `Proxy-Authorization` arrives,
  and `502` after. It never connects anywhere: this machine may only talk to 127.0.0.1, and a
  recorder that forwarded could be pointed back at itself.

Every request is recorded before it is answered (request line, every header, the body read to
its end, the first `max_body` bytes kept), so once the client has its answer the record is
there. Connections are closed after each answer, idle ones time out, and leaving the `with`
block cuts whatever is still open: nothing a client does can hang a test.
"""

from __future__ import annotations

import base64
import binascii
import re
import socket
import threading
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import unquote, unquote_to_bytes

RequestKind = Literal["origin", "proxy", "connect", "malformed"]

DEFAULT_MAX_BODY = 4 * 1024 * 1024
DEFAULT_TIMEOUT = 5.0

_CREDENTIAL_HEADERS = ("authorization", "proxy-authorization")
_MAX_LINE = 65536
_READ_SIZE = 64 * 1024
# Anything that could be a base64 word inside a header value (`Basic dTpw`, `a=dTpw`, ...).
_BASE64_WORD = re.compile(r"[A-Za-z0-9+/_-]{4,}={0,2}")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the recorder received it, and the status it was answered with.

    `target` is the request-target as sent: a path for the git server, an absolute URI for a
    proxied request, `host:port` for CONNECT. `truncated` says the body was longer than what
    was kept (or ended early, a malformed chunk or a closed connection).
    """

    kind: RequestKind
    request_line: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    truncated: bool
    status: int

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def credentials(self) -> list[str]:
        """Decoded `user:password` of each Basic `Authorization`/`Proxy-Authorization` header."""
        found = []
        for key, value in self.headers:
            if key.lower() not in _CREDENTIAL_HEADERS:
                continue
            scheme, _, encoded = value.strip().partition(" ")
            if scheme.lower() != "basic":
                continue
            decoded = _b64decode(encoded.strip())
            if decoded is not None:
                found.append(decoded.decode("utf-8", errors="replace"))
        return found

    def contains(self, secret: str) -> bool:
        """Whether `secret` is anywhere in this request, plainly or base64/percent-encoded.

        Looked for in the request line (as sent and percent-decoded), in each header line and
        in every base64 word of a header value once decoded, and in the body (as sent and
        percent-decoded, for form posts).
        """
        if not secret:
            raise ValueError("an empty secret is in everything")
        needle = secret.encode("utf-8")
        texts = [self.request_line, unquote(self.request_line)]
        texts.extend(f"{key}: {value}" for key, value in self.headers)
        if any(secret in text for text in texts):
            return True
        if any(needle in blob for blob in _header_decodings(self.headers)):
            return True
        return needle in self.body or needle in unquote_to_bytes(self.body)


class CredentialRecorder:
    """An HTTP server and proxy on 127.0.0.1 that asks for credentials and records them all.

    Use it as a context manager; it serves from a background thread until the block ends.
    `max_body` bounds what is kept of each body (all of it is still read); `timeout` bounds
    every read and write on a connection, so a half-open client is dropped.
    """

    def __init__(
        self, *, max_body: int = DEFAULT_MAX_BODY, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.max_body = max_body
        self.timeout = timeout
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._server = _RecordingServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="credential-recorder", daemon=True
        )
        self._started = False
        self._closed = False

    @property
    def port(self) -> int:
        """The ephemeral port the recorder listens on."""
        port: int = self._server.server_address[1]
        return port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, the recorder as a git server."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def proxy_url(self) -> str:
        """The recorder as an HTTP proxy (for `http.proxy` or `http_proxy`)."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, path: str = "/project.git") -> str:
        """A clone URL on the recorder; it answers 401, then records and refuses."""
        return f"{self.url}/{path.lstrip('/')}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy, safe to keep)."""
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        """How many requests have been received."""
        with self._lock:
            return len(self._requests)

    def credentials(self) -> list[str]:
        """Every decoded `user:password` received in a Basic (Proxy-)Authorization header."""
        return [credential for request in self.requests for credential in request.credentials()]

    def saw(self, secret: str) -> bool:
        """Whether `secret` arrived anywhere: a request line, a header (raw or base64), a body."""
        if not secret:
            raise ValueError("an empty secret is in everything")
        return any(request.contains(secret) for request in self.requests)

    def start(self) -> CredentialRecorder:
        """Serve in a background thread."""
        if self._closed:
            raise RuntimeError("a stopped recorder cannot be restarted")
        self._thread.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections, wait for their handlers, free the port."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._server.shutdown()
            self._thread.join(timeout=5)
        # No more accepts: whatever connection is still open is idle or dribbling. Cutting it
        # makes its handler see the end of the stream at once, so the join below is short.
        self._server.cut_connections()
        self._server.server_close()

    def __enter__(self) -> CredentialRecorder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)


class _RecordingServer(ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 that knows its open connections, to cut them."""

    # Handler threads are joined on close (after their sockets are cut), so a test reading the
    # records after the `with` block sees every request that reached a handler.
    daemon_threads = False
    block_on_close = True

    def __init__(self, recorder: CredentialRecorder) -> None:
        self.recorder = recorder
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RecorderHandler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """Shut down every connection still open, so that its handler returns at once."""
        with self._open_lock:
            still_open = list(self._open)
        for connection in still_open:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _RecorderHandler(BaseHTTPRequestHandler):
    """One request per connection: read it whole, record it, answer with a challenge or a no."""

    # HTTP/1.1 so that `Expect: 100-continue` (curl's habit for large posts) is answered at once
    # instead of curl waiting a second; every answer still closes the connection.
    protocol_version = "HTTP/1.1"
    server: _RecordingServer

    def setup(self) -> None:
        super().setup()
        # Every read and write on the connection is bounded, so a half-open client is dropped.
        self.connection.settimeout(self.server.recorder.timeout)
        self._recorded = False

    def handle_one_request(self) -> None:
        self.close_connection = True
        try:
            self.raw_requestline = self.rfile.readline(_MAX_LINE + 1)
            if not self.raw_requestline:
                return
            if len(self.raw_requestline) > _MAX_LINE:
                self.requestline = ""
                self.request_version = "HTTP/1.1"
                self.command = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.parse_request():
                return  # send_error has recorded and answered it
            self._record_and_answer()
        except OSError:
            pass  # a client that stalls or goes away is dropped; what it sent is recorded
        finally:
            # parse_request honours keep-alive; one request per connection keeps this simple.
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib refuses malformed requests through here: record them before answering.
        if not self._recorded:
            self._record("malformed", b"", truncated=False, status=code)
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the tests read captured output

    def _record_and_answer(self) -> None:
        body, truncated = self._read_body()
        has_proxy_auth = "Proxy-Authorization" in self.headers
        if self.command == "CONNECT" or "://" in self.path:
            kind: RequestKind = "connect" if self.command == "CONNECT" else "proxy"
            if has_proxy_auth:
                status, challenge = HTTPStatus.BAD_GATEWAY, None
            else:
                status = HTTPStatus.PROXY_AUTHENTICATION_REQUIRED
                challenge = ("Proxy-Authenticate", 'Basic realm="proxy"')
        else:
            kind = "origin"
            if "Authorization" in self.headers:
                status, challenge = HTTPStatus.NOT_FOUND, None
            else:
                status = HTTPStatus.UNAUTHORIZED
                challenge = ("WWW-Authenticate", 'Basic realm="git"')
        # Recorded before answering: when the client has its answer, the record exists.
        self._record(kind, body, truncated=truncated, status=status)
        self.send_response(status)
        if challenge:
            self.send_header(*challenge)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    def _record(self, kind: RequestKind, body: bytes, *, truncated: bool, status: int) -> None:
        self._recorded = True
        headers = getattr(self, "headers", None)
        self.server.recorder._record(
            RecordedRequest(
                kind=kind,
                request_line=self.raw_requestline.decode("latin-1").rstrip("\r\n"),
                method=self.command or "",
                target=getattr(self, "path", ""),
                headers=tuple(headers.items()) if headers is not None else (),
                body=body,
                truncated=truncated,
                status=int(status),
            )
        )

    def _read_body(self) -> tuple[bytes, bool]:
        """The body (first `max_body` bytes) and whether anything was cut or missing."""
        keep = _Keeper(self.server.recorder.max_body)
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                complete = self._read_chunked(keep)
            else:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = 0
                complete = self._read_exactly(max(length, 0), keep)
        except OSError:
            # A stall or a reset mid-body: what did arrive is still worth recording.
            complete = False
        return keep.data(), keep.overflowed or not complete

    def _read_chunked(self, keep: _Keeper) -> bool:
        while True:
            size_line = self.rfile.readline(_MAX_LINE)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                return False
            if size == 0:
                break
            if not self._read_exactly(size, keep):
                return False
            self.rfile.readline(_MAX_LINE)  # the CRLF closing the chunk
        # Trailer fields, up to the blank line: kept with the body, so that saw() finds them.
        while True:
            line = self.rfile.readline(_MAX_LINE)
            if line in (b"\r\n", b"\n", b""):
                return line != b""
            keep.add(line)

    def _read_exactly(self, length: int, keep: _Keeper) -> bool:
        while length > 0:
            # read1 returns what has arrived; read(n) would lose it all to a timeout mid-way.
            piece = self.rfile.read1(min(length, _READ_SIZE))
            if not piece:
                return False
            keep.add(piece)
            length -= len(piece)
        return True


class _Keeper:
    """Collects bytes up to a limit and remembers whether more went past."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.overflowed = False
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, data: bytes) -> None:
        room = self.limit - self._size
        if len(data) > room:
            self.overflowed = True
            data = data[: max(room, 0)]
        if data:
            self._parts.append(data)
            self._size += len(data)

    def data(self) -> bytes:
        return b"".join(self._parts)


def _b64decode(word: str) -> bytes | None:
    """`word` decoded as base64 (standard or URL-safe, padding optional), or None."""
    padded = word + "=" * (-len(word) % 4)
    for altchars in (None, b"-_"):
        with suppress(binascii.Error, ValueError):
            return base64.b64decode(padded, altchars=altchars, validate=True)
    return None


def _header_decodings(headers: Iterable[tuple[str, str]]) -> Iterable[bytes]:
    """Every base64 word of every header value, decoded (words that do not decode are skipped)."""
    for _, value in headers:
        for word in _BASE64_WORD.findall(value):
            decoded = _b64decode(word)
            if decoded is not None:
                yield decoded
