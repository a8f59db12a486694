"""Shared test configuration: hermetic git, no stray credentials from the caller's shell."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Run every test with no system or user git configuration and no forge token.

    A developer's own `~/.gitconfig` (credential helpers, signing, hooks) or `GITHUB_TOKEN`
    must neither help nor break a test, and must never be picked up by the code under test.
    """
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    os.environ["GIT_CONFIG_GLOBAL"] = os.devnull
    os.environ["GIT_TERMINAL_PROMPT"] = "0"
    for name in ("GITHUB_TOKEN", "BACKLOG_TOKEN_FILE", "GIT_ASKPASS", "SSH_ASKPASS", "KUBECONFIG"):
        os.environ.pop(name, None)


@pytest.fixture(autouse=True)
def _no_stream_handler_outlives_its_test() -> Iterator[None]:
    """A worker step or the CLI run in-process points the root logger at the test's captured
    stderr (`worker.steps.configure_logging`); left there, an operator thread of a later test
    writes to a closed stream ("--- Logging error ---" in the output). Removed at the end."""
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in before and type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    root.setLevel(level)
