"""A Pod's containers run from their images with buildah, the way the kubelet runs them.

`BuildahPod` takes a Pod spec (the operator's own Job template, from `build_job`) and mirrors:
each container in a fresh container of its image (its own root filesystem); init containers in
order, then the main container, stopping at the first failure; `command` replacing the image's
entrypoint and `args` its cmd; the container's `env` over the image's; `workingDir`; the Pod's
`runAsUser`/`runAsGroup` and `fsGroup`; all capabilities dropped; only the volumes the container
mounts, each a host folder standing for the volume (an `emptyDir` open to all, as the kubelet
makes it; a Secret's items as files of mode `defaultMode`, group `fsGroup`); a read-only root
filesystem where `readOnlyRootFilesystem` is set.

Where buildah's chroot isolation differs from a container runtime, and what stands in:

- A read-only root: `buildah run` has no such option. In a private mount namespace (`unshare`)
  the container's root is bind-mounted read-only onto itself, after its mount points were made,
  as a runtime makes them. buildah writes a marker file into `/run`, so `/run` is a host folder
  there, and it must be empty afterwards: nothing else may have written into it.
- The termination message: the chroot shares the host's `/dev`, so the file the kubelet would
  mount at `terminationMessagePath` is mounted at `/termination-log`, and
  `BACKLOG_TERMINATION_LOG` (the worker's documented override) names it.
- No network namespace: the host's network, so servers on 127.0.0.1 stand for the forge.
- `allowPrivilegeEscalation: false` and the seccomp profile are not applied.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TERMINATION_LOG = "/termination-log"  # where the termination message file is mounted instead
STEP_TIMEOUT = 300

Completed = subprocess.CompletedProcess[str]


@functools.cache
def storage_driver() -> str:
    """The storage driver `make image` uses: BUILDAH_STORAGE_DRIVER, else overlay where the
    kernel mounts it, else vfs (the Makefile's rule)."""
    if os.environ.get("BUILDAH_STORAGE_DRIVER"):
        return os.environ["BUILDAH_STORAGE_DRIVER"]
    probe = subprocess.run(
        ["buildah", "--storage-driver", "overlay", "images"], capture_output=True, check=False
    )
    return "overlay" if probe.returncode == 0 else "vfs"


def buildah_command() -> list[str]:
    """buildah with the storage driver `make image` uses."""
    return ["buildah", "--storage-driver", storage_driver()]


def buildah(*args: str, timeout: float = 120) -> str:
    """Run buildah; its stdout. Raises with buildah's stderr when it fails."""
    completed = subprocess.run(
        [*buildah_command(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)} failed: {completed.stderr}")
    return completed.stdout


class BuildahPod:
    """One Pod's containers, run from their images; host folders under `root` for its volumes."""

    # The Pod's name and namespace, for the downward API's `fieldRef`s.
    POD_NAME = "image-test-pod"
    POD_NAMESPACE = "default"

    def __init__(
        self,
        pod_spec: Mapping[str, Any],
        root: Path,
        *,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.spec = pod_spec
        self.root = root
        security = pod_spec.get("securityContext", {})
        self.uid = int(security["runAsUser"])
        self.gid = int(security.get("runAsGroup", self.uid))
        self.fs_group = security.get("fsGroup")
        self.volumes = {
            volume["name"]: self._make_volume(volume, secrets or {})
            for volume in pod_spec.get("volumes", [])
        }
        self.outputs: dict[str, Completed] = {}

    def run(self) -> str | None:
        """Init containers in order, then the containers; the name of the first that fails."""
        for container in [*self.spec.get("initContainers", []), *self.spec["containers"]]:
            completed = self.run_container(container)
            if completed.returncode != 0:
                return str(container["name"])
        return None

    def termination_message(self, container: str) -> str:
        """What `container` wrote to its termination message file."""
        return (self.root / "termination" / container).read_text()

    def run_container(self, container: Mapping[str, Any]) -> Completed:
        """One container, in a fresh working container of its image, removed afterwards."""
        name = f"{container['name']}-{uuid.uuid4().hex[:8]}"
        buildah("from", "--quiet", "--pull=never", "--name", name, container["image"])
        try:
            completed = self._run_in(name, container)
        finally:
            buildah("rm", name)
        self.outputs[str(container["name"])] = completed
        return completed

    def _env_value(self, item: Mapping[str, Any]) -> str:
        """An env var's value; the downward API's fields of the Pod as the kubelet gives them."""
        if "value" in item:
            return str(item["value"])
        path = item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        fields = {"metadata.name": self.POD_NAME, "metadata.namespace": self.POD_NAMESPACE}
        if path not in fields:
            raise ValueError(f"env {item['name']}: only values and Pod fields are supported")
        return fields[path]

    def _run_in(self, name: str, container: Mapping[str, Any]) -> Completed:
        config = json.loads(buildah("inspect", "--type", "container", name))["OCIv1"]["config"]
        termination = self.root / "termination" / str(container["name"])
        termination.parent.mkdir(exist_ok=True)
        termination.touch()
        termination.chmod(0o666)  # the kubelet's file is writable by the container's user
        env = {item["name"]: self._env_value(item) for item in container.get("env", [])}
        env["BACKLOG_TERMINATION_LOG"] = TERMINATION_LOG
        rootfs = Path(buildah("mount", name).strip())
        try:
            # Mount points with the image's symbolic links followed in the image: buildah 1.28
            # follows an absolute link (/var/run -> /run) on the host when it makes one.
            mounts = [(termination, TERMINATION_LOG, False)]
            for mount in container.get("volumeMounts", []):
                path = resolve_in(rootfs, mount["mountPath"])
                mounts.append((self.volumes[mount["name"]], path, bool(mount.get("readOnly"))))
            options = ["--isolation", "chroot", "--user", f"{self.uid}:{self.gid}"]
            security = container.get("securityContext", {})
            if "ALL" in security.get("capabilities", {}).get("drop", []):
                options += ["--cap-drop", "all"]
            if "workingDir" in container:
                options += ["--workingdir", container["workingDir"]]
            options += [f"--env={key}={value}" for key, value in env.items()]
            options += [f"--volume={host}:{at}:{'ro' if ro else 'rw'}" for host, at, ro in mounts]
            argv = self._argv(container, config)
            command = [*buildah_command(), "run", *options, name, "--", *argv]
            if not security.get("readOnlyRootFilesystem", False):
                return _run(command)
            return self._run_read_only(rootfs, name, command, [at for _, at, _ in mounts])
        finally:
            buildah("umount", name)

    def _run_read_only(
        self, rootfs: Path, name: str, command: list[str], mount_points: list[str]
    ) -> Completed:
        # The runtime makes mount points before the root turns read-only; so does this.
        for path in mount_points:
            target = rootfs / path.lstrip("/")
            if path == TERMINATION_LOG:
                target.touch()
            else:
                target.mkdir(parents=True, exist_ok=True)
        for path in ("etc/hosts", "etc/resolv.conf", "etc/hostname"):
            if not (rootfs / path).exists() and not (rootfs / path).is_symlink():
                (rootfs / path).touch()
        # buildah puts a marker into /run and removes it afterwards: /run is a copy, which must
        # be as it was when the container stops.
        run_dir = self.root / "run" / name
        shutil.copytree(rootfs / "run", run_dir, symlinks=True)
        before = _tree(run_dir)
        script = (
            'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" '
            '&& mount --bind "$2" "$1/run" && shift 2 && exec "$@"'
        )
        unshare = ["unshare", "--mount", "--propagation", "private"]
        completed = _run([*unshare, "sh", "-c", script, "sh", str(rootfs), str(run_dir), *command])
        if _tree(run_dir) != before:
            changed = sorted(_tree(run_dir) ^ before)
            raise AssertionError(f"{name} wrote {changed} under /run, on a read-only root")
        return completed

    @staticmethod
    def _argv(container: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
        """Kubernetes' rule: `command` replaces the entrypoint (and the cmd), `args` the cmd."""
        if "command" in container:
            return [*container["command"], *container.get("args", [])]
        args = container["args"] if "args" in container else config.get("Cmd") or []
        return [*(config.get("Entrypoint") or []), *args]

    def _make_volume(
        self, volume: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]]
    ) -> Path:
        path = self.root / "volumes" / str(volume["name"])
        path.mkdir(parents=True)
        if "secret" in volume:
            source = volume["secret"]
            data = secrets[source["secretName"]]
            items = source.get("items") or [{"key": key, "path": key} for key in data]
            for item in items:
                file = path / item["path"]
                file.write_text(data[item["key"]])
                file.chmod(source.get("defaultMode", 0o644))
                if self.fs_group is not None:
                    shutil.chown(file, group=int(self.fs_group))
            path.chmod(0o755)
        else:
            path.chmod(0o777)  # an emptyDir is open to every user of the Pod
        return path


def resolve_in(rootfs: Path, path: str) -> str:
    """`path` in the image at `rootfs`, its symbolic links followed there, never on the host."""
    pending = [part for part in path.split("/") if part not in ("", ".")]
    resolved: list[str] = []
    for _ in range(256):
        if not pending:
            return "/" + "/".join(resolved)
        part = pending.pop(0)
        if part == "..":
            resolved = resolved[:-1]
            continue
        candidate = rootfs.joinpath(*resolved, part)
        if not candidate.is_symlink():
            resolved.append(part)
            continue
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p not in ("", ".")] + pending
    raise ValueError(f"too many symbolic links under {path}")


def _tree(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def _run(command: list[str]) -> Completed:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=STEP_TIMEOUT, check=False
    )
