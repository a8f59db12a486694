"""Keep secrets out of every output: logs, events, status, results, URLs."""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

REDACTED = "***"
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
# GitHub's tokens have a recognisable shape (a prefix, then 36 or more characters): masked even
# where the redactor was not told the value (a token echoed back in some library's message).
_GITHUB_TOKEN = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})")


class Redactor:
    """Replaces known secret values, GitHub tokens, and any userinfo in URLs, with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Remember one more secret value (short values would redact ordinary words: skipped)."""
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """`text` with every secret and URL credential masked."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = _GITHUB_TOKEN.sub(REDACTED, text)
        return _URL_USERINFO.sub(_mask_userinfo, text)

    def filter(self) -> logging.Filter:
        """A logging filter that masks secrets in every record passing through it."""
        redactor = self

        class _Filter(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                record.msg = redactor(record.getMessage())
                record.args = None
                return True

        return _Filter()


# The shapes of GitHub's tokens (personal, OAuth, user-to-server, server-to-server, refresh, and
# fine-grained), and a bearer or basic `Authorization` header: masked in text the operator did
# not write (a task's log) even when the value itself is not known.
_TOKEN_SHAPES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"
    r"|(?i:(?<=authorization:)\s*(?:bearer|basic|token)\s+\S+)"
)


def mask_token_shapes(text: str) -> str:
    """`text` with anything shaped like a GitHub token or an Authorization header masked."""
    return _TOKEN_SHAPES.sub(REDACTED, text)


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user = userinfo.split(":", 1)[0] if ":" in userinfo else userinfo
    # A bare `git@` (ssh) is no secret; anything else in userinfo may be a token.
    shown = user if user == "git" and ":" not in userinfo else REDACTED
    return f"{match.group('scheme')}{shown}@"


@contextlib.contextmanager
def private_token_file(token: str | None) -> Iterator[Path | None]:
    """`token` in a file only this user can read (for git's credential helper), removed after.

    Yields None when there is no token.
    """
    if token is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="backlog-token-"))  # mode 0700
    path = folder / "token"
    path.touch(mode=0o600)
    path.write_text(token, encoding="utf-8")
    try:
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
