"""Names derived from goals and tasks: attempt ids, branch names, Job names, label values.
Pure functions."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

# Characters git refuses in a ref name (git-check-ref-format), plus whitespace and control bytes.
_REF_UNSAFE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]+")
_DNS_UNSAFE = re.compile(r"[^a-z0-9-]+")
# A Kubernetes label value (apimachinery's IsValidLabelValue): at most 63 characters. The one
# definition: `label_value` makes values that pass it, and the CRDs' goal templates check with it.
LABEL_VALUE_MAX_LENGTH = 63
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_LABEL_VALUE = re.compile(LABEL_VALUE_PATTERN)
_LABEL_UNSAFE = re.compile(r"[^-A-Za-z0-9_.]+")
_LABEL_HASH_LENGTH = 10


def new_attempt_id(task_id: str, nonce: str | None = None) -> str:
    """`attempt-<task>-<6 hex>`: unique per attempt, readable in branch names and logs."""
    if nonce is None:
        import secrets  # here: a worker step is usually given its attempt id

        nonce = secrets.token_hex(3)
    return f"attempt-{dns_label(task_id, max_length=40)}-{nonce}"


def attempt_suffix(attempt_id: str) -> str:
    """The short unique part of an attempt id (`attempt-x-3f9c2a` → `3f9c2a`)."""
    return attempt_id.rsplit("-", 1)[-1]


def branch_name(prefix: str, task_id: str, attempt_id: str) -> str:
    """`<prefix><task-id>-<attempt>`, made a valid git ref whatever the task id holds."""
    return sanitize_ref(f"{prefix}{task_id}-{attempt_suffix(attempt_id)}")


def task_branch_prefix(prefix: str, task_id: str) -> str:
    """What every branch of this task starts with (to find its open pull request)."""
    return sanitize_ref(f"{prefix}{task_id}-")


def sanitize_ref(name: str) -> str:
    """Make `name` pass `git check-ref-format --branch`.

    Replaces forbidden characters, collapses `..` and `//`, strips `.lock` and leading dots of
    each component, and trailing `/` or `.`.
    """
    name = _REF_UNSAFE.sub("-", name).replace("@{", "-")
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"/{2,}", "/", name)
    parts = []
    for part in name.split("/"):
        part = part.lstrip(".")
        while part.endswith(".lock"):
            part = part[: -len(".lock")]
        if part:
            parts.append(part)
    cleaned = "/".join(parts).rstrip("./")
    if not cleaned or cleaned == "@" or cleaned.startswith("-"):
        cleaned = "task" + cleaned
    return cleaned


def dns_label(text: str, max_length: int = 63) -> str:
    """A lowercase RFC 1123 label made from `text`; a hash keeps shortened names unique."""
    label = _DNS_UNSAFE.sub("-", text.lower()).strip("-") or "x"
    if len(label) <= max_length:
        return label
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{label[: max_length - 9].rstrip('-')}-{digest}"


def label_value(name: str) -> str:
    """`name` as a valid label value: the name itself when it is one already, otherwise a
    readable prefix of it and a hash of the whole name (`<prefix>-<10 hex>`, at most 63).

    Object names run to 253 characters, label values to 63: every label carrying a name (a
    Backlog's, a GoalSchedule's) is written, and selected by, this function's value. Stable:
    the same name always gives the same value; two names that differ anywhere, even past the
    prefix, or only in a character that had to be replaced, give different ones.
    """
    if len(name) <= LABEL_VALUE_MAX_LENGTH and _LABEL_VALUE.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_LABEL_HASH_LENGTH]
    room = LABEL_VALUE_MAX_LENGTH - _LABEL_HASH_LENGTH - 1
    cleaned = _LABEL_UNSAFE.sub("-", name).lstrip("-_.")
    head = cleaned[:room].rstrip("-_.")
    return f"{head}-{digest}" if head else digest


def url_has_credentials(url: str) -> bool:
    """True when a URL carries a password or token in its userinfo (`https://user:tok@host`).

    A bare user name (`ssh://git@host/...`, `git@host:path`) is not a credential.
    """
    if "://" not in url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.password is not None or (
        parts.scheme in ("http", "https") and parts.username not in (None, "", "git")
    )


def forge_repository(url: str) -> str | None:
    """`owner/name` from a GitHub-style clone URL, or None when it cannot be told."""
    match = re.search(r"[:/]([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$", url)
    if not match:
        return None
    return f"{match.group(1)}/{match.group(2)}"


def child_name(name: str, suffix: str, max_length: int = 253) -> str:
    """`<name>-<suffix>`, an object named after another (a Goal's patch ConfigMap), at most
    `max_length`: a longer name is cut and a hash of the whole keeps it unique."""
    whole = f"{name}-{suffix}"
    if len(whole) <= max_length:
        return whole
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    head = name[: max_length - len(suffix) - 10].rstrip("-.")
    return f"{head}-{digest}-{suffix}"
