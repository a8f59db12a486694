"""Operator settings, from environment variables prefixed `BACKLOG_OPERATOR_` (validated at start).

| variable (after the prefix) | meaning | default |
|---|---|---|
| `NAMESPACES` | comma-separated namespaces to watch; empty = all | all |
| `WORKER_IMAGE` | image of the `clone` and `publish` steps | `backlog-operator:0.1.0` |
| `MAX_RUNNING_PER_REPOSITORY` | running goals per repository | 1 |
| `MAX_RUNNING` | running goals in the whole operator | 10 |
| `DEFAULT_BRANCH_PREFIX` | branch prefix when a goal sets none | `backlog/` |
| `JOB_TTL_SECONDS` | `ttlSecondsAfterFinished` of worker Jobs | 86400 |
| `REQUEUE_SECONDS` | how often queued and backing-off goals are looked at | 5 |
| `GOAL_URL_TEMPLATE` | link to a goal in pull requests (`{namespace}`, `{name}`) | none |
| `WORKER_SERVICE_ACCOUNT` | service account of worker Pods (token not mounted) | `default` |
| `LIVENESS_ENDPOINT` | kopf's health endpoint; empty = none | `http://0.0.0.0:8080/healthz` |
| `CACHE_DIR` | where Backlog syncs keep small per-repository git caches | a temporary folder |
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class OperatorSettings(BaseSettings):
    """What an operator deployment is configured with."""

    model_config = SettingsConfigDict(env_prefix="BACKLOG_OPERATOR_", frozen=True)

    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)
    worker_image: str = Field(default="backlog-operator:0.1.0", min_length=1)
    max_running_per_repository: int = Field(default=1, ge=1)
    max_running: int = Field(default=10, ge=1)
    default_branch_prefix: str = "backlog/"
    job_ttl_seconds: int = Field(default=86400, ge=0)
    requeue_seconds: float = Field(default=5.0, gt=0)
    goal_url_template: str | None = None
    worker_service_account: str = "default"
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    cache_dir: str = Field(
        default_factory=lambda: str(Path(tempfile.gettempdir()) / "backlog-operator"),
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
