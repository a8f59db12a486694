"""Every reason the code emits is documented (docs/operator.md or docs/worker.md).

An AST walk over `operator/backlog_operator` collects the reason literals of the calls that
emit one: worker and operator failures (`failure`, `StepFailure`, `GitError`, `ForgeError`,
`ClassifiedError`, `JobRefusedError`), events (`Event(kind, reason, ...)`), conditions
(`mark_ready`/`mark_reconciling`/`mark_stalled`/`mark_failing`, `Condition(reason=...)`) and the
Goal reconciler's phase writers (`_status`, `_wait`). A name bound to a string at a module's
top level (`DISRUPTED = "Disrupted"`) counts as its string. A reason computed at run time (a
waiting reason from the kubelet, a Job condition's reason) is not a literal and is not here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "backlog_operator"
DOCS = (ROOT / "docs" / "operator.md", ROOT / "docs" / "worker.md")

# The call's name -> the position of its reason (the `reason=` keyword counts too).
REASON_POSITION = {
    "failure": 0,
    "StepFailure": 0,
    "GitError": 0,
    "ForgeError": 0,
    "ClassifiedError": 0,
    "JobRefusedError": 0,
    "Event": 1,
    "mark_ready": 1,
    "mark_reconciling": 1,
    "mark_stalled": 1,
    "mark_failing": 1,
    "Condition": None,  # keyword only
    "_status": 2,  # GoalReconciler._status(status, phase, reason, message, generation)
    "_wait": 1,  # GoalReconciler._wait(status, reason, message, generation)
}
# A reason is a CamelCase word (what Kubernetes reasons are).
REASON = re.compile(r"^[A-Z][A-Za-z0-9]+$")


def _name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _constants(tree: ast.Module) -> dict[str, str]:
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            value, targets = node.value, node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            value, targets = node.value, [node.target]
        else:
            continue
        if not isinstance(value, ast.Constant) or not isinstance(value.value, str):
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                found[target.id] = value.value
    return found


def _reason_node(call: ast.Call, position: int | None) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "reason":
            return keyword.value
    if position is not None and len(call.args) > position:
        return call.args[position]
    return None


def _literal(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def emitted_reasons() -> Iterator[tuple[str, str]]:
    """(reason, where) for every reason literal the package emits."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node)
            if name not in REASON_POSITION:
                continue
            reason = _literal(_reason_node(node, REASON_POSITION[name]), constants)
            if reason is not None and REASON.match(reason):
                yield reason, f"{path.relative_to(ROOT)}:{node.lineno}"


def documented() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in DOCS)


def test_the_walk_finds_reasons_of_every_kind() -> None:
    reasons = {reason for reason, _ in emitted_reasons()}
    # One of each kind of call, so a walk that silently finds nothing fails.
    for reason in (
        "JobMissing",  # failure(...) in the Goal reconciler
        "OutOfMemory",  # failure(...) in outcome
        "InvalidSpec",  # Event(...)
        "Disrupted",  # a module constant
        "WorkspaceFull",
        "InvalidImageName",
        "SecretNotFound",
        "ImagePullFailed",
        "StepWaiting",
    ):
        assert reason in reasons, reason
    assert len(reasons) > 40


def test_every_emitted_reason_is_documented() -> None:
    text = documented()
    missing: dict[str, str] = {}
    for reason, where in emitted_reasons():
        if not re.search(rf"`{reason}`", text) and reason not in missing:
            missing[reason] = where
    assert not missing, "reasons the code emits that docs/operator.md and docs/worker.md " + (
        "do not name (as `Reason`): " + ", ".join(f"{r} ({w})" for r, w in sorted(missing.items()))
    )
