"""Two replicas, one active: two `backlogctl operator` processes (`OperatorProcess`, as the
Deployment's two Pods run them) against the emulator, electing a leader on the Lease
`backlog-operator` in the operator's namespace, under the bundle's RBAC (the manager
ClusterRole and the leader election Role, nothing more) and strict validation.

The test plays the Job controller through the emulator's own API (never authorized, never a
request of an operator). Every Job create and every Lease write is recorded as the emulator
stores it (`ElectionEmulator`), so that the checks read what happened, not how long it took:
which replica held the Lease when, one Job per goal, every goal Succeeded. The waits have upper
bounds only a stuck replica reaches.
"""

from __future__ import annotations

import contextlib
import copy
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from backlog_operator.api.labels import LABEL_GOAL_UID
from backlog_operator.api.result import Outcome, WorkerResult
from backlog_operator.controller.main import LOST_LEASE_EXIT
from tests.operator.conftest import OPERATOR_ROLE, RBAC_DIR
from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.github_standin import free_port
from tests.support.operator_process import OperatorProcess
from tests.support.rbac import RbacPolicy
from tests.unit.test_manifests import LEADER_ELECTION_ROLE

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
JOBS = "batch/v1/jobs"
LEASES = "coordination.k8s.io/v1/leases"
LEASE_NS = "backlog-operator-system"
LEASE = "backlog-operator"
# Shorter than the defaults (12, 8, 2) where a test waits out an expiry: the protocol is the
# same, the wait shorter. The graceful hand-over runs on the defaults.
QUICK_LEASE = {
    "LEASE_DURATION_SECONDS": "4",
    "RENEW_DEADLINE_SECONDS": "3",
    "RETRY_PERIOD_SECONDS": "0.5",
}
# Upper bounds only a stuck replica reaches (a takeover: the lease's expiry plus a retry).
TAKEOVER_WITHIN = 15.0
START_WITHIN = 60.0
DONE_WITHIN = 60.0

Json = dict[str, Any]


class ElectionEmulator(HardenedEmulator):
    """The emulator, recording every Job create and every Lease write as it is stored."""

    job_creates: list[Json]
    lease_writes: list[Json]

    def create_object(self, manifest: Mapping[str, Any], **kwargs: Any) -> Json:
        created = super().create_object(manifest, **kwargs)
        self._record(created)
        return created

    def replace_object(
        self, resource: Any, namespace: str | None, name: str, obj: Mapping[str, Any], **kw: Any
    ) -> Json:
        stored = super().replace_object(resource, namespace, name, obj, **kw)
        self._record(stored)
        return stored

    def _record(self, stored: Json) -> None:
        if stored.get("kind") == "Job":
            self.job_creates.append(copy.deepcopy(stored))
        elif stored.get("kind") == "Lease":
            self.lease_writes.append(copy.deepcopy(stored["spec"]))


@pytest.fixture
def emulator_server() -> Iterator[EmulatorServer]:
    emulator = ElectionEmulator()
    emulator.job_creates, emulator.lease_writes = [], []
    with EmulatorServer(emulator) as server:
        yield server


@pytest.fixture
def api(emulator: HardenedEmulator, project_crds: object) -> ElectionEmulator:
    """Strict, under the manager ClusterRole and the leader election Role (in LEASE_NS only)."""
    assert isinstance(emulator, ElectionEmulator)
    documents = [
        yaml.safe_load((RBAC_DIR / name).read_text(encoding="utf-8"))
        for name in ("role.yaml", "leader_election_role.yaml")
    ]
    assert [d["metadata"]["name"] for d in documents] == [OPERATOR_ROLE, LEADER_ELECTION_ROLE]
    user = RbacPolicy.from_kustomize(RBAC_DIR, role=OPERATOR_ROLE).user
    emulator.enable_rbac(RbacPolicy.from_roles(documents, user=user))
    emulator.create_object(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NS}}
    )
    emulator.request_history = None  # every request kept: what the standby asked is counted
    return emulator


def replica(
    server: EmulatorServer, pod: str, tmp_path: Path, stack: contextlib.ExitStack, **more: str
) -> OperatorProcess:
    """A replica as the bundle runs it (leader election on, its Pod's name), not started."""
    settings = {
        "LEADER_ELECTION": "true",
        "LEADER_ELECTION_NAMESPACE": LEASE_NS,
        "POD_NAME": pod,
        "MAX_RUNNING": "2",
        "REQUEUE_SECONDS": "0.5",
        **more,
    }
    process = OperatorProcess(server, settings, log=tmp_path / f"{pod}.log")
    stack.callback(process.stop)
    return process


def goal(index: int) -> Json:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {"name": f"g{index}", "namespace": NS},
        "spec": {
            "repository": {"url": f"https://github.com/o/repo-{index}.git"},
            "backlog": {"taskId": f"t{index}"},
            "task": {"image": "busybox:1.37", "command": ["true"]},
        },
    }


def holder(api: HardenedEmulator) -> str:
    lease = api.get_object(LEASES, LEASE_NS, LEASE) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def writes_by(api: ElectionEmulator, pod: str) -> list[Json]:
    return [spec for spec in api.lease_writes if spec["holderIdentity"].startswith(f"{pod}_")]


def when(spec: Json, field: str) -> datetime:
    return datetime.fromisoformat(spec[field].replace("Z", "+00:00"))


def unfinished(api: HardenedEmulator) -> list[Json]:
    return [j for j in api.list_objects(JOBS, NS) if not (j.get("status") or {}).get("conditions")]


def finish(api: HardenedEmulator, job: Json) -> None:
    """The Job controller and kubelet: the Job's Pod runs, publishes, the Job completes."""
    name = job["metadata"]["name"]
    task = "t" + name.split("-")[0].removeprefix("g")  # goal gN runs task tN
    pod = api.start_job(NS, name)
    done = WorkerResult(outcome=Outcome.PUBLISHED, task_id=task, branch=f"backlog/{task}-1")
    api.finish_pod(NS, pod["metadata"]["name"], messages={"publish": done.to_json()})
    api.complete_job(NS, name, succeeded=True)


def phases(api: HardenedEmulator) -> dict[str, str | None]:
    return {
        g["metadata"]["name"]: (g.get("status") or {}).get("phase")
        for g in api.list_objects(GOALS, NS)
    }


def logs(tmp_path: Path) -> str:
    return "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
        for path in sorted(tmp_path.glob("operator-*.log"))
    )


def get(port: int, path: str) -> tuple[int, str] | None:
    """GET http://127.0.0.1:port/path: (status, body); None while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()
    except OSError:
        return None


def leader_status(port: int) -> float | None:
    """`leader_election_master_status{name="backlog-operator"}` as scraped."""
    answer = get(port, "/metrics")
    assert answer is not None and answer[0] == 200
    for line in answer[1].splitlines():
        if line.startswith(f'leader_election_master_status{{name="{LEASE}"}}'):
            return float(line.split()[-1])
    return None


def standing_by(api: ElectionEmulator, log: Path) -> None:
    """Wait until the replica logging to `log` waits for the Lease, and three more renewals of
    the leader (a retry period each) have passed: it has tried as often meanwhile."""
    api.wait_for(
        lambda: log.is_file() and "waits for Lease" in log.read_text(errors="replace"),
        timeout=START_WITHIN,
    )
    renewals = len(api.lease_writes)
    api.wait_for(lambda: len(api.lease_writes) >= renewals + 3)


def goal_reads(api: HardenedEmulator) -> int:
    """Lists and watches of Goals any replica made (kopf's, the start-up listing's)."""
    return sum(
        1
        for request in list(api)
        if request.method.value == "GET" and request.url.path.endswith("/goals")
    )


# -------------------------------------------------------------------- SIGKILL: a takeover


def test_the_standby_takes_over_a_killed_leader_with_no_duplicate_job_and_no_lost_goal(
    emulator_server: EmulatorServer, api: ElectionEmulator, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        a = replica(emulator_server, "operator-a", tmp_path, stack, **QUICK_LEASE)
        b = replica(emulator_server, "operator-b", tmp_path, stack, **QUICK_LEASE)
        a.start()
        api.wait_for(lambda: holder(api).startswith("operator-a_"), timeout=START_WITHIN)
        for index in range(4):
            api.create_object(goal(index))
        # Two goals run (MAX_RUNNING), one ends, the next starts: the leader is at work.
        [first, _] = api.wait_for(
            lambda: len(unfinished(api)) == 2 and unfinished(api), timeout=START_WITHIN
        )
        listed = goal_reads(api)
        b.start()
        standing_by(api, tmp_path / "operator-b.log")
        assert goal_reads(api) == listed, "the standby read Goals"
        finish(api, first)
        api.wait_for(
            lambda: len(api.job_creates) == 3 and len(unfinished(api)) == 2,
            timeout=DONE_WITHIN,
            message=lambda: f"{phases(api)}\n{logs(tmp_path)}",
        )
        a.kill()  # mid-run: two goals running, one waiting
        # One of them ends while no replica leads: the next leader must read it from its Job.
        finish(api, unfinished(api)[0])
        api.wait_for(
            lambda: holder(api).startswith("operator-b_"),
            timeout=TAKEOVER_WITHIN,
            message=lambda: f"the standby did not take over: {holder(api)!r}\n{logs(tmp_path)}",
        )

        def all_succeeded() -> bool:
            for job in unfinished(api):  # the Job controller: every Job runs to success
                finish(api, job)
            return set(phases(api).values()) == {"Succeeded"}

        api.wait_for(
            all_succeeded, timeout=DONE_WITHIN, message=lambda: f"{phases(api)}\n{logs(tmp_path)}"
        )
        assert b.running, "the new leader stopped"

    # 0 duplicate Jobs: one Job create per goal, the old leader's and the new one's together.
    owners = [job["metadata"]["labels"][LABEL_GOAL_UID] for job in api.job_creates]
    assert len(owners) == 4 and len(set(owners)) == 4, owners
    # The Lease: b took it over once a's lease had expired, never before.
    a_writes, b_writes = writes_by(api, "operator-a"), writes_by(api, "operator-b")
    taken = b_writes[0]
    assert taken["leaseTransitions"] == a_writes[-1]["leaseTransitions"] + 1
    lease = timedelta(seconds=a_writes[-1]["leaseDurationSeconds"])
    assert when(taken, "acquireTime") >= when(a_writes[-1], "renewTime") + lease
    assert all(w["acquireTime"] == taken["acquireTime"] for w in b_writes), "renewals keep it"


# ----------------------------------------------- SIGTERM: a release; readiness; a lost Lease


def test_a_graceful_stop_releases_the_lease_and_the_standby_takes_over_at_once(
    emulator_server: EmulatorServer, api: ElectionEmulator, tmp_path: Path
) -> None:
    ports = {"operator-a": free_port(), "operator-b": free_port()}
    with contextlib.ExitStack() as stack:
        a, b = (
            replica(
                emulator_server,
                pod,
                tmp_path,
                stack,
                METRICS_PORT=str(port),
                METRICS_BIND_ADDRESS="127.0.0.1",
            )
            for pod, port in ports.items()
        )
        a.start()
        pa, pb = ports["operator-a"], ports["operator-b"]
        api.wait_for(lambda: get(pa, "/readyz") == (200, "ok\n"), timeout=START_WITHIN)
        assert holder(api).startswith("operator-a_")
        # The leader acts (its watches are up once it has made the goal's Job).
        api.create_object(goal(0))
        [job] = api.wait_for(lambda: unfinished(api), timeout=DONE_WITHIN)
        listed = goal_reads(api)
        b.start()
        answer = api.wait_for(lambda: get(pb, "/readyz"), timeout=START_WITHIN)
        assert answer == (503, "standby: another replica is active\n")
        assert (leader_status(pa), leader_status(pb)) == (1.0, 0.0)
        # The standby lists and watches nothing (kopf not started).
        standing_by(api, tmp_path / "operator-b.log")
        assert get(pb, "/readyz") == (503, "standby: another replica is active\n")
        assert goal_reads(api) == listed, "the standby read Goals"

        assert a.terminate() == 0
        released = api.lease_writes[-1]
        assert released["holderIdentity"] == ""
        assert released["leaseDurationSeconds"] == 1
        api.wait_for(
            lambda: holder(api).startswith("operator-b_"),
            timeout=TAKEOVER_WITHIN,
            message=lambda: logs(tmp_path),
        )
        # Taken before a's lease would have expired: handed over, not waited out.
        a_writes = writes_by(api, "operator-a")
        expiry = when(a_writes[-1], "renewTime") + timedelta(seconds=15)
        assert when(writes_by(api, "operator-b")[0], "acquireTime") < expiry
        api.wait_for(lambda: get(pb, "/readyz") == (200, "ok\n"), timeout=START_WITHIN)
        assert leader_status(pb) == 1.0
        # The new leader adopts the running Job and carries its goal to its end.
        finish(api, job)
        api.wait_for(lambda: phases(api) == {"g0": "Succeeded"}, timeout=DONE_WITHIN)
        assert len(api.job_creates) == 1

        # Another holder in the Lease (a replica that believes b's lease expired): b stops at
        # once, exiting, as controller-runtime's managers do; its Pod starts it again.
        stolen = api.get_object(LEASES, LEASE_NS, LEASE)
        assert stolen is not None
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        stolen["spec"].update(holderIdentity="intruder", renewTime=now, leaseDurationSeconds=60)
        api.replace_object(LEASES, LEASE_NS, LEASE, stolen)
        assert b.wait_dead(TAKEOVER_WITHIN) == LOST_LEASE_EXIT


def test_leader_election_off_runs_alone_and_touches_no_lease(
    emulator_server: EmulatorServer, api: ElectionEmulator, tmp_path: Path
) -> None:
    """`backlogctl operator` run by hand: no Lease, no election, it acts at once."""
    with OperatorProcess(emulator_server, {}, log=tmp_path / "operator-alone.log"):
        api.create_object(goal(0))
        [job] = api.wait_for(lambda: unfinished(api), timeout=START_WITHIN)
        finish(api, job)
        api.wait_for(lambda: phases(api) == {"g0": "Succeeded"}, timeout=DONE_WITHIN)
    assert api.get_object(LEASES, LEASE_NS, LEASE) is None
    assert api.lease_writes == []
