"""Backlog sync on a local repository: BacklogSource against a shallow clone, then end to end.

Generates a bare repository with source files over a few commits and a 1,000-task backlog in
the backlog file format (word and integer priorities, some tasks `requires` earlier ones), and
times in the same run, alternating:

- baseline: a shallow single-branch clone (the git adapter's `clone`, depth 1) and reading the
  file from its work tree, which is what a sync without a cache would do;
- `BacklogSource.read` with an empty cache (first sync), with the tip unchanged (`git ls-remote`
  only), and after one new commit (the cache reused);

each as milliseconds and as a ratio to the baseline. The remote filters (`blob:none`) as the
big forges do; `--no-server-filter` turns that off. When the selection module is there, parsing
(`BacklogDocument.parse`) and `select_tasks` are timed on the bytes read, and the end-to-end
figure of a sync is printed: read + parse + select; and last the operator's whole sync
(read, parse, select, create the Goals) as one reconcile over HTTP against the emulator.
Figures are medians. Exits non-zero when a read does not return the clone's bytes.

Run: .venv/bin/python benchmarks/bench_backlog_sync.py [--tasks N] [--files N] [--rounds N]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from backlog_operator.adapters import git as gitops
from backlog_operator.adapters.backlog_source import BacklogSource
from backlog_operator.backlog.document import BacklogDocument

T = TypeVar("T")

PATH = ".backlog/backlog.yaml"
NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
PRIORITIES = ["critical", "high", "medium", "low", "1", "2", "3", None]
STATUSES = ["completed"] * 5 + ["pending"] * 4 + ["in_progress", "failed", None]
# No system or user configuration for any git command, the adapter's included.
HERMETIC = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def make_backlog(count: int, seed: int = 3) -> bytes:
    """A backlog of `count` tasks; about a third require 1 to 3 earlier tasks (no cycle)."""
    rng = random.Random(seed)
    parts = ["# Generated backlog for the sync benchmark\nproject: bench\n\ntasks:\n"]
    for i in range(count):
        lines = [
            f"  - id: task-{i:04d}",
            f"    title: Task {i}",
            "    description: |",
            f"      Change area {i % 40} so that the thing happens.",
            f"    ready: {'true' if rng.random() < 0.9 else 'false'}",
        ]
        status = rng.choice(STATUSES)
        if status is not None:
            lines.append(f"    status: {status}")
        priority = rng.choice(PRIORITIES)
        if priority is not None:
            lines.append(f"    priority: {priority}")
        if i and rng.random() < 0.35:
            required = rng.sample(range(max(0, i - 100), i), min(rng.randint(1, 3), i))
            lines.append(f"    requires: [{', '.join(f'task-{r:04d}' for r in required)}]")
        if rng.random() < 0.2:
            lines.append(f'    allowed_paths: ["src/pkg{i % 50:02d}/**"]')
        parts.append("\n".join(lines) + "\n\n")
    return "".join(parts).encode()


def git(*args: str, cwd: Path | None = None) -> str:
    """Run the git CLI without any machine configuration; its output."""
    env = {**os.environ, **HERMETIC}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def make_remote(root: Path, files: int, backlog: bytes) -> tuple[Path, Path]:
    """A bare remote (`files` source files over 5 commits, the backlog) and its seed work tree."""
    seed = root / "seed"
    git("init", "-q", "-b", "main", str(seed))
    (seed / PATH).parent.mkdir()
    (seed / PATH).write_bytes(backlog)
    for commit in range(5):
        for i in range(commit, files, 5):
            path = seed / "src" / f"pkg{i % 50:02d}" / f"module_{i:05d}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# module {i}, revision {commit}\n" + "x = 1\n" * 40)
        commit_all(seed, f"c{commit}")
    remote = root / "remote.git"
    git("clone", "-q", "--bare", str(seed), str(remote))
    git("remote", "add", "origin", str(remote), cwd=seed)
    return remote, seed


def commit_all(seed: Path, message: str) -> None:
    git("add", "-A", cwd=seed)
    identity = ("-c", "user.name=bench", "-c", "user.email=bench@example.invalid")
    git(*identity, "commit", "-q", "-m", message, cwd=seed)


def new_commit(seed: Path, n: int) -> None:
    """One more commit on main, changing one task's entry as a merged pull request would."""
    text = (seed / PATH).read_text()
    marker = f"  - id: task-{n:04d}\n"
    text = text.replace(marker, f"{marker}    completed_at: '2026-02-01T12:{n % 60:02d}:00Z'\n")
    (seed / PATH).write_text(text)
    commit_all(seed, f"complete task-{n:04d}")
    git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=seed)


def timed(action: Callable[[], T]) -> tuple[float, T]:
    """The wall time of one call of `action` in milliseconds, from a collected heap; its result."""
    gc.collect()  # what an earlier call left behind is not this call's cost
    start = time.perf_counter()
    result = action()
    return (time.perf_counter() - start) * 1000, result


def clone_and_read(url: str, work: Path) -> bytes:
    """The baseline: what a sync without a cache does (clone at depth 1, read the file)."""
    gitops.clone(url, work, "main", depth=1)
    return (work / PATH).read_bytes()


def main() -> int:
    """Measure, check and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-server-filter", action="store_true")
    args = parser.parse_args()
    os.environ.update(HERMETIC)
    backlog = make_backlog(args.tasks)
    failures: list[str] = []
    times: dict[str, list[float]] = {"clone": [], "first": [], "same": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="bench-backlog-sync-") as tmp:
        root = Path(tmp)
        remote, seed = make_remote(root, args.files, backlog)
        if not args.no_server_filter:
            git("--git-dir", str(remote), "config", "uploadpack.allowFilter", "true")
        url = str(remote)
        size = sum(path.stat().st_size for path in (seed / "src").rglob("*") if path.is_file())
        for n in range(args.rounds):
            expected = (seed / PATH).read_bytes()
            work = root / f"clone-{n}"
            source = BacklogSource(root / f"cache-{n}")
            clone_ms, cloned = timed(partial(clone_and_read, url, work))
            first_ms, first = timed(partial(source.read, url, "main", PATH))
            same_ms, same = timed(
                partial(source.read, url, "main", PATH, known_commit=first.commit)
            )
            new_commit(seed, n)
            new_ms, new = timed(partial(source.read, url, "main", PATH, known_commit=first.commit))
            for name, value in zip(times, (clone_ms, first_ms, same_ms, new_ms), strict=True):
                times[name].append(value)
            if cloned != expected or first.data != expected:
                failures.append(f"round {n}: the first read does not return the clone's bytes")
            if same.changed or new.data != (seed / PATH).read_bytes():
                failures.append(f"round {n}: an unchanged or a new tip was not read right")
            shutil.rmtree(work)
        data = (seed / PATH).read_bytes()
        end_to_end = selection_figures(data, args.rounds)
        operator_sync = operator_sync_figures(url, root / "operator-cache")

    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["clone"]
    print(
        f"repository: {args.files} source files ({size / 1e6:.1f} MB) over 5 commits, "
        f"backlog of {args.tasks} tasks ({len(backlog) / 1e3:.0f} kB); local remote, "
        f"server filters: {'no' if args.no_server_filter else 'yes (blob:none)'}"
    )
    print(f"rounds: {args.rounds} (alternating), medians; ratio = figure / clone baseline")
    rows = [
        ("baseline: shallow clone + read", medians["clone"]),
        ("BacklogSource.read, empty cache", medians["first"]),
        ("BacklogSource.read, tip unchanged", medians["same"]),
        ("BacklogSource.read, one new commit", medians["new"]),
    ]
    for label, value in rows:
        print(f"  {label:<40} {value:8.1f} ms   {value / base:6.3f}")
    if end_to_end is not None:
        parse_ms, select_ms, count = end_to_end
        print(f"parse + select of the {count}-task backlog read:")
        print(f"  {'BacklogDocument.parse':<40} {parse_ms:8.1f} ms")
        print(f"  {'select_tasks':<40} {select_ms:8.1f} ms")
        changed = medians["new"] + parse_ms + select_ms
        print("end to end per sync (read + parse + select):")
        print(f"  {'tip changed (one new commit)':<40} {changed:8.1f} ms   {changed / base:6.3f}")
        first_sync = medians["first"] + parse_ms + select_ms
        print(f"  {'first sync (empty cache)':<40} {first_sync:8.1f} ms   {first_sync / base:6.3f}")
        print(f"  {'tip unchanged (nothing to parse)':<40} {medians['same']:8.1f} ms")
    else:
        print("the selection module is not there: no parse + select or end-to-end figures")
    sync_ms, created = operator_sync
    print("the operator's whole sync, over HTTP against the API emulator (one reconcile):")
    print(f"  {f'read + parse + select + create {created} Goals':<40} {sync_ms:8.1f} ms")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def operator_sync_figures(url: str, cache: Path) -> tuple[float, int]:
    """One BacklogReconciler sync against the emulator: (milliseconds, Goals created)."""
    import asyncio

    import kubernetes

    from backlog_operator.adapters.kube import KubeCluster
    from backlog_operator.controller.backlogs.reconciler import BacklogReconciler

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.emulator import EmulatorServer

    manifest = {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Backlog",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "repository": {"url": url},
            "path": PATH,
            # No limit on running Goals: the sync creates one per selectable task.
            "limits": {"maxRunningGoals": 100000, "maxOpenPullRequests": 100000},
            "goalTemplate": {
                "spec": {
                    "task": {"image": "busybox", "command": ["true"]},
                    "pullRequest": {"provider": "none"},
                }
            },
        },
    }
    crds = Path(__file__).resolve().parents[1] / "crds"
    with EmulatorServer() as server:
        server.emulator.register_crds_from_dir(crds)
        body = server.emulator.create_object(manifest)
        # kubernetes leaves `new_client_from_config` unannotated.
        client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))  # type: ignore[no-untyped-call]
        reconciler = BacklogReconciler(KubeCluster(client), BacklogSource(cache))
        start = time.perf_counter()
        asyncio.run(reconciler.reconcile(body))
        elapsed = (time.perf_counter() - start) * 1000
        created = len(server.emulator.list_objects("backlog.dev/v1alpha1/goals", "default"))
        client.close()
    return elapsed, created


def selection_figures(data: bytes, rounds: int) -> tuple[float, float, int] | None:
    """Median milliseconds of parse and of `select_tasks` on `data`, and the task count."""
    if importlib.util.find_spec("backlog_operator.backlog.selection") is None:
        return None
    from backlog_operator.backlog.selection import SelectionInput, select_tasks

    tasks = BacklogDocument.parse(data, source=PATH).tasks
    given = SelectionInput(now=NOW)
    parse_ms = statistics.median(
        timed(partial(BacklogDocument.parse, data, source=PATH))[0] for _ in range(rounds)
    )
    select_ms = statistics.median(
        timed(partial(select_tasks, tasks, given, source=PATH))[0] for _ in range(rounds)
    )
    return parse_ms, select_ms, len(tasks)


if __name__ == "__main__":
    sys.exit(main())
