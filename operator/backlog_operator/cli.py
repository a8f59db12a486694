"""`backlogctl` (also `kubectl-backlog`): run goals locally, the worker steps, and tooling."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from backlog_operator import __version__


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface; each subcommand's module adds its own arguments."""
    parser = argparse.ArgumentParser(
        prog="backlogctl",
        description="Work through a repository's backlog, one pull request per task.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a goal on this machine (clone, task, publish)")
    run.add_argument("goal", help="a Goal manifest (YAML or JSON)")
    run.add_argument("--workspace", help="folder to work in (default: a temporary folder)")
    run.add_argument("--attempt-id", help="attempt id to use (default: a new one)")
    run.add_argument("--token-file", help="file holding the forge token (default: none)")
    run.set_defaults(handler="backlog_operator.worker.local:main")

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

    crds = commands.add_parser("crds", help="write the CustomResourceDefinitions")
    crds.add_argument("--output", default="-", help="folder to write into, or - for stdout")
    crds.add_argument("--reference", help="also write the Markdown API reference to this file")
    crds.set_defaults(handler="backlog_operator.tooling.crds:main")

    operator = commands.add_parser("operator", help="run the operator (kopf) in this process")
    operator.add_argument("--namespace", action="append", default=None, help="watch only these")
    operator.add_argument("--verbose", action="store_true")
    operator.set_defaults(handler="backlog_operator.controller.main:main")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `backlogctl` and `kubectl-backlog`; returns the exit status."""
    args = build_parser().parse_args(argv)
    module_name, _, function_name = args.handler.partition(":")
    # Imported on demand: `worker clone` must not pay for kopf, the operator for GitPython.
    module = __import__(module_name, fromlist=[function_name])
    status: int = getattr(module, function_name)(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
