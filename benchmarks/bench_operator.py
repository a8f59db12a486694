"""Operator at scale, against the API emulator: a burst of Goals, a long queue, a mass deletion.

The operator runs as its own process (`backlogctl operator`, exactly what the Deployment
runs), talking HTTP to the emulator served from this process; its CPU time and peak memory
are read from /proc, its HTTP requests counted by the emulator. Three scenarios per size:

- burst: N Goals created at once with room for all; goals/s until each has its Job, latency
  p50/p99, HTTP requests per goal, operator CPU per goal, peak RSS. Measured in the same run,
  the ceiling: a bare client in a separate process that watches Goals and their Jobs and makes
  the calls the operator needs per goal (read it, create its Job, write its status, post an
  event), with the same bodies (the emulator validates what it stores: the same work for
  both) and the same concurrency toward the API server as the operator's (`--concurrency`);
  `--repeat` takes the two in turn and prints the ratio's min and median.
- delete: the burst's N Goals deleted at once; seconds until every one of their Jobs is gone.
- waiting: N Goals created at once with room for 10 (`BACKLOG_OPERATOR_MAX_RUNNING`);
  seconds until every goal has a phase (a queued one with its queue position), then the
  operator's steady-state CPU (share of one core) and requests/s while they wait, then how
  long a freed slot stays free (a running Job finished: seconds until the next Job exists).

Figures are printed with their targets; nothing is asserted. Beside them, the conditions: the
machine's load, and for each scenario the emulator's CPU (its server thread's share of the time
on a CPU and waiting for one, and CPU per goal) and the operator's event loop likewise. A
server thread near 1.0 busy sets the pace, for the operator and the bare client alike: the
ratio between them then says how much CPU the operator takes from the emulator, not how fast
it is by itself. `--repeat` runs each scenario that many times (a loaded machine's spread).

The emulator runs in this process, as Python dicts; what it stores is kept out of this
process's garbage collector while it serves (`BenchServer`), or its cost per request grows with
the objects it holds, which an API server's does not (`--emulator-gc scan` to see it).

Run: .venv/bin/python benchmarks/bench_operator.py [--goals N ...] [--only burst,delete,...]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp.web  # noqa: E402
import kubernetes  # noqa: E402

from backlog_operator.api.goal import Goal  # noqa: E402
from backlog_operator.api.labels import LABEL_GOAL, LABEL_MANAGED_BY, MANAGED_BY  # noqa: E402
from backlog_operator.api.result import Outcome, WorkerResult  # noqa: E402
from backlog_operator.controller.goals.job import build_job  # noqa: E402
from backlog_operator.controller.settings import OperatorSettings  # noqa: E402
from tests.support.emulator import EmulatorServer, HardenedEmulator  # noqa: E402

NS = "default"
GROUP, VERSION = "backlog.dev", "v1alpha1"
GOALS = f"{GROUP}/{VERSION}/goals"
JOBS = "batch/v1/jobs"
OPERATOR_LOG = os.environ.get("BENCH_OPERATOR_LOG", os.devnull)
PROFILE = os.environ.get("BENCH_OPERATOR_PROFILE", "")
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "900"))
WAITING_CAPACITY = 10
STEADY_SECONDS = 20.0
DELETE_LIMIT = float(os.environ.get("BENCH_DELETE_LIMIT", "300"))
FREED_SLOTS = 5
PUBLISHED = WorkerResult(
    outcome=Outcome.PUBLISHED,
    task_id="t",
    branch="backlog/t-1",
    commit="0" * 40,
    pull_request={"number": 1, "url": "https://github.com/o/r/pull/1"},
    changed_files=[".backlog/backlog.yaml"],
    backlog_updated=True,
)


def goal(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Goal",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "repository": {"url": f"https://github.com/o/{name}.git"},
            "backlog": {"taskId": "t"},
            "task": {"image": "busybox", "command": ["true"]},
        },
    }


# ------------------------------------------------------------------------- the emulator


@dataclass
class Record:
    """What the emulator saw: Jobs made and deleted per goal, goals' phases, HTTP requests."""

    changed: threading.Condition = field(default_factory=threading.Condition)
    job_seen: dict[str, float] = field(default_factory=dict)  # goal -> its first Job, when
    jobs_live: dict[str, str] = field(default_factory=dict)  # Job name -> its goal
    jobs_made: int = 0
    phased: dict[str, float] = field(default_factory=dict)  # goal -> has a phase, when
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    last_request: float = 0.0

    def total_requests(self) -> int:
        return sum(self.requests.values())


RECORD = Record()


def _has_phase(status: dict[str, Any]) -> bool:
    if not status.get("phase"):
        return False
    return status.get("reason") != "WaitingForCapacity" or bool(status.get("queuePosition"))


class ObservedEmulator(HardenedEmulator):
    """The emulator, noting every change of Jobs and Goals and counting HTTP requests."""

    def _emit(self, event: Any) -> None:
        super()._emit(event)
        obj, plural, now = event.obj, event.res.plural, time.monotonic()
        metadata = obj.get("metadata") or {}
        with RECORD.changed:
            name = str(metadata.get("name"))
            if plural == "jobs":
                owner = (metadata.get("labels") or {}).get(LABEL_GOAL, "")
                if event.type == "DELETED":
                    RECORD.jobs_live.pop(name, None)
                elif event.type == "ADDED":
                    RECORD.jobs_live[name] = owner
                    RECORD.jobs_made += 1
                    RECORD.job_seen.setdefault(owner, now)
            elif (
                plural == "goals"
                and event.type != "DELETED"
                and _has_phase(obj.get("status") or {})
            ):
                RECORD.phased.setdefault(name, now)
            RECORD.changed.notify_all()

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        parts = raw_request.path.strip("/").split("/")
        watch = raw_request.query.get("watch") in ("true", "1")
        key = f"{raw_request.method} {'watch ' if watch else ''}{_kind(parts) or 'other'}"
        with RECORD.changed:
            RECORD.requests[key] += 1
            RECORD.last_request = time.monotonic()
        return await super().__call__(raw_request)


def _kind(parts: list[str]) -> str:
    """The resource (and subresource) a request's path names: goals, goals/status, jobs, ..."""
    for plural in ("goals", "jobs", "events", "pods"):
        if plural in parts:
            rest = parts[parts.index(plural) + 1 :]
            return f"{plural}/status" if rest[-1:] == ["status"] and len(rest) == 2 else plural
    return ""


def wait_until(
    predicate: Callable[[], bool], what: Callable[[], str], *, limit: float | None = None
) -> bool:
    """Wait for `predicate`; past `limit` seconds (if given) return False, past the benchmark's
    timeout give up."""
    start = time.monotonic()
    with RECORD.changed:
        while not predicate():
            waited = time.monotonic() - start
            if limit is not None and waited > limit:
                return False
            if waited > TIMEOUT:
                raise SystemExit(f"timed out: {what()}")
            RECORD.changed.wait(0.5)
    return True


def wait_quiet(seconds: float = 2.0, limit: float = 120.0) -> None:
    """Until the operator has sent no request for `seconds` (at most `limit`)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        with RECORD.changed:
            idle = time.monotonic() - RECORD.last_request
        if idle >= seconds:
            return
        time.sleep(seconds - idle)


class BenchServer(EmulatorServer):
    """The emulator, served from this process, with what it stores kept out of this process's
    garbage collector (`--emulator-gc freeze`, the default).

    The emulator keeps every object as Python dicts; each full collection of the cyclic
    garbage collector scans them all. With 10,000 goals and their Jobs stored that took 6 s
    of a burst's server time (0.35 s with 1,000): the emulator grew costlier per request with
    the objects it held, which an API server (etcd, Go) does not, and the 10,000-goal rate
    measured that. So, while it serves, what exists is moved out of the collector's reach
    (`gc.freeze`) every second; what the collector still takes is printed with each scenario
    (`EmulatorMeter`). `--emulator-gc scan` leaves the collector as Python has it."""

    freeze = True

    def start(self, timeout: float = 10.0) -> Self:
        self._frozen = threading.Event()
        if self.freeze:
            threading.Thread(target=self._keep_freezing, name="bench-gc", daemon=True).start()
        return super().start(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._frozen.set()
        super().stop(timeout)
        gc.unfreeze()  # the next scenario starts from a collected heap
        gc.collect()

    def _keep_freezing(self) -> None:
        while not self._frozen.wait(1.0):
            gc.freeze()


def served(crds: Path) -> EmulatorServer:
    global RECORD
    RECORD = Record()
    server = BenchServer(ObservedEmulator())
    server.emulator.register_crds_from_dir(crds)
    return server.start()


def create_all(server: EmulatorServer, names: list[str], threads: int = 8) -> dict[str, float]:
    """Create the goals from `threads` threads; when each was created."""

    def create(name: str) -> tuple[str, float]:
        at = time.monotonic()
        server.emulator.create_object(goal(name))
        return name, at

    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(create, names))


# -------------------------------------------------------------------------- the operator


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time (user and system) a process has used, all its threads, or one of them."""
    stat = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def schedstat(pid: int, thread: int) -> tuple[float, float]:
    """Seconds a thread has run on a CPU, and waited runnable for one (the scheduler's)."""
    fields = Path(f"/proc/{pid}/task/{thread}/schedstat").read_text().split()
    return int(fields[0]) / 1e9, int(fields[1]) / 1e9


@dataclass
class Busy:
    """A thread over a span, as shares of it: on a CPU, and runnable but waiting for a CPU
    (taken by other processes). The two adding up to near 1.0: the thread never waited for
    work, it set the pace (or would have, given a CPU)."""

    cpu: float
    queued: float
    wall: float  # the span, seconds

    def __str__(self) -> str:
        return f"{self.cpu:.2f} on a CPU + {self.queued:.2f} waiting for one"


class ThreadMeter:
    """Reads a thread's `Busy` from a start to a stop."""

    def __init__(self, pid: int, thread: int | None) -> None:
        self._pid, self._thread = pid, thread
        self._start = self._read()

    def _read(self) -> tuple[float, float, float]:
        if self._thread is None:
            return time.monotonic(), float("nan"), float("nan")
        return time.monotonic(), *schedstat(self._pid, self._thread)

    def stop(self) -> Busy:
        """The shares from the start until now."""
        now = self._read()
        wall = now[0] - self._start[0]
        return Busy((now[1] - self._start[1]) / wall, (now[2] - self._start[2]) / wall, wall)


@dataclass
class Emulator:
    """The emulator over a span: its server thread (`Busy`), and this whole process's CPU as a
    share of one core (the server thread and the threads that create or delete goals, which
    share one interpreter lock). The server thread busy near 1.0: the emulator, not its
    client, sets the pace."""

    server: Busy
    process: float
    collector: float = 0.0  # seconds this process spent in its cyclic garbage collector

    def __str__(self) -> str:
        return (
            f"server thread {self.server}; whole process {self.process:.2f} on a CPU;"
            f" its garbage collector {self.collector:.2f} s"
        )

    def per_goal(self, goals: int) -> str:
        """The server thread's CPU per goal (requests, watch events, schema validation)."""
        return f"{self.server.cpu * self.server.wall / goals * 1000:8.2f} ms"


class EmulatorMeter:
    """Reads the emulator's `Emulator` from a start to a stop."""

    def __init__(self) -> None:
        found = [t for t in threading.enumerate() if t.name == "k8s-emulator"]
        self._server = ThreadMeter(os.getpid(), found[0].native_id if found else None)
        self._start = time.monotonic(), cpu_seconds(os.getpid())
        self._collecting, self._collector = 0.0, 0.0
        gc.callbacks.append(self._collected)

    def _collected(self, phase: str, _: dict[str, int]) -> None:
        if phase == "start":
            self._collecting = time.perf_counter()
        else:
            self._collector += time.perf_counter() - self._collecting

    def stop(self) -> Emulator:
        """From the start until now."""
        gc.callbacks.remove(self._collected)
        wall = time.monotonic() - self._start[0]
        process = (cpu_seconds(os.getpid()) - self._start[1]) / wall
        return Emulator(self._server.stop(), process, self._collector)


def load() -> str:
    """The machine's load: what else ran on its cores while this was measured."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} CPUs"


class Operator:
    """`backlogctl operator` in its own process: its CPU time and peak memory from /proc."""

    def __init__(self, server: EmulatorServer, **settings: str) -> None:
        env = dict(
            os.environ,
            KUBECONFIG=str(server.kubeconfig),
            BACKLOG_OPERATOR_LIVENESS_ENDPOINT="",
            BACKLOG_OPERATOR_METRICS_PORT="0",  # recorded all the same, not served
            **{f"BACKLOG_OPERATOR_{key.upper()}": value for key, value in settings.items()},
        )
        command = [str(Path(sys.executable).with_name("backlogctl")), "operator"]
        if PROFILE:  # cProfile's output, written when the operator exits
            command = [sys.executable, "-m", "cProfile", "-o", PROFILE, *command]
        self._log = open(OPERATOR_LOG, "a")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=self._log
        )

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


@contextlib.contextmanager
def operator(server: EmulatorServer, **settings: str) -> Iterator[Operator]:
    """A running operator that has handled a first goal end to end."""
    running = Operator(server, **settings)
    try:
        server.emulator.create_object(goal("warm-up"))
        wait_until(lambda: "warm-up" in RECORD.job_seen, lambda: "the operator never started")
        wait_quiet(1.0)
        yield running
    finally:
        running.stop()


# ------------------------------------------------------------------------------ scenarios


@dataclass
class Burst:
    goals: int
    rate: float
    p50: float
    p99: float
    requests: collections.Counter[str]
    cpu: float
    emulator: Emulator
    loop: Busy  # the operator's event loop (its main thread)
    peak: float = 0.0


def burst(crds: Path, count: int, *, delete: bool) -> Burst:
    names = [f"goal-{i:05d}" for i in range(count)]
    server = served(crds)
    try:
        with operator(server, max_running=str(count * 2), max_running_per_repository="10") as op:
            before, cpu = RECORD.requests.copy(), op.cpu_seconds()
            start, meter = time.monotonic(), EmulatorMeter()
            loop = ThreadMeter(op.process.pid, op.process.pid)
            created = create_all(server, names)
            wait_until(
                lambda: len(RECORD.job_seen) > count,  # the warm-up's too
                lambda: f"{len(RECORD.job_seen) - 1} of {count} goals have Jobs",
            )
            emulator, busy = meter.stop(), loop.stop()
            elapsed = max(RECORD.job_seen[n] for n in names) - start
            latencies = sorted(RECORD.job_seen[n] - created[n] for n in names)
            wait_quiet()
            result = Burst(
                goals=count,
                rate=count / elapsed,
                p50=statistics.median(latencies),
                p99=latencies[max(0, int(len(latencies) * 0.99) - 1)],
                requests=RECORD.requests - before,
                cpu=op.cpu_seconds() - cpu,
                emulator=emulator,
                loop=busy,
            )
            result.peak = op.peak_rss_mb()
            print_burst(result)
            if delete:
                print_deleted(delete_all(server, op, names))
    finally:
        server.stop()
    return result


@dataclass
class Deleted:
    goals: int
    elapsed: float  # until none of their Jobs is left (or `DELETE_LIMIT`)
    left: int  # Jobs left then
    requests: int
    cpu: float  # the operator's, seconds
    emulator: Emulator


def delete_all(server: EmulatorServer, op: Operator, names: list[str]) -> Deleted:
    """Delete the goals at once (from 8 threads, as `kubectl delete` by many people would)."""
    before = RECORD.total_requests()
    doomed = set(names)
    with RECORD.changed:  # the Jobs of other goals (the warm-up's) stay
        others = sum(owner not in doomed for owner in RECORD.jobs_live.values())
    start, cpu, meter = time.monotonic(), op.cpu_seconds(), EmulatorMeter()

    def delete(name: str) -> None:
        server.emulator.delete_object(GOALS, NS, name)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(delete, names))
    # A check that costs nothing: it runs at every change, in the emulator's way.
    wait_until(
        lambda: len(RECORD.jobs_live) <= others,
        lambda: f"{len(RECORD.jobs_live) - others} Jobs left",
        limit=DELETE_LIMIT,
    )
    elapsed, emulator = time.monotonic() - start, meter.stop()
    with RECORD.changed:
        left = len(RECORD.jobs_live) - others
    if not left:
        wait_quiet()
    requests = RECORD.total_requests() - before
    return Deleted(len(names), elapsed, left, requests, op.cpu_seconds() - cpu, emulator)


@dataclass
class Waiting:
    goals: int
    phased_in: float
    quiet_in: float
    corrected: int  # positions written again at the loop's next round (see `waiting`)
    steady_cpu: float
    steady_requests: collections.Counter[str]
    freed: list[float]
    peak: float
    emulator: Emulator  # until every goal has a phase


def waiting(crds: Path, count: int) -> Waiting:
    names = [f"goal-{i:05d}" for i in range(count)]
    server = served(crds)
    try:
        with operator(
            server, max_running=str(WAITING_CAPACITY), max_running_per_repository="10"
        ) as op:
            # The warm-up goal holds one slot for good: the queue is what is left.
            start, meter = time.monotonic(), EmulatorMeter()
            create_all(server, names)
            wait_until(
                lambda: len(RECORD.phased) > count,
                lambda: f"{len(RECORD.phased) - 1} of {count} goals have a phase",
            )
            emulator = meter.stop()
            phased_in = max(RECORD.phased[n] for n in names) - start
            wait_quiet(limit=STEADY_SECONDS * 6)  # the burst's tail: events posted last
            quiet_in = time.monotonic() - start
            # A goal's first position is its place among the goals known then; created from 8
            # threads, some goals ahead of it (older, or the same second and a smaller name)
            # are known only later. The loop's next round writes those positions again, once.
            tail = RECORD.total_requests()
            wait_quiet(seconds=OperatorSettings().requeue_seconds + 1, limit=STEADY_SECONDS * 6)
            corrected = RECORD.total_requests() - tail
            cpu, requests = op.cpu_seconds(), RECORD.requests.copy()
            time.sleep(STEADY_SECONDS)
            steady_cpu = (op.cpu_seconds() - cpu) / STEADY_SECONDS
            steady_requests = RECORD.requests - requests
            freed = [free_a_slot(server) for _ in range(FREED_SLOTS)]
            peak = op.peak_rss_mb()
    finally:
        server.stop()
    return Waiting(
        count, phased_in, quiet_in, corrected, steady_cpu, steady_requests, freed, peak, emulator
    )


def free_a_slot(server: EmulatorServer) -> float:
    """Finish one running goal's Job as the Job controller would: seconds until the next Job."""
    with RECORD.changed:
        job = next(name for name, owner in RECORD.jobs_live.items() if owner != "warm-up")
        made = RECORD.jobs_made
    pod = server.emulator.start_job(NS, job)
    messages = {"publish": PUBLISHED.to_json()}
    server.emulator.finish_pod(NS, pod["metadata"]["name"], messages=messages)
    start = time.monotonic()
    server.emulator.complete_job(NS, job)
    wait_until(lambda: RECORD.jobs_made > made, lambda: "no Job took the freed slot")
    elapsed = time.monotonic() - start
    with RECORD.changed:
        RECORD.jobs_live.pop(job, None)  # finished: its slot is free, whatever happens to it
    time.sleep(1.0)
    return elapsed


# ------------------------------------------------------------------------ the bare client


@dataclass
class Ceiling:
    rate: float  # goals/s
    cpu: float  # the bare client's CPU seconds per goal
    emulator: Emulator


def ceiling(crds: Path, count: int, concurrency: int) -> Ceiling:
    """Goals per second of the bare client (`--bare-client`), measured as the operator is, its
    CPU seconds per goal, the emulator's CPU meanwhile."""
    names = [f"raw-{i:05d}" for i in range(count)]
    server = served(crds)
    client = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--bare-client",
            str(server.kubeconfig),
            "--concurrency",
            str(concurrency),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        server.emulator.wait_for(
            lambda: server.emulator.open_watches(GOALS) and server.emulator.open_watches(JOBS),
            timeout=60,
        )
        cpu = cpu_seconds(client.pid)
        start, meter = time.monotonic(), EmulatorMeter()
        create_all(server, names)
        wait_until(
            lambda: len(RECORD.job_seen) >= count,
            lambda: f"{len(RECORD.job_seen)} of {count} goals have Jobs (bare client)",
        )
        emulator = meter.stop()
        rate = count / (max(RECORD.job_seen.values()) - start)
        wait_quiet()
        return Ceiling(rate, (cpu_seconds(client.pid) - cpu) / count, emulator)
    finally:
        client.terminate()
        client.wait(timeout=30)
        server.stop()


def running_status(goal: dict[str, Any], job: str) -> dict[str, Any]:
    """The status patch the operator writes when a goal's first Job starts, field for field (the
    emulator validates what it stores against the CRD's schema: the same work for both)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    message = f"attempt 1 started: Job {job}"
    generation = goal["metadata"].get("generation", 1)

    def condition(kind: str, status: str, reason: str, text: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": text,
            "observedGeneration": generation,
            "lastTransitionTime": now,
        }

    status = {
        "observedGeneration": generation,
        "phase": "Running",
        "conditions": [
            condition("Ready", "False", "Running", message),
            condition("Reconciling", "True", "Running", message),
            condition("Stalled", "False", "NotStalled", ""),
        ],
        "attempts": 1,
        "run": 1,
        "jobName": job,
        "attemptId": f"attempt-t-{goal['metadata']['uid'][:6]}",
        "taskId": "t",
        "reason": "Running",
        "message": message,
        "startTime": now,
    }
    return {"status": status, "metadata": {"resourceVersion": goal["metadata"]["resourceVersion"]}}


def started_event(goal: dict[str, Any], message: str) -> dict[str, Any]:
    """The `Started` event the operator posts, field for field."""
    metadata = goal["metadata"]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{metadata['name']}.", "namespace": NS},
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Goal",
            "name": metadata["name"],
            "namespace": NS,
            "uid": metadata["uid"],
        },
        "type": "Normal",
        "reason": "Started",
        "message": message,
        "source": {"component": "backlog-operator"},
        "reportingComponent": "backlog-operator",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def bare_client(kubeconfig: str, concurrency: int) -> int:
    """Watch Goals and their Jobs; for each new Goal, read it, create its Job, write its
    status, post an event: the calls the operator makes for a goal, with the same bodies."""
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=configuration
    )
    configuration.connection_pool_maxsize = concurrency
    client = kubernetes.client.ApiClient(configuration)
    custom = kubernetes.client.CustomObjectsApi(client)
    batch = kubernetes.client.BatchV1Api(client)
    core = kubernetes.client.CoreV1Api(client)
    settings = OperatorSettings()

    def one(seen: dict[str, Any]) -> None:
        name = seen["metadata"]["name"]
        # With `_preload_content=False` the client returns the raw urllib3 response, and it
        # sends a dict body as is: its annotations say neither.
        read = custom.get_namespaced_custom_object(
            GROUP, VERSION, NS, "goals", name, _preload_content=False
        )
        body = json.loads(read.data)  # type: ignore[attr-defined]
        job = build_job(Goal.model_validate(body), 1, settings)
        batch.create_namespaced_job(NS, job, _preload_content=False)  # type: ignore[arg-type]
        status = running_status(body, job["metadata"]["name"])
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, NS, "goals", name, status, _preload_content=False
        )
        event = started_event(body, status["status"]["message"])
        core.create_namespaced_event(NS, event, _preload_content=False)  # type: ignore[arg-type]

    def watch_jobs() -> None:  # as the operator does: it hears of its Jobs
        selector = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
        stream = kubernetes.watch.Watch().stream(  # type: ignore[no-untyped-call]
            batch.list_namespaced_job, NS, label_selector=selector
        )
        for _ in stream:
            pass

    threading.Thread(target=watch_jobs, daemon=True).start()
    with ThreadPoolExecutor(concurrency) as pool:
        stream = kubernetes.watch.Watch().stream(  # type: ignore[no-untyped-call]
            custom.list_namespaced_custom_object, GROUP, VERSION, NS, "goals"
        )
        for event in stream:
            if event["type"] == "ADDED":
                pool.submit(one, event["object"])
    return 0


def operator_concurrency() -> int:
    """Requests the operator has in flight at most: its API client's (asyncio's default
    executor, min(32, CPUs + 4), where it sets none)."""
    try:
        from backlog_operator.adapters import kube
    except ImportError:
        return min(32, (os.cpu_count() or 1) + 4)
    found = getattr(kube, "API_CONCURRENCY", None)
    return int(found) if found else min(32, (os.cpu_count() or 1) + 4)


# ------------------------------------------------------------------------------- printing


def print_burst(result: Burst) -> None:
    count = result.goals
    requests = result.requests
    print(f"--- burst of {count} goals (room for all)   ({load()})")
    print(f"goals/s to Job                 : {result.rate:8.1f}")
    print(f"latency create→Job p50 / p99   : {result.p50:8.2f} s / {result.p99:.2f} s")
    per_goal = sum(requests.values()) / count
    print(f"HTTP requests per goal         : {per_goal:8.2f}   (target <= 4.5)")
    for key, number in sorted(requests.items(), key=lambda kv: -kv[1]):
        if number >= count / 100:
            print(f"    {key:<34}: {number / count:6.2f}")
    loop = result.loop.cpu * result.loop.wall / count * 1000
    print(
        f"operator CPU per goal          : {result.cpu / count * 1000:8.2f} ms   "
        f"(its event loop {loop:.2f} ms, the rest its API threads)"
    )
    print(f"operator event loop            : {result.loop}")
    print(f"emulator                       : {result.emulator}")
    print(f"emulator server CPU per goal   : {result.emulator.per_goal(count)}")
    print(f"operator peak memory (RSS)     : {result.peak:8.1f} MB   (target <= 350 MB at 10,000)")
    sys.stdout.flush()


@dataclass
class Size:
    """A size's bursts and ceilings, taken in turn."""

    goals: int
    rates: list[float]
    ceilings: list[Ceiling]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def ratios(self) -> list[float]:
        """Operator / ceiling of each turn."""
        return [r / c.rate for r, c in zip(self.rates, self.ceilings, strict=True)]


def _spread(values: list[float], digits: int = 2) -> str:
    if len(values) == 1:
        return f"{values[0]:8.{digits}f}"
    return f"{min(values):8.{digits}f} min, {statistics.median(values):.{digits}f} median"


def print_ceiling(size: Size, first: Size, concurrency: int) -> None:
    limits = [c.rate for c in size.ceilings]
    print(f"--- {size.goals} goals: operator against the ceiling   ({load()})")
    if len(size.rates) > 1:
        listed = " ".join(f"{r:.1f}/{c:.1f}" for r, c in zip(size.rates, limits, strict=True))
        print(f"operator/bare goals/s, in turn : {listed}")
    print(
        f"bare client ceiling, goals/s   : {_spread(limits, 1)}   "
        f"({concurrency} in flight, 4 calls/goal, 2 watches)"
    )
    cpu = statistics.median(c.cpu for c in size.ceilings)
    print(f"bare client CPU per goal       : {cpu * 1000:8.2f} ms")
    middle = sorted(size.ceilings, key=lambda c: c.rate)[len(size.ceilings) // 2]
    print(f"emulator (median bare run)     : {middle.emulator}")
    print(f"emulator server CPU per goal   : {middle.emulator.per_goal(size.goals)}")
    print(f"operator / ceiling             : {_spread(size.ratios)}   (target >= 0.9 at 1,000)")
    if first is not size:
        ratio = size.rate / first.rate
        ceilings = statistics.median(limits) / statistics.median(c.rate for c in first.ceilings)
        print(
            f"goals/s vs {first.goals:<6} goals        : {ratio:8.2f}   "
            f"(target >= 0.9; the ceilings': {ceilings:.2f})"
        )
    sys.stdout.flush()


def print_deleted(result: Deleted) -> None:
    count = result.goals
    print(f"--- {count} goals deleted at once   ({load()})")
    if result.left:
        print(
            f"Jobs left after {result.elapsed:.0f} s         : {result.left:8d}   "
            "(target: none after 60 s)"
        )
    else:
        print(f"until all their Jobs are gone  : {result.elapsed:8.1f} s   (target <= 60 s)")
    print(f"HTTP requests per goal         : {result.requests / count:8.2f}")
    print(f"operator CPU per goal          : {result.cpu / count * 1000:8.2f} ms")
    print(f"emulator                       : {result.emulator}")
    sys.stdout.flush()


def print_waiting(result: Waiting) -> None:
    print(f"--- {result.goals} goals for {WAITING_CAPACITY} slots   ({load()})")
    print(f"every goal has a phase         : {result.phased_in:8.1f} s   (target <= 30 s)")
    print(f"  emulator meanwhile           : {result.emulator}")
    print(f"the operator quiet after       : {result.quiet_in:8.1f} s")
    print(f"positions corrected after that : {result.corrected:8d}   (at the loop's next round)")
    print(
        f"steady-state operator CPU      : {result.steady_cpu * 100:8.1f} % of a core   "
        "(target <= 5 %)"
    )
    total = sum(result.steady_requests.values()) / STEADY_SECONDS
    print(f"steady-state requests/s        : {total:8.1f}")
    for key, number in sorted(result.steady_requests.items(), key=lambda kv: -kv[1]):
        print(f"    {key:<34}: {number / STEADY_SECONDS:6.1f}")
    print(
        f"freed slot taken after         : {max(result.freed):8.2f} s max, "
        f"{statistics.median(result.freed):.2f} s median   (target <= 1 s)"
    )
    print(f"operator peak memory (RSS)     : {result.peak:8.1f} MB")


def main() -> int:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--goals", type=int, action="append", help="repeatable (default 200)")
    parser.add_argument("--only", default="burst,ceiling,delete,waiting")
    parser.add_argument("--concurrency", type=int, default=operator_concurrency())
    parser.add_argument(
        "--repeat", type=int, default=1, help="each scenario; bursts and ceilings in turn"
    )
    parser.add_argument(
        "--emulator-gc",
        choices=("freeze", "scan"),
        default="freeze",
        help="keep what the emulator stores out of this process's garbage collector (BenchServer)",
    )
    parser.add_argument("--bare-client", metavar="KUBECONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    BenchServer.freeze = args.emulator_gc == "freeze"
    if args.bare_client:
        return bare_client(args.bare_client, args.concurrency)
    only = set(args.only.split(","))
    crds = ROOT / "crds"
    first: Size | None = None
    for count in args.goals or [200]:
        if only & {"burst", "delete"}:
            size = Size(count, [], [])
            for _ in range(args.repeat):  # in turn: a load that drifts weighs on both alike
                size.rates.append(burst(crds, count, delete="delete" in only).rate)
                if "ceiling" in only:
                    size.ceilings.append(ceiling(crds, count, args.concurrency))
            first = first or size
            if size.ceilings:
                print_ceiling(size, first, args.concurrency)
        if "waiting" in only:
            for _ in range(args.repeat):
                print_waiting(waiting(crds, count))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
