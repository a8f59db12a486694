"""Crash consistency: the operator SIGKILLed again and again while 100 Goals run.

The operator runs as its own process (`backlogctl operator`, `tests.support.operator_process`)
against the emulator, with the install bundle's RBAC and strict validation (`project_crds`), at
most one running goal per repository and six in all (fewer than the repositories, so both
limits bind). 100 Goals over 10 repositories, applied in five waves, come to a mix of ends:
published, already completed, a retryable failure then success, a permanent failure, retries
exhausted, and the same task asked twice (one run per task). The test plays the Job controller
(`JobController`): each Job the operator creates runs to its planned result after a short random
delay, also while no operator runs, and keeps the operator's slots full, so that one Job too
many shows.

The operator is killed 15 times, each followed at once by a new process: right as a Job create
is stored in the emulator, before its answer leaves (the window where a Job exists that no
status names: that Job then ends at once or outlives the restart), a random moment after a
create, and moments after a start (during its start-up listing). Half the Jobs running at a
kill outlive the restart (the new operator must count them), the others may end while no
operator runs (it must adopt them, finished). Waves of goals due meanwhile are applied while no
operator runs; the first kill comes in the first Job create, that Job ends at once, and the next
wave asks its task again, first in the queue. Every Job create is checked as it is stored:

(a) never two Jobs for one goal uid, run and attempt;
(c) never more unfinished Jobs per repository, or in all, than the limits; never two unfinished
    Jobs of one task, nor a Job of a task another goal has already done;

and at the end (b) every goal has reached a final phase (within `FINAL_WITHIN`, a bound only a
stuck goal reaches), and (d) its status agrees with its Jobs: `attempts` counts them, `jobName`
names the last, the phase and reason are the last one's result's.

The plan (which kills, when, which Jobs outlive them) comes from one seed, printed; set
BACKLOG_CHAOS_SEED to replay one. Timing still varies from run to run: what holds for every
order is asserted. A run takes 30-60 s on a busy 2-core machine, mostly the emulator serving
the operator's requests (each restart reads every goal again).
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import kmock
import pytest

from backlog_operator.api.goal import FINAL_PHASES
from backlog_operator.api.labels import LABEL_ATTEMPT, LABEL_GOAL_UID, LABEL_RUN
from backlog_operator.api.result import Outcome, WorkerResult, failure
from backlog_operator.controller.goals.outcome import job_finished
from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.operator_process import OperatorProcess

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
JOBS = "batch/v1/jobs"
SEED_VARIABLE = "BACKLOG_CHAOS_SEED"

REPOSITORIES = 10
MAX_RUNNING = 6
MAX_PER_REPOSITORY = 1
KILLS = 15
JOB_SECONDS = (0.03, 0.3)  # how long the test's Job controller lets a Job run
# Bounds that only a stuck operator reaches.
PROGRESS_WITHIN = 60.0
POLL_SECONDS = 0.2
FULL_WAIT = 1.0  # at most, how long a Job runs on past its time while slots are free
QUIET = 0.2  # the operator is admitting while it created a Job less than this ago
HOLD_SECONDS = 2.0  # at most, how long Jobs held over a restart run on after it
FINAL_WITHIN = 120.0
SETTINGS = {
    "MAX_RUNNING": str(MAX_RUNNING),
    "MAX_RUNNING_PER_REPOSITORY": str(MAX_PER_REPOSITORY),
    "REQUEUE_SECONDS": "1.0",
}

Json = dict[str, Any]
Result = Literal["published", "already", "retryable", "permanent"]
How = Literal["at-create", "later", "at-start"]
# How the kills after the first are made (see `Kill`).
KILL_MIX: dict[How, int] = {"at-create": 5, "later": 6, "at-start": 3}
# What each attempt of a task comes to (the last repeats); the goal's final phase and reason.
TASKS: dict[str, tuple[list[Result], str, str | None]] = {
    "t0": (["published"], "Succeeded", "Published"),
    "t1": (["already"], "Succeeded", "AlreadyCompleted"),
    "t2": (["retryable", "published"], "Succeeded", "Published"),
    "t3": (["permanent"], "Failed", "PathViolation"),
    "t4": (["retryable"], "Failed", "TaskFailed"),  # three attempts, then retries exhausted
    "t5": (["published"], "Succeeded", "Published"),
    "t6": (["published"], "Succeeded", "Published"),
    "t7": (["published"], "Succeeded", "Published"),
}
# The goals of each repository: name, task, priority, and after how many Job creates (of all
# repositories) they are applied. Goals come in waves, as a Backlog starts them: the queue stays
# some tens of goals long (every queued goal is read on every requeue pass, and has its queue
# position rewritten whenever a goal ahead of it starts). g8 asks t0 again, first in
# the queue: it runs unless t0 is done or running (one run per task), and then it is skipped or
# waits; g9 asks t3 again: it runs once t3 has failed.
REPOSITORY_GOALS: list[tuple[str, str, int, int]] = [
    ("g0", "t0", 0, 0),
    ("g8", "t0", -1, 1),
    ("g1", "t1", 0, 1),
    ("g2", "t2", 0, 1),
    ("g3", "t3", 0, 25),
    ("g4", "t4", 0, 25),
    ("g5", "t5", 0, 55),
    ("g6", "t6", 0, 55),
    ("g7", "t7", 0, 80),
    ("g9", "t3", -1, 80),
]
ASKED_TWICE = {"t0", "t3"}
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class GoalInfo:
    name: str
    repository: str
    task: str
    priority: int
    wave: int  # applied once this many Jobs were created


@dataclass(frozen=True)
class Created:
    """One Job create that reached the emulator's store."""

    goal: GoalInfo
    uid: str
    run: str
    attempt: int
    job: str


@dataclass
class Chaos:
    """What the test saw and planned; updated by the emulator (every Job create, under its
    store lock), the Job controller and the test's own thread."""

    operator: OperatorProcess | None = None
    goals: dict[str, GoalInfo] = field(default_factory=dict)  # by uid
    creates: list[Created] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    finished: set[str] = field(default_factory=set)  # Jobs marked finished
    done_tasks: set[tuple[str, str]] = field(default_factory=set)  # (repository, task) succeeded
    on_job: Callable[[Created], None] | None = None  # the Job controller's
    kill_at_create: int | None = None  # SIGKILL the operator when this many Jobs exist
    killed_at_create: int = 0
    last_create: float = 0.0  # time.monotonic() of the last Job create
    lock: threading.Lock = field(default_factory=threading.Lock)


class ChaosEmulator(HardenedEmulator):
    """The emulator, checking and recording every Job create the moment it is stored, and
    killing the operator right then when the test says so (before the create's answer)."""

    chaos: Chaos

    def create_object(self, manifest: Mapping[str, Any], **kwargs: Any) -> Json:
        with self._store_lock:  # nothing changes between the store and the checks
            created = super().create_object(manifest, **kwargs)
            if created.get("apiVersion") == "batch/v1" and created.get("kind") == "Job":
                self._job_created(created)
        return created

    def _job_created(self, job: Json) -> None:
        chaos = self.chaos
        labels = job["metadata"]["labels"]
        goal = chaos.goals[labels[LABEL_GOAL_UID]]
        this = Created(
            goal,
            labels[LABEL_GOAL_UID],
            labels[LABEL_RUN],
            int(labels[LABEL_ATTEMPT]),
            job["metadata"]["name"],
        )
        with chaos.lock:
            chaos.violations.extend(self._check(chaos, this))
            chaos.creates.append(this)
            chaos.last_create = time.monotonic()
            if chaos.on_job is not None:
                chaos.on_job(this)
            if chaos.kill_at_create == len(chaos.creates) and chaos.operator is not None:
                chaos.operator.signal_kill()  # the Job is stored; its answer never arrives
                chaos.killed_at_create += 1
                chaos.kill_at_create = None

    def finish_job(self, created: Created, *, succeeded: bool) -> None:
        """Mark a Job finished, and note it so, in one step for the checks of later creates."""
        with self._store_lock:
            self.complete_job(NS, created.job, succeeded=succeeded)
            with self.chaos.lock:
                self.chaos.finished.add(created.job)
                if succeeded:
                    self.chaos.done_tasks.add(_task(created.goal))

    def _check(self, chaos: Chaos, this: Created) -> list[str]:
        problems = []
        key = (this.uid, this.run, this.attempt)
        if any((c.uid, c.run, c.attempt) == key for c in chaos.creates):
            problems.append(f"second Job {this.job} for {this.goal.name} run/attempt {key[1:]}")
        if (this.goal.repository, this.goal.task) in chaos.done_tasks:
            problems.append(f"{this.job}: {this.goal.task} of {this.goal.repository} done already")
        running = [c.goal for c in chaos.creates if c.job not in chaos.finished] + [this.goal]
        same_repository = [g.name for g in running if g.repository == this.goal.repository]
        same_task = [g.name for g in running if (g.repository, g.task) == _task(this.goal)]
        if len(running) > MAX_RUNNING:
            problems.append(f"{len(running)} unfinished Jobs at {this.job}")
        if len(same_repository) > MAX_PER_REPOSITORY:
            problems.append(f"unfinished Jobs of one repository at {this.job}: {same_repository}")
        if len(same_task) > 1:
            problems.append(f"unfinished Jobs of one task at {this.job}: {same_task}")
        return problems


def _task(goal: GoalInfo) -> tuple[str, str]:
    return goal.repository, goal.task


class JobController(threading.Thread):
    """The Job controller and kubelet: each Job the operator creates gets its Pod and ends with
    its planned result after a short random delay, whether an operator runs or not; Jobs the
    test holds (`hold`) run on until it lets them go (`release`).

    A Job whose time has come waits (up to `FULL_WAIT`) while fewer Jobs run than the operator
    may run, or while the operator is creating Jobs (one came less than `QUIET` ago): the slots
    stay full, so that one Job too many is seen the moment it is created, not hidden by a Job
    that ended while the operator was still admitting."""

    def __init__(self, api: ChaosEmulator, rng: random.Random) -> None:
        super().__init__(name="chaos-job-controller", daemon=True)
        self.api, self.rng = api, rng
        self._due: list[tuple[float, int, Created, float]] = []  # due, order, Job, latest
        self._held: list[Created] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self.errors: list[str] = []

    def add(self, created: Created) -> None:
        with self._wake:
            due = time.monotonic() + self.rng.uniform(*JOB_SECONDS)
            heapq.heappush(self._due, (due, next(self._order), created, due + FULL_WAIT))
            self._wake.notify()

    def hold(self, keep: Callable[[Created], bool]) -> int:
        """Keep the unfinished Jobs that `keep` picks running until `release`; how many."""
        with self._wake:
            due, self._due = self._due, []
            for entry in due:
                if keep(entry[2]):
                    self._held.append(entry[2])
                else:
                    self._due.append(entry)
            heapq.heapify(self._due)
            return len(due) - len(self._due)

    def hurry(self, job: str) -> None:
        """End the unfinished Job `job` now, whatever runs."""
        with self._wake:
            now = time.monotonic()
            self._due = [
                (now, o, c, now) if c.job == job else (d, o, c, n) for d, o, c, n in self._due
            ]
            heapq.heapify(self._due)
            self._wake.notify()

    def _busy(self, now: float) -> bool:
        """Whether the operator may still fill a slot: one is free, or it is admitting."""
        chaos = self.api.chaos
        with chaos.lock:
            running = len(chaos.creates) - len(chaos.finished)
            return running < MAX_RUNNING or now - chaos.last_create < QUIET

    def release(self) -> None:
        """Let the held Jobs end, each after a new short random delay."""
        with self._wake:
            held, self._held = self._held, []
        for created in held:
            self.add(created)

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self.join(10)

    def run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._wake.wait(timeout)
                if self._stopping:
                    return
                _, _, created, latest = heapq.heappop(self._due)
            now = time.monotonic()
            if now < latest and self._busy(now):  # not under `_wake`: creates take it
                with self._wake:
                    entry = (now + POLL_SECONDS / 4, next(self._order), created, latest)
                    heapq.heappush(self._due, entry)
                continue
            try:
                self.finish(created)
            except kmock.KubernetesError as error:  # e.g. the operator deleted the Job
                self.errors.append(f"{created.job}: {error}")

    def finish(self, created: Created) -> None:
        """Run the Job's Pod to the end its task's plan gives this attempt."""
        plan = TASKS[created.goal.task][0]
        result = plan[min(created.attempt, len(plan)) - 1]
        pod = self.api.start_job(NS, created.job)
        codes, messages = _exit(created.goal, result)
        self.api.finish_pod(NS, pod["metadata"]["name"], exit_codes=codes, messages=messages)
        self.api.finish_job(created, succeeded=result in ("published", "already"))


def _exit(goal: GoalInfo, result: Result) -> tuple[dict[str, int] | None, dict[str, str]]:
    """Exit codes and termination messages of the Pod's steps for `result`."""
    if result == "retryable":
        return {"task": 3}, {}
    if result == "permanent":
        refused = failure("PathViolation", "changed src/", retryable=False, step="publish")
        return {"publish": 65}, {"publish": refused.to_json()}
    outcome = Outcome.PUBLISHED if result == "published" else Outcome.ALREADY_COMPLETED
    done = WorkerResult(outcome=outcome, task_id=goal.task, branch=f"backlog/{goal.task}-1")
    return None, {"publish": done.to_json()}


def goal_manifest(info: GoalInfo) -> Json:
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {"name": info.name, "namespace": NS},
        "spec": {
            "repository": {"url": f"https://github.com/o/{info.repository}.git"},
            "backlog": {"taskId": info.task},
            "task": {"image": "busybox:1.37", "command": ["true"]},
            "retry": {"maxAttempts": MAX_ATTEMPTS, "backoffSeconds": 0, "maxBackoffSeconds": 0},
            "priority": info.priority,
        },
    }


def all_goals() -> list[GoalInfo]:
    return [
        GoalInfo(f"r{r}-{name}", f"repo-{r}", task, priority, wave)
        for r in range(REPOSITORIES)
        for name, task, priority, wave in REPOSITORY_GOALS
    ]


@dataclass(frozen=True)
class Kill:
    """Kill the operator once `after` Jobs were created: `at-create` in the create of that
    Job, `later` a random moment after it, `at-start` moments after the restart before."""

    after: int
    how: How
    delay: float


def kill_plan(rng: random.Random) -> list[Kill]:
    """`KILLS` kills: the first in the first Job create (the next wave, whose g8 asks a task
    that is running, first in the queue, is applied while that Job exists and no status says
    so), then at random points 5 in a create, 6 a moment after one, 3 moments after a start."""
    hows: list[How] = [how for how, count in KILL_MIX.items() for _ in range(count)]
    rng.shuffle(hows)
    # Up to the 80th of the 120 Jobs, when the last wave is due: the goals outlast every
    # planned kill, even when a restart lets the operator run some tens of creates ahead.
    points = sorted(rng.sample(range(2, 81), len(hows)))
    kills = [Kill(at, how, rng.uniform(0.0, 0.4)) for at, how in zip(points, hows, strict=True)]
    plan = [Kill(1, "at-create", 0.0), *kills]
    assert len(plan) == KILLS
    return plan


@pytest.fixture
def emulator_server() -> Iterator[EmulatorServer]:
    """The emulator with the chaos checks (`project_crds` makes it strict, with RBAC)."""
    emulator = ChaosEmulator()
    emulator.chaos = Chaos()
    with EmulatorServer(emulator) as server:
        yield server


@pytest.fixture
def seed() -> int:
    value = int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(1 << 32))
    print(f"chaos seed: {value} (replay with {SEED_VARIABLE}={value})")
    return value


def poll(predicate: Callable[[], bool], *, timeout: float, message: Callable[[], str]) -> None:
    """Wait until `predicate()` holds, looking every `POLL_SECONDS` (not on every change, as
    `wait_for` does: the checks read every goal, and this process also serves the API)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s: {message()}")
        time.sleep(POLL_SECONDS)


class Run:
    """The test's side: create goals, kill and restart the operator, wait, report."""

    def __init__(
        self, api: ChaosEmulator, operator: OperatorProcess, controller: JobController, seed: int
    ) -> None:
        self.api, self.chaos, self.operator, self.seed = api, api.chaos, operator, seed
        self.controller = controller
        self.rng = random.Random(seed + 1)  # which Jobs outlive a kill
        self.kills = 0
        self.held = self.hurried = 0  # Jobs held over a restart; interrupted ones ended at once
        self.creates_at_start = 0
        self.waves = sorted({g.wave for g in all_goals()})

    def created(self) -> int:
        with self.chaos.lock:
            return len(self.chaos.creates)

    def finished(self, job: str) -> bool:
        with self.chaos.lock:
            return job in self.chaos.finished

    def apply_wave(self, wave: int) -> None:
        """Apply the goals of `wave` once that many Jobs were created."""
        self.wait_for_creates(wave)
        self.waves.remove(wave)
        for info in [g for g in all_goals() if g.wave == wave]:
            uid = self.api.create_object(goal_manifest(info))["metadata"]["uid"]
            self.chaos.goals[uid] = info

    def apply_due_waves(self) -> None:
        """Apply the waves whose time has come (while no operator runs: seen at its start)."""
        for wave in [w for w in self.waves if w <= self.created()]:
            self.apply_wave(wave)

    def unfinished(self) -> list[str]:
        return [
            f"{g['metadata']['name']}: {(g.get('status') or {}).get('phase')}"
            for g in self.api.list_objects(GOALS, NS)
            if (g.get("status") or {}).get("phase") not in FINAL_PHASES
        ]

    def wait_for_creates(self, count: int) -> None:
        poll(
            lambda: self.created() >= count or not self.unfinished(),
            timeout=PROGRESS_WITHIN,
            message=lambda: (
                f"seed {self.seed}: {self.created()} Jobs, waiting for {count}; "
                f"unfinished goals {self.unfinished()}"
            ),
        )

    def kill(self, kill: Kill) -> None:
        """Kill the operator as `kill` says, wait until it is gone, start a new one. Half the
        Jobs that run at the kill, and the one whose create it interrupted, run on until the
        new operator has started (so its start-up must count them), the others may end while
        no operator runs."""
        if kill.how != "at-start":
            self.release_held()
        if kill.how == "at-create":
            with self.chaos.lock:  # unless armed (the first), from the next create on if passed
                if self.chaos.kill_at_create is None:
                    self.chaos.kill_at_create = max(kill.after, len(self.chaos.creates) + 1)
            self.wait_for_the_kill()
            with self.chaos.lock:
                self.chaos.kill_at_create = None
            if self.operator.running:  # every goal ended first: no create to kill in
                return
        else:
            if kill.how == "later":
                self.wait_for_creates(kill.after)
            time.sleep(kill.delay)
            self.operator.signal_kill()
        status = self.operator.wait_dead()
        if status != -signal.SIGKILL:
            self.chaos.violations.append(f"the operator exited by itself ({status})")
        self.kills += 1
        self.outlive_the_kill(self.chaos.creates[-1].job if kill.how == "at-create" else None)
        self.apply_due_waves()
        self.creates_at_start = self.created()
        self.operator.start()

    def wait_for_the_kill(self) -> None:
        """Wait until the armed create has killed the operator. Should every goal applied so
        far end first (a restart can let the operator run ahead of the plan), the next wave is
        applied now: its goals bring the creates the kill needs."""
        while True:
            poll(
                lambda: not self.operator.running or not self.unfinished(),
                timeout=PROGRESS_WITHIN,
                message=lambda: (
                    f"seed {self.seed}: no Job create after {self.created()}; "
                    f"unfinished goals {self.unfinished()}"
                ),
            )
            if not self.operator.running or not self.waves:
                return
            self.apply_wave(self.waves[0])

    def outlive_the_kill(self, interrupted: str | None) -> None:
        """Hold half the unfinished Jobs over the restart; the one whose create the kill
        interrupted is held, or ends at once, so the next start finds it finished (always at
        the first kill: the wave applied meanwhile asks its task again, first in the queue)."""
        if interrupted is not None and (self.kills == 1 or self.rng.random() < 0.5):
            self.end_now(interrupted)
            interrupted = None
        self.held += self.controller.hold(lambda c: c.job == interrupted or self.rng.random() < 0.5)

    def end_now(self, job: str) -> None:
        """End `job` before the next operator starts."""
        self.controller.hurry(job)
        self.hurried += 1
        poll(
            lambda: self.finished(job),
            timeout=PROGRESS_WITHIN,
            message=lambda: f"seed {self.seed}: {job} does not end",
        )

    def release_held(self) -> None:
        """Let the held Jobs end once the new operator has created a Job (its start-up is over)
        or `HOLD_SECONDS` have passed (all its slots may be taken by held Jobs)."""
        deadline = time.monotonic() + HOLD_SECONDS
        while self.created() <= self.creates_at_start and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        self.controller.release()


# A run takes 30-60 s on a busy 2-core machine and may take twice that on an overloaded one;
# the bounds above fail a stuck run with its story, this only stops a hung one.
@pytest.mark.timeout(600)
def test_operator_killed_15_times_leaves_no_duplicate_no_overadmission_no_stuck_goal(
    emulator_server: EmulatorServer, project_crds: object, seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    api = emulator_server.emulator
    assert isinstance(api, ChaosEmulator)
    chaos = api.chaos
    controller = JobController(api, random.Random(rng.random()))
    plan = kill_plan(rng)
    log = tmp_path / "operator.log"
    started = time.monotonic()
    controller.start()
    chaos.on_job = controller.add
    with OperatorProcess(emulator_server, SETTINGS, log=log) as operator:
        chaos.operator = operator
        chaos.kill_at_create = plan[0].after  # the very first Job create: armed before any
        run = Run(api, operator, controller, seed)
        run.apply_wave(0)
        for kill in plan:
            run.kill(kill)
        run.release_held()
        while run.waves:
            run.apply_wave(run.waves[0])
        poll(
            lambda: not run.unfinished(),
            timeout=FINAL_WITHIN,
            message=lambda: f"seed {seed}: goals stuck: {run.unfinished()} (log: {log})",
        )
    controller.stop()
    print(
        f"{run.kills} kills ({chaos.killed_at_create} in a Job create, of which "
        f"{run.hurried} ended at once), {len(chaos.creates)} Jobs ({run.held} held over a "
        f"restart), {time.monotonic() - started:.1f} s"
    )
    assert chaos.violations == [], f"seed {seed}: {chaos.violations}"
    assert run.kills == KILLS, f"seed {seed}: the goals ended after {run.kills} kills"
    assert chaos.killed_at_create >= 1, f"seed {seed}: no kill came in a Job create"
    check_statuses(api, chaos, seed)
    assert controller.errors == []


def expected_attempts(task: str) -> int:
    """How many attempts a goal that runs `task` makes: up to its first result that is not a
    retryable failure, or all it may."""
    plan = TASKS[task][0]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if plan[min(attempt, len(plan)) - 1] != "retryable":
            return attempt
    return MAX_ATTEMPTS


def check_statuses(api: HardenedEmulator, chaos: Chaos, seed: int) -> None:
    """(d): every goal's status agrees with its Jobs; one goal per task did a task done."""
    jobs: dict[str, list[Json]] = {}
    for job in api.list_objects(JOBS, NS):
        jobs.setdefault(job["metadata"]["labels"][LABEL_GOAL_UID], []).append(job)
    assert sorted(c.job for c in chaos.creates) == sorted(
        j["metadata"]["name"] for found in jobs.values() for j in found
    ), f"seed {seed}: the Jobs at the end are not the Jobs created"
    ran: dict[tuple[str, str], list[str]] = {}
    for goal in api.list_objects(GOALS, NS):
        uid, status = goal["metadata"]["uid"], goal.get("status") or {}
        info = chaos.goals[uid]
        own = sorted(jobs.get(uid, []), key=lambda j: int(j["metadata"]["labels"][LABEL_ATTEMPT]))
        where = f"seed {seed}: {info.name} {status.get('phase')} {status.get('reason')}"
        if not own:  # one run per task: skipped, as another goal did its task
            assert (status["phase"], status["reason"]) == ("Skipped", "AlreadySucceeded"), where
            assert not status.get("attempts") and TASKS[info.task][1] == "Succeeded", where
            continue
        ran.setdefault(_task(info), []).append(info.name)
        attempts = [int(j["metadata"]["labels"][LABEL_ATTEMPT]) for j in own]
        assert attempts == list(range(1, expected_attempts(info.task) + 1)), (where, attempts)
        assert status["attempts"] == len(own), where
        assert status["jobName"] == own[-1]["metadata"]["name"], where
        _, phase, reason = TASKS[info.task]
        assert (status["phase"], status["reason"]) == (phase, reason), where
        finished = "Complete" if phase == "Succeeded" else "Failed"
        assert job_finished(own[-1]) == finished, where
    for (repository, task), names in ran.items():
        # A task done is not done again; a failed one is tried by its other goal.
        want = 2 if task in ASKED_TWICE and TASKS[task][1] == "Failed" else 1
        assert len(names) == want, f"seed {seed}: {task} of {repository} ran in {names}"
