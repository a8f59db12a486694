"""GitHub's own description of its REST API (npm `@octokit/openapi`), as a judge of responses.

    description = github_description()  # None when the package is not installed
    problems = description.violations("GET", "/repos/o/r/pulls/1", 200, body)

`violations` names what GitHub would never send: a path no operation of the description
matches (unless answered 404 or 401, as GitHub answers any path), a status the operation does
not document, or a body its documented schema refuses. The GitHub stand-in holds every answer
it serves to it (see `tests/support/github_standin.py`).

The description is OpenAPI 3.0, whose schema objects are not quite JSON Schema. They are
converted once per test session, the way `openapi-schema-validator` reads them: `nullable:
true` becomes `"type": [t, "null"]` (and adds null to an `enum`; a schema with no `type` is
wrapped in `anyOf` with null), every other keyword is kept as given (`additionalProperties`
included: GitHub leaves most objects open), and the result is checked by jsonschema's Draft 4
validator, the draft OpenAPI 3.0 builds on. Formats are checked where a response's shape shows
in them: `date-time` (RFC 3339) and `uri` (absolute). `$ref`s point into the converted document.

Statuses GitHub may answer to any operation, though its description lists them only where an
operation is special, are accepted everywhere and held to GitHub's error shape (`basic-error`):
400 (a request body that is not JSON), 401 (missing or bad credentials), 403 and 429 (rate
limits), 404 (a repository the token cannot see is "Not Found", never 403), 500, 502, 503
(GitHub's front end); and 304 to any GET (every GET answers conditional requests).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT4

from tests.support.npm_fixtures import NODE_MODULES

__all__ = [
    "GENERIC_STATUSES",
    "KNOWN_INACCURACIES",
    "PACKAGE",
    "Description",
    "Operation",
    "convert_schema",
    "github_description",
]

PACKAGE = "@octokit/openapi"
DESCRIPTION_FILE = "generated/api.github.com.json"
# Answered by GitHub to any operation (see the module's docstring), with its error shape.
GENERIC_STATUSES = frozenset({400, 401, 403, 404, 429, 500, 502, 503})
# Answered to any path, one GitHub serves or not: bad credentials, and Not Found.
_ANY_PATH = frozenset({401, 404})
_URI = "urn:github:rest-api"
# Values GitHub sends as null though its description says otherwise, as reported on
# github/rest-api-description; null is allowed there (see `_correct_known_inaccuracies`).
KNOWN_INACCURACIES = (
    # A pull request from a fork that was deleted.
    ("pull-request", ("properties", "head", "properties", "repo"), "#424"),
    ("pull-request-simple", ("properties", "head", "properties", "repo"), "#1811"),
    # A label without a description, in a listing of pull requests.
    (
        "pull-request-simple",
        ("properties", "labels", "items", "properties", "description"),
        "#1812",
    ),
)
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Keywords whose value is one schema, a list of schemas, or a map of name -> schema.
_ONE = ("items", "not", "additionalProperties")
_MANY = ("allOf", "anyOf", "oneOf")
_MAP = ("properties",)
# More problems than this in one answer are summed up: the first few tell what is wrong.
_MAX_PROBLEMS = 5


def convert_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema object as JSON Schema (Draft 4): `nullable` made a type."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return {"$ref": schema["$ref"]}  # siblings of a $ref are ignored in OpenAPI 3.0
    out = dict(schema)
    for key in _ONE:
        if isinstance(out.get(key), dict):
            out[key] = convert_schema(out[key])
    for key in _MANY:
        if isinstance(out.get(key), list):
            out[key] = [convert_schema(item) for item in out[key]]
    for key in _MAP:
        if isinstance(out.get(key), dict):
            out[key] = {name: convert_schema(item) for name, item in out[key].items()}
    if not out.pop("nullable", False):
        return out
    if "type" not in out:
        return {"anyOf": [{"type": "null"}, out]}
    types = out["type"] if isinstance(out["type"], list) else [out["type"]]
    out["type"] = [*types, "null"] if "null" not in types else types
    if isinstance(out.get("enum"), list) and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


@dataclass(frozen=True)
class Operation:
    """One operation of the description: method (upper case), path template, and the JSON
    pointer (into the converted document) of each documented status's response body schema,
    None for a status documented with no body."""

    method: str
    template: str
    responses: dict[int, str | None]


class Description:
    """GitHub's REST API description, converted for validating responses."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.version = str(document.get("info", {}).get("version", ""))
        self._document = _convert_document(document)
        self._registry: Registry[Any] = Registry().with_resource(
            _URI, DRAFT4.create_resource(self._document)
        )
        self._operations = _operations(self._document)
        self._templates = _templates(self._document["paths"])
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._validator_class = _remembering_validator()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> Description:
        """Read and convert the description at `path` (takes about a second)."""
        with path.open(encoding="utf-8") as stream:
            return cls(json.load(stream))

    def operation(self, method: str, template: str) -> Operation | None:
        """The operation `method template`, e.g. `GET /repos/{owner}/{repo}`, None if none."""
        return self._operations.get((method.upper(), template))

    def template(self, path: str) -> str | None:
        """The path template a concrete path (no query) matches, literal segments first:
        `/repos/o/r/pulls/comments` is that template, not `/repos/{owner}/{repo}/pulls/{n}`."""
        return _match(self._templates, path.rstrip("/") or "/")

    def violations(
        self, method: str, path: str, status: int, body: Any, *, injected: bool = False
    ) -> list[str]:
        """What GitHub would never send of answer `status` with `body` (parsed JSON; a str or
        bytes for a body that is not JSON; None for none) to `method path`: empty when fine.

        `injected`: a failure a test chose on purpose, such as GitHub or a proxy in front of it
        sends outside the description (any status, an HTML page): only a JSON body for a status
        with a known shape is checked.
        """
        template = self.template(path)
        operation = None if template is None else self.operation(method, template)
        if operation is None:
            if status in _ANY_PATH or injected:
                return []  # GitHub checks credentials first, then answers 404
            return [f"{method} {path}: GitHub's description has no such operation"]
        where = f"{operation.method} {operation.template} answered {status}"
        if status == 304 and operation.method == "GET":
            return [] if body in (None, b"", "") else [f"{where}: a 304 has no body"]
        if status in operation.responses:
            pointer = operation.responses[status]
        elif status in GENERIC_STATUSES:
            pointer = "#/components/schemas/basic-error"
        elif injected:
            return []
        else:
            documented = ", ".join(str(s) for s in sorted(operation.responses))
            return [f"{where}: the description documents only {documented}"]
        if injected and (pointer is None or isinstance(body, (str, bytes))):
            return []
        if pointer is None:
            return [] if body in (None, b"", "") else [f"{where}: documented with no body"]
        return [f"{where}: {problem}" for problem in self.schema_problems(pointer, body)]

    def schema_problems(self, pointer: str, body: Any) -> list[str]:
        """How `body` breaks the schema at `pointer` (`#/components/schemas/pull-request`)."""
        if isinstance(body, (str, bytes)) or body is None:
            return ["the body is not JSON"]
        validator = self._validator(pointer)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        problems = [_describe(error) for error in errors[:_MAX_PROBLEMS]]
        if len(errors) > _MAX_PROBLEMS:
            problems.append(f"and {len(errors) - _MAX_PROBLEMS} more problems")
        return problems

    def _validator(self, pointer: str) -> jsonschema.protocols.Validator:
        with self._lock:
            if pointer not in self._validators:
                self._validators[pointer] = self._validator_class(
                    {"$ref": f"{_URI}{pointer}"},
                    registry=self._registry,
                    format_checker=_FORMATS,
                )
            return self._validators[pointer]


@functools.cache
def github_description() -> Description | None:
    """The installed description, read once per test session; None when not installed (no
    npm on the machine: `make fixtures` installs it)."""
    path = NODE_MODULES / PACKAGE / DESCRIPTION_FILE
    return Description.load(path) if path.is_file() else None


def _convert_document(document: dict[str, Any]) -> dict[str, Any]:
    """The parts of the description that responses are checked against, converted."""
    components = document.get("components", {})
    converted = {
        "components": {
            "schemas": {
                name: convert_schema(schema)
                for name, schema in components.get("schemas", {}).items()
            },
            "responses": {
                name: _convert_response(response)
                for name, response in components.get("responses", {}).items()
            },
        },
        "paths": {
            template: {
                method: {"responses": _convert_responses(item[method].get("responses", {}))}
                for method in _METHODS
                if isinstance(item.get(method), dict)
            }
            for template, item in document.get("paths", {}).items()
        },
    }
    _correct_known_inaccuracies(converted["components"]["schemas"])
    return converted


def _correct_known_inaccuracies(schemas: dict[str, Any]) -> None:
    """Where GitHub sends what its description forbids, and its issue tracker says so, allow
    null (each entry: schema, the path of properties to the value, the report)."""
    for name, path, _report in KNOWN_INACCURACIES:
        parent: Any = schemas.get(name, {})
        for step in path[:-1]:
            parent = parent.get(step, {}) if isinstance(parent, dict) else {}
        if isinstance(parent, dict) and isinstance(parent.get(path[-1]), dict):
            parent[path[-1]] = {"anyOf": [{"type": "null"}, parent[path[-1]]]}


def _convert_responses(responses: dict[str, Any]) -> dict[str, Any]:
    return {status: _convert_response(response) for status, response in responses.items()}


def _convert_response(response: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in response:
        return {"$ref": response["$ref"]}
    schema = _json_schema(response.get("content"))
    return {} if schema is None else {"schema": convert_schema(schema)}


def _json_schema(content: Any) -> Any:
    """The schema of a response's JSON body (`application/json` or a `+json` media type)."""
    if not isinstance(content, dict):
        return None
    for media_type, media in content.items():
        if media_type == "application/json" or media_type.endswith("+json"):
            return media.get("schema") if isinstance(media, dict) else None
    return None


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], Operation]:
    operations = {}
    for template, item in document["paths"].items():
        for method, operation in item.items():
            responses: dict[int, str | None] = {}
            for status, response in operation["responses"].items():
                if status.isdigit():
                    responses[int(status)] = _schema_pointer(
                        document, template, method, status, response
                    )
            operations[(method.upper(), template)] = Operation(method.upper(), template, responses)
    return operations


def _schema_pointer(
    document: dict[str, Any], template: str, method: str, status: str, response: dict[str, Any]
) -> str | None:
    """The JSON pointer of a response's body schema, following a `$ref` to a shared response."""
    if "$ref" in response:
        name = response["$ref"].rsplit("/", 1)[-1]
        shared = document["components"]["responses"][name]
        return f"#/components/responses/{_escape(name)}/schema" if "schema" in shared else None
    if "schema" not in response:
        return None
    return f"#/paths/{_escape(template)}/{method}/responses/{status}/schema"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


_Templates = dict[int, list[tuple[tuple[bool, ...], re.Pattern[str], str]]]


def _templates(paths: dict[str, Any]) -> _Templates:
    """Path templates by segment count, literal segments before parameters."""
    by_length: _Templates = {}
    for template in paths:
        segments = template.strip("/").split("/")
        shape = tuple(segment.startswith("{") for segment in segments)
        pattern = "/".join(
            "[^/]+" if is_parameter else re.escape(segment)
            for segment, is_parameter in zip(segments, shape, strict=True)
        )
        by_length.setdefault(len(segments), []).append(
            (shape, re.compile(f"^/{pattern}$"), template)
        )
    for candidates in by_length.values():
        candidates.sort(key=lambda candidate: candidate[0])
    return by_length


def _match(templates: _Templates, path: str) -> str | None:
    for _, pattern, template in templates.get(len(path.strip("/").split("/")), []):
        if pattern.match(path):
            return template
    return None


def _remembering_validator() -> type[jsonschema.protocols.Validator]:
    """Draft 4, remembering which objects each `$ref` found valid.

    A listing of 100 pull requests repeats the same repository twice in each, and the same
    users: checked once, not 200 times (a page went from 0.6 s to a fraction of that).
    """
    valid: set[tuple[str, str]] = set()

    def ref(
        validator: Any, ref: str, instance: Any, schema: Any
    ) -> Iterator[jsonschema.ValidationError]:
        if not isinstance(instance, (dict, list)):
            yield from validator._validate_reference(ref=ref, instance=instance)
            return
        text = json.dumps(instance, sort_keys=True, default=str).encode()
        key = (ref, hashlib.sha256(text).hexdigest())
        if key in valid:
            return
        errors = list(validator._validate_reference(ref=ref, instance=instance))
        if not errors:
            valid.add(key)
        yield from errors

    extended: type[jsonschema.protocols.Validator] = jsonschema.validators.extend(
        jsonschema.Draft4Validator, {"$ref": ref}
    )
    return extended


def _describe(error: jsonschema.ValidationError) -> str:
    # "not valid under any of the given schemas" says little: tell what the likeliest
    # alternative (for a nullable object, the object) found wrong inside.
    while error.context:
        error = max(error.context, key=lambda e: (e.validator != "type", len(e.absolute_path)))
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{where or 'the body'}: {error.message[:300]}"


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme) and bool(parts.netloc or parts.path)


def _format_checker(checks: dict[str, Callable[[object], bool]]) -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    for name, check in checks.items():
        checker.checks(name)(check)
    return checker


_FORMATS = _format_checker({"date-time": _date_time, "uri": _uri})
