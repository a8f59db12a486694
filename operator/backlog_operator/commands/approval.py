"""The approval gate, a person's side: `diff`, `approve` and `reject` a Goal's staged change,
and `revive` a declined task of a Backlog.

A Goal whose spec requires approval stops before pushing anything: the operator stages the
change (status.approval: its hash, base commit, branch, expiry, and the ConfigMap holding the
gzipped patch) and waits in phase AwaitingApproval. These commands read that, and write only
the annotations a person writes (`backlog.dev/approved-patch` and `-by`, `backlog.dev/rejected`
and `-by`, `revive.backlog.dev/<task-id>`): the operator does the rest.

The patch was written by the task, which is untrusted: it is bounded when unpacked (a gzip bomb
is refused, not inflated), checked against the hash the Goal's status names before a byte of it
is shown, and shown with every control character escaped, so nothing in it can act on the
terminal. An approval names the exact hash read, in one merge patch guarded by the Goal's
resourceVersion: a change staged again between reading and writing makes the write fail.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import re
import sys
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

from kubernetes.client.exceptions import ApiException

from backlog_operator.api.common import GROUP, VERSION
from backlog_operator.api.labels import (
    ANNOTATION_APPROVED_BY,
    ANNOTATION_APPROVED_PATCH,
    ANNOTATION_REJECTED,
    ANNOTATION_REJECTED_BY,
    revive_annotation,
)
from backlog_operator.commands.cluster import (
    KIND_NAMES,
    PLURALS,
    TIMEOUT,
    Cluster,
    CommandError,
    Json,
    age,
    declined_text,
    printable,
    run,
)

AWAITING_APPROVAL = "AwaitingApproval"
# The most a staged patch may unpack to: the operator stages no larger one
# (worker.staging.MAX_PATCH_BYTES; not imported, as that module loads the git adapter).
MAX_PATCH_BYTES = 1 << 20
MAX_MANIFEST_BYTES = 64 * 1024
# An annotation's value is the API's to bound (256 KiB for all of them); these are the
# contract's: a rejection's reason is cut to 1 KiB, a user name to 253 characters.
MAX_REASON_BYTES = 1024
MAX_USER_LENGTH = 253
PATCH_KEY, MANIFEST_KEY = "patch.gz", "manifest.json"
HASH = re.compile(r"sha256:[0-9a-f]{64}")


def shown(data: bytes) -> str:
    """Bytes of a patch as text safe to print: UTF-8, other bytes as `\\xNN`, controls escaped."""
    return printable(data.decode("utf-8", "backslashreplace"))


# ----------------------------------------------------------------------------- the staged change


@dataclass(frozen=True)
class Staged:
    """What a Goal awaiting approval says of its staged change (status.approval)."""

    goal: str
    hash: str
    base: str
    branch: str
    config_map: str
    staged_at: str
    expires_at: datetime | None
    resource_version: str
    annotations: dict[str, str]
    approval: Json


def staged_change(goal: Mapping[str, Any]) -> Staged:
    """The Goal's staged change; CommandError unless it is AwaitingApproval with one."""
    meta, status = dict(goal.get("metadata") or {}), dict(goal.get("status") or {})
    name = str(meta.get("name"))
    phase = status.get("phase") or "Pending"
    if phase != AWAITING_APPROVAL:
        raise CommandError(
            f'goal "{name}" is not awaiting approval (phase {phase}): there is no staged change'
        )
    approval = status.get("approval")
    found = approval.get("patchHash") if isinstance(approval, Mapping) else None
    if not isinstance(approval, Mapping) or not isinstance(found, str) or not HASH.fullmatch(found):
        raise CommandError(
            f'goal "{name}" is {AWAITING_APPROVAL} but its status names no staged change '
            "(status.approval.patchHash)"
        )
    expires = _time(approval.get("expiresAt"))
    return Staged(
        goal=name,
        hash=found,
        base=str(approval.get("baseCommit") or ""),
        branch=str(approval.get("branch") or ""),
        config_map=str(approval.get("patchConfigMap") or ""),
        staged_at=str(approval.get("stagedAt") or ""),
        expires_at=expires,
        resource_version=str(meta.get("resourceVersion") or ""),
        annotations=dict(meta.get("annotations") or {}),
        approval=dict(approval),
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def expiry_text(staged: Staged, now: datetime) -> str:
    """When the approval window ends, and how long is left (or that it has passed)."""
    if staged.expires_at is None:
        return "unknown"
    when = staged.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if staged.expires_at <= now:
        return f"{when} (expired)"
    return f"{when} (in {age(now.isoformat(), staged.expires_at)})"


# ------------------------------------------------------------------------- reading the patch


def gunzip_bounded(data: bytes, limit: int = MAX_PATCH_BYTES) -> bytes:
    """The gzip stream `data` unpacked, never more than `limit` bytes of it: CommandError for
    more (a gzip bomb unpacks no further than that), for what is not one whole gzip stream, and
    for bytes after it (which a reader of the first stream alone would never show)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        unpacked = inflater.decompress(data, limit + 1)
    except zlib.error as error:
        raise CommandError(f"the staged patch is not gzip data: {error}") from None
    if len(unpacked) > limit:
        raise CommandError(
            f"the staged patch unpacks to more than {limit} bytes, more than any change the "
            "operator stages: refused (not unpacked further)"
        )
    if not inflater.eof:
        raise CommandError("the staged patch is cut short (its gzip stream does not end)")
    if inflater.unused_data:
        raise CommandError("the staged patch has data after its gzip stream: refused")
    return unpacked


def _config_map(cluster: Cluster, staged: Staged) -> Json:
    if not staged.config_map:
        raise CommandError(
            f'goal "{staged.goal}" names no ConfigMap holding its patch '
            "(status.approval.patchConfigMap)"
        )
    path = f"/api/v1/namespaces/{quote(cluster.namespace, safe='')}/configmaps/"
    try:
        response = cluster.raw_get(path + quote(staged.config_map, safe=""), [])
    except ApiException as error:
        if error.status == 404:
            raise CommandError(
                f'the staged patch of goal "{staged.goal}" is gone: ConfigMap '
                f'"{staged.config_map}" not found in namespace "{cluster.namespace}"'
            ) from None
        raise
    found = json.loads(response.data)
    if not isinstance(found, dict):
        raise CommandError(f'ConfigMap "{staged.config_map}" is not an object')
    return found


def read_patch(cluster: Cluster, staged: Staged) -> tuple[bytes, Json]:
    """The staged patch and its manifest, from the Goal's ConfigMap; CommandError unless the
    manifest names the hash (and base and branch) the Goal's status names."""
    found = _config_map(cluster, staged)
    packed = (found.get("binaryData") or {}).get(PATCH_KEY)
    text = (found.get("data") or {}).get(MANIFEST_KEY)
    where = f'ConfigMap "{staged.config_map}"'
    if not isinstance(packed, str) or not isinstance(text, str):
        raise CommandError(f"{where} holds no binaryData.{PATCH_KEY} and data.{MANIFEST_KEY}")
    manifest = _manifest(text, where)
    check_manifest(manifest, staged, where)
    try:
        data = base64.b64decode(packed, validate=True)
    except (binascii.Error, ValueError):
        raise CommandError(f"{where}: binaryData.{PATCH_KEY} is not base64") from None
    patch = gunzip_bounded(data)
    size = manifest.get("patchBytes")
    if isinstance(size, int) and size != len(patch):
        raise CommandError(
            f"{where}: the patch is {len(patch)} bytes, its manifest says {size}: refused"
        )
    return patch, manifest


def _manifest(text: str, where: str) -> Json:
    try:
        loaded = json.loads(text) if len(text) <= MAX_MANIFEST_BYTES else None
    except ValueError:
        loaded = None
    if not isinstance(loaded, dict):
        raise CommandError(f"{where}: data.{MANIFEST_KEY} is not a staging manifest")
    return loaded


def check_manifest(manifest: Mapping[str, Any], staged: Staged, where: str) -> None:
    """CommandError when the manifest is not that of the change the Goal's status names."""
    named = manifest.get("patchHash")
    if named != staged.hash:
        shown_hash = printable(str(named))[:80]
        raise CommandError(
            f'{where} holds change {shown_hash}, but goal "{staged.goal}" staged {staged.hash}: '
            "refused (the ConfigMap was changed, or is another staging's)"
        )
    for key, expected in (("baseCommit", staged.base), ("branch", staged.branch)):
        if expected and manifest.get(key) != expected:
            raise CommandError(
                f"{where}: its manifest's {key} is not the goal's ({expected}): refused"
            )


# ------------------------------------------------------------------------------------ diffstat


@dataclass
class FileStat:
    """One file of a patch: lines added and deleted, or binary."""

    path: str
    added: int = 0
    deleted: int = 0
    binary: bool = False


def diffstat(patch: str) -> list[FileStat]:
    """Per file of a git patch (`diff --git` sections): lines added and deleted in its hunks."""
    files: list[FileStat] = []
    in_hunk = False
    for line in patch.split("\n"):
        if line.startswith("diff --git "):
            files.append(FileStat(_header_path(line[len("diff --git ") :])))
            in_hunk = False
        elif not files:
            continue
        elif line.startswith("@@"):
            in_hunk = True
        elif line.startswith("GIT binary patch") or line.startswith("Binary files "):
            files[-1].binary = True
        elif in_hunk and line.startswith("+"):
            files[-1].added += 1
        elif in_hunk and line.startswith("-"):
            files[-1].deleted += 1
    return files


def _header_path(header: str) -> str:
    # `a/PATH b/PATH`, or C-quoted when a path has odd characters: the new path, for people.
    if header.endswith('"'):
        return header[header.rfind(' "') + 1 :] if ' "' in header else header
    _, found, after = header.rpartition(" b/")
    return after if found else header


def stat_lines(files: list[FileStat]) -> Iterator[str]:
    """git's `--stat` in short: `+ADDED -DELETED PATH` a file, then the totals."""
    width = max((len(f"+{f.added} -{f.deleted}") for f in files), default=0)
    for stat in files:
        counts = "binary" if stat.binary else f"+{stat.added} -{stat.deleted}"
        yield f" {counts.ljust(max(width, 6))}  {stat.path}"
    added, deleted = sum(f.added for f in files), sum(f.deleted for f in files)
    yield f" {len(files)} file(s) changed, {added} insertion(s)(+), {deleted} deletion(s)(-)"


# ---------------------------------------------------------------------------------------- diff


def header_lines(cluster: Cluster, staged: Staged, patch: bytes, now: datetime) -> Iterator[str]:
    """What `diff` prints before the patch (text git apply skips: it starts at `diff --git`)."""
    yield f"Goal {cluster.namespace}/{staged.goal} awaits approval of this change:"
    yield f"  hash:     {staged.hash}"
    yield f"  base:     {printable(staged.base)}"
    yield f"  branch:   {printable(staged.branch)}"
    yield f"  staged:   {printable(staged.staged_at) or 'unknown'}"
    yield f"  expires:  {expiry_text(staged, now)}"
    yield f"  patch:    {len(patch)} bytes (control characters shown escaped, as \\xNN)"
    namespace = "" if cluster.namespace == "default" else f" -n {cluster.namespace}"
    yield "Approve exactly this change with:"
    yield f"  kubectl backlog approve {staged.goal}{namespace} --hash {staged.hash}"


def _diff(cluster: Cluster, args: argparse.Namespace) -> int:
    staged = staged_change(cluster.get("goals", args.name))
    patch, _ = read_patch(cluster, staged)
    text = shown(patch)
    out = sys.stdout
    if isinstance(out, io.TextIOWrapper):  # a terminal in the C locale still gets every line
        out.reconfigure(errors="backslashreplace")
    for line in header_lines(cluster, staged, patch, datetime.now(UTC)):
        out.write(line + "\n")
    out.write("\n")
    if args.stat:
        out.write("\n".join(stat_lines(diffstat(text))) + "\n")
    else:
        out.write(text if text.endswith("\n") or not text else text + "\n")
    return 0


def diff_main(args: argparse.Namespace) -> int:
    """`diff GOAL [--stat]`: the staged change of a Goal awaiting approval, checked against the
    hash its status names, control characters escaped."""
    return run(_diff, args)


# ------------------------------------------------------------------------------ approve, reject


def person(cluster: Cluster) -> str:
    """Who is approving or rejecting: the context's kubeconfig user, printable, at most 253
    characters; `unknown` without one."""
    name = "".join(char for char in cluster.user if char.isprintable())[:MAX_USER_LENGTH]
    return name.strip() or "unknown"


def cut_reason(reason: str, limit: int = MAX_REASON_BYTES) -> str:
    """`reason` cut to `limit` bytes of UTF-8, never inside a character."""
    return reason.encode("utf-8")[:limit].decode("utf-8", "ignore")


def patch_guarded(cluster: Cluster, kind: str, name: str, body: Json) -> Json:
    """A JSON merge patch; with `metadata.resourceVersion` in `body`, only if the object has not
    changed since (409 Conflict otherwise, and nothing is written)."""
    try:
        patched: Any = cluster.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            cluster.namespace,
            PLURALS[kind],
            name,
            body,
            _content_type="application/merge-patch+json",
            _request_timeout=TIMEOUT,
        )
    except ApiException as error:
        if error.status == 409:
            raise CommandError(
                f'{KIND_NAMES[kind]} "{name}" changed after it was read (staged again, or its '
                f"status moved on): nothing was written; read it again (`kubectl backlog diff "
                f"{name}`) and decide again"
            ) from None
        if error.status == 404:
            raise CommandError(
                f'{KIND_NAMES[kind]} "{name}" not found in namespace "{cluster.namespace}"'
            ) from None
        raise
    return cast(Json, patched)


def _approve(cluster: Cluster, args: argparse.Namespace) -> int:
    staged = staged_change(cluster.get("goals", args.name))
    if args.hash is not None and not HASH.fullmatch(args.hash):
        raise CommandError(
            f"--hash {printable(args.hash)[:80]!r} is not a change's hash "
            "(sha256: and 64 lowercase hex digits)"
        )
    if args.hash is not None and args.hash != staged.hash:
        raise CommandError(
            f'--hash {args.hash} is not the change staged for goal "{staged.goal}" '
            f"({staged.hash}): nothing approved; read the staged one with "
            f"`kubectl backlog diff {staged.goal}`"
        )
    now = datetime.now(UTC)
    if staged.expires_at is not None and staged.expires_at <= now:
        raise CommandError(
            f'the staged change of goal "{staged.goal}" expired at {expiry_text(staged, now)}: '
            f"nothing approved (the operator ends the goal ApprovalExpired; `kubectl backlog "
            f"rerun {staged.goal}` then stages it again)"
        )
    if ANNOTATION_REJECTED in staged.annotations:
        by = staged.annotations.get(ANNOTATION_REJECTED_BY, "unknown")
        raise CommandError(f'goal "{staged.goal}" is rejected already (by {printable(by)})')
    if staged.annotations.get(ANNOTATION_APPROVED_PATCH) == staged.hash:
        # Approved already: the record of who approved first stays as it is.
        by = printable(staged.annotations.get(ANNOTATION_APPROVED_BY, "unknown"))
        print(f"goal/{staged.goal} is approved already by {by}: {staged.hash}")
        return 0
    user = person(cluster)
    annotations = {ANNOTATION_APPROVED_PATCH: staged.hash, ANNOTATION_APPROVED_BY: user}
    body = {"metadata": {"resourceVersion": staged.resource_version, "annotations": annotations}}
    patch_guarded(cluster, "goals", staged.goal, body)
    print(
        f"goal/{staged.goal} approved by {user}: {staged.hash} "
        f"(base {printable(staged.base)}, branch {printable(staged.branch)})"
    )
    return 0


def approve_main(args: argparse.Namespace) -> int:
    """`approve GOAL [--hash sha256:...]`: approve the staged change (with --hash: only if it is
    that one); the operator then publishes exactly it."""
    return run(_approve, args)


def _reject(cluster: Cluster, args: argparse.Namespace) -> int:
    staged = staged_change(cluster.get("goals", args.name))
    if staged.annotations.get(ANNOTATION_APPROVED_PATCH) == staged.hash:
        by = staged.annotations.get(ANNOTATION_APPROVED_BY, "unknown")
        raise CommandError(
            f'goal "{staged.goal}" is approved already (by {printable(by)}) and about to be '
            f"published: not rejected (delete the goal to stop it)"
        )
    user, reason = person(cluster), cut_reason(args.reason)
    annotations = {ANNOTATION_REJECTED: reason, ANNOTATION_REJECTED_BY: user}
    body = {"metadata": {"resourceVersion": staged.resource_version, "annotations": annotations}}
    patch_guarded(cluster, "goals", staged.goal, body)
    cut = " (cut to 1 KiB)" if reason != args.reason else ""
    print(f"goal/{staged.goal} rejected by {user}: {staged.hash}{cut}")
    return 0


def reject_main(args: argparse.Namespace) -> int:
    """`reject GOAL --reason TEXT`: reject the staged change; the goal ends Failed (Rejected)."""
    return run(_reject, args)


# -------------------------------------------------------------------------------------- revive


def _revive(cluster: Cluster, args: argparse.Namespace) -> int:
    key = revive_annotation(args.task)
    if key is None:
        raise CommandError(
            f"{printable(args.task)[:80]!r} is not a task id a Backlog selects: 1 to 63 of "
            "A-Z a-z 0-9 . _ -, a letter or digit at both ends"
        )
    backlog = cluster.get("backlogs", args.name)
    value = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch_guarded(cluster, "backlogs", args.name, {"metadata": {"annotations": {key: value}}})
    print(f"backlog/{args.name} task {args.task} revived ({key}={value})")
    declined = (backlog.get("status") or {}).get("declined") or []
    found = next((d for d in declined if isinstance(d, Mapping) and d.get("id") == args.task), None)
    if found is None:
        print(
            f"task {args.task} is not declined as of the Backlog's last sync (status.declined): "
            "this changes nothing until a pull request of it closed, or a rejection of its "
            "staged change, before now is seen"
        )
        return 0
    why = declined_text(found)
    print(f"task {args.task} was declined ({why}): the next sync may select it again")
    return 0


def revive_main(args: argparse.Namespace) -> int:
    """`revive BACKLOG TASK`: select a declined task again (`revive.backlog.dev/<task>`)."""
    return run(_revive, args)
