"""What following open pull requests costs when their base branch moves, with mergeability.

A bare repository with N open pull requests (one branch each, each touching its own file), the
GitHub stand-in on that repository (mergeability computed lazily, from git), and the operator's
follower and adapter (`PullRequestFollower`, `GitHubForge.pull_request_state`) driven round
after round as the runtime drives them. The base branch then moves (a commit to the README):
every pull request's next answer changes (`unknown`, then `clean`).

Figures, per pull request and per move of the base, in the same run: requests to the forge,
of them full answers (counted against the rate limit), and answers that would be looked into
(a read of the goal from the API, and perhaps a status write) by `news`, against the baseline
of looking into every answer that changed (what following did before mergeability was read:
any change of the answer's state, here none, would have; a rule on "anything changed" would
look into all of them). Exits non-zero when a moved base makes any pull request's goal read.

Run: .venv/bin/python benchmarks/bench_pr_follow.py [--pulls N]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from backlog_operator.adapters.github import GitHubForge
from backlog_operator.controller.goals.pull_request import Followed, PullRequestFollower, news
from tests.support.github_standin import GitHubStandIn
from tests.support.gitrepos import commit_to_remote, make_remote

TOKEN = "bench-token"  # noqa: S105 (the stand-in's)
REPOSITORY = "octo/project"


def followed(key: str, number: int) -> Followed:
    return Followed(
        key=key,
        uid=key,
        number=number,
        repository=REPOSITORY,
        api_base_url=None,
        secret=None,
        state="open",
    )


def rounds(follower: PullRequestFollower, forge: GitHubForge, now: float) -> tuple[int, int]:
    """Every look that is due at `now` (as many rounds as it takes): (looks, looked into)."""
    looks = looked_into = 0
    while due := follower.take_due(now):
        for item in due:
            poll = forge.pull_request_state(item.number, item.etag)
            looks += 1
            if poll.state is not None and news(item, poll.state):
                looked_into += 1
            follower.looked(item.key, poll.etag, item.state, now, seen=poll.state)
    return looks, looked_into


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pulls", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        remote = make_remote(Path(folder), {"README.md": "# project\n"})
        for i in range(args.pulls):
            commit_to_remote(remote, f"backlog/t{i}-1", {f"docs/t{i}.md": f"{i}\n"}, start="main")
        with GitHubStandIn(REPOSITORY, token=TOKEN, git_dir=remote) as github:
            pulls = [github.add_pull(f"backlog/t{i}-1") for i in range(args.pulls)]
            follower = PullRequestFollower(100.0, batch=20, rng=random.Random(1))
            for pull in pulls:
                follower.track(followed(f"ns/g{pull.number}", pull.number), f"ns/g{pull.number}", 0)
            with GitHubForge(REPOSITORY, TOKEN, base_url=github.base_url) as forge:
                rounds(follower, forge, 100.0)  # the first answers: unknown, then computed
                rounds(follower, forge, 110.0)
                rounds(follower, forge, 250.0)  # settled: 304s
                commit_to_remote(remote, "main", {"README.md": "# project, later\n"})
                before_requests, before_free = len(github.requests), github.not_modified
                looks = looked_into = 0
                for now in (400.0, 410.0, 550.0):  # the move seen, then computed, then settled
                    counted = rounds(follower, forge, now)
                    looks, looked_into = looks + counted[0], looked_into + counted[1]
                requests = len(github.requests) - before_requests
                full = requests - (github.not_modified - before_free)
    n = args.pulls
    print(f"open pull requests: {n}; the base branch moved once")
    print(f"requests per pull request: {requests / n:.2f} ({full / n:.2f} full answers)")
    print(f"answers looked into (a goal read): {looked_into / n:.2f} per pull request")
    print(f"baseline, every changed answer looked into: {full / n:.2f} per pull request")
    ratio = looked_into / full if full else 0.0
    print(f"ratio looked into / baseline: {ratio:.2f}")
    return 0 if looked_into == 0 and looks >= n else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as error:
        print(error.stderr, file=sys.stderr)
        sys.exit(2)
