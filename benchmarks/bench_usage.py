"""Task usage: reading a usage file, and a Backlog's sums per day, against plain JSON parsing.

Times in the same run, alternating, medians:

- baseline: `json.loads` of the same bytes, then of the Goals' bodies as a listing returns them;
- `parse_usage` of a full usage file (every field, 16 counters) and of the worst file within
  the 16 KiB bound (one long nesting-free string: every byte scanned for nesting, then parsed);
- `read_usage` of the full file from disk (open without following links, fstat, bounded read);
- `fold_goals` + `decide`: what a Backlog's sync adds, over N Goals with 10 attempts each
  (`--goals`), once with nothing new (the usual sync) and once with every attempt new.

Each figure in microseconds and as a ratio to its baseline.

Run: .venv/bin/python benchmarks/bench_usage.py [--goals N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backlog_operator.api.budget import BudgetSpec
from backlog_operator.api.result import Outcome, WorkerResult
from backlog_operator.api.usage import USAGE_FILE_MAX_BYTES, parse_usage
from backlog_operator.api.worker_contract import USAGE_FILE
from backlog_operator.controller.status import to_wire
from backlog_operator.controller.usage import decide, fold_goals, record_attempt, today_of
from backlog_operator.worker.usage_file import read_usage

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FULL = json.dumps(
    {
        "model": "gpt-5.1-codex",
        "inputTokens": 182000,
        "outputTokens": 9400,
        "cost": {"amount": 0.74, "currency": "USD"},
        "durationSeconds": 412.5,
        "counters": {f"counter.{n}": n * 1000 for n in range(16)},
    }
).encode()
WORST = b'{"model": "' + b"[" * (USAGE_FILE_MAX_BYTES - 20) + b'"}'


def mean_us(action: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        action()
    return (time.perf_counter() - started) / repeat * 1e6


def goals(count: int) -> list[dict[str, Any]]:
    usage = None
    for _ in range(10):
        result = WorkerResult(outcome=Outcome.PUBLISHED, usage=parse_usage(FULL))
        usage = record_attempt(usage, result, attempt_id="a", now=NOW)
    assert usage is not None
    status = {"phase": "Succeeded", "usage": to_wire(usage)}
    return [
        {"metadata": {"name": f"g{n}", "uid": f"uid-{n}"}, "status": status} for n in range(count)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    bodies = goals(args.goals)
    listing = json.dumps(bodies).encode()
    budget = BudgetSpec.model_validate({"perDay": {"attempts": 10**6}})
    counted = fold_goals(None, bodies, NOW)

    def sync(previous: Any) -> None:
        usage = fold_goals(previous, bodies, NOW)
        decide(budget, today_of(usage, NOW), in_flight=0, now=NOW)

    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        (state / USAGE_FILE).write_bytes(FULL)
        cases: dict[str, tuple[Callable[[], object], Callable[[], object], int]] = {
            "parse_usage, full file": (lambda: parse_usage(FULL), lambda: json.loads(FULL), 2000),
            "parse_usage, worst 16 KiB": (
                lambda: parse_usage(WORST),
                lambda: json.loads(WORST),
                200,
            ),
            "read_usage, full file": (lambda: read_usage(state), lambda: json.loads(FULL), 2000),
            f"sync, {args.goals} Goals, nothing new": (
                lambda: sync(counted),
                lambda: json.loads(listing),
                20,
            ),
            f"sync, {args.goals} Goals, all new": (
                lambda: sync(None),
                lambda: json.loads(listing),
                5,
            ),
        }
        figures: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in cases}
        for _ in range(args.rounds):
            for name, (action, baseline, repeat) in cases.items():
                figures[name][1].append(mean_us(baseline, repeat))
                figures[name][0].append(mean_us(action, repeat))
    print(f"rounds: {args.rounds} (alternating), medians; ratio = figure / json.loads baseline")
    for name, (measured, base) in figures.items():
        value, reference = statistics.median(measured), statistics.median(base)
        print(
            f"  {name:<34} {value:10.1f} us  baseline {reference:9.1f} us  {value / reference:7.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
