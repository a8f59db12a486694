"""The day-two commands against a cluster: `get`, `status`, `logs`, `rerun`, `reconcile`,
`suspend` and `resume`.

A CLI may block, so this uses the official client synchronously, reading objects as plain JSON
dicts. It only reads, sets the annotation a person sets to ask for something
(`backlog.dev/requested-at`), and sets `spec.suspend`: the operator does the rest. Human text
and errors go to stderr, tables and `-o json|yaml` to stdout; any failure exits 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import yaml
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from backlog_operator.api.common import GROUP, VERSION
from backlog_operator.api.labels import (
    ANNOTATION_REQUESTED_AT,
    LABEL_ATTEMPT,
    LABEL_BACKLOG,
    LABEL_BACKLOG_UID,
    LABEL_GOAL_UID,
    LABEL_HEAL,
    LABEL_RUN,
    LABEL_SCHEDULE,
    LABEL_TASK,
    name_selector,
)
from backlog_operator.naming import label_value

Json = dict[str, Any]

PLURALS = {"goals": "goals", "backlogs": "backlogs", "schedules": "goalschedules"}
KIND_NAMES = {"goals": "goal", "backlogs": "backlog", "schedules": "goalschedule"}
# The labels the Job controller sets on a Job's Pods: the Job's name.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"
# The kubeconfig loader is untyped; called through Any, as the rest of the client's JSON.
config: Any = kube_config
# (connect, read) seconds: a cluster that never answers fails the command, never hangs it.
TIMEOUT = (10.0, 60.0)
# PR column of a Backlog or GoalSchedule: the pull requests of its Goals, the first few.
MAX_PRS_SHOWN = 3


class CommandError(Exception):
    """A failure to tell the person (on stderr, exit 1)."""


@dataclass
class Cluster:
    """The API client and the namespace the command works in."""

    api: client.ApiClient
    namespace: str
    #: The kubeconfig user of the context in use (who approves or rejects), or "unknown".
    user: str = "unknown"

    @property
    def custom(self) -> client.CustomObjectsApi:
        """Goals, Backlogs and GoalSchedules."""
        return client.CustomObjectsApi(self.api)

    def raw_get(self, path: str, query: list[tuple[str, str]], *, timeout: Any = TIMEOUT) -> Any:
        """GET a core API path; the unread response (to stream it), or ApiException.

        Pods and their logs go through here rather than `CoreV1Api`, whose module alone takes
        seconds to import: a CLI command should not wait for the whole core API's bindings.
        """
        method, url, headers, body, post = self.api.param_serialize(
            "GET", path, query_params=query, header_params={}, auth_settings=["BearerToken"]
        )
        response: Any = self.api.call_api(
            method, url, headers, body, post, _request_timeout=timeout
        )
        if not 200 <= response.status < 300:
            error = ApiException(status=response.status, reason=response.reason)
            error.body = response.read().decode("utf-8", "replace")
            raise error
        return response.response

    def get(self, kind: str, name: str) -> Json:
        """One object of ours, or a CommandError naming what is missing."""
        try:
            obj: Any = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURALS[kind], name, _request_timeout=TIMEOUT
            )
        except ApiException as error:
            if error.status == 404:
                raise CommandError(
                    f'{KIND_NAMES[kind]} "{name}" not found in namespace "{self.namespace}"'
                ) from None
            raise
        return cast(Json, obj)

    def list(self, kind: str, *, all_namespaces: bool = False, selector: str = "") -> list[Json]:
        """The objects of a kind, in the namespace or in all of them."""
        custom, plural = self.custom, PLURALS[kind]
        if all_namespaces:
            found: Any = custom.list_cluster_custom_object(
                GROUP, VERSION, plural, label_selector=selector, _request_timeout=TIMEOUT
            )
        else:
            found = custom.list_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                plural,
                label_selector=selector,
                _request_timeout=TIMEOUT,
            )
        items: list[Json] = found.get("items") or []
        return sorted(items, key=lambda o: (_meta(o).get("namespace", ""), _meta(o)["name"]))

    def patch(self, kind: str, name: str, body: Json) -> Json:
        """A JSON merge patch of one object (annotations, spec.suspend)."""
        self.get(kind, name)  # a clear "not found" rather than the server's
        patched: Any = self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURALS[kind],
            name,
            body,
            _content_type="application/merge-patch+json",
            _request_timeout=TIMEOUT,
        )
        return cast(Json, patched)


def connect(args: argparse.Namespace) -> Cluster:
    """The client from the kubeconfig (`--kubeconfig`, `$KUBECONFIG`, ~/.kube/config) and its
    context, or from inside a Pod; the namespace from `-n`, else the context's, else default."""
    namespace, user = getattr(args, "namespace", None), None
    try:
        api = config.new_client_from_config(config_file=args.kubeconfig, context=args.context)
        contexts, current = config.list_kube_config_contexts(config_file=args.kubeconfig)
        if args.context is not None:
            current = next(c for c in contexts if c["name"] == args.context)
        context = current.get("context") or {}
        namespace = namespace or context.get("namespace")
        user = context.get("user")
    except (ConfigException, StopIteration, OSError) as error:
        if args.kubeconfig is not None or args.context is not None:
            raise CommandError(f"cannot use the kubeconfig: {error}") from None
        api = _in_cluster(error)
    return Cluster(api=api, namespace=namespace or "default", user=str(user or "unknown"))


def _in_cluster(reason: Exception) -> client.ApiClient:
    """The client of a Pod's service account, where there is no kubeconfig."""
    try:
        config.load_incluster_config()
    except ConfigException:
        raise CommandError(f"no cluster configured: {reason}") from None
    return client.ApiClient()


def run(command: Callable[[Cluster, argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Connect and run a command; API and connection failures become one line on stderr."""
    try:
        cluster = connect(args)
        with cluster.api:
            return command(cluster, args)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
    except ApiException as error:
        print(
            f"error: the API server answered {error.status}: {_api_message(error)}", file=sys.stderr
        )
    except HTTPError as error:
        print(f"error: cannot reach the API server: {error}", file=sys.stderr)
    except KeyboardInterrupt:  # ^C, the usual end of `logs -f`: no traceback
        return 130
    return 1


def _api_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        return str(error.reason)


# ----------------------------------------------------------------------------------- helpers


def _meta(obj: Mapping[str, Any]) -> Json:
    return dict(obj.get("metadata") or {})


def _status(obj: Mapping[str, Any]) -> Json:
    return dict(obj.get("status") or {})


def _condition(obj: Mapping[str, Any], kind: str = "Ready") -> Json:
    for condition in _status(obj).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def age(timestamp: str | None, now: datetime) -> str:
    """kubectl's AGE: `45s`, `12m`, `3h4m`, `5d`; `<unknown>` without a timestamp."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 24:
        return f"{hours}h{minutes % 60}m" if hours < 6 and minutes % 60 else f"{hours}h"
    return f"{hours // 24}d"


def table(rows: Iterable[Iterable[str]]) -> str:
    """Columns padded as kubectl pads them (three spaces between)."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells
    )


def dump(document: Any, output: str) -> None:
    """`-o json` or `-o yaml` on stdout."""
    if output == "json":
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(yaml.safe_dump(document, sort_keys=False))


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# What a terminal may act on: C0 controls but newline and tab (ESC starts every escape
# sequence; a carriage return overwrites a line), DEL and the C1 controls (U+009B is a CSI of
# its own), and the Unicode controls that reorder or break lines as displayed (bidirectional
# overrides and isolates: "Trojan Source"; line and paragraph separators).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def printable(text: str) -> str:
    """`text` with every character a terminal could act on written as `\\xNN` or `\\uNNNN`
    (newlines and tabs kept)."""
    return _UNSAFE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# ---------------------------------------------------------------------------------------- get

# STATUS is cut to this in the default table (`-o wide` shows it whole).
STATUS_WIDTH = 80


def status_message(obj: Mapping[str, Any]) -> str:
    """What the object says of itself: its Ready condition's message, else its status's."""
    ready, status = _condition(obj), _status(obj)
    text = ready.get("message") or status.get("message") or status.get("phase") or ""
    return " ".join(str(text).split())  # one line in a table


def _pull_requests(goals: Iterable[Mapping[str, Any]]) -> str:
    numbers = [
        f"#{pr['number']}"
        for goal in goals
        if isinstance(pr := _status(goal).get("pullRequest"), Mapping) and "number" in pr
    ]
    if len(numbers) > MAX_PRS_SHOWN:
        return ",".join(numbers[:MAX_PRS_SHOWN]) + f",+{len(numbers) - MAX_PRS_SHOWN}"
    return ",".join(numbers)


def _goals_by_owner(goals: Iterable[Json], label: str) -> dict[tuple[str, str], list[Json]]:
    """The Goals carrying `label`, by (namespace, label value)."""
    owned: dict[tuple[str, str], list[Json]] = {}
    for goal in goals:
        value = (_meta(goal).get("labels") or {}).get(label)
        if value:
            owned.setdefault((_meta(goal).get("namespace", ""), value), []).append(goal)
    return owned


def _wide_columns(kind: str, obj: Mapping[str, Any], now: datetime) -> list[str]:
    status, spec = _status(obj), dict(obj.get("spec") or {})
    if kind == "goals":
        pr = status.get("pullRequest") or {}
        return [
            str(status.get("phase") or ""),
            str(status.get("taskId") or ""),
            str(status.get("attempts") or 0),
            str(status.get("step") or ""),
            str(pr.get("url") or ""),
        ]
    if kind == "backlogs":
        return [
            str(status.get("readyCount") if status.get("readyCount") is not None else ""),
            str(status.get("inProgressCount") if status.get("inProgressCount") is not None else ""),
            str(status.get("shortCommit") or ""),
            str(bool(spec.get("suspend"))).lower(),
        ]
    last = status.get("lastScheduleTime")
    return [
        str(spec.get("schedule") or ""),
        str(bool(spec.get("suspend"))).lower(),
        str(status.get("activeCount") or 0),
        age(last, now) if last else "<none>",
    ]


WIDE_HEADERS = {
    "goals": ["PHASE", "TASK", "ATTEMPTS", "STEP", "PR URL"],
    "backlogs": ["READY TASKS", "IN PROGRESS", "COMMIT", "SUSPEND"],
    "schedules": ["SCHEDULE", "SUSPEND", "ACTIVE", "LAST SCHEDULE"],
}


def get_rows(
    kind: str, objects: list[Json], goals: list[Json], *, wide: bool, all_namespaces: bool
) -> list[list[str]]:
    """The table of `get`, header first: NAME READY STATUS PR AGE (and the wide columns)."""
    now = datetime.now(UTC)
    header = ["NAME", "READY", "STATUS", "PR", "AGE"]
    rows = [
        (["NAMESPACE"] if all_namespaces else []) + header + (WIDE_HEADERS[kind] if wide else [])
    ]
    label = LABEL_BACKLOG if kind == "backlogs" else LABEL_SCHEDULE
    owned = _goals_by_owner(goals, label)
    for obj in objects:
        meta = _meta(obj)
        if kind == "goals":
            prs = _pull_requests([obj])
        else:
            prs = _pull_requests(
                owned.get((meta.get("namespace", ""), label_value(meta["name"])), [])
            )
        message = status_message(obj)
        if not wide and len(message) > STATUS_WIDTH:
            message = message[: STATUS_WIDTH - 3] + "..."
        row = [
            meta["name"],
            str(_condition(obj).get("status") or "Unknown"),
            message or "-",
            prs or "-",
            age(meta.get("creationTimestamp"), now),
        ]
        if all_namespaces:
            row.insert(0, str(meta.get("namespace") or ""))
        rows.append(row + (_wide_columns(kind, obj, now) if wide else []))
    return rows


def _get(cluster: Cluster, args: argparse.Namespace) -> int:
    kind = args.kind
    if args.names:
        objects = [cluster.get(kind, name) for name in args.names]
    else:
        objects = cluster.list(kind, all_namespaces=args.all_namespaces)
    if args.output in ("json", "yaml"):
        if args.names and len(objects) == 1:
            dump(objects[0], args.output)
        else:
            dump({"apiVersion": "v1", "kind": "List", "items": objects}, args.output)
        return 0
    if not objects:
        where = "any namespace" if args.all_namespaces else f'namespace "{cluster.namespace}"'
        print(f"No {PLURALS[kind]} found in {where}.", file=sys.stderr)
        return 0
    goals = [] if kind == "goals" else cluster.list("goals", all_namespaces=args.all_namespaces)
    rows = get_rows(
        kind, objects, goals, wide=args.output == "wide", all_namespaces=args.all_namespaces
    )
    print(table(rows))
    return 0


def get_main(args: argparse.Namespace) -> int:
    """`get goals|backlogs|schedules [NAME...]`: a table, or the objects as JSON or YAML."""
    return run(_get, args)


# ------------------------------------------------------------ rerun, reconcile, suspend, resume


def _request(kind: str) -> Callable[[Cluster, argparse.Namespace], int]:
    def command(cluster: Cluster, args: argparse.Namespace) -> int:
        value = _now_text()
        body = {"metadata": {"annotations": {ANNOTATION_REQUESTED_AT: value}}}
        cluster.patch(kind, args.name, body)
        done = "re-run requested" if kind == "goals" else "sync requested"
        print(f"{KIND_NAMES[kind]}/{args.name} {done} ({ANNOTATION_REQUESTED_AT}={value})")
        return 0

    return command


def rerun_main(args: argparse.Namespace) -> int:
    """`rerun GOAL`: set the re-run annotation; the operator runs a finished goal again."""
    return run(_request("goals"), args)


def reconcile_main(args: argparse.Namespace) -> int:
    """`reconcile BACKLOG`: set the same annotation on a Backlog; the operator syncs it now."""
    return run(_request("backlogs"), args)


def _suspend(cluster: Cluster, args: argparse.Namespace) -> int:
    cluster.patch(args.kind, args.name, {"spec": {"suspend": bool(args.suspend)}})
    print(f"{KIND_NAMES[args.kind]}/{args.name} {'suspended' if args.suspend else 'resumed'}")
    return 0


def suspend_main(args: argparse.Namespace) -> int:
    """`suspend|resume KIND NAME`: set `spec.suspend` (running goals are left to finish)."""
    return run(_suspend, args)


# ------------------------------------------------------------------------------------- status

FINISHED = frozenset({"Succeeded", "Failed", "Skipped", "Rejected"})


def backlog_view(backlog: Mapping[str, Any], goals: list[Json], today: str | None = None) -> Json:
    """What `status BACKLOG` shows, as JSON: the Backlog's last sync (tasks ready, blocked and
    why, in progress, completed, awaiting approval, conflicted, declined) with its Goals (step,
    pull request), its limits' usage, and what its tasks reported they used on the UTC day
    `today` (default: now's) with its budget."""
    meta, spec, status = _meta(backlog), dict(backlog.get("spec") or {}), _status(backlog)
    limits = spec.get("limits") or {}
    goal_rows = []
    for goal in goals:
        goal_status = _status(goal)
        goal_rows.append(
            {
                "goal": _meta(goal)["name"],
                "task": goal_status.get("taskId")
                or (_meta(goal).get("labels") or {}).get(LABEL_TASK),
                "phase": goal_status.get("phase") or "Pending",
                "step": goal_status.get("step"),
                "attempt": goal_status.get("attempts") or 0,
                "pullRequest": goal_status.get("pullRequest"),
                "message": status_message(goal),
            }
        )
    running = [row for row in goal_rows if row["phase"] not in FINISHED]
    with_pr = [row for row in goal_rows if row["pullRequest"]]
    return {
        "backlog": meta["name"],
        "namespace": meta.get("namespace"),
        "repository": (spec.get("repository") or {}).get("url"),
        "path": spec.get("path", ".backlog/backlog.yaml"),
        "suspended": bool(spec.get("suspend")),
        "ready": _condition(backlog).get("status", "Unknown"),
        "message": status_message(backlog),
        "lastSyncTime": status.get("lastSyncTime"),
        "commit": status.get("shortCommit"),
        "counts": status.get("counts") or {},
        "readyTasks": status.get("ready") or [],
        "readyCount": status.get("readyCount", len(status.get("ready") or [])),
        "blocked": status.get("blocked") or [],
        "inProgress": status.get("inProgress") or [],
        "completed": status.get("completed") or [],
        "awaitingApproval": status.get("awaitingApproval") or [],
        "conflicted": status.get("conflicted") or [],
        "declined": status.get("declined") or [],
        "goals": goal_rows,
        "running": running,
        "pullRequests": with_pr,
        "usage": {
            "runningGoals": len(running),
            "maxRunningGoals": limits.get("maxRunningGoals", 1),
            "goalsWithPullRequests": len(with_pr),
            "maxOpenPullRequests": limits.get("maxOpenPullRequests", 5),
        },
        "taskUsage": task_usage(status, today or datetime.now(UTC).date().isoformat()),
    }


def task_usage(status: Mapping[str, Any], today: str) -> Json:
    """An owner's usage of the UTC day `today` (`status.usage.days`; zero when it has none)
    and its budget's state (`status.budget`; None without one)."""
    days = (status.get("usage") or {}).get("days") or []
    found = next((day for day in days if isinstance(day, Mapping) and day.get("date") == today), {})
    return {
        "date": today,
        "attempts": found.get("attempts", 0),
        "inputTokens": found.get("inputTokens", 0),
        "outputTokens": found.get("outputTokens", 0),
        "costs": found.get("costs") or [],
        "withoutCost": found.get("withoutCost", 0),
        "withoutTokens": found.get("withoutTokens", 0),
        "budget": status.get("budget"),
    }


def usage_lines(usage: Mapping[str, Any]) -> Iterator[str]:
    """The human text of an owner's usage today and its budget."""
    costs = ", ".join(f"{cost.get('amount')} {cost.get('currency')}" for cost in usage["costs"])
    yield (
        f"Task usage today ({usage['date']} UTC): {usage['attempts']} attempt(s), "
        f"{usage['inputTokens']} input + {usage['outputTokens']} output tokens, "
        f"cost {costs or 'none reported'}"
    )
    if usage["withoutCost"] or usage["withoutTokens"]:
        yield (
            f"  attempts whose task reported no cost: {usage['withoutCost']}, "
            f"no tokens: {usage['withoutTokens']}"
        )
    budget = usage["budget"]
    if not budget:
        yield "Budget: none (spec.budget is not set)"
    elif budget.get("exhausted"):
        yield f"Budget: SPENT ({budget.get('reason')}): {budget.get('message', '')}".rstrip()
    else:
        yield f"Budget: available: {budget.get('message', '')}".rstrip()


def _ids(ids: list[str], total: int | None = None) -> str:
    more = (total or len(ids)) - len(ids)
    return ", ".join(ids) + (f" (and {more} more)" if more > 0 else "") if ids else "none"


def status_lines(view: Mapping[str, Any]) -> Iterator[str]:
    """The human text of `status BACKLOG`."""
    counts = view["counts"]
    yield f"Backlog {view['namespace']}/{view['backlog']}: {view['repository']} {view['path']}"
    synced = view["lastSyncTime"] or "never"
    yield f"Ready: {view['ready']}  {view['message']}".rstrip()
    yield f"Last sync: {synced}, commit {view['commit'] or '-'}"
    if view["suspended"]:
        yield "Suspended: spec.suspend is true (nothing new starts)"
    if counts:
        yield "Tasks: " + ", ".join(f"{number} {state}" for state, number in counts.items())
    yield f"Ready ({view['readyCount']}, in selection order): " + _ids(
        view["readyTasks"], view["readyCount"]
    )
    yield f"Blocked ({len(view['blocked'])}):" + ("" if view["blocked"] else " none")
    for entry in view["blocked"]:
        why = entry.get("message") or ", ".join(entry.get("requires") or [])
        yield f"  {entry['id']}: {entry.get('reason')}: {why}"
    yield f"In progress ({len(view['running'])}):" + ("" if view["running"] else " none")
    for row in view["running"]:
        step = f", step {row['step']}" if row["step"] else ""
        yield f"  {row['task']}: goal {row['goal']} {row['phase']}{step}, attempt {row['attempt']}"
    yield f"Completed ({counts.get('completed', len(view['completed']))}): " + _ids(
        view["completed"], counts.get("completed")
    )
    yield f"Pull requests ({len(view['pullRequests'])}):" + (
        "" if view["pullRequests"] else " none"
    )
    for row in view["pullRequests"]:
        pr = row["pullRequest"]
        yield f"  #{pr.get('number')} {row['task']} ({row['phase']}) {pr.get('url', '')}".rstrip()
    yield from attention_lines(view, datetime.now(UTC))
    usage = view["usage"]
    yield (
        f"Usage: {usage['runningGoals']}/{usage['maxRunningGoals']} goals running, "
        f"{usage['goalsWithPullRequests']} goals with a pull request "
        f"(at most {usage['maxOpenPullRequests']} open at once)"
    )
    yield from usage_lines(view["taskUsage"])


def attention_lines(view: Mapping[str, Any], now: datetime) -> Iterator[str]:
    """The tasks waiting on a person: a staged change to approve (its hash and expiry), an open
    pull request that conflicts and was not healed (why, and the files), a declined task."""
    awaiting, conflicted, declined = view["awaitingApproval"], view["conflicted"], view["declined"]
    yield f"Awaiting approval ({len(awaiting)}):" + ("" if awaiting else " none")
    for entry in awaiting:
        yield (
            f"  {entry.get('task')}: goal {entry.get('goal')}, change {entry.get('patchHash')}, "
            f"expires {expiry(entry.get('expiresAt'), now)}"
        )
    yield f"Conflicted ({len(conflicted)}):" + ("" if conflicted else " none")
    for entry in conflicted:
        pr = entry.get("pullRequest") or {}
        files = [printable(str(name)) for name in entry.get("conflictedFiles") or []]
        where = f" in {', '.join(files)}" if files else ""
        yield (
            f"  {entry.get('id')}: pull request #{pr.get('number')} (goal {entry.get('goal')}): "
            f"{entry.get('reason')}{where}"
        )
    yield f"Declined ({len(declined)}):" + ("" if declined else " none")
    for entry in declined:
        yield f"  {entry.get('id')}: {declined_text(entry)}"


def expiry(value: Any, now: datetime) -> str:
    """An expiry time as written, and how long is left (or that it has passed)."""
    if not isinstance(value, str) or not value:
        return "unknown"
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return printable(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{text} (expired)" if when <= now else f"{text} (in {age(now.isoformat(), when)})"


def declined_text(declined: Mapping[str, Any]) -> str:
    """Why a task is declined, from its `status.declined` entry: its staged change was rejected
    (`reason: Rejected`, with the goal's message), or its pull request was closed."""
    by = f" by {printable(str(declined['closedBy']))}" if declined.get("closedBy") else ""
    if declined.get("reason") == "Rejected":
        goal = printable(str(declined.get("goal") or "")) or "its goal"
        message = " ".join(printable(str(declined.get("message") or "")).split())
        said = f"; goal {goal} says: {message}" if message else f" (goal {goal})"
        return f"its staged change was rejected{by}{said}"
    pull = declined.get("pullRequest")
    number = pull.get("number") if isinstance(pull, Mapping) else None
    if number is None:
        return f"its pull request was closed{by}"
    return f"pull request #{number} closed{by}"


def _status_command(cluster: Cluster, args: argparse.Namespace) -> int:
    backlog = cluster.get("backlogs", args.name)
    goals = cluster.list("goals", selector=name_selector(LABEL_BACKLOG, args.name))
    uid = _meta(backlog).get("uid")
    # Only this Backlog's Goals, not those of an earlier Backlog of the same name.
    goals = [g for g in goals if uid is None or _owned_by(g, uid)]
    view = backlog_view(backlog, goals)
    if args.output:
        dump(view, args.output)
    else:
        print("\n".join(status_lines(view)))
    return 0


def _owned_by(goal: Mapping[str, Any], uid: str) -> bool:
    references = _meta(goal).get("ownerReferences") or []
    labels = _meta(goal).get("labels") or {}
    return any(ref.get("uid") == uid for ref in references) or (
        labels.get(LABEL_BACKLOG_UID) == uid
    )


def status_main(args: argparse.Namespace) -> int:
    """`status BACKLOG`: its tasks as of the last sync, its Goals, its pull requests."""
    return run(_status_command, args)


# --------------------------------------------------------------------------------------- logs


@dataclass(frozen=True)
class PodTarget:
    """Which Pod of a Goal `logs` reads: what to call it, and the label selectors that find it
    (tried in order; the first that finds a Pod wins)."""

    what: str
    selectors: tuple[str, ...]


def pod_target(
    goal: Mapping[str, Any], attempt: str | None = None, *, heal: bool = False
) -> PodTarget:
    """The Pod `logs` reads: the latest heal's (`heal`), the attempt's of the latest run
    (`attempt`: its label, `N` or `pN`), else the Pod of the Job the Goal's status names last
    (`jobName`: the latest attempt, publish-only ones too), found by the label Kubernetes puts
    on a Job's Pods; a Goal that names no Job, by its latest attempt's labels."""
    status, meta = _status(goal), _meta(goal)
    run_of = f"{LABEL_GOAL_UID}={meta.get('uid')},{LABEL_RUN}={status.get('run') or 1}"
    if heal:
        number = (status.get("pullRequest") or {}).get("heals")
        if not number:
            raise CommandError(
                f'goal "{meta["name"]}" has no heal Job: its pull request was never healed '
                "(status.pullRequest.heals)"
            )
        return PodTarget(f"heal {number}", (f"{run_of},{LABEL_HEAL}={number}",))
    job = status.get("jobName")
    if attempt is None and job:
        owned = f"={job},{LABEL_GOAL_UID}={meta.get('uid')}"
        # The Job controller labels its Pods with both (before 1.27, only `job-name`).
        return PodTarget(f"Job {job}", (JOB_NAME_LABEL + owned, LEGACY_JOB_NAME_LABEL + owned))
    label = attempt or str(status.get("attempts") or 1)
    if attempt is None and (status.get("approval") or {}).get("approvedHash"):
        label = f"p{label}"  # approved: the attempts are publish-only ones
    what = f"publish-only attempt {label}" if label.startswith("p") else f"attempt {label}"
    return PodTarget(what, (f"{run_of},{LABEL_ATTEMPT}={label}",))


def gone_lines(goal: Mapping[str, Any], target: PodTarget) -> Iterator[str]:
    """What is left of an attempt whose Pod is gone: the Goal's status."""
    status = _status(goal)
    name = _meta(goal)["name"]
    yield (
        f"The Pod of goal {name}, {target.what}, is gone (its Job was deleted after it "
        "finished, or with its Goal) or was never made; its logs went with it."
    )
    yield "From the goal's status:"
    fields = ("phase", "outcome", "step", "reason", "message", "branch", "commit", "jobName")
    for key in fields:
        if status.get(key):
            yield f"  {key}: {status[key]}"
    pr = status.get("pullRequest")
    if isinstance(pr, Mapping):
        yield f"  pullRequest: #{pr.get('number')} {pr.get('url', '')}".rstrip()


def _find_pod(cluster: Cluster, target: PodTarget) -> Json | None:
    path = f"/api/v1/namespaces/{cluster.namespace}/pods"
    for selector in target.selectors:
        pods = cluster.raw_get(path, [("labelSelector", selector)])
        items: list[Json] = json.loads(pods.data).get("items") or []
        if items:  # the newest, should a Job have made more than one
            return max(items, key=lambda pod: str(_meta(pod).get("creationTimestamp") or ""))
    return None


def pod_steps(pod: Mapping[str, Any]) -> list[str]:
    """The Pod's containers in the order they run: init containers, then the main ones."""
    spec = dict(pod.get("spec") or {})
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return [str(container.get("name")) for container in containers]


def _print_log(cluster: Cluster, pod: str, step: str, *, follow: bool) -> bool:
    """Copy one container's log to stdout; False (with the server's reason on stderr) when it
    has none (not started yet, or never will)."""
    try:
        path = f"/api/v1/namespaces/{cluster.namespace}/pods/{pod}/log"
        query = [("container", step)] + ([("follow", "true")] if follow else [])
        # Following has no read timeout: a quiet task is not a dead connection.
        response = cluster.raw_get(path, query, timeout=(TIMEOUT[0], None) if follow else TIMEOUT)
    except ApiException as error:
        if error.status in (400, 404):
            print(f"{step}: no log: {_api_message(error)}", file=sys.stderr)
            return False
        raise
    try:
        for chunk in response.stream(4096):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    finally:
        response.release_conn()
    return True


def _logs(cluster: Cluster, args: argparse.Namespace) -> int:
    goal = cluster.get("goals", args.name)
    target = pod_target(goal, args.attempt, heal=args.heal)
    pod = _find_pod(cluster, target)
    if pod is None:
        for line in gone_lines(goal, target):
            print(line, file=sys.stderr)
        return 1
    pod_name, found = _meta(pod)["name"], pod_steps(pod)
    if args.step and args.step not in found:
        raise CommandError(
            f'the Pod {pod_name} of goal "{args.name}" ({target.what}) has no step {args.step}: '
            f"its steps are {', '.join(found) or 'none'}"
        )
    # Following needs one stream: the step asked for, else the one the goal says is running,
    # else the task, else the Pod's last (a publish-only or heal Pod has only one).
    steps = [args.step] if args.step else found
    if args.follow and not args.step and found:
        steps = [next(s for s in (_status(goal).get("step"), "task", found[-1]) if s in found)]
    printed = 0
    for step in steps:
        if len(steps) > 1:
            print(f"==> {pod_name} {step} <==", file=sys.stderr, flush=True)
        printed += _print_log(cluster, pod_name, step, follow=args.follow)
    return 0 if printed else 1


def logs_main(args: argparse.Namespace) -> int:
    """`logs GOAL [--step S] [--attempt N|pN | --heal] [-f]`: the Pod's logs of the goal's
    latest Job (or of attempt N, publish-only attempt pN, or the latest heal), or, when the Pod
    is gone, what the Goal's status says instead (exit 1)."""
    return run(_logs, args)
