"""The image tier: the Dockerfile built with buildah (`make image`), the Job's steps run from it.

Runs under `make test` (and alone under `make test-image`). Skipped, with a message saying what
is missing, where buildah is not installed or the tests do not run as root (buildah's chroot
isolation and the read-only root filesystem need it). CI (`.ci/run`) installs buildah and makes
a stand-in base (`make stand-in-base`), passed as BASE_IMAGE, as no registry is reachable there.
BACKLOG_TEST_IMAGE=NAME tests an image already built instead (kept afterwards).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image.buildah_pod import buildah

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "backlog-operator:image-test"
BUILD_TIMEOUT = 1500


def missing_tools() -> list[str]:
    """What the image tier lacks on this machine, in words."""
    missing = [
        f"no `{tool}` binary" for tool in ("buildah", "make", "unshare") if not shutil.which(tool)
    ]
    if os.geteuid() != 0:
        missing.append("not running as root (buildah's chroot isolation and mounts need it)")
    return missing


@pytest.fixture(scope="session")
def image() -> Iterator[str]:
    """The image built from this checkout by `make image` with buildah; removed afterwards."""
    missing = missing_tools()
    if missing:
        pytest.skip(
            "image tests need buildah (Debian package `buildah`) and root: " + "; ".join(missing)
        )
    if os.environ.get("BACKLOG_TEST_IMAGE"):
        yield os.environ["BACKLOG_TEST_IMAGE"]
        return
    completed = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(ROOT),
            "image",
            f"IMG={IMAGE}",
            "BUILDER=buildah",
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if completed.returncode != 0:
        base = os.environ.get("BASE_IMAGE") or "the Dockerfile's default base"
        pytest.fail(
            f"make image failed (base: {base}; where no registry is reachable, make a stand-in "
            "with `make stand-in-base` and set BASE_IMAGE=backlog-stand-in-base:bookworm):\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    try:
        yield IMAGE
    finally:
        buildah("rmi", IMAGE)
