"""The Kubernetes adapter: the operator's only I/O against the API server.

The official client is synchronous; every call runs in a thread of the adapter's own executor,
so kopf's event loop never blocks. The executor and the client's connection pool have one size
(`concurrency`): as many requests in flight as connections kept, none opened and dropped for want
of a pooled one. An optional rate limit (`qps`, `burst`: a token bucket, as client-go's) bounds
what the operator asks of the API server. Responses are read as plain JSON dicts (no model
objects), decoded in the worker thread: it is faster, and the controller works on dicts anyway.
The calls of every goal's cycle (read the goal, create its Job, write its status, post an
Event, read its Job) go through `AioApi` on the event loop with aiohttp when the operator is
given a login (`API_EVENT_LOOP`, the default: about half the CPU of urllib3's request, and no
hand-off; but one thread), logged in as kopf's watches are (kopf's login function, again on a
401); otherwise (a command, a test without kopf) through `LeanApi` in the threads. Both make
the same requests the client's methods make, without their per-call pydantic validation of
every argument and round trip of a dict body through the client's models (1.4 ms of CPU for a
Job, more than the request itself); a Job is still checked against the client's model before
it is sent, as the client's method checks it (from its JSON: about 0.3 ms less).
Every call has a timeout, so an API server that never answers holds no object's lock for ever.

Failures: a Job the API server (or the client's own validation) refuses is a `JobRefusedError`
(permanent, with the server's message); everything else a call raises is left to the caller,
which retries the whole reconcile with backoff (`describe_failure` words it for a condition).
An Event that cannot be posted is tried again a few times (429 with `Retry-After`, 5xx, no
answer), then given up: Events are best effort, the status holds the same facts.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import aiohttp
from kubernetes import client
from kubernetes.client import rest
from kubernetes.client.exceptions import ApiException

from backlog_operator.api.common import GROUP, VERSION
from backlog_operator.errors import AlreadyExistsError, ClassifiedError
from backlog_operator.redact import Redactor

log = logging.getLogger("backlog_operator.controller")

GOAL_PLURAL = "goals"
COMPONENT = "backlog-operator"
# (connect, read) seconds of every call: an API server that never answers fails the call.
REQUEST_TIMEOUT = (10.0, 60.0)
# A container log's tail: the lines asked of the kubelet, and the bytes read of them at most
# (`limitBytes` keeps the first bytes of those lines: a few very long lines are cut there).
LOG_TAIL_LINES = 200
LOG_READ_BYTES = 256 * 1024
# Requests in flight at most (threads, and pooled connections), unless the settings say.
API_CONCURRENCY = 16
# Items per page of a listing of everything (start-up): bounded answers, a bounded memory peak.
LIST_PAGE = 500
# Posting an Event: tries in all, and the longest wait between two (a longer Retry-After is
# cut to it): a transition's reconcile waits at most a few seconds for its Events.
EVENT_TRIES = 4
EVENT_MAX_WAIT = 5.0
# The API server keeps at most this much of a generateName (a name's 63 less 5 random characters).
_GENERATE_NAME_MAX_LENGTH = 58
# Answers a later try may get past: throttling, timeouts, the server's own trouble.
_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# A refused Job, by the API server's answer: permanent, the reason the Goal fails with.
_REFUSED_JOB_REASONS = {400: "InvalidSpec", 422: "InvalidSpec", 403: "JobRefused"}
_MESSAGE_LIMIT = 512
_redact = Redactor()


class JobRefusedError(ClassifiedError):
    """The API server, or the client's validation before sending, refused a Job: no later
    attempt of the same manifest can succeed (`reason`: InvalidSpec or JobRefused)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message, retryable=False)


class RateLimit:
    """A token bucket: `qps` requests a second on average, `burst` at once. `take` takes a
    token even when there is none (the debt is paid by waiting), so waiters go in turn."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.qps, self.burst, self.clock = qps, max(1, burst), clock
        self._tokens = float(self.burst)
        self._stamp = clock()

    def take(self) -> float:
        """Take a token; how long to wait before using it (0: at once)."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    async def wait(self) -> None:
        """Take a token, waiting as long as the rate asks."""
        delay = self.take()
        if delay > 0:
            await asyncio.sleep(delay)


class LeanApi:
    """The client's methods of a goal's every cycle, by the same names, making the same
    requests (headers, authentication, timeouts, connection pool, `ApiException` on an answer
    outside 2xx) from the client's REST layer; each returns the answer's JSON decoded."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> Any:
        """GET one custom object."""
        path = _path("apis", group, version, "namespaces", namespace, plural, name)
        return self._request("GET", path)

    def patch_namespaced_custom_object_status(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: object
    ) -> Any:
        """Merge-patch a custom object's status subresource."""
        path = _path("apis", group, version, "namespaces", namespace, plural, name, "status")
        return self._request("PATCH", path, body, "application/merge-patch+json")

    def read_namespaced_job(self, name: str, namespace: str) -> Any:
        """GET one Job."""
        return self._request(
            "GET", _path("apis", "batch", "v1", "namespaces", namespace, "jobs", name)
        )

    def create_namespaced_job(self, namespace: str, body: Mapping[str, Any]) -> Any:
        """POST a Job, checked against the client's model first (a `ValueError` when it does
        not fit: nothing is sent). Checked as JSON, which is what is sent: the same checks and
        errors as the client's method makes on the dict, in a sixth of the time."""
        client.V1Job.model_validate_json(json.dumps(body))
        return self._request(
            "POST", _path("apis", "batch", "v1", "namespaces", namespace, "jobs"), body
        )

    def create_namespaced_event(self, namespace: str, body: Mapping[str, Any]) -> Any:
        """POST a core/v1 Event."""
        return self._request("POST", _path("api", "v1", "namespaces", namespace, "events"), body)

    def _request(
        self,
        method: str,
        path: str,
        body: object = None,
        content_type: str = "application/json",
    ) -> Any:
        api = self._api
        headers: dict[str, Any] = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        headers.update(api.default_headers)
        if api.cookie:
            headers["Cookie"] = api.cookie
        queries: list[tuple[str, str]] = []
        # The bearer token as the client's methods send it (refreshed by its hook, if any).
        api.update_params_for_auth(headers, queries, ["BearerToken"], path, method, body)
        url = api.configuration.host + path
        if queries:
            url += "?" + urlencode(queries, quote_via=quote)
        response = api.rest_client.request(  # type: ignore[no-untyped-call]
            method, url, headers=headers, body=body, _request_timeout=REQUEST_TIMEOUT
        )
        data = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return json.loads(data) if data else {}


class Connection(Protocol):
    """How to reach and authenticate to the API server: what kopf's login gives
    (`kopf.ConnectionInfo`: its server, TLS context and `Authorization` header)."""

    @property
    def server(self) -> str:
        """The API server's URL."""

    def as_http_headers(self) -> dict[str, str]:
        """The `Authorization` header (a bearer token, or basic auth), or none."""

    def as_ssl_context(self) -> ssl.SSLContext:
        """The TLS context: the CA to trust, the client certificate, or no verification."""


# The fields of a `Connection` its TLS context is made of: the session is kept while they are.
_TLS_FIELDS = (
    "server",
    "ca_path",
    "ca_data",
    "insecure",
    "certificate_path",
    "certificate_data",
    "private_key_path",
    "private_key_data",
)


@dataclasses.dataclass
class _Login:
    """One login's connection, its session and headers; `generation` counts the logins."""

    connection: Connection
    session: aiohttp.ClientSession
    headers: dict[str, str]
    generation: int


@dataclasses.dataclass(frozen=True)
class _Answer:
    """An error answer as `ApiException` reads one (status, reason, body bytes, headers)."""

    status: int
    reason: str | None
    data: bytes
    headers: dict[str, str]


class AioApi:
    """`LeanApi`'s calls on the event loop, over aiohttp (about half the CPU of a request made
    with urllib3 in a thread, and no hand-off to one): the same requests (method, path, headers,
    JSON body, timeouts) and the same `ApiException` on an answer outside 2xx. A failure to get
    an answer is an `OSError` (a `ConnectionError`) or a `TimeoutError`, as the callers expect
    of a network failure.

    `login` (blocking: it may read files; run in a thread) gives the `Connection`: kopf's own
    login function, so the requests go where, and as whom, kopf's watches go. It is called at
    the first request, and again once when the API server answers 401 (a token that expired or
    was rotated), the request then tried once more. `headers` are sent with every request (the
    client's `User-Agent`); `limit` is the number of connections kept, and in flight at most."""

    def __init__(
        self,
        login: Callable[[], Connection | None],
        *,
        headers: Mapping[str, str] | None = None,
        limit: int = API_CONCURRENCY,
    ) -> None:
        self._login_fn = login
        self._headers = dict(headers or {})
        self._limit = max(1, limit)
        self._current: _Login | None = None
        self._lock = asyncio.Lock()
        self._sessions: list[aiohttp.ClientSession] = []

    async def close(self) -> None:
        """Close the sessions (the connections they keep)."""
        sessions, self._sessions, self._current = self._sessions, [], None
        for session in sessions:
            await session.close()

    async def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> Any:
        """GET one custom object."""
        path = _path("apis", group, version, "namespaces", namespace, plural, name)
        return await self._request("GET", path)

    async def patch_namespaced_custom_object_status(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: object
    ) -> Any:
        """Merge-patch a custom object's status subresource."""
        path = _path("apis", group, version, "namespaces", namespace, plural, name, "status")
        return await self._request("PATCH", path, _json(body), "application/merge-patch+json")

    async def read_namespaced_job(self, name: str, namespace: str) -> Any:
        """GET one Job."""
        return await self._request(
            "GET", _path("apis", "batch", "v1", "namespaces", namespace, "jobs", name)
        )

    async def create_namespaced_job(self, namespace: str, body: Mapping[str, Any]) -> Any:
        """POST a Job, checked against the client's model first, as `LeanApi` checks it."""
        data = json.dumps(body)
        client.V1Job.model_validate_json(data)
        path = _path("apis", "batch", "v1", "namespaces", namespace, "jobs")
        return await self._request("POST", path, data.encode())

    async def create_namespaced_event(self, namespace: str, body: Mapping[str, Any]) -> Any:
        """POST a core/v1 Event."""
        path = _path("api", "v1", "namespaces", namespace, "events")
        return await self._request("POST", path, _json(body))

    async def _request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        content_type: str = "application/json",
    ) -> Any:
        login = self._current or await self._relogin(None)
        answer = await self._send(login, method, path, data, content_type)
        if answer.status == 401:  # an expired or rotated token: log in again, try once more
            login = await self._relogin(login.generation)
            answer = await self._send(login, method, path, data, content_type)
        if not 200 <= answer.status <= 299:
            raise ApiException.from_response(http_resp=answer, body=None, data=None)
        return json.loads(answer.data) if answer.data else {}

    async def _send(
        self, login: _Login, method: str, path: str, data: bytes | None, content_type: str
    ) -> _Answer:
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        headers.update(login.headers)
        url = login.connection.server.rstrip("/") + path
        request = functools.partial(_exchange, login.session, method, url, data, headers)
        try:
            # A kept connection the server had closed is tried again by aiohttp for a GET
            # (not for a POST or a PATCH), as urllib3 does.
            return await request()
        except aiohttp.ClientError as error:
            if isinstance(error, OSError | TimeoutError):
                raise
            # A dropped connection or a broken answer: no answer, as urllib3's errors say.
            raise ConnectionError(f"no answer from the API server ({error})") from error

    async def _relogin(self, stale: int | None) -> _Login:
        """Log in (again, when the login of generation `stale` was refused), once for all the
        requests that need it; a new session only when the TLS material changed."""
        async with self._lock:
            current = self._current
            if current is not None and current.generation != stale:
                return current  # another request has logged in meanwhile
            try:
                connection = await asyncio.to_thread(self._login_fn)
            except Exception as error:
                # As kopf's watches would: not the request's fault, a later try may log in.
                raise ConnectionError(f"could not log in ({type(error).__name__})") from error
            if connection is None:
                raise ConnectionError("no credentials for the API server (the login gave none)")
            if current is not None and _tls_of(current.connection) == _tls_of(connection):
                session = current.session
            else:
                session = await self._new_session(connection)
            headers = {**self._headers, **connection.as_http_headers()}
            generation = 0 if current is None else current.generation + 1
            self._current = _Login(connection, session, headers, generation)
            return self._current

    async def _new_session(self, connection: Connection) -> aiohttp.ClientSession:
        # Reads the CA and client certificate files: in a thread, not on the loop.
        context = await asyncio.to_thread(connection.as_ssl_context)
        connect, read = REQUEST_TIMEOUT
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._limit, ssl=context),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read),
            trust_env=bool(getattr(connection, "trust_env", False)),  # a proxy, as kopf's
            cookie_jar=aiohttp.DummyCookieJar(),  # no cookies kept, as the client keeps none
        )
        # Kept to the end: requests in flight on a previous session finish on it.
        self._sessions.append(session)
        return session


async def _exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    data: bytes | None,
    headers: Mapping[str, str],
) -> _Answer:
    """One request, its whole answer read."""
    async with session.request(method, url, data=data, headers=headers) as got:
        return _Answer(got.status, got.reason, await got.read(), dict(got.headers))


def _tls_of(connection: Connection) -> tuple[Any, ...]:
    """What a connection's TLS context is made of."""
    return tuple(getattr(connection, field, None) for field in _TLS_FIELDS)


class KubeCluster:
    """Async façade over the official client for the few calls the operator makes."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        concurrency: int = API_CONCURRENCY,
        qps: float = 0.0,
        burst: int = 0,
        login: Callable[[], Connection | None] | None = None,
    ) -> None:
        """`login`, when given (kopf's login function: the operator), makes the calls of a
        goal's cycle on the event loop (`AioApi`); without it (a command, a test without
        kopf) they are made in threads (`LeanApi`)."""
        _size_pool(api_client, concurrency)
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._lean = LeanApi(api_client)
        self._aio = (
            None
            if login is None
            else AioApi(login, headers=_client_headers(api_client), limit=concurrency)
        )
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="kube-api")
        self._limit = RateLimit(qps, burst or max(1, int(qps * 2))) if qps > 0 else None

    def close(self) -> None:
        """Let the worker threads go once the calls in flight are done."""
        self._executor.shutdown(wait=False)

    async def aclose(self) -> None:
        """`close`, and close the event loop's connections (`AioApi`), if any."""
        self.close()
        if self._aio is not None:
            await self._aio.close()

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """One API call in a worker thread, its JSON answer decoded there."""
        if self._limit is not None:
            await self._limit.wait()
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        call = functools.partial(_call_sync, method, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _create(self, manifest: Mapping[str, Any], method: Any, *args: Any) -> dict[str, Any]:
        """`method(*args, manifest)` in a worker thread: the object as created;
        AlreadyExistsError when one of that name exists (a 409), other errors as raised."""
        try:
            created: dict[str, Any] = await self._call(
                method, *args, manifest, _preload_content=False
            )
        except ApiException as error:
            if error.status == 409:
                raise AlreadyExistsError(manifest["metadata"]["name"]) from None
            raise
        return created

    async def _lean_call(self, name: str, *args: Any) -> Any:
        """One call of a goal's cycle, by its name: on the event loop (`AioApi`), or in a worker
        thread (`LeanApi`, its JSON answer decoded there)."""
        if self._limit is not None:
            await self._limit.wait()
        if self._aio is not None:
            return await getattr(self._aio, name)(*args)
        method = getattr(self._lean, name)
        return await asyncio.get_running_loop().run_in_executor(self._executor, method, *args)

    async def _get_or_none(self, reading: Awaitable[Any]) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await reading
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return result

    # ------------------------------------------------------------------------------ jobs

    async def create_job(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Job; AlreadyExistsError when one of that name exists, JobRefusedError when
        the API server (400, 403, 404, 422) or the client's own validation refuses it. Other
        failures (429, 5xx, no answer) are raised as they are: a later try may succeed."""
        namespace = str(manifest["metadata"]["namespace"])
        try:
            created: dict[str, Any] = await self._lean_call(
                "create_namespaced_job", namespace, manifest
            )
        except ApiException as error:
            if error.status == 409:
                raise AlreadyExistsError(manifest["metadata"]["name"]) from None
            refused = _refused_job(error, namespace)
            if refused is None:
                raise
            raise refused from None
        except ValueError as error:  # the client validates a body against its models first
            raise JobRefusedError(
                "InvalidSpec", f"the Kubernetes client refused the Job: {_client_problem(error)}"
            ) from None
        return created

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Job, or None when it does not exist."""
        return await self._get_or_none(self._lean_call("read_namespaced_job", name, namespace))

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and, first, its Pods (foreground), stopping a running attempt."""
        body = client.V1DeleteOptions(propagation_policy="Foreground")
        try:
            await self._call(
                self._batch.delete_namespaced_job,
                name,
                namespace,
                body=body,
                _preload_content=False,
            )
        except ApiException as error:
            if error.status != 404:
                raise

    async def job_names(self, namespace: str, selector: str) -> list[str]:
        """Names of the Jobs matching a label selector."""
        return [str(item["metadata"]["name"]) for item in await self.list_jobs(namespace, selector)]

    async def list_jobs(self, namespace: str | None, selector: str) -> list[dict[str, Any]]:
        """The Jobs matching a label selector, in one namespace or in all of them."""
        return [job async for page in self.job_pages(namespace, selector) for job in page]

    async def job_pages(
        self, namespace: str | None, selector: str, *, limit: int = LIST_PAGE
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The Jobs matching a label selector, `limit` at a time (a Job's Pod template weighs:
        one answer with every Job of a large cluster would be a large peak of memory)."""
        token: str | None = None
        while True:
            paging: dict[str, Any] = (
                {"limit": limit, "_continue": token} if token else {"limit": limit}
            )
            if namespace:
                listing = await self._call(
                    self._batch.list_namespaced_job,
                    namespace,
                    label_selector=selector,
                    _preload_content=False,
                    **paging,
                )
            else:
                listing = await self._call(
                    self._batch.list_job_for_all_namespaces,
                    label_selector=selector,
                    _preload_content=False,
                    **paging,
                )
            yield list(listing.get("items") or [])
            token = (listing.get("metadata") or {}).get("continue")
            if not token:
                return

    async def find_pod(self, namespace: str, selector: str) -> dict[str, Any] | None:
        """The newest Pod matching a label selector (a Job with backoffLimit 0 has one)."""
        listing = await self._call(
            self._core.list_namespaced_pod,
            namespace,
            label_selector=selector,
            _preload_content=False,
        )
        items: list[dict[str, Any]] = listing.get("items") or []
        if not items:
            return None
        return max(
            items, key=lambda pod: str(pod.get("metadata", {}).get("creationTimestamp") or "")
        )

    async def pod_log_tail(
        self, namespace: str, pod: str, container: str, *, max_bytes: int
    ) -> str | None:
        """The end of one container's log: its last `LOG_TAIL_LINES` lines as the kubelet
        sends them (at most `LOG_READ_BYTES`), cut to the last `max_bytes` bytes; None when
        the Pod, or the container's log, is not there (a 404, or a 400 for a container that
        never started)."""
        data = await self._pod_log_bytes(
            namespace, pod, container, tail_lines=LOG_TAIL_LINES, limit_bytes=LOG_READ_BYTES
        )
        if data is None:
            return None
        tail = data[-max_bytes:] if max_bytes > 0 else b""
        return tail.decode("utf-8", errors="replace").lstrip("\ufffd")

    async def pod_log(
        self, namespace: str, pod: str, container: str, *, max_bytes: int
    ) -> str | None:
        """One container's whole log, its first `max_bytes` bytes at most (the kubelet's
        `limitBytes`); None when the Pod, or the container's log, is not there."""
        data = await self._pod_log_bytes(namespace, pod, container, limit_bytes=max_bytes)
        if data is None:
            return None
        return data[:max_bytes].decode("utf-8", errors="replace")

    async def _pod_log_bytes(
        self, namespace: str, pod: str, container: str, **query: int
    ) -> bytes | None:
        """A container's log as the kubelet sends it (`query`: tail_lines, limit_bytes); None
        when the Pod, or the container's log, is not there (a 404, or a 400 for a container
        that never started)."""
        if self._limit is not None:
            await self._limit.wait()
        call = functools.partial(
            _read_raw,
            self._core.read_namespaced_pod_log,
            pod,
            namespace,
            container=container,
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
            **query,
        )
        try:
            data: bytes = await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except ApiException as error:
            if error.status in (400, 404):
                return None
            raise
        return data

    async def pod_events(self, namespace: str, pod: str, reason: str) -> list[dict[str, Any]]:
        """The Events about one Pod with `reason` (e.g. the kubelet's `FailedMount`), which say
        what its status does not: why its containers are not being created."""
        selector = f"involvedObject.kind=Pod,involvedObject.name={pod},reason={reason}"
        listing = await self._call(
            self._core.list_namespaced_event,
            namespace,
            field_selector=selector,
            _preload_content=False,
        )
        items: list[dict[str, Any]] = listing.get("items") or []
        return items

    # ------------------------------------------------------------------------ configmaps

    async def create_config_map(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a ConfigMap (a Goal's staged patch); AlreadyExistsError when one of that
        name exists."""
        namespace = str(manifest["metadata"]["namespace"])
        return await self._create(manifest, self._core.create_namespaced_config_map, namespace)

    async def patch_config_map(
        self, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch a ConfigMap (a re-run's staged patch replaces the earlier one's)."""
        written: dict[str, Any] = await self._call(
            self._core.patch_namespaced_config_map,
            name,
            namespace,
            dict(patch),
            _content_type="application/merge-patch+json",
            _preload_content=False,
        )
        return written

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A ConfigMap, or None when it does not exist."""
        return await self._get_or_none(
            self._call(
                self._core.read_namespaced_config_map, name, namespace, _preload_content=False
            )
        )

    # ----------------------------------------------------------------------------- goals

    async def get_goal(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Goal, or None when it is gone."""
        return await self.get_custom(GOAL_PLURAL, namespace, name)

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One of our custom objects (goals, goalschedules, backlogs), or None when gone."""
        return await self._get_or_none(
            self._lean_call("get_namespaced_custom_object", GROUP, VERSION, namespace, plural, name)
        )

    async def list_goals(
        self, namespace: str | None = None, selector: str = ""
    ) -> list[dict[str, Any]]:
        """Goals in one namespace, or in all of them, optionally by label selector."""
        return await self.list_custom(GOAL_PLURAL, namespace, selector)

    async def list_custom(
        self, plural: str, namespace: str | None = None, selector: str = ""
    ) -> list[dict[str, Any]]:
        """Custom objects of ours in one namespace, or in all of them."""
        if namespace:
            listing = await self._call(
                self._custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                label_selector=selector,
                _preload_content=False,
            )
        else:
            listing = await self._call(
                self._custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                plural,
                label_selector=selector,
                _preload_content=False,
            )
        return list(listing.get("items") or [])

    async def create_goal(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Goal; AlreadyExistsError when one of that name exists."""
        namespace = str(manifest["metadata"]["namespace"])
        create = self._custom.create_namespaced_custom_object
        return await self._create(manifest, create, GROUP, VERSION, namespace, GOAL_PLURAL)

    async def delete_goal(self, namespace: str, name: str) -> None:
        """Delete a Goal (its Jobs follow: the operator stops them, the GC removes them)."""
        try:
            await self._call(
                self._custom.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                GOAL_PLURAL,
                name,
                _preload_content=False,
            )
        except ApiException as error:
            if error.status != 404:
                raise

    async def patch_goal_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch a Goal's status subresource (the operator never writes `spec`)."""
        await self.patch_custom_status(GOAL_PLURAL, namespace, name, status)

    async def patch_custom_status(
        self,
        plural: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any] | None:
        """Merge-patch the status subresource of one of our objects; with `resource_version`
        (of the object the patch was computed from) the API server refuses it (409) when the
        object changed since, rather than let a stale computation overwrite a newer status.
        Returns the object as written (None when it is gone)."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            written: dict[str, Any] = await self._lean_call(
                "patch_namespaced_custom_object_status",
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                body,
            )
        except ApiException as error:
            if error.status != 404:  # deleted meanwhile: nothing to report on
                raise
            return None
        return written

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a Secret a Backlog names (for reading a private backlog), or None."""
        secret = await self._get_or_none(
            self._call(self._core.read_namespaced_secret, name, namespace, _preload_content=False)
        )
        encoded = ((secret or {}).get("data") or {}).get(key)
        if encoded is None:
            return None
        return base64.b64decode(encoded).decode("utf-8").strip()

    async def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """All keys of a Secret, decoded (a credentials Secret may hold a GitHub App), or None."""
        secret = await self._get_or_none(
            self._call(self._core.read_namespaced_secret, name, namespace, _preload_content=False)
        )
        if secret is None:
            return None
        data = secret.get("data") or {}
        return {str(k): base64.b64decode(v).decode("utf-8") for k, v in data.items() if v}

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret as the API has it (an attempt's token Secret: its expiry annotation)."""
        return await self._get_or_none(
            self._call(self._core.read_namespaced_secret, name, namespace, _preload_content=False)
        )

    async def create_secret(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Secret (an attempt's token); AlreadyExistsError when it exists, a
        non-retryable ClassifiedError when the API server refuses it (400, 403, 404, 422)."""
        namespace = str(manifest["metadata"]["namespace"])
        try:
            return await self._create(manifest, self._core.create_namespaced_secret, namespace)
        except ApiException as error:
            if int(error.status or 0) in (400, 403, 404, 422):
                raise ClassifiedError(
                    "TokenSecretRefused",
                    f"the API server refused the attempt's token Secret: {error.status} "
                    f"{_status_message(error)}",
                    retryable=False,
                ) from None
            raise

    async def patch_secret(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """Merge-patch a Secret (an attempt's token, re-minted while its Job runs)."""
        await self._call(
            self._core.patch_namespaced_secret, name, namespace, patch, _preload_content=False
        )

    # ---------------------------------------------------------------------------- events

    async def post_event(
        self, involved: Mapping[str, Any], kind: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event on `involved` (a Goal's body); `kind` is Normal or Warning."""
        metadata = involved.get("metadata", {})
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": _event_name_prefix(str(metadata.get("name") or "goal")),
                "namespace": metadata.get("namespace"),
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": metadata.get("name"),
                "namespace": metadata.get("namespace"),
                "uid": metadata.get("uid"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        for attempt in range(1, EVENT_TRIES + 1):
            try:
                await self._lean_call("create_namespaced_event", metadata.get("namespace"), event)
                return
            except Exception as error:
                wait = _event_retry_wait(error, attempt)
                if wait is None or attempt == EVENT_TRIES:
                    raise
                log.debug("posting event %s failed (%s); again in %.1fs", reason, error, wait)
                await asyncio.sleep(wait)


def describe_failure(error: BaseException) -> tuple[str, bool]:
    """A failed reconcile's exception as one redacted sentence for a condition, an event or a
    log line, and whether it is permanent (no retry of the same request can succeed: the API
    server refused it as invalid or forbidden, or the code tripped over itself)."""
    if isinstance(error, ApiException):
        status = int(error.status or 0)
        text = f"the API server answered {status} {_status_message(error)}"
        permanent = status in (400, 403, 422)
    elif isinstance(error, ClassifiedError):
        text, permanent = f"{error.reason}: {error}", not error.retryable
    elif isinstance(error, OSError | TimeoutError) or _is_network_error(error):
        text, permanent = f"the API server could not be reached ({type(error).__name__})", False
    else:
        text, permanent = f"{type(error).__name__}: {error}", True
    return _redact(text)[:_MESSAGE_LIMIT], permanent


def _is_network_error(error: BaseException) -> bool:
    # urllib3's errors (no answer, a dropped connection, a read timeout) without importing it.
    return type(error).__module__.split(".")[0] == "urllib3"


def _status_message(error: ApiException) -> str:
    """`Reason: message` of the Status the API server answered with (or the HTTP reason)."""
    try:
        status = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        status = {}
    if not isinstance(status, dict):
        status = {}
    reason = status.get("reason") or error.reason or ""
    message = status.get("message") or ""
    return f"{reason}: {message}" if message else str(reason)


def _refused_job(error: ApiException, namespace: str) -> JobRefusedError | None:
    """A permanent refusal of a Job, or None for an answer a later try may get past."""
    status = int(error.status or 0)
    if status in _RETRYABLE_STATUSES or status == 401 or status < 400:
        return None
    said = _status_message(error)
    if status == 404:
        return JobRefusedError(
            "JobRefused", f"the API server refused the Job (404 {said}; namespace {namespace})"
        )
    reason = _REFUSED_JOB_REASONS.get(status, "JobRefused")
    return JobRefusedError(reason, _redact(f"the API server refused the Job ({status} {said})"))


def _client_problem(error: ValueError) -> str:
    """The problems of the client's own validation error, on one line, without its URLs."""
    lines = [line.strip() for line in str(error).splitlines()]
    kept = [line for line in lines[1:] if line and not line.startswith("For further")]
    return _redact("; ".join(kept) or (lines[0] if lines else type(error).__name__))[:400]


def _event_retry_wait(error: Exception, attempt: int) -> float | None:
    """How long to wait before trying an Event again, or None when no try can succeed."""
    if isinstance(error, ApiException):
        if int(error.status or 0) not in _RETRYABLE_STATUSES:
            return None
        headers = {str(k).lower(): str(v) for k, v in (error.headers or {}).items()}
        try:
            return min(EVENT_MAX_WAIT, max(0.0, float(headers["retry-after"])))
        except (KeyError, ValueError):
            pass
    elif not isinstance(error, OSError | TimeoutError) and not _is_network_error(error):
        return None
    delay = min(EVENT_MAX_WAIT, 0.2 * 2 ** (attempt - 1))
    jittered: float = delay / 2 + random.random() * delay / 2  # noqa: S311 (jitter)
    return jittered


def _read_raw(method: Any, *args: Any, **kwargs: Any) -> bytes:
    response = method(*args, **kwargs)
    data = response.data if hasattr(response, "data") else response
    return data if isinstance(data, bytes) else str(data or "").encode()


def _call_sync(method: Any, *args: Any, **kwargs: Any) -> Any:
    response = method(*args, **kwargs)
    data = response.data if hasattr(response, "data") else response
    return json.loads(data) if data else {}


def _json(body: object) -> bytes:
    """A request's body as the client's REST layer encodes it (`json.dumps`)."""
    return json.dumps(body).encode()


def _path(*segments: str) -> str:
    """A request's path: each segment quoted whole, as the client quotes its path parameters."""
    return "/" + "/".join(quote(str(segment), safe="") for segment in segments)


def _client_headers(api_client: client.ApiClient) -> dict[str, str]:
    """The headers the client sends with every request (its `User-Agent`, any default
    header), so that `AioApi`'s requests are the client's."""
    headers = {str(k): str(v) for k, v in api_client.default_headers.items()}
    if api_client.cookie:
        headers["Cookie"] = str(api_client.cookie)
    return headers


def _size_pool(api_client: client.ApiClient, size: int) -> None:
    """Give the client as many pooled connections as requests may be in flight (its default,
    five per CPU, may be smaller: urllib3 then opens a connection per extra request and drops
    it, "Connection pool is full, discarding connection")."""
    configuration = api_client.configuration
    if (configuration.connection_pool_maxsize or 0) < size:
        configuration.connection_pool_maxsize = size
        api_client.rest_client = rest.RESTClientObject(configuration)


def _event_name_prefix(name: str) -> str:
    """The generateName of an Event on the object `name`: `<name>.`, the name cut to what the
    API server keeps (an object's name runs to 253 characters) and ending where a DNS
    subdomain may continue."""
    head = name[: _GENERATE_NAME_MAX_LENGTH - 1].rstrip(".-")
    return f"{head or 'goal'}."
