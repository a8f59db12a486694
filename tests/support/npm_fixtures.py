"""GitHub's own descriptions, installed by `make fixtures` (npm) into .work/npm.

`package("@octokit/webhooks-examples")` is the package's folder; a test that needs one skips
with a message when it is missing (no npm on the machine). CI installs npm, so there they run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Where `make fixtures` installs; BACKLOG_NPM_FIXTURES points elsewhere (a shared cache).
NODE_MODULES = Path(os.environ.get("BACKLOG_NPM_FIXTURES", ROOT / ".work" / "npm")) / "node_modules"


def package(name: str) -> Path:
    """The installed folder of npm package `name`, or skip the test with how to install it."""
    folder = NODE_MODULES / name
    if not (folder / "package.json").is_file():
        pytest.skip(f"{name} is not installed: run `make fixtures` (needs npm)")
    return folder
