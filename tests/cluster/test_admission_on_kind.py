"""The CRDs' schema and CEL rules judged by a real API server: every case of the admission tests
(tests/unit/test_admission.py, where cel-python evaluates the same rules) sent to the kind
cluster's API server as a server-side dry run, which compiles and runs the CRDs' rules (and
refuses a CRD whose rules exceed the cost budget when it is applied). Each case is stored or
refused there exactly as the unit tier expects: a rule message of a refused case is in the API
server's answer, and a valid object is stored (nothing is, with a dry run)."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from tests.unit.test_admission import PARAMS, PLACES, SCHEMA, Case, _part

pytestmark = pytest.mark.cluster


def dry_run(context: str, document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`kubectl create --dry-run=server` of one object: the API server's whole admission."""
    return subprocess.run(
        ["kubectl", "--context", context, "create", "--dry-run=server", "-o", "name", "-f", "-"],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("kind", "template", "make_crd", "model", "case"), PARAMS)
def test_the_api_server_judges_each_case_as_the_unit_tier_does(
    kind_cluster: str,
    kind: str,
    template: dict[str, Any],
    make_crd: Callable[[], dict[str, Any]],
    model: type[BaseModel],
    case: Case,
) -> None:
    part, mutate, expected = case
    document = copy.deepcopy(template)
    mutate(_part(document, PLACES[kind][part]))

    answer = dry_run(kind_cluster, document)

    said = answer.stdout + answer.stderr
    if expected is None:
        assert answer.returncode == 0, f"the API server refuses a valid object: {said}"
    elif expected == SCHEMA:
        assert answer.returncode != 0, "the API server stores what the schema refuses"
    else:
        assert answer.returncode != 0, "the API server stores what a CEL rule refuses"
        assert expected in said, said
