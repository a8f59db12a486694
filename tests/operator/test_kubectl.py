"""What kubectl users see: `kubectl get` and `kubectl describe` of Goals, Backlogs and
GoalSchedules, run against the API emulator with the project's CRDs and the operator.

kubectl asks the API server for a Table (`Accept: application/json;as=Table;v=v1;
g=meta.k8s.io`) and prints its columns; without one it prints NAME and AGE only. The first part
pins the emulator's Table output to the API server's (so a failure below says whether the CRDs
or the stand-in is wrong); the rest reads kubectl's own output, header and cells.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml

from backlog_operator.api.labels import ANNOTATION_REQUESTED_AT
from tests.operator.test_backlog import LEVIATHAN, backlog
from tests.operator.test_goal_operator import (
    PUBLISHED,
    Cluster,
    goal_manifest,
    running_operator,
)
from tests.support.emulator import (
    EmulatorServer,
    human_duration,
    jsonpath_values,
    table_cell,
    table_version,
)
from tests.support.gitrepos import make_remote

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

NS = "default"
TABLE_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)  # what kubectl 1.32 sends for `kubectl get`
AN_AGE = re.compile(r"^\d+s$")  # what kubectl shows for an object made seconds ago

Json = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# The emulator's Table, as the API server makes it.

THINGS_CRD: Json = {
    "metadata": {"name": "things.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {"kind": "Thing", "plural": "things", "singular": "thing"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {
                        "name": "Ready",
                        "type": "string",
                        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                    },
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "On", "type": "boolean", "jsonPath": ".spec.on"},
                    {"name": "Tags", "type": "string", "jsonPath": ".spec.tags", "priority": 1},
                    {"name": "Seen", "type": "date", "jsonPath": ".status.seen"},
                ],
            }
        ],
    },
}
PLAIN_CRD: Json = {
    "metadata": {"name": "plains.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {"kind": "Plain", "plural": "plains", "singular": "plain"},
        "versions": [
            {
                "name": "v1",
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


def thing(name: str, **spec: Any) -> Json:
    return {
        "apiVersion": "example.dev/v1",
        "kind": "Thing",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def ago(**delta: float) -> str:
    """A time `delta` before now, as the API server writes times."""
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def http_get(server: EmulatorServer, path: str, accept: str) -> tuple[int, Json]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path, headers={"Accept": accept})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, body


@pytest.fixture
def things(emulator_server: EmulatorServer) -> EmulatorServer:
    emulator_server.emulator.register_crd(THINGS_CRD)
    emulator_server.emulator.register_crd(PLAIN_CRD)
    return emulator_server


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (8 * 3600 + 5 * 60, "8h"),
        (47 * 3600, "47h"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (7 * 86400, "7d"),
        (8 * 86400 + 5 * 3600, "8d"),
        (800 * 86400, "2y70d"),
        (3 * 365 * 86400, "3y"),
        (9 * 365 * 86400 + 100 * 86400, "9y"),
    ],
)
def test_ages_are_shown_as_kubectl_shows_them(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_printer_column_jsonpath_finds_what_the_api_server_finds() -> None:
    obj = {
        "status": {
            "conditions": [
                {"type": "Reconciling", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "pullRequest": {"number": 7},
        },
        "spec": {"items": [{"n": 1}, {"n": 2}], "odd.key": "x"},
    }
    assert jsonpath_values(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert jsonpath_values(obj, ".status.conditions[?(@.type!='Ready')].type") == ["Reconciling"]
    assert jsonpath_values(obj, ".status.pullRequest.number") == [7]
    assert jsonpath_values(obj, ".spec.items[*].n") == [1, 2]
    assert jsonpath_values(obj, ".spec.items[-1].n") == [2]
    assert jsonpath_values(obj, ".spec['odd.key']") == ["x"]
    assert jsonpath_values(obj, ".status.missing.deeper") == []  # missing keys find nothing
    with pytest.raises(ValueError, match="unsupported JSONPath"):
        jsonpath_values(obj, ".spec..n")


def test_cells_are_typed_as_the_api_servers_table_convertor_types_them() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert table_cell("string", ["True"], now) == "True"
    assert table_cell("string", [{"b": 1, "a": [True]}], now) == '{"a":[true],"b":1}'
    assert table_cell("string", [False], now) == "false"
    assert table_cell("string", [5.0], now) == "5"
    assert table_cell("integer", [7], now) == 7
    assert table_cell("integer", ["7"], now) is None  # another type: an empty cell
    assert table_cell("integer", [True], now) is None
    assert table_cell("boolean", [True], now) is True
    assert table_cell("date", ["2026-01-01T11:55:00Z"], now) == "5m"
    assert table_cell("date", ["yesterday"], now) == "<invalid>"
    assert table_cell("string", [], now) is None


def test_the_accept_header_chooses_a_table_the_object_or_nothing() -> None:
    assert table_version(TABLE_ACCEPT) == "v1"
    assert table_version("application/json;as=Table;v=v1beta1;g=meta.k8s.io") == "v1beta1"
    assert table_version("application/json") is None
    assert table_version("") is None
    assert table_version(TABLE_ACCEPT, tables=False) is None  # kubectl's fallback
    with pytest.raises(kmock.KubernetesError) as refused:
        table_version("application/json;as=Table;v=v1;g=meta.k8s.io", tables=False)
    assert refused.value.status == 406


def test_a_custom_resource_list_is_a_table_of_its_printer_columns(things: EmulatorServer) -> None:
    api = things.emulator
    stored = api.create_object(thing("a", size=3, on=True, tags=["x", "y"]))
    api.create_object(thing("b", size="big"))
    # Half an hour off a whole hour: the age shown stays the same however slow the test runs.
    seen = ago(days=2, hours=3, minutes=30)
    api.patch_status(
        "example.dev/v1/things",
        NS,
        "a",
        {"conditions": [{"type": "Ready", "status": "True"}], "seen": seen},
    )

    code, table = http_get(things, f"/apis/example.dev/v1/namespaces/{NS}/things", TABLE_ACCEPT)

    assert code == 200
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert table["metadata"]["resourceVersion"] == api.resource_version
    columns = [
        (c["name"], c["type"], c["format"], c["priority"]) for c in table["columnDefinitions"]
    ]
    assert columns == [
        ("Name", "string", "name", 0),
        ("Ready", "string", "", 0),
        ("Size", "integer", "", 0),
        ("On", "boolean", "", 0),
        ("Tags", "string", "", 1),
        ("Seen", "date", "", 0),
    ]
    assert table["columnDefinitions"][2]["description"] == (
        "Custom resource definition column (in JSONPath format): .spec.size"
    )
    rows = {row["cells"][0]: row for row in table["rows"]}
    assert rows["a"]["cells"] == ["a", "True", 3, True, '["x","y"]', "2d3h"]
    assert rows["b"]["cells"] == ["b", None, None, None, None, None]
    partial = rows["a"]["object"]
    assert (partial["kind"], partial["apiVersion"]) == ("PartialObjectMetadata", "meta.k8s.io/v1")
    assert partial["metadata"] == stored["metadata"] | {
        "resourceVersion": partial["metadata"]["resourceVersion"]
    }
    assert "spec" not in partial


def test_one_object_a_row_object_and_the_default_age_column(things: EmulatorServer) -> None:
    api = things.emulator
    stored = api.create_object(thing("a", size=3))
    api.create_object({**thing("p"), "apiVersion": "example.dev/v1", "kind": "Plain"})
    path = f"/apis/example.dev/v1/namespaces/{NS}"

    _, one = http_get(things, f"{path}/things/a?includeObject=Object", TABLE_ACCEPT)
    assert [row["cells"][:3] for row in one["rows"]] == [["a", None, 3]]
    assert one["rows"][0]["object"] == stored
    assert one["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    _, none = http_get(things, f"{path}/things?includeObject=None", TABLE_ACCEPT)
    assert "object" not in none["rows"][0]

    # A CRD without printer columns: the API server's default, Name and Age.
    _, plain = http_get(things, f"{path}/plains", TABLE_ACCEPT)
    assert [c["name"] for c in plain["columnDefinitions"]] == ["Name", "Age"]
    [row] = plain["rows"]
    assert row["cells"][0] == "p" and AN_AGE.match(row["cells"][1])


def test_objects_are_served_as_before_and_built_in_kinds_answer_no_table(
    things: EmulatorServer,
) -> None:
    things.emulator.create_object(thing("a", size=3))
    code, listed = http_get(things, f"/apis/example.dev/v1/namespaces/{NS}/things", "*/*")
    assert (code, listed["kind"]) == (200, "ThingList")
    # A built-in kind's columns are the API server's own code: the object, kubectl falls back.
    code, pods = http_get(things, f"/api/v1/namespaces/{NS}/pods", TABLE_ACCEPT)
    assert (code, pods["kind"]) == (200, "PodList")
    code, refused = http_get(
        things, f"/api/v1/namespaces/{NS}/pods", "application/json;as=Table;v=v1;g=meta.k8s.io"
    )
    assert (code, refused["reason"]) == (406, "NotAcceptable")


def test_a_watch_sends_one_table_per_event_with_the_columns_once(
    things: EmulatorServer,
) -> None:
    api = things.emulator
    api.create_object(thing("a", size=1))
    conn = http.client.HTTPConnection("127.0.0.1", things.port, timeout=10)
    conn.request(
        "GET",
        f"/apis/example.dev/v1/namespaces/{NS}/things?watch=true&resourceVersion=0",
        headers={"Accept": TABLE_ACCEPT},
    )
    response = conn.getresponse()
    try:
        added = json.loads(response.readline())
        api.patch_object("example.dev/v1/things", NS, "a", {"spec": {"size": 2}})
        modified = json.loads(response.readline())
    finally:
        conn.close()
    assert added["type"] == "ADDED" and added["object"]["kind"] == "Table"
    assert len(added["object"]["columnDefinitions"]) == 6
    assert added["object"]["rows"][0]["cells"][:3] == ["a", None, 1]
    assert modified["type"] == "MODIFIED"
    assert modified["object"]["columnDefinitions"] == []
    assert modified["object"]["rows"][0]["cells"][:3] == ["a", None, 2]


# ---------------------------------------------------------------------------------------------
# kubectl's output.


def tables(output: str) -> list[list[dict[str, str]]]:
    """kubectl's human-readable output as tables (one per kind listed), each a list of rows
    keyed by header. Columns are cut where their header starts: kubectl aligns them left."""
    found = []
    for block in re.split(r"\n\s*\n", output.strip()):
        header, *lines = block.splitlines()
        starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
        names = [header[s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
        found.append(
            [
                {
                    name: line[s:e].strip()
                    for name, s, e in zip(names, starts, [*starts[1:], None], strict=True)
                }
                for line in lines
            ]
        )
    return found


def rows_by_name(output: str) -> dict[str, dict[str, str]]:
    [table] = tables(output)
    return {row["NAME"]: row for row in table}


def headers(output: str) -> list[str]:
    return list(tables(output)[0][0])


def test_kubectl_get_goals_shows_ready_phase_task_pr_and_age(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    cluster = Cluster(emulator_server)
    with running_operator(emulator_server):
        cluster.create(goal_manifest("with-task"))
        [job] = cluster.wait_jobs("with-task", 1)
        cluster.finish(job, PUBLISHED)
        cluster.wait_phase("with-task", "Succeeded")
        # Free-form goals (no task id) of one repository: one runs, the next waits for it.
        cluster.create(goal_manifest("free-form", task=None, repo="o/free"))
        cluster.wait_phase("free-form", "Running")
        cluster.create(goal_manifest("waiting", task=None, repo="o/free"))
        cluster.wait_phase("waiting", "Queued")

        listed = emulator_server.kubectl("get", "goals", admin=True).stdout
        wide = emulator_server.kubectl("get", "goals", "-o", "wide", admin=True).stdout

    assert headers(listed) == ["NAME", "READY", "PHASE", "TASK", "PR", "AGE"]
    rows = rows_by_name(listed)
    assert {name: list(row.values())[1:5] for name, row in rows.items()} == {
        "with-task": ["True", "Succeeded", "docs-guide", "707"],
        # The task of a free-form goal is its name, before any Job too.
        "free-form": ["False", "Running", "free-form", ""],
        "waiting": ["False", "Queued", "waiting", ""],
    }
    assert all(AN_AGE.match(row["AGE"]) for row in rows.values()), listed
    assert headers(wide) == [
        "NAME",
        "READY",
        "PHASE",
        "TASK",
        "PR",
        "AGE",
        "ATTEMPTS",
        "REASON",
        "PR URL",
    ]
    published = rows_by_name(wide)["with-task"]
    assert (published["ATTEMPTS"], published["REASON"], published["PR URL"]) == (
        "1",
        "Published",
        "https://github.com/o/r/pull/707",
    )


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_remote(tmp_path, {".backlog/backlog.yaml": LEVIATHAN})


def test_kubectl_gets_and_describes_a_backlog_by_name(
    emulator_server: EmulatorServer, project_crds: object, remote: Path, tmp_path: Path
) -> None:
    api = emulator_server.emulator
    manifest = yaml.safe_dump(backlog("team", str(remote)))
    with running_operator(emulator_server, cache_dir=str(tmp_path / "cache")):
        emulator_server.kubectl("apply", "-f", "-", input=manifest, admin=True)
        first = api.wait_for(lambda: backlog_status(emulator_server).get("lastSyncedCommit"))
        # Sync again: the first sync's Goal now runs, so its task is in progress.
        emulator_server.kubectl(
            "annotate", "backlog", "team", f"{ANNOTATION_REQUESTED_AT}=again", admin=True
        )
        api.wait_for(
            lambda: backlog_status(emulator_server).get("lastHandledReconcileAt") == "again"
        )
        got = emulator_server.kubectl("get", "backlog", "team", admin=True)
        described = emulator_server.kubectl("describe", "backlog", "team", admin=True)
        everything = emulator_server.kubectl("get", "backlog-operator", admin=True)

    assert headers(got.stdout) == ["NAME", "READY", "READY TASKS", "IN PROGRESS", "COMMIT", "AGE"]
    row = rows_by_name(got.stdout)["team"]
    # ci-cache runs (its Goal), docs-intro is ready, api-docs waits for ci-cache.
    assert list(row.values())[1:5] == ["True", "1", "1", first[:7]]
    assert AN_AGE.match(row["AGE"])

    assert re.search(r"^Name:\s+team$", described.stdout, re.MULTILINE)
    assert re.search(r"^Kind:\s+Backlog$", described.stdout, re.MULTILINE)
    assert re.search(r"^\s+Ready Count:\s+1$", described.stdout, re.MULTILINE)
    assert re.search(r"^Events:\s*$", described.stdout, re.MULTILINE)

    # The category: every kind of the project, each in its own table.
    listed = tables(everything.stdout)
    assert [sorted(row["NAME"] for row in table) for table in listed] == [
        ["backlog.backlog.dev/team"],
        ["goal.backlog.dev/team-ci-cache"],
    ]
    assert list(listed[1][0].values())[2:4] == ["Running", "ci-cache"]


def backlog_status(server: EmulatorServer) -> Json:
    found = server.emulator.get_object("backlog.dev/v1alpha1/backlogs", NS, "team") or {}
    status: Json = found.get("status") or {}
    return status


def test_kubectl_get_goalschedules_shows_them_as_cronjobs(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    api = emulator_server.emulator
    template = {
        "spec": {
            "repository": {"url": "https://github.com/o/r.git"},
            "task": {"image": "busybox:1.37", "command": ["true"]},
        }
    }
    for name, cron in (("nightly", "0 3 * * *"), ("hourly", "@hourly")):
        api.create_object(
            {
                "apiVersion": "backlog.dev/v1alpha1",
                "kind": "GoalSchedule",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"schedule": cron, "goalTemplate": template, "suspend": name == "hourly"},
            }
        )
    last = ago(days=3, hours=12, minutes=30)  # shown as 3d12h however slow the test runs
    # The status as the operator writes it (its tests check that it does).
    api.patch_status(
        "backlog.dev/v1alpha1/goalschedules",
        NS,
        "nightly",
        {
            "lastScheduleTime": last,
            "active": [{"name": "nightly-1"}, {"name": "nightly-2"}],
            "activeCount": 2,
        },
    )

    listed = emulator_server.kubectl("get", "goalschedules", admin=True).stdout

    assert headers(listed) == ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"]
    rows = rows_by_name(listed)
    assert list(rows["nightly"].values())[1:5] == ["0 3 * * *", "false", "2", "3d12h"]
    assert list(rows["hourly"].values())[1:5] == ["@hourly", "true", "", ""]


def test_every_kind_is_in_the_category_and_none_is_mistaken_for_another(
    emulator_server: EmulatorServer, project_crds: object
) -> None:
    """`backlog` was the category of all three kinds, so `kubectl get backlog team` asked for a
    Backlog, a Goal and a GoalSchedule named team: "you must specify only one resource"."""
    api = emulator_server.emulator
    api.create_object(goal_manifest("team"))
    api.create_object(backlog("team", "https://github.com/o/r.git"))

    for command in (("get", "backlog", "team"), ("describe", "backlog", "team")):
        done = emulator_server.kubectl(*command, admin=True, check=False)
        assert done.returncode == 0, done.stderr
    described = emulator_server.kubectl("describe", "bl", "team", admin=True).stdout
    assert re.search(r"^Kind:\s+Backlog$", described, re.MULTILINE)
    names = emulator_server.kubectl("get", "backlog-operator", "-o", "name", admin=True)
    assert names.stdout.split() == ["backlog.backlog.dev/team", "goal.backlog.dev/team"]
