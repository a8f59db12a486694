"""The goal as the worker steps read it, checked without pydantic wherever that can be exact.

The Goal's definition is the pydantic model `api.goal.Goal` (the CRDs are generated from it).
A worker step, though, is a short process, and importing pydantic and building the Goal's models
would cost it more than its git commands take. So `goal_from_data` first reads the manifest
itself, field by field with the model's own bounds, patterns and checks (`api.goal_rules`,
`api.quantity_rules`), into a `WorkerGoal`: named tuples of what the steps use (a frozen
dataclass costs a step several times more to define).

Whatever this reader is not sure of goes to the model, imported then, which accepts it or says
why not in its own words: a key spelled the Python way (`base_branch`), a `status`, a
`creationTimestamp`, a value the model would convert (a number given as a string), any key or
value the reader does not know, and every value that breaks a rule. So it never accepts a goal
the model refuses, and a refusal is always the model's. The goals the operator writes into a
Job (`api.worker_contract.goal_to_environment`) and those people write for `backlogctl run` are
read here alone. `tests/unit/test_worker_goal.py` holds this reader to the model: the fields,
their bounds and defaults, the model's validators, and generated goals.
"""

# No `from __future__ import annotations` here: `typing.NamedTuple` would compile each of its
# fields' annotations from their text, a noticeable part of a worker step's start.

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from backlog_operator.api.admission import PATH_MAX_LENGTH, has_credentials, repository_path_problem
from backlog_operator.api.goal_rules import (
    BRANCH_MAX_LENGTH,
    BRANCH_PREFIX_MAX_LENGTH,
    BRANCH_PREFIX_PATTERN,
    DEFAULT_AUTHOR_EMAIL,
    DEFAULT_AUTHOR_NAME,
    DEFAULT_BACKLOG_PATH,
    DEFAULT_BRANCH_PREFIX,
    DEFAULT_COMMIT_MESSAGE,
    DEFAULT_PR_BODY,
    DEFAULT_PR_TITLE,
    ENV_NAME_PATTERN,
    FORGE_REPOSITORY_PATTERN,
    MAX_ATTEMPTS,
    PR_TITLE_MAX_LENGTH,
    SECRET_KEY_MAX_LENGTH,
    SECRET_KEY_PATTERN,
    SECRET_NAME_MAX_LENGTH,
    SECRET_NAME_PATTERN,
    TASK_ID_PATTERN,
    TEMPLATE_MAX_LENGTH,
    TIMEOUT_MAX_SECONDS,
    URL_MAX_LENGTH,
    repository_url_has_credentials,
)

if TYPE_CHECKING:
    from backlog_operator.api.goal import Goal

T = TypeVar("T")

API_VERSION = "backlog.dev/v1alpha1"
DEFAULT_TIMEOUT_SECONDS = 3600


class InvalidGoalError(ValueError):
    """The goal (or the worker's environment) is unusable: a permanent failure."""


# ------------------------------------------------------------------------------- the view


class RepositoryRef(NamedTuple):
    """`spec.repository`: what the steps clone and push to."""

    url: str
    base_branch: str = "main"
    insecure: bool = False


class BacklogRef(NamedTuple):
    """`spec.backlog`: the backlog file, and the task this goal completes."""

    path: str = DEFAULT_BACKLOG_PATH
    task_id: str | None = None


class EnvVar(NamedTuple):
    """One of `spec.task.env`."""

    name: str
    value: str = ""


class TaskCommand(NamedTuple):
    """`spec.task`, what `backlogctl run` uses of it (the image is the Job's matter)."""

    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS


class PullRequestSpec(NamedTuple):
    """`spec.pullRequest`."""

    provider: str = "github"
    api_base_url: str | None = None
    repository: str | None = None
    title: str = DEFAULT_PR_TITLE
    body: str = DEFAULT_PR_BODY
    labels: tuple[str, ...] = ()
    draft: bool = False
    branch_prefix: str | None = None

    def branch_prefix_or_default(self) -> str:
        """The prefix in force when the goal sets none."""
        return DEFAULT_BRANCH_PREFIX if self.branch_prefix is None else self.branch_prefix


class CommitSpec(NamedTuple):
    """`spec.commit`."""

    author_name: str = DEFAULT_AUTHOR_NAME
    author_email: str = DEFAULT_AUTHOR_EMAIL
    message: str = DEFAULT_COMMIT_MESSAGE


class WorkerSpec(NamedTuple):
    """What the steps use of `spec` (retry, priority and suspend are the operator's)."""

    repository: RepositoryRef
    task: TaskCommand
    backlog: BacklogRef = BacklogRef()
    pull_request: PullRequestSpec = PullRequestSpec()
    commit: CommitSpec = CommitSpec()


class GoalName(NamedTuple):
    """What the steps use of `metadata`."""

    name: str = "local"
    namespace: str | None = None


class WorkerGoal(NamedTuple):
    """A Goal as the worker steps see it, validated (by `goal_from_data`)."""

    spec: WorkerSpec
    metadata: GoalName = GoalName()

    def label(self) -> str:
        """`namespace/name`, how people refer to the goal."""
        name = self.metadata
        return f"{name.namespace}/{name.name}" if name.namespace else name.name

    @property
    def work_name(self) -> str:
        """What the work is named after: the task id, or the goal's name for a free-form goal
        (attempt ids, branches, the Job's task label, `status.taskId`)."""
        return self.spec.backlog.task_id or self.metadata.name

    @classmethod
    def from_model(cls, goal: "Goal") -> "WorkerGoal":
        """The view of a Goal the model validated."""
        spec = goal.spec
        task, pull_request, commit = spec.task, spec.pull_request, spec.commit
        return cls(
            metadata=GoalName(name=goal.metadata.name, namespace=goal.metadata.namespace),
            spec=WorkerSpec(
                repository=RepositoryRef(
                    url=spec.repository.url,
                    base_branch=spec.repository.base_branch,
                    insecure=spec.repository.insecure,
                ),
                backlog=BacklogRef(path=spec.backlog.path, task_id=spec.backlog.task_id),
                task=TaskCommand(
                    command=tuple(task.command),
                    args=tuple(task.args),
                    env=tuple(EnvVar(name=item.name, value=item.value) for item in task.env),
                    timeout_seconds=task.timeout_seconds,
                ),
                pull_request=PullRequestSpec(
                    provider=pull_request.provider,
                    api_base_url=pull_request.api_base_url,
                    repository=pull_request.repository,
                    title=pull_request.title,
                    body=pull_request.body,
                    labels=tuple(pull_request.labels),
                    draft=pull_request.draft,
                    branch_prefix=pull_request.branch_prefix,
                ),
                commit=CommitSpec(
                    author_name=commit.author_name,
                    author_email=commit.author_email,
                    message=commit.message,
                ),
            ),
        )


def goal_from_data(data: Mapping[str, Any], *, source: str) -> WorkerGoal:
    """The goal in `data` (a manifest as read), validated as the model validates it;
    InvalidGoalError names the source and the problem (never repeating a value)."""
    read = _read_or_none(data)
    if read is not None:
        return read
    from backlog_operator.api.common import describe_validation_error
    from backlog_operator.api.goal import Goal

    try:
        goal = Goal.model_validate(dict(data))
    except ValueError as error:
        raise InvalidGoalError(
            f"{source}: invalid Goal: {describe_validation_error(error)}"
        ) from None
    return WorkerGoal.from_model(goal)


def _read_or_none(data: Mapping[str, Any]) -> WorkerGoal | None:
    try:
        return read_goal(data)
    except Exception:  # Unsure, or a shape the reader never met: the model decides
        return None


# ----------------------------------------------------------------------------- the reader


class Unsure(Exception):  # noqa: N818 (not an error: the model decides)
    """The reader cannot tell that the model accepts this goal as it reads it: ask the model."""


def read_goal(data: Mapping[str, Any]) -> WorkerGoal:
    """The goal, when the reader is sure the model accepts `data` and reads it so; else Unsure.

    `Goal` ignores unknown keys (a manifest's `metadata.labels`, say), but reads a key spelled
    by its Python name (`api_version`) as the field: such a key is left to the model.
    """
    goal = _ignoring(data, _GOAL_KEYS, python_names={"api_version"})
    if goal.get("apiVersion", API_VERSION) != API_VERSION or goal.get("kind", "Goal") != "Goal":
        raise Unsure
    if goal.get("status") is not None:
        raise Unsure
    metadata = _read_metadata(goal["metadata"]) if "metadata" in goal else GoalName()
    return WorkerGoal(metadata=metadata, spec=_read_spec(_field(goal, "spec", _as_mapping)))


_GOAL_KEYS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_METADATA_KEYS = frozenset(
    {"name", "namespace", "uid", "generation", "creationTimestamp", "annotations"}
)
_SPEC_KEYS = frozenset(
    {
        "repository",
        "backlog",
        "task",
        "pullRequest",
        "commit",
        "retry",
        "priority",
        "suspend",
        "approval",
    }
)
# The worker has no use for spec.approval (the operator decides what a step does): the reader
# only checks it, and leaves anything but plain values in range to the model.
_APPROVAL_KEYS = frozenset({"required", "expiresAfterSeconds"})
_REPOSITORY_KEYS = frozenset({"url", "baseBranch", "credentialsSecret", "insecure"})
_SECRET_KEYS = frozenset({"name", "key"})
_BACKLOG_KEYS = frozenset({"path", "taskId"})
_TASK_KEYS = frozenset(
    {"image", "command", "args", "env", "resources", "workspaceSizeLimit", "timeoutSeconds"}
)
_ENV_KEYS = frozenset({"name", "value"})
_RESOURCES_KEYS = frozenset({"requests", "limits"})
_PULL_REQUEST_KEYS = frozenset(
    {"provider", "apiBaseUrl", "repository", "title", "body", "labels", "draft", "branchPrefix"}
)
_COMMIT_KEYS = frozenset({"authorName", "authorEmail", "message"})
_RETRY_KEYS = frozenset(
    {"maxAttempts", "backoffSeconds", "maxBackoffSeconds", "permanentExitCodes"}
)

#: The keys the reader knows of each of the Goal's models, by the model's name (the tests hold
#: them to the models' fields).
KNOWN_KEYS: Mapping[str, frozenset[str]] = {
    "Goal": _GOAL_KEYS,
    "GoalMetadata": _METADATA_KEYS,
    "GoalSpec": _SPEC_KEYS,
    "RepositorySpec": _REPOSITORY_KEYS,
    "SecretKeyReference": _SECRET_KEYS,
    "BacklogRef": _BACKLOG_KEYS,
    "TaskSpec": _TASK_KEYS,
    "EnvVar": _ENV_KEYS,
    "ResourceRequirements": _RESOURCES_KEYS,
    "PullRequestSpec": _PULL_REQUEST_KEYS,
    "CommitSpec": _COMMIT_KEYS,
    "RetrySpec": _RETRY_KEYS,
    "ApprovalSpec": _APPROVAL_KEYS,
}

# fullmatch, never search: pydantic's regular expressions read `$` as the end of the text, where
# Python's `re` also lets it match before a final line break.
_TASK_ID = re.compile(TASK_ID_PATTERN)
_ENV_NAME = re.compile(ENV_NAME_PATTERN)
_FORGE_REPOSITORY = re.compile(FORGE_REPOSITORY_PATTERN)
_BRANCH_PREFIX = re.compile(BRANCH_PREFIX_PATTERN)
_SECRET_NAME = re.compile(SECRET_NAME_PATTERN)
_SECRET_KEY = re.compile(SECRET_KEY_PATTERN)


def _read_metadata(value: object) -> GoalName:
    metadata = _ignoring(value, _METADATA_KEYS, python_names={"creation_timestamp"})
    if metadata.get("creationTimestamp") is not None:
        raise Unsure  # the model's reading of times is its own
    _field(metadata, "uid", _optional(_text), None)
    _field(metadata, "generation", _optional(_integer), None)
    no_annotations: Mapping[str, Any] = {}
    annotations = _field(metadata, "annotations", _as_mapping, no_annotations)
    if not all(type(key) is str and type(text) is str for key, text in annotations.items()):
        raise Unsure
    return GoalName(
        name=_field(metadata, "name", _text, "local"),
        namespace=_field(metadata, "namespace", _optional(_text), None),
    )


def _read_spec(value: object) -> WorkerSpec:
    spec = _closed(value, _SPEC_KEYS)
    _field(spec, "priority", _integer, 0)
    _field(spec, "suspend", _boolean, False)
    if "retry" in spec:
        _check_retry(spec["retry"])
    if spec.get("approval") is not None:
        _check_approval(spec["approval"])
    return WorkerSpec(
        repository=_read_repository(_field(spec, "repository", _as_mapping)),
        backlog=_read_backlog(spec["backlog"]) if "backlog" in spec else BacklogRef(),
        task=_read_task(_field(spec, "task", _as_mapping)),
        pull_request=(
            _read_pull_request(spec["pullRequest"]) if "pullRequest" in spec else PullRequestSpec()
        ),
        commit=_read_commit(spec["commit"]) if "commit" in spec else CommitSpec(),
    )


def _check_approval(value: object) -> None:
    approval = _closed(value, _APPROVAL_KEYS)
    _field(approval, "required", _boolean, False)
    seconds = _field(approval, "expiresAfterSeconds", _integer, 604800)
    if not 60 <= seconds <= 30 * 24 * 3600:
        raise Unsure


def _read_repository(value: object) -> RepositoryRef:
    repository = _closed(value, _REPOSITORY_KEYS)
    url = _field(repository, "url", _bounded(1, URL_MAX_LENGTH))
    if repository_url_has_credentials(url):
        raise Unsure
    secret = repository.get("credentialsSecret")
    if secret is not None:
        secret = _closed(secret, _SECRET_KEYS)
        _field(secret, "name", _bounded(1, SECRET_NAME_MAX_LENGTH, _SECRET_NAME))
        _field(secret, "key", _bounded(1, SECRET_KEY_MAX_LENGTH, _SECRET_KEY), "token")
    return RepositoryRef(
        url=url,
        base_branch=_field(repository, "baseBranch", _bounded(1, BRANCH_MAX_LENGTH), "main"),
        insecure=_field(repository, "insecure", _boolean, False),
    )


def _read_backlog(value: object) -> BacklogRef:
    backlog = _closed(value, _BACKLOG_KEYS)
    path = _field(backlog, "path", _bounded(1, PATH_MAX_LENGTH), DEFAULT_BACKLOG_PATH)
    if repository_path_problem(path) is not None:
        raise Unsure
    task_id = _field(backlog, "taskId", _optional(_bounded(0, None, _TASK_ID)), None)
    return BacklogRef(path=path, task_id=task_id)


def _read_task(value: object) -> TaskCommand:
    task = _closed(value, _TASK_KEYS)
    _field(task, "image", _optional(_bounded(1, None)), None)
    command = _field(task, "command", _strings)
    if not command:
        raise Unsure
    if task.get("resources") is not None:
        _check_resources(task["resources"])
    size = _field(task, "workspaceSizeLimit", _optional(_text), None)
    if size is not None:
        _check_quantity(size)
    return TaskCommand(
        command=tuple(command),
        args=tuple(_field(task, "args", _strings, [])),
        env=tuple(_read_env(item) for item in _items(task, "env")),
        timeout_seconds=_field(
            task, "timeoutSeconds", _ranged(1, TIMEOUT_MAX_SECONDS), DEFAULT_TIMEOUT_SECONDS
        ),
    )


def _read_env(value: object) -> EnvVar:
    item = _closed(value, _ENV_KEYS)
    return EnvVar(
        name=_field(item, "name", _bounded(0, None, _ENV_NAME)),
        value=_field(item, "value", _text, ""),
    )


def _check_resources(value: object) -> None:
    resources = _closed(value, _RESOURCES_KEYS)
    from backlog_operator.api.quantity_rules import MAX_RESOURCES, check_resources

    amounts: dict[str, dict[str, int | str]] = {}
    for part in ("requests", "limits"):
        given = resources.get(part)
        if given is None:
            continue
        given = _as_mapping(given)
        if len(given) > MAX_RESOURCES:
            raise Unsure
        for name, amount in given.items():
            if type(name) is not str or type(amount) not in (int, str):
                raise Unsure
        amounts[part] = dict(given)
    try:
        check_resources(amounts.get("requests", {}), amounts.get("limits", {}))
    except ValueError:
        raise Unsure from None


def _check_quantity(size: str) -> None:
    from backlog_operator.api.quantity_rules import positive_quantity

    try:
        positive_quantity(size, "the size limit")
    except ValueError:
        raise Unsure from None


def _read_pull_request(value: object) -> PullRequestSpec:
    spec = _closed(value, _PULL_REQUEST_KEYS)
    provider = _field(spec, "provider", _text, "github")
    if provider not in ("github", "none"):
        raise Unsure
    api_base_url = _field(spec, "apiBaseUrl", _optional(_bounded(0, URL_MAX_LENGTH)), None)
    title = _field(spec, "title", _bounded(0, PR_TITLE_MAX_LENGTH), DEFAULT_PR_TITLE)
    body = _field(spec, "body", _bounded(0, TEMPLATE_MAX_LENGTH), DEFAULT_PR_BODY)
    if any(text is not None and has_credentials(text) for text in (api_base_url, title, body)):
        raise Unsure
    return PullRequestSpec(
        provider=provider,
        api_base_url=api_base_url,
        repository=_field(
            spec, "repository", _optional(_bounded(0, None, _FORGE_REPOSITORY)), None
        ),
        title=title,
        body=body,
        labels=tuple(_field(spec, "labels", _strings, [])),
        draft=_field(spec, "draft", _boolean, False),
        branch_prefix=_field(
            spec,
            "branchPrefix",
            _optional(_bounded(0, BRANCH_PREFIX_MAX_LENGTH, _BRANCH_PREFIX)),
            None,
        ),
    )


def _read_commit(value: object) -> CommitSpec:
    commit = _closed(value, _COMMIT_KEYS)
    message = _field(commit, "message", _bounded(0, TEMPLATE_MAX_LENGTH), DEFAULT_COMMIT_MESSAGE)
    if has_credentials(message):
        raise Unsure
    return CommitSpec(
        author_name=_field(commit, "authorName", _bounded(1, None), DEFAULT_AUTHOR_NAME),
        author_email=_field(commit, "authorEmail", _bounded(3, None), DEFAULT_AUTHOR_EMAIL),
        message=message,
    )


def _check_retry(value: object) -> None:
    retry = _closed(value, _RETRY_KEYS)
    _field(retry, "maxAttempts", _ranged(1, MAX_ATTEMPTS), 3)
    _field(retry, "backoffSeconds", _ranged(0, None), 30)
    _field(retry, "maxBackoffSeconds", _ranged(0, None), 600)
    for code in _items(retry, "permanentExitCodes"):
        _integer(code)


# --------------------------------------------------------------------- values, exactly typed

_REQUIRED: Any = object()


def _field(
    data: Mapping[str, Any], key: str, read: Callable[[Any], T], default: T = _REQUIRED
) -> T:
    """`read(data[key])`, or `default` where the key is absent (Unsure for a required one)."""
    if key not in data:
        if default is _REQUIRED:
            raise Unsure
        return default
    return read(data[key])


def _items(data: Mapping[str, Any], key: str) -> list[Any]:
    """The list at `key`, empty where the key is absent."""
    return _as_list(data[key]) if key in data else []


def _as_mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise Unsure
    return value


def _as_list(value: object) -> list[Any]:
    if type(value) is not list:
        raise Unsure
    return value


def _closed(value: object, keys: frozenset[str]) -> Mapping[str, Any]:
    """A mapping of a model that refuses unknown keys: any other key is the model's matter."""
    mapping = _as_mapping(value)
    if not all(type(key) is str and key in keys for key in mapping):
        raise Unsure
    return mapping


def _ignoring(value: object, keys: frozenset[str], *, python_names: set[str]) -> Mapping[str, Any]:
    """A mapping of a model that ignores unknown keys, but reads its fields' Python names."""
    mapping = _as_mapping(value)
    if not all(type(key) is str and key not in python_names for key in mapping):
        raise Unsure
    return {key: item for key, item in mapping.items() if key in keys}


def _text(value: object) -> str:
    if type(value) is not str:
        raise Unsure
    return value


def _bounded(
    shortest: int, longest: int | None, pattern: re.Pattern[str] | None = None
) -> Callable[[object], str]:
    def read(value: object) -> str:
        text = _text(value)
        if len(text) < shortest or (longest is not None and len(text) > longest):
            raise Unsure
        if pattern is not None and pattern.fullmatch(text) is None:
            raise Unsure
        return text

    return read


def _strings(value: object) -> list[str]:
    items = _as_list(value)
    if not all(type(item) is str for item in items):
        raise Unsure
    return items


def _integer(value: object) -> int:
    if type(value) is not int:  # not a bool, a float or a numeric string: the model decides
        raise Unsure
    return value


def _ranged(least: int, most: int | None) -> Callable[[object], int]:
    def read(value: object) -> int:
        number = _integer(value)
        if number < least or (most is not None and number > most):
            raise Unsure
        return number

    return read


def _boolean(value: object) -> bool:
    if type(value) is not bool:
        raise Unsure
    return value


def _optional(read: Callable[[object], T]) -> Callable[[object], T | None]:
    def optional(value: object) -> T | None:
        return None if value is None else read(value)

    return optional
