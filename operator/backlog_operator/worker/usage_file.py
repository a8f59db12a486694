"""Reading the task's usage file, which the task (untrusted) controls entirely.

The file is `<workspace>/.backlog-state/usage.json` (the task learns the path from
`BACKLOG_USAGE_FILE`). The task could have put anything there: a symbolic link to the token
file, a fifo that would block a read forever, a folder, a file of gigabytes, another name for a
file (a hard link). So the file is opened without following links at either of its last two
components (`O_NOFOLLOW`, the state folder opened first and the file relative to it), without
blocking (`O_NONBLOCK`: a fifo opens at once and is then refused), and read only when `fstat`
says it is a regular file with one link and at most 16 KiB, never more than that many bytes.

Whatever is wrong becomes a warning in the usage, never a failure of the attempt, and no
warning repeats the file's content.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path
from typing import Any

from backlog_operator.api.usage_rules import (
    USAGE_FILE_MAX_BYTES,
    as_written,
    refused,
    usage_data,
)
from backlog_operator.api.worker_contract import USAGE_FILE

log = logging.getLogger("backlog_operator.worker")

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOCTTY = getattr(os, "O_NOCTTY", 0)


class _Refused(Exception):  # noqa: N818 (the refusal is the message)
    """The usage file cannot be read safely; the message says why, without its content."""


def read_usage(state_dir: Path) -> dict[str, Any] | None:
    """The task's usage (checked), a usage holding only warnings when the file was refused or
    malformed, or None when the task wrote no usage file.

    In the JSON form of `api.usage.TaskUsage` (the checks are `api.usage_rules`', which need no
    pydantic), as the result carries it.
    """
    try:
        data = _read_bounded(state_dir, USAGE_FILE)
    except _Refused as refusal:
        usage = as_written(refused(str(refusal)))
    else:
        if data is None:
            return None
        usage = usage_data(data)
    for warning in usage["warnings"]:
        log.warning("usage: %s", warning)
    return usage


def remove_usage_file(state_dir: Path) -> None:
    """Remove a usage file left from before (a reused workspace), so none is read by mistake."""
    try:
        (state_dir / USAGE_FILE).unlink()
    except FileNotFoundError:
        pass
    except OSError as error:  # a folder in its place, say: read_usage will refuse it
        log.debug("cannot remove %s: %s", state_dir / USAGE_FILE, error.strerror)


def _read_bounded(state_dir: Path, name: str) -> bytes | None:
    """The bytes of `state_dir/name`, or None when it does not exist; `_Refused` otherwise."""
    try:
        folder = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _Refused(f"is in a folder that is a link or no folder ({_name(error)})") from None
    try:
        return _read_in(folder, name)
    finally:
        os.close(folder)


def _read_in(folder: int, name: str) -> bytes | None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _NOCTTY | _CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=folder)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _Refused("is a symbolic link") from None
        if error.errno == errno.ENXIO:  # a socket
            raise _Refused("is not a regular file") from None
        raise _Refused(f"cannot be opened ({_name(error)})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused("is not a regular file")
        if info.st_nlink != 1:
            raise _Refused("has other names (hard links)")
        if info.st_size > USAGE_FILE_MAX_BYTES:
            raise _Refused(f"is larger than {USAGE_FILE_MAX_BYTES} bytes")
        return _read_at_most(fd, USAGE_FILE_MAX_BYTES)
    finally:
        os.close(fd)


def _read_at_most(fd: int, limit: int) -> bytes:
    """At most `limit` bytes; `_Refused` when there are more (the file grew after fstat)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _Refused(f"is larger than {limit} bytes")


def _name(error: OSError) -> str:
    return errno.errorcode.get(error.errno or 0, "error")
