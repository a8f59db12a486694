"""What the API server refuses at admission, defined once for the CRDs and for the models.

Each check here exists twice on purpose, from one definition: as a CEL rule in the generated
CRDs (`x-kubernetes-validations`, so `kubectl apply` of something that can never run is refused
at once) and as a pydantic validator in the models (the operator's own check, which also holds on
clusters that drop CEL rules, and for `backlogctl run`). Both are made from the regular
expressions below, so the two cannot drift apart. The expressions keep to what RE2 (CEL's
`matches()` on the API server) and Python's `re` read alike: no look-around, no backreferences,
scoped flags only (`(?i:...)`).

The CRDs need Kubernetes 1.29 or later: the resource rules in `quantity.py` use CEL's quantity
library, which the API server accepts in CRDs from 1.29 on (older servers refuse the CRD).

Cost: the API server estimates each rule's worst case when a CRD is written and refuses one over
10,000,000 per rule. A rule that iterates needs `maxProperties` (or `maxItems`) on what it
iterates, and a string it matches needs `maxLength`: the bounds sit next to each rule, and
`tests/unit/test_admission.py` recomputes the estimate.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

# --------------------------------------------------------------------------------------------
# Rules as the CRD carries them.


class Rule(NamedTuple):
    """One `x-kubernetes-validations` entry: a CEL expression that must hold, and what to tell
    a person when it does not (the API server prefixes the field's path)."""

    rule: str
    message: str

    def to_schema(self) -> dict[str, str]:
        """The entry as the CRD spells it."""
        return {"rule": self.rule, "message": self.message}


def validations(*rules: Rule) -> dict[str, Any]:
    """A `json_schema_extra` that puts `rules` on a schema node."""
    return {"x-kubernetes-validations": [rule.to_schema() for rule in rules]}


def cel_string(text: str) -> str:
    """`text` as a CEL raw string literal (backslashes kept as written, as a regex wants)."""
    if "'" in text or "\n" in text:
        raise ValueError("a CEL raw string here holds no quote and no newline")
    return f"r'{text}'"


# --------------------------------------------------------------------------------------------
# Credentials in URLs: in repository.url, pullRequest.apiBaseUrl, and in the text templates.

# A character of a URL's userinfo: the authority ends at `/`, `?` or `#`, a URL in text at space.
_USER_CHAR = r"[^\s/?#@:]"
# `scheme://user:password@` or `scheme://:token@`: any password, in any scheme.
_PASSWORD = rf"://{_USER_CHAR}*:[^\s/?#@]*@"
# `http(s)://token@`: a user name alone is a token over HTTPS, except `git` (which forges use as
# a plain user name). `ssh://git@host` and `git@host:path` carry no credential.
_NOT_GIT = "|".join(
    (
        rf"{_USER_CHAR}{{1,2}}",  # shorter than `git`
        rf"{_USER_CHAR}{{4,}}",  # longer
        rf"[^\s/?#@:g]{_USER_CHAR}{{2}}",  # three characters, one of them not `git`'s
        rf"{_USER_CHAR}[^\s/?#@:i]{_USER_CHAR}",
        rf"{_USER_CHAR}{{2}}[^\s/?#@:t]",
    )
)
_HTTP_USER = rf"(?i:https?)://({_NOT_GIT})@"
# `?access_token=...` and its kin, with a value.
_TOKEN_NAMES = "access_token|token|private_token|password|api_key|apikey|client_secret"  # noqa: S105
_TOKEN_QUERY = rf"[?&](?i:{_TOKEN_NAMES})=[^\s&#]"

CREDENTIALS_PATTERN = f"{_PASSWORD}|{_HTTP_USER}|{_TOKEN_QUERY}"
_CREDENTIALS = re.compile(CREDENTIALS_PATTERN)

CREDENTIALS_HINT = (
    "user:password@ or a token as the user name in a URL, or a token= (access_token=, "
    "private_token=, password=, ...) query parameter"
)


def has_credentials(text: str) -> bool:
    """True when `text` (a URL, or a template with URLs in it) carries a credential."""
    return _CREDENTIALS.search(text) is not None


def no_credentials_in_url(field: str, instead: str) -> Rule:
    """The CEL rule refusing credentials in the URL `field`."""
    return Rule(
        rule=f"!self.matches({cel_string(CREDENTIALS_PATTERN)})",
        message=f"{field} must not carry credentials ({CREDENTIALS_HINT}); {instead}",
    )


def no_credentials_in_template(field: str) -> Rule:
    """The CEL rule refusing a URL with credentials in the text template `field`."""
    return Rule(
        rule=f"!self.matches({cel_string(CREDENTIALS_PATTERN)})",
        message=(
            f"{field} must not contain a URL with credentials ({CREDENTIALS_HINT}): the text "
            "ends up in a pull request or a commit"
        ),
    )


# --------------------------------------------------------------------------------------------
# A path inside the repository (the backlog file).

# Absolute in any of the ways the worker would refuse: `/x`, `\x`, `~/x`, `C:...`.
PATH_NOT_RELATIVE_PATTERN = r"^([/\\~]|[A-Za-z]:)"
# A `..` segment, with either separator.
PATH_CLIMBS_PATTERN = r"(^|[/\\])\.\.([/\\]|$)"
_PATH_NOT_RELATIVE = re.compile(PATH_NOT_RELATIVE_PATTERN)
_PATH_CLIMBS = re.compile(PATH_CLIMBS_PATTERN)
PATH_MAX_LENGTH = 1024


def repository_path_problem(path: str) -> str | None:
    """Why `path` cannot name a file inside the repository, or None when it can."""
    if _PATH_NOT_RELATIVE.search(path):
        return "must be relative to the repository (no leading /, \\, ~ or drive letter)"
    if _PATH_CLIMBS.search(path):
        return "must not contain a `..` segment"
    return None


def repository_path_rules(field: str) -> list[Rule]:
    """The CEL rules for a path inside the repository, in the order of the model's checks."""
    return [
        Rule(
            rule=f"!self.matches({cel_string(PATH_NOT_RELATIVE_PATTERN)})",
            message=(
                f"{field} must be relative to the repository: no leading /, \\, ~ or drive letter"
            ),
        ),
        Rule(
            rule=f"!self.matches({cel_string(PATH_CLIMBS_PATTERN)})",
            message=f"{field} must not contain a `..` segment",
        ),
    ]


# --------------------------------------------------------------------------------------------
# Label and annotation keys (Kubernetes' qualified names); label values are `naming`'s.

DNS_SUBDOMAIN_PATTERN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
# A name part: 1 to 63 characters, alphanumeric at both ends.
NAME_PART_PATTERN = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
# `[prefix/]name`; the prefix's 253-character bound is QUALIFIED_PREFIX_TOO_LONG_PATTERN's.
QUALIFIED_NAME_PATTERN = rf"^({DNS_SUBDOMAIN_PATTERN}/)?{NAME_PART_PATTERN}$"
QUALIFIED_PREFIX_TOO_LONG_PATTERN = r"^[^/]{254,}/"
QUALIFIED_NAME_MAX_LENGTH = 253 + 1 + 63
# At most this many labels (and annotations) in a goal template: a bound CEL's cost needs.
MAX_TEMPLATE_METADATA = 64

_QUALIFIED_NAME = re.compile(QUALIFIED_NAME_PATTERN)
_QUALIFIED_PREFIX_TOO_LONG = re.compile(QUALIFIED_PREFIX_TOO_LONG_PATTERN)


def is_qualified_name(key: str) -> bool:
    """True when `key` is a valid label or annotation key (`[prefix/]name`)."""
    # The length first: it bounds the regular expression's work.
    return (
        len(key) <= QUALIFIED_NAME_MAX_LENGTH
        and _QUALIFIED_NAME.search(key) is not None
        and _QUALIFIED_PREFIX_TOO_LONG.search(key) is None
    )


def qualified_keys_rule(field: str) -> Rule:
    """The CEL rule holding every key of the map `field` to Kubernetes' key syntax."""
    return Rule(
        rule=(
            f"self.all(k, size(k) <= {QUALIFIED_NAME_MAX_LENGTH}"
            f" && k.matches({cel_string(QUALIFIED_NAME_PATTERN)})"
            f" && !k.matches({cel_string(QUALIFIED_PREFIX_TOO_LONG_PATTERN)}))"
        ),
        message=(
            f"every key of {field} must be a Kubernetes key: an optional DNS subdomain prefix "
            "(at most 253 characters) and `/`, then a name of 1 to 63 letters, digits, `-`, `_` "
            "or `.` that starts and ends with a letter or digit"
        ),
    )
