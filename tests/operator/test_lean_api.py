"""`LeanApi` makes the requests the official client's methods make, and fails as they fail.

Each of its calls and the client's method of the same name are sent to one recording HTTP
server, with a bearer token and a default header configured: method, path, query, headers and
body must match (but the `Content-Type` of a POST, which the client's methods leave out and
`LeanApi` says: `application/json`), and so must the `ApiException` an error answer raises.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from backlog_operator.adapters.kube import LeanApi

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
        server.recorded.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": json.loads(body) if body else None,
            }
        )
        status, answer = server.answer
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = _serve  # noqa: N815 (http.server's names)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


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
