# One image for the operator (`backlogctl operator`) and the worker's clone and publish steps
# (`backlogctl worker clone|publish`). `make image` builds it (with Docker, or buildah where no
# Docker engine runs):
#   make image IMG=backlog-operator:0.1.0
#   docker build -t backlog-operator:0.1.0 .
# Any builder works: no BuildKit-only syntax is used.

# The base of both stages: a Debian bookworm with Python 3.11 (`python3`, its `venv` module).
# CI, which reaches no container registry, passes a stand-in made from Debian's own packages.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# Build: the project and its dependencies installed into a virtual environment, which the
# runtime stage copies whole. The installer (pip, setuptools) and the sources stay here, and so
# does the kubernetes client's asyncio copy (`kubernetes.aio`, a third of the environment), which
# nothing imports: kopf reaches the API with aiohttp, the operator with the synchronous client
# (the image tests import the operator from the image to hold that).
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The dependencies first, from pyproject.toml alone: a change to the sources reuses this layer.
COPY pyproject.toml ./
RUN python3 -m venv /opt/backlog-operator \
    && python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
        print(*p["dependencies"], sep="\n")' > /tmp/requirements.txt \
    && /opt/backlog-operator/bin/pip install --requirement /tmp/requirements.txt
COPY README.md ./
COPY operator ./operator
RUN /opt/backlog-operator/bin/pip install --no-deps . \
    && /opt/backlog-operator/bin/pip uninstall --yes --quiet pip setuptools \
    && rm -rf /opt/backlog-operator/lib/python3.*/site-packages/kubernetes/aio

FROM ${BASE_IMAGE}
# git: the worker steps and the Backlog sync drive the git CLI. A base that already carries it
# (the CI stand-in) needs no package index here.
# Versions are not pinned: Debian replaces a package version in the archive when it ships a
# security fix, so an exact pin would break rebuilds; the base image tag pins the release.
# hadolint ignore=DL3008
RUN if ! command -v git >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends git \
        && rm -rf /var/lib/apt/lists/*; \
    fi
# A numeric, non-root user (as Kubernetes' runAsNonRoot can only verify numeric ids), with a
# home for git's configuration and a workspace it owns. The Job mounts volumes over
# /workspace and /tmp and sets HOME=/tmp: the root filesystem can be read-only.
RUN groupadd --gid 65532 backlog \
    && useradd --uid 65532 --gid 65532 --home-dir /home/backlog --create-home \
        --shell /usr/sbin/nologin backlog \
    && install -d -o 65532 -g 65532 /workspace
# The environment refers to its interpreter by path: the same base in both stages keeps it valid.
COPY --from=build /opt/backlog-operator /opt/backlog-operator
ENV PATH=/opt/backlog-operator/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/backlog
USER 65532:65532
WORKDIR /workspace
ENTRYPOINT ["backlogctl"]
CMD ["--help"]
