"""How a staged change leaves a worker Pod: framed in the `stage` step's log. Pure.

A worker Pod has no Kubernetes credentials, so it cannot store the patch itself; its result (the
termination message) holds 4096 bytes. So the `stage` step prints the staging manifest and the
gzipped patch, base64 in short lines between frame lines, on its stdout, and its result carries
their sizes and sha256 digests. The operator reads that container's log (`pods/log`, bounded by
`LOG_READ_BYTES`), takes the frames, checks both digests against the result and stores the
bytes in a ConfigMap owned by the Goal. Lines are short (`LINE_WIDTH`) because a container
runtime splits long lines of a log (16 KiB for CRI) and a reader would have to join them.

The frames, in order, each a line of its own::

    ==== backlog staged change v1: manifest.json ====
    <base64 of the manifest's JSON bytes, LINE_WIDTH characters a line>
    ==== backlog staged change v1: patch.gz ====
    <base64 of the gzipped patch>
    ==== backlog staged change v1: end ====

The digests, not the frames, are what the operator trusts: a log cut, mixed with other output
or edited gives bytes whose digest is not the result's, and nothing is stored.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
from collections.abc import Iterator

LINE_WIDTH = 76
_HEAD = "==== backlog staged change v1: "
_TAIL = " ===="
MANIFEST_FRAME = f"{_HEAD}manifest.json{_TAIL}"
PATCH_FRAME = f"{_HEAD}patch.gz{_TAIL}"
END_FRAME = f"{_HEAD}end{_TAIL}"
#: The largest gzipped patch stored: a ConfigMap holds 1 MiB in all (the manifest beside it).
MAX_GZIP_BYTES = 900 * 1024
#: The largest manifest read (staging writes a few KiB; its file list is bounded by the patch).
MAX_MANIFEST_BYTES = 128 * 1024
#: What the operator reads of the log at most: both frames in base64, and room for the lines
#: the step logged before them.
LOG_READ_BYTES = (MAX_GZIP_BYTES + MAX_MANIFEST_BYTES) * 4 // 3 * 78 // 76 + 256 * 1024


class StagedLogError(ValueError):
    """The log holds no complete, well-formed frames of a staged change."""


def digest(data: bytes) -> str:
    """`sha256:<hex>` of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def gzip_patch(patch: bytes) -> bytes:
    """The patch gzipped, the same bytes for the same patch (no time or name in the header)."""
    return gzip.compress(patch, compresslevel=9, mtime=0)


def gunzip_patch(data: bytes, *, limit: int) -> bytes:
    """The patch in `data`, refused (StagedLogError) when it is not gzip or over `limit`."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            patch = stream.read(limit + 1)
    except (OSError, EOFError) as error:
        raise StagedLogError(f"the stored patch is not gzip: {error}") from None
    if len(patch) > limit:
        raise StagedLogError(f"the stored patch is over {limit} bytes")
    return patch


def frame_lines(manifest: bytes, patch_gz: bytes) -> Iterator[str]:
    """The lines that carry `manifest` and `patch_gz` in a log (see the module docstring)."""
    yield MANIFEST_FRAME
    yield from _base64_lines(manifest)
    yield PATCH_FRAME
    yield from _base64_lines(patch_gz)
    yield END_FRAME


def _base64_lines(data: bytes) -> Iterator[str]:
    text = base64.b64encode(data).decode("ascii")
    for start in range(0, len(text), LINE_WIDTH):
        yield text[start : start + LINE_WIDTH]


def read_frames(log: str) -> tuple[bytes, bytes]:
    """The manifest's and the gzipped patch's bytes of the last frames in `log`;
    StagedLogError when they are missing, incomplete or not base64."""
    lines = [line.strip() for line in log.splitlines()]
    try:
        start = len(lines) - 1 - lines[::-1].index(MANIFEST_FRAME)
        middle = lines.index(PATCH_FRAME, start)
        end = lines.index(END_FRAME, middle)
    except ValueError:
        raise StagedLogError("the log holds no complete staged change") from None
    return _decoded(lines[start + 1 : middle]), _decoded(lines[middle + 1 : end])


def _decoded(lines: list[str]) -> bytes:
    try:
        return base64.b64decode("".join(lines), validate=True)
    except (binascii.Error, ValueError):
        raise StagedLogError("a staged change's frame is not base64") from None
