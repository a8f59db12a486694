"""Tests of the hardened Kubernetes API emulator itself.

Each test pins one API-server behaviour the operator tests rely on, so that when an operator
test fails, these say whether the operator or the stand-in is wrong. They talk to the emulator
the way the operator and people do: the official client, kubectl, raw HTTP, and kopf.
"""

from __future__ import annotations

import http.client
import json
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import kmock
import kopf
import kubernetes.client
import kubernetes.watch
import pytest
import yaml
from kubernetes.client import ApiException, V1ObjectMeta

from tests.support.emulator import (
    EmulatorServer,
    HardenedEmulator,
    canonical_quantity,
    parse_quantity,
    running_emulator,
)
from tests.support.faults import FaultInjector
from tests.support.kopf_harness import KopfThread, wait_for
from tests.support.rbac import PolicyRule, RbacPolicy, request_attributes

GROUP, VERSION = "example.dev", "v1"
WIDGETS = f"{GROUP}/{VERSION}/widgets"
GADGETS = f"{GROUP}/{VERSION}/gadgets"

# A namespaced kind with a status subresource and a schema (required, enum, default).
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.dev"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "kind": "Widget",
            "plural": "widgets",
            "singular": "widget",
            "shortNames": ["wd"],
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 0},
                                    "color": {
                                        "type": "string",
                                        "enum": ["red", "blue"],
                                        "default": "blue",
                                    },
                                    "note": {"type": "string", "nullable": True},
                                },
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}

# A kind without a status subresource: status is an ordinary field of the object.
GADGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.dev"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def widget(name: str, size: int = 1, **labels: str) -> dict[str, Any]:
    """A Widget manifest."""
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": metadata,
        "spec": {"size": size},
    }


@pytest.fixture
def server(emulator_server: EmulatorServer) -> EmulatorServer:
    """The emulator server with the sample CRDs registered."""
    emulator_server.emulator.register_crd(WIDGET_CRD)
    emulator_server.emulator.register_crd(GADGET_CRD)
    return emulator_server


@pytest.fixture
def custom(server: EmulatorServer, kube_client: kubernetes.client.ApiClient) -> Any:
    """The official client's CustomObjectsApi."""
    return kubernetes.client.CustomObjectsApi(kube_client)


def http_request(
    server: EmulatorServer,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], Any]:
    """A raw HTTP request; returns status, headers and the decoded JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    payload = None if body is None else (body if isinstance(body, str) else json.dumps(body))
    conn.request(method, path, body=payload, headers={"Content-Type": content_type})
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, dict(response.headers), json.loads(raw) if raw else None


def error_status(error: ApiException) -> dict[str, Any]:
    """The API server's `Status` object carried by a client error."""
    status: dict[str, Any] = json.loads(error.body or "{}")
    return status


def watch_lines(server: EmulatorServer, path: str) -> Iterator[dict[str, Any]]:
    """Stream a watch over raw HTTP, one decoded event per line, until the server ends it."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/json")
    try:
        while line := response.readline():
            if line.strip():
                yield json.loads(line)
    finally:
        conn.close()


class KubectlWatch:
    """`kubectl get -w` in the background, its output lines in a queue."""

    def __init__(self, server: EmulatorServer, *args: str) -> None:
        command = ["kubectl", f"--kubeconfig={server.kubeconfig}", "get", "-w", *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def next_line(self, timeout: float = 10.0) -> str:
        return self.lines.get(timeout=timeout)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.pump.join(timeout=10)  # reads to the end of the output before it is closed
        assert self.process.stdout is not None
        self.process.stdout.close()


# --- Fix 1: create answers 201 with the object --------------------------------------------


def test_create_answers_201_with_the_stored_object(
    custom: Any, kube_client: kubernetes.client.ApiClient
) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", "widgets", widget("w1")
    )
    assert created["metadata"]["name"] == "w1"
    assert created["spec"] == {"size": 1, "color": "blue"}

    core = kubernetes.client.CoreV1Api(kube_client)
    body = kubernetes.client.V1ConfigMap(metadata=V1ObjectMeta(name="cm"), data={"a": "b"})
    configmap, status, _ = core.create_namespaced_config_map_with_http_info("default", body)
    assert status == 201
    assert configmap.metadata is not None and configmap.metadata.uid
    assert configmap.data == {"a": "b"}


# --- Fix 2: server-set metadata, generation, generateName, namespace from the URL ----------


def test_server_sets_metadata_generate_name_and_namespace(
    custom: Any, kube_client: kubernetes.client.ApiClient, emulator: HardenedEmulator
) -> None:
    obj = custom.create_namespaced_custom_object(GROUP, VERSION, "default", "widgets", widget("w1"))
    meta = obj["metadata"]
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert meta["resourceVersion"].isdigit()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["generation"] == 1
    assert meta["namespace"] == "default"  # from the URL: the manifest had none

    generated = custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        "widgets",
        {**widget(""), "metadata": {"generateName": "attempt-"}},
    )
    assert re.fullmatch(r"attempt-[bcdfghjklmnpqrstvwxz2456789]{5}", generated["metadata"]["name"])

    with pytest.raises(ApiException) as mismatch:
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            "widgets",
            {**widget("w2"), "metadata": {"name": "w2", "namespace": "other"}},
        )
    assert mismatch.value.status == 400

    # An ownerReference built from the created object is accepted; one without uid is not.
    batch = kubernetes.client.BatchV1Api(kube_client)
    owner = kubernetes.client.V1OwnerReference(
        api_version=obj["apiVersion"], kind=obj["kind"], name="w1", uid=meta["uid"], controller=True
    )
    job = kubernetes.client.V1Job(
        metadata=V1ObjectMeta(name="w1-job", owner_references=[owner]),
        spec=kubernetes.client.V1JobSpec(template=kubernetes.client.V1PodTemplateSpec()),
    )
    stored = batch.create_namespaced_job("default", job).metadata
    assert stored is not None and stored.owner_references == [owner]
    owner.uid = ""
    job.metadata = V1ObjectMeta(name="w1-job2", owner_references=[owner])
    with pytest.raises(ApiException) as invalid:
        batch.create_namespaced_job("default", job)
    assert invalid.value.status == 422

    # Names are validated as DNS subdomains (a Job's as a 63-character label).
    with pytest.raises(ApiException) as bad_name:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, "default", "widgets", widget("Bad_Name")
        )
    assert bad_name.value.status == 422
    assert emulator.get_object(WIDGETS, "default", "Bad_Name") is None


def test_generation_bumps_on_spec_changes_only(
    emulator: HardenedEmulator, server: EmulatorServer
) -> None:
    first = emulator.create_object(widget("w1"))
    rv = first["metadata"]["resourceVersion"]

    labelled = emulator.patch_object(WIDGETS, "default", "w1", {"metadata": {"labels": {"a": "b"}}})
    assert labelled["metadata"]["generation"] == 1
    assert labelled["metadata"]["resourceVersion"] != rv

    resized = emulator.patch_object(WIDGETS, "default", "w1", {"spec": {"size": 2}})
    assert resized["metadata"]["generation"] == 2

    with_status = emulator.patch_status(WIDGETS, "default", "w1", {"phase": "Ready"})
    assert with_status["metadata"]["generation"] == 2

    # A write that changes nothing keeps the resourceVersion and emits no event.
    same = emulator.patch_object(WIDGETS, "default", "w1", {"spec": {"size": 2}})
    assert same["metadata"]["resourceVersion"] == with_status["metadata"]["resourceVersion"]


# --- Fix 3: namespaces are a resource -------------------------------------------------------


def test_namespaces_are_a_cluster_scoped_resource(
    emulator_server: EmulatorServer, kube_client: kubernetes.client.ApiClient
) -> None:
    core = kubernetes.client.CoreV1Api(kube_client)
    assert [ns.metadata and ns.metadata.name for ns in core.list_namespace().items] == ["default"]

    core.create_namespace(kubernetes.client.V1Namespace(metadata=V1ObjectMeta(name="tenant-a")))
    status = core.read_namespace("tenant-a").status
    assert status is not None and status.phase == "Active"
    code, _, body = http_request(emulator_server, "GET", "/api/v1/namespaces/tenant-a/status")
    assert code == 200 and body["kind"] == "Namespace"
    assert "tenant-a" in emulator_server.kubectl("get", "namespaces", "-o", "name").stdout


# --- Fix 4: kopf's JSON patch with a `test` on resourceVersion ------------------------------


def test_json_patch_tests_the_resource_version(custom: Any, emulator: HardenedEmulator) -> None:
    obj = emulator.create_object(widget("w1"))
    rv = obj["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.dev/cleanup"]},
    ]
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "widgets", "w1", ops, _content_type="application/json-patch+json"
    )
    assert patched["metadata"]["finalizers"] == ["example.dev/cleanup"]

    with pytest.raises(ApiException) as stale:  # the resourceVersion has moved on
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            "widgets",
            "w1",
            ops,
            _content_type="application/json-patch+json",
        )
    assert stale.value.status == 422


def test_kopf_finalizer_and_delete_handler(server: EmulatorServer) -> None:
    emulator = server.emulator
    registry = kopf.OperatorRegistry()
    deleted: list[str] = []

    @kopf.on.create(GROUP, VERSION, "widgets", registry=registry)
    def created(**_: Any) -> None:
        pass

    @kopf.on.delete(GROUP, VERSION, "widgets", registry=registry)
    def removed(name: str, **_: Any) -> None:
        deleted.append(name)

    with KopfThread(server, registry=registry):
        emulator.create_object(widget("w1"))
        emulator.wait_for(
            lambda: (emulator.get_object(WIDGETS, "default", "w1") or {})["metadata"].get(
                "finalizers"
            ),
            message="kopf did not add its finalizer",
        )
        marked = emulator.delete_object(WIDGETS, "default", "w1")
        assert marked["metadata"]["deletionTimestamp"]  # kept until the finalizer is removed
        emulator.wait_for(lambda: emulator.get_object(WIDGETS, "default", "w1") is None)
    assert deleted == ["w1"]


# --- Fix 5: lists, watches, discovery, PUT, server-side apply, kubectl ----------------------


def test_lists_carry_kind_api_version_and_resource_version(
    server: EmulatorServer, kube_client: kubernetes.client.ApiClient
) -> None:
    server.emulator.create_object(widget("w1"))
    status, _, body = http_request(server, "GET", "/apis/example.dev/v1/namespaces/default/widgets")
    assert status == 200
    assert (body["kind"], body["apiVersion"]) == ("WidgetList", "example.dev/v1")
    assert body["metadata"]["resourceVersion"] == server.emulator.resource_version
    assert [item["kind"] for item in body["items"]] == ["Widget"]

    core = kubernetes.client.CoreV1Api(kube_client)
    assert core.list_namespaced_config_map("default").items == []


def test_lists_are_paged_as_the_api_server_pages_them(
    server: EmulatorServer, kube_client: kubernetes.client.ApiClient
) -> None:
    for name in ("w5", "w1", "w4", "w2", "w3"):
        server.emulator.create_object(widget(name, colour="red" if name != "w4" else "blue"))
    path = "/apis/example.dev/v1/namespaces/default/widgets"
    status, _, first = http_request(server, "GET", f"{path}?limit=2")
    assert status == 200
    assert [item["metadata"]["name"] for item in first["items"]] == ["w1", "w2"]
    listed_at = first["metadata"]["resourceVersion"]
    # A change between pages: the later pages still say the first page's version, the one a
    # watch resumes from (and replays the change).
    server.emulator.create_object(widget("w0"))
    names, token = [], first["metadata"]["continue"]
    while token:
        status, _, page = http_request(server, "GET", f"{path}?limit=2&continue={token}")
        assert status == 200
        assert page["metadata"]["resourceVersion"] == listed_at
        names += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
    assert names == ["w3", "w4", "w5"]
    # Paged after filtering; without a limit, one page; a token not given here: 400.
    _, _, red = http_request(server, "GET", f"{path}?labelSelector=colour%3Dred&limit=3")
    assert [item["metadata"]["name"] for item in red["items"]] == ["w1", "w2", "w3"]
    assert "continue" in red["metadata"]
    _, _, whole = http_request(server, "GET", path)
    assert len(whole["items"]) == 6
    assert "continue" not in whole["metadata"]
    assert http_request(server, "GET", f"{path}?limit=2&continue=bogus")[0] == 400
    # The official client follows the tokens.
    custom = kubernetes.client.CustomObjectsApi(kube_client)
    seen: list[str] = []
    token = None
    while True:
        listed: dict[str, Any] = custom.list_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, "default", "widgets", limit=4, **({"_continue": token} if token else {})
        )
        seen += [item["metadata"]["name"] for item in listed["items"]]
        token = listed["metadata"].get("continue")
        if not token:
            break
    assert seen == ["w0", "w1", "w2", "w3", "w4", "w5"]


def test_kubectl_create_apply_get_and_watch(server: EmulatorServer) -> None:
    manifest = yaml.safe_dump(widget("w1", size=3))
    assert "created" in server.kubectl("create", "-f", "-", input=manifest).stdout
    assert (
        "configured"
        in server.kubectl("apply", "-f", "-", input=manifest.replace("size: 3", "size: 4")).stdout
    )
    assert (
        "configured"
        in server.kubectl(
            "apply", "--validate=false", "-f", "-", input=manifest.replace("size: 3", "size: 5")
        ).stdout
    )
    ssa = server.kubectl("apply", "--server-side", "-f", "-", input=manifest.replace("w1", "w2"))
    assert "serverside-applied" in ssa.stdout
    assert server.kubectl("get", "wd", "-o", "name").stdout.split() == [
        "widget.example.dev/w1",
        "widget.example.dev/w2",
    ]
    assert server.kubectl("get", "widget", "w1", "-o", "jsonpath={.spec.size}").stdout == "5"

    # kubectl validates on the server: an unknown field is refused, as with fieldValidation=Strict.
    typo_manifest = manifest.replace("size: 3", "size: 3\n  sise: 4")
    typo = server.kubectl("apply", "-f", "-", input=typo_manifest, check=False)
    assert typo.returncode != 0 and 'unknown field "spec.sise"' in typo.stderr

    watch = KubectlWatch(server, "widgets", "-o", "name")
    try:
        assert {watch.next_line(), watch.next_line()} == {
            "widget.example.dev/w1",
            "widget.example.dev/w2",
        }
        server.emulator.create_object(widget("w3"))
        assert watch.next_line() == "widget.example.dev/w3"
    finally:
        watch.close()

    # A CRD applied with kubectl is served at once.
    gizmo = {**GADGET_CRD, "metadata": {"name": "gizmos.example.dev"}}
    gizmo["spec"] = {**GADGET_CRD["spec"], "names": {"kind": "Gizmo", "plural": "gizmos"}}
    server.kubectl("apply", "-f", "-", input=yaml.safe_dump(gizmo))
    server.kubectl("wait", "--for=condition=Established", "crd/gizmos.example.dev", "--timeout=5s")
    assert "No resources found" in server.kubectl("get", "gizmos").stderr


def test_watch_streams_json_and_resumes_from_a_resource_version(server: EmulatorServer) -> None:
    emulator = server.emulator
    emulator.create_object(widget("before"))
    listed_at = emulator.resource_version
    emulator.create_object(widget("after-1"))
    emulator.patch_object(WIDGETS, "default", "after-1", {"spec": {"size": 2}})
    emulator.create_object(widget("after-2"))

    base = "/apis/example.dev/v1/namespaces/default/widgets?watch=true&timeoutSeconds=0.2"
    resumed = [
        (e["type"], e["object"]["metadata"]["name"])
        for e in watch_lines(server, f"{base}&resourceVersion={listed_at}")
    ]
    assert resumed == [("ADDED", "after-1"), ("MODIFIED", "after-1"), ("ADDED", "after-2")]

    # Without a resourceVersion: the current objects as ADDED, then what happens next.
    fresh = [(e["type"], e["object"]["metadata"]["name"]) for e in watch_lines(server, base)]
    assert fresh == [("ADDED", "after-1"), ("ADDED", "after-2"), ("ADDED", "before")]


def test_watch_from_an_expired_resource_version_is_410(emulator_server: EmulatorServer) -> None:
    emulator = HardenedEmulator(event_history=2)
    with EmulatorServer(emulator) as server:
        for name in ("a", "b", "c", "d"):
            emulator.create_object(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
            )
        path = "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&resourceVersion=1"
        events = list(watch_lines(server, path))
    assert [(e["type"], e["object"]["code"]) for e in events] == [("ERROR", 410)]


def test_discovery_reports_groups_and_subresources(server: EmulatorServer) -> None:
    _, _, core = http_request(server, "GET", "/api/v1")
    assert core["groupVersion"] == "v1"
    names = {r["name"]: r for r in core["resources"]}
    assert names["pods"]["shortNames"] == ["po"]
    assert "shortNames" not in names["pods/status"]
    assert names["namespaces"]["namespaced"] is False

    _, _, groups = http_request(server, "GET", "/apis")
    example = next(g for g in groups["groups"] if g["name"] == GROUP)
    assert example["preferredVersion"] == {"groupVersion": "example.dev/v1", "version": "v1"}

    _, _, version = http_request(server, "GET", "/apis/example.dev/v1")
    assert version["groupVersion"] == "example.dev/v1"
    assert {r["name"] for r in version["resources"]} == {"widgets", "widgets/status", "gadgets"}
    assert "namespaces" in server.kubectl("api-resources", "-o", "name").stdout.split()


def test_put_replaces_and_server_side_apply_creates(custom: Any, server: EmulatorServer) -> None:
    obj = server.emulator.create_object(widget("w1"))
    obj["spec"]["size"] = 7
    replaced = custom.replace_namespaced_custom_object(
        GROUP, VERSION, "default", "widgets", "w1", obj
    )
    assert replaced["spec"]["size"] == 7
    assert replaced["metadata"]["generation"] == 2

    status, _, body = http_request(
        server,
        "PATCH",
        "/apis/example.dev/v1/namespaces/default/widgets/w2?fieldManager=test",
        yaml.safe_dump(widget("w2", size=2)),
        content_type="application/apply-patch+yaml",
    )
    assert status == 201 and body["metadata"]["name"] == "w2"
    status, _, _ = http_request(
        server,
        "PATCH",
        "/apis/example.dev/v1/namespaces/default/widgets/w3",
        widget("w3"),
        content_type="application/apply-patch+yaml",
    )
    assert status == 400  # apply needs a fieldManager

    # Custom resources do not take strategic merge patches (the API server says 415).
    status, _, _ = http_request(
        server,
        "PATCH",
        "/apis/example.dev/v1/namespaces/default/widgets/w1",
        {"spec": {"size": 1}},
        content_type="application/strategic-merge-patch+json",
    )
    assert status == 415


# --- Fix 6: the watch race -------------------------------------------------------------------


def start_kopf_while_creating(attempt: int, count: int = 20) -> None:
    """Start a kopf operator while another thread creates widgets; all must be handled."""
    registry = kopf.OperatorRegistry()
    handled: set[str] = set()
    names = [f"w{i}" for i in range(count)]

    @kopf.on.create(GROUP, VERSION, "widgets", registry=registry)
    def created(name: str, **_: Any) -> None:
        handled.add(name)

    with EmulatorServer() as server:
        emulator = server.emulator
        emulator.register_crd(WIDGET_CRD)

        def create_all() -> None:
            for name in names:
                emulator.create_object(widget(name))
                time.sleep(0.002)

        creator = threading.Thread(target=create_all)
        creator.start()  # objects appear before, during and after kopf's list and watch
        with KopfThread(server, registry=registry):
            creator.join()
            emulator.wait_for(
                lambda: handled >= set(names),
                message=lambda: f"attempt {attempt}: missed {sorted(set(names) - handled)}",
            )
        watches = [r for r in emulator if r.action == kmock.action.WATCH]
        assert any(r.params.get("resourceVersion") for r in watches)


def test_kopf_sees_objects_created_while_it_starts() -> None:
    for attempt in range(10):
        start_kopf_while_creating(attempt)


# --- Fix 7: status subresource, conflicts, selectors -----------------------------------------


def test_status_is_a_real_subresource(custom: Any, server: EmulatorServer) -> None:
    server.emulator.create_object(widget("w1"))
    main = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "widgets", "w1", {"spec": {"size": 2}, "status": {"phase": "X"}}
    )
    assert main["spec"]["size"] == 2 and "status" not in main

    status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", "widgets", "w1", {"spec": {"size": 9}, "status": {"phase": "Y"}}
    )
    assert status["spec"]["size"] == 2 and status["status"] == {"phase": "Y"}
    assert status["metadata"]["generation"] == 2

    # Without a status subresource, status is an ordinary field and /status does not exist.
    server.emulator.create_object(
        {"apiVersion": "example.dev/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    )
    plain = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "gadgets", "g", {"status": {"phase": "Z"}}
    )
    assert plain["status"] == {"phase": "Z"}
    with pytest.raises(ApiException) as missing:
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, "default", "gadgets", "g", {})
    assert missing.value.status == 404


def test_stale_resource_version_is_a_conflict(custom: Any, server: EmulatorServer) -> None:
    old = server.emulator.create_object(widget("w1"))
    server.emulator.patch_object(WIDGETS, "default", "w1", {"spec": {"size": 2}})
    stale = {
        "metadata": {"resourceVersion": old["metadata"]["resourceVersion"]},
        "spec": {"size": 3},
    }

    with pytest.raises(ApiException) as patched:
        custom.patch_namespaced_custom_object(GROUP, VERSION, "default", "widgets", "w1", stale)
    assert patched.value.status == 409
    assert error_status(patched.value)["reason"] == "Conflict"
    with pytest.raises(ApiException) as replaced:
        custom.replace_namespaced_custom_object(GROUP, VERSION, "default", "widgets", "w1", old)
    assert replaced.value.status == 409
    with pytest.raises(ApiException) as deleted:
        custom.delete_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            "widgets",
            "w1",
            body={"preconditions": {"resourceVersion": old["metadata"]["resourceVersion"]}},
        )
    assert deleted.value.status == 409
    assert server.emulator.get_object(WIDGETS, "default", "w1")["spec"]["size"] == 2  # type: ignore[index]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=a", ["w-a1", "w-a2"]),
        ("app==b", ["w-b"]),
        ("app!=a", ["w-b", "w-none"]),
        ("app in (a, b),tier=web", ["w-a1", "w-b"]),
        ("app notin (a)", ["w-b", "w-none"]),
        ("tier", ["w-a1", "w-b"]),
        ("!tier", ["w-a2", "w-none"]),
    ],
)
def test_label_selectors_filter_lists(
    custom: Any, server: EmulatorServer, selector: str, expected: list[str]
) -> None:
    for manifest in (
        widget("w-a1", app="a", tier="web"),
        widget("w-a2", app="a"),
        widget("w-b", app="b", tier="web"),
        widget("w-none"),
    ):
        server.emulator.create_object(manifest)
    found = custom.list_namespaced_custom_object(
        GROUP, VERSION, "default", "widgets", label_selector=selector
    )
    assert [item["metadata"]["name"] for item in found["items"]] == expected


def test_selectors_filter_watches(custom: Any, server: EmulatorServer) -> None:
    emulator = server.emulator
    since = emulator.resource_version
    emulator.create_object(widget("other", app="b"))
    emulator.create_object(widget("mine", app="a"))
    emulator.patch_object(WIDGETS, "default", "mine", {"spec": {"size": 2}})
    emulator.patch_object(WIDGETS, "default", "mine", {"metadata": {"labels": {"app": "b"}}})

    watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
    events = []
    for event in watch.stream(  # type: ignore[no-untyped-call]
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        "widgets",
        label_selector="app=a",
        resource_version=since,
        timeout_seconds=1,
    ):
        events.append((event["type"], event["object"]["metadata"]["name"]))
        if len(events) == 3:
            watch.stop()  # type: ignore[no-untyped-call]
    # Leaving the selector is a DELETED event for this watcher, as the API server reports it.
    assert events == [("ADDED", "mine"), ("MODIFIED", "mine"), ("DELETED", "mine")]

    by_name = emulator.list_objects(WIDGETS, "default", field_selector="metadata.name=other")
    assert [o["metadata"]["name"] for o in by_name] == ["other"]


def test_custom_resources_are_validated_pruned_and_defaulted(custom: Any) -> None:
    def create(spec: dict[str, Any]) -> Any:
        body = {**widget("w1"), "spec": spec}
        return custom.create_namespaced_custom_object(GROUP, VERSION, "default", "widgets", body)

    invalid_specs: list[tuple[dict[str, Any], str]] = [
        ({}, "spec.size"),
        ({"size": "big"}, "spec.size"),
        ({"size": -1}, "spec.size"),
        ({"size": 1, "color": "green"}, "spec.color"),
    ]
    for spec, field in invalid_specs:
        with pytest.raises(ApiException) as invalid:
            create(spec)
        status = error_status(invalid.value)
        assert (invalid.value.status, status["reason"]) == (422, "Invalid")
        assert [cause["field"] for cause in status["details"]["causes"]] == [field]

    stored = create({"size": 1, "note": None, "unknown": True})
    assert stored["spec"] == {"size": 1, "note": None, "color": "blue"}  # pruned and defaulted


def test_register_crds_from_dir(tmp_path: Path) -> None:
    documents = [WIDGET_CRD, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}]
    (tmp_path / "widgets.yaml").write_text(yaml.safe_dump_all(documents))
    (tmp_path / "gadgets.yml").write_text(yaml.safe_dump(GADGET_CRD))
    (tmp_path / "README.md").write_text("not a manifest")

    assert HardenedEmulator().register_crds_from_dir(tmp_path) == [
        kmock.resource(GROUP, VERSION, "gadgets"),
        kmock.resource(GROUP, VERSION, "widgets"),
    ]
    with running_emulator(crd_dir=tmp_path) as server:
        crds = server.kubectl("get", "crds", "-o", "name").stdout.split()
        assert "customresourcedefinition.apiextensions.k8s.io/widgets.example.dev" in crds
        assert server.emulator.list_objects(GADGETS) == []


def test_project_crds_register(project_crds: list[kmock.resource]) -> None:
    assert kmock.resource("backlog.dev", "v1alpha1", "goals") in project_crds


# --- Helpers for the missing controllers -----------------------------------------------------


def test_job_and_pod_helpers(
    emulator: HardenedEmulator, kube_client: kubernetes.client.ApiClient
) -> None:
    steps = [{"name": n, "image": "busybox"} for n in ("clone", "task")]
    publish = {"name": "publish", "image": "busybox"}
    template = {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"initContainers": steps, "containers": [publish]},
    }
    emulator.create_object(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j1"},
            "spec": {"template": template},
            "status": {"succeeded": 1},
        }
    )
    assert "status" not in emulator.get_object("batch/v1/jobs", "default", "j1")  # type: ignore[operator]

    pod = emulator.start_job("default", "j1")
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "j1"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert pod["status"]["phase"] == "Running"

    done = emulator.finish_pod(
        "default",
        pod["metadata"]["name"],
        exit_codes={"task": 3},
        messages={"clone": '{"ok": true}'},
    )
    assert done["status"]["phase"] == "Failed"
    clone, task = done["status"]["initContainerStatuses"]
    assert clone["state"]["terminated"]["message"] == '{"ok": true}'
    assert task["state"]["terminated"]["exitCode"] == 3
    assert done["status"]["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "PodInitializing"}
    }

    emulator.complete_job("default", "j1", succeeded=False)
    job = kubernetes.client.BatchV1Api(kube_client).read_namespaced_job_status("j1", "default")
    assert job.status is not None
    assert [(c.type, c.status) for c in job.status.conditions or []] == [
        ("FailureTarget", "True"),
        ("Failed", "True"),
    ]

    emulator.set_pod_log("default", pod["metadata"]["name"], "boom\n", container="task")
    log = kubernetes.client.CoreV1Api(kube_client).read_namespaced_pod_log(
        pod["metadata"]["name"], "default", container="task"
    )
    assert log == "boom\n"


def test_injected_failures_leave_objects_untouched(custom: Any, server: EmulatorServer) -> None:
    server.emulator[kmock.method.POST, kmock.resource(WIDGETS)] << 503
    with pytest.raises(ApiException) as failed:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", "widgets", widget("w1"))
    assert failed.value.status == 503
    assert server.emulator.get_object(WIDGETS, "default", "w1") is None


def test_fault_injection_dsl_slices_records_and_groups(custom: Any, server: EmulatorServer) -> None:
    emulator = server.emulator
    emulator.create_object(widget("w1"))
    widgets = kmock.resource(WIDGETS)

    # A slice counts the matching requests: only the first GET of a widget fails.
    emulator["get", widgets][:1] << 503
    with pytest.raises(ApiException) as first:
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", "widgets", "w1")
    assert first.value.status == 503
    assert custom.get_namespaced_custom_object(GROUP, VERSION, "default", "widgets", "w1")

    # A reaction records the requests it intercepted; they change nothing.
    failing = emulator[kmock.method.PATCH, widgets] << 500
    for size in (2, 3):
        with pytest.raises(ApiException):
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, "default", "widgets", "w1", {"spec": {"size": size}}
            )
    assert [request.method for request in failing] == [kmock.method.PATCH] * 2
    w1 = server.emulator.get_object(WIDGETS, "default", "w1")
    assert w1 is not None
    assert w1["spec"]["size"] == 1

    # Groups and exclusions: deletes of widgets other than "keep" are refused.
    (emulator[kmock.method.DELETE] | emulator[kmock.method.PUT]) - emulator[
        kmock.name("keep")
    ] << 403
    emulator.create_object(widget("keep"))
    with pytest.raises(ApiException) as refused:
        custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "widgets", "w1")
    assert refused.value.status == 403
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "widgets", "keep")
    assert emulator.get_object(WIDGETS, "default", "keep") is None
    assert emulator.get_object(WIDGETS, "default", "w1") is not None


# --- Cost per request: independent of past requests and of stored objects --------------------


class CostCounter:
    """Counts what serving requests costs, in operations that grow if a request scans history
    or storage: kmock criteria evaluated (matching a request to reactions) and stored objects
    read (kmock's `Object.raw`, and entries iterated in its `ObjectsArray`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.criteria = 0
        self.objects = 0
        classes, pending = set(), [kmock.Criteria]
        while pending:  # every kind of criteria, however deep
            cls = pending.pop()
            classes.add(cls)
            pending += cls.__subclasses__()
        for cls in classes:
            if "__call__" in vars(cls):
                monkeypatch.setattr(cls, "__call__", self._counting_criteria(vars(cls)["__call__"]))
        raw: property = vars(kmock.Object)["raw"]  # the property, not what it gives

        def counting_raw(obj: kmock.Object) -> Any:
            self.objects += 1
            return raw.__get__(obj)

        monkeypatch.setattr(kmock.Object, "raw", property(counting_raw))
        for name in ("__iter__", "keys", "values", "items"):
            monkeypatch.setattr(
                kmock.ObjectsArray, name, self._counting_iteration(vars(kmock.ObjectsArray)[name])
            )

    def _counting_criteria(self, call: Any) -> Any:
        def counting(criteria: Any, request: Any) -> Any:
            self.criteria += 1
            return call(criteria, request)

        return counting

    def _counting_iteration(self, method: Any) -> Any:
        def counting(array: Any) -> Iterator[Any]:
            for item in method(array):
                self.objects += 1
                yield item

        return counting

    def measure(self, action: Any) -> tuple[int, int]:
        self.criteria = self.objects = 0
        action()
        return self.criteria, self.objects


def probe_requests(server: EmulatorServer) -> None:
    """One of each request kopf and the operator make on a kind, on a Widget named "probe"."""
    base = "/apis/example.dev/v1/namespaces/default/widgets"
    assert http_request(server, "POST", base, widget("probe", color="red"))[0] == 201
    assert http_request(server, "GET", f"{base}/probe")[0] == 200
    status_patch = {"status": {"phase": "Seen"}}
    merge = "application/merge-patch+json"
    assert http_request(server, "PATCH", f"{base}/probe/status", status_patch, merge)[0] == 200
    assert http_request(server, "PATCH", f"{base}/probe", {"spec": {"size": 2}}, merge)[0] == 200
    assert len(http_request(server, "GET", base)[2]["items"]) == 4
    assert len(http_request(server, "GET", f"{base}?labelSelector=color%3Dred")[2]["items"]) == 1
    assert http_request(server, "GET", "/api/v1/namespaces/default/configmaps")[0] == 200
    assert len(list(watch_lines(server, f"{base}?watch=true&timeoutSeconds=0.01"))) == 4
    assert http_request(server, "DELETE", f"{base}/probe")[0] == 200


def test_request_cost_does_not_grow_with_past_requests_or_stored_objects(
    server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = server.emulator
    for name in ("w1", "w2", "w3"):
        emulator.create_object(widget(name))
    counter = CostCounter(monkeypatch)
    first = counter.measure(lambda: probe_requests(server))
    assert first[0] > 0 and first[1] > 0  # the counters see the requests being served

    # 2,000 more objects (of another kind, in the same namespace) and 500 more requests.
    for i in range(2000):
        emulator.create_object(
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Gadget", "metadata": {"name": f"g{i}"}}
        )
    gadget = "/apis/example.dev/v1/namespaces/default/gadgets"
    for i in range(500):
        assert http_request(server, "GET", f"{gadget}/g{i}")[0] == 200

    # The same requests cost exactly the same: nothing scans the request history or storage.
    assert counter.measure(lambda: probe_requests(server)) == first


def test_request_history_is_bounded() -> None:
    emulator = HardenedEmulator(request_history=10)
    with EmulatorServer(emulator) as small:
        for _ in range(200):
            assert http_request(small, "GET", "/version")[0] == 200
        kept = list(emulator)
    assert 10 <= len(kept) < 100
    assert [request.id for request in kept[-10:]] == list(range(190, 200))


# --- Smoke: kopf through the harness sees what kubectl creates -------------------------------


def test_kopf_operator_sees_a_resource_created_by_kubectl(server: EmulatorServer) -> None:
    registry = kopf.OperatorRegistry()
    seen: list[tuple[str, int]] = []

    @kopf.on.create(GROUP, VERSION, "widgets", id="created", registry=registry)
    def created(name: str, spec: kopf.Spec, **_: Any) -> dict[str, str]:
        seen.append((name, spec["size"]))
        return {"state": "handled"}

    emulator = server.emulator
    with KopfThread(server, registry=registry) as operator:
        assert operator.ready.is_set()
        emulator.wait_for(lambda: emulator.open_watches(WIDGETS), message="kopf is not watching")
        server.kubectl("apply", "-f", "-", input=yaml.safe_dump(widget("from-kubectl", size=4)))
        wait_for(lambda: seen, message="kopf did not handle the widget")
        handled = server.emulator.wait_for(
            lambda: (server.emulator.get_object(WIDGETS, "default", "from-kubectl") or {}).get(
                "status"
            )
        )
    assert seen == [("from-kubectl", 4)]
    assert handled == {"created": {"state": "handled"}}
    assert not operator.running
    emulator.wait_for(lambda: emulator.open_watches(WIDGETS) == 0, message="a watch stayed open")


# --- Opt-in strict validation of built-in kinds ----------------------------------------------

KUSTOMIZE_RBAC = Path(__file__).resolve().parents[2] / "kustomize" / "rbac"
JOBS_PATH = "/apis/batch/v1/namespaces/default/jobs"


def job_manifest(name: str = "j1", **container: Any) -> dict[str, Any]:
    """A valid Job (one container, restartPolicy Never) with container fields overridden."""
    main = {"name": "main", "image": "busybox:1.37", "command": ["true"], **container}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [main], "restartPolicy": "Never"}}},
    }


@pytest.fixture
def strict(emulator_server: EmulatorServer) -> EmulatorServer:
    """The emulator server with strict validation of built-in kinds switched on."""
    emulator_server.emulator.strict_validation = True
    return emulator_server


def test_strict_validation_is_off_by_default(emulator_server: EmulatorServer) -> None:
    # The API server refuses this Job (empty image, restartPolicy Always); the default emulator
    # does not, so tests written before strict mode keep passing.
    body = job_manifest(image="")
    body["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert http_request(emulator_server, "POST", JOBS_PATH, body)[0] == 201


def with_resources(limits: dict[str, Any], requests: dict[str, Any]) -> dict[str, Any]:
    return job_manifest(resources={"limits": limits, "requests": requests})


def with_pod_spec(**spec: Any) -> dict[str, Any]:
    body = job_manifest()
    body["spec"]["template"]["spec"].update(spec)
    return body


def with_metadata(**metadata: Any) -> dict[str, Any]:
    body = job_manifest()
    body["metadata"].update(metadata)
    return body


ONE_CONTAINER = [{"name": "main", "image": "busybox"}]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (job_manifest(image=""), "spec.template.spec.containers[0].image", "Required value"),
        (
            with_resources({"cpu": "1"}, {"cpu": "1500m"}),
            "spec.template.spec.containers[0].resources.requests",
            'Invalid value: "1500m": must be less than or equal to cpu limit of 1',
        ),
        (
            with_resources({"memory": "1Gi"}, {"memory": "2Gi"}),
            "spec.template.spec.containers[0].resources.requests",
            "must be less than or equal to memory limit of 1Gi",
        ),
        (
            with_resources({}, {"cpu": "-1"}),
            "spec.template.spec.containers[0].resources.requests[cpu]",
            "must be greater than or equal to 0",
        ),
        (
            with_resources({"example.com/gpu": "2"}, {"example.com/gpu": "1"}),
            "spec.template.spec.containers[0].resources.requests",
            "must be equal to example.com/gpu limit of 2",
        ),
        (
            with_pod_spec(restartPolicy="Always"),
            "spec.template.spec.restartPolicy",
            'Unsupported value: "Always": supported values: "OnFailure", "Never"',
        ),
        (
            with_pod_spec(containers=ONE_CONTAINER * 2),
            "spec.template.spec.containers[1].name",
            'Duplicate value: "main"',
        ),
        (
            job_manifest(volumeMounts=[{"name": "work", "mountPath": "/work"}]),
            "spec.template.spec.containers[0].volumeMounts[0].name",
            'Not found: "work"',
        ),
        (
            with_metadata(labels={"goal": "x" * 64}),
            "metadata.labels",
            "a valid label must be 63 characters or less",
        ),
        (
            with_metadata(labels={"/no-prefix": "x"}),
            "metadata.labels",
            "prefix part must be non-empty",
        ),
        (
            with_metadata(annotations={"big": "x" * (256 * 1024)}),
            "metadata.annotations",
            "Too long: may not be more than 262144 bytes",
        ),
        (with_metadata(name="j" * 64), "metadata.name", "at most 63 characters"),
        (
            {**job_manifest(), "spec": {**job_manifest()["spec"], "backoffLimit": -1}},
            "spec.backoffLimit",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
    ],
    ids=[
        "empty-image",
        "cpu-request-above-limit",
        "memory-request-above-limit",
        "negative-request",
        "extended-resource-not-equal",
        "restart-always",
        "duplicate-container",
        "mount-without-volume",
        "label-value-too-long",
        "label-key-empty-prefix",
        "annotations-too-large",
        "job-name-too-long",
        "negative-backoff",
    ],
)
def test_strict_validation_refuses_what_the_api_server_refuses(
    strict: EmulatorServer,
    kube_client: kubernetes.client.ApiClient,
    body: dict[str, Any],
    field: str,
    message: str,
) -> None:
    batch = kubernetes.client.BatchV1Api(kube_client)
    with pytest.raises(ApiException) as refused:
        batch.create_namespaced_job("default", body)  # type: ignore[arg-type]  # the client sends a dict body as is
    status = error_status(refused.value)
    assert (refused.value.status, status["kind"], status["reason"]) == (422, "Status", "Invalid")
    assert status["message"].startswith(f'Job.batch "{body["metadata"]["name"]}" is invalid: ')
    causes = status["details"]["causes"]
    assert [cause["field"] for cause in causes] == [field]
    assert message in causes[0]["message"]
    assert strict.emulator.list_objects("batch/v1/jobs") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            with_resources({"cpu": "one"}, {}),
            "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        (with_resources({"memory": "32MMi"}, {}), "unable to parse quantity's suffix"),
        (
            {**job_manifest(), "spec": {**job_manifest()["spec"], "backoffLimit": "six"}},
            "json: cannot unmarshal string into Go struct field Job.spec.backoffLimit",
        ),
    ],
    ids=["malformed-quantity", "quantity-suffix", "wrong-type"],
)
def test_strict_validation_answers_400_to_what_cannot_be_decoded(
    strict: EmulatorServer, body: dict[str, Any], message: str
) -> None:
    # The API server decodes the body into its Go type before validating: a malformed quantity
    # or a wrongly typed field is a 400 BadRequest ("cannot be handled as a Job"), not a 422.
    code, _, status = http_request(strict, "POST", JOBS_PATH, body)
    assert (code, status["reason"]) == (400, "BadRequest")
    assert status["message"].startswith('Job in version "v1" cannot be handled as a Job: ')
    assert message in status["message"]


def test_strict_validation_accepts_valid_objects_and_drops_unknown_fields(
    strict: EmulatorServer, kube_client: kubernetes.client.ApiClient
) -> None:
    # Quantities may be JSON numbers on the wire; requests equal to limits are fine.
    body = with_resources({"cpu": 1, "memory": "512Mi"}, {"cpu": 0.5, "memory": "512Mi"})
    body["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"  # a typo
    code, headers, created = http_request(strict, "POST", JOBS_PATH, body)
    assert code == 201
    container = created["spec"]["template"]["spec"]["containers"][0]
    assert "imagePullPolice" not in container
    # Quantities come back as the API server writes them: canonical strings.
    assert container["resources"] == {
        "limits": {"cpu": "1", "memory": "512Mi"},
        "requests": {"cpu": "500m", "memory": "512Mi"},
    }
    warning = 'unknown field \\"spec.template.spec.containers[0].imagePullPolice\\"'
    assert headers["Warning"] == f'299 - "{warning}"'

    # With fieldValidation=Strict (as kubectl sends), an unknown field is refused.
    body["metadata"]["name"] = "j2"
    code, _, status = http_request(strict, "POST", f"{JOBS_PATH}?fieldValidation=Strict", body)
    assert (code, status["reason"]) == (400, "BadRequest")
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolice"' in status["message"]
    result = strict.kubectl("create", "-f", "-", input=yaml.safe_dump(body), check=False)
    assert result.returncode != 0 and "imagePullPolice" in result.stderr

    # The Job controller's and kubelet's stand-ins write valid Pods and statuses.
    emulator = strict.emulator
    pod = emulator.start_job("default", "j1")
    emulator.finish_pod("default", pod["metadata"]["name"], exit_codes={"main": 1})
    emulator.complete_job("default", "j1", succeeded=False)
    job = kubernetes.client.BatchV1Api(kube_client).read_namespaced_job("j1", "default")
    assert job.status is not None and job.status.failed == 1


def test_strict_validation_of_updates_pods_and_events(strict: EmulatorServer) -> None:
    emulator = strict.emulator
    emulator.create_object(job_manifest())
    merge = "application/merge-patch+json"

    # A Job's pod template is immutable once created (unless suspended and not started).
    change = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}}}
    code, _, status = http_request(strict, "PATCH", f"{JOBS_PATH}/j1", change, merge)
    assert code == 422
    assert [c["field"] for c in status["details"]["causes"]] == ["spec.template"]
    code, _, _ = http_request(
        strict, "PATCH", f"{JOBS_PATH}/j1", {"metadata": {"labels": {"a": "b"}}}, merge
    )
    assert code == 200

    # A Pod's spec is immutable but for images (and a few scheduling fields).
    pods = "/api/v1/namespaces/default/pods"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p1"},
        "spec": {"containers": ONE_CONTAINER},
    }
    assert http_request(strict, "POST", pods, pod)[0] == 201
    image = {"spec": {"containers": [{"name": "main", "image": "busybox:2"}]}}
    assert http_request(strict, "PATCH", f"{pods}/p1", image, merge)[0] == 200
    command = {"spec": {"containers": [{"name": "main", "image": "busybox:2", "command": ["x"]}]}}
    code, _, status = http_request(strict, "PATCH", f"{pods}/p1", command, merge)
    assert code == 422 and status["details"]["causes"][0]["field"] == "spec"
    assert "pod updates may not change fields" in status["message"]

    # Core v1 Events: the involved object's namespace must be the Event's.
    events = "/api/v1/namespaces/default/events"
    event: dict[str, Any] = {
        "metadata": {"generateName": "g1."},
        "involvedObject": {"kind": "Goal", "name": "g1", "namespace": "default"},
        "reason": "Started",
        "message": "attempt 1",
        "type": "Normal",
    }
    assert http_request(strict, "POST", events, event)[0] == 201
    event["involvedObject"]["namespace"] = "elsewhere"
    code, _, status = http_request(strict, "POST", events, event)
    assert code == 422
    assert status["details"]["causes"][0]["field"] == "involvedObject.namespace"
    # events.k8s.io/v1 Events are validated strictly: eventTime and reporting fields required.
    code, _, status = http_request(
        strict,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/default/events",
        {"metadata": {"name": "e1"}, "regarding": {"kind": "Goal", "name": "g1"}, "type": "Normal"},
    )
    assert code == 422
    fields = {c["field"] for c in status["details"]["causes"]}
    assert {"eventTime", "reportingController", "reportingInstance", "action", "reason"} <= fields


@pytest.mark.parametrize(
    ("text", "value", "canonical"),
    [
        ("100m", "0.1", "100m"),
        ("1000m", "1", "1"),
        ("1.5Gi", str(3 * 2**29), "1536Mi"),
        ("2e3", "2000", "2e3"),
        ("1000", "1000", "1k"),
        (" 7 ", "7", "7"),
    ],
)
def test_quantities_parse_and_print_as_the_api_server_does(
    text: str, value: str, canonical: str
) -> None:
    assert parse_quantity(text) == Decimal(value)
    assert canonical_quantity(text) == canonical


# --- No-op writes ------------------------------------------------------------------------------


def test_noop_writes_keep_the_resource_version_and_send_no_event(
    server: EmulatorServer, custom: Any
) -> None:
    emulator = server.emulator
    emulator.create_object(widget("w1", app="a"))
    emulator.create_object(job_manifest())
    widget_path = "/apis/example.dev/v1/namespaces/default/widgets/w1"
    job_path = f"{JOBS_PATH}/j1"
    merge, json_patch = "application/merge-patch+json", "application/json-patch+json"
    since = emulator.resource_version

    noops: list[tuple[str, Any, str]] = [
        (widget_path, {"spec": {"size": 1}}, merge),
        (widget_path, {"metadata": {"annotations": {"kopf.zalando.org/x": None}}}, merge),
        (widget_path, {"metadata": {"labels": {"app": "a"}, "finalizers": []}}, merge),
        (widget_path, [{"op": "replace", "path": "/spec/size", "value": 1}], json_patch),
        (
            job_path,
            {
                "spec": {
                    "template": {
                        "spec": {
                            "$setElementOrder/containers": [{"name": "main"}],
                            "containers": [{"name": "main", "image": "busybox:1.37"}],
                        }
                    }
                }
            },
            "application/strategic-merge-patch+json",
        ),
    ]
    for path, patch, content_type in noops:
        code, _, body = http_request(server, "PATCH", path, patch, content_type)
        assert code == 200, body
        assert int(body["metadata"]["resourceVersion"]) <= int(since), (patch, body)
    stored = emulator.get_object(WIDGETS, "default", "w1")
    assert stored is not None
    assert (
        custom.replace_namespaced_custom_object(GROUP, VERSION, "default", "widgets", "w1", stored)[
            "metadata"
        ]["resourceVersion"]
        == stored["metadata"]["resourceVersion"]
    )
    assert emulator.resource_version == since
    job = emulator.get_object("batch/v1/jobs", "default", "j1")
    assert job is not None and "$setElementOrder/containers" not in job["spec"]["template"]["spec"]

    # Only the real change is seen by a watch resuming from before the no-ops.
    http_request(server, "PATCH", widget_path, {"spec": {"size": 2}}, merge)
    base = "/apis/example.dev/v1/namespaces/default/widgets?watch=true&timeoutSeconds=0.2"
    events = [
        (e["type"], e["object"]["spec"]["size"])
        for e in watch_lines(server, f"{base}&resourceVersion={since}")
    ]
    assert events == [("MODIFIED", 2)]


# --- Content type after pods/log ---------------------------------------------------------------


def test_object_gets_answer_json_after_a_pod_log(
    emulator_server: EmulatorServer, kube_client: kubernetes.client.ApiClient
) -> None:
    emulator = emulator_server.emulator
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p1"},
        "spec": {"containers": ONE_CONTAINER},
    }
    emulator.create_object(pod)
    emulator.set_pod_log("default", "p1", "done\n")
    core = kubernetes.client.CoreV1Api(kube_client)
    for _ in range(2):
        assert core.read_namespaced_pod_log("p1", "default") == "done\n"
        for path in ("/api/v1/namespaces/default/pods/p1", "/api/v1/namespaces/default/pods"):
            conn = http.client.HTTPConnection("127.0.0.1", emulator_server.port, timeout=10)
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.headers["Content-Type"].startswith("application/json"), path
            json.loads(response.read())
            conn.close()
        read = core.read_namespaced_pod("p1", "default")
        assert read.metadata is not None and read.metadata.name == "p1"


def test_a_followed_pod_log_streams_later_lines_until_the_container_stops(
    emulator_server: EmulatorServer,
) -> None:
    emulator = emulator_server.emulator
    running = {"name": "main", "state": {"running": {"startedAt": "2026-01-30T23:15:00Z"}}}
    emulator.create_object(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p1", "namespace": "default"},
            "spec": {"containers": ONE_CONTAINER},
        }
    )
    emulator.patch_status("v1/pods", "default", "p1", {"containerStatuses": [running]})
    emulator.set_pod_log("default", "p1", "first\n", container="main")
    conn = http.client.HTTPConnection("127.0.0.1", emulator_server.port, timeout=10)
    conn.request("GET", "/api/v1/namespaces/default/pods/p1/log?container=main&follow=true")
    response = conn.getresponse()

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.readline() == b"first\n"  # sent before the container ends
    emulator.append_pod_log("default", "p1", "second\n", container="main")
    assert response.readline() == b"second\n"
    stopped = {"name": "main", "state": {"terminated": {"exitCode": 0}}}
    emulator.patch_status("v1/pods", "default", "p1", {"containerStatuses": [stopped]})
    assert response.read() == b""  # the stream ends with the container
    conn.close()
    # Not following: the log so far, at once, even while the container runs.
    emulator.patch_status("v1/pods", "default", "p1", {"containerStatuses": [running]})
    conn = http.client.HTTPConnection("127.0.0.1", emulator_server.port, timeout=10)
    conn.request("GET", "/api/v1/namespaces/default/pods/p1/log?container=main")
    assert conn.getresponse().read() == b"first\nsecond\n"
    conn.close()


# --- Opt-in RBAC -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "verb", "resource", "name", "namespace"),
    [
        ("GET", "/api/v1/namespaces/ns/pods", "list", "pods", "", "ns"),
        ("GET", "/api/v1/namespaces/ns/pods?watch=true", "watch", "pods", "", "ns"),
        ("GET", "/api/v1/namespaces/ns/pods?watch=1", "watch", "pods", "", "ns"),
        ("GET", "/api/v1/namespaces/ns/pods?watch=false", "list", "pods", "", "ns"),
        ("GET", "/api/v1/watch/namespaces/ns/pods", "watch", "pods", "", "ns"),
        ("GET", "/api/v1/pods?fieldSelector=metadata.name%3Dp1", "list", "pods", "p1", ""),
        ("GET", "/api/v1/namespaces/ns/pods/p1", "get", "pods", "p1", "ns"),
        ("GET", "/api/v1/namespaces/ns/pods/p1/log", "get", "pods/log", "p1", "ns"),
        ("POST", "/apis/batch/v1/namespaces/ns/jobs", "create", "jobs", "", "ns"),
        ("PUT", "/apis/batch/v1/namespaces/ns/jobs/j/status", "update", "jobs/status", "j", "ns"),
        ("PATCH", "/apis/batch/v1/namespaces/ns/jobs/j", "patch", "jobs", "j", "ns"),
        ("DELETE", "/apis/batch/v1/namespaces/ns/jobs/j", "delete", "jobs", "j", "ns"),
        ("DELETE", "/apis/batch/v1/namespaces/ns/jobs", "deletecollection", "jobs", "", "ns"),
        ("GET", "/api/v1/namespaces", "list", "namespaces", "", ""),
        ("GET", "/api/v1/namespaces/ns", "get", "namespaces", "ns", "ns"),
        ("PUT", "/api/v1/namespaces/ns/finalize", "update", "namespaces/finalize", "ns", "ns"),
    ],
)
def test_rbac_request_attributes(
    method: str, path: str, verb: str, resource: str, name: str, namespace: str
) -> None:
    route, _, query = path.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&") if part)
    params = {k: v.replace("%3D", "=") for k, v in params.items()}
    attributes = request_attributes(method, route, params)
    assert attributes.resource_request
    assert (attributes.verb, attributes.combined_resource) == (verb, resource)
    assert (attributes.name, attributes.namespace) == (name, namespace)
    assert not request_attributes("GET", "/apis/batch/v1", {}).resource_request


def test_rbac_rules_match_as_the_rbac_authorizer_does() -> None:
    def allowed(rule: PolicyRule, method: str, path: str, **query: str) -> bool:
        return rule.allows(request_attributes(method, path, query))

    pods = "/api/v1/namespaces/ns/pods"
    assert allowed(
        PolicyRule(verbs=("*",), api_groups=("",), resources=("*",)), "GET", f"{pods}/p/log"
    )
    subresources = PolicyRule(verbs=("get",), api_groups=("",), resources=("*/log",))
    assert allowed(subresources, "GET", f"{pods}/p/log")
    assert not allowed(subresources, "GET", f"{pods}/p")
    named = PolicyRule(
        verbs=("get", "list"), api_groups=("",), resources=("pods",), resource_names=("p",)
    )
    assert allowed(named, "GET", f"{pods}/p")
    assert not allowed(named, "GET", f"{pods}/q")
    assert not allowed(named, "GET", pods)  # a list names nothing...
    assert allowed(named, "GET", pods, fieldSelector="metadata.name=p")  # ...unless selected
    urls = PolicyRule(verbs=("get",), non_resource_urls=("/healthz", "/metrics/*"))
    assert allowed(urls, "GET", "/metrics/cadvisor") and not allowed(urls, "GET", "/version")


@pytest.fixture
def operator_rbac(emulator_server: EmulatorServer) -> RbacPolicy:
    """RBAC on, with the operator's ClusterRole read from kustomize/rbac/role.yaml."""
    policy = RbacPolicy.from_kustomize(KUSTOMIZE_RBAC, role="backlog-operator-manager")
    emulator_server.emulator.enable_rbac(policy)
    return policy


def test_rbac_is_off_by_default(
    emulator_server: EmulatorServer, kube_client: kubernetes.client.ApiClient
) -> None:
    core = kubernetes.client.CoreV1Api(kube_client)
    assert core.list_namespaced_secret("default").items == []
    assert emulator_server.emulator.rbac is None


def test_rbac_forbids_what_the_operator_role_does_not_grant(
    emulator_server: EmulatorServer,
    kube_client: kubernetes.client.ApiClient,
    operator_rbac: RbacPolicy,
) -> None:
    assert operator_rbac.user == "system:serviceaccount:backlog-operator-system:backlog-operator"
    emulator = emulator_server.emulator
    emulator.create_object(job_manifest())
    emulator.create_object(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p1"},
            "spec": {"containers": ONE_CONTAINER},
        }
    )
    core = kubernetes.client.CoreV1Api(kube_client)
    batch = kubernetes.client.BatchV1Api(kube_client)

    # Granted: reading pods, reading one secret (get only), listing and deleting jobs.
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items if p.metadata] == [
        "p1"
    ]
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_secret("token", "default")
    assert missing.value.status == 404  # authorized, then not found

    # Not granted: list secrets (only get is), delete a pod (only read), read a pod's status.
    with pytest.raises(ApiException) as listing:
        core.list_namespaced_secret("default")
    assert listing.value.status == 403
    assert error_status(listing.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'secrets is forbidden: User "system:serviceaccount:backlog-operator-system:'
        'backlog-operator" cannot list resource "secrets" in API group "" in the namespace '
        '"default"',
        "reason": "Forbidden",
        "details": {"kind": "secrets"},
        "code": 403,
    }
    with pytest.raises(ApiException) as deleting:
        core.delete_namespaced_pod("p1", "default")
    status = error_status(deleting.value)
    assert (deleting.value.status, status["reason"]) == (403, "Forbidden")
    assert status["message"].startswith('pods "p1" is forbidden: User ')
    assert 'cannot delete resource "pods" in API group ""' in status["message"]
    assert status["details"] == {"name": "p1", "kind": "pods"}
    assert emulator.get_object("v1/pods", "default", "p1") is not None
    with pytest.raises(ApiException) as pod_status:
        core.read_namespaced_pod_status("p1", "default")
    assert 'cannot get resource "pods/status"' in error_status(pod_status.value)["message"]
    # A subresource granted alone: a Pod's log (a retry is told the failed task's), not the Pod.
    emulator.set_pod_log("default", "p1", "tests failed\n")
    assert core.read_namespaced_pod_log("p1", "default") == "tests failed\n"
    with pytest.raises(ApiException) as reading:
        core.read_namespaced_pod("p1", "default")
    assert 'cannot get resource "pods" in API group' in error_status(reading.value)["message"]

    # Jobs: deletecollection and cluster-wide watch of configmaps are not granted either.
    code, _, status = http_request(emulator_server, "DELETE", JOBS_PATH)
    assert code == 403 and "cannot deletecollection resource" in status["message"]
    code, _, status = http_request(emulator_server, "GET", "/api/v1/configmaps?watch=true")
    assert code == 403 and status["message"].endswith("at the cluster scope")
    assert [j.metadata.name for j in batch.list_namespaced_job("default").items if j.metadata] == [
        "j1"
    ]
    batch.delete_namespaced_job("j1", "default")
    assert emulator.get_object("batch/v1/jobs", "default", "j1") is None

    # Discovery is every authenticated user's; the admin endpoint is not authorized at all.
    assert "pods" in emulator_server.kubectl("api-resources", "-o", "name").stdout.split()
    denied = emulator_server.kubectl("get", "secrets", check=False)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr
    assert emulator_server.kubectl("delete", "pod", "p1", admin=True).returncode == 0

    emulator.enable_rbac(None)
    assert core.list_namespaced_secret("default").items == []


def test_rbac_apply_that_creates_needs_create(emulator_server: EmulatorServer) -> None:
    role: dict[str, Any] = {
        "kind": "ClusterRole",
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"]}],
    }
    emulator = emulator_server.emulator
    emulator.enable_rbac(RbacPolicy.from_roles([role], user="alice"))
    path = "/api/v1/namespaces/default/configmaps/cm?fieldManager=test"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
    apply = "application/apply-patch+yaml"
    code, _, status = http_request(emulator_server, "PATCH", path, body, apply)
    assert code == 403
    assert status["message"] == (
        'configmaps "cm" is forbidden: User "alice" cannot create resource "configmaps" in API '
        'group "" in the namespace "default"'
    )
    role["rules"][0]["verbs"].append("create")
    emulator.enable_rbac(RbacPolicy.from_roles([role], user="alice"))
    assert http_request(emulator_server, "PATCH", path, body, apply)[0] == 201
    assert http_request(emulator_server, "PATCH", path, body, apply)[0] == 200


def test_rbac_owner_references_permission_enforcement(server: EmulatorServer) -> None:
    # OpenShift's OwnerReferencesPermissionEnforcement: blockOwnerDeletion on an ownerReference
    # needs `update` on the owner's finalizers subresource.
    emulator = server.emulator
    owner = emulator.create_object(widget("w1"))
    reads = {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "patch"]}
    finalizers = {"apiGroups": [GROUP], "resources": ["widgets/finalizers"], "verbs": ["update"]}

    def create_owned(name: str, rules: list[dict[str, Any]], block: bool = True) -> tuple[int, Any]:
        emulator.enable_rbac(
            RbacPolicy.from_roles(
                [{"kind": "ClusterRole", "rules": rules}],
                user="operator",
                owner_references_enforcement=True,
            )
        )
        body = job_manifest(name)
        body["metadata"]["ownerReferences"] = [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Widget",
                "name": "w1",
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": block,
            }
        ]
        code, _, status = http_request(server, "POST", JOBS_PATH, body)
        return code, status

    code, status = create_owned("j1", [reads])
    assert code == 403
    assert status["message"] == (
        'jobs.batch "j1" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers '
        "to a resource you can't set finalizers on: , <nil>"
    )
    assert create_owned("j2", [reads], block=False)[0] == 201
    assert create_owned("j3", [reads, finalizers])[0] == 201
    # Changing the ownerReferences of an existing object needs `delete` on it.
    code, _, status = http_request(
        server,
        "PATCH",
        f"{JOBS_PATH}/j2",
        {"metadata": {"ownerReferences": None}},
        "application/merge-patch+json",
    )
    assert code == 403 and "can't delete" in status["message"]


# --- Fault injection ---------------------------------------------------------------------------


def test_faults_answer_status_codes_and_change_nothing(
    emulator_server: EmulatorServer, kube_client: kubernetes.client.ApiClient
) -> None:
    emulator = emulator_server.emulator
    batch = kubernetes.client.BatchV1Api(kube_client)
    fault = emulator.faults.add(verb="create", resource="jobs", status=500, times=1)
    with pytest.raises(ApiException) as failed:
        batch.create_namespaced_job("default", job_manifest())  # type: ignore[arg-type]  # the client sends a dict body as is
    status = error_status(failed.value)
    assert (failed.value.status, status["reason"]) == (500, "InternalError")
    assert emulator.get_object("batch/v1/jobs", "default", "j1") is None
    # `times=1`: the next one passes
    batch.create_namespaced_job("default", job_manifest())  # type: ignore[arg-type]  # the client sends a dict body as is
    assert fault.hits == 1

    emulator.faults.add(verb="patch", resource="jobs/status", status=409, times=1)
    emulator.faults.add(verb="list", resource="jobs", status=429, retry_after=3, times=1)
    emulator.faults.add(verb="get", resource="jobs", name="j1", status=503)
    merge = "application/merge-patch+json"
    code, _, status = http_request(
        emulator_server, "PATCH", f"{JOBS_PATH}/j1/status", {"status": {"active": 1}}, merge
    )
    assert (code, status["reason"]) == (409, "Conflict")
    conn = http.client.HTTPConnection("127.0.0.1", emulator_server.port, timeout=10)
    conn.request("GET", JOBS_PATH)
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert (response.status, response.headers["Retry-After"]) == (429, "3")
    assert (body["reason"], body["details"]["retryAfterSeconds"]) == ("TooManyRequests", 3)
    assert http_request(emulator_server, "GET", JOBS_PATH)[0] == 200
    assert http_request(emulator_server, "GET", f"{JOBS_PATH}/j1")[0] == 503
    assert http_request(emulator_server, "GET", "/api/v1/namespaces/default/configmaps")[0] == 200
    emulator.faults.clear()
    assert http_request(emulator_server, "GET", f"{JOBS_PATH}/j1")[0] == 200
    assert (emulator.get_object("batch/v1/jobs", "default", "j1") or {}).get("status") is None


def test_faults_drop_connections_and_lose_answers(emulator_server: EmulatorServer) -> None:
    emulator = emulator_server.emulator
    emulator.faults.add(verb="create", resource="jobs", drop=True, times=1)
    with pytest.raises(http.client.RemoteDisconnected):
        http_request(emulator_server, "POST", JOBS_PATH, job_manifest())
    assert emulator.get_object("batch/v1/jobs", "default", "j1") is None

    # commit=True: the write happens, then the connection drops (a lost answer); a client that
    # retries meets AlreadyExists, as after a timeout on a real cluster.
    emulator.faults.add(verb="create", resource="jobs", drop=True, commit=True, times=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        http_request(emulator_server, "POST", JOBS_PATH, job_manifest())
    assert emulator.get_object("batch/v1/jobs", "default", "j1") is not None
    code, _, status = http_request(emulator_server, "POST", JOBS_PATH, job_manifest())
    assert (code, status["reason"]) == (409, "AlreadyExists")
    emulator.faults.add(verb="delete", resource="jobs", status=504, commit=True, times=1)
    assert http_request(emulator_server, "DELETE", f"{JOBS_PATH}/j1")[0] == 504
    assert emulator.get_object("batch/v1/jobs", "default", "j1") is None


def test_faults_with_a_probability_are_reproducible(emulator_server: EmulatorServer) -> None:
    def pattern(seed: int) -> list[int]:
        emulator_server.emulator.faults.clear()
        emulator_server.emulator.faults.add(verb="list", status=503, probability=0.3, seed=seed)
        return [http_request(emulator_server, "GET", JOBS_PATH)[0] for _ in range(40)]

    first = pattern(7)
    assert first == pattern(7)
    assert 4 <= first.count(503) <= 20 and first.count(200) + first.count(503) == 40
    assert first != pattern(8)


def test_faults_delay_and_stop_with_the_emulator() -> None:
    with EmulatorServer() as server:
        server.emulator.faults.add(verb="get", resource="namespaces", delay=0.3, times=1)
        started = time.monotonic()
        assert http_request(server, "GET", "/api/v1/namespaces/default")[0] == 200
        assert 0.3 <= time.monotonic() - started < 2
        server.emulator.faults.add(verb="list", resource="namespaces", delay=30)
        results: list[Any] = []

        def slow() -> None:
            try:
                results.append(http_request(server, "GET", "/api/v1/namespaces")[0])
            except (OSError, http.client.HTTPException) as error:
                results.append(error)

        waiting = threading.Thread(target=slow)
        waiting.start()
        time.sleep(0.2)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5  # the delayed request did not hold the server up
    waiting.join(timeout=10)
    assert not waiting.is_alive() and len(results) == 1


def test_fault_arguments_are_checked() -> None:
    faults = FaultInjector()
    for bad in (
        {"verb": "get"},  # nothing to do
        {"verb": "fetch", "status": 500},
        {"status": 200},
        {"status": 500, "drop": True},
        {"status": 500, "times": 0},
        {"status": 500, "probability": 0},
        {"verb": "get", "status": 500, "commit": True},
        {"delay": 120},
    ):
        with pytest.raises(ValueError, match=r"."):
            faults.add(**bad)
    assert len(faults) == 0


def test_kopf_rides_out_watch_faults(server: EmulatorServer) -> None:
    # Injected 503s and 429s on kopf's list and watch: kopf retries, and still handles the object.
    registry = kopf.OperatorRegistry()
    seen: list[str] = []

    @kopf.on.create(GROUP, VERSION, "widgets", registry=registry)
    def created(name: str, **_: Any) -> None:
        seen.append(name)

    emulator = server.emulator
    watches = emulator.faults.add(verb="watch", resource="widgets", status=503, times=2)
    emulator.faults.add(verb="list", resource="widgets", status=429, retry_after=0, times=1)
    with KopfThread(server, registry=registry):
        emulator.create_object(widget("w1"))
        wait_for(lambda: seen, message="kopf did not handle the widget")
        wait_for(lambda: watches.hits == 2, message="kopf did not retry its watch")
    assert seen == ["w1"]
