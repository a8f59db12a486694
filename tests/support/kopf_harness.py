"""Run a kopf operator in-process against the Kubernetes API emulator, over real HTTP.

kopf cannot share pytest-asyncio's event loop (on stop it cancels every task created after it
started, pytest's own teardown included), so `KopfThread` runs ``kopf.operator()`` in a thread
with its own loop, with a ready flag and a clean stop::

    registry = kopf.OperatorRegistry()

    @kopf.on.create("backlog.dev", "v1alpha1", "goals", registry=registry)
    def created(name: str, **_: object) -> None:
        seen.append(name)

    with EmulatorServer() as server, KopfThread(server, registry=registry):
        server.emulator.create_object(goal)
        server.emulator.wait_for(lambda: seen)

The operator authenticates through a pre-filled credentials vault pointing at the emulator,
so neither the registry's login handlers nor ``$KUBECONFIG`` are consulted. `api_client`
gives the official ``kubernetes`` client configured explicitly from the emulator's
kubeconfig: ``kubernetes.config`` reads ``$KUBECONFIG`` once, at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Collection, Iterator
from types import ModuleType, TracebackType
from typing import Self, TypeVar

import kopf
import kubernetes.client
import kubernetes.config
from kopf._cogs.structs.credentials import Vault

from tests.support.emulator import EmulatorServer

__all__ = ["KopfThread", "api_client", "fast_settings", "stop_leaked_operators", "wait_for"]

_T = TypeVar("_T")


def fast_settings() -> kopf.OperatorSettings:
    """kopf settings for tests: quick reconnects, quick retries of a failed API request (kopf's
    own are 1 s to 21 s apart), and a short idle time for object workers, so the operator stops
    fast; everything else as kopf's defaults."""
    settings = kopf.OperatorSettings()
    settings.watching.reconnect_backoff = 0.05
    settings.networking.error_backoffs = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
    settings.watching.server_timeout = 60
    settings.networking.request_timeout = 10
    settings.networking.connect_timeout = 5
    settings.queueing.idle_timeout = 0.3
    settings.queueing.exit_timeout = 1.0
    return settings


_live: set[KopfThread] = set()
_live_lock = threading.Lock()


def stop_leaked_operators() -> list[KopfThread]:
    """Stop every operator still running (one a failed test left behind); return them."""
    with _live_lock:
        leaked = [operator for operator in _live if operator.running]
    for operator in leaked:
        with contextlib.suppress(RuntimeError):
            operator.stop()
    return leaked


class KopfThread:
    """A kopf operator running in its own thread and event loop against an emulator server.

    ``registry`` defaults to kopf's global registry; ``module`` (a module or its dotted name)
    is imported first so its ``@kopf.on...`` decorators fill that registry. ``serving``, an
    async context manager (the operator's HTTP endpoints), is entered on the operator's loop
    before kopf starts and left after it stops, as `backlogctl operator` does. ``start()``
    returns once kopf reports ready (or at once with ``wait=False``); ``stop()`` asks it to
    exit, waits, and re-raises its failure."""

    def __init__(
        self,
        server: EmulatorServer | str,
        *,
        registry: kopf.OperatorRegistry | None = None,
        module: ModuleType | str | None = None,
        settings: kopf.OperatorSettings | None = None,
        namespaces: Collection[str] = (),
        clusterwide: bool | None = None,
        standalone: bool = True,
        peering_name: str | None = None,
        priority: int | None = None,
        memo: object | None = None,
        serving: contextlib.AbstractAsyncContextManager[object] | None = None,
    ) -> None:
        self.url = server if isinstance(server, str) else server.url
        self.serving = serving
        self.registry = registry
        self.module = module
        self.settings = settings if settings is not None else fast_settings()
        self.namespaces = tuple(namespaces)
        self.clusterwide = clusterwide if clusterwide is not None else not self.namespaces
        self.standalone = standalone
        self.peering_name = peering_name
        self.priority = priority
        self.memo = memo
        self.ready = threading.Event()
        self._stop_flag = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self, timeout: float = 15.0, *, wait: bool = True) -> Self:
        """Start the operator; returns when kopf signals readiness (or raises its failure), or
        at once when not asked to `wait` (`wait_ready` then waits)."""
        if self._thread is not None:
            raise RuntimeError("The operator is already started.")
        if isinstance(self.module, str):
            self.module = importlib.import_module(self.module)
        self._thread = threading.Thread(target=self._run, name="kopf-operator", daemon=True)
        with _live_lock:
            _live.add(self)
        self._thread.start()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Wait until kopf signals readiness (its startup handlers done); raise its failure."""
        assert self._thread is not None, "the operator was not started"
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.01):
            if not self._thread.is_alive():
                raise RuntimeError("The kopf operator exited before it was ready.") from (
                    self._failure
                )
            if time.monotonic() > deadline:
                with contextlib.suppress(RuntimeError):
                    self.stop()
                raise RuntimeError(f"The kopf operator was not ready in {timeout}s.")

    def stop(self, timeout: float = 15.0) -> None:
        """Ask kopf to exit, wait for its thread, and re-raise anything it failed with."""
        if self._thread is None:
            return
        self._stop_flag.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"The kopf operator did not stop in {timeout}s.")
        self._thread = None
        with _live_lock:
            _live.discard(self)
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise RuntimeError("The kopf operator failed.") from failure

    @property
    def running(self) -> bool:
        """Whether the operator's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        # `with KopfThread(...).start():` and `with KopfThread(...):` both work.
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._operate())
        except BaseException as e:
            self._failure = e

    async def _operate(self) -> None:
        # A vault filled up-front: kopf's authenticator runs login handlers only once the vault
        # is empty or invalidated, so the operator talks to the emulator from the start.
        # kopf exports no name for the vault class, hence the private import.
        vault = Vault({"emulator": kopf.ConnectionInfo(server=self.url, insecure=True)})
        async with self.serving or contextlib.nullcontext():
            await self._kopf(vault)

    async def _kopf(self, vault: Vault) -> None:
        await kopf.operator(
            registry=self.registry,
            settings=self.settings,
            namespaces=self.namespaces,
            clusterwide=self.clusterwide,
            standalone=self.standalone,
            peering_name=self.peering_name,
            priority=self.priority,
            memo=self.memo,
            vault=vault,
            stop_flag=self._stop_flag,
            ready_flag=self.ready,
        )


def new_api_client(server: EmulatorServer) -> kubernetes.client.ApiClient:
    """A new official client configured from the server's kubeconfig; the caller closes it."""
    config_file = str(server.kubeconfig)
    # kubernetes leaves `new_client_from_config` unannotated.
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=config_file
    )
    return client


@contextlib.contextmanager
def api_client(server: EmulatorServer) -> Iterator[kubernetes.client.ApiClient]:
    """The official client, configured from the server's kubeconfig (never ``$KUBECONFIG``)::

    with api_client(server) as client:
        kubernetes.client.CoreV1Api(client).list_namespace()
    """
    client = new_api_client(server)
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]  # kubernetes leaves ApiClient.close unannotated


def wait_for(
    predicate: Callable[[], _T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | Callable[[], str] = "condition not met",
) -> _T:
    """Poll ``predicate()`` every ``interval`` seconds until it is truthy and return its value;
    fail the test with ``message`` after ``timeout`` seconds. For conditions on the emulator's
    objects, `HardenedEmulator.wait_for` wakes on each change instead of polling."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"Timed out after {timeout}s: {text}")
        time.sleep(interval)
