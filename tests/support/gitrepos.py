"""Real git repositories for tests: bare remotes, protected branches, a smart-HTTP server.

Everything here drives the `git` executable directly (never the adapter under test), with an
identity of its own and no system or user configuration, so fixtures behave the same on every
machine. Commits are written with plumbing into the bare repository itself, the way an
administrator would: no work tree, no hooks.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

FIXTURE_AUTHOR = ("Fixture Author", "fixture@example.com")

_FIXTURE_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": FIXTURE_AUTHOR[0],
    "GIT_AUTHOR_EMAIL": FIXTURE_AUTHOR[1],
    "GIT_COMMITTER_NAME": FIXTURE_AUTHOR[0],
    "GIT_COMMITTER_EMAIL": FIXTURE_AUTHOR[1],
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}

FileContent = str | bytes | None  # None deletes the file
_REF_PATTERN = re.compile(r"[A-Za-z0-9._/*?-]+")


def run_git(
    *args: str,
    cwd: Path | None = None,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> str:
    """Run git with the fixtures' environment (plus `env`); its stdout as text."""
    # GIT_DIR and friends from a surrounding hook or shell would redirect every command.
    environ = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    environ.update(_FIXTURE_ENV)
    environ.update(env or {})
    completed = subprocess.run(
        ["git", *args], cwd=cwd, env=environ, input=input, capture_output=True, check=False
    )
    if check and completed.returncode != 0:
        raise RuntimeError(
            f"git {' '.join(args)} failed ({completed.returncode}): "
            f"{completed.stderr.decode(errors='replace')}"
        )
    return completed.stdout.decode(errors="surrogateescape")


def make_remote(
    root: Path,
    files: Mapping[str, str | bytes],
    *,
    name: str = "remote.git",
    branch: str = "main",
    message: str = "Initial commit",
) -> Path:
    """A bare repository `root/name` whose `branch` has one commit holding `files`."""
    remote = root / name
    run_git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(remote))
    commit_to_remote(remote, branch, files, message)
    return remote


def commit_to_remote(
    remote: Path,
    branch: str,
    files: Mapping[str, FileContent],
    message: str = "Change",
    *,
    start: str | None = None,
) -> str:
    """Commit `files` onto `branch` of the bare `remote` (created from `start` if new); its sha.

    The files are laid over the branch's current tree (or `start`'s); None deletes one.
    """
    parent = remote_sha(remote, branch) or (_rev(remote, start) if start else None)
    index = remote / f"fixture-index-{threading.get_ident()}"
    env_index = {"GIT_INDEX_FILE": str(index)}
    try:
        if parent:
            _plumb(remote, env_index, "read-tree", parent)
        else:
            _plumb(remote, env_index, "read-tree", "--empty")
        for path, content in files.items():
            if content is None:
                # `--force-remove` wants a work tree; mode 0 through --index-info does not.
                removal = f"0 {'0' * 40}\t{path}\n".encode()
                _plumb(remote, env_index, "update-index", "--index-info", input=removal)
                continue
            data = content.encode() if isinstance(content, str) else content
            blob = _plumb(remote, {}, "hash-object", "-w", "--stdin", input=data).strip()
            _plumb(
                remote, env_index, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"
            )
        tree = _plumb(remote, env_index, "write-tree").strip()
    finally:
        index.unlink(missing_ok=True)
    parents = ["-p", parent] if parent else []
    sha = _plumb(remote, {}, "commit-tree", *parents, "-m", message, tree).strip()
    run_git("--git-dir", str(remote), "update-ref", f"refs/heads/{branch}", sha)
    return sha


def remote_sha(remote: Path, branch: str) -> str | None:
    """Where `branch` points in the bare `remote`, or None."""
    out = run_git(
        "--git-dir",
        str(remote),
        "rev-parse",
        "--verify",
        "--quiet",
        f"refs/heads/{branch}",
        check=False,
    ).strip()
    return out or None


def remote_branches(remote: Path) -> list[str]:
    """Names of every branch of the bare `remote`, sorted."""
    out = run_git(
        "--git-dir", str(remote), "for-each-ref", "--format=%(refname:short)", "refs/heads"
    )
    return sorted(out.split())


def protect_refs(remote: Path, *refs: str) -> None:
    """Install a pre-receive hook refusing any update of `refs`, like branch protection.

    Each ref may be a shell glob (`refs/heads/release/*`). The hook prints
    `error: <ref> is protected`, which git relays to the pusher as `remote: ...`.
    """
    for ref in refs:
        # Written into a `case` pattern unquoted, so that globs work: keep it to safe characters.
        if not _REF_PATTERN.fullmatch(ref):
            raise ValueError(f"unsupported ref pattern: {ref!r}")
    patterns = "|".join(refs)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "status=0\n"
        "while read old new ref; do\n"
        '  case "$ref" in\n'
        f'    {patterns}) echo "error: $ref is protected" >&2; status=1 ;;\n'
        "  esac\n"
        "done\n"
        "exit $status\n",
        encoding="utf-8",
    )
    hook.chmod(0o755)


def unused_port() -> int:
    """A local TCP port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def silent_port() -> Iterator[int]:
    """A local port that accepts connections and never answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def _rev(remote: Path, revision: str) -> str:
    return run_git("--git-dir", str(remote), "rev-parse", "--verify", revision).strip()


def _plumb(remote: Path, env: Mapping[str, str], *args: str, input: bytes | None = None) -> str:
    return run_git("--git-dir", str(remote), *args, env=env, input=input)


# ------------------------------------------------------------------------------ smart HTTP


class GitHttpServer:
    """`git http-backend` behind HTTP Basic auth on 127.0.0.1, serving bare repositories.

    Any user name is accepted; the password must be `token` (change it with `token=` to play a
    rotated Secret), or one `authorize(password, path, push)` allows (a GitHub App's
    installation token, held to its repository and permissions: `AppAuthority.git_authorizer`).
    Requests are counted, with how many carried no or wrong credentials.
    """

    def __init__(
        self,
        project_root: Path,
        token: str,
        authorize: Callable[[str, str, bool], bool] | None = None,
    ) -> None:
        self.project_root = Path(project_root)
        self.token = token
        self.authorize = authorize
        self.requests = 0
        self.refused = 0
        self._backend = str(Path(run_git("--exec-path").strip()) / "git-http-backend")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def port(self) -> int:
        """The ephemeral port the server listens on."""
        port: int = self._server.server_address[1]
        return port

    def url_for(self, repository: Path) -> str:
        """The clone URL of `repository` (under `project_root`); pushing to it is enabled."""
        relative = Path(repository).resolve().relative_to(self.project_root.resolve())
        run_git("--git-dir", str(repository), "config", "http.receivepack", "true")
        return f"http://127.0.0.1:{self.port}/{relative.as_posix()}"

    def start(self) -> GitHttpServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> GitHttpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def authorized(self, header: str | None, path: str = "/") -> str | None:
        """The user name when the Authorization header carries the token (or one `authorize`
        allows for `path`), else None."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if password == self.token:
            return user
        push = "git-receive-pack" in path
        allowed = self.authorize is not None and self.authorize(
            password, unquote(path.partition("?")[0]), push
        )
        return user if allowed else None

    def run_backend(self, environ: Mapping[str, str], body: bytes) -> bytes:
        """Run git http-backend as a CGI script; its raw output (headers and body)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
        env.update(
            {
                "GIT_PROJECT_ROOT": str(self.project_root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GATEWAY_INTERFACE": "CGI/1.1",
                "CONTENT_LENGTH": str(len(body)),
                **environ,
            }
        )
        completed = subprocess.run(
            [self._backend], env=env, input=body, capture_output=True, check=False, timeout=60
        )
        return completed.stdout


def _handler_for(server: GitHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the tests read captured output

        def _serve(self) -> None:
            server.requests += 1
            user = server.authorized(self.headers.get("Authorization"), self.path)
            if user is None:
                server.refused += 1
                self.send_response(HTTPStatus.UNAUTHORIZED)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            environ = {
                "REQUEST_METHOD": self.command,
                "PATH_INFO": unquote(path),
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "REMOTE_USER": user or "git",
                "REMOTE_ADDR": self.client_address[0],
                "SERVER_PROTOCOL": self.request_version,
            }
            if self.headers.get("Content-Encoding"):
                environ["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                environ["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            output = server.run_backend(environ, self._body())
            head, _, payload = output.partition(b"\r\n\r\n")
            if not payload and b"\r\n\r\n" not in output:
                head, _, payload = output.partition(b"\n\n")
            status = HTTPStatus.OK
            headers = []
            for line in head.decode("latin-1").splitlines():
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = HTTPStatus(int(value.split()[0]))
                elif key:
                    headers.append((key, value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

    return Handler
