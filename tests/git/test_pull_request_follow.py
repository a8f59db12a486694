"""The pull request a goal's run opened, followed after it opens: `backlogctl run` publishes to a
real bare remote and opens the pull request on the GitHub stand-in; the operator's adapter then
follows that very pull request with conditional requests, to merged or to closed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from backlog_operator.adapters.github import GitHubForge
from tests.git.conftest import TOKEN, RunOutcome
from tests.support.github_standin import GitHubStandIn

WriteGoal = Callable[..., Path]
RunGoal = Callable[..., RunOutcome]


@pytest.mark.parametrize("ending", ["merged", "closed"])
def test_the_pull_request_a_run_opened_is_followed_to_its_end(
    write_goal: WriteGoal,
    run_goal: RunGoal,
    github: GitHubStandIn,
    token_file: Path,
    ending: str,
) -> None:
    goal = write_goal(
        pull_request={
            "provider": "github",
            "apiBaseUrl": github.base_url,
            "repository": github.repository,
        }
    )
    run = run_goal(goal, "--token-file", str(token_file))
    assert run.status == 0, run.stderr
    number = run.result["pullRequest"]["number"]

    with GitHubForge(github.repository, TOKEN, base_url=github.base_url) as forge:
        opened = forge.pull_request_state(number)
        assert opened.state is not None and opened.state.state == "open"
        assert opened.state.url == run.result["pullRequest"]["url"]
        # Computed since the pull request was created (its answer said null, as GitHub's does).
        assert (opened.state.mergeable, opened.state.mergeable_state) == (True, "clean")
        # Nothing changed since: the next look is a 304, free of rate limit.
        again = forge.pull_request_state(number, opened.etag)
        assert (again.state, again.etag) == (None, opened.etag)
        assert github.not_modified == 1

        if ending == "merged":
            github.merge(number, by="maintainer")
        else:
            github.close(number, by="reviewer")
        ended = forge.pull_request_state(number, opened.etag).state

    assert ended is not None and ended.state == ending
    if ending == "merged":
        assert (ended.merged_by, ended.closed_by) == ("maintainer", None)
        assert ended.merge_commit is not None
    else:
        assert (ended.merged_by, ended.closed_by, ended.merge_commit) == (None, "reviewer", None)
    looks = github.requests_to("GET", f"/pulls/{number}")
    assert [r.headers.get("if-none-match") for r in looks] == [None, opened.etag, opened.etag]
    assert all(r.headers["authorization"] == f"token {TOKEN}" for r in looks)
