# One image for the operator (`backlogctl operator`) and the worker's clone and publish steps
# (`backlogctl worker clone|publish`).
#   docker build -t backlog-operator:dev .
# It needs a builder that knows `RUN --mount` (BuildKit, the default of current Docker, or
# buildah) for the bind mount in the runtime stage.

# Build: the project and all of its dependencies as wheels, so the runtime stage needs no
# compiler, no build backend and no network.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
# git: the worker steps and the Backlog sync drive the git CLI.
# Versions are not pinned: Debian replaces a package version in the archive when it ships a
# security fix, so an exact pin would break rebuilds; the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
# The wheels are mounted from the build stage, not copied: they never land in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/backlog_operator-*.whl
# A numeric, non-root user (as Kubernetes' runAsNonRoot can only verify numeric ids), with a
# home for git's configuration and a workspace it owns.
RUN groupadd --gid 65532 backlog \
    && useradd --uid 65532 --gid 65532 --home-dir /home/backlog --create-home \
        --shell /usr/sbin/nologin backlog \
    && install -d -o 65532 -g 65532 /workspace
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/backlog
USER 65532:65532
WORKDIR /workspace
ENTRYPOINT ["backlogctl"]
CMD ["--help"]
