"""Healing a goal's pull request that no longer merges, in the operator: real git (a bare remote
served over HTTP with a token), the GitHub stand-in backed by that remote (mergeability is
`git merge-tree`, a merge is a real merge commit) and the API emulator. The heal Job the
operator makes is run for real (`backlogctl worker heal`, with the Job's own environment), and
its termination message is handed back through the Pod's status, as the kubelet would.

And the rest of a pull request's lifecycle: one that is closed and reopened is followed again
(its task leaves the Backlog's declined list).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from backlog_operator.api.labels import LABEL_ATTEMPT, LABEL_BACKLOG, LABEL_GOAL_UID, LABEL_HEAL
from backlog_operator.api.result import Outcome, WorkerResult
from backlog_operator.cli import main as backlogctl_main
from backlog_operator.controller.goals.heal import HEAL_OUTCOMES
from backlog_operator.controller.metrics import Metrics
from tests.operator.test_pull_requests import running_operator
from tests.support.emulator import EmulatorServer, HardenedEmulator
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import GitHttpServer, commit_to_remote, make_remote, remote_sha, run_git
from tests.support.pod import backlogctl

NS = "default"
GOALS = "backlog.dev/v1alpha1/goals"
BACKLOGS = "backlog.dev/v1alpha1/backlogs"
JOBS = "batch/v1/jobs"
EVENTS = "v1/events"
TOKEN = "ghp_healTheP0llRequestToken12345678"
REPOSITORY = "octo/project"
BACKLOG_PATH = ".backlog/backlog.yaml"
POLL_SECONDS = 0.2

Json = dict[str, Any]

# Compact: no blank line between tasks, and each task's first line is one the writeback edits
# (`status`), so the end of one task's writeback touches the next task's first line and the
# second pull request conflicts once the first is merged (tests/git/test_heal.py).
COMPACT = """\
# compact: no blank line between tasks
tasks:
  - status: pending
    id: alpha
    title: Alpha
    ready: true
  - status: pending
    id: beta
    title: Beta
    ready: true
"""


# One flow mapping per task: neighbouring lines, so the writebacks conflict too.
FLOW = """\
tasks:
  - {id: alpha, title: Alpha, ready: true, status: pending}
  - {id: beta, title: Beta, ready: true, status: pending}
"""


class World:
    """The remote and its HTTP server, the GitHub stand-in on it, and the API emulator."""

    def __init__(
        self,
        server: EmulatorServer,
        tmp_path: Path,
        projects: Path,
        remote: Path,
        git: GitHttpServer,
        github: GitHubStandIn,
        layout: str,
        metrics: Metrics,
    ) -> None:
        self.api: HardenedEmulator = server.emulator
        self.metrics = metrics
        self.layout = layout
        self.tmp_path = tmp_path
        self.projects = projects
        self.remote = remote
        self.url = git.url_for(remote)
        self.github = github
        self.token_file = tmp_path / "token"
        self.token_file.write_text(TOKEN + "\n")
        self.heal_outputs: list[str] = []
        self.api.create_object(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "github-token", "namespace": NS},
                "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
            }
        )

    # -- the repository, as the tasks' pull requests leave it -------------------------------

    def push_task_branch(self, task: str, script: str | None = None) -> str:
        """Run `task` as `backlogctl run` does (a real publish to the remote, no forge): its
        branch, as a goal's attempt would have pushed it."""
        goal = {
            "apiVersion": "backlog.dev/v1alpha1",
            "kind": "Goal",
            "metadata": {"name": f"local-{task}", "namespace": NS},
            "spec": {
                "repository": {"url": str(self.remote), "baseBranch": "main"},
                "backlog": {"taskId": task, "path": BACKLOG_PATH},
                "task": {
                    "image": "busybox",
                    "command": [
                        "sh",
                        "-c",
                        script or f"mkdir -p docs && echo {task} > docs/{task}.md",
                    ],
                },
                "pullRequest": {"provider": "none"},
            },
        }
        path = self.tmp_path / f"goal-{task}.yaml"
        path.write_text(yaml.safe_dump(goal))
        assert backlogctl_main(["run", str(path), "--attempt-id", f"attempt-{task}-1"]) == 0
        branches = run_git("--git-dir", str(self.remote), "for-each-ref", "refs/heads")
        found = [line.split("refs/heads/")[1] for line in branches.splitlines()]
        [branch] = [name for name in found if name.startswith(f"backlog/{task}-")]
        return branch

    def conflicts(self, branch: str) -> bool:
        merged = run_git(
            "--git-dir", str(self.remote), "merge-tree", "--write-tree", "main", branch, check=False
        )
        return "CONFLICT" in merged

    # -- the cluster ------------------------------------------------------------------------

    def pull_request_spec(self) -> Json:
        return {"provider": "github", "apiBaseUrl": self.github.base_url, "repository": REPOSITORY}

    def goal_manifest(self, name: str, task: str) -> Json:
        return {
            "apiVersion": "backlog.dev/v1alpha1",
            "kind": "Goal",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "repository": {
                    "url": self.url,
                    "credentialsSecret": {"name": "github-token"},
                },
                "backlog": {"taskId": task, "path": BACKLOG_PATH},
                "task": {"image": "busybox:1.37", "command": ["true"]},
                "pullRequest": self.pull_request_spec(),
                "retry": {"maxAttempts": 1},
            },
        }

    def goal(self, name: str) -> Json:
        found = self.api.get_object(GOALS, NS, name)
        assert found is not None, f"goal {name} is gone"
        return found

    def status(self, name: str) -> Json:
        return self.goal(name).get("status") or {}

    def condition(self, name: str, kind: str = "Merged") -> Json:
        conditions = self.status(name).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), {})

    def wait_status(self, name: str, predicate: Any, timeout: float = 20) -> Json:
        return self.api.wait_for(
            lambda: (s := self.status(name)) and predicate(s) and s,
            timeout=timeout,
            message=lambda: f"{name}: {self.status(name)}",
        )

    def jobs_of(self, name: str) -> list[Json]:
        uid = self.goal(name)["metadata"]["uid"]
        return self.api.list_objects(JOBS, NS, label_selector=f"{LABEL_GOAL_UID}={uid}")

    def heal_jobs(self, name: str) -> list[Json]:
        jobs = [j for j in self.jobs_of(name) if LABEL_HEAL in j["metadata"]["labels"]]
        return sorted(jobs, key=lambda j: int(j["metadata"]["labels"][LABEL_HEAL]))

    def events(self, name: str) -> list[Json]:
        return [e for e in self.api.list_objects(EVENTS, NS) if e["involvedObject"]["name"] == name]

    def reasons(self, name: str) -> list[tuple[str, str]]:
        return [(e["type"], e["reason"]) for e in self.events(name)]

    def publish(self, name: str, task: str, branch: str) -> int:
        """The goal's attempt ends as publish ends it: `branch` pushed, its pull request opened
        on the stand-in; the pull request's number."""
        pull = self.github.add_pull(branch, "main", title=task)
        [job] = self.api.wait_for(lambda: self.jobs_of(name))
        pod = self.api.start_job(NS, job["metadata"]["name"])
        result = WorkerResult(
            outcome=Outcome.PUBLISHED,
            task_id=task,
            branch=branch,
            commit=remote_sha(self.remote, branch),
            pull_request={
                "number": pull.number,
                "url": f"https://github.com/{REPOSITORY}/pull/{pull.number}",
            },
            changed_files=[BACKLOG_PATH, f"docs/{task}.md"],
            backlog_updated=True,
            step="publish",
        )
        self.api.finish_pod(NS, pod["metadata"]["name"], messages={"publish": result.to_json()})
        self.api.complete_job(NS, job["metadata"]["name"], succeeded=True)
        self.wait_status(name, lambda s: s.get("phase") == "Succeeded")
        return pull.number

    def wait_heal_job(self, name: str, count: int = 1) -> Json:
        jobs = self.api.wait_for(
            lambda: len(found := self.heal_jobs(name)) >= count and found,
            timeout=20,
            message=lambda: f"no heal Job {count} for {name}: {self.status(name)}",
        )
        return jobs[count - 1]

    def run_heal(self, job: Json) -> WorkerResult:
        """Run the heal Job's one container here, with the Job's own environment (the mounted
        paths moved to folders of this test), and report its end as the kubelet would."""
        name = job["metadata"]["name"]
        [container] = job["spec"]["template"]["spec"]["containers"]
        root = self.tmp_path / name
        (root / "private").mkdir(parents=True)
        (root / "workspace").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "BACKLOG_"))}
        env.update({item["name"]: item["value"] for item in container["env"]})
        env.update(
            BACKLOG_TOKEN_FILE=str(self.token_file),  # the mounted Secret key
            BACKLOG_WORKSPACE=str(root / "workspace"),
            BACKLOG_PRIVATE_DIR=str(root / "private"),
            BACKLOG_TERMINATION_LOG=str(root / "termination-log"),
            HOME=str(root),
        )
        completed = backlogctl(*container["args"], env=env)
        self.heal_outputs += [completed.stdout, completed.stderr]
        message = (root / "termination-log").read_text()
        pod = self.api.start_job(NS, name)
        self.api.finish_pod(
            NS,
            pod["metadata"]["name"],
            exit_codes={"heal": completed.returncode},
            messages={"heal": message},
        )
        self.api.complete_job(NS, name, succeeded=completed.returncode == 0)
        return WorkerResult.from_json(message)

    def fail_heal(self, job: Json) -> None:
        """The heal Job's container dies without a result (exit 1)."""
        name = job["metadata"]["name"]
        pod = self.api.start_job(NS, name)
        self.api.finish_pod(NS, pod["metadata"]["name"], exit_codes={"heal": 1})
        self.api.complete_job(NS, name, succeeded=False)

    def heals_counted(self) -> dict[str, float]:
        """`backlog_pull_request_heals_total` by result, those counted."""
        found = {}
        for result in HEAL_OUTCOMES:
            value = self.metrics.registry.get_sample_value(
                "backlog_pull_request_heals_total", {"result": result}
            )
            if value:
                found[result] = value
        return found

    def everything_said(self) -> str:
        """Every goal, Backlog, Job and event as stored, as text (for the token scan)."""
        kinds = (GOALS, BACKLOGS, JOBS, EVENTS, "v1/pods")
        return json.dumps([self.api.list_objects(kind, NS) for kind in kinds])


@contextmanager
def world_of(
    server: EmulatorServer, tmp_path: Path, layout: str, **settings: Any
) -> Iterator[World]:
    projects = tmp_path / "projects"
    projects.mkdir()
    metrics = Metrics()
    remote = make_remote(projects, {BACKLOG_PATH: layout, "README.md": "# project\n"})
    with (
        GitHttpServer(projects, TOKEN) as git,
        GitHubStandIn(REPOSITORY, token=TOKEN, git_dir=remote) as github,
        running_operator(
            server,
            tmp_path,
            metrics,
            **{"pr_closed_poll_seconds": POLL_SECONDS, **settings},
        ),
    ):
        yield World(server, tmp_path, projects, remote, git, github, layout, metrics)


@pytest.fixture
def world(
    emulator_server: EmulatorServer,
    project_crds: object,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> Iterator[World]:
    layout = getattr(request, "param", COMPACT)
    with world_of(emulator_server, tmp_path, layout) as made:
        yield made


def two_pull_requests(world: World, script: str | None = None) -> tuple[int, int, str]:
    """alpha's and beta's pull requests, open and followed; alpha's merged, so beta's
    conflicts. Their numbers and beta's branch."""
    alpha = world.push_task_branch("alpha", script and script.format("alpha"))
    beta = world.push_task_branch("beta", script and script.format("beta"))
    world.api.create_object(world.goal_manifest("g-alpha", "alpha"))
    world.api.create_object(world.goal_manifest("g-beta", "beta"))
    first = world.publish("g-alpha", "alpha", alpha)
    second = world.publish("g-beta", "beta", beta)
    world.github.merge(first, by="maintainer")
    assert world.conflicts(beta)  # what these tests are about
    return first, second, beta


# ------------------------------------------------------------------------------------ healed


@pytest.mark.parametrize("world", [COMPACT, FLOW], ids=["compact-block", "flow"], indirect=True)
def test_a_backlog_only_conflict_is_healed_and_the_pull_request_then_merges(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    _, second, beta = two_pull_requests(world)
    old_tip = remote_sha(world.remote, beta)
    main_tip = remote_sha(world.remote, "main")
    world.wait_status("g-alpha", lambda s: s["pullRequest"]["state"] == "merged")

    job = world.wait_heal_job("g-beta")

    # The heal Job: one container, `worker heal` on the goal's branch, the token mounted
    # into it alone, hardened as the attempt's publish step, owned by the Goal.
    goal = world.goal("g-beta")
    [attempt] = [j for j in world.jobs_of("g-beta") if LABEL_ATTEMPT in j["metadata"]["labels"]]
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert "initContainers" not in pod
    assert container["name"] == "heal"
    assert container["args"] == ["worker", "heal", "--branch", beta]
    [publish] = attempt["spec"]["template"]["spec"]["containers"]
    assert container["image"] == publish["image"] == "backlog-operator:test"
    assert container["securityContext"] == publish["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"] == attempt["spec"]["template"]["spec"]["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    assert {m["name"] for m in container["volumeMounts"]} >= {"credentials", "private"}
    [credentials] = [v for v in pod["volumes"] if v["name"] == "credentials"]
    assert credentials["secret"]["secretName"] == "github-token"
    labels = job["metadata"]["labels"]
    assert labels[LABEL_GOAL_UID] == goal["metadata"]["uid"] and labels[LABEL_HEAL] == "1"
    assert LABEL_ATTEMPT not in labels
    assert labels["app.kubernetes.io/managed-by"] == "backlog-operator"
    [owner] = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Goal", "g-beta", True)
    assert job["spec"]["backoffLimit"] == 0
    status = world.wait_status("g-beta", lambda s: "healJob" in s["pullRequest"])
    assert status["pullRequest"]["healJob"] == job["metadata"]["name"]
    assert status["pullRequest"]["heals"] == 1
    world.api.wait_for(lambda: ("Normal", "Healing") in world.reasons("g-beta") or None)

    result = world.run_heal(job)

    assert (result.outcome, result.reason) == (Outcome.PUBLISHED, "Healed")
    new_tip = remote_sha(world.remote, beta)
    parents = run_git("--git-dir", str(world.remote), "rev-list", "--parents", "-n1", str(new_tip))
    assert parents.split()[1:] == [old_tip, main_tip]  # a fast-forward merge commit
    status = world.wait_status("g-beta", lambda s: s.get("commit") == new_tip)
    assert "healJob" not in status["pullRequest"] and status["phase"] == "Succeeded"
    # The pull request's diff is still this task's change alone.
    assert sorted(status["changedFiles"]) == [BACKLOG_PATH, "docs/beta.md"]
    assert world.condition("g-beta")["reason"] == "PullRequestOpen"
    world.api.wait_for(lambda: ("Normal", "Healed") in world.reasons("g-beta") or None)
    assert world.heals_counted() == {"Healed": 1}

    # Healed, it merges: the maintainer merges it (a real merge commit on main).
    world.github.merge(second, by="maintainer")
    world.wait_status("g-beta", lambda s: s["pullRequest"]["state"] == "merged")
    backlog = run_git("--git-dir", str(world.remote), "show", f"main:{BACKLOG_PATH}")
    document = yaml.safe_load(backlog)
    assert [t["status"] for t in document["tasks"]] == ["completed", "completed"]
    assert {t["branch_name"] for t in document["tasks"]} == {
        world.status("g-alpha")["branch"],
        beta,
    }
    for task in ("alpha", "beta"):
        shown = run_git("--git-dir", str(world.remote), "show", f"main:docs/{task}.md")
        assert shown == f"{task}\n"
    if world.layout == FLOW:
        assert backlog.count("{id:") == 2  # the layout stayed as it was
    assert len(world.heal_jobs("g-beta")) == 1  # one heal, not one per look
    assert world.heal_jobs("g-alpha") == []

    # The token: in no status, event, Job, Pod (termination message), log or output.
    assert TOKEN not in world.everything_said()
    logged = capfd.readouterr()  # the operator's log lines (and the local runs')
    assert "Goal Healed" in logged.err and TOKEN not in logged.err + logged.out
    assert world.heal_outputs and not any(TOKEN in text for text in world.heal_outputs)


# -------------------------------------------------------------------------------- conflicted


def test_a_conflict_in_the_tasks_files_is_reported_not_healed(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    remote_backlog = {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Backlog",
        "metadata": {"name": "team", "namespace": NS},
        "spec": {
            "repository": {"url": world.url, "credentialsSecret": {"name": "github-token"}},
            "path": BACKLOG_PATH,
            "goalTemplate": {
                "spec": {
                    "task": {"image": "busybox", "command": ["true"]},
                    "pullRequest": world.pull_request_spec(),
                    "retry": {"maxAttempts": 1},
                }
            },
            "syncIntervalSeconds": 10,
            "limits": {"maxRunningGoals": 2, "maxOpenPullRequests": 5},
        },
    }
    script = "mkdir -p docs && echo {0} > docs/shared.md"
    alpha = world.push_task_branch("alpha", script.format("alpha"))
    beta = world.push_task_branch("beta", script.format("beta"))
    world.api.create_object(remote_backlog)
    goals = world.api.wait_for(
        lambda: len(found := owned_goals(world.api)) == 2 and found,
        message=lambda: f"goals: {owned_goals(world.api)}",
    )
    assert goals == {"team-alpha": "alpha", "team-beta": "beta"}
    first = world.publish("team-alpha", "alpha", alpha)
    second = world.publish("team-beta", "beta", beta)
    world.github.merge(first, by="maintainer")
    old_tip = remote_sha(world.remote, beta)

    job = world.wait_heal_job("team-beta")
    result = world.run_heal(job)

    assert (result.outcome, result.reason) == (Outcome.FAILED, "Conflicted")
    status = world.wait_status(
        "team-beta", lambda s: s["pullRequest"].get("conflictedFiles") is not None
    )
    assert status["pullRequest"]["conflictedFiles"] == [BACKLOG_PATH, "docs/shared.md"]
    assert status["phase"] == "Succeeded" and status["pullRequest"]["state"] == "open"
    merged = world.condition("team-beta")
    assert (merged["status"], merged["reason"]) == ("False", "Conflicted")
    assert "docs/shared.md" in merged["message"] and BACKLOG_PATH in merged["message"]
    world.api.wait_for(lambda: ("Warning", "Conflicted") in world.reasons("team-beta") or None)
    assert remote_sha(world.remote, beta) == old_tip  # nothing pushed
    assert world.github.pulls[second].state == "open"

    # The Backlog lists it, at its next sync.
    world.api.patch_object(
        BACKLOGS, NS, "team", {"metadata": {"annotations": {"backlog.dev/requested-at": "1"}}}
    )
    conflicted = world.api.wait_for(
        lambda: (
            (world.api.get_object(BACKLOGS, NS, "team") or {}).get("status", {}).get("conflicted")
        )
    )
    assert conflicted == [
        {
            "id": "beta",
            "pullRequest": {
                "number": second,
                "url": f"https://github.com/{REPOSITORY}/pull/{second}",
            },
            "goal": "team-beta",
            "reason": "Conflicted",
            "conflictedFiles": [BACKLOG_PATH, "docs/shared.md"],
        }
    ]
    world.api.wait_for(lambda: ("Warning", "TaskConflicted") in world.reasons("team") or None)

    # No heal loop: the same pair of commits is never healed twice, however often it is seen,
    # even when GitHub computes its mergeability again (unknown, then dirty once more).
    for _ in range(2):
        world.github.pulls[second].computed_for = None
        wait_for_looks(world, second, 3)
    assert len(world.heal_jobs("team-beta")) == 1
    assert world.reasons("team-beta").count(("Warning", "Conflicted")) == 1
    assert world.heals_counted() == {"Conflicted": 1}
    logged = capfd.readouterr()
    assert "Goal Conflicted" in logged.err and TOKEN not in logged.err + logged.out
    assert TOKEN not in world.everything_said()


def wait_for_looks(world: World, number: int, count: int) -> None:
    """Wait until the operator has looked at pull request `number` `count` more times."""
    looks = len(world.github.requests_to("GET", f"/pulls/{number}"))
    world.api.wait_for(
        lambda: len(world.github.requests_to("GET", f"/pulls/{number}")) >= looks + count or None
    )


def owned_goals(api: HardenedEmulator) -> dict[str, str]:
    return {
        g["metadata"]["name"]: g["spec"]["backlog"]["taskId"]
        for g in api.list_objects(GOALS, NS, label_selector=f"{LABEL_BACKLOG}=team")
    }


# ------------------------------------------------------------------------ bounds: no heal loop


def test_a_failing_heal_is_not_repeated_and_heals_are_bounded(
    emulator_server: EmulatorServer, project_crds: object, tmp_path: Path
) -> None:
    with world_of(emulator_server, tmp_path, COMPACT, max_heals=2) as world:
        _, second, _ = two_pull_requests(world)
        first_heal = world.wait_heal_job("g-beta")
        world.wait_status("g-beta", lambda s: "healJob" in s["pullRequest"])  # its start said
        world.fail_heal(first_heal)
        world.wait_status("g-beta", lambda s: "healJob" not in s["pullRequest"])
        merged = world.condition("g-beta")
        assert (merged["status"], merged["reason"]) == ("False", "HealFailed")
        assert "StepFailed" in merged["message"]
        looks = len(world.github.requests_to("GET", f"/pulls/{second}"))
        world.api.wait_for(
            lambda: len(world.github.requests_to("GET", f"/pulls/{second}")) >= looks + 5 or None
        )
        assert len(world.heal_jobs("g-beta")) == 1  # the same commits: not healed again

        # The base moves on (still conflicting): one more heal for the new pair of commits.
        commit_to_remote(world.remote, "main", {"README.md": "# project, later\n"})
        world.fail_heal(world.wait_heal_job("g-beta", 2))
        world.wait_status("g-beta", lambda s: s["pullRequest"].get("heals") == 2)
        world.wait_status("g-beta", lambda s: "healJob" not in s["pullRequest"])

        # And again: the goal is out of heals; said once, and left to a person.
        commit_to_remote(world.remote, "main", {"README.md": "# project, even later\n"})
        world.wait_status(
            "g-beta",
            lambda s: any(c.get("reason") == "HealLimitReached" for c in s["conditions"]),
        )
        looks = len(world.github.requests_to("GET", f"/pulls/{second}"))
        world.api.wait_for(
            lambda: len(world.github.requests_to("GET", f"/pulls/{second}")) >= looks + 5 or None
        )
        assert len(world.heal_jobs("g-beta")) == 2
        assert world.reasons("g-beta").count(("Warning", "HealLimitReached")) == 1
        assert world.reasons("g-beta").count(("Warning", "HealFailed")) == 2
        assert world.status("g-beta")["phase"] == "Succeeded"
        assert world.heals_counted() == {"HealFailed": 2}


# ------------------------------------------------------------------------------ reopened


def test_a_reopened_pull_request_is_followed_again_and_its_task_no_longer_declined(
    world: World,
) -> None:
    alpha = world.push_task_branch("alpha")
    world.api.create_object(
        {
            "apiVersion": "backlog.dev/v1alpha1",
            "kind": "Backlog",
            "metadata": {"name": "team", "namespace": NS},
            "spec": {
                "repository": {"url": world.url, "credentialsSecret": {"name": "github-token"}},
                "path": BACKLOG_PATH,
                "goalTemplate": {
                    "spec": {
                        "task": {"image": "busybox", "command": ["true"]},
                        "pullRequest": world.pull_request_spec(),
                        "retry": {"maxAttempts": 1},
                    }
                },
                "syncIntervalSeconds": 10,
                "limits": {"maxRunningGoals": 1, "maxOpenPullRequests": 5},
            },
        }
    )
    world.api.wait_for(lambda: "team-alpha" in owned_goals(world.api) or None)
    number = world.publish("team-alpha", "alpha", alpha)
    world.github.close(number, by="reviewer")
    world.wait_status("team-alpha", lambda s: s["pullRequest"]["state"] == "closed")
    sync(world, "1")
    world.api.wait_for(lambda: [t["id"] for t in backlog_status(world).get("declined", [])])

    world.github.reopen(number)

    status = world.wait_status("team-alpha", lambda s: s["pullRequest"]["state"] == "open")
    assert "closedBy" not in status["pullRequest"] and "closedAt" not in status["pullRequest"]
    merged = world.condition("team-alpha")
    assert (merged["status"], merged["reason"]) == ("False", "PullRequestOpen")
    world.api.wait_for(
        lambda: ("Normal", "PullRequestReopened") in world.reasons("team-alpha") or None
    )
    sync(world, "2")
    world.api.wait_for(lambda: backlog_status(world).get("declined") == [] or None)
    # Not selected again either: its pull request is open (beta, the other task, runs).
    assert [g for g, task in owned_goals(world.api).items() if task == "alpha"] == ["team-alpha"]

    # Followed as before: merged now, it is said.
    world.github.merge(number, by="maintainer")
    world.wait_status("team-alpha", lambda s: s["pullRequest"]["state"] == "merged")
    time.sleep(5 * POLL_SECONDS)
    looks = len(world.github.requests_to("GET", f"/pulls/{number}"))
    time.sleep(10 * POLL_SECONDS)
    assert len(world.github.requests_to("GET", f"/pulls/{number}")) == looks  # merged: done


def backlog_status(world: World) -> Json:
    found = world.api.get_object(BACKLOGS, NS, "team")
    assert found is not None
    return found.get("status") or {}


def sync(world: World, token: str) -> None:
    world.api.patch_object(
        BACKLOGS, NS, "team", {"metadata": {"annotations": {"backlog.dev/requested-at": token}}}
    )
    world.api.wait_for(lambda: backlog_status(world).get("lastHandledReconcileAt") == token)
