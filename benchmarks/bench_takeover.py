"""Two replicas, one active: how long the standby takes to act after the leader goes.

Two `backlogctl operator` processes (leader election on, the bundle's durations unless
`--lease`, `--renew` and `--retry` say otherwise) against the API emulator served from this
process. Each round:

- crash: the leader is SIGKILLed; seconds until the standby holds the Lease, and until a Goal
  created right after the kill has its Job (the new leader's start-up listing included);
- graceful: the leader is SIGTERMed (as a rollout or a drain stops it); the same two figures,
  from the signal.

The baseline, measured in the same run: one operator with leader election off, started with
the same Goal waiting (what a single replica costs once it is running again): seconds from its
start to that Goal's Job. Each figure is printed beside its ratio to that baseline, and the
crash's takeover also beside the lease duration (what bounds it). Prints, asserts nothing.

Run: .venv/bin/python benchmarks/bench_takeover.py [--rounds N] [--lease S] [--renew S]
     [--retry S]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT))

from tests.support.emulator import EmulatorServer, HardenedEmulator  # noqa: E402
from tests.support.operator_process import OperatorProcess  # noqa: E402

NS = "default"
LEASE_NS = "backlog-operator-system"
POLL = 0.02


def goal(name: str) -> dict[str, object]:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "repository": {"url": f"https://github.com/o/{name}.git"},
            "backlog": {"taskId": name},
            "task": {"image": "busybox:1.37", "command": ["true"]},
        },
    }


def until(predicate: Callable[[], object], timeout: float = 120.0) -> float:
    """Seconds until `predicate()` holds (polled every POLL)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("gave up waiting")
        time.sleep(POLL)
    return time.monotonic() - start


class Bench:
    def __init__(self, server: EmulatorServer, folder: Path, timing: dict[str, str]) -> None:
        self.server, self.api, self.folder = server, server.emulator, folder
        self.timing = timing
        self.goals = 0

    def holder(self) -> str:
        lease = self.api.get_object("coordination.k8s.io/v1/leases", LEASE_NS, "backlog-operator")
        return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")

    def has_job(self, name: str) -> bool:
        return any(
            job["metadata"]["name"].startswith(f"{name}-")
            for job in self.api.list_objects("batch/v1/jobs", NS)
        )

    def new_goal(self) -> str:
        self.goals += 1
        name = f"g{self.goals}"
        self.api.create_object(goal(name))
        return name

    def replica(self, pod: str, stack: contextlib.ExitStack, election: bool) -> OperatorProcess:
        settings = {"MAX_RUNNING": "1000", "REQUEUE_SECONDS": "1"}
        if election:
            settings |= {
                "LEADER_ELECTION": "true",
                "LEADER_ELECTION_NAMESPACE": LEASE_NS,
                "POD_NAME": pod,
                **self.timing,
            }
        process = OperatorProcess(self.server, settings, log=self.folder / f"{pod}.log")
        stack.callback(process.stop)
        return process

    def baseline(self) -> float:
        """A single operator started with a Goal waiting: seconds to its Job."""
        with contextlib.ExitStack() as stack:
            alone = self.replica("alone", stack, election=False)
            name = self.new_goal()
            alone.start()
            return until(lambda: self.has_job(name))

    def takeover(self, graceful: bool, round_: int) -> tuple[float, float]:
        """(seconds to the Lease, seconds to the Job of a Goal created then) after the
        leader's SIGTERM (graceful) or SIGKILL."""
        with contextlib.ExitStack() as stack:
            a = self.replica(f"a{round_}-{graceful}", stack, election=True)
            b = self.replica(f"b{round_}-{graceful}", stack, election=True)
            a.start()
            until(lambda: self.holder().startswith(f"a{round_}-{graceful}_"))
            first = self.new_goal()
            until(lambda: self.has_job(first))
            b.start()
            time.sleep(3 * float(self.timing["RETRY_PERIOD_SECONDS"]))  # b waits, as it would
            start = time.monotonic()
            if graceful:
                a.terminate()
            else:
                a.kill()
            name = self.new_goal()
            until(lambda: self.holder().startswith(f"b{round_}-{graceful}_"))
            leased = time.monotonic() - start
            until(lambda: self.has_job(name))
            return leased, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--lease", default="12")
    parser.add_argument("--renew", default="8")
    parser.add_argument("--retry", default="2")
    args = parser.parse_args()
    timing = {
        "LEASE_DURATION_SECONDS": args.lease,
        "RENEW_DEADLINE_SECONDS": args.renew,
        "RETRY_PERIOD_SECONDS": args.retry,
    }
    emulator = HardenedEmulator()
    with EmulatorServer(emulator) as server, tempfile.TemporaryDirectory() as folder:
        emulator.register_crds_from_dir(ROOT / "crds")
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NS}}
        emulator.create_object(namespace)
        bench = Bench(server, Path(folder), timing)
        base = [bench.baseline() for _ in range(args.rounds)]
        crash = [bench.takeover(False, n) for n in range(args.rounds)]
        graceful = [bench.takeover(True, n) for n in range(args.rounds)]
    baseline = statistics.median(base)
    print(f"durations: lease {args.lease} s, renew deadline {args.renew} s, retry {args.retry} s")
    print(f"baseline: one operator started with a Goal waiting, to its Job: {baseline:.2f} s")
    for label, runs in (("crash (SIGKILL)", crash), ("graceful (SIGTERM)", graceful)):
        leased = statistics.median(run[0] for run in runs)
        acted = statistics.median(run[1] for run in runs)
        print(
            f"{label}: Lease taken after {leased:.2f} s ({leased / float(args.lease):.2f} x the "
            f"lease), a new Goal's Job after {acted:.2f} s ({acted / baseline:.1f} x baseline)"
        )


if __name__ == "__main__":
    main()
