"""`LeanApi` makes the requests the official client's methods make, and fails as they fail;
`AioApi` (the same calls on the event loop, over aiohttp) makes the requests `LeanApi` makes.

Each of its calls and the client's method of the same name are sent to one recording HTTP
server, with a bearer token and a default header configured: method, path, query, headers and
body must match (but the `Content-Type` of a POST, which the client's methods leave out and
`LeanApi` says: `application/json`), and so must the `ApiException` an error answer raises.
`AioApi`'s calls, logged in with a `kopf.ConnectionInfo` of the same server and token, must
send what `LeanApi`'s send, headers and all, and raise the same exceptions; over TLS with a CA
and a client certificate too; a 401 logs in again, once.
"""

from __future__ import annotations

import asyncio
import datetime
import http.server
import ipaddress
import json
import pathlib
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import kopf
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException, UnauthorizedException

from backlog_operator.adapters.kube import AioApi, KubeCluster, LeanApi, describe_failure
from backlog_operator.controller.handlers import connection_of

Recorded = dict[str, Any]

JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "j1", "namespace": "ns-1", "labels": {"app": "x"}},
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "main", "image": "busybox", "resources": {"limits": {"cpu": "1"}}}
                ],
            }
        },
    },
}
EVENT = {
    "apiVersion": "v1",
    "kind": "Event",
    "metadata": {"generateName": "g1.", "namespace": "ns-1"},
    "involvedObject": {"kind": "Goal", "name": "g1", "namespace": "ns-1", "uid": "u-1"},
    "type": "Normal",
    "reason": "Started",
    "message": "attempt 1 started",
    "count": 1,
}
STATUS = {"status": {"phase": "Running"}, "metadata": {"resourceVersion": "7"}}


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records each request; answers `answer` (status, JSON body) of the server."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server: Any = self.server
        headers = {k.lower(): v for k, v in self.headers.items()}
        server.recorded.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": headers,
                "body": json.loads(body) if body else None,
                "peer": _peer(self.connection),
            }
        )
        status, answer = server.answer
        if headers.get("authorization") == getattr(server, "refuse", None):
            status, answer = 401, {"kind": "Status", "reason": "Unauthorized"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = _serve  # noqa: N815 (http.server's names)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def _peer(connection: Any) -> str | None:
    """The common name of the client's certificate, over TLS."""
    if not isinstance(connection, ssl.SSLSocket):
        return None
    subject: Any = (connection.getpeercert() or {}).get("subject") or ()
    names = [str(value) for rdn in subject for key, value in rdn if key == "commonName"]
    return names[0] if names else None


@pytest.fixture
def server() -> Iterator[Any]:
    served: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    served.recorded = []
    served.answer = (200, {"kind": "Status", "metadata": {"name": "x"}})
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served
    served.shutdown()
    served.server_close()


@pytest.fixture
def api(server: Any) -> Iterator[k8s.ApiClient]:
    configuration = k8s.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    configuration.api_key = {"authorization": "t0ken"}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    client = k8s.ApiClient(configuration, header_name="X-Extra", header_value="yes")
    yield client
    client.close()  # type: ignore[no-untyped-call]


# (the lean call, the client's call), each given the ApiClient.
_CALLS: dict[str, tuple[Callable[[k8s.ApiClient], Any], Callable[[k8s.ApiClient], Any]]] = {
    "get goal": (
        lambda a: LeanApi(a).get_namespaced_custom_object(
            "backlog.dev", "v1alpha1", "ns-1", "goals", "g1"
        ),
        lambda a: k8s.CustomObjectsApi(a).get_namespaced_custom_object(
            "backlog.dev", "v1alpha1", "ns-1", "goals", "g1", _preload_content=False
        ),
    ),
    "patch status": (
        lambda a: LeanApi(a).patch_namespaced_custom_object_status(
            "backlog.dev", "v1alpha1", "ns-1", "goals", "g1", STATUS
        ),
        lambda a: k8s.CustomObjectsApi(a).patch_namespaced_custom_object_status(
            "backlog.dev", "v1alpha1", "ns-1", "goals", "g1", STATUS, _preload_content=False
        ),
    ),
    "read job": (
        lambda a: LeanApi(a).read_namespaced_job("j1", "ns-1"),
        lambda a: k8s.BatchV1Api(a).read_namespaced_job("j1", "ns-1", _preload_content=False),
    ),
    "create job": (
        lambda a: LeanApi(a).create_namespaced_job("ns-1", JOB),
        lambda a: k8s.BatchV1Api(a).create_namespaced_job("ns-1", JOB, _preload_content=False),  # type: ignore[arg-type]
    ),
    "create event": (
        lambda a: LeanApi(a).create_namespaced_event("ns-1", EVENT),
        lambda a: k8s.CoreV1Api(a).create_namespaced_event("ns-1", EVENT, _preload_content=False),  # type: ignore[arg-type]
    ),
}


def _comparable(recorded: Recorded) -> Recorded:
    """A request without what may differ: the connection's headers, a POST's content type."""
    recorded = {k: v for k, v in recorded.items() if k != "peer"}
    headers = {
        k: v
        for k, v in recorded["headers"].items()
        if k not in ("host", "accept-encoding", "connection", "content-length", "content-type")
    }
    return {**recorded, "headers": headers}


@pytest.mark.parametrize("call", sorted(_CALLS))
def test_the_lean_call_sends_what_the_client_sends(
    call: str, server: Any, api: k8s.ApiClient
) -> None:
    lean, official = _CALLS[call]
    answer = lean(api)
    official(api)

    ours, theirs = server.recorded
    assert _comparable(ours) == _comparable(theirs)
    assert ours["headers"]["authorization"] == "Bearer t0ken"
    assert ours["headers"]["x-extra"] == "yes"
    said = theirs["headers"].get("content-type")
    if ours["body"] is not None:
        assert ours["headers"]["content-type"] == said or (
            said is None and ours["headers"]["content-type"] == "application/json"
        )
    assert answer == server.answer[1]  # the answer's JSON, decoded


@pytest.mark.parametrize("status", [404, 409, 422, 429, 500])
@pytest.mark.parametrize("call", ["get goal", "create job", "create event"])
def test_an_error_answer_raises_what_the_client_raises(
    call: str, status: int, server: Any, api: k8s.ApiClient
) -> None:
    server.answer = (status, {"kind": "Status", "reason": "Nope", "message": "refused here"})
    lean, official = _CALLS[call]
    with pytest.raises(ApiException) as ours:
        lean(api)
    with pytest.raises(ApiException) as theirs:
        official(api)

    assert type(ours.value) is type(theirs.value)
    assert (ours.value.status, ours.value.reason, ours.value.body) == (
        theirs.value.status,
        theirs.value.reason,
        theirs.value.body,
    )


def test_a_job_the_client_would_refuse_is_refused_before_it_is_sent(
    server: Any, api: k8s.ApiClient
) -> None:
    job = json.loads(json.dumps(JOB))
    job["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": 1}}
    with pytest.raises(ValueError, match="valid string") as ours:
        LeanApi(api).create_namespaced_job("ns-1", job)
    with pytest.raises(ValueError, match="valid string") as theirs:
        k8s.BatchV1Api(api).create_namespaced_job("ns-1", job, _preload_content=False)

    assert "resources.limits.cpu" in str(ours.value) and "resources.limits.cpu" in str(theirs.value)
    assert server.recorded == []


# ------------------------------------------------------------------------ AioApi

_AIO_CALLS: dict[str, Callable[[AioApi], Awaitable[Any]]] = {
    "get goal": lambda a: a.get_namespaced_custom_object(
        "backlog.dev", "v1alpha1", "ns-1", "goals", "g1"
    ),
    "patch status": lambda a: a.patch_namespaced_custom_object_status(
        "backlog.dev", "v1alpha1", "ns-1", "goals", "g1", STATUS
    ),
    "read job": lambda a: a.read_namespaced_job("j1", "ns-1"),
    "create job": lambda a: a.create_namespaced_job("ns-1", JOB),
    "create event": lambda a: a.create_namespaced_event("ns-1", EVENT),
}


def _aio_call(call: str, login: Callable[[], kopf.ConnectionInfo | None], **options: Any) -> Any:
    """One `AioApi` call on a loop of its own, its session closed after."""

    async def run() -> Any:
        aio = AioApi(login, **options)
        try:
            return await _AIO_CALLS[call](aio)
        finally:
            await aio.close()

    return asyncio.run(run())


def _login(server: Any, token: str = "t0ken") -> Callable[[], kopf.ConnectionInfo]:  # noqa: S107
    url = f"http://127.0.0.1:{server.server_address[1]}"
    return lambda: kopf.ConnectionInfo(server=url, scheme="Bearer", token=token)


@pytest.mark.parametrize("call", sorted(_CALLS))
def test_the_event_loop_call_sends_what_the_lean_call_sends(
    call: str, server: Any, api: k8s.ApiClient
) -> None:
    lean, _ = _CALLS[call]
    lean(api)
    answer = _aio_call(call, _login(server), headers=api.default_headers)

    theirs, ours = server.recorded
    assert ours["method"] == theirs["method"] and ours["path"] == theirs["path"]
    assert ours["body"] == theirs["body"]
    unsent = ("host", "accept-encoding", "connection", "content-length")
    assert {k: v for k, v in ours["headers"].items() if k not in unsent} == {
        k: v for k, v in theirs["headers"].items() if k not in unsent
    }
    assert ours["headers"]["authorization"] == "Bearer t0ken"
    assert answer == server.answer[1]


def test_the_cluster_logged_in_from_its_client_sends_what_the_lean_call_sends(
    server: Any, api: k8s.ApiClient
) -> None:
    """The operator's login when the caller logs kopf in itself: from the client's settings."""

    async def run() -> None:
        cluster = KubeCluster(api, login=lambda: connection_of(api.configuration))
        try:
            await cluster.get_goal("ns-1", "g1")
        finally:
            await cluster.aclose()

    LeanApi(api).get_namespaced_custom_object("backlog.dev", "v1alpha1", "ns-1", "goals", "g1")
    asyncio.run(run())
    theirs, ours = server.recorded
    unsent = ("host", "accept-encoding", "connection")
    assert {k: v for k, v in ours["headers"].items() if k not in unsent} == {
        k: v for k, v in theirs["headers"].items() if k not in unsent
    }
    assert ours["headers"]["authorization"] == "Bearer t0ken"


@pytest.mark.parametrize("status", [404, 409, 422, 429, 500])
@pytest.mark.parametrize("call", ["get goal", "create job", "create event", "patch status"])
def test_an_error_answer_raises_on_the_event_loop_what_the_lean_call_raises(
    call: str, status: int, server: Any, api: k8s.ApiClient
) -> None:
    server.answer = (status, {"kind": "Status", "reason": "Nope", "message": "refused here"})
    with pytest.raises(ApiException) as theirs:
        _CALLS[call][0](api)
    with pytest.raises(ApiException) as ours:
        _aio_call(call, _login(server), headers=api.default_headers)

    assert type(ours.value) is type(theirs.value)
    assert (ours.value.status, ours.value.reason, ours.value.body) == (
        theirs.value.status,
        theirs.value.reason,
        theirs.value.body,
    )
    assert (ours.value.headers or {})["Content-Type"] == "application/json"  # as Retry-After


def test_a_job_the_client_would_refuse_is_refused_on_the_event_loop_before_it_is_sent(
    server: Any,
) -> None:
    job = json.loads(json.dumps(JOB))
    job["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": 1}}

    async def run() -> None:
        aio = AioApi(_login(server))
        try:
            await aio.create_namespaced_job("ns-1", job)
        finally:
            await aio.close()

    with pytest.raises(ValueError, match=r"resources\.limits\.cpu"):
        asyncio.run(run())
    assert server.recorded == []


def test_a_refused_token_logs_in_again_once_and_tries_again(server: Any) -> None:
    tokens = iter(["old", "new"])
    logins: list[str] = []

    def login() -> kopf.ConnectionInfo:
        logins.append(next(tokens))
        return _login(server, logins[-1])()

    server.refuse = "Bearer old"
    assert _aio_call("get goal", login) == server.answer[1]
    assert logins == ["old", "new"]
    assert [r["headers"]["authorization"] for r in server.recorded] == ["Bearer old", "Bearer new"]


def test_a_token_refused_again_raises_unauthorized_after_one_login(server: Any) -> None:
    logins: list[int] = []

    def login() -> kopf.ConnectionInfo:
        logins.append(1)
        return _login(server, "old")()

    server.refuse = "Bearer old"
    with pytest.raises(UnauthorizedException):
        _aio_call("create event", login)
    assert len(logins) == 2 and len(server.recorded) == 2


def test_no_answer_is_a_network_failure_the_callers_retry() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def hang_up() -> None:  # accepts, reads the request, closes without an answer
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.shutdown(socket.SHUT_RDWR)
        connection.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(ConnectionError, match="no answer") as dropped:  # (a POST: not retried)
        _aio_call("create event", lambda: kopf.ConnectionInfo(server=url))
    thread.join()
    listener.close()
    with pytest.raises(OSError) as refused:  # noqa: PT011 (nothing listens there any more)
        _aio_call("get goal", lambda: kopf.ConnectionInfo(server=url))

    for error in (dropped.value, refused.value):
        text, permanent = describe_failure(error)
        assert not permanent and "could not be reached" in text


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, Any] | None, *, ca: bool
) -> x509.Certificate:
    """A certificate of `subject`, signed by `issuer` (its name and key), or by itself."""
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        builder = builder.add_extension(x509.SubjectAlternativeName([address]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pem(path: pathlib.Path, cert: x509.Certificate, key: Any = None) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


@pytest.fixture
def tls_server(tmp_path: pathlib.Path) -> Iterator[Any]:
    """The recording server over TLS, trusting only client certificates of its own CA."""
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("test-ca", ca_key, None, ca=True)
    _write_pem(tmp_path / "ca", ca)
    _write_pem(
        tmp_path / "server",
        _certificate("server", server_key, ("test-ca", ca_key), ca=False),
        server_key,
    )
    _write_pem(
        tmp_path / "client",
        _certificate("operator", client_key, ("test-ca", ca_key), ca=False),
        client_key,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tmp_path / "ca.crt")
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    served: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    served.socket = context.wrap_socket(served.socket, server_side=True)
    served.recorded, served.answer, served.files = [], (200, {"kind": "Job"}), tmp_path
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served
    served.shutdown()
    served.server_close()


def test_tls_with_a_ca_and_a_client_certificate(tls_server: Any) -> None:
    files = tls_server.files
    url = f"https://127.0.0.1:{tls_server.server_address[1]}"

    def login(**client: Any) -> Callable[[], kopf.ConnectionInfo]:
        return lambda: kopf.ConnectionInfo(
            server=url, ca_path=str(files / "ca.crt"), token="t0ken", **client
        )

    certificate = {
        "certificate_path": str(files / "client.crt"),
        "private_key_path": str(files / "client.key"),
    }
    assert _aio_call("read job", login(**certificate)) == {"kind": "Job"}
    assert tls_server.recorded[0]["peer"] == "operator"  # the client certificate was shown
    assert tls_server.recorded[0]["headers"]["authorization"] == "Bearer t0ken"
    with pytest.raises(OSError):  # noqa: PT011 (no client certificate: the server refuses it)
        _aio_call("read job", login())
    with pytest.raises(ssl.SSLError):  # a server whose CA is not trusted
        _aio_call("read job", lambda: kopf.ConnectionInfo(server=url, token="t0ken"))


def test_a_login_that_fails_is_a_network_failure_the_callers_retry(server: Any) -> None:
    def login() -> kopf.ConnectionInfo:
        raise kopf.LoginError("neither in-cluster, nor via kubeconfig")

    with pytest.raises(ConnectionError, match="could not log in") as failed:
        _aio_call("get goal", login)
    assert server.recorded == []
    assert describe_failure(failed.value)[1] is False  # not permanent: retried
