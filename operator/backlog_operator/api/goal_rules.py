"""The Goal's defaults, bounds and checks that need no pydantic: one definition for the model
(`api.goal`) and for the worker steps' own reading of a goal (`worker.goal`).

A worker step is a short process, and pydantic costs one more to import than its git commands
take; so the steps check a goal with these same rules before they ever ask the model (see
`worker/goal.py`).
"""

from __future__ import annotations

from backlog_operator.api.admission import has_credentials, repository_path_problem
from backlog_operator.naming import url_has_credentials

DEFAULT_BACKLOG_PATH = ".backlog/backlog.yaml"
DEFAULT_BRANCH_PREFIX = "backlog/"
DEFAULT_PR_TITLE = "{taskId}: {title}"
DEFAULT_PR_BODY = "{description}"
DEFAULT_COMMIT_MESSAGE = "{taskId}: {title}"
DEFAULT_AUTHOR_NAME = "backlog-operator"
DEFAULT_AUTHOR_EMAIL = "backlog-operator@users.noreply.github.com"

# The task-id rule, one for every place a task id comes from (a Goal's spec.backlog.taskId here,
# a backlog file's `id` in backlog/selection.py). Task ids name branches
# (`<prefix><task-id>-<attempt>`), attempt ids, Job and Goal labels and a Backlog's Goals: a
# conservative character set keeps them valid everywhere, starting with a letter or digit.
TASK_ID_CHARACTERS = "A-Za-z0-9._-"
# The most a task id may have anywhere. It bounds branch names (a ref component stays far below
# git's 255 bytes even with the attempt suffix); label values and names made from an id are
# shortened with a hash by `naming.dns_label`, so they need no tighter limit. Tasks a Backlog
# selects from its file are held to a DNS label's 63 (see MAX_TASK_ID_LENGTH in selection.py).
TASK_ID_MAX_LENGTH = 128
TASK_ID_PATTERN = rf"^[A-Za-z0-9][{TASK_ID_CHARACTERS}]{{0,{TASK_ID_MAX_LENGTH - 1}}}$"

URL_MAX_LENGTH = 2048
# The pull request body and the commit message: GitHub's limit of a pull request body. The bound
# also keeps the CEL rule that reads them within the API server's cost budget.
TEMPLATE_MAX_LENGTH = 65536
PR_TITLE_MAX_LENGTH = 256
BRANCH_MAX_LENGTH = 255
BRANCH_PREFIX_MAX_LENGTH = 100
BRANCH_PREFIX_PATTERN = r"^[A-Za-z0-9._/-]*$"
FORGE_REPOSITORY_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
TIMEOUT_MAX_SECONDS = 7 * 24 * 3600
MAX_ATTEMPTS = 100

# A Secret's name (a DNS subdomain) and a key inside it.
SECRET_NAME_MAX_LENGTH = 253
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"  # noqa: S105 (a name's syntax)
SECRET_KEY_MAX_LENGTH = 253
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 (a key's syntax)
DEFAULT_SECRET_KEY = "token"  # noqa: S105 (the key's name, not a secret)

REPOSITORY_URL_CREDENTIALS = (
    "repository.url must not carry credentials; reference a Secret in "
    "repository.credentialsSecret instead"
)


def repository_url_has_credentials(url: str) -> bool:
    """Whether a clone URL carries a credential, by the CRD's rule or by the worker's own reading
    of a URL (which also knows git's `user@host:path` form)."""
    return has_credentials(url) or url_has_credentials(url)


def refuse_credentials(value: str | None, field: str, instead: str) -> str | None:
    """`value` when it carries no credential; else a ValueError (which never repeats it)."""
    if value is None or not has_credentials(value):
        return value
    raise ValueError(f"{field} must not carry credentials; {instead}")


def refuse_credentials_in_text(text: str, field: str) -> str:
    """`text` (a template) when it holds no URL with credentials; else a ValueError."""
    if has_credentials(text):
        raise ValueError(
            f"{field} must not contain a URL with credentials: the text ends up in a pull "
            "request or a commit"
        )
    return text


def refuse_outside_path(value: str, field: str) -> str:
    """`value` when it names a file inside the repository; else a ValueError."""
    problem = repository_path_problem(value)
    if problem is not None:
        raise ValueError(f"{field} {problem}")
    return value
