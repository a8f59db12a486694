"""The approval gate's decisions, pure and in the Goal reconciler with a given clock: what the
annotations and the time say (`approval.decide`), the expiry found at `expiresAt` (a wake-up at
that time, never polling), a rejection, a refusal said once; the staging and publish-only Jobs'
shape; the frames a staged change travels in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import pytest

from backlog_operator.api.goal import ApprovalStatus, Goal, GoalStatus, Phase
from backlog_operator.api.labels import (
    ANNOTATION_APPROVED_BY,
    ANNOTATION_APPROVED_PATCH,
    ANNOTATION_REJECTED,
    ANNOTATION_REJECTED_BY,
)
from backlog_operator.api.result import Outcome, StagedResult, WorkerResult
from backlog_operator.api.staged_log import (
    StagedLogError,
    digest,
    frame_lines,
    gunzip_patch,
    gzip_patch,
    read_frames,
)
from backlog_operator.controller.goals import job
from backlog_operator.controller.goals.approval import decide, store_staged
from backlog_operator.controller.goals.approval_job import build_publish_job
from backlog_operator.controller.goals.capacity import CapacityTable, entry_for
from backlog_operator.controller.goals.reconciler import GoalReconciler
from backlog_operator.controller.runtime import Runtime
from backlog_operator.controller.settings import OperatorSettings
from backlog_operator.controller.status import timestamp
from backlog_operator.errors import AlreadyExistsError
from tests.unit.fakes import FakeCluster, FixedClock, events_of, wire

T = TypeVar("T")
NS = "default"
UID = "0a1b2c3d-1111-2222-3333-444455556666"
STAGED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EXPIRES = STAGED_AT + timedelta(hours=1)
HASH = "sha256:" + "5e" * 32
SETTINGS = OperatorSettings(worker_image="backlog-operator:test", max_running=1)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def staged(**more: Any) -> ApprovalStatus:
    return ApprovalStatus(
        patch_hash=HASH,
        base_commit="b" * 40,
        branch="backlog/docs-guide-3f9c2a",
        changed_files=["docs/guide.md"],
        patch_config_map="g1-patch",
        staged_at=STAGED_AT,
        expires_at=EXPIRES,
        **more,
    )


def awaiting_goal(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    approval = staged().model_dump(by_alias=True, exclude_none=True, mode="json")
    return {
        "apiVersion": "backlog.dev/v1alpha1",
        "kind": "Goal",
        "metadata": {
            "name": "g1",
            "namespace": NS,
            "uid": UID,
            "generation": 1,
            "creationTimestamp": timestamp(STAGED_AT - timedelta(hours=1)),
            "annotations": annotations or {},
        },
        "spec": {
            "repository": {
                "url": "https://github.com/o/r.git",
                "credentialsSecret": {"name": "github-token"},
            },
            "backlog": {"taskId": "docs-guide"},
            "task": {"image": "busybox:1.37", "command": ["true"]},
            "approval": {"required": True, "expiresAfterSeconds": 3600},
        },
        "status": {
            "phase": "AwaitingApproval",
            "reason": "AwaitingApproval",
            "message": "awaiting approval",
            "observedGeneration": 1,
            "attempts": 1,
            "attemptId": "attempt-docs-guide-abc123",
            "approval": approval,
        },
    }


def reconciler(clock: FixedClock) -> tuple[GoalReconciler, CapacityTable]:
    capacity = CapacityTable()
    return GoalReconciler(FakeCluster(clock=clock), capacity, SETTINGS, clock=clock), capacity


# ------------------------------------------------------------------------------ decide


@pytest.mark.parametrize(
    ("annotations", "now", "expected"),
    [
        ({}, STAGED_AT, ("wait", "unknown", "")),
        ({ANNOTATION_APPROVED_PATCH: HASH}, STAGED_AT, ("approve", "unknown", "")),
        (
            {ANNOTATION_APPROVED_PATCH: HASH, ANNOTATION_APPROVED_BY: "alice"},
            STAGED_AT,
            ("approve", "alice", ""),
        ),
        ({ANNOTATION_APPROVED_PATCH: "sha256:00"}, STAGED_AT, ("refuse", "unknown", "sha256:00")),
        # Expired: an approval no longer counts.
        ({ANNOTATION_APPROVED_PATCH: HASH}, EXPIRES, ("expire", "unknown", "")),
        # A "no" wins over an approval, and over the time.
        (
            {
                ANNOTATION_APPROVED_PATCH: HASH,
                ANNOTATION_REJECTED: "no",
                ANNOTATION_REJECTED_BY: "b",
            },
            EXPIRES,
            ("reject", "b", "no"),
        ),
        ({ANNOTATION_REJECTED: ""}, STAGED_AT, ("reject", "unknown", "")),
        (
            {ANNOTATION_REJECTED: "x", ANNOTATION_REJECTED_BY: "a\nb"},
            STAGED_AT,
            ("reject", "a b", "x"),
        ),
    ],
)
def test_decide(annotations: dict[str, str], now: datetime, expected: tuple[str, str, str]) -> None:
    decision = decide(annotations, staged(), now)
    assert (decision.kind, decision.by, decision.text) == expected


def test_a_rejection_reason_is_cut_to_a_kibibyte() -> None:
    decision = decide({ANNOTATION_REJECTED: "é" * 2000}, staged(), STAGED_AT)
    assert len(decision.text.encode()) <= 1024 and decision.text.startswith("é")


# ------------------------------------------------------------ the reconciler, with a clock


def test_a_change_not_approved_in_time_expires_at_expires_at() -> None:
    clock = FixedClock(EXPIRES - timedelta(seconds=1))
    goals, capacity = reconciler(clock)

    waiting = run(goals.reconcile(awaiting_goal()))

    assert waiting.status is None and waiting.events == []  # nothing to say, nothing polled
    assert capacity.held() == 0  # a goal awaiting approval holds no slot
    status = GoalStatus.model_validate(awaiting_goal()["status"])
    runtime = Runtime(cast(Any, FakeCluster(clock=clock)), SETTINGS, clock=clock)
    assert runtime._next_look(status) == EXPIRES  # the wake-up that finds the expiry

    clock.now = EXPIRES
    expired = run(goals.reconcile(awaiting_goal({ANNOTATION_APPROVED_PATCH: HASH})))

    written = wire(expired)
    assert written is not None
    assert (written["phase"], written["reason"]) == ("Failed", "ApprovalExpired")
    assert written["completionTime"] == timestamp(EXPIRES)
    assert "approvedHash" not in written["approval"]
    assert events_of(expired) == [("Warning", "ApprovalExpired")]


def test_a_rejection_fails_the_goal_with_who_and_why() -> None:
    clock = FixedClock(STAGED_AT + timedelta(minutes=5))
    goals, _ = reconciler(clock)
    body = awaiting_goal({ANNOTATION_REJECTED: "wrong file", ANNOTATION_REJECTED_BY: "bob"})

    result = run(goals.reconcile(body))

    written = wire(result)
    assert written is not None
    assert (written["phase"], written["reason"]) == ("Failed", "Rejected")
    assert written["message"] == "rejected by bob: wrong file"
    assert written["approval"]["rejectedBy"] == "bob"
    assert written["approval"]["rejectedAt"] == timestamp(clock.now)
    assert events_of(result) == [("Warning", "Rejected")]


def test_a_wrong_hash_is_refused_once_per_value() -> None:
    clock = FixedClock(STAGED_AT + timedelta(minutes=5))
    goals, _ = reconciler(clock)
    body = awaiting_goal({ANNOTATION_APPROVED_PATCH: "sha256:" + "00" * 32})

    first = run(goals.reconcile(body))
    written = wire(first)
    assert written is not None and written["phase"] == "AwaitingApproval"
    assert events_of(first) == [("Warning", "ApprovalRefused")]

    body["status"] = written
    again = run(goals.reconcile(body))
    assert again.status is None and again.events == []


def test_a_staging_attempt_frees_its_slot_and_holds_its_task() -> None:
    clock = FixedClock(STAGED_AT)
    goals, capacity = reconciler(clock)
    awaiting = Goal.model_validate(awaiting_goal())
    capacity.put(entry_for(awaiting, awaiting.status or GoalStatus()))
    same_task = awaiting_goal()
    same_task["metadata"].update(name="g2", uid="9" * 36)
    del same_task["status"]

    result = run(goals.reconcile(same_task))

    written = wire(result)
    assert written is not None
    assert (written["phase"], written["reason"]) == ("Queued", "WaitingForTask")
    assert capacity.held() == 0


# -------------------------------------------------------------------------- the Jobs


def test_the_staging_job_gives_the_token_to_clone_only() -> None:
    goal = Goal.model_validate(awaiting_goal())
    manifest = job.build_job(goal, 1, SETTINGS)
    spec = manifest["spec"]["template"]["spec"]
    clone, task = spec["initContainers"]
    [main] = spec["containers"]
    assert main["args"] == ["worker", "stage"]
    assert all(m["name"] != "credentials" for m in main["volumeMounts"] + task["volumeMounts"])
    assert "BACKLOG_TOKEN_FILE" not in {e["name"] for e in main["env"]}
    assert any(m["name"] == "credentials" for m in clone["volumeMounts"])


def test_the_publish_only_job_has_one_container_and_the_approved_hash() -> None:
    body = awaiting_goal()
    approval = staged(approved_hash=HASH, approved_by="alice", approved_at=STAGED_AT)
    status = GoalStatus.model_validate(body["status"]).model_copy(update={"approval": approval})
    goal = Goal.model_validate(body)

    manifest = build_publish_job(goal, status, 2, SETTINGS)

    assert manifest["metadata"]["name"] == "g1-0a1b2-p2"
    assert manifest["metadata"]["labels"]["backlog.dev/attempt"] == "p2"
    spec = manifest["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    [container] = spec["containers"]
    assert container["args"][:4] == ["worker", "apply", "--hash", HASH]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["BACKLOG_ATTEMPT_ID"] == "attempt-docs-guide-abc123"
    assert env["BACKLOG_TOKEN_FILE"].startswith("/var/run/secrets/backlog/")
    staged_volume = next(v for v in spec["volumes"] if v["name"] == "staged")
    assert staged_volume["configMap"]["name"] == "g1-patch"
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == UID
    assert Phase.AWAITING_APPROVAL.value == "AwaitingApproval"


# ----------------------------------------------------------------------------- frames


def test_frames_round_trip_and_a_damaged_log_is_refused() -> None:
    manifest, patch = b'{"patchHash": "x"}', b"diff --git a/x b/x\n" * 500
    packed = gzip_patch(patch)
    assert packed == gzip_patch(patch)  # the same bytes every time: the digest is stable
    lines = list(frame_lines(manifest, packed))
    assert max(len(line) for line in lines) <= 76
    log = "backlog INFO before\n" + "\n".join(lines) + '\n{"outcome":"staged"}\n'

    assert read_frames(log) == (manifest, packed)
    assert gunzip_patch(packed, limit=len(patch)) == patch
    with pytest.raises(StagedLogError):
        gunzip_patch(packed, limit=len(patch) - 1)
    with pytest.raises(StagedLogError):
        read_frames("\n".join(lines[:-1]))  # no end frame: cut
    with pytest.raises(StagedLogError):
        read_frames(log.replace(lines[3], lines[3][:-1] + "!"))  # not base64


# ------------------------------------------------------------------- storing the change


class PatchStoreFake:
    """Just the calls `store_staged` makes: a log per Pod, ConfigMaps by name."""

    def __init__(self) -> None:
        self.logs: dict[str, str] = {}
        self.config_maps: dict[str, dict[str, Any]] = {}

    async def pod_log(
        self, namespace: str, pod: str, container: str, *, max_bytes: int
    ) -> str | None:
        assert pod, "a log is read from a named Pod only"
        return self.logs.get(pod)

    async def create_config_map(self, manifest: Any) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        if name in self.config_maps:
            raise AlreadyExistsError(name)
        self.config_maps[name] = dict(manifest)
        return dict(manifest)

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.config_maps.get(name)

    async def patch_config_map(self, namespace: str, name: str, patch: Any) -> dict[str, Any]:
        self.config_maps[name].update(patch)
        return self.config_maps[name]


def staged_result() -> tuple[WorkerResult, str]:
    manifest = json.dumps(
        {"patchHash": HASH, "baseCommit": "b" * 40, "branch": "backlog/docs-guide-3f9c2a"}
    ).encode()
    packed = gzip_patch(b"diff --git a/x b/x\n")
    result = WorkerResult(
        outcome=Outcome.STAGED,
        branch="backlog/docs-guide-3f9c2a",
        staged=StagedResult(
            patch_hash=HASH,
            base_commit="b" * 40,
            patch_bytes=19,
            patch_gzip_bytes=len(packed),
            patch_digest=digest(packed),
            manifest_digest=digest(manifest),
        ),
    )
    return result, "\n".join(frame_lines(manifest, packed))


def test_a_staged_change_whose_pod_is_gone_is_staged_again() -> None:
    result, _ = staged_result()
    goal = Goal.model_validate(awaiting_goal())

    stored = run(store_staged(PatchStoreFake(), goal, result, None, STAGED_AT))

    assert not isinstance(stored, ApprovalStatus)
    assert (stored.reason, stored.retryable) == ("StagedPatchUnreadable", True)


def test_a_foreign_configmap_of_the_patchs_name_is_never_overwritten() -> None:
    result, log = staged_result()
    goal = Goal.model_validate(awaiting_goal())
    store = PatchStoreFake()
    store.logs["pod-1"] = log
    foreign = {"metadata": {"name": "g1-patch", "labels": {}}, "data": {"keep": "me"}}
    store.config_maps["g1-patch"] = foreign
    pod = {"metadata": {"name": "pod-1"}}

    stored = run(store_staged(store, goal, result, pod, STAGED_AT))

    assert not isinstance(stored, ApprovalStatus)
    assert (stored.reason, stored.retryable) == ("PatchConfigMapConflict", False)
    assert store.config_maps["g1-patch"] == foreign

    del store.config_maps["g1-patch"]
    kept = run(store_staged(store, goal, result, pod, STAGED_AT))
    assert isinstance(kept, ApprovalStatus)
    assert kept.expires_at == STAGED_AT + timedelta(seconds=3600)  # spec.approval's 3600
