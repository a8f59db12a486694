"""The credential recorder itself, driven by real git and raw sockets: when a security test says
"the token never left", these show the recorder would have caught it if it had."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.support.gitrepos import unused_port
from tests.support.recorder import CredentialRecorder

SECRET = "SECRET123"
HELPER = "credential.helper=!f() { echo username=u; echo password=SECRET123; }; f"


@pytest.fixture
def recorder() -> Iterator[CredentialRecorder]:
    with CredentialRecorder() as sink:
        yield sink


def git(*args: str, helper: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git hermetically: no configuration, no prompt, no proxy from the caller's shell."""
    # A proxy or NO_PROXY inherited from the shell would reroute or bypass the recorder.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") and "proxy" not in key.lower()
    }
    env.update(
        {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    )
    config = ["-c", HELPER] if helper else []
    return subprocess.run(
        ["git", *config, *args], env=env, capture_output=True, text=True, timeout=20, check=False
    )


def exchange(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send raw bytes to the recorder; everything it answers until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(data)
        answer = b""
        while piece := connection.recv(65536):
            answer += piece
    return answer


# ------------------------------------------------------------------------------ with real git


def test_git_sends_the_helper_password_after_the_401(recorder: CredentialRecorder) -> None:
    completed = git("ls-remote", recorder.url_for())

    assert completed.returncode != 0  # refused after the credentials: never any git data
    assert recorder.saw(SECRET)
    assert recorder.credentials() == [f"u:{SECRET}"]
    first, retry = recorder.requests
    assert (first.kind, first.header("Authorization"), first.status) == ("origin", None, 401)
    assert first.target == "/project.git/info/refs?service=git-upload-pack"
    assert (retry.kind, retry.status) == ("origin", 404)
    assert retry.header("Authorization") == "Basic " + base64.b64encode(b"u:SECRET123").decode()


def test_git_without_a_credential_helper_sends_nothing(recorder: CredentialRecorder) -> None:
    # The control for the test above: the recorder does not "see" a secret that was never sent.
    completed = git("ls-remote", recorder.url_for("/other.git"), helper=False)

    assert completed.returncode != 0
    assert recorder.count == 1
    assert recorder.requests[0].status == 401
    assert not recorder.saw(SECRET)
    assert recorder.credentials() == []


def test_git_uses_the_recorder_as_its_http_proxy(recorder: CredentialRecorder) -> None:
    target = f"http://127.0.0.1:{unused_port()}/x.git"

    completed = git("-c", f"http.proxy={recorder.proxy_url}", "ls-remote", target)

    assert completed.returncode != 0
    assert "407" in completed.stderr
    [proxied] = recorder.requests
    assert proxied.kind == "proxy"
    assert proxied.request_line.startswith(f"GET {target}/info/refs?")
    assert proxied.status == 407
    assert not recorder.saw(SECRET)  # no user name in the proxy URL: git offers no password


def test_git_hands_the_helper_password_to_a_proxy_with_a_user_name(
    recorder: CredentialRecorder,
) -> None:
    # `http.proxy=http://u@host` makes git ask its credential helper for the proxy password;
    # through CONNECT (an https remote) the recorder gets it without ever opening a tunnel.
    target = f"https://127.0.0.1:{unused_port()}/x.git"

    completed = git("-c", f"http.proxy=http://u@127.0.0.1:{recorder.port}", "ls-remote", target)

    assert completed.returncode != 0
    assert [request.kind for request in recorder.requests] == ["connect", "connect"]
    assert [request.status for request in recorder.requests] == [407, 502]
    assert recorder.requests[-1].target == target.split("/")[2]
    assert recorder.credentials() == [f"u:{SECRET}"]
    assert recorder.saw(SECRET)


# ------------------------------------------------------------------------------ what saw() sees


def test_saw_finds_a_secret_sent_only_in_a_post_body(recorder: CredentialRecorder) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", recorder.port, timeout=5)
    try:
        connection.request("POST", "/project.git/git-upload-pack", body=b"0032want token=hunter2\n")
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()

    assert response.status == 401
    [post] = recorder.requests
    assert post.body == b"0032want token=hunter2\n"
    assert recorder.saw("hunter2")
    assert not recorder.saw("hunter3")
    assert not recorder.saw(SECRET)
    assert recorder.credentials() == []


def test_saw_reads_chunked_bodies_to_the_end(recorder: CredentialRecorder) -> None:
    answer = exchange(
        recorder.port,
        b"POST /project.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n9;ext=1\r\n SECRET12\r\n1\r\n3\r\n0\r\nX-Trailer: after\r\n\r\n",
    )

    assert answer.startswith(b"HTTP/1.1 401 ")
    [post] = recorder.requests
    assert post.body.startswith(b"hello SECRET123")
    assert not post.truncated
    assert recorder.saw(SECRET)
    assert recorder.saw("X-Trailer: after")


def test_saw_decodes_headers_and_request_lines(recorder: CredentialRecorder) -> None:
    hidden = base64.b64encode(b"token=" + SECRET.encode()).decode()
    url_safe = base64.urlsafe_b64encode(b"\xfb\xff" + b"other-secret").decode().rstrip("=")
    exchange(
        recorder.port,
        f"GET /p%61th?t=pct%2Dsecret HTTP/1.1\r\nHost: x\r\nX-Blob: v1, {hidden}\r\n"
        f"Cookie: s={url_safe}\r\nAuthorization: Bearer raw-bearer\r\n\r\n".encode(),
    )

    assert recorder.saw(SECRET)  # base64 inside a header value
    assert recorder.saw("other-secret")  # URL-safe base64 without padding
    assert recorder.saw("pct-secret")  # percent-encoded in the request line
    assert recorder.saw("raw-bearer")
    assert recorder.credentials() == []  # only Basic credentials are decoded
    assert not recorder.saw("never-sent")
    with pytest.raises(ValueError, match="empty"):
        recorder.saw("")


def test_bodies_are_read_whole_but_kept_only_up_to_the_cap() -> None:
    with CredentialRecorder(max_body=16) as small:
        body = b"A" * 100_000 + SECRET.encode()
        answer = exchange(
            small.port,
            b"POST /x HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dTpw\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body,
        )

    assert answer.startswith(b"HTTP/1.1 404 ")  # the answer came after the whole body
    [post] = small.requests
    assert post.body == b"A" * 16
    assert post.truncated
    assert small.credentials() == ["u:p"]


# ------------------------------------------------------------------------------ the answers


def test_answers_as_a_git_server_and_as_a_proxy(recorder: CredentialRecorder) -> None:
    basic = "Basic " + base64.b64encode(b"u:p").decode()

    challenge = exchange(recorder.port, b"GET /project.git/info/refs HTTP/1.1\r\nHost: x\r\n\r\n")
    refused = exchange(
        recorder.port, f"GET /p.git HTTP/1.1\r\nHost: x\r\nAuthorization: {basic}\r\n\r\n".encode()
    )
    proxy = exchange(recorder.port, b"GET http://example.com/x HTTP/1.1\r\nHost: x\r\n\r\n")
    connect = exchange(recorder.port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    authed = exchange(
        recorder.port,
        f"CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: {basic}\r\n\r\n".encode(),
    )

    assert challenge.startswith(b"HTTP/1.1 401 ")
    assert b'\r\nWWW-Authenticate: Basic realm="git"\r\n' in challenge
    assert refused.startswith(b"HTTP/1.1 404 ")
    assert refused.endswith(b"\r\n\r\n")  # no body: never anything git could use
    assert proxy.startswith(b"HTTP/1.1 407 ")
    assert b'\r\nProxy-Authenticate: Basic realm="proxy"\r\n' in proxy
    assert connect.startswith(b"HTTP/1.1 407 ")
    assert authed.startswith(b"HTTP/1.1 502 ")  # and no tunnel: the connection is closed
    assert [request.kind for request in recorder.requests] == [
        "origin",
        "origin",
        "proxy",
        "connect",
        "connect",
    ]
    assert recorder.count == 5
    assert recorder.credentials() == ["u:p", "u:p"]


def test_a_malformed_request_is_recorded_and_refused(recorder: CredentialRecorder) -> None:
    answer = exchange(recorder.port, b"SECRET123 / NOT-HTTP\r\n\r\n")

    # Refused by the stdlib parser in HTTP/0.9 style (no status line), but refused.
    assert b"Error code: 400" in answer
    [malformed] = recorder.requests
    assert malformed.kind == "malformed"
    assert recorder.saw(SECRET)


def test_urls_point_at_the_recorder(recorder: CredentialRecorder) -> None:
    assert recorder.url == f"http://127.0.0.1:{recorder.port}"
    assert recorder.proxy_url == recorder.url
    assert recorder.url_for() == f"{recorder.url}/project.git"
    assert recorder.url_for("team/app.git") == f"{recorder.url}/team/app.git"


# ------------------------------------------------------------------------------ bounded


def test_a_stalled_client_is_dropped_after_the_timeout() -> None:
    with (
        CredentialRecorder(timeout=0.3) as sink,
        socket.create_connection(("127.0.0.1", sink.port), timeout=5) as connection,
    ):
        connection.sendall(b"POST /x HTTP/1.1\r\nContent-Length: 100\r\n\r\nSECRET")
        started = time.monotonic()
        answer = b""
        while piece := connection.recv(1024):  # until the recorder closes, not us
            answer += piece
        assert time.monotonic() - started < 2
    assert answer.startswith(b"HTTP/1.1 401 ")  # an answer to what arrived, then goodbye
    # What arrived before the stall is recorded, and marked incomplete.
    [stalled] = sink.requests
    assert stalled.body == b"SECRET"
    assert stalled.truncated


def test_leaving_the_block_cuts_open_connections_at_once() -> None:
    sink = CredentialRecorder()  # the default timeout (seconds) must not delay the exit
    with sink, socket.create_connection(("127.0.0.1", sink.port), timeout=5) as connection:
        connection.sendall(b"GET /x HTTP/1.1\r\n")  # half a request, then silence
        time.sleep(0.1)  # let the handler start waiting for the rest
        started = time.monotonic()
        sink.stop()
        assert time.monotonic() - started < 1
        assert connection.recv(1024) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sink.port), timeout=1)
