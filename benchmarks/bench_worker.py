"""Worker overhead: `backlogctl run` with an empty task against a plain git-CLI shell script.

Both do the same on the same repository, alternating, in one run: a shallow single-branch
clone into a new folder, mark the task completed in the backlog, commit, push a new branch,
remove the folder (`backlogctl run` removes its temporary workspace). The worker also
validates the goal and the backlog and keeps every other byte of the file; the script edits
with sed. Figures are the minimum and the median over the rounds, of wall time and of CPU time
(user and system, of every process a contender waited for: steadier than wall time on a machine
others share); the minimum is the least disturbed round. Two figures hold
the worker to account:

- the ratio worker / script (target ≤ 1.3; ≤ 1.2 on a large repository);
- the fixed overhead, worker - script: what the worker costs above git itself, whatever the
  repository's size (target ≤ 150 ms on a small repository). Python's start, the imports of
  what a step needs (ruamel.yaml, the backlog reader), reading the goal and the backlog once
  per step, the few git commands the script does not run (sealing the clone, checking the
  tree) and the folders it makes besides the clone (the sealed copy, the private one).

Python runs from compiled bytecode, as an installed package does (pip compiles it at install,
the image included): the measured processes keep theirs in a folder of the run, warmed by one
round that is not counted, whatever PYTHONDONTWRITEBYTECODE says or wherever the sources are.

`--compare-source DIR` also times the `backlogctl run` of another source tree of this project
(a checkout of an earlier version, say) in the same rounds, for before/after figures measured
under the same conditions.

Run: .venv/bin/python benchmarks/bench_worker.py [--rounds N] [--files N] [--compare-source DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BACKLOG_HEAD = "# Team backlog\ntasks:\n"
TASK = (
    "  - id: task-{i:04d}\n    title: Task {i}\n    ready: true\n"
    "    status: pending\n    priority: {p}\n\n"
)

SHELL_BASELINE = r"""
set -euo pipefail
remote=$1 work=$2 branch=$3
# file:// as the worker does: a local path would ignore --depth and hardlink the objects
git clone -q --depth 1 --single-branch --branch main "file://$remote" "$work"
cd "$work"
sed -i '/- id: task-0001$/,/^$/ s/status: pending/status: completed\n    branch_name: b/' \
  .backlog/backlog.yaml
git add -A
git -c user.name=bench -c user.email=bench@example.invalid commit -q -m "task-0001"
git push -q origin "HEAD:refs/heads/$branch"
cd /
rm -rf "$work"
"""


def git(*args: str, cwd: Path | None = None) -> str:
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def make_remote(root: Path, files: int, tasks: int) -> Path:
    """A bare remote with `files` source files over 20 commits, and a backlog."""
    seed = root / "seed"
    git("init", "-q", "-b", "main", str(seed))
    (seed / ".backlog").mkdir()
    backlog = BACKLOG_HEAD + "".join(TASK.format(i=i, p=i % 5) for i in range(tasks))
    (seed / ".backlog" / "backlog.yaml").write_text(backlog)
    for commit in range(20):
        for i in range(commit, files, 20):
            path = seed / "src" / f"pkg{i % 50:02d}" / f"module_{i:05d}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# module {i}, revision {commit}\n" + "x = 1\n" * 40)
        git("add", "-A", cwd=seed)
        identity = ("-c", "user.name=b", "-c", "user.email=b@e")
        git(*identity, "commit", "-q", "-m", f"c{commit}", cwd=seed)
    remote = root / "remote.git"
    git("clone", "-q", "--bare", str(seed), str(remote))
    return remote


def goal_file(root: Path, remote: Path) -> Path:
    goal = root / "goal.json"
    goal.write_text(
        json.dumps(
            {
                "apiVersion": "backlog.dev/v1alpha1",
                "kind": "Goal",
                "metadata": {"name": "bench"},
                "spec": {
                    "repository": {"url": str(remote)},
                    "backlog": {"taskId": "task-0001"},
                    "task": {"command": ["true"]},
                    "pullRequest": {"provider": "none"},
                },
            }
        )
    )
    return goal


def timed(command: list[str], *, pycache: Path, source: Path | None = None) -> tuple[float, float]:
    """Wall time and CPU time (user + system, with every process it waited for) of `command`.

    Its bytecode is kept in `pycache`; with `source`, Python imports the project from that tree.
    """
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source / "operator"), str(source)])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def measure(args: argparse.Namespace, root: Path) -> dict[str, list[tuple[float, float]]]:
    """Wall and CPU seconds of each contender in each round, alternating round by round."""
    remote = make_remote(root, args.files, args.tasks)
    goal = goal_file(root, remote)
    script = root / "baseline.sh"
    script.write_text(SHELL_BASELINE)
    worker = [str(Path(sys.executable).with_name("backlogctl")), "run", str(goal), "--attempt-id"]
    pycache = root / "pycache"  # below it, each source file's own path: trees do not mix
    runs: dict[str, list[tuple[float, float]]] = {"script": [], "worker": [], "compared": []}
    # Round 0 compiles the bytecode and warms the file system's caches; it is not counted.
    for n in range(args.rounds + 1):
        kept = n > 0
        spent = timed([*worker, f"attempt-task-0001-w{n:05d}"], pycache=pycache)
        runs["worker"] += [spent] if kept else []
        command = ["bash", str(script), str(remote), str(root / f"sh{n}"), f"shell/{n}"]
        spent = timed(command, pycache=pycache)
        runs["script"] += [spent] if kept else []
        if args.compare_source is not None:
            attempt = f"attempt-task-0001-c{n:05d}"
            spent = timed([*worker, attempt], pycache=pycache, source=args.compare_source)
            runs["compared"] += [spent] if kept else []
    # The interpreter's own start, for reading the figures: what no Python CLI can avoid.
    runs["startup"] = [timed([sys.executable, "-c", "pass"], pycache=pycache) for _ in range(5)]
    return {name: pairs for name, pairs in runs.items() if pairs}


Figures = dict[str, float]  # "wall" and "cpu" of a contender, of one statistic


def summary(pairs: list[tuple[float, float]]) -> dict[str, Figures]:
    """The minimum and the median of the wall and CPU times of one contender's rounds."""
    walls, cpus = [wall for wall, _ in pairs], [cpu for _, cpu in pairs]
    return {
        "min": {"wall": min(walls), "cpu": min(cpus)},
        "median": {"wall": statistics.median(walls), "cpu": statistics.median(cpus)},
    }


def _cells(contender: dict[str, Figures], script: dict[str, Figures], how: str) -> list[float]:
    """Wall min, wall median, CPU min, CPU median: as they are, as ratios or as overheads."""
    cells = []
    for kind in ("wall", "cpu"):
        for stat in ("min", "median"):
            mine, base = contender[stat][kind], script[stat][kind]
            cells.append(
                mine / base if how == "ratio" else (mine - base if how == "minus" else mine)
            )
    return cells


def report(name: str, contender: dict[str, Figures], script: dict[str, Figures]) -> None:
    """One contender's figures beside the script's: time, ratio, overhead; min and median."""
    times = "{:<24}: {:8.1f} {:8.1f} ms    {:8.1f} {:8.1f} ms"
    print(times.format(name, *(cell * 1000 for cell in _cells(contender, script, "time"))))
    if contender is script:
        return
    ratios = "{:<24}: {:8.2f} {:8.2f}       {:8.2f} {:8.2f}"
    print(ratios.format("  ratio to the script", *_cells(contender, script, "ratio")))
    overheads = (cell * 1000 for cell in _cells(contender, script, "minus"))
    print(times.format("  overhead, minus script", *overheads))


def main() -> int:
    """Measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument(
        "--compare-source", type=Path, help="another source tree of the project to time too"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        figures = {name: summary(pairs) for name, pairs in measure(args, Path(tmp)).items()}
    print(f"repository: {args.files} files in 20 commits, backlog of {args.tasks} tasks")
    print(f"rounds: {args.rounds}, alternating, after one uncounted warm-up round")
    print(
        "python: from the bytecode the warm-up round compiled (PYTHONDONTWRITEBYTECODE is unset "
        "for the measured processes), as an installed package runs"
    )
    print(f"{'':<24}  {'wall min':>8} {'median':>8}       {'cpu min':>8} {'median':>8}")
    script = figures["script"]
    report("baseline git CLI script", script, script)
    report("backlogctl run", figures["worker"], script)
    print("  targets: ratio <= 1.3 (<= 1.2 on a large repository), overhead <= 150 ms (small)")
    startup = figures["startup"]["min"]["wall"]
    print(f"python interpreter start : {startup * 1000:8.1f} ms (min; part of backlogctl run)")
    if "compared" in figures:
        report(f"compared: {args.compare_source}", figures["compared"], script)
    return 0


if __name__ == "__main__":
    sys.exit(main())
