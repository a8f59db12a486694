"""The committed API reference is what the models generate now."""

from __future__ import annotations

from pathlib import Path

from backlog_operator.tooling.reference import reference_markdown

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def test_reference_is_up_to_date() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == reference_markdown() + "\n", (
        "docs/reference.md is stale: run `make crds`"
    )


def test_reference_documents_every_spec_and_status_field() -> None:
    text = reference_markdown()
    for path in (
        "spec.repository.url",
        "spec.retry.permanentExitCodes",
        "status.phase",
        "status.conditions",
        "status.pullRequest.number",
        "status.queuePosition",
    ):
        assert f"| `{path}` |" in text, path
