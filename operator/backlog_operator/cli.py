"""`backlogctl` (also `kubectl-backlog`): run goals locally, the worker steps, tooling, and the
day-two commands against a cluster (`get`, `status`, `logs`, `rerun`, `approve`, ...).

This module only parses: each command's module is imported when that command runs, so `worker
clone` loads neither the Kubernetes client nor the day-two commands. A process started for
`run`, `heal` or `worker` (a Job's container, a short process) builds only that command's
parser: argparse takes about a millisecond a command to build.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from backlog_operator import __version__

# The day-two commands, each with a module under `commands` (imported on demand).
_CLUSTER = "backlog_operator.commands.cluster"
_APPROVAL = "backlog_operator.commands.approval"
OUTPUTS = ("json", "yaml", "wide")
KINDS = ("goals", "backlogs", "schedules")
# The containers of a goal's Pods (`logs --step`): an attempt's `clone`, `task` and `publish`
# (which stages the change, `worker stage`, where approval is required), a publish-only
# attempt's `publish`, a heal's `heal`.
STEPS = ("clone", "task", "publish", "heal")
# Also accepted: kubectl's singular, short and full names (`goal`, `gl`, `goalschedules`).
KIND_ALIASES = {
    "goal": "goals",
    "gl": "goals",
    "backlog": "backlogs",
    "bl": "backlogs",
    "schedule": "schedules",
    "goalschedule": "schedules",
    "goalschedules": "schedules",
    "gs": "schedules",
}


def program_name(argv0: str | None = None) -> str:
    """The program as invoked: `kubectl backlog` when kubectl ran its plugin, else
    `backlogctl` (so usage and error texts name what the person typed)."""
    base = os.path.basename(argv0 if argv0 is not None else (sys.argv[0] if sys.argv else ""))
    return "kubectl backlog" if base.startswith("kubectl-backlog") else "backlogctl"


def _kind(text: str) -> str:
    kind = KIND_ALIASES.get(text.lower(), text.lower())
    if kind not in KINDS:
        raise argparse.ArgumentTypeError(f"unknown kind {text!r} (one of: {', '.join(KINDS)})")
    return kind


def _attempt(text: str) -> str:
    """An `--attempt` value as the attempt label of its Jobs: `N` (an attempt) or `pN` (a
    publish-only attempt after an approval), counting from 1."""
    digits = text[1:] if text[:1] in ("p", "P") else text
    if not digits.isascii() or not digits.isdigit() or int(digits) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an attempt: N, or pN for a publish-only one, counting from 1"
        )
    return ("p" if digits != text else "") + str(int(digits))


def _cluster_options() -> argparse.ArgumentParser:
    """The options every cluster command takes, as kubectl spells them."""
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("cluster")
    group.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    group.add_argument("--context", help="the kubeconfig context to use")
    group.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    return options


def _add_day_two(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`validate`, `version`, and the commands against a cluster."""
    validate = commands.add_parser(
        "validate", help="lint backlog files offline (exit 1: invalid, 2: unreadable)"
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="backlog files")
    validate.add_argument("-o", "--output", choices=("text", "json"), default="text")
    validate.set_defaults(handler="backlog_operator.commands.validate:main")

    completion = commands.add_parser(
        "completion",
        help="print a shell completion script (kubectl: for `kubectl backlog`, see the docs)",
    )
    completion.add_argument("shell", choices=("bash", "zsh", "kubectl"), metavar="SHELL")
    completion.set_defaults(handler="backlog_operator.cli:completion_main")

    version = commands.add_parser("version", help="print the version")
    version.add_argument("-o", "--output", choices=("text", "json"), default="text")
    version.set_defaults(handler="backlog_operator.cli:version_main")

    cluster = _cluster_options()
    get = commands.add_parser("get", parents=[cluster], help="list goals, backlogs or schedules")
    get.add_argument("kind", type=_kind, metavar="KIND", help="goals | backlogs | schedules")
    get.add_argument("names", nargs="*", metavar="NAME", help="only these (default: all)")
    get.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    get.add_argument("-o", "--output", choices=OUTPUTS, help="json | yaml | wide")
    get.set_defaults(handler=f"{_CLUSTER}:get_main")

    status = commands.add_parser("status", parents=[cluster], help="a Backlog's tasks and goals")
    status.add_argument("name", metavar="BACKLOG")
    status.add_argument("-o", "--output", choices=("json", "yaml"), help="json | yaml")
    status.set_defaults(handler=f"{_CLUSTER}:status_main")

    _add_logs(commands, cluster)

    rerun = commands.add_parser("rerun", parents=[cluster], help="run a finished goal again")
    rerun.add_argument("name", metavar="GOAL")
    rerun.set_defaults(handler=f"{_CLUSTER}:rerun_main")

    reconcile = commands.add_parser("reconcile", parents=[cluster], help="sync a Backlog now")
    reconcile.add_argument("name", metavar="BACKLOG")
    reconcile.set_defaults(handler=f"{_CLUSTER}:reconcile_main")

    for verb, text in (("suspend", "stop starting"), ("resume", "start again")):
        sub = commands.add_parser(verb, parents=[cluster], help=f"{text}: set spec.suspend")
        sub.add_argument("kind", type=_kind, metavar="KIND", help="goal | backlog | schedule")
        sub.add_argument("name", metavar="NAME")
        sub.set_defaults(handler=f"{_CLUSTER}:suspend_main", suspend=verb == "suspend")
    _add_approval(commands, cluster)


def _add_logs(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    cluster: argparse.ArgumentParser,
) -> None:
    """`logs GOAL`: the Pod of its latest Job, of an attempt, or of its latest heal."""
    logs = commands.add_parser("logs", parents=[cluster], help="the logs of a goal's Pod")
    logs.add_argument("name", metavar="GOAL")
    logs.add_argument("--step", choices=STEPS, help="one step only (the Pod's container)")
    which = logs.add_mutually_exclusive_group()
    which.add_argument(
        "--attempt",
        type=_attempt,
        metavar="N|pN",
        help="attempt N, or publish-only attempt pN, of the latest run (default: latest Job)",
    )
    which.add_argument("--heal", action="store_true", help="the latest heal Job's Pod")
    logs.add_argument("-f", "--follow", action="store_true", help="follow one step's log")
    logs.set_defaults(handler=f"{_CLUSTER}:logs_main")


def _add_approval(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    cluster: argparse.ArgumentParser,
) -> None:
    """`diff`, `approve`, `reject` (a Goal's staged change) and `revive` (a declined task)."""
    diff = commands.add_parser(
        "diff", parents=[cluster], help="show a goal's staged change awaiting approval"
    )
    diff.add_argument("name", metavar="GOAL")
    diff.add_argument("--stat", action="store_true", help="the files changed, not the patch")
    diff.set_defaults(handler=f"{_APPROVAL}:diff_main")

    approve = commands.add_parser(
        "approve", parents=[cluster], help="approve a goal's staged change: it is published"
    )
    approve.add_argument("name", metavar="GOAL")
    approve.add_argument(
        "--hash", metavar="SHA256", help="approve only if this is the staged change's hash"
    )
    approve.set_defaults(handler=f"{_APPROVAL}:approve_main")

    reject = commands.add_parser(
        "reject", parents=[cluster], help="reject a goal's staged change: the goal fails"
    )
    reject.add_argument("name", metavar="GOAL")
    reject.add_argument("--reason", required=True, help="why (kept up to 1 KiB)")
    reject.set_defaults(handler=f"{_APPROVAL}:reject_main")

    revive = commands.add_parser(
        "revive", parents=[cluster], help="select a declined task again (its PR was closed)"
    )
    revive.add_argument("name", metavar="BACKLOG")
    revive.add_argument("task", metavar="TASK", help="the task's id")
    revive.set_defaults(handler=f"{_APPROVAL}:revive_main")


def _add_heal(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`heal`: merge the base into a task's pull request branch (docs/worker.md)."""
    heal = commands.add_parser(
        "heal", help="merge the base into a task's pull request branch, resolving its backlog"
    )
    heal.add_argument("goal", metavar="GOAL.yaml", help="the Goal manifest of the task")
    heal.add_argument("--branch", required=True, help="the pull request's branch")
    heal.add_argument("--attempt-id", help="attempt id to report (default: a new one)")
    heal.add_argument("--token-file", help="file holding the forge token (default: none)")
    heal.set_defaults(handler="backlog_operator.worker.heal:main")


#: Commands whose process builds only its own parser (see the module docstring).
STEP_COMMANDS = ("run", "heal", "worker")


def build_parser(prog: str | None = None, *, only: str | None = None) -> argparse.ArgumentParser:
    """The command-line interface; with `only` (one of STEP_COMMANDS), just that command.

    A command parses its arguments the same whether or not the others are there.
    """
    parser = argparse.ArgumentParser(
        prog=prog or program_name(),
        description="Work through a repository's backlog, one pull request per task.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if only in (None, "run"):
        _add_run(commands)
    if only in (None, "heal"):
        _add_heal(commands)
    if only in (None, "worker"):
        _add_worker(commands)
    if only is None:
        _add_tooling(commands)
        _add_day_two(commands)
    return parser


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`run`: a goal on this machine."""
    run = commands.add_parser("run", help="run a goal on this machine (clone, task, publish)")
    run.add_argument("goal", metavar="GOAL.yaml", help="a Goal manifest (YAML or JSON)")
    run.add_argument("--workspace", help="folder to work in (default: a temporary folder)")
    run.add_argument("--attempt-id", help="attempt id to use (default: a new one)")
    run.add_argument("--token-file", help="file holding the forge token (default: none)")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="push nothing, open no pull request: print the change as a unified diff",
    )
    run.add_argument(
        "--stage",
        action="store_true",
        help="push nothing: write the change as a patch (and PATCH.json), print its hash",
    )
    run.add_argument("--out", metavar="PATCH", help="where --stage writes (default: TASK.patch)")
    run.add_argument("--apply", metavar="PATCH", help="publish a staged change (no task runs)")
    run.add_argument("--hash", metavar="SHA256", help="the staged change's hash, for --apply")
    run.set_defaults(handler="backlog_operator.worker.local:main")


def _add_worker(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`worker clone|task|publish|stage|apply|heal`: the steps of a Job."""
    worker = commands.add_parser("worker", help="the steps a Job's containers run")
    steps = worker.add_subparsers(dest="step", required=True, metavar="STEP")
    steps.add_parser("clone", help="clone the repository and check the backlog").set_defaults(
        handler="backlog_operator.worker.steps:clone_main"
    )
    task = steps.add_parser("task", help="run the task command in the workspace, no credentials")
    task.add_argument("argv", nargs=argparse.REMAINDER, help="the command (default: the goal's)")
    task.set_defaults(handler="backlog_operator.worker.steps:task_main")
    steps.add_parser("publish", help="commit, push, open the pull request").set_defaults(
        handler="backlog_operator.worker.steps:publish_main"
    )
    steps.add_parser(
        "stage", help="commit locally, push nothing: print the change for approval"
    ).set_defaults(handler="backlog_operator.worker.staged_job:stage_main")
    apply = steps.add_parser("apply", help="clone, apply an approved staged change, publish it")
    apply.add_argument("--hash", required=True, help="the approved change's hash (sha256:...)")
    apply.add_argument("--staged", required=True, help="folder with patch.gz and manifest.json")
    apply.set_defaults(handler="backlog_operator.worker.staged_job:apply_main")
    heal_step = steps.add_parser("heal", help="merge the base into a pull request's branch")
    heal_step.add_argument("--branch", required=True, help="the pull request's branch")
    heal_step.set_defaults(handler="backlog_operator.worker.heal:heal_main")


def _add_tooling(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`crds` and `operator`."""
    crds = commands.add_parser("crds", help="write the CustomResourceDefinitions")
    crds.add_argument("--output", default="-", help="folder to write into, or - for stdout")
    crds.add_argument("--reference", help="also write the Markdown API reference to this file")
    crds.set_defaults(handler="backlog_operator.tooling.crds:main")

    operator = commands.add_parser("operator", help="run the operator (kopf) in this process")
    operator.add_argument("--namespace", action="append", default=None, help="watch only these")
    operator.add_argument(
        "--verbose", action="store_true", help="debug lines, and kopf's line for every event"
    )
    operator.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="text (default) or json: one object per line ($BACKLOG_OPERATOR_LOG_FORMAT)",
    )
    operator.set_defaults(handler="backlog_operator.controller.main:main")


def version_main(args: argparse.Namespace) -> int:
    """`version`: the program's version (`-o json`: as JSON on stdout)."""
    if args.output == "json":
        print(json.dumps({"version": __version__, "program": program_name()}))
    else:
        print(f"{program_name()} {__version__}")
    return 0


def completion_main(args: argparse.Namespace) -> int:
    """`completion bash|zsh|kubectl`: the script, generated from this parser, on stdout."""
    from backlog_operator.commands.completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `backlogctl` and `kubectl-backlog`; returns the exit status."""
    given = sys.argv[1:] if argv is None else list(argv)
    only = given[0] if given and given[0] in STEP_COMMANDS else None
    args = build_parser(only=only).parse_args(given)
    module_name, _, function_name = args.handler.partition(":")
    # Imported on demand: `worker clone` must not pay for kopf, the operator for GitPython.
    module = __import__(module_name, fromlist=[function_name])
    status: int = getattr(module, function_name)(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
