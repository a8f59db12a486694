"""The operator as its own process (`backlogctl operator`, what the Deployment runs) against an
emulator server, for tests that kill it (SIGKILL, as an OOM kill or the kubelet past a grace
period does) and start it again::

    with OperatorProcess(server, {"MAX_RUNNING": "4"}, log=tmp_path / "operator.log") as op:
        ...
        op.kill()      # SIGKILL; returns once the process is gone
        op.terminate() # SIGTERM (a graceful stop); returns its exit status once it is gone
        op.start()     # a new process: nothing survives but what the API server stored

Each start is a new process that learns everything from the API server, as a restarted Pod
does. Only the Python imports (most of a start's two seconds of CPU) are done once: a small
server process imports the operator's modules, then forks one child per `start`, which runs
`backlogctl operator`'s own entry point (`backlog_operator.cli.main(["operator", ...])`). So a
test can restart the operator many times on a busy machine. The child is signalled through a
pidfd (never by a process id that could by then name another process).

Settings reach the process as a Deployment gives them: `BACKLOG_OPERATOR_*` environment
variables (`controller.settings`), and the emulator's kubeconfig (`KUBECONFIG`). All output of
every start goes to `log`, one after another, for reading after a failure.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.support.emulator import EmulatorServer

__all__ = ["OperatorProcess"]

# The fork server: the imports of `backlogctl operator` once (with the API classes the client
# loads lazily at the operator's start), then one child per "start" line, its pid and then its
# exit status written back. Standard input closed: exit. Each process dies with its parent (the
# test process, the fork server), so none outlives a test run that was killed.
_FORK_SERVER = """\
import ctypes, logging, os, signal, sys

def die_with(parent):
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before that
        os._exit(70)

die_with(int(sys.argv[1]))
import backlog_operator.cli
import backlog_operator.controller.main
from kubernetes import client
client.BatchV1Api, client.CoreV1Api, client.CustomObjectsApi

for line in sys.stdin:
    if line.strip() != "start":
        break
    server = os.getpid()
    pid = os.fork()
    if pid == 0:
        die_with(server)
        sys.stdin.close()
        os.dup2(2, 1)
        status = 70
        try:
            status = backlog_operator.cli.main(["operator", *sys.argv[2:]])
        finally:
            logging.shutdown()
            sys.stderr.flush()
            os._exit(status)
    print("started", pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print("exited", os.waitstatus_to_exitcode(status), flush=True)
"""
_TIMEOUT = 15.0


class OperatorProcess:
    """`backlogctl operator` in its own process, killed and started again at will by a test.

    `settings`: the operator's settings by name after the `BACKLOG_OPERATOR_` prefix
    (``{"MAX_RUNNING": "4"}``); the metrics port and kopf's liveness endpoint are off unless
    set (a killed process's port may not be free yet for the next). `args`: more arguments of
    `backlogctl operator` (``["--verbose"]``)."""

    def __init__(
        self,
        server: EmulatorServer,
        settings: Mapping[str, str],
        *,
        log: Path,
        args: Sequence[str] = (),
    ) -> None:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(server.kubeconfig)
        env["BACKLOG_OPERATOR_LIVENESS_ENDPOINT"] = ""
        env["BACKLOG_OPERATOR_METRICS_PORT"] = "0"
        env.update({f"BACKLOG_OPERATOR_{name}": value for name, value in settings.items()})
        self._log: IO[bytes] = log.open("ab")
        self._server = subprocess.Popen(
            [sys.executable, "-c", _FORK_SERVER, str(os.getpid()), *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._pidfd: int | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        """Whether an operator process runs (started, and not exited or killed)."""
        return self._pidfd is not None and not self._exited(0)

    def start(self) -> None:
        """Start an operator process; none may be running."""
        assert self._pidfd is None, "an operator process runs already"
        answer = self._ask("start")
        assert answer.startswith("started "), answer
        # The child cannot have exited yet: the fork server reports its exit only after this.
        self._pidfd = os.pidfd_open(int(answer.split()[1]))
        self.starts += 1

    def signal_kill(self) -> None:
        """Send SIGKILL to the running operator and return at once (safe from any thread, e.g.
        from inside the emulator while it serves the operator's request)."""
        pidfd = self._pidfd
        if pidfd is not None:
            # ProcessLookupError: it exited already; OSError: the pidfd was closed meanwhile.
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)

    def wait_dead(self, timeout: float = _TIMEOUT) -> int:
        """Wait until the running operator has exited; its exit status (-9: killed)."""
        assert self._pidfd is not None, "no operator process was started"
        if not self._exited(timeout):
            raise TimeoutError(f"the operator process did not exit within {timeout}s")
        os.close(self._pidfd)
        self._pidfd = None
        answer = self._read()
        assert answer.startswith("exited "), answer
        return int(answer.split()[1])

    def kill(self) -> None:
        """SIGKILL the running operator; return once it is gone."""
        self.signal_kill()
        self.wait_dead()

    def terminate(self, timeout: float = _TIMEOUT) -> int:
        """SIGTERM the running operator (as the kubelet stops a Pod) and wait until it has
        exited; its exit status."""
        assert self._pidfd is not None, "no operator process was started"
        signal.pidfd_send_signal(self._pidfd, signal.SIGTERM)
        return self.wait_dead(timeout)

    def stop(self) -> None:
        """Stop the operator (SIGTERM: kopf exits cleanly; SIGKILL should it not), then the fork
        server; close the log."""
        if self._pidfd is not None:
            signal.pidfd_send_signal(self._pidfd, signal.SIGTERM)
            if not self._exited(_TIMEOUT):
                self.signal_kill()
            self.wait_dead()
        assert self._server.stdin is not None
        self._server.stdin.close()
        try:
            self._server.wait(_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait(_TIMEOUT)
        if self._server.stdout is not None:
            self._server.stdout.close()
        self._log.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _exited(self, timeout: float) -> bool:
        # A pidfd reads as ready once its process has exited.
        assert self._pidfd is not None
        ready, _, _ = select.select([self._pidfd], [], [], timeout)
        return bool(ready)

    def _ask(self, command: str) -> str:
        assert self._server.stdin is not None
        self._server.stdin.write(command + "\n")
        self._server.stdin.flush()
        return self._read()

    def _read(self) -> str:
        assert self._server.stdout is not None
        ready, _, _ = select.select([self._server.stdout], [], [], _TIMEOUT * 4)
        line = self._server.stdout.readline().strip() if ready else ""
        if not line:
            status = self._server.poll()
            raise RuntimeError(f"the operator's fork server did not answer (exit {status})")
        return line
