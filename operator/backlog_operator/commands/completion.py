"""`completion bash|zsh|kubectl`: shell completion scripts, generated from the argument parser.

The parser is walked once into a table (each command's subcommands, options, what an option's
value and each positional argument complete to) and the table is written out as `case`
statements under one small completion function. Names of Goals, Backlogs and GoalSchedules
come from `kubectl get <plural>.backlog.dev -o name` at the moment of completion, with the
`-n/--namespace`, `--context` and `--kubeconfig` given on the line.

- bash: `source <(backlogctl completion bash)`; completes `backlogctl` and `kubectl-backlog`.
- zsh: the same function through zsh's `bashcompinit` (arrays switched to bash's indexing).
- kubectl: a script to save as `kubectl_complete-backlog` on the PATH; kubectl (1.26 and
  later) runs it to complete `kubectl backlog ...`, printing one candidate a line, then `:4`.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

# Positionals by metavar: what they complete to. NAME is of the kind given before it.
_KINDS = "goals backlogs schedules"
_POSITIONALS = {
    "GOAL": "names goals",
    "BACKLOG": "names backlogs",
    "NAME": "names $kind",
    "KIND": f"words {_KINDS}",
    "FILE": "files",
    "GOAL.yaml": "files",
}
# Options whose value is a path, a namespace or a context (by destination).
_OPTION_VALUES = {
    "kubeconfig": "files",
    "token_file": "files",
    "workspace": "files",
    "reference": "files",
    "output": "files",  # `crds --output FOLDER` (other -o options have choices)
    "namespace": "namespaces",
    "context": "contexts",
}


@dataclass
class Command:
    """What completes after one command (`path` is "" for the program, or "worker clone")."""

    path: str
    subcommands: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    #: option -> its value's completion ("words a b", "files", "namespaces", "contexts", "any").
    values: dict[str, str] = field(default_factory=dict)
    #: one completion per positional argument; the last repeats when `repeats` is set.
    positionals: list[str] = field(default_factory=list)
    repeats: bool = False


def commands(parser: argparse.ArgumentParser, path: str = "") -> Iterator[Command]:
    """The parser and each of its subcommands, depth first."""
    command = Command(path)
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                command.subcommands.append(name)
                children.append((name, sub))
        elif action.option_strings:
            command.options.extend(action.option_strings)
            if action.nargs != 0:
                spec = _value_spec(action)
                command.values.update(dict.fromkeys(action.option_strings, spec))
        elif action.nargs != argparse.REMAINDER:
            metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
            spec = _POSITIONALS.get(metavar, "any")
            command.positionals.append(_value_spec(action) if action.choices else spec)
            command.repeats = action.nargs in ("*", "+")
    yield command
    for name, sub in children:
        yield from commands(sub, f"{path} {name}".strip())


def _value_spec(action: argparse.Action) -> str:
    if action.choices:
        return "words " + " ".join(str(choice) for choice in action.choices)
    return _OPTION_VALUES.get(action.dest, "any")


def _case(entries: list[tuple[str, str]], key: str = '"$1"') -> str:
    """A `case` statement over `key` whose branches echo a word list (status 1: no branch)."""
    lines = [f"    case {key} in"]
    for pattern, words in entries:
        lines.append(f"        {pattern}) echo {shlex.quote(words)} ;;")
    lines.append("        *) return 1 ;;")
    lines.append("    esac")
    return "\n".join(lines)


def _tables(all_commands: list[Command]) -> str:
    """The per-command functions the completion function reads."""
    subcommands, options, values, positionals = [], [], [], []
    for command in all_commands:
        key = shlex.quote(command.path)
        if command.subcommands:
            subcommands.append((key, " ".join(command.subcommands)))
        options.append((key, " ".join(command.options)))
        for option, spec in command.values.items():
            values.append((shlex.quote(f"{command.path} {option}"), spec))
        for index, spec in enumerate(command.positionals):
            positionals.append((shlex.quote(f"{command.path} {index}"), spec))
        if command.repeats:
            positionals.append((shlex.quote(f"{command.path} ") + "*", command.positionals[-1]))
    return "\n".join(
        [
            "_backlogctl_subcommands() {",
            _case(subcommands),
            "}",
            "_backlogctl_options() {",
            _case(options),
            "}",
            "# PATH OPTION: what the option's value completes to; status 1 for a flag.",
            "_backlogctl_option_value() {",
            _case(values, key='"$1 $2"'),
            "}",
            "# PATH INDEX: what the positional argument completes to.",
            "_backlogctl_positional() {",
            _case(positionals, key='"$1 $2"'),
            "}",
        ]
    )


_ENGINE = r"""
# Names of Goals, Backlogs or GoalSchedules, asked of the cluster with the line's options.
_backlogctl_names() {
    local resource
    case $1 in
        goal|goals|gl) resource=goals.backlog.dev ;;
        backlog|backlogs|bl) resource=backlogs.backlog.dev ;;
        schedule|schedules|goalschedule|goalschedules|gs) resource=goalschedules.backlog.dev ;;
        *) return 0 ;;
    esac
    kubectl get "$resource" -o name "${cluster[@]}" 2>/dev/null | sed 's#.*/##'
}

# CUR WORD...: add the words that start with CUR to COMPREPLY (the same in bash and zsh).
_backlogctl_match() {
    local cur=$1 word
    shift
    for word in "$@"; do
        [[ $word == "$cur"* ]] && COMPREPLY+=("$word")
    done
    return 0
}

# SPEC CUR: fill COMPREPLY from a completion spec.
_backlogctl_fill() {
    local spec=$1 cur=$2 IFS=$'\n'
    case $spec in
        words\ *) IFS=' ' && _backlogctl_match "$cur" ${spec#words } ;;
        names\ *) _backlogctl_match "$cur" $(_backlogctl_names "${spec#names }") ;;
        namespaces)
            _backlogctl_match "$cur" $(kubectl get namespaces -o name "${cluster[@]}" \
                2>/dev/null | sed 's#.*/##') ;;
        contexts)
            _backlogctl_match "$cur" $(kubectl config get-contexts -o name "${cluster[@]}" \
                2>/dev/null) ;;
        files)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}

_backlogctl() {
    # zsh (bashcompinit) indexes arrays from 1 unless told to do as bash does; `at` is the
    # command so far (`path` would be zsh's PATH array).
    [[ -n ${ZSH_VERSION-} ]] && setopt local_options ksh_arrays sh_word_split
    local cur=${COMP_WORDS[COMP_CWORD]} at="" word pending="" kind="" spec
    local -i i count=0
    local -a cluster=()
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if [[ -n $pending ]]; then
            case $pending in
                -n|--namespace|--context|--kubeconfig) cluster+=("$pending" "$word") ;;
            esac
            pending=""
            continue
        fi
        case $word in
            --namespace=*|--context=*|--kubeconfig=*) cluster+=("$word"); continue ;;
            -*=*) continue ;;
            -*) _backlogctl_option_value "$at" "$word" >/dev/null && pending=$word; continue ;;
        esac
        if (( count == 0 )) && [[ " $(_backlogctl_subcommands "$at") " == *" $word "* ]]; then
            at=${at:+$at }$word
            continue
        fi
        (( count == 0 )) && kind=$word
        count+=1
    done
    if [[ -n $pending ]]; then
        _backlogctl_fill "$(_backlogctl_option_value "$at" "$pending")" "$cur"
    elif [[ $cur == -* ]]; then
        _backlogctl_fill "words $(_backlogctl_options "$at")" "$cur"
    elif (( count == 0 )) && spec=$(_backlogctl_subcommands "$at"); then
        _backlogctl_fill "words $spec" "$cur"
    elif spec=$(_backlogctl_positional "$at" "$count"); then
        _backlogctl_fill "${spec/\$kind/$kind}" "$cur"
    fi
    return 0
}
"""


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for `shell` (bash, zsh or kubectl)."""
    body = _tables(list(commands(parser))) + "\n" + _ENGINE
    if shell == "bash":
        return (
            "# bash completion of backlogctl and kubectl-backlog.\n"
            "# Load it with: source <(backlogctl completion bash)\n"
            f"{body}\ncomplete -F _backlogctl backlogctl kubectl-backlog\n"
        )
    if shell == "zsh":
        return (
            "# zsh completion of backlogctl and kubectl-backlog.\n"
            "# Load it with: source <(backlogctl completion zsh)   (after compinit)\n"
            "(( $+functions[compdef] )) || { autoload -U compinit && compinit; }\n"
            "autoload -U +X bashcompinit && bashcompinit\n"
            f"{body}\ncomplete -F _backlogctl backlogctl kubectl-backlog\n"
        )
    return (
        "#!/usr/bin/env bash\n"
        "# Completion of `kubectl backlog ...`: save as kubectl_complete-backlog on the PATH,\n"
        "# executable. kubectl (1.26 and later) runs it with the words after `kubectl backlog`.\n"
        f"{body}\n"
        'COMP_WORDS=(kubectl-backlog "$@")\n'
        "COMP_CWORD=$#\n"
        "_backlogctl\n"
        '[ ${#COMPREPLY[@]} -eq 0 ] || printf "%s\\n" "${COMPREPLY[@]}"\n'
        "echo :4  # kubectl: no file completion of its own\n"
    )
