"""Git over HTTP held to a GitHub App's installation tokens, as GitHub holds it: a token reads
(`contents: read`) and pushes (`contents: write`) only the repositories it was minted for, and
only until it expires. The stand-in the operator tier pushes through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.github_apps import AppAuthority
from tests.support.gitrepos import GitHttpServer, make_remote, remote_branches, run_git

WRITE = {"contents": "write", "metadata": "read"}
READ = {"contents": "read", "metadata": "read"}


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def apps() -> AppAuthority:
    authority = AppAuthority(Clock())
    authority.add_app(1)
    authority.install(1, ["octo/a", "octo/b"], installation_id=5)
    return authority


@pytest.fixture
def server(tmp_path: Path, apps: AppAuthority) -> Iterator[GitHttpServer]:
    make_remote(tmp_path / "octo", {"a.txt": "a\n"}, name="a.git")
    make_remote(tmp_path / "octo", {"b.txt": "b\n"}, name="b.git")
    with GitHttpServer(tmp_path, token="no-static", authorize=apps.git_authorizer()) as git:
        yield git


def mint(apps: AppAuthority, repository: str, permissions: dict[str, str]) -> str:
    return apps.issue(5, [repository], permissions)


def url(server: GitHttpServer, tmp_path: Path, name: str, token: str) -> str:
    plain = server.url_for(tmp_path / "octo" / f"{name}.git")
    return plain.replace("http://", f"http://x-access-token:{token}@")


def push(server: GitHttpServer, tmp_path: Path, name: str, token: str, work: Path) -> bool:
    try:
        run_git("push", url(server, tmp_path, name, token), "HEAD:refs/heads/topic", cwd=work)
    except RuntimeError:
        return False
    return True


def clone(server: GitHttpServer, tmp_path: Path, name: str, token: str) -> Path:
    work = tmp_path / f"work-{name}-{token[-6:]}"
    run_git("clone", "--quiet", url(server, tmp_path, name, token), str(work))
    run_git("commit", "--quiet", "--allow-empty", "-m", "change", cwd=work)
    return work


def test_a_token_pushes_only_to_its_own_repository(
    server: GitHttpServer, apps: AppAuthority, tmp_path: Path
) -> None:
    for_a, for_b = mint(apps, "a", WRITE), mint(apps, "b", WRITE)
    work = clone(server, tmp_path, "a", for_a)
    assert not push(server, tmp_path, "a", for_b, work)  # repo B's token, repo A's remote
    assert "topic" not in remote_branches(tmp_path / "octo" / "a.git")
    with pytest.raises(RuntimeError):
        clone(server, tmp_path, "b", for_a)  # nor does it read another repository
    assert push(server, tmp_path, "a", for_a, work)
    assert "topic" in remote_branches(tmp_path / "octo" / "a.git")


def test_a_read_only_token_fetches_and_cannot_push(
    server: GitHttpServer, apps: AppAuthority, tmp_path: Path
) -> None:
    reader = mint(apps, "a", READ)
    work = clone(server, tmp_path, "a", reader)
    assert not push(server, tmp_path, "a", reader, work)


def test_an_expired_token_is_refused(
    server: GitHttpServer, apps: AppAuthority, tmp_path: Path
) -> None:
    token = mint(apps, "a", WRITE)
    work = clone(server, tmp_path, "a", token)
    assert isinstance(apps.clock, Clock)
    apps.clock.now += 3600
    assert not push(server, tmp_path, "a", token, work)
