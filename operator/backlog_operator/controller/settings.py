"""Operator settings, from environment variables prefixed `BACKLOG_OPERATOR_` (validated at start).

| variable (after the prefix) | meaning | default |
|---|---|---|
| `NAMESPACES` | comma-separated namespaces to watch; empty = all | all |
| `WORKER_IMAGE` | image of the `clone` and `publish` steps | `backlog-operator:0.1.0` |
| `MAX_RUNNING_PER_REPOSITORY` | running goals per repository | 1 |
| `MAX_RUNNING` | running goals in the whole operator | 10 |
| `DEFAULT_BRANCH_PREFIX` | branch prefix when a goal sets none | `backlog/` |
| `JOB_TTL_SECONDS` | `ttlSecondsAfterFinished` of worker Jobs | 86400 |
| `REQUEUE_SECONDS` | how often the loop runs what is due (backoffs, retries, syncs) (3) | 5 |
| `GOAL_URL_TEMPLATE` | link to a goal in pull requests (`{namespace}`, `{name}`) | none |
| `WORKER_SERVICE_ACCOUNT` | service account of worker Pods (token not mounted) | `default` |
| `METRICS_PORT` | port of `/metrics`, `/healthz` and `/readyz`; 0 = none | 8080 |
| `METRICS_BIND_ADDRESS` | address that port listens on | `0.0.0.0` |
| `WEBHOOK_PORT` | port of the GitHub webhook receiver (9); 0 = none | 0 (the bundle: 9292) |
| `WEBHOOK_BIND_ADDRESS` | address that port listens on | `0.0.0.0` |
| `WEBHOOK_MAX_BODY_BYTES` | longest delivery read; a longer one is refused (413) | 1048576 |
| `LIVENESS_ENDPOINT` | kopf's own health endpoint (4); empty = none | none |
| `CACHE_DIR` | where Backlog syncs keep small per-repository git caches | a temporary folder |
| `WORKSPACE_SIZE_LIMIT` | `sizeLimit` of the workspace and private volumes (1) | `4Gi` |
| `TASK_RESOURCES` | JSON resources of the task step (2) | `DEFAULT_TASK_RESOURCES` |
| `API_CONCURRENCY` | requests to the API server in flight at most (threads and connections) | 16 |
| `API_QPS` | requests a second to the API server on average; 0 = no limit | 0 |
| `API_BURST` | requests at once above `API_QPS`; 0 = twice `API_QPS` | 0 |
| `LOG_FORMAT` | `text` or `json` (one object per line); `--log-format` overrides it | `text` |
| `PR_POLL_SECONDS` | how often a goal's open pull request is looked at (±25 % jitter) (5) | 300 |
| `PR_POLLS_PER_ROUND` | pull requests looked at, at most, per round of the loop (5) | 20 |
| `LEADER_ELECTION` | take part in leader election on a Lease (6) | `false` (bundle: `true`) |
| `LEADER_ELECTION_LEASE_NAME` | the Lease's name | `backlog-operator` |
| `LEADER_ELECTION_NAMESPACE` | the Lease's namespace; empty = the Pod's own (7) | the Pod's |
| `POD_NAME` | this replica's name in the Lease (`<name>_<random>`); empty = host name | host name |
| `LEASE_DURATION_SECONDS` | how long a standby waits after the leader's last renewal (8) | 12 |
| `RENEW_DEADLINE_SECONDS` | how long the leader keeps trying to renew before it stops | 8 |
| `RETRY_PERIOD_SECONDS` | how often the leader renews and a standby tries | 2 |
| `PR_CLOSED_POLL_SECONDS` | how often a closed pull request is looked at (11) | 0 |
| `MAX_HEALS` | heal Jobs per goal's pull request, at most (10) | 3 |

(1) A quantity; a goal's `spec.task.workspaceSizeLimit` overrides it.
(2) `{"requests": {...}, "limits": {...}}`, used when a goal sets no `spec.task.resources` (whose
resources replace these as a whole); `{}` = none.
(3) Also the precision of a goal's backoff; waiting goals are not polled (docs/operator.md,
"Scaling").
(4) `/healthz` on the metrics port replaces it; a URL such as `http://0.0.0.0:8081/healthz`
turns kopf's on too (on another port).
(5) Each look is a conditional request (ETag): one whose pull request has not changed costs no
rate limit. `PR_POLLS_PER_ROUND` every `REQUEUE_SECONDS` bounds the burst; keep it at least
(open pull requests * `REQUEUE_SECONDS` / `PR_POLL_SECONDS`) so that every one gets its turn.
(6) One replica leads and acts, the others wait (docs/operator.md, "High availability");
`backlogctl operator` run by hand leaves it off. (7) The service account's namespace file.
(8) An integer (the Lease's `leaseDurationSeconds`); lease > renew deadline > retry period.
(9) Backlogs with `spec.webhook` receive GitHub's deliveries at `status.webhookPath` on it
(docs/operator.md, "Webhooks").
(10) A heal merges the base into a pull request that conflicts only in the backlog file; one per
pair of head and base commits, and no more than this many per goal: a pull request that keeps
conflicting is left to a person (`HealLimitReached`).
(11) Reopened, it is followed again; 0 = 12 times `PR_POLL_SECONDS` (an hour by default).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from backlog_operator.adapters.kube import API_CONCURRENCY
from backlog_operator.api.quantity import ResourceRequirements, positive_quantity
from backlog_operator.api.webhook import DEFAULT_MAX_BODY_BYTES

ENV_PREFIX = "BACKLOG_OPERATOR_"

# The task step's resources when neither the goal nor the operator's setting says otherwise. A
# coding agent (a language runtime, an editor's language servers, a test suite) easily needs a few
# GiB of memory: it asks for 512Mi and may grow to 4Gi before being OOM-killed, which is retried.
# No CPU limit: a limit throttles the task for its whole run (slow builds, timeouts), while the
# request already gives it its fair share of a busy node.
DEFAULT_TASK_RESOURCES = ResourceRequirements(
    requests={"cpu": "250m", "memory": "512Mi"},
    limits={"memory": "4Gi"},
)


class OperatorSettings(BaseSettings):
    """What an operator deployment is configured with."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True)

    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)
    worker_image: str = Field(default="backlog-operator:0.1.0", min_length=1)
    max_running_per_repository: int = Field(default=1, ge=1)
    max_running: int = Field(default=10, ge=1)
    default_branch_prefix: str = "backlog/"
    job_ttl_seconds: int = Field(default=86400, ge=0)
    requeue_seconds: float = Field(default=5.0, gt=0)
    goal_url_template: str | None = None
    worker_service_account: str = "default"
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    # Every interface: the kubelet probes, and Prometheus scrapes, the Pod's IP.
    metrics_bind_address: str = Field(default="0.0.0.0", min_length=1)  # noqa: S104
    webhook_port: int = Field(default=0, ge=0, le=65535)
    # Every interface: GitHub's deliveries come through a Service (and an Ingress).
    webhook_bind_address: str = Field(default="0.0.0.0", min_length=1)  # noqa: S104
    webhook_max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    liveness_endpoint: str = ""
    cache_dir: str = Field(
        default_factory=lambda: str(Path(tempfile.gettempdir()) / "backlog-operator"),
    )
    workspace_size_limit: str = "4Gi"
    task_resources: Annotated[ResourceRequirements, NoDecode] = DEFAULT_TASK_RESOURCES
    api_concurrency: int = Field(default=API_CONCURRENCY, ge=1, le=512)
    api_qps: float = Field(default=0.0, ge=0)
    api_burst: int = Field(default=0, ge=0)
    # A goal's cycle's requests on kopf's event loop with aiohttp (less CPU in all, but one
    # thread: slower where it competes for CPUs with many threads), or through the client in
    # threads.
    api_event_loop: bool = True
    log_format: Literal["text", "json"] = "text"
    pr_poll_seconds: float = Field(default=300.0, gt=0)
    pr_polls_per_round: int = Field(default=20, ge=1)
    leader_election: bool = False
    leader_election_lease_name: str = Field(default="backlog-operator", min_length=1)
    leader_election_namespace: str = ""
    pod_name: str = ""
    lease_duration_seconds: int = Field(default=12, ge=1)
    renew_deadline_seconds: float = Field(default=8.0, gt=0)
    retry_period_seconds: float = Field(default=2.0, gt=0)
    pr_closed_poll_seconds: float = Field(default=0.0, ge=0)
    max_heals: int = Field(default=3, ge=0)

    @model_validator(mode="after")
    def _lease_outlasts_renewal(self) -> OperatorSettings:
        # client-go's rule: the leader gives up (renew deadline) before a standby may take over
        # (lease duration), and tries more than once before it gives up (retry period).
        if not (
            self.lease_duration_seconds > self.renew_deadline_seconds > self.retry_period_seconds
        ):
            raise ValueError(
                f"{ENV_PREFIX}LEASE_DURATION_SECONDS > RENEW_DEADLINE_SECONDS > "
                f"RETRY_PERIOD_SECONDS is needed, got {self.lease_duration_seconds}, "
                f"{self.renew_deadline_seconds}, {self.retry_period_seconds}"
            )
        return self

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("workspace_size_limit")
    @classmethod
    def _size_is_a_quantity(cls, value: str) -> str:
        return positive_quantity(value.strip(), f"{ENV_PREFIX}WORKSPACE_SIZE_LIMIT")

    @field_validator("task_resources", mode="before")
    @classmethod
    def _parse_task_resources(cls, value: object) -> object:
        variable = f"{ENV_PREFIX}TASK_RESOURCES"
        if isinstance(value, ResourceRequirements):
            return value
        if isinstance(value, str | bytes):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError(
                    f'{variable} is not JSON: write {{"requests": {{"cpu": "250m"}}, '
                    '"limits": {"memory": "4Gi"}}'
                ) from None
        if not isinstance(value, dict) or not set(value) <= {"requests", "limits"}:
            raise ValueError(f"{variable} must be a JSON object with only requests and limits")
        try:
            return ResourceRequirements.model_validate(value)
        except ValidationError as error:
            raise ValueError(f"{variable}: {_problems(error)}") from None


def _problems(error: ValidationError) -> str:
    """The problems of a nested model's error, without pydantic's "Value error," noise."""
    problems = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
